//! How a client finds a pool's targets: GetAttachInfo (every joined engine's fabric URI and
//! context count) and a pool query (its UUID and ranks) from the management service, combined
//! into a [`crate::PoolMap`]. Used by `daos` and `daos_bench io`.

use daos_control::{Target, ms_client, status_text};
use daos_proto::mgmt::{
    GetAttachInfoReq, PoolQueryReq, PoolQueryTargetReq, PoolServiceState, pool_query_target_info,
    pool_rebuild_status,
};

use crate::{ClientError, PoolMap, RankUri};

/// Why a client could not get a pool's map.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The management service could not be reached or refused the call (its words).
    #[error("{0}")]
    Service(String),
    /// No such pool (DAOS: DER_NONEXIST).
    #[error("{0}")]
    NoPool(String),
    /// The pool exists but is not `Ready` (being created or destroyed).
    #[error("pool {pool} is {state}: I/O is refused until it is Ready (see dmg pool list)")]
    NotReady { pool: String, state: String },
    #[error("the management service gave pool {pool} a bad UUID {uuid:?}")]
    BadUuid { pool: String, uuid: String },
    #[error(
        "pool {pool}: {source} (ranks {ranks:?}; joined engines: {engines}); check `dmg system query`"
    )]
    Map {
        pool: String,
        ranks: Vec<u32>,
        engines: usize,
        source: Box<ClientError>,
    },
    #[error("cannot start the client runtime: {0}")]
    Runtime(std::io::Error),
    /// The pool's ACL or the credential check refused the connect (DER_NO_PERM).
    #[error("{0}")]
    Denied(String),
}

impl ConnectError {
    fn from_status(s: tonic::Status) -> ConnectError {
        if s.code() == tonic::Code::NotFound {
            ConnectError::NoPool(s.message().to_string())
        } else {
            ConnectError::Service(status_text(s))
        }
    }
}

/// The map of pool `pool` (label or UUID).
pub async fn pool_map(t: &Target, pool: &str) -> Result<PoolMap, ConnectError> {
    let mut c = ms_client(t).await.map_err(ConnectError::Service)?;
    let attach = c
        .get_attach_info(GetAttachInfoReq {
            all_ranks: true,
            ..Default::default()
        })
        .await
        .map_err(ConnectError::from_status)?
        .into_inner();
    let q = c
        .pool_query(PoolQueryReq {
            id: pool.into(),
            ..Default::default()
        })
        .await
        .map_err(ConnectError::from_status)?
        .into_inner();
    let state = PoolServiceState::try_from(q.state).unwrap_or(PoolServiceState::Unknown);
    // A degraded pool (ranks down) is still used: its replicas on the others serve.
    if !matches!(state, PoolServiceState::Ready | PoolServiceState::Degraded) {
        return Err(ConnectError::NotReady {
            pool: pool.into(),
            state: state.as_str_name().into(),
        });
    }
    // Every rank of the pool, also those down now: placement depends on the whole map, and
    // a replica on a rank that is down is skipped when read.
    let parse = |set: &str| {
        daos_control::hostlist::parse_ranks(set).map_err(|e| {
            ConnectError::Service(format!(
                "the management service gave pool {pool} a bad rank set {set:?}: {e}"
            ))
        })
    };
    let mut ranks = parse(&q.enabled_ranks)?;
    let down = parse(&q.disabled_ranks)?;
    ranks.extend(&down);
    ranks.sort_unstable();
    ranks.dedup();
    let uuid = crate::parse_uuid(&q.uuid).ok_or_else(|| ConnectError::BadUuid {
        pool: pool.into(),
        uuid: q.uuid.clone(),
    })?;
    let engines: Vec<RankUri> = attach
        .rank_uris
        .into_iter()
        .map(|r| RankUri {
            rank: r.rank,
            uri: r.uri,
            num_ctxs: r.num_ctxs,
        })
        .collect();
    // The target states of ranks with targets out, or of every rank while a rebuild runs
    // (reintegrated targets are up but not yet in).
    let busy = q
        .rebuild
        .as_ref()
        .is_some_and(|r| r.state == pool_rebuild_status::State::Busy as i32);
    let mut states = Vec::new();
    for &rank in if busy { &ranks } else { &down } {
        let infos = c
            .pool_query_target(PoolQueryTargetReq {
                id: pool.into(),
                rank,
                ..Default::default()
            })
            .await
            .map_err(ConnectError::from_status)?
            .into_inner()
            .infos;
        states.push((rank, infos.iter().map(|i| target_state(i.state)).collect()));
    }
    let version = u32::try_from(attach.data_version).unwrap_or(u32::MAX);
    PoolMap::new(uuid, &ranks, &engines)
        .map(|m| {
            m.with_version(version)
                .with_down(&down)
                .with_states(&states, q.version)
        })
        .map_err(|source| ConnectError::Map {
            pool: pool.into(),
            ranks: ranks.clone(),
            engines: engines.len(),
            source: Box::new(source),
        })
}

/// A target state as `PoolQueryTarget` carries it (DAOS's numbering) in the pool map's terms.
fn target_state(v: i32) -> daos_placement::TargetState {
    use daos_placement::TargetState as S;
    use pool_query_target_info::TargetState as W;
    match W::try_from(v).unwrap_or(W::StateUnknown) {
        W::DownOut => S::DownOut,
        W::Down => S::Down,
        W::Up => S::Up,
        W::UpIn => S::UpIn,
        W::New => S::New,
        W::Drain => S::Drain,
        W::StateUnknown => S::Unknown,
    }
}

