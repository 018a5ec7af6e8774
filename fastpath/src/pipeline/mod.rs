//! The burst pipeline: one burst (up to [`BURST`] packets) from one ingress in, one
//! [`Disposition`] per packet out.
//!
//! Run to completion, per packet, with no allocation, lock or log: the tables come from one RCU
//! version taken at the start of the burst, conntrack is the worker's own, counters are the
//! worker's own. Which file does what:
//!
//! | step (brief, "Data path, per packet")           | file          |
//! |--------------------------------------------------|---------------|
//! | pod ingress: anti-spoofing, dispatch             | `pod.rs`      |
//! | proxy ARP (gateway, node IP)                     | `arp.rs`      |
//! | ClusterIP / NodePort DNAT, SNAT, reverse NAT     | `nat.rs`      |
//! | local delivery, route choice                     | `route.rs`    |
//! | VXLAN encap                                      | `encap.rs`    |
//! | uplink ingress: ARP, VXLAN decap, NodePort, host | `uplink.rs`   |
//! | VXLAN header checks and strip                    | `decap.rs`    |
//! | host-path ingress                                | `host.rs`     |
//! | ICMP: echo for the gateway, frag-needed          | `icmp.rs`     |
//! | in-place rewrites, incremental checksums         | `rewrite.rs`  |
//! | which worker owns a flow (several workers)       | `shard.rs`    |

use std::sync::Arc;

use crate::buf::PacketBuf;
use crate::counters::{Counters, Disposition, DropReason, Event};
use crate::rcu::Reader;
use crate::tables::conntrack::{Conntrack, FlowKey, PodRefs, Timeouts};
use crate::update::Tables;
use crate::wire::{be16, checksum, ipproto};

mod arp;
mod decap;
mod encap;
mod fast;
mod host;
mod icmp;
mod nat;
mod pod;
pub(crate) mod rewrite;
mod route;
pub mod shard;
mod uplink;

pub use shard::Shard;

/// The largest burst the pipeline takes at once.
pub const BURST: usize = 32;

/// Frames longer than this are dropped as `jumbo` (9216-byte MTU + Ethernet + two VLAN tags).
pub const MAX_FRAME_LEN: usize = 9216 + 14 + 8;

/// How many frames ahead the pod lane prefetches a Service frame's conntrack slot: far
/// enough for the slot to arrive while the frames between are processed, as VPP's nodes
/// prefetch (not tuned further: this machine's run-to-run noise is larger than the steps).
const SLOT_PREFETCH: usize = 4;

/// Where a burst came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ingress {
    /// A pod's port.
    Pod(u16),
    /// The uplink (the underlay NIC).
    Uplink,
    /// The host-path port (the node kernel's traffic).
    Host,
    /// A frame another worker received from the uplink and decapsulated, handed over because
    /// this worker owns its flow (only ever in [`Pipeline::process_handed`]).
    Tunnel,
}

/// How many packets of a burst the pipeline sent each way (drops are counted by reason in the
/// counters). The I/O layer sends a burst that all went one way from where it was received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// To pod ports.
    pub pod: u64,
    /// The pod port all of those went to, if they all went to one.
    pub pod_port: Option<u16>,
    /// To the uplink.
    pub uplink: u64,
    /// To the host path.
    pub host: u64,
    /// Handed to other workers.
    pub handoff: u64,
}

/// One worker's pipeline: its table reader, its conntrack, its counters.
#[derive(Debug)]
pub struct Pipeline {
    tables: Reader<Tables>,
    ct: Conntrack,
    counters: Arc<Counters>,
    cache: Cache,
    shard: Shard,
    fast: bool,
    last_maintain: Option<u64>,
}

/// One-entry caches in front of hash lookups (VPP's "last tunnel" cache): traffic comes in
/// trains from one peer. Tagged with the table generation they were filled under.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Cache {
    generation: u64,
    /// The last underlay source accepted as a known VTEP (0: none).
    vtep_ip: u32,
}

impl Cache {
    /// True if `ip` is a known node's underlay IP.
    #[inline(always)]
    pub fn known_vtep(&mut self, t: &Tables, ip: u32) -> bool {
        if self.vtep_for(t) == ip && ip != 0 {
            return true;
        }
        let known = t.routes.by_underlay(ip).is_some();
        if known {
            self.generation = t.generation;
            self.vtep_ip = ip;
        }
        known
    }

