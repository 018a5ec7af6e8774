//! Wall-clock and memory measurements for the scale report. Nothing here feeds the deterministic
//! part of the report: these figures go into its separate `timings` section.
//!
//! - **Memory of one node's tables**, two ways: the growth of the process's resident set
//!   (`VmRSS`) while one node's writer, tables and pipeline are built and fully synced (measured
//!   before the rest of the cluster is built, so freed memory is not being reused), and an
//!   estimate summed from the tables' sizes ([`estimate`]).
//! - **Full sync**: one `Update::Snapshot` of the whole desired state into empty tables (cold),
//!   and the same snapshot again onto the synced tables (a resync, applied as a difference).
//! - **Single update**: one endpoint removal or re-addition (`RemoveEndpoint` / `SetEndpoint`)
//!   applied and published, over many samples: the control side's cost until the data core can
//!   see the new version (the data core picks it up at its next burst).

use std::time::{Duration, Instant};

use serde::Serialize;

use fastpath::buf::HeapBuf;
use fastpath::counters::Disposition;
use fastpath::pipeline::{Ingress, Pipeline};
use fastpath::tables::conntrack::{Conntrack, Entry, Timeouts};
use fastpath::tables::pods::{PodSlot, PortOwner};
use fastpath::tables::routes::NodeRoute;
use fastpath::tables::services::{Backend, EndpointSpec, ServiceEntry};
use fastpath::tables::Capacities;
use fastpath::update::{FullState, TableWriter, Tables, Update};

use crate::rng::Rng;
use crate::topology;

/// A field of `/proc/self/status`, in bytes.
fn proc_status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The process's resident set size, bytes (Linux).
pub fn rss_bytes() -> Option<u64> {
    proc_status_kb("VmRSS:")
}

/// The process's peak resident set size, bytes (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kb("VmHWM:")
}

/// Percentiles of a latency sample, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Smallest.
    pub min_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Summarises durations (nearest-rank percentiles).
pub fn summarize(samples: &[Duration]) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let rank = ((p / 100.0) * us.len() as f64).ceil() as usize;
        us[rank.clamp(1, us.len()) - 1]
    };
    Summary {
        n: us.len(),
        min_us: round1(us[0]),
        p50_us: round1(pct(50.0)),
        p90_us: round1(pct(90.0)),
        p99_us: round1(pct(99.0)),
        p999_us: round1(pct(99.9)),
        max_us: round1(us[us.len() - 1]),
        mean_us: round1(us.iter().sum::<f64>() / us.len() as f64),
    }
}

/// Estimated bytes of one node's tables, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableBytes {
    /// Service entries, specs, backends and the frontend index (Maglev tables excluded).
    pub services: u64,
    /// The Maglev lookup tables (`u16` per slot).
    pub maglev: u64,
    /// Remote node routes with their encap templates and indexes.
    pub routes: u64,
    /// The pod table (direct-indexed over the pod CIDR, and by port).
    pub pods: u64,
    /// The worker's conntrack (entries, index, free list, per-pod counts).
    pub conntrack: u64,
    /// The endpoint liveness array (one `u32` per endpoint slot of capacity).
    pub endpoint_liveness: u64,
    /// Sum.
    pub total: u64,
}

/// Sums the sizes of the tables in `t` and of a conntrack table like `ct` (heap payloads and
/// the containers' own slots; hash maps are counted at their entry size over a 7/8 load).
pub fn estimate(t: &Tables, caps: &Capacities, ct: &Conntrack) -> TableBytes {
    use core::mem::size_of;
    let map = |n: usize, entry: usize| (n * entry * 8 / 7) as u64;
    let mut b = TableBytes::default();
    for e in t.services.iter() {
        b.maglev += (e.maglev.len() * 2) as u64;
        b.services += (size_of::<ServiceEntry>()
            + 16
            + size_of::<Option<std::sync::Arc<ServiceEntry>>>()
            + e.spec.name.capacity()
            + e.spec.endpoints.capacity() * size_of::<EndpointSpec>()
            + e.backends.len() * size_of::<Backend>()) as u64;
    }
    b.services += map(t.services.len(), 8 + 4);
    let nodes = t.routes.nodes();
    b.routes = nodes
        .iter()
        .map(|n| (size_of::<NodeRoute>() + n.spec.name.capacity()) as u64)
        .sum::<u64>()
        + 2 * map(nodes.len(), 4 + 4)
        + (nodes.len() * 4) as u64;
    b.pods = (t.pods.slots() * size_of::<PodSlot>()
        + usize::from(caps.max_pod_ports) * size_of::<Option<PortOwner>>()) as u64;
    let cap = ct.capacity();
    b.conntrack = (cap * size_of::<Entry>()
        + (cap * 4).next_power_of_two() * 8
        + cap * 4
        + 2 * t.pods.slots() * 4) as u64;
    b.endpoint_liveness = u64::from(caps.max_endpoints) * 4;
    b.total = b.services + b.maglev + b.routes + b.pods + b.conntrack + b.endpoint_liveness;
    b
}

