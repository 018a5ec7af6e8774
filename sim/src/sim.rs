//! The simulation engine: builds the cluster, runs it tick by tick, and produces the report.
//!
//! # Time
//! One tick is one simulated millisecond; it is the `now_ms` every pipeline gets. Wall-clock
//! time is read only for the timing figures, which stay out of the deterministic report.
//!
//! # One tick, in order
//! 1. due timers fire: ARP (re)tries, probes, Service flow steps, NodePort flows of external
//!    clients, the nodes' kernels' probes;
//! 2. pod → node links deliver what is due into the nodes' port queues;
//! 3. every node with frames from pods runs them through its pipeline (bursts of ≤ 32 per
//!    port), then what its kernel sent through the host path; outputs go to pod links, the
//!    underlay, the node's kernel (which checks what it gets) or are drops (counted by the
//!    fast path);
//! 4. due events (churn, restarts) fire — while this tick's frames are on the underlay and on
//!    pod links, so every event has packets in flight: desired state changes, updates go to
//!    the nodes;
//! 5. the underlay delivers what is due to the nodes (by outer destination IP); every node with
//!    frames from the uplink runs them through its pipeline; external clients check what
//!    reached them (NodePort answers);
//! 6. node → pod links deliver what is due to the pods, which check them (the invariants) and
//!    answer requests (answers leave on the next tick).
//!
//! Everything iterates in a fixed order (node index, port, link id, timer sequence), and all
//! randomness comes from seeded streams, so a seed gives the same run and the same report.
//!
//! # Scale: full and light nodes
//! A node's Service table is big (10,000 Services × 10 endpoints is ~24 MB with its Maglev
//! tables, ~30 MB with the worker's 65,536-entry conntrack; measured) and the fast path builds
//! one per node (each `TableWriter` owns its tables; nothing is shared between writers), so
//! 1,000 full copies would need ~30 GB. Nodes without Services get a 1,024-entry conntrack
//! (they never create an entry). Decision: every node
//! runs the real pipeline with its real pod and route tables (all nodes route to all nodes),
//! but only a seeded sample of `full_nodes` nodes also carries the Service table. Only pods on
//! those nodes open Service flows (DNAT happens on the client's node); pods on every node are
//! endpoints and answer Service traffic (a backend's node needs no Service table: the reply is
//! plain pod-to-pod traffic until the client's node reverses the NAT). Small runs (≤ 32 nodes)
//! make every node full by default. The report says which nodes were full. External clients
//! reach NodePorts on full nodes only, for the same reason.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use core::net::Ipv4Addr;

use fastpath::counters::{CounterSnapshot, Disposition, DropReason, Event};
use fastpath::pipeline::Ingress;
use fastpath::tables::services::{EndpointSpec, EndpointState, Protocol, ServiceSpec};
use fastpath::tables::Capacities;
use fastpath::update::{Update, UpdateError};
use fastpath::wire::arp::op;
use fastpath::wire::{icmp::msg_type, ipproto};

use crate::desired::{canonical, Change, ClusterState, DesiredError};
use crate::external::External;
use crate::faults::{FaultPlan, FaultStats};
use crate::invariants::{ip, Checker, Invariant, ServiceHistory};
use crate::measure::{self, NodeMeasure};
use crate::node::SimNode;
use crate::packet::{Frame, Meta, TokenKind};
use crate::pod::{self, IpRx, Pod, Rx};
use crate::ports::PortLinks;
use crate::report::{
    CorruptionReport, NodeReport, Report, RunStats, Timings, TopologyReport, TrafficReport,
};
use crate::rng::{streams, Rng};
use crate::scenario::{self, Agenda, ChurnSpec, EventCounts, EventKind};
use crate::topology;
use crate::traffic::{self, Client, Flow, FlowKind, Target, NO_POD};
use crate::underlay::{Dest, Underlay, FROM_OUTSIDE};

/// Port ids per node (pod capacity of a node's port space; pods are ≤ 253 per /24).
pub const PORTS_PER_NODE: u16 = 256;
/// Ticks between two requests of a Service flow.
pub const FLOW_GAP: u64 = 5;
/// Ticks a restarting fast path does not forward.
pub const FASTPATH_DOWN_TICKS: u64 = 5;
/// Conntrack entries of a node that carries Services.
pub const CT_FULL: u32 = 65_536;
/// Conntrack entries of a node without Services (it never creates an entry).
pub const CT_LIGHT: u32 = 1_024;
/// Extra ticks the run may take after `duration_ms` to let every flow finish.
pub const DRAIN_LIMIT: u64 = 20_000;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Nodes.
    pub nodes: u32,
    /// Pods created on each node at the start.
    pub pods_per_node: u32,
    /// Services (frontends).
    pub services: u32,
    /// Endpoints per Service at the start (distinct pods, anywhere in the cluster).
    pub endpoints_per_service: u32,
    /// The seed.
    pub seed: u64,
    /// Simulated time during which flows start and events fire, ms.
    pub duration_ms: u64,
    /// Stop starting new probes and flows once pods have sent this many frames.
    pub max_packets: Option<u64>,
    /// Faults on the links.
    pub faults: FaultPlan,
    /// Events.
    pub churn: ChurnSpec,
    /// Nodes carrying the Service table (`None`: all when ≤ 32 nodes, else 20).
    pub full_nodes: Option<u32>,
    /// Pods each pod probes (`None`: every other pod when the cluster starts with ≤ 64 pods,
    /// else 8 random ones).
    pub probes_per_pod: Option<u32>,
    /// Service flows each pod on a full node opens.
    pub flows_per_pod: u32,
    /// Requests per Service flow.
    pub requests_per_flow: u32,
    /// Measure wall-clock times and memory (kept out of the deterministic report).
    pub timings: bool,
    /// Single endpoint updates timed on the measured node.
    pub timing_updates: u32,
    /// Workers per node (each with its own conntrack; flows handed to their owner).
    pub workers: u16,
    /// Other nodes' pods each node's kernel probes from its VTEP address, through its host
    /// path (at a random time; up to this many, fewer in a cluster with fewer).
    pub host_probes: u32,
    /// External clients on the underlay.
    pub external_clients: u32,
    /// NodePort flows each external client opens (to a random full node, a random Service
    /// with a NodePort: every Service has one while the range lasts, `topology::node_port`).
    pub nodeport_flows: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            pods_per_node: 4,
            services: 4,
            endpoints_per_service: 2,
            seed: 1,
            duration_ms: 1000,
            max_packets: None,
            faults: FaultPlan::none(),
            churn: ChurnSpec::default(),
            full_nodes: None,
            probes_per_pod: None,
            flows_per_pod: 4,
            requests_per_flow: 4,
            timings: false,
            timing_updates: 1000,
            workers: 1,
            host_probes: 2,
            external_clients: 2,
            nodeport_flows: 8,
        }
    }
}

/// Why a run could not be set up or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is impossible.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A node's fast path refused updates the desired state produced (a bug somewhere).
    #[error("node {node}: update refused: {err}")]
    Update {
        /// The node.
        node: u32,
        /// The refusal.
        err: UpdateError,
    },
    /// The desired state refused a change (a bug in the simulator).
    #[error("desired state: {0}")]
    Desired(#[from] DesiredError),
}

/// Something to do at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Send (or resend) the ARP request for the gateway.
    Arp(u32),
    /// Start the next probe of pod `uid`.
    Probe(u32),
    /// Resend probe flow `id` if unanswered.
    ProbeRetry(u32),
    /// Start a Service flow from pod `uid`.
    ServiceStart(u32),
    /// Send the next request of flow `id`.
    FlowStep(u32),
    /// Start a NodePort flow from external client `k`.
    NodePortStart(u32),
    /// Node `n`'s kernel starts its probes.
    HostProbes(u32),
}

/// Tallies about corrupted frames.
#[derive(Debug, Clone, Default)]
struct CorruptionTally {
    dropped_by_fastpath: BTreeMap<&'static str, u64>,
    rejected_by_pods: BTreeMap<&'static str, u64>,
    delivered_intact: u64,
    to_host: u64,
}

/// Wall-clock samples.
#[derive(Debug, Clone, Default)]
struct Clock {
    setup: Duration,
    sync_full: Vec<Duration>,
    sync_light: Vec<Duration>,
    updates: Vec<Duration>,
    resyncs: Vec<Duration>,
    measured: Option<NodeMeasure>,
}

/// A simulated cluster.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    now: u64,
    nodes: Vec<SimNode>,
    pods: Vec<Option<Pod>>,
    externals: Vec<External>,
    alive: Vec<u32>,
    alive_pos: Vec<usize>,
    desired: ClusterState,
    history: Vec<ServiceHistory>,
    flows: Vec<Flow>,
    tx: PortLinks,
    rx: PortLinks,
    underlay: Underlay,
    timers: BinaryHeap<Reverse<(u64, u64, Timer)>>,
    timer_seq: u64,
    agenda: Agenda,
    agenda_seq: u64,
    checker: Checker,
    traffic_rng: Rng,
    external_rng: Rng,
    host_rng: Rng,
    /// Ports each node's kernel used (its probes never share a tuple).
    host_ports: Vec<BTreeSet<u16>>,
    event_rng: Rng,
    next_frame_id: u64,
    deleted_ips: BTreeSet<u32>,
    /// 5-tuples (src, dst, sport, dport, proto) of corrupted frames that reached a pod port
    /// addressed to a ClusterIP: the fast path NATs before anyone checks the L4 checksum, so
    /// such a frame may have left a conntrack entry for a tuple no real flow had (yet). And of
    /// corrupted frames that reached a node's uplink addressed to a NodePort: a NodePort flow's
    /// entry keeps the MAC its first packet came from, which no checksum covers (a real link's
    /// FCS would have dropped the frame), so its answers may go to a MAC nobody has.
    ghost_tuples: BTreeSet<(u32, u32, u16, u16, u8)>,
    probe_all: bool,
    probe_k: u32,
    probe_attempts: u32,
    full: Vec<u32>,
    stats: RunStats,
    events: EventCounts,
    corruption: CorruptionTally,
    clock: Clock,
    pods_initial: usize,
}

fn link_id(node: u32, port: u16) -> u32 {
    node * u32::from(PORTS_PER_NODE) + u32::from(port)
}

