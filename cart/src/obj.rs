//! The object protocol, version 10 (DAOS 2.6 and 2.8 clients): what a target decodes of
//! `OBJ_RW` (update, fetch), the key enumerations, punches and `QUERY_KEY`, and writes back
//! (`src/object/obj_rpc.h` `DAOS_ISEQ_OBJ_*` / `DAOS_OSEQ_OBJ_*`, `obj_rpc.c` procs; facts
//! with citations in `docs/daos-protocol/obj_wire.md`).
//!
//! Decoding borrows the request: variable-length parts (iods, sgls, bulks) are kept as the
//! byte ranges they occupy and walked with iterators, so a request decodes without
//! allocating. Every count is checked against the bytes that are there.

use crate::CartError;
use crate::bulk::{self, Bulk};
use crate::proc_::{Decoder, Encoder};

/// Opcode indexes (`OBJ_PROTO_CLI_RPC_LIST`).
pub mod op {
    pub const UPDATE: u16 = 0;
    pub const FETCH: u16 = 1;
    pub const DKEY_ENUMERATE: u16 = 2;
    pub const AKEY_ENUMERATE: u16 = 3;
    pub const RECX_ENUMERATE: u16 = 4;
    pub const ENUMERATE: u16 = 5;
    pub const PUNCH: u16 = 6;
    pub const PUNCH_DKEYS: u16 = 7;
    pub const PUNCH_AKEYS: u16 = 8;
    pub const QUERY_KEY: u16 = 9;
    pub const SYNC: u16 = 10;
    pub const CPD: u16 = 18;
    pub const KEY2ANCHOR: u16 = 19;
    pub const COLL_PUNCH: u16 = 20;
    pub const COLL_QUERY: u16 = 21;
}

/// `daos_iod_type_t`.
pub mod iod_type {
    pub const NONE: u32 = 0;
    pub const SINGLE: u32 = 1;
    pub const ARRAY: u32 = 2;
}

/// `DAOS_COND_*` (`include/daos_obj.h`), in `orw_api_flags` / `opi_api_flags` and, with
/// [`cond::PER_AKEY`], in each iod's flags.
pub mod cond {
    pub const PUNCH: u64 = 1;
    pub const DKEY_INSERT: u64 = 2;
    pub const DKEY_UPDATE: u64 = 4;
    pub const DKEY_FETCH: u64 = 8;
    pub const AKEY_INSERT: u64 = 16;
    pub const AKEY_UPDATE: u64 = 32;
    pub const AKEY_FETCH: u64 = 64;
    pub const PER_AKEY: u64 = 128;
}

/// `ORF_*` request flags (`enum obj_rpc_flags`) the target looks at.
pub mod orf {
    pub const RESEND: u32 = 1 << 1;
    pub const CREATE_MAP: u32 = 1 << 5;
    pub const ENUM_WITHOUT_EPR: u32 = 1 << 8;
    pub const CHECK_EXISTENCE: u32 = 1 << 12;
    pub const CREATE_MAP_DETAIL: u32 = 1 << 13;
    pub const DESCENDING_ORDER: u32 = 1 << 21;
}

/// `DAOS_GET_*` flags of `QUERY_KEY`.
pub mod get {
    pub const MAX: u64 = 1;
    pub const MIN: u64 = 2;
    pub const DKEY: u64 = 4;
    pub const AKEY: u64 = 8;
    pub const RECX: u64 = 16;
}

/// `OBJ_ITER_*`: a key descriptor's type in enumeration replies.
pub const ITER_DKEY: u32 = 2;
pub const ITER_AKEY: u32 = 3;

/// `daos_anchor_t`: 120 bytes.
pub const ANCHOR_LEN: usize = 120;
/// Where the cursor lives in an anchor (`da_buf`).
pub const ANCHOR_BUF: usize = 16;
/// `DAOS_ANCHOR_TYPE_*`.
pub const ANCHOR_ZERO: u16 = 0;
pub const ANCHOR_KEY: u16 = 2;
pub const ANCHOR_EOF: u16 = 3;

/// `struct daos_req_comm_in` / `_out`: 40 bytes at the end of every v10 input and output.
pub const COMM_LEN: usize = 40;

/// A key descriptor inline: u64 length, u32 type (12 bytes, `crt_proc_daos_key_desc_t`).
pub const KEY_DESC_INLINE: usize = 12;
/// A key descriptor through the kds bulk: the C struct, 16 bytes.
pub const KEY_DESC_RAW: usize = 16;

/// `daos_unit_oid_t`: the object id and the shard a request is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnitOid {
    pub lo: u64,
    pub hi: u64,
    pub shard: u32,
    pub layout_ver: u16,
}

impl UnitOid {
    pub fn decode(d: &mut Decoder<'_>, field: &'static str) -> Result<UnitOid, CartError> {
        let lo = d.u64(field)?;
        let hi = d.u64(field)?;
        let shard = d.u32(field)?;
        let layout_ver = d.u16(field)?;
        d.u16(field)?;
        Ok(UnitOid {
            lo,
            hi,
            shard,
            layout_ver,
        })
    }

    pub fn encode(&self, e: &mut Encoder<'_>, field: &'static str) -> Result<(), CartError> {
        e.u64(self.lo, field)?;
        e.u64(self.hi, field)?;
        e.u32(self.shard, field)?;
        e.u16(self.layout_ver, field)?;
        e.u16(0, field)
    }

    /// The object id as one number (hi in the upper half).
    pub fn id(&self) -> u128 {
        u128::from(self.hi) << 64 | u128::from(self.lo)
    }

    /// `daos_otype_t`, the object's type (bits 63..56 of `hi`).
    pub fn otype(&self) -> u8 {
        (self.hi >> 56) as u8
    }

    /// Whether dkeys are unsigned 64-bit integers (`daos_is_dkey_uint64_type`): what
    /// `QUERY_KEY`'s `DAOS_GET_DKEY` needs.
    pub fn dkey_is_u64(&self) -> bool {
        // DKEY_UINT64 2, MULTI_UINT64 4, KV_UINT64 9, ARRAY 11, ARRAY_ATTR 12, ARRAY_BYTE 13.
        matches!(self.otype(), 2 | 4 | 9 | 11 | 12 | 13)
    }

    /// Whether akeys are unsigned 64-bit integers (`daos_is_akey_uint64_type`).
    pub fn akey_is_u64(&self) -> bool {
        // AKEY_UINT64 3, MULTI_UINT64 4.
        matches!(self.otype(), 3 | 4)
    }
}

/// `daos_recx_t`: a run of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recx {
    pub idx: u64,
    pub nr: u64,
}

impl Recx {
    fn from_raw(b: &[u8]) -> Recx {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&b[..8]);
        hi.copy_from_slice(&b[8..16]);
        Recx {
            idx: u64::from_le_bytes(lo),
            nr: u64::from_le_bytes(hi),
        }
    }

    pub fn encode(&self, e: &mut Encoder<'_>, field: &'static str) -> Result<(), CartError> {
        e.u64(self.idx, field)?;
        e.u64(self.nr, field)
    }
}

/// Skips a `struct dcs_csum_info` (its fields and checksum bytes).
fn skip_csum_info(d: &mut Decoder<'_>, field: &'static str) -> Result<(), CartError> {
    let _nr = d.u32(field)?;
    let buf_len = d.u32(field)?;
    d.take(8, field)?; // chunk size, type, length
    d.take(buf_len as usize, field)?;
    Ok(())
}

/// An `iod` of an `OBJ_RW` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iod<'a> {
    /// The akey.
    pub name: &'a [u8],
    pub kind: u32,
    /// Record size (array) or value size (single); 0: any (fetch) or a punch (update).
    pub size: u64,
    /// Per-akey conditions, with [`cond::PER_AKEY`].
    pub flags: u64,
    /// Records count (recxs of an array).
    pub nr: u32,
    /// The recxs, raw (16 bytes each), when sent.
    recxs: &'a [u8],
}

impl<'a> Iod<'a> {
    /// The recxs (none for a single value).
    pub fn recxs(&self) -> impl Iterator<Item = Recx> + 'a {
        self.recxs.chunks_exact(16).map(Recx::from_raw)
    }

    /// How many recxs came.
    pub fn recx_count(&self) -> usize {
        self.recxs.len() / 16
    }

    fn decode(d: &mut Decoder<'a>, csums: bool, ec: bool) -> Result<Iod<'a>, CartError> {
        let name = d.iov("iod_name")?;
        let kind = d.u32("iod_type")?;
        let size = d.u64("iod_size")?;
        let flags = d.u64("iod_flags")?;
        let nr = d.u32("iod_nr")?;
        if csums {
            let ic_nr = d.u32("ic_nr")?;
            for _ in 0..ic_nr {
                skip_csum_info(d, "ic_data")?;
            }
            skip_csum_info(d, "ic_akey")?;
        }
        let mut recxs: &[u8] = &[];
        if nr != 0 {
            let existing = d.u32("iod_recxs flags")?;
            if existing & 1 != 0 {
                recxs = d.take(nr as usize * 16, "iod_recxs")?;
            }
            if ec {
                return Err(CartError::Invalid {
                    field: "oia_oiod_nr",
                    why: "erasure-coded objects are not served (no EC classes here)",
                });
            }
        }
        if !matches!(kind, iod_type::SINGLE | iod_type::ARRAY) {
            return Err(CartError::Invalid {
                field: "iod_type",
                why: "neither SINGLE (1) nor ARRAY (2)",
            });
        }
        Ok(Iod {
            name,
            kind,
            size,
            flags,
            nr,
            recxs,
        })
    }
}

/// A `d_iov_t` of a request's sgl: the sender's buffer length and the bytes it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iov<'a> {
    pub buf_len: u64,
    pub data: &'a [u8],
}

