//! Local pods: IPv4 → (MAC, port) for delivery, and port → (IPv4, MAC) for anti-spoofing.
//!
//! A node's pods all live in its pod CIDR (a /16 to /30), so the table is a direct-indexed
//! array over the CIDR: a lookup is a subtraction, a compare and one load. No hashing.

use core::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::cidr::Ipv4Cidr;
use crate::wire::MacAddr;

/// A local pod as the control side describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    /// The pod's IP (inside the node's pod CIDR).
    pub ip: Ipv4Addr,
    /// The pod interface's MAC.
    pub mac: MacAddr,
    /// The fast-path port id of the pod's interface.
    pub port: u16,
}

/// Marks an empty slot.
const NO_PORT: u16 = u16::MAX;

/// One slot of the table: the pod's MAC and port, or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodSlot {
    /// The pod's MAC.
    pub mac: MacAddr,
    /// The pod's port; `u16::MAX` when the slot is empty.
    pub port: u16,
}

impl PodSlot {
    const EMPTY: PodSlot = PodSlot {
        mac: MacAddr::ZERO,
        port: NO_PORT,
    };
}

/// The identity a pod port must send with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortOwner {
    /// The pod's IP, host order.
    pub ip: u32,
    /// The pod's MAC.
    pub mac: MacAddr,
}

/// Why a pod change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// IP outside the node's pod CIDR.
    #[error("pod IP {0} is outside this node's pod CIDR {1}")]
    OutsideCidr(Ipv4Addr, Ipv4Cidr),
    /// The network address, the gateway or the broadcast address.
    #[error("pod IP {0} is reserved (network, gateway or broadcast address of {1})")]
    Reserved(Ipv4Addr, Ipv4Cidr),
    /// Port id beyond the configured number of pod ports.
    #[error("port {0} is beyond the configured {1} pod ports")]
    PortRange(u16, u16),
    /// The port already belongs to another pod.
    #[error("port {port} already belongs to pod {owner}")]
    PortInUse {
        /// The port.
        port: u16,
        /// Its pod.
        owner: Ipv4Addr,
    },
    /// A multicast MAC cannot be a pod's.
    #[error("pod MAC {0} is a multicast address")]
    MulticastMac(MacAddr),
    /// No such pod.
    #[error("no pod with IP {0}")]
    NotFound(Ipv4Addr),
}

/// The local pod table.
#[derive(Debug, Clone)]
pub struct PodTable {
    cidr: Ipv4Cidr,
    base: u32,
    by_ip: Box<[PodSlot]>,
    by_port: Box<[Option<PortOwner>]>,
    count: usize,
}

impl PodTable {
    /// An empty table for `cidr` with `max_ports` pod ports.
    pub fn new(cidr: Ipv4Cidr, max_ports: u16) -> PodTable {
        PodTable {
            cidr,
            base: cidr.network().to_bits(),
            by_ip: vec![PodSlot::EMPTY; cidr.size() as usize].into_boxed_slice(),
            by_port: vec![None; max_ports as usize].into_boxed_slice(),
            count: 0,
        }
    }

    /// The slot index of `ip` in the CIDR (also the index of per-pod arrays elsewhere), if inside.
    #[inline(always)]
    pub fn slot_of(&self, ip: u32) -> Option<usize> {
        let i = ip.wrapping_sub(self.base) as usize;
        (i < self.by_ip.len()).then_some(i)
    }

    /// Number of slots (the CIDR's size).
    pub fn slots(&self) -> usize {
        self.by_ip.len()
    }

    /// The pod at `ip` (host order).
    #[inline(always)]
    pub fn lookup(&self, ip: u32) -> Option<&PodSlot> {
        let s = self.by_ip.get(ip.wrapping_sub(self.base) as usize)?;
        (s.port != NO_PORT).then_some(s)
    }

    /// The pod at slot index `i`.
    #[inline(always)]
    pub fn at_slot(&self, i: usize) -> Option<&PodSlot> {
        self.by_ip.get(i).filter(|s| s.port != NO_PORT)
    }

