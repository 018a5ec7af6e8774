//! Packets from the host path (the node kernel): to pods, through the tunnel, or out the uplink.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason};
use crate::pipeline::{arp, encap, l2_prologue, parse_ipv4, route, tri, trim_padding, Ctx};
use crate::wire::ethertype;

/// One packet from the host path. The node's own traffic (ssh, kubelet) leaves through the
/// uplink untouched, so the node keeps its connectivity when DPDK owns the NIC. Traffic from the
/// node to its pods or to other nodes' pods is routed like pod traffic. Host traffic to
/// ClusterIPs is not NATed here yet (a counted drop rather than a leak onto the underlay).
#[inline(always)]
pub(crate) fn process<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Disposition {
    let d = pkt.data();
    let (et, l3) = tri!(l2_prologue(d));
    match et {
        ethertype::ARP => return arp::from_host(cx, pkt, l3),
        ethertype::IPV4 if l3 == 14 => {}
        _ => return Disposition::ToUplink,
    }
    let ip = tri!(parse_ipv4(d, l3));
    let t = cx.t;
    if let Some(pod) = t.pods.lookup(ip.dst) {
        trim_padding(pkt, &ip);
        return route::deliver_local(cx, pkt, &ip, *pod);
    }
    if let Some(r) = t.routes.lookup(ip.dst) {
        trim_padding(pkt, &ip);
        return encap::encap(cx, pkt, &ip, r);
    }
    if t.node.service_cidr.contains_u32(ip.dst) || t.node.pod_cidr.contains_u32(ip.dst) {
        return Disposition::Drop(DropReason::NoRoute);
    }
    Disposition::ToUplink
}
