//! A target's requests to other engines: the parts of a collective object RPC (`OBJ_CPD`,
//! `OBJ_COLL_PUNCH`, `OBJ_COLL_QUERY`) that another rank's targets hold go to them as the
//! plain object RPCs DAOS's clients send (`OBJ_PUNCH`, `_PUNCH_DKEYS`, `_PUNCH_AKEYS`,
//! `OBJ_QUERY_KEY`), engine to engine over the same protocol, under the client's pool and
//! container handles (which the pool service pushed to every engine of the pool).
//!
//! A call is a Mercury request sent tagged to the remote target's endpoint (its rank's tag-0
//! port plus the tag) with a receive posted for its reply's tag. Calls in flight are bounded
//! ([`FORWARDS_MAX`], the endpoint's tagged receive buffers): beyond that a part is refused
//! `DER_BUSY`. A call without a reply by its deadline fails its part with `DER_TIMEDOUT`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use daos_cart::header::CommonHdr;
use daos_cart::obj::{self, PunchCall, QueryKeyCall, QueryKeyOut, Recx, UnitOid};
use daos_cart::proc_::{Decoder, Encoder};
use daos_cart::{mercury, opcode, rpc};
use daos_fabric::{EndpointError, Peer, Received};
use daos_wire::der;

use super::TargetService;
use super::coll::{Found, PeerWork};

/// Calls to other engines in flight at once (tagged receive buffers of the endpoint).
pub const FORWARDS_MAX: usize = 16;
/// How long a call waits for its reply.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Remote peers remembered (their addresses inserted in the endpoint's address vector).
const PEERS_MAX: usize = 64;

/// A part of a collective request that another rank's target does.
#[derive(Clone, Debug)]
pub struct RemotePart {
    pub rank: u32,
    pub tgt_idx: u32,
    pub oid: UnitOid,
    pub work: PeerWork,
}

/// The handles and map a remote part goes under (the client's).
#[derive(Clone, Copy, Debug)]
pub struct Under {
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub map_ver: u32,
}

/// One call waiting for its reply.
#[derive(Clone, Copy, Debug)]
struct Call {
    tag: u64,
    slot: usize,
    deadline: Instant,
    query: bool,
}

/// The calls of one target to other engines.
#[derive(Default)]
pub struct Forwarder {
    calls: Vec<Call>,
    next_tag: u32,
    next_rpcid: u64,
    peers: Vec<(SocketAddrV4, Peer)>,
    /// The engine's rank map: each rank's tag-0 address.
    group: std::sync::Arc<crate::control::GroupMap>,
}

impl Forwarder {
    /// Takes in a new group map (ranks and their URIs).
    pub fn set_group(&mut self, g: std::sync::Arc<crate::control::GroupMap>) {
        self.group = g;
    }

    /// Target `tgt_idx` of `rank`'s address: the rank's tag-0 port plus the tag (DAOS's
    /// contiguous ports, `tgt_idx + 2`).
    fn addr_of(&self, rank: u32, tgt_idx: u32) -> Option<SocketAddrV4> {
        let uri = &self.group.peers.get(&rank)?.uri;
        let (_, hostport) = uri.split_once("://")?;
        let (host, port) = hostport.rsplit_once(':')?;
        let ip: Ipv4Addr = host.parse().ok()?;
        let port: u32 = port.parse().ok()?;
        let port = u16::try_from(port + tgt_idx + 2).ok()?;
        Some(SocketAddrV4::new(ip, port))
    }
}

