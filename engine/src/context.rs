//! CaRT context 0 (tag 0) of the engine: where DAOS's own clients (libdaos, `self_test`, the
//! `daos` tool) send what is not object I/O, over DAOS's protocol ([`daos_cart`]).
//!
//! It listens on `fabric_iface_port` (the URI the engine announces), on the system shard, as
//! DAOS's engine serves tag 0 on its system xstream. Target `t` is tag `t + 2` on port
//! `fabric_iface_port + 2 + t`, because DAOS's clients derive every tag's port from tag 0's
//! (tag 1 is SWIM's). Served here: `URI_LOOKUP`, `PROTO_QUERY` (the versions
//! [`daos_cart::opcode::served_versions`] lists) and CaRT's self-test sessions without bulk
//! (what `self_test` pings with). Anything else is answered `-DER_UNREG`, as DAOS answers an
//! opcode nobody registered; a request for another rank or tag `-DER_BAD_TARGET`; one whose
//! clock is more than a second ahead `-DER_HLC_SYNC`. A message that is not Mercury's is
//! dropped with a log line (there is no address to answer).
//!
//! Requests are answered in place from their receive buffer into a send buffer; when every
//! send buffer is in flight they wait in their receive buffers (bounded) and the provider's
//! flow control pushes back on clients.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use daos_cart::mercury::{self, HgReturn};
use daos_cart::opcode::{self, self_test};
use daos_cart::proc_::Encoder;
use daos_cart::rpc::{
    self, PoolFindIn, PoolFindOut, ProtoQueryIn, ProtoQueryOut, SessionParams, UriLookupIn,
    UriLookupOut,
};
use daos_cart::{CartError, hlc};
use daos_config::logmask::Level;
use daos_fabric::{EndpointError, Peer, RdmEndpoint, Received, Shape};
use daos_wire::der;

use crate::control::GroupMap;
use crate::log::Subsys;
use crate::srv::{Answer, Found, Question, SrvLink};
use daos_cart::cont::{self as ccont, ContIn};
use daos_cart::pool::{self as cpool, MapRank, PoolOpOut};
use daos_drpc::srv::{ContCallReq, ContCallResp, PoolCallReq, PoolCallResp, PoolProp};

mod attrs;

/// Send buffers of the context.
pub const SEND_SLOTS: usize = 16;
/// Receive buffers (requests in flight from all clients).
pub const RECV_SLOTS: usize = 32;
/// Most client addresses remembered; the oldest is forgotten beyond that.
pub const PEERS_MAX: usize = 256;
/// Most pool handles of DAOS's clients remembered (container calls name only the handle);
/// the oldest is forgotten beyond that.
pub const POOL_HANDLES_MAX: usize = 4096;
/// Most self-test sessions open at once.
pub const SESSIONS_MAX: usize = 64;
/// Contexts (tags) a rank has at most, as CaRT's servers (`CRT_SRV_CONTEXT_NUM`).
pub const TAGS_MAX: u32 = 64;
/// Registered buffers for bulk transfers: pool map pushes (connects and queries in flight)
/// and pulls of requests larger than a message (Mercury's "more data").
pub const BULK_SLOTS: usize = 4;
/// Largest bulk transfer: a request of 64 KiB, a pool map of 2,047 components (e.g. 128 ranks
/// of 15 targets), or a self-test message of 1 MiB and 4 KiB (`self_test`'s default sizes
/// are 1 MiB + 2 bytes each way). Requests and maps use the first 64 KiB of a slot.
pub const BULK_MAX: usize = (1 << 20) + (4 << 10);
/// Largest request pulled ("more data").
pub const PULL_MAX: usize = 64 << 10;
/// The pool service term the leader hint names (our pool services are daos_server's; the
/// engine a client reaches answers as leader).
const HINT_TERM: u64 = 1;
/// The pool global version DAOS 2.6 and 2.8 clients and pools have (`DAOS_POOL_GLOBAL_VERSION`).
const POOL_GLOBAL_VERSION: u32 = 3;

/// The byte self-test replies are filled with (as CaRT's service does).
const SELF_TEST_FILL: u8 = 0xA7;

/// Where the context listens and what it answers for.
#[derive(Clone, Debug)]
pub struct ContextConfig {
    /// libfabric provider (`tcp;ofi_rxm`).
    pub provider: String,
    /// DAOS's provider name in URIs (`ofi+tcp;ofi_rxm`).
    pub uri_provider: String,
    /// Host address (as in the URI).
    pub host: String,
    /// Tag 0's port (`fabric_iface_port`).
    pub port: u16,
    /// The system name (`daos_engine -g`), which URI_LOOKUP names.
    pub group: String,
    /// Targets of this engine (tags 2 ..= targets + 1).
    pub targets: u32,
    /// daos_server's dRPC socket, which `MGMT_POOL_FIND` asks (none: the pool is not found).
    pub server_sock: Option<std::path::PathBuf>,
    /// The engine's pools, whose handle tables name the pool of a pool handle that connected
    /// through another rank (`CONT_OID_ALLOC` goes to any rank of the pool).
    pub pools: Option<HandlePools>,
}

/// The engine's pools, as the context asks them which pool a handle is of.
#[derive(Clone)]
pub struct HandlePools(pub Arc<crate::pool::PoolStore>);

impl std::fmt::Debug for HandlePools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandlePools")
    }
}

impl ContextConfig {
    /// The URI of this engine's tag `tag`.
    fn uri(&self, tag: u32) -> String {
        format!(
            "{}://{}:{}",
            self.uri_provider,
            self.host,
            u32::from(self.port) + tag
        )
    }
}

/// What the context knows of the system, pushed by the engine's control thread.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    pub rank: Option<u32>,
    pub group: Arc<GroupMap>,
}

/// The tag-0 service, owned by the system shard.
pub struct SystemContext {
    ep: RdmEndpoint,
    held: Vec<Received>,
    /// Requests waiting for a send buffer, with where their answer goes.
    waiting: VecDeque<(Received, Peer, u64)>,
    /// Requests waiting for daos_server's answer: question id, request, peer, tag.
    asked: Vec<(u64, Received, Peer, u64)>,
    /// Answers whose reply waits for a send buffer.
    answered: VecDeque<(Received, Peer, u64, Done)>,
    /// Pool maps to push into a client's buffer, waiting for a map slot.
    mapping: VecDeque<(Received, Peer, u64, PoolCallResp)>,
    /// Pool maps and container lists being pushed: RMA id (the slot), request, peer, tag,
    /// and the reply once pushed.
    pushing: Vec<(usize, Received, Peer, u64, Done)>,
    /// Container lists to push into a client's buffer, waiting for a slot.
    listing: VecDeque<(Received, Peer, u64, ContCallResp)>,
    /// Requests whose input is being pulled ("more data"): slot, request, peer, tag, length.
    pulling: Vec<(usize, Received, Peer, u64, usize)>,
    /// Pulled requests waiting to be answered: slot, request, peer, tag, length.
    pulled: VecDeque<(usize, Received, Peer, u64, usize)>,
    /// Self-test messages moving their data by bulk.
    self_tests: Vec<SelfTestBulk>,
    /// Container attribute requests (each holds a bulk slot).
    attrs: Vec<attrs::AttrOp>,
    /// Per bulk slot, where a pulled request is rebuilt (its Mercury headers, then the input),
    /// so it is served like any request.
    scratch: Vec<Box<[u8]>>,
    /// Slots whose "pulled" input came inline (no RMA to wait for).
    eager_done: Vec<usize>,
    free_bulk: Vec<usize>,
    srv: Option<SrvLink>,
    next_question: u64,
    inner: Inner,
}

/// Everything but the endpoint, so a reply can be written while the endpoint lends its
/// buffers.
struct Inner {
    config: ContextConfig,
    membership: Membership,
    peers: Vec<([u8; mercury::NA_ADDR_LEN], Peer)>,
    hlc: hlc::Hlc,
    /// Open self-test sessions: id and parameters.
    sessions: Vec<(u64, SessionParams)>,
    /// DAOS clients' pool handles connected here, and their pools.
    pool_handles: Vec<([u8; 16], [u8; 16])>,
    next_session: u64,
    last_complaint: Option<Instant>,
}

