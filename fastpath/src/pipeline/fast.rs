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
//! checksums, a TTL of 1, packets too big for the tunnel, drops of every kind.
//!
//! Written for the registers: a lane parses no more than it decides on, reads the rest (the
//! ports, the tuple the VXLAN source port hashes) from the frame where it uses it, and counts
//! the disposition where it is made (`tx`), so a constant one costs an increment — each value
//! kept across the table lookups was a spill and a reload (callgrind, docs/PERFORMANCE.md).

use crate::buf::PacketBuf;
use crate::cidr::Ipv4Cidr;
use crate::counters::{Disposition, Event};
use crate::pipeline::{count, encap, nat, route, trim_padding, Ctx, Ip4, Tally, MAX_FRAME_LEN};
use crate::tables::conntrack::{Conntrack, PackedKey};
use crate::tables::pods::PortOwner;
use crate::wire::{checksum, ipproto, vxlan};

/// The IPv4 header at offset `l3` of `d`, if it is the plain kind: version 4 without options,
/// not a fragment, a consistent total length, a correct header checksum. Without the ports
/// (`None`, no TCP flags): the lanes read them where they need them ([`read_ports`],
/// [`has_ports`], the flow hash). It repeats `parse_ipv4`'s decoding on purpose: sharing one
/// decoder (tried) cost encap and decap ~20 instructions a packet (callgrind), the fragment
/// and option cases the lanes never take.
#[inline(always)]
fn plain_header(d: &[u8], l3: usize) -> Option<Ip4> {
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
    Some(Ip4 {
        l3,
        l4: l3 + 20,
        end,
        src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
        proto: h[9],
        ttl: h[8],
        df: fo & 0x4000 != 0,
        frag: false,
        ports: None,
        tcp_flags: 0,
    })
}

/// The ports (and TCP flags) of a [`plain_header`], for TCP/UDP whose header is whole, as
/// `parse_ipv4` reads them. `None` only if `d` is shorter than `ip` says (never, as
/// `plain_header` checked it).
#[inline(always)]
fn read_ports(d: &[u8], ip: &mut Ip4) -> Option<()> {
    if !has_ports(ip.proto, ip.end - ip.l3) {
        return Some(());
    }
    let p: &[u8; 4] = d.get(ip.l4..ip.l4 + 4)?.try_into().ok()?;
    ip.ports = Some((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    ));
    ip.tcp_flags = tcp_flags(d, ip)?;
    Some(())
}

/// The TCP flags of a [`plain_header`] whose TCP header is whole (0 for other protocols).
#[inline(always)]
fn tcp_flags(d: &[u8], ip: &Ip4) -> Option<u8> {
    match ip.proto {
        ipproto::TCP => d.get(ip.l4 + 13).copied(),
        _ => Some(0),
    }
}

/// True if a TCP/UDP packet of IPv4 length `total` (no options) has its whole L4 header, i.e.
/// [`read_ports`] would find ports: one table load and a compare, no branch per protocol.
#[inline(always)]
fn has_ports(proto: u8, total: usize) -> bool {
    total >= usize::from(PORTS_FROM[usize::from(proto)])
}

/// The IPv4 length (no options) from which a packet of each protocol has ports: a whole TCP
/// or UDP header; never for the others.
static PORTS_FROM: [u16; 256] = {
    let mut t = [u16::MAX; 256];
    t[ipproto::TCP as usize] = 20 + 20;
    t[ipproto::UDP as usize] = 20 + 8;
    t
};

/// What the pod lane checks a port's frames against, prepared once per burst from the port's
/// owner and the node, so that no check reloads the tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PodLane {
    /// The pod's IP as its four bytes on the wire read as a native-endian word (compared as
    /// read, not byte-swapped).
    ip_wire: u32,
    /// Ethernet bytes 6..14 of the pod's IPv4 frames — its MAC, then EtherType 0x0800 — as one
    /// native-endian word: the source and type checks are one compare.
    l2: u64,
    /// The longest IPv4 packet the tunnel carries (`encap::fits`).
    max_ip_len: usize,
    /// The Service CIDR.
    services: Ipv4Cidr,
    /// The gateway's half of the Ethernet header of frames to pods (`route::gateway_l2`).
    gateway_l2: u64,
}

