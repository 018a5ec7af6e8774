//! podlane cluster simulator: N nodes, each running the real fast-path pipeline and tables
//! (`fastpath::pipeline::Pipeline`, `fastpath::update::TableWriter`) with in-memory ports and no
//! DPDK, programmed through the same `fastpath::update::Update` messages the control daemon
//! sends, joined by an in-memory underlay that carries their VXLAN frames; simulated pods that
//! send and receive real frames (ARP for the gateway first, then IPv4 UDP/TCP/ICMP); fault
//! decorators on every link; churn and restart events; and invariants checked on every
//! delivered frame.
//!
//! Seeded and deterministic: the same configuration and seed give the same report, byte for
//! byte (except its optional wall-clock `timings` section).
//!
//! | concept | module |
//! |---|---|
//! | seeded PRNG | [`rng`] |
//! | addressing (node, pod, Service addresses and MACs) | [`topology`] |
//! | frames with out-of-band ground truth; payload tokens | [`packet`] |
//! | links and fault decorators (loss, duplication, corruption, delay, reordering) | [`faults`] |
//! | pod ports (one link per port and direction) | [`ports`] |
//! | the underlay | [`underlay`] |
//! | a node: writer, pipeline, ports, IPAM | [`node`] |
//! | a pod: host stack, ARP, echo server | [`pod`] |
//! | external clients on the underlay (NodePort traffic) | [`external`] |
//! | flows: probes, Service flows, NodePort flows, gateway pings | [`traffic`] |
//! | desired state → `Update` messages (the control crate's future job) | [`desired`] |
//! | events: churn, node join/leave, restarts | [`scenario`] |
//! | invariants and the ground truth they use | [`invariants`] |
//! | the engine | [`sim`] |
//! | wall-clock and memory measurements | [`measure`] |
//! | the report (text, JSON, SVG) | [`report`], [`svg`] |
//!
//! ```no_run
//! use sim::sim::{Sim, SimConfig};
//! let report = Sim::new(SimConfig::default())?.run()?;
//! assert!(report.passed, "{}", report.text());
//! # Ok::<(), sim::sim::SimError>(())
//! ```
#![forbid(unsafe_code)]

pub mod desired;
pub mod external;
pub mod faults;
pub mod invariants;
pub mod measure;
pub mod node;
pub mod packet;
pub mod pod;
pub mod ports;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod svg;
pub mod topology;
pub mod traffic;
pub mod underlay;

pub use crate::report::Report;
pub use crate::sim::{Sim, SimConfig, SimError};
