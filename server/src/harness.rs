//! The engine harness: one supervisor thread per `engines:` entry.
//!
//! A supervisor waits until its engine's storage is formatted, launches `daos_engine` with the
//! arguments and environment the config maps to, forwards its output to the control log
//! prefixed `daos_engine:<N>`, and when the engine exits reports `exited with status` and starts
//! it again with back-off (1 s doubling to 30 s; reset after a minute of healthy running),
//! unless daos_server is stopping. Bring-up follows DAOS (§4.5): the engine's NotifyReady
//! arrives over dRPC, is answered at once, and a join thread asks the management service for a
//! rank, records it in the superblock, then sends SetRank and SetUp to the engine.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use daos_config::Server;
use daos_drpc::mgmt::{DaosResp, PingRankReq, PoolDestroyReq, PrepShutdownReq, SetRankReq};
use daos_drpc::srv::NotifyReadyReq;
use daos_drpc::{Client, DrpcError, HandlerError, MgmtMethod, Registry, SrvMethod};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use prost::Message;
use tracing::{debug, error, info, warn};

use crate::membership::{JoinRequest, ManagementService, MemberState, PoolState};
use crate::storage::{self, FormatResult, StorageError};

/// The rebuild's default pace, MB/s (`DAOS_RS_REBUILD_MBPS`): a quarter of a PCIe 3 NVMe
/// drive's write bandwidth, so foreground I/O keeps most of a device.
pub const REBUILD_MBPS: u64 = 512;

/// Longest wait between restarts of a failing engine.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long an engine must run for its back-off to reset.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long a stopping engine gets before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct InstanceState {
    formatted: bool,
    pid: Option<i32>,
    drpc_sock: Option<PathBuf>,
    /// Last known rank (from the superblock or the latest join).
    rank: Option<u32>,
    joined: bool,
    /// A join is under way: the management service may already show the rank `Joined`
    /// (with this engine's new incarnation) before `joined` is set, after SetRank/SetUp.
    joining: bool,
    /// Held stopped by the admin (`dmg system stop`): not restarted until started again.
    held: bool,
    /// daos_server is shutting down: the supervisor exits.
    stop: bool,
    /// The running engine stopped answering dRPC (stopped or hung): calls to it fail at
    /// once and its rank shows `Unresponsive` until it answers again.
    unresponsive: bool,
    /// The running engine's incarnation (from its NotifyReady).
    incarnation: u64,
    /// How the last engine exited, if one did.
    last_exit: Option<String>,
    /// The engine was stopped because its rank is excluded (it restarts to rejoin): its
    /// exit keeps the rank `Excluded` rather than `Errored`.
    rejoining: bool,
}

/// The outcome of an admin operation on one rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankOutcome {
    pub rank: u32,
    pub ok: bool,
    pub msg: String,
    pub state: MemberState,
}

impl RankOutcome {
    /// `done` when the operation succeeded; else `Errored` with why (`failure`).
    fn of(rank: u32, ok: bool, done: MemberState, failure: impl FnOnce() -> String) -> Self {
        RankOutcome {
            rank,
            ok,
            msg: if ok { String::new() } else { failure() },
            state: if ok { done } else { MemberState::Errored },
        }
    }
}

/// One engine of this daos_server.
pub struct Instance {
    pub index: usize,
    state: Mutex<InstanceState>,
    changed: Condvar,
}

impl Instance {
    fn lock(&self) -> std::sync::MutexGuard<'_, InstanceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut InstanceState)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// The engine's rank once it has joined.
    pub fn rank(&self) -> Option<u32> {
        let s = self.lock();
        s.joined.then_some(s.rank).flatten()
    }

    /// The running engine's pid.
    pub fn pid(&self) -> Option<i32> {
        self.lock().pid
    }

    /// The last rank this engine had, joined or not.
    pub fn known_rank(&self) -> Option<u32> {
        self.lock().rank
    }

    /// Waits until `cond` holds or `timeout` passes.
    fn wait_for(&self, timeout: Duration, cond: impl Fn(&InstanceState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while !cond(&s) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }
}

/// Every engine of this daos_server and the services they use.
pub struct Harness {
    config: Server,
    instances: Vec<Arc<Instance>>,
    ms: Arc<dyn ManagementService>,
    /// Calls to ranks of other hosts.
    remote: Arc<crate::remote::Remote>,
    engine_bin: PathBuf,
    control_addr: String,
    stopping: AtomicBool,
    /// Every engine's storage was checked at start (its rank, if any, is known).
    checked: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Pools a previous daos_server left `Creating` or `Destroying` (it died midway): they
    /// are destroyed once their ranks have joined.
    orphans: Mutex<Vec<String>>,
    /// Shards of given-up creates still to destroy, as (rank, pool UUID): their rank did not
    /// answer; retried when it does.
    undo: Mutex<Vec<(u32, String)>>,
    /// Pools this server is creating or destroying now (never orphans).
    busy: Arc<Mutex<Vec<String>>>,
}

/// A pool this server is creating or destroying, until dropped ([`Harness::pool_busy`]).
pub struct PoolBusy {
    busy: Arc<Mutex<Vec<String>>>,
    uuid: String,
}

impl Drop for PoolBusy {
    fn drop(&mut self) {
        let mut b = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = b.iter().position(|u| *u == self.uuid) {
            b.swap_remove(i);
        }
    }
}

/// Why a dRPC call to a rank's engine did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineCallError {
    #[error("rank {rank} is not an engine of this server")]
    NotHere { rank: u32 },
    #[error("rank {rank} is not running")]
    NotRunning { rank: u32 },
    #[error(
        "rank {rank} is unresponsive: its engine does not answer (stopped or hung?); see dmg system query"
    )]
    Unresponsive { rank: u32 },
    #[error("rank {rank}: {source}")]
    Drpc {
        rank: u32,
        source: daos_drpc::DrpcError,
    },
    #[error("rank {rank} (daos_server at {addr}): {message}")]
    Remote {
        rank: u32,
        addr: String,
        message: String,
    },
    #[error("rank {rank} is not a member of the system")]
    NotMember { rank: u32 },
}

/// How often the management service leader pushes a changed group map.
const GROUP_UPDATE_PERIOD: Duration = Duration::from_millis(500);

/// How often a leader tries again to roll back half-made pools.
const ORPHAN_RETRY: Duration = Duration::from_secs(5);

/// How often a server looks for shards of its engines that no pool names.
const RECLAIM_PERIOD: Duration = Duration::from_secs(10);

/// How old a shard no pool names must be before it is removed.
const SHARD_GRACE: Duration = Duration::from_secs(30);
/// How often daos_server checks that its running engines answer.
const HEALTH_PERIOD: Duration = Duration::from_secs(1);
/// How often daos_server checks, while an engine of its is not running joined, that the
/// management service does not show that engine's rank `Joined`.
const MEMBER_CHECK_PERIOD: Duration = Duration::from_secs(2);
/// How long an engine has to answer a health ping.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a pool operation on an engine may take before it is given up.
pub const POOL_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `daos_engine` is: next to this binary, else on PATH.
pub fn engine_binary() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join("daos_engine");
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("daos_engine"))
        .find(|p| p.is_file())
}

fn der_status(body: &[u8]) -> Result<i32, String> {
    DaosResp::decode(body)
        .map(|r| r.status)
        .map_err(|e| e.to_string())
}

