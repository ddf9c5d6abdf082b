//! `daos_server`: config resolution, `config validate`, and `start`.
//!
//! `start` loads and validates the config (file or embedded default) with command-line
//! overrides, checks the socket directory, clears stale sockets, serves dRPC on
//! `<socket_dir>/daos_server.sock`, writes `.daos_server.active.yml`, opens the management
//! service, serves the management API (gRPC), formats or waits for a format, supervises the
//! engines, and runs until SIGINT/SIGTERM, then stops the engines.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use daos_config::{ACTIVE_CONFIG_NAME, DefaultParams, Loaded, Overrides, Server};
use daos_drpc::{Module, Registry, ServerHandle};
use tracing::{info, warn};

use crate::exit::CmdError;
use crate::harness::Harness;
use crate::membership::raft::{MsConfig, MsNode, Timing};

/// Where a daos_server config is looked for when `-o` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/daos/daos_server.yml";
/// Environment variable naming the data directory of the embedded default config.
pub const DATA_DIR_ENV: &str = "DAOS_DATA_DIR";
/// Name of daos_server's dRPC socket in socket_dir.
pub const SERVER_SOCKET: &str = "daos_server.sock";
/// File-name prefix of engine dRPC sockets.
pub const ENGINE_SOCKET_PREFIX: &str = "daos_engine";
/// Version printed by `version` and in the start-up banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the config comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigSource {
    File(PathBuf),
    /// The embedded default, with its data directory.
    Embedded(PathBuf),
}

/// The data directory of the embedded default: `$DAOS_DATA_DIR`, else `/var/lib/daos` for root,
/// else `~/.local/share/daos`.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/daos");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".local/share/daos")
}

/// `-o` if given; else `/etc/daos/daos_server.yml` if it exists; else the embedded default.
pub fn resolve(config: Option<&Path>) -> ConfigSource {
    match config {
        Some(p) => ConfigSource::File(p.to_path_buf()),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            ConfigSource::File(DEFAULT_CONFIG_PATH.into())
        }
        None => ConfigSource::Embedded(data_dir()),
    }
}

/// What the embedded default needs to know about this host.
pub fn default_params(data_dir: &Path) -> DefaultParams {
    let topo = daos_hw::CpuTopology::read(&daos_hw::SysRoot::default()).ok();
    let node = topo.as_ref().and_then(|t| t.first_numa_node());
    let cores = match (node, &topo) {
        (Some(n), _) => n.cpus.len() as u32,
        (None, Some(t)) => t.online.len() as u32,
        (None, None) => std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
    };
    DefaultParams {
        data_dir: data_dir.to_path_buf(),
        numa_node: node.map(|n| n.id),
        cores,
        fabric_iface: "lo".into(),
    }
}

/// Loads and validates the config from `source` with `overrides`.
pub fn load(source: &ConfigSource, overrides: &Overrides) -> Result<Loaded, CmdError> {
    match source {
        ConfigSource::File(p) => daos_config::load_file(p, overrides).map_err(CmdError::from),
        ConfigSource::Embedded(dir) => {
            daos_config::load_default(&default_params(dir), overrides).map_err(CmdError::from)
        }
    }
}

/// One config error as JSON, for `-j`.
fn error_json(errors: &daos_config::ConfigErrors) -> serde_json::Value {
    let items: Vec<serde_json::Value> = errors
        .errors
        .iter()
        .zip(errors.lines())
        .map(|(e, line)| {
            let (l, c, flag) = match &e.origin {
                daos_config::Origin::File(m) => (Some(m.line), Some(m.column), None),
                daos_config::Origin::Flag(f) => (None, None, Some(*f)),
                daos_config::Origin::Default => (None, None, None),
            };
            serde_json::json!({
                "kind": format!("{:?}", e.kind), "path": e.path, "line": l, "column": c, "flag": flag,
                "value": e.value, "message": e.message, "fix": e.fix, "text": line,
            })
        })
        .collect();
    serde_json::json!({"file": errors.file.display().to_string(), "errors": items})
}

