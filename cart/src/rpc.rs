//! Whole messages (Mercury framing + CaRT header + body) and the bodies of the RPCs served.
//!
//! Field order and types follow DAOS's `CRT_RPC_DECLARE` lists (`src/cart/crt_rpc.h`,
//! `crt_self_test.h`, `src/mgmt/rpc.h`).

use crate::CartError;
use crate::header::{self, CommonHdr};
use crate::mercury::{self, HgReturn};
use crate::proc_::{Decoder, Encoder, Ranks};

/// A received CaRT request: Mercury's part, the CaRT header and the undecoded input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    pub mercury: mercury::Request<'a>,
    pub hdr: CommonHdr,
    /// The input, after the header (and after a collective header, which clients never send).
    pub input: &'a [u8],
}

/// Decodes a received request down to its CaRT header. A request with [`mercury::MORE_DATA`]
/// decodes too; its `input` is then the bulk handle to pull (see [`crate::bulk`]).
pub fn parse_call(msg: &[u8]) -> Result<Call<'_>, CartError> {
    let m = mercury::parse_request(msg)?;
    if m.flags & mercury::MORE_DATA != 0 {
        return Ok(Call {
            mercury: m,
            hdr: CommonHdr::default(),
            input: m.body,
        });
    }
    let mut d = Decoder::new(m.body);
    let hdr = CommonHdr::decode(&mut d)?;
    if hdr.flags & header::FLAG_COLL != 0 {
        return Err(CartError::Invalid {
            field: "cch_flags",
            why: "collective RPCs are engine-to-engine; a client sends none",
        });
    }
    Ok(Call {
        mercury: m,
        hdr,
        input: d.rest(),
    })
}

/// Writes a reply into `buf`: Mercury's response header with `cookie`, the CaRT reply header
/// with `hlc` and `rc`, then (only when `rc` is 0) the output `body` writes. Returns the
/// length.
pub fn write_reply(
    buf: &mut [u8],
    cookie: u8,
    hlc: u64,
    rc: i32,
    body: impl FnOnce(&mut Encoder<'_>) -> Result<(), CartError>,
) -> Result<usize, CartError> {
    mercury::write_response_header(buf, HgReturn::Success, 0, cookie)?;
    let mut e = Encoder::new(&mut buf[mercury::RESPONSE_BODY..]);
    CommonHdr::reply(hlc, rc).encode(&mut e)?;
    if rc == 0 {
        body(&mut e)?;
    }
    Ok(mercury::RESPONSE_BODY + e.len())
}

/// Bytes of zeros after a refusal's rc: enough for every output struct of the pool,
/// container and object modules to decode (counts 0, NULL pointers and strings, empty iovs).
pub const REFUSAL_BODY: usize = 512;

/// Writes a DAOS-level refusal of an RPC (CaRT rc 0): the output's leading `i32` rc (every
/// pool, container and object output starts with it: `po_rc`, `co_rc`, `orw_ret`, ...) set to
/// `rc`, then zeros. DAOS's clients must never get a CaRT-level error for these RPCs: their
/// retry logic would read an undecoded body.
pub fn write_refusal(buf: &mut [u8], cookie: u8, hlc: u64, rc: i32) -> Result<usize, CartError> {
    write_reply(buf, cookie, hlc, 0, |e| {
        e.i32(rc, "rc")?;
        e.take(REFUSAL_BODY, "refusal")?.fill(0);
        Ok(())
    })
}

/// Writes a Mercury-level error response (no CaRT header): what Mercury sends for an RPC id
/// nobody registered.
pub fn write_hg_error(buf: &mut [u8], cookie: u8, ret: HgReturn) -> Result<usize, CartError> {
    mercury::write_response_header(buf, ret, 0, cookie)?;
    Ok(mercury::RESPONSE_BODY)
}

/// Writes a request into `buf` (a client's side): the sender's address, Mercury's request
/// header for CaRT's RPC id, the CaRT header, then the input `body` writes. Returns the
/// length.
pub fn write_call(
    buf: &mut [u8],
    source: &[u8; mercury::NA_ADDR_LEN],
    cookie: u8,
    hdr: &CommonHdr,
    body: impl FnOnce(&mut Encoder<'_>) -> Result<(), CartError>,
) -> Result<usize, CartError> {
    mercury::write_request_header(buf, source, mercury::RPC_ID, 0, cookie)?;
    let mut e = Encoder::new(&mut buf[mercury::REQUEST_BODY..]);
    hdr.encode(&mut e)?;
    body(&mut e)?;
    Ok(mercury::REQUEST_BODY + e.len())
}

/// A received reply: Mercury's return code, and when it is success, the CaRT header and the
/// output (empty when the header's rc is not 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer<'a> {
    pub hg_ret: i8,
    pub hdr: CommonHdr,
    pub output: &'a [u8],
}

/// Decodes a reply.
pub fn parse_answer(msg: &[u8]) -> Result<Answer<'_>, CartError> {
    let r = mercury::parse_response(msg)?;
    if r.ret != 0 {
        return Ok(Answer {
            hg_ret: r.ret,
            hdr: CommonHdr::default(),
            output: &[],
        });
    }
    let mut d = Decoder::new(r.body);
    let hdr = CommonHdr::decode(&mut d)?;
    Ok(Answer {
        hg_ret: 0,
        hdr,
        output: d.rest(),
    })
}

