//! Links and fault decorators.
//!
//! A [`Link`] carries frames from one end to the other: `send` at one tick, `recv` at a tick when
//! they are due. [`Wire`] is the perfect link; the decorators wrap any link and are composable:
//! [`Loss`], [`Duplicate`], [`Corrupt`] act when a frame is sent, [`Delay`] and [`Reorder`] hold
//! it back. Every pod port (each direction) and the underlay is a link built from a
//! [`Faults`] description ([`Faults::build`]); each decorator draws from its own seeded
//! [`Rng`] stream, so the faults on one link do not depend on traffic elsewhere.
//!
//! # Which bits [`Corrupt`] flips, and why corruption can never cause a wrong delivery
//!
//! A corrupted frame gets exactly **one** flipped bit, anywhere in the frame, at most once in
//! its life (a frame already marked corrupted is passed on untouched, so two flips at two hops
//! cannot cancel each other in a one's-complement checksum). ARP frames are never corrupted:
//! ARP carries no checksum of its own and on a real wire only the Ethernet FCS (outside this
//! simulation) protects it, so a flipped ARP bit models an error no host could detect.
//!
//! Where the single flipped bit can land, and what catches it:
//! - inner or plain IPv4 header: the header checksum (any single-bit error changes a
//!   one's-complement sum), checked by the fast path on every parse and by the receiving pod;
//! - TCP/UDP/ICMP header or payload: the end-to-end L4 checksum, which the fast path does not
//!   check (neither does a router) but the receiving pod does, like a real host. NAT rewrites
//!   update checksums incrementally (RFC 1624), which carries the error through. The one
//!   single-bit change a checksum accepts is a UDP checksum field `0x0001`/`0x8000`… turned
//!   into `0x0000` ("no checksum"), which leaves the data intact;
//! - outer IPv4 header (VXLAN): the outer header checksum; outer UDP length, VNI, I flag and
//!   the inner destination MAC: the VXLAN checks (`vxlan_*` drops); the outer UDP checksum is
//!   zero as sent, so a flip there makes it non-zero and wrong (`vxlan_udp_checksum`);
//! - fields nobody needs to be right: outer MACs, outer UDP source port, VXLAN reserved bits,
//!   the inner source MAC of a VXLAN frame (decap rewrites MACs), the destination MAC of a frame
//!   from a pod (the fast path routes by IP). The frame is then delivered intact;
//! - the source MAC of a frame from a pod: anti-spoofing (`spoofed_mac`); the destination MAC of
//!   a frame to a pod: the pod's NIC filter; an EtherType: unsupported-EtherType drops.
//!
//! So the invariant the checker enforces is: a corrupted frame is dropped by the fast path
//! (counted), or rejected by the receiving pod's own checks (counted), or delivered *intact* to
//! the right pod — and never delivered wrongly. An uncorrupted frame that fails a pod's checks
//! is a violation too (the fast path broke a checksum).

use core::fmt;
use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::packet::Frame;
use crate::rng::Rng;

/// One direction of a port or the underlay.
pub trait Link: fmt::Debug {
    /// Accepts a frame at tick `now`.
    fn send(&mut self, now: u64, frame: Frame);
    /// Appends every frame due at or before `now` to `out`, in delivery order.
    fn recv(&mut self, now: u64, out: &mut Vec<Frame>);
    /// The earliest tick at which [`Link::recv`] would return something (`None`: empty).
    fn next_due(&self) -> Option<u64>;
    /// Drops every frame the link holds (the port went away); returns how many.
    fn flush(&mut self) -> u64;
    /// Adds this link's fault counts to `s`.
    fn stats(&self, s: &mut FaultStats);
}

