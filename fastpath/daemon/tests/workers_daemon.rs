//! `podlane-fastpath` with two worker lcores (mapped onto the machine's CPUs with `--lcores`
//! syntax): the uplink gets one receive queue per worker, every port one transmit queue per
//! worker; each worker forwards what its queue receives and sends on its own transmit queue.
//! And a device that cannot give every worker a queue is refused with one clear line.

mod common;

use std::process::Command;

use fastpath::fixtures::*;
use fastpath::tables::NodeConfig;
use fastpath::wire::frame::{self, Addrs};

fn run(cfg: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_podlane-fastpath"))
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn two_workers_each_serve_their_uplink_queue() {
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("podlane-2w-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (NodeConfig::example_node_a(), NodeConfig::example_node_b());
    let outer = Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip);
    let to_a = |n: u16| {
        let inner = frame::udp_frame(
            &Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, POD_A_IP),
            7000 + n,
            8000,
            b"to pod a",
        );
        frame::vxlan_frame(&outer, 50000 + n, 1, &inner, false)
    };
    // 5 frames on queue 0, 9 on queue 1.
    let q0 = common::write_pcap(&dir, "q0.pcap", &(0..5).map(to_a).collect::<Vec<_>>());
    let q1 = common::write_pcap(&dir, "q1.pcap", &(5..14).map(to_a).collect::<Vec<_>>());
    let none = common::write_pcap(&dir, "none.pcap", &[]);
    let state = dir.join("state.json");
    std::fs::write(&state, serde_json::to_string(&node_a_state()).unwrap()).unwrap();
    let out = |n: &str| dir.join(n);
    let eal = format!(
        "lcores = \"0@0,1@1,2@1\"\nno_huge = true\nmemory_mb = 512\nfile_prefix = \"podlane-2w-{id}\"\nlog_level = \"lib.eal:error\"\nno_pci = true"
    );
    let ports = format!(
        "[[ports]]\ndevargs = \"net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}\"\nrole = \"uplink\"\n\
         [[ports]]\ndevargs = \"net_pcap1,rx_pcap={},tx_pcap={},tx_pcap={}\"\nrole = \"pod\"\npod_port = 0\n",
        q0.display(),
        q1.display(),
        out("up0.pcap").display(),
        out("up1.pcap").display(),
        none.display(),
        out("a0.pcap").display(),
        out("a1.pcap").display(),
    );
    let cfg = dir.join("two.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_file = \"{}\"\n[eal]\n{eal}\n{}\n{ports}",
            state.display(),
            common::node_section()
        ),
    )
    .unwrap();
    let stats = dir.join("stats.json");
    let (ok, stdout, stderr) = run(
        &cfg,
        &["--duration", "1.5", "--stats-json", stats.to_str().unwrap()],
    );
    assert!(ok, "{stdout}\n{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let w = s["workers"].as_array().expect("per-worker stats");
    assert_eq!(w.len(), 2, "{s}");
    assert_eq!(
        (w[0]["rx_packets"].as_u64(), w[1]["rx_packets"].as_u64()),
        (Some(5), Some(9)),
        "{s}"
    );
    assert_eq!(s["mbufs_in_use"].as_u64(), Some(0), "{s}");
    let frames = |n: &str| common::read_pcap(&out(n)).len();
    // Each worker sent what it received on its own transmit queue of pod A's port.
    assert_eq!((frames("a0.pcap"), frames("a1.pcap")), (5, 9));
    assert_eq!((frames("up0.pcap"), frames("up1.pcap")), (0, 0));

    // An uplink that has one transmit queue cannot serve two workers: one clear line.
    let one_q = format!(
        "[[ports]]\ndevargs = \"net_pcap0,rx_pcap={},tx_pcap={}\"\nrole = \"uplink\"\n",
        q0.display(),
        out("x.pcap").display()
    );
    let cfg1 = dir.join("one.toml");
    std::fs::write(
        &cfg1,
        format!("[eal]\n{eal}\n{}\n{one_q}", common::node_section()),
    )
    .unwrap();
    let (ok, _, err) = run(&cfg1, &["--duration", "1"]);
    assert!(!ok);
    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    assert!(last.starts_with("podlane-fastpath: "), "{err}");
    assert!(
        last.contains(
            "2 worker(s) need 2 transmit queue(s) per port and the uplink 2 receive queue(s)"
        ) && last.contains("one rx_pcap/tx_pcap per queue"),
        "{last}"
    );
    assert!(!std::path::Path::new("/var/run/dpdk")
        .join(format!("podlane-2w-{id}"))
        .exists());
    let _ = std::fs::remove_dir_all(&dir);
}
