//! Health-check NodePorts (`control/src/healthcheck.rs`) against the running daemon and fast
//! path: the answers a cloud load balancer gets — kube-proxy's status codes, headers and body —
//! following endpoint, port, policy and fast-path changes.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{wait_for, Node};
use serde_json::{json, Value};

const CLUSTER: &str = "service_cidr: 10.96.0.0/12\n\
nodes:\n\
\x20 - {name: node-a, underlay_ip: 10.1.0.10, underlay_mac: \"02:00:0a:01:00:0a\", vtep_mac: \"02:76:74:65:70:0a\", pod_cidr: 10.244.1.0/24}\n\
\x20 - {name: node-b, underlay_ip: 10.1.0.11, underlay_mac: \"02:00:0a:01:00:0b\", vtep_mac: \"02:76:74:65:70:0b\", pod_cidr: 10.244.2.0/24}\n\
services: []\n";

/// A port in the NodePort range nothing listens on.
fn free_node_port(after: u16) -> u16 {
    (after..32767)
        .find(|&p| TcpListener::bind(("0.0.0.0", p)).is_ok())
        .expect("a free port in the NodePort range")
}

/// GET / on the health-check port: (status, headers in lower case, JSON body); `None` if
/// nothing listens.
fn check(port: u16) -> Option<(u16, String, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).ok()?,
    ))
}

fn lb(hc: u16, endpoints: Value) -> String {
    json!({
        "namespace": "default", "name": "lb", "cluster_ip": "10.96.0.21",
        "ports": [{"port": 80, "protocol": "TCP", "target_port": 8080, "node_port": 30082}],
        "external_traffic_policy": "local", "health_check_node_port": hc,
        "endpoints": endpoints,
    })
    .to_string()
}

fn wait_answer(port: u16, what: &str, want: impl Fn(u16, &Value) -> bool) -> (u16, String, Value) {
    let mut last = None;
    wait_for(what, 20, || {
        last = check(port);
        last.as_ref().is_some_and(|(s, _, v)| want(*s, v))
    });
    last.unwrap()
}

#[test]
fn load_balancers_see_which_nodes_have_ready_endpoints() {
    let mut node = Node::start("hc", CLUSTER, 16);
    let hc = free_node_port(31000);
    let eps = json!([{"ip": "10.244.1.3"}, {"ip": "10.244.2.2"}]);
    let (s, v) = node.api("PUT", "/v1/services/default/lb", &lb(hc, eps.clone()));
    assert_eq!(s, 200, "{v}");

    // One ready endpoint here (the other is node-b's), the fast path in sync: 200.
    let (status, head, body) = wait_answer(hc, "a 200", |s, _| s == 200);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert_eq!(
        body,
        json!({"service": {"namespace": "default", "name": "lb"},
               "localEndpoints": 1, "serviceProxyHealthy": true})
    );

    // Only node-b's endpoint, then only a terminating one here: 503, no local endpoint.
    for eps in [
        json!([{"ip": "10.244.2.2"}]),
        json!([{"ip": "10.244.1.3", "terminating": true}, {"ip": "10.244.2.2"}]),
    ] {
        let (s, v) = node.api("PUT", "/v1/services/default/lb", &lb(hc, eps));
        assert_eq!(s, 200, "{v}");
        let (_, _, body) = wait_answer(hc, "a 503", |s, _| s == 503);
        assert_eq!(body["localEndpoints"], 0);
        assert_eq!(body["serviceProxyHealthy"], true);
    }

    // The port moves: the old one closes, the new one answers.
    let hc2 = free_node_port(hc + 1);
    let two = json!([{"ip": "10.244.1.3"}, {"ip": "10.244.1.4"}, {"ip": "10.244.2.2"}]);
    let (s, v) = node.api("PUT", "/v1/services/default/lb", &lb(hc2, two));
    assert_eq!(s, 200, "{v}");
    let (_, _, body) = wait_answer(hc2, "the new port", |s, _| s == 200);
    assert_eq!(body["localEndpoints"], 2);
    wait_for("the old port to close", 20, || check(hc).is_none());

    // The fast path gone: the node is not healthy, whatever its endpoints.
    node.stop_fastpath();
    let (_, _, body) = wait_answer(hc2, "an unhealthy answer", |s, _| s == 503);
    assert_eq!(body["serviceProxyHealthy"], false);
    assert_eq!(body["localEndpoints"], 2);
    node.start_fastpath();
    wait_answer(hc2, "healthy again", |s, _| s == 200);
    let metrics = node.api("GET", "/metrics", "").1;
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains("podlane_health_check_ports{node=\"node-a\"} 1"),
        "{metrics}"
    );

    // A port another program holds: counted, and taken once it is free.
    let hc3 = free_node_port(hc2 + 1);
    let squatter = TcpListener::bind(("0.0.0.0", hc3)).unwrap();
    let (s, v) = node.api("PUT", "/v1/services/default/lb", &lb(hc3, eps.clone()));
    assert_eq!(s, 200, "{v}");
    wait_for("a bind error counted", 20, || {
        let m = node.api("GET", "/metrics", "").1;
        !m.as_str()
            .unwrap_or_default()
            .contains("podlane_health_check_bind_errors_total{node=\"node-a\"} 0")
    });
    drop(squatter);
    let (_, _, body) = wait_answer(hc3, "the port once free", |s, _| s == 200);
    assert_eq!(body["localEndpoints"], 1);

    // Only with the Local policy; not on a NodePort.
    let mut bad: Value = serde_json::from_str(&lb(hc2, eps.clone())).unwrap();
    bad["external_traffic_policy"] = json!("cluster");
    let (s, v) = node.api("PUT", "/v1/services/default/lb", &bad.to_string());
    assert_eq!(s, 400, "{v}");
    let (s, v) = node.api("PUT", "/v1/services/default/lb", &lb(30082, eps));
    assert_eq!(s, 400, "{v}");

    // The Service gone: nothing listens.
    let (s, v) = node.api("DELETE", "/v1/services/default/lb", "");
    assert_eq!(s, 200, "{v}");
    wait_for("the port to close", 20, || check(hc3).is_none());
}
