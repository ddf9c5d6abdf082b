//! The container module's RPCs (DAOS `src/container/rpc.h`, protocol version 8).
//!
//! ```text
//! cont_op_v8_in: pool handle [16], container uuid [16], container handle [16], client id
//!                [16], time u64                                                (72 bytes)
//! cont_op_out:   rc i32, map version u32, rsvc_hint {flags u32, rank u32, term u64}
//! CREATE in:  op, prop                       DESTROY in: op, force u32
//! OPEN in:    op, flags u64, prop bits u64   OPEN_BYLABEL in: the same, then a const string
//! CLOSE in:   op                             QUERY in:  op, bits u64
//! OPEN/QUERY out: op_out, prop, last snapshot u64, snapshots u32, handles u32, (by label:
//!                 the container's uuid), open time u64, change time u64
//! DESTROY_BYLABEL in: op, force u32, pad u32, label (const string)
//! ATTR_LIST in: op, bulk                     out: op_out, size u64 (the names' total)
//! ATTR_GET in:  op, count u64, key length u64, bulk (RW: names, sizes, value buffers)
//! ATTR_SET in:  op, count u64, bulk (RO: names, sizes, values)
//! ATTR_DEL in:  op, count u64, bulk (RO: names)
//! PROP_SET in:  op, prop, pool uuid [16]
//! ACL_UPDATE in: op, acl (iov)               ACL_DELETE in: op, name (string), type u8
//! ```
//!
//! An attribute bulk is one virtual buffer over its segments: the names, each with its NUL,
//! then one u64 size per name, then the values back to back (a get's value buffers only for
//! the names asked with a size above 0).

use crate::CartError;
use crate::pool::PropValue;
use crate::proc_::{Decoder, Encoder};

/// Container op indices (protocol 8).
pub mod op {
    pub const CREATE: u16 = 0;
    pub const DESTROY: u16 = 1;
    pub const OPEN: u16 = 2;
    pub const CLOSE: u16 = 3;
    pub const QUERY: u16 = 4;
    /// Takes the v7 `cont_op_in` (no client id or time) and the number of ids wanted.
    pub const OID_ALLOC: u16 = 5;
    pub const ATTR_LIST: u16 = 6;
    pub const ATTR_GET: u16 = 7;
    pub const ATTR_SET: u16 = 8;
    pub const ATTR_DEL: u16 = 9;
    pub const PROP_SET: u16 = 14;
    pub const ACL_UPDATE: u16 = 15;
    pub const ACL_DELETE: u16 = 16;
    pub const OPEN_BYLABEL: u16 = 17;
    pub const DESTROY_BYLABEL: u16 = 18;
}

/// `DAOS_PROP_CO_ROOTS`: four object ids, sent raw (64 bytes).
pub const PROP_ROOTS: u32 = 0x1011;
/// `DAOS_PROP_CO_ACL`: a `struct daos_acl`, sent as an iov.
pub const PROP_ACL: u32 = 0x100A;
/// Text properties: label, owner, owner group.
const TEXT: [u32; 3] = [0x1001, 0x100D, 0x100E];
/// `struct daos_pool_cont_info`: UUID, then the label NUL-padded to 128 bytes.
pub const CONT_INFO_LEN: usize = 144;
/// Most entries a property list may have (`DAOS_PROP_ENTRIES_MAX_NR`).
pub const PROPS_MAX: u32 = 128;

/// Most attributes one request names (DAOS bounds them by its RPC sizes; a request beyond
/// this is refused `DER_INVAL`).
pub const ATTRS_MAX: u64 = 4096;
/// The longest attribute name (`DAOS_ATTR_NAME_MAX`), without its NUL.
pub const ATTR_NAME_MAX: usize = 511;

/// The property type of each container query bit (`DAOS_CO_QUERY_PROP_*`).
pub const TYPE_OF_BIT: [u32; 26] = [
    0x1001, 0x1002, 0x1003, 0x1004, 0x1005, 0x1006, 0x1007, 0x1008, 0x1009, 0x100B, 0x100C, 0x100A,
    0x100D, 0x100E, 0x100F, 0x1010, 0x1011, 0x1012, 0x1013, 0x1014, 0x1015, 0x1016, 0x1017, 0x1018,
    0x1019, 0x101A,
];

