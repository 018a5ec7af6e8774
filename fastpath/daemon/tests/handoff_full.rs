//! A full handoff queue: two workers on real mbufs (`net_pcap`, EAL without hugepages), the
//! handoff queues two packets deep. Worker 0 serves pod A and opens five ClusterIP flows to the
//! web Service, whose backend is pod B; pod B is worker 1's, so its five SYN-ACKs are handed to
//! worker 0, the flows' owner. The queue takes two: the other three are dropped and counted as
//! `handoff_queue_full` by worker 1, their mbufs freed; worker 0 reverse-NATs the two it got,
//! byte for byte, and nothing else reaches pod A. Every mbuf is back in its pool at the end.
//!
//! The EAL can be initialised once per process, so this file holds one test.

mod common;

use common::{
    assert_frames, read_pcap, test_eal, two_worker_ports, two_workers, tx_pcap, write_pcap,
};

use std::sync::Arc;

use daemon::worker::Handoff;
use dpdk::PktPool;
use fastpath::counters::{DropReason, Event};
use fastpath::fixtures::*;
use fastpath::tables::services::{EndpointSpec, EndpointState};
use fastpath::tables::NodeConfig;
use fastpath::update::Update;
use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::tcp::flags as tf;

const FLOWS: u16 = 5;
const DEPTH: usize = 2;

#[test]
fn a_full_handoff_queue_drops_counts_and_frees() {
    let dir = std::env::temp_dir().join(format!("podlane-handoff-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gw = NodeConfig::example_node_a().gateway_mac;
    let sports = || 41000..41000 + FLOWS;
    let syns: Vec<_> = sports()
        .map(|p| {
            let a = Addrs::new(POD_A_MAC, gw, POD_A_IP, WEB_VIP);
            frame::tcp_frame(&a, p, 80, 100, 0, tf::SYN, b"")
        })
        .collect();
    let syn_acks: Vec<_> = sports()
        .map(|p| {
            let b = Addrs::new(POD_B_MAC, gw, POD_B_IP, POD_A_IP);
            frame::tcp_frame(&b, 8080, p, 900, 101, tf::SYN | tf::ACK, b"")
        })
        .collect();
    let empty = write_pcap(&dir, "empty.pcap", &[]);
    let pa = write_pcap(&dir, "poda_in.pcap", &syns);
    let pb = write_pcap(&dir, "podb_in.pcap", &syn_acks);
    let out = |n: &str, q: u16| tx_pcap(&dir, n, q);

    let eal = test_eal("podlane-handoff-full");
    let pool = Arc::new(PktPool::new("handoff-full", 4095, 0).unwrap());
    let ports = two_worker_ports(&eal, &pool, &dir, [&empty, &empty], &pa, &pb);

    let mut w = node_a_writer();
    let mut s = services().into_iter().find(|s| s.frontend == WEB).unwrap();
    s.endpoints = vec![EndpointSpec {
        ip: POD_B_IP,
        port: 8080,
        state: EndpointState::Ready,
    }];
    w.apply(Update::AddService(s)).unwrap();
    let handoff = Handoff::with_depth(2, DEPTH);
    let (set, mut workers) = two_workers(w.reader(), ports, &handoff);
    let now = 1000;
    // Worker 0 opens the flows (the SYNs go to pod B on worker 0's queue), then worker 1
    // receives every SYN-ACK and hands all five over; worker 0 then takes what the queue held.
    assert_eq!(workers[0].poll(now), FLOWS as usize);
    assert_eq!(workers[1].poll(now), FLOWS as usize);
    let c1 = workers[1].counters().snapshot();
    assert_eq!(c1.event_count(Event::HandoffTx), FLOWS as u64);
    assert_eq!(
        c1.drop_count(DropReason::HandoffQueueFull),
        FLOWS as u64 - DEPTH as u64,
        "what the full queue refused is dropped and counted by the worker that handed it"
    );
    assert_eq!(workers[0].poll(now), DEPTH);
    let mut idle = 0;
    while idle < 20 {
        let n: usize = workers.iter_mut().map(|w| w.poll(now)).sum();
        idle = if n == 0 { idle + 1 } else { 0 };
    }
    let c0 = workers[0].counters().snapshot();
    assert_eq!(c0.event_count(Event::HandoffRx), DEPTH as u64);
    assert_eq!(c0.event_count(Event::CtNew), FLOWS as u64);
    assert_eq!(c0.event_count(Event::CtHitReply), DEPTH as u64);
    assert_eq!(c0.drop_count(DropReason::HandoffQueueFull), 0);
    drop(workers);
    drop(handoff);
    for port in set.current().all() {
        port.close().unwrap();
    }
    assert_eq!(
        pool.in_use(),
        0,
        "every mbuf back in the pool, the dropped ones too"
    );
    drop(set);
    drop(pool);

    // Pod A gets the first two SYN-ACKs (the queue is FIFO), reverse-NATed; pod B all SYNs.
    let to_a = Addrs {
        ttl: 63,
        ..Addrs::new(gw, POD_A_MAC, WEB_VIP, POD_A_IP)
    };
    let want_a: Vec<_> = sports()
        .take(DEPTH)
        .map(|p| frame::tcp_frame(&to_a, 80, p, 900, 101, tf::SYN | tf::ACK, b""))
        .collect();
    assert_frames("pod A q0", &read_pcap(&out("poda", 0)), &want_a);
    assert_frames("pod A q1", &read_pcap(&out("poda", 1)), &[]);
    let to_b = Addrs {
        ttl: 63,
        ..Addrs::new(gw, POD_B_MAC, POD_A_IP, POD_B_IP)
    };
    let want_b: Vec<_> = sports()
        .map(|p| frame::tcp_frame(&to_b, p, 8080, 100, 0, tf::SYN, b""))
        .collect();
    assert_frames("pod B q0", &read_pcap(&out("podb", 0)), &want_b);
    assert_frames("pod B q1", &read_pcap(&out("podb", 1)), &[]);
    let _ = std::fs::remove_dir_all(&dir);
}
