//! A target serving client I/O: its fabric endpoint and its pool stores, both owned by the
//! target's shard thread and driven from the shard's loop (no lock, no thread hop).
//!
//! Each poll reaps the endpoint's completions; every request is decoded in its receive
//! buffer, executed on the target's store for the pool (opened, with log replay, at the
//! pool's first request) and answered in place in a send buffer. When every send buffer is in
//! flight, requests wait in their receive buffers (bounded by the receive slots) and the
//! provider's flow control pushes back on clients.
//!
//! A reply goes to the address the client put in its request header, so a target keeps no
//! per-client session: a restarted engine serves a client that knew it before.
//!
//! The pool's first target on its first rank (its "service target") also keeps the pool's
//! container table, in a reserved container of its store.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use daos_fabric::{EndpointError, Peer, RdmEndpoint, Received, RemoteBuf, Shape};

mod coll;
mod forward;
mod objects;

pub use coll::{PeerMsg, PeerWork};

use crate::pool::{PoolStore, TargetStore};
use crate::store::{Change, Order, StoreError};
use crate::wire::reply::{Containers, Created, Data, Epoch, Fetched, Found, Keys, Oids, Swapped};
use crate::wire::{self, ADDR_MAX, Header, PunchWhat, Request, Writer, der};

/// Largest fabric message: a 1 MiB value plus headers.
pub const MSG_MAX: usize = (1 << 20) + 8192;
/// Send buffers per target.
pub const SEND_SLOTS: usize = 16;
/// Receive buffers per target (requests in flight from all clients).
pub const RECV_SLOTS: usize = 64;
/// Most peers (client endpoints) a target remembers; the oldest is forgotten beyond that.
pub const PEERS_MAX: usize = 256;
/// Registered buffers for RMA per target: bulk requests in progress at most.
pub const BULK_SLOTS: usize = 16;
/// Largest value moved by RMA.
pub const BULK_MAX: usize = 1 << 20;
/// Bytes of a registered bulk slot: a largest value, or a request of DAOS's clients pulled
/// whole (keys up to 1 MiB, as `daos_test` writes them).
pub const BULK_SLOT: usize = BULK_MAX + (64 << 10);

/// Where a bulk request is.
#[derive(Debug)]
enum Stage {
    /// The RMA is still to be posted (the provider said "again").
    Post { read: bool, remote: RemoteBuf },
    /// The RMA of `len` bytes is in flight.
    Moving { read: bool, len: u32 },
    /// An update's value has arrived in the bulk slot, to be stored.
    Arrived,
    /// Done; the reply waits for a send buffer.
    Answer(Outcome),
}

#[derive(Debug)]
enum Outcome {
    Epoch(u64),
    /// Fetch replies: a value of this many bytes is in the client's buffer.
    Fetched(u32),
    Failed(i32, String),
    /// A change refused by the order check: the newest epoch it touches goes back in the
    /// header.
    Restart(u64, String),
}

/// A bulk request in progress, in its bulk slot.
struct BulkOp {
    recv: Received,
    peer: Peer,
    header: Header,
    stage: Stage,
}

/// The reserved container and object holding a pool's container table.
const CONT_TABLE: (u128, u128) = (0, 0);
const UUID_AKEY: &[u8] = b"uuid";
/// The container table's akey of a container's properties.
const PROPS_AKEY: &[u8] = b"props";

/// A container table entry: label and UUID.
type ContEntry = (Vec<u8>, [u8; 16]);

/// The container table entry (label, UUID) of the container `id` names by label or UUID.
fn find_container<S: crate::store::Media, B: crate::store::Media>(
    store: &crate::store::Store<S, B>,
    id: &[u8],
) -> Result<Option<ContEntry>, StoreError> {
    let (c, o) = CONT_TABLE;
    for l in store.list_dkeys(c, o) {
        if let Some(u) = store.fetch(c, o, &l, UUID_AKEY, u64::MAX)? {
            let text = u.as_slice().try_into().map(wire::uuid_text);
            if l == id || text.is_ok_and(|t| t.as_bytes() == id) {
                return Ok(u.as_slice().try_into().ok().map(|u| (l, u)));
            }
        }
    }
    Ok(None)
}

/// How a target's endpoint is opened.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// libfabric provider name (`tcp;ofi_rxm`).
    pub provider: String,
    /// Address to bind.
    pub node: String,
    /// Port to bind.
    pub port: u16,
}

pub use daos_wire::{libfabric_provider, target_port};

/// One target's I/O service.
pub struct TargetService {
    index: u32,
    pools: Arc<PoolStore>,
    ep: RdmEndpoint,
    held: Vec<Received>,
    waiting: VecDeque<Received>,
    peers: Vec<([u8; ADDR_MAX], u8, Peer)>,
    stores: HashMap<[u8; 16], TargetStore>,
    /// Pools whose shard on this target is damaged (files removed under it), and why: they
    /// serve nothing until destroyed.
    damaged: HashMap<[u8; 16], String>,
    /// When the stores' files were last checked.
    checked: Instant,
    last_error: Option<Instant>,
    /// Bulk requests by bulk slot; free slots are `None`.
    bulk: Vec<Option<BulkOp>>,
    /// Each pool's map version cell (shared with the engine's [`PoolStore`]), taken on the
    /// pool's first request here; only pools the engine holds.
    versions: HashMap<[u8; 16], Arc<AtomicU32>>,
    /// Each pool's handle table (shared with the [`PoolStore`]), taken likewise.
    handles: HashMap<[u8; 16], Arc<crate::handles::HandleTable>>,
    /// DAOS's clients' object I/O ([`objects`]) and its slots' scratch buffers.
    cart: objects::Cart,
    cart_scratch: Vec<Box<[u8]>>,
    /// The engine's other targets (DAOS's collective RPCs span them), and its rank.
    targets: Option<Arc<Vec<crate::shard::PeerLink>>>,
    rank: Option<u32>,
    /// Calls to other engines (collective requests' remote parts).
    fwd: forward::Forwarder,
}