impl PodLane {
    pub fn new(owner: &PortOwner, t: &crate::update::Tables) -> PodLane {
        let node = &t.node;
        PodLane {
            ip_wire: u32::from_ne_bytes(owner.ip.to_be_bytes()),
            l2: route::ipv4_src_l2(owner.mac),
            max_ip_len: encap::max_ip_len(node.underlay_mtu),
            services: node.service_cidr,
            gateway_l2: route::gateway_l2(node),
        }
    }
}

/// A frame from the port's pod (`lane`) to a local pod or through the tunnel, or of an
/// established Service flow, not touching a flow the pod is the backend of. `backend`: whether
/// the pod is some NATed flow's backend (`Conntrack::pod_is_backend` of the port's pod, read
/// once per burst by the caller, and again after each packet the general path took). `hash`:
/// the conntrack hash of the frame's tuple if the caller computed it already
/// ([`prefetch_service_slot`]). A disposition it returns is counted in `tx` already
/// (`pipeline::count`).
#[inline(always)]
pub(crate) fn pod<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    lane: &PodLane,
    backend: bool,
    hash: Option<u32>,
    pkt: &mut B,
    tx: &mut Tally,
) -> Option<Disposition> {
    let d = pkt.data();
    if d.len() > MAX_FRAME_LEN {
        return None;
    }
    // Ethernet, the IPv4 header, and the first four bytes after it (where the ports are, when
    // there are ports): a frame shorter than that (38 bytes, below Ethernet's minimum) goes
    // the general way.
    let f: &[u8; 38] = d.first_chunk()?;
    let (eth, _) = f.split_first_chunk::<14>()?;
    let (_, l2) = eth.split_last_chunk::<8>()?;
    if u64::from_ne_bytes(*l2) != lane.l2 {
        return None;
    }
    let mut ip = plain_header(d, 14)?;
    let t = cx.t;
    // What the general path checks first — a TTL of 1, a packet too big for the tunnel — sends
    // the frame that way (which drops it, or answers with ICMP), and so does every destination
    // from 224.0.0.0 up (multicast, reserved, broadcast: one compare).
    let [.., s0, s1, s2, s3, _, _, _, _, _, _, _, _] = *f;
    if u32::from_ne_bytes([s0, s1, s2, s3]) != lane.ip_wire
        || ip.dst >= 0xe000_0000
        || ip.ttl <= 1
        || ip.end - ip.l3 > lane.max_ip_len
    {
        return None;
    }
    let ports = has_ports(ip.proto, ip.end - ip.l3);
    if lane.services.contains_u32(ip.dst) {
        // An established Service flow: NATed as its conntrack entry says, then routed. A miss
        // — a new flow, or an entry this very lookup found expired or purged (counted once,
        // here) — goes to the general path, which looks up again and starts the flow.
        if !ports {
            return None;
        }
        let tcp_flags = tcp_flags(d, &ip)?;
        let key = wire_key(f, true, ip.proto);
        trim_padding(pkt, &ip);
        let to = nat::apply_key(cx, pkt, &mut ip, key, hash, true, tcp_flags)?.to;
        // Routed as `route::route` would, its TTL and size checks made above; the rarer
        // destinations (the host, a node's own address, the gateway, none) go through it
        // with the rewritten header read again, so nothing parsed lives across the lookups.
        let d = if let Some(pod) = t.pods.lookup(to.dst()) {
            route::to_pod_frame(pkt.data_mut(), *pod, lane.gateway_l2)
        } else if let Some(r) = t.routes.lookup(to.dst()) {
            encap::push(cx, pkt, r, vxlan::source_port(to.wide_hash()))
        } else {
            let d = pkt.data();
            match plain_header(d, 14).and_then(|mut ip| read_ports(d, &mut ip).map(|()| ip)) {
                Some(ip) => route::route(cx, pkt, &ip),
                // Cannot happen: the header was valid, and NAT keeps it so.
                None => Disposition::Drop(crate::counters::DropReason::Ipv4Malformed),
            }
        };
        return Some(count(cx.c, tx, d));
    }
    // Routed as it is, unless the pod is some NATed flow's backend: then the frame may be a
    // reply (reverse NAT) or an ICMP error about one (`nat::icmp_error`), and goes the general
    // way (one test: checking the protocol as well cost encap ~2%).
    if backend {
        return None;
    }
    if let Some(pod) = t.pods.lookup(ip.dst) {
        trim_padding(pkt, &ip);
        return Some(count(
            cx.c,
            tx,
            route::to_pod_frame(pkt.data_mut(), *pod, lane.gateway_l2),
        ));
    }
    let r = t.routes.lookup(ip.dst)?;
    let sport = vxlan::source_port(wire_key(f, ports, ip.proto).wide_hash());
    trim_padding(pkt, &ip);
    Some(count(cx.c, tx, encap::push(cx, pkt, r, sport)))
}

