//! `podlane-bench`: a pktgen-style traffic generator and sink on DPDK ports, with latency
//! measurement, and the pieces of the comparison harness (`bench/compare.sh`).
//!
//! - [`profile`]: the traffic profiles, built with the fast-path core's frame builders, the
//!   node state they need, and the exact frames podlane must emit for them.
//! - [`stamp`]: the signature (magic, sequence number, TSC) in every payload.
//! - [`track`]: latency histogram, loss, reordering, duplicates.
//! - [`run`]: the DPDK generator (token bucket on the TSC), trials, zero-loss search.
//! - [`report`]: the comparison table, JSON and SVG.

pub mod profile;
pub mod report;
pub mod run;
pub mod stamp;
pub mod track;
