//! The invocation's environment (CNI spec 1.1, section 2 "Parameters"): `CNI_COMMAND`,
//! `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::cniwire::{code, CniCommand, CniError};

/// `CNI_COMMAND`.
pub const CNI_COMMAND: &str = "CNI_COMMAND";
/// `CNI_CONTAINERID`.
pub const CNI_CONTAINERID: &str = "CNI_CONTAINERID";
/// `CNI_NETNS`.
pub const CNI_NETNS: &str = "CNI_NETNS";
/// `CNI_IFNAME`.
pub const CNI_IFNAME: &str = "CNI_IFNAME";
/// `CNI_ARGS`.
pub const CNI_ARGS: &str = "CNI_ARGS";
/// `CNI_PATH`.
pub const CNI_PATH: &str = "CNI_PATH";

/// The longest interface name Linux accepts (`IFNAMSIZ` - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// The environment a plugin invocation sees: built from the process (`Env::from_process`) or,
/// in tests, from pairs. Values are kept as the OS gave them; a variable that must be text and
/// is not valid UTF-8 is an `INVALID_ENV` error when it is used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, OsString>,
}

impl Env {
    /// The process environment's `CNI_*` variables.
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| {
                    let k = k.into_string().ok()?;
                    k.starts_with("CNI_").then_some((k, v))
                })
                .collect(),
        }
    }

    /// An environment holding exactly these variables.
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<OsString>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets (or replaces) a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<OsString>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Whether the variable is set to a non-empty value (the reference `skel` treats an empty
    /// variable as missing).
    pub fn is_set(&self, name: &str) -> bool {
        self.vars.get(name).is_some_and(|v| !v.is_empty())
    }

    /// The variable as text: `Ok(None)` if unset or empty, `INVALID_ENV` if not UTF-8.
    pub fn get(&self, name: &str) -> Result<Option<&str>, CniError> {
        match self.vars.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v.to_str().map(Some).ok_or_else(|| {
                CniError::new(code::INVALID_ENV, format!("{name} is not valid UTF-8"))
                    .details(format!("{name}={v:?}"))
            }),
        }
    }
}

/// The operation (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `ADD` (spec 0.3.0+).
    Add,
    /// `DEL` (spec 0.3.0+).
    Del,
    /// `CHECK` (spec 0.4.0+).
    Check,
    /// `GC` (spec 1.1.0+).
    Gc,
    /// `STATUS` (spec 1.1.0+).
    Status,
    /// `VERSION`.
    Version,
}

impl Command {
    /// Parses the exact, upper-case spelling the spec uses.
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    /// The spec's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// The daemon-side operation (`VERSION` never reaches the daemon).
    pub fn wire(self) -> Option<CniCommand> {
        Some(match self {
            Command::Add => CniCommand::Add,
            Command::Del => CniCommand::Del,
            Command::Check => CniCommand::Check,
            Command::Gc => CniCommand::Gc,
            Command::Status => CniCommand::Status,
            Command::Version => return None,
        })
    }

    /// The environment variables the spec requires for this command, besides `CNI_COMMAND`
    /// (spec 1.1, section 2, each operation's "Required environment parameters").
    pub fn required_vars(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &[CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME],
            Command::Del => &[CNI_CONTAINERID, CNI_IFNAME],
            Command::Gc => &[CNI_PATH],
            Command::Status | Command::Version => &[],
        }
    }

    /// Whether the command acts on one attachment (and so reads the container variables and
    /// `CNI_ARGS`).
    pub fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// The command named by `CNI_COMMAND`.
pub fn command(env: &Env) -> Result<Command, CniError> {
    match env.get(CNI_COMMAND)? {
        None => Err(CniError::new(
            code::INVALID_ENV,
            format!("required environment variables missing: {CNI_COMMAND}"),
        )
        .details("CNI_COMMAND must be one of ADD, DEL, CHECK, GC, STATUS, VERSION")),
        Some(s) => Command::parse(s).ok_or_else(|| {
            CniError::new(code::INVALID_ENV, format!("unknown {CNI_COMMAND}: {s:?}"))
                .details("CNI_COMMAND must be one of ADD, DEL, CHECK, GC, STATUS, VERSION")
        }),
    }
}

/// One attachment's parameters from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_CONTAINERID` (empty for GC and STATUS).
    pub container_id: String,
    /// `CNI_NETNS` (may be absent on DEL; absent for GC and STATUS).
    pub netns: Option<String>,
    /// `CNI_IFNAME` (empty for GC and STATUS).
    pub ifname: String,
    /// `CNI_ARGS`, unparsed (ADD, DEL, CHECK only).
    pub args: Option<String>,
}

