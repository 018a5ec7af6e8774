//! Remote nodes: pod CIDR → node, with each node's precomputed VXLAN outer header (VPP's
//! per-tunnel rewrite string), and underlay IP → node for VXLAN source checks.

use core::net::Ipv4Addr;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::cidr::Ipv4Cidr;
use crate::tables::NodeConfig;
use crate::wire::{checksum, ethertype, ipproto, vxlan, MacAddr};

/// A remote node as the control side describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteNodeSpec {
    /// The node's name.
    pub name: String,
    /// Its underlay IP: the outer destination of frames to it, the outer source of frames from it.
    pub underlay_ip: Ipv4Addr,
    /// The MAC of the underlay next hop towards it (its NIC when on the same L2 segment).
    pub underlay_mac: MacAddr,
    /// Its VTEP MAC: the inner destination MAC it accepts.
    pub vtep_mac: MacAddr,
    /// Its pod CIDR.
    pub pod_cidr: Ipv4Cidr,
}

/// Length of the precomputed header: outer Ethernet, IPv4, UDP, VXLAN and the inner Ethernet.
pub const TEMPLATE_LEN: usize = vxlan::ENCAP_OVERHEAD + 14;

/// Offsets into the template / the encapsulated frame.
pub mod tmpl {
    /// Outer IPv4 header.
    pub const IP: usize = 14;
    /// Outer IPv4 total length.
    pub const IP_LEN: usize = IP + 2;
    /// Outer IPv4 header checksum.
    pub const IP_CSUM: usize = IP + 10;
    /// Outer UDP header.
    pub const UDP: usize = 34;
    /// Outer UDP source port.
    pub const UDP_SPORT: usize = UDP;
    /// Outer UDP length.
    pub const UDP_LEN: usize = UDP + 4;
    /// VXLAN header.
    pub const VXLAN: usize = 42;
    /// Inner Ethernet header.
    pub const INNER_ETH: usize = 50;
}

/// The outer header of every frame to one remote node, built once when the node is added.
/// Encapsulation copies it in front of the packet and fills in the three fields that vary:
/// the IPv4 total length and checksum and the UDP length and source port.
#[derive(Clone, PartialEq, Eq)]
pub struct EncapTemplate {
    /// The bytes (outer Ethernet + IPv4 + UDP + VXLAN + inner Ethernet).
    pub bytes: [u8; TEMPLATE_LEN],
    /// The one's complement sum of the IPv4 header with total length and checksum zero,
    /// folded: `checksum::finish_with(ip_sum_base, total)` is the checksum.
    pub ip_sum_base: u16,
}

impl core::fmt::Debug for EncapTemplate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EncapTemplate")
            .field("bytes", &&self.bytes[..])
            .finish()
    }
}

