//! Pod ports that are not DPDK ethdev ports: a Linux TAP device whose file descriptor the
//! worker reads and writes itself (what VPP's tapv2 and DPDK's `net_tap` do inside).
//!
//! Why not `net_tap`: every ethdev port takes one of `RTE_MAX_ETHPORTS` slots (32 in Debian's
//! DPDK 22.11), which would cap a node at 31 pods beside its uplink. A [`TapPort`] is a file
//! descriptor and two handfuls of counters; a node holds as many as the kernel allows.
//!
//! The TAP is opened with `IFF_TAP | IFF_NO_PI` and without `IFF_VNET_HDR`: no offload is
//! negotiated, so the kernel finishes every checksum (and segments every GSO packet) before a
//! frame reaches the fast path, which verifies L4 checksums on new Service flows. The link
//! state, name, MAC and MTU are left to whoever configures the interface (the control daemon
//! moves it into the pod's netns and sets it up there); the file descriptor stays bound to the
//! device whichever namespace it is in. Closing the descriptor (dropping the port) deletes the
//! device, wherever it is.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};

use fastpath::buf::PacketBuf;

use crate::error::DpdkError;
use crate::mbuf::Burst;
use crate::mempool::PktPool;
use crate::port::PortStats;

// `_IOW('T', 202, int)`, the value of <linux/if_tun.h> on x86_64 and aarch64; libc's constant
// is used, this only guards against a surprise.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const _: () = assert!(libc::TUNSETIFF == 0x4004_54ca);

/// A TAP device whose frames the fast path reads and writes directly.
///
/// `Send + Sync`: the descriptor is an integer owned by a [`File`], and `read(2)`/`write(2)` on
/// it are thread-safe system calls; the counters are atomics. By convention one worker does the
/// I/O and the control thread creates and drops the port (after no worker holds it).
#[derive(Debug)]
pub struct TapPort {
    file: File,
    name: String,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_errors: AtomicU64,
    rx_nombuf: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_errors: AtomicU64,
}

