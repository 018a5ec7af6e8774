//! The control daemon's core: CNI attachments (IPAM, pod port, interface, pod table), the
//! cluster state (file and API), and keeping the fast path's tables equal to the desired state.
//!
//! Locks, always taken in this order: `cluster` (read for pod changes, write for cluster
//! changes), then `sync`. A change is computed and pushed to the fast path under them, so deltas
//! reach the fast path in the order they were accepted, and a resync always sends the state
//! that includes every accepted change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fastpath::proto::{Request, Response};
use fastpath::tables::pods::PodSpec;
use fastpath::update::Update;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cluster::{Applied, Cluster, ClusterSpec, Edit, Mode, NodeSpec, Refused, ServiceObject};
use crate::cniwire::{code, Attachment, AttachmentKey, CniCommand, CniError, CniReply, CniRequest};
use crate::config::Config;
use crate::desired::{diff_applied, full_state};
use crate::fpclient::{FastPath, FpError};
use crate::healthcheck::{self, HealthChecks};
use crate::hostroutes::{self, HostRoutes};
use crate::netns::{self, PodIf};
use crate::store::{self, gateway, NewPod, PodRecord, PodState, Store, StoreError};

/// Latency histograms and counters the daemon exports on `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    /// CNI requests: (command, result code; 0 = success) → count.
    pub cni: Mutex<BTreeMap<(CniCommand, u32), u64>>,
    /// CNI request latency per command, microseconds.
    pub cni_latency: Mutex<BTreeMap<CniCommand, Histogram<u64>>>,
    /// Accepted change → fast-path table live, microseconds.
    pub sync_latency: Mutex<Histogram<u64>>,
    /// Full resyncs done.
    pub full_syncs: AtomicU64,
    /// Duration of the last full resync, microseconds.
    pub last_full_sync_us: AtomicU64,
    /// Failed pushes (fast path down or refusing).
    pub sync_errors: AtomicU64,
    /// The Kubernetes source's counters.
    pub kube: crate::kubernetes::KubeMetrics,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 100_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            cni: Mutex::default(),
            cni_latency: Mutex::default(),
            sync_latency: Mutex::new(histogram()),
            full_syncs: AtomicU64::new(0),
            last_full_sync_us: AtomicU64::new(0),
            sync_errors: AtomicU64::new(0),
            kube: Default::default(),
        }
    }
}

/// Locks `m`; a poisoned lock's data is used as it is (a request thread that panicked must not
/// take the metrics and the sync state down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    fn cni_done(&self, cmd: CniCommand, code: u32, took: Duration) {
        *lock(&self.cni).entry((cmd, code)).or_default() += 1;
        let us = took.as_micros().clamp(1, 100_000_000) as u64;
        let _ = lock(&self.cni_latency)
            .entry(cmd)
            .or_insert_with(histogram)
            .record(us);
    }

    fn synced(&self, took: Duration) {
        let us = took.as_micros().clamp(1, 100_000_000) as u64;
        let _ = lock(&self.sync_latency).record(us);
    }
}

/// Where the fast path stands.
#[derive(Debug, Default)]
struct SyncState {
    /// The epoch of the fast path whose tables equal the desired state (None: not synced).
    epoch: Option<u64>,
    /// A change could not be pushed: the next contact does a full resync.
    dirty: bool,
    /// Pod ports released while the fast path was unreachable: removed at the next contact.
    stale_ports: BTreeSet<u16>,
}

/// What `/v1/status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Node name.
    pub node: String,
    /// Whether the node is in the cluster state.
    pub node_known: bool,
    /// Fast-path epoch in sync, if any.
    pub fastpath_epoch: Option<u64>,
    /// Pending resync.
    pub dirty: bool,
    /// Store generation.
    pub generation: u64,
    /// Pods attached.
    pub pods: usize,
    /// Full resyncs.
    pub full_syncs: u64,
    /// Last full resync, µs.
    pub last_full_sync_us: u64,
    /// Sync latency p50/p99/max, µs.
    pub sync_latency_us: [u64; 3],
}

fn invalid(e: crate::cluster::ClusterError) -> ChangeError {
    ChangeError::Invalid(e.to_string())
}

/// Why a cluster change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Invalid.
    #[error("{0}")]
    Invalid(String),
    /// The fast path refused it (e.g. a capacity): nothing changed.
    #[error("{0}")]
    Refused(String),
    /// Persisting failed: nothing changed.
    #[error("{0}")]
    Store(String),
    /// No such object.
    #[error("not found")]
    NotFound,
}

