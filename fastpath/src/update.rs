//! The typed update API: what the control side sends, and the writer that turns it into new
//! table versions.
//!
//! Messages are serde-serialisable (the control socket carries them as JSON). A batch is applied
//! all-or-nothing: the writer edits copies, and only when every message of the batch is valid
//! does it publish one new [`Tables`] version; otherwise it returns the first error and the
//! previous version stays in force. Unchanged tables are shared between versions (`Arc`), so a
//! Service endpoint change copies the Service index but never the pods or routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use core::net::Ipv4Addr;
use serde::{Deserialize, Serialize};

use crate::rcu::{Publisher, Reader};
use crate::tables::pods::{PodError, PodSpec, PodTable};
use crate::tables::routes::{RemoteNodeSpec, RouteError, RouteTable};
use crate::tables::services::{
    EndpointSlots, EndpointSpec, FrontendKey, ServiceError, ServiceSpec, ServiceTable,
};
use crate::tables::{Capacities, ConfigError, NodeConfig};

/// One version of every table the data cores read.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Monotonic version number (the RCU generation).
    pub generation: u64,
    /// This node.
    pub node: Arc<NodeConfig>,
    /// Local pods.
    pub pods: Arc<PodTable>,
    /// Remote node routes.
    pub routes: Arc<RouteTable>,
    /// Services.
    pub services: Arc<ServiceTable>,
}

/// The whole desired state, for a full resync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullState {
    /// Local pods.
    #[serde(default)]
    pub pods: Vec<PodSpec>,
    /// Remote nodes.
    #[serde(default)]
    pub nodes: Vec<RemoteNodeSpec>,
    /// Service frontends with their endpoints.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
}

/// One change to the tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Update {
    /// Adds a pod, or replaces the pod with the same IP.
    AddPod(PodSpec),
    /// Removes the pod with this IP.
    RemovePod {
        /// The pod's IP.
        ip: Ipv4Addr,
    },
    /// Adds a remote node, or replaces the one with the same underlay IP.
    AddNode(RemoteNodeSpec),
    /// Removes a remote node.
    RemoveNode {
        /// Its underlay IP.
        underlay_ip: Ipv4Addr,
    },
    /// Adds a Service frontend, or replaces it (and its endpoint set).
    AddService(ServiceSpec),
    /// Removes a Service frontend.
    RemoveService {
        /// The frontend.
        frontend: FrontendKey,
    },
    /// Adds or changes (e.g. to terminating) one endpoint of a frontend.
    SetEndpoint {
        /// The frontend.
        frontend: FrontendKey,
        /// The endpoint.
        endpoint: EndpointSpec,
    },
    /// Removes one endpoint of a frontend.
    RemoveEndpoint {
        /// The frontend.
        frontend: FrontendKey,
        /// Endpoint IP.
        ip: Ipv4Addr,
        /// Endpoint port.
        port: u16,
    },
    /// Replaces the whole state. Applied as a difference, so what did not change keeps its
    /// place (a resync after a restart does not disturb live flows).
    Snapshot(FullState),
}

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// A pod change.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// A node change.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A Service change.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The control side's handle on the tables: applies updates and publishes versions.
#[derive(Debug)]
pub struct TableWriter {
    node: Arc<NodeConfig>,
    caps: Capacities,
    pods: Arc<PodTable>,
    nodes: BTreeMap<Ipv4Addr, RemoteNodeSpec>,
    routes: Arc<RouteTable>,
    services: Arc<ServiceTable>,
    slots: EndpointSlots,
    publisher: Publisher<Tables>,
}

impl Work {
    /// The working copy of the pods, made from `cur` on first use.
    fn pods(&mut self, cur: &PodTable) -> &mut PodTable {
        self.pods.get_or_insert_with(|| cur.clone())
    }

    /// The working copy of the nodes, made from `cur` on first use.
    fn nodes(
        &mut self,
        cur: &BTreeMap<Ipv4Addr, RemoteNodeSpec>,
    ) -> &mut BTreeMap<Ipv4Addr, RemoteNodeSpec> {
        self.nodes.get_or_insert_with(|| cur.clone())
    }

