//! Container attributes (`CONT_ATTR_LIST`, `_GET`, `_SET`, `_DEL`): their names and values
//! travel by bulk, so each request holds a bulk slot while its data moves.
//!
//! ```text
//! list: ask daos_server ─▶ push the names that fit the client's buffer ─▶ reply (total size)
//! get:  pull names + sizes ─▶ ask ─▶ push each value (what fits) and the sizes ─▶ reply
//! set:  pull names + sizes + values ─▶ ask ─▶ reply
//! del:  pull names ─▶ ask ─▶ reply
//! ```
//!
//! The slot mirrors the client's buffer (the handle's segments seen as one): byte `i` of the
//! slot is byte `i` of the handle, so a request's data moves where it lies. A request whose
//! handle is larger than a slot is refused `DER_INVAL`.

use daos_cart::bulk::Bulk;
use daos_cart::cont::{self as ccont, AttrIn};
use daos_cart::{opcode, rpc};
use daos_drpc::srv::{ContCallReq, ContCallResp};
use daos_fabric::{Peer, Received, RemoteBuf};
use daos_wire::der;

use super::{BULK_MAX, Done, SystemContext};
use crate::moves::{Move, segment_moves};
use crate::srv::{Answer, Question};

/// Bit of an RMA id that marks an attribute transfer (the low bits name the slot).
pub(super) const ATTR_RMA: u64 = 1 << 40;

/// Where an attribute request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Its names (and sizes, values) are being pulled.
    Pull,
    /// daos_server has the question.
    Ask,
    /// Names or values are being pushed into the client's buffer.
    Push,
}

/// An attribute request holding bulk slot `slot`.
pub(super) struct AttrOp {
    pub(super) slot: usize,
    r: Received,
    peer: Peer,
    tag: u64,
    stage: Stage,
    /// RMAs posted and not yet complete.
    pending: u32,
    failed: bool,
    /// The question's id while daos_server has it.
    question: u64,
    /// Bytes pulled into the slot (the request's names, sizes, values).
    len: usize,
    /// The answer, pushed before it is replied.
    resp: Option<ContCallResp>,
}

/// Whether `opc` is a container or pool attribute op of a version served.
pub(super) fn is_attr(opc: u32) -> bool {
    decode(opc, &[]).is_some()
}

/// An attribute request's input by its opcode (container or pool attributes); `None` for
/// another op. Pool attributes are served in pool protocol 6 (DAOS 2.6 and 2.8 clients).
pub(super) fn decode(opc: u32, input: &[u8]) -> Option<Result<AttrIn<'_>, daos_cart::CartError>> {
    let (module, version) = (opcode::module_of(opc), opcode::version_of(opc));
    if !opcode::served_versions(module).contains(&version) {
        return None;
    }
    match module {
        opcode::module::CONT => AttrIn::decode(opcode::index_of(opc), input),
        opcode::module::POOL if version >= 6 => AttrIn::decode_pool(opcode::index_of(opc), input),
        _ => None,
    }
}

/// Whether `opc` is a container's or a pool's ATTR_LIST (its reply carries the names' size).
pub(super) fn is_attr_list(opc: u32) -> bool {
    match opcode::module_of(opc) {
        opcode::module::CONT => opcode::index_of(opc) == ccont::op::ATTR_LIST,
        opcode::module::POOL => opcode::index_of(opc) == daos_cart::pool::op::ATTR_LIST,
        _ => false,
    }
}

/// daos_server's op number of an attribute request: the container op, or 100 + the pool op.
fn question_op(a: &AttrIn<'_>) -> u32 {
    if a.pool {
        100 + u32::from(a.index - ccont::op::ATTR_LIST + daos_cart::pool::op::ATTR_LIST)
    } else {
        u32::from(a.index)
    }
}

/// Bytes of the client's buffer a request pulls: a get's names and sizes, a set's or a
/// delete's whole handle; `None` when that is more than a slot.
fn pull_len(a: &AttrIn<'_>, b: &Bulk<'_>) -> Option<usize> {
    let len = match a.index {
        ccont::op::ATTR_LIST => 0,
        ccont::op::ATTR_GET => a.key_length.checked_add(a.count.checked_mul(8)?)?,
        _ => b.len,
    };
    usize::try_from(len)
        .ok()
        .filter(|&l| l <= BULK_MAX && b.len >= len)
}

