//! Flows: what the simulated pods send, and the simulator's record of each conversation.
//!
//! Four kinds:
//! - **gateway ping**: once a pod has resolved its gateway by ARP it pings it (ICMP echo,
//!   answered by the fast path's gateway responder);
//! - **probes**: pod-to-pod request/answer pairs (UDP, TCP SYN or ICMP echo, chosen at random)
//!   to the echo port of the target pod; a probe is resent (at least [`PROBE_ATTEMPTS`] times,
//!   more under heavy faults: [`probe_attempts`]) until answered, so that reachability can be
//!   judged under loss;
//! - **Service flows**: a client pod talks to a ClusterIP:port — TCP: SYN, data segments, FIN;
//!   UDP: a run of datagrams — one request every few ticks, each answered by the backend. Not
//!   resent: a lost request is just lost, as a client's retransmission would be a new packet;
//! - **NodePort flows**: the same conversation, from an external client on the underlay
//!   ([`crate::external`]) to a node's underlay address and a Service's NodePort.
//!
//! Every request carries a [`Token`] naming its flow, so the checker can tell which flow a
//! delivered frame belongs to and what its addresses must be.

use core::net::Ipv4Addr;

use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::ipproto;
use fastpath::wire::tcp::flags as tf;

use crate::packet::{Token, TokenKind};
use crate::pod::Pod;
use crate::topology;

/// The fewest times a probe is sent before it is judged unanswered.
pub const PROBE_ATTEMPTS: u32 = 8;

/// How many times a probe is sent before it is judged unanswered, under `faults`: enough that
/// a healthy pair fails by bad luck with a probability below 10⁻⁹. A round trip crosses up to
/// six lossy links (pod → node, underlay, node → pod, and back); a lost or corrupted frame
/// fails the attempt.
pub fn probe_attempts(faults: &crate::faults::FaultPlan) -> u32 {
    let ok = |f: &crate::faults::Faults| (1.0 - f.loss - f.corrupt).clamp(0.0, 1.0);
    let through = (ok(&faults.pod_tx) * ok(&faults.underlay) * ok(&faults.pod_rx)).powi(2);
    let fail = 1.0 - through;
    if fail <= 0.0 {
        return PROBE_ATTEMPTS;
    }
    if fail >= 1.0 {
        return 200;
    }
    let n = (1e-9f64.ln() / fail.ln()).ceil();
    (n as u32).clamp(PROBE_ATTEMPTS, 200)
}

/// Who a flow talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A pod (its uid, IP and echo port).
    Pod {
        /// The target pod's uid.
        uid: u32,
        /// Its IP (host order).
        ip: u32,
    },
    /// A Service (its index).
    Service {
        /// The Service's index.
        svc: u32,
    },
    /// The client's own gateway.
    Gateway,
}

/// The kind of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// Ping to the gateway.
    GatewayPing,
    /// Pod-to-pod probe.
    Probe,
    /// Client pod to a Service.
    Service,
    /// External client to a Service's NodePort on a node.
    NodePort,
    /// A node's kernel to another node's pod, from the node's VTEP address (through the host
    /// path), resent until answered as a probe is.
    HostProbe,
}

/// A node's kernel, sending through its host path (`Ingress::Host`): from its VTEP address to
/// other nodes' pods, as `podlane-control`'s routes make it (`control/src/hostroutes.rs`), to
/// the gateway's MAC (the fast path answers the kernel's ARP for it).
#[derive(Debug, Clone, Copy)]
pub struct NodeHost(pub u32);

impl Sender for NodeHost {
    fn addrs(&self, dst: Ipv4Addr) -> Addrs {
        let n = self.0;
        Addrs::new(
            topology::underlay_mac(n),
            topology::gateway_mac(n),
            topology::pod_cidr(n).network(),
            dst,
        )
    }
}

/// What builds a flow's frames: a pod, or an external client towards a node. Each gives its
/// frames' addresses; the frames are built the same way.
pub trait Sender {
    /// The Ethernet and IPv4 addresses of a frame to `dst`.
    fn addrs(&self, dst: Ipv4Addr) -> Addrs;

    /// A UDP datagram.
    fn udp(&self, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        frame::udp_frame(&self.addrs(dst), sport, dport, payload)
    }

    /// A TCP segment.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &self,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        frame::tcp_frame(&self.addrs(dst), sport, dport, seq, ack, flags, payload)
    }

    /// An ICMP echo request or reply.
    fn icmp_echo(
        &self,
        dst: Ipv4Addr,
        request: bool,
        ident: u16,
        seq: u16,
        data: &[u8],
    ) -> Vec<u8> {
        frame::icmp_echo_frame(&self.addrs(dst), request, ident, seq, data)
    }
}

