//! Every path of the brief's data path, fed exact bytes, checked against exact expected bytes.
//! Expected frames are built from scratch by the `Repr` builders (full checksums), so they also
//! prove the pipeline's incremental checksum updates.

mod common;

use common::*;
use core::net::Ipv4Addr;
use fastpath::counters::{Disposition, DropReason, Event};
use fastpath::fixtures::*;
use fastpath::pipeline::Ingress;
use fastpath::tables::services::{EndpointSpec, EndpointState, ServiceSpec};
use fastpath::tables::NodeConfig;
use fastpath::update::Update;
use fastpath::wire::arp::op;
use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::ipproto;
use fastpath::wire::tcp::flags as tf;

const GW_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

fn node_a_cfg() -> NodeConfig {
    NodeConfig::example_node_a()
}
fn node_b_cfg() -> NodeConfig {
    NodeConfig::example_node_b()
}

/// Outer addresses of a frame node A sends to node B.
fn outer_a_to_b() -> Addrs {
    let (a, b) = (node_a_cfg(), node_b_cfg());
    Addrs::new(a.underlay_mac, b.underlay_mac, a.underlay_ip, b.underlay_ip)
}

/// Outer addresses of a frame node B sends to node A.
fn outer_b_to_a() -> Addrs {
    let (a, b) = (node_a_cfg(), node_b_cfg());
    Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip)
}

/// Asserts that `wire` is `inner` encapsulated as podlane sends it (VNI 1, no outer UDP
/// checksum) between `outer`'s addresses, whatever source port the flow hash chose.
fn assert_tunnelled(wire: &[u8], outer: &Addrs, inner: &[u8]) {
    assert_bytes(
        wire,
        &frame::vxlan_frame(outer, outer_sport(wire), 1, inner, false),
    );
}

#[test]
fn local_pod_to_pod_rewrites_macs_and_ttl() {
    let mut n = Node::a();
    let input = frame::udp_frame(&pod_a_to(POD_B_IP), 40000, 7777, b"hello pod b");
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    let want = frame::udp_frame(
        &with(pod_a_to(POD_B_IP), gw_a(), POD_B_MAC, 63),
        40000,
        7777,
        b"hello pod b",
    );
    assert_bytes(&out, &want);
    assert_eq!(n.counters().event_count(Event::TxPod), 1);
}

#[test]
fn padding_is_not_forwarded() {
    let mut n = Node::a();
    let mut input = frame::udp_frame(&pod_a_to(POD_B_IP), 1, 2, b"x");
    frame::pad_to_min(&mut input);
    assert_eq!(input.len(), 60);
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    assert_bytes(
        &out,
        &frame::udp_frame(&with(pod_a_to(POD_B_IP), gw_a(), POD_B_MAC, 63), 1, 2, b"x"),
    );
}

#[test]
fn cross_node_encap_exact_outer_header() {
    let mut n = Node::a();
    let payload = b"to pod c";
    let input = frame::udp_frame(&pod_a_to(POD_C_IP), 40000, 7777, payload);
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(d, Disposition::ToUplink);
    let sport = outer_sport(&out);
    assert!(
        (49152..=65535).contains(&sport),
        "RFC 7348 source port range: {sport}"
    );
    let (a, b) = (node_a_cfg(), node_b_cfg());
    let inner = frame::udp_frame(
        &with(pod_a_to(POD_C_IP), a.vtep_mac, b.vtep_mac, 63),
        40000,
        7777,
        payload,
    );
    let want = frame::vxlan_frame(&outer_a_to_b(), sport, 1, &inner, false);
    assert_bytes(&out, &want);
    // The outer header, field by field.
    #[rustfmt::skip]
    let head: [u8; 50] = [
        0x02, 0x00, 0x0a, 0x01, 0x00, 0x0b,  0x02, 0x00, 0x0a, 0x01, 0x00, 0x0a,  0x08, 0x00, // eth B <- A
        0x45, 0x00, 0x00, 0x56,  0x00, 0x00, 0x40, 0x00,  0x40, 0x11, out[24], out[25],         // IPv4 len 86, DF, TTL 64, UDP
        10, 1, 0, 10,  10, 1, 0, 11,                                                              // 10.1.0.10 -> 10.1.0.11
        (sport >> 8) as u8, sport as u8,  0x12, 0xb5,  0x00, 0x42,  0x00, 0x00,                // UDP -> 4789, len 66, csum 0
        0x08, 0x00, 0x00, 0x00,  0x00, 0x00, 0x01, 0x00,                                         // VXLAN I flag, VNI 1
    ];
    assert_bytes(&out[..50], &head);
    let csum = fastpath::wire::checksum::checksum(&out[14..34]);
    assert_eq!(csum, 0, "outer IPv4 header checksum verifies");
    // Same flow, same source port; another flow, (almost surely) another.
    let (_, again) = n.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(outer_sport(&again), sport);
    let other = frame::udp_frame(&pod_a_to(POD_C_IP), 40001, 7777, payload);
    let (_, o2) = n.run(Ingress::Pod(POD_A_PORT), &other);
    assert_ne!(outer_sport(&o2), sport);
    assert_eq!(n.counters().event_count(Event::Encap), 3);
}

#[test]
fn decap_delivers_to_local_pod() {
    let mut n = Node::b();
    let (a, b) = (node_a_cfg(), node_b_cfg());
    let inner = frame::udp_frame(
        &with(pod_a_to(POD_C_IP), a.vtep_mac, b.vtep_mac, 63),
        40000,
        7777,
        b"hi",
    );
    // As a Linux peer sends it: non-zero outer UDP checksum.
    let input = frame::vxlan_frame(&outer_a_to_b(), 50000, 1, &inner, true);
    let (d, out) = n.run(Ingress::Uplink, &input);
    assert_eq!(d, Disposition::ToPod(POD_C_PORT));
    let want = frame::udp_frame(
        &with(pod_a_to(POD_C_IP), gw_b(), POD_C_MAC, 62),
        40000,
        7777,
        b"hi",
    );
    assert_bytes(&out, &want);
    // And with a zero outer checksum (as we send it).
    let input0 = frame::vxlan_frame(&outer_a_to_b(), 50000, 1, &inner, false);
    let (d, out) = n.run(Ingress::Uplink, &input0);
    assert_eq!(d, Disposition::ToPod(POD_C_PORT));
    assert_bytes(&out, &want);
    assert_eq!(n.counters().event_count(Event::Decap), 2);
}

#[test]
fn encap_then_decap_round_trip_between_two_nodes() {
    let mut na = Node::a();
    let mut nb = Node::b();
    let input = frame::tcp_frame(&pod_a_to(POD_C_IP), 33333, 80, 1, 0, tf::SYN, b"");
    let (d, wire) = na.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(d, Disposition::ToUplink);
    let (d, out) = nb.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToPod(POD_C_PORT));
    let want = frame::tcp_frame(
        &with(pod_a_to(POD_C_IP), gw_b(), POD_C_MAC, 62),
        33333,
        80,
        1,
        0,
        tf::SYN,
        b"",
    );
    assert_bytes(&out, &want);
}

#[test]
fn vxlan_checks_drop_bad_frames() {
    let (a, b) = (node_a_cfg(), node_b_cfg());
    let inner = frame::udp_frame(
        &with(pod_a_to(POD_C_IP), a.vtep_mac, b.vtep_mac, 63),
        1,
        2,
        b"x",
    );
    let good = frame::vxlan_frame(&outer_a_to_b(), 50000, 1, &inner, true);
    let mut n = Node::b();
    // Wrong outer UDP checksum.
    let mut bad = good.clone();
    let c = u16::from_be_bytes([bad[40], bad[41]]) ^ 0x0101;
    bad[40..42].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        n.run(Ingress::Uplink, &bad).0,
        Disposition::Drop(DropReason::VxlanUdpChecksum)
    );
    // I flag clear.
    let nocs = frame::vxlan_frame(&outer_a_to_b(), 50000, 1, &inner, false);
    let mut bad = nocs.clone();
    bad[42] = 0x00;
    assert_eq!(
        n.run(Ingress::Uplink, &bad).0,
        Disposition::Drop(DropReason::VxlanFlags)
    );
    // Reserved bits are ignored on receipt (RFC 7348 §5).
    let mut ok = nocs.clone();
    ok[42] = 0x08 | 0x80;
    ok[43] = 0xff;
    ok[49] = 0xff;
    assert_eq!(
        n.run(Ingress::Uplink, &ok).0,
        Disposition::ToPod(POD_C_PORT)
    );
    // Wrong VNI.
    let bad = frame::vxlan_frame(&outer_a_to_b(), 50000, 2, &inner, false);
    assert_eq!(
        n.run(Ingress::Uplink, &bad).0,
        Disposition::Drop(DropReason::VxlanVni)
    );
    // Unknown source VTEP.
    let mut stranger = outer_a_to_b();
    stranger.src_ip = Ipv4Addr::new(10, 1, 0, 77);
    let bad = frame::vxlan_frame(&stranger, 50000, 1, &inner, false);
    assert_eq!(
        n.run(Ingress::Uplink, &bad).0,
        Disposition::Drop(DropReason::VxlanUnknownVtep)
    );
    // Inner frame not for our VTEP MAC (Linux drops it too).
    let wrong = frame::udp_frame(
        &with(pod_a_to(POD_C_IP), a.vtep_mac, POD_C_MAC, 63),
        1,
        2,
        b"x",
    );
    let bad = frame::vxlan_frame(&outer_a_to_b(), 50000, 1, &wrong, false);
    assert_eq!(
        n.run(Ingress::Uplink, &bad).0,
        Disposition::Drop(DropReason::VxlanInner)
    );
    // Inner packet for a pod this node does not have.
    let ghost = frame::udp_frame(
        &with(
            pod_a_to(Ipv4Addr::new(10, 244, 2, 77)),
            a.vtep_mac,
            b.vtep_mac,
            63,
        ),
        1,
        2,
        b"x",
    );
    let bad = frame::vxlan_frame(&outer_a_to_b(), 50000, 1, &ghost, false);
    assert_eq!(
        n.run(Ingress::Uplink, &bad).0,
        Disposition::Drop(DropReason::NoLocalPod)
    );
    for r in [
        DropReason::VxlanUdpChecksum,
        DropReason::VxlanFlags,
        DropReason::VxlanVni,
        DropReason::VxlanUnknownVtep,
        DropReason::VxlanInner,
        DropReason::NoLocalPod,
    ] {
        assert_eq!(n.drops(r), 1, "{r:?}");
    }
}

