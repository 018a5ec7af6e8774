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
