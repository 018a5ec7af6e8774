//! Traffic profiles: the frames a profile sends (built with the fast-path core's frame
//! builders), the node state the fast path needs for them (lab node A), where the frames enter
//! and leave, and the exact frames podlane must emit for them (for byte-wise checks).

use std::net::Ipv4Addr;

use clap::ValueEnum;
use fastpath::fixtures::*;
use fastpath::tables::pods::PodSpec;
use fastpath::tables::services::{EndpointSpec, EndpointState, FrontendKey, Protocol, ServiceSpec};
use fastpath::tables::NodeConfig;
use fastpath::update::FullState;
use fastpath::wire::frame::{self, Addrs};

use super::stamp;

/// A traffic profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Pod A → pod B (same node): MAC rewrite, TTL−1.
    Local,
    /// Pod A → pod C (node B): VXLAN encap.
    Encap,
    /// VXLAN from node B (pod C → pod A) on the uplink: decap.
    Decap,
    /// Pod A → kube-dns ClusterIP, established flows (backend pod C on node B): DNAT + encap.
    Clusterip,
    /// Pod A → kube-dns ClusterIP, a new flow per packet: 64,512 source ports cycled through
    /// a conntrack table of 4,096 entries (see [`Profile::conntrack_entries`]), so nearly
    /// every packet inserts (and evicts) an entry: insert + Maglev pick + DNAT + encap.
    ClusteripNew,
    /// An external client (10.1.0.99) → node A's IP, UDP NodePort 30007 (backend pod B, local):
    /// DNAT from the uplink.
    Nodeport,
    /// From pod A: 20% local, 50% encap, 30% ClusterIP established (by flow).
    Mix,
}

/// Where a profile's frames enter the fast path (and the generator sends them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Pod A's port (pod port 0).
    PodA,
    /// Pod B's port (pod port 1).
    PodB,
    /// The uplink.
    Uplink,
}

/// The UDP NodePort Service the bench adds to node A's state.
pub const ECHO_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);
/// Its port.
pub const ECHO_PORT: u16 = 7;
/// Its NodePort.
pub const ECHO_NODEPORT: u16 = 30007;
/// The backend port (pod B).
pub const ECHO_BACKEND_PORT: u16 = 7007;
/// Destination port of pod-to-pod traffic.
pub const POD_DPORT: u16 = 7777;

/// One flow of a profile: what enters, and the offset of the signature in it and in the
/// frame that leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The frame the generator sends (signature zeroed).
    pub frame: Vec<u8>,
    /// Offset of the signature in `frame`.
    pub stamp_at: usize,
    /// Where it enters.
    pub ingress: Side,
    /// Where it must leave.
    pub egress: Side,
    /// Offset of the signature in the frame that leaves.
    pub out_stamp_at: usize,
    /// What kind of flow it is (for the mix).
    pub kind: Profile,
    /// The flow's source port (inner).
    pub sport: u16,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 7] = [
        Profile::Local,
        Profile::Encap,
        Profile::Decap,
        Profile::Clusterip,
        Profile::ClusteripNew,
        Profile::Nodeport,
        Profile::Mix,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Local => "local",
            Profile::Encap => "encap",
            Profile::Decap => "decap",
            Profile::Clusterip => "clusterip",
            Profile::ClusteripNew => "clusterip-new",
            Profile::Nodeport => "nodeport",
            Profile::Mix => "mix",
        }
    }

    /// Where the profile's frames enter.
    pub fn ingress(self) -> Side {
        match self {
            Profile::Decap | Profile::Nodeport => Side::Uplink,
            _ => Side::PodA,
        }
    }

    /// The conntrack capacity the fast path should run this profile with (None: its default).
    pub fn conntrack_entries(self) -> Option<u32> {
        match self {
            Profile::ClusteripNew => Some(4096),
            _ => None,
        }
    }

    /// Distinct flows actually generated for `flows` asked.
    pub fn flows(self, flows: usize) -> usize {
        match self {
            Profile::ClusteripNew => 64512,
            _ => flows.clamp(1, 64512),
        }
    }
}

/// Payload bytes for a frame of `size` bytes on the wire (with FCS) on the pod side: at least
/// the signature.
pub fn payload_len(size: usize) -> usize {
    size.saturating_sub(4 + 14 + 20 + 8).max(stamp::LEN)
}

/// The payload: the signature template, then a fixed pattern.
pub fn payload(size: usize) -> Vec<u8> {
    let mut p = stamp::template().to_vec();
    p.extend((0..payload_len(size) - stamp::LEN).map(|i| (i % 251) as u8));
    p
}

fn a() -> NodeConfig {
    NodeConfig::example_node_a()
}

fn b() -> NodeConfig {
    NodeConfig::example_node_b()
}

fn from_pod_a(dst: Ipv4Addr) -> Addrs {
    Addrs::new(POD_A_MAC, a().gateway_mac, POD_A_IP, dst)
}

fn outer_b_to_a() -> Addrs {
    Addrs::new(
        b().underlay_mac,
        a().underlay_mac,
        b().underlay_ip,
        a().underlay_ip,
    )
}