    /// The working copy of the Services, made from `cur` on first use.
    fn services(&mut self, cur: &ServiceTable) -> &mut ServiceTable {
        self.services.get_or_insert_with(|| cur.clone())
    }
}

/// A copy of a frontend's spec, to edit and upsert back.
fn spec_of(svc: &ServiceTable, frontend: &FrontendKey) -> Result<ServiceSpec, ServiceError> {
    Ok(svc
        .get(frontend)
        .ok_or(ServiceError::NotFound(*frontend))?
        .spec
        .clone())
}

/// Working copies during a batch.
struct Work {
    pods: Option<PodTable>,
    nodes: Option<BTreeMap<Ipv4Addr, RemoteNodeSpec>>,
    services: Option<ServiceTable>,
}

impl TableWriter {
    /// Empty tables for `node`, published as the first version.
    pub fn new(node: NodeConfig, caps: Capacities) -> Result<TableWriter, ConfigError> {
        node.validate()?;
        let node = Arc::new(node);
        let slots = EndpointSlots::new(caps.max_endpoints);
        let pods = Arc::new(PodTable::new(node.pod_cidr, caps.max_pod_ports));
        let routes = Arc::new(RouteTable::default());
        let services = Arc::new(ServiceTable::new(&slots));
        let first = Tables {
            generation: 1,
            node: Arc::clone(&node),
            pods: Arc::clone(&pods),
            routes: Arc::clone(&routes),
            services: Arc::clone(&services),
        };
        Ok(TableWriter {
            node,
            caps,
            pods,
            nodes: BTreeMap::new(),
            routes,
            services,
            slots,
            publisher: Publisher::new(first),
        })
    }

    /// A reader for a data core.
    pub fn reader(&self) -> Reader<Tables> {
        self.publisher.reader()
    }

    /// The version in force.
    pub fn tables(&self) -> Arc<Tables> {
        self.publisher.current()
    }

    /// This node's configuration.
    pub fn node(&self) -> &NodeConfig {
        &self.node
    }

    /// The capacities.
    pub fn capacities(&self) -> &Capacities {
        &self.caps
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.publisher.generation()
    }

    /// Frees table versions no reader holds any more.
    pub fn reclaim(&mut self) -> usize {
        self.publisher.reclaim()
    }

    /// Applies one update; see [`TableWriter::apply_batch`].
    pub fn apply(&mut self, u: Update) -> Result<u64, UpdateError> {
        self.apply_batch([u])
    }

    /// Applies a batch all-or-nothing and publishes one new version. Returns its generation.
    pub fn apply_batch(
        &mut self,
        updates: impl IntoIterator<Item = Update>,
    ) -> Result<u64, UpdateError> {
        let mark = self.slots.mark();
        let mut w = Work {
            pods: None,
            nodes: None,
            services: None,
        };
        let res = updates
            .into_iter()
            .try_for_each(|u| self.apply_one(&mut w, u));
        let routes = match (&res, &w.nodes) {
            (Ok(()), Some(nodes)) => {
                match RouteTable::build(&self.node, nodes.values(), self.caps.max_nodes) {
                    Ok(r) => Some(Arc::new(r)),
                    Err(e) => {
                        self.slots.restore(mark);
                        return Err(e.into());
                    }
                }
            }
            _ => None,
        };
        if let Err(e) = res {
            self.slots.restore(mark);
            return Err(e);
        }
        if let Some(p) = w.pods {
            self.pods = Arc::new(p);
        }
        if let Some(n) = w.nodes {
            self.nodes = n;
        }
        if let Some(r) = routes {
            self.routes = r;
        }
        if let Some(s) = w.services {
            self.services = Arc::new(s);
        }
        let next = Tables {
            generation: self.publisher.generation() + 1,
            node: Arc::clone(&self.node),
            pods: Arc::clone(&self.pods),
            routes: Arc::clone(&self.routes),
            services: Arc::clone(&self.services),
        };
        let g = self.publisher.publish(next);
        // Only now, with the new version visible, retire removed endpoints' generations.
        self.slots.commit();
        Ok(g)
    }

