//! DAOS's object I/O on a target: the object RPCs (protocol v10, [`daos_cart::obj`]) that
//! DAOS's own clients (libdaos, dfuse, IOR and mdtest with DFS, the `daos` tool) send to
//! tag `t + 2`, which is this target's endpoint (port `fabric_iface_port + 2 + t`). They
//! arrive beside daos-rs's own protocol, told apart by how they were sent: Mercury's requests
//! are tagged (DAOS 2.6) or carry remote CQ data (2.8); daos-rs's own are neither.
//!
//! Served: `UPDATE` and `FETCH` of single values and arrays (inline, or by RMA with the
//! client's bulk handles), with DAOS's conditional flags, I/O maps (the written parts of a
//! read, which DFS needs to tell holes from data) and size queries; dkey and akey
//! enumeration with anchors (keys inline or pushed into the client's buffer); object, dkey and
//! akey punches; `QUERY_KEY` (DFS's file size); `SYNC`; and requests larger than a message
//! (Mercury's "more data", pulled first). Each request is checked as DAOS's engine checks it:
//! the container handle must be one the pool service issued (with the rights the operation
//! needs), the client's pool map not older than the target's.
//!
//! The target chooses the epoch of DAOS's non-transactional I/O (clients send
//! `DAOS_EPOCH_MAX`), so a later acknowledged update is always ordered after an earlier one,
//! whatever the clients' clocks say. Objects are stored per (container, object id); every
//! shard of an `S*` object lives on its own target.
//!
//! Not served yet (answered `-DER_NOSYS` in the reply body, never a hang): recx enumeration,
//! transactions (`CPD`), collective punch and query, `KEY2ANCHOR`, EC and replicated
//! classes, checksums, bulk handles of more than one segment. An array keeps the record size
//! it was written with (a fetch of "any" size answers it; punches and `QUERY_KEY` count in it).

use crate::moves::{Move, segment_moves};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use daos_cart::mercury::{self, HgReturn};
use daos_cart::obj::{
    self, EnumIn, Iod, PunchIn, QueryKeyIn, QueryKeyOut, Recx, RwIn, cond, iod_type, orf,
};
use daos_cart::opcode::{self, module};
use daos_cart::proc_::{Decoder, Encoder};
use daos_cart::{CartError, hlc, rpc};
use daos_fabric::{EndpointError, Peer, Received, RemoteBuf};
use daos_wire::der;

use super::coll::query_local;
use super::{TargetService, store_of, store_status};
use crate::handles::{HandleTable, READ, Refusal, WRITE};
use crate::pool::{PoolStore, TargetStore};
use crate::store::{AkeyRef, StoreError};

/// Bulk slots for DAOS's clients (after daos-rs's own [`super::BULK_SLOTS`]).
pub const SLOTS: usize = 8;
/// The object protocol version served.
const VERSION: u8 = 10;
/// RMA ids of these slots carry this bit (daos-rs's own use the slot number alone).
const RMA_ID: u64 = 1 << 40;
/// Most key descriptors an enumeration returns at once.
const KDS_MAX: usize = 4096;
/// Where key descriptors go in a slot for a kds bulk (the keys go from 0 up to it).
const KDS_AT: usize = super::BULK_SLOT - KDS_MAX * obj::KEY_DESC_RAW;
/// A key in an anchor: its length, a hash of it, and its first bytes (DAOS leaves the
/// anchor's 104-byte buffer to the engine).
const ANCHOR_KEY_BYTES: usize = 88;
/// Largest inline reply data (what fits a 20 KiB message with its headers).
const INLINE_MAX: usize = mercury::MSG_SIZE - 1024;

/// Where a request in a slot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Its input (Mercury's "more data") is being pulled into the slot.
    Input,
    /// Its data is moving between the slot and the client's buffers.
    Data,
    /// Ready to answer.
    Reply,
}

/// What a slot's request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Answered from the request alone.
    Plain,
    Update,
    Fetch,
    Enum,
    /// A collective request (its parts on this engine's targets).
    Coll,
}

/// A request using a bulk slot; the request itself is in the slot's scratch buffer.
pub(super) struct Op {
    r: Received,
    peer: Peer,
    tag: u64,
    /// The request's length in scratch (Mercury's headers included).
    len: usize,
    stage: Stage,
    pub(super) kind: Kind,
    /// RMAs in flight, and whether one failed.
    moving: u32,
    failed: bool,
    /// The answer's status, epoch and map version once known.
    rc: i32,
    pub(super) epoch: u64,
    pub(super) map_version: u32,
    /// Fetch: per iod, (iod size, data bytes); enumeration: (keys, bytes of keys).
    sizes: Vec<(u64, u64)>,
    /// Enumeration: the three anchors to send back.
    anchors: [u8; 3 * obj::ANCHOR_LEN],
    /// A collective request's progress.
    pub(super) coll: super::coll::CollState,
    /// An update's iods moved in this round (an update larger than the slot goes in rounds,
    /// as many whole iods as fit each time).
    round: (u32, u32),
}

impl Op {
    /// Ready to answer.
    pub(super) fn mark_ready(&mut self) {
        self.stage = Stage::Reply;
    }

    /// Waiting for work elsewhere (a collective request's parts on other targets).
    pub(super) fn mark_waiting(&mut self) {
        self.stage = Stage::Data;
    }
}

/// The target's side of DAOS's protocol (everything but the per-slot scratch buffers).
pub(super) struct Cart {
    hlc: hlc::Hlc,
    peers: Vec<([u8; mercury::NA_ADDR_LEN], Peer)>,
    ops: Vec<Option<Op>>,
    /// Reused buffers: visible extents, dkeys as numbers, gathered data, fetch sizes.
    extents: Vec<(u64, u64)>,
    numbers: Vec<(u64, Vec<u8>)>,
    gather: Vec<u8>,
    sizes: Vec<(u64, u64)>,
    /// Finished RMAs of these slots: (slot, ok).
    finished: Vec<(usize, bool)>,
    complained: Option<Instant>,
}

/// A slot's scratch buffer: the request (up to [`PULL_MAX`] of input after Mercury's
/// headers), then what its inline reply carries from the slot (key descriptors and keys).
pub(super) fn scratch() -> Vec<Box<[u8]>> {
    (0..SLOTS)
        .map(|_| vec![0u8; REPLY_AT + REPLY_MAX].into_boxed_slice())
        .collect()
}

/// Largest request input pulled ("more data").
pub const PULL_MAX: usize = super::BULK_SLOT;
/// Where a slot's reply data starts in its scratch buffer.
const REPLY_AT: usize = mercury::REQUEST_BODY + PULL_MAX;
/// Room for it: key descriptors and keys of an inline reply.
const REPLY_MAX: usize = INLINE_MAX * 2;

impl Cart {
    pub(super) fn new() -> Cart {
        Cart {
            hlc: hlc::Hlc::default(),
            peers: Vec::with_capacity(super::PEERS_MAX),
            ops: (0..SLOTS).map(|_| None).collect(),
            extents: Vec::with_capacity(64),
            numbers: Vec::new(),
            gather: Vec::with_capacity(INLINE_MAX),
            sizes: Vec::with_capacity(16),
            finished: Vec::with_capacity(SLOTS * 4),
            complained: None,
        }
    }

    /// Whether an RMA id is one of these slots'; records its end.
    pub(super) fn rma_done(&mut self, id: u64, ok: bool) -> bool {
        if id & RMA_ID == 0 {
            return false;
        }
        self.finished.push(((id & !RMA_ID) as usize, ok));
        true
    }

    pub(super) fn complain(&mut self, index: u32, what: &str) {
        let now = Instant::now();
        if self
            .complained
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
        {
            self.complained = Some(now);
            crate::dlog!(
                crate::log::Subsys::Object,
                daos_config::logmask::Level::Warn,
                "target {index}: DAOS client request: {what}"
            );
        }
    }

    /// gurt's clock now, as this target's replies carry it.
    pub(super) fn hlc_now(&mut self) -> u64 {
        self.hlc.get(hlc::now_ns())
    }

    pub(super) fn op_mut(&mut self, slot: usize) -> Option<&mut Op> {
        self.ops.get_mut(slot).and_then(Option::as_mut)
    }
}

/// Whether a received message is a DAOS client's (Mercury's): its tag, if so.
pub(super) fn mercury_tag(r: &Received) -> Option<u64> {
    mercury::request_tag(r.tag(), r.data())
}

/// The borrowed parts of a target that serve a request (the endpoint and the scratch
/// buffers are borrowed beside it).
struct Ctx<'a> {
    index: u32,
    pools: &'a PoolStore,
    stores: &'a mut HashMap<[u8; 16], TargetStore>,
    damaged: &'a HashMap<[u8; 16], String>,
    versions: &'a mut HashMap<[u8; 16], Arc<AtomicU32>>,
    handles: &'a mut HashMap<[u8; 16], Arc<HandleTable>>,
    cart: &'a mut Cart,
}

/// Why a request is refused before it touches the store.
type Refused = i32;

/// A target split into what serves a request, its endpoint and its scratch buffers.
type Split<'a> = (
    Ctx<'a>,
    &'a mut daos_fabric::RdmEndpoint,
    &'a mut [Box<[u8]>],
);

