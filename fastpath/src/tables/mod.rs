//! The fast path's tables: local pods, remote node routes, Services, conntrack.
//!
//! Pods, routes and Services are immutable once built: the control side builds a new version
//! off the data cores and publishes it ([`crate::rcu`]). Conntrack is the one table the data
//! cores write; each worker owns its own.

use core::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::cidr::Ipv4Cidr;
use crate::wire::MacAddr;

pub mod conntrack;
pub mod maglev;
pub mod pods;
pub mod routes;
pub mod services;

/// What to do with a packet from a pod for an address the node does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownDestination {
    /// Hand it to the node's kernel through the host-path port (it may masquerade it).
    #[default]
    Host,
    /// Drop it, counted as `no_route`.
    Drop,
}

/// This node's identity and data-path settings. Fixed for the life of a fast-path process.
/// Read from a file ([`NodeConfigFile`]), the settings every cluster shares may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "NodeConfigFile")]
pub struct NodeConfig {
    /// The node's name (for humans and logs).
    pub name: String,
    /// The node's underlay (host) IP: VXLAN source and destination, NodePort address.
    pub underlay_ip: Ipv4Addr,
    /// The uplink's MAC: source of outer frames, answer to ARP for the underlay IP.
    pub underlay_mac: MacAddr,
    /// This node's VTEP MAC: the inner source MAC of frames it encapsulates, and the only inner
    /// destination MAC it accepts (as a Linux `flannel.1` device does).
    pub vtep_mac: MacAddr,
    /// The pod CIDR of this node (a /16 to /30).
    pub pod_cidr: Ipv4Cidr,
    /// The MAC the pods see for their gateway (answer to every ARP from a pod).
    pub gateway_mac: MacAddr,
    /// The VXLAN network identifier (24 bits). Flannel uses 1.
    pub vni: u32,
    /// The cluster's Service CIDR (ClusterIPs live here).
    pub service_cidr: Ipv4Cidr,
    /// MTU of the underlay (IPv4 total length the uplink carries); pods get this minus 50.
    pub underlay_mtu: u16,
    /// Lowest NodePort.
    pub nodeport_min: u16,
    /// Highest NodePort.
    pub nodeport_max: u16,
    /// Pod traffic for unknown destinations.
    pub unknown_destination: UnknownDestination,
    /// Destination MAC for frames handed to the host path (the kernel side of the host-path
    /// port). Usually the underlay MAC, which the host-path TAP takes over.
    pub host_mac: MacAddr,
}

/// [`NodeConfig`] as a file gives it: the node's identity (name, addresses, MACs, pod CIDR)
/// and the Service CIDR are required; the rest defaults to what a Kubernetes cluster with
/// Flannel's VXLAN backend uses unless told otherwise — VNI 1 (Flannel's), an underlay MTU of
/// 1500, NodePorts 30000–32767 (the API server's default `--service-node-port-range`),
/// unknown destinations to the host, and the host path's MAC the underlay MAC (the host-path
/// TAP takes the node's address and MAC over). The Service CIDR has no default: kubeadm's
/// 10.96.0.0/12 is only one choice, and a wrong one would silently hand every ClusterIP to the
/// host path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfigFile {
    name: String,
    underlay_ip: Ipv4Addr,
    underlay_mac: MacAddr,
    vtep_mac: MacAddr,
    pod_cidr: Ipv4Cidr,
    gateway_mac: MacAddr,
    #[serde(default = "NodeConfigFile::vni")]
    vni: u32,
    service_cidr: Ipv4Cidr,
    #[serde(default = "NodeConfigFile::underlay_mtu")]
    underlay_mtu: u16,
    #[serde(default = "NodeConfigFile::nodeport_min")]
    nodeport_min: u16,
    #[serde(default = "NodeConfigFile::nodeport_max")]
    nodeport_max: u16,
    #[serde(default)]
    unknown_destination: UnknownDestination,
    #[serde(default)]
    host_mac: Option<MacAddr>,
}

/// The defaults `NodeConfigFile` names (serde calls a function for each).
impl NodeConfigFile {
    /// Flannel's VNI.
    fn vni() -> u32 {
        1
    }
    /// Ethernet's MTU.
    fn underlay_mtu() -> u16 {
        1500
    }
    /// The API server's default NodePort range, `--service-node-port-range=30000-32767`.
    fn nodeport_min() -> u16 {
        30000
    }
    fn nodeport_max() -> u16 {
        32767
    }
}

impl From<NodeConfigFile> for NodeConfig {
    fn from(f: NodeConfigFile) -> NodeConfig {
        NodeConfig {
            name: f.name,
            underlay_ip: f.underlay_ip,
            underlay_mac: f.underlay_mac,
            vtep_mac: f.vtep_mac,
            pod_cidr: f.pod_cidr,
            gateway_mac: f.gateway_mac,
            vni: f.vni,
            service_cidr: f.service_cidr,
            underlay_mtu: f.underlay_mtu,
            nodeport_min: f.nodeport_min,
            nodeport_max: f.nodeport_max,
            unknown_destination: f.unknown_destination,
            host_mac: f.host_mac.unwrap_or(f.underlay_mac),
        }
    }
}

