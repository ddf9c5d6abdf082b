//! `dmg`: the DAOS management tool. See `dmg --help`.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use daos_config::control::{self, Control};
use daos_ctl::dmg::{self, Target};
use daos_ctl::exit::{CmdError, ExitCode, report};
use daos_ctl::server::VERSION;

#[derive(Parser)]
#[command(name = "dmg", version = VERSION, about = "DAOS management tool: administers DAOS systems over the control API")]
struct Cli {
    /// Client config file (default /etc/daos/daos_control.yml if it exists).
    #[arg(short = 'o', long = "config-path", global = true)]
    config_path: Option<PathBuf>,
    /// Plaintext connection, no certificates (daos_server must be insecure too).
    #[arg(short = 'i', long, global = true)]
    insecure: bool,
    /// JSON output: {"response": ..., "error": ..., "status": ...}.
    #[arg(short = 'j', long, global = true)]
    json: bool,
    /// Hosts to talk to, e.g. wolf-7[1-2]:10001 (default: hostlist of the config).
    #[arg(short = 'l', long = "host-list", global = true)]
    host_list: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Storage of the servers.
    #[command(subcommand, visible_alias = "sto")]
    Storage(StorageCmd),
    /// The DAOS system: its ranks and their states.
    #[command(subcommand, visible_alias = "sys")]
    System(SystemCmd),
    /// Fabric interfaces of the servers.
    #[command(subcommand, visible_alias = "net")]
    Network(NetworkCmd),
    /// Server configs.
    #[command(subcommand, visible_alias = "cfg")]
    Config(ConfigCmd),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum StorageCmd {
    /// Format the storage of the servers' engines, which then start.
    Format {
        /// Reformat formatted storage, stopping running engines first.
        #[arg(long, visible_alias = "reformat")]
        force: bool,
        /// Per-device results.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Prepare the servers' NVMe (hugepages, vfio) and PMem (goals, namespaces).
    Prepare {
        /// Only NVMe.
        #[arg(short = 'n', long = "nvme-only")]
        nvme_only: bool,
        /// Only SCM.
        #[arg(short = 's', long = "scm-only")]
        scm_only: bool,
        /// Undo the preparation.
        #[arg(long)]
        reset: bool,
        /// Do destructive PMem changes without asking.
        #[arg(short = 'f', long)]
        force: bool,
        /// Hugepages to reserve.
        #[arg(short = 'p', long)]
        hugepages: Option<u64>,
        /// NVMe controllers to leave alone.
        #[arg(long = "pci-block-list", value_delimiter = ',')]
        pci_block_list: Vec<String>,
    },
    /// PMem and NVMe hardware of the servers (verbose: per device, and the configured storage).
    Scan {
        /// Per-device tables.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Providers and interfaces per NUMA socket of each host.
    Scan {
        /// Provider to show, or `all` (default: each server's configured provider).
        #[arg(short = 'p', long)]
        provider: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// A daos_server.yml generated from the hosts' hardware (they must be alike).
    #[command(visible_alias = "gen")]
    Generate {
        /// Management service replicas (comma-separated); default localhost.
        #[arg(short = 'r', long = "ms-replicas", value_delimiter = ',')]
        ms_replicas: Vec<String>,
        /// Number of engines per host (default: one per NUMA node).
        #[arg(short = 'e', long = "num-engines")]
        num_engines: Option<u32>,
        /// Network device class: ethernet or infiniband.
        #[arg(short = 'c', long = "net-class", default_value = "infiniband")]
        net_class: String,
        /// Fabric provider.
        #[arg(short = 'p', long = "net-provider")]
        net_provider: Option<String>,
        /// tmpfs SCM instead of PMem.
        #[arg(short = 't', long = "use-tmpfs-scm")]
        use_tmpfs_scm: bool,
        /// SCM only, no NVMe.
        #[arg(short = 's', long = "scm-only")]
        scm_only: bool,
        /// Fabric ports, one per engine.
        #[arg(short = 'f', long = "fabric-ports", value_delimiter = ',')]
        fabric_ports: Vec<u32>,
    },
}

#[derive(Subcommand)]
enum SystemCmd {
    /// Ranks and their states.
    Query {
        /// Ranks to show, e.g. 0-3,7.
        #[arg(short = 'r', long)]
        ranks: Option<String>,
        /// One row per rank with its UUID, address, fault domain and reason.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Stop ranks (all by default); they stay stopped until started.
    Stop {
        #[arg(short = 'r', long)]
        ranks: Option<String>,
        /// Kill at once (SIGKILL) instead of a clean shutdown.
        #[arg(long)]
        force: bool,
    },
    /// Start stopped ranks (all by default).
    Start {
        #[arg(short = 'r', long)]
        ranks: Option<String>,
    },
    /// The management service leader and replicas.
    LeaderQuery,
}

fn load_control(path: Option<&Path>) -> Result<Control, CmdError> {
    match path {
        Some(p) => control::load_file(p).map_err(CmdError::from),
        None if Path::new(control::DEFAULT_CONTROL_PATH).exists() => {
            control::load_file(Path::new(control::DEFAULT_CONTROL_PATH)).map_err(CmdError::from)
        }
        None => Ok(Control::default()),
    }
}

fn run(cli: Cli) -> Result<ExitCode, CmdError> {
    if let Command::Version = cli.command {
        if cli.json {
            println!(
                "{}",
                serde_json::json!({"response": {"version": VERSION}, "error": null, "status": 0})
            );
        } else {
            println!("dmg version {VERSION}");
        }
        return Ok(ExitCode::Success);
    }
    let control = load_control(cli.config_path.as_deref())?;
    let target = Target::new(&control, cli.host_list.as_deref(), cli.insecure)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::new(format!("cannot start the client runtime: {e}")))?;
    let out = rt.block_on(async {
        match &cli.command {
            Command::Storage(StorageCmd::Format { force, verbose, .. }) => {
                dmg::storage_format(&target, *force, *verbose).await
            }
            Command::Storage(StorageCmd::Scan { verbose, .. }) => {
                dmg::storage_scan(&target, *verbose).await
            }
            Command::Storage(StorageCmd::Prepare {
                nvme_only,
                scm_only,
                reset,
                force,
                hugepages,
                pci_block_list,
            }) => {
                let req = daos_ctl::rpc::ctl::StoragePrepareReq {
                    nvme_only: *nvme_only,
                    scm_only: *scm_only,
                    reset: *reset,
                    force: *force,
                    hugepages: hugepages.unwrap_or(0),
                    pci_block_list: pci_block_list.clone(),
                };
                dmg::storage_prepare(&target, req).await
            }
            Command::Network(NetworkCmd::Scan { provider }) => {
                dmg::network_scan(&target, provider.as_deref().unwrap_or("")).await
            }
            Command::Config(ConfigCmd::Generate {
                ms_replicas,
                num_engines,
                net_class,
                net_provider,
                use_tmpfs_scm,
                scm_only,
                fabric_ports,
            }) => {
                let req = daos_ctl::rpc::ctl::ConfigGenerateReq {
                    replicas: ms_replicas.clone(),
                    engines: num_engines.unwrap_or(0),
                    net_class: net_class.clone(),
                    provider: net_provider.clone().unwrap_or_default(),
                    tmpfs: *use_tmpfs_scm,
                    scm_only: *scm_only,
                    ports: fabric_ports.clone(),
                };
                dmg::config_generate(&target, req).await
            }
            Command::System(SystemCmd::Query { ranks, verbose, .. }) => {
                dmg::system_query(&target, ranks.as_deref().unwrap_or(""), *verbose).await
            }
            Command::System(SystemCmd::Stop { ranks, force, .. }) => {
                dmg::system_stop(&target, ranks.as_deref().unwrap_or(""), *force).await
            }
            Command::System(SystemCmd::Start { ranks, .. }) => {
                dmg::system_start(&target, ranks.as_deref().unwrap_or("")).await
            }
            Command::System(SystemCmd::LeaderQuery) => dmg::leader_query(&target).await,
            Command::Version => unreachable_version(),
        }
    });
    Ok(dmg::print(out, cli.json))
}

fn unreachable_version() -> dmg::Output {
    dmg::Output {
        text: String::new(),
        json: serde_json::Value::Null,
        ok: true,
        error: None,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code.into(),
        Err(e) => report(&e).into(),
    }
}
