//! `daos_engine`, the data plane of daos-rs.
//!
//! Start-up (DAOS_FACTS §4.5): place the shards on cores ([`coremap`]), start them pinned
//! ([`shard`]), serve dRPC on `<socket_dir>/daos_engine_<pid>.sock` ([`control`]), send
//! NotifyReady (301) to daos_server, wait for SetRank (202) and SetUp (209), print
//! `DAOS I/O Engine (v..) process .. started on rank ..`, and run until SIGINT/SIGTERM.
//! Each target shard serves clients over the fabric ([`target`], protocol in `daos-wire`)
//! from its own store per pool ([`store`] on the pool's SCM file and bdev region, [`pool`]).

pub mod args;
pub mod bdev;
pub mod context;
pub mod control;
pub mod coremap;
pub mod handles;
pub mod log;
pub mod moves;
pub mod pool;
pub mod shard;
pub mod srv;
pub mod store;
pub mod swim;
pub mod target;
/// The client <-> target protocol (its own crate, shared with the client).
pub use daos_wire as wire;
mod uring;

use std::net::IpAddr;
use std::path::PathBuf;

use daos_drpc::SrvMethod;
use daos_drpc::srv::NotifyReadyReq;
use prost::Message;

use crate::args::EngineArgs;
use crate::control::Control;

