//! The engine's control state and its dRPC handlers (module MGMT, served on
//! `daos_engine_<pid>.sock`): SetRank (202), SetUp (209), PrepShutdown (218), PingRank (225).
//!
//! Bring-up is a small state machine: started → rank set → set up; any time → stopping.
//! SetRank is idempotent for the same rank (a retried join must not fail the engine, DAOS
//! issue 13621) and refuses a different one.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use daos_drpc::mgmt::{
    DaosResp, PingRankReq, PoolCreateReq, PoolDestroyReq, PoolOpResp, PoolQueryReq, PoolQueryResp,
    PrepShutdownReq, SetRankReq,
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
                Some(Err(e)) => eprintln!("WARNING: target {t}: pool {uuid} space: {e}"),
                None => {}
            }
        }
    }

    /// Has every target close its store of a pool.
    pub fn close_pool(&self, uuid: &str) {
        let shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        for s in shards.iter() {
            if !s.close_pool(uuid, Duration::from_secs(10)) {
                eprintln!("WARNING: shard {} did not close pool {uuid}", s.index);
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
        resp(status)
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
            let resp = op_resp(p.create(&req.uuid, req.scm_bytes, req.nvme_bytes));
            Ok(resp.encode_to_vec())
        });
        let p = pools.clone();
        let c = ctl.clone();
        r.method(MgmtMethod::PoolDestroy, move |_, body| {
            let req = PoolDestroyReq::decode(body)?;
            c.close_pool(&req.uuid);
            let resp = op_resp(p.destroy(&req.uuid));
            Ok(resp.encode_to_vec())
        });
        let p = pools.clone();
        let c = ctl.clone();
        r.method(MgmtMethod::PoolQuery, move |_, body| {
            let req = PoolQueryReq::decode(body)?;
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
        r
    }
}
