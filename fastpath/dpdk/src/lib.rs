//! The safe wrapper over DPDK: the one place besides `dpdk-sys` with `unsafe` code.
//!
//! Owning types release what they own: an [`Mbuf`] returns to its pool when dropped, a
//! [`PktPool`] is freed when dropped, a [`Port`] is stopped and closed when dropped, a
//! [`TapPort`] (a pod port that is a TAP file descriptor, not an ethdev port) closes its
//! descriptor, and with it the device, when dropped. Negative DPDK return codes become
//! [`DpdkError`]s in one helper ([`error::check`]). [`Mbuf`] implements the fast-path core's
//! [`fastpath::buf::PacketBuf`], so the same pipeline code runs on mbufs and on heap buffers.

pub mod eal;
pub mod error;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod tap;

pub use eal::{Eal, EalConfig};
pub use error::DpdkError;
pub use mbuf::{Burst, Mbuf};
pub use mempool::PktPool;
pub use port::{Port, PortConfig, PortStats};
pub use tap::{TapPoller, TapPort};
