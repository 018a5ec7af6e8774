//! The daemon's configuration file (TOML). Every setting is documented here and in
//! `deploy/fastpath.toml`, the sample.

use std::path::{Path, PathBuf};

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
    /// A file of this node's own settings, so that one configuration serves every node (one
    /// Kubernetes ConfigMap for the DaemonSet, each host's identity in a file of its own): its
    /// `[node]` and `[eal]` keys complete this file's sections (a key set in both is refused,
    /// not overridden; `[eal]` for cores that differ per node, `lcores`) and its `[[ports]]` are
    /// added to this file's (the uplink's PCI address differs per node). Nothing else may be in
    /// it. A relative path is taken from this file's
    /// directory. `podlane-control` reads the node's name from the same file.
    #[serde(default)]
    pub node_file: Option<PathBuf>,
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
    /// Reads and checks a configuration file, and the node file it names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        // A parse error without a file is this file's.
        let here = |e| match e {
            ConfigError::Parse(p, m) if p.as_os_str().is_empty() => {
                ConfigError::Parse(path.to_path_buf(), m)
            }
            other => other,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
        // Without a node file the text is deserialized as it is (parsed a second time, once at
        // start), so that a wrong value's error gives its line, as toml's errors from text do.
        let Some(node_file) = table.get("node_file") else {
            return Config::parse(&text).map_err(here);
        };
        let Some(node_file) = node_file.as_str() else {
            return Err(ConfigError::Parse(
                path.to_path_buf(),
                "node_file: a path (a string) is expected".into(),
            ));
        };
        // `join` keeps an absolute path as it is.
        let node_path = path.parent().unwrap_or(Path::new(".")).join(node_file);
        let node_text = std::fs::read_to_string(&node_path)
            .map_err(|e| ConfigError::Read(node_path.clone(), e))?;
        Config::parse_with_node_file(&text, &node_text, &node_path).map_err(here)
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let c: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(PathBuf::new(), e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Parses and checks configuration text together with the text of the node file it names
    /// (`node_file`, read from `node_path`), merged as [`Config::node_file`] says.
    pub fn parse_with_node_file(
        text: &str,
        node_text: &str,
        node_path: &Path,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(PathBuf::new(), e.to_string()))?;
        let node: toml::Table = node_text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(node_path.into(), e.to_string()))?;
        merge_node_file(&mut table, node, node_path)?;
        // A setting may be in either file: the messages say both were read.
        let both = format!("(this file with node_file {})", node_path.display());
        let c: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                ConfigError::Parse(
                    PathBuf::new(),
                    format!("{} {both}", e.to_string().trim_end().replace('\n', " ")),
                )
            })?;
        c.validate().map_err(|e| match e {
            ConfigError::Invalid(m) => ConfigError::Invalid(format!("{m} {both}")),
            other => other,
        })?;
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

