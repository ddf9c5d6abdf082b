//! The management service's membership: which engines (ranks) form the system and in what
//! state. Behind [`ManagementService`] so a replicated (Raft) implementation can replace the
//! single-replica one without touching its callers.
//!
//! Ranks: the first engine to join the bootstrap replica gets rank 0, later ones 1, 2, ...; an
//! engine that joins again with the same UUID keeps its rank. The single replica persists the
//! membership as JSON, replaced atomically on every change, so a daos_server restart keeps it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Member states, with DAOS's names and bit values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    Unknown = 0x0,
    AwaitFormat = 0x1,
    Starting = 0x2,
    Ready = 0x4,
    Joined = 0x8,
    Stopping = 0x10,
    Stopped = 0x20,
    Excluded = 0x40,
    Errored = 0x80,
    Unresponsive = 0x100,
    AdminExcluded = 0x200,
    CheckerStarted = 0x400,
}

impl MemberState {
    /// The name a member state travels as: DAOS's, lower case (`joined`, `awaitformat`);
    /// tools print DAOS's display names (`Joined`, `AwaitFormat`).
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Unknown => "unknown",
            MemberState::AwaitFormat => "awaitformat",
            MemberState::Starting => "starting",
            MemberState::Ready => "ready",
            MemberState::Joined => "joined",
            MemberState::Stopping => "stopping",
            MemberState::Stopped => "stopped",
            MemberState::Excluded => "excluded",
            MemberState::Errored => "errored",
            MemberState::Unresponsive => "unresponsive",
            MemberState::AdminExcluded => "adminexcluded",
            MemberState::CheckerStarted => "checkerstarted",
        }
    }
}

/// One engine of the system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub rank: u32,
    pub uuid: String,
    /// Control address of its daos_server (`host:port`).
    pub addr: String,
    pub fabric_uri: String,
    pub fabric_contexts: u32,
    pub incarnation: u64,
    pub fault_domain: String,
    pub state: MemberState,
    #[serde(default)]
    pub info: String,
}

/// A pool as the management service records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub uuid: String,
    pub label: String,
    /// Ranks holding the pool's service (the first leads).
    pub svc_ranks: Vec<u32>,
    /// Ranks holding its storage.
    pub ranks: Vec<u32>,
    pub scm_per_rank: u64,
    pub nvme_per_rank: u64,
    /// Properties set at create or later (name -> value), defaults not stored.
    pub props: std::collections::BTreeMap<String, String>,
    pub state: PoolState,
}

/// A pool's life in the management service (stored and sent by these names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolState {
    /// Shards being created; clients are refused.
    Creating,
    Ready,
    /// Shards being destroyed (or a create to roll back); clients are refused.
    Destroying,
}

impl PoolState {
    /// The name DAOS shows.
    pub fn name(self) -> &'static str {
        match self {
            PoolState::Creating => "Creating",
            PoolState::Ready => "Ready",
            PoolState::Destroying => "Destroying",
        }
    }
}

/// A request to join (DAOS `JoinReq`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    pub system: String,
    pub uuid: String,
    /// Rank from the superblock, if it has a valid one.
    pub rank: Option<u32>,
    pub uri: String,
    pub nctxs: u32,
    pub addr: String,
    pub fault_domain: String,
    pub incarnation: u64,
}

/// The answer to a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    pub rank: u32,
    pub map_version: u32,
    /// True when the member existed (a rejoin).
    pub rejoined: bool,
}

/// Why a membership change was refused or not recorded.
#[derive(Debug, thiserror::Error)]
pub enum MsError {
    #[error("join refused: system name {got:?} does not match {want:?}")]
    WrongSystem { want: String, got: String },
    #[error("can't rejoin member with rank {rank}: uuid changed from {uuid} -> {new}")]
    RankTaken {
        rank: u32,
        uuid: String,
        new: String,
    },
    #[error("can't rejoin member with uuid {uuid}: rank changed from {cur} -> {new}")]
    RankChanged { uuid: String, cur: u32, new: u32 },
    #[error("member {uuid} (rank {rank}) has been administratively excluded")]
    AdminExcluded { uuid: String, rank: u32 },
    #[error(
        "can't rejoin member {uuid} (rank {rank}): control address changed from {cur} -> {new}"
    )]
    AddrChanged {
        uuid: String,
        rank: u32,
        cur: String,
        new: String,
    },
    #[error("rank {0} is not a member of the system")]
    UnknownRank(u32),
    #[error("cannot persist membership to {}: {source}", .path.display())]
    Persist {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("membership file {} is unreadable: {reason}; fix: restore it or remove it to form a new system (engines then need a reformat)", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("a pool labelled {0:?} already exists")]
    LabelTaken(String),
    #[error("no pool {0:?} in the system")]
    UnknownPool(String),
}

