//! The cluster's declarative state: nodes (underlay address, pod CIDR) and Services (ClusterIP,
//! ports, NodePorts, endpoints), as a YAML or JSON file and the HTTP API carry it, with the
//! validation that keeps an invalid change from ever reaching a fast path, and the conversion to
//! the fast path's table entries for one node.
//!
//! The daemon holds the state as a [`Cluster`]: objects by name with indexes of what must be
//! unique (underlay addresses, pod CIDRs, ClusterIPs, NodePorts), so that a change of a few
//! objects is checked against all the others in O(log n) — the result is held to exactly the
//! rules of a whole state (a property test checks this against a whole-state oracle). An
//! invalid file or API call is refused and the previous state stays in force.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use fastpath::cidr::Ipv4Cidr;
use fastpath::tables::routes::RemoteNodeSpec;
use fastpath::tables::services::{EndpointSpec, EndpointState, FrontendKey, Protocol, ServiceSpec};
use fastpath::wire::MacAddr;
use serde::{Deserialize, Serialize};

/// The whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Where ClusterIPs live.
    pub service_cidr: Ipv4Cidr,
    /// The NodePort range, inclusive (Kubernetes' default 30000-32767).
    #[serde(default = "default_node_port_range")]
    pub node_port_range: [u16; 2],
    /// The nodes.
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    /// The Services.
    #[serde(default)]
    pub services: Vec<ServiceObject>,
}

fn default_node_port_range() -> [u16; 2] {
    [30000, 32767]
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Its name (what `node_name` in a daemon's config refers to).
    pub name: String,
    /// Its underlay IP (VTEP address).
    pub underlay_ip: Ipv4Addr,
    /// The MAC its underlay address answers from (the outer destination MAC towards it).
    pub underlay_mac: MacAddr,
    /// Its VTEP MAC (the inner destination MAC it accepts).
    pub vtep_mac: MacAddr,
    /// Its pod CIDR.
    pub pod_cidr: Ipv4Cidr,
}

/// The L4 protocol of a Service port, spelled as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum L4 {
    /// TCP.
    #[serde(rename = "TCP", alias = "tcp")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP", alias = "udp")]
    Udp,
}

impl From<L4> for Protocol {
    fn from(p: L4) -> Protocol {
        match p {
            L4::Tcp => Protocol::Tcp,
            L4::Udp => Protocol::Udp,
        }
    }
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    /// Its name (optional when the Service has one port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The ClusterIP port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: L4,
    /// The endpoints' port (defaults to `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
    /// The NodePort, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

/// One endpoint (a backend pod) of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// Terminating: keeps its flows, takes no new ones.
    #[serde(default)]
    pub terminating: bool,
}

/// A Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceObject {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// Its endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Where NodePort traffic may go (Kubernetes' `externalTrafficPolicy`): `cluster` (the
    /// default: any endpoint, SNAT to the node when it is on another node) or `local` (this
    /// node's endpoints only, the client's address kept, dropped where there are none).
    #[serde(default, skip_serializing_if = "TrafficPolicy::is_cluster")]
    pub external_traffic_policy: TrafficPolicy,
    /// Where load balancers ask whether this node has endpoints of the Service (Kubernetes'
    /// `healthCheckNodePort`, which it gives a `LoadBalancer` Service with the `Local` policy):
    /// the daemon answers HTTP on this port of every node address as kube-proxy does — 200
    /// with a ready local endpoint, 503 without (`control/src/healthcheck.rs`). Only with the
    /// `local` policy, in the NodePort range, and no other Service's NodePort or health port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_node_port: Option<u16>,
}

/// Kubernetes' `externalTrafficPolicy` of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficPolicy {
    /// Any endpoint in the cluster.
    #[default]
    Cluster,
    /// The receiving node's endpoints only.
    Local,
}

impl TrafficPolicy {
    fn is_cluster(&self) -> bool {
        *self == TrafficPolicy::Cluster
    }
}

