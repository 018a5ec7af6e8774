//! Service NAT: connection-tracked DNAT to a Maglev-chosen backend, SNAT where the reply must
//! come back through this node (NodePort to a remote backend, hairpin), and reverse NAT of the
//! replies. Checksums are updated incrementally (RFC 1624).

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason, Event};
use crate::pipeline::{rewrite, route};
use crate::pipeline::{Ctx, Ip4};
use crate::tables::conntrack::{flags, Conntrack, Dir, FlowKey, InsertError, NewFlow, PackedKey};
use crate::tables::services::ServiceEntry;
use crate::wire::icmp::Icmpv4Packet;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{checksum, ipproto};

/// A conntrack hit that was applied to the packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    /// The flow's conntrack entry.
    pub idx: u32,
    pub dir: Dir,
    pub flags: u8,
    pub client_mac: [u8; 6],
    /// The tuple the packet left with.
    pub to: PackedKey,
}

impl Hit {
    /// A reply going back to a client outside the cluster (NodePort).
    #[inline(always)]
    pub fn is_external_reply(&self) -> bool {
        self.dir == Dir::Reply && self.flags & flags::EXTERNAL_CLIENT != 0
    }

    /// A reply going back to the node itself (a flow from the host path).
    #[inline(always)]
    pub fn is_host_reply(&self) -> bool {
        self.dir == Dir::Reply && self.flags & flags::HOST_CLIENT != 0
    }
}

/// Rewrites the packet's addresses and, if it has them (`ports`), ports to `to` — the
/// checksums by `deltas`, the entry's for this direction — keeping `ip` in step.
#[inline(always)]
fn rewrite<B: PacketBuf>(
    pkt: &mut B,
    ip: &mut Ip4,
    to: PackedKey,
    ports: bool,
    deltas: (u16, u16),
) {
    rewrite::nat(pkt.data_mut(), (ip.l3, ip.l4, ip.proto), to, ports, deltas);
    let k = to.key();
    ip.src = k.src;
    ip.dst = k.dst;
    if ports {
        ip.ports = Some((k.sport, k.dport));
    }
}

/// Looks the packet's tuple up in conntrack; on a hit, NATs it as the entry says. A UDP entry
/// whose endpoint was removed is purged instead (so the packet can pick a live backend), and so
/// is a closed TCP flow's that a new SYN reuses ([`crate::tables::conntrack::Entry::reopened_by`]).
#[inline(always)]
pub(crate) fn apply<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B, ip: &mut Ip4) -> Option<Hit> {
    let key = ip.key().packed();
    apply_key(cx, pkt, ip, key, None, ip.ports.is_some(), ip.tcp_flags)
}

/// [`apply`] of the tuple `key` the caller read from the frame itself, with whether the packet
/// has ports and its TCP flags (a fast lane's, which parses no ports into `ip`), and the key's
/// conntrack hash if the caller has it (`Conntrack::hash_of`; debug builds check it, and a
/// wrong one could only miss — the lookup compares whole keys — and send the packet the
/// general way).
#[inline(always)]
pub(crate) fn apply_key<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &mut Ip4,
    key: PackedKey,
    hash: Option<u32>,
    ports: bool,
    tcp_flags: u8,
) -> Option<Hit> {
    let h = hash.unwrap_or_else(|| Conntrack::hash_of(key));
    let (idx, dir) = cx.ct.lookup_hashed(key, h, cx.now, cx.c)?;
    let e = cx.ct.entry(idx);
    if e.proto() == ipproto::UDP && cx.t.services.liveness().generation(e.ep_slot) != e.ep_gen {
        cx.ct.remove(idx);
        cx.c.inc(Event::CtPurged);
        return None;
    }
    // A new connection's SYN on a closed flow's tuple: the flow starts afresh. (The SYN bit
    // first: the one test the common packet pays.)
    if tcp_flags & crate::wire::tcp::flags::SYN != 0 && e.reopened_by(tcp_flags) {
        cx.ct.remove_closed(idx, cx.c);
        return None;
    }
    let to = e.rewrite_packed(dir);
    let deltas = e.nat_deltas(dir);
    let hit = Hit {
        idx,
        dir,
        flags: e.flags,
        client_mac: e.client_mac,
        to,
    };
    cx.ct.touch(idx, dir, tcp_flags, cx.now);
    rewrite(pkt, ip, to, ports, deltas);
    cx.c.inc(if dir == Dir::Orig {
        Event::CtHitOrig
    } else {
        Event::CtHitReply
    });
    Some(hit)
}

