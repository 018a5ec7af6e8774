//! The pipeline microbenchmark: cycles per packet of each data-path case without any I/O.
//!
//! Each case prepares a burst of 32 packets (64-byte frames on the wire: 60 bytes + FCS), then
//! repeatedly restores the burst's bytes and runs it through a warm pipeline. Restoring costs a
//! copy per packet, so the same loop is also timed with restoring alone and that is subtracted.
//! Cycles are TSC ticks (as DPDK's `rte_rdtsc` counts them), read through `quanta`.

use std::net::Ipv4Addr;

use fastpath::buf::HeapBuf;
use fastpath::counters::{Disposition, DropReason};
use fastpath::fixtures::*;
use fastpath::pipeline::{Ingress, Pipeline, BURST};
use fastpath::tables::conntrack::Timeouts;
use fastpath::tables::services::{EndpointSpec, EndpointState, ServiceSpec};
use fastpath::tables::NodeConfig;
use fastpath::update::{TableWriter, Update};
use fastpath::wire::frame::{self, Addrs};

/// A benchmark case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// Pod A → pod B on the same node.
    LocalForward,
    /// Pod A → pod C: VXLAN encapsulation.
    Encap,
    /// VXLAN from node A to pod C, at node B: decapsulation.
    Decap,
    /// Pod A → ClusterIP on flows already in conntrack, backend remote: DNAT + encap.
    DnatEstablished,
    /// Pod A → ClusterIP, every packet a new flow: conntrack insert + Maglev pick + DNAT + encap.
    DnatNewFlow,
}

impl Case {
    /// Every case.
    pub const ALL: [Case; 5] = [
        Case::LocalForward,
        Case::Encap,
        Case::Decap,
        Case::DnatEstablished,
        Case::DnatNewFlow,
    ];

    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Case::LocalForward => "local_forward",
            Case::Encap => "encap",
            Case::Decap => "decap",
            Case::DnatEstablished => "dnat_established",
            Case::DnatNewFlow => "dnat_new_flow",
        }
    }

    /// The brief's target in cycles per packet.
    pub fn target_cycles(self) -> f64 {
        match self {
            Case::LocalForward | Case::Encap | Case::Decap => 25.0,
            Case::DnatEstablished => 60.0,
            Case::DnatNewFlow => 250.0,
        }
    }

    /// The disposition every packet of the case must get.
    fn expected(self) -> Disposition {
        match self {
            Case::LocalForward => Disposition::ToPod(POD_B_PORT),
            Case::Decap => Disposition::ToPod(POD_C_PORT),
            _ => Disposition::ToUplink,
        }
    }
}

/// One case's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// Distinct flows cycled through.
    pub flows: usize,
    /// Packets processed in the timed loop.
    pub packets: u64,
    /// TSC cycles per packet, restore cost subtracted.
    pub cycles_per_packet: f64,
    /// Nanoseconds per packet, restore cost subtracted.
    pub ns_per_packet: f64,
    /// Cycles per packet of restoring the burst alone (subtracted above).
    pub restore_cycles_per_packet: f64,
    /// The brief's target.
    pub target_cycles: f64,
}

const PAYLOAD: &[u8] = &[0x5a; 18]; // 14 + 20 + 8 + 18 = 60 bytes + FCS = 64 on the wire

fn gw_a() -> fastpath::wire::MacAddr {
    NodeConfig::example_node_a().gateway_mac
}

/// Node A's tables with the DNS Service backed by pod C only (so DNAT is followed by encap).
fn node_a(ct_entries: u32) -> (TableWriter, Pipeline) {
    let mut w = node_a_writer();
    let mut s: ServiceSpec = services()
        .into_iter()
        .find(|s| s.frontend == DNS)
        .expect("dns");
    s.endpoints = vec![EndpointSpec {
        ip: POD_C_IP,
        port: 5353,
        state: EndpointState::Ready,
    }];
    w.apply(Update::AddService(s)).expect("valid service");
    let p = Pipeline::new(w.reader(), ct_entries, Timeouts::default());
    (w, p)
}

fn frames(case: Case, flows: usize) -> (Ingress, Vec<Vec<u8>>) {
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let mk = |i: usize| -> Vec<u8> {
        // Flows differ by source port (the source IP must stay the pod's: anti-spoofing).
        let sport = 1024 + (i % MAX_FLOWS) as u16;
        let from_a = |dst: Ipv4Addr, dport: u16| {
            frame::udp_frame(
                &Addrs::new(POD_A_MAC, gw_a(), POD_A_IP, dst),
                sport,
                dport,
                PAYLOAD,
            )
        };
        match case {
            Case::LocalForward => from_a(POD_B_IP, 7777),
            Case::Encap => from_a(POD_C_IP, 7777),
            Case::DnatEstablished | Case::DnatNewFlow => from_a(DNS_VIP, 53),
            Case::Decap => {
                let inner = frame::udp_frame(
                    &Addrs {
                        ttl: 63,
                        ..Addrs::new(a.vtep_mac, b.vtep_mac, POD_A_IP, POD_C_IP)
                    },
                    sport,
                    7777,
                    PAYLOAD,
                );
                frame::vxlan_frame(
                    &Addrs::new(a.underlay_mac, b.underlay_mac, a.underlay_ip, b.underlay_ip),
                    49152 + (i % 16384) as u16,
                    1,
                    &inner,
                    false,
                )
            }
        }
    };
    let ingress = match case {
        Case::Decap => Ingress::Uplink,
        _ => Ingress::Pod(POD_A_PORT),
    };
    (ingress, (0..flows).map(mk).collect())
}

