//! The rebuild driver: on the management service leader, a pool whose map changed (targets
//! excluded, drained or reintegrated) is rebuilt for its new map version, off every request
//! path, then its targets finish (UP -> UPIN, DOWN/DRAIN -> DOWNOUT). Progress is committed to
//! the replicated pool record (`dmg pool query`: `Rebuild busy, N objs, N recs`); a map that
//! changes meanwhile makes the next pass start over for the newer version; a new leader picks
//! up a rebuild the old one left busy. The copying is the client library's
//! ([`daos_client::Session::rebuild`]): this daemon is one more client of the targets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daos_client::{PoolMap, RankUri, Session, SessionOpts};
use daos_mgmt::{Command, MemberState, PoolRecord, PoolState, RebuildState};
use tracing::{info, warn};

use crate::harness::Harness;

/// How often the leader looks for pools to rebuild.
const PERIOD: Duration = Duration::from_secs(1);
/// How often progress is committed while a pass runs.
const REPORT: Duration = Duration::from_secs(1);

/// The pool map a rebuild works on: every rank of the pool with its target states, ranks
/// not joined reported down (never read from or written to).
pub fn client_map(h: &Harness, pool: &PoolRecord) -> Result<PoolMap, String> {
    let uuid = daos_wire::parse_uuid(&pool.uuid)
        .ok_or_else(|| format!("bad pool UUID {:?}", pool.uuid))?;
    let members = h.ms().members();
    let engines: Vec<RankUri> = members
        .iter()
        .map(|m| RankUri {
            rank: m.rank,
            uri: m.fabric_uri.clone(),
            num_ctxs: m.fabric_contexts,
        })
        .collect();
    let down: Vec<u32> = members
        .iter()
        .filter(|m| pool.ranks.contains(&m.rank) && m.state != MemberState::Joined)
        .map(|m| m.rank)
        .collect();
    let states: Vec<(u32, Vec<daos_placement::TargetState>)> = pool
        .map
        .states
        .iter()
        .map(|(r, s)| (*r, s.clone()))
        .collect();
    PoolMap::new(uuid, &pool.ranks, &engines)
        .map(|m| m.with_down(&down).with_states(&states, pool.map.version()))
        .map_err(|e| e.to_string())
}

/// Self-healing as DAOS's pool services do it: a rank excluded from the system (SWIM found
/// it dead) for [`Harness::event_delay`] has its targets excluded from every pool that uses
/// it, which starts their rebuild. `since` remembers when this leader first saw each rank
/// excluded (rank, incarnation).
fn self_heal(h: &Harness, since: &mut BTreeMap<(u32, u64), Instant>) {
    let members = h.ms().members();
    let excluded: Vec<(u32, u64)> = members
        .iter()
        .filter(|m| m.state == MemberState::Excluded)
        .map(|m| (m.rank, m.incarnation))
        .collect();
    since.retain(|k, _| excluded.contains(k));
    let delay = h.event_delay();
    for key in excluded {
        let first = *since.entry(key).or_insert_with(Instant::now);
        if first.elapsed() < delay {
            continue;
        }
        let rank = key.0;
        for pool in h.ms().pools() {
            use daos_placement::TargetState::{Down, DownOut};
            if pool.state != PoolState::Ready || !pool.ranks.contains(&rank) {
                continue;
            }
            let targets = crate::pools::rank_targets(h, rank);
            let out = (0..targets).all(|i| matches!(pool.map.state(rank, i), Down | DownOut));
            if out {
                continue;
            }
            match crate::pools::change_targets(
                h,
                &pool.uuid,
                daos_placement::MapOp::Exclude,
                rank,
                &[],
            ) {
                Ok(p) => warn!(
                    "pool {}: rank {rank} dead for {} s: its targets are excluded (pool map version {}); rebuild starts",
                    p.label,
                    delay.as_secs(),
                    p.map.version()
                ),
                Err(e) => warn!(
                    "pool {}: cannot exclude dead rank {rank}: {}",
                    pool.label, e.message
                ),
            }
        }
    }
}

/// Runs until the harness stops: on the leader, excludes dead ranks' targets from pools
/// and rebuilds each pool that waits for a rebuild.
pub fn driver(h: Arc<Harness>) {
    let mut since = BTreeMap::new();
    let mut synced = Instant::now();
    while !h.is_stopping() {
        std::thread::sleep(PERIOD);
        if !h.ms().is_leader() {
            since.clear();
            continue;
        }
        if synced.elapsed() >= SYNC {
            synced = Instant::now();
            sync_maps(&h);
            sync_handles(&h);
        }
        self_heal(&h, &mut since);
        for pool in h.ms().pools() {
            let r = pool.map.rebuild;
            if pool.state == PoolState::Ready
                && r.state == RebuildState::Busy
                && r.version == pool.map.version()
            {
                rebuild(&h, &pool);
            }
        }
    }
}

