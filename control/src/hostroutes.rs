//! The node kernel's routes into the pod network and the Service CIDR, through the fast path's
//! host-path port.
//!
//! When DPDK owns the uplink, the node's kernel reaches pods and Services only through the
//! host-path TAP (`role = "host"` in the fast path's config: `podlane-host` in the DaemonSet,
//! `host0` in the lab). Kubernetes needs that path: kubelet's HTTP and TCP probes go from the
//! node to pod addresses (a pod whose readiness probe cannot reach it never becomes a Service
//! endpoint), and host-network pods and the API server (to an aggregated API or a webhook)
//! reach ClusterIPs, which the fast path NATs for the node (`fastpath/src/pipeline/host.rs`).
//! With `host_interface` set, the daemon keeps, in the namespace it runs in, one route per
//! known node's pod CIDR (its own included) and one for the Service CIDR, each
//! `via <this node's gateway address> dev <host_interface> onlink`: the fast path answers ARP
//! for the gateway on the host path, takes the frames, and routes, NATs or tunnels them.
//!
//! Source addresses: to its own pods and to Services the kernel picks the source as for any
//! route out of that interface (the node address the lab gives `host0`). To other nodes' pods
//! it sends from this node's VTEP address (the pod CIDR's network address, `src` on those
//! routes), which the daemon holds on the interface as a /32 — as a Flannel node's kernel sends
//! from the address its `flannel.1` holds. A packet from a node address that arrives through a
//! tunnel fails a strict reverse-path filter (`rp_filter=1`, as hardened Flannel nodes run it)
//! on the far node, whose route back to a node address leaves by its underlay; one from the
//! VTEP address passes, the far node's route to that address being through its tunnel. The
//! answers come back through the tunnel to the VTEP address, and the fast path hands what no
//! NATed flow of its own takes to the kernel (`fastpath/src/pipeline/route.rs`,
//! `to_vtep_address`).
//!
//! The routes carry their own protocol number ([`RT_PROTO`]) so the daemon can tell them from
//! anyone else's: at its first sync it reads the ones a previous run left and changes only what
//! differs (no window without routes across a restart); a node that leaves takes its route
//! with it. A prefix someone else already routes (through any interface, by any other
//! protocol) is left to them: the add fails, and the failure is counted and logged. Nothing is
//! added before this node's own entry is known (the gateway is its pod CIDR's first address).
//! A failed sync (the interface not there yet: the fast path creates it) is counted and tried
//! again every few seconds (`Daemon::sync_host_routes`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use fastpath::cidr::Ipv4Cidr;

use crate::cluster::Cluster;
use crate::netns;
use crate::store;

/// The routing protocol number podlane's host routes carry (`ip route … proto 112`): not one
/// iproute2 names (`/etc/iproute2/rt_protos`), nor a routing daemon's we know of (BIRD, Calico's
/// Felix and FRR use others).
pub const RT_PROTO: u8 = 112;

/// One route into the fast path: `dst via gateway dev <interface> onlink [src address]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostRoute {
    /// The destination prefix (a pod CIDR or the Service CIDR).
    pub dst: Ipv4Cidr,
    /// This node's gateway address (the fast path answers ARP for it on the host path).
    pub via: Ipv4Addr,
    /// The source address the kernel sends from (`src`): this node's VTEP address on the
    /// routes to other nodes' pods, none on the others (the kernel's choice).
    pub src: Option<Ipv4Addr>,
}

/// The routes node `node` wants in `cluster`: every node's pod CIDR and the Service CIDR,
/// through this node's gateway, other nodes' pod CIDRs from its VTEP address. None while the
/// node itself is unknown.
pub fn wanted(cluster: &Cluster, node: &str) -> BTreeSet<HostRoute> {
    let Some(me) = cluster.node(node) else {
        return BTreeSet::new();
    };
    let via = store::gateway(&me.pod_cidr);
    let vtep = me.pod_cidr.network();
    cluster
        .nodes()
        .map(|n| HostRoute {
            dst: n.pod_cidr,
            via,
            src: (n.name != me.name).then_some(vtep),
        })
        .chain([HostRoute {
            dst: cluster.service_cidr(),
            via,
            src: None,
        }])
        .collect()
}

/// The routes installed through one interface, as last brought in line.
#[derive(Debug)]
pub struct HostRoutes {
    ifname: String,
    /// `ip` and its namespace options (`-n NAME` in tests).
    ip: Vec<String>,
    /// What is installed, once known (read from the kernel at the first sync).
    installed: Option<BTreeSet<HostRoute>>,
}

impl HostRoutes {
    /// Routes through `ifname` in the daemon's own network namespace.
    pub fn new(ifname: &str) -> HostRoutes {
        HostRoutes::with_ip(ifname, vec!["ip".into()])
    }