/// Whether a burst is worth prefetching conntrack slots for: its first frame goes to the
/// lane's Service CIDR and its second is of another flow ([`service_tuple`]). A train of one
/// flow finds its entry in the cache anyway, and the prefetches' ~24 instructions a frame cost
/// it 7% (1 flow).
#[inline(always)]
pub(crate) fn flows_to_services<B: PacketBuf>(lane: &PodLane, pkts: &[B]) -> bool {
    let (Some(first), Some(second)) = (pkts.first(), pkts.get(1)) else {
        return false;
    };
    service_tuple(lane, first).is_some_and(|t| service_tuple(lane, second) != Some(t))
}

/// Prefetches the conntrack index slot a frame to a Service will be looked up at, and returns
/// the lookup's hash for the lane to look up with ([`pod`]'s `hash`), so that a prefetched
/// frame's tuple is hashed once, not twice (`None`: not a frame to a Service).
#[inline(always)]
pub(crate) fn prefetch_service_slot<B: PacketBuf>(
    cx: &Ctx<'_>,
    lane: &PodLane,
    p: &B,
) -> Option<u32> {
    let h = service_hash(lane, p)?;
    B::prefetch(cx.ct.slot_addr_hashed(h));
    Some(h)
}

/// The conntrack hash of a frame to the lane's Service CIDR: of the tuple [`service_tuple`]
/// reads, which is the one the lane looks up ([`wire_key`]) if it takes the frame.
#[inline(always)]
fn service_hash<B: PacketBuf>(lane: &PodLane, p: &B) -> Option<u32> {
    let (proto, addrs, ports) = service_tuple(lane, p)?;
    Some(Conntrack::hash_of(PackedKey::from_wire(
        addrs,
        u32::from_be_bytes(ports),
        proto,
    )))
}

/// The tuple of a frame to the lane's Service CIDR — protocol, addresses, ports as on the
/// wire — read where the pod lane will read it but unchecked (a malformed frame only
/// prefetches a slot for nothing). Bytes 23..38 (the protocol, the header checksum, the
/// addresses, the ports) read as words, not byte by byte as the lane's checked path does
/// (half the instructions).
#[inline(always)]
fn service_tuple<B: PacketBuf>(lane: &PodLane, p: &B) -> Option<(u8, [u8; 8], [u8; 4])> {
    let (&[proto, _, _], rest) = p.data().get(23..38)?.split_first_chunk::<3>()?;
    let (addrs, ports) = rest.split_first_chunk::<8>()?;
    let ports = ports.first_chunk::<4>()?;
    let [.., d0, d1, d2, d3] = *addrs;
    lane.services
        .contains_u32(u32::from_be_bytes([d0, d1, d2, d3]))
        .then_some((proto, *addrs, *ports))
}

/// The tuple of a frame whose IPv4 header (no options) [`plain_header`] accepted, read from
/// the first 38 bytes `f`: the addresses, and the TCP/UDP ports if the header is whole
/// (`ports`, [`has_ports`]), else zero, as the general path has them.
#[inline(always)]
fn wire_key(f: &[u8; 38], ports: bool, proto: u8) -> PackedKey {
    let [.., s0, s1, s2, s3, d0, d1, d2, d3, p0, p1, p2, p3] = *f;
    let l4 = if ports {
        u32::from_be_bytes([p0, p1, p2, p3])
    } else {
        0
    };
    PackedKey::from_wire([s0, s1, s2, s3, d0, d1, d2, d3], l4, proto)
}

