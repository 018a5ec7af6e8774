//! Pod ports that are not DPDK ethdev ports, through the control socket: `podlane-fastpath`
//! creates 40 TAP pod ports (`AddPort tap:IFNAME`; Debian's DPDK has 32 ethdev slots), two of
//! them, beyond the 32nd, become pods in network namespaces that ping each other and the
//! gateway and reach each other through a ClusterIP, then every port is removed and, at exit,
//! every mbuf is back in the pool. Only namespaces and TAP devices this test creates carry
//! traffic; nothing is added to the root namespace.
//!
//! Needs root (CI runs as root), iproute2 and python3; the EAL runs without hugepages.

mod common;

use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fastpath::fixtures::*;
use fastpath::proto::{call, Request, Response};
use fastpath::tables::pods::PodSpec;
use fastpath::tables::services::{EndpointSpec, EndpointState};
use fastpath::update::Update;
use fastpath::wire::MacAddr;

fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) {
    let o = sh(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
}

fn link_exists(ifname: &str) -> bool {
    sh(&["ip", "link", "show", "dev", ifname]).status.success()
}

/// Removes on every exit path what the test made: the namespaces, and the daemon if it still
/// runs (its TAP devices go with it).
struct Cleanup {
    netns: Vec<String>,
    child: Option<std::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.netns {
            let _ = sh(&["ip", "netns", "del", n]);
        }
    }
}

fn port_ok(s: &mut UnixStream, req: &Request) {
    let r = call(s, req).unwrap();
    assert!(matches!(r, Response::Ok { .. }), "{req:?}: {r:?}");
}

fn port_err(s: &mut UnixStream, req: &Request, want: &str) {
    match call(s, req).unwrap() {
        Response::Error { message } => assert!(message.contains(want), "{req:?}: {message}"),
        other => panic!("{req:?}: {other:?}"),
    }
}