impl TargetService {
    fn split(&mut self) -> Split<'_> {
        (
            Ctx {
                index: self.index,
                pools: &self.pools,
                stores: &mut self.stores,
                damaged: &self.damaged,
                versions: &mut self.versions,
                handles: &mut self.handles,
                cart: &mut self.cart,
            },
            &mut self.ep,
            &mut self.cart_scratch,
        )
    }

    /// Takes a DAOS client's request: answers it, starts it in a bulk slot, or drops what
    /// cannot be answered. False when it must wait (no send buffer or no slot free).
    pub(super) fn take_cart(&mut self, r: Received, tag: u64) -> bool {
        let m = match mercury::parse_request(self.ep.message(r)) {
            Ok(m) => m,
            Err(e) => {
                let what = format!("dropped a {}-byte message: {e}", r.len());
                self.cart.complain(self.index, &what);
                let _ = self.ep.release(r);
                return true;
            }
        };
        if m.one_way() {
            let _ = self.ep.release(r);
            return true;
        }
        let (source, more) = (m.source, m.flags & mercury::MORE_DATA != 0);
        let peer = match self.cart_peer(&source) {
            Ok(p) => p,
            Err(e) => {
                self.cart
                    .complain(self.index, &format!("cannot answer its sender: {e}"));
                let _ = self.ep.release(r);
                return true;
            }
        };
        let kind = if more {
            Kind::Plain
        } else {
            classify(self.ep.message(r))
        };
        if more || kind != Kind::Plain {
            let Some(slot) = self.cart.ops.iter().position(Option::is_none) else {
                return false;
            };
            let msg = self.ep.message(r);
            let len = if more {
                mercury::REQUEST_BODY
            } else {
                msg.len().min(REPLY_AT)
            };
            self.cart_scratch[slot][..len].copy_from_slice(&msg[..len]);
            self.cart.ops[slot] = Some(Op {
                r,
                peer,
                tag,
                len,
                stage: Stage::Reply,
                kind,
                moving: 0,
                failed: false,
                rc: 0,
                epoch: 0,
                map_version: 0,
                sizes: Vec::new(),
                anchors: [0; 3 * obj::ANCHOR_LEN],
                coll: Default::default(),
                round: (0, 0),
            });
            if more {
                self.pull_input(slot);
            } else {
                self.start(slot);
            }
            return true;
        }
        let (mut ctx, ep, _) = self.split();
        match ep.reply_tagged(r, peer, tag, |req, out| ctx.serve(req, out, None)) {
            Ok(()) => true,
            Err(EndpointError::Busy(_)) => false,
            Err(e) => {
                self.cart.complain(self.index, &e.to_string());
                true
            }
        }
    }

    /// The checks of an object RPC (handle, rights, map version) without touching data; the
    /// map version to answer with.
    pub(super) fn check_object_call(
        &mut self,
        pool: &[u8; 16],
        co_hdl: &[u8; 16],
        co_uuid: &[u8; 16],
        map_ver: u32,
        need: u16,
    ) -> Result<u32, i32> {
        let (mut ctx, _, _) = self.split();
        ctx.open(pool, co_hdl, co_uuid, map_ver, need)
            .map(|(_, v)| v)
    }

    fn cart_peer(&mut self, addr: &[u8; mercury::NA_ADDR_LEN]) -> Result<Peer, EndpointError> {
        if let Some((_, p)) = self.cart.peers.iter().find(|(a, _)| a == addr) {
            return Ok(*p);
        }
        let p = self.ep.insert_peer(addr)?;
        if self.cart.peers.len() == super::PEERS_MAX {
            self.cart.peers.remove(0);
        }
        self.cart.peers.push((*addr, p));
        Ok(p)
    }

    /// Starts pulling a "more data" request's input into its slot (its headers are in
    /// scratch already).
    fn pull_input(&mut self, slot: usize) {
        let Some(op) = self.cart.ops[slot].as_ref() else {
            return;
        };
        let (r, peer) = (op.r, op.peer);
        let virt = self.ep.virt_addr();
        let found = mercury::parse_request(self.ep.message(r))
            .ok()
            .and_then(|m| {
                let mut d = Decoder::new(m.body);
                daos_cart::bulk::decode(&mut d, "more data")
                    .ok()
                    .flatten()
                    .filter(|b| b.readable() && b.len as usize <= PULL_MAX)
                    .map(|b| (b.key, b.remote_addr(virt, 0), b.len as usize, b.eager))
            })
            .map(|(key, addr, len, eager)| (key, addr, len, eager.map(|e| e.len())));
        let Some((key, addr, len, eager)) = found else {
            self.cart.complain(
                self.index,
                "a request larger than a message whose input cannot be pulled (over 1 MiB and 64 KiB, or no readable handle)",
            );
            self.answer_hg(slot, HgReturn::MsgSize);
            return;
        };
        let head = mercury::REQUEST_BODY;
        self.cart_scratch[slot][mercury::NA_ADDR_LEN + 10] &= !mercury::MORE_DATA;
        if let Some(op) = self.cart.op_mut(slot) {
            op.len = head + len;
        }
        if eager.is_some() {
            // Mercury sent the input inline after all.
            let msg = self.ep.message(r);
            let copied = mercury::parse_request(msg).ok().and_then(|m| {
                let mut d = Decoder::new(m.body);
                let b = daos_cart::bulk::decode(&mut d, "more data").ok()??;
                let data = b.eager?;
                let n = len.min(data.len());
                self.cart_scratch[slot][head..head + n].copy_from_slice(&data[..n]);
                Some(())
            });
            if copied.is_some() {
                self.start(slot);
            } else {
                self.answer_hg(slot, HgReturn::ProtocolError);
            }
            return;
        }
        // Pulled into the slot's bulk buffer, then copied behind the headers.
        let remote = RemoteBuf {
            key,
            offset: addr,
            len: len as u32,
        };
        match self
            .ep
            .rma_read(peer, SLOT_BASE + slot, remote, RMA_ID | slot as u64)
        {
            Ok(()) => {
                if let Some(op) = self.cart.op_mut(slot) {
                    op.stage = Stage::Input;
                    op.moving = 1;
                }
            }
            Err(e) => {
                self.cart
                    .complain(self.index, &format!("pulling a request's input: {e}"));
                self.answer_hg(slot, HgReturn::ProtocolError);
            }
        }
    }

    /// A slot's request that cannot go on: answered with a Mercury error.
    fn answer_hg(&mut self, slot: usize, ret: HgReturn) {
        let Some(op) = self.cart.ops[slot].take() else {
            return;
        };
        let cookie =
            mercury::parse_request(&self.cart_scratch[slot][..op.len]).map_or(0, |m| m.cookie);
        let sent = self.ep.reply_tagged(op.r, op.peer, op.tag, |_, out| {
            rpc::write_hg_error(out, cookie, ret).unwrap_or(0)
        });
        if let Err(e) = sent {
            // No send buffer: the client times out and sends again.
            self.cart.complain(self.index, &e.to_string());
            let _ = self.ep.release(op.r);
        }
    }

    /// Starts a slot's request once its input is here: posts the RMAs of its data, or makes
    /// it ready to answer.
    fn start(&mut self, slot: usize) {
        let Some(len) = self.cart.ops[slot].as_ref().map(|op| op.len) else {
            return;
        };
        match classify(&self.cart_scratch[slot][..len]) {
            Kind::Coll => {
                // Its parts go to other targets: the request is read once, here.
                let req = self.cart_scratch[slot][..len].to_vec();
                self.start_coll(slot, &req);
                return;
            }
            Kind::Update => {
                if let Some(op) = self.cart.op_mut(slot) {
                    op.kind = Kind::Update;
                }
                self.update_round(slot);
                return;
            }
            _ => {}
        }
        let virt = self.ep.virt_addr();
        let (mut ctx, ep, scratch) = self.split();
        let (req, reply) = scratch[slot].split_at_mut(REPLY_AT);
        let req = &req[..len];
        let kind = classify(req);
        let bulk = ep.bulk_mut(SLOT_BASE + slot);
        let plan = match kind {
            Kind::Fetch => ctx.plan_fetch(req, slot, bulk, virt),
            Kind::Enum => ctx.plan_enum(req, slot, bulk, reply, virt),
            Kind::Plain | Kind::Coll | Kind::Update => Plan::Reply,
        };
        let Some(op) = self.cart.ops[slot].as_mut() else {
            return;
        };
        op.kind = kind;
        let Plan::Move { read, moves } = plan else {
            op.stage = Stage::Reply;
            return;
        };
        if self.post_moves(slot, read, &moves) == 0
            && let Some(op) = self.cart.op_mut(slot)
        {
            op.stage = Stage::Reply;
        }
    }

    /// Pulls the next round of an update's data (the iods after the last round that fit the
    /// slot); with nothing to pull, applies it at once.
    fn update_round(&mut self, slot: usize) {
        let Some((len, first)) = self.cart.ops[slot].as_ref().map(|op| (op.len, op.round.1)) else {
            return;
        };
        let virt = self.ep.virt_addr();
        let (mut ctx, ep, scratch) = self.split();
        let req = &scratch[slot][..len];
        let bulk = ep.bulk_mut(SLOT_BASE + slot);
        let (plan, end) = ctx.plan_update(req, bulk, virt, first);
        if let Some(op) = self.cart.op_mut(slot) {
            op.round = (first, end);
        }
        let moves = match plan {
            Plan::Move { moves, .. } => moves,
            Plan::Reply => Vec::new(),
        };
        if self.post_moves(slot, true, &moves) == 0 {
            // Nothing to wait for (inline data, or refused): applied (or answered) now.
            let failed = self.cart.ops[slot].as_ref().is_some_and(|op| op.failed);
            if !failed {
                self.apply_cart_update(slot);
            }
        }
    }

    /// Posts the RMAs of a slot's request; how many were posted (0 with a failure: the
    /// request is answered `DER_IO`).
    fn post_moves(&mut self, slot: usize, read: bool, moves: &[Move]) -> u32 {
        let Some(peer) = self.cart.ops[slot].as_ref().map(|op| op.peer) else {
            return 0;
        };
        if let Some(op) = self.cart.op_mut(slot) {
            op.stage = Stage::Data;
        }
        let mut posted = 0;
        let mut failed = false;
        for m in moves {
            let remote = RemoteBuf {
                key: m.key,
                offset: m.addr,
                len: m.len,
            };
            let id = RMA_ID | slot as u64;
            let r = if read {
                self.ep
                    .rma_read_at(peer, SLOT_BASE + slot, m.at, remote, id)
            } else {
                self.ep
                    .rma_write_at(peer, SLOT_BASE + slot, m.at, remote, id)
            };
            if let Err(e) = r {
                let what = format!("bulk transfer with the client: {e}");
                self.cart.complain(self.index, &what);
                failed = true;
                break;
            }
            posted += 1;
        }
        if let Some(op) = self.cart.op_mut(slot) {
            op.moving = posted;
            op.failed = failed;
            if posted == 0 && failed {
                op.rc = der::IO;
                op.stage = Stage::Reply;
            }
        }
        posted
    }

    /// Moves the slots on: finished RMAs, updates to apply, replies to send.
    pub(super) fn advance_cart(&mut self) -> usize {
        let mut work = 0;
        let mut finished = std::mem::take(&mut self.cart.finished);
        for &(slot, ok) in &finished {
            let Some(op) = self.cart.op_mut(slot) else {
                continue;
            };
            work += 1;
            op.moving = op.moving.saturating_sub(1);
            op.failed |= !ok;
            if op.moving > 0 {
                continue;
            }
            match op.stage {
                Stage::Input if op.failed => self.answer_hg(slot, HgReturn::ProtocolError),
                Stage::Input => {
                    let len = op.len;
                    let head = mercury::REQUEST_BODY;
                    let pulled = &self.ep.bulk_buf(SLOT_BASE + slot)[..len - head];
                    self.cart_scratch[slot][head..len].copy_from_slice(pulled);
                    self.start(slot);
                }
                Stage::Data if op.failed => {
                    op.rc = der::IO;
                    op.stage = Stage::Reply;
                }
                Stage::Data if op.kind == Kind::Update => self.apply_cart_update(slot),
                Stage::Data => op.stage = Stage::Reply,
                Stage::Reply => {}
            }
        }
        finished.clear();
        self.cart.finished = finished;
        for slot in 0..SLOTS {
            if self.cart.ops[slot]
                .as_ref()
                .is_some_and(|op| op.stage == Stage::Reply)
            {
                match self.reply_slot(slot) {
                    Ok(()) => work += 1,
                    Err(EndpointError::Busy(_)) => break,
                    Err(e) => self.cart.complain(self.index, &e.to_string()),
                }
            }
        }
        work
    }

    /// Applies an update whose data has arrived in its slot (or answers its refusal).
    fn apply_cart_update(&mut self, slot: usize) {
        let Some((len, round)) = self.cart.ops[slot].as_ref().map(|op| (op.len, op.round)) else {
            return;
        };
        let (mut ctx, ep, scratch) = self.split();
        let req = &scratch[slot][..len];
        let data = ep.bulk_buf(SLOT_BASE + slot);
        let (rc, map_version, nr) = match decode_rw(req) {
            Ok((_, q)) => {
                let (rc, v) = ctx.update(&q, Source::Slot(data), round.0..round.1);
                (rc, v, q.nr)
            }
            Err(rc) => (rc, 0, 0),
        };
        let epoch = ctx.cart.hlc.get(hlc::now_ns());
        let more = rc == 0 && round.1 > round.0 && round.1 < nr;
        if let Some(op) = self.cart.op_mut(slot) {
            if op.rc == 0 {
                op.rc = rc;
            }
            op.epoch = epoch;
            op.map_version = map_version;
            op.stage = Stage::Reply;
        }
        if more {
            // The rest of a large update: its next round.
            self.update_round(slot);
        }
    }

    /// Sends a slot's reply and frees the slot.
    fn reply_slot(&mut self, slot: usize) -> Result<(), EndpointError> {
        let Some(op) = self.cart.ops[slot].take() else {
            return Ok(());
        };
        let (mut ctx, ep, scratch) = self.split();
        let (req, reply) = scratch[slot].split_at(REPLY_AT);
        let req = &req[..op.len];
        // A pulled request that moves no data is served as it stands.
        let done = (op.kind != Kind::Plain).then_some((&op, reply));
        let sent = ep.send_tagged_with(op.peer, op.tag, |out| ctx.serve(req, out, done));
        match sent {
            Ok(()) => {
                let _ = self.ep.release(op.r);
                Ok(())
            }
            Err(e) => {
                self.cart.ops[slot] = Some(op);
                Err(e)
            }
        }
    }
}

