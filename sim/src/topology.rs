//! Addressing: every address in the simulated cluster is a pure function of a node index, a pod
//! incarnation (uid) or a Service index, so any part of the simulator (and a reader of the
//! report) can recompute it. These addresses exist only in memory.
//!
//! | what | scheme | node 0, node 1 |
//! |---|---|---|
//! | node underlay IP | `10.1.(i / 200).(10 + i % 200)` inside 10.1.0.0/16 | 10.1.0.10, 10.1.0.11 (the brief's lab) |
//! | underlay MAC | `02:00` + the underlay IP's four bytes | 02:00:0a:01:00:0a |
//! | VTEP MAC | `02:76` + the node index (32 bits) | 02:76:00:00:00:00 |
//! | gateway MAC | `02:67` + the node index | 02:67:00:00:00:00 |
//! | pod CIDR | `10.(128 + i / 256).(i % 256).0/24` — /24s out of 10.128.0.0/9 | 10.128.0.0/24, 10.128.1.0/24 |
//! | gateway | `.1` of the pod CIDR | 10.128.0.1 |
//! | pod IPs | `.2` to `.254` of the pod CIDR (253 per node) | |
//! | pod MAC | `0a:58` + the pod's uid (a new MAC per incarnation, even when an IP is reused) | |
//! | Service CIDR | 10.96.0.0/12 (never overlaps 10.128.0.0/9 nor 10.1.0.0/16) | |
//! | ClusterIP of Service j | `10.96.0.0 + 10 + j` | 10.96.0.10 (kube-dns's place) |
//! | Service j's port | even j: TCP 80 → target 8080; odd j: UDP 53 → target 5353 | |
//! | VNI | 1 (Flannel's) | |
//! | NodePort of Service j | `30000 + j` for the first 2,768 Services (the range 30000–32767) | |
//! | externalTrafficPolicy of Service j | `Local` when j % 4 = 3, else `Cluster` | |
//! | external client k (on the underlay, outside the cluster) | `10.1.250.(10 + k)`, MAC `02:00` + its four bytes | 10.1.250.10, 10.1.250.11 |
//!
//! Limits: 32,768 nodes (the /9 holds 32,768 /24s; their underlay addresses end at
//! 10.1.163.x, below the external clients'), up to 1,048,000 Services, 200 external clients.

use core::net::Ipv4Addr;

use fastpath::cidr::Ipv4Cidr;
use fastpath::tables::routes::RemoteNodeSpec;
use fastpath::tables::services::{FrontendKey, Protocol};
use fastpath::tables::{NodeConfig, UnknownDestination};
use fastpath::wire::MacAddr;

/// Most nodes the addressing scheme supports.
pub const MAX_NODES: u32 = 32_768;
/// Pod addresses per node (.2 to .254 of a /24).
pub const POD_IPS_PER_NODE: u32 = 253;
/// Most Services the Service CIDR holds in this scheme.
pub const MAX_SERVICES: u32 = (1 << 20) - 16;
/// The VXLAN network identifier (Flannel's).
pub const VNI: u32 = 1;
/// The port every pod's echo server listens on for pod-to-pod probes (UDP and TCP).
pub const ECHO_PORT: u16 = 7;

/// Node `i`'s underlay IP.
pub fn underlay_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, (i / 200) as u8, (10 + i % 200) as u8)
}

/// The node whose underlay IP is `ip` (host order), if the scheme produced it.
pub fn node_of_underlay(ip: u32) -> Option<u32> {
    let [a, b, c, d] = ip.to_be_bytes();
    if a != 10 || b != 1 || !(10..210).contains(&d) {
        return None;
    }
    let i = u32::from(c) * 200 + u32::from(d) - 10;
    (i < MAX_NODES).then_some(i)
}

/// Most external clients the addressing scheme supports.
pub const MAX_EXTERNAL: u32 = 200;

/// External client `k`'s address: on the underlay, no node's.
pub fn external_ip(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 250, (10 + k) as u8)
}

/// The external client whose address is `ip` (host order), if the scheme produced it.
pub fn external_of(ip: u32) -> Option<u32> {
    let [a, b, c, d] = ip.to_be_bytes();
    (a == 10 && b == 1 && c == 250 && (10..10 + MAX_EXTERNAL).contains(&u32::from(d)))
        .then(|| u32::from(d) - 10)
}

/// External client `k`'s MAC.
pub fn external_mac(k: u32) -> MacAddr {
    let o = external_ip(k).octets();
    MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]])
}

/// The NodePort of Service `j`: one per Service while the range lasts (none beyond).
pub fn node_port(j: u32) -> Option<u16> {
    let span = u32::from(NODEPORT_MAX - NODEPORT_MIN) + 1;
    (j < span).then(|| NODEPORT_MIN + j as u16)
}

/// True if Service `j`'s NodePort has `externalTrafficPolicy: Local` (its flows go to a
/// backend on the node reached only, the client's address kept; none there, dropped).
pub fn external_local(j: u32) -> bool {
    j % 4 == 3
}

/// The NodePort range every node serves.
pub const NODEPORT_MIN: u16 = 30000;
/// Its last port.
pub const NODEPORT_MAX: u16 = 32767;

/// Node `i`'s underlay (uplink) MAC.
pub fn underlay_mac(i: u32) -> MacAddr {
    let o = underlay_ip(i).octets();
    MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]])
}

/// Node `i`'s VTEP MAC.
pub fn vtep_mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([0x02, 0x76, b[0], b[1], b[2], b[3]])
}

