//! `podlane-sim`: runs a simulated cluster and writes `report.txt`, `report.json` and
//! `report.svg` into `--out`. Exits 1 when an invariant was violated, 2 on a usage or setup
//! error.
//!
//! ```sh
//! podlane-sim --nodes 3 --pods-per-node 4 --faults loss=0.01,corrupt=0.001 --churn pods=4,endpoints=10
//! podlane-sim --nodes 1000 --pods-per-node 100 --services 10000 --endpoints-per-service 10 --seed 7
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use sim::faults::FaultPlan;
use sim::scenario::ChurnSpec;
use sim::{Sim, SimConfig};

/// Simulate a podlane cluster: real fast-path pipelines, an in-memory underlay, faults, churn,
/// invariants.
#[derive(Debug, Parser)]
#[command(name = "podlane-sim", version)]
struct Args {
    /// Nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Pods per node at the start (at most 250).
    #[arg(long, default_value_t = 4)]
    pods_per_node: u32,
    /// Services (even ones TCP 80 → 8080, odd ones UDP 53 → 5353).
    #[arg(long, default_value_t = 4)]
    services: u32,
    /// Endpoints per Service at the start.
    #[arg(long, default_value_t = 2)]
    endpoints_per_service: u32,
    /// Seed: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated milliseconds during which flows start and events fire (the run then drains).
    #[arg(long, default_value_t = 1000)]
    duration_ms: u64,
    /// Stop starting probes and flows after pods have sent this many frames.
    #[arg(long)]
    packets: Option<u64>,
    /// Faults: `[scope:]name=value,...` with names loss, dup, corrupt (probabilities), delay,
    /// reorder (ticks) and scopes all (default), underlay, pods, pod-tx, pod-rx.
    #[arg(long, default_value = "")]
    faults: String,
    /// Events over the run: pods=N,endpoints=N,nodes=N,control-restart=N,fastpath-restart=N.
    #[arg(long, default_value = "")]
    churn: String,
    /// Nodes that carry the Service table (default: all up to 32 nodes, else 20 chosen by seed).
    #[arg(long)]
    full_nodes: Option<u32>,
    /// Pods each pod probes (default: all others up to 64 pods, else 8 random).
    #[arg(long)]
    probes_per_pod: Option<u32>,
    /// Service flows each pod on a node with Services opens.
    #[arg(long, default_value_t = 4)]
    flows_per_pod: u32,
    /// Requests per Service flow.
    #[arg(long, default_value_t = 4)]
    requests_per_flow: u32,
    /// Leave out the wall-clock timings (the whole report is then deterministic).
    #[arg(long)]
    no_timings: bool,
    /// Single endpoint updates timed on the measured node.
    #[arg(long, default_value_t = 1000)]
    timing_updates: u32,
    /// Workers per node: each has its own conntrack, pod ports are spread over them, uplink
    /// frames go by an RSS-like hash, and NAT flows are handed to their owner as in the daemon.
    #[arg(long, default_value_t = 1)]
    workers: u16,
    /// Other nodes' pods each node's kernel probes from its VTEP address, through its host path.
    #[arg(long, default_value_t = 2)]
    host_probes: u32,
    /// External clients on the underlay, reaching NodePorts (every Service has one while the
    /// range 30000–32767 lasts) on the nodes with Services.
    #[arg(long, default_value_t = 2)]
    external_clients: u32,
    /// NodePort flows each external client opens.
    #[arg(long, default_value_t = 8)]
    nodeport_flows: u32,
    /// Directory for report.txt, report.json and report.svg.
    #[arg(long, default_value = "sim-report")]
    out: PathBuf,
    /// Print nothing but the verdict line.
    #[arg(long, short)]
    quiet: bool,
}

fn run(a: Args) -> Result<bool, Box<dyn std::error::Error>> {
    let cfg = SimConfig {
        nodes: a.nodes,
        pods_per_node: a.pods_per_node,
        services: a.services,
        endpoints_per_service: a.endpoints_per_service,
        seed: a.seed,
        duration_ms: a.duration_ms,
        max_packets: a.packets,
        faults: FaultPlan::parse(&a.faults)?,
        churn: ChurnSpec::parse(&a.churn)?,
        full_nodes: a.full_nodes,
        probes_per_pod: a.probes_per_pod,
        flows_per_pod: a.flows_per_pod,
        requests_per_flow: a.requests_per_flow,
        timings: !a.no_timings,
        timing_updates: a.timing_updates,
        workers: a.workers,
        host_probes: a.host_probes,
        external_clients: a.external_clients,
        nodeport_flows: a.nodeport_flows,
    };
    let report = Sim::new(cfg)?.run()?;
    std::fs::create_dir_all(&a.out)?;
    let text = report.text();
    std::fs::write(a.out.join("report.txt"), &text)?;
    std::fs::write(a.out.join("report.json"), report.to_json() + "\n")?;
    std::fs::write(a.out.join("report.svg"), report.svg())?;
    if a.quiet {
        println!(
            "{} ({} violations)",
            if report.passed { "PASS" } else { "FAIL" },
            report.violations()
        );
    } else {
        print!("{text}");
        println!("\nwrote {}/report.{{txt,json,svg}}", a.out.display());
    }
    Ok(report.passed)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("podlane-sim: {e}");
            ExitCode::from(2)
        }
    }
}
