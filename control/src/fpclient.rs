//! The client side of the fast path's control socket (`fastpath::proto`).
//!
//! One short connection per call: the fast path serves one connection at a time, so holding one
//! open would starve `podlanectl` and the other callers.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use fastpath::proto::{call, Request, Response};

/// Why a fast-path call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FpError {
    /// Not running (no socket, refused) or not answering.
    #[error("fast path unreachable at {0}: {1}")]
    Down(String, String),
    /// It answered with an error: nothing changed.
    #[error("fast path refused: {0}")]
    Refused(String),
    /// It answered something this version does not expect.
    #[error("fast path answered unexpectedly: {0}")]
    Unexpected(String),
}

/// The fast path's socket.
#[derive(Debug, Clone)]
pub struct FastPath {
    path: PathBuf,
    timeout: Duration,
}

impl FastPath {
    /// A client for the socket at `path`.
    pub fn new(path: PathBuf, timeout: Duration) -> FastPath {
        FastPath { path, timeout }
    }

    /// Sends one request; an `Error` answer becomes [`FpError::Refused`].
    pub fn call(&self, req: &Request) -> Result<Response, FpError> {
        let down = |e: &dyn std::fmt::Display| {
            FpError::Down(self.path.display().to_string(), e.to_string())
        };
        let mut s = UnixStream::connect(&self.path).map_err(|e| down(&e))?;
        s.set_read_timeout(Some(self.timeout))
            .map_err(|e| down(&e))?;
        s.set_write_timeout(Some(self.timeout))
            .map_err(|e| down(&e))?;
        match call(&mut s, req) {
            Ok(Response::Error { message }) => Err(FpError::Refused(message)),
            Ok(r) => Ok(r),
            Err(e) => Err(down(&e)),
        }
    }

    /// Sends a request that answers `Ok`; returns (epoch, generation).
    pub fn ok(&self, req: &Request) -> Result<(u64, u64), FpError> {
        match self.call(req)? {
            Response::Ok { epoch, generation } => Ok((epoch, generation)),
            other => Err(FpError::Unexpected(format!("{other:?}"))),
        }
    }
}
