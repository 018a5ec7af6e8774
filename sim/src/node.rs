//! One simulated node: the real fast path — a [`TableWriter`] and one [`Pipeline`] per worker
//! — plus the simulator's view of its ports, its IPAM and its queues.
//!
//! Pods are port ids `0..P` (P = the node's pod capacity). Frames a pod sends wait in the
//! port's queue until the node's turn in the tick, then go through the pipeline in bursts of
//! up to [`BURST`] per ingress, exactly as a poll loop would hand them over. With several
//! workers, as in the daemon: a pod port belongs to the worker its `Shard` names, frames from
//! the uplink go to the worker an RSS-like hash of their outer IPv4/L4 header picks, and
//! a frame a worker hands over (`Disposition::Handoff`) is processed by its owner right after
//! the burst, in order. A fast-path restart throws away the pipelines (and so their conntrack)
//! and the writer, and builds them again from a snapshot; the counters of the old incarnation
//! are kept.

use std::time::{Duration, Instant};

use fastpath::buf::PacketBuf;
use fastpath::counters::{CounterSnapshot, Disposition, DropReason};
use fastpath::pipeline::shard::mix64;
use fastpath::pipeline::{Ingress, Pipeline, BURST};
use fastpath::tables::conntrack::Timeouts;
use fastpath::tables::Capacities;
use fastpath::update::{FullState, TableWriter, Update, UpdateError};

use crate::desired::NodeRole;
use crate::packet::Frame;
use crate::topology;

/// A running fast path.
#[derive(Debug)]
struct Fastpath {
    writer: TableWriter,
    /// One per worker, worker `i` at index `i`.
    pipelines: Vec<Pipeline>,
}

/// Per-node tallies the simulator keeps (the fast path's own are its counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeStats {
    /// Frames the fast path sent to a pod port that had a pod.
    pub to_pods: u64,
    /// Frames the fast path put on the underlay.
    pub to_underlay: u64,
    /// Frames the fast path handed to the host path.
    pub to_host: u64,
    /// Frames the fast path dropped.
    pub dropped: u64,
    /// Frames that arrived while the fast path was down (restarting or the node gone).
    pub lost_while_down: u64,
}

/// A simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// Index (addresses derive from it, see `topology`).
    pub idx: u32,
    /// Underlay IP and whether it carries the Service table.
    pub role: NodeRole,
    /// In the cluster (joined and not left).
    pub up: bool,
    /// The fast path is restarting until this tick (frames arriving earlier are lost).
    pub down_until: u64,
    /// Tick of the last fast-path start (conntrack is empty from then on).
    pub started_at: u64,
    /// Tick it last joined the cluster (0: there from the start).
    pub joined_at: u64,
    fp: Option<Fastpath>,
    caps: Capacities,
    ct_capacity: u32,
    workers: u16,
    /// Test hook (`Sim::break_handoff`): handed-over frames stay with the worker that got them.
    pub handoff_broken: bool,
    /// Port id → uid of the pod on it.
    pub ports: Vec<Option<u32>>,
    /// Frames from each port waiting for the pipeline.
    pub port_q: Vec<Vec<Frame>>,
    /// Ports with frames waiting, in the order they got them.
    pub active_ports: Vec<u16>,
    /// Frames from the underlay waiting for the pipeline.
    pub uplink_q: Vec<Frame>,
    /// Frames from the node's kernel (the host path) waiting for the pipeline.
    pub host_q: Vec<Frame>,
    /// Host number (0..256) → uid of the pod owning that address.
    pub ip_owner: Vec<Option<u32>>,
    ipam_next: u32,
    counters_before: CounterSnapshot,
    /// The simulator's tallies.
    pub stats: NodeStats,
    disp: Vec<Disposition>,
}

