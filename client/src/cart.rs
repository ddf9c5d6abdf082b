//! A client of DAOS's own data-plane protocol ([`daos_cart`]): what libdaos sends an engine,
//! written from DAOS's and Mercury's layouts (`shared/reference/DAOS_CLIENT_PROTOCOL.md`), not
//! from our engine's code. It is how the tests drive our engines as DAOS's clients would, and
//! where this library moves onto DAOS's protocol.
//!
//! A [`CartClient`] is one endpoint (a CaRT context): each call posts a directed receive for
//! its reply with a fresh 32-bit tag, then sends the request as DAOS 2.6 clients on
//! `tcp;ofi_rxm` do (tagged `1 << 32 | tag`) or as 2.8 clients do (the tag as remote CQ data),
//! and waits for the reply until a deadline.

use std::time::{Duration, Instant};

use daos_cart::header::{self, CommonHdr};
use daos_cart::mercury;
use daos_cart::proc_::Encoder;
use daos_cart::rpc::{self, Answer};
use daos_cart::{CartError, hlc};
use daos_fabric::{EndpointError, Peer, RdmEndpoint, Received, Shape};

/// The bulk slot inputs are encoded in (sent from it when larger than a message).
const INPUT_SLOT: usize = 3;

/// How requests travel (the two DAOS client generations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sends {
    /// DAOS 2.6 on `tcp;ofi_rxm`: tagged `1 << 32 | T` (`NA_OFI_UNEXPECTED_TAG_MSG=1`).
    Tagged,
    /// DAOS 2.8: `fi_senddata` with `T` as remote CQ data.
    CqData,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CartCallError {
    #[error("fabric: {0}")]
    Fabric(#[from] EndpointError),
    #[error("encoding the request: {0}")]
    Encode(CartError),
    #[error("decoding the reply: {0}")]
    Decode(CartError),
    #[error("no reply from {peer} within {waited:?} (opcode {opc:#010x})")]
    Timeout {
        peer: String,
        opc: u32,
        waited: Duration,
    },
}

/// A reply, copied out of the receive buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Mercury's return code (0: the CaRT header and output follow).
    pub hg_ret: i8,
    pub hdr: CommonHdr,
    pub output: Vec<u8>,
}

impl Reply {
    /// CaRT's rc (0 when Mercury failed, see `hg_ret`).
    pub fn rc(&self) -> i32 {
        self.hdr.rc()
    }
}

/// One CaRT context of a client.
pub struct CartClient {
    ep: RdmEndpoint,
    /// This endpoint's `sockaddr_in`, sent at the front of every request.
    me: [u8; mercury::NA_ADDR_LEN],
    sends: Sends,
    next_tag: u32,
    next_rpcid: u64,
    /// The highest server clock heard (what DAOS's clients send).
    hlc: u64,
    held: Vec<Received>,
    peers: Vec<(String, Peer)>,
}

impl CartClient {
    /// Opens a client endpoint of `provider` (libfabric's name, `tcp;ofi_rxm`), bound to
    /// `node` (an address on the fabric the engines listen on).
    pub fn open(provider: &str, node: &str, sends: Sends) -> Result<CartClient, CartCallError> {
        let shape = Shape {
            tagged: true,
            tagged_slots: 8,
            bulk: Some((4, 1 << 20)),
            ..Shape::messages(mercury::MSG_SIZE, 8, 2)
        };
        let ep = RdmEndpoint::open_shaped(provider, Some(node), Some("0"), shape)?;
        let name = ep.name()?;
        let mut me = [0u8; mercury::NA_ADDR_LEN];
        let n = name.len().min(me.len());
        me[..n].copy_from_slice(&name[..n]);
        Ok(CartClient {
            ep,
            me,
            sends,
            next_tag: 0,
            next_rpcid: u64::from(std::process::id()) << 32,
            hlc: 0,
            held: Vec::with_capacity(16),
            peers: Vec::new(),
        })
    }

    /// The fabric endpoint (for bulk buffers).
    pub fn endpoint(&mut self) -> &mut RdmEndpoint {
        &mut self.ep
    }

    /// This endpoint's address as it travels in requests.
    pub fn address(&self) -> [u8; mercury::NA_ADDR_LEN] {
        self.me
    }

    fn peer(&mut self, addr: std::net::SocketAddrV4) -> Result<Peer, CartCallError> {
        let key = addr.to_string();
        if let Some((_, p)) = self.peers.iter().find(|(k, _)| *k == key) {
            return Ok(*p);
        }
        let p = self
            .ep
            .insert_peer(&daos_fabric::sockaddr_in(*addr.ip(), addr.port()))?;
        self.peers.push((key, p));
        Ok(p)
    }

