//! Owning packet buffers: an [`Mbuf`] goes back to its pool when dropped, and implements the
//! fast-path core's [`PacketBuf`] so the pipeline runs on it unchanged.

use std::ptr::NonNull;

use dpdk_sys as sys;
use fastpath::buf::PacketBuf;

/// The largest burst moved at once.
pub const BURST: usize = fastpath::pipeline::BURST;

/// A burst of mbufs, on the stack.
pub type Burst = heapless::Vec<Mbuf, BURST>;

/// One single-segment packet buffer, owned.
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf {
    ptr: NonNull<sys::rte_mbuf>,
}

// Bursts are handed to the driver as arrays of `*mut rte_mbuf` (`Port::rx_burst`/`tx_burst`):
// an Mbuf must stay exactly one mbuf pointer.
const _: () = assert!(
    core::mem::size_of::<Mbuf>() == core::mem::size_of::<*mut sys::rte_mbuf>()
        && core::mem::align_of::<Mbuf>() == core::mem::align_of::<*mut sys::rte_mbuf>()
);

// SAFETY: an mbuf is owned by exactly one Mbuf value; moving the owner to another thread (lcore)
// is how DPDK applications hand packets around. Freeing from any lcore is allowed.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(crate) fn from_raw_nonnull(ptr: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { ptr }
    }

    /// True if the packet is in one segment (the only kind the pipeline handles).
    #[inline(always)]
    pub fn is_contiguous(&self) -> bool {
        self.segments() == 1
    }

    /// How many segments the packet has (`nb_segs`, at least 1).
    #[inline(always)]
    pub fn segments(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// The mbuf's packet length (`pkt_len`: of all segments; of the one, for the packets the
    /// pipeline handles, where it equals the data length).
    pub fn pkt_len(&self) -> u32 {
        self.hdr().pkt_len
    }

    /// Room after the data.
    pub fn tailroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { sys::podlane_rte_pktmbuf_tailroom(self.ptr.as_ptr()) })
    }

    /// Appends `bytes`; false (unchanged) if they do not fit.
    pub fn append(&mut self, bytes: &[u8]) -> bool {
        let Ok(n) = u16::try_from(bytes.len()) else {
            return false;
        };
        // SAFETY: self owns a valid mbuf; append returns NULL (changing nothing) when there is
        // no room, else a pointer to `n` writable bytes inside the mbuf's buffer.
        let p = unsafe { sys::podlane_rte_pktmbuf_append(self.ptr.as_ptr(), n) };
        if p.is_null() {
            return false;
        }
        // SAFETY: p points at n writable bytes that nothing else references (see above).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len()) };
        true
    }

    /// The address just past the data, where [`Mbuf::tailroom`] bytes may be written (a
    /// `read(2)` straight into the mbuf; [`Mbuf::extend_written`] then counts them). For a
    /// single-segment mbuf, as every freshly allocated one is.
    pub(crate) fn tail_ptr(&mut self) -> *mut u8 {
        // wrapping_add: no dereference here; the address stays inside the mbuf's buffer
        // (data_off + data_len <= buf_len).
        self.data_ptr()
            .wrapping_add(usize::from(self.hdr().data_len))
    }

    /// Counts `n` bytes written at [`Mbuf::tail_ptr`] as packet data (`rte_pktmbuf_append`
    /// without the copy). False, and nothing changed, if they exceed the tailroom.
    ///
    /// # Safety
    /// The first `n` bytes at `tail_ptr()` must have been written since (they become readable
    /// through [`PacketBuf::data`]).
    pub(crate) unsafe fn extend_written(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: self owns a valid mbuf; append changes nothing and returns NULL when n bytes
        // do not fit, else only grows data_len/pkt_len over bytes the caller wrote.
        !unsafe { sys::podlane_rte_pktmbuf_append(self.ptr.as_ptr(), n) }.is_null()
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf and gives it back to its pool exactly once.
        unsafe { sys::podlane_rte_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

// The fast-path accessors read and write the mbuf's header fields directly (the same
// arithmetic as DPDK's `rte_pktmbuf_mtod`, `_prepend`, `_adj` and `_trim` inlines for a
// single-segment mbuf) instead of calling the C shim: a call per access cost more than the
// access. Every Mbuf the pipeline sees is single-segment (the worker drops the others).
impl Mbuf {
    #[inline(always)]
    fn hdr(&self) -> &sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf; &self gives shared access for the borrow.
        unsafe { self.ptr.as_ref() }
    }

    #[inline(always)]
    fn hdr_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf; &mut self makes this the only reference.
        unsafe { self.ptr.as_mut() }
    }

    /// Where the packet data starts, `buf_addr + data_off`. Never null, and the compiler is
    /// told so: an `Option<&mut [u8]>` built from it (`prepend`) then needs no null test per
    /// packet.
    #[inline(always)]
    fn data_ptr(&self) -> *mut u8 {
        let h = self.hdr();
        // wrapping_add: no dereference here; data_off <= buf_len keeps it inside the buffer.
        let p = h
            .buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(h.data_off));
        // SAFETY: a valid mbuf's buf_addr is the address of its buffer, not null, and p is
        // inside that buffer.
        unsafe { std::hint::assert_unchecked(!p.is_null()) };
        p
    }
}

