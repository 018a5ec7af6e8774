//! The pipeline's entry point for fuzzers and property tests: arbitrary bytes in, never a panic.
//!
//! Input format: a sequence of records `[ingress: u8][len: u16 LE][frame: len bytes]`; the
//! ingress byte picks node A's or node B's pipeline (lab tables from [`crate::fixtures`]) and
//! the port (pod ports, an unknown port, the uplink, the host path). A short last record takes
//! what is left. Both pipelines keep their conntrack across the records of one input, so flows
//! that a fuzzer builds up (new flow, reply, teardown) are exercised too.

use crate::buf::{HeapBuf, PacketBuf};
use crate::counters::{Disposition, DropReason, Event};
use crate::fixtures::{node_a_writer, node_b_writer};
use crate::pipeline::{Ingress, Pipeline, BURST};
use crate::tables::conntrack::Timeouts;
use crate::update::TableWriter;

/// Two nodes' pipelines, built once per thread.
struct Rig {
    _a: TableWriter,
    _b: TableWriter,
    a: Pipeline,
    b: Pipeline,
}

fn rig() -> Rig {
    let a = node_a_writer();
    let b = node_b_writer();
    let pa = Pipeline::new(a.reader(), 1024, Timeouts::default());
    let pb = Pipeline::new(b.reader(), 1024, Timeouts::default());
    Rig {
        _a: a,
        _b: b,
        a: pa,
        b: pb,
    }
}

fn ingress_of(sel: u8) -> Ingress {
    match sel % 6 {
        0 => Ingress::Pod(0),
        1 => Ingress::Pod(1),
        2 => Ingress::Pod(7),
        3 | 4 => Ingress::Uplink,
        _ => Ingress::Host,
    }
}

/// Runs `data` through the pipelines. Returns how many packets were processed. Checks, as
/// invariants, that every packet got exactly one counted disposition and that forwarded
/// packets are at least an Ethernet header long.
pub fn run_pipeline(data: &[u8]) -> usize {
    let mut r = rig();
    let mut rest = data;
    let mut n = 0;
    let mut now = 1_000;
    while !rest.is_empty() {
        let sel = rest[0];
        let len = match rest.get(1..3) {
            Some(l) => u16::from_le_bytes([l[0], l[1]]) as usize,
            None => rest.len(),
        };
        let body = rest.get(3..).unwrap_or(&[]);
        let take = len.min(body.len());
        let frame = &body[..take];
        rest = &body[take..];
        let p = if sel & 0x80 == 0 { &mut r.a } else { &mut r.b };
        // Send the frame twice in one burst (bursts with repeated flows are the interesting
        // conntrack case) and once alone.
        let mut pkts = [HeapBuf::from_frame(frame), HeapBuf::from_frame(frame)];
        let mut out = [Disposition::Drop(DropReason::Runt); BURST];
        let before = p.counters().snapshot();
        p.process(ingress_of(sel), &mut pkts, &mut out, now);
        let after = p.counters().snapshot();
        let rx = |s: &crate::counters::CounterSnapshot| {
            s.event_count(Event::RxPod)
                + s.event_count(Event::RxUplink)
                + s.event_count(Event::RxHost)
        };
        let tx = |s: &crate::counters::CounterSnapshot| {
            s.event_count(Event::TxPod)
                + s.event_count(Event::TxUplink)
                + s.event_count(Event::TxHost)
                + s.event_count(Event::Dropped)
        };
        assert_eq!(rx(&after) - rx(&before), 2, "every packet counted in");
        assert_eq!(
            tx(&after) - tx(&before),
            2,
            "every packet counted out exactly once"
        );
        for (pkt, d) in pkts.iter().zip(out.iter()) {
            if !matches!(d, Disposition::Drop(_)) {
                assert!(pkt.len() >= 14, "forwarded a frame shorter than Ethernet");
            }
        }
        p.maintain(now, 64);
        now += 1_000;
        n += 2;
    }
    n
}
