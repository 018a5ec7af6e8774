//! TCP headers (RFC 9293 §3.1), over IPv4.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |       |       |R|E|G|K|H|T|N|N|                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           [Options]                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               :
//! :                             Data                              :
//! :                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! TCP has no length field: the segment is the whole buffer, so callers slice it to the IPv4
//! payload ([`super::ipv4::Ipv4Packet::payload`]). The checksum covers the IPv4 pseudo header
//! (with the segment length, RFC 9293 §3.1 "TCP Length"), the header and the data; unlike UDP
//! there is no "no checksum" value. The four reserved bits (RFC 9293 §3.1 "Rsrvd", one of them
//! the experimental AE/NS bit) are kept as they are by the setters and not interpreted.

use core::net::Ipv4Addr;

use super::{be16, be32, checksum, ipproto, put16, put32, Result, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a TCP header without options (data offset 5); the minimum.
pub const HEADER_LEN: usize = field::OPTIONS;

/// Length of the longest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// Flag bits (byte 13, the low byte of the offset/flags word).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer significant.
    pub const URG: u8 = 0x20;
    /// ECN echo (RFC 3168).
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced (RFC 3168).
    pub const CWR: u8 = 0x80;
}

/// A zero-copy view of a TCP segment (see the [module docs](self) for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of the minimal header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps `buffer` without checking it: getters may panic on a short or inconsistent buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` and validates it with [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Under 20 bytes: `Truncated`; data offset under 5 (RFC 9293 §3.1: the header is at least
    /// five 32-bit words): `Malformed`; header (with options) beyond the buffer: `Truncated`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if hl > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFFSET] >> 4) * 4
    }

    /// The eight flag bits (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// PSH.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & flags::PSH != 0
    }

    /// ACK.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// URG.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flags() & flags::URG != 0
    }

    /// ECE (RFC 3168).
    #[inline]
    pub fn ece(&self) -> bool {
        self.flags() & flags::ECE != 0
    }

    /// CWR (RFC 3168).
    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags() & flags::CWR != 0
    }

    /// Window.
    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    /// The options (and padding): bytes 20 to the data offset; not interpreted.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The data: everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// One's complement sum of pseudo header and segment, or `None` if the buffer is too long
    /// for the 16-bit TCP Length of the pseudo header.
    #[inline]
    fn full_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<u32> {
        let b = self.buffer.as_ref();
        let len = u16::try_from(b.len()).ok()?;
        Some(checksum::combine(
            checksum::pseudo_header(src, dst, ipproto::TCP, len),
            checksum::sum(b),
        ))
    }

    /// True if the checksum is right for this pseudo header and the whole buffer as the
    /// segment. False for a buffer over 65535 bytes.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.full_sum(src, dst)
            .is_some_and(|s| checksum::fold(s) == 0xffff)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ, v)
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::ACK, v)
    }

    /// Sets the header length in bytes (a multiple of 4, 20–60), keeping the reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, bytes: usize) {
        let b = self.buffer.as_mut();
        b[field::OFFSET] = ((((bytes / 4) as u8) & 0x0f) << 4) | (b[field::OFFSET] & 0x0f);
    }

    /// Sets all eight flag bits.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    #[inline]
    fn set_flag(&mut self, flag: u8, on: bool) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        if on {
            *b |= flag;
        } else {
            *b &= !flag;
        }
    }

    /// Sets or clears FIN.
    #[inline]
    pub fn set_fin(&mut self, on: bool) {
        self.set_flag(flags::FIN, on)
    }

    /// Sets or clears SYN.
    #[inline]
    pub fn set_syn(&mut self, on: bool) {
        self.set_flag(flags::SYN, on)
    }

    /// Sets or clears RST.
    #[inline]
    pub fn set_rst(&mut self, on: bool) {
        self.set_flag(flags::RST, on)
    }

    /// Sets or clears PSH.
    #[inline]
    pub fn set_psh(&mut self, on: bool) {
        self.set_flag(flags::PSH, on)
    }

    /// Sets or clears ACK.
    #[inline]
    pub fn set_ack(&mut self, on: bool) {
        self.set_flag(flags::ACK, on)
    }

    /// Sets or clears URG.
    #[inline]
    pub fn set_urg(&mut self, on: bool) {
        self.set_flag(flags::URG, on)
    }

    /// Sets or clears ECE.
    #[inline]
    pub fn set_ece(&mut self, on: bool) {
        self.set_flag(flags::ECE, on)
    }

    /// Sets or clears CWR.
    #[inline]
    pub fn set_cwr(&mut self, on: bool) {
        self.set_flag(flags::CWR, on)
    }

    /// Sets the window.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, v)
    }

    /// Sets the checksum field (see [`checksum::update16`] for an incremental update).
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT, v)
    }

    /// The options, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..hl]
    }

    /// The data, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes and writes the checksum, taking the whole buffer as the segment. A buffer over
    /// 65535 bytes cannot be a TCP segment over IPv4; it gets checksum 0.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = self.full_sum(src, dst).map_or(0, checksum::finish);
        self.set_checksum(c);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed TCP header. Options, the urgent pointer and the reserved bits are not represented:
