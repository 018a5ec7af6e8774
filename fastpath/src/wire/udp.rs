//! UDP headers (RFC 768), over IPv4.
//!
//! ```text
//!  0      7 8     15 16    23 24    31
//! +--------+--------+--------+--------+
//! |     Source      |   Destination   |
//! |      Port       |      Port       |
//! +--------+--------+--------+--------+
//! |                 |                 |
//! |     Length      |    Checksum     |
//! +--------+--------+--------+--------+
//! |
//! |          data octets ...
//! +---------------- ...
//! ```
//!
//! Length counts the header and the data. The checksum covers the IPv4 pseudo header
//! ([`checksum::pseudo_header`]), the UDP header and the data. Over IPv4 a checksum field of
//! zero means "the transmitter generated no checksum" (RFC 768), so:
//!
//! * [`UdpPacket::verify_checksum`] accepts a zero field;
//! * [`UdpPacket::fill_checksum`] transmits a computed `0x0000` as `0xffff` ("If the computed
//!   checksum is zero, it is transmitted as all ones", RFC 768);
//! * a rewrite of a datagram whose checksum is 0 must leave it 0 (do not apply
//!   [`checksum::update16`] to it), and an incremental update that yields 0 must store `0xffff`.

use core::net::Ipv4Addr;

use super::{be16, checksum, ipproto, put16, Result, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A zero-copy view of a UDP datagram (see the [module docs](self) for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps `buffer` without checking it: getters may panic on a short or inconsistent buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` and validates it with [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Buffer under 8 bytes: `Truncated`; Length field under 8 (it counts the header itself):
    /// `Malformed`; Length field beyond the buffer: `Truncated`. The buffer may be longer than
    /// Length (the IPv4 payload normally ends exactly there, but need not).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if l > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The Length field (header + data, in bytes).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True if Length says there is no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0: none was computed).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The data: bytes 8 to Length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.len())]
    }

    /// The one's complement sum of pseudo header, header and data (checksum field included).
    #[inline]
    fn full_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let l = self.len();
        checksum::combine(
            checksum::pseudo_header(src, dst, ipproto::UDP, l),
            checksum::sum(&self.buffer.as_ref()[..usize::from(l)]),
        )
    }

    /// True if the checksum is absent (field 0, RFC 768) or correct for this pseudo header.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || checksum::fold(self.full_sum(src, dst)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    /// Sets the Length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v)
    }

    /// Sets the checksum field (0 = none; see the [module docs](self)).
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// The data (bytes 8 to Length), mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD..l]
    }

    /// Computes and writes the checksum over pseudo header, header and data up to Length; a
    /// computed 0 is written as `0xffff` (RFC 768).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::finish(self.full_sum(src, dst));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a datagram: the [`UdpPacket::check_len`] errors, and `Malformed` if a checksum
    /// is present and wrong for the pseudo header `src`, `dst` (an absent one is accepted).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<UdpRepr> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(WireError::Malformed);
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Header length (8).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes [`emit`](Self::emit) writes for `payload_len` bytes of data.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header, Length = 8 + `payload.len()`, `payload`, and either a correct
    /// checksum (`checksum`) or 0 (none, RFC 768).
    ///
    /// The buffer should be exactly [`buffer_len`](Self::buffer_len) bytes; bytes beyond
    /// Length are left alone and not summed. Panics if it is shorter, or if the datagram would
    /// exceed 65535 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
        checksum: bool,
    ) {
        let len = u16::try_from(self.buffer_len(payload.len())).expect("UDP datagram over 65535");
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.set_checksum(0);
        packet.payload_mut().copy_from_slice(payload);
        if checksum {
            packet.fill_checksum(src, dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 2);

    /// 10.244.1.2:40000 -> 10.244.2.2:7777 "ping".
    ///
    /// Checksum by hand: pseudo header 0af4 + 0102 + 0af4 + 0202 + 0011 + 000c, header
    /// 9c40 + 1e61 + 000c + 0000, data 7069 + 6e67: total 0x1b286, folded 0xb287, complement
    /// 0x4d78.
    #[rustfmt::skip]
    const BYTES: [u8; 12] = [
        0x9c, 0x40,             // source port 40000
        0x1e, 0x61,             // destination port 7777
        0x00, 0x0c,             // length 12
        0x4d, 0x78,             // checksum
        b'p', b'i', b'n', b'g', // data
    ];

    fn repr() -> UdpRepr {
        UdpRepr {
            src_port: 40000,
            dst_port: 7777,
        }
    }

    /// Naive RFC 1071 checksum over pseudo header + datagram.
    fn naive(src: Ipv4Addr, dst: Ipv4Addr, d: &[u8]) -> u16 {
        let mut v = Vec::new();
        v.extend_from_slice(&src.octets());
        v.extend_from_slice(&dst.octets());
        v.extend_from_slice(&[0, 17]);
        v.extend_from_slice(&(d.len() as u16).to_be_bytes());
        v.extend_from_slice(d);
        if v.len() % 2 == 1 {
            v.push(0);
        }
        let mut s: u64 = v
            .chunks(2)
            .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn checksum_by_hand() {
        let s: u32 = 0x0af4 + 0x0102 + 0x0af4 + 0x0202 + 0x0011 + 0x000c;
        let s = s + 0x9c40 + 0x1e61 + 0x000c + 0x7069 + 0x6e67;
        assert_eq!(s, 0x1b286);
        assert_eq!(!(((s & 0xffff) + (s >> 16)) as u16), 0x4d78);
        let mut zeroed = BYTES;
        zeroed[6..8].fill(0);
        assert_eq!(naive(SRC, DST, &zeroed), 0x4d78);
    }

    #[test]
    fn getters() {
        let p = UdpPacket::new_checked(&BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 7777);
        assert_eq!(p.len(), 12);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0x4d78);
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum(SRC, DST));
        // The checksum is bound to the pseudo header.
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(10, 244, 2, 3)));
        assert_eq!(p.into_inner(), &BYTES[..]);
    }

    #[test]
    fn parse_and_emit() {
        let p = UdpPacket::new_checked(&BYTES[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, SRC, DST), Ok(repr()));
        let mut buf = [0xffu8; 12];
        repr().emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            b"ping",
            true,
        );
        assert_eq!(buf, BYTES);
        assert_eq!(repr().buffer_len(4), 12);
        assert_eq!(repr().header_len(), 8);
        // Without a checksum the field is zero and still verifies.
        repr().emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            b"ping",
            false,
        );
        assert_eq!(&buf[6..8], &[0, 0]);
        assert_eq!(&buf[..6], &BYTES[..6]);
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(UdpRepr::parse(&p, SRC, DST), Ok(repr()));
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 12];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(40000);
        p.set_dst_port(7777);
        p.set_len(12);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum(SRC, DST);
        assert_eq!(buf, BYTES);
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.set_checksum(0x1234);
        assert_eq!(p.checksum(), 0x1234);
        assert!(!p.verify_checksum(SRC, DST));
    }

    #[test]
    fn checksum_bit_flips() {
        for byte in 0..BYTES.len() {
            for bit in 0..8 {
                let mut b = BYTES;
                b[byte] ^= 1 << bit;
                // A flip in Length may make the view invalid; otherwise verification fails.
                if let Ok(p) = UdpPacket::new_checked(&b[..]) {
                    if p.checksum() != 0 {
                        assert!(!p.verify_checksum(SRC, DST), "byte {byte} bit {bit}");
                        assert_eq!(UdpRepr::parse(&p, SRC, DST), Err(WireError::Malformed));
                    }
                }
            }
        }
    }

    #[test]
    fn length_shorter_than_buffer() {
        // Ethernet padding after the datagram: payload and checksum stop at Length.
        let mut b = BYTES.to_vec();
        b.extend_from_slice(&[0xaa; 6]);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum(SRC, DST));
        // An empty datagram.
        let e = [0, 1, 0, 2, 0, 8, 0, 0];
        let p = UdpPacket::new_checked(&e[..]).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.payload(), &[] as &[u8]);
    }

    #[test]
    fn truncated_and_malformed() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                UdpPacket::new_checked(&BYTES[..n]).unwrap_err(),
                WireError::Truncated
            );
            assert_eq!(
                UdpRepr::parse(&UdpPacket::new_unchecked(&BYTES[..n]), SRC, DST),
                Err(WireError::Truncated)
            );
        }
        // Length 12 but only 8..11 bytes present.
        for n in HEADER_LEN..12 {
            assert_eq!(
                UdpPacket::new_checked(&BYTES[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        // Length 0..7 is less than the header itself.
        for l in 0..8u8 {
            let mut b = BYTES;
            b[5] = l;
            assert_eq!(
                UdpPacket::new_checked(&b[..]).unwrap_err(),
                WireError::Malformed
            );
        }
    }

    #[test]
    fn computed_zero_is_sent_as_all_ones() {
        // Pick the two data bytes so that the checksum computes to zero: the sum of everything
        // else plus the data word must fold to 0xffff.
        let mut buf = [0u8; 10];
        let r = UdpRepr {
            src_port: 1,
            dst_port: 2,
        };
        r.emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            &[0, 0],
            false,
        );
        let rest = checksum::fold(checksum::combine(
            checksum::pseudo_header(SRC, DST, ipproto::UDP, 10),
            checksum::sum(&buf),
        ));
        let word = !rest; // rest + word = 0xffff
        buf[8..10].copy_from_slice(&word.to_be_bytes());
        assert_eq!(naive(SRC, DST, &buf), 0);
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64), fix in any::<bool>()) {
            let mut data = data;
            if fix && data.len() >= 8 {
                let l = (data.len() as u16).min(be16(&data, 4).max(8));
                data[4..6].copy_from_slice(&l.to_be_bytes());
            }
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.checksum(), p.is_empty());
                prop_assert_eq!(p.payload().len() + 8, usize::from(p.len()));
                let _ = p.verify_checksum(SRC, DST);
                let _ = UdpRepr::parse(&p, SRC, DST);
            }
        }

        #[test]
        fn emit_parse_roundtrip(src_port in any::<u16>(), dst_port in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..100), src in any::<u32>(), dst in any::<u32>()) {
            let (src, dst) = (Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst));
            let r = UdpRepr { src_port, dst_port };
            let mut buf = vec![0u8; r.buffer_len(payload.len())];
            r.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst, &payload, true);
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_ne!(p.checksum(), 0);
            prop_assert!(p.verify_checksum(src, dst));
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(UdpRepr::parse(&p, src, dst), Ok(r));
            // The transmitted value is the naive checksum, except that 0 goes out as 0xffff.
            let mut z = buf.clone();
            z[6..8].fill(0);
            let n = naive(src, dst, &z);
            prop_assert_eq!(p.checksum(), if n == 0 { 0xffff } else { n });
        }
    }
}