fn decode_iov<'a>(d: &mut Decoder<'a>, field: &'static str) -> Result<Iov<'a>, CartError> {
    let buf_len = d.u64(field)?;
    let len = d.u64(field)?;
    if buf_len == 0 {
        return Ok(Iov { buf_len, data: &[] });
    }
    if len > buf_len {
        return Err(CartError::Invalid {
            field,
            why: "iov length above its buffer length",
        });
    }
    let n = usize::try_from(len).map_err(|_| CartError::Length { field, len })?;
    Ok(Iov {
        buf_len,
        data: d.take(n, field)?,
    })
}

/// A `d_sg_list_t` of a request: its iovs, walked on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sgl<'a> {
    pub nr: u32,
    iovs: &'a [u8],
}

impl<'a> Sgl<'a> {
    fn decode(d: &mut Decoder<'a>) -> Result<Sgl<'a>, CartError> {
        let nr = d.u32("sg_nr")?;
        d.u32("sg_nr_out")?;
        let start = d.rest();
        for _ in 0..nr {
            decode_iov(d, "sg_iovs")?;
        }
        let used = start.len() - d.rest().len();
        Ok(Sgl {
            nr,
            iovs: &start[..used],
        })
    }

    /// The iovs (already checked at decode).
    pub fn iovs(&self) -> impl Iterator<Item = Iov<'a>> + 'a {
        let mut d = Decoder::new(self.iovs);
        (0..self.nr).map_while(move |_| decode_iov(&mut d, "sg_iovs").ok())
    }

    /// Room the sender's buffers have in all.
    pub fn capacity(&self) -> u64 {
        self.iovs().map(|i| i.buf_len).sum()
    }

    /// Bytes sent in all.
    pub fn len(&self) -> usize {
        self.iovs().map(|i| i.data.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a `CRT_ARRAY` count, refusing one that the remaining bytes cannot hold at `min`
/// bytes an element.
fn count(d: &mut Decoder<'_>, field: &'static str, min: usize) -> Result<u32, CartError> {
    let n = d.u64(field)?;
    if n.saturating_mul(min as u64) > d.rest().len() as u64 {
        return Err(CartError::Length { field, len: n });
    }
    u32::try_from(n).map_err(|_| CartError::Length { field, len: n })
}

/// `obj_rw_in` (v10): an update or a fetch of one dkey's akeys on one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RwIn<'a> {
    pub dti: [u8; 24],
    pub oid: UnitOid,
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub epoch: u64,
    pub epoch_first: u64,
    pub api_flags: u64,
    pub dkey_hash: u64,
    pub map_ver: u32,
    pub nr: u32,
    pub start_shard: u32,
    pub flags: u32,
    pub dkey: &'a [u8],
    pub iod_nr: u32,
    iods: &'a [u8],
    csums: bool,
    pub sgl_nr: u32,
    sgls: &'a [u8],
    pub bulk_nr: u32,
    bulks: &'a [u8],
    /// Targets to forward to (replicated classes); none for `S*` objects.
    pub shard_tgt_nr: u32,
}

/// `ORF_EC` in `orw_flags`: an erasure-coded object's I/O.
pub const ORF_EC: u32 = 1 << 4;

/// An `OBJ_RW` input's `orw_flags`, read from its fixed place (before anything of variable
/// length), for a request that does not decode as a whole.
pub fn rw_flags(b: &[u8]) -> Option<u32> {
    // dti 24, oid 24, pool/container handle/container 48, epoch, epoch_first, api_flags,
    // dkey_hash 8 each, map_ver, nr, start_shard 4 each.
    const AT: usize = 24 + 24 + 48 + 32 + 12;
    b.get(AT..AT + 4)
        .map(|f| u32::from_le_bytes([f[0], f[1], f[2], f[3]]))
}

impl<'a> RwIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<RwIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        let mut dti = [0u8; 24];
        dti.copy_from_slice(d.take(24, "orw_dti")?);
        let oid = UnitOid::decode(&mut d, "orw_oid")?;
        let pool = d.uuid("orw_pool_uuid")?;
        let co_hdl = d.uuid("orw_co_hdl")?;
        let co_uuid = d.uuid("orw_co_uuid")?;
        let epoch = d.u64("orw_epoch")?;
        let epoch_first = d.u64("orw_epoch_first")?;
        let api_flags = d.u64("orw_api_flags")?;
        let dkey_hash = d.u64("orw_dkey_hash")?;
        let map_ver = d.u32("orw_map_ver")?;
        let nr = d.u32("orw_nr")?;
        let start_shard = d.u32("orw_start_shard")?;
        let flags = d.u32("orw_flags")?;
        let dkey = d.iov("orw_dkey")?;
        if d.u8("orw_dkey_csum")? != 0 {
            skip_csum_info(&mut d, "orw_dkey_csum")?;
        }
        // struct obj_iod_array
        let iod_nr = d.u32("oia_iod_nr")?;
        let oiod_nr = d.u32("oia_oiod_nr")?;
        let mut csums = false;
        let iods_start;
        if iod_nr == 0 {
            iods_start = d.rest();
        } else {
            let off_nr = d.u32("oia_offs")?;
            csums = d.u8("oia_iod_csums")? != 0;
            d.take(off_nr as usize * 8, "oia_offs")?;
            iods_start = d.rest();
            for _ in 0..iod_nr {
                Iod::decode(&mut d, csums, oiod_nr != 0)?;
            }
        }
        let iods = &iods_start[..iods_start.len() - d.rest().len()];
        if iod_nr != nr {
            return Err(CartError::Invalid {
                field: "orw_nr",
                why: "differs from the iod count",
            });
        }
        let cos = count(&mut d, "orw_dti_cos", 24)?;
        d.take(cos as usize * 24, "orw_dti_cos")?;
        let sgl_nr = count(&mut d, "orw_sgls", 8)?;
        let sgls_start = d.rest();
        for _ in 0..sgl_nr {
            Sgl::decode(&mut d)?;
        }
        let sgls = &sgls_start[..sgls_start.len() - d.rest().len()];
        let bulk_nr = count(&mut d, "orw_bulks", 8)?;
        let bulks_start = d.rest();
        for _ in 0..bulk_nr {
            bulk::decode(&mut d, "orw_bulks")?;
        }
        let bulks = &bulks_start[..bulks_start.len() - d.rest().len()];
        let shard_tgt_nr = count(&mut d, "orw_shard_tgts", 20)?;
        d.take(shard_tgt_nr as usize * 20, "orw_shard_tgts")?;
        d.u32("orw_tgt_idx")?;
        d.u32("orw_tgt_max")?;
        d.take(COMM_LEN, "orw_comm_in")?;
        if sgl_nr != 0 && sgl_nr != nr {
            return Err(CartError::Invalid {
                field: "orw_sgls",
                why: "neither none nor one per iod",
            });
        }
        if bulk_nr != 0 && bulk_nr != nr {
            return Err(CartError::Invalid {
                field: "orw_bulks",
                why: "neither none nor one per iod",
            });
        }
        Ok(RwIn {
            dti,
            oid,
            pool,
            co_hdl,
            co_uuid,
            epoch,
            epoch_first,
            api_flags,
            dkey_hash,
            map_ver,
            nr,
            start_shard,
            flags,
            dkey,
            iod_nr,
            iods,
            csums,
            sgl_nr,
            sgls,
            bulk_nr,
            bulks,
            shard_tgt_nr,
        })
    }

    /// Whether checksums came with the iods (a container with checksums on).
    pub fn has_csums(&self) -> bool {
        self.csums
    }

    /// The iods (already checked at decode).
    pub fn iods(&self) -> impl Iterator<Item = Iod<'a>> + 'a {
        let mut d = Decoder::new(self.iods);
        let csums = self.csums;
        (0..self.iod_nr).map_while(move |_| Iod::decode(&mut d, csums, false).ok())
    }

    /// The inline sgls, one per iod (none: bulk, or a size query).
    pub fn sgls(&self) -> impl Iterator<Item = Sgl<'a>> + 'a {
        let mut d = Decoder::new(self.sgls);
        (0..self.sgl_nr).map_while(move |_| Sgl::decode(&mut d).ok())
    }

    /// The bulk handles, one per iod (`None`: a NULL handle).
    pub fn bulks(&self) -> impl Iterator<Item = Option<Bulk<'a>>> + 'a {
        let mut d = Decoder::new(self.bulks);
        (0..self.bulk_nr).map_while(move |_| bulk::decode(&mut d, "orw_bulks").ok())
    }
}

/// Writes the start of `obj_rw_out` (ret, map version, epoch); the arrays follow.
pub fn write_rw_head(
    e: &mut Encoder<'_>,
    ret: i32,
    map_version: u32,
    epoch: u64,
) -> Result<(), CartError> {
    e.i32(ret, "orw_ret")?;
    e.u32(map_version, "orw_map_version")?;
    e.u64(epoch, "orw_epoch")
}

/// Writes a `CRT_ARRAY` count.
pub fn write_count(e: &mut Encoder<'_>, n: usize, field: &'static str) -> Result<(), CartError> {
    e.u64(n as u64, field)
}

/// Writes `daos_req_comm_out` (zeros: no enqueue id).
pub fn write_comm(e: &mut Encoder<'_>) -> Result<(), CartError> {
    e.take(COMM_LEN, "comm_out")?.fill(0);
    Ok(())
}

/// An update's reply (no arrays): ret, map version, epoch, seven empty arrays, comm out.
pub fn write_update_out(
    e: &mut Encoder<'_>,
    ret: i32,
    map_version: u32,
    epoch: u64,
) -> Result<(), CartError> {
    write_rw_head(e, ret, map_version, epoch)?;
    for field in [
        "orw_iod_sizes",
        "orw_data_sizes",
        "orw_sgls",
        "orw_nrs",
        "orw_iod_csums",
        "orw_rels",
        "orw_maps",
    ] {
        write_count(e, 0, field)?;
    }
    write_comm(e)
}

/// `obj_punch_in` (v10): an object, dkey or akey punch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PunchIn<'a> {
    pub dti: [u8; 24],
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub oid: UnitOid,
    pub epoch: u64,
    pub api_flags: u64,
    pub dkey_hash: u64,
    pub map_ver: u32,
    pub flags: u32,
    pub dkey_nr: u32,
    dkeys: &'a [u8],
    pub akey_nr: u32,
    akeys: &'a [u8],
    /// The other replicas' targets a replicated punch's leader forwards it to.
    pub shard_tgt_nr: u32,
}

