//! The pool module's RPCs (DAOS `src/pool/rpc.h`, protocol version 6; DAOS 2.8's version 7
//! keeps version 6's input header) and the pool map buffer (`struct pool_buf`,
//! `include/daos/pool_map.h`) pushed into the client's bulk at connect and query.
//!
//! ```text
//! pool_op_v6_in: uuid [16], handle uuid [16], client id [16], time u64          (56 bytes)
//! pool_op_out:   rc i32, map version u32, rsvc_hint {flags u32, rank u32, term u64}
//! CONNECT in:  op, credential iov, flags u64, query bits u64, map bulk, pool version u32
//! CONNECT out: op_out, space [88], rebuild status [56], map buffer size u32
//! QUERY in:    op, map bulk, query bits u64
//! QUERY out:   op_out, prop (u32 0: none), space [88], rebuild status [56], map buffer size
//!              u32, pool layout version u32, upgrade layout version u32
//! DISCONNECT:  op in, op_out out
//! pool_buf:    version u32 (2), reserved u32, csum u32, nr u32, domain nr u32, node nr u32,
//!              target nr u32, padding u32, then nr components of 32 bytes: type u8, status u8,
//!              index u8, padding u8, id u32, rank u32, ver u32, fseq u32, in/out ver u32,
//!              flags u32, nr u32 (children)
//! ```

use crate::CartError;
use crate::bulk::{self, Bulk};
use crate::proc_::{Decoder, Encoder};

/// Pool op indices (protocol 6).
pub mod op {
    pub const CONNECT: u16 = 1;
    pub const DISCONNECT: u16 = 2;
    pub const QUERY: u16 = 3;
    pub const ATTR_LIST: u16 = 13;
    pub const ATTR_GET: u16 = 14;
    pub const ATTR_SET: u16 = 15;
    pub const ATTR_DEL: u16 = 16;
    pub const LIST_CONT: u16 = 19;
    /// A client's pool map refresh (on `DER_STALE`, or a reply with a newer map version).
    pub const TGT_QUERY_MAP: u16 = 20;
}

/// `RSVC_HINT_VALID`.
pub const HINT_VALID: u32 = 1;
/// Size of `struct daos_pool_space`.
pub const SPACE_LEN: usize = 88;
/// Size of `struct daos_rebuild_status`.
pub const REBUILD_LEN: usize = 56;
/// The pool layout version this engine serves (`DAOS_POOL_OBJ_VERSION`).
pub const OBJ_LAYOUT_VERSION: u32 = 2;
/// Query bit: the rebuild status carries the maximum layout version supported.
pub const QUERY_MAX_LAYOUT_VER: u64 = 1 << 2;

/// `pool_op_v6_in`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOpIn {
    pub uuid: [u8; 16],
    pub handle: [u8; 16],
    pub client: [u8; 16],
    pub time: u64,
}

impl PoolOpIn {
    pub fn decode(d: &mut Decoder<'_>) -> Result<PoolOpIn, CartError> {
        Ok(PoolOpIn {
            uuid: d.uuid("pi_uuid")?,
            handle: d.uuid("pi_hdl")?,
            client: d.uuid("pi_cli_id")?,
            time: d.u64("pi_time")?,
        })
    }

    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.uuid(&self.uuid, "pi_uuid")?;
        e.uuid(&self.handle, "pi_hdl")?;
        e.uuid(&self.client, "pi_cli_id")?;
        e.u64(self.time, "pi_time")
    }
}

/// `pool_op_out` (the leader hint names this rank as leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOpOut {
    pub rc: i32,
    pub map_version: u32,
    pub hint_flags: u32,
    pub hint_rank: u32,
    pub hint_term: u64,
}

impl PoolOpOut {
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.i32(self.rc, "po_rc")?;
        e.u32(self.map_version, "po_map_version")?;
        e.u32(self.hint_flags, "sh_flags")?;
        e.u32(self.hint_rank, "sh_rank")?;
        e.u64(self.hint_term, "sh_term")
    }

    pub fn decode(d: &mut Decoder<'_>) -> Result<PoolOpOut, CartError> {
        Ok(PoolOpOut {
            rc: d.i32("po_rc")?,
            map_version: d.u32("po_map_version")?,
            hint_flags: d.u32("sh_flags")?,
            hint_rank: d.u32("sh_rank")?,
            hint_term: d.u64("sh_term")?,
        })
    }
}

