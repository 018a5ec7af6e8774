//! Helpers shared by the pipeline tests.
#![allow(dead_code)]

use core::net::Ipv4Addr;

use fastpath::buf::{HeapBuf, PacketBuf};
use fastpath::counters::{CounterSnapshot, Disposition, DropReason};
use fastpath::fixtures::*;
use fastpath::pipeline::{Ingress, Pipeline};
use fastpath::tables::conntrack::Timeouts;
use fastpath::tables::services::{EndpointSpec, EndpointState, FrontendKey, ServiceSpec};
use fastpath::tables::NodeConfig;
use fastpath::update::TableWriter;
use fastpath::wire::frame::Addrs;
use fastpath::wire::MacAddr;

/// A node under test: its writer and one worker pipeline.
#[derive(Debug)]
pub struct Node {
    pub w: TableWriter,
    pub p: Pipeline,
    pub now: u64,
}

impl Node {
    pub fn new(w: TableWriter) -> Node {
        let p = Pipeline::new(w.reader(), 4096, Timeouts::default());
        Node { w, p, now: 1_000 }
    }

    pub fn a() -> Node {
        Node::new(node_a_writer())
    }

    pub fn b() -> Node {
        Node::new(node_b_writer())
    }

    pub fn cfg(&self) -> NodeConfig {
        self.w.node().clone()
    }

    /// Runs one frame through; returns the disposition and the output bytes.
    pub fn run(&mut self, ingress: Ingress, frame: &[u8]) -> (Disposition, Vec<u8>) {
        let mut pkts = [HeapBuf::from_frame(frame)];
        let mut out = [Disposition::Drop(DropReason::Runt)];
        self.p.process(ingress, &mut pkts, &mut out, self.now);
        (out[0], pkts[0].data().to_vec())
    }

    /// Runs a burst.
    pub fn run_burst(
        &mut self,
        ingress: Ingress,
        frames: &[Vec<u8>],
    ) -> Vec<(Disposition, Vec<u8>)> {
        let mut pkts: Vec<HeapBuf> = frames.iter().map(|f| HeapBuf::from_frame(f)).collect();
        let mut out = vec![Disposition::Drop(DropReason::Runt); frames.len()];
        self.p.process(ingress, &mut pkts, &mut out, self.now);
        out.into_iter()
            .zip(pkts.iter().map(|p| p.data().to_vec()))
            .collect()
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.p.counters().snapshot()
    }

    pub fn drops(&self, r: DropReason) -> u64 {
        self.counters().drop_count(r)
    }
}

/// Addresses of a frame from pod `src` to `dst` as it leaves the pod (to the gateway MAC).
pub fn from_pod(src_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, gw: MacAddr) -> Addrs {
    Addrs::new(src_mac, gw, src, dst)
}

pub fn gw_a() -> MacAddr {
    NodeConfig::example_node_a().gateway_mac
}

pub fn gw_b() -> MacAddr {
    NodeConfig::example_node_b().gateway_mac
}

pub fn pod_a_to(dst: Ipv4Addr) -> Addrs {
    from_pod(POD_A_MAC, POD_A_IP, dst, gw_a())
}

pub fn pod_b_to(dst: Ipv4Addr) -> Addrs {
    from_pod(POD_B_MAC, POD_B_IP, dst, gw_a())
}

/// The same addresses with other MACs and TTL.
pub fn with(a: Addrs, src_mac: MacAddr, dst_mac: MacAddr, ttl: u8) -> Addrs {
    Addrs {
        src_mac,
        dst_mac,
        ttl,
        ..a
    }
}

/// The VXLAN UDP source port of an encapsulated frame.
pub fn outer_sport(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

/// Hex dump diff helper for readable assertion failures.
pub fn assert_bytes(got: &[u8], want: &[u8]) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "frames differ at byte {first} (len got {} want {})\n got: {:02x?}\nwant: {:02x?}",
            got.len(),
            want.len(),
            got,
            want
        );
    }
}

/// A node with several workers: one writer, one pipeline per worker (shared per-pod flow
/// counts), and the handoff done the way the daemon does it.
#[derive(Debug)]
pub struct Workers {
    pub w: TableWriter,
    pub p: Vec<Pipeline>,
    pub now: u64,
}

/// What became of one frame on a node with several workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The final disposition (never a handoff).
    pub d: Disposition,
    /// The frame's bytes at the end.
    pub bytes: Vec<u8>,
    /// The worker it was handed to, if any, and the ingress it resumed at.
    pub handed: Option<(u16, Ingress)>,
}

impl Workers {
    pub fn new(w: TableWriter, n: u16) -> Workers {
        let p = Pipeline::workers(w.reader(), n, 4096, Timeouts::default());
        Workers { w, p, now: 1_000 }
    }

    pub fn a(n: u16) -> Workers {
        Workers::new(node_a_writer(), n)
    }

    /// Worker `at` receives `frame` on `ingress`; a handoff is carried out to its owner.
    pub fn run(&mut self, at: u16, ingress: Ingress, frame: &[u8]) -> Outcome {
        let mut pkts = [HeapBuf::from_frame(frame)];
        let mut out = [Disposition::Drop(DropReason::Runt)];
        self.p[usize::from(at)].process(ingress, &mut pkts, &mut out, self.now);
        let mut handed = None;
        if let Disposition::Handoff { worker, ingress } = out[0] {
            handed = Some((worker, ingress));
            self.p[usize::from(worker)].process_handed(ingress, &mut pkts, &mut out, self.now);
        }
        Outcome {
            d: out[0],
            bytes: pkts[0].data().to_vec(),
            handed,
        }
    }

    /// Conntrack entries per worker.
    pub fn ct_lens(&self) -> Vec<usize> {
        self.p.iter().map(|p| p.conntrack().len()).collect()
    }

    /// One counter summed over the workers.
    pub fn event(&self, e: fastpath::counters::Event) -> u64 {
        self.p
            .iter()
            .map(|p| p.counters().snapshot().event_count(e))
            .sum()
    }
}

/// A second Service of pod B's port 8080, with NodePort 30082 and `externalTrafficPolicy:
/// Local` (the lab's `web-local`).
pub const WEB_LOCAL_NODEPORT: u16 = 30082;
pub fn web_local_svc() -> ServiceSpec {
    ServiceSpec {
        name: "default/web-local:http".into(),
        frontend: FrontendKey {
            ip: Ipv4Addr::new(10, 96, 0, 21),
            ..WEB
        },
        node_port: Some(WEB_LOCAL_NODEPORT),
        node_port_local: true,
        endpoints: vec![EndpointSpec {
            ip: POD_B_IP,
            port: 8080,
            state: EndpointState::Ready,
        }],
    }
}
