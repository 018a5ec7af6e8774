//! The poll-mode daemon's parts: its configuration file and the worker loop that moves bursts
//! between DPDK ports and the pipeline. (The control socket and run-time port changes come
//! next; see issue 3.)
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod worker;