impl Harness {
    pub fn new(
        config: Server,
        ms: Arc<dyn ManagementService>,
        remote: crate::remote::Remote,
        engine_bin: PathBuf,
    ) -> Arc<Harness> {
        let instances = (0..config.engines.len())
            .map(|index| {
                Arc::new(Instance {
                    index,
                    state: Mutex::new(InstanceState::default()),
                    changed: Condvar::new(),
                })
            })
            .collect();
        let control_addr = match daos_hw::net::host_addr().ok().flatten() {
            Some(ip) => std::net::SocketAddr::from((ip, config.port)).to_string(),
            None => format!("{}:{}", crate::logging::hostname(), config.port),
        };
        Arc::new(Harness {
            orphans: Mutex::new(Vec::new()),
            undo: Mutex::new(Vec::new()),
            busy: Arc::new(Mutex::new(Vec::new())),
            config,
            instances,
            ms,
            remote: Arc::new(remote),
            engine_bin,
            control_addr,
            stopping: AtomicBool::new(false),
            checked: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// Pools left `Creating` or `Destroying` by a management service leader that stopped
    /// midway (no create or destroy runs yet): marked for rollback. The leader does this, at
    /// its start and whenever it becomes the leader (the one that stopped midway is another
    /// server, maybe gone for good); another server leaves them to it.
    fn find_orphans(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ms.is_leader() {
            if Instant::now() >= deadline {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.scan_orphans();
        self.roll_back_orphans();
    }

    /// Marks pool `uuid` as being created or destroyed by this server while the guard lives:
    /// such a pool is never taken for one a previous leader left half-made.
    pub fn pool_busy(&self, uuid: &str) -> PoolBusy {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(uuid.to_string());
        PoolBusy {
            busy: self.busy.clone(),
            uuid: uuid.to_string(),
        }
    }

    fn is_busy(&self, uuid: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|u| u == uuid)
    }

    /// [`Self::find_orphans`] now, as the leader: pools `Creating` or `Destroying` that this
    /// server is not working on.
    fn scan_orphans(&self) {
        let mut orphans = self.orphans.lock().unwrap_or_else(|p| p.into_inner());
        for p in self.ms.pools() {
            if p.state == PoolState::Ready || orphans.contains(&p.uuid) || self.is_busy(&p.uuid) {
                continue;
            }
            warn!(
                "pool {} ({}) was left {} by a daos_server that stopped midway; it is rolled back once its ranks join",
                p.label,
                p.uuid,
                p.state.name()
            );
            orphans.push(p.uuid.clone());
            if p.state == PoolState::Creating {
                // Only the state, and only if still Creating (a create that finished
                // meanwhile stays Ready).
                let cmd = daos_mgmt::state::Command::PoolSetState {
                    uuid: p.uuid.clone(),
                    state: PoolState::Destroying,
                    from: Some(PoolState::Creating),
                };
                if let Err(e) = self.ms.apply(cmd) {
                    error!("cannot mark the pool for rollback: {e}");
                }
            }
        }
    }

    /// Engine 0's storage is there: the management service replica (whose log lives on it)
    /// can start, then half-made pools are found.
    fn storage_ready(self: &Arc<Self>) {
        self.ms.storage_ready();
        let h = self.clone();
        if let Err(e) = thread::Builder::new()
            .name("orphans".into())
            .spawn(move || h.find_orphans())
        {
            error!("cannot look for half-made pools: {e}");
        }
    }

    pub fn instances(&self) -> &[Arc<Instance>] {
        &self.instances
    }

    /// Whether the harness is shutting down (background loops end).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn ms(&self) -> &Arc<dyn ManagementService> {
        &self.ms
    }

    /// How client credentials are checked: against `transport_config.client_cert_dir`, or
    /// (insecure) by their digest.
    pub fn verify_mode(&self) -> daos_auth::Verify {
        let t = &self.config.transport_config;
        if t.allow_insecure {
            daos_auth::Verify::Digest
        } else {
            daos_auth::Verify::CertDir(t.client_cert_dir.clone())
        }
    }

    /// The dRPC methods daos_server serves to its engines.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut r = Registry::new();
        r.module(daos_drpc::Module::Sec)
            .module(daos_drpc::Module::Mgmt);
        let h = self.clone();
        r.method(SrvMethod::NotifyReady, move |_, body| {
            let req = NotifyReadyReq::decode(body)?;
            h.notify_ready(req)
                .map(|()| Vec::new())
                .map_err(HandlerError::Failure)
        });
        let how = self.verify_mode();
        r.method(daos_drpc::SecMethod::ValidateCreds, move |_, body| {
            use daos_proto::auth::{ValidateCredReq, ValidateCredResp};
            let req = ValidateCredReq::decode(body)?;
            let resp = match req
                .cred
                .as_ref()
                .map(|c| daos_auth::cred::validate(c, &how))
            {
                Some(Ok((token, _))) => ValidateCredResp {
                    status: 0,
                    token: Some(token),
                },
                Some(Err(e)) => {
                    tracing::warn!("credential refused: {e}");
                    ValidateCredResp {
                        status: e.der(),
                        token: None,
                    }
                }
                None => ValidateCredResp {
                    status: daos_auth::DER_INVAL,
                    token: None,
                },
            };
            Ok(resp.encode_to_vec())
        });
        let h = self.clone();
        r.method(SrvMethod::GetPoolSvc, move |_, body| {
            use daos_drpc::srv::{GetPoolSvcReq, GetPoolSvcResp};
            let req = GetPoolSvcReq::decode(body)?;
            let resp = match h.ms().pool_find(&req.uuid).filter(|p| p.uuid == req.uuid) {
                Some(p) => GetPoolSvcResp {
                    status: 0,
                    svcreps: p.svc_ranks,
                },
                None => GetPoolSvcResp {
                    status: daos_wire::der::NONEXIST,
                    svcreps: Vec::new(),
                },
            };
            Ok(resp.encode_to_vec())
        });
        let h = self.clone();
        r.method(SrvMethod::PoolFindByLabel, move |_, body| {
            use daos_drpc::srv::{PoolFindByLabelReq, PoolFindByLabelResp};
            let req = PoolFindByLabelReq::decode(body)?;
            let found = h
                .ms()
                .pool_find(&req.label)
                .filter(|p| p.label == req.label);
            let resp = match found {
                Some(p) => PoolFindByLabelResp {
                    status: 0,
                    uuid: p.uuid,
                    svcreps: p.svc_ranks,
                },
                None => PoolFindByLabelResp {
                    status: daos_wire::der::NONEXIST,
                    ..Default::default()
                },
            };
            Ok(resp.encode_to_vec())
        });
        let h = self.clone();
        r.method(SrvMethod::PoolCall, move |_, body| {
            let req = daos_drpc::srv::PoolCallReq::decode(body)?;
            Ok(crate::daos_clients::pool_call(&h, &req).encode_to_vec())
        });
        let h = self.clone();
        r.method(SrvMethod::ContCall, move |_, body| {
            let req = daos_drpc::srv::ContCallReq::decode(body)?;
            Ok(crate::daos_clients::cont_call(&h, &req).encode_to_vec())
        });
        let h = self.clone();
        r.method(SrvMethod::ClusterEvent, move |_, body| {
            let req = daos_drpc::shared::ClusterEventReq::decode(body)?;
            let status = match &req.event {
                Some(e) => h.cluster_event(e),
                None => daos_wire::der::INVAL,
            };
            Ok(daos_drpc::shared::ClusterEventResp {
                sequence: req.sequence,
                status,
            }
            .encode_to_vec())
        });
        r
    }

    /// A RAS event from an engine (here, or forwarded by another daos_server): DAOS's
    /// `swim_rank_dead` (17) excludes the rank from the system if the event names its current
    /// incarnation (a stale one is ignored); others are logged. Returns a DER code.
    pub fn cluster_event(&self, e: &daos_drpc::shared::RasEvent) -> i32 {
        const SWIM_RANK_DEAD: u32 = 17;
        if e.id != SWIM_RANK_DEAD {
            warn!(
                "RAS event {} from {} rank {}: {}",
                e.id, e.hostname, e.rank, e.msg
            );
            return daos_wire::der::SUCCESS;
        }
        let Some(m) = self.ms.members().into_iter().find(|m| m.rank == e.rank) else {
            return daos_wire::der::NONEXIST;
        };
        if m.incarnation != e.incarnation {
            info!(
                "swim_rank_dead for rank {} incarnation {} ignored: the member is at incarnation {}",
                e.rank, e.incarnation, m.incarnation
            );
            return daos_wire::der::SUCCESS;
        }
        if !matches!(m.state, MemberState::Joined | MemberState::Unresponsive) {
            return daos_wire::der::SUCCESS;
        }
        match self.ms.set_state(e.rank, MemberState::Excluded, &e.msg) {
            Ok(()) => {
                warn!(
                    "rank {} excluded: {} (reported by {})",
                    e.rank, e.msg, e.hostname
                );
                daos_wire::der::SUCCESS
            }
            Err(err) => {
                warn!("cannot exclude rank {} after swim_rank_dead: {err}", e.rank);
                daos_wire::der::TIMEDOUT
            }
        }
    }

    /// How long a rank stays excluded before pools exclude its targets (DAOS's
    /// `CRT_EVENT_DELAY`, seconds, from the engines' env_vars or this process; default 10).
    pub fn event_delay(&self) -> Duration {
        let from_engines = self.config.engines.iter().find_map(|e| {
            e.env_vars
                .iter()
                .find_map(|kv| kv.strip_prefix("CRT_EVENT_DELAY=").map(str::to_string))
        });
        from_engines
            .or_else(|| std::env::var("CRT_EVENT_DELAY").ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_secs)
    }

    /// The containers of `pool` (their UUIDs), from its pool service.
    pub fn containers(
        &self,
        pool: &crate::membership::PoolRecord,
    ) -> Result<Vec<[u8; 16]>, String> {
        self.remote.containers(&pool.svc_hosts, &pool.uuid)
    }

    /// The rebuild's pace in bytes a second: `DAOS_RS_REBUILD_MBPS` (MB/s; 0: no limit) from
    /// the engines' env_vars or this process, default [`REBUILD_MBPS`].
    pub fn rebuild_rate(&self) -> u64 {
        let name = "DAOS_RS_REBUILD_MBPS=";
        let from_engines = self.config.engines.iter().find_map(|e| {
            e.env_vars
                .iter()
                .find_map(|kv| kv.strip_prefix(name).map(str::to_string))
        });
        let mbps = from_engines
            .or_else(|| std::env::var("DAOS_RS_REBUILD_MBPS").ok())
            .map_or(REBUILD_MBPS, |v| match v.trim().parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    warn!(
                        "DAOS_RS_REBUILD_MBPS={v:?} is not a number of MB/s; using {REBUILD_MBPS}"
                    );
                    REBUILD_MBPS
                }
            });
        mbps.saturating_mul(1_000_000)
    }

