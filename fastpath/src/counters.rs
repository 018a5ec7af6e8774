//! Per-core counters: one per drop reason and one per disposition, generated from one table.
//!
//! Each worker owns a [`Counters`]; only it writes, with a relaxed load + store (a plain `mov`
//! and `add` on x86, no `lock` prefix), and any thread may read them. [`CounterSnapshot`] sums
//! the workers' counters on read.

use core::sync::atomic::{AtomicU64, Ordering};

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $help:literal; )+) => {
        /// Why the pipeline dropped a packet. One `Copy` enum; the counter name and help text
        /// come from the same table (like VPP's `vxlan_error.def`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $variant, )+
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )+ ];
            /// How many reasons there are.
            pub const COUNT: usize = DropReason::ALL.len();

            /// The counter's name (Prometheus-friendly, snake case).
            pub const fn name(self) -> &'static str {
                match self { $( DropReason::$variant => $name, )+ }
            }

            /// One line saying what the drop means.
            pub const fn help(self) -> &'static str {
                match self { $( DropReason::$variant => $help, )+ }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    Runt => "runt", "frame shorter than an Ethernet header";
    /// Longer than the port accepts.
    Jumbo => "jumbo", "frame longer than the configured maximum";
    /// An EtherType the pipeline does not forward from this ingress.
    UnsupportedEthertype => "unsupported_ethertype", "EtherType not forwarded from this port (only IPv4 and ARP)";
    /// The frame's source MAC is not the pod's.
    SpoofedMac => "spoofed_mac", "source MAC is not the sending pod's MAC";
    /// The packet's source IP (or ARP sender IP) is not the pod's.
    SpoofedIp => "spoofed_ip", "source IP is not the sending pod's IP";
    /// The ingress port has no pod attached.
    UnknownPort => "unknown_port", "packet from a port with no pod attached";
    /// An ARP packet that is not Ethernet/IPv4 or is truncated.
    ArpMalformed => "arp_malformed", "ARP packet with wrong lengths, types or truncated";
    /// An ARP packet the fast path consumes without answering (replies, probes, announcements).
    ArpIgnored => "arp_ignored", "ARP not answered: reply, probe, announcement or for the pod's own address";
    /// A truncated or inconsistent IPv4 header.
    Ipv4Malformed => "ipv4_malformed", "IPv4 header truncated, bad version/IHL or total length";
    /// An IPv4 header whose checksum is wrong.
    Ipv4Checksum => "ipv4_checksum", "IPv4 header checksum is wrong";
    /// TTL would reach zero.
    TtlExpired => "ttl_expired", "TTL expired in transit";
    /// A truncated or inconsistent TCP/UDP/ICMP header.
    L4Malformed => "l4_malformed", "TCP/UDP header truncated or inconsistent";
    /// A new Service flow whose TCP/UDP checksum is wrong: it creates no conntrack state.
    L4Checksum => "l4_checksum", "TCP/UDP checksum wrong on a packet that would create a conntrack entry";
    /// A fragment of a packet whose handling needs ports (Service, NodePort, VXLAN).
    Fragment => "fragment", "IPv4 fragment where ports are needed (Service, NodePort, VXLAN)";
    /// Destination is nowhere the node knows and unknown destinations are dropped.
    NoRoute => "no_route", "destination is not a pod, node, Service or host-path address";
    /// Decapsulated or reverse-NATed traffic for a pod IP with no local pod.
    NoLocalPod => "no_local_pod", "destination IP in the local pod CIDR has no pod";
    /// Service with no ready backend.
    NoBackend => "no_backend", "Service has no ready endpoint";
    /// NodePort of an `externalTrafficPolicy: Local` Service with no ready endpoint on this node
    /// (kube-proxy drops these too: the client's address is kept, so no other node may answer).
    NoLocalEndpoint => "no_local_endpoint", "NodePort of an externalTrafficPolicy Local Service with no ready endpoint on this node";
    /// The packet plus the VXLAN header does not fit the underlay MTU.
    TooBig => "too_big", "packet too big for the underlay MTU after encapsulation and DF set";
    /// Not enough headroom to prepend the outer header (buffer layout problem).
    NoHeadroom => "no_headroom", "buffer has no headroom for the outer header";
    /// VXLAN packet with the I flag clear (RFC 7348 section 5).
    VxlanFlags => "vxlan_flags", "VXLAN header without the I flag";
    /// VXLAN packet for a VNI this node does not serve.
    VxlanVni => "vxlan_wrong_vni", "VXLAN packet with a VNI other than the node's";
    /// VXLAN packet from a source that is not a known node.
    VxlanUnknownVtep => "vxlan_unknown_vtep", "VXLAN packet from an unknown source VTEP";
    /// VXLAN outer UDP checksum is non-zero and wrong.
    VxlanUdpChecksum => "vxlan_udp_checksum", "VXLAN outer UDP checksum is wrong";
    /// The inner frame is not for this node's VTEP MAC or not IPv4.
    VxlanInner => "vxlan_inner", "VXLAN inner frame malformed, not IPv4 or not for this VTEP's MAC";
    /// Conntrack could not insert: the reply tuple collides and no other source port is free.
    NatPortExhausted => "nat_port_exhausted", "no free source port for SNAT";
    /// A new flow that conntrack had no room for.
    ConntrackFull => "conntrack_full", "conntrack table full and nothing could be evicted";
    /// A multicast or broadcast IPv4 destination (not routed between pods).
    Multicast => "multicast", "multicast or broadcast IPv4 destination";
    /// ICMP the gateway does not answer.
    IcmpIgnored => "icmp_ignored", "ICMP to the gateway that is not an echo request";
    /// The destination port's transmit queue stayed full (I/O layer).
    TxQueueFull => "tx_queue_full", "transmit queue full: packet freed (I/O layer)";
    /// A multi-segment buffer (the pipeline handles single-segment packets; I/O layer).
    MultiSegment => "multi_segment", "multi-segment packet buffer (I/O layer)";
    /// The packet was for the host path or a pod port that is not attached (I/O layer).
    NoSuchPort => "no_such_port", "destination port not attached (I/O layer)";
    /// The worker that owns the packet's flow had its handoff queue full (I/O layer).
    HandoffQueueFull => "handoff_queue_full", "handoff queue to the flow's owner worker full: packet freed (I/O layer)";
}

