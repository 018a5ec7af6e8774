//! The `podlane` CNI plugin (binary `podlane-cni`, installed as `/opt/cni/bin/podlane`): the
//! CNI spec's side of the attachment protocol, for spec versions 0.3.0, 0.3.1, 0.4.0, 1.0.0
//! and 1.1.0.
//!
//! The runtime runs the plugin with `CNI_COMMAND` and the other `CNI_*` variables set and the
//! plugin configuration on stdin ([`env`], [`config`]). VERSION is answered here; ADD, DEL,
//! CHECK, GC and STATUS become one version-independent [`crate::cniwire::CniRequest`] to
//! podlane-control over its unix socket ([`client`]), and the daemon's
//! [`crate::cniwire::CniReply`] becomes the versioned result or error on stdout ([`result`]).
//! Exit code 0 on success, 1 with an error result on stdout on failure.
//!
//! Configuration keys: the spec's (`cniVersion`, `name`, `type`, `args`, `runtimeConfig`,
//! `capabilities`, `prevResult`, `dns`, `cni.dev/*`) and podlane's `socket` (default
//! [`config::DEFAULT_SOCKET`]) and `timeoutSeconds` (default 30). Anything else is refused
//! (code 2).
//!
//! Errors, by where they are found (codes are the spec's well-known ones):
//!
//! | condition | code |
//! |---|---|
//! | `cniVersion` unsupported, or too old for the command (CHECK < 0.4.0, GC/STATUS < 1.1.0) | 1 |
//! | unknown configuration key (or `dns` key); unknown `CNI_ARGS` key without `IgnoreUnknown` | 2 |
//! | required variable missing or empty, not UTF-8, bad container ID or interface name, bad `CNI_COMMAND` or `CNI_ARGS` syntax | 4 |
//! | stdin unreadable; daemon I/O failure or invalid reply | 5 |
//! | stdin not a JSON object | 6 |
//! | missing `name`/`cniVersion`/`type`, wrong value types, bad `prevResult`, CHECK without `prevResult`, GC without valid attachments | 7 |
//! | daemon not running, refusing, or not answering in `timeoutSeconds` (ADD, DEL, CHECK, GC) | 11 |
//! | daemon unreachable on STATUS | 50 |
//! | the daemon's own error | its code |

pub mod client;
pub mod config;
pub mod env;
pub mod plugin;
pub mod result;