    fn apply_one(&mut self, w: &mut Work, u: Update) -> Result<(), UpdateError> {
        match u {
            Update::AddPod(p) => {
                w.pods(&self.pods).insert(p)?;
            }
            Update::RemovePod { ip } => {
                w.pods(&self.pods).remove(ip)?;
            }
            Update::AddNode(n) => {
                w.nodes(&self.nodes).insert(n.underlay_ip, n);
            }
            Update::RemoveNode { underlay_ip } => {
                w.nodes(&self.nodes)
                    .remove(&underlay_ip)
                    .ok_or(RouteError::NotFound(underlay_ip))?;
            }
            Update::AddService(s) => {
                let svc = w.services(&self.services);
                svc.upsert(&self.node, self.caps.max_services, &mut self.slots, s)?;
            }
            Update::RemoveService { frontend } => {
                let svc = w.services(&self.services);
                svc.remove(&mut self.slots, &frontend)?;
            }
            Update::SetEndpoint { frontend, endpoint } => {
                let svc = w.services(&self.services);
                let mut spec = spec_of(svc, &frontend)?;
                match spec
                    .endpoints
                    .iter_mut()
                    .find(|e| e.ip == endpoint.ip && e.port == endpoint.port)
                {
                    Some(e) => *e = endpoint,
                    None => spec.endpoints.push(endpoint),
                }
                svc.upsert(&self.node, self.caps.max_services, &mut self.slots, spec)?;
            }
            Update::RemoveEndpoint { frontend, ip, port } => {
                let svc = w.services(&self.services);
                let mut spec = spec_of(svc, &frontend)?;
                let before = spec.endpoints.len();
                spec.endpoints.retain(|e| !(e.ip == ip && e.port == port));
                if spec.endpoints.len() == before {
                    return Err(ServiceError::EndpointNotFound(frontend, ip, port).into());
                }
                svc.upsert(&self.node, self.caps.max_services, &mut self.slots, spec)?;
            }
            Update::Snapshot(full) => self.apply_snapshot(w, full)?,
        }
        Ok(())
    }

    fn apply_snapshot(&mut self, w: &mut Work, full: FullState) -> Result<(), UpdateError> {
        // Pods: rebuilt (cheap: one array over the pod CIDR).
        let mut pods = PodTable::new(self.node.pod_cidr, self.caps.max_pod_ports);
        for p in full.pods {
            pods.insert(p)?;
        }
        w.pods = Some(pods);
        w.nodes = Some(full.nodes.into_iter().map(|n| (n.underlay_ip, n)).collect());
        // Services: as a difference, so unchanged endpoints keep their liveness slots.
        let svc = w.services(&self.services);
        let wanted: BTreeMap<FrontendKey, ServiceSpec> =
            full.services.into_iter().map(|s| (s.frontend, s)).collect();
        let stale: Vec<FrontendKey> = svc
            .iter()
            .map(|e| e.spec.frontend)
            .filter(|k| !wanted.contains_key(k))
            .collect();
        for k in stale {
            svc.remove(&mut self.slots, &k)?;
        }
        for (_, s) in wanted {
            svc.upsert(&self.node, self.caps.max_services, &mut self.slots, s)?;
        }
        Ok(())
    }

    /// The desired state as a snapshot message (for resyncing a restarted fast path).
    pub fn full_state(&self) -> FullState {
        FullState {
            pods: self.pods.iter().collect(),
            nodes: self.nodes.values().cloned().collect(),
            services: self.services.iter().map(|e| e.spec.clone()).collect(),
        }
    }

    /// Endpoint slots in use.
    pub fn endpoints_in_use(&self) -> usize {
        self.slots.in_use()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, DNS, POD_A_IP, POD_B_IP, POD_C_IP};
    use crate::tables::services::{EndpointState, Protocol};

