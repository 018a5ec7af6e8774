//! The Kubernetes API as the source of cluster state: Nodes (pod CIDRs, VTEP addresses),
//! Services and EndpointSlices are watched and translated into the cluster model the cluster
//! file carries ([`NodeSpec`], [`ServiceObject`]), and applied through the daemon's validated
//! change ([`Daemon::apply_edits`]) — so the fast path gets only the difference.
//!
//! The translation is kept up to date object by object ([`Watched`]): an event marks the
//! objects whose translation it may change (the Node; the Service; an EndpointSlice's Service
//! before and after), and after each batch of events only those are translated again and
//! compared with the daemon's state — an endpoint change at 10,000 Services costs one
//! Service's translation, check, push and database row (docs/PERFORMANCE.md, "Control
//! plane"). [`cluster_from`] is the same translation of a whole set of objects. The watch
//! ([`spawn`]) is kube-rs's `watcher` (list, then watch from the list's resourceVersion;
//! relist on "410 Gone"; reconnect with backoff) for each kind, on a thread of its own; after
//! a relist every object of that kind is compared again, and what the daemon holds that the
//! API no longer has goes.
//!
//! Decisions, as kube-proxy and Flannel make them where they have made them:
//! - **Nodes.** Pod CIDR: the first IPv4 entry of `spec.podCIDRs` (else `spec.podCIDR`), as
//!   kube-controller-manager allocates it. Underlay address: Flannel's
//!   `flannel.alpha.coreos.com/public-ip` annotation if set (the address its VTEP sends from),
//!   else the first IPv4 `InternalIP`. VTEP MAC: `podlane.io/vtep-mac`, else the `VtepMAC` of
//!   Flannel's `flannel.alpha.coreos.com/backend-data` (what a Flannel VXLAN node publishes; a
//!   node whose backend data names another VNI, or whose `backend-type` is not `vxlan`, cannot
//!   be reached by this overlay and is left out). The outer destination MAC:
//!   `podlane.io/underlay-mac`, else `underlay_mac` from the configuration (the underlay
//!   router's, for nodes in other L2 segments). The Kubernetes API carries no MACs, and the fast
//!   path does not resolve underlay neighbours by ARP: a node with neither is left out and
//!   counted, not guessed.
//! - **This node's own annotations.** The API carries no MACs, so each podlane node publishes
//!   its addresses on its own Node object ([`own_annotations`], when the daemon's
//!   configuration has a `node_file` and `annotate_node` is on): `podlane.io/vtep-mac` and
//!   `podlane.io/underlay-mac`, which the other podlane nodes read, and Flannel's backend
//!   type, backend data, public IP and subnet-manager mark, which Flannel's VXLAN nodes read —
//!   as a Flannel node publishes itself. One merge patch of what differs, after a batch of
//!   events in which the Node is seen without them (so again if someone takes them away); a
//!   refusal is logged and counted and tried again with the next batch, or after
//!   `annotate_retry_ms` (10 s) without one. Until the patch
//!   lands the node itself is left out ("no VTEP MAC"), like any unannotated node.
//! - **Services.** ClusterIP Services and the ClusterIPs of NodePort and LoadBalancer ones (the
//!   first IPv4 of `spec.clusterIPs`); NodePorts for types NodePort and LoadBalancer. Headless
//!   and ExternalName Services have no ClusterIP to serve and are skipped; SCTP ports too (the
//!   fast path does TCP and UDP). A ClusterIP outside the configured service CIDR is left out
//!   and counted, and so is one with a NodePort outside the configured range.
//! - **Conflicts.** Changes are applied in leave-out mode ([`Mode::LeaveOut`]), so one bad
//!   object cannot hold up the others: what validation refuses — a Node whose pod CIDR
//!   overlaps another's or the service CIDR, or whose underlay address is another's; two
//!   Services on one ClusterIP or NodePort; this node's pod CIDR changing under live pods —
//!   is left out object by object, logged with the reason and counted, the object staying as
//!   it was (absent if it is new). The object in force keeps its place against a newcomer (at
//!   the first sync: the first by name). What was left out is tried again with every change,
//!   so it comes in once the conflict is gone. An endpoint that is not a unicast address
//!   outside the service CIDR is left out of its Service.
//! - **Endpoints.** From the IPv4 EndpointSlices labelled `kubernetes.io/service-name`, as
//!   kube-proxy reads them: an endpoint whose `ready` condition is true (nil counts as true)
//!   and that is not terminating is a backend; one that is terminating and still `serving`
//!   keeps its established flows and takes no new ones (podlane's terminating state: the
//!   brief's rolling-update rule); the others are not backends. An address listed twice (two
//!   slices during a change) counts once, ready winning. A Service port's target port is the
//!   port of the same name and protocol in the slices; the cluster model has one target port
//!   per Service port, so if slices disagree (pods exposing a named port on different numbers)
//!   the first slice's number is used and the endpoints of slices with another are left out
//!   and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fastpath::cidr::Ipv4Cidr;
use fastpath::wire::MacAddr;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use serde::Deserialize;

use crate::cluster::{
    endpoint_error, Cluster, ClusterSpec, Edit, Endpoint, Mode, NodeSpec, Refused, ServiceObject,
    ServicePort, TrafficPolicy, L4,
};
use crate::config::NodeIdentity;
use crate::daemon::Daemon;

