//! Where a (possibly NATed) IPv4 packet goes: a local pod, a remote node through VXLAN, the
//! host path, the gateway's own ICMP responder, or a counted drop.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason};
use crate::pipeline::rewrite::dec_ttl;
use crate::pipeline::{encap, icmp, is_multicast_or_broadcast, Ctx, Ip4};
use crate::tables::pods::PodSlot;
use crate::tables::UnknownDestination;
use crate::wire::icmp::msg_type;
use crate::wire::{ipproto, MacAddr};

/// Routes the IPv4 packet `ip` (untagged: Ethernet header at 0, IPv4 at 14).
#[inline(always)]
pub(crate) fn route<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B, ip: &Ip4) -> Disposition {
    let t = cx.t;
    if let Some(pod) = t.pods.lookup(ip.dst) {
        return deliver_local(cx, pkt, ip, *pod);
    }
    if let Some(r) = t.routes.lookup(ip.dst) {
        return encap::encap(cx, pkt, ip, r);
    }
    let node = &t.node;
    if ip.dst == node.underlay_ip.to_bits() {
        return to_host(cx, pkt);
    }
    if let Some(r) = t.routes.by_underlay(ip.dst) {
        // Another node's own address: through the tunnel, to that node's host path (a Linux
        // Flannel node takes it too, the inner destination being one of its addresses).
        return encap::encap(cx, pkt, ip, r);
    }
    if ip.dst == node.gateway_ip().to_bits() {
        return icmp::gateway(cx, pkt);
    }
    if ip.dst == node.vtep_ip().to_bits() {
        return to_vtep_address(cx, pkt, ip);
    }
    if node.pod_cidr.contains_u32(ip.dst) {
        return if ip.dst == node.pod_cidr.broadcast().to_bits() {
            Disposition::Drop(DropReason::Multicast)
        } else {
            Disposition::Drop(DropReason::NoLocalPod)
        };
    }
    if is_multicast_or_broadcast(ip.dst) {
        return Disposition::Drop(DropReason::Multicast);
    }
    match node.unknown_destination {
        UnknownDestination::Host => to_host(cx, pkt),
        UnknownDestination::Drop => Disposition::Drop(DropReason::NoRoute),
    }
}

/// Delivers to a local pod: gateway MAC to pod MAC, TTL − 1.
#[inline(always)]
pub(crate) fn deliver_local<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &Ip4,
    pod: PodSlot,
) -> Disposition {
    if ip.ttl <= 1 {
        return Disposition::Drop(DropReason::TtlExpired);
    }
    debug_assert_eq!(ip.l3, 14);
    to_pod(cx, pkt, pod)
}

/// The delivery itself, of a frame whose TTL [`deliver_local`] checked.
#[inline(always)]
pub(crate) fn to_pod<B: PacketBuf>(cx: &Ctx<'_>, pkt: &mut B, pod: PodSlot) -> Disposition {
    to_pod_frame(pkt.data_mut(), pod, gateway_l2(&cx.t.node))
}

/// Ethernet bytes 6..14 of an IPv4 frame from `mac` — the MAC, then EtherType 0x0800 — as one
/// native-endian word: what the lanes compare a pod's frames with, and write as the gateway.
#[inline(always)]
pub(crate) fn ipv4_src_l2(mac: MacAddr) -> u64 {
    let m = mac.0;
    u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0x08, 0x00])
}

/// The gateway's half of the Ethernet header of the frames it sends pods ([`ipv4_src_l2`];
/// the lanes prepare it once per burst).
#[inline(always)]
pub(crate) fn gateway_l2(node: &crate::tables::NodeConfig) -> u64 {
    ipv4_src_l2(node.gateway_mac)
}

/// [`to_pod`] on the frame's bytes `d` (as `PacketBuf::data_mut` or `keep` give them), with the
/// gateway's half of the Ethernet header given ([`gateway_l2`]): the header is two 8-byte
/// stores, the pod's MAC (and two bytes the second store overwrites), then the gateway's MAC
/// and the EtherType the frame had (IPv4, untagged: every caller's).
#[inline(always)]
pub(crate) fn to_pod_frame(d: &mut [u8], pod: PodSlot, gateway_l2: u64) -> Disposition {
    let Some(h) = d.first_chunk_mut::<34>() else {
        return Disposition::Drop(DropReason::Ipv4Malformed);
    };
    let [m0, m1, m2, m3, m4, m5] = pod.mac.0;
    let [p0, p1] = pod.port.to_ne_bytes();
    h[0..8].copy_from_slice(&[m0, m1, m2, m3, m4, m5, p0, p1]);
    h[6..14].copy_from_slice(&gateway_l2.to_ne_bytes());
    dec_ttl(h, 14);
    Disposition::ToPod(pod.port)
}

/// The Ethernet and IPv4 headers of a routed packet as one fixed-size view (so the rewrites
/// need no bounds checks). Every caller routes untagged frames, IPv4 at 14, parsed: `None`
/// cannot happen, and is dropped as malformed should it ever.
#[inline(always)]
fn headers<B: PacketBuf>(pkt: &mut B) -> Option<&mut [u8; 34]> {
    pkt.data_mut().first_chunk_mut::<34>()
}

/// Hands a frame to the node kernel: addressed to the host-path interface's MAC, from the
/// gateway. The kernel routes it (no TTL change here: the kernel is the next hop).
#[inline(always)]
pub(crate) fn to_host<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Disposition {
    let d = pkt.data_mut();
    d[0..6].copy_from_slice(cx.t.node.host_mac.as_bytes());
    d[6..12].copy_from_slice(cx.t.node.gateway_mac.as_bytes());
    Disposition::ToHost
}

/// A packet for the node's VTEP address (its pod CIDR's network address) that no NATed flow
/// took, from a local pod or through the tunnel. The address is the node's own, as a Flannel
/// node's `flannel.1` holds it: an echo request is answered here, as the gateway's is; anything
/// else goes to the node kernel, which holds the address on the host-path interface and sends
/// from it to other nodes' pods (`control/src/hostroutes.rs`), so that a node with strict
/// reverse-path filtering takes those packets from the tunnel — their answers come back here.
/// Out of line: a rare case of paths the lanes leave to the general code.
#[inline(never)]
pub(crate) fn to_vtep_address<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &Ip4,
) -> Disposition {
    let echo_request = ip.proto == ipproto::ICMP
        && !ip.frag
        && pkt.data().get(ip.l4..ip.l4 + 2) == Some(&[msg_type::ECHO_REQUEST, 0][..]);
    if echo_request {
        return icmp::gateway(cx, pkt);
    }
    to_host(cx, pkt)
}

/// Sends a packet out of the uplink as plain IPv4 to an external client whose L2 address
/// conntrack remembered (NodePort replies): from the uplink MAC, TTL − 1.
#[inline(always)]
pub(crate) fn to_external<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &Ip4,
    mac: [u8; 6],
) -> Disposition {
    if ip.ttl <= 1 {
        return Disposition::Drop(DropReason::TtlExpired);
    }
    debug_assert_eq!(ip.l3, 14);
    let Some(h) = headers(pkt) else {
        return Disposition::Drop(DropReason::Ipv4Malformed);
    };
    h[0..6].copy_from_slice(&mac);
    h[6..12].copy_from_slice(cx.t.node.underlay_mac.as_bytes());
    dec_ttl(h, 14);
    Disposition::ToUplink
}
