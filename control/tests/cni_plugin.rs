//! The `podlane-cni` binary as a runtime drives it: environment and stdin in, stdout and exit
//! code out, against a fake podlane-control (a unix listener in a temporary directory that
//! records each `CniRequest` and answers a canned `CniReply`).

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use control::cniwire::{
    read_message, write_message, Attachment, AttachmentKey, CniCommand, CniError, CniReply,
    CniRequest,
};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_podlane-cni");
const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const NETNS: &str = "/run/netns/pod-1";

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "plcni-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake podlane-control: answers one connection per canned reply, in order, and records the
/// requests. Gives up accepting after 20 s so a test that never connects cannot hang.
struct FakeDaemon {
    _dir: TempDir,
    socket: PathBuf,
    handle: JoinHandle<Vec<CniRequest>>,
}

impl FakeDaemon {
    fn start(replies: Vec<CniReply>) -> FakeDaemon {
        let dir = TempDir::new();
        let socket = dir.0.join("cni.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            for reply in replies {
                let mut stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => return seen,
                    }
                };
                stream.set_nonblocking(false).unwrap();
                let req: CniRequest = read_message(&mut stream).unwrap();
                seen.push(req);
                write_message(&mut stream, &reply).unwrap();
            }
            seen
        });
        FakeDaemon {
            _dir: dir,
            socket,
            handle,
        }
    }

    fn socket(&self) -> String {
        self.socket.to_str().unwrap().to_string()
    }

    fn requests(self) -> Vec<CniRequest> {
        self.handle.join().unwrap()
    }
}

struct Run {
    code: i32,
    stdout: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// Asserts a spec error result with `code` and returns it.
    fn error(&self, code: u32) -> Value {
        assert_eq!(self.code, 1, "exit code; stdout {}", self.stdout);
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["cniVersion", "code", "details", "msg"], "{v}");
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["details"].is_string(), "{v}");
        v
    }

    fn ok_empty(&self) {
        assert_eq!(self.code, 0, "stdout {}", self.stdout);
        assert_eq!(self.stdout, "");
    }
}

/// Runs the binary with exactly `env` (nothing inherited) and `stdin`.
fn run(env: &[(&str, String)], stdin: &[u8]) -> Run {
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The plugin may fail before reading all of stdin.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
    }
}

/// The environment of one attachment, as kubelet's runtime sets it.
fn attach_env(command: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.into()),
        ("CNI_CONTAINERID", "ctr-1".into()),
        ("CNI_NETNS", NETNS.into()),
        ("CNI_IFNAME", "eth0".into()),
        ("CNI_PATH", "/opt/cni/bin".into()),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=ctr-1;K8S_POD_UID=8f1c"
                .into(),
        ),
    ]
}

