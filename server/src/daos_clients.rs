//! What daos_server answers its engines when DAOS's own clients reach them (#24): DAOS's
//! engines hold pool services themselves, ours are daos_server's, so an engine serving a DAOS
//! client's POOL_CONNECT, POOL_DISCONNECT or POOL_QUERY asks here (`PoolCall`, dRPC 396) and
//! encodes the answer in DAOS's wire form (the pool map as a `pool_buf`).
//!
//! A connect goes to the pool service's leader like every client's (credential validated,
//! ACL checked, handle recorded and pushed to the pool's engines); the client's handle UUID
//! names the handle's cookie, so a connect sent again finds its handle and a disconnect closes
//! it.

use daos_drpc::srv::{
    ContCallReq, ContCallResp, ContEntry, MapRank, PoolCallReq, PoolCallResp, PoolProp,
};
use daos_mgmt::{PoolRecord, RebuildState};
use daos_wire::der;

use crate::harness::Harness;

/// `PoolCallReq.op`.
pub const OP_CONNECT: u32 = 1;
pub const OP_DISCONNECT: u32 = 2;
pub const OP_QUERY: u32 = 3;

pub use daos_wire::handle_cookie;

fn refused(status: i32, info: String) -> PoolCallResp {
    tracing::warn!("DAOS client pool call refused: {info}");
    PoolCallResp {
        status,
        info,
        ..Default::default()
    }
}

/// Answers one pool call of an engine.
pub fn pool_call(h: &Harness, req: &PoolCallReq) -> PoolCallResp {
    let Some(rec) = h.ms().pool_find(&req.uuid).filter(|p| p.uuid == req.uuid) else {
        return refused(der::NONEXIST, format!("no pool {}", req.uuid));
    };
    if req.handle_uuid.len() != 16 {
        return refused(
            der::INVAL,
            format!(
                "PoolCallReq.handle_uuid has {} bytes, a UUID has 16",
                req.handle_uuid.len()
            ),
        );
    }
    let cookie = handle_cookie(&req.handle_uuid);
    match req.op {
        OP_CONNECT if req.cred.is_empty() => refused(
            der::NO_PERM,
            format!(
                "pool {} connect without a credential (the client's agent makes one)",
                rec.label
            ),
        ),
        OP_CONNECT => {
            // DAOS_PC_RO 1, DAOS_PC_RW 2, DAOS_PC_EX 4 (read-write, exclusive).
            let flags = if req.flags & 0x4 != 0 {
                crate::cont::FLAG_RW | crate::cont::FLAG_EX
            } else if req.flags & 0x2 != 0 {
                crate::cont::FLAG_RW
            } else {
                crate::cont::FLAG_RO
            };
            let connected =
                h.remote()
                    .pool_connect(&rec.svc_hosts, &rec.uuid, req.cred.clone(), flags, cookie);
            if let Err(e) = connected {
                return refused(e.der(), format!("pool {} connect: {e}", rec.label));
            }
            map_answer(h, &rec, false)
        }
        OP_DISCONNECT => {
            // An unknown handle is no error: the disconnect of a retried request.
            if let Err(e) = h
                .remote()
                .system_disconnect(&rec.svc_hosts, &rec.uuid, cookie)
            {
                tracing::debug!("pool {}: disconnect of {cookie:#x}: {e}", rec.label);
            }
            PoolCallResp {
                map_version: rec.map.version(),
                ..Default::default()
            }
        }
        OP_QUERY => {
            let mut resp = map_answer(h, &rec, req.space);
            if resp.status == 0 {
                match props(h, &rec, req.prop_bits) {
                    Ok(p) => resp.props = p,
                    Err(e) => return *e,
                }
            }
            resp
        }
        other => refused(
            der::INVAL,
            format!("PoolCallReq.op {other}: give 1 (connect), 2 (disconnect) or 3 (query)"),
        ),
    }
}