/// Whether query `bits` ask for property type `t`.
pub fn asked(bits: u64, t: u32) -> bool {
    TYPE_OF_BIT
        .iter()
        .position(|x| *x == t)
        .is_some_and(|b| bits & (1 << b) != 0)
}

/// `cont_op_v8_in`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContOpIn {
    pub pool_handle: [u8; 16],
    pub uuid: [u8; 16],
    pub handle: [u8; 16],
    pub client: [u8; 16],
    pub time: u64,
}

impl ContOpIn {
    pub fn decode(d: &mut Decoder<'_>) -> Result<ContOpIn, CartError> {
        Ok(ContOpIn {
            pool_handle: d.uuid("ci_pool_hdl")?,
            uuid: d.uuid("ci_uuid")?,
            handle: d.uuid("ci_hdl")?,
            client: d.uuid("ci_cli_id")?,
            time: d.u64("ci_time")?,
        })
    }

    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.uuid(&self.pool_handle, "ci_pool_hdl")?;
        e.uuid(&self.uuid, "ci_uuid")?;
        e.uuid(&self.handle, "ci_hdl")?;
        e.uuid(&self.client, "ci_cli_id")?;
        e.u64(self.time, "ci_time")
    }
}

/// A container request's input, decoded by op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContIn {
    pub op: ContOpIn,
    /// CREATE, PROP_SET: the properties given; ACL_UPDATE: the ACL (as its property).
    pub props: Vec<(u32, PropValue)>,
    /// OPEN: `DAOS_COO_*`; DESTROY: force (0/1); ACL_DELETE: the principal's type.
    pub flags: u64,
    /// OPEN: the properties asked for; QUERY: its bits.
    pub bits: u64,
    /// The by-label ops' label; ACL_DELETE: the principal's name.
    pub label: Option<String>,
}

/// Decodes the input of container op `index`; `None` for an op not decoded here.
pub fn decode_in(index: u16, b: &[u8]) -> Option<Result<ContIn, CartError>> {
    let mut d = Decoder::new(b);
    let run = |d: &mut Decoder<'_>| -> Result<ContIn, CartError> {
        if index == op::OID_ALLOC {
            let op = ContOpIn {
                pool_handle: d.uuid("ci_pool_hdl")?,
                uuid: d.uuid("ci_uuid")?,
                handle: d.uuid("ci_hdl")?,
                client: [0; 16],
                time: 0,
            };
            return Ok(ContIn {
                op,
                props: Vec::new(),
                flags: d.u64("num_oids")?,
                bits: 0,
                label: None,
            });
        }
        let op = ContOpIn::decode(d)?;
        let mut c = ContIn {
            op,
            props: Vec::new(),
            flags: 0,
            bits: 0,
            label: None,
        };
        match index {
            op::CREATE => c.props = read_props(d)?,
            op::DESTROY => c.flags = u64::from(d.u32("cdi_force")?),
            op::DESTROY_BYLABEL => {
                c.flags = u64::from(d.u32("cdi_force")?);
                d.u32("cdli_pad32")?;
                c.label = d.string("cdli_label")?.map(str::to_string);
            }
            op::OPEN | op::OPEN_BYLABEL => {
                c.flags = d.u64("coi_flags")?;
                c.bits = d.u64("coi_prop_bits")?;
                if index == op::OPEN_BYLABEL {
                    c.label = d.string("coli_label")?.map(str::to_string);
                }
            }
            op::QUERY => c.bits = d.u64("cqi_bits")?,
            op::PROP_SET => {
                c.props = read_props(d)?;
                d.uuid("cpsi_pool_uuid")?;
            }
            op::ACL_UPDATE => {
                c.props = vec![(PROP_ACL, PropValue::Iov(d.iov("caui_acl")?.to_vec()))];
            }
            op::ACL_DELETE => {
                c.label = Some(
                    d.string("cadi_principal_name")?
                        .unwrap_or_default()
                        .to_string(),
                );
                c.flags = u64::from(d.u8("cadi_principal_type")?);
            }
            _ => {}
        }
        Ok(c)
    };
    match index {
        op::CREATE
        | op::DESTROY
        | op::OPEN
        | op::CLOSE
        | op::QUERY
        | op::OID_ALLOC
        | op::OPEN_BYLABEL
        | op::DESTROY_BYLABEL
        | op::PROP_SET
        | op::ACL_UPDATE
        | op::ACL_DELETE => Some(run(&mut d)),
        _ => None,
    }
}

