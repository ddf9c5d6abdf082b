//! `daos_server`: the DAOS control server. See `daos_server --help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use daos_config::Overrides;
use daos_server::exit::{CmdError, ExitCode, report};
use daos_server::server::{self, VERSION};

#[derive(Parser)]
#[command(name = "daos_server", version = VERSION, about = "DAOS control server: runs on every storage node, supervises its I/O engines")]
struct Cli {
    /// Keep proxy environment variables (otherwise they are scrubbed).
    #[arg(long, global = true)]
    allow_proxy: bool,
    /// Debug logging (overrides control_log_mask).
    #[arg(short = 'b', long, global = true)]
    debug: bool,
    /// JSON output.
    #[arg(short = 'j', long, global = true)]
    json: bool,
    /// JSON log lines.
    #[arg(short = 'J', long = "json-logging", global = true)]
    json_logging: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the control server (and, with bring-up, its engines).
    Start(StartArgs),
    /// Work with the server config file.
    #[command(subcommand, visible_alias = "cfg")]
    Config(ConfigCommand),
    /// Certificates for the control plane.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Local storage hardware.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Local fabric interfaces and providers.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Print this host's hardware topology (hwloc): packages, NUMA nodes, cores, PUs, I/O.
    DumpTopology,
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Interfaces usable for DAOS, with provider and NUMA node, best provider first.
    Scan {
        /// Provider to show (e.g. ofi+tcp;ofi_rxm), or `all`; default: the config's provider.
        #[arg(short = 'p', long)]
        provider: Option<String>,
        /// Config whose provider filters the scan (default /etc/daos/daos_server.yml if present).
        #[arg(short = 'o', long = "config")]
        config: Option<PathBuf>,
    },
    /// Providers libfabric offers on this host.
    List,
}

#[derive(Subcommand)]
enum StorageCommand {
    /// List this host's PMem namespaces and NVMe controllers.
    Scan,
    /// Prepare NVMe (hugepages, bind to vfio-pci/uio) and PMem (goals, namespaces) for DAOS.
    Prepare {
        #[command(flatten)]
        flags: daos_server::cli::PrepareFlags,
        /// Config whose bdev_include/bdev_exclude/nr_hugepages apply (default /etc/daos/daos_server.yml if present).
        #[arg(short = 'o', long = "config")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Create a CA and the server, admin and agent key pairs in DIR (DAOS's names and modes).
    Generate {
        /// Directory for daosCA.crt, server/admin/agent .crt and .key, and clients/.
        dir: PathBuf,
        /// Replace a CA that is already there (every certificate it signed stops working).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write a daos_server.yml for this host's hardware to stdout.
    #[command(visible_alias = "gen")]
    Generate {
        #[command(flatten)]
        flags: daos_server::cli::GenerateFlags,
    },
    /// Check a daos_server.yml and print it normalized (modern form), or print every error.
    Validate {
        /// Config file; default /etc/daos/daos_server.yml, else the embedded default.
        #[arg(short = 'o', long = "config")]
        config: Option<PathBuf>,
    },
}

#[derive(Args)]
struct StartArgs {
    /// Config file; default /etc/daos/daos_server.yml, else the embedded default.
    #[arg(short = 'o', long = "config")]
    config: Option<PathBuf>,
    /// Control (gRPC) port; overrides `port`.
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// SCM mount path of engine 0; overrides its scm_mount.
    #[arg(short = 's', long)]
    storage: Option<PathBuf>,
    /// Engine module list; overrides `modules`.
    #[arg(short = 'm', long)]
    modules: Option<String>,
    /// Targets per engine; overrides `targets`.
    #[arg(short = 't', long)]
    targets: Option<u32>,
    /// Helper xstreams per engine; overrides `nr_xs_helpers`.
    #[arg(short = 'x', long = "xshelpernr")]
    xshelpernr: Option<u32>,
    /// First core of each engine; overrides `first_core`.
    #[arg(short = 'f', long = "firstcore")]
    firstcore: Option<u32>,
    /// System name; overrides `name`.
    #[arg(short = 'g', long)]
    group: Option<String>,
    /// Socket directory; overrides `socket_dir`.
    #[arg(short = 'd', long = "socket_dir")]
    socket_dir: Option<PathBuf>,
    /// Plaintext control plane, no certificates; sets transport_config.allow_insecure.
    #[arg(short = 'i', long)]
    insecure: bool,
    /// Format unformatted storage at start instead of waiting for `dmg storage format`.
    #[arg(long = "auto-format")]
    auto_format: bool,
}

impl StartArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            port: self.port,
            socket_dir: self.socket_dir.clone(),
            insecure: self.insecure,
            targets: self.targets,
            nr_xs_helpers: self.xshelpernr,
            first_core: self.firstcore,
            scm_mount: self.storage.clone(),
            modules: self.modules.clone(),
            group: self.group.clone(),
        }
    }
}

