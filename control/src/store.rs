//! The daemon's persistent state, in an embedded database (redb: a pure-Rust, copy-on-write
//! B-tree file with ACID transactions and fsync on commit).
//!
//! Tables:
//! - `pods`: attachment key (`containerID/ifname`) → [`PodRecord`] (JSON);
//! - `ips`: pod IP (u32) → attachment key — the IPAM's source of truth;
//! - `ports`: fast-path pod port id → attachment key;
//! - `meta`: `generation` (bumped by every committed change), `next_ip` (the allocation cursor),
//!   `fastpath_epoch`, `cluster_file_digest` (FNV-1a of the cluster file's text as the daemon
//!   last wrote or read it: at start, a file still equal to it has no edit the database lacks);
//! - `cluster`: `settings` → the service CIDR and NodePort range (JSON);
//! - `cluster_nodes`: node name → [`NodeSpec`] (JSON);
//! - `cluster_services`: `namespace/name` → [`ServiceObject`] (JSON).
//!
//! The cluster state is stored object by object, so a change writes only what it changed (a
//! Service's endpoint change at 10,000 Services is one small row, not the whole state). A
//! database from before this layout holds the whole state as one JSON value under `cluster` /
//! `spec`; it is read as such and rewritten in the new layout when the daemon starts.
//!
//! An allocation is committed (IP, port and a `Pending` record in one transaction) *before* the
//! address is used anywhere, so a daemon killed at any point can never hand the same IP out
//! twice: after a restart the pending record still holds it until the runtime's DEL or GC
//! releases it.

use std::net::Ipv4Addr;
use std::path::Path;

use fastpath::cidr::Ipv4Cidr;
use fastpath::wire::MacAddr;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::cluster::{Applied, Cluster, ClusterSpec, NodeSpec, ServiceObject};
use crate::cniwire::AttachmentKey;

const PODS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("pods");
const IPS: TableDefinition<'_, u32, &str> = TableDefinition::new("ips");
const PORTS: TableDefinition<'_, u16, &str> = TableDefinition::new("ports");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const CLUSTER_NODES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("cluster_nodes");
const CLUSTER_SERVICES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("cluster_services");

/// The cluster state's settings, as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Settings {
    service_cidr: Ipv4Cidr,
    node_port_range: [u16; 2],
}
const CLUSTER: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("cluster");

/// Where an attachment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodState {
    /// IP and port allocated; the interface and tables may be half made.
    Pending,
    /// Attached: interface in the pod, pod table programmed.
    Ready,
    /// Being torn down: out of the desired state, IP and port still held until the fast path
    /// has let go of the port (so neither is handed out while still in use).
    Releasing,
}

/// One pod attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// Runtime's container ID and interface name.
    pub key: AttachmentKey,
    /// The CNI network name.
    pub network: String,
    /// The netns path given at ADD.
    pub netns: Option<String>,
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub pod_name: Option<String>,
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// Its interface's MAC.
    pub mac: MacAddr,
    /// Its fast-path pod port id.
    pub port: u16,
    /// Pending or ready.
    pub state: PodState,
    /// Unix seconds of the ADD.
    pub created: u64,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database.
    #[error("state database: {0}")]
    Db(String),
    /// No free address.
    #[error("no free IP address left in {0}")]
    IpExhausted(Ipv4Cidr),
    /// No free pod port.
    #[error("all {0} fast-path pod ports are in use")]
    PortsExhausted(u16),
    /// The attachment exists already.
    #[error("attachment {0} exists")]
    Exists(String),
    /// A record that does not parse (never written by this code).
    #[error("corrupt record {0}: {1}")]
    Corrupt(String, String),
}

fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into().to_string())
}

/// The pod's MAC: `0a:58` followed by its IPv4 address, the convention of Kubernetes' bridge
/// and Flannel plugins (stable across restarts, unique within the cluster).
pub fn pod_mac(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x0a, 0x58, o[0], o[1], o[2], o[3]])
}

/// The gateway address of a pod CIDR: its first host address.
pub fn gateway(cidr: &Ipv4Cidr) -> Ipv4Addr {
    cidr.nth(1).unwrap_or(cidr.network())
}