/// What the uplink lane checks VXLAN frames against, prepared once per burst from the node:
/// three fixed-offset words, each compared under a mask.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UplinkLane {
    /// The node's underlay IP, host order.
    underlay_ip: u32,
    /// VXLAN header bytes 0..8 under [`VXLAN_MASK`]: the I flag and the node's VNI.
    vxlan: u64,
    /// The inner Ethernet destination — the node's VTEP MAC — as bytes 0..6 of a word whose
    /// last two bytes are masked off.
    vtep_mac: u64,
    /// The underlay source the VTEP cache vouches for under this burst's tables, as its four
    /// bytes on the wire read as a native-endian word, widened (`u64::MAX`, which no source
    /// matches: none), so a train from one node is recognised with one compare.
    known_vtep_wire: u64,
    /// The gateway's half of the Ethernet header of frames to pods (`route::gateway_l2`).
    gateway_l2: u64,
}

/// UDP header bytes 0..8: destination port and checksum, not the source port or length.
const UDP_MASK: u64 = u64::from_ne_bytes([0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff]);
/// ... to port 4789 with a zero checksum (podlane's own frames).
const UDP_VXLAN: u64 = u64::from_ne_bytes([0, 0, 0x12, 0xb5, 0, 0, 0, 0]);
/// UDP header bytes 0..8: the destination port only (the checksummed lane's compare).
const UDP_PORT_MASK: u64 = u64::from_ne_bytes([0, 0, 0xff, 0xff, 0, 0, 0, 0]);
/// VXLAN header bytes 0..8: the I flag (the other flag bits and reserved fields are ignored on
/// receipt, RFC 7348 §5) and the VNI.
const VXLAN_MASK: u64 = u64::from_ne_bytes([0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
/// The first six bytes of a word.
const MAC_MASK: u64 = u64::from_ne_bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);

impl UplinkLane {
    pub fn new(t: &crate::update::Tables, cache: &crate::pipeline::Cache) -> UplinkLane {
        let node = &t.node;
        let v = node.vni.to_be_bytes();
        let m = node.vtep_mac.0;
        UplinkLane {
            underlay_ip: node.underlay_ip.to_bits(),
            vxlan: u64::from_ne_bytes([0x08, 0, 0, 0, v[1], v[2], v[3], 0]),
            vtep_mac: u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0]),
            known_vtep_wire: match cache.vtep_for(t) {
                0 => u64::MAX,
                ip => u64::from(u32::from_ne_bytes(ip.to_be_bytes())),
            },
            gateway_l2: route::gateway_l2(node),
        }
    }
}

