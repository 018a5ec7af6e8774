//! The comparison harness in CI's short mode: `bench/compare.sh --short` runs dpdk-testpmd,
//! podlane-fastpath and OVS-DPDK for a second each on the encap, decap and ClusterIP DNAT
//! profiles (1,024 flows), checks podlane's output for every profile byte-wise, and measures
//! latency over net_memif briefly. Asserted here: every system produced a figure, podlane's
//! output was correct, and both latency runs received their packets — not any speed (the CI
//! machine is shared).
//!
//! Needs root (OVS runs in a private network namespace), dpdk-testpmd and
//! openvswitch-switch-dpdk (deploy/setup-host.sh installs both; the harness installs OVS when
//! it is missing). Uses the binaries cargo built for this test run: podlane-bench, and
//! podlane-fastpath from the same target directory (`cargo test --workspace` builds it).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[test]
fn compare_short_mode_produces_every_figure_and_correct_output() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_podlane-bench"));
    let bin_dir = bench.parent().unwrap().to_path_buf();
    let fp = bin_dir.join("podlane-fastpath");
    assert!(
        fp.exists(),
        "{} missing: run `cargo build --release -p podlane-daemon` (or `cargo test --workspace`)",
        fp.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compare-short");
    let _ = std::fs::remove_dir_all(&out);
    let t0 = std::time::Instant::now();
    let st = Command::new(root.join("bench/compare.sh"))
        .arg("--short")
        .arg("--out")
        .arg(&out)
        .env("PODLANE_BIN_DIR", &bin_dir)
        .status()
        .expect("run bench/compare.sh");
    assert!(st.success(), "bench/compare.sh --short failed: {st}");
    eprintln!(
        "compare.sh --short took {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    let svg = std::fs::read_to_string(out.join("compare.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline"),
        "SVG has bars and curves"
    );

    // Every system, every profile: a figure.
    let rows = v["throughput"].as_array().unwrap();
    for profile in ["encap", "decap", "clusterip"] {
        for system in ["testpmd", "podlane", "ovs"] {
            let r = rows
                .iter()
                .find(|r| r["profile"] == profile && r["system"] == system)
                .unwrap_or_else(|| panic!("no figure for {system} {profile}"));
            let mpps = r["mpps"].as_f64().unwrap();
            assert!(mpps > 0.0, "{system} {profile}: {mpps} Mpps");
        }
    }
    for r in v["ratios"].as_array().unwrap() {
        assert!(r["podlane_over_testpmd"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["podlane_over_ovs"].as_f64().unwrap() > 0.0, "{r}");
    }

    // podlane's output, byte for byte, for every profile.
    let checks = v["checks"].as_array().unwrap();
    for profile in [
        "local",
        "encap",
        "decap",
        "clusterip",
        "clusterip-new",
        "nodeport",
        "mix",
    ] {
        let c = checks
            .iter()
            .find(|c| c["profile"] == profile)
            .unwrap_or_else(|| panic!("no output check for {profile}"));
        assert_eq!(c["ok"], true, "{c}");
        assert!(c["checked"].as_u64().unwrap() >= 64, "{c}");
    }

    // Latency over net_memif: both devices under test answered.
    let lat = v["latency"].as_array().unwrap();
    for label in ["podlane", "testpmd"] {
        let r = lat
            .iter()
            .find(|r| r["label"] == label)
            .unwrap_or_else(|| panic!("no latency figure for {label}"));
        assert!(r["p50_us"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["loss_ratio"].as_f64().unwrap() < 1.0, "{r}");
    }
}