/// Annotation: a node's VTEP MAC (the inner destination MAC it accepts).
pub const VTEP_MAC: &str = "podlane.io/vtep-mac";
/// Annotation: the MAC a node's underlay address answers from.
pub const UNDERLAY_MAC: &str = "podlane.io/underlay-mac";
/// Flannel's annotation: `{"VNI":1,"VtepMAC":"…"}` for the VXLAN backend.
pub const FLANNEL_BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// Flannel's annotation: the backend type (`vxlan`, `host-gw`, …).
pub const FLANNEL_BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
/// Flannel's annotation: the address its VTEP sends from.
pub const FLANNEL_PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
/// Flannel's annotation: the node's subnet is managed through the Kubernetes API (Flannel's
/// VXLAN nodes program a peer only if it carries it).
pub const FLANNEL_KUBE_SUBNET_MANAGER: &str = "flannel.alpha.coreos.com/kube-subnet-manager";
/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `[kubernetes]` in `podlane-control`'s configuration: take the cluster state from the API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeSettings {
    /// A kubeconfig file. Without it, as kube-rs infers it: `$KUBECONFIG` or `~/.kube/config`
    /// if there is one, else the pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted
    /// token and CA) — what a DaemonSet pod has.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The cluster's Service CIDR (kube-apiserver's `--service-cluster-ip-range`; the API does
    /// not publish it to readers).
    pub service_cidr: Ipv4Cidr,
    /// The NodePort range (kube-apiserver's `--service-node-port-range`).
    #[serde(default = "default_node_port_range")]
    pub node_port_range: [u16; 2],
    /// The overlay's VNI: nodes whose Flannel backend data names another are left out.
    #[serde(default = "default_vni")]
    pub vni: u32,
    /// The outer destination MAC for nodes without a `podlane.io/underlay-mac` annotation:
    /// the underlay router's MAC where nodes are in other L2 segments.
    #[serde(default)]
    pub underlay_mac: Option<MacAddr>,
    /// Publish this node's addresses on its own Node object ([`own_annotations`]: the
    /// `podlane.io/` annotations the other podlane nodes read, and Flannel's, which Flannel's
    /// VXLAN nodes read), from the node file's (`node_file` in the daemon's configuration;
    /// without one nothing is published). Needs `patch` on nodes (deploy/kubernetes/rbac.yaml).
    #[serde(default = "default_annotate_node")]
    pub annotate_node: bool,
    /// After a refused patch of this node's annotations, how long until it is tried again
    /// when no event brings the next try sooner (milliseconds).
    #[serde(default = "default_annotate_retry_ms")]
    pub annotate_retry_ms: u64,
}

fn default_annotate_node() -> bool {
    true
}
fn default_annotate_retry_ms() -> u64 {
    10_000
}

fn default_node_port_range() -> [u16; 2] {
    [30000, 32767]
}
fn default_vni() -> u32 {
    1
}

/// What a translation left out, and why (logged; counted on `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `node NAME`, `service NS/NAME` or `endpointslice NS/NAME`.
    pub object: String,
    /// Why.
    pub why: String,
}

/// The watched objects, by `namespace/name` (cluster-scoped: `name`).
#[derive(Debug, Default, Clone)]
pub struct Objects {
    /// Nodes.
    pub nodes: BTreeMap<String, Node>,
    /// Services.
    pub services: BTreeMap<String, Service>,
    /// EndpointSlices.
    pub slices: BTreeMap<String, EndpointSlice>,
}

/// The cluster state the objects describe, and what was left out of it: a whole
/// translation, as [`Watched`] makes it at the first sync (every object new, conflicts
/// resolved in name order).
pub fn cluster_from(o: &Objects, s: &KubeSettings) -> (ClusterSpec, Vec<Skipped>) {
    let mut w = Watched::new(s.clone());
    w.load(o.clone());
    let mut c = Cluster::empty(s.service_cidr, s.node_port_range);
    let edits = w.edits(&c);
    // Leave-out mode never refuses a change whole.
    let refused = c
        .apply(edits, Mode::LeaveOut, &|_| Ok(()))
        .map_or_else(|_| Vec::new(), |(_, r)| r);
    w.settle(refused);
    (c.spec(), w.left_out())
}

/// The EndpointSlice's Service, `namespace/name`, if it names one.
fn service_of(sl: &EndpointSlice) -> Option<String> {
    let svc = sl.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let ns = sl.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{ns}/{svc}"))
}

/// What one watch event did to a kind's live set.
enum Change<K> {
    /// Nothing yet (a relist in progress).
    None,
    /// One object added, changed or deleted: its key and its previous version.
    One(String, Option<K>),
    /// A relist replaced the whole set: the previous set.
    All(BTreeMap<String, K>),
}

/// Marks in `dirty` what change `c` of a kind whose objects are now `live` touched: the one
/// object, or after a relist every object before and after (and `relisted`). True if anything
/// changed.
fn mark<K>(
    c: Change<K>,
    live: &BTreeMap<String, K>,
    dirty: &mut BTreeSet<String>,
    relisted: &mut bool,
) -> bool {
    match c {
        Change::None => return false,
        Change::One(k, _) => {
            dirty.insert(k);
        }
        Change::All(old) => {
            dirty.extend(old.into_keys());
            dirty.extend(live.keys().cloned());
            *relisted = true;
        }
    }
    true
}

/// The watched objects and the translation kept up to date with them object by object: an
/// event marks the objects whose translation it may change (a Node; a Service; the Service
/// an EndpointSlice belongs to, before and after), and [`Watched::edits`] translates only
/// those and compares each with the daemon's — so an endpoint change at 10,000 Services
/// costs one Service's translation, not the cluster's.
#[derive(Debug)]
pub struct Watched {
    s: KubeSettings,
    o: Objects,
    /// Slice keys by their Service's key.
    slices_of: BTreeMap<String, BTreeSet<String>>,
    /// Node names and Service keys to translate again.
    dirty_nodes: BTreeSet<String>,
    dirty_services: BTreeSet<String>,
    /// A kind was relisted: the daemon's objects of that kind are compared too (what the API
    /// no longer has goes; at the first sync this clears what the database held).
    relisted_nodes: bool,
    relisted_services: bool,
    /// What the translation left out, by `node NAME` / `service NS/NAME`.
    skipped: BTreeMap<String, Vec<Skipped>>,
    /// What the daemon's validation left out (a conflict with another object), by the same
    /// keys: tried again with every change until it fits.
    refused: BTreeMap<String, Skipped>,
    /// Relist buffers.
    pending: (Kind<Node>, Kind<Service>, Kind<EndpointSlice>),
}

impl Watched {
    /// Nothing watched yet.
    pub fn new(s: KubeSettings) -> Watched {
        Watched {
            s,
            o: Objects::default(),
            slices_of: BTreeMap::new(),
            dirty_nodes: BTreeSet::new(),
            dirty_services: BTreeSet::new(),
            relisted_nodes: false,
            relisted_services: false,
            skipped: BTreeMap::new(),
            refused: BTreeMap::new(),
            pending: Default::default(),
        }
    }

    /// Takes `o` as the whole of every kind, as if all three had just been listed.
    pub fn load(&mut self, o: Objects) {
        let old = std::mem::replace(&mut self.o, o);
        self.nodes_changed(Change::All(old.nodes));
        self.services_changed(Change::All(old.services));
        self.slices_changed(Change::All(old.slices));
        self.pending.0.listed = true;
        self.pending.1.listed = true;
        self.pending.2.listed = true;
    }