/// A VXLAN frame from a known node to a local pod that is no NATed flow's client: checked as
/// `decap.rs` checks it (outer UDP checksum zero — or, with `CHECKSUMMED`, right —, I flag,
/// VNI, source VTEP, inner MAC and EtherType), decapsulated and delivered. A disposition it
/// returns is counted in `tx` already.
///
/// Two instances: podlane sends no outer checksum, so the burst loop's lane takes only
/// zero-checksum frames, in one masked compare; a Linux VXLAN device (a Flannel node) sends
/// one, and such frames get a second try in [`uplink_checksummed`], out of the loop (verifying
/// in the loop's lane cost zero-checksum decap 2–5%, measured; the general path instead,
/// 1.6× the cycles of the lane).
#[inline(always)]
pub(crate) fn uplink<B: PacketBuf, const CHECKSUMMED: bool>(
    cx: &mut Ctx<'_>,
    lane: &UplinkLane,
    pkt: &mut B,
    tx: &mut Tally,
) -> Option<Disposition> {
    const UDP: usize = 14 + 20;
    const INNER: usize = UDP + 8 + 8;
    let d = pkt.data();
    if d.len() > MAX_FRAME_LEN {
        return None;
    }
    let h: &[u8; INNER + 14] = d.first_chunk()?;
    if h[12..14] != [0x08, 0x00] {
        return None;
    }
    let outer = plain_header(d, 14)?;
    // UDP to port 4789 with a length that covers the VXLAN header and an inner Ethernet header;
    // the I flag and our VNI.
    let (outer_l23, rest) = h.split_first_chunk::<UDP>()?;
    let (_, outer_ip) = outer_l23.split_last_chunk::<20>()?;
    let (udp, rest) = rest.split_first_chunk::<8>()?;
    let (vxh, inner_eth) = rest.split_first_chunk::<8>()?;
    let (inner_dst, _) = inner_eth.split_first_chunk::<8>()?;
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let udp_mask = if CHECKSUMMED { UDP_PORT_MASK } else { UDP_MASK };
    if outer.proto != ipproto::UDP
        || outer.dst != lane.underlay_ip
        || u64::from_ne_bytes(*udp) & udp_mask != UDP_VXLAN
        || udp_len < 8 + 8 + 14
        || outer.l4 + udp_len > outer.end
        || u64::from_ne_bytes(*vxh) & VXLAN_MASK != lane.vxlan
        || u64::from_ne_bytes(*inner_dst) & MAC_MASK != lane.vtep_mac
        || h[INNER + 12..INNER + 14] != [8, 0]
    {
        return None;
    }
    let inner_end = outer.l4 + udp_len;
    // A wrong checksum goes the general way, which counts the drop.
    if CHECKSUMMED && udp[6..8] != [0, 0] && !udp_checksum_ok(&outer, &d[outer.l4..inner_end]) {
        return None;
    }
    let inner = plain_header(&d[..inner_end], INNER + 14)?;
    // A reply to a NATed flow's client, or an ICMP error about the flow, goes the general way
    // (reverse NAT, `nat::icmp_error`).
    if cx.ct.pod_is_client(inner.dst)
        && (has_ports(inner.proto, inner.end - inner.l3) || inner.proto == ipproto::ICMP)
    {
        return None;
    }
    let pod = *cx.t.pods.lookup(inner.dst)?;
    let [.., s0, s1, s2, s3, _, _, _, _] = *outer_ip;
    let known = u64::from(u32::from_ne_bytes([s0, s1, s2, s3])) == lane.known_vtep_wire;
    if inner.ttl <= 1 || !(known || cx.cache.known_vtep(cx.t, outer.src)) {
        return None;
    }
    // Committed: strip the outer headers and any padding after the inner packet (what
    // `decap.rs` and then `trim_padding` do, in one step), deliver.
    // (`keep` cannot fail: `inner.end` is within the frame, checked above.)
    let frame = pkt.keep(INNER, inner.end)?;
    cx.c.inc(Event::Decap);
    Some(count(
        cx.c,
        tx,
        route::to_pod_frame(frame, pod, lane.gateway_l2),
    ))
}

/// A frame from the uplink the burst loop's lane declined: if it may be VXLAN with an outer
/// UDP checksum (bytes 40..42 of an untagged frame with a plain IPv4 header are non-zero), the
/// lane again, taking the checksum if it is right ([`uplink`]); else, or if the lane declines
/// again, the general path. Frames without a checksum the lane declined — replies to NATed
/// flows, above all — go straight to the general path.
#[inline(never)]
pub(crate) fn uplink_checksummed<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    lane: &UplinkLane,
    pkt: &mut B,
    tx: &mut Tally,
) -> Disposition {
    let checksummed = pkt.data().get(40..42).is_some_and(|c| c != [0, 0]);
    if checksummed {
        if let Some(d) = uplink::<B, true>(cx, lane, pkt, tx) {
            return d;
        }
    }
    count(cx.c, tx, crate::pipeline::uplink::process(cx, pkt))
}

