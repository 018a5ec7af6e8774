//! `podlane-control`: the node's control daemon. Serves the CNI endpoint, the HTTP API and
//! `/metrics`, watches the cluster file or the Kubernetes API, and keeps the fast path's tables
//! equal to the desired state (deltas as they happen, a full resync when the fast path
//! restarts).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use control::config::Config;
use control::daemon::Daemon;

/// Threads serving the HTTP API.
const HTTP_THREADS: usize = 2;

/// The podlane control daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The configuration file (sample: deploy/control.toml).
    #[arg(long, default_value = "/etc/podlane/control.toml")]
    config: PathBuf,
    /// Checks the configuration and the cluster file, then exits.
    #[arg(long)]
    check: bool,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PODLANE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("podlane-control: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let cfg = Config::load(&args.config)?;
    let daemon = Arc::new(Daemon::open(cfg.clone())?);
    if args.check {
        println!("configuration and cluster state are valid");
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let cni = control::endpoint::bind(&cfg.cni_socket)
        .map_err(|e| format!("CNI socket {}: {e}", cfg.cni_socket.display()))?;
    let http = Arc::new(
        tiny_http::Server::http(cfg.http_listen)
            .map_err(|e| format!("HTTP API on {}: {e}", cfg.http_listen))?,
    );
    {
        let d = Arc::clone(&daemon);
        std::thread::Builder::new()
            .name("podlane-cni".into())
            .spawn(move || control::endpoint::serve(cni, d))
            .map_err(|e| e.to_string())?;
    }
    let http_thread = {
        let d = Arc::clone(&daemon);
        let h = Arc::clone(&http);
        std::thread::Builder::new()
            .name("podlane-http".into())
            .spawn(move || control::http::serve(h, d, HTTP_THREADS))
            .map_err(|e| e.to_string())?
    };
    if let Some(k) = &cfg.kubernetes {
        control::kubernetes::spawn(Arc::clone(&daemon), k.clone())?;
        tracing::info!("cluster state from the Kubernetes API (Nodes, Services, EndpointSlices)");
    }
    tracing::info!(
        node = %cfg.node_name,
        cni = %cfg.cni_socket.display(),
        http = %cfg.http_listen,
        "podlane-control running"
    );
    // First sync at once, then: the cluster file a few times a second, the fast path's epoch
    // (a restart means a resync) every half second, the health-check NodePorts.
    daemon.tick();
    daemon.sync_health_checks();
    daemon.sync_host_routes();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        n += 1;
        let _ = daemon.poll_cluster_file();
        if n.is_multiple_of(5) {
            daemon.tick();
        }
        // The health-check NodePorts and the host routes follow the cluster state within
        // 100 ms.
        daemon.sync_health_checks();
        daemon.sync_host_routes();
    }
    tracing::info!("stopping");
    daemon.flush_cluster_file();
    // One unblock per serving thread (each wakes one waiting receiver).
    for _ in 0..HTTP_THREADS {
        http.unblock();
    }
    let _ = http_thread.join();
    let _ = std::fs::remove_file(&cfg.cni_socket);
    Ok(())
}