/// URI_LOOKUP's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UriLookupIn<'a> {
    /// The system (group) name, e.g. `daos_server`.
    pub grp: Option<&'a str>,
    pub rank: u32,
    pub tag: u32,
}

impl<'a> UriLookupIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<UriLookupIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        Ok(UriLookupIn {
            grp: d.string("ul_grp_id")?,
            rank: d.u32("ul_rank")?,
            tag: d.u32("ul_tag")?,
        })
    }

    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.string(self.grp, false, "ul_grp_id")?;
        e.u32(self.rank, "ul_rank")?;
        e.u32(self.tag, "ul_tag")
    }
}

/// URI_LOOKUP's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UriLookupOut<'a> {
    pub uri: Option<&'a str>,
    pub tag: u32,
    pub rc: i32,
}

impl<'a> UriLookupOut<'a> {
    pub fn decode(b: &'a [u8]) -> Result<UriLookupOut<'a>, CartError> {
        let mut d = Decoder::new(b);
        Ok(UriLookupOut {
            uri: d.string("ul_uri")?,
            tag: d.u32("ul_tag")?,
            rc: d.i32("ul_rc")?,
        })
    }

    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.string(self.uri, false, "ul_uri")?;
        e.u32(self.tag, "ul_tag")?;
        e.i32(self.rc, "ul_rc")
    }
}

/// PROTO_QUERY's input: the versions offered (an iov of u32s), their count and the
/// protocol's base opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoQueryIn<'a> {
    versions: &'a [u8],
    pub count: i32,
    pub base_opc: u32,
}

impl<'a> ProtoQueryIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<ProtoQueryIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        let versions = d.iov("pq_ver")?;
        let count = d.i32("pq_ver_count")?;
        let base_opc = d.u32("pq_base_opc")?;
        if versions.len() % 4 != 0 || count < 0 || count as usize * 4 > versions.len() {
            return Err(CartError::Invalid {
                field: "pq_ver_count",
                why: "count of versions does not match the pq_ver iov (4 bytes each)",
            });
        }
        Ok(ProtoQueryIn {
            versions,
            count,
            base_opc,
        })
    }

    /// The versions offered.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.versions[..self.count as usize * 4]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Encodes a query offering `versions` for `base_opc`.
    pub fn encode_query(
        e: &mut Encoder<'_>,
        versions: &[u32],
        base_opc: u32,
    ) -> Result<(), CartError> {
        let n = versions.len() as u64 * 4;
        e.u64(n, "pq_ver")?;
        e.u64(n, "pq_ver")?;
        for v in versions {
            e.u32(*v, "pq_ver")?;
        }
        e.i32(versions.len() as i32, "pq_ver_count")?;
        e.u32(base_opc, "pq_base_opc")
    }
}