/// Bulk slot numbers of the endpoint start here.
const SLOT_BASE: usize = super::BULK_SLOTS;

/// What a slot's request does next.
enum Plan {
    Reply,
    Move { read: bool, moves: Vec<Move> },
}

/// Where an update's data is.
enum Source<'a> {
    /// In the request's sgls.
    Inline,
    /// In the slot, each iod's after the previous one's.
    Slot(&'a [u8]),
}

/// What a request is: one with bulk handles (an update or fetch, an enumeration with a
/// key or kds bulk) needs a slot.
fn classify(msg: &[u8]) -> Kind {
    let Ok(call) = rpc::parse_call(msg) else {
        return Kind::Plain;
    };
    let opc = call.hdr.opc;
    if opcode::module_of(opc) != module::OBJ || opcode::version_of(opc) != VERSION {
        return Kind::Plain;
    }
    match opcode::index_of(opc) {
        obj::op::UPDATE | obj::op::FETCH => match RwIn::decode(call.input) {
            Ok(q) if q.bulk_nr > 0 => {
                if opcode::index_of(opc) == obj::op::UPDATE {
                    Kind::Update
                } else {
                    Kind::Fetch
                }
            }
            _ => Kind::Plain,
        },
        obj::op::CPD | obj::op::COLL_PUNCH | obj::op::COLL_QUERY => Kind::Coll,
        obj::op::DKEY_ENUMERATE | obj::op::AKEY_ENUMERATE => match EnumIn::decode(call.input) {
            Ok(q) if q.bulk.is_some() || q.kds_bulk.is_some() => Kind::Enum,
            _ => Kind::Plain,
        },
        _ => Kind::Plain,
    }
}

/// Whether an `OBJ_RW` input is an erasure-coded object's (by its flags).
fn is_ec(input: &[u8]) -> bool {
    obj::rw_flags(input).is_some_and(|f| f & obj::ORF_EC != 0)
}

/// Decodes an `OBJ_RW` request: its cookie and input, or the status to answer.
fn decode_rw(req: &[u8]) -> Result<(u8, RwIn<'_>), i32> {
    let call = rpc::parse_call(req).map_err(|_| der::PROTO)?;
    let q = RwIn::decode(call.input).map_err(|_| {
        // An erasure-coded object's I/O (its iods carry EC layouts this engine does not
        // decode): not supported, rather than a protocol error.
        if is_ec(call.input) {
            der::NOTSUPPORTED
        } else {
            der::PROTO
        }
    })?;
    if q.flags & obj::ORF_EC != 0 {
        return Err(der::NOTSUPPORTED);
    }
    Ok((call.mercury.cookie, q))
}

/// The length of an iod's data: a single value's size, or its records'.
fn iod_len(iod: &Iod<'_>) -> Option<u64> {
    match iod.kind {
        iod_type::SINGLE => Some(iod.size),
        _ => iod.recxs().try_fold(0u64, |acc, r| {
            r.nr.checked_mul(iod.size).and_then(|n| acc.checked_add(n))
        }),
    }
}

/// The record size an array iod's records are in: the one the array was written with (a
/// fetch with another size is answered in it, as DAOS does), else the request's, else 1.
fn rec_size(store: &TargetStore, key: AkeyRef<'_>, iod: &Iod<'_>) -> u64 {
    match store.array_rsize(key, u64::MAX) {
        Some(r) => u64::from(r),
        None => iod.size.max(1),
    }
}

/// A record run's byte range in the array.
fn recx_bytes(r: &Recx, size: u64) -> Option<(u64, u64)> {
    let lo = r.idx.checked_mul(size)?;
    let hi = lo.checked_add(r.nr.checked_mul(size)?)?;
    Some((lo, hi))
}

/// A cursor key's hash (FNV-1a).
fn key_hash(k: &[u8]) -> u64 {
    k.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes the key an enumeration stopped at into an anchor: type KEY, then in `da_buf` the
/// key's length, hash and first bytes; the anchor's other fields are the client's.
fn anchor_at(anchor: &mut [u8], key: &[u8]) {
    anchor[0..2].copy_from_slice(&obj::ANCHOR_KEY.to_le_bytes());
    let buf = &mut anchor[obj::ANCHOR_BUF..obj::ANCHOR_LEN];
    buf.fill(0);
    buf[0..4].copy_from_slice(&(key.len() as u32).to_le_bytes());
    buf[8..16].copy_from_slice(&key_hash(key).to_le_bytes());
    let n = key.len().min(ANCHOR_KEY_BYTES);
    buf[16..16 + n].copy_from_slice(&key[..n]);
}

fn anchor_eof(anchor: &mut [u8]) {
    anchor[0..2].copy_from_slice(&obj::ANCHOR_EOF.to_le_bytes());
    anchor[obj::ANCHOR_BUF..obj::ANCHOR_LEN].fill(0);
}

/// A long key's first bytes and hash, as an anchor keeps it.
type LongKey<'a> = (&'a [u8], u64);

/// Where an anchor says to resume: from the start, after a key, or at the end.
enum Resume<'a> {
    Start,
    /// After this key (it fits the anchor whole).
    After(&'a [u8]),
    /// After the key with this hash among those starting with this prefix.
    AfterLong(&'a [u8], u64),
    End,
}

fn resume_of(anchor: &[u8]) -> Resume<'_> {
    let kind = u16::from_le_bytes([anchor[0], anchor[1]]);
    let buf = &anchor[obj::ANCHOR_BUF..obj::ANCHOR_LEN];
    match kind {
        obj::ANCHOR_EOF => Resume::End,
        obj::ANCHOR_KEY => {
            let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            let mut h = [0u8; 8];
            h.copy_from_slice(&buf[8..16]);
            if len <= ANCHOR_KEY_BYTES {
                Resume::After(&buf[16..16 + len])
            } else {
                Resume::AfterLong(&buf[16..16 + ANCHOR_KEY_BYTES], u64::from_le_bytes(h))
            }
        }
        _ => Resume::Start,
    }
}

