//! podlane benchmarks. [`micro`]: the pipeline's cost per packet without I/O. [`gen`]: the
//! DPDK traffic generator and latency meter (`podlane-bench`) and the comparison harness's
//! report.
#![forbid(unsafe_code)]

pub mod gen;
pub mod micro;
