//! Desired cluster state → fast-path [`Update`] messages. The one place in the simulator that
//! decides what each node's tables must hold; written so the control crate (issue 4) can take it
//! over unchanged: it depends only on `fastpath` types, not on anything else in the simulator.
//!
//! The model is a per-node control daemon: every node runs one, each watches the same cluster
//! state ([`ClusterState`]), and for each [`Change`] each computes the updates *its own* fast
//! path needs ([`ClusterState::plan`]), before the change is applied to the state
//! ([`ClusterState::apply`]). A node is identified by its underlay IP. After a restart (either
//! side) the daemon sends [`ClusterState::full_state`] as one [`Update::Snapshot`], which the
//! fast path applies as a difference.
//!
//! Routing decisions:
//! - a pod goes into its own node's pod table only;
//! - every node routes to every *other* node (a node never gets a route for itself);
//! - Services and their endpoints go to every node that carries the Service table
//!   ([`NodeRole::services`]; in a real cluster every node does — the simulator's scale runs
//!   give it to a sample of nodes only, see `sim`).

use std::collections::BTreeMap;

use core::net::Ipv4Addr;

use fastpath::tables::pods::PodSpec;
use fastpath::tables::routes::RemoteNodeSpec;
use fastpath::tables::services::{EndpointSpec, FrontendKey, ServiceSpec};
use fastpath::update::{FullState, Update};

/// What a node's fast path is asked to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRole {
    /// The node (its underlay IP).
    pub node: Ipv4Addr,
    /// Whether it carries the Service table.
    pub services: bool,
}

/// One change to the cluster, as a watch on the cluster's API would report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A node joined (or changed).
    AddNode(RemoteNodeSpec),
    /// A node left.
    RemoveNode(Ipv4Addr),
    /// A pod was created on `node`.
    AddPod {
        /// Its node's underlay IP.
        node: Ipv4Addr,
        /// The pod.
        pod: PodSpec,
    },
    /// A pod was deleted.
    RemovePod(Ipv4Addr),
    /// A Service port was created or replaced.
    AddService(ServiceSpec),
    /// A Service port was deleted.
    RemoveService(FrontendKey),
    /// An endpoint was added or changed state.
    SetEndpoint(FrontendKey, EndpointSpec),
    /// An endpoint was removed.
    RemoveEndpoint(FrontendKey, Ipv4Addr, u16),
}

/// A change that does not fit the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    /// Pod unknown.
    #[error("no pod {0}")]
    NoPod(Ipv4Addr),
    /// Pod IP taken.
    #[error("pod IP {0} is already in use")]
    PodExists(Ipv4Addr),
    /// Node unknown.
    #[error("no node {0}")]
    NoNode(Ipv4Addr),
    /// Service unknown.
    #[error("no service {0:?}")]
    NoService(FrontendKey),
    /// Endpoint unknown.
    #[error("service {0:?} has no endpoint {1}:{2}")]
    NoEndpoint(FrontendKey, Ipv4Addr, u16),
}

/// The whole desired state of the cluster. Ordered maps throughout, so every listing (and so
/// every snapshot) comes out in the same order every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    nodes: BTreeMap<Ipv4Addr, RemoteNodeSpec>,
    /// node → pod IP → pod.
    pods: BTreeMap<Ipv4Addr, BTreeMap<Ipv4Addr, PodSpec>>,
    /// pod IP → node.
    pod_node: BTreeMap<Ipv4Addr, Ipv4Addr>,
    services: BTreeMap<FrontendKey, ServiceSpec>,
}

impl ClusterState {
    /// An empty cluster.
    pub fn new() -> ClusterState {
        ClusterState::default()
    }