/// One conversation.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Its id (index in the flow list; carried in every token).
    pub id: u32,
    /// Kind.
    pub kind: FlowKind,
    /// The client pod's uid ([`NO_POD`] for an external client's flow).
    pub client: u32,
    /// The external client, for a NodePort flow.
    pub external: Option<u32>,
    /// The flow is its node's kernel's (`client_node`), a host probe.
    pub host: bool,
    /// The client's IP (host order).
    pub client_ip: u32,
    /// The client's node; for a NodePort flow, the node whose NodePort it reaches (the node
    /// that keeps the flow's conntrack entry, as a client pod's node does).
    pub client_node: u32,
    /// IP protocol.
    pub proto: u8,
    /// Client port (ICMP: the echo identifier).
    pub sport: u16,
    /// Destination address the client sends to (pod IP, ClusterIP or gateway).
    pub dst_ip: u32,
    /// Destination port (ICMP: the identifier).
    pub dport: u16,
    /// Who it talks to.
    pub target: Target,
    /// Tick of the first request.
    pub started: u64,
    /// Requests in the flow.
    pub requests: u32,
    /// Requests sent so far (the next request's sequence number).
    pub sent: u32,
    /// Sending attempts of the current request (probes).
    pub attempts: u32,
    /// Some request reached its target.
    pub request_delivered: bool,
    /// Replies the client accepted.
    pub replies: u32,
    /// The backend (IP, port) the flow's requests reach (Service flows).
    pub backend: Option<(u32, u16)>,
    /// Times the backend changed legitimately (its endpoint went away, or the client node's
    /// conntrack was lost).
    pub rebalanced: u32,
    /// Backends the flow moved away from, with the tick the move was seen.
    pub left: Vec<((u32, u16), u64)>,
}

/// The `client` of a flow no pod started (an external client's).
pub const NO_POD: u32 = u32::MAX;

/// Who starts a flow: a pod, an external client, or a node's kernel.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The client pod's uid, or [`NO_POD`].
    pub uid: u32,
    /// The external client, if it is one.
    pub external: Option<u32>,
    /// The node's kernel, if it is one (`node`'s).
    pub host: bool,
    /// Its address (host order): a pod's, an external client's, or the node's VTEP address.
    pub ip: u32,
    /// Its node, or the node an external client reaches.
    pub node: u32,
}

impl Client {
    /// Pod `p`.
    pub fn pod(p: &Pod) -> Client {
        Client {
            uid: p.uid,
            external: None,
            host: false,
            ip: p.ip.to_bits(),
            node: p.node,
        }
    }
}

impl Flow {
    /// A new flow from `client` port `sport`; `requests` requests, first sent at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u32,
        kind: FlowKind,
        client: Client,
        sport: u16,
        proto: u8,
        target: Target,
        dst_ip: Ipv4Addr,
        dport: u16,
        requests: u32,
        now: u64,
    ) -> Flow {
        Flow {
            id,
            kind,
            client: client.uid,
            external: client.external,
            host: client.host,
            client_ip: client.ip,
            client_node: client.node,
            proto,
            sport,
            dst_ip: dst_ip.to_bits(),
            dport: if proto == ipproto::ICMP { sport } else { dport },
            target,
            started: now,
            requests,
            sent: 0,
            attempts: 0,
            request_delivered: false,
            replies: 0,
            backend: None,
            rebalanced: 0,
            left: Vec::new(),
        }
    }

    /// The next request's bytes (`extra` filler bytes after the token), built by `client`.
    pub fn request(&self, client: &impl Sender, seq: u32, attempt: u32, extra: usize) -> Vec<u8> {
        let tok = Token {
            kind: TokenKind::Request,
            flow: self.id,
            seq,
            attempt,
        };
        let payload = tok.encode(extra);
        let dst = Ipv4Addr::from(self.dst_ip);
        match self.proto {
            ipproto::UDP => client.udp(dst, self.sport, self.dport, &payload),
            ipproto::TCP => {
                let flags = if self.is_probe() || seq == 0 {
                    tf::SYN
                } else if seq + 1 == self.requests {
                    tf::FIN | tf::ACK
                } else {
                    tf::PSH | tf::ACK
                };
                let ack = if flags == tf::SYN { 0 } else { 1001 };
                client.tcp(
                    dst,
                    self.sport,
                    self.dport,
                    1 + seq * 100,
                    ack,
                    flags,
                    &payload,
                )
            }
            _ => client.icmp_echo(dst, true, self.sport, (seq * 16 + attempt) as u16, &payload),
        }
    }

    /// The address and port replies must come from: the target pod, the VIP, the gateway, the
    /// node and NodePort.
    pub fn expected_reply_source(&self) -> (u32, u16) {
        (self.dst_ip, self.dport)
    }

    /// True if `rx` is exactly an answer of this flow: from the address and port replies
    /// must come from ([`Flow::expected_reply_source`]; an ICMP echo reply carries no port), to
    /// the client's port, in the flow's protocol.
    pub fn answered_by(&self, rx: &crate::pod::IpRx) -> bool {
        let (want_ip, want_port) = self.expected_reply_source();
        rx.src.to_bits() == want_ip
            && (rx.proto == ipproto::ICMP || rx.sport == want_port)
            && rx.dport == self.sport
            && rx.proto == self.proto
    }

    /// True for a probe: one request, resent until answered (a pod's or a node kernel's).
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, FlowKind::Probe | FlowKind::HostProbe)
    }

    /// True when the flow's target is the pod `uid`.
    pub fn targets_pod(&self, uid: u32) -> bool {
        matches!(self.target, Target::Pod { uid: u, .. } if u == uid)
    }
}

/// A protocol for a probe, by a draw in `0..3`.
pub fn probe_protocol(draw: u64) -> u8 {
    match draw {
        0 => ipproto::UDP,
        1 => ipproto::TCP,
        _ => ipproto::ICMP,
    }
}

/// The echo port probes go to.
pub fn probe_port(proto: u8) -> u16 {
    if proto == ipproto::ICMP {
        0
    } else {
        topology::ECHO_PORT
    }
}