/// [`emit`](Self::emit) writes data offset 5 and zeroes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Flag bits (see [`flags`]).
    pub flags: u8,
    /// Window.
    pub window_len: u16,
}

impl TcpRepr {
    /// Parses a segment (the whole buffer): the [`TcpPacket::check_len`] errors, and
    /// `Malformed` if the checksum is wrong for the pseudo header `src`, `dst`.
    pub fn parse<T: AsRef<[u8]>>(
        p: &TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<TcpRepr> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(WireError::Malformed);
        }
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window_len: p.window_len(),
        })
    }

    /// Header length [`emit`](Self::emit) writes (20, no options).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes [`emit`](Self::emit) writes for `payload_len` bytes of data.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header (data offset 5, reserved bits and urgent pointer zero), `payload`
    /// and a correct checksum.
    ///
    /// The buffer must be exactly [`buffer_len`](Self::buffer_len) bytes (TCP has no length
    /// field, so the buffer is the segment); panics otherwise.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) {
        p.buffer.as_mut()[..HEADER_LEN].fill(0);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len(HEADER_LEN);
        p.set_flags(self.flags);
        p.set_window_len(self.window_len);
        p.payload_mut().copy_from_slice(payload);
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// 10.0.0.1:40000 -> 10.0.0.2:8080, PSH|ACK, "GET /".
    ///
    /// Checksum by hand (16-bit words): pseudo header 0a00 + 0001 + 0a00 + 0002 + 0006 + 0019
    /// (length 25); header 9c40 + 1f90 + 1234 + 5678 + 9abc + def0 + 5018 + 01f6 + 0000 + 0000;
    /// data 4745 + 5420 + 2f00 (odd byte padded). Total 0x3cebd, folded 0xcec0, complement
    /// 0x313f.
    #[rustfmt::skip]
    const SEGMENT: [u8; 25] = [
        0x9c, 0x40,             // source port 40000
        0x1f, 0x90,             // destination port 8080
        0x12, 0x34, 0x56, 0x78, // sequence number
        0x9a, 0xbc, 0xde, 0xf0, // acknowledgment number
        0x50,                   // data offset 5, reserved 0
        0x18,                   // flags PSH | ACK
        0x01, 0xf6,             // window 502
        0x31, 0x3f,             // checksum
        0x00, 0x00,             // urgent pointer
        b'G', b'E', b'T', b' ', b'/',
    ];

    fn repr() -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 8080,
            seq_number: 0x1234_5678,
            ack_number: 0x9abc_def0,
            flags: flags::PSH | flags::ACK,
            window_len: 502,
        }
    }

    /// Naive RFC 1071 checksum over pseudo header + segment.
    fn naive(src: Ipv4Addr, dst: Ipv4Addr, b: &[u8]) -> u16 {
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&[0, 6]);
        ph.extend_from_slice(&(b.len() as u16).to_be_bytes());
        ph.extend_from_slice(b);
        if ph.len() % 2 == 1 {
            ph.push(0);
        }
        let mut s: u64 = ph
            .chunks(2)
            .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn checksum_by_hand() {
        let s: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 0x0006 + 0x0019;
        let s = s + 0x9c40 + 0x1f90 + 0x1234 + 0x5678 + 0x9abc + 0xdef0 + 0x5018 + 0x01f6;
        let s = s + 0x4745 + 0x5420 + 0x2f00;
        assert_eq!(s, 0x3cebd);
        assert_eq!(!(((s & 0xffff) + (s >> 16)) as u16), 0x313f);
        let mut z = SEGMENT;
        z[16..18].fill(0);
        assert_eq!(naive(SRC, DST, &z), 0x313f);
    }

    #[test]
    fn getters() {
        let p = TcpPacket::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 8080);
        assert_eq!(p.seq_number(), 0x1234_5678);
        assert_eq!(p.ack_number(), 0x9abc_def0);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.flags(), 0x18);
        assert!(p.psh() && p.ack());
        assert!(!p.fin() && !p.syn() && !p.rst() && !p.urg() && !p.ece() && !p.cwr());
        assert_eq!(p.window_len(), 502);
        assert_eq!(p.checksum(), 0x313f);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload(), b"GET /");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(p.into_inner(), &SEGMENT[..]);
    }

    #[test]
    fn parse_and_emit() {
        let p = TcpPacket::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, SRC, DST), Ok(repr()));
        let mut buf = [0xffu8; 25];
        repr().emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            b"GET /",
        );
        assert_eq!(buf, SEGMENT);
        assert_eq!(repr().buffer_len(5), 25);
        assert_eq!(repr().header_len(), 20);
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 25];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(40000);
        p.set_dst_port(8080);
        p.set_seq_number(0x1234_5678);
        p.set_ack_number(0x9abc_def0);
        p.set_header_len(20);
        p.set_psh(true);
        p.set_ack(true);
        p.set_window_len(502);
        p.set_urgent_at(0);
        p.payload_mut().copy_from_slice(b"GET /");
        p.fill_checksum(SRC, DST);
        assert_eq!(buf, SEGMENT);

        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        type Setter = fn(&mut TcpPacket<&mut [u8]>, bool);
        let setters: [(Setter, u8); 8] = [
            (|p, on| p.set_fin(on), flags::FIN),
            (|p, on| p.set_syn(on), flags::SYN),
            (|p, on| p.set_rst(on), flags::RST),
            (|p, on| p.set_psh(on), flags::PSH),
            (|p, on| p.set_ack(on), flags::ACK),
            (|p, on| p.set_urg(on), flags::URG),
            (|p, on| p.set_ece(on), flags::ECE),
            (|p, on| p.set_cwr(on), flags::CWR),
        ];
        for (set, bit) in setters {
            p.set_flags(0);
            set(&mut p, true);
            assert_eq!(p.flags(), bit);
            p.set_flags(0xff);
            set(&mut p, false);
            assert_eq!(p.flags(), !bit);
        }
        p.set_flags(flags::SYN | flags::ACK);
        assert!(p.syn() && p.ack() && !p.fin());
        p.set_checksum(0xbeef);
        assert_eq!(p.checksum(), 0xbeef);
        p.set_urgent_at(7);
        assert_eq!(p.urgent_at(), 7);
        // set_header_len keeps the reserved nibble.
        buf[12] = 0x5f;
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_header_len(24);
        assert_eq!(buf[12], 0x6f);
    }

    #[test]
    fn syn_with_options() {
        // A Linux-style SYN: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
        #[rustfmt::skip]
        let mut b = [
            0xc3, 0x50, 0x00, 0x50,             // 50000 -> 80
            0x00, 0x00, 0x00, 0x01,             // seq 1
            0x00, 0x00, 0x00, 0x00,             // ack 0
            0xa0, 0x02,                         // data offset 10 (40 bytes), SYN
            0xfa, 0xf0,                         // window 64240
            0x00, 0x00,                         // checksum (filled below)
            0x00, 0x00,                         // urgent pointer
            0x02, 0x04, 0x05, 0xb4,             // MSS 1460
            0x04, 0x02,                         // SACK permitted
            0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, // timestamps
            0x01,                               // NOP
            0x03, 0x03, 0x07,                   // window scale 7
        ];
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(SRC, DST);
        assert_eq!(p.options_mut().len(), 20);
        let c = p.checksum();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.options().len(), 20);
        assert_eq!(&p.options()[..4], &[0x02, 0x04, 0x05, 0xb4]);
        assert!(p.payload().is_empty());
        assert!(p.syn() && !p.ack());
        assert!(p.verify_checksum(SRC, DST));
        let mut z = b;
        z[16..18].fill(0);
        assert_eq!(naive(SRC, DST, &z), c);
        // The Repr drops options; the checksum still verifies on the original.
        let r = TcpRepr::parse(&p, SRC, DST).unwrap();
        assert_eq!(r.flags, flags::SYN);
        assert_eq!(r.window_len, 64240);
        // One byte short of the options: truncated.
        assert_eq!(
            TcpPacket::new_checked(&b[..39]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn checksum_bit_flips() {
        for byte in 0..SEGMENT.len() {
            for bit in 0..8 {
                let mut b = SEGMENT;
                b[byte] ^= 1 << bit;
                // A flip in the data offset may make the header invalid.
                if let Ok(p) = TcpPacket::new_checked(&b[..]) {
                    assert!(!p.verify_checksum(SRC, DST), "byte {byte} bit {bit}");
                    assert_eq!(TcpRepr::parse(&p, SRC, DST), Err(WireError::Malformed));
                }
            }
        }
    }

    #[test]
    fn truncated_and_malformed() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                TcpPacket::new_checked(&SEGMENT[..n]).unwrap_err(),
                WireError::Truncated
            );
            assert_eq!(
                TcpRepr::parse(&TcpPacket::new_unchecked(&SEGMENT[..n]), SRC, DST),
                Err(WireError::Truncated)
            );
        }
        for off in 0..5u8 {
            let mut b = SEGMENT;
            b[12] = off << 4;
            assert_eq!(
                TcpPacket::new_checked(&b[..]).unwrap_err(),
                WireError::Malformed,
                "offset {off}"
            );
        }
        // Data offset 7 (28 bytes) in a 25-byte buffer.
        let mut b = SEGMENT;
        b[12] = 0x70;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = TcpPacket::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.flags());
                let _ = (p.fin(), p.syn(), p.rst(), p.psh(), p.ack(), p.urg(), p.ece(), p.cwr());
                let _ = (p.window_len(), p.checksum(), p.urgent_at());
                prop_assert_eq!(HEADER_LEN + p.options().len() + p.payload().len(), data.len());
                let _ = p.verify_checksum(SRC, DST);
                let _ = TcpRepr::parse(&p, SRC, DST);
            }
        }

        #[test]
        fn emit_parse_roundtrip(src_port in any::<u16>(), dst_port in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(), fl in any::<u8>(), win in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..100)) {
            let r = TcpRepr { src_port, dst_port, seq_number: seq, ack_number: ack, flags: fl, window_len: win };
            let mut buf = vec![0u8; r.buffer_len(payload.len())];
            r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, &payload);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(TcpRepr::parse(&p, SRC, DST), Ok(r));
            prop_assert_eq!(p.payload(), &payload[..]);
            let mut z = buf.clone();
            z[16..18].fill(0);
            prop_assert_eq!(p.checksum(), naive(SRC, DST, &z));
        }
    }
}
