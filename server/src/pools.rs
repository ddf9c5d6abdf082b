//! Pools, as the management service runs them: labels and properties, space accounting per
//! rank, and the pool shards on the engines (dRPC POOL_CREATE 207, POOL_DESTROY 208,
//! POOL_QUERY 223). A create reserves the label first, then creates the shards rank by rank and
//! undoes the ones made if any rank fails, so a failed create leaves nothing behind.
//!
//! Capacity of a rank: its SCM tier (`scm_size`, or the size of the mounted file system) and
//! its bdevs (`bdev_size` of each file or RAM disk, the size of a kdev). Used space is the sum
//! of the pools on it. The engine checks again before it allocates anything.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom};
use std::time::Duration;

use daos_config::TierClass;
use daos_drpc::MgmtMethod;
use daos_drpc::mgmt::{
    PoolCreateReq, PoolDestroyReq, PoolOpResp, PoolQueryReq, PoolQueryResp, TargetSpace,
};
use daos_mgmt::state::{Command, Reply};
use prost::Message;
use tracing::{error, info, warn};

use crate::harness::Harness;
use crate::membership::{MemberState, PoolRecord, PoolState};

/// Smallest SCM part per target (DAOS).
pub const MIN_SCM_PER_TARGET: u64 = 16 << 20;
/// SCM share of `--size` when the ranks have NVMe (DAOS: 6%).
pub const DEFAULT_SCM_PERCENT: u64 = 6;

/// A pool request that cannot be met; `kind` picks the gRPC code.
#[derive(Debug)]
pub struct PoolSvcError {
    pub kind: PoolErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolErrorKind {
    BadRequest,
    NotFound,
    Exists,
    NoSpace,
    Failed,
}

impl PoolSvcError {
    fn new(kind: PoolErrorKind, message: impl Into<String>) -> Self {
        PoolSvcError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for PoolSvcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

use PoolErrorKind::*;

pub use daos_control::input::{Size, check_label, check_label_of, parse_size};

/// A pool property DAOS knows: name, description, default, allowed values.
pub struct PropDef {
    pub name: &'static str,
    pub description: &'static str,
    pub default: &'static str,
    check: fn(&str) -> Result<String, String>,
}

fn one_of(v: &str, allowed: &[&str]) -> Result<String, String> {
    if allowed.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(format!("expected one of {}", allowed.join(", ")))
    }
}

fn range(v: &str, lo: u64, hi: u64) -> Result<String, String> {
    match v.trim_end_matches('%').parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n.to_string()),
        _ => Err(format!("expected a number from {lo} to {hi}")),
    }
}

/// The properties `pool get-prop` shows and `set-prop` accepts.
pub const PROPS: &[PropDef] = &[
    PropDef {
        name: "checkpoint",
        description: "Checkpoint mode",
        default: "timed",
        check: |v| one_of(v, &["disabled", "timed", "lazy"]),
    },
    PropDef {
        name: "checkpoint_freq",
        description: "Checkpoint frequency",
        default: "5",
        check: |v| range(v, 1, 1_000_000),
    },
    PropDef {
        name: "ec_cell_sz",
        description: "EC cell size",
        default: "65536",
        check: |v| match v.parse::<u64>() {
            Ok(n) if n.is_power_of_two() && (1024..=1 << 30).contains(&n) => Ok(n.to_string()),
            _ => Err("expected a power of two from 1024 to 1073741824".into()),
        },
    },
    PropDef {
        name: "ec_pda",
        description: "EC performance domain affinity level",
        default: "1",
        check: |v| range(v, 1, 255),
    },
    PropDef {
        name: "label",
        description: "Pool label",
        default: "",
        check: |v| check_label(v).map(|()| v.to_string()),
    },
    PropDef {
        name: "reclaim",
        description: "Reclaim strategy",
        default: "lazy",
        check: |v| one_of(v, &["disabled", "lazy", "time"]),
    },
    PropDef {
        name: "reintegration",
        description: "Reintegration mode",
        default: "data_sync",
        check: |v| one_of(v, &["data_sync", "no_data_sync"]),
    },
    PropDef {
        name: "rp_pda",
        description: "Replica performance domain affinity level",
        default: "3",
        check: |v| range(v, 1, 255),
    },
    PropDef {
        name: "scrub",
        description: "Checksum scrubbing mode",
        default: "off",
        check: |v| one_of(v, &["off", "lazy", "timed"]),
    },
    PropDef {
        name: "self_heal",
        description: "Self-healing policy",
        default: "exclude;rebuild",
        check: |v| {
            // DAOS's form: `exclude;rebuild`, `none`; a comma list is taken too.
            let parts: Vec<&str> = v.split([',', ';']).map(str::trim).collect();
            if v == "none" {
                Ok(v.to_string())
            } else if !v.is_empty()
                && parts
                    .iter()
                    .all(|p| ["exclude", "rebuild", "delay_rebuild"].contains(p))
            {
                Ok(parts.join(";"))
            } else {
                Err("expected none, or exclude, rebuild, delay_rebuild joined by ';'".into())
            }
        },
    },
    PropDef {
        name: "space_rb",
        description: "Rebuild space ratio",
        default: "0",
        check: |v| range(v, 0, 100),
    },
    PropDef {
        name: "svc_rf",
        description: "Pool service redundancy factor",
        default: "2",
        check: |v| range(v, 0, 4),
    },
    PropDef {
        name: "checkpoint_thresh",
        description: "WAL checkpoint threshold, in percentage",
        default: "50",
        check: |v| range(v, 0, 75),
    },
    PropDef {
        name: "data_thresh",
        description: "Data bdev threshold size",
        default: "4096",
        check: |v| match daos_control::input::parse_size(v) {
            Ok(daos_control::input::Size::Bytes(b)) if b <= u64::from(u32::MAX) => {
                Ok(b.to_string())
            }
            _ => Err("expected a size up to 4 GiB (e.g. 4096, 64k)".into()),
        },
    },
    PropDef {
        name: "global_version",
        description: "Global Version",
        default: DAOS_POOL_GLOBAL_VERSION,
        check: |_| Err("the global version is set by the pool, not by a request".into()),
    },
    PropDef {
        name: "perf_domain",
        description: "Pool performance domain",
        default: "root",
        check: |v| one_of(v, &["root", "group"]),
    },
    PropDef {
        name: "rd_fac",
        description: "Pool redundancy factor",
        default: "0",
        check: |v| range(v, 0, 4),
    },
    PropDef {
        name: "scrub_freq",
        description: "Checksum scrubbing frequency",
        default: "604800",
        check: |v| range(v, 0, u64::from(u32::MAX)),
    },
    PropDef {
        name: "scrub_thresh",
        description: "Checksum scrubbing threshold",
        default: "0",
        check: |v| range(v, 0, u64::from(u32::MAX)),
    },
    PropDef {
        name: "svc_list",
        description: "Pool service replica list",
        default: "",
        check: |_| Err("cannot set pool service replica list".into()),
    },
    PropDef {
        name: "svc_ops_enabled",
        description: "Metadata duplicate operations detection enabled",
        default: "1",
        check: |v| range(v, 0, 1),
    },
    PropDef {
        name: "svc_ops_entry_age",
        description: "Metadata duplicate operations KVS max entry age, in seconds",
        default: "300",
        check: |v| range(v, 60, 600),
    },
    PropDef {
        name: "upgrade_status",
        description: "Upgrade Status",
        default: "not started",
        check: |_| Err("the upgrade status is set by the pool, not by a request".into()),
    },
];

