//! The node kernel's routes through the host path (`control/src/hostroutes.rs`), against a real
//! kernel: in a private network namespace this test creates, with a veth standing in
//! for the fast path's host-path TAP (the root namespace is never touched).

use std::collections::BTreeSet;
use std::process::Command;

use control::cluster::ClusterSpec;
use control::hostroutes::{self, HostRoute, HostRoutes, RT_PROTO};

const CLUSTER: &str = "service_cidr: 10.96.0.0/12\n\
nodes:\n\
\x20 - {name: node-a, underlay_ip: 10.1.0.10, underlay_mac: \"02:00:0a:01:00:0a\", vtep_mac: \"02:76:74:65:70:0a\", pod_cidr: 10.244.1.0/24}\n\
\x20 - {name: node-b, underlay_ip: 10.1.0.11, underlay_mac: \"02:00:0a:01:00:0b\", vtep_mac: \"02:76:74:65:70:0b\", pod_cidr: 10.244.2.0/24}\n\
services: []\n";

/// A network namespace of the test's own, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("plhr-{tag}-{}", std::process::id() % 100_000);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        let ns = Netns(name);
        // As on any host: loopback up (which creates the local routing table the kernel checks
        // an onlink gateway against).
        ns.ip(&["link", "set", "lo", "up"]);
        ns.add_host0();
        ns
    }

    /// The interface standing in for the host-path TAP: a veth (this kernel may lack the
    /// dummy driver), both ends up so it has a carrier as a running TAP does, with the node's
    /// address as the lab and the DaemonSet give it (a /32 here, so that it adds no route).
    /// Without an address of its own, the interface would lose every route through it with
    /// the VTEP address the daemon puts there, the kernel disabling IPv4 on an interface
    /// whose last address goes.
    fn add_host0(&self) {
        self.ip(&[
            "link", "add", "host0", "type", "veth", "peer", "name", "host0p",
        ]);
        self.ip(&["address", "add", "10.1.0.10/32", "dev", "host0"]);
        self.ip(&["link", "set", "host0p", "up"]);
        self.ip(&["link", "set", "host0", "up"]);
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The IPv4 addresses on host0 (`address/prefix`, sorted).
    fn addresses(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ip(&["-4", "-o", "address", "show", "dev", "host0"])
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|&x| x == "inet")
                    .and_then(|_| w.next())
                    .map(String::from)
            })
            .collect();
        v.sort();
        v
    }

    /// The IPv4 routes through host0, as `ip route` prints them (one per line, sorted).
    fn routes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ip(&["-4", "route", "show", "dev", "host0"])
            .lines()
            .map(|l| l.trim().to_string())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn route(dst: &str, via: &str) -> HostRoute {
    HostRoute {
        dst: dst.parse().unwrap(),
        via: via.parse().unwrap(),
        src: None,
    }
}

/// [`route`] from source address `src`.
fn route_from(dst: &str, via: &str, src: &str) -> HostRoute {
    HostRoute {
        src: Some(src.parse().unwrap()),
        ..route(dst, via)
    }
}

#[test]
fn every_pod_cidr_and_the_service_cidr_go_through_the_gateway() {
    let cluster = ClusterSpec::parse(CLUSTER).unwrap().to_cluster().unwrap();
    let want = hostroutes::wanted(&cluster, "node-a");
    assert_eq!(
        want,
        BTreeSet::from([
            route("10.244.1.0/24", "10.244.1.1"),
            route_from("10.244.2.0/24", "10.244.1.1", "10.244.1.0"),
            route("10.96.0.0/12", "10.244.1.1"),
        ])
    );
    // Node B's view goes through its own gateway, to node A's pods from its own VTEP address.
    assert_eq!(
        hostroutes::wanted(&cluster, "node-b"),
        BTreeSet::from([
            route_from("10.244.1.0/24", "10.244.2.1", "10.244.2.0"),
            route("10.244.2.0/24", "10.244.2.1"),
            route("10.96.0.0/12", "10.244.2.1"),
        ])
    );
    // An unknown node (its gateway unknown) wants none.
    assert!(hostroutes::wanted(&cluster, "node-x").is_empty());
}

