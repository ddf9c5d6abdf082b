//! DAOS's collective object RPCs on a target: what a client sends to punch or size an
//! object of several shards (`OBJ_CPD`, a punch converted to a transaction; `OBJ_COLL_PUNCH`;
//! `OBJ_COLL_QUERY`: facts in `docs/daos-protocol/cpd_wire.md`). The target that receives one
//! does its own part and hands the other targets of this engine theirs as bounded messages
//! through their shards' command queues (nothing is shared between targets); it answers the
//! client once every part is done. All parts of one request take the same epoch.
//!
//! A part for another rank's target goes to that engine as the plain object RPC a client
//! would send ([`super::forward`]).

use std::ops::Bound;
use std::sync::Arc;

use daos_cart::hlc;
use daos_cart::obj::{self, CollPunchIn, CollQueryIn, CpdIn, Recx, UnitOid, cpd_op, get};
use daos_wire::der;

use super::objects::{Kind, Op};
use super::{TargetService, store_of, store_status};
use crate::shard::PeerLink;
use crate::store::AkeyRef;

/// Where a part of a collective request runs.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// This engine's target of that index.
    Local(u32),
    /// Another rank's target.
    Remote { rank: u32, tgt_idx: u32 },
}

/// What a query found on one target: the dkey, the akey and the record run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub dkey: Vec<u8>,
    pub akey: Vec<u8>,
    pub recx: Recx,
}

/// Work one target asks another to do for a collective RPC.
#[derive(Clone, Debug)]
pub enum PeerWork {
    /// Punch the object, one dkey, or akeys of a dkey.
    Punch {
        dkey: Option<Vec<u8>>,
        akeys: Vec<Vec<u8>>,
    },
    /// `QUERY_KEY` on this target's shards.
    Query {
        flags: u64,
        dkey: Vec<u8>,
        akey: Vec<u8>,
    },
}

/// A message between the targets of one engine.
#[derive(Clone, Debug)]
pub enum PeerMsg {
    Work {
        /// The asking target, and its token (the request's slot) to answer with.
        from: u32,
        token: u64,
        pool: [u8; 16],
        cont: [u8; 16],
        oid: UnitOid,
        work: PeerWork,
    },
    Done {
        token: u64,
        rc: i32,
        found: Option<Found>,
        max_epoch: u64,
    },
}

/// A collective request's progress (in its slot).
#[derive(Clone, Debug, Default)]
pub struct CollState {
    /// Parts still out on other targets.
    pub waiting: u32,
    /// The first failure.
    pub rc: i32,
    /// A query: the best found so far (greatest dkey, or least with `DAOS_GET_MIN`).
    pub found: Option<Found>,
    pub max_epoch: u64,
    pub min: bool,
}

impl CollState {
    fn take(&mut self, rc: i32, found: Option<Found>, max_epoch: u64) {
        if self.rc == 0 && rc != 0 && rc != der::NONEXIST {
            self.rc = rc;
        }
        self.max_epoch = self.max_epoch.max(max_epoch);
        let Some(f) = found else {
            return;
        };
        let num = |k: &[u8]| {
            let mut b = [0u8; 8];
            let n = k.len().min(8);
            b[..n].copy_from_slice(&k[..n]);
            u64::from_le_bytes(b)
        };
        let better = self.found.as_ref().is_none_or(|cur| {
            if self.min {
                num(&f.dkey) < num(&cur.dkey)
            } else {
                num(&f.dkey) > num(&cur.dkey)
            }
        });
        if better {
            self.found = Some(f);
        }
    }
}