/// What the control plane needs from the management service.
pub trait ManagementService: Send + Sync {
    fn join(&self, req: &JoinRequest) -> Result<JoinResponse, MsError>;
    fn set_state(&self, rank: u32, state: MemberState, info: &str) -> Result<(), MsError>;
    fn members(&self) -> Vec<Member>;
    /// Releases a rank whose storage was reformatted: the member goes, and so do the pools
    /// with storage on it (their shards went with the format); returns those pools. With no
    /// member left, ranks start again from 0.
    fn member_remove(&self, rank: u32) -> Result<Vec<PoolRecord>, MsError>;
    fn map_version(&self) -> u32;
    /// Records a new pool; its label must be unused.
    fn pool_add(&self, pool: PoolRecord) -> Result<(), MsError>;
    /// Replaces a pool's record (state, properties).
    fn pool_update(&self, pool: PoolRecord) -> Result<(), MsError>;
    fn pool_remove(&self, uuid: &str) -> Result<(), MsError>;
    fn pools(&self) -> Vec<PoolRecord>;
    /// A pool by label or UUID.
    fn pool_find(&self, id: &str) -> Option<PoolRecord> {
        self.pools()
            .into_iter()
            .find(|p| p.label == id || p.uuid == id)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Db {
    system: String,
    next_rank: u32,
    map_version: u32,
    members: Vec<Member>,
    #[serde(default)]
    pools: Vec<PoolRecord>,
}

/// The single-replica management service.
pub struct SingleReplica {
    path: PathBuf,
    db: Mutex<Db>,
}

impl SingleReplica {
    /// Opens (or creates) the membership stored at `path` for system `system`.
    pub fn open(path: &Path, system: &str) -> Result<SingleReplica, MsError> {
        let db = match fs::read_to_string(path) {
            Ok(text) => serde_json::from_str::<Db>(&text).map_err(|e| MsError::Corrupt {
                path: path.into(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Db {
                system: system.into(),
                ..Db::default()
            },
            Err(source) => {
                return Err(MsError::Persist {
                    path: path.into(),
                    source,
                });
            }
        };
        if db.system != system {
            return Err(MsError::Corrupt {
                path: path.into(),
                reason: format!("it belongs to system {:?}, not {system:?}", db.system),
            });
        }
        Ok(SingleReplica {
            path: path.into(),
            db: Mutex::new(db),
        })
    }

    fn persist(&self, db: &Db) -> Result<(), MsError> {
        let err = |source| MsError::Persist {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            daos_hw::private::create_dir(dir).map_err(err)?;
        }
        let tmp = self.path.with_extension("tmp");
        let text = serde_json::to_string_pretty(db).unwrap_or_default();
        daos_hw::private::write(&tmp, text).map_err(err)?;
        fs::rename(&tmp, &self.path).map_err(err)
    }

    fn with_db<R>(&self, f: impl FnOnce(&mut Db) -> Result<R, MsError>) -> Result<R, MsError> {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = db.clone();
        let r = f(&mut next)?;
        self.persist(&next)?;
        *db = next;
        Ok(r)
    }
}

impl ManagementService for SingleReplica {
    fn join(&self, req: &JoinRequest) -> Result<JoinResponse, MsError> {
        self.with_db(|db| {
            if req.system != db.system {
                return Err(MsError::WrongSystem {
                    want: db.system.clone(),
                    got: req.system.clone(),
                });
            }
            // DAOS's rejoin rules: same rank, not excluded by the admin, same control address.
            if let Some(m) = db.members.iter().find(|m| m.uuid == req.uuid) {
                if let Some(r) = req.rank.filter(|r| *r != m.rank) {
                    return Err(MsError::RankChanged {
                        uuid: m.uuid.clone(),
                        cur: m.rank,
                        new: r,
                    });
                }
                if m.state == MemberState::AdminExcluded {
                    return Err(MsError::AdminExcluded {
                        uuid: m.uuid.clone(),
                        rank: m.rank,
                    });
                }
                if m.addr != req.addr {
                    return Err(MsError::AddrChanged {
                        uuid: m.uuid.clone(),
                        rank: m.rank,
                        cur: m.addr.clone(),
                        new: req.addr.clone(),
                    });
                }
            }
            db.map_version += 1;
            if let Some(m) = db.members.iter_mut().find(|m| m.uuid == req.uuid) {
                m.fabric_uri = req.uri.clone();
                m.fabric_contexts = req.nctxs;
                m.incarnation = req.incarnation;
                m.addr = req.addr.clone();
                m.state = MemberState::Joined;
                m.info.clear();
                return Ok(JoinResponse {
                    rank: m.rank,
                    map_version: db.map_version,
                    rejoined: true,
                });
            }
            let rank = match req.rank {
                Some(r) => {
                    if let Some(other) = db.members.iter().find(|m| m.rank == r) {
                        return Err(MsError::RankTaken {
                            rank: r,
                            uuid: other.uuid.clone(),
                            new: req.uuid.clone(),
                        });
                    }
                    r
                }
                None => db.next_rank,
            };
            db.next_rank = db.next_rank.max(rank + 1);
            db.members.push(Member {
                rank,
                uuid: req.uuid.clone(),
                addr: req.addr.clone(),
                fabric_uri: req.uri.clone(),
                fabric_contexts: req.nctxs,
                incarnation: req.incarnation,
                fault_domain: req.fault_domain.clone(),
                state: MemberState::Joined,
                info: String::new(),
            });
            db.members.sort_by_key(|m| m.rank);
            Ok(JoinResponse {
                rank,
                map_version: db.map_version,
                rejoined: false,
            })
        })
    }

    fn set_state(&self, rank: u32, state: MemberState, info: &str) -> Result<(), MsError> {
        self.with_db(|db| {
            let m = db
                .members
                .iter_mut()
                .find(|m| m.rank == rank)
                .ok_or(MsError::UnknownRank(rank))?;
            m.state = state;
            m.info = info.to_string();
            Ok(())
        })
    }

    fn members(&self) -> Vec<Member> {
        self.db
            .lock()
            .map(|db| db.members.clone())
            .unwrap_or_default()
    }

    fn member_remove(&self, rank: u32) -> Result<Vec<PoolRecord>, MsError> {
        self.with_db(|db| {
            let before = db.members.len();
            db.members.retain(|m| m.rank != rank);
            if db.members.len() == before {
                return Err(MsError::UnknownRank(rank));
            }
            let (gone, kept) = std::mem::take(&mut db.pools)
                .into_iter()
                .partition(|p| p.ranks.contains(&rank));
            db.pools = kept;
            if db.members.is_empty() {
                db.next_rank = 0;
            }
            db.map_version += 1;
            Ok(gone)
        })
    }

    fn map_version(&self) -> u32 {
        self.db.lock().map(|db| db.map_version).unwrap_or(0)
    }

    fn pool_add(&self, pool: PoolRecord) -> Result<(), MsError> {
        self.with_db(|db| {
            if db.pools.iter().any(|p| p.label == pool.label) {
                return Err(MsError::LabelTaken(pool.label.clone()));
            }
            db.pools.push(pool);
            Ok(())
        })
    }

    fn pool_update(&self, pool: PoolRecord) -> Result<(), MsError> {
        self.with_db(|db| {
            if db
                .pools
                .iter()
                .any(|p| p.label == pool.label && p.uuid != pool.uuid)
            {
                return Err(MsError::LabelTaken(pool.label.clone()));
            }
            let slot = db
                .pools
                .iter_mut()
                .find(|p| p.uuid == pool.uuid)
                .ok_or_else(|| MsError::UnknownPool(pool.uuid.clone()))?;
            *slot = pool;
            Ok(())
        })
    }

    fn pool_remove(&self, uuid: &str) -> Result<(), MsError> {
        self.with_db(|db| {
            let before = db.pools.len();
            db.pools.retain(|p| p.uuid != uuid);
            if db.pools.len() == before {
                Err(MsError::UnknownPool(uuid.into()))
            } else {
                Ok(())
            }
        })
    }

    fn pools(&self) -> Vec<PoolRecord> {
        self.db
            .lock()
            .map(|db| db.pools.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uuid: &str, rank: Option<u32>) -> JoinRequest {
        JoinRequest {
            system: "daos_server".into(),
            uuid: uuid.into(),
            rank,
            uri: "ofi+tcp://127.0.0.1:1".into(),
            nctxs: 2,
            addr: "127.0.0.1:10001".into(),
            fault_domain: "/h".into(),
            incarnation: 1,
        }
    }

    #[test]
    fn ranks_are_assigned_in_order_and_kept_by_uuid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ms/system.json");
        let ms = SingleReplica::open(&path, "daos_server").unwrap();
        assert_eq!(ms.join(&req("a", None)).unwrap().rank, 0);
        assert_eq!(ms.join(&req("b", None)).unwrap().rank, 1);
        let again = ms.join(&req("a", None)).unwrap();
        assert_eq!((again.rank, again.rejoined), (0, true));
        ms.set_state(1, MemberState::Stopped, "exited").unwrap();
        drop(ms);
        // A restart reads the same membership.
        let ms = SingleReplica::open(&path, "daos_server").unwrap();
        let members = ms.members();
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].state, MemberState::Stopped);
        assert_eq!(ms.join(&req("b", Some(1))).unwrap().rank, 1);
        assert_eq!(ms.join(&req("c", None)).unwrap().rank, 2);
        assert!(ms.map_version() >= 5);
    }

    #[test]
    fn a_released_rank_takes_its_pools_and_ranks_restart_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let ms = SingleReplica::open(&dir.path().join("system.json"), "daos_server").unwrap();
        ms.join(&req("a", None)).unwrap();
        ms.join(&req("b", None)).unwrap();
        let pool = |uuid: &str, ranks: Vec<u32>| PoolRecord {
            uuid: uuid.into(),
            label: uuid.into(),
            svc_ranks: ranks.clone(),
            ranks,
            scm_per_rank: 1,
            nvme_per_rank: 0,
            props: Default::default(),
            state: PoolState::Ready,
        };
        ms.pool_add(pool("p0", vec![0])).unwrap();
        ms.pool_add(pool("p01", vec![0, 1])).unwrap();
        ms.pool_add(pool("p1", vec![1])).unwrap();
        let gone = ms.member_remove(0).unwrap();
        let names: Vec<&str> = gone.iter().map(|p| p.uuid.as_str()).collect();
        assert_eq!(names, ["p0", "p01"]);
        assert_eq!(ms.pools().len(), 1);
        assert_eq!(
            ms.join(&req("c", None)).unwrap().rank,
            2,
            "rank 1 still held"
        );
        ms.member_remove(1).unwrap();
        ms.member_remove(2).unwrap();
        assert_eq!(ms.join(&req("d", None)).unwrap().rank, 0);
    }

    #[test]
    fn rejoins_follow_daos_rules() {
        let dir = tempfile::tempdir().unwrap();
        let ms = SingleReplica::open(&dir.path().join("system.json"), "daos_server").unwrap();
        ms.join(&req("a", None)).unwrap();
        let e = ms.join(&req("a", Some(5))).unwrap_err().to_string();
        assert_eq!(
            e,
            "can't rejoin member with uuid a: rank changed from 0 -> 5"
        );
        let mut moved = req("a", Some(0));
        moved.addr = "10.0.0.9:10001".into();
        let e = ms.join(&moved).unwrap_err().to_string();
        assert_eq!(
            e,
            "can't rejoin member a (rank 0): control address changed from 127.0.0.1:10001 -> 10.0.0.9:10001"
        );
        let e = ms.join(&req("b", Some(0))).unwrap_err().to_string();
        assert_eq!(
            e,
            "can't rejoin member with rank 0: uuid changed from a -> b"
        );
        ms.set_state(0, MemberState::AdminExcluded, "").unwrap();
        let e = ms.join(&req("a", Some(0))).unwrap_err().to_string();
        assert_eq!(e, "member a (rank 0) has been administratively excluded");
        let version = ms.map_version();
        assert!(ms.join(&req("a", None)).is_err());
        assert_eq!(ms.map_version(), version, "a refused join changes nothing");
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.json");
        let ms = SingleReplica::open(&path, "daos_server").unwrap();
        ms.join(&req("a", None)).unwrap();
        assert!(matches!(
            ms.join(&req("x", Some(0))),
            Err(MsError::RankTaken { rank: 0, .. })
        ));
        let mut other = req("y", None);
        other.system = "other".into();
        assert!(matches!(ms.join(&other), Err(MsError::WrongSystem { .. })));
        assert!(matches!(
            ms.set_state(9, MemberState::Joined, ""),
            Err(MsError::UnknownRank(9))
        ));
        assert!(matches!(ms.member_remove(7), Err(MsError::UnknownRank(7))));
        assert!(SingleReplica::open(&path, "another").is_err());
        fs::write(&path, "{not json").unwrap();
        let err = SingleReplica::open(&path, "daos_server")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unreadable") && err.contains("fix:"), "{err}");
    }
}
