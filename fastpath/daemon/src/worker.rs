//! One worker: a run-to-completion poll loop on one lcore.
//!
//! Each poll receives a burst from every port queue the worker serves, runs it through the
//! pipeline (which decides a disposition per packet and rewrites packets in place), moves each
//! packet to the transmit buffer of its destination port, and flushes the buffers. Nothing
//! allocates: bursts and transmit buffers are fixed arrays of owning mbufs; a dropped packet is
//! an mbuf dropped (freed to its pool) and a counter.
//!
//! With several workers (one per worker lcore), worker `w` polls the uplink's receive queues
//! `q` with `q % workers == w` (the NIC spreads flows over them by RSS), the host port if
//! `w == 0`, and the pod ports the pipeline's [`Shard`] gives it (`port % workers`); it sends on
//! transmit queue `w` of every ethdev port (each port has one per worker: no locks). A packet
//! whose NAT flow another worker owns (`fastpath::pipeline::shard`) goes into that worker's
//! handoff queue, a bounded lock-free queue the owner empties once per poll.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;
use dpdk::{Burst, Mbuf, PktPool, Port, PortStats, TapPoller, TapPort};
use fastpath::counters::{Counters, Disposition, DropReason};
use fastpath::pipeline::{Ingress, Pipeline, Sent, Shard, BURST};
use fastpath::proto::CtFlow;
use fastpath::rcu::Reader;
use fastpath::tables::conntrack::Conntrack;

/// A pod port: a DPDK ethdev port, or a TAP file descriptor the worker reads and writes itself
/// (no ethdev slot: Debian's DPDK has 32 of them, a node needs pod ports by the hundred).
#[derive(Debug)]
pub enum PodPort {
    /// An ethdev port (any DPDK device: net_pcap, net_tap, net_ring, ...).
    Eth(Port),
    /// A TAP device, with the pool its received frames are copied into.
    Tap(TapPort, Arc<PktPool>),
}

impl PodPort {
    /// The port's name: the DPDK device name, or `tap:IFNAME`.
    pub fn name(&self) -> String {
        match self {
            PodPort::Eth(p) => p.name().to_string(),
            PodPort::Tap(t, _) => format!("tap:{}", t.name()),
        }
    }

    /// The port's counters.
    pub fn stats(&self) -> PortStats {
        match self {
            PodPort::Eth(p) => p.stats(),
            PodPort::Tap(t, _) => t.stats(),
        }
    }

    /// The ethdev port, if this is one.
    pub fn eth(&self) -> Option<&Port> {
        match self {
            PodPort::Eth(p) => Some(p),
            PodPort::Tap(..) => None,
        }
    }

    #[inline]
    fn rx_burst(&self, q: u16, out: &mut Burst, max: usize) -> usize {
        match self {
            PodPort::Eth(p) => p.rx_burst_max(q, out, max),
            // One queue: the TAP is opened without IFF_MULTI_QUEUE.
            PodPort::Tap(t, pool) => t.rx_burst_max(pool, out, max),
        }
    }

    #[inline]
    fn tx_burst(&self, q: u16, pkts: &mut Burst) -> usize {
        match self {
            PodPort::Eth(p) => p.tx_burst(q, pkts),
            PodPort::Tap(t, _) => t.tx_burst(pkts),
        }
    }
}

/// The ports the workers serve. Published RCU-style like the tables: the control thread adds
/// and removes pod ports by publishing a new set, and closes a removed port only once no
/// worker reads the set that held it.
#[derive(Debug, Clone)]
pub struct PortSet {
    /// The uplink (underlay NIC).
    pub uplink: Arc<Port>,
    /// The host-path port (a TAP into the node's kernel), if configured.
    pub host: Option<Arc<Port>>,
    /// Pod ports, indexed by the pod port id the tables use.
    pub pods: Vec<Option<Arc<PodPort>>>,
}

