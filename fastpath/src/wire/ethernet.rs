//! Ethernet II frames (IEEE 802.3 / RFC 894) and VLAN tag skipping (IEEE 802.1Q / 802.1ad).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                Destination MAC Address (6 octets)             |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                   Source MAC Address (6 octets)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           EtherType           |  Payload ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The frame check sequence is not part of the buffer (NICs strip it). A VLAN tag, when present,
//! sits where the EtherType would be: TPID (0x8100 or 0x88a8) then the 16-bit TCI, followed by
//! the real EtherType; see [`l3_offset`].

use super::{be16, ethertype, put16, MacAddr, Result, WireError};

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// Length of one 802.1Q / 802.1ad tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;

/// A zero-copy view of an Ethernet II frame (see the [module docs](self) for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps `buffer` without checking its length: getters may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` and checks that it holds a whole header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Truncated` if the buffer is shorter than [`HEADER_LEN`]. Nothing else can be wrong.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// The source MAC address.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The EtherType (the TPID if the frame is VLAN tagged; see [`l3_offset`]).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// Everything after the 14-byte header (including any VLAN tag and Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(addr.as_bytes());
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(addr.as_bytes());
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE.start, value);
    }

    /// Everything after the 14-byte header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Finds the L3 header of an Ethernet frame, skipping up to two VLAN tags (an 802.1ad
/// `0x88a8` or 802.1Q `0x8100` outer tag and an 802.1Q inner tag, 4 bytes each).
///
/// Returns the inner EtherType and the offset at which the L3 header starts (`<= frame.len()`),
/// or `None` if the frame ends inside the Ethernet header or a tag. A frame with more than two
/// tags yields the third TPID as its EtherType, which callers treat as unknown.
#[inline]
pub fn l3_offset(frame: &[u8]) -> Option<(u16, usize)> {
    let mut off = field::ETHERTYPE.start;
    if frame.len() < off + 2 {
        return None;
    }
    let mut et = be16(frame, off);
    for _ in 0..2 {
        if et != ethertype::VLAN && et != ethertype::QINQ {
            break;
        }
        off += VLAN_TAG_LEN;
        if frame.len() < off + 2 {
            return None;
        }
        et = be16(frame, off);
    }
    Some((et, off + 2))
}

/// A parsed Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src_addr: MacAddr,
    /// Destination MAC.
    pub dst_addr: MacAddr,
    /// EtherType (the TPID for a tagged frame).
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Parses the header of a frame (checking its length).
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Length of the header [`emit`](Self::emit) writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes [`emit`](Self::emit) writes: just the header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 14 bytes of `frame` (panics if it is shorter).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[rustfmt::skip]
    static FRAME: [u8; 18] = [
        // destination 02:00:00:00:00:02
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        // source 02:00:00:00:00:01
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        // EtherType IPv4
        0x08, 0x00,
        // payload
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> EthernetRepr {
        EthernetRepr {
            src_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_addr: MacAddr([2, 0, 0, 0, 0, 2]),
            ethertype: ethertype::IPV4,
        }
    }

    #[test]
    fn getters() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.src_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), 0x0800);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(f.into_inner(), &FRAME[..]);
    }

    #[test]
    fn parse_and_emit() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f), Ok(repr()));
        let mut buf = [0u8; 18];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        repr().emit(&mut f);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(&buf[..], &FRAME[..]);
        assert_eq!(repr().buffer_len(), 14);
    }

    #[test]
    fn setters() {
        let mut buf = FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(MacAddr::BROADCAST);
        f.set_src_addr(MacAddr([1, 2, 3, 4, 5, 6]));
        f.set_ethertype(ethertype::ARP);
        assert_eq!(f.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(f.src_addr(), MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(f.ethertype(), 0x0806);
        assert_eq!(
            &buf[..14],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 8, 6]
        );
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME[..n]).unwrap_err(),
                WireError::Truncated
            );
            assert_eq!(
                EthernetRepr::parse(&EthernetFrame::new_unchecked(&FRAME[..n])),
                Err(WireError::Truncated)
            );
            assert_eq!(l3_offset(&FRAME[..n]), None);
        }
        let f = EthernetFrame::new_checked(&FRAME[..14]).unwrap();
        assert!(f.payload().is_empty());
    }

    #[test]
    fn l3_offset_untagged() {
        assert_eq!(l3_offset(&FRAME), Some((0x0800, 14)));
        // A header with nothing after it: the L3 offset is the end of the frame.
        assert_eq!(l3_offset(&FRAME[..14]), Some((0x0800, 14)));
    }

    #[test]
    fn l3_offset_tagged() {
        #[rustfmt::skip]
        let single = [
            0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1,
            0x81, 0x00, // TPID 802.1Q
            0x00, 0x64, // TCI: PCP 0, DEI 0, VID 100
            0x08, 0x06, // EtherType ARP
        ];
        assert_eq!(l3_offset(&single), Some((0x0806, 18)));
        for n in 14..18 {
            assert_eq!(l3_offset(&single[..n]), None, "n={n}");
        }
        #[rustfmt::skip]
        let double = [
            0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1,
            0x88, 0xa8, 0x00, 0x0a, // S-tag, VID 10
            0x81, 0x00, 0x00, 0x64, // C-tag, VID 100
            0x08, 0x00,             // IPv4
            0x45,
        ];
        assert_eq!(l3_offset(&double), Some((0x0800, 22)));
        assert_eq!(l3_offset(&double[..21]), None);
        #[rustfmt::skip]
        let triple = [
            0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1,
            0x88, 0xa8, 0x00, 0x0a,
            0x81, 0x00, 0x00, 0x64,
            0x81, 0x00, 0x00, 0x65,
            0x08, 0x00,
        ];
        // Only two tags are skipped: the third TPID comes back as the EtherType.
        assert_eq!(l3_offset(&triple), Some((0x8100, 22)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(f) = EthernetFrame::new_checked(&data[..]) {
                let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload());
                let r = EthernetRepr::parse(&f).unwrap();
                let mut out = [0u8; 14];
                r.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
                prop_assert_eq!(&out[..], &data[..14]);
            }
            if let Some((_, off)) = l3_offset(&data) {
                prop_assert!(off <= data.len());
            }
        }
    }
}
