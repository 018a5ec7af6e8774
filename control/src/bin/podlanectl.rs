//! `podlanectl`: the command line for a node's `podlane-control` (over its HTTP API).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

/// Inspect and change a podlane node.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The control daemon's HTTP address.
    #[arg(long, default_value = "127.0.0.1:9475", global = true)]
    server: String,
    /// Prints the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Sync state, epoch, generation, latencies.
    Status,
    /// This node's pods (CNI attachments).
    Pods,
    /// The cluster's nodes.
    Nodes,
    /// Services with their frontends and backends.
    Services,
    /// The pod CIDR's allocations.
    Ipam,
    /// The fast path's counters (drop reasons, events, ports).
    Counters,
    /// Connection tracking: the entries (client → frontend, backend → client) and table events.
    Conntrack {
        /// The most entries to show per worker.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// The tables the fast path holds.
    State,
    /// Replaces the cluster state with a YAML/JSON file.
    Apply {
        /// The file.
        #[arg(short = 'f', long)]
        file: std::path::PathBuf,
    },
    /// Deletes a Service (`namespace/name`).
    DeleteService {
        /// `namespace/name`.
        name: String,
    },
    /// Forces a full resync of the fast path.
    Resync,
}

fn request(server: &str, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(server)
        .map_err(|e| format!("cannot reach podlane-control at {server}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("malformed HTTP answer")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("malformed HTTP status line")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("podlanectl: {e}");
            std::process::exit(1);
        }
    }
}

fn get(args: &Args, path: &str) -> Result<Value, String> {
    call(args, "GET", path, "")
}

