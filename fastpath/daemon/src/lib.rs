//! The poll-mode daemon's parts: the worker loop that moves bursts between DPDK ports and the
//! pipeline. (The configuration file, the control socket and port hot-plug come next; see
//! issue 3.)
#![forbid(unsafe_code)]

pub mod worker;