    /// Destroys the shard a given-up create may have left on `rank` (the engine refuses the
    /// create if it comes later); queued for when the rank answers again if it does not now.
    pub fn undo_create(&self, rank: u32, uuid: &str) {
        let body = PoolDestroyReq {
            uuid: uuid.into(),
            force: true,
        }
        .encode_to_vec();
        match self.engine_call(rank, MgmtMethod::PoolDestroy, &body) {
            Ok(_) => {}
            Err(e) => {
                warn!(
                    "pool {uuid}: cannot undo its create on rank {rank} yet ({e}); retried when the rank answers"
                );
                self.undo
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((rank, uuid.into()));
            }
        }
    }

    /// Pings every running, joined engine each [`HEALTH_PERIOD`]: one that does not answer
    /// within [`HEALTH_TIMEOUT`] is `Unresponsive` until it does again (then `Joined`, and
    /// the creates given up on it are undone).
    fn monitor(&self) {
        let mut last_check = Instant::now();
        while !self.stopping.load(Ordering::Acquire) {
            if last_check.elapsed() >= MEMBER_CHECK_PERIOD {
                last_check = Instant::now();
                self.check_members();
            }
            for inst in &self.instances {
                let (sock, rank, unresponsive) = {
                    let s = inst.lock();
                    match (&s.drpc_sock, s.rank, s.joined) {
                        (Some(p), Some(r), true) if s.pid.is_some() => {
                            (p.clone(), r, s.unresponsive)
                        }
                        _ => continue,
                    }
                };
                let body = PingRankReq { rank }.encode_to_vec();
                // Bounded connect too: a stopped engine's backlog fills with our pings.
                let answered = Client::connect_within(&sock, HEALTH_TIMEOUT)
                    .and_then(|mut c| c.call(MgmtMethod::PingRank, &body))
                    .is_ok();
                if answered && !unresponsive {
                    self.reassert(rank);
                }
                if answered != unresponsive {
                    continue;
                }
                inst.update(|s| s.unresponsive = !answered);
                let (state, info) = if answered {
                    info!("rank {rank} answers again");
                    (MemberState::Joined, "")
                } else {
                    warn!("rank {rank} does not answer within {HEALTH_TIMEOUT:?}: Unresponsive");
                    (
                        MemberState::Unresponsive,
                        "the engine does not answer (stopped or hung?)",
                    )
                };
                if let Err(e) = self.ms.set_state(rank, state, info) {
                    warn!("rank {rank}: {e}");
                }
                if answered {
                    let pending: Vec<String> = {
                        let mut undo = self.undo.lock().unwrap_or_else(|p| p.into_inner());
                        let (mine, rest) = std::mem::take(&mut *undo)
                            .into_iter()
                            .partition(|(r, _)| *r == rank);
                        *undo = rest;
                        mine.into_iter().map(|(_, u)| u).collect()
                    };
                    for uuid in pending {
                        self.undo_create(rank, &uuid);
                        info!("pool {uuid}: given-up create undone on rank {rank}");
                    }
                }
            }
            thread::sleep(HEALTH_PERIOD);
        }
    }

    /// This host's members that the management service shows `Joined` (or `Unresponsive`)
    /// while no engine of this daos_server runs joined as that rank (a restarted daos_server
    /// whose engines have not joined again, a whole system restarted after a power loss, an
    /// engine that cannot start) get the state their engine is in: `Starting`, `AwaitFormat`,
    /// `Stopped` or `Errored`. Each change is for the incarnation the service holds: an engine
    /// that joins meanwhile is not overwritten. Nothing is read while every engine runs joined.
    fn check_members(&self) {
        let all_joined = self.instances.iter().all(|i| {
            let s = i.lock();
            s.joined && s.pid.is_some()
        });
        if all_joined || !self.checked.load(Ordering::Acquire) {
            return;
        }
        for m in self.ms.members() {
            if !matches!(m.state, MemberState::Joined | MemberState::Unresponsive)
                || !self.is_local(&m.addr)
            {
                continue;
            }
            let (state, info) = match self
                .instances
                .iter()
                .find(|i| i.known_rank() == Some(m.rank))
            {
                Some(inst) => {
                    let s = inst.lock();
                    // Joined, or joining: the service may show the new incarnation `Joined`
                    // before the join's SetRank/SetUp are done; marking it `Starting` then
                    // would stick, as nothing checks a joined engine again.
                    if (s.joined || s.joining) && s.pid.is_some() {
                        continue;
                    } else if s.pid.is_some() {
                        (
                            MemberState::Starting,
                            "its engine is starting and has not joined again".to_string(),
                        )
                    } else if !s.formatted {
                        (
                            MemberState::AwaitFormat,
                            "its engine's storage needs a format".to_string(),
                        )
                    } else if s.held {
                        (
                            MemberState::Stopped,
                            "stopped by the administrator".to_string(),
                        )
                    } else {
                        (
                            MemberState::Errored,
                            match &s.last_exit {
                                Some(t) => format!("exited with status: {t}"),
                                None => "its engine is not running".to_string(),
                            },
                        )
                    }
                }
                // No engine of this host holds the rank: its superblock is gone (storage
                // lost, as a RAM tier after a power loss) or another rank replaced it.
                None => (
                    if self.instances.iter().any(|i| !i.lock().formatted) {
                        MemberState::AwaitFormat
                    } else {
                        MemberState::Errored
                    },
                    format!(
                        "no engine of the daos_server at {} holds rank {} (its storage was lost or reformatted?)",
                        m.addr, m.rank
                    ),
                ),
            };
            info!(
                "rank {} shows {} but {info}: {}",
                m.rank,
                m.state.name(),
                state.name()
            );
            let cmd = daos_mgmt::state::Command::SetStateIf {
                rank: m.rank,
                incarnation: m.incarnation,
                from: Some(m.state),
                state,
                info,
            };
            if let Err(e) = self.ms.apply(cmd) {
                warn!("rank {}: {e}", m.rank);
            }
        }
    }