/// An attribute request's input (`ATTR_LIST`, `_GET`, `_SET`, `_DEL`), of a container or
/// (`pool`) of a pool (`POOL_ATTR_*`, whose bodies differ only in their op: a pool's
/// `pool_op_v6_in` is read into `op` as pool handle and pool UUID, no container handle).
#[derive(Clone, Debug)]
pub struct AttrIn<'a> {
    /// The container op index (a pool's ops are numbered as the container's).
    pub index: u16,
    pub pool: bool,
    pub op: ContOpIn,
    /// Names in the bulk (0 for a list).
    pub count: u64,
    /// GET: the names' bytes (each with its NUL) at the bulk's start.
    pub key_length: u64,
    pub bulk: Option<crate::bulk::Bulk<'a>>,
}

impl<'a> AttrIn<'a> {
    /// Decodes container attribute op `index`'s input; `None` for another op.
    pub fn decode(index: u16, b: &'a [u8]) -> Option<Result<AttrIn<'a>, CartError>> {
        if !matches!(
            index,
            op::ATTR_LIST | op::ATTR_GET | op::ATTR_SET | op::ATTR_DEL
        ) {
            return None;
        }
        Some(Self::decode_body(index, false, b))
    }

    /// Decodes pool attribute op `index`'s input (pool protocol 6: `POOL_ATTR_LIST` 13 ..
    /// `POOL_ATTR_DEL` 16); `None` for another op.
    pub fn decode_pool(index: u16, b: &'a [u8]) -> Option<Result<AttrIn<'a>, CartError>> {
        let index = match index {
            crate::pool::op::ATTR_LIST => op::ATTR_LIST,
            crate::pool::op::ATTR_GET => op::ATTR_GET,
            crate::pool::op::ATTR_SET => op::ATTR_SET,
            crate::pool::op::ATTR_DEL => op::ATTR_DEL,
            _ => return None,
        };
        Some(Self::decode_body(index, true, b))
    }

    fn decode_body(index: u16, pool: bool, b: &'a [u8]) -> Result<AttrIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        let mut run = || -> Result<AttrIn<'a>, CartError> {
            let op = if pool {
                let p = crate::pool::PoolOpIn::decode(&mut d)?;
                ContOpIn {
                    pool_handle: p.handle,
                    uuid: p.uuid,
                    handle: [0; 16],
                    client: p.client,
                    time: p.time,
                }
            } else {
                ContOpIn::decode(&mut d)?
            };
            let (mut count, mut key_length) = (0, 0);
            if index != op::ATTR_LIST {
                count = d.u64("ca_count")?;
                if count == 0 || count > ATTRS_MAX {
                    return Err(CartError::Invalid {
                        field: "ca_count",
                        why: "not between 1 and 4096 attributes",
                    });
                }
            }
            if index == op::ATTR_GET {
                key_length = d.u64("cagi_key_length")?;
                if key_length < count * 2 || key_length > count * (ATTR_NAME_MAX as u64 + 1) {
                    return Err(CartError::Invalid {
                        field: "cagi_key_length",
                        why: "not the length of the names asked (2 to 512 bytes each)",
                    });
                }
            }
            let bulk = crate::bulk::decode(&mut d, "ca_bulk")?;
            if index != op::ATTR_LIST && bulk.is_none() {
                return Err(CartError::Invalid {
                    field: "ca_bulk",
                    why: "no bulk handle for the names",
                });
            }
            Ok(AttrIn {
                index,
                pool,
                op,
                count,
                key_length,
                bulk,
            })
        };
        run()
    }

    /// Encodes the input up to its bulk handle, which the caller encodes next (a client's
    /// side).
    pub fn encode_head(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        if self.pool {
            crate::pool::PoolOpIn {
                uuid: self.op.uuid,
                handle: self.op.pool_handle,
                client: self.op.client,
                time: self.op.time,
            }
            .encode(e)?;
        } else {
            self.op.encode(e)?;
        }
        if self.index != op::ATTR_LIST {
            e.u64(self.count, "ca_count")?;
        }
        if self.index == op::ATTR_GET {
            e.u64(self.key_length, "cagi_key_length")?;
        }
        Ok(())
    }
}

/// `n` NUL-terminated names at the start of `buf`: the names (without their NUL) and the
/// bytes they take.
pub fn attr_names(buf: &[u8], n: u64) -> Result<(Vec<&[u8]>, usize), CartError> {
    let mut names = Vec::with_capacity(n.min(ATTRS_MAX) as usize);
    let mut at = 0;
    for _ in 0..n {
        let rest = &buf[at..];
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(CartError::Invalid {
                field: "attribute names",
                why: "a name without its NUL",
            });
        };
        if len == 0 || len > ATTR_NAME_MAX {
            return Err(CartError::Invalid {
                field: "attribute names",
                why: "a name of 0 or more than 511 bytes",
            });
        }
        names.push(&rest[..len]);
        at += len + 1;
    }
    Ok((names, at))
}

/// The `n` u64 sizes at `at` in `buf`.
pub fn attr_sizes(buf: &[u8], at: usize, n: u64) -> Result<Vec<u64>, CartError> {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let end = n
        .checked_mul(8)
        .and_then(|l| l.checked_add(at))
        .filter(|&e| e <= buf.len())
        .ok_or(CartError::Short {
            field: "attribute sizes",
            need: n.saturating_mul(8),
            have: buf.len().saturating_sub(at),
        })?;
    Ok(buf[at..end]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect())
}

/// An attribute's name (without its NUL) and value.
pub type AttrEntry<'a> = (&'a [u8], &'a [u8]);

/// An `ATTR_SET` bulk's content: (name, value) pairs.
pub fn attr_set_entries(buf: &[u8], n: u64) -> Result<Vec<AttrEntry<'_>>, CartError> {
    let (names, at) = attr_names(buf, n)?;
    let sizes = attr_sizes(buf, at, n)?;
    let mut v = at + names.len() * 8;
    let mut out = Vec::with_capacity(names.len());
    for (name, size) in names.into_iter().zip(sizes) {
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| v.checked_add(s))
            .filter(|&e| e <= buf.len())
            .ok_or(CartError::Length {
                field: "attribute value size",
                len: size,
            })?;
        out.push((name, &buf[v..end]));
        v = end;
    }
    Ok(out)
}

