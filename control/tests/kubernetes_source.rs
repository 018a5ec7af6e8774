//! The Kubernetes API as the cluster-state source, end to end through kube-rs's client and
//! watcher: a fake API server (list, watch from a resourceVersion, "410 Gone") serves Nodes,
//! Services and EndpointSlices as the real one encodes them, and the daemon's cluster state
//! must follow — the initial list, each watch event, a relist after expiry, objects that
//! cannot be translated or that conflict with others left out without blocking the rest (and
//! taken in when the conflict goes). No fast path runs: the daemon accepts changes while it is
//! down.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::cluster::Cluster;
use control::config::Config;
use control::daemon::Daemon;
use serde_json::{json, Value};

const NODES: &str = "/api/v1/nodes";
const SERVICES: &str = "/api/v1/services";
const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";

/// One kind's objects and its watchers.
#[derive(Default)]
struct Kind {
    objects: BTreeMap<String, Value>,
    watchers: Vec<Sender<String>>,
}

#[derive(Default)]
struct State {
    rv: u64,
    kinds: BTreeMap<&'static str, Kind>,
    /// Every event: (resourceVersion, path, the event's JSON line).
    log: Vec<(u64, &'static str, String)>,
    requests: Vec<String>,
    /// Answer PATCHes with 403 Forbidden (a role without `patch`).
    refuse_patch: bool,
}

impl State {
    /// The next resourceVersion, written into `obj` with its kind, as the API server does.
    fn stamp(&mut self, path: &str, obj: &mut Value) -> (&'static str, u64) {
        self.rv += 1;
        let (path, api, kind) = kind_of(path);
        obj["apiVersion"] = json!(api);
        obj["kind"] = json!(kind);
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        (path, self.rv)
    }
}

/// A fake kube-apiserver for the three collections podlane watches.
#[derive(Clone)]
struct FakeApi {
    url: String,
    state: Arc<Mutex<State>>,
}

fn kind_of(path: &str) -> (&'static str, &'static str, &'static str) {
    match path {
        NODES => (NODES, "v1", "Node"),
        SERVICES => (SERVICES, "v1", "Service"),
        _ => (SLICES, "discovery.k8s.io/v1", "EndpointSlice"),
    }
}

fn key(obj: &Value) -> String {
    let m = &obj["metadata"];
    match m["namespace"].as_str() {
        Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap()),
        None => m["name"].as_str().unwrap().to_string(),
    }
}

impl FakeApi {
    fn start() -> FakeApi {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve(c, st));
            }
        });
        FakeApi { url, state }
    }

    /// Adds or replaces an object (an ADDED or MODIFIED event to the watchers).
    fn apply(&self, path: &'static str, mut obj: Value) {
        let mut s = self.state.lock().unwrap();
        let (path, rv) = s.stamp(path, &mut obj);
        let k = s.kinds.entry(path).or_default();
        let ty = if k.objects.insert(key(&obj), obj.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let line = json!({"type": ty, "object": obj}).to_string();
        k.watchers.retain(|w| w.send(line.clone()).is_ok());
        s.log.push((rv, path, line));
    }

    /// Deletes an object (a DELETED event).
    fn delete(&self, path: &'static str, key: &str) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        let (path, ..) = kind_of(path);
        let k = s.kinds.entry(path).or_default();
        let mut obj = k.objects.remove(key).expect("no such object");
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let line = json!({"type": "DELETED", "object": obj}).to_string();
        k.watchers.retain(|w| w.send(line.clone()).is_ok());
        s.log.push((rv, path, line));
    }

    /// Changes an object with no event at all, then expires every watch of its kind with
    /// "410 Gone" and forgets the event history: only a relist can see the change.
    fn change_silently_and_expire(&self, path: &'static str, mut obj: Value) {
        let mut s = self.state.lock().unwrap();
        let (path, _) = s.stamp(path, &mut obj);
        s.log.clear();
        let k = s.kinds.entry(path).or_default();
        k.objects.insert(key(&obj), obj);
        let gone = json!({"type": "ERROR", "object": {
            "apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Expired",
            "code": 410, "message": "too old resource version"}})
        .to_string();
        for w in k.watchers.drain(..) {
            let _ = w.send(gone.clone());
        }
    }

    /// The daemon's own way in: a kubeconfig naming this (plain HTTP) server.
    fn write_kubeconfig(&self, path: &std::path::Path) {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\n\
                 users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u}}}}]\n\
                 current-context: c\n",
                self.url
            ),
        )
        .unwrap();
    }

    /// The object `key` of a collection as the server holds it now.
    fn object(&self, path: &'static str, key: &str) -> Value {
        let s = self.state.lock().unwrap();
        s.kinds[path].objects[key].clone()
    }

    fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// Serves one connection: a list (the collection at the current resourceVersion) or a watch
