//! The deployment files under `deploy/` — the Kubernetes manifests, the CNI config list, the
//! sample configurations — parse, have the shape their consumers (the API server, kubelet's
//! container runtime, the two daemons) need, and agree with each other: sockets, node identity,
//! capacities, ports, the paths the containers see through their mounts.
//!
//! Every check is a function returning what is wrong as messages, so the negative tests at the
//! end can show each one fails on a broken input.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

// ------------------------------------------------------------------------------------------
// Loading
// ------------------------------------------------------------------------------------------

/// One parsed file under `deploy/`.
#[derive(Debug)]
enum Content {
    /// `*.yaml`, `*.yml`: every document of the stream.
    Yaml(Vec<Value>),
    /// `*.json`, `*.conflist`.
    Json(serde_json::Value),
    /// `*.toml`.
    Toml(toml::Value),
}

#[derive(Debug)]
struct DeployFile {
    /// Path relative to `deploy/`, with `/` separators.
    rel: String,
    content: Content,
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// All documents of a YAML stream; empty documents (a trailing `---`) are skipped.
fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn parse_file(path: &Path) -> Option<Result<Content, String>> {
    let ext = path.extension()?.to_str()?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Some(Err(format!("unreadable: {e}"))),
    };
    Some(match ext {
        "yaml" | "yml" => parse_yaml_documents(&text).map(Content::Yaml),
        "json" | "conflist" => serde_json::from_str(&text)
            .map(Content::Json)
            .map_err(|e| e.to_string()),
        "toml" => toml::from_str(&text)
            .map(Content::Toml)
            .map_err(|e| e.to_string()),
        _ => return None,
    })
}

/// Every YAML, JSON, CNI config list and TOML file under `deploy/`, parsed. Panics with every
/// file that does not parse.
fn load_all() -> Vec<DeployFile> {
    let root = deploy_dir();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let rel = path
            .strip_prefix(&root)
            .expect("under deploy/")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        match parse_file(&path) {
            None => {}
            Some(Ok(content)) => files.push(DeployFile { rel, content }),
            Some(Err(e)) => errors.push(format!("deploy/{rel}: {e}")),
        }
    }
    assert!(
        errors.is_empty(),
        "unparsable files:\n{}",
        errors.join("\n")
    );
    files
}

fn file<'a>(files: &'a [DeployFile], rel: &str) -> &'a Content {
    &files
        .iter()
        .find(|f| f.rel == rel)
        .unwrap_or_else(|| panic!("deploy/{rel} is missing"))
        .content
}

fn yaml_docs<'a>(files: &'a [DeployFile], rel: &str) -> &'a [Value] {
    match file(files, rel) {
        Content::Yaml(docs) => docs,
        other => panic!("deploy/{rel} is not YAML: {other:?}"),
    }
}

fn toml_file<'a>(files: &'a [DeployFile], rel: &str) -> &'a toml::Value {
    match file(files, rel) {
        Content::Toml(t) => t,
        other => panic!("deploy/{rel} is not TOML: {other:?}"),
    }
}

fn json_file<'a>(files: &'a [DeployFile], rel: &str) -> &'a serde_json::Value {
    match file(files, rel) {
        Content::Json(j) => j,
        other => panic!("deploy/{rel} is not JSON: {other:?}"),
    }
}

/// The Kubernetes objects: every document under `deploy/kubernetes/`, and any other YAML
/// document that says it is one (has `apiVersion` or `kind`). With the file each came from.
fn k8s_objects(files: &[DeployFile]) -> Vec<(&str, &Value)> {
    let mut objects = Vec::new();
    for f in files {
        if let Content::Yaml(docs) = &f.content {
            for doc in docs {
                if f.rel.starts_with("kubernetes/")
                    || doc.get("apiVersion").is_some()
                    || doc.get("kind").is_some()
                {
                    objects.push((f.rel.as_str(), doc));
                }
            }
        }
    }
    objects
}

fn find_object<'a>(objects: &[(&str, &'a Value)], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .map(|(_, o)| *o)
        .find(|o| {
            str_at(o, &["kind"]) == Some(kind) && str_at(o, &["metadata", "name"]) == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} {name:?} under deploy/kubernetes"))
}

// ------------------------------------------------------------------------------------------
// Value helpers
// ------------------------------------------------------------------------------------------

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

fn seq_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn strings_at<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a str> {
    seq_at(v, path).iter().filter_map(Value::as_str).collect()
}