impl ServiceObject {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The fast-path frontends of this Service, one per port.
    pub fn frontends(&self) -> Vec<ServiceSpec> {
        self.ports
            .iter()
            .map(|p| ServiceSpec {
                name: match &p.name {
                    Some(n) => format!("{}:{n}", self.id()),
                    None => format!("{}:{}", self.id(), p.port),
                },
                frontend: FrontendKey {
                    ip: self.cluster_ip,
                    port: p.port,
                    protocol: p.protocol.into(),
                },
                node_port: p.node_port,
                node_port_local: p.node_port.is_some()
                    && self.external_traffic_policy == TrafficPolicy::Local,
                endpoints: self
                    .endpoints
                    .iter()
                    .map(|e| EndpointSpec {
                        ip: e.ip,
                        port: p.target_port.unwrap_or(p.port),
                        state: if e.terminating {
                            EndpointState::Terminating
                        } else {
                            EndpointState::Ready
                        },
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Why a cluster state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Not parseable.
    #[error("cannot parse the cluster state: {0}")]
    Parse(String),
    /// A rule broken; every problem found is listed.
    #[error("invalid cluster state: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_node_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// What is wrong with one node on its own (the checks that need no other node): its
/// underlay address, its pod CIDR's size and overlap with the service CIDR, its MACs. Each
/// problem is pushed to `errs` as "node NAME: …".
pub fn node_errors(n: &NodeSpec, service_cidr: &Ipv4Cidr, errs: &mut Vec<String>) {
    let ip = n.underlay_ip;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        errs.push(format!(
            "node {}: underlay IP {ip} is not a unicast address",
            n.name
        ));
    }
    if n.pod_cidr.prefix_len() < 16 || n.pod_cidr.prefix_len() > 30 {
        errs.push(format!(
            "node {}: pod CIDR {} must be a /16 to /30",
            n.name, n.pod_cidr
        ));
    }
    if n.pod_cidr.overlaps(service_cidr) {
        errs.push(format!(
            "node {}: pod CIDR {} overlaps the service CIDR {service_cidr}",
            n.name, n.pod_cidr
        ));
    }
    if n.underlay_mac.0[0] & 1 == 1 || n.vtep_mac.0[0] & 1 == 1 {
        errs.push(format!("node {}: a MAC is a multicast address", n.name));
    }
}

/// Why `ip` cannot be an endpoint (a backend pod's address), if it cannot.
pub fn endpoint_error(ip: Ipv4Addr, service_cidr: &Ipv4Cidr) -> Option<&'static str> {
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        Some("is not unicast")
    } else if service_cidr.contains(ip) {
        Some("is inside the service CIDR")
    } else {
        None
    }
}

impl ClusterSpec {
    /// An empty cluster with this Service CIDR.
    pub fn empty(service_cidr: Ipv4Cidr) -> ClusterSpec {
        ClusterSpec {
            service_cidr,
            node_port_range: default_node_port_range(),
            nodes: Vec::new(),
            services: Vec::new(),
        }
    }

    /// Parses YAML (JSON is YAML too) and validates.
    pub fn parse(text: &str) -> Result<ClusterSpec, ClusterError> {
        let spec: ClusterSpec =
            serde_yaml::from_str(text).map_err(|e| ClusterError::Parse(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Every rule, every problem reported at once.
    pub fn validate(&self) -> Result<(), ClusterError> {
        self.to_cluster().map(drop)
    }

    /// The indexed state this describes, if it is valid (every problem reported at once).
    /// The rules are [`Cluster::apply`]'s, so a whole state and a change of one object are
    /// held to the same ones.
    pub fn to_cluster(&self) -> Result<Cluster, ClusterError> {
        let mut errs = Vec::new();
        let [lo, hi] = self.node_port_range;
        if lo == 0 || lo > hi {
            errs.push(format!("node_port_range {lo}-{hi} is empty or starts at 0"));
        }
        let mut edits = Vec::with_capacity(self.nodes.len() + self.services.len());
        let mut names = BTreeSet::new();
        for n in &self.nodes {
            if names.insert(n.name.as_str()) {
                edits.push(Edit::SetNode(n.clone()));
            } else {
                errs.push(format!("node {:?} is listed twice", n.name));
            }
        }
        let mut ids = BTreeSet::new();
        for s in &self.services {
            if ids.insert((s.namespace.as_str(), s.name.as_str())) {
                edits.push(Edit::SetService(s.clone()));
            } else {
                errs.push(format!("service {} is listed twice", s.id()));
            }
        }
        let mut c = Cluster::empty(self.service_cidr, self.node_port_range);
        if let Err(ClusterError::Invalid(e)) = c.apply(edits, Mode::Strict, &|_| Ok(())) {
            errs.extend(e);
        }
        if errs.is_empty() {
            Ok(c)
        } else {
            Err(ClusterError::Invalid(errs))
        }
    }
}

/// A Service's identity: (namespace, name).
pub type ServiceKey = (String, String);

/// One object of a cluster change; a change is a batch of them, validated and applied as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Adds or replaces a node (by name).
    SetNode(NodeSpec),
    /// Removes a node (nothing if there is none).
    RemoveNode(String),
    /// Adds or replaces a Service (by namespace/name).
    SetService(ServiceObject),
    /// Removes a Service: namespace, name (nothing if there is none).
    RemoveService(String, String),
}

/// What a change does with an object that breaks a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole change is refused (a file, an API call: the caller said exactly this).
    Strict,
    /// That object's edit is left out — the object stays as it was (absent if it is new) —
    /// and the rest is applied (a source of many independent objects, the Kubernetes API:
    /// one bad object must not hold up the others).
    LeaveOut,
}

/// An edit a [`Mode::LeaveOut`] change left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `node NAME` or `service NAMESPACE/NAME`.
    pub object: String,
    /// Every rule it broke.
    pub why: String,
}

/// What a change did: the previous version of every object it changed (`None`: the object
/// is new), so the change can be pushed as a difference, persisted object by object and undone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    settings: Option<(Ipv4Cidr, [u16; 2])>,
    nodes: BTreeMap<String, Option<NodeSpec>>,
    services: BTreeMap<ServiceKey, Option<ServiceObject>>,
}

impl Applied {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.settings.is_none() && self.nodes.is_empty() && self.services.is_empty()
    }

    /// The nodes changed, with their previous versions.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, Option<&NodeSpec>)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    /// The Services changed, with their previous versions.
    pub fn services(&self) -> impl Iterator<Item = (&ServiceKey, Option<&ServiceObject>)> {
        self.services.iter().map(|(k, v)| (k, v.as_ref()))
    }

    /// Whether the service CIDR or the NodePort range changed.
    pub fn settings_changed(&self) -> bool {
        self.settings.is_some()
    }
}

/// The cluster state as the daemon holds it: objects by name, with the indexes that let a
/// change of one object be checked against all the others in O(log n) — so an edit costs
/// O(the objects it changes), not O(cluster) (the brief's rule for 10,000 Services). Always
/// valid: every change goes through [`Cluster::apply`] or [`Cluster::replace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    service_cidr: Ipv4Cidr,
    node_port_range: [u16; 2],
    nodes: BTreeMap<String, NodeSpec>,
    services: BTreeMap<ServiceKey, ServiceObject>,
    /// Underlay address → node.
    underlay: BTreeMap<Ipv4Addr, String>,
    /// Pod CIDR first address → (last address, node); disjoint ranges.
    cidrs: BTreeMap<u32, (u32, String)>,
    /// ClusterIP → Service.
    cluster_ips: BTreeMap<Ipv4Addr, ServiceKey>,
    /// (NodePort, protocol) → Service.
    node_ports: BTreeMap<(u16, L4), ServiceKey>,
    /// Health-check NodePort → Service.
    health_ports: BTreeMap<u16, ServiceKey>,
}

/// The values of a map, serialized as a sequence.
struct Values<'a, K, V>(&'a BTreeMap<K, V>);

impl<K, V: Serialize> Serialize for Values<'_, K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values())
    }
}