/// PROTO_QUERY's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoQueryOut {
    pub version: u32,
    pub rc: i32,
}

impl ProtoQueryOut {
    pub fn decode(b: &[u8]) -> Result<ProtoQueryOut, CartError> {
        let mut d = Decoder::new(b);
        Ok(ProtoQueryOut {
            version: d.u32("pq_ver")?,
            rc: d.i32("pq_rc")?,
        })
    }

    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.u32(self.version, "pq_ver")?;
        e.i32(self.rc, "pq_rc")
    }
}

/// Self-test OPEN_SESSION's input (`struct crt_st_session_params`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionParams {
    pub send_size: u32,
    pub reply_size: u32,
    pub num_buffers: u32,
    /// Bits 0-1 the send type, 2-3 the reply type ([`MsgType`]), 16-31 the buffer alignment.
    pub flags: u32,
}

/// How a self-test message or reply travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    Empty = 0,
    Iov = 1,
    BulkPut = 2,
    BulkGet = 3,
}

impl MsgType {
    fn from_bits(b: u32) -> MsgType {
        match b & 3 {
            0 => MsgType::Empty,
            1 => MsgType::Iov,
            2 => MsgType::BulkPut,
            _ => MsgType::BulkGet,
        }
    }
}

impl SessionParams {
    pub fn decode(b: &[u8]) -> Result<SessionParams, CartError> {
        let mut d = Decoder::new(b);
        Ok(SessionParams {
            send_size: d.u32("send_size")?,
            reply_size: d.u32("reply_size")?,
            num_buffers: d.u32("num_buffers")?,
            flags: d.u32("flags")?,
        })
    }

    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.u32(self.send_size, "send_size")?;
        e.u32(self.reply_size, "reply_size")?;
        e.u32(self.num_buffers, "num_buffers")?;
        e.u32(self.flags, "flags")
    }

    pub fn send_type(&self) -> MsgType {
        MsgType::from_bits(self.flags)
    }

    pub fn reply_type(&self) -> MsgType {
        MsgType::from_bits(self.flags >> 2)
    }
}

/// MGMT_POOL_FIND's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolFindIn<'a> {
    pub by_label: bool,
    pub label: Option<&'a str>,
    pub uuid: [u8; 16],
}

impl<'a> PoolFindIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<PoolFindIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        let by_label = d.i32("pfi_bylabel")? != 0;
        d.i32("pfi_pad32")?;
        Ok(PoolFindIn {
            by_label,
            label: d.string("pfi_label")?,
            uuid: d.uuid("pfi_puuid")?,
        })
    }

    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.i32(i32::from(self.by_label), "pfi_bylabel")?;
        e.i32(0, "pfi_pad32")?;
        e.string(self.label, true, "pfi_label")?;
        e.uuid(&self.uuid, "pfi_puuid")
    }
}

/// MGMT_POOL_FIND's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolFindOut<'a> {
    pub uuid: [u8; 16],
    /// The pool service's replicas.
    pub ranks: Ranks<'a>,
    pub rc: i32,
}

