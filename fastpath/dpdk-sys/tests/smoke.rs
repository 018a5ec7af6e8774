//! Smoke test of the raw bindings and the C shim against the installed DPDK.
//!
//! No hugepages and no NIC: the EAL runs with `--no-huge` (anonymous memory,
//! sized by `-m`) and one virtual port, `net_ring0`, whose Tx queue feeds its
//! own Rx queue (the ring PMD gives a `--vdev net_ringN` port one ring per
//! queue pair and uses it for both directions). It runs as an ordinary
//! `cargo test`; it needs the rights to create `/var/run/dpdk/<prefix>`
//! (root) or a writable `$XDG_RUNTIME_DIR`.
//!
//! The EAL can be initialised once per process, so everything is one `#[test]`.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;

use dpdk_sys::*;

const NB_MBUF: u32 = 4095;
const MBUF_CACHE: u32 = 256;
const BURST: usize = 32;
const FRAME_LEN: u16 = 64;
const RING_DESC: u16 = 1024;
/// Linux `ENOENT`.
const ENOENT: c_int = 2;

/// `rte_errno` of this thread, as text.
fn rte_error() -> String {
    // SAFETY: the shim reads a thread-local int; no preconditions.
    let errno = unsafe { podlane_rte_errno() };
    // SAFETY: rte_strerror accepts any value and returns a pointer to a
    // NUL-terminated string (static or thread-local) valid until the next call
    // on this thread; it is copied out at once.
    let text = unsafe { CStr::from_ptr(rte_strerror(errno)) };
    format!("rte_errno {errno}: {}", text.to_string_lossy())
}

/// Builds the test frame for packet `i`: broadcast destination, a locally
/// administered source MAC ending in `i`, EtherType 0x88B5 (IEEE 802 local
/// experimental) and a payload counting up from `i`.
fn frame(i: usize) -> [u8; FRAME_LEN as usize] {
    let mut f = [0u8; FRAME_LEN as usize];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, i as u8]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    for (j, b) in f[14..].iter_mut().enumerate() {
        *b = (i + j) as u8;
    }
    f
}

/// The data of the first segment of `m`.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller and not modified while the
/// returned slice is alive.
unsafe fn data<'a>(m: *mut rte_mbuf) -> &'a [u8] {
    // SAFETY: by the caller's contract `m` is valid; mtod points at
    // `data_len` initialised bytes inside the mbuf's buffer.
    unsafe {
        let p = podlane_rte_pktmbuf_mtod(m).cast::<u8>();
        std::slice::from_raw_parts(p, usize::from(podlane_rte_pktmbuf_data_len(m)))
    }
}

