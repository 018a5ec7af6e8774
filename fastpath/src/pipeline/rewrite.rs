//! In-place header rewrites with incremental checksum updates (RFC 1624 eqn. 3): the fast path
//! never recomputes a checksum from scratch; a field rewritten with its own value adds nothing
//! to the checksum delta.

use crate::tables::conntrack::PackedKey;
use crate::wire::{be16, checksum, ipproto, put16};

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
pub(crate) fn l4_csum_off(proto: u8) -> Option<usize> {
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
    // full recomputation) never yields 0xffff. As Linux does, on the checksum as it is in
    // memory, adding 0x0100 as it is in memory: one's complement sums do not depend on byte
    // order (RFC 1071 §2(B)), so no swap either way. The caller has checked TTL > 1.
    d[l3 + ip::TTL] = d[l3 + ip::TTL].wrapping_sub(1);
    let at = l3 + ip::CSUM;
    let c = u32::from(u16::from_ne_bytes([d[at], d[at + 1]]))
        + u32::from(u16::from_ne_bytes(0x0100u16.to_be_bytes()));
    let c = (c + u32::from(c >= 0xffff)) as u16;
    d[at..at + 2].copy_from_slice(&c.to_ne_bytes());
}

/// The NAT rewrite: the packet's addresses become `to`'s and, when it has ports (`ports`: a
/// TCP/UDP header that is whole, not a later fragment), its ports too. The checksums are
/// updated by the rewrite's deltas — the IPv4 header's (the addresses) and the TCP/UDP one's
/// (addresses through the pseudo header, and ports), folded: [`FlowKey::rewrite_deltas`](crate::tables::conntrack::FlowKey::rewrite_deltas) from the packet's tuple to `to`, or any 16-bit
/// values congruent to them modulo `0xffff` and, like them, not zero (conntrack keeps them per
/// flow: `Entry::nat_deltas`) — RFC 1624 eqn. 3 once per checksum. A UDP checksum of zero
/// (none, RFC 768) stays zero; a computed zero is sent as `0xffff`.
#[inline(always)]
pub(crate) fn nat(
    d: &mut [u8],
    (l3, l4, proto): (usize, usize, u8),
    to: PackedKey,
    ports: bool,
    (ip_delta, l4_delta): (u16, u16),
) {
    let Some(h) = d.get_mut(l3..l3 + 20) else {
        return;
    };
    h[ip::SRC..ip::DST + 4].copy_from_slice(&to.addrs_wire());
    put16(
        h,
        ip::CSUM,
        checksum::apply_folded(be16(h, ip::CSUM), ip_delta),
    );
    let Some(off) = l4_csum_off(proto).filter(|_| ports) else {
        return;
    };
    let Some(t) = d.get_mut(l4..l4 + off + 2) else {
        return;
    };
    t[..4].copy_from_slice(&to.ports_wire());
    let old = be16(t, off);
    if proto == ipproto::UDP && old == 0 {
        return; // RFC 768: no checksum; leave it absent.
    }
    let new = checksum::apply_folded(old, l4_delta);
    // RFC 768: a computed zero is sent as all ones (TCP's checksum is never zero here).
    put16(t, off, if new == 0 { 0xffff } else { new });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::counters::Counters;
    use crate::tables::conntrack::{Conntrack, Dir, FlowKey, NewFlow, Timeouts};
    use crate::wire::frame::{self, Addrs};
    use crate::wire::MacAddr;
    use core::net::Ipv4Addr;

    /// A TCP or UDP frame (IPv4 at 14, TCP/UDP at 34) carrying `k`, checksums computed.
    fn frame_of(k: &FlowKey, payload: &[u8], udp_csum: bool) -> Vec<u8> {
        let a = Addrs::new(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::from(k.src),
            Ipv4Addr::from(k.dst),
        );
        if k.proto == ipproto::TCP {
            frame::tcp_frame(&a, k.sport, k.dport, 7, 9, 0x18, payload)
        } else {
            let mut f = frame::udp_frame(&a, k.sport, k.dport, payload);
            if !udp_csum {
                f[40..42].fill(0);
            }
            f
        }
    }

    fn key(src: u32, dst: u32, sport: u16, dport: u16, tcp: bool) -> FlowKey {
        let proto = if tcp { ipproto::TCP } else { ipproto::UDP };
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
        }
    }

    proptest! {
        /// The rewrite by the tuples' deltas gives the frame built with the new tuple from
        /// scratch, byte for byte (a UDP frame without a checksum keeps none).
        #[test]
        fn nat_matches_a_frame_built_with_the_new_tuple(
            a in any::<[u32; 4]>(), p in any::<[u16; 4]>(), tcp in any::<bool>(),
            udp_csum in any::<bool>(), payload in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let from = key(a[0], a[1], p[0], p[1], tcp);
            let to = key(a[2], a[3], p[2], p[3], tcp);
            let mut d = frame_of(&from, &payload, udp_csum);
            nat(&mut d, (14, 34, from.proto), to.packed(), true, from.rewrite_deltas(&to));
            prop_assert_eq!(d, frame_of(&to, &payload, udp_csum));
        }

        /// Conntrack's stored deltas, both directions: a packet of the original tuple becomes
        /// the reversed reply tuple and a reply becomes the reversed original tuple, exactly as
        /// when built from scratch. SNAT flows change all four fields, DNAT two.
        #[test]
        fn stored_deltas_rewrite_both_directions(
            a in any::<[u32; 3]>(), p in any::<[u16; 3]>(), tcp in any::<bool>(),
            snat in any::<bool>(), payload in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let orig = key(a[0], a[1], p[0], p[1], tcp);
            // The backend (a[2]:p[2]) answers the client, or the SNAT address (a[1]) it saw.
            let reply = if snat {
                key(a[2], a[1], p[2], p[1] ^ 1, tcp)
            } else {
                key(a[2], a[0], p[2], p[0], tcp)
            };
            let c = Counters::default();
            let mut t = Conntrack::new(16, Timeouts::default(), 0x0af4_0100, 256);
            let nf = NewFlow { ep_slot: 0, ep_gen: 0, flags: 0, client_mac: [0; 6] };
            let Ok(i) = t.insert(orig, reply, nf, 0, 0, &c) else {
                return Ok(()); // orig == reply: not a flow
            };
            let e = t.entry(i);
            for (dir, k) in [(Dir::Orig, orig), (Dir::Reply, reply)] {
                let to = e.rewrite_for(dir);
                let mut d = frame_of(&k, &payload, true);
                nat(&mut d, (14, 34, k.proto), e.rewrite_packed(dir), true, e.nat_deltas(dir));
                prop_assert_eq!(d, frame_of(&to, &payload, true), "{:?}", dir);
            }
        }

        #[test]
        fn dec_ttl_matches_a_full_recomputation_and_the_big_endian_update(mut h in prop::array::uniform20(any::<u8>()), ttl in 2u8..=255) {
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

    /// The update made in memory byte order is the big-endian one (Linux's, on the value) for
    /// every checksum, the carry out of either byte included.
    #[test]
    fn dec_ttl_in_memory_order_is_the_big_endian_update_for_every_checksum() {
        for csum in 0..=u16::MAX {
            let mut h = [0u8; 20];
            h[ip::TTL] = 64;
            h[ip::CSUM..ip::CSUM + 2].copy_from_slice(&csum.to_be_bytes());
            dec_ttl(&mut h, 0);
            let c = u32::from(csum) + 0x0100;
            let want = (c + u32::from(c >= 0xffff)) as u16;
            assert_eq!(be16(&h, ip::CSUM), want, "{csum:#06x}");
            assert_eq!(h[ip::TTL], 63);
        }
    }
}