/// Serialized as the [`ClusterSpec`] it is equal to.
impl Serialize for Cluster {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ClusterSpec", 4)?;
        st.serialize_field("service_cidr", &self.service_cidr)?;
        st.serialize_field("node_port_range", &self.node_port_range)?;
        st.serialize_field("nodes", &Values(&self.nodes))?;
        st.serialize_field("services", &Values(&self.services))?;
        st.end()
    }
}

fn key_of(s: &ServiceObject) -> ServiceKey {
    (s.namespace.clone(), s.name.clone())
}

fn cidr_range(c: &Ipv4Cidr) -> (u32, u32) {
    (u32::from(c.network()), u32::from(c.broadcast()))
}

impl Cluster {
    /// No nodes, no Services.
    pub fn empty(service_cidr: Ipv4Cidr, node_port_range: [u16; 2]) -> Cluster {
        Cluster {
            service_cidr,
            node_port_range,
            nodes: BTreeMap::new(),
            services: BTreeMap::new(),
            underlay: BTreeMap::new(),
            cidrs: BTreeMap::new(),
            cluster_ips: BTreeMap::new(),
            node_ports: BTreeMap::new(),
            health_ports: BTreeMap::new(),
        }
    }

    /// Where ClusterIPs live.
    pub fn service_cidr(&self) -> Ipv4Cidr {
        self.service_cidr
    }

    /// The NodePort range, inclusive.
    pub fn node_port_range(&self) -> [u16; 2] {
        self.node_port_range
    }

