//! The HTTP API (JSON) and Prometheus `/metrics`.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | 200 when the daemon runs |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/v1/status` | sync state, generation, latencies |
//! | GET, PUT | `/v1/cluster` | the whole cluster state (PUT: YAML or JSON, replaces it) |
//! | GET | `/v1/nodes` | nodes |
//! | PUT, DELETE | `/v1/nodes/{name}` | one node (PUT body: a node) |
//! | GET | `/v1/services` | Services with their endpoints |
//! | PUT, DELETE | `/v1/services/{namespace}/{name}` | one Service |
//! | GET | `/v1/pods` | this node's attachments |
//! | GET | `/v1/ipam` | the pod CIDR, allocated and free addresses |
//! | GET | `/v1/fastpath/stats` | the fast path's counters (per drop reason, event, port) |
//! | GET | `/v1/fastpath/state` | the tables the fast path holds |
//! | GET | `/v1/fastpath/conntrack?limit=N` | connection-tracking entries (default 1000 per worker) |
//! | POST | `/v1/resync` | forces a full resync |
//!
//! Errors are `{"error": "..."}` with 400 (invalid), 404, 409 (refused by the fast path), 503
//! (fast path unreachable) or 500.

use std::fmt::Write as _;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fastpath::counters::{DropReason, Event};
use fastpath::proto::{Request, Response};
use hdrhistogram::Histogram;
use serde::Serialize;
use tiny_http::{Header, Method, Response as HttpResponse, Server};

use crate::cluster::{ClusterSpec, NodeSpec, ServiceObject};
use crate::daemon::{lock, ChangeError, Daemon};
use crate::fpclient::FpError;
use crate::store::gateway;

