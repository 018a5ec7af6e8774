//! One worker: a run-to-completion poll loop on one lcore.
//!
//! Each poll receives a burst from every port the worker serves, runs it through the pipeline
//! (which decides a disposition per packet and rewrites packets in place), moves each packet
//! to the transmit buffer of its destination port, and flushes the buffers. Nothing allocates:
//! bursts and transmit buffers are fixed arrays of owning mbufs; a dropped packet is an mbuf
//! dropped (freed to its pool) and a counter.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use dpdk::{Burst, PktPool, Port, PortStats, TapPort};
use fastpath::counters::{Counters, Disposition, DropReason};
use fastpath::pipeline::{Ingress, Pipeline, BURST};
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
    fn rx_burst(&self, q: u16, out: &mut Burst) -> usize {
        match self {
            PodPort::Eth(p) => p.rx_burst(q, out),
            // One queue: the TAP is opened without IFF_MULTI_QUEUE.
            PodPort::Tap(t, pool) => t.rx_burst(pool, out),
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
    fn rx_burst(self, q: u16, out: &mut Burst) -> usize {
        match self {
            AnyPort::Eth(p) => p.rx_burst(q, out),
            AnyPort::Pod(p) => p.rx_burst(q, out),
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

/// A worker: its pipeline, its ports, its transmit buffers.
#[derive(Debug)]
pub struct Worker {
    pipeline: Pipeline,
    counters: Arc<Counters>,
    ports: Reader<PortSet>,
    queue: u16,
    /// One transmit buffer per destination: [uplink, host, pod 0, pod 1, ...], sized once for
    /// the configured number of pod ports.
    tx: Vec<Burst>,
    stats: LoopStats,
    dump: Arc<CtDumpSlot>,
}

const TX_UPLINK: usize = 0;
const TX_HOST: usize = 1;
const TX_POD0: usize = 2;

impl Worker {
    /// A worker polling queue `queue` of the ports `ports` publishes, for up to `max_pod_ports`
    /// pod ports, running `pipeline`.
    pub fn new(
        pipeline: Pipeline,
        ports: Reader<PortSet>,
        queue: u16,
        max_pod_ports: u16,
    ) -> Worker {
        let tx = (0..TX_POD0 + usize::from(max_pod_ports))
            .map(|_| Burst::new())
            .collect();
        let counters = Arc::clone(pipeline.counters());
        Worker {
            pipeline,
            counters,
            ports,
            queue,
            tx,
            stats: LoopStats::default(),
            dump: Arc::default(),
        }
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

    /// One poll of every port of the current port set. Returns the packets received.
    pub fn poll(&mut self, now_ms: u64) -> usize {
        let Worker {
            pipeline,
            counters,
            ports,
            queue,
            tx,
            stats,
            dump,
        } = self;
        let set = ports.refresh();
        let mut got = poll_port(
            pipeline,
            counters,
            set,
            *queue,
            tx,
            stats,
            Ingress::Uplink,
            now_ms,
        );
        if set.host.is_some() {
            got += poll_port(
                pipeline,
                counters,
                set,
                *queue,
                tx,
                stats,
                Ingress::Host,
                now_ms,
            );
        }
        for (p, port) in set.pods.iter().enumerate() {
            if port.is_some() {
                let ing = Ingress::Pod(p as u16);
                got += poll_port(pipeline, counters, set, *queue, tx, stats, ing, now_ms);
            }
        }
        pipeline.maintain(now_ms, 32);
        dump.service(*queue, pipeline.conntrack(), now_ms);
        stats.polls += 1;
        got
    }
}

/// Receives one burst from `ingress`, runs it through the pipeline, sends it on.
#[allow(clippy::too_many_arguments)]
#[inline]
fn poll_port(
    pipeline: &mut Pipeline,
    c: &Counters,
    set: &PortSet,
    q: u16,
    tx: &mut [Burst],
    stats: &mut LoopStats,
    ingress: Ingress,
    now_ms: u64,
) -> usize {
    let mut rx = Burst::new();
    let n = match set.get(ingress) {
        Some(port) => port.rx_burst(q, &mut rx),
        None => 0,
    };
    if n == 0 {
        return 0;
    }
    stats.rx += n as u64;
    // Multi-segment packets cannot go through the pipeline. Ports are set up without
    // scatter, so they do not arrive; should one, it is dropped and counted here.
    let mut burst = if rx.iter().all(|m| m.is_contiguous()) {
        rx
    } else {
        let mut b = Burst::new();
        for m in rx {
            if m.is_contiguous() {
                let _ = b.push(m);
            } else {
                c.count_drop(DropReason::MultiSegment);
            }
        }
        b
    };
    let mut out = [Disposition::Drop(DropReason::Runt); BURST];
    let len = burst.len();
    pipeline.process(ingress, burst.as_mut_slice(), &mut out[..len], now_ms);
    // The transmit buffers this burst filled (at most one per packet), so the flush visits
    // those and not every configured port.
    let mut touched: heapless::Vec<usize, BURST> = heapless::Vec::new();
    for (m, d) in burst.into_iter().zip(out.iter()) {
        let slot = match *d {
            Disposition::ToUplink => TX_UPLINK,
            Disposition::ToHost => TX_HOST,
            Disposition::ToPod(p) => TX_POD0 + p as usize,
            Disposition::Drop(_) => continue, // counted by the pipeline; `m` is freed here
        };
        let Some(buf) = tx.get_mut(slot) else {
            c.count_drop(DropReason::NoSuchPort);
            continue;
        };
        if buf.is_empty() {
            let _ = touched.push(slot);
        }
        // A buffer holds at most one burst: it is flushed after every received burst.
        if buf.push(m).is_err() {
            c.count_drop(DropReason::TxQueueFull);
        }
    }
    flush(c, set, q, tx, &touched, stats);
    n
}

/// Sends every transmit buffer; what a full queue refuses after one retry is freed and
/// counted, and so is what is addressed to a port the set does not have (a pod port being
/// removed).
fn flush(
    c: &Counters,
    set: &PortSet,
    q: u16,
    tx: &mut [Burst],
    touched: &[usize],
    stats: &mut LoopStats,
) {
    for &slot in touched {
        let Some(buf) = tx.get_mut(slot) else {
            continue;
        };
        let Some(port) = set.for_slot(slot) else {
            for _ in core::mem::take(buf) {
                c.count_drop(DropReason::NoSuchPort);
            }
            continue;
        };
        let mut sent = port.tx_burst(q, buf);
        if !buf.is_empty() {
            sent += port.tx_burst(q, buf);
        }
        stats.tx += sent as u64;
        for _ in core::mem::take(buf) {
            c.count_drop(DropReason::TxQueueFull);
        }
    }
}
