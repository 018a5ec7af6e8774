//! Ethernet ports: configure, start, receive and send bursts, stats, stop and close.

use std::ffi::CStr;
use std::ptr;
use std::sync::Arc;

use dpdk_sys as sys;
use fastpath::wire::MacAddr;

use crate::error::{check, DpdkError};
use crate::mbuf::Burst;
use crate::mempool::PktPool;

/// How to set a port up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Receive queues (RSS spreads flows over them when more than one).
    pub rx_queues: u16,
    /// Transmit queues (one per worker lcore).
    pub tx_queues: u16,
    /// Receive descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Transmit descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Accept every destination MAC (the uplink must: it carries other MACs' traffic to the
    /// host path, and pods' frames are addressed to the gateway MAC).
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
        }
    }
}

/// Counters of a port (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the device dropped for lack of receive descriptors.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Receive mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A started port. Stopped and closed when dropped (or with [`Port::close`]).
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    driver: String,
    rx_queues: u16,
    tx_queues: u16,
    open: std::sync::atomic::AtomicBool,
    _pool: Arc<PktPool>,
}

impl Port {
    /// Configures and starts port `id` with its receive queues filling from `pool`.
    pub fn start(id: u16, cfg: &PortConfig, pool: &Arc<PktPool>) -> Result<Port, DpdkError> {
        // SAFETY: validity check of a port id; reads EAL state.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(DpdkError::Invalid(format!("no DPDK port {id}")));
        }
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: id is a valid port; info is a valid, zeroed struct for the result.
        let rc = unsafe { sys::rte_eth_dev_info_get(id, &mut info) };
        check(rc, format!("port {id}: info"))?;
        let name = port_name(id);
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null driver name is a static NUL-terminated string of the PMD.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(DpdkError::Invalid(format!(
                "port {name}: at least one rx and one tx queue"
            )));
        }
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Invalid(format!(
                "port {name} ({driver}) supports {} rx / {} tx queues, {} / {} asked",
                info.max_rx_queues, info.max_tx_queues, cfg.rx_queues, cfg.tx_queues
            )));
        }
        let mut conf = sys::rte_eth_conf::default();
        if cfg.rx_queues > 1 {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            // Hash on what the device can hash of IPv4 and its ports (DPDK's default key).
            let want = sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_UDP | sys::RTE_ETH_RSS_TCP;
            conf.rx_adv_conf.rss_conf.rss_hf = want & info.flow_type_rss_offloads;
        }
        // SAFETY: id is valid and stopped; conf is a fully initialised configuration.
        let rc = unsafe { sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) };
        check(rc, format!("port {name}: configure"))?;
        let (mut rxd, mut txd) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: id is configured; rxd/txd are valid in-out places.
        let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd) };
        check(rc, format!("port {name}: descriptor counts"))?;
        // SAFETY: reads the device's NUMA socket.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = u32::try_from(socket).unwrap_or(u32::MAX); // SOCKET_ID_ANY
        for q in 0..cfg.rx_queues {
            // SAFETY: id is configured with rx_queues queues; a NULL rxconf takes the defaults;
            // the pool outlives the port (the port holds an Arc to it).
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(id, q, rxd, socket, ptr::null(), pool.as_ptr())
            };
            check(rc, format!("port {name}: rx queue {q}"))?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above, for tx queues (NULL txconf takes the defaults).
            let rc = unsafe { sys::rte_eth_tx_queue_setup(id, q, txd, socket, ptr::null()) };
            check(rc, format!("port {name}: tx queue {q}"))?;
        }
        // SAFETY: id is configured with all its queues set up.
        let rc = unsafe { sys::rte_eth_dev_start(id) };
        check(rc, format!("port {name} ({driver}): start"))?;
        if cfg.promiscuous {
            // Not every virtual device supports it (-ENOTSUP); they pass everything anyway.
            // SAFETY: id is started.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(id) };
        }
        Ok(Port {
            id,
            name,
            driver,
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
            open: std::sync::atomic::AtomicBool::new(true),
            _pool: Arc::clone(pool),
        })
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device name (e.g. `net_pcap0`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver (e.g. `net_pcap`).
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// Receive queues.
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }

    /// Transmit queues.
    pub fn tx_queues(&self) -> u16 {
        self.tx_queues
    }

    /// Receives up to the room left in `out` from queue `q`; returns how many arrived.
    #[inline]
    pub fn rx_burst(&self, q: u16, out: &mut Burst) -> usize {
        self.rx_burst_max(q, out, usize::MAX)
    }

    /// [`Port::rx_burst`], taking at most `max` packets.
    #[inline]
    pub fn rx_burst_max(&self, q: u16, out: &mut Burst, max: usize) -> usize {
        let len = out.len();
        let room = (out.capacity() - len).min(max);
        if room == 0 {
            return 0;
        }
        // The driver writes straight into the burst's spare slots: an `Mbuf` is a
        // `#[repr(transparent)]` non-null mbuf pointer, so the slots are an array of
        // `*mut rte_mbuf` (no copy through a separate pointer array, no per-packet push).
        // SAFETY: `as_mut_ptr` points at the Vec's whole buffer of `capacity` slots, so
        // `len..capacity` is `room` writable slots, each the size and alignment of a pointer.
        let slots = unsafe { out.as_mut_ptr().add(len) }.cast::<*mut sys::rte_mbuf>();
        // SAFETY: the port is started and q is one of its queues; `slots` has room for `room`
        // pointers. Only the lcore that owns queue q calls this (the caller's contract, as in
        // DPDK).
        let n =
            usize::from(unsafe { sys::podlane_rte_eth_rx_burst(self.id, q, slots, room as u16) })
                .min(room);
        // SAFETY: rx_burst wrote n valid, non-null mbuf pointers into the first n slots and
        // handed their ownership over: they are initialised `Mbuf`s now.
        unsafe { out.set_len(len + n) };
        n
    }

    /// Sends `pkts` on queue `q` from the front; the sent ones leave `pkts`, the ones the queue
    /// had no room for stay, in order. Returns how many were sent.
    #[inline]
    pub fn tx_burst(&self, q: u16, pkts: &mut Burst) -> usize {
        let n = pkts.len();
        if n == 0 {
            return 0;
        }
        let base = pkts.as_mut_ptr();
        // SAFETY: the port is started and q is one of its queues; `base` points at n
        // initialised `Mbuf`s, i.e. n valid mbuf pointers (`#[repr(transparent)]`) that `pkts`
        // owns. The driver takes ownership of the first `sent`.
        let sent = usize::from(unsafe {
            sys::podlane_rte_eth_tx_burst(self.id, q, base.cast::<*mut sys::rte_mbuf>(), n as u16)
        })
        .min(n);
        if sent == n {
            // SAFETY: every slot now belongs to the driver: none may be dropped here. (The
            // common case, without the zero-length `memmove` call below.)
            unsafe { pkts.set_len(0) };
        } else if sent > 0 {
            // SAFETY: the first `sent` slots now belong to the driver and must not be dropped;
            // the unsent `n - sent` move to the front (`ptr::copy` handles the overlap), and
            // the length covers exactly them, so every Mbuf left is owned once.
            unsafe {
                ptr::copy(base.add(sent), base, n - sent);
                pkts.set_len(n - sent);
            }
        }
        sent
    }

    /// The port's counters.
    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: the port id is valid; s is a valid place for the result.
        if unsafe { sys::rte_eth_stats_get(self.id, &mut s) } != 0 {
            return PortStats::default();
        }
        PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// The port's MAC address.
    pub fn mac(&self) -> MacAddr {
        let mut a = sys::rte_ether_addr { addr_bytes: [0; 6] };
        // SAFETY: the port id is valid; a is a valid place for the result.
        let _ = unsafe { sys::rte_eth_macaddr_get(self.id, &mut a) };
        MacAddr(a.addr_bytes)
    }

    /// Stops and closes the port (flushing what a pcap port wrote; the driver frees what its
    /// queues still hold). Further calls do nothing. No worker may be using the port: the
    /// daemon closes a port only after the port-set version holding it is no longer read.
    pub fn close(&self) -> Result<(), DpdkError> {
        if !self.open.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        // SAFETY: the port is started; after stop no lcore may use its queues (the caller
        // stopped its workers first — a Port is not shared with running workers by value).
        let rc = unsafe { sys::rte_eth_dev_stop(self.id) };
        check(rc, format!("port {}: stop", self.name))?;
        // SAFETY: the port is stopped.
        let rc = unsafe { sys::rte_eth_dev_close(self.id) };
        check(rc, format!("port {}: close", self.name))?;
        Ok(())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The device name of a port.
pub fn port_name(id: u16) -> String {
    let mut buf = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes as the function requires.
    if unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) } != 0 {
        return format!("port{id}");
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