    /// Routes through `ifname` in the named network namespace (`ip -n NAME`).
    pub fn in_netns(ifname: &str, netns: &str) -> HostRoutes {
        HostRoutes::with_ip(ifname, vec!["ip".into(), "-n".into(), netns.into()])
    }

    fn with_ip(ifname: &str, ip: Vec<String>) -> HostRoutes {
        HostRoutes {
            ifname: ifname.to_string(),
            ip,
            installed: None,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.ip[0]);
        c.args(&self.ip[1..]);
        c
    }

    /// Forgets what is installed: the next sync reads the kernel's routes again.
    pub fn forget(&mut self) {
        self.installed = None;
    }

    /// How many routes are installed, as the last sync left them (0 before the first, or when
    /// the kernel could not be read).
    pub fn len(&self) -> usize {
        self.installed.as_ref().map_or(0, BTreeSet::len)
    }

    /// True when none is installed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The routes of [`RT_PROTO`] the kernel has through this interface (IPv4).
    pub fn read(&self) -> Result<BTreeSet<HostRoute>, String> {
        let out = netns::run(
            self.cmd().args([
                "-4",
                "-j",
                "route",
                "show",
                "dev",
                &self.ifname,
                "proto",
                &RT_PROTO.to_string(),
            ]),
            None,
        )?;
        parse_routes(&out)
    }

    /// Brings the kernel's routes in line with `want`: adds or replaces the missing ones,
    /// deletes the ones no longer wanted, in one `ip -batch`. On the first call, what a previous
    /// run left is read first. On failure (some lines may have applied: `-force` goes on past
    /// one that fails) what is in place is read back from the kernel, so [`HostRoutes::len`]
    /// stays true; if even that fails, the next call reads it again.
    pub fn sync(&mut self, want: &BTreeSet<HostRoute>) -> Result<(), String> {
        let installed = match self.installed.take() {
            Some(i) => i,
            None => self.read()?,
        };
        let script = script(&self.ifname, &installed, want);
        if !script.is_empty() {
            // `-force`: one line failing (a prefix someone else routes) does not stop the rest.
            if let Err(e) = netns::run(self.cmd().args(["-force", "-batch", "-"]), Some(&script)) {
                self.installed = self.read().ok();
                return Err(e);
            }
        }
        self.installed = Some(want.clone());
        Ok(())
    }
}

/// The `ip -batch` lines that turn `installed` (ours, as read or last synced) into `want`
/// through `ifname`: stale prefixes deleted; a wanted prefix we already route through another
/// gateway or from another source replaced; a new prefix *added* — which fails, and is
/// reported, rather than replace a route of another protocol someone keeps for it (`replace`
/// would take it over). The source addresses the routes name are the daemon's on the
/// interface, as /32s: put there (again: `replace` is idempotent) before a route that names one
/// is added — the kernel refuses a `src` it does not hold, and takes every route naming an
/// address with the address, so a route missing is all the check needs to see — and deleted
/// once no wanted route names them.
fn script(ifname: &str, installed: &BTreeSet<HostRoute>, want: &BTreeSet<HostRoute>) -> String {
    let ours: BTreeSet<Ipv4Cidr> = installed.iter().map(|r| r.dst).collect();
    let wanted: BTreeSet<Ipv4Cidr> = want.iter().map(|r| r.dst).collect();
    let want_src: BTreeSet<Ipv4Addr> = want.iter().filter_map(|r| r.src).collect();
    let had_src: BTreeSet<Ipv4Addr> = installed.iter().filter_map(|r| r.src).collect();
    let mut s = String::new();
    for r in installed.difference(want) {
        if !wanted.contains(&r.dst) {
            s.push_str(&format!(
                "route del {} dev {ifname} proto {RT_PROTO}\n",
                r.dst
            ));
        }
    }
    for a in had_src.difference(&want_src) {
        s.push_str(&format!("address del {a}/32 dev {ifname}\n"));
    }
    let added: Vec<&HostRoute> = want.difference(installed).collect();
    let sources: BTreeSet<Ipv4Addr> = added.iter().filter_map(|r| r.src).collect();
    for a in &sources {
        s.push_str(&format!("address replace {a}/32 dev {ifname}\n"));
    }
    for r in added {
        let verb = if ours.contains(&r.dst) {
            "replace"
        } else {
            "add"
        };
        let src = r.src.map_or_else(String::new, |a| format!(" src {a}"));
        s.push_str(&format!(
            "route {verb} {} via {} dev {ifname} onlink{src} proto {RT_PROTO}\n",
            r.dst, r.via
        ));
    }
    s
}