impl TargetService {
    /// Opens the target's endpoint.
    pub fn open(
        index: u32,
        pools: Arc<PoolStore>,
        at: &Endpoint,
    ) -> Result<TargetService, EndpointError> {
        let port = at.port.to_string();
        // Tagged messages and RMA as Mercury uses them (DAOS's clients), beside daos-rs's own
        // untagged messages; without RMA when the provider has none.
        let shape = Shape {
            tagged: true,
            tagged_slots: forward::FORWARDS_MAX,
            unexpected_tag: Some(daos_cart::mercury::UNEXPECTED_TAG),
            bulk: Some((BULK_SLOTS + objects::SLOTS, BULK_SLOT)),
            ..Shape::messages(MSG_MAX, SEND_SLOTS, RECV_SLOTS)
        };
        let ep = RdmEndpoint::open_shaped(&at.provider, Some(&at.node), Some(&port), shape)
            .or_else(|_| {
                RdmEndpoint::open(
                    &at.provider,
                    Some(&at.node),
                    Some(&port),
                    MSG_MAX,
                    SEND_SLOTS,
                    RECV_SLOTS,
                )
            })?;
        Ok(TargetService {
            index,
            pools,
            ep,
            held: Vec::with_capacity(RECV_SLOTS),
            waiting: VecDeque::with_capacity(RECV_SLOTS),
            peers: Vec::with_capacity(PEERS_MAX),
            stores: HashMap::new(),
            damaged: HashMap::new(),
            checked: Instant::now(),
            last_error: None,
            bulk: (0..BULK_SLOTS).map(|_| None).collect(),
            versions: HashMap::new(),
            handles: HashMap::new(),
            cart: objects::Cart::new(),
            cart_scratch: objects::scratch(),
            targets: None,
            rank: None,
            fwd: forward::Forwarder::default(),
        })
    }

    /// Whether the request's handles allow its operation (always, for a pool whose table
    /// was never armed, or that this engine does not hold).
    fn admitted(&mut self, header: &Header) -> Result<(), crate::handles::Refusal> {
        let (need, data) = rights_needed(header.op);
        if need == 0 {
            return Ok(());
        }
        let table = match self.handles.get(&header.pool) {
            Some(t) => t,
            None => match self.pools.handles(&wire::uuid_text(&header.pool)) {
                Some(t) => self.handles.entry(header.pool).or_insert(t),
                None => return Ok(()),
            },
        };
        table.check(header.handle, header.cont_handle, &header.cont, need, data)
    }

    /// The pool map version this target knows for `pool` (0: none pushed yet, or a pool the
    /// engine does not hold). One map lookup and an atomic load once the pool was seen.
    fn map_version(&mut self, pool: &[u8; 16]) -> u32 {
        if let Some(v) = self.versions.get(pool) {
            return v.load(Ordering::Acquire);
        }
        match self.pools.map_version(&wire::uuid_text(pool)) {
            Some(cell) => {
                let v = cell.load(Ordering::Acquire);
                self.versions.insert(*pool, cell);
                v
            }
            None => 0,
        }
    }

    /// Takes in the engine's rank (once it has joined).
    pub fn set_rank(&mut self, rank: Option<u32>) {
        self.rank = rank;
    }

    /// Takes in the engine's rank and the system's group map (where other ranks are).
    pub fn set_membership(&mut self, m: crate::context::Membership) {
        self.rank = m.rank;
        self.fwd.set_group(m.group);
    }

    /// Closes the pool's store (before the pool is destroyed).
    pub fn close_pool(&mut self, uuid: &str) {
        if let Some(u) = wire::parse_uuid(uuid) {
            self.stores.remove(&u);
            self.damaged.remove(&u);
            self.versions.remove(&u);
            self.handles.remove(&u);
            // The maps give their room back too (a target may have held many pools).
            self.stores.shrink_to_fit();
            self.damaged.shrink_to_fit();
            self.versions.shrink_to_fit();
            self.handles.shrink_to_fit();
        }
    }

    /// Pools whose store this target holds open.
    pub fn open_pools(&self) -> Vec<[u8; 16]> {
        self.stores.keys().copied().collect()
    }

    /// Space the pool's store uses on this target: (SCM, bdev) bytes; the store is opened
    /// (recovered) if it was not yet.
    pub fn space(&mut self, uuid: &str) -> Result<(u64, u64), String> {
        let pool = wire::parse_uuid(uuid).ok_or_else(|| format!("bad pool UUID {uuid:?}"))?;
        let h = Header::request(wire::Op::Ping, 0, pool, [0; 16], &[]);
        store_for(self.index, &self.pools, &mut self.stores, &self.damaged, &h)
            .map(|s| s.space_used())
            .map_err(|(_, text)| text)
    }

