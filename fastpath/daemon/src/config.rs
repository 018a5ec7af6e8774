//! The daemon's configuration file (TOML). Every setting is documented here and in
//! `deploy/fastpath.toml`, the sample.

use std::path::PathBuf;

use fastpath::tables::conntrack::Timeouts;
use fastpath::tables::{Capacities, NodeConfig};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// DPDK EAL settings.
    pub eal: EalSection,
    /// This node's identity and data-path settings.
    pub node: NodeConfig,
    /// Table capacities (fixed at start).
    #[serde(default)]
    pub capacities: Capacities,
    /// Conntrack idle timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The ports.
    pub ports: Vec<PortSection>,
    /// Queue and descriptor settings.
    #[serde(default)]
    pub queues: QueueSection,
    /// A JSON file with the initial desired state (pods, nodes, Services) as an
    /// `Update::Snapshot` body, applied at start (the benches and tests start this way; under
    /// podlane-control the control socket brings the state instead).
    pub state_file: Option<PathBuf>,
    /// The local control socket (unix, mode 0600) the control daemon programs the tables
    /// through. None: the tables stay as the state file set them.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
}

/// `[eal]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalSection {
    /// Lcore list (`-l`, or `--lcores` when it maps lcores to CPUs with `@`, e.g.
    /// "0@0,1@1,2@1"): the first is the main lcore (control); each further one runs a worker.
    /// With a single lcore the one worker runs on the main lcore.
    #[serde(default = "default_lcores")]
    pub lcores: String,
    /// Run without hugepages (anonymous memory of `memory_mb`): CI and small hosts.
    #[serde(default)]
    pub no_huge: bool,
    /// Memory in MiB with `no_huge`.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Use hugepages but no shared runtime directory (`--in-memory`). Does not combine with
    /// `no_huge`.
    #[serde(default)]
    pub in_memory: bool,
    /// A private runtime prefix, so several podlane processes (lab nodes) run side by side.
    pub file_prefix: String,
    /// EAL log level (`--log-level`), e.g. "notice" or "lib.eal:error".
    #[serde(default)]
    pub log_level: Option<String>,
    /// Skip the PCI scan (virtual devices only).
    #[serde(default)]
    pub no_pci: bool,
}

fn default_lcores() -> String {
    "0".into()
}

fn default_memory() -> u32 {
    1024
}

/// What a port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The underlay NIC.
    Uplink,
    /// The host-path port into the node's kernel.
    Host,
    /// A pod's port.
    Pod,
}

/// `[[ports]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    /// DPDK devargs: a PCI address or a vdev string (net_pcap, net_tap, net_ring, net_memif,
    /// net_af_packet, net_null). A pod port may instead be `tap:IFNAME`: a TAP device the
    /// worker reads and writes directly, which takes no DPDK ethdev slot.
    pub devargs: String,
    /// uplink, host or pod.
    pub role: Role,
    /// For pods: the port id the tables use (`PodSpec.port`).
    #[serde(default)]
    pub pod_port: Option<u16>,
}

/// `[queues]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// Receive descriptors per queue.
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    /// Transmit descriptors per queue.
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// Mbufs in the pool.
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// Receive queues on the uplink, spread over the workers (queue `q` to worker
    /// `q % workers`) and filled by the NIC's RSS. 0 (the default): one per worker.
    #[serde(default)]
    pub uplink_rx_queues: u16,
    /// Most packets a worker takes from a receive queue at once, 1 to 32 (the default, the
    /// pipeline's burst). Smaller bounds how long a packet waits behind the burst ahead of it.
    #[serde(default = "default_burst")]
    pub burst: u16,
}

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection {
            rx_desc: default_desc(),
            tx_desc: default_desc(),
            mbufs: default_mbufs(),
            uplink_rx_queues: 0,
            burst: default_burst(),
        }
    }
}

fn default_burst() -> u16 {
    fastpath::pipeline::BURST as u16
}

fn default_desc() -> u16 {
    1024
}