/// POOL_CONNECT's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectIn<'a> {
    pub op: PoolOpIn,
    /// The packed `Auth.Credential` the agent made.
    pub cred: &'a [u8],
    pub flags: u64,
    pub query_bits: u64,
    pub map_bulk: Option<Bulk<'a>>,
    pub pool_version: u32,
}

impl<'a> ConnectIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<ConnectIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        Ok(ConnectIn {
            op: PoolOpIn::decode(&mut d)?,
            cred: d.iov("pci_cred")?,
            flags: d.u64("pci_flags")?,
            query_bits: d.u64("pci_query_bits")?,
            map_bulk: bulk::decode(&mut d, "pci_map_bulk")?,
            pool_version: d.u32("pci_pool_version")?,
        })
    }
}

/// POOL_QUERY's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryIn<'a> {
    pub op: PoolOpIn,
    pub map_bulk: Option<Bulk<'a>>,
    pub query_bits: u64,
}

impl<'a> QueryIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<QueryIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        Ok(QueryIn {
            op: PoolOpIn::decode(&mut d)?,
            map_bulk: bulk::decode(&mut d, "pqi_map_bulk")?,
            query_bits: d.u64("pqi_query_bits")?,
        })
    }
}

/// `struct daos_pool_space`: per media (SCM, NVMe) total and free, and the free space of the
/// fullest, emptiest and average target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    pub total: [u64; 2],
    pub free: [u64; 2],
    pub free_min: [u64; 2],
    pub free_max: [u64; 2],
    pub free_mean: [u64; 2],
    pub targets: u32,
}

impl Space {
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        for a in [
            self.total,
            self.free,
            self.free_min,
            self.free_max,
            self.free_mean,
        ] {
            e.u64(a[0], "daos_pool_space")?;
            e.u64(a[1], "daos_pool_space")?;
        }
        e.u32(self.targets, "ps_ntargets")?;
        e.u32(0, "ps_padding")
    }
}

/// `struct daos_rebuild_status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebuildStatus {
    pub version: u32,
    pub seconds: u32,
    pub errno: i32,
    /// 0 in progress, 1 not started, 2 completed.
    pub state: i32,
    pub max_layout_version: u16,
    pub fail_rank: i32,
    pub to_be_rebuilt: u64,
    pub objects: u64,
    pub records: u64,
    pub size: u64,
}

impl RebuildStatus {
    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.u32(self.version, "rs_version")?;
        e.u32(self.seconds, "rs_seconds")?;
        e.i32(self.errno, "rs_errno")?;
        e.i32(self.state, "rs_state")?;
        e.u16(self.max_layout_version, "rs_max_supported_layout_ver")?;
        e.u16(0, "rs_padding")?;
        e.i32(self.fail_rank, "rs_fail_rank")?;
        e.u64(self.to_be_rebuilt, "rs_toberb_obj_nr")?;
        e.u64(self.objects, "rs_obj_nr")?;
        e.u64(self.records, "rs_rec_nr")?;
        e.u64(self.size, "rs_size")
    }
}

/// `DAOS_PROP_PO_ACL`: a pool's ACL (`struct daos_acl`), sent as an iov.
pub const PROP_ACL: u32 = 2;

/// A property value as `daos_prop_t` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropValue {
    Num(u64),
    Text(String),
    /// Raw bytes (a container's roots: four object ids, 64 bytes).
    Raw(Vec<u8>),
    /// An iov (an ACL).
    Iov(Vec<u8>),
    /// A rank list (`d_rank_list_t`: u32 count, then the ranks): a pool's service ranks.
    Ranks(Vec<u32>),
}

/// `DAOS_PROP_PO_SVC_LIST`: the pool service's ranks, sent as a rank list.
pub const PROP_SVC_LIST: u32 = 8;