/// DAOS's pool property type of each query bit from 16 on (`DAOS_PO_QUERY_PROP_*`, in bit
/// order: label, space_rb, self_heal, reclaim, ACL, owner, owner group, service list,
/// EC cell size, redundancy factor, EC pda, RP pda, data threshold, global version, upgrade
/// status, scrub mode, frequency and threshold, service redundancy factor, object version,
/// performance domain, checkpoint mode, frequency and threshold, reintegration mode, service
/// ops enabled and entry age).
const PROP_OF_BIT: [u32; 27] = [
    1, 3, 4, 5, 2, 6, 7, 8, 9, 11, 12, 13, 10, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27,
];
/// The pool global version this server's pools have (`DAOS_POOL_GLOBAL_VERSION` of DAOS 2.6).
const GLOBAL_VERSION: u64 = 3;
/// The object layout version of its pools (`DAOS_POOL_OBJ_VERSION`).
const OBJ_VERSION: u64 = 2;

/// The pool properties `bits` ask for, as DAOS numbers them; those without a value here
/// (ACL, service list: DAOS sends them as an ACL and a rank list) are left out.
fn props(h: &Harness, rec: &PoolRecord, bits: u64) -> Result<Vec<PoolProp>, Box<PoolCallResp>> {
    let types: Vec<u32> = (16..16 + PROP_OF_BIT.len() as u32)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| PROP_OF_BIT[(b - 16) as usize])
        .collect();
    let mut out = Vec::with_capacity(types.len());
    let named: Vec<(u32, String)> = types
        .iter()
        .filter_map(|t| daos_control::props::by_number(*t).map(|d| (*t, d.name.to_string())))
        .filter(|(_, n)| crate::pools::PROPS.iter().any(|d| d.name == n))
        .collect();
    let names: Vec<String> = named.iter().map(|(_, n)| n.clone()).collect();
    let values = if names.is_empty() {
        Vec::new()
    } else {
        match crate::pools::get_props(h, &rec.uuid, &names) {
            Ok((_, v)) => v,
            Err(e) => {
                return Err(Box::new(refused(
                    der::NONEXIST,
                    format!("pool {} props: {e}", rec.label),
                )));
            }
        }
    };
    for t in types {
        let text = |s: &str| PoolProp {
            is_text: true,
            text: s.to_string(),
            ..Default::default()
        };
        let value = match t {
            // The ACL in DAOS's binary form; the owner and group as DAOS names them.
            2 => Some(PoolProp {
                raw: daos_auth::Acl::stored(&rec.acl, daos_auth::Object::Pool)
                    .unwrap_or_else(|_| daos_auth::Acl::default_pool())
                    .to_binary(),
                ..Default::default()
            }),
            6 => Some(text(&rec.owner)),
            // The service ranks as DAOS sends them: a rank list.
            8 => Some(PoolProp {
                raw: rec.svc_ranks.iter().flat_map(|r| r.to_le_bytes()).collect(),
                ..Default::default()
            }),
            7 => Some(text(&rec.owner_group)),
            14 => Some(num(GLOBAL_VERSION)),
            20 => Some(num(OBJ_VERSION)),
            15 => Some(num(0)),
            _ => values.iter().find_map(|(d, v)| {
                let p = daos_control::props::encode(d.name, v).ok()?;
                (p.number == t).then(|| match p.value {
                    Some(daos_proto::mgmt::pool_property::Value::Strval(s)) => PoolProp {
                        is_text: true,
                        text: s,
                        ..Default::default()
                    },
                    Some(daos_proto::mgmt::pool_property::Value::Numval(n)) => num(n),
                    None => num(0),
                })
            }),
        };
        if let Some(mut p) = value {
            p.r#type = t;
            out.push(p);
        }
    }
    Ok(out)
}

fn num(n: u64) -> PoolProp {
    PoolProp {
        num: n,
        ..Default::default()
    }
}