#[test]
fn routes_follow_the_cluster_and_survive_restarts_and_a_lost_interface() {
    let ns = Netns::new("sync");
    // Someone else's route through the same interface is never touched.
    ns.ip(&["route", "add", "192.0.2.0/24", "dev", "host0"]);
    let cluster = ClusterSpec::parse(CLUSTER).unwrap().to_cluster().unwrap();
    let mut hr = HostRoutes::in_netns("host0", &ns.0);
    hr.sync(&hostroutes::wanted(&cluster, "node-a")).unwrap();
    assert_eq!(hr.len(), 3);
    let p = RT_PROTO;
    assert_eq!(
        ns.routes(),
        vec![
            format!("10.244.1.0/24 via 10.244.1.1 proto {p} onlink "),
            format!("10.244.2.0/24 via 10.244.1.1 proto {p} src 10.244.1.0 onlink "),
            format!("10.96.0.0/12 via 10.244.1.1 proto {p} onlink "),
            "192.0.2.0/24 scope link ".to_string(),
        ]
        .into_iter()
        .map(|s| s.trim().to_string())
        .collect::<Vec<_>>()
    );
    // The VTEP address the route to node B's pods is from: on the interface, as a /32.
    assert_eq!(
        ns.addresses(),
        vec!["10.1.0.10/32".to_string(), "10.244.1.0/32".to_string()]
    );
    // Taken away (by hand), the kernel takes the route from it too; the check puts both back.
    ns.ip(&["address", "del", "10.244.1.0/32", "dev", "host0"]);
    assert!(!ns.routes().iter().any(|r| r.starts_with("10.244.2.0/24")));
    hr.forget();
    hr.sync(&hostroutes::wanted(&cluster, "node-a")).unwrap();
    assert_eq!(hr.read().unwrap(), hostroutes::wanted(&cluster, "node-a"));
    assert_eq!(
        ns.addresses(),
        vec!["10.1.0.10/32".to_string(), "10.244.1.0/32".to_string()]
    );

    // A node joins, another leaves: a new daemon (a restart) reads what the last one left and
    // changes only the difference.
    let joined = CLUSTER.replace(
        "  - {name: node-b, underlay_ip: 10.1.0.11, underlay_mac: \"02:00:0a:01:00:0b\", vtep_mac: \"02:76:74:65:70:0b\", pod_cidr: 10.244.2.0/24}\n",
        "  - {name: node-c, underlay_ip: 10.1.0.12, underlay_mac: \"02:00:0a:01:00:0c\", vtep_mac: \"02:76:74:65:70:0c\", pod_cidr: 10.244.3.0/24}\n",
    );
    let cluster = ClusterSpec::parse(&joined).unwrap().to_cluster().unwrap();
    let mut restarted = HostRoutes::in_netns("host0", &ns.0);
    assert_eq!(
        restarted.read().unwrap(),
        hostroutes::wanted(
            &ClusterSpec::parse(CLUSTER).unwrap().to_cluster().unwrap(),
            "node-a"
        )
    );
    let want = hostroutes::wanted(&cluster, "node-a");
    restarted.sync(&want).unwrap();
    assert_eq!(restarted.read().unwrap(), want);
    let routes = ns.routes();
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("10.244.3.0/24 via 10.244.1.1")),
        "{routes:?}"
    );
    assert!(
        !routes.iter().any(|r| r.starts_with("10.244.2.0/24")),
        "{routes:?}"
    );
    assert!(
        routes.iter().any(|r| r.starts_with("192.0.2.0/24")),
        "{routes:?}"
    );

    // The interface goes (a fast-path restart takes its TAP, and the kernel the routes through
    // it): the sync fails, with the reason; once it is back, a sync after `forget` (the
    // daemon's periodic check) puts the routes back.
    ns.ip(&["link", "del", "host0"]);
    restarted.forget();
    let err = restarted.sync(&want).unwrap_err();
    assert!(err.contains("host0"), "{err}");
    ns.add_host0();
    // (Its owner puts the other route back too: the kernel took it with the interface.)
    ns.ip(&["route", "add", "192.0.2.0/24", "dev", "host0"]);
    restarted.forget();
    restarted.sync(&want).unwrap();
    assert_eq!(restarted.read().unwrap(), want);

    // A prefix someone else routes through the interface is theirs: the sync reports it and
    // adds the rest; once theirs is gone, the next sync adds ours.
    restarted.sync(&BTreeSet::new()).unwrap();
    ns.ip(&["route", "add", "10.96.0.0/12", "dev", "host0"]);
    let err = restarted.sync(&want).unwrap_err();
    assert!(err.contains("File exists"), "{err}");
    let routes = ns.routes();
    assert!(
        routes.iter().any(|r| r == "10.96.0.0/12 scope link"),
        "{routes:?}"
    );
    assert_eq!(restarted.read().unwrap().len(), want.len() - 1);
    // What it counts as installed is what the kernel has, the failed line left out.
    assert_eq!(restarted.len(), want.len() - 1);
    ns.ip(&["route", "del", "10.96.0.0/12", "dev", "host0"]);
    restarted.forget();
    restarted.sync(&want).unwrap();
    assert_eq!(restarted.read().unwrap(), want);

    // Nothing wanted (the node left the cluster): every route of ours goes, and the address
    // they were from; others stay.
    restarted.sync(&BTreeSet::new()).unwrap();
    assert!(restarted.read().unwrap().is_empty());
    assert_eq!(ns.routes(), vec!["192.0.2.0/24 scope link".to_string()]);
    assert_eq!(ns.addresses(), vec!["10.1.0.10/32".to_string()]);
}