    /// The underlay IP this cache holds as a known VTEP's for tables `t` (0: none).
    #[inline(always)]
    pub fn vtep_for(&self, t: &Tables) -> u32 {
        if self.generation == t.generation {
            self.vtep_ip
        } else {
            0
        }
    }
}

/// What every stage gets: the table version for this burst, conntrack, counters and the time.
pub(crate) struct Ctx<'a> {
    pub t: &'a Tables,
    pub ct: &'a mut Conntrack,
    pub c: &'a Counters,
    pub now: u64,
    pub cache: &'a mut Cache,
    pub shard: Shard,
    /// False for packets another worker handed over: they are never handed on.
    pub may_handoff: bool,
    /// Use the fast lanes (`fast.rs`); off only to compare them with the general path.
    pub fast: bool,
}

impl Ctx<'_> {
    /// `Some(Handoff)` if worker `owner` is not this one and this packet may still be handed.
    #[inline(always)]
    pub fn handoff(&self, owner: u16, ingress: Ingress) -> Option<Disposition> {
        (owner != self.shard.me && self.may_handoff).then_some(Disposition::Handoff {
            worker: owner,
            ingress,
        })
    }
}

/// A parsed IPv4 header (offsets into the frame, fields in host order).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ip4 {
    pub l3: usize,
    pub l4: usize,
    pub end: usize,
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub ttl: u8,
    pub df: bool,
    /// MF set or a non-zero offset.
    pub frag: bool,
    /// Ports, when the packet is TCP/UDP, not a later fragment, and the L4 header is whole.
    pub ports: Option<(u16, u16)>,
    pub tcp_flags: u8,
}

impl Ip4 {
    /// The 5-tuple (ports zero when absent).
    #[inline(always)]
    pub fn key(&self) -> FlowKey {
        let (sport, dport) = self.ports.unwrap_or((0, 0));
        FlowKey {
            src: self.src,
            dst: self.dst,
            sport,
            dport,
            proto: self.proto,
        }
    }

    /// Hash of the inner flow for the VXLAN source port (`FlowKey::wide_hash`): fragments
    /// hash without ports so a datagram's fragments stay on one underlay path.
    #[inline(always)]
    pub fn flow_hash(&self) -> u64 {
        let mut k = self.key();
        if self.frag {
            k.sport = 0;
            k.dport = 0;
        }
        k.wide_hash()
    }
}

/// Parses and validates the IPv4 header at `l3`: version, IHL, lengths, header checksum.
/// The fixed 20 bytes are copied into an array once, so the field reads need no bounds checks.
#[inline(always)]
pub(crate) fn parse_ipv4(d: &[u8], l3: usize) -> Result<Ip4, DropReason> {
    let h: [u8; 20] = d
        .get(l3..l3 + 20)
        .and_then(|s| s.try_into().ok())
        .ok_or(DropReason::Ipv4Malformed)?;
    if h[0] >> 4 != 4 {
        return Err(DropReason::Ipv4Malformed);
    }
    let hlen = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let end = l3 + total;
    if hlen < 20 || total < hlen || end > d.len() {
        return Err(DropReason::Ipv4Malformed);
    }
    let ok = if hlen == 20 {
        checksum::ipv4_header_ok(&h)
    } else {
        checksum::fold(checksum::sum(&d[l3..l3 + hlen])) == 0xffff
    };
    if !ok {
        return Err(DropReason::Ipv4Checksum);
    }
    let l4 = l3 + hlen;
    let proto = h[9];
    let fo = u16::from_be_bytes([h[6], h[7]]);
    let frag = fo & 0x3fff != 0; // MF or a non-zero offset
    let mut ports = None;
    let mut tcp_flags = 0;
    if fo & 0x1fff == 0 {
        let l4len = end - l4;
        match proto {
            ipproto::TCP if l4len >= 20 => {
                ports = Some((be16(d, l4), be16(d, l4 + 2)));
                tcp_flags = d[l4 + 13];
            }
            ipproto::UDP if l4len >= 8 => ports = Some((be16(d, l4), be16(d, l4 + 2))),
            _ => {}
        }
    }
    Ok(Ip4 {
        l3,
        l4,
        end,
        src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
        proto,
        ttl: h[8],
        df: fo & 0x4000 != 0,
        frag,
        ports,
        tcp_flags,
    })
}