/// Adds a node file's `[node]` and `[eal]` keys and its `[[ports]]` to the configuration's
/// (`path`: the node file, for the messages). A key both give is refused — which one was meant cannot
/// be known, and a shared file silently overridden per node is how nodes end up claiming
/// each other's identity.
fn merge_node_file(
    config: &mut toml::Table,
    node_file: toml::Table,
    path: &Path,
) -> Result<(), ConfigError> {
    let at = path.display();
    for (key, value) in node_file {
        match (key.as_str(), value) {
            ("node" | "eal", toml::Value::Table(keys)) => {
                let toml::Value::Table(section) = config
                    .entry(key.as_str())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                else {
                    return Err(ConfigError::Invalid(format!(
                        "{key}: a table ([{key}]) is expected"
                    )));
                };
                for (k, v) in keys {
                    if section.contains_key(&k) {
                        return Err(ConfigError::Invalid(format!(
                            "[{key}] {k} is set both in the configuration and in node_file {at}: \
                             set it in one of them"
                        )));
                    }
                    section.insert(k, v);
                }
            }
            ("ports", toml::Value::Array(ports)) => {
                let toml::Value::Array(all) = config
                    .entry("ports")
                    .or_insert_with(|| toml::Value::Array(Vec::new()))
                else {
                    return Err(ConfigError::Invalid(
                        "ports: an array of tables ([[ports]]) is expected".into(),
                    ));
                };
                all.extend(ports);
            }
            ("node" | "eal" | "ports", _) => {
                return Err(ConfigError::Parse(
                    path.into(),
                    format!("{key}: [node] and [eal] are tables, [[ports]] an array of tables"),
                ))
            }
            (other, _) => {
                return Err(ConfigError::Parse(
                    path.into(),
                    format!(
                        "{other} is not a node setting: a node file holds [node] and [eal] \
                         keys and [[ports]] only"
                    ),
                ))
            }
        }
    }
    Ok(())
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

    /// Node A's own settings, as a node file gives them: its identity and its uplink.
    const NODE_A: &str = "[node]\nname = \"node-a\"\nunderlay_ip = \"10.1.0.10\"\n\
        underlay_mac = \"02:00:0a:01:00:0a\"\nvtep_mac = \"02:76:74:65:70:0a\"\n\
        pod_cidr = \"10.244.1.0/24\"\nhost_mac = \"02:00:0a:01:00:0a\"\n\n\
        [[ports]]\ndevargs = \"net_af_packet0,iface=eth0\"\nrole = \"uplink\"\n";

    /// The sample without what `NODE_A` gives (the lines of node A's identity and its uplink
    /// port), naming `node_file`: what one ConfigMap for every node holds.
    fn shared_sample(node_file: &str) -> String {
        let own = [
            "name =",
            "underlay_ip =",
            "underlay_mac =",
            "vtep_mac =",
            "pod_cidr =",
            "host_mac =",
        ];
        let mut lines: Vec<String> = vec![format!("node_file = {node_file:?}")];
        let mut skip = 0;
        for l in SAMPLE.lines() {
            if l.starts_with("devargs = \"net_af_packet0") {
                lines.pop(); // the [[ports]] header before it
                skip = 1; // and the role after it
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if !own.iter().any(|k| l.starts_with(k)) {
                lines.push(l.to_string());
            }
        }
        lines.join("\n")
    }

    /// One configuration for every node: the node file completes `[node]` and adds the
    /// uplink, and the result is the configuration that says it all in one file.
    #[test]
    fn a_node_file_completes_the_shared_configuration() {
        let shared = shared_sample("node-a.toml");
        assert!(
            Config::parse(&shared).is_err(),
            "the shared part alone lacks the identity"
        );
        let c = Config::parse_with_node_file(&shared, NODE_A, Path::new("node-a.toml")).unwrap();
        let whole = Config::parse(SAMPLE).unwrap();
        assert_eq!(c.node, whole.node);
        let devargs = |c: &Config| {
            let mut d: Vec<(String, Role)> = c
                .ports
                .iter()
                .map(|p| (p.devargs.clone(), p.role))
                .collect();
            d.sort_by(|a, b| a.0.cmp(&b.0));
            d
        };
        assert_eq!(devargs(&c), devargs(&whole));
        assert_eq!(c.node_file, Some(PathBuf::from("node-a.toml")));
        // The node's cores from its node file, when the shared file leaves them out.
        let no_lcores: String = shared
            .lines()
            .filter(|l| !l.starts_with("lcores ="))
            .collect::<Vec<_>>()
            .join("\n");
        let with_cores = format!("[eal]\nlcores = \"0@0,1@3\"\n{NODE_A}");
        let c = Config::parse_with_node_file(&no_lcores, &with_cores, Path::new("n.toml")).unwrap();
        assert_eq!(c.eal.lcores, "0@0,1@3");
        assert_eq!(c.node, whole.node);

        // Another node: the same shared text, another file.
        let node_b = NODE_A
            .replace("node-a", "node-b")
            .replace("10.1.0.10", "10.1.0.11")
            .replace("10.244.1.0", "10.244.2.0")
            .replace("eth0", "eth1");
        let b = Config::parse_with_node_file(&shared, &node_b, Path::new("node-b.toml")).unwrap();
        assert_eq!(b.node.name, "node-b");
        assert_eq!(b.node.underlay_ip.to_string(), "10.1.0.11");
        assert_eq!(b.node.pod_cidr.to_string(), "10.244.2.0/24");
        assert!(b
            .ports
            .iter()
            .any(|p| p.role == Role::Uplink && p.devargs.ends_with("eth1")));
    }

    #[test]
    fn a_node_file_says_what_is_wrong() {
        let shared = shared_sample("n.toml");
        let err = |node: &str| {
            Config::parse_with_node_file(&shared, node, Path::new("/etc/podlane/node.toml"))
                .unwrap_err()
                .to_string()
        };
        // A key in both files is refused, naming the key and the file.
        let e = err(&NODE_A.replace("[node]\n", "[node]\nservice_cidr = \"10.0.0.0/16\"\n"));
        assert!(
            e.contains("service_cidr")
                && e.contains("both")
                && e.contains("/etc/podlane/node.toml"),
            "{e}"
        );
        // Only [node], [eal] and [[ports]]; an [eal] key the configuration has is refused too.
        let e = err(&format!("{NODE_A}\n[queues]\nburst = 8\n"));
        assert!(e.contains("queues") && e.contains("node file"), "{e}");
        let e = err(&format!("[eal]\nno_pci = false\n{NODE_A}"));
        assert!(e.contains("[eal] no_pci") && e.contains("both"), "{e}");
        let e = err("node = 3\n");
        assert!(e.contains("[node] and [eal] are tables"), "{e}");
        // Its keys are checked as the configuration's own: an unknown one, a bad value.
        let e = err(&NODE_A.replace("[node]\n", "[node]\nnmae = \"x\"\n"));
        assert!(e.contains("nmae"), "{e}");
        let e = err(&NODE_A.replace("10.244.1.0/24", "10.244.1.0/33"));
        assert!(e.contains("pod_cidr") || e.contains("prefix"), "{e}");
        // A second uplink from the node file.
        let e = err(&format!(
            "{NODE_A}\n[[ports]]\ndevargs = \"net_null9\"\nrole = \"uplink\"\n"
        ));
        assert!(e.contains("exactly one uplink"), "{e}");
        // Not TOML: the node file is named.
        let e = err("[node\n");
        assert!(e.contains("/etc/podlane/node.toml"), "{e}");
    }

    /// `load` reads the node file from the configuration's directory, and a missing one is
    /// an error that names it.
    #[test]
    fn load_reads_the_node_file_beside_the_configuration() {
        let dir = std::env::temp_dir().join(format!("podlane-node-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("fastpath.toml");
        std::fs::write(&config, shared_sample("node.toml")).unwrap();
        let e = Config::load(&config).unwrap_err().to_string();
        assert!(
            e.contains(&dir.join("node.toml").display().to_string()),
            "{e}"
        );
        std::fs::write(dir.join("node.toml"), NODE_A).unwrap();
        let c = Config::load(&config).unwrap();
        assert_eq!(c.node, Config::parse(SAMPLE).unwrap().node);
        // A syntax error in the configuration itself names the configuration.
        std::fs::write(&config, "node_file = \"node.toml\"\n[eal\n").unwrap();
        let e = Config::load(&config).unwrap_err().to_string();
        assert!(e.contains("fastpath.toml"), "{e}");
        std::fs::write(&config, "node_file = 7\n").unwrap();
        let e = Config::load(&config).unwrap_err().to_string();
        assert!(
            e.contains("node_file") && e.contains("fastpath.toml"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
