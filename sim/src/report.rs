//! The run's report, three ways: a text summary for a person ([`Report::text`]), JSON for
//! tools ([`Report::to_json`]), and a picture ([`Report::svg`]): delivered/dropped frames per
//! node, the invariants, and (with timings) the distribution of single-update latency.
//!
//! Everything but [`Report::timings`] is a pure function of the configuration and the seed: two
//! runs with the same seed give the same bytes. The timings (wall clock, memory) are in their
//! own section, left out by [`Report::deterministic_json`] and absent unless asked for.

use core::fmt::Write as _;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::faults::{FaultPlan, FaultStats};
use crate::invariants::InvariantResult;
use crate::measure::{NodeMeasure, Summary};
use crate::scenario::{ChurnSpec, EventCounts};
use crate::sim::SimConfig;
use crate::svg::{Anchor, Svg};
use crate::underlay::UnderlayStats;

/// The configuration, as run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigReport {
    /// Nodes.
    pub nodes: u32,
    /// Pods per node at the start.
    pub pods_per_node: u32,
    /// Services.
    pub services: u32,
    /// Endpoints per Service at the start.
    pub endpoints_per_service: u32,
    /// Seed.
    pub seed: u64,
    /// Simulated duration for traffic starts and events, ms.
    pub duration_ms: u64,
    /// Cap on pod frames.
    pub max_packets: Option<u64>,
    /// Churn.
    pub churn: ChurnSpec,
    /// Service flows per client pod.
    pub flows_per_pod: u32,
    /// Requests per Service flow.
    pub requests_per_flow: u32,
    /// Workers per node.
    pub workers: u16,
    /// Other nodes' pods each node's kernel probes.
    pub host_probes: u32,
    /// External clients.
    pub external_clients: u32,
    /// NodePort flows per external client.
    pub nodeport_flows: u32,
}

impl From<&SimConfig> for ConfigReport {
    fn from(c: &SimConfig) -> Self {
        ConfigReport {
            nodes: c.nodes,
            pods_per_node: c.pods_per_node,
            services: c.services,
            endpoints_per_service: c.endpoints_per_service,
            seed: c.seed,
            duration_ms: c.duration_ms,
            max_packets: c.max_packets,
            churn: c.churn,
            flows_per_pod: c.flows_per_pod,
            requests_per_flow: c.requests_per_flow,
            workers: c.workers,
            host_probes: c.host_probes,
            external_clients: c.external_clients,
            nodeport_flows: c.nodeport_flows,
        }
    }
}

/// The cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopologyReport {
    /// Nodes.
    pub nodes: u32,
    /// The nodes carrying the Service table (every node runs the real pipeline with pod and
    /// route tables; only these also have Services, and only their pods open Service flows).
    pub full_nodes: Vec<u32>,
    /// Nodes in the cluster at the end.
    pub nodes_up_at_end: u32,
    /// Pods at the start.
    pub pods_at_start: u64,
    /// Pods at the end.
    pub pods_at_end: u64,
    /// Pod incarnations over the run.
    pub pods_created_total: u64,
    /// Services.
    pub services: u32,
    /// Endpoints at the start.
    pub endpoints_at_start: u64,
    /// Endpoints at the end.
    pub endpoints_at_end: u64,
    /// How probe targets were chosen.
    pub probe_mode: String,
}

/// Traffic volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficReport {
    /// Frames pods sent.
    pub pod_frames_sent: u64,
    /// Frames that reached pods.
    pub pod_frames_received: u64,
    /// Frames the pipelines processed (all nodes, all ingresses).
    pub pipeline_packets: u64,
    /// Probe flows.
    pub probes: u64,
    /// Distinct (client, target) pod pairs judged (both alive at the end).
    pub pod_pairs_tested: u64,
    /// Pairs that got through.
    pub pod_pairs_reached: u64,
    /// Probes not judged because a pod was deleted.
    pub probes_excluded_pod_gone: u64,
    /// Service flows opened.
    pub service_flows: u64,
    /// Service flows that got at least one answer.
    pub service_flows_answered: u64,
    /// NodePort flows external clients opened.
    pub nodeport_flows: u64,
    /// NodePort flows that got at least one answer.
    pub nodeport_flows_answered: u64,
    /// Probes from nodes' kernels to other nodes' pods, judged (both ends still there).
    pub host_probes: u64,
    /// Those answered.
    pub host_probes_answered: u64,
    /// The underlay.
    pub underlay: UnderlayStats,
}

