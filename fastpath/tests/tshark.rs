//! The cross-node path's output, written to a pcap and dissected by tshark: an independent
//! dissector must see valid VXLAN (RFC 7348) with a correct outer IPv4 checksum.

mod common;

use common::*;
use fastpath::counters::Disposition;
use fastpath::fixtures::*;
use fastpath::pcap::PcapWriter;
use fastpath::pipeline::Ingress;
use fastpath::wire::frame;
use fastpath::wire::tcp::flags as tf;
use std::process::Command;

#[test]
fn tshark_dissects_encapsulated_output_as_valid_vxlan() {
    let mut n = Node::a();
    let path = std::env::temp_dir().join(format!("podlane-encap-{}.pcap", std::process::id()));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    let inputs = [
        frame::udp_frame(&pod_a_to(POD_C_IP), 40000, 7777, b"udp to pod c"),
        frame::tcp_frame(&pod_a_to(POD_C_IP), 40001, 80, 1, 0, tf::SYN, b""),
        frame::icmp_echo_frame(&pod_a_to(POD_C_IP), true, 9, 1, b"ping pod c"),
    ];
    for (i, f) in inputs.iter().enumerate() {
        let (d, out) = n.run(Ingress::Pod(POD_A_PORT), f);
        assert_eq!(d, Disposition::ToUplink);
        w.write_packet(i as u64 * 1000, &out).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&path)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "vxlan.flags",
            "-e",
            "vxlan.vni",
            "-e",
            "ip.checksum.status",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "ip.flags.df",
            "-e",
            "_ws.expert",
        ])
        .output()
        .expect("tshark must be installed (deploy/setup-host.sh installs it)");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in lines {
        let f: Vec<&str> = l.split('|').collect();
        assert_eq!(
            f[0], "0x0800",
            "I flag only (tshark shows the 16 flag bits): {l}"
        );
        assert_eq!(f[1], "1", "VNI 1: {l}");
        // Outer and inner IPv4 checksums: both "1" (good) in tshark's status encoding.
        assert_eq!(f[2], "1,1", "IPv4 checksums good: {l}");
        assert_eq!(f[3], "10.1.0.10,10.244.1.2", "outer then inner source: {l}");
        assert_eq!(
            f[4], "10.1.0.11,10.244.2.2",
            "outer then inner destination: {l}"
        );
        assert!(f[5].starts_with("4789"), "outer UDP to 4789: {l}");
        assert!(f[6].starts_with("1"), "outer DF set: {l}");
        let expert = f.get(7).copied().unwrap_or("");
        assert!(
            !expert.contains("Warning") && !expert.contains("Error"),
            "no expert warnings or errors (chat-level notes such as a SYN are fine): {l}"
        );
    }
}
