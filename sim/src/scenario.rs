//! Events: what changes in the cluster while traffic flows, and when.
//!
//! A [`ChurnSpec`] says how many events of each kind a run has; [`schedule`] spreads them over
//! the run at seeded random ticks (after a short warm-up, so pods have resolved their gateways
//! and flows are in flight when the churn starts). What each event hits (which pod, node,
//! Service, endpoint) is drawn when it fires, from the state at that moment.
//!
//! | event | what happens |
//! |---|---|
//! | pod create | a new pod on a random node (next free IP, lowest free port, new MAC); its node gets `AddPod` |
//! | pod delete | a random pod goes, with frames in flight to and from it: its endpoints are removed from every Service, its node gets `RemovePod`, its port's queues are flushed |
//! | endpoint churn | on a random Service: add a ready endpoint, mark one terminating, or remove one |
//! | node leave | a random node goes: its pods are deleted, every other node gets `RemoveNode`; it rejoins 50–200 ms later (node join: `AddNode` everywhere, a full sync for it, new pods on the old pods' addresses — its IPAM starts afresh) |
//! | control restart | the control side restarts and resyncs every node (`Snapshot` of the desired state, applied as a difference; conntrack survives) |
//! | fast-path restart | a random node's fast path restarts: tables rebuilt from a snapshot of its old tables, conntrack lost, 5 ms without forwarding, then a control resync |

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rng::Rng;

/// How many events of each kind a run has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChurnSpec {
    /// Pod deletions and as many pod creations.
    pub pods: u32,
    /// Service endpoint changes.
    pub endpoints: u32,
    /// Node departures (each followed by a rejoin).
    pub nodes: u32,
    /// Control restarts (full resync of every node).
    pub control_restarts: u32,
    /// Fast-path restarts (one node each).
    pub fastpath_restarts: u32,
}

/// A churn specification that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChurnParseError {
    /// Not `name=count`.
    #[error("churn {0:?}: expected name=count, e.g. pods=10")]
    Syntax(String),
    /// Unknown event kind.
    #[error("churn {0:?}: expected pods, endpoints, nodes, control-restart or fastpath-restart")]
    Name(String),
    /// Not a count.
    #[error("churn {0}: bad count {1:?}")]
    Value(String, String),
}

impl ChurnSpec {
    /// Parses `pods=N,endpoints=N,nodes=N,control-restart=N,fastpath-restart=N` (any subset).
    pub fn parse(s: &str) -> Result<ChurnSpec, ChurnParseError> {
        let mut c = ChurnSpec::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| ChurnParseError::Syntax(item.into()))?;
            let n: u32 = v
                .parse()
                .map_err(|_| ChurnParseError::Value(k.into(), v.into()))?;
            match k {
                "pods" => c.pods = n,
                "endpoints" => c.endpoints = n,
                "nodes" => c.nodes = n,
                "control-restart" | "control-restarts" => c.control_restarts = n,
                "fastpath-restart" | "fastpath-restarts" => c.fastpath_restarts = n,
                other => return Err(ChurnParseError::Name(other.into())),
            }
        }
        Ok(c)
    }

    /// True when nothing changes.
    pub fn is_none(&self) -> bool {
        *self == ChurnSpec::default()
    }
}

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    /// Create a pod.
    PodCreate,
    /// Delete a pod.
    PodDelete,
    /// Change one Service endpoint.
    EndpointChurn,
    /// A node leaves.
    NodeLeave,
    /// Node `n` (re)joins.
    NodeJoin(u32),
    /// Control restart.
    ControlRestart,
    /// Fast-path restart.
    FastpathRestart,
}

/// What happened, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    /// Pods created by churn (the initial pods not counted).
    pub pod_creates: u64,
    /// Pods deleted (node departures included).
    pub pod_deletes: u64,
    /// Endpoints added.
    pub endpoint_adds: u64,
    /// Endpoints marked terminating.
    pub endpoint_terminations: u64,
    /// Endpoints removed (pod deletions included).
    pub endpoint_removes: u64,
    /// Nodes that left.
    pub node_leaves: u64,
    /// Nodes that (re)joined.
    pub node_joins: u64,
    /// Control restarts.
    pub control_restarts: u64,
    /// Fast-path restarts.
    pub fastpath_restarts: u64,
    /// Events that found nothing to act on (e.g. no pod left to delete).
    pub skipped: u64,
}

/// Pending events, by (tick, sequence).
pub type Agenda = BTreeMap<(u64, u64), EventKind>;

/// Spreads the events of `spec` over `[warmup, duration)`.
pub fn schedule(spec: &ChurnSpec, duration: u64, rng: &mut Rng) -> Agenda {
    let mut agenda = Agenda::new();
    let warmup = (duration / 5).min(100);
    let end = duration.max(warmup + 1);
    let mut seq = 0u64;
    let mut put = |agenda: &mut Agenda, kind: EventKind, n: u32, rng: &mut Rng| {
        for _ in 0..n {
            let t = rng.range(warmup, end - 1);
            agenda.insert((t, seq), kind);
            seq += 1;
        }
    };
    put(&mut agenda, EventKind::PodDelete, spec.pods, rng);
    put(&mut agenda, EventKind::PodCreate, spec.pods, rng);
    put(&mut agenda, EventKind::EndpointChurn, spec.endpoints, rng);
    put(&mut agenda, EventKind::NodeLeave, spec.nodes, rng);
    put(
        &mut agenda,
        EventKind::ControlRestart,
        spec.control_restarts,
        rng,
    );
    put(
        &mut agenda,
        EventKind::FastpathRestart,
        spec.fastpath_restarts,
        rng,
    );
    agenda
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_schedule() {
        let c = ChurnSpec::parse("pods=3,endpoints=5,nodes=1,control-restart=1,fastpath-restart=2")
            .unwrap();
        assert_eq!(c.pods, 3);
        assert_eq!(c.fastpath_restarts, 2);
        assert!(ChurnSpec::parse("").unwrap().is_none());
        assert!(ChurnSpec::parse("pods").is_err());
        assert!(ChurnSpec::parse("pods=x").is_err());
        assert!(ChurnSpec::parse("volcano=1").is_err());
        let a = schedule(&c, 1000, &mut Rng::new(1));
        assert_eq!(a.len(), 3 + 3 + 5 + 1 + 1 + 2);
        assert!(a.keys().all(|&(t, _)| (100..1000).contains(&t)));
        assert_eq!(a, schedule(&c, 1000, &mut Rng::new(1)));
    }
}