/// What the fault decorators did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    /// Frames dropped by [`Loss`].
    pub lost: u64,
    /// Copies made by [`Duplicate`].
    pub duplicated: u64,
    /// Frames with a bit flipped by [`Corrupt`].
    pub corrupted: u64,
    /// Frames held back by [`Delay`].
    pub delayed: u64,
    /// Frames given a random extra delay by [`Reorder`].
    pub reordered: u64,
    /// Frames dropped because the link was flushed (its port or node went away).
    pub flushed: u64,
}

impl FaultStats {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &FaultStats) {
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.corrupted += o.corrupted;
        self.delayed += o.delayed;
        self.reordered += o.reordered;
        self.flushed += o.flushed;
    }
}

/// The perfect link: every frame is due the tick it is sent, in order.
#[derive(Debug, Default)]
pub struct Wire {
    q: VecDeque<Frame>,
    flushed: u64,
}

impl Link for Wire {
    fn send(&mut self, _now: u64, frame: Frame) {
        self.q.push_back(frame);
    }
    fn recv(&mut self, _now: u64, out: &mut Vec<Frame>) {
        out.extend(self.q.drain(..));
    }
    fn next_due(&self) -> Option<u64> {
        (!self.q.is_empty()).then_some(0)
    }
    fn flush(&mut self) -> u64 {
        let n = self.q.len() as u64;
        self.q.clear();
        self.flushed += n;
        n
    }
    fn stats(&self, s: &mut FaultStats) {
        s.flushed += self.flushed;
    }
}

/// A fault that acts on each frame as it is sent and passes everything else through: the
/// per-frame decorators ([`Loss`], [`Duplicate`], [`Corrupt`]) wrapped by [`Faulty`].
pub trait SendFault: fmt::Debug {
    /// Does the fault's work on `frame` and hands what is left of it to `inner`.
    fn send(&mut self, now: u64, frame: Frame, inner: &mut dyn Link);
    /// Adds the fault's count to `s`.
    fn stats(&self, s: &mut FaultStats);
}

/// A link with a per-frame fault in front of `inner`.
#[derive(Debug)]
pub struct Faulty<F> {
    fault: F,
    inner: Box<dyn Link>,
}

impl<F: SendFault> Link for Faulty<F> {
    fn send(&mut self, now: u64, frame: Frame) {
        self.fault.send(now, frame, &mut *self.inner);
    }
    fn recv(&mut self, now: u64, out: &mut Vec<Frame>) {
        self.inner.recv(now, out)
    }
    fn next_due(&self) -> Option<u64> {
        self.inner.next_due()
    }
    fn flush(&mut self) -> u64 {
        self.inner.flush()
    }
    fn stats(&self, s: &mut FaultStats) {
        self.fault.stats(s);
        self.inner.stats(s);
    }
}

/// Drops each frame with probability `p`.
#[derive(Debug)]
pub struct Loss {
    p: f64,
    rng: Rng,
    lost: u64,
}

impl Loss {
    /// Wraps `inner`.
    pub fn new(p: f64, rng: Rng, inner: Box<dyn Link>) -> Faulty<Loss> {
        Faulty {
            fault: Loss { p, rng, lost: 0 },
            inner,
        }
    }
}

impl SendFault for Loss {
    fn send(&mut self, now: u64, frame: Frame, inner: &mut dyn Link) {
        if self.rng.chance(self.p) {
            self.lost += 1;
        } else {
            inner.send(now, frame);
        }
    }
    fn stats(&self, s: &mut FaultStats) {
        s.lost += self.lost;
    }
}

/// Sends each frame twice with probability `p` (the copy right behind the original).
#[derive(Debug)]
pub struct Duplicate {
    p: f64,
    rng: Rng,
    duplicated: u64,
}

impl Duplicate {
    /// Wraps `inner`.
    pub fn new(p: f64, rng: Rng, inner: Box<dyn Link>) -> Faulty<Duplicate> {
        Faulty {
            fault: Duplicate {
                p,
                rng,
                duplicated: 0,
            },
            inner,
        }
    }
}