#[test]
fn proxy_arp_for_gateway_and_any_address() {
    let mut n = Node::a();
    for target in [
        GW_A,
        POD_B_IP,
        Ipv4Addr::new(10, 244, 2, 2),
        Ipv4Addr::new(8, 8, 8, 8),
    ] {
        let req = frame::arp_frame(
            fastpath::wire::MacAddr::BROADCAST,
            op::REQUEST,
            POD_A_MAC,
            POD_A_IP,
            fastpath::wire::MacAddr::ZERO,
            target,
        );
        let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &req);
        assert_eq!(d, Disposition::ToPod(POD_A_PORT));
        let mut want = frame::arp_frame(POD_A_MAC, op::REPLY, gw_a(), target, POD_A_MAC, POD_A_IP);
        want[6..12].copy_from_slice(gw_a().as_bytes());
        assert_bytes(&out, &want);
    }
    assert_eq!(n.counters().event_count(Event::ArpReplied), 4);
    // Probes and announcements for the pod's own address get no answer.
    let probe = frame::arp_frame(
        fastpath::wire::MacAddr::BROADCAST,
        op::REQUEST,
        POD_A_MAC,
        Ipv4Addr::UNSPECIFIED,
        fastpath::wire::MacAddr::ZERO,
        POD_A_IP,
    );
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &probe).0,
        Disposition::Drop(DropReason::ArpIgnored)
    );
    let announce = frame::arp_frame(
        fastpath::wire::MacAddr::BROADCAST,
        op::REQUEST,
        POD_A_MAC,
        POD_A_IP,
        fastpath::wire::MacAddr::ZERO,
        POD_A_IP,
    );
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &announce).0,
        Disposition::Drop(DropReason::ArpIgnored)
    );
    // A spoofed sender IP is refused.
    let spoof = frame::arp_frame(
        fastpath::wire::MacAddr::BROADCAST,
        op::REQUEST,
        POD_A_MAC,
        POD_B_IP,
        fastpath::wire::MacAddr::ZERO,
        GW_A,
    );
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &spoof).0,
        Disposition::Drop(DropReason::SpoofedIp)
    );
    // Wrong lengths.
    let mut bad = frame::arp_frame(
        fastpath::wire::MacAddr::BROADCAST,
        op::REQUEST,
        POD_A_MAC,
        POD_A_IP,
        fastpath::wire::MacAddr::ZERO,
        GW_A,
    );
    bad[14 + 4] = 8;
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &bad).0,
        Disposition::Drop(DropReason::ArpMalformed)
    );
    let short = &frame::arp_frame(
        fastpath::wire::MacAddr::BROADCAST,
        op::REQUEST,
        POD_A_MAC,
        POD_A_IP,
        fastpath::wire::MacAddr::ZERO,
        GW_A,
    )[..14 + 20];
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), short).0,
        Disposition::Drop(DropReason::ArpMalformed)
    );
}

#[test]
fn arp_for_node_ip_on_uplink() {
    let mut n = Node::a();
    let a = node_a_cfg();
    let req = frame::arp_frame(
        fastpath::wire::MacAddr::BROADCAST,
        op::REQUEST,
        EXTERNAL_MAC,
        EXTERNAL_IP,
        fastpath::wire::MacAddr::ZERO,
        a.underlay_ip,
    );
    let (d, out) = n.run(Ingress::Uplink, &req);
    assert_eq!(d, Disposition::ToUplink);
    let mut want = frame::arp_frame(
        EXTERNAL_MAC,
        op::REPLY,
        a.underlay_mac,
        a.underlay_ip,
        EXTERNAL_MAC,
        EXTERNAL_IP,
    );
    want[6..12].copy_from_slice(a.underlay_mac.as_bytes());
    assert_bytes(&out, &want);
    // ARP for someone else on the underlay is the kernel's business.
    let other = frame::arp_frame(
        fastpath::wire::MacAddr::BROADCAST,
        op::REQUEST,
        EXTERNAL_MAC,
        EXTERNAL_IP,
        fastpath::wire::MacAddr::ZERO,
        Ipv4Addr::new(10, 1, 0, 1),
    );
    assert_eq!(
        n.run(Ingress::Uplink, &other),
        (Disposition::ToHost, other.clone())
    );
}

#[test]
fn anti_spoofing() {
    let mut n = Node::a();
    let mut a = pod_a_to(POD_B_IP);
    a.src_mac = POD_B_MAC;
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &frame::udp_frame(&a, 1, 2, b"x"))
            .0,
        Disposition::Drop(DropReason::SpoofedMac)
    );
    let mut a = pod_a_to(POD_B_IP);
    a.src_ip = Ipv4Addr::new(10, 244, 1, 99);
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &frame::udp_frame(&a, 1, 2, b"x"))
            .0,
        Disposition::Drop(DropReason::SpoofedIp)
    );
    assert_eq!(
        n.run(
            Ingress::Pod(7),
            &frame::udp_frame(&pod_a_to(POD_B_IP), 1, 2, b"x")
        )
        .0,
        Disposition::Drop(DropReason::UnknownPort)
    );
    assert_eq!(
        n.drops(DropReason::SpoofedMac)
            + n.drops(DropReason::SpoofedIp)
            + n.drops(DropReason::UnknownPort),
        3
    );
}

/// A pod pings the gateway and the node's VTEP address (the pod CIDR's network address, which a
/// Flannel node's `flannel.1` holds): both answer.
#[test]
fn gateway_and_vtep_address_answer_ping() {
    let mut n = Node::a();
    for (seq, addr) in [(7, GW_A), (8, node_a_cfg().vtep_ip())] {
        let req = frame::icmp_echo_frame(&pod_a_to(addr), true, 0x1234, seq, b"abcdefgh");
        let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &req);
        assert_eq!(d, Disposition::ToPod(POD_A_PORT));
        let want = frame::icmp_echo_frame(
            &Addrs::new(gw_a(), POD_A_MAC, addr, POD_A_IP),
            false,
            0x1234,
            seq,
            b"abcdefgh",
        );
        assert_bytes(&out, &want);
    }
}

/// Pod C on node B pings node A's gateway and VTEP address: node A answers through the tunnel
/// (inner TTL 64, as the node's own packet), and node B delivers the reply to pod C — as a
/// Flannel node's `cni0` and `flannel.1` answer other nodes' pods.
#[test]
fn a_remote_pod_gets_answers_from_the_gateway_and_vtep_address() {
    let (a, b) = (node_a_cfg(), node_b_cfg());
    let (mut na, mut nb) = (Node::a(), Node::b());
    for (seq, dst) in [(1, GW_A), (2, a.vtep_ip())] {
        let req = frame::icmp_echo_frame(
            &Addrs::new(POD_C_MAC, gw_b(), POD_C_IP, dst),
            true,
            0x77,
            seq,
            b"ping from node B",
        );
        let (d, wire) = nb.run(Ingress::Pod(POD_C_PORT), &req);
        assert_eq!(d, Disposition::ToUplink);
        let (d, reply) = na.run(Ingress::Uplink, &wire);
        assert_eq!(d, Disposition::ToUplink, "to {dst}");
        let inner = frame::icmp_echo_frame(
            &Addrs::new(a.vtep_mac, b.vtep_mac, dst, POD_C_IP),
            false,
            0x77,
            seq,
            b"ping from node B",
        );
        assert_tunnelled(&reply, &outer_a_to_b(), &inner);
        let (d, out) = nb.run(Ingress::Uplink, &reply);
        assert_eq!(d, Disposition::ToPod(POD_C_PORT));
        let want = frame::icmp_echo_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(gw_b(), POD_C_MAC, dst, POD_C_IP)
            },
            false,
            0x77,
            seq,
            b"ping from node B",
        );
        assert_bytes(&out, &want);
    }
    assert_eq!(na.counters().event_count(Event::IcmpEchoReplied), 2);
}