fn default_mbufs() -> u32 {
    16383
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// Not valid TOML or not the expected shape.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// Valid TOML, inconsistent settings.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse(_, m) => ConfigError::Parse(path.to_path_buf(), m),
            other => other,
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let c: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(PathBuf::new(), e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.node
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("[node]: {e}")))?;
        if self.eal.no_huge && self.eal.in_memory {
            return Err(ConfigError::Invalid(
                "[eal]: no_huge and in_memory do not combine (DPDK refuses --no-huge with --in-memory); pick one".into(),
            ));
        }
        let max_burst = fastpath::pipeline::BURST;
        if !(1..=max_burst).contains(&usize::from(self.queues.burst)) {
            return Err(ConfigError::Invalid(format!(
                "[queues]: burst = {} is out of range; a worker takes 1 to {max_burst} packets from a queue at once",
                self.queues.burst
            )));
        }
        let uplinks = self.ports.iter().filter(|p| p.role == Role::Uplink).count();
        if uplinks != 1 {
            return Err(ConfigError::Invalid(format!(
                "[[ports]]: exactly one uplink is needed, {uplinks} given"
            )));
        }
        if self.ports.iter().filter(|p| p.role == Role::Host).count() > 1 {
            return Err(ConfigError::Invalid(
                "[[ports]]: at most one host port".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.ports {
            if p.devargs.trim().is_empty() {
                return Err(ConfigError::Invalid("[[ports]]: empty devargs".into()));
            }
            match (p.role, p.pod_port) {
                (Role::Pod, None) => {
                    return Err(ConfigError::Invalid(format!(
                        "[[ports]] {}: a pod port needs pod_port",
                        p.devargs
                    )))
                }
                (Role::Pod, Some(n)) => {
                    if n >= self.capacities.max_pod_ports {
                        return Err(ConfigError::Invalid(format!(
                            "[[ports]] {}: pod_port {n} is beyond capacities.max_pod_ports ({})",
                            p.devargs, self.capacities.max_pod_ports
                        )));
                    }
                    if !seen.insert(n) {
                        return Err(ConfigError::Invalid(format!(
                            "[[ports]]: pod_port {n} given twice"
                        )));
                    }
                }
                (_, Some(_)) => {
                    return Err(ConfigError::Invalid(format!(
                        "[[ports]] {}: pod_port is only for pod ports",
                        p.devargs
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The EAL arguments.
    pub fn eal_config(&self) -> dpdk::EalConfig {
        let e = &self.eal;
        dpdk::EalConfig {
            program: "podlane-fastpath".into(),
            lcores: e.lcores.clone(),
            memory: if e.no_huge {
                dpdk::eal::Memory::NoHuge { mb: e.memory_mb }
            } else if e.in_memory {
                dpdk::eal::Memory::InMemory
            } else {
                dpdk::eal::Memory::Hugepages
            },
            file_prefix: e.file_prefix.clone(),
            vdevs: Vec::new(),
            no_pci: e.no_pci,
            log_level: e.log_level.clone(),
            extra: vec!["--no-telemetry".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../deploy/fastpath.toml");

    #[test]
    fn the_sample_config_parses() {
        let c = Config::parse(SAMPLE).unwrap();
        assert_eq!(c.ports.len(), 4);
        assert_eq!(c.node.vni, 1);
        assert_eq!(c.queues.burst, 32);
        let without = SAMPLE.replace("burst = 32", "");
        assert_eq!(Config::parse(&without).unwrap().queues.burst, 32);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let bad = SAMPLE.replace("in_memory = false", "in_memory = true");
        assert!(Config::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("do not combine"));
        let bad = SAMPLE.replace("role = \"uplink\"", "role = \"pod\"\npod_port = 9");
        assert!(Config::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("exactly one uplink"));
        let bad = SAMPLE.replace("vni = 1", "vni = 99999999");
        assert!(Config::parse(&bad).unwrap_err().to_string().contains("VNI"));
        for n in [0, 33] {
            let bad = SAMPLE.replace("burst = 32", &format!("burst = {n}"));
            let e = Config::parse(&bad).unwrap_err().to_string();
            assert!(e.contains("burst") && e.contains("1 to 32"), "{e}");
        }
        let bad = SAMPLE.replace("[eal]", "[eal]\nbogus = 1");
        assert!(Config::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("bogus"));
        assert!(Config::parse("not toml at all ===").is_err());
        let bad = SAMPLE.replace("vni = 1", "vni = 1\nvnid = 2");
        assert!(Config::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("vnid"));
        let bad = SAMPLE.replace("service_cidr = \"10.96.0.0/12\"", "");
        assert!(Config::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("service_cidr"));
    }

    /// `[node]` with only the node's identity and the Service CIDR: the rest is what a
    /// Flannel-style cluster uses, and the host path's MAC is the underlay's.
    #[test]
    fn the_node_section_needs_only_the_nodes_identity() {
        let node: String = SAMPLE
            .lines()
            .skip_while(|l| !l.starts_with("[node]"))
            .take_while(|l| !l.starts_with("[capacities]"))
            .collect::<Vec<_>>()
            .join("\n");
        let short = "[node]\nname = \"node-x\"\nunderlay_ip = \"10.1.0.20\"\n\
            underlay_mac = \"02:00:0a:01:00:14\"\nvtep_mac = \"02:76:74:65:70:14\"\n\
            pod_cidr = \"10.244.9.0/24\"\ngateway_mac = \"02:67:77:00:01:01\"\n\
            service_cidr = \"10.96.0.0/12\"\n";
        let c = Config::parse(&SAMPLE.replace(&node, short)).unwrap();
        let n = &c.node;
        assert_eq!(n.name, "node-x");
        assert_eq!(n.vni, 1);
        assert_eq!(n.underlay_mtu, 1500);
        assert_eq!((n.nodeport_min, n.nodeport_max), (30000, 32767));
        assert_eq!(
            n.unknown_destination,
            fastpath::tables::UnknownDestination::Host
        );
        assert_eq!(n.host_mac, n.underlay_mac);
        assert_eq!(n.host_mac.to_string(), "02:00:0a:01:00:14");
        // Given, each is taken as given.
        let c = Config::parse(SAMPLE).unwrap();
        assert_eq!(c.node, fastpath::tables::NodeConfig::example_node_a());
    }
}
