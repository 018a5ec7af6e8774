//! The local control socket: a unix socket (mode 0600, root only) speaking
//! [`fastpath::proto`]. It owns the [`TableWriter`]: every accepted change is published to the
//! workers RCU-style; a refused one changes nothing. Garbage gets an error answer and a counter,
//! never a crash.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dpdk::{Eal, PktPool, Port, PortConfig, PortStats, TapPort};
use fastpath::counters::{CounterSnapshot, Counters};
use fastpath::rcu::Publisher;

use crate::worker::{CtDumpSlot, PodPort, PortSet};
use fastpath::proto::{read_frame, write_frame, FrameError, PortCounters, Request, Response};
use fastpath::update::{TableWriter, Update};

/// Counters of the control socket.
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Frames that were not this protocol (bad magic, version, length, cut short).
    pub bad_frames: AtomicU64,
    /// Well-framed bodies that were not a valid request.
    pub bad_requests: AtomicU64,
    /// Valid requests refused (invalid updates).
    pub refused: AtomicU64,
}

/// The devargs prefix asking for a pod port that is a TAP file descriptor rather than a DPDK
/// device: `tap:IFNAME` (in the fast path's namespace) or `tap:IFNAME@NETNS` (inside the
/// network namespace file NETNS).
pub const TAP_PREFIX: &str = "tap:";

/// Opens a pod port: `tap:IFNAME` creates the TAP device `IFNAME` (a [`TapPort`], no ethdev
/// slot), anything else is DPDK devargs to attach and start.
pub fn open_pod_port(
    devargs: &str,
    eal: &Eal,
    config: &PortConfig,
    pool: &Arc<PktPool>,
) -> Result<PodPort, String> {
    if let Some(spec) = devargs.strip_prefix(TAP_PREFIX) {
        // `tap:IFNAME` creates the TAP here; `tap:IFNAME@NETNS` creates it inside the network
        // namespace file NETNS (a pod's), where it is to live.
        let tap = match spec.split_once('@') {
            Some((ifname, netns)) => TapPort::create_in(ifname, std::path::Path::new(netns)),
            None => TapPort::create(spec),
        }
        .map_err(|e| e.to_string())?;
        return Ok(PodPort::Tap(tap, Arc::clone(pool)));
    }
    let id = eal.attach(devargs).map_err(|e| e.to_string())?;
    match Port::start(id, config, pool) {
        Ok(port) => Ok(PodPort::Eth(port)),
        Err(e) => {
            // Give the device's ethdev slot back.
            let _ = eal.detach_vdev(&dpdk::port::port_name(id));
            Err(e.to_string())
        }
    }
}

/// Run-time pod ports: creates TAP ports or attaches and starts devices, publishes port sets,
/// closes removed ports once no worker reads the set that held them.
#[derive(Debug)]
pub struct PortManager {
    /// The EAL (device attach/detach).
    pub eal: Arc<Eal>,
    /// The pool new ports' receive queues (and TAP ports' reads) fill from.
    pub pool: Arc<PktPool>,
    /// Queue settings for new ethdev ports.
    pub config: PortConfig,
    /// The published port set.
    pub ports: Publisher<PortSet>,
    /// Pod port ids run from 0 to this (exclusive).
    pub max_pod_ports: u16,
}

impl PortManager {
    fn add(&mut self, devargs: &str, pod_port: u16) -> Result<(), String> {
        if pod_port >= self.max_pod_ports {
            return Err(format!(
                "pod port {pod_port} is beyond the configured {} pod ports",
                self.max_pod_ports
            ));
        }
        let cur = self.ports.current();
        if cur
            .pods
            .get(usize::from(pod_port))
            .is_some_and(|p| p.is_some())
        {
            return Err(format!("pod port {pod_port} is already attached"));
        }
        let port = open_pod_port(devargs, &self.eal, &self.config, &self.pool)?;
        let mut next = (*cur).clone();
        if next.pods.len() <= usize::from(pod_port) {
            next.pods.resize(usize::from(pod_port) + 1, None);
        }
        next.pods[usize::from(pod_port)] = Some(Arc::new(port));
        self.ports.publish(next);
        Ok(())
    }

    fn remove(&mut self, pod_port: u16) -> Result<(), String> {
        let cur = self.ports.current();
        let Some(port) = cur.pods.get(usize::from(pod_port)).cloned().flatten() else {
            return Err(format!("pod port {pod_port} is not attached"));
        };
        let mut next = (*cur).clone();
        next.pods[usize::from(pod_port)] = None;
        drop(cur);
        self.ports.publish(next);
        // Wait until no worker holds a set with the port (each takes the new set at its next
        // poll, microseconds away), then close it: the driver frees what its queues held; a
        // TAP's descriptor closes, and the device goes with it wherever it is.
        let t0 = std::time::Instant::now();
        while Arc::strong_count(&port) > 1 {
            self.ports.reclaim();
            if t0.elapsed() > Duration::from_secs(2) {
                return Err(format!(
                    "pod port {pod_port}: a worker still uses it after 2 s; not closed"
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        match Arc::try_unwrap(port) {
            Ok(PodPort::Tap(tap, _)) => {
                drop(tap);
                Ok(())
            }
            Ok(PodPort::Eth(port)) => {
                let name = port.name().to_string();
                port.close().map_err(|e| e.to_string())?;
                drop(port);
                self.eal.detach_vdev(&name).map_err(|e| e.to_string())
            }
            Err(_) => Err(format!("pod port {pod_port}: still referenced; not closed")),
        }
    }
}

/// What the control thread holds of each worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    /// Its counters.
    pub counters: Arc<Counters>,
    /// Its conntrack dump slot.
    pub conntrack: Arc<CtDumpSlot>,
}

/// The server.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    epoch: u64,
    stats: Arc<ControlStats>,
}

impl ControlServer {
    /// Binds `path` (replacing a stale socket left by a previous run, never another kind of
    /// file), readable and writable by the owner only.
    pub fn bind(path: &Path, epoch: u64) -> io::Result<ControlServer> {
        let listener = fastpath::proto::bind_private_socket(path)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            epoch,
            stats: Arc::default(),
        })
    }

