//! Bad setups end with one clear line that says what to do, and a non-zero exit.

mod common;

use std::process::Command;

fn config(dir: &std::path::Path, eal: &str, ports: &str) -> std::path::PathBuf {
    let node = common::node_section();
    let p = dir.join(format!("c{}.toml", eal.len() + ports.len()));
    std::fs::write(&p, format!("[eal]\n{eal}\n{node}\n{ports}\n")).unwrap();
    p
}

fn run(cfg: &std::path::Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_podlane-fastpath"))
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    (o.status.success(), err)
}

/// The last line the daemon printed (DPDK itself may log before it).
fn last_line(s: &str) -> &str {
    s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
}

#[test]
fn bad_setups_give_one_clear_line() {
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("podlane-err-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let eal = format!("no_huge = true\nmemory_mb = 256\nfile_prefix = \"podlane-err-{id}\"\nlog_level = \"lib.eal:error\"\nno_pci = true");

    // A devargs string no driver takes.
    let c = config(
        &dir,
        &eal,
        "[[ports]]\ndevargs = \"net_nosuchdriver0\"\nrole = \"uplink\"",
    );
    let (ok, err) = run(&c);
    assert!(!ok);
    let l = last_line(&err);
    assert!(
        l.starts_with("podlane-fastpath: cannot attach device \"net_nosuchdriver0\""),
        "{err}"
    );
    assert!(l.contains("Check the devargs syntax"), "{l}");

    // A port that cannot start: a pcap device reading a file that does not exist.
    let c = config(&dir, &eal, "[[ports]]\ndevargs = \"net_pcap0,rx_pcap=/nonexistent/in.pcap,tx_pcap=/nonexistent/out.pcap\"\nrole = \"uplink\"");
    let (ok, err) = run(&c);
    assert!(!ok);
    assert!(last_line(&err).starts_with("podlane-fastpath: "), "{err}");

    // A configuration mistake, caught before DPDK starts.
    let c = config(
        &dir,
        &format!("{eal}\nin_memory = true"),
        "[[ports]]\ndevargs = \"net_null0\"\nrole = \"uplink\"",
    );
    let (ok, err) = run(&c);
    assert!(!ok);
    assert!(
        last_line(&err).contains("no_huge and in_memory do not combine"),
        "{err}"
    );

    // Hugepages asked for where none are reserved.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let no_hugepages = meminfo
        .lines()
        .any(|l| l.starts_with("HugePages_Total:") && l.ends_with(" 0"));
    if no_hugepages {
        let eal = format!(
            "file_prefix = \"podlane-err-hp-{id}\"\nlog_level = \"lib.eal:error\"\nno_pci = true"
        );
        let c = config(
            &dir,
            &eal,
            "[[ports]]\ndevargs = \"net_null0\"\nrole = \"uplink\"",
        );
        let (ok, err) = run(&c);
        assert!(!ok);
        let l = last_line(&err);
        assert!(
            l.contains("rte_eal_init") && l.contains("reserve some"),
            "{err}"
        );
    }
    for p in [format!("podlane-err-{id}"), format!("podlane-err-hp-{id}")] {
        assert!(
            !std::path::Path::new("/var/run/dpdk").join(&p).exists(),
            "{p} left behind"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One configuration for every node: the node's identity and uplink from its node file. The
/// daemon starts from the two; without the node file it ends with one line naming it; a key
/// set in both is refused by name.
#[test]
fn a_shared_configuration_takes_the_node_from_its_node_file() {
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("podlane-nodefile-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let node = common::node_section();
    let own = [
        "name =",
        "underlay_ip =",
        "underlay_mac =",
        "vtep_mac =",
        "pod_cidr =",
    ];
    let (mine, shared): (Vec<&str>, Vec<&str>) = node
        .lines()
        .skip(1)
        .partition(|l| own.iter().any(|k| l.starts_with(k)));
    assert_eq!(mine.len(), own.len(), "{node}");
    let config = dir.join("fastpath.toml");
    std::fs::write(
        &config,
        format!(
            "node_file = \"node.toml\"\n[eal]\nno_huge = true\nmemory_mb = 256\n\
             file_prefix = \"podlane-nodefile-{id}\"\nlog_level = \"lib.eal:error\"\nno_pci = true\n\
             [node]\n{}\n[[ports]]\ndevargs = \"net_null1,no-rx=1\"\nrole = \"pod\"\npod_port = 0\n",
            shared.join("\n")
        ),
    )
    .unwrap();
    let (ok, err) = run(&config);
    assert!(!ok);
    let l = last_line(&err);
    assert!(
        l.contains(&dir.join("node.toml").display().to_string()),
        "{err}"
    );
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "[node]\n{}\n[[ports]]\ndevargs = \"net_null0,no-rx=1\"\nrole = \"uplink\"\n",
            mine.join("\n")
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_podlane-fastpath"))
        .args(["--duration", "0.3", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A key both give.
    std::fs::write(
        dir.join("node.toml"),
        format!("[node]\n{}\nvni = 7\n", mine.join("\n")),
    )
    .unwrap();
    let (ok, err) = run(&config);
    assert!(!ok);
    let l = last_line(&err);
    assert!(l.contains("vni") && l.contains("both"), "{err}");
    assert!(!std::path::Path::new("/var/run/dpdk")
        .join(format!("podlane-nodefile-{id}"))
        .exists());
    let _ = std::fs::remove_dir_all(&dir);
}
