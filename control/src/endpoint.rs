//! The CNI endpoint: a unix socket (mode 0600) where the plugin's requests arrive, each served
//! on its own thread (ADDs of many pods proceed in parallel; the store serialises allocation).

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cniwire::{code, read_message, write_message, CniError, CniReply, CniRequest};
use crate::daemon::Daemon;

/// Binds the socket (mode 0600; a stale socket is replaced, never another kind of file).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    fastpath::proto::bind_private_socket(path)
}

/// Accepts forever, one thread per request.
pub fn serve(listener: UnixListener, daemon: Arc<Daemon>) {
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let d = Arc::clone(&daemon);
        let spawned = std::thread::Builder::new()
            .name("podlane-cni-req".into())
            .spawn(move || serve_one(stream, &d));
        if let Err(e) = spawned {
            tracing::error!("cannot start a CNI request thread: {e}");
        }
    }
}

fn serve_one(mut s: UnixStream, d: &Daemon) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let reply = match read_message::<_, CniRequest>(&mut s) {
        Ok(req) => {
            tracing::debug!(command = ?req.command, container = %req.container_id, "CNI request");
            d.handle_cni(req)
        }
        Err(e) => CniReply::Error(CniError::new(
            code::DECODE_FAILURE,
            format!("not a podlane CNI request: {e}"),
        )),
    };
    if let CniReply::Error(e) = &reply {
        tracing::warn!("CNI request failed: {e}");
    }
    let _ = write_message(&mut s, &reply);
}
