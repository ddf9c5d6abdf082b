//! The replicated management service: [`SystemDb`] on openraft across the servers named in
//! `mgmt_svc_replicas` (node id = position in that list in its canonical order, see
//! [`canonical_replicas`]; node address = the entry).
//!
//! - The first replica of the canonical order (the lowest address, then port) bootstraps a
//!   new system (a one-voter group), whatever order each server's config lists them in; the
//!   leader adds another replica as a voter once an engine of that replica's server has
//!   joined (DAOS's manageVoter).
//! - Servers announce their replica set on their calls to each other
//!   ([`net::REPLICA_SET_HEADER`]); a server refuses Raft calls and joins from one whose set
//!   differs ([`compare_replica_sets`]), so disagreeing configs cannot form two systems.
//! - Log and vote: [`log::LogStore`] (own checksummed append-only file with fsync); snapshots
//!   of the whole state: [`sm::StateMachine`]; both under `control_raft/`.
//! - Reads answer from this server's applied state (any replica, as DAOS); writes are
//!   committed by the leader: a replica that is not the leader and a server that is no replica
//!   forward them (`raft.RaftSvc/Propose`), following the leader with back-off.
//! - Joins travel as DAOS's `mgmt.MgmtSvc/Join` to the leader ([`MsNode::join`]); the leader's
//!   handler applies them ([`MsNode::join_local`]).
//!
//! The node runs on its own small tokio runtime; its methods block the calling thread (the
//! control daemon stays blocking), so call them from plain threads or `spawn_blocking`.

pub mod log;
pub mod net;
pub mod pool;
pub mod sm;
pub mod svc;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use daos_control::redirect::{HostQueue, Redirect};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, ServerState};
use serde::{Deserialize, Serialize};
use tonic::transport::ClientTlsConfig;
use tracing::{info, warn};

use crate::state::{Command, Refusal, Reply, SystemDb};
use crate::{
    JoinRequest, JoinResponse, ManagementService, Member, MemberState, MsError, PoolRecord,
};
use net::{CallError, Method, Peers};

openraft::declare_raft_types!(
    /// The management service's Raft types.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What applying a command gives.
pub type Outcome = Result<Reply, Refusal>;

/// Raft timing.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub heartbeat: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
}

impl Default for Timing {
    /// Heartbeat 250 ms, election timeout 1-2 s (DAOS: 2 s both).
    fn default() -> Timing {
        Timing {
            heartbeat: Duration::from_millis(250),
            election_min: Duration::from_millis(1000),
            election_max: Duration::from_millis(2000),
        }
    }
}

impl Timing {
    /// openraft's configuration of a group named `name` with this timing (snapshots every
    /// 64 entries, 16 kept after one).
    pub fn raft_config(&self, name: &str) -> Result<Arc<openraft::Config>, MsError> {
        let config = openraft::Config {
            cluster_name: name.to_string(),
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            election_timeout_min: self.election_min.as_millis() as u64,
            election_timeout_max: self.election_max.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(64),
            max_in_snapshot_log_to_keep: 16,
            ..Default::default()
        };
        config
            .validate()
            .map(Arc::new)
            .map_err(|e| MsError::Raft(e.to_string()))
    }
}

/// How a server takes part in the management service.
#[derive(Clone, Debug)]
pub struct MsConfig {
    /// The system name (`name` in daos_server.yml).
    pub system: String,
    /// `mgmt_svc_replicas`, `host:port` each.
    pub replicas: Vec<String>,
    /// This server's position in `replicas`, if it is one.
    pub me: Option<usize>,
    /// `control_raft/` of this replica.
    pub dir: Option<PathBuf>,
    /// `pool_svc/`: this server's pool service replicas (none without storage).
    pub pool_dir: Option<PathBuf>,
    /// Client TLS with the server certificate (None: insecure).
    pub tls: Option<ClientTlsConfig>,
    pub timing: Timing,
}

/// A `mgmt_svc_replicas` list that cannot be used: what is wrong (naming the field and the
/// entries) and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaListError {
    pub message: String,
    pub fix: String,
}

/// The address `entry` (`host:port`) resolves to, IPv4 first (`localhost` is 127.0.0.1 on
/// every host), or why it does not resolve.
pub fn resolve_replica(entry: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = entry
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    let v4 = addrs.iter().filter(|a| a.is_ipv4()).min().copied();
    v4.or_else(|| addrs.iter().min().copied())
        .ok_or_else(|| "no address".to_string())
}

/// `entries` (`mgmt_svc_replicas`, `host:port` each) in canonical order: sorted by resolved
/// address, then port, so every server numbers the replicas alike and the same one (the
/// first) bootstraps whatever order its config lists them in. Refused: an entry that does
/// not resolve, two entries that resolve to the same address and port (their replicas could
/// not be told apart).
pub fn canonical_replicas(entries: &[String]) -> Result<Vec<String>, ReplicaListError> {
    let mut resolved: Vec<(SocketAddr, Vec<SocketAddr>, usize)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let addr = resolve_replica(e).map_err(|why| ReplicaListError {
            message: format!(
                "invalid list of MS replicas in configuration: mgmt_svc_replicas[{i}] {e:?} does not resolve ({why})"
            ),
            fix: "list each management service replica as host:port with a host name or address every server resolves".into(),
        })?;
        let all: Vec<SocketAddr> = e.to_socket_addrs().map(|a| a.collect()).unwrap_or_default();
        if let Some((_, _, j)) = resolved
            .iter()
            .find(|(a, others, _)| *a == addr || others.iter().any(|o| all.contains(o)))
        {
            return Err(ReplicaListError {
                message: format!(
                    "mgmt_svc_replicas[{j}] {:?} and mgmt_svc_replicas[{i}] {e:?} both resolve to {addr}: their replicas cannot be told apart",
                    entries[*j]
                ),
                fix: "list each management service replica once; daos_servers sharing an address need distinct ports (host:port, each server's own `port`)".into(),
            });
        }
        resolved.push((addr, all, i));
    }
    resolved.sort_by_key(|(a, _, _)| (a.ip(), a.port()));
    Ok(resolved
        .into_iter()
        .map(|(_, _, i)| entries[i].clone())
        .collect())
}