impl TargetService {
    /// Sends `part` of the collective request in `slot` to its rank; `Err` with the part's
    /// DER code when it cannot go (no room, no address, the fabric refused).
    pub(super) fn forward(
        &mut self,
        slot: usize,
        part: &RemotePart,
        under: &Under,
    ) -> Result<(), i32> {
        if self.fwd.calls.len() >= FORWARDS_MAX {
            return Err(der::BUSY);
        }
        let Some(addr) = self.fwd.addr_of(part.rank, part.tgt_idx) else {
            let what = format!(
                "no address for rank {} (not in the group map this engine has): its part of a collective request fails DER_UNREACH",
                part.rank
            );
            self.cart.complain(self.index, &what);
            return Err(der::UNREACH);
        };
        let peer = self.remote_peer(addr).map_err(|e| {
            self.cart
                .complain(self.index, &format!("rank {} at {addr}: {e}", part.rank));
            der::UNREACH
        })?;
        self.fwd.next_tag = (self.fwd.next_tag % (mercury::TAG_MASK as u32 >> 1)) + 1;
        let tag = u64::from(self.fwd.next_tag);
        if let Err(e) = self.ep.expect(peer, tag) {
            return Err(match e {
                EndpointError::Busy(_) | EndpointError::Again => der::BUSY,
                _ => der::HG,
            });
        }
        self.fwd.next_rpcid += 1;
        let hdr = CommonHdr {
            opc: 0,
            flags: 0,
            hlc: self.cart.hlc_now(),
            rpcid: (u64::from(self.index) << 48) | self.fwd.next_rpcid,
            dst_rank: part.rank,
            src_rank: self.rank.unwrap_or(daos_cart::header::NO_RANK),
            dst_tag: part.tgt_idx + 2,
            last: FORWARD_TIMEOUT.as_secs() as u32,
        };
        let me = self.my_name();
        let query = matches!(part.work, PeerWork::Query { .. });
        let mut failed = false;
        let sent = self
            .ep
            .send_tagged_with(peer, mercury::UNEXPECTED_TAG | tag, |buf| match write_part(
                buf, &me, hdr, part, under,
            ) {
                Ok(n) => n,
                Err(_) => {
                    failed = true;
                    0
                }
            });
        if failed || sent.is_err() {
            // The posted receive stays until a reply for its tag (none will come); its
            // buffer is one of the bounded tagged ones.
            let what = format!("a part for rank {} could not be sent: {sent:?}", part.rank);
            self.cart.complain(self.index, &what);
            return Err(der::HG);
        }
        self.fwd.calls.push(Call {
            tag,
            slot,
            deadline: Instant::now() + FORWARD_TIMEOUT,
            query,
        });
        Ok(())
    }

    fn remote_peer(&mut self, addr: SocketAddrV4) -> Result<Peer, EndpointError> {
        if let Some((_, p)) = self.fwd.peers.iter().find(|(a, _)| *a == addr) {
            return Ok(*p);
        }
        let p = self
            .ep
            .insert_peer(&daos_fabric::sockaddr_in(*addr.ip(), addr.port()))?;
        if self.fwd.peers.len() == PEERS_MAX {
            self.fwd.peers.remove(0);
        }
        self.fwd.peers.push((addr, p));
        Ok(p)
    }

    /// This endpoint's address as requests carry it (Mercury's source address).
    fn my_name(&self) -> [u8; mercury::NA_ADDR_LEN] {
        let mut me = [0u8; mercury::NA_ADDR_LEN];
        if let Ok(name) = self.ep.name() {
            let n = name.len().min(me.len());
            me[..n].copy_from_slice(&name[..n]);
        }
        me
    }

    /// Whether `r` is the reply to one of this target's calls: if so it is taken (its part
    /// done) and released.
    pub(super) fn take_reply(&mut self, r: Received) -> bool {
        let Some(tag) = r.tag() else {
            return false;
        };
        if tag & mercury::UNEXPECTED_TAG != 0 {
            return false;
        }
        let Some(i) = self.fwd.calls.iter().position(|c| c.tag == tag) else {
            return false;
        };
        let call = self.fwd.calls.swap_remove(i);
        let (rc, found, max_epoch) = read_reply(self.ep.message(r), call.query);
        let _ = self.ep.release(r);
        self.coll_remote_done(call.slot, rc, found, max_epoch);
        true
    }