fn link_node_port(id: u32) -> (u32, u16) {
    (
        id / u32::from(PORTS_PER_NODE),
        (id % u32::from(PORTS_PER_NODE)) as u16,
    )
}

fn capacities(cfg: &SimConfig, full: bool) -> Capacities {
    let eps = u64::from(cfg.services) * u64::from(cfg.endpoints_per_service);
    Capacities {
        max_pod_ports: PORTS_PER_NODE,
        max_nodes: cfg.nodes.max(16),
        max_services: if full { cfg.services.max(16) * 2 } else { 16 },
        max_endpoints: if full {
            (eps * 2 + 1024).min(u64::from(u32::MAX)) as u32
        } else {
            16
        },
        conntrack_entries: if full { CT_FULL } else { CT_LIGHT },
    }
}

impl Sim {
    /// Builds the cluster: nodes, pods, Services, and every node's fast path synced.
    pub fn new(cfg: SimConfig) -> Result<Sim, SimError> {
        let t_setup = Instant::now();
        validate(&cfg)?;
        let mut layout = Rng::stream(cfg.seed, streams::LAYOUT, 0);
        let n_full = cfg
            .full_nodes
            .unwrap_or(if cfg.nodes <= 32 { cfg.nodes } else { 20 })
            .min(cfg.nodes);
        let mut full: Vec<u32> = if n_full >= cfg.nodes {
            (0..cfg.nodes).collect()
        } else {
            layout
                .sample(cfg.nodes as usize, n_full as usize)
                .into_iter()
                .map(|i| i as u32)
                .collect()
        };
        full.sort_unstable();
        let is_full: BTreeSet<u32> = full.iter().copied().collect();
        let nodes: Vec<SimNode> = (0..cfg.nodes)
            .map(|i| {
                let f = is_full.contains(&i);
                SimNode::new(
                    i,
                    f,
                    capacities(&cfg, f),
                    if f { CT_FULL } else { CT_LIGHT },
                    cfg.workers,
                )
            })
            .collect();
        let n_ports = cfg.nodes as usize * usize::from(PORTS_PER_NODE);
        let pods_initial = (cfg.nodes * cfg.pods_per_node) as usize;
        let mut sim = Sim {
            tx: PortLinks::new(cfg.faults.pod_tx, cfg.seed, 0, n_ports),
            rx: PortLinks::new(cfg.faults.pod_rx, cfg.seed, 1, n_ports),
            underlay: Underlay::new(cfg.faults.underlay.build(Rng::stream(
                cfg.seed,
                streams::UNDERLAY,
                0,
            ))),
            traffic_rng: Rng::stream(cfg.seed, streams::TRAFFIC, 0),
            external_rng: Rng::stream(cfg.seed, streams::EXTERNAL, 0),
            host_rng: Rng::stream(cfg.seed, streams::HOST, 0),
            host_ports: vec![BTreeSet::new(); cfg.nodes as usize],
            event_rng: Rng::stream(cfg.seed, streams::EVENTS, 0),
            probe_all: cfg.probes_per_pod.is_none() && pods_initial <= 64,
            probe_k: cfg.probes_per_pod.unwrap_or(8),
            probe_attempts: traffic::probe_attempts(&cfg.faults),
            now: 0,
            nodes,
            pods: Vec::new(),
            externals: (0..cfg.external_clients).map(External::new).collect(),
            alive: Vec::new(),
            alive_pos: Vec::new(),
            desired: ClusterState::new(),
            history: Vec::new(),
            flows: Vec::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            agenda: Agenda::new(),
            agenda_seq: 1 << 32,
            checker: Checker::default(),
            next_frame_id: 0,
            deleted_ips: BTreeSet::new(),
            ghost_tuples: BTreeSet::new(),
            full,
            stats: RunStats::default(),
            events: EventCounts::default(),
            corruption: CorruptionTally::default(),
            clock: Clock::default(),
            pods_initial,
            cfg,
        };
        // Desired state: nodes, pods, Services.
        for i in 0..sim.cfg.nodes {
            sim.nodes[i as usize].up = true;
            sim.desired
                .apply(Change::AddNode(topology::remote_spec(i)))?;
        }
        for i in 0..sim.cfg.nodes {
            for _ in 0..sim.cfg.pods_per_node {
                let uid = sim.attach_pod(i).ok_or_else(|| {
                    SimError::Config(format!("node {i}: no address or port left"))
                })?;
                let p = sim.pod(uid).spec();
                sim.desired.apply(Change::AddPod {
                    node: topology::underlay_ip(i),
                    pod: p,
                })?;
            }
        }
        for j in 0..sim.cfg.services {
            let f = topology::frontend(j);
            let tport = topology::target_port(j);
            let mut h = ServiceHistory::new(j, f, tport);
            let picks = layout.sample(sim.alive.len(), sim.cfg.endpoints_per_service as usize);
            let mut endpoints = Vec::with_capacity(picks.len());
            for k in picks {
                let uid = sim.alive[k];
                let pip = sim.pod(uid).ip;
                h.add(pip.to_bits(), tport, 0);
                endpoints.push(EndpointSpec {
                    ip: pip,
                    port: tport,
                    state: EndpointState::Ready,
                });
            }
            sim.desired.apply(Change::AddService(ServiceSpec {
                name: topology::service_name(j),
                frontend: f,
                node_port: topology::node_port(j),
                node_port_local: topology::external_local(j),
                endpoints,
            }))?;
            sim.history.push(h);
        }
        // One node measured on its own, before the cluster's fast paths exist.
        if sim.cfg.timings {
            let n = sim.full.first().copied().unwrap_or(0);
            let role = sim.nodes[n as usize].role;
            let mut mrng = Rng::stream(sim.cfg.seed, streams::MEASURE, 0);
            sim.clock.measured = Some(measure::measure_node(
                n,
                sim.desired.full_state(role),
                capacities(&sim.cfg, role.services),
                if role.services { CT_FULL } else { CT_LIGHT },
                sim.cfg.timing_updates,
                &mut mrng,
            ));
        }
        // Every node's fast path, fully synced.
        for i in 0..sim.cfg.nodes as usize {
            let role = sim.nodes[i].role;
            let state = sim.desired.full_state(role);
            let took = sim.nodes[i]
                .start(0, state)
                .map_err(|err| SimError::Update {
                    node: i as u32,
                    err,
                })?;
            if role.services {
                sim.clock.sync_full.push(took);
            } else {
                sim.clock.sync_light.push(took);
            }
        }
        // Pods resolve their gateways in the first few ticks.
        let spread = (sim.cfg.duration_ms / 4).clamp(1, 50);
        for k in 0..sim.alive.len() {
            let uid = sim.alive[k];
            let t = sim.traffic_rng.below(spread);
            sim.schedule(t, Timer::Arp(uid));
        }
        // Each node's kernel probes other nodes' pods once, some time in the first half.
        if sim.cfg.host_probes > 0 && sim.cfg.duration_ms > 4 {
            for n in 0..sim.cfg.nodes {
                let t = sim.host_rng.range(1, sim.cfg.duration_ms / 2);
                sim.schedule(t, Timer::HostProbes(n));
            }
        }
        // External clients open their NodePort flows over the run.
        if sim.cfg.services > 0 && sim.cfg.duration_ms > 2 {
            for k in 0..sim.cfg.external_clients {
                for _ in 0..sim.cfg.nodeport_flows {
                    let t = sim.external_rng.range(1, sim.cfg.duration_ms - 1);
                    sim.schedule(t, Timer::NodePortStart(k));
                }
            }
        }
        let mut erng = Rng::stream(sim.cfg.seed, streams::EVENTS, 1);
        sim.agenda = scenario::schedule(&sim.cfg.churn, sim.cfg.duration_ms, &mut erng);
        sim.clock.setup = t_setup.elapsed();
        Ok(sim)
    }

