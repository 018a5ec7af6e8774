//! Classic libpcap capture files (<https://wiki.wireshark.org/Development/LibpcapFileFormat>).
//!
//! A file is a 24-byte global header followed by records, each a 16-byte record header and
//! `incl_len` bytes of packet data:
//!
//! ```text
//! global header                         record header
//!   u32 magic_number  0xa1b2c3d4 (µs)     u32 ts_sec
//!                     0xa1b23c4d (ns)     u32 ts_usec   (ts_nsec in nanosecond files)
//!   u16 version_major 2                   u32 incl_len  bytes of data that follow
//!   u16 version_minor 4                   u32 orig_len  length of the packet on the wire
//!   i32 thiszone      0
//!   u32 sigfigs       0
//!   u32 snaplen       65535
//!   u32 network       1 (LINKTYPE_ETHERNET)
//! ```
//!
//! All fields are in the writer's byte order, which the reader learns from the magic.
//! [`PcapWriter`] writes little-endian microsecond files (what tcpdump writes on x86);
//! [`PcapReader`] reads both byte orders and both timestamp resolutions, and treats the input as
//! untrusted: malformed input gives a [`PcapError`], never a panic, and a record's buffer is
//! only allocated after its length has been checked against [`MAX_INCL_LEN`] and the snaplen.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Microsecond-resolution magic number.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Nanosecond-resolution magic number.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Snapshot length [`PcapWriter`] declares; longer frames are truncated to it.
pub const SNAPLEN: u32 = 65535;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest `incl_len` the reader accepts (libpcap's `MAXIMUM_SNAPLEN`).
pub const MAX_INCL_LEN: u32 = 262_144;
/// Size of the global header.
pub const GLOBAL_HEADER_LEN: usize = 24;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Errors reading a pcap file.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// An I/O error other than a premature end of file.
    #[error("pcap I/O error: {0}")]
    Io(#[from] io::Error),
    /// The first four bytes are no pcap magic number in either byte order.
    #[error("not a pcap file: bad magic number {0:#010x}")]
    BadMagic(u32),
    /// The file ends inside the 24-byte global header.
    #[error("pcap global header truncated: {got} of 24 bytes")]
    TruncatedHeader {
        /// Bytes present.
        got: usize,
    },
    /// The major version is not 2.
    #[error("unsupported pcap version {major}.{minor}")]
    UnsupportedVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The file ends inside a record header or a record's data.
    #[error("pcap record {index} truncated: {got} of {want} bytes")]
    TruncatedRecord {
        /// Index of the record (0-based).
        index: u64,
        /// Bytes the record header or data needed.
        want: usize,
        /// Bytes present.
        got: usize,
    },
    /// A record's `incl_len` exceeds the file's snaplen or [`MAX_INCL_LEN`].
    #[error("pcap record {index}: incl_len {incl_len} exceeds the limit {limit}")]
    RecordTooLong {
        /// Index of the record (0-based).
        index: u64,
        /// The record's `incl_len`.
        incl_len: u32,
        /// `min(snaplen, MAX_INCL_LEN)`.
        limit: u32,
    },
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Capture time in nanoseconds since the Unix epoch (microsecond files: a multiple of 1000).
    pub ts_ns: u64,
    /// Length of the packet on the wire (may exceed `data.len()` if it was truncated).
    pub orig_len: u32,
    /// The captured bytes (`incl_len` of them).
    pub data: Vec<u8>,
}

/// Writes a little-endian, microsecond-resolution, Ethernet pcap stream.
///
/// Writes go straight to `W`; wrap files in a [`BufWriter`] (as [`write_file`] does).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header: magic `0xa1b2c3d4` (little-endian), version 2.4, thiszone 0,
    /// sigfigs 0, snaplen 65535, linktype 1 (Ethernet).
    pub fn new(mut w: W) -> io::Result<Self> {
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC_MICROS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[8..12].copy_from_slice(&0i32.to_le_bytes());
        h[12..16].copy_from_slice(&0u32.to_le_bytes());
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w })
    }

    /// Appends a record. `ts_ns` (nanoseconds since the epoch) is truncated to microseconds;
    /// `incl_len = min(frame.len(), 65535)` bytes are written and `orig_len = frame.len()`.
    ///
    /// Errors with [`io::ErrorKind::InvalidInput`] (nothing written) if the timestamp's seconds
    /// do not fit the 32-bit field (after 2106-02-07) or the frame is 4 GiB or longer.
    pub fn write_packet(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let secs = u32::try_from(ts_ns / NANOS_PER_SEC).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "pcap timestamp beyond the 32-bit seconds range",
            )
        })?;
        let usecs = ((ts_ns % NANOS_PER_SEC) / 1000) as u32;
        let orig_len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long for pcap"))?;
        let incl_len = orig_len.min(SNAPLEN);
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&usecs.to_le_bytes());
        h[8..12].copy_from_slice(&incl_len.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(&frame[..incl_len as usize])
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Reads a pcap stream of either byte order and either timestamp resolution.
///
/// Also an [`Iterator`] of `Result<PcapRecord, PcapError>`, which ends after the first error.
#[derive(Debug)]
pub struct PcapReader<R: Read> {
    r: R,
    big_endian: bool,
    nanos: bool,
    snaplen: u32,
    linktype: u32,
    index: u64,
    done: bool,
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the global header.
    pub fn new(mut r: R) -> Result<Self, PcapError> {
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        let got = read_full(&mut r, &mut h)?;
        // A short header with a bad magic is reported as a bad magic (not a pcap file at all).
        if got >= 4 {
            magic_kind(&h)?;
        }
        if got < GLOBAL_HEADER_LEN {
            return Err(PcapError::TruncatedHeader { got });
        }
        let (big_endian, nanos) = magic_kind(&h)?;
        let u16_at = |o: usize| {
            let b = [h[o], h[o + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |o: usize| field_u32(&h[o..o + 4], big_endian);
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != 2 {
            return Err(PcapError::UnsupportedVersion { major, minor });
        }
        Ok(PcapReader {
            r,
            big_endian,
            nanos,
            snaplen: u32_at(16),
            linktype: u32_at(20),
            index: 0,
            done: false,
        })
    }

    /// The header's `network` field as stored (1 = Ethernet). Newer writers may use its upper
    /// 16 bits for FCS information; the link type proper is the low 16 bits.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// The header's snapshot length.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// True if timestamps are in nanoseconds (magic `0xa1b23c4d`).
    pub fn is_nanosecond(&self) -> bool {
        self.nanos
    }

    /// True if the file is big-endian.
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    /// The next record; `Ok(None)` at a clean end of file (exactly at a record boundary).
    pub fn next_packet(&mut self) -> Result<Option<PcapRecord>, PcapError> {
        let index = self.index;
        let mut h = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.r, &mut h)?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER_LEN {
            return Err(PcapError::TruncatedRecord {
                index,
                want: RECORD_HEADER_LEN,
                got,
            });
        }
        let be = self.big_endian;
        let secs = u64::from(field_u32(&h[0..4], be));
        let frac = u64::from(field_u32(&h[4..8], be));
        let incl_len = field_u32(&h[8..12], be);
        let orig_len = field_u32(&h[12..16], be);
        let limit = self.snaplen.min(MAX_INCL_LEN);
        if incl_len > limit {
            return Err(PcapError::RecordTooLong {
                index,
                incl_len,
                limit,
            });
        }
        // Bounded by MAX_INCL_LEN, so a garbage length cannot cause a huge allocation.
        let mut data = vec![0u8; incl_len as usize];
        let got = read_full(&mut self.r, &mut data)?;
        if got < data.len() {
            return Err(PcapError::TruncatedRecord {
                index,
                want: data.len(),
                got,
            });
        }
        // secs < 2^32 and frac < 2^32: at most ~4.3e18 + 4.3e12, no overflow. An out-of-range
        // fraction (≥ 1 s) is kept as is rather than rejected.
        let ts_ns = secs * NANOS_PER_SEC + if self.nanos { frac } else { frac * 1000 };
        self.index += 1;
        Ok(Some(PcapRecord {
            ts_ns,
            orig_len,
            data,
        }))
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<PcapRecord, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_packet().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Reads every record of the pcap file at `path`.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<PcapRecord>, PcapError> {
    PcapReader::new(BufReader::new(File::open(path)?))?.collect()
}

/// Writes `frames` (`(ts_ns, bytes)`) as a pcap file at `path` (created or truncated).
pub fn write_file(path: impl AsRef<Path>, frames: &[(u64, &[u8])]) -> io::Result<()> {
    let mut w = PcapWriter::new(BufWriter::new(File::create(path)?))?;
    for &(ts_ns, frame) in frames {
        w.write_packet(ts_ns, frame)?;
    }
    w.into_inner()?
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    Ok(())
}

/// `(big_endian, nanos)` from the first four header bytes.
fn magic_kind(h: &[u8]) -> Result<(bool, bool), PcapError> {
    let m = [h[0], h[1], h[2], h[3]];
    match (u32::from_le_bytes(m), u32::from_be_bytes(m)) {
        (MAGIC_MICROS, _) => Ok((false, false)),
        (MAGIC_NANOS, _) => Ok((false, true)),
        (_, MAGIC_MICROS) => Ok((true, false)),
        (_, MAGIC_NANOS) => Ok((true, true)),
        (le, _) => Err(PcapError::BadMagic(le)),
    }
}

fn field_u32(b: &[u8], big_endian: bool) -> u32 {
    let b = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read. Retries `Interrupted`.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write_vec(frames: &[(u64, &[u8])]) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for &(ts, f) in frames {
            w.write_packet(ts, f).unwrap();
        }
        w.into_inner().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<PcapRecord>, PcapError> {
        PcapReader::new(bytes)?.collect()
    }

    /// A minimal Ethernet/IPv4 frame (the bytes need not be a valid packet for pcap).
    fn frame(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn round_trip() {
        let frames: Vec<(u64, Vec<u8>)> = vec![
            (0, frame(60, 1)),
            (1_700_000_000_123_456_000, frame(64, 2)),
            (1_700_000_000_999_999_000, frame(1514, 3)),
            (1_700_000_001_000_001_000, frame(9000, 4)),
            (1_700_000_002_000_000_000, Vec::new()),
            (
                u64::from(u32::MAX) * NANOS_PER_SEC + 999_999_000,
                frame(1, 5),
            ),
        ];
        let refs: Vec<(u64, &[u8])> = frames.iter().map(|(t, f)| (*t, &f[..])).collect();
        let bytes = write_vec(&refs);
        let r = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(r.linktype(), LINKTYPE_ETHERNET);
        assert_eq!(r.snaplen(), SNAPLEN);
        assert!(!r.is_big_endian() && !r.is_nanosecond());
        let got: Vec<PcapRecord> = r.collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), frames.len());
        for (g, (t, f)) in got.iter().zip(&frames) {
            assert_eq!(g.ts_ns, *t);
            assert_eq!(g.orig_len as usize, f.len());
            assert_eq!(&g.data, f);
        }
    }

    #[test]
    fn timestamps_truncate_to_microseconds_and_long_frames_to_snaplen() {
        let big = frame(70_000, 9);
        let bytes = write_vec(&[(1_234_567_891, &[1, 2, 3]), (5, &big)]);
        let got = read_all(&bytes).unwrap();
        assert_eq!(got[0].ts_ns, 1_234_567_000);
        assert_eq!(got[1].ts_ns, 0);
        assert_eq!(got[1].orig_len, 70_000);
        assert_eq!(got[1].data, &big[..65535]);
    }

    #[test]
    fn writer_rejects_unrepresentable_timestamp() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let e = w
            .write_packet((u64::from(u32::MAX) + 1) * NANOS_PER_SEC, &[0])
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Nothing was written for the rejected record.
        assert_eq!(w.into_inner().unwrap().len(), GLOBAL_HEADER_LEN);
    }

    #[test]
    fn byte_exact_headers() {
        let f = [
            0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        ];
        // 2023-11-14T22:13:20.654321987Z → 1_700_000_000 s, 654_321 µs.
        let bytes = write_vec(&[(1_700_000_000_654_321_987, &f)]);
        #[rustfmt::skip]
        let want: [u8; 24 + 16 + 12] = [
            // global header
            0xd4, 0xc3, 0xb2, 0xa1, // magic 0xa1b2c3d4, little-endian
            0x02, 0x00,             // version_major 2
            0x04, 0x00,             // version_minor 4
            0x00, 0x00, 0x00, 0x00, // thiszone 0
            0x00, 0x00, 0x00, 0x00, // sigfigs 0
            0xff, 0xff, 0x00, 0x00, // snaplen 65535
            0x01, 0x00, 0x00, 0x00, // network 1 = Ethernet
            // record header
            0x00, 0xf1, 0x53, 0x65, // ts_sec 1_700_000_000 = 0x6553f100
            0xf1, 0xfb, 0x09, 0x00, // ts_usec 654_321 = 0x0009fbf1
            0x0c, 0x00, 0x00, 0x00, // incl_len 12
            0x0c, 0x00, 0x00, 0x00, // orig_len 12
            // data
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        ];
        assert_eq!(bytes, want);
    }

    /// Hand-built file: `big_endian` byte order, `magic`, snaplen 65535, linktype 1.
    fn header(big_endian: bool, magic: u32, snaplen: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let put32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        put32(&mut v, magic);
        let (maj, min) = (2u16, 4u16);
        if big_endian {
            v.extend_from_slice(&maj.to_be_bytes());
            v.extend_from_slice(&min.to_be_bytes());
        } else {
            v.extend_from_slice(&maj.to_le_bytes());
            v.extend_from_slice(&min.to_le_bytes());
        }
        put32(&mut v, 0);
        put32(&mut v, 0);
        put32(&mut v, snaplen);
        put32(&mut v, 1);
        v
    }

    fn record(big_endian: bool, sec: u32, frac: u32, data: &[u8], orig: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [sec, frac, data.len() as u32, orig] {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn big_endian_microsecond_file() {
        let mut f = header(true, MAGIC_MICROS, 65535);
        assert_eq!(&f[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
        f.extend(record(true, 1_600_000_000, 250_000, &[1, 2, 3, 4], 60));
        f.extend(record(true, 1_600_000_001, 999_999, &[5], 1));
        let r = PcapReader::new(&f[..]).unwrap();
        assert!(r.is_big_endian() && !r.is_nanosecond());
        assert_eq!(r.linktype(), 1);
        let got: Vec<_> = r.collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got,
            vec![
                PcapRecord {
                    ts_ns: 1_600_000_000_250_000_000,
                    orig_len: 60,
                    data: vec![1, 2, 3, 4]
                },
                PcapRecord {
                    ts_ns: 1_600_000_001_999_999_000,
                    orig_len: 1,
                    data: vec![5]
                },
            ]
        );
    }

    #[test]
    fn nanosecond_files_both_orders() {
        for be in [false, true] {
            let mut f = header(be, MAGIC_NANOS, 262_144);
            f.extend(record(be, 1_600_000_000, 123_456_789, &[0xaa; 3], 3));
            let r = PcapReader::new(&f[..]).unwrap();
            assert!(r.is_nanosecond());
            assert_eq!(r.is_big_endian(), be);
            let got = r.collect::<Result<Vec<_>, _>>().unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].ts_ns, 1_600_000_000_123_456_789);
            assert_eq!(got[0].data, vec![0xaa; 3]);
        }
        // Little-endian nanosecond magic as stored bytes.
        assert_eq!(
            &header(false, MAGIC_NANOS, 1)[..4],
            &[0x4d, 0x3c, 0xb2, 0xa1]
        );
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            PcapReader::new(&[0u8; 24][..]),
            Err(PcapError::BadMagic(0))
        ));
        assert!(matches!(
            PcapReader::new(&b"GIF89a..............................."[..]),
            Err(PcapError::BadMagic(_))
        ));
        assert!(matches!(
            PcapReader::new(&[][..]),
            Err(PcapError::TruncatedHeader { got: 0 })
        ));
        let h = header(false, MAGIC_MICROS, 65535);
        assert!(matches!(
            PcapReader::new(&h[..23]),
            Err(PcapError::TruncatedHeader { got: 23 })
        ));
        let mut bad_version = h.clone();
        bad_version[4] = 1;
        assert!(matches!(
            PcapReader::new(&bad_version[..]),
            Err(PcapError::UnsupportedVersion { major: 1, minor: 4 })
        ));
        assert!(!PcapError::BadMagic(1).to_string().is_empty());
    }

    #[test]
    fn oversized_records_are_rejected_without_allocating() {
        // incl_len over snaplen (but under MAX_INCL_LEN).
        let mut f = header(false, MAGIC_MICROS, 100);
        f.extend(record(false, 0, 0, &[0; 101], 101));
        let mut r = PcapReader::new(&f[..]).unwrap();
        assert!(matches!(
            r.next_packet(),
            Err(PcapError::RecordTooLong {
                index: 0,
                incl_len: 101,
                limit: 100
            })
        ));
        // incl_len over 262144 with a huge snaplen: rejected from the header alone.
        for incl in [MAX_INCL_LEN + 1, u32::MAX] {
            let mut f = header(true, MAGIC_MICROS, u32::MAX);
            for x in [0, 0, incl, incl] {
                f.extend_from_slice(&x.to_be_bytes());
            }
            let mut r = PcapReader::new(&f[..]).unwrap();
            assert!(matches!(
                r.next_packet(),
                Err(PcapError::RecordTooLong {
                    limit: MAX_INCL_LEN,
                    ..
                })
            ));
        }
        // Exactly MAX_INCL_LEN is fine.
        let mut f = header(false, MAGIC_MICROS, MAX_INCL_LEN);
        f.extend(record(
            false,
            0,
            0,
            &vec![7; MAX_INCL_LEN as usize],
            MAX_INCL_LEN,
        ));
        assert_eq!(read_all(&f).unwrap()[0].data.len(), MAX_INCL_LEN as usize);
    }

    #[test]
    fn truncation_at_every_offset() {
        let frames: [(u64, &[u8]); 3] = [(1_000, &[1; 60]), (2_000, &[]), (3_000, &[3; 17])];
        let bytes = write_vec(&frames);
        let mut boundaries = vec![GLOBAL_HEADER_LEN];
        for (_, f) in &frames {
            boundaries.push(boundaries.last().unwrap() + RECORD_HEADER_LEN + f.len());
        }
        assert_eq!(*boundaries.last().unwrap(), bytes.len());
        for cut in 0..=bytes.len() {
            let res = read_all(&bytes[..cut]);
            if cut < GLOBAL_HEADER_LEN {
                assert!(
                    matches!(res, Err(PcapError::TruncatedHeader { got }) if got == cut)
                        || (cut >= 4 && matches!(res, Err(PcapError::BadMagic(_)))),
                    "cut {cut}: {res:?}"
                );
            } else if let Some(k) = boundaries.iter().position(|&b| b == cut) {
                let recs = res.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
                assert_eq!(recs.len(), k, "cut {cut}");
                for (r, (t, f)) in recs.iter().zip(&frames) {
                    assert_eq!((r.ts_ns, &r.data[..]), (*t, *f));
                }
            } else {
                assert!(
                    matches!(res, Err(PcapError::TruncatedRecord { .. })),
                    "cut {cut}: {res:?}"
                );
            }
        }
    }

    #[test]
    fn iterator_stops_after_error() {
        let mut f = header(false, MAGIC_MICROS, 65535);
        f.extend(record(false, 1, 0, &[1, 2], 2));
        f.extend_from_slice(&[0; 5]); // truncated record header
        let mut r = PcapReader::new(&f[..]).unwrap();
        assert!(matches!(r.next(), Some(Ok(_))));
        assert!(matches!(
            r.next(),
            Some(Err(PcapError::TruncatedRecord { index: 1, .. }))
        ));
        assert!(r.next().is_none());
        assert!(r.next().is_none());
    }

    /// A reader that returns one byte per call and `Interrupted` in between.
    #[derive(Debug)]
    struct Trickle<'a>(&'a [u8], bool);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(out)) => {
                    *out = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn short_reads_and_interrupts() {
        let bytes = write_vec(&[(7_000, &[9; 33]), (8_000, &[8; 2])]);
        let got: Vec<_> = PcapReader::new(Trickle(&bytes, false))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].data, vec![8; 2]);
    }

    #[test]
    fn file_helpers() {
        let dir = std::env::temp_dir().join(format!("podlane-pcap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcap");
        write_file(&path, &[(1_000, &[1, 2, 3][..]), (2_000, &[4][..])]).unwrap();
        let recs = read_file(&path).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].data, vec![1, 2, 3]);
        assert_eq!(recs[1].ts_ns, 2_000);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            read_file(dir.join("missing")),
            Err(PcapError::Io(_))
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_all(&bytes);
        }

        #[test]
        fn random_bytes_after_valid_header_never_panic(
            be: bool,
            nanos: bool,
            snaplen: u32,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut f = header(be, if nanos { MAGIC_NANOS } else { MAGIC_MICROS }, snaplen);
            f.extend_from_slice(&body);
            if let Ok(recs) = read_all(&f) {
                for r in recs {
                    prop_assert!(r.data.len() as u32 <= snaplen.min(MAX_INCL_LEN));
                }
            }
        }

        #[test]
        fn write_read_round_trip(
            frames in proptest::collection::vec(
                (0u64..=u64::from(u32::MAX) * NANOS_PER_SEC,
                 proptest::collection::vec(any::<u8>(), 0..200)),
                0..8,
            )
        ) {
            let refs: Vec<(u64, &[u8])> = frames.iter().map(|(t, f)| (*t, &f[..])).collect();
            let got = read_all(&write_vec(&refs)).unwrap();
            prop_assert_eq!(got.len(), frames.len());
            for (g, (t, f)) in got.iter().zip(&frames) {
                prop_assert_eq!(g.ts_ns, t / 1000 * 1000);
                prop_assert_eq!(&g.data, f);
                prop_assert_eq!(g.orig_len as usize, f.len());
            }
        }
    }
}