/// `QUERY_KEY` on one store: what it finds (none: nothing matches) and the object's last
/// write (an HLC reading).
#[allow(clippy::too_many_arguments)]
pub(super) fn query_local(
    store: &crate::pool::TargetStore,
    cont: u128,
    oid: UnitOid,
    flags: u64,
    dkey_asked: &[u8],
    akey_asked: &[u8],
    cands: &mut Vec<(u64, Vec<u8>)>,
    ext: &mut Vec<(u64, u64)>,
) -> Result<(Option<Found>, u64), i32> {
    let unit = oid;
    let oid = unit.id();
    let max_epoch = match store.object_epoch(cont, oid) {
        0 => 0,
        ns => hlc::from_unix_nanos(ns),
    };
    if flags & get::DKEY != 0 && !unit.dkey_is_u64() {
        return Err(der::INVAL);
    }
    if flags & get::AKEY != 0 && !unit.akey_is_u64() {
        return Err(der::INVAL);
    }
    if flags == 0 {
        return Ok((None, max_epoch));
    }
    // Candidate dkeys, best first.
    cands.clear();
    if flags & get::DKEY != 0 {
        store.walk_dkeys(cont, oid, Bound::Unbounded, false, |k| {
            if k.len() == 8 {
                let mut b = [0u8; 8];
                b.copy_from_slice(k);
                cands.push((u64::from_le_bytes(b), k.to_vec()));
            }
            true
        });
        if flags & get::MIN != 0 {
            cands.sort_unstable_by_key(|c| c.0);
        } else {
            cands.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
        }
    } else if store.dkey_exists(cont, oid, dkey_asked) {
        cands.push((0, dkey_asked.to_vec()));
    }
    let mut found: Option<(usize, Vec<u8>, Recx)> = None;
    for (i, (_, dkey)) in cands.iter().enumerate() {
        // The akey: the one asked, or the greatest (least) u64 akey.
        let akey: Option<Vec<u8>> = if flags & get::AKEY != 0 {
            let mut best: Option<(u64, Vec<u8>)> = None;
            store.walk_akeys(cont, oid, dkey, Bound::Unbounded, |a| {
                if a.len() == 8 {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(a);
                    let n = u64::from_le_bytes(b);
                    let better = best.as_ref().is_none_or(|(m, _)| {
                        if flags & get::MIN != 0 {
                            n < *m
                        } else {
                            n > *m
                        }
                    });
                    if better {
                        best = Some((n, a.to_vec()));
                    }
                }
                true
            });
            best.map(|b| b.1)
        } else {
            Some(akey_asked.to_vec())
        };
        let Some(akey) = akey else {
            continue;
        };
        if flags & get::RECX == 0 {
            found = Some((i, akey, Recx::default()));
            break;
        }
        let key = AkeyRef {
            cont,
            oid,
            dkey,
            akey: &akey,
        };
        store.visible_extents(key, 0, u64::MAX, u64::MAX, ext);
        let pick = if flags & get::MIN != 0 {
            ext.first()
        } else {
            ext.last()
        };
        if let Some(&(s, t)) = pick {
            // In records of the array's size.
            let rs = u64::from(store.array_rsize(key, u64::MAX).unwrap_or(1));
            let recx = Recx {
                idx: s / rs,
                nr: (t - s) / rs,
            };
            found = Some((i, akey, recx));
            break;
        }
    }
    Ok((
        found.map(|(i, akey, recx)| Found {
            dkey: cands[i].1.clone(),
            akey,
            recx,
        }),
        max_epoch,
    ))
}

impl TargetService {
    /// Takes in how to reach the engine's other targets.
    pub fn set_peers(&mut self, links: Arc<Vec<PeerLink>>) {
        self.targets = Some(links);
    }

    fn link(&self, target: u32) -> Option<&PeerLink> {
        self.targets.as_ref()?.iter().find(|l| l.target == target)
    }

    /// Work from another target, or the answer to work this one asked for.
    pub fn peer_msg(&mut self, msg: PeerMsg) {
        match msg {
            PeerMsg::Work {
                from,
                token,
                pool,
                cont,
                oid,
                work,
            } => {
                let (rc, found, max_epoch) = self.do_work(&pool, &cont, oid, &work);
                let done = PeerMsg::Done {
                    token,
                    rc,
                    found,
                    max_epoch,
                };
                if !self.link(from).is_some_and(|l| l.send(done)) {
                    crate::dlog!(
                        crate::log::Subsys::Object,
                        daos_config::logmask::Level::Err,
                        "target {}: cannot answer target {from} (its queue is full or gone)",
                        self.index
                    );
                }
            }
            PeerMsg::Done {
                token,
                rc,
                found,
                max_epoch,
            } => self.coll_done(token as usize, rc, found, max_epoch),
        }
    }