pub use client::{Transport, TransportError, UnixTransport};
pub use config::{NetConf, Version};
pub use env::{Command, Env};
pub use plugin::{run, run_process, run_with, Outcome};

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::net::Ipv4Addr;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use serde_json::{json, Value};

    use super::*;
    use crate::cniwire::{Attachment, AttachmentKey, CniCommand, CniError, CniReply, CniRequest};

    /// Answers every request with a canned reply and records the requests.
    struct Fake {
        reply: Result<CniReply, TransportError>,
        seen: RefCell<Vec<(PathBuf, Duration, CniRequest)>>,
    }

    impl Fake {
        fn new(reply: Result<CniReply, TransportError>) -> Fake {
            Fake {
                reply,
                seen: RefCell::new(Vec::new()),
            }
        }
    }

    impl Transport for Fake {
        fn exchange(
            &self,
            socket: &Path,
            timeout: Duration,
            request: &CniRequest,
        ) -> Result<CniReply, TransportError> {
            self.seen
                .borrow_mut()
                .push((socket.to_path_buf(), timeout, request.clone()));
            self.reply.clone()
        }
    }

    fn att() -> Attachment {
        Attachment {
            ifname: "eth0".into(),
            mac: "02:00:0a:f4:01:02".into(),
            sandbox: "/run/netns/p1".into(),
            mtu: 1450,
            ip: Ipv4Addr::new(10, 244, 1, 2),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 244, 1, 1),
        }
    }

    fn env(command: &str) -> Env {
        Env::from_pairs([
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/p1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"),
        ])
    }

    fn conf(version: &str) -> Value {
        json!({"cniVersion": version, "name": "podlane", "type": "podlane", "socket": "/tmp/s", "timeoutSeconds": 7})
    }

    fn err_code(o: &Outcome) -> u64 {
        assert_eq!(o.exit_code, 1, "{}", o.stdout);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        v["code"].as_u64().unwrap()
    }

    #[test]
    fn add_sends_the_request_and_prints_the_result() {
        let fake = Fake::new(Ok(CniReply::Added(att())));
        let o = run_with(&env("ADD"), conf("1.1.0").to_string().as_bytes(), &fake);
        assert_eq!(o.exit_code, 0, "{}", o.stdout);
        let r: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(r["cniVersion"], "1.1.0");
        assert_eq!(r["ips"][0]["address"], "10.244.1.2/24");
        let seen = fake.seen.borrow();
        let (socket, timeout, req) = &seen[0];
        assert_eq!(socket, &PathBuf::from("/tmp/s"));
        assert_eq!(*timeout, Duration::from_secs(7));
        assert_eq!(
            req,
            &CniRequest {
                command: CniCommand::Add,
                network: "podlane".into(),
                container_id: "c1".into(),
                ifname: "eth0".into(),
                netns: Some("/run/netns/p1".into()),
                pod_namespace: Some("default".into()),
                pod_name: Some("web-0".into()),
                expect: None,
                valid_attachments: vec![],
            }
        );
    }

    #[test]
    fn replies_that_do_not_fit_the_command() {
        let stdin = conf("1.0.0").to_string();
        let fake = Fake::new(Ok(CniReply::Done));
        assert_eq!(err_code(&run_with(&env("ADD"), stdin.as_bytes(), &fake)), 5);
        let fake = Fake::new(Ok(CniReply::Added(att())));
        assert_eq!(err_code(&run_with(&env("DEL"), stdin.as_bytes(), &fake)), 5);
        let mut wrong = att();
        wrong.prefix_len = 33;
        let fake = Fake::new(Ok(CniReply::Added(wrong)));
        assert_eq!(err_code(&run_with(&env("ADD"), stdin.as_bytes(), &fake)), 5);
        let fake = Fake::new(Ok(CniReply::Error(CniError::new(100, "no addresses left"))));
        let o = run_with(&env("ADD"), stdin.as_bytes(), &fake);
        assert_eq!(err_code(&o), 100);
        assert!(o.stdout.contains("no addresses left") && o.stdout.contains("\"1.0.0\""));
    }

    #[test]
    fn transport_failures_map_per_command() {
        let stdin = conf("1.1.0").to_string();
        let down = || Err(TransportError::Unavailable("gone".into()));
        for (cmd, want) in [("ADD", 11), ("DEL", 11), ("STATUS", 50)] {
            let fake = Fake::new(down());
            assert_eq!(
                err_code(&run_with(&env(cmd), stdin.as_bytes(), &fake)),
                want,
                "{cmd}"
            );
        }
        let fake = Fake::new(Err(TransportError::Timeout("slow".into())));
        assert_eq!(
            err_code(&run_with(&env("ADD"), stdin.as_bytes(), &fake)),
            11
        );
        let fake = Fake::new(Err(TransportError::Io("denied".into())));
        assert_eq!(err_code(&run_with(&env("ADD"), stdin.as_bytes(), &fake)), 5);
        let fake = Fake::new(Err(TransportError::BadReply("junk".into())));
        assert_eq!(
            err_code(&run_with(&env("STATUS"), stdin.as_bytes(), &fake)),
            50
        );
    }

    #[test]
    fn gc_and_check_requests() {
        let fake = Fake::new(Ok(CniReply::Done));
        let mut c = conf("1.1.0");
        c["cni.dev/valid-attachments"] = json!([{"containerID": "c9", "ifname": "eth0"}]);
        let o = run_with(
            &Env::from_pairs([("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")]),
            c.to_string().as_bytes(),
            &fake,
        );
        assert_eq!(
            o,
            Outcome {
                stdout: String::new(),
                exit_code: 0
            }
        );
        let req = fake.seen.borrow()[0].2.clone();
        assert_eq!(req.command, CniCommand::Gc);
        assert_eq!(req.container_id, "");
        assert_eq!(req.netns, None);
        assert_eq!(
            req.valid_attachments,
            vec![AttachmentKey {
                container_id: "c9".into(),
                ifname: "eth0".into()
            }]
        );

        // GC without the list collects nothing.
        let o = run_with(
            &Env::from_pairs([("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")]),
            conf("1.1.0").to_string().as_bytes(),
            &fake,
        );
        assert_eq!(err_code(&o), 7);

        let mut c = conf("0.4.0");
        c["prevResult"] =
            result::add_result(Version::V0_4_0, None, "eth0", "/run/netns/p1", &att(), None);
        let fake = Fake::new(Ok(CniReply::Done));
        let o = run_with(&env("CHECK"), c.to_string().as_bytes(), &fake);
        assert_eq!(o.exit_code, 0, "{}", o.stdout);
        let expect = fake.seen.borrow()[0].2.expect.clone().unwrap();
        assert_eq!(expect, Attachment { mtu: 0, ..att() });
    }

    #[test]
    fn add_refuses_an_interface_the_chain_already_made() {
        let mut c = conf("1.0.0");
        c["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/p1"}]});
        let fake = Fake::new(Ok(CniReply::Added(att())));
        assert_eq!(
            err_code(&run_with(&env("ADD"), c.to_string().as_bytes(), &fake)),
            7
        );
        assert!(fake.seen.borrow().is_empty(), "the daemon is not asked");
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_value(rng: &mut Rng, depth: u32) -> Value {
        let pick = if depth > 3 {
            rng.below(5)
        } else {
            rng.below(7)
        };
        match pick {
            0 => Value::Null,
            1 => json!(rng.below(2) == 0),
            2 => json!(rng.next() as i64),
            3 => json!(
                [
                    "",
                    "1.1.0",
                    "0.3.1",
                    "eth0",
                    "10.0.0.1/8",
                    "x/y",
                    "é\u{0}",
                    "0.0.0.0"
                ][rng.below(8)]
            ),
            4 => json!(rng.below(70_000)),
            5 => Value::Array(
                (0..rng.below(4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => {
                let keys = [
                    "name",
                    "mac",
                    "sandbox",
                    "address",
                    "gateway",
                    "interface",
                    "dst",
                    "gw",
                    "mtu",
                    "version",
                    "containerID",
                    "ifname",
                    "interfaces",
                    "ips",
                    "routes",
                    "dns",
                    "nameservers",
                ];
                let mut m = serde_json::Map::new();
                for _ in 0..rng.below(5) {
                    m.insert(
                        keys[rng.below(keys.len())].into(),
                        random_value(rng, depth + 1),
                    );
                }
                Value::Object(m)
            }
        }
    }

    /// Garbage in never panics, and always gives either success or one well-formed error.
    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let commands = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"];
        let keys = [
            "cniVersion",
            "name",
            "type",
            "args",
            "runtimeConfig",
            "capabilities",
            "prevResult",
            "dns",
            "cni.dev/valid-attachments",
            "cni.dev/attachments",
            "socket",
            "timeoutSeconds",
            "ipam",
        ];
        let replies = [
            Ok(CniReply::Added(att())),
            Ok(CniReply::Done),
            Ok(CniReply::Error(CniError::new(0, ""))),
            Err(TransportError::Unavailable("x".into())),
        ];
        let mut successes = 0;
        let mut codes = std::collections::BTreeSet::new();
        for i in 0..20_000 {
            let cmd = commands[rng.below(commands.len())];
            let mut e = env(cmd);
            if rng.below(4) == 0 {
                e.set(
                    "CNI_ARGS",
                    [
                        "",
                        ";",
                        "=",
                        "A=B=C",
                        "IgnoreUnknown=1;X=y",
                        "K8S_POD_NAME=",
                    ][rng.below(6)],
                );
            }
            if rng.below(8) == 0 {
                e.set(
                    "CNI_IFNAME",
                    ["", ".", "a/b", "0123456789abcdefg", "é"][rng.below(5)],
                );
            }
            let stdin: Vec<u8> = match rng.below(4) {
                0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
                1 => random_value(&mut rng, 0).to_string().into_bytes(),
                _ => {
                    let mut c =
                        conf(["1.1.0", "1.0.0", "0.4.0", "0.3.1", "0.3.0", "0.2.0"][rng.below(6)]);
                    for _ in 0..rng.below(4) {
                        c[keys[rng.below(keys.len())]] = random_value(&mut rng, 0);
                    }
                    let mut s = c.to_string().into_bytes();
                    if rng.below(10) == 0 && !s.is_empty() {
                        let cut = rng.below(s.len());
                        s.truncate(cut);
                    }
                    s
                }
            };
            let fake = Fake::new(replies[rng.below(replies.len())].clone());
            let o = run_with(&e, &stdin, &fake);
            match o.exit_code {
                0 => {
                    successes += 1;
                    if !o.stdout.is_empty() {
                        let v: Value = serde_json::from_str(&o.stdout).unwrap();
                        assert!(v["cniVersion"].is_string(), "case {i}");
                    }
                }
                1 => {
                    let v: Value = serde_json::from_str(&o.stdout).unwrap();
                    assert!(
                        v["code"].is_u64() && v["msg"].as_str().is_some_and(|m| !m.is_empty()),
                        "case {i}: {v}"
                    );
                    assert!(
                        Version::parse(v["cniVersion"].as_str().unwrap()).is_some(),
                        "case {i}: {v}"
                    );
                    codes.insert(v["code"].as_u64().unwrap());
                }
                other => panic!("case {i}: exit code {other}"),
            }
        }
        // The generator reaches the daemon, not only the early checks.
        assert!(successes > 500, "{successes} successes");
        for c in [1, 2, 4, 6, 7, 11] {
            assert!(codes.contains(&c), "code {c} never produced: {codes:?}");
        }
    }
}