fn iovs_region<'a>(d: &mut Decoder<'a>, field: &'static str) -> Result<(u32, &'a [u8]), CartError> {
    let n = count(d, field, 16)?;
    let start = d.rest();
    for _ in 0..n {
        d.iov(field)?;
    }
    Ok((n, &start[..start.len() - d.rest().len()]))
}

fn iovs_of<'a>(n: u32, b: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut d = Decoder::new(b);
    (0..n).map_while(move |_| d.iov("keys").ok())
}

impl<'a> PunchIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<PunchIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        let mut dti = [0u8; 24];
        dti.copy_from_slice(d.take(24, "opi_dti")?);
        let pool = d.uuid("opi_pool_uuid")?;
        let co_hdl = d.uuid("opi_co_hdl")?;
        let co_uuid = d.uuid("opi_co_uuid")?;
        let oid = UnitOid::decode(&mut d, "opi_oid")?;
        let epoch = d.u64("opi_epoch")?;
        let api_flags = d.u64("opi_api_flags")?;
        let dkey_hash = d.u64("opi_dkey_hash")?;
        let map_ver = d.u32("opi_map_ver")?;
        let flags = d.u32("opi_flags")?;
        let cos = count(&mut d, "opi_dti_cos", 24)?;
        d.take(cos as usize * 24, "opi_dti_cos")?;
        let (dkey_nr, dkeys) = iovs_region(&mut d, "opi_dkeys")?;
        let (akey_nr, akeys) = iovs_region(&mut d, "opi_akeys")?;
        let tgts = count(&mut d, "opi_shard_tgts", 20)?;
        d.take(tgts as usize * 20, "opi_shard_tgts")?;
        d.take(COMM_LEN, "opi_comm_in")?;
        Ok(PunchIn {
            dti,
            pool,
            co_hdl,
            co_uuid,
            oid,
            epoch,
            api_flags,
            dkey_hash,
            map_ver,
            flags,
            dkey_nr,
            dkeys,
            akey_nr,
            akeys,
            shard_tgt_nr: tgts,
        })
    }

    pub fn dkeys(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        iovs_of(self.dkey_nr, self.dkeys)
    }

    pub fn akeys(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        iovs_of(self.akey_nr, self.akeys)
    }
}

/// A punch's reply: ret, map version, comm out.
pub fn write_punch_out(e: &mut Encoder<'_>, ret: i32, map_version: u32) -> Result<(), CartError> {
    e.i32(ret, "opo_ret")?;
    e.u32(map_version, "opo_map_version")?;
    write_comm(e)
}

/// `obj_key_enum_in` (v10): a dkey, akey or recx enumeration of one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnumIn<'a> {
    pub oid: UnitOid,
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub epr_lo: u64,
    pub epr_hi: u64,
    pub map_ver: u32,
    /// How many key descriptors (or recxs) the client takes.
    pub nr: u32,
    pub rec_type: u32,
    pub flags: u32,
    pub dkey: &'a [u8],
    pub akey: &'a [u8],
    pub anchor: &'a [u8],
    pub dkey_anchor: &'a [u8],
    pub akey_anchor: &'a [u8],
    /// The client's key buffer (its iovs' sizes; the bytes it sends are its buffer's).
    pub sgl: Sgl<'a>,
    pub bulk: Option<Bulk<'a>>,
    pub kds_bulk: Option<Bulk<'a>>,
}

impl<'a> EnumIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<EnumIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        d.take(24, "oei_dti")?;
        let oid = UnitOid::decode(&mut d, "oei_oid")?;
        let pool = d.uuid("oei_pool_uuid")?;
        let co_hdl = d.uuid("oei_co_hdl")?;
        let co_uuid = d.uuid("oei_co_uuid")?;
        let epr_lo = d.u64("oei_epr")?;
        let epr_hi = d.u64("oei_epr")?;
        let map_ver = d.u32("oei_map_ver")?;
        let nr = d.u32("oei_nr")?;
        let rec_type = d.u32("oei_rec_type")?;
        let flags = d.u32("oei_flags")?;
        let dkey = d.iov("oei_dkey")?;
        let akey = d.iov("oei_akey")?;
        let anchor = d.take(ANCHOR_LEN, "oei_anchor")?;
        let dkey_anchor = d.take(ANCHOR_LEN, "oei_dkey_anchor")?;
        let akey_anchor = d.take(ANCHOR_LEN, "oei_akey_anchor")?;
        let sgl = Sgl::decode(&mut d)?;
        let bulk = bulk::decode(&mut d, "oei_bulk")?;
        let kds_bulk = bulk::decode(&mut d, "oei_kds_bulk")?;
        d.take(COMM_LEN, "oei_comm_in")?;
        Ok(EnumIn {
            oid,
            pool,
            co_hdl,
            co_uuid,
            epr_lo,
            epr_hi,
            map_ver,
            nr,
            rec_type,
            flags,
            dkey,
            akey,
            anchor,
            dkey_anchor,
            akey_anchor,
            sgl,
            bulk,
            kds_bulk,
        })
    }
}

/// `obj_query_key_in` (v10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryKeyIn<'a> {
    pub co_hdl: [u8; 16],
    pub pool: [u8; 16],
    pub co_uuid: [u8; 16],
    pub oid: UnitOid,
    pub epoch: u64,
    pub map_ver: u32,
    pub flags: u32,
    pub api_flags: u64,
    pub dkey: &'a [u8],
    pub akey: &'a [u8],
}

impl<'a> QueryKeyIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<QueryKeyIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        d.take(24, "okqi_dti")?;
        let co_hdl = d.uuid("okqi_co_hdl")?;
        let pool = d.uuid("okqi_pool_uuid")?;
        let co_uuid = d.uuid("okqi_co_uuid")?;
        let oid = UnitOid::decode(&mut d, "okqi_oid")?;
        let epoch = d.u64("okqi_epoch")?;
        d.u64("okqi_epoch_first")?;
        let map_ver = d.u32("okqi_map_ver")?;
        let flags = d.u32("okqi_flags")?;
        let api_flags = d.u64("okqi_api_flags")?;
        let dkey = d.iov("okqi_dkey")?;
        let akey = d.iov("okqi_akey")?;
        d.take(COMM_LEN, "okqi_comm_in")?;
        Ok(QueryKeyIn {
            co_hdl,
            pool,
            co_uuid,
            oid,
            epoch,
            map_ver,
            flags,
            api_flags,
            dkey,
            akey,
        })
    }
}

/// What `QUERY_KEY` answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryKeyOut<'a> {
    pub ret: i32,
    pub map_version: u32,
    pub epoch: u64,
    pub dkey: &'a [u8],
    pub akey: &'a [u8],
    pub recx: Recx,
    pub max_epoch: u64,
}

impl QueryKeyOut<'_> {
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.i32(self.ret, "okqo_ret")?;
        e.u32(self.map_version, "okqo_map_version")?;
        e.u64(self.epoch, "okqo_epoch")?;
        e.u32(0, "okqo_flags")?;
        e.u32(0, "okqo_pad32_1")?;
        e.iov(self.dkey, "okqo_dkey")?;
        e.iov(self.akey, "okqo_akey")?;
        self.recx.encode(e, "okqo_recx")?;
        Recx::default().encode(e, "okqo_recx_parity")?;
        Recx::default().encode(e, "okqo_recx_punched")?;
        e.u64(self.max_epoch, "okqo_max_epoch")?;
        write_comm(e)
    }
}

// ------------------------------------------------------------------------------------------
// The RPCs a client punches and sizes objects of several shards with
// (`docs/daos-protocol/cpd_wire.md`): `OBJ_CPD` (a punch converted to a transaction),
// `OBJ_COLL_PUNCH` and `OBJ_COLL_QUERY`. Rare metadata operations: decoded into owned lists.

/// `daos_cpd_sg` types served (inline forms).
pub mod dcst {
    pub const HEAD: u32 = 1;
    pub const REQ_CLI: u32 = 2;
    pub const REQ_SRV: u32 = 3;
    pub const ENT: u32 = 4;
    pub const TGT: u32 = 5;
}

/// `daos_cpd_sub_opc`.
pub mod cpd_op {
    pub const UPDATE: u16 = 0;
    pub const READ: u16 = 1;
    pub const PUNCH_OBJ: u16 = 2;
    pub const PUNCH_DKEY: u16 = 3;
    pub const PUNCH_AKEY: u16 = 4;
}

/// A sub-request of a CPD transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpdSub<'a> {
    pub opc: u16,
    pub oid: UnitOid,
    pub dkey: &'a [u8],
    pub api_flags: u64,
    /// PUNCH_AKEY: the akeys.
    pub akeys: Vec<&'a [u8]>,
}

/// What one target of a CPD does: its VOS index and the sub-requests it runs, with the
/// object shard each is for (writes only: reads just set timestamps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpdTarget {
    pub rank: u32,
    pub tgt_idx: u16,
    /// (shard id, sub-request index) of each write.
    pub writes: Vec<(u32, u32)>,
}

/// `obj_cpd_in`, inline form, as a client's converted punch sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpdIn<'a> {
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub map_ver: u32,
    pub flags: u32,
    pub xid: [u8; 24],
    pub subs: Vec<CpdSub<'a>>,
    pub targets: Vec<CpdTarget>,
}