    /// All three kinds have been listed.
    pub fn listed(&self) -> bool {
        self.pending.0.listed && self.pending.1.listed && self.pending.2.listed
    }

    /// A Node watch event; true if the live set changed.
    pub fn node_event(&mut self, e: watcher::Event<Node>) -> bool {
        let c = self.pending.0.event(&mut self.o.nodes, e);
        self.nodes_changed(c)
    }

    /// A Service watch event; true if the live set changed.
    pub fn service_event(&mut self, e: watcher::Event<Service>) -> bool {
        let c = self.pending.1.event(&mut self.o.services, e);
        self.services_changed(c)
    }

    /// An EndpointSlice watch event; true if the live set changed.
    pub fn slice_event(&mut self, e: watcher::Event<EndpointSlice>) -> bool {
        let c = self.pending.2.event(&mut self.o.slices, e);
        self.slices_changed(c)
    }

    fn nodes_changed(&mut self, c: Change<Node>) -> bool {
        mark(
            c,
            &self.o.nodes,
            &mut self.dirty_nodes,
            &mut self.relisted_nodes,
        )
    }

    fn services_changed(&mut self, c: Change<Service>) -> bool {
        mark(
            c,
            &self.o.services,
            &mut self.dirty_services,
            &mut self.relisted_services,
        )
    }

    fn slices_changed(&mut self, c: Change<EndpointSlice>) -> bool {
        match c {
            Change::None => return false,
            Change::One(k, old) => {
                if let Some(svc) = old.as_ref().and_then(service_of) {
                    if let Some(set) = self.slices_of.get_mut(&svc) {
                        set.remove(&k);
                    }
                    self.dirty_services.insert(svc);
                }
                if let Some(svc) = self.o.slices.get(&k).and_then(service_of) {
                    self.slices_of.entry(svc.clone()).or_default().insert(k);
                    self.dirty_services.insert(svc);
                }
            }
            Change::All(old) => {
                self.dirty_services
                    .extend(old.values().filter_map(service_of));
                self.slices_of.clear();
                for (k, sl) in &self.o.slices {
                    if let Some(svc) = service_of(sl) {
                        self.dirty_services.insert(svc.clone());
                        self.slices_of.entry(svc).or_default().insert(k.clone());
                    }
                }
            }
        }
        true
    }

    /// Records what the translation of `object` left out now (replacing what it left out
    /// before), logging what is new.
    fn note_skipped(&mut self, object: String, now: Vec<Skipped>) {
        let before = self.skipped.remove(&object).unwrap_or_default();
        for k in now.iter().filter(|k| !before.contains(k)) {
            tracing::warn!("kubernetes: {} left out: {}", k.object, k.why);
        }
        if !now.is_empty() {
            self.skipped.insert(object, now);
        }
    }

    /// The edits that bring `cur` (the daemon's state) to what the objects describe, for the
    /// objects that changed since the last [`Watched::settle`] and those the daemon left out
    /// before. O(those objects × log n).
    pub fn edits(&mut self, cur: &Cluster) -> Vec<Edit> {
        let mut nodes = self.dirty_nodes.clone();
        let mut services = self.dirty_services.clone();
        if self.relisted_nodes {
            nodes.extend(cur.nodes().map(|n| n.name.clone()));
        }
        if self.relisted_services {
            services.extend(cur.services().map(ServiceObject::id));
        }
        for k in self.refused.keys() {
            if let Some(n) = k.strip_prefix("node ") {
                nodes.insert(n.to_string());
            } else if let Some(s) = k.strip_prefix("service ") {
                services.insert(s.to_string());
            }
        }
        let mut edits = Vec::new();
        for name in nodes {
            let object = format!("node {name}");
            let mut skipped = Vec::new();
            let want = match self.o.nodes.get(&name).map(|n| node_spec(n, &self.s)) {
                None => None,
                Some(Ok(spec)) => Some(spec),
                Some(Err(why)) => {
                    skipped.push(Skipped {
                        object: object.clone(),
                        why,
                    });
                    None
                }
            };
            self.note_skipped(object, skipped);
            if cur.node(&name) != want.as_ref() {
                edits.push(match want {
                    Some(spec) => Edit::SetNode(spec),
                    None => Edit::RemoveNode(name),
                });
            }
        }
        for key in services {
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            let object = format!("service {key}");
            let mut skipped = Vec::new();
            let want = match self.o.services.get(&key) {
                None => None,
                Some(svc) => {
                    let slices: Vec<(&String, &EndpointSlice)> = self
                        .slices_of
                        .get(&key)
                        .into_iter()
                        .flatten()
                        .filter_map(|k| Some((k, self.o.slices.get(k)?)))
                        .collect();
                    match service_object(svc, &slices, &self.s, &mut skipped) {
                        Ok(obj) => obj,
                        Err(why) => {
                            skipped.push(Skipped {
                                object: object.clone(),
                                why,
                            });
                            None
                        }
                    }
                }
            };
            self.note_skipped(object, skipped);
            if cur.service(ns, name) != want.as_ref() {
                edits.push(match want {
                    Some(obj) => Edit::SetService(obj),
                    None => Edit::RemoveService(ns.to_string(), name.to_string()),
                });
            }
        }
        edits
    }

    /// The edits from [`Watched::edits`] are in force, but for those the daemon `refused`:
    /// they are logged when new and tried again with every change.
    pub fn settle(&mut self, refused: Vec<Refused>) {
        self.dirty_nodes.clear();
        self.dirty_services.clear();
        self.relisted_nodes = false;
        self.relisted_services = false;
        let before = std::mem::take(&mut self.refused);
        for r in refused {
            let k = Skipped {
                object: r.object.clone(),
                why: r.why,
            };
            if before.get(&r.object) != Some(&k) {
                tracing::warn!("kubernetes: {} left out: {}", k.object, k.why);
            }
            self.refused.insert(r.object, k);
        }
    }

    /// Everything left out now: by the translation, then by the daemon's validation.
    pub fn left_out(&self) -> Vec<Skipped> {
        let mut v: Vec<Skipped> = self.skipped.values().flatten().cloned().collect();
        v.extend(self.refused.values().cloned());
        v
    }

