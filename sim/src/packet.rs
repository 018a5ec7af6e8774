//! The simulator's unit of traffic: a real Ethernet frame in a [`HeapBuf`] (the buffer the
//! pipeline runs on), plus out-of-band [`Meta`]data that only the simulator sees — the ground
//! truth the invariant checker compares the frame's bytes against. The pipeline never reads the
//! metadata; it only rewrites the bytes, in place, and the metadata follows the frame through
//! every hop.
//!
//! Pods put a 16-byte [`Token`] at the start of every payload they send (UDP/TCP data, ICMP echo
//! data), as an application would: which flow, which request, request or reply. Echo servers
//! copy it into their answers, so a reply can be matched to its flow by its bytes alone.

use fastpath::buf::{HeapBuf, PacketBuf};

/// What the simulator knows about a frame, out of band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Unique per frame sent by a pod (a duplicate keeps its original's id).
    pub id: u64,
    /// Tick the pod sent it.
    pub sent_at: u64,
    /// The node that put it on the underlay (set by the node when it leaves the uplink).
    pub from_node: u32,
    /// Some fault decorator flipped a bit in it (at most once per frame; see `faults`).
    pub corrupted: bool,
    /// A fault decorator duplicated it (this is the copy).
    pub duplicate: bool,
}

/// A frame with its metadata. Implements [`PacketBuf`] so bursts of frames go straight into
/// [`fastpath::pipeline::Pipeline::process`].
#[derive(Debug, Clone)]
pub struct Frame {
    /// The bytes, with headroom for the VXLAN header.
    pub buf: HeapBuf,
    /// Ground truth.
    pub meta: Meta,
}

impl Frame {
    /// A frame holding a copy of `bytes`.
    pub fn new(bytes: &[u8], meta: Meta) -> Frame {
        Frame {
            buf: HeapBuf::from_frame(bytes),
            meta,
        }
    }

    /// The EtherType (0 for a runt).
    pub fn ethertype(&self) -> u16 {
        let d = self.buf.data();
        if d.len() < 14 {
            0
        } else {
            u16::from_be_bytes([d[12], d[13]])
        }
    }

    /// The IPv4 destination of an untagged IPv4 frame (host order).
    pub fn ipv4_dst(&self) -> Option<u32> {
        let d = self.buf.data();
        if self.ethertype() != fastpath::wire::ethertype::IPV4 || d.len() < 34 {
            return None;
        }
        Some(u32::from_be_bytes([d[30], d[31], d[32], d[33]]))
    }
}

impl PacketBuf for Frame {
    #[inline]
    fn data(&self) -> &[u8] {
        self.buf.data()
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.buf.data_mut()
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.buf.headroom()
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.buf.prepend(n)
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        self.buf.adj(n)
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        self.buf.trim(n)
    }
}

/// Whether a payload asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenKind {
    /// Sent by a flow's client.
    Request,
    /// Sent back by the server (echo).
    Reply,
}

/// The application-level tag at the start of every payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Request or reply.
    pub kind: TokenKind,
    /// The flow.
    pub flow: u32,
    /// The request's sequence number within the flow.
    pub seq: u32,
    /// The sending attempt (probes are retried).
    pub attempt: u32,
}

/// Magic bytes that start a token.
const MAGIC: [u8; 3] = *b"PLS";
/// Length of an encoded token.
pub const TOKEN_LEN: usize = 16;

impl Token {
    /// Encodes the token followed by `extra` filler bytes (a pattern derived from the token, so
    /// a corrupted filler byte would also be visible).
    pub fn encode(&self, extra: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(TOKEN_LEN + extra);
        v.extend_from_slice(&MAGIC);
        v.push(match self.kind {
            TokenKind::Request => 1,
            TokenKind::Reply => 2,
        });
        v.extend_from_slice(&self.flow.to_be_bytes());
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.attempt.to_be_bytes());
        for i in 0..extra {
            v.push((self.flow as u8).wrapping_add(i as u8).wrapping_mul(31));
        }
        v
    }

    /// Decodes a payload: the token, if the payload starts with one and its filler is intact.
    pub fn decode(p: &[u8]) -> Option<Token> {
        if p.len() < TOKEN_LEN || p[..3] != MAGIC {
            return None;
        }
        let kind = match p[3] {
            1 => TokenKind::Request,
            2 => TokenKind::Reply,
            _ => return None,
        };
        let u = |o: usize| u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
        let t = Token {
            kind,
            flow: u(4),
            seq: u(8),
            attempt: u(12),
        };
        let filler_ok = p[TOKEN_LEN..]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (t.flow as u8).wrapping_add(i as u8).wrapping_mul(31));
        filler_ok.then_some(t)
    }

    /// The same token as a reply.
    pub fn reply(&self) -> Token {
        Token {
            kind: TokenKind::Reply,
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_filler_check() {
        let t = Token {
            kind: TokenKind::Request,
            flow: 0xdead_beef,
            seq: 3,
            attempt: 1,
        };
        let mut b = t.encode(20);
        assert_eq!(b.len(), 36);
        assert_eq!(Token::decode(&b), Some(t));
        assert_eq!(
            Token::decode(&t.reply().encode(0)).unwrap().kind,
            TokenKind::Reply
        );
        b[30] ^= 1;
        assert_eq!(Token::decode(&b), None);
        assert_eq!(Token::decode(b"short"), None);
    }

    #[test]
    fn frame_is_a_packet_buf() {
        let mut f = Frame::new(&[0u8; 20], Meta::default());
        assert_eq!(f.len(), 20);
        assert!(f.prepend(50).is_some());
        assert_eq!(f.len(), 70);
        assert!(f.adj(50) && f.trim(6));
        assert_eq!(f.len(), 14);
        assert_eq!(f.ipv4_dst(), None);
    }
}