fn sg_head(d: &mut Decoder<'_>, field: &'static str, want: &[u32]) -> Result<u32, CartError> {
    if count(d, field, 8)? != 1 {
        return Err(CartError::Invalid {
            field,
            why: "not one transaction (clients pack one per CPD)",
        });
    }
    let kind = d.u32(field)? & 0xFFFF;
    if !want.contains(&kind) {
        return Err(CartError::Invalid {
            field,
            why: "a bulk (or unknown) daos_cpd_sg type: only inline bodies are served",
        });
    }
    d.u32(field)
}

impl<'a> CpdIn<'a> {
    /// Writes the input as a client's converted punch fills it (inline, one transaction).
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.uuid(&self.pool, "oci_pool_uuid")?;
        e.uuid(&self.co_hdl, "oci_co_hdl")?;
        e.uuid(&self.co_uuid, "oci_co_uuid")?;
        e.u32(self.map_ver, "oci_map_ver")?;
        e.u32(self.flags, "oci_flags")?;
        write_count(e, 1, "oci_sub_heads")?;
        e.u32(dcst::HEAD, "dcs_type")?;
        e.u32(1, "dcs_nr")?;
        e.bytes(&self.xid, "dcsh_xid")?;
        let leader = self.subs.first().map_or(UnitOid::default(), |s| s.oid);
        leader.encode(e, "dcsh_leader_oid")?;
        e.u64(0, "oe_value")?;
        e.u64(0, "oe_first")?;
        e.u32(1, "oe_flags")?;
        e.u32(0x40, "oe_rpc_flags")?;
        let n = self.targets.len() as u32;
        e.u32(16 + 8 * n, "dcsh_mbs")?;
        e.u32(n, "dm_tgt_cnt")?;
        e.u32(1, "dm_grp_cnt")?;
        e.u32(8 * n, "dm_data_size")?;
        e.u16(2, "dm_flags")?;
        e.u16(0, "dm_dte_flags")?;
        for t in &self.targets {
            e.u32(u32::from(t.tgt_idx), "ddt_id")?;
            e.u32(0, "ddt_flags")?;
        }
        write_count(e, 1, "oci_sub_reqs")?;
        e.u32(dcst::REQ_CLI, "dcs_type")?;
        e.u32(self.subs.len() as u32, "dcs_nr")?;
        for sub in &self.subs {
            e.u16(sub.opc, "dcsr_opc")?;
            e.u16(0, "dcsr_ec_tgt_nr")?;
            e.u32(sub.akeys.len() as u32, "dcsr_nr")?;
            sub.oid.encode(e, "dcsr_oid")?;
            e.iov(sub.dkey, "dcsr_dkey")?;
            e.u64(0, "dcsr_dkey_hash")?;
            e.u64(sub.api_flags, "dcsr_api_flags")?;
            for a in &sub.akeys {
                e.iov(a, "dcsr_akeys")?;
            }
        }
        write_count(e, 1, "oci_disp_ents")?;
        e.u32(dcst::ENT, "dcs_type")?;
        e.u32(n, "dcs_nr")?;
        for t in &self.targets {
            e.u32(0, "dcde_read_cnt")?;
            e.u32(t.writes.len() as u32, "dcde_write_cnt")?;
            for (i, (shard, req)) in t.writes.iter().enumerate() {
                e.u32(i as u32, "dcri_shard_off")?;
                e.u32(*shard, "dcri_shard_id")?;
                e.u32(*req, "dcri_req_idx")?;
                e.u32(0, "dcri_padding")?;
            }
        }
        write_count(e, 1, "oci_disp_tgts")?;
        e.u32(dcst::TGT, "dcs_type")?;
        e.u32(n, "dcs_nr")?;
        for t in &self.targets {
            e.u32(t.rank, "st_rank")?;
            e.u32(0, "st_shard")?;
            e.u32(0, "st_shard_id")?;
            e.u32(u32::from(t.tgt_idx), "st_tgt_id")?;
            e.u16(t.tgt_idx, "st_tgt_idx")?;
            e.u8(0, "st_ec_tgt")?;
            e.u8(0, "st_flags")?;
        }
        Ok(())
    }

    pub fn decode(b: &'a [u8]) -> Result<CpdIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        let pool = d.uuid("oci_pool_uuid")?;
        let co_hdl = d.uuid("oci_co_hdl")?;
        let co_uuid = d.uuid("oci_co_uuid")?;
        let map_ver = d.u32("oci_map_ver")?;
        let flags = d.u32("oci_flags")?;
        if sg_head(&mut d, "oci_sub_heads", &[dcst::HEAD])? != 1 {
            return Err(CartError::Invalid {
                field: "oci_sub_heads",
                why: "not one head",
            });
        }
        let mut xid = [0u8; 24];
        xid.copy_from_slice(d.take(24, "dcsh_xid")?);
        d.take(24, "dcsh_leader_oid")?;
        d.take(24, "dcsh_epoch")?;
        let mbs = d.u32("dcsh_mbs")?;
        d.take(mbs as usize, "dcsh_mbs")?;
        let nsub = sg_head(&mut d, "oci_sub_reqs", &[dcst::REQ_CLI, dcst::REQ_SRV])?;
        let mut subs = Vec::new();
        for _ in 0..nsub {
            let opc = d.u16("dcsr_opc")?;
            let ec = d.u16("dcsr_ec_tgt_nr")?;
            let nr = d.u32("dcsr_nr")?;
            let oid = UnitOid::decode(&mut d, "dcsr_oid")?;
            let dkey = d.iov("dcsr_dkey")?;
            d.u64("dcsr_dkey_hash")?;
            let api_flags = d.u64("dcsr_api_flags")?;
            let mut akeys = Vec::new();
            match opc {
                cpd_op::PUNCH_OBJ | cpd_op::PUNCH_DKEY | cpd_op::PUNCH_AKEY => {
                    if nr as usize > d.rest().len() / 16 {
                        return Err(CartError::Length {
                            field: "dcsr_akeys",
                            len: u64::from(nr),
                        });
                    }
                    for _ in 0..nr {
                        akeys.push(d.iov("dcsr_akeys")?);
                    }
                }
                cpd_op::READ if ec == 0 => {
                    for _ in 0..nr {
                        d.iov("iod_name")?;
                        d.take(4 + 8 + 8, "iod")?;
                        let n = d.u32("iod_nr")?;
                        d.take(n as usize * 16, "iod_recxs")?;
                    }
                }
                _ => {
                    return Err(CartError::Invalid {
                        field: "dcsr_opc",
                        why: "transactional updates are not served (only punches and reads)",
                    });
                }
            }
            subs.push(CpdSub {
                opc,
                oid,
                dkey,
                api_flags,
                akeys,
            });
        }
        let nent = sg_head(&mut d, "oci_disp_ents", &[dcst::ENT])?;
        let mut targets = Vec::new();
        for _ in 0..nent {
            let reads = d.u32("dcde_read_cnt")?;
            let writes = d.u32("dcde_write_cnt")?;
            let n = u64::from(reads) + u64::from(writes);
            if n.saturating_mul(16) > d.rest().len() as u64 {
                return Err(CartError::Length {
                    field: "dcde_reqs",
                    len: n,
                });
            }
            let mut w = Vec::new();
            for i in 0..n {
                d.u32("dcri_shard_off")?;
                let shard = d.u32("dcri_shard_id")?;
                let req = d.u32("dcri_req_idx")?;
                d.u32("dcri_padding")?;
                if req >= nsub {
                    return Err(CartError::Invalid {
                        field: "dcri_req_idx",
                        why: "beyond the sub-requests",
                    });
                }
                if i >= u64::from(reads) {
                    w.push((shard, req));
                }
            }
            targets.push(CpdTarget {
                rank: 0,
                tgt_idx: 0,
                writes: w,
            });
        }
        let ntgt = sg_head(&mut d, "oci_disp_tgts", &[dcst::TGT])?;
        if ntgt != nent {
            return Err(CartError::Invalid {
                field: "oci_disp_tgts",
                why: "not one target per dispatch entry",
            });
        }
        for t in targets.iter_mut() {
            t.rank = d.u32("st_rank")?;
            d.take(8, "st_shard")?;
            d.u32("st_tgt_id")?;
            t.tgt_idx = d.u16("st_tgt_idx")?;
            d.take(2, "st_flags")?;
        }
        Ok(CpdIn {
            pool,
            co_hdl,
            co_uuid,
            map_ver,
            flags,
            xid,
            subs,
            targets,
        })
    }
}

/// Writes `obj_cpd_out`: ret, map version, one sub-epoch and one sub-result (the client reads
/// both whenever ret is 0).
pub fn write_cpd_out(
    e: &mut Encoder<'_>,
    ret: i32,
    map_version: u32,
    epoch: u64,
    sub_ret: i32,
) -> Result<(), CartError> {
    e.i32(ret, "oco_ret")?;
    e.u32(map_version, "oco_map_version")?;
    write_count(e, 1, "oco_sub_epochs")?;
    e.u64(epoch, "oco_sub_epochs")?;
    write_count(e, 1, "oco_sub_rets")?;
    e.i32(sub_ret, "oco_sub_rets")
}

/// One rank's part of a collective RPC: the VOS target indexes holding shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollTarget {
    pub rank: u32,
    pub tgt_idxs: Vec<u16>,
}

/// Writes the targets as a client does: a bitmap of VOS indexes, one shard on each (its id
/// the index), and with `ids` the targets' ids (a modification).
fn encode_coll_targets(
    e: &mut Encoder<'_>,
    targets: &[CollTarget],
    ids: bool,
) -> Result<(), CartError> {
    write_count(e, targets.len(), "coll_tgts")?;
    for t in targets {
        let max = t.tgt_idxs.iter().copied().max().unwrap_or(0);
        let bitmap_sz = (max >> 3) + 1;
        e.u32(t.rank, "dct_rank")?;
        e.u8(bitmap_sz as u8, "dct_bitmap_sz")?;
        e.u8(max as u8, "dct_max_shard")?;
        e.u8(t.tgt_idxs.len() as u8, "dct_tgt_nr")?;
        e.u8(if ids { t.tgt_idxs.len() as u8 } else { 0 }, "dct_tgt_cap")?;
        let mut bitmap = vec![0u8; usize::from(bitmap_sz)];
        for i in &t.tgt_idxs {
            bitmap[usize::from(*i / 8)] |= 1 << (i % 8);
        }
        e.bytes(&bitmap, "dct_bitmap")?;
        for i in 0..=max {
            let has = t.tgt_idxs.contains(&i);
            e.u16(u16::from(has), "dcs_nr")?;
            e.u16(0, "dcs_cap")?;
            e.u32(if has { u32::from(i) } else { 0 }, "dcs_inline")?;
        }
        if ids {
            for i in &t.tgt_idxs {
                e.u32(u32::from(*i), "dct_tgt_ids")?;
            }
        }
    }
    Ok(())
}