    /// How many objects are left out now.
    pub fn left_out_count(&self) -> usize {
        self.skipped.values().map(Vec::len).sum::<usize>() + self.refused.len()
    }
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(k).map(String::as_str)
}

/// Flannel's VXLAN backend data.
#[derive(Debug, Deserialize)]
struct FlannelVxlan {
    #[serde(rename = "VNI")]
    vni: Option<u32>,
    #[serde(rename = "VtepMAC")]
    vtep_mac: Option<String>,
}

/// The annotations a podlane node publishes on its own Node object, so that the other nodes
/// reach its pods: podlane's, which [`node_spec`] reads — its VTEP MAC and underlay MAC — and
/// Flannel's, which a Flannel VXLAN node reads to program its route, neighbour and FDB entry
/// for this node — the backend type and data (VNI, VTEP MAC), the public IP (the underlay
/// address), and the subnet-manager mark Flannel requires. From the node file's addresses
/// (`id`); an address it does not give is not published.
pub fn own_annotations(id: &NodeIdentity, vni: u32) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    if let Some(m) = id.vtep_mac {
        a.insert(VTEP_MAC.into(), m.to_string());
        a.insert(FLANNEL_BACKEND_TYPE.into(), "vxlan".into());
        a.insert(
            FLANNEL_BACKEND_DATA.into(),
            serde_json::json!({"VNI": vni, "VtepMAC": m.to_string()}).to_string(),
        );
        a.insert(FLANNEL_KUBE_SUBNET_MANAGER.into(), "true".into());
    }
    if let Some(m) = id.underlay_mac {
        a.insert(UNDERLAY_MAC.into(), m.to_string());
    }
    if let Some(ip) = id.underlay_ip {
        a.insert(FLANNEL_PUBLIC_IP.into(), ip.to_string());
    }
    a
}

/// Those of `wanted` that `node` does not carry with the same value: what a merge patch of
/// its annotations sets (empty: nothing to do).
pub fn annotations_to_patch(
    node: &Node,
    wanted: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    wanted
        .iter()
        .filter(|(k, v)| annotation(&node.metadata, k) != Some(v.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One Node as the cluster model's node, or why it cannot be one.
pub fn node_spec(n: &Node, s: &KubeSettings) -> Result<NodeSpec, String> {
    let meta = &n.metadata;
    let name = meta.name.clone().ok_or("no name")?;
    let spec = n.spec.as_ref().ok_or("no spec")?;
    let cidrs = spec.pod_cidrs.iter().flatten().chain(spec.pod_cidr.iter());
    let pod_cidr = cidrs
        .filter_map(|c| c.parse::<Ipv4Cidr>().ok())
        .next()
        .ok_or("no IPv4 pod CIDR in spec.podCIDRs yet")?;
    let underlay_ip = match annotation(meta, FLANNEL_PUBLIC_IP) {
        Some(a) => a
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("{FLANNEL_PUBLIC_IP} {a:?} is not an IPv4 address"))?,
        None => n
            .status
            .as_ref()
            .and_then(|st| st.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
            .ok_or("no IPv4 InternalIP in status.addresses")?,
    };
    if let Some(t) = annotation(meta, FLANNEL_BACKEND_TYPE) {
        if t != "vxlan" {
            return Err(format!("Flannel backend {t:?}, not vxlan"));
        }
    }
    let flannel = match annotation(meta, FLANNEL_BACKEND_DATA) {
        Some(a) => Some(
            serde_json::from_str::<FlannelVxlan>(a)
                .map_err(|e| format!("{FLANNEL_BACKEND_DATA}: {e}"))?,
        ),
        None => None,
    };
    if let Some(v) = flannel.as_ref().and_then(|f| f.vni) {
        if v != s.vni {
            return Err(format!("Flannel VNI {v}, the overlay's is {}", s.vni));
        }
    }
    let mac = |k: &str, v: &str| match v.parse::<MacAddr>() {
        Ok(m) if m.0[0] & 1 == 0 => Ok(m),
        _ => Err(format!("{k} {v:?} is not a unicast MAC address")),
    };
    let vtep_mac = match (
        annotation(meta, VTEP_MAC),
        flannel.as_ref().and_then(|f| f.vtep_mac.as_deref()),
    ) {
        (Some(a), _) => mac(VTEP_MAC, a)?,
        (None, Some(f)) => mac(FLANNEL_BACKEND_DATA, f)?,
        (None, None) => {
            return Err(format!(
                "no VTEP MAC ({VTEP_MAC}, or Flannel's {FLANNEL_BACKEND_DATA})"
            ))
        }
    };
    let underlay_mac = match (annotation(meta, UNDERLAY_MAC), s.underlay_mac) {
        (Some(a), _) => mac(UNDERLAY_MAC, a)?,
        (None, Some(m)) => m,
        (None, None) => {
            return Err(format!(
                "no underlay MAC ({UNDERLAY_MAC}, or underlay_mac in [kubernetes])"
            ))
        }
    };
    Ok(NodeSpec {
        name,
        underlay_ip,
        underlay_mac,
        vtep_mac,
        pod_cidr,
    })
}

fn l4(protocol: Option<&str>) -> Option<L4> {
    match protocol.unwrap_or("TCP") {
        "TCP" => Some(L4::Tcp),
        "UDP" => Some(L4::Udp),
        _ => None,
    }
}

/// One Service with its slices as the cluster model's Service: `Ok(None)` for the kinds that
/// have no ClusterIP to serve (headless, ExternalName) or no TCP/UDP port.
pub fn service_object(
    svc: &Service,
    slices: &[(&String, &EndpointSlice)],
    s: &KubeSettings,
    skipped: &mut Vec<Skipped>,
) -> Result<Option<ServiceObject>, String> {
    let meta = &svc.metadata;
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let name = meta.name.clone().ok_or("no name")?;
    let Some(spec) = svc.spec.as_ref() else {
        return Ok(None);
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        return Ok(None);
    }
    let ips = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter());
    let cluster_ip = ips.filter_map(|ip| ip.parse::<Ipv4Addr>().ok()).next();
    // Headless, not allocated yet, or IPv6 only: nothing to serve.
    let Some(cluster_ip) = cluster_ip else {
        return Ok(None);
    };
    if !s.service_cidr.contains(cluster_ip) {
        return Err(format!(
            "ClusterIP {cluster_ip} is outside the configured service CIDR {}",
            s.service_cidr
        ));
    }
    let node_ports = matches!(kind, "NodePort" | "LoadBalancer");
    // The first slice's number for each (port name, protocol); slices that disagree are left
    // out (see the module's doc).
    let mut target: BTreeMap<(String, L4), u16> = BTreeMap::new();
    let mut endpoints: BTreeMap<Ipv4Addr, bool> = BTreeMap::new(); // ip → terminating
    'slices: for (key, sl) in slices {
        if sl.address_type != "IPv4" {
            continue;
        }
        let mut mine = Vec::new();
        for p in sl.ports.iter().flatten() {
            let (Some(proto), Some(num)) = (l4(p.protocol.as_deref()), p.port) else {
                continue;
            };
            let Ok(num) = u16::try_from(num) else {
                continue;
            };
            mine.push(((p.name.clone().unwrap_or_default(), proto), num));
        }
        for (k, num) in &mine {
            if let Some(first) = target.get(k) {
                if first != num {
                    skipped.push(Skipped {
                        object: format!("endpointslice {key}"),
                        why: format!(
                            "port {:?} is {num} here but {first} in another slice of the same Service",
                            k.0
                        ),
                    });
                    continue 'slices;
                }
            }
        }
        target.extend(mine);
        for e in &sl.endpoints {
            let c = e.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(true);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            let state = if ready && !terminating {
                false
            } else if terminating && serving {
                true
            } else {
                continue;
            };
            for a in &e.addresses {
                let Ok(ip) = a.parse::<Ipv4Addr>() else {
                    continue;
                };
                if let Some(why) = endpoint_error(ip, &s.service_cidr) {
                    skipped.push(Skipped {
                        object: format!("endpointslice {key}"),
                        why: format!("endpoint {ip} {why}"),
                    });
                    continue;
                }
                let t = endpoints.entry(ip).or_insert(state);
                *t = *t && state;
            }
        }
    }
    let mut ports = Vec::new();
    let mut seen = BTreeSet::new();
    for p in spec.ports.iter().flatten() {
        let Some(proto) = l4(p.protocol.as_deref()) else {
            continue;
        };
        let port = u16::try_from(p.port).map_err(|_| format!("port {} out of range", p.port))?;
        if !seen.insert((port, proto)) {
            continue;
        }
        let pname = p.name.clone().filter(|n| !n.is_empty());
        let target_port = target
            .get(&(pname.clone().unwrap_or_default(), proto))
            .copied()
            .or(match &p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                    u16::try_from(*n).ok()
                }
                _ => None,
            });
        let node_port = node_port_in_range(
            p.node_port.filter(|_| node_ports),
            s.node_port_range,
            "NodePort",
        )?;
        ports.push(ServicePort {
            name: pname,
            port,
            protocol: proto,
            target_port: target_port.filter(|&t| t != port),
            node_port,
        });
    }
    if ports.is_empty() {
        return Ok(None);
    }
    let local = node_ports && spec.external_traffic_policy.as_deref() == Some("Local");
    // Kubernetes gives one to a LoadBalancer Service with the Local policy, from the NodePort
    // range.
    let health_check_node_port = node_port_in_range(
        spec.health_check_node_port
            .filter(|_| local && kind == "LoadBalancer"),
        s.node_port_range,
        "health-check NodePort",
    )?;
    // The cluster model requires a name on every port of a multi-port Service; Kubernetes
    // does too, so a nameless one here can only be a single-port Service.
    Ok(Some(ServiceObject {
        namespace,
        name,
        cluster_ip,
        ports,
        endpoints: endpoints
            .into_iter()
            .map(|(ip, terminating)| Endpoint { ip, terminating })
            .collect(),
        // Only NodePorts are external here (no load-balancer or external IPs), so the policy
        // matters only to a Service that has one.
        external_traffic_policy: if local {
            TrafficPolicy::Local
        } else {
            TrafficPolicy::Cluster
        },
        health_check_node_port,
    }))
}