/// The replica set as servers announce and compare it: the resolved addresses in canonical
/// order (an entry that does not resolve as written), comma-separated.
pub fn replica_set_key(replicas: &[String]) -> String {
    let mut addrs: Vec<(Option<SocketAddr>, String)> = replicas
        .iter()
        .map(|r| match resolve_replica(r) {
            Ok(a) => (Some(a), a.to_string()),
            Err(_) => (None, r.clone()),
        })
        .collect();
    addrs.sort_by(|x, y| {
        let k = |v: &(Option<SocketAddr>, String)| (v.0.map(|a| (a.ip(), a.port())), v.1.clone());
        k(x).cmp(&k(y))
    });
    addrs
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a peer that announced the replica set `theirs` (None: it announced none, as
/// DAOS's own servers) may talk to this server whose set is `ours`; the refusal names both
/// sets and the fix.
pub fn compare_replica_sets(ours: &str, theirs: Option<&str>) -> Result<(), String> {
    match theirs {
        None => Ok(()),
        Some(t) if t == ours => Ok(()),
        Some(t) => Err(format!(
            "management service replica sets differ: the calling server has mgmt_svc_replicas [{t}], this server has [{ours}]; fix: give every daos_server of the system the same mgmt_svc_replicas (the order does not matter) and restart the servers whose list differs"
        )),
    }
}

/// How long a write may look for a leader.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// How long a join may look for a leader (DAOS: an hour, 10 s per try; the caller retries).
pub const JOIN_DEADLINE: Duration = Duration::from_secs(120);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the leader checks that member hosts' daos_servers answer.
pub const HOST_PING_PERIOD: Duration = Duration::from_secs(1);
const HOST_PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Missed checks in a row after which a host's ranks are `Unresponsive`.
pub const HOST_MISSES: u32 = 3;
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The answer to a forwarded command.
#[derive(Debug, Serialize, Deserialize)]
pub enum Forwarded {
    Applied(Outcome),
    NotLeader { hint: Option<String> },
    Failed(String),
}

struct Inner {
    cfg: MsConfig,
    peers: Arc<Peers>,
    pools: Arc<pool::PoolServices>,
    raft: RwLock<Option<Raft<TypeConfig>>>,
    state: RwLock<Option<Arc<RwLock<sm::Applied>>>>,
    /// Resolved addresses of each replica entry (empty until resolved).
    resolved: Mutex<Vec<Vec<SocketAddr>>>,
    /// This server's replica set ([`replica_set_key`]).
    set_key: String,
    /// Replica sets of refused peers already logged (each is logged once).
    refused_sets: Mutex<BTreeSet<String>>,
}

/// A server's handle on the management service (replica or not).
pub struct MsNode {
    inner: Arc<Inner>,
    rt: Option<tokio::runtime::Runtime>,
    started: Mutex<bool>,
}

/// The IP addresses of this host's interfaces.
pub fn local_ips() -> Vec<IpAddr> {
    let mut out = vec![IpAddr::from([127, 0, 0, 1])];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(s) = a.address {
                if let Some(v4) = s.as_sockaddr_in() {
                    out.push(IpAddr::V4(v4.ip()));
                } else if let Some(v6) = s.as_sockaddr_in6() {
                    out.push(IpAddr::V6(v6.ip()));
                }
            }
        }
    }
    out
}

/// Which entry of `replicas` is this server (listening on `port` on `host` when a host
/// address is set, else on a loopback address or one of `ips`).
pub fn local_replica(
    replicas: &[String],
    port: u16,
    host: Option<IpAddr>,
    ips: &[IpAddr],
) -> Option<usize> {
    replicas.iter().position(|r| {
        r.to_socket_addrs()
            .map(|mut a| a.any(|a| a.port() == port && daos_hw::net::is_host_ip(a.ip(), host, ips)))
            .unwrap_or(false)
    })
}

