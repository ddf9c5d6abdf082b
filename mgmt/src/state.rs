//! The replicated system state and the commands that change it. [`SystemDb::apply`] is the
//! state machine: deterministic (everything it needs is in the command), all-or-nothing (a
//! refused command changes nothing), and the only writer.

use serde::{Deserialize, Serialize};

use crate::{JoinRequest, JoinResponse, Member, MemberState, PoolRecord, PoolState};

/// A change to the system state, as it travels in the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Join(JoinRequest),
    SetState {
        rank: u32,
        state: MemberState,
        info: String,
    },
    /// [`Command::SetState`] for the engine incarnation `incarnation` only, and with `from`
    /// only for a member in that state: a member that rejoined since (a new incarnation), or
    /// whose state changed meanwhile, is left as it is. What a daos_server reports of an engine
    /// it saw must not overwrite what a newer engine of that rank did, nor a member another
    /// host holds.
    SetStateIf {
        rank: u32,
        incarnation: u64,
        from: Option<MemberState>,
        state: MemberState,
        info: String,
    },
    /// A rank whose storage was reformatted leaves, with the pools that had storage on it.
    MemberRemove {
        rank: u32,
    },
    PoolAdd(PoolRecord),
    /// Replaces a pool's whole record. Only for a record no one else changes meanwhile: a
    /// change of part of a pool computed from a record read earlier loses the changes
    /// committed in between; those are the commands below that carry the change.
    PoolUpdate(PoolRecord),
    /// A pool's ACL changes (`dmg pool overwrite-acl|update-acl|delete-acl`), applied to the
    /// ACL the state holds. Answers the pool's record.
    PoolAcl {
        uuid: String,
        change: AclDelta,
    },
    /// A pool's properties: each of `props` set to its value, and its label when given (it
    /// must be free). Answers the pool's record.
    PoolSetProps {
        uuid: String,
        label: Option<String>,
        props: std::collections::BTreeMap<String, String>,
    },
    /// A pool's state becomes `state`; with `from`, only a pool in that state changes (the
    /// others are left as they are).
    PoolSetState {
        uuid: String,
        state: PoolState,
        from: Option<PoolState>,
    },
    PoolRemove {
        uuid: String,
    },
    /// Changes target states of one rank of a pool (`dmg pool exclude|drain|reintegrate`;
    /// all its targets when `idx` is empty); a rebuild for the new map version starts.
    PoolTargets {
        uuid: String,
        op: daos_placement::MapOp,
        rank: u32,
        idx: Vec<u32>,
        /// Each target's count when the rank has no states yet (its engine's targets).
        targets: u32,
    },
    /// DAOS's EXTEND: `ranks` join pool `uuid` (their shards were created), their `targets`
    /// each UP until the rebuild that moves data onto them finishes.
    PoolExtend {
        uuid: String,
        ranks: Vec<u32>,
        targets: u32,
    },
    /// The pool map as the pool's service holds it (its authority), copied into this record
    /// (the management service's view, read by pool query and the rebuild driver); an older
    /// map than the record's changes nothing.
    PoolMirror {
        uuid: String,
        ranks: Vec<u32>,
        map: crate::PoolTargets,
    },
    /// A rebuild's progress for map version `version`; `done` finishes it (UP -> UPIN,
    /// DOWN/DRAIN -> DOWNOUT). Refused when the map moved on (the rebuild starts over).
    PoolRebuild {
        uuid: String,
        version: u32,
        objs: u64,
        recs: u64,
        done: bool,
    },
    /// Sets (or, with an empty value, deletes) a system attribute.
    SetAttr {
        key: String,
        value: String,
    },
    /// A pool service's: a new container (label and UUID unique in the pool).
    ContCreate(ContainerRecord),
    /// A pool service's: a block of `num` object ids of container `id` (DAOS's
    /// `CONT_OID_ALLOC`); the record answered holds the count after it.
    ContOidAlloc {
        id: String,
        num: u64,
    },
    /// A pool service's: container `id`'s user attributes `set` (name, value) and `del`
    /// (names; refused when none of them is there and nothing is set).
    ContAttrs {
        id: String,
        set: Vec<(String, Vec<u8>)>,
        del: Vec<String>,
    },
    /// A pool service's: the pool's user attributes `set` and `del` (refused when none of
    /// `del` is there and nothing is set).
    PoolAttrs {
        set: Vec<(String, Vec<u8>)>,
        del: Vec<String>,
    },
    /// A pool service's: container `id` (label or UUID) goes.
    ContDestroy {
        id: String,
    },
    /// A pool service's: container `id`'s properties (`name:value;...`), and its label when
    /// `label` is given (unique in the pool).
    ContSetProps {
        id: String,
        props: String,
        #[serde(default)]
        label: Option<String>,
    },
    /// A pool service's: container `id`'s owner, owner group and ACL (each when given; an
    /// ACL change is [`Command::ContAclChange`]).
    ContAcl {
        id: String,
        owner: Option<String>,
        owner_group: Option<String>,
        acl: Option<Vec<String>>,
    },
    /// A pool service's: container `id`'s ACL changes (`daos container overwrite-acl|
    /// update-acl|delete-acl`), applied to the ACL the state holds.
    ContAclChange {
        id: String,
        change: AclDelta,
    },
    /// A pool service's: a pool handle (pool connect) or a container handle (container open,
    /// under its pool handle `parent`).
    HandleOpen(HandleRecord),
    /// A pool service's: handles `cookies` (or, with `all`, every handle) close, with the
    /// container handles under them (disconnect, evict). Answers the cookies removed.
    HandleClose {
        cookies: Vec<u64>,
        all: bool,
    },
}

