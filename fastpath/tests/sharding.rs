//! Several workers on one node (`pipeline/shard.rs`): each NAT flow has one owner, packets of
//! its other direction that another worker receives are handed to the owner before any NAT,
//! and the frames that leave are byte for byte those of a single worker. Plain traffic is never
//! handed over.

mod common;

use common::*;
use core::net::Ipv4Addr;
use fastpath::counters::{Disposition, Event};
use fastpath::fixtures::*;
use fastpath::pipeline::{Ingress, Shard};
use fastpath::tables::services::{EndpointSpec, EndpointState, FrontendKey, ServiceSpec};
use fastpath::tables::NodeConfig;
use fastpath::update::Update;
use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::tcp::flags as tf;

const GW_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

fn only_backend(w: &mut fastpath::update::TableWriter, frontend: FrontendKey, ip: Ipv4Addr) {
    let mut s: ServiceSpec = services()
        .into_iter()
        .find(|s| s.frontend == frontend)
        .unwrap();
    let port = s.endpoints[0].port;
    s.endpoints = vec![EndpointSpec {
        ip,
        port,
        state: EndpointState::Ready,
    }];
    w.apply(Update::AddService(s)).unwrap();
}

fn outer_b_to_a() -> Addrs {
    let (a, b) = (NodeConfig::example_node_a(), NodeConfig::example_node_b());
    Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip)
}

/// Node B's VXLAN frame carrying `inner` (built as node B's fast path would) to node A.
fn from_node_b(inner: &[u8], sport: u16) -> Vec<u8> {
    frame::vxlan_frame(&outer_b_to_a(), sport, 1, inner, false)
}

#[test]
fn pod_ports_belong_to_workers_round_robin() {
    let s = Shard::new(2, 0);
    assert_eq!(s.of_pod_port(POD_A_PORT), 0);
    assert_eq!(s.of_pod_port(POD_B_PORT), 1);
}

#[test]
fn clusterip_reply_from_a_backend_on_another_worker_is_reverse_natted_by_the_owner() {
    let mut n = Workers::a(2);
    only_backend(&mut n.w, DNS, POD_B_IP);
    // Pod A's port is worker 0's: the flow is worker 0's.
    let q = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"query");
    let o = n.run(0, Ingress::Pod(POD_A_PORT), &q);
    assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_B_PORT), None));
    assert_eq!(n.ct_lens(), [1, 0]);
    // Pod B's port is worker 1's: its answer goes to worker 0 before any NAT.
    let r = frame::udp_frame(&pod_b_to(POD_A_IP), 5353, 41000, b"answer");
    let o = n.run(1, Ingress::Pod(POD_B_PORT), &r);
    assert_eq!(o.handed, Some((0, Ingress::Pod(POD_B_PORT))));
    assert_eq!(o.d, Disposition::ToPod(POD_A_PORT));
    let want = frame::udp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_A_MAC, DNS_VIP, POD_A_IP)
        },
        53,
        41000,
        b"answer",
    );
    assert_bytes(&o.bytes, &want);
    assert_eq!(n.event(Event::CtHitReply), 1);
    assert_eq!(n.event(Event::HandoffTx), 1);
    assert_eq!(n.event(Event::HandoffRx), 1);
    // Counted once as received (by worker 1), once as taken over (by worker 0).
    assert_eq!(n.event(Event::RxPod), 2);
}

#[test]
fn clusterip_reply_through_the_tunnel_on_any_rx_queue_reaches_the_owner() {
    let mut n = Workers::a(2);
    only_backend(&mut n.w, WEB, POD_C_IP);
    let syn = frame::tcp_frame(&pod_a_to(WEB_VIP), 42000, 80, 100, 0, tf::SYN, b"");
    let o = n.run(0, Ingress::Pod(POD_A_PORT), &syn);
    assert_eq!((o.d, o.handed), (Disposition::ToUplink, None));
    let (a, b) = (NodeConfig::example_node_a(), NodeConfig::example_node_b());
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, POD_A_IP)
        },
        8080,
        42000,
        500,
        101,
        tf::SYN | tf::ACK,
        b"",
    );
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 62,
            ..Addrs::new(gw_a(), POD_A_MAC, WEB_VIP, POD_A_IP)
        },
        80,
        42000,
        500,
        101,
        tf::SYN | tf::ACK,
        b"",
    );
    // Whichever uplink queue RSS picks: worker 1 hands the decapsulated frame over, worker 0
    // handles it itself; the result is the same frame.
    for (at, handed) in [(1, Some((0, Ingress::Tunnel))), (0, None)] {
        let o = n.run(at, Ingress::Uplink, &from_node_b(&inner, 50000));
        assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_A_PORT), handed));
        assert_bytes(&o.bytes, &want);
    }
    assert_eq!(n.ct_lens(), [1, 0]);
    assert_eq!(n.event(Event::Decap), 2);
}

