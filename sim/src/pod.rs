//! A simulated pod: a minimal host stack on one fast-path port.
//!
//! What it does, as a Linux pod would:
//! - first resolves its gateway by ARP (retrying), and holds IPv4 frames until it knows the
//!   gateway's MAC (the kernel's neighbour queue);
//! - sends real Ethernet/IPv4 UDP, TCP and ICMP frames with full checksums;
//! - checks every frame it receives like a host: its NIC accepts only its own MAC (or
//!   broadcast), the IPv4 header must be valid with a correct checksum, and the TCP/UDP/ICMP
//!   checksum must verify (a zero UDP checksum means "none", RFC 768). Frames failing a check
//!   are [`Reject`]ed — the invariant checker decides whether that was allowed;
//! - runs an echo server on every port: a request (a payload starting with a request
//!   [`Token`]) is answered to its source with the addresses and ports swapped, the token
//!   turned into a reply, TCP flags answered (SYN → SYN+ACK, data → ACK, FIN → FIN+ACK), ICMP
//!   echo requests with echo replies.

use core::net::Ipv4Addr;

use fastpath::tables::pods::PodSpec;
use fastpath::wire::arp::{op, ArpPacket};
use fastpath::wire::ethernet::EthernetFrame;
use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::icmp::{msg_type, Icmpv4Packet};
use fastpath::wire::ipv4::Ipv4Packet;
use fastpath::wire::tcp::{flags as tf, TcpPacket};
use fastpath::wire::udp::UdpPacket;
use fastpath::wire::{ethertype, ipproto, MacAddr};

use crate::packet::{Token, TokenKind};
use crate::topology;
use crate::traffic::Sender;

/// A pod.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Unique per incarnation (a pod created on a reused IP gets a new uid and MAC).
    pub uid: u32,
    /// Its node.
    pub node: u32,
    /// Its port on the node.
    pub port: u16,
    /// Host number in the node's pod CIDR.
    pub host: u32,
    /// Its IP.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// Tick it was created.
    pub created_at: u64,
    /// The gateway's MAC, once ARP answered.
    pub gw_mac: Option<MacAddr>,
    /// ARP requests sent.
    pub arp_tries: u32,
    /// Frames waiting for the gateway's MAC (destination MAC still zero).
    pub held: Vec<Vec<u8>>,
    used_ports: std::collections::BTreeSet<u16>,
    /// Pods (uids) this pod still has to probe.
    pub probe_queue: Vec<u32>,
    /// Service flows this pod still has to start.
    pub service_flows_left: u32,
}

/// Why a pod's host stack refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// Destination MAC neither ours nor broadcast (the NIC filter).
    DstMac,
    /// Neither IPv4 nor ARP.
    Ethertype,
    /// ARP malformed or not a reply to us.
    Arp,
    /// IPv4 header malformed (version, IHL, lengths).
    Ipv4Header,
    /// IPv4 header checksum wrong.
    Ipv4Checksum,
    /// A fragment (the pods never send any).
    Fragment,
    /// TCP/UDP/ICMP header malformed.
    L4Header,
    /// TCP/UDP/ICMP checksum wrong.
    L4Checksum,
    /// A protocol the pod does not speak.
    Protocol,
}

impl Reject {
    /// Name for the report.
    pub fn name(self) -> &'static str {
        match self {
            Reject::DstMac => "dst_mac",
            Reject::Ethertype => "ethertype",
            Reject::Arp => "arp",
            Reject::Ipv4Header => "ipv4_header",
            Reject::Ipv4Checksum => "ipv4_checksum",
            Reject::Fragment => "fragment",
            Reject::L4Header => "l4_header",
            Reject::L4Checksum => "l4_checksum",
            Reject::Protocol => "protocol",
        }
    }
}

/// An ARP packet the pod accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRx {
    /// Operation.
    pub op: u16,
    /// Sender MAC.
    pub sender_mac: MacAddr,
    /// Sender IP.
    pub sender_ip: Ipv4Addr,
    /// Target MAC.
    pub target_mac: MacAddr,
    /// Target IP.
    pub target_ip: Ipv4Addr,
    /// Ethernet source.
    pub eth_src: MacAddr,
}

/// An IPv4 packet the pod accepted (all checks passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRx {
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub proto: u8,
    /// Source port (ICMP echo: the identifier).
    pub sport: u16,
    /// Destination port (ICMP echo: the identifier).
    pub dport: u16,
    /// TCP flags.
    pub tcp_flags: u8,
    /// TCP sequence number.
    pub seq: u32,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP echo sequence number.
    pub icmp_seq: u16,
    /// TTL as received.
    pub ttl: u8,
    /// The payload's token, if it carries an intact one.
    pub token: Option<Token>,
    /// Ethernet source.
    pub eth_src: MacAddr,
}

/// A frame the pod accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx {
    /// ARP.
    Arp(ArpRx),
    /// IPv4.
    Ip(IpRx),
}