    /// A running, answering rank that the management service lost with its daos_server (a cut
    /// link, a leader that could not reach us) is reported alive again.
    fn reassert(&self, rank: u32) {
        let Some(m) = self.ms.members().into_iter().find(|m| m.rank == rank) else {
            return;
        };
        if m.state == MemberState::Excluded {
            // As DAOS's engine_self_terminated: an engine that learns it was excluded stops
            // serving; restarted, it rejoins with a new incarnation (its pool targets stay
            // out until reintegrated).
            // Only the incarnation the service excluded: a copy of the state that lags behind
            // a rejoin must not stop the engine that rejoined.
            let pid = self.instances.iter().find_map(|inst| {
                let mut pid = None;
                inst.update(|s| {
                    if s.rank == Some(rank) && s.incarnation == m.incarnation && s.pid.is_some() {
                        s.rejoining = true;
                        pid = s.pid;
                    }
                });
                pid
            });
            if let Some(pid) = pid {
                warn!(
                    "rank {rank} was excluded ({}): its engine stops and restarts to rejoin",
                    m.info
                );
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            return;
        }
        if m.state == MemberState::Unresponsive
            && m.info == crate::membership::raft::host_lost_info(&m.addr)
        {
            info!("rank {rank} runs and answers: Joined again");
            if let Err(e) = self.ms.set_state(rank, MemberState::Joined, "") {
                warn!("rank {rank}: {e}");
            }
        }
    }

    /// Runs `f` on a thread of its own named `name`, joined at shutdown.
    fn spawn(
        self: &Arc<Self>,
        name: String,
        what: &str,
        f: impl FnOnce(Arc<Harness>) + Send + 'static,
    ) {
        let h = self.clone();
        match thread::Builder::new().name(name).spawn(move || f(h)) {
            Ok(t) => self
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(t),
            Err(e) => error!("cannot start {what}: {e}"),
        }
    }

    /// Checks each engine's storage, formats it with `auto_format`, and starts the supervisors.
    pub fn start(self: &Arc<Self>, auto_format: bool) {
        self.spawn("group-update".into(), "the group map pusher", |h| {
            h.push_group_map()
        });
        self.spawn("health".into(), "the engine health monitor", |h| {
            h.monitor()
        });
        self.spawn(
            "rebuild".into(),
            "the rebuild driver",
            crate::rebuild::driver,
        );
        for inst in &self.instances {
            let i = inst.index;
            info!("Checking DAOS I/O Engine instance {i} storage ...");
            let e = &self.config.engines[i];
            let formatted = match storage::read_superblock(e, i) {
                Ok(Some(sb)) => {
                    if sb.validrank {
                        inst.update(|s| s.rank = Some(sb.rank));
                    }
                    true
                }
                Ok(None) if auto_format => {
                    info!("--auto flag set on server start so formatting storage now");
                    self.format_logged(i, false).is_ok()
                }
                Ok(None) => {
                    info!("SCM format required on instance {i}");
                    false
                }
                Err(e) => {
                    error!("{e}");
                    false
                }
            };
            if formatted {
                if i == 0 {
                    self.storage_ready();
                }
                if let Some(m) = e.scm_mount() {
                    info!(
                        "DAOS I/O Engine instance {i} storage ready (SCM @ {})",
                        m.display()
                    );
                }
                inst.update(|s| s.formatted = true);
            }
            let inst = inst.clone();
            self.spawn(
                format!("engine-{i}"),
                &format!("the supervisor of instance {i}"),
                move |h| h.supervise(&inst),
            );
        }
        self.checked.store(true, Ordering::Release);
    }

    fn format_logged(&self, i: usize, force: bool) -> Result<FormatResult, StorageError> {
        match storage::format(&self.config, i, force) {
            Ok(r) => {
                info!(
                    "instance {i}: formatted SCM at {} ({}), bdevs {:?}",
                    r.scm_mount.display(),
                    if r.mounted {
                        "tmpfs"
                    } else {
                        "directory, emulated"
                    },
                    r.bdevs
                );
                Ok(r)
            }
            Err(e) => {
                error!("instance {i}: format failed: {e}");
                Err(e)
            }
        }
    }

    /// Formats engine `i` and lets its supervisor start it. A running engine is refused, or
    /// with `force` stopped first ("forcibly stopping instance N prior to reformat").
    pub fn format(self: &Arc<Self>, i: usize, force: bool) -> Result<FormatResult, StorageError> {
        let inst = &self.instances[i];
        if inst.pid().is_some() {
            if !force {
                return Err(StorageError::Unsupported {
                    engine: i,
                    message: "instance is running; stop the system first or use --force".into(),
                });
            }
            info!("forcibly stopping instance {i} prior to reformat");
            self.stop_instance(inst, false);
        }
        inst.update(|s| s.held = true);
        let old_rank = inst.lock().rank.or_else(|| {
            storage::read_superblock(&self.config.engines[i], i)
                .ok()
                .flatten()
                .filter(|sb| sb.validrank)
                .map(|sb| sb.rank)
        });
        let result = self.format_logged(i, force);
        if result.is_ok() {
            if i == 0 {
                self.storage_ready();
            }
            self.release_ranks(i, old_rank);
        }
        inst.update(|s| {
            if result.is_ok() {
                s.formatted = true;
                s.rank = None;
            }
            s.held = false;
        });
        result
    }

    /// After engine `i`'s storage was (re)formatted: the ranks it held (known from its state
    /// or old superblock, else by its control address and fabric port) leave the system, with
    /// the pools that had storage on them. Its engine joins afresh.
    fn release_ranks(&self, i: usize, old_rank: Option<u32>) {
        let port = format!(":{}", self.config.engines[i].fabric_iface_port);
        let ranks: Vec<u32> = self
            .ms
            .members()
            .iter()
            .filter(|m| {
                Some(m.rank) == old_rank
                    || (self.is_local(&m.addr) && m.fabric_uri.ends_with(&port))
            })
            .map(|m| m.rank)
            .collect();
        for rank in ranks {
            match self.ms.member_remove(rank) {
                Ok(pools) => {
                    let labels: Vec<&str> = pools.iter().map(|p| p.label.as_str()).collect();
                    info!(
                        "instance {i}: rank {rank} released by the reformat; pools removed with it: {labels:?}"
                    );
                }
                Err(e) => warn!("instance {i}: cannot release rank {rank}: {e}"),
            }
        }
    }

    /// Stops one engine and holds it stopped; true when it is no longer running.
    fn stop_instance(&self, inst: &Instance, force: bool) -> bool {
        let (pid, sock, rank) = {
            let mut s = inst.lock();
            s.held = true;
            (s.pid, s.drpc_sock.clone(), s.rank)
        };
        inst.changed.notify_all();
        let Some(pid) = pid else { return true };
        if let (Some(sock), Some(rank), false) = (sock, rank, force) {
            prep_shutdown(inst.index, &sock, rank);
        }
        let sig = if force {
            Signal::SIGKILL
        } else {
            Signal::SIGTERM
        };
        let _ = kill(Pid::from_raw(pid), sig);
        if inst.wait_for(STOP_GRACE, |s| s.pid.is_none()) {
            return true;
        }
        warn!(
            "instance {}: still running after {STOP_GRACE:?}; killing it",
            inst.index
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        inst.wait_for(Duration::from_secs(5), |s| s.pid.is_none())
    }

    /// Calls a dRPC method on the engine of `rank`: over dRPC when it is one of this host's,
    /// else through the daos_server of its host (`rank.RankSvc`).
    pub fn engine_call<M: daos_drpc::Method>(
        &self,
        rank: u32,
        method: M,
        body: &[u8],
    ) -> Result<Vec<u8>, EngineCallError> {
        self.engine_call_within(rank, method, body, POOL_CALL_TIMEOUT)
    }

    /// [`Self::engine_call`] with the engine given `within` to answer (a query that must
    /// not wait for an engine that is stopped or hung).
    pub fn engine_call_within<M: daos_drpc::Method>(
        &self,
        rank: u32,
        method: M,
        body: &[u8],
        within: Duration,
    ) -> Result<Vec<u8>, EngineCallError> {
        if self.by_rank(rank).is_some() {
            return self.local_engine_call_within(rank, method, body, within);
        }
        let addr = self
            .ms
            .members()
            .into_iter()
            .find(|m| m.rank == rank)
            .map(|m| m.addr)
            .ok_or(EngineCallError::NotMember { rank })?;
        if self.is_local(&addr) {
            return Err(EngineCallError::NotHere { rank });
        }
        self.remote.engine_call(&addr, rank, method, body, within)
    }

    /// Hands the group map to every running, joined engine of this host (dRPC
    /// GROUP_UPDATE); returns their ranks. An engine's refusal is an error.
    pub fn group_update_local(&self, map: &daos_proto::rank::GroupMap) -> Result<Vec<u32>, String> {
        use daos_drpc::mgmt::GroupUpdateReq;
        use daos_drpc::mgmt::group_update_req::Engine;
        let body = GroupUpdateReq {
            map_version: map.map_version,
            engines: map
                .engines
                .iter()
                .map(|e| Engine {
                    rank: e.rank,
                    uri: e.uri.clone(),
                    incarnation: e.incarnation,
                })
                .collect(),
        }
        .encode_to_vec();
        let mut done = Vec::new();
        for inst in &self.instances {
            let Some(rank) = inst.rank() else { continue };
            let status = self
                .local_engine_call(rank, MgmtMethod::GroupUpdate, &body)
                .map_err(|e| e.to_string())
                .and_then(|b| der_status(&b))?;
            if status != 0 {
                return Err(format!(
                    "rank {rank} refused group map version {}: {}({status})",
                    map.map_version,
                    daos_wire::der::name(status)
                ));
            }
            if !map.pools.is_empty() {
                let body = daos_drpc::mgmt::PoolMapVersionsReq {
                    pools: map
                        .pools
                        .iter()
                        .map(|p| daos_drpc::mgmt::pool_map_versions_req::Pool {
                            uuid: p.uuid.clone(),
                            version: p.version,
                        })
                        .collect(),
                }
                .encode_to_vec();
                let status = self
                    .local_engine_call(rank, MgmtMethod::PoolMapVersions, &body)
                    .map_err(|e| e.to_string())
                    .and_then(|b| der_status(&b))?;
                if status != 0 {
                    return Err(format!(
                        "rank {rank} refused the pool map versions: {}({status})",
                        daos_wire::der::name(status)
                    ));
                }
            }
            done.push(rank);
        }
        Ok(done)
    }

    /// On the management service leader: pushes the group map (members but those awaiting a
    /// format or excluded, with their URIs and incarnations) and every pool's map version to
    /// every host whose engines do not have them yet, every [`GROUP_UPDATE_PERIOD`] (DAOS's
    /// 500 ms lazy tick), retrying hosts that did not take it.
    ///
    /// The same tick, on a leader that has just become one: half-made pools of the leader
    /// before are rolled back ([`Self::scan_orphans`], retried every [`ORPHAN_RETRY`]); and on
    /// every server every [`RECLAIM_PERIOD`], shards of its engines that no pool names are
    /// removed ([`Self::reclaim_shards`]).
    fn push_group_map(self: &Arc<Self>) {
        let mut sent = BTreeMap::new();
        let mut leading = false;
        let mut last_rollback = Instant::now();
        let mut last_reclaim = Instant::now();
        let busy = Arc::new(AtomicBool::new(false));
        while !self.stopping.load(Ordering::Acquire) {
            thread::sleep(GROUP_UPDATE_PERIOD);
            if last_reclaim.elapsed() >= RECLAIM_PERIOD {
                last_reclaim = Instant::now();
                self.background(&busy, "reclaim", |h| h.reclaim_shards());
            }
            if !self.ms.is_leader() {
                sent.clear();
                leading = false;
                continue;
            }
            let became = !leading;
            leading = true;
            if became || last_rollback.elapsed() >= ORPHAN_RETRY {
                last_rollback = Instant::now();
                self.background(&busy, "orphans", move |h| {
                    if became {
                        h.scan_orphans();
                    }
                    h.roll_back_orphans();
                });
            }
            self.push_maps(&mut sent);
        }
    }

    /// Runs `f` on a thread of its own unless one such run is still going (`busy`).
    fn background(
        self: &Arc<Self>,
        busy: &Arc<AtomicBool>,
        name: &str,
        f: impl FnOnce(&Harness) + Send + 'static,
    ) {
        if busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (h, b) = (self.clone(), busy.clone());
        let spawned = thread::Builder::new().name(name.into()).spawn(move || {
            f(&h);
            b.store(false, Ordering::Release);
        });
        if let Err(e) = spawned {
            busy.store(false, Ordering::Release);
            warn!("cannot start the {name} work: {e}");
        }
    }

    /// Removes the shards of this server's engines that no pool names: a create rolled back,
    /// or a pool destroyed with `--force`, while their rank was down. A shard counts only
    /// when the system state (the leader's, or this replica's) was read and names no such
    /// pool, and it is older than [`SHARD_GRACE`] (a create in flight has its pool record
    /// committed before any shard is made).
    fn reclaim_shards(&self) {
        for (i, inst) in self.instances.iter().enumerate() {
            let Some(rank) = inst.rank() else { continue };
            let Some(mount) = self.config.engines.get(i).and_then(|e| e.scm_mount()) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(mount.join("pools")) else {
                continue;
            };
            let shards: Vec<(String, Duration)> = entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    daos_wire::parse_uuid(&name)?;
                    let age = e.metadata().ok()?.modified().ok()?.elapsed().ok()?;
                    Some((name, age))
                })
                .collect();
            if shards.is_empty() {
                continue;
            }
            let pools = match self.ms.pools_checked() {
                Ok(p) => p,
                Err(e) => {
                    debug!("shard reclaim: the system state could not be read: {e}");
                    return;
                }
            };
            for (uuid, age) in shards {
                if age < SHARD_GRACE || pools.iter().any(|p| p.uuid == uuid) {
                    continue;
                }
                let body = PoolDestroyReq {
                    uuid: uuid.clone(),
                    force: true,
                }
                .encode_to_vec();
                match self
                    .local_engine_call(rank, MgmtMethod::PoolDestroy, &body)
                    .map_err(|e| e.to_string())
                    .and_then(|b| der_status(&b))
                {
                    Ok(0) => warn!(
                        "pool {uuid}: rank {rank} held a shard of it that no pool names (a create rolled back, or a forced destroy, while the rank was down); removed"
                    ),
                    Ok(status) => warn!(
                        "pool {uuid}: rank {rank}'s orphan shard was not removed: {}({status})",
                        daos_wire::der::name(status)
                    ),
                    Err(e) => warn!("pool {uuid}: rank {rank}'s orphan shard was not removed: {e}"),
                }
            }
        }
    }

