//! Whole-frame builders for tests, the simulator and the bench generator.
//!
//! Every frame is built from scratch with the `Repr` types, with full (not incremental)
//! checksums, so a frame the pipeline rewrote can be compared byte for byte with one built
//! here. The builders allocate; this is not the fast path. Frames are not padded to the
//! Ethernet minimum unless [`pad_to_min`] is called, and carry no FCS.

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

/// Ethernet + IPv4 header (IHL 5, DSCP 0, the TTL, ident and DF of `a`, correct checksum) +
/// the given L4 bytes, copied as they are.
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

/// A UDP frame with a valid (non-zero) checksum.
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

/// An ICMP echo request (`request`) or reply, code 0, with a valid checksum.
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

/// An Ethernet/IPv4 ARP frame (42 bytes, unpadded); the Ethernet source is `sender_mac`.
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

/// A VXLAN frame: outer Ethernet + IPv4 + UDP (to 4789, from `src_port`) + VXLAN (I flag,
/// `vni`) + `inner` (a whole inner Ethernet frame). The outer UDP checksum is computed when
/// `udp_checksum`, else zero (RFC 7348 §5: it "SHOULD be transmitted as zero").
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

/// Pads with zeros to the 60-byte Ethernet minimum (without FCS); longer frames are unchanged.
pub fn pad_to_min(frame: &mut Vec<u8>) {
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arp::op;
    use crate::wire::tcp::flags;
    use crate::wire::vxlan::ENCAP_OVERHEAD;

    fn addrs() -> Addrs {
        Addrs::new(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        )
    }

    /// Checks the Ethernet and IPv4 layers of `f` against `a` and returns the IPv4 payload.
    fn check_l2_l3<'f>(f: &'f [u8], a: &Addrs, protocol: u8) -> &'f [u8] {
        let eth = EthernetFrame::new_checked(f).unwrap();
        assert_eq!(
            EthernetRepr::parse(&eth),
            Ok(EthernetRepr {
                src_addr: a.src_mac,
                dst_addr: a.dst_mac,
                ethertype: ethertype::IPV4,
            })
        );
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(usize::from(ip.total_len()), f.len() - 14, "no padding");
        let r = Ipv4Repr::parse(&ip).unwrap();
        assert_eq!(
            r,
            Ipv4Repr {
                src_addr: a.src_ip,
                dst_addr: a.dst_ip,
                protocol,
                payload_len: f.len() - 34,
                ttl: a.ttl,
                ident: a.ident,
                dont_frag: a.dont_frag,
                dscp_ecn: 0,
            }
        );
        &f[34..]
    }

    #[test]
    fn addrs_defaults() {
        let a = addrs();
        assert_eq!((a.ttl, a.ident, a.dont_frag), (64, 0, true));
    }

    #[test]
    fn ipv4_frame_copies_l4_and_honours_addrs() {
        let mut a = addrs();
        a.ttl = 3;
        a.ident = 0xbeef;
        a.dont_frag = false;
        let f = ipv4_frame(&a, 253, b"opaque");
        assert_eq!(f.len(), 14 + 20 + 6);
        assert_eq!(check_l2_l3(&f, &a, 253), b"opaque");
        assert_eq!(&f[20..22], &[0, 0], "DF clear, offset 0");
    }

    #[test]
    fn udp_frame_is_valid() {
        let a = addrs();
        let f = udp_frame(&a, 40000, 7777, b"abc");
        assert_eq!(f.len(), 14 + 20 + 8 + 3);
        let udp = UdpPacket::new_checked(check_l2_l3(&f, &a, ipproto::UDP)).unwrap();
        assert_ne!(udp.checksum(), 0);
        assert_eq!(
            UdpRepr::parse(&udp, a.src_ip, a.dst_ip),
            Ok(UdpRepr {
                src_port: 40000,
                dst_port: 7777
            })
        );
        assert_eq!(udp.payload(), b"abc");
    }

    #[test]
    fn tcp_frame_is_valid() {
        let a = addrs();
        let f = tcp_frame(&a, 33333, 80, 1, 2, flags::SYN | flags::ACK, b"hi");
        let tcp = TcpPacket::new_checked(check_l2_l3(&f, &a, ipproto::TCP)).unwrap();
        assert_eq!(
            TcpRepr::parse(&tcp, a.src_ip, a.dst_ip),
            Ok(TcpRepr {
                src_port: 33333,
                dst_port: 80,
                seq_number: 1,
                ack_number: 2,
                flags: flags::SYN | flags::ACK,
                window_len: 64240,
            })
        );
        assert_eq!(tcp.payload(), b"hi");
    }

    #[test]
    fn icmp_echo_frames_are_valid() {
        let a = addrs();
        for (request, want) in [
            (
                true,
                Icmpv4Repr::EchoRequest {
                    ident: 9,
                    seq_no: 10,
                },
            ),
            (
                false,
                Icmpv4Repr::EchoReply {
                    ident: 9,
                    seq_no: 10,
                },
            ),
        ] {
            let f = icmp_echo_frame(&a, request, 9, 10, b"data");
            let icmp = Icmpv4Packet::new_checked(check_l2_l3(&f, &a, ipproto::ICMP)).unwrap();
            assert_eq!(Icmpv4Repr::parse(&icmp), Ok(want));
            assert_eq!(icmp.data(), b"data");
        }
    }

    #[test]
    fn arp_frame_is_valid() {
        let a = addrs();
        let f = arp_frame(
            MacAddr::BROADCAST,
            op::REQUEST,
            a.src_mac,
            a.src_ip,
            MacAddr::ZERO,
            a.dst_ip,
        );
        assert_eq!(f.len(), 42);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(eth.src_addr(), a.src_mac);
        assert_eq!(eth.ethertype(), ethertype::ARP);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()),
            Ok(ArpRepr {
                operation: op::REQUEST,
                sender_hardware_addr: a.src_mac,
                sender_protocol_addr: a.src_ip,
                target_hardware_addr: MacAddr::ZERO,
                target_protocol_addr: a.dst_ip,
            })
        );
    }

    #[test]
    fn vxlan_frame_layout() {
        let a = addrs();
        let inner = udp_frame(&a, 1, 2, b"abc");
        let outer = Addrs::new(
            MacAddr([0x52, 0x54, 0, 0, 0, 1]),
            MacAddr([0x52, 0x54, 0, 0, 0, 2]),
            Ipv4Addr::new(192, 168, 0, 1),
            Ipv4Addr::new(192, 168, 0, 2),
        );
        for csum in [false, true] {
            let v = vxlan_frame(&outer, 50000, 0xab_cdef, &inner, csum);
            assert_eq!(v.len(), inner.len() + ENCAP_OVERHEAD);
            let udp = UdpPacket::new_checked(check_l2_l3(&v, &outer, ipproto::UDP)).unwrap();
            assert_eq!((udp.src_port(), udp.dst_port()), (50000, UDP_PORT));
            assert_eq!(udp.checksum() != 0, csum);
            assert!(udp.verify_checksum(outer.src_ip, outer.dst_ip));
            let vx = VxlanHeader::new_checked(udp.payload()).unwrap();
            assert_eq!(VxlanRepr::parse(&vx), Ok(VxlanRepr { vni: 0xab_cdef }));
            assert_eq!(&udp.payload()[..8], &[0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
            assert_eq!(vx.payload(), &inner[..]);
        }
    }

    #[test]
    fn padding() {
        let a = addrs();
        let mut f = udp_frame(&a, 1, 2, b"x");
        assert_eq!(f.len(), 43);
        pad_to_min(&mut f);
        assert_eq!(f.len(), 60);
        assert!(f[43..].iter().all(|&b| b == 0));
        // The padding is outside the IPv4 Total Length and the UDP Length.
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.payload(), b"x");
        assert!(udp.verify_checksum(a.src_ip, a.dst_ip));
        let mut long = vec![1u8; 61];
        pad_to_min(&mut long);
        assert_eq!(long, vec![1u8; 61]);
    }
}
