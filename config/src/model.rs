//! The typed server configuration: what `daos_server.yml` means once parsed, defaulted and
//! normalized. Both the legacy (`servers:` with flat storage keys) and the modern (`engines:`
//! with a `storage:` tier list) forms decode into this one model; it serializes back in the
//! modern form, which is what `daos_server config validate` prints and what
//! `.daos_server.active.yml` holds.

use std::path::PathBuf;

use serde::Serialize;

/// Default gRPC control port.
pub const DEFAULT_PORT: u16 = 10001;
/// Default system name (CaRT group).
pub const DEFAULT_SYSTEM_NAME: &str = "daos_server";
/// Longest system name DAOS accepts (`DAOS_SYS_NAME_MAX`).
pub const SYSTEM_NAME_MAX: usize = 15;
/// Default dRPC socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/daos_server";
/// Default certificate directory.
pub const DEFAULT_CERT_DIR: &str = "/etc/daos/certs";
/// Smallest tmpfs SCM DAOS accepts, GiB (`MinRamdiskMem`).
pub const MIN_RAM_SCM_GIB: u64 = 4;
/// Name of the effective-config file written at start.
pub const ACTIVE_CONFIG_NAME: &str = ".daos_server.active.yml";

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// `daos_server.yml`, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Server {
    pub name: String,
    pub mgmt_svc_replicas: Vec<String>,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_iface: Option<String>,
    pub transport_config: TransportConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fabric_iface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fabric_iface_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crt_timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crt_ctx_share_addr: Option<u32>,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_srx: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fabric_auth_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secondary_provider_endpoints: Vec<u32>,
    pub socket_dir: PathBuf,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub nr_hugepages: i32,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_hugepages: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub set_hugepages: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_numa_imbalance: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_thp: bool,
    /// GiB of RAM kept back when sizing tmpfs SCM.
    pub system_ram_reserved: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_config_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bdev_include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bdev_exclude: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_vfio: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_vmd: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_hotplug: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub hyperthreads: bool,
    pub control_log_mask: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_log_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "is_false")]
    pub control_log_json: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helper_log_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware_helper_log_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "is_false")]
    pub recreate_superblocks: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_cb: Option<PathBuf>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub telemetry_port: u32,
    pub core_dump_filter: u8,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_env_vars: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_metadata: Option<ControlMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_config: Option<SupportConfig>,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_engine_auto_restart: bool,
    /// Seconds.
    pub engine_auto_restart_min_delay: u32,
    pub engines: Vec<Engine>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            name: DEFAULT_SYSTEM_NAME.into(),
            mgmt_svc_replicas: Vec::new(),
            port: DEFAULT_PORT,
            control_iface: None,
            transport_config: TransportConfig::default(),
            provider: None,
            fabric_iface: None,
            fabric_iface_port: None,
            crt_timeout: None,
            crt_ctx_share_addr: None,
            disable_srx: false,
            fabric_auth_key: None,
            secondary_provider_endpoints: Vec::new(),
            socket_dir: DEFAULT_SOCKET_DIR.into(),
            nr_hugepages: 0,
            disable_hugepages: false,
            set_hugepages: false,
            allow_numa_imbalance: false,
            allow_thp: false,
            system_ram_reserved: 64,
            kernel_config_path: None,
            bdev_include: Vec::new(),
            bdev_exclude: Vec::new(),
            disable_vfio: false,
            disable_vmd: false,
            disable_hotplug: false,
            hyperthreads: false,
            control_log_mask: "INFO".into(),
            control_log_file: None,
            control_log_json: false,
            helper_log_file: None,
            firmware_helper_log_file: None,
            recreate_superblocks: false,
            fault_path: None,
            fault_cb: None,
            telemetry_port: 0,
            core_dump_filter: 0x13,
            client_env_vars: Vec::new(),
            control_metadata: None,
            support_config: None,
            disable_engine_auto_restart: false,
            engine_auto_restart_min_delay: 300,
            engines: Vec::new(),
        }
    }
}

