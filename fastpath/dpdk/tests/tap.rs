//! `TapPort` against the kernel: a TAP in a network namespace this test creates answers an
//! echo request the port writes; a read burst takes at most the frames asked for, the rest
//! waiting for the next; a frame of exactly an mbuf's room arrives whole, a larger one
//! is a counted receive error, not a cut frame; a write to a TAP whose link is down is a
//! counted transmit error, its mbuf freed; dropping the port deletes the device; a device
//! deleted under the port makes reads find nothing; every mbuf is back in the pool at the end.
//!
//! Needs root (CI runs as root) and iproute2; the EAL runs without hugepages and can be
//! initialised once per process, so this file holds one test.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dpdk::{Burst, Eal, EalConfig, PktPool, TapPort};
use fastpath::buf::PacketBuf;
use fastpath::wire::frame::{icmp_echo_frame, Addrs};
use fastpath::wire::MacAddr;

fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) {
    let o = sh(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.0]);
    }
}

fn assert_send_sync<T: Send + Sync>() {}

/// Receives until `f` accepts a frame or a second passes; returns the frame.
fn rx_until(tap: &TapPort, pool: &PktPool, f: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        let mut b = Burst::new();
        tap.rx_burst(pool, &mut b);
        if let Some(m) = b.iter().find(|m| f(m.data())) {
            return Some(m.data().to_vec());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn tap_port_reads_and_writes_frames_in_a_namespace() {
    assert_send_sync::<TapPort>();
    let id = std::process::id();
    let ns = format!("pl-taptest-{id}");
    let name = format!("pltt{}", id % 1_000_000);
    let _guard = Netns(ns.clone());
    ok(&["ip", "netns", "add", &ns]);

    for bad in ["", "sixteen-bytes-xx", "a/b", "a:b", "a b"] {
        assert!(TapPort::create(bad).is_err(), "{bad:?} refused");
    }

    let eal = Eal::init(&EalConfig::for_tests(&format!("podlane-taptest-{id}"), &[])).unwrap();
    let pool = PktPool::new("taptest", 1023, 32).unwrap();
    let tap = TapPort::create(&name).unwrap();
    assert_eq!(tap.name(), name);
    assert!(sh(&["ip", "link", "show", "dev", &name]).status.success());
    // A second open of the same name is refused: the TAP is held.
    assert!(TapPort::create(&name).is_err());

    // Into the namespace, as the control daemon does with a pod's TAP; no IPv6 chatter.
    let (tap_mac, peer_mac) = ("02:00:00:00:00:01", "02:00:00:00:00:02");
    ok(&["ip", "link", "set", "dev", &name, "netns", &ns]);
    ok(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
    ]);
    let nsip = |more: &[&str]| {
        let mut v = vec!["ip", "-n", ns.as_str()];
        v.extend_from_slice(more);
        ok(&v);
    };
    nsip(&[
        "link", "set", "dev", &name, "address", tap_mac, "mtu", "9000",
    ]);
    nsip(&["addr", "add", "10.99.0.1/24", "dev", &name]);
    nsip(&["link", "set", "dev", &name, "up"]);
    nsip(&[
        "neigh",
        "add",
        "10.99.0.2",
        "lladdr",
        peer_mac,
        "dev",
        &name,
        "nud",
        "permanent",
    ]);

    // An echo request written by the port is answered by the namespace's kernel.
    let a = Addrs::new(
        peer_mac.parse::<MacAddr>().unwrap(),
        tap_mac.parse::<MacAddr>().unwrap(),
        "10.99.0.2".parse().unwrap(),
        "10.99.0.1".parse().unwrap(),
    );
    let req = icmp_echo_frame(&a, true, 0x77, 1, b"podlane tap test");
    let mut b = Burst::new();
    b.push(pool.alloc_frame(&req).unwrap()).unwrap();
    assert_eq!(tap.tx_burst(&mut b), 1);
    assert!(b.is_empty(), "a written frame leaves the burst");
    let reply = rx_until(&tap, &pool, |f| {
        f.len() >= 34 && f[12..14] == [0x08, 0x00] && f[23] == 1 && f[34] == 0
    })
    .expect("an echo reply");
    assert_eq!(&reply[0..6], &a.src_mac.0, "to the peer's MAC");
    assert_eq!(&reply[26..30], &[10, 99, 0, 1], "from the TAP's address");
    assert_eq!(&reply[reply.len() - 16..], b"podlane tap test");
    let s = tap.stats();
    assert_eq!((s.tx_packets, s.tx_bytes), (1, req.len() as u64));
    assert!(
        s.rx_packets >= 1 && s.rx_bytes >= reply.len() as u64,
        "{s:?}"
    );

    // At most `max` frames per read burst (`[queues] burst`): three echo requests from the
    // namespace (to a neighbour that never answers) are taken two, then one; none is lost.
    let mut pings = Command::new("ip")
        .args([
            "netns", "exec", &ns, "ping", "-c", "3", "-i", "0.01", "-W", "1",
        ])
        .args(["10.99.0.2"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // ping ends a second after its last request (-W 1): all three are queued by then.
    let _ = pings.wait();
    let echo_request = |f: &[u8]| f.len() >= 35 && f[23] == 1 && f[34] == 8;
    let mut b = Burst::new();
    assert_eq!(tap.rx_burst_max(&pool, &mut b, 2), 2);
    assert!(b.iter().all(|m| echo_request(m.data())), "the first two");
    let mut rest = Burst::new();
    assert_eq!(
        tap.rx_burst_max(&pool, &mut rest, usize::MAX),
        1,
        "the third"
    );
    assert!(echo_request(rest[0].data()));
    drop((b, rest));

    // A frame of exactly an mbuf's room (2,048 bytes) arrives whole; a 4,042-byte one
    // (MTU 9000) does not fit: a receive error.
    let before = tap.stats().rx_errors;
    let ping = |size: &str| {
        Command::new("ip")
            .args([
                "netns", "exec", &ns, "ping", "-c", "1", "-W", "1", "-s", size,
            ])
            .args(["10.99.0.2"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut p = ping("2006");
    let full = rx_until(&tap, &pool, |f| f.len() == 2048).expect("a 2,048-byte frame");
    assert_eq!(
        u16::from_be_bytes([full[16], full[17]]),
        2034,
        "IP total length"
    );
    let _ = p.wait();
    assert_eq!(tap.stats().rx_errors, before);
    let mut ping = ping("4000");
    let t0 = Instant::now();
    while tap.stats().rx_errors == before && t0.elapsed() < Duration::from_secs(2) {
        let mut b = Burst::new();
        tap.rx_burst(&pool, &mut b);
        assert!(
            b.iter().all(|m| m.data().len() <= 2048),
            "no truncated frame handed on"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = ping.wait();
    assert_eq!(tap.stats().rx_errors, before + 1);

    // Link down: the kernel refuses the write; the frame is counted and freed.
    nsip(&["link", "set", "dev", &name, "down"]);
    let mut b = Burst::new();
    b.push(pool.alloc_frame(&req).unwrap()).unwrap();
    let errors = tap.stats().tx_errors;
    assert_eq!(tap.tx_burst(&mut b), 0);
    assert!(
        b.is_empty(),
        "a failed frame is freed, not left for a retry"
    );
    assert_eq!(tap.stats().tx_errors, errors + 1);
    // Nothing to read from a down TAP: EAGAIN, not an error.
    let mut b = Burst::new();
    assert_eq!(tap.rx_burst(&pool, &mut b), 0);
    assert_eq!(tap.stats().rx_errors, before + 1);
    // What an idle pod port costs the worker per poll: one mbuf allocated and freed and one
    // readv(2) answering EAGAIN.
    let n = 100_000;
    let t0 = Instant::now();
    for _ in 0..n {
        tap.rx_burst(&pool, &mut b);
    }
    println!(
        "TIMING tap_rx_burst_empty {:.0} ns per call",
        t0.elapsed().as_nanos() as f64 / f64::from(n)
    );

    // Closing the descriptor deletes the device, in whatever namespace it is.
    drop(tap);
    assert!(!sh(&["ip", "-n", &ns, "link", "show", "dev", &name])
        .status
        .success());

    // A TAP deleted under the port (its pod's netns went away): reads find nothing and are
    // not counted as errors per poll; writes fail, counted.
    let tap = TapPort::create(&name).unwrap();
    ok(&["ip", "link", "del", "dev", &name]);
    assert_eq!(tap.rx_burst(&pool, &mut b), 0);
    assert_eq!(tap.stats().rx_errors, 0);
    let mut w = Burst::new();
    w.push(pool.alloc_frame(&req).unwrap()).unwrap();
    assert_eq!(tap.tx_burst(&mut w), 0);
    assert!(w.is_empty());
    assert_eq!(tap.stats().tx_errors, 1);
    drop(tap);

    drop(b);
    assert_eq!(pool.in_use(), 0, "every mbuf back in the pool");
    drop(pool);
    eal.cleanup();
}
