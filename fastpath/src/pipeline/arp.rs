//! Proxy ARP (RFC 826 replies built in place). Pods get the gateway MAC for every address they
//! ask about (as Calico does), so nothing is flooded; the uplink gets the underlay MAC for the
//! node IP; the host path gets the gateway MAC for pod addresses.

use crate::buf::PacketBuf;
use crate::counters::{Disposition, DropReason, Event};
use crate::pipeline::Ctx;
use crate::tables::pods::PortOwner;
use crate::wire::arp::{op, ArpPacket};
use crate::wire::MacAddr;

/// Turns the ARP request at `l3` into the reply "`target` is at `mac`", in place, and sets the
/// Ethernet header to go back to the requester.
fn reply_in_place(d: &mut [u8], l3: usize, mac: MacAddr) {
    let requester = MacAddr::from_bytes(&d[6..12]);
    d[0..6].copy_from_slice(requester.as_bytes());
    d[6..12].copy_from_slice(mac.as_bytes());
    let mut a = ArpPacket::new_unchecked(&mut d[l3..]);
    let sha = a.sender_hardware_addr();
    let spa = a.sender_protocol_addr();
    let tpa = a.target_protocol_addr();
    a.set_operation(op::REPLY);
    a.set_target_hardware_addr(sha);
    a.set_target_protocol_addr(spa);
    a.set_sender_hardware_addr(mac);
    a.set_sender_protocol_addr(tpa);
}

/// Parses an Ethernet/IPv4 ARP packet at `l3`.
fn parse(d: &[u8], l3: usize) -> Result<ArpPacket<&[u8]>, DropReason> {
    let a = ArpPacket::new_checked(d.get(l3..).ok_or(DropReason::ArpMalformed)?)
        .map_err(|_| DropReason::ArpMalformed)?;
    a.check_ethernet_ipv4()
        .map_err(|_| DropReason::ArpMalformed)?;
    Ok(a)
}

/// ARP from a pod: answered with the gateway MAC for any address but the pod's own.
pub(crate) fn from_pod<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    port: u16,
    owner: PortOwner,
    pkt: &mut B,
) -> Disposition {
    let d = pkt.data();
    let a = match parse(d, 14) {
        Ok(a) => a,
        Err(r) => return Disposition::Drop(r),
    };
    if a.sender_hardware_addr() != owner.mac {
        return Disposition::Drop(DropReason::SpoofedMac);
    }
    let spa = a.sender_protocol_addr().to_bits();
    let tpa = a.target_protocol_addr().to_bits();
    if a.operation() != op::REQUEST || spa == 0 || tpa == owner.ip {
        // Replies, RFC 5227 probes (sender 0.0.0.0) and announcements/duplicate-address checks
        // for the pod's own address get no answer: answering a probe would tell the pod its own
        // address is taken.
        return Disposition::Drop(DropReason::ArpIgnored);
    }
    if spa != owner.ip {
        return Disposition::Drop(DropReason::SpoofedIp);
    }
    reply_in_place(pkt.data_mut(), 14, cx.t.node.gateway_mac);
    cx.c.inc(Event::ArpReplied);
    Disposition::ToPod(port)
}

/// ARP from the uplink: requests for the node's underlay IP are answered with the uplink MAC;
/// everything else is the node kernel's business.
pub(crate) fn from_uplink<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B, l3: usize) -> Disposition {
    let a = match parse(pkt.data(), l3) {
        Ok(a) => a,
        Err(r) => return Disposition::Drop(r),
    };
    let node = &cx.t.node;
    if a.operation() == op::REQUEST
        && a.target_protocol_addr() == node.underlay_ip
        && a.sender_protocol_addr() != node.underlay_ip
    {
        reply_in_place(pkt.data_mut(), l3, node.underlay_mac);
        cx.c.inc(Event::ArpReplied);
        return Disposition::ToUplink;
    }
    Disposition::ToHost
}

/// ARP from the host path: requests for addresses in the local pod CIDR are answered with the
/// gateway MAC (the kernel routes pod traffic through the fast path); the rest goes out.
pub(crate) fn from_host<B: PacketBuf>(cx: &mut Ctx<'_>, pkt: &mut B, l3: usize) -> Disposition {
    let a = match parse(pkt.data(), l3) {
        Ok(a) => a,
        Err(r) => return Disposition::Drop(r),
    };
    let node = &cx.t.node;
    if a.operation() == op::REQUEST && node.pod_cidr.contains(a.target_protocol_addr()) {
        reply_in_place(pkt.data_mut(), l3, node.gateway_mac);
        cx.c.inc(Event::ArpReplied);
        return Disposition::ToHost;
    }
    Disposition::ToUplink
}
