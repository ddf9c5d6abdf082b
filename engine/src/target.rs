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
use std::time::{Duration, Instant};

use daos_hw::fabric::{EndpointError, Peer, RdmEndpoint, Received};

use crate::pool::{PoolError, PoolStore, TargetStore};
use crate::store::StoreError;
use crate::wire::{self, ADDR_MAX, Header, PunchWhat, Request, Writer, der};

/// Largest fabric message: a 1 MiB value plus headers.
pub const MSG_MAX: usize = (1 << 20) + 8192;
/// Send buffers per target.
pub const SEND_SLOTS: usize = 16;
/// Receive buffers per target (requests in flight from all clients).
pub const RECV_SLOTS: usize = 64;
/// Most peers (client endpoints) a target remembers; the oldest is forgotten beyond that.
pub const PEERS_MAX: usize = 256;

/// The reserved container and object holding a pool's container table.
const CONT_TABLE: (u128, u128) = (0, 0);
const UUID_AKEY: &[u8] = b"uuid";

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

/// libfabric's provider name for a DAOS provider string (`ofi+tcp` → `tcp;ofi_rxm`).
pub fn libfabric_provider(daos: &str) -> String {
    let p = daos.strip_prefix("ofi+").unwrap_or(daos);
    match p {
        "tcp" | "verbs" => format!("{p};ofi_rxm"),
        _ => p.to_string(),
    }
}

/// The fabric port of target `t` of an engine whose base port is `base` (context 0, the system
/// context, has the base port; target `t` is context `t + 1`).
pub fn target_port(base: u16, t: u32) -> u16 {
    base.saturating_add(1 + t as u16)
}

/// One target's I/O service.
pub struct TargetService {
    index: u32,
    pools: Arc<PoolStore>,
    ep: RdmEndpoint,
    held: Vec<Received>,
    waiting: VecDeque<Received>,
    peers: Vec<([u8; ADDR_MAX], u8, Peer)>,
    stores: HashMap<[u8; 16], TargetStore>,
    last_error: Option<Instant>,
}

impl TargetService {
    /// Opens the target's endpoint.
    pub fn open(
        index: u32,
        pools: Arc<PoolStore>,
        at: &Endpoint,
    ) -> Result<TargetService, EndpointError> {
        let ep = RdmEndpoint::open(
            &at.provider,
            Some(&at.node),
            Some(&at.port.to_string()),
            MSG_MAX,
            SEND_SLOTS,
            RECV_SLOTS,
        )?;
        Ok(TargetService {
            index,
            pools,
            ep,
            held: Vec::with_capacity(RECV_SLOTS),
            waiting: VecDeque::with_capacity(RECV_SLOTS),
            peers: Vec::with_capacity(PEERS_MAX),
            stores: HashMap::new(),
            last_error: None,
        })
    }

    /// Closes the pool's store (before the pool is destroyed).
    pub fn close_pool(&mut self, uuid: &str) {
        if let Some(u) = wire::parse_uuid(uuid) {
            self.stores.remove(&u);
        }
    }

