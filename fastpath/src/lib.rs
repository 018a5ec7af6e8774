//! podlane fast path core.
//!
//! Everything the data cores run, with no DPDK dependency: zero-copy header views ([`wire`]),
//! the packet-buffer trait ([`buf`]), the forwarding, Service and conntrack tables ([`tables`]),
//! the typed update API and its RCU-style publication ([`update`], [`rcu`]), per-core counters
//! ([`counters`]) and the burst pipeline ([`pipeline`]). The DPDK daemon, the simulator and the
//! benchmarks all drive this same code.
#![forbid(unsafe_code)]

pub mod buf;
pub mod cidr;
pub mod counters;
pub mod fixtures;
pub mod fuzz;
pub mod pcap;
pub mod pipeline;
pub mod proto;
pub mod rcu;
pub mod tables;
pub mod update;
pub mod wire;
