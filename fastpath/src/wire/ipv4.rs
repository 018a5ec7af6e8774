//! IPv4 headers (RFC 791).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Flags (RFC 791 §3.1): bit 0 reserved (must be zero), bit 1 DF, bit 2 MF.
//! Type of Service is now DSCP (6 bits, RFC 2474) + ECN (2 bits, RFC 3168).
//! ```
//!
//! The header checksum covers the header only (IHL * 4 bytes, options included). The buffer may
//! extend past Total Length (Ethernet pads short frames to 60 bytes), so [`Ipv4Packet::payload`]
//! ends at Total Length, not at the end of the buffer.

use core::net::Ipv4Addr;

use super::{be16, be32, checksum, put16, put32, Result, WireError};

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options (IHL 5); the minimum.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Length of the longest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// The DF ("don't fragment") bit of the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
/// The MF ("more fragments") bit of the flags/fragment-offset word.
const FLAG_MF: u16 = 0x2000;
/// The fragment offset bits (in 8-byte units) of the flags/fragment-offset word.
const OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view of an IPv4 packet (see the [module docs](self) for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of the minimal header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps `buffer` without checking it: getters may panic on a short or inconsistent buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` and validates it with [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks everything the getters rely on, in this order:
    ///
    /// * buffer shorter than 20 bytes: `Truncated`;
    /// * version not 4: `Malformed`;
    /// * IHL below 5 (RFC 791 §3.1: "the minimum value for a correct header is 5"): `Malformed`;
    /// * header (IHL * 4) longer than the buffer: `Truncated`;
    /// * Total Length smaller than the header: `Malformed`;
    /// * Total Length longer than the buffer: `Truncated`.
    ///
    /// The checksum is not verified (see [`verify_checksum`](Self::verify_checksum)).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if header_len > len {
            return Err(WireError::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(WireError::Malformed);
        }
        if total_len > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 after `check_len`).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The former Type of Service byte: DSCP (high 6 bits) and ECN (low 2 bits).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total Length: header plus data, in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// The DF flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// The MF flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units, RFC 791 §3.1).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// True for any fragment of a fragmented datagram: MF set or a non-zero offset
    /// (RFC 791 §2.3: an unfragmented datagram has MF clear and offset zero).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// True for the first fragment of a fragmented datagram (MF set, offset zero): the only
    /// fragment carrying the L4 header.
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        let w = be16(self.buffer.as_ref(), field::FLG_OFF.start);
        w & FLAG_MF != 0 && w & OFFSET_MASK == 0
    }

    /// Time to Live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol (see [`super::ipproto`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header Checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source Address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(be32(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    /// Destination Address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(be32(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// The options (and padding): bytes 20 to IHL * 4; empty for IHL 5.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from the end of the header to Total Length (excluding any link padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// True if the header checksum is correct: the one's complement sum over the header,
    /// checksum included, is `0xffff` (RFC 791 §3.1, RFC 1071).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        // `get` keeps an unchecked view with a bad IHL from panicking.
        self.buffer
            .as_ref()
            .get(..self.header_len())
            .is_some_and(|h| checksum::checksum(h) == 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version (high nibble of byte 0).
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes: IHL = `value / 4` (must be a multiple of 4, 20..=60).
    #[inline]
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets Total Length.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Sets Identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::IDENT.start, value);
    }

    #[inline]
    fn set_flg_off_bits(&mut self, mask: u16, value: u16) {
        let w = be16(self.buffer.as_ref(), field::FLG_OFF.start);
        put16(
            self.buffer.as_mut(),
            field::FLG_OFF.start,
            (w & !mask) | (value & mask),
        );
    }

    /// Sets the DF flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flg_off_bits(FLAG_DF, if value { FLAG_DF } else { 0 });
    }

    /// Sets the MF flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flg_off_bits(FLAG_MF, if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset, given in bytes (a multiple of 8; the low 3 bits are dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        self.set_flg_off_bits(OFFSET_MASK, value >> 3);
    }

    /// Sets Time to Live.
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets Protocol.
    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    /// Sets Header Checksum (see also [`fill_checksum`](Self::fill_checksum) and
    /// [`checksum::update16`] for an incremental update).
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets Source Address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        put32(self.buffer.as_mut(), field::SRC_ADDR.start, addr.to_bits());
    }

    /// Sets Destination Address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        put32(self.buffer.as_mut(), field::DST_ADDR.start, addr.to_bits());
    }

    /// Computes the header checksum over IHL * 4 bytes and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(c);
    }

    /// The options, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload (header end to Total Length), mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed IPv4 header.
///
/// Options are not represented ([`emit`](Self::emit) writes IHL 5), and neither are MF and the
/// fragment offset: [`parse`](Self::parse) accepts fragments, so callers that care look at
/// [`Ipv4Packet::is_fragment`] on the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source Address.
    pub src_addr: Ipv4Addr,
    /// Destination Address.
    pub dst_addr: Ipv4Addr,
    /// Protocol.
    pub protocol: u8,
    /// Payload length: Total Length minus the header length.
    pub payload_len: usize,
    /// Time to Live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// The DF flag.
    pub dont_frag: bool,
    /// DSCP and ECN.
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Parses a header: the [`Ipv4Packet::check_len`] errors, and `Malformed` for a bad
    /// header checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(WireError::Malformed);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            dscp_ecn: packet.dscp_ecn(),
        })
    }

    /// Length of the header [`emit`](Self::emit) writes (20).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the whole packet: header plus `payload_len`.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (IHL 5, no options, MF clear, offset 0) with a correct checksum.
    /// The payload is left alone.
    ///
    /// Panics if the buffer is shorter than 20 bytes or `payload_len` exceeds `65535 - 20`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let total = u16::try_from(self.buffer_len()).expect("IPv4 payload_len over 65515");
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp_ecn(self.dscp_ecn);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        put16(
            packet.buffer.as_mut(),
            field::FLG_OFF.start,
            if self.dont_frag { FLAG_DF } else { 0 },
        );
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::super::ipproto;
    use super::*;
    use proptest::prelude::*;

    /// A UDP packet 10.0.0.1 -> 10.0.0.2 carrying 4 bytes of (fake) L4 data, plus 2 bytes of
    /// link padding after Total Length.
    #[rustfmt::skip]
    static PACKET: [u8; 26] = [
        0x45,                   // version 4, IHL 5
        0x00,                   // DSCP 0, ECN 0
        0x00, 0x18,             // total length 24
        0x12, 0x34,             // identification
        0x40, 0x00,             // flags DF, fragment offset 0
        0x40,                   // TTL 64
        0x11,                   // protocol UDP
        0x14, 0x9f,             // header checksum (computed by hand, see checksum_by_hand)
        0x0a, 0x00, 0x00, 0x01, // source 10.0.0.1
        0x0a, 0x00, 0x00, 0x02, // destination 10.0.0.2
        0xde, 0xad, 0xbe, 0xef, // payload
        0x00, 0x00,             // Ethernet padding, not part of the packet
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: ipproto::UDP,
            payload_len: 4,
            ttl: 64,
            ident: 0x1234,
            dont_frag: true,
            dscp_ecn: 0,
        }
    }

    #[test]
    fn checksum_by_hand() {
        // Words: 4500 0018 1234 4000 4011 0000 0a00 0001 0a00 0002
        // Sum:   0x4500 + 0x0018 + 0x1234 + 0x4000 + 0x4011 + 0x0a00 + 0x0001 + 0x0a00 + 0x0002
        //      = 0xeb60 -> no carry; complement = 0x149f.
        let s: u32 = 0x4500 + 0x0018 + 0x1234 + 0x4000 + 0x4011 + 0x0a00 + 0x0001 + 0x0a00 + 0x0002;
        assert_eq!(s, 0xeb60);
        assert_eq!(!(s as u16), 0x149f);
    }

    #[test]
    fn getters() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert!(!p.is_first_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ipproto::UDP);
        assert_eq!(p.checksum(), 0x149f);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn parse_and_emit() {
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&PACKET[..])),
            Ok(repr())
        );
        let mut buf = [0xffu8; 24];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr().emit(&mut p);
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&buf[..], &PACKET[..24]);
        assert_eq!(repr().buffer_len(), 24);
        assert_eq!(repr().header_len(), 20);
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 24];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp_ecn(0);
        p.set_total_len(24);
        p.set_ident(0x1234);
        p.set_dont_frag(true);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        assert!(p.more_frags() && p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        p.set_ttl(64);
        p.set_protocol(17);
        p.set_src_addr(Ipv4Addr::new(10, 0, 0, 1));
        p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.fill_checksum();
        assert_eq!(p.checksum(), 0x149f);
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&buf[..], &PACKET[..24]);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_checksum(0xabcd);
        assert_eq!(p.checksum(), 0xabcd);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Ipv4Packet::new_checked(&PACKET[..n]).unwrap_err(),
                WireError::Truncated
            );
            assert_eq!(
                Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&PACKET[..n])),
                Err(WireError::Truncated)
            );
        }
        // Total Length 24 but only 20..23 bytes present.
        for n in 20..24 {
            assert_eq!(
                Ipv4Packet::new_checked(&PACKET[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        assert!(Ipv4Packet::new_checked(&PACKET[..24]).is_ok());
    }

    #[test]
    fn malformed() {
        // Version 6.
        let mut b = PACKET;
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        // IHL 4 and IHL 0.
        for vi in [0x44u8, 0x40] {
            let mut b = PACKET;
            b[0] = vi;
            assert_eq!(
                Ipv4Packet::new_checked(&b[..]).unwrap_err(),
                WireError::Malformed
            );
        }
        // Total Length 19 < header 20.
        let mut b = PACKET;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        // IHL 15 (60 bytes) longer than the 26-byte buffer: truncated, not malformed.
        let mut b = PACKET;
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn checksum_bit_flip() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert!(p.verify_checksum());
        for byte in 0..HEADER_LEN {
            for bit in 0..8 {
                let mut b = PACKET;
                b[byte] ^= 1 << bit;
                let p = Ipv4Packet::new_unchecked(&b[..]);
                assert!(!p.verify_checksum(), "byte {byte} bit {bit}");
                // parse fails one way or another (a flip in version/IHL/length breaks check_len).
                assert!(Ipv4Repr::parse(&p).is_err());
            }
        }
        // Flipping a payload bit does not affect the header checksum.
        let mut b = PACKET;
        b[21] ^= 1;
        assert!(Ipv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn options_ihl6() {
        #[rustfmt::skip]
        let mut b = [
            0x46,                   // version 4, IHL 6
            0x00,
            0x00, 0x1c,             // total length 28
            0x00, 0x01,
            0x00, 0x00,
            0x01,                   // TTL 1
            0x11,                   // UDP
            0x00, 0x00,             // checksum (filled below)
            0xc0, 0xa8, 0x00, 0x01, // 192.168.0.1
            0xc0, 0xa8, 0x00, 0x02, // 192.168.0.2
            0x94, 0x04, 0x00, 0x00, // option: Router Alert (RFC 2113)
            0x01, 0x02, 0x03, 0x04, // payload
        ];
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert!(p.verify_checksum());
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 4);
        assert_eq!(r.ttl, 1);
        // The option is covered by the checksum.
        b[21] ^= 0x01;
        assert!(!Ipv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
        // IHL 6 with only 23 bytes: header truncated.
        assert_eq!(
            Ipv4Packet::new_checked(&b[..23]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn fragments() {
        let mut b = PACKET;
        // First fragment: MF set, offset 0.
        b[6..8].copy_from_slice(&0x2000u16.to_be_bytes());
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(p.more_frags() && !p.dont_frag());
        assert!(p.is_fragment() && p.is_first_fragment());
        assert_eq!(p.frag_offset(), 0);
        // Middle fragment: MF set, offset 185 * 8 = 1480.
        b[6..8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes());
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(p.is_fragment() && !p.is_first_fragment());
        assert_eq!(p.frag_offset(), 1480);
        // Last fragment: MF clear, offset 2960.
        b[6..8].copy_from_slice(&370u16.to_be_bytes());
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(!p.more_frags() && p.is_fragment() && !p.is_first_fragment());
        assert_eq!(p.frag_offset(), 2960);
        // Reserved bit alone is not a fragment.
        b[6..8].copy_from_slice(&0x8000u16.to_be_bytes());
        assert!(!Ipv4Packet::new_unchecked(&b[..]).is_fragment());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80), fix in any::<bool>()) {
            let mut data = data;
            if fix && data.len() >= 20 {
                // Bias towards passing check_len so the getters get exercised.
                data[0] = 0x40 | (data[0] & 0x0f).max(5);
                let tl = (data.len() as u16).min(be16(&data, 2));
                data[2..4].copy_from_slice(&tl.to_be_bytes());
            }
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.header_len(), p.dscp_ecn(), p.total_len(), p.ident());
                let _ = (p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment(), p.is_first_fragment());
                let _ = (p.ttl(), p.protocol(), p.checksum(), p.src_addr(), p.dst_addr());
                prop_assert_eq!(p.options().len() + HEADER_LEN, p.header_len());
                prop_assert_eq!(p.header_len() + p.payload().len(), usize::from(p.total_len()));
                let _ = p.verify_checksum();
                if let Ok(r) = Ipv4Repr::parse(&p) {
                    prop_assert_eq!(r.payload_len, p.payload().len());
                }
            }
        }

        #[test]
        fn emit_parse_roundtrip(src in any::<u32>(), dst in any::<u32>(), protocol in any::<u8>(), payload_len in 0usize..100, ttl in any::<u8>(), ident in any::<u16>(), dont_frag in any::<bool>(), dscp_ecn in any::<u8>()) {
            let r = Ipv4Repr { src_addr: Ipv4Addr::from_bits(src), dst_addr: Ipv4Addr::from_bits(dst), protocol, payload_len, ttl, ident, dont_frag, dscp_ecn };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Ipv4Repr::parse(&p), Ok(r));
        }
    }
}
