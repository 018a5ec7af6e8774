//! The plugin's side of [`crate::cniwire`]: one request, one reply, over the daemon's unix
//! socket, with a deadline.

use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::cniwire::{read_message, write_message, CniReply, CniRequest};

/// Why the daemon exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Nobody answers: the socket is missing, refuses connections, or the daemon closed the
    /// connection before answering in full.
    Unavailable(String),
    /// The daemon did not answer in time.
    Timeout(String),
    /// Another I/O failure (for example no permission on the socket).
    Io(String),
    /// The daemon answered something that is not a [`CniReply`].
    BadReply(String),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Unavailable(s)
            | TransportError::Timeout(s)
            | TransportError::Io(s)
            | TransportError::BadReply(s) => f.write_str(s),
        }
    }
}

/// How the plugin reaches the daemon (a trait so the plugin logic runs in-process in tests).
pub trait Transport {
    /// Sends `request` to the daemon at `socket` and returns its reply, within `timeout`.
    fn exchange(
        &self,
        socket: &Path,
        timeout: Duration,
        request: &CniRequest,
    ) -> Result<CniReply, TransportError>;
}

/// The real transport: a [`UnixStream`] with read and write timeouts, and an overall deadline
/// (a daemon whose listen backlog is full would otherwise block `connect`).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnixTransport;

impl Transport for UnixTransport {
    fn exchange(
        &self,
        socket: &Path,
        timeout: Duration,
        request: &CniRequest,
    ) -> Result<CniReply, TransportError> {
        let (tx, rx) = mpsc::channel();
        let socket_owned: PathBuf = socket.to_path_buf();
        let request_owned = request.clone();
        let spawned = std::thread::Builder::new()
            .name("podlane-cni-exchange".into())
            .spawn(move || {
                // The receiver may be gone after the deadline; nothing to do then.
                let _ = tx.send(exchange_blocking(&socket_owned, timeout, &request_owned));
            });
        if spawned.is_err() {
            return exchange_blocking(socket, timeout, request);
        }
        // The socket timeouts bound each read and write; this bounds the whole exchange,
        // connect included, with a second of slack so the socket's own timeout reports first.
        let deadline = timeout.saturating_add(Duration::from_secs(1));
        match rx.recv_timeout(deadline) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(TransportError::Timeout(format!(
                "no answer from {} within {}s",
                socket.display(),
                deadline.as_secs()
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(TransportError::Io(
                "the daemon exchange ended without a result".into(),
            )),
        }
    }
}

/// The exchange itself: connect, write the request, shut down the write half, read the reply
/// to the end of the stream.
pub fn exchange_blocking(
    socket: &Path,
    timeout: Duration,
    request: &CniRequest,
) -> Result<CniReply, TransportError> {
    let shown = socket.display();
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        let what = format!("cannot connect to {shown}: {e}");
        match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::NotADirectory => {
                TransportError::Unavailable(what)
            }
            ErrorKind::WouldBlock | ErrorKind::TimedOut => TransportError::Timeout(what),
            _ => TransportError::Io(what),
        }
    })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| TransportError::Io(format!("cannot set timeouts on {shown}: {e}")))?;
    write_message(&mut stream, request)
        .map_err(|e| stream_error("send the request to", socket, &e))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| stream_error("finish the request to", socket, &e))?;
    read_message::<_, CniReply>(&mut stream).map_err(|e| {
        if e.kind() == ErrorKind::InvalidData {
            let eof = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<serde_json::Error>())
                .is_some_and(serde_json::Error::is_eof);
            if eof {
                return TransportError::Unavailable(format!(
                    "{shown} closed the connection before answering in full"
                ));
            }
            return TransportError::BadReply(format!("invalid reply from {shown}: {e}"));
        }
        stream_error("read the reply from", socket, &e)
    })
}

fn stream_error(doing: &str, socket: &Path, e: &io::Error) -> TransportError {
    let what = format!("cannot {doing} {}: {e}", socket.display());
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => TransportError::Timeout(what),
        ErrorKind::BrokenPipe
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::NotConnected
        | ErrorKind::UnexpectedEof => TransportError::Unavailable(what),
        // read_message's size limit.
        ErrorKind::Other => TransportError::BadReply(what),
        _ => TransportError::Io(what),
    }
}
