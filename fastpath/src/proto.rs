//! The fast path's local control protocol: what the control daemon (and `podlanectl`) send over
//! the fast path's unix socket.
//!
//! Framing (all integers big-endian):
//!
//! ```text
//! +--------+--------+--------+--------+
//! |  'P'   |  'L'   |  'F'   |  'P'   |   magic
//! +--------+--------+--------+--------+
//! |     version     |    reserved     |   version = 1, reserved = 0
//! +--------+--------+--------+--------+
//! |              length               |   body bytes, at most MAX_BODY
//! +--------+--------+--------+--------+
//! |  body: one JSON Request or Response ...
//! ```
//!
//! One request, one response, in order, on a connection. A frame with a bad magic, version or
//! length cannot be resynchronised: the server answers with an error and closes the
//! connection. A well-framed body that is not a valid request gets an error answer and the
//! connection stays open. Either way the fast path counts it and keeps forwarding.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::counters::CounterSnapshot;
use crate::update::{FullState, Update};

/// The frame magic.
pub const MAGIC: [u8; 4] = *b"PLFP";
/// The protocol version this build speaks.
pub const VERSION: u16 = 1;
/// The largest body accepted (a full snapshot of 10,000 Services with 100,000 endpoints is
/// about 10 MB of JSON).
pub const MAX_BODY: u32 = 64 << 20;
/// Header length.
pub const HEADER_LEN: usize = 12;

/// A request to the fast path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Who are you: the process epoch and the table generation.
    Hello,
    /// Applies updates, all or nothing, as one new table version.
    Apply {
        /// The updates.
        updates: Vec<Update>,
    },
    /// Replaces the whole state (a resync), applied as a difference.
    Snapshot {
        /// The state.
        state: FullState,
    },
    /// The current desired state the fast path holds.
    GetState,
    /// Counters.
    Stats,
    /// Adds pod port `pod_port` while the workers keep polling the other ports: either a TAP
    /// device the fast path creates and whose file descriptor the worker reads and writes
    /// directly (`tap:IFNAME`, e.g. `tap:plp5`, created in the fast path's namespace, or
    /// `tap:IFNAME@NETNS`, e.g. `tap:eth0@/var/run/netns/pod-a`, created inside that network
    /// namespace; no DPDK ethdev slot, so not bounded by `RTE_MAX_ETHPORTS`), or any DPDK
    /// device, attached and started (DPDK devargs, e.g.
    /// `net_pcap3,rx_pcap=in.pcap,tx_pcap=out.pcap`).
    AddPort {
        /// `tap:IFNAME[@NETNS]`, or DPDK devargs.
        devargs: String,
        /// The pod port id the tables use.
        pod_port: u16,
    },
    /// Removes pod port `pod_port` once no worker uses it: a TAP port's descriptor is closed
    /// (the device goes with it, in whatever namespace it is); a DPDK device is stopped,
    /// closed and detached.
    RemovePort {
        /// The pod port id.
        pod_port: u16,
    },
    /// Up to `limit` connection-tracking entries of every worker (copied by each worker
    /// between two polls; the packet path never waits for it).
    Conntrack {
        /// The most entries to return (per worker).
        limit: u32,
    },
}

/// The fast path's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// Done. `epoch` changes when the fast path restarts (the control side then resyncs);
    /// `generation` is the table version now in force.
    Ok {
        /// Process epoch.
        epoch: u64,
        /// Table generation.
        generation: u64,
    },
    /// The state.
    State {
        /// Process epoch.
        epoch: u64,
        /// Table generation.
        generation: u64,
        /// The state.
        state: FullState,
    },
    /// Counters summed over workers.
    Stats {
        /// Process epoch.
        epoch: u64,
        /// Table generation.
        generation: u64,
        /// Counters.
        counters: CounterSnapshot,
        /// Per-port device counters.
        #[serde(default)]
        ports: Vec<PortCounters>,
    },
    /// Connection-tracking entries.
    Conntrack {
        /// Process epoch.
        epoch: u64,
        /// Entries in use over all workers.
        total: u64,
        /// The entries copied (at most the request's limit per worker).
        flows: Vec<CtFlow>,
    },
    /// The request was refused; nothing changed.
    Error {
        /// What was wrong, for a person.
        message: String,
    },
}

/// One port's device counters (`rte_eth_stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortCounters {
    /// The DPDK device name.
    pub name: String,
    /// `uplink`, `host` or `pod`.
    pub role: String,
    /// The pod port id, for pod ports.
    #[serde(default)]
    pub pod_port: Option<u16>,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Dropped by the device for lack of receive descriptors.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// One connection-tracking entry as the CLI shows it. `orig` is the tuple the client sent
/// (client → ClusterIP/NodePort), `reply` the tuple the backend answers with (backend → client,
/// or → the SNAT address); together they say what the fast path rewrites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtFlow {
    /// Which worker holds it.
    pub worker: u16,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Client side: `src:port`.
    pub orig_src: String,
    /// Client side: `dst:port` (the frontend).
    pub orig_dst: String,
    /// Backend side: `src:port` (the backend).
    pub reply_src: String,
    /// Backend side: `dst:port` (the client, or the SNAT address).
    pub reply_dst: String,
    /// TCP state (`syn_sent`, `established`, `fin_wait`, `closed`) or `replied`/`unreplied`.
    pub state: String,
    /// Milliseconds since its last packet.
    pub idle_ms: u64,
}