    /// Fails the parts whose calls passed their deadline.
    pub(super) fn expire_forwards(&mut self) -> usize {
        if self.fwd.calls.is_empty() {
            return 0;
        }
        let now = Instant::now();
        let mut n = 0;
        while let Some(i) = self.fwd.calls.iter().position(|c| c.deadline <= now) {
            let call = self.fwd.calls.swap_remove(i);
            self.cart.complain(
                self.index,
                "a collective request's part on another engine had no reply in time: DER_TIMEDOUT",
            );
            self.coll_remote_done(call.slot, der::TIMEDOUT, None, 0);
            n += 1;
        }
        n
    }
}

/// Writes `part` as a request (Mercury's header, CaRT's, the object RPC's input).
fn write_part(
    buf: &mut [u8],
    me: &[u8; mercury::NA_ADDR_LEN],
    mut hdr: CommonHdr,
    part: &RemotePart,
    under: &Under,
) -> Result<usize, daos_cart::CartError> {
    mercury::write_request_header(buf, me, mercury::RPC_ID, 0, 0)?;
    let (index, dkey, akeys): (u16, Option<&[u8]>, Vec<&[u8]>) = match &part.work {
        PeerWork::Punch { dkey: None, .. } => (obj::op::PUNCH, None, Vec::new()),
        PeerWork::Punch {
            dkey: Some(d),
            akeys,
        } if akeys.is_empty() => (obj::op::PUNCH_DKEYS, Some(d), Vec::new()),
        PeerWork::Punch {
            dkey: Some(d),
            akeys,
        } => (
            obj::op::PUNCH_AKEYS,
            Some(d),
            akeys.iter().map(Vec::as_slice).collect(),
        ),
        PeerWork::Query { .. } => (obj::op::QUERY_KEY, None, Vec::new()),
    };
    hdr.opc = opcode::opcode(opcode::module::OBJ, 10, index);
    let mut e = Encoder::new(&mut buf[mercury::REQUEST_BODY..]);
    hdr.encode(&mut e)?;
    match &part.work {
        PeerWork::Punch { .. } => PunchCall {
            oid: part.oid,
            pool: under.pool,
            co_hdl: under.co_hdl,
            co_uuid: under.co_uuid,
            api_flags: 0,
            map_ver: under.map_ver,
            dkey,
            akeys: &akeys,
        }
        .encode(&mut e)?,
        PeerWork::Query { flags, dkey, akey } => QueryKeyCall {
            oid: part.oid,
            pool: under.pool,
            co_hdl: under.co_hdl,
            co_uuid: under.co_uuid,
            map_ver: under.map_ver,
            api_flags: *flags,
            dkey,
            akey,
        }
        .encode(&mut e)?,
    }
    Ok(mercury::REQUEST_BODY + e.len())
}

/// A reply's (rc, what a query found, the object's last write).
fn read_reply(msg: &[u8], query: bool) -> (i32, Option<Found>, u64) {
    let a = match rpc::parse_answer(msg) {
        Ok(a) if a.hg_ret == 0 && a.hdr.rc() == 0 => a,
        Ok(a) if a.hg_ret != 0 => return (der::HG, None, 0),
        Ok(a) => return (a.hdr.rc(), None, 0),
        Err(_) => return (der::PROTO, None, 0),
    };
    if !query {
        let mut d = Decoder::new(a.output);
        return match d.i32("opo_ret") {
            Ok(rc) => (rc, None, 0),
            Err(_) => (der::PROTO, None, 0),
        };
    }
    match QueryKeyOut::decode(a.output) {
        Ok(q) if q.ret == 0 => (
            0,
            Some(Found {
                dkey: q.dkey.to_vec(),
                akey: q.akey.to_vec(),
                recx: Recx {
                    idx: q.recx.idx,
                    nr: q.recx.nr,
                },
            }),
            q.max_epoch,
        ),
        Ok(q) => (q.ret, None, q.max_epoch),
        Err(_) => (der::PROTO, None, 0),
    }
}
