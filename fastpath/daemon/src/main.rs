//! `podlane-fastpath`: the poll-mode daemon. Reads a TOML configuration, starts the EAL,
//! attaches and starts the ports, programs the tables from the initial state file and runs the
//! pipeline on a worker lcore until SIGINT/SIGTERM (or `--duration`), then stops the worker,
//! closes the ports (flushing pcap outputs) and prints its counters.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use daemon::config::{Config, Role};
use daemon::control::{open_pod_port, ControlServer, PortManager, WorkerHandle};
use daemon::worker::{Handoff, LoopStats, PodPort, PortSet, Worker};
use dpdk::{Eal, PktPool, Port, PortConfig};
use fastpath::counters::{CounterSnapshot, Event};
use fastpath::pipeline::Pipeline;
use fastpath::rcu::Publisher;
use fastpath::update::{FullState, TableWriter, Update};

/// podlane's DPDK fast path: VXLAN, pod forwarding and Service NAT on dedicated cores.
///
/// Every configuration key is documented in deploy/fastpath.toml (a sample for node A of the
/// lab) and fastpath/daemon/src/config.rs.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Stop after this many seconds (benchmarks, tests); default: run until SIGINT/SIGTERM.
    #[arg(long)]
    duration: Option<f64>,
    /// Write the final counters and throughput as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Check the configuration and the state file, then exit.
    #[arg(long)]
    check: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("podlane-fastpath: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let cfg = Config::load(&args.config).map_err(|e| e.to_string())?;
    let state = match &cfg.state_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read state file {}: {e}", p.display()))?;
            serde_json::from_str::<FullState>(&text)
                .map_err(|e| format!("state file {}: {e}", p.display()))?
        }
        None => FullState::default(),
    };
    let mut writer =
        TableWriter::new(cfg.node.clone(), cfg.capacities).map_err(|e| format!("[node]: {e}"))?;
    writer
        .apply(Update::Snapshot(state))
        .map_err(|e| format!("state file: {e}"))?;
    if args.check {
        println!("configuration and state are valid");
        return Ok(());
    }

    let eal = match Eal::init(&cfg.eal_config()) {
        Ok(e) => e,
        Err(e) => {
            // DPDK's IPC thread may still be creating files after a failed init: remove the
            // runtime directory once more, as late as possible.
            std::thread::sleep(Duration::from_millis(100));
            dpdk::eal::remove_runtime_dir(&cfg.eal.file_prefix);
            return Err(e.to_string());
        }
    };
    let eal = Arc::new(eal);
    let result = run_dpdk(args, &cfg, &eal, writer);
    // Whatever happened, leave no DPDK runtime files behind.
    if let Ok(eal) = Arc::try_unwrap(eal) {
        eal.cleanup();
    }
    result
}

