//! Health-check NodePorts: what kube-proxy serves for a `LoadBalancer` Service with
//! `externalTrafficPolicy: Local` (its `healthCheckNodePort`), so that a cloud load balancer
//! sends the Service's traffic only to nodes that have a ready endpoint of it — the others
//! would drop it (`no_local_endpoint`).
//!
//! For each such Service the daemon listens on the health-check port of every node address
//! (`health_check_address`, 0.0.0.0 by default, as kube-proxy does) and answers any request
//! as kube-proxy's `pkg/proxy/healthcheck` does: `200` when the node has a ready endpoint of
//! the Service and the node's data plane is in sync, else `503`, with
//! `Content-Type: application/json`, `X-Content-Type-Options: nosniff` and the body
//! `{"service": {"namespace": …, "name": …}, "localEndpoints": N, "serviceProxyHealthy": B}`.
//! `localEndpoints` counts distinct ready endpoint addresses in this node's pod CIDR
//! (terminating ones do not count, as in kube-proxy: a node with only terminating endpoints
//! should leave the pool). `serviceProxyHealthy` is the daemon's own health: the fast path
//! reachable and holding the desired state.
//!
//! Requests from a load balancer reach the node's address on that port through the fast path:
//! a NodePort-range port with no NodePort frontend goes to the host path (`uplink.rs`), where
//! this listener is. One thread per listening Service (like kube-proxy's goroutine each); the
//! set is brought in line with the cluster state whenever it changes ([`HealthChecks::sync`]).
//! A port that cannot be bound (another program has it) is logged and counted, and tried again
//! every few seconds (`Daemon::sync_health_checks`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Response, Server};

use crate::cluster::Cluster;

/// One Service's health check as the cluster state asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// Its health-check NodePort.
    pub port: u16,
    /// Ready endpoint addresses on this node.
    pub local_endpoints: usize,
}

/// The health checks node `node` serves in `cluster`: Services with a health-check port
/// (which validation allows only with the Local policy). With the node unknown (no pod CIDR),
/// none has a local endpoint.
pub fn wanted(cluster: &Cluster, node: &str) -> Vec<Wanted> {
    let cidr = cluster.node(node).map(|n| n.pod_cidr);
    cluster
        .health_checked_services()
        .filter_map(|s| {
            let port = s.health_check_node_port?;
            let mut ips: Vec<Ipv4Addr> = s
                .endpoints
                .iter()
                .filter(|e| !e.terminating && cidr.is_some_and(|c| c.contains(e.ip)))
                .map(|e| e.ip)
                .collect();
            ips.sort_unstable();
            ips.dedup();
            Some(Wanted {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                port,
                local_endpoints: ips.len(),
            })
        })
        .collect()
}

/// The listening health checks of one node.
#[derive(Debug)]
pub struct HealthChecks {
    address: IpAddr,
    healthy: Arc<AtomicBool>,
    servers: BTreeMap<(String, String), Instance>,
    /// Ports that could not be bound (each attempt counted).
    pub bind_errors: AtomicU64,
}

/// One Service's listener.
struct Instance {
    port: u16,
    endpoints: Arc<AtomicUsize>,
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("port", &self.port)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Wakes the serving thread (its request loop ends), then the listener closes with
        // the last reference to the server.
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl HealthChecks {
    /// None listening yet; they will listen on `address` (0.0.0.0: every node address).
    pub fn new(address: IpAddr) -> HealthChecks {
        HealthChecks {
            address,
            healthy: Arc::new(AtomicBool::new(false)),
            servers: BTreeMap::new(),
            bind_errors: AtomicU64::new(0),
        }
    }

    /// Sets what `serviceProxyHealthy` says (and so whether any check can answer 200).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// How many Services are listened for.
    pub fn listening(&self) -> usize {
        self.servers.len()
    }

    /// Brings the listeners in line with `wanted`: closes those no longer wanted or moved to
    /// another port, opens the new ones, and updates every endpoint count. Returns how many
    /// could not be opened (the caller tries again later).
    pub fn sync(&mut self, wanted: &[Wanted]) -> usize {
        let by_key: BTreeMap<(String, String), &Wanted> = wanted
            .iter()
            .map(|w| ((w.namespace.clone(), w.name.clone()), w))
            .collect();
        // Closed first, so that a port moving from one Service to another can be bound.
        self.servers
            .retain(|k, i| by_key.get(k).is_some_and(|w| w.port == i.port));
        let mut failed = 0;
        for (key, w) in by_key {
            if let Some(i) = self.servers.get(&key) {
                i.endpoints.store(w.local_endpoints, Ordering::Relaxed);
                continue;
            }
            let service = format!("{}/{}", key.0, key.1);
            match self.open(&key, w) {
                Ok(i) => {
                    tracing::info!(%service, port = w.port, "health check listening");
                    self.servers.insert(key, i);
                }
                Err(e) => {
                    failed += 1;
                    self.bind_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%service, port = w.port, "cannot listen for the health check: {e}");
                }
            }
        }
        failed
    }

