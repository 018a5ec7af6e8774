//! VXLAN decapsulation checks (RFC 7348 §5) and the strip of the outer headers.

use crate::buf::PacketBuf;
use crate::counters::{DropReason, Event};
use crate::pipeline::{Ctx, Ip4};
use crate::wire::udp::UdpPacket;
use crate::wire::vxlan::VxlanHeader;
use crate::wire::{be16, ethertype, MacAddr};

/// Checks the VXLAN packet whose outer IPv4 header is `outer` and strips the outer headers, so
/// the inner Ethernet frame starts at 0. Like a Linux VXLAN device: a non-zero outer UDP checksum
/// must be right, the I flag must be set (reserved bits are ignored on receipt), the VNI must be
/// ours, the source must be a known node, and the inner destination MAC must be our VTEP's.
#[inline(always)]
pub(crate) fn check_and_strip<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    pkt: &mut B,
    outer: &Ip4,
) -> Result<(), DropReason> {
    let d = pkt.data();
    let udp =
        UdpPacket::new_checked(&d[outer.l4..outer.end]).map_err(|_| DropReason::L4Malformed)?;
    let inner = outer.l4 + 8 + 8;
    if (udp.len() as usize) < 8 + 8 + 14 {
        return Err(DropReason::VxlanInner);
    }
    if udp.checksum() != 0
        && !udp.verify_checksum(
            core::net::Ipv4Addr::from(outer.src),
            core::net::Ipv4Addr::from(outer.dst),
        )
    {
        return Err(DropReason::VxlanUdpChecksum);
    }
    let vx = VxlanHeader::new_unchecked(&d[outer.l4 + 8..inner]);
    if !vx.i_flag() {
        return Err(DropReason::VxlanFlags);
    }
    if vx.vni() != cx.t.node.vni {
        return Err(DropReason::VxlanVni);
    }
    if !cx.cache.known_vtep(cx.t, outer.src) {
        return Err(DropReason::VxlanUnknownVtep);
    }
    let inner_end = outer.l4 + udp.len() as usize;
    if MacAddr::from_bytes(&d[inner..inner + 6]) != cx.t.node.vtep_mac
        || be16(d, inner + 12) != ethertype::IPV4
    {
        return Err(DropReason::VxlanInner);
    }
    let len = d.len();
    pkt.trim(len - inner_end);
    pkt.adj(inner);
    cx.c.inc(Event::Decap);
    Ok(())
}
