//! UDP headers (RFC 768).
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
//! |          data octets ...
//! +---------------- ...
//! ```
//!
//! The checksum covers the IPv4 pseudo header, the UDP header and the data. Over IPv4 a checksum
//! field of zero means "no checksum" (RFC 768), so a computed zero is sent as 0xffff; an
//! incremental update must leave an absent (zero) checksum absent.

use core::net::Ipv4Addr;

use super::{be16, checksum, ipproto, put16, Result, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A zero-copy view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps `buffer` without checking it.
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

    /// Buffer under 8 bytes: `Truncated`; Length field under 8: `Malformed`; Length field
    /// beyond the buffer: `Truncated`. The buffer may be longer than Length.
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

    /// The Length field (header + data).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True if Length says there is no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The data (up to Length).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// True if the checksum is absent (zero) or correct for this pseudo header.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let data = &self.buffer.as_ref()[..usize::from(self.len())];
        let s = checksum::combine(
            checksum::pseudo_header(src, dst, ipproto::UDP, self.len()),
            checksum::sum(data),
        );
        checksum::fold(s) == 0xffff
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

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// The data, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }

    /// Computes and writes the checksum (0xffff when the sum is zero, RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let l = self.len();
        let s = checksum::combine(
            checksum::pseudo_header(src, dst, ipproto::UDP, l),
            checksum::sum(&self.buffer.as_ref()[..usize::from(l)]),
        );
        let c = checksum::finish(s);
        self.set_checksum(if c == 0 { 0xffff } else { c });
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
    /// Parses a checked datagram, verifying its checksum.
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

    /// Header length.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header and `payload` (the buffer must hold 8 + payload bytes) and, if
    /// `checksum`, a correct checksum; else a zero (absent) one.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
        checksum: bool,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + payload.len()) as u16);
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

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 2);

    #[rustfmt::skip]
    const BYTES: [u8; 12] = [
        0x9c, 0x40,             // source port 40000
        0x1e, 0x61,             // destination port 7777
        0x00, 0x0c,             // length 12
        0x4d, 0x78,             // checksum (pseudo header 10.244.1.2 -> 10.244.2.2)
        b'p', b'i', b'n', b'g', // data
    ];

    #[test]
    fn parse_and_emit() {
        let p = UdpPacket::new_checked(&BYTES[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (40000, 7777, 12));
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum(SRC, DST));
        let r = UdpRepr::parse(&p, SRC, DST).unwrap();
        let mut buf = [0u8; 12];
        r.emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            b"ping",
            true,
        );
        assert_eq!(buf, BYTES);
        let mut flipped = BYTES;
        flipped[9] ^= 1;
        assert!(!UdpPacket::new_checked(&flipped[..])
            .unwrap()
            .verify_checksum(SRC, DST));
        let mut none = BYTES;
        none[6] = 0;
        none[7] = 0;
        assert!(UdpPacket::new_checked(&none[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn truncated_and_malformed() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                UdpPacket::new_checked(&BYTES[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        assert_eq!(
            UdpPacket::new_checked(&BYTES[..11]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = BYTES;
        b[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn computed_zero_is_sent_as_all_ones() {
        // Search for a payload whose checksum computes to zero.
        for x in 0..=u16::MAX {
            let mut buf = [0u8; 10];
            let mut p = UdpPacket::new_unchecked(&mut buf[..]);
            UdpRepr {
                src_port: 1,
                dst_port: 2,
            }
            .emit(&mut p, SRC, DST, &x.to_be_bytes(), false);
            let s = checksum::combine(
                checksum::pseudo_header(SRC, DST, ipproto::UDP, 10),
                checksum::sum(&buf),
            );
            if checksum::finish(s) == 0 {
                let mut p = UdpPacket::new_unchecked(&mut buf[..]);
                p.fill_checksum(SRC, DST);
                assert_eq!(p.checksum(), 0xffff);
                assert!(p.verify_checksum(SRC, DST));
                return;
            }
        }
        panic!("no zero-checksum payload found");
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.payload(), p.verify_checksum(SRC, DST));
            }
        }
    }
}