/// A change of an ACL, applied by the state machine to the ACL it holds, so that concurrent
/// changes compose: no added entry is lost and a deleted one does not come back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclDelta {
    /// These entries replace the ACL.
    Overwrite(Vec<String>),
    /// These entries are added, replacing those of the same principals.
    Update(Vec<String>),
    /// The entry of this principal (DAOS's `u:name@`, `g:name@`, `OWNER@`, ...) goes.
    Delete(String),
}

impl AclDelta {
    /// ACL `current` of an object `of` (`pool tank`; empty: the object's default ACL) with
    /// the change: its entries, in DAOS's short form. Refused, changing nothing, for a bad
    /// entry or principal or a principal without an entry.
    pub fn applied(
        &self,
        current: &[String],
        object: daos_auth::Object,
        of: &str,
    ) -> Result<Vec<String>, Refusal> {
        let bad = |e: daos_auth::AuthError| Refusal::BadAcl(e.to_string());
        let parse = |e: &[String]| daos_auth::Acl::parse(e.iter().map(String::as_str), object);
        let mut acl = daos_auth::Acl::stored(current, object).map_err(bad)?;
        match self {
            AclDelta::Overwrite(e) => acl = parse(e).map_err(bad)?,
            AclDelta::Update(e) => acl.update(&parse(e).map_err(bad)?),
            AclDelta::Delete(who) => {
                let p = daos_auth::Principal::parse(who).map_err(bad)?;
                if !acl.delete(&p) {
                    return Err(Refusal::NoAclEntry {
                        of: of.to_string(),
                        principal: who.clone(),
                    });
                }
            }
        }
        Ok(acl.strings())
    }
}

/// An open pool or container handle in its pool service: the cookie every request carries,
/// the rights it grants (1 read, 2 write), who opened it, and for a container handle its
/// container and pool handle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleRecord {
    pub cookie: u64,
    pub rights: u32,
    pub user: String,
    pub machine: String,
    /// The container's UUID (container handles).
    pub cont: String,
    /// The pool handle a container handle was opened under (0: a pool handle).
    pub parent: u64,
    /// The holder's primary group and other groups (`name@`), for container ACL checks.
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// A container handle opened exclusively (DAOS's `DAOS_COO_EX`): no other handle of the
    /// container while it is open.
    #[serde(default)]
    pub exclusive: bool,
    /// A container handle's permissions, fixed when it opened (DAOS's capabilities: what
    /// the handle may do, whatever the ACL or owner become later); 0: not recorded.
    #[serde(default)]
    pub perms: u16,
}

/// A container in its pool service: UUID (text), label, properties (`name:value;...`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub uuid: String,
    pub label: String,
    pub props: String,
    /// Owner user and group (`name@`) and ACL entries (DAOS's short form); empty for
    /// containers made before ACLs (DAOS's default container ACL applies).
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub owner_group: String,
    #[serde(default)]
    pub acl: Vec<String>,
    /// Object ids handed out so far (DAOS's `ALLOCED_OID`): the next block starts here.
    #[serde(default)]
    pub alloced_oids: u64,
    /// User attributes (DAOS's `daos container set-attr`): name, value.
    #[serde(default)]
    pub attrs: std::collections::BTreeMap<String, Vec<u8>>,
}