/// The measurements of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeMeasure {
    /// The node measured.
    pub node: u32,
    /// Service frontends in its tables.
    pub services: usize,
    /// Endpoints over all its Services.
    pub endpoints: usize,
    /// Remote nodes in its route table.
    pub remote_nodes: usize,
    /// Local pods.
    pub pods: usize,
    /// Conntrack capacity of its worker.
    pub conntrack_capacity: usize,
    /// Resident-set growth while building and syncing it, bytes (Linux only).
    pub rss_delta_bytes: Option<u64>,
    /// Estimated table sizes.
    pub estimate: TableBytes,
    /// One `Snapshot` into empty tables, milliseconds.
    pub full_sync_ms: f64,
    /// The same `Snapshot` again (a resync of unchanged state), milliseconds.
    pub resync_ms: f64,
    /// Single endpoint updates, applied and published.
    pub endpoint_update: Summary,
    /// The raw samples, µs (for the picture; not serialised).
    #[serde(skip)]
    pub samples_us: Vec<f64>,
}

/// Builds node `node`'s fast path from `state` and measures it; then `updates` single endpoint
/// updates (alternately removing a random endpoint and adding it back).
pub fn measure_node(
    node: u32,
    state: FullState,
    caps: Capacities,
    ct_capacity: u32,
    updates: u32,
    rng: &mut Rng,
) -> NodeMeasure {
    let resync = state.clone();
    let mut pick_from: Vec<(fastpath::tables::services::FrontendKey, EndpointSpec)> = Vec::new();
    for s in &state.services {
        if let Some(e) = s.endpoints.first() {
            pick_from.push((s.frontend, *e));
        }
    }
    let mut m = NodeMeasure {
        node,
        services: state.services.len(),
        endpoints: state.services.iter().map(|s| s.endpoints.len()).sum(),
        remote_nodes: state.nodes.len(),
        pods: state.pods.len(),
        conntrack_capacity: ct_capacity as usize,
        ..NodeMeasure::default()
    };
    let before = rss_bytes();
    let mut w = TableWriter::new(topology::node_config(node), caps)
        .expect("topology produces valid node configs");
    let t0 = Instant::now();
    w.apply(Update::Snapshot(state))
        .expect("desired state is valid");
    m.full_sync_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut p = Pipeline::new(w.reader(), ct_capacity, Timeouts::default());
    m.rss_delta_bytes = match (before, rss_bytes()) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    m.estimate = estimate(&w.tables(), &caps, p.conntrack());
    let t0 = Instant::now();
    w.apply(Update::Snapshot(resync))
        .expect("desired state is valid");
    m.resync_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut samples = Vec::with_capacity(updates as usize);
    let refresh = |p: &mut Pipeline| {
        let mut none: [HeapBuf; 0] = [];
        let mut out: [Disposition; 0] = [];
        p.process(Ingress::Uplink, &mut none, &mut out, 0);
    };
    let mut i = 0;
    while i < updates && !pick_from.is_empty() {
        let (f, e) = pick_from[rng.index(pick_from.len())];
        for u in [
            Update::RemoveEndpoint {
                frontend: f,
                ip: e.ip,
                port: e.port,
            },
            Update::SetEndpoint {
                frontend: f,
                endpoint: e,
            },
        ] {
            let t0 = Instant::now();
            w.apply(u).expect("endpoint exists");
            samples.push(t0.elapsed());
            refresh(&mut p);
            i += 1;
        }
    }
    m.endpoint_update = summarize(&samples);
    m.samples_us = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    drop(p);
    drop(w);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = summarize(&d);
        assert_eq!(
            (s.n, s.min_us, s.p50_us, s.p99_us, s.max_us),
            (100, 1.0, 50.0, 99.0, 100.0)
        );
        assert_eq!(summarize(&[]).n, 0);
    }
}
