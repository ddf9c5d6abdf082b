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
//! ```

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
    /// CREATE: the properties given.
    pub props: Vec<(u32, PropValue)>,
    /// OPEN: `DAOS_COO_*`; DESTROY: force (0/1).
    pub flags: u64,
    /// OPEN: the properties asked for; QUERY: its bits.
    pub bits: u64,
    /// The by-label ops' label.
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
        | op::DESTROY_BYLABEL => Some(run(&mut d)),
        _ => None,
    }
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
    }
}
