//! The golden test of the DPDK path: the pipeline runs on real mbufs from `net_pcap` ports
//! (EAL without hugepages). Input pcaps carry every path of the brief (local pod to pod, pod to
//! remote pod, VXLAN from the uplink, ClusterIP, NodePort, ARP for the gateway and the node IP,
//! host-path traffic, malformed frames); each port's output pcap must match the expected frames
//! byte for byte, tshark must dissect the uplink output as valid VXLAN, and every mbuf must be
//! back in its pool at the end.
//!
//! The EAL can be initialised once per process, so this file holds one test.

mod common;

use common::{assert_frames, read_pcap, write_pcap};

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;

use daemon::worker::{PodPort, PortSet, Worker};
use dpdk::{Eal, EalConfig, PktPool, Port, PortConfig};
use fastpath::counters::{DropReason, Event};
use fastpath::fixtures::*;
use fastpath::pipeline::Pipeline;
use fastpath::rcu::Publisher;
use fastpath::tables::conntrack::Timeouts;
use fastpath::tables::services::{EndpointSpec, EndpointState};
use fastpath::tables::NodeConfig;
use fastpath::update::Update;
use fastpath::wire::arp::op;
use fastpath::wire::frame::{self, Addrs};
use fastpath::wire::tcp::flags as tf;
use fastpath::wire::MacAddr;

fn gw() -> MacAddr {
    NodeConfig::example_node_a().gateway_mac
}

fn a_to(dst: Ipv4Addr) -> Addrs {
    Addrs::new(POD_A_MAC, gw(), POD_A_IP, dst)
}

fn ttl(a: Addrs, src_mac: MacAddr, dst_mac: MacAddr, ttl: u8) -> Addrs {
    Addrs {
        src_mac,
        dst_mac,
        ttl,
        ..a
    }
}