/// How often the leader copies each pool service's map into its records.
const SYNC: Duration = Duration::from_secs(5);

/// Copies each pool service's map into the management service's records where they differ
/// (a change whose copy was lost with a leader, or made while this one was not leading).
fn sync_maps(h: &Harness) {
    for pool in h.ms().pools() {
        if pool.svc_hosts.is_empty() || pool.state != PoolState::Ready {
            continue;
        }
        match h.remote().map_query(&pool.svc_hosts, &pool.uuid) {
            Ok(rec) if rec.map != pool.map && rec.map.version() >= pool.map.version() => {
                info!(
                    "pool {}: map version {} from its service (was {})",
                    pool.label,
                    rec.map.version(),
                    pool.map.version()
                );
                if let Err(e) = crate::pools::mirror_map(h, rec) {
                    warn!("pool {}: cannot record its service's map: {e}", pool.label);
                }
            }
            // Not held there yet (no change since the pool was created), or unreachable.
            _ => {}
        }
    }
}

/// Pushes each pool's open handles to its engines again (idempotent), with the checks on: an
/// engine that restarted checks handles from its first request (a marker kept with the
/// pool's shards), is pushed them as it joins, and here again.
fn sync_handles(h: &Harness) {
    for pool in h.ms().pools() {
        if pool.svc_hosts.is_empty() || pool.state != PoolState::Ready {
            continue;
        }
        // Without its pool service (no majority), the system handle at least.
        let list = h
            .remote()
            .list_handles(&pool.svc_hosts, &pool.uuid)
            .unwrap_or_default();
        // Checks on (a pool created before they were, a rank that missed it), and the open
        // handles again.
        let req = crate::cont::resync_req(&pool.uuid, list, pool.system_handle);
        // Ranks that run (the others get them when they are back).
        let members = h.ms().members();
        let live: Vec<u32> = pool
            .ranks
            .iter()
            .copied()
            .filter(|r| {
                members
                    .iter()
                    .any(|m| m.rank == *r && m.state == crate::membership::MemberState::Joined)
            })
            .collect();
        crate::cont::push_handles(h, &live, &req);
    }
}

/// One pass for `pool` at its current map version.
fn rebuild(h: &Harness, pool: &PoolRecord) {
    let version = pool.map.version();
    let tag = format!("rb={}/{version}/Rebuild", pool.label);
    info!("{tag}: rebuild of pool {} started", pool.uuid);
    let started = Instant::now();
    let commit = |p: daos_client::rebuild::Progress, done: bool| {
        crate::pools::apply_map(
            h,
            pool,
            Command::PoolRebuild {
                uuid: pool.uuid.clone(),
                version,
                objs: p.objs,
                recs: p.recs,
                done,
            },
        )
    };
    // Every live engine learns the new version first: a client still on the old map is
    // then refused (DER_STALE) instead of writing behind the scan.
    let missed = h.push_maps_now();
    if !missed.is_empty() {
        warn!(
            "{tag}: hosts {missed:?} did not take pool map version {version}; they are pushed again"
        );
    }
    // Targets take requests only under a pool handle: this pass's own.
    let handle = match h.remote().system_connect(&pool.svc_hosts, &pool.uuid) {
        Ok(c) => c,
        Err(e) => {
            warn!("{tag}: no pool handle for the rebuild ({e}); trying again");
            return;
        }
    };
    let result = client_map(h, pool).and_then(|map| {
        let mut s = Session::open(Arc::new(map.with_handle(handle)), SessionOpts::default())
            .map_err(|e| e.to_string())?;
        let conts = h
            .containers(pool)
            .map_err(|e| format!("listing containers: {e}"))?;
        let mut last = Instant::now();
        let mut stale = None;
        let mut throttle = daos_client::rebuild::Throttle::new(h.rebuild_rate());
        let p = s
            .rebuild(&conts, &mut throttle, |p| {
                if last.elapsed() >= REPORT && stale.is_none() {
                    last = Instant::now();
                    if let Err(e) = commit(p, false) {
                        stale = Some(e.to_string());
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        match stale {
            Some(e) => Err(e),
            None => Ok(p),
        }
    });
    if let Err(e) = h
        .remote()
        .system_disconnect(&pool.svc_hosts, &pool.uuid, handle)
    {
        warn!("{tag}: closing the rebuild's pool handle: {e}");
    }
    match result.map(|p| (p, commit(p, true))) {
        Ok((p, Ok(_))) => info!(
            "{tag}: rebuild of pool {} done in {} ms: {} objs, {} recs, {} bytes ({} scanned, {} copies reclaimed)",
            pool.uuid,
            started.elapsed().as_millis(),
            p.objs,
            p.recs,
            p.bytes,
            p.scanned,
            p.reclaimed
        ),
        Ok((_, Err(e))) => warn!("{tag}: rebuild finished but not recorded ({e}); trying again"),
        Err(e) => warn!("{tag}: rebuild pass failed ({e}); trying again"),
    }
}