    /// The desired state (for tests and tools).
    pub fn desired(&self) -> &ClusterState {
        &self.desired
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// `(uid, ip, mac, port)` of the pods on node `n`, by port.
    pub fn pods_on(&self, n: u32) -> Vec<(u32, Ipv4Addr, fastpath::wire::MacAddr, u16)> {
        self.nodes[n as usize]
            .ports
            .iter()
            .flatten()
            .map(|&u| {
                let p = self.pod(u);
                (u, p.ip, p.mac, p.port)
            })
            .collect()
    }

    /// Applies raw updates to node `n`, bypassing the desired state: for tests that break a
    /// table on purpose and check that the invariants catch it.
    pub fn inject(&mut self, n: u32, updates: Vec<Update>) -> Result<(), SimError> {
        self.nodes[n as usize]
            .apply(updates)
            .map(|_| ())
            .map_err(|err| SimError::Update { node: n, err })
    }

    /// Breaks node `n`'s worker handoff: a frame a worker should hand to its flow's owner is
    /// processed by the worker that received it, as if workers shared nothing and knew nothing
    /// of each other. For tests that check the invariants catch a broken ownership model.
    pub fn break_handoff(&mut self, n: u32) {
        self.nodes[n as usize].handoff_broken = true;
    }

    fn pod(&self, uid: u32) -> &Pod {
        self.pods[uid as usize]
            .as_ref()
            .expect("caller checked the pod is alive")
    }

    fn schedule(&mut self, at: u64, t: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, t)));
    }

    /// Creates a pod on node `n` in the simulator (address, port, liveness), without telling
    /// the desired state. Returns its uid.
    fn attach_pod(&mut self, n: u32) -> Option<u32> {
        let node = &mut self.nodes[n as usize];
        let port = node.alloc_port()?;
        let host = node.alloc_host()?;
        let uid = self.pods.len() as u32;
        node.ports[usize::from(port)] = Some(uid);
        node.ip_owner[host as usize] = Some(uid);
        let p = Pod::new(uid, n, port, host, self.now);
        self.deleted_ips.remove(&p.ip.to_bits());
        self.pods.push(Some(p));
        self.alive_pos.push(self.alive.len());
        self.alive.push(uid);
        Some(uid)
    }

    /// Sends `change` to every node that needs it (as each node's control daemon would), timing
    /// each batch, then applies it to the desired state.
    fn change(&mut self, change: Change) -> Result<(), SimError> {
        for k in 0..self.nodes.len() {
            if !self.nodes[k].up {
                continue;
            }
            let role = self.nodes[k].role;
            let u = self.desired.plan(role, &change);
            if u.is_empty() {
                continue;
            }
            let t0 = self.cfg.timings.then(Instant::now);
            self.nodes[k].apply(u).map_err(|err| SimError::Update {
                node: k as u32,
                err,
            })?;
            if let Some(t0) = t0 {
                self.clock.updates.push(t0.elapsed());
            }
        }
        self.desired.apply(change)?;
        Ok(())
    }

    /// Checks node `n`'s tables against the desired state.
    fn check_tables(&mut self, n: u32) {
        let node = &self.nodes[n as usize];
        let Some(have) = node.table_state() else {
            return;
        };
        let want = canonical(self.desired.full_state(node.role));
        let have = canonical(have);
        let ok = have == want;
        let now = self.now;
        self.checker
            .check(Invariant::TablesMatchDesired, ok, now, || {
                format!(
                    "node {n}: tables hold {} pods, {} nodes, {} services; desired {}, {}, {}",
                    have.pods.len(),
                    have.nodes.len(),
                    have.services.len(),
                    want.pods.len(),
                    want.nodes.len(),
                    want.services.len()
                )
            });
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Result<Report, SimError> {
        let t_run = Instant::now();
        let hard_end = self.cfg.duration_ms + DRAIN_LIMIT;
        loop {
            self.tick()?;
            self.now += 1;
            if self.now >= self.cfg.duration_ms && self.quiet() {
                break;
            }
            if self.now >= hard_end {
                self.stats.hit_drain_limit = true;
                break;
            }
        }
        let run_time = t_run.elapsed();
        Ok(self.finish(run_time))
    }

    fn quiet(&self) -> bool {
        self.timers.is_empty()
            && self.agenda.is_empty()
            && !self.tx.busy()
            && !self.rx.busy()
            && !self.underlay.busy()
    }

    fn packets_capped(&self) -> bool {
        self.cfg
            .max_packets
            .is_some_and(|m| self.stats.pod_frames_sent >= m)
    }

    fn tick(&mut self) -> Result<(), SimError> {
        let now = self.now;
        // 1. Timers.
        while let Some(Reverse((t, _, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            if let Some(Reverse((_, _, timer))) = self.timers.pop() {
                self.on_timer(timer);
            }
        }
        // 2. Pods → nodes.
        let mut arrived = Vec::new();
        self.tx.poll(now, &mut arrived);
        let mut busy_nodes = BTreeSet::new();
        for (id, f) in arrived {
            let (n, port) = link_node_port(id);
            let node = &mut self.nodes[n as usize];
            if !node.forwarding(now) {
                node.stats.lost_while_down += 1;
                continue;
            }
            let q = &mut node.port_q[usize::from(port)];
            if q.is_empty() {
                node.active_ports.push(port);
            }
            q.push(f);
            busy_nodes.insert(n);
        }
        // 3. Pod ingress.
        let mut out = Vec::new();
        for n in busy_nodes {
            let node = &mut self.nodes[n as usize];
            let mut ports = std::mem::take(&mut node.active_ports);
            ports.sort_unstable();
            for port in ports {
                let node = &mut self.nodes[n as usize];
                let mut q = std::mem::take(&mut node.port_q[usize::from(port)]);
                for f in q.iter().filter(|f| f.meta.corrupted) {
                    if let Some(t) = service_tuple(f) {
                        self.ghost_tuples.insert(t);
                    }
                }
                let node = &mut self.nodes[n as usize];
                node.process(Ingress::Pod(port), &mut q, now, &mut out);
                node.port_q[usize::from(port)] = q;
                self.dispatch(n, &mut out);
            }
        }
        // 3b. Host-path ingress: what the nodes' kernels sent.
        for n in 0..self.nodes.len() {
            if self.nodes[n].host_q.is_empty() {
                continue;
            }
            let node = &mut self.nodes[n];
            let mut q = std::mem::take(&mut node.host_q);
            node.process(Ingress::Host, &mut q, now, &mut out);
            node.host_q = q;
            self.dispatch(n as u32, &mut out);
        }
        // 4. Events, while this tick's frames are on the underlay.
        while let Some(e) = self.agenda.first_entry() {
            if e.key().0 > now {
                break;
            }
            let kind = e.remove();
            self.fire(kind)?;
        }
        // 5. Underlay → nodes.
        let mut landed: Vec<(u32, Frame)> = Vec::new();
        let mut outside: Vec<(u32, Frame)> = Vec::new();
        {
            let nodes = &self.nodes;
            self.underlay.deliver(
                now,
                |n| nodes.get(n as usize).is_some_and(|x| x.up),
                self.externals.len() as u32,
                |d, f| match d {
                    Dest::Node(n) => landed.push((n, f)),
                    Dest::External(k) => outside.push((k, f)),
                },
            );
        }
        for (k, f) in outside {
            self.external_receive(k, f);
        }
        let mut busy_nodes = BTreeSet::new();
        for (n, f) in landed {
            if f.meta.corrupted {
                if let Some(t) = l4_tuple(&f).filter(to_nodeport) {
                    self.ghost_tuples.insert(t);
                }
            }
            let node = &mut self.nodes[n as usize];
            if !node.forwarding(now) {
                node.stats.lost_while_down += 1;
                continue;
            }
            node.uplink_q.push(f);
            busy_nodes.insert(n);
        }
        for n in busy_nodes {
            let node = &mut self.nodes[n as usize];
            let mut q = std::mem::take(&mut node.uplink_q);
            node.process(Ingress::Uplink, &mut q, now, &mut out);
            node.uplink_q = q;
            self.dispatch(n, &mut out);
        }
        // 6. Nodes → pods.
        let mut arrived = Vec::new();
        self.rx.poll(now, &mut arrived);
        for (id, f) in arrived {
            let (n, port) = link_node_port(id);
            match self.nodes[n as usize].ports[usize::from(port)] {
                Some(uid) => self.pod_receive(uid, f),
                None => self.stats.lost_with_deleted_pods += 1,
            }
        }
        if now % 1000 == 999 {
            for node in self.nodes.iter_mut().filter(|n| n.up) {
                node.maintain(now);
            }
        }
        Ok(())
    }

    /// Sends a pipeline's outputs on their way.
    fn dispatch(&mut self, n: u32, out: &mut Vec<(Disposition, Frame)>) {
        let now = self.now;
        for (d, f) in out.drain(..) {
            match d {
                Disposition::ToPod(port) => {
                    let node = &mut self.nodes[n as usize];
                    if node
                        .ports
                        .get(usize::from(port))
                        .copied()
                        .flatten()
                        .is_some()
                    {
                        node.stats.to_pods += 1;
                        self.rx.send(link_id(n, port), now, f);
                    } else {
                        // The tables sent a frame to a port with no pod: a stale entry.
                        let dst = f.ipv4_dst();
                        self.checker.fail(Invariant::DeliveredToOwner, now, || {
                            format!(
                                "node {n} sent a frame for {:?} to port {port}, which has no pod",
                                dst.map(ip)
                            )
                        });
                        if dst.is_some_and(|d| self.deleted_ips.contains(&d)) {
                            self.checker.fail(Invariant::NothingAfterDelete, now, || {
                                format!(
                                    "node {n}: frame for deleted {:?} sent to port {port}",
                                    dst.map(ip)
                                )
                            });
                        }
                    }
                }
                Disposition::ToUplink => {
                    self.nodes[n as usize].stats.to_underlay += 1;
                    self.underlay.send(now, n, f);
                }
                Disposition::ToHost => {
                    self.nodes[n as usize].stats.to_host += 1;
                    // A corrupted frame for the node's own address (a VXLAN port hit: the outer
                    // UDP checksum is zero, RFC 7348) is its kernel's to drop; an intact one
                    // must be the answer of one of its probes.
                    if f.meta.corrupted {
                        self.corruption.to_host += 1;
                        self.checker.pass(Invariant::CorruptionCaught);
                    } else {
                        self.node_host_receive(n, f);
                    }
                }
                Disposition::Handoff { .. } => {
                    // `SimNode::process` gives every handed-over frame to its owner.
                    self.checker.fail(Invariant::DeliveredToOwner, now, || {
                        format!("node {n}: a handed-over frame came out of the node")
                    });
                }
                Disposition::Drop(r) => {
                    self.nodes[n as usize].stats.dropped += 1;
                    if f.meta.corrupted {
                        *self
                            .corruption
                            .dropped_by_fastpath
                            .entry(r.name())
                            .or_default() += 1;
                        self.checker.pass(Invariant::CorruptionCaught);
                    } else if r == DropReason::NoLocalPod {
                        if let Some(d) = f.ipv4_dst() {
                            if self.deleted_ips.contains(&d) {
                                self.checker.pass(Invariant::NothingAfterDelete);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A pod sends a frame (held until the gateway is resolved, except ARP).
    fn pod_send(&mut self, uid: u32, bytes: Vec<u8>, arp: bool) {
        let Some(p) = self.pods[uid as usize].as_mut() else {
            return;
        };
        if !arp && p.gw_mac.is_none() {
            p.held.push(bytes);
            return;
        }
        let id = link_id(p.node, p.port);
        self.stats.pod_frames_sent += 1;
        let meta = Meta {
            id: self.next_frame_id,
            sent_at: self.now,
            ..Meta::default()
        };
        self.next_frame_id += 1;
        self.tx.send(id, self.now, Frame::new(&bytes, meta));
    }

    fn on_timer(&mut self, t: Timer) {
        let now = self.now;
        match t {
            Timer::Arp(uid) => {
                let Some(p) = self.pods[uid as usize].as_mut() else {
                    return;
                };
                if p.gw_mac.is_some() {
                    return;
                }
                if p.arp_tries >= 30 {
                    self.stats.arp_gave_up += 1;
                    return;
                }
                let f = p.arp_request();
                self.pod_send(uid, f, true);
                let retry = 10 + 2 * self.cfg.faults.max_one_way();
                self.schedule(now + retry, Timer::Arp(uid));
            }
            Timer::Probe(uid) => self.next_probe(uid),
            Timer::ProbeRetry(fid) => {
                let f = &self.flows[fid as usize];
                let target_alive = match f.target {
                    Target::Pod { uid, .. } => self.pods[uid as usize].is_some(),
                    _ => true,
                };
                let client_gone = if f.host {
                    !self.nodes[f.client_node as usize].up
                } else {
                    self.pods[f.client as usize].is_none()
                };
                if f.replies > 0
                    || f.attempts >= self.probe_attempts
                    || client_gone
                    || !target_alive
                {
                    return;
                }
                self.send_request(fid, 0);
                self.schedule(now + self.probe_retry(), Timer::ProbeRetry(fid));
            }
            Timer::ServiceStart(uid) => self.start_service_flow(uid),
            Timer::NodePortStart(k) => self.start_nodeport_flow(k),
            Timer::HostProbes(n) => self.start_host_probes(n),
            Timer::FlowStep(fid) => {
                let f = &self.flows[fid as usize];
                let client_gone = f.external.is_none() && self.pods[f.client as usize].is_none();
                if client_gone || f.sent >= f.requests {
                    return;
                }
                let seq = f.sent;
                self.send_request(fid, seq);
                if self.flows[fid as usize].sent < self.flows[fid as usize].requests {
                    self.schedule(now + FLOW_GAP, Timer::FlowStep(fid));
                }
            }
        }
    }

    fn probe_retry(&self) -> u64 {
        10 + 2 * self.cfg.faults.max_one_way() + 2 * FASTPATH_DOWN_TICKS
    }

    /// Sends request `seq` of flow `fid` (a probe's `seq` 0 is resent with a new attempt).
    fn send_request(&mut self, fid: u32, seq: u32) {
        if self.flows[fid as usize].host {
            let extra = self.host_rng.below(49) as usize;
            let f = &mut self.flows[fid as usize];
            let n = f.client_node;
            let bytes = f.request(&traffic::NodeHost(n), 0, f.attempts, extra);
            f.attempts += 1;
            f.sent = 1;
            self.host_send(n, bytes);
            return;
        }
        if let Some(k) = self.flows[fid as usize].external {
            let extra = self.external_rng.below(49) as usize;
            let f = &mut self.flows[fid as usize];
            let bytes = f.request(
                &self.externals[k as usize].to_node(f.client_node),
                seq,
                0,
                extra,
            );
            f.sent = seq + 1;
            self.external_send(bytes);
            return;
        }
        let extra = self.traffic_rng.below(49) as usize;
        let f = &mut self.flows[fid as usize];
        let Some(client) = self.pods[f.client as usize].as_ref() else {
            return;
        };
        let attempt = f.attempts;
        let bytes = f.request(client, seq, attempt, extra);
        if f.kind == FlowKind::Probe || f.kind == FlowKind::GatewayPing {
            f.attempts += 1;
            f.sent = 1;
        } else {
            f.sent = seq + 1;
        }
        let uid = f.client;
        self.pod_send(uid, bytes, false);
    }

    fn new_flow(
        &mut self,
        uid: u32,
        kind: FlowKind,
        proto: u8,
        target: Target,
        (dst, dport): (Ipv4Addr, u16),
        requests: u32,
    ) -> Option<u32> {
        let id = self.flows.len() as u32;
        let now = self.now;
        let draw = self.traffic_rng.next_u64();
        let p = self.pods[uid as usize].as_mut()?;
        let sport = p.ephemeral_port(draw);
        let f = Flow::new(
            id,
            kind,
            Client::pod(p),
            sport,
            proto,
            target,
            dst,
            dport,
            requests,
            now,
        );
        self.flows.push(f);
        Some(id)
    }

    /// Node `n`'s kernel sends a frame through its host path (no fault on the way: a TAP).
    fn host_send(&mut self, n: u32, bytes: Vec<u8>) {
        let meta = Meta {
            id: self.next_frame_id,
            sent_at: self.now,
            ..Meta::default()
        };
        self.next_frame_id += 1;
        let now = self.now;
        let node = &mut self.nodes[n as usize];
        if !node.up || !node.forwarding(now) {
            node.stats.lost_while_down += 1;
            return;
        }
        node.host_q.push(Frame::new(&bytes, meta));
    }

    /// Node `n`'s kernel probes up to `host_probes` pods on other nodes, from its VTEP address.
    fn start_host_probes(&mut self, n: u32) {
        if !self.nodes[n as usize].up || self.packets_capped() {
            return;
        }
        let others: Vec<u32> = self
            .alive
            .iter()
            .copied()
            .filter(|&u| self.pod(u).node != n)
            .collect();
        let picks = self
            .host_rng
            .sample(others.len(), self.cfg.host_probes as usize);
        let vtep = topology::pod_cidr(n).network();
        for k in picks {
            let t = self.pod(others[k]);
            let (tuid, tip) = (t.uid, t.ip);
            let proto = traffic::probe_protocol(self.host_rng.below(3));
            let draw = self.host_rng.next_u64();
            let sport = pod::fresh_port(&mut self.host_ports[n as usize], draw);
            let id = self.flows.len() as u32;
            let who = Client {
                uid: NO_POD,
                external: None,
                host: true,
                ip: vtep.to_bits(),
                node: n,
            };
            self.flows.push(Flow::new(
                id,
                FlowKind::HostProbe,
                who,
                sport,
                proto,
                Target::Pod {
                    uid: tuid,
                    ip: tip.to_bits(),
                },
                tip,
                traffic::probe_port(proto),
                1,
                self.now,
            ));
            self.send_request(id, 0);
            let at = self.now + self.probe_retry();
            self.schedule(at, Timer::ProbeRetry(id));
        }
    }

    /// A frame the fast path of node `n` sent its kernel: the host stack's checks, then the
    /// answer of one of the kernel's probes, from the pod probed to the VTEP address.
    fn node_host_receive(&mut self, n: u32, f: Frame) {
        let who = format!("node {n}'s kernel");
        self.host_receive(
            topology::underlay_mac(n),
            &who,
            false,
            f,
            |sim, rx, _| match rx {
                Rx::Ip(rx) => sim.on_host_reply(n, &rx),
                Rx::Arp(a) => sim.checker.fail(Invariant::DeliveredToOwner, sim.now, || {
                    format!("node {n}'s kernel got ARP {a:?}")
                }),
            },
        );
    }

    /// The answer `rx` of a probe reached node `n`'s kernel.
    fn on_host_reply(&mut self, n: u32, rx: &IpRx) {
        let now = self.now;
        let vtep = topology::pod_cidr(n).network();
        let flow = rx
            .token
            .filter(|t| t.kind == TokenKind::Reply)
            .and_then(|t| self.flows.get(t.flow as usize))
            .cloned();
        // A NodePort flow's answer to this node's VTEP address that its conntrack no longer
        // translates (the fast path restarted, or the backend's endpoint went and its UDP flows
        // with it): the kernel's, which has no socket for it.
        if let Some(f) = &flow {
            if f.kind == FlowKind::NodePort && f.client_node == n && rx.dst == vtep {
                let Target::Service { svc } = f.target else {
                    return;
                };
                let ct_lost = self.nodes[n as usize].started_at >= f.started;
                let stale =
                    self.history[svc as usize].removed_since(rx.src.to_bits(), rx.sport, f.started);
                self.checker
                    .check(Invariant::NodePortReply, ct_lost || stale, now, || {
                        format!(
                            "answer of NodePort flow {} from {}:{} reached node {n}'s kernel untranslated",
                            f.id, rx.src, rx.sport
                        )
                    });
                self.stats.stale_replies += 1;
                return;
            }
        }
        let Some(flow) = flow.filter(|f| f.host && f.client_node == n && rx.dst == vtep) else {
            self.checker.fail(Invariant::DeliveredToOwner, now, || {
                format!(
                    "node {n}'s kernel got a frame for {} from {} that is no answer of its probes",
                    rx.dst, rx.src
                )
            });
            return;
        };
        self.checker.pass(Invariant::DeliveredToOwner);
        self.checker.pass(Invariant::PayloadIntact);
        let (want_ip, want_port) = flow.expected_reply_source();
        let exact = flow.answered_by(rx);
        self.checker
            .check(Invariant::SourceUnchanged, exact, now, || {
                format!(
                    "answer of node {n}'s probe {} came from {}:{}, want {}:{}",
                    flow.id,
                    rx.src,
                    rx.sport,
                    ip(want_ip),
                    want_port
                )
            });
        self.flows[flow.id as usize].replies += 1;
    }

    /// An external client's frame onto the underlay.
    fn external_send(&mut self, bytes: Vec<u8>) {
        self.stats.external_frames_sent += 1;
        let meta = Meta {
            id: self.next_frame_id,
            sent_at: self.now,
            ..Meta::default()
        };
        self.next_frame_id += 1;
        self.underlay
            .send(self.now, FROM_OUTSIDE, Frame::new(&bytes, meta));
    }

    /// External client `k` opens a flow to a random Service's NodePort on a random full node
    /// in the cluster.
    fn start_nodeport_flow(&mut self, k: u32) {
        if self.packets_capped() || self.history.is_empty() {
            return;
        }
        let up: Vec<u32> = self
            .full
            .iter()
            .copied()
            .filter(|&n| self.nodes[n as usize].up)
            .collect();
        if up.is_empty() {
            return;
        }
        let node = up[self.external_rng.index(up.len())];
        let with_port = self
            .history
            .len()
            .min(usize::from(topology::NODEPORT_MAX - topology::NODEPORT_MIN) + 1);
        let svc = self.external_rng.index(with_port) as u32;
        let Some(port) = topology::node_port(svc) else {
            return;
        };
        let proto = match self.history[svc as usize].frontend.protocol {
            Protocol::Tcp => ipproto::TCP,
            Protocol::Udp => ipproto::UDP,
        };
        let draw = self.external_rng.next_u64();
        let client = &mut self.externals[k as usize];
        let sport = client.ephemeral_port(draw);
        let id = self.flows.len() as u32;
        let requests = self.cfg.requests_per_flow.max(1);
        let who = Client {
            uid: NO_POD,
            external: Some(k),
            host: false,
            ip: client.ip.to_bits(),
            node,
        };
        self.flows.push(Flow::new(
            id,
            FlowKind::NodePort,
            who,
            sport,
            proto,
            Target::Service { svc },
            topology::underlay_ip(node),
            port,
            requests,
            self.now,
        ));
        self.stats.nodeport_flows += 1;
        // Under the Local policy a node without a ready endpoint of its own drops the flow.
        let h = &self.history[svc as usize];
        if topology::external_local(svc)
            && !h.current().any(|(ip, _, ready)| {
                ready && topology::locate_pod_ip(ip).is_some_and(|(n, _)| n == node)
            })
        {
            self.stats.nodeport_flows_no_local_endpoint += 1;
        }
        self.open_flow(id, requests);
    }

    /// Sends a Service or NodePort flow's first request and schedules the next.
    fn open_flow(&mut self, fid: u32, requests: u32) {
        self.send_request(fid, 0);
        if requests > 1 {
            self.schedule(self.now + FLOW_GAP, Timer::FlowStep(fid));
        }
    }

    /// A frame reaches external client `k` from the underlay: its host stack's checks, then
    /// the invariants — a NodePort answer of one of its flows, from the node's address and the
    /// NodePort it reached.
    fn external_receive(&mut self, k: u32, f: Frame) {
        self.stats.external_frames_received += 1;
        let (mac, cip) = {
            let c = &self.externals[k as usize];
            (c.mac, c.ip)
        };
        let who = format!("external client {cip}");
        self.host_receive(mac, &who, true, f, |sim, rx, _| match rx {
            Rx::Ip(rx) => sim.on_external_reply(k, &rx),
            Rx::Arp(a) => sim.checker.fail(Invariant::DeliveredToOwner, sim.now, || {
                format!("external client {cip} got ARP {a:?}")
            }),
        });
    }

    /// The receive checks of a host (a pod, an external client: `who`) with NIC address `mac`
    /// on `f`, then `accept` on what it accepted (with the tick `f` was sent at). A rejected
    /// frame is the corruption's doing if it was corrupted — or, for a host whose MAC the fast
    /// path learns from its packets (`mac_learned`: an external client), if it is an answer of
    /// a flow whose first packet came with a corrupted source MAC (`ghost_tuples`); else the
    /// fast path broke it. A corrupted frame that passed must break no invariant.
    fn host_receive(
        &mut self,
        mac: fastpath::wire::MacAddr,
        who: &str,
        mac_learned: bool,
        f: Frame,
        accept: impl FnOnce(&mut Sim, Rx, u64),
    ) {
        use fastpath::buf::PacketBuf;
        let now = self.now;
        let corrupted = f.meta.corrupted;
        let before = self.checker.total_violations();
        match pod::receive(mac, f.data()) {
            Err(rej) => {
                let ghost = mac_learned
                    && rej == pod::Reject::DstMac
                    && l4_tuple(&f).is_some_and(|(src, dst, sport, dport, proto)| {
                        self.ghost_tuples.contains(&(dst, src, dport, sport, proto))
                    });
                if corrupted || ghost {
                    *self
                        .corruption
                        .rejected_by_pods
                        .entry(rej.name())
                        .or_default() += 1;
                    self.checker.pass(Invariant::CorruptionCaught);
                } else {
                    let to = fastpath::wire::MacAddr(
                        f.data().first_chunk::<6>().copied().unwrap_or_default(),
                    );
                    self.checker.fail(Invariant::ChecksumsIntact, now, || {
                        format!(
                            "{who} rejected an uncorrupted frame (to {to}): {}",
                            rej.name()
                        )
                    });
                }
                return;
            }
            Ok(rx) => {
                if !corrupted {
                    self.checker.pass(Invariant::ChecksumsIntact);
                }
                accept(self, rx, f.meta.sent_at);
            }
        }
        if corrupted {
            self.corruption.delivered_intact += 1;
            let ok = self.checker.total_violations() == before;
            self.checker
                .check(Invariant::CorruptionCaught, ok, now, || {
                    format!("a corrupted frame passed {who}'s checks and broke an invariant")
                });
        }
    }

    /// The NodePort answer `rx` reached external client `k`.
    fn on_external_reply(&mut self, k: u32, rx: &IpRx) {
        let now = self.now;
        let cip = self.externals[k as usize].ip;
        let flow = rx
            .token
            .filter(|t| t.kind == TokenKind::Reply)
            .and_then(|t| self.flows.get(t.flow as usize))
            .cloned();
        let Some(flow) = flow.filter(|_| rx.dst == cip) else {
            self.checker.fail(Invariant::PayloadIntact, now, || {
                format!(
                    "external client {cip} got a frame for {} from {} with no answer of a flow",
                    rx.dst, rx.src
                )
            });
            return;
        };
        self.checker.pass(Invariant::PayloadIntact);
        if flow.external != Some(k) {
            self.checker.fail(Invariant::DeliveredToOwner, now, || {
                format!(
                    "answer of flow {} delivered to external client {cip}",
                    flow.id
                )
            });
            return;
        }
        self.checker.pass(Invariant::DeliveredToOwner);
        let (want_ip, want_port) = flow.expected_reply_source();
        let exact = flow.answered_by(rx);
        if !exact {
            let Target::Service { svc } = flow.target else {
                return;
            };
            let h = &self.history[svc as usize];
            let stale = h.removed_since(rx.src.to_bits(), rx.sport, flow.started);
            let ct_lost = self.nodes[flow.client_node as usize].started_at >= flow.started;
            if rx.dport == flow.sport && (stale || ct_lost) {
                self.stats.stale_replies += 1;
                return;
            }
        }
        self.checker.check(Invariant::NodePortReply, exact, now, || {
            format!(
                "answer of NodePort flow {} reached {cip} from {}:{} to port {}, want {}:{} to port {}",
                flow.id,
                rx.src,
                rx.sport,
                rx.dport,
                ip(want_ip),
                want_port,
                flow.sport
            )
        });
        if exact {
            self.flows[flow.id as usize].replies += 1;
        }
    }

    /// After ARP: ping the gateway, queue the probes, schedule the Service flows.
    fn start_traffic(&mut self, uid: u32) {
        let now = self.now;
        let (node, gw) = {
            let p = self.pod(uid);
            (p.node, p.gateway_ip())
        };
        if let Some(fid) = self.new_flow(
            uid,
            FlowKind::GatewayPing,
            ipproto::ICMP,
            Target::Gateway,
            (gw, 0),
            1,
        ) {
            self.send_request(fid, 0);
        }
        let targets: Vec<u32> = if self.probe_all {
            self.alive
                .iter()
                .copied()
                .filter(|&u| u != uid)
                .rev()
                .collect()
        } else {
            let picks = self
                .traffic_rng
                .sample(self.alive.len(), self.probe_k as usize + 1);
            picks
                .into_iter()
                .map(|k| self.alive[k])
                .filter(|&u| u != uid)
                .take(self.probe_k as usize)
                .collect()
        };
        if let Some(p) = self.pods[uid as usize].as_mut() {
            p.probe_queue = targets;
        }
        self.schedule(now + 1, Timer::Probe(uid));
        if self.nodes[node as usize].role.services
            && self.cfg.services > 0
            && now + 1 < self.cfg.duration_ms
        {
            for _ in 0..self.cfg.flows_per_pod {
                let t = self.traffic_rng.range(now + 1, self.cfg.duration_ms - 1);
                self.schedule(t, Timer::ServiceStart(uid));
            }
        }
    }

    fn next_probe(&mut self, uid: u32) {
        if self.packets_capped() {
            return;
        }
        loop {
            let Some(p) = self.pods[uid as usize].as_mut() else {
                return;
            };
            let Some(t) = p.probe_queue.pop() else {
                return;
            };
            let more = !p.probe_queue.is_empty();
            let Some(tp) = self.pods[t as usize].as_ref() else {
                continue;
            };
            let (tip, tuid) = (tp.ip, tp.uid);
            let proto = traffic::probe_protocol(self.traffic_rng.below(3));
            if let Some(fid) = self.new_flow(
                uid,
                FlowKind::Probe,
                proto,
                Target::Pod {
                    uid: tuid,
                    ip: tip.to_bits(),
                },
                (tip, traffic::probe_port(proto)),
                1,
            ) {
                self.send_request(fid, 0);
                let at = self.now + self.probe_retry();
                self.schedule(at, Timer::ProbeRetry(fid));
            }
            if more {
                self.schedule(self.now + 1, Timer::Probe(uid));
            }
            return;
        }
    }

    fn start_service_flow(&mut self, uid: u32) {
        if self.packets_capped() || self.pods[uid as usize].is_none() || self.history.is_empty() {
            return;
        }
        let svc = self.traffic_rng.index(self.history.len()) as u32;
        let h = &self.history[svc as usize];
        let (vip, port, proto) = (
            h.frontend.ip,
            h.frontend.port,
            match h.frontend.protocol {
                Protocol::Tcp => ipproto::TCP,
                Protocol::Udp => ipproto::UDP,
            },
        );
        let requests = self.cfg.requests_per_flow.max(1);
        if let Some(fid) = self.new_flow(
            uid,
            FlowKind::Service,
            proto,
            Target::Service { svc },
            (vip, port),
            requests,
        ) {
            self.stats.service_flows += 1;
            self.open_flow(fid, requests);
        }
    }

    /// A frame reaches pod `uid`: host checks, invariants, the echo server.
    fn pod_receive(&mut self, uid: u32, f: Frame) {
        self.stats.pod_frames_received += 1;
        let (mac, uid_ip) = {
            let p = self.pod(uid);
            (p.mac, p.ip)
        };
        let who = format!("pod {uid_ip} (uid {uid})");
        self.host_receive(mac, &who, false, f, |sim, rx, sent_at| match rx {
            Rx::Arp(a) => sim.on_arp(uid, a),
            Rx::Ip(r) => sim.on_ip(uid, r, sent_at),
        });
    }

    fn on_arp(&mut self, uid: u32, a: pod::ArpRx) {
        let now = self.now;
        let (pip, pmac, node, gw_ip) = {
            let p = self.pod(uid);
            (p.ip, p.mac, p.node, p.gateway_ip())
        };
        let gw_mac = topology::gateway_mac(node);
        let ok = a.op == op::REPLY
            && a.sender_mac == gw_mac
            && a.sender_ip == gw_ip
            && a.target_ip == pip
            && a.target_mac == pmac
            && a.eth_src == gw_mac;
        self.checker.check(Invariant::Gateway, ok, now, || {
            format!("pod {pip} got ARP {a:?}, want {gw_ip} is-at {gw_mac}")
        });
        if !ok {
            return;
        }
        let Some(p) = self.pods[uid as usize].as_mut() else {
            return;
        };
        if p.gw_mac.is_some() {
            return;
        }
        p.gw_mac = Some(gw_mac);
        let held = std::mem::take(&mut p.held);
        for mut b in held {
            pod::set_dst_mac(&mut b, gw_mac);
            self.pod_send(uid, b, false);
        }
        self.start_traffic(uid);
    }

    fn on_ip(&mut self, uid: u32, rx: IpRx, sent_at: u64) {
        let now = self.now;
        let (pip, pnode) = {
            let p = self.pod(uid);
            (p.ip, p.node)
        };
        // Delivered only to the owner of the destination IP.
        if rx.dst != pip {
            let deleted = self.deleted_ips.contains(&rx.dst.to_bits());
            self.checker.fail(Invariant::DeliveredToOwner, now, || {
                format!("pod {pip} (uid {uid}) got a frame for {}", rx.dst)
            });
            if deleted {
                self.checker.fail(Invariant::NothingAfterDelete, now, || {
                    format!("frame for deleted pod {} delivered to pod {pip}", rx.dst)
                });
            }
            return;
        }
        self.checker.pass(Invariant::DeliveredToOwner);
        let Some(tok) = rx.token else {
            self.checker.fail(Invariant::PayloadIntact, now, || {
                format!("pod {pip} got a frame without a token from {}", rx.src)
            });
            return;
        };
        let Some(flow) = self.flows.get(tok.flow as usize).cloned() else {
            self.checker.fail(Invariant::PayloadIntact, now, || {
                format!("pod {pip} got a token of unknown flow {}", tok.flow)
            });
            return;
        };
        self.checker.pass(Invariant::PayloadIntact);
        // The gateway answers pings in place: its echo reply still carries the request's token.
        let reply = tok.kind == TokenKind::Reply
            || (rx.proto == ipproto::ICMP && rx.icmp_type == msg_type::ECHO_REPLY);
        if reply {
            self.on_reply(uid, &rx, &flow, pnode);
        } else {
            self.on_request(uid, &rx, &flow, sent_at);
        }
    }

    /// The server side: a request reached pod `uid`.
    fn on_request(&mut self, uid: u32, rx: &IpRx, flow: &Flow, sent_at: u64) {
        let now = self.now;
        let p = self.pod(uid).clone();
        let pip = p.ip.to_bits();
        let icmp = rx.proto == ipproto::ICMP;
        match flow.target {
            Target::Pod { uid: t, ip: tip } => {
                if p.uid != t {
                    // Allowed only if the target is gone and its IP went to this pod.
                    let reused = self.pods[t as usize].is_none() && tip == pip;
                    if reused {
                        self.stats.reused_ip_deliveries += 1;
                    } else {
                        self.checker.fail(Invariant::DeliveredToOwner, now, || {
                            format!("probe for pod uid {t} delivered to pod {} uid {uid}", p.ip)
                        });
                        return;
                    }
                }
                let ok = rx.src.to_bits() == flow.client_ip
                    && rx.sport == flow.sport
                    && (icmp || rx.dport == flow.dport)
                    && rx.proto == flow.proto;
                self.checker.check(Invariant::SourceUnchanged, ok, now, || {
                    format!(
                        "probe {} from {}:{} arrived at {} as from {}:{} to port {}",
                        flow.id,
                        ip(flow.client_ip),
                        flow.sport,
                        p.ip,
                        rx.src,
                        rx.sport,
                        rx.dport
                    )
                });
                if p.uid == t {
                    self.flows[flow.id as usize].request_delivered = true;
                }
            }
            Target::Service { svc } => {
                let h = &self.history[svc as usize];
                let backend = (pip, rx.dport);
                let first = flow.backend.is_none();
                let ok = if first {
                    h.ready_during(pip, rx.dport, flow.started, now)
                } else {
                    h.member_during(pip, rx.dport, flow.started, now)
                };
                let ghost = self.ghost_tuples.contains(&(
                    flow.client_ip,
                    flow.dst_ip,
                    flow.sport,
                    flow.dport,
                    flow.proto,
                ));
                let (inv, why) = if !ok && ghost {
                    (Invariant::CorruptionCaught, GHOST)
                } else {
                    (Invariant::ServiceBackend, "")
                };
                self.checker.check(inv, ok, now, || {
                    format!(
                        "{why}flow {} to {}:{} reached {}:{}, not a {} endpoint of it since t={}",
                        flow.id,
                        h.frontend.ip,
                        h.frontend.port,
                        p.ip,
                        rx.dport,
                        if first { "ready" } else { "current" },
                        flow.started
                    )
                });
                let hairpin = flow.client == uid;
                if hairpin {
                    self.stats.hairpin_requests += 1;
                }
                // A NodePort flow to a backend on another node is SNATed to the node's VTEP
                // address (its replies must come back through it), with the client's port
                // unless another flow holds that tuple; to a backend on the node, the client
                // is kept (kube-proxy's externalTrafficPolicy Cluster, as Linux shows it).
                // Under the Local policy the backend is on the node, the client kept.
                let local_policy = flow.kind == FlowKind::NodePort && topology::external_local(svc);
                if local_policy {
                    self.checker.check(
                        Invariant::NodePortLocal,
                        p.node == flow.client_node,
                        now,
                        || {
                            format!(
                                "NodePort flow {} of Local Service {} reached node {} and went on to backend {} on node {}",
                                flow.id, svc, flow.client_node, p.ip, p.node
                            )
                        },
                    );
                }
                let snat =
                    flow.kind == FlowKind::NodePort && !local_policy && p.node != flow.client_node;
                if flow.kind == FlowKind::NodePort {
                    if snat {
                        self.stats.nodeport_requests_snat += 1;
                    } else {
                        self.stats.nodeport_requests_direct += 1;
                    }
                }
                let ok = if hairpin {
                    rx.src == topology::gateway_ip(p.node)
                } else if snat {
                    rx.src == topology::pod_cidr(flow.client_node).network()
                } else {
                    rx.src.to_bits() == flow.client_ip && rx.sport == flow.sport
                };
                self.checker.check(Invariant::ServiceClientIp, ok, now, || {
                    format!(
                        "{}flow {}: backend {} saw the client as {}:{}, want {}:{}",
                        if snat { "NodePort " } else { "" },
                        flow.id,
                        p.ip,
                        rx.src,
                        rx.sport,
                        if snat {
                            topology::pod_cidr(flow.client_node).network()
                        } else {
                            ip(flow.client_ip)
                        },
                        flow.sport
                    )
                });
                match flow.backend {
                    None => {
                        self.flows[flow.id as usize].backend = Some(backend);
                    }
                    Some(b) if b == backend => self.checker.pass(Invariant::FlowAffinity),
                    Some(_) if self.late_request(flow, backend, sent_at) => {
                        // Translated before the flow moved and overtaken on the way.
                        self.stats.late_to_previous_backend += 1;
                        self.checker.pass(Invariant::FlowAffinity);
                    }
                    Some(b) => {
                        let own_backend_went = !h.member_throughout(b.0, b.1, flow.started, now);
                        let ct_lost =
                            self.nodes[flow.client_node as usize].started_at >= flow.started;
                        if own_backend_went || ct_lost {
                            self.stats.flows_rebalanced += 1;
                            let fl = &mut self.flows[flow.id as usize];
                            fl.backend = Some(backend);
                            fl.left.push((b, now));
                            fl.rebalanced += 1;
                        } else {
                            let inv = if ghost {
                                Invariant::CorruptionCaught
                            } else {
                                Invariant::FlowAffinity
                            };
                            let why = if ghost { GHOST } else { "" };
                            self.checker.fail(inv, now, || {
                                format!(
                                    "{why}flow {} to {}:{} moved from {}:{} to {}:{} while {}:{} stayed an endpoint",
                                    flow.id,
                                    h.frontend.ip,
                                    h.frontend.port,
                                    ip(b.0),
                                    b.1,
                                    p.ip,
                                    rx.dport,
                                    ip(b.0),
                                    b.1
                                )
                            });
                        }
                    }
                }
                self.flows[flow.id as usize].request_delivered = true;
            }
            Target::Gateway => {
                self.checker.fail(Invariant::DeliveredToOwner, now, || {
                    format!("a ping for the gateway was delivered to pod {}", p.ip)
                });
                return;
            }
        }
        if let Some(ans) = p.answer(rx) {
            self.pod_send(uid, ans, false);
        }
    }

    /// True if a request of `flow` sent at `sent_at` may legitimately reach `backend` although
    /// the flow has moved on: it was sent before the flow moved away from that backend, or
    /// before that backend left the Service, or before the client node's fast path restarted
    /// (losing conntrack) — so it was translated under the old state and overtaken by later
    /// requests on the way.
    fn late_request(&self, flow: &Flow, backend: (u32, u16), sent_at: u64) -> bool {
        let Target::Service { svc } = flow.target else {
            return false;
        };
        let h = &self.history[svc as usize];
        flow.left
            .iter()
            .any(|&(old, at)| old == backend && sent_at <= at)
            || h.removed_between(backend.0, backend.1, flow.started.max(sent_at), u64::MAX)
            || (self.nodes[flow.client_node as usize].started_at >= flow.started
                && sent_at <= self.nodes[flow.client_node as usize].started_at)
    }

    /// The client side: a reply reached pod `uid`.
    fn on_reply(&mut self, uid: u32, rx: &IpRx, flow: &Flow, pnode: u32) {
        let now = self.now;
        let pip = self.pod(uid).ip;
        if flow.client != uid {
            let reused = flow.client != NO_POD
                && self.pods[flow.client as usize].is_none()
                && flow.client_ip == pip.to_bits();
            if reused {
                self.stats.reused_ip_deliveries += 1;
            } else {
                self.checker.fail(Invariant::DeliveredToOwner, now, || {
                    format!(
                        "reply of flow {} (client uid {}) delivered to pod {pip} uid {uid}",
                        flow.id, flow.client
                    )
                });
            }
            return;
        }
        let (want_ip, want_port) = flow.expected_reply_source();
        let exact = flow.answered_by(rx);
        match flow.target {
            Target::Pod { .. } => {
                self.checker
                    .check(Invariant::SourceUnchanged, exact, now, || {
                        format!(
                            "answer of probe {} reached {pip} from {}:{}, want {}:{}",
                            flow.id,
                            rx.src,
                            rx.sport,
                            ip(want_ip),
                            want_port
                        )
                    });
            }
            Target::Service { svc } => {
                if exact {
                    self.checker.pass(Invariant::ServiceReplyFromVip);
                } else {
                    let h = &self.history[svc as usize];
                    let stale = rx.dport == flow.sport
                        && h.removed_since(rx.src.to_bits(), rx.sport, flow.started);
                    let ct_lost = self.nodes[pnode as usize].started_at >= flow.started;
                    if stale || ct_lost {
                        // A backend answering after its endpoint was removed (its UDP flows are
                        // purged, so the answer is no longer translated) or after the client
                        // node's fast path lost its conntrack: the client's socket drops it.
                        self.stats.stale_replies += 1;
                        return;
                    }
                    self.checker.fail(Invariant::ServiceReplyFromVip, now, || {
                        format!(
                            "reply of flow {} to {}:{} reached {pip} from {}:{}",
                            flow.id,
                            ip(want_ip),
                            want_port,
                            rx.src,
                            rx.sport
                        )
                    });
                    return;
                }
            }
            Target::Gateway => {
                let ok = exact && rx.icmp_type == msg_type::ECHO_REPLY;
                self.checker.check(Invariant::Gateway, ok, now, || {
                    format!("gateway ping of {pip} answered by {}", rx.src)
                });
            }
        }
        self.flows[flow.id as usize].replies += 1;
    }

    fn fire(&mut self, kind: EventKind) -> Result<(), SimError> {
        match kind {
            EventKind::PodCreate => {
                let up: Vec<u32> = self
                    .nodes
                    .iter()
                    .filter(|n| {
                        n.up && n.forwarding(self.now)
                            && n.pod_count() < topology::POD_IPS_PER_NODE as usize
                    })
                    .map(|n| n.idx)
                    .collect();
                match self.event_rng.choose(&up).copied() {
                    Some(n) => {
                        self.create_pod(n)?;
                        self.events.pod_creates += 1;
                    }
                    None => self.events.skipped += 1,
                }
            }
            EventKind::PodDelete => {
                if self.alive.len() <= 2 {
                    self.events.skipped += 1;
                } else {
                    let uid = self.alive[self.event_rng.index(self.alive.len())];
                    self.delete_pod(uid)?;
                }
            }
            EventKind::EndpointChurn => self.endpoint_churn()?,
            EventKind::NodeLeave => {
                let up: Vec<u32> = self.nodes.iter().filter(|n| n.up).map(|n| n.idx).collect();
                if up.len() <= 2 {
                    self.events.skipped += 1;
                } else if let Some(&n) = self.event_rng.choose(&up) {
                    self.node_leave(n)?;
                    let back = self.now + self.event_rng.range(50, 200);
                    self.agenda_seq += 1;
                    self.agenda
                        .insert((back, self.agenda_seq), EventKind::NodeJoin(n));
                }
            }
            EventKind::NodeJoin(n) => self.node_join(n)?,
            EventKind::ControlRestart => {
                self.events.control_restarts += 1;
                for k in 0..self.nodes.len() {
                    if !self.nodes[k].up {
                        continue;
                    }
                    let role = self.nodes[k].role;
                    let t0 = Instant::now();
                    self.nodes[k]
                        .apply(vec![Update::Snapshot(self.desired.full_state(role))])
                        .map_err(|err| SimError::Update {
                            node: k as u32,
                            err,
                        })?;
                    if self.cfg.timings {
                        self.clock.resyncs.push(t0.elapsed());
                    }
                    self.check_tables(k as u32);
                }
            }
            EventKind::FastpathRestart => {
                let up: Vec<u32> = self.nodes.iter().filter(|n| n.up).map(|n| n.idx).collect();
                let Some(&n) = self.event_rng.choose(&up) else {
                    self.events.skipped += 1;
                    return Ok(());
                };
                self.events.fastpath_restarts += 1;
                let node = &mut self.nodes[n as usize];
                // Tables rebuilt from a snapshot of the old fast path's own tables; conntrack
                // starts empty.
                let snap = node.table_state().unwrap_or_default();
                node.start(self.now, snap)
                    .map_err(|err| SimError::Update { node: n, err })?;
                node.down_until = self.now + FASTPATH_DOWN_TICKS;
                self.check_tables(n);
                // And the control side resyncs it.
                let role = self.nodes[n as usize].role;
                let state = self.desired.full_state(role);
                self.nodes[n as usize]
                    .apply(vec![Update::Snapshot(state)])
                    .map_err(|err| SimError::Update { node: n, err })?;
            }
        }
        Ok(())
    }

    fn create_pod(&mut self, n: u32) -> Result<Option<u32>, SimError> {
        let Some(uid) = self.attach_pod(n) else {
            return Ok(None);
        };
        let spec = self.pod(uid).spec();
        self.change(Change::AddPod {
            node: topology::underlay_ip(n),
            pod: spec,
        })?;
        self.schedule(self.now + 1, Timer::Arp(uid));
        Ok(Some(uid))
    }

    fn delete_pod(&mut self, uid: u32) -> Result<(), SimError> {
        let Some(p) = self.pods[uid as usize].clone() else {
            return Ok(());
        };
        let pip = p.ip.to_bits();
        // Its endpoints go first (the endpoint controller reacts to the pod terminating).
        for svc in 0..self.history.len() {
            let members: Vec<(u32, u16)> = self.history[svc]
                .current()
                .filter(|m| m.0 == pip)
                .map(|m| (m.0, m.1))
                .collect();
            for (mip, mport) in members {
                self.remove_endpoint(svc, mip, mport)?;
            }
        }
        self.change(Change::RemovePod(p.ip))?;
        let node = &mut self.nodes[p.node as usize];
        node.ports[usize::from(p.port)] = None;
        node.ip_owner[p.host as usize] = None;
        let id = link_id(p.node, p.port);
        self.stats.lost_with_deleted_pods += self.tx.flush(id) + self.rx.flush(id);
        self.pods[uid as usize] = None;
        let pos = self.alive_pos[uid as usize];
        self.alive.swap_remove(pos);
        if let Some(&moved) = self.alive.get(pos) {
            self.alive_pos[moved as usize] = pos;
        }
        self.alive_pos[uid as usize] = usize::MAX;
        self.deleted_ips.insert(pip);
        self.events.pod_deletes += 1;
        Ok(())
    }

    fn remove_endpoint(&mut self, svc: usize, eip: u32, port: u16) -> Result<(), SimError> {
        let f = self.history[svc].frontend;
        self.change(Change::RemoveEndpoint(f, ip(eip), port))?;
        self.history[svc].remove(eip, port, self.now);
        self.events.endpoint_removes += 1;
        Ok(())
    }

    fn endpoint_churn(&mut self) -> Result<(), SimError> {
        if self.history.is_empty() {
            self.events.skipped += 1;
            return Ok(());
        }
        let svc = self.event_rng.index(self.history.len());
        let members: Vec<(u32, u16, bool)> = self.history[svc].current().collect();
        let cap = (self.cfg.endpoints_per_service as usize * 2).max(2);
        let action = if members.is_empty() {
            0
        } else if members.len() >= cap {
            1 + self.event_rng.below(2)
        } else {
            self.event_rng.below(3)
        };
        let h = &self.history[svc];
        let (f, tport) = (h.frontend, h.target_port);
        match action {
            0 => {
                // Add a ready endpoint: a live pod not yet in the Service.
                let draws: Vec<u32> = (0..8)
                    .filter_map(|_| self.event_rng.choose(&self.alive).copied())
                    .collect();
                let candidates: Vec<u32> = draws
                    .into_iter()
                    .filter(|&u| {
                        let pip = self.pod(u).ip.to_bits();
                        !members.iter().any(|m| m.0 == pip)
                    })
                    .collect();
                let Some(&u) = candidates.first() else {
                    self.events.skipped += 1;
                    return Ok(());
                };
                let pip = self.pod(u).ip;
                self.change(Change::SetEndpoint(
                    f,
                    EndpointSpec {
                        ip: pip,
                        port: tport,
                        state: EndpointState::Ready,
                    },
                ))?;
                self.history[svc].add(pip.to_bits(), tport, self.now);
                self.events.endpoint_adds += 1;
            }
            1 => {
                let Some(&(mip, mport, _)) = self.event_rng.choose(&members) else {
                    return Ok(());
                };
                self.remove_endpoint(svc, mip, mport)?;
            }
            _ => {
                let ready: Vec<(u32, u16, bool)> =
                    members.iter().copied().filter(|m| m.2).collect();
                let Some(&(mip, mport, _)) = self.event_rng.choose(&ready) else {
                    self.events.skipped += 1;
                    return Ok(());
                };
                self.change(Change::SetEndpoint(
                    f,
                    EndpointSpec {
                        ip: ip(mip),
                        port: mport,
                        state: EndpointState::Terminating,
                    },
                ))?;
                self.history[svc].terminate(mip, mport, self.now);
                self.events.endpoint_terminations += 1;
            }
        }
        Ok(())
    }

    fn node_leave(&mut self, n: u32) -> Result<(), SimError> {
        let uids: Vec<u32> = self.nodes[n as usize]
            .ports
            .iter()
            .flatten()
            .copied()
            .collect();
        for uid in uids {
            self.delete_pod(uid)?;
        }
        self.change(Change::RemoveNode(topology::underlay_ip(n)))?;
        let node = &mut self.nodes[n as usize];
        node.stop();
        node.up = false;
        self.events.node_leaves += 1;
        Ok(())
    }

    fn node_join(&mut self, n: u32) -> Result<(), SimError> {
        if self.nodes[n as usize].up {
            self.events.skipped += 1;
            return Ok(());
        }
        self.change(Change::AddNode(topology::remote_spec(n)))?;
        let role = self.nodes[n as usize].role;
        let state = self.desired.full_state(role);
        let node = &mut self.nodes[n as usize];
        node.up = true;
        node.joined_at = self.now;
        node.down_until = 0;
        node.reset_ipam();
        node.start(self.now, state)
            .map_err(|err| SimError::Update { node: n, err })?;
        self.check_tables(n);
        for _ in 0..self.cfg.pods_per_node {
            self.create_pod(n)?;
        }
        self.events.node_joins += 1;
        Ok(())
    }

    /// Final checks and the report.
    fn finish(mut self, run_time: Duration) -> Report {
        let now = self.now;
        // Reachability: every probe whose two ends are still alive must have gone through.
        let mut pairs = BTreeSet::new();
        let mut reached = BTreeSet::new();
        let mut excluded = 0u64;
        for f in &self.flows {
            if f.kind != FlowKind::Probe {
                continue;
            }
            let Target::Pod { uid: t, ip: tip } = f.target else {
                continue;
            };
            if self.pods[f.client as usize].is_none() || self.pods[t as usize].is_none() {
                excluded += 1;
                continue;
            }
            pairs.insert((f.client, t));
            if f.request_delivered && f.replies > 0 {
                reached.insert((f.client, t));
            } else {
                let (c, ci) = (f.client, f.client_ip);
                let (id, att) = (f.id, f.attempts);
                self.checker.fail(Invariant::PodReachability, now, || {
                    format!(
                        "pod {} (uid {c}) never got through to {} (uid {t}) in {att} attempts (probe {id})",
                        ip(ci),
                        ip(tip)
                    )
                });
            }
        }
        for _ in &reached {
            self.checker.pass(Invariant::PodReachability);
        }
        // The nodes' kernels' probes, judged where both ends are still there (a node that left
        // the cluster meanwhile, to join again, gave its probes up).
        let (mut host_probes, mut host_probes_answered) = (0, 0);
        for f in &self.flows {
            let Target::Pod { uid: t, ip: tip } = f.target else {
                continue;
            };
            let node = &self.nodes[f.client_node as usize];
            if f.kind != FlowKind::HostProbe
                || !node.up
                || node.joined_at > f.started
                || self.pods[t as usize].is_none()
            {
                continue;
            }
            host_probes += 1;
            let ok = f.request_delivered && f.replies > 0;
            host_probes_answered += u64::from(ok);
            let (n, id, att) = (f.client_node, f.id, f.attempts);
            self.checker.check(Invariant::NodeReachesPods, ok, now, || {
                format!(
                    "node {n}'s kernel never got through to {} (uid {t}) in {att} attempts (probe {id})",
                    ip(tip)
                )
            });
        }
        // Tables against the desired state, every node.
        for k in 0..self.nodes.len() {
            if self.nodes[k].up {
                self.check_tables(k as u32);
            }
        }
        let mut counters = CounterSnapshot::default();
        let mut per_node = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let c = n.counters();
            per_node.push(NodeReport {
                node: n.idx,
                full: n.role.services,
                up: n.up,
                pods: n.pod_count() as u64,
                rx_pod: c.event_count(Event::RxPod),
                rx_uplink: c.event_count(Event::RxUplink),
                to_pods: n.stats.to_pods,
                to_underlay: n.stats.to_underlay,
                to_host: n.stats.to_host,
                dropped: c.event_count(Event::Dropped),
                lost_while_down: n.stats.lost_while_down,
            });
            for (d, s) in counters.drops.iter_mut().zip(&c.drops) {
                *d += s;
            }
            for (d, s) in counters.events.iter_mut().zip(&c.events) {
                *d += s;
            }
        }
        let pipeline_packets = counters.event_count(Event::RxPod)
            + counters.event_count(Event::RxUplink)
            + counters.event_count(Event::RxHost);
        let mut faults_total = FaultStats::default();
        let (ftx, frx, fu) = (
            self.tx.stats(),
            self.rx.stats(),
            self.underlay.fault_stats(),
        );
        faults_total.add(&ftx);
        faults_total.add(&frx);
        faults_total.add(&fu);
        let mut service_flows_answered = 0;
        let mut nodeport_flows_answered = 0;
        let mut probes = 0;
        for f in &self.flows {
            match f.kind {
                FlowKind::Probe => probes += 1,
                FlowKind::Service if f.replies > 0 => service_flows_answered += 1,
                FlowKind::NodePort if f.replies > 0 => nodeport_flows_answered += 1,
                _ => {}
            }
        }
        let endpoints_now: usize = self.history.iter().map(|h| h.current().count()).sum();
        let timings = self.cfg.timings.then(|| {
            let run_s = run_time.as_secs_f64();
            Timings {
                setup_s: self.clock.setup.as_secs_f64(),
                run_s,
                sync_full_node: measure::summarize(&self.clock.sync_full),
                sync_light_node: measure::summarize(&self.clock.sync_light),
                incremental_updates: measure::summarize(&self.clock.updates),
                control_resyncs: measure::summarize(&self.clock.resyncs),
                pipeline_packets_per_s: if run_s > 0.0 {
                    (pipeline_packets as f64 / run_s).round()
                } else {
                    0.0
                },
                pod_frames_per_s: if run_s > 0.0 {
                    (self.stats.pod_frames_sent as f64 / run_s).round()
                } else {
                    0.0
                },
                peak_rss_bytes: measure::peak_rss_bytes(),
                measured_node: self.clock.measured.clone(),
            }
        });
        let results = self.checker.results();
        Report {
            config: crate::report::ConfigReport::from(&self.cfg),
            topology: TopologyReport {
                nodes: self.cfg.nodes,
                full_nodes: self.full.clone(),
                nodes_up_at_end: self.nodes.iter().filter(|n| n.up).count() as u32,
                pods_at_start: self.pods_initial as u64,
                pods_at_end: self.alive.len() as u64,
                pods_created_total: self.pods.len() as u64,
                services: self.cfg.services,
                endpoints_at_start: u64::from(self.cfg.services)
                    * u64::from(self.cfg.endpoints_per_service),
                endpoints_at_end: endpoints_now as u64,
                probe_mode: if self.probe_all {
                    "every pod probes every other pod".into()
                } else {
                    format!("every pod probes {} random pods", self.probe_k)
                },
            },
            simulated_ms: now,
            passed: results.iter().all(|r| r.ok),
            invariants: results,
            traffic: TrafficReport {
                pod_frames_sent: self.stats.pod_frames_sent,
                pod_frames_received: self.stats.pod_frames_received,
                pipeline_packets,
                probes,
                pod_pairs_tested: pairs.len() as u64,
                pod_pairs_reached: reached.len() as u64,
                probes_excluded_pod_gone: excluded,
                service_flows: self.stats.service_flows,
                service_flows_answered,
                nodeport_flows: self.stats.nodeport_flows,
                nodeport_flows_answered,
                host_probes,
                host_probes_answered,
                underlay: self.underlay.stats,
            },
            run: self.stats,
            events: self.events,
            faults: crate::report::FaultReport {
                plan: self.cfg.faults,
                pod_tx: ftx,
                pod_rx: frx,
                underlay: fu,
                total: faults_total,
            },
            corruption: CorruptionReport {
                corrupted: faults_total.corrupted,
                dropped_by_fastpath: self
                    .corruption
                    .dropped_by_fastpath
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), *v))
                    .collect(),
                rejected_by_pods: self
                    .corruption
                    .rejected_by_pods
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), *v))
                    .collect(),
                to_host: self.corruption.to_host,
                delivered_intact: self.corruption.delivered_intact,
            },
            counters: counters.nonzero().into_iter().collect(),
            nodes: per_node,
            timings,
        }
    }
}

/// Prefix of a violation caused by a conntrack entry that a corrupted frame created.
const GHOST: &str = "a corrupted frame with this flow's tuple created a conntrack entry before the flow existed (the fast path NATs before any L4 checksum is checked); ";

/// The 5-tuple of an untagged IPv4 TCP/UDP frame to the Service CIDR, as a pod sent it.
fn service_tuple(f: &Frame) -> Option<(u32, u32, u16, u16, u8)> {
    l4_tuple(f).filter(|t| topology::service_cidr().contains_u32(t.1))
}

/// The 5-tuple (src, dst, sport, dport, proto) of an untagged IPv4 TCP/UDP frame without
/// options.
fn l4_tuple(f: &Frame) -> Option<(u32, u32, u16, u16, u8)> {
    use fastpath::buf::PacketBuf;
    let d = f.data();
    if f.ethertype() != fastpath::wire::ethertype::IPV4 || d.len() < 38 || d[14] != 0x45 {
        return None;
    }
    let proto = d[23];
    if !matches!(proto, ipproto::TCP | ipproto::UDP) {
        return None;
    }
    let src = u32::from_be_bytes([d[26], d[27], d[28], d[29]]);
    let dst = u32::from_be_bytes([d[30], d[31], d[32], d[33]]);
    let sport = u16::from_be_bytes([d[34], d[35]]);
    let dport = u16::from_be_bytes([d[36], d[37]]);
    Some((src, dst, sport, dport, proto))
}

/// True if `t` is addressed to a node's NodePort.
fn to_nodeport(t: &(u32, u32, u16, u16, u8)) -> bool {
    topology::node_of_underlay(t.1).is_some()
        && (topology::NODEPORT_MIN..=topology::NODEPORT_MAX).contains(&t.3)
}

fn validate(cfg: &SimConfig) -> Result<(), SimError> {
    let bad = |s: String| Err(SimError::Config(s));
    if cfg.nodes < 2 || cfg.nodes > topology::MAX_NODES {
        return bad(format!("nodes must be 2..={}", topology::MAX_NODES));
    }
    if cfg.pods_per_node < 1 || cfg.pods_per_node > topology::POD_IPS_PER_NODE - 3 {
        return bad(format!(
            "pods-per-node must be 1..={} (a /24 per node, room left for churn)",
            topology::POD_IPS_PER_NODE - 3
        ));
    }
    if cfg.services > topology::MAX_SERVICES {
        return bad(format!("services must be ≤ {}", topology::MAX_SERVICES));
    }
    let pods = u64::from(cfg.nodes) * u64::from(cfg.pods_per_node);
    if u64::from(cfg.endpoints_per_service) > pods {
        return bad("endpoints-per-service exceeds the number of pods".into());
    }
    if cfg.endpoints_per_service > 1000 {
        return bad("endpoints-per-service must be ≤ 1000".into());
    }
    if cfg.external_clients > topology::MAX_EXTERNAL {
        return bad(format!(
            "external-clients must be ≤ {}",
            topology::MAX_EXTERNAL
        ));
    }
    if cfg.duration_ms < 10 {
        return bad("duration must be at least 10 ms".into());
    }
    Ok(())
}
