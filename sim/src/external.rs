//! External clients: hosts on the underlay outside the cluster (a load balancer's, a user's)
//! that reach Services through their NodePorts on a node's underlay address, as plain IPv4 —
//! no tunnel. Each has an address and a MAC of its own ([`topology::external_ip`]), picks
//! ephemeral ports as Linux does, and checks what it receives as a pod's host stack does
//! ([`crate::pod::receive`]). The underlay delivers to it what is addressed to it.

use std::collections::BTreeSet;

use core::net::Ipv4Addr;

use fastpath::wire::frame::Addrs;
use fastpath::wire::MacAddr;

use crate::topology;
use crate::traffic::Sender;

/// An external client.
#[derive(Debug, Clone)]
pub struct External {
    /// Its index.
    pub idx: u32,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
    used_ports: BTreeSet<u16>,
}

impl External {
    /// External client `idx`.
    pub fn new(idx: u32) -> External {
        External {
            idx,
            ip: topology::external_ip(idx),
            mac: topology::external_mac(idx),
            used_ports: BTreeSet::new(),
        }
    }

    /// A fresh ephemeral port (`draw` is a random number): never one it used before, so two
    /// of its flows never share a tuple.
    pub fn ephemeral_port(&mut self, draw: u64) -> u16 {
        crate::pod::fresh_port(&mut self.used_ports, draw)
    }

    /// The client sending to node `node` (its underlay MAC is the frames' destination: both
    /// are on the underlay's segment).
    pub fn to_node(&self, node: u32) -> ToNode<'_> {
        ToNode {
            client: self,
            node_mac: topology::underlay_mac(node),
        }
    }
}

/// An external client's frames to one node.
#[derive(Debug, Clone, Copy)]
pub struct ToNode<'a> {
    client: &'a External,
    node_mac: MacAddr,
}

impl Sender for ToNode<'_> {
    fn addrs(&self, dst: Ipv4Addr) -> Addrs {
        Addrs::new(self.client.mac, self.node_mac, self.client.ip, dst)
    }
}
