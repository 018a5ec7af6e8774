//! Desired state → fast-path updates for this node: the full state for a resync, and the
//! smallest set of [`Update`]s that turns one cluster state into another.
//!
//! Routing decisions (as in the simulator's model, `sim/src/desired.rs`): a pod goes into its
//! own node's pod table only; every node routes to every *other* node; every node carries every
//! Service.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use fastpath::tables::pods::PodSpec;
use fastpath::tables::routes::RemoteNodeSpec;
use fastpath::tables::services::{FrontendKey, ServiceSpec};
use fastpath::update::{FullState, Update};

use crate::cluster::{route, Applied, Cluster};

/// The full state of node `me`'s fast path.
pub fn full_state(cluster: &Cluster, me: &str, pods: Vec<PodSpec>) -> FullState {
    FullState {
        pods,
        nodes: cluster.routes_for(me),
        services: cluster.frontends(),
    }
}

/// Updates that turn node routes `old` into `new`.
pub fn diff_routes(old: &[RemoteNodeSpec], new: &[RemoteNodeSpec], out: &mut Vec<Update>) {
    let o: BTreeMap<Ipv4Addr, &RemoteNodeSpec> = old.iter().map(|n| (n.underlay_ip, n)).collect();
    let n: BTreeMap<Ipv4Addr, &RemoteNodeSpec> = new.iter().map(|n| (n.underlay_ip, n)).collect();
    for ip in o.keys().filter(|ip| !n.contains_key(ip)) {
        out.push(Update::RemoveNode { underlay_ip: *ip });
    }
    for (ip, spec) in &n {
        if o.get(ip) != Some(spec) {
            out.push(Update::AddNode((*spec).clone()));
        }
    }
}

/// Updates that turn Service frontends `old` into `new`: removed frontends, added ones, and for
/// a changed frontend only its endpoint changes when nothing else changed (so its Maglev table
/// moves by the minimum and live flows keep their backends).
pub fn diff_services(old: &[ServiceSpec], new: &[ServiceSpec], out: &mut Vec<Update>) {
    let o: BTreeMap<FrontendKey, &ServiceSpec> = old.iter().map(|s| (s.frontend, s)).collect();
    let n: BTreeMap<FrontendKey, &ServiceSpec> = new.iter().map(|s| (s.frontend, s)).collect();
    for f in o.keys().filter(|f| !n.contains_key(f)) {
        out.push(Update::RemoveService { frontend: *f });
    }
    for (f, s) in &n {
        match o.get(f) {
            None => out.push(Update::AddService((*s).clone())),
            Some(prev) if prev == s => {}
            Some(prev)
                if prev.name == s.name
                    && prev.node_port == s.node_port
                    && prev.node_port_local == s.node_port_local =>
            {
                let pe: BTreeMap<(Ipv4Addr, u16), _> =
                    prev.endpoints.iter().map(|e| ((e.ip, e.port), e)).collect();
                let ne: BTreeMap<(Ipv4Addr, u16), _> =
                    s.endpoints.iter().map(|e| ((e.ip, e.port), e)).collect();
                for (ip, port) in pe.keys().filter(|k| !ne.contains_key(k)) {
                    out.push(Update::RemoveEndpoint {
                        frontend: *f,
                        ip: *ip,
                        port: *port,
                    });
                }
                for (k, e) in &ne {
                    if pe.get(k) != Some(e) {
                        out.push(Update::SetEndpoint {
                            frontend: *f,
                            endpoint: **e,
                        });
                    }
                }
            }
            Some(_) => out.push(Update::AddService((*s).clone())),
        }
    }
}

/// Updates that bring node `me`'s fast path from the state before change `a` to `cluster`,
/// the state after it: only the objects the change touched are looked at (O(change)).
pub fn diff_applied(cluster: &Cluster, a: &Applied, me: &str) -> Vec<Update> {
    let mut out = Vec::new();
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for (name, prev) in a.nodes().filter(|(name, _)| *name != me) {
        old.extend(prev.map(route));
        new.extend(cluster.node(name).map(route));
    }
    diff_routes(&old, &new, &mut out);
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for ((ns, name), prev) in a.services() {
        old.extend(prev.into_iter().flat_map(|s| s.frontends()));
        new.extend(
            cluster
                .service(ns, name)
                .into_iter()
                .flat_map(|s| s.frontends()),
        );
    }
    diff_services(&old, &new, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tests::SAMPLE;
    use crate::cluster::ClusterSpec;

    /// Applying the diff to a fast path holding `old` gives exactly the full state of `new`.
    fn check(old: &ClusterSpec, new: &ClusterSpec) -> Vec<Update> {
        let mut w = fastpath::fixtures::node_a_writer();
        let mut c = old.to_cluster().unwrap();
        w.apply(Update::Snapshot(full_state(&c, "node-a", vec![])))
            .unwrap();
        let applied = c.replace(new, &|_| Ok(())).unwrap();
        let ups = diff_applied(&c, &applied, "node-a");
        w.apply_batch(ups.clone()).unwrap();
        let want = full_state(&new.to_cluster().unwrap(), "node-a", vec![]);
        assert_eq!(fastpath_canonical(w.full_state()), fastpath_canonical(want));
        ups
    }

    fn fastpath_canonical(mut s: FullState) -> FullState {
        s.nodes.sort_by_key(|n| n.underlay_ip);
        s.services.sort_by_key(|s| s.frontend);
        for s in &mut s.services {
            s.endpoints.sort_by_key(|e| (e.ip, e.port));
        }
        s
    }

    #[test]
    fn diffs_are_minimal_and_exact() {
        let a = ClusterSpec::parse(SAMPLE).unwrap();
        assert!(check(&a, &a).is_empty());
        // One endpoint goes terminating (in both of kube-dns's frontends), web's one endpoint
        // is removed: three endpoint updates, no frontend replaced.
        let mut b = a.clone();
        b.services[0].endpoints[0].terminating = true;
        b.services[1].endpoints.clear();
        let ups = check(&a, &b);
        assert_eq!(ups.len(), 3, "{ups:?}");
        assert!(ups.iter().all(|u| matches!(
            u,
            Update::SetEndpoint { .. } | Update::RemoveEndpoint { .. }
        )));
        // A NodePort change replaces that frontend; a node leaves; a service goes.
        let mut c = a.clone();
        c.services[1].ports[0].node_port = Some(30081);
        c.nodes.pop();
        c.services.remove(0);
        let ups = check(&a, &c);
        assert!(ups.contains(&Update::RemoveNode {
            underlay_ip: Ipv4Addr::new(10, 1, 0, 11)
        }));
        assert_eq!(ups.len(), 4, "{ups:?}"); // web replaced, node-b gone, kube-dns's 2 gone
                                             // And back.
        check(&c, &a);
        // externalTrafficPolicy Local on the Service with a NodePort replaces its frontend
        // (the fast path builds the local table with it), and back.
        let mut d = a.clone();
        let web = d.services.iter_mut().find(|s| s.name == "web").unwrap();
        web.external_traffic_policy = crate::cluster::TrafficPolicy::Local;
        let ups = check(&a, &d);
        assert!(
            matches!(&ups[..], [Update::AddService(s)] if s.node_port_local),
            "{ups:?}"
        );
        check(&d, &a);
    }
}
