//! Packets from the host path (the node kernel): to pods, to Services, through the tunnel, or
//! out the uplink.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason};
use crate::pipeline::nat::{self, Client};
use crate::pipeline::{arp, encap, l2_prologue, parse_ipv4, route, tri, trim_padding, Ctx, Ip4};
use crate::wire::{ethertype, ipproto};

/// One packet from the host path. The node's own traffic (ssh, kubelet) leaves through the
/// uplink untouched, so the node keeps its connectivity when DPDK owns the NIC. Traffic from the
/// node to its pods (kubelet's probes) or to other nodes' pods is routed like pod traffic, and
/// to a ClusterIP it is NATed as kube-proxy NATs the node's own traffic ([`to_service`]).
#[inline(always)]
pub(crate) fn process<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Disposition {
    let d = pkt.data();
    let (et, l3) = tri!(l2_prologue(d));
    match et {
        ethertype::ARP => return arp::from_host(cx, pkt, l3),
        ethertype::IPV4 if l3 == 14 => {}
        _ => return Disposition::ToUplink,
    }
    let mut ip = tri!(parse_ipv4(d, l3));
    let t = cx.t;
    if t.node.service_cidr.contains_u32(ip.dst) {
        trim_padding(pkt, &ip);
        return to_service(cx, pkt, &mut ip);
    }
    if let Some(pod) = t.pods.lookup(ip.dst) {
        trim_padding(pkt, &ip);
        return route::deliver_local(cx, pkt, &ip, *pod);
    }
    if let Some(r) = t.routes.lookup(ip.dst) {
        trim_padding(pkt, &ip);
        return encap::encap(cx, pkt, &ip, r);
    }
    if t.node.pod_cidr.contains_u32(ip.dst) {
        return Disposition::Drop(DropReason::NoRoute);
    }
    Disposition::ToUplink
}

/// The node's own packet to an address in the Service CIDR: a Service flow's packet
/// conntracked and DNATed to a backend (any ready one, local or remote) and SNATed to the
/// gateway or VTEP address ([`Client::Host`]: the flow is the host path's worker's, and its
/// replies come back to the host path); an ICMP error the kernel sends about a Service flow's
/// reply (a UDP answer reaching a socket already closed) translated back to the backend.
/// Anything else to that CIDR — a port no Service has, a ping — is a counted drop, as from a
/// pod. Out of line: a rare case of a path that is not a fast lane's.
#[inline(never)]
fn to_service<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B, ip: &mut Ip4) -> Disposition {
    if ip.proto == ipproto::ICMP {
        return nat::icmp_error_routed(cx, pkt, ip)
            .unwrap_or(Disposition::Drop(DropReason::NoRoute));
    }
    // Fragments cannot be NATed (later ones carry no ports): dropped, as from a pod.
    if ip.frag {
        return Disposition::Drop(DropReason::Fragment);
    }
    if nat::apply(cx, pkt, ip).is_none() {
        let (dport, proto) = (ip.ports.map_or(0, |p| p.1), ip.proto);
        let Some(svc) = cx.t.services.lookup(ip.dst, dport, proto) else {
            return Disposition::Drop(DropReason::NoRoute);
        };
        tri!(nat::new_flow(cx, pkt, ip, svc, None, Client::Host));
    }
    route::route(cx, pkt, ip)
}
