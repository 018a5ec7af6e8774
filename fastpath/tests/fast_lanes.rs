//! The fast lanes (`pipeline/fast.rs`) change nothing but speed: every frame — valid ones of
//! the lanes' kinds, and the same frames mutated in their headers, with the IPv4 checksums made
//! right again or not — leaves two pipelines with identical tables, one with the lanes and one
//! without, with the same disposition, the same bytes and the same counters.

mod common;

use common::*;
use core::net::Ipv4Addr;
use fastpath::buf::{HeapBuf, PacketBuf};
use fastpath::counters::{Disposition, DropReason};
use fastpath::fixtures::*;
use fastpath::pipeline::Ingress;
use fastpath::tables::services::{EndpointSpec, EndpointState, FrontendKey, Protocol, ServiceSpec};
use fastpath::tables::NodeConfig;
use fastpath::update::Update;
use fastpath::wire::checksum;
use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::tcp::flags as tf;
use proptest::prelude::*;

/// Two more Services, served from the host network: by node B (through the tunnel to its
/// underlay address) and by node A itself (to the host path) — NATed flows whose backend is no
/// pod.
const HOSTNET_B: FrontendKey = FrontendKey {
    ip: Ipv4Addr::new(10, 96, 0, 30),
    port: 443,
    protocol: Protocol::Tcp,
};
const HOSTNET_A: FrontendKey = FrontendKey {
    ip: Ipv4Addr::new(10, 96, 0, 31),
    port: 443,
    protocol: Protocol::Tcp,
};

/// Node A twice, the second without fast lanes; DNS served by pod B (local), web by pod C
/// (remote), so after `warm` pod A is two NATed flows' client and pod B a backend: frames of
/// theirs must leave the lanes (the reverse NAT of pod C's replies happens after decap).
fn pair() -> (Node, Node) {
    let mk = |fast: bool| {
        let mut n = Node::a();
        for (fe, ip, port) in [(DNS, POD_B_IP, 5353), (WEB, POD_C_IP, 8080)] {
            let mut s = services().into_iter().find(|s| s.frontend == fe).unwrap();
            s.endpoints = vec![EndpointSpec {
                ip,
                port,
                state: EndpointState::Ready,
            }];
            n.w.apply(Update::AddService(s)).unwrap();
        }
        for (fe, node) in [
            (HOSTNET_B, NodeConfig::example_node_b()),
            (HOSTNET_A, NodeConfig::example_node_a()),
        ] {
            n.w.apply(Update::AddService(ServiceSpec {
                name: format!("default/hostnet-{}:https", node.name),
                frontend: fe,
                node_port: None,
                node_port_local: false,
                endpoints: vec![EndpointSpec {
                    ip: node.underlay_ip,
                    port: 6443,
                    state: EndpointState::Ready,
                }],
            }))
            .unwrap();
        }
        n.p.set_fast_lanes(fast);
        n
    };
    (mk(true), mk(false))
}

/// Header bytes worth mutating: Ethernet type and MACs, the outer and inner IPv4 headers
/// (version/IHL, lengths, flags/offset, TTL, protocol, addresses), UDP/TCP ports and lengths,
/// the VXLAN flags and VNI, the inner Ethernet header.
const HOT: &[usize] = &[
    6, 11, 12, 13, 14, 16, 17, 20, 21, 22, 23, 26, 29, 30, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
    45, 46, 47, 48, 50, 55, 62, 63, 64, 66, 67, 70, 71, 72, 73, 76, 79, 80, 83, 84, 86,
];

