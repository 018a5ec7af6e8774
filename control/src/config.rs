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
    pub node_name: String,
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

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.node_name.is_empty() {
            return Err("node_name is empty".into());
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
