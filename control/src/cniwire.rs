//! The CNI endpoint's protocol: what the `podlane` CNI plugin binary sends the control daemon
//! over its local unix socket, and the answer.
//!
//! One request per connection: the plugin writes one JSON [`CniRequest`], shuts down its write
//! half, and reads one JSON [`CniReply`] to the end of the stream. The plugin owns everything
//! about the CNI spec's wire format (environment, stdin config, versioned result JSON); the
//! daemon sees only this version-independent form and answers with an [`Attachment`] or a CNI
//! error code. Bodies are limited to [`MAX_MESSAGE`] bytes on both sides.

use std::io::{Read, Write};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The largest request or reply body.
pub const MAX_MESSAGE: u64 = 1 << 20;

/// The CNI spec's well-known error codes (CNI spec 1.1, "Error").
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin is not available (cannot serve ADD).
    pub const NOT_AVAILABLE: u32 = 50;
    /// Plugin-specific (CNI reserves 0-99): no free address left in the node's pod CIDR.
    pub const IP_EXHAUSTED: u32 = 100;
    /// Plugin-specific: the fast path refused or failed a step of the attachment.
    pub const FASTPATH_FAILURE: u32 = 101;
    /// Plugin-specific: CHECK found the attachment different from what was recorded.
    pub const CHECK_FAILED: u32 = 102;
}

/// The operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CniCommand {
    /// Attach.
    Add,
    /// Detach (idempotent).
    Del,
    /// Verify.
    Check,
    /// Release everything not in `valid_attachments`.
    Gc,
    /// Is the plugin ready for ADD.
    Status,
}

/// One attachment's identity, as the runtime names it (`cni.dev/valid-attachments` entries).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentKey {
    /// `CNI_CONTAINERID`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

impl AttachmentKey {
    /// The store key: `container_id/ifname` (neither may contain '/').
    pub fn store_key(&self) -> String {
        format!("{}/{}", self.container_id, self.ifname)
    }
}

/// What the plugin asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CniRequest {
    /// The operation.
    pub command: CniCommand,
    /// The network config's `name`.
    pub network: String,
    /// The attachment (empty for GC and STATUS).
    #[serde(default)]
    pub container_id: String,
    /// `CNI_IFNAME` (empty for GC and STATUS).
    #[serde(default)]
    pub ifname: String,
    /// `CNI_NETNS`: a path (absent on DEL when the runtime no longer has it).
    #[serde(default)]
    pub netns: Option<String>,
    /// `K8S_POD_NAMESPACE` from `CNI_ARGS`.
    #[serde(default)]
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME` from `CNI_ARGS`.
    #[serde(default)]
    pub pod_name: Option<String>,
    /// CHECK: what the runtime recorded for this attachment (from `prevResult`).
    #[serde(default)]
    pub expect: Option<Attachment>,
    /// GC: the attachments that must be kept.
    #[serde(default)]
    pub valid_attachments: Vec<AttachmentKey>,
}

/// An attachment as made: what ADD returns and CHECK verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// Interface name inside the pod (`CNI_IFNAME`).
    pub ifname: String,
    /// Its MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The netns path.
    pub sandbox: String,
    /// Its MTU.
    pub mtu: u16,
    /// The pod's IPv4 address.
    pub ip: Ipv4Addr,
    /// Prefix length of the pod CIDR.
    pub prefix_len: u8,
    /// The gateway (first address of the pod CIDR).
    pub gateway: Ipv4Addr,
}

/// A CNI error as the spec shapes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    /// The spec's code ([`code`]).
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation.
    #[serde(default)]
    pub details: String,
}

impl CniError {
    /// An error with a code and message.
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details.
    pub fn details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum CniReply {
    /// ADD: the attachment made.
    Added(Attachment),
    /// DEL, CHECK, GC, STATUS: done.
    Done,
    /// Refused or failed.
    Error(CniError),
}

/// Writes one message (JSON) and ends the write half if the stream supports it.
pub fn write_message<W: Write, T: Serialize>(w: &mut W, msg: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, msg).map_err(std::io::Error::other)?;
    w.flush()
}

/// Reads one message to the end of the stream, at most [`MAX_MESSAGE`] bytes.
pub fn read_message<R: Read, T: for<'de> Deserialize<'de>>(r: &mut R) -> std::io::Result<T> {
    let mut body = Vec::new();
    r.take(MAX_MESSAGE + 1).read_to_end(&mut body)?;
    if body.len() as u64 > MAX_MESSAGE {
        return Err(std::io::Error::other(format!(
            "message over the {MAX_MESSAGE}-byte limit"
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_and_rejects_garbage() {
        let req = CniRequest {
            command: CniCommand::Add,
            network: "podlane".into(),
            container_id: "abc".into(),
            ifname: "eth0".into(),
            netns: Some("/run/netns/x".into()),
            pod_namespace: Some("default".into()),
            pod_name: Some("web-0".into()),
            expect: None,
            valid_attachments: vec![],
        };
        let mut buf = Vec::new();
        write_message(&mut buf, &req).unwrap();
        let back: CniRequest = read_message(&mut buf.as_slice()).unwrap();
        assert_eq!(back, req);
        assert!(read_message::<_, CniRequest>(&mut &b"{\"command\":\"FLY\"}"[..]).is_err());
        let big = vec![b' '; (MAX_MESSAGE + 2) as usize];
        assert!(read_message::<_, CniRequest>(&mut big.as_slice()).is_err());
    }

    #[test]
    fn reply_shapes() {
        let e = CniReply::Error(CniError::new(code::TRY_AGAIN, "busy").details("x"));
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"result":"error","code":11,"msg":"busy","details":"x"}"#
        );
        assert_eq!(serde_json::from_str::<CniReply>(&s).unwrap(), e);
    }
}