/// Where one packet goes. The pipeline fills one per packet of a burst (VPP's next-node array);
/// the I/O layer then sends the burst on in bulk per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Out of a pod port.
    ToPod(u16),
    /// Out of the uplink.
    ToUplink,
    /// Into the node's kernel through the host-path port.
    ToHost,
    /// Dropped, and counted under the reason.
    Drop(DropReason),
    /// To worker `worker`, which owns the packet's flow (`pipeline::shard`): it processes the
    /// packet as if it had received it on `ingress`. Unchanged so far, except a VXLAN frame
    /// handed over as `Ingress::Tunnel` has been checked and decapsulated.
    Handoff {
        /// The owner worker's index.
        worker: u16,
        /// Where the owner picks the packet up.
        ingress: crate::pipeline::Ingress,
    },
}

/// Dispositions counted per core (besides the drop reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Event {
    /// Packets received from pod ports.
    RxPod,
    /// Packets received from the uplink.
    RxUplink,
    /// Packets received from the host-path port.
    RxHost,
    /// Packets sent to pod ports.
    TxPod,
    /// Packets sent to the uplink.
    TxUplink,
    /// Packets sent to the host path.
    TxHost,
    /// Packets dropped (all reasons).
    Dropped,
    /// Packets VXLAN-encapsulated.
    Encap,
    /// Packets VXLAN-decapsulated.
    Decap,
    /// ARP requests answered.
    ArpReplied,
    /// ICMP echo requests to the gateway or the VTEP address answered.
    IcmpEchoReplied,
    /// ICMP "fragmentation needed" errors sent back to a pod.
    IcmpFragNeededSent,
    /// ICMP errors about NATed flows translated back (`nat::icmp_error`).
    IcmpErrorNated,
    /// New Service flows (conntrack inserts).
    CtNew,
    /// Packets DNATed on an existing flow (original direction).
    CtHitOrig,
    /// Packets reverse-NATed (reply direction).
    CtHitReply,
    /// Conntrack entries removed by the idle timeout.
    CtExpired,
    /// Live conntrack entries evicted because the table was full.
    CtEvicted,
    /// UDP entries purged because their endpoint was removed.
    CtPurged,
    /// Closed TCP flows whose entry a new connection with one of their tuples replaced
    /// (`Conntrack::take_over`).
    CtClosedTakenOver,
    /// Flows whose source port was rewritten for SNAT.
    SnatPortRewritten,
    /// Packets of an external client's NodePort flow that came from another MAC than the
    /// flow's last (an upstream router's failover): the flow's replies follow them.
    CtClientMacMoved,
    /// Packets handed to the worker that owns their flow.
    HandoffTx,
    /// Packets taken over from other workers (their flow is this worker's).
    HandoffRx,
}