/// `daos_server config validate`: prints the normalized config and returns Ok, or prints
/// every error and returns Err.
pub fn validate(config: Option<&Path>, json: bool) -> Result<(), CmdError> {
    let source = resolve(config);
    let name = match &source {
        ConfigSource::File(p) => p.display().to_string(),
        ConfigSource::Embedded(d) => format!(
            "{} (data dir {})",
            daos_config::default::EMBEDDED_NAME,
            d.display()
        ),
    };
    let loaded = match &source {
        ConfigSource::File(p) => daos_config::load_file(p, &Overrides::default()),
        ConfigSource::Embedded(d) => {
            daos_config::load_default(&default_params(d), &Overrides::default())
        }
    };
    match loaded {
        Ok(l) => {
            if json {
                let notices: Vec<String> = l.notices.iter().map(|n| n.to_string()).collect();
                let out = serde_json::json!({"response": {"source": name, "config": l.server.to_json(), "notices": notices}, "error": null, "status": 0});
                println!("{out}");
            } else {
                for n in &l.notices {
                    eprintln!("NOTICE: {n}");
                }
                print!("# {name}: valid\n{}", l.server.to_yaml());
            }
            Ok(())
        }
        Err(errors) => {
            if json {
                let out = serde_json::json!({"response": error_json(&errors), "error": format!("{} has {} error(s)", errors.file.display(), errors.len()), "status": 1});
                println!("{out}");
                let mut e = CmdError::new("");
                e.message.clear();
                return Err(e);
            }
            Err(CmdError::from(errors))
        }
    }
}

/// Writes the effective config read-only as `.daos_server.active.yml` in `socket_dir`,
/// falling back to the temp dir when socket_dir is not writable; returns where it went.
pub fn write_active_config(server: &Server, socket_dir: &Path) -> io::Result<PathBuf> {
    let text = format!(
        "# effective daos_server config, written at start; read-only\n{}",
        server.to_yaml()
    );
    let write = |dir: &Path| -> io::Result<PathBuf> {
        let path = dir.join(ACTIVE_CONFIG_NAME);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::write(&path, &text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444))?;
        Ok(path)
    };
    write(socket_dir).or_else(|e| {
        warn!(
            "cannot write {ACTIVE_CONFIG_NAME} to {}: {e}; using the temp dir",
            socket_dir.display()
        );
        write(&std::env::temp_dir())
    })
}

/// A started control server.
pub struct Started {
    pub loaded: Loaded,
    pub active_config: PathBuf,
    pub drpc: ServerHandle,
    pub grpc: crate::grpc::GrpcHandle,
    pub harness: Option<Arc<Harness>>,
    pub ms: Arc<MsNode>,
}

impl Started {
    /// Stops the management API, then the engines, then the dRPC server, then the management
    /// service replica.
    pub fn stop(self) {
        self.grpc.stop();
        if let Some(h) = &self.harness {
            h.shutdown();
        }
        self.drpc.stop();
        self.ms.shutdown();
    }
}

/// Where this replica keeps the management service's Raft log and snapshots: under
/// `control_metadata.path` if set, else in engine 0's SCM mount, as DAOS does (`control_raft/`).
pub fn raft_dir(s: &Server) -> Option<PathBuf> {
    if let Some(p) = s.control_metadata.as_ref().and_then(|c| c.path.as_ref()) {
        return Some(p.join("control_raft"));
    }
    s.engines
        .first()
        .and_then(|e| e.scm_mount())
        .map(|m| m.join("control_raft"))
}

/// `mgmt_svc_replicas` as configured, each with its port: an explicit port is kept (servers
/// sharing an address are told apart by it), an entry without one got the control port
/// (after `-p`) when the config was loaded.
pub fn effective_replicas(s: &Server) -> Vec<String> {
    if s.mgmt_svc_replicas.is_empty() {
        return vec![format!("localhost:{}", s.port)];
    }
    s.mgmt_svc_replicas
        .iter()
        .map(|r| match daos_config::decode::has_port(r) {
            true => r.clone(),
            false => format!("{r}:{}", s.port),
        })
        .collect()
}