impl SystemContext {
    /// Opens the endpoint on the tag-0 port.
    pub fn open(config: ContextConfig) -> Result<SystemContext, EndpointError> {
        let shape = Shape {
            tagged: true,
            unexpected_tag: Some(mercury::UNEXPECTED_TAG),
            bulk: Some((BULK_SLOTS, BULK_MAX)),
            ..Shape::messages(mercury::MSG_SIZE, SEND_SLOTS, RECV_SLOTS)
        };
        let port = config.port.to_string();
        let ep =
            RdmEndpoint::open_shaped(&config.provider, Some(&config.host), Some(&port), shape)?;
        let srv = match &config.server_sock {
            Some(sock) => match SrvLink::start(sock.clone()) {
                Ok(l) => Some(l),
                Err(e) => {
                    crate::dlog!(
                        Subsys::Mgmt,
                        Level::Err,
                        "context 0: no dRPC thread ({e}); MGMT_POOL_FIND will find nothing"
                    );
                    None
                }
            },
            None => None,
        };
        Ok(SystemContext {
            ep,
            held: Vec::with_capacity(RECV_SLOTS),
            waiting: VecDeque::with_capacity(RECV_SLOTS),
            asked: Vec::with_capacity(RECV_SLOTS),
            answered: VecDeque::with_capacity(RECV_SLOTS),
            mapping: VecDeque::with_capacity(RECV_SLOTS),
            pushing: Vec::with_capacity(BULK_SLOTS),
            listing: VecDeque::with_capacity(RECV_SLOTS),
            pulling: Vec::with_capacity(BULK_SLOTS),
            pulled: VecDeque::with_capacity(BULK_SLOTS),
            scratch: (0..BULK_SLOTS)
                .map(|_| vec![0u8; mercury::REQUEST_BODY + PULL_MAX].into_boxed_slice())
                .collect(),
            eager_done: Vec::with_capacity(BULK_SLOTS),
            self_tests: Vec::with_capacity(BULK_SLOTS),
            attrs: Vec::with_capacity(BULK_SLOTS),
            free_bulk: (0..BULK_SLOTS).collect(),
            srv,
            next_question: 1,
            inner: Inner {
                config,
                membership: Membership::default(),
                peers: Vec::with_capacity(PEERS_MAX),
                hlc: hlc::Hlc::default(),
                sessions: Vec::with_capacity(SESSIONS_MAX),
                pool_handles: Vec::new(),
                next_session: 1,
                last_complaint: None,
            },
        })
    }

    /// Takes in what the control thread learnt (rank, group map).
    pub fn set_membership(&mut self, m: Membership) {
        self.inner.membership = m;
    }

    /// Serves what arrived; returns the work done (0: idle).
    pub fn poll(&mut self) -> usize {
        let mut work = 0;
        while let Some((id, answer)) = self.srv.as_ref().and_then(SrvLink::answer) {
            if self.attr_answered(id, &answer) {
                work += 1;
                continue;
            }
            if let Some(i) = self.asked.iter().position(|a| a.0 == id) {
                let (_, r, peer, tag) = self.asked.swap_remove(i);
                self.answered_or_pushed(r, peer, tag, answer);
            }
            work += 1;
        }
        work += self.push_maps();
        while let Some((slot, r, peer, tag, len)) = self.pulled.pop_front() {
            let inner = &mut self.inner;
            let req = &self.scratch[slot][..mercury::REQUEST_BODY + len];
            match self
                .ep
                .send_tagged_with(peer, tag, |out| inner.serve(req, out))
            {
                Ok(()) => {
                    self.free_bulk.push(slot);
                    let _ = self.ep.release(r);
                    work += 1;
                }
                Err(EndpointError::Busy(_)) => {
                    self.pulled.push_front((slot, r, peer, tag, len));
                    break;
                }
                Err(e) => {
                    self.free_bulk.push(slot);
                    let _ = self.ep.release(r);
                    self.inner.complain(&e.to_string());
                }
            }
        }
        while let Some((r, peer, tag, done)) = self.answered.pop_front() {
            let inner = &mut self.inner;
            let sent = self
                .ep
                .reply_tagged(r, peer, tag, |req, out| inner.finish(req, out, &done));
            match sent {
                Ok(()) => work += 1,
                Err(EndpointError::Busy(_)) => {
                    self.answered.push_front((r, peer, tag, done));
                    break;
                }
                Err(e) => self.inner.complain(&e.to_string()),
            }
        }
        while let Some((r, peer, tag)) = self.waiting.pop_front() {
            let attr = self.srv.is_some()
                && rpc::parse_call(self.ep.message(r)).is_ok_and(|c| attrs::is_attr(c.hdr.opc));
            if attr {
                if self.free_bulk.is_empty() {
                    self.waiting.push_front((r, peer, tag));
                    break;
                }
                if self.start_attr(r, peer, tag) {
                    work += 1;
                    continue;
                }
                // Refused: answered below.
            } else if self.is_more_data(r)
                || self.inner.self_test_bulk(self.ep.message(r)).is_some()
            {
                if self.free_bulk.is_empty() {
                    self.waiting.push_front((r, peer, tag));
                    break;
                }
                if !self.more_data(r, peer, tag) {
                    self.start_self_test_bulk(r, peer, tag);
                }
                work += 1;
                continue;
            }
            match self.answer(r, peer, tag) {
                Ok(()) => work += 1,
                Err(EndpointError::Busy(_)) => {
                    self.waiting.push_front((r, peer, tag));
                    break;
                }
                Err(e) => self.inner.complain(&e.to_string()),
            }
        }
        self.held.clear();
        match self.ep.poll_held(&mut self.held) {
            Ok(n) => work += n,
            Err(e) => self.inner.complain(&e.to_string()),
        }
        for i in 0..self.held.len() {
            let r = self.held[i];
            self.take(r);
        }
        work
    }

    /// Looks at a received message: answers it, or drops what cannot be answered.
    fn take(&mut self, r: Received) {
        let msg = self.ep.message(r);
        let Some(tag) = mercury::request_tag(r.tag(), r.data()) else {
            self.inner.complain(&format!(
                "dropped a {}-byte message without a Mercury request tag (not a DAOS client?)",
                msg.len()
            ));
            let _ = self.ep.release(r);
            return;
        };
        let m = match mercury::parse_request(msg) {
            Ok(m) => m,
            Err(e) => {
                self.inner
                    .complain(&format!("dropped a {}-byte request: {e}", msg.len()));
                let _ = self.ep.release(r);
                return;
            }
        };
        if m.one_way() {
            // CaRT's one-way RPCs are engine-to-engine (SWIM, IV); nothing to answer.
            let _ = self.ep.release(r);
            return;
        }
        let source = m.source;
        let peer = match self.peer(&source) {
            Ok(p) => p,
            Err(e) => {
                self.inner.complain(&format!(
                    "cannot answer {}: {e}",
                    mercury::parse_request(self.ep.message(r))
                        .map(|m| m.source_addr().to_string())
                        .unwrap_or_default()
                ));
                let _ = self.ep.release(r);
                return;
            }
        };
        if self.more_data(r, peer, tag)
            || self.start_self_test_bulk(r, peer, tag)
            || self.start_attr(r, peer, tag)
        {
            return;
        }
        if let (Some(q), Some(srv)) = (self.inner.question(self.ep.message(r)), &self.srv) {
            let id = self.next_question;
            self.next_question += 1;
            if srv.ask(id, q) {
                self.asked.push((id, r, peer, tag));
                return;
            }
            // The dRPC thread is behind: answered below with DER_BUSY.
        }
        match self.answer(r, peer, tag) {
            Ok(()) => {}
            Err(EndpointError::Busy(_)) => self.waiting.push_back((r, peer, tag)),
            Err(e) => self.inner.complain(&e.to_string()),
        }
    }

    /// Starts a self-test message that moves its data by bulk (the server pulls the message
    /// from the client's buffer, pushes the reply into it, or both); true when it was one.
    fn start_self_test_bulk(&mut self, r: Received, peer: Peer, tag: u64) -> bool {
        let Some(st) = self.inner.self_test_bulk(self.ep.message(r)) else {
            return false;
        };
        let Some(slot) = self.free_bulk.pop() else {
            self.waiting.push_back((r, peer, tag));
            return true;
        };
        let mut op = SelfTestBulk {
            slot,
            r,
            peer,
            tag,
            st,
            pushing: false,
        };
        let posted = if st.pull > 0 {
            let remote = st.remote(self.ep.virt_addr(), st.pull);
            self.ep.rma_read(peer, slot, remote, slot as u64)
        } else {
            op.pushing = true;
            self.ep.bulk_mut(slot)[..st.push].fill(SELF_TEST_FILL);
            let remote = st.remote(self.ep.virt_addr(), st.push);
            self.ep.rma_write(peer, slot, remote, slot as u64)
        };
        match posted {
            Ok(()) => self.self_tests.push(op),
            Err(e) => {
                // CaRT's service answers a failed transfer with an empty body.
                self.inner
                    .complain(&format!("self-test bulk transfer: {e}"));
                self.free_bulk.push(slot);
                self.answered
                    .push_back((r, peer, tag, Done::SelfTest(st.reply_iov)));
            }
        }
        true
    }

