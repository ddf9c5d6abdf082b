//! Flag sets the tools share, so they spell and document them the same way: the client flags
//! of `dmg` and `daos`, and the provisioning flags of `daos_server` and `dmg` (the dmg command
//! runs the daos_server one on every host, with the same request).

use clap::Args;

/// How the client tools (`dmg`, `daos`) reach the management service, and how they print.
#[derive(Args, Clone, Debug, Default)]
pub struct ClientFlags {
    /// Client config file (default /etc/daos/daos_control.yml if it exists).
    #[arg(short = 'o', long = "config-path", global = true)]
    pub config_path: Option<std::path::PathBuf>,
    /// Plaintext connection, no certificates (daos_server must be insecure too).
    #[arg(short = 'i', long, global = true)]
    pub insecure: bool,
    /// JSON output: {"response": ..., "error": ..., "status": ...}.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// Hosts to talk to, e.g. wolf-7[1-2]:10001 (default: hostlist of the config).
    #[arg(short = 'l', long = "host-list", global = true)]
    pub host_list: Option<String>,
}

/// `storage prepare` flags.
#[derive(Args, Clone, Debug, Default)]
pub struct PrepareFlags {
    /// Only NVMe.
    #[arg(short = 'n', long = "nvme-only")]
    pub nvme_only: bool,
    /// Only SCM (PMem).
    #[arg(short = 's', long = "scm-only")]
    pub scm_only: bool,
    /// Undo: NVMe back to the kernel driver, PMem namespaces removed.
    #[arg(long)]
    pub reset: bool,
    /// Do destructive PMem changes without asking.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Hugepages to reserve (default: the config's nr_hugepages, else 1024).
    #[arg(short = 'p', long)]
    pub hugepages: Option<u64>,
    /// NVMe controllers to leave alone (comma-separated PCI addresses).
    #[arg(long = "pci-block-list", value_delimiter = ',')]
    pub pci_block_list: Vec<String>,
}

impl PrepareFlags {
    /// The request dmg sends.
    pub fn request(&self) -> daos_proto::ctl::StoragePrepareReq {
        daos_proto::ctl::StoragePrepareReq {
            nvme_only: self.nvme_only,
            scm_only: self.scm_only,
            reset: self.reset,
            force: self.force,
            hugepages: self.hugepages.unwrap_or(0),
            pci_block_list: self.pci_block_list.clone(),
        }
    }
}

/// `config generate` flags.
#[derive(Args, Clone, Debug, Default)]
pub struct GenerateFlags {
    /// Management service replicas (comma-separated host[:port]); default localhost.
    #[arg(short = 'r', long = "ms-replicas", value_delimiter = ',')]
    pub ms_replicas: Vec<String>,
    /// Number of engines per host (default: one per NUMA node).
    #[arg(short = 'e', long = "num-engines")]
    pub num_engines: Option<u32>,
    /// Network device class: ethernet or infiniband.
    #[arg(short = 'c', long = "net-class", default_value = "infiniband")]
    pub net_class: String,
    /// Fabric provider (default: the best one libfabric offers on the chosen interfaces).
    #[arg(short = 'p', long = "net-provider")]
    pub net_provider: Option<String>,
    /// Use tmpfs (class ram) for SCM, sized from RAM, instead of PMem.
    #[arg(short = 't', long = "use-tmpfs-scm")]
    pub use_tmpfs_scm: bool,
    /// SCM only: no NVMe tier.
    #[arg(short = 's', long = "scm-only")]
    pub scm_only: bool,
    /// Fabric ports, one per engine (comma-separated; default 31416, 32416, ...).
    #[arg(short = 'f', long = "fabric-ports", value_delimiter = ',')]
    pub fabric_ports: Vec<u16>,
}

impl GenerateFlags {
    /// The request dmg sends.
    pub fn request(&self) -> daos_proto::ctl::ConfigGenerateReq {
        daos_proto::ctl::ConfigGenerateReq {
            replicas: self.ms_replicas.clone(),
            engines: self.num_engines.unwrap_or(0),
            net_class: self.net_class.clone(),
            provider: self.net_provider.clone().unwrap_or_default(),
            tmpfs: self.use_tmpfs_scm,
            scm_only: self.scm_only,
            ports: self.fabric_ports.iter().map(|p| u32::from(*p)).collect(),
        }
    }
}
