//! The engine's control state and its dRPC handlers (module MGMT, served on
//! `daos_engine_<pid>.sock`): SetRank (202), SetUp (209), PrepShutdown (218), PingRank (225).
//!
//! Bring-up is a small state machine: started → rank set → set up; any time → stopping.
//! SetRank is idempotent for the same rank (a retried join must not fail the engine, DAOS
//! issue 13621) and refuses a different one.

use crate::dlog;
use crate::log::Subsys;
use daos_config::logmask::Level;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use daos_drpc::mgmt::{
    DaosResp, GroupUpdateReq, PingRankReq, PoolCreateReq, PoolDestroyReq, PoolOpResp, PoolQueryReq,
    PoolQueryResp, PrepShutdownReq, SetRankReq,
};
use daos_drpc::{HandlerError, MgmtMethod, Registry};
use prost::Message;

use crate::pool::PoolStore;
use crate::shard::Shard;

/// DAOS error numbers carried in `DaosResp.status`.
pub use daos_wire::der;

/// A pool operation's result as it travels back to daos_server.
fn op_resp(r: Result<(), crate::pool::PoolError>) -> PoolOpResp {
    match r {
        Ok(()) => PoolOpResp {
            status: 0,
            info: String::new(),
        },
        Err(e) => PoolOpResp {
            status: e.der(),
            info: e.to_string(),
        },
    }
}

/// The rank value meaning "none yet".
pub const NIL_RANK: u32 = u32::MAX;

#[derive(Debug, Default)]
struct State {
    rank: Option<u32>,
    set_up: bool,
    prepared: bool,
    stopping: bool,
    group: GroupMap,
}

/// One engine of the system as the group map names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uri: String,
    pub incarnation: u64,
}

/// The system's engines as the management service last pushed them (GroupUpdate): the
/// peers failure detection, forwarding and rebuild work with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMap {
    pub version: u32,
    pub peers: std::collections::BTreeMap<u32, Peer>,
}

/// Checks a GroupUpdate: a version, ranks once each, and URIs as `provider://host:port`.
pub fn check_group_update(req: &GroupUpdateReq) -> Result<GroupMap, String> {
    if req.map_version == 0 {
        return Err("GroupUpdateReq.map_version is 0".into());
    }
    let mut peers = std::collections::BTreeMap::new();
    for (i, e) in req.engines.iter().enumerate() {
        if e.rank == NIL_RANK {
            return Err(format!("GroupUpdateReq.engines[{i}].rank is the nil rank"));
        }
        let addr = e.uri.split_once("://").map(|(_, a)| a).unwrap_or("");
        let ok = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(format!(
                "GroupUpdateReq.engines[{i}].uri {:?} is not provider://host:port",
                e.uri.chars().take(120).collect::<String>()
            ));
        }
        let peer = Peer {
            uri: e.uri.clone(),
            incarnation: e.incarnation,
        };
        if peers.insert(e.rank, peer).is_some() {
            return Err(format!(
                "GroupUpdateReq.engines[{i}]: rank {} twice",
                e.rank
            ));
        }
    }
    Ok(GroupMap {
        version: req.map_version,
        peers,
    })
}

/// Shared between the dRPC handlers and the engine's main thread.
pub struct Control {
    state: Mutex<State>,
    changed: Condvar,
    shards: Mutex<Vec<Shard>>,
}

fn resp(status: i32) -> Result<Vec<u8>, HandlerError> {
    Ok(DaosResp { status }.encode_to_vec())
}

