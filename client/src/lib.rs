//! The client library of daos-rs (its libdaos): talks to engine targets over libfabric with the
//! protocol in [`daos_wire`].
//!
//! - [`PoolMap`]: where a pool's targets listen (from the management service's GetAttachInfo
//!   and pool query, which `daos-ctl` fetches) and which target holds an object: a
//!   deterministic hash of the object id over the pool's targets.
//! - [`Session`]: one fabric endpoint, used by one thread. [`Session::submit`] and
//!   [`Session::poll`] keep many operations in flight (queue depth) without allocating; the
//!   blocking methods (`update`, `fetch`, container calls, ...) are built on them.
//!
//! Every operation has a deadline; an engine that does not answer in time gives
//! [`ClientError::Timeout`] and a reply that comes later is dropped.

pub mod agent;
pub mod cart;
pub mod connect;
pub mod container;
pub mod kv;
pub mod props;
pub mod rebuild;

use std::sync::Arc;
use std::time::{Duration, Instant};

use daos_fabric::{EndpointError, Peer, RdmEndpoint};
use daos_wire::{
    self as wire, BULK_THRESHOLD, Bulk, Header, PunchWhat, Request, der, encode_request, reply,
};
use daos_wire::{libfabric_provider, target_port};

pub use daos_wire::{parse_uuid, uuid_text};

/// An object id.
pub type Oid = u128;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("fabric: {0}")]
    Fabric(#[from] EndpointError),
    /// A request could not be sent to a target (libfabric refused the send: no route, the
    /// peer's address unusable, a connection that failed).
    #[error(
        "cannot send to rank {rank} target {target} at {addr}: {source}; its host is down or cut off from this one (see dmg system query, and check the network between them)"
    )]
    Unreachable {
        rank: u32,
        target: u32,
        addr: String,
        source: EndpointError,
    },
    #[error(
        "rank {rank} target {target} did not answer {op:?} within {ms} ms (engine down or restarting?; pool map version {map_version}, target {state})"
    )]
    Timeout {
        rank: u32,
        target: u32,
        op: wire::Op,
        ms: u128,
        map_version: u32,
        state: &'static str,
    },
    #[error("rank {rank} target {target}: {message} ({name}({code}))")]
    Der {
        rank: u32,
        target: u32,
        code: i32,
        name: &'static str,
        message: String,
    },
    #[error("malformed reply from rank {rank} target {target}: {what}")]
    BadReply {
        rank: u32,
        target: u32,
        what: String,
    },
    #[error("request of {len} bytes exceeds this session's {max}-byte messages; raise max_value")]
    TooLarge { len: usize, max: usize },
    #[error("{0} operations already in flight (the session's queue depth); poll first")]
    QueueFull(usize),
    #[error("bad engine URI {0:?} (expected provider://host:port)")]
    BadUri(String),
    #[error("the pool has no targets on joined ranks")]
    NoTargets,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("key {key:?} was replaced {attempts} times while it was read; try again")]
    Contended { key: String, attempts: usize },
    /// The object's class cannot be placed on this pool.
    #[error("{0}")]
    Placement(#[from] daos_placement::PlacementError),
    /// The target knows a newer pool map than the one the request was built on.
    #[error(
        "rank {rank} target {target}: stale pool map version {ours} (the target has {theirs}); refresh the pool map (DER_STALE({}))",
        der::STALE
    )]
    Stale {
        rank: u32,
        target: u32,
        ours: u32,
        theirs: u32,
    },
    /// The session's map could not be refreshed.
    #[error("cannot refresh the pool map: {0}")]
    Refresh(String),
    /// Objects could not be listed on every target.
    #[error(
        "ranks {ranks:?} are down or did not answer: objects with a copy only there cannot be listed ({listed} listed from the other targets)"
    )]
    Unlisted { ranks: Vec<u32>, listed: usize },
}

/// A container's objects as [`Session::list_objects_partial`] found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectList {
    /// Every object listed, in id order, once.
    pub oids: Vec<Oid>,
    /// The targets (rank, target index) not listed: rank reported down, or no answer.
    pub unlisted: Vec<(u32, u32)>,
}

impl ObjectList {
    /// The ranks of [`Self::unlisted`], each once, in order.
    pub fn unlisted_ranks(&self) -> Vec<u32> {
        let mut r: Vec<u32> = self.unlisted.iter().map(|(r, _)| *r).collect();
        r.sort_unstable();
        r.dedup();
        r
    }
}

impl ClientError {
    /// The DER code of a target's refusal, if that is what this is.
    pub fn der(&self) -> Option<i32> {
        match self {
            ClientError::Der { code, .. } => Some(*code),
            ClientError::Stale { .. } => Some(der::STALE),
            _ => None,
        }
    }
}

/// One target of a pool and where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetAddr {
    pub rank: u32,
    pub target: u32,
    pub node: String,
    pub port: u16,
}

/// A pool's targets, in (rank, target) order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolMap {
    pub uuid: [u8; 16],
    /// libfabric provider name (`tcp;ofi_rxm`).
    pub provider: String,
    pub targets: Vec<TargetAddr>,
    /// The same targets as a placement map: ranks grouped into nodes by the host of their
    /// fabric URI (the `node` fault domain), for objects whose id carries a class.
    pub placement: daos_placement::PoolMap,
    /// The version of the system map the management service built it from (GetAttachInfo's
    /// `data_version`); 0 when not known.
    pub version: u32,
    /// Ranks the management service reported down when the map was made: their replicas are
    /// read last (their shards stay where placement put them: nothing was rebuilt).
    pub down: Vec<u32>,
    /// Some target waits for a rebuild (down, drain, or up after a reintegration): shards
    /// placement moved onto other targets may not hold their data yet and are read last.
    pub rebuilding: bool,
    /// While targets drain: the map once they are out (draining targets as down), where
    /// their shards are going.
    pub drained: Option<daos_placement::PoolMap>,
    /// The pool handle (pool connect) sessions on this map send; 0: none.
    pub handle: u64,
    /// Container handles (container open) sessions on this map send with each container's
    /// requests.
    pub cont_handles: Vec<([u8; 16], u64)>,
}

/// An engine as GetAttachInfo describes it.
#[derive(Clone, Debug)]
pub struct RankUri {
    pub rank: u32,
    /// `ofi+tcp;ofi_rxm://127.0.0.1:31416`
    pub uri: String,
    /// 1 + targets.
    pub num_ctxs: u32,
}

