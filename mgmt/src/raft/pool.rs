//! Pool services: per pool, a Raft group (openraft) among the daos_servers of the pool's
//! service ranks, holding the pool's containers (labels, UUIDs, properties). Each group uses
//! the management service's log store, state machine and transport (`raft.RaftSvc` with the
//! pool's UUID as the group), so it survives restarts the same way; its state is a
//! [`SystemDb`] whose only part in use is `containers`.
//!
//! - A group is created with all its replicas as voters (the first one initializes it); the
//!   others start when the management service leader asks their servers (`RaftSvc/Start`).
//! - Its log and snapshot live in `pool_svc/<uuid>/` beside `control_raft/`, with
//!   `members.json` (replica addresses and this server's position), so a restarted server
//!   reopens its replicas.
//! - Reads and writes are served by the group's leader; another replica answers with a
//!   not-leader error and a hint, which clients follow.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, ServerState};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::net::{Method, Network, Peers};
use super::{Timing, TypeConfig, log, sm};
use crate::MsError;
use crate::state::{Command, Reply, SystemDb};

/// How long a leader may take to confirm it still leads before a read.
const READ_CONFIRM: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a leader may go without a majority of its replicas acknowledging it before its
/// service is taken as having lost its majority (well past an election timeout).
const QUORUM_LOST: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a write waits for a majority to commit it.
const WRITE_COMMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a pool service's replicas are and which one this server runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// The replicas' control addresses (`host:port`); node id = position.
    pub replicas: Vec<String>,
    /// This server's position in `replicas`.
    pub me: usize,
}

struct Replica {
    raft: Raft<TypeConfig>,
    state: Arc<RwLock<sm::Applied>>,
    members: Members,
    dir: PathBuf,
}

/// The pool service replicas this server runs.
pub struct PoolServices {
    base: Option<PathBuf>,
    peers: Arc<Peers>,
    timing: Timing,
    groups: Mutex<BTreeMap<String, Arc<Replica>>>,
}

/// Why a pool service request was not served.
#[derive(Debug, thiserror::Error)]
pub enum PoolSvcError {
    #[error("this server runs no replica of pool {0}'s service")]
    NoReplica(String),
    #[error("not the leader of pool {pool}'s service (try {hint} or one of {})", .replicas.join(","))]
    NotLeader {
        pool: String,
        hint: String,
        replicas: Vec<String>,
    },
    /// The leader has not heard from a majority of the service's replicas lately: nothing
    /// can be committed until enough of them are back.
    #[error(
        "pool {pool}'s service has lost its majority: its leader {leader} has heard from no majority of its {} replicas ({}) for {} ms{}; bring back the daos_servers of its replicas (the service resumes by itself when a majority answers)",
        .replicas.len(),
        .replicas.join(", "),
        .silent_ms,
        if .behind.is_empty() { String::new() } else { format!(" (not in step: {})", .behind.join(", ")) }
    )]
    NoMajority {
        pool: String,
        leader: String,
        replicas: Vec<String>,
        /// Replicas whose log is behind the leader's.
        behind: Vec<String>,
        silent_ms: u64,
    },
    /// A write was sent to the replicas but no majority committed it in time: it is applied
    /// if a majority comes back, or never.
    #[error(
        "pool {pool}'s service did not commit the change within {} s: a majority of its replicas ({}) did not answer; it takes effect if they come back in time to commit it, else not at all: check with a query before doing it again",
        WRITE_COMMIT.as_secs(),
        .replicas.join(", ")
    )]
    NotCommitted { pool: String, replicas: Vec<String> },
    #[error(transparent)]
    Ms(#[from] MsError),
}

impl PoolServices {
    /// Replicas kept under `base` (`pool_svc/`; none without storage).
    pub fn new(base: Option<PathBuf>, peers: Arc<Peers>, timing: Timing) -> PoolServices {
        PoolServices {
            base,
            peers,
            timing,
            groups: Mutex::new(BTreeMap::new()),
        }
    }