    #[test]
    fn messages_round_trip_as_json() {
        let msgs = vec![
            Update::AddPod(fixtures::node_a_state().pods[0]),
            Update::RemovePod { ip: POD_A_IP },
            Update::AddNode(fixtures::remote_node_b()),
            Update::RemoveNode {
                underlay_ip: fixtures::remote_node_b().underlay_ip,
            },
            Update::AddService(fixtures::services()[0].clone()),
            Update::RemoveService { frontend: DNS },
            Update::SetEndpoint {
                frontend: DNS,
                endpoint: EndpointSpec {
                    ip: POD_B_IP,
                    port: 53,
                    state: EndpointState::Terminating,
                },
            },
            Update::RemoveEndpoint {
                frontend: DNS,
                ip: POD_B_IP,
                port: 53,
            },
            Update::Snapshot(fixtures::node_a_state()),
        ];
        for m in msgs {
            let j = serde_json::to_string(&m).unwrap();
            let back: Update = serde_json::from_str(&j).unwrap();
            assert_eq!(back, m, "{j}");
        }
        let j = r#"{"op":"remove_pod","ip":"10.244.1.2"}"#;
        assert_eq!(
            serde_json::from_str::<Update>(j).unwrap(),
            Update::RemovePod { ip: POD_A_IP }
        );
        for bad in [
            r#"{"op":"remove_pod"}"#,
            r#"{"op":"explode","ip":"10.244.1.2"}"#,
            r#"{"op":"remove_pod","ip":"10.244.1.2","extra":1}"#,
            r#"{"op":"remove_pod","ip":"not an ip"}"#,
            "garbage",
        ] {
            assert!(serde_json::from_str::<Update>(bad).is_err(), "{bad}");
        }
    }

    /// The Service table's entries are shared between versions in chunks: an update leaves
    /// every published version as it was, copies only the chunk it edits, and reuses a freed
    /// index (200 Services: four chunks).
    #[test]
    fn service_versions_share_untouched_chunks() {
        let mut w = fixtures::node_a_writer();
        let svc = |i: u32, ep: u8| ServiceSpec {
            name: format!("s{i}"),
            frontend: FrontendKey {
                ip: Ipv4Addr::new(10, 96, 10 + (i / 250) as u8, (1 + i % 250) as u8),
                port: 80,
                protocol: Protocol::Tcp,
            },
            node_port: None,
            node_port_local: false,
            endpoints: vec![EndpointSpec {
                ip: Ipv4Addr::new(10, 244, 2, ep),
                port: 8080,
                state: EndpointState::Ready,
            }],
        };
        w.apply_batch((0..200).map(|i| Update::AddService(svc(i, 2))))
            .unwrap();
        let ep = |t: &Tables, i: u32| {
            t.services
                .get(&svc(i, 0).frontend)
                .map(|e| Ipv4Addr::from(e.backends[0].ip))
        };
        let v1 = w.tables();
        w.apply(Update::AddService(svc(130, 3))).unwrap();
        let v2 = w.tables();
        assert_eq!(ep(&v1, 130), Some(Ipv4Addr::new(10, 244, 2, 2)));
        assert_eq!(ep(&v2, 130), Some(Ipv4Addr::new(10, 244, 2, 3)));
        for i in [0, 63, 64, 127, 128, 191, 192, 199] {
            assert_eq!(ep(&v1, i), ep(&v2, i), "{i}");
        }
        let (c1, c2) = (&v1.services.chunks(), &v2.services.chunks());
        let shared: Vec<bool> = c1
            .iter()
            .zip(c2.iter())
            .map(|(a, b)| Arc::ptr_eq(a, b))
            .collect();
        // Fixtures' own Services come first, so the 200 span indexes from a few on.
        let edited = v2.services.index_of(&svc(130, 0).frontend).unwrap() / 64;
        for (k, same) in shared.iter().enumerate() {
            assert_eq!(*same, k != edited, "chunk {k}");
        }
        // Removed in a later version: gone there, still in the older ones; its index reused.
        let idx = v2.services.index_of(&svc(5, 0).frontend).unwrap();
        w.apply(Update::RemoveService {
            frontend: svc(5, 0).frontend,
        })
        .unwrap();
        let v3 = w.tables();
        assert_eq!(ep(&v3, 5), None);
        assert_eq!(ep(&v2, 5), Some(Ipv4Addr::new(10, 244, 2, 2)));
        w.apply(Update::AddService(svc(300, 4))).unwrap();
        let v4 = w.tables();
        assert_eq!(v4.services.index_of(&svc(300, 0).frontend), Some(idx));
        assert_eq!(ep(&v4, 300), Some(Ipv4Addr::new(10, 244, 2, 4)));
        assert_eq!(ep(&v3, 300), None);
        assert_eq!(v4.services.len(), v1.services.len());
    }

