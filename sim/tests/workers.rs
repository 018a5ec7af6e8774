//! Nodes with several workers: pod ports spread over the workers, uplink frames spread by an
//! RSS-like hash, each NAT flow owned by one worker and its other direction handed to it — every
//! invariant holds as with one worker, with faults and churn too; and a node whose workers do
//! not hand over is caught.

mod common;

use common::*;
use sim::{Sim, SimConfig};

fn workers(cfg: SimConfig, n: u16) -> SimConfig {
    SimConfig { workers: n, ..cfg }
}

#[test]
fn several_workers_per_node_keep_every_invariant() {
    for n in [2u16, 3] {
        let r = run(workers(small(41), n));
        assert_passed(&r);
        assert_eq!(r.traffic.pod_pairs_reached, r.traffic.pod_pairs_tested);
        assert_eq!(r.traffic.service_flows_answered, r.traffic.service_flows);
        // External clients' NodePort flows too: spread by the hash of the client's address
        // and port, their replies handed to the flow's owner.
        assert!(r.traffic.nodeport_flows > 0);
        assert_eq!(
            r.traffic.nodeport_flows_answered + r.run.nodeport_flows_no_local_endpoint,
            r.traffic.nodeport_flows
        );
        assert!(inv(&r, "nodeport_reply_from_node").0 > 0);
        // The nodes' kernels' probes: through worker 0, which alone polls the host path; their
        // answers from any worker.
        assert!(r.traffic.host_probes > 0);
        assert_eq!(r.traffic.host_probes_answered, r.traffic.host_probes);
        let handed = r.counters.get("handoff_tx").copied().unwrap_or(0);
        assert!(
            handed > 0,
            "{n} workers: nothing was handed over\n{}",
            r.text()
        );
        assert_eq!(r.counters.get("handoff_rx").copied(), Some(handed));
        assert!(inv(&r, "service_reply_from_vip").0 > 0);
        assert!(inv(&r, "flow_affinity").0 > 0);
    }
}

#[test]
fn several_workers_with_every_fault_and_event() {
    for seed in [42, 43] {
        let r = run(workers(every_fault(seed), 3));
        assert_passed(&r);
    }
}

#[test]
fn workers_that_do_not_hand_over_are_caught() {
    let mut s = Sim::new(workers(small(41), 2)).unwrap();
    for n in 0..3 {
        s.break_handoff(n);
    }
    let r = s.run().unwrap();
    assert!(!r.passed);
    // Replies reverse-NATed by a worker without the flow leave from the backend's own address.
    let (_, wrong) = inv(&r, "service_reply_from_vip");
    assert!(wrong > 0, "{}", r.text());
}
