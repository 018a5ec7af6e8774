//! podlane benchmarks. [`micro`]: the pipeline's cost per packet without I/O.
#![forbid(unsafe_code)]

pub mod micro;