impl SimNode {
    /// A node that is not running yet. `ports` is its pod capacity; `ct_capacity` the size of each
    /// worker's conntrack table; `workers` how many workers share its traffic.
    pub fn new(
        idx: u32,
        services: bool,
        caps: Capacities,
        ct_capacity: u32,
        workers: u16,
    ) -> SimNode {
        let ports = usize::from(caps.max_pod_ports);
        SimNode {
            idx,
            role: NodeRole {
                node: topology::underlay_ip(idx),
                services,
            },
            up: false,
            down_until: 0,
            started_at: 0,
            joined_at: 0,
            fp: None,
            caps,
            ct_capacity,
            workers: workers.max(1),
            handoff_broken: false,
            ports: vec![None; ports],
            port_q: (0..ports).map(|_| Vec::new()).collect(),
            active_ports: Vec::new(),
            uplink_q: Vec::new(),
            host_q: Vec::new(),
            ip_owner: vec![None; 256],
            ipam_next: 2,
            counters_before: CounterSnapshot::default(),
            stats: NodeStats::default(),
            disp: Vec::new(),
        }
    }

    /// Starts (or restarts) the fast path at tick `now` and syncs it with `state` (one
    /// [`Update::Snapshot`]). Returns how long the sync took.
    pub fn start(&mut self, now: u64, state: FullState) -> Result<Duration, UpdateError> {
        self.stop();
        let mut writer = TableWriter::new(topology::node_config(self.idx), self.caps)
            .expect("topology produces valid node configs");
        let t0 = Instant::now();
        writer.apply(Update::Snapshot(state))?;
        let took = t0.elapsed();
        let pipelines = Pipeline::workers(
            writer.reader(),
            self.workers,
            self.ct_capacity,
            Timeouts::default(),
        );
        self.fp = Some(Fastpath { writer, pipelines });
        self.started_at = now;
        Ok(took)
    }

    /// Stops the fast path (its counters are kept).
    pub fn stop(&mut self) {
        if let Some(fp) = self.fp.take() {
            for p in &fp.pipelines {
                self.counters_before.add(p.counters());
            }
        }
    }

    /// True when the fast path is running and not in its restart window.
    pub fn forwarding(&self, now: u64) -> bool {
        self.up && self.fp.is_some() && now >= self.down_until
    }

    /// Applies a batch of updates. Returns the new generation.
    pub fn apply(&mut self, updates: Vec<Update>) -> Result<u64, UpdateError> {
        match &mut self.fp {
            Some(fp) => fp.writer.apply_batch(updates),
            None => Ok(0),
        }
    }

    /// The tables' contents, as the fast path reports them.
    pub fn table_state(&self) -> Option<FullState> {
        self.fp.as_ref().map(|fp| fp.writer.full_state())
    }

    /// The writer (for measurements).
    pub fn writer(&self) -> Option<&TableWriter> {
        self.fp.as_ref().map(|fp| &fp.writer)
    }