impl SendFault for Duplicate {
    fn send(&mut self, now: u64, frame: Frame, inner: &mut dyn Link) {
        if self.rng.chance(self.p) {
            let mut copy = frame.clone();
            copy.meta.duplicate = true;
            self.duplicated += 1;
            inner.send(now, frame);
            inner.send(now, copy);
        } else {
            inner.send(now, frame);
        }
    }
    fn stats(&self, s: &mut FaultStats) {
        s.duplicated += self.duplicated;
    }
}

/// Flips one random bit of a frame with probability `p` (see the module docs for which frames
/// and why). Marks the frame's metadata `corrupted`.
#[derive(Debug)]
pub struct Corrupt {
    p: f64,
    rng: Rng,
    corrupted: u64,
}

impl Corrupt {
    /// Wraps `inner`.
    pub fn new(p: f64, rng: Rng, inner: Box<dyn Link>) -> Faulty<Corrupt> {
        Faulty {
            fault: Corrupt {
                p,
                rng,
                corrupted: 0,
            },
            inner,
        }
    }
}

/// Flips bit `bit` (counted from the first byte's most significant bit) of `f`.
pub fn flip_bit(f: &mut Frame, bit: usize) {
    use fastpath::buf::PacketBuf;
    let d = f.data_mut();
    if let Some(b) = d.get_mut(bit / 8) {
        *b ^= 0x80 >> (bit % 8);
    }
}

impl SendFault for Corrupt {
    fn send(&mut self, now: u64, mut frame: Frame, inner: &mut dyn Link) {
        use fastpath::buf::PacketBuf;
        let eligible = !frame.meta.corrupted
            && frame.ethertype() != fastpath::wire::ethertype::ARP
            && !frame.is_empty();
        if eligible && self.rng.chance(self.p) {
            let bit = self.rng.index(frame.len() * 8);
            flip_bit(&mut frame, bit);
            frame.meta.corrupted = true;
            self.corrupted += 1;
        }
        inner.send(now, frame);
    }
    fn stats(&self, s: &mut FaultStats) {
        s.corrupted += self.corrupted;
    }
}

/// Holds every frame back for `ticks` ticks (order kept).
#[derive(Debug)]
pub struct Delay {
    ticks: u64,
    q: VecDeque<(u64, Frame)>,
    inner: Box<dyn Link>,
    delayed: u64,
    flushed: u64,
}

impl Delay {
    /// Wraps `inner`.
    pub fn new(ticks: u64, inner: Box<dyn Link>) -> Delay {
        Delay {
            ticks,
            q: VecDeque::new(),
            inner,
            delayed: 0,
            flushed: 0,
        }
    }
}