/// What an ADD asks to allocate.
#[derive(Debug, Clone)]
pub struct NewPod {
    /// The attachment.
    pub key: AttachmentKey,
    /// CNI network name.
    pub network: String,
    /// Netns path.
    pub netns: Option<String>,
    /// Pod namespace.
    pub pod_namespace: Option<String>,
    /// Pod name.
    pub pod_name: Option<String>,
}

/// The database.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(e.to_string()))?;
        }
        let database = Database::create(path).map_err(db)?;
        let w = database.begin_write().map_err(db)?;
        {
            w.open_table(PODS).map_err(db)?;
            w.open_table(IPS).map_err(db)?;
            w.open_table(PORTS).map_err(db)?;
            w.open_table(META).map_err(db)?;
            w.open_table(CLUSTER).map_err(db)?;
            w.open_table(CLUSTER_NODES).map_err(db)?;
            w.open_table(CLUSTER_SERVICES).map_err(db)?;
        }
        w.commit().map_err(db)?;
        Ok(Store { db: database })
    }

    /// The generation: bumped by every committed change.
    pub fn generation(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(META).map_err(db)?;
        Ok(t.get("generation").map_err(db)?.map_or(0, |v| v.value()))
    }

    /// Allocates an IP from `cidr` (round-robin after the last one handed out, as the
    /// reference host-local IPAM does, so a released address is not reused at once) and the
    /// lowest free pod port below `max_ports`, and records a `Pending` attachment — one
    /// transaction.
    pub fn allocate(
        &self,
        new: NewPod,
        cidr: &Ipv4Cidr,
        max_ports: u16,
        now: u64,
    ) -> Result<PodRecord, StoreError> {
        let key = new.key.store_key();
        let w = self.db.begin_write().map_err(db)?;
        let rec;
        {
            let mut pods = w.open_table(PODS).map_err(db)?;
            if pods.get(key.as_str()).map_err(db)?.is_some() {
                return Err(StoreError::Exists(key));
            }
            let mut ips = w.open_table(IPS).map_err(db)?;
            let mut ports = w.open_table(PORTS).map_err(db)?;
            let mut meta = w.open_table(META).map_err(db)?;
            // Host addresses: 2 .. size-2 (0 is the network, 1 the gateway, the last the
            // broadcast address).
            let size = cidr.size();
            let hosts = size.saturating_sub(3);
            if hosts == 0 {
                return Err(StoreError::IpExhausted(*cidr));
            }
            let cursor = meta.get("next_ip").map_err(db)?.map_or(0, |v| v.value()) % hosts;
            let mut found = None;
            for i in 0..hosts {
                let off = (cursor + i) % hosts;
                let Some(ip) = cidr.nth(2 + off) else {
                    continue;
                };
                if ips.get(ip.to_bits()).map_err(db)?.is_none() {
                    found = Some((ip, off));
                    break;
                }
            }
            let (ip, off) = found.ok_or(StoreError::IpExhausted(*cidr))?;
            let port = (0..max_ports)
                .find(|p| matches!(ports.get(*p), Ok(None)))
                .ok_or(StoreError::PortsExhausted(max_ports))?;
            rec = PodRecord {
                key: new.key,
                network: new.network,
                netns: new.netns,
                pod_namespace: new.pod_namespace,
                pod_name: new.pod_name,
                ip,
                mac: pod_mac(ip),
                port,
                state: PodState::Pending,
                created: now,
            };
            let body = serde_json::to_vec(&rec).map_err(|e| StoreError::Db(e.to_string()))?;
            pods.insert(key.as_str(), body.as_slice()).map_err(db)?;
            ips.insert(ip.to_bits(), key.as_str()).map_err(db)?;
            ports.insert(port, key.as_str()).map_err(db)?;
            meta.insert("next_ip", off + 1).map_err(db)?;
            bump(&mut meta)?;
        }
        w.commit().map_err(db)?;
        Ok(rec)
    }

    /// Marks an attachment ready.
    pub fn set_ready(&self, key: &AttachmentKey) -> Result<(), StoreError> {
        self.set_state(key, PodState::Ready)
    }

    /// Moves an attachment to `state`.
    pub fn set_state(&self, key: &AttachmentKey, state: PodState) -> Result<(), StoreError> {
        let k = key.store_key();
        let w = self.db.begin_write().map_err(db)?;
        {
            let mut pods = w.open_table(PODS).map_err(db)?;
            let mut rec = match pods.get(k.as_str()).map_err(db)? {
                Some(v) => parse(&k, v.value())?,
                None => return Err(StoreError::Db(format!("attachment {k} vanished"))),
            };
            rec.state = state;
            let body = serde_json::to_vec(&rec).map_err(|e| StoreError::Db(e.to_string()))?;
            pods.insert(k.as_str(), body.as_slice()).map_err(db)?;
            let mut meta = w.open_table(META).map_err(db)?;
            bump(&mut meta)?;
        }
        w.commit().map_err(db)
    }

    /// Releases an attachment's IP, port and record; returns what it was (None when unknown).
    pub fn release(&self, key: &AttachmentKey) -> Result<Option<PodRecord>, StoreError> {
        let k = key.store_key();
        let w = self.db.begin_write().map_err(db)?;
        let rec;
        {
            let mut pods = w.open_table(PODS).map_err(db)?;
            rec = match pods.remove(k.as_str()).map_err(db)? {
                Some(v) => parse(&k, v.value())?,
                None => return Ok(None),
            };
            let mut ips = w.open_table(IPS).map_err(db)?;
            if ips
                .get(rec.ip.to_bits())
                .map_err(db)?
                .map(|v| v.value() == k)
                == Some(true)
            {
                ips.remove(rec.ip.to_bits()).map_err(db)?;
            }
            let mut ports = w.open_table(PORTS).map_err(db)?;
            if ports.get(rec.port).map_err(db)?.map(|v| v.value() == k) == Some(true) {
                ports.remove(rec.port).map_err(db)?;
            }
            let mut meta = w.open_table(META).map_err(db)?;
            bump(&mut meta)?;
        }
        w.commit().map_err(db)?;
        Ok(Some(rec))
    }

    /// One attachment.
    pub fn pod(&self, key: &AttachmentKey) -> Result<Option<PodRecord>, StoreError> {
        let k = key.store_key();
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(PODS).map_err(db)?;
        let v = t.get(k.as_str()).map_err(db)?;
        v.map(|v| parse(&k, v.value())).transpose()
    }

    /// Every attachment, in key order.
    pub fn pods(&self) -> Result<Vec<PodRecord>, StoreError> {
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(PODS).map_err(db)?;
        let mut out = Vec::new();
        for e in t.iter().map_err(db)? {
            let (k, v) = e.map_err(db)?;
            out.push(parse(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Allocated IPs (for checks: every IP has exactly one record).
    pub fn allocated_ips(&self) -> Result<Vec<(Ipv4Addr, String)>, StoreError> {
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(IPS).map_err(db)?;
        let mut out = Vec::with_capacity(t.len().map_err(db)? as usize);
        for e in t.iter().map_err(db)? {
            let (k, v) = e.map_err(db)?;
            out.push((Ipv4Addr::from_bits(k.value()), v.value().to_string()));
        }
        Ok(out)
    }

    /// The epoch of the fast path last fully synced (tells a control restart, with the fast
    /// path's pod ports still in place, from a fast-path restart, which lost them).
    pub fn fastpath_epoch(&self) -> Result<Option<u64>, StoreError> {
        self.meta("fastpath_epoch")
    }

    /// Records the synced fast path's epoch.
    pub fn set_fastpath_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        self.set_meta("fastpath_epoch", epoch)
    }

    /// The digest of the cluster file's text as the daemon last wrote or read it.
    pub fn cluster_file_digest(&self) -> Result<Option<u64>, StoreError> {
        self.meta("cluster_file_digest")
    }

    /// Records the digest of the cluster file's text the daemon wrote or read.
    pub fn set_cluster_file_digest(&self, digest: u64) -> Result<(), StoreError> {
        self.set_meta("cluster_file_digest", digest)
    }

    /// One number of the META table.
    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(META).map_err(db)?;
        Ok(t.get(key).map_err(db)?.map(|v| v.value()))
    }

    /// Sets one number of the META table, in a transaction of its own.
    fn set_meta(&self, key: &str, value: u64) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(db)?;
        {
            let mut t = w.open_table(META).map_err(db)?;
            t.insert(key, value).map_err(db)?;
        }
        w.commit().map_err(db)
    }

    /// The stored cluster state.
    pub fn cluster(&self) -> Result<Option<ClusterSpec>, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("cluster {what}"), e.to_string())
        };
        let r = self.db.begin_read().map_err(db)?;
        let t = r.open_table(CLUSTER).map_err(db)?;
        let Some(settings) = t.get("settings").map_err(db)? else {
            // The layout before the state was stored object by object.
            let v = t.get("spec").map_err(db)?;
            return v
                .map(|v| serde_json::from_slice(v.value()).map_err(|e| corrupt("spec", e)))
                .transpose();
        };
        let settings: Settings =
            serde_json::from_slice(settings.value()).map_err(|e| corrupt("settings", e))?;
        let mut spec = ClusterSpec::empty(settings.service_cidr);
        spec.node_port_range = settings.node_port_range;
        for row in r
            .open_table(CLUSTER_NODES)
            .map_err(db)?
            .iter()
            .map_err(db)?
        {
            let (k, v) = row.map_err(db)?;
            let n: NodeSpec =
                serde_json::from_slice(v.value()).map_err(|e| corrupt(k.value(), e))?;
            spec.nodes.push(n);
        }
        for row in r
            .open_table(CLUSTER_SERVICES)
            .map_err(db)?
            .iter()
            .map_err(db)?
        {
            let (k, v) = row.map_err(db)?;
            let s: ServiceObject =
                serde_json::from_slice(v.value()).map_err(|e| corrupt(k.value(), e))?;
            spec.services.push(s);
        }
        Ok(Some(spec))
    }

    /// Stores the whole cluster state (at start: the file's, or the stored one rewritten in
    /// this layout).
    pub fn set_cluster(&self, c: &Cluster) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(db)?;
        {
            w.delete_table(CLUSTER_NODES).map_err(db)?;
            w.delete_table(CLUSTER_SERVICES).map_err(db)?;
            let mut t = w.open_table(CLUSTER).map_err(db)?;
            t.remove("spec").map_err(db)?;
            put_settings(&mut t, c)?;
            let mut nodes = w.open_table(CLUSTER_NODES).map_err(db)?;
            for n in c.nodes() {
                nodes
                    .insert(n.name.as_str(), json(n)?.as_slice())
                    .map_err(db)?;
            }
            let mut services = w.open_table(CLUSTER_SERVICES).map_err(db)?;
            for s in c.services() {
                services
                    .insert(s.id().as_str(), json(s)?.as_slice())
                    .map_err(db)?;
            }
            let mut meta = w.open_table(META).map_err(db)?;
            bump(&mut meta)?;
        }
        w.commit().map_err(db)
    }

    /// Stores change `a`, whose result is `c`: only the objects it changed are written.
    pub fn write_change(&self, c: &Cluster, a: &Applied) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(db)?;
        {
            if a.settings_changed() {
                let mut t = w.open_table(CLUSTER).map_err(db)?;
                put_settings(&mut t, c)?;
            }
            let mut nodes = w.open_table(CLUSTER_NODES).map_err(db)?;
            for (name, _) in a.nodes() {
                match c.node(name) {
                    Some(n) => nodes.insert(name, json(n)?.as_slice()).map(drop),
                    None => nodes.remove(name).map(drop),
                }
                .map_err(db)?;
            }
            let mut services = w.open_table(CLUSTER_SERVICES).map_err(db)?;
            for ((ns, name), _) in a.services() {
                let key = format!("{ns}/{name}");
                match c.service(ns, name) {
                    Some(s) => services.insert(key.as_str(), json(s)?.as_slice()).map(drop),
                    None => services.remove(key.as_str()).map(drop),
                }
                .map_err(db)?;
            }
            let mut meta = w.open_table(META).map_err(db)?;
            bump(&mut meta)?;
        }
        w.commit().map_err(db)
    }
}