    /// Serves what has arrived; returns how many requests and completions it handled.
    pub fn poll(&mut self) -> usize {
        let mut work = match self.ep.poll_held(&mut self.held) {
            Ok(n) => n,
            Err(e) => {
                self.complain(&e);
                1
            }
        };
        self.waiting.extend(self.held.drain(..));
        while let Some(&r) = self.waiting.front() {
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
            let Self {
                ep,
                stores,
                pools,
                index,
                ..
            } = self;
            let sent = ep.reply(r, peer, |req, resp| {
                handle(*index, pools, stores, &header, req, resp)
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
        work
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

fn store_status(e: &StoreError) -> i32 {
    match e {
        StoreError::Checksum { .. } => der::CSUM,
        StoreError::LogFull | StoreError::BdevFull => der::NOSPACE,
        StoreError::TooLarge => der::INVAL,
        StoreError::Io(_) => der::IO,
    }
}

fn store_error(h: &Header, resp: &mut [u8], e: &StoreError) -> usize {
    let text = match e {
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
    };
    wire::encode_error(resp, h, store_status(e), &text)
}

/// Answers one request; returns the reply's length.
fn handle(
    index: u32,
    pools: &PoolStore,
    stores: &mut HashMap<[u8; 16], TargetStore>,
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
        Err(e) => return wire::encode_error(resp, h, der::INVAL, &format!("bad request: {e}")),
    };
    let mut reply = *h;
    reply.status = 0;
    if let Request::Ping = request {
        return Writer::body(resp).finish(reply).unwrap_or(0);
    }
    if let std::collections::hash_map::Entry::Vacant(slot) = stores.entry(h.pool) {
        match pools.open_target(&wire::uuid_text(&h.pool), index) {
            Ok(s) => {
                slot.insert(s);
            }
            Err(e) => {
                let code = match e {
                    PoolError::NotFound(_) => der::NONEXIST,
                    _ => der::IO,
                };
                return wire::encode_error(resp, h, code, &e.to_string());
            }
        }
    }
    let Some(store) = stores.get_mut(&h.pool) else {
        return wire::encode_error(resp, h, der::IO, "pool store vanished");
    };
    let cont = u128::from_le_bytes(h.cont);
    let mut w = Writer::body(resp);
    let done: Result<(), StoreError> = (|| {
        match request {
            Request::Ping => {}
            Request::Update {
                oid,
                dkey,
                akey,
                value,
            } => {
                let e = store.update(cont, oid, dkey, akey, value)?;
                w.u64(e);
            }
            Request::WriteExtent {
                oid,
                dkey,
                akey,
                offset,
                data,
            } => {
                let e = store.write_extent(cont, oid, dkey, akey, offset, data)?;
                w.u64(e);
            }
            Request::Fetch { oid, dkey, akey } => {
                match store.fetch(cont, oid, dkey, akey, u64::MAX)? {
                    Some(v) => {
                        w.u8(1).value(&v);
                    }
                    None => {
                        w.u8(0);
                    }
                }
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
                let v = store.read_extent(key, offset, len as usize, u64::MAX)?;
                w.value(&v);
            }
            Request::Punch { oid, what } => {
                let e = match what {
                    PunchWhat::Object => store.punch(cont, oid, None, None)?,
                    PunchWhat::Dkey(d) => store.punch(cont, oid, Some(d), None)?,
                    PunchWhat::Akey(d, a) => store.punch(cont, oid, Some(d), Some(a))?,
                };
                w.u64(e);
            }
            Request::ListDkeys { oid, after } => {
                let keys = store.list_dkeys(cont, oid);
                put_keys(&mut w, keys.iter().filter(|k| k.as_slice() > after));
            }
            Request::ListAkeys { oid, dkey } => {
                put_keys(&mut w, store.list_akeys(cont, oid, dkey).iter());
            }
            Request::ListOids { after, from_start } => {
                let max = w.room().saturating_sub(16) / 16;
                let oids = store.list_oids(cont, after, from_start, max + 1);
                let more = oids.len() > max;
                w.u8(u8::from(more)).u32(oids.len().min(max) as u32);
                for o in oids.iter().take(max) {
                    w.u128(*o);
                }
            }
            Request::ContPunch => {
                let n = store.punch_container(cont)?;
                w.u64(n as u64);
            }
            Request::ContCreate { label, uuid } => {
                let (c, o) = CONT_TABLE;
                if store.fetch(c, o, label, UUID_AKEY, u64::MAX)?.is_some() {
                    w.u8(0);
                } else {
                    store.update(c, o, label, UUID_AKEY, &uuid)?;
                    w.u8(1);
                }
            }
            Request::ContList => {
                let (c, o) = CONT_TABLE;
                let labels = store.list_dkeys(c, o);
                let mut n = 0u32;
                let mut entries = Vec::with_capacity(labels.len());
                for l in labels {
                    if let Some(u) = store.fetch(c, o, &l, UUID_AKEY, u64::MAX)? {
                        entries.push((l, u));
                        n += 1;
                    }
                }
                w.u32(n);
                for (l, u) in entries {
                    w.key(&l).put(&u);
                }
            }
            Request::ContQuery { id } | Request::ContDestroy { id } => {
                let (c, o) = CONT_TABLE;
                let mut found = None;
                for l in store.list_dkeys(c, o) {
                    if let Some(u) = store.fetch(c, o, &l, UUID_AKEY, u64::MAX)? {
                        let text = u.as_slice().try_into().map(wire::uuid_text);
                        if l == id || text.is_ok_and(|t| t.as_bytes() == id) {
                            found = Some((l, u));
                            break;
                        }
                    }
                }
                match found {
                    Some((l, u)) => {
                        if matches!(request, Request::ContDestroy { .. }) {
                            store.punch(c, o, Some(&l), None)?;
                        }
                        w.u8(1).key(&l).put(&u);
                    }
                    None => {
                        w.u8(0);
                    }
                }
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

/// Writes `more`, a count and keys while they fit.
fn put_keys<'k>(w: &mut Writer<'_>, keys: impl Iterator<Item = &'k Vec<u8>>) {
    let mut fit = Vec::new();
    let mut room = w.room().saturating_sub(5);
    let mut more = false;
    for k in keys {
        if k.len() + 2 > room {
            more = true;
            break;
        }
        room -= k.len() + 2;
        fit.push(k);
    }
    w.u8(u8::from(more)).u32(fit.len() as u32);
    for k in fit {
        w.key(k);
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
        assert_eq!(target_port(31416, 0), 31417);
        assert_eq!(target_port(31416, 3), 31420);
    }
}