impl Link for Delay {
    fn send(&mut self, now: u64, frame: Frame) {
        self.delayed += 1;
        self.q.push_back((now + self.ticks, frame));
    }
    fn recv(&mut self, now: u64, out: &mut Vec<Frame>) {
        while self.q.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, f)) = self.q.pop_front() {
                self.inner.send(now, f);
            }
        }
        self.inner.recv(now, out)
    }
    fn next_due(&self) -> Option<u64> {
        let own = self.q.front().map(|(d, _)| *d);
        match (own, self.inner.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn flush(&mut self) -> u64 {
        let n = self.q.len() as u64;
        self.q.clear();
        self.flushed += n;
        n + self.inner.flush()
    }
    fn stats(&self, s: &mut FaultStats) {
        s.delayed += self.delayed;
        s.flushed += self.flushed;
        self.inner.stats(s);
    }
}

/// Gives each frame a random extra delay of 0 to `window` ticks, and releases frames due on the
/// same tick in random order: frames overtake each other.
#[derive(Debug)]
pub struct Reorder {
    window: u64,
    rng: Rng,
    held: BTreeMap<(u64, u64), Frame>,
    inner: Box<dyn Link>,
    reordered: u64,
    flushed: u64,
}

impl Reorder {
    /// Wraps `inner`.
    pub fn new(window: u64, rng: Rng, inner: Box<dyn Link>) -> Reorder {
        Reorder {
            window,
            rng,
            held: BTreeMap::new(),
            inner,
            reordered: 0,
            flushed: 0,
        }
    }
}

impl Link for Reorder {
    fn send(&mut self, now: u64, frame: Frame) {
        let extra = self.rng.range(0, self.window);
        if extra > 0 {
            self.reordered += 1;
        }
        let mut tie = self.rng.next_u64();
        while self.held.contains_key(&(now + extra, tie)) {
            tie = tie.wrapping_add(1);
        }
        self.held.insert((now + extra, tie), frame);
    }
    fn recv(&mut self, now: u64, out: &mut Vec<Frame>) {
        while let Some(e) = self.held.first_entry() {
            if e.key().0 > now {
                break;
            }
            let f = e.remove();
            self.inner.send(now, f);
        }
        self.inner.recv(now, out)
    }
    fn next_due(&self) -> Option<u64> {
        let own = self.held.keys().next().map(|k| k.0);
        match (own, self.inner.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn flush(&mut self) -> u64 {
        let n = self.held.len() as u64;
        self.held.clear();
        self.flushed += n;
        n + self.inner.flush()
    }
    fn stats(&self, s: &mut FaultStats) {
        s.reordered += self.reordered;
        s.flushed += self.flushed;
        self.inner.stats(s);
    }
}

/// The faults of one kind of link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is duplicated.
    pub dup: f64,
    /// Probability a frame gets one bit flipped.
    pub corrupt: f64,
    /// Fixed extra delay, ticks.
    pub delay: u64,
    /// Reordering window, ticks (random extra delay 0..=window).
    pub reorder: u64,
}

impl Faults {
    /// True when the link is perfect.
    pub fn is_none(&self) -> bool {
        self.loss <= 0.0
            && self.dup <= 0.0
            && self.corrupt <= 0.0
            && self.delay == 0
            && self.reorder == 0
    }

    /// The longest a frame can be held on such a link, ticks.
    pub fn max_hold(&self) -> u64 {
        self.delay + self.reorder
    }

    /// A link with these faults. Order on send: loss, then duplication, then corruption (each
    /// copy on its own), then the fixed delay, then the reordering delay, then the wire.
    /// `rng` seeds one stream per decorator.
    pub fn build(&self, mut rng: Rng) -> Box<dyn Link> {
        let mut l: Box<dyn Link> = Box::new(Wire::default());
        if self.is_none() {
            return l;
        }
        let mut sub = || Rng::new(rng.next_u64());
        if self.reorder > 0 {
            l = Box::new(Reorder::new(self.reorder, sub(), l));
        }
        if self.delay > 0 {
            l = Box::new(Delay::new(self.delay, l));
        }
        if self.corrupt > 0.0 {
            l = Box::new(Corrupt::new(self.corrupt, sub(), l));
        }
        if self.dup > 0.0 {
            l = Box::new(Duplicate::new(self.dup, sub(), l));
        }
        if self.loss > 0.0 {
            l = Box::new(Loss::new(self.loss, sub(), l));
        }
        l
    }
}

/// Faults for every kind of link in the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// The underlay (one link shared by all nodes).
    pub underlay: Faults,
    /// Pod → node (each pod port's transmit direction).
    pub pod_tx: Faults,
    /// Node → pod.
    pub pod_rx: Faults,
}

/// A fault specification that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    /// Not `name=value`.
    #[error("fault {0:?}: expected [scope:]name=value, e.g. loss=0.01 or underlay:corrupt=0.001")]
    Syntax(String),
    /// Unknown scope.
    #[error("fault scope {0:?}: expected all, underlay, pods, pod-tx or pod-rx")]
    Scope(String),
    /// Unknown fault.
    #[error("fault {0:?}: expected loss, dup, corrupt (probabilities) or delay, reorder (ticks)")]
    Name(String),
    /// A bad value.
    #[error("fault {0}: bad value {1:?}")]
    Value(String, String),
}