    /// Every [`FILE_CHECK`], whether each open store's SCM file is still the one at its path;
    /// a shard whose file was removed or replaced under it is marked damaged and refuses I/O
    /// from then on (rather than acknowledging writes that go nowhere).
    fn check_files(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.checked) < FILE_CHECK {
            return;
        }
        self.checked = now;
        let gone: Vec<[u8; 16]> = self
            .stores
            .iter()
            .filter(|(_, s)| !s.scm().still_linked())
            .map(|(k, _)| *k)
            .collect();
        for pool in gone {
            if let Some(store) = self.stores.remove(&pool) {
                let why = format!(
                    "pool {} target {}: its SCM file {} was removed or replaced while in use; \
                     the shard is damaged and refuses I/O; destroy the pool (dmg pool destroy --force)",
                    wire::uuid_text(&pool),
                    self.index,
                    store.scm().path().display()
                );
                let _ = std::io::Write::write_all(
                    &mut std::io::stdout(),
                    format!("ERROR: {why}\n").as_bytes(),
                );
                self.damaged.insert(pool, why);
            }
        }
    }

    /// Serves what has arrived; returns how many requests and completions it handled.
    pub fn poll(&mut self) -> usize {
        self.check_files();
        let mut work = match self.ep.poll_held(&mut self.held) {
            Ok(n) => n,
            Err(e) => {
                self.complain(&e);
                1
            }
        };
        self.waiting.extend(self.held.drain(..));
        work += self.expire_forwards();
        work += self.advance_bulk() + self.advance_cart();
        while let Some(&r) = self.waiting.front() {
            if self.take_reply(r) {
                self.waiting.pop_front();
                work += 1;
                continue;
            }
            if let Some(tag) = objects::mercury_tag(&r) {
                if !self.take_cart(r, tag) {
                    break; // no send buffer or slot: back-pressure
                }
                self.waiting.pop_front();
                work += 1;
                continue;
            }
            let Ok(header) = Header::read(self.ep.message(r)) else {
                // Not ours: drop it.
                self.waiting.pop_front();
                let _ = self.ep.release(r);
                continue;
            };
            let peer = match self.peer(header.reply_addr()) {
                Ok(p) => p,
                Err(e) => {
                    self.complain(&e);
                    self.waiting.pop_front();
                    let _ = self.ep.release(r);
                    continue;
                }
            };
            // A request built on an older pool map than this target knows (DAOS's DER_STALE):
            // refused with the target's version; the client refreshes and sends again.
            let current = self.map_version(&header.pool);
            let stale = header.version == wire::VERSION
                && header.map_version != 0
                && header.map_version < current
                && header.op != wire::Op::Ping as u16;
            // An epoch too far ahead of this target's clock (DAOS's HLC epsilon check).
            let now = if header.epoch != 0 {
                wire::clock_ns()
            } else {
                0
            };
            let ahead = header.version == wire::VERSION
                && header.epoch > now.saturating_add(wire::HLC_EPSILON_NS);
            let admitted = if header.version == wire::VERSION {
                self.admitted(&header)
            } else {
                Ok(())
            };
            let refusal = if let Err(r) = admitted {
                Some(match r {
                    crate::handles::Refusal::NoHandle => (der::NO_HDL, NO_HDL_TEXT, header),
                    crate::handles::Refusal::NoPerm => (der::NO_PERM, NO_PERM_TEXT, header),
                })
            } else if stale {
                Some((der::STALE, STALE_TEXT, header.with_map_version(current)))
            } else if ahead {
                Some((der::HLC_SYNC, HLC_TEXT, header.with_epoch(now)))
            } else {
                None
            };
            if header.version == wire::VERSION && is_bulk(header.op) && refusal.is_none() {
                let Some(slot) = self.bulk.iter().position(Option::is_none) else {
                    break; // every bulk slot busy: back-pressure
                };
                self.waiting.pop_front();
                let mut header = header;
                let stage = self.start_bulk(&mut header, r, slot);
                self.bulk[slot] = Some(BulkOp {
                    recv: r,
                    peer,
                    header,
                    stage,
                });
                work += 1;
                continue;
            }
            let Self {
                ep,
                stores,
                damaged,
                pools,
                index,
                ..
            } = self;
            let sent = ep.reply(r, peer, |req, resp| {
                if let Some((code, text, h)) = refusal {
                    wire::encode_error(resp, &h, code, text)
                } else {
                    handle(*index, pools, stores, damaged, &header, req, resp)
                }
            });
            match sent {
                Ok(()) => {
                    self.waiting.pop_front();
                    work += 1;
                }
                Err(EndpointError::Busy(_)) => break,
                Err(e) => {
                    self.waiting.pop_front();
                    self.complain(&e);
                }
            }
        }
        work + self.advance_bulk() + self.advance_cart()
    }

    /// Begins a bulk request in `slot`: an update reads the client's buffer; a fetch reads
    /// the store into the slot and writes it to the client's buffer.
    /// A fetch's reply carries the fetched value's epoch (set in `h`).
    fn start_bulk(&mut self, h: &mut Header, r: Received, slot: usize) -> Stage {
        if !self.ep.has_rma() {
            return Stage::Answer(Outcome::Failed(
                der::PROTO,
                "this target's provider has no RMA; send values inline".into(),
            ));
        }
        let Self {
            ep,
            stores,
            damaged,
            pools,
            index,
            ..
        } = self;
        let (msg, slot_buf) = ep.message_and_bulk(r, slot);
        let req = match h.body(msg).and_then(|b| Request::decode(h.op, b)) {
            Ok(req) => req,
            Err(e) => {
                return Stage::Answer(Outcome::Failed(
                    decode_status(&e),
                    format!("bad request: {e}"),
                ));
            }
        };
        let Some(b) = req.bulk() else {
            return Stage::Answer(Outcome::Failed(der::INVAL, "not a bulk request".into()));
        };
        let remote = RemoteBuf {
            key: b.key,
            offset: b.offset,
            len: b.len,
        };
        if b.len as usize > BULK_MAX {
            return Stage::Answer(Outcome::Failed(
                der::INVAL,
                format!("bulk of {} bytes exceeds {BULK_MAX}", b.len),
            ));
        }
        let cont = u128::from_le_bytes(h.cont);
        let store = match req {
            Request::UpdateBulk { .. } | Request::WriteExtentBulk { .. } => {
                return Stage::Post { read: true, remote };
            }
            _ => match store_for(*index, pools, stores, damaged, h) {
                Ok(s) if s.has_container(cont) => s,
                Ok(_) => {
                    let e = StoreError::NoContainer(wire::uuid_text(&h.cont));
                    return Stage::Answer(Outcome::Failed(store_status(&e), e.to_string()));
                }
                Err((code, text)) => return Stage::Answer(Outcome::Failed(code, text)),
            },
        };
        // The value goes straight from the store into the bulk slot: Ok(Some(len)) when it
        // fits, Ok(None) when nothing is stored.
        let fetched: Result<Option<Result<usize, usize>>, StoreError> = match req {
            Request::FetchBulk {
                oid, dkey, akey, ..
            } => {
                let key = crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                };
                h.epoch = store.value_epoch(key, u64::MAX, None);
                store.fetch_with(key, u64::MAX, |v| {
                    v.map(|v| {
                        if v.len() <= (b.len as usize).min(slot_buf.len()) {
                            slot_buf[..v.len()].copy_from_slice(v);
                            Ok(v.len())
                        } else {
                            Err(v.len())
                        }
                    })
                })
            }
            Request::ReadExtentBulk {
                oid,
                dkey,
                akey,
                offset,
                bulk,
            } => {
                let key = crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                };
                let end = offset.saturating_add(u64::from(bulk.len));
                h.epoch = store.value_epoch(key, u64::MAX, Some((offset, end)));
                store
                    .read_extent(key, offset, bulk.len as usize, u64::MAX)
                    .map(|v| {
                        let n = v.len().min(slot_buf.len());
                        slot_buf[..n].copy_from_slice(&v[..n]);
                        Some(Ok(n))
                    })
            }
            _ => return Stage::Answer(Outcome::Failed(der::INVAL, "not a bulk request".into())),
        };
        match fetched {
            Err(e) => Stage::Answer(Outcome::Failed(store_status(&e), store_error_text(&e))),
            // Nothing stored: the reply says so without any RMA.
            Ok(None) => Stage::Answer(Outcome::Fetched(u32::MAX)),
            Ok(Some(Err(n))) => Stage::Answer(Outcome::Failed(
                der::TRUNC,
                format!("the value has {n} bytes; the client's buffer {}", b.len),
            )),
            Ok(Some(Ok(n))) => Stage::Post {
                read: false,
                remote: RemoteBuf {
                    len: n as u32,
                    ..remote
                },
            },
        }
    }

    /// Moves bulk requests on: posts RMAs, applies finished reads, sends finished replies.
    fn advance_bulk(&mut self) -> usize {
        let mut work = 0;
        let Self { ep, bulk, cart, .. } = self;
        ep.take_rma(|id, ok| {
            if cart.rma_done(id, ok) {
                return;
            }
            if let Some(Some(op)) = bulk.get_mut(id as usize)
                && let Stage::Moving { read, len } = op.stage
            {
                op.stage = match (ok, read) {
                    (false, _) => Stage::Answer(Outcome::Failed(
                        der::IO,
                        "RMA with the client's buffer failed".into(),
                    )),
                    (true, true) => Stage::Arrived,
                    (true, false) => Stage::Answer(Outcome::Fetched(len)),
                };
                work += 1;
            }
        });
        for slot in 0..self.bulk.len() {
            let Some(op) = self.bulk[slot].as_ref() else {
                continue;
            };
            let (peer, h, r) = (op.peer, op.header, op.recv);
            let next = match op.stage {
                Stage::Post { read, remote } => {
                    let posted = if read {
                        self.ep.rma_read(peer, slot, remote, slot as u64)
                    } else {
                        self.ep.rma_write(peer, slot, remote, slot as u64)
                    };
                    match posted {
                        Ok(()) => Some(Stage::Moving {
                            read,
                            len: remote.len,
                        }),
                        Err(EndpointError::Again) => None,
                        Err(e) => Some(Stage::Answer(Outcome::Failed(der::IO, e.to_string()))),
                    }
                }
                Stage::Arrived => Some(Stage::Answer(self.apply_update(&h, r, slot))),
                Stage::Moving { .. } | Stage::Answer(_) => None,
            };
            if let (Some(stage), Some(op)) = (next, self.bulk[slot].as_mut()) {
                op.stage = stage;
                work += 1;
            }
            let Some(op) = self.bulk[slot].take() else {
                continue;
            };
            let Stage::Answer(outcome) = &op.stage else {
                self.bulk[slot] = Some(op);
                continue;
            };
            match self.ep.reply(op.recv, op.peer, |_, resp| {
                bulk_reply(&op.header, resp, outcome)
            }) {
                Ok(()) => work += 1,
                // No send buffer yet: answer at a later poll.
                Err(EndpointError::Busy(_)) => self.bulk[slot] = Some(op),
                Err(e) => self.complain(&e),
            }
        }
        work
    }

    /// Stores the value an update's RMA brought into bulk slot `slot`.
    fn apply_update(&mut self, h: &Header, r: Received, slot: usize) -> Outcome {
        let Self {
            ep,
            stores,
            damaged,
            pools,
            index,
            ..
        } = self;
        let msg = ep.message(r);
        let Ok(req) = h.body(msg).and_then(|b| Request::decode(h.op, b)) else {
            return Outcome::Failed(der::INVAL, "bad request".into());
        };
        let cont = u128::from_le_bytes(h.cont);
        let store = match store_for(*index, pools, stores, damaged, h) {
            Ok(s) if s.has_container(cont) => s,
            Ok(_) => {
                let e = StoreError::NoContainer(wire::uuid_text(&h.cont));
                return Outcome::Failed(store_status(&e), e.to_string());
            }
            Err((code, text)) => return Outcome::Failed(code, text),
        };
        let data = ep.bulk_buf(slot);
        let order = match req {
            Request::UpdateBulk {
                oid,
                dkey,
                akey,
                bulk,
            } => ordered(
                store,
                h,
                cont,
                oid,
                Some(dkey),
                Some(akey),
                Change::Single(&data[..bulk.len as usize]),
            ),
            Request::WriteExtentBulk {
                oid,
                dkey,
                akey,
                offset,
                bulk,
            } => ordered(
                store,
                h,
                cont,
                oid,
                Some(dkey),
                Some(akey),
                Change::Extent {
                    offset,
                    data: &data[..bulk.len as usize],
                },
            ),
            _ => return Outcome::Failed(der::INVAL, "not an update".into()),
        };
        match order {
            Ok(Order::Apply) => {}
            Ok(Order::Duplicate) => return Outcome::Epoch(h.epoch),
            Err(e) => return failed(&e),
        }
        let result = match req {
            Request::UpdateBulk {
                oid,
                dkey,
                akey,
                bulk,
            } => store.update_at(
                crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                },
                &ep.bulk_buf(slot)[..bulk.len as usize],
                h.epoch,
            ),
            Request::WriteExtentBulk {
                oid,
                dkey,
                akey,
                offset,
                bulk,
            } => store.write_extent_at(
                crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                },
                offset,
                &ep.bulk_buf(slot)[..bulk.len as usize],
                h.epoch,
            ),
            _ => return Outcome::Failed(der::INVAL, "not an update".into()),
        };
        match result {
            Ok(epoch) => Outcome::Epoch(epoch),
            Err(e) => failed(&e),
        }
    }

    /// The peer for a reply address, inserting it on first sight.
    fn peer(&mut self, addr: &[u8]) -> Result<Peer, EndpointError> {
        if let Some((_, _, p)) = self
            .peers
            .iter()
            .find(|(a, n, _)| &a[..usize::from(*n)] == addr)
        {
            return Ok(*p);
        }
        let p = self.ep.insert_peer(addr)?;
        if self.peers.len() == PEERS_MAX {
            self.peers.remove(0);
        }
        let mut a = [0u8; ADDR_MAX];
        a[..addr.len()].copy_from_slice(addr);
        self.peers.push((a, addr.len() as u8, p));
        Ok(p)
    }

    /// Logs a fabric error, at most once a second (a vanished client can cause many).
    fn complain(&mut self, e: &EndpointError) {
        let now = Instant::now();
        if self
            .last_error
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
        {
            self.last_error = Some(now);
            let _ = std::io::Write::write_all(
                &mut std::io::stdout(),
                format!("WARNING: target {}: fabric: {e}\n", self.index).as_bytes(),
            );
        }
    }
}