/// The node kernel of node A reaches pod C on node B from its VTEP address, as a Flannel node's
/// kernel does from `flannel.1`'s (the source a node with strict reverse-path filtering takes
/// from its tunnel): the packet is tunnelled as it came, and pod C's answer, through the tunnel
/// to the VTEP address, goes to node A's kernel, untouched but for its Ethernet header. A local
/// pod's packet to the VTEP address goes to the kernel too; only echo requests are answered by
/// the fast path (above).
#[test]
fn the_node_reaches_another_nodes_pod_from_its_vtep_address() {
    let (a, b) = (node_a_cfg(), node_b_cfg());
    let (mut na, mut nb) = (Node::a(), Node::b());
    let vtep = a.vtep_ip();
    let syn = frame::tcp_frame(
        &Addrs::new(a.host_mac, gw_a(), vtep, POD_C_IP),
        41000,
        8080,
        1,
        0,
        tf::SYN,
        b"",
    );
    let (d, wire) = na.run(Ingress::Host, &syn);
    assert_eq!(d, Disposition::ToUplink);
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(a.vtep_mac, b.vtep_mac, vtep, POD_C_IP)
        },
        41000,
        8080,
        1,
        0,
        tf::SYN,
        b"",
    );
    assert_tunnelled(&wire, &outer_a_to_b(), &inner);
    let (d, out) = nb.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToPod(POD_C_PORT));
    assert_bytes(
        &out,
        &frame::tcp_frame(
            &Addrs {
                ttl: 62,
                ..Addrs::new(gw_b(), POD_C_MAC, vtep, POD_C_IP)
            },
            41000,
            8080,
            1,
            0,
            tf::SYN,
            b"",
        ),
    );
    // Pod C answers: through the tunnel to node A, and there to the kernel.
    let synack = |src_mac, dst_mac, ttl| {
        frame::tcp_frame(
            &Addrs {
                ttl,
                ..Addrs::new(src_mac, dst_mac, POD_C_IP, vtep)
            },
            8080,
            41000,
            7,
            2,
            tf::SYN | tf::ACK,
            b"",
        )
    };
    let (d, wire) = nb.run(Ingress::Pod(POD_C_PORT), &synack(POD_C_MAC, gw_b(), 64));
    assert_eq!(d, Disposition::ToUplink);
    assert_tunnelled(&wire, &outer_b_to_a(), &synack(b.vtep_mac, a.vtep_mac, 63));
    let (d, out) = na.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToHost);
    assert_bytes(&out, &synack(gw_a(), a.host_mac, 63));
    // A UDP datagram and an echo reply to the VTEP address: the kernel's too.
    let udp = frame::udp_frame(
        &Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, vtep),
        53,
        41001,
        b"answer",
    );
    let echo_reply = frame::icmp_echo_frame(
        &Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, vtep),
        false,
        0x42,
        1,
        b"pong",
    );
    for inner in [udp, echo_reply] {
        let wire = frame::vxlan_frame(&outer_b_to_a(), 49999, 1, &inner, false);
        let (d, out) = na.run(Ingress::Uplink, &wire);
        assert_eq!(d, Disposition::ToHost);
        let mut want = inner.clone();
        want[0..6].copy_from_slice(a.host_mac.as_bytes());
        want[6..12].copy_from_slice(gw_a().as_bytes());
        assert_bytes(&out, &want);
    }
    // A local pod's TCP to the VTEP address: the kernel's, as on a Flannel node.
    let tcp = frame::tcp_frame(&pod_a_to(vtep), 40000, 22, 1, 0, tf::SYN, b"");
    let (d, out) = na.run(Ingress::Pod(POD_A_PORT), &tcp);
    assert_eq!(d, Disposition::ToHost);
    let mut want = tcp.clone();
    want[0..6].copy_from_slice(a.host_mac.as_bytes());
    want[6..12].copy_from_slice(gw_a().as_bytes());
    assert_bytes(&out, &want);
}

#[test]
fn ttl_expired_is_dropped() {
    let mut n = Node::a();
    let mut a = pod_a_to(POD_B_IP);
    a.ttl = 1;
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &frame::udp_frame(&a, 1, 2, b"x"))
            .0,
        Disposition::Drop(DropReason::TtlExpired)
    );
    let mut a = pod_a_to(POD_C_IP);
    a.ttl = 1;
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &frame::udp_frame(&a, 1, 2, b"x"))
            .0,
        Disposition::Drop(DropReason::TtlExpired)
    );
}

#[test]
fn too_big_for_the_tunnel_gets_icmp_frag_needed() {
    let mut n = Node::a();
    // 1451-byte IP packet: one byte over the pod MTU of 1450.
    let payload = vec![0x5a; 1451 - 28];
    let input = frame::udp_frame(&pod_a_to(POD_C_IP), 40000, 7777, &payload);
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    // Type 3 code 4, next-hop MTU 1450, quoting the IP header and 8 bytes.
    let mut icmp = vec![3, 4, 0, 0, 0, 0, (1450u16 >> 8) as u8, 1450u16 as u8];
    icmp.extend_from_slice(&input[14..14 + 28]);
    let c = fastpath::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut a = Addrs::new(gw_a(), POD_A_MAC, GW_A, POD_A_IP);
    a.dont_frag = false;
    let mut want = frame::ipv4_frame(&a, 1, &icmp);
    want[15] = 0xc0; // DSCP CS6
    let c = {
        want[24] = 0;
        want[25] = 0;
        fastpath::wire::checksum::checksum(&want[14..34])
    };
    want[24..26].copy_from_slice(&c.to_be_bytes());
    assert_bytes(&out, &want);
    assert_eq!(n.counters().event_count(Event::IcmpFragNeededSent), 1);
    // Exactly the pod MTU goes through.
    let fits = frame::udp_frame(&pod_a_to(POD_C_IP), 40000, 7777, &payload[1..]);
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &fits);
    assert_eq!(d, Disposition::ToUplink);
    assert_eq!(out.len(), 14 + 1500);
    // Without DF: a counted drop (fragmenting is not done here).
    let mut nodf = pod_a_to(POD_C_IP);
    nodf.dont_frag = false;
    let big = frame::udp_frame(&nodf, 40000, 7777, &payload);
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &big).0,
        Disposition::Drop(DropReason::TooBig)
    );
}

/// The same for a Service flow (DNAT to pod C, then too big for the tunnel): the quote is the
/// packet as the pod sent it, to the Service address, so its path MTU is learned for that.
#[test]
fn frag_needed_about_a_service_flow_quotes_the_service_address() {
    let mut n = Node::a();
    set_endpoints(&mut n, &dns_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let input = frame::udp_frame(&pod_a_to(DNS_VIP), 40000, 53, &vec![0x5a; 1451 - 28]);
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let mut icmp = vec![3, 4, 0, 0, 0, 0, (1450u16 >> 8) as u8, 1450u16 as u8];
    icmp.extend_from_slice(&input[14..14 + 28]);
    let c = fastpath::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(&out[34..], &icmp[..]);
    assert_eq!(&out[26..34], &[10, 244, 1, 1, 10, 244, 1, 2]);
    assert_eq!(fastpath::wire::checksum::checksum(&out[14..34]), 0);
    assert_eq!(n.counters().event_count(Event::IcmpFragNeededSent), 1);
    assert_eq!(n.counters().event_count(Event::IcmpErrorNated), 1);
    // TCP: the 8 quoted bytes stop short of the TCP checksum; the ports are translated alone.
    set_endpoints(&mut n, &web_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let input = frame::tcp_frame(
        &pod_a_to(WEB_VIP),
        40001,
        80,
        1,
        0,
        tf::ACK,
        &vec![0x5a; 1451 - 40],
    );
    let syn = frame::tcp_frame(&pod_a_to(WEB_VIP), 40001, 80, 0, 0, tf::SYN, b"");
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &syn).0,
        Disposition::ToUplink
    );
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let mut icmp = vec![3, 4, 0, 0, 0, 0, (1450u16 >> 8) as u8, 1450u16 as u8];
    icmp.extend_from_slice(&input[14..14 + 28]);
    let c = fastpath::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(&out[34..], &icmp[..]);
    assert_eq!(n.counters().event_count(Event::IcmpErrorNated), 2);
}

#[test]
fn host_path() {
    let mut n = Node::a();
    let a = node_a_cfg();
    // ssh to the node from the underlay: to the kernel, untouched.
    let ssh = frame::tcp_frame(
        &Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip),
        50000,
        22,
        1,
        0,
        tf::SYN,
        b"",
    );
    assert_eq!(
        n.run(Ingress::Uplink, &ssh),
        (Disposition::ToHost, ssh.clone())
    );
    // The kernel's answer: out of the uplink, untouched.
    let back = frame::tcp_frame(
        &Addrs::new(a.underlay_mac, EXTERNAL_MAC, a.underlay_ip, EXTERNAL_IP),
        22,
        50000,
        1,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    assert_eq!(
        n.run(Ingress::Host, &back),
        (Disposition::ToUplink, back.clone())
    );
    // A pod talking to its node: to the kernel, addressed to the host-path MAC.
    let input = frame::tcp_frame(&pod_a_to(a.underlay_ip), 40000, 10250, 1, 0, tf::SYN, b"");
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &input);
    assert_eq!(d, Disposition::ToHost);
    assert_bytes(
        &out,
        &frame::tcp_frame(
            &with(pod_a_to(a.underlay_ip), gw_a(), a.host_mac, 64),
            40000,
            10250,
            1,
            0,
            tf::SYN,
            b"",
        ),
    );
    // The kernel reaching a pod (kubelet probes): delivered.
    let probe = frame::tcp_frame(
        &Addrs::new(a.host_mac, gw_a(), a.underlay_ip, POD_A_IP),
        10250,
        8080,
        1,
        0,
        tf::SYN,
        b"",
    );
    let (d, out) = n.run(Ingress::Host, &probe);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    assert_bytes(
        &out,
        &frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(gw_a(), POD_A_MAC, a.underlay_ip, POD_A_IP)
            },
            10250,
            8080,
            1,
            0,
            tf::SYN,
            b"",
        ),
    );
    // Unknown destinations go to the host path by default...
    let out_of_cluster = frame::udp_frame(&pod_a_to(Ipv4Addr::new(192, 0, 2, 1)), 1, 53, b"q");
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &out_of_cluster).0,
        Disposition::ToHost
    );
    // ... or are dropped when configured so.
    let mut cfg = node_a_cfg();
    cfg.unknown_destination = fastpath::tables::UnknownDestination::Drop;
    let mut w = fastpath::update::TableWriter::new(cfg, Default::default()).unwrap();
    w.apply(Update::Snapshot(node_a_state())).unwrap();
    let mut n2 = Node::new(w);
    assert_eq!(
        n2.run(Ingress::Pod(POD_A_PORT), &out_of_cluster).0,
        Disposition::Drop(DropReason::NoRoute)
    );
}

