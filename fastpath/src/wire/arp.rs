//! ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses only.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Hardware Type (1)        |     Protocol Type (0x0800)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | HW Len (6)    | Proto Len (4) |          Operation            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Sender Hardware Address (6 octets)            |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |  Sender Protocol Address      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  (SPA, cont.)                 |  Target Hardware Address      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                    (THA, cont., 6 octets in all)              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Target Protocol Address                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! RFC 826 makes the address fields variable-length (`hlen`, `plen`); this view fixes them at
//! the Ethernet/IPv4 sizes. [`ArpPacket::check_len`] only guarantees the 28 bytes are there so
//! the getters are safe; [`ArpPacket::check_ethernet_ipv4`] checks that the packet really is
//! Ethernet/IPv4 ARP, as RFC 826's receive algorithm does first ("?Do I have the hardware type
//! in ar$hrd? ... ?Do I speak the protocol in ar$pro?").

use core::net::Ipv4Addr;

use super::{be16, be32, ethertype, put16, put32, MacAddr, Result, WireError};

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::TPA.end;

/// `ar$hrd` for Ethernet (IANA "Hardware Types": 1).
pub const HTYPE_ETHERNET: u16 = 1;

/// ARP operation codes (`ar$op`, RFC 826).
pub mod op {
    /// `ares_op$REQUEST`.
    pub const REQUEST: u16 = 1;
    /// `ares_op$REPLY`.
    pub const REPLY: u16 = 2;
}