/// One port of a set, whichever kind.
#[derive(Clone, Copy)]
enum AnyPort<'a> {
    Eth(&'a Port),
    Pod(&'a PodPort),
}

impl AnyPort<'_> {
    #[inline]
    fn rx_burst(self, q: u16, out: &mut Burst, max: usize) -> usize {
        match self {
            AnyPort::Eth(p) => p.rx_burst_max(q, out, max),
            AnyPort::Pod(p) => p.rx_burst(q, out, max),
        }
    }

    #[inline]
    fn tx_burst(self, q: u16, pkts: &mut Burst) -> usize {
        match self {
            AnyPort::Eth(p) => p.tx_burst(q, pkts),
            AnyPort::Pod(p) => p.tx_burst(q, pkts),
        }
    }
}

impl PortSet {
    /// Every DPDK ethdev port, uplink first (TAP pod ports are not ethdev ports: they close
    /// when the last set holding them is dropped).
    pub fn all(&self) -> impl Iterator<Item = &Port> {
        std::iter::once(&*self.uplink)
            .chain(self.host.as_deref())
            .chain(self.pods.iter().flatten().filter_map(|p| p.eth()))
    }

    fn get(&self, ingress: Ingress) -> Option<AnyPort<'_>> {
        match ingress {
            Ingress::Uplink => Some(AnyPort::Eth(&self.uplink)),
            Ingress::Host => self.host.as_deref().map(AnyPort::Eth),
            Ingress::Pod(p) => self.pods.get(p as usize)?.as_deref().map(AnyPort::Pod),
            Ingress::Tunnel => None,
        }
    }

    fn for_slot(&self, slot: usize) -> Option<AnyPort<'_>> {
        match slot {
            TX_UPLINK => Some(AnyPort::Eth(&self.uplink)),
            TX_HOST => self.host.as_deref().map(AnyPort::Eth),
            s => self.pods.get(s - TX_POD0)?.as_deref().map(AnyPort::Pod),
        }
    }
}

/// A conntrack dump request to one worker: the control thread asks for up to `limit` entries,
/// the worker copies them between two polls (one relaxed load per poll when nobody asks; the
/// copy, its allocation and the lock happen only when asked, never per packet).
#[derive(Debug, Default)]
pub struct CtDumpSlot {
    limit: AtomicU32,
    result: Mutex<Option<(u64, Vec<CtFlow>)>>,
}

impl CtDumpSlot {
    /// The answer slot (a poisoned lock's data is used as it is: it is only ever replaced whole).
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(u64, Vec<CtFlow>)>> {
        self.result.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the worker for up to `limit` entries (at least 1).
    pub fn request(&self, limit: u32) {
        *self.slot() = None;
        self.limit.store(limit.max(1), Ordering::Release);
    }

    /// The answer, once the worker has given it: (entries in use, the copied entries).
    pub fn take(&self) -> Option<(u64, Vec<CtFlow>)> {
        if self.limit.load(Ordering::Acquire) != 0 {
            return None;
        }
        self.slot().take()
    }

    #[inline]
    fn service(&self, worker: u16, ct: &Conntrack, now_ms: u64) {
        let limit = self.limit.load(Ordering::Relaxed);
        if limit == 0 {
            return;
        }
        let flows = ct
            .iter()
            .take(limit as usize)
            .map(|(_, e)| CtFlow::of(worker, e, now_ms))
            .collect();
        *self.slot() = Some((ct.len() as u64, flows));
        self.limit.store(0, Ordering::Release);
    }
}

/// Totals of one worker's loop (beyond the pipeline's counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Polls done.
    pub polls: u64,
    /// Packets received.
    pub rx: u64,
    /// Packets handed to a transmit queue.
    pub tx: u64,
}

impl LoopStats {
    /// The sum of several workers' totals (polls: the busiest worker's).
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a LoopStats>) -> LoopStats {
        all.into_iter()
            .fold(LoopStats::default(), |a, s| LoopStats {
                polls: a.polls.max(s.polls),
                rx: a.rx + s.rx,
                tx: a.tx + s.tx,
            })
    }
}

/// The handoff queues of a node's workers: queue `w` holds packets for worker `w`, with the
/// ingress the owner resumes them at. Bounded, lock-free (crossbeam's `ArrayQueue`), allocated
/// once; a full queue drops the packet and counts it.
#[derive(Debug)]
pub struct Handoff {
    queues: Box<[ArrayQueue<(Mbuf, Ingress)>]>,
}

