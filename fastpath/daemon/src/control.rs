//! The local control socket: a unix socket (mode 0600, root only) speaking
//! [`fastpath::proto`]. It owns the [`TableWriter`]: every accepted change is published to the
//! workers RCU-style; a refused one changes nothing. Garbage gets an error answer and a counter,
//! never a crash.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fastpath::counters::{CounterSnapshot, Counters};
use fastpath::proto::{read_frame, write_frame, FrameError, Request, Response};
use fastpath::update::{TableWriter, Update};

/// Counters of the control socket.
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Frames that were not this protocol (bad magic, version, length, cut short).
    pub bad_frames: AtomicU64,
    /// Well-framed bodies that were not a valid request.
    pub bad_requests: AtomicU64,
    /// Valid requests refused (invalid updates).
    pub refused: AtomicU64,
}

/// The server.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    epoch: u64,
    stats: Arc<ControlStats>,
}

impl ControlServer {
    /// Binds `path` (replacing a stale socket left by a previous run, never another kind of
    /// file), readable and writable by the owner only.
    pub fn bind(path: &Path, epoch: u64) -> io::Result<ControlServer> {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.file_type().is_socket() {
                std::fs::remove_file(path)?;
            } else {
                return Err(io::Error::other(format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                )));
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            epoch,
            stats: Arc::default(),
        })
    }

    /// The socket's counters.
    pub fn stats(&self) -> &Arc<ControlStats> {
        &self.stats
    }

    /// Serves every pending connection to its end; returns when no client is waiting.
    pub fn serve_pending(&self, writer: &mut TableWriter, workers: &[Arc<Counters>]) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.serve(stream, writer, workers),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
        }
    }

    fn serve(&self, mut s: UnixStream, writer: &mut TableWriter, workers: &[Arc<Counters>]) {
        if s.set_nonblocking(false).is_err()
            || s.set_read_timeout(Some(Duration::from_secs(5))).is_err()
            || s.set_write_timeout(Some(Duration::from_secs(5))).is_err()
        {
            return;
        }
        loop {
            let body = match read_frame(&mut s) {
                Ok(b) => b,
                Err(FrameError::Closed) => return,
                Err(e) => {
                    // Framing is lost: answer and close.
                    self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    let _ = write_frame(
                        &mut s,
                        &Response::Error {
                            message: e.to_string(),
                        },
                    );
                    return;
                }
            };
            let resp = match serde_json::from_slice::<Request>(&body) {
                Ok(req) => self.handle(req, writer, workers),
                Err(e) => {
                    self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                    Response::Error {
                        message: format!("not a valid request: {e}"),
                    }
                }
            };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if write_frame(&mut s, &resp).is_err() {
                return;
            }
        }
    }

    fn handle(
        &self,
        req: Request,
        writer: &mut TableWriter,
        workers: &[Arc<Counters>],
    ) -> Response {
        let epoch = self.epoch;
        let applied = match req {
            Request::Hello => Ok(writer.generation()),
            Request::Apply { updates } => writer.apply_batch(updates),
            Request::Snapshot { state } => writer.apply(Update::Snapshot(state)),
            Request::GetState => {
                return Response::State {
                    epoch,
                    generation: writer.generation(),
                    state: writer.full_state(),
                }
            }
            Request::Stats => {
                return Response::Stats {
                    epoch,
                    generation: writer.generation(),
                    counters: CounterSnapshot::sum(workers.iter().map(|c| &**c)),
                }
            }
        };
        writer.reclaim();
        match applied {
            Ok(generation) => Response::Ok { epoch, generation },
            Err(e) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Response::Error {
                    message: e.to_string(),
                }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
