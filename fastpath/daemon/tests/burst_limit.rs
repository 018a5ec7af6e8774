//! `[queues] burst`: a worker takes at most that many packets from a receive queue per poll.
//! Ten frames from pod A to pod B on `net_pcap` (EAL without hugepages), a worker with a burst
//! of 4: the polls take 4, 4, 2, then nothing; pod B's port sends all ten, in order, each
//! delivered (pod B's MAC, from the gateway, TTL − 1). Every mbuf is back in its pool.
//!
//! The EAL can be initialised once per process, so this file holds one test.

mod common;

use common::{read_pcap, test_eal, tx_pcap, write_pcap};

use std::sync::Arc;

use daemon::worker::{PodPort, PortSet, Worker};
use dpdk::{Port, PortConfig};
use fastpath::fixtures::*;
use fastpath::pipeline::Pipeline;
use fastpath::rcu::Publisher;
use fastpath::tables::conntrack::Timeouts;
use fastpath::tables::NodeConfig;
use fastpath::wire::frame::{self, Addrs};

const FRAMES: u16 = 10;
const BURST: usize = 4;

#[test]
fn a_worker_takes_at_most_its_burst_per_poll() {
    let dir = std::env::temp_dir().join(format!("podlane-burst-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gw = NodeConfig::example_node_a().gateway_mac;
    let a_to_b = Addrs::new(POD_A_MAC, gw, POD_A_IP, POD_B_IP);
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| frame::udp_frame(&a_to_b, 40000 + i, 7, b"burst"))
        .collect();
    let empty = write_pcap(&dir, "empty.pcap", &[]);
    let pa = write_pcap(&dir, "poda_in.pcap", &frames);

    let eal = test_eal("podlane-burst");
    let pool = Arc::new(dpdk::PktPool::new("burst", 1023, 0).unwrap());
    let start = |devargs: String| {
        let id = eal.attach(&devargs).expect("attach net_pcap");
        Port::start(id, &PortConfig::default(), &pool).expect("port start")
    };
    let tx = |n: &str| tx_pcap(&dir, n, 0);
    let uplink = start(format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        empty.display(),
        tx("uplink").display()
    ));
    let pod_a = start(format!(
        "net_pcap1,rx_pcap={},tx_pcap={}",
        pa.display(),
        tx("poda").display()
    ));
    let pod_b = start(format!(
        "net_pcap2,rx_pcap={},tx_pcap={}",
        empty.display(),
        tx("podb").display()
    ));
    let set = Publisher::new(PortSet {
        uplink: Arc::new(uplink),
        host: None,
        pods: vec![
            Some(Arc::new(PodPort::Eth(pod_a))),
            Some(Arc::new(PodPort::Eth(pod_b))),
        ],
    });
    let w = node_a_writer();
    let pipeline = Pipeline::new(w.reader(), 1024, Timeouts::default());
    let mut worker = Worker::new(pipeline, set.reader(), 16).with_burst(BURST);
    let polls: Vec<usize> = (0..4).map(|t| worker.poll(1000 + t)).collect();
    assert_eq!(polls, [BURST, BURST, 2, 0]);
    assert_eq!(worker.stats().tx, u64::from(FRAMES));
    drop(worker);
    for port in set.current().all() {
        port.close().unwrap();
    }
    drop(set);
    assert_eq!(pool.in_use(), 0, "every mbuf back in the pool");

    let out = read_pcap(&tx("podb"));
    assert_eq!(out.len(), usize::from(FRAMES), "all ten reach pod B");
    for (i, (got, sent)) in out.iter().zip(&frames).enumerate() {
        let mut want = sent.clone();
        want[0..6].copy_from_slice(POD_B_MAC.as_bytes());
        want[6..12].copy_from_slice(gw.as_bytes());
        // TTL − 1 and the header checksum + 0x0100 (RFC 1624), as the pipeline does.
        want[22] -= 1;
        let c = u32::from(u16::from_be_bytes([want[24], want[25]])) + 0x0100;
        let c = (c + (c >> 16)) as u16;
        want[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(got, &want, "frame {i}: in order, delivered");
    }
    assert!(read_pcap(&tx("uplink")).is_empty());
    assert!(read_pcap(&tx("poda")).is_empty());
}
