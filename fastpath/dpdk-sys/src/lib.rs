//! Raw FFI bindings to DPDK 22.11, the only crate in podlane with raw DPDK FFI.
//!
//! Everything here is a declaration: the bindgen output of `wrapper.h`
//! (functions, types and constants allowlisted in `build.rs`) and the
//! `podlane_*` functions of the C shim (`src/shim.c`), which give DPDK's
//! `static inline` fast-path functions (`rte_eth_rx_burst`,
//! `rte_pktmbuf_alloc`, `rte_ring_enqueue`, `rte_lcore_id`, `rte_errno`, ...)
//! real symbols. A shim function `podlane_X` has exactly the contract of the
//! DPDK function `X`. Safe, owning wrappers belong in podlane's DPDK wrapper
//! crate, not here.
//!
//! # Notes for the safe wrapper
//!
//! * **EAL arguments must live for the whole process.** `rte_eal_init` runs
//!   `getopt` over `argv` (which permutes the pointer array) and the EAL keeps
//!   pointers to some of the strings after it returns. Pass a `*mut *mut
//!   c_char` array whose strings are leaked (`CString::into_raw`, and leak the
//!   array too); never pass pointers into a `Vec<CString>` that is dropped.
//!   The return value is the number of arguments the EAL consumed.
//! * **One EAL per process.** `rte_eal_init` may be called once; after
//!   `rte_eal_cleanup` it cannot be initialised again.
//! * **Memory options:** `--no-huge` (anonymous memory, no hugepages, needs no
//!   privileges for memory) takes its size from `-m <MiB>` (default 64 MiB).
//!   `--no-huge` implies `--legacy-mem`, so the EAL refuses it together with
//!   `--in-memory` ("Option --legacy-mem is not compatible with
//!   --in-memory").
//!   `--file-prefix` keeps concurrent processes apart; `--no-shconf` skips the
//!   shared config files and multi-process IPC.
//! * **Errors:** most control functions return `0` or a negative errno;
//!   the ones that return a pointer or `-1` set `rte_errno`, read with
//!   [`podlane_rte_errno`] on the same thread and turned into text with
//!   [`rte_strerror`].
//! * **Enums are integer constants.** Each C enum is a module holding
//!   `type Type` and its constants (bindgen `ModuleConsts`), so every DPDK
//!   struct, `rte_eth_conf` included, may be zero-initialised
//!   (`Default::default()` / `mem::zeroed()`), as DPDK's `memset(.., 0, ..)`
//!   idiom expects.
//! * **Drivers:** Debian's shared DPDK loads every PMD in
//!   `/usr/lib/<triple>/dpdk/pmds-23.0` during `rte_eal_init`, so `--vdev
//!   net_ring0`, `net_null`, `net_pcap`, `net_tap`, `net_memif` and
//!   `net_af_packet` work without extra link flags.
//! * **Cost of the shim:** shim functions are plain external C functions
//!   (always compiled `-O3` with DPDK's own cflags). They are not inlined into
//!   Rust; a call costs a few cycles, so use the burst forms on the fast path.

/// The bindgen output, in its own module so the lint allowances cover only
/// generated code.
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    missing_docs,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn,
    improper_ctypes,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    rustdoc::all
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;

/// `#define RTE_ETH_RSS_L3_SRC_ONLY RTE_BIT64(63)` (DPDK 22.11
/// `rte_ethdev.h`), written by hand.
///
/// bindgen evaluates the other `RTE_BIT64(n)` macros through clang
/// (`clang_macro_fallback` in `build.rs`), but its fallback hands the value
/// back as an `i64` and drops anything above `i64::MAX`, so bit 63 is the one
/// flag that never arrives.
pub const RTE_ETH_RSS_L3_SRC_ONLY: u64 = 1 << 63;

// The flag families that only exist through clang's macro evaluation: if the
// fallback ever stops working these constants disappear and this crate stops
// compiling, instead of silently losing them. Values are the `RTE_BIT64(n)` /
// `RTE_BIT32(n)` bit positions written in DPDK 22.11 `rte_ethdev.h`.
const _: () = {
    assert!(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM == 1 << 1);
    assert!(RTE_ETH_RX_OFFLOAD_UDP_CKSUM == 1 << 2);
    assert!(RTE_ETH_RX_OFFLOAD_RSS_HASH == 1 << 19);
    assert!(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM == 1 << 1);
    assert!(RTE_ETH_TX_OFFLOAD_UDP_CKSUM == 1 << 2);
    assert!(RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE == 1 << 16);
    assert!(RTE_ETH_TX_OFFLOAD_MULTI_SEGS == 1 << 15);
    assert!(RTE_ETH_RSS_IPV4 == 1 << 2);
    assert!(RTE_ETH_RSS_NONFRAG_IPV4_UDP == 1 << 5);
    assert!(RTE_ETH_RSS_L3_DST_ONLY == 1 << 62);
    assert!(RTE_ETH_LINK_SPEED_10G == 1 << 8);
    assert!(RTE_ETH_DEV_CAPA_RUNTIME_RX_QUEUE_SETUP == 1 << 0);
    // Plain `(1ULL << n)` macros that bindgen parses itself (rte_mbuf_core.h).
    assert!(RTE_MBUF_F_TX_IPV4 == 1 << 55);
    assert!(RTE_MBUF_F_TX_UDP_CKSUM == 3 << 52);
    // The mbuf is two cache lines (rte_mbuf_core.h); the fast path relies on it.
    assert!(core::mem::size_of::<rte_mbuf>() == 2 * RTE_CACHE_LINE_SIZE as usize);
    assert!(RTE_MBUF_DEFAULT_BUF_SIZE == 2048 + RTE_PKTMBUF_HEADROOM);
};
