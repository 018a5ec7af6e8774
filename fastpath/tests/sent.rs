//! What `Pipeline::process` returns about a burst — how many packets went each way, and the one
//! pod port they all went to if they did — is what the burst's dispositions say: the worker
//! sends a burst from where it was received on the strength of it. Mixed bursts of every kind
//! from a pod and from the uplink (lane and general path, local and remote, answers to the
//! sender, drops), with and without the fast lanes.

mod common;

use common::*;
use core::net::Ipv4Addr;
use fastpath::buf::HeapBuf;
use fastpath::counters::{Disposition, DropReason};
use fastpath::fixtures::*;
use fastpath::pipeline::{Ingress, Sent};
use fastpath::tables::NodeConfig;
use fastpath::wire::frame::{self, Addrs};
use proptest::prelude::*;

const GW_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

/// Frames from pod A: to pod B (local), to pod C (remote), an echo request to the gateway
/// (answered back to pod A), to the outside (the host path), and a runt (dropped).
fn kinds() -> [Vec<u8>; 5] {
    [
        frame::udp_frame(&pod_a_to(POD_B_IP), 1000, 2000, b"local"),
        frame::udp_frame(&pod_a_to(POD_C_IP), 1000, 2000, b"remote"),
        frame::icmp_echo_frame(&pod_a_to(GW_A), true, 1, 1, b"ping"),
        frame::udp_frame(&pod_a_to(EXTERNAL_IP), 1000, 53, b"out"),
        vec![0u8; 10],
    ]
}

/// What a burst's dispositions say, counted the slow way.
fn tally(out: &[Disposition]) -> Sent {
    let mut s = Sent::default();
    let mut ports = Vec::new();
    for d in out {
        match *d {
            Disposition::ToPod(p) => {
                s.pod += 1;
                ports.push(p);
            }
            Disposition::ToUplink => s.uplink += 1,
            Disposition::ToHost => s.host += 1,
            Disposition::Handoff { .. } => s.handoff += 1,
            Disposition::Drop(_) => {}
        }
    }
    s.pod_port = ports
        .first()
        .copied()
        .filter(|p| ports.iter().all(|q| q == p));
    s
}

/// Frames from node B on the uplink: VXLAN to pod B and to pod A (decapsulated and delivered,
/// the lane's way, and with a UDP checksum the general way), to an address no pod has
/// (dropped), and a runt.
fn uplink_kinds() -> [Vec<u8>; 5] {
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let outer = Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip);
    let inner = |dst| {
        let ad = Addrs {
            ttl: 63,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, dst)
        };
        frame::udp_frame(&ad, 7000, 7001, b"in")
    };
    [
        frame::vxlan_frame(&outer, 50000, 1, &inner(POD_B_IP), false),
        frame::vxlan_frame(&outer, 50001, 1, &inner(POD_A_IP), false),
        frame::vxlan_frame(&outer, 50002, 1, &inner(POD_A_IP), true),
        frame::vxlan_frame(
            &outer,
            50003,
            1,
            &inner(Ipv4Addr::new(10, 244, 1, 77)),
            false,
        ),
        vec![0u8; 10],
    ]
}

/// One burst of `frames` through `n` from `ingress`: what `process` returned, and the
/// dispositions.
fn burst(n: &mut Node, ingress: Ingress, frames: &[&Vec<u8>]) -> (Sent, Vec<Disposition>) {
    let mut pkts: Vec<HeapBuf> = frames.iter().map(|f| HeapBuf::from_frame(f)).collect();
    let mut out = vec![Disposition::Drop(DropReason::Runt); pkts.len()];
    let sent = n.p.process(ingress, &mut pkts, &mut out, 0);
    (sent, out)
}

proptest! {
    #[test]
    fn sent_is_what_the_dispositions_say(
        picks in proptest::collection::vec(0usize..5, 1..=32),
        uplink in any::<bool>(),
        fast in any::<bool>(),
    ) {
        let mut n = Node::a();
        n.p.set_fast_lanes(fast);
        let (ingress, kinds) = if uplink {
            (Ingress::Uplink, uplink_kinds())
        } else {
            (Ingress::Pod(POD_A_PORT), kinds())
        };
        let frames: Vec<&Vec<u8>> = picks.iter().map(|&k| &kinds[k]).collect();
        let (sent, out) = burst(&mut n, ingress, &frames);
        prop_assert_eq!(sent, tally(&out), "{:?}", out);
    }
}

#[test]
fn one_pod_port_or_none() {
    let mut n = Node::a();
    let k = kinds();
    let mut run = |frames: &[&Vec<u8>]| burst(&mut n, Ingress::Pod(POD_A_PORT), frames).0;
    // All to pod B: its port.
    let s = run(&[&k[0], &k[0], &k[0]]);
    assert_eq!((s.pod, s.pod_port), (3, Some(POD_B_PORT)));
    // To pod B and back to pod A (port 0, whose bits are a subset of every port's): none.
    let s = run(&[&k[0], &k[2]]);
    assert_eq!((s.pod, s.pod_port), (2, None));
    // Only the answer to pod A: port 0.
    let s = run(&[&k[2], &k[4]]);
    assert_eq!((s.pod, s.pod_port), (1, Some(POD_A_PORT)));
    // None to pods.
    let s = run(&[&k[1], &k[4]]);
    assert_eq!((s.pod, s.pod_port, s.uplink), (0, None, 1));
}

#[test]
fn uplink_one_pod_port_or_none() {
    let mut n = Node::a();
    let k = uplink_kinds();
    let mut run = |frames: &[&Vec<u8>]| burst(&mut n, Ingress::Uplink, frames).0;
    let s = run(&[&k[0], &k[0], &k[3]]);
    assert_eq!((s.pod, s.pod_port), (2, Some(POD_B_PORT)));
    let s = run(&[&k[1], &k[2]]);
    assert_eq!((s.pod, s.pod_port), (2, Some(POD_A_PORT)));
    let s = run(&[&k[0], &k[1]]);
    assert_eq!((s.pod, s.pod_port), (2, None));
}
