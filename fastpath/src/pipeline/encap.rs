//! VXLAN encapsulation (RFC 7348 §5) with the remote node's precomputed outer header.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason, Event};
use crate::pipeline::rewrite::dec_ttl;
use crate::pipeline::{icmp, Ctx, Ip4};
use crate::tables::routes::{tmpl, NodeRoute, TEMPLATE_LEN};
use crate::wire::{checksum, put16, vxlan};

/// Encapsulates the inner frame (Ethernet at 0, IPv4 at 14) towards `r`.
///
/// The inner packet is routed (TTL − 1), its Ethernet header becomes our VTEP MAC → the remote
/// VTEP MAC (a Linux VXLAN device drops any other inner destination), then the 50-byte outer
/// header is prepended from the template. Only four fields vary per packet: outer IPv4 total
/// length and checksum (the template's partial sum plus the length, folded), UDP length, and UDP
/// source port from the inner flow hash in 49152–65535 (RFC 7348 §5), so that the underlay's
/// ECMP spreads flows and keeps each in order. Outer UDP checksum zero (RFC 7348 §5, IPv4).
#[inline(always)]
pub(crate) fn encap<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &Ip4,
    r: &NodeRoute,
) -> Disposition {
    if ip.ttl <= 1 {
        return Disposition::Drop(DropReason::TtlExpired);
    }
    if !fits(cx, ip.end - ip.l3) {
        // The pod MTU is the underlay's minus 50; a bigger packet would be fragmented or lost
        // on the underlay. Tell the sender (RFC 1191) instead of letting it vanish.
        return if ip.df {
            icmp::frag_needed(cx, pkt)
        } else {
            Disposition::Drop(DropReason::TooBig)
        };
    }
    push(cx, pkt, r, vxlan::source_port(ip.flow_hash()))
}

/// True if an inner IPv4 packet of `ip_len` bytes fits the underlay MTU once encapsulated.
#[inline(always)]
pub(crate) fn fits(cx: &Ctx<'_>, ip_len: usize) -> bool {
    ip_len <= max_ip_len(cx.t.node.underlay_mtu)
}

/// The longest inner IPv4 packet an underlay MTU of `underlay_mtu` carries once encapsulated
/// (0 for an MTU below the overhead, which then carries no packet, every one having a header).
#[inline(always)]
pub(crate) fn max_ip_len(underlay_mtu: u16) -> usize {
    usize::from(underlay_mtu).saturating_sub(vxlan::ENCAP_OVERHEAD)
}

/// The encapsulation itself, of a frame [`encap`]'s checks passed (TTL above 1, [`fits`]):
/// inner TTL − 1, outer headers from `r`'s template with UDP source port `sport`.
#[inline(always)]
pub(crate) fn push<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    r: &NodeRoute,
    sport: u16,
) -> Disposition {
    let Some(d) = pkt.prepend(vxlan::ENCAP_OVERHEAD) else {
        return Disposition::Drop(DropReason::NoHeadroom);
    };
    let total = (d.len() - tmpl::IP) as u16;
    // The template covers the outer headers and the inner Ethernet header; the inner IPv4
    // header follows at ip.l3 = 14 of the inner frame (every caller routes untagged frames),
    // so fixed-size views make the writes free of bounds checks.
    let Some((h, inner)) = d.split_first_chunk_mut::<TEMPLATE_LEN>() else {
        return Disposition::Drop(DropReason::NoHeadroom);
    };
    let Some(inner_ip) = inner.first_chunk_mut::<20>() else {
        return Disposition::Drop(DropReason::NoHeadroom);
    };
    dec_ttl(inner_ip, 0);
    *h = r.template.bytes;
    put16(h, tmpl::IP_LEN, total);
    put16(
        h,
        tmpl::IP_CSUM,
        checksum::finish_with(r.template.ip_sum_base, total),
    );
    put16(h, tmpl::UDP_SPORT, sport);
    put16(h, tmpl::UDP_LEN, total - 20);
    cx.c.inc(Event::Encap);
    Disposition::ToUplink
}