/// The pool's map (as its service's leader holds it), service ranks, rebuild state and, when
/// asked, space.
fn map_answer(h: &Harness, rec: &PoolRecord, space: bool) -> PoolCallResp {
    let rec = match h.remote().map_query(&rec.svc_hosts, &rec.uuid) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(
                "pool {}: map from its service: {e}; using the copy",
                rec.label
            );
            rec.clone()
        }
    };
    let members = h.ms().members();
    let ranks = rec
        .ranks
        .iter()
        .map(|&rank| {
            let domain = members
                .iter()
                .find(|m| m.rank == rank)
                .map_or_else(|| format!("/rank{rank}"), |m| m.fault_domain.clone());
            let n = crate::pools::rank_targets(h, rank);
            MapRank {
                rank,
                domain,
                targets: (0..n).map(|t| rec.map.state(rank, t) as u32).collect(),
            }
        })
        .collect();
    let mut resp = PoolCallResp {
        map_version: rec.map.version(),
        ranks,
        svc_ranks: rec.svc_ranks.clone(),
        rebuild_state: match rec.map.rebuild.state {
            RebuildState::Busy => 0,
            RebuildState::Idle => 1,
            RebuildState::Done => 2,
        },
        rebuild_version: rec.map.rebuild.version,
        ..Default::default()
    };
    if space {
        match crate::pools::query(h, &rec.uuid) {
            Ok((_, spaces, _)) => {
                let mut v = [0u64; 10];
                let (mut min, mut max, mut sum) = ([u64::MAX; 2], [0u64; 2], [0u64; 2]);
                for (_, t) in &spaces {
                    v[0] += t.scm_total;
                    v[1] += t.nvme_total;
                    v[2] += t.scm_free;
                    v[3] += t.nvme_free;
                    for (i, free) in [t.scm_free, t.nvme_free].into_iter().enumerate() {
                        min[i] = min[i].min(free);
                        max[i] = max[i].max(free);
                        sum[i] += free;
                    }
                }
                let n = spaces.len().max(1) as u64;
                if spaces.is_empty() {
                    min = [0; 2];
                }
                v[4..6].copy_from_slice(&min);
                v[6..8].copy_from_slice(&max);
                v[8] = sum[0] / n;
                v[9] = sum[1] / n;
                resp.space = v.to_vec();
                resp.targets = spaces.len() as u32;
            }
            Err(e) => {
                let code = match e.kind {
                    crate::pools::PoolErrorKind::NotFound => der::NONEXIST,
                    crate::pools::PoolErrorKind::BadRequest => der::INVAL,
                    _ => der::BUSY,
                };
                return refused(code, format!("pool {} space: {e}", rec.label));
            }
        }
    }
    resp
}

/// DAOS's container property types (`DAOS_PROP_CO_*`) this module names.
pub mod co {
    pub const LABEL: u32 = 0x1001;
    pub const LAYOUT_TYPE: u32 = 0x1002;
    pub const LAYOUT_VER: u32 = 0x1003;
    pub const CSUM: u32 = 0x1004;
    pub const CSUM_CHUNK_SIZE: u32 = 0x1005;
    pub const CSUM_SERVER_VERIFY: u32 = 0x1006;
    pub const REDUN_FAC: u32 = 0x1007;
    pub const REDUN_LVL: u32 = 0x1008;
    pub const SNAPSHOT_MAX: u32 = 0x1009;
    pub const ACL: u32 = 0x100A;
    pub const COMPRESS: u32 = 0x100B;
    pub const ENCRYPT: u32 = 0x100C;
    pub const OWNER: u32 = 0x100D;
    pub const OWNER_GROUP: u32 = 0x100E;
    pub const DEDUP: u32 = 0x100F;
    pub const DEDUP_THRESHOLD: u32 = 0x1010;
    pub const ROOTS: u32 = 0x1011;
    pub const STATUS: u32 = 0x1012;
    pub const ALLOCED_OID: u32 = 0x1013;
    pub const EC_CELL_SZ: u32 = 0x1014;
    pub const EC_PDA: u32 = 0x1015;
    pub const RP_PDA: u32 = 0x1016;
    pub const GLOBAL_VERSION: u32 = 0x1017;
    pub const SCRUBBER_DISABLED: u32 = 0x1018;
    pub const OBJ_VERSION: u32 = 0x1019;
    pub const PERF_DOMAIN: u32 = 0x101A;
}

/// `ContCallReq.op` of the pool's container list.
pub const OP_LIST: u32 = 100;

fn cont_refused(status: i32, info: String) -> ContCallResp {
    tracing::warn!("DAOS client container call refused: {info}");
    ContCallResp {
        status,
        info,
        ..Default::default()
    }
}

