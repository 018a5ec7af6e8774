//! The control plane end to end with the real CNI client: `cnitool` (libcni, as container
//! runtimes use it) drives the `podlane` plugin chained with Debian's reference `tuning`
//! plugin; pods are network namespaces; traffic goes through `podlane-fastpath`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{cluster_yaml, result_json, Node};

const SERVICES: &str = "  - namespace: kube-system\n    name: kube-dns\n    cluster_ip: 10.96.0.10\n    ports: [{port: 53, protocol: UDP, target_port: 5353}]\n    endpoints: [{ip: 10.244.1.3}, {ip: 10.244.1.4}]\n";

fn udp_echo_server(node: &Node, netns: &str) -> std::process::Child {
    Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args([
            "python3",
            "-c",
            "import socket\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',5353))\n\
             while True:\n\
             \x20 d,a=s.recvfrom(2048)\n\
             \x20 s.sendto(b'from '+socket.inet_aton(a[0])+d,a)\n",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("echo server: {e}\n{}", node.logs()))
}

#[test]
fn cnitool_attaches_pods_that_talk_through_the_fast_path() {
    let mut node = Node::start("e", &cluster_yaml("10.244.1.0/24", SERVICES), 64);
    let ns_a = node.netns("a");
    let ns_b = node.netns("b");
    let ns_c = node.netns("c");

    // ADD through the real client, chained with `tuning`.
    let ra = result_json(&node.cnitool("add", &ns_a));
    let rb = result_json(&node.cnitool("add", &ns_b));
    let rc = result_json(&node.cnitool("add", &ns_c));
    let ip = |r: &serde_json::Value| r["ips"][0]["address"].as_str().unwrap().to_string();
    assert_eq!(ip(&ra), "10.244.1.2/24", "{ra}");
    assert_eq!(ip(&rb), "10.244.1.3/24");
    assert_eq!(ip(&rc), "10.244.1.4/24");
    assert_eq!(ra["cniVersion"], "1.0.0");
    assert_eq!(ra["ips"][0]["gateway"], "10.244.1.1");
    assert_eq!(ra["interfaces"][0]["name"], "eth0");
    assert_eq!(ra["interfaces"][0]["mac"], "0a:58:0a:f4:01:02");
    assert_eq!(ra["interfaces"][0]["sandbox"], ns_a.as_str());
    // The chained reference plugin ran after podlane on the interface podlane made.
    let rp = node.exec(&ns_a, &["sysctl", "-n", "net.ipv4.conf.eth0.rp_filter"]);
    assert_eq!(String::from_utf8_lossy(&rp.stdout).trim(), "0");

    // CHECK (libcni passes the cached prevResult).
    for ns in [&ns_a, &ns_b, &ns_c] {
        let out = node.cnitool("check", ns);
        assert!(
            out.status.success(),
            "CHECK {ns}: {:?}\n{}",
            out,
            node.logs()
        );
    }

    // Pod to pod through the fast path (the gateway ARP is answered by the fast path).
    let ping = node.exec(
        &ns_a,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.244.1.3"],
    );
    assert!(
        ping.status.success(),
        "ping A→B: {}\n{}",
        String::from_utf8_lossy(&ping.stdout),
        node.logs()
    );

    // ClusterIP with two backends answers a UDP client in a third pod, from the VIP. The 40
    // sockets stay open, so the kernel gives each its own source port (a closed one's port can
    // come back, and its flow would then hit the entry already there): 40 flows.
    let mut servers = vec![udp_echo_server(&node, &ns_b), udp_echo_server(&node, &ns_c)];
    std::thread::sleep(Duration::from_millis(300));
    let client = node.exec(
        &ns_a,
        &[
            "python3",
            "-c",
            "import socket\n\
             seen=set()\n\
             socks=[]\n\
             for i in range(40):\n\
             \x20 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             \x20 socks.append(s)\n\
             \x20 s.settimeout(2)\n\
             \x20 s.sendto(b'q',('10.96.0.10',53))\n\
             \x20 d,a=s.recvfrom(2048)\n\
             \x20 assert a==('10.96.0.10',53), a\n\
             \x20 assert d[:5]==b'from ' and socket.inet_ntoa(d[5:9])=='10.244.1.2', d\n\
             \x20 seen.add(s.getsockname()[1]%2)\n\
             print('ok', len(seen))\n",
        ],
    );
    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    assert!(
        client.status.success(),
        "UDP via ClusterIP: {}{}\n{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr),
        node.logs()
    );
    let stats = node.get("/v1/fastpath/stats");
    let ct_new = stats["counters"]["ct_new"].as_u64().unwrap_or(0);
    assert!(
        ct_new >= 40,
        "one conntrack entry per client socket: {stats}"
    );

    // The CLI reads the same state, as tables and as JSON.
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_podlanectl"))
            .args(["--server", &node.http])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "podlanectl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let pods_json: serde_json::Value = serde_json::from_str(&ctl(&["pods", "--json"])).unwrap();
    assert_eq!(pods_json.as_array().unwrap().len(), 3);
    let table = ctl(&["pods"]);
    assert!(
        table.contains("10.244.1.3") && table.contains("default/test"),
        "{table}"
    );
    let svcs = ctl(&["services"]);
    assert!(
        svcs.contains("kube-system/kube-dns  10.96.0.10")
            && svcs.contains("port 53/UDP → 5353")
            && svcs.contains("backend 10.244.1.4 (ready)"),
        "{svcs}"
    );
    // The 40 client sockets' flows, each client → VIP:53 rewritten to a backend's :5353.
    let ct: serde_json::Value = serde_json::from_str(&ctl(&["conntrack", "--json"])).unwrap();
    let flows = ct["flows"].as_array().unwrap();
    assert!(ct["total"].as_u64().unwrap() >= 40, "{ct}");
    let dns: Vec<_> = flows
        .iter()
        .filter(|f| f["orig_dst"] == "10.96.0.10:53" && f["proto"] == "udp")
        .collect();
    assert!(dns.len() >= 40, "{ct}");
    assert!(
        dns.iter().all(|f| {
            let b = f["reply_src"].as_str().unwrap();
            (b == "10.244.1.3:5353" || b == "10.244.1.4:5353")
                && f["orig_src"].as_str().unwrap().starts_with("10.244.1.2:")
                && f["state"] == "replied"
        }),
        "{dns:?}"
    );
    let table = ctl(&["conntrack", "--limit", "5"]);
    assert!(
        table.contains("10.96.0.10:53") && table.contains("ct_new"),
        "{table}"
    );
    let counters = ctl(&["counters"]);
    assert!(
        counters.contains("tap:eth0") && counters.contains("ct_new"),
        "{counters}"
    );
    assert!(ctl(&["nodes"]).contains("node-b"));
    assert!(ctl(&["ipam"]).contains("10.244.1.0/24"));

    // Metrics carry the per-reason and per-port counters and the CNI latency.
    let (_, m) = node.api("GET", "/metrics", "");
    let m = m.as_str().unwrap_or_default().to_string();
    assert!(
        m.contains("podlane_fastpath_drops_total{node=\"node-a\",reason=\"spoofed_ip\"}"),
        "{m}"
    );
    assert!(
        m.contains(
            "podlane_port_packets_total{node=\"node-a\",port=\"tap:eth0\",role=\"pod\",pod_port=\"0\",dir=\"rx\"}"
        ),
        "{m}"
    );
    assert!(
        m.contains("podlane_cni_requests_total{node=\"node-a\",command=\"Add\",code=\"0\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("podlane_table_entries{node=\"node-a\",table=\"pods\"} 3"),
        "{m}"
    );

    // The fast path keeps forwarding while the control daemon is down.
    node.kill_control();
    let ping = node.exec(
        &ns_a,
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.244.1.4"],
    );
    assert!(
        ping.status.success(),
        "forwarding stopped with the daemon down"
    );
    node.start_control();

    // DEL: B stops receiving, its IP returns to the pool; repeated DEL succeeds.
    let del = node.cnitool("del", &ns_b);
    assert!(del.status.success(), "{del:?}");
    let del = node.cnitool("del", &ns_b);
    assert!(del.status.success(), "repeated DEL: {del:?}");
    let ping = node.exec(&ns_a, &["ping", "-c", "1", "-W", "1", "10.244.1.3"]);
    assert!(!ping.status.success(), "B still answers after DEL");
    let links = node.exec(&ns_b, &["ip", "-br", "link"]);
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("eth0"),
        "B's eth0 is gone"
    );
    let ipam = node.get("/v1/ipam");
    let allocated: Vec<&str> = ipam["allocated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    assert_eq!(allocated, ["10.244.1.2", "10.244.1.4"], "{ipam}");
    let state = node.get("/v1/fastpath/state");
    assert_eq!(
        state["state"]["pods"].as_array().unwrap().len(),
        2,
        "{state}"
    );

    // CHECK of the deleted attachment fails; DEL of an unknown container succeeds.
    let chk = node.cnitool("check", &ns_b);
    assert!(!chk.status.success());
    let ghost = node.plugin(
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "never-added"),
            ("CNI_IFNAME", "eth0"),
        ],
        &node.plugin_conf("1.0.0", ""),
    );
    assert!(ghost.status.success(), "{ghost:?}");

    // A fast-path restart: the daemon sees the new epoch, re-creates the pods' TAPs in their
    // namespaces and resyncs; the pods talk again without a new ADD.
    node.stop_fastpath();
    node.start_fastpath();
    let mut ok = false;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        let p = node.exec(&ns_a, &["ping", "-c", "1", "-W", "1", "10.244.1.4"]);
        if p.status.success() {
            ok = true;
            break;
        }
    }
    assert!(
        ok,
        "pods did not come back after a fast-path restart\n{}",
        node.logs()
    );
    let out = node.cnitool("check", &ns_a);
    assert!(out.status.success(), "CHECK after restart: {out:?}");

    for ns in [&ns_a, &ns_c] {
        assert!(node.cnitool("del", ns).status.success());
    }
    assert_eq!(node.get("/v1/pods").as_array().unwrap().len(), 0);
}