/// Checks a frame's size and finds its L3 header past up to two VLAN tags: `(ethertype, l3)`.
#[inline(always)]
pub(crate) fn l2_prologue(d: &[u8]) -> Result<(u16, usize), DropReason> {
    if d.len() < 14 {
        return Err(DropReason::Runt);
    }
    if d.len() > MAX_FRAME_LEN {
        return Err(DropReason::Jumbo);
    }
    crate::wire::ethernet::l3_offset(d).ok_or(DropReason::Runt)
}

/// Drops Ethernet padding after the IPv4 packet (a 60-byte minimum frame carrying less), so it
/// is not carried into a tunnel or counted as payload.
#[inline(always)]
pub(crate) fn trim_padding<B: PacketBuf>(pkt: &mut B, ip: &Ip4) {
    let len = pkt.len();
    if len > ip.end {
        pkt.trim(len - ip.end);
    }
}

/// True for destinations the pod network never routes: multicast, limited broadcast.
#[inline(always)]
pub(crate) fn is_multicast_or_broadcast(ip: u32) -> bool {
    ip >> 28 == 0xe || ip == u32::MAX
}

impl Pipeline {
    /// A worker's pipeline over the tables `tables` reads, with a conntrack table of
    /// `ct_capacity` entries.
    pub fn new(tables: Reader<Tables>, ct_capacity: u32, timeouts: Timeouts) -> Pipeline {
        Pipeline::workers(tables, 1, ct_capacity, timeouts)
            .pop()
            .expect("one pipeline")
    }

    /// The pipelines of `workers` workers of one node (at least one): each with its own
    /// conntrack of `ct_capacity` entries and counters, sharing the per-pod flow counts, each
    /// knowing its [`Shard`].
    pub fn workers(
        tables: Reader<Tables>,
        workers: u16,
        ct_capacity: u32,
        timeouts: Timeouts,
    ) -> Vec<Pipeline> {
        let (base, slots) = {
            let t = tables.get();
            (t.node.pod_cidr.network().to_bits(), t.pods.slots())
        };
        let refs = Arc::new(PodRefs::new(slots));
        let workers = workers.max(1);
        (0..workers)
            .map(|me| Pipeline {
                tables: tables.clone(),
                ct: Conntrack::with_refs(ct_capacity, timeouts, base, Arc::clone(&refs)),
                counters: Arc::new(Counters::default()),
                cache: Cache::default(),
                shard: Shard::new(workers, me),
                fast: true,
                last_maintain: None,
            })
            .collect()
    }

    /// This worker's place among the node's workers.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Turns the fast lanes off (or on again): every frame then takes the general path. For
    /// tests that check the lanes change nothing but speed.
    pub fn set_fast_lanes(&mut self, on: bool) {
        self.fast = on;
    }

    /// This worker's counters (share the `Arc` with whoever reads them).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// This worker's conntrack (for the CLI and tests; the data core owns it).
    pub fn conntrack(&self) -> &Conntrack {
        &self.ct
    }

    /// The table version this worker used last.
    pub fn tables(&self) -> &Tables {
        self.tables.get()
    }

    /// Housekeeping, called once per poll: ages out up to `per_ms` conntrack entries for each
    /// millisecond since the last call that did (at most 10 ms' worth at once), and nothing
    /// when the clock has not moved. Aging is paced by time, not by polls: a worker polls about
    /// a million times a second, and scanning a fixed number of entries every poll swept a
    /// 65,536-entry table hundreds of times a second, touching cold entries for nothing — ~30
    /// cycles per packet on the DNAT path. Expired entries met by a lookup go at once anyway.
    /// The check that the clock has not moved — every poll but about one a millisecond — is
    /// inlined into the caller's loop; the aging is not.
    #[inline]
    pub fn maintain(&mut self, now_ms: u64, per_ms: usize) {
        if self.last_maintain.is_some_and(|t| now_ms <= t) {
            return;
        }
        self.age(now_ms, per_ms);
    }