/// Whether a request reads or writes the header's container (which this target must serve).
fn touches_container(r: &Request<'_>) -> bool {
    !matches!(
        r,
        Request::Ping
            | Request::ContCreate { .. }
            | Request::ContList
            | Request::ContQuery { .. }
            | Request::ContDestroy { .. }
            | Request::ContSetProps { .. }
            | Request::ContGetProps { .. }
            | Request::ContPunch
            | Request::ContRegister
    )
}

/// The DAOS code for a request that cannot be decoded.
fn decode_status(e: &wire::WireError) -> i32 {
    match e {
        wire::WireError::KeyTooLong(_) => der::KEY2BIG,
        _ => der::INVAL,
    }
}

/// The order check of a client's change at the epoch it chose (none for a change the
/// target stamps, epoch 0, or a rebuild's copy at its value's own epoch, [`wire::FLAG_AS_GIVEN`]).
fn ordered(
    store: &TargetStore,
    h: &Header,
    cont: u128,
    oid: u128,
    dkey: Option<&[u8]>,
    akey: Option<&[u8]>,
    change: Change<'_>,
) -> Result<Order, StoreError> {
    if h.epoch == 0 || h.flags & wire::FLAG_AS_GIVEN != 0 {
        return Ok(Order::Apply);
    }
    store.check_order(cont, oid, dkey, akey, change, h.epoch)
}

