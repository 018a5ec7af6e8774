//! The signature every generated packet carries: a magic, a sequence number and the TSC at
//! transmission, at the start of the innermost UDP payload (byte 0 of the payload the profile's
//! pod sends; VXLAN puts 50 bytes in front of it, so the receiver finds it by searching for the
//! magic — see [`find`]).
//!
//! Layout (18 bytes, so a 64-byte frame — 60 + FCS — has room for exactly one):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `PLBN` |
//! | 4..8 | sequence number (big endian) |
//! | 8..16 | TSC at transmission (big endian) |
//! | 16..18 | checksum compensation |
//!
//! Templates are built with sequence, TSC and compensation zero and a correct UDP checksum.
//! [`write`] chooses the compensation word so that the one's-complement sum of the 14 variable
//! bytes stays zero (it is 0xffff, the other zero): the UDP checksum stays correct without
//! being recomputed, so stamped packets can create conntrack state (the fast path verifies the
//! L4 checksum of a new Service flow).

/// The magic.
pub const MAGIC: [u8; 4] = *b"PLBN";
/// Bytes of the signature.
pub const LEN: usize = 18;

/// What a received packet carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sequence number.
    pub seq: u32,
    /// TSC at transmission.
    pub tsc: u64,
}

/// The template form: magic, then zeros.
pub fn template() -> [u8; LEN] {
    let mut s = [0u8; LEN];
    s[..4].copy_from_slice(&MAGIC);
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Writes `seq` and `tsc` into the signature at `buf[..LEN]` (which holds a template's), with
/// the compensation word that keeps the enclosing UDP checksum valid.
#[inline]
pub fn write(buf: &mut [u8], seq: u32, tsc: u64) {
    let sb = seq.to_be_bytes();
    let tb = tsc.to_be_bytes();
    buf[4..8].copy_from_slice(&sb);
    buf[8..16].copy_from_slice(&tb);
    let mut sum: u32 = 0;
    for w in sb.chunks_exact(2).chain(tb.chunks_exact(2)) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let comp = !fold(sum);
    buf[16..18].copy_from_slice(&comp.to_be_bytes());
}

/// Reads the signature at `buf[..LEN]` (no magic check).
#[inline]
pub fn read(buf: &[u8]) -> Option<Stamp> {
    let b = buf.get(..LEN)?;
    Some(Stamp {
        seq: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        tsc: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
    })
}

/// Finds the signature in a frame: first at `hint` (the offset where this profile's output
/// carries it), else by searching for the magic. Returns the offset.
#[inline]
pub fn find(frame: &[u8], hint: usize) -> Option<usize> {
    if frame.get(hint..hint + 4) == Some(&MAGIC[..]) && frame.len() >= hint + LEN {
        return Some(hint);
    }
    let end = frame.len().checked_sub(LEN)?;
    (0..=end).find(|&i| frame[i..i + 4] == MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastpath::wire::checksum;
    use fastpath::wire::frame::{udp_frame, Addrs};
    use fastpath::wire::MacAddr;
    use std::net::Ipv4Addr;

    fn udp_checksum_ok(f: &[u8]) -> bool {
        let ip = &f[14..34];
        let l4 = &f[34..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(l4);
        if pseudo.len() % 2 == 1 {
            pseudo.push(0);
        }
        checksum::sum(&pseudo) == 0xffff
    }

    #[test]
    fn stamping_keeps_the_udp_checksum_valid() {
        let a = Addrs::new(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 244, 1, 2),
            Ipv4Addr::new(10, 244, 2, 2),
        );
        let f = udp_frame(&a, 1234, 7777, &template());
        assert!(udp_checksum_ok(&f));
        let mut g = f.clone();
        for (seq, tsc) in [
            (0, 0),
            (1, 2),
            (u32::MAX, u64::MAX),
            (0xdead_beef, 0x0123_4567_89ab_cdef),
            (0xffff, 0xffff_0000_ffff),
        ] {
            write(&mut g[42..], seq, tsc);
            assert!(udp_checksum_ok(&g), "seq {seq} tsc {tsc}");
            assert_eq!(read(&g[42..]), Some(Stamp { seq, tsc }));
            assert_eq!(find(&g, 42), Some(42));
            assert_eq!(find(&g, 0), Some(42));
        }
        assert_eq!(find(&g[..50], 42), None);
    }
}