/// Splits `provider://host:port`.
pub fn parse_uri(uri: &str) -> Result<(String, String, u16), ClientError> {
    let bad = || ClientError::BadUri(uri.into());
    let (provider, addr) = uri.split_once("://").ok_or_else(bad)?;
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((libfabric_provider(provider), host.to_string(), port))
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: every bit of the id moves the result.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl PoolMap {
    /// The pool's targets: every target of each of the pool's `ranks` that `engines` lists.
    pub fn new(uuid: [u8; 16], ranks: &[u32], engines: &[RankUri]) -> Result<PoolMap, ClientError> {
        let mut targets = Vec::new();
        let mut provider = String::new();
        let mut ranks = ranks.to_vec();
        ranks.sort_unstable();
        for rank in ranks {
            let Some(e) = engines.iter().find(|e| e.rank == rank) else {
                continue;
            };
            let (p, host, base) = parse_uri(&e.uri)?;
            provider = p;
            for t in 0..e.num_ctxs.saturating_sub(1) {
                targets.push(TargetAddr {
                    rank,
                    target: t,
                    node: host.clone(),
                    port: target_port(base, t),
                });
            }
        }
        if targets.is_empty() {
            return Err(ClientError::NoTargets);
        }
        let mut spec: Vec<(String, u32, u32)> = Vec::new();
        for t in &targets {
            match spec.last_mut() {
                Some(last) if last.1 == t.rank => last.2 += 1,
                _ => spec.push((t.node.clone(), t.rank, 1)),
            }
        }
        let spec: Vec<(&str, u32, u32)> =
            spec.iter().map(|(n, r, t)| (n.as_str(), *r, *t)).collect();
        Ok(PoolMap {
            uuid,
            provider,
            placement: daos_placement::PoolMap::new(&spec),
            targets,
            version: 0,
            down: Vec::new(),
            rebuilding: false,
            drained: None,
            handle: 0,
            cont_handles: Vec::new(),
        })
    }

    /// The same map with container `cont`'s handle (sessions opened on it send it).
    pub fn with_cont_handle(mut self, cont: [u8; 16], handle: u64) -> PoolMap {
        self.cont_handles.retain(|(c, _)| *c != cont);
        self.cont_handles.push((cont, handle));
        self
    }

    /// The same map with pool handle `handle` (sessions opened on it send it).
    pub fn with_handle(mut self, handle: u64) -> PoolMap {
        self.handle = handle;
        self
    }

    /// The same map with the pool map's target states (per rank; ranks not given stay UPIN)
    /// and its version.
    pub fn with_states(
        mut self,
        states: &[(u32, Vec<daos_placement::TargetState>)],
        version: u32,
    ) -> PoolMap {
        use daos_placement::TargetState::{Down, Drain, Up};
        for node in &mut self.placement.nodes {
            for r in &mut node.ranks {
                if let Some((_, s)) = states.iter().find(|(rank, _)| *rank == r.rank) {
                    for (t, state) in r.targets.iter_mut().zip(s) {
                        *t = *state;
                    }
                }
            }
        }
        self.placement.version = version.max(1);
        self.rebuilding = self
            .placement
            .targets()
            .any(|(_, s)| matches!(s, Down | Drain | Up));
        self.drained = self.placement.targets().any(|(_, s)| s == Drain).then(|| {
            let mut after = self.placement.clone();
            for node in &mut after.nodes {
                for r in &mut node.ranks {
                    for t in &mut r.targets {
                        if *t == Drain {
                            *t = Down;
                        }
                    }
                }
            }
            after
        });
        self
    }

    /// [`Self::shards`] in the order a read tries them: while a rebuild is pending, shards
    /// placement moved (their new target may not have the data yet) come last.
    pub fn read_shards(&self, oid: Oid) -> Result<Vec<usize>, ClientError> {
        if !self.rebuilding {
            return self.shards(oid);
        }
        let Ok(class) = daos_placement::ObjectClass::of_oid(oid) else {
            return Ok(vec![self.place(oid)]);
        };
        let layout =
            daos_placement::place(&self.placement, oid, class, daos_placement::rd_lvl_of(oid))?;
        // Moved shards, and shards on targets being filled (up: reintegrated or added), may
        // not hold their data yet; so may shards an extension moved between old nodes.
        let settled = self.layouts_before_extension(oid, class);
        let mut order: Vec<(bool, usize)> = layout
            .shards
            .iter()
            .map(|s| {
                let t = self.index_of(s.target);
                let filling =
                    self.placement.state(s.target) == Some(daos_placement::TargetState::Up);
                let shifted = settled.iter().any(|old| !old.contains(&t));
                (s.remapped || filling || shifted, t)
            })
            .collect();
        order.sort_by_key(|(moved, _)| *moved);
        Ok(order.into_iter().map(|(_, t)| t).collect())
    }

    /// The maps the pool may have had before an extension under way: for each set of the
    /// nodes none of whose targets is up_in or drain and some up or down (ranks added and not
    /// yet rebuilt onto, or excluded since; also ranks reintegrated or just excluded, which
    /// cannot be told apart here), the map with those nodes left out (NEW). An extension adds
    /// a bucket to the jump hash (not always the last one: nodes are in rank order), and
    /// shards can then move between old nodes too, onto a target that is up_in but does not
    /// hold them: a shard whose target is not in its layout on each of these maps is filled
    /// and read last like moved ones. A node all down_out is settled: the pass that took it
    /// out filled what it moved. Empty: no such node.
    fn before_extensions(&self) -> Vec<daos_placement::PoolMap> {
        use daos_placement::TargetState::{Down, Drain, New, Up, UpIn};
        let transitional: Vec<usize> = self
            .placement
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                let targets = || n.ranks.iter().flat_map(|r| &r.targets);
                !targets().any(|s| matches!(s, UpIn | Drain))
                    && targets().any(|s| matches!(s, Up | Down))
            })
            .map(|(i, _)| i)
            .collect();
        // Every set of up to 4 such nodes (an extension adds one or a few), and all of them.
        let k = transitional.len().min(4);
        let mut sets: Vec<Vec<usize>> = (1u32..(1 << k))
            .map(|m| {
                (0..k)
                    .filter(|b| m & (1 << b) != 0)
                    .map(|b| transitional[b])
                    .collect()
            })
            .collect();
        if transitional.len() > k {
            sets.push(transitional.clone());
        }
        sets.into_iter()
            .filter_map(|set| {
                let mut before = self.placement.clone();
                for &i in &set {
                    for r in &mut before.nodes[i].ranks {
                        r.targets.iter_mut().for_each(|t| *t = New);
                    }
                }
                let left = before.targets().any(|(_, s)| s != New);
                left.then_some(before)
            })
            .collect()
    }

    /// `oid`'s shard targets on each map of [`Self::before_extensions`] it can be placed on.
    fn layouts_before_extension(
        &self,
        oid: Oid,
        class: daos_placement::ObjectClass,
    ) -> Vec<Vec<usize>> {
        self.before_extensions()
            .iter()
            .filter_map(|before| self.layout_on(before, oid, class).ok())
            .collect()
    }

    /// While a rebuild is pending and no shard of `oid`'s layout surely holds its data
    /// (every one moved or being filled: e.g. both replicas reintegrated at once), the targets
    /// that may hold its newest values: the layout's, and where the shards being filled were
    /// placed before (the layout with those targets out, which stopped getting updates when
    /// they came back). A read then asks each and takes the newest (by epoch), never a filled
    /// target's old value. `None`: a shard kept its place and has every value.
    pub fn uncertain_read_targets(&self, oid: Oid) -> Result<Option<Vec<usize>>, ClientError> {
        use daos_placement::TargetState::{DownOut, Up};
        if !self.rebuilding {
            return Ok(None);
        }
        let Ok(class) = daos_placement::ObjectClass::of_oid(oid) else {
            return Ok(None);
        };
        let lvl = daos_placement::rd_lvl_of(oid);
        let layout = daos_placement::place(&self.placement, oid, class, lvl)?;
        let settled = self.layouts_before_extension(oid, class);
        if layout.shards.iter().any(|s| {
            !s.remapped
                && self.placement.state(s.target) != Some(Up)
                && settled
                    .iter()
                    .all(|old| old.contains(&self.index_of(s.target)))
        }) {
            return Ok(None);
        }
        let mut before = self.placement.clone();
        for node in &mut before.nodes {
            for r in &mut node.ranks {
                for t in &mut r.targets {
                    if *t == Up {
                        *t = DownOut;
                    }
                }
            }
        }
        let mut out = self.layout_on(&self.placement, oid, class)?;
        // A map of nothing but filled targets has no "before" (a new pool's extension).
        let old = self.layout_on(&before, oid, class).ok();
        for t in old.into_iter().chain(settled).flatten() {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(Some(out))
    }

    /// The same map with `ranks` reported down.
    pub fn with_down(mut self, ranks: &[u32]) -> PoolMap {
        self.down = ranks.to_vec();
        self
    }

    /// The targets (indices into `targets`) of `oid`'s shards, group by group: by its class
    /// and the jump map, groups on distinct nodes, when its id carries a class; else the one
    /// target its id hashes to. While targets drain, also the targets their shards move to
    /// (an update goes to both, so the rebuild that empties them loses nothing).
    pub fn shards(&self, oid: Oid) -> Result<Vec<usize>, ClientError> {
        let Ok(class) = daos_placement::ObjectClass::of_oid(oid) else {
            return Ok(vec![self.place(oid)]);
        };
        let mut out = self.layout_on(&self.placement, oid, class)?;
        if let Some(after) = &self.drained {
            for t in self.layout_on(after, oid, class)? {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    /// The targets a rebuild may have to fill for `oid`: shards placement moved off a failed
    /// target, shards on targets being filled (up: reintegrated or added), and, while
    /// targets drain, where their shards go. An object with none needs no work.
    pub fn rebuild_targets(&self, oid: Oid) -> Result<Vec<usize>, ClientError> {
        let Ok(class) = daos_placement::ObjectClass::of_oid(oid) else {
            return Ok(Vec::new());
        };
        let layout =
            daos_placement::place(&self.placement, oid, class, daos_placement::rd_lvl_of(oid))?;
        let index = |t: daos_placement::TargetId| {
            self.targets
                .iter()
                .position(|x| x.rank == t.rank && x.target == t.idx)
        };
        let mut out: Vec<usize> = layout
            .shards
            .iter()
            .filter(|s| {
                !s.lost
                    && (s.remapped
                        || self.placement.state(s.target) == Some(daos_placement::TargetState::Up))
            })
            .filter_map(|s| index(s.target))
            .collect();
        let now = self.layout_on(&self.placement, oid, class)?;
        let settled = self.layouts_before_extension(oid, class);
        for &t in &now {
            if settled.iter().any(|old| !old.contains(&t)) && !out.contains(&t) {
                out.push(t);
            }
        }
        if let Some(after) = &self.drained {
            for t in self.layout_on(after, oid, class)? {
                if !now.contains(&t) && !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    /// The index into `targets` of placement target `t` (0 if the map lacks it).
    fn index_of(&self, t: daos_placement::TargetId) -> usize {
        self.targets
            .iter()
            .position(|x| x.rank == t.rank && x.target == t.idx)
            .unwrap_or(0)
    }

    /// The targets of `oid`'s shards once the moves under way are done: where draining
    /// targets' shards go, else the layout now (targets being filled included).
    pub fn final_layout(&self, oid: Oid) -> Result<Vec<usize>, ClientError> {
        let Ok(class) = daos_placement::ObjectClass::of_oid(oid) else {
            return Ok(vec![self.place(oid)]);
        };
        self.layout_on(self.drained.as_ref().unwrap_or(&self.placement), oid, class)
    }

    /// `oid`'s shard targets on `map`.
    fn layout_on(
        &self,
        map: &daos_placement::PoolMap,
        oid: Oid,
        class: daos_placement::ObjectClass,
    ) -> Result<Vec<usize>, ClientError> {
        let layout = daos_placement::place(map, oid, class, daos_placement::rd_lvl_of(oid))?;
        Ok(layout
            .shards
            .iter()
            .map(|s| {
                self.targets
                    .iter()
                    .position(|t| t.rank == s.target.rank && t.target == s.target.idx)
                    .unwrap_or(0)
            })
            .collect())
    }

    /// The same map, marked as built from system map `version`.
    pub fn with_version(mut self, version: u32) -> PoolMap {
        self.version = version;
        self
    }

    /// The target (index into `targets`) that holds object `oid`.
    pub fn place(&self, oid: Oid) -> usize {
        let h = mix(oid as u64 ^ mix((oid >> 64) as u64));
        (h % self.targets.len() as u64) as usize
    }

    /// The targets keeping the pool's container table: the first target of the first rank of
    /// each of the pool's first three nodes (one on a single-host pool), so the table outlives
    /// a host.
    pub fn services(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut nodes: Vec<&str> = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            if out.len() == 3 {
                break;
            }
            if !nodes.contains(&t.node.as_str()) {
                nodes.push(&t.node);
                out.push(i);
            }
        }
        out
    }
}

/// A reply as [`Session::poll`] hands it over: borrowed from the receive buffer.
#[derive(Debug)]
pub struct Reply<'a> {
    pub tag: u64,
    /// The body (for a refusal, already turned into the `Err`).
    pub body: &'a [u8],
    /// For a fetch or read moved by RMA: the bytes the target wrote into this session's
    /// registered buffer.
    pub bulk: Option<&'a [u8]>,
    /// The fetched value's epoch (a read: the newest extent's in the range), a change's
    /// epoch, or else the target's clock.
    pub epoch: u64,
}

impl Reply<'_> {
    /// A fetch's value (`None`: nothing stored); `None` outside when the reply is malformed.
    pub fn fetched(&self) -> Option<Option<&[u8]>> {
        match reply::Fetched::get(self.body).ok()? {
            reply::Fetched::None => Some(None),
            reply::Fetched::Inline(v) => Some(Some(v)),
            reply::Fetched::Bulk(_) => self.bulk.map(Some),
        }
    }

    /// A read's bytes; `None` when the reply is malformed.
    pub fn read_data(&self) -> Option<&[u8]> {
        match self.bulk {
            Some(b) => Some(b),
            None => reply::Data::get_inline(self.body).ok(),
        }
    }
}

/// How a session is sized.
#[derive(Clone, Copy, Debug)]
pub struct SessionOpts {
    /// Operations in flight at most.
    pub queue_depth: usize,
    /// Largest value sent or fetched in one operation.
    pub max_value: usize,
    /// Deadline of each operation.
    pub timeout: Duration,
}

impl Default for SessionOpts {
    /// 16 in flight, 1 MiB values, and a deadline of `CRT_TIMEOUT` seconds (DAOS's client
    /// variable; 10 when unset or not a number from 1 to 3600).
    fn default() -> SessionOpts {
        let timeout = std::env::var("CRT_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| (1..=3600).contains(s))
            .unwrap_or(10);
        SessionOpts {
            queue_depth: 16,
            max_value: 1 << 20,
            timeout: Duration::from_secs(timeout),
        }
    }
}

#[derive(Clone, Copy)]
struct InFlight {
    tag: u64,
    target: usize,
    deadline: Instant,
    /// The bulk slot an RMA request uses, and whether the reply's data is in it.
    bulk: Option<usize>,
    op: wire::Op,
}

/// A client endpoint talking to one pool's targets; one thread uses it.
pub struct Session {
    map: Arc<PoolMap>,
    ep: RdmEndpoint,
    name: Vec<u8>,
    peers: Vec<Option<Peer>>,
    opts: SessionOpts,
    next_tag: u64,
    inflight: Vec<InFlight>,
    held: Vec<daos_fabric::Received>,
    /// Replies received while `submit` waited for a send buffer, handed out by `poll`.
    early: Vec<daos_fabric::Received>,
    bulk_free: Vec<usize>,
    /// Targets that did not answer lately: reads try the other replicas first.
    suspect: Vec<bool>,
    /// Fetches the pool's current map when a target says this one is stale.
    refresher: Option<Refresher>,
    /// This session's hybrid logical clock: the newest epoch it chose or saw in a reply.
    hlc: u64,
    /// The pool handle every request carries (pool connect), and container handles.
    handle: u64,
    cont_handles: Vec<([u8; 16], u64)>,
    /// Bulk slots of operations that timed out, by tag: a target may still move data into
    /// or out of them, so each comes back only with its operation's late reply.
    orphans: Vec<(u64, usize)>,
}

/// Fetches a pool's current map (e.g. [`connect::refresher`]).
pub type Refresher = Box<dyn FnMut() -> Result<PoolMap, String> + Send>;

/// What a [`Session::swap`] did.
#[derive(Debug)]
pub enum Swap {
    /// Every replica took the value at `epoch`; `replaced` holds what each replaced (in
    /// shard order; they differ only where replicas saw concurrent swaps differently).
    Done {
        epoch: u64,
        replaced: Vec<Option<Vec<u8>>>,
    },
    /// A replica holds a newer value (`DER_TX_RESTART`): nothing was replaced there. If
    /// `applied`, other replicas took the value, so it may be current on some of them until
    /// a later swap replaces it everywhere: a caller that frees replaced values must swap a
    /// value never swapped before next time, or it could make this one current again after
    /// another writer freed it.
    Restart { applied: bool, error: ClientError },
}

/// How long a blocking call keeps asking a target that does not know its handle (longer than
/// the management service's 5 s handle resync).
const NO_HDL_PATIENCE: Duration = Duration::from_secs(8);

/// Times an operation refused as stale is sent again on a refreshed map.
const STALE_RETRIES: usize = 8;

/// Times a change refused by a replica's order check (`DER_TX_RESTART`) is sent again at a
/// later epoch.
pub const RESTARTS: usize = 16;

/// Room for keys and headers besides the value in every message.
const MSG_OVERHEAD: usize = 8192;

impl Session {
    /// Opens an endpoint for the pool.
    pub fn open(map: Arc<PoolMap>, opts: SessionOpts) -> Result<Session, ClientError> {
        let handle = map.handle;
        let cont_handles = map.cont_handles.clone();
        let qd = opts.queue_depth.max(1);
        // With RMA, values above BULK_THRESHOLD move between registered buffers and messages
        // stay small; without it, messages carry whole values.
        let ep = match RdmEndpoint::open_with_rma(
            &map.provider,
            None,
            None,
            BULK_THRESHOLD + MSG_OVERHEAD,
            qd,
            qd,
            qd,
            opts.max_value,
        ) {
            Ok(ep) => ep,
            Err(_) => RdmEndpoint::open(
                &map.provider,
                None,
                None,
                opts.max_value + MSG_OVERHEAD,
                qd,
                qd,
            )?,
        };
        let bulk_free = if ep.has_rma() {
            (0..qd).rev().collect()
        } else {
            Vec::new()
        };
        let name = ep.name()?;
        if name.len() > wire::ADDR_MAX {
            return Err(ClientError::BadUri(format!(
                "endpoint name of {} bytes is longer than the protocol's {}",
                name.len(),
                wire::ADDR_MAX
            )));
        }
        let peers = vec![None; map.targets.len()];
        let down_targets: Vec<bool> = map
            .targets
            .iter()
            .map(|t| map.down.contains(&t.rank))
            .collect();
        Ok(Session {
            map,
            ep,
            name,
            peers,
            opts: SessionOpts {
                queue_depth: qd,
                ..opts
            },
            next_tag: 1,
            inflight: Vec::with_capacity(qd),
            held: Vec::with_capacity(qd),
            early: Vec::with_capacity(qd),
            bulk_free,
            suspect: down_targets,
            refresher: None,
            hlc: 0,
            handle,
            cont_handles,
            orphans: Vec::new(),
        })
    }

    /// A new epoch for a change: the physical clock, or just past the newest epoch this
    /// session has chosen or seen if that is ahead (a hybrid logical clock). Every replica of
    /// an update gets the same epoch, so concurrent updates of a key end alike everywhere.
    pub fn next_epoch(&mut self) -> u64 {
        self.hlc = (self.hlc + 1).max(wire::clock_ns());
        self.hlc
    }

    /// Takes an epoch seen elsewhere into this session's clock, as a reply's does: its next
    /// epochs are past it (a client whose clock runs ahead behaves so).
    pub fn witness(&mut self, epoch: u64) {
        self.hlc = self.hlc.max(epoch);
    }

    /// The pool handle (from pool connect) every request carries from now on.
    pub fn set_handle(&mut self, handle: u64) {
        self.handle = handle;
    }

    /// The container handle (from container open) requests on `cont` carry.
    pub fn set_cont_handle(&mut self, cont: [u8; 16], handle: u64) {
        match self.cont_handles.iter_mut().find(|(c, _)| *c == cont) {
            Some(e) => e.1 = handle,
            None => self.cont_handles.push((cont, handle)),
        }
    }

    fn cont_handle(&self, cont: &[u8; 16]) -> u64 {
        self.cont_handles
            .iter()
            .find(|(c, _)| c == cont)
            .map_or(0, |e| e.1)
    }

    /// Lets the session fetch a newer map itself when a target refuses a request as stale
    /// (the blocking calls then send it again where the new map places the object).
    pub fn set_refresher(&mut self, r: Refresher) {
        self.refresher = Some(r);
    }

    /// The session with [`Self::set_refresher`].
    pub fn with_refresher(mut self, r: Refresher) -> Session {
        self.refresher = Some(r);
        self
    }

    /// Uses `map` from now on: peers at unchanged addresses are kept, suspicion is cleared
    /// but for ranks the new map reports down. Only with nothing in flight (operations name
    /// their targets by index into the map).
    pub fn set_map(&mut self, map: Arc<PoolMap>) -> Result<(), ClientError> {
        if !self.inflight.is_empty() {
            return Err(ClientError::QueueFull(self.inflight.len()));
        }
        if map.handle != 0 {
            self.handle = map.handle;
        }
        for (c, h) in &map.cont_handles {
            self.set_cont_handle(*c, *h);
        }
        let peers = map
            .targets
            .iter()
            .map(|t| {
                self.map
                    .targets
                    .iter()
                    .position(|o| o.node == t.node && o.port == t.port)
                    .and_then(|i| self.peers.get(i).copied().flatten())
            })
            .collect();
        self.suspect = map
            .targets
            .iter()
            .map(|t| map.down.contains(&t.rank))
            .collect();
        self.peers = peers;
        self.map = map;
        Ok(())
    }

    /// Fetches the current map (with the refresher) until it is at least version `min`, for
    /// at most the session's timeout; then uses it.
    pub fn refresh_map(&mut self, min: u32) -> Result<(), ClientError> {
        let Some(mut fetch) = self.refresher.take() else {
            return Err(ClientError::Refresh(
                "this session has no way to fetch a newer map (no refresher)".into(),
            ));
        };
        let deadline = Instant::now() + self.opts.timeout;
        let mut pause = Duration::from_millis(20);
        let result = loop {
            match fetch() {
                Ok(m) if m.placement.version >= min => break self.set_map(Arc::new(m)),
                Ok(m) if Instant::now() >= deadline => {
                    break Err(ClientError::Refresh(format!(
                        "the management service still gives version {} (a target has {min})",
                        m.placement.version
                    )));
                }
                Err(e) if Instant::now() >= deadline => break Err(ClientError::Refresh(e)),
                _ => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        };
        self.refresher = Some(fetch);
        result
    }

    /// Runs `op` and, while a target refuses it as stale and the session can refresh its
    /// map, refreshes and runs it again. A target that does not know the session's handle
    /// yet (an engine that just restarted learns the open handles within seconds) is asked
    /// again for [`NO_HDL_PATIENCE`]; an evicted handle fails after that.
    fn fresh<T>(
        &mut self,
        mut op: impl FnMut(&mut Session) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut tries = 0;
        let started = Instant::now();
        loop {
            match op(self) {
                Err(ClientError::Stale { theirs, .. })
                    if self.refresher.is_some() && tries < STALE_RETRIES =>
                {
                    tries += 1;
                    self.refresh_map(theirs)?;
                }
                Err(e)
                    if e.der() == Some(der::NO_HDL)
                        && self.handle != 0
                        && started.elapsed() < NO_HDL_PATIENCE =>
                {
                    std::thread::sleep(Duration::from_millis(250));
                }
                r => return r,
            }
        }
    }

    /// Whether target `t` did not answer lately.
    pub fn is_suspect(&self, t: usize) -> bool {
        self.suspect.get(t).copied().unwrap_or(false)
    }

    /// Marks target `t` as not answering (or answering again).
    pub fn set_suspect(&mut self, t: usize, suspect: bool) {
        if let Some(s) = self.suspect.get_mut(t) {
            *s = suspect;
        }
    }

    /// Whether values above [`BULK_THRESHOLD`] travel by RMA.
    pub fn uses_rma(&self) -> bool {
        self.ep.has_rma()
    }

    /// The bulk form of `req` (its value copied into bulk slot `slot`), or `None` when it
    /// goes inline.
    fn bulk_form<'r>(&mut self, req: &Request<'r>, slot: usize) -> Option<Request<'r>> {
        let desc = |ep: &RdmEndpoint, len: usize| {
            ep.bulk_desc(slot, len).map(|d| Bulk {
                key: d.key,
                offset: d.offset,
                len: d.len,
            })
        };
        // A value to send: into the slot, and where the target finds it.
        let stage = |ep: &mut RdmEndpoint, data: &[u8]| {
            let bulk = desc(ep, data.len())?;
            ep.bulk_mut(slot)[..data.len()].copy_from_slice(data);
            Some(bulk)
        };
        match *req {
            Request::Update {
                oid,
                dkey,
                akey,
                value,
            } if value.len() > BULK_THRESHOLD => {
                let bulk = stage(&mut self.ep, value)?;
                Some(Request::UpdateBulk {
                    oid,
                    dkey,
                    akey,
                    bulk,
                })
            }
            Request::WriteExtent {
                oid,
                dkey,
                akey,
                offset,
                data,
            } if data.len() > BULK_THRESHOLD => {
                let bulk = stage(&mut self.ep, data)?;
                Some(Request::WriteExtentBulk {
                    oid,
                    dkey,
                    akey,
                    offset,
                    bulk,
                })
            }
            // Sessions sized for small values fetch inline, saving the RMA round trip.
            Request::Fetch { oid, dkey, akey } if self.opts.max_value > BULK_THRESHOLD => {
                Some(Request::FetchBulk {
                    oid,
                    dkey,
                    akey,
                    bulk: desc(&self.ep, self.opts.max_value)?,
                })
            }
            Request::ReadExtent {
                oid,
                dkey,
                akey,
                offset,
                len,
            } if len as usize > BULK_THRESHOLD => Some(Request::ReadExtentBulk {
                oid,
                dkey,
                akey,
                offset,
                bulk: desc(&self.ep, len as usize)?,
            }),
            _ => None,
        }
    }

    pub fn map(&self) -> &PoolMap {
        &self.map
    }

    /// Operations in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    fn peer(&mut self, target: usize) -> Result<Peer, ClientError> {
        if let Some(p) = self.peers[target] {
            return Ok(p);
        }
        let t = &self.map.targets[target];
        let ip: std::net::Ipv4Addr = t
            .node
            .parse()
            .map_err(|_| ClientError::BadUri(format!("{}:{} (IPv4 only)", t.node, t.port)))?;
        let p = self.ep.insert_peer(&daos_fabric::sockaddr_in(ip, t.port))?;
        self.peers[target] = Some(p);
        Ok(p)
    }

    /// Sends `req` for container `cont` to `target` (an index into the map's targets, e.g.
    /// from [`PoolMap::place`]); returns its tag. A change gets the target's epoch. No
    /// allocation.
    pub fn submit(
        &mut self,
        target: usize,
        cont: [u8; 16],
        req: &Request<'_>,
    ) -> Result<u64, ClientError> {
        self.submit_at(target, cont, req, 0)
    }

    /// [`Self::submit`] of a change at `epoch` (from [`Self::next_epoch`], the same for
    /// every replica; 0: the target chooses).
    pub fn submit_at(
        &mut self,
        target: usize,
        cont: [u8; 16],
        req: &Request<'_>,
        epoch: u64,
    ) -> Result<u64, ClientError> {
        self.submit_flagged(target, cont, req, epoch, 0)
    }

    /// [`Self::submit_at`] with header flags `flags` ([`wire::FLAG_AS_GIVEN`]).
    fn submit_flagged(
        &mut self,
        target: usize,
        cont: [u8; 16],
        req: &Request<'_>,
        epoch: u64,
        flags: u8,
    ) -> Result<u64, ClientError> {
        if self.inflight.len() >= self.opts.queue_depth {
            return Err(ClientError::QueueFull(self.opts.queue_depth));
        }
        if let Err((code, message)) = req.check() {
            let t = self.map.targets.get(target).ok_or(ClientError::NoTargets)?;
            return Err(ClientError::Der {
                rank: t.rank,
                target: t.target,
                code,
                name: der::name(code),
                message,
            });
        }
        let slot = self.bulk_free.last().copied();
        let bulk_req = match slot {
            Some(k) => self.bulk_form(req, k),
            None => None,
        };
        let (req, bulk) = match &bulk_req {
            Some(b) => (b, slot),
            None => (req, None),
        };
        let len = req.encoded_len();
        if len > self.ep.msg_size() {
            return Err(ClientError::TooLarge {
                len,
                max: self.ep.msg_size(),
            });
        }
        let peer = self.peer(target)?;
        let tag = self.next_tag;
        self.next_tag += 1;
        let header = Header::request(req.op(), tag, self.map.uuid, cont, &self.name)
            .with_map_version(self.map.placement.version)
            .with_epoch(epoch)
            .with_flags(flags)
            .with_handles(self.handle, self.cont_handle(&cont));
        // A send waits for a free send buffer at most the operation's deadline (a peer that
        // died with every buffer in flight must not hold the caller forever).
        let deadline = Instant::now() + self.opts.timeout;
        loop {
            match self
                .ep
                .send_with(peer, |buf| encode_request(buf, header, req).unwrap_or(0))
            {
                Ok(()) => break,
                Err(EndpointError::Busy(_)) if Instant::now() >= deadline => {
                    return Err(self.timeout_error(target, req.op()));
                }
                // Send buffers still in flight: their completions free them.
                Err(EndpointError::Busy(_)) => {
                    self.ep.poll_held(&mut self.held)?;
                    for r in self.held.drain(..) {
                        // A reply that came meanwhile: keep it for `poll`.
                        self.early.push(r);
                    }
                }
                Err(source) => {
                    let t = &self.map.targets[target];
                    return Err(ClientError::Unreachable {
                        rank: t.rank,
                        target: t.target,
                        addr: format!("{}:{}", t.node, t.port),
                        source,
                    });
                }
            }
        }
        if bulk.is_some() {
            self.bulk_free.pop();
        }
        self.inflight.push(InFlight {
            tag,
            target,
            deadline: Instant::now() + self.opts.timeout,
            bulk,
            op: req.op(),
        });
        Ok(tag)
    }

    /// Reaps replies and expired deadlines: `done(tag, result)` for each finished operation.
    /// Returns how many finished.
    pub fn poll(
        &mut self,
        mut done: impl FnMut(u64, Result<Reply<'_>, ClientError>),
    ) -> Result<usize, ClientError> {
        let mut finished = 0;
        let polled = self.ep.poll_held(&mut self.held);
        let Session {
            ep,
            inflight,
            map,
            held,
            early,
            bulk_free,
            hlc,
            orphans,
            ..
        } = self;
        for r in early.drain(..).chain(held.drain(..)) {
            let msg = ep.message(r);
            let Ok(h) = Header::read(msg) else {
                let _ = ep.release(r);
                continue;
            };
            let Some(i) = inflight.iter().position(|f| f.tag == h.tag) else {
                // A late reply to an operation that timed out: the target is done with its
                // bulk slot.
                if let Some(j) = orphans.iter().position(|o| o.0 == h.tag) {
                    bulk_free.push(orphans.swap_remove(j).1);
                }
                let _ = ep.release(r);
                continue;
            };
            let f = inflight.swap_remove(i);
            let t = &map.targets[f.target];
            finished += 1;
            // HLC: the next epoch chosen here is past any the target has seen (but never
            // a refusal's reading far ahead of this host's clock).
            if h.status != der::HLC_SYNC {
                *hlc = (*hlc).max(h.epoch);
            }
            let result = match h.body(msg) {
                Err(_) => Err(ClientError::BadReply {
                    rank: t.rank,
                    target: t.target,
                    what: "body shorter than its header says".into(),
                }),
                Ok(_) if h.status == der::STALE => Err(ClientError::Stale {
                    rank: t.rank,
                    target: t.target,
                    ours: map.placement.version,
                    theirs: h.map_version,
                }),
                Ok(body) if h.status != 0 => Err(ClientError::Der {
                    rank: t.rank,
                    target: t.target,
                    code: h.status,
                    name: der::name(h.status),
                    message: wire::error_message(body),
                }),
                Ok(body) => {
                    let bulk = f.bulk.and_then(|k| {
                        let n = match f.op {
                            wire::Op::FetchBulk => match reply::Fetched::get(body).ok()? {
                                reply::Fetched::Bulk(n) => n,
                                _ => return None,
                            },
                            wire::Op::ReadExtentBulk => reply::Data::get_bulk_len(body).ok()?,
                            _ => return None,
                        };
                        ep.bulk_buf(k).get(..n as usize)
                    });
                    Ok(Reply {
                        tag: h.tag,
                        body,
                        bulk,
                        epoch: h.epoch,
                    })
                }
            };
            done(f.tag, result);
            if let Some(k) = f.bulk {
                bulk_free.push(k);
            }
            let _ = ep.release(r);
        }
        if let Err(e) = polled {
            // A completion error (a peer went away): the operations it hit time out.
            if inflight.is_empty() {
                return Err(e.into());
            }
        }
        let now = Instant::now();
        while let Some(i) = self.inflight.iter().position(|f| f.deadline <= now) {
            let f = self.inflight.swap_remove(i);
            finished += 1;
            // A late RMA into this slot cannot be ruled out: it waits for the late reply.
            if let Some(k) = f.bulk {
                self.orphans.push((f.tag, k));
            }
            done(f.tag, Err(self.timeout_error(f.target, f.op)));
        }
        Ok(finished)
    }

    /// Bulk slots ready for operations now (the others are in flight or wait for a late
    /// reply).
    pub fn bulk_slots_free(&self) -> usize {
        self.bulk_free.len()
    }

    fn timeout_error(&self, target: usize, op: wire::Op) -> ClientError {
        let t = &self.map.targets[target];
        ClientError::Timeout {
            rank: t.rank,
            target: t.target,
            op,
            ms: self.opts.timeout.as_millis(),
            map_version: self.map.placement.version,
            state: self
                .map
                .placement
                .state(daos_placement::TargetId {
                    rank: t.rank,
                    idx: t.target,
                })
                .map_or("unknown", |s| s.name()),
        }
    }

    /// Sends one request and waits for its reply; returns the body. Only with nothing else in
    /// flight.
    pub fn call(
        &mut self,
        target: usize,
        cont: [u8; 16],
        req: &Request<'_>,
    ) -> Result<Vec<u8>, ClientError> {
        self.call_with(target, cont, req, |reply| reply.body.to_vec())
    }

    /// [`Self::call`], handing the reply to `f` (for data moved by RMA).
    pub fn call_with<T>(
        &mut self,
        target: usize,
        cont: [u8; 16],
        req: &Request<'_>,
        f: impl FnOnce(&Reply<'_>) -> T,
    ) -> Result<T, ClientError> {
        self.call_at(target, cont, req, 0, f)
    }

    /// [`Self::call_with`] of a change at `epoch` (0: the target chooses).
    pub fn call_at<T>(
        &mut self,
        target: usize,
        cont: [u8; 16],
        req: &Request<'_>,
        epoch: u64,
        f: impl FnOnce(&Reply<'_>) -> T,
    ) -> Result<T, ClientError> {
        self.call_flagged(target, cont, req, epoch, 0, f)
    }

    /// [`Self::call_at`] of a copy of a value at the value's own `epoch` (a rebuild's): the
    /// target stores it as given, without the order check a client's change gets (a newer
    /// change of the key stays the newer one).
    pub fn copy_at<T>(
        &mut self,
        target: usize,
        cont: [u8; 16],
        req: &Request<'_>,
        epoch: u64,
        f: impl FnOnce(&Reply<'_>) -> T,
    ) -> Result<T, ClientError> {
        self.call_flagged(target, cont, req, epoch, wire::FLAG_AS_GIVEN, f)
    }

    fn call_flagged<T>(
        &mut self,
        target: usize,
        cont: [u8; 16],
        req: &Request<'_>,
        epoch: u64,
        flags: u8,
        f: impl FnOnce(&Reply<'_>) -> T,
    ) -> Result<T, ClientError> {
        let tag = self.submit_flagged(target, cont, req, epoch, flags)?;
        let mut f = Some(f);
        let mut out = None;
        while out.is_none() {
            self.poll(|t, r| {
                if t == tag
                    && let Some(f) = f.take()
                {
                    out = Some(r.map(|reply| f(&reply)));
                }
            })?;
        }
        out.unwrap_or(Err(ClientError::NoTargets))
    }

    /// Sends `req` to every shard of `oid` at once and waits for every answer (a replicated
    /// update is acknowledged only when each replica has it durably); `f` reads each reply,
    /// in shard order. The first failure is the answer, after all replies are in (a stale
    /// map first: with a refresher, the update is sent again on the new map).
    ///
    /// A replica that holds a newer change of what the request touches refuses it
    /// (`DER_TX_RESTART`, with that change's epoch, which the session's clock takes in): the
    /// change is sent again to every replica at a later epoch, at most [`RESTARTS`] times.
    fn call_all<T>(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        req: &Request<'_>,
        f: impl Fn(usize, &Reply<'_>) -> T,
    ) -> Result<Vec<T>, ClientError> {
        let mut restarts = 0;
        loop {
            // One epoch for every replica, and for every try on a refreshed map.
            let epoch = self.next_epoch();
            match self.fresh(|s| s.call_all_once(cont, oid, req, epoch, &f)) {
                Err(e) if e.der() == Some(der::TX_RESTART) && restarts < RESTARTS => {
                    restarts += 1;
                }
                r => return r,
            }
        }
    }

    /// [`Self::call_all`] once at `epoch`: every shard's answer, or the first failure.
    fn call_all_once<T>(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        req: &Request<'_>,
        epoch: u64,
        f: &impl Fn(usize, &Reply<'_>) -> T,
    ) -> Result<Vec<T>, ClientError> {
        self.call_each_once(cont, oid, req, epoch, f)?
            .into_iter()
            .collect()
    }

    /// Sends `req` at `epoch` to every shard of `oid` and waits for each answer, in shard
    /// order. A target that refused it as stale makes the whole call stale (sent again on a
    /// refreshed map by [`Self::fresh`]).
    fn call_each_once<T>(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        req: &Request<'_>,
        epoch: u64,
        f: &impl Fn(usize, &Reply<'_>) -> T,
    ) -> Result<Vec<Result<T, ClientError>>, ClientError> {
        let shards = self.map.shards(oid)?;
        let mut tags = Vec::with_capacity(shards.len());
        let mut failed = None;
        for &t in &shards {
            match self.submit_at(t, cont, req, epoch) {
                Ok(tag) => tags.push(tag),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let mut out: Vec<Option<Result<T, ClientError>>> = tags.iter().map(|_| None).collect();
        while out.iter().any(Option::is_none) {
            self.poll(|tag, r| {
                if let Some(i) = tags.iter().position(|x| *x == tag) {
                    out[i] = Some(r.map(|reply| f(shards[i], &reply)));
                }
            })?;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(i) = out
            .iter()
            .position(|r| matches!(r, Some(Err(ClientError::Stale { .. }))))
            && let Some(Err(e)) = out.swap_remove(i)
        {
            return Err(e);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Sends `req` to `oid`'s shards one after another until one answers: a replica that
    /// does not answer, or answers with an I/O or checksum error, is skipped for the next.
    fn call_any<T>(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        req: &Request<'_>,
        f: impl Fn(usize, &Reply<'_>) -> T,
    ) -> Result<T, ClientError> {
        self.fresh(|s| {
            let shards = s.map.read_shards(oid)?;
            s.call_any_of(shards, cont, req, &f)
        })
    }

    /// [`Self::call_any`] over the targets `candidates`.
    fn call_any_of<T>(
        &mut self,
        mut candidates: Vec<usize>,
        cont: [u8; 16],
        req: &Request<'_>,
        f: impl Fn(usize, &Reply<'_>) -> T,
    ) -> Result<T, ClientError> {
        // Replicas that did not answer lately go last (stable: the layout's order otherwise).
        candidates.sort_by_key(|t| self.suspect.get(*t).copied().unwrap_or(false));
        let mut last = None;
        for &t in &candidates {
            match self.call_with(t, cont, req, |r| f(t, r)) {
                Ok(v) => {
                    if let Some(s) = self.suspect.get_mut(t) {
                        *s = false;
                    }
                    return Ok(v);
                }
                Err(e) => {
                    if matches!(
                        e,
                        ClientError::Timeout { .. }
                            | ClientError::Fabric(_)
                            | ClientError::Unreachable { .. }
                    ) && let Some(s) = self.suspect.get_mut(t)
                    {
                        *s = true;
                    }
                    let next = match &e {
                        ClientError::Timeout { .. }
                        | ClientError::Fabric(_)
                        | ClientError::Unreachable { .. }
                        | ClientError::BadReply { .. } => true,
                        ClientError::Der { code, .. } => *code == der::IO || *code == der::CSUM,
                        _ => false,
                    };
                    if !next {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(ClientError::NoTargets))
    }

    fn bad(&self, target: usize, what: &str) -> ClientError {
        let t = &self.map.targets[target];
        ClientError::BadReply {
            rank: t.rank,
            target: t.target,
            what: what.into(),
        }
    }

    /// Stores a single value; returns its epoch once the target made it durable.
    pub fn update(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        value: &[u8],
    ) -> Result<u64, ClientError> {
        self.epoch_call(
            cont,
            oid,
            &Request::Update {
                oid,
                dkey,
                akey,
                value,
            },
        )
    }

    /// Replaces a small single value (at most 4 KiB) on every replica at one epoch, in one
    /// step on each target: each answers with the value just below the swap's epoch, which
    /// the order check makes the value it replaced (of concurrent swaps, each sees the one
    /// before it). Not sent again on a `DER_TX_RESTART`: see [`Swap`].
    pub fn swap(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        value: &[u8],
    ) -> Result<Swap, ClientError> {
        let req = Request::Swap {
            oid,
            dkey,
            akey,
            value,
        };
        let epoch = self.next_epoch();
        let each = self.fresh(|s| {
            s.call_each_once(cont, oid, &req, epoch, &|t, r| {
                reply::Swapped::get(r.body)
                    .ok()
                    .map(|(e, old)| (e, old.map(<[u8]>::to_vec)))
                    .ok_or(t)
            })
        })?;
        let mut replaced = Vec::with_capacity(each.len());
        let mut restart = None;
        let mut applied = false;
        let mut failed = None;
        for r in each {
            match r {
                Ok(Ok((_, old))) => {
                    applied = true;
                    replaced.push(old);
                }
                Ok(Err(t)) => return Err(self.bad(t, "swap reply malformed")),
                Err(e) if e.der() == Some(der::TX_RESTART) => {
                    restart.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(match restart {
            Some(error) => Swap::Restart { applied, error },
            None => Swap::Done { epoch, replaced },
        })
    }

    /// Sends an object request that answers with an epoch to every shard of the object;
    /// the highest epoch once all have it.
    fn epoch_call(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        req: &Request<'_>,
    ) -> Result<u64, ClientError> {
        let epochs = self.call_all(cont, oid, req, |t, r| {
            reply::Epoch::get(r.body).map_err(|_| t)
        })?;
        let mut max = 0;
        for e in epochs {
            match e {
                Ok(e) => max = max.max(e),
                Err(t) => return Err(self.bad(t, "no epoch in the reply")),
            }
        }
        Ok(max)
    }

    /// The latest single value of an akey (`None` if there is none).
    pub fn fetch(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
    ) -> Result<Option<Vec<u8>>, ClientError> {
        self.call_any(cont, oid, &Request::Fetch { oid, dkey, akey }, |t, r| {
            r.fetched().map(|v| v.map(<[u8]>::to_vec)).ok_or(t)
        })?
        .map_err(|t| self.bad(t, "fetch reply malformed"))
    }

    /// Writes array bytes at `offset`.
    pub fn write(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        offset: u64,
        data: &[u8],
    ) -> Result<u64, ClientError> {
        self.epoch_call(
            cont,
            oid,
            &Request::WriteExtent {
                oid,
                dkey,
                akey,
                offset,
                data,
            },
        )
    }

    /// Reads `len` array bytes at `offset` (never-written bytes are zero).
    pub fn read(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, ClientError> {
        let req = Request::ReadExtent {
            oid,
            dkey,
            akey,
            offset,
            len,
        };
        self.call_any(cont, oid, &req, |t, r| {
            r.read_data().map(<[u8]>::to_vec).ok_or(t)
        })?
        .map_err(|t| self.bad(t, "read reply malformed"))
    }

    /// Punches an object, a dkey or an akey.
    pub fn punch(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        what: PunchWhat<'_>,
    ) -> Result<u64, ClientError> {
        self.epoch_call(cont, oid, &Request::Punch { oid, what })
    }

    /// Live dkeys of an object, in order.
    pub fn list_dkeys(&mut self, cont: [u8; 16], oid: Oid) -> Result<Vec<Vec<u8>>, ClientError> {
        let mut all: Vec<Vec<u8>> = Vec::new();
        loop {
            let after = all.last().cloned().unwrap_or_default();
            let req = Request::ListDkeys { oid, after: &after };
            let (t, body) = self.call_any(cont, oid, &req, |t, r| (t, r.body.to_vec()))?;
            let (more, keys) = reply::Keys::get(&body).map_err(|_| self.bad(t, "key list"))?;
            all.extend(keys);
            if !more {
                return Ok(all);
            }
        }
    }

    /// Live akeys of a dkey.
    pub fn list_akeys(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let req = Request::ListAkeys { oid, dkey };
        let (t, body) = self.call_any(cont, oid, &req, |t, r| (t, r.body.to_vec()))?;
        let (_, keys) = reply::Keys::get(&body).map_err(|_| self.bad(t, "key list"))?;
        Ok(keys)
    }

    /// Every object of a container that holds something, over all targets, in id order. A
    /// target that cannot be listed (its rank reported down, or no answer) fails the list
    /// with [`ClientError::Unlisted`], naming its rank; [`Self::list_objects_partial`] lists
    /// the others.
    pub fn list_objects(&mut self, cont: [u8; 16]) -> Result<Vec<Oid>, ClientError> {
        let list = self.list_objects_partial(cont)?;
        if list.unlisted.is_empty() {
            return Ok(list.oids);
        }
        Err(ClientError::Unlisted {
            ranks: list.unlisted_ranks(),
            listed: list.oids.len(),
        })
    }

    /// [`Self::list_objects`] over the targets that answer: a target of a rank reported down
    /// is not asked, one that does not answer (or whose fabric fails) is skipped, and both
    /// are named in [`ObjectList::unlisted`]. An object with a replica on a listed target is
    /// listed; one held only on unlisted targets is not. Fails when no target answers or
    /// one refuses (e.g. no such container). Each target's list comes page by page.
    pub fn list_objects_partial(&mut self, cont: [u8; 16]) -> Result<ObjectList, ClientError> {
        let mut list = ObjectList::default();
        let mut last = None;
        for t in 0..self.map.targets.len() {
            if self.map.down.contains(&self.map.targets[t].rank) {
                list.unlisted
                    .push((self.map.targets[t].rank, self.map.targets[t].target));
                continue;
            }
            let mut page = Vec::new();
            let mut after = None;
            loop {
                match self.oids_page(t, cont, after, &mut page) {
                    Ok(more) => {
                        let end = page.last().copied();
                        list.oids.append(&mut page);
                        self.set_suspect(t, false);
                        match (more, end) {
                            (true, Some(l)) => after = Some(l),
                            _ => break,
                        }
                    }
                    Err(
                        e @ (ClientError::Timeout { .. }
                        | ClientError::Fabric(_)
                        | ClientError::Unreachable { .. }),
                    ) => {
                        self.set_suspect(t, true);
                        let tgt = &self.map.targets[t];
                        list.unlisted.push((tgt.rank, tgt.target));
                        last = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if list.unlisted.len() == self.map.targets.len() {
            return Err(last.unwrap_or(ClientError::NoTargets));
        }
        // A replicated object is listed by each of its replicas.
        list.oids.sort_unstable();
        list.oids.dedup();
        Ok(list)
    }

    /// One page of target `t`'s objects of `cont` after `after` (from the first with
    /// `None`) into `out`; whether more follow.
    pub fn oids_page(
        &mut self,
        t: usize,
        cont: [u8; 16],
        after: Option<Oid>,
        out: &mut Vec<Oid>,
    ) -> Result<bool, ClientError> {
        let req = Request::ListOids {
            after: after.unwrap_or(0),
            from_start: after.is_none(),
        };
        let body = self.call(t, cont, &req)?;
        let (more, oids) = reply::Oids::get(&body).map_err(|_| self.bad(t, "object list"))?;
        // A page that does not advance would be asked for again forever.
        if more && (oids.is_empty() || after.is_some_and(|a| oids[0] <= a)) {
            return Err(self.bad(t, "object list page that does not advance"));
        }
        out.extend(oids);
        Ok(more)
    }

    /// Creates a container; returns its UUID. A taken label is [`ClientError::Exists`].
    pub fn cont_create(&mut self, label: &str, uuid: [u8; 16]) -> Result<[u8; 16], ClientError> {
        let services = self.map.services();
        let svc = services.first().copied().ok_or(ClientError::NoTargets)?;
        let req = Request::ContCreate {
            label: label.as_bytes(),
            uuid,
        };
        // The first service target decides; the others record the same container.
        let body = self.call(svc, [0; 16], &req)?;
        if matches!(reply::Created::get(&body), Ok(reply::Created::Created)) {
            for &t in &services[1..] {
                self.call(t, [0; 16], &req)?;
            }
        }
        match reply::Created::get(&body) {
            Ok(reply::Created::Created) => {
                self.register_everywhere(uuid)?;
                Ok(uuid)
            }
            Ok(reply::Created::UuidTaken) => Err(ClientError::Exists(format!(
                "container UUID {} is already in use in this pool",
                uuid_text(&uuid)
            ))),
            Ok(reply::Created::LabelTaken) => Err(ClientError::Exists(format!(
                "container label {label:?} is already taken in this pool; choose another label"
            ))),
            _ => Err(self.bad(svc, "container create reply")),
        }
    }

    /// Has every target serve container `uuid` from now on (they refuse unknown containers);
    /// a target of a rank down, or one that does not answer (its rank died and is not
    /// excluded yet), learns it when a rebuild writes to it. Returns those it skipped.
    pub fn register_everywhere(&mut self, uuid: [u8; 16]) -> Result<Vec<(u32, u32)>, ClientError> {
        let mut skipped = Vec::new();
        for t in 0..self.map.targets.len() {
            let (rank, idx) = (self.map.targets[t].rank, self.map.targets[t].target);
            if self.map.down.contains(&rank) {
                skipped.push((rank, idx));
                continue;
            }
            match self.call(t, uuid, &Request::ContRegister) {
                Ok(_) => {}
                Err(
                    ClientError::Timeout { .. }
                    | ClientError::Fabric(_)
                    | ClientError::Unreachable { .. },
                ) => {
                    skipped.push((rank, idx));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(skipped)
    }

    /// Punches container `uuid`'s objects on every target (after its pool service removed
    /// it).
    pub fn punch_everywhere(&mut self, uuid: [u8; 16]) -> Result<(), ClientError> {
        for t in 0..self.map.targets.len() {
            self.call(t, uuid, &Request::ContPunch)?;
        }
        Ok(())
    }

    /// Containers of the pool: (label, UUID).
    pub fn cont_list(&mut self) -> Result<Vec<(String, [u8; 16])>, ClientError> {
        let services = self.map.services();
        let (svc, body) = self.call_any_of(services, [0; 16], &Request::ContList, |t, r| {
            (t, r.body.to_vec())
        })?;
        reply::Containers::get(&body).map_err(|_| self.bad(svc, "container list"))
    }

    fn cont_lookup(&mut self, id: &str, destroy: bool) -> Result<(String, [u8; 16]), ClientError> {
        let services = self.map.services();
        let (svc, body) = if destroy {
            let req = Request::ContDestroy { id: id.as_bytes() };
            let svc = services.first().copied().ok_or(ClientError::NoTargets)?;
            let body = self.call(svc, [0; 16], &req)?;
            for &t in &services[1..] {
                self.call(t, [0; 16], &req)?;
            }
            (svc, body)
        } else {
            let req = Request::ContQuery { id: id.as_bytes() };
            self.call_any_of(services, [0; 16], &req, |t, r| (t, r.body.to_vec()))?
        };
        match reply::Found::get(&body) {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(ClientError::NotFound(format!(
                "no container {id:?} in this pool (DER_NONEXIST); `daos container list` shows them"
            ))),
            Err(_) => Err(self.bad(svc, "container reply")),
        }
    }

    /// Stores container `id`'s properties (`name:value;...`) on every service target.
    pub fn cont_set_props(&mut self, id: &str, props: &str) -> Result<(), ClientError> {
        let req = Request::ContSetProps {
            id: id.as_bytes(),
            props: props.as_bytes(),
        };
        for t in self.map.services() {
            let body = self.call(t, [0; 16], &req)?;
            if !matches!(reply::Found::get(&body), Ok(Some(_))) {
                return Err(ClientError::NotFound(format!(
                    "no container {id:?} in this pool (DER_NONEXIST)"
                )));
            }
        }
        Ok(())
    }

    /// Container `id`'s properties as stored (`name:value;...`), empty when none were set.
    pub fn cont_props(&mut self, id: &str) -> Result<String, ClientError> {
        let services = self.map.services();
        let req = Request::ContGetProps { id: id.as_bytes() };
        let (t, v) = self.call_any_of(services, [0; 16], &req, |t, r| {
            (t, r.fetched().map(|v| v.map(<[u8]>::to_vec)))
        })?;
        let v = v.ok_or_else(|| self.bad(t, "container properties"))?;
        String::from_utf8(v.unwrap_or_default()).map_err(|_| self.bad(t, "container properties"))
    }

    /// A container by label or UUID: (label, UUID).
    pub fn cont_query(&mut self, id: &str) -> Result<(String, [u8; 16]), ClientError> {
        self.cont_lookup(id, false)
    }

    /// Destroys a container: removes it from the table, then punches its objects on every
    /// target. Returns its UUID.
    pub fn cont_destroy(&mut self, id: &str) -> Result<[u8; 16], ClientError> {
        let (_, uuid) = self.cont_lookup(id, true)?;
        self.punch_everywhere(uuid)?;
        Ok(uuid)
    }

    /// Checks every target answers and speaks this protocol version.
    pub fn ping_all(&mut self) -> Result<(), ClientError> {
        for t in 0..self.map.targets.len() {
            self.call(t, [0; 16], &Request::Ping)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engines() -> Vec<RankUri> {
        vec![
            RankUri {
                rank: 1,
                uri: "ofi+tcp;ofi_rxm://127.0.0.1:20008".into(),
                num_ctxs: 3,
            },
            RankUri {
                rank: 0,
                uri: "ofi+tcp;ofi_rxm://127.0.0.1:20000".into(),
                num_ctxs: 3,
            },
        ]
    }

    /// A rebuild touches only what moved: with a rank's targets down, an object whose layout
    /// used that rank gets its moved shard (on another rank) and nothing else; an object that
    /// did not use it needs nothing; with the rank filling again (up), its shards are filled.
    /// Ranks 0-3, each one target on a node of its own.
    fn four_nodes() -> Vec<RankUri> {
        (0..4)
            .map(|r| RankUri {
                rank: r,
                uri: format!("ofi+tcp;ofi_rxm://127.0.0.{}:20000", r + 1),
                num_ctxs: 2,
            })
            .collect()
    }

    #[test]
    fn rebuild_targets_are_the_moved_and_filling_shards() {
        use daos_placement::{ObjectClass, TargetState};
        let engines = four_nodes();
        let base = PoolMap::new([2; 16], &[0, 1, 2, 3], &engines).unwrap();
        let class = ObjectClass::parse("RP_2G1").unwrap();
        let oids: Vec<Oid> = (0..64u128).map(|i| class.embed(i << 8 | 7)).collect();
        let healthy = base.clone().with_states(&[], 2);
        for &o in &oids {
            assert!(healthy.rebuild_targets(o).unwrap().is_empty());
        }
        let down = base.clone().with_states(&[(1, vec![TargetState::Down])], 3);
        let up = base.clone().with_states(&[(1, vec![TargetState::Up])], 4);
        let (mut touched, mut untouched) = (0, 0);
        for &o in &oids {
            let before: Vec<u32> = healthy
                .shards(o)
                .unwrap()
                .iter()
                .map(|t| healthy.targets[*t].rank)
                .collect();
            // Filled: the moved shard, and shards placement may have moved between other
            // nodes (rank 1 may be an extension under way: then its node was not counted).
            let moved = down.rebuild_targets(o).unwrap();
            let layout = down.shards(o).unwrap();
            assert!(moved.iter().all(|t| layout.contains(t)), "{o:#x}");
            assert!(moved.iter().all(|t| down.targets[*t].rank != 1), "{o:#x}");
            if before.contains(&1) {
                touched += 1;
                assert!(!moved.is_empty(), "a shard moved for {o:#x}");
                // Back up: the shard on rank 1 is filled again.
                let filling = up.rebuild_targets(o).unwrap();
                assert!(filling.iter().any(|t| up.targets[*t].rank == 1), "{o:#x}");
            } else {
                untouched += 1;
            }
        }
        assert!(touched > 0 && untouched > 0, "{touched} {untouched}");
    }

    #[test]
    fn an_extension_fills_every_shard_that_moved() {
        use daos_placement::{ObjectClass, TargetState};
        let engines = four_nodes();
        let three = PoolMap::new([2; 16], &[0, 1, 2], &engines)
            .unwrap()
            .with_states(&[], 2);
        // Rank 3 added (up) on a fourth node, then also out before its rebuild finished.
        for state in [TargetState::Up, TargetState::Down] {
            let four = PoolMap::new([2; 16], &[0, 1, 2, 3], &engines)
                .unwrap()
                .with_states(&[(3, vec![state])], 3);
            let mut between_old = 0;
            for o in (0..256u128).map(|i| ObjectClass::rp(2, 1).embed(i << 8 | 7)) {
                let old: Vec<u32> = three
                    .shards(o)
                    .unwrap()
                    .iter()
                    .map(|t| three.targets[*t].rank)
                    .collect();
                let fill = four.rebuild_targets(o).unwrap();
                let order: Vec<u32> = four
                    .read_shards(o)
                    .unwrap()
                    .iter()
                    .map(|t| four.targets[*t].rank)
                    .collect();
                for t in four.shards(o).unwrap() {
                    let rank = four.targets[t].rank;
                    if !old.contains(&rank) {
                        between_old += usize::from(rank != 3);
                        assert!(fill.contains(&t), "{o:#x}: {old:?} -> rank {rank}");
                    }
                }
                // A shard that kept its place is read first.
                if order.iter().any(|r| old.contains(r)) {
                    assert!(old.contains(&order[0]), "{o:#x}: {old:?}, read {order:?}");
                }
            }
            if state == TargetState::Up {
                assert!(between_old > 0, "no shard moved between old nodes");
            }
        }
    }

    #[test]
    fn an_extension_in_the_middle_of_the_rank_order_with_a_rank_out_fills_what_moved() {
        use daos_placement::{ObjectClass, TargetState};
        let engines = four_nodes();
        // Rank 1 added to a pool of ranks 0, 2, 3 while rank 2 is excluded.
        let three = PoolMap::new([2; 16], &[0, 2, 3], &engines)
            .unwrap()
            .with_states(&[(2, vec![TargetState::Down])], 2);
        let four = PoolMap::new([2; 16], &[0, 1, 2, 3], &engines)
            .unwrap()
            .with_states(
                &[(1, vec![TargetState::Up]), (2, vec![TargetState::Down])],
                3,
            );
        for o in (0..256u128).map(|i| ObjectClass::rp(2, 1).embed(i << 8 | 7)) {
            let old: Vec<u32> = three
                .shards(o)
                .unwrap()
                .iter()
                .map(|t| three.targets[*t].rank)
                .collect();
            let fill = four.rebuild_targets(o).unwrap();
            for t in four.shards(o).unwrap() {
                let rank = four.targets[t].rank;
                assert!(
                    old.contains(&rank) || fill.contains(&t),
                    "{o:#x}: {old:?} -> rank {rank} not filled"
                );
            }
            // Read: a shard that surely has the data first, else every candidate asked.
            if four.uncertain_read_targets(o).unwrap().is_none() {
                let first = four.read_shards(o).unwrap()[0];
                assert!(old.contains(&four.targets[first].rank), "{o:#x}: {old:?}");
            }
        }
    }

    #[test]
    fn reads_look_beyond_a_layout_of_filled_targets_only() {
        use daos_placement::{ObjectClass, TargetState};
        let engines = four_nodes();
        let base = PoolMap::new([2; 16], &[0, 1, 2, 3], &engines).unwrap();
        let class = ObjectClass::parse("RP_2G1").unwrap();
        let healthy = base.clone().with_states(&[], 2);
        let mut both = 0;
        for o in (0..64u128).map(|i| class.embed(i << 8 | 7)) {
            assert_eq!(healthy.uncertain_read_targets(o).unwrap(), None);
            let ranks: Vec<u32> = healthy
                .shards(o)
                .unwrap()
                .iter()
                .map(|t| healthy.targets[*t].rank)
                .collect();
            // One replica reintegrated: the other has every value, unless its node's coming
            // back is an extension, which can move the other (then every candidate is asked).
            let one = base
                .clone()
                .with_states(&[(ranks[0], vec![TargetState::Up])], 3);
            if let Some(asked) = one.uncertain_read_targets(o).unwrap() {
                assert!(one.shards(o).unwrap().iter().all(|t| asked.contains(t)));
            }
            // Both: their values may be old; where the object was meanwhile is asked too.
            let two = base.clone().with_states(
                &[
                    (ranks[0], vec![TargetState::Up]),
                    (ranks[1], vec![TargetState::Up]),
                ],
                4,
            );
            let asked = two.uncertain_read_targets(o).unwrap().expect("uncertain");
            let asked: Vec<u32> = asked.iter().map(|t| two.targets[*t].rank).collect();
            assert_eq!(asked.len(), 4, "{asked:?}");
            assert_eq!(&asked[..2], &ranks[..]);
            both += 1;
        }
        assert!(both > 0);
    }

    #[test]
    fn the_map_lists_every_target_in_rank_order() {
        let m = PoolMap::new([1; 16], &[1, 0], &engines()).unwrap();
        assert_eq!(m.provider, "tcp;ofi_rxm");
        let got: Vec<(u32, u32, u16)> = m
            .targets
            .iter()
            .map(|t| (t.rank, t.target, t.port))
            .collect();
        assert_eq!(
            got,
            [(0, 0, 20002), (0, 1, 20003), (1, 0, 20010), (1, 1, 20011)]
        );
        assert!(matches!(
            PoolMap::new([1; 16], &[5], &engines()),
            Err(ClientError::NoTargets)
        ));
    }

    #[test]
    fn placement_is_deterministic_and_spreads() {
        let m = PoolMap::new([1; 16], &[0, 1], &engines()).unwrap();
        let mut per = [0usize; 4];
        for oid in 0..4000u128 {
            assert_eq!(m.place(oid), m.place(oid));
            per[m.place(oid)] += 1;
        }
        assert!(per.iter().all(|n| *n > 800), "{per:?}");
        assert_ne!(
            m.place(1 << 64),
            m.place(2 << 64),
            "the high half counts too"
        );
    }

    #[test]
    fn uris_are_checked() {
        assert_eq!(
            parse_uri("ofi+tcp://10.0.0.1:31416").unwrap(),
            ("tcp;ofi_rxm".into(), "10.0.0.1".into(), 31416)
        );
        for bad in [
            "10.0.0.1:1",
            "ofi+tcp://10.0.0.1",
            "ofi+tcp://:5",
            "ofi+tcp://h:0",
        ] {
            assert!(
                matches!(parse_uri(bad), Err(ClientError::BadUri(_))),
                "{bad}"
            );
        }
    }
}