/// Writes a `daos_prop_t` (`crt_proc_daos_prop_t`): u32 count (0: none, and nothing
/// follows), u32 reserved, then per entry u32 type, u16 flags, u16 reserved and the value: a
/// string for text properties, else a u64.
pub fn write_props(e: &mut Encoder<'_>, props: &[(u32, PropValue)]) -> Result<(), CartError> {
    e.u32(props.len() as u32, "dpp_nr")?;
    if props.is_empty() {
        return Ok(());
    }
    e.u32(0, "dpp_reserv")?;
    for (t, v) in props {
        e.u32(*t, "dpe_type")?;
        e.u16(0, "dpe_flags")?;
        e.u16(0, "dpe_reserv")?;
        match v {
            PropValue::Num(n) => e.u64(*n, "dpe_val")?,
            PropValue::Text(s) => e.string(Some(s), false, "dpe_str")?,
            PropValue::Raw(b) => e.bytes(b, "dpe_val_ptr")?,
            PropValue::Iov(b) => e.iov(b, "dpe_val_ptr")?,
            PropValue::Ranks(r) => {
                e.u32(r.len() as u32, "rl_nr")?;
                for x in r {
                    e.u32(*x, "rl_ranks")?;
                }
            }
        }
    }
    Ok(())
}

/// Component types of the pool map.
pub mod comp {
    pub const TARGET: u8 = 0;
    pub const RANK: u8 = 1;
    pub const NODE: u8 = 2;
}

/// Component states (`PO_COMP_ST_*`).
pub mod status {
    pub const NEW: u8 = 1;
    pub const UP: u8 = 2;
    pub const UPIN: u8 = 4;
    pub const DOWN: u8 = 8;
    pub const DOWNOUT: u8 = 16;
    pub const DRAIN: u8 = 32;
}

/// One rank of the pool map as the pool service holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapRank {
    pub rank: u32,
    /// Its fault domain (DAOS: the host, `/hostname`); ranks of one domain share a node.
    pub domain: String,
    /// Per target, its state ([`status`]).
    pub targets: Vec<u8>,
}

/// Size of a pool buffer holding `components` components.
pub fn pool_buf_size(components: usize) -> usize {
    32 + 32 * components
}

/// Components a map of `ranks` needs: one node per fault domain, the ranks, their targets.
pub fn components(ranks: &[MapRank]) -> usize {
    domains(ranks).len() + ranks.len() + ranks.iter().map(|r| r.targets.len()).sum::<usize>()
}

/// The fault domains in order of first appearance in `ranks` (sorted by rank).
fn domains(ranks: &[MapRank]) -> Vec<&str> {
    let mut d: Vec<&str> = Vec::new();
    for r in ranks {
        if !d.contains(&r.domain.as_str()) {
            d.push(&r.domain);
        }
    }
    d
}