/// The node itself reaching a ClusterIP through the host path (host-network pods; the API
/// server reaching an aggregated API or a webhook by its Service), as kube-proxy serves it:
/// DNAT to any ready backend and SNAT — to the gateway address for a backend on this node, to
/// the VTEP address for a remote one — and the replies back to the host path, from the
/// Service's address, whatever source address the kernel chose.
#[test]
fn the_node_reaches_a_clusterip_through_the_host_path() {
    use fastpath::tables::conntrack::flags;
    let (a, b) = (node_a_cfg(), node_b_cfg());
    let from_host = |src: Ipv4Addr| Addrs::new(a.host_mac, gw_a(), src, WEB_VIP);
    let to_host = |dst: Ipv4Addr, ttl: u8| Addrs {
        ttl,
        ..Addrs::new(gw_a(), a.host_mac, WEB_VIP, dst)
    };
    // A local backend (pod B): from the gateway address.
    let mut n = Node::a();
    set_endpoints(&mut n, &web_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(&from_host(a.underlay_ip), 45000, 80, 1, 0, tf::SYN, b"");
    let (d, out) = n.run(Ingress::Host, &syn);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    let at_b = Addrs {
        ttl: 63,
        ..Addrs::new(gw_a(), POD_B_MAC, GW_A, POD_B_IP)
    };
    assert_bytes(
        &out,
        &frame::tcp_frame(&at_b, 45000, 8080, 1, 0, tf::SYN, b""),
    );
    let e = n.p.conntrack().iter().next().unwrap().1;
    assert_eq!(
        e.flags & (flags::SNAT | flags::HOST_CLIENT | flags::EXTERNAL_CLIENT),
        flags::SNAT | flags::HOST_CLIENT
    );
    let synack = frame::tcp_frame(
        &Addrs::new(POD_B_MAC, gw_a(), POD_B_IP, GW_A),
        8080,
        45000,
        9,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    let (d, out) = n.run(Ingress::Pod(POD_B_PORT), &synack);
    assert_eq!(d, Disposition::ToHost);
    assert_bytes(
        &out,
        &frame::tcp_frame(
            &to_host(a.underlay_ip, 64),
            80,
            45000,
            9,
            2,
            tf::SYN | tf::ACK,
            b"",
        ),
    );
    // The flow's next packet hits conntrack.
    let ack = frame::tcp_frame(&from_host(a.underlay_ip), 45000, 80, 2, 10, tf::ACK, b"GET");
    let (d, out) = n.run(Ingress::Host, &ack);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    assert_bytes(
        &out,
        &frame::tcp_frame(&at_b, 45000, 8080, 2, 10, tf::ACK, b"GET"),
    );
    let c = n.counters();
    assert_eq!(
        (
            c.event_count(Event::CtNew),
            c.event_count(Event::CtHitOrig),
            c.event_count(Event::CtHitReply)
        ),
        (1, 1, 1)
    );

    // A remote backend (pod C on node B): from the VTEP address, the reply through the tunnel
    // to the host path — even to a source address the node has on another interface, on a node
    // that drops traffic to unknown destinations.
    let mut cfg = node_a_cfg();
    cfg.unknown_destination = fastpath::tables::UnknownDestination::Drop;
    let mut w = fastpath::update::TableWriter::new(cfg, Default::default()).unwrap();
    w.apply(Update::Snapshot(node_a_state())).unwrap();
    let mut na = Node::new(w);
    let mut nb = Node::b();
    set_endpoints(&mut na, &web_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let mgmt = Ipv4Addr::new(192, 168, 5, 5);
    let q = frame::udp_frame(&from_host(mgmt), 46000, 80, b"ping?");
    // (The web Service serves TCP only: a UDP packet to it has no Service and is dropped.)
    assert_eq!(
        na.run(Ingress::Host, &q).0,
        Disposition::Drop(DropReason::NoRoute)
    );
    let syn = frame::tcp_frame(&from_host(mgmt), 46000, 80, 1, 0, tf::SYN, b"");
    let (d, wire) = na.run(Ingress::Host, &syn);
    assert_eq!(d, Disposition::ToUplink);
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(a.vtep_mac, b.vtep_mac, a.vtep_ip(), POD_C_IP)
        },
        46000,
        8080,
        1,
        0,
        tf::SYN,
        b"",
    );
    assert_tunnelled(&wire, &outer_a_to_b(), &inner);
    assert_eq!(
        nb.run(Ingress::Uplink, &wire).0,
        Disposition::ToPod(POD_C_PORT)
    );
    let synack = frame::tcp_frame(
        &Addrs::new(POD_C_MAC, gw_b(), POD_C_IP, a.vtep_ip()),
        8080,
        46000,
        9,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    let (d, wire2) = nb.run(Ingress::Pod(POD_C_PORT), &synack);
    assert_eq!(d, Disposition::ToUplink);
    let (d, out) = na.run(Ingress::Uplink, &wire2);
    assert_eq!(d, Disposition::ToHost);
    assert_bytes(
        &out,
        &frame::tcp_frame(&to_host(mgmt, 63), 80, 46000, 9, 2, tf::SYN | tf::ACK, b""),
    );

    // Nothing else in the Service CIDR: a port without a Service, a ping.
    let mut n = Node::a();
    let other = frame::tcp_frame(&from_host(a.underlay_ip), 45001, 81, 1, 0, tf::SYN, b"");
    assert_eq!(
        n.run(Ingress::Host, &other).0,
        Disposition::Drop(DropReason::NoRoute)
    );
    let ping = frame::icmp_echo_frame(&from_host(a.underlay_ip), true, 1, 1, b"");
    assert_eq!(
        n.run(Ingress::Host, &ping).0,
        Disposition::Drop(DropReason::NoRoute)
    );
    assert_eq!(n.p.conntrack().iter().count(), 0);
}

/// The node's kernel answering a Service's UDP reply with "port unreachable" (its socket was
/// closed): the error reaches the backend about the packet the backend sent, from the SNAT
/// address it knows.
#[test]
fn icmp_error_from_the_node_about_a_service_reply_reaches_the_backend() {
    let mut n = Node::a();
    let a = node_a_cfg();
    set_endpoints(&mut n, &dns_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let q = frame::udp_frame(
        &Addrs::new(a.host_mac, gw_a(), a.underlay_ip, DNS_VIP),
        47000,
        53,
        b"query",
    );
    assert_eq!(n.run(Ingress::Host, &q).0, Disposition::ToPod(POD_B_PORT));
    let answer = frame::udp_frame(
        &Addrs::new(POD_B_MAC, gw_a(), POD_B_IP, GW_A),
        5353,
        47000,
        b"answer",
    );
    let (d, at_host) = n.run(Ingress::Pod(POD_B_PORT), &answer);
    assert_eq!(d, Disposition::ToHost);
    let err = port_unreachable(
        &Addrs::new(a.host_mac, gw_a(), a.underlay_ip, DNS_VIP),
        &at_host[14..],
    );
    let (d, out) = n.run(Ingress::Host, &err);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    let want = port_unreachable(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_B_MAC, GW_A, POD_B_IP)
        },
        &answer[14..],
    );
    assert_bytes(&out, &want);
    assert_eq!(n.counters().event_count(Event::IcmpErrorNated), 1);
}

/// Restricts a Service to the given endpoints.
fn set_endpoints(n: &mut Node, svc: &ServiceSpec, eps: &[(Ipv4Addr, EndpointState)]) {
    let mut s = svc.clone();
    let port = s.endpoints[0].port;
    s.endpoints = eps
        .iter()
        .map(|&(ip, state)| EndpointSpec { ip, port, state })
        .collect();
    n.w.apply(Update::AddService(s)).unwrap();
}

fn dns_svc() -> ServiceSpec {
    services().into_iter().find(|s| s.frontend == DNS).unwrap()
}
fn web_svc() -> ServiceSpec {
    services().into_iter().find(|s| s.frontend == WEB).unwrap()
}

#[test]
fn clusterip_dnat_to_local_backend_and_reverse_nat() {
    let mut n = Node::a();
    set_endpoints(&mut n, &dns_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let q = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"query");
    let (d, out) = n.run(Ingress::Pod(POD_A_PORT), &q);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    let want = frame::udp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_B_MAC, POD_A_IP, POD_B_IP)
        },
        41000,
        5353,
        b"query",
    );
    assert_bytes(&out, &want);
    // The backend's answer comes back from the VIP.
    let r = frame::udp_frame(&pod_b_to(POD_A_IP), 5353, 41000, b"answer");
    let (d, out) = n.run(Ingress::Pod(POD_B_PORT), &r);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let want = frame::udp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_A_MAC, DNS_VIP, POD_A_IP)
        },
        53,
        41000,
        b"answer",
    );
    assert_bytes(&out, &want);
    let c = n.counters();
    assert_eq!(
        (
            c.event_count(Event::CtNew),
            c.event_count(Event::CtHitReply)
        ),
        (1, 1)
    );
}

#[test]
fn clusterip_dnat_to_remote_backend_with_reverse_nat_after_decap() {
    let mut na = Node::a();
    let mut nb = Node::b();
    set_endpoints(&mut na, &web_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(&pod_a_to(WEB_VIP), 42000, 80, 100, 0, tf::SYN, b"");
    let (d, wire) = na.run(Ingress::Pod(POD_A_PORT), &syn);
    assert_eq!(d, Disposition::ToUplink);
    let (a, b) = (node_a_cfg(), node_b_cfg());
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(a.vtep_mac, b.vtep_mac, POD_A_IP, POD_C_IP)
        },
        42000,
        8080,
        100,
        0,
        tf::SYN,
        b"",
    );
    assert_tunnelled(&wire, &outer_a_to_b(), &inner);
    // Node B delivers it to pod C unchanged but for MACs and TTL.
    let (d, at_c) = nb.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToPod(POD_C_PORT));
    assert_eq!(&at_c[26..34], &[10, 244, 1, 2, 10, 244, 2, 2]);
    // Pod C answers pod A directly; node B encapsulates to node A; node A reverse-NATs.
    let synack = frame::tcp_frame(
        &Addrs::new(POD_C_MAC, gw_b(), POD_C_IP, POD_A_IP),
        8080,
        42000,
        500,
        101,
        tf::SYN | tf::ACK,
        b"",
    );
    let (d, wire2) = nb.run(Ingress::Pod(POD_C_PORT), &synack);
    assert_eq!(d, Disposition::ToUplink);
    let inner2 = frame::tcp_frame(
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
    assert_tunnelled(&wire2, &outer_b_to_a(), &inner2);
    let (d, out) = na.run(Ingress::Uplink, &wire2);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
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
    assert_bytes(&out, &want);
    let e = na.p.conntrack().iter().next().unwrap().1;
    assert_eq!(e.state, fastpath::tables::conntrack::TcpState::Established);
}