/// Version printed in the start-up banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Prints a line to stdout (which daos_server logs) without ever panicking: when daos_server
/// is gone the pipe is closed, and the engine must still stop cleanly.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Why the engine could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read the CPU topology: {0}")]
    Topology(#[from] daos_hw::HwError),
    #[error("NUMA node {0} not found on this host")]
    NoSuchNode(u32),
    #[error(transparent)]
    CoreMap(#[from] coremap::CoreMapError),
    #[error(transparent)]
    Shard(#[from] shard::ShardError),
    #[error("engine dRPC server: {0}")]
    Drpc(#[from] daos_drpc::server::ServerError),
    #[error("cannot reach daos_server at {}: {source}; is daos_server running with the same socket_dir?", .path.display())]
    Server {
        path: PathBuf,
        source: daos_drpc::DrpcError,
    },
    #[error("fabric interface {0:?} not found or without an IPv4/IPv6 address (D_INTERFACE)")]
    Interface(String),
    #[error("{0}")]
    HostAddr(String),
    #[error("SWIM: {0}; fix the variable in the engine's env_vars or unset it")]
    Swim(String),
    #[error(
        "no fabric port (D_PORT): set fabric_iface_port in the engine's section of daos_server.yml (e.g. 31416); context 0 (DAOS's clients' tag 0) listens on it, target t on it + 2 + t"
    )]
    NoPort,
    #[error("signal handling: {0}")]
    Signals(nix::Error),
    #[error("pool storage: {0}")]
    Pool(#[from] pool::PoolError),
}

/// The engine's fabric address, from the environment daos_server computed (`D_PROVIDER`,
/// `D_INTERFACE`, `D_PORT`), as DAOS prints it: `ofi+tcp;ofi_rxm://127.0.0.1:31416`.
pub fn fabric_uri(env: &dyn Fn(&str) -> Option<String>) -> Result<String, EngineError> {
    let provider = env("D_PROVIDER").unwrap_or_else(|| "ofi+tcp;ofi_rxm".into());
    let iface = env("D_INTERFACE").unwrap_or_else(|| "lo".into());
    let port = env("D_PORT").unwrap_or_else(|| "0".into());
    let addr = fabric_address(env, &iface)?;
    let host = match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    Ok(format!("{provider}://{host}:{port}"))
}

/// Where target endpoints bind: the provider, the interface's address and the base port from
/// the environment daos_server computed. Target `t` listens on base port + 2 + `t` (DAOS's tag
/// `t + 2`).
pub fn target_endpoint(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<target::Endpoint, EngineError> {
    let provider = env("D_PROVIDER").unwrap_or_else(|| "ofi+tcp;ofi_rxm".into());
    let iface = env("D_INTERFACE").unwrap_or_else(|| "lo".into());
    let addr = fabric_address(env, &iface)?;
    let port: u16 = env("D_PORT").and_then(|p| p.parse().ok()).unwrap_or(0);
    if port == 0 {
        return Err(EngineError::NoPort);
    }
    Ok(target::Endpoint {
        provider: target::libfabric_provider(&provider),
        node: addr.to_string(),
        port,
    })
}

/// The address the fabric endpoints bind: the host address daos_server passed
/// ([`daos_hw::net::HOST_ADDR_ENV`], several hosts on one machine), else the interface's.
fn fabric_address(
    env: &dyn Fn(&str) -> Option<String>,
    iface: &str,
) -> Result<IpAddr, EngineError> {
    if let Some(ip) = daos_hw::net::parse_host_addr(env(daos_hw::net::HOST_ADDR_ENV).as_deref())
        .map_err(EngineError::HostAddr)?
    {
        return Ok(ip);
    }
    interface_address(iface).ok_or_else(|| EngineError::Interface(iface.to_string()))
}

/// First IPv4 (else IPv6) address of a network interface.
pub fn interface_address(iface: &str) -> Option<IpAddr> {
    let addrs: Vec<_> = nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == iface)
        .collect();
    let v4 = addrs.iter().find_map(|a| {
        a.address
            .as_ref()?
            .as_sockaddr_in()
            .map(|s| IpAddr::V4(s.ip()))
    });
    v4.or_else(|| {
        addrs.iter().find_map(|a| {
            a.address
                .as_ref()?
                .as_sockaddr_in6()
                .map(|s| IpAddr::V6(s.ip()))
        })
    })
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Blocks SIGINT/SIGTERM in the calling thread and every thread it starts later; call first in
/// `main`, so that [`run`]'s signal thread is the one that receives them.
pub fn block_signals() -> Result<(), EngineError> {
    signal_set().thread_block().map_err(EngineError::Signals)
}

fn signal_set() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

/// Runs the engine until it is told to stop.
pub fn run(args: &EngineArgs) -> Result<(), EngineError> {
    let pid = std::process::id();
    // An engine must not outlive the daos_server that supervises it: if that process dies
    // (even by SIGKILL), the kernel sends this engine SIGTERM and it stops cleanly.
    let parent = nix::unistd::getppid();
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).is_ok()
        && nix::unistd::getppid() != parent
    {
        // The parent died before the death signal was armed.
        return Ok(());
    }
    if let Err(e) = log::init_from_env() {
        eprintln!("ERROR: {e}");
    }
    let topo = daos_hw::CpuTopology::read(&daos_hw::SysRoot::default())?;
    let cores = match args.pinned_numa_node {
        Some(n) => topo
            .numa_nodes
            .iter()
            .find(|node| node.id == n)
            .map(|node| node.cpus.clone())
            .ok_or(EngineError::NoSuchNode(n))?,
        None => topo.online.clone(),
    };
    let request = coremap::Request {
        targets: args.target_count(),
        helpers: args.xshelpernr,
        first_core: args.firstcore.unwrap_or(0),
        numa_node: args.pinned_numa_node,
        oversubscribe: std::env::var("DAOS_TARGET_OVERSUBSCRIBE").is_ok_and(|v| v == "1"),
    };
    let map = coremap::place(&request, &cores)?;
    say!("{}", map.algorithm);
    if let Some(n) = args.pinned_numa_node {
        say!("Using NUMA node: {n}");
    }
    for w in &map.warnings {
        say!("WARNING: {w}");
    }
    let pools = std::sync::Arc::new(pool::PoolStore::open(
        &args.storage,
        map.targets,
        args.nvme.as_deref(),
    )?);
    say!("{} pool(s) on this engine", pools.list().len());
    let env = |k: &str| std::env::var(k).ok();
    let uri = fabric_uri(&env)?;
    let endpoint = target_endpoint(&env)?;
    let mut shards = Vec::with_capacity(map.shards.len());
    for (i, p) in map.shards.iter().enumerate() {
        let shard = match p.role {
            coremap::Role::Target(t) => shard::spawn_target(
                i,
                *p,
                shard::TargetRole {
                    index: t,
                    pools: pools.clone(),
                    endpoint: target::Endpoint {
                        port: target::target_port(endpoint.port, t),
                        ..endpoint.clone()
                    },
                },
            ),
            coremap::Role::System => shard::spawn_system(
                i,
                *p,
                context::ContextConfig {
                    provider: endpoint.provider.clone(),
                    uri_provider: uri.split_once("://").map_or("", |(p, _)| p).to_string(),
                    host: endpoint.node.clone(),
                    port: endpoint.port,
                    group: args.group.clone(),
                    targets: map.targets,
                    server_sock: Some(args.socket_dir.join("daos_server.sock")),
                    pools: Some(context::HandlePools(pools.clone())),
                },
            ),
            _ => shard::spawn(i, *p),
        };
        match shard {
            Ok(s) => shards.push(s),
            Err(e) => {
                for s in shards.into_iter().rev() {
                    s.stop();
                }
                return Err(e.into());
            }
        }
    }
    // Every target learns how to reach the others (DAOS's collective RPCs span them).
    let links: Vec<shard::PeerLink> = map
        .shards
        .iter()
        .zip(&shards)
        .filter_map(|(p, s)| match p.role {
            coremap::Role::Target(t) => Some(s.link(t)),
            _ => None,
        })
        .collect();
    let links = std::sync::Arc::new(links);
    for (p, s) in map.shards.iter().zip(&shards) {
        if matches!(p.role, coremap::Role::Target(_))
            && s.send(shard::Command::Peers(links.clone())).is_err()
        {
            say!("WARNING: shard {}: cannot hand it its peers", s.index);
        }
    }
    let ctl = Control::new(shards);

    let signals = {
        let ctl = ctl.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Ok(sig) = signal_set().wait() {
                    say!("daos_engine: received {}; stopping", sig.as_str());
                }
                ctl.request_stop();
            })
    };
    if let Err(e) = signals {
        say!("WARNING: no signal thread ({e}); stop the engine with SIGKILL");
    }

    let sock = args.socket_dir.join(format!("daos_engine_{pid}.sock"));
    let server = daos_drpc::serve(&sock, Control::registry(&ctl, &pools))?;
    let incarnation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(u64::from(pid));
    let notify = NotifyReadyReq {
        uri: uri.clone(),
        nctxs: 1 + map.targets,
        drpc_listener_sock: sock.display().to_string(),
        instance_idx: args.instance_idx,
        ntgts: map.targets,
        incarnation,
        ..Default::default()
    };
    let server_sock = args.socket_dir.join("daos_server.sock");
    let notified = daos_drpc::Client::connect(&server_sock)
        .and_then(|mut c| c.call(SrvMethod::NotifyReady, &notify.encode_to_vec()));
    if let Err(source) = notified {
        server.stop();
        ctl.stop_shards();
        return Err(EngineError::Server {
            path: server_sock,
            source,
        });
    }

    // SWIM among the engines, on this engine's own address (context 0: the base port).
    let swim_config = swim::SwimConfig::from_env(&env).map_err(EngineError::Swim)?;
    let swim_addr = std::net::SocketAddr::new(
        endpoint
            .node
            .parse()
            .map_err(|_| EngineError::Interface(endpoint.node.clone()))?,
        endpoint.port,
    );
    {
        let ctl = ctl.clone();
        let server_sock = server_sock.clone();
        let spawned = std::thread::Builder::new()
            .name("swim".into())
            .spawn(move || {
                let mut sequence = 0u64;
                let run = swim::run(ctl, swim_addr, incarnation, swim_config, |d| {
                    sequence += 1;
                    report_dead(&server_sock, sequence, d);
                });
                if let Err(e) = run {
                    say!("WARNING: SWIM stopped: {e}; this engine does not detect dead peers");
                }
            });
        if let Err(e) = spawned {
            say!("WARNING: no SWIM thread ({e}); this engine does not detect dead peers");
        }
    }

    if let Some(rank) = ctl.wait_set_up() {
        let first_core = map.shards.first().map(|p| p.core).unwrap_or(0);
        say!(
            "DAOS I/O Engine (v{VERSION}) process {pid} started on rank {rank} with {} target, {} helper XS, firstcore {first_core}, host {}.",
            map.targets,
            map.helpers,
            hostname()
        );
        ctl.wait_stop();
    }
    server.stop();
    let prepared = ctl.prepared();
    ctl.stop_shards();
    say!(
        "daos_engine: stopped{}",
        if prepared {
            " (after PrepShutdown)"
        } else {
            ""
        }
    );
    Ok(())
}

