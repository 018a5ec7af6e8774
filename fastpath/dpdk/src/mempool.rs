//! Packet-buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::error::{from_errno, DpdkError};

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). Freed when dropped; every mbuf taken
/// from it must be back by then.
#[derive(Debug)]
pub struct PktPool {
    ptr: NonNull<sys::rte_mempool>,
}

// SAFETY: a DPDK mempool is designed to be shared between lcores (lock-free ring plus
// per-lcore caches); the handle is just its address.
unsafe impl Send for PktPool {}
// SAFETY: as above; every operation through &PktPool is thread-safe in DPDK.
unsafe impl Sync for PktPool {}

impl PktPool {
    /// A pool of `n` mbufs with a per-lcore cache of `cache` and the default data room
    /// (2048 bytes + 128 of headroom), on the caller's NUMA socket.
    pub fn new(name: &str, n: u32, cache: u32) -> Result<PktPool, DpdkError> {
        let c =
            CString::new(name).map_err(|_| DpdkError::Invalid(format!("pool name {name:?}")))?;
        // SAFETY: c is NUL-terminated; the numeric arguments are plain values. SOCKET_ID_ANY
        // (-1) lets DPDK choose.
        let p = unsafe {
            sys::rte_pktmbuf_pool_create(
                c.as_ptr(),
                n,
                cache,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                -1,
            )
        };
        NonNull::new(p)
            .map(|ptr| PktPool { ptr })
            .ok_or_else(|| from_errno(format!("create mbuf pool {name} of {n}")))
    }

    /// The raw pointer (for port queue setup).
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Mbufs free in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs taken from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// A new mbuf holding a copy of `frame`.
    pub fn alloc_frame(&self, frame: &[u8]) -> Result<crate::Mbuf, DpdkError> {
        let mut m = self.alloc()?;
        if !m.append(frame) {
            return Err(DpdkError::Invalid(format!(
                "a {}-byte frame does not fit an mbuf",
                frame.len()
            )));
        }
        Ok(m)
    }

    /// A new empty mbuf.
    pub fn alloc(&self) -> Result<crate::Mbuf, DpdkError> {
        self.try_alloc()
            .ok_or_else(|| DpdkError::Invalid("mbuf pool exhausted".into()))
    }

    /// A new empty mbuf, or None when the pool is exhausted (the fast path's variant: no
    /// error text is built).
    #[inline]
    pub fn try_alloc(&self) -> Option<crate::Mbuf> {
        // SAFETY: the pool is valid while self lives.
        let m = unsafe { sys::podlane_rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        NonNull::new(m).map(crate::Mbuf::from_raw_nonnull)
    }
}

impl Drop for PktPool {
    fn drop(&mut self) {
        // SAFETY: the pool was created by us and is freed once; its mbufs must be back (the
        // caller's contract, documented on the type).
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) }
    }
}