    /// Pushes the current group map and pool map versions, now, to every live host (a
    /// rebuild does this before it scans: clients still on the old map are then refused by
    /// every target, rather than writing where the rebuild has already been). Returns the
    /// hosts that did not take them.
    pub fn push_maps_now(&self) -> Vec<String> {
        self.push_maps(&mut BTreeMap::new())
    }

    /// One push to every live host whose last push (in `sent`) differs from now.
    fn push_maps(&self, sent: &mut BTreeMap<String, daos_proto::rank::GroupMap>) -> Vec<String> {
        let mut failed = Vec::new();
        {
            let members = self.ms.members();
            let version = self.ms.map_version();
            let pools = self
                .ms
                .pools()
                .into_iter()
                .map(|p| daos_proto::rank::PoolVersion {
                    version: p.map.version(),
                    uuid: p.uuid,
                })
                .collect();
            let map = daos_proto::rank::GroupMap {
                map_version: version,
                engines: members
                    .iter()
                    .filter(|m| {
                        !matches!(
                            m.state,
                            MemberState::AwaitFormat
                                | MemberState::Excluded
                                | MemberState::AdminExcluded
                        )
                    })
                    .map(|m| daos_proto::rank::group_map::Engine {
                        rank: m.rank,
                        uri: m.fabric_uri.clone(),
                        incarnation: m.incarnation,
                    })
                    .collect(),
                pools,
            };
            let mut hosts: BTreeMap<String, bool> = BTreeMap::new();
            for m in &members {
                let live = m.state == MemberState::Joined;
                *hosts.entry(m.addr.clone()).or_default() |= live;
            }
            for (addr, live) in hosts {
                if !live || sent.get(&addr) == Some(&map) {
                    continue;
                }
                let r = if self.is_local(&addr) {
                    self.group_update_local(&map)
                } else {
                    self.remote.group_update(&addr, &map)
                };
                match r {
                    Ok(_) => {
                        sent.insert(addr, map.clone());
                    }
                    Err(e) => {
                        warn!("group map version {version} to {addr}: {e}; retried");
                        failed.push(addr);
                    }
                }
            }
        }
        failed
    }