#[test]
fn nodeport_to_local_backend_replies_from_node_ip() {
    let mut n = Node::a();
    set_endpoints(&mut n, &web_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let a = node_a_cfg();
    let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    let syn = frame::tcp_frame(&client, 51000, WEB_NODEPORT, 7, 0, tf::SYN, b"");
    let (d, out) = n.run(Ingress::Uplink, &syn);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    // Client IP preserved (local backend: no SNAT).
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_B_MAC, EXTERNAL_IP, POD_B_IP)
        },
        51000,
        8080,
        7,
        0,
        tf::SYN,
        b"",
    );
    assert_bytes(&out, &want);
    pod_b_to_external(&mut n, 51000, WEB_NODEPORT, tf::SYN | tf::ACK);
}

/// An external client's NodePort flow whose packets start arriving from another MAC (the
/// upstream router failed over to one with another address): its replies follow them, from the
/// next packet on.
#[test]
fn a_nodeport_flows_replies_follow_the_clients_mac() {
    let mut n = Node::a();
    set_endpoints(&mut n, &web_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let a = node_a_cfg();
    let from = |mac| Addrs::new(mac, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    let syn = frame::tcp_frame(&from(EXTERNAL_MAC), 51000, WEB_NODEPORT, 7, 0, tf::SYN, b"");
    assert_eq!(
        n.run(Ingress::Uplink, &syn).0,
        Disposition::ToPod(POD_B_PORT)
    );
    pod_b_to_external(&mut n, 51000, WEB_NODEPORT, tf::SYN | tf::ACK);
    // The same MAC again: nothing moves.
    let ack = frame::tcp_frame(
        &from(EXTERNAL_MAC),
        51000,
        WEB_NODEPORT,
        8,
        10,
        tf::ACK,
        b"",
    );
    assert_eq!(
        n.run(Ingress::Uplink, &ack).0,
        Disposition::ToPod(POD_B_PORT)
    );
    assert_eq!(n.counters().event_count(Event::CtClientMacMoved), 0);
    // The next packet from the standby router's MAC: delivered, and the answers go there.
    let standby = fastpath::wire::MacAddr([0x02, 0x00, 0x0a, 0x01, 0x00, 0x64]);
    let data = frame::tcp_frame(&from(standby), 51000, WEB_NODEPORT, 8, 10, tf::ACK, b"x");
    assert_eq!(
        n.run(Ingress::Uplink, &data).0,
        Disposition::ToPod(POD_B_PORT)
    );
    assert_eq!(n.counters().event_count(Event::CtClientMacMoved), 1);
    let seg = frame::tcp_frame(&pod_b_to(EXTERNAL_IP), 8080, 51000, 10, 9, tf::ACK, b"");
    let (d, out) = n.run(Ingress::Pod(POD_B_PORT), &seg);
    assert_eq!(d, Disposition::ToUplink);
    assert_bytes(
        &out,
        &frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(a.underlay_mac, standby, a.underlay_ip, EXTERNAL_IP)
            },
            WEB_NODEPORT,
            51000,
            10,
            9,
            tf::ACK,
            b"",
        ),
    );
}

/// The external client's SYN from port 51000 to node A's NodePort 30080 when pod C is the
/// endpoint: SNATed to node A's VTEP address and tunnelled to node B. Returns the wire frame.
fn external_syn_tunnelled_to_pod_c(na: &mut Node) -> Vec<u8> {
    let (a, b) = (node_a_cfg(), node_b_cfg());
    let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    let syn = frame::tcp_frame(&client, 51000, WEB_NODEPORT, 7, 0, tf::SYN, b"");
    let (d, wire) = na.run(Ingress::Uplink, &syn);
    assert_eq!(d, Disposition::ToUplink);
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(a.vtep_mac, b.vtep_mac, a.vtep_ip(), POD_C_IP)
        },
        51000,
        8080,
        7,
        0,
        tf::SYN,
        b"",
    );
    assert_tunnelled(&wire, &outer_a_to_b(), &inner);
    wire
}

#[test]
fn nodeport_to_remote_backend_snats_to_the_vtep_ip() {
    let mut na = Node::a();
    let mut nb = Node::b();
    set_endpoints(&mut na, &web_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let a = node_a_cfg();
    let wire = external_syn_tunnelled_to_pod_c(&mut na);
    let (d, _) = nb.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToPod(POD_C_PORT));
    // Pod C answers node A's VTEP address (10.244.1.0, in node A's pod CIDR): node B sends
    // that through the tunnel to node A, as a Flannel-wired Linux node would.
    assert_eq!(a.vtep_ip(), Ipv4Addr::new(10, 244, 1, 0));
    let synack = frame::tcp_frame(
        &Addrs::new(POD_C_MAC, gw_b(), POD_C_IP, a.vtep_ip()),
        8080,
        51000,
        9,
        8,
        tf::SYN | tf::ACK,
        b"",
    );
    let (d, wire2) = nb.run(Ingress::Pod(POD_C_PORT), &synack);
    assert_eq!(d, Disposition::ToUplink);
    assert_eq!(&wire2[26..34], &[10, 1, 0, 11, 10, 1, 0, 10]);
    // Node A reverses both NATs and answers the client from its NodePort.
    let (d, out) = na.run(Ingress::Uplink, &wire2);
    assert_eq!(d, Disposition::ToUplink);
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 62,
            ..Addrs::new(a.underlay_mac, EXTERNAL_MAC, a.underlay_ip, EXTERNAL_IP)
        },
        WEB_NODEPORT,
        51000,
        9,
        8,
        tf::SYN | tf::ACK,
        b"",
    );
    assert_bytes(&out, &want);
}

/// `externalTrafficPolicy: Local` (`node_port_local`): NodePort flows go to this node's
/// endpoints only, with the client's address kept; with only remote endpoints they are dropped
/// and counted, creating nothing, while the ClusterIP still reaches every endpoint.
#[test]
fn nodeport_local_policy_keeps_the_client_and_never_leaves_the_node() {
    let mut n = Node::a();
    let mut web = web_svc();
    web.node_port_local = true;
    let both = [
        (POD_B_IP, EndpointState::Ready),
        (POD_C_IP, EndpointState::Ready),
    ];
    set_endpoints(&mut n, &web, &both);
    let a = node_a_cfg();
    let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    for sport in 51000..51032 {
        let syn = frame::tcp_frame(&client, sport, WEB_NODEPORT, 7, 0, tf::SYN, b"");
        let (d, out) = n.run(Ingress::Uplink, &syn);
        assert_eq!(d, Disposition::ToPod(POD_B_PORT), "client port {sport}");
        let want = frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(gw_a(), POD_B_MAC, EXTERNAL_IP, POD_B_IP)
            },
            sport,
            8080,
            7,
            0,
            tf::SYN,
            b"",
        );
        assert_bytes(&out, &want);
    }
    // The ClusterIP keeps both endpoints: of 32 flows from pod A, some go through the tunnel.
    let mut ways = (0, 0);
    for sport in 40100..40132 {
        let syn = frame::tcp_frame(&pod_a_to(WEB_VIP), sport, 80, 0, 0, tf::SYN, b"");
        match n.run(Ingress::Pod(POD_A_PORT), &syn).0 {
            Disposition::ToPod(p) if p == POD_B_PORT => ways.0 += 1,
            Disposition::ToUplink => ways.1 += 1,
            d => panic!("{d:?}"),
        }
    }
    assert!(ways.0 > 0 && ways.1 > 0, "{ways:?}");
    // Only a remote endpoint left: a new NodePort flow is dropped (no SNAT to it, no state).
    set_endpoints(&mut n, &web, &both[1..]);
    let flows = n.p.conntrack().iter().count();
    let syn = frame::tcp_frame(&client, 52000, WEB_NODEPORT, 7, 0, tf::SYN, b"");
    let (d, _) = n.run(Ingress::Uplink, &syn);
    assert_eq!(d, Disposition::Drop(DropReason::NoLocalEndpoint));
    assert_eq!(n.drops(DropReason::NoLocalEndpoint), 1);
    assert_eq!(n.p.conntrack().iter().count(), flows);
    // No ready endpoint at all is the usual no_backend.
    set_endpoints(&mut n, &web, &[(POD_C_IP, EndpointState::Terminating)]);
    let (d, _) = n.run(Ingress::Uplink, &syn);
    assert_eq!(d, Disposition::Drop(DropReason::NoBackend));
    // Back to Cluster: the same frame goes to pod C, through the tunnel.
    web.node_port_local = false;
    set_endpoints(&mut n, &web, &both[1..]);
    let (d, _) = n.run(Ingress::Uplink, &syn);
    assert_eq!(d, Disposition::ToUplink);
}