/// A bulk change's failure.
fn failed(e: &StoreError) -> Outcome {
    match e {
        StoreError::Conflict { newest, .. } => Outcome::Restart(*newest, e.to_string()),
        e => Outcome::Failed(store_status(e), store_error_text(e)),
    }
}

fn store_status(e: &StoreError) -> i32 {
    match e {
        StoreError::Conflict { .. } => der::TX_RESTART,
        StoreError::Checksum { .. } => der::CSUM,
        StoreError::LogFull | StoreError::BdevFull => der::NOSPACE,
        StoreError::TooLarge | StoreError::ReservedContainer => der::INVAL,
        StoreError::NoContainer(_) => der::NONEXIST,
        StoreError::Overflow { .. } => der::OVERFLOW,
        StoreError::ReadTooLarge(_) => der::REC2BIG,
        StoreError::TooSmall(_) | StoreError::OldFormat => der::IO,
        StoreError::Io(_) => der::IO,
    }
}

fn store_error(h: &Header, resp: &mut [u8], e: &StoreError) -> usize {
    let h = match e {
        // The client takes the newest epoch into its clock and sends again above it.
        StoreError::Conflict { newest, .. } => h.with_epoch(*newest),
        _ => *h,
    };
    wire::encode_error(resp, &h, store_status(e), &store_error_text(e))
}