/// A NodePort number from the API (0 or none: none), which must be in the configured range
/// (`what` names it in the error).
fn node_port_in_range(
    n: Option<i32>,
    [lo, hi]: [u16; 2],
    what: &str,
) -> Result<Option<u16>, String> {
    match n {
        None | Some(0) => Ok(None),
        Some(n) => match u16::try_from(n) {
            Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{what} {n} is outside the configured range {lo}-{hi}"
            )),
        },
    }
}

/// Counters of the Kubernetes source, on `/metrics`.
#[derive(Debug, Default)]
pub struct KubeMetrics {
    /// Cluster states applied.
    pub applied: AtomicU64,
    /// Cluster states refused by validation (the previous state kept).
    pub refused: AtomicU64,
    /// Objects left out of the last translation.
    pub skipped: AtomicU64,
    /// Watch errors (each retried with backoff).
    pub watch_errors: AtomicU64,
    /// 1 once all three kinds have been listed.
    pub synced: AtomicU64,
    /// Patches of this node's annotations made ([`own_annotations`]).
    pub annotated: AtomicU64,
    /// Patches of this node's annotations the API refused (each tried again: with the next
    /// event, or after `annotate_retry_ms`).
    pub annotate_errors: AtomicU64,
}

/// Applies what changed since the last call to the daemon, as one change in leave-out mode.
fn apply(d: &Daemon, w: &mut Watched) {
    let m = &d.metrics.kube;
    let edits = w.edits(&d.cluster());
    if edits.is_empty() {
        w.settle(Vec::new());
    } else {
        let n = edits.len();
        match d.apply_edits(edits, Mode::LeaveOut) {
            Ok(refused) => {
                m.applied.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(edits = n, "kubernetes: change applied");
                w.settle(refused);
            }
            Err(e) => {
                m.refused.fetch_add(1, Ordering::Relaxed);
                // The daemon keeps the previous state; what changed stays marked, so the
                // next event tries it again.
                tracing::error!("kubernetes: change refused, previous state kept: {e}");
            }
        }
    }
    m.skipped
        .store(w.left_out_count() as u64, Ordering::Relaxed);
}

/// One kind's relist buffer.
#[derive(Debug)]
struct Kind<K> {
    pending: Option<BTreeMap<String, K>>,
    listed: bool,
}

impl<K> Default for Kind<K> {
    fn default() -> Self {
        Kind {
            pending: None,
            listed: false,
        }
    }
}