fn without(mut env: Vec<(&'static str, String)>, name: &str) -> Vec<(&'static str, String)> {
    env.retain(|(k, _)| *k != name);
    env
}

fn with_var(
    mut env: Vec<(&'static str, String)>,
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    env.retain(|(k, _)| *k != name);
    env.push((name, value.into()));
    env
}

fn conf(version: &str, socket: &str) -> Value {
    json!({"cniVersion": version, "name": "podlane", "type": "podlane", "socket": socket, "timeoutSeconds": 5})
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn attachment() -> Attachment {
    Attachment {
        ifname: "eth0".into(),
        mac: "02:42:0a:f4:01:02".into(),
        sandbox: NETNS.into(),
        mtu: 1450,
        ip: Ipv4Addr::new(10, 244, 1, 2),
        prefix_len: 24,
        gateway: Ipv4Addr::new(10, 244, 1, 1),
    }
}

/// A socket path where nothing listens.
fn dead_socket(dir: &TempDir) -> String {
    dir.0.join("none.sock").to_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------
// VERSION

#[test]
fn version_echoes_each_config_version() {
    let supported = json!(VERSIONS);
    for v in VERSIONS {
        let r = run(
            &[("CNI_COMMAND", "VERSION".into())],
            &bytes(&json!({"cniVersion": v})),
        );
        assert_eq!(r.code, 0);
        assert_eq!(
            r.json(),
            json!({"cniVersion": v, "supportedVersions": supported})
        );
    }
}

#[test]
fn version_without_a_config_version_is_1_1_0() {
    for stdin in [&b""[..], b"{}", b"{\"cniVersion\": 7}", b"\xff garbage"] {
        let r = run(&[("CNI_COMMAND", "VERSION".into())], stdin);
        assert_eq!(r.code, 0);
        assert_eq!(r.json()["cniVersion"], "1.1.0");
        assert_eq!(r.json()["supportedVersions"], json!(VERSIONS));
    }
}

// ---------------------------------------------------------------------------------------
// Bad input, by code

#[test]
fn malformed_stdin_is_decode_failure_6() {
    let dir = TempDir::new();
    for stdin in [
        &b"{"[..],
        b"not json",
        b"",
        b"\xff\xfe\x00\x01",
        b"{\"name\": \"podlane\xff\"}",
        b"[1, 2]",
        b"\"1.1.0\"",
    ] {
        let r = run(&attach_env("ADD"), stdin);
        let v = r.error(6);
        assert_eq!(v["cniVersion"], "1.1.0", "unknown version: the newest");
    }
    let _ = dir;
}

#[test]
fn missing_env_vars_are_invalid_env_4() {
    let dir = TempDir::new();
    let stdin = bytes(&conf("1.1.0", &dead_socket(&dir)));
    // No CNI_COMMAND at all.
    let v = run(&without(attach_env("ADD"), "CNI_COMMAND"), &stdin).error(4);
    assert!(v["msg"].as_str().unwrap().contains("CNI_COMMAND"), "{v}");
    assert_eq!(v["cniVersion"], "1.1.0");
    // Each variable ADD and CHECK require, named in the message.
    for cmd in ["ADD", "CHECK"] {
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let v = run(&without(attach_env(cmd), var), &stdin).error(4);
            assert!(v["msg"].as_str().unwrap().contains(var), "{cmd} {var}: {v}");
        }
    }
    // DEL requires the container ID and interface name (not CNI_NETNS).
    for var in ["CNI_CONTAINERID", "CNI_IFNAME"] {
        let v = run(&without(attach_env("DEL"), var), &stdin).error(4);
        assert!(v["msg"].as_str().unwrap().contains(var), "{v}");
    }
    // An empty value counts as missing.
    let v = run(&with_var(attach_env("ADD"), "CNI_NETNS", ""), &stdin).error(4);
    assert!(v["msg"].as_str().unwrap().contains("CNI_NETNS"));
    // GC requires CNI_PATH.
    let v = run(&[("CNI_COMMAND", "GC".into())], &stdin).error(4);
    assert!(v["msg"].as_str().unwrap().contains("CNI_PATH"), "{v}");
    // Unknown command.
    let v = run(&with_var(attach_env("ADD"), "CNI_COMMAND", "FLY"), &stdin).error(4);
    assert!(v["msg"].as_str().unwrap().contains("FLY"));
}

#[test]
fn invalid_container_id_or_ifname_is_invalid_env_4() {
    let dir = TempDir::new();
    let stdin = bytes(&conf("1.0.0", &dead_socket(&dir)));
    for id in ["-abc", "_abc", ".abc", "a/b", "a b", "a:b", "ä"] {
        let v = run(&with_var(attach_env("ADD"), "CNI_CONTAINERID", id), &stdin).error(4);
        assert!(
            v["msg"].as_str().unwrap().contains("CNI_CONTAINERID"),
            "{v}"
        );
        assert_eq!(v["cniVersion"], "1.0.0");
    }
    for ifname in [
        ".",
        "..",
        "eth0/1",
        "eth:0",
        "eth 0",
        "eth\t0",
        "abcdefghijklmnop",
    ] {
        let v = run(&with_var(attach_env("DEL"), "CNI_IFNAME", ifname), &stdin).error(4);
        assert!(
            v["msg"].as_str().unwrap().contains("CNI_IFNAME"),
            "{ifname:?}: {v}"
        );
    }
    // 15 bytes is the longest allowed: this gets as far as the (absent) daemon.
    run(
        &with_var(attach_env("ADD"), "CNI_IFNAME", "abcdefghijklmno"),
        &stdin,
    )
    .error(11);
}

#[test]
fn unknown_cni_version_is_incompatible_1() {
    let dir = TempDir::new();
    for v in ["0.1.0", "0.2.0", "0.4.1", "1.0", "1.2.0", "2.0.0", "banana"] {
        let e = run(&attach_env("ADD"), &bytes(&conf(v, &dead_socket(&dir)))).error(1);
        assert_eq!(
            e["cniVersion"], "1.1.0",
            "an unsupported version is not echoed"
        );
        assert!(e["details"].as_str().unwrap().contains(v), "{e}");
    }
}

#[test]
fn unknown_config_field_is_unsupported_field_2() {
    let dir = TempDir::new();
    let mut c = conf("0.4.0", &dead_socket(&dir));
    c["ipam"] = json!({"type": "host-local"});
    let e = run(&attach_env("ADD"), &bytes(&c)).error(2);
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("ipam") && msg.contains("host-local"), "{msg}");
    assert_eq!(e["cniVersion"], "0.4.0");

    let mut c = conf("1.1.0", &dead_socket(&dir));
    c["mtu"] = json!(9000);
    let msg = run(&attach_env("DEL"), &bytes(&c)).error(2)["msg"].clone();
    assert!(msg.as_str().unwrap().contains("mtu") && msg.as_str().unwrap().contains("9000"));
}

#[test]
fn invalid_config_is_7() {
    let dir = TempDir::new();
    let sock = dead_socket(&dir);
    let base = conf("1.0.0", &sock);
    let mut cases = Vec::new();
    for key in ["name", "cniVersion", "type"] {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(key);
        cases.push(c);
        let mut c = base.clone();
        c[key] = json!("");
        cases.push(c);
        let mut c = base.clone();
        c[key] = json!(42);
        cases.push(c);
    }
    for (key, value) in [
        ("name", json!("bad name")),
        ("name", json!("-podlane")),
        ("socket", json!(false)),
        ("timeoutSeconds", json!("30")),
        ("timeoutSeconds", json!(0)),
        ("dns", json!({"nameservers": "10.96.0.10"})),
        ("prevResult", json!([])),
        ("args", json!("K=V")),
    ] {
        let mut c = base.clone();
        c[key] = value;
        cases.push(c);
    }
    for c in cases {
        let r = run(&attach_env("ADD"), &bytes(&c));
        assert_eq!(r.code, 1);
        assert_eq!(r.json()["code"], 7, "{c}: {}", r.stdout);
    }
}

#[test]
fn commands_newer_than_the_config_version_are_incompatible_1() {
    let dir = TempDir::new();
    let sock = dead_socket(&dir);
    for v in ["0.3.0", "0.3.1"] {
        let e = run(&attach_env("CHECK"), &bytes(&conf(v, &sock))).error(1);
        assert!(e["msg"].as_str().unwrap().contains("CHECK"));
        assert_eq!(e["cniVersion"], v);
    }
    for v in ["0.3.1", "0.4.0", "1.0.0"] {
        let mut c = conf(v, &sock);
        c["cni.dev/valid-attachments"] = json!([]);
        run(
            &[
                ("CNI_COMMAND", "GC".into()),
                ("CNI_PATH", "/opt/cni/bin".into()),
            ],
            &bytes(&c),
        )
        .error(1);
        run(&[("CNI_COMMAND", "STATUS".into())], &bytes(&c)).error(1);
    }
}

#[test]
fn unknown_cni_args_are_unsupported_field_2_unless_ignored() {
    let daemon = FakeDaemon::start(vec![CniReply::Done]);
    let stdin = bytes(&conf("1.0.0", &daemon.socket()));
    let e = run(
        &with_var(attach_env("DEL"), "CNI_ARGS", "K8S_POD_NAME=web-0;FOO=bar"),
        &stdin,
    )
    .error(2);
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("FOO") && msg.contains("bar"), "{msg}");
    run(
        &with_var(
            attach_env("DEL"),
            "CNI_ARGS",
            "IgnoreUnknown=true;FOO=bar;K8S_POD_NAME=web-0",
        ),
        &stdin,
    )
    .ok_empty();
    let reqs = daemon.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].pod_name.as_deref(), Some("web-0"));
    assert_eq!(reqs[0].pod_namespace, None);
    // A pair without exactly one '=' is a bad variable.
    let dir = TempDir::new();
    run(
        &with_var(attach_env("ADD"), "CNI_ARGS", "K8S_POD_NAME"),
        &bytes(&conf("1.0.0", &dead_socket(&dir))),
    )
    .error(4);
}