impl<'a> PoolFindOut<'a> {
    pub fn decode(b: &'a [u8]) -> Result<PoolFindOut<'a>, CartError> {
        let mut d = Decoder::new(b);
        Ok(PoolFindOut {
            uuid: d.uuid("pfo_puuid")?,
            ranks: d.ranks("pfo_ranks")?,
            rc: d.i32("pfo_rc")?,
        })
    }

    pub fn encode(
        e: &mut Encoder<'_>,
        uuid: &[u8; 16],
        ranks: &[u32],
        rc: i32,
    ) -> Result<(), CartError> {
        e.uuid(uuid, "pfo_puuid")?;
        e.ranks(ranks, "pfo_ranks")?;
        e.i32(rc, "pfo_rc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcode;

    #[test]
    fn a_proto_query_travels_as_daos_lays_it_out() {
        let src = [2, 0, 0x7a, 0x69, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let hdr = CommonHdr {
            opc: opcode::PROTO_QUERY,
            rpcid: 7,
            dst_rank: 0,
            src_rank: header::NO_RANK,
            last: 3,
            ..CommonHdr::default()
        };
        let mut buf = [0u8; 256];
        let n = write_call(&mut buf, &src, 0, &hdr, |e| {
            ProtoQueryIn::encode_query(e, &[2, 3], 0x0100_0000)
        })
        .unwrap();
        // 32 bytes of Mercury, 40 of CaRT, then u64 8, u64 8, 2, 3, count 2, base.
        assert_eq!(n, 32 + 40 + 8 + 8 + 8 + 4 + 4);
        let body = &buf[72..n];
        assert_eq!(
            &body[..16],
            &[8, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&body[16..24], &[2, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&body[24..32], &[2, 0, 0, 0, 0, 0, 0, 1]);
        let call = parse_call(&buf[..n]).unwrap();
        assert_eq!(call.hdr, hdr);
        let q = ProtoQueryIn::decode(call.input).unwrap();
        assert_eq!(q.versions().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(q.base_opc, 0x0100_0000);

        let mut out = [0u8; 128];
        let n = write_reply(&mut out, 0, 99, 0, |e| {
            ProtoQueryOut { version: 3, rc: 0 }.encode(e)
        })
        .unwrap();
        assert_eq!(n, 16 + 40 + 8);
        let a = parse_answer(&out[..n]).unwrap();
        assert_eq!((a.hg_ret, a.hdr.hlc, a.hdr.rc()), (0, 99, 0));
        assert_eq!(
            ProtoQueryOut::decode(a.output).unwrap(),
            ProtoQueryOut { version: 3, rc: 0 }
        );
        // An error reply has no body.
        let n = write_reply(&mut out, 0, 99, -1021, |_| panic!("no body")).unwrap();
        assert_eq!(n, 16 + 40);
    }

    #[test]
    fn a_count_beyond_the_versions_is_refused() {
        let mut b = [0u8; 64];
        let mut e = Encoder::new(&mut b);
        e.u64(4, "").unwrap();
        e.u64(4, "").unwrap();
        e.u32(3, "").unwrap();
        e.i32(5, "").unwrap();
        e.u32(0x0100_0000, "").unwrap();
        let n = e.len();
        let err = ProtoQueryIn::decode(&b[..n]).unwrap_err();
        assert!(err.to_string().contains("pq_ver_count"), "{err}");
    }

    #[test]
    fn uri_lookup_and_pool_find_round_trip() {
        let mut b = [0u8; 128];
        let mut e = Encoder::new(&mut b);
        UriLookupIn {
            grp: Some("daos_server"),
            rank: 2,
            tag: 5,
        }
        .encode(&mut e)
        .unwrap();
        let n = e.len();
        assert_eq!(n, 8 + 12 + 2 + 4 + 4);
        let u = UriLookupIn::decode(&b[..n]).unwrap();
        assert_eq!((u.grp, u.rank, u.tag), (Some("daos_server"), 2, 5));

        let mut e = Encoder::new(&mut b);
        PoolFindIn {
            by_label: true,
            label: Some("tank"),
            uuid: [0; 16],
        }
        .encode(&mut e)
        .unwrap();
        let n = e.len();
        assert_eq!(&b[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[8..16], &5u64.to_le_bytes());
        assert_eq!(&b[16..23], b"tank\0\x01\x00", "a const string");
        let p = PoolFindIn::decode(&b[..n]).unwrap();
        assert_eq!((p.by_label, p.label), (true, Some("tank")));

        let mut e = Encoder::new(&mut b);
        PoolFindOut::encode(&mut e, &[7; 16], &[0, 2], 0).unwrap();
        let n = e.len();
        assert_eq!(n, 16 + 4 + 8 + 4);
        let o = PoolFindOut::decode(&b[..n]).unwrap();
        assert_eq!(o.ranks.iter().collect::<Vec<_>>(), [0, 2]);
    }
}
