//! DPDK errors: negative return codes and `rte_errno`, turned into messages a user can act on.

use std::ffi::CStr;

use dpdk_sys as sys;

/// A DPDK call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// A DPDK function returned an error code.
    #[error("{what} failed: {text} (errno {code})")]
    Call {
        /// What was being done.
        what: String,
        /// The positive errno.
        code: i32,
        /// `rte_strerror` of it.
        text: String,
    },
    /// The EAL was already initialised in this process (it can be initialised once).
    #[error("the DPDK EAL can be initialised once per process and already was")]
    AlreadyInitialised,
    /// A device argument string DPDK refused to probe.
    #[error("cannot attach device {devargs:?}: {reason}. Check the devargs syntax (e.g. \"net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap\" or a PCI address bound to vfio-pci)")]
    Device {
        /// The devargs.
        devargs: String,
        /// Why.
        reason: String,
    },
    /// An argument was not valid before reaching DPDK.
    #[error("{0}")]
    Invalid(String),
}

/// The text of an errno value.
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a NUL-terminated string valid until
    // the next call on this thread; it is copied out at once.
    let p = unsafe { sys::rte_strerror(code) };
    if p.is_null() {
        return format!("error {code}");
    }
    // SAFETY: non-null, NUL-terminated (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The calling thread's `rte_errno`.
pub fn errno() -> i32 {
    // SAFETY: reads a thread-local integer; no preconditions.
    unsafe { sys::podlane_rte_errno() }
}

/// Turns a DPDK return code into a `Result`: negative is an error (`-errno`), anything else is
/// returned as it is.
pub fn check(rc: i32, what: impl Into<String>) -> Result<i32, DpdkError> {
    if rc < 0 {
        let code = -rc;
        return Err(DpdkError::Call {
            what: what.into(),
            code,
            text: strerror(code),
        });
    }
    Ok(rc)
}

/// An error from `rte_errno`, for calls that return NULL or -1.
pub fn from_errno(what: impl Into<String>) -> DpdkError {
    let code = errno();
    DpdkError::Call {
        what: what.into(),
        code,
        text: strerror(code),
    }
}