/// Writes the pool map as DAOS's `pool_buf` (version `map_version`) into `out`: the node
/// layer (one per fault domain, ids 1, 2, ... in order), then the ranks grouped by node, then
/// each rank's targets in the same order. Returns the length, or `Err` when `out` is too short.
pub fn write_pool_buf(
    out: &mut [u8],
    ranks: &[MapRank],
    map_version: u32,
) -> Result<usize, CartError> {
    let mut sorted: Vec<&MapRank> = ranks.iter().collect();
    sorted.sort_by_key(|r| r.rank);
    let owned: Vec<MapRank> = sorted.into_iter().cloned().collect();
    let doms = domains(&owned);
    // Ranks grouped by node, in node order, by rank within a node.
    let mut grouped: Vec<&MapRank> = Vec::with_capacity(owned.len());
    for d in &doms {
        grouped.extend(owned.iter().filter(|r| r.domain == *d));
    }
    let targets: usize = grouped.iter().map(|r| r.targets.len()).sum();
    let nr = doms.len() + grouped.len() + targets;
    let mut e = Encoder::new(out);
    e.u32(2, "pb_version")?;
    e.u32(0, "pb_reserved")?;
    e.u32(0, "pb_csum")?;
    e.u32(nr as u32, "pb_nr")?;
    e.u32(doms.len() as u32, "pb_domain_nr")?;
    e.u32(grouped.len() as u32, "pb_node_nr")?;
    e.u32(targets as u32, "pb_target_nr")?;
    e.u32(0, "pb_padding")?;
    let component = |e: &mut Encoder<'_>,
                     kind: u8,
                     st: u8,
                     index: u32,
                     id: u32,
                     rank: u32,
                     children: u32|
     -> Result<(), CartError> {
        e.u8(kind, "co_type")?;
        e.u8(st, "co_status")?;
        e.u8(index as u8, "co_index")?;
        e.u8(0, "co_padding")?;
        e.u32(id, "co_id")?;
        e.u32(rank, "co_rank")?;
        e.u32(map_version, "co_ver")?;
        e.u32(1, "co_fseq")?;
        e.u32(map_version, "co_in_ver")?;
        e.u32(0, "co_flags")?;
        e.u32(children, "co_nr")
    };
    for (i, d) in doms.iter().enumerate() {
        let children = grouped.iter().filter(|r| r.domain == *d).count();
        component(
            &mut e,
            comp::NODE,
            status::UPIN,
            i as u32,
            i as u32 + 1,
            0,
            children as u32,
        )?;
    }
    for (i, r) in grouped.iter().enumerate() {
        let st = if r.targets.iter().all(|s| *s == status::DOWNOUT) {
            status::DOWNOUT
        } else {
            status::UPIN
        };
        component(
            &mut e,
            comp::RANK,
            st,
            i as u32,
            r.rank,
            r.rank,
            r.targets.len() as u32,
        )?;
    }
    let mut id = 0u32;
    for r in &grouped {
        for (j, st) in r.targets.iter().enumerate() {
            component(&mut e, comp::TARGET, *st, j as u32, id, r.rank, 1)?;
            id += 1;
        }
    }
    Ok(e.len())
}

/// A decoded component (for clients and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    pub kind: u8,
    pub status: u8,
    pub index: u8,
    pub id: u32,
    pub rank: u32,
    pub version: u32,
    pub children: u32,
}

/// Decodes a pool buffer: (domain nr, node nr, target nr, components).
pub fn read_pool_buf(b: &[u8]) -> Result<(u32, u32, u32, Vec<Component>), CartError> {
    let mut d = Decoder::new(b);
    d.u32("pb_version")?;
    d.u32("pb_reserved")?;
    d.u32("pb_csum")?;
    let nr = d.u32("pb_nr")?;
    let domains = d.u32("pb_domain_nr")?;
    let nodes = d.u32("pb_node_nr")?;
    let targets = d.u32("pb_target_nr")?;
    d.u32("pb_padding")?;
    if u64::from(domains) + u64::from(nodes) + u64::from(targets) != u64::from(nr) {
        return Err(CartError::Invalid {
            field: "pb_nr",
            why: "not the sum of domains, nodes and targets",
        });
    }
    let mut comps = Vec::with_capacity((nr as usize).min(b.len() / 32));
    for _ in 0..nr {
        let kind = d.u8("co_type")?;
        let status = d.u8("co_status")?;
        let index = d.u8("co_index")?;
        d.u8("co_padding")?;
        let id = d.u32("co_id")?;
        let rank = d.u32("co_rank")?;
        let version = d.u32("co_ver")?;
        d.u32("co_fseq")?;
        d.u32("co_in_ver")?;
        d.u32("co_flags")?;
        let children = d.u32("co_nr")?;
        comps.push(Component {
            kind,
            status,
            index,
            id,
            rank,
            version,
            children,
        });
    }
    Ok((domains, nodes, targets, comps))
}

/// `pool_tgt_query_map_in`: the op, the map buffer, the client's map version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TgtQueryMapIn<'a> {
    pub op: PoolOpIn,
    pub map_bulk: Option<crate::bulk::Bulk<'a>>,
    pub map_version: u32,
}