impl SystemContext {
    /// Starts an attribute request; true when it was one and is now this module's (moving
    /// its data, waiting for a slot, or answered). False leaves it to [`super::Inner::serve`],
    /// which refuses it (bad input, an unknown pool handle, no daos_server).
    pub(super) fn start_attr(&mut self, r: Received, peer: Peer, tag: u64) -> bool {
        let Ok(call) = rpc::parse_call(self.ep.message(r)) else {
            return false;
        };
        if !is_attr(call.hdr.opc) || self.srv.is_none() {
            return false;
        }
        let index = opcode::index_of(call.hdr.opc);
        let opc = call.hdr.opc;
        let Some(Ok(a)) = decode(opc, call.input) else {
            return false;
        };
        // A container's: under a pool handle that connected here (the pool's is named).
        if !a.pool && self.inner.pool_of(&a.op.pool_handle).is_none() {
            return false;
        }
        let pull = match &a.bulk {
            Some(b) => match pull_len(&a, b) {
                Some(n) => Some((n, b.eager.map(|e| e.len()))),
                None => {
                    self.inner.complain(&format!(
                        "container attribute op {index}: a handle of {} bytes (more than {BULK_MAX}, or shorter than its names and sizes): DER_INVAL",
                        b.len
                    ));
                    return false;
                }
            },
            None => None,
        };
        let Some(slot) = self.free_bulk.pop() else {
            self.waiting.push_back((r, peer, tag));
            return true;
        };
        self.attrs.push(AttrOp {
            slot,
            r,
            peer,
            tag,
            stage: Stage::Pull,
            pending: 0,
            failed: false,
            question: 0,
            resp: None,
            len: pull.map_or(0, |(n, _)| n),
        });
        let i = self.attrs.len() - 1;
        match pull {
            Some((len, Some(eager))) if len > 0 && eager >= len => {
                // Mercury sent the buffer inline: nothing to pull.
                let call = rpc::parse_call(self.ep.message(r)).ok();
                let data = call
                    .and_then(|c| decode(opc, c.input)?.ok())
                    .and_then(|a| a.bulk?.eager.map(<[u8]>::to_vec))
                    .unwrap_or_default();
                self.ep.bulk_mut(slot)[..len].copy_from_slice(&data[..len]);
                self.attr_pulled(i);
            }
            Some((len, _)) if len > 0 => {
                let virt = self.ep.virt_addr();
                let mut moves = Vec::new();
                if let Some(b) = &a.bulk {
                    segment_moves(&mut moves, b, 0, 0, len, virt);
                }
                self.post_attr_moves(i, true, &moves);
            }
            _ => self.attr_pulled(i),
        }
        true
    }

    /// Posts request `i`'s RMAs; with none posted it moves on at once.
    fn post_attr_moves(&mut self, i: usize, read: bool, moves: &[Move]) {
        let (slot, peer) = (self.attrs[i].slot, self.attrs[i].peer);
        let mut posted = 0;
        let mut failed = false;
        for m in moves {
            let remote = RemoteBuf {
                key: m.key,
                offset: m.addr,
                len: m.len,
            };
            let id = ATTR_RMA | slot as u64;
            let r = if read {
                self.ep.rma_read_at(peer, slot, m.at, remote, id)
            } else {
                self.ep.rma_write_at(peer, slot, m.at, remote, id)
            };
            if let Err(e) = r {
                self.inner
                    .complain(&format!("container attributes: bulk transfer: {e}"));
                failed = true;
                break;
            }
            posted += 1;
        }
        let a = &mut self.attrs[i];
        a.pending = posted;
        a.failed = failed;
        if posted == 0 {
            self.attr_moved(i);
        }
    }

    /// Takes `n` finished RMAs of slot `slot` (`ok`: all of them succeeded).
    pub(super) fn attr_rma_done(&mut self, slot: usize, n: u32, ok: bool) {
        let Some(i) = self.attrs.iter().position(|a| a.slot == slot) else {
            return;
        };
        let a = &mut self.attrs[i];
        a.pending = a.pending.saturating_sub(n);
        a.failed |= !ok;
        if a.pending == 0 {
            self.attr_moved(i);
        }
    }