/// DAOS 2.6's pool global version (`DAOS_POOL_GLOBAL_VERSION`): this server's pools are at it.
const DAOS_POOL_GLOBAL_VERSION: &str = "3";

/// Validates `name` = `value`, returning the normalized value.
pub fn check_prop(name: &str, value: &str) -> Result<String, String> {
    let def = PROPS.iter().find(|d| d.name == name).ok_or_else(|| {
        format!(
            "unknown pool property {name:?}; known: {}",
            PROPS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
        )
    })?;
    (def.check)(value).map_err(|e| format!("pool property {name}={value:?}: {e}"))
}

/// What a create asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    pub label: String,
    /// The whole pool (`--size`), split by `tier_ratio` over its ranks.
    pub total: Option<Size>,
    /// Per rank (DAOS's per-engine `--scm-size` / `--nvme-size`).
    pub scm: Option<u64>,
    pub nvme: Option<u64>,
    /// Fractions of `total` for SCM and NVMe (default DAOS's 0.06, 0.94).
    pub tier_ratio: Option<(f64, f64)>,
    pub ranks: Vec<u32>,
    /// Without `ranks`: how many of the joined ranks to use (0: all).
    pub num_ranks: u32,
    pub nsvc: u32,
    pub props: Vec<(String, String)>,
    /// The UUID the client chose (DAOS's dmg makes one), else a new one.
    pub uuid: Option<String>,
    /// Owner user and group (`name` or `name@`); empty: this daos_server's user and group.
    pub owner: String,
    pub owner_group: String,
    /// ACL entries (DAOS's short form); empty: DAOS's default pool ACL.
    pub acl: Vec<String>,
}

/// (SCM, NVMe) bytes an engine of this host offers in all.
pub fn local_capacity(e: &daos_config::Engine) -> (u64, u64) {
    let scm = e.scm().map_or(0, |t| match (t.class, t.scm_size) {
        (TierClass::Ram, Some(gib)) => gib << 30,
        _ => t
            .scm_mount
            .as_ref()
            .and_then(|m| nix::sys::statvfs::statvfs(m).ok())
            .map_or(0, |st| st.blocks() * st.fragment_size()),
    });
    let nvme = e
        .bdevs()
        .map(|t| match t.class {
            TierClass::File => t.bdev_size.unwrap_or(0) * 1_000_000_000 * t.bdev_list.len() as u64,
            TierClass::Malloc => {
                t.bdev_size.unwrap_or(0) * 1_000_000_000 * u64::from(t.bdev_number.unwrap_or(0))
            }
            TierClass::Kdev => t
                .bdev_list
                .iter()
                .filter_map(|d| std::fs::File::open(d).ok()?.seek(SeekFrom::End(0)).ok())
                .sum(),
            _ => 0,
        })
        .sum();
    (scm, nvme)
}

/// SCM really free on an engine's mount (the mount also holds the superblock, the management
/// service's files and each pool's metadata), less a reserve for those to grow.
pub fn scm_avail(e: &daos_config::Engine) -> u64 {
    e.scm()
        .and_then(|t| t.scm_mount.clone())
        .filter(|m| m.join(crate::storage::SUPERBLOCK_NAME).exists())
        .and_then(|m| nix::sys::statvfs::statvfs(&m).ok())
        .map_or(u64::MAX, |st| {
            (st.blocks_available() * st.fragment_size()).saturating_sub(SCM_RESERVE)
        })
}

/// (SCM, NVMe) bytes of a rank not yet given to pools.
pub fn rank_free(h: &Harness, rank: u32) -> Result<(u64, u64), String> {
    let info = h.rank_info(rank)?;
    let pools = h.ms().pools();
    let used = pools.iter().filter(|p| p.ranks.contains(&rank));
    let (su, nu) = used.fold((0, 0), |(s, n), p| {
        (s + p.scm_per_rank, n + p.nvme_per_rank)
    });
    Ok((
        info.scm_capacity.saturating_sub(su).min(info.scm_avail),
        info.nvme_capacity.saturating_sub(nu),
    ))
}

/// SCM kept free on each mount for the superblock, the management service's files and
/// pool metadata.
const SCM_RESERVE: u64 = 16 << 20;

