//! Rebuild under load against a running system: fill a container with replicated objects,
//! measure foreground updates and fetches, then lose a rank (a command that kills its host,
//! or `dmg pool exclude`) and measure, while the foreground goes on, how long until SWIM
//! declares the rank dead and the pool excludes it, how long the rebuild takes and at what
//! rate it copies, and what the foreground sees meanwhile. The reference is the device: the
//! engine's io_uring write path on a file of the same machine, in the same run.
//!
//! Rebuilt bytes are the records the rebuild reports times the value size: each benchmark
//! object (filled or foreground) holds one value of that size, so a record copied is a value
//! copied.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use daos_client::{PoolMap, Session, SessionOpts};
use daos_control::Target;
use daos_proto::mgmt::mgmt_svc_client::MgmtSvcClient;
use daos_proto::mgmt::{PoolExcludeReq, PoolQueryReq, SystemQueryReq, pool_rebuild_status};
use serde::Serialize;

use crate::storage::{Histogram, Numbers};

/// How the rank is lost.
#[derive(Clone, Debug)]
pub enum Loss {
    /// Run this shell command (it kills every process of the rank's host); SWIM finds out.
    Kill(String),
    /// Exclude the rank's targets from the pool (`dmg pool exclude`); nothing dies.
    Exclude,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RebuildParams {
    pub pool: String,
    pub cont: [u8; 16],
    pub class: daos_placement::ObjectClass,
    pub rank: u32,
    pub loss: Loss,
    pub objects: u64,
    pub size: usize,
    /// Foreground run before the loss (the baseline).
    pub baseline: Duration,
    /// Longest wait for exclusion and for the rebuild.
    pub timeout: Duration,
}

/// The report.
#[derive(Clone, Debug, Serialize)]
pub struct RebuildReport {
    pub rank: u32,
    pub loss: String,
    pub oclass: String,
    pub objects: u64,
    pub size: usize,
    /// Kill to the rank excluded from the system (SWIM's detection and report); with a kill.
    pub kill_to_rank_excluded_ms: Option<f64>,
    /// Kill (or exclude request) to the pool map without the rank's targets.
    pub loss_to_pool_exclusion_ms: f64,
    /// Pool exclusion to rebuild done.
    pub rebuild_ms: f64,
    pub rebuilt_objects: u64,
    pub rebuilt_records: u64,
    pub rebuilt_bytes: u64,
    pub rebuild_mb_per_sec: f64,
    /// The device's sequential write bandwidth (1 MiB blocks, io_uring O_DIRECT).
    pub device_mb_per_sec: Option<f64>,
    pub rebuild_to_device_ratio: Option<f64>,
    /// Foreground before the loss.
    pub foreground_before: Numbers,
    /// Foreground from the loss to the pool's exclusion (replicas on the lost rank time out).
    pub foreground_detecting: Numbers,
    /// Foreground from the exclusion to the end of the rebuild.
    pub foreground_rebuilding: Numbers,
    pub foreground_errors: u64,
    /// The first foreground error of each phase after the loss (why operations failed).
    pub first_errors: Vec<String>,
    pub p99_rebuilding_to_before: Option<f64>,
    /// Every filled object read back and verified after the rebuild.
    pub verified_after: u64,
}

const BASELINE: u8 = 0;
const DETECTING: u8 = 1;
const REBUILDING: u8 = 2;
const STOP: u8 = 3;

fn fill_oid(class: daos_placement::ObjectClass, i: u64) -> u128 {
    class.embed((0xb0u128 << 64) | u128::from(i))
}

fn fg_oid(class: daos_placement::ObjectClass, i: u64) -> u128 {
    class.embed((0xf0u128 << 64) | u128::from(i % 64))
}

/// Fills `buf` as the value of `oid`: its id, then a pattern of it.
fn stamp(buf: &mut [u8], oid: u128) {
    let id = oid.to_le_bytes();
    for (i, b) in buf.iter_mut().enumerate() {
        *b = id[i % 16] ^ (i / 16) as u8;
    }
}

fn rt() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// The pool's map version, rebuild state, objects and records, disabled targets.
struct PoolState {
    version: u32,
    busy: bool,
    done: bool,
    objects: u64,
    records: u64,
    disabled: u32,
}

async fn pool_state(
    c: &mut MgmtSvcClient<daos_control::Conn>,
    pool: &str,
) -> Result<PoolState, String> {
    let q = c
        .pool_query(PoolQueryReq {
            id: pool.into(),
            ..Default::default()
        })
        .await
        .map_err(daos_control::status_text)?
        .into_inner();
    let r = q.rebuild.unwrap_or_default();
    Ok(PoolState {
        version: q.version,
        busy: r.state == pool_rebuild_status::State::Busy as i32,
        done: r.state == pool_rebuild_status::State::Done as i32,
        objects: r.objects,
        records: r.records,
        disabled: q.disabled_targets,
    })
}

async fn rank_state(c: &mut MgmtSvcClient<daos_control::Conn>, rank: u32) -> Option<String> {
    let m = c
        .system_query(SystemQueryReq {
            ranks: rank.to_string(),
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner()
        .members;
    m.into_iter().find(|m| m.rank == rank).map(|m| m.state)
}

/// The foreground: updates and fetches of its own objects, latencies per phase. On a failed
/// operation it takes the current pool map (as a DAOS client refreshes its map) and goes on.
struct Foreground {
    hist: [Histogram; 3],
    ops: [u64; 3],
    bytes: [u64; 3],
    errors: [u64; 3],
    first_error: [Option<String>; 3],
}

fn foreground(
    target: &Target,
    p: &RebuildParams,
    map: Arc<PoolMap>,
    phase: &AtomicU8,
) -> Result<Foreground, String> {
    // A target that knows a newer map refuses with DER_STALE; the session refreshes itself.
    let mut s = Session::open(map, SessionOpts::default())
        .map_err(|e| e.to_string())?
        .with_refresher(daos_client::connect::refresher(target, &p.pool));
    let mut out = Foreground {
        hist: [
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        ],
        ops: [0; 3],
        bytes: [0; 3],
        errors: [0; 3],
        first_error: [None, None, None],
    };
    let mut value = vec![0u8; p.size];
    let mut i = 0u64;
    let mut seen = BASELINE;
    loop {
        let ph = phase.load(Ordering::Acquire);
        if ph == STOP {
            return Ok(out);
        }
        if ph == REBUILDING && seen != REBUILDING {
            // The pool map changed: take it (as a DAOS client told of a newer map version).
            let _ = s.refresh_map(0);
        }
        seen = ph;
        let k = usize::from(ph);
        let oid = fg_oid(p.class, i);
        stamp(&mut value, oid ^ u128::from(i));
        let t = Instant::now();
        let r = if i.is_multiple_of(2) {
            s.update(p.cont, oid, b"d", b"a", &value).map(|_| ())
        } else {
            match s.fetch(p.cont, oid, b"d", b"a") {
                Ok(Some(v)) if v.len() == p.size => Ok(()),
                Ok(_) => Err(daos_client::ClientError::NotFound(format!(
                    "foreground object {oid:#x}: value missing or of the wrong size"
                ))),
                Err(e) => Err(e),
            }
        };
        out.hist[k].record(t.elapsed().as_nanos() as u64);
        match r {
            Ok(()) => {
                out.ops[k] += 1;
                out.bytes[k] += p.size as u64;
                i += 1;
            }
            Err(e) => {
                out.errors[k] += 1;
                out.first_error[k].get_or_insert_with(|| e.to_string());
                // Retry the same operation on the current map (an update's other replicas
                // may have it: updates are idempotent), with a fresh session: one whose
                // operations timed out has its bulk slots and send buffers tied up.
                if let Ok(m) = daos_client::connect::connect_cont_blocking(
                    target,
                    &p.pool,
                    p.cont,
                    daos_client::container::FLAG_RW,
                ) && let Ok(n) = Session::open(Arc::new(m), SessionOpts::default())
                {
                    s = n.with_refresher(daos_client::connect::refresher(target, &p.pool));
                }
                if i.is_multiple_of(2) {
                    // The fetch that follows reads what this update wrote.
                } else {
                    i += 1;
                }
            }
        }
    }
}

fn numbers(h: &Histogram, ops: u64, bytes: u64, secs: f64) -> Numbers {
    let secs = secs.max(1e-9);
    Numbers {
        iops: ops as f64 / secs,
        mb_per_sec: bytes as f64 / secs / 1e6,
        p50_us: h.percentile_us(50.0),
        p99_us: h.percentile_us(99.0),
        p999_us: h.percentile_us(99.9),
    }
}

/// Runs the benchmark. `device_mb_per_sec` is the reference measured by the caller.
pub fn run(
    target: &Target,
    map: Arc<PoolMap>,
    p: &RebuildParams,
    device_mb_per_sec: Option<f64>,
) -> Result<RebuildReport, String> {
    if !map.targets.iter().any(|t| t.rank == p.rank) {
        return Err(format!(
            "--rank {}: the pool has no target on that rank (its ranks: {:?})",
            p.rank,
            {
                let mut r: Vec<u32> = map.targets.iter().map(|t| t.rank).collect();
                r.dedup();
                r
            }
        ));
    }
    // Fill.
    let mut s = Session::open(map.clone(), SessionOpts::default()).map_err(|e| e.to_string())?;
    let mut value = vec![0u8; p.size];
    for i in 0..p.objects {
        let oid = fill_oid(p.class, i);
        stamp(&mut value, oid);
        s.update(p.cont, oid, b"d", b"a", &value)
            .map_err(|e| format!("filling object {i}: {e}"))?;
    }
    for i in 0..64 {
        let oid = fg_oid(p.class, i);
        s.update(p.cont, oid, b"d", b"a", &vec![0u8; p.size])
            .map_err(|e| format!("foreground object {i}: {e}"))?;
    }
    drop(s);
    let rt = rt()?;
    let mut c = rt
        .block_on(daos_control::ms_client(target))
        .map_err(|e| format!("management service: {e}"))?;
    let before = rt.block_on(pool_state(&mut c, &p.pool))?;
    if before.disabled > 0 || before.busy {
        return Err(format!(
            "pool {} has {} disabled target(s){}: reintegrate them first (dmg pool reintegrate) so the rebuild measured is this one",
            p.pool,
            before.disabled,
            if before.busy {
                " and a rebuild running"
            } else {
                ""
            }
        ));
    }
    let phase = AtomicU8::new(BASELINE);
    std::thread::scope(|scope| -> Result<RebuildReport, String> {
        let fg = scope.spawn(|| foreground(target, p, map.clone(), &phase));
        let started = Instant::now();
        std::thread::sleep(p.baseline);
        let baseline_secs = started.elapsed().as_secs_f64();
        // The loss.
        let lost_at = Instant::now();
        phase.store(DETECTING, Ordering::Release);
        let stop = |phase: &AtomicU8| phase.store(STOP, Ordering::Release);
        let outcome = (|| -> Result<_, String> {
            match &p.loss {
                Loss::Kill(cmd) => {
                    let st = std::process::Command::new("sh")
                        .args(["-c", cmd])
                        .status()
                        .map_err(|e| format!("--kill {cmd:?}: {e}"))?;
                    if !st.success() {
                        return Err(format!("--kill {cmd:?} failed ({st})"));
                    }
                }
                Loss::Exclude => {
                    let st = rt
                        .block_on(c.pool_exclude(PoolExcludeReq {
                            id: p.pool.clone(),
                            rank: p.rank,
                            ..Default::default()
                        }))
                        .map_err(daos_control::status_text)?
                        .into_inner()
                        .status;
                    if st != 0 {
                        return Err(format!("pool exclude of rank {} answered {st}", p.rank));
                    }
                }
            }
            let deadline = lost_at + p.timeout;
            let mut rank_excluded = None;
            let mut excluded_at = None;
            let mut last = None;
            while Instant::now() < deadline {
                if matches!(p.loss, Loss::Kill(_))
                    && rank_excluded.is_none()
                    && rt.block_on(rank_state(&mut c, p.rank)).as_deref() == Some("excluded")
                {
                    rank_excluded = Some(lost_at.elapsed());
                }
                // A server that went away with the host: ask again (another replica).
                let q = match rt.block_on(pool_state(&mut c, &p.pool)) {
                    Ok(q) => q,
                    Err(_) => {
                        if let Ok(n) = rt.block_on(daos_control::ms_client(target)) {
                            c = n;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                if excluded_at.is_none() && q.version > before.version && q.disabled > 0 {
                    excluded_at = Some(Instant::now());
                    phase.store(REBUILDING, Ordering::Release);
                }
                if excluded_at.is_some() && q.done {
                    last = Some(q);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let (Some(excluded_at), Some(q)) = (excluded_at, last) else {
                return Err(format!(
                    "rank {} not excluded and rebuilt within {:?}",
                    p.rank, p.timeout
                ));
            };
            Ok((rank_excluded, excluded_at, q, Instant::now()))
        })();
        stop(&phase);
        let fg = fg
            .join()
            .map_err(|_| "the foreground thread panicked".to_string())??;
        let (rank_excluded, excluded_at, q, done_at) = outcome?;
        let detect_secs = excluded_at.duration_since(lost_at).as_secs_f64();
        let rebuild = done_at.duration_since(excluded_at);
        let bytes = q.records * p.size as u64;
        let mbps = bytes as f64 / rebuild.as_secs_f64().max(1e-9) / 1e6;
        let before_n = numbers(&fg.hist[0], fg.ops[0], fg.bytes[0], baseline_secs);
        let detect_n = numbers(&fg.hist[1], fg.ops[1], fg.bytes[1], detect_secs);
        let rebuild_n = numbers(&fg.hist[2], fg.ops[2], fg.bytes[2], rebuild.as_secs_f64());
        // Everything filled reads back, from the survivors.
        let now_map = daos_client::connect::connect_cont_blocking(
            target,
            &p.pool,
            p.cont,
            daos_client::container::FLAG_RW,
        )?;
        let mut s =
            Session::open(Arc::new(now_map), SessionOpts::default()).map_err(|e| e.to_string())?;
        let mut want = vec![0u8; p.size];
        for i in 0..p.objects {
            let oid = fill_oid(p.class, i);
            stamp(&mut want, oid);
            match s.fetch(p.cont, oid, b"d", b"a") {
                Ok(Some(v)) if v == want => {}
                Ok(_) => return Err(format!("object {i} reads back wrong after the rebuild")),
                Err(e) => return Err(format!("object {i} after the rebuild: {e}")),
            }
        }
        Ok(RebuildReport {
            rank: p.rank,
            loss: match &p.loss {
                Loss::Kill(c) => format!("kill: {c}"),
                Loss::Exclude => "pool exclude".into(),
            },
            oclass: p.class.to_string(),
            objects: p.objects,
            size: p.size,
            kill_to_rank_excluded_ms: rank_excluded.map(|d| d.as_secs_f64() * 1e3),
            loss_to_pool_exclusion_ms: excluded_at.duration_since(lost_at).as_secs_f64() * 1e3,
            rebuild_ms: rebuild.as_secs_f64() * 1e3,
            rebuilt_objects: q.objects,
            rebuilt_records: q.records,
            rebuilt_bytes: bytes,
            rebuild_mb_per_sec: mbps,
            device_mb_per_sec,
            rebuild_to_device_ratio: device_mb_per_sec.and_then(|d| crate::ratio(mbps, d)),
            p99_rebuilding_to_before: crate::ratio(rebuild_n.p99_us, before_n.p99_us),
            foreground_before: before_n,
            foreground_detecting: detect_n,
            foreground_rebuilding: rebuild_n,
            foreground_errors: fg.errors[1] + fg.errors[2],
            first_errors: [
                ("until excluded", &fg.first_error[1]),
                ("during the rebuild", &fg.first_error[2]),
            ]
            .into_iter()
            .filter_map(|(phase, e)| e.as_ref().map(|e| format!("{phase}: {e}")))
            .collect(),
            verified_after: p.objects,
        })
    })
}

/// The report as a table.
pub fn table(r: &RebuildReport) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let ratio = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let mut out = String::new();
    out.push_str(&format!(
        "rank {} lost ({}); {} objects of {} bytes, {}\n",
        r.rank, r.loss, r.objects, r.size, r.oclass
    ));
    out.push_str(&format!(
        "kill to rank excluded (SWIM)  {:>10} ms\nloss to pool exclusion        {:>10} ms\nrebuild                       {:>10.0} ms  {} objs, {} recs, {} bytes\n",
        ms(r.kill_to_rank_excluded_ms),
        format!("{:.0}", r.loss_to_pool_exclusion_ms),
        r.rebuild_ms,
        r.rebuilt_objects,
        r.rebuilt_records,
        r.rebuilt_bytes
    ));
    out.push_str(&format!(
        "rebuild MB/s                  {:>10.1}     device MB/s {}  ratio {}\n",
        r.rebuild_mb_per_sec,
        r.device_mb_per_sec
            .map_or("-".to_string(), |d| format!("{d:.1}")),
        ratio(r.rebuild_to_device_ratio)
    ));
    out.push_str(&format!(
        "{:<22} {:>10} {:>10} {:>10} {:>10}\n",
        "foreground", "IOPS", "p50 us", "p99 us", "p99.9 us"
    ));
    for (name, n) in [
        ("before the loss", &r.foreground_before),
        ("until excluded", &r.foreground_detecting),
        ("during the rebuild", &r.foreground_rebuilding),
    ] {
        out.push_str(&format!(
            "{:<22} {:>10.0} {:>10.0} {:>10.0} {:>10.0}\n",
            name, n.iops, n.p50_us, n.p99_us, n.p999_us
        ));
    }
    out.push_str(&format!(
        "p99 during the rebuild / before: {}; foreground errors: {}; {} objects verified after\n",
        ratio(r.p99_rebuilding_to_before),
        r.foreground_errors,
        r.verified_after
    ));
    for e in &r.first_errors {
        out.push_str(&format!("first foreground error {e}\n"));
    }
    out
}
