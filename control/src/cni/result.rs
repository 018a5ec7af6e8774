//! Results: the ADD success result in each version's format (spec 1.1 section 5 "Success";
//! spec 0.3.1/0.4.0 "Result"), the `prevResult` a chained ADD extends and a CHECK verifies,
//! and the error and version results.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Map, Value};

use super::config::{kind, show, Version};
use crate::cniwire::{code, Attachment, CniError};

/// Interface keys that spec 1.1 added (dropped when writing an older version).
const INTERFACE_1_1_KEYS: [&str; 3] = ["mtu", "socketPath", "pciID"];
/// Route keys that spec 1.1 added (dropped when writing an older version).
const ROUTE_1_1_KEYS: [&str; 5] = ["mtu", "advmss", "priority", "table", "scope"];

/// A previous result: the lists a plugin must pass through, each entry kept as given (so
/// fields this plugin does not know survive) once its known fields are checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrevResult {
    /// `interfaces`.
    pub interfaces: Vec<Map<String, Value>>,
    /// `ips`.
    pub ips: Vec<Map<String, Value>>,
    /// `routes`.
    pub routes: Vec<Map<String, Value>>,
    /// `dns`.
    pub dns: Option<Map<String, Value>>,
}

fn bad_prev(msg: impl Into<String>) -> CniError {
    CniError::new(
        code::INVALID_CONFIG,
        format!("invalid prevResult: {}", msg.into()),
    )
}

/// `a.b.c.d/n` or `x:y::z/n`: the address and prefix length.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn list<'a>(
    prev: &'a Map<String, Value>,
    key: &str,
) -> Result<Vec<&'a Map<String, Value>>, CniError> {
    match prev.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(m) => Ok(m),
                other => Err(bad_prev(format!(
                    "{key}[{i}] is {}, not an object",
                    kind(other)
                ))),
            })
            .collect(),
        Some(other) => Err(bad_prev(format!("{key} is {}, not a list", kind(other)))),
    }
}

fn optional_string<'a>(
    entry: &'a Map<String, Value>,
    what: &str,
    key: &str,
) -> Result<Option<&'a str>, CniError> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad_prev(format!(
            "{what}.{key} is {}, not a string",
            kind(other)
        ))),
    }
}

fn ip_field(entry: &Map<String, Value>, what: &str, key: &str) -> Result<(), CniError> {
    match optional_string(entry, what, key)? {
        Some(s) if !s.is_empty() && s.parse::<IpAddr>().is_err() => {
            Err(bad_prev(format!("{what}.{key} {s:?} is not an IP address")))
        }
        _ => Ok(()),
    }
}

fn cidr_field(entry: &Map<String, Value>, what: &str, key: &str) -> Result<(), CniError> {
    match optional_string(entry, what, key)? {
        None => Err(bad_prev(format!("{what} has no {key}"))),
        Some(s) if parse_cidr(s).is_none() => Err(bad_prev(format!(
            "{what}.{key} {s:?} is not an address in CIDR notation"
        ))),
        Some(_) => Ok(()),
    }
}

/// Checks a `prevResult` object's structure (code 7 if it is not a result): lists of objects,
/// interface names, CIDR addresses, IP gateways, non-negative interface indexes. Other
/// top-level keys are not part of the result format and are dropped.
pub fn parse_prev_result(prev: &Map<String, Value>) -> Result<PrevResult, CniError> {
    let interfaces = list(prev, "interfaces")?;
    for (i, entry) in interfaces.iter().enumerate() {
        let what = format!("interfaces[{i}]");
        if optional_string(entry, &what, "name")?.is_none() {
            return Err(bad_prev(format!("{what} has no name")));
        }
        optional_string(entry, &what, "mac")?;
        optional_string(entry, &what, "sandbox")?;
    }
    let ips = list(prev, "ips")?;
    for (i, entry) in ips.iter().enumerate() {
        let what = format!("ips[{i}]");
        cidr_field(entry, &what, "address")?;
        ip_field(entry, &what, "gateway")?;
        match entry.get("interface") {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64().is_some() => {}
            Some(other) => {
                return Err(bad_prev(format!(
                    "{what}.interface is {}, not an index",
                    show(other)
                )))
            }
        }
    }
    let routes = list(prev, "routes")?;
    for (i, entry) in routes.iter().enumerate() {
        let what = format!("routes[{i}]");
        cidr_field(entry, &what, "dst")?;
        ip_field(entry, &what, "gw")?;
    }
    let dns = match prev.get("dns") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(other) => return Err(bad_prev(format!("dns is {}, not an object", kind(other)))),
    };
    Ok(PrevResult {
        interfaces: interfaces.into_iter().cloned().collect(),
        ips: ips.into_iter().cloned().collect(),
        routes: routes.into_iter().cloned().collect(),
        dns,
    })
}

