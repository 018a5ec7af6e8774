//! `podlane-control`'s configuration file (TOML; sample `deploy/control.toml`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::kubernetes::KubeSettings;

/// The daemon's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's name: its entry in the cluster state gives the pod CIDR and underlay.
    /// Either this or `node_file`.
    #[serde(default)]
    pub node_name: String,
    /// Instead of `node_name`: the fast path's node file (its `node_file`, one per host, so
    /// that one configuration serves every node), whose `[node] name` is this node's name.
    /// A relative path is taken from this file's directory. [`Config::load`] reads it.
    #[serde(default)]
    pub node_file: Option<PathBuf>,
    /// What the node file says of this node's addresses, read with its name: with
    /// `[kubernetes]`, what the daemon publishes on its Node object for the other nodes
    /// (`kubernetes::own_annotations`). Not a key of this file.
    #[serde(skip)]
    pub node_identity: NodeIdentity,
    /// Directory of the state database (`state.redb`).
    pub state_dir: PathBuf,
    /// The declarative cluster file (YAML or JSON), watched for changes; API edits are
    /// written back to it. Without it the cluster state lives in the database only.
    #[serde(default)]
    pub cluster_file: Option<PathBuf>,
    /// The CNI endpoint (unix socket, mode 0600) the plugin talks to.
    #[serde(default = "default_cni_socket")]
    pub cni_socket: PathBuf,
    /// The fast path's control socket.
    #[serde(default = "default_fastpath_socket")]
    pub fastpath_socket: PathBuf,
    /// The HTTP API and `/metrics` (keep it on loopback: the API has no authentication).
    #[serde(default = "default_http")]
    pub http_listen: SocketAddr,
    /// The pods' interface MTU: the underlay MTU minus the 50 bytes of VXLAN.
    #[serde(default = "default_mtu")]
    pub pod_mtu: u16,
    /// Pod port ids 0..max_pod_ports (must equal the fast path's `capacities.max_pod_ports`).
    #[serde(default = "default_ports")]
    pub max_pod_ports: u16,
    /// Take the cluster state from the Kubernetes API (Nodes, Services, EndpointSlices)
    /// instead of a cluster file; the HTTP API's cluster edits are then refused.
    #[serde(default)]
    pub kubernetes: Option<KubeSettings>,
    /// Where the health-check NodePorts of Local-policy load balancers are answered
    /// (`control/src/healthcheck.rs`): 0.0.0.0, every node address, as kube-proxy does.
    #[serde(default = "default_health_check_address")]
    pub health_check_address: IpAddr,
    /// The node kernel's side of the fast path's host-path port (the TAP of its `role =
    /// "host"` port). When set, the daemon keeps the kernel's routes to every pod CIDR and the
    /// Service CIDR through it (`control/src/hostroutes.rs`), so kubelet's probes reach pods and
    /// the node reaches ClusterIPs. Unset: no routes are touched.
    #[serde(default)]
    pub host_interface: Option<String>,
}

fn default_cni_socket() -> PathBuf {
    PathBuf::from("/run/podlane/cni.sock")
}
fn default_fastpath_socket() -> PathBuf {
    PathBuf::from("/run/podlane/fastpath.sock")
}
fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9475))
}
fn default_health_check_address() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}
fn default_mtu() -> u16 {
    1450
}
fn default_ports() -> u16 {
    1024
}

/// A node's addresses as its fast-path node file gives them (each optional: a file may leave
/// a key to the fast path's own configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeIdentity {
    /// `[node] underlay_ip`.
    pub underlay_ip: Option<std::net::Ipv4Addr>,
    /// `[node] underlay_mac`.
    pub underlay_mac: Option<fastpath::wire::MacAddr>,
    /// `[node] vtep_mac`.
    pub vtep_mac: Option<fastpath::wire::MacAddr>,
}

