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