impl Ctx<'_> {
    /// The store of `pool` for a request under container handle `co_hdl` on `co_uuid` with
    /// pool map version `map_ver`, as DAOS's `obj_ioc_begin` checks it; and the target's map
    /// version to answer with.
    fn open(
        &mut self,
        pool: &[u8; 16],
        co_hdl: &[u8; 16],
        co_uuid: &[u8; 16],
        map_ver: u32,
        need: u16,
    ) -> Result<(&mut TargetStore, u32), Refused> {
        let text = daos_wire::uuid_text(pool);
        let table = match self.handles.get(pool) {
            Some(t) => Some(t.clone()),
            None => self.pools.handles(&text).inspect(|t| {
                self.handles.insert(*pool, t.clone());
            }),
        };
        if let Some(t) = table {
            match t.check_cont(daos_wire::handle_cookie(co_hdl), co_uuid, need) {
                Ok(()) => {}
                Err(Refusal::NoHandle) => return Err(der::NO_HDL),
                Err(Refusal::NoPerm) => return Err(der::NO_PERM),
            }
        }
        let current = match self.versions.get(pool) {
            Some(v) => v.load(Ordering::Acquire),
            None => match self.pools.map_version(&text) {
                Some(cell) => {
                    let v = cell.load(Ordering::Acquire);
                    self.versions.insert(*pool, cell);
                    v
                }
                None => 0,
            },
        };
        if current != 0 && map_ver < current {
            return Err(der::STALE);
        }
        let store = store_of(self.index, self.pools, self.stores, self.damaged, pool)
            .map_err(|(code, _)| code)?;
        let cont = u128::from_le_bytes(*co_uuid);
        if need & WRITE != 0 && !store.has_container(cont) {
            // A container handle the pool service issued vouches for the container.
            store
                .register_container(cont)
                .map_err(|e| store_status(&e))?;
        }
        Ok((store, current.max(map_ver)))
    }

    /// Answers a request (or a slot's finished one, with its state and slot buffer) into
    /// `out`; returns the length.
    fn serve(&mut self, req: &[u8], out: &mut [u8], done: Option<(&Op, &[u8])>) -> usize {
        let cookie = mercury::parse_request(req).map_or(0, |m| m.cookie);
        if let Ok(m) = mercury::parse_request(req)
            && m.rpc_id != mercury::RPC_ID
        {
            return rpc::write_hg_error(out, cookie, HgReturn::NoEntry).unwrap_or(0);
        }
        let call = match rpc::parse_call(req) {
            Ok(c) => c,
            Err(e) => {
                let what = format!("refused a request: {e}");
                self.cart.complain(self.index, &what);
                return rpc::write_hg_error(out, cookie, HgReturn::ProtocolError).unwrap_or(0);
            }
        };
        let now = hlc::now_ns();
        if let Err(ahead) = self.cart.hlc.get_msg(call.hdr.hlc, now) {
            let what = format!(
                "the sender's clock is {} ms ahead (more than 1 s): DER_HLC_SYNC",
                ahead / 1_000_000
            );
            self.cart.complain(self.index, &what);
            let hlc = self.cart.hlc.get(now);
            return rpc::write_reply(out, cookie, hlc, der::HLC_SYNC, |_| Ok(())).unwrap_or(0);
        }
        let hlc = self.cart.hlc.get(now);
        let opc = call.hdr.opc;
        if call.hdr.dst_tag != self.index + 2 {
            return rpc::write_reply(out, cookie, hlc, der::BAD_TARGET, |_| Ok(())).unwrap_or(0);
        }
        if opcode::module_of(opc) != module::OBJ || opcode::version_of(opc) != VERSION {
            // Nothing else is served on a target's tag (pool, container and CaRT's own RPCs
            // go to tag 0).
            return rpc::write_reply(out, cookie, hlc, der::UNREG, |_| Ok(())).unwrap_or(0);
        }
        let written = rpc::write_reply(out, cookie, hlc, 0, |e| {
            self.object_op(opcode::index_of(opc), call.input, hlc, e, done)
        });
        written.unwrap_or_else(|err| {
            let what = format!("opcode {opc:#x}: the reply does not fit: {err}");
            self.cart.complain(self.index, &what);
            rpc::write_refusal(out, cookie, hlc, der::REC2BIG).unwrap_or(0)
        })
    }

    fn object_op(
        &mut self,
        index: u16,
        input: &[u8],
        hlc: u64,
        e: &mut Encoder<'_>,
        done: Option<(&Op, &[u8])>,
    ) -> Result<(), CartError> {
        match index {
            obj::op::UPDATE => {
                let (rc, map_version, epoch) = match done {
                    Some((op, _)) => (op.rc, op.map_version, op.epoch),
                    None => match RwIn::decode(input) {
                        Ok(q) => {
                            let (rc, v) = self.update(&q, Source::Inline, 0..q.nr);
                            (rc, v, hlc)
                        }
                        Err(_) if is_ec(input) => (self.ec_refused(), 0, hlc),
                        Err(err) => self.bad(&err),
                    },
                };
                obj::write_update_out(e, rc, map_version, epoch)
            }
            obj::op::FETCH => match RwIn::decode(input) {
                Ok(q) if q.flags & obj::ORF_EC != 0 => {
                    let rc = self.ec_refused();
                    obj::write_update_out(e, rc, 0, hlc)
                }
                Ok(q) => self.fetch(&q, hlc, e, done),
                Err(_) if is_ec(input) => {
                    let rc = self.ec_refused();
                    obj::write_update_out(e, rc, 0, hlc)
                }
                Err(err) => {
                    let (rc, v, epoch) = self.bad(&err);
                    obj::write_update_out(e, rc, v, epoch)
                }
            },
            obj::op::DKEY_ENUMERATE | obj::op::AKEY_ENUMERATE => match EnumIn::decode(input) {
                Ok(q) => self.enumerate(index == obj::op::DKEY_ENUMERATE, &q, hlc, e, done),
                Err(err) => {
                    let (rc, ..) = self.bad(&err);
                    write_enum_empty(e, rc, 0, hlc, None)
                }
            },
            obj::op::RECX_ENUMERATE => match EnumIn::decode(input) {
                Ok(q) => self.enumerate_recx(&q, hlc, e),
                Err(err) => {
                    let (rc, ..) = self.bad(&err);
                    write_enum_empty(e, rc, 0, hlc, None)
                }
            },
            obj::op::PUNCH | obj::op::PUNCH_DKEYS | obj::op::PUNCH_AKEYS => {
                let (rc, v) = match PunchIn::decode(input) {
                    Ok(q) => self.punch(index, &q),
                    Err(err) => {
                        let (rc, v, _) = self.bad(&err);
                        (rc, v)
                    }
                };
                obj::write_punch_out(e, rc, v)
            }
            obj::op::QUERY_KEY => match QueryKeyIn::decode(input) {
                Ok(q) => self.query_key(&q, hlc, e),
                Err(err) => {
                    let (rc, ..) = self.bad(&err);
                    QueryKeyOut {
                        ret: rc,
                        ..QueryKeyOut::default()
                    }
                    .encode(e)
                }
            },
            obj::op::CPD | obj::op::COLL_PUNCH | obj::op::COLL_QUERY => match done {
                Some((op, _)) => super::coll::write_coll_reply(index, op, hlc, e),
                None => {
                    // Not started in a slot (cannot happen: every one is).
                    e.i32(der::NOSYS, "ret")?;
                    e.take(rpc::REFUSAL_BODY, "refusal")?.fill(0);
                    Ok(())
                }
            },
            obj::op::SYNC => {
                // Every acknowledged update is durable already.
                e.i32(0, "oso_ret")?;
                e.u32(0, "oso_map_version")?;
                e.u64(hlc, "oso_epoch")?;
                obj::write_comm(e)
            }
            _ => {
                let what = format!(
                    "object RPC {index} is not served here (transactions, collective and EC RPCs): DER_NOSYS"
                );
                self.cart.complain(self.index, &what);
                e.i32(der::NOSYS, "ret")?;
                e.take(rpc::REFUSAL_BODY, "refusal")?.fill(0);
                Ok(())
            }
        }
    }

    /// A replicated object's change, sent to its group's leader to be forwarded to `others`
    /// more replicas: refused until replication is served (#26), since acknowledging it with
    /// one copy would claim a redundancy the object does not have.
    fn replicated_refused(&mut self, what: &str, others: u32) -> i32 {
        let why = format!(
            "{what} of a replicated object (its leader forwards to {others} more replicas) is not served yet: DER_NOSYS"
        );
        self.cart.complain(self.index, &why);
        der::NOSYS
    }

    /// An erasure-coded object's I/O: refused as not supported (EC is not served yet).
    fn ec_refused(&mut self) -> i32 {
        self.cart.complain(
            self.index,
            "I/O of an erasure-coded object (ORF_EC) is not supported yet: DER_NOTSUPPORTED",
        );
        der::NOTSUPPORTED
    }

    fn bad(&mut self, err: &CartError) -> (i32, u32, u64) {
        let what = format!("undecodable object request: {err}");
        self.cart.complain(self.index, &what);
        (der::PROTO, 0, 0)
    }

    /// Checks DAOS's conditions of an update, then stores each iod; (status, map version).
    fn update(&mut self, q: &RwIn<'_>, src: Source<'_>, range: std::ops::Range<u32>) -> (i32, u32) {
        if q.has_csums() {
            return (der::NOSYS, 0);
        }
        if q.flags & obj::ORF_EC != 0 {
            return (self.ec_refused(), 0);
        }
        if q.shard_tgt_nr > 0 {
            return (self.replicated_refused("an update", q.shard_tgt_nr), 0);
        }
        let mut gather = std::mem::take(&mut self.cart.gather);
        let r = self.update_with(q, src, range, &mut gather);
        self.cart.gather = gather;
        if let Err(what) = &r.2 {
            self.cart.complain(self.index, what);
        }
        (r.0, r.1)
    }

    fn update_with(
        &mut self,
        q: &RwIn<'_>,
        src: Source<'_>,
        range: std::ops::Range<u32>,
        gather: &mut Vec<u8>,
    ) -> (i32, u32, Result<(), String>) {
        let (store, map_version) =
            match self.open(&q.pool, &q.co_hdl, &q.co_uuid, q.map_ver, READ | WRITE) {
                Ok(s) => s,
                Err(rc) => return (rc, 0, Ok(())),
            };
        let cont = u128::from_le_bytes(q.co_uuid);
        let oid = q.oid.id();
        let flags = q.api_flags;
        let dkey = q.dkey;
        // The conditions hold for the whole update: checked before its first round only.
        let first_round = range.start == 0;
        if first_round && flags & (cond::DKEY_INSERT | cond::DKEY_UPDATE) != 0 {
            let exists = store.dkey_exists(cont, oid, dkey);
            if flags & cond::DKEY_INSERT != 0 && exists {
                return (der::EXIST, map_version, Ok(()));
            }
            if flags & cond::DKEY_UPDATE != 0 && !exists {
                return (der::NONEXIST, map_version, Ok(()));
            }
        }
        for iod in q.iods().filter(|_| first_round) {
            let c = if flags & cond::PER_AKEY != 0 {
                iod.flags
            } else {
                flags
            };
            if c & (cond::AKEY_INSERT | cond::AKEY_UPDATE) != 0 {
                let exists = store.akey_exists(AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey: iod.name,
                });
                if c & cond::AKEY_INSERT != 0 && exists {
                    return (der::EXIST, map_version, Ok(()));
                }
                if c & cond::AKEY_UPDATE != 0 && !exists {
                    return (der::NONEXIST, map_version, Ok(()));
                }
            }
        }
        let mut sgls = q.sgls();
        let mut at = 0usize;
        for (i, iod) in q.iods().enumerate() {
            if !range.contains(&(i as u32)) {
                // Another round's: its inline data (none with bulk) is passed over.
                sgls.next();
                continue;
            }
            let key = AkeyRef {
                cont,
                oid,
                dkey,
                akey: iod.name,
            };
            let Some(len) = iod_len(&iod).and_then(|l| usize::try_from(l).ok()) else {
                return (der::INVAL, map_version, Ok(()));
            };
            let data: &[u8] = match src {
                Source::Slot(slot) => {
                    let Some(d) = slot.get(at..at + len) else {
                        return (der::INVAL, map_version, Ok(()));
                    };
                    at += len;
                    d
                }
                Source::Inline => match sgls.next() {
                    None if iod.size == 0 => &[],
                    None => return (der::INVAL, map_version, Ok(())),
                    Some(sgl) if sgl.nr == 1 => sgl.iovs().next().map_or(&[][..], |i| i.data),
                    Some(sgl) => {
                        gather.clear();
                        for iov in sgl.iovs() {
                            gather.extend_from_slice(iov.data);
                        }
                        &gather[..]
                    }
                },
            };
            if iod.size != 0 && data.len() < len {
                return (der::INVAL, map_version, Ok(()));
            }
            let stored = if iod.size == 0 && iod.kind == iod_type::ARRAY && iod.recx_count() > 0 {
                // An update of size 0 punches those records (DAOS's array punch: a file's
                // truncate), in the array's record size.
                let rs = rec_size(store, key, &iod);
                let mut r = Ok(());
                for recx in iod.recxs() {
                    let Some((lo, hi)) = recx_bytes(&recx, rs) else {
                        return (der::INVAL, map_version, Ok(()));
                    };
                    let Ok(len) = u32::try_from(hi - lo) else {
                        return (der::INVAL, map_version, Ok(()));
                    };
                    r = store.punch_extent_at(key, lo, len, 0).map(|_| ());
                    if r.is_err() {
                        break;
                    }
                }
                r
            } else if iod.size == 0 {
                // An update of size 0 punches the value.
                store
                    .punch_at(cont, oid, Some(dkey), Some(iod.name), 0)
                    .map(|_| ())
            } else if iod.kind == iod_type::SINGLE {
                store.update_at(key, &data[..len], 0).map(|_| ())
            } else {
                let mut pos = 0usize;
                let mut r = Ok(());
                for recx in iod.recxs() {
                    let Some((lo, hi)) = recx_bytes(&recx, iod.size) else {
                        return (der::INVAL, map_version, Ok(()));
                    };
                    let n = (hi - lo) as usize;
                    let Ok(rsize) = u32::try_from(iod.size) else {
                        return (der::INVAL, map_version, Ok(()));
                    };
                    r = store
                        .write_records_at(key, lo, &data[pos..pos + n], rsize, 0)
                        .map(|_| ());
                    if r.is_err() {
                        break;
                    }
                    pos += n;
                }
                r
            };
            if let Err(e) = stored {
                return (store_status(&e), map_version, Err(format!("update: {e}")));
            }
        }
        (0, map_version, Ok(()))
    }

    /// Per iod of a fetch, (iod size, data bytes): a single value's size, or for an array its
    /// record size when any requested record was written and the bytes up to the last one.
    fn fetch_sizes(
        store: &TargetStore,
        q: &RwIn<'_>,
        ext: &mut Vec<(u64, u64)>,
        sizes: &mut Vec<(u64, u64)>,
    ) -> Result<(), i32> {
        sizes.clear();
        let cont = u128::from_le_bytes(q.co_uuid);
        for iod in q.iods() {
            let key = AkeyRef {
                cont,
                oid: q.oid.id(),
                dkey: q.dkey,
                akey: iod.name,
            };
            if iod.kind == iod_type::SINGLE {
                let n = store.single_len(key, u64::MAX).unwrap_or(0) as u64;
                sizes.push((n, n));
                continue;
            }
            // Any record size: DAOS's byte arrays (DFS) use 1.
            let rs = rec_size(store, key, &iod);
            let (mut pos, mut data_end, mut any) = (0u64, 0u64, false);
            for recx in iod.recxs() {
                let (lo, hi) = recx_bytes(&recx, rs).ok_or(der::INVAL)?;
                store.visible_extents(key, lo, hi, u64::MAX, ext);
                if let Some(&(_, t)) = ext.last() {
                    any = true;
                    data_end = pos + (t - lo);
                }
                pos += hi - lo;
            }
            sizes.push(if any { (rs, data_end) } else { (0, 0) });
        }
        Ok(())
    }

    /// Writes iod `iod`'s written data into `dst` (the iod's records back to back; holes,
    /// which DAOS leaves as the client's bytes, are not touched) and hands each written run
    /// (its offset in `dst` and length) to `run`.
    fn fill(
        store: &TargetStore,
        key: AkeyRef<'_>,
        iod: &Iod<'_>,
        dst: &mut [u8],
        ext: &mut Vec<(u64, u64)>,
        mut run: impl FnMut(usize, usize),
    ) -> Result<(), StoreError> {
        if iod.kind == iod_type::SINGLE {
            let v = store.fetch(key.cont, key.oid, key.dkey, key.akey, u64::MAX)?;
            if let Some(v) = v {
                let n = v.len().min(dst.len());
                dst[..n].copy_from_slice(&v[..n]);
                run(0, n);
            }
            return Ok(());
        }
        let rs = rec_size(store, key, iod);
        let mut pos = 0usize;
        for recx in iod.recxs() {
            if pos >= dst.len() {
                break;
            }
            let Some((lo, hi)) = recx_bytes(&recx, rs) else {
                break;
            };
            store.visible_extents(key, lo, hi, u64::MAX, ext);
            for &(s, t) in ext.iter() {
                let from = pos.saturating_add((s - lo) as usize);
                let to = pos.saturating_add((t - lo) as usize).min(dst.len());
                if from >= to {
                    continue;
                }
                store.read_extent_into(key, s, &mut dst[from..to], u64::MAX)?;
                run(from, to - from);
            }
            pos = pos.saturating_add((hi - lo) as usize);
        }
        Ok(())
    }

    /// Answers a fetch: sizes, then the data inline, or (done) after its push.
    fn fetch(
        &mut self,
        q: &RwIn<'_>,
        hlc: u64,
        e: &mut Encoder<'_>,
        done: Option<(&Op, &[u8])>,
    ) -> Result<(), CartError> {
        let nr = q.nr as usize;
        if let Some((op, _)) = done {
            obj::write_rw_head(e, op.rc, op.map_version, hlc)?;
            let ok = op.rc == 0 || op.rc == der::REC2BIG;
            obj::write_count(e, if ok { nr } else { 0 }, "orw_iod_sizes")?;
            if ok {
                for (size, _) in &op.sizes {
                    e.u64(*size, "orw_iod_sizes")?;
                }
            }
            let ok = op.rc == 0;
            obj::write_count(e, if ok { nr } else { 0 }, "orw_data_sizes")?;
            if ok {
                for (_, data) in &op.sizes {
                    e.u64(*data, "orw_data_sizes")?;
                }
            }
            obj::write_count(e, 0, "orw_sgls")?;
            obj::write_count(e, if ok { nr } else { 0 }, "orw_nrs")?;
            if ok {
                for (_, data) in &op.sizes {
                    e.u32(u32::from(*data > 0), "orw_nrs")?;
                }
            }
            obj::write_count(e, 0, "orw_iod_csums")?;
            obj::write_count(e, 0, "orw_rels")?;
            if ok {
                self.write_maps(q, e)?;
            } else {
                obj::write_count(e, 0, "orw_maps")?;
            }
            return obj::write_comm(e);
        }
        let mut sizes = std::mem::take(&mut self.cart.sizes);
        let outcome = self.fetch_inline_sizes(q, &mut sizes);
        let (rc, map_version) = match outcome {
            Ok(v) => (0, v),
            Err((rc, v)) => (rc, v),
        };
        let size_only = q.sgl_nr == 0 && q.flags & orf::CHECK_EXISTENCE == 0;
        let mut rc = rc;
        if rc == 0 && !size_only {
            for (sgl, (_, data)) in q.sgls().zip(&sizes) {
                if sgl.capacity() < *data {
                    rc = der::REC2BIG;
                }
            }
        }
        obj::write_rw_head(e, rc, map_version, hlc)?;
        let with_sizes = rc == 0 || rc == der::REC2BIG;
        obj::write_count(e, if with_sizes { nr } else { 0 }, "orw_iod_sizes")?;
        if with_sizes {
            for (size, _) in &sizes {
                e.u64(*size, "orw_iod_sizes")?;
            }
        }
        obj::write_count(e, 0, "orw_data_sizes")?;
        if rc == 0 && !size_only && q.flags & orf::CHECK_EXISTENCE == 0 {
            obj::write_count(e, q.sgl_nr as usize, "orw_sgls")?;
            let cont = u128::from_le_bytes(q.co_uuid);
            let index = self.index;
            for ((sgl, iod), (_, data)) in q.sgls().zip(q.iods()).zip(&sizes) {
                let data = *data as usize;
                // Holes keep the client's bytes: what it sent when it sent its whole buffer
                // (as DAOS's engine answers in the request's own buffers), else zeros.
                self.cart.gather.clear();
                if sgl.iovs().all(|i| i.data.len() as u64 == i.buf_len) {
                    for iov in sgl.iovs() {
                        self.cart.gather.extend_from_slice(iov.data);
                    }
                }
                self.cart.gather.resize(data, 0);
                let key = AkeyRef {
                    cont,
                    oid: q.oid.id(),
                    dkey: q.dkey,
                    akey: iod.name,
                };
                if let Some(store) = self.stores.get(&q.pool)
                    && let Err(err) = Self::fill(
                        store,
                        key,
                        &iod,
                        &mut self.cart.gather,
                        &mut self.cart.extents,
                        |_, _| {},
                    )
                {
                    let what = format!("fetch: {err}");
                    self.cart.complain(index, &what);
                }
                // Each iov takes what fits its buffer, in order.
                let used = sgl
                    .iovs()
                    .scan(0usize, |pos, iov| {
                        let n = (data - *pos).min(iov.buf_len as usize);
                        *pos += n;
                        Some(n)
                    })
                    .filter(|n| *n > 0)
                    .count();
                e.u32(sgl.nr, "sg_nr")?;
                e.u32(used as u32, "sg_nr_out")?;
                let mut pos = 0usize;
                for iov in sgl.iovs() {
                    let n = (data - pos).min(iov.buf_len as usize);
                    e.u64(iov.buf_len, "iov_buf_len")?;
                    e.u64(n as u64, "iov_len")?;
                    if iov.buf_len > 0 {
                        e.bytes(&self.cart.gather[pos..pos + n], "iov")?;
                    }
                    pos += n;
                }
            }
        } else {
            obj::write_count(e, 0, "orw_sgls")?;
        }
        obj::write_count(e, 0, "orw_nrs")?;
        obj::write_count(e, 0, "orw_iod_csums")?;
        obj::write_count(e, 0, "orw_rels")?;
        if rc == 0 && !size_only {
            self.write_maps(q, e)?;
        } else {
            obj::write_count(e, 0, "orw_maps")?;
        }
        self.cart.sizes = sizes;
        obj::write_comm(e)
    }

    /// A fetch's checks and sizes; the map version to answer with.
    fn fetch_inline_sizes(
        &mut self,
        q: &RwIn<'_>,
        sizes: &mut Vec<(u64, u64)>,
    ) -> Result<u32, (i32, u32)> {
        if q.has_csums() {
            return Err((der::NOSYS, 0));
        }
        let mut ext = std::mem::take(&mut self.cart.extents);
        let r = (|| {
            let (store, v) = self
                .open(&q.pool, &q.co_hdl, &q.co_uuid, q.map_ver, READ)
                .map_err(|rc| (rc, 0))?;
            let cont = u128::from_le_bytes(q.co_uuid);
            let oid = q.oid.id();
            if q.api_flags & cond::DKEY_FETCH != 0 && !store.dkey_exists(cont, oid, q.dkey) {
                return Err((der::NONEXIST, v));
            }
            for iod in q.iods() {
                let c = if q.api_flags & cond::PER_AKEY != 0 {
                    iod.flags
                } else {
                    q.api_flags
                };
                let key = AkeyRef {
                    cont,
                    oid,
                    dkey: q.dkey,
                    akey: iod.name,
                };
                if c & cond::AKEY_FETCH != 0 && !store.akey_exists(key) {
                    return Err((der::NONEXIST, v));
                }
            }
            Self::fetch_sizes(store, q, &mut ext, sizes).map_err(|rc| (rc, v))?;
            Ok(v)
        })();
        self.cart.extents = ext;
        r
    }

    /// Writes `orw_maps` when the client asked for them: per iod, its written record runs.
    fn write_maps(&mut self, q: &RwIn<'_>, e: &mut Encoder<'_>) -> Result<(), CartError> {
        if q.flags & orf::CREATE_MAP == 0 {
            return obj::write_count(e, 0, "orw_maps");
        }
        obj::write_count(e, q.nr as usize, "orw_maps")?;
        let detail = q.flags & orf::CREATE_MAP_DETAIL != 0;
        let cont = u128::from_le_bytes(q.co_uuid);
        let mut ext = std::mem::take(&mut self.cart.extents);
        let mut runs = std::mem::take(&mut self.cart.gather);
        for iod in q.iods() {
            let key = AkeyRef {
                cont,
                oid: q.oid.id(),
                dkey: q.dkey,
                akey: iod.name,
            };
            // The runs, as (idx, nr) pairs of u64 in `runs`.
            runs.clear();
            let mut rs = iod.size.max(1);
            if iod.kind == iod_type::ARRAY
                && let Some(store) = self.stores.get(&q.pool)
            {
                rs = rec_size(store, key, &iod);
                for recx in iod.recxs() {
                    let Some((lo, hi)) = recx_bytes(&recx, rs) else {
                        continue;
                    };
                    store.visible_extents(key, lo, hi, u64::MAX, &mut ext);
                    for (s, t) in &ext {
                        runs.extend_from_slice(&(s / rs).to_le_bytes());
                        runs.extend_from_slice(&((t - s) / rs).to_le_bytes());
                    }
                }
            }
            let n = runs.len() / 16;
            let run = |i: usize| {
                let b = &runs[i * 16..i * 16 + 16];
                Recx {
                    idx: u64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
                    nr: u64::from_le_bytes(b[8..].try_into().unwrap_or_default()),
                }
            };
            let (first, last) = if n > 0 {
                (run(0), run(n - 1))
            } else {
                (Recx::default(), Recx::default())
            };
            e.u32(iod.kind, "iom_type")?;
            e.u64(if n > 0 { rs } else { 0 }, "iom_size")?;
            first.encode(e, "iom_recx_lo")?;
            last.encode(e, "iom_recx_hi")?;
            let listed = if detail { n } else { 0 };
            e.u32(listed as u32, "iom_nr")?;
            for i in 0..listed {
                run(i).encode(e, "iom_recxs")?;
            }
        }
        self.cart.extents = ext;
        self.cart.gather = runs;
        Ok(())
    }

    /// Plans a round of a bulk update: the RMAs that pull the iods from `first` on, as many
    /// whole ones as fit the slot, into it (data Mercury sent inline in a handle is copied at
    /// once); and where the round ends. An iod larger than the slot is refused (by `update`,
    /// which finds its data missing).
    fn plan_update(&mut self, req: &[u8], buf: &mut [u8], virt: bool, first: u32) -> (Plan, u32) {
        let Ok((_, q)) = decode_rw(req) else {
            return (Plan::Reply, first);
        };
        let mut moves = Vec::with_capacity(q.nr as usize);
        let mut at = 0usize;
        let mut end = first;
        for (i, (iod, bulk)) in q.iods().zip(q.bulks()).enumerate() {
            let i = i as u32;
            if i < first {
                continue;
            }
            let Some(len) = iod_len(&iod).and_then(|l| usize::try_from(l).ok()) else {
                return (Plan::Reply, i.max(first + 1));
            };
            if at + len > buf.len() {
                if i == first {
                    // Alone larger than the slot.
                    return (Plan::Reply, first + 1);
                }
                break;
            }
            end = i + 1;
            let Some(b) = bulk else {
                continue;
            };
            if !b.readable() || (b.len as usize) < len {
                return (Plan::Reply, end);
            }
            match b.eager {
                Some(data) if data.len() >= len => buf[at..at + len].copy_from_slice(&data[..len]),
                _ => {
                    if !segment_moves(&mut moves, &b, at, 0, len, virt) {
                        return (Plan::Reply, end);
                    }
                }
            }
            at += len;
        }
        (Plan::Move { read: true, moves }, end)
    }

    /// Plans a bulk fetch: the data goes into the slot, then is pushed to each iod's buffer.
    fn plan_fetch(&mut self, req: &[u8], slot: usize, buf: &mut [u8], virt: bool) -> Plan {
        let _ = slot;
        let Ok((_, q)) = decode_rw(req) else {
            return Plan::Reply;
        };
        let mut sizes = Vec::with_capacity(q.nr as usize);
        let outcome = self.fetch_inline_sizes(&q, &mut sizes);
        let mut ext = std::mem::take(&mut self.cart.extents);
        let Some(op) = self.cart.ops.get_mut(slot).and_then(Option::as_mut) else {
            self.cart.extents = ext;
            return Plan::Reply;
        };
        match outcome {
            Ok(v) => op.map_version = v,
            Err((rc, v)) => {
                op.rc = rc;
                op.map_version = v;
                op.sizes = sizes;
                self.cart.extents = ext;
                return Plan::Reply;
            }
        }
        let mut moves = Vec::with_capacity(q.nr as usize);
        let mut at = 0usize;
        let cont = u128::from_le_bytes(q.co_uuid);
        for ((iod, bulk), (_, data)) in q.iods().zip(q.bulks()).zip(&sizes) {
            let data = *data as usize;
            let Some(b) = bulk else {
                continue;
            };
            if (b.len as usize) < data {
                op.rc = der::REC2BIG;
                break;
            }
            if at + data > buf.len() || (data > 0 && !b.writable()) {
                op.rc = der::OVERFLOW;
                break;
            }
            let key = AkeyRef {
                cont,
                oid: q.oid.id(),
                dkey: q.dkey,
                akey: iod.name,
            };
            // Only the written runs move: holes leave the client's memory as it is.
            let mut runs: Vec<(usize, usize)> = Vec::new();
            if let Some(store) = self.stores.get(&q.pool)
                && let Err(err) = Self::fill(
                    store,
                    key,
                    &iod,
                    &mut buf[at..at + data],
                    &mut ext,
                    |off, n| runs.push((off, n)),
                )
            {
                op.rc = store_status(&err);
                break;
            }
            if runs
                .iter()
                .any(|&(off, n)| !segment_moves(&mut moves, &b, at + off, off, n, virt))
            {
                op.rc = der::REC2BIG;
                break;
            }
            at += data;
        }
        let failed = op.rc != 0;
        op.sizes = sizes;
        self.cart.extents = ext;
        if failed || moves.is_empty() {
            return Plan::Reply;
        }
        Plan::Move { read: false, moves }
    }

    /// Walks the keys an enumeration returns from its anchor on: hands each to `f` until it
    /// returns false; true when the keys ran out (EOF).
    fn walk_keys(
        store: &TargetStore,
        dkeys: bool,
        q: &EnumIn<'_>,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> bool {
        let cont = u128::from_le_bytes(q.co_uuid);
        let oid = q.oid.id();
        let anchor = if dkeys { q.dkey_anchor } else { q.akey_anchor };
        let resume = resume_of(anchor);
        let (from, skip): (Bound<&[u8]>, Option<LongKey<'_>>) = match resume {
            Resume::Start => (Bound::Unbounded, None),
            Resume::After(k) => (Bound::Excluded(k), None),
            Resume::AfterLong(prefix, h) => (Bound::Included(prefix), Some((prefix, h))),
            Resume::End => return true,
        };
        let mut skipping = skip;
        let mut stopped = false;
        let mut visit = |k: &[u8]| {
            if let Some((prefix, h)) = skipping {
                if k.starts_with(prefix) {
                    if key_hash(k) == h {
                        skipping = None;
                    }
                    return true;
                }
                skipping = None;
            }
            if f(k) {
                true
            } else {
                stopped = true;
                false
            }
        };
        if dkeys {
            store.walk_dkeys(cont, oid, from, false, &mut visit);
        } else {
            store.walk_akeys(cont, oid, q.dkey, from, &mut visit);
        }
        !stopped
    }

    /// Plans an enumeration with bulk: keys (and descriptors) into the slot, then pushed.
    fn plan_enum(
        &mut self,
        req: &[u8],
        slot: usize,
        buf: &mut [u8],
        reply: &mut [u8],
        virt: bool,
    ) -> Plan {
        let Ok(call) = rpc::parse_call(req) else {
            return Plan::Reply;
        };
        let dkeys = opcode::index_of(call.hdr.opc) == obj::op::DKEY_ENUMERATE;
        let Ok(q) = EnumIn::decode(call.input) else {
            return Plan::Reply;
        };
        let opened = self
            .open(&q.pool, &q.co_hdl, &q.co_uuid, q.map_ver, READ)
            .map(|(_, v)| v);
        let Some(op) = self.cart.op_mut(slot) else {
            return Plan::Reply;
        };
        op.anchors[..obj::ANCHOR_LEN].copy_from_slice(q.anchor);
        op.anchors[obj::ANCHOR_LEN..2 * obj::ANCHOR_LEN].copy_from_slice(q.dkey_anchor);
        op.anchors[2 * obj::ANCHOR_LEN..].copy_from_slice(q.akey_anchor);
        let v = match opened {
            Ok(v) => v,
            Err(rc) => {
                op.rc = rc;
                return Plan::Reply;
            }
        };
        op.map_version = v;
        let room = q
            .bulk
            .map_or(q.sgl.capacity(), |b| b.len)
            .min(KDS_AT as u64) as usize;
        let max = (q.nr as usize).min(KDS_MAX);
        let (mut n, mut used, mut last_len, mut key2big) = (0usize, 0usize, 0usize, 0usize);
        let mut last = [0u8; 1024];
        let mut last_long: Option<u64> = None;
        let Some(store) = self.stores.get(&q.pool) else {
            return Plan::Reply;
        };
        let eof = Self::walk_keys(store, dkeys, &q, |k| {
            if n == max {
                return false;
            }
            if used + k.len() > room {
                if n == 0 {
                    key2big = k.len();
                }
                return false;
            }
            buf[used..used + k.len()].copy_from_slice(k);
            let d = KDS_AT + n * obj::KEY_DESC_RAW;
            buf[d..d + 8].copy_from_slice(&(k.len() as u64).to_le_bytes());
            let t = if dkeys {
                obj::ITER_DKEY
            } else {
                obj::ITER_AKEY
            };
            buf[d + 8..d + 12].copy_from_slice(&t.to_le_bytes());
            buf[d + 12..d + 16].fill(0);
            used += k.len();
            n += 1;
            last_len = k.len().min(last.len());
            last[..last_len].copy_from_slice(&k[..last_len]);
            last_long = (k.len() > last.len()).then(|| key_hash(k));
            true
        });
        let at = if dkeys {
            obj::ANCHOR_LEN
        } else {
            2 * obj::ANCHOR_LEN
        };
        let anchor = &mut op.anchors[at..at + obj::ANCHOR_LEN];
        if key2big > 0 {
            op.rc = der::KEY2BIG;
            op.sizes = vec![(0, key2big as u64)];
            return Plan::Reply;
        }
        if eof {
            anchor_eof(anchor);
        } else if n > 0 {
            anchor_at(anchor, &last[..last_len]);
            if let Some(h) = last_long {
                anchor[obj::ANCHOR_BUF + 8..obj::ANCHOR_BUF + 16].copy_from_slice(&h.to_le_bytes());
            }
        }
        op.sizes = vec![(n as u64, used as u64)];
        // What the reply carries inline is copied to the scratch's reply part now (the
        // slot's buffer is the endpoint's).
        if q.bulk.is_none() {
            let used = used.min(INLINE_MAX);
            reply[..used].copy_from_slice(&buf[..used]);
        }
        if q.kds_bulk.is_none() {
            for i in 0..n.min(INLINE_MAX / obj::KEY_DESC_INLINE) {
                let d = KDS_AT + i * obj::KEY_DESC_RAW;
                let r = INLINE_MAX + i * obj::KEY_DESC_INLINE;
                reply[r..r + obj::KEY_DESC_INLINE]
                    .copy_from_slice(&buf[d..d + obj::KEY_DESC_INLINE]);
            }
        }
        let mut moves = Vec::with_capacity(2);
        if let Some(b) = q.bulk
            && used > 0
        {
            if !b.writable() {
                op.rc = der::PROTO;
                return Plan::Reply;
            }
            if !segment_moves(&mut moves, &b, 0, 0, used, virt) {
                op.rc = der::KEY2BIG;
                return Plan::Reply;
            }
        }
        if let Some(b) = q.kds_bulk
            && n > 0
        {
            let len = n * obj::KEY_DESC_RAW;
            if !b.writable() || (b.len as usize) < len {
                op.rc = der::PROTO;
                return Plan::Reply;
            }
            if !segment_moves(&mut moves, &b, KDS_AT, 0, len, virt) {
                op.rc = der::PROTO;
                return Plan::Reply;
            }
        }
        if moves.is_empty() {
            return Plan::Reply;
        }
        Plan::Move { read: false, moves }
    }

    /// Answers a dkey or akey enumeration: keys inline, or (done) what was pushed.
    fn enumerate(
        &mut self,
        dkeys: bool,
        q: &EnumIn<'_>,
        hlc: u64,
        e: &mut Encoder<'_>,
        done: Option<(&Op, &[u8])>,
    ) -> Result<(), CartError> {
        if let Some((op, slot)) = done {
            let (n, used) = op.sizes.first().copied().unwrap_or((0, 0));
            if op.rc != 0 {
                let size = if op.rc == der::KEY2BIG { used } else { 0 };
                return write_enum_empty(e, op.rc, op.map_version, hlc, Some((size, &op.anchors)));
            }
            e.i32(0, "oeo_ret")?;
            e.u32(op.map_version, "oeo_map_version")?;
            e.u64(hlc, "oeo_epoch")?;
            e.u32(n as u32, "oeo_num")?;
            e.u32(0, "oeo_padding")?;
            e.u64(used, "oeo_size")?;
            e.bytes(&op.anchors, "oeo_anchors")?;
            if q.kds_bulk.is_some() {
                obj::write_count(e, 0, "oeo_kds")?;
            } else {
                obj::write_count(e, n as usize, "oeo_kds")?;
                let kds = &slot[INLINE_MAX..INLINE_MAX + n as usize * obj::KEY_DESC_INLINE];
                e.bytes(kds, "oeo_kds")?;
            }
            if q.bulk.is_some() {
                e.u32(0, "sg_nr")?;
                e.u32(0, "sg_nr_out")?;
            } else {
                write_keys_sgl(e, q, &slot[..used as usize])?;
            }
            return write_enum_tail(e);
        }
        // Inline: the keys go straight into the reply.
        let opened = self
            .open(&q.pool, &q.co_hdl, &q.co_uuid, q.map_ver, READ)
            .map(|(_, v)| v);
        let mut anchors = [0u8; 3 * obj::ANCHOR_LEN];
        anchors[..obj::ANCHOR_LEN].copy_from_slice(q.anchor);
        anchors[obj::ANCHOR_LEN..2 * obj::ANCHOR_LEN].copy_from_slice(q.dkey_anchor);
        anchors[2 * obj::ANCHOR_LEN..].copy_from_slice(q.akey_anchor);
        let v = match opened {
            Ok(v) => v,
            Err(rc) => return write_enum_empty(e, rc, 0, hlc, Some((0, &anchors))),
        };
        let room = (q.sgl.capacity() as usize).min(INLINE_MAX);
        let max = (q.nr as usize)
            .min(KDS_MAX)
            .min(INLINE_MAX / obj::KEY_DESC_INLINE);
        let mut keys = std::mem::take(&mut self.cart.gather);
        keys.clear();
        // Key lengths after the keys: (start, len) pairs as u32.
        let mut lens: Vec<u32> = Vec::new();
        let (mut key2big, mut last_long) = (0usize, None);
        let Some(store) = self.stores.get(&q.pool) else {
            self.cart.gather = keys;
            return write_enum_empty(e, der::NONEXIST, v, hlc, Some((0, &anchors)));
        };
        let eof = Self::walk_keys(store, dkeys, q, |k| {
            if lens.len() == max {
                return false;
            }
            if keys.len() + k.len() > room {
                if lens.is_empty() {
                    key2big = k.len();
                }
                return false;
            }
            keys.extend_from_slice(k);
            lens.push(k.len() as u32);
            last_long = Some(key_hash(k));
            true
        });
        if key2big > 0 {
            self.cart.gather = keys;
            return write_enum_empty(e, der::KEY2BIG, v, hlc, Some((key2big as u64, &anchors)));
        }
        let at = if dkeys {
            obj::ANCHOR_LEN
        } else {
            2 * obj::ANCHOR_LEN
        };
        let anchor = &mut anchors[at..at + obj::ANCHOR_LEN];
        if eof {
            anchor_eof(anchor);
        } else if let Some(&l) = lens.last() {
            let last = &keys[keys.len() - l as usize..];
            anchor_at(anchor, last);
        }
        let _ = last_long;
        e.i32(0, "oeo_ret")?;
        e.u32(v, "oeo_map_version")?;
        e.u64(hlc, "oeo_epoch")?;
        e.u32(lens.len() as u32, "oeo_num")?;
        e.u32(0, "oeo_padding")?;
        e.u64(keys.len() as u64, "oeo_size")?;
        e.bytes(&anchors, "oeo_anchors")?;
        obj::write_count(e, lens.len(), "oeo_kds")?;
        let t = if dkeys {
            obj::ITER_DKEY
        } else {
            obj::ITER_AKEY
        };
        for l in &lens {
            e.u64(u64::from(*l), "kd_key_len")?;
            e.u32(t, "kd_val_type")?;
        }
        let r = write_keys_sgl(e, q, &keys);
        self.cart.gather = keys;
        r?;
        write_enum_tail(e)
    }

    /// Lists an akey's written record runs (`daos_obj_list_recx`), from the record the
    /// anchor names, ascending or descending; the anchor keeps the next record index.
    fn enumerate_recx(
        &mut self,
        q: &EnumIn<'_>,
        hlc: u64,
        e: &mut Encoder<'_>,
    ) -> Result<(), CartError> {
        let mut anchors = [0u8; 3 * obj::ANCHOR_LEN];
        anchors[..obj::ANCHOR_LEN].copy_from_slice(q.anchor);
        anchors[obj::ANCHOR_LEN..2 * obj::ANCHOR_LEN].copy_from_slice(q.dkey_anchor);
        anchors[2 * obj::ANCHOR_LEN..].copy_from_slice(q.akey_anchor);
        if q.dkey.is_empty() || q.akey.is_empty() {
            return write_enum_empty(e, der::PROTO, 0, hlc, Some((0, &anchors)));
        }
        let mut ext = std::mem::take(&mut self.cart.extents);
        let opened = self.open(&q.pool, &q.co_hdl, &q.co_uuid, q.map_ver, READ);
        let (store, v) = match opened {
            Ok(s) => s,
            Err(rc) => {
                self.cart.extents = ext;
                return write_enum_empty(e, rc, 0, hlc, Some((0, &anchors)));
            }
        };
        let key = AkeyRef {
            cont: u128::from_le_bytes(q.co_uuid),
            oid: q.oid.id(),
            dkey: q.dkey,
            akey: q.akey,
        };
        let descending = q.flags & orf::DESCENDING_ORDER != 0;
        let anchor = &anchors[..obj::ANCHOR_LEN];
        let kind = u16::from_le_bytes([anchor[0], anchor[1]]);
        let mut from = [0u8; 8];
        from.copy_from_slice(&anchor[obj::ANCHOR_BUF..obj::ANCHOR_BUF + 8]);
        let from = (kind == obj::ANCHOR_KEY).then(|| u64::from_le_bytes(from));
        // Runs in records, in the order asked, from the anchor on.
        let (size, runs): (u64, Vec<Recx>) = if kind == obj::ANCHOR_EOF {
            (0, Vec::new())
        } else if q.rec_type == iod_type::SINGLE {
            let n = store.single_len(key, u64::MAX).unwrap_or(0) as u64;
            let r = if n > 0 && from.is_none() {
                vec![Recx { idx: 0, nr: 1 }]
            } else {
                Vec::new()
            };
            (n, r)
        } else {
            let rs = u64::from(store.array_rsize(key, u64::MAX).unwrap_or(1));
            store.visible_extents(key, 0, u64::MAX, u64::MAX, &mut ext);
            let mut runs: Vec<Recx> = ext
                .iter()
                .map(|(s, t)| Recx {
                    idx: s / rs,
                    nr: (t - s) / rs,
                })
                .filter(|r| r.nr > 0)
                .collect();
            if descending {
                runs.reverse();
            }
            let runs = runs
                .into_iter()
                .filter_map(|r| match from {
                    None => Some(r),
                    Some(f) if !descending && r.idx + r.nr > f => Some(Recx {
                        idx: r.idx.max(f),
                        nr: r.idx + r.nr - r.idx.max(f),
                    }),
                    Some(f) if descending && r.idx < f => Some(Recx {
                        idx: r.idx,
                        nr: (r.idx + r.nr).min(f) - r.idx,
                    }),
                    _ => None,
                })
                .collect();
            (if ext.is_empty() { 0 } else { rs }, runs)
        };
        self.cart.extents = ext;
        let max = (q.nr as usize).min(KDS_MAX);
        let n = runs.len().min(max);
        {
            let a = &mut anchors[..obj::ANCHOR_LEN];
            if n == runs.len() {
                anchor_eof(a);
            } else {
                a[0..2].copy_from_slice(&obj::ANCHOR_KEY.to_le_bytes());
                a[obj::ANCHOR_BUF..obj::ANCHOR_LEN].fill(0);
                let next = if descending {
                    runs[n - 1].idx
                } else {
                    runs[n].idx
                };
                a[obj::ANCHOR_BUF..obj::ANCHOR_BUF + 8].copy_from_slice(&next.to_le_bytes());
            }
        }
        e.i32(0, "oeo_ret")?;
        e.u32(v, "oeo_map_version")?;
        e.u64(hlc, "oeo_epoch")?;
        e.u32(n as u32, "oeo_num")?;
        e.u32(0, "oeo_padding")?;
        e.u64(size, "oeo_size")?;
        e.bytes(&anchors, "oeo_anchors")?;
        obj::write_count(e, 0, "oeo_kds")?;
        e.u32(0, "sg_nr")?;
        e.u32(0, "sg_nr_out")?;
        e.u64(0, "oeo_csum_iov")?;
        e.u64(0, "oeo_csum_iov")?;
        obj::write_count(e, n, "oeo_recxs")?;
        for r in &runs[..n] {
            r.encode(e, "oeo_recxs")?;
        }
        obj::write_count(e, n, "oeo_eprs")?;
        for _ in 0..n {
            e.u64(0, "epr_lo")?;
            e.u64(u64::MAX, "epr_hi")?;
        }
        obj::write_comm(e)
    }

    /// Punches an object, a dkey or akeys; (status, map version).
    fn punch(&mut self, index: u16, q: &PunchIn<'_>) -> (i32, u32) {
        if q.shard_tgt_nr > 0 {
            return (self.replicated_refused("a punch", q.shard_tgt_nr), 0);
        }
        let (store, v) = match self.open(&q.pool, &q.co_hdl, &q.co_uuid, q.map_ver, READ | WRITE) {
            Ok(s) => s,
            Err(rc) => return (rc, 0),
        };
        let cont = u128::from_le_bytes(q.co_uuid);
        let oid = q.oid.id();
        let check = q.api_flags & cond::PUNCH != 0;
        let r = match index {
            obj::op::PUNCH => {
                if check && !store.object_exists(cont, oid) {
                    return (der::NONEXIST, v);
                }
                store.punch_at(cont, oid, None, None, 0).map(|_| ())
            }
            obj::op::PUNCH_DKEYS => {
                let Some(dkey) = q.dkeys().next() else {
                    return (der::INVAL, v);
                };
                if check && !store.dkey_exists(cont, oid, dkey) {
                    return (der::NONEXIST, v);
                }
                store.punch_at(cont, oid, Some(dkey), None, 0).map(|_| ())
            }
            _ => {
                let Some(dkey) = q.dkeys().next() else {
                    return (der::INVAL, v);
                };
                if check
                    && q.akeys().any(|a| {
                        !store.akey_exists(AkeyRef {
                            cont,
                            oid,
                            dkey,
                            akey: a,
                        })
                    })
                {
                    return (der::NONEXIST, v);
                }
                let mut r = Ok(());
                for a in q.akeys() {
                    r = store
                        .punch_at(cont, oid, Some(dkey), Some(a), 0)
                        .map(|_| ());
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
        };
        match r {
            Ok(()) => (0, v),
            Err(e) => (store_status(&e), v),
        }
    }

    /// `QUERY_KEY`: the greatest (or least) dkey, and in it an akey's last written record run
    /// (DFS's file size), with the object's last write.
    fn query_key(
        &mut self,
        q: &QueryKeyIn<'_>,
        hlc: u64,
        e: &mut Encoder<'_>,
    ) -> Result<(), CartError> {
        let fail = |e: &mut Encoder<'_>, ret: i32, v: u32| {
            QueryKeyOut {
                ret,
                map_version: v,
                epoch: hlc,
                ..QueryKeyOut::default()
            }
            .encode(e)
        };
        let mut cands = std::mem::take(&mut self.cart.numbers);
        let mut ext = std::mem::take(&mut self.cart.extents);
        let r = match self.open(&q.pool, &q.co_hdl, &q.co_uuid, q.map_ver, READ) {
            Ok((store, v)) => Self::query_store(store, v, q, hlc, e, &mut cands, &mut ext),
            Err(rc) => fail(e, rc, 0),
        };
        self.cart.numbers = cands;
        self.cart.extents = ext;
        r
    }

    fn query_store(
        store: &TargetStore,
        v: u32,
        q: &QueryKeyIn<'_>,
        hlc: u64,
        e: &mut Encoder<'_>,
        cands: &mut Vec<(u64, Vec<u8>)>,
        ext: &mut Vec<(u64, u64)>,
    ) -> Result<(), CartError> {
        let cont = u128::from_le_bytes(q.co_uuid);
        let found = query_local(store, cont, q.oid, q.api_flags, q.dkey, q.akey, cands, ext);
        let out = match &found {
            Err(rc) => QueryKeyOut {
                ret: *rc,
                ..QueryKeyOut::default()
            },
            Ok((None, max_epoch)) if q.api_flags == 0 => QueryKeyOut {
                max_epoch: *max_epoch,
                ..QueryKeyOut::default()
            },
            Ok((None, _)) => QueryKeyOut {
                ret: der::NONEXIST,
                ..QueryKeyOut::default()
            },
            Ok((Some(f), max_epoch)) => QueryKeyOut {
                dkey: &f.dkey,
                akey: &f.akey,
                recx: f.recx,
                max_epoch: *max_epoch,
                ..QueryKeyOut::default()
            },
        };
        QueryKeyOut {
            map_version: v,
            epoch: hlc,
            ..out
        }
        .encode(e)
    }
}