/// ICMP errors that quote a packet (RFC 792): destination unreachable, source quench, time
/// exceeded, parameter problem.
const ICMP_ERRORS: [u8; 4] = [3, 4, 11, 12];

/// Translates an ICMP error about a NATed flow as Linux's conntrack does
/// (`nf_nat_icmp_reply_translation`), so that, for example, a backend's "port unreachable"
/// reaches the client as coming from the Service address it used, about the packet it sent:
/// the quoted packet (the flow's packet as it left this node, travelling the other way) is
/// looked up reversed; on a hit, the quoted addresses and ports become the flow's as its peer
/// knows them, the outer destination becomes the flow's peer in that direction, and the outer
/// source too if the error comes from the flow's endpoint itself. The quoted IPv4 checksum,
/// the quoted UDP or TCP checksum where it was quoted, the ICMP checksum and the outer header
/// checksum are made right again. Anything else — not an error, a bad checksum, a quote too
/// short, no entry — is left untouched (`None`) and routed as it is. The entry's timers and
/// state are not touched (an error is not traffic of the flow).
pub(crate) fn icmp_error<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B, ip: &mut Ip4) -> Option<Hit> {
    if ip.proto != ipproto::ICMP || ip.frag {
        return None;
    }
    let d = pkt.data();
    let msg = d.get(ip.l4..ip.end)?;
    // ICMP header (8), the quoted IPv4 header, its first 8 bytes of L4 (ports at 0..4).
    if msg.len() < 8 + 20 + 8 || !ICMP_ERRORS.contains(&msg[0]) {
        return None;
    }
    if checksum::checksum(msg) != 0 {
        return None;
    }
    let q = &msg[8..];
    let qhl = usize::from(q[0] & 0x0f) * 4;
    let qproto = q[9];
    if q[0] >> 4 != 4
        || qhl < 20
        || u16::from_be_bytes([q[6], q[7]]) & 0x1fff != 0
        || !(qproto == ipproto::UDP || qproto == ipproto::TCP)
        || q.len() < qhl + 8
    {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([q[i], q[i + 1], q[i + 2], q[i + 3]]);
    let quoted = FlowKey {
        src: word(12),
        dst: word(16),
        sport: u16::from_be_bytes([q[qhl], q[qhl + 1]]),
        dport: u16::from_be_bytes([q[qhl + 2], q[qhl + 3]]),
        proto: qproto,
    };
    // The error travels the way a packet with the quoted tuple reversed would.
    let k_in = quoted.reversed();
    if ip.dst != k_in.dst {
        return None;
    }
    let (idx, dir) = cx.ct.lookup(&k_in, cx.now, cx.c)?;
    let e = cx.ct.entry(idx);
    let t = e.rewrite_for(dir);
    let hit = Hit {
        idx,
        dir,
        flags: e.flags,
        client_mac: e.client_mac,
        to: t.packed(),
    };
    let from_endpoint = ip.src == k_in.src;
    let (l3, l4) = (ip.l3, ip.l4);
    let d = pkt.data_mut();
    let msg = &mut d[l4..ip.end];
    // The quoted packet becomes the one the peer sent (`t` reversed) by the NAT rewrite every
    // packet gets (`rewrite::nat`): addresses and IPv4 checksum, and the ports and TCP/UDP
    // checksum where the quote reaches that checksum (always for UDP; for TCP if 18 or more
    // bytes were quoted). Where it does not, the ports are written alone.
    let want = t.reversed();
    let (qo, l4q) = (8, 8 + qhl);
    let whole = rewrite::l4_csum_off(qproto).is_some_and(|off| l4q + off + 2 <= msg.len());
    let to = want.packed();
    rewrite::nat(
        msg,
        (qo, l4q, qproto),
        to,
        whole,
        quoted.rewrite_deltas(&want),
    );
    if !whole {
        msg[l4q..l4q + 4].copy_from_slice(&to.ports_wire());
    }
    Icmpv4Packet::new_unchecked(&mut *msg).fill_checksum();
    let mut outer = Ipv4Packet::new_unchecked(&mut d[l3..l4]);
    outer.set_dst_addr(t.dst.into());
    ip.dst = t.dst;
    if from_endpoint {
        outer.set_src_addr(t.src.into());
        ip.src = t.src;
    }
    outer.fill_checksum();
    cx.c.inc(Event::IcmpErrorNated);
    Some(hit)
}

/// [`icmp_error`], and the translated error routed to the flow's peer (an external client
/// through the uplink, as the flow's replies go). `None`: not an error about a NATed flow, the
/// packet untouched for the caller to route.
pub(crate) fn icmp_error_routed<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &mut Ip4,
) -> Option<Disposition> {
    let hit = icmp_error(cx, pkt, ip)?;
    Some(if hit.is_external_reply() {
        route::to_external(cx, pkt, ip, hit.client_mac)
    } else if hit.is_host_reply() {
        route::to_host(cx, pkt)
    } else {
        route::route(cx, pkt, ip)
    })
}