fn key_of<K: kube::ResourceExt>(k: &K) -> String {
    match k.namespace() {
        Some(ns) => format!("{ns}/{}", k.name_any()),
        None => k.name_any(),
    }
}

impl<K: kube::ResourceExt> Kind<K> {
    /// Applies a watcher event to `live`.
    fn event(&mut self, live: &mut BTreeMap<String, K>, e: watcher::Event<K>) -> Change<K> {
        use watcher::Event;
        match e {
            Event::Init => {
                self.pending = Some(BTreeMap::new());
                Change::None
            }
            Event::InitApply(k) => {
                self.pending
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key_of(&k), k);
                Change::None
            }
            Event::InitDone => {
                let new = self.pending.take().unwrap_or_default();
                self.listed = true;
                Change::All(std::mem::replace(live, new))
            }
            Event::Apply(k) => {
                let key = key_of(&k);
                let old = live.insert(key.clone(), k);
                Change::One(key, old)
            }
            Event::Delete(k) => {
                let key = key_of(&k);
                let old = live.remove(&key);
                Change::One(key, old)
            }
        }
    }
}

/// One watcher event of any of the three kinds (moved once, from the stream to the loop:
/// boxing the larger ones would buy nothing).
#[allow(clippy::large_enum_variant)]
enum Msg {
    Node(kube::runtime::watcher::Event<Node>),
    Service(kube::runtime::watcher::Event<Service>),
    Slice(kube::runtime::watcher::Event<EndpointSlice>),
}

