//! VXLAN headers (RFC 7348 §5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! "The I flag MUST be set to 1 for a valid VXLAN Network ID (VNI). The other 7 bits
//! (designated "R") are reserved fields and MUST be set to zero on transmission and ignored on
//! receipt." The reserved 24- and 8-bit fields likewise. So a view checks only the length, and
//! the receiver judges the I flag ([`VxlanRepr::parse`] requires it).
//!
//! On the wire (RFC 7348 §5) the header follows an outer Ethernet / IPv4 / UDP header whose
//! destination port is [`UDP_PORT`], and is followed by the inner Ethernet frame (without FCS):
//!
//! ```text
//! | outer Ethernet 14 | outer IPv4 20 | UDP 8 | VXLAN 8 | inner Ethernet frame ... |
//! |<------------------ ENCAP_OVERHEAD = 50 ------------>|
//! ```
//!
//! The outer UDP checksum "SHOULD be transmitted as zero" and a receiver must accept a zero
//! checksum (RFC 7348 §5); a non-zero one must be correct.

use super::{be32, put32, Result, WireError};

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The IANA-assigned VXLAN UDP port (RFC 7348 §5).
pub const UDP_PORT: u16 = 4789;
/// Bytes VXLAN adds in front of an inner Ethernet frame: outer Ethernet 14, IPv4 20, UDP 8,
/// VXLAN 8.
pub const ENCAP_OVERHEAD: usize = 50;
/// The largest VNI (24 bits).
pub const VNI_MAX: u32 = 0xff_ffff;
/// The I flag (bit 4 of the first byte, counting from the most significant bit as 0).
pub const FLAG_I: u8 = 0x08;

/// The outer UDP source port for an inner flow's 64-bit hash (`FlowKey::wide_hash`): in
/// 49152–65535 as RFC 7348 §5 recommends ("calculated using a hash of fields from the inner
/// packet ... in the dynamic/private port range 49152-65535"), so the underlay's ECMP spreads
/// flows while each flow stays on one path. The hash's top 14 bits, its best mixed (a
/// multiply's high bits depend on every input bit).
#[inline(always)]
pub fn source_port(wide_hash: u64) -> u16 {
    49152 | (wide_hash >> 50) as u16
}

/// A zero-copy view of a VXLAN header and the inner frame after it (see the
/// [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps `buffer` without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> VxlanHeader<T> {
        VxlanHeader { buffer }
    }

    /// Wraps `buffer` and checks its length.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<VxlanHeader<T>> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Buffer under 8 bytes: `Truncated`. Neither the reserved bits nor the I flag are looked
    /// at (RFC 7348 §5: reserved bits are "ignored on receipt").
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// True if the I flag (valid VNI) is set.
    #[inline]
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VNI.
    #[inline]
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VNI) >> 8
    }

    /// The inner frame after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanHeader<T> {
    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the VNI (low 24 bits of `vni`), keeping the last reserved byte.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        let low = b[field::VNI + 3];
        put32(b, field::VNI, (vni & VNI_MAX) << 8 | u32::from(low));
    }

    /// Zeroes every reserved field (bytes 1–3 and 7) and the reserved flag bits.
    #[inline]
    pub fn clear_reserved(&mut self) {
        let b = self.buffer.as_mut();
        b[0] &= FLAG_I;
        b[1..4].fill(0);
        b[7] = 0;
    }

    /// The inner frame after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for VxlanHeader<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    /// The VNI.
    pub vni: u32,
}

impl VxlanRepr {
    /// Parses a header: `Truncated` under 8 bytes, `Malformed` if the I flag is clear (RFC 7348
    /// §5: "The I flag MUST be set to 1 for a valid VXLAN Network ID"). Reserved bits are
    /// ignored.
    pub fn parse<T: AsRef<[u8]>>(h: &VxlanHeader<T>) -> Result<VxlanRepr> {
        h.check_len()?;
        if !h.i_flag() {
            return Err(WireError::Malformed);
        }
        Ok(VxlanRepr { vni: h.vni() })
    }