// ---------------------------------------------------------------------------------------
// Daemon down, busy or wrong

#[test]
fn daemon_down_is_try_again_11_for_add_del_check_gc() {
    let dir = TempDir::new();
    // A stale socket file nobody listens on: connection refused.
    let stale = dir.0.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    for sock in [dead_socket(&dir), stale.to_str().unwrap().to_string()] {
        let mut c = conf("1.1.0", &sock);
        let e = run(&attach_env("ADD"), &bytes(&c)).error(11);
        assert_eq!(
            e["msg"],
            "podlane-control is not running or busy; try again later"
        );
        assert_eq!(e["cniVersion"], "1.1.0");
        // DEL must fail too (the runtime retries it), with or without CNI_NETNS.
        run(&attach_env("DEL"), &bytes(&c)).error(11);
        run(&without(attach_env("DEL"), "CNI_NETNS"), &bytes(&c)).error(11);
        c["prevResult"] = json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "sandbox": NETNS}],
            "ips": [{"address": "10.244.1.2/24", "interface": 0}]
        });
        run(&attach_env("CHECK"), &bytes(&c)).error(11);
        c["cni.dev/valid-attachments"] = json!([]);
        run(
            &[
                ("CNI_COMMAND", "GC".into()),
                ("CNI_PATH", "/opt/cni/bin".into()),
            ],
            &bytes(&c),
        )
        .error(11);
    }
}