/// The host stack's receive checks (see the module docs).
pub fn receive(my_mac: MacAddr, d: &[u8]) -> Result<Rx, Reject> {
    let eth = EthernetFrame::new_checked(d).map_err(|_| Reject::Ethertype)?;
    let dst = eth.dst_addr();
    if dst != my_mac && dst != MacAddr::BROADCAST {
        return Err(Reject::DstMac);
    }
    match eth.ethertype() {
        ethertype::ARP => {
            let a = ArpPacket::new_checked(eth.payload()).map_err(|_| Reject::Arp)?;
            a.check_ethernet_ipv4().map_err(|_| Reject::Arp)?;
            Ok(Rx::Arp(ArpRx {
                op: a.operation(),
                sender_mac: a.sender_hardware_addr(),
                sender_ip: a.sender_protocol_addr(),
                target_mac: a.target_hardware_addr(),
                target_ip: a.target_protocol_addr(),
                eth_src: eth.src_addr(),
            }))
        }
        ethertype::IPV4 => receive_ipv4(eth.src_addr(), eth.payload()),
        _ => Err(Reject::Ethertype),
    }
}

fn receive_ipv4(eth_src: MacAddr, p: &[u8]) -> Result<Rx, Reject> {
    let ip = Ipv4Packet::new_checked(p).map_err(|_| Reject::Ipv4Header)?;
    if ip.version() != 4 {
        return Err(Reject::Ipv4Header);
    }
    if !ip.verify_checksum() {
        return Err(Reject::Ipv4Checksum);
    }
    if ip.is_fragment() {
        return Err(Reject::Fragment);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut rx = IpRx {
        src,
        dst,
        proto: ip.protocol(),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        seq: 0,
        icmp_type: 0,
        icmp_seq: 0,
        ttl: ip.ttl(),
        token: None,
        eth_src,
    };
    let l4 = ip.payload();
    match ip.protocol() {
        ipproto::UDP => {
            let u = UdpPacket::new_checked(l4).map_err(|_| Reject::L4Header)?;
            if !u.verify_checksum(src, dst) {
                return Err(Reject::L4Checksum);
            }
            rx.sport = u.src_port();
            rx.dport = u.dst_port();
            rx.token = Token::decode(u.payload());
        }
        ipproto::TCP => {
            let t = TcpPacket::new_checked(l4).map_err(|_| Reject::L4Header)?;
            if !t.verify_checksum(src, dst) {
                return Err(Reject::L4Checksum);
            }
            rx.sport = t.src_port();
            rx.dport = t.dst_port();
            rx.tcp_flags = t.flags();
            rx.seq = t.seq_number();
            rx.token = Token::decode(t.payload());
        }
        ipproto::ICMP => {
            let c = Icmpv4Packet::new_checked(l4).map_err(|_| Reject::L4Header)?;
            if !c.verify_checksum() {
                return Err(Reject::L4Checksum);
            }
            rx.icmp_type = c.msg_type();
            if matches!(c.msg_type(), msg_type::ECHO_REQUEST | msg_type::ECHO_REPLY) {
                rx.sport = c.echo_ident();
                rx.dport = c.echo_ident();
                rx.icmp_seq = c.echo_seq_no();
                rx.token = Token::decode(c.data());
            }
        }
        _ => return Err(Reject::Protocol),
    }
    Ok(Rx::Ip(rx))
}

impl Pod {
    /// A new pod on `node`, port `port`, address `.host`.
    pub fn new(uid: u32, node: u32, port: u16, host: u32, now: u64) -> Pod {
        Pod {
            uid,
            node,
            port,
            host,
            ip: topology::pod_ip(node, host),
            mac: topology::pod_mac(uid),
            created_at: now,
            gw_mac: None,
            arp_tries: 0,
            held: Vec::new(),
            used_ports: std::collections::BTreeSet::new(),
            probe_queue: Vec::new(),
            service_flows_left: 0,
        }
    }

    /// The pod as its node's pod table holds it.
    pub fn spec(&self) -> PodSpec {
        PodSpec {
            ip: self.ip,
            mac: self.mac,
            port: self.port,
        }
    }

    /// The gateway's address.
    pub fn gateway_ip(&self) -> Ipv4Addr {
        topology::gateway_ip(self.node)
    }

    /// A fresh ephemeral port in Linux's range (32768–60999): a random one, as Linux picks
    /// (RFC 6056), that this pod has not used before (`draw` is a random number). A pod never
    /// reuses a port, so two of its flows never share a tuple.
    pub fn ephemeral_port(&mut self, draw: u64) -> u16 {
        fresh_port(&mut self.used_ports, draw)
    }

    /// The ARP request for the gateway (broadcast).
    pub fn arp_request(&mut self) -> Vec<u8> {
        self.arp_tries += 1;
        frame::arp_frame(
            MacAddr::BROADCAST,
            op::REQUEST,
            self.mac,
            self.ip,
            MacAddr::ZERO,
            self.gateway_ip(),
        )
    }

    /// The echo server's answer to a request (`None` if `rx` is not one).
    pub fn answer(&self, rx: &IpRx) -> Option<Vec<u8>> {
        let tok = rx.token.filter(|t| t.kind == TokenKind::Request)?;
        let payload = tok.reply().encode(0);
        match rx.proto {
            ipproto::UDP => Some(self.udp(rx.src, rx.dport, rx.sport, &payload)),
            ipproto::TCP => {
                let (flags, seq) = if rx.tcp_flags & tf::SYN != 0 {
                    (tf::SYN | tf::ACK, 1000)
                } else if rx.tcp_flags & tf::FIN != 0 {
                    (tf::FIN | tf::ACK, 1001)
                } else {
                    (tf::ACK, 1001)
                };
                Some(self.tcp(
                    rx.src,
                    rx.dport,
                    rx.sport,
                    seq,
                    rx.seq.wrapping_add(1),
                    flags,
                    &payload,
                ))
            }
            ipproto::ICMP if rx.icmp_type == msg_type::ECHO_REQUEST => {
                Some(self.icmp_echo(rx.src, false, rx.sport, rx.icmp_seq, &payload))
            }
            _ => None,
        }
    }
}

impl Sender for Pod {
    fn addrs(&self, dst: Ipv4Addr) -> Addrs {
        Addrs::new(self.mac, self.gw_mac.unwrap_or(MacAddr::ZERO), self.ip, dst)
    }
}

/// A port in Linux's ephemeral range (32768–60999) not in `used`, from a random start
/// (`draw`), as Linux picks (RFC 6056); recorded in `used`. Once every port was used, `used`
/// starts over (a host would need 28,232 flows for this).
pub fn fresh_port(used: &mut std::collections::BTreeSet<u16>, draw: u64) -> u16 {
    const LO: u64 = 32768;
    const SPAN: u64 = 60999 - 32768 + 1;
    let start = draw % SPAN;
    for k in 0..SPAN {
        let p = (LO + (start + k) % SPAN) as u16;
        if used.insert(p) {
            return p;
        }
    }
    used.clear();
    used.insert(LO as u16);
    LO as u16
}

/// Sets the destination MAC of a frame built before the gateway's MAC was known.
pub fn set_dst_mac(f: &mut [u8], mac: MacAddr) {
    if f.len() >= 6 {
        f[..6].copy_from_slice(mac.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> (Pod, Pod) {
        let mut a = Pod::new(1, 0, 0, 2, 0);
        let mut b = Pod::new(2, 0, 1, 3, 0);
        a.gw_mac = Some(topology::gateway_mac(0));
        b.gw_mac = Some(topology::gateway_mac(0));
        (a, b)
    }

    /// What the gateway does to a frame between two local pods: MACs and TTL.
    fn via_gateway(mut f: Vec<u8>, to: &Pod) -> Vec<u8> {
        f[..6].copy_from_slice(to.mac.as_bytes());
        f[6..12].copy_from_slice(topology::gateway_mac(0).as_bytes());
        f
    }

    #[test]
    fn echo_round_trips_for_every_protocol() {
        let (mut a, b) = pods();
        let tok = Token {
            kind: TokenKind::Request,
            flow: 9,
            seq: 1,
            attempt: 0,
        };
        let sport = a.ephemeral_port(12345);
        let reqs = [
            a.udp(b.ip, sport, 7, &tok.encode(5)),
            a.tcp(b.ip, sport, 7, 1, 0, tf::SYN, &tok.encode(0)),
            a.icmp_echo(b.ip, true, sport, 1, &tok.encode(3)),
        ];
        for r in reqs {
            let Ok(Rx::Ip(rx)) = receive(b.mac, &via_gateway(r, &b)) else {
                panic!("request refused");
            };
            assert_eq!((rx.src, rx.dst, rx.token), (a.ip, b.ip, Some(tok)));
            let ans = b.answer(&rx).unwrap();
            let Ok(Rx::Ip(back)) = receive(a.mac, &via_gateway(ans, &a)) else {
                panic!("answer refused");
            };
            assert_eq!((back.src, back.dst), (b.ip, a.ip));
            assert_eq!(back.dport, sport);
            assert_eq!(back.token, Some(tok.reply()));
            assert!(b.answer(&back).is_none(), "replies are not answered");
        }
    }

    #[test]
    fn host_checks() {
        let (a, b) = pods();
        let tok = Token {
            kind: TokenKind::Request,
            flow: 1,
            seq: 0,
            attempt: 0,
        };
        let good = via_gateway(a.udp(b.ip, 40000, 7, &tok.encode(0)), &b);
        assert!(receive(b.mac, &good).is_ok());
        assert_eq!(receive(a.mac, &good), Err(Reject::DstMac));
        let mut bad = good.clone();
        bad[14 + 8] ^= 1; // TTL
        assert_eq!(receive(b.mac, &bad), Err(Reject::Ipv4Checksum));
        let mut bad = good.clone();
        bad[good.len() - 1] ^= 0x10; // payload
        assert_eq!(receive(b.mac, &bad), Err(Reject::L4Checksum));
        let mut bad = good.clone();
        bad[12] = 0x86;
        assert_eq!(receive(b.mac, &bad), Err(Reject::Ethertype));
    }
}