#[test]
fn eal_ring_port_mbuf_ring_roundtrip() {
    // ---- EAL -----------------------------------------------------------
    let prefix = format!("podlane-sys-{}", std::process::id());
    let args = [
        "podlane-test",
        "--no-huge", // implies legacy memory, sized by -m
        "-m",
        "256",
        "--file-prefix",
        prefix.as_str(),
        "--no-shconf",    // no shared config files, no multi-process IPC
        "--no-telemetry", // no telemetry thread or socket
        "--no-pci",
        "--vdev",
        "net_ring0",
        "-l",
        "0",
        "--log-level",
        "lib.eal:error",
    ];
    // The EAL keeps pointers into argv after rte_eal_init returns (and getopt
    // permutes the array), so both the strings and the array are leaked.
    let argv: &'static mut [*mut c_char] = Box::leak(
        args.iter()
            .map(|a| CString::new(*a).expect("no NUL in args").into_raw())
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let argc = c_int::try_from(argv.len()).expect("argc fits c_int");
    // SAFETY: argv holds argc pointers to NUL-terminated strings that are
    // leaked, so they outlive the EAL; this is the only EAL initialisation in
    // this test binary (a single #[test]).
    let consumed = unsafe { rte_eal_init(argc, argv.as_mut_ptr()) };
    assert!(consumed >= 0, "rte_eal_init failed: {}", rte_error());
    assert_eq!(
        consumed,
        argc - 1,
        "EAL consumed every argument after argv[0]"
    );

    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(rte_version()) }
        .to_string_lossy()
        .into_owned();
    assert!(
        version.contains("22.11"),
        "unexpected DPDK version {version}"
    );

    // ---- lcores, time, errno --------------------------------------------
    // SAFETY: the EAL is initialised; these read EAL state and this thread's
    // lcore id (the thread that ran rte_eal_init is the main lcore).
    let (lcore, main_lcore, lcores) = unsafe {
        (
            podlane_rte_lcore_id(),
            rte_get_main_lcore(),
            rte_lcore_count(),
        )
    };
    assert_eq!((lcore, main_lcore, lcores), (0, 0, 1));
    // SAFETY: waiting for worker lcores is a no-op when there are none.
    unsafe { rte_eal_mp_wait_lcore() };

    // SAFETY: reading the TSC and the EAL's calibrated frequencies has no
    // preconditions once the EAL is up.
    let (t0, tsc_hz, timer_hz) = unsafe {
        (
            podlane_rte_rdtsc(),
            rte_get_tsc_hz(),
            podlane_rte_get_timer_hz(),
        )
    };
    assert!(tsc_hz > 0);
    assert_eq!(timer_hz, tsc_hz, "default timer source is the TSC");
    // SAFETY: as above.
    let (t1, cycles) = unsafe { (podlane_rte_rdtsc(), podlane_rte_get_timer_cycles()) };
    assert!(t1 >= t0 && cycles >= t0);

    // SAFETY: the name is a valid C string; a failed lookup returns NULL and
    // sets rte_errno on this thread.
    let missing = unsafe { rte_ring_lookup(c"podlane-no-such-ring".as_ptr()) };
    assert!(missing.is_null());
    // SAFETY: reads this thread's rte_errno.
    assert_eq!(unsafe { podlane_rte_errno() }, ENOENT, "{}", rte_error());

    // ---- mbuf pool -------------------------------------------------------
    // SAFETY: plain query of the calling lcore's NUMA socket.
    let socket = unsafe { rte_socket_id() };
    // SAFETY: valid pool name; sizes within limits (cache <= 512 and
    // cache * 1.5 <= n); the EAL is initialised.
    let pool = unsafe {
        rte_pktmbuf_pool_create(
            c"podlane-sys-pool".as_ptr(),
            NB_MBUF,
            MBUF_CACHE,
            0,
            RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            socket as c_int,
        )
    };
    assert!(!pool.is_null(), "rte_pktmbuf_pool_create: {}", rte_error());
    // SAFETY: `pool` is a live mempool created above.
    let (avail, room) = unsafe {
        (
            rte_mempool_avail_count(pool),
            podlane_rte_pktmbuf_data_room_size(pool),
        )
    };
    assert_eq!(avail, NB_MBUF);
    assert_eq!(u32::from(room), RTE_MBUF_DEFAULT_BUF_SIZE);

    // ---- the net_ring0 port ---------------------------------------------
    // SAFETY: querying the port table of an initialised EAL.
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, 1);
    let mut port: u16 = u16::MAX;
    // SAFETY: valid C string and a valid out pointer.
    let rc = unsafe { rte_eth_dev_get_port_by_name(c"net_ring0".as_ptr(), &mut port) };
    assert_eq!(rc, 0, "net_ring0 not found");
    // SAFETY: any port id may be asked about.
    assert_eq!(unsafe { rte_eth_dev_is_valid_port(port) }, 1);

    let mut info = rte_eth_dev_info::default();
    // SAFETY: valid port and a valid, writable rte_eth_dev_info.
    assert_eq!(unsafe { rte_eth_dev_info_get(port, &mut info) }, 0);
    // SAFETY: info_get filled driver_name with a pointer to the driver's
    // static NUL-terminated name.
    let driver = unsafe { CStr::from_ptr(info.driver_name) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(driver, "net_ring");
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);

    // All-zero configuration, as DPDK's examples memset it: possible because
    // the C enums are integer constants (see build.rs).
    let conf = rte_eth_conf::default();
    // SAFETY: valid port, queue counts within the limits reported above, and
    // a valid configuration that outlives the call.
    let rc = unsafe { rte_eth_dev_configure(port, 1, 1, &conf) };
    assert_eq!(rc, 0, "rte_eth_dev_configure: {rc}");
    // SAFETY: rte_eth_dev_socket_id accepts any port id.
    let port_socket = match unsafe { rte_eth_dev_socket_id(port) } {
        s if s < 0 => SOCKET_ID_ANY as u32,
        s => s as u32,
    };
    // SAFETY: configured port, queue 0 exists, NULL rxconf means driver
    // defaults, `pool` is a live pktmbuf pool that outlives the port.
    let rc = unsafe { rte_eth_rx_queue_setup(port, 0, RING_DESC, port_socket, ptr::null(), pool) };
    assert_eq!(rc, 0, "rte_eth_rx_queue_setup: {rc}");
    // SAFETY: configured port, queue 0 exists, NULL txconf means defaults.
    let rc = unsafe { rte_eth_tx_queue_setup(port, 0, RING_DESC, port_socket, ptr::null()) };
    assert_eq!(rc, 0, "rte_eth_tx_queue_setup: {rc}");
    // SAFETY: all queues of the configured port are set up.
    assert_eq!(unsafe { rte_eth_dev_start(port) }, 0);
    // SAFETY: started port.
    let rc = unsafe { rte_eth_promiscuous_enable(port) };
    assert_eq!(rc, 0);
    let mut mac = rte_ether_addr::default();
    // SAFETY: valid port and a valid out pointer.
    assert_eq!(unsafe { rte_eth_macaddr_get(port, &mut mac) }, 0);

    // ---- mbufs out through Tx and back through Rx ------------------------
    let mut tx = [ptr::null_mut::<rte_mbuf>(); BURST];
    // SAFETY: `tx` has room for BURST pointers; `pool` is live.
    let rc = unsafe { podlane_rte_pktmbuf_alloc_bulk(pool, tx.as_mut_ptr(), BURST as u32) };
    assert_eq!(rc, 0, "alloc_bulk: {rc}");
    for (i, &m) in tx.iter().enumerate() {
        // SAFETY: `m` is a freshly allocated mbuf owned by this test; the
        // queries only read it.
        let (head, tail, len, refcnt) = unsafe {
            (
                podlane_rte_pktmbuf_headroom(m),
                podlane_rte_pktmbuf_tailroom(m),
                podlane_rte_pktmbuf_pkt_len(m),
                podlane_rte_mbuf_refcnt_read(m),
            )
        };
        assert_eq!(u32::from(head), RTE_PKTMBUF_HEADROOM);
        assert_eq!(u32::from(tail), RTE_MBUF_DEFAULT_DATAROOM);
        assert_eq!((len, refcnt), (0, 1));
        // SAFETY: as above; append extends the data by FRAME_LEN bytes of
        // tailroom (checked above to be enough) and returns their start.
        let (start, appended) = unsafe {
            (
                podlane_rte_pktmbuf_mtod(m),
                podlane_rte_pktmbuf_append(m, FRAME_LEN),
            )
        };
        assert!(!appended.is_null());
        assert_eq!(
            appended.cast::<c_void>(),
            start,
            "empty mbuf: append starts at mtod"
        );
        // SAFETY: `appended` points at FRAME_LEN writable bytes inside this
        // mbuf's buffer, which nothing else references.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(appended.cast::<u8>(), FRAME_LEN.into()) };
        bytes.copy_from_slice(&frame(i));
    }

    // SAFETY: port 0/queue 0 is started; `tx` holds BURST valid mbufs whose
    // ownership passes to the driver for those it accepts.
    let sent = unsafe { podlane_rte_eth_tx_burst(port, 0, tx.as_mut_ptr(), BURST as u16) };
    assert_eq!(
        usize::from(sent),
        BURST,
        "the ring has room for a whole burst"
    );

    let mut rx = [ptr::null_mut::<rte_mbuf>(); BURST];
    // SAFETY: started port/queue; `rx` has room for BURST pointers, and the
    // received mbufs become owned by this test.
    let received = unsafe { podlane_rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), BURST as u16) };
    assert_eq!(
        usize::from(received),
        BURST,
        "net_ring0 loops its Tx queue to its Rx queue"
    );
    for (i, &m) in rx.iter().enumerate() {
        assert_eq!(m, tx[i], "same mbufs, same order");
        // SAFETY: `m` is a received mbuf owned by this test, not modified
        // while the slice lives.
        assert_eq!(unsafe { data(m) }, &frame(i)[..]);
        // SAFETY: as above, read-only queries.
        let (len, seg, contiguous) = unsafe {
            (
                podlane_rte_pktmbuf_pkt_len(m),
                podlane_rte_pktmbuf_data_len(m),
                podlane_rte_pktmbuf_is_contiguous(m),
            )
        };
        assert_eq!((len, seg, contiguous), (u32::from(FRAME_LEN), FRAME_LEN, 1));
    }
    // SAFETY: as for the first rx_burst; the ring is empty, so no mbuf is
    // handed over.
    let again = unsafe { podlane_rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), BURST as u16) };
    assert_eq!(again, 0, "nothing left in the ring");

    let mut stats = rte_eth_stats::default();
    // SAFETY: valid port and a valid out pointer.
    assert_eq!(unsafe { rte_eth_stats_get(port, &mut stats) }, 0);
    assert_eq!(
        (stats.opackets, stats.ipackets),
        (BURST as u64, BURST as u64)
    );

    // ---- headroom / tailroom editing on one received mbuf ---------------
    let m = rx[0];
    // SAFETY: `m` is a valid single-segment mbuf owned by this test; the
    // 14 bytes prepended fit the 128-byte headroom checked at allocation,
    // `outer` and `data` only touch bytes inside the mbuf's data, and
    // adj/trim stay within its data length.
    unsafe {
        let buf_len = RTE_MBUF_DEFAULT_BUF_SIZE as u16;
        let start = podlane_rte_pktmbuf_mtod(m).cast::<u8>();

        // Encapsulate: 14 bytes in front of the frame (an outer Ethernet header).
        let outer = podlane_rte_pktmbuf_prepend(m, 14).cast::<u8>();
        assert_eq!(outer, start.sub(14));
        assert_eq!(
            podlane_rte_pktmbuf_headroom(m),
            RTE_PKTMBUF_HEADROOM as u16 - 14
        );
        assert_eq!(podlane_rte_pktmbuf_data_len(m), FRAME_LEN + 14);
        std::slice::from_raw_parts_mut(outer, 14).fill(0xee);
        assert_eq!(&data(m)[..14], &[0xee; 14]);
        assert_eq!(&data(m)[14..], &frame(0)[..]);

        // Decapsulate again.
        let inner = podlane_rte_pktmbuf_adj(m, 14).cast::<u8>();
        assert_eq!(inner, start);
        assert_eq!(data(m), &frame(0)[..]);

        // Drop a 4-byte trailer (an FCS, say).
        assert_eq!(podlane_rte_pktmbuf_trim(m, 4), 0);
        assert_eq!(podlane_rte_pktmbuf_pkt_len(m), u32::from(FRAME_LEN) - 4);
        assert_eq!(data(m), &frame(0)[..usize::from(FRAME_LEN) - 4]);

        let (head, len, tail) = (
            podlane_rte_pktmbuf_headroom(m),
            podlane_rte_pktmbuf_data_len(m),
            podlane_rte_pktmbuf_tailroom(m),
        );
        assert_eq!(
            head + len + tail,
            buf_len,
            "headroom + data + tailroom = buffer"
        );
    }
    // SAFETY: same mbuf as above; the oversized requests are rejected by
    // DPDK (NULL / -1) without touching memory, which is what is tested.
    unsafe {
        let (head, len, tail) = (
            podlane_rte_pktmbuf_headroom(m),
            podlane_rte_pktmbuf_data_len(m),
            podlane_rte_pktmbuf_tailroom(m),
        );
        // Asking for more than there is fails and leaves the mbuf alone.
        assert!(podlane_rte_pktmbuf_prepend(m, head + 1).is_null());
        assert!(podlane_rte_pktmbuf_append(m, tail + 1).is_null());
        assert!(podlane_rte_pktmbuf_adj(m, len + 1).is_null());
        assert_eq!(podlane_rte_pktmbuf_trim(m, len + 1), -1);
        assert_eq!(podlane_rte_pktmbuf_data_len(m), len);
    }

    // ---- free everything; the pool must be full again --------------------
    // SAFETY: `pool` is live.
    assert_eq!(unsafe { rte_mempool_in_use_count(pool) }, BURST as u32);
    // SAFETY: the first half of `rx` are valid mbufs owned by this test and
    // not used after this call.
    unsafe { rte_pktmbuf_free_bulk(rx.as_mut_ptr(), (BURST / 2) as u32) };
    for &m in &rx[BURST / 2..] {
        // SAFETY: each remaining mbuf is owned by this test and freed once.
        unsafe { podlane_rte_pktmbuf_free(m) };
    }
    // SAFETY: `pool` is live; a single allocation, freed at once.
    unsafe {
        let one = podlane_rte_pktmbuf_alloc(pool);
        assert!(!one.is_null());
        podlane_rte_pktmbuf_free(one);
    }
    // SAFETY: `pool` is live; the count includes the per-lcore caches.
    let (avail, in_use) = unsafe {
        (
            rte_mempool_avail_count(pool),
            rte_mempool_in_use_count(pool),
        )
    };
    assert_eq!(
        (avail, in_use),
        (NB_MBUF, 0),
        "every mbuf is back in the pool"
    );

    // ---- rte_ring through the shim ---------------------------------------
    // SAFETY: valid name, power-of-two size, valid flags.
    let ring = unsafe {
        rte_ring_create(
            c"podlane-sys-ring".as_ptr(),
            64,
            SOCKET_ID_ANY,
            RING_F_SP_ENQ | RING_F_SC_DEQ,
        )
    };
    assert!(!ring.is_null(), "rte_ring_create: {}", rte_error());
    // The ring stores pointers without dereferencing them: use the addresses
    // of a local array's elements as tokens.
    let mut tokens = [0u8; 8];
    let objs: Vec<*mut c_void> = tokens.iter_mut().map(|t| ptr::from_mut(t).cast()).collect();
    // SAFETY: `ring` is live and single-producer/consumer from this thread
    // only; the out pointers are valid for the counts passed.
    unsafe {
        assert_eq!(podlane_rte_ring_enqueue(ring, objs[0]), 0);
        let mut free_space = 0;
        let n = podlane_rte_ring_enqueue_burst(ring, objs[1..].as_ptr(), 7, &mut free_space);
        assert_eq!((n, free_space), (7, 63 - 8));
        assert_eq!(podlane_rte_ring_count(ring), 8);
        assert_eq!(podlane_rte_ring_free_count(ring), 63 - 8);

        let mut first: *mut c_void = ptr::null_mut();
        assert_eq!(podlane_rte_ring_dequeue(ring, &mut first), 0);
        assert_eq!(first, objs[0]);
        let mut out = [ptr::null_mut::<c_void>(); 16];
        let mut available = u32::MAX;
        let n = podlane_rte_ring_dequeue_burst(ring, out.as_mut_ptr(), 16, &mut available);
        assert_eq!((n, available), (7, 0));
        assert_eq!(&out[..7], &objs[1..]);
        assert_eq!(
            podlane_rte_ring_dequeue(ring, &mut first),
            -ENOENT,
            "empty ring"
        );
        rte_ring_free(ring);
    }

    // ---- hotplug a second virtual device ---------------------------------
    // SAFETY: valid C strings; net_null is loaded from Debian's PMD folder.
    let rc = unsafe { rte_vdev_init(c"net_null0".as_ptr(), c"".as_ptr()) };
    assert_eq!(rc, 0, "rte_vdev_init(net_null0): {rc}");
    // SAFETY: querying the port table.
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, 2);
    // SAFETY: net_null0 was created above and was never started.
    assert_eq!(unsafe { rte_vdev_uninit(c"net_null0".as_ptr()) }, 0);
    // SAFETY: querying the port table.
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, 1);

    // ---- tear down ------------------------------------------------------
    // SAFETY: the port is started and no mbufs are in flight.
    assert_eq!(unsafe { rte_eth_dev_stop(port) }, 0);
    // SAFETY: the port is stopped; it is not used after this.
    assert_eq!(unsafe { rte_eth_dev_close(port) }, 0);
    // SAFETY: the only user of the pool (the port) is closed and every mbuf
    // was returned; `pool` is not used after this.
    unsafe { rte_mempool_free(pool) };
    // SAFETY: all DPDK objects are released; nothing calls into DPDK after.
    assert_eq!(unsafe { rte_eal_cleanup() }, 0);

    // With --no-shconf the EAL still creates an (empty) runtime directory,
    // /var/run/dpdk/<prefix> for root, else under $XDG_RUNTIME_DIR or /tmp,
    // and leaves it behind. Remove ours; remove_dir only removes it if empty.
    let mut bases = vec![
        std::path::PathBuf::from("/var/run/dpdk"),
        "/tmp/dpdk".into(),
    ];
    bases.extend(
        std::env::var_os("XDG_RUNTIME_DIR").map(|d| std::path::PathBuf::from(d).join("dpdk")),
    );
    for base in bases {
        let _ = std::fs::remove_dir(base.join(&prefix));
    }
}