#[test]
fn status_with_daemon_down_is_not_available_50() {
    let dir = TempDir::new();
    let e = run(
        &[("CNI_COMMAND", "STATUS".into())],
        &bytes(&conf("1.1.0", &dead_socket(&dir))),
    )
    .error(50);
    assert_eq!(e["cniVersion"], "1.1.0");
}

#[test]
fn daemon_that_never_answers_is_try_again_11() {
    let dir = TempDir::new();
    let socket = dir.0.join("slow.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let holder = std::thread::spawn(move || {
        // Accept and hold the connection open without answering.
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let mut c = conf("1.0.0", socket.to_str().unwrap());
    c["timeoutSeconds"] = json!(1);
    let start = Instant::now();
    let e = run(&attach_env("ADD"), &bytes(&c)).error(11);
    assert!(
        start.elapsed() < Duration::from_millis(2900),
        "{:?}",
        start.elapsed()
    );
    assert!(e["details"].as_str().unwrap().contains("slow.sock"), "{e}");
    holder.join().unwrap();
}

#[test]
fn daemon_error_is_passed_through_with_its_code() {
    let daemon = FakeDaemon::start(vec![
        CniReply::Error(
            CniError::new(100, "no free address in 10.244.1.0/24").details("254 in use"),
        ),
        CniReply::Error(
            CniError::new(51, "fast path down").details("existing pods may be cut off"),
        ),
    ]);
    let e = run(&attach_env("ADD"), &bytes(&conf("0.3.1", &daemon.socket()))).error(100);
    assert_eq!(
        e,
        json!({"cniVersion": "0.3.1", "code": 100, "msg": "no free address in 10.244.1.0/24", "details": "254 in use"})
    );
    let e = run(
        &[("CNI_COMMAND", "STATUS".into())],
        &bytes(&conf("1.1.0", &daemon.socket())),
    )
    .error(51);
    assert_eq!(e["msg"], "fast path down");
    assert_eq!(daemon.requests().len(), 2);
}

#[test]
fn daemon_invalid_reply_is_io_failure_5() {
    let dir = TempDir::new();
    let socket = dir.0.join("junk.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _: CniRequest = read_message(&mut s).unwrap();
        s.write_all(br#"{"result":"maybe"}"#).unwrap();
    });
    run(
        &attach_env("ADD"),
        &bytes(&conf("1.0.0", socket.to_str().unwrap())),
    )
    .error(5);
    server.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// ADD

/// Runs ADD for `version` against a fake daemon; returns the result and the request.
fn add(version: &str, config: impl FnOnce(&mut Value)) -> (Value, CniRequest) {
    let daemon = FakeDaemon::start(vec![CniReply::Added(attachment())]);
    let mut c = conf(version, &daemon.socket());
    config(&mut c);
    let r = run(&attach_env("ADD"), &bytes(&c));
    assert_eq!(r.code, 0, "{}", r.stdout);
    let result = r.json();
    let mut reqs = daemon.requests();
    assert_eq!(reqs.len(), 1);
    (result, reqs.remove(0))
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn expected_request(command: CniCommand) -> CniRequest {
    CniRequest {
        command,
        network: "podlane".into(),
        container_id: "ctr-1".into(),
        ifname: "eth0".into(),
        netns: Some(NETNS.into()),
        pod_namespace: Some("default".into()),
        pod_name: Some("web-0".into()),
        expect: None,
        valid_attachments: vec![],
    }
}

/// The 0.3.x/0.4.0 result: interfaces {name, mac, sandbox}; ips {version, address, gateway,
/// interface}; routes {dst, gw}; dns.
fn assert_04x_result(version: &str, r: &Value) {
    assert_eq!(
        keys(r),
        ["cniVersion", "dns", "interfaces", "ips", "routes"]
    );
    assert_eq!(r["cniVersion"], version);
    let iface = &r["interfaces"][0];
    assert_eq!(
        keys(iface),
        ["mac", "name", "sandbox"],
        "no mtu before 1.1.0"
    );
    assert_eq!(iface["name"], "eth0");
    assert_eq!(iface["mac"], "02:42:0a:f4:01:02");
    assert_eq!(iface["sandbox"], NETNS);
    let ip = &r["ips"][0];
    assert_eq!(keys(ip), ["address", "gateway", "interface", "version"]);
    assert_eq!(ip["version"], "4");
    assert_eq!(ip["address"], "10.244.1.2/24");
    assert_eq!(ip["gateway"], "10.244.1.1");
    assert_eq!(ip["interface"], 0);
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}])
    );
    assert_eq!(r["dns"], json!({}));
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 1);
    assert_eq!(r["ips"].as_array().unwrap().len(), 1);
}