#[test]
fn pipeline_on_net_pcap_ports_matches_golden_output() {
    let dir = std::env::temp_dir().join(format!("podlane-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();

    // ---- inputs ----------------------------------------------------------------------------
    let outer_b_to_a = Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip);
    let c_to_a = frame::udp_frame(
        &Addrs {
            ttl: 63,
            ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, POD_A_IP)
        },
        7000,
        40000,
        b"from pod c",
    );
    let ext = Addrs::new(EXTERNAL_MAC, a.underlay_mac, EXTERNAL_IP, a.underlay_ip);
    let uplink_in = vec![
        frame::vxlan_frame(&outer_b_to_a, 55555, 1, &c_to_a, true),
        frame::arp_frame(
            MacAddr::BROADCAST,
            op::REQUEST,
            EXTERNAL_MAC,
            EXTERNAL_IP,
            MacAddr::ZERO,
            a.underlay_ip,
        ),
        frame::tcp_frame(&ext, 51000, WEB_NODEPORT, 7, 0, tf::SYN, b""),
        frame::vxlan_frame(&outer_b_to_a, 55555, 2, &c_to_a, false), // wrong VNI
        frame::tcp_frame(&ext, 50022, 22, 1, 0, tf::SYN, b""),       // ssh to the node
        vec![0xde, 0xad],                                            // runt
    ];
    let pod_a_in = vec![
        frame::arp_frame(
            MacAddr::BROADCAST,
            op::REQUEST,
            POD_A_MAC,
            POD_A_IP,
            MacAddr::ZERO,
            a.gateway_ip(),
        ),
        frame::udp_frame(&a_to(POD_B_IP), 40000, 7777, b"to pod b"),
        frame::udp_frame(&a_to(POD_C_IP), 40001, 7777, b"to pod c"),
        frame::udp_frame(&a_to(DNS_VIP), 40002, 53, b"dns query"),
        frame::tcp_frame(&a_to(WEB_VIP), 40003, 80, 100, 0, tf::SYN, b""),
        {
            let mut f = frame::udp_frame(&a_to(POD_B_IP), 1, 2, b"bad checksum");
            f[24] ^= 0xff;
            f
        },
        {
            // A source address that is not pod A's (valid checksum).
            frame::udp_frame(
                &Addrs {
                    src_ip: Ipv4Addr::new(10, 244, 1, 99),
                    ..a_to(POD_B_IP)
                },
                1,
                2,
                b"spoofed",
            )
        },
    ];
    let pod_b_in = vec![
        // The web backend answers pod A's SYN (sent to the VIP) and the external client's.
        frame::tcp_frame(
            &Addrs::new(POD_B_MAC, gw(), POD_B_IP, POD_A_IP),
            8080,
            40003,
            900,
            101,
            tf::SYN | tf::ACK,
            b"",
        ),
        frame::tcp_frame(
            &Addrs::new(POD_B_MAC, gw(), POD_B_IP, EXTERNAL_IP),
            8080,
            51000,
            500,
            8,
            tf::SYN | tf::ACK,
            b"",
        ),
    ];
    let files = [
        ("uplink", write_pcap(&dir, "uplink_in.pcap", &uplink_in)),
        ("host", write_pcap(&dir, "host_in.pcap", &[])),
        ("poda", write_pcap(&dir, "poda_in.pcap", &pod_a_in)),
        ("podb", write_pcap(&dir, "podb_in.pcap", &pod_b_in)),
    ];
    let out = |n: &str| dir.join(format!("{n}_out.pcap"));
    let devargs: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, (n, f))| {
            format!(
                "net_pcap{i},rx_pcap={},tx_pcap={}",
                f.display(),
                out(n).display()
            )
        })
        .collect();

    // ---- DPDK ------------------------------------------------------------------------------
    let eal = Eal::init(&EalConfig::for_tests(
        &format!("podlane-golden-{}", std::process::id()),
        &[],
    ))
    .expect("EAL without hugepages");
    // Devices are attached at run time (hot-plug), as pod ports will be.
    let ids: Vec<u16> = devargs
        .iter()
        .map(|d| eal.attach(d).expect("attach net_pcap"))
        .collect();
    assert!(matches!(
        eal.attach("net_nosuchdriver0"),
        Err(dpdk::DpdkError::Device { .. })
    ));
    let pool = Arc::new(PktPool::new("golden", 8191, 256).unwrap());
    let cfg = PortConfig::default();
    let mut ports: Vec<Option<Arc<Port>>> = ids
        .iter()
        .map(|&id| Some(Arc::new(Port::start(id, &cfg, &pool).expect("port start"))))
        .collect();
    assert_eq!(ports[0].as_ref().unwrap().driver(), "net_pcap");

    // ---- tables: DNS served by pod C (remote), web by pod B (local) ------------------------
    let mut w = node_a_writer();
    for (svc, ep, port) in [(DNS, POD_C_IP, 5353), (WEB, POD_B_IP, 8080)] {
        let mut s = services().into_iter().find(|s| s.frontend == svc).unwrap();
        s.endpoints = vec![EndpointSpec {
            ip: ep,
            port,
            state: EndpointState::Ready,
        }];
        w.apply(Update::AddService(s)).unwrap();
    }
    let pipeline = Pipeline::new(w.reader(), 4096, Timeouts::default());
    let set = Publisher::new(PortSet {
        uplink: ports[0].take().unwrap(),
        host: ports[1].take(),
        pods: [2, 3]
            .map(|i| {
                let p = ports[i].take().and_then(|p| Arc::try_unwrap(p).ok());
                p.map(|p| Arc::new(PodPort::Eth(p)))
            })
            .to_vec(),
    });
    let mut worker = Worker::new(pipeline, set.reader(), 16);
    let mut idle = 0;
    let mut now = 1000;
    while idle < 100 {
        if worker.poll(now) == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
        now += 1;
    }
    let counters = worker.counters().snapshot();
    let stats = worker.stats();
    let ct_len = worker.pipeline().conntrack().len();
    drop(worker);
    for port in set.current().all() {
        port.close().unwrap();
    }
    assert_eq!(pool.in_use(), 0, "every mbuf back in the pool");

    // ---- expected outputs ------------------------------------------------------------------
    assert_eq!(
        stats.rx,
        (uplink_in.len() + pod_a_in.len() + pod_b_in.len()) as u64
    );
    let uplink_out = read_pcap(&out("uplink"));
    let host_out = read_pcap(&out("host"));
    let poda_out = read_pcap(&out("poda"));
    let podb_out = read_pcap(&out("podb"));
    let sport = |f: &Vec<u8>| u16::from_be_bytes([f[34], f[35]]);
    let outer_a_to_b = Addrs::new(a.underlay_mac, b.underlay_mac, a.underlay_ip, b.underlay_ip);
    let want_uplink = vec![
        {
            let mut r = frame::arp_frame(
                EXTERNAL_MAC,
                op::REPLY,
                a.underlay_mac,
                a.underlay_ip,
                EXTERNAL_MAC,
                EXTERNAL_IP,
            );
            r[6..12].copy_from_slice(a.underlay_mac.as_bytes());
            r
        },
        frame::vxlan_frame(
            &outer_a_to_b,
            sport(&uplink_out[1]),
            1,
            &frame::udp_frame(
                &ttl(a_to(POD_C_IP), a.vtep_mac, b.vtep_mac, 63),
                40001,
                7777,
                b"to pod c",
            ),
            false,
        ),
        frame::vxlan_frame(
            &outer_a_to_b,
            sport(&uplink_out[2]),
            1,
            &frame::udp_frame(
                &ttl(a_to(POD_C_IP), a.vtep_mac, b.vtep_mac, 63),
                40002,
                5353,
                b"dns query",
            ),
            false,
        ),
        frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(a.underlay_mac, EXTERNAL_MAC, a.underlay_ip, EXTERNAL_IP)
            },
            WEB_NODEPORT,
            51000,
            500,
            8,
            tf::SYN | tf::ACK,
            b"",
        ),
    ];
    // The node's own traffic reaches its kernel untouched.
    let want_host = vec![uplink_in[4].clone()];
    let want_poda = vec![
        frame::udp_frame(
            &Addrs {
                ttl: 62,
                ..Addrs::new(gw(), POD_A_MAC, POD_C_IP, POD_A_IP)
            },
            7000,
            40000,
            b"from pod c",
        ),
        {
            let mut r = frame::arp_frame(
                POD_A_MAC,
                op::REPLY,
                gw(),
                a.gateway_ip(),
                POD_A_MAC,
                POD_A_IP,
            );
            r[6..12].copy_from_slice(gw().as_bytes());
            r
        },
        frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(gw(), POD_A_MAC, WEB_VIP, POD_A_IP)
            },
            80,
            40003,
            900,
            101,
            tf::SYN | tf::ACK,
            b"",
        ),
    ];
    let want_podb = vec![
        frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(gw(), POD_B_MAC, EXTERNAL_IP, POD_B_IP)
            },
            51000,
            8080,
            7,
            0,
            tf::SYN,
            b"",
        ),
        frame::udp_frame(
            &ttl(a_to(POD_B_IP), gw(), POD_B_MAC, 63),
            40000,
            7777,
            b"to pod b",
        ),
        frame::tcp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(gw(), POD_B_MAC, POD_A_IP, POD_B_IP)
            },
            40003,
            8080,
            100,
            0,
            tf::SYN,
            b"",
        ),
    ];
    assert_frames("uplink", &uplink_out, &want_uplink);
    assert_frames("host", &host_out, &want_host);
    assert_frames("pod A", &poda_out, &want_poda);
    assert_frames("pod B", &podb_out, &want_podb);

    // ---- counters ----------------------------------------------------------------------------
    for r in [
        DropReason::VxlanVni,
        DropReason::Runt,
        DropReason::Ipv4Checksum,
        DropReason::SpoofedIp,
    ] {
        assert_eq!(counters.drop_count(r), 1, "{r:?}");
    }
    assert_eq!(counters.event_count(Event::Encap), 2);
    assert_eq!(counters.event_count(Event::Decap), 1);
    assert_eq!(counters.event_count(Event::CtNew), 3);
    assert_eq!(ct_len, 3);

    // ---- an independent dissector on the uplink output ---------------------------------------
    let t = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(out("uplink"))
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-Y",
            "vxlan",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "vxlan.vni",
            "-e",
            "ip.checksum.status",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
        ])
        .output()
        .expect("tshark must be installed (deploy/setup-host.sh installs it)");
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let text = String::from_utf8(t.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        assert!(
            l.starts_with("1|1,1|10.1.0.10,10.244.1.2|10.1.0.11,10.244.2.2"),
            "{l}"
        );
    }
    // Every DPDK object goes before the EAL does (ports hold the pool).
    drop(set);
    drop(pool);
    eal.cleanup();
    let _ = std::fs::remove_dir_all(&dir);
}
