//! Malformed input is a counted drop or the host path, never a panic.

mod common;

use common::*;
use core::net::Ipv4Addr;
use fastpath::counters::{Disposition, DropReason};
use fastpath::fixtures::*;
use fastpath::pipeline::{Ingress, MAX_FRAME_LEN};
use fastpath::tables::NodeConfig;
use fastpath::wire::arp::op;
use fastpath::wire::checksum;
use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::tcp::flags as tf;
use fastpath::wire::MacAddr;
use proptest::prelude::*;

fn valid_frames() -> Vec<(Ingress, Vec<u8>)> {
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let inner = frame::udp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, POD_A_IP)
        },
        1,
        2,
        b"inner",
    );
    vec![
        (
            Ingress::Pod(0),
            frame::udp_frame(&pod_a_to(POD_B_IP), 1000, 2000, b"local"),
        ),
        (
            Ingress::Pod(0),
            frame::udp_frame(&pod_a_to(POD_C_IP), 1000, 2000, b"remote"),
        ),
        (
            Ingress::Pod(0),
            frame::tcp_frame(&pod_a_to(WEB_VIP), 1000, 80, 1, 0, tf::SYN, b""),
        ),
        (
            Ingress::Pod(0),
            frame::udp_frame(&pod_a_to(DNS_VIP), 1000, 53, b"dns"),
        ),
        (
            Ingress::Pod(0),
            frame::icmp_echo_frame(&pod_a_to(Ipv4Addr::new(10, 244, 1, 1)), true, 1, 1, b"ping"),
        ),
        (
            Ingress::Pod(0),
            frame::arp_frame(
                MacAddr::BROADCAST,
                op::REQUEST,
                POD_A_MAC,
                POD_A_IP,
                MacAddr::ZERO,
                Ipv4Addr::new(10, 244, 1, 1),
            ),
        ),
        (
            Ingress::Uplink,
            frame::vxlan_frame(
                &Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip),
                50000,
                1,
                &inner,
                true,
            ),
        ),
        (
            Ingress::Uplink,
            frame::tcp_frame(
                &Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip),
                5,
                WEB_NODEPORT,
                1,
                0,
                tf::SYN,
                b"",
            ),
        ),
        (
            Ingress::Uplink,
            frame::arp_frame(
                MacAddr::BROADCAST,
                op::REQUEST,
                EXTERNAL_MAC,
                EXTERNAL_IP,
                MacAddr::ZERO,
                a.underlay_ip,
            ),
        ),
    ]
}

#[test]
fn truncated_at_every_length_is_a_counted_drop_or_host_path() {
    for (ing, f) in valid_frames() {
        let mut n = Node::a();
        for len in 0..f.len() {
            let (d, _) = n.run(ing, &f[..len]);
            assert!(
                matches!(d, Disposition::Drop(_) | Disposition::ToHost),
                "{ing:?} truncated to {len} of {}: {d:?}",
                f.len()
            );
        }
        // The whole frame still works afterwards.
        let (d, _) = n.run(ing, &f);
        assert!(!matches!(d, Disposition::Drop(_)), "{ing:?}: {d:?}");
    }
}

#[test]
fn runt_and_jumbo() {
    let mut n = Node::a();
    for len in 0..14 {
        assert_eq!(
            n.run(Ingress::Pod(0), &vec![0u8; len]).0,
            Disposition::Drop(DropReason::Runt)
        );
        assert_eq!(
            n.run(Ingress::Uplink, &vec![0u8; len]).0,
            Disposition::Drop(DropReason::Runt)
        );
    }
    let big = frame::udp_frame(&pod_a_to(POD_B_IP), 1, 2, &vec![0u8; MAX_FRAME_LEN]);
    assert_eq!(
        n.run(Ingress::Pod(0), &big).0,
        Disposition::Drop(DropReason::Jumbo)
    );
    assert_eq!(
        n.run(Ingress::Uplink, &big).0,
        Disposition::Drop(DropReason::Jumbo)
    );
}