#[test]
fn add_0_3_0() {
    let (r, req) = add("0.3.0", |_| {});
    assert_04x_result("0.3.0", &r);
    assert_eq!(req, expected_request(CniCommand::Add));
}

#[test]
fn add_0_3_1() {
    let (r, req) = add("0.3.1", |_| {});
    assert_04x_result("0.3.1", &r);
    assert_eq!(req, expected_request(CniCommand::Add));
}

#[test]
fn add_0_4_0() {
    let (r, req) = add("0.4.0", |_| {});
    assert_04x_result("0.4.0", &r);
    assert_eq!(req, expected_request(CniCommand::Add));
}

#[test]
fn add_1_0_0() {
    let (r, req) = add("1.0.0", |_| {});
    assert_eq!(
        r,
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": "02:42:0a:f4:01:02", "sandbox": NETNS}],
            "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
            "dns": {}
        })
    );
    assert!(
        r["ips"][0].get("version").is_none(),
        "1.0.0 removed ips[].version"
    );
    assert_eq!(req, expected_request(CniCommand::Add));
}

#[test]
fn add_1_1_0() {
    let (r, req) = add("1.1.0", |_| {});
    assert_eq!(
        r,
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "02:42:0a:f4:01:02", "sandbox": NETNS, "mtu": 1450}],
            "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
            "dns": {}
        })
    );
    assert_eq!(req, expected_request(CniCommand::Add));
}

#[test]
fn add_reports_the_configured_dns() {
    let (r, _) = add("1.0.0", |c| {
        c["dns"] = json!({"nameservers": ["10.96.0.10"], "search": ["default.svc.cluster.local"], "options": ["ndots:5"]});
    });
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.96.0.10"], "search": ["default.svc.cluster.local"], "options": ["ndots:5"]})
    );
}