/// Routes from `ip -j route show` output: `dst`, `gateway` and `prefsrc` of each (those
/// without a gateway skipped).
fn parse_routes(json: &str) -> Result<BTreeSet<HostRoute>, String> {
    if json.trim().is_empty() {
        return Ok(BTreeSet::new());
    }
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("ip -j route: {e}"))?;
    let mut out = BTreeSet::new();
    for r in v.as_array().into_iter().flatten() {
        let (Some(dst), Some(gw)) = (
            r.get("dst").and_then(|d| d.as_str()),
            r.get("gateway").and_then(|g| g.as_str()),
        ) else {
            continue;
        };
        // A host route is printed without its /32.
        let dst = if dst.contains('/') {
            dst.to_string()
        } else {
            format!("{dst}/32")
        };
        let src = match r.get("prefsrc").and_then(|p| p.as_str()) {
            Some(p) => match p.parse::<Ipv4Addr>() {
                Ok(a) => Some(a),
                Err(_) => continue,
            },
            None => None,
        };
        if let (Ok(dst), Ok(via)) = (dst.parse::<Ipv4Cidr>(), gw.parse::<Ipv4Addr>()) {
            out.insert(HostRoute { dst, via, src });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(dst: &str, via: &str) -> HostRoute {
        HostRoute {
            dst: dst.parse().unwrap(),
            via: via.parse().unwrap(),
            src: None,
        }
    }

    fn from(route: HostRoute, src: &str) -> HostRoute {
        HostRoute {
            src: Some(src.parse().unwrap()),
            ..route
        }
    }

    #[test]
    fn the_script_adds_what_is_missing_and_deletes_what_is_stale() {
        let installed: BTreeSet<_> = [
            r("10.244.1.0/24", "10.244.1.1"),
            from(r("10.244.9.0/24", "10.244.1.1"), "10.244.1.0"),
            r("10.244.3.0/24", "10.244.1.1"),
            r("10.96.0.0/12", "10.244.7.1"),
        ]
        .into();
        let want: BTreeSet<_> = [
            r("10.244.1.0/24", "10.244.1.1"),
            from(r("10.244.2.0/24", "10.244.1.1"), "10.244.1.0"),
            from(r("10.244.3.0/24", "10.244.1.1"), "10.244.1.0"),
            r("10.96.0.0/12", "10.244.1.1"),
        ]
        .into();
        // The source address goes on the interface before the first route that names it; a
        // route of ours from no source (an older daemon's) is replaced by one from it.
        assert_eq!(
            script("host0", &installed, &want),
            "route del 10.244.9.0/24 dev host0 proto 112\n\
             address replace 10.244.1.0/32 dev host0\n\
             route replace 10.96.0.0/12 via 10.244.1.1 dev host0 onlink proto 112\n\
             route add 10.244.2.0/24 via 10.244.1.1 dev host0 onlink src 10.244.1.0 proto 112\n\
             route replace 10.244.3.0/24 via 10.244.1.1 dev host0 onlink src 10.244.1.0 proto 112\n"
        );
        assert_eq!(script("host0", &want, &want), "");
        // Nothing wanted any more: the routes go, and the address no route names.
        assert_eq!(
            script("host0", &want, &BTreeSet::new()),
            "route del 10.96.0.0/12 dev host0 proto 112\n\
             route del 10.244.1.0/24 dev host0 proto 112\n\
             route del 10.244.2.0/24 dev host0 proto 112\n\
             route del 10.244.3.0/24 dev host0 proto 112\n\
             address del 10.244.1.0/32 dev host0\n"
        );
        // Only routes without a source to add: no address line.
        let own: BTreeSet<_> = [r("10.244.1.0/24", "10.244.1.1")].into();
        assert_eq!(
            script("host0", &BTreeSet::new(), &own),
            "route add 10.244.1.0/24 via 10.244.1.1 dev host0 onlink proto 112\n"
        );
    }

    #[test]
    fn routes_are_read_from_iproute2s_json() {
        let json = r#"[{"dst":"10.244.2.0/24","gateway":"10.244.1.1","dev":"host0","protocol":"112","flags":["onlink"]},
            {"dst":"10.1.0.0/24","dev":"host0","protocol":"kernel","scope":"link","prefsrc":"10.1.0.10","flags":[]},
            {"dst":"10.244.3.0/24","gateway":"10.244.1.1","dev":"host0","protocol":"112","prefsrc":"10.244.1.0","flags":["onlink"]},
            {"dst":"10.244.4.0/24","gateway":"10.244.1.1","dev":"host0","protocol":"112","prefsrc":"garbage","flags":["onlink"]},
            {"dst":"10.9.9.9","gateway":"10.244.1.1","dev":"host0","protocol":"112","flags":["onlink"]}]"#;
        assert_eq!(
            parse_routes(json).unwrap(),
            [
                r("10.244.2.0/24", "10.244.1.1"),
                from(r("10.244.3.0/24", "10.244.1.1"), "10.244.1.0"),
                r("10.9.9.9/32", "10.244.1.1")
            ]
            .into()
        );
        assert!(parse_routes("").unwrap().is_empty());
        assert!(parse_routes("[]\n").unwrap().is_empty());
        assert!(parse_routes("garbage").is_err());
    }
}