#[test]
fn nodeport_flows_live_on_the_client_hash_owner_and_snat_ports_come_back_there() {
    for workers in [2u16, 3] {
        let mut n = Workers::a(workers);
        only_backend(&mut n.w, WEB, POD_C_IP);
        let a = NodeConfig::example_node_a();
        let b = NodeConfig::example_node_b();
        for (i, client_ip) in [EXTERNAL_IP, Ipv4Addr::new(10, 1, 0, 98)]
            .into_iter()
            .enumerate()
        {
            let sport = 51000 + i as u16;
            let owner = Shard::new(workers, 0).of_external(client_ip.to_bits(), sport);
            let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, client_ip, a.underlay_ip);
            let syn = frame::tcp_frame(&client, sport, WEB_NODEPORT, 7, 0, tf::SYN, b"");
            // Received by a worker that is not the owner: handed over untouched.
            let at = (owner + 1) % workers;
            let o = n.run(at, Ingress::Uplink, &syn);
            assert_eq!(o.handed, Some((owner, Ingress::Uplink)));
            assert_eq!(o.d, Disposition::ToUplink);
            // SNATed to the node's VTEP address with a port in the owner's class.
            let snat_port = u16::from_be_bytes([o.bytes[84], o.bytes[85]]);
            assert_eq!(snat_port % workers, owner, "{workers} workers");
            assert_eq!(&o.bytes[76..84], &[10, 244, 1, 0, 10, 244, 2, 2]);
            // Pod C's answer to that address comes back through the tunnel to any queue.
            let inner = frame::tcp_frame(
                &Addrs {
                    ttl: 63,
                    ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, a.vtep_ip())
                },
                8080,
                snat_port,
                9,
                8,
                tf::SYN | tf::ACK,
                b"",
            );
            let want = frame::tcp_frame(
                &Addrs {
                    ttl: 62,
                    ..Addrs::new(a.underlay_mac, EXTERNAL_MAC, a.underlay_ip, client_ip)
                },
                WEB_NODEPORT,
                sport,
                9,
                8,
                tf::SYN | tf::ACK,
                b"",
            );
            for at in 0..workers {
                let o = n.run(at, Ingress::Uplink, &from_node_b(&inner, 49200 + at));
                assert_eq!(o.d, Disposition::ToUplink);
                assert_eq!(
                    o.handed,
                    (at != owner).then_some((owner, Ingress::Tunnel)),
                    "{workers} workers, at {at}"
                );
                assert_bytes(&o.bytes, &want);
            }
        }
        assert_eq!(n.ct_lens().iter().sum::<usize>(), 2);
    }
}

#[test]
fn nodeport_reply_from_a_local_backend_goes_to_the_client_hash_owner() {
    let mut n = Workers::a(2);
    only_backend(&mut n.w, WEB, POD_B_IP); // pod B: port 1, worker 1
    let a = NodeConfig::example_node_a();
    let s = Shard::new(2, 0);
    // A client port whose flow is worker 0's, so the backend's worker must hand its replies.
    let sport = (51000..)
        .find(|&p| s.of_external(EXTERNAL_IP.to_bits(), p) == 0)
        .unwrap();
    let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    let syn = frame::tcp_frame(&client, sport, WEB_NODEPORT, 7, 0, tf::SYN, b"");
    let o = n.run(0, Ingress::Uplink, &syn);
    assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_B_PORT), None));
    pod_b_answers_through_worker_0(&mut n, sport, WEB_NODEPORT, sport);
}

