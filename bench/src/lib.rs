//! podlane benchmarks: the pipeline microbenchmark (cycles per packet without I/O).
#![forbid(unsafe_code)]
