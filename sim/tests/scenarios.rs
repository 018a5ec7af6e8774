//! Small clusters (3 nodes unless said otherwise) with each fault, each kind of churn and the
//! restarts, asserting that every invariant holds and was actually exercised.

mod common;

use common::*;

#[test]
fn clean_cluster_everything_reaches_everything() {
    let r = run(small(1));
    assert_passed(&r);
    // Every ordered pair of the 12 pods got through, both ways.
    assert_eq!(r.traffic.pod_pairs_tested, 12 * 11);
    assert_eq!(r.traffic.pod_pairs_reached, 12 * 11);
    assert_eq!(r.traffic.service_flows, 12 * 4);
    assert_eq!(r.traffic.service_flows_answered, 12 * 4);
    // Two external clients, eight NodePort flows each, every one answered from the node's
    // address but those the Local policy drops (no endpoint on the node reached).
    assert_eq!(r.traffic.nodeport_flows, 2 * 8);
    assert_eq!(
        r.traffic.nodeport_flows_answered + r.run.nodeport_flows_no_local_endpoint,
        2 * 8
    );
    // Nothing dropped, lost or sent astray anywhere, but the Local policy's drops.
    assert!(
        r.counters
            .keys()
            .all(|k| !k.starts_with("drop_") || k == "drop_no_local_endpoint"),
        "{:?}",
        r.counters
    );
    assert_eq!(r.traffic.pod_frames_sent, r.traffic.pod_frames_received);
    // Each node's kernel reached the two pods on other nodes it probed from its VTEP address
    // (the source a Flannel node's strict reverse-path filter takes from its tunnel).
    assert_eq!(r.traffic.host_probes, 3 * 2);
    assert_eq!(r.traffic.host_probes_answered, 3 * 2);
    for name in [
        "gateway",
        "delivered_to_owner",
        "pod_source_unchanged",
        "pod_reachability",
        "node_reaches_pods",
        "service_backend_live",
        "service_client_ip_kept",
        "service_reply_from_vip",
        "nodeport_reply_from_node",
        "flow_affinity",
        "checksums_intact",
        "payload_intact",
        "tables_match_desired",
    ] {
        assert!(inv(&r, name).0 > 0, "{name} never checked");
    }
}

#[test]
fn loss() {
    let r = run(with(2, "loss=0.05", ""));
    assert_passed(&r);
    assert!(r.faults.total.lost > 20, "{:?}", r.faults.total);
    assert_eq!(r.traffic.pod_pairs_reached, r.traffic.pod_pairs_tested);
}

#[test]
fn duplication() {
    let r = run(with(3, "dup=0.1", ""));
    assert_passed(&r);
    assert!(r.faults.total.duplicated > 50);
    assert!(r.traffic.pod_frames_received > r.traffic.pod_frames_sent);
}

#[test]
fn reordering() {
    let r = run(with(4, "reorder=6", ""));
    assert_passed(&r);
    assert!(r.faults.total.reordered > 100);
    assert!(inv(&r, "flow_affinity").0 > 50);
}

#[test]
fn delay() {
    let r = run(with(5, "underlay:delay=7,pod-rx:delay=2", ""));
    assert_passed(&r);
    assert!(r.faults.underlay.delayed > 100 && r.faults.pod_rx.delayed > 100);
    assert!(r.faults.pod_tx.delayed == 0);
    assert!(r.simulated_ms >= 600);
}

#[test]
fn corruption_is_dropped_or_rejected_never_misdelivered() {
    let r = run(with(6, "corrupt=0.08", ""));
    assert_passed(&r);
    let c = &r.corruption;
    assert!(c.corrupted > 100, "{c:?}");
    let dropped: u64 = c.dropped_by_fastpath.values().sum();
    let rejected: u64 = c.rejected_by_pods.values().sum();
    assert!(dropped > 0 && rejected > 0, "{c:?}");
    // The pods' own L4 checksum check is what catches payload corruption.
    assert!(
        c.rejected_by_pods.get("l4_checksum").copied().unwrap_or(0) > 0,
        "{c:?}"
    );
    let (checks, violations) = inv(&r, "corruption_never_misdelivers");
    assert_eq!(violations, 0);
    assert!(checks >= dropped + rejected);
    assert_eq!(r.traffic.pod_pairs_reached, r.traffic.pod_pairs_tested);
}