impl<'a> TgtQueryMapIn<'a> {
    pub fn decode(b: &'a [u8]) -> Result<TgtQueryMapIn<'a>, CartError> {
        let mut d = Decoder::new(b);
        let op = PoolOpIn::decode(&mut d)?;
        let map_bulk = crate::bulk::decode(&mut d, "tmi_map_bulk")?;
        let map_version = d.u32("tmi_map_version")?;
        if !d.rest().is_empty() {
            return Err(CartError::Invalid {
                field: "tmi_map_version",
                why: "bytes after the input",
            });
        }
        Ok(TgtQueryMapIn {
            op,
            map_bulk,
            map_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_a_count_then_typed_entries() {
        let mut b = [0u8; 128];
        let mut e = Encoder::new(&mut b);
        write_props(&mut e, &[]).unwrap();
        assert_eq!(e.len(), 4, "an empty list is its count alone");
        let mut e = Encoder::new(&mut b);
        write_props(
            &mut e,
            &[(11, PropValue::Num(2)), (1, PropValue::Text("tank".into()))],
        )
        .unwrap();
        let n = e.len();
        assert_eq!(n, 8 + (8 + 8) + (8 + 8 + 5 + 2));
        assert_eq!(&b[..8], &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            &b[8..24],
            &[11, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&b[24..32], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[32..40], &5u64.to_le_bytes());
        assert_eq!(&b[40..n], b"tank\0\0\0");
    }

    #[test]
    fn a_one_host_map_is_node_rank_targets() {
        let ranks = [MapRank {
            rank: 0,
            domain: "/vm".into(),
            targets: vec![status::UPIN; 4],
        }];
        assert_eq!(components(&ranks), 6);
        let mut b = [0u8; 512];
        let n = write_pool_buf(&mut b, &ranks, 1).unwrap();
        assert_eq!(n, pool_buf_size(6));
        assert_eq!(
            &b[..32],
            &[
                2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0,
                0, 0, 0, 0
            ]
        );
        // The node: type 2, UPIN, index 0, id 1, rank 0, ver 1, fseq 1, in 1, flags 0, nr 1.
        assert_eq!(
            &b[32..64],
            &[
                2, 4, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                1, 0, 0, 0
            ]
        );
        let (dn, nn, tn, comps) = read_pool_buf(&b[..n]).unwrap();
        assert_eq!((dn, nn, tn), (1, 1, 4));
        assert_eq!(
            (comps[1].kind, comps[1].id, comps[1].children),
            (comp::RANK, 0, 4)
        );
        assert!(
            comps[2..]
                .iter()
                .enumerate()
                .all(|(j, c)| c.kind == comp::TARGET && c.index as usize == j && c.id == j as u32)
        );
        assert!(
            write_pool_buf(&mut b[..100], &ranks, 1).is_err(),
            "too short"
        );
    }

    #[test]
    fn ranks_group_under_their_hosts_and_keep_their_states() {
        let ranks = [
            MapRank {
                rank: 2,
                domain: "/a".into(),
                targets: vec![status::UPIN, status::DOWN],
            },
            MapRank {
                rank: 0,
                domain: "/a".into(),
                targets: vec![status::UPIN; 2],
            },
            MapRank {
                rank: 1,
                domain: "/b".into(),
                targets: vec![status::DOWNOUT; 2],
            },
        ];
        let mut b = vec![0u8; pool_buf_size(components(&ranks))];
        write_pool_buf(&mut b, &ranks, 7).unwrap();
        let (dn, nn, tn, c) = read_pool_buf(&b).unwrap();
        assert_eq!((dn, nn, tn), (2, 3, 6));
        assert_eq!(
            (c[0].children, c[1].children),
            (2, 1),
            "/a holds ranks 0 and 2"
        );
        let rank_order: Vec<u32> = c[2..5].iter().map(|x| x.rank).collect();
        assert_eq!(rank_order, [0, 2, 1]);
        assert_eq!(
            c[4].status,
            status::DOWNOUT,
            "a rank whose targets are all out"
        );
        assert_eq!(c[8].status, status::DOWN, "rank 2's second target");
        assert!(c.iter().all(|x| x.version == 7));
    }
}
