//! The same seed gives the same report, byte for byte; another seed gives another.

mod common;

use common::*;

fn busy(seed: u64) -> sim::SimConfig {
    let mut cfg = with(
        seed,
        "loss=0.02,dup=0.02,reorder=3,corrupt=0.02,delay=1",
        "pods=4,endpoints=20,nodes=1,control-restart=1,fastpath-restart=1",
    );
    cfg.nodes = 4;
    cfg.duration_ms = 500;
    cfg
}

#[test]
fn same_seed_same_bytes() {
    let a = run(busy(21));
    let b = run(busy(21));
    assert_passed(&a);
    assert_eq!(a.deterministic_json(), b.deterministic_json());
    assert_eq!(
        a.to_json(),
        b.to_json(),
        "no timings asked for: the whole report"
    );
    assert_eq!(a.text(), b.text());
    assert_eq!(a.svg(), b.svg());
    let c = run(busy(22));
    assert_ne!(a.deterministic_json(), c.deterministic_json());
}

#[test]
fn timings_stay_out_of_the_deterministic_part() {
    let mut cfg = busy(23);
    cfg.timings = true;
    cfg.timing_updates = 50;
    let a = run(cfg.clone());
    let b = run(cfg);
    assert!(a.timings.is_some());
    assert!(a.to_json().contains("\"timings\""));
    assert!(!a.deterministic_json().contains("\"timings\""));
    assert_eq!(a.deterministic_json(), b.deterministic_json());
    assert_eq!(a.deterministic_json(), run(busy(23)).deterministic_json());
}

#[test]
fn the_binary_writes_identical_reports() {
    let exe = env!("CARGO_BIN_EXE_podlane-sim");
    let base = std::env::temp_dir().join(format!("podlane-sim-test-{}", std::process::id()));
    let mut outs = Vec::new();
    for k in 0..2 {
        let dir = base.join(k.to_string());
        let st = std::process::Command::new(exe)
            .args([
                "--seed",
                "5",
                "--duration-ms",
                "300",
                "--faults",
                "loss=0.01,corrupt=0.01",
                "--churn",
                "pods=2,endpoints=5",
                "--no-timings",
                "--quiet",
                "--out",
            ])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "exit status {st}");
        let json = std::fs::read(dir.join("report.json")).unwrap();
        let svg = std::fs::read_to_string(dir.join("report.svg")).unwrap();
        let txt = std::fs::read_to_string(dir.join("report.txt")).unwrap();
        assert!(svg.starts_with("<svg") && txt.contains("RESULT: PASS"));
        outs.push((json, svg, txt));
    }
    assert_eq!(outs[0], outs[1]);
    let bad = std::process::Command::new(exe)
        .args(["--faults", "loss=7", "--out"])
        .arg(base.join("bad"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&base);
}