fn run(cli: Cli) -> Result<(), CmdError> {
    if !cli.allow_proxy {
        for var in [
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "no_proxy",
            "NO_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            // SAFETY: called before any other thread exists (signals are blocked and no
            // server thread has been spawned yet), so nothing reads the environment concurrently.
            unsafe { std::env::remove_var(var) };
        }
    }
    match cli.command {
        Command::Version => {
            println!("daos_server version {VERSION}");
            Ok(())
        }
        Command::Network(NetworkCommand::Scan { provider, config }) => {
            let from_config = match (&provider, server::resolve(config.as_deref())) {
                (None, server::ConfigSource::File(p)) => {
                    daos_config::load_file(&p, &Overrides::default())
                        .ok()
                        .and_then(|l| l.server.provider)
                }
                _ => None,
            };
            let filter = provider.or(from_config);
            let entries =
                daos_server::scan::fabric_scan(&daos_server::scan::sys_root(), filter.as_deref())?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"response": entries, "error": null, "status": 0})
                );
            } else {
                print!("{}", daos_server::scan::fabric_text(&entries));
            }
            Ok(())
        }
        Command::Network(NetworkCommand::List) => {
            let infos = daos_fabric::providers().map_err(CmdError::new)?;
            let mut names: Vec<String> = infos.into_iter().map(|i| i.provider).collect();
            names.dedup();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"response": names, "error": null, "status": 0})
                );
            } else {
                println!("Supported providers:");
                for n in names {
                    println!("	{n}");
                }
            }
            Ok(())
        }
        Command::DumpTopology => {
            let (tree, sum) = daos_hw::topology::dump().map_err(CmdError::new)?;
            let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"response": {"summary": sum, "tree": tree}, "error": null, "status": 0})
                );
            } else {
                println!(
                    "{} on {} ({}, {})\n",
                    plural(sum.cores, "core"),
                    plural(sum.numa_nodes, "NUMA node"),
                    plural(sum.packages, "package"),
                    plural(sum.pus, "PU")
                );
                print!("{tree}");
            }
            Ok(())
        }
        Command::Storage(StorageCommand::Prepare { flags, config }) => {
            let cfg = match server::resolve(config.as_deref()) {
                server::ConfigSource::File(p) => {
                    Some(daos_config::load_file(&p, &Overrides::default())?.server)
                }
                server::ConfigSource::Embedded(_) => None,
            };
            let args = daos_server::prepare::PrepareArgs {
                nvme_only: flags.nvme_only,
                scm_only: flags.scm_only,
                reset: flags.reset,
                force: flags.force,
                hugepages: flags.hugepages.or_else(|| {
                    cfg.as_ref()
                        .map(|c| c.nr_hugepages)
                        .filter(|n| *n > 0)
                        .map(|n| n as u64)
                }),
                block_list: flags.pci_block_list,
                include: cfg
                    .as_ref()
                    .map(|c| c.bdev_include.clone())
                    .unwrap_or_default(),
                exclude: cfg
                    .as_ref()
                    .map(|c| c.bdev_exclude.clone())
                    .unwrap_or_default(),
            };
            let lines = daos_server::prepare::prepare(&daos_server::scan::sys_root(), &args)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"response": lines, "error": null, "status": 0})
                );
            } else {
                for l in lines {
                    println!("{l}");
                }
            }
            Ok(())
        }
        Command::Storage(StorageCommand::Scan) => {
            let (text, json) = daos_server::scan::storage_scan(&daos_server::scan::sys_root())?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"response": json, "error": null, "status": 0})
                );
            } else {
                println!("Scanning locally-attached storage...");
                print!("{text}");
            }
            Ok(())
        }
        Command::Cert(CertCommand::Generate { dir, force }) => {
            let ca = dir.join("daosCA.crt");
            if ca.exists() && !force {
                return Err(CmdError::new(format!(
                    "{} already holds a CA; a new one would invalidate every certificate it signed",
                    dir.display()
                ))
                .fix("use another directory, or --force to replace it"));
            }
            let files = daos_server::security::generate(&dir)?;
            for f in files {
                println!("{}", f.display());
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Generate { flags }) => {
            let args = daos_server::generate::GenerateArgs::from_request(flags.request());
            let yaml = daos_server::generate::generate(&daos_server::scan::sys_root(), &args)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"response": {"config": yaml}, "error": null, "status": 0})
                );
            } else {
                print!("{yaml}");
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Validate { config }) => {
            server::validate(config.as_deref(), cli.json)
        }
        Command::Start(args) => {
            let source = server::resolve(args.config.as_deref());
            let flags = server::LogFlags {
                debug: cli.debug,
                json: cli.json_logging,
            };
            let started = server::start(&source, &args.overrides(), flags, args.auto_format)?;
            let signal = server::wait_for_signal()?;
            tracing::info!("received {signal}; shutting down");
            started.stop();
            tracing::info!("DAOS Control Server stopped");
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    if let Err(e) = server::block_signals() {
        return report(&e).into();
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::Success.into(),
        Err(e) if e.message.is_empty() => e.code.into(),
        Err(e) => report(&e).into(),
    }
}
