//! The plugin configuration the runtime streams on stdin (CNI spec 1.1, section 1 and section
//! 3 "Deriving execution configuration from plugin configuration"), checked key by key.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::env::{is_valid_name, validate_ifname, Command};
use crate::cniwire::{code, AttachmentKey, CniError};

/// Where podlane-control listens for the plugin when the config has no `socket`.
pub const DEFAULT_SOCKET: &str = "/run/podlane/cni.sock";
/// The daemon exchange's timeout when the config has no `timeoutSeconds`.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
/// The largest `timeoutSeconds` accepted.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// The longest unix socket path (`sun_path` is 108 bytes with its terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// The GC key of spec 1.1.
pub const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";
/// The name an earlier draft of spec 1.1 used; libcni sends both (containernetworking/cni#1101).
pub const ATTACHMENTS_ALIAS: &str = "cni.dev/attachments";

/// A CNI spec version this plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 0.3.0: rich results (`interfaces`, `ips` with `version`), chaining.
    V0_3_0,
    /// 0.3.1: as 0.3.0.
    V0_3_1,
    /// 0.4.0: adds CHECK and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: drops `version` from `ips`.
    V1_0_0,
    /// 1.1.0: adds GC, STATUS and the interface `mtu` (among other optional result fields).
    V1_1_0,
}