#[test]
fn add_with_prev_result_appends_to_it() {
    // The spec's own chaining example: a bridge-like plugin's result before us.
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "00:11:22:33:44:55"},
            {"name": "veth3243", "mac": "55:44:33:22:11:11"},
            {"name": "net1", "mac": "99:88:77:66:55:44", "sandbox": NETNS}
        ],
        "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
        "routes": [{"dst": "10.1.0.0/16"}],
        "dns": {"nameservers": ["10.1.0.1"]}
    });
    let (r, req) = add("1.0.0", |c| c["prevResult"] = prev.clone());
    assert_eq!(
        r,
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "00:11:22:33:44:55"},
                {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                {"name": "net1", "mac": "99:88:77:66:55:44", "sandbox": NETNS},
                {"name": "eth0", "mac": "02:42:0a:f4:01:02", "sandbox": NETNS}
            ],
            "ips": [
                {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2},
                {"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 3}
            ],
            "routes": [{"dst": "10.1.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
            "dns": {"nameservers": ["10.1.0.1"]}
        })
    );
    assert_eq!(req, expected_request(CniCommand::Add));

    // In 0.4.0 the previous result carries ips[].version, and so does ours.
    let prev = json!({
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "net1", "sandbox": NETNS}],
        "ips": [{"version": "6", "address": "fd00::5/64", "interface": 0}]
    });
    let (r, _) = add("0.4.0", |c| c["prevResult"] = prev.clone());
    assert_eq!(
        r["ips"][0],
        json!({"version": "6", "address": "fd00::5/64", "interface": 0})
    );
    assert_eq!(
        r["ips"][1],
        json!({"version": "4", "address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 1})
    );
    assert_eq!(r["interfaces"][1]["name"], "eth0");
}

#[test]
fn add_with_a_clashing_or_invalid_prev_result_is_7() {
    let dir = TempDir::new();
    let mut c = conf("1.0.0", &dead_socket(&dir));
    c["prevResult"] = json!({"interfaces": [{"name": "eth0", "sandbox": NETNS}]});
    let e = run(&attach_env("ADD"), &bytes(&c)).error(7);
    assert!(e["msg"].as_str().unwrap().contains("already exists"), "{e}");
    c["prevResult"] = json!({"ips": [{"address": "10.0.0.1"}]});
    run(&attach_env("ADD"), &bytes(&c)).error(7);
}

// ---------------------------------------------------------------------------------------
// DEL, CHECK, GC, STATUS

#[test]
fn del_sends_the_attachment_and_prints_nothing() {
    let daemon = FakeDaemon::start(vec![CniReply::Done, CniReply::Done]);
    let c = bytes(&conf("0.3.1", &daemon.socket()));
    run(&attach_env("DEL"), &c).ok_empty();
    run(&without(attach_env("DEL"), "CNI_NETNS"), &c).ok_empty();
    let reqs = daemon.requests();
    assert_eq!(reqs[0], expected_request(CniCommand::Del));
    assert_eq!(
        reqs[1],
        CniRequest {
            netns: None,
            ..expected_request(CniCommand::Del)
        }
    );
}

#[test]
fn check_sends_the_expected_attachment_from_prev_result() {
    // The prevResult is what ADD printed (1.1.0, so the MTU is recorded too), followed by a
    // later plugin's interface.
    let (mut added, _) = add("1.1.0", |_| {});
    added["interfaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "tap0"}));
    let daemon = FakeDaemon::start(vec![CniReply::Done]);
    let mut c = conf("1.1.0", &daemon.socket());
    c["prevResult"] = added;
    run(&attach_env("CHECK"), &bytes(&c)).ok_empty();
    let reqs = daemon.requests();
    assert_eq!(
        reqs[0],
        CniRequest {
            expect: Some(attachment()),
            ..expected_request(CniCommand::Check)
        }
    );

    // 0.4.0 results carry no MTU: sent as 0 ("not recorded").
    let (added, _) = add("0.4.0", |_| {});
    let daemon = FakeDaemon::start(vec![CniReply::Error(CniError::new(102, "MAC differs"))]);
    let mut c = conf("0.4.0", &daemon.socket());
    c["prevResult"] = added;
    let e = run(&attach_env("CHECK"), &bytes(&c)).error(102);
    assert_eq!(e["cniVersion"], "0.4.0");
    let reqs = daemon.requests();
    assert_eq!(
        reqs[0].expect,
        Some(Attachment {
            mtu: 0,
            ..attachment()
        })
    );
}

#[test]
fn check_needs_prev_result_listing_the_attachment_7() {
    let dir = TempDir::new();
    let mut c = conf("1.0.0", &dead_socket(&dir));
    let e = run(&attach_env("CHECK"), &bytes(&c)).error(7);
    assert!(e["msg"].as_str().unwrap().contains("prevResult"));
    // Listed in another sandbox.
    c["prevResult"] = json!({
        "interfaces": [{"name": "eth0", "sandbox": "/run/netns/other"}],
        "ips": [{"address": "10.244.1.2/24", "interface": 0}]
    });
    run(&attach_env("CHECK"), &bytes(&c)).error(7);
}

#[test]
fn gc_passes_the_valid_attachments() {
    let daemon = FakeDaemon::start(vec![CniReply::Done]);
    let mut c = conf("1.1.0", &daemon.socket());
    // libcni sends the list under both names (containernetworking/cni#1101).
    let list = json!([
        {"containerID": "3f6940ab5ab4", "ifname": "eth0"},
        {"containerID": "3f6940ab5ab4", "ifname": "net1"},
        {"containerID": "77aa", "ifname": "eth0"}
    ]);
    c["cni.dev/valid-attachments"] = list.clone();
    c["cni.dev/attachments"] = list;
    // Container variables are not GC's: junk there is ignored.
    let env = [
        ("CNI_COMMAND", "GC".to_string()),
        ("CNI_PATH", "/opt/cni/bin".to_string()),
        ("CNI_CONTAINERID", "-junk".to_string()),
        ("CNI_IFNAME", "a/b".to_string()),
    ];
    run(&env, &bytes(&c)).ok_empty();
    let reqs = daemon.requests();
    let key = |c: &str, i: &str| AttachmentKey {
        container_id: c.into(),
        ifname: i.into(),
    };
    assert_eq!(
        reqs[0],
        CniRequest {
            command: CniCommand::Gc,
            network: "podlane".into(),
            container_id: String::new(),
            ifname: String::new(),
            netns: None,
            pod_namespace: None,
            pod_name: None,
            expect: None,
            valid_attachments: vec![
                key("3f6940ab5ab4", "eth0"),
                key("3f6940ab5ab4", "net1"),
                key("77aa", "eth0")
            ],
        }
    );

    // Without the list nothing is collected.
    let c = conf("1.1.0", "/nonexistent.sock");
    run(&env, &bytes(&c)).error(7);
}

#[test]
fn status_asks_the_daemon() {
    let daemon = FakeDaemon::start(vec![CniReply::Done]);
    run(
        &[("CNI_COMMAND", "STATUS".into())],
        &bytes(&conf("1.1.0", &daemon.socket())),
    )
    .ok_empty();
    let reqs = daemon.requests();
    assert_eq!(reqs[0].command, CniCommand::Status);
    assert_eq!(reqs[0].network, "podlane");
    assert_eq!(reqs[0].container_id, "");
}

// ---------------------------------------------------------------------------------------
// Robustness

#[test]
fn garbage_never_crashes_the_binary() {
    let dir = TempDir::new();
    let sock = dead_socket(&dir);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut inputs: Vec<Vec<u8>> = vec![
        b"\x00".to_vec(),
        vec![0xff; 100],
        b"{\"cniVersion\":\"1.1.0\",\"name\":\"x\",\"type\":\"podlane\",\"prevResult\":".to_vec(),
        "{".repeat(10_000).into_bytes(),
        "[".repeat(100_000).into_bytes(),
        format!("{{\"cniVersion\":\"1.1.0\",\"name\":\"x\",\"type\":\"podlane\",\"socket\":{sock:?},\"prevResult\":{{\"ips\":[{{\"address\":\"1.2.3.4/99\"}}]}}}}").into_bytes(),
    ];
    for _ in 0..20 {
        let len = (next() % 300) as usize;
        inputs.push((0..len).map(|_| next() as u8).collect());
    }
    for (i, stdin) in inputs.iter().enumerate() {
        for cmd in ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"] {
            let r = run(&attach_env(cmd), stdin);
            assert!(
                r.code == 0 || r.code == 1,
                "input {i} {cmd}: exit {}",
                r.code
            );
            if r.code == 1 {
                let v = r.json();
                assert!(v["code"].is_u64(), "input {i} {cmd}: {v}");
            } else {
                assert_eq!(cmd, "VERSION", "input {i}: {}", r.stdout);
            }
        }
    }
}