    /// Header length (8).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes [`emit`](Self::emit) writes (8).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes flags 0x08, the VNI (its low 24 bits) and zeroed reserved fields into the first 8
    /// bytes; the inner frame is left alone. Panics if the buffer is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut VxlanHeader<T>) {
        h.buffer.as_mut()[..HEADER_LEN].fill(0);
        h.set_flags(FLAG_I);
        h.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::super::ethernet::{EthernetFrame, EthernetRepr};
    use super::super::frame::{self, Addrs};
    use super::super::icmp::{Icmpv4Packet, Icmpv4Repr};
    use super::super::ipv4::{Ipv4Packet, Ipv4Repr};
    use super::super::udp::{UdpPacket, UdpRepr};
    use super::super::{ethertype, ipproto, MacAddr};
    use super::*;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    #[rustfmt::skip]
    const HEADER: [u8; 8] = [
        0x08,             // flags: I
        0x00, 0x00, 0x00, // reserved
        0x12, 0x34, 0x56, // VNI 0x123456
        0x00,             // reserved
    ];

    /// A pod-to-pod ping as it crosses the underlay between two nodes, as tcpdump would show
    /// it: node 192.168.1.10 (52:54:00:00:00:0a) to node 192.168.1.11 (52:54:00:00:00:0b),
    /// VNI 1; inside, pod 10.244.1.2 (0a:58:0a:f4:01:02) pings pod 10.244.2.3
    /// (0a:58:0a:f4:02:03). Checksums computed by hand (naive RFC 1071 sums) and re-checked in
    /// `captured_frame_checksums`.
    #[rustfmt::skip]
    const CAPTURED: [u8; 96] = [
        // --- outer Ethernet ---
        0x52, 0x54, 0x00, 0x00, 0x00, 0x0b, // dst: node B
        0x52, 0x54, 0x00, 0x00, 0x00, 0x0a, // src: node A
        0x08, 0x00,                         // IPv4
        // --- outer IPv4 (offset 14) ---
        0x45, 0x00,                         // version 4, IHL 5, DSCP/ECN 0
        0x00, 0x52,                         // total length 82 = 20 + 8 + 8 + 46
        0x00, 0x00,                         // identification 0
        0x40, 0x00,                         // DF
        0x40, 0x11,                         // TTL 64, UDP
        0xb7, 0x35,                         // header checksum
        0xc0, 0xa8, 0x01, 0x0a,             // 192.168.1.10
        0xc0, 0xa8, 0x01, 0x0b,             // 192.168.1.11
        // --- outer UDP (offset 34) ---
        0xc2, 0xe5,                         // source port 49893 (flow hash, 49152..=65535)
        0x12, 0xb5,                         // destination port 4789
        0x00, 0x3e,                         // length 62 = 8 + 8 + 46
        0x00, 0x00,                         // checksum: none (RFC 7348 §5)
        // --- VXLAN (offset 42) ---
        0x08, 0x00, 0x00, 0x00,             // I flag, reserved
        0x00, 0x00, 0x01, 0x00,             // VNI 1, reserved
        // --- inner Ethernet (offset 50) ---
        0x0a, 0x58, 0x0a, 0xf4, 0x02, 0x03, // dst: pod 10.244.2.3
        0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02, // src: pod 10.244.1.2
        0x08, 0x00,                         // IPv4
        // --- inner IPv4 (offset 64) ---
        0x45, 0x00, 0x00, 0x20,             // IHL 5, total length 32
        0x1c, 0x46, 0x40, 0x00,             // identification 0x1c46, DF
        0x40, 0x01, 0x05, 0xab,             // TTL 64, ICMP, checksum 0x05ab
        0x0a, 0xf4, 0x01, 0x02,             // 10.244.1.2
        0x0a, 0xf4, 0x02, 0x03,             // 10.244.2.3
        // --- inner ICMP (offset 84) ---
        0x08, 0x00, 0x06, 0xf4,             // echo request, checksum 0x06f4
        0x12, 0x34, 0x00, 0x07,             // identifier 0x1234, sequence 7
        b'p', b'i', b'n', b'g',
    ];

