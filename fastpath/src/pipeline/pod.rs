//! Packets from a pod port: anti-spoofing, then ARP, Service NAT, or routing.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason};
use crate::pipeline::nat::Client;
use crate::pipeline::{
    arp, is_multicast_or_broadcast, nat, parse_ipv4, route, shard, tri, trim_padding, uplink, Ctx,
    Ingress, MAX_FRAME_LEN,
};
use crate::wire::{be16, ethertype, ipproto};

/// One packet from the pod on `port`, the general way (the burst loop tries the fast lane
/// first). Out of line, so that the lane's loop keeps its values in registers.
#[inline(never)]
pub(crate) fn process<B: PacketBuf>(cx: &mut Ctx<'_>, port: u16, pkt: &mut B) -> Disposition {
    let d = pkt.data();
    if d.len() < 14 {
        return Disposition::Drop(DropReason::Runt);
    }
    if d.len() > MAX_FRAME_LEN {
        return Disposition::Drop(DropReason::Jumbo);
    }
    let Some(owner) = cx.t.pods.owner_of_port(port) else {
        return Disposition::Drop(DropReason::UnknownPort);
    };
    // 1. Anti-spoofing, L2: the frame's source must be the pod's own MAC.
    if d[6..12] != owner.mac.0 {
        return Disposition::Drop(DropReason::SpoofedMac);
    }
    match be16(d, 12) {
        ethertype::IPV4 => {}
        // 2. ARP: proxy-answered, nothing flooded.
        ethertype::ARP => return arp::from_pod(cx, port, owner, pkt),
        _ => return Disposition::Drop(DropReason::UnsupportedEthertype),
    }
    let mut ip = tri!(parse_ipv4(d, 14));
    // 1. Anti-spoofing, L3: the source must be the pod's own IP.
    if ip.src != owner.ip {
        return Disposition::Drop(DropReason::SpoofedIp);
    }
    if is_multicast_or_broadcast(ip.dst) {
        return Disposition::Drop(DropReason::Multicast);
    }
    trim_padding(pkt, &ip);
    // An ICMP error about a NATed flow this pod is part of: translated back as Linux's
    // conntrack does (`nat::icmp_error`), then routed to the flow's peer.
    if ip.proto == ipproto::ICMP && (cx.ct.pod_is_backend(ip.src) || cx.ct.pod_is_client(ip.src)) {
        if let Some(d) = nat::icmp_error_routed(cx, pkt, &mut ip) {
            return d;
        }
    }
    let node = &cx.t.node;
    let to_service = node.service_cidr.contains_u32(ip.dst);
    // A NodePort on this node's own address: served here as kube-proxy serves it to the
    // node's pods (no flow of this node has the node's address as its client, so such a
    // packet is never a reply to translate back). Another node's NodePort is that node's to
    // serve: the packet goes there through the tunnel (`route::route`), and that node applies
    // the Service's external policy (`uplink::from_tunnel`).
    let to_nodeport =
        !to_service && ip.dst == node.underlay_ip.to_bits() && uplink::to_nodeport(node, &ip);
    if to_service || to_nodeport {
        // 3. A Service: conntracked DNAT. Fragments cannot be NATed (later ones carry no
        // ports), and NATing only the first would split the datagram: drop them all.
        if ip.frag {
            return Disposition::Drop(DropReason::Fragment);
        }
        if nat::apply(cx, pkt, &mut ip).is_none() {
            let (dport, proto) = (ip.ports.map_or(0, |p| p.1), ip.proto);
            let svc = if to_service {
                cx.t.services.lookup(ip.dst, dport, proto)
            } else {
                cx.t.services.lookup_nodeport(dport, proto)
            };
            let Some(svc) = svc else {
                // No Service on that port: a ClusterIP has nothing else behind it; the
                // node's address has the node (routed to the host path below).
                if to_service {
                    return Disposition::Drop(DropReason::NoRoute);
                }
                return route::route(cx, pkt, &ip);
            };
            tri!(nat::new_flow(cx, pkt, &mut ip, svc, None, Client::Pod));
        }
    } else if ip.ports.is_some() && cx.ct.pod_is_backend(ip.src) {
        // A backend of a live NATed flow: its replies are reverse-NATed, by the flow's owner.
        if !cx.shard.single() {
            if let Some(h) =
                shard::reply_owner(cx, &ip).and_then(|w| cx.handoff(w, Ingress::Pod(port)))
            {
                return h;
            }
        }
        if let Some(hit) = nat::apply(cx, pkt, &mut ip) {
            if hit.is_external_reply() {
                return route::to_external(cx, pkt, &ip, hit.client_mac);
            }
            if hit.is_host_reply() {
                return route::to_host(cx, pkt);
            }
        }
    }
    // 4.–6. Local pod, remote node, host path or drop.
    route::route(cx, pkt, &ip)
}
