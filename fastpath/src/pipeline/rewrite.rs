//! In-place header rewrites with incremental checksum updates (RFC 1624 eqn. 3): the fast path
//! never recomputes a checksum from scratch; a field rewritten with its own value adds nothing
//! to the checksum delta.

use crate::tables::conntrack::FlowKey;
use crate::wire::{be16, checksum, ipproto, put16, put32};

/// Offsets inside an IPv4 header.
pub(crate) mod ip {
    pub const TTL: usize = 8;
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

/// The NAT rewrite: the packet's addresses become `to.src`/`to.dst` and, when it has ports
/// (`ports`: a TCP/UDP header that is whole, not a later fragment), its ports become
/// `to.sport`/`to.dport`. `from` is the tuple the packet carries now. The IPv4 checksum gets one
/// combined delta (the addresses), the TCP/UDP checksum another (addresses through the pseudo
/// header, and ports) — RFC 1624 eqn. 3 once per checksum instead of once per field. A UDP
/// checksum of zero (none, RFC 768) stays zero; a computed zero is sent as `0xffff`.
#[inline(always)]
pub(crate) fn nat(
    d: &mut [u8],
    (l3, l4, proto): (usize, usize, u8),
    from: &FlowKey,
    to: &FlowKey,
    ports: bool,
) {
    let Some(h) = d.get_mut(l3..l3 + 20) else {
        return;
    };
    let addrs = checksum::delta32(from.src, to.src) + checksum::delta32(from.dst, to.dst);
    put32(h, ip::SRC, to.src);
    put32(h, ip::DST, to.dst);
    put16(h, ip::CSUM, checksum::apply_delta(be16(h, ip::CSUM), addrs));
    let Some(off) = l4_csum_off(proto).filter(|_| ports) else {
        return;
    };
    let Some(t) = d.get_mut(l4..l4 + off + 2) else {
        return;
    };
    put16(t, 0, to.sport);
    put16(t, 2, to.dport);
    let old = be16(t, off);
    if proto == ipproto::UDP && old == 0 {
        return; // RFC 768: no checksum; leave it absent.
    }
    let delta =
        addrs + checksum::delta16(from.sport, to.sport) + checksum::delta16(from.dport, to.dport);
    let new = checksum::apply_delta(old, delta);
    // RFC 768: a computed zero is sent as all ones (TCP's checksum is never zero here).
    put16(t, off, if new == 0 { 0xffff } else { new });
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