    /// The nodes, by name.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &NodeSpec> {
        self.nodes.values()
    }

    /// The Services, by namespace and name.
    pub fn services(&self) -> impl ExactSizeIterator<Item = &ServiceObject> {
        self.services.values()
    }

    /// The Services with a health-check NodePort (through their index: no walk over every
    /// Service).
    pub fn health_checked_services(&self) -> impl Iterator<Item = &ServiceObject> {
        self.health_ports
            .values()
            .filter_map(|key| self.services.get(key))
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.get(name)
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceObject> {
        // The map's key is owned; a lookup by borrowed parts needs this one allocation.
        self.services
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// The state as the file and the API carry it.
    pub fn spec(&self) -> ClusterSpec {
        ClusterSpec {
            service_cidr: self.service_cidr,
            node_port_range: self.node_port_range,
            nodes: self.nodes.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
        }
    }

    /// Remote-node routes for node `me`: every other node.
    pub fn routes_for(&self, me: &str) -> Vec<RemoteNodeSpec> {
        self.nodes
            .values()
            .filter(|n| n.name != me)
            .map(route)
            .collect()
    }

    /// Every Service frontend.
    pub fn frontends(&self) -> Vec<ServiceSpec> {
        self.services.values().flat_map(|s| s.frontends()).collect()
    }

    fn insert_node(&mut self, n: NodeSpec) {
        let (lo, hi) = cidr_range(&n.pod_cidr);
        self.underlay.insert(n.underlay_ip, n.name.clone());
        self.cidrs.insert(lo, (hi, n.name.clone()));
        self.nodes.insert(n.name.clone(), n);
    }

    fn take_node(&mut self, name: &str) -> Option<NodeSpec> {
        let n = self.nodes.remove(name)?;
        self.underlay.remove(&n.underlay_ip);
        self.cidrs.remove(&cidr_range(&n.pod_cidr).0);
        Some(n)
    }

    fn insert_service(&mut self, s: ServiceObject) {
        let key = key_of(&s);
        self.cluster_ips.insert(s.cluster_ip, key.clone());
        for p in &s.ports {
            if let Some(np) = p.node_port {
                self.node_ports.insert((np, p.protocol), key.clone());
            }
        }
        if let Some(hc) = s.health_check_node_port {
            self.health_ports.insert(hc, key.clone());
        }
        self.services.insert(key, s);
    }

    fn take_service(&mut self, key: &ServiceKey) -> Option<ServiceObject> {
        let s = self.services.remove(key)?;
        self.cluster_ips.remove(&s.cluster_ip);
        for p in &s.ports {
            if let Some(np) = p.node_port {
                self.node_ports.remove(&(np, p.protocol));
            }
        }
        if let Some(hc) = s.health_check_node_port {
            self.health_ports.remove(&hc);
        }
        Some(s)
    }

    /// What keeps node `n` out of this state: its own problems and its conflicts with the
    /// nodes in it.
    fn node_errors_here(&self, n: &NodeSpec, errs: &mut Vec<String>) {
        if !is_node_name(&n.name) {
            errs.push(format!("node {:?}: not a valid DNS name", n.name));
        }
        node_errors(n, &self.service_cidr, errs);
        if let Some(other) = self.underlay.get(&n.underlay_ip) {
            errs.push(format!(
                "node {}: underlay IP {} is node {other}'s",
                n.name, n.underlay_ip
            ));
        }
        // The ranges in the index are disjoint: only the nearest on each side can overlap.
        let (lo, hi) = cidr_range(&n.pod_cidr);
        let below = self.cidrs.range(..=lo).next_back();
        let above = self.cidrs.range(lo..).next();
        for (&start, (end, other)) in below.into_iter().chain(above) {
            if start <= hi && lo <= *end {
                let theirs = self.nodes.get(other).map(|m| m.pod_cidr.to_string());
                errs.push(format!(
                    "node {}: pod CIDR {} overlaps node {other}'s {}",
                    n.name,
                    n.pod_cidr,
                    theirs.unwrap_or_default()
                ));
                break;
            }
        }
    }

    /// What keeps Service `s` out of this state: its own problems and its conflicts with the
    /// Services in it.
    fn service_errors_here(&self, s: &ServiceObject, errs: &mut Vec<String>) {
        let id = s.id();
        let cidr = &self.service_cidr;
        let [lo, hi] = self.node_port_range;
        if !is_dns_label(&s.namespace) || !is_dns_label(&s.name) {
            errs.push(format!(
                "service {id:?}: namespace and name must be DNS labels"
            ));
        }
        if !cidr.contains(s.cluster_ip)
            || s.cluster_ip == cidr.network()
            || s.cluster_ip == cidr.broadcast()
        {
            errs.push(format!(
                "service {id}: ClusterIP {} is outside the service CIDR {cidr} (or is its network/broadcast address)",
                s.cluster_ip
            ));
        }
        if let Some((ns, name)) = self.cluster_ips.get(&s.cluster_ip) {
            errs.push(format!(
                "service {id}: ClusterIP {} is already service {ns}/{name}'s",
                s.cluster_ip
            ));
        }
        if s.ports.is_empty() {
            errs.push(format!("service {id}: has no ports"));
        }
        let mut seen = BTreeSet::new();
        let mut port_names = BTreeSet::new();
        // NodePorts are per protocol, as in the fast path and in Kubernetes (a DNS Service
        // may take one number for its UDP and its TCP port).
        let mut node_ports = BTreeSet::new();
        for p in &s.ports {
            if p.port == 0 || p.target_port == Some(0) {
                errs.push(format!("service {id}: port 0"));
            }
            if !seen.insert((p.port, p.protocol)) {
                errs.push(format!(
                    "service {id}: port {}/{:?} is listed twice",
                    p.port, p.protocol
                ));
            }
            match &p.name {
                Some(n) if !port_names.insert(n.as_str()) => {
                    errs.push(format!("service {id}: port name {n:?} is listed twice"));
                }
                None if s.ports.len() > 1 => {
                    errs.push(format!(
                        "service {id}: port {} needs a name (the service has several ports)",
                        p.port
                    ));
                }
                _ => {}
            }
            if let Some(np) = p.node_port {
                if np < lo || np > hi {
                    errs.push(format!(
                        "service {id}: NodePort {np} is outside the range {lo}-{hi}"
                    ));
                }
                let other = match self.node_ports.get(&(np, p.protocol)) {
                    Some((ns, name)) => Some(format!("{ns}/{name}")),
                    None if !node_ports.insert((np, p.protocol)) => Some(id.clone()),
                    None => None,
                };
                if let Some(other) = other {
                    errs.push(format!(
                        "service {id}: NodePort {np}/{:?} is already used by service {other}",
                        p.protocol
                    ));
                }
                if let Some((ns, name)) = self.health_ports.get(&np) {
                    errs.push(format!(
                        "service {id}: NodePort {np} is service {ns}/{name}'s health-check port"
                    ));
                }
            }
        }
        if let Some(hc) = s.health_check_node_port {
            if s.external_traffic_policy != TrafficPolicy::Local {
                errs.push(format!(
                    "service {id}: health_check_node_port needs external_traffic_policy local"
                ));
            }
            if hc < lo || hc > hi {
                errs.push(format!(
                    "service {id}: health-check port {hc} is outside the NodePort range {lo}-{hi}"
                ));
            }
            // One number per port, whatever the protocol: Kubernetes allocates NodePorts
            // and health-check ports from one pool.
            let np_owner = [L4::Tcp, L4::Udp]
                .iter()
                .find_map(|&l4| self.node_ports.get(&(hc, l4)));
            let taken = if s.ports.iter().any(|p| p.node_port == Some(hc)) {
                Some(id.clone())
            } else {
                np_owner
                    .or(self.health_ports.get(&hc))
                    .map(|(ns, name)| format!("{ns}/{name}"))
            };
            if let Some(other) = taken {
                errs.push(format!(
                    "service {id}: health-check port {hc} is already used by service {other}"
                ));
            }
        }
        let mut eps = BTreeSet::new();
        for e in &s.endpoints {
            if !eps.insert(e.ip) {
                errs.push(format!("service {id}: endpoint {} is listed twice", e.ip));
            }
            if let Some(why) = endpoint_error(e.ip, cidr) {
                errs.push(format!("service {id}: endpoint {} {why}", e.ip));
            }
        }
    }

    /// Applies a batch of edits as one change. Each new or changed object is checked on its
    /// own and against every other object of the resulting state (through the indexes: the
    /// cost is O(edits × log n)), and against `check_node` (the daemon's "this node's pod CIDR
    /// cannot change under live pods"). The batch's removals are made before its additions,
    /// so the order of edits does not matter; two edits of one object: the last wins. An edit
    /// equal to the object in force changes nothing.
    ///
    /// [`Mode::Strict`]: any broken rule refuses the whole batch, the state unchanged, every
    /// problem listed. [`Mode::LeaveOut`]: an object that breaks a rule stays as it was (its
    /// previous version is put back if it still fits beside the rest; otherwise it is out)
    /// and is reported; the rest applies.
    pub fn apply(
        &mut self,
        edits: Vec<Edit>,
        mode: Mode,
        check_node: &dyn Fn(&NodeSpec) -> Result<(), String>,
    ) -> Result<(Applied, Vec<Refused>), ClusterError> {
        let mut nodes: BTreeMap<String, Option<NodeSpec>> = BTreeMap::new();
        let mut services: BTreeMap<ServiceKey, Option<ServiceObject>> = BTreeMap::new();
        for e in edits {
            match e {
                Edit::SetNode(n) => {
                    nodes.insert(n.name.clone(), Some(n));
                }
                Edit::RemoveNode(name) => {
                    nodes.insert(name, None);
                }
                Edit::SetService(s) => {
                    services.insert(key_of(&s), Some(s));
                }
                Edit::RemoveService(ns, name) => {
                    services.insert((ns, name), None);
                }
            }
        }
        nodes.retain(|k, v| self.nodes.get(k) != v.as_ref());
        services.retain(|k, v| self.services.get(k) != v.as_ref());
        let mut applied = Applied::default();
        for k in nodes.keys() {
            applied.nodes.insert(k.clone(), self.take_node(k));
        }
        for k in services.keys() {
            applied.services.insert(k.clone(), self.take_service(k));
        }
        let mut errs = Vec::new();
        let mut refused = Vec::new();
        let (a, e, r) = (&mut applied, &mut errs, &mut refused);
        self.apply_kind::<Nodes>(nodes, &mut a.nodes, mode, check_node, e, r);
        self.apply_kind::<Services>(services, &mut a.services, mode, &|_| Ok(()), e, r);
        if mode == Mode::Strict && !errs.is_empty() {
            self.undo(applied);
            return Err(ClusterError::Invalid(errs));
        }
        Ok((applied, refused))
    }

    /// `apply`'s step for one kind: the new and changed objects of `set` (whose previous
    /// versions `before` holds, already taken out) go in one by one, checked against the rest
    /// through the indexes and by `check`. Objects in force before the change go first, and one
    /// left out is put back at once, so an object in force is not displaced by a newcomer of
    /// the same change. Problems go to `errs`; in leave-out mode each refused object to
    /// `refused` as well.
    fn apply_kind<K: Kind>(
        &mut self,
        set: BTreeMap<K::Key, Option<K::Obj>>,
        before: &mut BTreeMap<K::Key, Option<K::Obj>>,
        mode: Mode,
        check: &dyn Fn(&K::Obj) -> Result<(), String>,
        errs: &mut Vec<String>,
        refused: &mut Vec<Refused>,
    ) {
        let (mut first, then): (Vec<_>, Vec<_>) = set
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .partition(|(k, _)| matches!(before.get(k), Some(Some(_))));
        first.extend(then);
        for (key, o) in first {
            let mut e = Vec::new();
            K::errors_here(self, &o, &mut e);
            if e.is_empty() {
                if let Err(why) = check(&o) {
                    e.push(why);
                }
            }
            if e.is_empty() {
                K::insert(self, o);
                continue;
            }
            if mode == Mode::LeaveOut {
                let old = put_back(before, &key, |old| {
                    let mut e = Vec::new();
                    K::errors_here(self, old, &mut e);
                    e.is_empty()
                });
                if let Some(old) = old {
                    K::insert(self, old);
                }
                refused.push(Refused {
                    object: K::label(&key),
                    why: e.join("; "),
                });
            }
            errs.extend(e);
        }
    }

    /// Replaces the whole state with `spec` (validated whole; `check_node` for each node
    /// that changes). O(cluster), as a whole state is.
    pub fn replace(
        &mut self,
        spec: &ClusterSpec,
        check_node: &dyn Fn(&NodeSpec) -> Result<(), String>,
    ) -> Result<Applied, ClusterError> {
        let new = spec.to_cluster()?;
        let mut applied = Applied::default();
        if (new.service_cidr, new.node_port_range) != (self.service_cidr, self.node_port_range) {
            applied.settings = Some((self.service_cidr, self.node_port_range));
        }
        changed(&self.nodes, &new.nodes, &mut applied.nodes);
        changed(&self.services, &new.services, &mut applied.services);
        let errs: Vec<String> = applied
            .nodes
            .keys()
            .filter_map(|k| new.nodes.get(k))
            .filter_map(|n| check_node(n).err())
            .collect();
        if !errs.is_empty() {
            return Err(ClusterError::Invalid(errs));
        }
        *self = new;
        Ok(applied)
    }

    /// Undoes a change this state went through last.
    pub fn undo(&mut self, a: Applied) {
        if let Some((cidr, range)) = a.settings {
            self.service_cidr = cidr;
            self.node_port_range = range;
        }
        for k in a.nodes.keys() {
            self.take_node(k);
        }
        for k in a.services.keys() {
            self.take_service(k);
        }
        for n in a.nodes.into_values().flatten() {
            self.insert_node(n);
        }
        for s in a.services.into_values().flatten() {
            self.insert_service(s);
        }
    }
}

/// A kind of cluster object as [`Cluster::apply`] edits it: nodes and Services go through the
/// same steps with their own checks and indexes.
trait Kind {
    type Key: Ord;
    type Obj;
    /// What is wrong with `o` beside the objects `c` holds (`o` itself not among them).
    fn errors_here(c: &Cluster, o: &Self::Obj, errs: &mut Vec<String>);
    /// Puts `o` into `c` and its indexes.
    fn insert(c: &mut Cluster, o: Self::Obj);
    /// "node NAME", "service NS/NAME".
    fn label(k: &Self::Key) -> String;
}

struct Nodes;
struct Services;

impl Kind for Nodes {
    type Key = String;
    type Obj = NodeSpec;
    fn errors_here(c: &Cluster, n: &NodeSpec, errs: &mut Vec<String>) {
        c.node_errors_here(n, errs);
    }
    fn insert(c: &mut Cluster, n: NodeSpec) {
        c.insert_node(n);
    }
    fn label(name: &String) -> String {
        format!("node {name}")
    }
}

impl Kind for Services {
    type Key = ServiceKey;
    type Obj = ServiceObject;
    fn errors_here(c: &Cluster, s: &ServiceObject, errs: &mut Vec<String>) {
        c.service_errors_here(s, errs);
    }
    fn insert(c: &mut Cluster, s: ServiceObject) {
        c.insert_service(s);
    }
    fn label(k: &ServiceKey) -> String {
        format!("service {}/{}", k.0, k.1)
    }
}

/// A left-out edit of `key`: its previous version, to put back if it still `fits` beside the
/// rest (the change then no longer touches `key`); otherwise `None`, and `applied` keeps
/// recording `key` as removed — or, for an object that is new, as untouched.
fn put_back<K: Ord, V>(
    applied: &mut BTreeMap<K, Option<V>>,
    key: &K,
    fits: impl FnOnce(&V) -> bool,
) -> Option<V> {
    match applied.get(key) {
        Some(Some(old)) if !fits(old) => None,
        _ => applied.remove(key).flatten(),
    }
}

/// Records in `out` every key whose value differs between `old` and `new`, with its old value.
fn changed<K: Ord + Clone, V: Clone + PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
    out: &mut BTreeMap<K, Option<V>>,
) {
    for (k, v) in old {
        if new.get(k) != Some(v) {
            out.insert(k.clone(), Some(v.clone()));
        }
    }
    for k in new.keys().filter(|k| !old.contains_key(*k)) {
        out.insert(k.clone(), None);
    }
}

