//! Whole-frame builders for tests, the simulator and the bench generator. Built from the
//! `Repr` types with full checksums; they allocate (this is not the fast path).

use core::net::Ipv4Addr;

use super::arp::{ArpPacket, ArpRepr};
use super::ethernet::{EthernetFrame, EthernetRepr};
use super::icmp::{Icmpv4Packet, Icmpv4Repr};
use super::ipv4::{Ipv4Packet, Ipv4Repr};
use super::tcp::{TcpPacket, TcpRepr};
use super::udp::{UdpPacket, UdpRepr};
use super::vxlan::{VxlanHeader, VxlanRepr, UDP_PORT};
use super::{ethertype, ipproto, MacAddr};

/// L2 and L3 addresses of a frame, with the IPv4 header fields a builder may vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// TTL.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// DF flag.
    pub dont_frag: bool,
}

impl Addrs {
    /// TTL 64, ident 0, DF set (as Linux sends TCP and path-MTU-discovering UDP).
    pub fn new(src_mac: MacAddr, dst_mac: MacAddr, src_ip: Ipv4Addr, dst_ip: Ipv4Addr) -> Addrs {
        Addrs {
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            ttl: 64,
            ident: 0,
            dont_frag: true,
        }
    }
}

fn ethernet(buf: &mut [u8], src: MacAddr, dst: MacAddr, et: u16) {
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: et,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..14]));
}

/// Ethernet + IPv4 header + the given L4 bytes.
pub fn ipv4_frame(a: &Addrs, protocol: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + l4.len()];
    ethernet(&mut f, a.src_mac, a.dst_mac, ethertype::IPV4);
    Ipv4Repr {
        src_addr: a.src_ip,
        dst_addr: a.dst_ip,
        protocol,
        payload_len: l4.len(),
        ttl: a.ttl,
        ident: a.ident,
        dont_frag: a.dont_frag,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    f[34..].copy_from_slice(l4);
    f
}

/// A UDP frame with a valid checksum.
pub fn udp_frame(a: &Addrs, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + payload.len()];
    UdpRepr { src_port, dst_port }.emit(
        &mut UdpPacket::new_unchecked(&mut l4[..]),
        a.src_ip,
        a.dst_ip,
        payload,
        true,
    );
    ipv4_frame(a, ipproto::UDP, &l4)
}

/// A TCP frame (no options, window 64240) with a valid checksum.
pub fn tcp_frame(
    a: &Addrs,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = vec![0u8; 20 + payload.len()];
    TcpRepr {
        src_port,
        dst_port,
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: 64240,
    }
    .emit(
        &mut TcpPacket::new_unchecked(&mut l4[..]),
        a.src_ip,
        a.dst_ip,
        payload,
    );
    ipv4_frame(a, ipproto::TCP, &l4)
}

/// An ICMP echo request (`request`) or reply.
pub fn icmp_echo_frame(a: &Addrs, request: bool, ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + data.len()];
    let r = if request {
        Icmpv4Repr::EchoRequest { ident, seq_no }
    } else {
        Icmpv4Repr::EchoReply { ident, seq_no }
    };
    r.emit(&mut Icmpv4Packet::new_unchecked(&mut l4[..]), data);
    ipv4_frame(a, ipproto::ICMP, &l4)
}

/// An Ethernet/IPv4 ARP frame; the Ethernet source is `sender_mac`.
pub fn arp_frame(
    eth_dst: MacAddr,
    operation: u16,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 28];
    ethernet(&mut f, sender_mac, eth_dst, ethertype::ARP);
    ArpRepr {
        operation,
        sender_hardware_addr: sender_mac,
        sender_protocol_addr: sender_ip,
        target_hardware_addr: target_mac,
        target_protocol_addr: target_ip,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

/// A VXLAN frame: outer Ethernet + IPv4 + UDP (to 4789, from `src_port`) + VXLAN + `inner`.
/// The outer UDP checksum is computed when `udp_checksum`, else zero (RFC 7348 §5).
pub fn vxlan_frame(
    outer: &Addrs,
    src_port: u16,
    vni: u32,
    inner: &[u8],
    udp_checksum: bool,
) -> Vec<u8> {
    let mut payload = vec![0u8; 8 + inner.len()];
    VxlanRepr { vni }.emit(&mut VxlanHeader::new_unchecked(&mut payload[..8]));
    payload[8..].copy_from_slice(inner);
    let mut l4 = vec![0u8; 8 + payload.len()];
    UdpRepr {
        src_port,
        dst_port: UDP_PORT,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut l4[..]),
        outer.src_ip,
        outer.dst_ip,
        &payload,
        udp_checksum,
    );
    ipv4_frame(outer, ipproto::UDP, &l4)
}

/// Pads with zeros to the 60-byte Ethernet minimum (without FCS).
pub fn pad_to_min(frame: &mut Vec<u8>) {
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    #[test]
    fn frames_are_valid() {
        let a = Addrs::new(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        );
        let u = udp_frame(&a, 1, 2, b"abc");
        assert_eq!(u.len(), 14 + 20 + 8 + 3);
        assert_eq!(checksum::checksum(&u[14..34]), 0);
        assert!(UdpPacket::new_checked(&u[34..])
            .unwrap()
            .verify_checksum(a.src_ip, a.dst_ip));
        let t = tcp_frame(&a, 1, 2, 3, 4, 0x12, b"");
        assert!(TcpPacket::new_checked(&t[34..])
            .unwrap()
            .verify_checksum(a.src_ip, a.dst_ip));
        let i = icmp_echo_frame(&a, true, 1, 2, b"x");
        assert!(Icmpv4Packet::new_checked(&i[34..])
            .unwrap()
            .verify_checksum());
        let v = vxlan_frame(&a, 50000, 7, &u, true);
        assert_eq!(v.len(), u.len() + 50);
        assert_eq!(&v[50..], &u[..]);
        assert!(UdpPacket::new_checked(&v[34..])
            .unwrap()
            .verify_checksum(a.src_ip, a.dst_ip));
        let mut p = arp_frame(
            MacAddr::BROADCAST,
            1,
            a.src_mac,
            a.src_ip,
            MacAddr::ZERO,
            a.dst_ip,
        );
        assert_eq!(p.len(), 42);
        pad_to_min(&mut p);
        assert_eq!(p.len(), 60);
    }
}