impl FaultPlan {
    /// No faults anywhere.
    pub fn none() -> FaultPlan {
        FaultPlan::default()
    }

    /// True when every link is perfect.
    pub fn is_none(&self) -> bool {
        self.underlay.is_none() && self.pod_tx.is_none() && self.pod_rx.is_none()
    }

    /// Parses `[scope:]name=value,...`: names `loss`, `dup`, `corrupt` (probabilities 0–1),
    /// `delay`, `reorder` (ticks); scopes `all` (the default), `underlay`, `pods` (both
    /// directions of every pod port), `pod-tx`, `pod-rx`. Later items override earlier ones.
    pub fn parse(s: &str) -> Result<FaultPlan, FaultParseError> {
        let mut plan = FaultPlan::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (scope, kv) = match item.split_once(':') {
                Some((sc, kv)) => (sc, kv),
                None => ("all", item),
            };
            let (name, value) = kv
                .split_once('=')
                .ok_or_else(|| FaultParseError::Syntax(item.to_string()))?;
            let targets: Vec<&mut Faults> = match scope {
                "all" => vec![&mut plan.underlay, &mut plan.pod_tx, &mut plan.pod_rx],
                "underlay" => vec![&mut plan.underlay],
                "pods" => vec![&mut plan.pod_tx, &mut plan.pod_rx],
                "pod-tx" => vec![&mut plan.pod_tx],
                "pod-rx" => vec![&mut plan.pod_rx],
                other => return Err(FaultParseError::Scope(other.to_string())),
            };
            let bad = || FaultParseError::Value(name.to_string(), value.to_string());
            match name {
                "loss" | "dup" | "corrupt" => {
                    let p: f64 = value.parse().map_err(|_| bad())?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(bad());
                    }
                    for t in targets {
                        match name {
                            "loss" => t.loss = p,
                            "dup" => t.dup = p,
                            _ => t.corrupt = p,
                        }
                    }
                }
                "delay" | "reorder" => {
                    let n: u64 = value.parse().map_err(|_| bad())?;
                    if n > 10_000 {
                        return Err(bad());
                    }
                    for t in targets {
                        if name == "delay" {
                            t.delay = n;
                        } else {
                            t.reorder = n;
                        }
                    }
                }
                other => return Err(FaultParseError::Name(other.to_string())),
            }
        }
        Ok(plan)
    }

    /// The longest one pod-to-pod hop chain (pod tx, underlay, pod rx) can hold a frame, ticks.
    pub fn max_one_way(&self) -> u64 {
        self.pod_tx.max_hold() + self.underlay.max_hold() + self.pod_rx.max_hold()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Meta;
    use fastpath::buf::PacketBuf;

    fn frame(tag: u8) -> Frame {
        let mut b = vec![0u8; 60];
        b[12] = 0x08;
        b[20] = tag;
        Frame::new(&b, Meta::default())
    }

    fn run(l: &mut dyn Link, frames: u8, ticks: u64) -> Vec<(u64, u8)> {
        let mut got = Vec::new();
        let mut out = Vec::new();
        for t in 0..ticks {
            if t < u64::from(frames) {
                l.send(t, frame(t as u8));
            }
            l.recv(t, &mut out);
            got.extend(out.drain(..).map(|f| (t, f.data()[20])));
        }
        got
    }

    #[test]
    fn wire_is_perfect() {
        let mut w = Faults::default().build(Rng::new(1));
        let got = run(w.as_mut(), 10, 12);
        assert_eq!(got, (0..10).map(|t| (t as u64, t)).collect::<Vec<_>>());
        assert_eq!(w.next_due(), None);
    }

    #[test]
    fn loss_and_duplicate() {
        let f = Faults {
            loss: 1.0,
            ..Faults::default()
        };
        let mut l = f.build(Rng::new(1));
        assert!(run(l.as_mut(), 10, 12).is_empty());
        let mut s = FaultStats::default();
        l.stats(&mut s);
        assert_eq!(s.lost, 10);
        let f = Faults {
            dup: 1.0,
            ..Faults::default()
        };
        let mut l = f.build(Rng::new(1));
        assert_eq!(run(l.as_mut(), 5, 6).len(), 10);
    }

    #[test]
    fn delay_and_reorder() {
        let f = Faults {
            delay: 3,
            ..Faults::default()
        };
        let mut l = f.build(Rng::new(1));
        let got = run(l.as_mut(), 5, 10);
        assert_eq!(got, (0..5).map(|t| (t as u64 + 3, t)).collect::<Vec<_>>());
        let f = Faults {
            reorder: 4,
            ..Faults::default()
        };
        let mut l = f.build(Rng::new(9));
        let got = run(l.as_mut(), 50, 60);
        assert_eq!(got.len(), 50);
        let order: Vec<u8> = got.iter().map(|g| g.1).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_ne!(order, sorted, "some frames overtook others");
        assert!(got
            .iter()
            .all(|&(t, tag)| t >= u64::from(tag) && t <= u64::from(tag) + 4));
    }

    #[test]
    fn corrupt_flips_one_bit_once_and_spares_arp() {
        let f = Faults {
            corrupt: 1.0,
            ..Faults::default()
        };
        let mut l = f.build(Rng::new(5));
        let orig = frame(7);
        l.send(0, orig.clone());
        let mut out = Vec::new();
        l.recv(0, &mut out);
        let got = &out[0];
        assert!(got.meta.corrupted);
        let diff: u32 = got
            .data()
            .iter()
            .zip(orig.data())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(diff, 1);
        // Already corrupted: untouched.
        let again = got.clone();
        l.send(1, again.clone());
        out.clear();
        l.recv(1, &mut out);
        assert_eq!(out[0].data(), again.data());
        // ARP: untouched.
        let mut arp = frame(1);
        arp.data_mut()[12..14].copy_from_slice(&[0x08, 0x06]);
        l.send(2, arp.clone());
        out.clear();
        l.recv(2, &mut out);
        assert_eq!(out[0].data(), arp.data());
        assert!(!out[0].meta.corrupted);
    }

    #[test]
    fn flush_counts() {
        let f = Faults {
            delay: 5,
            ..Faults::default()
        };
        let mut l = f.build(Rng::new(1));
        l.send(0, frame(1));
        l.send(0, frame(2));
        assert_eq!(l.next_due(), Some(5));
        assert_eq!(l.flush(), 2);
        let mut s = FaultStats::default();
        l.stats(&mut s);
        assert_eq!((s.flushed, s.delayed), (2, 2));
    }

    #[test]
    fn parse_plans() {
        let p =
            FaultPlan::parse("loss=0.01,underlay:corrupt=0.001,pod-rx:delay=2,reorder=3").unwrap();
        assert_eq!(p.underlay.loss, 0.01);
        assert_eq!(p.pod_tx.loss, 0.01);
        assert_eq!(p.underlay.corrupt, 0.001);
        assert_eq!(p.pod_tx.corrupt, 0.0);
        assert_eq!(p.pod_rx.delay, 2);
        assert_eq!(p.pod_tx.reorder, 3);
        assert_eq!(p.max_one_way(), 3 + 3 + 5);
        assert!(FaultPlan::parse("").unwrap().is_none());
        assert!(FaultPlan::parse("loss").is_err());
        assert!(FaultPlan::parse("loss=2").is_err());
        assert!(FaultPlan::parse("mars:loss=0.1").is_err());
        assert!(FaultPlan::parse("zap=1").is_err());
    }
}