/// The outer header node A puts on traffic to node B (the UDP source port varies by flow).
pub fn outer_a_to_b() -> Addrs {
    Addrs::new(
        a().underlay_mac,
        b().underlay_mac,
        a().underlay_ip,
        b().underlay_ip,
    )
}

/// The flow's source port: flow `i` of the profile.
fn sport(i: usize) -> u16 {
    1024 + (i % 64512) as u16
}

/// The kind of flow `i` of a profile (the mix spreads over kinds).
fn kind(p: Profile, i: usize) -> Profile {
    match p {
        Profile::Mix => match i % 10 {
            0 | 1 => Profile::Local,
            2..=6 => Profile::Encap,
            _ => Profile::Clusterip,
        },
        p => p,
    }
}

/// Flow `i` of profile `p`, frames of `size` bytes (pod side, with FCS).
pub fn template(p: Profile, i: usize, size: usize) -> Template {
    let pl = payload(size);
    let sp = sport(i);
    let k = kind(p, i);
    let (frame, stamp_at, egress, out_stamp_at) = match k {
        Profile::Local => (
            frame::udp_frame(&from_pod_a(POD_B_IP), sp, POD_DPORT, &pl),
            42,
            Side::PodB,
            42,
        ),
        Profile::Encap => (
            frame::udp_frame(&from_pod_a(POD_C_IP), sp, POD_DPORT, &pl),
            42,
            Side::Uplink,
            92,
        ),
        Profile::Clusterip | Profile::ClusteripNew => (
            frame::udp_frame(&from_pod_a(DNS_VIP), sp, 53, &pl),
            42,
            Side::Uplink,
            92,
        ),
        Profile::Decap => {
            let inner = frame::udp_frame(
                &Addrs {
                    ttl: 63,
                    ..Addrs::new(b().vtep_mac, a().vtep_mac, POD_C_IP, POD_A_IP)
                },
                sp,
                POD_DPORT,
                &pl,
            );
            (
                frame::vxlan_frame(
                    &outer_b_to_a(),
                    49152 + (i % 16384) as u16,
                    1,
                    &inner,
                    false,
                ),
                92,
                Side::PodA,
                42,
            )
        }
        Profile::Nodeport => (
            frame::udp_frame(
                &Addrs::new(EXTERNAL_MAC, a().underlay_mac, EXTERNAL_IP, a().underlay_ip),
                sp,
                ECHO_NODEPORT,
                &pl,
            ),
            42,
            Side::PodB,
            42,
        ),
        Profile::Mix => unreachable!("kind() resolves the mix"),
    };
    Template {
        frame,
        stamp_at,
        ingress: p.ingress(),
        egress,
        out_stamp_at,
        kind: k,
        sport: sp,
    }
}

/// Every flow of a profile.
pub fn templates(p: Profile, flows: usize, size: usize) -> Vec<Template> {
    (0..p.flows(flows)).map(|i| template(p, i, size)).collect()
}

/// The frame podlane must emit for `t` whose signature bytes are `sig` (copied from the input),
/// with the outer UDP source port `outer_sport` where the output is VXLAN (podlane picks it
/// from the inner flow hash).
pub fn expected_output(t: &Template, size: usize, sig: &[u8], outer_sport: u16) -> Vec<u8> {
    let mut pl = payload(size);
    pl[..stamp::LEN].copy_from_slice(&sig[..stamp::LEN]);
    let inner_to_c = |dst_port| {
        frame::udp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(a().vtep_mac, b().vtep_mac, POD_A_IP, POD_C_IP)
            },
            t.sport,
            dst_port,
            &pl,
        )
    };
    match t.kind {
        Profile::Local => frame::udp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(a().gateway_mac, POD_B_MAC, POD_A_IP, POD_B_IP)
            },
            t.sport,
            POD_DPORT,
            &pl,
        ),
        Profile::Encap => frame::vxlan_frame(
            &outer_a_to_b(),
            outer_sport,
            1,
            &inner_to_c(POD_DPORT),
            false,
        ),
        Profile::Clusterip | Profile::ClusteripNew => {
            frame::vxlan_frame(&outer_a_to_b(), outer_sport, 1, &inner_to_c(5353), false)
        }
        Profile::Decap => frame::udp_frame(
            &Addrs {
                ttl: 62,
                ..Addrs::new(a().gateway_mac, POD_A_MAC, POD_C_IP, POD_A_IP)
            },
            t.sport,
            POD_DPORT,
            &pl,
        ),
        Profile::Nodeport => frame::udp_frame(
            &Addrs {
                ttl: 63,
                ..Addrs::new(a().gateway_mac, POD_B_MAC, EXTERNAL_IP, POD_B_IP)
            },
            t.sport,
            ECHO_BACKEND_PORT,
            &pl,
        ),
        Profile::Mix => unreachable!("templates carry resolved kinds"),
    }
}