/// The client for `s`: its kubeconfig, or inferred ([`KubeSettings::kubeconfig`]).
pub async fn client(s: &KubeSettings) -> Result<kube::Client, String> {
    let config = match &s.kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .map_err(|e| format!("kubeconfig {}: {e}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", p.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("Kubernetes API client (no kubeconfig set): {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("Kubernetes API client: {e}"))
}

/// Watches Nodes, Services and EndpointSlices through `client` and applies the cluster state
/// they describe to `d` after each batch of events, once all three kinds have been listed.
/// Runs until the process ends; watch errors are logged, counted and retried with backoff.
pub async fn run(d: Arc<Daemon>, client: kube::Client, s: KubeSettings) {
    use futures::{FutureExt, StreamExt};
    use kube::runtime::WatchStreamExt;
    use kube::Api;
    let cfg = watcher::Config::default;
    let nodes = watcher(Api::<Node>::all(client.clone()), cfg())
        .default_backoff()
        .map(|r| r.map(Msg::Node))
        .boxed();
    let services = watcher(Api::<Service>::all(client.clone()), cfg())
        .default_backoff()
        .map(|r| r.map(Msg::Service))
        .boxed();
    let node_api = Api::<Node>::all(client.clone());
    let node_name = d.config().node_name.clone();
    let wanted = match s.annotate_node {
        true => own_annotations(&d.config().node_identity, s.vni),
        false => BTreeMap::new(),
    };
    let slices = watcher(Api::<EndpointSlice>::all(client), cfg())
        .default_backoff()
        .map(|r| r.map(Msg::Slice))
        .boxed();
    let mut events = futures::stream::select_all([nodes, services, slices]);
    let retry_after = std::time::Duration::from_millis(s.annotate_retry_ms.max(1));
    let mut w = Watched::new(s);
    // A refused annotation patch is tried again with the next batch of events, or after
    // `retry_after` without one.
    let mut retry = false;
    loop {
        let next = if retry {
            match tokio::time::timeout(retry_after, events.next()).await {
                Ok(next) => next,
                Err(_) => {
                    retry = !annotate(&d, &node_api, &node_name, &w, &wanted).await;
                    continue;
                }
            }
        } else {
            events.next().await
        };
        let Some(first) = next else {
            break;
        };
        // Take what else is ready now, so a burst of events is one change.
        let mut changed = false;
        let mut next = Some(first);
        while let Some(r) = next {
            match r {
                Ok(Msg::Node(e)) => changed |= w.node_event(e),
                Ok(Msg::Service(e)) => changed |= w.service_event(e),
                Ok(Msg::Slice(e)) => changed |= w.slice_event(e),
                Err(e) => {
                    d.metrics.kube.watch_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("kubernetes: watch: {e} (retrying)");
                }
            }
            next = events.next().now_or_never().flatten();
        }
        if changed && w.listed() {
            d.metrics.kube.synced.store(1, Ordering::Relaxed);
            apply(&d, &mut w);
        }
        if (changed || retry) && !wanted.is_empty() {
            retry = !annotate(&d, &node_api, &node_name, &w, &wanted).await;
        }
    }
}

/// Sets this node's annotations ([`own_annotations`]) where its Node object (as watched)
/// lacks them or has others: one merge patch of those. A refusal (no `patch` right, say) is
/// logged and counted, and false returned: the caller tries again. True: nothing to do (the
/// Node not seen yet included: its watch event brings the next try), or done.
async fn annotate(
    d: &Daemon,
    api: &kube::Api<Node>,
    name: &str,
    w: &Watched,
    wanted: &BTreeMap<String, String>,
) -> bool {
    use kube::api::{Patch, PatchParams};
    let Some(node) = w.o.nodes.get(name) else {
        return true;
    };
    let set = annotations_to_patch(node, wanted);
    if set.is_empty() {
        return true;
    }
    let patch = serde_json::json!({"metadata": {"annotations": set}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            d.metrics.kube.annotated.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "kubernetes: published node {name}'s annotations {:?}",
                set.keys()
            );
            true
        }
        Err(e) => {
            d.metrics
                .kube
                .annotate_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("kubernetes: cannot annotate node {name}: {e} (trying again)");
            false
        }
    }
}

/// Starts the Kubernetes source on a thread of its own (a single-threaded async runtime: the
/// three watches are I/O, and the daemon's change path is synchronous).
pub fn spawn(d: Arc<Daemon>, s: KubeSettings) -> Result<std::thread::JoinHandle<()>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("Kubernetes source runtime: {e}"))?;
    // The client is built here, so a broken kubeconfig is an error at start, not a log line.
    let client = rt.block_on(client(&s))?;
    std::thread::Builder::new()
        .name("podlane-kube".into())
        .spawn(move || rt.block_on(run(d, client, s)))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> KubeSettings {
        KubeSettings {
            kubeconfig: None,
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            node_port_range: [30000, 32767],
            vni: 1,
            underlay_mac: None,
            annotate_node: true,
            annotate_retry_ms: 10_000,
        }
    }

    fn node(annotations: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "annotations": annotations},
            "spec": {"podCIDRs": ["fd00:10:244::/64", "10.244.7.0/24"]},
            "status": {"addresses": [
                {"type": "ExternalIP", "address": "203.0.113.7"},
                {"type": "InternalIP", "address": "fd00::7"},
                {"type": "InternalIP", "address": "10.1.0.7"}]}
        }))
        .unwrap()
    }

    /// What a node publishes is what the others read: its annotations make a Node that
    /// `node_spec` reads back as the node file's addresses — through podlane's annotations,
    /// and through Flannel's alone (as a Flannel node reads them) — and an address the file
    /// does not give is not published.
    #[test]
    fn a_nodes_own_annotations_read_back_as_its_addresses() {
        let id = NodeIdentity {
            underlay_ip: Some(Ipv4Addr::new(10, 1, 0, 9)),
            underlay_mac: Some("02:00:0a:01:00:09".parse().unwrap()),
            vtep_mac: Some("02:76:74:65:70:09".parse().unwrap()),
        };
        let a = own_annotations(&id, 1);
        assert_eq!(a.len(), 6);
        let spec = node_spec(&node(serde_json::to_value(&a).unwrap()), &settings()).unwrap();
        assert_eq!(
            spec.underlay_ip,
            Ipv4Addr::new(10, 1, 0, 9),
            "public-ip over InternalIP"
        );
        assert_eq!(Some(spec.underlay_mac), id.underlay_mac);
        assert_eq!(Some(spec.vtep_mac), id.vtep_mac);
        let flannel_only: BTreeMap<&String, &String> = a
            .iter()
            .filter(|(k, _)| k.starts_with("flannel."))
            .collect();
        let mut s = settings();
        s.underlay_mac = id.underlay_mac;
        let spec = node_spec(&node(serde_json::to_value(flannel_only).unwrap()), &s).unwrap();
        assert_eq!(Some(spec.vtep_mac), id.vtep_mac);
        // Another VNI is written, and a node of that overlay is refused by this one.
        let other = own_annotations(&id, 7);
        assert!(node_spec(&node(serde_json::to_value(&other).unwrap()), &settings()).is_err());
        // Only the VTEP MAC known: nothing else claimed.
        let only = own_annotations(
            &NodeIdentity {
                vtep_mac: id.vtep_mac,
                ..NodeIdentity::default()
            },
            1,
        );
        assert!(!only.contains_key(UNDERLAY_MAC) && !only.contains_key(FLANNEL_PUBLIC_IP));
        assert!(own_annotations(&NodeIdentity::default(), 1).is_empty());
        // What to patch: only what differs.
        let n = node(json!({VTEP_MAC: "02:76:74:65:70:09", UNDERLAY_MAC: "02:00:00:00:00:01"}));
        let set = annotations_to_patch(&n, &a);
        assert_eq!(set.len(), 5);
        assert_eq!(set[UNDERLAY_MAC], "02:00:0a:01:00:09");
        assert!(!set.contains_key(VTEP_MAC));
    }

    #[test]
    fn nodes_take_the_first_ipv4_of_each_and_need_both_macs() {
        let s = settings();
        let n = node(json!({"podlane.io/vtep-mac": "02:76:74:65:70:07",
                            "podlane.io/underlay-mac": "02:00:0a:01:00:07"}));
        let spec = node_spec(&n, &s).unwrap();
        assert_eq!(spec.pod_cidr.to_string(), "10.244.7.0/24");
        assert_eq!(spec.underlay_ip, Ipv4Addr::new(10, 1, 0, 7));
        let e = node_spec(
            &node(json!({"podlane.io/vtep-mac": "02:76:74:65:70:07"})),
            &s,
        )
        .unwrap_err();
        assert!(e.contains("no underlay MAC"), "{e}");
        let e = node_spec(
            &node(json!({"podlane.io/underlay-mac": "02:00:0a:01:00:07"})),
            &s,
        )
        .unwrap_err();
        assert!(e.contains("no VTEP MAC"), "{e}");
        let e = node_spec(
            &node(json!({"podlane.io/vtep-mac": "zz", "podlane.io/underlay-mac": "02:00:0a:01:00:07"})),
            &s,
        )
        .unwrap_err();
        assert!(e.contains("not a unicast MAC"), "{e}");
        let e = node_spec(
            &node(json!({"podlane.io/vtep-mac": "03:00:00:00:00:01", "podlane.io/underlay-mac": "02:00:0a:01:00:07"})),
            &s,
        )
        .unwrap_err();
        assert!(e.contains("not a unicast MAC"), "{e}");
        // Flannel's data: its VNI must be ours, its JSON well-formed.
        let mut s2 = settings();
        s2.underlay_mac = Some("02:00:00:00:00:01".parse().unwrap());
        let f = |data: &str| {
            node_spec(
                &node(json!({"flannel.alpha.coreos.com/backend-data": data})),
                &s2,
            )
        };
        assert_eq!(
            f(r#"{"VNI":1,"VtepMAC":"02:76:74:65:70:0c"}"#)
                .unwrap()
                .vtep_mac
                .to_string(),
            "02:76:74:65:70:0c"
        );
        assert!(f(r#"{"VNI":2,"VtepMAC":"02:76:74:65:70:0c"}"#)
            .unwrap_err()
            .contains("VNI 2"));
        assert!(f("{").unwrap_err().contains("backend-data"));
    }

    #[test]
    fn conflicting_nodes_are_left_out_one_by_one() {
        let mut s = settings();
        s.underlay_mac = Some("02:00:00:00:00:01".parse().unwrap());
        let n = |name: &str, ip: &str, cidr: &str| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": {"podlane.io/vtep-mac": "02:00:00:00:00:02"}},
                "spec": {"podCIDR": cidr},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}))
            .unwrap()
        };
        let mut o = Objects::default();
        for (name, ip, cidr) in [
            ("a", "10.1.0.1", "10.244.3.0/24"),
            ("b", "10.1.0.2", "10.244.0.0/16"),   // contains a's
            ("c", "10.1.0.3", "10.244.3.128/25"), // inside a's
            ("d", "10.1.0.4", "10.245.0.0/24"),
            ("e", "10.1.0.4", "10.246.0.0/24"), // d's underlay address
            ("f", "10.1.0.6", "10.96.0.0/24"),  // the service CIDR
            ("g", "10.1.0.7", "10.244.2.0/24"),
            ("h", "10.1.0.8", "10.247.0.0/31"),  // too small
            ("i", "224.0.0.9", "10.248.0.0/24"), // not unicast
        ] {
            o.nodes.insert(name.into(), n(name, ip, cidr));
        }
        let (c, skipped) = cluster_from(&o, &s);
        let kept: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(kept, ["a", "d", "g"]);
        let out: Vec<&str> = skipped.iter().map(|k| k.object.as_str()).collect();
        assert_eq!(
            out,
            ["node b", "node c", "node e", "node f", "node h", "node i"]
        );
        c.validate().unwrap();
    }

    fn svc(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "s"}, "spec": spec}))
            .unwrap()
    }

    fn eps(ports: serde_json::Value, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "s-x",
                         "labels": {"kubernetes.io/service-name": "s"}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints}))
        .unwrap()
    }

    #[test]
    fn services_and_endpoints_as_kube_proxy_reads_them() {
        let s = settings();
        let mut skipped = Vec::new();
        // Dual-stack: the IPv4 ClusterIP, wherever it is in the list; no NodePort for a
        // ClusterIP Service even if the object carries one.
        let v = svc(json!({"type": "ClusterIP", "clusterIP": "fd00::a",
            "clusterIPs": ["fd00::a", "10.96.0.11"],
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30001}]}));
        // nil conditions count as ready; a second slice listing the same address as
        // terminating does not make it terminating; a slice with another number for the
        // port is left out.
        let a = eps(
            json!([{"port": 8080, "protocol": "TCP"}]),
            json!([{"addresses": ["10.244.1.9"]},
                   {"addresses": ["10.244.1.10"], "conditions": {"ready": false}}]),
        );
        let b = eps(
            json!([{"port": 8080}]),
            json!([{"addresses": ["10.244.1.9"],
                    "conditions": {"ready": false, "serving": true, "terminating": true}}]),
        );
        let c = eps(
            json!([{"port": 9090}]),
            json!([{"addresses": ["10.244.1.11"]}]),
        );
        let (ka, kb, kc) = (
            "ns/s-a".to_string(),
            "ns/s-b".to_string(),
            "ns/s-c".to_string(),
        );
        let o = service_object(&v, &[(&ka, &a), (&kb, &b), (&kc, &c)], &s, &mut skipped)
            .unwrap()
            .unwrap();
        assert_eq!(o.cluster_ip, Ipv4Addr::new(10, 96, 0, 11));
        assert_eq!(o.ports[0].target_port, Some(8080));
        assert_eq!(o.ports[0].node_port, None);
        assert_eq!(
            o.endpoints,
            [Endpoint {
                ip: Ipv4Addr::new(10, 244, 1, 9),
                terminating: false
            }]
        );
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].why.contains("9090"), "{skipped:?}");
        // IPv6-only and not-yet-allocated Services have nothing to serve.
        let v6 = svc(
            json!({"clusterIP": "fd00::b", "clusterIPs": ["fd00::b"], "ports": [{"port": 80}]}),
        );
        assert_eq!(service_object(&v6, &[], &s, &mut skipped), Ok(None));
        let none = svc(json!({"ports": [{"port": 80}]}));
        assert_eq!(service_object(&none, &[], &s, &mut skipped), Ok(None));
        // LoadBalancer Services have NodePorts; a port equal to its target has none set.
        let lb = svc(json!({"type": "LoadBalancer", "clusterIP": "10.96.0.12",
            "ports": [{"port": 443, "targetPort": 443, "nodePort": 31443}]}));
        let o = service_object(&lb, &[], &s, &mut skipped).unwrap().unwrap();
        assert_eq!(o.ports[0].node_port, Some(31443));
        assert_eq!(o.ports[0].target_port, None);
        assert_eq!(o.external_traffic_policy, TrafficPolicy::Cluster);
        // externalTrafficPolicy Local: kept for a Service with NodePorts, whose NodePort
        // frontends then take this node's endpoints only; meaningless (Cluster) without one.
        let local = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.13",
            "externalTrafficPolicy": "Local", "ports": [{"port": 80, "nodePort": 30013}]}));
        let o = service_object(&local, &[], &s, &mut skipped)
            .unwrap()
            .unwrap();
        assert_eq!(o.external_traffic_policy, TrafficPolicy::Local);
        assert!(o.frontends().iter().all(|f| f.node_port_local));
        let inside = svc(json!({"type": "ClusterIP", "clusterIP": "10.96.0.14",
            "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}));
        let o = service_object(&inside, &[], &s, &mut skipped)
            .unwrap()
            .unwrap();
        assert_eq!(o.external_traffic_policy, TrafficPolicy::Cluster);
        assert!(o.frontends().iter().all(|f| !f.node_port_local));
        assert_eq!(o.health_check_node_port, None);
        // A LoadBalancer Service with the Local policy: its health-check NodePort is served.
        let lb = |hc: u32| {
            svc(json!({"type": "LoadBalancer", "clusterIP": "10.96.0.15",
                "externalTrafficPolicy": "Local", "healthCheckNodePort": hc,
                "ports": [{"port": 80, "nodePort": 30015}]}))
        };
        let o = service_object(&lb(32015), &[], &s, &mut skipped)
            .unwrap()
            .unwrap();
        assert_eq!(o.health_check_node_port, Some(32015));
        let e = service_object(&lb(40000), &[], &s, &mut skipped).unwrap_err();
        assert!(e.contains("health-check NodePort 40000"), "{e}");
        // Not for a NodePort Service (Kubernetes gives it none) nor under Cluster.
        let np = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.16",
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 32016,
            "ports": [{"port": 80, "nodePort": 30016}]}));
        let o = service_object(&np, &[], &s, &mut skipped).unwrap().unwrap();
        assert_eq!(o.health_check_node_port, None);
        let cl = svc(json!({"type": "LoadBalancer", "clusterIP": "10.96.0.17",
            "healthCheckNodePort": 32017, "ports": [{"port": 80, "nodePort": 30017}]}));
        let o = service_object(&cl, &[], &s, &mut skipped).unwrap().unwrap();
        assert_eq!(o.health_check_node_port, None);
    }
}