    /// Does one part of a collective request on this target's store.
    fn do_work(
        &mut self,
        pool: &[u8; 16],
        cont: &[u8; 16],
        oid: UnitOid,
        work: &PeerWork,
    ) -> (i32, Option<Found>, u64) {
        let store = match store_of(
            self.index,
            &self.pools,
            &mut self.stores,
            &self.damaged,
            pool,
        ) {
            Ok(s) => s,
            Err((rc, _)) => return (rc, None, 0),
        };
        let c = u128::from_le_bytes(*cont);
        match work {
            PeerWork::Punch { dkey, akeys } => {
                let r = if akeys.is_empty() {
                    store.punch_at(c, oid.id(), dkey.as_deref(), None, 0)
                } else {
                    let mut r = Ok(0);
                    for a in akeys {
                        r = store.punch_at(c, oid.id(), dkey.as_deref(), Some(a), 0);
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                };
                (r.err().map_or(0, |e| store_status(&e)), None, 0)
            }
            PeerWork::Query { flags, dkey, akey } => {
                let (mut cands, mut ext) = (Vec::new(), Vec::new());
                match query_local(store, c, oid, *flags, dkey, akey, &mut cands, &mut ext) {
                    Ok((found, max_epoch)) => (0, found, max_epoch),
                    Err(rc) => (rc, None, 0),
                }
            }
        }
    }

    /// Starts a collective request in `slot`: its own parts here, the others' sent.
    pub(super) fn start_coll(&mut self, slot: usize, req: &[u8]) {
        let Ok(call) = daos_cart::rpc::parse_call(req) else {
            self.coll_fail(slot, der::PROTO);
            return;
        };
        let index = daos_cart::opcode::index_of(call.hdr.opc);
        // (where, oid, work) of every part.
        let mut parts: Vec<(Place, UnitOid, PeerWork)> = Vec::new();
        let (pool, co_hdl, co_uuid, map_ver, min) = match index {
            obj::op::CPD => match CpdIn::decode(call.input) {
                Ok(q) => {
                    for t in &q.targets {
                        for &(shard, req_idx) in &t.writes {
                            let Some(sub) = q.subs.get(req_idx as usize) else {
                                continue;
                            };
                            let work = match sub.opc {
                                cpd_op::PUNCH_OBJ => PeerWork::Punch {
                                    dkey: None,
                                    akeys: Vec::new(),
                                },
                                cpd_op::PUNCH_DKEY => PeerWork::Punch {
                                    dkey: Some(sub.dkey.to_vec()),
                                    akeys: Vec::new(),
                                },
                                cpd_op::PUNCH_AKEY => PeerWork::Punch {
                                    dkey: Some(sub.dkey.to_vec()),
                                    akeys: sub.akeys.iter().map(|a| a.to_vec()).collect(),
                                },
                                _ => continue,
                            };
                            let oid = UnitOid { shard, ..sub.oid };
                            parts.push((self.place(t.rank, u32::from(t.tgt_idx)), oid, work));
                        }
                    }
                    (q.pool, q.co_hdl, q.co_uuid, q.map_ver, false)
                }
                Err(_) => {
                    self.coll_fail(slot, der::PROTO);
                    return;
                }
            },
            obj::op::COLL_PUNCH => match CollPunchIn::decode(call.input) {
                Ok(q) => {
                    let punch = || PeerWork::Punch {
                        dkey: None,
                        akeys: Vec::new(),
                    };
                    self.coll_parts(&q.targets, q.oid, punch, &mut parts);
                    (q.pool, q.co_hdl, q.co_uuid, q.map_ver, false)
                }
                Err(_) => {
                    self.coll_fail(slot, der::PROTO);
                    return;
                }
            },
            _ => match CollQueryIn::decode(call.input) {
                Ok(q) => {
                    let query = || PeerWork::Query {
                        flags: q.api_flags,
                        dkey: q.dkey.to_vec(),
                        akey: q.akey.to_vec(),
                    };
                    self.coll_parts(&q.targets, q.oid, query, &mut parts);
                    let min = q.api_flags & get::MIN != 0;
                    (q.pool, q.co_hdl, q.co_uuid, q.map_ver, min)
                }
                Err(_) => {
                    self.coll_fail(slot, der::PROTO);
                    return;
                }
            },
        };
        // The client's handle and map, as for any object RPC.
        let need = if index == obj::op::COLL_QUERY {
            crate::handles::READ
        } else {
            crate::handles::READ | crate::handles::WRITE
        };
        let checked = self.check_object_call(&pool, &co_hdl, &co_uuid, map_ver, need);
        if let Some(op) = self.cart_op(slot) {
            op.kind = Kind::Coll;
            op.coll = CollState {
                min,
                ..CollState::default()
            };
            // Answered once every part is in, not at the next poll.
            op.mark_waiting();
        }
        let map_version = match checked {
            Ok(v) => v,
            Err(rc) => {
                self.coll_fail(slot, rc);
                return;
            }
        };
        let epoch = self.cart.hlc_now();
        if let Some(op) = self.cart_op(slot) {
            op.map_version = map_version;
            op.epoch = epoch;
        }
        let under = super::forward::Under {
            pool,
            co_hdl,
            co_uuid,
            map_ver,
        };
        for (place, oid, work) in parts {
            let on = match place {
                Place::Local(on) => on,
                Place::Remote { rank, tgt_idx } => {
                    let part = super::forward::RemotePart {
                        rank,
                        tgt_idx,
                        oid,
                        work,
                    };
                    match self.forward(slot, &part, &under) {
                        Ok(()) => {
                            if let Some(op) = self.cart_op(slot) {
                                op.coll.waiting += 1;
                            }
                        }
                        Err(rc) => self.coll_part(slot, rc, None, 0),
                    }
                    continue;
                }
            };
            if on == self.index {
                let (rc, found, max_epoch) = self.do_work(&pool, &co_uuid, oid, &work);
                self.coll_part(slot, rc, found, max_epoch);
                continue;
            }
            let msg = PeerMsg::Work {
                from: self.index,
                token: slot as u64,
                pool,
                cont: co_uuid,
                oid,
                work,
            };
            let sent = self.link(on).is_some_and(|l| l.send(msg));
            if sent {
                if let Some(op) = self.cart_op(slot) {
                    op.coll.waiting += 1;
                }
            } else {
                // A full queue: the client retries on DER_BUSY... not a retry error for
                // punches, so say "try again" the way DAOS does when it is overloaded.
                self.coll_part(slot, der::BUSY, None, 0);
            }
        }
        self.coll_maybe_ready(slot);
    }

    /// A part of `work` on `oid` for each target the collective request lists.
    fn coll_parts(
        &self,
        targets: &[obj::CollTarget],
        oid: UnitOid,
        work: impl Fn() -> PeerWork,
        parts: &mut Vec<(Place, UnitOid, PeerWork)>,
    ) {
        for t in targets {
            for &i in &t.tgt_idxs {
                parts.push((self.place(t.rank, u32::from(i)), oid, work()));
            }
        }
    }

    /// Where target `tgt_idx` of `rank` is: one of this engine's, or another engine's.
    fn place(&self, rank: u32, tgt_idx: u32) -> Place {
        if self.is_ours(rank) {
            Place::Local(tgt_idx)
        } else {
            Place::Remote { rank, tgt_idx }
        }
    }

    /// A part another engine did (its reply, or its failure to answer).
    pub(super) fn coll_remote_done(
        &mut self,
        slot: usize,
        rc: i32,
        found: Option<Found>,
        max_epoch: u64,
    ) {
        self.coll_done(slot, rc, found, max_epoch);
    }

    fn coll_part(&mut self, slot: usize, rc: i32, found: Option<Found>, max_epoch: u64) {
        if let Some(op) = self.cart_op(slot) {
            op.coll.take(rc, found, max_epoch);
        }
    }

    fn coll_done(&mut self, slot: usize, rc: i32, found: Option<Found>, max_epoch: u64) {
        let Some(op) = self.cart_op(slot) else {
            return;
        };
        if op.kind != Kind::Coll {
            return;
        }
        op.coll.waiting = op.coll.waiting.saturating_sub(1);
        op.coll.take(rc, found, max_epoch);
        self.coll_maybe_ready(slot);
    }

    fn coll_fail(&mut self, slot: usize, rc: i32) {
        if let Some(op) = self.cart_op(slot) {
            op.kind = Kind::Coll;
            op.coll.rc = rc;
        }
        self.coll_maybe_ready(slot);
    }

    fn coll_maybe_ready(&mut self, slot: usize) {
        if let Some(op) = self.cart_op(slot)
            && op.coll.waiting == 0
        {
            op.mark_ready();
        }
    }

    /// Whether `rank` is this engine's (before it knows its rank, every rank is).
    fn is_ours(&self, rank: u32) -> bool {
        self.rank.is_none_or(|r| r == rank)
    }

    fn cart_op(&mut self, slot: usize) -> Option<&mut Op> {
        self.cart.op_mut(slot)
    }
}

/// Writes a collective request's reply from its state.
pub(super) fn write_coll_reply(
    index: u16,
    op: &Op,
    hlc: u64,
    e: &mut daos_cart::proc_::Encoder<'_>,
) -> Result<(), daos_cart::CartError> {
    let c = &op.coll;
    match index {
        obj::op::CPD => {
            // A failure before any part ran is the RPC's; one of a part is the sub-result.
            obj::write_cpd_out(e, 0, op.map_version, op.epoch, c.rc)
        }
        obj::op::COLL_PUNCH => obj::write_punch_out(e, c.rc, op.map_version),
        _ => {
            let (rc, f) = match (&c.found, c.rc) {
                (_, rc) if rc != 0 => (rc, None),
                (Some(f), _) => (0, Some(f)),
                (None, _) => (der::NONEXIST, None),
            };
            obj::write_coll_query_out(
                e,
                rc,
                op.map_version,
                0,
                hlc,
                f.map_or(&[], |f| &f.dkey),
                f.map_or(&[], |f| &f.akey),
                f.map_or(Recx::default(), |f| f.recx),
                c.max_epoch,
            )
        }
    }
}
