//! ICMP the fast path originates: echo replies for the node's own addresses in its pod CIDR
//! (the gateway, and the VTEP address — as a Flannel node's `cni0` and `flannel.1` answer
//! them), to local pods and, through the tunnel, to other nodes' pods; and "fragmentation
//! needed" (RFC 792 type 3 code 4, next-hop MTU per RFC 1191 §4) for packets too big for the
//! tunnel — so an MTU mismatch is a visible error, not a black hole.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason, Event};
use crate::pipeline::{encap, nat, parse_ipv4, tri, Ctx, Ip4};
use crate::tables::pods::PodSlot;
use crate::tables::routes::NodeRoute;
use crate::wire::icmp::{msg_type, unreach_code, Icmpv4Packet};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{checksum, ethertype, ipproto, put16, vxlan};

/// The IPv4 header of a routed frame (at 14: every caller routes untagged frames), parsed again
/// by the rare ICMP paths below instead of being passed in: an `Ip4` argument makes the
/// compiler build the struct in memory on the hot routing path that might call them. The
/// header was checked and kept consistent (incremental checksums) on the way here.
#[inline(always)]
fn reparse<B: PacketBuf>(pkt: &B) -> Result<Ip4, DropReason> {
    parse_ipv4(pkt.data(), 14)
}

/// A packet addressed to the gateway IP or the node's VTEP address, from a local pod or (through
/// the tunnel) another node's pod: echo requests are answered in place; anything else is dropped
/// (those addresses run no services). Out of line (see [`reparse`]).
#[inline(never)]
pub(crate) fn gateway<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Disposition {
    let ip = tri!(reparse(pkt));
    let t = cx.t;
    let asker = if let Some(pod) = t.pods.lookup(ip.src) {
        Asker::Local(*pod)
    } else if let Some(r) = t.routes.lookup(ip.src) {
        Asker::Remote(r)
    } else {
        return Disposition::Drop(DropReason::IcmpIgnored);
    };
    if ip.proto != ipproto::ICMP || ip.frag {
        return Disposition::Drop(DropReason::IcmpIgnored);
    }
    let d = pkt.data_mut();
    let Some(l4) = d.get_mut(ip.l4..ip.end) else {
        return Disposition::Drop(DropReason::L4Malformed);
    };
    let Ok(mut icmp) = Icmpv4Packet::new_checked(l4) else {
        return Disposition::Drop(DropReason::L4Malformed);
    };
    if icmp.msg_type() != msg_type::ECHO_REQUEST || icmp.msg_code() != 0 {
        return Disposition::Drop(DropReason::IcmpIgnored);
    }
    if !icmp.verify_checksum() {
        return Disposition::Drop(DropReason::L4Malformed);
    }
    let old = u16::from_be_bytes([icmp.msg_type(), icmp.msg_code()]);
    icmp.set_msg_type(msg_type::ECHO_REPLY);
    let c = icmp.checksum();
    icmp.set_checksum(checksum::update16(c, old, 0));
    let mut v4 = Ipv4Packet::new_unchecked(&mut d[ip.l3..ip.l4]);
    let (s, to) = (v4.src_addr(), v4.dst_addr());
    v4.set_src_addr(to);
    v4.set_dst_addr(s);
    // The node's own packet leaves with TTL 64; the encapsulation takes one off as it does for
    // every routed packet, so a reply to another node's pod is written with 65.
    v4.set_ttl(match asker {
        Asker::Local(_) => 64,
        Asker::Remote(_) => 65,
    });
    v4.fill_checksum();
    cx.c.inc(Event::IcmpEchoReplied);
    match asker {
        Asker::Local(src) => {
            d[0..6].copy_from_slice(src.mac.as_bytes());
            d[6..12].copy_from_slice(t.node.gateway_mac.as_bytes());
            Disposition::ToPod(src.port)
        }
        Asker::Remote(r) => {
            let reply = tri!(reparse(pkt));
            encap::push(cx, pkt, r, vxlan::source_port(reply.flow_hash()))
        }
    }
}

/// Who sent a ping to one of the node's addresses: a local pod, or a pod behind another node's
/// route.
enum Asker<'a> {
    Local(PodSlot),
    Remote(&'a NodeRoute),
}

/// Bytes of the offending datagram quoted after its IP header (RFC 792: 64 bits).
const QUOTE_L4: usize = 8;

/// Rewrites a too-big packet from a local pod into the ICMP "fragmentation needed" error that
/// tells it the pod MTU, and sends that back to the pod. Out of line (see [`reparse`]).
#[cold]
#[inline(never)]
pub(crate) fn frag_needed<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B) -> Disposition {
    let ip = tri!(reparse(pkt));
    let Some(src) = cx.t.pods.lookup(ip.src).copied() else {
        return Disposition::Drop(DropReason::TooBig);
    };
    // Never answer an ICMP error with an error (RFC 1122 §3.2.2).
    if ip.proto == ipproto::ICMP {
        let t = pkt.data().get(ip.l4).copied().unwrap_or(0);
        if t != msg_type::ECHO_REQUEST && t != msg_type::ECHO_REPLY {
            return Disposition::Drop(DropReason::TooBig);
        }
    }
    let node = &cx.t.node;
    let quote = (ip.l4 - ip.l3 + QUOTE_L4).min(ip.end - ip.l3);
    let l3 = ip.l3;
    let icmp_at = l3 + 20;
    let quote_at = icmp_at + 8;
    let new_len = quote_at + quote;
    let d = pkt.data_mut();
    d.copy_within(l3..l3 + quote, quote_at);
    d[0..6].copy_from_slice(src.mac.as_bytes());
    d[6..12].copy_from_slice(node.gateway_mac.as_bytes());
    put16(d, 12, ethertype::IPV4);
    {
        let mut v4 = Ipv4Packet::new_unchecked(&mut d[l3..l3 + 20]);
        v4.set_version(4);
        v4.set_header_len(20);
        v4.set_dscp_ecn(0xc0); // CS6, as Linux marks ICMP errors
        v4.set_total_len((new_len - l3) as u16);
        v4.set_ident(0);
        v4.set_dont_frag(false);
        v4.set_more_frags(false);
        v4.set_frag_offset(0);
        v4.set_ttl(64);
        v4.set_protocol(ipproto::ICMP);
        v4.set_src_addr(node.gateway_ip());
        v4.set_dst_addr(core::net::Ipv4Addr::from(ip.src));
        v4.fill_checksum();
    }
    {
        let mut icmp = Icmpv4Packet::new_unchecked(&mut d[icmp_at..new_len]);
        icmp.set_msg_type(msg_type::DST_UNREACHABLE);
        icmp.set_msg_code(unreach_code::FRAG_NEEDED);
        icmp.set_rest_of_header(u32::from(node.pod_mtu()));
        icmp.fill_checksum();
    }
    let len = pkt.len();
    pkt.trim(len - new_len);
    // A packet DNATed on its way here (a Service flow): the quote is translated back, so the
    // client learns the path MTU for the address it sent to (Linux's conntrack does the same to
    // the errors a node sends about NATed packets). A miss leaves the message as it is.
    if let Ok(mut e) = reparse(pkt) {
        let _ = nat::icmp_error(cx, pkt, &mut e);
    }
    cx.c.inc(Event::IcmpFragNeededSent);
    Disposition::ToPod(src.port)
}
