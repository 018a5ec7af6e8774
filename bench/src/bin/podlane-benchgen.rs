//! `podlane-benchgen`: writes the input pcap of a benchmark profile and the node state the
//! daemon needs for it (lab node A: pods A and B, node B remote, kube-dns served by pod C on
//! node B so ClusterIP traffic is DNAT + encap).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use fastpath::fixtures::*;
use fastpath::tables::NodeConfig;
use fastpath::wire::frame::{self, Addrs};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Profile {
    /// Pod A → pod B (same node).
    Local,
    /// Pod A → pod C: VXLAN encap.
    Encap,
    /// VXLAN from node B (pod C → pod A): decap.
    Decap,
    /// Pod A → kube-dns ClusterIP (served by pod C): DNAT + encap.
    Dnat,
}

/// Benchmark inputs: 64-byte frames (60 + FCS) of one profile, and node A's state.
#[derive(Debug, Parser)]
struct Args {
    /// The traffic profile.
    #[arg(long, value_enum)]
    profile: Profile,
    /// Distinct flows (source ports).
    #[arg(long, default_value_t = 1024)]
    flows: u16,
    /// Output pcap.
    #[arg(long)]
    pcap: PathBuf,
    /// Output state file (JSON FullState for node A).
    #[arg(long)]
    state: PathBuf,
    /// Decap: give the outer UDP header a checksum, as a Linux VXLAN device (a Flannel node)
    /// does; podlane itself sends none.
    #[arg(long)]
    outer_checksum: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let a = NodeConfig::example_node_a();
    let b = NodeConfig::example_node_b();
    let payload = [0x5au8; 18];
    let from_a = |dst, sport, dport| {
        frame::udp_frame(
            &Addrs::new(POD_A_MAC, a.gateway_mac, POD_A_IP, dst),
            sport,
            dport,
            &payload,
        )
    };
    let frames: Vec<Vec<u8>> = (0..args.flows.max(1))
        .map(|i| {
            let sport = 1024 + i;
            match args.profile {
                Profile::Local => from_a(POD_B_IP, sport, 7777),
                Profile::Encap => from_a(POD_C_IP, sport, 7777),
                Profile::Dnat => from_a(DNS_VIP, sport, 53),
                Profile::Decap => {
                    let inner = frame::udp_frame(
                        &Addrs {
                            ttl: 63,
                            ..Addrs::new(b.vtep_mac, a.vtep_mac, POD_C_IP, POD_A_IP)
                        },
                        sport,
                        7777,
                        &payload,
                    );
                    frame::vxlan_frame(
                        &Addrs::new(b.underlay_mac, a.underlay_mac, b.underlay_ip, a.underlay_ip),
                        49152 + i % 16384,
                        1,
                        &inner,
                        args.outer_checksum,
                    )
                }
            }
        })
        .collect();
    let recs: Vec<(u64, &[u8])> = frames.iter().map(|f| (0, f.as_slice())).collect();
    fastpath::pcap::write_file(&args.pcap, &recs)?;
    let state = podlane_bench::gen::profile::node_a_dns_via_pod_c();
    std::fs::write(&args.state, serde_json::to_string_pretty(&state)?)?;
    Ok(())
}
