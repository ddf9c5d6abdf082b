//! The management service (MS): which engines (ranks) form the system, in what state, and
//! which pools it holds. [`state`] is the state machine; [`raft`] replicates it with openraft
//! across the servers named in `mgmt_svc_replicas` (a single replica is a one-voter group) and
//! gives servers that are not replicas the same [`ManagementService`] through the leader.
//!
//! Ranks as DAOS assigns them: rank 0 for the first engine of the bootstrap replica, others
//! from the next-rank counter (from 1); an engine that joins again with its UUID keeps its rank.

use std::path::PathBuf;

pub mod raft;
pub mod state;

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
    /// The pool map's target states and the rebuild they started.
    #[serde(default)]
    pub map: PoolTargets,
    /// The pool service's replicas: control addresses of the daos_servers of `svc_ranks`
    /// (one per host), in the group's node order.
    #[serde(default)]
    pub svc_hosts: Vec<String>,
    /// Owner user and group (principals, `name@`) and ACL entries (DAOS's short form).
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub owner_group: String,
    #[serde(default)]
    pub acl: Vec<String>,
    /// The handle admin tools and daos_servers use (read, write, every container), known to
    /// the pool's engines from its create on; 0 for a pool made before it existed.
    #[serde(default)]
    pub system_handle: u64,
}

/// A pool's target states (DAOS's pool map) and its rebuild.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolTargets {
    /// Pool map version: 1 at create (stored as 0 until the first change), +1 per change.
    pub version: u32,
    /// Per rank, its targets' states; a rank not listed has every target UPIN.
    pub states: std::collections::BTreeMap<u32, Vec<daos_placement::TargetState>>,
    pub rebuild: Rebuild,
}

impl PoolTargets {
    /// The pool map version.
    pub fn version(&self) -> u32 {
        self.version.max(1)
    }

    /// The state of `rank`'s target `idx`.
    pub fn state(&self, rank: u32, idx: u32) -> daos_placement::TargetState {
        self.states
            .get(&rank)
            .and_then(|t| t.get(idx as usize).copied())
            .unwrap_or(daos_placement::TargetState::UpIn)
    }

    /// Targets not serving (down, down_out), per rank.
    pub fn disabled(&self) -> std::collections::BTreeMap<u32, u32> {
        use daos_placement::TargetState::{Down, DownOut};
        self.states
            .iter()
            .map(|(r, t)| {
                (
                    *r,
                    t.iter().filter(|s| matches!(s, Down | DownOut)).count() as u32,
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Whether some target waits for a rebuild (down, drain, or up after reintegration).
    pub fn needs_rebuild(&self) -> bool {
        use daos_placement::TargetState::{Down, Drain, Up};
        self.states
            .values()
            .flatten()
            .any(|s| matches!(s, Down | Drain | Up))
    }
}

/// DAOS's rebuild states (`dmg pool query`: `Rebuild idle|busy|done`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RebuildState {
    #[default]
    Idle,
    Busy,
    Done,
}

impl RebuildState {
    pub fn name(self) -> &'static str {
        match self {
            RebuildState::Idle => "idle",
            RebuildState::Busy => "busy",
            RebuildState::Done => "done",
        }
    }
}

/// A pool's latest rebuild: for which map version, how far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuild {
    pub state: RebuildState,
    /// The pool map version it rebuilds for.
    pub version: u32,
    pub objs: u64,
    pub recs: u64,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub system: String,
    pub uuid: String,
    /// Rank from the superblock, if it has a valid one.
    pub rank: Option<u32>,
    pub uri: String,
    pub nctxs: u32,
    /// Control address of the engine's daos_server, as the MS reaches it (`ip:port`).
    pub addr: String,
    pub fault_domain: String,
    pub incarnation: u64,
    /// The engine's index among its server's engines.
    #[serde(default)]
    pub idx: u32,
    /// The engine is the first (index 0) of the bootstrap replica's server: it gets rank 0.
    /// Set by the leader from the control address and `idx`.
    #[serde(default)]
    pub bootstrap: bool,
}

/// The answer to a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    pub rank: u32,
    pub map_version: u32,
    /// True when the member existed (a rejoin).
    pub rejoined: bool,
}