fn frames() -> Vec<(Ingress, Vec<u8>)> {
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let outer = Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip);
    let inner_to = |dst, proto_tcp: bool| {
        let ad = Addrs {
            ttl: 63,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, dst)
        };
        if proto_tcp {
            frame::tcp_frame(&ad, 8080, 42000, 1, 2, tf::ACK, b"tcp in")
        } else {
            frame::udp_frame(&ad, 7000, 7001, b"udp in")
        }
    };
    let mut padded = frame::udp_frame(&pod_b_to(POD_A_IP), 1, 2, b"");
    padded.resize(60, 0);
    // The first fragment of a datagram to pod C (MF set): fragments hash without ports.
    let mut first_fragment = frame::udp_frame(&pod_a_to(POD_C_IP), 1000, 2000, b"fragment");
    first_fragment[20] |= 0x20;
    refill(&mut first_fragment, 14);
    vec![
        (
            Ingress::Pod(POD_A_PORT),
            frame::udp_frame(&pod_a_to(POD_B_IP), 1000, 2000, b"local"),
        ),
        (
            Ingress::Pod(POD_A_PORT),
            frame::tcp_frame(&pod_a_to(POD_C_IP), 1000, 80, 5, 6, tf::ACK, b"remote"),
        ),
        (
            Ingress::Pod(POD_A_PORT),
            frame::icmp_echo_frame(&pod_a_to(POD_C_IP), true, 1, 1, b"ping"),
        ),
        (Ingress::Pod(POD_B_PORT), padded),
        (
            Ingress::Pod(POD_B_PORT),
            frame::udp_frame(&pod_b_to(POD_A_IP), 5353, 41000, b"a reply"),
        ),
        (
            Ingress::Pod(POD_A_PORT),
            frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"query"),
        ),
        (Ingress::Pod(POD_A_PORT), first_fragment),
        (
            Ingress::Uplink,
            frame::vxlan_frame(&outer, 50000, 1, &inner_to(POD_B_IP, false), false),
        ),
        (
            Ingress::Uplink,
            frame::vxlan_frame(&outer, 50001, 1, &inner_to(POD_A_IP, true), false),
        ),
        (
            Ingress::Uplink,
            frame::vxlan_frame(&outer, 50002, 1, &inner_to(POD_B_IP, true), true),
        ),
        (
            Ingress::Uplink,
            frame::vxlan_frame(
                &outer,
                50003,
                1,
                &inner_to(Ipv4Addr::new(10, 244, 1, 77), false),
                false,
            ),
        ),
        // One byte over the tunnel's limit (IPv4 length 1451 with a 1,500-byte underlay): to a
        // remote pod it is answered with ICMP frag-needed, to a local one delivered — both the
        // general way.
        (
            Ingress::Pod(POD_A_PORT),
            frame::udp_frame(&pod_a_to(POD_C_IP), 1000, 2000, &[7; 1451 - 28]),
        ),
        (
            Ingress::Pod(POD_A_PORT),
            frame::udp_frame(&pod_a_to(POD_B_IP), 1000, 2000, &[7; 1451 - 28]),
        ),
        // And at the limit: encapsulated by the lane.
        (
            Ingress::Pod(POD_A_PORT),
            frame::udp_frame(&pod_a_to(POD_C_IP), 1000, 2000, &[7; 1450 - 28]),
        ),
        // Established flows (after `warm`) to the host-network Services.
        (
            Ingress::Pod(POD_A_PORT),
            frame::tcp_frame(&pod_a_to(HOSTNET_B.ip), 43000, 443, 2, 1, tf::ACK, b"to B"),
        ),
        (
            Ingress::Pod(POD_A_PORT),
            frame::tcp_frame(&pod_a_to(HOSTNET_A.ip), 43001, 443, 2, 1, tf::ACK, b"to A"),
        ),
    ]
}