/// A DAOS property as stored in a container's properties (`name:value;...`): rd_fac and
/// rd_lvl by our names (our clients place by them), the rest as `daos.<type>` (hex for
/// ROOTS).
fn store_prop(p: &PoolProp) -> Option<String> {
    match p.r#type {
        co::REDUN_FAC => Some(format!("rd_fac:{}", p.num)),
        co::REDUN_LVL => Some(format!(
            "rd_lvl:{}",
            if p.num == 1 { "rank" } else { "node" }
        )),
        co::LABEL | co::OWNER | co::OWNER_GROUP | co::ACL | co::STATUS | co::GLOBAL_VERSION => None,
        t if p.is_text => Some(format!("daos.{t:#x}:{}", p.text)),
        t => Some(format!("daos.{t:#x}:{}", p.num)),
    }
}

/// The entries of a DAOS binary ACL property, as our ACL strings; a refusal naming what is
/// wrong with it.
fn acl_entries(p: &PoolProp) -> Result<Vec<String>, String> {
    daos_auth::Acl::from_binary(&p.raw, daos_auth::Object::Container)
        .map(|a| a.strings())
        .map_err(|e| format!("container ACL property: {e}"))
}

/// ACL_DELETE's principal (`enum daos_acl_principal_type`, name) as our ACL commands name it.
fn principal_of(kind: u64, name: &str) -> Option<String> {
    let name = name.trim_end_matches('@');
    match kind {
        0 => Some("OWNER@".into()),
        1 if !name.is_empty() => Some(format!("u:{name}@")),
        2 => Some("GROUP@".into()),
        3 if !name.is_empty() => Some(format!("g:{name}@")),
        4 => Some("EVERYONE@".into()),
        _ => None,
    }
}

/// Properties held (`name:value;...`) with `set` (`name:value` each) laid over them.
fn merged_props(held: &str, set: &[String]) -> String {
    let name = |i: &str| i.split_once(':').map_or(i, |(n, _)| n).to_string();
    let mut out: Vec<String> = held
        .split(';')
        .filter(|i| !i.is_empty())
        .filter(|i| !set.iter().any(|s| name(s) == name(i)))
        .map(str::to_string)
        .collect();
    out.extend(set.iter().cloned());
    out.join(";")
}