fn call(args: &Args, method: &str, path: &str, body: &str) -> Result<Value, String> {
    let (status, text) = request(&args.server, method, path, body)?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}: {text}"))?;
    if status >= 300 {
        return Err(format!(
            "{method} {path}: {status}: {}",
            v.get("error").and_then(Value::as_str).unwrap_or(&text)
        ));
    }
    Ok(v)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn run(args: &Args) -> Result<(), String> {
    let v = match &args.cmd {
        Cmd::Status => get(args, "/v1/status")?,
        Cmd::Pods => get(args, "/v1/pods")?,
        Cmd::Nodes => get(args, "/v1/nodes")?,
        Cmd::Services => get(args, "/v1/services")?,
        Cmd::Ipam => get(args, "/v1/ipam")?,
        Cmd::Counters => get(args, "/v1/fastpath/stats")?,
        Cmd::Conntrack { limit } => {
            let mut v = get(args, &format!("/v1/fastpath/conntrack?limit={limit}"))?;
            v["events"] = get(args, "/v1/fastpath/stats")?["counters"].take();
            v
        }
        Cmd::State => get(args, "/v1/fastpath/state")?,
        Cmd::Apply { file } => {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            call(args, "PUT", "/v1/cluster", &text)?
        }
        Cmd::DeleteService { name } => {
            let (ns, n) = name
                .split_once('/')
                .ok_or("give the Service as namespace/name")?;
            call(args, "DELETE", &format!("/v1/services/{ns}/{n}"), "")?
        }
        Cmd::Resync => call(args, "POST", "/v1/resync", "")?,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let empty = Vec::new();
    let arr = |v: &Value| v.as_array().cloned().unwrap_or_default();
    match &args.cmd {
        Cmd::Pods => {
            println!(
                "{:<28} {:<16} {:<18} {:>5} {:<8} POD",
                "CONTAINER/IF", "IP", "MAC", "PORT", "STATE"
            );
            for p in arr(&v) {
                let pod = format!("{}/{}", s(&p["pod_namespace"]), s(&p["pod_name"]));
                println!(
                    "{:<28} {:<16} {:<18} {:>5} {:<8} {pod}",
                    format!("{}/{}", s(&p["key"]["containerID"]), s(&p["key"]["ifname"])),
                    s(&p["ip"]),
                    s(&p["mac"]),
                    s(&p["port"]),
                    s(&p["state"])
                );
            }
        }
        Cmd::Nodes => {
            println!(
                "{:<16} {:<16} {:<18} POD CIDR",
                "NAME", "UNDERLAY IP", "UNDERLAY MAC"
            );
            for n in arr(&v) {
                println!(
                    "{:<16} {:<16} {:<18} {}",
                    s(&n["name"]),
                    s(&n["underlay_ip"]),
                    s(&n["underlay_mac"]),
                    s(&n["pod_cidr"])
                );
            }
        }
        Cmd::Services => {
            for svc in arr(&v) {
                println!(
                    "{}/{}  {}",
                    s(&svc["namespace"]),
                    s(&svc["name"]),
                    s(&svc["cluster_ip"])
                );
                for p in svc["ports"].as_array().unwrap_or(&empty) {
                    let target = if p["target_port"].is_null() {
                        s(&p["port"])
                    } else {
                        s(&p["target_port"])
                    };
                    let np = if p["node_port"].is_null() {
                        String::new()
                    } else {
                        format!("  NodePort {}", s(&p["node_port"]))
                    };
                    println!(
                        "  port {}/{} → {target}{np}",
                        s(&p["port"]),
                        s(&p["protocol"])
                    );
                }
                for e in svc["endpoints"].as_array().unwrap_or(&empty) {
                    let st = if e["terminating"].as_bool() == Some(true) {
                        "terminating"
                    } else {
                        "ready"
                    };
                    println!("  backend {} ({st})", s(&e["ip"]));
                }
            }
        }
        Cmd::Ipam => {
            println!(
                "pod CIDR {}  gateway {}  free {}",
                s(&v["pod_cidr"]),
                s(&v["gateway"]),
                s(&v["free"])
            );
            for a in arr(&v["allocated"]) {
                println!("  {:<16} {}", s(&a["ip"]), s(&a["attachment"]));
            }
        }
        Cmd::Counters => {
            println!(
                "fast path epoch {}  table generation {}",
                s(&v["epoch"]),
                s(&v["generation"])
            );
            if let Some(c) = v["counters"].as_object() {
                for (k, n) in c {
                    println!("  {k:<32} {n}");
                }
            }
            println!(
                "{:<24} {:<7} {:>12} {:>12} {:>10} {:>10}",
                "PORT", "ROLE", "RX", "TX", "RX MISSED", "ERRORS"
            );
            for p in arr(&v["ports"]) {
                let errs =
                    p["rx_errors"].as_u64().unwrap_or(0) + p["tx_errors"].as_u64().unwrap_or(0);
                let name = if p["pod_port"].is_null() {
                    s(&p["name"])
                } else {
                    format!("{} #{}", s(&p["name"]), s(&p["pod_port"]))
                };
                println!(
                    "{:<24} {:<7} {:>12} {:>12} {:>10} {:>10}",
                    name,
                    s(&p["role"]),
                    s(&p["rx_packets"]),
                    s(&p["tx_packets"]),
                    s(&p["rx_missed"]),
                    errs
                );
            }
        }
        Cmd::Conntrack { .. } => {
            println!("conntrack entries in use: {}", s(&v["total"]));
            println!(
                "{:<4} {:<22} {:<22} {:<22} {:<22} {:<12} {:>8}",
                "PROTO", "CLIENT", "FRONTEND", "BACKEND", "REPLY TO", "STATE", "IDLE ms"
            );
            for f in arr(&v["flows"]) {
                println!(
                    "{:<4} {:<22} {:<22} {:<22} {:<22} {:<12} {:>8}",
                    s(&f["proto"]),
                    s(&f["orig_src"]),
                    s(&f["orig_dst"]),
                    s(&f["reply_src"]),
                    s(&f["reply_dst"]),
                    s(&f["state"]),
                    s(&f["idle_ms"])
                );
            }
            let ev = &v["events"];
            let n = |k: &str| ev[k].as_u64().unwrap_or(0);
            for k in [
                "ct_new",
                "ct_hit_orig",
                "ct_hit_reply",
                "ct_expired",
                "ct_evicted_full",
                "ct_purged_endpoint_removed",
                "ct_closed_taken_over",
                "snat_port_rewritten",
                "ct_client_mac_moved",
            ] {
                println!("  {k:<28} {}", n(k));
            }
        }
        _ => println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        ),
    }
    Ok(())
}