#[test]
fn forty_tap_pod_ports_through_the_control_socket() {
    const PORTS: u16 = 40;
    // Two pods on ports past the 32 ethdev slots.
    const A_PORT: u16 = 33;
    const B_PORT: u16 = 39;
    let t_start = Instant::now();
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("podlane-tapports-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("fastpath.sock");
    let stats_json = dir.join("stats.json");
    let (ns_a, ns_b) = (format!("pl-tp-a-{id}"), format!("pl-tp-b-{id}"));
    let mut guard = Cleanup {
        netns: vec![ns_a.clone(), ns_b.clone()],
        child: None,
    };
    ok(&["ip", "netns", "add", &ns_a]);
    ok(&["ip", "netns", "add", &ns_b]);
    // ≤ 15 bytes: "plt" + 5 digits + "x" + 2 digits.
    let tap = |i: u16| format!("plt{}x{i}", id % 100_000);

    let node = common::node_section();
    let cfg = format!(
        "control_socket = \"{}\"\n[eal]\nlcores = \"0-1\"\nno_huge = true\nmemory_mb = 512\nfile_prefix = \"podlane-tapports-{id}\"\nlog_level = \"lib.eal:error\"\nno_pci = true\n{node}\n\
         [capacities]\nmax_pod_ports = 64\nmax_nodes = 16\nmax_services = 64\nmax_endpoints = 256\nconntrack_entries = 4096\n\
         [queues]\nrx_desc = 64\ntx_desc = 64\nmbufs = 4095\n\
         [[ports]]\ndevargs = \"net_null0,no-rx=1\"\nrole = \"uplink\"\n",
        sock.display()
    );
    let cfg_path = dir.join("fastpath.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_podlane-fastpath"))
        .arg("--config")
        .arg(&cfg_path)
        .arg("--stats-json")
        .arg(&stats_json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    guard.child = Some(child);
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "control socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = UnixStream::connect(&sock).unwrap();

    // ---- 40 TAP pod ports, more than DPDK's 32 ethdev slots ---------------------------------
    let t_add = Instant::now();
    for i in 0..PORTS {
        port_ok(
            &mut s,
            &Request::AddPort {
                devargs: format!("tap:{}", tap(i)),
                pod_port: i,
            },
        );
    }
    let add_ms = t_add.elapsed().as_secs_f64() * 1e3;
    for i in 0..PORTS {
        assert!(link_exists(&tap(i)), "{} exists", tap(i));
    }
    port_err(
        &mut s,
        &Request::AddPort {
            devargs: "tap:whatever".into(),
            pod_port: 3,
        },
        "already attached",
    );
    port_err(
        &mut s,
        &Request::AddPort {
            devargs: "tap:".into(),
            pod_port: 50,
        },
        "empty",
    );
    port_err(
        &mut s,
        &Request::AddPort {
            devargs: "tap:a-name-far-too-long".into(),
            pod_port: 50,
        },
        "15 bytes",
    );
    let Response::Stats { ports, .. } = call(&mut s, &Request::Stats).unwrap() else {
        panic!("stats")
    };
    let pods: Vec<_> = ports.iter().filter(|p| p.role == "pod").collect();
    assert_eq!(pods.len(), usize::from(PORTS), "{ports:?}");
    assert!(pods
        .iter()
        .any(|p| p.pod_port == Some(B_PORT) && p.name == format!("tap:{}", tap(B_PORT))));

    // ---- two of them become pods A and B ----------------------------------------------------
    // The pod side of an interface named eth0 in `ns`, as the CNI daemon configures it.
    let configure = |ns: &str, mac: MacAddr, ip: Ipv4Addr| {
        let script = format!(
            "link set dev eth0 address {mac} mtu 1450\n\
             addr add {ip}/24 dev eth0\n\
             link set dev eth0 up\n\
             link set dev lo up\n\
             route add default via 10.244.1.1 dev eth0 onlink\n"
        );
        let mut c = Command::new("ip")
            .args(["-n", ns, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), script.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "ip -batch in {ns}: {}", text(&o));
    };
    for (port, ns, mac, ip) in [
        (A_PORT, &ns_a, POD_A_MAC, POD_A_IP),
        (B_PORT, &ns_b, POD_B_MAC, POD_B_IP),
    ] {
        ok(&["ip", "link", "set", "dev", &tap(port), "netns", ns]);
        ok(&[
            "ip",
            "-n",
            ns,
            "link",
            "set",
            "dev",
            &tap(port),
            "name",
            "eth0",
        ]);
        configure(ns, mac, ip);
    }
    // The web Service (ClusterIP 10.96.0.20:80/TCP) backed by pod B only.
    let mut web = services().into_iter().find(|s| s.frontend == WEB).unwrap();
    web.endpoints = vec![EndpointSpec {
        ip: POD_B_IP,
        port: 8080,
        state: EndpointState::Ready,
    }];
    let r = call(
        &mut s,
        &Request::Apply {
            updates: vec![
                Update::AddPod(PodSpec {
                    ip: POD_A_IP,
                    mac: POD_A_MAC,
                    port: A_PORT,
                }),
                Update::AddPod(PodSpec {
                    ip: POD_B_IP,
                    mac: POD_B_MAC,
                    port: B_PORT,
                }),
                Update::AddService(web),
            ],
        },
    )
    .unwrap();
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");

    let ping = |ns: &str, more: &[&str]| {
        let mut v = vec![
            "ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2",
        ];
        v.extend_from_slice(more);
        sh(&v)
    };
    let p1 = ping(&ns_a, &["10.244.1.3"]);
    let p2 = ping(&ns_b, &["10.244.1.2"]);
    let p3 = ping(&ns_a, &["10.244.1.1"]); // the gateway answers in the fast path
    let p4 = ping(&ns_a, &["-s", "1400", "-M", "do", "10.244.1.3"]); // near-MTU frames
    for (what, p) in [
        ("A -> B", &p1),
        ("B -> A", &p2),
        ("A -> gateway", &p3),
        ("A -> B, 1428-byte packets", &p4),
    ] {
        assert!(
            p.status.success() && text(p).contains("3 received"),
            "{what}:\n{}",
            text(p)
        );
    }
    // TCP to the ClusterIP: DNAT to pod B:8080, whose answer comes back from the VIP. The
    // fast path verifies the TCP checksum of the new flow's first packet, which the pod's
    // kernel finished (the TAP has no IFF_VNET_HDR, so no offload is left to anyone).
    let server = Command::new("ip")
        .args(["netns", "exec", &ns_b, "python3", "-c"])
        .arg(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('10.244.1.3',8080))\ns.listen(1)\ns.settimeout(10)\nc,a=s.accept()\n\
             c.sendall(c.recv(100).upper())\nc.close()\n",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = {
        let t0 = Instant::now();
        loop {
            let o = sh(&[
                "ip",
                "netns",
                "exec",
                &ns_a,
                "python3",
                "-c",
                "import socket\ns=socket.create_connection(('10.96.0.20',80),timeout=5)\n\
                 s.sendall(b'hello web')\nd=s.recv(100)\nprint(d.decode(),s.getpeername()[0])\n",
            ]);
            // The server may not listen yet: refused, then try again.
            if o.status.success() || t0.elapsed() > Duration::from_secs(5) {
                break o;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let server = server.wait_with_output().unwrap();
    assert!(server.status.success(), "TCP server: {}", text(&server));
    assert!(client.status.success(), "TCP client: {}", text(&client));
    assert_eq!(
        String::from_utf8_lossy(&client.stdout).trim(),
        "HELLO WEB 10.96.0.20"
    );

    let Response::Stats {
        ports, counters, ..
    } = call(&mut s, &Request::Stats).unwrap()
    else {
        panic!("stats")
    };
    for p in [A_PORT, B_PORT] {
        let c = ports.iter().find(|c| c.pod_port == Some(p)).unwrap();
        assert!(
            c.rx_packets >= 10 && c.tx_packets >= 9,
            "TAP counters of pod port {p}: {c:?}"
        );
        assert_eq!((c.rx_errors, c.tx_errors), (0, 0), "{c:?}");
    }
    let counters = counters.nonzero();
    println!("counters: {counters:?}");

    // ---- every port removed: the pods' interfaces go with their TAPs -----------------------
    let t_rm = Instant::now();
    for i in 0..PORTS {
        port_ok(&mut s, &Request::RemovePort { pod_port: i });
    }
    let rm_ms = t_rm.elapsed().as_secs_f64() * 1e3;
    port_err(
        &mut s,
        &Request::RemovePort { pod_port: A_PORT },
        "not attached",
    );
    for ns in [&ns_a, &ns_b] {
        let o = sh(&["ip", "-n", ns, "link", "show", "dev", "eth0"]);
        assert!(!o.status.success(), "eth0 left in {ns}: {}", text(&o));
    }
    for i in 0..PORTS {
        assert!(!link_exists(&tap(i)), "{} left behind", tap(i));
    }
    let Response::Stats { ports, .. } = call(&mut s, &Request::Stats).unwrap() else {
        panic!("stats")
    };
    assert!(ports.iter().all(|p| p.role != "pod"), "{ports:?}");
    // New TAPs for the same pod ports, made inside the pods' namespaces (`tap:NAME@NETNS`):
    // the worker watches the new descriptors (its epoll set follows the port set, whatever
    // numbers the descriptors got) and the pods talk again.
    for (port, ns, mac, ip) in [
        (A_PORT, &ns_a, POD_A_MAC, POD_A_IP),
        (B_PORT, &ns_b, POD_B_MAC, POD_B_IP),
    ] {
        port_ok(
            &mut s,
            &Request::AddPort {
                devargs: format!("tap:eth0@/var/run/netns/{ns}"),
                pod_port: port,
            },
        );
        configure(ns, mac, ip);
    }
    let p = ping(&ns_a, &["10.244.1.3"]);
    assert!(
        p.status.success() && text(&p).contains("3 received"),
        "A -> B on new TAPs:\n{}",
        text(&p)
    );
    for port in [A_PORT, B_PORT] {
        port_ok(&mut s, &Request::RemovePort { pod_port: port });
    }
    // A name can be used again at once; this one is still open at shutdown, which closes it.
    port_ok(
        &mut s,
        &Request::AddPort {
            devargs: format!("tap:{}", tap(0)),
            pod_port: 0,
        },
    );
    assert!(link_exists(&tap(0)));
    drop(s);

    // ---- shutdown: every mbuf back in the pool ---------------------------------------------
    let (status, out) = common::stop_with_sigterm(guard.child.take().unwrap());
    assert!(status.success(), "exit {status:?}: {}", text(&out));
    assert!(!link_exists(&tap(0)), "the last TAP closed at exit");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_json).unwrap()).unwrap();
    assert_eq!(report["mbufs_in_use"], 0, "mbufs leaked: {report}");
    assert!(report["rx_packets"].as_u64().unwrap() >= 20, "{report}");
    println!(
        "TIMING tap_ports: {PORTS} AddPort {add_ms:.1} ms ({:.2} ms each), {PORTS} RemovePort {rm_ms:.1} ms; whole test {:.1} s",
        add_ms / f64::from(PORTS),
        t_start.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