fn decode_coll_targets(d: &mut Decoder<'_>) -> Result<Vec<CollTarget>, CartError> {
    let n = count(d, "coll_tgts", 8)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let rank = d.u32("dct_rank")?;
        let bitmap_sz = d.u8("dct_bitmap_sz")?;
        let max_shard = d.u8("dct_max_shard")?;
        let tgt_nr = d.u8("dct_tgt_nr")?;
        let tgt_cap = d.u8("dct_tgt_cap")?;
        if bitmap_sz == 0 || usize::from(max_shard) >= usize::from(bitmap_sz) * 8 {
            return Err(CartError::Invalid {
                field: "dct_bitmap_sz",
                why: "empty bitmap, or the highest shard index beyond it",
            });
        }
        let bitmap = d.take(usize::from(bitmap_sz), "dct_bitmap")?;
        for _ in 0..=max_shard {
            let nr = d.u16("dcs_nr")?;
            d.u16("dcs_cap")?;
            d.u32("dcs_inline")?;
            if nr > 1 {
                d.take(usize::from(nr) * 4, "dcs_buf")?;
            }
        }
        if tgt_cap != 0 && tgt_nr != 0 {
            d.take(usize::from(tgt_nr) * 4, "dct_tgt_ids")?;
        }
        let tgt_idxs = (0..u16::from(bitmap_sz) * 8)
            .filter(|i| bitmap[usize::from(*i / 8)] & (1 << (i % 8)) != 0)
            .collect();
        out.push(CollTarget { rank, tgt_idxs });
    }
    Ok(out)
}

/// `obj_coll_punch_in`, targets inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollPunchIn {
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub oid: UnitOid,
    pub api_flags: u64,
    pub map_ver: u32,
    pub flags: u32,
    pub targets: Vec<CollTarget>,
}

impl CollPunchIn {
    /// Writes the input as `dc_obj_coll_punch` fills it (targets inline).
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.bytes(&[0x6C; 24], "odm_xid")?;
        e.u32(64, "odm_mbs_max_sz")?;
        e.u32(0, "odm_padding")?;
        // A membership of one target and the collective tail (the engine ignores it).
        e.u32(40, "odm_mbs")?;
        e.u32(1, "dm_tgt_cnt")?;
        e.u32(1, "dm_grp_cnt")?;
        e.u32(24, "dm_data_size")?;
        e.u16(0x12, "dm_flags")?;
        e.u16(0, "dm_dte_flags")?;
        e.take(24, "dm_data")?.fill(0);
        e.uuid(&self.pool, "ocpi_po_uuid")?;
        e.uuid(&self.co_hdl, "ocpi_co_hdl")?;
        e.uuid(&self.co_uuid, "ocpi_co_uuid")?;
        self.oid.encode(e, "ocpi_oid")?;
        e.u64(u64::MAX, "ocpi_epoch")?;
        e.u64(self.api_flags, "ocpi_api_flags")?;
        e.u32(self.map_ver, "ocpi_map_ver")?;
        e.u32(self.flags, "ocpi_flags")?;
        e.u32(0, "ocpi_bulk_tgt_sz")?;
        e.u32(0, "ocpi_bulk_tgt_nr")?;
        e.u64(0, "ocpi_tgt_bulk")?;
        e.u32(0, "ocpi_max_tgt_sz")?;
        e.u16(0, "ocpi_disp_width")?;
        e.u16(0, "ocpi_disp_depth")?;
        encode_coll_targets(e, &self.targets, true)?;
        e.take(COMM_LEN, "ocpi_comm_in")?.fill(0);
        Ok(())
    }

    pub fn decode(b: &[u8]) -> Result<CollPunchIn, CartError> {
        let mut d = Decoder::new(b);
        d.take(24, "odm_xid")?;
        d.u32("odm_mbs_max_sz")?;
        d.u32("odm_padding")?;
        let mbs = d.u32("odm_mbs")?;
        d.take(mbs as usize, "odm_mbs")?;
        let pool = d.uuid("ocpi_po_uuid")?;
        let co_hdl = d.uuid("ocpi_co_hdl")?;
        let co_uuid = d.uuid("ocpi_co_uuid")?;
        let oid = UnitOid::decode(&mut d, "ocpi_oid")?;
        d.u64("ocpi_epoch")?;
        let api_flags = d.u64("ocpi_api_flags")?;
        let map_ver = d.u32("ocpi_map_ver")?;
        let flags = d.u32("ocpi_flags")?;
        let bulk_sz = d.u32("ocpi_bulk_tgt_sz")?;
        d.u32("ocpi_bulk_tgt_nr")?;
        if bulk_sz != 0 || bulk::decode(&mut d, "ocpi_tgt_bulk")?.is_some() {
            return Err(CartError::Invalid {
                field: "ocpi_tgt_bulk",
                why: "targets by bulk (thousands of them) are not served",
            });
        }
        d.u32("ocpi_max_tgt_sz")?;
        d.u16("ocpi_disp_width")?;
        d.u16("ocpi_disp_depth")?;
        let targets = decode_coll_targets(&mut d)?;
        d.take(COMM_LEN, "ocpi_comm_in")?;
        Ok(CollPunchIn {
            pool,
            co_hdl,
            co_uuid,
            oid,
            api_flags,
            map_ver,
            flags,
            targets,
        })
    }
}

/// `obj_coll_query_in`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollQueryIn<'a> {
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub oid: UnitOid,
    pub api_flags: u64,
    pub map_ver: u32,
    pub flags: u32,
    pub dkey: &'a [u8],
    pub akey: &'a [u8],
    pub targets: Vec<CollTarget>,
}

impl<'a> CollQueryIn<'a> {
    /// Writes the input as `dc_obj_coll_query` fills it.
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.take(24, "ocqi_xid")?.fill(0);
        e.uuid(&self.pool, "ocqi_po_uuid")?;
        e.uuid(&self.co_hdl, "ocqi_co_hdl")?;
        e.uuid(&self.co_uuid, "ocqi_co_uuid")?;
        self.oid.encode(e, "ocqi_oid")?;
        e.u64(u64::MAX, "ocqi_epoch")?;
        e.u64(u64::MAX, "ocqi_epoch_first")?;
        e.u64(self.api_flags, "ocqi_api_flags")?;
        e.u32(self.map_ver, "ocqi_map_ver")?;
        e.u32(self.flags, "ocqi_flags")?;
        e.iov(self.dkey, "ocqi_dkey")?;
        e.iov(self.akey, "ocqi_akey")?;
        e.u32(0, "ocqi_max_tgt_sz")?;
        e.u16(1, "ocqi_disp_width")?;
        e.u16(0, "ocqi_disp_depth")?;
        encode_coll_targets(e, &self.targets, false)?;
        e.take(COMM_LEN, "ocqi_comm_in")?.fill(0);
        Ok(())
    }

    pub fn decode(b: &'a [u8]) -> Result<CollQueryIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        d.take(24, "ocqi_xid")?;
        let pool = d.uuid("ocqi_po_uuid")?;
        let co_hdl = d.uuid("ocqi_co_hdl")?;
        let co_uuid = d.uuid("ocqi_co_uuid")?;
        let oid = UnitOid::decode(&mut d, "ocqi_oid")?;
        d.u64("ocqi_epoch")?;
        d.u64("ocqi_epoch_first")?;
        let api_flags = d.u64("ocqi_api_flags")?;
        let map_ver = d.u32("ocqi_map_ver")?;
        let flags = d.u32("ocqi_flags")?;
        let dkey = d.iov("ocqi_dkey")?;
        let akey = d.iov("ocqi_akey")?;
        d.u32("ocqi_max_tgt_sz")?;
        d.u16("ocqi_disp_width")?;
        d.u16("ocqi_disp_depth")?;
        let targets = decode_coll_targets(&mut d)?;
        d.take(COMM_LEN, "ocqi_comm_in")?;
        Ok(CollQueryIn {
            pool,
            co_hdl,
            co_uuid,
            oid,
            api_flags,
            map_ver,
            flags,
            dkey,
            akey,
            targets,
        })
    }
}

/// Writes `obj_coll_query_out`.
#[allow(clippy::too_many_arguments)]
pub fn write_coll_query_out(
    e: &mut Encoder<'_>,
    ret: i32,
    map_version: u32,
    shard: u32,
    epoch: u64,
    dkey: &[u8],
    akey: &[u8],
    recx: Recx,
    max_epoch: u64,
) -> Result<(), CartError> {
    e.i32(ret, "ocqo_ret")?;
    e.u32(map_version, "ocqo_map_version")?;
    e.u32(shard, "ocqo_shard")?;
    e.u32(0, "ocqo_flags")?;
    e.u64(epoch, "ocqo_epoch")?;
    e.iov(dkey, "ocqo_dkey")?;
    e.iov(akey, "ocqo_akey")?;
    recx.encode(e, "ocqo_recx")?;
    e.u64(max_epoch, "ocqo_max_epoch")?;
    write_comm(e)
}

// ------------------------------------------------------------------------------------------
// The client's side: requests as `dc_obj_shard_*` fill them, replies as DAOS's engine sends
// them (daos-rs's tests and its own client use these).

