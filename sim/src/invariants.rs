//! The invariants the simulator checks on every delivered frame (and on the tables after every
//! sync), with a tally per invariant: how often it was checked, how often it was violated, and
//! the first few violations in words.
//!
//! The ground truth they are checked against: the simulator's own record of every flow
//! (`traffic`), of which pod owns which IP, and of every Service's endpoint membership over
//! time ([`ServiceHistory`]) — never the fast path's tables.

use std::collections::BTreeMap;

use core::net::Ipv4Addr;

use serde::Serialize;

use fastpath::tables::services::FrontendKey;

/// One invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// ARP for the gateway gets the gateway's MAC; a ping to the gateway comes back from it.
    Gateway,
    /// A frame is delivered only to the pod that owns its destination IP.
    DeliveredToOwner,
    /// Pod-to-pod frames keep their source IP and port: no NAT between pods.
    SourceUnchanged,
    /// Every pod reaches every other pod it probes (request delivered, answer back).
    PodReachability,
    /// A node's kernel reaches the other nodes' pods it probes from its VTEP address, and their
    /// answers come back to it.
    NodeReachesPods,
    /// Service traffic reaches a live backend of that Service (ready when the flow picked it).
    ServiceBackend,
    /// The backend sees the client's own address (no SNAT for ClusterIP; hairpin via the
    /// gateway address; a NodePort flow to another node's backend from the VTEP address of the
    /// node it reached).
    ServiceClientIp,
    /// Replies to Service traffic come from the Service's VIP:port.
    ServiceReplyFromVip,
    /// Replies to NodePort traffic reach the external client from the node's address and the
    /// NodePort it reached.
    NodePortReply,
    /// A NodePort flow of a Service with `externalTrafficPolicy: Local` reaches a backend on
    /// the node it was sent to.
    NodePortLocal,
    /// A flow keeps its backend while unrelated endpoints churn (Maglev + conntrack).
    FlowAffinity,
    /// After a pod is deleted nothing is delivered to its IP until the IP is reused.
    NothingAfterDelete,
    /// A corrupted frame is dropped (counted) or rejected by the receiving pod, or delivered
    /// intact to the right pod — never delivered wrongly.
    CorruptionCaught,
    /// A frame nobody corrupted passes the receiving pod's checks (MAC, IPv4 and L4
    /// checksums): the fast path's rewrites keep frames valid.
    ChecksumsIntact,
    /// Every delivered frame carries the intact payload of a known flow.
    PayloadIntact,
    /// After every sync, and at the end, a node's tables equal the desired state.
    TablesMatchDesired,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 16] = [
        Invariant::Gateway,
        Invariant::DeliveredToOwner,
        Invariant::SourceUnchanged,
        Invariant::PodReachability,
        Invariant::NodeReachesPods,
        Invariant::ServiceBackend,
        Invariant::ServiceClientIp,
        Invariant::ServiceReplyFromVip,
        Invariant::NodePortReply,
        Invariant::NodePortLocal,
        Invariant::FlowAffinity,
        Invariant::NothingAfterDelete,
        Invariant::CorruptionCaught,
        Invariant::ChecksumsIntact,
        Invariant::PayloadIntact,
        Invariant::TablesMatchDesired,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Gateway => "gateway",
            Invariant::DeliveredToOwner => "delivered_to_owner",
            Invariant::SourceUnchanged => "pod_source_unchanged",
            Invariant::PodReachability => "pod_reachability",
            Invariant::NodeReachesPods => "node_reaches_pods",
            Invariant::ServiceBackend => "service_backend_live",
            Invariant::ServiceClientIp => "service_client_ip_kept",
            Invariant::ServiceReplyFromVip => "service_reply_from_vip",
            Invariant::NodePortReply => "nodeport_reply_from_node",
            Invariant::NodePortLocal => "nodeport_local_stays_on_node",
            Invariant::FlowAffinity => "flow_affinity",
            Invariant::NothingAfterDelete => "nothing_after_delete",
            Invariant::CorruptionCaught => "corruption_never_misdelivers",
            Invariant::ChecksumsIntact => "checksums_intact",
            Invariant::PayloadIntact => "payload_intact",
            Invariant::TablesMatchDesired => "tables_match_desired",
        }
    }

    /// What it means, in one line.
    pub fn description(self) -> &'static str {
        match self {
            Invariant::Gateway => "ARP for the gateway is answered with the gateway MAC; gateway pings come back from it",
            Invariant::DeliveredToOwner => "a frame is delivered only to the pod that owns its destination IP",
            Invariant::SourceUnchanged => "pod-to-pod frames arrive with source IP and port unchanged (no NAT between pods)",
            Invariant::PodReachability => "every probed pod pair is reached (request delivered, answer back)",
            Invariant::NodeReachesPods => "a node's kernel reaches the other nodes' pods it probes from its VTEP address, answers back to it",
            Invariant::ServiceBackend => "Service traffic reaches a live backend of that Service (ready when picked)",
            Invariant::ServiceClientIp => "a backend sees the client's own IP (hairpin: the gateway IP; NodePort to another node's backend: that node's VTEP IP)",
            Invariant::ServiceReplyFromVip => "replies to Service traffic come from the VIP:port",
            Invariant::NodePortReply => "replies to NodePort traffic reach the external client from the node's address:NodePort",
            Invariant::NodePortLocal => "a NodePort flow of a Local-policy Service reaches a backend on the node it was sent to",
            Invariant::FlowAffinity => "a flow keeps its backend while unrelated endpoints churn",
            Invariant::NothingAfterDelete => "after a pod is deleted nothing is delivered to its IP until it is reused",
            Invariant::CorruptionCaught => "a corrupted frame is dropped or rejected, or delivered intact to the right pod",
            Invariant::ChecksumsIntact => "an uncorrupted frame passes the receiving pod's MAC/IPv4/L4 checks",
            Invariant::PayloadIntact => "every delivered frame carries the intact payload of a known flow",
            Invariant::TablesMatchDesired => "after every sync and at the end, each node's tables equal the desired state",
        }
    }
}

