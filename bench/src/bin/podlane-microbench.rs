//! `podlane-microbench`: cycles and nanoseconds per packet of each pipeline path, no I/O.
#![forbid(unsafe_code)]

use clap::Parser;
use podlane_bench::micro::{run, Case};

/// Measures the fast-path pipeline's cost per packet (64-byte frames, bursts of 32, warm
/// tables) for local forward, VXLAN encap, decap, DNAT on established flows and DNAT on new
/// flows, against the brief's targets.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Bursts of 32 per repetition.
    #[arg(long, default_value_t = 200_000)]
    bursts: u64,
    /// Repetitions per case; the median is reported.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Flow counts to measure (comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 1024])]
    flows: Vec<usize>,
    /// Only these cases (comma separated names); all by default.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    let mut results = Vec::new();
    for case in Case::ALL {
        if !args.cases.is_empty() && !args.cases.iter().any(|c| c == case.name()) {
            continue;
        }
        let flows: &[usize] = if case == Case::DnatNewFlow {
            &[0]
        } else {
            &args.flows
        };
        for &f in flows {
            results.push(run(case, f, args.bursts, args.reps));
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
        return;
    }
    println!(
        "{:<18} {:>7} {:>12} {:>10} {:>8} {:>8}",
        "case", "flows", "cycles/pkt", "ns/pkt", "target", "met"
    );
    for r in &results {
        println!(
            "{:<18} {:>7} {:>12.1} {:>10.2} {:>8.0} {:>8}",
            r.case.name(),
            r.flows,
            r.cycles_per_packet,
            r.ns_per_packet,
            r.target_cycles,
            if r.cycles_per_packet <= r.target_cycles {
                "yes"
            } else {
                "no"
            }
        );
    }
}