/// The environment variable that carries the namespace to the inner half of
/// [`the_daemon_keeps_its_routes_and_reports_them`].
const INNER_NETNS: &str = "PODLANE_HOST_ROUTES_NETNS";

/// The daemon's own sync (`Daemon::sync_host_routes`, as its main loop runs it) and what its
/// metrics say. The daemon routes in its own namespace, so the test runs its inner half
/// ([`daemon_in_a_private_netns`]) again inside a namespace it creates (`ip netns exec`).
#[test]
fn the_daemon_keeps_its_routes_and_reports_them() {
    let ns = Netns::new("daemon");
    // Someone else's route for the Service CIDR: the daemon's add fails, and is counted.
    ns.ip(&["route", "add", "10.96.0.0/12", "dev", "host0"]);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "daemon_in_a_private_netns", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(INNER_NETNS, &ns.0)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    // What the daemon left: its three routes, the foreign one gone as the inner half removed it.
    let p = RT_PROTO;
    assert_eq!(
        ns.routes(),
        vec![
            format!("10.244.1.0/24 via 10.244.1.1 proto {p} onlink"),
            format!("10.244.2.0/24 via 10.244.1.1 proto {p} src 10.244.1.0 onlink"),
            format!("10.96.0.0/12 via 10.244.1.1 proto {p} onlink"),
        ]
    );
    assert_eq!(
        ns.addresses(),
        vec!["10.1.0.10/32".to_string(), "10.244.1.0/32".to_string()]
    );
}

#[test]
#[ignore = "the inner half of the_daemon_keeps_its_routes_and_reports_them, run in its netns"]
fn daemon_in_a_private_netns() {
    use control::config::Config;
    use control::daemon::Daemon;
    let ns = std::env::var(INNER_NETNS)
        .expect("run by the_daemon_keeps_its_routes_and_reports_them, not alone");
    // Never in the root namespace: this process must be in the namespace the outer half made.
    let me = std::process::id().to_string();
    let here = Command::new("ip")
        .args(["netns", "identify", &me])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&here.stdout).trim(), ns);

    let dir = std::env::temp_dir().join(format!("podlane-host-routes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cluster.yaml"), CLUSTER).unwrap();
    let cfg = Config::parse(&format!(
        "node_name = \"node-a\"\nstate_dir = \"{d}/state\"\ncluster_file = \"{d}/cluster.yaml\"\n\
         fastpath_socket = \"{d}/none.sock\"\nhost_interface = \"host0\"\n",
        d = dir.display()
    ))
    .unwrap();
    let d = Daemon::open(cfg).unwrap();
    let metrics = |d: &Daemon| {
        let (status, body, _) = control::http::route(d, &tiny_http::Method::Get, "/metrics", "");
        assert_eq!(status, 200, "{body}");
        body
    };
    let has = |m: &str, line: &str| assert!(m.lines().any(|l| l == line), "{line} in:\n{m}");
    // The first sync: both pod CIDRs; the Service CIDR is someone else's, one failed sync.
    d.sync_host_routes();
    assert_eq!(d.host_routes(), Some((2, 1)));
    let m = metrics(&d);
    has(&m, "podlane_host_routes{node=\"node-a\"} 2");
    has(&m, "podlane_host_route_errors_total{node=\"node-a\"} 1");
    // Nothing changed and the kernel is not due a re-read: no new attempt, no new error.
    d.sync_host_routes();
    assert_eq!(d.host_routes(), Some((2, 1)));
    // The other route goes; the re-read of the kernel (every 5 s) finds the prefix free.
    let del = Command::new("ip")
        .args(["route", "del", "10.96.0.0/12", "dev", "host0"])
        .status()
        .unwrap();
    assert!(del.success());
    std::thread::sleep(std::time::Duration::from_millis(5_200));
    d.sync_host_routes();
    assert_eq!(d.host_routes(), Some((3, 1)));
    let m = metrics(&d);
    has(&m, "podlane_host_routes{node=\"node-a\"} 3");
    has(&m, "podlane_host_route_errors_total{node=\"node-a\"} 1");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
