//! Helpers shared by the daemon's tests.

/// The `[node]` section of the sample configuration (node A of the lab).
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