impl Handoff {
    /// Packets one worker's queue holds (a few polls' worth of bursts).
    pub const DEPTH: usize = 4096;

    /// Queues for `workers` workers (none for a single worker, which never hands over).
    pub fn new(workers: u16) -> Arc<Handoff> {
        Handoff::with_depth(workers, Handoff::DEPTH)
    }

    /// Like [`Handoff::new`] with queues of `depth` packets (at least 1); tests use a small
    /// one to fill it.
    pub fn with_depth(workers: u16, depth: usize) -> Arc<Handoff> {
        let n = if workers > 1 { workers } else { 0 };
        Arc::new(Handoff {
            queues: (0..n).map(|_| ArrayQueue::new(depth.max(1))).collect(),
        })
    }
}

/// A worker: its pipeline, its ports and queues, its transmit buffers.
#[derive(Debug)]
pub struct Worker {
    pipeline: Pipeline,
    counters: Arc<Counters>,
    ports: Reader<PortSet>,
    shard: Shard,
    /// The uplink receive queues this worker polls.
    uplink_queues: Vec<u16>,
    /// One transmit buffer per destination: [uplink, host, pod 0, pod 1, ...], sized once for
    /// the configured number of pod ports.
    tx: Vec<Burst>,
    stats: LoopStats,
    dump: Arc<CtDumpSlot>,
    handoff: Arc<Handoff>,
    /// This worker's TAP pod ports, watched in one epoll set (`None`: epoll unavailable, every
    /// TAP is read each poll).
    taps: Option<TapPoller>,
    /// By pod port id: the TAP port registered in `taps` (held, so its descriptor cannot close
    /// and be reused while registered).
    tap_regs: Vec<Option<Arc<PodPort>>>,
    /// The port-set generation `tap_regs` was synchronised with.
    ports_seen: u64,
    /// Where the pipeline writes a burst's dispositions (kept here so that no array is
    /// initialised per burst).
    out: [Disposition; BURST],
    /// Most packets taken from a receive queue at once (1 to [`BURST`]).
    burst: usize,
    /// Conntrack entries aged per millisecond ([`ct_per_ms`], fixed by the table's capacity).
    ct_per_ms: usize,
}

/// From this many TAP ports on, a worker asks epoll which have frames (one `epoll_wait`, ~410 ns
/// here) instead of reading each (one `readv` returning `EAGAIN`, ~180 ns, per idle TAP).
/// Measured with `podlane-fastpath` forwarding decap traffic beside 100 idle TAP pods: 1.46 Mpps
/// reading every TAP each poll, 18.1 Mpps with epoll (23.7 with no TAP at all).
const EPOLL_MIN_TAPS: usize = 3;

const TX_UPLINK: usize = 0;
const TX_HOST: usize = 1;
const TX_POD0: usize = 2;

impl Worker {
    /// The only worker of a node: polls queue 0 of every port, for up to `max_pod_ports` pod
    /// ports, running `pipeline`.
    pub fn new(pipeline: Pipeline, ports: Reader<PortSet>, max_pod_ports: u16) -> Worker {
        Worker::sharded(pipeline, ports, 1, max_pod_ports, &Handoff::new(1))
    }

    /// Worker `pipeline.shard().me` of `pipeline.shard().workers`, polling its share of the
    /// uplink's `uplink_rx_queues` receive queues and of the pod ports, handing packets to
    /// the other workers through `handoff`.
    pub fn sharded(
        pipeline: Pipeline,
        ports: Reader<PortSet>,
        uplink_rx_queues: u16,
        max_pod_ports: u16,
        handoff: &Arc<Handoff>,
    ) -> Worker {
        let shard = pipeline.shard();
        let tx = (0..TX_POD0 + usize::from(max_pod_ports))
            .map(|_| Burst::new())
            .collect();
        let counters = Arc::clone(pipeline.counters());
        let ct_per_ms = ct_per_ms(&pipeline);
        Worker {
            pipeline,
            counters,
            ports,
            shard,
            uplink_queues: (0..uplink_rx_queues)
                .filter(|q| q % shard.workers == shard.me)
                .collect(),
            tx,
            stats: LoopStats::default(),
            dump: Arc::default(),
            handoff: Arc::clone(handoff),
            taps: TapPoller::new().ok(),
            tap_regs: Vec::new(),
            ports_seen: u64::MAX,
            out: [Disposition::Drop(DropReason::Runt); BURST],
            burst: BURST,
            ct_per_ms,
        }
    }