    /// A finished RMA of a self-test message: push the reply next, or answer.
    fn self_test_moved(&mut self, i: usize, ok: bool) {
        let op = self.self_tests.swap_remove(i);
        if ok && !op.pushing && op.st.push > 0 {
            self.ep.bulk_mut(op.slot)[..op.st.push].fill(SELF_TEST_FILL);
            let remote = op.st.remote(self.ep.virt_addr(), op.st.push);
            if self
                .ep
                .rma_write(op.peer, op.slot, remote, op.slot as u64)
                .is_ok()
            {
                self.self_tests.push(SelfTestBulk {
                    pushing: true,
                    ..op
                });
                return;
            }
        }
        if !ok {
            self.inner.complain("a self-test bulk transfer failed");
        }
        self.free_bulk.push(op.slot);
        self.answered
            .push_back((op.r, op.peer, op.tag, Done::SelfTest(op.st.reply_iov)));
    }

    fn is_more_data(&self, r: Received) -> bool {
        mercury::parse_request(self.ep.message(r)).is_ok_and(|m| m.flags & mercury::MORE_DATA != 0)
    }

    /// Starts pulling the input of a request sent with Mercury's "more data" flag (its body is
    /// a bulk handle over the whole input); true when it was such a request (pulled, or
    /// answered when it cannot be: too large, or not readable).
    fn more_data(&mut self, r: Received, peer: Peer, tag: u64) -> bool {
        let msg = self.ep.message(r);
        let Ok(m) = mercury::parse_request(msg) else {
            return false;
        };
        if m.flags & mercury::MORE_DATA == 0 || m.rpc_id != mercury::RPC_ID {
            return false;
        }
        let virt = self.ep.virt_addr();
        let mut d = daos_cart::proc_::Decoder::new(m.body);
        let bulk = daos_cart::bulk::decode(&mut d, "more data")
            .ok()
            .flatten()
            .filter(|b| b.readable() && b.len as usize <= PULL_MAX)
            .map(|b| {
                (
                    b.key,
                    b.remote_addr(virt, 0),
                    b.len as usize,
                    b.eager.map(<[u8]>::to_vec),
                )
            });
        let cookie = m.cookie;
        let Some((key, addr, len, eager)) = bulk else {
            self.inner.complain(&format!(
                "a request larger than a message whose input cannot be pulled (more than {PULL_MAX} bytes, or no readable bulk handle)"
            ));
            let sent = self.ep.reply_tagged(r, peer, tag, |_, out| {
                rpc::write_hg_error(out, cookie, HgReturn::MsgSize).unwrap_or(0)
            });
            if let Err(e) = sent {
                self.inner.complain(&e.to_string());
            }
            return true;
        };
        let Some(slot) = self.free_bulk.pop() else {
            // Every bulk slot is busy: the request waits (held) and is looked at again.
            self.waiting.push_back((r, peer, tag));
            return true;
        };
        if let Some(data) = eager {
            // Mercury sent the input inline after all: no RMA.
            self.ep.bulk_mut(slot)[..len].copy_from_slice(&data[..len]);
            self.pulling.push((slot, r, peer, tag, len));
            self.eager_done.push(slot);
            return true;
        }
        let remote = daos_fabric::RemoteBuf {
            key,
            offset: addr,
            len: len as u32,
        };
        match self.ep.rma_read(peer, slot, remote, slot as u64) {
            Ok(()) => self.pulling.push((slot, r, peer, tag, len)),
            Err(e) => {
                self.free_bulk.push(slot);
                self.inner
                    .complain(&format!("pulling a request's input: {e}"));
                let sent = self.ep.reply_tagged(r, peer, tag, |_, out| {
                    rpc::write_hg_error(out, cookie, HgReturn::ProtocolError).unwrap_or(0)
                });
                if let Err(e) = sent {
                    self.inner.complain(&e.to_string());
                }
            }
        }
        true
    }

    /// Takes daos_server's answer to a held request: a pool map to push into the client's
    /// buffer first, or the reply to send.
    fn answered_or_pushed(&mut self, r: Received, peer: Peer, tag: u64, answer: Answer) {
        let done = match answer {
            Answer::Found(f) => Done::Found(f),
            Answer::Cont(Ok(resp))
                if resp.status == 0
                    && rpc::parse_call(self.ep.message(r))
                        .ok()
                        .is_some_and(|c| is_list_cont(c.hdr.opc))
                    && !resp.containers.is_empty() =>
            {
                let asked = rpc::parse_call(self.ep.message(r))
                    .ok()
                    .and_then(|c| list_cont_in(c.input))
                    .map_or(0, |(_, n)| n);
                if asked > 0 && asked >= resp.containers.len() as u64 {
                    self.listing.push_back((r, peer, tag, resp));
                    return;
                }
                Done::Cont(Ok(resp))
            }
            Answer::Cont(c) => Done::Cont(c),
            Answer::Pool(Err(rc)) => Done::Pool(Err(rc)),
            Answer::Pool(Ok(resp)) => {
                let call = rpc::parse_call(self.ep.message(r)).ok();
                let op = call.map_or(0, |c| opcode::index_of(c.hdr.opc));
                // Remember which pool a client's handle names: container calls name only
                // the handle.
                if resp.status == 0
                    && let Some(c) = call
                {
                    let mut d = daos_cart::proc_::Decoder::new(c.input);
                    if let Ok(o) = cpool::PoolOpIn::decode(&mut d) {
                        self.inner.pool_handles.retain(|(h, _)| *h != o.handle);
                        if op == cpool::op::CONNECT {
                            if self.inner.pool_handles.len() == POOL_HANDLES_MAX {
                                self.inner.pool_handles.remove(0);
                            }
                            self.inner.pool_handles.push((o.handle, o.uuid));
                        } else if op == cpool::op::QUERY {
                            self.inner.pool_handles.push((o.handle, o.uuid));
                        }
                    }
                }
                // A map refresh moves the map only when it is newer than the client's.
                let newer = op == cpool::op::TGT_QUERY_MAP
                    && call
                        .and_then(|c| cpool::TgtQueryMapIn::decode(c.input).ok())
                        .is_some_and(|q| resp.map_version > q.map_version);
                let needs_map = resp.status == 0
                    && (op == cpool::op::CONNECT || op == cpool::op::QUERY || newer);
                if needs_map {
                    self.mapping.push_back((r, peer, tag, resp));
                    return;
                }
                Done::Pool(Ok((resp, 0)))
            }
        };
        self.answered.push_back((r, peer, tag, done));
    }