/// The replicas in canonical order (see [`crate::membership::raft::canonical_replicas`]) and
/// this server's position among them: its own entry matches both an address of this host
/// and its control port. Refused: entries that cannot be told apart or do not resolve, and
/// a server that is not listed although an entry names its host with another port (a
/// replica whose port was changed, e.g. with `-p`, or mistyped).
pub fn replica_position(
    s: &Server,
    host: Option<std::net::IpAddr>,
    ips: &[std::net::IpAddr],
) -> Result<(Vec<String>, Option<usize>), CmdError> {
    use crate::membership::raft;
    let listed = effective_replicas(s);
    let replicas = raft::canonical_replicas(&listed)
        .map_err(|e| CmdError::new(format!("bad config: {}", e.message)).fix(e.fix))?;
    let me = raft::local_replica(&replicas, s.port, host, ips);
    if me.is_none() {
        let here = replicas.iter().find(|r| {
            raft::resolve_replica(r)
                .is_ok_and(|a| a.port() != s.port && daos_hw::net::is_host_ip(a.ip(), host, ips))
        });
        if let Some(r) = here {
            let i = listed.iter().position(|l| l == r).unwrap_or_default();
            return Err(CmdError::new(format!(
                "bad config: mgmt_svc_replicas[{i}] {r:?} names this host, but this server's control port is {} and no entry of mgmt_svc_replicas ({}) is this host with port {}",
                s.port,
                listed.join(", "),
                s.port
            ))
            .fix(format!(
                "list this server with its own port (e.g. {}:{}) in mgmt_svc_replicas of every server, or give it the port its entry names (`port:` or -p)",
                r.rsplit_once(':').map_or(r.as_str(), |(h, _)| h),
                s.port
            )));
        }
    }
    Ok((replicas, me))
}

/// How this server takes part in the management service.
pub fn ms_config(s: &Server) -> Result<MsConfig, CmdError> {
    let (replicas, me) = replica_position(
        s,
        daos_hw::net::host_addr().ok().flatten(),
        &crate::membership::raft::local_ips(),
    )?;
    let tls = if s.transport_config.allow_insecure {
        None
    } else {
        let t = &s.transport_config;
        let cert = crate::security::read_pem(&t.cert, "server certificate", None)?;
        let key = crate::security::read_pem(&t.key, "server key", Some(0o400))?;
        let ca = crate::security::read_pem(&t.ca_cert, "CA certificate", None)?;
        Some(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                .identity(tonic::transport::Identity::from_pem(cert, key))
                .domain_name("server"),
        )
    };
    Ok(MsConfig {
        system: s.name.clone(),
        replicas,
        me,
        dir: raft_dir(s),
        pool_dir: raft_dir(s).and_then(|d| d.parent().map(|p| p.join("pool_svc"))),
        tls,
        timing: Timing::default(),
    })
}

/// Logging flags of the command line (`-b/--debug`, `-J/--json-logging`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogFlags {
    pub debug: bool,
    pub json: bool,
}

