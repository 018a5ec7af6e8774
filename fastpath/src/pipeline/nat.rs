//! Service NAT: connection-tracked DNAT to a Maglev-chosen backend, SNAT where the reply must
//! come back through this node (NodePort to a remote backend, hairpin), and reverse NAT of the
//! replies. Checksums are updated incrementally (RFC 1624).

use crate::buf::PacketBuf;
use crate::counters::{DropReason, Event};
use crate::pipeline::rewrite;
use crate::pipeline::{Ctx, Ip4};
use crate::tables::conntrack::{flags, Conntrack, Dir, FlowKey, InsertError, NewFlow, PackedKey};
use crate::tables::services::ServiceEntry;
use crate::wire::ipproto;

/// A conntrack hit that was applied to the packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
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
/// whose endpoint was removed is purged instead (so the packet can pick a live backend).
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
    let to = e.rewrite_packed(dir);
    let deltas = e.nat_deltas(dir);
    let hit = Hit {
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

/// Ephemeral ports SNAT may use when the client's own port is taken (Linux's default
/// `ip_local_port_range`).
const SNAT_PORT_MIN: u16 = 32768;
const SNAT_PORT_SPAN: u32 = 60999 - 32768 + 1;
/// Ports tried before giving up on a flow.
const SNAT_TRIES: u32 = 16;

/// Starts a new flow to `svc` (the caller has just missed `ip`'s tuple in conntrack): picks a backend by Maglev on the flow hash, decides SNAT, inserts
/// conntrack, rewrites the packet. `snat` is the address to SNAT to when the backend is remote
/// (NodePort); hairpin (a pod reaching itself through its Service) always SNATs to the gateway
/// so the pod does not receive a packet from its own address (which Linux drops as martian).
/// `external_mac` marks a client outside the cluster and where its replies go.
pub(crate) fn new_flow<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    ip: &mut Ip4,
    svc: &ServiceEntry,
    snat_if_remote: Option<u32>,
    external_mac: Option<[u8; 6]>,
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
    let b = svc.pick(hash).ok_or(DropReason::NoBackend)?;
    let node = &cx.t.node;
    let backend_local = node.pod_cidr.contains_u32(b.ip);
    let snat = if b.ip == ip.src {
        Some(node.gateway_ip().to_bits())
    } else if !backend_local {
        snat_if_remote
    } else {
        None
    };
    let mut nf = NewFlow {
        ep_slot: b.ep_slot,
        ep_gen: b.ep_gen,
        flags: 0,
        client_mac: [0; 6],
    };
    if let Some(mac) = external_mac {
        nf.flags |= flags::EXTERNAL_CLIENT;
        nf.client_mac = mac;
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
            Err(InsertError::ReplyCollision) if snat.is_some() && tries < SNAT_TRIES => {
                // The translated tuple is some other flow's: try another source port.
                let h = hash.wrapping_add(tries.wrapping_mul(0x9e37_79b9));
                reply.dport = cx
                    .shard
                    .snat_port(h ^ (h >> 16), SNAT_PORT_MIN, SNAT_PORT_SPAN);
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
        dir: Dir::Orig,
        flags: e.flags,
        client_mac: e.client_mac,
        to,
    };
    rewrite(pkt, ip, to, true, deltas);
    Ok(hit)
}