#[test]
fn pod_churn_with_packets_in_flight() {
    let r = run(with(7, "underlay:delay=3", "pods=6"));
    assert_passed(&r);
    assert_eq!(r.events.pod_deletes, 6);
    assert_eq!(r.events.pod_creates, 6);
    // Frames were on their way to pods that were deleted, and the fast path dropped them.
    assert!(inv(&r, "nothing_after_delete").0 > 0, "{}", r.text());
    assert!(r.topology.pods_created_total == 12 + 6);
}

#[test]
fn endpoint_churn_keeps_flows_on_their_backends() {
    let mut cfg = with(8, "", "endpoints=60");
    cfg.flows_per_pod = 8;
    cfg.requests_per_flow = 10;
    let r = run(cfg);
    assert_passed(&r);
    let e = &r.events;
    assert!(e.endpoint_adds > 0 && e.endpoint_removes > 0 && e.endpoint_terminations > 0);
    assert!(inv(&r, "flow_affinity").0 > 200);
}

#[test]
fn node_leave_and_join() {
    let mut cfg = with(9, "underlay:delay=2", "nodes=2");
    cfg.nodes = 4;
    cfg.duration_ms = 900;
    let r = run(cfg);
    assert_passed(&r);
    assert_eq!(r.events.node_leaves, 2);
    assert_eq!(r.events.node_joins, 2);
    assert_eq!(r.topology.nodes_up_at_end, 4);
    assert!(r.topology.pods_created_total >= 16 + 8);
}

#[test]
fn control_restart_resyncs_without_disturbing_flows() {
    let mut cfg = with(10, "", "control-restart=3,endpoints=20");
    cfg.requests_per_flow = 12;
    let r = run(cfg);
    assert_passed(&r);
    assert_eq!(r.events.control_restarts, 3);
    // 3 nodes checked after each resync, and once more at the end.
    assert_eq!(inv(&r, "tables_match_desired").0, 3 * 3 + 3);
    assert_eq!(r.run.flows_rebalanced, 0, "a resync must not move flows");
}

#[test]
fn fastpath_restart_rebuilds_tables_from_a_snapshot() {
    let mut cfg = with(11, "", "fastpath-restart=3");
    cfg.requests_per_flow = 12;
    let r = run(cfg);
    assert_passed(&r);
    assert_eq!(r.events.fastpath_restarts, 3);
    assert!(inv(&r, "tables_match_desired").0 >= 3 + 3);
    // Frames arriving while it restarted were lost, and probes got through anyway.
    assert!(
        r.nodes.iter().map(|n| n.lost_while_down).sum::<u64>() > 0,
        "{}",
        r.text()
    );
    assert_eq!(r.traffic.pod_pairs_reached, r.traffic.pod_pairs_tested);
}

#[test]
fn every_fault_and_every_event_at_once() {
    for seed in [12, 13, 14] {
        let r = run(every_fault(seed));
        assert_passed(&r);
        assert!(r.corruption.corrupted > 0);
    }
}

#[test]
fn light_nodes_route_and_serve_but_only_full_nodes_open_service_flows() {
    let mut cfg = small(15);
    cfg.nodes = 12;
    cfg.pods_per_node = 3;
    cfg.services = 10;
    cfg.endpoints_per_service = 4;
    cfg.full_nodes = Some(3);
    let r = run(cfg);
    assert_passed(&r);
    assert_eq!(r.topology.full_nodes.len(), 3);
    assert_eq!(r.traffic.service_flows, 3 * 3 * 4);
    assert_eq!(r.traffic.pod_pairs_reached, r.traffic.pod_pairs_tested);
    assert_eq!(r.traffic.pod_pairs_tested, 36 * 35);
}