/// Checks the variables `command` requires and reads those it uses. Missing variables are
/// reported together (code 4, naming them); present ones are then validated: the container
/// ID and interface name by the spec's rules (code 4, as libcni does).
pub fn invocation(env: &Env, command: Command) -> Result<Invocation, CniError> {
    let missing: Vec<&str> = command
        .required_vars()
        .iter()
        .copied()
        .filter(|name| !env.is_set(name))
        .collect();
    if !missing.is_empty() {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!(
                "required environment variables missing: {}",
                missing.join(", ")
            ),
        )
        .details(format!(
            "CNI_COMMAND={} requires {}",
            command.as_str(),
            command.required_vars().join(", ")
        )));
    }
    if !command.is_attachment() {
        return Ok(Invocation::default());
    }
    let container_id = env.get(CNI_CONTAINERID)?.unwrap_or_default().to_string();
    validate_container_id(&container_id)?;
    let ifname = env.get(CNI_IFNAME)?.unwrap_or_default().to_string();
    validate_ifname(&ifname)?;
    let netns = env.get(CNI_NETNS)?.map(str::to_string);
    let args = env.get(CNI_ARGS)?.map(str::to_string);
    Ok(Invocation {
        container_id,
        netns,
        ifname,
        args,
    })
}

/// The spec's rule for container IDs and network names: an ASCII alphanumeric, then any of
/// alphanumerics, `_`, `.` and `-` (libcni: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`).
pub fn is_valid_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `CNI_CONTAINERID` by the spec's rule (code 4).
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if is_valid_name(id) {
        Ok(())
    } else {
        Err(
            CniError::new(code::INVALID_ENV, "invalid characters in CNI_CONTAINERID").details(
                format!(
                    "CNI_CONTAINERID={id:?}: must start with an alphanumeric character, \
                     followed by alphanumerics, '_', '.' or '-'"
                ),
            ),
        )
    }
}

/// `CNI_IFNAME` by the spec's (and Linux's) rules: not empty, at most 15 bytes, not `.` or
/// `..`, no `/`, `:` or whitespace (code 4).
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let problem = if name.is_empty() {
        "interface name is empty"
    } else if name.len() > MAX_IFNAME_LEN {
        "interface name is too long"
    } else if name == "." || name == ".." {
        "interface name is . or .."
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        "interface name contains / or : or whitespace characters"
    } else {
        return Ok(());
    };
    Err(
        CniError::new(code::INVALID_ENV, format!("invalid CNI_IFNAME: {problem}")).details(
            format!(
                "CNI_IFNAME={name:?}: interface names must be 1 to {MAX_IFNAME_LEN} bytes, \
                 not . or .., without / or : or whitespace"
            ),
        ),
    )
}

/// What podlane takes from `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodArgs {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub name: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub infra_container_id: Option<String>,
    /// `K8S_POD_UID`.
    pub uid: Option<String>,
}

