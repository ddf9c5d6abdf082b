//! `daos_agent`: DAOS's client-node daemon. `start` (the default) serves credentials and attach
//! info on `<runtime_dir>/daos_agent.sock` in the foreground until SIGTERM/SIGINT (SIGUSR2
//! drops its caches); `version`, `dump-attachinfo`, `net-scan` and `dump-topology` print and exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use daos_agent::{AgentError, AgentState};
use daos_config::agent::{self, Agent};

#[derive(Parser)]
#[command(
    name = "daos_agent",
    version,
    about = "DAOS client agent",
    disable_version_flag = true
)]
struct Cli {
    /// Path to the agent configuration file (before the subcommand: `dump-attachinfo -o` names
    /// its output file, as in DAOS).
    #[arg(short = 'o', long = "config-path")]
    config_path: Option<PathBuf>,
    /// Allow insecure (plaintext) connections and unsigned credentials.
    #[arg(short = 'i', long, global = true)]
    insecure: bool,
    /// Directory of the agent's socket (overrides runtime_dir).
    #[arg(short = 's', long = "runtime_dir", global = true)]
    runtime_dir: Option<PathBuf>,
    /// Log to this file (overrides log_file).
    #[arg(short = 'l', long = "logfile", global = true)]
    logfile: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'd', long, global = true)]
    debug: bool,
    /// JSON output.
    #[arg(short = 'j', long, global = true)]
    json: bool,
    /// JSON-formatted log lines.
    #[arg(short = 'J', long = "json-logging", global = true)]
    json_logging: bool,
    /// Accept a proxy in front of the management service (kept for DAOS's scripts).
    #[arg(long = "allow-proxy", global = true)]
    allow_proxy: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the agent (the default).
    Start,
    /// Print the agent's version.
    Version,
    /// Print the system's attach info in CaRT's format.
    #[command(name = "dump-attachinfo")]
    DumpAttachinfo {
        /// Write it to this file instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// List the fabric interfaces clients of this node could use.
    #[command(name = "net-scan")]
    NetScan {
        /// Only this provider (`all`: every one).
        #[arg(short = 'p', long)]
        provider: Option<String>,
    },
    /// Print the hardware topology.
    #[command(name = "dump-topology")]
    DumpTopology,
}

fn fail(e: &dyn std::error::Error, fix: Option<&str>) -> ExitCode {
    eprintln!("ERROR: daos_agent: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        eprintln!("  caused by: {s}");
        src = s.source();
    }
    if let Some(f) = fix {
        eprintln!("fix: {f}");
    }
    ExitCode::from(1)
}

fn load(cli: &Cli) -> Result<Agent, AgentError> {
    let path = cli.config_path.clone().or_else(|| {
        Path::new(agent::DEFAULT_AGENT_PATH)
            .exists()
            .then(|| PathBuf::from(agent::DEFAULT_AGENT_PATH))
    });
    let mut cfg = match &path {
        Some(p) => agent::load_file(p).map_err(|e| AgentError::Config(e.to_string()))?,
        None => Agent::default(),
    };
    if let Some(d) = &cli.runtime_dir {
        cfg.runtime_dir = d.clone();
    }
    if let Some(l) = &cli.logfile {
        cfg.log_file = Some(l.clone());
    }
    if cli.debug {
        cfg.control_log_mask = "debug".into();
    }
    if cli.insecure {
        cfg.transport_config.allow_insecure = true;
    }
    Ok(cfg)
}

fn init_logging(cfg: &Agent, json: bool) -> Result<(), AgentError> {
    daos_control::logging::init(&cfg.control_log_mask, cfg.log_file.as_deref(), json).map_err(
        |source| AgentError::Io {
            what: "cannot start logging".into(),
            source,
        },
    )
}