    fn open(&self, key: &(String, String), w: &Wanted) -> Result<Instance, String> {
        let server = Arc::new(
            Server::http(SocketAddr::new(self.address, w.port)).map_err(|e| e.to_string())?,
        );
        let endpoints = Arc::new(AtomicUsize::new(w.local_endpoints));
        let thread = {
            let (server, endpoints, healthy) = (
                Arc::clone(&server),
                Arc::clone(&endpoints),
                Arc::clone(&self.healthy),
            );
            let (namespace, name) = key.clone();
            std::thread::Builder::new()
                .name(format!("podlane-hc-{}", w.port))
                .spawn(move || {
                    for req in server.incoming_requests() {
                        let n = endpoints.load(Ordering::Relaxed);
                        let ok = healthy.load(Ordering::Relaxed);
                        let _ = req.respond(answer(&namespace, &name, n, ok));
                    }
                })
                .map_err(|e| e.to_string())?
        };
        Ok(Instance {
            port: w.port,
            endpoints,
            server,
            thread: Some(thread),
        })
    }
}

/// kube-proxy's answer for a Service with `n` local endpoints.
fn answer(
    namespace: &str,
    name: &str,
    n: usize,
    healthy: bool,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let body = serde_json::json!({
        "service": {"namespace": namespace, "name": name},
        "localEndpoints": n,
        "serviceProxyHealthy": healthy,
    });
    let status = if n != 0 && healthy { 200 } else { 503 };
    let mut r = Response::from_string(serde_json::to_string_pretty(&body).unwrap_or_default())
        .with_status_code(status);
    for (k, v) in [
        ("Content-Type", "application/json"),
        ("X-Content-Type-Options", "nosniff"),
    ] {
        if let Ok(h) = Header::from_bytes(k, v) {
            r.add_header(h);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterSpec;

    #[test]
    fn counts_distinct_ready_addresses_in_the_nodes_pod_cidr() {
        let spec = ClusterSpec::parse(
            r#"
service_cidr: 10.96.0.0/12
nodes:
  - {name: node-a, underlay_ip: 10.1.0.10, underlay_mac: "02:00:0a:01:00:0a", vtep_mac: "02:76:74:65:70:0a", pod_cidr: 10.244.1.0/24}
services:
  - namespace: default
    name: lb
    cluster_ip: 10.96.0.21
    ports: [{port: 80, protocol: TCP, node_port: 30082}]
    external_traffic_policy: local
    health_check_node_port: 32082
    endpoints:
      - {ip: 10.244.1.3}
      - {ip: 10.244.1.4, terminating: true}
      - {ip: 10.244.2.2}
  - namespace: default
    name: cluster-wide
    cluster_ip: 10.96.0.22
    ports: [{port: 80, protocol: TCP, node_port: 30083}]
    endpoints: [{ip: 10.244.1.3}]
"#,
        )
        .unwrap();
        let c = spec.to_cluster().unwrap();
        let want = |n| Wanted {
            namespace: "default".into(),
            name: "lb".into(),
            port: 32082,
            local_endpoints: n,
        };
        assert_eq!(wanted(&c, "node-a"), vec![want(1)]);
        // Another node (or one not known yet): none of them local.
        assert_eq!(wanted(&c, "node-b"), vec![want(0)]);
    }

    #[test]
    fn answers_as_kube_proxy() {
        let r = answer("default", "lb", 2, true);
        assert_eq!(r.status_code().0, 200);
        let r = answer("default", "lb", 0, true);
        assert_eq!(r.status_code().0, 503);
        let r = answer("default", "lb", 3, false);
        assert_eq!(r.status_code().0, 503);
    }
}