/// Everything that needs the EAL: ports, the worker, the control socket, the final report.
fn run_dpdk(
    args: &Args,
    cfg: &Config,
    eal: &Arc<Eal>,
    mut writer: TableWriter,
) -> Result<(), String> {
    let pool = Arc::new(PktPool::new("podlane", cfg.queues.mbufs, 256).map_err(|e| {
        format!("{e} — with no_huge, raise [eal] memory_mb; else reserve more hugepages")
    })?);
    // One worker per worker lcore (the main lcore's thread runs the only worker if there is
    // none); every ethdev port gets one transmit queue per worker, the uplink one receive
    // queue per worker unless [queues] says otherwise.
    let nworkers = u16::try_from(eal.worker_lcores().len().max(1)).unwrap_or(u16::MAX);
    let uplink_rxq = match cfg.queues.uplink_rx_queues {
        0 => nworkers,
        n => n,
    };
    let pcfg = PortConfig {
        rx_queues: 1,
        tx_queues: nworkers,
        rx_desc: cfg.queues.rx_desc,
        tx_desc: cfg.queues.tx_desc,
        promiscuous: true,
    };
    let queue_hint = |p: &daemon::config::PortSection| {
        format!(
            "{} worker(s) need {} transmit queue(s) per port{} — check the device exists and is \
             not in use, and give it enough queues (net_af_packet: qpairs=N; net_pcap: one \
             rx_pcap/tx_pcap per queue; or set [queues] uplink_rx_queues) (devargs {:?})",
            nworkers,
            nworkers,
            if p.role == Role::Uplink {
                format!(" and the uplink {uplink_rxq} receive queue(s)")
            } else {
                String::new()
            },
            p.devargs
        )
    };
    let mut uplink = None;
    let mut host = None;
    let mut pods: Vec<Option<Arc<PodPort>>> = Vec::new();
    for p in &cfg.ports {
        if p.role == Role::Pod {
            // A pod port may be a TAP file descriptor (`tap:IFNAME`) or any DPDK device.
            let port = open_pod_port(&p.devargs, eal, &pcfg, &pool)
                .map_err(|e| format!("{e} — {}", queue_hint(p)))?;
            let n = usize::from(p.pod_port.unwrap_or(0));
            if pods.len() <= n {
                pods.resize_with(n + 1, || None);
            }
            pods[n] = Some(Arc::new(port));
            continue;
        }
        let id = eal.attach(&p.devargs).map_err(|e| e.to_string())?;
        let mut pc = pcfg;
        if p.role == Role::Uplink {
            pc.rx_queues = uplink_rxq;
        }
        let port = Port::start(id, &pc, &pool).map_err(|e| format!("{e} — {}", queue_hint(p)))?;
        let port = Arc::new(port);
        match p.role {
            Role::Uplink => uplink = Some(port),
            Role::Host => host = Some(port),
            Role::Pod => {}
        }
    }
    let uplink = uplink.ok_or("no uplink port")?;
    let ports = Publisher::new(PortSet { uplink, host, pods });
    let handoff = Handoff::new(nworkers);
    let workers: Vec<Worker> = Pipeline::workers(
        writer.reader(),
        nworkers,
        cfg.capacities.conntrack_entries,
        cfg.timeouts,
    )
    .into_iter()
    .map(|p| {
        Worker::sharded(
            p,
            ports.reader(),
            uplink_rxq,
            cfg.capacities.max_pod_ports,
            &handoff,
        )
        .with_burst(usize::from(cfg.queues.burst))
    })
    .collect();
    drop(handoff);
    let handles: Vec<WorkerHandle> = workers
        .iter()
        .map(|w| WorkerHandle {
            counters: Arc::clone(w.counters()),
            conntrack: w.conntrack_dump(),
        })
        .collect();
    let mut manager = PortManager {
        eal: Arc::clone(eal),
        pool: Arc::clone(&pool),
        config: pcfg,
        ports,
        max_pod_ports: cfg.capacities.max_pod_ports,
    };

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    // The control socket runs on its own (non-forwarding) thread, which owns the table writer.
    let control = match &cfg.control_socket {
        Some(path) => {
            let epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            let server = ControlServer::bind(path, epoch)
                .map_err(|e| format!("control socket {}: {e}", path.display()))?;
            let stop_c = Arc::clone(&stop);
            let handles = handles.clone();
            Some(
                std::thread::Builder::new()
                    .name("podlane-control".into())
                    .spawn(move || {
                        while !stop_c.load(Ordering::Relaxed) {
                            server.serve_next(&mut writer, &mut manager, &handles);
                        }
                        manager
                    })
                    .map_err(|e| e.to_string())?,
            )
        }
        None => {
            drop(writer);
            let m = manager;
            return finish(
                args,
                run_workers(args, eal, workers, &stop)?,
                m,
                &handles,
                pool,
            );
        }
    };
    let ran = run_workers(args, eal, workers, &stop);
    // Whether the worker ended well or not, the control thread must stop.
    stop.store(true, Ordering::Relaxed);
    if let Some(path) = &cfg.control_socket {
        ControlServer::wake(path);
    }
    let (workers, started) = ran?;
    let manager = control
        .ok_or("control thread missing")?
        .join()
        .map_err(|_| "the control thread panicked")?;
    finish(args, (workers, started), manager, &handles, pool)
}