fn tget<'a>(v: &'a toml::Value, path: &[&str]) -> Option<&'a toml::Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn tstr<'a>(v: &'a toml::Value, path: &[&str]) -> Option<&'a str> {
    tget(v, path)?.as_str()
}

fn tint(v: &toml::Value, path: &[&str]) -> Option<i64> {
    tget(v, path)?.as_integer()
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((ip.parse().ok()?, len))
}

fn cidr_contains((net, len): (Ipv4Addr, u8), ip: Ipv4Addr) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(net) & mask == u32::from(ip) & mask
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `path` is `dir` or inside it.
fn is_under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

// ------------------------------------------------------------------------------------------
// Kubernetes objects
// ------------------------------------------------------------------------------------------

/// The kinds the manifests may hold: kind, apiVersion, namespaced.
const KINDS: &[(&str, &str, bool)] = &[
    ("DaemonSet", "apps/v1", true),
    ("ServiceAccount", "v1", true),
    ("ConfigMap", "v1", true),
    ("ClusterRole", "rbac.authorization.k8s.io/v1", false),
    ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", false),
];

/// What is wrong with one Kubernetes object.
fn check_object(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let (Some(api_version), Some(kind)) = (str_at(obj, &["apiVersion"]), str_at(obj, &["kind"]))
    else {
        return vec!["an object without apiVersion or kind".into()];
    };
    let name = match str_at(obj, &["metadata", "name"]) {
        Some(n) if !n.is_empty() => n,
        _ => return vec![format!("a {kind} without metadata.name")],
    };
    let Some(&(_, want_version, namespaced)) = KINDS.iter().find(|(k, _, _)| *k == kind) else {
        return vec![format!("{kind} {name}: kind not among {KINDS:?}")];
    };
    if api_version != want_version {
        errs.push(format!(
            "{kind} {name}: apiVersion {api_version}, expected {want_version}"
        ));
    }
    match (namespaced, str_at(obj, &["metadata", "namespace"])) {
        (true, None) => errs.push(format!(
            "{kind} {name}: no metadata.namespace (it would land in whatever namespace kubectl defaults to)"
        )),
        (false, Some(ns)) => errs.push(format!(
            "{kind} {name}: cluster-scoped but has namespace {ns}"
        )),
        _ => {}
    }
    let specific = match kind {
        "DaemonSet" => check_daemonset(obj),
        "ConfigMap" => check_configmap(obj),
        "ClusterRole" => check_cluster_role(obj),
        "ClusterRoleBinding" => check_binding(obj),
        _ => Vec::new(),
    };
    errs.extend(specific.into_iter().map(|e| format!("{kind} {name}: {e}")));
    errs
}

/// A DaemonSet's structure: selector, host network, containers, mounts.
fn check_daemonset(ds: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let template_labels =
        at(ds, &["spec", "template", "metadata", "labels"]).and_then(Value::as_mapping);
    match at(ds, &["spec", "selector", "matchLabels"]).and_then(Value::as_mapping) {
        None => errs.push("spec.selector.matchLabels is missing".into()),
        Some(m) if m.is_empty() => errs.push("spec.selector.matchLabels is empty".into()),
        Some(m) => {
            for (k, v) in m {
                if template_labels.and_then(|l| l.get(k)) != Some(v) {
                    errs.push(format!(
                        "selector label {}={} is not on the pod template",
                        k.as_str().unwrap_or("?"),
                        v.as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    let Some(pod) = at(ds, &["spec", "template", "spec"]) else {
        errs.push("no spec.template.spec".into());
        return errs;
    };
    if at(pod, &["hostNetwork"]).and_then(Value::as_bool) != Some(true) {
        errs.push("hostNetwork is not true (the pod network cannot run on itself)".into());
    }
    let mut volumes = BTreeSet::new();
    for v in seq_at(pod, &["volumes"]) {
        match str_at(v, &["name"]) {
            Some(n) if !volumes.insert(n) => errs.push(format!("volume {n} declared twice")),
            Some(_) => {}
            None => errs.push("a volume without a name".into()),
        }
    }
    let containers = seq_at(pod, &["containers"]);
    if containers.is_empty() {
        errs.push("no containers".into());
    }
    let mut names = BTreeSet::new();
    let all = seq_at(pod, &["initContainers"])
        .iter()
        .map(|c| (true, c))
        .chain(containers.iter().map(|c| (false, c)));
    for (init, c) in all {
        let name = match str_at(c, &["name"]) {
            Some(n) if !n.is_empty() => n,
            _ => {
                errs.push("a container without a name".into());
                "?"
            }
        };
        if !names.insert(name) {
            errs.push(format!("container name {name} used twice"));
        }
        if str_at(c, &["image"]).is_none_or(str::is_empty) {
            errs.push(format!("container {name} has no image"));
        }
        let privileged =
            at(c, &["securityContext", "privileged"]).and_then(Value::as_bool) == Some(true);
        if !init && !privileged {
            errs.push(format!("container {name} is not privileged"));
        }
        for m in seq_at(c, &["volumeMounts"]) {
            let vol = str_at(m, &["name"]).unwrap_or("");
            let path = str_at(m, &["mountPath"]).unwrap_or("");
            if !volumes.contains(vol) {
                errs.push(format!(
                    "container {name} mounts volume {vol:?} at {path}, which spec.template.spec.volumes does not declare"
                ));
            }
            if !path.starts_with('/') {
                errs.push(format!(
                    "container {name}: mountPath {path:?} is not absolute"
                ));
            }
            match str_at(m, &["mountPropagation"]) {
                None | Some("None") | Some("HostToContainer") => {}
                Some("Bidirectional") if privileged => {}
                Some(other) => errs.push(format!(
                    "container {name}: mountPropagation {other} is invalid here"
                )),
            }
        }
    }
    errs
}

/// A ConfigMap's embedded files parse as what their names say.
fn check_configmap(cm: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(data) = at(cm, &["data"]).and_then(Value::as_mapping) else {
        return vec!["no data".into()];
    };
    for (k, v) in data {
        let key = k.as_str().unwrap_or("?");
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errs.push(format!("data key {key:?} is not a valid ConfigMap key"));
        }
        let Some(text) = v.as_str() else {
            errs.push(format!("data.{key} is not a string"));
            continue;
        };
        let ext = key.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let result = match ext {
            "toml" => toml::from_str::<toml::Value>(text)
                .map(drop)
                .map_err(|e| e.to_string()),
            "json" => serde_json::from_str::<serde_json::Value>(text)
                .map(drop)
                .map_err(|e| e.to_string()),
            "conflist" => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(list) => match check_conflist(&list) {
                    e if e.is_empty() => Ok(()),
                    e => Err(e.join("; ")),
                },
                Err(e) => Err(e.to_string()),
            },
            "yaml" | "yml" => parse_yaml_documents(text).map(drop),
            _ => Ok(()),
        };
        if let Err(e) = result {
            errs.push(format!("data.{key}: {e}"));
        }
    }
    errs
}

fn check_cluster_role(role: &Value) -> Vec<String> {
    let rules = seq_at(role, &["rules"]);
    if rules.is_empty() {
        return vec!["no rules".into()];
    }
    let mut errs = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for field in ["apiGroups", "resources", "verbs"] {
            if strings_at(rule, &[field]).is_empty() {
                errs.push(format!("rules[{i}].{field} is missing or empty"));
            }
        }
    }
    errs
}

fn check_binding(binding: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for field in ["apiGroup", "kind", "name"] {
        if str_at(binding, &["roleRef", field]).is_none() {
            errs.push(format!("roleRef.{field} is missing"));
        }
    }
    let subjects = seq_at(binding, &["subjects"]);
    if subjects.is_empty() {
        errs.push("no subjects".into());
    }
    for s in subjects {
        if str_at(s, &["kind"]) == Some("ServiceAccount") && str_at(s, &["namespace"]).is_none() {
            errs.push("a ServiceAccount subject without a namespace".into());
        }
    }
    errs
}

/// Whether a ClusterRole allows `verb` on `group`/`resource`.
fn grants(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    seq_at(role, &["rules"]).iter().any(|rule| {
        let has = |field: &str, want: &str| {
            strings_at(rule, &[field])
                .iter()
                .any(|s| *s == want || *s == "*")
        };
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

// ------------------------------------------------------------------------------------------
// CNI config list, cluster file, daemon configurations
// ------------------------------------------------------------------------------------------

/// A CNI network configuration list (CNI spec, "Network configuration lists") whose first
/// plugin is podlane's.
fn check_conflist(list: &serde_json::Value) -> Vec<String> {
    let mut errs = Vec::new();
    match list.get("cniVersion").and_then(|v| v.as_str()) {
        Some("0.3.1" | "0.4.0" | "1.0.0" | "1.1.0") => {}
        Some(v) => errs.push(format!("cniVersion {v} is not one podlane's plugin speaks")),
        None => errs.push("no cniVersion".into()),
    }
    match list.get("name").and_then(|v| v.as_str()) {
        Some(n) if !n.is_empty() => {}
        _ => errs.push("no name".into()),
    }
    let plugins = list
        .get("plugins")
        .and_then(|p| p.as_array())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if plugins.is_empty() {
        errs.push("no plugins".into());
        return errs;
    }
    for (i, p) in plugins.iter().enumerate() {
        if p.get("type")
            .and_then(|t| t.as_str())
            .is_none_or(str::is_empty)
        {
            errs.push(format!("plugins[{i}] has no type"));
        }
    }
    if plugins[0].get("type").and_then(|t| t.as_str()) != Some("podlane") {
        errs.push("plugins[0].type is not \"podlane\" (the interface must exist before chained plugins run)".into());
    }
    match plugins[0].get("socket").and_then(|s| s.as_str()) {
        Some(s) if s.starts_with('/') => {}
        _ => errs.push("plugins[0].socket is not an absolute path".into()),
    }
    errs
}

/// The control daemon's keys (deploy/control.toml); the daemon knows no others. The node's
/// name is `node_name` or the `[node] name` of `node_file`: exactly one of the two is given.
const CONTROL_KEYS: &[&str] = &[
    "state_dir",
    "cluster_file",
    "cni_socket",
    "fastpath_socket",
    "http_listen",
    "health_check_address",
    "host_interface",
    "pod_mtu",
    "max_pod_ports",
];

fn check_control_config(c: &toml::Value) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(table) = c.as_table() else {
        return vec!["not a table".into()];
    };
    for key in CONTROL_KEYS {
        if !table.contains_key(*key) {
            errs.push(format!("{key} is missing"));
        }
    }
    for key in table.keys() {
        if !CONTROL_KEYS.contains(&key.as_str()) && key != "node_name" && key != "node_file" {
            errs.push(format!("unknown key {key}"));
        }
    }
    match (tstr(c, &["node_name"]), tstr(c, &["node_file"])) {
        (Some(n), None) if !n.is_empty() => {}
        (None, Some(f)) if f.starts_with('/') => {}
        (None, Some(_)) => errs.push("node_file is not an absolute path".into()),
        (Some(_), Some(_)) => errs.push("node_name and node_file are both set".into()),
        _ => errs.push("node_name is not a non-empty string (nor is node_file set)".into()),
    }
    for key in ["state_dir", "cluster_file", "cni_socket", "fastpath_socket"] {
        if !tstr(c, &[key]).is_some_and(|p| p.starts_with('/')) {
            errs.push(format!("{key} is not an absolute path"));
        }
    }
    if tstr(c, &["http_listen"])
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .is_none()
    {
        errs.push("http_listen is not an address:port".into());
    }
    if tstr(c, &["health_check_address"])
        .and_then(|s| s.parse::<std::net::IpAddr>().ok())
        .is_none()
    {
        errs.push("health_check_address is not an IP address".into());
    }
    if tstr(c, &["host_interface"]).is_none_or(|s| s.is_empty() || s.len() > 15) {
        errs.push("host_interface is not an interface name (1 to 15 characters)".into());
    }
    if !tint(c, &["pod_mtu"]).is_some_and(|m| (576..=9000).contains(&m)) {
        errs.push("pod_mtu is not an MTU (576..=9000)".into());
    }
    if !tint(c, &["max_pod_ports"]).is_some_and(|n| (1..=65535).contains(&n)) {
        errs.push("max_pod_ports is not in 1..=65535".into());
    }
    errs
}

/// The cluster file: a Service CIDR, nodes with their addresses, Services with ports and
/// endpoints in some node's pod CIDR.
fn check_cluster_file(cluster: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let service_cidr = str_at(cluster, &["service_cidr"]).and_then(parse_cidr);
    if service_cidr.is_none() {
        errs.push("service_cidr is missing or not a CIDR".into());
    }
    let nodes = seq_at(cluster, &["nodes"]);
    if nodes.is_empty() {
        errs.push("no nodes".into());
    }
    let mut node_names = BTreeSet::new();
    let mut pod_cidrs = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let name = str_at(n, &["name"]).unwrap_or("");
        if name.is_empty() || !node_names.insert(name) {
            errs.push(format!("nodes[{i}]: name missing or repeated"));
        }
        if str_at(n, &["underlay_ip"])
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .is_none()
        {
            errs.push(format!("node {name}: underlay_ip missing or not IPv4"));
        }
        for key in ["underlay_mac", "vtep_mac"] {
            if !str_at(n, &[key]).is_some_and(is_mac) {
                errs.push(format!("node {name}: {key} missing or not a MAC"));
            }
        }
        match str_at(n, &["pod_cidr"]).and_then(parse_cidr) {
            Some(c) => pod_cidrs.push(c),
            None => errs.push(format!("node {name}: pod_cidr missing or not a CIDR")),
        }
    }
    let services = seq_at(cluster, &["services"]);
    if services.is_empty() {
        errs.push("no services".into());
    }
    for (i, s) in services.iter().enumerate() {
        let name = format!(
            "{}/{}",
            str_at(s, &["namespace"]).unwrap_or(""),
            str_at(s, &["name"]).unwrap_or("")
        );
        if str_at(s, &["namespace"]).is_none() || str_at(s, &["name"]).is_none() {
            errs.push(format!("services[{i}]: namespace or name missing"));
        }
        match str_at(s, &["cluster_ip"]).and_then(|s| s.parse::<Ipv4Addr>().ok()) {
            Some(ip) if service_cidr.is_some_and(|c| cidr_contains(c, ip)) => {}
            _ => errs.push(format!(
                "service {name}: cluster_ip missing or outside service_cidr"
            )),
        }
        let ports = seq_at(s, &["ports"]);
        if ports.is_empty() {
            errs.push(format!("service {name}: no ports"));
        }
        for p in ports {
            let port = at(p, &["port"]).and_then(Value::as_u64);
            if !port.is_some_and(|p| (1..=65535).contains(&p)) {
                errs.push(format!("service {name}: a port without a valid port"));
            }
            if !matches!(str_at(p, &["protocol"]), Some("TCP" | "UDP")) {
                errs.push(format!("service {name}: protocol is not TCP or UDP"));
            }
            if !at(p, &["target_port"])
                .and_then(Value::as_u64)
                .is_some_and(|p| (1..=65535).contains(&p))
            {
                errs.push(format!("service {name}: target_port missing or invalid"));
            }
            if let Some(np) = at(p, &["node_port"]) {
                if !np.as_u64().is_some_and(|p| (30000..=32767).contains(&p)) {
                    errs.push(format!("service {name}: node_port outside 30000-32767"));
                }
            }
        }
        for e in seq_at(s, &["endpoints"]) {
            match str_at(e, &["ip"]).and_then(|s| s.parse::<Ipv4Addr>().ok()) {
                Some(ip) if pod_cidrs.iter().any(|c| cidr_contains(*c, ip)) => {}
                _ => errs.push(format!(
                    "service {name}: endpoint ip missing or in no node's pod CIDR"
                )),
            }
            if at(e, &["terminating"]).is_some_and(|t| t.as_bool().is_none()) {
                errs.push(format!(
                    "service {name}: endpoint terminating is not a boolean"
                ));
            }
        }
    }
    errs
}

/// The fast path's `[node]` keys that differ per node: in the node file, not in a
/// configuration every node shares.
const NODE_OWN_KEYS: [&str; 6] = [
    "name",
    "underlay_ip",
    "underlay_mac",
    "vtep_mac",
    "pod_cidr",
    "host_mac",
];

/// The configurations as the daemons complete them with a node file (`node`, the TOML of
/// the file both name in `node_file`): the fast path's `[node]` and `[eal]` get the file's
/// keys (one it has already is an error, as the daemon refuses it) and its `[[ports]]` the
/// file's; control's
/// `node_name` is the file's `[node] name`.
fn with_node_file(
    control: &toml::Value,
    fastpath: &toml::Value,
    node: &toml::Value,
) -> Result<(toml::Value, toml::Value), String> {
    let (mut control, mut fastpath) = (control.clone(), fastpath.clone());
    let name = tstr(node, &["node", "name"]).ok_or("the node file has no [node] name")?;
    let c = control.as_table_mut().ok_or("control: not a table")?;
    c.remove("node_file").ok_or("control has no node_file")?;
    c.insert("node_name".into(), toml::Value::String(name.into()));
    let f = fastpath.as_table_mut().ok_or("fast path: not a table")?;
    f.remove("node_file")
        .ok_or("the fast path has no node_file")?;
    for (key, value) in node.as_table().ok_or("node file: not a table")? {
        match (key.as_str(), value) {
            ("node" | "eal", toml::Value::Table(keys)) => {
                let section = f
                    .entry(key.as_str())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or(format!("[{key}] is not a table"))?;
                for (k, v) in keys {
                    if section.insert(k.clone(), v.clone()).is_some() {
                        return Err(format!(
                            "[{key}] {k} is in both the fast path and the node file"
                        ));
                    }
                }
            }
            ("ports", toml::Value::Array(ports)) => f
                .entry("ports")
                .or_insert_with(|| toml::Value::Array(Vec::new()))
                .as_array_mut()
                .ok_or("ports is not an array")?
                .extend(ports.iter().cloned()),
            _ => {
                return Err(format!(
                    "{key} in the node file: only [node], [eal] and [[ports]]"
                ))
            }
        }
    }
    Ok((control, fastpath))
}

/// One node's set of files agree: control daemon, fast path, cluster file, CNI config list.
fn check_agreement(
    control: &toml::Value,
    fastpath: &toml::Value,
    cluster: &Value,
    conflist: &serde_json::Value,
) -> Vec<String> {
    fn differ(what: &str, a: Option<&str>, b: Option<&str>) -> Option<String> {
        (a.is_none() || a != b).then(|| format!("{what}: {a:?} vs {b:?}"))
    }
    let mut errs = Vec::new();
    let max_ports = (
        tint(control, &["max_pod_ports"]).map(|n| n.to_string()),
        tint(fastpath, &["capacities", "max_pod_ports"]).map(|n| n.to_string()),
    );
    let node_name = tstr(control, &["node_name"]).unwrap_or("");
    // The interface of the fast path's host-path port: net_tap's `iface=` devarg.
    let host_iface = fastpath
        .get("ports")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .find(|p| p.get("role").and_then(|r| r.as_str()) == Some("host"))
        .and_then(|p| p.get("devargs").and_then(|d| d.as_str()))
        .and_then(|d| d.split(',').find_map(|kv| kv.strip_prefix("iface=")));
    let mut pairs = vec![
        (
            "control host_interface vs the fast path's host port iface".to_owned(),
            tstr(control, &["host_interface"]),
            host_iface,
        ),
        (
            "control max_pod_ports vs fast path capacities.max_pod_ports".to_owned(),
            max_ports.0.as_deref(),
            max_ports.1.as_deref(),
        ),
        (
            "control fastpath_socket vs fast path control_socket".to_owned(),
            tstr(control, &["fastpath_socket"]),
            tstr(fastpath, &["control_socket"]),
        ),
        (
            "control node_name vs fast path node.name".to_owned(),
            tstr(control, &["node_name"]),
            tstr(fastpath, &["node", "name"]),
        ),
        (
            "control cni_socket vs the podlane plugin's socket".to_owned(),
            tstr(control, &["cni_socket"]),
            conflist
                .pointer("/plugins/0/socket")
                .and_then(|v| v.as_str()),
        ),
        (
            "cluster file service_cidr vs fast path node.service_cidr".to_owned(),
            str_at(cluster, &["service_cidr"]),
            tstr(fastpath, &["node", "service_cidr"]),
        ),
    ];
    match seq_at(cluster, &["nodes"])
        .iter()
        .find(|n| str_at(n, &["name"]) == Some(node_name))
    {
        None => errs.push(format!("node {node_name:?} is not in the cluster file")),
        Some(node) => {
            for key in ["underlay_ip", "underlay_mac", "vtep_mac", "pod_cidr"] {
                pairs.push((
                    format!("cluster file node {node_name} {key} vs fast path node.{key}"),
                    str_at(node, &[key]),
                    tstr(fastpath, &["node", key]),
                ));
            }
        }
    }
    errs.extend(
        pairs
            .into_iter()
            .filter_map(|(what, a, b)| differ(&what, a, b)),
    );
    let (mtu, underlay) = (
        tint(control, &["pod_mtu"]),
        tint(fastpath, &["node", "underlay_mtu"]),
    );
    if !matches!((mtu, underlay), (Some(m), Some(u)) if m + 50 <= u) {
        errs.push(format!(
            "pod_mtu {mtu:?} leaves no room for the 50 bytes of VXLAN in underlay_mtu {underlay:?}"
        ));
    }
    errs
}

// ------------------------------------------------------------------------------------------
// Pod helpers: what a container sees through its mounts
// ------------------------------------------------------------------------------------------

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    seq_at(pod, &[list])
        .iter()
        .find(|c| str_at(c, &["name"]) == Some(name))
        .unwrap_or_else(|| panic!("no {list} entry named {name}"))
}

fn volume<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    seq_at(pod, &["volumes"])
        .iter()
        .find(|v| str_at(v, &["name"]) == Some(name))
}

/// The mount (mountPath, volume) through which a container sees `path`: the deepest one.
fn mount_for<'a>(pod: &'a Value, c: &'a Value, path: &str) -> Option<(&'a str, &'a Value)> {
    seq_at(c, &["volumeMounts"])
        .iter()
        .filter_map(|m| Some((str_at(m, &["mountPath"])?, str_at(m, &["name"])?)))
        .filter(|(mp, _)| is_under(path, mp))
        .max_by_key(|(mp, _)| mp.len())
        .and_then(|(mp, vol)| Some((mp, volume(pod, vol)?)))
}

/// The host path behind a path in a container, when a hostPath volume provides it.
fn host_path(pod: &Value, c: &Value, path: &str) -> Option<String> {
    let (mount, vol) = mount_for(pod, c, path)?;
    let host = str_at(vol, &["hostPath", "path"])?;
    let rest = &path[mount.trim_end_matches('/').len()..];
    Some(format!("{}{rest}", host.trim_end_matches('/')))
}

/// The ConfigMap (name, key) behind a file in a container.
fn configmap_key<'a>(pod: &'a Value, c: &'a Value, path: &'a str) -> Option<(&'a str, &'a str)> {
    let (mount, vol) = mount_for(pod, c, path)?;
    let cm = str_at(vol, &["configMap", "name"])?;
    let rest = path[mount.trim_end_matches('/').len()..].trim_start_matches('/');
    let key = match at(vol, &["configMap", "items"]).and_then(Value::as_sequence) {
        Some(items) => items
            .iter()
            .find(|i| str_at(i, &["path"]) == Some(rest))
            .and_then(|i| str_at(i, &["key"]))?,
        None => rest,
    };
    Some((cm, key))
}

fn command_line(c: &Value) -> Vec<&str> {
    let mut line = strings_at(c, &["command"]);
    line.extend(strings_at(c, &["args"]));
    line
}

/// The file a container's `--config` names, parsed from the ConfigMap mounted there.
fn config_from_configmap(pod: &Value, c: &Value, cm: &Value) -> toml::Value {
    let line = command_line(c);
    let path = line
        .iter()
        .position(|a| *a == "--config")
        .and_then(|i| line.get(i + 1))
        .expect("a --config argument");
    let (cm_name, key) = configmap_key(pod, c, path)
        .unwrap_or_else(|| panic!("{path} does not come from a ConfigMap volume"));
    assert_eq!(Some(cm_name), str_at(cm, &["metadata", "name"]), "{path}");
    let text = str_at(cm, &["data", key]).unwrap_or_else(|| panic!("ConfigMap has no {key}"));
    toml::from_str(text).unwrap_or_else(|e| panic!("ConfigMap {key}: {e}"))
}

// ------------------------------------------------------------------------------------------
// Tests over the real files
// ------------------------------------------------------------------------------------------

#[test]
fn every_deploy_file_parses_and_the_expected_ones_exist() {
    let files = load_all();
    for rel in [
        "kubernetes/daemonset.yaml",
        "kubernetes/configmap.yaml",
        "kubernetes/rbac.yaml",
        "cni/10-podlane.conflist",
        "control.toml",
        "fastpath.toml",
        "cluster.yaml",
    ] {
        file(&files, rel);
    }
}

#[test]
fn every_kubernetes_object_is_well_formed_and_unique() {
    let files = load_all();
    let objects = k8s_objects(&files);
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (rel, obj) in &objects {
        errs.extend(
            check_object(obj)
                .into_iter()
                .map(|e| format!("deploy/{rel}: {e}")),
        );
        let id = (
            str_at(obj, &["kind"]),
            str_at(obj, &["metadata", "namespace"]),
            str_at(obj, &["metadata", "name"]),
        );
        if !seen.insert(id) {
            errs.push(format!("deploy/{rel}: {id:?} defined twice"));
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
    let kinds: BTreeSet<&str> = objects
        .iter()
        .filter_map(|(_, o)| str_at(o, &["kind"]))
        .collect();
    let want: BTreeSet<&str> = KINDS.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(kinds, want, "one object of every kind podlane deploys");
}

#[test]
fn the_daemonset_runs_both_daemons_on_the_host_network() {
    let files = load_all();
    let objects = k8s_objects(&files);
    let ds = find_object(&objects, "DaemonSet", "podlane");
    assert_eq!(str_at(ds, &["metadata", "namespace"]), Some("kube-system"));
    assert_eq!(
        str_at(ds, &["spec", "updateStrategy", "type"]),
        Some("RollingUpdate")
    );
    assert_eq!(
        at(
            ds,
            &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"]
        )
        .and_then(Value::as_u64),
        Some(1)
    );
    let pod = at(ds, &["spec", "template", "spec"]).expect("pod spec");
    assert_eq!(
        at(pod, &["hostNetwork"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_ne!(at(pod, &["hostPID"]).and_then(Value::as_bool), Some(true));
    assert_eq!(
        str_at(pod, &["priorityClassName"]),
        Some("system-node-critical")
    );
    assert!(
        seq_at(pod, &["tolerations"])
            .iter()
            .any(|t| str_at(t, &["operator"]) == Some("Exists")
                && t.get("key").is_none()
                && t.get("effect").is_none()),
        "a toleration for every taint (operator Exists, no key, no effect)"
    );
    for c in seq_at(pod, &["containers"])
        .iter()
        .chain(seq_at(pod, &["initContainers"]))
    {
        let name = str_at(c, &["name"]).unwrap_or("?");
        assert!(
            at(c, &["resources", "requests"])
                .and_then(Value::as_mapping)
                .is_some_and(|r| !r.is_empty()),
            "container {name} requests no resources"
        );
    }

    // The fast path: its command, hugepages, devices, the shared run directory.
    let fastpath = container(pod, "containers", "fastpath");
    assert_eq!(
        command_line(fastpath),
        ["podlane-fastpath", "--config", "/etc/podlane/fastpath.toml"]
    );
    let hugepages =
        |kind: &str| at(fastpath, &["resources", kind, "hugepages-2Mi"]).and_then(Value::as_str);
    assert!(
        hugepages("requests").is_some(),
        "fastpath requests hugepages-2Mi"
    );
    assert_eq!(
        hugepages("requests"),
        hugepages("limits"),
        "hugepages: requests = limits"
    );
    assert!(
        at(fastpath, &["resources", "limits", "cpu"]).is_none(),
        "no CPU limit on a poll-mode loop (CFS throttling stalls it)"
    );
    let (_, huge) = mount_for(pod, fastpath, "/dev/hugepages").expect("/dev/hugepages mounted");
    assert!(
        str_at(huge, &["emptyDir", "medium"]).is_some_and(|m| m.starts_with("HugePages")),
        "/dev/hugepages is a HugePages emptyDir"
    );
    for (path, host) in [
        ("/dev/vfio", "/dev/vfio"),
        ("/dev/net/tun", "/dev/net/tun"),
        ("/run/podlane", "/run/podlane"),
        ("/sys/bus/pci", "/sys/bus/pci"),
    ] {
        assert_eq!(
            host_path(pod, fastpath, path).as_deref(),
            Some(host),
            "fastpath {path}"
        );
    }

    // The control daemon: its command, state on the host, pod namespaces, probes.
    let control = container(pod, "containers", "control");
    assert_eq!(
        command_line(control),
        ["podlane-control", "--config", "/etc/podlane/control.toml"]
    );
    let cm = find_object(&objects, "ConfigMap", "podlane-config");
    let control_toml = config_from_configmap(pod, control, cm);
    let fastpath_toml = config_from_configmap(pod, fastpath, cm);
    // Both read this node's identity from one file on the host.
    let node_file = tstr(&control_toml, &["node_file"]).expect("node_file");
    assert_eq!(tstr(&fastpath_toml, &["node_file"]), Some(node_file));
    for c in [fastpath, control] {
        assert_eq!(
            host_path(pod, c, node_file).as_deref(),
            Some("/etc/podlane/node.toml"),
            "node_file {node_file} is the host's /etc/podlane/node.toml"
        );
    }
    let state_dir = tstr(&control_toml, &["state_dir"]).expect("state_dir");
    assert!(
        host_path(pod, control, state_dir).is_some_and(|h| h.starts_with("/var/lib/podlane")),
        "state_dir {state_dir} is on the host's /var/lib/podlane (survives the pod)"
    );
    let cluster_file = tstr(&control_toml, &["cluster_file"]).expect("cluster_file");
    let (_, key) =
        configmap_key(pod, control, cluster_file).expect("cluster file from the ConfigMap");
    assert!(str_at(cm, &["data", key]).is_some(), "ConfigMap has {key}");
    // Both daemons see the same socket file, on the host.
    let fp_socket = tstr(&fastpath_toml, &["control_socket"]).expect("control_socket");
    let ctl_socket = tstr(&control_toml, &["fastpath_socket"]).expect("fastpath_socket");
    let shared = host_path(pod, fastpath, fp_socket);
    assert!(shared.is_some(), "the fast path's socket is on a hostPath");
    assert_eq!(
        shared,
        host_path(pod, control, ctl_socket),
        "one socket, both containers"
    );
    // The CNI plugin runs in the host's namespaces: the socket it dials is the host path.
    let conflist: serde_json::Value =
        serde_json::from_str(str_at(cm, &["data", "10-podlane.conflist"]).expect("conflist"))
            .unwrap();
    let cni_socket = tstr(&control_toml, &["cni_socket"]).expect("cni_socket");
    assert_eq!(
        host_path(pod, control, cni_socket).as_deref(),
        conflist
            .pointer("/plugins/0/socket")
            .and_then(|v| v.as_str()),
        "the plugin's socket is the control daemon's cni_socket as the host sees it"
    );
    let netns = seq_at(control, &["volumeMounts"])
        .iter()
        .find(|m| {
            matches!(
                str_at(m, &["mountPath"]),
                Some("/var/run/netns" | "/run/netns")
            )
        })
        .expect("pods' network namespaces mounted in control");
    assert_eq!(
        str_at(netns, &["mountPropagation"]),
        Some("HostToContainer")
    );
    assert!(
        seq_at(control, &["volumeMounts"]).iter().any(|m| {
            str_at(m, &["name"])
                .and_then(|v| volume(pod, v))
                .and_then(|v| str_at(v, &["hostPath", "path"]))
                == Some("/proc")
                && str_at(m, &["mountPropagation"]) == Some("HostToContainer")
        }),
        "the host's /proc mounted in control (CNI_NETNS paths /proc/PID/ns/net)"
    );
    let listen: SocketAddr = tstr(&control_toml, &["http_listen"])
        .unwrap()
        .parse()
        .unwrap();
    for probe in ["livenessProbe", "readinessProbe"] {
        let get =
            at(control, &[probe, "httpGet"]).unwrap_or_else(|| panic!("control {probe} httpGet"));
        assert_eq!(str_at(get, &["path"]), Some("/healthz"), "{probe}");
        let port = match at(get, &["port"]) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(name)) => seq_at(control, &["ports"])
                .iter()
                .find(|p| str_at(p, &["name"]) == Some(name.as_str()))
                .and_then(|p| at(p, &["containerPort"])?.as_u64()),
            _ => None,
        };
        assert_eq!(
            port,
            Some(u64::from(listen.port())),
            "{probe} port vs http_listen"
        );
        if listen.ip().is_loopback() {
            // With hostNetwork, kubelet probes the node's IP unless told otherwise.
            assert_eq!(
                str_at(get, &["host"]),
                Some(listen.ip().to_string().as_str()),
                "{probe} host"
            );
        }
    }

    // The CNI installer writes the plugin and the list where kubelet's runtime looks.
    let install = container(pod, "initContainers", "install-cni");
    let script = command_line(install).join(" ");
    for (host_dir, file) in [
        ("/opt/cni/bin", "podlane"),
        ("/etc/cni/net.d", "10-podlane.conflist"),
    ] {
        let mount = seq_at(install, &["volumeMounts"])
            .iter()
            .find(|m| {
                str_at(m, &["name"])
                    .and_then(|v| volume(pod, v))
                    .and_then(|v| str_at(v, &["hostPath", "path"]))
                    == Some(host_dir)
            })
            .and_then(|m| str_at(m, &["mountPath"]))
            .unwrap_or_else(|| panic!("install-cni mounts the host's {host_dir}"));
        let target = format!("{}/{file}", mount.trim_end_matches('/'));
        assert!(script.contains(&target), "install-cni writes {target}");
    }
    assert!(
        configmap_key(pod, install, "/etc/podlane/10-podlane.conflist").is_some(),
        "install-cni sees the ConfigMap's conflist"
    );
}

#[test]
fn rbac_lets_the_daemonset_read_nodes_services_endpointslices_and_pods() {
    let files = load_all();
    let objects = k8s_objects(&files);
    let ds = find_object(&objects, "DaemonSet", "podlane");
    let sa_name = str_at(ds, &["spec", "template", "spec", "serviceAccountName"])
        .expect("serviceAccountName");
    let ns = str_at(ds, &["metadata", "namespace"]).unwrap();
    let sa = find_object(&objects, "ServiceAccount", sa_name);
    assert_eq!(str_at(sa, &["metadata", "namespace"]), Some(ns));
    let binding = find_object(&objects, "ClusterRoleBinding", "podlane");
    assert_eq!(str_at(binding, &["roleRef", "kind"]), Some("ClusterRole"));
    assert_eq!(
        str_at(binding, &["roleRef", "apiGroup"]),
        Some("rbac.authorization.k8s.io")
    );
    let role = find_object(
        &objects,
        "ClusterRole",
        str_at(binding, &["roleRef", "name"]).unwrap(),
    );
    assert!(
        seq_at(binding, &["subjects"])
            .iter()
            .any(|s| str_at(s, &["kind"]) == Some("ServiceAccount")
                && str_at(s, &["name"]) == Some(sa_name)
                && str_at(s, &["namespace"]) == Some(ns)),
        "the binding names ServiceAccount {ns}/{sa_name}"
    );
    for (group, resource) in [
        ("", "nodes"),
        ("", "services"),
        ("", "pods"),
        ("discovery.k8s.io", "endpointslices"),
    ] {
        for verb in ["get", "list", "watch"] {
            assert!(
                grants(role, group, resource, verb),
                "{verb} {group}/{resource}"
            );
        }
    }
    // Its own Node's annotations (control's annotate_node), and nothing else written.
    assert!(grants(role, "", "nodes", "patch"), "patch nodes");
    for (group, resource) in [
        ("", "services"),
        ("", "pods"),
        ("discovery.k8s.io", "endpointslices"),
    ] {
        for verb in ["create", "update", "patch", "delete"] {
            assert!(!grants(role, group, resource, verb), "{verb} {resource}");
        }
    }
    for verb in ["create", "update", "delete"] {
        assert!(!grants(role, "", "nodes", verb), "{verb} nodes");
    }
}

#[test]
fn the_cni_config_list_and_its_configmap_copy_are_valid_and_identical() {
    let files = load_all();
    let list = json_file(&files, "cni/10-podlane.conflist");
    let errs = check_conflist(list);
    assert!(errs.is_empty(), "deploy/cni/10-podlane.conflist: {errs:?}");
    assert_eq!(list["cniVersion"], "1.0.0");
    assert_eq!(list["name"], "podlane");
    let objects = k8s_objects(&files);
    let cm = find_object(&objects, "ConfigMap", "podlane-config");
    let copy: serde_json::Value = serde_json::from_str(
        str_at(cm, &["data", "10-podlane.conflist"]).expect("ConfigMap conflist"),
    )
    .unwrap();
    assert_eq!(
        &copy, list,
        "the ConfigMap's conflist is deploy/cni/10-podlane.conflist"
    );
}

#[test]
fn the_sample_configs_have_every_key_and_agree() {
    let files = load_all();
    let control = toml_file(&files, "control.toml");
    let errs = check_control_config(control);
    assert!(errs.is_empty(), "deploy/control.toml: {errs:?}");
    let cluster = &yaml_docs(&files, "cluster.yaml")[0];
    let errs = check_cluster_file(cluster);
    assert!(errs.is_empty(), "deploy/cluster.yaml: {errs:?}");
    let errs = check_agreement(
        control,
        toml_file(&files, "fastpath.toml"),
        cluster,
        json_file(&files, "cni/10-podlane.conflist"),
    );
    assert!(
        errs.is_empty(),
        "deploy/{{control,fastpath}}.toml, cluster.yaml, conflist: {errs:?}"
    );
}

#[test]
fn the_configmap_files_have_every_key_and_agree() {
    let files = load_all();
    let objects = k8s_objects(&files);
    let cm = find_object(&objects, "ConfigMap", "podlane-config");
    let data =
        |key: &str| str_at(cm, &["data", key]).unwrap_or_else(|| panic!("ConfigMap has no {key}"));
    let control: toml::Value = toml::from_str(data("control.toml")).unwrap();
    let fastpath: toml::Value = toml::from_str(data("fastpath.toml")).unwrap();
    let cluster = &parse_yaml_documents(data("cluster.yaml")).unwrap()[0];
    let conflist: serde_json::Value = serde_json::from_str(data("10-podlane.conflist")).unwrap();
    let mut errs = check_control_config(&control);
    errs.extend(check_cluster_file(cluster));
    // One ConfigMap for every node: no node's identity in it, the node file completes it.
    for key in NODE_OWN_KEYS {
        if tget(&fastpath, &["node", key]).is_some() {
            errs.push(format!(
                "fastpath.toml [node] {key}: per node, not in the shared ConfigMap"
            ));
        }
    }
    if tstr(&control, &["node_name"]).is_some() {
        errs.push("control.toml node_name: per node, not in the shared ConfigMap".into());
    }
    assert_eq!(
        tstr(&control, &["node_file"]),
        tstr(&fastpath, &["node_file"]),
        "both daemons read one node file"
    );
    let node = toml_file(&files, "kubernetes/node.toml");
    match with_node_file(&control, &fastpath, node) {
        Ok((control, fastpath)) => {
            errs.extend(check_agreement(&control, &fastpath, cluster, &conflist));
            let uplinks = tget(&fastpath, &["ports"])
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter(|p| tstr(p, &["role"]) == Some("uplink"))
                .count();
            if uplinks != 1 {
                errs.push(format!("{uplinks} uplinks with the node file, not 1"));
            }
        }
        Err(e) => errs.push(e),
    }
    assert!(
        errs.is_empty(),
        "ConfigMap podlane-config with kubernetes/node.toml: {errs:?}"
    );
}

// ------------------------------------------------------------------------------------------
// The checks fail on broken input
// ------------------------------------------------------------------------------------------

fn real_daemonset() -> Value {
    let files = load_all();
    let objects = k8s_objects(&files);
    find_object(&objects, "DaemonSet", "podlane").clone()
}

fn containers_mut(ds: &mut Value) -> &mut Vec<Value> {
    ds["spec"]["template"]["spec"]["containers"]
        .as_sequence_mut()
        .expect("containers")
}

#[test]
fn a_mount_of_an_undeclared_volume_is_rejected() {
    let mut ds = real_daemonset();
    assert_eq!(check_object(&ds), Vec::<String>::new());
    let mounts = containers_mut(&mut ds)[0]["volumeMounts"]
        .as_sequence_mut()
        .expect("volumeMounts");
    mounts.push(serde_yaml::from_str("{name: no-such-volume, mountPath: /nowhere}").unwrap());
    let errs = check_object(&ds);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("no-such-volume") && errs[0].contains("does not declare"),
        "{errs:?}"
    );
}

/// A way to break a DaemonSet, and words the error must contain.
type Breakage = (&'static str, fn(&mut Value));

#[test]
fn broken_daemonsets_are_rejected() {
    let breakages: [Breakage; 5] = [
        ("not on the pod template", |ds| {
            ds["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "other".into();
        }),
        ("hostNetwork", |ds| {
            ds["spec"]["template"]["spec"]["hostNetwork"] = false.into();
        }),
        ("has no image", |ds| {
            containers_mut(ds)[1]["image"] = "".into();
        }),
        ("not privileged", |ds| {
            containers_mut(ds)[0]["securityContext"]["privileged"] = false.into();
        }),
        ("used twice", |ds| {
            let first = containers_mut(ds)[0].clone();
            containers_mut(ds).push(first);
        }),
    ];
    for (want, breakage) in breakages {
        let mut ds = real_daemonset();
        breakage(&mut ds);
        let errs = check_object(&ds);
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:?}");
    }
}

#[test]
fn broken_objects_are_rejected() {
    let cases = [
        ("kind: ConfigMap\nmetadata: {name: x, namespace: y}\ndata: {}", "apiVersion"),
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: y}", "kind not among"),
        ("apiVersion: apps/v1\nkind: ConfigMap\nmetadata: {name: x, namespace: y}\ndata: {}", "expected v1"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: y}\ndata: {}", "metadata.name"),
        ("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}", "namespace"),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x, namespace: y}\nrules: [{apiGroups: [''], resources: [pods], verbs: [get]}]",
            "cluster-scoped",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: y}\ndata: {a.toml: 'not = = toml'}",
            "data.a.toml",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: y}\ndata: {l.conflist: '{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"plugins\": [{\"type\": \"bridge\"}]}'}",
            "plugins[0].type",
        ),
    ];
    for (yaml, want) in cases {
        let obj: Value = serde_yaml::from_str(yaml).unwrap();
        let errs = check_object(&obj);
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{want}: {errs:?} for\n{yaml}"
        );
    }
}