/// Node `i`'s pod-gateway MAC.
pub fn gateway_mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([0x02, 0x67, b[0], b[1], b[2], b[3]])
}

/// Node `i`'s pod CIDR.
pub fn pod_cidr(i: u32) -> Ipv4Cidr {
    let net = Ipv4Addr::new(10, (128 + i / 256) as u8, (i % 256) as u8, 0);
    Ipv4Cidr::new(net, 24).expect("a /24 network address")
}

/// Node `i`'s pod gateway address.
pub fn gateway_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(pod_cidr(i).network().to_bits() + 1)
}

/// The pod address with host number `host` (2..=254) on node `i`.
pub fn pod_ip(i: u32, host: u32) -> Ipv4Addr {
    Ipv4Addr::from(pod_cidr(i).network().to_bits() + host)
}

/// `(node, host number)` of a pod address (host order), if inside the pod range.
pub fn locate_pod_ip(ip: u32) -> Option<(u32, u32)> {
    if ip >> 23 != 0x0a80_0000 >> 23 {
        return None;
    }
    let node = (ip >> 8) & 0x7fff;
    let host = ip & 0xff;
    (2..=254).contains(&host).then_some((node, host))
}

/// The MAC of pod incarnation `uid`.
pub fn pod_mac(uid: u32) -> MacAddr {
    let b = uid.to_be_bytes();
    MacAddr([0x0a, 0x58, b[0], b[1], b[2], b[3]])
}

/// The cluster's Service CIDR.
pub fn service_cidr() -> Ipv4Cidr {
    Ipv4Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 12).expect("valid")
}

/// Service `j`'s ClusterIP.
pub fn cluster_ip(j: u32) -> Ipv4Addr {
    Ipv4Addr::from(service_cidr().network().to_bits() + 10 + j)
}

/// Service `j`'s frontend.
pub fn frontend(j: u32) -> FrontendKey {
    let (port, protocol) = if j & 1 == 0 {
        (80, Protocol::Tcp)
    } else {
        (53, Protocol::Udp)
    };
    FrontendKey {
        ip: cluster_ip(j),
        port,
        protocol,
    }
}

/// Service `j`'s target port (the port its endpoints listen on).
pub fn target_port(j: u32) -> u16 {
    if j & 1 == 0 {
        8080
    } else {
        5353
    }
}

/// Service `j`'s name.
pub fn service_name(j: u32) -> String {
    let f = frontend(j);
    let p = match f.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    format!("default/svc-{j}:{p}-{}", f.port)
}

/// Node `i`'s name.
pub fn node_name(i: u32) -> String {
    format!("node-{i}")
}

/// Node `i`'s fast-path configuration. Unknown destinations are dropped (`no_route`): the
/// simulator has no host kernel to hand them to.
pub fn node_config(i: u32) -> NodeConfig {
    NodeConfig {
        name: node_name(i),
        underlay_ip: underlay_ip(i),
        underlay_mac: underlay_mac(i),
        vtep_mac: vtep_mac(i),
        pod_cidr: pod_cidr(i),
        gateway_mac: gateway_mac(i),
        vni: VNI,
        service_cidr: service_cidr(),
        underlay_mtu: 1500,
        nodeport_min: NODEPORT_MIN,
        nodeport_max: NODEPORT_MAX,
        unknown_destination: UnknownDestination::Drop,
        host_mac: underlay_mac(i),
    }
}

/// Node `i` as the other nodes' route tables describe it.
pub fn remote_spec(i: u32) -> RemoteNodeSpec {
    RemoteNodeSpec {
        name: node_name(i),
        underlay_ip: underlay_ip(i),
        underlay_mac: underlay_mac(i),
        vtep_mac: vtep_mac(i),
        pod_cidr: pod_cidr(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_addresses_and_round_trips() {
        assert_eq!(underlay_ip(0), Ipv4Addr::new(10, 1, 0, 10));
        assert_eq!(underlay_ip(1), Ipv4Addr::new(10, 1, 0, 11));
        assert_eq!(underlay_ip(999), Ipv4Addr::new(10, 1, 4, 209));
        for i in [0, 1, 199, 200, 999, MAX_NODES - 1] {
            assert_eq!(node_of_underlay(underlay_ip(i).to_bits()), Some(i));
            let ip = pod_ip(i, 17);
            assert_eq!(locate_pod_ip(ip.to_bits()), Some((i, 17)));
            assert!(pod_cidr(i).contains(ip));
            assert!(!pod_cidr(i).overlaps(&service_cidr()));
            node_config(i).validate().unwrap();
        }
        assert_eq!(node_of_underlay(Ipv4Addr::new(10, 1, 0, 9).to_bits()), None);
        assert_eq!(locate_pod_ip(gateway_ip(3).to_bits()), None);
        assert_eq!(locate_pod_ip(cluster_ip(0).to_bits()), None);
        assert_eq!(cluster_ip(0), Ipv4Addr::new(10, 96, 0, 10));
        assert!(service_cidr().contains(cluster_ip(MAX_SERVICES - 1)));
        assert!(!pod_mac(7).is_multicast());
        assert_ne!(pod_cidr(255), pod_cidr(256));
        for k in [0, 1, MAX_EXTERNAL - 1] {
            assert_eq!(external_of(external_ip(k).to_bits()), Some(k));
            assert_eq!(node_of_underlay(external_ip(k).to_bits()), None);
        }
        assert_eq!(external_of(underlay_ip(MAX_NODES - 1).to_bits()), None);
        assert_eq!(node_port(0), Some(30000));
        assert_eq!(node_port(2767), Some(32767));
        assert_eq!(node_port(2768), None);
    }
}