    const NODE_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const NODE_B: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);
    const POD_1: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
    const POD_2: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 3);

    fn naive(b: &[u8]) -> u16 {
        let mut s: u64 = b
            .chunks(2)
            .map(|c| u64::from(c[0]) << 8 | u64::from(*c.get(1).unwrap_or(&0)))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn getters_parse_emit() {
        let h = VxlanHeader::new_checked(&HEADER[..]).unwrap();
        assert_eq!(h.flags(), 0x08);
        assert!(h.i_flag());
        assert_eq!(h.vni(), 0x12_3456);
        assert!(h.payload().is_empty());
        let r = VxlanRepr::parse(&h).unwrap();
        assert_eq!(r, VxlanRepr { vni: 0x12_3456 });
        let mut buf = [0xffu8; 8];
        r.emit(&mut VxlanHeader::new_unchecked(&mut buf[..]));
        assert_eq!(buf, HEADER);
        assert_eq!(r.buffer_len(), 8);
        assert_eq!(h.into_inner(), &HEADER[..]);
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 10];
        let mut h = VxlanHeader::new_unchecked(&mut b[..]);
        h.set_flags(FLAG_I);
        h.set_vni(0x12_3456);
        h.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(&b[..8], &HEADER);
        assert_eq!(&b[8..], &[0xaa, 0xbb]);
        // set_vni keeps the trailing reserved byte and masks to 24 bits.
        b[7] = 0x5a;
        let mut h = VxlanHeader::new_unchecked(&mut b[..]);
        h.set_vni(0xff00_0001);
        assert_eq!(h.vni(), 1);
        assert_eq!(&b[4..8], &[0, 0, 1, 0x5a]);
        let mut h = VxlanHeader::new_unchecked(&mut b[..]);
        h.set_vni(VNI_MAX);
        assert_eq!(h.vni(), 0xff_ffff);
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                VxlanHeader::new_checked(&HEADER[..n]).unwrap_err(),
                WireError::Truncated
            );
            assert_eq!(
                VxlanRepr::parse(&VxlanHeader::new_unchecked(&HEADER[..n])),
                Err(WireError::Truncated)
            );
        }
    }

    #[test]
    fn reserved_bits_ignored_i_flag_required() {
        let mut b = [0xf7u8, 0xff, 0xff, 0xff, 0, 0, 1, 0xff];
        let h = VxlanHeader::new_checked(&b[..]).unwrap();
        assert!(!h.i_flag());
        assert_eq!(VxlanRepr::parse(&h).unwrap_err(), WireError::Malformed);
        b[0] |= FLAG_I;
        let mut h = VxlanHeader::new_checked(&mut b[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&h).unwrap(), VxlanRepr { vni: 1 });
        h.clear_reserved();
        assert_eq!(b, [0x08, 0, 0, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn captured_frame_checksums() {
        assert_eq!(CAPTURED.len(), 46 + ENCAP_OVERHEAD);
        assert_eq!(naive(&CAPTURED[14..34]), 0, "outer IPv4 header");
        assert_eq!(naive(&CAPTURED[64..84]), 0, "inner IPv4 header");
        assert_eq!(naive(&CAPTURED[84..]), 0, "inner ICMP message");
    }

    #[test]
    fn captured_frame_parses_layer_by_layer() {
        let eth = EthernetFrame::new_checked(&CAPTURED[..]).unwrap();
        assert_eq!(
            EthernetRepr::parse(&eth),
            Ok(EthernetRepr {
                src_addr: MacAddr([0x52, 0x54, 0, 0, 0, 0x0a]),
                dst_addr: MacAddr([0x52, 0x54, 0, 0, 0, 0x0b]),
                ethertype: ethertype::IPV4,
            })
        );
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let ip_repr = Ipv4Repr::parse(&ip).unwrap();
        assert_eq!((ip_repr.src_addr, ip_repr.dst_addr), (NODE_A, NODE_B));
        assert_eq!((ip_repr.protocol, ip_repr.payload_len), (ipproto::UDP, 62));
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), UDP_PORT);
        assert!((49152..=65535).contains(&udp.src_port()));
        assert_eq!(udp.checksum(), 0);
        assert_eq!(
            UdpRepr::parse(&udp, NODE_A, NODE_B),
            Ok(UdpRepr {
                src_port: 49893,
                dst_port: 4789
            })
        );
        let vx = VxlanHeader::new_checked(udp.payload()).unwrap();
        assert_eq!(VxlanRepr::parse(&vx), Ok(VxlanRepr { vni: 1 }));
        assert_eq!(vx.payload(), &CAPTURED[ENCAP_OVERHEAD..]);
        let inner = EthernetFrame::new_checked(vx.payload()).unwrap();
        assert_eq!(inner.src_addr(), MacAddr([0x0a, 0x58, 0x0a, 0xf4, 1, 2]));
        let iip = Ipv4Packet::new_checked(inner.payload()).unwrap();
        let iip_repr = Ipv4Repr::parse(&iip).unwrap();
        assert_eq!((iip_repr.src_addr, iip_repr.dst_addr), (POD_1, POD_2));
        assert_eq!(iip_repr.ident, 0x1c46);
        let icmp = Icmpv4Packet::new_checked(iip.payload()).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&icmp),
            Ok(Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 7
            })
        );
        assert_eq!(icmp.data(), b"ping");
    }

    #[test]
    fn captured_frame_matches_builder() {
        let mut inner_addrs = Addrs::new(
            MacAddr([0x0a, 0x58, 0x0a, 0xf4, 1, 2]),
            MacAddr([0x0a, 0x58, 0x0a, 0xf4, 2, 3]),
            POD_1,
            POD_2,
        );
        inner_addrs.ident = 0x1c46;
        let inner = frame::icmp_echo_frame(&inner_addrs, true, 0x1234, 7, b"ping");
        assert_eq!(&inner[..], &CAPTURED[ENCAP_OVERHEAD..]);
        let outer = Addrs::new(
            MacAddr([0x52, 0x54, 0, 0, 0, 0x0a]),
            MacAddr([0x52, 0x54, 0, 0, 0, 0x0b]),
            NODE_A,
            NODE_B,
        );
        let built = frame::vxlan_frame(&outer, 49893, 1, &inner, false);
        assert_eq!(&built[..], &CAPTURED[..]);
        // With the optional outer UDP checksum only those two bytes change, and they verify.
        let with_csum = frame::vxlan_frame(&outer, 49893, 1, &inner, true);
        assert_eq!(&with_csum[..40], &CAPTURED[..40]);
        assert_eq!(&with_csum[42..], &CAPTURED[42..]);
        let udp = UdpPacket::new_checked(&with_csum[34..]).unwrap();
        assert_ne!(udp.checksum(), 0);
        assert!(udp.verify_checksum(NODE_A, NODE_B));
    }

    #[test]
    fn source_port_is_the_top_14_bits() {
        assert_eq!(source_port(0), 49152);
        assert_eq!(source_port(u64::MAX >> 14), 49152);
        assert_eq!(source_port(u64::MAX), 65535);
        assert_eq!(source_port(0x8000_0000_0000_0000), 49152 + 8192);
    }

    /// Flows that differ in little — consecutive client ports, consecutive client addresses,
    /// the hard case for a weak hash — spread over the whole range (100,000 flows into 16,384
    /// ports leave ~37 unused if the ports are uniform).
    #[test]
    fn source_ports_of_similar_flows_spread() {
        use crate::tables::conntrack::FlowKey;
        let base = FlowKey {
            src: 0x0af4_0102,
            dst: 0x0af4_0203,
            sport: 40000,
            dport: 80,
            proto: 6,
        };
        let by_port = |i: u32| FlowKey {
            sport: base.sport.wrapping_add(i as u16),
            dport: (i >> 16) as u16,
            ..base
        };
        let by_addr = |i: u32| FlowKey {
            src: base.src.wrapping_add(i),
            ..base
        };
        for (what, key) in [
            ("ports", &by_port as &dyn Fn(u32) -> FlowKey),
            ("addresses", &by_addr),
        ] {
            let seen: std::collections::HashSet<u16> = (0..100_000u32)
                .map(|i| source_port(key(i).wide_hash()))
                .collect();
            assert!(
                seen.len() > 16_000,
                "{what}: {} of 16384 ports used",
                seen.len()
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(h) = VxlanHeader::new_checked(&data[..]) {
                let _ = (h.flags(), h.i_flag(), h.payload());
                prop_assert!(h.vni() <= VNI_MAX);
                if let Ok(r) = VxlanRepr::parse(&h) {
                    let mut out = [0u8; 8];
                    r.emit(&mut VxlanHeader::new_unchecked(&mut out[..]));
                    prop_assert_eq!(r.vni, h.vni());
                    prop_assert_eq!(out[0], FLAG_I);
                    prop_assert_eq!(&out[4..7], &data[4..7]);
                }
            }
        }
    }
}