    /// Who owns a port.
    #[inline(always)]
    pub fn owner_of_port(&self, port: u16) -> Option<PortOwner> {
        self.by_port.get(port as usize).copied().flatten()
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no pod is attached.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or replaces the pod at `spec.ip`.
    pub fn insert(&mut self, spec: PodSpec) -> Result<(), PodError> {
        let ip = spec.ip.to_bits();
        let i = self
            .slot_of(ip)
            .ok_or(PodError::OutsideCidr(spec.ip, self.cidr))?;
        if i == 0 || i == 1 || i == self.by_ip.len() - 1 {
            return Err(PodError::Reserved(spec.ip, self.cidr));
        }
        if spec.port as usize >= self.by_port.len() {
            return Err(PodError::PortRange(spec.port, self.by_port.len() as u16));
        }
        if spec.mac.is_multicast() {
            return Err(PodError::MulticastMac(spec.mac));
        }
        if let Some(o) = self.by_port[spec.port as usize] {
            if o.ip != ip {
                return Err(PodError::PortInUse {
                    port: spec.port,
                    owner: Ipv4Addr::from(o.ip),
                });
            }
        }
        let old = self.by_ip[i];
        if old.port != NO_PORT {
            self.by_port[old.port as usize] = None;
        } else {
            self.count += 1;
        }
        self.by_ip[i] = PodSlot {
            mac: spec.mac,
            port: spec.port,
        };
        self.by_port[spec.port as usize] = Some(PortOwner { ip, mac: spec.mac });
        Ok(())
    }

    /// Removes the pod at `ip`.
    pub fn remove(&mut self, ip: Ipv4Addr) -> Result<PodSpec, PodError> {
        let i = self.slot_of(ip.to_bits()).ok_or(PodError::NotFound(ip))?;
        let old = self.by_ip[i];
        if old.port == NO_PORT {
            return Err(PodError::NotFound(ip));
        }
        self.by_ip[i] = PodSlot::EMPTY;
        self.by_port[old.port as usize] = None;
        self.count -= 1;
        Ok(PodSpec {
            ip,
            mac: old.mac,
            port: old.port,
        })
    }

    /// Every pod, in IP order.
    pub fn iter(&self) -> impl Iterator<Item = PodSpec> + '_ {
        self.by_ip
            .iter()
            .enumerate()
            .filter(|(_, s)| s.port != NO_PORT)
            .map(|(i, s)| PodSpec {
                ip: Ipv4Addr::from(self.base + i as u32),
                mac: s.mac,
                port: s.port,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(last: u8, port: u16) -> PodSpec {
        PodSpec {
            ip: Ipv4Addr::new(10, 244, 1, last),
            mac: MacAddr([2, 0, 0, 0, 0, last]),
            port,
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = PodTable::new("10.244.1.0/24".parse().unwrap(), 16);
        t.insert(spec(2, 0)).unwrap();
        t.insert(spec(3, 1)).unwrap();
        assert_eq!(t.len(), 2);
        let s = t.lookup(Ipv4Addr::new(10, 244, 1, 2).to_bits()).unwrap();
        assert_eq!((s.mac, s.port), (MacAddr([2, 0, 0, 0, 0, 2]), 0));
        assert!(t.lookup(Ipv4Addr::new(10, 244, 1, 4).to_bits()).is_none());
        assert!(t.lookup(Ipv4Addr::new(10, 244, 2, 2).to_bits()).is_none());
        assert!(t.lookup(0).is_none() && t.lookup(u32::MAX).is_none());
        assert_eq!(
            t.owner_of_port(1).unwrap().ip,
            Ipv4Addr::new(10, 244, 1, 3).to_bits()
        );
        assert_eq!(t.iter().count(), 2);
        t.remove(Ipv4Addr::new(10, 244, 1, 2)).unwrap();
        assert!(t.owner_of_port(0).is_none());
        assert_eq!(t.len(), 1);
        assert!(matches!(
            t.remove(Ipv4Addr::new(10, 244, 1, 2)),
            Err(PodError::NotFound(_))
        ));
    }

    #[test]
    fn refuses_bad_pods() {
        let mut t = PodTable::new("10.244.1.0/24".parse().unwrap(), 4);
        assert!(matches!(t.insert(spec(1, 0)), Err(PodError::Reserved(..))));
        assert!(matches!(t.insert(spec(0, 0)), Err(PodError::Reserved(..))));
        assert!(matches!(
            t.insert(spec(255, 0)),
            Err(PodError::Reserved(..))
        ));
        assert!(matches!(
            t.insert(spec(2, 4)),
            Err(PodError::PortRange(4, 4))
        ));
        let mut far = spec(2, 0);
        far.ip = Ipv4Addr::new(10, 9, 9, 9);
        assert!(matches!(t.insert(far), Err(PodError::OutsideCidr(..))));
        let mut mc = spec(2, 0);
        mc.mac = MacAddr([1, 0, 0x5e, 0, 0, 1]);
        assert!(matches!(t.insert(mc), Err(PodError::MulticastMac(_))));
        t.insert(spec(2, 0)).unwrap();
        assert!(matches!(
            t.insert(spec(3, 0)),
            Err(PodError::PortInUse { port: 0, .. })
        ));
        // Re-adding the same pod on a new port moves it.
        t.insert(spec(2, 1)).unwrap();
        assert!(t.owner_of_port(0).is_none());
        assert_eq!(t.len(), 1);
    }
}