impl Inner {
    fn raft(&self) -> Option<Raft<TypeConfig>> {
        self.raft.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a leader with metrics `m` holds its lease: a majority acknowledged it within
    /// the shortest election timeout (a single voter always does).
    fn holds_lease(&self, m: &openraft::RaftMetrics<u64, openraft::BasicNode>) -> bool {
        let voters = m.membership_config.membership().voter_ids().count();
        voters <= 1
            || m.millis_since_quorum_ack
                .is_some_and(|ms| u128::from(ms) < self.cfg.timing.election_min.as_millis())
    }

    /// A leader whose lease lapsed confirms its leadership with a round of heartbeats (at
    /// most the longest election timeout); the error says it may be cut off.
    async fn confirm_leadership(&self, raft: &Raft<TypeConfig>) -> Result<(), MsError> {
        {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            if m.state != ServerState::Leader || self.holds_lease(&m) {
                return Ok(());
            }
        }
        let wait = self.cfg.timing.election_max;
        if matches!(
            tokio::time::timeout(wait, raft.ensure_linearizable()).await,
            Ok(Ok(_))
        ) {
            return Ok(());
        }
        let silent = raft.metrics().borrow().millis_since_quorum_ack;
        Err(MsError::Unavailable(format!(
            "this daos_server leads the management service but a majority of its replicas ({}) has not answered it for {}: it may be cut off from them (a network partition), and another may lead now; it answers nothing from its state meanwhile. Ask a daos_server on the majority's side, or restore the network",
            self.cfg.replicas.join(", "),
            silent.map_or("a while".to_string(), |ms| format!("{ms} ms"))
        )))
    }

    fn leader_id(&self) -> Option<u64> {
        self.raft()
            .and_then(|r| r.metrics().borrow().current_leader)
    }

    fn addr_of(&self, id: u64) -> Option<String> {
        self.cfg.replicas.get(id as usize).cloned()
    }

    fn others(&self) -> Vec<String> {
        self.cfg
            .replicas
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.cfg.me)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn db(&self) -> Option<SystemDb> {
        let st = self
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let a = st.read().unwrap_or_else(|p| p.into_inner());
        Some(a.db.clone())
    }

    /// The replica index whose entry resolves to `addr` (`ip:port`).
    fn replica_of(&self, addr: &str) -> Option<usize> {
        let want: SocketAddr = addr.parse().ok()?;
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if resolved.len() != self.cfg.replicas.len() {
            *resolved = vec![Vec::new(); self.cfg.replicas.len()];
        }
        for (i, r) in self.cfg.replicas.iter().enumerate() {
            if resolved[i].is_empty() {
                resolved[i] = r.to_socket_addrs().map(|a| a.collect()).unwrap_or_default();
            }
        }
        // The same address first (hosts may be distinct loopback addresses of one machine),
        // then any loopback address for a loopback replica (`localhost` vs `127.0.0.1`).
        let exact = |a: &SocketAddr| a.port() == want.port() && a.ip() == want.ip();
        let looped = |a: &SocketAddr| {
            a.port() == want.port() && a.ip().is_loopback() && want.ip().is_loopback()
        };
        resolved
            .iter()
            .position(|r| r.iter().any(exact))
            .or_else(|| resolved.iter().position(|r| r.iter().any(looped)))
    }

    async fn forward(&self, addr: &str, cmd: &Command) -> Result<Forwarded, CallError> {
        self.peers
            .call(addr, Method::Propose, cmd, CALL_TIMEOUT)
            .await
    }

    /// Commits `cmd` through the leader, wherever it is.
    async fn write(self: Arc<Self>, cmd: Command) -> Result<Reply, MsError> {
        let deadline = Instant::now() + WRITE_DEADLINE;
        let mut backoff = BACKOFF_START;
        loop {
            let mut hosts: Vec<String> = Vec::new();
            let last: String;
            if let Some(raft) = self.raft() {
                // A leader cut off from the majority writes nothing; a write that a majority
                // does not commit in time is reported as such (it may still take effect).
                self.confirm_leadership(&raft).await?;
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(written) = tokio::time::timeout(left, raft.client_write(cmd.clone())).await
                else {
                    return Err(MsError::Unavailable(format!(
                        "the change was not committed within {} s: a majority of the management service replicas ({}) did not answer; it takes effect if they come back in time to commit it, else not at all",
                        WRITE_DEADLINE.as_secs(),
                        self.cfg.replicas.join(", ")
                    )));
                };
                match written {
                    Ok(resp) => return resp.data.map_err(MsError::Refused),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                        if let Some(n) = f.leader_node {
                            hosts.push(n.addr);
                        }
                        last = "no leader elected yet".into();
                    }
                    Err(e) => last = e.to_string(),
                }
            } else {
                hosts = self.cfg.replicas.clone();
                last = "no replica answered".into();
            }
            let mut last = last;
            let mut hosts = HostQueue::new(hosts);
            while let Some(addr) = hosts.next_host() {
                match self.forward(&addr, &cmd).await {
                    Ok(Forwarded::Applied(o)) => return o.map_err(MsError::Refused),
                    Ok(Forwarded::NotLeader { hint: Some(h) }) => {
                        hosts.prefer(vec![h]);
                        last = format!("{addr}: not the leader");
                    }
                    Ok(Forwarded::NotLeader { .. }) => last = format!("{addr}: not the leader"),
                    Ok(Forwarded::Failed(e)) => last = format!("{addr}: {e}"),
                    Err(e) => last = format!("{addr}: {e}"),
                }
            }
            if Instant::now() + backoff > deadline {
                return Err(MsError::Unavailable(last));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Sends DAOS's Join to the leader, following redirects, until answered or the deadline.
    async fn join(self: Arc<Self>, req: JoinRequest) -> Result<JoinResponse, MsError> {
        use daos_proto::mgmt::JoinReq;
        use daos_proto::mgmt::mgmt_svc_client::MgmtSvcClient;
        let deadline = Instant::now() + JOIN_DEADLINE;
        let mut backoff = BACKOFF_START;
        let msg = JoinReq {
            sys: req.system.clone(),
            uuid: req.uuid.clone(),
            rank: req.rank.unwrap_or(u32::MAX),
            uri: req.uri.clone(),
            nctxs: req.nctxs,
            addr: req.addr.clone(),
            srv_fault_domain: req.fault_domain.clone(),
            idx: req.idx,
            incarnation: req.incarnation,
            ..Default::default()
        };
        loop {
            let mut hosts = HostQueue::new(
                self.leader_id()
                    .and_then(|l| self.addr_of(l))
                    .into_iter()
                    .chain(self.cfg.replicas.iter().cloned()),
            );
            let mut tried: Vec<String> = Vec::new();
            while let Some(addr) = hosts.next_host() {
                let ch = match self.peers.channel(&addr) {
                    Ok(c) => c,
                    Err(e) => {
                        tried.push(format!("{addr}: {e}"));
                        continue;
                    }
                };
                let mut client = MgmtSvcClient::new(ch);
                let call = client.join(self.peers.stamp_set(msg.clone()));
                match tokio::time::timeout(CALL_TIMEOUT, call).await {
                    Err(_) => tried.push(format!("{addr}: no answer within {CALL_TIMEOUT:?}")),
                    Ok(Ok(resp)) => {
                        let r = resp.into_inner();
                        return Ok(JoinResponse {
                            rank: r.rank,
                            map_version: r.map_version,
                            rejoined: req.rank == Some(r.rank),
                        });
                    }
                    Ok(Err(s)) => {
                        if let Some(r) = Redirect::from_status(&s) {
                            hosts.prefer(r.hosts());
                            tried.push(format!("{addr}: {}", s.message()));
                        } else if matches!(
                            s.code(),
                            tonic::Code::Unavailable
                                | tonic::Code::Unknown
                                | tonic::Code::Cancelled
                        ) || s.message().contains("system is uninitialized")
                            || s.message().contains("unavailable")
                        {
                            tried.push(format!("{addr}: {}", s.message()));
                        } else {
                            return Err(MsError::Rejected(s.message().to_string()));
                        }
                    }
                }
            }
            if Instant::now() + backoff > deadline {
                return Err(MsError::Unavailable(tried.join("; ")));
            }
            warn!(
                "join of {} not answered yet ({}); retrying",
                msg.uuid,
                tried.join("; ")
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// The system state from a replica (for servers that are none).
    async fn read_remote(self: Arc<Self>) -> Result<SystemDb, MsError> {
        let mut last = String::from("no replica configured");
        // The leader first: a follower may not have applied the latest commits yet.
        let mut hosts = HostQueue::new(
            self.leader_id()
                .and_then(|l| self.addr_of(l))
                .into_iter()
                .chain(self.cfg.replicas.iter().cloned()),
        );
        while let Some(addr) = hosts.next_host() {
            let addr = &addr;
            match self
                .peers
                .call::<(), Result<SystemDb, String>>(addr, Method::Read, &(), CALL_TIMEOUT)
                .await
            {
                Ok(Ok(db)) => return Ok(db),
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(MsError::Unavailable(last))
    }

    /// Whether the daos_server at `addr` answers a cheap call (any answer counts).
    async fn answers(&self, addr: &str) -> bool {
        use daos_proto::mgmt::LeaderQueryReq;
        use daos_proto::mgmt::mgmt_svc_client::MgmtSvcClient;
        let Ok(ch) = self.peers.channel(addr) else {
            return false;
        };
        let mut c = MgmtSvcClient::new(ch);
        match tokio::time::timeout(
            HOST_PING_TIMEOUT,
            c.leader_query(Peers::stamp(LeaderQueryReq::default())),
        )
        .await
        {
            Ok(Ok(_)) => true,
            Ok(Err(s)) => !matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ),
            Err(_) => false,
        }
    }

    /// Leader housekeeping: the daos_server of every member host is pinged each second; one
    /// that misses [`HOST_MISSES`] in a row has its joined ranks marked `Unresponsive` (with
    /// [`host_lost_info`] as the reason) until its engines rejoin or its daos_server reports
    /// them running.
    async fn watch_hosts(self: Arc<Self>) {
        let mut misses: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            tokio::time::sleep(HOST_PING_PERIOD).await;
            let Some(raft) = self.raft() else { continue };
            if raft.metrics().borrow().state != ServerState::Leader {
                misses.clear();
                continue;
            }
            let Some(db) = self.db() else { continue };
            let mut addrs: Vec<String> = db
                .members
                .iter()
                .map(|m| m.addr.clone())
                .filter(|a| self.cfg.me.is_none() || self.replica_of(a) != self.cfg.me)
                .collect();
            addrs.sort();
            addrs.dedup();
            let pings: Vec<_> = addrs
                .iter()
                .map(|a| {
                    let (me, a) = (self.clone(), a.clone());
                    tokio::spawn(async move { me.answers(&a).await })
                })
                .collect();
            for (addr, ping) in addrs.iter().zip(pings) {
                let alive = ping.await.unwrap_or(false);
                let n = misses.entry(addr.clone()).or_insert(0);
                let was_lost = *n >= HOST_MISSES;
                *n = if alive { 0 } else { *n + 1 };
                let info = host_lost_info(addr);
                let changes: Vec<(u32, MemberState, String)> = if !alive && *n == HOST_MISSES {
                    warn!("management service: {info}; its ranks are Unresponsive");
                    db.members
                        .iter()
                        .filter(|m| m.addr == *addr && m.state == MemberState::Joined)
                        .map(|m| (m.rank, MemberState::Unresponsive, info.clone()))
                        .collect()
                } else if alive && was_lost {
                    // Its engines rejoin, or its daos_server reports them alive again.
                    info!("management service: daos_server at {addr} answers again");
                    Vec::new()
                } else {
                    Vec::new()
                };
                for (rank, state, info) in changes {
                    if let Err(e) = raft
                        .client_write(Command::SetState { rank, state, info })
                        .await
                    {
                        warn!("management service: rank {rank}: {e}");
                    }
                }
            }
        }
    }

    /// Leader housekeeping: a replica whose server has a joined engine becomes a voter.
    async fn manage_voters(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Some(raft) = self.raft() else { continue };
            let m = raft.metrics().borrow().clone();
            if m.state != ServerState::Leader {
                continue;
            }
            let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
            let Some(db) = self.db() else { continue };
            let wanted: BTreeSet<u64> = db
                .members
                .iter()
                .filter_map(|mem| self.replica_of(&mem.addr))
                .map(|i| i as u64)
                .collect();
            for id in wanted.difference(&voters) {
                let Some(addr) = self.addr_of(*id) else {
                    continue;
                };
                info!("management service: adding replica {addr} as a voter");
                if let Err(e) = raft
                    .add_learner(*id, BasicNode { addr: addr.clone() }, true)
                    .await
                {
                    warn!("management service: cannot add {addr} as a learner yet: {e}");
                    continue;
                }
                let ids: BTreeSet<u64> = [*id].into();
                if let Err(e) = raft
                    .change_membership(ChangeMembers::AddVoterIds(ids), false)
                    .await
                {
                    warn!("management service: cannot make {addr} a voter yet: {e}");
                }
            }
        }
    }
}

/// The reason a member shows when the leader lost its daos_server.
pub fn host_lost_info(addr: &str) -> String {
    format!("daos_server at {addr} does not answer")
}

impl MsNode {
    /// A handle on the management service; a replica's Raft node starts with
    /// [`MsNode::start_replica`] (once its storage is there).
    pub fn new(cfg: MsConfig) -> Result<MsNode, MsError> {
        if cfg.me.is_some() && cfg.dir.is_none() {
            return Err(MsError::Raft(
                "a replica needs a control_raft directory (control_metadata.path or engine 0's scm_mount)".into(),
            ));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ms")
            .enable_all()
            .build()
            .map_err(|e| MsError::Raft(format!("cannot start the runtime: {e}")))?;
        let set_key = replica_set_key(&cfg.replicas);
        let peers = Arc::new(Peers::new(cfg.tls.clone()).announcing(&set_key));
        let pools = Arc::new(pool::PoolServices::new(
            cfg.pool_dir.clone(),
            peers.clone(),
            cfg.timing,
        ));
        let inner = Arc::new(Inner {
            peers,
            pools,
            cfg,
            raft: RwLock::new(None),
            state: RwLock::new(None),
            resolved: Mutex::new(Vec::new()),
            set_key,
            refused_sets: Mutex::new(BTreeSet::new()),
        });
        Ok(MsNode {
            inner,
            rt: Some(rt),
            started: Mutex::new(false),
        })
    }

    pub fn config(&self) -> &MsConfig {
        &self.inner.cfg
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        // Set in new(), taken only in drop().
        self.rt
            .as_ref()
            .unwrap_or_else(|| unreachable!("runtime gone before drop"))
    }

    /// Runs `f` on the node's runtime and waits for it (from any thread, also one of another
    /// runtime).
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt().spawn(async move {
            let _ = tx.send(f.await);
        });
        match rx.recv() {
            Ok(v) => v,
            Err(_) => unreachable!("the management service runtime dropped a task"),
        }
    }

    /// Starts this replica's Raft node (idempotent); the bootstrap replica forms a new system
    /// if its `control_raft/` is empty.
    pub fn start_replica(&self) -> Result<(), MsError> {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if *started {
            return Ok(());
        }
        let cfg = &self.inner.cfg;
        let (Some(me), Some(dir)) = (cfg.me, cfg.dir.clone()) else {
            return Ok(());
        };
        let storage = |reason: String| MsError::Storage {
            path: dir.clone(),
            reason,
        };
        let log = log::LogStore::open(&dir).map_err(storage)?;
        let sm = sm::StateMachine::open(&dir, &cfg.system).map_err(storage)?;
        let fresh = log.is_empty();
        let shared = sm.shared();
        let config = cfg.timing.raft_config(&cfg.system)?;
        let network = net::Network {
            peers: self.inner.peers.clone(),
            group: String::new(),
        };
        let me_id = me as u64;
        let bootstrap_node = BasicNode {
            addr: cfg.replicas[me].clone(),
        };
        let raft = self
            .run(async move {
                let raft = Raft::new(me_id, config, network, log, sm).await?;
                Ok::<_, openraft::error::Fatal<u64>>(raft)
            })
            .map_err(|e| MsError::Raft(e.to_string()))?;
        *self.inner.raft.write().unwrap_or_else(|p| p.into_inner()) = Some(raft.clone());
        *self.inner.state.write().unwrap_or_else(|p| p.into_inner()) = Some(shared);
        if fresh && me == 0 {
            info!(
                "management service: bootstrapping a new system {:?} on this replica",
                cfg.system
            );
            let r = raft.clone();
            self.run(async move { r.initialize(BTreeMap::from([(0u64, bootstrap_node)])).await })
                .map_err(|e| MsError::Raft(e.to_string()))?;
        }
        // A sole voter need not wait an election timeout to lead again.
        let voters: Vec<u64> = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        if voters == [me_id] {
            let r = raft.clone();
            let _ = self.run(async move { r.trigger().elect().await });
        }
        self.rt().spawn(self.inner.clone().manage_voters());
        self.rt().spawn(self.inner.clone().watch_hosts());
        info!(
            "management service replica {} of {} started ({})",
            me,
            cfg.replicas.len(),
            dir.display()
        );
        *started = true;
        Ok(())
    }

    pub fn is_replica(&self) -> bool {
        self.inner.cfg.me.is_some()
    }

    /// The leader's address, if one is known here.
    pub fn leader(&self) -> Option<String> {
        self.inner.leader_id().and_then(|l| self.inner.addr_of(l))
    }

    /// True while this replica leads and holds its lease: a majority of the replicas
    /// acknowledged it within the shortest election timeout, so no other replica can have
    /// been elected since (a leader cut off from the others keeps openraft's `Leader` state
    /// until it hears of a newer term, and must not act on it meanwhile: DAOS's leader steps
    /// down when its lease lapses). Leader-only work checks this at each step.
    pub fn is_leader(&self) -> bool {
        self.inner.raft().is_some_and(|r| {
            let metrics = r.metrics();
            let m = metrics.borrow();
            m.state == ServerState::Leader && self.holds_lease(&m)
        })
    }

    fn holds_lease(&self, m: &openraft::RaftMetrics<u64, openraft::BasicNode>) -> bool {
        self.inner.holds_lease(m)
    }

    /// Waits until this replica knows a leader (or `timeout` passes); returns it.
    pub fn wait_leader(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// DAOS's checkReplicaRequest: reads are served by any started replica.
    pub fn check_replica(&self) -> Result<(), MsError> {
        if !self.is_replica() {
            return Err(MsError::NotReplica {
                replicas: self.inner.cfg.replicas.clone(),
            });
        }
        if self.inner.raft().is_none() {
            return Err(MsError::NotStarted);
        }
        Ok(())
    }

    /// DAOS's checkLeaderRequest: leader-only requests on the leader only, and only while
    /// it leads a majority: a leader whose lease lapsed confirms its leadership with a round
    /// of heartbeats first (at most the longest election timeout), and a leader cut off from
    /// the majority answers that it is, never from its possibly stale state.
    pub fn check_leader(&self) -> Result<(), MsError> {
        self.check_replica()?;
        if self.is_leader() {
            return Ok(());
        }
        let raft = self.inner.raft();
        if let Some(raft) = raft.filter(|r| r.metrics().borrow().state == ServerState::Leader) {
            let inner = self.inner.clone();
            return self.run(async move { inner.confirm_leadership(&raft).await });
        }
        Err(MsError::NotLeader {
            hint: self.leader().unwrap_or_default(),
            replicas: self.inner.others(),
        })
    }

    /// The redirect a client should follow for `e`, if it is one.
    pub fn redirect(e: &MsError) -> Option<Redirect> {
        match e {
            MsError::NotLeader { hint, replicas } => Some(Redirect::NotLeader {
                hint: hint.clone(),
                replicas: replicas.clone(),
            }),
            MsError::NotReplica { replicas } => Some(Redirect::NotReplica {
                replicas: replicas.clone(),
            }),
            _ => None,
        }
    }

    /// This server's replica set as it announces it ([`replica_set_key`]).
    pub fn replica_set(&self) -> &str {
        &self.inner.set_key
    }

    /// Refuses a server-to-server call (Raft, join) from a server whose announced replica set
    /// differs from this one's; the first refusal of each set is logged.
    pub fn check_peer_set(&self, md: &tonic::metadata::MetadataMap) -> Result<(), String> {
        let theirs = md
            .get(net::REPLICA_SET_HEADER)
            .map(|v| v.to_str().unwrap_or("<not text>"));
        compare_replica_sets(&self.inner.set_key, theirs).inspect_err(|e| {
            let mut seen = self
                .inner
                .refused_sets
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if seen.insert(theirs.unwrap_or_default().to_string()) {
                tracing::error!("refusing calls of another server: {e}");
            }
        })
    }

    /// The replica entry `addr` (`ip:port`) belongs to, if any.
    pub fn replica_of(&self, addr: &str) -> Option<usize> {
        self.inner.replica_of(addr)
    }

    /// Applies a join on the leader (the handler of DAOS's Join).
    pub fn join_local(&self, req: &JoinRequest) -> Result<JoinResponse, MsError> {
        self.check_leader()?;
        match self.write(Command::Join(req.clone()))? {
            Reply::Joined(j) => Ok(j),
            other => Err(MsError::Raft(format!("join answered {other:?}"))),
        }
    }

    fn write(&self, cmd: Command) -> Result<Reply, MsError> {
        self.run(self.inner.clone().write(cmd))
    }

    /// The system state as this server sees it.
    pub fn db(&self) -> Result<SystemDb, MsError> {
        if let Some(db) = self.inner.db() {
            return Ok(db);
        }
        if self.is_replica() {
            return Err(MsError::NotStarted);
        }
        self.run(self.inner.clone().read_remote())
    }

    /// Raft status for `leader-query` and `ms status`: term, last applied index, voters.
    pub fn status(&self) -> Option<(u64, u64, Vec<u64>)> {
        let raft = self.inner.raft()?;
        let m = raft.metrics().borrow().clone();
        Some((
            m.current_term,
            m.last_applied.map_or(0, |l| l.index),
            m.membership_config.membership().voter_ids().collect(),
        ))
    }

    // Handlers of raft.RaftSvc (the caller checked the certificate).

    /// Serves one `raft.RaftSvc` call: `data` is the JSON request, the answer JSON.
    pub fn serve(&self, method: Method, data: Vec<u8>) -> Result<Vec<u8>, String> {
        let inner = self.inner.clone();
        self.run(async move { serve(inner, method, data).await })
    }

    /// Serves a `raft.RaftSvc` call for Raft group `group`: the management service (empty)
    /// or a pool's service (its UUID), including starting and stopping pool replicas.
    pub fn serve_group(
        &self,
        group: String,
        method: Method,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        if group.is_empty() {
            return self.serve(method, data);
        }
        let pools = self.inner.pools.clone();
        self.run(async move {
            let en = |r: Result<(), MsError>| {
                serde_json::to_vec(&r.map_err(|e| e.to_string())).map_err(|e| e.to_string())
            };
            match method {
                Method::Start => {
                    let m: pool::Members =
                        serde_json::from_slice(&data).map_err(|e| format!("Start: {e}"))?;
                    en(pools.start(&group, m).await)
                }
                Method::Stop => {
                    pools.stop(&group).await;
                    en(Ok(()))
                }
                m => pools.serve(&group, m, &data).await,
            }
        })
    }

    /// This server's pool service replicas.
    pub fn pool_services(&self) -> Arc<pool::PoolServices> {
        self.inner.pools.clone()
    }

    /// Runs `f` with this server's pool service replicas on the node's runtime, blocking.
    pub fn with_pools<T: Send + 'static, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(Arc<pool::PoolServices>) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let fut = f(self.inner.pools.clone());
        self.run(fut)
    }
}

async fn serve(inner: Arc<Inner>, method: Method, data: Vec<u8>) -> Result<Vec<u8>, String> {
    use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
    fn de<T: serde::de::DeserializeOwned>(data: &[u8], what: &str) -> Result<T, String> {
        serde_json::from_slice(data).map_err(|e| format!("{what}: {e}"))
    }
    fn en<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(v).map_err(|e| e.to_string())
    }
    if let Method::Read = method {
        let r: Result<SystemDb, String> = inner
            .db()
            .ok_or_else(|| "system is uninitialized (storage format required?)".to_string());
        return en(&r);
    }
    let Some(raft) = inner.raft() else {
        return Err(if inner.cfg.me.is_some() {
            "system is uninitialized (storage format required?)".into()
        } else {
            format!(
                "not a DAOS Management Service replica (try one of {})",
                inner.cfg.replicas.join(",")
            )
        });
    };
    match method {
        Method::AppendEntries => {
            let req: AppendEntriesRequest<TypeConfig> = de(&data, "AppendEntries")?;
            en(&raft.append_entries(req).await)
        }
        Method::Vote => {
            let req: VoteRequest<u64> = de(&data, "Vote")?;
            en(&raft.vote(req).await)
        }
        Method::InstallSnapshot => {
            let req: InstallSnapshotRequest<TypeConfig> = de(&data, "InstallSnapshot")?;
            en(&raft.install_snapshot(req).await)
        }
        Method::Propose => {
            let cmd: Command = de(&data, "Propose")?;
            let answer = match raft.client_write(cmd).await {
                Ok(resp) => Forwarded::Applied(resp.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Forwarded::NotLeader {
                        hint: f.leader_node.map(|n| n.addr),
                    }
                }
                Err(e) => Forwarded::Failed(e.to_string()),
            };
            en(&answer)
        }
        Method::Read => unreachable!("answered above"),
        Method::Start | Method::Stop => {
            Err("Start and Stop are for pool services (a pool UUID as the group)".into())
        }
    }
}

impl MsNode {
    /// Stops this replica's Raft node (it neither votes nor leads any more) and this
    /// server's pool service replicas; reads still answer from the state it had.
    pub fn shutdown(&self) {
        let raft = self
            .inner
            .raft
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(raft) = raft {
            let _ = self.run(async move { raft.shutdown().await });
        }
        let pools = self.inner.pools.clone();
        self.run(async move { pools.shutdown().await });
    }
}

impl Drop for MsNode {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(rt) = self.rt.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }
}

fn warn_err<T: Default>(what: &str, r: Result<T, MsError>) -> T {
    r.unwrap_or_else(|e| {
        warn!("management service: {what}: {e}");
        T::default()
    })
}

impl ManagementService for MsNode {
    fn join(&self, req: &JoinRequest) -> Result<JoinResponse, MsError> {
        self.run(self.inner.clone().join(req.clone()))
    }

    fn set_state(&self, rank: u32, state: MemberState, info: &str) -> Result<(), MsError> {
        self.write(Command::SetState {
            rank,
            state,
            info: info.into(),
        })
        .map(|_| ())
    }

    fn members(&self) -> Vec<Member> {
        warn_err("reading members", self.db().map(|d| d.members))
    }

    fn member_remove(&self, rank: u32) -> Result<Vec<PoolRecord>, MsError> {
        match self.write(Command::MemberRemove { rank })? {
            Reply::Removed(p) => Ok(p),
            _ => Ok(Vec::new()),
        }
    }

    fn map_version(&self) -> u32 {
        warn_err("reading the map version", self.db().map(|d| d.map_version))
    }

    fn pool_add(&self, pool: PoolRecord) -> Result<(), MsError> {
        self.write(Command::PoolAdd(pool)).map(|_| ())
    }

    fn pool_remove(&self, uuid: &str) -> Result<(), MsError> {
        self.write(Command::PoolRemove { uuid: uuid.into() })
            .map(|_| ())
    }

    fn pools(&self) -> Vec<PoolRecord> {
        warn_err("reading pools", self.db().map(|d| d.pools))
    }

    fn pools_checked(&self) -> Result<Vec<PoolRecord>, MsError> {
        self.db().map(|d| d.pools)
    }

    fn pool_find(&self, id: &str) -> Option<PoolRecord> {
        let hit = |db: SystemDb| db.pools.into_iter().find(|p| p.label == id || p.uuid == id);
        let local = self.db().ok().and_then(hit);
        if local.is_some() || self.is_leader() {
            return local;
        }
        // A follower may not have applied a pool the leader just committed (a client that
        // created a pool through the leader and uses it through this server at once): ask
        // the leader before saying there is no such pool.
        self.run(self.inner.clone().read_remote())
            .ok()
            .and_then(hit)
    }

    fn apply(&self, cmd: Command) -> Result<Reply, MsError> {
        self.write(cmd)
    }

    fn is_leader(&self) -> bool {
        MsNode::is_leader(self)
    }

    fn storage_ready(&self) {
        if let Err(e) = self.start_replica() {
            tracing::error!("management service: {e}");
        }
        let pools = self.inner.pools.clone();
        self.run(async move { pools.reopen().await });
    }

    fn pool_services(&self) -> Option<Arc<pool::PoolServices>> {
        Some(self.inner.pools.clone())
    }

    fn pool_svc_start(
        &self,
        addr: &str,
        local: bool,
        uuid: &str,
        members: &pool::Members,
    ) -> Result<(), MsError> {
        let pools = self.inner.pools.clone();
        let (addr, uuid, members) = (addr.to_string(), uuid.to_string(), members.clone());
        self.run(async move {
            if local {
                pools.start(&uuid, members).await
            } else {
                pools.start_remote(&addr, &uuid, &members).await
            }
        })
    }

    fn pool_svc_stop(&self, addr: &str, local: bool, uuid: &str) -> Result<(), MsError> {
        let pools = self.inner.pools.clone();
        let (addr, uuid) = (addr.to_string(), uuid.to_string());
        self.run(async move {
            if local {
                pools.stop(&uuid).await;
                Ok(())
            } else {
                pools.stop_remote(&addr, &uuid).await
            }
        })
    }
}

#[cfg(test)]
mod replica_list_tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_order_gives_one_canonical_list_and_one_bootstrap_replica() {
        // Issue #23 item 13: the bootstrap replica must not depend on list order.
        let want = list(&["127.0.0.1:10011", "127.0.0.1:10012", "127.0.0.2:10001"]);
        for order in [
            ["127.0.0.2:10001", "127.0.0.1:10012", "127.0.0.1:10011"],
            ["127.0.0.1:10012", "127.0.0.2:10001", "127.0.0.1:10011"],
            ["127.0.0.1:10011", "127.0.0.1:10012", "127.0.0.2:10001"],
        ] {
            let l = list(&order);
            assert_eq!(canonical_replicas(&l), Ok(want.clone()), "{order:?}");
            assert_eq!(replica_set_key(&l), want.join(","), "{order:?}");
        }
        // The set is compared as addresses: `localhost` is 127.0.0.1.
        assert_eq!(
            replica_set_key(&list(&["localhost:10011", "127.0.0.1:10012"])),
            "127.0.0.1:10011,127.0.0.1:10012"
        );
    }

    #[test]
    fn servers_sharing_an_address_are_told_apart_by_port() {
        // Issue #23 item 9: three servers on 127.0.0.1 with their own control ports.
        let l = list(&["127.0.0.1:10013", "127.0.0.1:10011", "127.0.0.1:10012"]);
        let c = canonical_replicas(&l).expect("distinct");
        let ips = [IpAddr::from([127, 0, 0, 1])];
        for (port, me) in [(10011, 0), (10012, 1), (10013, 2)] {
            assert_eq!(local_replica(&c, port, None, &ips), Some(me), "{port}");
        }
        assert_eq!(local_replica(&c, 10014, None, &ips), None);
    }

    #[test]
    fn entries_that_cannot_be_told_apart_are_refused_naming_both() {
        for (l, a, b) in [
            (["127.0.0.1:10011", "127.0.0.1:10011"], 0, 1),
            (["localhost:10011", "127.0.0.1:10011"], 0, 1),
        ] {
            let l = list(&l);
            let e = canonical_replicas(&l).expect_err("duplicate");
            assert!(
                e.message
                    .contains(&format!("mgmt_svc_replicas[{a}] {:?}", l[a]))
                    && e.message
                        .contains(&format!("mgmt_svc_replicas[{b}] {:?}", l[b]))
                    && e.message.contains("127.0.0.1:10011")
                    && e.message.contains("cannot be told apart"),
                "{}",
                e.message
            );
            assert!(e.fix.contains("distinct ports"), "{}", e.fix);
        }
        let e = canonical_replicas(&list(&["no-such-host.invalid:10001"])).expect_err("bad");
        assert!(
            e.message.contains("mgmt_svc_replicas[0]") && e.message.contains("does not resolve"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_peer_with_another_replica_set_is_refused_naming_both_sets() {
        let ours = "127.0.0.1:10011,127.0.0.1:10012,127.0.0.1:10013";
        assert_eq!(compare_replica_sets(ours, None), Ok(()));
        assert_eq!(compare_replica_sets(ours, Some(ours)), Ok(()));
        let theirs = "127.0.0.1:10011";
        let e = compare_replica_sets(ours, Some(theirs)).expect_err("differ");
        assert!(
            e.contains(&format!("[{theirs}]"))
                && e.contains(&format!("[{ours}]"))
                && e.contains("same mgmt_svc_replicas"),
            "{e}"
        );
    }
}
