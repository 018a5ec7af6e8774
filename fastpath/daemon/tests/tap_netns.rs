//! Two pods on one node, each a Linux network namespace behind a `net_tap` port, talk through
//! the fast path: a real `ping` both ways and a UDP request/answer. Only namespaces and TAP
//! devices this test creates carry the traffic; nothing is added to the root namespace.
//!
//! Needs root (CI runs as root) and iproute2; the EAL runs without hugepages.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daemon::worker::{PodPort, PortSet, Worker};
use dpdk::{Eal, EalConfig, PktPool, Port, PortConfig};
use fastpath::counters::Event;
use fastpath::fixtures::*;
use fastpath::pipeline::Pipeline;
use fastpath::rcu::Publisher;
use fastpath::tables::conntrack::Timeouts;

fn sh(args: &[&str]) -> std::process::Output {
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

/// Deletes the namespaces on every exit path (a TAP device moved into a namespace disappears
/// with it when DPDK closes the port).
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = sh(&["ip", "netns", "del", n]);
        }
    }
}

#[test]
fn two_pods_in_namespaces_ping_and_exchange_udp_through_the_fast_path() {
    let id = std::process::id();
    let (ns_a, ns_b) = (format!("pl-test-a-{id}"), format!("pl-test-b-{id}"));
    let (tap_a, tap_b) = (
        format!("pltapa{}", id % 100000),
        format!("pltapb{}", id % 100000),
    );
    let _guard = Netns(vec![ns_a.clone(), ns_b.clone()]);
    ok(&["ip", "netns", "add", &ns_a]);
    ok(&["ip", "netns", "add", &ns_b]);

    let eal = Eal::init(&EalConfig::for_tests(&format!("podlane-tap-{id}"), &[])).expect("EAL");
    let pool = Arc::new(PktPool::new("tap", 4095, 256).unwrap());
    let cfg = PortConfig::default();
    let start = |devargs: &str| {
        let pid = eal
            .attach(devargs)
            .unwrap_or_else(|e| panic!("{devargs}: {e}"));
        Arc::new(Port::start(pid, &cfg, &pool).unwrap())
    };
    let uplink = start("net_null0,no-rx=1");
    let pod = |p: Arc<Port>| Arc::new(PodPort::Eth(Arc::try_unwrap(p).unwrap()));
    let port_a = pod(start(&format!("net_tap0,iface={tap_a}")));
    let port_b = pod(start(&format!("net_tap1,iface={tap_b}")));

    // Each TAP's kernel end becomes a pod's eth0, with the pod's MAC, IP and default route.
    for (tap, ns, mac, ip) in [
        (&tap_a, &ns_a, POD_A_MAC, POD_A_IP),
        (&tap_b, &ns_b, POD_B_MAC, POD_B_IP),
    ] {
        ok(&["ip", "link", "set", tap, "netns", ns]);
        let ns_ip = |more: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", ns.as_str(), "ip"];
            v.extend_from_slice(more);
            ok(&v);
        };
        ns_ip(&["link", "set", tap, "name", "eth0"]);
        ns_ip(&["link", "set", "eth0", "address", &mac.to_string()]);
        ns_ip(&["link", "set", "eth0", "mtu", "1450"]);
        ns_ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ns_ip(&["link", "set", "eth0", "up"]);
        ns_ip(&["link", "set", "lo", "up"]);
        ns_ip(&[
            "route",
            "add",
            "default",
            "via",
            "10.244.1.1",
            "dev",
            "eth0",
        ]);
    }

    let w = node_a_writer();
    let pipeline = Pipeline::new(w.reader(), 4096, Timeouts::default());
    let counters = Arc::clone(pipeline.counters());
    let set = Publisher::new(PortSet {
        uplink,
        host: None,
        pods: vec![Some(port_a), Some(port_b)],
    });
    let mut worker = Worker::new(pipeline, set.reader(), 16);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_w = Arc::clone(&stop);
    let th = std::thread::spawn(move || {
        let mut now = 0;
        while !stop_w.load(Ordering::Relaxed) {
            if worker.poll(now) == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
            now += 1;
        }
        worker
    });

    let ping = |ns: &str, dst: &str| {
        sh(&[
            "ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst,
        ])
    };
    let p1 = ping(&ns_a, "10.244.1.3");
    let p2 = ping(&ns_b, "10.244.1.2");
    let p3 = ping(&ns_a, "10.244.1.1"); // the gateway answers in the fast path
                                        // UDP: pod B echoes in upper case; pod A checks the answer and its source.
    let server = Command::new("ip")
        .args(["netns", "exec", &ns_b, "python3", "-c"])
        .arg(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('10.244.1.3',9000))\n\
             s.settimeout(10)\nd,a=s.recvfrom(100)\ns.sendto(d.upper(),a)\n",
        )
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let client = sh(&[
        "ip", "netns", "exec", &ns_a, "python3", "-c",
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(5)\n\
         s.sendto(b'hello pod b',('10.244.1.3',9000))\nd,a=s.recvfrom(100)\nprint(d.decode(),a[0],a[1])\n",
    ]);
    let server = server.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    let worker = th.join().unwrap();
    let snap = counters.snapshot();
    drop(worker);
    for port in set.current().all() {
        port.close().unwrap();
    }

    let out = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(p1.status.success(), "pod A -> pod B ping:\n{}", out(&p1));
    assert!(out(&p1).contains("3 received"), "{}", out(&p1));
    assert!(p2.status.success(), "pod B -> pod A ping:\n{}", out(&p2));
    assert!(p3.status.success(), "pod A -> gateway ping:\n{}", out(&p3));
    assert!(server.status.success(), "UDP server: {}", out(&server));
    assert!(client.status.success(), "UDP client: {}", out(&client));
    assert_eq!(
        String::from_utf8_lossy(&client.stdout).trim(),
        "HELLO POD B 10.244.1.3 9000"
    );
    assert!(
        snap.event_count(Event::ArpReplied) >= 2,
        "pods resolved the gateway through proxy ARP"
    );
    assert!(snap.event_count(Event::IcmpEchoReplied) >= 3);
    assert!(snap.event_count(Event::TxPod) >= 14, "{:?}", snap.nonzero());
    // Every DPDK object goes before the EAL does (ports hold the pool).
    drop(set);
    drop(pool);
    eal.cleanup();
}