    /// The first worker's pipeline (for measurements).
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.fp.as_ref().and_then(|fp| fp.pipelines.first())
    }

    /// Counters over every incarnation of the fast path.
    pub fn counters(&self) -> CounterSnapshot {
        let mut c = self.counters_before.clone();
        if let Some(fp) = &self.fp {
            for p in &fp.pipelines {
                c.add(p.counters());
            }
        }
        c
    }

    /// Runs `frames` from `ingress` through the pipeline in bursts, appending each frame with
    /// its disposition to `out`. `frames` is left empty.
    pub fn process(
        &mut self,
        ingress: Ingress,
        frames: &mut Vec<Frame>,
        now: u64,
        out: &mut Vec<(Disposition, Frame)>,
    ) {
        let Some(fp) = &mut self.fp else {
            self.stats.lost_while_down += frames.len() as u64;
            frames.clear();
            return;
        };
        if fp.pipelines.len() == 1 {
            let n = frames.len();
            self.disp.clear();
            self.disp.resize(n, Disposition::Drop(DropReason::Runt));
            for (chunk, d) in frames.chunks_mut(BURST).zip(self.disp.chunks_mut(BURST)) {
                fp.pipelines[0].process(ingress, chunk, d, now);
            }
            out.extend(self.disp.iter().copied().zip(frames.drain(..)));
            return;
        }
        // Several workers: each frame to the worker that receives it, in order per worker.
        let workers = fp.pipelines.len();
        let mut per: Vec<Vec<Frame>> = (0..workers).map(|_| Vec::new()).collect();
        for f in frames.drain(..) {
            let w = match ingress {
                Ingress::Pod(p) => fp.pipelines[0].shard().of_pod_port(p),
                // Worker 0 alone polls the host path, as in the daemon.
                Ingress::Host => 0,
                _ => rss(&f, workers as u16),
            };
            per[usize::from(w)].push(f);
        }
        let mut done = Vec::new();
        for (w, fs) in per.iter_mut().enumerate() {
            let n = fs.len();
            self.disp.clear();
            self.disp.resize(n, Disposition::Drop(DropReason::Runt));
            for (chunk, d) in fs.chunks_mut(BURST).zip(self.disp.chunks_mut(BURST)) {
                fp.pipelines[w].process(ingress, chunk, d, now);
            }
            done.extend(self.disp.iter().map(|&d| (d, w as u16)).zip(fs.drain(..)));
        }
        // Handed-over frames: their owner takes them over, in the order they were handed.
        for ((d, got_it), mut f) in done {
            let Disposition::Handoff { worker, ingress } = d else {
                out.push((d, f));
                continue;
            };
            let worker = if self.handoff_broken { got_it } else { worker };
            let mut d2 = [Disposition::Drop(DropReason::HandoffQueueFull)];
            if let Some(p) = fp.pipelines.get_mut(usize::from(worker)) {
                p.process_handed(ingress, core::slice::from_mut(&mut f), &mut d2, now);
            }
            out.push((d2[0], f));
        }
    }

    /// Housekeeping once per tick: conntrack aging.
    pub fn maintain(&mut self, now: u64) {
        if let Some(fp) = &mut self.fp {
            for p in &mut fp.pipelines {
                p.maintain(now, 64);
            }
        }
    }

    /// Allocates a pod address, host-local style: the next free host number after the last
    /// one handed out, wrapping (so a freed address is reused as late as possible).
    pub fn alloc_host(&mut self) -> Option<u32> {
        for k in 0..topology::POD_IPS_PER_NODE {
            let h = 2 + (self.ipam_next - 2 + k) % topology::POD_IPS_PER_NODE;
            if self.ip_owner[h as usize].is_none() {
                self.ipam_next = 2 + (h - 2 + 1) % topology::POD_IPS_PER_NODE;
                return Some(h);
            }
        }
        None
    }

    /// Forgets where the IPAM cursor was (a node that rejoins starts afresh, so it hands out the
    /// addresses of the pods it had before it left again: in-flight frames for those pods then
    /// meet the new owners of their IPs).
    pub fn reset_ipam(&mut self) {
        self.ipam_next = 2;
    }

    /// The lowest free port.
    pub fn alloc_port(&self) -> Option<u16> {
        self.ports
            .iter()
            .position(Option::is_none)
            .map(|p| p as u16)
    }

    /// Number of pods on the node.
    pub fn pod_count(&self) -> usize {
        self.ports.iter().filter(|p| p.is_some()).count()
    }
}

/// The receive queue (worker) a NIC's RSS would give an uplink frame: a hash of its outer IPv4
/// addresses and TCP/UDP ports (VXLAN's outer source port carries the inner flow's hash, so
/// flows spread); anything else to queue 0.
fn rss(f: &Frame, workers: u16) -> u16 {
    let d = f.data();
    if d.len() < 34 || d[12..14] != [0x08, 0x00] || d[14] >> 4 != 4 {
        return 0;
    }
    let l4 = 14 + usize::from(d[14] & 0x0f) * 4;
    let proto = d[23];
    let ip = |o: usize| u32::from_be_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
    let port = |o: usize| {
        d.get(o..o + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (sport, dport) = if proto == 6 || proto == 17 {
        (port(l4), port(l4 + 2))
    } else {
        (0, 0)
    };
    let h = mix64(
        (u64::from(ip(26)) << 32 | u64::from(ip(30)))
            ^ (u64::from(sport) << 24 | u64::from(dport) << 8 | u64::from(proto)).rotate_left(29),
    );
    ((h >> 32) % u64::from(workers)) as u16
}