/// The daemon.
#[derive(Debug)]
pub struct Daemon {
    cfg: Config,
    store: Store,
    cluster: RwLock<Cluster>,
    sync: Mutex<SyncState>,
    fp: FastPath,
    /// Exported counters and latencies.
    pub metrics: Metrics,
    /// The cluster file text last written or read, so the watcher skips its own writes.
    file_seen: Mutex<Option<String>>,
    /// The cluster file's (modification time, length) when last read: an unchanged file is
    /// not read again.
    file_stamp: Mutex<Option<(SystemTime, u64)>>,
    /// API edits not yet written back to the cluster file.
    file_dirty: AtomicBool,
    /// When the cluster file was last written back.
    file_written: Mutex<Option<Instant>>,
    /// Changes of the cluster state in force (each applied change counts one).
    changes: AtomicU64,
    /// The health-check NodePorts served.
    health: Mutex<HealthState>,
    /// The node kernel's routes through the host path, if the daemon keeps them.
    routes: Mutex<RouteState>,
}

/// The host routes (`hostroutes.rs`) and when they were last brought in line.
#[derive(Debug)]
struct RouteState {
    routes: Option<HostRoutes>,
    /// The change count they were synced at.
    synced: Option<u64>,
    /// When to read the kernel's routes again (a fast-path restart takes its TAP, and the
    /// routes through it, away without a cluster change).
    verify_at: Option<Instant>,
    /// Syncs that failed.
    errors: u64,
    /// The last failure, logged once until it changes.
    last_error: Option<String>,
}

/// How often the host routes are checked against the kernel's, and a failed sync tried again.
const ROUTES_VERIFY: Duration = Duration::from_secs(5);

/// The health-check NodePorts and when they were brought in line with the cluster state.
#[derive(Debug)]
struct HealthState {
    checks: HealthChecks,
    /// The change count they were synced at.
    synced: Option<u64>,
    /// When to try again ports that could not be opened.
    retry_at: Option<Instant>,
}

/// How long a health-check port that could not be opened waits for its next try.
const HEALTH_RETRY: Duration = Duration::from_secs(5);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn cni_err(code: u32, msg: impl Into<String>) -> CniError {
    CniError::new(code, msg)
}