/// The key bytes of an inline enumeration reply, laid into iovs the shape of the client's.
fn write_keys_sgl(e: &mut Encoder<'_>, q: &EnumIn<'_>, keys: &[u8]) -> Result<(), CartError> {
    // Keys go into the first iov (one contiguous buffer is what DAOS's clients send).
    e.u32(q.sgl.nr, "sg_nr")?;
    e.u32(u32::from(!keys.is_empty()), "sg_nr_out")?;
    let mut first = true;
    for iov in q.sgl.iovs() {
        let data: &[u8] = if first { keys } else { &[] };
        first = false;
        e.u64(iov.buf_len, "iov_buf_len")?;
        e.u64(data.len() as u64, "iov_len")?;
        if iov.buf_len > 0 {
            e.bytes(data, "iov")?;
        }
    }
    Ok(())
}

/// The end of an enumeration reply: no csums, recxs or epochs; comm out.
fn write_enum_tail(e: &mut Encoder<'_>) -> Result<(), CartError> {
    e.u64(0, "oeo_csum_iov")?;
    e.u64(0, "oeo_csum_iov")?;
    obj::write_count(e, 0, "oeo_recxs")?;
    obj::write_count(e, 0, "oeo_eprs")?;
    obj::write_comm(e)
}

/// An enumeration reply without keys: a refusal (`KEY2BIG` with the size needed).
fn write_enum_empty(
    e: &mut Encoder<'_>,
    rc: i32,
    map_version: u32,
    hlc: u64,
    size_and_anchors: Option<(u64, &[u8; 3 * obj::ANCHOR_LEN])>,
) -> Result<(), CartError> {
    e.i32(rc, "oeo_ret")?;
    e.u32(map_version, "oeo_map_version")?;
    e.u64(hlc, "oeo_epoch")?;
    e.u32(0, "oeo_num")?;
    e.u32(0, "oeo_padding")?;
    let (size, anchors) = size_and_anchors.unwrap_or((0, &[0; 3 * obj::ANCHOR_LEN]));
    e.u64(size, "oeo_size")?;
    e.bytes(anchors, "oeo_anchors")?;
    obj::write_count(e, 0, "oeo_kds")?;
    e.u32(0, "sg_nr")?;
    e.u32(0, "sg_nr_out")?;
    write_enum_tail(e)
}