/// Parses `CNI_ARGS` (`K=V;K=V`) like the reference plugins' `types.LoadArgs`: every pair has
/// exactly one `=`; unknown keys are an error (code 2, naming each key and value) unless
/// `IgnoreUnknown` is `1` or `true`. Empty segments (a trailing `;`) are skipped. Empty
/// values leave the field unset.
pub fn parse_cni_args(args: &str) -> Result<PodArgs, CniError> {
    let mut pod = PodArgs::default();
    let mut ignore_unknown = false;
    let mut unknown: Vec<String> = Vec::new();
    for pair in args.split(';').filter(|p| !p.is_empty()) {
        let mut parts = pair.split('=');
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_ARGS: invalid pair {pair:?}"),
            )
            .details("CNI_ARGS must be KEY=VALUE pairs separated by ';'"));
        };
        if key.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_ARGS: invalid pair {pair:?}"),
            )
            .details("CNI_ARGS keys must not be empty"));
        }
        let value_opt = (!value.is_empty()).then(|| value.to_string());
        match key {
            "K8S_POD_NAMESPACE" => pod.namespace = value_opt,
            "K8S_POD_NAME" => pod.name = value_opt,
            "K8S_POD_INFRA_CONTAINER_ID" => pod.infra_container_id = value_opt,
            "K8S_POD_UID" => pod.uid = value_opt,
            "IgnoreUnknown" => {
                ignore_unknown = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(CniError::new(
                            code::INVALID_ENV,
                            format!("CNI_ARGS: invalid IgnoreUnknown value {value:?}"),
                        )
                        .details("IgnoreUnknown must be 1, true, 0 or false"))
                    }
                }
            }
            _ => unknown.push(format!("{key}={value}")),
        }
    }
    if !unknown.is_empty() && !ignore_unknown {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!("CNI_ARGS: unknown args {unknown:?}"),
        )
        .details(
            "podlane understands K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID, \
             K8S_POD_UID; add IgnoreUnknown=1 to ignore others",
        ));
    }
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_rule() {
        for ok in ["a", "0", "abc-DEF_1.2", "3f6940ab5ab43bc522569d15b23f8c1b"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", ".a", "a/b", "a b", "a:b", "é", "a\u{0}"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn ifnames_follow_the_spec_rule() {
        for ok in ["eth0", "net1", "a", "123456789012345", "é", "x.y-z"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "1234567890123456",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\u{a0}b",
            "ééééééééé",
        ] {
            let e = validate_ifname(bad).unwrap_err();
            assert_eq!(e.code, code::INVALID_ENV, "{bad:?}");
            assert!(e.msg.contains("CNI_IFNAME"));
        }
    }

    #[test]
    fn required_vars_per_command() {
        let env = Env::from_pairs([("CNI_COMMAND", "DEL")]);
        let e = invocation(&env, Command::Del).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_CONTAINERID") && e.msg.contains("CNI_IFNAME"));
        assert!(
            !e.msg.contains("CNI_NETNS"),
            "DEL does not require CNI_NETNS"
        );

        let env = Env::from_pairs([("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]);
        let inv = invocation(&env, Command::Del).unwrap();
        assert_eq!(inv.netns, None);

        let e = invocation(&env, Command::Add).unwrap_err();
        assert!(e.msg.contains("CNI_NETNS"));

        // GC needs CNI_PATH only; STATUS nothing; neither looks at container variables.
        let junk = Env::from_pairs([("CNI_CONTAINERID", "-bad"), ("CNI_IFNAME", "a/b")]);
        assert!(invocation(&junk, Command::Status).is_ok());
        assert!(invocation(&junk, Command::Gc)
            .unwrap_err()
            .msg
            .contains("CNI_PATH"));
        let mut with_path = junk.clone();
        with_path.set("CNI_PATH", "/opt/cni/bin");
        assert_eq!(
            invocation(&with_path, Command::Gc).unwrap(),
            Invocation::default()
        );
    }

    #[test]
    fn empty_values_count_as_missing_and_non_utf8_is_invalid() {
        let env = Env::from_pairs([("CNI_COMMAND", "")]);
        assert!(command(&env).unwrap_err().msg.contains("CNI_COMMAND"));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let mut env = Env::from_pairs([("CNI_NETNS", "/run/netns/x"), ("CNI_IFNAME", "eth0")]);
            env.set("CNI_CONTAINERID", OsString::from_vec(vec![b'a', 0xff]));
            let e = invocation(&env, Command::Add).unwrap_err();
            assert_eq!(e.code, code::INVALID_ENV);
            assert!(e.msg.contains("CNI_CONTAINERID"));
        }
        let env = Env::from_pairs([("CNI_COMMAND", "add")]);
        assert_eq!(command(&env).unwrap_err().code, code::INVALID_ENV);
    }

    #[test]
    fn cni_args() {
        let a = parse_cni_args(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1;FOO=bar",
        )
        .unwrap();
        assert_eq!(a.namespace.as_deref(), Some("default"));
        assert_eq!(a.name.as_deref(), Some("web-0"));
        assert_eq!(a.infra_container_id.as_deref(), Some("abc"));
        assert_eq!(a.uid.as_deref(), Some("u-1"));
        assert_eq!(parse_cni_args("").unwrap(), PodArgs::default());
        assert_eq!(
            parse_cni_args("K8S_POD_NAME=x;").unwrap().name.as_deref(),
            Some("x")
        );

        let e = parse_cni_args("K8S_POD_NAME=x;FOO=bar").unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("FOO") && e.msg.contains("bar"), "{}", e.msg);
        let e = parse_cni_args("FOO=bar;IgnoreUnknown=false").unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(parse_cni_args("FOO=bar;IgnoreUnknown=TRUE").is_ok());

        for bad in ["FOO", "A=B=C", "=x", "IgnoreUnknown=yes"] {
            assert_eq!(
                parse_cni_args(bad).unwrap_err().code,
                code::INVALID_ENV,
                "{bad}"
            );
        }
    }
}