    /// [`Pipeline::maintain`] once the clock has moved.
    #[inline(never)]
    fn age(&mut self, now_ms: u64, per_ms: usize) {
        let elapsed = match self.last_maintain {
            Some(t) => now_ms.saturating_sub(t).min(10) as usize,
            None => 1,
        };
        self.last_maintain = Some(now_ms);
        self.ct
            .expire(now_ms, per_ms.saturating_mul(elapsed), &self.counters);
    }

    /// Processes one burst from `ingress`: `out[i]` gets the disposition of `pkts[i]`. Packets
    /// are rewritten in place (encapsulated, decapsulated, NATed, answered). `now_ms` is the
    /// worker's clock for conntrack timeouts. At most `min(pkts.len(), out.len())` packets are
    /// processed. Returns how many went each way.
    pub fn process<B: PacketBuf>(
        &mut self,
        ingress: Ingress,
        pkts: &mut [B],
        out: &mut [Disposition],
        now_ms: u64,
    ) -> Sent {
        self.run(ingress, pkts, out, now_ms, true)
    }

    /// Processes packets another worker handed over (`Disposition::Handoff`) as if received on
    /// `ingress`: counted as taken over rather than received, and never handed on.
    pub fn process_handed<B: PacketBuf>(
        &mut self,
        ingress: Ingress,
        pkts: &mut [B],
        out: &mut [Disposition],
        now_ms: u64,
    ) -> Sent {
        self.run(ingress, pkts, out, now_ms, false)
    }