/// Verifies the TCP or UDP checksum (a zero UDP checksum means none, RFC 768).
fn l4_checksum_ok(d: &[u8], ip: &Ip4) -> bool {
    let Some(l4) = d.get(ip.l4..ip.end) else {
        return false;
    };
    let (src, dst) = (
        core::net::Ipv4Addr::from(ip.src),
        core::net::Ipv4Addr::from(ip.dst),
    );
    match ip.proto {
        ipproto::UDP => {
            crate::wire::udp::UdpPacket::new_checked(l4).is_ok_and(|u| u.verify_checksum(src, dst))
        }
        ipproto::TCP => {
            crate::wire::tcp::TcpPacket::new_checked(l4).is_ok_and(|t| t.verify_checksum(src, dst))
        }
        _ => true,
    }
}

/// Who starts a Service flow, which decides the backends it may go to and where its replies go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// A pod on this node: to a ClusterIP, or to a NodePort on this node's own address. Any
    /// ready backend, whatever the Service's `externalTrafficPolicy` — kube-proxy sends
    /// locally originated pod traffic to external destinations through the cluster-wide
    /// policy ("pod traffic for external destinations") — and replies routed as any packet.
    Pod,
    /// Another node's pod, to a NodePort on this node's address (it arrives through the
    /// tunnel): the Service's external policy applies, as kube-proxy's does on the node the
    /// traffic reaches. Always SNATed to this node's VTEP address (`snat_if_remote`), a local
    /// backend too: its replies then come back to this node's flow, whose owner the SNAT port
    /// names (`shard.rs`), rather than leaving straight for the client's node. The backend
    /// sees this node's VTEP address, where behind kube-proxy and Flannel it sees the client
    /// node's address (Flannel masquerades pod traffic to node addresses): the pod's own
    /// address is kept by neither. Replies are routed back through the tunnel.
    RemotePod,
    /// A client outside the cluster, to a NodePort from the uplink: the external policy
    /// applies, and replies go to this MAC on the uplink.
    External([u8; 6]),
    /// The node itself — its kernel, through the host path — to a ClusterIP (host-network
    /// pods; the API server reaching an aggregated API or a webhook by its Service). Any ready
    /// backend, and always SNATed, as kube-proxy masquerades traffic from outside the cluster
    /// CIDR to a ClusterIP: to the gateway address for a backend on this node, to the VTEP
    /// address for a remote one (the addresses Linux picks when kube-proxy's masquerade sends
    /// it out of `cni0` or `flannel.1`). The SNAT port is in the host path's worker's class
    /// (worker 0 polls the host path), so replies from anywhere come back to the flow's owner;
    /// they go to the host path ([`flags::HOST_CLIENT`]).
    Host,
}

/// Ephemeral ports SNAT may use when the client's own port is taken (Linux's default
/// `ip_local_port_range`).
const SNAT_PORT_MIN: u16 = 32768;
const SNAT_PORT_SPAN: u32 = 60999 - 32768 + 1;
/// Ports tried before giving up on a flow.
const SNAT_TRIES: u32 = 16;

/// A port in the SNAT range, spread by `h`, for a flow whose client keeps its address but not
/// its port, that stays with this worker: a pod client's flows are its port's worker's
/// whatever the port, an external client's are a hash of its address and port
/// (`shard::Shard::of_external`), so the port is searched for one that hashes here. `None` if
/// none of 256 does (with `w` workers, a chance of `(1 - 1/w)^256`).
#[cold]
fn client_port(cx: &Ctx<'_>, client: Client, src: u32, h: u32) -> Option<u16> {
    let port = |i: u32| SNAT_PORT_MIN + (h.wrapping_add(i) % SNAT_PORT_SPAN) as u16;
    match client {
        Client::External(_) => (0..256)
            .map(port)
            .find(|&p| cx.shard.of_external(src, p) == cx.shard.me),
        Client::Pod | Client::RemotePod | Client::Host => Some(port(0)),
    }
}