    /// Pushes pool maps into clients' buffers (one RMA write each) and turns the finished
    /// pushes into replies. A map that does not fit the client's buffer is answered with
    /// `-DER_TRUNC` and the size needed, as DAOS's pool service does.
    fn push_maps(&mut self) -> usize {
        let mut work = 0;
        let mut finished = [(0usize, false); BULK_SLOTS];
        let mut n = 0;
        // Attribute transfers post several RMAs per slot: counted per slot.
        let mut attr_done = [(0u32, true); BULK_SLOTS];
        for slot in self.eager_done.drain(..) {
            if n < BULK_SLOTS {
                finished[n] = (slot, true);
                n += 1;
            }
        }
        self.ep.take_rma(|id, ok| {
            if id & attrs::ATTR_RMA != 0 {
                if let Some(d) = attr_done.get_mut((id & !attrs::ATTR_RMA) as usize) {
                    d.0 += 1;
                    d.1 &= ok;
                }
            } else if n < BULK_SLOTS {
                finished[n] = (id as usize, ok);
                n += 1;
            }
        });
        for (slot, &(count, ok)) in attr_done.iter().enumerate() {
            if count > 0 {
                self.attr_rma_done(slot, count, ok);
                work += 1;
            }
        }
        for &(slot, ok) in &finished[..n] {
            if let Some(i) = self.self_tests.iter().position(|t| t.slot == slot) {
                self.self_test_moved(i, ok);
                work += 1;
                continue;
            }
            if let Some(i) = self.pulling.iter().position(|p| p.0 == slot) {
                let (slot, r, peer, tag, len) = self.pulling.swap_remove(i);
                if ok {
                    // Rebuild the request: its Mercury headers without the flag, the input.
                    let head = &self.ep.message(r)[..mercury::REQUEST_BODY];
                    let scratch = &mut self.scratch[slot];
                    scratch[..mercury::REQUEST_BODY].copy_from_slice(head);
                    scratch[mercury::NA_ADDR_LEN + 10] &= !mercury::MORE_DATA;
                    scratch[mercury::REQUEST_BODY..mercury::REQUEST_BODY + len]
                        .copy_from_slice(&self.ep.bulk_buf(slot)[..len]);
                    self.pulled.push_back((slot, r, peer, tag, len));
                } else {
                    self.inner
                        .complain("pulling a request's input from the client failed");
                    self.free_bulk.push(slot);
                    let _ = self.ep.release(r);
                }
                work += 1;
                continue;
            }
            if let Some(i) = self.pushing.iter().position(|p| p.0 == slot) {
                let (slot, r, peer, tag, done) = self.pushing.swap_remove(i);
                self.free_bulk.push(slot);
                let done = match done {
                    d if ok => d,
                    Done::Cont(_) => Done::Cont(Err(der::HG)),
                    _ => Done::Pool(Err(der::HG)),
                };
                if !ok {
                    self.inner
                        .complain("pushing into a client's buffer failed (DER_HG)");
                }
                self.answered.push_back((r, peer, tag, done));
                work += 1;
            }
        }
        while let Some(&slot) = self.free_bulk.last() {
            let Some((r, peer, tag, resp)) = self.mapping.pop_front() else {
                break;
            };
            let virt = self.ep.virt_addr();
            let bulk = rpc::parse_call(self.ep.message(r))
                .ok()
                .and_then(|c| map_bulk(c.hdr.opc, c.input))
                .map(|b| (b.key, b.remote_addr(virt, 0), b.len, b.writable()));
            let size = map_size(&resp);
            let (key, addr) = match bulk {
                Some((key, addr, len, true)) if len >= size as u64 => (key, addr),
                Some((_, _, len, true)) if len < size as u64 => {
                    // Too small: the client asks again with the size given (DER_TRUNC).
                    self.answered
                        .push_back((r, peer, tag, Done::Pool(Ok((resp, size as u32)))));
                    continue;
                }
                _ => {
                    self.inner
                        .complain("a pool connect or query without a writable map buffer");
                    self.answered
                        .push_back((r, peer, tag, Done::Pool(Err(der::INVAL))));
                    continue;
                }
            };
            let ranks = map_ranks(&resp);
            let written = cpool::write_pool_buf(self.ep.bulk_mut(slot), &ranks, resp.map_version);
            if written.is_err() {
                self.inner.complain(&format!(
                    "a pool map of {size} bytes is larger than the {BULK_MAX}-byte map buffers"
                ));
                self.answered
                    .push_back((r, peer, tag, Done::Pool(Err(der::NOSPACE))));
                continue;
            }
            let remote = daos_fabric::RemoteBuf {
                key,
                offset: addr,
                len: size as u32,
            };
            match self.ep.rma_write(peer, slot, remote, slot as u64) {
                Ok(()) => {
                    self.free_bulk.pop();
                    let size = size as u32;
                    self.pushing
                        .push((slot, r, peer, tag, Done::Pool(Ok((resp, size)))));
                    work += 1;
                }
                Err(EndpointError::Again) => {
                    self.mapping.push_front((r, peer, tag, resp));
                    break;
                }
                Err(e) => {
                    self.inner
                        .complain(&format!("pushing a pool map: {e} (DER_HG)"));
                    self.answered
                        .push_back((r, peer, tag, Done::Pool(Err(der::HG))));
                }
            }
        }
        while let Some(&slot) = self.free_bulk.last() {
            let Some((r, peer, tag, resp)) = self.listing.pop_front() else {
                break;
            };
            let virt = self.ep.virt_addr();
            let bulk = rpc::parse_call(self.ep.message(r))
                .ok()
                .and_then(|c| list_cont_in(c.input))
                .and_then(|(b, _)| b)
                .map(|b| (b.key, b.remote_addr(virt, 0), b.len, b.writable()));
            let size = resp.containers.len() * ccont::CONT_INFO_LEN;
            let (key, addr) = match bulk {
                Some((key, addr, len, true)) if len >= size as u64 && size <= BULK_MAX => {
                    (key, addr)
                }
                _ => {
                    // Too small (or none): answered with the count (DER_TRUNC).
                    self.answered
                        .push_back((r, peer, tag, Done::Cont(Ok(resp))));
                    continue;
                }
            };
            let buf = self.ep.bulk_mut(slot);
            for (i, c) in resp.containers.iter().enumerate() {
                let e = &mut buf[i * ccont::CONT_INFO_LEN..(i + 1) * ccont::CONT_INFO_LEN];
                e.fill(0);
                let n = c.uuid.len().min(16);
                e[..n].copy_from_slice(&c.uuid[..n]);
                let l = c.label.len().min(ccont::CONT_INFO_LEN - 16 - 1);
                e[16..16 + l].copy_from_slice(&c.label.as_bytes()[..l]);
            }
            let remote = daos_fabric::RemoteBuf {
                key,
                offset: addr,
                len: size as u32,
            };
            match self.ep.rma_write(peer, slot, remote, slot as u64) {
                Ok(()) => {
                    self.free_bulk.pop();
                    self.pushing
                        .push((slot, r, peer, tag, Done::Cont(Ok(resp))));
                    work += 1;
                }
                Err(EndpointError::Again) => {
                    self.listing.push_front((r, peer, tag, resp));
                    break;
                }
                Err(e) => {
                    self.inner
                        .complain(&format!("pushing a container list: {e}"));
                    self.answered
                        .push_back((r, peer, tag, Done::Cont(Err(der::HG))));
                }
            }
        }
        work
    }

    fn answer(&mut self, r: Received, peer: Peer, tag: u64) -> Result<(), EndpointError> {
        let inner = &mut self.inner;
        self.ep
            .reply_tagged(r, peer, tag, |req, out| inner.serve(req, out))
    }

    fn peer(&mut self, addr: &[u8; mercury::NA_ADDR_LEN]) -> Result<Peer, EndpointError> {
        if let Some((_, p)) = self.inner.peers.iter().find(|(a, _)| a == addr) {
            return Ok(*p);
        }
        let p = self.ep.insert_peer(addr)?;
        if self.inner.peers.len() == PEERS_MAX {
            self.inner.peers.remove(0);
        }
        self.inner.peers.push((*addr, p));
        Ok(p)
    }
}

impl Inner {
    /// The question for daos_server a request needs answered first, if it is a well-formed
    /// `MGMT_POOL_FIND` for this rank (anything else is answered at once, refusals included).
    fn question(&mut self, req: &[u8]) -> Option<Question> {
        let call = rpc::parse_call(req).ok()?;
        let opc = call.hdr.opc;
        if !(is_pool_find(opc)
            || pool_call_op(opc).is_some()
            || cont_op(opc).is_some()
            || is_list_cont(opc))
            || call.mercury.rpc_id != mercury::RPC_ID
            || call.mercury.flags & mercury::MORE_DATA != 0
            || call.hdr.dst_tag != 0
            || self.membership.rank.is_some_and(|r| r != call.hdr.dst_rank)
            || call.hdr.hlc & !hlc::MASK > hlc::from_unix_nanos(hlc::now_ns()) + hlc::EPSILON
        {
            return None;
        }
        if let Some(op) = pool_call_op(opc) {
            return pool_question(op, call.input);
        }
        if is_list_cont(opc) {
            let mut d = daos_cart::proc_::Decoder::new(call.input);
            let o = cpool::PoolOpIn::decode(&mut d).ok()?;
            list_cont_in(call.input)?;
            return Some(Question::Cont(ContCallReq {
                op: LIST_OP,
                pool: daos_wire::uuid_text(&o.uuid),
                pool_handle: o.handle.to_vec(),
                ..Default::default()
            }));
        }
        if let Some(index) = cont_op(opc) {
            let c = ccont::decode_in(index, call.input)?.ok()?;
            let pool = self.pool_of(&c.op.pool_handle)?;
            return Some(Question::Cont(cont_request(index, &c, &pool)));
        }
        let q = PoolFindIn::decode(call.input).ok()?;
        Some(if q.by_label {
            Question::PoolByLabel(q.label.unwrap_or_default().to_string())
        } else {
            Question::PoolSvc(q.uuid)
        })
    }

    /// The pool a DAOS client's pool handle names: connected here, or (its pool service
    /// pushed it to this engine) through another rank.
    fn pool_of(&self, handle: &[u8; 16]) -> Option<[u8; 16]> {
        self.pool_handles
            .iter()
            .find(|(h, _)| h == handle)
            .map(|(_, p)| *p)
            .or_else(|| {
                let pools = self.config.pools.as_ref()?;
                let uuid = pools.0.pool_of_handle(daos_wire::handle_cookie(handle))?;
                daos_wire::parse_uuid(&uuid)
            })
    }

