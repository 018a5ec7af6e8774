//! podlane cluster simulator: many nodes running the real pipeline over an in-memory underlay.
//!
//! Not built yet (issue 6).
#![forbid(unsafe_code)]