/// Starts a new flow to `svc` (the caller has just missed `ip`'s tuple in conntrack): picks a backend by Maglev on the flow hash, decides SNAT, inserts
/// conntrack, rewrites the packet. `snat_if_remote` is the address to SNAT to when the backend
/// is remote (NodePort); hairpin (a pod reaching itself through its Service) always SNATs to the
/// gateway so the pod does not receive a packet from its own address (which Linux drops as
/// martian), and the node's own flows ([`Client::Host`]) always SNAT, to the gateway or the
/// VTEP address.
/// `client` says who started the flow: through a NodePort, its `externalTrafficPolicy`
/// applies (`Local`: this node's backends only, [`ServiceEntry::pick_external`], which never
/// SNATs); an external client's flow also keeps the MAC its replies go to.
pub(crate) fn new_flow<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &mut Ip4,
    svc: &ServiceEntry,
    snat_if_remote: Option<u32>,
    client: Client,
) -> Result<Hit, DropReason> {
    if ip.frag {
        return Err(DropReason::Fragment);
    }
    if ip.ports.is_none() {
        return Err(DropReason::L4Malformed);
    }
    // A packet that would create state must be intact: a corrupted tuple would otherwise leave
    // an entry for a flow nobody opened, which a later real flow with that tuple would inherit
    // (Linux conntrack marks such packets invalid the same way). Established flows are not
    // re-checked: their NAT is decided, and the end host checks the checksum.
    if !l4_checksum_ok(pkt.data(), ip) {
        return Err(DropReason::L4Checksum);
    }
    let orig = ip.key();
    let hash = orig.hash();
    let b = match client {
        Client::Pod | Client::Host => svc.pick(hash).ok_or(DropReason::NoBackend)?,
        Client::RemotePod | Client::External(_) => svc.pick_external(hash)?,
    };
    let node = &cx.t.node;
    let backend_local = node.pod_cidr.contains_u32(b.ip);
    let gateway = node.gateway_ip().to_bits();
    let snat = match client {
        _ if b.ip == ip.src => Some(gateway),
        Client::Host if backend_local => Some(gateway),
        Client::Host => Some(node.vtep_ip().to_bits()),
        Client::RemotePod => snat_if_remote,
        _ if !backend_local => snat_if_remote,
        _ => None,
    };
    let mut nf = NewFlow {
        ep_slot: b.ep_slot,
        ep_gen: b.ep_gen,
        flags: 0,
        client_mac: [0; 6],
    };
    match client {
        Client::External(mac) => {
            nf.flags |= flags::EXTERNAL_CLIENT;
            nf.client_mac = mac;
        }
        Client::Host => nf.flags |= flags::HOST_CLIENT,
        Client::Pod | Client::RemotePod => {}
    }
    let mut reply = FlowKey {
        src: b.ip,
        dst: ip.src,
        sport: b.port,
        dport: orig.sport,
        proto: orig.proto,
    };
    let mut rewritten = false;
    if let Some(s) = snat {
        nf.flags |= flags::SNAT;
        reply.dst = s;
        if cx.shard.of_snat_port(reply.dport) != cx.shard.me {
            // Replies arrive for the SNAT port and go to that port's owner: take one of ours.
            reply.dport = cx
                .shard
                .snat_port(hash ^ (hash >> 16), SNAT_PORT_MIN, SNAT_PORT_SPAN);
            rewritten = true;
        }
    }
    let mut tries = 0;
    let idx = loop {
        match cx
            .ct
            .insert_after_miss(orig, reply, nf, ip.tcp_flags, cx.now, cx.c)
        {
            Ok(i) => break i,
            Err(InsertError::ReplyCollision) if tries < SNAT_TRIES => {
                // The translated tuple is a live flow's: try another source port. Without SNAT
                // the client's address stays and only its port changes (Linux remaps the port
                // of a flow it does not SNAT the same way when the tuple clashes): the same
                // client port reaching one backend through two frontends at once.
                let h = hash.wrapping_add(tries.wrapping_mul(0x9e37_79b9));
                let h = h ^ (h >> 16);
                reply.dport = match snat {
                    Some(_) => cx.shard.snat_port(h, SNAT_PORT_MIN, SNAT_PORT_SPAN),
                    None => {
                        client_port(cx, client, ip.src, h).ok_or(DropReason::NatPortExhausted)?
                    }
                };
                nf.flags |= flags::SNAT;
                tries += 1;
            }
            Err(_) => return Err(DropReason::NatPortExhausted),
        }
    };
    if tries > 0 || rewritten {
        cx.c.inc(Event::SnatPortRewritten);
    }
    cx.c.inc(Event::CtNew);
    let e = cx.ct.entry(idx);
    let to = e.rewrite_packed(Dir::Orig);
    let deltas = e.nat_deltas(Dir::Orig);
    let hit = Hit {
        idx,
        dir: Dir::Orig,
        flags: e.flags,
        client_mac: e.client_mac,
        to,
    };
    rewrite(pkt, ip, to, true, deltas);
    Ok(hit)
}