fn store_error_text(e: &StoreError) -> String {
    match e {
        StoreError::BdevFull => {
            "the pool's NVMe part on this target is full (values over 4 KiB live there); \
             create the pool with more --nvme-size"
                .to_string()
        }
        StoreError::LogFull => {
            "the pool's SCM part on this target is full; create the pool with more --scm-size"
                .to_string()
        }
        e => e.to_string(),
    }
}

fn is_bulk(op: u16) -> bool {
    matches!(
        wire::Op::from_u16(op),
        Some(
            wire::Op::UpdateBulk
                | wire::Op::WriteExtentBulk
                | wire::Op::FetchBulk
                | wire::Op::ReadExtentBulk
        )
    )
}

/// The reply to a finished bulk request.
fn bulk_reply(h: &Header, resp: &mut [u8], outcome: &Outcome) -> usize {
    let mut reply = *h;
    reply.status = 0;
    let mut w = Writer::body(resp);
    match *outcome {
        Outcome::Failed(code, ref text) => return wire::encode_error(resp, h, code, text),
        Outcome::Restart(newest, ref text) => {
            return wire::encode_error(resp, &h.with_epoch(newest), der::TX_RESTART, text);
        }
        Outcome::Epoch(e) => {
            reply.epoch = e;
            Epoch::put(&mut w, e)
        }
        Outcome::Fetched(n) if h.op == wire::Op::FetchBulk as u16 => {
            if n == u32::MAX {
                Fetched::None.put(&mut w);
            } else {
                Fetched::Bulk(n).put(&mut w);
            }
        }
        Outcome::Fetched(n) => Data::put_bulk(&mut w, n),
    }
    w.finish(reply).unwrap_or(0)
}

/// The message of a [`der::STALE`] refusal (the reply header carries the target's version).
const NO_HDL_TEXT: &str = "no such pool or container handle here (never connected, disconnected or evicted); connect to the pool again";
const NO_PERM_TEXT: &str = "the handle's rights do not allow this operation (a read-only connection or container open); connect with write access if the ACL allows it";

/// The handle rights an operation needs (0: none, not checked), and whether it touches a
/// container's data (then it takes a container handle). Container management (create,
/// register, punch, destroy, properties) takes a pool handle: DAOS's pool `w` includes
/// creating and deleting any container.
fn rights_needed(op: u16) -> (u16, bool) {
    use crate::handles::{READ, WRITE};
    use wire::Op::*;
    match wire::Op::from_u16(op) {
        None | Some(Ping) => (0, false),
        Some(ContQuery | ContGetProps | ContList) => (READ, false),
        Some(ContCreate | ContRegister | ContDestroy | ContPunch | ContSetProps) => (WRITE, false),
        Some(
            Fetch | ReadExtent | ListDkeys | ListAkeys | ListOids | FetchBulk | ReadExtentBulk
            | AkeySize,
        ) => (READ, true),
        Some(_) => (WRITE, true),
    }
}

const STALE_TEXT: &str = "stale pool map version: this target knows a newer map of the pool (its version is in the reply); refresh the pool map and send again";

/// The message of a [`der::HLC_SYNC`] refusal (the reply header carries the target's clock).
const HLC_TEXT: &str = "the request's epoch is more than 1 s ahead of this target's clock (its reading is in the reply); synchronise the hosts' clocks (NTP)";

/// How often a target checks that its stores' files are still there.
const FILE_CHECK: Duration = Duration::from_millis(50);

/// The store of the header's pool on this target, opened (log replayed) on first use.
fn store_for<'s>(
    index: u32,
    pools: &PoolStore,
    stores: &'s mut HashMap<[u8; 16], TargetStore>,
    damaged: &HashMap<[u8; 16], String>,
    h: &Header,
) -> Result<&'s mut TargetStore, (i32, String)> {
    store_of(index, pools, stores, damaged, &h.pool)
}

/// The target's store of `pool`, opened (recovered) at its first use.
fn store_of<'s>(
    index: u32,
    pools: &PoolStore,
    stores: &'s mut HashMap<[u8; 16], TargetStore>,
    damaged: &HashMap<[u8; 16], String>,
    pool: &[u8; 16],
) -> Result<&'s mut TargetStore, (i32, String)> {
    let h = Header::request(wire::Op::Ping, 0, *pool, [0; 16], &[]);
    let h = &h;
    if let Some(why) = damaged.get(&h.pool) {
        return Err((der::IO, why.clone()));
    }
    if let std::collections::hash_map::Entry::Vacant(slot) = stores.entry(h.pool) {
        match pools.open_target(&wire::uuid_text(&h.pool), index) {
            Ok(s) => {
                if s.damaged_records() > 0 {
                    let _ = std::io::Write::write_all(
                        &mut std::io::stdout(),
                        format!(
                            "WARNING: pool {} target {index}: {} damaged SCM log record(s) skipped at recovery; their updates are lost\n",
                            wire::uuid_text(&h.pool),
                            s.damaged_records()
                        )
                        .as_bytes(),
                    );
                }
                slot.insert(s);
            }
            Err(e) => {
                return Err((e.der(), e.to_string()));
            }
        }
    }
    stores
        .get_mut(&h.pool)
        .ok_or_else(|| (der::IO, "pool store vanished".to_string()))
}

