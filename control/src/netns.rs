//! Pod interface plumbing: configures the pod's TAP inside the pod's network namespace (MAC,
//! MTU, address, default route), verifies it (CHECK) and removes it.
//!
//! Decision: the pod port is a TAP device the fast path creates directly inside the pod's netns
//! under its final name (`AddPort tap:eth0@/var/run/netns/…`: a fast-path thread joins the
//! namespace for the creation only). The fast path's worker reads and writes the TAP's file
//! descriptor itself, as VPP's tapv2 and DPDK's `net_tap` do inside, so a pod port is not a DPDK
//! ethdev port and a node is not bounded by `RTE_MAX_ETHPORTS` (32 in Debian's DPDK). Creating
//! it in place rather than moving it there matters: a move between namespaces costs ~24 ms
//! under the kernel's RTNL lock, which serialised concurrent ADDs. The descriptor works from any
//! thread whatever namespace the device lives in (`fastpath/daemon/tests/tap_ports.rs`); a TAP
//! without `IFF_VNET_HDR` makes the pod's kernel finish every checksum before the frame reaches
//! the fast path, which verifies them. The alternative, a veth pair with a `net_af_packet` port
//! on the host end, hands the fast path frames with checksums left to an offload that never
//! happens (veth's `CHECKSUM_PARTIAL`) unless every pod's TX offload is turned off, and costs a
//! kernel copy per direction more. The price of TAP: the pod's interface lives only as long as
//! the fast-path process, so after a fast-path restart the control daemon re-creates every
//! pod's TAP in its netns with the same name, MAC and address (`Daemon::resync`).
//!
//! The pod's side is set to a normal interface (promisc and allmulticast off), as the reference
//! plugins leave theirs and as the `tuning` plugin's CHECK expects.
//!
//! The work is done with iproute2, as the reference plugins' behaviour is defined by it: one
//! `ip -batch` run inside the namespace through `nsenter --net=PATH`.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use fastpath::wire::MacAddr;

/// What a pod interface must look like.
#[derive(Debug, Clone)]
pub struct PodIf<'a> {
    /// The netns path.
    pub netns: &'a str,
    /// The name inside the pod.
    pub ifname: &'a str,
    /// MAC.
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u16,
    /// Address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Gateway.
    pub gateway: Ipv4Addr,
}

/// The fast path's `AddPort` device for a pod: a TAP named `ifname` created inside the
/// network namespace file `netns`, served by the worker through its descriptor.
pub fn tap_devargs(ifname: &str, netns: &str) -> String {
    format!("tap:{ifname}@{netns}")
}

/// True when `path` names an existing network namespace file.
pub fn netns_exists(path: &str) -> bool {
    Path::new(path).exists()
}

/// Runs `cmd` (an `ip` command), with `input` on its standard input: its standard output, or
/// its standard error as the error.
pub(crate) fn run(cmd: &mut Command, input: Option<&str>) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{what}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn in_netns(netns: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={netns}")).arg("ip");
    c
}

/// Configures the pod's TAP (created in the pod's namespace by the fast path). On failure the
/// caller removes the TAP (the fast path's RemovePort), which takes whatever was configured
/// with it.
pub fn attach(p: &PodIf<'_>) -> Result<(), String> {
    let script = format!(
        "link set dev {ifname} address {mac} mtu {mtu} promisc off allmulticast off\n\
         addr add {ip}/{len} dev {ifname}\n\
         link set dev {ifname} up\n\
         link set dev lo up\n\
         route add default via {gw} dev {ifname} onlink\n",
        ifname = p.ifname,
        mac = p.mac,
        mtu = p.mtu,
        ip = p.ip,
        len = p.prefix_len,
        gw = p.gateway,
    );
    run(in_netns(p.netns).args(["-batch", "-"]), Some(&script)).map(|_| ())
}

/// Removes the pod's interface if it is still there (idempotent).
pub fn detach(netns: &str, ifname: &str) -> Result<(), String> {
    if !netns_exists(netns) {
        return Ok(());
    }
    match run(in_netns(netns).args(["link", "show", "dev", ifname]), None) {
        Ok(_) => run(in_netns(netns).args(["link", "del", "dev", ifname]), None).map(|_| ()),
        Err(_) => Ok(()),
    }
}

/// Verifies the interface, its MAC and address, and the default route (CHECK).
pub fn check(p: &PodIf<'_>) -> Result<(), String> {
    if !netns_exists(p.netns) {
        return Err(format!("netns {} does not exist", p.netns));
    }
    let links = run(
        in_netns(p.netns).args(["-j", "addr", "show", "dev", p.ifname]),
        None,
    )?;
    let v: serde_json::Value =
        serde_json::from_str(&links).map_err(|e| format!("ip -j addr: {e}"))?;
    let link = v
        .get(0)
        .ok_or_else(|| format!("no interface {} in {}", p.ifname, p.netns))?;
    let mac = link.get("address").and_then(|m| m.as_str()).unwrap_or("");
    if !mac.eq_ignore_ascii_case(&p.mac.to_string()) {
        return Err(format!("{} has MAC {mac}, expected {}", p.ifname, p.mac));
    }
    if link.get("mtu").and_then(|m| m.as_u64()) != Some(u64::from(p.mtu)) {
        return Err(format!("{} MTU is not {}", p.ifname, p.mtu));
    }
    let has_ip = link
        .get("addr_info")
        .and_then(|a| a.as_array())
        .is_some_and(|a| {
            a.iter().any(|i| {
                i.get("local").and_then(|l| l.as_str()) == Some(p.ip.to_string().as_str())
                    && i.get("prefixlen").and_then(|l| l.as_u64()) == Some(u64::from(p.prefix_len))
            })
        });
    if !has_ip {
        return Err(format!("{} lacks {}/{}", p.ifname, p.ip, p.prefix_len));
    }
    let routes = run(
        in_netns(p.netns).args(["-j", "route", "show", "default"]),
        None,
    )?;
    let r: serde_json::Value =
        serde_json::from_str(&routes).map_err(|e| format!("ip -j route: {e}"))?;
    let ok = r.as_array().is_some_and(|a| {
        a.iter().any(|x| {
            x.get("gateway").and_then(|g| g.as_str()) == Some(p.gateway.to_string().as_str())
                && x.get("dev").and_then(|d| d.as_str()) == Some(p.ifname)
        })
    });
    if !ok {
        return Err(format!(
            "no default route via {} dev {} in {}",
            p.gateway, p.ifname, p.netns
        ));
    }
    Ok(())
}