/// Why a management-service call failed.
#[derive(Debug, thiserror::Error)]
pub enum MsError {
    /// The state refused the command; nothing changed.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// DAOS's not-leader error: the caller should ask the leader.
    #[error("not the DAOS Management Service leader (try {hint} or one of {})", .replicas.join(","))]
    NotLeader { hint: String, replicas: Vec<String> },
    #[error("not a DAOS Management Service replica (try one of {})", .replicas.join(","))]
    NotReplica { replicas: Vec<String> },
    /// No leader could be reached before the deadline.
    #[error("the DAOS Management Service is unavailable: {0}")]
    Unavailable(String),
    /// A replica whose storage is not formatted yet (its Raft log lives there).
    #[error("system is uninitialized (storage format required?)")]
    NotStarted,
    #[error("management service storage under {}: {reason}", .path.display())]
    Storage { path: PathBuf, reason: String },
    #[error("the management service's Raft node failed: {0}")]
    Raft(String),
    /// The leader refused the request (its message).
    #[error("{0}")]
    Rejected(String),
}

pub use state::{Command, Refusal, Reply, SystemDb};

/// What the control plane needs from the management service. Reads answer from this server's
/// copy of the state (any replica, as DAOS); writes are committed by the leader.
pub trait ManagementService: Send + Sync {
    fn join(&self, req: &JoinRequest) -> Result<JoinResponse, MsError>;
    fn set_state(&self, rank: u32, state: MemberState, info: &str) -> Result<(), MsError>;
    fn members(&self) -> Vec<Member>;
    /// Releases a rank whose storage was reformatted: the member goes, and so do the pools
    /// with storage on it (their shards went with the format); returns those pools.
    fn member_remove(&self, rank: u32) -> Result<Vec<PoolRecord>, MsError>;
    fn map_version(&self) -> u32;
    /// Records a new pool; its label must be unused.
    fn pool_add(&self, pool: PoolRecord) -> Result<(), MsError>;
    fn pool_remove(&self, uuid: &str) -> Result<(), MsError>;
    fn pools(&self) -> Vec<PoolRecord>;
    /// [`Self::pools`], or why the system state could not be read (where an empty list
    /// would be taken as "no pools").
    fn pools_checked(&self) -> Result<Vec<PoolRecord>, MsError> {
        Ok(self.pools())
    }
    /// Commits any other command (pool map changes, rebuild progress, a change of part of a
    /// pool: [`Command::PoolAcl`], [`Command::PoolSetProps`], [`Command::PoolSetState`],
    /// which the state machine applies to the record it holds, so concurrent changes compose).
    fn apply(&self, cmd: Command) -> Result<Reply, MsError>;
    /// True when this server leads the management service (or is its only copy).
    fn is_leader(&self) -> bool {
        true
    }
    /// This server's storage is ready (formatted and mounted): a replica can start.
    fn storage_ready(&self) {}
    /// A pool by label or UUID.
    fn pool_find(&self, id: &str) -> Option<PoolRecord> {
        self.pools()
            .into_iter()
            .find(|p| p.label == id || p.uuid == id)
    }
    /// This server's pool service replicas (their reads and writes are async: call them
    /// from a runtime), if it can run any.
    fn pool_services(&self) -> Option<std::sync::Arc<raft::pool::PoolServices>> {
        None
    }
    /// Starts pool `uuid`'s service replica on the server at `addr` (this one when `local`).
    fn pool_svc_start(
        &self,
        _addr: &str,
        _local: bool,
        _uuid: &str,
        _members: &raft::pool::Members,
    ) -> Result<(), MsError> {
        Err(MsError::NotStarted)
    }
    /// Stops pool `uuid`'s service replica on the server at `addr` (this one when `local`)
    /// and removes its log.
    fn pool_svc_stop(&self, _addr: &str, _local: bool, _uuid: &str) -> Result<(), MsError> {
        Ok(())
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
            idx: 0,
            bootstrap: false,
        }
    }

    fn join(db: &mut SystemDb, r: &JoinRequest) -> Result<JoinResponse, Refusal> {
        match db.apply(&Command::Join(r.clone()))? {
            Reply::Joined(j) => Ok(j),
            other => panic!("join answered {other:?}"),
        }
    }

    fn pool(uuid: &str, ranks: Vec<u32>) -> PoolRecord {
        PoolRecord {
            svc_hosts: Vec::new(),
            uuid: uuid.into(),
            label: uuid.into(),
            svc_ranks: ranks.clone(),
            ranks,
            scm_per_rank: 1,
            nvme_per_rank: 0,
            props: Default::default(),
            state: PoolState::Ready,
            map: Default::default(),
            owner: String::new(),
            owner_group: String::new(),
            acl: Vec::new(),
            system_handle: 0,
        }
    }

    #[test]
    fn ranks_follow_daos_rank_zero_for_the_bootstrap_engine_then_the_counter() {
        let mut db = SystemDb::new("daos_server");
        // Another host's engine joins first: rank 0 stays for the bootstrap replica's.
        assert_eq!(join(&mut db, &req("b", None)).unwrap().rank, 1);
        let mut first = req("a", None);
        first.bootstrap = true;
        assert_eq!(join(&mut db, &first).unwrap().rank, 0);
        assert_eq!(join(&mut db, &req("c", None)).unwrap().rank, 2);
        let again = join(&mut db, &req("a", None)).unwrap();
        assert_eq!((again.rank, again.rejoined), (0, true));
        // A superblock rank is kept.
        assert_eq!(join(&mut db, &req("d", Some(7))).unwrap().rank, 7);
        assert_eq!(join(&mut db, &req("e", None)).unwrap().rank, 8);
        assert_eq!(db.version, 6);
        assert!(db.map_version >= 6);
    }

    #[test]
    fn a_released_rank_takes_its_pools_and_ranks_restart_when_none_is_left() {
        let mut db = SystemDb::new("daos_server");
        join(&mut db, &req("a", None)).unwrap();
        join(&mut db, &req("b", None)).unwrap();
        for p in [
            pool("p1", vec![1]),
            pool("p12", vec![1, 2]),
            pool("p2", vec![2]),
        ] {
            db.apply(&Command::PoolAdd(p)).unwrap();
        }
        let Reply::Removed(gone) = db.apply(&Command::MemberRemove { rank: 1 }).unwrap() else {
            panic!("no pools answered")
        };
        let names: Vec<&str> = gone.iter().map(|p| p.uuid.as_str()).collect();
        assert_eq!(names, ["p1", "p12"]);
        assert_eq!(db.pools.len(), 1);
        assert_eq!(join(&mut db, &req("c", None)).unwrap().rank, 3);
        db.apply(&Command::MemberRemove { rank: 2 }).unwrap();
        db.apply(&Command::MemberRemove { rank: 3 }).unwrap();
        assert_eq!(join(&mut db, &req("d", None)).unwrap().rank, 1);
    }

    #[test]
    fn rejoins_follow_daos_rules_and_a_refusal_changes_nothing() {
        let mut db = SystemDb::new("daos_server");
        join(&mut db, &req("a", None)).unwrap();
        let e = join(&mut db, &req("a", Some(5))).unwrap_err().to_string();
        assert_eq!(
            e,
            "can't rejoin member with uuid a: rank changed from 1 -> 5"
        );
        let mut moved = req("a", Some(1));
        moved.addr = "10.0.0.9:10001".into();
        let e = join(&mut db, &moved).unwrap_err().to_string();
        assert_eq!(
            e,
            "can't rejoin member a (rank 1): control address changed from 127.0.0.1:10001 -> 10.0.0.9:10001"
        );
        let e = join(&mut db, &req("b", Some(1))).unwrap_err().to_string();
        assert_eq!(
            e,
            "can't rejoin member with rank 1: uuid changed from a -> b"
        );
        let mut other = req("c", None);
        other.uri = "ofi+sockets://127.0.0.1:9".into();
        let e = join(&mut db, &other).unwrap_err().to_string();
        assert_eq!(
            e,
            "rank 4294967295 fabric provider \"ofi+sockets\" does not match system provider \"ofi+tcp\""
        );
        db.apply(&Command::SetState {
            rank: 1,
            state: MemberState::AdminExcluded,
            info: String::new(),
        })
        .unwrap();
        let e = join(&mut db, &req("a", Some(1))).unwrap_err().to_string();
        assert_eq!(e, "member a (rank 1) has been administratively excluded");
        let before = db.clone();
        assert!(join(&mut db, &req("a", None)).is_err());
        let mut wrong = req("y", None);
        wrong.system = "other".into();
        assert!(matches!(
            join(&mut db, &wrong),
            Err(Refusal::WrongSystem { .. })
        ));
        assert!(matches!(
            db.apply(&Command::SetState {
                rank: 9,
                state: MemberState::Joined,
                info: String::new()
            }),
            Err(Refusal::UnknownRank(9))
        ));
        assert!(matches!(
            db.apply(&Command::MemberRemove { rank: 7 }),
            Err(Refusal::UnknownRank(7))
        ));
        assert_eq!(db, before, "refused commands change nothing");
    }

    #[test]
    fn a_conditional_state_change_leaves_a_newer_incarnation_or_another_state() {
        let mut db = SystemDb::new("daos_server");
        let rank = join(&mut db, &req("a", None)).unwrap().rank;
        let state = |db: &SystemDb| db.members[0].state;
        let set_if = |incarnation, from| Command::SetStateIf {
            rank,
            incarnation,
            from,
            state: MemberState::Errored,
            info: "exited".into(),
        };
        // Another incarnation (a copy of this engine elsewhere, or one that rejoined since).
        db.apply(&set_if(7, None)).unwrap();
        assert_eq!(state(&db), MemberState::Joined);
        // Another state than the one expected.
        db.apply(&set_if(1, Some(MemberState::Stopped))).unwrap();
        assert_eq!(state(&db), MemberState::Joined);
        let v = db.map_version;
        db.apply(&set_if(1, Some(MemberState::Joined))).unwrap();
        assert_eq!(state(&db), MemberState::Errored);
        assert_eq!(db.members[0].info, "exited");
        assert!(db.map_version > v);
        assert!(matches!(
            db.apply(&Command::SetStateIf {
                rank: 9,
                incarnation: 1,
                from: None,
                state: MemberState::Stopped,
                info: String::new(),
            }),
            Err(Refusal::UnknownRank(9))
        ));
    }

    #[test]
    fn pool_labels_are_unique() {
        let mut db = SystemDb::new("daos_server");
        db.apply(&Command::PoolAdd(pool("p", vec![0]))).unwrap();
        let mut twin = pool("q", vec![0]);
        twin.label = "p".into();
        assert_eq!(
            db.apply(&Command::PoolAdd(twin.clone())),
            Err(Refusal::LabelTaken("p".into()))
        );
        db.apply(&Command::PoolAdd(pool("q", vec![0]))).unwrap();
        assert_eq!(
            db.apply(&Command::PoolUpdate(twin)),
            Err(Refusal::LabelTaken("p".into()))
        );
        assert_eq!(
            db.apply(&Command::PoolRemove { uuid: "z".into() }),
            Err(Refusal::UnknownPool("z".into()))
        );
    }

    #[test]
    fn a_mirrored_map_replaces_an_older_one_only() {
        use daos_placement::MapOp;
        // The pool service's copy moves on; the management service's record follows it.
        let mut svc = SystemDb::new("daos_server");
        let mut ms = SystemDb::new("daos_server");
        svc.apply(&Command::PoolAdd(pool("p", vec![0, 1]))).unwrap();
        ms.apply(&Command::PoolAdd(pool("p", vec![0, 1]))).unwrap();
        let old = svc.pools[0].map.clone();
        svc.apply(&Command::PoolTargets {
            uuid: "p".into(),
            op: MapOp::Exclude,
            rank: 1,
            idx: vec![],
            targets: 1,
        })
        .unwrap();
        svc.apply(&Command::PoolExtend {
            uuid: "p".into(),
            ranks: vec![2],
            targets: 1,
        })
        .unwrap();
        let mirror = |map: &PoolTargets, ranks: Vec<u32>| Command::PoolMirror {
            uuid: "p".into(),
            ranks,
            map: map.clone(),
        };
        ms.apply(&mirror(&svc.pools[0].map, svc.pools[0].ranks.clone()))
            .unwrap();
        assert_eq!(ms.pools[0].map, svc.pools[0].map);
        assert_eq!(ms.pools[0].ranks, vec![0, 1, 2]);
        // A late copy of an older map changes nothing.
        ms.apply(&mirror(&old, vec![0, 1])).unwrap();
        assert_eq!(ms.pools[0].map.version(), 3);
        assert_eq!(
            ms.apply(&Command::PoolMirror {
                uuid: "nope".into(),
                ranks: vec![],
                map: old,
            }),
            Err(Refusal::UnknownPool("nope".into()))
        );
    }

    #[test]
    fn target_states_follow_daos_and_a_rebuild_finishes_only_its_own_version() {
        use daos_placement::{MapOp, TargetState as T};
        let mut db = SystemDb::new("daos_server");
        db.apply(&Command::PoolAdd(pool("p", vec![0, 1, 2])))
            .unwrap();
        let targets = |db: &SystemDb| db.pools[0].map.clone();
        let change = |op, rank, idx: &[u32]| Command::PoolTargets {
            uuid: "p".into(),
            op,
            rank,
            idx: idx.to_vec(),
            targets: 2,
        };
        assert_eq!(targets(&db).version(), 1);
        db.apply(&change(MapOp::Exclude, 1, &[])).unwrap();
        let m = targets(&db);
        assert_eq!(
            (m.version(), m.state(1, 0), m.state(1, 1)),
            (2, T::Down, T::Down)
        );
        assert_eq!(m.state(0, 0), T::UpIn);
        assert_eq!(m.rebuild.state, RebuildState::Busy);
        assert_eq!(m.rebuild.version, 2);
        assert!(m.needs_rebuild());
        assert_eq!(m.disabled().get(&1), Some(&2));
        // Refusals: a rank not in the pool, a bad target index, draining a down target is a
        // no-op but reintegrating an up one is refused; none changes anything.
        let before = db.clone();
        for (cmd, words) in [
            (
                change(MapOp::Exclude, 7, &[]),
                "rank 7 is not in the pool map",
            ),
            (change(MapOp::Drain, 0, &[5]), "rank 0 has no target 5"),
            (
                change(MapOp::Reint, 2, &[]),
                "rank 2 is not excluded or drained",
            ),
        ] {
            let e = db.apply(&cmd).expect_err("refused").to_string();
            assert!(e.contains(words), "{e}");
        }
        assert_eq!(db, before);
        // A rebuild report for an older version is stale; the current one finishes it.
        let rebuilt = |version, done| Command::PoolRebuild {
            uuid: "p".into(),
            version,
            objs: 5,
            recs: 9,
            done,
        };
        assert_eq!(
            db.apply(&rebuilt(1, true)),
            Err(Refusal::StaleRebuild {
                version: 1,
                current: 2
            })
        );
        db.apply(&rebuilt(2, false)).unwrap();
        assert_eq!(targets(&db).rebuild.state, RebuildState::Busy);
        db.apply(&rebuilt(2, true)).unwrap();
        let m = targets(&db);
        assert_eq!((m.state(1, 0), m.version()), (T::DownOut, 3));
        assert_eq!(
            (m.rebuild.state, m.rebuild.objs, m.rebuild.recs),
            (RebuildState::Done, 5, 9)
        );
        assert!(!m.needs_rebuild());
        // Reintegrated: UP until its rebuild is done, then UPIN.
        db.apply(&change(MapOp::Reint, 1, &[0])).unwrap();
        let m = targets(&db);
        assert_eq!(
            (m.state(1, 0), m.state(1, 1), m.version()),
            (T::Up, T::DownOut, 4)
        );
        assert!(m.needs_rebuild());
        db.apply(&rebuilt(4, true)).unwrap();
        assert_eq!(targets(&db).state(1, 0), T::UpIn);
    }

    /// Changes of parts of a pool computed from one earlier read, applied in any order: each
    /// is applied to the record the state holds, so all of them are kept.
    #[test]
    fn pool_acl_property_and_state_changes_compose() {
        use crate::state::AclDelta;
        let mut db = SystemDb::new("daos_server");
        let mut p = pool("p", vec![0]);
        p.state = PoolState::Creating;
        db.apply(&Command::PoolAdd(p)).unwrap();
        db.apply(&Command::PoolAdd(pool("q", vec![0]))).unwrap();
        let acl = |change| Command::PoolAcl {
            uuid: "p".into(),
            change,
        };
        db.apply(&acl(AclDelta::Update(vec!["A::evil@:rw".into()])))
            .unwrap();
        // Two updates with different principals, a delete and a property change "at once".
        for cmd in [
            acl(AclDelta::Update(vec!["A::a@:r".into()])),
            acl(AclDelta::Delete("u:evil@".into())),
            Command::PoolSetProps {
                uuid: "p".into(),
                label: None,
                props: [("reclaim".to_string(), "time".to_string())].into(),
            },
            acl(AclDelta::Update(vec!["A::b@:rw".into()])),
            Command::PoolSetState {
                uuid: "p".into(),
                state: PoolState::Ready,
                from: Some(PoolState::Creating),
            },
        ] {
            db.apply(&cmd).unwrap();
        }
        let got = db.pools[0].clone();
        // An empty ACL was DAOS's default (owner and group): it is kept under the entries.
        assert_eq!(
            got.acl,
            vec!["A::OWNER@:rw", "A::a@:r", "A::b@:rw", "A:G:GROUP@:rw"],
            "{got:?}"
        );
        assert_eq!(got.props.get("reclaim").map(String::as_str), Some("time"));
        assert_eq!(got.state, PoolState::Ready);
        // A rollback marked only from Creating leaves a pool that became Ready alone.
        db.apply(&Command::PoolSetState {
            uuid: "p".into(),
            state: PoolState::Destroying,
            from: Some(PoolState::Creating),
        })
        .unwrap();
        assert_eq!(db.pools[0].state, PoolState::Ready);

        // Refusals change nothing.
        let before = db.clone();
        assert_eq!(
            db.apply(&acl(AclDelta::Delete("u:evil@".into()))),
            Err(Refusal::NoAclEntry {
                of: "pool p".into(),
                principal: "u:evil@".into()
            })
        );
        assert!(matches!(
            db.apply(&acl(AclDelta::Update(vec!["A::x@:z".into()]))),
            Err(Refusal::BadAcl(_))
        ));
        assert_eq!(
            db.apply(&Command::PoolSetProps {
                uuid: "p".into(),
                label: Some("q".into()),
                props: Default::default(),
            }),
            Err(Refusal::LabelTaken("q".into()))
        );
        assert_eq!(db, before);
    }

    #[test]
    fn container_acl_changes_compose() {
        use crate::state::{AclDelta, ContainerRecord};
        let mut db = SystemDb::new("daos_server");
        db.apply(&Command::ContCreate(ContainerRecord {
            uuid: "u1".into(),
            label: "c1".into(),
            owner: "root@".into(),
            owner_group: "root@".into(),
            ..Default::default()
        }))
        .unwrap();
        let acl = |change| Command::ContAclChange {
            id: "c1".into(),
            change,
        };
        for cmd in [
            acl(AclDelta::Update(vec!["A::evil@:rw".into()])),
            acl(AclDelta::Update(vec!["A::a@:r".into()])),
            acl(AclDelta::Delete("u:evil@".into())),
            Command::ContAcl {
                id: "c1".into(),
                owner: Some("a@".into()),
                owner_group: None,
                acl: None,
            },
            acl(AclDelta::Update(vec!["A::b@:r".into()])),
        ] {
            db.apply(&cmd).unwrap();
        }
        let c = db.container("c1").expect("c1");
        assert_eq!(c.owner, "a@");
        assert!(
            c.acl.contains(&"A::a@:r".to_string())
                && c.acl.contains(&"A::b@:r".to_string())
                && !c.acl.iter().any(|e| e.contains("evil")),
            "{c:?}"
        );
        assert!(matches!(
            db.apply(&acl(AclDelta::Delete("u:evil@".into()))),
            Err(Refusal::NoAclEntry { .. })
        ));
    }
}
