//! Helpers shared by the daemon's tests.

/// The `[node]` section of the sample configuration (node A of the lab).
#[allow(dead_code)] // not every test binary that includes this module writes a config
pub fn node_section() -> String {
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/fastpath.toml"
    ))
    .expect("deploy/fastpath.toml");
    sample
        .lines()
        .skip_while(|l| !l.starts_with("[node]"))
        .take_while(|l| !l.starts_with("[capacities]"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Stops a running `podlane-fastpath` with SIGTERM (its clean shutdown) and returns how it
/// ended and what it printed; fails the test if it does not stop within 20 s.
#[allow(dead_code)] // not every test binary that includes this module stops a daemon
pub fn stop_with_sigterm(
    mut child: std::process::Child,
) -> (std::process::ExitStatus, std::process::Output) {
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "daemon did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    (status, out)
}

/// Writes `frames` as the pcap file `dir/name` (a millisecond apart) and returns its path.
#[allow(dead_code)] // not every test binary that includes this module uses pcap files
pub fn write_pcap(dir: &std::path::Path, name: &str, frames: &[Vec<u8>]) -> std::path::PathBuf {
    let p = dir.join(name);
    let recs: Vec<(u64, &[u8])> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (i as u64 * 1000, f.as_slice()))
        .collect();
    fastpath::pcap::write_file(&p, &recs).unwrap();
    p
}

/// The frames of the pcap file `p`.
#[allow(dead_code)]
pub fn read_pcap(p: &std::path::Path) -> Vec<Vec<u8>> {
    fastpath::pcap::read_file(p)
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect()
}

/// Asserts that the frames a port sent are `want`, byte for byte, in order.
#[allow(dead_code)]
pub fn assert_frames(port: &str, got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{port}: {} frames out, {} expected",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{port} frame {i} differs\n got: {g:02x?}\nwant: {w:02x?}"
        );
    }
}

/// The ports of the two-worker tests, all `net_pcap`: the uplink with two receive queues (one
/// pcap each, as two RSS queues), pods A and B with one; every port two transmit queues (one
/// per worker), written to [`tx_pcap`]`(dir, name, q)` with names "uplink", "poda", "podb".
#[allow(dead_code)]
pub struct TwoWorkerPorts {
    pub uplink: std::sync::Arc<dpdk::Port>,
    pub pods: Vec<Option<std::sync::Arc<daemon::worker::PodPort>>>,
}

/// Where port `name` writes what it sends on transmit queue `q` (see [`TwoWorkerPorts`]).
#[allow(dead_code)]
pub fn tx_pcap(dir: &std::path::Path, name: &str, q: u16) -> std::path::PathBuf {
    dir.join(format!("{name}_tx{q}.pcap"))
}

/// Attaches and starts the [`TwoWorkerPorts`], reading `uplink_rx` (queue 0, queue 1),
/// `pod_a_rx` and `pod_b_rx`.
#[allow(dead_code)]
pub fn two_worker_ports(
    eal: &dpdk::Eal,
    pool: &std::sync::Arc<dpdk::PktPool>,
    dir: &std::path::Path,
    uplink_rx: [&std::path::Path; 2],
    pod_a_rx: &std::path::Path,
    pod_b_rx: &std::path::Path,
) -> TwoWorkerPorts {
    use daemon::worker::PodPort;
    use std::sync::Arc;
    let tx = |n: &str| {
        format!(
            "tx_pcap={},tx_pcap={}",
            tx_pcap(dir, n, 0).display(),
            tx_pcap(dir, n, 1).display()
        )
    };
    let start = |devargs: String, rx_queues: u16| {
        let id = eal.attach(&devargs).expect("attach net_pcap");
        let cfg = dpdk::PortConfig {
            rx_queues,
            tx_queues: 2,
            ..dpdk::PortConfig::default()
        };
        dpdk::Port::start(id, &cfg, pool).expect("port start")
    };
    let uplink = format!(
        "net_pcap0,rx_pcap={},rx_pcap={},{}",
        uplink_rx[0].display(),
        uplink_rx[1].display(),
        tx("uplink")
    );
    let pod_a = format!("net_pcap1,rx_pcap={},{}", pod_a_rx.display(), tx("poda"));
    let pod_b = format!("net_pcap2,rx_pcap={},{}", pod_b_rx.display(), tx("podb"));
    TwoWorkerPorts {
        uplink: Arc::new(start(uplink, 2)),
        pods: vec![
            Some(Arc::new(PodPort::Eth(start(pod_a, 1)))),
            Some(Arc::new(PodPort::Eth(start(pod_b, 1)))),
        ],
    }
}

/// The two workers of one node over `ports` (published as the port set, returned with them),
/// each with its conntrack of 4,096 entries, handing over through `handoff`.
#[allow(dead_code)]
pub fn two_workers(
    tables: fastpath::rcu::Reader<fastpath::update::Tables>,
    ports: TwoWorkerPorts,
    handoff: &std::sync::Arc<daemon::worker::Handoff>,
) -> (
    fastpath::rcu::Publisher<daemon::worker::PortSet>,
    Vec<daemon::worker::Worker>,
) {
    use daemon::worker::{PortSet, Worker};
    let set = fastpath::rcu::Publisher::new(PortSet {
        uplink: ports.uplink,
        host: None,
        pods: ports.pods,
    });
    let timeouts = fastpath::tables::conntrack::Timeouts::default();
    let workers = fastpath::pipeline::Pipeline::workers(tables, 2, 4096, timeouts)
        .into_iter()
        .map(|p| Worker::sharded(p, set.reader(), 2, 16, handoff))
        .collect();
    (set, workers)
}

/// The EAL of a test binary: no hugepages, a file prefix of `name` and the process id.
#[allow(dead_code)]
pub fn test_eal(name: &str) -> dpdk::Eal {
    let prefix = format!("{name}-{}", std::process::id());
    dpdk::Eal::init(&dpdk::EalConfig::for_tests(&prefix, &[])).expect("EAL without hugepages")
}