/// A zero-copy view of an Ethernet/IPv4 ARP packet (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps `buffer` without checking its length: getters may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` and checks that it holds 28 bytes (see [`check_len`](Self::check_len)).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than 28 bytes. The type and length fields are not
    /// looked at; see [`check_ethernet_ipv4`](Self::check_ethernet_ipv4).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Malformed` unless hardware type is 1 (Ethernet), protocol type 0x0800 (IPv4), hardware
    /// length 6 and protocol length 4. Call after [`check_len`](Self::check_len).
    #[inline]
    pub fn check_ethernet_ipv4(&self) -> Result<()> {
        if self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == ethertype::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
        {
            Ok(())
        } else {
            Err(WireError::Malformed)
        }
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `ar$hrd`.
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// `ar$pro`.
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE.start)
    }

    /// `ar$hln`.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// `ar$pln`.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// `ar$op` (see [`op`]).
    #[inline]
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER.start)
    }

    /// `ar$sha`.
    #[inline]
    pub fn sender_hardware_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// `ar$spa`.
    #[inline]
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(be32(self.buffer.as_ref(), field::SPA.start))
    }

    /// `ar$tha`.
    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// `ar$tpa`.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(be32(self.buffer.as_ref(), field::TPA.start))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets `ar$hrd`.
    #[inline]
    pub fn set_hardware_type(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::HTYPE.start, value);
    }

    /// Sets `ar$pro`.
    #[inline]
    pub fn set_protocol_type(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::PTYPE.start, value);
    }

    /// Sets `ar$hln`.
    #[inline]
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets `ar$pln`.
    #[inline]
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets `ar$op`.
    #[inline]
    pub fn set_operation(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::OPER.start, value);
    }

    /// Sets `ar$sha`.
    #[inline]
    pub fn set_sender_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(addr.as_bytes());
    }

    /// Sets `ar$spa`.
    #[inline]
    pub fn set_sender_protocol_addr(&mut self, addr: Ipv4Addr) {
        put32(self.buffer.as_mut(), field::SPA.start, addr.to_bits());
    }

    /// Sets `ar$tha`.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(addr.as_bytes());
    }

    /// Sets `ar$tpa`.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        put32(self.buffer.as_mut(), field::TPA.start, addr.to_bits());
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// `ar$op` (see [`op`]); other values are kept as they are.
    pub operation: u16,
    /// `ar$sha`.
    pub sender_hardware_addr: MacAddr,
    /// `ar$spa`.
    pub sender_protocol_addr: Ipv4Addr,
    /// `ar$tha` (ignored in a request; conventionally zero).
    pub target_hardware_addr: MacAddr,
    /// `ar$tpa`.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a packet: `Truncated` if short, `Malformed` unless it is Ethernet/IPv4 ARP.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        packet.check_ethernet_ipv4()?;
        Ok(ArpRepr {
            operation: packet.operation(),
            sender_hardware_addr: packet.sender_hardware_addr(),
            sender_protocol_addr: packet.sender_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Length of the packet [`emit`](Self::emit) writes (28).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes [`emit`](Self::emit) writes (28).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the whole 28-byte packet, including the Ethernet/IPv4 type and length fields.
    /// Panics if the buffer is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(ethertype::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_sender_hardware_addr(self.sender_hardware_addr);
        packet.set_sender_protocol_addr(self.sender_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// "Who has 10.0.0.2? Tell 10.0.0.1".
    #[rustfmt::skip]
    static REQUEST: [u8; 28] = [
        0x00, 0x01,                         // hardware type: Ethernet
        0x08, 0x00,                         // protocol type: IPv4
        0x06,                               // hardware length
        0x04,                               // protocol length
        0x00, 0x01,                         // operation: request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sender MAC 02:00:00:00:00:01
        0x0a, 0x00, 0x00, 0x01,             // sender IP 10.0.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC (unknown)
        0x0a, 0x00, 0x00, 0x02,             // target IP 10.0.0.2
    ];

    fn repr() -> ArpRepr {
        ArpRepr {
            operation: op::REQUEST,
            sender_hardware_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn getters() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.check_ethernet_ipv4(), Ok(()));
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!(p.hardware_len(), 6);
        assert_eq!(p.protocol_len(), 4);
        assert_eq!(p.operation(), op::REQUEST);
        assert_eq!(p.sender_hardware_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.sender_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.target_hardware_addr(), MacAddr::ZERO);
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
    }

    #[test]
    fn parse_and_emit() {
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&REQUEST[..])),
            Ok(repr())
        );
        let mut buf = [0xeeu8; 28];
        repr().emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
        assert_eq!(repr().buffer_len(), 28);
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 28];
        let mut p = ArpPacket::new_checked(&mut buf[..]).unwrap();
        p.set_hardware_type(1);
        p.set_protocol_type(0x0800);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(op::REPLY);
        p.set_sender_hardware_addr(MacAddr([2, 0, 0, 0, 0, 2]));
        p.set_sender_protocol_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.set_target_hardware_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        p.set_target_protocol_addr(Ipv4Addr::new(10, 0, 0, 1));
        #[rustfmt::skip]
        let reply = [
            0, 1, 8, 0, 6, 4, 0, 2,
            2, 0, 0, 0, 0, 2, 10, 0, 0, 2,
            2, 0, 0, 0, 0, 1, 10, 0, 0, 1,
        ];
        assert_eq!(buf, reply);
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..n]).unwrap_err(),
                WireError::Truncated
            );
            assert_eq!(
                ArpRepr::parse(&ArpPacket::new_unchecked(&REQUEST[..n])),
                Err(WireError::Truncated)
            );
        }
        // Trailing bytes (Ethernet padding) are fine.
        let mut padded = REQUEST.to_vec();
        padded.extend_from_slice(&[0; 18]);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&padded[..])),
            Ok(repr())
        );
    }

    #[test]
    fn malformed_types_and_lengths() {
        // (offset, bad value): htype 6 (IEEE 802), ptype IPv6, hlen 8, plen 16.
        for (off, val) in [(1usize, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut buf = REQUEST;
            buf[off] = val;
            let p = ArpPacket::new_checked(&buf[..]).unwrap(); // length is still fine
            assert_eq!(
                p.check_ethernet_ipv4(),
                Err(WireError::Malformed),
                "off {off}"
            );
            assert_eq!(ArpRepr::parse(&p), Err(WireError::Malformed), "off {off}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = ArpPacket::new_checked(&data[..]) {
                let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len());
                let _ = (p.operation(), p.sender_hardware_addr(), p.sender_protocol_addr());
                let _ = (p.target_hardware_addr(), p.target_protocol_addr());
                if let Ok(r) = ArpRepr::parse(&p) {
                    let mut out = [0u8; 28];
                    r.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
                    prop_assert_eq!(&out[..], &data[..28]);
                }
            }
        }
    }
}
