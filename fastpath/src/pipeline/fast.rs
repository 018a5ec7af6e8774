//! Fast lanes: the common frames of each ingress, recognised with one length check and
//! fixed-offset reads (untagged Ethernet, IPv4 without options, not a fragment), forwarded by
//! the same route/encap/decap/NAT steps as the general path.
//!
//! A lane either takes a frame whole — and then produces exactly what the general path would:
//! the same disposition, bytes and counters (`tests/fast_lanes.rs` runs both on valid and
//! mutated frames and compares) — or returns `None`, and the general path (`pod.rs`,
//! `uplink.rs`) handles the frame from the start. A `None` leaves the frame as it was but for
//! trimmed Ethernet padding, and conntrack as the general path's own first lookup would: a
//! Service lookup that missed may have dropped an expired or purged entry (counted once), after
//! which the general path's lookup misses too and starts the flow. Everything unusual goes the
//! general way: VLAN tags, IP options, fragments, ARP, new Service flows, NAT replies, bad
//! checksums, drops of every kind.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, Event};
use crate::pipeline::{
    encap, is_multicast_or_broadcast, nat, route, trim_padding, Ctx, Ip4, MAX_FRAME_LEN,
};
use crate::tables::pods::PortOwner;
use crate::wire::{checksum, ipproto, vxlan};

/// The IPv4 header at offset `l3` of `d`, if it is the plain kind: version 4 without options,
/// not a fragment, a consistent total length, a correct header checksum. Ports are read for
/// TCP/UDP whose header fits, as `parse_ipv4` does. It repeats `parse_ipv4`'s decoding on
/// purpose: sharing one decoder (tried) cost encap and decap ~20 instructions a packet
/// (callgrind), the fragment and option cases this lane never takes.
#[inline(always)]
fn plain_ipv4(d: &[u8], l3: usize) -> Option<Ip4> {
    let h: &[u8; 20] = d.get(l3..l3 + 20)?.try_into().ok()?;
    if h[0] != 0x45 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let fo = u16::from_be_bytes([h[6], h[7]]);
    let end = l3 + total;
    if total < 20 || end > d.len() || fo & 0x3fff != 0 {
        return None;
    }
    if !checksum::ipv4_header_ok(h) {
        return None;
    }
    let l4 = l3 + 20;
    let proto = h[9];
    let (ports, tcp_flags) = match proto {
        ipproto::TCP if total >= 40 => {
            let t: &[u8; 14] = d.get(l4..l4 + 14)?.try_into().ok()?;
            (
                Some((
                    u16::from_be_bytes([t[0], t[1]]),
                    u16::from_be_bytes([t[2], t[3]]),
                )),
                t[13],
            )
        }
        ipproto::UDP if total >= 28 => {
            let u: &[u8; 4] = d.get(l4..l4 + 4)?.try_into().ok()?;
            (
                Some((
                    u16::from_be_bytes([u[0], u[1]]),
                    u16::from_be_bytes([u[2], u[3]]),
                )),
                0,
            )
        }
        _ => (None, 0),
    };
    Some(Ip4 {
        l3,
        l4,
        end,
        src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
        proto,
        ttl: h[8],
        df: fo & 0x4000 != 0,
        frag: false,
        ports,
        tcp_flags,
    })
}

/// What the pod lane checks a port's frames against, prepared once per burst from the port's
/// owner.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PodLane {
    /// The pod's IP, host order.
    ip: u32,
    /// Ethernet bytes 6..14 of the pod's IPv4 frames — its MAC, then EtherType 0x0800 — as one
    /// native-endian word: the source and type checks are one compare.
    l2: u64,
}

impl PodLane {
    pub fn new(owner: &PortOwner) -> PodLane {
        let m = owner.mac.0;
        PodLane {
            ip: owner.ip,
            l2: u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0x08, 0x00]),
        }
    }
}