/// (the events after the asked resourceVersion, then live ones, chunked, as the API server
/// streams them).
fn serve(c: TcpStream, st: Arc<Mutex<State>>) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let q: BTreeMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let mut c = c;
    if line.starts_with("PATCH ") {
        let mut body = vec![0; length];
        if std::io::Read::read_exact(&mut r, &mut body).is_err() {
            return;
        }
        let (status, reply) = patch_node(&st, path, &body);
        let _ = write!(
            c,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        );
        return;
    }
    if ![NODES, SERVICES, SLICES].contains(&path) {
        let _ = write!(
            c,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    let (path, api, kind) = kind_of(path);
    let watch = q.get("watch").is_some_and(|w| *w == "true" || *w == "1");
    let mut s = st.lock().unwrap();
    s.requests.push(target.clone());
    if !watch {
        let items: Vec<Value> = s
            .kinds
            .get(path)
            .map(|k| k.objects.values().cloned().collect())
            .unwrap_or_default();
        let body = json!({"apiVersion": api, "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": s.rv.to_string()}, "items": items})
        .to_string();
        drop(s);
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (tx, rx): (Sender<String>, Receiver<String>) = channel();
    for (rv, p, l) in &s.log {
        if *rv > from && *p == path {
            let _ = tx.send(l.clone());
        }
    }
    s.kinds.entry(path).or_default().watchers.push(tx);
    drop(s);
    if write!(
        c,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .is_err()
    {
        return;
    }
    while let Ok(l) = rx.recv() {
        let l = l + "\n";
        let gone = l.contains("\"ERROR\"");
        if write!(c, "{:x}\r\n{l}\r\n", l.len()).is_err() || c.flush().is_err() {
            return;
        }
        if gone {
            break;
        }
    }
    let _ = write!(c, "0\r\n\r\n");
}

/// A merge patch of a Node's annotations (what podlane sends: nothing else is served), as
/// the API server applies it: the object changed, a MODIFIED event to the watchers.
fn patch_node(st: &Arc<Mutex<State>>, path: &str, body: &[u8]) -> (&'static str, String) {
    let mut s = st.lock().unwrap();
    s.requests
        .push(format!("PATCH {path} {}", String::from_utf8_lossy(body)));
    let status = |code: u16, reason: &str| {
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": reason,
            "code": code, "message": reason})
        .to_string()
    };
    if s.refuse_patch {
        return ("403 Forbidden", status(403, "Forbidden"));
    }
    let Some(name) = path.strip_prefix(&format!("{NODES}/")) else {
        return ("404 Not Found", status(404, "NotFound"));
    };
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return ("400 Bad Request", status(400, "BadRequest"));
    };
    let Some(mut obj) = s
        .kinds
        .get(NODES)
        .and_then(|k| k.objects.get(name))
        .cloned()
    else {
        return ("404 Not Found", status(404, "NotFound"));
    };
    let set = patch["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    for (k, v) in set {
        obj["metadata"]["annotations"][k] = v;
    }
    let (path, rv) = s.stamp(NODES, &mut obj);
    let k = s.kinds.entry(path).or_default();
    k.objects.insert(name.to_string(), obj.clone());
    let line = json!({"type": "MODIFIED", "object": obj}).to_string();
    k.watchers.retain(|w| w.send(line.clone()).is_ok());
    s.log.push((rv, path, line));
    ("200 OK", obj.to_string())
}