/// Every DAOS property of a container: the defaults DAOS's engines give (§3.2 of
/// docs/daos-protocol/cont_wire.md), overlaid with what is stored.
fn cont_props(c: &daos_proto::cont::Container, map_version: u32) -> Vec<PoolProp> {
    let n = |t: u32, v: u64| PoolProp {
        r#type: t,
        num: v,
        ..Default::default()
    };
    let text = |t: u32, v: &str| PoolProp {
        r#type: t,
        is_text: true,
        text: v.to_string(),
        ..Default::default()
    };
    let mut out = vec![
        text(co::LABEL, &c.label),
        n(co::LAYOUT_TYPE, 0),
        n(co::LAYOUT_VER, 1),
        n(co::CSUM, 0),
        n(co::CSUM_CHUNK_SIZE, 32768),
        n(co::CSUM_SERVER_VERIFY, 0),
        n(co::REDUN_FAC, 0),
        n(co::REDUN_LVL, 2),
        n(co::SNAPSHOT_MAX, 0),
        n(co::COMPRESS, 0),
        n(co::ENCRYPT, 0),
        text(co::OWNER, &c.owner),
        text(co::OWNER_GROUP, &c.group),
        // DAOS's binary form of the ACL held (DAOS's default when none was ever set).
        PoolProp {
            r#type: co::ACL,
            raw: daos_auth::Acl::stored(&c.acl, daos_auth::Object::Container)
                .unwrap_or_else(|_| daos_auth::Acl::default_container())
                .to_binary(),
            ..Default::default()
        },
        n(co::DEDUP, 0),
        n(co::DEDUP_THRESHOLD, 4096),
        n(co::STATUS, u64::from(map_version)),
        n(co::ALLOCED_OID, 0),
        n(co::EC_CELL_SZ, 1 << 20),
        n(co::EC_PDA, 1),
        n(co::RP_PDA, u64::from(u32::MAX)),
        n(co::GLOBAL_VERSION, GLOBAL_VERSION),
        n(co::SCRUBBER_DISABLED, 0),
        n(co::OBJ_VERSION, 1),
        n(co::PERF_DOMAIN, 255),
    ];
    let mut set = |p: PoolProp| {
        if let Some(e) = out.iter_mut().find(|e| e.r#type == p.r#type) {
            *e = p;
        } else {
            out.push(p);
        }
    };
    for item in c.props.split(';').filter(|i| !i.is_empty()) {
        let Some((name, value)) = item.split_once(':') else {
            continue;
        };
        match name {
            "rd_fac" => set(n(co::REDUN_FAC, value.parse().unwrap_or(0))),
            "rd_lvl" => set(n(co::REDUN_LVL, if value == "rank" { 1 } else { 2 })),
            _ => {
                let Some(t) = name
                    .strip_prefix("daos.0x")
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                else {
                    continue;
                };
                match value.parse::<u64>() {
                    Ok(v) if t != co::ROOTS => set(n(t, v)),
                    _ => set(text(t, value)),
                }
            }
        }
    }
    // An unlabeled container's label is left out, as DAOS's service leaves out its default
    // label (the client sees the entry "not set").
    if c.label.is_empty() {
        out.retain(|p| p.r#type != co::LABEL);
    }
    out
}

/// Answers one container call of an engine.
pub fn cont_call(h: &Harness, req: &ContCallReq) -> ContCallResp {
    use crate::remote::{ContAnswer, ContCall};
    use daos_proto::cont::{ContReq, HandleReq};
    let Some(rec) = h.ms().pool_find(&req.pool).filter(|p| p.uuid == req.pool) else {
        return cont_refused(der::NONEXIST, format!("no pool {}", req.pool));
    };
    if req.pool_handle.len() != 16 {
        return cont_refused(der::INVAL, "ContCallReq.pool_handle is not a UUID".into());
    }
    let pool_cookie = handle_cookie(&req.pool_handle);
    let cont_id = || {
        if req.label.is_empty() {
            <[u8; 16]>::try_from(&req.cont[..])
                .map(|u| daos_wire::uuid_text(&u))
                .unwrap_or_default()
        } else {
            req.label.clone()
        }
    };
    let remote = |call| h.remote().cont_call(&rec.svc_hosts, call);
    let answer = match req.op {
        0 => {
            let label = req
                .props
                .iter()
                .find(|p| p.r#type == co::LABEL)
                .map(|p| p.text.clone())
                .unwrap_or_default();
            let Ok(uuid) = <[u8; 16]>::try_from(&req.cont[..]) else {
                return cont_refused(der::INVAL, "ContCallReq.cont is not a UUID".into());
            };
            let props: Vec<String> = req.props.iter().filter_map(store_prop).collect();
            let text = |t: u32| {
                req.props
                    .iter()
                    .find(|p| p.r#type == t)
                    .map(|p| p.text.clone())
                    .unwrap_or_default()
            };
            let acl = match req.props.iter().find(|p| p.r#type == co::ACL) {
                Some(p) => match acl_entries(p) {
                    Ok(a) => a,
                    Err(e) => return cont_refused(der::INVAL, e),
                },
                None => Vec::new(),
            };
            remote(ContCall::Create(ContReq {
                pool: rec.uuid.clone(),
                label,
                uuid: daos_wire::uuid_text(&uuid),
                props: props.join(";"),
                handle: pool_cookie,
                owner: text(co::OWNER),
                group: text(co::OWNER_GROUP),
                acl,
                ..Default::default()
            }))
        }
        1 | 18 => remote(ContCall::Destroy(ContReq {
            pool: rec.uuid.clone(),
            id: cont_id(),
            force: req.force,
            handle: pool_cookie,
            ..Default::default()
        })),
        2 | 17 => {
            if req.cont_handle.len() != 16 {
                return cont_refused(der::INVAL, "ContCallReq.cont_handle is not a UUID".into());
            }
            // DAOS_COO_RW 2 and EX 4 open for writing; the rest read-only.
            let flags = if req.flags & 0x6 != 0 {
                crate::cont::FLAG_RW
            } else {
                crate::cont::FLAG_RO
            };
            remote(ContCall::Open(HandleReq {
                pool: rec.uuid.clone(),
                handle: pool_cookie,
                cont: cont_id(),
                flags,
                cookie: handle_cookie(&req.cont_handle),
                daos_flags: req.flags,
                ..Default::default()
            }))
        }
        3 => {
            let closed = remote(ContCall::Close(HandleReq {
                pool: rec.uuid.clone(),
                handle: handle_cookie(&req.cont_handle),
                ..Default::default()
            }));
            // An unknown handle is closed already (DAOS answers 0 too).
            if let Err(e) = closed {
                tracing::debug!("container close: {e}");
            }
            return ContCallResp::default();
        }
        4 => remote(ContCall::Query(ContReq {
            pool: rec.uuid.clone(),
            id: cont_id(),
            // Under the container handle: its rights decide which properties it may read.
            handle: handle_cookie(&req.cont_handle),
            query_bits: req.flags,
            ..Default::default()
        })),
        5 => {
            if req.cont_handle.len() != 16 {
                return cont_refused(der::INVAL, "ContCallReq.cont_handle is not a UUID".into());
            }
            remote(ContCall::AllocOids(daos_proto::cont::OidAllocReq {
                pool: rec.uuid.clone(),
                cont: cont_id(),
                handle: handle_cookie(&req.cont_handle),
                num: req.flags,
            }))
        }
        // The pool's attributes (POOL_ATTR_LIST 13 .. _DEL 16, asked as 100 + the index),
        // under the pool handle.
        113..=116 => remote(ContCall::Attrs(daos_proto::cont::ContAttrReq {
            pool: rec.uuid.clone(),
            cont: String::new(),
            handle: pool_cookie,
            op: req.op - 113,
            names: req.attr_names.clone(),
            values: req.attr_values.clone(),
        })),
        // Attributes: list 6, get 7, set 8, delete 9.
        6..=9 => {
            if req.cont_handle.len() != 16 {
                return cont_refused(der::INVAL, "ContCallReq.cont_handle is not a UUID".into());
            }
            remote(ContCall::Attrs(daos_proto::cont::ContAttrReq {
                pool: rec.uuid.clone(),
                cont: cont_id(),
                handle: handle_cookie(&req.cont_handle),
                op: req.op - 6,
                names: req.attr_names.clone(),
                values: req.attr_values.clone(),
            }))
        }
        14 => {
            // Under the container handle: DAOS checks its rights as they were at open.
            let cont_cookie = handle_cookie(&req.cont_handle);
            // PROP_SET: the label, owner and group, the ACL, and the rest merged into the
            // properties held.
            let current = match remote(ContCall::Query(ContReq {
                pool: rec.uuid.clone(),
                id: cont_id(),
                handle: cont_cookie,
                ..Default::default()
            })) {
                Ok(ContAnswer::Container(c)) => c,
                Ok(_) => {
                    return cont_refused(
                        der::PROTO,
                        "container query answered no container".into(),
                    );
                }
                Err(e) => return cont_refused(e.der(), format!("pool {}: {e}", rec.label)),
            };
            let text = |t: u32| {
                req.props
                    .iter()
                    .find(|p| p.r#type == t)
                    .map(|p| p.text.clone())
                    .unwrap_or_default()
            };
            let (owner, group) = (text(co::OWNER), text(co::OWNER_GROUP));
            if !owner.is_empty() || !group.is_empty() {
                let acl = daos_proto::cont::ContAclReq {
                    pool: rec.uuid.clone(),
                    id: current.uuid.clone(),
                    handle: cont_cookie,
                    op: 4,
                    owner,
                    group,
                    ..Default::default()
                };
                if let Err(e) = remote(ContCall::Acl(acl)) {
                    return cont_refused(e.der(), format!("pool {}: {e}", rec.label));
                }
            }
            if let Some(p) = req.props.iter().find(|p| p.r#type == co::ACL) {
                let entries = match acl_entries(p) {
                    Ok(a) => a,
                    Err(e) => return cont_refused(der::INVAL, e),
                };
                let acl = daos_proto::cont::ContAclReq {
                    pool: rec.uuid.clone(),
                    id: current.uuid.clone(),
                    handle: cont_cookie,
                    op: 1,
                    entries,
                    ..Default::default()
                };
                if let Err(e) = remote(ContCall::Acl(acl)) {
                    return cont_refused(e.der(), format!("pool {}: {e}", rec.label));
                }
            }
            let label = text(co::LABEL);
            let set: Vec<String> = req.props.iter().filter_map(store_prop).collect();
            if set.is_empty() && label.is_empty() {
                Ok(ContAnswer::Container(current))
            } else {
                remote(ContCall::SetProps(ContReq {
                    pool: rec.uuid.clone(),
                    id: current.uuid.clone(),
                    props: merged_props(&current.props, &set),
                    label,
                    handle: cont_cookie,
                    ..Default::default()
                }))
            }
        }
        15 | 16 => {
            let cont_cookie = handle_cookie(&req.cont_handle);
            // ACL_UPDATE (the entries, DAOS's binary ACL) and ACL_DELETE (a principal).
            // (ACL_DELETE's `label` is the principal's name: the container is its UUID.)
            let mut acl = daos_proto::cont::ContAclReq {
                pool: rec.uuid.clone(),
                id: <[u8; 16]>::try_from(&req.cont[..])
                    .map(|u| daos_wire::uuid_text(&u))
                    .unwrap_or_default(),
                handle: cont_cookie,
                op: if req.op == 15 { 2 } else { 3 },
                ..Default::default()
            };
            if req.op == 15 {
                let Some(p) = req.props.iter().find(|p| p.r#type == co::ACL) else {
                    return cont_refused(der::INVAL, "ACL_UPDATE without an ACL".into());
                };
                acl.entries = match acl_entries(p) {
                    Ok(a) => a,
                    Err(e) => return cont_refused(der::INVAL, e),
                };
            } else {
                acl.principal = match principal_of(req.flags, &req.label) {
                    Some(p) => p,
                    None => {
                        return cont_refused(
                            der::INVAL,
                            format!(
                                "ACL_DELETE: principal type {} with name {:?} (DAOS's types: 0 owner, 1 user, 2 owner group, 3 group, 4 everyone)",
                                req.flags, req.label
                            ),
                        );
                    }
                };
            }
            remote(ContCall::Acl(acl))
        }
        OP_LIST => remote(ContCall::List(ContReq {
            pool: rec.uuid.clone(),
            handle: pool_cookie,
            ..Default::default()
        })),
        other => {
            return cont_refused(der::NOSYS, format!("container op {other} is not served"));
        }
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return cont_refused(e.der(), format!("pool {}: {e}", rec.label)),
    };
    let map_version = rec.map.version();
    match answer {
        ContAnswer::Container(c) => ContCallResp {
            uuid: daos_wire::parse_uuid(&c.uuid)
                .map(|u| u.to_vec())
                .unwrap_or_default(),
            nhandles: c.nhandles,
            props: cont_props(&c, map_version),
            ..Default::default()
        },
        ContAnswer::List(cs) => ContCallResp {
            containers: cs
                .iter()
                .map(|c| ContEntry {
                    uuid: daos_wire::parse_uuid(&c.uuid)
                        .map(|u| u.to_vec())
                        .unwrap_or_default(),
                    label: c.label.clone(),
                })
                .collect(),
            ..Default::default()
        },
        ContAnswer::Opened { uuid, nhandles } => {
            // The container's properties for the open's reply.
            let q = h.remote().cont_call(
                &rec.svc_hosts,
                ContCall::Query(ContReq {
                    pool: rec.uuid.clone(),
                    id: uuid.clone(),
                    ..Default::default()
                }),
            );
            let props = match q {
                Ok(ContAnswer::Container(c)) => cont_props(&c, map_version),
                _ => Vec::new(),
            };
            ContCallResp {
                uuid: daos_wire::parse_uuid(&uuid)
                    .map(|u| u.to_vec())
                    .unwrap_or_default(),
                props,
                nhandles,
                ..Default::default()
            }
        }
        ContAnswer::Closed => ContCallResp::default(),
        ContAnswer::Attrs(attrs) => ContCallResp {
            attrs: attrs
                .into_iter()
                .map(|a| daos_drpc::srv::ContAttr {
                    name: a.name,
                    value: a.value,
                    found: a.found,
                })
                .collect(),
            ..Default::default()
        },
        ContAnswer::Oids(first) => ContCallResp {
            oid: first,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_uuids_name_distinct_nonzero_cookies() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = handle_cookie(&[b; 16]);
            assert_ne!(c, 0);
            assert!(
                seen.insert(c),
                "uuid of {b:#x}s names a cookie already named"
            );
        }
        let mut u = [0u8; 16];
        u[0] = 7;
        let mut v = u;
        v.swap(0, 8);
        assert_ne!(
            handle_cookie(&u),
            handle_cookie(&v),
            "the halves are not symmetric"
        );
    }
}