/// What the simulator itself counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    /// Frames pods sent.
    pub pod_frames_sent: u64,
    /// Frames that reached pods.
    pub pod_frames_received: u64,
    /// Frames lost because their pod was deleted while they were on its port.
    pub lost_with_deleted_pods: u64,
    /// Pods that never resolved their gateway.
    pub arp_gave_up: u64,
    /// Service flows opened.
    pub service_flows: u64,
    /// NodePort flows opened.
    pub nodeport_flows: u64,
    /// Frames external clients sent.
    pub external_frames_sent: u64,
    /// Frames that reached external clients.
    pub external_frames_received: u64,
    /// NodePort requests that reached a backend on the node they were sent to (the client's
    /// address kept).
    pub nodeport_requests_direct: u64,
    /// NodePort requests that reached a backend on another node (SNATed to the VTEP address).
    pub nodeport_requests_snat: u64,
    /// NodePort flows of a Local-policy Service sent to a node without a ready endpoint of
    /// its own when they started (dropped there, as kube-proxy drops them).
    pub nodeport_flows_no_local_endpoint: u64,
    /// Frames for a deleted pod delivered to the new pod that got its IP (allowed).
    pub reused_ip_deliveries: u64,
    /// Times a flow legitimately changed backend (its own endpoint went away, or its client
    /// node's fast path restarted and lost conntrack).
    pub flows_rebalanced: u64,
    /// Answers from a removed endpoint, or arriving after the client node lost conntrack, that
    /// were not reverse-NATed (the client's socket drops them; allowed).
    pub stale_replies: u64,
    /// Service requests whose client was itself the backend picked (hairpin: it must see the
    /// gateway as the source, and get its own answers from the VIP).
    pub hairpin_requests: u64,
    /// Requests that reached a flow's previous backend after the flow had moved on (sent before
    /// the move, overtaken on the way; allowed).
    pub late_to_previous_backend: u64,
    /// The run hit the drain limit before going quiet.
    pub hit_drain_limit: bool,
}

/// Faults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultReport {
    /// What was asked for.
    pub plan: FaultPlan,
    /// Pod → node links.
    pub pod_tx: FaultStats,
    /// Node → pod links.
    pub pod_rx: FaultStats,
    /// The underlay.
    pub underlay: FaultStats,
    /// Sum.
    pub total: FaultStats,
}

/// What became of corrupted frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorruptionReport {
    /// Frames corrupted.
    pub corrupted: u64,
    /// Dropped by a fast path, by drop reason.
    pub dropped_by_fastpath: BTreeMap<String, u64>,
    /// Rejected by the receiving pod, by check.
    pub rejected_by_pods: BTreeMap<String, u64>,
    /// Handed to a host path.
    pub to_host: u64,
    /// Passed every check of the receiving pod (the flipped bit was in a field nobody relies
    /// on) and were then checked like any frame.
    pub delivered_intact: u64,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    /// Index.
    pub node: u32,
    /// Carries the Service table.
    pub full: bool,
    /// In the cluster at the end.
    pub up: bool,
    /// Pods at the end.
    pub pods: u64,
    /// Frames from its pods.
    pub rx_pod: u64,
    /// Frames from the underlay.
    pub rx_uplink: u64,
    /// Frames delivered to its pods.
    pub to_pods: u64,
    /// Frames sent on the underlay.
    pub to_underlay: u64,
    /// Frames handed to the host path.
    pub to_host: u64,
    /// Frames dropped by its fast path.
    pub dropped: u64,
    /// Frames that arrived while its fast path was down.
    pub lost_while_down: u64,
}

