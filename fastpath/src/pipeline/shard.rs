//! Several workers on one node: which worker owns a flow, and when a packet must be handed to
//! that owner (VPP's worker handoff for NAT44-ED).
//!
//! Each worker has its own conntrack (no locks, no shared cache lines per packet). The two
//! directions of a NATed flow can arrive at different workers — the uplink spreads packets over
//! its receive queues by RSS, pod ports are spread over the workers — so every flow has one
//! *owner*, computed from the packet alone, the same way in both directions:
//!
//! | the flow's client side                | owner                                        |
//! |---------------------------------------|----------------------------------------------|
//! | a local pod (ClusterIP)               | the worker that serves the pod's port        |
//! | an external client (NodePort)         | a hash of the client's address and port      |
//! | another node's pod (NodePort, through the tunnel) | the same hash; always SNATed, so replies come back by the SNAT port |
//! | SNATed (NodePort to a remote backend, hairpin) | the SNAT port modulo the workers: SNAT ports are chosen in the owner's residue class |
//! | the node itself (ClusterIP, from the host path) | worker 0, which alone polls the host path; always SNATed, its SNAT ports in worker 0's class |
//!
//! A packet that may belong to a NATed flow owned by another worker is handed over *before* any
//! NAT is applied ([`crate::counters::Disposition::Handoff`]); the owner runs it again from the
//! point it was handed at. Which packets "may belong" is known from the per-pod counts the
//! workers share ([`crate::tables::conntrack::PodRefs`]): replies to a pod that is some flow's
//! client, packets from a pod that is some flow's backend, replies to the node's SNAT address,
//! and every NodePort packet. Everything else — plain pod-to-pod, encap, decap — is forwarded by
//! whichever worker received it. With one worker nothing is ever handed over.
//!
//! A flow's packets are handed over by the one worker that receives them, through one FIFO, so
//! their order is kept. A handed-over packet is never handed over again (the owner processes it
//! whatever the tables say by then), so a table change cannot bounce a packet between workers.

use crate::pipeline::{Ctx, Ip4};

/// This worker's place among the node's workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// How many workers share the node's traffic (at least 1).
    pub workers: u16,
    /// This worker's index, `0..workers`.
    pub me: u16,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::SINGLE
    }
}

impl Shard {
    /// One worker: owns everything.
    pub const SINGLE: Shard = Shard { workers: 1, me: 0 };

    /// Worker `me` of `workers` (`workers` at least 1, `me` below it).
    pub fn new(workers: u16, me: u16) -> Shard {
        let workers = workers.max(1);
        Shard {
            workers,
            me: me % workers,
        }
    }

    /// True when this worker is the only one.
    #[inline(always)]
    pub fn single(self) -> bool {
        self.workers <= 1
    }

    /// The worker that polls pod port `port` (and so owns the flows whose client is its pod).
    #[inline(always)]
    pub fn of_pod_port(self, port: u16) -> u16 {
        port % self.workers
    }

    /// The owner of a flow SNATed to source port `port` (its replies arrive for that port).
    #[inline(always)]
    pub fn of_snat_port(self, port: u16) -> u16 {
        port % self.workers
    }

    /// The owner of a flow whose client is the external endpoint `ip:port`.
    #[inline(always)]
    pub fn of_external(self, ip: u32, port: u16) -> u16 {
        let h = mix64((u64::from(ip) << 16) | u64::from(port));
        ((h >> 32) % u64::from(self.workers)) as u16
    }

    /// A port in `min..min + span` (span ≥ workers) that this worker owns as a SNAT port, spread
    /// by `h`. With one worker: `min + h % span`.
    #[inline]
    pub fn snat_port(self, h: u32, min: u16, span: u32) -> u16 {
        let n = u32::from(self.workers);
        let min = u32::from(min);
        // The first port ≥ min in this worker's residue class, then every n-th port after it.
        let first = min + (u32::from(self.me) + n - min % n) % n;
        let count = (min + span - 1 - first) / n + 1;
        (first + n * (h % count)) as u16
    }
}

/// A 64-bit finaliser (MurmurHash3's `fmix64`): every input bit moves every output bit, so
/// addresses and ports that differ only in a few low bits still spread over the workers.
#[inline(always)]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The owner of the NATed flow a packet from a local backend pod may be a reply of, by where the
/// reply goes: a local client pod, the node's SNAT address (gateway for hairpin, VTEP address
/// for NodePort), or an external client. `None` when no flow of this node can have that
/// destination (another node's pod or address: that node did the NAT, if any).
#[inline]
pub(crate) fn reply_owner(cx: &Ctx<'_>, ip: &Ip4) -> Option<u16> {
    let (_, dport) = ip.ports?;
    let t = cx.t;
    if let Some(pod) = t.pods.lookup(ip.dst) {
        return Some(cx.shard.of_pod_port(pod.port));
    }
    let node = &t.node;
    if ip.dst == node.gateway_ip().to_bits() || ip.dst == node.vtep_ip().to_bits() {
        return Some(cx.shard.of_snat_port(dport));
    }
    if t.routes.lookup(ip.dst).is_some() || t.routes.by_underlay(ip.dst).is_some() {
        return None;
    }
    Some(cx.shard.of_external(ip.dst, dport))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snat_ports_stay_in_range_and_in_the_owners_class() {
        for workers in 1..=7u16 {
            for me in 0..workers {
                let s = Shard::new(workers, me);
                for h in (0..200_000u32).step_by(997).chain([u32::MAX, u32::MAX - 1]) {
                    let p = s.snat_port(h, 32768, 60999 - 32768 + 1);
                    assert!((32768..=60999).contains(&p), "{workers} {me} {h} → {p}");
                    assert_eq!(s.of_snat_port(p), me);
                }
            }
        }
        // One worker: the whole range, as before sharding.
        let s = Shard::SINGLE;
        assert_eq!(s.snat_port(0, 32768, 28232), 32768);
        assert_eq!(s.snat_port(28231, 32768, 28232), 60999);
        assert_eq!(s.snat_port(28232, 32768, 28232), 32768);
    }

    #[test]
    fn external_owners_spread_and_are_stable() {
        let s = Shard::new(4, 0);
        let mut seen = [0u32; 4];
        for i in 0..4000u32 {
            let w = s.of_external(0xc0a8_0000 + i, 40000 + (i % 100) as u16);
            assert_eq!(w, s.of_external(0xc0a8_0000 + i, 40000 + (i % 100) as u16));
            seen[w as usize] += 1;
        }
        for n in seen {
            assert!((800..1200).contains(&n), "{seen:?}");
        }
    }
}
