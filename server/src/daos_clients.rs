//! What daos_server answers its engines when DAOS's own clients reach them (#24): DAOS's
//! engines hold pool services themselves, ours are daos_server's, so an engine serving a DAOS
//! client's POOL_CONNECT, POOL_DISCONNECT or POOL_QUERY asks here (`PoolCall`, dRPC 396) and
//! encodes the answer in DAOS's wire form (the pool map as a `pool_buf`).
//!
//! A connect goes to the pool service's leader like every client's (credential validated,
//! ACL checked, handle recorded and pushed to the pool's engines); the client's handle UUID
//! names the handle's cookie, so a connect sent again finds its handle and a disconnect closes
//! it.

use daos_drpc::srv::{MapRank, PoolCallReq, PoolCallResp, PoolProp};
use daos_mgmt::{PoolRecord, RebuildState};
use daos_wire::der;

use crate::harness::Harness;

/// `PoolCallReq.op`.
pub const OP_CONNECT: u32 = 1;
pub const OP_DISCONNECT: u32 = 2;
pub const OP_QUERY: u32 = 3;

/// The cookie a DAOS client's pool handle UUID names: its two halves folded, never 0.
pub fn handle_cookie(uuid: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(uuid.get(..8).unwrap_or(&[0; 8]));
    b.copy_from_slice(uuid.get(8..16).unwrap_or(&[0; 8]));
    (u64::from_le_bytes(a) ^ u64::from_le_bytes(b)).max(1)
}

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
            // DAOS_PC_RO 1, DAOS_PC_RW 2 (DAOS_PC_EX 4 is taken as read-write).
            let flags = if req.flags & 0x6 != 0 {
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
        let value = match t {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_uuids_name_distinct_nonzero_cookies() {
        let a = handle_cookie(&[1; 16]);
        assert_eq!(a, 1, "equal halves fold to 0, which is taken as 1");
        let mut u = [0u8; 16];
        u[0] = 7;
        assert_eq!(handle_cookie(&u), 7);
        u[8] = 7;
        u[9] = 1;
        assert_eq!(handle_cookie(&u), 1 << 8);
    }
}