impl PrevResult {
    /// Rewrites the entries into `version`'s format: `ips[].version` present ("4"/"6", from
    /// the address) before 1.0.0 and absent from 1.0.0; the 1.1 interface and route fields
    /// dropped before 1.1.0 (what libcni's result conversion does).
    pub fn convert_to(&mut self, version: Version) {
        for ip in &mut self.ips {
            if version.has_ip_version() {
                let v6 = ip
                    .get("address")
                    .and_then(Value::as_str)
                    .and_then(parse_cidr)
                    .is_some_and(|(a, _)| a.is_ipv6());
                ip.insert("version".into(), json!(if v6 { "6" } else { "4" }));
            } else {
                ip.remove("version");
            }
        }
        if !version.has_1_1_fields() {
            for i in &mut self.interfaces {
                for k in INTERFACE_1_1_KEYS {
                    i.remove(k);
                }
            }
            for r in &mut self.routes {
                for k in ROUTE_1_1_KEYS {
                    r.remove(k);
                }
            }
        }
    }

    /// The index of the interface named `ifname` in sandbox `netns`.
    pub fn find_interface(&self, ifname: &str, netns: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| {
            i.get("name").and_then(Value::as_str) == Some(ifname)
                && i.get("sandbox").and_then(Value::as_str) == Some(netns)
        })
    }

    /// What CHECK expects for the attachment `ifname` in `netns`: the interface and its first
    /// IPv4 address from this result (code 7 if the result does not list them). Values a
    /// result need not carry are sent as "not recorded": `mac` empty, `mtu` 0 (results before
    /// 1.1 have none), `gateway` 0.0.0.0.
    pub fn expected_attachment(&self, ifname: &str, netns: &str) -> Result<Attachment, CniError> {
        let index = self.find_interface(ifname, netns).ok_or_else(|| {
            bad_prev(format!(
                "no interface {ifname:?} in sandbox {netns:?} (CNI_IFNAME, CNI_NETNS)"
            ))
            .details("CHECK needs the result of this attachment's ADD in prevResult")
        })?;
        let iface = &self.interfaces[index];
        let (ip, prefix_len, gateway) = self
            .ips
            .iter()
            .filter(|e| e.get("interface").and_then(Value::as_u64) == Some(index as u64))
            .find_map(|e| {
                let (addr, len) = parse_cidr(e.get("address")?.as_str()?)?;
                let IpAddr::V4(v4) = addr else { return None };
                let gw = match e.get("gateway").and_then(Value::as_str) {
                    Some(g) => g.parse::<Ipv4Addr>().ok()?,
                    None => Ipv4Addr::UNSPECIFIED,
                };
                Some((v4, len, gw))
            })
            .ok_or_else(|| {
                bad_prev(format!(
                    "no IPv4 address (with an IPv4 gateway, if any) on interface {ifname:?}"
                ))
            })?;
        Ok(Attachment {
            ifname: ifname.to_string(),
            mac: iface
                .get("mac")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            sandbox: netns.to_string(),
            mtu: iface
                .get("mtu")
                .and_then(Value::as_u64)
                .and_then(|m| u16::try_from(m).ok())
                .unwrap_or(0),
            ip,
            prefix_len,
            gateway,
        })
    }
}