/// Runs one worker per worker lcore (or the only worker on this thread with a single lcore)
/// until stopped; returns them and when they started.
fn run_workers(
    args: &Args,
    eal: &Eal,
    mut workers: Vec<Worker>,
    stop: &Arc<AtomicBool>,
) -> Result<(Vec<Worker>, Instant), String> {
    let hz = dpdk::eal::tsc_hz().max(1);
    let started = Instant::now();
    let deadline = args.duration.map(|s| started + Duration::from_secs_f64(s));
    let lcores = eal.worker_lcores();
    if lcores.is_empty() {
        let w = workers.pop().ok_or("no worker")?;
        return Ok((vec![poll_loop(w, stop, hz, deadline)], started));
    }
    let (tx, rx) = mpsc::channel();
    let mut launched = Vec::new();
    let mut failed = None;
    for (i, (w, &lcore)) in workers.into_iter().zip(&lcores).enumerate() {
        let (tx, stop_w) = (tx.clone(), Arc::clone(stop));
        match eal.launch(lcore, move || {
            let w = poll_loop(w, &stop_w, hz, None);
            let _ = tx.send((i, w));
            0
        }) {
            Ok(()) => launched.push(lcore),
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    if failed.is_some() {
        stop.store(true, Ordering::Relaxed);
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
    }
    let mut back: Vec<(usize, Worker)> = rx.iter().collect();
    for lcore in launched {
        eal.wait(lcore);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if back.len() != lcores.len() {
        return Err("a worker lcore ended without handing back".into());
    }
    back.sort_by_key(|(i, _)| *i);
    Ok((back.into_iter().map(|(_, w)| w).collect(), started))
}

/// Stops everything in order: the worker is gone, so every port is closed (pcap outputs
/// flushed), then the final report.
fn finish(
    args: &Args,
    (workers, started): (Vec<Worker>, Instant),
    manager: PortManager,
    handles: &[WorkerHandle],
    pool: Arc<PktPool>,
) -> Result<(), String> {
    let elapsed = started.elapsed().as_secs_f64();
    let per_worker: Vec<LoopStats> = workers.iter().map(Worker::stats).collect();
    let stats = LoopStats::sum(&per_worker);
    // The workers' buffers and handoff queues free their mbufs here.
    drop(workers);
    let snap: CounterSnapshot = CounterSnapshot::sum(handles.iter().map(|h| &*h.counters));
    for p in manager.ports.current().all() {
        p.close().map_err(|e| e.to_string())?;
    }
    // TAP pod ports close with the last set holding them.
    drop(manager);
    // Every mbuf is back by now: the worker's buffers are gone and the ports are closed.
    let mbufs_in_use = pool.in_use();
    let report = serde_json::json!({
        "seconds": elapsed,
        "rx_packets": stats.rx,
        "tx_packets": stats.tx,
        "rx_mpps": stats.rx as f64 / elapsed / 1e6,
        "tx_mpps": stats.tx as f64 / elapsed / 1e6,
        "polls": stats.polls,
        "workers": per_worker
            .iter()
            .map(|w| serde_json::json!({"rx_packets": w.rx, "tx_packets": w.tx, "polls": w.polls}))
            .collect::<Vec<_>>(),
        "mbufs_in_use": mbufs_in_use,
        "counters": snap.nonzero().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    });
    println!(
        "podlane-fastpath: {:.2} s, rx {} ({:.2} Mpps), tx {} ({:.2} Mpps), encap {}, decap {}, dropped {}",
        elapsed,
        stats.rx,
        stats.rx as f64 / elapsed / 1e6,
        stats.tx,
        stats.tx as f64 / elapsed / 1e6,
        snap.event_count(Event::Encap),
        snap.event_count(Event::Decap),
        snap.event_count(Event::Dropped),
    );
    if let Some(p) = &args.stats_json {
        std::fs::write(p, serde_json::to_string_pretty(&report).unwrap_or_default())
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    drop(pool);
    Ok(())
}

/// TSC cycles to milliseconds with a multiply instead of a division per poll:
/// `⌊tsc · ⌊(2^64 − 1) / cycles_per_ms⌋ / 2^64⌋`, monotonic in `tsc`, never ahead of
/// `⌊tsc / cycles_per_ms⌋` and at most one behind it for any TSC below 2^63 (the deficit is
/// under `2 · tsc / 2^64`).
#[derive(Debug, Clone, Copy)]
struct TscToMs(u64);

impl TscToMs {
    fn new(hz: u64) -> TscToMs {
        TscToMs(u64::MAX / (hz / 1000).max(1))
    }

    #[inline(always)]
    fn of(self, tsc: u64) -> u64 {
        ((u128::from(tsc) * u128::from(self.0)) >> 64) as u64
    }
}

/// Polls until `stop` (or the deadline, when the loop runs on the main lcore).
fn poll_loop(mut w: Worker, stop: &AtomicBool, hz: u64, deadline: Option<Instant>) -> Worker {
    let ms = TscToMs::new(hz);
    let mut n: u64 = 0;
    loop {
        let now_ms = ms.of(dpdk::eal::rdtsc());
        w.poll(now_ms);
        n += 1;
        if n.is_multiple_of(1024) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::TscToMs;

    #[test]
    fn tsc_to_ms_is_the_division_or_one_less() {
        for hz in [
            1_000,
            1_000_000,
            2_600_000_000,
            3_700_000_123,
            10_000_000_000,
        ] {
            let ms = TscToMs::new(hz);
            let per_ms = hz / 1000;
            let mut tscs: Vec<u64> = (0..64)
                .map(|i| i * 7_919_999_981)
                .chain([per_ms - 1, per_ms, per_ms + 1, 1 << 62, (1 << 63) - 1])
                .collect();
            tscs.sort_unstable();
            let mut before = 0;
            for tsc in tscs {
                let (got, want) = (ms.of(tsc), tsc / per_ms);
                assert!(
                    got == want || got + 1 == want,
                    "{hz} Hz, tsc {tsc}: {got} vs {want}"
                );
                assert!(got >= before, "{hz} Hz, tsc {tsc}: went back");
                before = got;
            }
        }
    }
}