type Reply = (u16, String, &'static str);

fn json<T: Serialize>(status: u16, v: &T) -> Reply {
    match serde_json::to_string_pretty(v) {
        Ok(s) => (status, s + "\n", "application/json"),
        Err(e) => err(500, &e.to_string()),
    }
}

fn err(status: u16, msg: &str) -> Reply {
    (
        status,
        serde_json::json!({ "error": msg }).to_string() + "\n",
        "application/json",
    )
}

fn change(r: Result<(), ChangeError>) -> Reply {
    match r {
        Ok(()) => json(200, &serde_json::json!({"ok": true})),
        Err(ChangeError::Invalid(m)) => err(400, &m),
        Err(ChangeError::NotFound) => err(404, "not found"),
        Err(ChangeError::Refused(m)) => err(409, &m),
        Err(ChangeError::Store(m)) => err(500, &m),
    }
}

fn fp_err(e: FpError) -> Reply {
    match e {
        FpError::Down(..) => err(503, &e.to_string()),
        _ => err(500, &e.to_string()),
    }
}

/// Serves the API on `server` with `threads` threads; returns when the server is dropped.
pub fn serve(server: Arc<Server>, daemon: Arc<Daemon>, threads: usize) {
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let s = Arc::clone(&server);
            let d = Arc::clone(&daemon);
            std::thread::spawn(move || {
                for mut rq in s.incoming_requests() {
                    let mut body = String::new();
                    let read = rq.as_reader().take(64 << 20).read_to_string(&mut body);
                    let (status, text, ctype) = match read {
                        Ok(_) => route(&d, rq.method(), rq.url(), &body),
                        Err(e) => err(400, &format!("body: {e}")),
                    };
                    let mut resp = HttpResponse::from_string(text).with_status_code(status);
                    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
                        resp = resp.with_header(h);
                    }
                    let _ = rq.respond(resp);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

/// One request → (status, body, content type). Public so tests can drive it without a socket.
pub fn route(d: &Daemon, method: &Method, url: &str, body: &str) -> Reply {
    let path = url.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let edit = matches!(method, Method::Put | Method::Delete)
        && matches!(parts.first(), Some(&"v1"))
        && matches!(parts.get(1), Some(&("cluster" | "nodes" | "services")));
    if edit && d.config().kubernetes.is_some() {
        return err(
            409,
            "the cluster state comes from the Kubernetes API ([kubernetes] in the configuration): change it there",
        );
    }
    match (method, parts.as_slice()) {
        (Method::Get, ["healthz"]) => (200, "ok\n".into(), "text/plain"),
        (Method::Get, ["metrics"]) => (200, metrics(d), "text/plain; version=0.0.4; charset=utf-8"),
        (Method::Get, ["v1", "status"]) => json(200, &d.status()),
        (Method::Get, ["v1", "cluster"]) => json(200, &*d.cluster()),
        (Method::Put, ["v1", "cluster"]) => match ClusterSpec::parse(body) {
            Ok(spec) => change(d.set_cluster(spec, true)),
            Err(e) => err(400, &e.to_string()),
        },
        (Method::Get, ["v1", "nodes"]) => json(200, &d.cluster().nodes().collect::<Vec<_>>()),
        (Method::Put, ["v1", "nodes", name]) => match serde_yaml::from_str::<NodeSpec>(body) {
            Ok(n) if n.name == *name => change(d.upsert_node(n)),
            Ok(_) => err(400, "the body's name differs from the path's"),
            Err(e) => err(400, &format!("not a node: {e}")),
        },
        (Method::Delete, ["v1", "nodes", name]) => change(d.remove_node(name)),
        (Method::Get, ["v1", "services"]) => json(200, &d.cluster().services().collect::<Vec<_>>()),
        (Method::Put, ["v1", "services", ns, name]) => {
            match serde_yaml::from_str::<ServiceObject>(body) {
                Ok(s) if s.namespace == *ns && s.name == *name => change(d.upsert_service(s)),
                Ok(_) => err(400, "the body's namespace/name differ from the path's"),
                Err(e) => err(400, &format!("not a service: {e}")),
            }
        }
        (Method::Delete, ["v1", "services", ns, name]) => change(d.remove_service(ns, name)),
        (Method::Get, ["v1", "pods"]) => match d.store().pods() {
            Ok(p) => json(200, &p),
            Err(e) => err(500, &e.to_string()),
        },
        (Method::Get, ["v1", "ipam"]) => ipam(d),
        (Method::Get, ["v1", "fastpath", "stats"]) => match d.fastpath().call(&Request::Stats) {
            Ok(Response::Stats {
                epoch,
                generation,
                counters,
                ports,
            }) => json(
                200,
                &serde_json::json!({
                    "epoch": epoch,
                    "generation": generation,
                    "counters": counters.nonzero().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                    "ports": ports,
                }),
            ),
            Ok(other) => err(500, &format!("unexpected answer {other:?}")),
            Err(e) => fp_err(e),
        },
        (Method::Get, ["v1", "fastpath", "state"]) => match d.fastpath().call(&Request::GetState) {
            Ok(r @ Response::State { .. }) => json(200, &r),
            Ok(other) => err(500, &format!("unexpected answer {other:?}")),
            Err(e) => fp_err(e),
        },
        (Method::Get, ["v1", "fastpath", "conntrack"]) => {
            let limit = url
                .split_once('?')
                .and_then(|(_, q)| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("limit=")?.parse::<u32>().ok())
                })
                .unwrap_or(1000);
            match d.fastpath().call(&Request::Conntrack { limit }) {
                Ok(r @ Response::Conntrack { .. }) => json(200, &r),
                Ok(other) => err(500, &format!("unexpected answer {other:?}")),
                Err(e) => fp_err(e),
            }
        }
        (Method::Post, ["v1", "resync"]) => match d.resync() {
            Ok(()) => json(200, &d.status()),
            Err(e) => err(503, &e),
        },
        _ => err(404, &format!("no route {method} {path}")),
    }
}

fn ipam(d: &Daemon) -> Reply {
    let cluster = d.cluster();
    let Some(node) = cluster.node(&d.config().node_name) else {
        return err(404, "this node is not in the cluster state");
    };
    match d.store().allocated_ips() {
        Ok(ips) => json(
            200,
            &serde_json::json!({
                "pod_cidr": node.pod_cidr,
                "gateway": gateway(&node.pod_cidr),
                "allocated": ips.iter().map(|(ip, key)| serde_json::json!({"ip": ip, "attachment": key})).collect::<Vec<_>>(),
                "free": node.pod_cidr.size().saturating_sub(3).saturating_sub(ips.len() as u64),
            }),
        ),
        Err(e) => err(500, &e.to_string()),
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus exposition.
pub fn metrics(d: &Daemon) -> String {
    let mut o = String::new();
    let node = esc(&d.config().node_name);
    // Fast path.
    let stats = d.fastpath().call(&Request::Stats);
    family(
        &mut o,
        "podlane_fastpath_up",
        "gauge",
        "1 when the fast path answered this scrape.",
    );
    let _ = writeln!(
        o,
        "podlane_fastpath_up{{node=\"{node}\"}} {}",
        u8::from(stats.is_ok())
    );
    if let Ok(Response::Stats {
        generation,
        counters,
        ports,
        ..
    }) = &stats
    {
        family(
            &mut o,
            "podlane_port_packets_total",
            "counter",
            "Packets per fast-path port and direction (device counters).",
        );
        family(
            &mut o,
            "podlane_port_dropped_total",
            "counter",
            "Packets a port's device dropped (no descriptors) or failed.",
        );
        for p in ports {
            // Pod TAPs share names across pods (every pod's is eth0): the pod port id tells
            // them apart.
            let l = match p.pod_port {
                Some(id) => format!(
                    "node=\"{node}\",port=\"{}\",role=\"{}\",pod_port=\"{id}\"",
                    esc(&p.name),
                    p.role
                ),
                None => format!(
                    "node=\"{node}\",port=\"{}\",role=\"{}\"",
                    esc(&p.name),
                    p.role
                ),
            };
            let _ = writeln!(
                o,
                "podlane_port_packets_total{{{l},dir=\"rx\"}} {}",
                p.rx_packets
            );
            let _ = writeln!(
                o,
                "podlane_port_packets_total{{{l},dir=\"tx\"}} {}",
                p.tx_packets
            );
            let _ = writeln!(
                o,
                "podlane_port_dropped_total{{{l},why=\"rx_missed\"}} {}",
                p.rx_missed
            );
            let _ = writeln!(
                o,
                "podlane_port_dropped_total{{{l},why=\"rx_errors\"}} {}",
                p.rx_errors
            );
            let _ = writeln!(
                o,
                "podlane_port_dropped_total{{{l},why=\"tx_errors\"}} {}",
                p.tx_errors
            );
        }
        family(
            &mut o,
            "podlane_fastpath_drops_total",
            "counter",
            "Packets dropped, by reason.",
        );
        for (r, n) in DropReason::ALL.iter().zip(&counters.drops) {
            let _ = writeln!(
                o,
                "podlane_fastpath_drops_total{{node=\"{node}\",reason=\"{}\"}} {n}",
                r.name()
            );
        }
        family(
            &mut o,
            "podlane_fastpath_events_total",
            "counter",
            "Packet dispositions and table events (rx_*/tx_* per port role).",
        );
        for (e, n) in Event::ALL.iter().zip(&counters.events) {
            let _ = writeln!(
                o,
                "podlane_fastpath_events_total{{node=\"{node}\",event=\"{}\"}} {n}",
                e.name()
            );
        }
        let ev = |e: Event| counters.event_count(e);
        let in_use = ev(Event::CtNew)
            .saturating_sub(ev(Event::CtExpired) + ev(Event::CtEvicted) + ev(Event::CtPurged));
        family(
            &mut o,
            "podlane_conntrack_entries",
            "gauge",
            "Conntrack entries in use (created minus expired, evicted and purged).",
        );
        let _ = writeln!(o, "podlane_conntrack_entries{{node=\"{node}\"}} {in_use}");
        family(
            &mut o,
            "podlane_fastpath_generation",
            "gauge",
            "The table version in force.",
        );
        let _ = writeln!(
            o,
            "podlane_fastpath_generation{{node=\"{node}\"}} {generation}"
        );
    }
    // Tables (desired state).
    {
        let c = d.cluster();
        let frontends: usize = c.services().map(|s| s.ports.len()).sum();
        let endpoints: usize = c
            .services()
            .map(|s| s.ports.len() * s.endpoints.len())
            .sum();
        let pods = d.store().pods().map_or(0, |p| p.len());
        family(
            &mut o,
            "podlane_table_entries",
            "gauge",
            "Entries of each fast-path table this node programs.",
        );
        for (t, n) in [
            ("pods", pods),
            ("nodes", c.nodes().len().saturating_sub(1)),
            ("services", frontends),
            ("endpoints", endpoints),
        ] {
            let _ = writeln!(
                o,
                "podlane_table_entries{{node=\"{node}\",table=\"{t}\"}} {n}"
            );
        }
    }
    // Sync.
    let m = &d.metrics;
    family(
        &mut o,
        "podlane_sync_latency_seconds",
        "summary",
        "Accepted change to fast-path table live.",
    );
    summary(
        &mut o,
        "podlane_sync_latency_seconds",
        &format!("node=\"{node}\""),
        &lock(&m.sync_latency),
        &[0.5, 0.9, 0.99],
    );
    family(
        &mut o,
        "podlane_full_syncs_total",
        "counter",
        "Full resyncs of the fast path.",
    );
    let _ = writeln!(
        o,
        "podlane_full_syncs_total{{node=\"{node}\"}} {}",
        m.full_syncs.load(Ordering::Relaxed)
    );
    family(
        &mut o,
        "podlane_sync_errors_total",
        "counter",
        "Changes the fast path could not take at once.",
    );
    let _ = writeln!(
        o,
        "podlane_sync_errors_total{{node=\"{node}\"}} {}",
        m.sync_errors.load(Ordering::Relaxed)
    );
    if d.config().kubernetes.is_some() {
        kube_metrics(&mut o, &node, &m.kube);
    }
    let (listening, bind_errors) = d.health_checks();
    family(
        &mut o,
        "podlane_health_check_ports",
        "gauge",
        "Health-check NodePorts listening (Local-policy load balancers).",
    );
    let _ = writeln!(
        o,
        "podlane_health_check_ports{{node=\"{node}\"}} {listening}"
    );
    family(
        &mut o,
        "podlane_health_check_bind_errors_total",
        "counter",
        "Attempts to listen on a health-check NodePort that failed (tried again every 5 s).",
    );
    let _ = writeln!(
        o,
        "podlane_health_check_bind_errors_total{{node=\"{node}\"}} {bind_errors}"
    );
    if let Some((routes, errors)) = d.host_routes() {
        family(
            &mut o,
            "podlane_host_routes",
            "gauge",
            "The node kernel's routes to pod CIDRs and the Service CIDR through the host path.",
        );
        let _ = writeln!(o, "podlane_host_routes{{node=\"{node}\"}} {routes}");
        family(
            &mut o,
            "podlane_host_route_errors_total",
            "counter",
            "Syncs of the host routes that failed (tried again every 5 s).",
        );
        let _ = writeln!(
            o,
            "podlane_host_route_errors_total{{node=\"{node}\"}} {errors}"
        );
    }
    // CNI.
    family(
        &mut o,
        "podlane_cni_requests_total",
        "counter",
        "CNI requests by command and CNI result code (0 = success).",
    );
    for ((cmd, code), n) in lock(&m.cni).iter() {
        let _ = writeln!(
            o,
            "podlane_cni_requests_total{{node=\"{node}\",command=\"{cmd:?}\",code=\"{code}\"}} {n}"
        );
    }
    family(
        &mut o,
        "podlane_cni_request_seconds",
        "summary",
        "CNI request latency in the daemon.",
    );
    for (cmd, h) in lock(&m.cni_latency).iter() {
        summary(
            &mut o,
            "podlane_cni_request_seconds",
            &format!("node=\"{node}\",command=\"{cmd:?}\""),
            h,
            &[0.5, 0.99],
        );
    }
    o
}

/// The Kubernetes source's counters.
fn kube_metrics(o: &mut String, node: &str, k: &crate::kubernetes::KubeMetrics) {
    for (name, kind, help, v) in [
        (
            "podlane_kubernetes_synced",
            "gauge",
            "1 once Nodes, Services and EndpointSlices have all been listed.",
            &k.synced,
        ),
        (
            "podlane_kubernetes_applied_total",
            "counter",
            "Cluster states from the Kubernetes API applied.",
            &k.applied,
        ),
        (
            "podlane_kubernetes_refused_total",
            "counter",
            "Cluster states from the Kubernetes API refused by validation (previous state kept).",
            &k.refused,
        ),
        (
            "podlane_kubernetes_skipped_objects",
            "gauge",
            "Nodes, Services and EndpointSlices left out of the cluster state (logged with the reason).",
            &k.skipped,
        ),
        (
            "podlane_kubernetes_watch_errors_total",
            "counter",
            "Kubernetes API watch errors (each retried with backoff).",
            &k.watch_errors,
        ),
        (
            "podlane_kubernetes_node_annotated_total",
            "counter",
            "Patches of this node's own annotations (its VTEP and underlay addresses, for the other nodes).",
            &k.annotated,
        ),
        (
            "podlane_kubernetes_node_annotate_errors_total",
            "counter",
            "Patches of this node's annotations the API refused (tried again with the next change).",
            &k.annotate_errors,
        ),
    ] {
        family(o, name, kind, help);
        let _ = writeln!(o, "{name}{{node=\"{node}\"}} {}", v.load(Ordering::Relaxed));
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

/// A summary's quantile and count lines from a histogram of microseconds, in seconds.
fn summary(o: &mut String, name: &str, labels: &str, h: &Histogram<u64>, quantiles: &[f64]) {
    for q in quantiles {
        let _ = writeln!(
            o,
            "{name}{{{labels},quantile=\"{q}\"}} {}",
            h.value_at_quantile(*q) as f64 / 1e6
        );
    }
    let _ = writeln!(o, "{name}_count{{{labels}}} {}", h.len());
}
