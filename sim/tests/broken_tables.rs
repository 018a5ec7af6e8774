//! The checker catches a broken fast path: each test breaks one table on one node through raw
//! updates (bypassing the desired state), and asserts that the traffic invariants report it —
//! and that the same run without the breakage is clean.

mod common;

use common::*;
use fastpath::tables::pods::PodSpec;
use fastpath::tables::services::{EndpointSpec, EndpointState};
use fastpath::update::Update;
use sim::{topology, Sim};

#[test]
fn correct_tables_pass() {
    assert_passed(&run(small(31)));
}

#[test]
fn a_wrong_route_is_caught() {
    // On node 0, node 1's pod CIDR points at node 2 and node 2's at node 1.
    let mut s = Sim::new(small(31)).unwrap();
    let mut to1 = topology::remote_spec(1);
    let mut to2 = topology::remote_spec(2);
    core::mem::swap(&mut to1.pod_cidr, &mut to2.pod_cidr);
    s.inject(0, vec![Update::AddNode(to1), Update::AddNode(to2)])
        .unwrap();
    let r = s.run().unwrap();
    assert!(!r.passed);
    let (_, unreached) = inv(&r, "pod_reachability");
    // Node 0's 4 pods cannot reach the 8 pods on nodes 1 and 2, nor get answers from them.
    assert!(unreached >= 4 * 8, "{}", r.text());
    assert!(inv(&r, "tables_match_desired").1 > 0);
    // Misrouted frames were dropped by the wrong node, never delivered to a wrong pod.
    assert_eq!(inv(&r, "delivered_to_owner").1, 0);
    assert!(r.counters.get("drop_no_local_pod").copied().unwrap_or(0) > 0);
}

#[test]
fn a_pod_entry_pointing_at_another_pods_port_is_caught() {
    let mut s = Sim::new(small(32)).unwrap();
    let pods = s.pods_on(0);
    let (p, q) = (pods[0], pods[1]);
    // Pod P's IP now leads to pod Q's port (and MAC).
    s.inject(
        0,
        vec![
            Update::RemovePod { ip: q.1 },
            Update::AddPod(PodSpec {
                ip: p.1,
                mac: q.2,
                port: q.3,
            }),
        ],
    )
    .unwrap();
    let r = s.run().unwrap();
    assert!(!r.passed);
    let (_, wrong) = inv(&r, "delivered_to_owner");
    assert!(wrong > 0, "{}", r.text());
    let ex = &r.invariant("delivered_to_owner").unwrap().examples;
    assert!(
        ex.iter()
            .any(|e| e.contains(&format!("got a frame for {}", p.1))),
        "{ex:?}"
    );
}

#[test]
fn a_service_with_the_wrong_backends_is_caught() {
    let mut s = Sim::new(small(33)).unwrap();
    let specs: Vec<_> = s.desired().services().cloned().collect();
    let mut updates = Vec::new();
    for mut spec in specs {
        // Replace the endpoints with a pod that is not one of them.
        let outsider = (0..3)
            .flat_map(|n| s.pods_on(n))
            .find(|p| !spec.endpoints.iter().any(|e| e.ip == p.1))
            .unwrap();
        spec.endpoints = vec![EndpointSpec {
            ip: outsider.1,
            port: spec.endpoints[0].port,
            state: EndpointState::Ready,
        }];
        updates.push(Update::AddService(spec));
    }
    s.inject(0, updates).unwrap();
    let r = s.run().unwrap();
    assert!(!r.passed);
    let (_, wrong) = inv(&r, "service_backend_live");
    assert!(wrong > 0, "{}", r.text());
}

#[test]
fn nodeports_swapped_between_services_are_caught() {
    // On node 0, Service 0's NodePort leads to Service 2 and the other way round (both TCP:
    // a NodePort is a protocol's), so external clients' flows to node 0 reach backends of the
    // wrong Service.
    let mut cfg = small(34);
    cfg.nodeport_flows = 40;
    let mut s = Sim::new(cfg).unwrap();
    let specs: Vec<_> = s.desired().services().cloned().collect();
    let (mut a, mut b) = (specs[0].clone(), specs[2].clone());
    assert_eq!(a.frontend.protocol, b.frontend.protocol);
    let (pa, pb) = (a.node_port, b.node_port);
    assert!(pa.is_some() && pb.is_some());
    // A NodePort belongs to one Service at a time: free A's first.
    a.node_port = None;
    let freed = a.clone();
    a.node_port = pb;
    b.node_port = pa;
    s.inject(
        0,
        vec![
            Update::AddService(freed),
            Update::AddService(b),
            Update::AddService(a),
        ],
    )
    .unwrap();
    let r = s.run().unwrap();
    assert!(!r.passed);
    let (_, wrong) = inv(&r, "service_backend_live");
    assert!(wrong > 0, "{}", r.text());
}

#[test]
fn a_local_policy_lost_on_one_node_is_caught() {
    // Node 0 forgets that Service 3's NodePort has the Local policy: its flows there go on to
    // backends on other nodes, SNATed.
    let mut cfg = small(35);
    cfg.nodeport_flows = 40;
    let mut s = Sim::new(cfg).unwrap();
    let mut spec = s
        .desired()
        .services()
        .find(|sp| sp.node_port_local)
        .cloned()
        .expect("a Local Service");
    spec.node_port_local = false;
    s.inject(0, vec![Update::AddService(spec)]).unwrap();
    let r = s.run().unwrap();
    assert!(!r.passed);
    let (_, wrong) = inv(&r, "nodeport_local_stays_on_node");
    assert!(wrong > 0, "{}", r.text());
}