/// The tally of one invariant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Times it was checked.
    pub checks: u64,
    /// Times it did not hold.
    pub violations: u64,
    /// The first violations, in words.
    pub examples: Vec<String>,
}

/// One invariant's result, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvariantResult {
    /// Short name.
    pub name: String,
    /// What it means.
    pub description: String,
    /// Times checked.
    pub checks: u64,
    /// Times violated.
    pub violations: u64,
    /// True when never violated.
    pub ok: bool,
    /// The first violations.
    pub examples: Vec<String>,
}

/// Counts checks and violations.
#[derive(Debug, Clone)]
pub struct Checker {
    tallies: BTreeMap<Invariant, Tally>,
    max_examples: usize,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new(5)
    }
}

impl Checker {
    /// A checker keeping up to `max_examples` examples per invariant.
    pub fn new(max_examples: usize) -> Checker {
        Checker {
            tallies: Invariant::ALL
                .iter()
                .map(|&i| (i, Tally::default()))
                .collect(),
            max_examples,
        }
    }

    fn tally(&mut self, inv: Invariant) -> &mut Tally {
        self.tallies.entry(inv).or_default()
    }

    /// Records a check that held.
    pub fn pass(&mut self, inv: Invariant) {
        self.tally(inv).checks += 1;
    }

    /// Records a check that failed at tick `now`; `detail` is only evaluated for the first few.
    pub fn fail(&mut self, inv: Invariant, now: u64, detail: impl FnOnce() -> String) {
        let max = self.max_examples;
        let t = self.tally(inv);
        t.checks += 1;
        t.violations += 1;
        if t.examples.len() < max {
            t.examples.push(format!("t={now}ms: {}", detail()));
        }
    }

    /// Records a check: passes when `ok`.
    pub fn check(&mut self, inv: Invariant, ok: bool, now: u64, detail: impl FnOnce() -> String) {
        if ok {
            self.pass(inv);
        } else {
            self.fail(inv, now, detail);
        }
    }

    /// Violations so far, over all invariants.
    pub fn total_violations(&self) -> u64 {
        self.tallies.values().map(|t| t.violations).sum()
    }

    /// One invariant's tally.
    pub fn get(&self, inv: Invariant) -> Tally {
        self.tallies.get(&inv).cloned().unwrap_or_default()
    }

    /// Every invariant's result, in report order.
    pub fn results(&self) -> Vec<InvariantResult> {
        Invariant::ALL
            .iter()
            .map(|&i| {
                let t = self.get(i);
                InvariantResult {
                    name: i.name().into(),
                    description: i.description().into(),
                    checks: t.checks,
                    violations: t.violations,
                    ok: t.violations == 0,
                    examples: t.examples,
                }
            })
            .collect()
    }
}

/// One stretch of time during which an endpoint belonged to a Service. A change made at tick
/// `t` happens in the middle of the tick (see `sim`), so packets processed at `t` may have seen
/// either version of the tables: both ends of a stretch count as inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// Endpoint IP (host order).
    pub ip: u32,
    /// Endpoint port.
    pub port: u16,
    /// Added at.
    pub added: u64,
    /// Became terminating at (takes no new flows from then on).
    pub ready_until: Option<u64>,
    /// Removed at.
    pub removed: Option<u64>,
}

/// A Service's endpoint membership over the whole run.
#[derive(Debug, Clone)]
pub struct ServiceHistory {
    /// The Service's index.
    pub idx: u32,
    /// Its frontend.
    pub frontend: FrontendKey,
    /// Its endpoints' target port.
    pub target_port: u16,
    spans: Vec<Membership>,
}

impl ServiceHistory {
    /// A Service with no endpoints yet.
    pub fn new(idx: u32, frontend: FrontendKey, target_port: u16) -> ServiceHistory {
        ServiceHistory {
            idx,
            frontend,
            target_port,
            spans: Vec::new(),
        }
    }

    fn current_mut(&mut self, ip: u32, port: u16) -> Option<&mut Membership> {
        self.spans
            .iter_mut()
            .find(|m| m.ip == ip && m.port == port && m.removed.is_none())
    }

