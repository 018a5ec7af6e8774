//! The cluster state's persistence with and without a cluster file, through the daemon's own
//! start and change paths (no fast path: the daemon accepts changes while it is down):
//! API edits are written back to the file off the request path, a restart before the
//! write-back loses nothing, an edit made to the file by hand wins over API edits not yet
//! written back, and a database in the layout from before the state was stored object by
//! object is read and rewritten.

use std::path::{Path, PathBuf};

use control::cluster::{ClusterSpec, Edit, Endpoint, Mode, ServiceObject};
use control::config::Config;
use control::daemon::{ChangeError, Daemon};

const CLUSTER: &str = "service_cidr: 10.96.0.0/12
nodes:
  - {name: node-a, underlay_ip: 10.1.0.10, underlay_mac: \"02:00:0a:01:00:0a\", vtep_mac: \"02:76:74:65:70:0a\", pod_cidr: 10.244.1.0/24}
  - {name: node-b, underlay_ip: 10.1.0.11, underlay_mac: \"02:00:0a:01:00:0b\", vtep_mac: \"02:76:74:65:70:0b\", pod_cidr: 10.244.2.0/24}
services:
  - {namespace: default, name: web, cluster_ip: 10.96.0.20, ports: [{port: 80, protocol: TCP, target_port: 8080}], endpoints: [{ip: 10.244.1.3}]}
";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("podlane-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn open(dir: &Path, with_file: bool) -> Daemon {
    let file = if with_file {
        format!("cluster_file = \"{}/cluster.yaml\"\n", dir.display())
    } else {
        String::new()
    };
    let cfg = Config::parse(&format!(
        "node_name = \"node-a\"\nstate_dir = \"{d}/state\"\nfastpath_socket = \"{d}/none.sock\"\n{file}",
        d = dir.display()
    ))
    .unwrap();
    Daemon::open(cfg).unwrap()
}

fn web(endpoint: &str) -> ServiceObject {
    let mut s = ClusterSpec::parse(CLUSTER).unwrap().services.remove(0);
    s.endpoints = vec![Endpoint {
        ip: endpoint.parse().unwrap(),
        terminating: false,
    }];
    s
}

fn file_web_endpoint(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("cluster.yaml")).unwrap();
    let spec = ClusterSpec::parse(&text).unwrap();
    let web = spec.services.iter().find(|s| s.name == "web").unwrap();
    web.endpoints[0].ip.to_string()
}

fn web_endpoint(d: &Daemon) -> String {
    d.cluster().service("default", "web").unwrap().endpoints[0]
        .ip
        .to_string()
}

#[test]
fn api_edits_reach_the_file_and_survive_a_restart_before_it() {
    let dir = scratch("cluster-file");
    std::fs::write(dir.join("cluster.yaml"), CLUSTER).unwrap();
    let d = open(&dir, true);
    assert_eq!(web_endpoint(&d), "10.244.1.3");

    // An API edit is in force and persisted at once; the file follows at the next poll.
    d.upsert_service(web("10.244.1.4")).unwrap();
    assert_eq!(web_endpoint(&d), "10.244.1.4");
    assert_eq!(file_web_endpoint(&dir), "10.244.1.3");
    assert!(
        d.poll_cluster_file().is_none(),
        "its own write is not a change"
    );
    assert_eq!(file_web_endpoint(&dir), "10.244.1.4");
    // Two more within the second: the write-back waits, then writes the last state once.
    d.upsert_service(web("10.244.1.5")).unwrap();
    d.upsert_service(web("10.244.1.6")).unwrap();
    assert!(d.poll_cluster_file().is_none());
    assert_eq!(file_web_endpoint(&dir), "10.244.1.4");
    d.flush_cluster_file();
    assert_eq!(file_web_endpoint(&dir), "10.244.1.6");

    // Killed after an edit, before the write-back: the file is as the daemon left it, so the
    // database's newer state wins at the restart, and is written back.
    d.upsert_service(web("10.244.1.7")).unwrap();
    drop(d);
    assert_eq!(file_web_endpoint(&dir), "10.244.1.6");
    let d = open(&dir, true);
    assert_eq!(web_endpoint(&d), "10.244.1.7");
    assert!(d.poll_cluster_file().is_none());
    assert_eq!(file_web_endpoint(&dir), "10.244.1.7");

    // Edited by hand while an API edit waits for its write-back: the file wins.
    d.upsert_service(web("10.244.1.8")).unwrap();
    let by_hand = CLUSTER.replace("10.244.1.3", "10.244.1.9");
    std::fs::write(dir.join("cluster.yaml"), &by_hand).unwrap();
    assert_eq!(d.poll_cluster_file(), Some(Ok(())));
    assert_eq!(web_endpoint(&d), "10.244.1.9");
    d.flush_cluster_file();
    assert_eq!(file_web_endpoint(&dir), "10.244.1.9");
    // And edited by hand while the daemon is down: the file wins at the start.
    drop(d);
    std::fs::write(dir.join("cluster.yaml"), CLUSTER).unwrap();
    let d = open(&dir, true);
    assert_eq!(web_endpoint(&d), "10.244.1.3");
    assert_eq!(d.store().cluster().unwrap().unwrap(), d.cluster().spec());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn changes_are_checked_persisted_and_undone_object_by_object() {
    let dir = scratch("cluster-changes");
    let d = open(&dir, false);
    let spec = ClusterSpec::parse(CLUSTER).unwrap();
    d.set_cluster(spec.clone(), true).unwrap();
    assert!(!dir.join("cluster.yaml").exists(), "no file configured");
    // Strict: a conflict refuses the whole batch.
    let mut other = web("10.244.2.9");
    other.name = "other".into();
    let e = d
        .apply_edits(
            vec![
                Edit::SetService(web("10.244.2.8")),
                Edit::SetService(other.clone()),
            ],
            Mode::Strict,
        )
        .unwrap_err();
    assert!(
        matches!(&e, ChangeError::Invalid(m) if m.contains("ClusterIP 10.96.0.20 is already service default/web's")),
        "{e}"
    );
    assert_eq!(d.cluster().spec(), spec);
    // Leave-out: the rest applies, the conflicting one is reported.
    let refused = d
        .apply_edits(
            vec![
                Edit::SetService(web("10.244.2.8")),
                Edit::SetService(other.clone()),
            ],
            Mode::LeaveOut,
        )
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].object, "service default/other");
    assert_eq!(web_endpoint(&d), "10.244.2.8");
    assert!(d.cluster().service("default", "other").is_none());
    // This node's pod CIDR is checked against its pods (none here), a removal of what is not
    // there is NotFound, and the database holds exactly what the daemon does.
    assert!(matches!(
        d.remove_service("default", "nope"),
        Err(ChangeError::NotFound)
    ));
    d.remove_node("node-b").unwrap();
    assert_eq!(d.store().cluster().unwrap().unwrap(), d.cluster().spec());
    let g = d.store().generation().unwrap();
    // An edit equal to the state in force changes nothing, not even the database.
    d.upsert_service(web("10.244.2.8")).unwrap();
    assert_eq!(d.store().generation().unwrap(), g);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_database_in_the_whole_state_layout_is_read_and_rewritten() {
    let dir = scratch("cluster-legacy");
    let spec = ClusterSpec::parse(CLUSTER).unwrap();
    {
        // What a daemon from before wrote: the whole state as one JSON value.
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let db = redb::Database::create(dir.join("state").join("state.redb")).unwrap();
        let w = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("cluster");
            let mut t = w.open_table(def).unwrap();
            t.insert("spec", serde_json::to_vec(&spec).unwrap().as_slice())
                .unwrap();
        }
        w.commit().unwrap();
    }
    let d = open(&dir, false);
    assert_eq!(d.cluster().spec(), spec);
    assert_eq!(d.store().cluster().unwrap().unwrap(), spec);
    d.upsert_service(web("10.244.2.7")).unwrap();
    drop(d);
    let d = open(&dir, false);
    assert_eq!(web_endpoint(&d), "10.244.2.7");
    let _ = std::fs::remove_dir_all(&dir);
}
