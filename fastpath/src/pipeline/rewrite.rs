//! In-place header rewrites with incremental checksum updates (RFC 1624 eqn. 3): the fast path
//! changes only the fields that change and never recomputes a checksum from scratch.

use crate::wire::{be16, be32, checksum, ipproto, put16, put32};

/// Offsets inside an IPv4 header.
pub(crate) mod ip {
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const CSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Offset of the checksum field inside the L4 header, for protocols whose checksum covers the
/// pseudo header; None for others.
#[inline(always)]
fn l4_csum_off(proto: u8) -> Option<usize> {
    match proto {
        ipproto::TCP => Some(16),
        ipproto::UDP => Some(6),
        _ => None,
    }
}

#[inline(always)]
fn fix_l4(d: &mut [u8], proto: u8, l4: usize, f: impl Fn(u16) -> u16) {
    if let Some(off) = l4_csum_off(proto) {
        let at = l4 + off;
        if at + 2 > d.len() {
            return;
        }
        let old = be16(d, at);
        if proto == ipproto::UDP && old == 0 {
            return; // RFC 768: no checksum; leave it absent.
        }
        let mut new = f(old);
        if proto == ipproto::UDP && new == 0 {
            new = 0xffff; // RFC 768: a computed zero is sent as all ones.
        }
        put16(d, at, new);
    }
}

/// Decrements the TTL at IPv4 header `l3`, updating the header checksum. The caller has checked
/// that the TTL is above 1.
#[inline(always)]
pub(crate) fn dec_ttl(d: &mut [u8], l3: usize) {
    // The TTL is the high byte of a 16-bit word, so the header sum drops by 0x0100 and the
    // checksum rises by 0x0100 with end-around carry — Linux's `ip_decrease_ttl`, which (like a
    // full recomputation) never yields 0xffff. The caller has checked TTL > 1.
    d[l3 + ip::TTL] = d[l3 + ip::TTL].wrapping_sub(1);
    let c = u32::from(be16(d, l3 + ip::CSUM)) + 0x0100;
    put16(d, l3 + ip::CSUM, (c + u32::from(c >= 0xffff)) as u16);
}

/// Rewrites the source address (IPv4 checksum and the L4 pseudo-header checksum).
#[inline(always)]
pub(crate) fn set_src_ip(d: &mut [u8], l3: usize, l4: usize, new: u32) {
    set_addr(d, l3, l4, ip::SRC, new)
}

/// Rewrites the destination address (IPv4 checksum and the L4 pseudo-header checksum).
#[inline(always)]
pub(crate) fn set_dst_ip(d: &mut [u8], l3: usize, l4: usize, new: u32) {
    set_addr(d, l3, l4, ip::DST, new)
}

#[inline(always)]
fn set_addr(d: &mut [u8], l3: usize, l4: usize, field: usize, new: u32) {
    let old = be32(d, l3 + field);
    if old == new {
        return;
    }
    put32(d, l3 + field, new);
    let c = be16(d, l3 + ip::CSUM);
    put16(d, l3 + ip::CSUM, checksum::update32(c, old, new));
    let proto = d[l3 + ip::PROTO];
    fix_l4(d, proto, l4, |c| checksum::update32(c, old, new));
}

/// Rewrites the L4 source (`dst == false`) or destination port, updating the L4 checksum.
#[inline(always)]
pub(crate) fn set_port(d: &mut [u8], l3: usize, l4: usize, dst: bool, new: u16) {
    let at = l4 + if dst { 2 } else { 0 };
    let old = be16(d, at);
    if old == new {
        return;
    }
    put16(d, at, new);
    let proto = d[l3 + ip::PROTO];
    fix_l4(d, proto, l4, |c| checksum::update16(c, old, new));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn dec_ttl_matches_a_full_recomputation(mut h in prop::array::uniform20(any::<u8>()), ttl in 2u8..=255) {
            h[ip::TTL] = ttl;
            h[ip::CSUM] = 0;
            h[ip::CSUM + 1] = 0;
            let c = checksum::checksum(&h);
            h[ip::CSUM..ip::CSUM + 2].copy_from_slice(&c.to_be_bytes());
            let mut want = h;
            want[ip::TTL] = ttl - 1;
            want[ip::CSUM] = 0;
            want[ip::CSUM + 1] = 0;
            let c = checksum::checksum(&want);
            want[ip::CSUM..ip::CSUM + 2].copy_from_slice(&c.to_be_bytes());
            dec_ttl(&mut h, 0);
            prop_assert_eq!(h, want);
        }
    }
}