/// A pod reaching a NodePort on its own node's address is served by its node, as kube-proxy
/// serves it: DNAT without SNAT (the pod's address is kept), any ready endpoint even under
/// `externalTrafficPolicy: Local` (kube-proxy's "pod traffic for external destinations" goes
/// the cluster-wide way), replies from the node's address and NodePort.
#[test]
fn a_pod_reaches_its_own_nodes_nodeport() {
    let (mut na, mut nb) = (Node::a(), Node::b());
    let (a, b) = (node_a_cfg(), node_b_cfg());
    set_endpoints(&mut na, &web_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(
        &pod_a_to(a.underlay_ip),
        41000,
        WEB_NODEPORT,
        1,
        0,
        tf::SYN,
        b"",
    );
    let (d, out) = na.run(Ingress::Pod(POD_A_PORT), &syn);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_B_MAC, POD_A_IP, POD_B_IP)
        },
        41000,
        8080,
        1,
        0,
        tf::SYN,
        b"",
    );
    assert_bytes(&out, &want);
    let synack = frame::tcp_frame(
        &pod_b_to(POD_A_IP),
        8080,
        41000,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    let (d, out) = na.run(Ingress::Pod(POD_B_PORT), &synack);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_A_MAC, a.underlay_ip, POD_A_IP)
        },
        WEB_NODEPORT,
        41000,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    assert_bytes(&out, &want);
    // The next packet of the flow (the pod lane declines it: not a ClusterIP) finds its entry.
    let ack = frame::tcp_frame(
        &pod_a_to(a.underlay_ip),
        41000,
        WEB_NODEPORT,
        2,
        6,
        tf::ACK,
        b"",
    );
    assert_eq!(
        na.run(Ingress::Pod(POD_A_PORT), &ack).0,
        Disposition::ToPod(POD_B_PORT)
    );
    assert_eq!(na.counters().event_count(Event::CtNew), 1);

    // Local policy with only a remote endpoint: still served, through the tunnel, unSNATed;
    // pod C's answer comes back to node A, which translates it back.
    let mut web = web_svc();
    web.node_port_local = true;
    set_endpoints(&mut na, &web, &[(POD_C_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(
        &pod_a_to(a.underlay_ip),
        41001,
        WEB_NODEPORT,
        1,
        1,
        tf::ACK,
        b"hi",
    );
    let (d, wire) = na.run(Ingress::Pod(POD_A_PORT), &syn);
    assert_eq!(d, Disposition::ToUplink);
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(a.vtep_mac, b.vtep_mac, POD_A_IP, POD_C_IP)
        },
        41001,
        8080,
        1,
        1,
        tf::ACK,
        b"hi",
    );
    assert_tunnelled(&wire, &outer_a_to_b(), &inner);
    assert_eq!(
        nb.run(Ingress::Uplink, &wire).0,
        Disposition::ToPod(POD_C_PORT)
    );
    let answer = frame::tcp_frame(
        &Addrs::new(POD_C_MAC, gw_b(), POD_C_IP, POD_A_IP),
        8080,
        41001,
        1,
        1,
        tf::ACK,
        b"yo",
    );
    let (d, wire2) = nb.run(Ingress::Pod(POD_C_PORT), &answer);
    assert_eq!(d, Disposition::ToUplink);
    let (d, out) = na.run(Ingress::Uplink, &wire2);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 62,
            ..Addrs::new(gw_a(), POD_A_MAC, a.underlay_ip, POD_A_IP)
        },
        WEB_NODEPORT,
        41001,
        1,
        1,
        tf::ACK,
        b"yo",
    );
    assert_bytes(&out, &want);

    // A NodePort-range port without a Service is the node's own: the host path, untranslated.
    let other = frame::udp_frame(&pod_a_to(a.underlay_ip), 41002, 30999, b"x");
    let (d, out) = na.run(Ingress::Pod(POD_A_PORT), &other);
    assert_eq!(d, Disposition::ToHost);
    assert_eq!(&out[26..38], &other[26..38]);
    // A port outside the range is the node's too.
    let other = frame::udp_frame(&pod_a_to(a.underlay_ip), 41003, 8080, b"x");
    assert_eq!(
        na.run(Ingress::Pod(POD_A_PORT), &other).0,
        Disposition::ToHost
    );
    let flows = na.p.conntrack().len();
    assert_eq!(flows, 2);
}

/// A pod reaching another node's NodePort: its node sends the packet through the tunnel (as
/// any packet to a node address), and the node it reaches serves it as it serves an external
/// client — its external policy applies — SNATed to that node's VTEP address so that the
/// backend's answer comes back to it, and answers the pod from its address and NodePort.
#[test]
fn a_pod_reaches_another_nodes_nodeport_through_the_tunnel() {
    let (mut na, mut nb) = (Node::a(), Node::b());
    let (a, b) = (node_a_cfg(), node_b_cfg());
    // Node B's only endpoint is its own pod C.
    set_endpoints(&mut nb, &web_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(
        &pod_a_to(b.underlay_ip),
        41000,
        WEB_NODEPORT,
        1,
        0,
        tf::SYN,
        b"",
    );
    let (d, wire) = na.run(Ingress::Pod(POD_A_PORT), &syn);
    assert_eq!(d, Disposition::ToUplink);
    assert_eq!(na.p.conntrack().len(), 0, "node A translates nothing");
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(a.vtep_mac, b.vtep_mac, POD_A_IP, b.underlay_ip)
        },
        41000,
        WEB_NODEPORT,
        1,
        0,
        tf::SYN,
        b"",
    );
    assert_tunnelled(&wire, &outer_a_to_b(), &inner);
    let (d, out) = nb.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToPod(POD_C_PORT));
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 62,
            ..Addrs::new(gw_b(), POD_C_MAC, b.vtep_ip(), POD_C_IP)
        },
        41000,
        8080,
        1,
        0,
        tf::SYN,
        b"",
    );
    assert_bytes(&out, &want);
    // Pod C answers node B's VTEP address; node B translates back and tunnels to node A.
    let synack = frame::tcp_frame(
        &Addrs::new(POD_C_MAC, gw_b(), POD_C_IP, b.vtep_ip()),
        8080,
        41000,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    let (d, wire2) = nb.run(Ingress::Pod(POD_C_PORT), &synack);
    assert_eq!(d, Disposition::ToUplink);
    let back = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, b.underlay_ip, POD_A_IP)
        },
        WEB_NODEPORT,
        41000,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    assert_tunnelled(&wire2, &outer_b_to_a(), &back);
    let (d, out) = na.run(Ingress::Uplink, &wire2);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 62,
            ..Addrs::new(gw_a(), POD_A_MAC, b.underlay_ip, POD_A_IP)
        },
        WEB_NODEPORT,
        41000,
        5,
        2,
        tf::SYN | tf::ACK,
        b"",
    );
    assert_bytes(&out, &want);

    // Cluster policy with the endpoint on node A (pod B): node B SNATs and tunnels to node
    // A; pod B's answer to node B's VTEP address goes back to node B, which translates it
    // back and tunnels it to pod A — through the tunnel twice, translated once.
    set_endpoints(&mut nb, &web_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(
        &pod_a_to(b.underlay_ip),
        41001,
        WEB_NODEPORT,
        1,
        1,
        tf::ACK,
        b"hi",
    );
    let (_, wire) = na.run(Ingress::Pod(POD_A_PORT), &syn);
    let (d, wire) = nb.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToUplink);
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 62,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, b.vtep_ip(), POD_B_IP)
        },
        41001,
        8080,
        1,
        1,
        tf::ACK,
        b"hi",
    );
    assert_tunnelled(&wire, &outer_b_to_a(), &inner);
    assert_eq!(
        na.run(Ingress::Uplink, &wire).0,
        Disposition::ToPod(POD_B_PORT)
    );
    let answer = frame::tcp_frame(&pod_b_to(b.vtep_ip()), 8080, 41001, 1, 1, tf::ACK, b"yo");
    let (d, wire) = na.run(Ingress::Pod(POD_B_PORT), &answer);
    assert_eq!(d, Disposition::ToUplink);
    let (d, wire) = nb.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToUplink);
    let inner = frame::tcp_frame(
        &Addrs {
            ttl: 62,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, b.underlay_ip, POD_A_IP)
        },
        WEB_NODEPORT,
        41001,
        1,
        1,
        tf::ACK,
        b"yo",
    );
    assert_tunnelled(&wire, &outer_b_to_a(), &inner);
    assert_eq!(
        na.run(Ingress::Uplink, &wire).0,
        Disposition::ToPod(POD_A_PORT)
    );

    // Local policy on node B with only node A's endpoint: dropped and counted at node B, as an
    // external client's flow would be.
    let mut web = web_svc();
    web.node_port_local = true;
    set_endpoints(&mut nb, &web, &[(POD_B_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(
        &pod_a_to(b.underlay_ip),
        41002,
        WEB_NODEPORT,
        1,
        1,
        tf::ACK,
        b"hi",
    );
    let (_, wire) = na.run(Ingress::Pod(POD_A_PORT), &syn);
    assert_eq!(
        nb.run(Ingress::Uplink, &wire).0,
        Disposition::Drop(DropReason::NoLocalEndpoint)
    );
    // A NodePort-range port without a Service: node B's host path, as before.
    let syn = frame::tcp_frame(&pod_a_to(b.underlay_ip), 41003, 30999, 1, 1, tf::ACK, b"hi");
    let (_, wire) = na.run(Ingress::Pod(POD_A_PORT), &syn);
    assert_eq!(nb.run(Ingress::Uplink, &wire).0, Disposition::ToHost);
}

#[test]
fn snat_port_collision_picks_another_port() {
    let mut na = Node::a();
    set_endpoints(&mut na, &web_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let a = node_a_cfg();
    // Two clients using the same source port: the second SNATed tuple would collide.
    let mut ports = Vec::new();
    for ip in [EXTERNAL_IP, Ipv4Addr::new(10, 1, 0, 98)] {
        let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, ip, a.underlay_ip);
        let syn = frame::tcp_frame(&client, 51000, WEB_NODEPORT, 7, 0, tf::SYN, b"");
        let (d, wire) = na.run(Ingress::Uplink, &syn);
        assert_eq!(d, Disposition::ToUplink);
        ports.push(u16::from_be_bytes([wire[84], wire[85]]));
    }
    assert_eq!(ports[0], 51000);
    assert_ne!(ports[1], 51000);
    assert!((32768..=60999).contains(&ports[1]));
    assert_eq!(na.counters().event_count(Event::SnatPortRewritten), 1);
}

/// Node A with `web` and `web-local` both on pod B only; the external client's SYN from
/// `sport` to `nodeport`, and what pod B receives (the client's address kept: no SNAT).
fn external_to_pod_b(n: &mut Node, sport: u16, nodeport: u16, seq: u32) -> Vec<u8> {
    let a = node_a_cfg();
    let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    let syn = frame::tcp_frame(&client, sport, nodeport, seq, 0, tf::SYN, b"");
    let (d, out) = n.run(Ingress::Uplink, &syn);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT), "{sport} → :{nodeport}");
    out
}