/// What an applied command answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Joined(JoinResponse),
    /// The pools that went with a removed member.
    Removed(Vec<PoolRecord>),
    /// The container a container command made or changed (or removed).
    Container(ContainerRecord),
    /// A pool's record after a change of it (boxed: the other answers are small).
    Pool(Box<PoolRecord>),
    /// The handles a command closed.
    Handles(Vec<u64>),
    Done,
}

/// A command the state refuses (the state is unchanged). Messages are DAOS's where DAOS has
/// one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
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
    #[error("rank {rank} fabric provider {got:?} does not match system provider {want:?}")]
    ProviderMismatch {
        rank: u32,
        got: String,
        want: String,
    },
    #[error("rank {0} is not a member of the system")]
    UnknownRank(u32),
    #[error("a pool labelled {0:?} already exists")]
    LabelTaken(String),
    #[error("no pool {0:?} in the system")]
    UnknownPool(String),
    #[error("{0}")]
    Map(String),
    #[error("rebuild of pool map version {version} is stale: the map is at version {current}")]
    StaleRebuild { version: u32, current: u32 },
    #[error(
        "DER_EXIST(-1004): container label {0:?} is already taken in this pool; choose another label"
    )]
    ContLabelTaken(String),
    #[error("DER_EXIST(-1004): container UUID {0} is already in use in this pool")]
    ContUuidTaken(String),
    #[error(
        "DER_NONEXIST(-1005): no container {0:?} in this pool; `daos container list` shows them"
    )]
    UnknownContainer(String),
    #[error(
        "DER_NO_HDL(-1002): no pool handle {0:#x} open in this pool (disconnected or evicted); connect again"
    )]
    UnknownHandle(u64),
    #[error("DER_INVAL(-1003): {0}")]
    BadAcl(String),
    #[error("DER_OVERFLOW(-1017): container {0:?} has handed out every object id (2^64)")]
    OidsExhausted(String),
    #[error(
        "DER_BUSY(-1012): container {cont} {}",
        if *exclusive { "has open handles: an exclusive open waits until they close (or evict them)" } else { "is open exclusively: no other handle until that one closes" }
    )]
    ContBusy { cont: String, exclusive: bool },
    #[error(
        "DER_BUSY(-1012): the pool {}",
        if *exclusive { "has connections: an exclusive connect waits until they disconnect" } else { "is connected exclusively: no other connection until that one disconnects" }
    )]
    PoolBusy { exclusive: bool },
    #[error("DER_NONEXIST(-1005): {of} has none of the attributes {names}")]
    NoAttr { of: String, names: String },
    #[error("DER_NONEXIST(-1005): {of} has no ACL entry for {principal}")]
    NoAclEntry { of: String, principal: String },
}

/// A handle's rights bit of a daos_server's or an admin tool's pool handle: every container,
/// outside ACLs (no client's connection).
pub const RIGHTS_ANY_CONT: u32 = 0x100;

/// The system attribute holding the fabric provider of the first join (DAOS's
/// `fabric_providers`); later joins must use the same.
pub const ATTR_FABRIC_PROVIDERS: &str = "fabric_providers";

/// The replicated state: members, ranks, map version, pools, system attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemDb {
    pub system: String,
    /// The rank the next new member gets (rank 0 is kept for the bootstrap replica's first
    /// engine, as DAOS does).
    pub next_rank: u32,
    pub map_version: u32,
    pub members: Vec<Member>,
    pub pools: Vec<PoolRecord>,
    pub attrs: std::collections::BTreeMap<String, String>,
    /// Commands applied (DAOS's DB version).
    pub version: u64,
    /// In a pool service's state: the pool's containers.
    #[serde(default)]
    pub containers: Vec<ContainerRecord>,
    /// In a pool service's state: its open pool and container handles.
    #[serde(default)]
    pub handles: Vec<HandleRecord>,
    /// In a pool service's state: the pool's user attributes (`daos pool set-attr`).
    #[serde(default)]
    pub pool_attrs: std::collections::BTreeMap<String, Vec<u8>>,
}