impl TapPort {
    /// Creates the TAP device `ifname` (at most 15 bytes) in the caller's network namespace,
    /// or attaches to an existing TAP of that name no one holds. Non-blocking, close-on-exec.
    pub fn create(ifname: &str) -> Result<TapPort, DpdkError> {
        let bad = |why: &str| DpdkError::Invalid(format!("TAP name {ifname:?}: {why}"));
        if ifname.is_empty() {
            return Err(bad("empty"));
        }
        if ifname.len() >= libc::IFNAMSIZ {
            return Err(bad("longer than 15 bytes"));
        }
        if ifname == "." || ifname == ".." {
            return Err(bad("not a device name"));
        }
        if ifname
            .bytes()
            .any(|b| matches!(b, 0 | b'/' | b':') || b.is_ascii_whitespace())
        {
            return Err(bad("contains NUL, '/', ':' or white space"));
        }
        let call = |what: &str, e: io::Error| DpdkError::Call {
            what: format!("TAP {ifname}: {what}"),
            code: e.raw_os_error().unwrap_or(0),
            text: e.to_string(),
        };
        // std opens with O_CLOEXEC.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(|e| call("open /dev/net/tun", e))?;
        // SAFETY: ifreq is plain old data (a name array and a union of integers, addresses
        // and a pointer), for which all-zero bytes are a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in req.ifr_name.iter_mut().zip(ifname.as_bytes()) {
            *dst = src as libc::c_char;
        }
        // The name is NUL-terminated: it is shorter than IFNAMSIZ and the rest is zero.
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: the descriptor is open on /dev/net/tun; TUNSETIFF reads and writes back one
        // `struct ifreq`, and req is one, valid and exclusively borrowed for the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(call("TUNSETIFF", io::Error::last_os_error()));
        }
        // The kernel writes back the device's name (the same, for a name without "%d").
        let name: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Ok(TapPort {
            file,
            name: String::from_utf8_lossy(&name).into_owned(),
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            rx_errors: AtomicU64::new(0),
            rx_nombuf: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            tx_errors: AtomicU64::new(0),
        })
    }

    /// Creates the TAP device `ifname` directly inside the network namespace `netns` (a file
    /// such as `/var/run/netns/NAME` or `/proc/PID/ns/net`): a short-lived thread joins that
    /// namespace for the creation only. The device never has to move between namespaces, which
    /// costs ~24 ms per device under the kernel's RTNL lock and so serialises concurrent pod
    /// attachments; the descriptor works from any thread afterwards.
    pub fn create_in(ifname: &str, netns: &std::path::Path) -> Result<TapPort, DpdkError> {
        let ns = File::open(netns).map_err(|e| DpdkError::Call {
            what: format!("TAP {ifname}: open netns {}", netns.display()),
            code: e.raw_os_error().unwrap_or(0),
            text: e.to_string(),
        })?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: `ns` is an open namespace file descriptor for the duration of the
                // call; setns(2) with CLONE_NEWNET changes the network namespace of this
                // thread only (a thread of our own that ends right after), touching no memory.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    let e = io::Error::last_os_error();
                    return Err(DpdkError::Call {
                        what: format!("TAP {ifname}: setns {}", netns.display()),
                        code: e.raw_os_error().unwrap_or(0),
                        text: e.to_string(),
                    });
                }
                TapPort::create(ifname)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(DpdkError::Invalid(format!(
                    "TAP {ifname}: the namespace thread panicked"
                )))
            })
        })
    }

    /// The device's name when it was created (it keeps its identity if renamed later, e.g.
    /// to `eth0` inside a pod).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Receives frames into mbufs from `pool` until `out` is full or the TAP has no more;
    /// returns how many arrived. A frame larger than an mbuf's data room (a pod MTU above
    /// 2,034 bytes) is dropped and counted as a receive error, never handed on cut; an
    /// exhausted pool ends the burst (`rx_nombuf`).
    #[inline]
    pub fn rx_burst(&self, pool: &PktPool, out: &mut Burst) -> usize {
        self.rx_burst_max(pool, out, usize::MAX)
    }

    /// [`TapPort::rx_burst`], taking at most `max` frames.
    #[inline]
    pub fn rx_burst_max(&self, pool: &PktPool, out: &mut Burst, max: usize) -> usize {
        let room = (out.capacity() - out.len()).min(max);
        let fd = self.file.as_raw_fd();
        let (mut got, mut bytes, mut errors, mut nombuf) = (0usize, 0u64, 0u64, 0u64);
        while got < room {
            let Some(mut m) = pool.try_alloc() else {
                nombuf += 1;
                break;
            };
            let cap = m.tailroom();
            // A TAP read returns one frame, cut to the buffer and reporting the cut length:
            // one spill byte after the mbuf's room tells a frame that did not fit.
            let mut spill = 0u8;
            let iov = [
                libc::iovec {
                    iov_base: m.tail_ptr().cast::<libc::c_void>(),
                    iov_len: cap,
                },
                libc::iovec {
                    iov_base: (&raw mut spill).cast::<libc::c_void>(),
                    iov_len: 1,
                },
            ];
            // SAFETY: fd is this port's open descriptor; the first iovec is `cap` writable
            // bytes inside the buffer of the mbuf `m` owns, which nothing else references, the
            // second one is `spill`, alive and unborrowed for the call.
            let r = unsafe { libc::readv(fd, iov.as_ptr(), 2) };
            if r <= 0 {
                // EAGAIN: nothing more. EBADFD: the device was deleted (its netns went away) —
                // not an error per poll; RemovePort ends it. Anything else is counted once per
                // burst. A zero read does not happen on a TAP; end the burst if it does.
                if r < 0 {
                    let e = io::Error::last_os_error().raw_os_error();
                    if !matches!(e, Some(libc::EAGAIN | libc::EINTR | libc::EBADFD)) {
                        errors += 1;
                    }
                }
                break; // `m` goes back to the pool
            }
            let n = r as usize;
            // SAFETY: readv(2) wrote n bytes, the first min(n, cap) of them into the mbuf;
            // n <= cap is checked first.
            if n > cap || !unsafe { m.extend_written(n) } {
                errors += 1;
                continue; // the truncated frame is consumed; `m` is freed
            }
            bytes += n as u64;
            got += 1;
            // Cannot fail: got <= room. Were it to, the mbuf would be dropped (freed).
            let _ = out.push(m);
        }
        if got > 0 {
            self.rx_packets.fetch_add(got as u64, Ordering::Relaxed);
            self.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        if errors > 0 {
            self.rx_errors.fetch_add(errors, Ordering::Relaxed);
        }
        if nombuf > 0 {
            self.rx_nombuf.fetch_add(nombuf, Ordering::Relaxed);
        }
        got
    }

    /// Writes `pkts` from the front, one frame per `write(2)`, as [`crate::Port::tx_burst`]
    /// does: the written ones leave `pkts`, and if the kernel refuses for lack of room
    /// (`EAGAIN`) that frame and the ones after it stay, in order, for a retry. A frame that
    /// cannot be sent (multi-segment, or any other write error, e.g. the link is down) is freed
    /// and counted as a transmit error. Returns how many were written.
    #[inline]
    pub fn tx_burst(&self, pkts: &mut Burst) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let (mut sent, mut bytes, mut errors) = (0usize, 0u64, 0u64);
        let mut all = core::mem::take(pkts).into_iter();
        for m in all.by_ref() {
            if !m.is_contiguous() {
                errors += 1;
                continue;
            }
            let frame = m.data();
            match (&self.file).write(frame) {
                Ok(n) if n == frame.len() => {
                    sent += 1;
                    bytes += n as u64;
                }
                // A TAP write takes a whole frame or none; a short one is an error.
                Ok(_) => errors += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = pkts.push(m);
                    break;
                }
                Err(_) => errors += 1,
            }
        }
        for m in all {
            let _ = pkts.push(m);
        }
        if sent > 0 {
            self.tx_packets.fetch_add(sent as u64, Ordering::Relaxed);
            self.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        if errors > 0 {
            self.tx_errors.fetch_add(errors, Ordering::Relaxed);
        }
        sent
    }

    /// The port's counters (`rx_missed` stays 0: the kernel's own TAP queue drops are in
    /// the device's statistics, `ip -s link`).
    pub fn stats(&self) -> PortStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PortStats {
            rx_packets: get(&self.rx_packets),
            tx_packets: get(&self.tx_packets),
            rx_bytes: get(&self.rx_bytes),
            tx_bytes: get(&self.tx_bytes),
            rx_missed: 0,
            rx_errors: get(&self.rx_errors),
            tx_errors: get(&self.tx_errors),
            rx_nombuf: get(&self.rx_nombuf),
        }
    }
}