fn start(cli: &Cli, cfg: Agent) -> Result<(), AgentError> {
    use nix::sys::signal::{SigSet, Signal};
    init_logging(&cfg, cli.json_logging)?;
    // Signals are taken by sigwait below: block them before any thread starts.
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR2] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| AgentError::Config(format!("cannot block signals: {e}")))?;
    let socket = daos_agent::prepare_runtime_dir(&cfg)?;
    let insecure = cfg.transport_config.allow_insecure;
    let name = cfg.name.clone();
    let points = cfg.access_point_addrs().join(",");
    let state = Arc::new(AgentState::new(cfg, insecure)?);
    let server = daos_drpc::serve(&socket, daos_agent::registry(state.clone()))?;
    // Every local user's processes talk to the agent (DAOS: mode 0666).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).map_err(
            |source| AgentError::Io {
                what: format!("cannot open {} to local users", socket.display()),
                source,
            },
        )?;
    }
    tracing::info!(
        "daos_agent version {} (pid {}) listening on {} (system {name}, access points {points}{})",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        socket.display(),
        if insecure { ", insecure" } else { "" }
    );
    // Handles of processes killed without NotifyExit are evicted within REAP.
    {
        let state = state.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(REAP);
                    state.reap();
                }
            })
            .map_err(|source| AgentError::Io {
                what: "cannot start the reaper thread".into(),
                source,
            })?;
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGUSR2) => {
                tracing::info!("SIGUSR2: cached attach info and credentials dropped");
                state.refresh();
            }
            Ok(sig) => {
                tracing::info!("{sig}: daos_agent shutting down");
                break;
            }
            Err(e) => return Err(AgentError::Config(format!("waiting for signals: {e}"))),
        }
    }
    server.stop();
    Ok(())
}

/// How often the agent looks for dead processes that held pool handles.
const REAP: std::time::Duration = std::time::Duration::from_secs(2);

fn dump_attachinfo(cfg: Agent, output: Option<&Path>) -> Result<(), AgentError> {
    let insecure = cfg.transport_config.allow_insecure;
    let name = cfg.name.clone();
    let state = AgentState::new(cfg, insecure)?;
    let resp = state.attach_info().map_err(AgentError::Service)?;
    let text = daos_agent::attach_info_text(&resp, &name);
    match output {
        Some(p) => std::fs::write(p, text).map_err(|source| AgentError::Io {
            what: format!("cannot write {}", p.display()),
            source,
        }),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn net_scan(provider: Option<&str>, json: bool) -> Result<(), AgentError> {
    let ifaces = daos_hw::net::scan(&daos_hw::SysRoot::default())
        .map_err(|e| AgentError::Service(e.to_string()))?;
    let providers = daos_fabric::providers().unwrap_or_default();
    let want = |p: &str| match provider {
        None | Some("all") => true,
        Some(x) => p == x || p.trim_start_matches("ofi+") == x.trim_start_matches("ofi+"),
    };
    let mut rows = Vec::new();
    for i in &ifaces {
        let provs: Vec<&str> = providers
            .iter()
            .filter(|p| p.domain == i.name && want(&p.provider))
            .map(|p| p.provider.as_str())
            .collect();
        if provs.is_empty() {
            continue;
        }
        rows.push((i.name.clone(), i.numa_node, provs.join(", ")));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, numa, p)| serde_json::json!({"interface": n, "numa_node": numa, "providers": p}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!("{:<16} {:<10} Providers", "Interface", "NUMA Node");
    println!("{:<16} {:<10} ---------", "---------", "---------");
    for (n, numa, p) in rows {
        let numa = numa.map_or("-".to_string(), |x| x.to_string());
        println!("{n:<16} {numa:<10} {p}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = cli.allow_proxy;
    let cfg = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                &e,
                Some("fix daos_agent.yml (see the line and fix above) or give another with -o"),
            );
        }
    };
    let result = match &cli.command {
        None | Some(Command::Start) => start(&cli, cfg),
        Some(Command::Version) => {
            println!("daos_agent version {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(Command::DumpAttachinfo { output }) => dump_attachinfo(cfg, output.as_deref()),
        Some(Command::NetScan { provider }) => net_scan(provider.as_deref(), cli.json),
        Some(Command::DumpTopology) => daos_hw::topology::dump()
            .map(|(text, _)| print!("{text}"))
            .map_err(|e| AgentError::Service(e.to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let fix = match &e {
                AgentError::Auth(_) => Some(
                    "check transport_config.key (the agent key, mode 0400), or run insecure (-i)",
                ),
                AgentError::Service(_) => Some(
                    "check access_points and that daos_server runs there (same secure/insecure mode)",
                ),
                _ => None,
            };
            fail(&e, fix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "daos_agent",
            "-o",
            "a.yml",
            "-i",
            "dump-attachinfo",
            "-o",
            "out",
        ])
        .expect("parse");
        assert_eq!(c.config_path, Some(PathBuf::from("a.yml")));
        assert!(c.insecure);
        assert!(matches!(
            c.command,
            Some(Command::DumpAttachinfo { output: Some(_) })
        ));
    }
}
