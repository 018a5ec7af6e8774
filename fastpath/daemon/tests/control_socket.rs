//! The daemon end to end on virtual devices: start `podlane-fastpath`, program it through its
//! control socket, feed it garbage, stop it with SIGTERM.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fastpath::fixtures::*;
use fastpath::proto::{call, read_frame, Request, Response};
use fastpath::tables::pods::PodSpec;
use fastpath::update::Update;

#[test]
fn daemon_is_programmed_through_its_socket_and_survives_garbage() {
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("podlane-ctl-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("fastpath.sock");
    let node = common::node_section();
    let cfg = format!(
        "control_socket = \"{}\"\n[eal]\nlcores = \"0\"\nno_huge = true\nmemory_mb = 512\nfile_prefix = \"podlane-ctl-{id}\"\nlog_level = \"lib.eal:error\"\nno_pci = true\n{node}\n\
         [[ports]]\ndevargs = \"net_null0,no-rx=1\"\nrole = \"uplink\"\n[[ports]]\ndevargs = \"net_null1,no-rx=1\"\nrole = \"pod\"\npod_port = 0\n",
        sock.display()
    );
    let cfg_path = dir.join("fastpath.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let bin = env!("CARGO_BIN_EXE_podlane-fastpath");
    let check = Command::new(bin)
        .args(["--check", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(bin)
        .arg("--config")
        .arg(&cfg_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "control socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "root-only socket");

    let mut s = UnixStream::connect(&sock).unwrap();
    let Response::Ok { epoch, generation } = call(&mut s, &Request::Hello).unwrap() else {
        panic!("hello")
    };
    let pod = PodSpec {
        ip: POD_A_IP,
        mac: POD_A_MAC,
        port: 0,
    };
    let r = call(
        &mut s,
        &Request::Apply {
            updates: vec![Update::AddPod(pod)],
        },
    )
    .unwrap();
    assert_eq!(
        r,
        Response::Ok {
            epoch,
            generation: generation + 1
        }
    );
    // An invalid change is refused whole, with a reason; the state stays.
    let bad = PodSpec {
        ip: "10.9.9.9".parse().unwrap(),
        mac: POD_B_MAC,
        port: 1,
    };
    let r = call(
        &mut s,
        &Request::Apply {
            updates: vec![
                Update::AddPod(PodSpec {
                    ip: POD_B_IP,
                    mac: POD_B_MAC,
                    port: 1,
                }),
                Update::AddPod(bad),
            ],
        },
    )
    .unwrap();
    match r {
        Response::Error { message } => assert!(message.contains("outside"), "{message}"),
        other => panic!("{other:?}"),
    }
    let Response::State {
        state,
        generation: g,
        ..
    } = call(&mut s, &Request::GetState).unwrap()
    else {
        panic!("state")
    };
    assert_eq!(g, generation + 1);
    assert_eq!(state.pods, vec![pod]);
    // A resync with the full state.
    let r = call(
        &mut s,
        &Request::Snapshot {
            state: node_a_state(),
        },
    )
    .unwrap();
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");
    assert!(matches!(
        call(&mut s, &Request::Stats).unwrap(),
        Response::Stats { .. }
    ));
    // A well-framed body that is not a request: an error, the connection stays usable.
    fastpath::proto::write_frame(&mut s, &serde_json::json!({"op": "launch_missiles"})).unwrap();
    let body = read_frame(&mut s).unwrap();
    assert!(String::from_utf8_lossy(&body).contains("not a valid request"));
    assert!(matches!(
        call(&mut s, &Request::Hello).unwrap(),
        Response::Ok { .. }
    ));
    // Garbage framing: an error answer, then the server closes that connection.
    let mut g = UnixStream::connect(&sock).unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let body = read_frame(&mut g).unwrap();
    assert!(String::from_utf8_lossy(&body).contains("bad magic"));
    // The daemon still serves.
    let mut s2 = UnixStream::connect(&sock).unwrap();
    let Response::State { state, .. } = call(&mut s2, &Request::GetState).unwrap() else {
        panic!()
    };
    assert_eq!(state.pods.len(), 2);

    // Pod ports come and go at run time while the worker keeps polling: pod B's port is a
    // pcap device whose input is one ARP request; its answer must be in the output once the
    // port is removed (closing flushes it).
    let b_in = dir.join("podb_in.pcap");
    let b_out = dir.join("podb_out.pcap");
    let arp = fastpath::wire::frame::arp_frame(
        fastpath::wire::MacAddr::BROADCAST,
        fastpath::wire::arp::op::REQUEST,
        POD_B_MAC,
        POD_B_IP,
        fastpath::wire::MacAddr::ZERO,
        "10.244.1.1".parse().unwrap(),
    );
    fastpath::pcap::write_file(&b_in, &[(0, &arp[..])]).unwrap();
    let devargs = format!(
        "net_pcap9,rx_pcap={},tx_pcap={}",
        b_in.display(),
        b_out.display()
    );
    let r = call(
        &mut s2,
        &Request::AddPort {
            devargs: devargs.clone(),
            pod_port: 1,
        },
    )
    .unwrap();
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");
    let r = call(
        &mut s2,
        &Request::AddPort {
            devargs: "net_null7".into(),
            pod_port: 1,
        },
    )
    .unwrap();
    assert!(
        matches!(&r, Response::Error { message } if message.contains("already attached")),
        "{r:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let r = call(&mut s2, &Request::RemovePort { pod_port: 1 }).unwrap();
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");
    let out = fastpath::pcap::read_file(&b_out).unwrap();
    assert_eq!(
        out.len(),
        1,
        "the ARP answer went out of the hot-added port"
    );
    assert_eq!(&out[0].data[12..14], &[0x08, 0x06]);
    assert_eq!(&out[0].data[20..22], &[0, 2], "an ARP reply");
    let r = call(&mut s2, &Request::RemovePort { pod_port: 1 }).unwrap();
    assert!(
        matches!(&r, Response::Error { message } if message.contains("not attached")),
        "{r:?}"
    );
    // The same device name can be attached again after its removal.
    let r = call(
        &mut s2,
        &Request::AddPort {
            devargs,
            pod_port: 1,
        },
    )
    .unwrap();
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");

    let (status, out) = common::stop_with_sigterm(child);
    assert!(
        status.success(),
        "exit {status:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("podlane-fastpath:"));
    assert!(!sock.exists(), "socket removed on exit");
    assert!(
        !std::path::Path::new(&format!("/var/run/dpdk/podlane-ctl-{id}")).exists(),
        "runtime dir removed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
