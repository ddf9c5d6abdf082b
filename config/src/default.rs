//! The embedded default config: one engine on this host's first NUMA node, emulated storage
//! (tmpfs-class SCM and a file bdev) under a data directory, loopback fabric. A new user can
//! start a working single-node system without writing YAML. It is produced as YAML text and
//! goes through the same parser and validator as any file, so it can never drift out of the
//! rules.

use std::path::PathBuf;

/// What the host looks like, as far as the default needs to know (hw/ discovers it).
#[derive(Clone, Debug, PartialEq)]
pub struct DefaultParams {
    /// Where SCM, bdev files, sockets and logs live.
    pub data_dir: PathBuf,
    /// The first NUMA node, when the host has NUMA information.
    pub numa_node: Option<u32>,
    /// Cores on that node (or on the host).
    pub cores: u32,
    /// Interface for the fabric; loopback by default.
    pub fabric_iface: String,
}

/// Name shown in errors for the embedded default.
pub const EMBEDDED_NAME: &str = "<embedded default>";

fn quote(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::Value::String(s.to_string()).to_string()
}

/// The default config as YAML text.
pub fn yaml(p: &DefaultParams) -> String {
    let dir = p.data_dir.display().to_string();
    let sub = |name: &str| quote(&format!("{dir}/{name}"));
    // One core stays with the system shard; the rest are targets.
    let targets = p.cores.saturating_sub(1).max(1);
    let placement = match p.numa_node {
        Some(n) => format!("pinned_numa_node: {n}"),
        None => "first_core: 0".to_string(),
    };
    format!(
        "# daos-rs embedded default: single node, emulated storage under {dir}\n\
         name: daos_server\n\
         mgmt_svc_replicas: [localhost]\n\
         port: 10001\n\
         provider: ofi+tcp\n\
         socket_dir: {run}\n\
         transport_config:\n  allow_insecure: true\n\
         disable_hugepages: true\n\
         control_log_mask: INFO\n\
         engines:\n\
         - targets: {targets}\n  nr_xs_helpers: 0\n  {placement}\n\
         \x20 fabric_iface: {iface}\n  fabric_iface_port: 31416\n  log_mask: ERR\n\
         \x20 log_file: {log}\n\
         \x20 storage:\n\
         \x20 - class: ram\n    scm_mount: {scm}\n    scm_size: 4\n\
         \x20 - class: file\n    bdev_list: [{bdev}]\n    bdev_size: 8\n",
        run = sub("run"),
        iface = quote(&p.fabric_iface),
        log = sub("log/daos_engine.0.log"),
        scm = sub("scm0"),
        bdev = sub("bdev0"),
    )
}