impl EncapTemplate {
    /// The header from `local` to `remote`.
    ///
    /// Outer IPv4: TTL 64, DF set (the brief: a VXLAN frame must not be fragmented on the
    /// underlay; oversize inner packets get ICMP "fragmentation needed" instead), ident 0
    /// (RFC 6864 §4.1: atomic datagrams may carry any ID). Outer UDP: destination 4789, checksum
    /// zero (RFC 7348 §5: "SHOULD be transmitted as zero" over IPv4). VXLAN: I flag, VNI,
    /// reserved fields zero. Inner Ethernet: our VTEP MAC to the remote VTEP MAC, IPv4.
    pub fn new(local: &NodeConfig, remote: &RemoteNodeSpec) -> EncapTemplate {
        let mut b = [0u8; TEMPLATE_LEN];
        b[0..6].copy_from_slice(remote.underlay_mac.as_bytes());
        b[6..12].copy_from_slice(local.underlay_mac.as_bytes());
        b[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        let ip = tmpl::IP;
        b[ip] = 0x45;
        b[ip + 6] = 0x40; // DF
        b[ip + 8] = 64;
        b[ip + 9] = ipproto::UDP;
        b[ip + 12..ip + 16].copy_from_slice(&local.underlay_ip.octets());
        b[ip + 16..ip + 20].copy_from_slice(&remote.underlay_ip.octets());
        b[tmpl::UDP + 2..tmpl::UDP + 4].copy_from_slice(&vxlan::UDP_PORT.to_be_bytes());
        b[tmpl::VXLAN] = 0x08;
        b[tmpl::VXLAN + 4..tmpl::VXLAN + 7].copy_from_slice(&local.vni.to_be_bytes()[1..4]);
        b[tmpl::INNER_ETH..tmpl::INNER_ETH + 6].copy_from_slice(remote.vtep_mac.as_bytes());
        b[tmpl::INNER_ETH + 6..tmpl::INNER_ETH + 12].copy_from_slice(local.vtep_mac.as_bytes());
        b[tmpl::INNER_ETH + 12..].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        let ip_sum_base = checksum::fold(checksum::sum(&b[ip..ip + 20]));
        EncapTemplate {
            bytes: b,
            ip_sum_base,
        }
    }
}

/// A remote node with its template.
#[derive(Debug, Clone)]
pub struct NodeRoute {
    /// What the control side said.
    pub spec: RemoteNodeSpec,
    /// The precomputed outer header.
    pub template: EncapTemplate,
}

/// Why a route change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Two nodes' pod CIDRs overlap, or a node's overlaps ours.
    #[error("pod CIDR {0} of node {1} overlaps {2}")]
    Overlap(Ipv4Cidr, String, String),
    /// The underlay IP is ours or another node's.
    #[error("underlay IP {0} of node {1} is already used by {2}")]
    DuplicateUnderlay(Ipv4Addr, String, String),
    /// A multicast MAC.
    #[error("node {0}: {1} is a multicast MAC")]
    MulticastMac(String, MacAddr),
    /// Too many nodes.
    #[error("node table full ({0} nodes)")]
    Full(u32),
    /// No such node.
    #[error("no node with underlay IP {0}")]
    NotFound(Ipv4Addr),
}

/// Remote node routes. Longest-prefix match over the node pod CIDRs, done as one hash lookup per
/// distinct prefix length (one in a normal cluster, where every node gets the same mask).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    nodes: Vec<NodeRoute>,
    /// (prefix length, mask, network → node index), longest first.
    by_prefix: Vec<(u8, u32, FxHashMap<u32, u32>)>,
    by_underlay: FxHashMap<u32, u32>,
    /// The most common prefix length as a direct-indexed array (DIR-24-8 style), when its
    /// networks span at most [`DIRECT_MAX_SLOTS`] slots: a lookup is a shift and a load.
    direct: Option<Direct>,
}

/// Most slots the direct array may have (4 MiB of `u32`).
pub const DIRECT_MAX_SLOTS: usize = 1 << 20;

#[derive(Debug, Clone)]
struct Direct {
    len: u8,
    shift: u32,
    base: u32,
    slots: Box<[u32]>,
    /// Every remote node's pod CIDR has this prefix length (the normal cluster): a lookup is
    /// the array alone, no walk over prefix lengths.
    sole: bool,
}

impl Direct {
    /// The node index for `ip`, `u32::MAX` for none (an empty slot, or outside the array).
    #[inline(always)]
    fn slot(&self, ip: u32) -> u32 {
        let i = ((u64::from(ip) >> self.shift) as u32).wrapping_sub(self.base);
        self.slots.get(i as usize).copied().unwrap_or(u32::MAX)
    }
}

