//! The packet-buffer abstraction the pipeline runs on.
//!
//! A packet is a contiguous run of bytes with headroom in front of it, so that an encapsulating
//! stage can prepend an outer header without copying the payload, and a decapsulating stage can
//! drop one by moving the start forward. [`HeapBuf`] implements it for tests, the simulator and
//! benchmarks; the DPDK crate implements it for `rte_mbuf` (single-segment mbufs), so the same
//! pipeline code runs on both.

/// A single-segment packet buffer with headroom.
pub trait PacketBuf {
    /// The packet bytes, from the current start to the current end.
    fn data(&self) -> &[u8];
    /// The packet bytes, mutable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Bytes free in front of the packet.
    fn headroom(&self) -> usize;
    /// Grows the packet by `n` bytes at the front and returns the whole (grown) packet, or `None`
    /// (packet unchanged) when there is not enough headroom.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front. Returns false (packet unchanged) if it is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end. Returns false (packet unchanged) if it is shorter.
    fn trim(&mut self, n: usize) -> bool;
    /// Narrows the packet to its bytes `start..end` — `trim(len - end)` then `adj(start)`, in
    /// one step (a decapsulation drops the outer headers and the inner packet's padding at
    /// once) — and returns them, so that the caller writes on without reading the buffer's
    /// bookkeeping back. `None` (packet unchanged) unless `start <= end <= len`.
    fn keep(&mut self, start: usize, end: usize) -> Option<&mut [u8]> {
        let len = self.len();
        if start > end || end > len || !(self.trim(len - end) && self.adj(start)) {
            return None;
        }
        Some(self.data_mut())
    }
    /// Whether [`PacketBuf::prefetch`] does anything: the pipeline computes no address to
    /// prefetch for a buffer type that would ignore it (`HeapBuf`, the simulator's and the
    /// microbenchmark's).
    const PREFETCHES: bool = false;
    /// Hints that the memory at `addr` — any address, valid or not — will be read soon. The
    /// buffer type knows its platform: DPDK's mbufs issue a prefetch (which never faults);
    /// the default does nothing. An associated function, not a method, so that the pipeline
    /// can prefetch its own tables through the buffer type it is compiled for.
    #[inline(always)]
    fn prefetch(addr: *const u8)
    where
        Self: Sized,
    {
        let _ = addr;
    }
    /// The packet length.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True for an empty packet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Headroom a [`HeapBuf`] gets by default: DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;
/// Capacity of a [`HeapBuf`] by default: DPDK's default data room (2048 + headroom).
pub const DEFAULT_CAPACITY: usize = 2048 + DEFAULT_HEADROOM;

/// A heap-allocated packet buffer shaped like a DPDK mbuf: fixed capacity, headroom in front.
#[derive(Clone)]
pub struct HeapBuf {
    storage: Box<[u8]>,
    start: usize,
    end: usize,
}

impl core::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapBuf")
            .field("headroom", &self.start)
            .field("len", &(self.end - self.start))
            .finish()
    }
}

impl HeapBuf {
    /// An empty buffer with the default headroom and capacity.
    pub fn new() -> HeapBuf {
        HeapBuf::with_capacity(DEFAULT_CAPACITY, DEFAULT_HEADROOM)
    }

    /// An empty buffer of `capacity` bytes whose data starts `headroom` bytes in.
    pub fn with_capacity(capacity: usize, headroom: usize) -> HeapBuf {
        let headroom = headroom.min(capacity);
        HeapBuf {
            storage: vec![0u8; capacity].into_boxed_slice(),
            start: headroom,
            end: headroom,
        }
    }

    /// A buffer holding a copy of `frame` after the default headroom. Frames longer than the
    /// default capacity get a larger buffer (a jumbo frame is still a packet).
    pub fn from_frame(frame: &[u8]) -> HeapBuf {
        let cap = DEFAULT_CAPACITY.max(DEFAULT_HEADROOM + frame.len());
        let mut b = HeapBuf::with_capacity(cap, DEFAULT_HEADROOM);
        b.set_frame(frame);
        b
    }

    /// Replaces the contents with `frame`, restoring the default headroom. Panics if `frame`
    /// does not fit the capacity after the default headroom.
    pub fn set_frame(&mut self, frame: &[u8]) {
        let headroom = DEFAULT_HEADROOM.min(self.storage.len());
        self.start = headroom;
        self.end = headroom + frame.len();
        self.storage[self.start..self.end].copy_from_slice(frame);
    }

    /// Appends bytes at the end. Returns false (unchanged) if they do not fit.
    pub fn append(&mut self, bytes: &[u8]) -> bool {
        if self.storage.len() - self.end < bytes.len() {
            return false;
        }
        self.storage[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }
}

impl Default for HeapBuf {
    fn default() -> Self {
        HeapBuf::new()
    }
}

impl PacketBuf for HeapBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.start
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.storage[self.start..self.end])
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_trim() {
        let mut b = HeapBuf::from_frame(&[1, 2, 3, 4]);
        assert_eq!(b.headroom(), DEFAULT_HEADROOM);
        let d = b.prepend(2).unwrap();
        d[0] = 9;
        d[1] = 8;
        assert_eq!(b.data(), &[9, 8, 1, 2, 3, 4]);
        assert!(b.adj(3));
        assert_eq!(b.data(), &[2, 3, 4]);
        assert!(b.trim(1));
        assert_eq!(b.data(), &[2, 3]);
        assert!(!b.trim(3));
        assert!(!b.adj(3));
        assert_eq!(b.data(), &[2, 3]);
        assert!(b.prepend(DEFAULT_HEADROOM + 2).is_none());
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn keep_narrows_or_changes_nothing() {
        let f: Vec<u8> = (0..10).collect();
        let mut b = HeapBuf::from_frame(&f);
        for (start, end) in [(4, 3), (0, 11), (11, 11)] {
            assert!(b.keep(start, end).is_none(), "{start}..{end}");
            assert_eq!(b.data(), &f[..], "unchanged after {start}..{end}");
        }
        assert_eq!(b.keep(2, 9).map(|d| d.to_vec()), Some(f[2..9].to_vec()));
        assert_eq!(b.data(), &f[2..9]);
        assert_eq!(b.headroom(), DEFAULT_HEADROOM + 2);
        assert_eq!(b.keep(0, 7).map(|d| d.len()), Some(7), "the whole packet");
        assert_eq!(b.keep(3, 3).map(|d| d.len()), Some(0));
        assert!(b.is_empty());
    }

    #[test]
    fn jumbo_frames_fit() {
        let f = vec![0xab; 9000];
        let b = HeapBuf::from_frame(&f);
        assert_eq!(b.len(), 9000);
    }
}