/// Distinct flows one pod can source towards one destination port.
pub const MAX_FLOWS: usize = 64000;

/// Runs one case `reps` times for `bursts` bursts over `flows` flows and returns the median
/// repetition. For `DnatNewFlow` every packet is a new flow, so a repetition is capped at
/// [`MAX_FLOWS`] packets and gets a fresh conntrack table. Panics if the pipeline gives any
/// packet another disposition than the case expects (a benchmark of a broken path measures
/// nothing).
pub fn run(case: Case, flows: usize, bursts: u64, reps: usize) -> CaseResult {
    let new_flows = case == Case::DnatNewFlow;
    let bursts = if new_flows {
        bursts.min((MAX_FLOWS / BURST) as u64)
    } else {
        bursts
    }
    .max(1);
    let flows = if new_flows {
        bursts as usize * BURST
    } else {
        flows.clamp(1, MAX_FLOWS)
    };
    let mut runs: Vec<CaseResult> = (0..reps.max(1))
        .map(|_| measure_once(case, flows, bursts))
        .collect();
    runs.sort_by(|x, y| x.cycles_per_packet.total_cmp(&y.cycles_per_packet));
    runs.swap_remove(runs.len() / 2)
}

fn measure_once(case: Case, flows: usize, bursts: u64) -> CaseResult {
    let clock = quanta::Clock::new();
    let new_flows = case == Case::DnatNewFlow;
    let total_pkts = bursts * BURST as u64;
    let ct = if new_flows {
        (total_pkts as u32 + 64).next_power_of_two()
    } else {
        1 << 16
    };
    let (_writer, mut pipeline) = if case == Case::Decap {
        let w = node_b_writer();
        let p = Pipeline::new(w.reader(), ct, Timeouts::default());
        (w, p)
    } else {
        node_a(ct)
    };
    let (ingress, pool) = frames(case, flows);
    let mut bufs: Vec<HeapBuf> = (0..BURST).map(|_| HeapBuf::new()).collect();
    let mut out = [Disposition::Drop(DropReason::Runt); BURST];
    let now = 1_000u64;
    let load = |bufs: &mut [HeapBuf], k: u64| {
        for (j, b) in bufs.iter_mut().enumerate() {
            b.set_frame(&pool[((k as usize) * BURST + j) % pool.len()]);
        }
    };
    // Warm up (established flows enter conntrack here); every disposition is checked.
    if !new_flows {
        for k in 0..(flows as u64).div_ceil(BURST as u64).max(64) {
            load(&mut bufs, k);
            pipeline.process(ingress, &mut bufs, &mut out, now);
            assert!(
                out.iter().all(|d| *d == case.expected()),
                "{case:?}: {:?}",
                out[0]
            );
        }
    }
    let t0 = clock.raw();
    for k in 0..bursts {
        load(&mut bufs, k);
        std::hint::black_box(&mut bufs);
    }
    let t1 = clock.raw();
    let mut bad = 0u64;
    for k in 0..bursts {
        load(&mut bufs, k);
        pipeline.process(ingress, &mut bufs, &mut out, now);
        bad += out.iter().filter(|d| **d != case.expected()).count() as u64;
    }
    let t2 = clock.raw();
    assert_eq!(bad, 0, "{case:?}: {bad} packets got the wrong disposition");
    if new_flows {
        assert_eq!(
            pipeline.conntrack().len() as u64,
            total_pkts,
            "every packet a new flow"
        );
    }
    let pk = total_pkts as f64;
    let restore_cycles = t1.saturating_sub(t0) as f64;
    let both_cycles = t2.saturating_sub(t1) as f64;
    let restore_ns = clock.delta_as_nanos(t0, t1) as f64;
    let both_ns = clock.delta_as_nanos(t1, t2) as f64;
    CaseResult {
        case,
        flows,
        packets: total_pkts,
        cycles_per_packet: (both_cycles - restore_cycles) / pk,
        ns_per_packet: (both_ns - restore_ns) / pk,
        restore_cycles_per_packet: restore_cycles / pk,
        target_cycles: case.target_cycles(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_runs_and_forwards_correctly() {
        for case in Case::ALL {
            for flows in [1, 1024] {
                let r = run(case, flows, 64, 1);
                assert_eq!(r.packets, 64 * BURST as u64);
                assert!(r.ns_per_packet.is_finite());
            }
        }
    }
}