/// Pod B (port 1, worker 1) answers the external client at `port`: worker 1 hands the SYN-ACK
/// to worker 0, the flow's owner, and it leaves from `nodeport` to the client's own `sport`.
fn pod_b_answers_through_worker_0(n: &mut Workers, port: u16, nodeport: u16, sport: u16) {
    let a = NodeConfig::example_node_a();
    let synack = frame::tcp_frame(
        &pod_b_to(EXTERNAL_IP),
        8080,
        port,
        9,
        8,
        tf::SYN | tf::ACK,
        b"",
    );
    let o = n.run(1, Ingress::Pod(POD_B_PORT), &synack);
    assert_eq!(o.handed, Some((0, Ingress::Pod(POD_B_PORT))));
    assert_eq!(o.d, Disposition::ToUplink);
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(a.underlay_mac, EXTERNAL_MAC, a.underlay_ip, EXTERNAL_IP)
        },
        nodeport,
        sport,
        9,
        8,
        tf::SYN | tf::ACK,
        b"",
    );
    assert_bytes(&o.bytes, &want);
}

#[test]
fn hairpin_snat_port_is_the_pods_workers() {
    let mut n = Workers::a(2);
    only_backend(&mut n.w, WEB, POD_B_IP);
    // 45000 is even: worker 0's class, but pod B is worker 1's; the SNAT port moves.
    let syn = frame::tcp_frame(&pod_b_to(WEB_VIP), 45000, 80, 1, 0, tf::SYN, b"");
    let o = n.run(1, Ingress::Pod(POD_B_PORT), &syn);
    assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_B_PORT), None));
    assert_eq!(&o.bytes[26..30], &GW_A.octets());
    let snat_port = u16::from_be_bytes([o.bytes[34], o.bytes[35]]);
    assert_eq!(snat_port % 2, 1);
    assert!((32768..=60999).contains(&snat_port));
    assert_eq!(n.event(Event::SnatPortRewritten), 1);
    let synack = frame::tcp_frame(
        &pod_b_to(GW_A),
        8080,
        snat_port,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    let o = n.run(1, Ingress::Pod(POD_B_PORT), &synack);
    assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_B_PORT), None));
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_B_MAC, WEB_VIP, POD_B_IP)
        },
        80,
        45000,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    assert_bytes(&o.bytes, &want);
}

#[test]
fn plain_traffic_is_never_handed_over() {
    let mut n = Workers::a(2);
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let to_b = frame::udp_frame(&pod_a_to(POD_B_IP), 1000, 2000, b"x");
    let to_c = frame::udp_frame(&pod_a_to(POD_C_IP), 1000, 2000, b"x");
    let from_b = frame::udp_frame(&pod_b_to(POD_A_IP), 2000, 1000, b"y");
    let inner = frame::udp_frame(
        &Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, POD_B_IP),
        3000,
        4000,
        b"z",
    );
    for _ in 0..3 {
        assert_eq!(n.run(0, Ingress::Pod(POD_A_PORT), &to_b).handed, None);
        assert_eq!(n.run(0, Ingress::Pod(POD_A_PORT), &to_c).handed, None);
        assert_eq!(n.run(1, Ingress::Pod(POD_B_PORT), &from_b).handed, None);
        for at in 0..2 {
            let o = n.run(at, Ingress::Uplink, &from_node_b(&inner, 50000));
            assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_B_PORT), None));
        }
    }
    assert_eq!(n.event(Event::HandoffTx), 0);
}

#[test]
fn a_handed_over_packet_is_never_handed_on() {
    let mut n = Workers::a(2);
    only_backend(&mut n.w, DNS, POD_B_IP);
    let q = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"query");
    n.run(0, Ingress::Pod(POD_A_PORT), &q);
    // Worker 1 is given (wrongly) a reply whose owner is worker 0: it processes it itself —
    // no NAT state there, so the backend's own address goes out — instead of bouncing it.
    let r = frame::udp_frame(&pod_b_to(POD_A_IP), 5353, 41000, b"answer");
    let mut pkts = [fastpath::buf::HeapBuf::from_frame(&r)];
    let mut out = [Disposition::ToHost];
    n.p[1].process_handed(Ingress::Pod(POD_B_PORT), &mut pkts, &mut out, n.now);
    assert_eq!(out[0], Disposition::ToPod(POD_A_PORT));
    assert_eq!(n.event(Event::HandoffTx), 0);
}

