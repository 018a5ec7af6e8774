//! A one-node podlane for the control plane's end-to-end tests: `podlane-fastpath` on
//! virtual devices (a null uplink, TAP pod ports it creates on request), `podlane-control`,
//! the CNI plugin installed as `podlane` in a private CNI_PATH with Debian's reference plugins,
//! and network namespaces for pods. Everything it makes is removed on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The reference client, built by `deploy/tools/build-cnitool.sh` (`deploy/setup-host.sh`
/// installs it as /usr/local/bin/cnitool); `CNITOOL` overrides.
pub fn cnitool() -> PathBuf {
    if let Ok(p) = std::env::var("CNITOOL") {
        return PathBuf::from(p);
    }
    for p in ["/usr/local/bin/cnitool", "/usr/bin/cnitool"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("cnitool not found: run deploy/setup-host.sh (or deploy/tools/build-cnitool.sh /usr/local/bin/cnitool)");
}

/// `podlane-fastpath`, built beside this test's binary by the workspace build.
pub fn fastpath_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("podlane-fastpath");
    assert!(
        p.exists(),
        "{} missing: build the workspace (cargo test --workspace builds it)",
        p.display()
    );
    p
}

/// A cluster file with this node (node-a, `pod_cidr`) and node-b, and `services` (YAML list
/// items, already indented by two spaces).
pub fn cluster_yaml(pod_cidr: &str, services: &str) -> String {
    format!(
        "service_cidr: 10.96.0.0/12\n\
         nodes:\n\
         \x20 - {{name: node-a, underlay_ip: 10.1.0.10, underlay_mac: \"02:00:0a:01:00:0a\", vtep_mac: \"02:76:74:65:70:0a\", pod_cidr: {pod_cidr}}}\n\
         \x20 - {{name: node-b, underlay_ip: 10.1.0.11, underlay_mac: \"02:00:0a:01:00:0b\", vtep_mac: \"02:76:74:65:70:0b\", pod_cidr: 10.244.2.0/24}}\n\
         services:\n{services}"
    )
}

