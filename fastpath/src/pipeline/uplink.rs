//! Packets from the uplink: ARP for the node IP, VXLAN from known nodes (decap, reverse NAT,
//! delivery), NodePort, and everything else to the host path.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason};
use crate::pipeline::{
    arp, decap, icmp, l2_prologue, nat, parse_ipv4, route, tri, trim_padding, Ctx, Ingress,
};
use crate::wire::{ethertype, ipproto, vxlan, MacAddr};

/// One packet from the uplink, the general way (the burst loop tries the fast lane first).
/// Out of line, so that the lane's loop keeps its values in registers.
#[inline(never)]
pub(crate) fn process<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Disposition {
    let d = pkt.data();
    let (et, l3) = tri!(l2_prologue(d));
    match et {
        ethertype::ARP => return arp::from_uplink(cx, pkt, l3),
        // Tagged IPv4 is not the pod network's; the kernel may have a VLAN device for it.
        ethertype::IPV4 if l3 == 14 => {}
        _ => return Disposition::ToHost,
    }
    let node = &cx.t.node;
    let ip = tri!(parse_ipv4(d, l3));
    if ip.dst != node.underlay_ip.to_bits() {
        return Disposition::ToHost;
    }
    match (ip.proto, ip.ports) {
        (ipproto::UDP, Some((_, vxlan::UDP_PORT))) if !ip.frag => {
            tri!(decap::check_and_strip(cx, pkt, &ip));
            from_tunnel(cx, pkt)
        }
        (ipproto::UDP, _) | (ipproto::TCP, _)
            if ip
                .ports
                .is_some_and(|(_, p)| (node.nodeport_min..=node.nodeport_max).contains(&p)) =>
        {
            nodeport(cx, pkt)
        }
        (ipproto::UDP, Some((_, vxlan::UDP_PORT))) => Disposition::Drop(DropReason::Fragment),
        _ => Disposition::ToHost,
    }
}

/// A decapsulated inner frame (Ethernet at 0): reverse NAT where a flow is NATed, then delivery.
#[inline(always)]
pub(crate) fn from_tunnel<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Disposition {
    let mut ip = tri!(parse_ipv4(pkt.data(), 14).map_err(|_| DropReason::VxlanInner));
    trim_padding(pkt, &ip);
    let node = &cx.t.node;
    let to_vtep = ip.dst == node.vtep_ip().to_bits();
    // An ICMP error about a NATed flow, from a remote backend to a local client or to the SNAT
    // address: translated back (`nat::icmp_error`), then delivered.
    if ip.proto == ipproto::ICMP && (to_vtep || cx.ct.pod_is_client(ip.dst)) {
        if let Some(d) = nat::icmp_error_routed(cx, pkt, &mut ip) {
            return d;
        }
    }
    if ip.ports.is_some() && !ip.frag && (to_vtep || cx.ct.pod_is_client(ip.dst)) {
        // A reply to a NATed flow: reverse-NATed by the flow's owner (`shard.rs`).
        if !cx.shard.single() {
            let owner = if to_vtep {
                ip.ports.map(|(_, dport)| cx.shard.of_snat_port(dport))
            } else {
                cx.t.pods
                    .lookup(ip.dst)
                    .map(|p| cx.shard.of_pod_port(p.port))
            };
            if let Some(h) = owner.and_then(|w| cx.handoff(w, Ingress::Tunnel)) {
                return h;
            }
        }
        if let Some(hit) = nat::apply(cx, pkt, &mut ip) {
            if hit.is_external_reply() {
                return route::to_external(cx, pkt, &ip, hit.client_mac);
            }
        }
    }
    if let Some(pod) = cx.t.pods.lookup(ip.dst) {
        return route::deliver_local(cx, pkt, &ip, *pod);
    }
    let node = &cx.t.node;
    if ip.dst == node.underlay_ip.to_bits() {
        return route::to_host(cx, pkt);
    }
    // Pings to the gateway or the VTEP address from other nodes' pods, answered through the
    // tunnel (a Flannel node's `cni0` and `flannel.1` answer them).
    if ip.dst == node.gateway_ip().to_bits() || ip.dst == node.vtep_ip().to_bits() {
        return icmp::gateway(cx, pkt);
    }
    // The tunnel is not a transit path: only local pods and this node are reachable through it.
    Disposition::Drop(DropReason::NoLocalPod)
}

/// A packet to a NodePort on the node IP: conntracked DNAT to a backend anywhere in the cluster,
/// with SNAT to the node's VTEP address when the backend is remote (kube-proxy's
/// externalTrafficPolicy=Cluster), so replies come back through the tunnel to this node
/// (`NodeConfig::vtep_ip`); for a Service with `node_port_local` (externalTrafficPolicy=Local),
/// to a backend on this node only, without SNAT.
#[inline(always)]
fn nodeport<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Disposition {
    let mut ip = tri!(parse_ipv4(pkt.data(), 14));
    trim_padding(pkt, &ip);
    if ip.frag {
        return Disposition::Drop(DropReason::Fragment);
    }
    // The flow belongs to the worker its external client hashes to (`shard.rs`).
    if let (false, Some((sport, _))) = (cx.shard.single(), ip.ports) {
        let owner = cx.shard.of_external(ip.src, sport);
        if let Some(h) = cx.handoff(owner, Ingress::Uplink) {
            return h;
        }
    }
    if nat::apply(cx, pkt, &mut ip).is_none() {
        let (dport, proto) = (ip.ports.map_or(0, |p| p.1), ip.proto);
        let Some(svc) = cx.t.services.lookup_nodeport(dport, proto) else {
            return Disposition::ToHost;
        };
        let client_mac = MacAddr::from_bytes(&pkt.data()[6..12]).0;
        let vtep_ip = cx.t.node.vtep_ip().to_bits();
        tri!(nat::new_flow(
            cx,
            pkt,
            &mut ip,
            svc,
            Some(vtep_ip),
            Some(client_mac)
        ));
    }
    route::route(cx, pkt, &ip)
}