impl Version {
    /// Every supported version, oldest first (what VERSION reports).
    pub const ALL: [Version; 5] = [
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ];
    /// The newest supported version.
    pub const LATEST: Version = Version::V1_1_0;

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Exactly one of the supported version strings.
    pub fn parse(s: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The oldest version that defines `command` (CHECK 0.4.0, GC and STATUS 1.1.0).
    pub fn minimum_for(command: Command) -> Version {
        match command {
            Command::Check => Version::V0_4_0,
            Command::Gc | Command::Status => Version::V1_1_0,
            Command::Add | Command::Del | Command::Version => Version::V0_3_0,
        }
    }

    /// Whether results carry `ips[].version` (0.3.x and 0.4.0).
    pub fn has_ip_version(self) -> bool {
        self < Version::V1_0_0
    }

    /// Whether results may carry the 1.1 additions (`interfaces[].mtu`, `socketPath`, `pciID`,
    /// and the route attributes).
    pub fn has_1_1_fields(self) -> bool {
        self >= Version::V1_1_0
    }
}

/// The supported versions as JSON strings, for messages.
pub fn supported_list() -> String {
    let v: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
    format!("{v:?}")
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub cni_version: Version,
    /// `name`: the network.
    pub name: String,
    /// `type`: the plugin binary's name.
    pub plugin_type: String,
    /// `socket`: the daemon's CNI socket.
    pub socket: PathBuf,
    /// `timeoutSeconds`: the daemon exchange's timeout.
    pub timeout: Duration,
    /// `dns`, only the fields that are set (None if none is).
    pub dns: Option<Map<String, Value>>,
    /// `prevResult` (an object; its content is checked where it is used).
    pub prev_result: Option<Map<String, Value>>,
    /// `cni.dev/valid-attachments` (or its alias), if present.
    pub valid_attachments: Option<Vec<AttachmentKey>>,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

/// "a string", "an object", ... for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value for a message, cut to a readable length.
pub(crate) fn show(v: &Value) -> String {
    const MAX: usize = 200;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        s
    } else {
        let mut cut: String = s.chars().take(MAX).collect();
        cut.push_str("...");
        cut
    }
}

fn wrong_type(key: &str, expected: &str, got: &Value) -> CniError {
    invalid(format!("{key} must be {expected}")).details(format!(
        "got {}: {}",
        kind(got),
        show(got)
    ))
}

fn unsupported(key: &str, value: &Value) -> CniError {
    CniError::new(
        code::UNSUPPORTED_FIELD,
        format!(
            "unsupported field in network configuration: {key:?} = {}",
            show(value)
        ),
    )
    .details(
        "podlane accepts cniVersion, name, type, args, runtimeConfig, capabilities, prevResult, \
         dns, cni.dev/* keys, socket and timeoutSeconds",
    )
}

/// The config's `cniVersion` if stdin is a JSON object whose `cniVersion` is a supported
/// version: what an error result echoes (the newest version otherwise).
pub fn peek_version(stdin: &[u8]) -> Option<Version> {
    match serde_json::from_slice::<Value>(stdin).ok()? {
        Value::Object(obj) => Version::parse(obj.get("cniVersion")?.as_str()?),
        _ => None,
    }
}

/// VERSION's `cniVersion`: the input's `cniVersion` if it is a `MAJOR.MINOR.PATCH` string
/// (echoed even if unsupported, as the spec says), else the newest supported version.
/// Malformed input is not an error: the reference `skel` does not read stdin for VERSION.
pub fn version_for_version_command(stdin: &[u8]) -> String {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(stdin) else {
        return Version::LATEST.as_str().to_string();
    };
    match obj.get("cniVersion").and_then(Value::as_str) {
        Some(s) if is_semver_triple(s) => s.to_string(),
        _ => Version::LATEST.as_str().to_string(),
    }
}

fn is_semver_triple(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Decodes and checks the configuration for `command`, in the reference plugins' order:
/// decoding (code 6), `name` (7), `cniVersion` (7 if missing or not a string, 1 if not
/// supported or too old for the command), then every other key: unknown keys are code 2
/// (naming key and value), wrong types code 7.
pub fn parse(stdin: &[u8], command: Command) -> Result<NetConf, CniError> {
    let value: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            code::DECODE_FAILURE,
            "failed to decode the network configuration on stdin",
        )
        .details(e.to_string())
    })?;
    let Value::Object(obj) = value else {
        return Err(CniError::new(
            code::DECODE_FAILURE,
            "the network configuration on stdin is not a JSON object",
        )
        .details(format!("got {}", kind(&value))));
    };

    let name = match obj.get("name") {
        None | Some(Value::Null) => return Err(invalid("missing network name")),
        Some(Value::String(s)) if s.is_empty() => return Err(invalid("missing network name")),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(wrong_type("name", "a string", other)),
    };
    if !is_valid_name(&name) {
        return Err(
            invalid("invalid characters found in network name").details(format!(
                "name {name:?}: must start with an alphanumeric character, followed by \
                 alphanumerics, '_', '.' or '-'"
            )),
        );
    }

    let version_str = match obj.get("cniVersion") {
        None | Some(Value::Null) => return Err(invalid("missing cniVersion")),
        Some(Value::String(s)) if s.is_empty() => return Err(invalid("missing cniVersion")),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(wrong_type("cniVersion", "a string", other)),
    };
    let cni_version = Version::parse(version_str).ok_or_else(|| {
        CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions").details(format!(
            "config is {version_str:?}, plugin supports {}",
            supported_list()
        ))
    })?;
    let floor = Version::minimum_for(command);
    if cni_version < floor {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("config version does not allow {}", command.as_str()),
        )
        .details(format!(
            "config is {:?}; {} needs cniVersion {} or later",
            cni_version.as_str(),
            command.as_str(),
            floor.as_str()
        )));
    }

    let mut conf = NetConf {
        cni_version,
        name,
        plugin_type: String::new(),
        socket: PathBuf::from(DEFAULT_SOCKET),
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
        dns: None,
        prev_result: None,
        valid_attachments: None,
    };
    let mut alias_attachments = None;
    for (key, value) in &obj {
        match key.as_str() {
            "cniVersion" | "name" => {}
            "type" => match value {
                Value::String(s) if !s.is_empty() => conf.plugin_type = s.clone(),
                Value::String(_) => return Err(invalid("type must not be empty")),
                other => return Err(wrong_type("type", "a string", other)),
            },
            // Reserved for the runtime; podlane has no use for their content.
            "args" | "runtimeConfig" | "capabilities" => {
                optional_object(key, value)?;
            }
            "prevResult" => conf.prev_result = optional_object(key, value)?.cloned(),
            "dns" => conf.dns = parse_dns(value)?,
            VALID_ATTACHMENTS => conf.valid_attachments = parse_attachments(key, value)?,
            ATTACHMENTS_ALIAS => alias_attachments = parse_attachments(key, value)?,
            // Every other cni.dev/ key is reserved for the protocol: a newer runtime may add
            // some, and they are not plugin configuration.
            k if k.starts_with("cni.dev/") => {}
            "socket" => conf.socket = parse_socket(value)?,
            "timeoutSeconds" => conf.timeout = parse_timeout(value)?,
            other => return Err(unsupported(other, value)),
        }
    }
    if !obj.contains_key("type") {
        return Err(invalid("missing type").details("the plugin configuration's type is required"));
    }
    if conf.valid_attachments.is_none() {
        conf.valid_attachments = alias_attachments;
    }
    Ok(conf)
}