/// The bytes of an `ATTR_SET` bulk of `entries` (a client's side): names, sizes, values.
pub fn attr_set_bulk(entries: &[AttrEntry<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, _) in entries {
        b.extend_from_slice(n);
        b.push(0);
    }
    for (_, v) in entries {
        b.extend_from_slice(&(v.len() as u64).to_le_bytes());
    }
    for (_, v) in entries {
        b.extend_from_slice(v);
    }
    b
}

/// Reads a `daos_prop_t` (u32 count; 0: none; else u32 reserved and the entries).
pub fn read_props(d: &mut Decoder<'_>) -> Result<Vec<(u32, PropValue)>, CartError> {
    let nr = d.u32("dpp_nr")?;
    if nr == 0 {
        return Ok(Vec::new());
    }
    if nr > PROPS_MAX {
        return Err(CartError::Invalid {
            field: "dpp_nr",
            why: "more than 128 property entries",
        });
    }
    d.u32("dpp_reserv")?;
    let mut out = Vec::with_capacity(nr as usize);
    for _ in 0..nr {
        let t = d.u32("dpe_type")?;
        d.u16("dpe_flags")?;
        d.u16("dpe_reserv")?;
        let v = if TEXT.contains(&t) {
            PropValue::Text(d.string("dpe_str")?.unwrap_or_default().to_string())
        } else if t == PROP_ACL {
            PropValue::Iov(d.iov("dpe_val_ptr")?.to_vec())
        } else if t == PROP_ROOTS {
            PropValue::Raw(d.take(64, "dpe_val_ptr")?.to_vec())
        } else if t == crate::pool::PROP_SVC_LIST {
            let n = d.u32("rl_nr")?;
            if u64::from(n) * 4 > d.rest().len() as u64 {
                return Err(CartError::Length {
                    field: "rl_nr",
                    len: u64::from(n),
                });
            }
            PropValue::Ranks(
                (0..n)
                    .map(|_| d.u32("rl_ranks"))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            PropValue::Num(d.u64("dpe_val")?)
        };
        out.push((t, v));
    }
    Ok(out)
}

/// The fields after a container open's or query's properties.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenTail {
    pub nhandles: u32,
    /// OPEN_BYLABEL: the container's UUID.
    pub uuid: Option<[u8; 16]>,
}