    #[inline(always)]
    fn run<B: PacketBuf>(
        &mut self,
        ingress: Ingress,
        pkts: &mut [B],
        out: &mut [Disposition],
        now_ms: u64,
        received: bool,
    ) -> Sent {
        let n = pkts.len().min(out.len());
        let Pipeline {
            tables,
            ct,
            counters,
            cache,
            shard,
            fast,
            last_maintain: _,
        } = self;
        let t = tables.refresh();
        let c: &Counters = counters;
        let mut cx = Ctx {
            t,
            ct,
            c,
            now: now_ms,
            cache,
            shard: *shard,
            may_handoff: received,
            fast: *fast,
        };
        let rx = match ingress {
            _ if !received => Event::HandoffRx,
            Ingress::Pod(_) => Event::RxPod,
            Ingress::Uplink | Ingress::Tunnel => Event::RxUplink,
            Ingress::Host => Event::RxHost,
        };
        // Dispositions are counted per burst, drops per packet (with their reason). One loop
        // per ingress kind, so each is compiled for its own path.
        let mut tx = Tally::default();
        let burst = pkts[..n].iter_mut().zip(out[..n].iter_mut());
        match ingress {
            Ingress::Pod(port) => {
                // The port's owner is looked up once per burst, for the lane.
                let owner = if cx.fast {
                    t.pods.owner_of_port(port)
                } else {
                    None
                };
                let lane = owner.as_ref().map(|ow| fast::PodLane::new(ow, t));
                // Whether the pod is a NATed flow's backend: the same for the whole burst (every
                // frame the lane takes is from the port's pod), looked up again after a frame
                // the general path took, as that may have started or ended a flow. Read after
                // the burst was received, it sees every flow any worker started before these
                // frames were sent (a backend answers only what reached it, after the insert);
                // a count that drops meanwhile only sends frames the general way.
                let backend_of = |cx: &Ctx<'_>| owner.is_some_and(|ow| cx.ct.pod_is_backend(ow.ip));
                let mut backend = backend_of(&cx);
                match lane {
                    Some(lane) => {
                        // One frame: the lane, else the general path (after which the pod's
                        // backend state is read again). A macro, not a closure: a closure
                        // holding `cx` and `backend` cost encap 35 instructions a packet.
                        macro_rules! one {
                            ($pkt:expr, $hash:expr) => {
                                match fast::pod(&mut cx, &lane, backend, $hash, $pkt, &mut tx) {
                                    Some(d) => d,
                                    None => {
                                        let d = pod::process(&mut cx, port, $pkt);
                                        backend = backend_of(&cx);
                                        count(c, &mut tx, d)
                                    }
                                }
                            };
                        }
                        // A burst that starts with frames of different flows to Services
                        // prefetches each Service frame's conntrack slot SLOT_PREFETCH frames
                        // ahead; the others pay one test a burst, nothing per packet (and
                        // buffer types that do not prefetch, not even that). The lane looks
                        // a prefetched frame up with the hash the prefetch computed: the
                        // lookup's first load then waits on no multiply of the frame's bytes
                        // (DNAT + encap +4.4% at 1,024 flows, 8 alternating pairs, for 3
                        // instructions fewer; docs/PERFORMANCE.md).
                        if B::PREFETCHES && fast::flows_to_services(&lane, &pkts[..n]) {
                            let (pkts, out) = (&mut pkts[..n], &mut out[..n]);
                            let mut hashes = [None; BURST];
                            for (h, p) in hashes.iter_mut().zip(pkts.iter()).take(SLOT_PREFETCH) {
                                *h = fast::prefetch_service_slot(&cx, &lane, p);
                            }
                            for i in 0..n {
                                if let Some(p) = pkts.get(i + SLOT_PREFETCH) {
                                    if let Some(h) = hashes.get_mut(i + SLOT_PREFETCH) {
                                        *h = fast::prefetch_service_slot(&cx, &lane, p);
                                    }
                                }
                                let h = hashes.get(i).copied().flatten();
                                out[i] = one!(&mut pkts[i], h);
                            }
                        } else {
                            for (pkt, o) in pkts[..n].iter_mut().zip(out[..n].iter_mut()) {
                                *o = one!(pkt, None);
                            }
                        }
                    }
                    None => {
                        for (pkt, o) in burst {
                            *o = count(c, &mut tx, pod::process(&mut cx, port, pkt));
                        }
                    }
                }
            }
            Ingress::Uplink if cx.fast => {
                let lane = fast::UplinkLane::new(t, cx.cache);
                for (pkt, o) in burst {
                    *o = match fast::uplink::<_, false>(&mut cx, &lane, pkt, &mut tx) {
                        Some(d) => d,
                        None => fast::uplink_checksummed(&mut cx, &lane, pkt, &mut tx),
                    };
                }
            }
            Ingress::Uplink => {
                for (pkt, o) in burst {
                    *o = count(c, &mut tx, uplink::process(&mut cx, pkt));
                }
            }
            Ingress::Host => {
                for (pkt, o) in burst {
                    *o = count(c, &mut tx, host::process(&mut cx, pkt));
                }
            }
            Ingress::Tunnel => {
                for (pkt, o) in burst {
                    *o = count(c, &mut tx, uplink::from_tunnel(&mut cx, pkt));
                }
            }
        }
        c.add(rx, n as u64);
        let Tally {
            sent: [pod, uplink, host, handoff],
            pod_or,
            pod_and,
        } = tx;
        c.add(Event::TxPod, pod);
        c.add(Event::TxUplink, uplink);
        c.add(Event::TxHost, host);
        c.add(Event::HandoffTx, handoff);
        Sent {
            pod,
            pod_port: (pod > 0 && pod_or == pod_and).then_some(pod_or),
            uplink,
            host,
            handoff,
        }
    }
}

/// A burst's sends as the pipeline counts them: per way, and the OR and AND of the pod ports
/// (equal exactly when every pod-bound packet went to one port — two register operations a
/// packet instead of a scan of the burst afterwards).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tally {
    sent: [u64; 4],
    pod_or: u16,
    pod_and: u16,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            sent: [0; 4],
            pod_or: 0,
            pod_and: u16::MAX,
        }
    }
}

/// Counts a packet's disposition: a send in `tx` (pod, uplink, host, handoff), a drop under its
/// reason.
#[inline(always)]
pub(crate) fn count(c: &Counters, tx: &mut Tally, d: Disposition) -> Disposition {
    match d {
        Disposition::ToPod(p) => {
            tx.sent[0] += 1;
            tx.pod_or |= p;
            tx.pod_and &= p;
        }
        Disposition::ToUplink => tx.sent[1] += 1,
        Disposition::ToHost => tx.sent[2] += 1,
        Disposition::Handoff { .. } => tx.sent[3] += 1,
        Disposition::Drop(r) => c.count_drop(r),
    }
    d
}

/// Returns early from a stage with `Drop(reason)`.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return $crate::counters::Disposition::Drop(r),
        }
    };
}
pub(crate) use tri;
