//! The brief's lab addresses as ready-made tables, for tests, the simulator and the bench:
//! node A (10.1.0.10, pods 10.244.1.0/24) with pod A (10.244.1.2, port 0) and pod B
//! (10.244.1.3, port 1); node B (10.1.0.11, 10.244.2.0/24) with pod C (10.244.2.2); kube-dns
//! 10.96.0.10:53/udp and a TCP Service 10.96.0.20:80 (NodePort 30080) backed by pod B and
//! pod C.

use core::net::Ipv4Addr;

use crate::tables::pods::PodSpec;
use crate::tables::routes::RemoteNodeSpec;
use crate::tables::services::{EndpointSpec, EndpointState, FrontendKey, Protocol, ServiceSpec};
use crate::tables::{Capacities, NodeConfig};
use crate::update::{FullState, TableWriter, Update};
use crate::wire::MacAddr;

/// Pod A's IP.
pub const POD_A_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
/// Pod A's MAC.
pub const POD_A_MAC: MacAddr = MacAddr([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02]);
/// Pod A's port on node A.
pub const POD_A_PORT: u16 = 0;
/// Pod B's IP.
pub const POD_B_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 3);
/// Pod B's MAC.
pub const POD_B_MAC: MacAddr = MacAddr([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x03]);
/// Pod B's port on node A.
pub const POD_B_PORT: u16 = 1;
/// Pod C's IP (on node B).
pub const POD_C_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 2);
/// Pod C's MAC.
pub const POD_C_MAC: MacAddr = MacAddr([0x0a, 0x58, 0x0a, 0xf4, 0x02, 0x02]);
/// Pod C's port on node B.
pub const POD_C_PORT: u16 = 0;
/// kube-dns's ClusterIP.
pub const DNS_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The web Service's ClusterIP.
pub const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
/// The web Service's NodePort.
pub const WEB_NODEPORT: u16 = 30080;
/// A client outside the cluster, on the underlay.
pub const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 99);
/// Its MAC.
pub const EXTERNAL_MAC: MacAddr = MacAddr([0x02, 0x00, 0x0a, 0x01, 0x00, 0x63]);

/// kube-dns's frontend.
pub const DNS: FrontendKey = FrontendKey {
    ip: DNS_VIP,
    port: 53,
    protocol: Protocol::Udp,
};
/// The web Service's frontend.
pub const WEB: FrontendKey = FrontendKey {
    ip: WEB_VIP,
    port: 80,
    protocol: Protocol::Tcp,
};

/// Node B as node A sees it.
pub fn remote_node_b() -> RemoteNodeSpec {
    let b = NodeConfig::example_node_b();
    RemoteNodeSpec {
        name: b.name,
        underlay_ip: b.underlay_ip,
        underlay_mac: b.underlay_mac,
        vtep_mac: b.vtep_mac,
        pod_cidr: b.pod_cidr,
    }
}

/// Node A as node B sees it.
pub fn remote_node_a() -> RemoteNodeSpec {
    let a = NodeConfig::example_node_a();
    RemoteNodeSpec {
        name: a.name,
        underlay_ip: a.underlay_ip,
        underlay_mac: a.underlay_mac,
        vtep_mac: a.vtep_mac,
        pod_cidr: a.pod_cidr,
    }
}

/// The Services, backed by pod B (node A) and pod C (node B).
pub fn services() -> Vec<ServiceSpec> {
    let eps = |port| {
        vec![
            EndpointSpec {
                ip: POD_B_IP,
                port,
                state: EndpointState::Ready,
            },
            EndpointSpec {
                ip: POD_C_IP,
                port,
                state: EndpointState::Ready,
            },
        ]
    };
    vec![
        ServiceSpec {
            name: "kube-system/kube-dns:dns".into(),
            frontend: DNS,
            node_port: None,
            node_port_local: false,
            endpoints: eps(5353),
        },
        ServiceSpec {
            name: "default/web:http".into(),
            frontend: WEB,
            node_port: Some(WEB_NODEPORT),
            node_port_local: false,
            endpoints: eps(8080),
        },
    ]
}

/// Node A's whole state.
pub fn node_a_state() -> FullState {
    FullState {
        pods: vec![
            PodSpec {
                ip: POD_A_IP,
                mac: POD_A_MAC,
                port: POD_A_PORT,
            },
            PodSpec {
                ip: POD_B_IP,
                mac: POD_B_MAC,
                port: POD_B_PORT,
            },
        ],
        nodes: vec![remote_node_b()],
        services: services(),
    }
}

/// Node B's whole state.
pub fn node_b_state() -> FullState {
    FullState {
        pods: vec![PodSpec {
            ip: POD_C_IP,
            mac: POD_C_MAC,
            port: POD_C_PORT,
        }],
        nodes: vec![remote_node_a()],
        services: services(),
    }
}

/// Node A's tables, programmed.
pub fn node_a_writer() -> TableWriter {
    let mut w = TableWriter::new(NodeConfig::example_node_a(), Capacities::default())
        .expect("example config is valid");
    w.apply(Update::Snapshot(node_a_state()))
        .expect("example state is valid");
    w
}

/// Node B's tables, programmed.
pub fn node_b_writer() -> TableWriter {
    let mut w = TableWriter::new(NodeConfig::example_node_b(), Capacities::default())
        .expect("example config is valid");
    w.apply(Update::Snapshot(node_b_state()))
        .expect("example state is valid");
    w
}

/// [`node_a_state`] in the order [`crate::update::TableWriter::full_state`] reports it (pods
/// and nodes by address, Services by table slot).
pub fn node_a_state_sorted() -> FullState {
    let mut s = node_a_state();
    s.pods.sort_by_key(|p| p.ip);
    s.nodes.sort_by_key(|n| n.underlay_ip);
    s
}