/// A [`crate::Refresher`] for a session on pool `pool`: its current map, from the management
/// service (for blocking callers, outside any async runtime).
pub fn refresher(t: &Target, pool: &str) -> crate::Refresher {
    let (t, pool) = (t.clone(), pool.to_string());
    Box::new(move || pool_map_blocking(&t, &pool).map_err(|e| e.to_string()))
}

/// [`pool_map`] for blocking callers.
pub fn pool_map_blocking(t: &Target, pool: &str) -> Result<PoolMap, ConnectError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ConnectError::Runtime)?
        .block_on(pool_map(t, pool))
}

/// The pool's map with a pool handle: the caller's credential from daos_agent (its socket from
/// `DAOS_AGENT_DRPC_DIR` or DAOS's default), checked by the pool's service against the pool's
/// ACL for `flags` ([`crate::container::FLAG_RO`] or [`crate::container::FLAG_RW`]). Without
/// an agent socket, an admin tool's handle (see the code) or none.
pub fn connect_blocking(t: &Target, pool: &str, flags: u32) -> Result<PoolMap, ConnectError> {
    let socket = crate::agent::socket_path();
    let map = pool_map_blocking(t, pool)?;
    if !socket.exists() {
        // No agent: an admin tool (daos_control.yml's admin certificate, or an insecure
        // system) gets a pool handle without a credential; anyone else gets none and the
        // targets refuse its requests (DER_NO_HDL).
        let c = crate::container::Containers::new(t, pool)
            .map_err(|e| ConnectError::Service(e.to_string()))?;
        return Ok(match c.connect(Vec::new(), flags) {
            Ok(h) => map.with_handle(h.cookie),
            Err(_) => map,
        });
    }
    let mut agent = crate::agent::Agent::connect_at(&socket)
        .map_err(|e| ConnectError::Service(e.to_string()))?;
    let cred = agent
        .credential()
        .map_err(|e| ConnectError::Service(e.to_string()))?;
    let c = crate::container::Containers::new(t, pool)
        .map_err(|e| ConnectError::Service(e.to_string()))?;
    let h = c
        .connect(prost::Message::encode_to_vec(&cred), flags)
        .map_err(|e| match e {
            crate::container::ContError::NotFound(m) => ConnectError::NoPool(m),
            crate::container::ContError::NoPerm(m) => ConnectError::Denied(m),
            other => ConnectError::Service(other.to_string()),
        })?;
    // The agent tracks the handle for the process (evicted if it exits without closing).
    let _ = agent.notify_pool(true, &h.uuid, &format!("{:016x}", h.cookie));
    Ok(map.with_handle(h.cookie))
}

/// Where a client process sends its management-API calls: through daos_agent when its socket
/// is there (no certificate needed; `-l` hosts if given, else the agent's access points),
/// else as an admin tool with daos_control.yml (`-o`) and its certificate.
pub fn client_target(
    config_path: Option<&std::path::Path>,
    host_list: Option<&str>,
    insecure: bool,
) -> Result<Target, daos_control::exit::CmdError> {
    let socket = crate::agent::socket_path();
    if config_path.is_none() && socket.exists() {
        let hosts = match host_list {
            Some(l) => {
                daos_control::hostlist::expand(l, daos_config::DEFAULT_PORT).map_err(|e| {
                    daos_control::exit::CmdError::new(format!("-l/--host-list {l:?}: {e}"))
                })?
            }
            // The agent picks one of its access points.
            None => vec![daos_control::forward::AGENT_CHOOSES.to_string()],
        };
        return Ok(Target::via_agent(hosts, socket));
    }
    let control = daos_control::load_control(config_path)?;
    Target::new(&control, host_list, insecure)
}

/// Closes pool handle `handle` (from [`connect_blocking`]) and tells the agent; 0 does
/// nothing. Errors are reported, not fatal: the agent evicts what a process leaves behind.
pub fn disconnect_blocking(t: &Target, pool: &str, handle: u64) -> Result<(), String> {
    if handle == 0 {
        return Ok(());
    }
    let c = crate::container::Containers::new(t, pool).map_err(|e| e.to_string())?;
    c.disconnect(handle).map_err(|e| e.to_string())?;
    if let Ok(mut agent) = crate::agent::Agent::connect_at(&crate::agent::socket_path()) {
        // The agent matches the handle; the pool is named as the caller knows it.
        let _ = agent.notify_pool(false, pool, &format!("{handle:016x}"));
    }
    Ok(())
}

/// `map` with a handle of container `cont` opened under its pool handle (nothing to do
/// without one): sessions on it may then read (`FLAG_RO`) or also change (`FLAG_RW`) the
/// container's data.
pub fn open_container_blocking(
    t: &Target,
    pool: &str,
    map: PoolMap,
    cont: [u8; 16],
    flags: u32,
) -> Result<PoolMap, String> {
    if map.handle == 0 {
        return Ok(map);
    }
    let c = crate::container::Containers::new(t, pool).map_err(|e| e.to_string())?;
    let h = c
        .open(map.handle, &crate::uuid_text(&cont), flags)
        .map_err(|e| e.to_string())?;
    if h.cookie == 0 {
        // The pool handle reaches every container (an admin tool's, a daos_server's).
        return Ok(map);
    }
    Ok(map.with_cont_handle(cont, h.cookie))
}

/// [`connect_blocking`], then [`open_container_blocking`].
pub fn connect_cont_blocking(
    t: &Target,
    pool: &str,
    cont: [u8; 16],
    flags: u32,
) -> Result<PoolMap, String> {
    let map = connect_blocking(t, pool, flags).map_err(|e| e.to_string())?;
    open_container_blocking(t, pool, map, cont, flags)
}