/// Pod B's segment to the client's `dport`, and what the client receives from `nodeport`.
fn pod_b_to_external(n: &mut Node, dport: u16, nodeport: u16, flags: u8) -> Vec<u8> {
    let seg = frame::tcp_frame(&pod_b_to(EXTERNAL_IP), 8080, dport, 9, 8, flags, b"");
    let (d, out) = n.run(Ingress::Pod(POD_B_PORT), &seg);
    assert_eq!(d, Disposition::ToUplink);
    let a = node_a_cfg();
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(a.underlay_mac, EXTERNAL_MAC, a.underlay_ip, EXTERNAL_IP)
        },
        nodeport,
        51000,
        9,
        8,
        flags,
        b"",
    );
    assert_bytes(&out, &want);
    out
}

fn node_with_web_and_web_local_on_pod_b() -> Node {
    let mut n = Node::a();
    set_endpoints(&mut n, &web_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    n.w.apply(Update::AddService(web_local_svc())).unwrap();
    n
}

/// What pod B receives of the external client's SYN from `sport` (the client's address kept).
fn syn_at_pod_b(sport: u16) -> Vec<u8> {
    frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_B_MAC, EXTERNAL_IP, POD_B_IP)
        },
        sport,
        8080,
        7,
        0,
        tf::SYN,
        b"",
    )
}

/// An external client that reached pod B through one NodePort comes back from the same source
/// port through another NodePort of pod B's (the lab's check 5 then 5b, which failed in CI this
/// way): neither flow is SNATed, so both have the reply tuple pod B:8080 → client:51000. Once
/// the first flow has closed, the new one takes its entry over; the client is never refused.
#[test]
fn a_client_port_reused_through_another_nodeport_takes_over_the_closed_flow() {
    let mut n = node_with_web_and_web_local_on_pod_b();
    let a = node_a_cfg();
    let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    assert_bytes(
        &external_to_pod_b(&mut n, 51000, WEB_NODEPORT, 7),
        &syn_at_pod_b(51000),
    );
    pod_b_to_external(&mut n, 51000, WEB_NODEPORT, tf::SYN | tf::ACK);
    // The server closes first (HTTP/1.0), the client follows.
    pod_b_to_external(&mut n, 51000, WEB_NODEPORT, tf::FIN | tf::ACK);
    let fin = frame::tcp_frame(&client, 51000, WEB_NODEPORT, 8, 10, tf::FIN | tf::ACK, b"");
    assert_eq!(
        n.run(Ingress::Uplink, &fin).0,
        Disposition::ToPod(POD_B_PORT)
    );
    let e = n.p.conntrack().iter().next().unwrap().1;
    assert_eq!(e.state, fastpath::tables::conntrack::TcpState::Closed);
    // A second later (the closed entry lasts 10 s), the same client port through NodePort
    // 30082.
    n.now += 1_000;
    assert_bytes(
        &external_to_pod_b(&mut n, 51000, WEB_LOCAL_NODEPORT, 7),
        &syn_at_pod_b(51000),
    );
    assert_eq!(n.counters().event_count(Event::CtClosedTakenOver), 1);
    assert_eq!(n.counters().event_count(Event::SnatPortRewritten), 0);
    assert_eq!(n.drops(DropReason::NatPortExhausted), 0);
    assert_eq!(n.p.conntrack().iter().count(), 1);
    // Pod B's answer leaves from the NodePort the client used this time.
    pod_b_to_external(&mut n, 51000, WEB_LOCAL_NODEPORT, tf::SYN | tf::ACK);
}

/// The same reuse while the first flow is still open (the client port in two connections at
/// once): the second keeps the client's address and gets another source port, in the SNAT
/// range, as Linux remaps a clashing port; both flows answer from their own NodePort.
#[test]
fn a_client_port_in_two_live_flows_to_one_backend_is_remapped() {
    let mut n = node_with_web_and_web_local_on_pod_b();
    external_to_pod_b(&mut n, 51000, WEB_NODEPORT, 7);
    pod_b_to_external(&mut n, 51000, WEB_NODEPORT, tf::SYN | tf::ACK);
    let out = external_to_pod_b(&mut n, 51000, WEB_LOCAL_NODEPORT, 7);
    let port = u16::from_be_bytes([out[34], out[35]]);
    assert_ne!(port, 51000);
    assert!((32768..=60999).contains(&port), "{port}");
    assert_bytes(&out, &syn_at_pod_b(port));
    assert_eq!(n.counters().event_count(Event::SnatPortRewritten), 1);
    assert_eq!(n.counters().event_count(Event::CtClosedTakenOver), 0);
    pod_b_to_external(&mut n, port, WEB_LOCAL_NODEPORT, tf::SYN | tf::ACK);
    pod_b_to_external(&mut n, 51000, WEB_NODEPORT, tf::ACK);
    assert_eq!(n.p.conntrack().iter().count(), 2);
}

/// A SYN on a closed flow's own tuple is a new connection: the entry goes and the flow starts
/// afresh (Linux's conntrack does the same), so it follows the endpoints as they are now
/// rather than the closed flow's backend.
#[test]
fn a_syn_on_a_closed_flows_tuple_starts_a_new_flow() {
    let mut n = node_with_web_and_web_local_on_pod_b();
    let a = node_a_cfg();
    let client = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    external_to_pod_b(&mut n, 51000, WEB_NODEPORT, 7);
    pod_b_to_external(&mut n, 51000, WEB_NODEPORT, tf::SYN | tf::ACK);
    let rst = frame::tcp_frame(&client, 51000, WEB_NODEPORT, 8, 10, tf::RST, b"");
    assert_eq!(
        n.run(Ingress::Uplink, &rst).0,
        Disposition::ToPod(POD_B_PORT)
    );
    // A retransmitted segment of the old connection still follows the closed entry.
    let ack = frame::tcp_frame(&client, 51000, WEB_NODEPORT, 8, 10, tf::ACK, b"");
    assert_eq!(
        n.run(Ingress::Uplink, &ack).0,
        Disposition::ToPod(POD_B_PORT)
    );
    assert_eq!(n.counters().event_count(Event::CtNew), 1);
    // Pod B is no longer an endpoint of web; pod C is.
    set_endpoints(&mut n, &web_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    external_syn_tunnelled_to_pod_c(&mut n);
    assert_eq!(n.counters().event_count(Event::CtClosedTakenOver), 1);
    assert_eq!(n.counters().event_count(Event::CtNew), 2);
    assert_eq!(n.p.conntrack().iter().count(), 1);
}

#[test]
fn two_packets_of_one_new_udp_flow_in_one_burst_get_one_entry() {
    // glibc sends A and AAAA from one socket at once (the DNS 5-second timeout bug).
    let mut n = Node::a();
    let q1 = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"A?");
    let q2 = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"AAAA?");
    let res = n.run_burst(Ingress::Pod(POD_A_PORT), &[q1, q2]);
    assert_eq!(n.p.conntrack().len(), 1);
    assert_eq!(res[0].0, res[1].0, "same backend");
    let c = n.counters();
    assert_eq!(
        (c.event_count(Event::CtNew), c.event_count(Event::CtHitOrig)),
        (1, 1)
    );
}

#[test]
fn removing_an_endpoint_purges_its_udp_flows() {
    let mut n = Node::a();
    set_endpoints(
        &mut n,
        &dns_svc(),
        &[
            (POD_B_IP, EndpointState::Ready),
            (POD_C_IP, EndpointState::Ready),
        ],
    );
    // Find a flow that lands on pod B (local), then remove pod B's endpoint.
    let mut sport = 42000;
    loop {
        let q = frame::udp_frame(&pod_a_to(DNS_VIP), sport, 53, b"q");
        if n.run(Ingress::Pod(POD_A_PORT), &q).0 == Disposition::ToPod(POD_B_PORT) {
            break;
        }
        sport += 1;
    }
    set_endpoints(&mut n, &dns_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let q = frame::udp_frame(&pod_a_to(DNS_VIP), sport, 53, b"q");
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &q).0,
        Disposition::ToUplink,
        "re-picked a live backend"
    );
    assert_eq!(n.counters().event_count(Event::CtPurged), 1);
}