fn optional_object<'a>(
    key: &str,
    value: &'a Value,
) -> Result<Option<&'a Map<String, Value>>, CniError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        other => Err(wrong_type(key, "an object", other)),
    }
}

/// `dns`: `nameservers`, `search`, `options` (lists of strings) and `domain` (string). Keeps
/// only what is set, as the reference types do (`omitempty`).
fn parse_dns(value: &Value) -> Result<Option<Map<String, Value>>, CniError> {
    let Some(m) = optional_object("dns", value)? else {
        return Ok(None);
    };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "nameservers" | "search" | "options" => match v {
                Value::Null => {}
                Value::Array(items) => {
                    if let Some(bad) = items.iter().find(|i| !i.is_string()) {
                        return Err(wrong_type(&format!("dns.{k}"), "a list of strings", bad));
                    }
                    if !items.is_empty() {
                        out.insert(k.clone(), v.clone());
                    }
                }
                other => return Err(wrong_type(&format!("dns.{k}"), "a list of strings", other)),
            },
            "domain" => match v {
                Value::Null => {}
                Value::String(s) => {
                    if !s.is_empty() {
                        out.insert(k.clone(), v.clone());
                    }
                }
                other => return Err(wrong_type("dns.domain", "a string", other)),
            },
            other => return Err(unsupported(&format!("dns.{other}"), v)),
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// `cni.dev/valid-attachments`: a list of `{"containerID", "ifname"}` objects. Each entry must
/// name an attachment ADD could have made; a malformed list is refused (code 7) rather than
/// risk collecting attachments the runtime meant to keep.
fn parse_attachments(key: &str, value: &Value) -> Result<Option<Vec<AttachmentKey>>, CniError> {
    let items = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        other => return Err(wrong_type(key, "a list of objects", other)),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(entry) = item else {
            return Err(wrong_type(&format!("{key}[{i}]"), "an object", item));
        };
        let field = |name: &str| -> Result<String, CniError> {
            match entry.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                None | Some(Value::Null) => {
                    Err(invalid(format!("{key}[{i}] has no {name}")).details(show(item)))
                }
                Some(other) => Err(wrong_type(&format!("{key}[{i}].{name}"), "a string", other)),
            }
        };
        let container_id = field("containerID")?;
        let ifname = field("ifname")?;
        if !is_valid_name(&container_id) || validate_ifname(&ifname).is_err() {
            return Err(
                invalid(format!("{key}[{i}] is not a valid attachment")).details(format!(
                    "containerID {container_id:?}, ifname {ifname:?}: not a container ID and \
                 interface name the spec allows"
                )),
            );
        }
        out.push(AttachmentKey {
            container_id,
            ifname,
        });
    }
    Ok(Some(out))
}

fn parse_socket(value: &Value) -> Result<PathBuf, CniError> {
    let Value::String(s) = value else {
        return Err(wrong_type("socket", "a string (a unix socket path)", value));
    };
    if s.is_empty() || s.contains('\0') || s.len() > MAX_SOCKET_PATH {
        return Err(invalid("socket must be a unix socket path")
            .details(format!("got {s:?}: 1 to {MAX_SOCKET_PATH} bytes, no NUL")));
    }
    Ok(PathBuf::from(s))
}