/// A frame from the port's pod (`lane`) to a local pod or through the tunnel, or of an
/// established Service flow, not touching a flow the pod is the backend of. `backend`: whether
/// the pod is some NATed flow's backend (`Conntrack::pod_is_backend` of the port's pod, read
/// once per burst by the caller, and again after each packet the general path took).
#[inline(always)]
pub(crate) fn pod<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    lane: &PodLane,
    backend: bool,
    pkt: &mut B,
) -> Option<Disposition> {
    let d = pkt.data();
    if d.len() > MAX_FRAME_LEN {
        return None;
    }
    let eth: &[u8; 14] = d.first_chunk()?;
    let (_, l2) = eth.split_last_chunk::<8>()?;
    if u64::from_ne_bytes(*l2) != lane.l2 {
        return None;
    }
    let mut ip = plain_ipv4(d, 14)?;
    let t = cx.t;
    if ip.src != lane.ip || is_multicast_or_broadcast(ip.dst) {
        return None;
    }
    if t.node.service_cidr.contains_u32(ip.dst) {
        // An established Service flow: NATed as its conntrack entry says, then routed. A miss
        // — a new flow, or an entry this very lookup found expired or purged (counted once,
        // here) — goes to the general path, which looks up again and starts the flow.
        ip.ports?;
        trim_padding(pkt, &ip);
        nat::apply(cx, pkt, &mut ip)?;
        return Some(route::route(cx, pkt, &ip));
    }
    if ip.ports.is_some() && backend {
        return None;
    }
    if let Some(pod) = t.pods.lookup(ip.dst) {
        trim_padding(pkt, &ip);
        return Some(route::deliver_local(cx, pkt, &ip, *pod));
    }
    if let Some(r) = t.routes.lookup(ip.dst) {
        trim_padding(pkt, &ip);
        return Some(encap::encap(cx, pkt, &ip, r));
    }
    None
}

/// A VXLAN frame from a known node to a local pod that is no NATed flow's client: checked as
/// `decap.rs` checks it (outer UDP checksum zero, I flag, VNI, source VTEP, inner MAC and
/// EtherType), decapsulated and delivered.
#[inline(always)]
pub(crate) fn uplink<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Option<Disposition> {
    const INNER: usize = 14 + 20 + 8 + 8;
    let d = pkt.data();
    if d.len() > MAX_FRAME_LEN {
        return None;
    }
    let h: &[u8; INNER + 14] = d.get(..INNER + 14)?.try_into().ok()?;
    let node = &cx.t.node;
    if h[12..14] != [0x08, 0x00] {
        return None;
    }
    let outer = plain_ipv4(d, 14)?;
    // UDP to port 4789 with a zero checksum (what Linux and podlane send over IPv4), a
    // length that covers the VXLAN header and an inner Ethernet header.
    let udp_len = usize::from(u16::from_be_bytes([h[38], h[39]]));
    if outer.proto != ipproto::UDP
        || outer.dst != node.underlay_ip.to_bits()
        || outer.ports.map(|p| p.1) != Some(vxlan::UDP_PORT)
        || h[40..42] != [0, 0]
        || udp_len < 8 + 8 + 14
        || outer.l4 + udp_len > outer.end
    {
        return None;
    }
    // VXLAN: the I flag (reserved bits ignored on receipt), our VNI.
    let vni = u32::from_be_bytes([0, h[46], h[47], h[48]]);
    if h[42] & 0x08 == 0 || vni != node.vni {
        return None;
    }
    if h[INNER..INNER + 6] != *node.vtep_mac.as_bytes() || h[INNER + 12..INNER + 14] != [8, 0] {
        return None;
    }
    let inner_end = outer.l4 + udp_len;
    let inner = plain_ipv4(&d[..inner_end], INNER + 14)?;
    if inner.ports.is_some() && cx.ct.pod_is_client(inner.dst) {
        return None;
    }
    let pod = *cx.t.pods.lookup(inner.dst)?;
    if !cx.cache.known_vtep(cx.t, outer.src) {
        return None;
    }
    // Committed: strip the outer headers, and any padding after the inner packet (what
    // `decap.rs` and then `trim_padding` do, in one trim), deliver.
    let len = d.len();
    pkt.trim(len - inner.end);
    pkt.adj(INNER);
    cx.c.inc(Event::Decap);
    let ip = Ip4 {
        l3: 14,
        l4: 34,
        end: inner.end - INNER,
        ..inner
    };
    Some(route::deliver_local(cx, pkt, &ip, pod))
}