impl PacketBuf for Mbuf {
    const PREFETCHES: bool = cfg!(target_arch = "x86_64");

    #[inline(always)]
    fn prefetch(addr: *const u8) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch only hints the cache; it reads nothing architecturally and never
        // faults, whatever the address (Intel SDM, PREFETCHh), so any pointer is sound here.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr.cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    #[inline(always)]
    fn data(&self) -> &[u8] {
        // SAFETY: data_ptr() is the start of data_len initialised bytes inside the mbuf's
        // buffer (DPDK's invariant data_off + data_len <= buf_len); &self prevents mutation
        // for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), usize::from(self.hdr().data_len)) }
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.hdr().data_len);
        // SAFETY: as in `data`; &mut self makes the slice the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), len) }
    }

    #[inline(always)]
    fn headroom(&self) -> usize {
        usize::from(self.hdr().data_off)
    }

    #[inline(always)]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let h = self.hdr_mut();
        let n16 = u16::try_from(n).ok()?;
        if n16 > h.data_off {
            return None;
        }
        h.data_off -= n16;
        h.data_len += n16;
        h.pkt_len += u32::from(n16);
        Some(self.data_mut())
    }

    #[inline(always)]
    fn adj(&mut self, n: usize) -> bool {
        let h = self.hdr_mut();
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if n16 > h.data_len {
            return false;
        }
        h.data_off += n16;
        h.data_len -= n16;
        h.pkt_len -= u32::from(n16);
        true
    }

    #[inline(always)]
    fn keep(&mut self, start: usize, end: usize) -> Option<&mut [u8]> {
        let h = self.hdr_mut();
        let (Ok(s16), Ok(e16)) = (u16::try_from(start), u16::try_from(end)) else {
            return None;
        };
        if s16 > e16 || e16 > h.data_len {
            return None;
        }
        let cut = h.data_len - (e16 - s16);
        h.data_off += s16;
        h.data_len = e16 - s16;
        h.pkt_len -= u32::from(cut);
        Some(self.data_mut())
    }

    #[inline(always)]
    fn trim(&mut self, n: usize) -> bool {
        let h = self.hdr_mut();
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if n16 > h.data_len {
            return false;
        }
        h.data_len -= n16;
        h.pkt_len -= u32::from(n16);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefetch hint takes any address — null, unmapped, kernel space, unaligned — and
    /// none faults (no EAL needed: it touches no DPDK state).
    #[test]
    fn prefetch_never_faults() {
        let x = [0u8; 64];
        for a in [
            std::ptr::null(),
            std::ptr::without_provenance(1),
            std::ptr::without_provenance(0xdead_beef),
            std::ptr::without_provenance(usize::MAX),
            x.as_ptr(),
            x.as_ptr().wrapping_add(63),
        ] {
            <Mbuf as PacketBuf>::prefetch(a);
        }
        assert_eq!(x, [0; 64]);
    }
}