fn parse_timeout(value: &Value) -> Result<Duration, CniError> {
    match value.as_u64() {
        Some(s) if (1..=MAX_TIMEOUT_SECONDS).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(invalid(format!(
            "timeoutSeconds must be a whole number from 1 to {MAX_TIMEOUT_SECONDS}"
        ))
        .details(format!("got {}: {}", kind(value), show(value)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value, command: Command) -> Result<NetConf, CniError> {
        parse(v.to_string().as_bytes(), command)
    }

    fn base() -> Value {
        json!({"cniVersion": "1.1.0", "name": "podlane", "type": "podlane"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn defaults_and_plugin_keys() {
        let c = parse_json(base(), Command::Add).unwrap();
        assert_eq!(c.cni_version, Version::V1_1_0);
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.timeout, Duration::from_secs(30));
        let mut v = with("socket", json!("/tmp/x.sock"));
        v["timeoutSeconds"] = json!(5);
        let c = parse_json(v, Command::Add).unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.timeout, Duration::from_secs(5));
    }

    #[test]
    fn codes() {
        let cases: Vec<(Value, u32)> = vec![
            (json!([1]), code::DECODE_FAILURE),
            (json!("x"), code::DECODE_FAILURE),
            (
                json!({"cniVersion": "1.0.0", "type": "podlane"}),
                code::INVALID_CONFIG,
            ),
            (with("name", json!("")), code::INVALID_CONFIG),
            (with("name", json!(7)), code::INVALID_CONFIG),
            (with("name", json!("-x")), code::INVALID_CONFIG),
            (with("cniVersion", json!(null)), code::INVALID_CONFIG),
            (with("cniVersion", json!(1.0)), code::INVALID_CONFIG),
            (with("cniVersion", json!("")), code::INVALID_CONFIG),
            (
                with("cniVersion", json!("0.2.0")),
                code::INCOMPATIBLE_VERSION,
            ),
            (with("cniVersion", json!("1.0")), code::INCOMPATIBLE_VERSION),
            (
                with("cniVersion", json!("9.9.9")),
                code::INCOMPATIBLE_VERSION,
            ),
            (
                with("ipam", json!({"type": "host-local"})),
                code::UNSUPPORTED_FIELD,
            ),
            (with("bridge", json!("cni0")), code::UNSUPPORTED_FIELD),
            (
                with("dns", json!({"nameservers": ["1.1.1.1"], "x": 1})),
                code::UNSUPPORTED_FIELD,
            ),
            (
                with("dns", json!({"nameservers": "1.1.1.1"})),
                code::INVALID_CONFIG,
            ),
            (with("dns", json!([])), code::INVALID_CONFIG),
            (with("args", json!("x")), code::INVALID_CONFIG),
            (with("runtimeConfig", json!(1)), code::INVALID_CONFIG),
            (with("capabilities", json!([])), code::INVALID_CONFIG),
            (with("prevResult", json!("x")), code::INVALID_CONFIG),
            (with("type", json!(1)), code::INVALID_CONFIG),
            (with("type", json!("")), code::INVALID_CONFIG),
            (with("socket", json!("")), code::INVALID_CONFIG),
            (with("socket", json!(5)), code::INVALID_CONFIG),
            (with("socket", json!("/".repeat(200))), code::INVALID_CONFIG),
            (with("timeoutSeconds", json!(0)), code::INVALID_CONFIG),
            (with("timeoutSeconds", json!(-1)), code::INVALID_CONFIG),
            (with("timeoutSeconds", json!(1.5)), code::INVALID_CONFIG),
            (with("timeoutSeconds", json!("30")), code::INVALID_CONFIG),
            (with("timeoutSeconds", json!(100_000)), code::INVALID_CONFIG),
            (with(VALID_ATTACHMENTS, json!({})), code::INVALID_CONFIG),
            (with(VALID_ATTACHMENTS, json!([1])), code::INVALID_CONFIG),
            (
                with(VALID_ATTACHMENTS, json!([{"containerID": "a"}])),
                code::INVALID_CONFIG,
            ),
            (
                with(
                    VALID_ATTACHMENTS,
                    json!([{"containerID": "a/b", "ifname": "eth0"}]),
                ),
                code::INVALID_CONFIG,
            ),
        ];
        for (v, want) in cases {
            let got = parse_json(v.clone(), Command::Add).unwrap_err();
            assert_eq!(got.code, want, "{v}: {got}");
        }
        let mut no_type = base();
        no_type.as_object_mut().unwrap().remove("type");
        assert_eq!(
            parse_json(no_type, Command::Add).unwrap_err().code,
            code::INVALID_CONFIG
        );
    }

    #[test]
    fn unsupported_field_names_key_and_value() {
        let e = parse_json(with("ipMasq", json!(true)), Command::Add).unwrap_err();
        assert!(
            e.msg.contains("ipMasq") && e.msg.contains("true"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn command_floors() {
        for (cmd, version, ok) in [
            (Command::Check, "0.3.1", false),
            (Command::Check, "0.3.0", false),
            (Command::Check, "0.4.0", true),
            (Command::Gc, "1.0.0", false),
            (Command::Gc, "1.1.0", true),
            (Command::Status, "0.4.0", false),
            (Command::Status, "1.1.0", true),
            (Command::Add, "0.3.0", true),
            (Command::Del, "0.3.1", true),
        ] {
            let r = parse_json(with("cniVersion", json!(version)), cmd);
            match (ok, r) {
                (true, Ok(_)) => {}
                (false, Err(e)) => {
                    assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
                    assert!(e.msg.contains(cmd.as_str()));
                }
                (ok, r) => panic!("{cmd:?} {version}: want ok={ok}, got {r:?}"),
            }
        }
    }

    #[test]
    fn reserved_keys_and_attachments() {
        let mut v = base();
        v["args"] = json!({"cni": {"ips": ["10.0.0.1"]}});
        v["runtimeConfig"] = json!({"portMappings": []});
        v["capabilities"] = json!({"portMappings": true});
        v["cni.dev/future"] = json!(42);
        v[ATTACHMENTS_ALIAS] = json!([{"containerID": "old", "ifname": "eth0"}]);
        let c = parse_json(v.clone(), Command::Gc).unwrap();
        assert_eq!(
            c.valid_attachments,
            Some(vec![AttachmentKey {
                container_id: "old".into(),
                ifname: "eth0".into()
            }])
        );
        v[VALID_ATTACHMENTS] = json!([{"containerID": "new", "ifname": "net1", "extra": 1}]);
        let c = parse_json(v, Command::Gc).unwrap();
        assert_eq!(
            c.valid_attachments.unwrap()[0].container_id,
            "new",
            "the spec's key wins over the alias"
        );
    }

    #[test]
    fn dns_keeps_only_set_fields() {
        let c = parse_json(
            with(
                "dns",
                json!({"nameservers": ["10.96.0.10"], "domain": "", "search": [], "options": null}),
            ),
            Command::Add,
        )
        .unwrap();
        assert_eq!(
            c.dns,
            Some(
                json!({"nameservers": ["10.96.0.10"]})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        let c = parse_json(with("dns", json!({})), Command::Add).unwrap();
        assert_eq!(c.dns, None);
    }

    #[test]
    fn version_echo() {
        assert_eq!(version_for_version_command(b""), "1.1.0");
        assert_eq!(version_for_version_command(b"garbage\xff"), "1.1.0");
        assert_eq!(
            version_for_version_command(br#"{"cniVersion":"0.4.0"}"#),
            "0.4.0"
        );
        assert_eq!(
            version_for_version_command(br#"{"cniVersion":"0.2.0"}"#),
            "0.2.0"
        );
        assert_eq!(
            version_for_version_command(br#"{"cniVersion":"x"}"#),
            "1.1.0"
        );
        assert_eq!(version_for_version_command(br#"{"cniVersion":7}"#), "1.1.0");
        assert_eq!(
            peek_version(br#"{"cniVersion":"0.3.1","x":[1]}"#),
            Some(Version::V0_3_1)
        );
        assert_eq!(peek_version(br#"{"cniVersion":"0.2.0"}"#), None);
        assert_eq!(peek_version(b"[]"), None);
    }
}