#[test]
fn rbac_without_watch_does_not_grant_watch() {
    let role: Value = serde_yaml::from_str(
        "rules: [{apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list]}]",
    )
    .unwrap();
    assert!(grants(&role, "discovery.k8s.io", "endpointslices", "list"));
    assert!(!grants(
        &role,
        "discovery.k8s.io",
        "endpointslices",
        "watch"
    ));
    assert!(!grants(&role, "", "endpointslices", "list"));
}

#[test]
fn mismatched_or_incomplete_configs_are_rejected() {
    let files = load_all();
    let control = toml_file(&files, "control.toml");
    let fastpath = toml_file(&files, "fastpath.toml");
    let cluster = &yaml_docs(&files, "cluster.yaml")[0];
    let conflist = json_file(&files, "cni/10-podlane.conflist");

    let mut fewer_ports = control.clone();
    fewer_ports["max_pod_ports"] = toml::Value::Integer(512);
    let errs = check_agreement(&fewer_ports, fastpath, cluster, conflist);
    assert!(errs.iter().any(|e| e.contains("max_pod_ports")), "{errs:?}");

    let mut other_socket = conflist.clone();
    other_socket["plugins"][0]["socket"] = "/run/other.sock".into();
    let errs = check_agreement(control, fastpath, cluster, &other_socket);
    assert!(errs.iter().any(|e| e.contains("cni_socket")), "{errs:?}");

    let mut no_key = control.clone();
    no_key.as_table_mut().unwrap().remove("pod_mtu");
    assert!(check_control_config(&no_key)
        .iter()
        .any(|e| e.contains("pod_mtu is missing")));

    // The node's name from both places, or from neither.
    let mut both = control.clone();
    both.as_table_mut()
        .unwrap()
        .insert("node_file".into(), "/etc/podlane-node/node.toml".into());
    assert!(check_control_config(&both)
        .iter()
        .any(|e| e.contains("both")));
    let mut neither = control.clone();
    neither.as_table_mut().unwrap().remove("node_name");
    assert!(check_control_config(&neither)
        .iter()
        .any(|e| e.contains("node_name")));
    // A node file that repeats a key of the shared [node], or holds more than a node's.
    let node = toml_file(&files, "kubernetes/node.toml");
    let mut shared = (control.clone(), fastpath.clone());
    shared.0.as_table_mut().unwrap().remove("node_name");
    for t in [&mut shared.0, &mut shared.1] {
        t.as_table_mut()
            .unwrap()
            .insert("node_file".into(), "/n.toml".into());
    }
    let e = with_node_file(&shared.0, &shared.1, node).unwrap_err();
    assert!(e.contains("in both"), "{e}");
    let mut more = node.clone();
    more.as_table_mut()
        .unwrap()
        .insert("queues".into(), toml::Value::Table(Default::default()));
    let fp_node = shared.1["node"].as_table_mut().unwrap();
    for key in NODE_OWN_KEYS {
        fp_node.remove(key);
    }
    assert!(with_node_file(&shared.0, &shared.1, node).is_ok());
    let e = with_node_file(&shared.0, &shared.1, &more).unwrap_err();
    assert!(e.contains("queues"), "{e}");

    let mut bad_cluster = cluster.clone();
    bad_cluster["nodes"][0]["vtep_mac"] = "02:00".into();
    bad_cluster["services"][0]["endpoints"][0]["ip"] = "192.168.0.1".into();
    let errs = check_cluster_file(&bad_cluster);
    assert!(errs.iter().any(|e| e.contains("vtep_mac")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("no node's pod CIDR")),
        "{errs:?}"
    );

    let mut no_type: serde_json::Value = conflist.clone();
    no_type.as_object_mut().unwrap().remove("cniVersion");
    assert!(check_conflist(&no_type)
        .iter()
        .any(|e| e.contains("cniVersion")));
}