impl CtFlow {
    /// The view of a conntrack entry at `now_ms`.
    pub fn of(worker: u16, e: &crate::tables::conntrack::Entry, now_ms: u64) -> CtFlow {
        use crate::tables::conntrack::{Dir, TcpState};
        let ep = |ip: u32, port: u16| format!("{}:{port}", core::net::Ipv4Addr::from_bits(ip));
        let o = e.key(Dir::Orig);
        let r = e.key(Dir::Reply);
        let state = match e.state {
            TcpState::SynSent => "syn_sent",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::Closed => "closed",
            TcpState::None if e.replied() => "replied",
            TcpState::None => "unreplied",
        };
        CtFlow {
            worker,
            proto: match e.proto() {
                6 => "tcp".into(),
                17 => "udp".into(),
                n => n.to_string(),
            },
            orig_src: ep(o.src, o.sport),
            orig_dst: ep(o.dst, o.dport),
            reply_src: ep(r.src, r.sport),
            reply_dst: ep(r.dst, r.dport),
            state: state.into(),
            idle_ms: now_ms.saturating_sub(e.last_seen()),
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection ended cleanly before a frame.
    #[error("connection closed")]
    Closed,
    /// I/O failure or a frame cut short.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Not this protocol.
    #[error("bad magic {0:02x?}: not a podlane control frame")]
    Magic([u8; 4]),
    /// Another version.
    #[error("protocol version {0} not supported (this fast path speaks {VERSION})")]
    Version(u16),
    /// Too long.
    #[error("frame body of {0} bytes is over the {MAX_BODY}-byte limit")]
    TooLong(u32),
}

/// Writes one frame carrying `msg`.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(|_| std::io::Error::other("message too large"))?;
    let mut head = [0u8; HEADER_LEN];
    head[..4].copy_from_slice(&MAGIC);
    head[4..6].copy_from_slice(&VERSION.to_be_bytes());
    head[8..12].copy_from_slice(&len.to_be_bytes());
    w.write_all(&head)?;
    w.write_all(&body)?;
    w.flush()
}

/// Reads one frame's body (checked header; the body is not parsed).
pub fn read_frame<R: Read>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let magic = [head[0], head[1], head[2], head[3]];
    if magic != MAGIC {
        return Err(FrameError::Magic(magic));
    }
    let version = u16::from_be_bytes([head[4], head[5]]);
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let len = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    if len > MAX_BODY {
        return Err(FrameError::TooLong(len));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Binds a unix socket readable and writable by its owner only (mode 0600), replacing a stale
/// socket a previous run left — never another kind of file. Both of podlane's local control
/// endpoints (the fast path's and the control daemon's CNI socket) are bound this way.
pub fn bind_private_socket(
    path: &std::path::Path,
) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )));
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Sends a request and reads the answer (a client helper for the control daemon and tests).
pub fn call<S: Read + Write>(s: &mut S, req: &Request) -> Result<Response, FrameError> {
    write_frame(s, req)?;
    let body = read_frame(s)?;
    serde_json::from_slice(&body).map_err(|e| FrameError::Io(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn frames_round_trip_byte_exact() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Hello).unwrap();
        #[rustfmt::skip]
        let head = [b'P', b'L', b'F', b'P', 0, 1, 0, 0, 0, 0, 0, 14];
        assert_eq!(&buf[..12], &head);
        assert_eq!(&buf[12..], br#"{"op":"hello"}"#);
        let body = read_frame(&mut Cursor::new(&buf)).unwrap();
        assert_eq!(
            serde_json::from_slice::<Request>(&body).unwrap(),
            Request::Hello
        );
        let mut buf = Vec::new();
        let req = Request::Apply {
            updates: vec![Update::RemovePod {
                ip: "10.244.1.2".parse().unwrap(),
            }],
        };
        write_frame(&mut buf, &req).unwrap();
        let body = read_frame(&mut Cursor::new(&buf)).unwrap();
        assert_eq!(serde_json::from_slice::<Request>(&body).unwrap(), req);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = |b: &[u8]| {
            read_frame(&mut Cursor::new(b.to_vec()))
                .unwrap_err()
                .to_string()
        };
        assert!(err(b"GET / HTTP/1.1\r\n").contains("bad magic"));
        assert!(err(&[b'P', b'L', b'F', b'P', 0, 9, 0, 0, 0, 0, 0, 0]).contains("version 9"));
        assert!(
            err(&[b'P', b'L', b'F', b'P', 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff]).contains("limit")
        );
        assert!(err(&[b'P', b'L', b'F', b'P', 0, 1, 0, 0, 0, 0, 0, 10, b'{']).contains("i/o"));
        assert!(matches!(
            read_frame(&mut Cursor::new(Vec::new())),
            Err(FrameError::Closed)
        ));
        assert!(serde_json::from_slice::<Request>(br#"{"op":"launch_missiles"}"#).is_err());
    }
}