impl Daemon {
    /// Opens the state and loads the cluster state: the file when configured (it wins: it is
    /// the declarative source), else what the database holds, else an empty cluster.
    pub fn open(cfg: Config) -> Result<Daemon, String> {
        let store = Store::open(&cfg.db_path()).map_err(|e| e.to_string())?;
        let stored = store.cluster().map_err(|e| e.to_string())?;
        let seen;
        let mut write_back = false;
        let file = match &cfg.cluster_file {
            Some(p) if p.exists() => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("cluster file {}: {e}", p.display()))?,
            ),
            _ => None,
        };
        // The file wins (it is the declarative source) if it was edited since the daemon last
        // wrote or read it; if not, the database may hold API edits not yet written back to it.
        let file_edited = match &file {
            Some(text) => {
                stored.is_none()
                    || store.cluster_file_digest().map_err(|e| e.to_string())?
                        != Some(store::digest(text))
            }
            None => false,
        };
        let cluster = match (file, &cfg.cluster_file) {
            (Some(text), Some(p)) if file_edited => {
                let c = ClusterSpec::parse(&text)
                    .and_then(|spec| spec.to_cluster())
                    .map_err(|e| format!("cluster file {}: {e}", p.display()))?;
                store
                    .set_cluster_file_digest(store::digest(&text))
                    .map_err(|e| e.to_string())?;
                seen = Some(text);
                c
            }
            (file, _) => {
                write_back = file.is_some();
                seen = file;
                match stored {
                    // What was stored was valid when it was stored; should a rule have become
                    // stricter since, the objects that break it are left out (and logged)
                    // rather than the daemon refusing to start.
                    Some(s) => {
                        let mut c = Cluster::empty(s.service_cidr, s.node_port_range);
                        let mut edits: Vec<Edit> = s.nodes.into_iter().map(Edit::SetNode).collect();
                        edits.extend(s.services.into_iter().map(Edit::SetService));
                        let (_, refused) = c
                            .apply(edits, Mode::LeaveOut, &|_| Ok(()))
                            .map_err(|e| format!("stored cluster state: {e}"))?;
                        for r in refused {
                            tracing::warn!(
                                "stored cluster state: {} left out: {}",
                                r.object,
                                r.why
                            );
                        }
                        c
                    }
                    None => Cluster::empty(
                        "10.96.0.0/12"
                            .parse()
                            .map_err(|e| format!("default service CIDR: {e:?}"))?,
                        [30000, 32767],
                    ),
                }
            }
        };
        store.set_cluster(&cluster).map_err(|e| e.to_string())?;
        let fp = FastPath::new(cfg.fastpath_socket.clone(), Duration::from_secs(10));
        let health_address = cfg.health_check_address;
        let host_interface = cfg.host_interface.clone();
        let d = Daemon {
            cfg,
            store,
            cluster: RwLock::new(cluster),
            sync: Mutex::default(),
            fp,
            metrics: Metrics::default(),
            file_seen: Mutex::new(seen),
            file_stamp: Mutex::new(None),
            file_dirty: AtomicBool::new(write_back),
            file_written: Mutex::new(None),
            changes: AtomicU64::new(0),
            health: Mutex::new(HealthState {
                checks: HealthChecks::new(health_address),
                synced: None,
                retry_at: None,
            }),
            routes: Mutex::new(RouteState {
                routes: host_interface.as_deref().map(HostRoutes::new),
                synced: None,
                verify_at: None,
                errors: 0,
                last_error: None,
            }),
        };
        if let Some(n) = d.cluster().node(&d.cfg.node_name) {
            d.check_cidr_matches(n)?;
        }
        Ok(d)
    }

    fn check_cidr_matches(&self, n: &NodeSpec) -> Result<(), String> {
        let pods = self.store.pods().map_err(|e| e.to_string())?;
        if let Some(p) = pods.iter().find(|p| !n.pod_cidr.contains(p.ip)) {
            return Err(format!(
                "node {}'s pod CIDR is {} but pod {} has {}: a node's pod CIDR cannot change while pods use it",
                n.name,
                n.pod_cidr,
                p.key.store_key(),
                p.ip
            ));
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The cluster state now (a read guard).
    pub fn cluster(&self) -> std::sync::RwLockReadGuard<'_, Cluster> {
        self.cluster.read().unwrap_or_else(|p| p.into_inner())
    }

    fn cluster_mut(&self) -> std::sync::RwLockWriteGuard<'_, Cluster> {
        self.cluster.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The fast-path client.
    pub fn fastpath(&self) -> &FastPath {
        &self.fp
    }

    fn desired_pods(&self) -> Result<Vec<PodSpec>, StoreError> {
        Ok(self
            .store
            .pods()?
            .into_iter()
            .filter(|p| p.state == PodState::Ready)
            .map(|p| PodSpec {
                ip: p.ip,
                mac: p.mac,
                port: p.port,
            })
            .collect())
    }

    // ---- sync ------------------------------------------------------------------------------

    /// Pushes `updates` (already part of the desired state the caller holds in `cluster`).
    fn push(
        &self,
        s: &mut SyncState,
        cluster: &Cluster,
        updates: Vec<Update>,
    ) -> Result<(), FpError> {
        if updates.is_empty() {
            return Ok(());
        }
        if s.dirty || s.epoch.is_none() {
            return self.resync_locked(s, cluster);
        }
        match self.fp.ok(&Request::Apply { updates }) {
            Ok((epoch, _)) if Some(epoch) == s.epoch => Ok(()),
            Ok(_) => self.resync_locked(s, cluster),
            Err(e) => {
                self.metrics.sync_errors.fetch_add(1, Ordering::Relaxed);
                if matches!(e, FpError::Down(..)) {
                    s.dirty = true;
                }
                Err(e)
            }
        }
    }

    /// Brings the fast path to the desired state: after a fast-path restart every ready pod's
    /// TAP is re-created in its netns; stale ports are removed; then one snapshot, which the
    /// fast path applies as a difference (live flows are not disturbed).
    fn resync_locked(&self, s: &mut SyncState, cluster: &Cluster) -> Result<(), FpError> {
        let t0 = Instant::now();
        let (epoch, _) = self.fp.ok(&Request::Hello).inspect_err(|_| {
            s.dirty = true;
        })?;
        let known = s.epoch.or(self.store.fastpath_epoch().ok().flatten());
        if known != Some(epoch) {
            self.reattach_all(cluster);
        }
        for p in std::mem::take(&mut s.stale_ports) {
            let _ = self.fp.call(&Request::RemovePort { pod_port: p });
        }
        let pods = self
            .desired_pods()
            .map_err(|e| FpError::Unexpected(e.to_string()))?;
        let state = full_state(cluster, &self.cfg.node_name, pods);
        match self.fp.ok(&Request::Snapshot { state }) {
            Ok(_) => {}
            Err(e) => {
                s.dirty = true;
                self.metrics.sync_errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
        let _ = self.store.set_fastpath_epoch(epoch);
        s.epoch = Some(epoch);
        s.dirty = false;
        self.metrics.full_syncs.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .last_full_sync_us
            .store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        tracing::info!(
            epoch,
            took_us = t0.elapsed().as_micros() as u64,
            "fast path resynced"
        );
        Ok(())
    }

    /// Re-creates every ready pod's port and interface (the fast path restarted: its TAPs,
    /// and with them the pods' interfaces, went with the old process).
    fn reattach_all(&self, cluster: &Cluster) {
        let Some(node) = cluster.node(&self.cfg.node_name) else {
            return;
        };
        let Ok(pods) = self.store.pods() else { return };
        for p in pods.iter().filter(|p| p.state == PodState::Ready) {
            let Some(ns) = p.netns.as_deref().filter(|n| netns::netns_exists(n)) else {
                continue;
            };
            // Whatever is left under the pod's interface name goes first (the old TAP went
            // with the old process; anything else there would block the new one).
            let _ = netns::detach(ns, &p.key.ifname);
            let add = self.fp.call(&Request::AddPort {
                devargs: netns::tap_devargs(&p.key.ifname, ns),
                pod_port: p.port,
            });
            if let Err(e) = add {
                tracing::warn!(pod = %p.key.store_key(), "re-creating the pod port: {e}");
                continue;
            }
            let pif = self.pod_if(p, ns, node);
            if let Err(e) = netns::attach(&pif) {
                tracing::warn!(pod = %p.key.store_key(), "re-plumbing the pod: {e}");
            }
        }
    }

    /// Periodic: detects a restarted or returned fast path and resyncs.
    pub fn tick(&self) {
        let cluster = self.cluster();
        let mut s = lock(&self.sync);
        let need = match self.fp.ok(&Request::Hello) {
            Ok((epoch, _)) => s.dirty || s.epoch != Some(epoch),
            Err(_) => {
                s.dirty = true;
                false
            }
        };
        if need {
            if let Err(e) = self.resync_locked(&mut s, &cluster) {
                tracing::warn!("resync: {e}");
            }
        }
    }

    /// Brings the health-check NodePorts (`healthcheck.rs`) in line with the cluster state,
    /// when it changed since the last call (or a port could not be opened a while ago), and
    /// their `serviceProxyHealthy` with the fast path's sync state. Periodic (the daemon's main
    /// loop), never on a request path.
    pub fn sync_health_checks(&self) {
        let healthy = {
            let s = lock(&self.sync);
            s.epoch.is_some() && !s.dirty
        };
        let mut h = lock(&self.health);
        h.checks.set_healthy(healthy);
        let now = self.changes.load(Ordering::Relaxed);
        let retry = h.retry_at.is_some_and(|t| Instant::now() >= t);
        if h.synced != Some(now) || retry {
            let wanted = healthcheck::wanted(&self.cluster(), &self.cfg.node_name);
            let failed = h.checks.sync(&wanted);
            h.synced = Some(now);
            h.retry_at = (failed > 0).then(|| Instant::now() + HEALTH_RETRY);
        }
    }

    /// Brings the node kernel's routes through the host path (`hostroutes.rs`) in line with the
    /// cluster state when it changed since the last call, and checks them against the kernel's
    /// every few seconds (which also retries a failed sync). Periodic (the daemon's main loop);
    /// nothing without `host_interface`.
    pub fn sync_host_routes(&self) {
        let mut guard = lock(&self.routes);
        let r = &mut *guard;
        let Some(routes) = r.routes.as_mut() else {
            return;
        };
        let now = self.changes.load(Ordering::Relaxed);
        let verify = r.verify_at.is_none_or(|t| Instant::now() >= t);
        if r.synced == Some(now) && !verify {
            return;
        }
        if verify {
            routes.forget();
            r.verify_at = Some(Instant::now() + ROUTES_VERIFY);
        }
        let want = hostroutes::wanted(&self.cluster(), &self.cfg.node_name);
        r.synced = Some(now);
        match routes.sync(&want) {
            Ok(()) => {
                if r.last_error.take().is_some() {
                    tracing::info!(routes = routes.len(), "host routes in place again");
                }
            }
            Err(e) => {
                r.errors += 1;
                if r.last_error.as_ref() != Some(&e) {
                    tracing::warn!(error = %e, "host routes: sync failed (tried again every 5 s)");
                }
                r.last_error = Some(e);
            }
        }
    }

    /// The host routes installed (as the last sync left them) and the syncs that failed; `None`
    /// without `host_interface`.
    pub fn host_routes(&self) -> Option<(usize, u64)> {
        let r = lock(&self.routes);
        r.routes.as_ref().map(|h| (h.len(), r.errors))
    }

    /// How many health checks listen, and the attempts to listen that failed so far.
    pub fn health_checks(&self) -> (usize, u64) {
        let h = lock(&self.health);
        (
            h.checks.listening(),
            h.checks.bind_errors.load(Ordering::Relaxed),
        )
    }

    /// Forces a full resync now.
    pub fn resync(&self) -> Result<(), String> {
        let cluster = self.cluster();
        let mut s = lock(&self.sync);
        self.resync_locked(&mut s, &cluster)
            .map_err(|e| e.to_string())
    }

    /// The daemon's status.
    pub fn status(&self) -> Status {
        let node_known = self.cluster().node(&self.cfg.node_name).is_some();
        let s = lock(&self.sync);
        let h = lock(&self.metrics.sync_latency);
        Status {
            node: self.cfg.node_name.clone(),
            node_known,
            fastpath_epoch: s.epoch,
            dirty: s.dirty,
            generation: self.store.generation().unwrap_or(0),
            pods: self.store.pods().map_or(0, |p| p.len()),
            full_syncs: self.metrics.full_syncs.load(Ordering::Relaxed),
            last_full_sync_us: self.metrics.last_full_sync_us.load(Ordering::Relaxed),
            sync_latency_us: [h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()],
        }
    }

    // ---- cluster changes -------------------------------------------------------------------

    /// Replaces the whole cluster state (the file changed, or `PUT /v1/cluster`).
    pub fn set_cluster(&self, new: ClusterSpec, write_file: bool) -> Result<(), ChangeError> {
        self.change(write_file, |c, check| {
            let a = c.replace(&new, check).map_err(invalid)?;
            Ok((a, Vec::new()))
        })
        .map(drop)
    }

    /// Adds or replaces a Service.
    pub fn upsert_service(&self, svc: ServiceObject) -> Result<(), ChangeError> {
        self.apply_edits(vec![Edit::SetService(svc)], Mode::Strict)
            .map(drop)
    }

    /// Removes a Service.
    pub fn remove_service(&self, namespace: &str, name: &str) -> Result<(), ChangeError> {
        let edit = Edit::RemoveService(namespace.into(), name.into());
        self.change(true, |c, check| {
            if c.service(namespace, name).is_none() {
                return Err(ChangeError::NotFound);
            }
            c.apply(vec![edit], Mode::Strict, check).map_err(invalid)
        })
        .map(drop)
    }

    /// Adds or replaces a node.
    pub fn upsert_node(&self, node: NodeSpec) -> Result<(), ChangeError> {
        self.apply_edits(vec![Edit::SetNode(node)], Mode::Strict)
            .map(drop)
    }

    /// Removes a node.
    pub fn remove_node(&self, name: &str) -> Result<(), ChangeError> {
        self.change(true, |c, check| {
            if c.node(name).is_none() {
                return Err(ChangeError::NotFound);
            }
            c.apply(vec![Edit::RemoveNode(name.into())], Mode::Strict, check)
                .map_err(invalid)
        })
        .map(drop)
    }

    /// Applies a batch of object edits as one change ([`Cluster::apply`]); with
    /// [`Mode::LeaveOut`], returns the edits left out. Costs O(the objects edited): the
    /// check, the fast-path difference and the database write look at those objects only.
    pub fn apply_edits(&self, edits: Vec<Edit>, mode: Mode) -> Result<Vec<Refused>, ChangeError> {
        self.change(true, |c, check| {
            c.apply(edits, mode, check).map_err(invalid)
        })
    }

    /// One cluster change: edit the state in place (the edit validates), push the difference
    /// to the fast path, persist the objects changed; any refusal undoes the edit, leaving
    /// the previous state in force everywhere.
    fn change(
        &self,
        write_file: bool,
        edit: impl FnOnce(
            &mut Cluster,
            &dyn Fn(&NodeSpec) -> Result<(), String>,
        ) -> Result<(Applied, Vec<Refused>), ChangeError>,
    ) -> Result<Vec<Refused>, ChangeError> {
        let mut cur = self.cluster_mut();
        let me = self.cfg.node_name.as_str();
        let check = |n: &NodeSpec| {
            if n.name == me {
                self.check_cidr_matches(n)
            } else {
                Ok(())
            }
        };
        let (applied, refused) = edit(&mut cur, &check)?;
        if applied.is_empty() {
            return Ok(refused);
        }
        let updates = diff_applied(&cur, &applied, me);
        let accepted = Instant::now();
        {
            let mut s = lock(&self.sync);
            match self.push(&mut s, &cur, updates) {
                Ok(()) => {}
                Err(FpError::Refused(m)) | Err(FpError::Unexpected(m)) => {
                    cur.undo(applied);
                    return Err(ChangeError::Refused(m));
                }
                // Down: accepted; the fast path gets it at its next contact (resync).
                Err(FpError::Down(..)) => {}
            }
            if !s.dirty {
                self.metrics.synced(accepted.elapsed());
            }
        }
        if let Err(e) = self.store.write_change(&cur, &applied) {
            // Not persisted, so not in force: back to the stored state, and the fast path,
            // which may have the change already, is brought back to it at the next contact.
            cur.undo(applied);
            lock(&self.sync).dirty = true;
            return Err(ChangeError::Store(e.to_string()));
        }
        self.changes.fetch_add(1, Ordering::Relaxed);
        if write_file && self.cfg.cluster_file.is_some() {
            // Written back off the request path ([`Daemon::poll_cluster_file`]): the file is a
            // mirror of the database, and writing it is O(cluster).
            self.file_dirty.store(true, Ordering::Relaxed);
        }
        Ok(refused)
    }

    fn write_cluster_file(&self, spec: &ClusterSpec) {
        let Some(path) = &self.cfg.cluster_file else {
            return;
        };
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let text = if json {
            serde_json::to_string_pretty(spec).map(|t| t + "\n").ok()
        } else {
            serde_yaml::to_string(spec).ok()
        };
        let Some(text) = text else { return };
        let tmp = path.with_extension("podlane-tmp");
        let r = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, path));
        match r {
            Ok(()) => {
                if let Err(e) = self.store.set_cluster_file_digest(store::digest(&text)) {
                    tracing::warn!("recording the cluster file's digest: {e}");
                }
                *lock(&self.file_seen) = Some(text);
            }
            Err(e) => tracing::warn!("writing {}: {e}", path.display()),
        }
        *lock(&self.file_written) = Some(Instant::now());
    }

    /// Writes the API's edits back to the cluster file now, if any are pending.
    pub fn flush_cluster_file(&self) {
        if self.file_dirty.swap(false, Ordering::Relaxed) {
            // A copy, so the serialisation does not hold up changes.
            let spec = self.cluster().spec();
            self.write_cluster_file(&spec);
        }
    }

    /// Checks the cluster file for a change (the watcher calls this a few times a second).
    /// An invalid file is refused whole and logged; the previous state stays. The file's own
    /// change wins over API edits not yet written back; otherwise those are written back here,
    /// at most once a second (a stream of edits is one write).
    pub fn poll_cluster_file(&self) -> Option<Result<(), String>> {
        let path: &PathBuf = self.cfg.cluster_file.as_ref()?;
        if let Some(r) = self.read_cluster_file(path) {
            self.file_dirty.store(false, Ordering::Relaxed);
            return Some(r);
        }
        let last = *lock(&self.file_written);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            self.flush_cluster_file();
        }
        None
    }

    fn read_cluster_file(&self, path: &Path) -> Option<Result<(), String>> {
        let meta = std::fs::metadata(path).ok()?;
        let stamp = (meta.modified().ok()?, meta.len());
        if *lock(&self.file_stamp) == Some(stamp) {
            return None;
        }
        let text = std::fs::read_to_string(path).ok()?;
        *lock(&self.file_stamp) = Some(stamp);
        if lock(&self.file_seen).as_deref() == Some(text.as_str()) {
            return None;
        }
        *lock(&self.file_seen) = Some(text.clone());
        if let Err(e) = self.store.set_cluster_file_digest(store::digest(&text)) {
            tracing::warn!("recording the cluster file's digest: {e}");
        }
        let r = ClusterSpec::parse(&text)
            .map_err(|e| e.to_string())
            .and_then(|spec| self.set_cluster(spec, false).map_err(|e| e.to_string()));
        match &r {
            Ok(()) => tracing::info!("cluster file {} applied", path.display()),
            Err(e) => tracing::error!(
                "cluster file {} refused, previous state kept: {e}",
                path.display()
            ),
        }
        Some(r)
    }

    // ---- CNI -------------------------------------------------------------------------------

    /// Serves one CNI request.
    pub fn handle_cni(&self, req: CniRequest) -> CniReply {
        let t0 = Instant::now();
        let cmd = req.command;
        let r = match cmd {
            CniCommand::Add => self.cni_add(req).map(CniReply::Added),
            CniCommand::Del => self.cni_del(&req).map(|()| CniReply::Done),
            CniCommand::Check => self.cni_check(&req).map(|()| CniReply::Done),
            CniCommand::Gc => self.cni_gc(&req).map(|()| CniReply::Done),
            CniCommand::Status => self.cni_status().map(|()| CniReply::Done),
        };
        let reply = r.unwrap_or_else(CniReply::Error);
        let c = match &reply {
            CniReply::Error(e) => e.code,
            _ => 0,
        };
        self.metrics.cni_done(cmd, c, t0.elapsed());
        reply
    }

    fn key(req: &CniRequest) -> Result<AttachmentKey, CniError> {
        if req.container_id.is_empty() || req.container_id.contains('/') {
            return Err(cni_err(code::INVALID_ENV, "invalid container ID"));
        }
        // '@' separates the name from the netns in the fast path's `tap:IFNAME@NETNS`.
        if req.ifname.is_empty()
            || req.ifname.len() > 15
            || req.ifname.contains(['/', '@', ':'])
            || req.ifname.chars().any(char::is_whitespace)
        {
            return Err(cni_err(
                code::INVALID_ENV,
                format!(
                    "invalid interface name {:?} (1-15 bytes, no '/', '@', ':' or white space)",
                    req.ifname
                ),
            ));
        }
        Ok(AttachmentKey {
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
        })
    }

    fn pod_if<'a>(&self, p: &'a PodRecord, ns: &'a str, node: &NodeSpec) -> PodIf<'a> {
        PodIf {
            netns: ns,
            ifname: &p.key.ifname,
            mac: p.mac,
            mtu: self.cfg.pod_mtu,
            ip: p.ip,
            prefix_len: node.pod_cidr.prefix_len(),
            gateway: gateway(&node.pod_cidr),
        }
    }

    fn attachment(&self, p: &PodRecord, ns: &str, node: &NodeSpec) -> Attachment {
        Attachment {
            ifname: p.key.ifname.clone(),
            mac: p.mac.to_string(),
            sandbox: ns.to_string(),
            mtu: self.cfg.pod_mtu,
            ip: p.ip,
            prefix_len: node.pod_cidr.prefix_len(),
            gateway: gateway(&node.pod_cidr),
        }
    }

    fn cni_add(&self, req: CniRequest) -> Result<Attachment, CniError> {
        let key = Self::key(&req)?;
        let ns = req
            .netns
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| cni_err(code::INVALID_ENV, "CNI_NETNS is required for ADD"))?;
        if !netns::netns_exists(&ns) {
            return Err(cni_err(
                code::UNKNOWN_CONTAINER,
                format!("network namespace {ns} does not exist"),
            ));
        }
        // A repeated ADD for the same attachment replaces the old one (the runtime lost track
        // of it); nothing of the old one may leak.
        if self
            .store
            .pod(&key)
            .map_err(|e| cni_err(code::IO_FAILURE, e.to_string()))?
            .is_some()
        {
            self.cni_del(&req)?;
        }
        let cluster = self.cluster();
        let node = cluster.node(&self.cfg.node_name).cloned().ok_or_else(|| {
            cni_err(
                code::TRY_AGAIN,
                format!(
                    "node {} is not in the cluster state yet (no pod CIDR)",
                    self.cfg.node_name
                ),
            )
        })?;
        let rec = self
            .store
            .allocate(
                NewPod {
                    key: key.clone(),
                    network: req.network.clone(),
                    netns: Some(ns.clone()),
                    pod_namespace: req.pod_namespace.clone(),
                    pod_name: req.pod_name.clone(),
                },
                &node.pod_cidr,
                self.cfg.max_pod_ports,
                now_secs(),
            )
            .map_err(|e| match e {
                StoreError::IpExhausted(_) => cni_err(code::IP_EXHAUSTED, e.to_string()),
                StoreError::PortsExhausted(_) => cni_err(code::FASTPATH_FAILURE, e.to_string()),
                _ => cni_err(code::IO_FAILURE, e.to_string()),
            })?;
        match self.attach(&rec, &ns, &node, &cluster) {
            Ok(()) => Ok(self.attachment(&rec, &ns, &node)),
            Err(e) => {
                // Roll back: the port (and with it the TAP wherever it is), then the record.
                let _ = self.fp.call(&Request::RemovePort { pod_port: rec.port });
                let _ = self.store.release(&key);
                Err(e)
            }
        }
    }

    fn attach(
        &self,
        rec: &PodRecord,
        ns: &str,
        node: &NodeSpec,
        cluster: &Cluster,
    ) -> Result<(), CniError> {
        let fp_err = |e: FpError| match e {
            FpError::Down(..) => cni_err(code::TRY_AGAIN, e.to_string()),
            _ => cni_err(code::FASTPATH_FAILURE, e.to_string()),
        };
        let add = Request::AddPort {
            devargs: netns::tap_devargs(&rec.key.ifname, ns),
            pod_port: rec.port,
        };
        match self.fp.ok(&add) {
            Ok(_) => {}
            // A port left by a daemon killed mid-ADD: remove it and try once more.
            Err(FpError::Refused(m)) if m.contains("already attached") => {
                let _ = self.fp.call(&Request::RemovePort { pod_port: rec.port });
                self.fp.ok(&add).map_err(fp_err)?;
            }
            Err(e) => return Err(fp_err(e)),
        }
        let pif = self.pod_if(rec, ns, node);
        netns::attach(&pif).map_err(|e| {
            let c = if netns::netns_exists(ns) {
                code::IO_FAILURE
            } else {
                code::UNKNOWN_CONTAINER
            };
            cni_err(c, "cannot configure the pod interface").details(e)
        })?;
        self.store
            .set_ready(&rec.key)
            .map_err(|e| cni_err(code::IO_FAILURE, e.to_string()))?;
        let mut s = lock(&self.sync);
        let spec = PodSpec {
            ip: rec.ip,
            mac: rec.mac,
            port: rec.port,
        };
        self.push(&mut s, cluster, vec![Update::AddPod(spec)])
            .map_err(fp_err)
    }

    fn cni_del(&self, req: &CniRequest) -> Result<(), CniError> {
        let key = Self::key(req)?;
        let Some(rec) = self
            .store
            .pod(&key)
            .map_err(|e| cni_err(code::IO_FAILURE, e.to_string()))?
        else {
            return Ok(()); // unknown container or repeated DEL: done
        };
        self.release(rec)
    }

    /// Tears an attachment down: out of the desired state first (so no resync brings it
    /// back), then the pod table entry and the port (its TAP, wherever it is, goes with it),
    /// the interface if anything is left, and last the IP and port id — so neither is handed
    /// to a new pod while the fast path still uses it.
    fn release(&self, rec: PodRecord) -> Result<(), CniError> {
        let io = |e: StoreError| cni_err(code::IO_FAILURE, e.to_string());
        self.store
            .set_state(&rec.key, PodState::Releasing)
            .map_err(io)?;
        {
            let cluster = self.cluster();
            let mut s = lock(&self.sync);
            match self.push(&mut s, &cluster, vec![Update::RemovePod { ip: rec.ip }]) {
                // Refused: it was never programmed (a Pending record).
                Ok(()) | Err(FpError::Refused(_)) => {}
                // The next contact resyncs without it.
                Err(_) => s.dirty = true,
            }
            match self.fp.call(&Request::RemovePort { pod_port: rec.port }) {
                Ok(_) | Err(FpError::Refused(_)) => {}
                Err(_) => {
                    s.stale_ports.insert(rec.port);
                    s.dirty = true;
                }
            }
        }
        if let Some(ns) = &rec.netns {
            let _ = netns::detach(ns, &rec.key.ifname);
        }
        self.store.release(&rec.key).map_err(io)?;
        Ok(())
    }

    fn cni_check(&self, req: &CniRequest) -> Result<(), CniError> {
        let key = Self::key(req)?;
        let rec = self
            .store
            .pod(&key)
            .map_err(|e| cni_err(code::IO_FAILURE, e.to_string()))?
            .ok_or_else(|| {
                cni_err(
                    code::UNKNOWN_CONTAINER,
                    format!("no attachment {}", key.store_key()),
                )
            })?;
        if rec.state != PodState::Ready {
            return Err(cni_err(
                code::CHECK_FAILED,
                "the attachment is not complete",
            ));
        }
        let ns = req.netns.clone().unwrap_or_default();
        if rec.netns.as_deref() != Some(ns.as_str()) {
            return Err(cni_err(
                code::CHECK_FAILED,
                format!("attachment was made in {:?}, not {ns}", rec.netns),
            ));
        }
        let cluster = self.cluster();
        let node = cluster
            .node(&self.cfg.node_name)
            .ok_or_else(|| cni_err(code::TRY_AGAIN, "node not in the cluster state"))?;
        let want = self.attachment(&rec, &ns, node);
        if let Some(exp) = &req.expect {
            // An empty MAC means the result did not record one (the plugin's convention).
            if exp.ip != want.ip
                || (!exp.mac.is_empty() && !exp.mac.eq_ignore_ascii_case(&want.mac))
                || exp.prefix_len != want.prefix_len
            {
                return Err(cni_err(
                    code::CHECK_FAILED,
                    format!(
                        "prevResult says {}/{} {} but podlane attached {}/{} {}",
                        exp.ip, exp.prefix_len, exp.mac, want.ip, want.prefix_len, want.mac
                    ),
                ));
            }
        }
        netns::check(&self.pod_if(&rec, &ns, node))
            .map_err(|e| cni_err(code::CHECK_FAILED, "pod interface check failed").details(e))?;
        // The fast path must hold the pod.
        match self.fp.call(&Request::GetState) {
            Ok(Response::State { state, .. }) => {
                if !state
                    .pods
                    .iter()
                    .any(|p| p.ip == rec.ip && p.mac == rec.mac && p.port == rec.port)
                {
                    return Err(cni_err(
                        code::CHECK_FAILED,
                        format!("the fast path has no pod table entry for {}", rec.ip),
                    ));
                }
                Ok(())
            }
            Ok(other) => Err(cni_err(code::FASTPATH_FAILURE, format!("{other:?}"))),
            Err(e) => Err(cni_err(code::TRY_AGAIN, e.to_string())),
        }
    }

    fn cni_gc(&self, req: &CniRequest) -> Result<(), CniError> {
        let keep: BTreeSet<&AttachmentKey> = req.valid_attachments.iter().collect();
        let pods = self
            .store
            .pods()
            .map_err(|e| cni_err(code::IO_FAILURE, e.to_string()))?;
        let mut failed = Vec::new();
        for p in pods {
            if p.network == req.network && !keep.contains(&p.key) {
                let k = p.key.store_key();
                if let Err(e) = self.release(p) {
                    failed.push(format!("{k}: {e}"));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(
                cni_err(code::IO_FAILURE, "GC could not release every attachment")
                    .details(failed.join("; ")),
            )
        }
    }

    fn cni_status(&self) -> Result<(), CniError> {
        if self.cluster().node(&self.cfg.node_name).is_none() {
            return Err(cni_err(
                code::NOT_AVAILABLE,
                format!("node {} is not in the cluster state", self.cfg.node_name),
            ));
        }
        self.fp.ok(&Request::Hello).map_err(|e| {
            cni_err(
                51,
                "the fast path is not reachable; pods may have limited connectivity",
            )
            .details(e.to_string())
        })?;
        Ok(())
    }
}