/// The provider part of a fabric URI (`ofi+tcp://1.2.3.4:5` -> `ofi+tcp`).
pub fn uri_provider(uri: &str) -> &str {
    uri.split_once("://").map_or(uri, |(p, _)| p)
}

impl SystemDb {
    pub fn new(system: &str) -> SystemDb {
        SystemDb {
            system: system.into(),
            next_rank: 1,
            ..SystemDb::default()
        }
    }

    /// Applies one command: the new state, or a refusal and no change.
    pub fn apply(&mut self, cmd: &Command) -> Result<Reply, Refusal> {
        let mut next = self.clone();
        let reply = next.change(cmd)?;
        next.version += 1;
        *self = next;
        Ok(reply)
    }

    fn change(&mut self, cmd: &Command) -> Result<Reply, Refusal> {
        match cmd {
            Command::Join(req) => self.join(req).map(Reply::Joined),
            Command::SetState { rank, state, info } => {
                let m = self.member_mut(*rank)?;
                if m.state == *state && m.info == *info {
                    return Ok(Reply::Done);
                }
                m.state = *state;
                m.info = info.clone();
                self.map_version += 1;
                Ok(Reply::Done)
            }
            Command::SetStateIf {
                rank,
                incarnation,
                from,
                state,
                info,
            } => {
                let m = self.member_mut(*rank)?;
                if m.incarnation != *incarnation
                    || from.is_some_and(|f| f != m.state)
                    || (m.state == *state && m.info == *info)
                {
                    return Ok(Reply::Done);
                }
                m.state = *state;
                m.info = info.clone();
                self.map_version += 1;
                Ok(Reply::Done)
            }
            Command::MemberRemove { rank } => {
                let before = self.members.len();
                self.members.retain(|m| m.rank != *rank);
                if self.members.len() == before {
                    return Err(Refusal::UnknownRank(*rank));
                }
                let (gone, kept) = std::mem::take(&mut self.pools)
                    .into_iter()
                    .partition(|p| p.ranks.contains(rank));
                self.pools = kept;
                if self.members.is_empty() {
                    self.next_rank = 1;
                    self.attrs.remove(ATTR_FABRIC_PROVIDERS);
                }
                self.map_version += 1;
                Ok(Reply::Removed(gone))
            }
            Command::PoolAdd(pool) => {
                if self.pools.iter().any(|p| p.label == pool.label) {
                    return Err(Refusal::LabelTaken(pool.label.clone()));
                }
                self.pools.push(pool.clone());
                Ok(Reply::Done)
            }
            Command::PoolUpdate(pool) => {
                if self
                    .pools
                    .iter()
                    .any(|p| p.label == pool.label && p.uuid != pool.uuid)
                {
                    return Err(Refusal::LabelTaken(pool.label.clone()));
                }
                let slot = self
                    .pools
                    .iter_mut()
                    .find(|p| p.uuid == pool.uuid)
                    .ok_or_else(|| Refusal::UnknownPool(pool.uuid.clone()))?;
                *slot = pool.clone();
                Ok(Reply::Done)
            }
            Command::PoolAcl { uuid, change } => {
                let pool = self.pool_mut(uuid)?;
                pool.acl = change.applied(
                    &pool.acl,
                    daos_auth::Object::Pool,
                    &format!("pool {}", pool.label),
                )?;
                Ok(Reply::Pool(Box::new(pool.clone())))
            }
            Command::PoolSetProps { uuid, label, props } => {
                if let Some(l) = label
                    && self.pools.iter().any(|p| p.label == *l && p.uuid != *uuid)
                {
                    return Err(Refusal::LabelTaken(l.clone()));
                }
                let pool = self.pool_mut(uuid)?;
                if let Some(l) = label {
                    pool.label = l.clone();
                }
                for (k, v) in props {
                    pool.props.insert(k.clone(), v.clone());
                }
                Ok(Reply::Pool(Box::new(pool.clone())))
            }
            Command::PoolSetState { uuid, state, from } => {
                let pool = self.pool_mut(uuid)?;
                if from.is_none_or(|f| f == pool.state) {
                    pool.state = *state;
                }
                Ok(Reply::Pool(Box::new(pool.clone())))
            }
            Command::PoolRemove { uuid } => {
                let before = self.pools.len();
                self.pools.retain(|p| p.uuid != *uuid);
                if self.pools.len() == before {
                    return Err(Refusal::UnknownPool(uuid.clone()));
                }
                Ok(Reply::Done)
            }
            Command::PoolTargets {
                uuid,
                op,
                rank,
                idx,
                targets,
            } => {
                let pool = self.pool_mut(uuid)?;
                if !pool.ranks.contains(rank) {
                    return Err(Refusal::Map(
                        daos_placement::MapError::NoRank(*rank).to_string(),
                    ));
                }
                let version = pool.map.version();
                let states = pool.map.states.get(rank).cloned().unwrap_or_else(|| {
                    vec![daos_placement::TargetState::UpIn; (*targets).max(1) as usize]
                });
                // The transitions are the placement crate's, on a one-rank map.
                let mut one = daos_placement::PoolMap::new(&[("", *rank, states.len() as u32)]);
                one.nodes[0].ranks[0].targets = states.clone();
                one.apply(*op, *rank, idx)
                    .map_err(|e| Refusal::Map(e.to_string()))?;
                let next = one.nodes[0].ranks[0].targets.clone();
                if next == states {
                    return Ok(Reply::Done);
                }
                pool.map.states.insert(*rank, next);
                pool.map.version = version + 1;
                pool.map.rebuild = crate::Rebuild {
                    state: crate::RebuildState::Busy,
                    version: version + 1,
                    objs: 0,
                    recs: 0,
                };
                Ok(Reply::Done)
            }
            Command::PoolExtend {
                uuid,
                ranks,
                targets,
            } => {
                let pool = self.pool_mut(uuid)?;
                if let Some(r) = ranks.iter().find(|r| pool.ranks.contains(r)) {
                    return Err(Refusal::Map(
                        daos_placement::MapError::Duplicate(*r).to_string(),
                    ));
                }
                if ranks.is_empty() {
                    return Ok(Reply::Done);
                }
                let version = pool.map.version() + 1;
                for &r in ranks {
                    pool.ranks.push(r);
                    pool.map.states.insert(
                        r,
                        vec![daos_placement::TargetState::Up; (*targets).max(1) as usize],
                    );
                }
                pool.map.version = version;
                pool.map.rebuild = crate::Rebuild {
                    state: crate::RebuildState::Busy,
                    version,
                    objs: 0,
                    recs: 0,
                };
                Ok(Reply::Done)
            }
            Command::PoolMirror { uuid, ranks, map } => {
                let pool = self.pool_mut(uuid)?;
                if map.version() >= pool.map.version() {
                    pool.map = map.clone();
                    for r in ranks {
                        if !pool.ranks.contains(r) {
                            pool.ranks.push(*r);
                        }
                    }
                }
                Ok(Reply::Done)
            }
            Command::PoolRebuild {
                uuid,
                version,
                objs,
                recs,
                done,
            } => {
                let pool = self.pool_mut(uuid)?;
                let current = pool.map.version();
                if *version != current {
                    return Err(Refusal::StaleRebuild {
                        version: *version,
                        current,
                    });
                }
                pool.map.rebuild = crate::Rebuild {
                    state: if *done {
                        crate::RebuildState::Done
                    } else {
                        crate::RebuildState::Busy
                    },
                    version: *version,
                    objs: *objs,
                    recs: *recs,
                };
                if *done {
                    let mut changed = false;
                    for states in pool.map.states.values_mut() {
                        for (i, s) in states.iter_mut().enumerate() {
                            let target = daos_placement::TargetId {
                                rank: 0,
                                idx: i as u32,
                            };
                            let next = daos_placement::MapOp::FinishRebuild
                                .transition(target, *s)
                                .unwrap_or(*s);
                            changed |= next != *s;
                            *s = next;
                        }
                    }
                    if changed {
                        pool.map.version = current + 1;
                    }
                }
                Ok(Reply::Done)
            }
            Command::SetAttr { key, value } => {
                if value.is_empty() {
                    self.attrs.remove(key);
                } else {
                    self.attrs.insert(key.clone(), value.clone());
                }
                Ok(Reply::Done)
            }
            Command::ContCreate(c) => {
                if self.containers.iter().any(|x| x.uuid == c.uuid) {
                    return Err(Refusal::ContUuidTaken(c.uuid.clone()));
                }
                // DAOS's containers may have no label; those that have one are unique by it.
                if !c.label.is_empty() && self.containers.iter().any(|x| x.label == c.label) {
                    return Err(Refusal::ContLabelTaken(c.label.clone()));
                }
                self.containers.push(c.clone());
                Ok(Reply::Container(c.clone()))
            }
            Command::ContOidAlloc { id, num } => {
                let i = self.container_index(id)?;
                let c = &mut self.containers[i];
                c.alloced_oids = c
                    .alloced_oids
                    .checked_add(*num)
                    .ok_or(Refusal::OidsExhausted(c.label.clone()))?;
                Ok(Reply::Container(c.clone()))
            }
            Command::PoolAttrs { set, del } => {
                let a = &mut self.pool_attrs;
                if set.is_empty() && !del.is_empty() && !del.iter().any(|n| a.contains_key(n)) {
                    return Err(Refusal::NoAttr {
                        of: "the pool".into(),
                        names: del.join(", "),
                    });
                }
                for n in del {
                    a.remove(n);
                }
                for (n, v) in set {
                    a.insert(n.clone(), v.clone());
                }
                Ok(Reply::Done)
            }
            Command::ContAttrs { id, set, del } => {
                let i = self.container_index(id)?;
                let c = &mut self.containers[i];
                if set.is_empty() && !del.is_empty() && !del.iter().any(|n| c.attrs.contains_key(n))
                {
                    return Err(Refusal::NoAttr {
                        of: format!("container {}", c.label),
                        names: del.join(", "),
                    });
                }
                for n in del {
                    c.attrs.remove(n);
                }
                for (n, v) in set {
                    c.attrs.insert(n.clone(), v.clone());
                }
                Ok(Reply::Container(c.clone()))
            }
            Command::ContDestroy { id } => {
                let i = self.container_index(id)?;
                Ok(Reply::Container(self.containers.remove(i)))
            }
            Command::ContSetProps { id, props, label } => {
                let i = self.container_index(id)?;
                if let Some(l) = label.as_ref().filter(|l| **l != self.containers[i].label) {
                    if self.containers.iter().any(|x| x.label == *l) {
                        return Err(Refusal::ContLabelTaken(l.clone()));
                    }
                    self.containers[i].label = l.clone();
                }
                self.containers[i].props = props.clone();
                Ok(Reply::Container(self.containers[i].clone()))
            }
            Command::ContAcl {
                id,
                owner,
                owner_group,
                acl,
            } => {
                let i = self.container_index(id)?;
                let c = &mut self.containers[i];
                if let Some(o) = owner {
                    c.owner = o.clone();
                }
                if let Some(g) = owner_group {
                    c.owner_group = g.clone();
                }
                if let Some(a) = acl {
                    c.acl = a.clone();
                }
                Ok(Reply::Container(c.clone()))
            }
            Command::ContAclChange { id, change } => {
                let i = self.container_index(id)?;
                let c = &mut self.containers[i];
                c.acl = change.applied(
                    &c.acl,
                    daos_auth::Object::Container,
                    &format!("container {}", c.label),
                )?;
                Ok(Reply::Container(c.clone()))
            }
            Command::HandleOpen(h) => {
                if h.parent != 0
                    && !self
                        .handles
                        .iter()
                        .any(|x| x.cookie == h.parent && x.parent == 0)
                {
                    return Err(Refusal::UnknownHandle(h.parent));
                }
                if !self.handles.iter().any(|x| x.cookie == h.cookie) {
                    // A client's pool connection (DAOS_PC_EX): daos_servers' own handles
                    // do not count.
                    let client_pool = |x: &HandleRecord| {
                        x.parent == 0 && x.cont.is_empty() && x.rights & RIGHTS_ANY_CONT == 0
                    };
                    if client_pool(h) {
                        let busy = if h.exclusive {
                            self.handles.iter().any(client_pool)
                        } else {
                            self.handles.iter().any(|x| client_pool(x) && x.exclusive)
                        };
                        if busy {
                            return Err(Refusal::PoolBusy {
                                exclusive: h.exclusive,
                            });
                        }
                    }
                    if !h.cont.is_empty() {
                        let others = self.handles.iter().filter(|x| x.cont == h.cont);
                        let mut others = others.peekable();
                        let busy = if h.exclusive {
                            others.peek().is_some()
                        } else {
                            others.any(|x| x.exclusive)
                        };
                        if busy {
                            return Err(Refusal::ContBusy {
                                cont: h.cont.clone(),
                                exclusive: h.exclusive,
                            });
                        }
                    }
                    self.handles.push(h.clone());
                }
                Ok(Reply::Done)
            }
            Command::HandleClose { cookies, all } => {
                let mut gone = Vec::new();
                self.handles.retain(|x| {
                    let closes = *all || cookies.contains(&x.cookie) || cookies.contains(&x.parent);
                    if closes {
                        gone.push(x.cookie);
                    }
                    !closes
                });
                Ok(Reply::Handles(gone))
            }
        }
    }