/// Wall-clock and memory figures. Not deterministic; not part of the determinism check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    /// Building the cluster (desired state, every node's full sync, the measured node), s.
    pub setup_s: f64,
    /// Running the simulation, s.
    pub run_s: f64,
    /// Initial full sync of each node carrying Services.
    pub sync_full_node: Summary,
    /// Initial full sync of each node without Services.
    pub sync_light_node: Summary,
    /// Every incremental update batch applied to a node during the run.
    pub incremental_updates: Summary,
    /// Every per-node resync after a control restart.
    pub control_resyncs: Summary,
    /// Pipeline packets per second of run time.
    pub pipeline_packets_per_s: f64,
    /// Pod frames sent per second of run time.
    pub pod_frames_per_s: f64,
    /// Peak resident set of the process, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// One node measured on its own.
    pub measured_node: Option<NodeMeasure>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The configuration.
    pub config: ConfigReport,
    /// The cluster.
    pub topology: TopologyReport,
    /// Simulated time at the end (traffic start window plus drain), ms.
    pub simulated_ms: u64,
    /// True when no invariant was violated.
    pub passed: bool,
    /// Every invariant.
    pub invariants: Vec<InvariantResult>,
    /// Traffic volumes.
    pub traffic: TrafficReport,
    /// Simulator tallies.
    pub run: RunStats,
    /// Events.
    pub events: EventCounts,
    /// Faults.
    pub faults: FaultReport,
    /// Corruption outcomes.
    pub corruption: CorruptionReport,
    /// Non-zero fast-path counters summed over all nodes (`drop_*` are drop reasons).
    pub counters: BTreeMap<String, u64>,
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// Wall-clock figures (absent unless measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn list_nodes(v: &[u32], total: u32) -> String {
    if v.len() as u32 == total {
        return format!("all {total}");
    }
    let shown: Vec<String> = v.iter().take(30).map(|n| n.to_string()).collect();
    let more = if v.len() > 30 { ", …" } else { "" };
    format!("{} of {total}: {}{more}", v.len(), shown.join(", "))
}

impl Report {
    /// Violations over all invariants.
    pub fn violations(&self) -> u64 {
        self.invariants.iter().map(|i| i.violations).sum()
    }

    /// One invariant's result by name.
    pub fn invariant(&self, name: &str) -> Option<&InvariantResult> {
        self.invariants.iter().find(|i| i.name == name)
    }

    /// The whole report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    /// The report without its timings, as pretty JSON: identical for identical seeds.
    pub fn deterministic_json(&self) -> String {
        let mut r = self.clone();
        r.timings = None;
        r.to_json()
    }