/// FNV-1a, 64 bits: a digest that is the same in every build (std's hasher is not).
pub fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Db(e.to_string()))
}

fn put_settings(t: &mut redb::Table<'_, &str, &[u8]>, c: &Cluster) -> Result<(), StoreError> {
    let s = Settings {
        service_cidr: c.service_cidr(),
        node_port_range: c.node_port_range(),
    };
    t.insert("settings", json(&s)?.as_slice()).map_err(db)?;
    Ok(())
}

fn bump(meta: &mut redb::Table<'_, &str, u64>) -> Result<(), StoreError> {
    let g = meta.get("generation").map_err(db)?.map_or(0, |v| v.value());
    meta.insert("generation", g + 1).map_err(db)?;
    Ok(())
}

fn parse(key: &str, body: &[u8]) -> Result<PodRecord, StoreError> {
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt(key.to_string(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("podlane-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.join("state.redb")
    }

    fn new(id: &str) -> NewPod {
        NewPod {
            key: AttachmentKey {
                container_id: id.into(),
                ifname: "eth0".into(),
            },
            network: "podlane".into(),
            netns: None,
            pod_namespace: None,
            pod_name: None,
        }
    }

    #[test]
    fn allocation_is_persistent_round_robin_and_bounded() {
        let path = tmp("alloc");
        let cidr: Ipv4Cidr = "10.244.1.0/29".parse().unwrap(); // hosts .2 .. .6
        {
            let s = Store::open(&path).unwrap();
            let a = s.allocate(new("a"), &cidr, 8, 0).unwrap();
            let b = s.allocate(new("b"), &cidr, 8, 0).unwrap();
            assert_eq!(a.ip, Ipv4Addr::new(10, 244, 1, 2));
            assert_eq!(b.ip, Ipv4Addr::new(10, 244, 1, 3));
            assert_eq!((a.port, b.port), (0, 1));
            assert_eq!(a.mac, MacAddr([0x0a, 0x58, 10, 244, 1, 2]));
            assert!(matches!(
                s.allocate(new("a"), &cidr, 8, 0),
                Err(StoreError::Exists(_))
            ));
            s.release(&a.key).unwrap().unwrap();
            assert!(s.release(&a.key).unwrap().is_none());
        }
        // Reopened: the cursor continues after .3; .2 is free again but not reused first.
        let s = Store::open(&path).unwrap();
        let c = s.allocate(new("c"), &cidr, 8, 0).unwrap();
        assert_eq!(c.ip, Ipv4Addr::new(10, 244, 1, 4));
        assert_eq!(c.port, 0, "the lowest free port");
        let d = s.allocate(new("d"), &cidr, 8, 0).unwrap();
        let e = s.allocate(new("e"), &cidr, 8, 0).unwrap();
        assert_eq!((d.ip.octets()[3], e.ip.octets()[3]), (5, 6));
        let f = s.allocate(new("f"), &cidr, 8, 0).unwrap();
        assert_eq!(
            f.ip,
            Ipv4Addr::new(10, 244, 1, 2),
            "wraps to the freed address"
        );
        assert!(matches!(
            s.allocate(new("g"), &cidr, 8, 0),
            Err(StoreError::IpExhausted(_))
        ));
        assert_eq!(s.allocated_ips().unwrap().len(), 5);
        assert_eq!(s.pods().unwrap().len(), 5);
        s.set_ready(&f.key).unwrap();
        assert_eq!(s.pod(&f.key).unwrap().unwrap().state, PodState::Ready);
        assert_eq!(s.generation().unwrap(), 8, "one per committed change");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn ports_run_out_cleanly() {
        let path = tmp("ports");
        let s = Store::open(&path).unwrap();
        let cidr: Ipv4Cidr = "10.244.1.0/24".parse().unwrap();
        s.allocate(new("a"), &cidr, 1, 0).unwrap();
        assert!(matches!(
            s.allocate(new("b"), &cidr, 1, 0),
            Err(StoreError::PortsExhausted(1))
        ));
        // The refused allocation left nothing behind.
        assert_eq!(s.allocated_ips().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