    /// Container `id` (label or UUID, any case) of a pool service's state.
    pub fn container(&self, id: &str) -> Option<&ContainerRecord> {
        self.container_index(id).ok().map(|i| &self.containers[i])
    }

    fn container_index(&self, id: &str) -> Result<usize, Refusal> {
        self.containers
            .iter()
            .position(|c| (!c.label.is_empty() && c.label == id) || c.uuid.eq_ignore_ascii_case(id))
            .ok_or_else(|| Refusal::UnknownContainer(id.to_string()))
    }

    fn pool_mut(&mut self, uuid: &str) -> Result<&mut PoolRecord, Refusal> {
        self.pools
            .iter_mut()
            .find(|p| p.uuid == uuid)
            .ok_or_else(|| Refusal::UnknownPool(uuid.to_string()))
    }

    fn member_mut(&mut self, rank: u32) -> Result<&mut Member, Refusal> {
        self.members
            .iter_mut()
            .find(|m| m.rank == rank)
            .ok_or(Refusal::UnknownRank(rank))
    }

    /// DAOS's join: a known UUID rejoins with its rank (same rank, same control address, not
    /// excluded by the admin); a new one gets the rank it asks for if free, else rank 0 when
    /// it is the bootstrap replica's first engine, else the next rank.
    fn join(&mut self, req: &JoinRequest) -> Result<JoinResponse, Refusal> {
        if req.system != self.system {
            return Err(Refusal::WrongSystem {
                want: self.system.clone(),
                got: req.system.clone(),
            });
        }
        let provider = uri_provider(&req.uri);
        if let Some(want) = self.attrs.get(ATTR_FABRIC_PROVIDERS) {
            if want != provider {
                let rank = self
                    .members
                    .iter()
                    .find(|m| m.uuid == req.uuid)
                    .map(|m| m.rank)
                    .or(req.rank)
                    .unwrap_or(u32::MAX);
                return Err(Refusal::ProviderMismatch {
                    rank,
                    got: provider.into(),
                    want: want.clone(),
                });
            }
        } else {
            self.attrs
                .insert(ATTR_FABRIC_PROVIDERS.into(), provider.into());
        }
        if let Some(m) = self.members.iter().find(|m| m.uuid == req.uuid) {
            if let Some(r) = req.rank.filter(|r| *r != m.rank) {
                return Err(Refusal::RankChanged {
                    uuid: m.uuid.clone(),
                    cur: m.rank,
                    new: r,
                });
            }
            if m.state == MemberState::AdminExcluded {
                return Err(Refusal::AdminExcluded {
                    uuid: m.uuid.clone(),
                    rank: m.rank,
                });
            }
            if m.addr != req.addr {
                return Err(Refusal::AddrChanged {
                    uuid: m.uuid.clone(),
                    rank: m.rank,
                    cur: m.addr.clone(),
                    new: req.addr.clone(),
                });
            }
        }
        self.map_version += 1;
        if let Some(m) = self.members.iter_mut().find(|m| m.uuid == req.uuid) {
            m.fabric_uri = req.uri.clone();
            m.fabric_contexts = req.nctxs;
            m.incarnation = req.incarnation;
            m.fault_domain = req.fault_domain.clone();
            m.state = MemberState::Joined;
            m.info.clear();
            return Ok(JoinResponse {
                rank: m.rank,
                map_version: self.map_version,
                rejoined: true,
            });
        }
        let taken = |r: u32| self.members.iter().find(|m| m.rank == r);
        let rank = match req.rank {
            Some(r) => {
                if let Some(other) = taken(r) {
                    return Err(Refusal::RankTaken {
                        rank: r,
                        uuid: other.uuid.clone(),
                        new: req.uuid.clone(),
                    });
                }
                r
            }
            None if req.bootstrap && taken(0).is_none() => 0,
            None => {
                let mut r = self.next_rank.max(1);
                while taken(r).is_some() {
                    r += 1;
                }
                r
            }
        };
        self.next_rank = self.next_rank.max(rank + 1);
        self.members.push(Member {
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
        self.members.sort_by_key(|m| m.rank);
        Ok(JoinResponse {
            rank,
            map_version: self.map_version,
            rejoined: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(cookie: u64, cont: &str, parent: u64, exclusive: bool) -> HandleRecord {
        HandleRecord {
            cookie,
            rights: 3,
            user: "u@".into(),
            cont: cont.into(),
            parent,
            exclusive,
            ..Default::default()
        }
    }

    fn open(db: &mut SystemDb, h: HandleRecord) -> Result<Reply, Refusal> {
        db.apply(&Command::HandleOpen(h))
    }

    #[test]
    fn an_exclusive_pool_connection_keeps_other_clients_out_but_not_daemons() {
        let mut db = SystemDb::new("daos_server");
        // A daos_server's own handle does not count.
        let mut system = handle(1, "", 0, false);
        system.rights |= RIGHTS_ANY_CONT;
        open(&mut db, system).unwrap();
        open(&mut db, handle(2, "", 0, false)).unwrap();
        assert_eq!(
            open(&mut db, handle(3, "", 0, true)),
            Err(Refusal::PoolBusy { exclusive: true })
        );
        db.apply(&Command::HandleClose {
            cookies: vec![2],
            all: false,
        })
        .unwrap();
        open(&mut db, handle(3, "", 0, true)).unwrap();
        assert_eq!(
            open(&mut db, handle(4, "", 0, false)),
            Err(Refusal::PoolBusy { exclusive: false })
        );
        // The same open sent again is no conflict.
        open(&mut db, handle(3, "", 0, true)).unwrap();
        // Container handles under the exclusive connection are its own business.
        open(&mut db, handle(5, "c", 3, false)).unwrap();
    }

    #[test]
    fn an_exclusive_container_handle_is_alone_on_its_container() {
        let mut db = SystemDb::new("daos_server");
        open(&mut db, handle(1, "", 0, false)).unwrap();
        open(&mut db, handle(2, "c1", 1, false)).unwrap();
        let busy = open(&mut db, handle(3, "c1", 1, true)).unwrap_err();
        assert!(busy.to_string().starts_with("DER_BUSY(-1012)"), "{busy}");
        // Another container is another matter.
        open(&mut db, handle(4, "c2", 1, true)).unwrap();
        assert!(open(&mut db, handle(5, "c2", 1, false)).is_err());
        open(&mut db, handle(6, "c1", 1, false)).unwrap();
    }

    #[test]
    fn attributes_are_set_deleted_and_a_delete_of_none_is_refused() {
        let mut db = SystemDb::new("daos_server");
        db.apply(&Command::ContCreate(ContainerRecord {
            uuid: "u1".into(),
            label: "c".into(),
            ..Default::default()
        }))
        .unwrap();
        let set = |db: &mut SystemDb, set: Vec<(&str, &[u8])>, del: Vec<&str>| {
            db.apply(&Command::ContAttrs {
                id: "c".into(),
                set: set
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v.to_vec()))
                    .collect(),
                del: del.into_iter().map(str::to_string).collect(),
            })
        };
        set(&mut db, vec![("a", b"1"), ("b", b"\0\xff")], vec![]).unwrap();
        assert_eq!(db.container("c").unwrap().attrs["b"], b"\0\xff");
        set(&mut db, vec![], vec!["a", "zz"]).unwrap();
        assert!(!db.container("c").unwrap().attrs.contains_key("a"));
        let none = set(&mut db, vec![], vec!["a"]).unwrap_err();
        assert!(matches!(none, Refusal::NoAttr { .. }), "{none}");
        db.apply(&Command::PoolAttrs {
            set: vec![("p".into(), b"v".to_vec())],
            del: vec![],
        })
        .unwrap();
        assert_eq!(db.pool_attrs["p"], b"v");
        assert!(
            db.apply(&Command::PoolAttrs {
                set: vec![],
                del: vec!["q".into()],
            })
            .is_err()
        );
    }
}
