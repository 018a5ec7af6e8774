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
//! the receiver judges the I flag.

use super::{be32, put32, Result, WireError};

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: usize = 4;
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
/// The I flag.
pub const FLAG_I: u8 = 0x08;

/// The outer UDP source port for an inner flow hash: in 49152–65535 as RFC 7348 §5
/// recommends ("calculated using a hash of fields from the inner packet ... in the
/// dynamic/private port range 49152-65535"), so the underlay's ECMP spreads flows while each
/// flow stays on one path. The high bits are folded into the low 14 so every bit of the hash
/// counts.
#[inline(always)]
pub fn source_port(flow_hash: u32) -> u16 {
    let h = flow_hash ^ (flow_hash >> 14) ^ (flow_hash >> 28);
    49152 | (h as u16 & 0x3fff)
}

/// A zero-copy view of a VXLAN header.
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

    /// Buffer under 8 bytes: `Truncated`.
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
        &self.buffer.as_ref()[HEADER_LEN..]
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
}

/// A parsed VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    /// The VNI.
    pub vni: u32,
}

impl VxlanRepr {
    /// Parses a header; `Malformed` if the I flag is clear.
    pub fn parse<T: AsRef<[u8]>>(h: &VxlanHeader<T>) -> Result<VxlanRepr> {
        h.check_len()?;
        if !h.i_flag() {
            return Err(WireError::Malformed);
        }
        Ok(VxlanRepr { vni: h.vni() })
    }

    /// Header length.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes flags 0x08, the VNI and zeroed reserved fields.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut VxlanHeader<T>) {
        h.buffer.as_mut()[..HEADER_LEN].fill(0);
        h.set_flags(FLAG_I);
        h.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const BYTES: [u8; 8] = [
        0x08, 0x00, 0x00, 0x00, // I flag, reserved
        0x12, 0x34, 0x56, 0x00, // VNI 0x123456, reserved
    ];

    #[test]
    fn parse_and_emit() {
        let h = VxlanHeader::new_checked(&BYTES[..]).unwrap();
        assert!(h.i_flag());
        assert_eq!(h.flags(), 0x08);
        assert_eq!(h.vni(), 0x123456);
        let r = VxlanRepr::parse(&h).unwrap();
        let mut buf = [0xffu8; 8];
        r.emit(&mut VxlanHeader::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
        for n in 0..HEADER_LEN {
            assert_eq!(
                VxlanHeader::new_checked(&BYTES[..n]).unwrap_err(),
                WireError::Truncated
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
    fn source_port_in_dynamic_range_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u32 {
            let p = source_port(i.wrapping_mul(0x9e37_79b9));
            assert!(p >= 49152);
            seen.insert(p);
        }
        assert!(
            seen.len() > 15_000,
            "uses most of the 16384 ports: {}",
            seen.len()
        );
        // High bits alone change the port.
        assert_ne!(source_port(0x1000_0000), source_port(0));
    }
}