impl RouteTable {
    /// Builds the table from the local node and the remote nodes. Checks overlaps, duplicates
    /// and capacity; the previous table stays in use when this fails.
    pub fn build<'a>(
        local: &NodeConfig,
        remotes: impl IntoIterator<Item = &'a RemoteNodeSpec>,
        max_nodes: u32,
    ) -> Result<RouteTable, RouteError> {
        let mut t = RouteTable::default();
        let mut cidrs: Vec<(Ipv4Cidr, String)> = vec![(local.pod_cidr, local.name.clone())];
        for r in remotes {
            if t.nodes.len() as u32 >= max_nodes {
                return Err(RouteError::Full(max_nodes));
            }
            for m in [r.underlay_mac, r.vtep_mac] {
                if m.is_multicast() {
                    return Err(RouteError::MulticastMac(r.name.clone(), m));
                }
            }
            let ip = r.underlay_ip.to_bits();
            if r.underlay_ip == local.underlay_ip {
                return Err(RouteError::DuplicateUnderlay(
                    r.underlay_ip,
                    r.name.clone(),
                    local.name.clone(),
                ));
            }
            if let Some(&i) = t.by_underlay.get(&ip) {
                return Err(RouteError::DuplicateUnderlay(
                    r.underlay_ip,
                    r.name.clone(),
                    t.nodes[i as usize].spec.name.clone(),
                ));
            }
            let idx = t.nodes.len() as u32;
            let len = r.pod_cidr.prefix_len();
            let pos = match t.by_prefix.iter().position(|(l, _, _)| *l == len) {
                Some(p) => p,
                None => {
                    t.by_prefix
                        .push((len, r.pod_cidr.mask(), FxHashMap::default()));
                    t.by_prefix.sort_by_key(|p| core::cmp::Reverse(p.0));
                    t.by_prefix
                        .iter()
                        .position(|(l, _, _)| *l == len)
                        .unwrap_or(0)
                }
            };
            cidrs.push((r.pod_cidr, r.name.clone()));
            t.by_prefix[pos]
                .2
                .insert(r.pod_cidr.network().to_bits(), idx);
            t.by_underlay.insert(ip, idx);
            t.nodes.push(NodeRoute {
                spec: r.clone(),
                template: EncapTemplate::new(local, r),
            });
        }
        // Overlap check: sort by network then prefix; any overlap shows between neighbours in a
        // sweep that keeps the furthest end seen so far.
        cidrs.sort_by_key(|(c, _)| (c.network(), c.prefix_len()));
        let mut far: Option<(u64, usize)> = None;
        for (i, (c, _)) in cidrs.iter().enumerate() {
            let start = u64::from(c.network().to_bits());
            if let Some((end, j)) = far {
                if start <= end {
                    return Err(RouteError::Overlap(
                        *c,
                        cidrs[i].1.clone(),
                        cidrs[j].1.clone(),
                    ));
                }
            }
            let end = start + c.size() - 1;
            if far.is_none_or(|(e, _)| end > e) {
                far = Some((end, i));
            }
        }
        t.direct = t.build_direct();
        Ok(t)
    }

    fn build_direct(&self) -> Option<Direct> {
        let (len, _, map) = self.by_prefix.iter().max_by_key(|(_, _, m)| m.len())?;
        let shift = 32 - u32::from(*len);
        let idx = |net: u32| (u64::from(net) >> shift) as u32;
        let lo = map.keys().map(|&n| idx(n)).min()?;
        let hi = map.keys().map(|&n| idx(n)).max()?;
        let span = (hi - lo) as usize + 1;
        if span > DIRECT_MAX_SLOTS {
            return None;
        }
        let mut slots = vec![u32::MAX; span].into_boxed_slice();
        for (&net, &node) in map {
            slots[(idx(net) - lo) as usize] = node;
        }
        Some(Direct {
            len: *len,
            shift,
            base: lo,
            slots,
            sole: self.by_prefix.len() == 1,
        })
    }

    /// The node whose pod CIDR holds `ip` (host order).
    #[inline(always)]
    pub fn lookup(&self, ip: u32) -> Option<&NodeRoute> {
        match &self.direct {
            // An empty slot holds u32::MAX, which no node index reaches.
            Some(d) if d.sole => self.nodes.get(d.slot(ip) as usize),
            _ => self.lookup_by_prefix(ip),
        }
    }

    /// Longest-prefix match walking the prefix lengths, longest first (the direct array
    /// standing in for its own length).
    fn lookup_by_prefix(&self, ip: u32) -> Option<&NodeRoute> {
        for (len, mask, map) in &self.by_prefix {
            let hit = match &self.direct {
                Some(d) if d.len == *len => Some(d.slot(ip)).filter(|&n| n != u32::MAX),
                _ => map.get(&(ip & mask)).copied(),
            };
            if let Some(i) = hit {
                return self.nodes.get(i as usize);
            }
        }
        None
    }

    /// The node whose underlay IP is `ip` (host order).
    #[inline(always)]
    pub fn by_underlay(&self, ip: u32) -> Option<&NodeRoute> {
        let &i = self.by_underlay.get(&ip)?;
        self.nodes.get(i as usize)
    }

    /// Number of remote nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there is no remote node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The remote nodes.
    pub fn nodes(&self) -> &[NodeRoute] {
        &self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, last: u8, cidr: &str) -> RemoteNodeSpec {
        RemoteNodeSpec {
            name: name.into(),
            underlay_ip: Ipv4Addr::new(10, 1, 0, last),
            underlay_mac: MacAddr([2, 0, 10, 1, 0, last]),
            vtep_mac: MacAddr([2, 0x76, 0, 0, 0, last]),
            pod_cidr: cidr.parse().unwrap(),
        }
    }

    #[test]
    fn template_bytes() {
        let a = NodeConfig::example_node_a();
        let b = node("node-b", 11, "10.244.2.0/24");
        let t = EncapTemplate::new(&a, &b);
        #[rustfmt::skip]
        let want: [u8; TEMPLATE_LEN] = [
            2, 0, 10, 1, 0, 11,   2, 0, 0x0a, 1, 0, 0x0a,   0x08, 0x00,       // outer Ethernet
            0x45, 0, 0, 0,   0, 0, 0x40, 0,   64, 17, 0, 0,                      // IPv4: len/csum later
            10, 1, 0, 10,   10, 1, 0, 11,                                        // 10.1.0.10 -> .11
            0, 0, 0x12, 0xb5,   0, 0, 0, 0,                                      // UDP sport later, dport 4789
            0x08, 0, 0, 0,   0, 0, 1, 0,                                         // VXLAN I flag, VNI 1
            2, 0x76, 0, 0, 0, 11,   0x02, 0x76, 0x74, 0x65, 0x70, 0x0a,   0x08, 0x00, // inner Ethernet
        ];
        assert_eq!(t.bytes, want);
        assert_eq!(t.ip_sum_base, checksum::fold(checksum::sum(&want[14..34])));
    }

    #[test]
    fn lookup_lpm_and_underlay() {
        let a = NodeConfig::example_node_a();
        let nodes = [
            node("b", 11, "10.244.2.0/24"),
            node("c", 12, "10.244.3.0/24"),
            node("d", 13, "10.245.0.0/16"),
            node("e", 14, "10.246.0.0/28"),
        ];
        let t = RouteTable::build(&a, &nodes, 16).unwrap();
        let get = |ip: [u8; 4]| {
            t.lookup(u32::from_be_bytes(ip))
                .map(|r| r.spec.name.as_str())
        };
        assert_eq!(get([10, 244, 2, 7]), Some("b"));
        assert_eq!(get([10, 244, 3, 255]), Some("c"));
        assert_eq!(get([10, 245, 200, 1]), Some("d"));
        assert_eq!(get([10, 246, 0, 15]), Some("e"));
        assert_eq!(get([10, 246, 0, 16]), None);
        assert_eq!(get([10, 244, 1, 2]), None, "our own CIDR is not a route");
        assert_eq!(get([10, 244, 4, 1]), None, "a hole in the direct array");
        assert_eq!(get([10, 243, 255, 255]), None);
        assert_eq!(get([0, 0, 0, 0]), None);
        assert_eq!(get([255, 255, 255, 255]), None);
        assert!(t.direct.as_ref().is_some_and(|d| d.len == 24));
        assert_eq!(
            t.by_underlay(u32::from_be_bytes([10, 1, 0, 12]))
                .unwrap()
                .spec
                .name,
            "c"
        );
        assert!(t.by_underlay(u32::from_be_bytes([10, 1, 0, 99])).is_none());
    }

    #[test]
    fn direct_array_agrees_with_hash_lookup_at_scale() {
        // 5,000 nodes with /24s out of 10.128.0.0/9: one prefix length, looked up in the array
        // alone; then with a longer prefix inside nobody's, walked longest first.
        let a = NodeConfig::example_node_a();
        let mut nodes: Vec<RemoteNodeSpec> = (0..5000u32)
            .map(|i| {
                let net = Ipv4Addr::from(0x0a80_0000 + (i << 8));
                RemoteNodeSpec {
                    name: format!("n{i}"),
                    underlay_ip: Ipv4Addr::from(0x0b00_0000 + i),
                    underlay_mac: MacAddr([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
                    vtep_mac: MacAddr([2, 1, 0, 0, (i >> 8) as u8, i as u8]),
                    pod_cidr: Ipv4Cidr::new(net, 24).unwrap(),
                }
            })
            .collect();
        for mixed in [false, true] {
            if mixed {
                nodes.push(node("x", 200, "10.200.0.0/28"));
            }
            let t = RouteTable::build(&a, &nodes, 10_000).unwrap();
            assert!(t.direct.as_ref().is_some_and(|d| d.sole != mixed));
            let check = |ip: u32| {
                let want = nodes.iter().position(|n| n.pod_cidr.contains_u32(ip));
                let got = t
                    .lookup(ip)
                    .map(|r| nodes.iter().position(|n| n.name == r.spec.name).unwrap());
                assert_eq!(got, want, "{}", Ipv4Addr::from(ip));
            };
            let mut x: u32 = 7;
            for i in 0..50_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Mostly 10/8 (nodes, gaps, the /28); every 8th anywhere, below and above
                // the array.
                check(if i % 8 == 0 {
                    x
                } else {
                    0x0a00_0000 | (x & 0x00ff_ffff)
                });
            }
            for ip in [
                0,
                u32::MAX,
                0x0a7f_ffff,
                0x0a80_0000,
                0x0a93_87ff,
                0x0a93_8800,
            ] {
                check(ip);
            }
        }
    }

    #[test]
    fn refuses_overlaps_duplicates_and_overflow() {
        let a = NodeConfig::example_node_a();
        let e = RouteTable::build(&a, &[node("b", 11, "10.244.0.0/16")], 16).unwrap_err();
        assert!(matches!(e, RouteError::Overlap(..)), "{e}");
        let e = RouteTable::build(
            &a,
            &[
                node("b", 11, "10.244.2.0/24"),
                node("c", 12, "10.244.2.128/25"),
            ],
            16,
        )
        .unwrap_err();
        assert!(matches!(e, RouteError::Overlap(..)), "{e}");
        let e = RouteTable::build(
            &a,
            &[
                node("b", 11, "10.244.2.0/24"),
                node("c", 11, "10.244.3.0/24"),
            ],
            16,
        )
        .unwrap_err();
        assert!(matches!(e, RouteError::DuplicateUnderlay(..)), "{e}");
        let e = RouteTable::build(&a, &[node("self", 10, "10.244.2.0/24")], 16).unwrap_err();
        assert!(matches!(e, RouteError::DuplicateUnderlay(..)), "{e}");
        let e = RouteTable::build(
            &a,
            &[
                node("b", 11, "10.244.2.0/24"),
                node("c", 12, "10.244.3.0/24"),
            ],
            1,
        )
        .unwrap_err();
        assert_eq!(e, RouteError::Full(1));
    }
}