fn node(name: &str, ip: &str, cidr: &str, annotations: Value) -> Value {
    json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [
            {"type": "Hostname", "address": name},
            {"type": "InternalIP", "address": ip}]}
    })
}

fn podlane_node(name: &str, ip: &str, cidr: &str, n: u8) -> Value {
    node(
        name,
        ip,
        cidr,
        json!({
            "podlane.io/underlay-mac": format!("02:00:0a:01:00:{n:02x}"),
            "podlane.io/vtep-mac": format!("02:76:74:65:70:{n:02x}"),
        }),
    )
}

fn service(ns: &str, name: &str, ip: &str, ports: Value, ty: &str) -> Value {
    json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": ty, "clusterIP": ip, "clusterIPs": [ip], "ports": ports}
    })
}

fn slice(ns: &str, name: &str, svc: &str, ports: Value, endpoints: Value) -> Value {
    json!({
        "metadata": {"namespace": ns, "name": name,
            "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints
    })
}

/// kube-dns's one slice: UDP and TCP 5353 ("dns", "dns-tcp"), these endpoints.
fn dns_slice(endpoints: Value) -> Value {
    slice(
        "kube-system",
        "kube-dns-abcde",
        "kube-dns",
        json!([{"name": "dns", "port": 5353, "protocol": "UDP"},
               {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}]),
        endpoints,
    )
}

fn ep(ip: &str, ready: bool, serving: bool, terminating: bool) -> Value {
    json!({"addresses": [ip], "conditions":
        {"ready": ready, "serving": serving, "terminating": terminating}})
}

fn wait_for(what: &str, d: &Daemon, f: impl Fn(&Cluster) -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if f(&d.cluster()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "timed out waiting for {what}; cluster now: {:#?}",
        *d.cluster()
    );
}

fn endpoints(c: &Cluster, id: &str) -> Vec<(Ipv4Addr, bool)> {
    c.services()
        .find(|s| s.id() == id)
        .map(|s| s.endpoints.iter().map(|e| (e.ip, e.terminating)).collect())
        .unwrap_or_default()
}

#[test]
fn the_cluster_state_follows_the_kubernetes_api() {
    let api = FakeApi::start();
    // Node A is this node; B is a podlane node; K is a Flannel node (its VTEP MAC from
    // Flannel's annotations, its outer MAC from the configured default); X has no pod CIDR
    // yet, and H is a Flannel host-gw node: both left out.
    api.apply(
        NODES,
        podlane_node("node-a", "10.1.0.10", "10.244.1.0/24", 10),
    );
    api.apply(
        NODES,
        podlane_node("node-b", "10.1.0.11", "10.244.2.0/24", 11),
    );
    api.apply(
        NODES,
        node(
            "node-k",
            "192.168.0.12",
            "10.244.3.0/24",
            json!({
                "flannel.alpha.coreos.com/backend-type": "vxlan",
                "flannel.alpha.coreos.com/backend-data": "{\"VNI\":1,\"VtepMAC\":\"02:76:74:65:70:0c\"}",
                "flannel.alpha.coreos.com/public-ip": "10.1.0.12",
                "flannel.alpha.coreos.com/kube-subnet-manager": "true"
            }),
        ),
    );
    api.apply(
        NODES,
        json!({"metadata": {"name": "node-x"}, "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.13"}]}}),
    );
    api.apply(
        NODES,
        node(
            "node-h",
            "10.1.0.14",
            "10.244.4.0/24",
            json!({"flannel.alpha.coreos.com/backend-type": "host-gw"}),
        ),
    );
    // kube-dns: UDP and TCP 53 → 5353 by named target port; two ready endpoints, one
    // terminating but serving, one not ready.
    api.apply(
        SERVICES,
        service(
            "kube-system",
            "kube-dns",
            "10.96.0.10",
            json!([
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"}]),
            "ClusterIP",
        ),
    );
    api.apply(
        SLICES,
        dns_slice(json!([
            ep("10.244.1.2", true, true, false),
            ep("10.244.2.2", true, true, false),
            ep("10.244.1.3", false, true, true),
            ep("10.244.2.3", false, false, false)
        ])),
    );
    // A NodePort Service; a headless one, an ExternalName one and an SCTP-only one (nothing
    // to serve); one whose ClusterIP is outside the configured service CIDR (left out).
    api.apply(
        SERVICES,
        service(
            "default",
            "web",
            "10.96.0.20",
            json!([{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]),
            "NodePort",
        ),
    );
    api.apply(
        SERVICES,
        service(
            "default",
            "db",
            "None",
            json!([{"port": 5432}]),
            "ClusterIP",
        ),
    );
    api.apply(
        SERVICES,
        json!({"metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.org"}}),
    );
    api.apply(
        SERVICES,
        service(
            "default",
            "sctp",
            "10.96.0.40",
            json!([{"port": 9, "protocol": "SCTP"}]),
            "ClusterIP",
        ),
    );
    api.apply(
        SERVICES,
        service(
            "default",
            "elsewhere",
            "10.112.0.5",
            json!([{"port": 80}]),
            "ClusterIP",
        ),
    );

    let dir = std::env::temp_dir().join(format!("podlane-kube-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    api.write_kubeconfig(&dir.join("kubeconfig"));
    let cfg = Config::parse(&format!(
        r#"
node_name = "node-a"
state_dir = "{d}"
cni_socket = "{d}/cni.sock"
fastpath_socket = "{d}/no-fastpath.sock"
http_listen = "127.0.0.1:0"
[kubernetes]
kubeconfig = "{d}/kubeconfig"
service_cidr = "10.96.0.0/12"
underlay_mac = "02:00:0a:01:00:fe"
"#,
        d = dir.display()
    ))
    .unwrap();
    let settings = cfg.kubernetes.clone().unwrap();
    let d = Arc::new(Daemon::open(cfg).unwrap());
    // A kubeconfig that is not one is an error at start, naming the file.
    let mut broken = settings.clone();
    broken.kubeconfig = Some(dir.join("state.redb"));
    let e = control::kubernetes::spawn(Arc::clone(&d), broken).unwrap_err();
    assert!(e.contains("state.redb"), "{e}");
    control::kubernetes::spawn(Arc::clone(&d), settings).unwrap();

    // The initial lists.
    wait_for("the initial lists", &d, |c| c.nodes().len() == 3);
    {
        let c = d.cluster();
        let names: Vec<&str> = c.nodes().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node-a", "node-b", "node-k"]);
        let k = c.node("node-k").unwrap();
        assert_eq!(k.underlay_ip, Ipv4Addr::new(10, 1, 0, 12));
        assert_eq!(k.vtep_mac.to_string(), "02:76:74:65:70:0c");
        assert_eq!(k.underlay_mac.to_string(), "02:00:0a:01:00:fe");
        let b = c.node("node-b").unwrap();
        assert_eq!(b.underlay_mac.to_string(), "02:00:0a:01:00:0b");
        assert_eq!(b.pod_cidr.to_string(), "10.244.2.0/24");
        let ids: Vec<String> = c.services().map(|s| s.id()).collect();
        assert_eq!(ids, ["default/web", "kube-system/kube-dns"]);
        let dns = c.services().find(|s| s.name == "kube-dns").unwrap();
        assert_eq!(dns.cluster_ip, Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(dns.ports.len(), 2);
        assert!(dns.ports.iter().all(|p| p.target_port == Some(5353)));
        assert_eq!(
            endpoints(&c, "kube-system/kube-dns"),
            [
                (Ipv4Addr::new(10, 244, 1, 2), false),
                (Ipv4Addr::new(10, 244, 1, 3), true),
                (Ipv4Addr::new(10, 244, 2, 2), false)
            ]
        );
        let web = c.services().find(|s| s.name == "web").unwrap();
        assert_eq!(web.ports[0].node_port, Some(30080));
        assert_eq!(web.ports[0].target_port, Some(8080));
        assert!(web.endpoints.is_empty());
    }
    assert_eq!(d.metrics.kube.synced.load(Ordering::Relaxed), 1);
    // node-x, node-h, default/elsewhere.
    assert_eq!(d.metrics.kube.skipped.load(Ordering::Relaxed), 3);

    // Watch events: web's endpoints appear; a kube-dns endpoint starts terminating.
    api.apply(
        SLICES,
        slice(
            "default",
            "web-1",
            "web",
            json!([{"port": 8080, "protocol": "TCP"}]),
            json!([ep("10.244.2.5", true, true, false)]),
        ),
    );
    wait_for("web's endpoint", &d, |c| {
        endpoints(c, "default/web") == [(Ipv4Addr::new(10, 244, 2, 5), false)]
    });
    api.apply(
        SLICES,
        dns_slice(json!([
            ep("10.244.1.2", false, true, true),
            ep("10.244.2.2", true, true, false)
        ])),
    );
    wait_for("kube-dns's terminating endpoint", &d, |c| {
        endpoints(c, "kube-system/kube-dns")
            == [
                (Ipv4Addr::new(10, 244, 1, 2), true),
                (Ipv4Addr::new(10, 244, 2, 2), false),
            ]
    });
    // node-x gets its pod CIDR and annotations; node-b goes away.
    api.apply(
        NODES,
        podlane_node("node-x", "10.1.0.13", "10.244.5.0/24", 13),
    );
    api.delete(NODES, "node-b");
    wait_for("node-x in, node-b out", &d, |c| {
        c.node("node-x").is_some() && c.node("node-b").is_none()
    });
    // A Service deleted.
    api.delete(SERVICES, "default/web");
    wait_for("web gone", &d, |c| c.services().all(|s| s.name != "web"));

    // A Node claiming another's pod CIDR (the API server checks no CIDR of a hand-made Node)
    // is left out on its own: the rest keeps applying. When the conflict goes, it comes in.
    api.apply(
        NODES,
        podlane_node("node-y", "10.1.0.15", "10.244.5.0/24", 15),
    );
    api.apply(
        SLICES,
        dns_slice(json!([
            ep("10.244.2.2", true, true, false),
            ep("10.96.0.99", true, true, false)
        ])),
    );
    wait_for("kube-dns down to one endpoint", &d, |c| {
        endpoints(c, "kube-system/kube-dns") == [(Ipv4Addr::new(10, 244, 2, 2), false)]
    });
    assert!(d.cluster().node("node-y").is_none());
    assert!(d.cluster().node("node-x").is_some());
    // node-y (CIDR) and the slice's endpoint inside the service CIDR, with node-h and
    // default/elsewhere from before.
    assert_eq!(d.metrics.kube.skipped.load(Ordering::Relaxed), 4);
    assert_eq!(d.metrics.kube.refused.load(Ordering::Relaxed), 0);
    // When the conflict goes, it comes in: what was left out is tried again with each change.
    api.delete(NODES, "node-x");
    wait_for("node-y in node-x's place", &d, |c| {
        c.node("node-y").is_some() && c.node("node-x").is_none()
    });
    assert_eq!(d.metrics.kube.skipped.load(Ordering::Relaxed), 3);

    // "410 Gone": a change the watch never reported is seen after the relist.
    api.change_silently_and_expire(
        SERVICES,
        service(
            "default",
            "late",
            "10.96.0.50",
            json!([{"port": 443, "protocol": "TCP"}]),
            "ClusterIP",
        ),
    );
    wait_for("the relisted Service", &d, |c| {
        c.services().any(|s| s.name == "late")
    });
    let lists = api
        .requests()
        .iter()
        .filter(|r| r.starts_with(SERVICES) && !r.contains("watch=true"))
        .count();
    assert!(lists >= 2, "no relist: {:?}", api.requests());
    assert!(d.metrics.kube.watch_errors.load(Ordering::Relaxed) >= 1);

    // The HTTP API's cluster edits are refused: the API server is the source.
    let (status, body, _) = control::http::route(
        &d,
        &tiny_http::Method::Delete,
        "/v1/services/kube-system/kube-dns",
        "",
    );
    assert_eq!(status, 409, "{body}");
    assert!(d.cluster().services().any(|s| s.name == "kube-dns"));
    let (_, metrics, _) = control::http::route(&d, &tiny_http::Method::Get, "/metrics", "");
    assert!(
        metrics.contains("podlane_kubernetes_synced{node=\"node-a\"} 1"),
        "{metrics}"
    );
    // What the daemon applied is also what it persisted (a restart starts from it).
    let stored = d.store().cluster().unwrap().unwrap();
    assert_eq!(stored, d.cluster().spec());
    let _ = std::fs::remove_dir_all(&dir);
}

/// With a node file, the daemon publishes its node's addresses on its Node object — the
/// podlane annotations the other nodes read, and Flannel's — once, and again when they are
/// taken away; a refused patch is counted and tried again (after `annotate_retry_ms` when no
/// event comes sooner). Until its Node
/// carries them, the node cannot be read (no VTEP MAC): the patch is what brings it in.
#[test]
fn the_node_publishes_its_own_annotations() {
    let api = FakeApi::start();
    api.state.lock().unwrap().refuse_patch = true;
    api.apply(
        NODES,
        node("node-a", "10.1.0.10", "10.244.1.0/24", json!({})),
    );
    api.apply(
        NODES,
        podlane_node("node-b", "10.1.0.11", "10.244.2.0/24", 11),
    );
    let dir = std::env::temp_dir().join(format!("podlane-kube-annotate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    api.write_kubeconfig(&dir.join("kubeconfig"));
    std::fs::write(
        dir.join("node.toml"),
        "[node]\nname = \"node-a\"\nunderlay_ip = \"10.1.0.10\"\n\
         underlay_mac = \"02:00:0a:01:00:0a\"\nvtep_mac = \"02:76:74:65:70:0a\"\n\
         pod_cidr = \"10.244.1.0/24\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("control.toml"),
        format!(
            "node_file = \"node.toml\"\nstate_dir = \"{d}\"\ncni_socket = \"{d}/cni.sock\"\n\
             fastpath_socket = \"{d}/no-fastpath.sock\"\nhttp_listen = \"127.0.0.1:0\"\n\
             [kubernetes]\nkubeconfig = \"{d}/kubeconfig\"\nservice_cidr = \"10.96.0.0/12\"\n\
             annotate_retry_ms = 200\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.join("control.toml")).unwrap();
    let settings = cfg.kubernetes.clone().unwrap();
    assert!(settings.annotate_node, "on by default");
    let d = Arc::new(Daemon::open(cfg).unwrap());
    control::kubernetes::spawn(Arc::clone(&d), settings).unwrap();
    let patches = || {
        api.requests()
            .into_iter()
            .filter(|r| r.starts_with("PATCH "))
            .collect::<Vec<_>>()
    };
    let counter = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);

    // Refused: counted, and node A stays out (nothing says its VTEP MAC).
    wait_for("the initial lists", &d, |c| c.node("node-b").is_some());
    let t0 = Instant::now();
    while counter(&d.metrics.kube.annotate_errors) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no patch tried");
        std::thread::sleep(Duration::from_millis(20));
    }
    while counter(&d.metrics.kube.synced) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "not synced");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(d.cluster().node("node-a").is_none());
    assert_eq!(counter(&d.metrics.kube.annotated), 0);
    // The retry timer keeps trying while refused (every 200 ms here), with no event.
    let errors = counter(&d.metrics.kube.annotate_errors);
    std::thread::sleep(Duration::from_millis(700));
    assert!(counter(&d.metrics.kube.annotate_errors) > errors);

    // Allowed, and tried again after annotate_retry_ms with no event in between: node A is
    // published, and read.
    api.state.lock().unwrap().refuse_patch = false;
    wait_for("node A, annotated", &d, |c| c.node("node-a").is_some());
    let a = api.object(NODES, "node-a");
    let want = json!({
        "podlane.io/vtep-mac": "02:76:74:65:70:0a",
        "podlane.io/underlay-mac": "02:00:0a:01:00:0a",
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/public-ip": "10.1.0.10",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
    });
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&a["metadata"]["annotations"][k], v, "{k}");
    }
    // Flannel's backend data, as Flannel's VXLAN backend writes it.
    let data: Value = serde_json::from_str(
        a["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data, json!({"VNI": 1, "VtepMAC": "02:76:74:65:70:0a"}));
    {
        let c = d.cluster();
        let n = c.node("node-a").unwrap();
        assert_eq!(n.vtep_mac.to_string(), "02:76:74:65:70:0a");
        assert_eq!(n.underlay_mac.to_string(), "02:00:0a:01:00:0a");
        assert_eq!(n.underlay_ip, Ipv4Addr::new(10, 1, 0, 10));
    }
    assert_eq!(counter(&d.metrics.kube.annotated), 1);
    let sent = patches();
    let last = sent.last().unwrap();
    assert!(last.starts_with("PATCH /api/v1/nodes/node-a "), "{last}");

    // Other changes, annotations in place: no more patches.
    api.apply(
        SERVICES,
        service(
            "default",
            "web",
            "10.96.0.20",
            json!([{"port": 80}]),
            "ClusterIP",
        ),
    );
    wait_for("web", &d, |c| c.services().count() == 1);
    assert_eq!(patches().len(), sent.len());
    // Taken away (an annotation edited by hand): published again.
    let mut bare = api.object(NODES, "node-a");
    bare["metadata"]["annotations"]["podlane.io/vtep-mac"] = json!("02:00:00:00:00:99");
    api.apply(NODES, bare);
    let t0 = Instant::now();
    while counter(&d.metrics.kube.annotated) < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "not published again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for("node A's VTEP MAC back", &d, |c| {
        c.node("node-a")
            .is_some_and(|n| n.vtep_mac.to_string() == "02:76:74:65:70:0a")
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_has_one_cluster_source() {
    let base = "node_name = \"n\"\nstate_dir = \"/tmp/x\"\n";
    let kube = "[kubernetes]\nservice_cidr = \"10.96.0.0/12\"\n";
    for (before, after, why) in [
        (
            "cluster_file = \"/etc/podlane/cluster.yaml\"\n",
            "",
            "one source",
        ),
        ("", "vni = 0\n", "vni"),
        ("", "node_port_range = [32767, 30000]\n", "node_port_range"),
        ("", "server = \"x\"\n", "unknown field"),
    ] {
        let e = Config::parse(&format!("{base}{before}{kube}{after}")).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
    let c = Config::parse(&format!("{base}{kube}")).unwrap();
    let k = c.kubernetes.unwrap();
    assert_eq!(k.node_port_range, [30000, 32767]);
    assert_eq!(k.vni, 1);
    assert!(k.underlay_mac.is_none() && k.kubeconfig.is_none());
}

/// The Kubernetes source at the brief's scale: 10,000 Services with 100,000 endpoints and
/// 1,000 nodes. Prints what a whole translation and one endpoint change cost (no fast path:
/// the daemon's validated change without the push). A measurement, run on demand:
/// `cargo test --release -p podlane-control --test kubernetes_source -- --ignored --nocapture`.
#[test]
#[ignore]
fn scale_10k_services_100k_endpoints() {
    use control::cluster::Mode;
    use control::kubernetes::{KubeSettings, Objects, Watched};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::runtime::watcher::Event;
    let s = KubeSettings {
        kubeconfig: None,
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_port_range: [30000, 32767],
        vni: 1,
        underlay_mac: Some("02:00:00:00:00:01".parse().unwrap()),
        annotate_node: true,
        annotate_retry_ms: 10_000,
    };
    let mut o = Objects::default();
    for i in 0..1000u32 {
        let name = format!("node-{i}");
        let n = podlane_node(
            &name,
            &format!("10.1.{}.{}", i / 250, i % 250 + 1),
            &format!("10.{}.{}.0/24", 128 + i / 256, i % 256),
            (i % 200) as u8,
        );
        o.nodes.insert(name, serde_json::from_value(n).unwrap());
    }
    let ip_of = |n: u32| {
        Ipv4Addr::new(
            10,
            (128 + n / 65536 % 4) as u8,
            (n / 256 % 256) as u8,
            (n % 250 + 2) as u8,
        )
    };
    let slice_of = |i: u32, first: u32| {
        let eps: Vec<Value> = (0..10u32)
            .map(|e| ep(&ip_of(first + e).to_string(), true, true, false))
            .collect();
        slice(
            "ns",
            &format!("svc-{i}-x"),
            &format!("svc-{i}"),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            Value::Array(eps),
        )
    };
    for i in 0..10_000u32 {
        let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        let svc = service(
            "ns",
            &format!("svc-{i}"),
            &ip,
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]),
            "ClusterIP",
        );
        o.services
            .insert(format!("ns/svc-{i}"), serde_json::from_value(svc).unwrap());
        o.slices.insert(
            format!("ns/svc-{i}-x"),
            serde_json::from_value(slice_of(i, i * 10)).unwrap(),
        );
    }
    let dir = std::env::temp_dir().join(format!("podlane-kube-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = Config::parse(&format!(
        "node_name = \"node-1\"\nstate_dir = \"{d}\"\nfastpath_socket = \"{d}/none.sock\"\n[kubernetes]\nservice_cidr = \"10.96.0.0/12\"\n",
        d = dir.display()
    ))
    .unwrap();
    let d = Daemon::open(cfg).unwrap();
    // The first sync: every object new.
    let t = Instant::now();
    let mut w = Watched::new(s);
    w.load(o);
    let edits = w.edits(&d.cluster());
    let translate = t.elapsed();
    assert_eq!(edits.len(), 11_000);
    let t = Instant::now();
    let refused = d.apply_edits(edits, Mode::LeaveOut).unwrap();
    let apply = t.elapsed();
    assert!(refused.is_empty(), "{:?}", &refused[..refused.len().min(3)]);
    w.settle(refused);
    assert_eq!(w.left_out_count(), 0);
    assert_eq!(d.cluster().services().len(), 10_000);
    let eps: usize = d.cluster().services().map(|s| s.endpoints.len()).sum();
    assert_eq!(eps, 100_000);
    // Endpoint changes: one EndpointSlice replaced at a time, as a watch event brings it.
    let mut took = Vec::new();
    for k in 0..200u32 {
        let i = k * 37 % 10_000;
        let slice: EndpointSlice = serde_json::from_value(slice_of(i, 500_000 + k * 10)).unwrap();
        let t = Instant::now();
        assert!(w.slice_event(Event::Apply(slice)));
        let edits = w.edits(&d.cluster());
        let translated = t.elapsed();
        assert_eq!(edits.len(), 1);
        let refused = d.apply_edits(edits, Mode::LeaveOut).unwrap();
        w.settle(refused);
        took.push((translated, t.elapsed()));
    }
    let q = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * p) as usize]
    };
    let (mut tr, mut all): (Vec<Duration>, Vec<Duration>) = took.into_iter().unzip();
    // svc-74 was the third changed (k = 2).
    let mut want: Vec<Ipv4Addr> = (0..10).map(|e| ip_of(500_020 + e)).collect();
    want.sort();
    let ours: Vec<Ipv4Addr> = d
        .cluster()
        .service("ns", "svc-74")
        .unwrap()
        .endpoints
        .iter()
        .map(|e| e.ip)
        .collect();
    assert_eq!(ours, want);
    // What the daemon holds is what it persisted.
    assert_eq!(d.store().cluster().unwrap().unwrap(), d.cluster().spec());
    println!(
        "10,000 Services, 100,000 endpoints, 1,000 nodes: first sync {translate:.2?} translation + \
         {apply:.2?} apply; one EndpointSlice changed (200 times): translation p50 {:.0?} p99 {:.0?}, \
         event to pushed and persisted p50 {:.0?} p99 {:.0?} max {:.0?}",
        q(&mut tr, 0.5),
        q(&mut tr, 0.99),
        q(&mut all, 0.5),
        q(&mut all, 0.99),
        q(&mut all, 1.0),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