    #[test]
    fn a_refused_batch_changes_nothing() {
        let mut w = fixtures::node_a_writer();
        let before = w.tables();
        let g = w.generation();
        let used = w.endpoints_in_use();
        let mut svc = fixtures::services()[0].clone();
        svc.endpoints.push(EndpointSpec {
            ip: POD_C_IP,
            port: 9,
            state: EndpointState::Ready,
        });
        let err = w
            .apply_batch([
                Update::AddService(svc),
                Update::RemovePod { ip: POD_A_IP },
                // Invalid: ClusterIP outside the Service CIDR.
                Update::AddService(ServiceSpec {
                    name: "bad".into(),
                    frontend: FrontendKey {
                        ip: Ipv4Addr::new(192, 168, 0, 1),
                        port: 80,
                        protocol: Protocol::Tcp,
                    },
                    node_port: None,
                    node_port_local: false,
                    endpoints: vec![],
                }),
            ])
            .unwrap_err();
        assert!(
            matches!(
                err,
                UpdateError::Service(ServiceError::OutsideServiceCidr(..))
            ),
            "{err}"
        );
        assert_eq!(w.generation(), g);
        assert_eq!(w.endpoints_in_use(), used, "no endpoint slot leaked");
        let after = w.tables();
        assert!(Arc::ptr_eq(&before, &after));
        assert_eq!(w.full_state(), fixtures::node_a_state_sorted());
        // A refused node change too.
        let mut n = fixtures::remote_node_b();
        n.underlay_ip = Ipv4Addr::new(10, 1, 0, 12);
        n.name = "overlapping".into();
        assert!(matches!(
            w.apply(Update::AddNode(n)),
            Err(UpdateError::Route(_))
        ));
        assert_eq!(w.generation(), g);
    }

    #[test]
    fn resync_snapshot_keeps_endpoint_identity() {
        let mut w = fixtures::node_a_writer();
        let slot = |w: &TableWriter| {
            let t = w.tables();
            let e = t.services.get(&DNS).unwrap();
            e.backends
                .iter()
                .map(|b| (b.ip, b.ep_slot, b.ep_gen))
                .collect::<Vec<_>>()
        };
        let before = slot(&w);
        let g = w.generation();
        w.apply(Update::Snapshot(fixtures::node_a_state())).unwrap();
        assert_eq!(w.generation(), g + 1);
        assert_eq!(
            slot(&w),
            before,
            "an unchanged endpoint keeps its slot and generation"
        );
        assert_eq!(w.endpoints_in_use(), 4);
        // Removing a Service releases its endpoints once published.
        w.apply(Update::RemoveService { frontend: DNS }).unwrap();
        assert_eq!(w.endpoints_in_use(), 2);
        let live = w.tables().services.liveness().clone();
        assert_ne!(
            live.generation(before[0].1),
            before[0].2,
            "removed endpoint's generation bumped"
        );
    }

    #[test]
    fn endpoint_updates_and_errors() {
        let mut w = fixtures::node_a_writer();
        w.apply(Update::SetEndpoint {
            frontend: DNS,
            endpoint: EndpointSpec {
                ip: POD_B_IP,
                port: 5353,
                state: EndpointState::Terminating,
            },
        })
        .unwrap();
        let t = w.tables();
        let e = t.services.get(&DNS).unwrap();
        assert_eq!(e.n_ready, 1);
        assert_eq!(e.backends[0].ip, POD_C_IP.to_bits());
        assert!(matches!(
            w.apply(Update::RemoveEndpoint {
                frontend: DNS,
                ip: POD_A_IP,
                port: 1
            }),
            Err(UpdateError::Service(ServiceError::EndpointNotFound(..)))
        ));
        assert!(matches!(
            w.apply(Update::RemovePod {
                ip: Ipv4Addr::new(10, 244, 1, 77)
            }),
            Err(UpdateError::Pod(PodError::NotFound(_)))
        ));
        // NodePort clash.
        let mut dup = fixtures::services()[1].clone();
        dup.frontend.port = 81;
        assert!(matches!(
            w.apply(Update::AddService(dup)),
            Err(UpdateError::Service(ServiceError::NodePortInUse(..)))
        ));
    }
}