/// Answers one request; returns the reply's length.
fn handle(
    index: u32,
    pools: &PoolStore,
    stores: &mut HashMap<[u8; 16], TargetStore>,
    damaged: &HashMap<[u8; 16], String>,
    h: &Header,
    req: &[u8],
    resp: &mut [u8],
) -> usize {
    if h.version != wire::VERSION {
        return wire::encode_error(
            resp,
            h,
            der::PROTO,
            &format!(
                "incompatible protocol: the client speaks version {}, this target version {}; \
                 use a client of the same release as the engines",
                h.version,
                wire::VERSION
            ),
        );
    }
    let request = match h.body(req).and_then(|b| Request::decode(h.op, b)) {
        Ok(r) => r,
        Err(e) => {
            return wire::encode_error(resp, h, decode_status(&e), &format!("bad request: {e}"));
        }
    };
    let mut reply = *h;
    reply.status = 0;
    if let Request::Ping = request {
        return Writer::body(resp).finish(reply).unwrap_or(0);
    }
    let store = match store_for(index, pools, stores, damaged, h) {
        Ok(s) => s,
        Err((code, text)) => return wire::encode_error(resp, h, code, &text),
    };
    let cont = u128::from_le_bytes(h.cont);
    if touches_container(&request) && !store.has_container(cont) {
        return store_error(h, resp, &StoreError::NoContainer(wire::uuid_text(&h.cont)));
    }
    // The target's clock, unless the operation names an epoch of its own (HLC sync).
    reply.epoch = store.epoch();
    let mut w = Writer::body(resp);
    let done: Result<(), StoreError> = (|| {
        match request {
            Request::Ping => {}
            Request::ContRegister => store.register_container(cont)?,
            Request::Update {
                oid,
                dkey,
                akey,
                value,
            } => {
                let key = crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                };
                let e = match ordered(
                    store,
                    h,
                    cont,
                    oid,
                    Some(dkey),
                    Some(akey),
                    Change::Single(value),
                )? {
                    Order::Apply => store.update_at(key, value, h.epoch)?,
                    Order::Duplicate => h.epoch,
                };
                reply.epoch = e;
                Epoch::put(&mut w, e);
            }
            Request::WriteExtent {
                oid,
                dkey,
                akey,
                offset,
                data,
            } => {
                let key = crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                };
                let change = Change::Extent { offset, data };
                let e = match ordered(store, h, cont, oid, Some(dkey), Some(akey), change)? {
                    Order::Apply => store.write_extent_at(key, offset, data, h.epoch)?,
                    Order::Duplicate => h.epoch,
                };
                reply.epoch = e;
                Epoch::put(&mut w, e);
            }
            Request::Swap {
                oid,
                dkey,
                akey,
                value,
            } => {
                if value.len() > crate::store::INLINE_MAX {
                    return Err(StoreError::TooLarge);
                }
                let key = crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                };
                // The order check makes the swap's value the newest (or finds it already
                // is: a resend); what it replaced is the value just below its epoch, the
                // same answer for a resend. One target handles one request at a time:
                // nothing comes between the check, the update and the fetch.
                let change = Change::Single(value);
                let e = match ordered(store, h, cont, oid, Some(dkey), Some(akey), change)? {
                    Order::Apply => store.update_at(key, value, h.epoch)?,
                    Order::Duplicate => h.epoch,
                };
                let old = store.fetch(cont, oid, dkey, akey, e.saturating_sub(1))?;
                reply.epoch = e;
                Swapped::put(&mut w, e, old.as_deref());
            }
            Request::Fetch { oid, dkey, akey } => {
                let key = crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                };
                reply.epoch = store.value_epoch(key, u64::MAX, None);
                // Straight from the store's buffer into the reply.
                store.fetch_with(key, u64::MAX, |v| {
                    v.map_or(Fetched::None, Fetched::Inline).put(&mut w)
                })?;
            }
            Request::ReadExtent {
                oid,
                dkey,
                akey,
                offset,
                len,
            } => {
                let key = crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                };
                let end = offset.saturating_add(u64::from(len));
                reply.epoch = store.value_epoch(key, u64::MAX, Some((offset, end)));
                let v = store.read_extent(key, offset, len as usize, u64::MAX)?;
                Data::put_inline(&mut w, &v);
            }
            Request::Punch { oid, what } => {
                let (d, a) = match what {
                    PunchWhat::Object => (None, None),
                    PunchWhat::Dkey(d) => (Some(d), None),
                    PunchWhat::Akey(d, a) => (Some(d), Some(a)),
                };
                let dup = ordered(store, h, cont, oid, d, a, Change::Punch)? == Order::Duplicate;
                let e = match what {
                    _ if dup => h.epoch,
                    PunchWhat::Object => store.punch_at(cont, oid, None, None, h.epoch)?,
                    PunchWhat::Dkey(d) => store.punch_at(cont, oid, Some(d), None, h.epoch)?,
                    PunchWhat::Akey(d, a) => {
                        store.punch_at(cont, oid, Some(d), Some(a), h.epoch)?
                    }
                };
                reply.epoch = e;
                Epoch::put(&mut w, e);
            }
            Request::ListDkeys { oid, after } => {
                w.limit(wire::LIST_PAGE);
                let keys = store.list_dkeys(cont, oid);
                let later = keys.iter().map(Vec::as_slice).filter(|k| *k > after);
                Keys::put(&mut w, later);
            }
            Request::AkeySize { oid, dkey, akey } => {
                let key = crate::store::AkeyRef {
                    cont,
                    oid,
                    dkey,
                    akey,
                };
                store.akey_size(key, u64::MAX).put(&mut w);
            }
            Request::ListAkeys { oid, dkey } => {
                let keys = store.list_akeys(cont, oid, dkey);
                Keys::put(&mut w, keys.iter().map(Vec::as_slice));
            }
            Request::ListOids { after, from_start } => {
                // A page the client's message holds; it asks again after the last id.
                w.limit(wire::LIST_PAGE);
                let max = Oids::room(&w);
                let oids = store.list_oids(cont, after, from_start, max + 1);
                let more = oids.len() > max;
                Oids::put(&mut w, &oids[..oids.len().min(max)], more);
            }
            Request::ContPunch => {
                let n = store.punch_container(cont)?;
                Epoch::put(&mut w, n as u64);
            }
            Request::Reclaim { oid } => {
                let e = store.reclaim(cont, oid)?;
                Epoch::put(&mut w, e);
            }
            // Bulk requests never get here (see `TargetService::poll`).
            Request::UpdateBulk { .. }
            | Request::WriteExtentBulk { .. }
            | Request::FetchBulk { .. }
            | Request::ReadExtentBulk { .. } => {}
            Request::ContCreate { label, uuid } => {
                let (c, o) = CONT_TABLE;
                let mut uuid_taken = false;
                for l in store.list_dkeys(c, o) {
                    if store.fetch(c, o, &l, UUID_AKEY, u64::MAX)?.as_deref() == Some(&uuid[..]) {
                        uuid_taken = true;
                    }
                }
                let outcome = if store.fetch(c, o, label, UUID_AKEY, u64::MAX)?.is_some() {
                    Created::LabelTaken
                } else if uuid_taken {
                    Created::UuidTaken
                } else {
                    store.update(c, o, label, UUID_AKEY, &uuid)?;
                    Created::Created
                };
                outcome.put(&mut w);
            }
            Request::ContList => {
                let (c, o) = CONT_TABLE;
                let labels = store.list_dkeys(c, o);
                let mut entries: Vec<(&[u8], [u8; 16])> = Vec::with_capacity(labels.len());
                for l in &labels {
                    if let Some(u) = store.fetch(c, o, l, UUID_AKEY, u64::MAX)?
                        && let Ok(u) = u.as_slice().try_into()
                    {
                        entries.push((l, u));
                    }
                }
                Containers::put(&mut w, &entries);
            }
            Request::ContQuery { id }
            | Request::ContDestroy { id }
            | Request::ContSetProps { id, .. } => {
                let (c, o) = CONT_TABLE;
                let found = find_container(store, id)?;
                match (&found, request) {
                    (Some((l, _)), Request::ContDestroy { .. }) => {
                        store.punch(c, o, Some(l), None)?;
                    }
                    (Some((l, _)), Request::ContSetProps { props, .. }) => {
                        store.update(c, o, l, PROPS_AKEY, props)?;
                    }
                    _ => {}
                }
                Found::put(&mut w, found.as_ref().map(|(l, u)| (l.as_slice(), *u)));
            }
            Request::ContGetProps { id } => {
                let (c, o) = CONT_TABLE;
                let props = match find_container(store, id)? {
                    Some((l, _)) => store.fetch(c, o, &l, PROPS_AKEY, u64::MAX)?,
                    None => None,
                };
                props
                    .as_deref()
                    .map_or(Fetched::None, Fetched::Inline)
                    .put(&mut w);
            }
        }
        Ok(())
    })();
    match done {
        Ok(()) => match w.finish(reply) {
            Ok(n) => n,
            Err(e) => wire::encode_error(resp, h, der::TRUNC, &e.to_string()),
        },
        Err(e) => store_error(h, resp, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_and_ports_follow_daos() {
        assert_eq!(libfabric_provider("ofi+tcp"), "tcp;ofi_rxm");
        assert_eq!(libfabric_provider("ofi+tcp;ofi_rxm"), "tcp;ofi_rxm");
        assert_eq!(libfabric_provider("ofi+verbs"), "verbs;ofi_rxm");
        assert_eq!(target_port(31416, 0), 31418);
        assert_eq!(target_port(31416, 3), 31421);
    }

    #[test]
    fn a_closed_pool_leaves_the_targets_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pools = Arc::new(PoolStore::open(dir.path(), 1, None).expect("pools"));
        let uuid = "11111111-2222-4333-8444-555555555555";
        pools.create(uuid, 64 << 20, 0).expect("create");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let at = Endpoint {
            provider: "tcp;ofi_rxm".into(),
            node: "127.0.0.1".into(),
            port,
        };
        let mut t = TargetService::open(0, pools.clone(), &at).expect("target");
        t.space(uuid).expect("the store opens");
        let key = wire::parse_uuid(uuid).expect("uuid");
        assert_eq!(t.open_pools(), vec![key]);
        t.close_pool(uuid);
        pools.destroy(uuid).expect("destroy");
        assert!(t.open_pools().is_empty());
        assert_eq!(t.stores.capacity(), 0, "the map gave its room back");
        assert!(
            t.space(uuid).is_err(),
            "a destroyed pool's store is not reopened"
        );
        assert!(t.open_pools().is_empty());
    }
}