/// The ADD result in `version`'s format: `prev`'s entries (converted to `version`) followed
/// by podlane's interface, its address (indexed to it) and a default route through the
/// gateway. `dns` is the config's if it sets any, else the previous result's.
pub fn add_result(
    version: Version,
    prev: Option<PrevResult>,
    ifname: &str,
    netns: &str,
    att: &Attachment,
    config_dns: Option<&Map<String, Value>>,
) -> Value {
    let mut r = prev.unwrap_or_default();
    r.convert_to(version);

    let mut iface = Map::new();
    iface.insert("name".into(), json!(ifname));
    if !att.mac.is_empty() {
        iface.insert("mac".into(), json!(att.mac));
    }
    iface.insert("sandbox".into(), json!(netns));
    if version.has_1_1_fields() && att.mtu > 0 {
        iface.insert("mtu".into(), json!(att.mtu));
    }
    let index = r.interfaces.len();
    r.interfaces.push(iface);

    let mut ip = Map::new();
    if version.has_ip_version() {
        ip.insert("version".into(), json!("4"));
    }
    ip.insert(
        "address".into(),
        json!(format!("{}/{}", att.ip, att.prefix_len)),
    );
    ip.insert("gateway".into(), json!(att.gateway.to_string()));
    ip.insert("interface".into(), json!(index));
    r.ips.push(ip);

    let mut route = Map::new();
    route.insert("dst".into(), json!("0.0.0.0/0"));
    route.insert("gw".into(), json!(att.gateway.to_string()));
    r.routes.push(route);

    let dns = config_dns.cloned().or(r.dns).unwrap_or_default();
    json!({
        "cniVersion": version.as_str(),
        "interfaces": r.interfaces,
        "ips": r.ips,
        "routes": r.routes,
        "dns": dns,
    })
}

/// The error result: `cniVersion`, `code`, `msg`, `details` (spec 1.0/1.1 list all four; the
/// older specs make `details` optional, so it is always written).
pub fn error_result(version: &str, e: &CniError) -> Value {
    let msg = if e.msg.is_empty() {
        format!("error {}", e.code)
    } else {
        e.msg.clone()
    };
    json!({
        "cniVersion": version,
        "code": e.code,
        "msg": msg,
        "details": e.details,
    })
}