    /// A container RPC's reply.
    fn cont_reply(
        &mut self,
        req: &[u8],
        out: &mut [u8],
        answer: &Result<ContCallResp, i32>,
    ) -> usize {
        let Ok(call) = rpc::parse_call(req) else {
            return 0;
        };
        let hlc = self.reply_hlc(call.hdr.hlc);
        if is_list_cont(call.hdr.opc) {
            let asked = list_cont_in(call.input).map_or(0, |(_, n)| n);
            let (mut rc, n) = match answer {
                Ok(r) => (r.status, r.containers.len() as u64),
                Err(rc) => (*rc, 0),
            };
            if rc == 0 && asked > 0 && n > asked {
                rc = der::TRUNC;
            }
            let op_out = PoolOpOut {
                rc,
                map_version: 0,
                hint_flags: cpool::HINT_VALID,
                hint_rank: self.membership.rank.unwrap_or(0),
                hint_term: HINT_TERM,
            };
            return rpc::write_reply(out, call.mercury.cookie, hlc, 0, |e| {
                op_out.encode(e)?;
                e.u64(n, "plco_ncont")
            })
            .unwrap_or(0);
        }
        let index = opcode::index_of(call.hdr.opc);
        let input = ccont::decode_in(index, call.input).and_then(Result::ok);
        let rc = match answer {
            Ok(r) => r.status,
            Err(rc) => *rc,
        };
        let op_out = PoolOpOut {
            rc,
            map_version: 0,
            hint_flags: cpool::HINT_VALID,
            hint_rank: self.membership.rank.unwrap_or(0),
            hint_term: HINT_TERM,
        };
        let resp = answer.as_ref().ok().filter(|_| rc == 0);
        rpc::write_reply(out, call.mercury.cookie, hlc, 0, |e| {
            op_out.encode(e)?;
            if index == ccont::op::OID_ALLOC {
                return e.u64(resp.map_or(0, |r| r.oid), "coao_oid");
            }
            if attrs::is_attr_list(call.hdr.opc) {
                // The names' total length (each with its NUL), whatever fitted the buffer.
                let size =
                    resp.map_or(0, |r| r.attrs.iter().map(|a| a.name.len() as u64 + 1).sum());
                return e.u64(size, "calo_size");
            }
            if !matches!(
                index,
                ccont::op::OPEN | ccont::op::OPEN_BYLABEL | ccont::op::QUERY
            ) {
                return Ok(());
            }
            let bits = input.as_ref().map_or(0, |c| c.bits);
            let props: Vec<(u32, cpool::PropValue)> = resp
                .map(|r| {
                    r.props
                        .iter()
                        .filter(|p| ccont::asked(bits, p.r#type))
                        .map(prop_value)
                        .collect()
                })
                .unwrap_or_default();
            cpool::write_props(e, &props)?;
            let uuid = resp.and_then(|r| <[u8; 16]>::try_from(&r.uuid[..]).ok());
            ccont::write_open_tail(
                e,
                &ccont::OpenTail {
                    nhandles: resp.map_or(0, |r| r.nhandles),
                    uuid: if index == ccont::op::OPEN_BYLABEL {
                        Some(uuid.unwrap_or_default())
                    } else {
                        None
                    },
                },
            )
        })
        .unwrap_or(0)
    }

    /// The reply to a request daos_server answered.
    fn finish(&mut self, req: &[u8], out: &mut [u8], done: &Done) -> usize {
        match done {
            Done::Cont(c) => self.cont_reply(req, out, c),
            Done::Found(f) => self.pool_find_reply(req, out, f),
            Done::SelfTest(iov) => {
                let Ok(call) = rpc::parse_call(req) else {
                    return 0;
                };
                let hlc = self.reply_hlc(call.hdr.hlc);
                rpc::write_reply(out, call.mercury.cookie, hlc, 0, |e| match iov {
                    Some(n) => fill_iov(e, *n),
                    None => Ok(()),
                })
                .unwrap_or(0)
            }
            Done::Pool(p) => self.pool_reply(req, out, p),
        }
    }

    /// A pool RPC's reply: `Ok((answer, map size))` (the map pushed, or too large for the
    /// client's buffer when its size is above the buffer's), or a DER code.
    fn pool_reply(
        &mut self,
        req: &[u8],
        out: &mut [u8],
        answer: &Result<(PoolCallResp, u32), i32>,
    ) -> usize {
        let Ok(call) = rpc::parse_call(req) else {
            return 0;
        };
        let hlc = self.reply_hlc(call.hdr.hlc);
        let cookie = call.mercury.cookie;
        let op = opcode::index_of(call.hdr.opc);
        let (resp, map_size) = match answer {
            Ok((resp, size)) => (Some(resp), *size),
            Err(_) => (None, 0),
        };
        let bulk_len = map_bulk(call.hdr.opc, call.input).map_or(0, |b| b.len);
        let mut rc = match (answer, resp) {
            (Err(rc), _) => *rc,
            (_, Some(r)) => r.status,
            _ => der::MISC,
        };
        if rc == 0
            && (op == cpool::op::CONNECT || op == cpool::op::QUERY || map_size > 0)
            && u64::from(map_size) > bulk_len
        {
            rc = der::TRUNC;
        }
        let op_out = PoolOpOut {
            rc,
            map_version: resp.map_or(0, |r| r.map_version),
            hint_flags: cpool::HINT_VALID,
            hint_rank: self.membership.rank.unwrap_or(0),
            hint_term: HINT_TERM,
        };
        let space = resp.map(space_of).unwrap_or_default();
        let rebuild = cpool::RebuildStatus {
            version: resp.map_or(0, |r| r.rebuild_version),
            state: resp.map_or(1, |r| r.rebuild_state as i32),
            max_layout_version: cpool::OBJ_LAYOUT_VERSION as u16,
            ..Default::default()
        };
        let written = rpc::write_reply(out, cookie, hlc, 0, |e| {
            op_out.encode(e)?;
            match op {
                cpool::op::CONNECT => {
                    space.encode(e)?;
                    rebuild.encode(e)?;
                    e.u32(map_size, "pco_map_buf_size")
                }
                cpool::op::QUERY => {
                    let props: Vec<(u32, cpool::PropValue)> = resp
                        .map(|r| {
                            r.props
                                .iter()
                                .map(|p| {
                                    let v = if p.r#type == cpool::PROP_ACL {
                                        cpool::PropValue::Iov(p.raw.clone())
                                    } else if p.r#type == cpool::PROP_SVC_LIST {
                                        cpool::PropValue::Ranks(
                                            p.raw
                                                .chunks_exact(4)
                                                .map(|c| {
                                                    u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                                                })
                                                .collect(),
                                        )
                                    } else if p.is_text {
                                        cpool::PropValue::Text(p.text.clone())
                                    } else {
                                        cpool::PropValue::Num(p.num)
                                    };
                                    (p.r#type, v)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    cpool::write_props(e, &props)?;
                    space.encode(e)?;
                    rebuild.encode(e)?;
                    e.u32(map_size, "pqo_map_buf_size")?;
                    e.u32(POOL_GLOBAL_VERSION, "pqo_pool_layout_ver")?;
                    e.u32(POOL_GLOBAL_VERSION, "pqo_upgrade_layout_ver")
                }
                cpool::op::TGT_QUERY_MAP => e.u32(map_size, "tmo_map_buf_size"),
                _ => Ok(()),
            }
        });
        written.unwrap_or(0)
    }

    /// The clock a reply carries, having taken in the request's.
    fn reply_hlc(&mut self, msg: u64) -> u64 {
        let now = hlc::now_ns();
        match self.hlc.get_msg(msg, now) {
            Ok(h) => h,
            Err(_) => self.hlc.get(now),
        }
    }

    /// MGMT_POOL_FIND's reply once daos_server answered.
    fn pool_find_reply(&mut self, req: &[u8], out: &mut [u8], found: &Found) -> usize {
        let Ok(call) = rpc::parse_call(req) else {
            return 0;
        };
        let asked = PoolFindIn::decode(call.input).map_or([0; 16], |q| q.uuid);
        let now = hlc::now_ns();
        let hlc = match self.hlc.get_msg(call.hdr.hlc, now) {
            Ok(h) => h,
            Err(_) => self.hlc.get(now),
        };
        let (uuid, ranks, rc) = match found {
            Ok((uuid, ranks)) => (*uuid, ranks.as_slice(), 0),
            Err(rc) => (asked, &[][..], *rc),
        };
        rpc::write_reply(out, call.mercury.cookie, hlc, 0, |e| {
            PoolFindOut::encode(e, &uuid, ranks, rc)
        })
        .unwrap_or(0)
    }

    /// Logs a problem, at most once a second (a misbehaving client can cause many).
    fn complain(&mut self, what: &str) {
        let now = Instant::now();
        if self
            .last_complaint
            .is_some_and(|t| now.duration_since(t).as_secs() < 1)
        {
            return;
        }
        self.last_complaint = Some(now);
        crate::dlog!(Subsys::Server, Level::Warn, "context 0: {what}");
    }

    /// Answers one request into `out`; returns the reply's length.
    fn serve(&mut self, req: &[u8], out: &mut [u8]) -> usize {
        if let Ok(m) = mercury::parse_request(req)
            && m.rpc_id != mercury::RPC_ID
        {
            // Mercury answers an RPC id nobody registered so, before any CaRT decoding.
            return rpc::write_hg_error(out, m.cookie, HgReturn::NoEntry).unwrap_or(0);
        }
        let written = match rpc::parse_call(req) {
            Ok(call) => self.call(&call, req, out),
            Err(e) => {
                let cookie = mercury::parse_request(req).map_or(0, |m| m.cookie);
                self.complain(&format!("refused a request: {e}"));
                rpc::write_hg_error(out, cookie, HgReturn::ProtocolError)
            }
        };
        written.unwrap_or_else(|e| {
            // The output did not fit the client's buffer: say so in the header alone.
            self.complain(&format!("reply does not fit: {e}"));
            let cookie = mercury::parse_request(req).map_or(0, |m| m.cookie);
            let hlc = self.hlc.get(hlc::now_ns());
            rpc::write_reply(out, cookie, hlc, der::OVERFLOW, |_| Ok(())).unwrap_or(0)
        })
    }

    fn call(
        &mut self,
        call: &rpc::Call<'_>,
        req: &[u8],
        out: &mut [u8],
    ) -> Result<usize, CartError> {
        let cookie = call.mercury.cookie;
        if call.mercury.flags & mercury::MORE_DATA != 0 {
            // Inputs beyond 20 KiB: nothing served here takes one.
            self.complain("a request larger than 20 KiB (more data) to context 0");
            return rpc::write_hg_error(out, cookie, HgReturn::MsgSize);
        }
        let now = hlc::now_ns();
        if let Err(ahead) = self.hlc.get_msg(call.hdr.hlc, now) {
            self.complain(&format!(
                "opcode {:#x}: the sender's clock is {} ms ahead (more than 1 s): DER_HLC_SYNC",
                call.hdr.opc,
                ahead / 1_000_000
            ));
            let hlc = self.hlc.get(now);
            return rpc::write_reply(out, cookie, hlc, der::HLC_SYNC, |_| Ok(()));
        }
        let hlc = self.hlc.get(now);
        let wrong_rank = self.membership.rank.is_some_and(|r| r != call.hdr.dst_rank);
        if wrong_rank || call.hdr.dst_tag != 0 {
            return rpc::write_reply(out, cookie, hlc, der::BAD_TARGET, |_| Ok(()));
        }
        let input = call.input;
        match call.hdr.opc {
            opcode::URI_LOOKUP => {
                let q = UriLookupIn::decode(input);
                let reply = match q {
                    Ok(q) => self.uri_lookup(&q),
                    Err(e) => {
                        self.complain(&format!("URI_LOOKUP: {e}"));
                        return rpc::write_reply(out, cookie, hlc, der::MISC, |_| Ok(()));
                    }
                };
                rpc::write_reply(out, cookie, hlc, 0, |e| {
                    UriLookupOut {
                        uri: reply.0.as_deref(),
                        tag: reply.1,
                        rc: reply.2,
                    }
                    .encode(e)
                })
            }
            opcode::PROTO_QUERY => match ProtoQueryIn::decode(input) {
                Ok(q) => {
                    let (version, rc) = match opcode::choose_version(q.base_opc, q.versions()) {
                        Ok(v) => (v, 0),
                        Err(rc) => (0, rc),
                    };
                    rpc::write_reply(out, cookie, hlc, 0, |e| {
                        ProtoQueryOut { version, rc }.encode(e)
                    })
                }
                Err(e) => {
                    self.complain(&format!("PROTO_QUERY: {e}"));
                    rpc::write_reply(out, cookie, hlc, der::MISC, |_| Ok(()))
                }
            },
            opc if opcode::module_of(opc) == opcode::module::MGMT
                && opcode::index_of(opc) == opcode::mgmt::PARAMS_SET
                && opcode::served_versions(opcode::module::MGMT)
                    .contains(&opcode::version_of(opc)) =>
            {
                // As DAOS's release engines (built without fault injection): the parameters
                // (fail_loc, ...) are taken and change nothing.
                let mut d = daos_cart::proc_::Decoder::new(input);
                let parsed = (|| -> Result<(u32, u32, u64), CartError> {
                    let rank = d.u32("ps_rank")?;
                    let key = d.u32("ps_key_id")?;
                    let value = d.u64("ps_value")?;
                    d.u64("ps_value_extra")?;
                    Ok((rank, key, value))
                })();
                let rc = match parsed {
                    Ok((rank, key, value)) => {
                        crate::dlog!(
                            Subsys::Mgmt,
                            Level::Debug,
                            "MGMT_PARAMS_SET rank {rank} key {key} value {value:#x}: no fault injection in this engine; ignored"
                        );
                        0
                    }
                    Err(e) => {
                        self.complain(&format!("MGMT_PARAMS_SET: {e}"));
                        der::INVAL
                    }
                };
                rpc::write_reply(out, cookie, hlc, 0, |e| e.i32(rc, "srv_rc"))
            }
            opc if is_pool_find(opc) => {
                // Not handed to daos_server (no link, its queue full, or bad input).
                let (uuid, rc) = match PoolFindIn::decode(input) {
                    Ok(q) => (q.uuid, der::BUSY),
                    Err(e) => {
                        self.complain(&format!("MGMT_POOL_FIND: {e}"));
                        return rpc::write_reply(out, cookie, hlc, der::MISC, |_| Ok(()));
                    }
                };
                rpc::write_reply(out, cookie, hlc, 0, |e| {
                    PoolFindOut::encode(e, &uuid, &[], rc)
                })
            }
            self_test::SEND_BULK_REPLY_IOV => {
                // No such session, or a buffer that cannot be moved: CaRT's service answers
                // with an empty body.
                rpc::write_reply(out, cookie, hlc, 0, |e| e.iov(&[], "reply"))
            }
            self_test::SEND_IOV_REPLY_BULK | self_test::BOTH_BULK => {
                rpc::write_reply(out, cookie, hlc, 0, |_| Ok(()))
            }
            self_test::BOTH_EMPTY | self_test::SEND_IOV_REPLY_EMPTY => {
                rpc::write_reply(out, cookie, hlc, 0, |_| Ok(()))
            }
            self_test::OPEN_SESSION => {
                let id = match SessionParams::decode(input) {
                    Ok(p) => self.open_session(p),
                    Err(e) => {
                        self.complain(&format!("self-test OPEN_SESSION: {e}"));
                        return rpc::write_reply(out, cookie, hlc, der::MISC, |_| Ok(()));
                    }
                };
                rpc::write_reply(out, cookie, hlc, 0, |e| e.u64(id as u64, "session_id"))
            }
            self_test::CLOSE_SESSION => {
                let mut d = daos_cart::proc_::Decoder::new(input);
                if let Ok(id) = d.u64("session_id") {
                    self.sessions.retain(|(s, _)| *s != id);
                }
                rpc::write_reply(out, cookie, hlc, 0, |_| Ok(()))
            }
            self_test::SEND_ID_REPLY_IOV | self_test::BOTH_IOV => {
                let mut d = daos_cart::proc_::Decoder::new(input);
                let size = d
                    .u64("session_id")
                    .ok()
                    .and_then(|id| self.sessions.iter().find(|(s, _)| *s == id))
                    .map(|(_, p)| p.reply_size as usize);
                let Some(size) = size else {
                    // CaRT's service answers an unknown session with an empty body.
                    return rpc::write_reply(out, cookie, hlc, 0, |e| e.iov(&[], "reply"));
                };
                rpc::write_reply(out, cookie, hlc, 0, |e| fill_iov(e, size))
            }
            opc if cont_op(opc).is_some() => {
                // Not handed to daos_server: a pool handle that did not connect here, input
                // that does not decode, or no link to daos_server.
                let index = cont_op(opc).unwrap_or(0);
                let rc = match ccont::decode_in(index, input) {
                    Some(Ok(c)) if self.pool_of(&c.op.pool_handle).is_none() => der::NO_HDL,
                    Some(Ok(_)) => der::BUSY,
                    _ => der::INVAL,
                };
                Ok(self.cont_reply(req, out, &Err(rc)))
            }
            opc if attrs::is_attr(opc) => {
                // Not taken by the attribute transfers: input that does not decode (or a
                // handle larger than a slot), a pool handle that did not connect here, or
                // no link to daos_server.
                let rc = match attrs::decode(opc, input) {
                    Some(Ok(a)) if !a.pool && self.pool_of(&a.op.pool_handle).is_none() => {
                        der::NO_HDL
                    }
                    Some(Ok(a)) if a.bulk.as_ref().is_some_and(|b| b.len > BULK_MAX as u64) => {
                        der::INVAL
                    }
                    Some(Ok(_)) => der::BUSY,
                    _ => der::INVAL,
                };
                let op_out = PoolOpOut {
                    rc,
                    map_version: 0,
                    hint_flags: cpool::HINT_VALID,
                    hint_rank: self.membership.rank.unwrap_or(0),
                    hint_term: HINT_TERM,
                };
                rpc::write_reply(out, cookie, hlc, 0, |e| {
                    op_out.encode(e)?;
                    if attrs::is_attr_list(opc) {
                        e.u64(0, "calo_size")?;
                    }
                    Ok(())
                })
            }
            opc if is_list_cont(opc) => {
                let rc = if list_cont_in(input).is_some() {
                    der::BUSY
                } else {
                    der::INVAL
                };
                Ok(self.cont_reply(req, out, &Err(rc)))
            }
            opc if pool_call_op(opc).is_some() => {
                // Not handed to daos_server: no link, its queue full, or input that does not
                // decode.
                let rc = match pool_question(pool_call_op(opc).unwrap_or(0), input) {
                    Some(_) => der::BUSY,
                    None => der::INVAL,
                };
                rpc::write_refusal(out, cookie, hlc, rc)
            }
            opc if opcode::served_versions(opcode::module_of(opc))
                .contains(&opcode::version_of(opc))
                && matches!(
                    opcode::module_of(opc),
                    opcode::module::POOL | opcode::module::CONT | opcode::module::OBJ
                ) =>
            {
                self.complain(&format!(
                    "opcode {opc:#010x} (module {}, index {}) is not served yet: DER_NOSYS",
                    opcode::module_of(opc),
                    opcode::index_of(opc)
                ));
                rpc::write_refusal(out, cookie, hlc, der::NOSYS)
            }
            opc => {
                self.complain(&format!(
                    "opcode {opc:#010x} (module {}, version {}, index {}) is not served: DER_UNREG",
                    opcode::module_of(opc),
                    opcode::version_of(opc),
                    opcode::index_of(opc)
                ));
                rpc::write_reply(out, cookie, hlc, der::UNREG, |_| Ok(()))
            }
        }
    }

    /// URI_LOOKUP's answer: (URI, tag, rc).
    fn uri_lookup(&self, q: &UriLookupIn<'_>) -> (Option<String>, u32, i32) {
        if q.grp.is_some_and(|g| g != self.config.group) {
            return (None, q.tag, der::INVAL);
        }
        if q.tag >= TAGS_MAX {
            return (None, q.tag, der::INVAL);
        }
        if self.membership.rank.is_none_or(|r| r == q.rank) {
            // Tag 1 is SWIM's, which this engine runs outside CaRT.
            let served = q.tag == 0 || (q.tag >= 2 && q.tag < 2 + self.config.targets);
            return if served {
                (Some(self.config.uri(q.tag)), q.tag, 0)
            } else {
                (None, q.tag, der::NONEXIST)
            };
        }
        match self.membership.group.peers.get(&q.rank) {
            Some(p) => match with_port_offset(&p.uri, q.tag) {
                Some(uri) => (Some(uri), q.tag, 0),
                None => (Some(p.uri.clone()), 0, 0),
            },
            None => (None, q.tag, der::OOG),
        }
    }

    /// What a self-test message of an open session moves by bulk (SEND_BULK_REPLY_IOV,
    /// SEND_IOV_REPLY_BULK, BOTH_BULK), if it is one for this rank and tag.
    fn self_test_bulk(&self, req: &[u8]) -> Option<SelfTestMove> {
        let call = rpc::parse_call(req).ok()?;
        let op = call.hdr.opc;
        if ![
            self_test::SEND_BULK_REPLY_IOV,
            self_test::SEND_IOV_REPLY_BULK,
            self_test::BOTH_BULK,
        ]
        .contains(&op)
            || call.hdr.dst_tag != 0
            || self.membership.rank.is_some_and(|r| r != call.hdr.dst_rank)
        {
            return None;
        }
        let mut d = daos_cart::proc_::Decoder::new(call.input);
        let id = d.u64("session_id").ok()?;
        if op == self_test::SEND_IOV_REPLY_BULK {
            d.iov("buf").ok()?;
        }
        let bulk = daos_cart::bulk::decode(&mut d, "bulk").ok()??;
        let (_, p) = self.sessions.iter().find(|(s, _)| *s == id)?;
        let len = (bulk.len as usize).min(BULK_MAX);
        let pull = if op == self_test::SEND_IOV_REPLY_BULK {
            0
        } else {
            (p.send_size as usize).min(len)
        };
        let push = if op == self_test::SEND_BULK_REPLY_IOV {
            0
        } else {
            (p.reply_size as usize).min(len)
        };
        // Inline data needs no pull (the message is not kept).
        let pull = if bulk.eager.is_some() { 0 } else { pull };
        let readable = pull == 0 || bulk.readable();
        let writable = push == 0 || bulk.writable();
        if !readable || !writable {
            return None;
        }
        Some(SelfTestMove {
            key: bulk.key,
            addr: bulk.addr,
            pull,
            push,
            reply_iov: (op == self_test::SEND_BULK_REPLY_IOV).then_some(p.reply_size as usize),
        })
    }

    /// Opens a self-test session; -1 when the table is full.
    fn open_session(&mut self, p: SessionParams) -> i64 {
        if self.sessions.len() == SESSIONS_MAX {
            return -1;
        }
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.push((id, p));
        id as i64
    }
}

/// Serves one message as context 0 would (rank 1 of system `daos_server`, two targets, no
/// daos_server to ask), without an endpoint: the fuzz target `cart` drives every decoder and
/// handler of the context through it. Returns the reply's length (0: none).
pub fn serve_detached(msg: &[u8], out: &mut [u8]) -> usize {
    let mut inner = Inner {
        config: ContextConfig {
            provider: "tcp;ofi_rxm".into(),
            uri_provider: "ofi+tcp;ofi_rxm".into(),
            host: "127.0.0.1".into(),
            port: 31416,
            group: "daos_server".into(),
            targets: 2,
            server_sock: None,
            pools: None,
        },
        membership: Membership {
            rank: Some(1),
            group: Arc::default(),
        },
        peers: Vec::new(),
        hlc: hlc::Hlc::default(),
        sessions: Vec::new(),
        pool_handles: vec![([1; 16], [2; 16])],
        next_session: 1,
        last_complaint: Some(Instant::now()),
    };
    if let Some(st) = inner.self_test_bulk(msg) {
        // Served once its bulk moved: the reply it gets then.
        return inner.finish(msg, out, &Done::SelfTest(st.reply_iov));
    }
    if let Some(Question::Cont(_)) = inner.question(msg) {
        let resp = ContCallResp {
            uuid: vec![5; 16],
            props: vec![PoolProp {
                r#type: 0x1002,
                num: 1,
                ..Default::default()
            }],
            nhandles: 1,
            ..Default::default()
        };
        return inner.finish(msg, out, &Done::Cont(Ok(resp)));
    }
    if let Some(Question::Pool(_)) = inner.question(msg) {
        // The answer daos_server would give, encoded as the engine replies it.
        let resp = PoolCallResp {
            map_version: 3,
            ranks: vec![daos_drpc::srv::MapRank {
                rank: 1,
                domain: "/h".into(),
                targets: vec![4, 8],
            }],
            ..Default::default()
        };
        return inner.finish(msg, out, &Done::Pool(Ok((resp, 160))));
    }
    inner.serve(msg, out)
}

/// What a self-test message moves by bulk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SelfTestMove {
    /// The client's buffer: key and virtual address (RMA names its first byte by that address
    /// or by offset 0, see [`Self::remote`]).
    key: u64,
    addr: u64,
    /// Bytes to pull from it (the message), then to push into it (the reply).
    pull: usize,
    push: usize,
    /// The reply's iov size, for SEND_BULK_REPLY_IOV.
    reply_iov: Option<usize>,
}

impl SelfTestMove {
    fn remote(&self, virt: bool, len: usize) -> daos_fabric::RemoteBuf {
        daos_fabric::RemoteBuf {
            key: self.key,
            offset: if virt { self.addr } else { 0 },
            len: len as u32,
        }
    }
}

/// A self-test message in progress in a bulk slot.
struct SelfTestBulk {
    slot: usize,
    r: Received,
    peer: Peer,
    tag: u64,
    st: SelfTestMove,
    /// The push (not the pull) is under way.
    pushing: bool,
}

/// What a request waits for before its reply.
#[derive(Clone, Debug, PartialEq)]
enum Done {
    Found(Found),
    /// A pool call's answer and its map's size, or a DER code.
    Pool(Result<(PoolCallResp, u32), i32>),
    /// A self-test message whose bulk moved: its reply's iov size (`None`: an empty reply).
    SelfTest(Option<usize>),
    /// A container call's answer, or a DER code.
    Cont(Result<ContCallResp, i32>),
}

/// `ContCallReq.op` of a pool's container list.
const LIST_OP: u32 = 100;

/// Whether `opc` is POOL_LIST_CONT of a pool version served.
fn is_list_cont(opc: u32) -> bool {
    opcode::module_of(opc) == opcode::module::POOL
        && opcode::index_of(opc) == cpool::op::LIST_CONT
        && opcode::served_versions(opcode::module::POOL).contains(&opcode::version_of(opc))
}

/// POOL_LIST_CONT's bulk and count of entries the client has room for.
fn list_cont_in(input: &[u8]) -> Option<(Option<daos_cart::bulk::Bulk<'_>>, u64)> {
    let mut d = daos_cart::proc_::Decoder::new(input);
    cpool::PoolOpIn::decode(&mut d).ok()?;
    let bulk = daos_cart::bulk::decode(&mut d, "plci_cont_bulk").ok()?;
    let n = d.u64("plci_ncont").ok()?;
    Some((bulk, n))
}

/// The container op index of a container RPC this context hands to daos_server.
fn cont_op(opc: u32) -> Option<u16> {
    if opcode::module_of(opc) != opcode::module::CONT
        || !opcode::served_versions(opcode::module::CONT).contains(&opcode::version_of(opc))
    {
        return None;
    }
    let index = opcode::index_of(opc);
    ccont::decode_in(index, &[]).map(|_| index)
}

/// daos_server's question for container op `index`.
fn cont_request(index: u16, c: &ContIn, pool: &[u8; 16]) -> ContCallReq {
    let props = c
        .props
        .iter()
        .map(|(t, v)| {
            let p = match v {
                cpool::PropValue::Num(n) => PoolProp {
                    num: *n,
                    ..Default::default()
                },
                cpool::PropValue::Text(s) => PoolProp {
                    is_text: true,
                    text: s.clone(),
                    ..Default::default()
                },
                cpool::PropValue::Raw(b) => PoolProp {
                    is_text: true,
                    text: b.iter().map(|x| format!("{x:02x}")).collect(),
                    ..Default::default()
                },
                // ACLs: DAOS's binary form, which daos_server reads.
                cpool::PropValue::Iov(b) => PoolProp {
                    raw: b.clone(),
                    ..Default::default()
                },
                cpool::PropValue::Ranks(r) => PoolProp {
                    raw: r.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    ..Default::default()
                },
            };
            PoolProp { r#type: *t, ..p }
        })
        .collect();
    ContCallReq {
        op: u32::from(index),
        pool: daos_wire::uuid_text(pool),
        pool_handle: c.op.pool_handle.to_vec(),
        cont: c.op.uuid.to_vec(),
        cont_handle: c.op.handle.to_vec(),
        label: c.label.clone().unwrap_or_default(),
        flags: if index == ccont::op::QUERY {
            c.bits
        } else {
            c.flags
        },
        force: matches!(index, ccont::op::DESTROY | ccont::op::DESTROY_BYLABEL) && c.flags != 0,
        props,
        ..Default::default()
    }
}

/// A property from daos_server as the wire carries it (the roots back to their 64 bytes).
fn prop_value(p: &PoolProp) -> (u32, cpool::PropValue) {
    let v = if p.r#type == ccont::PROP_ROOTS {
        let raw: Vec<u8> = (0..p.text.len() / 2)
            .filter_map(|i| u8::from_str_radix(p.text.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        let mut b = vec![0u8; 64];
        let n = raw.len().min(64);
        b[..n].copy_from_slice(&raw[..n]);
        cpool::PropValue::Raw(b)
    } else if p.r#type == ccont::PROP_ACL {
        cpool::PropValue::Iov(p.raw.clone())
    } else if p.is_text {
        cpool::PropValue::Text(p.text.clone())
    } else {
        cpool::PropValue::Num(p.num)
    };
    (p.r#type, v)
}

/// The `PoolCallReq.op` of a pool RPC this context hands to daos_server.
fn pool_call_op(opc: u32) -> Option<u32> {
    if opcode::module_of(opc) != opcode::module::POOL
        || !opcode::served_versions(opcode::module::POOL).contains(&opcode::version_of(opc))
    {
        return None;
    }
    match opcode::index_of(opc) {
        cpool::op::CONNECT => Some(1),
        cpool::op::DISCONNECT => Some(2),
        // A map refresh asks daos_server what a query does: the map and its version.
        cpool::op::QUERY | cpool::op::TGT_QUERY_MAP => Some(3),
        _ => None,
    }
}

/// daos_server's question for pool RPC `op` with input `input`, if it decodes.
fn pool_question(op: u32, input: &[u8]) -> Option<Question> {
    let mut d = daos_cart::proc_::Decoder::new(input);
    let (pool, handle, cred, flags, space) = match op {
        1 => {
            let c = cpool::ConnectIn::decode(input).ok()?;
            (c.op.uuid, c.op.handle, c.cred.to_vec(), c.flags, false)
        }
        2 => {
            let o = cpool::PoolOpIn::decode(&mut d).ok()?;
            (o.uuid, o.handle, Vec::new(), 0, false)
        }
        _ => match cpool::QueryIn::decode(input) {
            Ok(q) => (
                q.op.uuid,
                q.op.handle,
                Vec::new(),
                q.query_bits,
                q.query_bits & 1 != 0,
            ),
            Err(_) => {
                let q = cpool::TgtQueryMapIn::decode(input).ok()?;
                (q.op.uuid, q.op.handle, Vec::new(), 0, false)
            }
        },
    };
    // For a query, `flags` holds its query bits: the property bits go along.
    let (flags, prop_bits) = if op == 3 {
        (0, flags & !0xFFFF)
    } else {
        (flags, 0)
    };
    Some(Question::Pool(PoolCallReq {
        op,
        uuid: daos_wire::uuid_text(&pool),
        handle_uuid: handle.to_vec(),
        cred,
        flags,
        space,
        prop_bits,
    }))
}

/// The map bulk of a pool connect or query.
fn map_bulk(opc: u32, input: &[u8]) -> Option<daos_cart::bulk::Bulk<'_>> {
    match opcode::index_of(opc) {
        cpool::op::CONNECT => cpool::ConnectIn::decode(input).ok()?.map_bulk,
        cpool::op::QUERY => cpool::QueryIn::decode(input).ok()?.map_bulk,
        cpool::op::TGT_QUERY_MAP => cpool::TgtQueryMapIn::decode(input).ok()?.map_bulk,
        _ => None,
    }
}

/// The pool map of daos_server's answer, in the codec's form.
fn map_ranks(resp: &PoolCallResp) -> Vec<MapRank> {
    resp.ranks
        .iter()
        .map(|r| MapRank {
            rank: r.rank,
            domain: r.domain.clone(),
            targets: r.targets.iter().map(|s| *s as u8).collect(),
        })
        .collect()
}

/// The size of the pool buffer of daos_server's answer.
fn map_size(resp: &PoolCallResp) -> usize {
    cpool::pool_buf_size(cpool::components(&map_ranks(resp)))
}

/// The pool's space from daos_server's answer (zero when not asked).
fn space_of(resp: &PoolCallResp) -> cpool::Space {
    let v = |i: usize| resp.space.get(i).copied().unwrap_or(0);
    cpool::Space {
        total: [v(0), v(1)],
        free: [v(2), v(3)],
        free_min: [v(4), v(5)],
        free_max: [v(6), v(7)],
        free_mean: [v(8), v(9)],
        targets: resp.targets,
    }
}

/// Whether `opc` is MGMT_POOL_FIND of a management version served.
fn is_pool_find(opc: u32) -> bool {
    opcode::module_of(opc) == opcode::module::MGMT
        && opcode::index_of(opc) == opcode::mgmt::POOL_FIND
        && opcode::served_versions(opcode::module::MGMT).contains(&opcode::version_of(opc))
}

/// A self-test reply iov of `size` bytes (capped by the room left).
fn fill_iov(e: &mut Encoder<'_>, size: usize) -> Result<(), CartError> {
    let size = size.min(e.remaining().saturating_sub(16));
    e.u64(size as u64, "reply")?;
    e.u64(size as u64, "reply")?;
    e.take(size, "reply")?.fill(SELF_TEST_FILL);
    Ok(())
}

/// `provider://host:port` with the port moved up by `tag` (DAOS's contiguous context ports).
fn with_port_offset(uri: &str, tag: u32) -> Option<String> {
    let (head, port) = uri.rsplit_once(':')?;
    let port: u32 = port.parse().ok()?;
    let p = port
        .checked_add(tag)
        .filter(|p| *p <= u32::from(u16::MAX))?;
    Some(format!("{head}:{p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_ranks_tags_are_their_base_port_plus_the_tag() {
        assert_eq!(
            with_port_offset("ofi+tcp;ofi_rxm://10.0.0.2:31416", 3).as_deref(),
            Some("ofi+tcp;ofi_rxm://10.0.0.2:31419")
        );
        assert_eq!(with_port_offset("ofi+tcp://h:65535", 1), None);
        assert_eq!(with_port_offset("nonsense", 1), None);
    }
}