/// Why a pool operation on one rank failed.
#[derive(Debug, thiserror::Error)]
pub enum RankOpError {
    #[error(transparent)]
    Call(#[from] crate::harness::EngineCallError),
    #[error("rank {rank}: bad answer: {source}")]
    BadAnswer {
        rank: u32,
        source: prost::DecodeError,
    },
    /// The engine refused, with a DAOS code.
    #[error("rank {rank}: {}({code}): {info}", daos_wire::der::name(*code))]
    Refused { rank: u32, code: i32, info: String },
}

impl RankOpError {
    /// The DAOS code of an engine's refusal.
    pub fn der(&self) -> Option<i32> {
        match self {
            RankOpError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Calls a pool operation on `rank` and reads its status.
fn rank_op<M: daos_drpc::Method>(
    h: &Harness,
    rank: u32,
    method: M,
    body: &[u8],
) -> Result<(), RankOpError> {
    let b = h.engine_call(rank, method, body)?;
    let r = PoolOpResp::decode(b.as_slice())
        .map_err(|source| RankOpError::BadAnswer { rank, source })?;
    match r.status {
        0 => Ok(()),
        code => Err(RankOpError::Refused {
            rank,
            code,
            info: r.info,
        }),
    }
}

fn targets_of(h: &Harness, rank: u32) -> u64 {
    h.rank_info(rank).map_or(1, |i| i.targets.max(1))
}

/// Creates a pool.
pub fn create(h: &Harness, req: &CreateRequest) -> Result<PoolRecord, PoolSvcError> {
    check_label(&req.label).map_err(|e| PoolSvcError::new(BadRequest, e))?;
    let mut props = BTreeMap::new();
    for (k, v) in &req.props {
        if k == "label" {
            return Err(PoolSvcError::new(
                BadRequest,
                "give the label as the pool name, not as a property",
            ));
        }
        props.insert(
            k.clone(),
            check_prop(k, v).map_err(|e| PoolSvcError::new(BadRequest, e))?,
        );
    }
    if h.ms().pool_find(&req.label).is_some() {
        return Err(PoolSvcError::new(
            Exists,
            format!("a pool labelled {:?} already exists", req.label),
        ));
    }
    let joined: Vec<u32> = h
        .ms()
        .members()
        .iter()
        .filter(|m| m.state == MemberState::Joined)
        .map(|m| m.rank)
        .collect();
    let ranks: Vec<u32> = if !req.ranks.is_empty() {
        req.ranks.clone()
    } else if req.num_ranks > 0 {
        if req.num_ranks as usize > joined.len() {
            return Err(PoolSvcError::new(
                BadRequest,
                format!(
                    "pool request contains invalid number of ranks (requested: {}, available: {}); retry the request with a valid number of ranks",
                    req.num_ranks,
                    joined.len()
                ),
            ));
        }
        spread_ranks(h, &joined, req.num_ranks as usize)
    } else {
        joined.clone()
    };
    if ranks.is_empty() {
        return Err(PoolSvcError::new(
            Failed,
            "no joined ranks to create the pool on; format and start the system first (dmg storage format, dmg system query)",
        ));
    }
    if let Some(r) = ranks.iter().find(|r| !joined.contains(r)) {
        return Err(PoolSvcError::new(
            BadRequest,
            format!("rank {r} is not a joined member of the system"),
        ));
    }
    let frees: Vec<(u32, u64, u64)> = ranks
        .iter()
        .map(|&r| {
            rank_free(h, r)
                .map(|(s, n)| (r, s, n))
                .map_err(|e| PoolSvcError::new(Failed, format!("rank {r}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let has_nvme = frees.iter().all(|(_, _, n)| *n > 0);
    let nranks = ranks.len() as u64;
    let (scm_per_rank, nvme_per_rank) = match (req.total, req.scm, req.nvme) {
        (Some(Size::Percent(p)), None, None) => {
            // Rounded down to what every target of every rank can hold as the engines
            // allocate it (SCM in pages, NVMe in regions), so 100% fits.
            let share = |bytes: u64, rank: u32, align: u64| {
                let t = targets_of(h, rank);
                bytes * p / 100 / t / align * align * t
            };
            let scm = frees.iter().map(|f| share(f.1, f.0, 4096)).min();
            let nvme = frees
                .iter()
                .map(|f| share(f.2, f.0, daos_engine::pool::REGION_ALIGN))
                .min();
            let (scm, nvme) = (
                scm.unwrap_or(0),
                if has_nvme { nvme.unwrap_or(0) } else { 0 },
            );
            (scm, nvme)
        }
        (Some(Size::Bytes(total)), None, None) => {
            // DAOS: without NVMe, all of it on SCM.
            let (s, n) = match req.tier_ratio {
                _ if !has_nvme => (1.0, 0.0),
                Some(r) => r,
                None => (
                    DEFAULT_SCM_PERCENT as f64 / 100.0,
                    (100 - DEFAULT_SCM_PERCENT) as f64 / 100.0,
                ),
            };
            let tier = |f: f64| (total as f64 * f) as u64 / nranks;
            (tier(s), tier(n))
        }
        (None, Some(scm), nvme) => {
            let nvme = nvme.unwrap_or(0);
            if nvme > 0 && !has_nvme {
                return Err(PoolSvcError::new(
                    BadRequest,
                    format!(
                        "{} NVMe requested for pool but config has zero bdevs; leave --nvme-size out",
                        crate::table::bytes_si(nvme)
                    ),
                ));
            }
            (scm, nvme)
        }
        (None, None, _) => {
            return Err(PoolSvcError::new(
                BadRequest,
                "give --size, or --scm-size (with optional --nvme-size)",
            ));
        }
        _ => {
            return Err(PoolSvcError::new(
                BadRequest,
                "--size cannot be combined with --scm-size or --nvme-size",
            ));
        }
    };
    for (r, s, n) in &frees {
        let min_scm = MIN_SCM_PER_TARGET * targets_of(h, *r);
        if scm_per_rank < min_scm {
            return Err(PoolSvcError::new(
                NoSpace,
                format!(
                    "SCM size per rank {} is below the minimum of {} ({} per target) on rank {r}",
                    crate::table::bytes_si(scm_per_rank),
                    crate::table::bytes_si(min_scm),
                    crate::table::bytes_si(MIN_SCM_PER_TARGET)
                ),
            ));
        }
        if scm_per_rank > *s {
            return Err(PoolSvcError::new(
                NoSpace,
                format!(
                    "DER_NOSPACE(-1007): not enough SCM on rank {r}: {} wanted, {} free",
                    crate::table::bytes_si(scm_per_rank),
                    crate::table::bytes_si(*s)
                ),
            ));
        }
        if nvme_per_rank > *n {
            return Err(PoolSvcError::new(
                NoSpace,
                format!(
                    "DER_NOSPACE(-1007): not enough NVMe on rank {r}: {} wanted, {} free",
                    crate::table::bytes_si(nvme_per_rank),
                    crate::table::bytes_si(*n)
                ),
            ));
        }
    }
    let uuid = match &req.uuid {
        Some(u) => {
            let parsed = daos_wire::parse_uuid(u).ok_or_else(|| {
                PoolSvcError::new(BadRequest, format!("pool UUID {u:?} is not a UUID"))
            })?;
            let u = daos_wire::uuid_text(&parsed);
            if h.ms().pool_find(&u).is_some() {
                return Err(PoolSvcError::new(
                    Exists,
                    format!("a pool with UUID {u} already exists"),
                ));
            }
            u
        }
        None => crate::storage::new_uuid()
            .map_err(|e| PoolSvcError::new(Failed, format!("cannot make a UUID: {e}")))?,
    };
    if req.nsvc as usize > ranks.len() {
        return Err(PoolSvcError::new(
            BadRequest,
            format!(
                "--nsvc {}: more service replicas than the pool's {} rank(s)",
                req.nsvc,
                ranks.len()
            ),
        ));
    }
    // DAOS: `--nsvc`, else 2 x svc_rf + 1 (svc_rf default 2), capped by the ranks; here one
    // replica per host (a pool service replica runs in the host's daos_server), so the
    // service ranks are ranks of distinct hosts.
    let nsvc = match req.nsvc {
        0 => {
            let rf: usize = props
                .get("svc_rf")
                .and_then(|v| v.parse().ok())
                .unwrap_or(2);
            2 * rf + 1
        }
        n => n as usize,
    };
    let (owner, owner_group, acl) = ownership(req)?;
    let (mut svc_ranks, mut svc_hosts) = service_ranks(h, &ranks, nsvc);
    // Fewer hosts than asked: an odd count, as DAOS's (an even one tolerates no more losses
    // than the odd one below it, and two of four lost leave no majority).
    if req.nsvc == 0 && svc_ranks.len() > 1 && svc_ranks.len().is_multiple_of(2) {
        svc_ranks.pop();
        svc_hosts.pop();
    }
    let rec = PoolRecord {
        owner,
        owner_group,
        acl,
        uuid: uuid.clone(),
        label: req.label.clone(),
        svc_ranks,
        svc_hosts,
        ranks: ranks.clone(),
        scm_per_rank,
        nvme_per_rank,
        props,
        state: PoolState::Creating,
        map: Default::default(),
        system_handle: daos_auth::random_cookie(),
    };
    // A leader that takes over meanwhile from another's tick must not take this create for
    // one its predecessor left half-made.
    let _busy = h.pool_busy(&uuid);
    h.ms()
        .pool_add(rec.clone())
        .map_err(|e| PoolSvcError::new(Exists, e.to_string()))?;
    let body = PoolCreateReq {
        uuid: uuid.clone(),
        scm_bytes: scm_per_rank,
        nvme_bytes: nvme_per_rank,
    }
    .encode_to_vec();
    let mut done = Vec::new();
    for &r in &ranks {
        match rank_op(h, r, MgmtMethod::PoolCreate, &body) {
            Ok(()) => {
                done.push(r);
                fault_midway_create(&uuid);
            }
            Err(e) => {
                warn!(
                    "pool {} ({uuid}): create failed on rank {r}: {e}; undoing",
                    req.label
                );
                // The failed rank too: it may have created its shard after the call was
                // given up (a timeout), or do so later.
                for d in done.into_iter().chain([r]) {
                    h.undo_create(d, &uuid);
                }
                let _ = h.ms().pool_remove(&uuid);
                let kind = if e.der() == Some(daos_wire::der::NOSPACE) {
                    NoSpace
                } else {
                    Failed
                };
                return Err(PoolSvcError::new(kind, format!("pool create failed: {e}")));
            }
        }
    }
    // The pool service: a replica on each service host, a majority at least.
    let mut started = 0;
    let mut failures = Vec::new();
    for (i, addr) in rec.svc_hosts.iter().enumerate() {
        let m = daos_mgmt::raft::pool::Members {
            replicas: rec.svc_hosts.clone(),
            me: i,
        };
        match h.ms().pool_svc_start(addr, h.is_local(addr), &uuid, &m) {
            Ok(()) => started += 1,
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    if started * 2 <= rec.svc_hosts.len() {
        warn!(
            "pool {} ({uuid}): its service did not start ({}); undoing",
            req.label,
            failures.join("; ")
        );
        for addr in &rec.svc_hosts {
            let _ = h.ms().pool_svc_stop(addr, h.is_local(addr), &uuid);
        }
        for &r in &ranks {
            h.undo_create(r, &uuid);
        }
        let _ = h.ms().pool_remove(&uuid);
        return Err(PoolSvcError::new(
            Failed,
            format!(
                "pool create failed: its service started on {started} of {} hosts: {}",
                rec.svc_hosts.len(),
                failures.join("; ")
            ),
        ));
    }
    for f in &failures {
        warn!(
            "pool {} ({uuid}): a service replica did not start ({f}); the others serve",
            req.label
        );
    }
    // From now on the pool's targets take requests only under a pool handle (pool connect).
    arm_handles(h, &uuid, rec.system_handle, &rec.ranks);
    // Only the state: an ACL or property change made meanwhile is kept.
    let rec = set_state(h, &rec, PoolState::Ready, Some(PoolState::Creating))?;
    info!(
        "pool {} ({uuid}) created on ranks {}; its service on ranks {} ({})",
        rec.label,
        crate::hostlist::format_ranks(&rec.ranks),
        crate::hostlist::format_ranks(&rec.svc_ranks),
        rec.svc_hosts.join(", ")
    );
    Ok(rec)
}

/// Turns handle checks on for pool `uuid` on the engines of `ranks`, with its system handle
/// (a rank that misses it gets both from the management service leader's next handle push).
pub fn arm_handles(h: &Harness, uuid: &str, system: u64, ranks: &[u32]) {
    let body = crate::cont::resync_req(uuid, Vec::new(), system).encode_to_vec();
    for &r in ranks {
        if let Err(e) = h.engine_call(r, MgmtMethod::PoolHandles, &body) {
            warn!("pool {uuid}: handle checks not turned on for rank {r} yet: {e}");
        }
    }
}

/// `n` of the joined ranks `joined` for a pool (DAOS's `--nranks`): one per host in turn, so
/// the pool spans as many hosts as it can.
fn spread_ranks(h: &Harness, joined: &[u32], n: usize) -> Vec<u32> {
    let members = h.ms().members();
    let host = |r: u32| {
        members
            .iter()
            .find(|m| m.rank == r)
            .map(|m| m.addr.clone())
            .unwrap_or_default()
    };
    let mut by_host: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for &r in joined {
        by_host.entry(host(r)).or_default().push(r);
    }
    let mut out = Vec::with_capacity(n);
    let mut round = 0;
    while out.len() < n {
        let before = out.len();
        for rs in by_host.values() {
            if let Some(&r) = rs.get(round)
                && out.len() < n
            {
                out.push(r);
            }
        }
        if out.len() == before {
            break;
        }
        round += 1;
    }
    out.sort_unstable();
    out
}

/// Up to `n` of `ranks` on distinct hosts (in rank order), and those hosts' control
/// addresses: the pool service's replicas.
/// Fault injection for tests (DAOS injects faults with `D_FI_CONFIG`): with
/// `DAOS_RS_FAULT_POOL_CREATE` naming a file, the first daos_server that removes that file
/// dies here, in the middle of a pool create (a shard made, its record `Creating`), as a
/// management service leader that loses its host would.
fn fault_midway_create(uuid: &str) {
    if let Ok(flag) = std::env::var("DAOS_RS_FAULT_POOL_CREATE")
        && std::fs::remove_file(&flag).is_ok()
    {
        error!("fault injection ({flag}): stopping in the middle of the create of pool {uuid}");
        // At once, as a lost host: no shutdown, no unwinding.
        std::process::exit(134);
    }
}

fn service_ranks(h: &Harness, ranks: &[u32], n: usize) -> (Vec<u32>, Vec<String>) {
    let members = h.ms().members();
    let mut out = (Vec::new(), Vec::new());
    for &r in ranks {
        if out.0.len() >= n.max(1) {
            break;
        }
        let Some(m) = members.iter().find(|m| m.rank == r) else {
            continue;
        };
        if !out.1.contains(&m.addr) {
            out.0.push(r);
            out.1.push(m.addr.clone());
        }
    }
    out
}

/// A principal from a name given with or without DAOS's `@`.
fn principal_name(name: &str, what: &str) -> Result<String, PoolSvcError> {
    let bare = name.strip_suffix('@').unwrap_or(name);
    if bare.is_empty() || bare.contains(['@', ':', ' ', '\t', '\n']) || bare.len() > 255 {
        return Err(PoolSvcError::new(
            BadRequest,
            format!("DER_INVAL(-1003): {what} {name:?} is not a user or group name"),
        ));
    }
    Ok(format!("{bare}@"))
}

/// The owner, owner group and ACL a new pool gets: as asked (checked), else this daos_server's
/// user and group and DAOS's default ACL.
fn ownership(req: &CreateRequest) -> Result<(String, String, Vec<String>), PoolSvcError> {
    let me = daos_auth::cred::identity(
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
    .unwrap_or_else(|_| daos_auth::Names {
        user: "root".into(),
        group: "root".into(),
        groups: Vec::new(),
    });
    let owner = if req.owner.is_empty() {
        format!("{}@", me.user)
    } else {
        principal_name(&req.owner, "owner user (-u)")?
    };
    let group = if req.owner_group.is_empty() {
        format!("{}@", me.group)
    } else {
        principal_name(&req.owner_group, "owner group (-g)")?
    };
    let acl = if req.acl.is_empty() {
        daos_auth::Acl::default_pool()
    } else {
        parse_acl(&req.acl)?
    };
    Ok((owner, group, acl.strings()))
}

fn parse_acl(entries: &[String]) -> Result<daos_auth::Acl, PoolSvcError> {
    daos_auth::Acl::parse(entries.iter().map(String::as_str), daos_auth::Object::Pool)
        .map_err(|e| PoolSvcError::new(BadRequest, format!("DER_INVAL(-1003): {e}")))
}

/// How an ACL changes.
pub enum AclChange {
    /// The entries replace the ACL.
    Overwrite(Vec<String>),
    /// The entries are added, or replace those of their principals.
    Update(Vec<String>),
    /// The principal's entry goes.
    Delete(String),
}

/// A pool's owner, owner group and ACL entries.
pub fn acl_get(h: &Harness, id: &str) -> Result<(String, String, Vec<String>), PoolSvcError> {
    let p = find(h, id)?;
    Ok((p.owner, p.owner_group, stored_acl(&p.acl)))
}

/// A pool's entries; a pool created before ACLs existed has DAOS's default.
fn stored_acl(acl: &[String]) -> Vec<String> {
    daos_auth::Acl::stored(acl, daos_auth::Object::Pool)
        .map(|a| a.strings())
        .unwrap_or_else(|_| acl.to_vec())
}

/// Changes a pool's ACL (a management-service write); the new owners and entries. A bad entry
/// or principal changes nothing. The change is applied by the management service's state
/// machine to the ACL it holds ([`daos_mgmt::state::AclDelta`]): concurrent changes (of the
/// ACL, the properties, the state) compose, none lost.
pub fn acl_change(
    h: &Harness,
    id: &str,
    change: AclChange,
) -> Result<(String, String, Vec<String>), PoolSvcError> {
    use daos_mgmt::state::AclDelta;
    let p = find(h, id)?;
    // Checked here too for the caller's error; the state machine checks again.
    let delta = match change {
        AclChange::Overwrite(e) => {
            parse_acl(&e)?;
            AclDelta::Overwrite(e)
        }
        AclChange::Update(e) => {
            if e.is_empty() {
                return Err(PoolSvcError::new(
                    BadRequest,
                    "DER_INVAL(-1003): no ACL entries to add (give --acl-file or --entry)",
                ));
            }
            parse_acl(&e)?;
            AclDelta::Update(e)
        }
        AclChange::Delete(who) => {
            daos_auth::Principal::parse(&who)
                .map_err(|e| PoolSvcError::new(BadRequest, format!("DER_INVAL(-1003): {e}")))?;
            AclDelta::Delete(who)
        }
    };
    let p = pool_write(
        h,
        &p,
        Command::PoolAcl {
            uuid: p.uuid.clone(),
            change: delta,
        },
    )?;
    Ok((p.owner, p.owner_group, p.acl))
}

/// Commits `cmd`, a change of pool `p`, at the management service: the pool's record after
/// it.
fn pool_write(h: &Harness, p: &PoolRecord, cmd: Command) -> Result<PoolRecord, PoolSvcError> {
    use daos_mgmt::{MsError, Refusal};
    match h.ms().apply(cmd) {
        Ok(Reply::Pool(rec)) => Ok(*rec),
        Ok(other) => Err(PoolSvcError::new(
            Failed,
            format!(
                "pool {}: the management service answered {other:?}",
                p.label
            ),
        )),
        Err(MsError::Refused(r)) => {
            let kind = match r {
                Refusal::BadAcl(_) => BadRequest,
                Refusal::NoAclEntry { .. } | Refusal::UnknownPool(_) => NotFound,
                Refusal::LabelTaken(_) => Exists,
                _ => Failed,
            };
            Err(PoolSvcError::new(kind, r.to_string()))
        }
        Err(e) => Err(PoolSvcError::new(Failed, format!("pool {}: {e}", p.label))),
    }
}

/// Pool `p`'s state becomes `state` (only from `from` when given).
fn set_state(
    h: &Harness,
    p: &PoolRecord,
    state: PoolState,
    from: Option<PoolState>,
) -> Result<PoolRecord, PoolSvcError> {
    pool_write(
        h,
        p,
        Command::PoolSetState {
            uuid: p.uuid.clone(),
            state,
            from,
        },
    )
}

fn find(h: &Harness, id: &str) -> Result<PoolRecord, PoolSvcError> {
    h.ms().pool_find(id).ok_or_else(|| {
        PoolSvcError::new(
            NotFound,
            format!("DER_NONEXIST(-1005): no pool {id:?} in the system (see dmg pool list)"),
        )
    })
}

/// Destroys a pool (by label or UUID).
/// Before a pool is destroyed (DAOS's evict-on-destroy): while clients hold handles to pool
/// `id` it is refused with DER_BUSY unless `force`, which evicts them; returns how many were
/// evicted. A pool service that cannot be asked does not hold the destroy up.
pub fn evict_for_destroy(h: &Harness, id: &str, force: bool) -> Result<u32, PoolSvcError> {
    let rec = find(h, id)?;
    let open = match h.remote().list_handles(&rec.svc_hosts, &rec.uuid) {
        Ok(l) => l,
        Err(e) => {
            warn!("pool {}: its open handles are unknown ({e})", rec.uuid);
            return Ok(0);
        }
    };
    // Pool handles of clients (a daos_server's own, for a rebuild pass, do not count).
    let clients = open
        .iter()
        .filter(|x| x.parent == 0 && x.user != "daos_server@")
        .count();
    if clients > 0 && !force {
        return Err(PoolSvcError::new(
            Failed,
            format!(
                "DER_BUSY(-1012): pool {} has {clients} open handle(s); disconnect the clients (dmg pool evict) or destroy with --force",
                rec.label
            ),
        ));
    }
    if open.is_empty() {
        return Ok(0);
    }
    h.remote()
        .pool_evict(&rec.svc_hosts, &rec.uuid, Vec::new())
        .map_err(|e| PoolSvcError::new(Failed, format!("pool {}: eviction failed: {e}", rec.label)))
}

/// Pool `id`'s handles held by processes of host `machine` (DAOS's `dmg pool evict
/// --machine`).
pub fn handles_of_machine(h: &Harness, id: &str, machine: &str) -> Result<Vec<u64>, PoolSvcError> {
    let rec = find(h, id)?;
    let open = h
        .remote()
        .list_handles(&rec.svc_hosts, &rec.uuid)
        .map_err(|e| PoolSvcError::new(Failed, format!("pool {}: {e}", rec.label)))?;
    Ok(open
        .into_iter()
        .filter(|x| x.parent == 0 && x.machine == machine)
        .map(|x| x.cookie)
        .collect())
}

pub fn destroy(
    h: &Harness,
    id: &str,
    force: bool,
    _recursive: bool,
) -> Result<PoolRecord, PoolSvcError> {
    let rec = find(h, id)?;
    let _busy = h.pool_busy(&rec.uuid);
    let rec = set_state(h, &rec, PoolState::Destroying, None)?;
    let body = PoolDestroyReq {
        uuid: rec.uuid.clone(),
        force: true,
    }
    .encode_to_vec();
    let mut failures = Vec::new();
    let members = h.ms().members();
    for &r in &rec.ranks {
        // With --force, a rank that is not in the system or not joined is skipped: its
        // shards go with it (a reformat or a rank that left).
        let joined = members
            .iter()
            .any(|m| m.rank == r && m.state == MemberState::Joined);
        if force && !joined {
            warn!(
                "pool {}: rank {r} is not joined; --force skips it",
                rec.uuid
            );
            continue;
        }
        match rank_op(h, r, MgmtMethod::PoolDestroy, &body) {
            Ok(()) => {}
            // Already gone on that rank: destroy is done there.
            Err(e) if e.der() == Some(daos_wire::der::NONEXIST) => {}
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        return Err(PoolSvcError::new(
            Failed,
            format!(
                "pool destroy incomplete ({}); retry dmg pool destroy",
                failures.join("; ")
            ),
        ));
    }
    // Its service's replicas go too (one whose host is down keeps its log until removed by
    // hand; it serves nothing: the pool is gone from the system).
    for addr in &rec.svc_hosts {
        if let Err(e) = h.ms().pool_svc_stop(addr, h.is_local(addr), &rec.uuid) {
            warn!(
                "pool {}: its service replica on {addr} was not removed: {e}",
                rec.uuid
            );
        }
    }
    h.ms()
        .pool_remove(&rec.uuid)
        .map_err(|e| PoolSvcError::new(Failed, e.to_string()))?;
    info!("pool {} ({}) destroyed", rec.label, rec.uuid);
    Ok(rec)
}

/// A pool and the space of every target.
/// A pool's record, the space of each target of the ranks that answered, and the ranks that
/// did not (their engine or host is down): a pool stays queryable, and usable through its
/// replicas, with ranks down.
pub type Queried = (PoolRecord, Vec<(u32, TargetSpace)>, Vec<u32>);

/// How long each rank has to answer a pool query (its space): a few seconds, not the 30 s a
/// create or destroy may take, so that a stopped or hung engine does not hold the query.
pub const QUERY_RANK_TIMEOUT: Duration = Duration::from_secs(5);

pub fn query(h: &Harness, id: &str) -> Result<Queried, PoolSvcError> {
    let rec = find(h, id)?;
    if rec.state != PoolState::Ready {
        return Err(PoolSvcError::new(
            Failed,
            format!(
                "DER_BUSY(-1012): pool {} is {}; it can be queried and used once it is Ready (see dmg pool list)",
                rec.label,
                rec.state.name()
            ),
        ));
    }
    let body = PoolQueryReq {
        uuid: rec.uuid.clone(),
    }
    .encode_to_vec();
    let mut targets = Vec::new();
    let mut down = Vec::new();
    let mut last = String::new();
    // Ranks the system knows are not serving (excluded, unresponsive, stopped) are down
    // without a call that would wait for a host that cannot answer.
    let members = h.ms().members();
    let state_of = |r: u32| members.iter().find(|m| m.rank == r).map(|m| m.state);
    let mut ask = Vec::new();
    for &r in &rec.ranks {
        match state_of(r) {
            Some(MemberState::Joined) | None => ask.push(r),
            Some(state) => {
                last = format!("rank {r} is {}", state.name());
                down.push(r);
            }
        }
    }
    // The others are asked at once, each given QUERY_RANK_TIMEOUT: an engine that is stopped
    // or hung (its health check has not caught it yet) is reported down, not waited for.
    let answers: Vec<(u32, Result<Vec<u8>, _>)> = std::thread::scope(|s| {
        let calls: Vec<_> = ask
            .iter()
            .map(|&r| {
                let body = &body;
                let call = s.spawn(move || {
                    h.engine_call_within(r, MgmtMethod::PoolQuery, body, QUERY_RANK_TIMEOUT)
                });
                (r, call)
            })
            .collect();
        calls
            .into_iter()
            .map(|(r, call)| {
                (
                    r,
                    call.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                )
            })
            .collect()
    });
    for (r, answer) in answers {
        let b = match answer {
            Ok(b) => b,
            Err(e) => {
                warn!("pool {}: rank {r} does not answer a query: {e}", rec.label);
                last = e.to_string();
                down.push(r);
                continue;
            }
        };
        let q = PoolQueryResp::decode(b.as_slice())
            .map_err(|e| PoolSvcError::new(Failed, format!("rank {r}: bad answer: {e}")))?;
        if q.status != 0 {
            return Err(PoolSvcError::new(
                Failed,
                format!("rank {r}: DER({}): {}", q.status, q.info),
            ));
        }
        targets.extend(q.targets.into_iter().map(|t| (r, t)));
    }
    down.sort_unstable();
    if targets.is_empty() && !rec.ranks.is_empty() {
        return Err(PoolSvcError::new(
            Failed,
            format!("no rank of pool {} answers: {last}", rec.label),
        ));
    }
    Ok((rec, targets, down))
}

/// Sets properties (validated; a new label must be free).
pub fn set_props(
    h: &Harness,
    id: &str,
    props: &[(String, String)],
) -> Result<PoolRecord, PoolSvcError> {
    let rec = find(h, id)?;
    let (mut label, mut set) = (None, std::collections::BTreeMap::new());
    for (k, v) in props {
        let v = check_prop(k, v).map_err(|e| PoolSvcError::new(BadRequest, e))?;
        if k == "label" {
            label = Some(v);
        } else {
            set.insert(k.clone(), v);
        }
    }
    // Only the properties given change, in the state machine: a concurrent change of
    // another property or of the ACL is kept.
    pool_write(
        h,
        &rec,
        Command::PoolSetProps {
            uuid: rec.uuid.clone(),
            label,
            props: set,
        },
    )
}

/// Properties with their values.
pub type PropValues = Vec<(&'static PropDef, String)>;

/// Every property with its value (set or default), or just `names`.
pub fn get_props(
    h: &Harness,
    id: &str,
    names: &[String],
) -> Result<(PoolRecord, PropValues), PoolSvcError> {
    let rec = find(h, id)?;
    for n in names {
        if !PROPS.iter().any(|d| d.name == n) {
            return Err(PoolSvcError::new(
                BadRequest,
                check_prop(n, "").err().unwrap_or_default(),
            ));
        }
    }
    let out = PROPS
        .iter()
        .filter(|d| names.is_empty() || names.iter().any(|n| n == d.name))
        .map(|d| {
            let v = if d.name == "label" {
                rec.label.clone()
            } else if d.name == "svc_list" {
                format!("[{}]", crate::hostlist::format_ranks(&rec.svc_ranks))
            } else {
                rec.props
                    .get(d.name)
                    .cloned()
                    .unwrap_or_else(|| d.default.to_string())
            };
            (d, v)
        })
        .collect();
    Ok((rec, out))
}

/// The targets an engine of `rank` has (its fabric contexts but one), at least 1.
pub fn rank_targets(h: &Harness, rank: u32) -> u32 {
    h.ms()
        .members()
        .iter()
        .find(|m| m.rank == rank)
        .map_or(1, |m| m.fabric_contexts.saturating_sub(1).max(1))
}

/// Applies a pool map command where the map lives: in the pool's service (at its leader,
/// through `cont.ContSvc/MapChange`), then copies the service's map into the management
/// service's record (what `pool query` and the rebuild driver read). A pool created without a
/// service keeps its map in the management service.
pub fn apply_map(h: &Harness, rec: &PoolRecord, cmd: daos_mgmt::Command) -> Result<(), String> {
    if rec.svc_hosts.is_empty() {
        return h.ms().apply(cmd).map(|_| ()).map_err(|e| e.to_string());
    }
    let after = h.remote().map_change(&rec.svc_hosts, &rec.uuid, &cmd)?;
    mirror_map(h, after)
}

/// Copies a pool service's map into the management service's record of the pool (an older
/// map than the record's changes nothing).
pub fn mirror_map(h: &Harness, from_service: PoolRecord) -> Result<(), String> {
    h.ms()
        .apply(daos_mgmt::Command::PoolMirror {
            uuid: from_service.uuid,
            ranks: from_service.ranks,
            map: from_service.map,
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `dmg pool exclude|drain|reintegrate`: changes the states of targets `idx` (all when empty)
/// of `rank` in pool `id`'s map; a rebuild for the new map version starts.
pub fn change_targets(
    h: &Harness,
    id: &str,
    op: daos_placement::MapOp,
    rank: u32,
    idx: &[u32],
) -> Result<PoolRecord, PoolSvcError> {
    let rec = find(h, id)?;
    if rec.state != PoolState::Ready {
        return Err(PoolSvcError::new(
            Failed,
            format!(
                "DER_BUSY(-1012): pool {} is {}; its targets change once it is Ready",
                rec.label,
                rec.state.name()
            ),
        ));
    }
    let cmd = daos_mgmt::Command::PoolTargets {
        uuid: rec.uuid.clone(),
        op,
        rank,
        idx: idx.to_vec(),
        targets: rank_targets(h, rank),
    };
    apply_map(h, &rec, cmd).map_err(|text| {
        let der = if text.contains("DER_BUSY") {
            "DER_BUSY(-1012): "
        } else if text.contains("not in the pool map") || text.contains("has no target") {
            "DER_NONEXIST(-1005): "
        } else {
            "DER_INVAL(-1003): "
        };
        PoolSvcError::new(BadRequest, format!("{der}{text}"))
    })?;
    let after = find(h, id)?;
    info!(
        "pool {}: {} of rank {rank} targets {idx:?}: pool map version {}",
        after.label,
        op.name(),
        after.map.version()
    );
    Ok(after)
}

/// `dmg pool extend POOL --ranks R`: each rank (a joined member not in the pool yet) gets
/// its shards, then joins the pool map (its targets UP) and a rebuild moves data onto them.
/// A rank that cannot create its shard undoes the others; nothing changes.
pub fn extend(h: &Harness, id: &str, ranks: &[u32]) -> Result<PoolRecord, PoolSvcError> {
    let rec = find(h, id)?;
    if rec.state != PoolState::Ready {
        return Err(PoolSvcError::new(
            Failed,
            format!(
                "DER_BUSY(-1012): pool {} is {}; it can be extended once it is Ready",
                rec.label,
                rec.state.name()
            ),
        ));
    }
    if ranks.is_empty() {
        return Err(PoolSvcError::new(
            BadRequest,
            "DER_INVAL(-1003): no ranks to extend the pool with (--ranks)",
        ));
    }
    let members = h.ms().members();
    for &r in ranks {
        if rec.ranks.contains(&r) {
            return Err(PoolSvcError::new(
                BadRequest,
                format!(
                    "DER_INVAL(-1003): rank {r} is already in pool {}",
                    rec.label
                ),
            ));
        }
        if !members
            .iter()
            .any(|m| m.rank == r && m.state == MemberState::Joined)
        {
            return Err(PoolSvcError::new(
                BadRequest,
                format!("DER_NONEXIST(-1005): rank {r} is not a joined member of the system"),
            ));
        }
    }
    let body = PoolCreateReq {
        uuid: rec.uuid.clone(),
        scm_bytes: rec.scm_per_rank,
        nvme_bytes: rec.nvme_per_rank,
    }
    .encode_to_vec();
    let mut done = Vec::new();
    for &r in ranks {
        if let Err(e) = rank_op(h, r, MgmtMethod::PoolCreate, &body) {
            for d in done.into_iter().chain([r]) {
                h.undo_create(d, &rec.uuid);
            }
            return Err(PoolSvcError::new(
                Failed,
                format!("pool extend failed: {e}"),
            ));
        }
        done.push(r);
    }
    // The new ranks check handles too, knowing those open now.
    let open = h
        .remote()
        .list_handles(&rec.svc_hosts, &rec.uuid)
        .unwrap_or_default();
    crate::cont::push_handles(
        h,
        ranks,
        &crate::cont::resync_req(&rec.uuid, open, rec.system_handle),
    );
    let targets = ranks.iter().map(|r| rank_targets(h, *r)).max().unwrap_or(1);
    apply_map(
        h,
        &rec,
        daos_mgmt::Command::PoolExtend {
            uuid: rec.uuid.clone(),
            ranks: ranks.to_vec(),
            targets,
        },
    )
    .map_err(|e| {
        for &d in ranks {
            h.undo_create(d, &rec.uuid);
        }
        PoolSvcError::new(BadRequest, format!("DER_INVAL(-1003): {e}"))
    })?;
    let after = find(h, id)?;
    info!(
        "pool {}: extended with ranks {ranks:?}: pool map version {}",
        after.label,
        after.map.version()
    );
    Ok(after)
}

/// `dmg pool query-targets`: the state of targets `idx` (all when empty) of `rank` and
/// their space (zero when the rank does not answer).
pub fn query_targets(
    h: &Harness,
    id: &str,
    rank: u32,
    idx: &[u32],
) -> Result<Vec<(daos_placement::TargetState, Option<TargetSpace>)>, PoolSvcError> {
    let rec = find(h, id)?;
    if !rec.ranks.contains(&rank) {
        return Err(PoolSvcError::new(
            NotFound,
            format!(
                "DER_NONEXIST(-1005): rank {rank} holds no target of pool {} (its ranks: {:?})",
                rec.label, rec.ranks
            ),
        ));
    }
    let count = rank_targets(h, rank);
    if let Some(bad) = idx.iter().find(|i| **i >= count) {
        return Err(PoolSvcError::new(
            BadRequest,
            format!(
                "DER_INVAL(-1003): rank {rank} has no target {bad} (it has {count}: 0-{})",
                count - 1
            ),
        ));
    }
    let body = PoolQueryReq {
        uuid: rec.uuid.clone(),
    }
    .encode_to_vec();
    let joined = h
        .ms()
        .members()
        .iter()
        .any(|m| m.rank == rank && m.state == MemberState::Joined);
    let spaces: Vec<TargetSpace> = joined
        .then(|| {
            h.engine_call_within(rank, MgmtMethod::PoolQuery, &body, QUERY_RANK_TIMEOUT)
                .ok()
        })
        .flatten()
        .and_then(|b| PoolQueryResp::decode(b.as_slice()).ok())
        .filter(|q| q.status == 0)
        .map(|q| q.targets)
        .unwrap_or_default();
    let chosen: Vec<u32> = if idx.is_empty() {
        (0..count).collect()
    } else {
        idx.to_vec()
    };
    Ok(chosen
        .into_iter()
        .map(|i| (rec.map.state(rank, i), spaces.get(i as usize).cloned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_dmg() {
        assert_eq!(parse_size("10G"), Ok(Size::Bytes(10_000_000_000)));
        assert_eq!(parse_size("10GB"), Ok(Size::Bytes(10_000_000_000)));
        assert_eq!(parse_size("512MiB"), Ok(Size::Bytes(512 << 20)));
        assert_eq!(parse_size("1.5T"), Ok(Size::Bytes(1_500_000_000_000)));
        assert_eq!(parse_size("50%"), Ok(Size::Percent(50)));
        assert!(parse_size("0%").is_err());
        assert!(parse_size("10X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn labels_and_properties() {
        assert!(check_label("tank").is_ok());
        assert!(check_label("a b").is_err());
        assert!(
            check_label("11111111-2222-4333-8444-555555555555")
                .unwrap_err()
                .contains("UUID")
        );
        assert_eq!(check_prop("space_rb", "50%"), Ok("50".into()));
        assert!(check_prop("space_rb", "150").is_err());
        assert!(
            check_prop("reclaim", "sometimes")
                .unwrap_err()
                .contains("disabled, lazy, time")
        );
        assert!(
            check_prop("colour", "red")
                .unwrap_err()
                .contains("unknown pool property")
        );
        assert!(check_prop("ec_cell_sz", "3000").is_err());
    }
}