/// Writes what follows the properties of an open or query reply.
pub fn write_open_tail(e: &mut Encoder<'_>, t: &OpenTail) -> Result<(), CartError> {
    e.u64(0, "coo_lsnapshot")?;
    e.u32(0, "coo_snap_count")?;
    e.u32(t.nhandles, "coo_nhandles")?;
    if let Some(u) = &t.uuid {
        e.uuid(u, "colo_uuid")?;
    }
    e.u64(0, "coo_md_otime")?;
    e.u64(0, "coo_md_mtime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::write_props;

    #[test]
    fn the_open_bits_of_daos_2_6_name_its_twelve_properties() {
        let bits = 0x0378_C0D8;
        let types: Vec<u32> = TYPE_OF_BIT
            .iter()
            .copied()
            .filter(|t| asked(bits, *t))
            .collect();
        assert_eq!(
            types,
            [
                0x1004, 0x1005, 0x1007, 0x1008, 0x100F, 0x1010, 0x1014, 0x1015, 0x1016, 0x1017,
                0x1019, 0x101A
            ]
        );
        assert!(asked(1 << 11, PROP_ACL));
    }

    #[test]
    fn an_open_by_label_and_a_create_decode() {
        let op = ContOpIn {
            pool_handle: [1; 16],
            uuid: [0; 16],
            handle: [3; 16],
            client: [4; 16],
            time: 9,
        };
        let mut b = [0u8; 512];
        let mut e = Encoder::new(&mut b);
        op.encode(&mut e).unwrap();
        e.u64(0x99, "flags").unwrap();
        e.u64(0x0378_C0D8, "bits").unwrap();
        e.string(Some("x"), true, "label").unwrap();
        let n = e.len();
        assert_eq!(n, 100, "DAOS's example body: 0x64 bytes");
        let c = decode_in(op::OPEN_BYLABEL, &b[..n]).unwrap().unwrap();
        assert_eq!(
            (c.flags, c.bits, c.label.as_deref()),
            (0x99, 0x0378_C0D8, Some("x"))
        );

        let mut e = Encoder::new(&mut b);
        op.encode(&mut e).unwrap();
        write_props(
            &mut e,
            &[
                (0x1001, PropValue::Text("c1".into())),
                (PROP_ROOTS, PropValue::Raw(vec![7; 64])),
                (0x1002, PropValue::Num(1)),
            ],
        )
        .unwrap();
        let n = e.len();
        let c = decode_in(op::CREATE, &b[..n]).unwrap().unwrap();
        assert_eq!(c.props.len(), 3);
        assert_eq!(c.props[1], (PROP_ROOTS, PropValue::Raw(vec![7; 64])));
        // Truncated anywhere: an error, never a panic.
        for k in 0..n {
            assert!(decode_in(op::CREATE, &b[..k]).unwrap().is_err(), "{k}");
        }
        assert!(
            decode_in(op::ATTR_LIST, &b[..n]).is_none(),
            "ATTR_LIST is not decoded here"
        );
        // OID_ALLOC: the v7 op (three UUIDs, no client id or time), then the count.
        let mut e = Encoder::new(&mut b);
        for u in [[1u8; 16], [2; 16], [3; 16]] {
            e.uuid(&u, "uuid").unwrap();
        }
        e.u64(64, "num_oids").unwrap();
        let n = e.len();
        assert_eq!(n, 56);
        let c = decode_in(op::OID_ALLOC, &b[..n]).unwrap().unwrap();
        assert_eq!(
            (c.op.pool_handle, c.op.uuid, c.op.handle, c.flags),
            ([1; 16], [2; 16], [3; 16], 64)
        );
        assert!(decode_in(op::OID_ALLOC, &b[..n - 1]).unwrap().is_err());
        // A pool's service ranks travel as a rank list (u32 count, u32 ranks).
        let mut e = Encoder::new(&mut b);
        write_props(&mut e, &[(8, PropValue::Ranks(vec![0, 2, 5]))]).unwrap();
        let n = e.len();
        assert_eq!(n, 8 + 8 + 4 + 12, "header, entry head, count, three ranks");
        assert_eq!(
            read_props(&mut Decoder::new(&b[..n])).unwrap(),
            [(8, PropValue::Ranks(vec![0, 2, 5]))]
        );
        b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            read_props(&mut Decoder::new(&b[..n])).is_err(),
            "a count beyond the message"
        );
    }
}