#[test]
fn bad_input_gets_the_right_cni_error_and_leaves_nothing() {
    let mut node = Node::start("b", &cluster_yaml("10.244.1.0/29", ""), 16);
    let code = |out: &std::process::Output| {
        assert!(!out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        v["code"].as_u64().unwrap()
    };
    let add_env = |id: &'static str, ns: &'static str| {
        vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", ns),
            ("CNI_IFNAME", "eth0"),
        ]
    };
    // A netns path that does not exist: container unknown (3).
    let out = node.plugin(
        &add_env("c0", "/var/run/netns/podlane-no-such"),
        &node.plugin_conf("1.0.0", ""),
    );
    assert_eq!(code(&out), 3, "{out:?}");
    // Exhausted range: a /29 has five pod addresses.
    let mut paths = Vec::new();
    for i in 0..6 {
        paths.push(node.netns(&format!("x{i}")));
    }
    for (i, ns) in paths.iter().enumerate().take(5) {
        let id = format!("c{}", i + 1);
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", id.as_str()),
            ("CNI_NETNS", ns.as_str()),
            ("CNI_IFNAME", "eth0"),
        ];
        let out = node.plugin(&env, &node.plugin_conf("0.4.0", ""));
        let v = result_json(&out);
        assert_eq!(v["ips"][0]["version"], "4", "0.4.0 result format: {v}");
    }
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c6"),
        ("CNI_NETNS", paths[5].as_str()),
        ("CNI_IFNAME", "eth0"),
    ];
    let out = node.plugin(&env, &node.plugin_conf("1.0.0", ""));
    assert_eq!(code(&out), 100, "exhausted: {out:?}");
    // Nothing half-made: five attachments, five ports, no interface in the sixth pod.
    assert_eq!(node.get("/v1/pods").as_array().unwrap().len(), 5);
    let stats = node.get("/v1/fastpath/stats");
    let pod_ports = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "pod")
        .count();
    assert_eq!(pod_ports, 5, "{stats}");
    let links = node.exec(&paths[5], &["ip", "-br", "link"]);
    assert!(!String::from_utf8_lossy(&links.stdout).contains("eth0"));

    // An invalid cluster change through the API is refused whole.
    let bad = cluster_yaml(
        "10.244.1.0/29",
        "  - {namespace: d, name: s, cluster_ip: 10.200.0.1, ports: [{port: 80, protocol: TCP}]}\n",
    );
    let (status, body) = node.api("PUT", "/v1/cluster", &bad);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("outside the service CIDR"));
    // And the pod CIDR cannot move under live pods.
    let (status, body) = node.api("PUT", "/v1/cluster", &cluster_yaml("10.244.9.0/24", ""));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        node.get("/v1/cluster")["nodes"][0]["pod_cidr"],
        "10.244.1.0/29"
    );

    // The cluster file is watched: a valid edit is applied (and reaches the fast path), an
    // invalid one is refused whole and the previous state stays.
    let file = node.dir.join("cluster.yaml");
    let svc = "  - {namespace: d, name: w, cluster_ip: 10.96.0.30, ports: [{port: 80, protocol: TCP}], endpoints: [{ip: 10.244.1.2}]}\n";
    std::fs::write(&file, cluster_yaml("10.244.1.0/29", svc)).unwrap();
    let has_w = |node: &Node| {
        node.get("/v1/fastpath/state")["state"]["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["frontend"]["ip"] == "10.96.0.30")
    };
    let t0 = std::time::Instant::now();
    while !has_w(&node) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "file edit not applied\n{}",
            node.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&file, "service_cidr: 10.96.0.0/12\nnodes: [{name: x}]\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(has_w(&node), "an invalid file must not change anything");
    assert_eq!(node.get("/v1/services").as_array().unwrap().len(), 1);
    assert!(
        node.logs().contains("refused, previous state kept"),
        "{}",
        node.logs()
    );

    // A garbage request on the daemon's CNI socket is answered, not fatal.
    {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(node.dir.join("cni.sock")).unwrap();
        s.write_all(b"\x00\xffgarbage").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        assert!(r.contains("\"code\":6"), "{r}");
    }
    assert_eq!(
        node.get("/healthz"),
        serde_json::Value::String("ok\n".into())
    );
}