/// Runs `start` up to serving; the caller waits for a signal, then drops the result.
pub fn start(
    source: &ConfigSource,
    overrides: &Overrides,
    flags: LogFlags,
    auto_format: bool,
) -> Result<Started, CmdError> {
    let loaded = load(source, overrides)?;
    // A bad host address stops the start here, before anything listens.
    daos_hw::net::host_addr().map_err(CmdError::new)?;
    let s = &loaded.server;
    let mask = if flags.debug {
        "DEBUG"
    } else {
        s.control_log_mask.as_str()
    };
    crate::logging::init(
        mask,
        s.control_log_file.as_deref(),
        s.control_log_json || flags.json,
    )
    .map_err(|e| {
        CmdError::new(e).fix("make control_log_file writable or remove it to log to stderr")
    })?;
    match source {
        ConfigSource::File(p) => info!("loaded config from {}", p.display()),
        ConfigSource::Embedded(dir) => {
            info!(
                "no config file given and none at {DEFAULT_CONFIG_PATH}; using the embedded default config (data dir {})",
                dir.display()
            );
            prepare_data_dir(dir, s)?;
        }
    }
    for n in &loaded.notices {
        warn!("{n}");
    }
    if s.engines.is_empty() {
        info!(
            "No DAOS I/O Engines in configuration, DAOS Control Server starting in discovery mode"
        );
    }
    daos_drpc::socket::check_socket_dir(&s.socket_dir)
        .map_err(|e| CmdError::new(format!("dRPC server setup: {e}")).fix(e.fix()))?;
    for path in daos_drpc::socket::remove_stale_sockets(&s.socket_dir, &[ENGINE_SOCKET_PREFIX])
        .map_err(|e| {
            CmdError::new(format!(
                "dRPC server setup: cannot clear stale engine sockets: {e}"
            ))
        })?
    {
        info!("removed stale socket {}", path.display());
    }
    let cfg = ms_config(s)?;
    match cfg.me {
        Some(i) => info!(
            "this server is management service replica {i} of {} ({})",
            cfg.replicas.len(),
            cfg.replicas.join(", ")
        ),
        None => info!(
            "this server is not a management service replica; replicas: {}",
            cfg.replicas.join(", ")
        ),
    }
    let metadata_path = s
        .control_metadata
        .as_ref()
        .is_some_and(|c| c.path.is_some());
    let remote_tls = cfg.tls.clone();
    let ms = Arc::new(MsNode::new(cfg).map_err(CmdError::new)?);
    if metadata_path {
        ms.start_replica().map_err(CmdError::new)?;
    }
    let harness = match s.engines.is_empty() {
        false => {
            let engine_bin = crate::harness::engine_binary().ok_or_else(|| {
                CmdError::new("daos_engine not found next to daos_server or on PATH")
                    .fix("install daos_engine beside daos_server (cargo build --workspace --bins)")
            })?;
            let remote = crate::remote::Remote::new(remote_tls)
                .map_err(|e| CmdError::new(format!("cannot start the remote-call runtime: {e}")))?;
            Some(Harness::new(s.clone(), ms.clone(), remote, engine_bin))
        }
        true => None,
    };
    let registry = match &harness {
        Some(h) => h.registry(),
        None => {
            let mut r = Registry::new();
            r.module(Module::Srv)
                .module(Module::Sec)
                .module(Module::Mgmt);
            r
        }
    };
    let sock = s.socket_dir.join(SERVER_SOCKET);
    let drpc = daos_drpc::serve(&sock, registry).map_err(|e| {
        CmdError::new(e).fix("stop the other daos_server using this socket_dir, or pick another with -d/--socket_dir")
    })?;
    let active_config = write_active_config(s, &s.socket_dir)
        .map_err(|e| CmdError::new(format!("cannot write {ACTIVE_CONFIG_NAME}: {e}")))?;
    info!("active config saved to {}", active_config.display());
    let grpc = crate::grpc::serve(s, harness.clone(), ms.clone())?;
    info!("dRPC server listening on {}", sock.display());
    info!(
        "DAOS Control Server v{VERSION} (pid {}) listening on {}{}",
        std::process::id(),
        grpc.addr,
        if s.transport_config.allow_insecure {
            " (insecure: no TLS)"
        } else {
            ""
        }
    );
    if let Some(h) = &harness {
        h.start(auto_format);
    }
    Ok(Started {
        loaded,
        active_config,
        drpc,
        grpc,
        harness,
        ms,
    })
}

/// Creates the directories the embedded default lives in (the data dir is ours to manage).
fn prepare_data_dir(dir: &Path, s: &Server) -> Result<(), CmdError> {
    let mut dirs = vec![s.socket_dir.clone(), dir.join("log")];
    dirs.extend(s.engines.iter().filter_map(|e| e.scm_mount().cloned()));
    for d in dirs {
        fs::create_dir_all(&d).map_err(|e| {
            CmdError::new(format!("cannot create {}: {e}", d.display()))
                .fix(format!("set {DATA_DIR_ENV} to a writable directory"))
        })?;
    }
    Ok(())
}

/// Blocks until SIGINT or SIGTERM; returns the signal's name.
pub fn wait_for_signal() -> Result<&'static str, CmdError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    let sig = set
        .wait()
        .map_err(|e| CmdError::new(format!("waiting for signals: {e}")))?;
    Ok(sig.as_str())
}

