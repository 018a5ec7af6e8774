//! podlane control plane: the CNI plugin's logic, the control daemon (IPAM, persistent state,
//! cluster file, HTTP API and Kubernetes API, live sync to the fast path, metrics) and `podlanectl`.
//!
//! The data path never waits for anything here: the fast path keeps forwarding with the tables
//! it has while this daemon is down, and catches up (deltas, or a full resync on a new fast-path
//! epoch) when it returns.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod cni;
pub mod cniwire;
pub mod config;
pub mod daemon;
pub mod desired;
pub mod endpoint;
pub mod fpclient;
pub mod healthcheck;
pub mod hostroutes;
pub mod http;
pub mod kubernetes;
pub mod netns;
pub mod store;