/// A fast-path node file's `[node] name` and addresses (its other keys are the fast path's),
/// from one parse of its text. A value that does not parse is an error naming its key: the
/// fast path would refuse it too.
pub fn read_node_file(text: &str) -> Result<(String, NodeIdentity), String> {
    let t: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let node = t.get("node");
    fn field<T: std::str::FromStr>(
        node: Option<&toml::Value>,
        key: &str,
    ) -> Result<Option<T>, String> {
        node.and_then(|n| n.get(key))
            .map(|v| {
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or(format!("[node] {key} = {v} does not parse"))
            })
            .transpose()
    }
    let name = node
        .and_then(|n| n.get("name"))
        .ok_or("no [node] name in it")?;
    let name = match name.as_str() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => return Err("[node] name is not a non-empty string".into()),
    };
    let identity = NodeIdentity {
        underlay_ip: field(node, "underlay_ip")?,
        underlay_mac: field(node, "underlay_mac")?,
        vtep_mac: field(node, "vtep_mac")?,
    };
    Ok((name, identity))
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let mut c = Config::parse(&text).map_err(|e| format!("config {}: {e}", path.display()))?;
        if let Some(f) = &c.node_file {
            // `join` keeps an absolute path as it is.
            let f = path.parent().unwrap_or(Path::new(".")).join(f);
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("cannot read node_file {}: {e}", f.display()))?;
            let at = |e| format!("node_file {}: {e}", f.display());
            (c.node_name, c.node_identity) = read_node_file(&text).map_err(at)?;
            c.node_file = Some(f);
        }
        Ok(c)
    }

    /// Parses and checks config text. With `node_file`, `node_name` stays empty until
    /// [`Config::load`] reads it from the file.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        match (c.node_name.is_empty(), &c.node_file) {
            (true, None) => return Err("node_name is empty (set it, or node_file)".into()),
            (false, Some(_)) => {
                return Err(
                    "node_name and node_file are both set: the node's name has one source".into(),
                )
            }
            _ => {}
        }
        if !(576..=9000).contains(&c.pod_mtu) {
            return Err(format!("pod_mtu {} is outside 576-9000", c.pod_mtu));
        }
        if c.max_pod_ports == 0 {
            return Err("max_pod_ports is 0".into());
        }
        if let Some(k) = &c.kubernetes {
            if c.cluster_file.is_some() {
                return Err(
                    "cluster_file and [kubernetes] are both set: the cluster state has one source"
                        .into(),
                );
            }
            let [lo, hi] = k.node_port_range;
            if lo == 0 || lo > hi {
                return Err(format!("[kubernetes] node_port_range {lo}-{hi} is empty"));
            }
            if k.vni == 0 || k.vni > 0xff_ffff {
                return Err(format!("[kubernetes] vni {} is outside 1-16777215", k.vni));
            }
        }
        Ok(c)
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join("state.redb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../deploy/control.toml");

    /// The node's name from the fast path's node file, found beside the configuration: the
    /// one configuration every node shares names no node.
    #[test]
    fn the_node_name_comes_from_the_node_file() {
        let dir = std::env::temp_dir().join(format!("podlane-ctl-node-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("control.toml");
        let shared = SAMPLE.replace("node_name = \"node-a\"", "node_file = \"node.toml\"");
        std::fs::write(&config, &shared).unwrap();
        let e = Config::load(&config).unwrap_err();
        assert!(
            e.contains(&dir.join("node.toml").display().to_string()),
            "{e}"
        );
        std::fs::write(
            dir.join("node.toml"),
            "[node]\nname = \"node-b\"\nunderlay_ip = \"10.1.0.11\"\n\n[[ports]]\n\
             devargs = \"0000:02:00.0\"\nrole = \"uplink\"\n",
        )
        .unwrap();
        let c = Config::load(&config).unwrap();
        assert_eq!(c.node_name, "node-b");
        assert_eq!(
            c.node_identity,
            NodeIdentity {
                underlay_ip: Some("10.1.0.11".parse().unwrap()),
                underlay_mac: None,
                vtep_mac: None
            }
        );
        assert_eq!(c.node_file, Some(dir.join("node.toml")));
        // A node file without the name, or with an empty one, names what is missing.
        for bad in [
            "[node]\nunderlay_ip = \"10.1.0.11\"\n",
            "[node]\nname = \"\"\n",
            "[node\n",
            "[node]\nname = \"n\"\nvtep_mac = \"02:00\"\n",
        ] {
            std::fs::write(dir.join("node.toml"), bad).unwrap();
            let e = Config::load(&config).unwrap_err();
            assert!(e.contains("node_file") && e.contains("node.toml"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_node_name_has_one_source() {
        assert_eq!(Config::parse(SAMPLE).unwrap().node_name, "node-a");
        let both = SAMPLE.replace(
            "node_name = \"node-a\"",
            "node_name = \"node-a\"\nnode_file = \"/etc/podlane/node.toml\"",
        );
        assert!(Config::parse(&both).unwrap_err().contains("both"));
        let neither = SAMPLE.replace("node_name = \"node-a\"", "");
        assert!(Config::parse(&neither).unwrap_err().contains("node_file"));
    }
}
