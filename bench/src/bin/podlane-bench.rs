//! `podlane-bench`: a pktgen-style DPDK traffic generator and sink, latency meter and zero-loss
//! search, plus the helpers of the comparison harness (`bench/compare.sh`).
//!
//! ```text
//! podlane-bench pcap    --profile encap --flows 1024 --pcap in.pcap --state state.json
//! podlane-bench run     --profile encap --pod-a DEVARGS --uplink DEVARGS --search --loads 10,50,90
//! podlane-bench verify  --profile encap --flows 1024 --side uplink --pcap out.pcap
//! podlane-bench report  --dir target/bench/compare
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dpdk::eal::Memory;
use dpdk::{Eal, EalConfig, PktPool};
use podlane_bench::gen::profile::{self, Profile, Side};
use podlane_bench::gen::report;
use podlane_bench::gen::run::{Generator, Ports};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "podlane's DPDK traffic generator, latency meter and comparison report"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Args)]
struct Traffic {
    /// The traffic profile.
    #[arg(long, value_enum)]
    profile: Profile,
    /// Distinct flows (inner source ports). clusterip-new always uses 64,512.
    #[arg(long, default_value_t = 1024)]
    flows: usize,
    /// Frame size on the pod side, bytes on the wire with FCS (VXLAN adds 50).
    #[arg(long, default_value_t = 64)]
    size: usize,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Writes a profile's frames to a pcap (the input of net_pcap runs) and node A's state
    /// for the fast path.
    Pcap {
        #[command(flatten)]
        t: Traffic,
        /// Output pcap.
        #[arg(long)]
        pcap: PathBuf,
        /// Output state file (JSON FullState for node A).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Print the profile's ingress and egress sides and conntrack size as JSON.
        #[arg(long)]
        describe: bool,
    },
    /// Generates traffic on DPDK ports and measures it: the zero-loss rate (binary search),
    /// then latency at fixed loads.
    Run(Box<RunArgs>),
    /// Checks podlane's output (a tx_pcap) byte-wise against the profile's expected frames.
    Verify {
        #[command(flatten)]
        t: Traffic,
        /// Which port's output this is.
        #[arg(long, value_enum)]
        side: SideArg,
        /// The output pcap.
        #[arg(long)]
        pcap: PathBuf,
        /// At least this many frames must be there and correct.
        #[arg(long, default_value_t = 1)]
        min: usize,
        /// Write the result as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Builds the comparison report (table, compare.json, SVG) from a results directory.
    Report {
        /// The directory the harness wrote.
        #[arg(long)]
        dir: PathBuf,
        /// Output JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Output SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SideArg {
    PodA,
    PodB,
    Uplink,
}

impl From<SideArg> for Side {
    fn from(s: SideArg) -> Side {
        match s {
            SideArg::PodA => Side::PodA,
            SideArg::PodB => Side::PodB,
            SideArg::Uplink => Side::Uplink,
        }
    }
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    t: Traffic,
    /// Devargs of the device facing pod A's port (e.g. a net_memif server, or a PCI address).
    #[arg(long)]
    pod_a: Option<String>,
    /// Devargs of the device facing pod B's port.
    #[arg(long)]
    pod_b: Option<String>,
    /// Devargs of the device facing the uplink.
    #[arg(long)]
    uplink: Option<String>,
    /// EAL lcores (the generator runs on the first).
    #[arg(long, default_value = "0")]
    lcores: String,
    /// EAL file prefix (private per process).
    #[arg(long, default_value = "podlane-bench")]
    file_prefix: String,
    /// Use hugepages, with `--in-memory` (no hugetlbfs mount or runtime files needed; default:
    /// --no-huge with 1 GiB).
    #[arg(long)]
    hugepages: bool,
    /// Scan the PCI bus (real NICs).
    #[arg(long)]
    pci: bool,
    /// Label of the device under test in the output (podlane, testpmd, ...).
    #[arg(long, default_value = "podlane")]
    label: String,
    /// Run the zero-loss search first.
    #[arg(long)]
    search: bool,
    /// Seconds per search trial.
    #[arg(long, default_value_t = 2.0)]
    trial_secs: f64,
    /// Loss tolerated by the search (fraction of packets; RFC 2544 says 0, a shared machine
    /// needs a little).
    #[arg(long, default_value_t = 1e-4)]
    loss_tolerance: f64,
    /// Search resolution (relative).
    #[arg(long, default_value_t = 0.03)]
    resolution: f64,
    /// At most this many search trials.
    #[arg(long, default_value_t = 12)]
    max_trials: usize,
    /// Loads to measure latency at, % of the reference rate (the zero-loss rate found, or
    /// --rate-mpps, or the zero-loss rate in --rates-from).
    #[arg(long, value_delimiter = ',', default_values_t = [10.0, 50.0, 90.0])]
    loads: Vec<f64>,
    /// The reference rate (Mpps) when not searching.
    #[arg(long)]
    rate_mpps: Option<f64>,
    /// Take the reference rate from another run's JSON (so two devices are measured at the
    /// same absolute rates).
    #[arg(long)]
    rates_from: Option<PathBuf>,
    /// Seconds per latency measurement.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Packets per transmit burst at most.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Seconds to wait for the device under test to answer.
    #[arg(long, default_value_t = 30.0)]
    ready_timeout: f64,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Pcap {
            t,
            pcap,
            state,
            describe,
        } => cmd_pcap(&t, &pcap, state.as_deref(), describe),
        Cmd::Run(a) => cmd_run(&a),
        Cmd::Verify {
            t,
            side,
            pcap,
            min,
            json,
        } => cmd_verify(&t, side.into(), &pcap, min, json.as_deref()),
        Cmd::Report { dir, json, svg } => cmd_report(&dir, json.as_deref(), svg.as_deref()),
    };
    if let Err(e) = r {
        eprintln!("podlane-bench: {e}");
        std::process::exit(1);
    }
}

fn cmd_pcap(
    t: &Traffic,
    pcap: &std::path::Path,
    state: Option<&std::path::Path>,
    describe: bool,
) -> Result<(), String> {
    let ts = profile::templates(t.profile, t.flows, t.size);
    let recs: Vec<(u64, &[u8])> = ts.iter().map(|t| (0, t.frame.as_slice())).collect();
    fastpath::pcap::write_file(pcap, &recs).map_err(|e| format!("{}: {e}", pcap.display()))?;
    if let Some(s) = state {
        let st = profile::node_a_bench_state();
        std::fs::write(
            s,
            serde_json::to_string_pretty(&st).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", s.display()))?;
    }
    if describe {
        let mut egress: Vec<Side> = ts.iter().map(|t| t.egress).collect();
        egress.sort_by_key(|s| *s as u8);
        egress.dedup();
        println!(
            "{}",
            json!({
                "profile": t.profile.name(),
                "flows": ts.len(),
                "ingress": t.profile.ingress(),
                "egress": egress,
                "conntrack_entries": t.profile.conntrack_entries(),
            })
        );
    }
    Ok(())
}

fn cmd_verify(
    t: &Traffic,
    side: Side,
    pcap: &std::path::Path,
    min: usize,
    json_out: Option<&std::path::Path>,
) -> Result<(), String> {
    let recs = fastpath::pcap::read_file(pcap).map_err(|e| format!("{}: {e}", pcap.display()))?;
    let mut checked = 0usize;
    let mut err = None;
    for (i, r) in recs.iter().enumerate() {
        if let Err(e) = profile::check_output(t.profile, t.flows, t.size, side, &r.data) {
            err = Some(format!("frame {i}: {e}"));
            break;
        }
        checked += 1;
    }
    if err.is_none() && checked < min {
        err = Some(format!("{checked} frames, at least {min} expected"));
    }
    let v = json!({
        "profile": t.profile.name(),
        "side": side,
        "pcap": pcap.display().to_string(),
        "checked": checked,
        "ok": err.is_none(),
        "error": err,
    });
    if let Some(p) = json_out {
        std::fs::write(p, v.to_string()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    match err {
        None => {
            println!(
                "{}: {checked} frames on {side:?}, all as expected",
                t.profile.name()
            );
            Ok(())
        }
        Some(e) => Err(format!("{}: {e}", t.profile.name())),
    }
}

fn cmd_report(
    dir: &std::path::Path,
    json_out: Option<&std::path::Path>,
    svg_out: Option<&std::path::Path>,
) -> Result<(), String> {
    let inp = report::read_dir(dir)?;
    let (v, table) = report::build(&inp);
    print!("{table}");
    if let Some(p) = json_out {
        std::fs::write(
            p,
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = svg_out {
        let title = format!(
            "podlane vs dpdk-testpmd vs OVS-DPDK — {}",
            inp.meta
                .get("date")
                .and_then(|d| d.as_str())
                .unwrap_or("this machine")
        );
        std::fs::write(p, report::svg(&inp, &title))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn cmd_run(a: &RunArgs) -> Result<(), String> {
    let ts = profile::templates(a.t.profile, a.t.flows, a.t.size);
    let reference = match (&a.rates_from, a.rate_mpps) {
        (Some(p), _) => {
            let v: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
            )
            .map_err(|e| format!("{}: {e}", p.display()))?;
            Some(
                v["zero_loss_pps"]
                    .as_f64()
                    .ok_or_else(|| format!("{}: no zero_loss_pps", p.display()))?,
            )
        }
        (None, Some(r)) => Some(r * 1e6),
        (None, None) => None,
    };
    if reference.is_none() && !a.search {
        return Err("give --search, --rate-mpps or --rates-from".into());
    }
    let cfg = EalConfig {
        program: "podlane-bench".into(),
        lcores: a.lcores.clone(),
        memory: if a.hugepages {
            Memory::InMemory
        } else {
            Memory::NoHuge { mb: 1024 }
        },
        file_prefix: a.file_prefix.clone(),
        vdevs: Vec::new(),
        no_pci: !a.pci,
        log_level: Some("lib.eal:error".into()),
        extra: vec!["--no-telemetry".into()],
    };
    let eal = Eal::init(&cfg).map_err(|e| e.to_string())?;
    let r = run_with_eal(a, &eal, &ts, reference);
    eal.cleanup();
    r
}

fn run_with_eal(
    a: &RunArgs,
    eal: &Eal,
    ts: &[profile::Template],
    reference: Option<f64>,
) -> Result<(), String> {
    let pool = Arc::new(PktPool::new("bench", 16383, 256).map_err(|e| e.to_string())?);
    let ports = Ports::open(
        eal,
        &pool,
        a.pod_a.as_deref(),
        a.pod_b.as_deref(),
        a.uplink.as_deref(),
    )?;
    let result = (|| {
        let g = Generator {
            ports: &ports,
            pool: &pool,
            templates: ts,
            burst: a.burst,
        };
        eprintln!("podlane-bench: waiting for {} to answer", a.label);
        if !g.wait_ready(Duration::from_secs_f64(a.ready_timeout))? {
            return Err(format!(
                "{} did not send anything back within {} s",
                a.label, a.ready_timeout
            ));
        }
        // Warm up: tables, caches, conntrack.
        let _ = g.trial(Some(100_000.0), 0.5, Duration::from_millis(100))?;
        let (zero_loss, search) = if a.search {
            let (r, trials) =
                g.zero_loss_search(a.trial_secs, a.loss_tolerance, a.resolution, a.max_trials)?;
            for t in &trials {
                eprintln!(
                    "  trial {:>8} Mpps asked, {:.3} offered{}: tx {:.3} Mpps, loss {:.2e}",
                    t.offered_pps
                        .map_or("max".into(), |r| format!("{:.3}", r / 1e6)),
                    t.offered_mpps,
                    if t.valid {
                        ""
                    } else {
                        " (generator short: invalid)"
                    },
                    t.tx_mpps,
                    t.loss_ratio
                );
            }
            eprintln!(
                "podlane-bench: {} zero-loss rate {:.3} Mpps",
                a.label,
                r / 1e6
            );
            (Some(r), trials)
        } else {
            (None, Vec::new())
        };
        let reference = reference.or(zero_loss).unwrap_or(0.0);
        let mut loads = Vec::new();
        for &pct in &a.loads {
            let rate = reference * pct / 100.0;
            let t = g.trial(Some(rate), a.duration, Duration::from_millis(300))?;
            let l = &t.latency_ns;
            eprintln!(
                "  {} {:>5.1}% ({:.3} Mpps, offered {:.3}): p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} µs, loss {:.2e}, reordered {}, dup {}",
                a.label,
                pct,
                rate / 1e6,
                t.offered_mpps,
                l.p50 as f64 / 1e3,
                l.p90 as f64 / 1e3,
                l.p99 as f64 / 1e3,
                l.p999 as f64 / 1e3,
                l.max as f64 / 1e3,
                t.loss_ratio,
                t.reordered,
                t.duplicates
            );
            loads.push(json!({ "load_pct": pct, "rate_pps": rate, "trial": t }));
        }
        Ok(json!({
            "kind": "latency",
            "label": a.label,
            "profile": a.t.profile.name(),
            "flows": ts.len(),
            "size": a.t.size,
            "zero_loss_pps": zero_loss.or(Some(reference)),
            "loss_tolerance": a.loss_tolerance,
            "trial_secs": a.trial_secs,
            "search": search,
            "loads": loads,
            "tsc_hz": dpdk::eal::tsc_hz(),
        }))
    })();
    drop(ports);
    drop(pool);
    let v = result?;
    if let Some(p) = &a.json {
        std::fs::write(
            p,
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