#[test]
fn established_flows_keep_their_backend_through_churn_and_terminating() {
    let mut n = Node::a();
    set_endpoints(&mut n, &web_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(&pod_a_to(WEB_VIP), 43000, 80, 1, 0, tf::SYN, b"");
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &syn).0,
        Disposition::ToPod(POD_B_PORT)
    );
    // More backends arrive, then pod B starts terminating.
    set_endpoints(
        &mut n,
        &web_svc(),
        &[
            (POD_B_IP, EndpointState::Ready),
            (POD_C_IP, EndpointState::Ready),
            (Ipv4Addr::new(10, 244, 2, 9), EndpointState::Ready),
        ],
    );
    set_endpoints(
        &mut n,
        &web_svc(),
        &[
            (POD_B_IP, EndpointState::Terminating),
            (POD_C_IP, EndpointState::Ready),
        ],
    );
    let data = frame::tcp_frame(
        &pod_a_to(WEB_VIP),
        43000,
        80,
        2,
        0,
        tf::ACK | tf::PSH,
        b"GET /",
    );
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &data).0,
        Disposition::ToPod(POD_B_PORT),
        "established flow stays"
    );
    // New flows avoid the terminating endpoint.
    for p in 44000..44050 {
        let syn = frame::tcp_frame(&pod_a_to(WEB_VIP), p, 80, 1, 0, tf::SYN, b"");
        assert_eq!(
            n.run(Ingress::Pod(POD_A_PORT), &syn).0,
            Disposition::ToUplink
        );
    }
    // Even removed entirely, a live TCP flow keeps going until it ends (kube-proxy keeps TCP
    // conntrack; only UDP is purged).
    set_endpoints(&mut n, &web_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &data).0,
        Disposition::ToPod(POD_B_PORT)
    );
}

#[test]
fn hairpin_pod_reaches_itself_through_its_service() {
    let mut n = Node::a();
    set_endpoints(&mut n, &web_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let syn = frame::tcp_frame(&pod_b_to(WEB_VIP), 45000, 80, 1, 0, tf::SYN, b"");
    let (d, out) = n.run(Ingress::Pod(POD_B_PORT), &syn);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    // SNATed to the gateway, so the pod does not see its own address as the source.
    let want = frame::tcp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_B_MAC, GW_A, POD_B_IP)
        },
        45000,
        8080,
        1,
        0,
        tf::SYN,
        b"",
    );
    assert_bytes(&out, &want);
    let synack = frame::tcp_frame(&pod_b_to(GW_A), 8080, 45000, 5, 2, tf::SYN | tf::ACK, b"");
    let (d, out) = n.run(Ingress::Pod(POD_B_PORT), &synack);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
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
    assert_bytes(&out, &want);
}

#[test]
fn a_corrupted_new_flow_creates_no_conntrack_state() {
    let mut n = Node::a();
    let mut q = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"query");
    q[34] ^= 0x01; // a source-port bit flipped in transit: the UDP checksum no longer matches
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &q).0,
        Disposition::Drop(DropReason::L4Checksum)
    );
    assert!(n.p.conntrack().is_empty());
    let mut s = frame::tcp_frame(&pod_a_to(WEB_VIP), 42000, 80, 1, 0, tf::SYN, b"");
    s[50] ^= 0x80;
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &s).0,
        Disposition::Drop(DropReason::L4Checksum)
    );
    // A UDP packet without a checksum (zero) is fine.
    let mut z = frame::udp_frame(&pod_a_to(DNS_VIP), 41001, 53, b"query");
    z[40] = 0;
    z[41] = 0;
    assert!(!matches!(
        n.run(Ingress::Pod(POD_A_PORT), &z).0,
        Disposition::Drop(_)
    ));
    assert_eq!(n.p.conntrack().len(), 1);
}

#[test]
fn service_edge_cases() {
    let mut n = Node::a();
    // A ClusterIP port with no Service.
    let q = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 54, b"q");
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &q).0,
        Disposition::Drop(DropReason::NoRoute)
    );
    // No ready endpoint.
    set_endpoints(
        &mut n,
        &dns_svc(),
        &[(POD_B_IP, EndpointState::Terminating)],
    );
    let q = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"q");
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &q).0,
        Disposition::Drop(DropReason::NoBackend)
    );
    // Fragments of Service traffic cannot be NATed.
    let mut f = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"q");
    f[20] |= 0x20; // MF
    f[24] = 0;
    f[25] = 0;
    let c = fastpath::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &f).0,
        Disposition::Drop(DropReason::Fragment)
    );
    // Even when its flow exists: NATing the first fragment alone would split the datagram.
    set_endpoints(&mut n, &dns_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let q = frame::udp_frame(&pod_a_to(DNS_VIP), 41000, 53, b"q");
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &q).0,
        Disposition::ToPod(POD_B_PORT)
    );
    assert_eq!(
        n.run(Ingress::Pod(POD_A_PORT), &f).0,
        Disposition::Drop(DropReason::Fragment)
    );
    assert_eq!(n.drops(DropReason::Fragment), 2);
}

#[test]
fn aging_is_paced_by_the_clock_not_by_polls() {
    let mut n = Node::a();
    set_endpoints(&mut n, &dns_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    for i in 0..100 {
        let q = frame::udp_frame(&pod_a_to(DNS_VIP), 40000 + i, 53, b"q");
        assert_eq!(
            n.run(Ingress::Pod(POD_A_PORT), &q).0,
            Disposition::ToPod(POD_B_PORT)
        );
    }
    assert_eq!(n.p.conntrack().len(), 100);
    // Past the UDP timeout. Many polls within one millisecond age 8 entries in all.
    let t = n.now + 31_000;
    for _ in 0..50 {
        n.p.maintain(t, 8);
    }
    assert_eq!(n.p.conntrack().len(), 92);
    // One millisecond later, 8 more; after a long pause at most 10 ms' worth at once.
    n.p.maintain(t + 1, 8);
    assert_eq!(n.p.conntrack().len(), 84);
    n.p.maintain(t + 500, 8);
    assert_eq!(n.p.conntrack().len(), 4);
    assert_eq!(n.counters().event_count(Event::CtExpired), 96);
}

/// A frame carrying an ICMP "port unreachable" (RFC 792: type 3, code 3, checksum, 4 unused
/// bytes, the quote) with the addresses of `a`.
fn port_unreachable(a: &Addrs, quote: &[u8]) -> Vec<u8> {
    let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quote);
    let c = fastpath::wire::checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    frame::ipv4_frame(a, ipproto::ICMP, &m)
}

/// The IPv4 packet of `frame` with its TTL set to `ttl` (header checksum made right): what a
/// host quotes of a packet that reached it after that many hops.
fn quoted_at_ttl(frame: &[u8], ttl: u8) -> Vec<u8> {
    let mut p = frame[14..].to_vec();
    p[8] = ttl;
    p[10..12].copy_from_slice(&[0, 0]);
    let c = fastpath::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// A backend's "port unreachable" about a Service flow reaches the client as Linux's conntrack
/// sends it: from the Service address, quoting the packet the client sent (to the Service
/// address, its checksums as they were) — so the client's socket sees the error. Pod B is the
/// backend here (local).
#[test]
fn icmp_error_from_a_local_backend_is_translated_back() {
    let mut n = Node::a();
    set_endpoints(&mut n, &dns_svc(), &[(POD_B_IP, EndpointState::Ready)]);
    let query = frame::udp_frame(&pod_a_to(DNS_VIP), 40000, 53, b"query");
    let (d, delivered) = n.run(Ingress::Pod(POD_A_PORT), &query);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    // Pod B has no socket on 5353: its kernel answers with the packet it got, quoted.
    let err = port_unreachable(
        &Addrs::new(POD_B_MAC, gw_a(), POD_B_IP, POD_A_IP),
        &delivered[14..],
    );
    let (d, out) = n.run(Ingress::Pod(POD_B_PORT), &err);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let want = port_unreachable(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_A_MAC, DNS_VIP, POD_A_IP)
        },
        &quoted_at_ttl(&query, 63),
    );
    assert_bytes(&out, &want);
    assert_eq!(n.counters().event_count(Event::IcmpErrorNated), 1);
    // An error about no flow of ours passes as it is.
    let mut other = query.clone();
    other[30..34].copy_from_slice(&POD_B_IP.octets());
    let stray = port_unreachable(
        &Addrs::new(POD_B_MAC, gw_a(), POD_B_IP, POD_A_IP),
        &quoted_at_ttl(&other, 64)[..28],
    );
    let (d, out) = n.run(Ingress::Pod(POD_B_PORT), &stray);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let want = port_unreachable(
        &Addrs {
            ttl: 63,
            ..Addrs::new(gw_a(), POD_A_MAC, POD_B_IP, POD_A_IP)
        },
        &quoted_at_ttl(&other, 64)[..28],
    );
    assert_bytes(&out, &want);
    assert_eq!(n.counters().event_count(Event::IcmpErrorNated), 1);
}

/// The same with the backend on node B (pod C): its error comes back through the tunnel and
/// node A, which did the NAT, translates it before delivering it to pod A.
#[test]
fn icmp_error_from_a_remote_backend_is_translated_back() {
    let (mut na, mut nb) = (Node::a(), Node::b());
    set_endpoints(&mut na, &dns_svc(), &[(POD_C_IP, EndpointState::Ready)]);
    let query = frame::udp_frame(&pod_a_to(DNS_VIP), 40001, 53, b"query");
    let (d, wire) = na.run(Ingress::Pod(POD_A_PORT), &query);
    assert_eq!(d, Disposition::ToUplink);
    let (d, delivered) = nb.run(Ingress::Uplink, &wire);
    assert_eq!(d, Disposition::ToPod(POD_C_PORT));
    // Pod C quotes its whole datagram (Linux quotes up to 576 bytes).
    let err = port_unreachable(
        &Addrs::new(POD_C_MAC, gw_b(), POD_C_IP, POD_A_IP),
        &delivered[14..],
    );
    let (d, wire2) = nb.run(Ingress::Pod(POD_C_PORT), &err);
    assert_eq!(d, Disposition::ToUplink);
    let (d, out) = na.run(Ingress::Uplink, &wire2);
    assert_eq!(d, Disposition::ToPod(POD_A_PORT));
    let want = port_unreachable(
        &Addrs {
            ttl: 62,
            ..Addrs::new(gw_a(), POD_A_MAC, DNS_VIP, POD_A_IP)
        },
        &quoted_at_ttl(&query, 62),
    );
    assert_bytes(&out, &want);
    assert_eq!(na.counters().event_count(Event::IcmpErrorNated), 1);
}
