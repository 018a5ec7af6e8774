//! IPv4 prefixes (`10.244.1.0/24`).

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

/// An IPv4 network: an address with all host bits zero and a prefix length 0–32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    /// The network address, host order (compared per packet without a byte swap; ordered
    /// and hashed as the address).
    net: u32,
    prefix_len: u8,
    /// The netmask, host order (derived from `prefix_len`, kept for the hot path).
    mask: u32,
}

/// Why a prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not of the form `a.b.c.d/len`.
    #[error("invalid CIDR {0:?}: expected a.b.c.d/len")]
    Syntax(String),
    /// The prefix length is over 32.
    #[error("invalid CIDR prefix length {0}: must be 0-32")]
    PrefixLen(u8),
    /// Host bits set (e.g. `10.244.1.5/24`).
    #[error("CIDR {0} has host bits set; did you mean {1}?")]
    HostBits(String, String),
}

impl Ipv4Cidr {
    /// A prefix; refuses host bits set.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Ipv4Cidr, CidrError> {
        if prefix_len > 32 {
            return Err(CidrError::PrefixLen(prefix_len));
        }
        let mask = if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix_len))
        };
        let c = Ipv4Cidr {
            net: u32::from(addr),
            prefix_len,
            mask,
        };
        let net = Ipv4Addr::from(u32::from(addr) & mask);
        if net != addr {
            return Err(CidrError::HostBits(
                format!("{addr}/{prefix_len}"),
                format!("{net}/{prefix_len}"),
            ));
        }
        Ok(c)
    }

    /// The network address.
    pub const fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.net)
    }

    /// The prefix length.
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask as a host-order integer.
    #[inline]
    pub const fn mask(&self) -> u32 {
        self.mask
    }

    /// True if `ip` (host order) is inside.
    #[inline(always)]
    pub const fn contains_u32(&self, ip: u32) -> bool {
        ip & self.mask == self.net
    }

    /// True if `ip` is inside.
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.contains_u32(u32::from(ip))
    }

    /// Number of addresses (2^(32-len)).
    pub const fn size(&self) -> u64 {
        1u64 << (32 - self.prefix_len as u32)
    }

    /// The `n`th address of the prefix, if inside.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(self.net.wrapping_add(n as u32)))
    }

    /// The broadcast address (all host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net | !self.mask())
    }

    /// True if the two prefixes share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        let m = self.mask() & other.mask();
        self.net & m == other.net & m
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix_len)
    }
}

impl fmt::Debug for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| CidrError::Syntax(s.to_string()))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
        let len: u8 = l.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
        Ipv4Cidr::new(addr, len)
    }
}

impl serde::Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_contains_overlap() {
        let c: Ipv4Cidr = "10.244.1.0/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(10, 244, 1, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 244, 2, 1)));
        assert_eq!(c.size(), 256);
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 244, 1, 1)));
        assert_eq!(c.nth(256), None);
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 244, 1, 255));
        let big: Ipv4Cidr = "10.244.0.0/16".parse().unwrap();
        assert!(big.overlaps(&c) && c.overlaps(&big));
        let other: Ipv4Cidr = "10.244.2.0/24".parse().unwrap();
        assert!(!other.overlaps(&c));
        assert!(matches!(
            "10.244.1.5/24".parse::<Ipv4Cidr>(),
            Err(CidrError::HostBits(..))
        ));
        assert!("10.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("nonsense".parse::<Ipv4Cidr>().is_err());
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"10.244.1.0/24\"");
    }
}