    /// Calls to other hosts' daos_servers.
    pub fn remote(&self) -> &crate::remote::Remote {
        &self.remote
    }

    /// What `rank` offers pools (its host's daos_server answers for a remote one).
    pub fn rank_info(&self, rank: u32) -> Result<crate::remote::RankInfo, String> {
        if let Some(info) = self.local_rank_info(rank) {
            return Ok(info);
        }
        let addr = self
            .ms
            .members()
            .into_iter()
            .find(|m| m.rank == rank)
            .map(|m| m.addr)
            .ok_or_else(|| format!("rank {rank} is not a member of the system"))?;
        self.remote.rank_info(&addr, rank)
    }

    /// What this host's `rank` offers pools, if it is one of this host's.
    pub fn local_rank_info(&self, rank: u32) -> Option<crate::remote::RankInfo> {
        let e = self.engine_of(rank)?;
        let (scm_capacity, nvme_capacity) = crate::pools::local_capacity(e);
        Some(crate::remote::RankInfo {
            targets: u64::from(e.targets.max(1)),
            scm_capacity,
            nvme_capacity,
            scm_avail: crate::pools::scm_avail(e),
        })
    }

    /// Calls a dRPC method on this host's engine of `rank`.
    pub fn local_engine_call<M: daos_drpc::Method>(
        &self,
        rank: u32,
        method: M,
        body: &[u8],
    ) -> Result<Vec<u8>, EngineCallError> {
        self.local_engine_call_within(rank, method, body, POOL_CALL_TIMEOUT)
    }

    /// [`Self::local_engine_call`] with the engine given `within` to answer.
    pub fn local_engine_call_within<M: daos_drpc::Method>(
        &self,
        rank: u32,
        method: M,
        body: &[u8],
        within: Duration,
    ) -> Result<Vec<u8>, EngineCallError> {
        let inst = self
            .by_rank(rank)
            .ok_or(EngineCallError::NotHere { rank })?;
        let (sock, unresponsive) = {
            let s = inst.lock();
            (s.drpc_sock.clone(), s.unresponsive)
        };
        let sock = sock.ok_or(EngineCallError::NotRunning { rank })?;
        if unresponsive {
            return Err(EngineCallError::Unresponsive { rank });
        }
        let drpc = |source| EngineCallError::Drpc { rank, source };
        let mut c = Client::connect_within(&sock, within).map_err(drpc)?;
        c.call(method, body).map_err(drpc)
    }

    /// The engine config of `rank`.
    pub fn engine_of(&self, rank: u32) -> Option<&daos_config::Engine> {
        self.by_rank(rank).map(|i| &self.config.engines[i.index])
    }

    fn by_rank(&self, rank: u32) -> Option<&Arc<Instance>> {
        self.instances.iter().find(|i| i.known_rank() == Some(rank))
    }

    /// Ranks of this host's engines.
    pub fn local_ranks(&self) -> Vec<u32> {
        self.instances
            .iter()
            .filter_map(|i| i.known_rank())
            .collect()
    }

    /// Sends PrepShutdown to the engines of `ranks`.
    pub fn prep_shutdown_ranks(&self, ranks: &[u32]) -> Vec<RankOutcome> {
        ranks
            .iter()
            .filter_map(|&r| self.by_rank(r).map(|i| (r, i)))
            .map(|(rank, inst)| {
                let sock = inst.lock().drpc_sock.clone();
                let ok = sock.is_none_or(|s| prep_shutdown(inst.index, &s, rank));
                let msg = if ok {
                    String::new()
                } else {
                    "PrepShutdown failed".into()
                };
                RankOutcome {
                    rank,
                    ok,
                    msg,
                    state: MemberState::Stopping,
                }
            })
            .collect()
    }

    /// Stops the engines of `ranks` and holds them stopped (SIGKILL with `force`).
    pub fn stop_ranks(&self, ranks: &[u32], force: bool) -> Vec<RankOutcome> {
        ranks
            .iter()
            .filter_map(|&r| self.by_rank(r).map(|i| (r, i)))
            .map(|(rank, inst)| {
                let ok = self.stop_instance(inst, force);
                let _ =
                    self.ms
                        .set_state(rank, MemberState::Stopped, "stopped by the administrator");
                RankOutcome::of(rank, ok, MemberState::Stopped, || {
                    "engine did not stop".into()
                })
            })
            .collect()
    }