/// Which of a worker's TAP ports have frames waiting, in one system call: an epoll set of their
/// descriptors (level-triggered), asked with a zero timeout once per poll. An idle TAP costs
/// the poll nothing — without it, every idle TAP cost one `readv(2)` returning `EAGAIN`
/// (~180 ns here) per poll, so a node with 100 pods spent ~18 µs per poll on empty reads.
#[derive(Debug)]
pub struct TapPoller {
    ep: std::os::fd::OwnedFd,
    events: Box<[libc::epoll_event]>,
    registered: usize,
}

impl TapPoller {
    /// Events taken per call (more ready ports wait for the next poll, level-triggered).
    pub const MAX_READY: usize = 64;

    /// An empty set.
    pub fn new() -> Result<TapPoller, DpdkError> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1; no memory.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(DpdkError::Call {
                what: "epoll_create1".into(),
                code: e.raw_os_error().unwrap_or(0),
                text: e.to_string(),
            });
        }
        // SAFETY: fd is a descriptor epoll_create1 just returned to us and nothing else owns.
        let ep = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(TapPoller {
            ep,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; TapPoller::MAX_READY]
                .into_boxed_slice(),
            registered: 0,
        })
    }

    fn ctl(&self, op: libc::c_int, tap: &TapPort, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open (the caller holds `tap`); ev is a valid event
        // the call only reads.
        let rc = unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), op, tap.file.as_raw_fd(), &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `tap`, reporting it as `token` when it has frames.
    pub fn add(&mut self, tap: &TapPort, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, tap, token)?;
        self.registered += 1;
        Ok(())
    }

    /// Stops watching `tap` (call it while the port is still open).
    pub fn remove(&mut self, tap: &TapPort) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, tap, 0)?;
        self.registered = self.registered.saturating_sub(1);
        Ok(())
    }

    /// How many TAPs are watched.
    pub fn len(&self) -> usize {
        self.registered
    }

    /// True when no TAP is watched.
    pub fn is_empty(&self) -> bool {
        self.registered == 0
    }

    /// The tokens of the watched TAPs that have frames now (no wait); at most
    /// [`TapPoller::MAX_READY`]. Nothing when none is watched (no system call).
    #[inline]
    pub fn ready(&mut self) -> impl Iterator<Item = u64> + '_ {
        let n = if self.registered == 0 {
            0
        } else {
            // SAFETY: events is a writable array of MAX_READY epoll_event, the count passed;
            // a zero timeout never blocks.
            let r = unsafe {
                libc::epoll_wait(
                    self.ep.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    TapPoller::MAX_READY as libc::c_int,
                    0,
                )
            };
            usize::try_from(r).unwrap_or(0) // -1 (EINTR): none this time
        };
        self.events[..n].iter().map(|e| e.u64)
    }
}