/// Blocks SIGINT/SIGTERM in this thread (and threads it spawns later) so that
/// [`wait_for_signal`] receives them. Call first thing in `main`.
pub fn block_signals() -> Result<(), CmdError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| CmdError::new(format!("blocking signals: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas_of(port: u16, list: &str) -> Result<(Vec<String>, Option<usize>), CmdError> {
        let yaml = format!("port: {port}\nmgmt_svc_replicas: [{list}]\n");
        let l = daos_config::load_str(&yaml, "t.yml", &daos_config::Overrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let ips = [std::net::IpAddr::from([127, 0, 0, 1])];
        replica_position(&l.server, None, &ips)
    }

    #[test]
    fn servers_on_one_address_keep_their_ports_and_agree_on_the_order() {
        // Issue #23 items 9 and 13: three servers on 127.0.0.1 listing the replicas in
        // different orders; each finds its own entry by port, all number them alike.
        let want: Vec<String> = (10011..=10013).map(|p| format!("127.0.0.1:{p}")).collect();
        for (port, list, me) in [
            (
                10011,
                "127.0.0.1:10011, 127.0.0.1:10012, 127.0.0.1:10013",
                0,
            ),
            (
                10012,
                "127.0.0.1:10013, 127.0.0.1:10011, 127.0.0.1:10012",
                1,
            ),
            (
                10013,
                "127.0.0.1:10012, 127.0.0.1:10013, localhost:10011",
                2,
            ),
        ] {
            let (replicas, pos) = replicas_of(port, list).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(pos, Some(me), "{port}: {list}");
            let keys = crate::membership::raft::replica_set_key(&replicas);
            assert_eq!(keys, want.join(","), "{port}: {list}");
            if port != 10013 {
                assert_eq!(replicas, want);
            }
        }
    }

    #[test]
    fn replicas_that_cannot_be_told_apart_are_refused() {
        let e = replicas_of(10011, "127.0.0.1:10011, localhost:10011, 127.0.0.1:10012")
            .expect_err("duplicate");
        let text = e.to_string();
        assert!(
            text.contains("mgmt_svc_replicas[0] \"127.0.0.1:10011\"")
                && text.contains("mgmt_svc_replicas[1] \"localhost:10011\"")
                && text.contains("cannot be told apart")
                && text.contains("fix: "),
            "{text}"
        );
    }

    #[test]
    fn a_server_missing_from_a_list_naming_its_host_is_refused() {
        let e = replicas_of(10014, "127.0.0.1:10011, 127.0.0.1:10012, 127.0.0.1:10013")
            .expect_err("not listed");
        let text = e.to_string();
        assert!(
            text.contains("mgmt_svc_replicas[0] \"127.0.0.1:10011\" names this host")
                && text.contains("control port is 10014")
                && text.contains("fix: list this server with its own port (e.g. 127.0.0.1:10014)"),
            "{text}"
        );
        // A list of other hosts only: this server is simply no replica.
        let (_, me) = replicas_of(10014, "192.0.2.1:10001").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(me, None);
    }

    #[test]
    fn active_config_is_read_only_and_rewritable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::default();
        let path = write_active_config(&server, dir.path()).expect("write");
        assert_eq!(path, dir.path().join(ACTIVE_CONFIG_NAME));
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o444
        );
        // A restart replaces the read-only file of the previous run.
        let mut changed = server.clone();
        changed.port = 4242;
        write_active_config(&changed, dir.path()).expect("rewrite");
        assert!(
            fs::read_to_string(&path)
                .expect("read")
                .contains("port: 4242")
        );
    }

    #[test]
    fn active_config_falls_back_to_the_temp_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("gone");
        let path = write_active_config(&Server::default(), &missing).expect("fallback");
        assert_eq!(path, std::env::temp_dir().join(ACTIVE_CONFIG_NAME));
    }

    #[test]
    fn explicit_config_path_wins() {
        assert_eq!(
            resolve(Some(Path::new("/x/y.yml"))),
            ConfigSource::File("/x/y.yml".into())
        );
    }
}