/// Makes the IPv4 header checksum at `l3` right again (if a header is there).
fn refill(f: &mut [u8], l3: usize) {
    if f.len() >= l3 + 20 {
        f[l3 + 10] = 0;
        f[l3 + 11] = 0;
        let c = checksum::checksum(&f[l3..l3 + 20]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
}

fn same(fast: &mut Node, slow: &mut Node, ing: Ingress, f: &[u8]) -> Result<(), TestCaseError> {
    let (df, bf) = fast.run(ing, f);
    let (ds, bs) = slow.run(ing, f);
    prop_assert_eq!(df, ds, "{:02x?}", f);
    prop_assert_eq!(bf, bs);
    prop_assert_eq!(fast.counters(), slow.counters());
    prop_assert_eq!(fast.p.conntrack().len(), slow.p.conntrack().len());
    Ok(())
}

/// Starts pod A's TCP flows to the web Service (a remote backend) and to the host-network
/// ones (the UDP one to DNS is `frames()[5]`).
fn start_flows(fast: &mut Node, slow: &mut Node) -> Result<(), TestCaseError> {
    for (vip, port, sport) in [
        (WEB_VIP, 80, 42000),
        (HOSTNET_B.ip, 443, 43000),
        (HOSTNET_A.ip, 443, 43001),
    ] {
        let syn = frame::tcp_frame(&pod_a_to(vip), sport, port, 1, 0, tf::SYN, b"");
        same(fast, slow, Ingress::Pod(POD_A_PORT), &syn)?;
    }
    Ok(())
}

#[test]
fn valid_frames_take_the_lanes_and_match_the_general_path() {
    let (mut fast, mut slow) = pair();
    for warmed in [false, true] {
        if warmed {
            start_flows(&mut fast, &mut slow).unwrap();
        }
        let mut delivered = 0;
        for (ing, f) in frames() {
            let (df, bf) = fast.run(ing, &f);
            let (ds, bs) = slow.run(ing, &f);
            assert_eq!((df, &bf), (ds, &bs));
            delivered += usize::from(matches!(df, Disposition::ToPod(_) | Disposition::ToUplink));
        }
        assert_eq!(fast.counters(), slow.counters());
        assert!(delivered >= 10, "{delivered}");
    }
    // The established host-network flows: NATed by the lane, then to node B's underlay address
    // through the tunnel, and to this node's own through the host path.
    let hostnet = &frames()[14..];
    assert_eq!(
        fast.run(hostnet[0].0, &hostnet[0].1).0,
        Disposition::ToUplink
    );
    assert_eq!(fast.run(hostnet[1].0, &hostnet[1].1).0, Disposition::ToHost);
}

thread_local! {
    /// Prefetch hints a [`Hinted`] buffer received on this thread.
    static HINTS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// A `HeapBuf` that says it prefetches (`PREFETCHES`) and counts the hints, so that the pod
/// lane's prefetching loop — taken for DPDK's mbufs only — runs here.
struct Hinted(HeapBuf);

impl PacketBuf for Hinted {
    const PREFETCHES: bool = true;
    fn prefetch(_addr: *const u8) {
        HINTS.with(|h| h.set(h.get() + 1));
    }
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    fn headroom(&self) -> usize {
        self.0.headroom()
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.0.prepend(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        self.0.adj(n)
    }
    fn trim(&mut self, n: usize) -> bool {
        self.0.trim(n)
    }
}

/// Whole bursts from pod A that start with a Service frame — the pod lane's loop that
/// prefetches conntrack slots ahead — and bursts in another order get what the general path
/// gives the same burst, frame by frame; longer than the prefetch distance, with the flows
/// established and not. Only the bursts led by a Service frame prefetch.
#[test]
fn bursts_led_by_a_service_frame_match_the_general_path() {
    let from_a: Vec<Vec<u8>> = frames()
        .into_iter()
        .filter(|(ing, _)| *ing == Ingress::Pod(POD_A_PORT))
        .map(|(_, f)| f)
        .collect();
    // The DNS query (frames()[5], to the Service CIDR) first, then everything else twice.
    let dns = frames()[5].1.clone();
    assert!(from_a.contains(&dns));
    let mut led: Vec<Vec<u8>> = vec![dns.clone()];
    led.extend(from_a.iter().filter(|f| **f != dns).cloned());
    led.extend(led.clone());
    assert!(led.len() > 8, "{}", led.len());
    let to_service = |f: &[u8]| {
        NodeConfig::example_node_a()
            .service_cidr
            .contains(Ipv4Addr::new(f[30], f[31], f[32], f[33]))
    };
    // The same frames led by one that is not to a Service.
    let mut trailing = led.clone();
    let other = trailing.iter().position(|f| !to_service(f)).unwrap();
    trailing.rotate_left(other);
    assert!(to_service(&led[0]) && !to_service(&trailing[0]));
    let (mut fast, mut slow) = pair();
    for warmed in [false, true] {
        if warmed {
            start_flows(&mut fast, &mut slow).unwrap();
        }
        for (burst, prefetches) in [(&led, true), (&trailing, false)] {
            let mut pkts: Vec<Hinted> = burst
                .iter()
                .map(|f| Hinted(HeapBuf::from_frame(f)))
                .collect();
            let mut out = vec![Disposition::Drop(DropReason::Runt); burst.len()];
            let before = HINTS.with(|h| h.get());
            fast.p
                .process(Ingress::Pod(POD_A_PORT), &mut pkts, &mut out, fast.now);
            let hints = HINTS.with(|h| h.get()) - before;
            assert_eq!(hints > 0, prefetches, "{hints} hints");
            let f: Vec<(Disposition, Vec<u8>)> = out
                .into_iter()
                .zip(pkts.iter().map(|p| p.data().to_vec()))
                .collect();
            assert_eq!(f, slow.run_burst(Ingress::Pod(POD_A_PORT), burst));
            assert_eq!(fast.counters(), slow.counters());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn mutated_frames_get_the_same_answer_with_and_without_lanes(
        warm in any::<bool>(),
        which in 0usize..16,
        flips in proptest::collection::vec(
            (
                any::<bool>(),
                0usize..110,
                prop_oneof![1u8..=16, Just(0x20), Just(0x40), Just(0x80), any::<u8>()],
            ),
            0..4,
        ),
        fix in any::<bool>(),
        cut in proptest::option::of(0usize..140),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let (mut fast, mut slow) = pair();
        let frames = frames();
        if warm {
            // Pod A becomes NATed flows' client (local, remote and host-network backends).
            let (ing, q) = &frames[5];
            same(&mut fast, &mut slow, *ing, q)?;
            start_flows(&mut fast, &mut slow)?;
        }
        let (ing, mut f) = frames[which].clone();
        for (hot, pos, x) in flips {
            let pos = if hot { HOT[pos % HOT.len()] } else { pos };
            if pos < f.len() {
                f[pos] ^= x;
            }
        }
        if fix {
            refill(&mut f, 14);
            if ing == Ingress::Uplink {
                refill(&mut f, 64);
            }
        }
        if let Some(c) = cut {
            f.truncate(c.min(f.len()));
        }
        f.extend_from_slice(&tail);
        same(&mut fast, &mut slow, ing, &f)?;
        // And the unmutated frame after it.
        same(&mut fast, &mut slow, ing, &frames[which].1)?;
    }
}