    /// Takes at most `n` packets from a receive queue at once (`[queues] burst`; clamped to
    /// 1 ..= [`BURST`], the default being [`BURST`]). Smaller bursts bound the time a packet
    /// waits while the burst ahead of it is processed, at some cost in throughput.
    pub fn with_burst(mut self, n: usize) -> Worker {
        self.burst = n.clamp(1, BURST);
        self
    }

    /// Where the control thread asks this worker for its conntrack entries.
    pub fn conntrack_dump(&self) -> Arc<CtDumpSlot> {
        Arc::clone(&self.dump)
    }

    /// The pipeline's counters.
    pub fn counters(&self) -> &Arc<Counters> {
        self.pipeline.counters()
    }

    /// The pipeline (for conntrack inspection).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Loop totals.
    pub fn stats(&self) -> LoopStats {
        self.stats
    }

    /// The uplink receive queues this worker polls.
    pub fn uplink_queues(&self) -> &[u16] {
        &self.uplink_queues
    }

    /// One poll of this worker's share of the current port set, and of its handoff queue.
    /// Returns the packets received (handed-over ones included).
    pub fn poll(&mut self, now_ms: u64) -> usize {
        let Worker {
            pipeline,
            counters,
            ports,
            shard,
            uplink_queues,
            tx,
            stats,
            dump,
            handoff,
            taps,
            tap_regs,
            ports_seen,
            out,
            burst,
            ct_per_ms,
        } = self;
        ports.refresh();
        let (set, seen) = (ports.get(), ports.seen());
        if seen != *ports_seen {
            *ports_seen = seen;
            if let Some(t) = taps.as_mut() {
                sync_taps(t, tap_regs, set, *shard);
            }
        }
        let mut io = Io {
            c: counters,
            set,
            txq: shard.me,
            tx,
            stats,
            handoff,
            out,
            burst: *burst,
        };
        let mut got = 0;
        for &q in uplink_queues.iter() {
            got += poll_port(pipeline, &mut io, q, Ingress::Uplink, now_ms);
        }
        if set.host.is_some() && shard.me == 0 {
            got += poll_port(pipeline, &mut io, 0, Ingress::Host, now_ms);
        }
        let use_epoll = taps.as_ref().is_some_and(|t| t.len() >= EPOLL_MIN_TAPS);
        for (p, port) in set.pods.iter().enumerate() {
            let Some(port) = port else {
                continue;
            };
            // TAPs registered in the epoll set are read below, only when they have frames.
            let watched = use_epoll
                && matches!(**port, PodPort::Tap(..))
                && tap_regs.get(p).is_some_and(|r| r.is_some());
            let p = p as u16;
            if !watched && shard.of_pod_port(p) == shard.me {
                got += poll_port(pipeline, &mut io, 0, Ingress::Pod(p), now_ms);
            }
        }
        if let Some(t) = taps.as_mut().filter(|_| use_epoll) {
            for p in t.ready() {
                got += poll_port(pipeline, &mut io, 0, Ingress::Pod(p as u16), now_ms);
            }
        }
        if !shard.single() {
            got += poll_handoff(pipeline, &mut io, now_ms);
        }
        pipeline.maintain(now_ms, *ct_per_ms);
        dump.service(shard.me, pipeline.conntrack(), now_ms);
        stats.polls += 1;
        got
    }
}

/// Conntrack entries a worker ages per millisecond: its whole table once a second (timeouts
/// are 10 s and more; lookups drop expired entries themselves), at least 16.
#[inline]
fn ct_per_ms(p: &Pipeline) -> usize {
    p.conntrack().capacity().div_ceil(1000).max(16)
}