/// Pods and NodePorts with several workers. A pod to its own node's NodePort: the flow is its
/// worker's, like a ClusterIP flow, and the backend's worker hands the answer there. Another
/// node's pod to this node's NodePort (through the tunnel): the flow is its client's hash
/// owner's, like an external client's, and SNATed with a port of that worker's class, so the
/// local backend's answer comes back to it.
#[test]
fn pod_clients_of_a_nodeport_keep_one_owner_per_flow() {
    let mut n = Workers::a(2);
    only_backend(&mut n.w, WEB, POD_B_IP); // pod B: port 1, worker 1
    let (a, b) = (NodeConfig::example_node_a(), NodeConfig::example_node_b());
    // Pod A (port 0, worker 0) to node A's NodePort.
    let syn = frame::tcp_frame(
        &pod_a_to(a.underlay_ip),
        41000,
        WEB_NODEPORT,
        1,
        0,
        tf::SYN,
        b"",
    );
    let o = n.run(0, Ingress::Pod(POD_A_PORT), &syn);
    assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_B_PORT), None));
    let synack = frame::tcp_frame(
        &pod_b_to(POD_A_IP),
        8080,
        41000,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    let o = n.run(1, Ingress::Pod(POD_B_PORT), &synack);
    assert_eq!(o.handed, Some((0, Ingress::Pod(POD_B_PORT))));
    assert_eq!(o.d, Disposition::ToPod(POD_A_PORT));
    assert_eq!(
        &o.bytes[26..38],
        &[10, 1, 0, 10, 10, 244, 1, 2, 0x75, 0x80, 0xa0, 0x28]
    );
    assert_eq!(n.ct_lens(), vec![1, 0]);

    // Pod C (node B) to node A's NodePort, from both client hash owners.
    let s = Shard::new(2, 0);
    for owner in 0..2u16 {
        let sport = (42000..)
            .find(|&p| s.of_external(POD_C_IP.to_bits(), p) == owner)
            .unwrap();
        let inner = frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, a.underlay_ip)
            },
            sport,
            WEB_NODEPORT,
            1,
            0,
            tf::SYN,
            b"",
        );
        let o = n.run(1 - owner, Ingress::Uplink, &from_node_b(&inner, 49300));
        assert_eq!(o.handed, Some((owner, Ingress::Tunnel)));
        assert_eq!(o.d, Disposition::ToPod(POD_B_PORT));
        // SNATed to node A's VTEP address, with a port of the owner's class.
        assert_eq!(&o.bytes[26..34], &[10, 244, 1, 0, 10, 244, 1, 3]);
        let snat_port = u16::from_be_bytes([o.bytes[34], o.bytes[35]]);
        assert_eq!(snat_port % 2, owner);
        // Pod B answers that address from worker 1; the owner translates it back and tunnels
        // it to pod C from node A's address and NodePort.
        let synack = frame::tcp_frame(
            &pod_b_to(a.vtep_ip()),
            8080,
            snat_port,
            5,
            2,
            tf::SYN | tf::ACK,
            b"",
        );
        let o = n.run(1, Ingress::Pod(POD_B_PORT), &synack);
        assert_eq!(
            o.handed,
            (owner != 1).then_some((owner, Ingress::Pod(POD_B_PORT)))
        );
        assert_eq!(o.d, Disposition::ToUplink);
        let want = frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(a.vtep_mac, b.vtep_mac, a.underlay_ip, POD_C_IP)
            },
            WEB_NODEPORT,
            sport,
            5,
            2,
            tf::SYN | tf::ACK,
            b"",
        );
        assert_eq!(&o.bytes[50..], &want[..]);
    }
    assert_eq!(n.ct_lens(), vec![2, 1]);
}