/// The VERSION result.
pub fn version_result(version: &str) -> Value {
    let supported: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
    json!({"cniVersion": version, "supportedVersions": supported})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att() -> Attachment {
        Attachment {
            ifname: "eth0".into(),
            mac: "02:00:0a:f4:01:02".into(),
            sandbox: "/run/netns/p".into(),
            mtu: 1450,
            ip: Ipv4Addr::new(10, 244, 1, 2),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 244, 1, 1),
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn cidr() {
        assert_eq!(
            parse_cidr("10.1.0.5/16"),
            Some((IpAddr::V4(Ipv4Addr::new(10, 1, 0, 5)), 16))
        );
        assert!(parse_cidr("fd00::1/64").is_some());
        for bad in [
            "10.1.0.5",
            "10.1.0.5/33",
            "10.1.0.5/",
            "x/8",
            "fd00::1/129",
            "1.2.3.4/+8",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }

    #[test]
    fn results_per_version() {
        let r = add_result(Version::V1_1_0, None, "eth0", "/run/netns/p", &att(), None);
        assert_eq!(
            r,
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [{"name": "eth0", "mac": "02:00:0a:f4:01:02", "sandbox": "/run/netns/p", "mtu": 1450}],
                "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
                "dns": {}
            })
        );
        let r = add_result(Version::V1_0_0, None, "eth0", "/run/netns/p", &att(), None);
        assert!(r["interfaces"][0].get("mtu").is_none());
        assert!(r["ips"][0].get("version").is_none());
        for v in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0] {
            let r = add_result(v, None, "eth0", "/run/netns/p", &att(), None);
            assert_eq!(r["cniVersion"], v.as_str());
            assert_eq!(r["ips"][0]["version"], "4");
            assert!(r["interfaces"][0].get("mtu").is_none());
        }
    }

    #[test]
    fn prev_result_is_extended_and_converted() {
        let prev = parse_prev_result(&obj(json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "lo", "mtu": 65536, "socketPath": "/x"}],
            "ips": [{"address": "fd00::5/64", "interface": 0}],
            "routes": [{"dst": "fd00::/8", "table": 5}],
            "dns": {"nameservers": ["1.1.1.1"]},
            "junk": 1
        })))
        .unwrap();
        let r = add_result(
            Version::V0_4_0,
            Some(prev.clone()),
            "eth0",
            "/n",
            &att(),
            None,
        );
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 2);
        assert_eq!(r["interfaces"][0], json!({"name": "lo"}));
        assert_eq!(r["ips"][0]["version"], "6");
        assert_eq!(r["ips"][1]["interface"], 1);
        assert_eq!(r["routes"][0], json!({"dst": "fd00::/8"}));
        assert_eq!(r["dns"], json!({"nameservers": ["1.1.1.1"]}));
        assert!(r.get("junk").is_none());

        let dns = obj(json!({"search": ["svc.cluster.local"]}));
        let r = add_result(
            Version::V1_1_0,
            Some(prev),
            "eth0",
            "/n",
            &att(),
            Some(&dns),
        );
        assert_eq!(r["interfaces"][0]["mtu"], 65536);
        assert_eq!(r["routes"][0]["table"], 5);
        assert_eq!(r["dns"], json!({"search": ["svc.cluster.local"]}));
    }

    #[test]
    fn bad_prev_results() {
        for bad in [
            json!({"interfaces": {}}),
            json!({"interfaces": [1]}),
            json!({"interfaces": [{"mac": "x"}]}),
            json!({"interfaces": [{"name": 1}]}),
            json!({"ips": [{"address": "10.0.0.1"}]}),
            json!({"ips": [{"gateway": "10.0.0.1"}]}),
            json!({"ips": [{"address": "10.0.0.1/8", "gateway": "x"}]}),
            json!({"ips": [{"address": "10.0.0.1/8", "interface": -1}]}),
            json!({"ips": [{"address": "10.0.0.1/8", "interface": "0"}]}),
            json!({"routes": [{"gw": "10.0.0.1"}]}),
            json!({"dns": []}),
        ] {
            let e = parse_prev_result(&obj(bad.clone())).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{bad}");
        }
    }

    #[test]
    fn check_expectation() {
        let full = add_result(Version::V1_1_0, None, "eth0", "/run/netns/p", &att(), None);
        let prev = parse_prev_result(full.as_object().unwrap()).unwrap();
        let want = att();
        assert_eq!(
            prev.expected_attachment("eth0", "/run/netns/p").unwrap(),
            want
        );

        let old = add_result(Version::V0_4_0, None, "eth0", "/run/netns/p", &att(), None);
        let prev = parse_prev_result(old.as_object().unwrap()).unwrap();
        let got = prev.expected_attachment("eth0", "/run/netns/p").unwrap();
        assert_eq!(got.mtu, 0, "0.4.0 results carry no mtu");
        assert_eq!(got.ip, want.ip);

        assert_eq!(
            prev.expected_attachment("eth1", "/run/netns/p")
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            prev.expected_attachment("eth0", "/other").unwrap_err().code,
            code::INVALID_CONFIG
        );
        let no_ip = parse_prev_result(&obj(json!({
            "interfaces": [{"name": "eth0", "sandbox": "/n"}],
            "ips": [{"address": "fd00::1/64", "interface": 0}]
        })))
        .unwrap();
        assert_eq!(
            no_ip.expected_attachment("eth0", "/n").unwrap_err().code,
            code::INVALID_CONFIG
        );
    }

    #[test]
    fn error_and_version_shapes() {
        let e = CniError::new(code::TRY_AGAIN, "busy");
        assert_eq!(
            error_result("1.0.0", &e),
            json!({"cniVersion": "1.0.0", "code": 11, "msg": "busy", "details": ""})
        );
        assert_eq!(
            version_result("0.4.0"),
            json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        );
    }
}