/// Brings the epoll set in line with the port set: this worker's TAP pod ports registered
/// under their pod port id, replaced or removed ones unregistered (while still open: `regs`
/// holds them until then). Runs when the port set changes, not per packet.
fn sync_taps(
    taps: &mut TapPoller,
    regs: &mut Vec<Option<Arc<PodPort>>>,
    set: &PortSet,
    shard: Shard,
) {
    let n = set.pods.len().max(regs.len());
    regs.resize(n, None);
    for (p, reg) in regs.iter_mut().enumerate() {
        let want = set.pods.get(p).and_then(|x| x.as_ref()).filter(|x| {
            matches!(***x, PodPort::Tap(..)) && shard.of_pod_port(p as u16) == shard.me
        });
        let same = match (want, reg.as_ref()) {
            (Some(w), Some(r)) => Arc::ptr_eq(w, r),
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        if let Some(old) = reg.take() {
            if let PodPort::Tap(t, _) = &*old {
                let _ = taps.remove(t);
            }
        }
        if let Some(new) = want {
            if let PodPort::Tap(t, _) = &**new {
                // Unregistered (should epoll refuse it), the port is read every poll instead.
                if taps.add(t, p as u64).is_ok() {
                    *reg = Some(Arc::clone(new));
                }
            }
        }
    }
}

/// What a burst's forwarding needs besides the pipeline: the ports, this worker's transmit
/// queue and buffers, its counters, the handoff queues.
struct Io<'a> {
    c: &'a Counters,
    set: &'a PortSet,
    txq: u16,
    tx: &'a mut [Burst],
    stats: &'a mut LoopStats,
    handoff: &'a Handoff,
    /// The pipeline's dispositions for the burst being forwarded.
    out: &'a mut [Disposition; BURST],
    /// Most packets taken from a receive queue at once.
    burst: usize,
}

/// Receives one burst from receive queue `rxq` of `ingress`, runs it through the pipeline,
/// sends it on.
#[inline]
fn poll_port(
    pipeline: &mut Pipeline,
    io: &mut Io<'_>,
    rxq: u16,
    ingress: Ingress,
    now_ms: u64,
) -> usize {
    let mut burst = Burst::new();
    let n = match io.set.get(ingress) {
        Some(port) => port.rx_burst(rxq, &mut burst, io.burst),
        None => 0,
    };
    if n == 0 {
        return 0;
    }
    io.stats.rx += n as u64;
    // Multi-segment packets cannot go through the pipeline. Ports are set up without
    // scatter, so they hardly arrive (net_pcap still chains a frame bigger than an mbuf);
    // should one, it is dropped and counted here. Every mbuf has at least one segment, so
    // the burst is all single-segment exactly when the counts add up to its length: a sum
    // without a branch per packet (the early-exit `all` cost five instructions a packet).
    let segments: u32 = burst.iter().map(|m| u32::from(m.segments())).sum();
    if segments != n as u32 {
        let c = io.c;
        burst.retain(|m| {
            let whole = m.is_contiguous();
            if !whole {
                c.count_drop(DropReason::MultiSegment);
            }
            whole
        });
    }
    forward(pipeline, io, &mut burst, ingress, true, now_ms);
    n
}

/// Takes up to two bursts of packets other workers handed over, and forwards them; packets
/// that resume at the same ingress go through the pipeline together.
fn poll_handoff(pipeline: &mut Pipeline, io: &mut Io<'_>, now_ms: u64) -> usize {
    let me = usize::from(pipeline.shard().me);
    let Some(q) = io.handoff.queues.get(me) else {
        return 0;
    };
    let mut got = 0;
    let mut batch = Burst::new();
    let mut at = Ingress::Uplink;
    while got < 2 * BURST {
        let Some((m, ingress)) = q.pop() else {
            break;
        };
        got += 1;
        if !batch.is_empty() && (ingress != at || batch.is_full()) {
            forward(pipeline, io, &mut batch, at, false, now_ms);
        }
        at = ingress;
        let _ = batch.push(m); // never full here: flushed just above
    }
    if !batch.is_empty() {
        forward(pipeline, io, &mut batch, at, false, now_ms);
    }
    got
}