    /// The endpoint joins (ready) at `now`.
    pub fn add(&mut self, ip: u32, port: u16, now: u64) {
        if self.current_mut(ip, port).is_none() {
            self.spans.push(Membership {
                ip,
                port,
                added: now,
                ready_until: None,
                removed: None,
            });
        }
    }

    /// The endpoint turns terminating at `now`.
    pub fn terminate(&mut self, ip: u32, port: u16, now: u64) {
        if let Some(m) = self.current_mut(ip, port) {
            m.ready_until.get_or_insert(now);
        }
    }

    /// The endpoint leaves at `now`.
    pub fn remove(&mut self, ip: u32, port: u16, now: u64) {
        if let Some(m) = self.current_mut(ip, port) {
            m.removed = Some(now);
            m.ready_until.get_or_insert(now);
        }
    }

    /// Current members: `(ip, port, ready)`.
    pub fn current(&self) -> impl Iterator<Item = (u32, u16, bool)> + '_ {
        self.spans
            .iter()
            .filter(|m| m.removed.is_none())
            .map(|m| (m.ip, m.port, m.ready_until.is_none()))
    }

    /// Number of ready members now.
    pub fn ready_count(&self) -> usize {
        self.current().filter(|m| m.2).count()
    }

    fn spans_of(&self, ip: u32, port: u16) -> impl Iterator<Item = &Membership> {
        self.spans
            .iter()
            .filter(move |m| m.ip == ip && m.port == port)
    }

    /// A member at some tick of `[t0, t1]`.
    pub fn member_during(&self, ip: u32, port: u16, t0: u64, t1: u64) -> bool {
        self.spans_of(ip, port)
            .any(|m| m.added <= t1 && m.removed.is_none_or(|r| r >= t0))
    }

    /// A ready member at some tick of `[t0, t1]`.
    pub fn ready_during(&self, ip: u32, port: u16, t0: u64, t1: u64) -> bool {
        self.spans_of(ip, port)
            .any(|m| m.added <= t1 && m.ready_until.is_none_or(|r| r >= t0))
    }

    /// A member without interruption over all of `[t0, t1]`.
    pub fn member_throughout(&self, ip: u32, port: u16, t0: u64, t1: u64) -> bool {
        self.spans_of(ip, port)
            .any(|m| m.added <= t0 && m.removed.is_none_or(|r| r > t1))
    }

    /// Removed at some tick of `[t0, t1]`.
    pub fn removed_between(&self, ip: u32, port: u16, t0: u64, t1: u64) -> bool {
        self.spans_of(ip, port)
            .any(|m| m.removed.is_some_and(|r| r >= t0 && r <= t1))
    }

    /// Removed at some tick at or after `t0`.
    pub fn removed_since(&self, ip: u32, port: u16, t0: u64) -> bool {
        self.spans_of(ip, port)
            .any(|m| m.removed.is_some_and(|r| r >= t0))
    }

    /// The ClusterIP (host order).
    pub fn vip(&self) -> u32 {
        self.frontend.ip.to_bits()
    }
}

/// Formats a host-order address.
pub fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_and_examples() {
        let mut c = Checker::new(2);
        c.pass(Invariant::Gateway);
        for n in 0..5 {
            c.fail(Invariant::FlowAffinity, n, || format!("moved {n}"));
        }
        c.check(Invariant::Gateway, true, 0, || unreachable!());
        let r = c.results();
        let g = r.iter().find(|x| x.name == "gateway").unwrap();
        assert_eq!((g.checks, g.violations, g.ok), (2, 0, true));
        let f = r.iter().find(|x| x.name == "flow_affinity").unwrap();
        assert_eq!((f.checks, f.violations, f.ok), (5, 5, false));
        assert_eq!(f.examples, vec!["t=0ms: moved 0", "t=1ms: moved 1"]);
        assert_eq!(c.total_violations(), 5);
    }

    #[test]
    fn membership_windows() {
        let f = crate::topology::frontend(0);
        let mut h = ServiceHistory::new(0, f, 8080);
        h.add(1, 8080, 10);
        h.terminate(1, 8080, 20);
        h.remove(1, 8080, 30);
        h.add(1, 8080, 40);
        assert!(h.member_during(1, 8080, 25, 26));
        assert!(
            h.member_during(1, 8080, 30, 39),
            "the removal tick counts as inside"
        );
        assert!(!h.member_during(1, 8080, 31, 39));
        assert!(h.member_during(1, 8080, 31, 40));
        assert!(h.ready_during(1, 8080, 0, 10));
        assert!(!h.ready_during(1, 8080, 21, 39));
        assert!(h.member_throughout(1, 8080, 10, 29));
        assert!(!h.member_throughout(1, 8080, 10, 30));
        assert!(h.removed_since(1, 8080, 30));
        assert!(!h.removed_since(1, 8080, 31));
        assert_eq!(h.current().collect::<Vec<_>>(), vec![(1, 8080, true)]);
        assert_eq!(h.ready_count(), 1);
    }
}