/// Why a configuration or update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Pod CIDR too large or too small for a node.
    #[error("pod CIDR {0} must be a /16 to /30 (one node's share of the cluster CIDR)")]
    PodCidrSize(Ipv4Cidr),
    /// VNI over 24 bits.
    #[error("VNI {0} does not fit in 24 bits (max 16777215)")]
    Vni(u32),
    /// MTU too small to carry a 576-byte packet plus the VXLAN overhead.
    #[error("underlay MTU {0} is too small: at least 626 (576 + 50 bytes of VXLAN) is needed")]
    Mtu(u16),
    /// NodePort range empty.
    #[error("NodePort range {0}-{1} is empty")]
    NodePortRange(u16, u16),
    /// Pod and Service CIDRs overlap.
    #[error("pod CIDR {0} overlaps the Service CIDR {1}")]
    Overlap(Ipv4Cidr, Ipv4Cidr),
}

impl NodeConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(16..=30).contains(&self.pod_cidr.prefix_len()) {
            return Err(ConfigError::PodCidrSize(self.pod_cidr));
        }
        if self.vni > crate::wire::vxlan::VNI_MAX {
            return Err(ConfigError::Vni(self.vni));
        }
        if self.underlay_mtu < 626 {
            return Err(ConfigError::Mtu(self.underlay_mtu));
        }
        if self.nodeport_min > self.nodeport_max {
            return Err(ConfigError::NodePortRange(
                self.nodeport_min,
                self.nodeport_max,
            ));
        }
        if self.pod_cidr.overlaps(&self.service_cidr) {
            return Err(ConfigError::Overlap(self.pod_cidr, self.service_cidr));
        }
        Ok(())
    }

    /// The pods' default gateway: the first address of the pod CIDR (10.244.N.1).
    pub fn gateway_ip(&self) -> Ipv4Addr {
        self.pod_cidr.nth(1).unwrap_or(self.pod_cidr.network())
    }

    /// The node's VTEP address: the pod CIDR's network address (10.244.N.0), the address
    /// Flannel gives a node's `flannel.1` device. NodePort flows to a backend on another node
    /// are SNATed to it (kube-proxy's MASQUERADE picks the same address on a Flannel node), so
    /// every node — podlane or Flannel-wired Linux — routes the replies back through the
    /// tunnel by this node's pod CIDR. The node IP would not do: a Linux node answers it
    /// straight over the underlay, outside the tunnel, with a pod address as the source.
    pub fn vtep_ip(&self) -> Ipv4Addr {
        self.pod_cidr.network()
    }

    /// The MTU pods must use: the underlay's minus the VXLAN overhead (1450 over 1500).
    pub fn pod_mtu(&self) -> u16 {
        self.underlay_mtu - 50
    }

    /// The lab's node A (brief, "Addresses used in tests and the lab").
    pub fn example_node_a() -> NodeConfig {
        NodeConfig {
            name: "node-a".into(),
            underlay_ip: Ipv4Addr::new(10, 1, 0, 10),
            underlay_mac: MacAddr([0x02, 0x00, 0x0a, 0x01, 0x00, 0x0a]),
            vtep_mac: MacAddr([0x02, 0x76, 0x74, 0x65, 0x70, 0x0a]),
            pod_cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 244, 1, 0), 24).expect("valid"),
            gateway_mac: MacAddr([0x02, 0x67, 0x77, 0x00, 0x01, 0x01]),
            vni: 1,
            service_cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 12).expect("valid"),
            underlay_mtu: 1500,
            nodeport_min: 30000,
            nodeport_max: 32767,
            unknown_destination: UnknownDestination::Host,
            host_mac: MacAddr([0x02, 0x00, 0x0a, 0x01, 0x00, 0x0a]),
        }
    }

    /// The lab's node B.
    pub fn example_node_b() -> NodeConfig {
        NodeConfig {
            name: "node-b".into(),
            underlay_ip: Ipv4Addr::new(10, 1, 0, 11),
            underlay_mac: MacAddr([0x02, 0x00, 0x0a, 0x01, 0x00, 0x0b]),
            vtep_mac: MacAddr([0x02, 0x76, 0x74, 0x65, 0x70, 0x0b]),
            pod_cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 244, 2, 0), 24).expect("valid"),
            gateway_mac: MacAddr([0x02, 0x67, 0x77, 0x00, 0x02, 0x01]),
            host_mac: MacAddr([0x02, 0x00, 0x0a, 0x01, 0x00, 0x0b]),
            ..NodeConfig::example_node_a()
        }
    }
}

/// Fixed capacities, set at start. Tables never grow past them; a full table is an error the
/// control side sees and a counter, never a silent drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacities {
    /// Pod ports (port ids 0..max_pod_ports).
    pub max_pod_ports: u16,
    /// Remote nodes.
    pub max_nodes: u32,
    /// Service frontends (ClusterIP:port/proto).
    pub max_services: u32,
    /// Endpoints over all Services.
    pub max_endpoints: u32,
    /// Conntrack entries per worker.
    pub conntrack_entries: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            max_pod_ports: 1024,
            max_nodes: 8192,
            max_services: 16384,
            max_endpoints: 131072,
            conntrack_entries: 65536,
        }
    }
}
