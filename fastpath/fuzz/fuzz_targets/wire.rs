//! Fuzzes the header views: any bytes, every view; a view that checks out must never panic.
#![no_main]

use fastpath::wire::{arp, ethernet, icmp, ipv4, tcp, udp, vxlan};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ethernet::l3_offset(data);
    if let Ok(p) = ipv4::Ipv4Packet::new_checked(data) {
        let _ = (p.verify_checksum(), p.payload().len(), p.options().len(), p.is_fragment());
    }
    if let Ok(p) = udp::UdpPacket::new_checked(data) {
        let _ = p.payload().len();
    }
    if let Ok(p) = tcp::TcpPacket::new_checked(data) {
        let _ = (p.payload().len(), p.options().len(), p.flags());
    }
    if let Ok(p) = icmp::Icmpv4Packet::new_checked(data) {
        let _ = (p.verify_checksum(), p.data().len());
    }
    if let Ok(p) = arp::ArpPacket::new_checked(data) {
        let _ = (p.check_ethernet_ipv4(), p.target_protocol_addr());
    }
    if let Ok(p) = vxlan::VxlanHeader::new_checked(data) {
        let _ = (p.vni(), p.i_flag());
    }
});