/// An iod to send.
#[derive(Clone, Copy, Debug)]
pub struct IodSpec<'a> {
    pub name: &'a [u8],
    pub kind: u32,
    pub size: u64,
    pub flags: u64,
    pub recxs: &'a [Recx],
}

/// A client's bulk handle: its registration key, address and length, and whether the
/// server may write it.
#[derive(Clone, Copy, Debug)]
pub struct BulkRef {
    pub addr: u64,
    pub len: u64,
    pub key: u64,
    pub writable: bool,
}

impl BulkRef {
    fn encode(&self, e: &mut Encoder<'_>, field: &'static str) -> Result<(), CartError> {
        let flags = if self.writable {
            bulk::READ_ONLY | bulk::WRITE_ONLY
        } else {
            bulk::READ_ONLY
        };
        bulk::encode(e, self.addr, self.len, self.key, flags, field)
    }
}

/// Where an `OBJ_RW`'s data is.
#[derive(Clone, Copy, Debug)]
pub enum RwData<'a> {
    /// No data: a size query, or an update that punches.
    None,
    /// One iov per iod: its buffer length and the bytes sent.
    Inline(&'a [(u64, &'a [u8])]),
    /// One bulk handle per iod.
    Bulk(&'a [BulkRef]),
}

/// An `OBJ_RW` request.
#[derive(Clone, Copy, Debug)]
pub struct RwCall<'a> {
    pub oid: UnitOid,
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub api_flags: u64,
    pub map_ver: u32,
    pub flags: u32,
    pub dkey: &'a [u8],
    pub iods: &'a [IodSpec<'a>],
    pub data: RwData<'a>,
}

impl RwCall<'_> {
    /// Writes the input (non-transactional: epochs `DAOS_EPOCH_MAX`).
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.bytes(&[0x5A; 24], "orw_dti")?;
        self.oid.encode(e, "orw_oid")?;
        e.uuid(&self.pool, "orw_pool_uuid")?;
        e.uuid(&self.co_hdl, "orw_co_hdl")?;
        e.uuid(&self.co_uuid, "orw_co_uuid")?;
        e.u64(u64::MAX, "orw_epoch")?;
        e.u64(u64::MAX, "orw_epoch_first")?;
        e.u64(self.api_flags, "orw_api_flags")?;
        e.u64(0, "orw_dkey_hash")?;
        e.u32(self.map_ver, "orw_map_ver")?;
        e.u32(self.iods.len() as u32, "orw_nr")?;
        e.u32(self.oid.shard, "orw_start_shard")?;
        e.u32(self.flags, "orw_flags")?;
        e.iov(self.dkey, "orw_dkey")?;
        e.u8(0, "orw_dkey_csum")?;
        e.u32(self.iods.len() as u32, "oia_iod_nr")?;
        e.u32(0, "oia_oiod_nr")?;
        if !self.iods.is_empty() {
            e.u32(0, "oia_offs")?;
            e.u8(0, "oia_iod_csums")?;
            for iod in self.iods {
                e.iov(iod.name, "iod_name")?;
                e.u32(iod.kind, "iod_type")?;
                e.u64(iod.size, "iod_size")?;
                e.u64(iod.flags, "iod_flags")?;
                let nr = if iod.kind == iod_type::SINGLE {
                    1
                } else {
                    iod.recxs.len() as u32
                };
                e.u32(nr, "iod_nr")?;
                if nr != 0 {
                    e.u32(u32::from(!iod.recxs.is_empty()), "iod_recxs flags")?;
                    for r in iod.recxs {
                        r.encode(e, "iod_recxs")?;
                    }
                }
            }
        }
        write_count(e, 0, "orw_dti_cos")?;
        match self.data {
            RwData::Inline(iovs) => {
                write_count(e, iovs.len(), "orw_sgls")?;
                for (buf_len, data) in iovs {
                    e.u32(1, "sg_nr")?;
                    e.u32(0, "sg_nr_out")?;
                    e.u64(*buf_len, "iov_buf_len")?;
                    e.u64(data.len() as u64, "iov_len")?;
                    e.bytes(data, "iov")?;
                }
            }
            _ => write_count(e, 0, "orw_sgls")?,
        }
        match self.data {
            RwData::Bulk(bulks) => {
                write_count(e, bulks.len(), "orw_bulks")?;
                for b in bulks {
                    b.encode(e, "orw_bulks")?;
                }
            }
            _ => write_count(e, 0, "orw_bulks")?,
        }
        write_count(e, 0, "orw_shard_tgts")?;
        e.u32(0, "orw_tgt_idx")?;
        e.u32(0, "orw_tgt_max")?;
        e.take(COMM_LEN, "orw_comm_in")?.fill(0);
        Ok(())
    }
}

/// An `obj_rw_out` as a client reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RwOut {
    pub ret: i32,
    pub map_version: u32,
    pub epoch: u64,
    pub iod_sizes: Vec<u64>,
    pub data_sizes: Vec<u64>,
    /// Per sgl, the bytes of each iov returned.
    pub sgls: Vec<Vec<Vec<u8>>>,
    pub nrs: Vec<u32>,
    /// Per iod map: type, size, lowest and highest run, and the runs listed.
    pub maps: Vec<(u32, u64, Recx, Recx, Vec<Recx>)>,
}

fn read_u64s(d: &mut Decoder<'_>, field: &'static str) -> Result<Vec<u64>, CartError> {
    let n = count(d, field, 8)?;
    (0..n).map(|_| d.u64(field)).collect()
}

fn read_recx(d: &mut Decoder<'_>, field: &'static str) -> Result<Recx, CartError> {
    Ok(Recx {
        idx: d.u64(field)?,
        nr: d.u64(field)?,
    })
}

impl RwOut {
    pub fn decode(b: &[u8]) -> Result<RwOut, CartError> {
        let mut d = Decoder::new(b);
        let ret = d.i32("orw_ret")?;
        let map_version = d.u32("orw_map_version")?;
        let epoch = d.u64("orw_epoch")?;
        let iod_sizes = read_u64s(&mut d, "orw_iod_sizes")?;
        let data_sizes = read_u64s(&mut d, "orw_data_sizes")?;
        let n = count(&mut d, "orw_sgls", 8)?;
        let mut sgls = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let sg_nr = d.u32("sg_nr")?;
            d.u32("sg_nr_out")?;
            let mut iovs = Vec::new();
            for _ in 0..sg_nr {
                iovs.push(decode_iov(&mut d, "sg_iovs")?.data.to_vec());
            }
            sgls.push(iovs);
        }
        let n = count(&mut d, "orw_nrs", 4)?;
        let nrs = (0..n).map(|_| d.u32("orw_nrs")).collect::<Result<_, _>>()?;
        if count(&mut d, "orw_iod_csums", 8)? != 0 || count(&mut d, "orw_rels", 8)? != 0 {
            return Err(CartError::Invalid {
                field: "orw_iod_csums",
                why: "checksums and EC lists are not read here",
            });
        }
        let n = count(&mut d, "orw_maps", 40)?;
        let mut maps = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let kind = d.u32("iom_type")?;
            let size = d.u64("iom_size")?;
            let lo = read_recx(&mut d, "iom_recx_lo")?;
            let hi = read_recx(&mut d, "iom_recx_hi")?;
            let nr = d.u32("iom_nr")?;
            let runs = (0..nr)
                .map(|_| read_recx(&mut d, "iom_recxs"))
                .collect::<Result<_, _>>()?;
            maps.push((kind, size, lo, hi, runs));
        }
        d.take(COMM_LEN, "orw_comm_out")?;
        Ok(RwOut {
            ret,
            map_version,
            epoch,
            iod_sizes,
            data_sizes,
            sgls,
            nrs,
            maps,
        })
    }
}

/// A punch request.
#[derive(Clone, Copy, Debug)]
pub struct PunchCall<'a> {
    pub oid: UnitOid,
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub api_flags: u64,
    pub map_ver: u32,
    pub dkey: Option<&'a [u8]>,
    pub akeys: &'a [&'a [u8]],
}

impl PunchCall<'_> {
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.bytes(&[0x5B; 24], "opi_dti")?;
        e.uuid(&self.pool, "opi_pool_uuid")?;
        e.uuid(&self.co_hdl, "opi_co_hdl")?;
        e.uuid(&self.co_uuid, "opi_co_uuid")?;
        self.oid.encode(e, "opi_oid")?;
        e.u64(u64::MAX, "opi_epoch")?;
        e.u64(self.api_flags, "opi_api_flags")?;
        e.u64(0, "opi_dkey_hash")?;
        e.u32(self.map_ver, "opi_map_ver")?;
        e.u32(0, "opi_flags")?;
        write_count(e, 0, "opi_dti_cos")?;
        match self.dkey {
            Some(k) => {
                write_count(e, 1, "opi_dkeys")?;
                e.iov(k, "opi_dkeys")?;
            }
            None => write_count(e, 0, "opi_dkeys")?,
        }
        write_count(e, self.akeys.len(), "opi_akeys")?;
        for a in self.akeys {
            e.iov(a, "opi_akeys")?;
        }
        write_count(e, 0, "opi_shard_tgts")?;
        e.take(COMM_LEN, "opi_comm_in")?.fill(0);
        Ok(())
    }
}

/// A dkey or akey enumeration request.
#[derive(Clone, Copy, Debug)]
pub struct EnumCall<'a> {
    pub oid: UnitOid,
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub map_ver: u32,
    pub nr: u32,
    /// The dkey whose akeys are listed (akey and recx enumeration).
    pub dkey: &'a [u8],
    /// The akey whose record runs are listed (recx enumeration).
    pub akey: &'a [u8],
    /// The recx enumeration's cursor.
    pub anchor: &'a [u8; ANCHOR_LEN],
    pub dkey_anchor: &'a [u8; ANCHOR_LEN],
    pub akey_anchor: &'a [u8; ANCHOR_LEN],
    /// The key buffer's size; sent inline (zeros) unless `bulk` is given.
    pub buf_len: u64,
    pub bulk: Option<BulkRef>,
    pub kds_bulk: Option<BulkRef>,
}