/// One node under test.
#[derive(Debug)]
pub struct Node {
    /// Scratch directory.
    pub dir: PathBuf,
    /// Unique tag (namespaces, DPDK prefix).
    pub tag: String,
    /// HTTP API address.
    pub http: String,
    fastpath: Option<Child>,
    control: Option<Child>,
    netns: Vec<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Node {
    /// Starts the fast path and the control daemon with this cluster file.
    pub fn start(name: &str, cluster: &str, max_pod_ports: u16) -> Node {
        let tag = format!("pl{}{}", name, std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("podlane-e2e-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_podlane-cni"), dir.join("bin/podlane"))
            .unwrap();
        let http = format!("127.0.0.1:{}", free_port());
        let sample = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/fastpath.toml"
        ))
        .unwrap();
        let node_section: String = sample
            .lines()
            .skip_while(|l| !l.starts_with("[node]"))
            .take_while(|l| !l.starts_with("[capacities]"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(
            dir.join("fastpath.toml"),
            format!(
                "control_socket = \"{d}/fastpath.sock\"\n\
                 [eal]\nlcores = \"0-1\"\nno_huge = true\nmemory_mb = 1024\nfile_prefix = \"{tag}\"\nlog_level = \"error\"\nno_pci = true\n\
                 {node_section}\n\
                 [capacities]\nmax_pod_ports = {max_pod_ports}\nmax_nodes = 64\nmax_services = 16384\nmax_endpoints = 131072\nconntrack_entries = 16384\n\
                 [queues]\nrx_desc = 64\ntx_desc = 64\nmbufs = 32767\n\
                 [[ports]]\ndevargs = \"net_null_{tag},no-rx=1\"\nrole = \"uplink\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("control.toml"),
            format!(
                "node_name = \"node-a\"\nstate_dir = \"{d}/state\"\ncluster_file = \"{d}/cluster.yaml\"\n\
                 cni_socket = \"{d}/cni.sock\"\nfastpath_socket = \"{d}/fastpath.sock\"\n\
                 http_listen = \"{http}\"\npod_mtu = 1450\nmax_pod_ports = {max_pod_ports}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("cluster.yaml"), cluster).unwrap();
        std::fs::write(
            dir.join("net.d/10-podlane.conflist"),
            format!(
                r#"{{"cniVersion": "1.0.0", "name": "podlane", "plugins": [
  {{"type": "podlane", "socket": "{d}/cni.sock"}},
  {{"type": "tuning", "sysctl": {{"net.ipv4.conf.eth0.rp_filter": "0"}}}}
]}}
"#,
                d = dir.display()
            ),
        )
        .unwrap();
        let mut n = Node {
            dir,
            tag,
            http,
            fastpath: None,
            control: None,
            netns: Vec::new(),
        };
        n.start_fastpath();
        n.start_control();
        n
    }

    /// Starts (or restarts) the fast path.
    pub fn start_fastpath(&mut self) {
        let sock = self.dir.join("fastpath.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(self.dir.join("fastpath.log")).unwrap();
        let child = Command::new(fastpath_bin())
            .arg("--config")
            .arg(self.dir.join("fastpath.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.fastpath = Some(child);
        wait_for("the fast path's socket", 30, || sock.exists());
    }

    /// Stops the fast path (SIGTERM, as a clean shutdown).
    pub fn stop_fastpath(&mut self) {
        if let Some(mut c) = self.fastpath.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Starts (or restarts) the control daemon and waits for its API.
    pub fn start_control(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("control.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_podlane-control"))
            .arg("--config")
            .arg(self.dir.join("control.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.control = Some(child);
        let http = self.http.clone();
        wait_for("the control daemon's API", 30, || {
            TcpStream::connect(&http).is_ok()
        });
    }

    /// Kills the control daemon (SIGKILL: no chance to clean up).
    pub fn kill_control(&mut self) {
        if let Some(mut c) = self.control.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Creates a pod network namespace; returns its path.
    pub fn netns(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.tag);
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {ns}");
        self.netns.push(ns.clone());
        format!("/var/run/netns/{ns}")
    }

    /// Runs the reference CNI client: `cnitool add|check|del podlane NETNS`.
    pub fn cnitool(&self, cmd: &str, netns: &str) -> Output {
        Command::new(cnitool())
            .args([cmd, "podlane", netns])
            .env("NETCONFPATH", self.dir.join("net.d"))
            .env(
                "CNI_PATH",
                format!("{}:/usr/lib/cni", self.dir.join("bin").display()),
            )
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=test",
            )
            .output()
            .unwrap()
    }

    /// Runs the plugin binary directly as a runtime does (for commands cnitool 1.1 lacks).
    pub fn plugin(&self, env: &[(&str, &str)], stdin: &str) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_podlane-cni"));
        c.env_clear()
            .env("CNI_PATH", self.dir.join("bin"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// The plugin's config for direct runs (`version` is the cniVersion).
    pub fn plugin_conf(&self, version: &str, extra: &str) -> String {
        format!(
            r#"{{"cniVersion": "{version}", "name": "podlane", "type": "podlane", "socket": "{}/cni.sock"{extra}}}"#,
            self.dir.display()
        )
    }

    /// HTTP request to the control API; returns (status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut s = TcpStream::connect(&self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = if head.to_ascii_lowercase().contains("chunked") {
            let mut out = String::new();
            let mut r = rest;
            while let Some((len, tail)) = r.split_once("\r\n") {
                let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                out.push_str(&tail[..n]);
                r = &tail[n + 2..];
            }
            out
        } else {
            rest.to_string()
        };
        let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, v)
    }

    /// GET that must succeed.
    pub fn get(&self, path: &str) -> Value {
        let (s, v) = self.api("GET", path, "");
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// Runs a command inside a pod's namespace.
    pub fn exec(&self, netns: &str, cmd: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(cmd)
            .output()
            .unwrap()
    }

    /// The control daemon's log so far (for failure messages).
    pub fn logs(&self) -> String {
        let r = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "--- control.log\n{}\n--- fastpath.log\n{}",
            r("control.log"),
            r("fastpath.log")
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.control.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop_fastpath();
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.tag));
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The JSON a successful cnitool/plugin run printed.
pub fn result_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}
