//! The cluster's declarative state: nodes (underlay address, pod CIDR) and Services (ClusterIP,
//! ports, NodePorts, endpoints), as a YAML or JSON file and the HTTP API carry it, with the
//! validation that keeps an invalid change from ever reaching a fast path, and the conversion to
//! the fast path's table entries for one node.
//!
//! A change is validated whole against the whole cluster: an invalid file or API call is refused
//! and the previous state stays in force.

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
        let mut errs = Vec::new();
        let [lo, hi] = self.node_port_range;
        if lo == 0 || lo > hi {
            errs.push(format!("node_port_range {lo}-{hi} is empty or starts at 0"));
        }
        let mut names = BTreeSet::new();
        let mut underlay = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !is_node_name(&n.name) {
                errs.push(format!("node {:?}: not a valid DNS name", n.name));
            }
            if !names.insert(n.name.as_str()) {
                errs.push(format!("node {:?} is listed twice", n.name));
            }
            if !underlay.insert(n.underlay_ip) {
                errs.push(format!(
                    "node {}: underlay IP {} is another node's",
                    n.name, n.underlay_ip
                ));
            }
            node_errors(n, &self.service_cidr, &mut errs);
            for m in &self.nodes[..i] {
                if n.pod_cidr.overlaps(&m.pod_cidr) {
                    errs.push(format!(
                        "node {}: pod CIDR {} overlaps node {}'s {}",
                        n.name, n.pod_cidr, m.name, m.pod_cidr
                    ));
                }
            }
        }
        let mut ids = BTreeSet::new();
        let mut cluster_ips: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        // NodePorts are per protocol, as in the fast path and in Kubernetes (a DNS Service
        // may take one number for its UDP and its TCP port).
        let mut node_ports: BTreeMap<(u16, L4), String> = BTreeMap::new();
        for s in &self.services {
            let id = s.id();
            if !is_dns_label(&s.namespace) || !is_dns_label(&s.name) {
                errs.push(format!(
                    "service {id:?}: namespace and name must be DNS labels"
                ));
            }
            if !ids.insert(id.clone()) {
                errs.push(format!("service {id} is listed twice"));
            }
            if !self.service_cidr.contains(s.cluster_ip)
                || s.cluster_ip == self.service_cidr.network()
                || s.cluster_ip == self.service_cidr.broadcast()
            {
                errs.push(format!(
                    "service {id}: ClusterIP {} is outside the service CIDR {} (or is its network/broadcast address)",
                    s.cluster_ip, self.service_cidr
                ));
            }
            if let Some(other) = cluster_ips.insert(s.cluster_ip, id.clone()) {
                errs.push(format!(
                    "service {id}: ClusterIP {} is already service {other}'s",
                    s.cluster_ip
                ));
            }
            if s.ports.is_empty() {
                errs.push(format!("service {id}: has no ports"));
            }
            let mut seen = BTreeSet::new();
            let mut port_names = BTreeSet::new();
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
                    if let Some(other) = node_ports.insert((np, p.protocol), id.clone()) {
                        errs.push(format!(
                            "service {id}: NodePort {np}/{:?} is already used by service {other}",
                            p.protocol
                        ));
                    }
                }
            }
            let mut eps = BTreeSet::new();
            for e in &s.endpoints {
                if !eps.insert(e.ip) {
                    errs.push(format!("service {id}: endpoint {} is listed twice", e.ip));
                }
                if let Some(why) = endpoint_error(e.ip, &self.service_cidr) {
                    errs.push(format!("service {id}: endpoint {} {why}", e.ip));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Invalid(errs))
        }
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Remote-node routes for node `me`: every other node.
    pub fn routes_for(&self, me: &str) -> Vec<RemoteNodeSpec> {
        self.nodes
            .iter()
            .filter(|n| n.name != me)
            .map(|n| RemoteNodeSpec {
                name: n.name.clone(),
                underlay_ip: n.underlay_ip,
                underlay_mac: n.underlay_mac,
                vtep_mac: n.vtep_mac,
                pod_cidr: n.pod_cidr,
            })
            .collect()
    }

    /// Every Service frontend.
    pub fn frontends(&self) -> Vec<ServiceSpec> {
        self.services.iter().flat_map(|s| s.frontends()).collect()
    }

    /// Adds or replaces a Service (by namespace/name).
    pub fn upsert_service(&mut self, s: ServiceObject) {
        match self
            .services
            .iter_mut()
            .find(|x| x.namespace == s.namespace && x.name == s.name)
        {
            Some(x) => *x = s,
            None => self.services.push(s),
        }
    }

    /// Removes a Service; false when there was none.
    pub fn remove_service(&mut self, namespace: &str, name: &str) -> bool {
        let before = self.services.len();
        self.services
            .retain(|x| !(x.namespace == namespace && x.name == name));
        before != self.services.len()
    }

    /// Adds or replaces a node (by name).
    pub fn upsert_node(&mut self, n: NodeSpec) {
        match self.nodes.iter_mut().find(|x| x.name == n.name) {
            Some(x) => *x = n,
            None => self.nodes.push(n),
        }
    }

    /// Removes a node; false when there was none.
    pub fn remove_node(&mut self, name: &str) -> bool {
        let before = self.nodes.len();
        self.nodes.retain(|x| x.name != name);
        before != self.nodes.len()
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

    #[test]
    fn sample_parses_and_converts() {
        let c = ClusterSpec::parse(SAMPLE).unwrap();
        let routes = c.routes_for("node-a");
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].underlay_ip, Ipv4Addr::new(10, 1, 0, 11));
        let f = c.frontends();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].name, "kube-system/kube-dns:dns");
        assert_eq!(f[0].frontend.protocol, Protocol::Udp);
        assert_eq!(f[0].endpoints[0].port, 5353);
        assert_eq!(f[0].endpoints[1].state, EndpointState::Terminating);
        assert_eq!(f[2].node_port, Some(30080));
        assert_eq!(f[2].name, "default/web:80");
        // JSON is accepted too, and round-trips.
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(ClusterSpec::parse(&json).unwrap(), c);
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
        assert!(e.contains("already service kube-system/kube-dns"), "{e}");
        let e = refused(|c| c.nodes[1].underlay_ip = Ipv4Addr::new(10, 1, 0, 10));
        assert!(e.contains("another node"), "{e}");
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
}