impl EnumCall<'_> {
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.take(24, "oei_dti")?.fill(0);
        self.oid.encode(e, "oei_oid")?;
        e.uuid(&self.pool, "oei_pool_uuid")?;
        e.uuid(&self.co_hdl, "oei_co_hdl")?;
        e.uuid(&self.co_uuid, "oei_co_uuid")?;
        e.u64(u64::MAX, "oei_epr")?;
        e.u64(u64::MAX, "oei_epr")?;
        e.u32(self.map_ver, "oei_map_ver")?;
        e.u32(self.nr, "oei_nr")?;
        e.u32(0, "oei_rec_type")?;
        e.u32(orf::ENUM_WITHOUT_EPR, "oei_flags")?;
        e.iov(self.dkey, "oei_dkey")?;
        e.iov(self.akey, "oei_akey")?;
        e.bytes(self.anchor, "oei_anchor")?;
        e.bytes(self.dkey_anchor, "oei_dkey_anchor")?;
        e.bytes(self.akey_anchor, "oei_akey_anchor")?;
        e.u32(1, "sg_nr")?;
        e.u32(0, "sg_nr_out")?;
        e.u64(self.buf_len, "iov_buf_len")?;
        // As libdaos does: the buffer's bytes travel even with a bulk (zeros here).
        e.u64(self.buf_len, "iov_len")?;
        let n = usize::try_from(self.buf_len).map_err(|_| CartError::Length {
            field: "iov",
            len: self.buf_len,
        })?;
        e.take(n, "iov")?.fill(0);
        match &self.bulk {
            Some(b) => b.encode(e, "oei_bulk")?,
            None => e.u64(0, "oei_bulk")?,
        }
        match &self.kds_bulk {
            Some(b) => b.encode(e, "oei_kds_bulk")?,
            None => e.u64(0, "oei_kds_bulk")?,
        }
        e.take(COMM_LEN, "oei_comm_in")?.fill(0);
        Ok(())
    }
}

/// An `obj_key_enum_out` as a client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumOut {
    pub ret: i32,
    pub map_version: u32,
    pub num: u32,
    pub size: u64,
    pub anchor: [u8; ANCHOR_LEN],
    pub dkey_anchor: [u8; ANCHOR_LEN],
    pub akey_anchor: [u8; ANCHOR_LEN],
    /// (key length, type) per key, when sent inline.
    pub kds: Vec<(u64, u32)>,
    /// The keys' bytes, when sent inline.
    pub keys: Vec<u8>,
    /// A recx enumeration's record runs.
    pub recxs: Vec<Recx>,
}

impl EnumOut {
    pub fn decode(b: &[u8]) -> Result<EnumOut, CartError> {
        let mut d = Decoder::new(b);
        let ret = d.i32("oeo_ret")?;
        let map_version = d.u32("oeo_map_version")?;
        d.u64("oeo_epoch")?;
        let num = d.u32("oeo_num")?;
        d.u32("oeo_padding")?;
        let size = d.u64("oeo_size")?;
        let mut anchors = [[0u8; ANCHOR_LEN]; 3];
        for (a, f) in anchors
            .iter_mut()
            .zip(["oeo_anchor", "oeo_dkey_anchor", "oeo_akey_anchor"])
        {
            a.copy_from_slice(d.take(ANCHOR_LEN, f)?);
        }
        let n = count(&mut d, "oeo_kds", KEY_DESC_INLINE)?;
        let kds = (0..n)
            .map(|_| Ok((d.u64("kd_key_len")?, d.u32("kd_val_type")?)))
            .collect::<Result<_, CartError>>()?;
        let sg_nr = d.u32("sg_nr")?;
        d.u32("sg_nr_out")?;
        let mut keys = Vec::new();
        for _ in 0..sg_nr {
            keys.extend_from_slice(decode_iov(&mut d, "sg_iovs")?.data);
        }
        d.iov("oeo_csum_iov")?;
        let n = count(&mut d, "oeo_recxs", 16)?;
        let recxs = (0..n)
            .map(|_| read_recx(&mut d, "oeo_recxs"))
            .collect::<Result<Vec<_>, _>>()?;
        let eprs = count(&mut d, "oeo_eprs", 16)?;
        d.take(eprs as usize * 16, "oeo_eprs")?;
        d.take(COMM_LEN, "oeo_comm_out")?;
        let [anchor, dkey_anchor, akey_anchor] = anchors;
        Ok(EnumOut {
            ret,
            map_version,
            num,
            size,
            anchor,
            dkey_anchor,
            akey_anchor,
            kds,
            keys,
            recxs,
        })
    }
}

/// A `QUERY_KEY` request.
#[derive(Clone, Copy, Debug)]
pub struct QueryKeyCall<'a> {
    pub oid: UnitOid,
    pub pool: [u8; 16],
    pub co_hdl: [u8; 16],
    pub co_uuid: [u8; 16],
    pub map_ver: u32,
    pub api_flags: u64,
    pub dkey: &'a [u8],
    pub akey: &'a [u8],
}

impl QueryKeyCall<'_> {
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.take(24, "okqi_dti")?.fill(0);
        e.uuid(&self.co_hdl, "okqi_co_hdl")?;
        e.uuid(&self.pool, "okqi_pool_uuid")?;
        e.uuid(&self.co_uuid, "okqi_co_uuid")?;
        self.oid.encode(e, "okqi_oid")?;
        e.u64(u64::MAX, "okqi_epoch")?;
        e.u64(u64::MAX, "okqi_epoch_first")?;
        e.u32(self.map_ver, "okqi_map_ver")?;
        e.u32(0, "okqi_flags")?;
        e.u64(self.api_flags, "okqi_api_flags")?;
        e.iov(self.dkey, "okqi_dkey")?;
        e.iov(self.akey, "okqi_akey")?;
        e.take(COMM_LEN, "okqi_comm_in")?.fill(0);
        Ok(())
    }
}

