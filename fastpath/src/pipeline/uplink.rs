//! Packets from the uplink: ARP for the node IP, VXLAN from known nodes (decap, reverse NAT,
//! delivery, another node's pod to a NodePort), NodePort, and everything else to the host
//! path.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason, Event};
use crate::pipeline::nat::Client;
use crate::pipeline::{
    arp, decap, icmp, l2_prologue, nat, parse_ipv4, route, tri, trim_padding, Ctx, Ingress, Ip4,
};
use crate::tables::conntrack::{flags, Dir};
use crate::tables::NodeConfig;
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
        _ if to_nodeport(node, &ip) => {
            let mut ip = ip;
            trim_padding(pkt, &ip);
            nodeport(cx, pkt, &mut ip, Ingress::Uplink)
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
            // Another node's pod whose NodePort flow this node translated: routed on,
            // through the tunnel again; the node's own flow: to the host path. A local client
            // pod: delivered below.
            if cx.t.pods.lookup(ip.dst).is_none() {
                return route_onward(cx, pkt, &ip, hit);
            }
        }
    }
    if let Some(pod) = cx.t.pods.lookup(ip.dst) {
        return route::deliver_local(cx, pkt, &ip, *pod);
    }
    let node = &cx.t.node;
    if ip.dst == node.underlay_ip.to_bits() {
        // Another node's pod to a NodePort of this node (a podlane node sends its pods'
        // packets to node addresses through the tunnel): served here, as from the uplink.
        if to_nodeport(node, &ip) {
            return nodeport_from_tunnel(cx, pkt, &mut ip);
        }
        return route::to_host(cx, pkt);
    }
    // Pings to the gateway or the VTEP address from other nodes' pods, answered through the
    // tunnel (a Flannel node's `cni0` and `flannel.1` answer them); anything else for the VTEP
    // address is the node kernel's (the answers to what it sent other nodes' pods from there).
    if ip.dst == node.gateway_ip().to_bits() {
        return icmp::gateway(cx, pkt);
    }
    if to_vtep {
        return route::to_vtep_address(cx, pkt, &ip);
    }
    // The tunnel is not a transit path: only local pods and this node are reachable through it.
    Disposition::Drop(DropReason::NoLocalPod)
}

/// An external client's packet on its NodePort flow (`hit`, original direction) from another
/// MAC than the flow's replies go to: they go to this one from now on. The fast path does not
/// ARP for underlay neighbours, so the MAC a flow's first packet came from (its client's, or
/// the upstream router's) is where its replies go; when that router fails over to one with
/// another MAC, the flow's next packet moves its replies along, where they would otherwise go
/// to the dead router for the flow's life (a link's FCS keeps a corrupted MAC from getting
/// here).
#[inline(always)]
fn follow_client_mac<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &B, hit: &nat::Hit) {
    if hit.dir != Dir::Orig || hit.flags & flags::EXTERNAL_CLIENT == 0 {
        return;
    }
    let Some(&mac) = pkt.data().get(6..12).and_then(|m| m.first_chunk::<6>()) else {
        return;
    };
    if mac != hit.client_mac {
        cx.ct.set_client_mac(hit.idx, mac);
        cx.c.inc(Event::CtClientMacMoved);
    }
}

/// True if `ip`, addressed to the node, is TCP or UDP to a port in the NodePort range (which
/// has a frontend or not: [`nodeport`] sends it to the host if not).
#[inline(always)]
pub(crate) fn to_nodeport(node: &NodeConfig, ip: &Ip4) -> bool {
    matches!(ip.proto, ipproto::TCP | ipproto::UDP)
        && ip
            .ports
            .is_some_and(|(_, p)| (node.nodeport_min..=node.nodeport_max).contains(&p))
}

/// A translated reply through the tunnel to a client that is not this node's pod: another
/// node's pod ([`nat::Client::RemotePod`]), routed on, or the node itself
/// ([`nat::Client::Host`]), to the host path. Out of line for the reason
/// [`nodeport_from_tunnel`] is.
#[inline(never)]
fn route_onward<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &Ip4,
    hit: nat::Hit,
) -> Disposition {
    if hit.is_host_reply() {
        return route::to_host(cx, pkt);
    }
    route::route(cx, pkt, ip)
}

/// [`nodeport`] for a decapsulated frame, out of line: `from_tunnel` is inlined into the
/// worker's burst loop (handed-over frames resume there), which this rare case would otherwise
/// grow by kilobytes (measured: the daemon's `forward` by 10 KB).
#[inline(never)]
fn nodeport_from_tunnel<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B, ip: &mut Ip4) -> Disposition {
    nodeport(cx, pkt, ip, Ingress::Tunnel)
}

/// A packet to a NodePort on the node IP, from outside the cluster (`Ingress::Uplink`) or from
/// another node's pod (`Ingress::Tunnel`): conntracked DNAT to a backend anywhere in the
/// cluster, with SNAT to the node's VTEP address when the backend is remote (kube-proxy's
/// externalTrafficPolicy=Cluster), so replies come back through the tunnel to this node
/// (`NodeConfig::vtep_ip`); for a Service with `node_port_local` (externalTrafficPolicy=Local),
/// to a backend on this node only, without SNAT. An external client's replies go back to its
/// MAC on the uplink, a pod's through the tunnel. Its padding is trimmed already.
#[inline(always)]
fn nodeport<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &mut Ip4,
    ingress: Ingress,
) -> Disposition {
    if ip.frag {
        return Disposition::Drop(DropReason::Fragment);
    }
    // The flow belongs to the worker its client hashes to (`shard.rs`).
    if let (false, Some((sport, _))) = (cx.shard.single(), ip.ports) {
        let owner = cx.shard.of_external(ip.src, sport);
        if let Some(h) = cx.handoff(owner, ingress) {
            return h;
        }
    }
    if let Some(hit) = nat::apply(cx, pkt, ip) {
        follow_client_mac(cx, pkt, &hit);
    } else {
        let (dport, proto) = (ip.ports.map_or(0, |p| p.1), ip.proto);
        let Some(svc) = cx.t.services.lookup_nodeport(dport, proto) else {
            // No Service there: the node's own port. A decapsulated frame is readdressed to
            // the host path; the uplink's is addressed to the node already.
            return if ingress == Ingress::Tunnel {
                route::to_host(cx, pkt)
            } else {
                Disposition::ToHost
            };
        };
        let client = if ingress == Ingress::Tunnel {
            Client::RemotePod
        } else {
            Client::External(MacAddr::from_bytes(&pkt.data()[6..12]).0)
        };
        let vtep_ip = cx.t.node.vtep_ip().to_bits();
        tri!(nat::new_flow(cx, pkt, ip, svc, Some(vtep_ip), client));
    }
    route::route(cx, pkt, ip)
}