/// The node's own flows to a ClusterIP are worker 0's (it alone polls the host path): their
/// SNAT ports are in worker 0's class, and replies received by another worker — from a local
/// backend's port, or through the tunnel on any uplink queue — are handed to worker 0.
#[test]
fn the_nodes_own_service_flows_are_the_host_path_workers() {
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let from_host = Addrs::new(a.host_mac, gw_a(), a.underlay_ip, WEB_VIP);
    let to_host = |ttl| Addrs {
        ttl,
        ..Addrs::new(gw_a(), a.host_mac, WEB_VIP, a.underlay_ip)
    };
    // Local backend: pod B, whose port is worker 1's. 45001 is odd (worker 1's class): the
    // SNAT port moves into worker 0's.
    let mut n = Workers::a(2);
    only_backend(&mut n.w, WEB, POD_B_IP);
    let syn = frame::tcp_frame(&from_host, 45001, 80, 1, 0, tf::SYN, b"");
    let o = n.run(0, Ingress::Host, &syn);
    assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_B_PORT), None));
    assert_eq!(&o.bytes[26..30], &GW_A.octets());
    let snat_port = u16::from_be_bytes([o.bytes[34], o.bytes[35]]);
    assert_eq!(snat_port % 2, 0);
    assert!((32768..=60999).contains(&snat_port));
    assert_eq!(n.ct_lens(), [1, 0]);
    let synack = frame::tcp_frame(
        &pod_b_to(GW_A),
        8080,
        snat_port,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    let o = n.run(1, Ingress::Pod(POD_B_PORT), &synack);
    assert_eq!(o.handed, Some((0, Ingress::Pod(POD_B_PORT))));
    assert_eq!(o.d, Disposition::ToHost);
    assert_bytes(
        &o.bytes,
        &frame::tcp_frame(&to_host(64), 80, 45001, 5, 2, tf::SYN | tf::ACK, b""),
    );
    // Remote backend: pod C on node B. The reply arrives on either uplink queue.
    let mut n = Workers::a(2);
    only_backend(&mut n.w, WEB, POD_C_IP);
    let syn = frame::tcp_frame(&from_host, 45001, 80, 1, 0, tf::SYN, b"");
    let o = n.run(0, Ingress::Host, &syn);
    assert_eq!((o.d, o.handed), (Disposition::ToUplink, None));
    // The inner frame starts after 50 bytes of outer headers: its source is the VTEP address.
    assert_eq!(&o.bytes[50 + 26..50 + 30], &a.vtep_ip().octets());
    let snat_port = u16::from_be_bytes([o.bytes[50 + 34], o.bytes[50 + 35]]);
    assert_eq!(snat_port % 2, 0);
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, a.vtep_ip())
        },
        8080,
        snat_port,
        500,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    let want = frame::tcp_frame(&to_host(63), 80, 45001, 500, 2, tf::SYN | tf::ACK, b"");
    for (at, handed) in [(1, Some((0, Ingress::Tunnel))), (0, None)] {
        let o = n.run(at, Ingress::Uplink, &from_node_b(&inner, 50000));
        assert_eq!((o.d, o.handed), (Disposition::ToHost, handed));
        assert_bytes(&o.bytes, &want);
    }
    assert_eq!(n.event(Event::CtHitReply), 2);
}

/// An external client's port in two live flows to one backend through two NodePorts (no
/// SNAT): the second flow keeps the client's address and gets another port, one whose client
/// hash is the same worker's, so the backend's worker hands its answers to the flow's owner.
#[test]
fn a_remapped_client_port_stays_with_the_flows_owner() {
    let mut n = Workers::a(3);
    only_backend(&mut n.w, WEB, POD_B_IP); // pod B: port 1, worker 1
    n.w.apply(Update::AddService(web_local_svc())).unwrap();
    let a = NodeConfig::example_node_a();
    let s = Shard::new(3, 0);
    let sport = (51000..)
        .find(|&p| s.of_external(EXTERNAL_IP.to_bits(), p) == 0)
        .unwrap();
    let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    let mut ports = Vec::new();
    for nodeport in [WEB_NODEPORT, WEB_LOCAL_NODEPORT] {
        let syn = frame::tcp_frame(&client, sport, nodeport, 7, 0, tf::SYN, b"");
        let o = n.run(0, Ingress::Uplink, &syn);
        assert_eq!((o.d, o.handed), (Disposition::ToPod(POD_B_PORT), None));
        let port = u16::from_be_bytes([o.bytes[34], o.bytes[35]]);
        let want = frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(gw_a(), POD_B_MAC, EXTERNAL_IP, POD_B_IP)
            },
            port,
            8080,
            7,
            0,
            tf::SYN,
            b"",
        );
        assert_bytes(&o.bytes, &want);
        ports.push(port);
    }
    assert_eq!(ports[0], sport);
    assert_ne!(ports[1], sport);
    assert_eq!(s.of_external(EXTERNAL_IP.to_bits(), ports[1]), 0);
    assert_eq!(n.event(Event::SnatPortRewritten), 1);
    assert_eq!(n.ct_lens(), vec![2, 0, 0]);
    // Pod B answers both, on its own worker: each is handed to worker 0 and leaves from the
    // NodePort its client used, to the client's own port.
    for (port, nodeport) in [(ports[1], WEB_LOCAL_NODEPORT), (ports[0], WEB_NODEPORT)] {
        pod_b_answers_through_worker_0(&mut n, port, nodeport, sport);
    }
}