    /// Calls `opc` on `rank:tag` at `addr` with the input `body` writes; waits up to `timeout`.
    pub fn call(
        &mut self,
        addr: std::net::SocketAddrV4,
        rank: u32,
        tag: u32,
        opc: u32,
        timeout: Duration,
        body: impl FnOnce(&mut Encoder<'_>) -> Result<(), CartError>,
    ) -> Result<Reply, CartCallError> {
        let hdr = CommonHdr {
            opc,
            flags: 0,
            hlc: self.hlc,
            rpcid: self.next_rpcid,
            dst_rank: rank,
            src_rank: header::NO_RANK,
            dst_tag: tag,
            last: timeout.as_secs().max(1) as u32,
        };
        self.next_rpcid += 1;
        let me = self.me;
        // Encode into the input bulk slot first: an input that does not fit a message goes
        // as Mercury does it, the message carrying a bulk handle over it ("more data").
        let n = {
            let mut e = Encoder::new(self.ep.bulk_mut(INPUT_SLOT));
            hdr.encode(&mut e)
                .and_then(|()| body(&mut e))
                .map_err(CartCallError::Encode)?;
            e.len()
        };
        if mercury::REQUEST_BODY + n <= mercury::MSG_SIZE {
            let input = self.ep.bulk_buf(INPUT_SLOT)[..n].to_vec();
            return self.call_raw(addr, timeout, opc, |buf| {
                mercury::write_request_header(buf, &me, mercury::RPC_ID, 0, 0)?;
                buf[mercury::REQUEST_BODY..mercury::REQUEST_BODY + n].copy_from_slice(&input);
                Ok(mercury::REQUEST_BODY + n)
            });
        }
        let at = self.ep.bulk_addr(INPUT_SLOT);
        let key = self
            .ep
            .bulk_desc(INPUT_SLOT, 1)
            .map(|d| d.key)
            .unwrap_or_default();
        self.call_raw(addr, timeout, opc, |buf| {
            mercury::write_request_header(buf, &me, mercury::RPC_ID, mercury::MORE_DATA, 0)?;
            let mut e = Encoder::new(&mut buf[mercury::REQUEST_BODY..]);
            let flags = daos_cart::bulk::READ_ONLY;
            daos_cart::bulk::encode(&mut e, at, n as u64, key, flags, "more data")?;
            Ok(mercury::REQUEST_BODY + e.len())
        })
    }

    /// Sends whatever `fill` writes as a request (headers included) and waits for the reply:
    /// for tests of malformed requests.
    pub fn call_raw(
        &mut self,
        addr: std::net::SocketAddrV4,
        timeout: Duration,
        opc: u32,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, CartError>,
    ) -> Result<Reply, CartCallError> {
        let peer = self.peer(addr)?;
        self.next_tag = self.next_tag.wrapping_add(1).max(1);
        let tag = u64::from(self.next_tag);
        let deadline = Instant::now() + timeout;
        self.post(|ep| ep.expect(peer, tag), deadline, addr, opc)?;
        let mut failed = None;
        let mut fill = Some(fill);
        let sends = self.sends;
        self.post(
            |ep| {
                let Some(f) = fill.take() else {
                    return Ok(());
                };
                let write = |buf: &mut [u8]| match f(buf) {
                    Ok(n) => n,
                    Err(e) => {
                        failed = Some(e);
                        0
                    }
                };
                match sends {
                    Sends::Tagged => {
                        ep.send_tagged_with(peer, mercury::UNEXPECTED_TAG | tag, write)
                    }
                    Sends::CqData => ep.send_data_with(peer, tag, write),
                }
            },
            deadline,
            addr,
            opc,
        )?;
        if let Some(e) = failed {
            return Err(CartCallError::Encode(e));
        }
        loop {
            self.held.clear();
            self.ep.poll_held(&mut self.held)?;
            let mut got = None;
            for i in 0..self.held.len() {
                let r = self.held[i];
                if r.tag() == Some(tag) && got.is_none() {
                    let a = rpc::parse_answer(self.ep.message(r)).map(|a: Answer<'_>| Reply {
                        hg_ret: a.hg_ret,
                        hdr: a.hdr,
                        output: a.output.to_vec(),
                    });
                    got = Some(a);
                }
                self.ep.release(r)?;
            }
            if let Some(a) = got {
                let reply = a.map_err(CartCallError::Decode)?;
                self.hlc = self.hlc.max(reply.hdr.hlc);
                return Ok(reply);
            }
            if Instant::now() > deadline {
                return Err(CartCallError::Timeout {
                    peer: addr.to_string(),
                    opc,
                    waited: timeout,
                });
            }
            std::thread::yield_now();
        }
    }

    /// Posts an operation, polling while the provider asks to retry.
    fn post(
        &mut self,
        mut op: impl FnMut(&mut RdmEndpoint) -> Result<(), EndpointError>,
        deadline: Instant,
        addr: std::net::SocketAddrV4,
        opc: u32,
    ) -> Result<(), CartCallError> {
        loop {
            match op(&mut self.ep) {
                Ok(()) => return Ok(()),
                Err(EndpointError::Again | EndpointError::Busy(_)) => {
                    if Instant::now() > deadline {
                        return Err(CartCallError::Timeout {
                            peer: addr.to_string(),
                            opc,
                            waited: Duration::ZERO,
                        });
                    }
                    self.ep.poll(|_| {})?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The gurt clock this client would stamp requests with if it were a service: for tests
    /// that send a clock far ahead.
    pub fn set_hlc(&mut self, hlc: u64) {
        self.hlc = hlc;
    }

    /// gurt's reading of now (for [`Self::set_hlc`]).
    pub fn hlc_now() -> u64 {
        hlc::from_unix_nanos(hlc::now_ns())
    }
}