    /// Request `i`'s transfers are done: ask daos_server after a pull, reply after a push.
    fn attr_moved(&mut self, i: usize) {
        let a = &self.attrs[i];
        match (a.stage, a.failed) {
            (Stage::Pull, false) => self.attr_pulled(i),
            (_, true) => {
                self.inner
                    .complain("container attributes: moving data with the client failed (DER_HG)");
                self.attr_finish(i, Err(der::HG));
            }
            (Stage::Push, false) => {
                let resp = self.attrs[i].resp.take().unwrap_or_default();
                self.attr_finish(i, Ok(resp));
            }
            (Stage::Ask, false) => {}
        }
    }

    /// Request `i`'s input is in its slot: daos_server gets the question.
    fn attr_pulled(&mut self, i: usize) {
        let (slot, r, len) = (self.attrs[i].slot, self.attrs[i].r, self.attrs[i].len);
        let question = match rpc::parse_call(self.ep.message(r)) {
            Ok(call) => {
                match decode(call.hdr.opc, call.input) {
                    // Only what was pulled: the slot's other bytes are an earlier request's.
                    Some(Ok(a)) => self.inner.attr_question(&a, &self.ep.bulk_buf(slot)[..len]),
                    _ => Err(der::INVAL),
                }
            }
            Err(_) => Err(der::INVAL),
        };
        let q = match question {
            Ok(q) => q,
            Err(rc) => return self.attr_finish(i, Err(rc)),
        };
        let id = self.next_question;
        self.next_question += 1;
        if !self
            .srv
            .as_ref()
            .is_some_and(|s| s.ask(id, Question::Cont(q)))
        {
            // The dRPC thread is behind.
            return self.attr_finish(i, Err(der::BUSY));
        }
        let a = &mut self.attrs[i];
        a.stage = Stage::Ask;
        a.question = id;
    }

    /// daos_server's answer to question `id`, if it is an attribute request's; true when
    /// it was.
    pub(super) fn attr_answered(&mut self, id: u64, answer: &Answer) -> bool {
        let Some(i) = self
            .attrs
            .iter()
            .position(|a| a.stage == Stage::Ask && a.question == id)
        else {
            return false;
        };
        let resp = match answer {
            Answer::Cont(Ok(resp)) if resp.status == 0 => resp.clone(),
            Answer::Cont(Ok(resp)) => {
                self.attr_finish(i, Ok(resp.clone()));
                return true;
            }
            Answer::Cont(Err(rc)) => {
                self.attr_finish(i, Err(*rc));
                return true;
            }
            _ => {
                self.attr_finish(i, Err(der::PROTO));
                return true;
            }
        };
        let (slot, r) = (self.attrs[i].slot, self.attrs[i].r);
        let virt = self.ep.virt_addr();
        let mut moves = Vec::new();
        let mut resp = resp;
        // The request's bytes and the slot are both the endpoint's: a copy of the request
        // (context 0 is not the I/O path).
        let msg = self.ep.message(r).to_vec();
        if let Ok(call) = rpc::parse_call(&msg)
            && let Some(Ok(a)) = decode(call.hdr.opc, call.input)
            && let Some(b) = &a.bulk
        {
            let buf = self.ep.bulk_mut(slot);
            match a.index {
                ccont::op::ATTR_LIST => list_moves(&resp, b, buf, virt, &mut moves),
                ccont::op::ATTR_GET => {
                    if let Err(rc) = get_moves(&a, &resp, b, buf, virt, &mut moves) {
                        // None found: the sizes (all 0) still go back.
                        if rc != der::NONEXIST {
                            moves.clear();
                        }
                        resp.status = rc;
                    }
                }
                _ => {}
            }
        }
        let a = &mut self.attrs[i];
        a.stage = Stage::Push;
        a.resp = Some(resp);
        self.post_attr_moves(i, false, &moves);
        true
    }

    /// Request `i` is answered: its slot is free, its reply queued.
    fn attr_finish(&mut self, i: usize, answer: Result<ContCallResp, i32>) {
        let a = self.attrs.swap_remove(i);
        self.free_bulk.push(a.slot);
        self.answered
            .push_back((a.r, a.peer, a.tag, Done::Cont(answer)));
    }
}