    fn get(&self, uuid: &str) -> Option<Arc<Replica>> {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uuid)
            .cloned()
    }

    /// Starts this server's replica of pool `uuid`'s service (idempotent).
    pub async fn start(&self, uuid: &str, members: Members) -> Result<(), MsError> {
        if self.get(uuid).is_some() {
            return Ok(());
        }
        if !is_uuid(uuid) {
            return Err(MsError::Rejected(format!(
                "pool service: {uuid:?} is not a pool UUID"
            )));
        }
        if members.me >= members.replicas.len() {
            return Err(MsError::Rejected(format!(
                "pool {uuid} service: position {} is outside its {} replicas",
                members.me,
                members.replicas.len()
            )));
        }
        let Some(base) = &self.base else {
            return Err(MsError::NotStarted);
        };
        let dir = base.join(uuid);
        let storage = |reason: String| MsError::Storage {
            path: dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&dir).map_err(|e| storage(e.to_string()))?;
        let members_file = dir.join("members.json");
        let body = serde_json::to_vec(&members).map_err(|e| storage(e.to_string()))?;
        daos_hw::private::write(&members_file, &body).map_err(|e| storage(e.to_string()))?;
        let log = log::LogStore::open(&dir).map_err(storage)?;
        let sm = sm::StateMachine::open(&dir, uuid).map_err(storage)?;
        let fresh = log.is_empty();
        let state = sm.shared();
        let config = self.timing.raft_config(&format!("pool-{uuid}"))?;
        let network = Network {
            peers: self.peers.clone(),
            group: uuid.to_string(),
        };
        let raft = Raft::new(members.me as u64, config, network, log, sm)
            .await
            .map_err(|e| MsError::Raft(e.to_string()))?;
        if fresh && members.me == 0 {
            let nodes: BTreeMap<u64, BasicNode> = members
                .replicas
                .iter()
                .enumerate()
                .map(|(i, a)| (i as u64, BasicNode { addr: a.clone() }))
                .collect();
            if let Err(e) = raft.initialize(nodes).await {
                warn!("pool {uuid} service: initialize: {e}");
            }
        }
        // A sole voter need not wait an election timeout to lead.
        if members.replicas.len() == 1 {
            let _ = raft.trigger().elect().await;
        }
        info!(
            "pool {uuid} service: replica {} of {} started ({})",
            members.me,
            members.replicas.len(),
            dir.display()
        );
        // Say when this replica leads (DAOS's rdb logs its leadership too).
        let mut metrics = raft.metrics();
        let (group, me) = (uuid.to_string(), members.me);
        tokio::spawn(async move {
            let mut leading = false;
            loop {
                let (now, term) = {
                    let m = metrics.borrow();
                    (m.state == ServerState::Leader, m.current_term)
                };
                if now && !leading {
                    info!("pool {group} service: replica {me} is the leader (term {term})");
                }
                leading = now;
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                uuid.to_string(),
                Arc::new(Replica {
                    raft,
                    state,
                    members,
                    dir,
                }),
            );
        Ok(())
    }

    /// Reopens the replicas found under `pool_svc/` (after a restart).
    pub async fn reopen(&self) {
        let Some(base) = &self.base else { return };
        let Ok(dirs) = std::fs::read_dir(base) else {
            return;
        };
        for d in dirs.flatten() {
            let uuid = d.file_name().to_string_lossy().to_string();
            let members = std::fs::read(d.path().join("members.json"))
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Members>(&b).map_err(|e| e.to_string()));
            match members {
                Ok(m) => {
                    if let Err(e) = self.start(&uuid, m).await {
                        warn!("pool {uuid} service: cannot reopen: {e}");
                    }
                }
                Err(e) => warn!(
                    "pool service replica {}: members.json unreadable ({e}); fix: remove the directory if the pool is gone",
                    d.path().display()
                ),
            }
        }
    }

    /// Stops this server's replica of pool `uuid`'s service and removes its log.
    pub async fn stop(&self, uuid: &str) {
        let r = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uuid);
        let dir = match (&r, &self.base) {
            (Some(r), _) => Some(r.dir.clone()),
            (None, Some(b)) => Some(b.join(uuid)),
            (None, None) => None,
        };
        if let Some(r) = r {
            let _ = r.raft.shutdown().await;
        }
        if let Some(d) = dir
            && d.exists()
        {
            if let Err(e) = std::fs::remove_dir_all(&d) {
                warn!("pool {uuid} service: cannot remove {}: {e}", d.display());
            } else {
                info!("pool {uuid} service: replica removed");
            }
        }
    }

    /// Stops every replica (the server is stopping); their logs stay.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Replica>> =
            std::mem::take(&mut *self.groups.lock().unwrap_or_else(|p| p.into_inner()))
                .into_values()
                .collect();
        for r in all {
            let _ = r.raft.shutdown().await;
        }
    }

    /// Serves a Raft message for group `uuid`.
    pub async fn serve(&self, uuid: &str, method: Method, data: &[u8]) -> Result<Vec<u8>, String> {
        use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
        fn de<T: serde::de::DeserializeOwned>(data: &[u8], what: &str) -> Result<T, String> {
            serde_json::from_slice(data).map_err(|e| format!("{what}: {e}"))
        }
        fn en<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
            serde_json::to_vec(v).map_err(|e| e.to_string())
        }
        let Some(r) = self.get(uuid) else {
            return Err(format!(
                "system is uninitialized: no replica of pool {uuid}'s service here (yet)"
            ));
        };
        match method {
            Method::AppendEntries => {
                let req: AppendEntriesRequest<TypeConfig> = de(data, "AppendEntries")?;
                en(&r.raft.append_entries(req).await)
            }
            Method::Vote => {
                let req: VoteRequest<u64> = de(data, "Vote")?;
                en(&r.raft.vote(req).await)
            }
            Method::InstallSnapshot => {
                let req: InstallSnapshotRequest<TypeConfig> = de(data, "InstallSnapshot")?;
                en(&r.raft.install_snapshot(req).await)
            }
            m => Err(format!("{m:?} is not a pool service message")),
        }
    }

    fn leader_of(&self, uuid: &str) -> Result<Arc<Replica>, PoolSvcError> {
        let r = self
            .get(uuid)
            .ok_or_else(|| PoolSvcError::NoReplica(uuid.to_string()))?;
        let m = r.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            return self.with_majority(uuid, r, &m);
        }
        let hint = m
            .current_leader
            .and_then(|l| r.members.replicas.get(l as usize).cloned())
            .unwrap_or_default();
        Err(PoolSvcError::NotLeader {
            pool: uuid.to_string(),
            hint,
            replicas: r.members.replicas.clone(),
        })
    }

    /// `r` (leading pool `uuid`'s service) if a majority of its replicas acknowledged it
    /// within [`QUORUM_LOST`]; a single replica is its own majority.
    fn with_majority(
        &self,
        uuid: &str,
        r: Arc<Replica>,
        m: &openraft::RaftMetrics<u64, BasicNode>,
    ) -> Result<Arc<Replica>, PoolSvcError> {
        if r.members.replicas.len() < 2 {
            return Ok(r);
        }
        // None: elected a moment ago, no acknowledgement yet (a write's commit timeout
        // covers a leader that never gets one).
        let silent = m.millis_since_quorum_ack.unwrap_or(0);
        if silent <= QUORUM_LOST.as_millis() as u64 {
            return Ok(r);
        }
        let applied = m.last_log_index.unwrap_or(0);
        let behind = m
            .replication
            .iter()
            .flatten()
            .filter(|(id, matched)| {
                **id as usize != r.members.me && matched.is_none_or(|l| l.index < applied)
            })
            .filter_map(|(id, _)| r.members.replicas.get(*id as usize).cloned())
            .collect();
        Err(PoolSvcError::NoMajority {
            pool: uuid.to_string(),
            leader: r
                .members
                .replicas
                .get(r.members.me)
                .cloned()
                .unwrap_or_default(),
            replicas: r.members.replicas.clone(),
            behind,
            silent_ms: silent,
        })
    }

    /// Applies `cmd` to pool `uuid`'s service (this replica must lead it, with a majority);
    /// waits at most [`WRITE_COMMIT`] for the commit.
    pub async fn write(&self, uuid: &str, cmd: Command) -> Result<Reply, PoolSvcError> {
        let r = self.leader_of(uuid)?;
        let Ok(written) = tokio::time::timeout(WRITE_COMMIT, r.raft.client_write(cmd)).await else {
            return Err(PoolSvcError::NotCommitted {
                pool: uuid.to_string(),
                replicas: r.members.replicas.clone(),
            });
        };
        match written {
            Ok(resp) => resp.data.map_err(|e| PoolSvcError::Ms(MsError::Refused(e))),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(PoolSvcError::NotLeader {
                    pool: uuid.to_string(),
                    hint: f.leader_node.map(|n| n.addr).unwrap_or_default(),
                    replicas: r.members.replicas.clone(),
                })
            }
            Err(e) => Err(PoolSvcError::Ms(MsError::Raft(e.to_string()))),
        }
    }

    /// Pool `uuid`'s service state as its leader has applied it (the leader first confirms
    /// it still leads, so a deposed leader answers nothing stale).
    pub async fn read(&self, uuid: &str) -> Result<SystemDb, PoolSvcError> {
        let r = self.leader_of(uuid)?;
        let confirmed = tokio::time::timeout(READ_CONFIRM, r.raft.ensure_linearizable()).await;
        match confirmed {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(PoolSvcError::Ms(MsError::Unavailable(format!(
                    "pool {uuid} service: {e}"
                ))));
            }
            Err(_) => {
                return Err(PoolSvcError::Ms(MsError::Unavailable(format!(
                    "pool {uuid} service: leadership not confirmed within {READ_CONFIRM:?}"
                ))));
            }
        }
        Ok(r.state.read().unwrap_or_else(|p| p.into_inner()).db.clone())
    }

    /// Pool `uuid`'s service state as this replica has applied it, leader or not: for reads
    /// when the service has no leader (a majority of its replicas is gone). It may miss the
    /// latest changes.
    pub fn read_any(&self, uuid: &str) -> Result<SystemDb, PoolSvcError> {
        let r = self
            .get(uuid)
            .ok_or_else(|| PoolSvcError::NoReplica(uuid.to_string()))?;
        Ok(r.state.read().unwrap_or_else(|p| p.into_inner()).db.clone())
    }

    /// The members of this server's replica of pool `uuid`'s service, if it runs one.
    pub fn members(&self, uuid: &str) -> Option<Members> {
        self.get(uuid).map(|r| r.members.clone())
    }

    /// Asks the server at `addr` to start its replica of pool `uuid`'s service.
    pub async fn start_remote(
        &self,
        addr: &str,
        uuid: &str,
        members: &Members,
    ) -> Result<(), MsError> {
        let r: Result<(), String> = self
            .peers
            .call_group(
                addr,
                uuid,
                Method::Start,
                members,
                std::time::Duration::from_secs(10),
            )
            .await
            .map_err(|e| MsError::Unavailable(format!("{addr}: {e}")))?;
        r.map_err(MsError::Rejected)
    }

    /// Asks the server at `addr` to stop its replica of pool `uuid`'s service.
    pub async fn stop_remote(&self, addr: &str, uuid: &str) -> Result<(), MsError> {
        let r: Result<(), String> = self
            .peers
            .call_group(
                addr,
                uuid,
                Method::Stop,
                &(),
                std::time::Duration::from_secs(10),
            )
            .await
            .map_err(|e| MsError::Unavailable(format!("{addr}: {e}")))?;
        r.map_err(MsError::Rejected)
    }
}

/// `8-4-4-4-12` hex digits (the form pool directories and groups are named by).
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}