impl Event {
    /// Every event, in counter order.
    pub const ALL: &'static [Event] = &[
        Event::RxPod,
        Event::RxUplink,
        Event::RxHost,
        Event::TxPod,
        Event::TxUplink,
        Event::TxHost,
        Event::Dropped,
        Event::Encap,
        Event::Decap,
        Event::ArpReplied,
        Event::IcmpEchoReplied,
        Event::IcmpFragNeededSent,
        Event::IcmpErrorNated,
        Event::CtNew,
        Event::CtHitOrig,
        Event::CtHitReply,
        Event::CtExpired,
        Event::CtEvicted,
        Event::CtPurged,
        Event::CtClosedTakenOver,
        Event::SnatPortRewritten,
        Event::CtClientMacMoved,
        Event::HandoffTx,
        Event::HandoffRx,
    ];
    /// How many events there are.
    pub const COUNT: usize = Event::ALL.len();

    /// The counter's name.
    pub const fn name(self) -> &'static str {
        match self {
            Event::RxPod => "rx_pod",
            Event::RxUplink => "rx_uplink",
            Event::RxHost => "rx_host",
            Event::TxPod => "tx_pod",
            Event::TxUplink => "tx_uplink",
            Event::TxHost => "tx_host",
            Event::Dropped => "dropped",
            Event::Encap => "vxlan_encap",
            Event::Decap => "vxlan_decap",
            Event::ArpReplied => "arp_replied",
            Event::IcmpEchoReplied => "icmp_echo_replied",
            Event::IcmpFragNeededSent => "icmp_frag_needed_sent",
            Event::IcmpErrorNated => "icmp_error_nat",
            Event::CtNew => "ct_new",
            Event::CtHitOrig => "ct_hit_orig",
            Event::CtHitReply => "ct_hit_reply",
            Event::CtExpired => "ct_expired",
            Event::CtEvicted => "ct_evicted_full",
            Event::CtPurged => "ct_purged_endpoint_removed",
            Event::CtClosedTakenOver => "ct_closed_taken_over",
            Event::SnatPortRewritten => "snat_port_rewritten",
            Event::CtClientMacMoved => "ct_client_mac_moved",
            Event::HandoffTx => "handoff_tx",
            Event::HandoffRx => "handoff_rx",
        }
    }
}

/// One worker's counters. Written only by its owner; readable from any thread.
#[derive(Debug)]
pub struct Counters {
    drops: [AtomicU64; DropReason::COUNT],
    events: [AtomicU64; Event::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            drops: core::array::from_fn(|_| AtomicU64::new(0)),
            events: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[inline(always)]
fn bump(c: &AtomicU64, n: u64) {
    // Single writer: a relaxed load and store, not a read-modify-write, so no `lock` prefix.
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Counters {
    /// Counts a drop (also counted under [`Event::Dropped`]).
    #[inline(always)]
    pub fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason as usize], 1);
        bump(&self.events[Event::Dropped as usize], 1);
    }

    /// Counts `n` occurrences of an event.
    #[inline(always)]
    pub fn add(&self, ev: Event, n: u64) {
        bump(&self.events[ev as usize], n);
    }

    /// Counts one occurrence of an event.
    #[inline(always)]
    pub fn inc(&self, ev: Event) {
        self.add(ev, 1);
    }

    /// Reads one drop counter.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    /// Reads one event counter.
    pub fn events(&self, ev: Event) -> u64 {
        self.events[ev as usize].load(Ordering::Relaxed)
    }

    /// A plain copy of every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let mut s = CounterSnapshot::default();
        s.add(self);
        s
    }
}

/// Counters summed over workers, as plain numbers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CounterSnapshot {
    /// Per drop reason, in [`DropReason::ALL`] order.
    pub drops: Vec<u64>,
    /// Per event, in [`Event::ALL`] order.
    pub events: Vec<u64>,
}

impl Default for CounterSnapshot {
    fn default() -> Self {
        CounterSnapshot {
            drops: vec![0; DropReason::COUNT],
            events: vec![0; Event::COUNT],
        }
    }
}

impl CounterSnapshot {
    /// Adds one worker's counters.
    pub fn add(&mut self, c: &Counters) {
        for (d, s) in self.drops.iter_mut().zip(c.drops.iter()) {
            *d += s.load(Ordering::Relaxed);
        }
        for (d, s) in self.events.iter_mut().zip(c.events.iter()) {
            *d += s.load(Ordering::Relaxed);
        }
    }

    /// Sums several workers' counters.
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a Counters>) -> CounterSnapshot {
        let mut s = CounterSnapshot::default();
        for w in workers {
            s.add(w);
        }
        s
    }

    /// One drop counter.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops.get(reason as usize).copied().unwrap_or(0)
    }

    /// One event counter.
    pub fn event_count(&self, ev: Event) -> u64 {
        self.events.get(ev as usize).copied().unwrap_or(0)
    }

    /// `(name, value)` for every non-zero counter, drops prefixed with `drop_`.
    pub fn nonzero(&self) -> Vec<(String, u64)> {
        let mut v = Vec::new();
        for (e, n) in Event::ALL.iter().zip(&self.events) {
            if *n != 0 {
                v.push((e.name().to_string(), *n));
            }
        }
        for (r, n) in DropReason::ALL.iter().zip(&self.drops) {
            if *n != 0 {
                v.push((format!("drop_{}", r.name()), *n));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_order_matches_discriminants() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(!r.help().is_empty());
        }
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
        let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.extend(Event::ALL.iter().map(|e| e.name()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "counter names must be unique");
    }

    #[test]
    fn summed_on_read() {
        let a = Counters::default();
        let b = Counters::default();
        a.count_drop(DropReason::Runt);
        b.count_drop(DropReason::Runt);
        b.add(Event::Encap, 5);
        let s = CounterSnapshot::sum([&a, &b]);
        assert_eq!(s.drop_count(DropReason::Runt), 2);
        assert_eq!(s.event_count(Event::Dropped), 2);
        assert_eq!(s.event_count(Event::Encap), 5);
        assert_eq!(s.nonzero().len(), 3);
    }
}