/// Sends DAOS's RAS event `swim_rank_dead` for `d` to daos_server (dRPC ClusterEvent).
fn report_dead(server_sock: &std::path::Path, sequence: u64, d: &swim::SwimId) {
    use daos_drpc::shared::{ClusterEventReq, RasEvent};
    let event = RasEvent {
        id: 17,
        msg: "SWIM marked rank as dead.".into(),
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_secs().to_string())
            .unwrap_or_default(),
        r#type: 1,
        severity: 3,
        hostname: hostname(),
        rank: d.rank,
        incarnation: d.incarnation,
        ..Default::default()
    };
    let req = ClusterEventReq {
        sequence,
        event: Some(event),
    };
    let sent = daos_drpc::Client::connect(server_sock)
        .and_then(|mut c| c.call(SrvMethod::ClusterEvent, &req.encode_to_vec()));
    if let Err(e) = sent {
        say!(
            "WARNING: cannot report rank {} dead to daos_server: {e}",
            d.rank
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn endpoints_bind_the_host_address_when_one_is_set() {
        let env = env_of(&[
            ("D_INTERFACE", "lo"),
            ("D_PORT", "31416"),
            ("DAOS_RS_HOST_ADDR", "127.0.0.3"),
        ]);
        assert_eq!(
            fabric_uri(&env).unwrap(),
            "ofi+tcp;ofi_rxm://127.0.0.3:31416"
        );
        let e = target_endpoint(&env).unwrap();
        assert_eq!((e.node.as_str(), e.port), ("127.0.0.3", 31416));
        let env = env_of(&[("D_INTERFACE", "lo"), ("D_PORT", "31416")]);
        assert_eq!(target_endpoint(&env).unwrap().node, "127.0.0.1");
        let env = env_of(&[("D_PORT", "31416"), ("DAOS_RS_HOST_ADDR", "host2")]);
        let e = fabric_uri(&env).unwrap_err().to_string();
        assert!(e.contains("DAOS_RS_HOST_ADDR=\"host2\""), "{e}");
    }
}
