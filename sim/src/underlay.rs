//! The in-memory underlay: one shared [`Link`] (with the underlay's fault decorators) that
//! carries every frame a node's uplink or an external client sends, and delivers each to the
//! node whose underlay IP is the frame's outer IPv4 destination, or to the external client
//! whose address it is — an L3 fabric. Frames for an address nobody holds (a node that left, a
//! corrupted destination) or that are not IPv4 are counted and dropped.

use serde::Serialize;

use crate::faults::{FaultStats, Link};
use crate::packet::Frame;
use crate::topology;

/// Underlay tallies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnderlayStats {
    /// Frames put on the underlay.
    pub sent: u64,
    /// Frames handed to a node.
    pub delivered: u64,
    /// Frames handed to an external client.
    pub to_external: u64,
    /// Frames for an address no node in the cluster holds.
    pub no_such_host: u64,
    /// Frames that were not IPv4.
    pub not_ipv4: u64,
}

/// Where the underlay delivers a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A node (its index).
    Node(u32),
    /// An external client (its index).
    External(u32),
}

/// The `from_node` of a frame an external client sent.
pub const FROM_OUTSIDE: u32 = u32::MAX;

/// The underlay.
#[derive(Debug)]
pub struct Underlay {
    link: Box<dyn Link>,
    /// Tallies.
    pub stats: UnderlayStats,
    scratch: Vec<Frame>,
}

impl Underlay {
    /// An underlay over `link`.
    pub fn new(link: Box<dyn Link>) -> Underlay {
        Underlay {
            link,
            stats: UnderlayStats::default(),
            scratch: Vec::new(),
        }
    }

    /// A node's uplink (or, `from_node` [`FROM_OUTSIDE`], an external client) sends `frame`
    /// at `now`.
    pub fn send(&mut self, now: u64, from_node: u32, mut frame: Frame) {
        frame.meta.from_node = from_node;
        self.stats.sent += 1;
        self.link.send(now, frame);
    }

    /// True when frames are in flight.
    pub fn busy(&self) -> bool {
        self.link.next_due().is_some()
    }

    /// Delivers every frame due at `now`: `deliver(dest, frame)` for each, in order.
    /// `attached` says whether a node index is in the cluster; `externals` how many external
    /// clients there are.
    pub fn deliver(
        &mut self,
        now: u64,
        attached: impl Fn(u32) -> bool,
        externals: u32,
        mut deliver: impl FnMut(Dest, Frame),
    ) {
        let mut due = std::mem::take(&mut self.scratch);
        self.link.recv(now, &mut due);
        for f in due.drain(..) {
            let Some(dst) = f.ipv4_dst() else {
                self.stats.not_ipv4 += 1;
                continue;
            };
            if let Some(k) = topology::external_of(dst).filter(|&k| k < externals) {
                self.stats.to_external += 1;
                deliver(Dest::External(k), f);
                continue;
            }
            match topology::node_of_underlay(dst).filter(|&n| attached(n)) {
                Some(n) => {
                    self.stats.delivered += 1;
                    deliver(Dest::Node(n), f);
                }
                None => self.stats.no_such_host += 1,
            }
        }
        self.scratch = due;
    }

    /// The fault decorators' tallies.
    pub fn fault_stats(&self) -> FaultStats {
        let mut s = FaultStats::default();
        self.link.stats(&mut s);
        s
    }
}