/// `transport_config`: TLS settings of the control plane.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransportConfig {
    pub allow_insecure: bool,
    pub client_cert_dir: PathBuf,
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for TransportConfig {
    fn default() -> Self {
        let dir = PathBuf::from(DEFAULT_CERT_DIR);
        TransportConfig {
            allow_insecure: false,
            client_cert_dir: dir.join("clients"),
            ca_cert: dir.join("daosCA.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

/// `control_metadata`: where the control plane keeps its own metadata (MD-on-SSD).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ControlMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_spdk_conf_override: bool,
}

/// `support_config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SupportConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_transfer_exec: Option<PathBuf>,
}

/// One `engines:` entry (legacy: `servers:`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Engine {
    pub targets: u32,
    pub nr_xs_helpers: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_core: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_numa_node: Option<u32>,
    pub fabric_iface: String,
    pub fabric_iface_port: u16,
    /// Empty: inherited from the top level.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crt_timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crt_ctx_share_addr: Option<u32>,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_srx: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fabric_auth_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secondary_provider_endpoints: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass_health_chk: Option<bool>,
    pub log_mask: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_vars: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_pass_through: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<String>,
    pub storage: Vec<Tier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceleration: Option<Acceleration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spdk_rpc_server: Option<SpdkRpcServer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bdev_auto_faulty: Option<BdevAutoFaulty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spdk_iobuf: Option<SpdkIobuf>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            targets: 0,
            nr_xs_helpers: 2,
            first_core: None,
            pinned_numa_node: None,
            fabric_iface: String::new(),
            fabric_iface_port: 0,
            provider: String::new(),
            crt_timeout: None,
            crt_ctx_share_addr: None,
            disable_srx: false,
            fabric_auth_key: None,
            secondary_provider_endpoints: Vec::new(),
            bypass_health_chk: None,
            log_mask: "ERR".into(),
            log_file: None,
            env_vars: Vec::new(),
            env_pass_through: Vec::new(),
            rank: None,
            modules: None,
            storage: Vec::new(),
            acceleration: None,
            spdk_rpc_server: None,
            bdev_auto_faulty: None,
            spdk_iobuf: None,
        }
    }
}

impl Engine {
    /// The SCM tier (tier 0 in a valid config).
    pub fn scm(&self) -> Option<&Tier> {
        self.storage.iter().find(|t| t.class.is_scm())
    }

    /// The bdev tiers, in order.
    pub fn bdevs(&self) -> impl Iterator<Item = &Tier> {
        self.storage.iter().filter(|t| !t.class.is_scm())
    }
}

/// Storage class of a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TierClass {
    /// Persistent memory (Optane DCPM) mounted with DAX.
    Dcpm,
    /// tmpfs emulating SCM.
    Ram,
    /// NVMe SSDs through SPDK.
    Nvme,
    /// A kernel block device (emulated NVMe, AIO).
    Kdev,
    /// A file (emulated NVMe, AIO).
    File,
    /// RAM disk (emulated NVMe).
    Malloc,
}

impl TierClass {
    pub const NAMES: &'static [&'static str] = &["dcpm", "ram", "nvme", "kdev", "file", "malloc"];

    pub fn parse(s: &str) -> Option<TierClass> {
        Some(match s {
            "dcpm" => TierClass::Dcpm,
            "ram" => TierClass::Ram,
            "nvme" => TierClass::Nvme,
            "kdev" => TierClass::Kdev,
            "file" => TierClass::File,
            "malloc" => TierClass::Malloc,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TierClass::Dcpm => "dcpm",
            TierClass::Ram => "ram",
            TierClass::Nvme => "nvme",
            TierClass::Kdev => "kdev",
            TierClass::File => "file",
            TierClass::Malloc => "malloc",
        }
    }

    pub fn is_scm(self) -> bool {
        matches!(self, TierClass::Dcpm | TierClass::Ram)
    }

    /// True for bdev classes that are emulated (not real NVMe).
    pub fn is_emulated_bdev(self) -> bool {
        matches!(self, TierClass::Kdev | TierClass::File | TierClass::Malloc)
    }

    /// The engine's `VOS_BDEV_CLASS` value for this bdev class.
    pub fn vos_bdev_class(self) -> Option<&'static str> {
        match self {
            TierClass::Nvme => Some("NVME"),
            TierClass::Kdev | TierClass::File => Some("AIO"),
            TierClass::Malloc => Some("MALLOC"),
            TierClass::Dcpm | TierClass::Ram => None,
        }
    }
}

/// One `storage:` tier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tier {
    pub class: TierClass,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scm_mount: Option<PathBuf>,
    /// GiB (ram only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scm_size: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scm_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scm_hugepages_disabled: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bdev_list: Vec<String>,
    /// GB (file, malloc).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bdev_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bdev_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bdev_busid_range: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bdev_roles: Vec<String>,
}

impl Tier {
    pub fn new(class: TierClass) -> Self {
        Tier {
            class,
            scm_mount: None,
            scm_size: None,
            scm_list: Vec::new(),
            scm_hugepages_disabled: None,
            bdev_list: Vec::new(),
            bdev_size: None,
            bdev_number: None,
            bdev_busid_range: None,
            bdev_roles: Vec::new(),
        }
    }
}

/// `acceleration`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Acceleration {
    pub engine: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// `spdk_rpc_server`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SpdkRpcServer {
    pub enable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sock_addr: Option<String>,
}

/// `bdev_auto_faulty`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BdevAutoFaulty {
    pub enable: bool,
    pub max_io_errs: u32,
    pub max_csum_errs: u32,
}

impl Default for BdevAutoFaulty {
    fn default() -> Self {
        BdevAutoFaulty {
            enable: true,
            max_io_errs: 10,
            max_csum_errs: u32::MAX,
        }
    }
}

/// `spdk_iobuf`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpdkIobuf {
    pub small_pool_count: u32,
    pub large_pool_count: u32,
}

impl Default for SpdkIobuf {
    fn default() -> Self {
        SpdkIobuf {
            small_pool_count: 8192,
            large_pool_count: 1024,
        }
    }
}