    /// Resets the storage format of the engines of `ranks` (DAOS's ResetFormatRanks, what
    /// `dmg system erase` asks of each host): each must be stopped; its superblock goes and
    /// it waits for `dmg storage format`. Refused, with nothing changed, while any runs.
    pub fn reset_format_ranks(&self, ranks: &[u32]) -> Result<Vec<RankOutcome>, String> {
        let chosen: Vec<(u32, &Arc<Instance>)> = ranks
            .iter()
            .filter_map(|&r| self.by_rank(r).map(|i| (r, i)))
            .collect();
        if let Some((rank, _)) = chosen.iter().find(|(_, i)| i.lock().pid.is_some()) {
            return Err(format!(
                "reset format not supported when rank {rank} is running; retry reset format operation after stopping rank {rank} (dmg system stop)"
            ));
        }
        Ok(chosen
            .into_iter()
            .map(|(rank, inst)| {
                let removed = match storage::superblock_path(&self.config.engines[inst.index]) {
                    Some(p) => match std::fs::remove_file(&p) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(format!("cannot remove {}: {e}", p.display())),
                    },
                    None => Err("the engine has no SCM tier".to_string()),
                };
                if removed.is_ok() {
                    // Released from any stop: it waits for a format, as a new engine would.
                    inst.update(|s| {
                        s.formatted = false;
                        s.held = false;
                    });
                    info!("SCM format required on instance {}", inst.index);
                    let _ = self.ms.set_state(
                        rank,
                        MemberState::AwaitFormat,
                        "storage format reset by the administrator",
                    );
                }
                let msg = removed.as_ref().err().cloned().unwrap_or_default();
                RankOutcome::of(rank, removed.is_ok(), MemberState::AwaitFormat, || msg)
            })
            .collect())
    }

    /// Sets the log masks of this host's engines (DAOS's SetEngineLogMasks): per engine, in
    /// order, "" when set or why not. `reset_*` take the engine's `log_mask` and the `DD_MASK`
    /// / `DD_SUBSYS` of its `env_vars`; subsystems are merged into the masks (DAOS's rules).
    pub fn set_log_masks(&self, req: &daos_drpc::SetLogMasksReq) -> Vec<String> {
        self.instances
            .iter()
            .map(|inst| {
                let e = &self.config.engines[inst.index];
                let env = |key: &str| {
                    e.env_vars
                        .iter()
                        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                        .unwrap_or_default()
                        .to_string()
                };
                let (masks, from) = if req.reset_masks {
                    (e.log_mask.clone(), "config")
                } else {
                    (req.masks.clone(), "request")
                };
                if masks.is_empty() {
                    return format!("empty log masks in {from}");
                }
                let streams = if req.reset_streams {
                    env("DD_MASK")
                } else {
                    req.streams.clone()
                };
                let subsystems = if req.reset_subsystems {
                    env("DD_SUBSYS")
                } else {
                    req.subsystems.clone()
                };
                use daos_config::logmask;
                let checked = logmask::validate_streams(&streams)
                    .and(logmask::validate_subsystems(&subsystems))
                    .and(logmask::LogMask::parse(&masks));
                let mask = match checked {
                    Ok(m) => m.with_subsystems(&subsystems),
                    Err(why) => return why,
                };
                let Some(sock) = inst.lock().drpc_sock.clone() else {
                    return "engine is not running".into();
                };
                let body = daos_drpc::SetLogMasksReq {
                    sys: req.sys.clone(),
                    masks: mask.to_string(),
                    streams,
                    ..Default::default()
                }
                .encode_to_vec();
                let answer = Client::connect(&sock)
                    .and_then(|mut c| {
                        c.set_timeout(POOL_CALL_TIMEOUT)?;
                        c.call(MgmtMethod::SetLogMasks, &body)
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        daos_drpc::SetLogMasksResp::decode(b.as_slice()).map_err(|e| e.to_string())
                    });
                match answer {
                    Ok(r) if r.status == 0 => {
                        info!("engine {}: log masks set to {mask}", inst.index);
                        String::new()
                    }
                    Ok(r) => format!("{}({})", daos_wire::der::name(r.status), r.status),
                    Err(e) => e,
                }
            })
            .collect()
    }

    /// Starts the held engines of `ranks` and waits for them to join.
    pub fn start_ranks(&self, ranks: &[u32], timeout: Duration) -> Vec<RankOutcome> {
        let chosen: Vec<(u32, &Arc<Instance>)> = ranks
            .iter()
            .filter_map(|&r| self.by_rank(r).map(|i| (r, i)))
            .collect();
        for (_, inst) in &chosen {
            inst.update(|s| s.held = false);
        }
        chosen
            .into_iter()
            .map(|(rank, inst)| {
                let ok = inst.wait_for(timeout, |s| s.joined);
                RankOutcome::of(rank, ok, MemberState::Joined, || {
                    format!("engine did not join within {}s", timeout.as_secs())
                })
            })
            .collect()
    }

    /// The config this harness runs.
    pub fn config(&self) -> &Server {
        &self.config
    }

    fn supervise(&self, inst: &Instance) {
        let i = inst.index;
        let mut backoff = Duration::from_secs(1);
        loop {
            {
                let mut s = inst.lock();
                while (!s.formatted || s.held) && !s.stop {
                    s = inst.changed.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                if s.stop {
                    return;
                }
            }
            let started = Instant::now();
            let status = match self.launch(i) {
                Ok(mut child) => {
                    inst.update(|s| s.pid = Some(child.id() as i32));
                    let status = child.wait();
                    let (rank, was_joined, incarnation) = {
                        let s = inst.lock();
                        (s.rank, s.joined, s.incarnation)
                    };
                    // An engine that joined started fine: restart it promptly, whatever
                    // killed it. The back-off is for engines that cannot start.
                    if was_joined {
                        backoff = Duration::from_secs(1);
                    }
                    inst.update(|s| {
                        s.pid = None;
                        s.drpc_sock = None;
                        s.joined = false;
                        s.unresponsive = false;
                    });
                    let text = match &status {
                        Ok(st) => exit_text(st),
                        Err(e) => format!("unknown ({e})"),
                    };
                    inst.update(|s| s.last_exit = Some(text.clone()));
                    if let Some(r) = rank {
                        // Stopped on purpose (shutdown, or held by `dmg system stop`):
                        // Stopped; otherwise it died: Errored. Only the member this engine
                        // joined as (its incarnation): an engine whose join was refused (a copy
                        // of another host's superblock, same rank) must not touch the member
                        // that holds the rank.
                        let (held, rejoining) = {
                            let s = inst.lock();
                            (s.held, s.rejoining)
                        };
                        inst.update(|s| s.rejoining = false);
                        let state = if self.stopping.load(Ordering::Acquire) || held {
                            MemberState::Stopped
                        } else {
                            MemberState::Errored
                        };
                        // An engine stopped because its rank was excluded leaves the rank
                        // Excluded (it restarts and joins again).
                        if !rejoining || held {
                            let _ = self.ms.apply(daos_mgmt::state::Command::SetStateIf {
                                rank: r,
                                incarnation,
                                from: None,
                                state,
                                info: format!("exited with status: {text}"),
                            });
                        }
                    }
                    text
                }
                Err(e) => format!("not started: {e}"),
            };
            let (stop, held) = {
                let s = inst.lock();
                (s.stop, s.held)
            };
            if stop || held {
                info!("DAOS I/O Engine instance {i} exited with status: {status}");
                if stop {
                    return;
                }
                backoff = Duration::from_secs(1);
                continue;
            }
            error!("DAOS I/O Engine instance {i} exited with status: {status}");
            if started.elapsed() > HEALTHY_RUN {
                backoff = Duration::from_secs(1);
            }
            info!("restarting instance {i} in {}s", backoff.as_secs());
            let deadline = Instant::now() + backoff;
            let mut s = inst.lock();
            while !s.stop && !s.held && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                s = inst
                    .changed
                    .wait_timeout(s, left)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            drop(s);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn launch(&self, i: usize) -> std::io::Result<Child> {
        let e = &self.config.engines[i];
        let args = e.args(&self.config, i);
        let parent = |k: &str| std::env::var(k).ok();
        let mut env = e.environment(&parent);
        if let Some(ip) = daos_hw::net::host_addr().ok().flatten() {
            env.push((daos_hw::net::HOST_ADDR_ENV.into(), ip.to_string()));
        }
        info!(
            "Starting I/O Engine instance {i}: {}",
            self.engine_bin.display()
        );
        let mut child = Command::new(&self.engine_bin)
            .args(&args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(out) = child.stdout.take() {
            forward(i, out, false);
        }
        if let Some(err) = child.stderr.take() {
            forward(i, err, true);
        }
        Ok(child)
    }

    /// Handles an engine's NotifyReady: checks it, then joins the engine in the background.
    pub fn notify_ready(self: &Arc<Self>, req: NotifyReadyReq) -> Result<(), String> {
        let i = req.instance_idx as usize;
        let inst = self
            .instances
            .get(i)
            .cloned()
            .ok_or_else(|| format!("NotifyReady from unknown instance index {i}"))?;
        let sock = PathBuf::from(&req.drpc_listener_sock);
        let is_socket = std::fs::metadata(&sock).map(|m| m.file_type().is_socket());
        match is_socket {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "check NotifyReady request socket path: {} is not a socket",
                    sock.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "check NotifyReady request socket path: {}: {e}",
                    sock.display()
                ));
            }
        }
        inst.update(|s| s.drpc_sock = Some(sock.clone()));
        info!("DAOS I/O Engine instance {i} is ready; joining the system");
        let h = self.clone();
        thread::Builder::new()
            .name(format!("join-{i}"))
            .spawn(move || {
                inst.update(|s| s.joining = true);
                let joined = h.join(&inst, &req, &sock);
                inst.update(|s| s.joining = false);
                if let Err(e) = joined {
                    error!("instance {i}: join failed: {e}; stopping the engine so it restarts");
                    if let Some(pid) = inst.pid() {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| format!("cannot start a join thread: {e}"))
    }

    fn join(&self, inst: &Instance, req: &NotifyReadyReq, sock: &Path) -> Result<(), String> {
        let i = inst.index;
        let e = &self.config.engines[i];
        let mut sb = storage::read_superblock(e, i)
            .map_err(|e| e.to_string())?
            .ok_or("no superblock; the engine's storage is not formatted")?;
        let join = JoinRequest {
            system: self.config.name.clone(),
            uuid: sb.uuid.clone(),
            rank: sb.validrank.then_some(sb.rank),
            uri: req.uri.clone(),
            nctxs: req.nctxs,
            // As DAOS's daos_server: the MS takes the IP this call comes from (unless this
            // host has an address of its own on a shared machine).
            addr: match daos_hw::net::host_addr().ok().flatten() {
                Some(ip) => std::net::SocketAddr::from((ip, self.config.port)).to_string(),
                None => format!("0.0.0.0:{}", self.config.port),
            },
            fault_domain: sb.hostfaultdomain.clone(),
            incarnation: req.incarnation,
            idx: i as u32,
            bootstrap: false,
        };
        let resp = self.ms.join(&join).map_err(|e| e.to_string())?;
        inst.update(|s| s.incarnation = req.incarnation);
        if !sb.validrank
            || sb.rank != resp.rank
            || sb.uri != req.uri
            || sb.incarnation != req.incarnation
        {
            if sb.validrank && sb.uri != req.uri {
                info!("updating rank {} URI to {}", resp.rank, req.uri);
            }
            sb.rank = resp.rank;
            sb.validrank = true;
            sb.uri = req.uri.clone();
            sb.incarnation = req.incarnation;
            storage::write_superblock(e, i, &sb).map_err(|e| e.to_string())?;
        }
        let mut client = Client::connect(sock).map_err(|e| e.to_string())?;
        client
            .set_timeout(Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        let set_rank = SetRankReq {
            rank: resp.rank,
            map_version: resp.map_version,
            daos_version: 0,
        };
        let status = der_status(
            &client
                .call(MgmtMethod::SetRank, &set_rank.encode_to_vec())
                .map_err(|e| e.to_string())?,
        )?;
        if status != 0 {
            return Err(format!("SetRank {} answered status {status}", resp.rank));
        }
        let status = der_status(
            &client
                .call(MgmtMethod::SetUp, &[])
                .map_err(|e| e.to_string())?,
        )?;
        if status != 0 {
            return Err(format!("SetUp answered status {status}"));
        }
        inst.update(|s| {
            s.rank = Some(resp.rank);
            s.joined = true;
        });
        self.push_handles_to(resp.rank, sock);
        info!(
            "DAOS I/O Engine instance {i} {} the system as rank {}",
            if resp.rejoined { "rejoined" } else { "joined" },
            resp.rank
        );
        self.roll_back_orphans();
        Ok(())
    }

    /// Pushes the open handles of every pool on `rank` to its engine (just joined: after a
    /// restart it checks handles with none), off the join's thread.
    fn push_handles_to(&self, rank: u32, sock: &Path) {
        let pools: Vec<_> = self
            .ms
            .pools()
            .into_iter()
            .filter(|p| p.ranks.contains(&rank) && !p.svc_hosts.is_empty())
            .collect();
        if pools.is_empty() {
            return;
        }
        let (remote, sock) = (self.remote.clone(), sock.to_path_buf());
        let spawned = std::thread::Builder::new()
            .name("handles".into())
            .spawn(move || {
                for p in pools {
                    // Without its pool service (no majority), the system handle at least.
                    let list = remote
                        .list_handles(&p.svc_hosts, &p.uuid)
                        .unwrap_or_default();
                    let req = crate::cont::resync_req(&p.uuid, list, p.system_handle);
                    let sent = Client::connect(&sock)
                        .and_then(|mut c| c.call(MgmtMethod::PoolHandles, &req.encode_to_vec()));
                    if let Err(e) = sent {
                        warn!("pool {}: handles not pushed to rank {rank}: {e}", p.uuid);
                    }
                }
            });
        if let Err(e) = spawned {
            warn!("cannot push pool handles to rank {rank}: {e}");
        }
    }

    /// True when a member's control address (`ip:port`) is this daos_server.
    pub fn is_local(&self, addr: &str) -> bool {
        addr.parse::<std::net::SocketAddr>().is_ok_and(|a| {
            a.port() == self.config.port
                && daos_hw::net::is_host_ip(
                    a.ip(),
                    daos_hw::net::host_addr().ok().flatten(),
                    &crate::membership::raft::local_ips(),
                )
        }) || addr == self.control_addr
    }

    /// Destroys the pools a crash left half-made whose ranks have all joined.
    fn roll_back_orphans(&self) {
        let mut orphans = self.orphans.lock().unwrap_or_else(|p| p.into_inner());
        if orphans.is_empty() {
            return;
        }
        let joined: Vec<u32> = self
            .ms
            .members()
            .iter()
            .filter(|m| m.state == MemberState::Joined)
            .map(|m| m.rank)
            .collect();
        orphans.retain(|uuid| {
            let Some(p) = self.ms.pool_find(uuid) else {
                return false;
            };
            if self.is_busy(uuid) {
                return false;
            }
            // Ranks that are down are skipped: their shards are reclaimed when they are back
            // (`reclaim_shards`). At least one rank must answer.
            if !p.ranks.iter().any(|r| joined.contains(r)) {
                return true;
            }
            match crate::pools::destroy(self, uuid, true, true) {
                Ok(_) => {
                    info!("pool {} ({uuid}): the half-made pool is removed", p.label);
                    false
                }
                Err(e) => {
                    warn!(
                        "pool {} ({uuid}): rollback failed: {e}; retried at the next join",
                        p.label
                    );
                    true
                }
            }
        });
    }

    /// Stops every engine (PrepShutdown, SIGTERM, SIGKILL after [`STOP_GRACE`]) and waits for
    /// the supervisors.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        for inst in &self.instances {
            let (pid, sock, rank) = {
                let mut s = inst.lock();
                s.stop = true;
                (s.pid, s.drpc_sock.clone(), s.rank)
            };
            inst.changed.notify_all();
            if let (Some(sock), Some(rank)) = (sock, rank) {
                prep_shutdown(inst.index, &sock, rank);
            }
            if let Some(pid) = pid {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.instances.iter().any(|i| i.pid().is_some()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        for inst in &self.instances {
            if let Some(pid) = inst.pid() {
                warn!(
                    "instance {}: still running after {STOP_GRACE:?}; killing it",
                    inst.index
                );
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Sends PrepShutdown to one engine; logs and returns false on failure.
///
/// As DAOS's control plane, an engine that does not run has nothing to prepare: a socket
/// nobody listens on (an engine killed, or restarting after its exclusion, between the
/// supervisor's look and this call) is not a failure. A connection the engine closes
/// mid-call is tried once more, on a fresh connection, to tell the two apart.
fn prep_shutdown(index: usize, sock: &Path, rank: u32) -> bool {
    let once = || {
        Client::connect(sock).and_then(|mut c| {
            c.set_timeout(Duration::from_secs(2))?;
            c.call(
                MgmtMethod::PrepShutdown,
                &PrepShutdownReq { rank }.encode_to_vec(),
            )
        })
    };
    let not_running = |e: &DrpcError| {
        matches!(e, DrpcError::Connect { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound))
    };
    let prep = once().or_else(|e| if not_running(&e) { Err(e) } else { once() });
    match prep {
        Ok(_) => true,
        Err(e) if not_running(&e) => {
            info!(
                "instance {index}: PrepShutdown: the engine does not run ({e}); nothing to prepare"
            );
            true
        }
        Err(e) => {
            warn!("instance {index}: PrepShutdown failed: {e}");
            false
        }
    }
}

/// `0`, `1`, or `signal 9 (SIGKILL)`.
fn exit_text(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("unknown");
            format!("signal {sig} ({name})")
        }
        _ => status.to_string(),
    }
}

/// Copies an engine's output lines into the control log.
fn forward(i: usize, stream: impl std::io::Read + Send + 'static, is_err: bool) {
    let spawned = thread::Builder::new()
        .name(format!("engine-{i}-log"))
        .spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if is_err {
                    error!("daos_engine:{i} {line}");
                } else {
                    info!("daos_engine:{i} {line}");
                }
            }
        });
    if let Err(e) = spawned {
        warn!("instance {i}: cannot forward its output: {e}");
    }
}