/// Node A's lab state with kube-dns served by pod C (on node B) alone, so that ClusterIP
/// traffic is DNAT + encap (also the state `podlane-benchgen` writes).
pub fn node_a_dns_via_pod_c() -> FullState {
    let mut state = node_a_state();
    for s in &mut state.services {
        if s.frontend == DNS {
            s.endpoints = vec![EndpointSpec {
                ip: POD_C_IP,
                port: 5353,
                state: EndpointState::Ready,
            }];
        }
    }
    state
}

/// Node A's state for the bench: pods A and B, node B, kube-dns served by pod C alone (so
/// ClusterIP traffic is DNAT + encap), the web Service, and a UDP NodePort Service (30007)
/// served by pod B.
pub fn node_a_bench_state() -> FullState {
    let mut state = node_a_dns_via_pod_c();
    state.services.push(ServiceSpec {
        name: "bench/echo:udp".into(),
        frontend: FrontendKey {
            ip: ECHO_VIP,
            port: ECHO_PORT,
            protocol: Protocol::Udp,
        },
        node_port: Some(ECHO_NODEPORT),
        node_port_local: false,
        endpoints: vec![EndpointSpec {
            ip: POD_B_IP,
            port: ECHO_BACKEND_PORT,
            state: EndpointState::Ready,
        }],
    });
    debug_assert!(state.pods.iter().any(|p: &PodSpec| p.ip == POD_B_IP));
    state
}

/// Checks one frame podlane emitted on `side` against the profile: it must be the exact
/// expected output of the flow it belongs to (found by the signature and the inner source
/// port), the outer UDP source port in 49152–65535. Returns a description of the first
/// difference.
pub fn check_output(
    p: Profile,
    flows: usize,
    size: usize,
    side: Side,
    got: &[u8],
) -> Result<(), String> {
    let at = stamp::find(got, 42).ok_or("no signature in the frame")?;
    // The inner UDP header ends where the signature starts.
    let sp = u16::from_be_bytes([got[at - 8], got[at - 7]]);
    let n = p.flows(flows);
    let i = usize::from(sp.wrapping_sub(1024));
    if sp < 1024 || i >= n {
        return Err(format!("source port {sp}: not a flow of this profile"));
    }
    let t = template(p, i, size);
    if t.egress != side {
        return Err(format!("flow {i} should leave on {:?}", t.egress));
    }
    let outer_sport = if at == 92 {
        let s = u16::from_be_bytes([got[34], got[35]]);
        if s < 49152 {
            return Err(format!("outer UDP source port {s} below 49152"));
        }
        s
    } else {
        0
    };
    let want = expected_output(&t, size, &got[at..], outer_sport);
    if want != got {
        let first = want
            .iter()
            .zip(got)
            .position(|(w, g)| w != g)
            .unwrap_or(want.len().min(got.len()));
        return Err(format!(
            "flow {i} ({:?}): differs at byte {first} (lengths {} / {})\n got: {:02x?}\nwant: {:02x?}",
            t.kind,
            got.len(),
            want.len(),
            got,
            want
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastpath::buf::{HeapBuf, PacketBuf};
    use fastpath::counters::Disposition;
    use fastpath::pipeline::{Ingress, Pipeline};
    use fastpath::tables::conntrack::Timeouts;
    use fastpath::tables::Capacities;
    use fastpath::update::{TableWriter, Update};

    /// The pipeline itself (on heap buffers) produces exactly the expected frames for every
    /// profile, stamped.
    #[test]
    fn pipeline_output_matches_expected_frames() {
        let mut w = TableWriter::new(a(), Capacities::default()).unwrap();
        w.apply(Update::Snapshot(node_a_bench_state())).unwrap();
        let mut pl = Pipeline::new(w.reader(), 65536, Timeouts::default());
        for p in Profile::ALL {
            for size in [64, 128] {
                let flows = 40;
                let ts = templates(p, flows, size);
                for (k, t) in ts.iter().enumerate().take(60) {
                    let mut f = t.frame.clone();
                    stamp::write(
                        &mut f[t.stamp_at..],
                        k as u32 * 7919,
                        123_456_789 + k as u64,
                    );
                    let mut bufs = [HeapBuf::from_frame(&f)];
                    let mut out = [Disposition::ToHost];
                    let ing = match t.ingress {
                        Side::PodA => Ingress::Pod(0),
                        Side::PodB => Ingress::Pod(1),
                        Side::Uplink => Ingress::Uplink,
                    };
                    pl.process(ing, &mut bufs, &mut out, 1000);
                    let side = match out[0] {
                        Disposition::ToUplink => Side::Uplink,
                        Disposition::ToPod(0) => Side::PodA,
                        Disposition::ToPod(1) => Side::PodB,
                        d => panic!("{p:?} flow {k}: {d:?}"),
                    };
                    let got = bufs[0].data().to_vec();
                    check_output(p, flows, size, side, &got)
                        .unwrap_or_else(|e| panic!("{p:?} size {size}: {e}"));
                    assert_eq!(stamp::find(&got, t.out_stamp_at), Some(t.out_stamp_at));
                }
            }
        }
    }
}