impl super::Inner {
    /// daos_server's question for attribute request `a` whose pulled bytes are `buf`.
    fn attr_question(&self, a: &AttrIn<'_>, buf: &[u8]) -> Result<ContCallReq, i32> {
        let pool = if a.pool {
            a.op.uuid
        } else {
            self.pool_of(&a.op.pool_handle).ok_or(der::NO_HDL)?
        };
        let mut q = ContCallReq {
            op: question_op(a),
            pool: daos_wire::uuid_text(&pool),
            pool_handle: a.op.pool_handle.to_vec(),
            cont: a.op.uuid.to_vec(),
            cont_handle: a.op.handle.to_vec(),
            ..Default::default()
        };
        match a.index {
            ccont::op::ATTR_LIST => {}
            ccont::op::ATTR_SET => {
                let entries = ccont::attr_set_entries(buf, a.count).map_err(|_| der::INVAL)?;
                for (n, v) in entries {
                    q.attr_names.push(n.to_vec());
                    q.attr_values.push(v.to_vec());
                }
            }
            _ => {
                let key = usize::try_from(a.key_length).unwrap_or(usize::MAX);
                let names_in = if a.index == ccont::op::ATTR_GET {
                    buf.get(..key).ok_or(der::INVAL)?
                } else {
                    buf
                };
                let (names, used) = ccont::attr_names(names_in, a.count).map_err(|_| der::INVAL)?;
                if a.index == ccont::op::ATTR_GET && used != key {
                    return Err(der::INVAL);
                }
                q.attr_names = names.into_iter().map(<[u8]>::to_vec).collect();
            }
        }
        Ok(q)
    }
}

/// A list's pushes: the names (each with its NUL) that fit the client's buffer, in order
/// (a name that does not fit is skipped and the walk goes on, as DAOS's service does).
fn list_moves(
    resp: &ContCallResp,
    b: &Bulk<'_>,
    buf: &mut [u8],
    virt: bool,
    moves: &mut Vec<Move>,
) {
    if !b.writable() {
        return;
    }
    let room = usize::try_from(b.len).unwrap_or(usize::MAX).min(buf.len());
    // In the order DAOS's service lists them: its tree's order of the names with their NUL.
    let mut order: Vec<((u64, u64), &[u8])> = resp
        .attrs
        .iter()
        .map(|a| {
            let mut key = a.name.clone();
            key.push(0);
            (daos_cart::hash::key_order(&key), &a.name[..])
        })
        .collect();
    order.sort_unstable();
    let mut at = 0;
    for (_, name) in order {
        let n = name.len() + 1;
        if at + n > room {
            continue;
        }
        buf[at..at + name.len()].copy_from_slice(name);
        buf[at + name.len()] = 0;
        at += n;
    }
    if at > 0 {
        segment_moves(moves, b, 0, 0, at, virt);
    }
}

/// A get's pushes: each value found into its buffer (as much as fits), then the sizes
/// (the full length of each value found, 0 for one absent); `DER_NONEXIST` when none of the
/// names is there (the sizes are pushed all the same).
fn get_moves(
    a: &AttrIn<'_>,
    resp: &ContCallResp,
    b: &Bulk<'_>,
    buf: &mut [u8],
    virt: bool,
    moves: &mut Vec<Move>,
) -> Result<(), i32> {
    if !b.writable() {
        return Err(der::INVAL);
    }
    let key = usize::try_from(a.key_length).map_err(|_| der::INVAL)?;
    let n = usize::try_from(a.count).map_err(|_| der::INVAL)?;
    let asked = ccont::attr_sizes(buf, key, a.count).map_err(|_| der::INVAL)?;
    if resp.attrs.len() != n {
        return Err(der::PROTO);
    }
    let total = usize::try_from(b.len)
        .map_err(|_| der::INVAL)?
        .min(buf.len());
    let mut at = key + 8 * n;
    let mut found = 0;
    for (i, (want, attr)) in asked.iter().zip(&resp.attrs).enumerate() {
        let want = usize::try_from(*want).map_err(|_| der::INVAL)?;
        let size = if attr.found {
            found += 1;
            attr.value.len() as u64
        } else {
            0
        };
        buf[key + 8 * i..key + 8 * i + 8].copy_from_slice(&size.to_le_bytes());
        if want == 0 {
            continue;
        }
        if at + want > total {
            return Err(der::INVAL);
        }
        if attr.found {
            let m = want.min(attr.value.len());
            buf[at..at + m].copy_from_slice(&attr.value[..m]);
            if m > 0 && !segment_moves(moves, b, at, at, m, virt) {
                return Err(der::INVAL);
            }
        }
        at += want;
    }
    if !segment_moves(moves, b, key, key, 8 * n, virt) {
        return Err(der::INVAL);
    }
    if found == 0 {
        return Err(der::NONEXIST);
    }
    Ok(())
}