fn refill_ip_checksum(f: &mut [u8]) {
    let hl = ((f[14] & 0x0f) as usize * 4).min(f.len() - 14);
    f[24] = 0;
    f[25] = 0;
    let c = checksum::checksum(&f[14..14 + hl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn bad_ihl_bad_lengths_bad_checksum() {
    let mut n = Node::a();
    let good = frame::udp_frame(&pod_a_to(POD_B_IP), 1, 2, b"payload!");
    for ihl in [0u8, 1, 4, 15] {
        let mut f = good.clone();
        f[14] = 0x40 | ihl;
        refill_ip_checksum(&mut f);
        assert_eq!(
            n.run(Ingress::Pod(0), &f).0,
            Disposition::Drop(DropReason::Ipv4Malformed),
            "IHL {ihl}"
        );
    }
    let mut f = good.clone();
    f[14] = 0x65; // version 6
    assert_eq!(
        n.run(Ingress::Pod(0), &f).0,
        Disposition::Drop(DropReason::Ipv4Malformed)
    );
    let mut f = good.clone();
    f[16..18].copy_from_slice(&500u16.to_be_bytes()); // total length beyond the frame
    refill_ip_checksum(&mut f);
    assert_eq!(
        n.run(Ingress::Pod(0), &f).0,
        Disposition::Drop(DropReason::Ipv4Malformed)
    );
    let mut f = good.clone();
    f[16..18].copy_from_slice(&10u16.to_be_bytes()); // total length below the header
    refill_ip_checksum(&mut f);
    assert_eq!(
        n.run(Ingress::Pod(0), &f).0,
        Disposition::Drop(DropReason::Ipv4Malformed)
    );
    let mut f = good.clone();
    f[25] ^= 0xff;
    assert_eq!(
        n.run(Ingress::Pod(0), &f).0,
        Disposition::Drop(DropReason::Ipv4Checksum)
    );
    let mut f = good.clone();
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    assert_eq!(
        n.run(Ingress::Pod(0), &f).0,
        Disposition::Drop(DropReason::UnsupportedEthertype)
    );
}

#[test]
fn ipv4_options_are_forwarded_intact() {
    let mut n = Node::a();
    let base = frame::udp_frame(&pod_a_to(POD_B_IP), 1, 2, b"opts");
    // Insert 4 bytes of options (NOP NOP NOP EOL) after the 20-byte header.
    let mut f = base[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&base[34..]);
    f[14] = 0x46;
    let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&tl.to_be_bytes());
    refill_ip_checksum(&mut f);
    let (d, out) = n.run(Ingress::Pod(0), &f);
    assert_eq!(d, Disposition::ToPod(POD_B_PORT));
    assert_eq!(&out[34..38], &[1, 1, 1, 0]);
    assert_eq!(out[22], 63);
    assert_eq!(
        checksum::checksum(&out[14..38]),
        0,
        "header checksum over the options still valid"
    );
    assert_eq!(&out[38..], &f[38..], "UDP untouched");
}

#[test]
fn fragments_between_pods_are_forwarded() {
    let mut n = Node::a();
    for dst in [POD_B_IP, POD_C_IP] {
        let mut f = frame::udp_frame(&pod_a_to(dst), 1, 2, b"first fragment");
        f[20] = 0x20; // MF, DF clear
        refill_ip_checksum(&mut f);
        let (d, _) = n.run(Ingress::Pod(0), &f);
        assert!(
            matches!(d, Disposition::ToPod(_) | Disposition::ToUplink),
            "{d:?}"
        );
        // A later fragment (no L4 header) too.
        let mut g = frame::ipv4_frame(&pod_a_to(dst), 17, b"middle of a datagram");
        g[20] = 0x20;
        g[21] = 0x10; // offset 16*8
        refill_ip_checksum(&mut g);
        let (d, _) = n.run(Ingress::Pod(0), &g);
        assert!(
            matches!(d, Disposition::ToPod(_) | Disposition::ToUplink),
            "{d:?}"
        );
    }
    // A fragmented VXLAN packet is not reassembled: a counted drop.
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let inner = frame::udp_frame(
        &Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, POD_A_IP),
        1,
        2,
        b"x",
    );
    let mut v = frame::vxlan_frame(
        &Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip),
        50000,
        1,
        &inner,
        false,
    );
    v[20] = 0x20;
    refill_ip_checksum(&mut v);
    assert_eq!(
        n.run(Ingress::Uplink, &v).0,
        Disposition::Drop(DropReason::Fragment)
    );
}

/// Record format of `fastpath::fuzz::run_pipeline`.
fn record(sel: u8, frame: &[u8]) -> Vec<u8> {
    let mut v = vec![sel];
    v.extend_from_slice(&(frame.len() as u16).to_le_bytes());
    v.extend_from_slice(frame);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fastpath::fuzz::run_pipeline(&data);
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        which in 0usize..9,
        node_b in any::<bool>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let frames = valid_frames();
        let (ing, mut f) = frames[which].clone();
        for (pos, x) in flips {
            let i = pos % f.len();
            f[i] ^= x;
        }
        if let Some(c) = cut {
            f.truncate(c % (f.len() + 1));
        }
        f.extend_from_slice(&tail);
        let sel = match ing {
            Ingress::Pod(0) => 0,
            Ingress::Uplink => 3,
            _ => 5,
        } | if node_b { 0x80 } else { 0 };
        // The packet, then the original (a reply or retransmission after garbage).
        let mut input = record(sel, &f);
        input.extend(record(sel, &frames[which].1));
        fastpath::fuzz::run_pipeline(&input);
    }
}