    /// The socket's counters.
    pub fn stats(&self) -> &Arc<ControlStats> {
        &self.stats
    }

    /// Waits for the next connection and serves it to its end. The caller wakes a waiting
    /// server for shutdown by connecting to the socket ([`ControlServer::wake`]); waiting in
    /// `accept` rather than polling keeps a change's latency at the cost of the work itself.
    pub fn serve_next(
        &self,
        writer: &mut TableWriter,
        ports: &mut PortManager,
        workers: &[WorkerHandle],
    ) {
        if let Ok((stream, _)) = self.listener.accept() {
            self.serve(stream, writer, ports, workers);
        }
    }

    /// Wakes a server waiting in [`ControlServer::serve_next`] at `path`.
    pub fn wake(path: &Path) {
        let _ = UnixStream::connect(path);
    }

    fn serve(
        &self,
        mut s: UnixStream,
        writer: &mut TableWriter,
        ports: &mut PortManager,
        workers: &[WorkerHandle],
    ) {
        if s.set_nonblocking(false).is_err()
            || s.set_read_timeout(Some(Duration::from_secs(5))).is_err()
            || s.set_write_timeout(Some(Duration::from_secs(5))).is_err()
        {
            return;
        }
        loop {
            let body = match read_frame(&mut s) {
                Ok(b) => b,
                Err(FrameError::Closed) => return,
                Err(e) => {
                    // Framing is lost: answer and close.
                    self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    let _ = write_frame(
                        &mut s,
                        &Response::Error {
                            message: e.to_string(),
                        },
                    );
                    return;
                }
            };
            let resp = match serde_json::from_slice::<Request>(&body) {
                Ok(req) => self.handle(req, writer, ports, workers),
                Err(e) => {
                    self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                    Response::Error {
                        message: format!("not a valid request: {e}"),
                    }
                }
            };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if write_frame(&mut s, &resp).is_err() {
                return;
            }
        }
    }

    fn handle(
        &self,
        req: Request,
        writer: &mut TableWriter,
        ports: &mut PortManager,
        workers: &[WorkerHandle],
    ) -> Response {
        let epoch = self.epoch;
        let applied = match req {
            Request::Hello => Ok(writer.generation()),
            Request::Apply { updates } => writer.apply_batch(updates),
            Request::Snapshot { state } => writer.apply(Update::Snapshot(state)),
            Request::GetState => {
                return Response::State {
                    epoch,
                    generation: writer.generation(),
                    state: writer.full_state(),
                }
            }
            Request::Stats => {
                return Response::Stats {
                    epoch,
                    generation: writer.generation(),
                    counters: CounterSnapshot::sum(workers.iter().map(|w| &*w.counters)),
                    ports: port_counters(&ports.ports.current()),
                }
            }
            Request::AddPort { devargs, pod_port } => {
                return self.port_result(writer, ports.add(&devargs, pod_port));
            }
            Request::Conntrack { limit } => return self.conntrack(workers, limit),
            Request::RemovePort { pod_port } => {
                return self.port_result(writer, ports.remove(pod_port));
            }
        };
        writer.reclaim();
        match applied {
            Ok(generation) => Response::Ok { epoch, generation },
            Err(e) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Response::Error {
                    message: e.to_string(),
                }
            }
        }
    }
}

fn port_counters(set: &PortSet) -> Vec<PortCounters> {
    let one = |name: String, s: PortStats, role: &str, pod_port: Option<u16>| PortCounters {
        name,
        role: role.to_string(),
        pod_port,
        rx_packets: s.rx_packets,
        tx_packets: s.tx_packets,
        rx_bytes: s.rx_bytes,
        tx_bytes: s.tx_bytes,
        rx_missed: s.rx_missed,
        rx_errors: s.rx_errors,
        tx_errors: s.tx_errors,
    };
    let eth = |p: &Port, role: &str| one(p.name().to_string(), p.stats(), role, None);
    let mut v = vec![eth(&set.uplink, "uplink")];
    if let Some(h) = &set.host {
        v.push(eth(h, "host"));
    }
    for (i, p) in set.pods.iter().enumerate() {
        if let Some(p) = p {
            v.push(one(p.name(), p.stats(), "pod", u16::try_from(i).ok()));
        }
    }
    v
}

impl ControlServer {
    /// Asks every worker for its entries and waits (up to a second) for their answers.
    fn conntrack(&self, workers: &[WorkerHandle], limit: u32) -> Response {
        for w in workers {
            w.conntrack.request(limit);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let (mut total, mut flows) = (0, Vec::new());
        for w in workers {
            loop {
                if let Some((n, mut f)) = w.conntrack.take() {
                    total += n;
                    flows.append(&mut f);
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Response::Error {
                        message: "a worker did not answer the conntrack dump within 1 s".into(),
                    };
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        Response::Conntrack {
            epoch: self.epoch,
            total,
            flows,
        }
    }

    fn port_result(&self, writer: &TableWriter, r: Result<(), String>) -> Response {
        match r {
            Ok(()) => Response::Ok {
                epoch: self.epoch,
                generation: writer.generation(),
            },
            Err(message) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Response::Error { message }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
