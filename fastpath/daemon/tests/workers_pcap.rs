//! Two workers on real mbufs (`net_pcap`, EAL without hugepages): the uplink has two receive
//! queues (one pcap each, as two RSS queues) and every port one transmit queue per worker (one
//! pcap each). Worker 0 serves pod A, worker 1 pod B. The test polls the workers in a fixed
//! order so the run is deterministic: replies of NAT flows that worker 0 owns arrive at worker 1
//! (through the uplink's second queue and from pod B), are handed to worker 0 through the
//! handoff queue and leave reverse-NATed, byte for byte, on worker 0's transmit queues. Every
//! mbuf is back in its pool at the end.
//!
//! The EAL can be initialised once per process, so this file holds one test.

mod common;

use common::{
    assert_frames, read_pcap, test_eal, two_worker_ports, two_workers, tx_pcap, write_pcap,
};

use std::sync::Arc;

use daemon::worker::Handoff;
use dpdk::PktPool;
use fastpath::counters::Event;
use fastpath::fixtures::*;
use fastpath::pipeline::Shard;
use fastpath::tables::services::{EndpointSpec, EndpointState};
use fastpath::tables::NodeConfig;
use fastpath::update::Update;
use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::tcp::flags as tf;

#[test]
fn two_workers_hand_nat_replies_to_the_flow_owner() {
    let dir = std::env::temp_dir().join(format!("podlane-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let gw = a.gateway_mac;
    let outer_b_to_a = Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip);
    let outer_a_to_b = Addrs::new(a.underlay_mac, b.underlay_mac, a.underlay_ip, b.underlay_ip);
    let from_b = |src, dst, sport, dport, payload: &[u8]| {
        frame::udp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(b.vtep_mac, a.vtep_mac, src, dst)
            },
            sport,
            dport,
            payload,
        )
    };
    // A NodePort client port whose flow is worker 0's (it arrives on worker 1's queue).
    let shard = Shard::new(2, 0);
    let ext_port = (51000..)
        .find(|&p| shard.of_external(EXTERNAL_IP.to_bits(), p) == 0)
        .unwrap();
    let ext = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);

    // ---- inputs ----------------------------------------------------------------------------
    // Uplink queue 0 (worker 0): plain pod C → pod B traffic, no NAT.
    let plain_inner = from_b(POD_C_IP, POD_B_IP, 7000, 7001, b"plain");
    let uplink_q0 = vec![frame::vxlan_frame(
        &outer_b_to_a,
        50001,
        1,
        &plain_inner,
        false,
    )];
    // Uplink queue 1 (worker 1): pod C's DNS answer to pod A (a flow of worker 0) and a
    // NodePort SYN whose client hashes to worker 0.
    let dns_answer = from_b(POD_C_IP, POD_A_IP, 5353, 40002, b"dns answer");
    let uplink_q1 = vec![
        frame::vxlan_frame(&outer_b_to_a, 50002, 1, &dns_answer, false),
        frame::tcp_frame(&ext, ext_port, WEB_NODEPORT, 7, 0, tf::SYN, b""),
    ];
    // Pod A (worker 0): a DNS query (backend pod C, remote) and a web SYN (backend pod B).
    let a_to = |dst| Addrs::new(POD_A_MAC, gw, POD_A_IP, dst);
    let pod_a_in = vec![
        frame::udp_frame(&a_to(DNS_VIP), 40002, 53, b"dns query"),
        frame::tcp_frame(&a_to(WEB_VIP), 40003, 80, 100, 0, tf::SYN, b""),
    ];
    // Pod B (worker 1): the web backend's SYN-ACK to pod A.
    let pod_b_in = vec![frame::tcp_frame(
        &Addrs::new(POD_B_MAC, gw, POD_B_IP, POD_A_IP),
        8080,
        40003,
        900,
        101,
        tf::SYN | tf::ACK,
        b"",
    )];
    let uq0 = write_pcap(&dir, "uplink_q0.pcap", &uplink_q0);
    let uq1 = write_pcap(&dir, "uplink_q1.pcap", &uplink_q1);
    let pa = write_pcap(&dir, "poda_in.pcap", &pod_a_in);
    let pb = write_pcap(&dir, "podb_in.pcap", &pod_b_in);
    let out = |n: &str, q: u16| tx_pcap(&dir, n, q);

    // ---- DPDK ------------------------------------------------------------------------------
    let eal = test_eal("podlane-workers");
    let pool = Arc::new(PktPool::new("workers", 8191, 256).unwrap());
    let ports = two_worker_ports(&eal, &pool, &dir, [&uq0, &uq1], &pa, &pb);

    // ---- tables: DNS served by pod C (remote), web by pod B (local) ------------------------
    let mut w = node_a_writer();
    for (svc, ep, port) in [(DNS, POD_C_IP, 5353), (WEB, POD_B_IP, 8080)] {
        let mut s = services().into_iter().find(|s| s.frontend == svc).unwrap();
        s.endpoints = vec![EndpointSpec {
            ip: ep,
            port,
            state: EndpointState::Ready,
        }];
        w.apply(Update::AddService(s)).unwrap();
    }
    let handoff = Handoff::new(2);
    let (set, mut workers) = two_workers(w.reader(), ports, &handoff);
    assert_eq!(workers[0].uplink_queues(), [0]);
    assert_eq!(workers[1].uplink_queues(), [1]);
    // Worker 0 first: its NAT flows exist before worker 1 sees their replies.
    let now = 1000;
    assert_eq!(workers[0].poll(now), 3); // uplink queue 0, pod A
    assert_eq!(workers[1].poll(now), 3); // uplink queue 1, pod B: all handed to worker 0
    assert_eq!(workers[0].poll(now), 3); // the three handed over
    let mut idle = 0;
    while idle < 50 {
        let n: usize = workers.iter_mut().map(|w| w.poll(now)).sum();
        idle = if n == 0 { idle + 1 } else { 0 };
    }
    let c: Vec<_> = workers.iter().map(|w| w.counters().snapshot()).collect();
    assert_eq!(c[1].event_count(Event::HandoffTx), 3);
    assert_eq!(c[0].event_count(Event::HandoffRx), 3);
    assert_eq!(c[0].event_count(Event::HandoffTx), 0);
    assert_eq!(c[0].event_count(Event::CtNew), 3); // DNS, web, NodePort
    assert_eq!(c[0].event_count(Event::CtHitReply), 2);
    assert_eq!(workers[1].pipeline().conntrack().len(), 0);
    assert_eq!(workers[0].pipeline().conntrack().len(), 3);
    drop(workers);
    drop(handoff);
    for port in set.current().all() {
        port.close().unwrap();
    }
    assert_eq!(pool.in_use(), 0, "every mbuf back in the pool");
    drop(set);
    drop(pool);

    // ---- expected outputs: everything on worker 0's transmit queues ------------------------
    let uplink_tx0 = read_pcap(&out("uplink", 0));
    assert_frames(
        "uplink q0",
        &uplink_tx0,
        &[frame::vxlan_frame(
            &outer_a_to_b,
            u16::from_be_bytes([uplink_tx0[0][34], uplink_tx0[0][35]]),
            1,
            &frame::udp_frame(
                &Addrs {
                    ttl: 63,
                    ..Addrs::new(a.vtep_mac, b.vtep_mac, POD_A_IP, POD_C_IP)
                },
                40002,
                5353,
                b"dns query",
            ),
            false,
        )],
    );
    let to_pod = |src_mac, dst_mac, src, dst| Addrs {
        ttl: 63,
        ..Addrs::new(src_mac, dst_mac, src, dst)
    };
    assert_frames(
        "pod A q0",
        &read_pcap(&out("poda", 0)),
        &[
            // Pod C's DNS answer, decapsulated by worker 1, reverse-NATed by worker 0.
            frame::udp_frame(
                &Addrs {
                    ttl: 62,
                    ..Addrs::new(gw, POD_A_MAC, DNS_VIP, POD_A_IP)
                },
                53,
                40002,
                b"dns answer",
            ),
            // Pod B's SYN-ACK, from worker 1's pod port, reverse-NATed by worker 0.
            frame::tcp_frame(
                &to_pod(gw, POD_A_MAC, WEB_VIP, POD_A_IP),
                80,
                40003,
                900,
                101,
                tf::SYN | tf::ACK,
                b"",
            ),
        ],
    );
    assert_frames(
        "pod B q0",
        &read_pcap(&out("podb", 0)),
        &[
            frame::udp_frame(
                &Addrs {
                    ttl: 62,
                    ..Addrs::new(gw, POD_B_MAC, POD_C_IP, POD_B_IP)
                },
                7000,
                7001,
                b"plain",
            ),
            frame::tcp_frame(
                &to_pod(gw, POD_B_MAC, POD_A_IP, POD_B_IP),
                40003,
                8080,
                100,
                0,
                tf::SYN,
                b"",
            ),
            // The NodePort SYN, handed over by worker 1 untouched, DNATed by worker 0.
            frame::tcp_frame(
                &to_pod(gw, POD_B_MAC, EXTERNAL_IP, POD_B_IP),
                ext_port,
                8080,
                7,
                0,
                tf::SYN,
                b"",
            ),
        ],
    );
    for n in ["uplink", "poda", "podb"] {
        assert_frames(&format!("{n} q1"), &read_pcap(&out(n, 1)), &[]);
    }
    eal.cleanup();
    let _ = std::fs::remove_dir_all(&dir);
}