impl<'a> QueryKeyOut<'a> {
    pub fn decode(b: &'a [u8]) -> Result<QueryKeyOut<'a>, CartError> {
        let mut d = Decoder::new(b);
        let ret = d.i32("okqo_ret")?;
        let map_version = d.u32("okqo_map_version")?;
        let epoch = d.u64("okqo_epoch")?;
        d.u32("okqo_flags")?;
        d.u32("okqo_pad32_1")?;
        let dkey = d.iov("okqo_dkey")?;
        let akey = d.iov("okqo_akey")?;
        let recx = read_recx(&mut d, "okqo_recx")?;
        read_recx(&mut d, "okqo_recx_parity")?;
        read_recx(&mut d, "okqo_recx_punched")?;
        let max_epoch = d.u64("okqo_max_epoch")?;
        d.take(COMM_LEN, "okqo_comm_out")?;
        Ok(QueryKeyOut {
            ret,
            map_version,
            epoch,
            dkey,
            akey,
            recx,
            max_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an `obj_rw_in` the way `dc_obj_shard_rw` fills it: one iod, inline data.
    pub(crate) fn rw_in(
        e: &mut Encoder<'_>,
        oid: UnitOid,
        dkey: &[u8],
        iod: (&[u8], u32, u64, &[Recx]),
        data: Option<&[u8]>,
    ) -> Result<(), CartError> {
        e.bytes(&[7; 24], "dti")?;
        oid.encode(e, "oid")?;
        e.uuid(&[1; 16], "pool")?;
        e.uuid(&[2; 16], "co_hdl")?;
        e.uuid(&[3; 16], "co_uuid")?;
        e.u64(u64::MAX, "epoch")?;
        e.u64(u64::MAX, "epoch_first")?;
        e.u64(cond::DKEY_INSERT, "api_flags")?;
        e.u64(5, "dkey_hash")?;
        e.u32(4, "map_ver")?;
        e.u32(1, "nr")?;
        e.u32(0, "start_shard")?;
        e.u32(1 << 20, "flags")?;
        e.iov(dkey, "dkey")?;
        e.u8(0, "dkey_csum")?;
        e.u32(1, "iod_nr")?;
        e.u32(0, "oiod_nr")?;
        e.u32(0, "off_nr")?;
        e.u8(0, "csums")?;
        e.iov(iod.0, "name")?;
        e.u32(iod.1, "type")?;
        e.u64(iod.2, "size")?;
        e.u64(0, "flags")?;
        e.u32(iod.3.len().max(1) as u32, "nr")?;
        e.u32(u32::from(!iod.3.is_empty()), "existing")?;
        for r in iod.3 {
            r.encode(e, "recx")?;
        }
        e.u64(0, "cos")?;
        match data {
            Some(data) => {
                e.u64(1, "sgls")?;
                e.u32(1, "sg_nr")?;
                e.u32(0, "sg_nr_out")?;
                e.iov(data, "iov")?;
            }
            None => e.u64(0, "sgls")?,
        }
        e.u64(0, "bulks")?;
        e.u64(0, "shard_tgts")?;
        e.u32(0, "tgt_idx")?;
        e.u32(0, "tgt_max")?;
        e.take(COMM_LEN, "comm")?.fill(0);
        Ok(())
    }

    #[test]
    fn an_inline_array_update_decodes_as_dfs_sends_it() {
        let oid = UnitOid {
            lo: 9,
            hi: 0x0D01_0001_0000_0000,
            shard: 0,
            layout_ver: 2,
        };
        let mut buf = vec![0u8; 8192];
        let mut e = Encoder::new(&mut buf);
        let data = vec![0x5a; 4096];
        rw_in(
            &mut e,
            oid,
            &1u64.to_le_bytes(),
            (b"0", iod_type::ARRAY, 1, &[Recx { idx: 0, nr: 4096 }]),
            Some(&data),
        )
        .unwrap();
        let n = e.len();
        // The size obj_wire.md §1.3 works out for this request.
        assert_eq!(n, 4443);
        let r = RwIn::decode(&buf[..n]).unwrap();
        assert_eq!(r.oid, oid);
        assert!(oid.dkey_is_u64());
        assert_eq!(r.dkey, 1u64.to_le_bytes());
        assert_eq!((r.nr, r.sgl_nr, r.bulk_nr), (1, 1, 0));
        let iod = r.iods().next().unwrap();
        assert_eq!(
            (iod.name, iod.kind, iod.size),
            (&b"0"[..], iod_type::ARRAY, 1)
        );
        assert_eq!(iod.recxs().collect::<Vec<_>>(), [Recx { idx: 0, nr: 4096 }]);
        let sgl = r.sgls().next().unwrap();
        assert_eq!(sgl.len(), 4096);
        assert_eq!(sgl.iovs().next().unwrap().data, &data[..]);
        // Every shorter prefix is refused, never a panic.
        for cut in 0..n {
            assert!(RwIn::decode(&buf[..cut]).is_err(), "prefix of {cut} bytes");
        }
    }

    #[test]
    fn counts_beyond_the_message_are_refused() {
        let mut buf = vec![0u8; 1024];
        let mut e = Encoder::new(&mut buf);
        rw_in(
            &mut e,
            UnitOid::default(),
            b"d",
            (b"a", iod_type::SINGLE, 3, &[]),
            Some(b"abc"),
        )
        .unwrap();
        let n = e.len();
        // The dti_cos count sits after the iod; make it huge.
        let r = RwIn::decode(&buf[..n]).unwrap();
        assert_eq!(r.iods().next().unwrap().recx_count(), 0);
        let at = n - (8 + 8 + 4 + 4 + 3 + 8 + 8 + 8 + 4 + 4 + COMM_LEN) - 8;
        buf[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            RwIn::decode(&buf[..n]),
            Err(CartError::Length {
                field: "orw_dti_cos",
                ..
            })
        ));
    }

    #[test]
    fn an_update_reply_is_112_bytes() {
        let mut buf = [0u8; 256];
        let mut e = Encoder::new(&mut buf);
        write_update_out(&mut e, 0, 1, 2).unwrap();
        assert_eq!(e.len(), 112);
    }

    #[test]
    fn what_a_client_writes_the_target_decodes() {
        let oid = UnitOid {
            lo: 1,
            hi: 0x0001_0001_0000_0000,
            shard: 3,
            layout_ver: 2,
        };
        let mut buf = vec![0u8; 4096];
        let recxs = [Recx { idx: 4, nr: 2 }];
        let iods = [
            IodSpec {
                name: b"a",
                kind: iod_type::SINGLE,
                size: 3,
                flags: 0,
                recxs: &[],
            },
            IodSpec {
                name: b"b",
                kind: iod_type::ARRAY,
                size: 8,
                flags: cond::AKEY_INSERT,
                recxs: &recxs,
            },
        ];
        let data = [(3, &b"xyz"[..]), (16, &[1u8; 16][..])];
        let call = RwCall {
            oid,
            pool: [1; 16],
            co_hdl: [2; 16],
            co_uuid: [3; 16],
            api_flags: cond::PER_AKEY,
            map_ver: 9,
            flags: orf::CREATE_MAP,
            dkey: b"dk",
            iods: &iods,
            data: RwData::Inline(&data),
        };
        let mut e = Encoder::new(&mut buf);
        call.encode(&mut e).unwrap();
        let n = e.len();
        let q = RwIn::decode(&buf[..n]).unwrap();
        assert_eq!(
            (q.oid, q.map_ver, q.flags, q.dkey),
            (oid, 9, orf::CREATE_MAP, &b"dk"[..])
        );
        // The flags are where `rw_flags` reads them even when the rest does not decode.
        assert_eq!(rw_flags(&buf[..n]), Some(orf::CREATE_MAP));
        assert_eq!(rw_flags(&buf[..150]), Some(orf::CREATE_MAP));
        assert_eq!(rw_flags(&buf[..143]), None);
        let got: Vec<_> = q
            .iods()
            .map(|i| (i.name, i.kind, i.size, i.flags))
            .collect();
        assert_eq!(
            got,
            [
                (&b"a"[..], iod_type::SINGLE, 3, 0),
                (&b"b"[..], iod_type::ARRAY, 8, cond::AKEY_INSERT)
            ]
        );
        assert_eq!(q.iods().nth(1).unwrap().recxs().collect::<Vec<_>>(), recxs);
        let sent: Vec<Vec<u8>> = q
            .sgls()
            .map(|s| s.iovs().flat_map(|i| i.data.to_vec()).collect())
            .collect();
        assert_eq!(sent, [b"xyz".to_vec(), vec![1u8; 16]]);

        let bulks = [BulkRef {
            addr: 0x1000,
            len: 4096,
            key: 77,
            writable: true,
        }];
        let call = RwCall {
            iods: &iods[..1],
            data: RwData::Bulk(&bulks),
            ..call
        };
        let mut e = Encoder::new(&mut buf);
        call.encode(&mut e).unwrap();
        let n = e.len();
        let q = RwIn::decode(&buf[..n]).unwrap();
        let b = q.bulks().next().unwrap().unwrap();
        assert_eq!(
            (b.len, b.key, b.addr, b.writable()),
            (4096, 77, 0x1000, true)
        );

        let anchor = [0u8; ANCHOR_LEN];
        let mut e = Encoder::new(&mut buf);
        EnumCall {
            oid,
            pool: [1; 16],
            co_hdl: [2; 16],
            co_uuid: [3; 16],
            map_ver: 1,
            nr: 16,
            dkey: b"",
            akey: b"",
            anchor: &anchor,
            dkey_anchor: &anchor,
            akey_anchor: &anchor,
            buf_len: 100,
            bulk: None,
            kds_bulk: None,
        }
        .encode(&mut e)
        .unwrap();
        let n = e.len();
        let q = EnumIn::decode(&buf[..n]).unwrap();
        assert_eq!((q.nr, q.sgl.capacity(), q.bulk), (16, 100, None));

        let mut e = Encoder::new(&mut buf);
        PunchCall {
            oid,
            pool: [1; 16],
            co_hdl: [2; 16],
            co_uuid: [3; 16],
            api_flags: cond::PUNCH,
            map_ver: 1,
            dkey: Some(b"d"),
            akeys: &[b"x", b"y"],
        }
        .encode(&mut e)
        .unwrap();
        let n = e.len();
        let q = PunchIn::decode(&buf[..n]).unwrap();
        assert_eq!(q.dkeys().collect::<Vec<_>>(), [b"d"]);
        assert_eq!(q.akeys().collect::<Vec<_>>(), [b"x", b"y"]);

        let mut e = Encoder::new(&mut buf);
        QueryKeyCall {
            oid,
            pool: [1; 16],
            co_hdl: [2; 16],
            co_uuid: [3; 16],
            map_ver: 1,
            api_flags: get::DKEY | get::RECX | get::MAX,
            dkey: b"",
            akey: b"0",
        }
        .encode(&mut e)
        .unwrap();
        let n = e.len();
        let q = QueryKeyIn::decode(&buf[..n]).unwrap();
        assert_eq!((q.co_hdl, q.pool, q.akey), ([2; 16], [1; 16], &b"0"[..]));
        for cut in 0..n {
            assert!(QueryKeyIn::decode(&buf[..cut]).is_err());
        }
    }

    #[test]
    fn collective_requests_round_trip_and_truncations_are_refused() {
        let oid = UnitOid {
            lo: 3,
            hi: 0x0D01_0006_0000_0000,
            shard: 2,
            layout_ver: 2,
        };
        let targets = vec![CollTarget {
            rank: 0,
            tgt_idxs: vec![0, 2, 5, 9],
        }];
        let mut buf = vec![0u8; 4096];
        let punch = CollPunchIn {
            pool: [1; 16],
            co_hdl: [2; 16],
            co_uuid: [3; 16],
            oid,
            api_flags: 0,
            map_ver: 4,
            flags: 0x200,
            targets: targets.clone(),
        };
        let mut e = Encoder::new(&mut buf);
        punch.encode(&mut e).unwrap();
        let n = e.len();
        assert_eq!(CollPunchIn::decode(&buf[..n]).unwrap(), punch);
        for cut in 0..n {
            assert!(CollPunchIn::decode(&buf[..cut]).is_err(), "{cut}");
        }
        let query = CollQueryIn {
            pool: [1; 16],
            co_hdl: [2; 16],
            co_uuid: [3; 16],
            oid,
            api_flags: get::DKEY | get::RECX | get::MAX,
            map_ver: 4,
            flags: 0,
            dkey: b"",
            akey: b"0",
            targets,
        };
        let mut e = Encoder::new(&mut buf);
        query.encode(&mut e).unwrap();
        let n = e.len();
        assert_eq!(CollQueryIn::decode(&buf[..n]).unwrap(), query);
        let cpd = CpdIn {
            pool: [1; 16],
            co_hdl: [2; 16],
            co_uuid: [3; 16],
            map_ver: 4,
            flags: 0x200,
            xid: [9; 24],
            subs: vec![CpdSub {
                opc: cpd_op::PUNCH_OBJ,
                oid,
                dkey: b"",
                api_flags: 0,
                akeys: Vec::new(),
            }],
            targets: vec![
                CpdTarget {
                    rank: 0,
                    tgt_idx: 1,
                    writes: vec![(0, 0)],
                },
                CpdTarget {
                    rank: 0,
                    tgt_idx: 3,
                    writes: vec![(1, 0)],
                },
            ],
        };
        let mut e = Encoder::new(&mut buf);
        cpd.encode(&mut e).unwrap();
        let n = e.len();
        // The worked example of cpd_wire.md §1.11: 380 bytes for two targets.
        assert_eq!(n, 380);
        assert_eq!(CpdIn::decode(&buf[..n]).unwrap(), cpd);
        for cut in 0..n {
            assert!(CpdIn::decode(&buf[..cut]).is_err(), "{cut}");
        }
    }
}
