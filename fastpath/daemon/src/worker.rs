//! One worker: a run-to-completion poll loop on one lcore.
//!
//! Each poll receives a burst from every port the worker serves, runs it through the pipeline
//! (which decides a disposition per packet and rewrites packets in place), moves each packet
//! to the transmit buffer of its destination port, and flushes the buffers. Nothing allocates:
//! bursts and transmit buffers are fixed arrays of owning mbufs; a dropped packet is an mbuf
//! dropped (freed to its pool) and a counter.

use std::sync::Arc;

use dpdk::{Burst, Port};
use fastpath::counters::{Counters, Disposition, DropReason};
use fastpath::pipeline::{Ingress, Pipeline, BURST};

/// The ports a worker serves, and the queue it uses on each.
#[derive(Debug)]
pub struct Ports {
    /// The uplink (underlay NIC).
    pub uplink: Port,
    /// The host-path port (a TAP into the node's kernel), if configured.
    pub host: Option<Port>,
    /// Pod ports, indexed by the pod port id the tables use.
    pub pods: Vec<Option<Port>>,
    /// The queue this worker polls and sends on.
    pub queue: u16,
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
    ports: Ports,
    /// One transmit buffer per destination: [uplink, host, pod 0, pod 1, ...].
    tx: Vec<Burst>,
    stats: LoopStats,
}

const TX_UPLINK: usize = 0;
const TX_HOST: usize = 1;
const TX_POD0: usize = 2;

impl Worker {
    /// A worker over `ports` running `pipeline`.
    pub fn new(pipeline: Pipeline, ports: Ports) -> Worker {
        let tx = (0..TX_POD0 + ports.pods.len())
            .map(|_| Burst::new())
            .collect();
        let counters = Arc::clone(pipeline.counters());
        Worker {
            pipeline,
            counters,
            ports,
            tx,
            stats: LoopStats::default(),
        }
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

    /// Gives the ports back (to close them after the loop stopped).
    pub fn into_ports(self) -> Ports {
        self.ports
    }

    /// One poll of every port. Returns the packets received.
    pub fn poll(&mut self, now_ms: u64) -> usize {
        let mut got = 0;
        got += self.poll_port(Ingress::Uplink, now_ms);
        if self.ports.host.is_some() {
            got += self.poll_port(Ingress::Host, now_ms);
        }
        for p in 0..self.ports.pods.len() {
            if self.ports.pods[p].is_some() {
                got += self.poll_port(Ingress::Pod(p as u16), now_ms);
            }
        }
        self.pipeline.maintain(now_ms, 32);
        self.stats.polls += 1;
        got
    }

    fn port(&self, ingress: Ingress) -> Option<&Port> {
        match ingress {
            Ingress::Uplink => Some(&self.ports.uplink),
            Ingress::Host => self.ports.host.as_ref(),
            Ingress::Pod(p) => self.ports.pods.get(p as usize)?.as_ref(),
        }
    }

    fn poll_port(&mut self, ingress: Ingress, now_ms: u64) -> usize {
        let mut rx = Burst::new();
        let q = self.ports.queue;
        let n = match self.port(ingress) {
            Some(port) => port.rx_burst(q, &mut rx),
            None => 0,
        };
        if n == 0 {
            return 0;
        }
        self.stats.rx += n as u64;
        let c = &*self.counters;
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
        self.pipeline
            .process(ingress, burst.as_mut_slice(), &mut out[..len], now_ms);
        for (m, d) in burst.into_iter().zip(out.iter()) {
            let slot = match *d {
                Disposition::ToUplink => TX_UPLINK,
                Disposition::ToHost => TX_HOST,
                Disposition::ToPod(p) => TX_POD0 + p as usize,
                Disposition::Drop(_) => continue, // counted by the pipeline; `m` is freed here
            };
            let Some(buf) = self.tx.get_mut(slot) else {
                c.count_drop(DropReason::NoSuchPort);
                continue;
            };
            // A buffer holds at most one burst: it is flushed after every received burst.
            if buf.push(m).is_err() {
                c.count_drop(DropReason::TxQueueFull);
            }
        }
        self.flush();
        n
    }

    /// Sends every transmit buffer; what a full queue refuses after one retry is freed and
    /// counted.
    fn flush(&mut self) {
        let c = &*self.counters;
        let q = self.ports.queue;
        for slot in 0..self.tx.len() {
            if self.tx[slot].is_empty() {
                continue;
            }
            let port = match slot {
                TX_UPLINK => Some(&self.ports.uplink),
                TX_HOST => self.ports.host.as_ref(),
                s => self.ports.pods.get(s - TX_POD0).and_then(|p| p.as_ref()),
            };
            let buf = &mut self.tx[slot];
            let Some(port) = port else {
                for _ in buf.drain_all() {
                    c.count_drop(DropReason::NoSuchPort);
                }
                continue;
            };
            let mut sent = port.tx_burst(q, buf);
            if !buf.is_empty() {
                sent += port.tx_burst(q, buf);
            }
            self.stats.tx += sent as u64;
            for _ in buf.drain_all() {
                c.count_drop(DropReason::TxQueueFull);
            }
        }
    }
}

/// Empties a burst, yielding its mbufs (each freed when dropped).
trait DrainAll {
    fn drain_all(&mut self) -> heapless::Vec<dpdk::Mbuf, BURST>;
}

impl DrainAll for Burst {
    fn drain_all(&mut self) -> heapless::Vec<dpdk::Mbuf, BURST> {
        core::mem::take(self)
    }
}