    /// The text summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let c = &self.config;
        let t = &self.topology;
        let _ = writeln!(
            s,
            "podlane-sim: seed {}, {} nodes x {} pods, {} Services x {} endpoints, {} ms of traffic ({} ms simulated with drain)",
            c.seed, c.nodes, c.pods_per_node, c.services, c.endpoints_per_service, c.duration_ms, self.simulated_ms
        );
        let _ = writeln!(
            s,
            "Service table on {} nodes; pods {} at start, {} at end ({} incarnations); endpoints {} -> {}; {}",
            list_nodes(&t.full_nodes, t.nodes),
            t.pods_at_start,
            t.pods_at_end,
            t.pods_created_total,
            t.endpoints_at_start,
            t.endpoints_at_end,
            t.probe_mode
        );
        let _ = writeln!(
            s,
            "faults: {}; churn: {}",
            fault_line(&self.faults.plan),
            churn_line(&c.churn)
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "RESULT: {} ({} invariants, {} violations)",
            if self.passed { "PASS" } else { "FAIL" },
            self.invariants.len(),
            self.violations()
        );
        for i in &self.invariants {
            let _ = writeln!(
                s,
                "  {:<4} {:<30} {:>10} checks {:>6} violations  {}",
                if i.ok { "ok" } else { "FAIL" },
                i.name,
                i.checks,
                i.violations,
                i.description
            );
            for e in &i.examples {
                let _ = writeln!(s, "         - {e}");
            }
        }
        let tr = &self.traffic;
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "traffic: pods sent {} frames, received {}; pipelines processed {} packets",
            tr.pod_frames_sent, tr.pod_frames_received, tr.pipeline_packets
        );
        let _ = writeln!(
            s,
            "  probes {}: {} of {} pod pairs reached ({} probes not judged: a pod was deleted)",
            tr.probes, tr.pod_pairs_reached, tr.pod_pairs_tested, tr.probes_excluded_pod_gone
        );
        let _ = writeln!(
            s,
            "  Service flows {} ({} answered); underlay: {} sent, {} delivered, {} to no such host",
            tr.service_flows,
            tr.service_flows_answered,
            tr.underlay.sent,
            tr.underlay.delivered,
            tr.underlay.no_such_host
        );
        let r = &self.run;
        let _ = writeln!(
            s,
            "  nodes' kernels (host path, from their VTEP addresses) reached {} of {} probed pods on other nodes",
            tr.host_probes_answered, tr.host_probes
        );
        let _ = writeln!(
            s,
            "  NodePort flows {} ({} answered; {} to a node without a local endpoint of a Local Service) from external clients, who sent {} frames and received {}; requests to a backend on the node {}, on another node (SNAT) {}",
            tr.nodeport_flows,
            tr.nodeport_flows_answered,
            r.nodeport_flows_no_local_endpoint,
            r.external_frames_sent,
            r.external_frames_received,
            r.nodeport_requests_direct,
            r.nodeport_requests_snat
        );
        let _ = writeln!(
            s,
            "  lost with deleted pods {}, flows rebalanced {} (late requests to the previous backend {}), stale replies {}, deliveries to reused IPs {}, hairpin requests {}{}",
            r.lost_with_deleted_pods,
            r.flows_rebalanced,
            r.late_to_previous_backend,
            r.stale_replies,
            r.reused_ip_deliveries,
            r.hairpin_requests,
            if r.hit_drain_limit { " (HIT THE DRAIN LIMIT)" } else { "" }
        );
        let e = &self.events;
        let _ = writeln!(
            s,
            "events: pods +{} -{}; endpoints +{} ~{} -{}; nodes -{} +{}; control restarts {}; fast-path restarts {}; skipped {}",
            e.pod_creates,
            e.pod_deletes,
            e.endpoint_adds,
            e.endpoint_terminations,
            e.endpoint_removes,
            e.node_leaves,
            e.node_joins,
            e.control_restarts,
            e.fastpath_restarts,
            e.skipped
        );
        let f = &self.faults.total;
        let _ = writeln!(
            s,
            "faults applied: lost {}, duplicated {}, corrupted {}, delayed {}, reordered {}, flushed {}",
            f.lost, f.duplicated, f.corrupted, f.delayed, f.reordered, f.flushed
        );
        let co = &self.corruption;
        if co.corrupted > 0 {
            let join = |m: &BTreeMap<String, u64>| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                s,
                "corrupted frames {}: dropped by fast path {} [{}]; rejected by pods {} [{}]; to host {}; delivered intact {}",
                co.corrupted,
                co.dropped_by_fastpath.values().sum::<u64>(),
                join(&co.dropped_by_fastpath),
                co.rejected_by_pods.values().sum::<u64>(),
                join(&co.rejected_by_pods),
                co.to_host,
                co.delivered_intact
            );
        }
        let drops: Vec<String> = self
            .counters
            .iter()
            .filter(|(k, _)| k.starts_with("drop_"))
            .map(|(k, v)| format!("{} {v}", &k[5..]))
            .collect();
        let _ = writeln!(
            s,
            "fast-path drops (all nodes): {}",
            if drops.is_empty() {
                "none".to_string()
            } else {
                drops.join(", ")
            }
        );
        if let Some(tm) = &self.timings {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "timings (wall clock; not part of the deterministic report):"
            );
            let _ = writeln!(
                s,
                "  setup {:.2} s, run {:.2} s: {:.0} pipeline packets/s, {:.0} pod frames/s; peak RSS {}",
                tm.setup_s,
                tm.run_s,
                tm.pipeline_packets_per_s,
                tm.pod_frames_per_s,
                tm.peak_rss_bytes
                    .map_or("n/a".into(), |b| format!("{:.0} MiB", mib(b)))
            );
            if let Some(m) = &tm.measured_node {
                let e = &m.estimate;
                let _ = writeln!(
                    s,
                    "  one node's tables (node {}: {} Services, {} endpoints, {} remote nodes, {} pods, conntrack {}):",
                    m.node, m.services, m.endpoints, m.remote_nodes, m.pods, m.conntrack_capacity
                );
                let _ = writeln!(
                    s,
                    "    memory: RSS growth {}; estimate {:.1} MiB (Services {:.1}, Maglev {:.1}, routes {:.2}, pods {:.2}, conntrack {:.1}, endpoint liveness {:.2})",
                    m.rss_delta_bytes
                        .map_or("n/a".into(), |b| format!("{:.1} MiB", mib(b))),
                    mib(e.total),
                    mib(e.services),
                    mib(e.maglev),
                    mib(e.routes),
                    mib(e.pods),
                    mib(e.conntrack),
                    mib(e.endpoint_liveness)
                );
                let _ = writeln!(
                    s,
                    "    full sync (one Snapshot into empty tables) {:.1} ms; resync of unchanged state {:.1} ms",
                    m.full_sync_ms, m.resync_ms
                );
                let u = &m.endpoint_update;
                let _ = writeln!(
                    s,
                    "    single endpoint update, applied and published ({} samples): p50 {:.1} us, p90 {:.1}, p99 {:.1}, p99.9 {:.1}, max {:.1}",
                    u.n, u.p50_us, u.p90_us, u.p99_us, u.p999_us, u.max_us
                );
            }
            let line = |name: &str, x: &Summary| {
                format!(
                    "  {name}: n {}, p50 {:.1} us, p99 {:.1} us, max {:.1} us\n",
                    x.n, x.p50_us, x.p99_us, x.max_us
                )
            };
            s.push_str(&line(
                "initial sync, nodes with Services",
                &tm.sync_full_node,
            ));
            s.push_str(&line(
                "initial sync, nodes without Services",
                &tm.sync_light_node,
            ));
            s.push_str(&line(
                "update batches during the run",
                &tm.incremental_updates,
            ));
            if tm.control_resyncs.n > 0 {
                s.push_str(&line(
                    "per-node resyncs after control restarts",
                    &tm.control_resyncs,
                ));
            }
        }
        s
    }

    /// The picture: per-node frames delivered to pods and dropped, the invariants, and (with
    /// timings) the single-update latency histogram.
    pub fn svg(&self) -> String {
        let w = 1000.0;
        let bars_h = 300.0;
        let inv_h = 24.0 + 18.0 * self.invariants.len() as f64;
        let lat = self
            .timings
            .as_ref()
            .and_then(|t| t.measured_node.as_ref())
            .filter(|m| !m.samples_us.is_empty());
        let lat_h = if lat.is_some() { 280.0 } else { 0.0 };
        let mut g = Svg::new(w, 40.0 + bars_h + inv_h + lat_h + 10.0);
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        g.text(
            20.0,
            26.0,
            16.0,
            Anchor::Start,
            "#000000",
            &format!(
                "podlane-sim seed {}: {} nodes, {} pods, {} Services - {verdict}, {} violations",
                self.config.seed,
                self.config.nodes,
                self.topology.pods_at_start,
                self.config.services,
                self.violations()
            ),
        );
        // Per-node bars.
        let (x0, y0, pw, ph) = (70.0, 60.0, w - 100.0, bars_h - 70.0);
        g.text(
            x0,
            y0 - 8.0,
            12.0,
            Anchor::Start,
            "#333333",
            "frames per node: delivered to pods (green), dropped by the fast path (red), lost while down (grey)",
        );
        let max = self
            .nodes
            .iter()
            .map(|n| n.to_pods + n.dropped + n.lost_while_down)
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        g.line(x0, y0 + ph, x0 + pw, y0 + ph, "#000000", 1.0);
        g.line(x0, y0, x0, y0 + ph, "#000000", 1.0);
        for k in 0..=4 {
            let v = max * f64::from(k) / 4.0;
            let y = y0 + ph - ph * f64::from(k) / 4.0;
            g.line(x0 - 4.0, y, x0, y, "#000000", 1.0);
            g.text(
                x0 - 6.0,
                y + 4.0,
                10.0,
                Anchor::End,
                "#333333",
                &format!("{v:.0}"),
            );
        }
        let n = self.nodes.len().max(1) as f64;
        let bw = pw / n;
        for (i, nd) in self.nodes.iter().enumerate() {
            let x = x0 + bw * i as f64;
            let mut y = y0 + ph;
            for (v, col) in [
                (nd.to_pods, "#2e8b57"),
                (nd.dropped, "#d62728"),
                (nd.lost_while_down, "#999999"),
            ] {
                let h = ph * v as f64 / max;
                y -= h;
                g.rect(x + bw * 0.1, y, (bw * 0.8).max(0.6), h, col);
            }
        }
        let step = (self.nodes.len() / 10).max(1);
        for i in (0..self.nodes.len()).step_by(step) {
            let x = x0 + bw * (i as f64 + 0.5);
            g.text(
                x,
                y0 + ph + 14.0,
                10.0,
                Anchor::Middle,
                "#333333",
                &i.to_string(),
            );
        }
        g.text(
            x0 + pw / 2.0,
            y0 + ph + 30.0,
            11.0,
            Anchor::Middle,
            "#333333",
            "node",
        );
        // Invariants.
        let mut y = 40.0 + bars_h + 10.0;
        g.text(20.0, y, 13.0, Anchor::Start, "#000000", "invariants");
        for i in &self.invariants {
            y += 18.0;
            let (mark, col) = if i.ok {
                ("ok", "#2e8b57")
            } else {
                ("FAIL", "#d62728")
            };
            g.text(30.0, y, 12.0, Anchor::Start, col, mark);
            g.text(
                80.0,
                y,
                12.0,
                Anchor::Start,
                "#000000",
                &format!(
                    "{}: {} checks, {} violations - {}",
                    i.name, i.checks, i.violations, i.description
                ),
            );
        }
        // Latency histogram (log2 buckets of microseconds).
        if let Some(m) = lat {
            let top = 40.0 + bars_h + inv_h + 20.0;
            let (x0, y0, pw, ph) = (70.0, top + 20.0, w - 100.0, lat_h - 80.0);
            let bar_room = ph - 16.0;
            g.text(
                x0,
                y0 - 8.0,
                12.0,
                Anchor::Start,
                "#333333",
                &format!(
                    "single endpoint update latency on node {} ({} Services): p50 {:.1} us, p99 {:.1} us, max {:.1} us - not deterministic",
                    m.node, m.services, m.endpoint_update.p50_us, m.endpoint_update.p99_us, m.endpoint_update.max_us
                ),
            );
            let bucket = |us: f64| (us.max(1.0).log2().floor() as usize).min(24);
            let mut counts = [0u64; 25];
            for &s in &m.samples_us {
                counts[bucket(s)] += 1;
            }
            let lo = counts.iter().position(|&c| c > 0).unwrap_or(0);
            let hi = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
            let nb = (hi - lo + 1) as f64;
            let cmax = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
            g.line(x0, y0 + ph, x0 + pw, y0 + ph, "#000000", 1.0);
            let bw = pw / nb;
            for (k, &c) in counts.iter().enumerate().take(hi + 1).skip(lo) {
                let x = x0 + bw * (k - lo) as f64;
                let h = bar_room * c as f64 / cmax;
                g.rect(x + 2.0, y0 + ph - h, bw - 4.0, h, "#1f77b4");
                g.text(
                    x + bw / 2.0,
                    y0 + ph - h - 3.0,
                    10.0,
                    Anchor::Middle,
                    "#333333",
                    &c.to_string(),
                );
                g.text(
                    x + bw / 2.0,
                    y0 + ph + 14.0,
                    10.0,
                    Anchor::Middle,
                    "#333333",
                    &format!("{}-{} us", 1u64 << k, 1u64 << (k + 1)),
                );
            }
        }
        g.finish()
    }
}

fn fault_line(p: &FaultPlan) -> String {
    if p.is_none() {
        return "none".into();
    }
    let one = |name: &str, f: &crate::faults::Faults| {
        if f.is_none() {
            return None;
        }
        let mut v = Vec::new();
        if f.loss > 0.0 {
            v.push(format!("loss={}", f.loss));
        }
        if f.dup > 0.0 {
            v.push(format!("dup={}", f.dup));
        }
        if f.corrupt > 0.0 {
            v.push(format!("corrupt={}", f.corrupt));
        }
        if f.delay > 0 {
            v.push(format!("delay={}", f.delay));
        }
        if f.reorder > 0 {
            v.push(format!("reorder={}", f.reorder));
        }
        Some(format!("{name} {}", v.join(" ")))
    };
    [
        one("underlay", &p.underlay),
        one("pod-tx", &p.pod_tx),
        one("pod-rx", &p.pod_rx),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ")
}

fn churn_line(c: &ChurnSpec) -> String {
    if c.is_none() {
        return "none".into();
    }
    format!(
        "pods={} endpoints={} nodes={} control-restart={} fastpath-restart={}",
        c.pods, c.endpoints, c.nodes, c.control_restarts, c.fastpath_restarts
    )
}
