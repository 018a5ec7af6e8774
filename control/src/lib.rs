//! podlane control plane: desired state, IPAM, persistence, the CNI endpoint and fast-path sync.
//!
//! Not built yet (issue 4). The fast path's update messages it will send are
//! `fastpath::update::Update`.
#![forbid(unsafe_code)]