/// Runs a burst through the pipeline (`received`: from a port; else handed over by another
/// worker) and moves each packet to its destination's transmit queue, buffer or handoff queue.
/// `burst` is empty afterwards.
#[inline]
fn forward(
    pipeline: &mut Pipeline,
    io: &mut Io<'_>,
    burst: &mut Burst,
    ingress: Ingress,
    received: bool,
    now_ms: u64,
) {
    let len = burst.len();
    // The worker's own array: written whole by the pipeline, never re-initialised per burst.
    let out = &mut io.out[..len];
    let sent = if received {
        pipeline.process(ingress, burst.as_mut_slice(), out, now_ms)
    } else {
        pipeline.process_handed(ingress, burst.as_mut_slice(), out, now_ms)
    };
    let c = io.c;
    // The common case: the whole burst goes one way (a train of one flow, or one kind of
    // traffic). It is sent from where it was received, with no per-packet move.
    if let Some(slot) = same_slot(sent, out) {
        if io.tx.get(slot).is_some_and(|b| b.is_empty()) {
            send(io.set, io.txq, c, io.stats, slot, burst);
            return;
        }
    }
    // The transmit buffers this burst filled (at most one per packet), so the flush visits
    // those and not every configured port.
    let mut touched: heapless::Vec<usize, BURST> = heapless::Vec::new();
    for (m, d) in core::mem::take(burst).into_iter().zip(io.out.iter()) {
        let slot = match *d {
            Disposition::ToUplink => TX_UPLINK,
            Disposition::ToHost => TX_HOST,
            Disposition::ToPod(p) => TX_POD0 + p as usize,
            Disposition::Drop(_) => continue, // counted by the pipeline; `m` is freed here
            Disposition::Handoff { worker, ingress } => {
                match io.handoff.queues.get(usize::from(worker)) {
                    Some(q) => {
                        if q.push((m, ingress)).is_err() {
                            c.count_drop(DropReason::HandoffQueueFull);
                        }
                    }
                    None => c.count_drop(DropReason::HandoffQueueFull),
                }
                continue;
            }
        };
        let Some(buf) = io.tx.get_mut(slot) else {
            c.count_drop(DropReason::NoSuchPort);
            continue;
        };
        if buf.is_empty() {
            let _ = touched.push(slot);
        }
        // A buffer holds at most one burst: it is flushed after every burst.
        if buf.push(m).is_err() {
            c.count_drop(DropReason::TxQueueFull);
        }
    }
    let Io {
        set,
        tx,
        txq,
        stats,
        ..
    } = io;
    for &slot in &touched {
        if let Some(buf) = tx.get_mut(slot) {
            send(set, *txq, c, stats, slot, buf);
        }
    }
}

/// The transmit buffer every one of `out` goes to, if they all go to the same one: known from
/// the pipeline's counts.
#[inline]
fn same_slot(sent: Sent, out: &[Disposition]) -> Option<usize> {
    let n = out.len() as u64;
    if n == 0 {
        return None;
    }
    if sent.uplink == n {
        return Some(TX_UPLINK);
    }
    if sent.host == n {
        return Some(TX_HOST);
    }
    match sent.pod_port {
        Some(p) if sent.pod == n => Some(TX_POD0 + usize::from(p)),
        _ => None,
    }
}

/// Sends `pkts` to the port of transmit slot `slot` on this worker's queue; what a full queue
/// refuses after one retry is freed and counted, and so is what is addressed to a port the set
/// does not have (a pod port being removed). `pkts` is empty afterwards.
#[inline]
fn send(
    set: &PortSet,
    txq: u16,
    c: &Counters,
    stats: &mut LoopStats,
    slot: usize,
    pkts: &mut Burst,
) {
    let Some(port) = set.for_slot(slot) else {
        for _ in core::mem::take(pkts) {
            c.count_drop(DropReason::NoSuchPort);
        }
        return;
    };
    let mut sent = port.tx_burst(txq, pkts);
    if !pkts.is_empty() {
        sent += port.tx_burst(txq, pkts);
    }
    stats.tx += sent as u64;
    if !pkts.is_empty() {
        for _ in core::mem::take(pkts) {
            c.count_drop(DropReason::TxQueueFull);
        }
    }
}