    /// The updates the fast path of `role.node` needs for `change` (computed against the state
    /// *before* the change). Empty when the change does not concern that node.
    pub fn plan(&self, role: NodeRole, change: &Change) -> Vec<Update> {
        match change {
            Change::AddNode(spec) if spec.underlay_ip != role.node => {
                vec![Update::AddNode(spec.clone())]
            }
            Change::RemoveNode(ip) if *ip != role.node && self.nodes.contains_key(ip) => {
                vec![Update::RemoveNode { underlay_ip: *ip }]
            }
            Change::AddPod { node, pod } if *node == role.node => vec![Update::AddPod(*pod)],
            Change::RemovePod(ip) if self.pod_node.get(ip) == Some(&role.node) => {
                vec![Update::RemovePod { ip: *ip }]
            }
            Change::AddService(s) if role.services => vec![Update::AddService(s.clone())],
            Change::RemoveService(f) if role.services && self.services.contains_key(f) => {
                vec![Update::RemoveService { frontend: *f }]
            }
            Change::SetEndpoint(f, e) if role.services && self.services.contains_key(f) => {
                vec![Update::SetEndpoint {
                    frontend: *f,
                    endpoint: *e,
                }]
            }
            Change::RemoveEndpoint(f, ip, port)
                if role.services && self.has_endpoint(f, *ip, *port) =>
            {
                vec![Update::RemoveEndpoint {
                    frontend: *f,
                    ip: *ip,
                    port: *port,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Applies `change` to the state.
    pub fn apply(&mut self, change: Change) -> Result<(), DesiredError> {
        match change {
            Change::AddNode(spec) => {
                self.nodes.insert(spec.underlay_ip, spec);
            }
            Change::RemoveNode(ip) => {
                self.nodes.remove(&ip).ok_or(DesiredError::NoNode(ip))?;
                if let Some(pods) = self.pods.remove(&ip) {
                    for p in pods.keys() {
                        self.pod_node.remove(p);
                    }
                }
            }
            Change::AddPod { node, pod } => {
                if !self.nodes.contains_key(&node) {
                    return Err(DesiredError::NoNode(node));
                }
                if self.pod_node.contains_key(&pod.ip) {
                    return Err(DesiredError::PodExists(pod.ip));
                }
                self.pod_node.insert(pod.ip, node);
                self.pods.entry(node).or_default().insert(pod.ip, pod);
            }
            Change::RemovePod(ip) => {
                let node = self.pod_node.remove(&ip).ok_or(DesiredError::NoPod(ip))?;
                if let Some(m) = self.pods.get_mut(&node) {
                    m.remove(&ip);
                }
            }
            Change::AddService(s) => {
                self.services.insert(s.frontend, s);
            }
            Change::RemoveService(f) => {
                self.services.remove(&f).ok_or(DesiredError::NoService(f))?;
            }
            Change::SetEndpoint(f, e) => {
                let s = self
                    .services
                    .get_mut(&f)
                    .ok_or(DesiredError::NoService(f))?;
                match s
                    .endpoints
                    .iter_mut()
                    .find(|x| x.ip == e.ip && x.port == e.port)
                {
                    Some(x) => *x = e,
                    None => s.endpoints.push(e),
                }
            }
            Change::RemoveEndpoint(f, ip, port) => {
                let s = self
                    .services
                    .get_mut(&f)
                    .ok_or(DesiredError::NoService(f))?;
                let before = s.endpoints.len();
                s.endpoints.retain(|x| !(x.ip == ip && x.port == port));
                if s.endpoints.len() == before {
                    return Err(DesiredError::NoEndpoint(f, ip, port));
                }
            }
        }
        Ok(())
    }

    /// Everything `role.node`'s fast path must hold, for a full (re)sync.
    pub fn full_state(&self, role: NodeRole) -> FullState {
        FullState {
            pods: self
                .pods
                .get(&role.node)
                .map(|m| m.values().copied().collect())
                .unwrap_or_default(),
            nodes: self
                .nodes
                .values()
                .filter(|n| n.underlay_ip != role.node)
                .cloned()
                .collect(),
            services: if role.services {
                self.services.values().cloned().collect()
            } else {
                Vec::new()
            },
        }
    }

    /// True if the frontend has that endpoint.
    pub fn has_endpoint(&self, f: &FrontendKey, ip: Ipv4Addr, port: u16) -> bool {
        self.services
            .get(f)
            .is_some_and(|s| s.endpoints.iter().any(|e| e.ip == ip && e.port == port))
    }

    /// A Service's spec.
    pub fn service(&self, f: &FrontendKey) -> Option<&ServiceSpec> {
        self.services.get(f)
    }

    /// Every Service, in frontend order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.services.values()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of pods.
    pub fn pod_count(&self) -> usize {
        self.pod_node.len()
    }

    /// The node a pod runs on.
    pub fn node_of_pod(&self, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        self.pod_node.get(&ip).copied()
    }
}

/// Puts a [`FullState`] in a canonical order (pods and nodes by address, Services by frontend,
/// endpoints by address and port), so two states can be compared whatever order their source
/// listed them in (a fast path lists Services by table slot).
pub fn canonical(mut s: FullState) -> FullState {
    s.pods.sort_by_key(|p| p.ip);
    s.nodes.sort_by_key(|n| n.underlay_ip);
    s.services.sort_by_key(|x| x.frontend);
    for x in &mut s.services {
        x.endpoints.sort_by_key(|e| (e.ip, e.port));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology;
    use fastpath::tables::services::EndpointState;
    use fastpath::update::TableWriter;

    fn role(i: u32) -> NodeRole {
        NodeRole {
            node: topology::underlay_ip(i),
            services: true,
        }
    }

    fn pod(node: u32, host: u32, port: u16) -> PodSpec {
        PodSpec {
            ip: topology::pod_ip(node, host),
            mac: topology::pod_mac(node * 1000 + host),
            port,
        }
    }

    /// Applies `c` to the state and to every node's writer as the plan says.
    fn step(state: &mut ClusterState, writers: &mut [TableWriter], c: Change) {
        for (i, w) in writers.iter_mut().enumerate() {
            let u = state.plan(role(i as u32), &c);
            if !u.is_empty() {
                w.apply_batch(u).unwrap();
            }
        }
        state.apply(c).unwrap();
    }

    #[test]
    fn incremental_updates_equal_a_full_sync() {
        let mut state = ClusterState::new();
        let caps = fastpath::tables::Capacities::default();
        let mut writers: Vec<TableWriter> = (0..3)
            .map(|i| TableWriter::new(topology::node_config(i), caps).unwrap())
            .collect();
        for i in 0..3 {
            step(
                &mut state,
                &mut writers,
                Change::AddNode(topology::remote_spec(i)),
            );
        }
        step(
            &mut state,
            &mut writers,
            Change::AddPod {
                node: topology::underlay_ip(0),
                pod: pod(0, 2, 0),
            },
        );
        step(
            &mut state,
            &mut writers,
            Change::AddPod {
                node: topology::underlay_ip(1),
                pod: pod(1, 2, 0),
            },
        );
        step(
            &mut state,
            &mut writers,
            Change::AddPod {
                node: topology::underlay_ip(1),
                pod: pod(1, 3, 1),
            },
        );
        let f = topology::frontend(0);
        step(
            &mut state,
            &mut writers,
            Change::AddService(ServiceSpec {
                name: topology::service_name(0),
                frontend: f,
                node_port: None,
                node_port_local: false,
                endpoints: vec![],
            }),
        );
        let ep = |n, h| EndpointSpec {
            ip: topology::pod_ip(n, h),
            port: 8080,
            state: EndpointState::Ready,
        };
        step(&mut state, &mut writers, Change::SetEndpoint(f, ep(0, 2)));
        step(&mut state, &mut writers, Change::SetEndpoint(f, ep(1, 3)));
        step(
            &mut state,
            &mut writers,
            Change::RemoveEndpoint(f, topology::pod_ip(0, 2), 8080),
        );
        step(
            &mut state,
            &mut writers,
            Change::RemovePod(topology::pod_ip(1, 2)),
        );
        step(
            &mut state,
            &mut writers,
            Change::RemoveNode(topology::underlay_ip(2)),
        );
        for (i, w) in writers.iter().take(2).enumerate() {
            let want = canonical(state.full_state(role(i as u32)));
            assert_eq!(canonical(w.full_state()), want, "node {i}");
        }
        assert_eq!(state.pod_count(), 2);
        assert_eq!(state.node_count(), 2);
        // A node without the Service table gets no Service updates.
        let light = NodeRole {
            services: false,
            ..role(0)
        };
        assert!(state
            .plan(light, &Change::SetEndpoint(f, ep(0, 2)))
            .is_empty());
        assert!(state.full_state(light).services.is_empty());
        // Errors.
        assert_eq!(
            state.apply(Change::RemovePod(topology::pod_ip(0, 99))),
            Err(DesiredError::NoPod(topology::pod_ip(0, 99)))
        );
        assert!(state
            .apply(Change::RemoveEndpoint(f, topology::pod_ip(0, 2), 8080))
            .is_err());
    }
}