/// Whether the UDP datagram `seg` (header and payload, as long as its length field says) of the
/// IPv4 packet `ip` has a right checksum, as `UdpPacket::verify_checksum` checks it. Not that
/// method itself: called here (it reads the length back from the header and slices again),
/// checksummed decap ran ~4% slower (17.7 against 18.4 Mpps, eight alternating pairs).
#[inline(always)]
fn udp_checksum_ok(ip: &Ip4, seg: &[u8]) -> bool {
    let Ok(len) = u16::try_from(seg.len()) else {
        return false;
    };
    let sum = checksum::combine(
        checksum::pseudo_header(ip.src.into(), ip.dst.into(), ipproto::UDP, len),
        checksum::sum(seg),
    );
    checksum::fold(sum) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::fixtures::*;
    use crate::pipeline::parse_ipv4;
    use crate::wire::frame::{tcp_frame, udp_frame, Addrs};
    use crate::wire::tcp::flags as tf;

    /// The hash the slot prefetch hands the pod lane is the conntrack hash of the tuple the
    /// lane and the general path look the frame up by (else every prefetched frame would miss
    /// in the lane and go the general way); frames not to a Service get none.
    #[test]
    fn service_hash_is_the_lookups() {
        let w = node_a_writer();
        let t = w.tables();
        let owner = t.pods.owner_of_port(POD_A_PORT).expect("pod A's port");
        let lane = PodLane::new(&owner, &t);
        let to = |dst| Addrs::new(POD_A_MAC, t.node.gateway_mac, POD_A_IP, dst);
        let dns = to(DNS_VIP);
        for f in [
            udp_frame(&dns, 40000, 53, b"query"),
            udp_frame(&dns, 40001, 53, b""),
            tcp_frame(&dns, 40002, 53, 1, 0, tf::ACK, b""),
            tcp_frame(&to(WEB_VIP), 65535, 80, 7, 9, tf::PSH | tf::ACK, b"GET /"),
        ] {
            let ip = parse_ipv4(&f, 14).expect("a valid header");
            let lookup = Conntrack::hash_of(ip.key().packed());
            let head: &[u8; 38] = f.first_chunk().expect("38 bytes");
            assert_eq!(wire_key(head, true, ip.proto), ip.key().packed());
            assert_eq!(service_hash(&lane, &HeapBuf::from_frame(&f)), Some(lookup));
        }
        for f in [
            udp_frame(&to(POD_C_IP), 40000, 53, b"query"),
            udp_frame(&to(POD_B_IP), 40000, 53, b"query"),
        ] {
            assert_eq!(service_hash(&lane, &HeapBuf::from_frame(&f)), None);
        }
    }

    /// VXLAN as a Linux VXLAN device (a Flannel node) sends it, with an outer UDP checksum:
    /// declined by the burst loop's lane, taken by the checksummed one when the checksum is
    /// right, and by neither when it is wrong (the general path drops it, counted).
    #[test]
    fn checksummed_vxlan_takes_the_second_lane_when_right() {
        use crate::pipeline::{Pipeline, Tally};
        use crate::tables::conntrack::Timeouts;
        use crate::wire::frame::vxlan_frame;
        let w = node_a_writer();
        let (a, b) = (
            w.node().clone(),
            crate::tables::NodeConfig::example_node_b(),
        );
        let mut p = Pipeline::new(w.reader(), 1024, Timeouts::default());
        let Pipeline {
            tables,
            ct,
            counters,
            cache,
            shard,
            ..
        } = &mut p;
        let t = tables.refresh();
        let mut cx = Ctx {
            t,
            ct,
            c: counters,
            now: 0,
            cache,
            shard: *shard,
            may_handoff: true,
            fast: true,
        };
        let lane = UplinkLane::new(t, cx.cache);
        let inner = udp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, POD_A_IP)
            },
            40000,
            7777,
            b"from a Flannel node",
        );
        let outer = Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip);
        let good = vxlan_frame(&outer, 50000, 1, &inner, true);
        assert_ne!(good[40..42], [0, 0], "a checksum");
        let mut bad = good.clone();
        bad[70] ^= 1; // a byte of the inner frame: the outer checksum no longer matches
        let mut tx = Tally::default();
        let mut run = |f: &[u8], checksummed: bool| {
            let mut pkt = HeapBuf::from_frame(f);
            let d = if checksummed {
                uplink::<_, true>(&mut cx, &lane, &mut pkt, &mut tx)
            } else {
                uplink::<_, false>(&mut cx, &lane, &mut pkt, &mut tx)
            };
            (d, pkt.data().to_vec())
        };
        assert_eq!(run(&good, false).0, None);
        let (d, out) = run(&good, true);
        assert_eq!(d, Some(Disposition::ToPod(POD_A_PORT)));
        // Decapsulated and delivered as the general path delivers: gateway → pod A, TTL − 1.
        let want = udp_frame(
            &Addrs {
                ttl: 62,
                ..Addrs::new(a.gateway_mac, POD_A_MAC, POD_C_IP, POD_A_IP)
            },
            40000,
            7777,
            b"from a Flannel node",
        );
        assert_eq!(out, want);
        assert_eq!(run(&bad, false).0, None);
        assert_eq!(run(&bad, true).0, None);
        // The same frame without a checksum: the loop's lane.
        let zero = vxlan_frame(&outer, 50000, 1, &inner, false);
        assert_eq!(run(&zero, false).0, Some(Disposition::ToPod(POD_A_PORT)));
    }
}