#[test]
fn probe_sampling_and_packet_cap() {
    let mut cfg = small(16);
    cfg.nodes = 8;
    cfg.pods_per_node = 10;
    cfg.probes_per_pod = Some(3);
    let r = run(cfg.clone());
    assert_passed(&r);
    assert_eq!(r.traffic.probes, 80 * 3);
    cfg.max_packets = Some(200);
    let capped = run(cfg);
    assert_passed(&capped);
    assert!(capped.traffic.pod_frames_sent < r.traffic.pod_frames_sent);
}

#[test]
fn a_rejoining_node_reuses_addresses_with_frames_still_in_flight() {
    // The underlay holds frames longer than the node stays away: frames for the old pods
    // arrive after new pods got their addresses. They may reach the new owner (the IP was
    // reused), never anyone else.
    let mut cfg = with(22, "underlay:delay=120", "nodes=2,pods=4");
    cfg.nodes = 4;
    cfg.duration_ms = 800;
    let r = run(cfg);
    assert_passed(&r);
    assert!(r.run.reused_ip_deliveries > 0, "{}", r.text());
    assert!(inv(&r, "nothing_after_delete").0 > 0);
}

#[test]
fn hairpin_clients_get_their_own_answers_from_the_vip() {
    let mut cfg = small(18);
    cfg.nodes = 2;
    cfg.pods_per_node = 2;
    cfg.services = 2;
    cfg.endpoints_per_service = 4;
    cfg.flows_per_pod = 12;
    let r = run(cfg);
    assert_passed(&r);
    assert!(r.run.hairpin_requests > 0, "{}", r.text());
}

#[test]
fn a_bigger_cluster_with_light_nodes_faults_and_churn() {
    let cfg = sim::SimConfig {
        nodes: 40,
        pods_per_node: 6,
        services: 200,
        endpoints_per_service: 5,
        full_nodes: Some(8),
        duration_ms: 800,
        faults: sim::faults::FaultPlan::parse("loss=0.01,dup=0.01,reorder=2,corrupt=0.01,delay=1")
            .unwrap(),
        churn: sim::scenario::ChurnSpec::parse(
            "pods=20,endpoints=100,nodes=2,control-restart=1,fastpath-restart=3",
        )
        .unwrap(),
        ..small(19)
    };
    let r = run(cfg);
    assert_passed(&r);
    assert_eq!(r.topology.full_nodes.len(), 8);
    assert!(r.traffic.pod_pairs_tested > 1500);
    assert!(r.traffic.service_flows > 100);
}

/// External clients reaching NodePorts on every node: Cluster-policy Services' flows reach
/// backends on the node (the client's address kept) and on others (SNATed to the node's VTEP
/// address, answered back through its tunnel); Local-policy ones only a backend on the node,
/// and are dropped where the node has none. Every flow that may be answered is, from the
/// node's address and NodePort.
#[test]
fn nodeport_flows_from_outside_the_cluster() {
    let r = run(sim::SimConfig {
        nodes: 4,
        pods_per_node: 5,
        services: 8,
        external_clients: 4,
        nodeport_flows: 30,
        ..small(51)
    });
    assert_passed(&r);
    let (flows, no_local) = (
        r.traffic.nodeport_flows,
        r.run.nodeport_flows_no_local_endpoint,
    );
    assert_eq!(flows, 4 * 30);
    assert_eq!(
        r.traffic.nodeport_flows_answered + no_local,
        flows,
        "{}",
        r.text()
    );
    assert!(no_local > 0, "{}", r.text());
    assert!(r.run.nodeport_requests_direct > 0, "{}", r.text());
    assert!(r.run.nodeport_requests_snat > 0, "{}", r.text());
    for name in ["nodeport_reply_from_node", "nodeport_local_stays_on_node"] {
        assert!(inv(&r, name).0 > 0, "{name} never checked\n{}", r.text());
    }
    // Nothing lost on the way: what was not answered was dropped for want of a local endpoint.
    assert_eq!(
        r.counters
            .get("drop_no_local_endpoint")
            .copied()
            .unwrap_or(0)
            > 0,
        no_local > 0,
        "{:?}",
        r.counters
    );
}
