//! The links between pods and their nodes: one [`Link`] per pod port and direction, created
//! when a port is first used and kept for the port's life (a new pod on a reused port gets the
//! same link, flushed when the previous pod went away), plus the bookkeeping that lets the
//! simulator poll only the links that have something due.

use std::collections::BTreeSet;

use crate::faults::{FaultStats, Faults, Link};
use crate::packet::Frame;
use crate::rng::{streams, Rng};

/// Every link of one direction (pod → node, or node → pod), indexed by `node × ports + port`.
#[derive(Debug)]
pub struct PortLinks {
    faults: Faults,
    seed: u64,
    dir: u64,
    links: Vec<Option<Box<dyn Link>>>,
    armed: Vec<Option<u64>>,
    due: BTreeSet<(u64, u32)>,
}

impl PortLinks {
    /// Links with `faults` for `n` ports in all; `dir` tells the two directions' random streams
    /// apart.
    pub fn new(faults: Faults, seed: u64, dir: u64, n: usize) -> PortLinks {
        PortLinks {
            faults,
            seed,
            dir,
            links: (0..n).map(|_| None).collect(),
            armed: vec![None; n],
            due: BTreeSet::new(),
        }
    }

    fn link(&mut self, id: u32) -> &mut Box<dyn Link> {
        let (faults, seed, dir) = (self.faults, self.seed, self.dir);
        self.links[id as usize].get_or_insert_with(|| {
            faults.build(Rng::stream(
                seed,
                streams::POD_LINK,
                u64::from(id) * 2 + dir,
            ))
        })
    }

    /// Sends `f` on link `id` at `now`.
    pub fn send(&mut self, id: u32, now: u64, f: Frame) {
        self.link(id).send(now, f);
        self.arm(id, now);
    }

    fn arm(&mut self, id: u32, now: u64) {
        let Some(link) = self.links[id as usize].as_ref() else {
            return;
        };
        let Some(due) = link.next_due() else {
            return;
        };
        let due = due.max(now);
        let slot = &mut self.armed[id as usize];
        if slot.is_none_or(|a| due < a) {
            if let Some(a) = *slot {
                self.due.remove(&(a, id));
            }
            self.due.insert((due, id));
            *slot = Some(due);
        }
    }

    /// Collects every frame due at `now` from every link, as `(link id, frame)`, links in
    /// (due tick, id) order.
    pub fn poll(&mut self, now: u64, out: &mut Vec<(u32, Frame)>) {
        let mut frames = Vec::new();
        while let Some(&(due, id)) = self.due.first() {
            if due > now {
                break;
            }
            self.due.pop_first();
            self.armed[id as usize] = None;
            if let Some(l) = self.links[id as usize].as_mut() {
                l.recv(now, &mut frames);
            }
            out.extend(frames.drain(..).map(|f| (id, f)));
            self.arm(id, now + 1);
        }
    }

    /// Drops everything link `id` holds; returns how many frames.
    pub fn flush(&mut self, id: u32) -> u64 {
        self.links[id as usize].as_mut().map_or(0, |l| l.flush())
    }

    /// True when some link holds frames.
    pub fn busy(&self) -> bool {
        !self.due.is_empty()
    }

    /// Fault tallies over every link.
    pub fn stats(&self) -> FaultStats {
        let mut s = FaultStats::default();
        for l in self.links.iter().flatten() {
            l.stats(&mut s);
        }
        s
    }
}