impl Control {
    pub fn new(shards: Vec<Shard>) -> Arc<Control> {
        Arc::new(Control {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            shards: Mutex::new(shards),
        })
    }

    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut s);
        self.changed.notify_all();
        r
    }

    /// Asks the engine to stop (signal, or daos_server).
    pub fn request_stop(&self) {
        self.update(|s| s.stopping = true);
    }

    /// Waits for SetUp; returns the rank, or `None` if a stop came first.
    pub fn wait_set_up(&self) -> Option<u32> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.stopping {
                return None;
            }
            if s.set_up {
                return s.rank;
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.state.lock().map(|s| s.stopping).unwrap_or(true)
    }

    /// Test set-up: the engine has joined as `rank`.
    #[cfg(test)]
    pub fn set_up_for_test(&self, rank: u32) {
        self.update(|s| {
            s.rank = Some(rank);
            s.set_up = true;
        });
    }

    /// Test set-up: the group map holds `peers` (rank, incarnation, address).
    #[cfg(test)]
    pub fn set_group_for_test(&self, peers: &[(u32, u64, std::net::SocketAddr)]) {
        self.set_group_version_for_test(1, peers);
    }

    /// Test set-up: group map `version` holds `peers` (rank, incarnation, address).
    #[cfg(test)]
    pub fn set_group_version_for_test(
        &self,
        version: u32,
        peers: &[(u32, u64, std::net::SocketAddr)],
    ) {
        self.update(|s| {
            s.group = GroupMap {
                version,
                peers: peers
                    .iter()
                    .map(|(r, i, a)| {
                        (
                            *r,
                            Peer {
                                uri: format!("ofi+tcp://{a}"),
                                incarnation: *i,
                            },
                        )
                    })
                    .collect(),
            };
        });
    }

    /// Waits until a stop is requested.
    pub fn wait_stop(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.stopping {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether PrepShutdown was received.
    pub fn prepared(&self) -> bool {
        self.state.lock().map(|s| s.prepared).unwrap_or(false)
    }

    /// Fills in each target's free space from its store (what the pool's data uses).
    pub fn account(&self, uuid: &str, targets: &mut [crate::pool::TargetSpace]) {
        let shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        for s in shards.iter() {
            let crate::coremap::Role::Target(t) = s.placement.role else {
                continue;
            };
            match s.pool_space(uuid, Duration::from_secs(10)) {
                Some(Ok((scm, nvme))) => {
                    if let Some(ts) = targets.iter_mut().find(|ts| ts.target == t) {
                        ts.scm_free = ts.scm_total.saturating_sub(scm);
                        ts.nvme_free = ts.nvme_total.saturating_sub(nvme);
                    }
                }
                Some(Err(e)) => dlog!(
                    Subsys::Pool,
                    Level::Warn,
                    "target {t}: pool {uuid} space: {e}"
                ),
                None => {}
            }
        }
    }

    /// Has every target close its store of a pool (its index freed, its entry removed).
    pub fn close_pool(&self, uuid: &str) {
        let shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        for s in shards.iter() {
            if !s.close_pool(uuid, Duration::from_secs(10)) {
                dlog!(
                    Subsys::Pool,
                    Level::Warn,
                    "shard {} did not close pool {uuid}",
                    s.index
                );
            }
        }
    }

    /// Stops every shard (in reverse start order).
    pub fn stop_shards(&self) {
        let shards = std::mem::take(&mut *self.shards.lock().unwrap_or_else(|p| p.into_inner()));
        for shard in shards.into_iter().rev() {
            shard.stop();
        }
    }

    fn set_rank(&self, body: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let req = SetRankReq::decode(body)?;
        if req.rank == NIL_RANK {
            return resp(der::INVAL);
        }
        let status = self.update(|s| match s.rank {
            Some(r) if r != req.rank => der::INVAL,
            _ => {
                s.rank = Some(req.rank);
                der::SUCCESS
            }
        });
        if status == der::SUCCESS {
            self.tell_shards();
        }
        resp(status)
    }

    /// Hands the rank and group map to the shards (the system shard's CaRT context answers
    /// with them). A shard whose queue is full gets it with the next change.
    fn tell_shards(&self) {
        let (rank, group) = match self.state.lock() {
            Ok(s) => (s.rank, Arc::new(s.group.clone())),
            Err(_) => return,
        };
        if let Ok(shards) = self.shards.lock() {
            for sh in shards.iter() {
                let m = crate::context::Membership {
                    rank,
                    group: group.clone(),
                };
                if let Err(e) = sh.send(crate::shard::Command::Membership(m)) {
                    dlog!(Subsys::Mgmt, Level::Warn, "membership not handed on: {e}");
                }
            }
        }
    }

    fn set_up(&self) -> Result<Vec<u8>, HandlerError> {
        let status = self.update(|s| {
            if s.rank.is_none() {
                der::UNINIT
            } else {
                s.set_up = true;
                der::SUCCESS
            }
        });
        resp(status)
    }

    fn prep_shutdown(&self, body: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let _req = PrepShutdownReq::decode(body)?;
        self.update(|s| s.prepared = true);
        resp(der::SUCCESS)
    }

    /// The group map this engine has.
    pub fn group(&self) -> GroupMap {
        self.state
            .lock()
            .map(|s| s.group.clone())
            .unwrap_or_default()
    }

    /// DAOS's GroupUpdate: a newer map replaces the old one; the same version again is a
    /// no-op; an older one is refused (DER_GRPVER), as is a malformed one (DER_INVAL).
    fn group_update(&self, body: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let req = GroupUpdateReq::decode(body)?;
        let map = match check_group_update(&req) {
            Ok(m) => m,
            Err(e) => {
                dlog!(Subsys::Mgmt, Level::Err, "group update refused: {e}");
                return resp(der::INVAL);
            }
        };
        let (status, changed) = self.update(|s| {
            if map.version < s.group.version {
                (der::GRPVER, false)
            } else if map.version == s.group.version {
                (der::SUCCESS, false)
            } else {
                s.group = map.clone();
                (der::SUCCESS, true)
            }
        });
        if changed {
            self.tell_shards();
            let ranks: Vec<String> = map.peers.keys().map(u32::to_string).collect();
            println!(
                "group map updated to version {} ({} ranks: {})",
                map.version,
                map.peers.len(),
                ranks.join(",")
            );
        } else if status == der::GRPVER {
            dlog!(
                Subsys::Mgmt,
                Level::Warn,
                "group update to version {} refused: this engine has version {}",
                map.version,
                self.group().version
            );
        }
        resp(status)
    }

    fn ping_rank(&self, body: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let _req = PingRankReq::decode(body)?;
        let shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        let all_alive = !shards.is_empty()
            && shards
                .iter()
                .all(|s| s.ping(Duration::from_secs(2)).is_some());
        resp(if all_alive {
            der::SUCCESS
        } else {
            der::TIMEDOUT
        })
    }

    /// The dRPC handlers of this engine.
    pub fn registry(ctl: &Arc<Control>, pools: &Arc<PoolStore>) -> Registry {
        let mut r = Registry::new();
        let p = pools.clone();
        r.method(MgmtMethod::PoolCreate, move |_, body| {
            let req = PoolCreateReq::decode(body)?;
            dlog!(Subsys::Mgmt, Level::Debug, "dRPC PoolCreate {}", req.uuid);
            let resp = op_resp(p.create(&req.uuid, req.scm_bytes, req.nvme_bytes));
            Ok(resp.encode_to_vec())
        });
        let p = pools.clone();
        let c = ctl.clone();
        r.method(MgmtMethod::PoolDestroy, move |_, body| {
            let req = PoolDestroyReq::decode(body)?;
            dlog!(Subsys::Mgmt, Level::Debug, "dRPC PoolDestroy {}", req.uuid);
            c.close_pool(&req.uuid);
            let resp = op_resp(p.destroy(&req.uuid));
            release_freed_memory();
            Ok(resp.encode_to_vec())
        });
        let p = pools.clone();
        let c = ctl.clone();
        r.method(MgmtMethod::PoolQuery, move |_, body| {
            let req = PoolQueryReq::decode(body)?;
            dlog!(Subsys::Mgmt, Level::Debug, "dRPC PoolQuery {}", req.uuid);
            let resp = match p.query(&req.uuid) {
                Ok(mut targets) => {
                    c.account(&req.uuid, &mut targets);
                    PoolQueryResp {
                        status: 0,
                        info: String::new(),
                        targets: targets
                            .into_iter()
                            .map(|t| daos_drpc::mgmt::TargetSpace {
                                target: t.target,
                                scm_total: t.scm_total,
                                scm_free: t.scm_free,
                                nvme_total: t.nvme_total,
                                nvme_free: t.nvme_free,
                            })
                            .collect(),
                    }
                }
                Err(e) => PoolQueryResp {
                    status: e.der(),
                    info: e.to_string(),
                    targets: Vec::new(),
                },
            };
            Ok(resp.encode_to_vec())
        });
        let p = pools.clone();
        r.method(MgmtMethod::PoolHandles, move |_, body| {
            let req = daos_drpc::mgmt::PoolHandlesReq::decode(body)?;
            match apply_handles(&p, &req) {
                Ok(()) => resp(der::SUCCESS),
                Err((code, why)) => {
                    dlog!(Subsys::Mgmt, Level::Err, "pool handles: {why}");
                    resp(code)
                }
            }
        });
        let p = pools.clone();
        r.method(MgmtMethod::PoolMapVersions, move |_, body| {
            let req = daos_drpc::mgmt::PoolMapVersionsReq::decode(body)?;
            for pool in &req.pools {
                if !crate::pool::valid_uuid(&pool.uuid) {
                    dlog!(
                        Subsys::Mgmt,
                        Level::Warn,
                        "pool map versions: PoolMapVersionsReq.pools.uuid {:?} is not a UUID; skipped",
                        pool.uuid
                    );
                    continue;
                }
                // A pool this engine does not hold: nothing to do.
                let _ = p.set_map_version(&pool.uuid, pool.version);
            }
            resp(der::SUCCESS)
        });
        let c = ctl.clone();
        r.method(MgmtMethod::SetRank, move |_, body| c.set_rank(body));
        let c = ctl.clone();
        r.method(MgmtMethod::SetUp, move |_, _| c.set_up());
        let c = ctl.clone();
        r.method(MgmtMethod::PrepShutdown, move |_, body| {
            c.prep_shutdown(body)
        });
        let c = ctl.clone();
        r.method(MgmtMethod::PingRank, move |_, body| c.ping_rank(body));
        let c = ctl.clone();
        r.method(MgmtMethod::GroupUpdate, move |_, body| c.group_update(body));
        r.method(MgmtMethod::SetLogMasks, move |_, body| {
            let req = daos_drpc::SetLogMasksReq::decode(body)?;
            let status = match crate::log::merged(&req.masks, &req.streams, &req.subsystems) {
                Ok(mask) => {
                    crate::log::set(&mask);
                    // Always said (daos_server's log shows what the engine now logs).
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stdout(),
                        "log masks set to {mask} (debug streams {:?})",
                        req.streams
                    );
                    der::SUCCESS
                }
                Err(why) => {
                    dlog!(Subsys::Mgmt, Level::Err, "set log masks refused: {why}");
                    der::INVAL
                }
            };
            Ok(daos_drpc::SetLogMasksResp {
                status,
                errors: Vec::new(),
            }
            .encode_to_vec())
        });
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daos_drpc::mgmt::group_update_req::Engine;

    fn update(version: u32, engines: &[(u32, &str)]) -> Vec<u8> {
        GroupUpdateReq {
            map_version: version,
            engines: engines
                .iter()
                .map(|(rank, uri)| Engine {
                    rank: *rank,
                    uri: uri.to_string(),
                    incarnation: 1,
                })
                .collect(),
        }
        .encode_to_vec()
    }

    fn status(r: Result<Vec<u8>, HandlerError>) -> i32 {
        DaosResp::decode(r.expect("answer").as_slice())
            .expect("decode")
            .status
    }

    #[test]
    fn group_updates_follow_daos_versions_and_bad_maps_change_nothing() {
        let c = Control::new(Vec::new());
        let two = [
            (0, "ofi+tcp;ofi_rxm://10.0.0.1:31416"),
            (1, "ofi+tcp;ofi_rxm://10.0.0.2:31416"),
        ];
        assert_eq!(status(c.group_update(&update(3, &two))), der::SUCCESS);
        assert_eq!(c.group().version, 3);
        assert_eq!(c.group().peers.len(), 2);
        // The same version again is a no-op; an older one is refused.
        assert_eq!(status(c.group_update(&update(3, &two[..1]))), der::SUCCESS);
        assert_eq!(c.group().peers.len(), 2);
        assert_eq!(status(c.group_update(&update(2, &two[..1]))), der::GRPVER);
        // Malformed maps: version 0, a rank twice, a URI without an address, the nil rank.
        for bad in [
            update(0, &two),
            update(4, &[(0, "ofi+tcp://a:1"), (0, "ofi+tcp://b:1")]),
            update(4, &[(0, "ofi+tcp")]),
            update(4, &[(NIL_RANK, "ofi+tcp://a:1")]),
        ] {
            assert_eq!(status(c.group_update(&bad)), der::INVAL);
        }
        assert_eq!(c.group().version, 3, "nothing changed");
        assert!(c.group_update(&[0xff, 0xff, 0xff]).is_err(), "undecodable");
        assert_eq!(status(c.group_update(&update(4, &two[1..]))), der::SUCCESS);
        assert_eq!(c.group().peers.keys().copied().collect::<Vec<_>>(), [1]);
    }
}

/// Applies a `PoolHandlesReq` to the pool's table; a bad field changes nothing.
fn apply_handles(
    pools: &crate::pool::PoolStore,
    req: &daos_drpc::mgmt::PoolHandlesReq,
) -> Result<(), (i32, String)> {
    if !crate::pool::valid_uuid(&req.uuid) {
        return Err((
            der::INVAL,
            format!("PoolHandlesReq.uuid {:?} is not a UUID", req.uuid),
        ));
    }
    let mut conts = Vec::with_capacity(req.add.len());
    for h in &req.add {
        if h.cookie == 0 || h.cookie == u64::MAX {
            return Err((
                der::INVAL,
                format!("PoolHandlesReq.add.cookie {} is reserved", h.cookie),
            ));
        }
        if h.rights > 0xffff {
            return Err((
                der::INVAL,
                format!(
                    "PoolHandlesReq.add.rights {:#x} is beyond 16 bits",
                    h.rights
                ),
            ));
        }
        let cont = if h.cont.is_empty() {
            None
        } else {
            Some(daos_wire::parse_uuid(&h.cont).ok_or_else(|| {
                (
                    der::INVAL,
                    format!("PoolHandlesReq.add.cont {:?} is not a UUID", h.cont),
                )
            })?)
        };
        if cont.is_some() != (h.parent != 0) {
            return Err((
                der::INVAL,
                "PoolHandlesReq.add: a container handle needs both parent and cont".into(),
            ));
        }
        conts.push(cont);
    }
    // A pool this engine does not hold: nothing to check here.
    let Some(t) = pools.handles(&req.uuid) else {
        return Ok(());
    };
    if req.replace {
        t.clear();
    }
    for c in &req.revoke {
        t.revoke(*c);
    }
    for (h, cont) in req.add.iter().zip(&conts) {
        t.insert(h.cookie, h.rights as u16, h.parent, cont.as_ref())
            .map_err(|e| (der::NOSPACE, format!("pool {}: {e}", req.uuid)))?;
    }
    if req.arm {
        pools
            .arm_handles(&req.uuid)
            .map_err(|e| (der::IO, format!("pool {}: {e}", req.uuid)))?;
    }
    Ok(())
}

#[cfg(test)]
mod handle_tests {
    use super::*;
    use daos_drpc::mgmt::PoolHandlesReq;
    use daos_drpc::mgmt::pool_handles_req::Handle;

    const U: &str = "11111111-2222-4333-8444-555555555555";

    fn h(cookie: u64, rights: u32, parent: u64, cont: &str) -> Handle {
        Handle {
            cookie,
            rights,
            parent,
            cont: cont.into(),
        }
    }

    #[test]
    fn pushed_handles_are_checked_field_by_field_and_bad_pushes_change_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let pools = crate::pool::tests::store(dir.path(), 1, 64);
        pools.create(U, 32 << 20, 0).expect("pool");
        let push = |req: PoolHandlesReq| apply_handles(&pools, &req);
        let c = "aaaaaaaa-2222-4333-8444-555555555555";
        for (bad, field) in [
            (h(0, 1, 0, ""), "cookie 0 is reserved"),
            (h(u64::MAX, 1, 0, ""), "is reserved"),
            (h(5, 1 << 20, 0, ""), "rights 0x100000"),
            (h(5, 1, 0, "nope"), "cont \"nope\" is not a UUID"),
            (h(5, 1, 7, ""), "needs both parent and cont"),
        ] {
            let e = push(PoolHandlesReq {
                uuid: U.into(),
                add: vec![h(9, 3, 0, ""), bad],
                arm: true,
                ..Default::default()
            })
            .expect_err("refused");
            assert_eq!(e.0, der::INVAL);
            assert!(e.1.contains(field), "{}", e.1);
        }
        let t = pools.handles(U).expect("held");
        assert!(t.is_empty() && !t.armed(), "nothing applied");
        assert!(
            push(PoolHandlesReq {
                uuid: "x".into(),
                ..Default::default()
            })
            .is_err()
        );
        push(PoolHandlesReq {
            uuid: U.into(),
            add: vec![h(9, 3, 0, ""), h(10, 1, 9, c)],
            arm: true,
            ..Default::default()
        })
        .expect("applied");
        assert!(t.armed() && t.len() == 2);
        push(PoolHandlesReq {
            uuid: U.into(),
            revoke: vec![9],
            ..Default::default()
        })
        .expect("revoked");
        assert!(t.is_empty(), "a pool handle takes its container handles");
        push(PoolHandlesReq {
            uuid: U.into(),
            add: vec![h(11, 1, 0, "")],
            replace: true,
            ..Default::default()
        })
        .expect("replaced");
        assert_eq!(t.lookup(11), Some((1, 0, 0)));
        // A pool this engine does not hold: accepted, nothing kept.
        push(PoolHandlesReq {
            uuid: "99999999-2222-4333-8444-555555555555".into(),
            add: vec![h(12, 1, 0, "")],
            ..Default::default()
        })
        .expect("ignored");
        // After a restart the pool checks at once, with no handle until they are pushed again.
        drop(t);
        drop(pools);
        let again = crate::pool::tests::store(dir.path(), 1, 64);
        let t = again.handles(U).expect("held");
        assert!(t.armed() && t.is_empty(), "restarted armed and empty");
    }
}

/// Hands the memory a destroyed pool's stores freed back to the OS: glibc keeps freed blocks
/// in its per-thread arenas (each target thread has one), so without this the engine's RSS
/// stays at its peak after the pool is gone.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases free memory of glibc's own
    // arenas; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