/// The fast path's route to node `n`.
pub fn route(n: &NodeSpec) -> RemoteNodeSpec {
    RemoteNodeSpec {
        name: n.name.clone(),
        underlay_ip: n.underlay_ip,
        underlay_mac: n.underlay_mac,
        vtep_mac: n.vtep_mac,
        pod_cidr: n.pod_cidr,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The lab's cluster, for this crate's unit tests.
    pub(crate) const SAMPLE: &str = r#"
service_cidr: 10.96.0.0/12
nodes:
  - {name: node-a, underlay_ip: 10.1.0.10, underlay_mac: "02:00:0a:01:00:0a", vtep_mac: "02:76:74:65:70:0a", pod_cidr: 10.244.1.0/24}
  - {name: node-b, underlay_ip: 10.1.0.11, underlay_mac: "02:00:0a:01:00:0b", vtep_mac: "02:76:74:65:70:0b", pod_cidr: 10.244.2.0/24}
services:
  - namespace: kube-system
    name: kube-dns
    cluster_ip: 10.96.0.10
    ports:
      - {name: dns, port: 53, protocol: UDP, target_port: 5353}
      - {name: dns-tcp, port: 53, protocol: TCP, target_port: 5353}
    endpoints: [{ip: 10.244.1.3}, {ip: 10.244.2.2, terminating: true}]
  - namespace: default
    name: web
    cluster_ip: 10.96.0.20
    ports: [{port: 80, protocol: TCP, target_port: 8080, node_port: 30080}]
    endpoints: [{ip: 10.244.1.3}]
"#;

    /// `external_traffic_policy: local` in the cluster file reaches the NodePort frontends;
    /// absent is `cluster` and is not written back; anything else is refused.
    #[test]
    fn external_traffic_policy_parses_and_round_trips() {
        let yaml = SAMPLE.replacen(
            "    ports: [{port: 80, protocol: TCP, target_port: 8080, node_port: 30080}]\n",
            "    ports: [{port: 80, protocol: TCP, target_port: 8080, node_port: 30080}]\n    external_traffic_policy: local\n",
            1,
        );
        assert_ne!(yaml, SAMPLE);
        let spec = ClusterSpec::parse(&yaml).unwrap();
        let web = spec.services.iter().find(|s| s.name == "web").unwrap();
        assert_eq!(web.external_traffic_policy, TrafficPolicy::Local);
        assert!(web.frontends()[0].node_port_local);
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains(r#""external_traffic_policy":"local""#),
            "{json}"
        );
        assert_eq!(ClusterSpec::parse(&json).unwrap(), spec);
        let plain = serde_json::to_string(&ClusterSpec::parse(SAMPLE).unwrap()).unwrap();
        assert!(!plain.contains("external_traffic_policy"), "{plain}");
        let bad = yaml.replace("policy: local", "policy: nearby");
        assert!(ClusterSpec::parse(&bad).is_err());
    }

    #[test]
    fn sample_parses_and_converts() {
        let spec = ClusterSpec::parse(SAMPLE).unwrap();
        let c = spec.to_cluster().unwrap();
        let routes = c.routes_for("node-a");
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].underlay_ip, Ipv4Addr::new(10, 1, 0, 11));
        // Frontends in the order of the Services' names.
        let f = c.frontends();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].node_port, Some(30080));
        assert_eq!(f[0].name, "default/web:80");
        assert_eq!(f[1].name, "kube-system/kube-dns:dns");
        assert_eq!(f[1].frontend.protocol, Protocol::Udp);
        assert_eq!(f[1].endpoints[0].port, 5353);
        assert_eq!(f[1].endpoints[1].state, EndpointState::Terminating);
        // JSON is accepted too, and round-trips; the indexed state serializes as the spec
        // it holds.
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(ClusterSpec::parse(&json).unwrap(), spec);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(ClusterSpec::parse(&json).unwrap(), c.spec());
        assert_eq!(c.spec().to_cluster().unwrap(), c);
    }

    fn refused(edit: impl FnOnce(&mut ClusterSpec)) -> String {
        let mut c = ClusterSpec::parse(SAMPLE).unwrap();
        edit(&mut c);
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn invalid_states_are_refused_with_the_reason() {
        let e = refused(|c| c.nodes[1].pod_cidr = "10.244.1.128/25".parse().unwrap());
        assert!(e.contains("overlaps node node-a"), "{e}");
        let e = refused(|c| c.services[1].cluster_ip = Ipv4Addr::new(10, 200, 0, 1));
        assert!(e.contains("outside the service CIDR"), "{e}");
        let e = refused(|c| c.services[0].ports[1].node_port = Some(30080));
        assert!(e.contains("NodePort 30080/Tcp is already used"), "{e}");
        // One NodePort number for a UDP and a TCP port is two NodePorts (as in Kubernetes).
        let mut c = ClusterSpec::parse(SAMPLE).unwrap();
        c.services[0].ports[0].node_port = Some(30053);
        c.services[0].ports[1].node_port = Some(30053);
        c.validate().unwrap();
        // And so is web's TCP 30080 beside another Service's UDP 30080.
        c.services[0].ports[0].node_port = Some(30080);
        c.validate().unwrap();
        let e = refused(|c| c.services[1].ports[0].node_port = Some(80));
        assert!(e.contains("outside the range"), "{e}");
        let e = refused(|c| c.services[1].cluster_ip = Ipv4Addr::new(10, 96, 0, 10));
        assert!(e.contains("ClusterIP 10.96.0.10 is already service"), "{e}");
        let e = refused(|c| c.nodes[1].underlay_ip = Ipv4Addr::new(10, 1, 0, 10));
        assert!(e.contains("10.1.0.10 is node node-a's"), "{e}");
        let e = refused(|c| c.nodes[1].name = "Node_B".into());
        assert!(e.contains("DNS name"), "{e}");
        let e = refused(|c| c.services[0].ports[1].name = None);
        assert!(e.contains("needs a name"), "{e}");
        assert!(matches!(
            ClusterSpec::parse("service_cidr: 10.96.0.0/12\nbogus: 1\n"),
            Err(ClusterError::Parse(_))
        ));
        assert!(matches!(
            ClusterSpec::parse("nodes: [}"),
            Err(ClusterError::Parse(_))
        ));
    }

    /// The rules as one pass over a whole state, written independently of [`Cluster`]'s
    /// indexes (it is how `validate` was written before changes became incremental): the
    /// oracle for the property test below.
    fn reference_errors(c: &ClusterSpec) -> Vec<String> {
        let mut errs = Vec::new();
        for (i, n) in c.nodes.iter().enumerate() {
            let mut e = Vec::new();
            if !is_node_name(&n.name) {
                e.push("name");
            }
            let mut alone = Vec::new();
            node_errors(n, &c.service_cidr, &mut alone);
            if !alone.is_empty() {
                e.push("alone");
            }
            for m in &c.nodes[..i] {
                if m.name == n.name {
                    e.push("twice");
                }
                if m.underlay_ip == n.underlay_ip {
                    e.push("underlay");
                }
                if m.pod_cidr.overlaps(&n.pod_cidr) {
                    e.push("overlap");
                }
            }
            errs.extend(e.into_iter().map(|e| format!("node {}: {e}", n.name)));
        }
        let [lo, hi] = c.node_port_range;
        for (i, s) in c.services.iter().enumerate() {
            let mut e = Vec::new();
            let ip = s.cluster_ip;
            if !c.service_cidr.contains(ip)
                || ip == c.service_cidr.network()
                || ip == c.service_cidr.broadcast()
            {
                e.push("cidr");
            }
            if s.ports.is_empty() {
                e.push("no ports");
            }
            let mine: Vec<(u16, L4)> = s
                .ports
                .iter()
                .filter_map(|p| Some((p.node_port?, p.protocol)))
                .collect();
            for (j, p) in s.ports.iter().enumerate() {
                let before = &s.ports[..j];
                if before
                    .iter()
                    .any(|q| (q.port, q.protocol) == (p.port, p.protocol))
                {
                    e.push("port twice");
                }
                if p.name.is_none() && s.ports.len() > 1
                    || p.name.is_some() && before.iter().any(|q| q.name == p.name)
                {
                    e.push("port name");
                }
                if let Some(np) = p.node_port {
                    if np < lo || np > hi {
                        e.push("node port range");
                    }
                }
            }
            for (j, np) in mine.iter().enumerate() {
                if mine[..j].contains(np) {
                    e.push("node port twice");
                }
            }
            if let Some(hc) = s.health_check_node_port {
                if s.external_traffic_policy != TrafficPolicy::Local {
                    e.push("health port policy");
                }
                if hc < lo || hc > hi {
                    e.push("health port range");
                }
                if mine.iter().any(|&(np, _)| np == hc) {
                    e.push("health port is a node port");
                }
            }
            for (j, ep) in s.endpoints.iter().enumerate() {
                if s.endpoints[..j].iter().any(|x| x.ip == ep.ip)
                    || endpoint_error(ep.ip, &c.service_cidr).is_some()
                {
                    e.push("endpoint");
                }
            }
            for t in &c.services[..i] {
                if (t.namespace.as_str(), t.name.as_str())
                    == (s.namespace.as_str(), s.name.as_str())
                {
                    e.push("twice");
                }
                if t.cluster_ip == ip {
                    e.push("cluster ip");
                }
                let theirs = t
                    .ports
                    .iter()
                    .filter_map(|p| Some((p.node_port?, p.protocol)));
                if theirs.into_iter().any(|np| mine.contains(&np)) {
                    e.push("node port taken");
                }
                let numbers = |x: &ServiceObject| -> Vec<u16> {
                    x.ports.iter().filter_map(|p| p.node_port).collect()
                };
                let (hs, ht) = (s.health_check_node_port, t.health_check_node_port);
                if hs.is_some() && hs == ht
                    || hs.is_some_and(|h| numbers(t).contains(&h))
                    || ht.is_some_and(|h| numbers(s).contains(&h))
                {
                    e.push("health port taken");
                }
            }
            errs.extend(e.into_iter().map(|e| format!("service {}: {e}", s.id())));
        }
        errs
    }

    use proptest::prelude::*;

    fn any_node() -> impl Strategy<Value = NodeSpec> {
        let cidrs = [
            "10.244.1.0/24",
            "10.244.2.0/24",
            "10.244.0.0/16",
            "10.244.1.128/25",
            "10.96.1.0/24",  // inside the service CIDR
            "10.245.0.0/31", // too small
        ];
        (0..4usize, 1..4u8, 0..cidrs.len(), 0..8u8).prop_map(move |(n, ip, c, mac)| NodeSpec {
            name: ["node-a", "node-b", "node-c", "Node_D"][n].into(),
            underlay_ip: Ipv4Addr::new(10, 1, 0, ip),
            underlay_mac: MacAddr([if mac == 0 { 1 } else { 2 }, 0, 0, 0, 0, ip]),
            vtep_mac: MacAddr([2, 0, 0, 0, 1, ip]),
            pod_cidr: cidrs[c].parse().unwrap(),
        })
    }

    fn any_service() -> impl Strategy<Value = ServiceObject> {
        let port = (0..3usize, 0..2u8, 0..4usize).prop_map(|(n, proto, np)| ServicePort {
            name: [None, Some("a".to_string()), Some("b".to_string())][n].clone(),
            port: 80,
            protocol: if proto == 0 { L4::Tcp } else { L4::Udp },
            target_port: None,
            node_port: [None, Some(30001), Some(30002), Some(80)][np],
        });
        let ep = (0..4usize, any::<bool>()).prop_map(|(i, terminating)| Endpoint {
            ip: ["10.244.1.2", "10.244.2.2", "10.244.1.3", "10.96.0.5"][i]
                .parse()
                .unwrap(),
            terminating,
        });
        (
            (
                0..4usize,
                0..4usize,
                prop::collection::vec(port, 0..3),
                prop::collection::vec(ep, 0..3),
            ),
            (0..5usize, prop::bool::weighted(0.8)),
        )
            .prop_map(|((k, ip, ports, endpoints), (hc, local))| ServiceObject {
                namespace: ["ns", "ns", "ns", "x"][k].into(),
                name: ["s1", "s2", "s3", "s1"][k].into(),
                cluster_ip: ["10.96.0.1", "10.96.0.2", "10.96.0.3", "10.200.0.1"][ip]
                    .parse()
                    .unwrap(),
                ports,
                endpoints,
                external_traffic_policy: if local {
                    TrafficPolicy::Local
                } else {
                    TrafficPolicy::Cluster
                },
                health_check_node_port: [None, None, Some(30001), Some(30003), Some(81)][hc],
            })
    }

    fn any_edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            3 => any_node().prop_map(Edit::SetNode),
            1 => any_node().prop_map(|n| Edit::RemoveNode(n.name)),
            3 => any_service().prop_map(Edit::SetService),
            1 => any_service().prop_map(|s| Edit::RemoveService(s.namespace, s.name)),
        ]
    }

    /// `spec` with `edits` made the obvious way.
    fn edited(spec: &ClusterSpec, edits: &[Edit]) -> ClusterSpec {
        let mut s = spec.clone();
        for e in edits {
            match e {
                Edit::SetNode(n) => {
                    s.nodes.retain(|x| x.name != n.name);
                    s.nodes.push(n.clone());
                }
                Edit::RemoveNode(name) => s.nodes.retain(|x| x.name != *name),
                Edit::SetService(v) => {
                    s.services.retain(|x| x.id() != v.id());
                    s.services.push(v.clone());
                }
                Edit::RemoveService(ns, name) => {
                    s.services.retain(|x| (&x.namespace, &x.name) != (ns, name))
                }
            }
        }
        s.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        s.services.sort_by_key(key_of);
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Incremental changes are held to exactly the rules of a whole state: a strict
        /// batch applies iff the state it makes passes the whole-state oracle, and then the
        /// state (indexes included) is the one built from scratch; refused, nothing changes.
        /// A leave-out batch always leaves a valid state in which every edit not reported is
        /// in force and every reported object is as it was or gone. Undo restores the state.
        #[test]
        fn incremental_changes_keep_the_whole_state_rules(
            batches in prop::collection::vec(prop::collection::vec(any_edit(), 1..5), 1..10)
        ) {
            let cidr: Ipv4Cidr = "10.96.0.0/12".parse().unwrap();
            let mut strict = Cluster::empty(cidr, [30000, 32767]);
            let mut lenient = strict.clone();
            for batch in batches {
                let want = edited(&strict.spec(), &batch);
                let before = strict.clone();
                let r = strict.apply(batch.clone(), Mode::Strict, &|_| Ok(()));
                let oracle = reference_errors(&want);
                match r {
                    Ok((applied, refused)) => {
                        prop_assert!(oracle.is_empty(), "applied, but: {oracle:?}");
                        prop_assert!(refused.is_empty());
                        prop_assert_eq!(strict.spec(), want.clone());
                        prop_assert_eq!(&strict, &want.to_cluster().unwrap());
                        let mut back = strict.clone();
                        back.undo(applied);
                        prop_assert_eq!(&back, &before);
                    }
                    Err(e) => {
                        prop_assert!(!oracle.is_empty(), "refused a valid state: {e}");
                        prop_assert_eq!(&strict, &before);
                    }
                }
                let before = lenient.clone();
                let (applied, refused) =
                    lenient.apply(batch.clone(), Mode::LeaveOut, &|_| Ok(())).unwrap();
                let now = lenient.spec();
                prop_assert!(reference_errors(&now).is_empty(), "{:?}", reference_errors(&now));
                prop_assert_eq!(&lenient, &now.to_cluster().unwrap());
                let out: BTreeSet<&str> = refused.iter().map(|r| r.object.as_str()).collect();
                let mut last: BTreeMap<String, &Edit> = BTreeMap::new();
                for e in &batch {
                    let k = match e {
                        Edit::SetNode(n) => format!("node {}", n.name),
                        Edit::RemoveNode(n) => format!("node {n}"),
                        Edit::SetService(s) => format!("service {}", s.id()),
                        Edit::RemoveService(ns, n) => format!("service {ns}/{n}"),
                    };
                    last.insert(k, e);
                }
                for (k, e) in last {
                    let (is, was) = match e {
                        Edit::SetNode(n) => (
                            lenient.node(&n.name).cloned().map(Edit::SetNode),
                            before.node(&n.name).cloned().map(Edit::SetNode),
                        ),
                        Edit::RemoveNode(n) => (
                            lenient.node(n).cloned().map(Edit::SetNode),
                            before.node(n).cloned().map(Edit::SetNode),
                        ),
                        Edit::SetService(s) => (
                            lenient.service(&s.namespace, &s.name).cloned().map(Edit::SetService),
                            before.service(&s.namespace, &s.name).cloned().map(Edit::SetService),
                        ),
                        Edit::RemoveService(ns, n) => (
                            lenient.service(ns, n).cloned().map(Edit::SetService),
                            before.service(ns, n).cloned().map(Edit::SetService),
                        ),
                    };
                    if out.contains(k.as_str()) {
                        prop_assert!(is.is_none() || is == was, "{k}: {is:?} / {was:?}");
                    } else if matches!(e, Edit::SetNode(_) | Edit::SetService(_)) {
                        prop_assert_eq!(is.as_ref(), Some(e), "{}", k);
                    } else {
                        prop_assert!(is.is_none(), "{k} removed");
                    }
                }
                if reference_errors(&edited(&before.spec(), &batch)).is_empty() {
                    prop_assert!(refused.is_empty());
                }
                let mut back = lenient.clone();
                back.undo(applied);
                prop_assert_eq!(&back, &before);
            }
        }
    }
}
