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

// SAFETY: an mbuf is owned by exactly one Mbuf value; moving the owner to another thread (lcore)
// is how DPDK applications hand packets around. Freeing from any lcore is allowed.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(crate) fn from_raw_nonnull(ptr: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { ptr }
    }

    /// Takes ownership of a raw mbuf pointer (from an rx burst). Returns None for NULL.
    ///
    /// # Safety
    /// `p` must be a valid mbuf that nobody else owns or will free.
    pub(crate) unsafe fn from_raw(p: *mut sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(p).map(|ptr| Mbuf { ptr })
    }

    /// Gives up ownership (the caller, e.g. a tx burst, now owns the mbuf).
    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }

    /// The raw pointer, still owned by `self` (to build tx arrays; ownership then moves with
    /// [`Mbuf::into_raw`]).
    pub(crate) fn as_raw(&self) -> *mut sys::rte_mbuf {
        self.ptr.as_ptr()
    }

    /// True if the packet is in one segment (the only kind the pipeline handles).
    pub fn is_contiguous(&self) -> bool {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::podlane_rte_pktmbuf_is_contiguous(self.ptr.as_ptr()) != 0 }
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

    /// Prefetches the packet's first cache line (for the next packets of a burst).
    #[inline(always)]
    pub fn prefetch(&self) {
        // SAFETY: self owns a valid mbuf; mtod is its data address; prefetch never faults.
        unsafe { sys::podlane_rte_prefetch0(sys::podlane_rte_pktmbuf_mtod(self.ptr.as_ptr())) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf and gives it back to its pool exactly once.
        unsafe { sys::podlane_rte_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.ptr.as_ptr();
        // SAFETY: self owns a valid single-segment mbuf: mtod points at data_len initialised
        // bytes, and &self prevents mutation for the slice's lifetime.
        unsafe {
            let p = sys::podlane_rte_pktmbuf_mtod(m).cast::<u8>();
            std::slice::from_raw_parts(p, usize::from(sys::podlane_rte_pktmbuf_data_len(m)))
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.ptr.as_ptr();
        // SAFETY: as in `data`, and &mut self makes the slice the only reference.
        unsafe {
            let p = sys::podlane_rte_pktmbuf_mtod(m).cast::<u8>();
            std::slice::from_raw_parts_mut(p, usize::from(sys::podlane_rte_pktmbuf_data_len(m)))
        }
    }

    #[inline]
    fn headroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { sys::podlane_rte_pktmbuf_headroom(self.ptr.as_ptr()) })
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n = u16::try_from(n).ok()?;
        // SAFETY: self owns a valid mbuf; prepend returns NULL and changes nothing when the
        // headroom is too small.
        let p = unsafe { sys::podlane_rte_pktmbuf_prepend(self.ptr.as_ptr(), n) };
        if p.is_null() {
            return None;
        }
        Some(self.data_mut())
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: self owns a valid mbuf; adj returns NULL and changes nothing when the packet
        // is shorter than n.
        !unsafe { sys::podlane_rte_pktmbuf_adj(self.ptr.as_ptr(), n) }.is_null()
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: self owns a valid mbuf; trim returns -1 and changes nothing when the last
        // segment is shorter than n.
        unsafe { sys::podlane_rte_pktmbuf_trim(self.ptr.as_ptr(), n) == 0 }
    }
}
