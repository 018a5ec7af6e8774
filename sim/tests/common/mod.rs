//! Helpers shared by the simulator's tests.
#![allow(dead_code)]

use sim::faults::FaultPlan;
use sim::scenario::ChurnSpec;
use sim::{Report, Sim, SimConfig};

/// The small CI cluster: 3 nodes × 4 pods, 4 Services × 2 endpoints, 600 ms of traffic.
pub fn small(seed: u64) -> SimConfig {
    SimConfig {
        nodes: 3,
        pods_per_node: 4,
        services: 4,
        endpoints_per_service: 2,
        seed,
        duration_ms: 600,
        flows_per_pod: 4,
        requests_per_flow: 5,
        ..SimConfig::default()
    }
}

/// `small` with faults and churn.
pub fn with(seed: u64, faults: &str, churn: &str) -> SimConfig {
    SimConfig {
        faults: FaultPlan::parse(faults).unwrap(),
        churn: ChurnSpec::parse(churn).unwrap(),
        ..small(seed)
    }
}

/// 4 nodes × 5 pods, 6 Services × 3 endpoints, 800 ms, with every fault and every kind of event.
pub fn every_fault(seed: u64) -> SimConfig {
    SimConfig {
        nodes: 4,
        pods_per_node: 5,
        services: 6,
        endpoints_per_service: 3,
        duration_ms: 800,
        ..with(
            seed,
            "loss=0.02,dup=0.03,reorder=4,corrupt=0.02,delay=2",
            "pods=6,endpoints=30,nodes=1,control-restart=2,fastpath-restart=2",
        )
    }
}

/// Runs a configuration.
pub fn run(cfg: SimConfig) -> Report {
    Sim::new(cfg).unwrap().run().unwrap()
}

/// Asserts that no invariant was violated, with the text report on failure.
pub fn assert_passed(r: &Report) {
    assert!(r.passed, "invariants violated:\n{}", r.text());
    assert!(!r.run.hit_drain_limit, "{}", r.text());
}

/// Checks and violations of one invariant.
pub fn inv(r: &Report, name: &str) -> (u64, u64) {
    let i = r
        .invariant(name)
        .unwrap_or_else(|| panic!("no invariant {name}"));
    (i.checks, i.violations)
}
