//! End-to-end I/O (like `daos_perf -R "U;p F;p"`): client threads, each with its own fabric
//! session and `qd` operations in flight, update objects of a container for the run time, then
//! fetch every object they wrote and verify it byte for byte.
//!
//! Each value is stamped with its object id and write generation in its first 16 bytes and
//! filled with a pattern of both, so a stale, misplaced or damaged value fails the fetch
//! phase. The measured loops do not allocate: values are built in one buffer per thread and
//! sent from the endpoint's own buffers; replies are checked in the receive buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use daos_client::{ClientError, PoolMap, Session, SessionOpts};
use daos_engine::wire::{Request, der};
use serde::Serialize;

use crate::storage::{Histogram, Numbers};

/// What to run.
#[derive(Clone, Debug)]
pub struct IoParams {
    pub cont: [u8; 16],
    /// Object class of every object (none: the plain hash placement, one target).
    pub class: Option<daos_placement::ObjectClass>,
    pub threads: usize,
    pub queue_depth: usize,
    pub size: usize,
    pub objects_per_thread: u64,
    pub runtime: Duration,
}

/// One phase's result.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseResult {
    /// `update` or `fetch`.
    pub op: String,
    pub size: usize,
    pub threads: usize,
    pub queue_depth: usize,
    pub ops: u64,
    /// Fetches whose data verified (fetch phase).
    pub verified: u64,
    pub allocations_per_op: Option<f64>,
    /// The update phase ended early because the pool was full.
    pub pool_full: bool,
    pub numbers: Numbers,
    /// Median, MAD, min and max over `--repeat` runs (the run reported is the median).
    pub repeats: Option<crate::stats::Repeats>,
    /// The same phase seen per rank (the ops its targets served over the phase's time).
    pub per_rank: Vec<RankNumbers>,
}

/// One rank's share of a phase.
#[derive(Clone, Debug, Serialize)]
pub struct RankNumbers {
    pub rank: u32,
    pub ops: u64,
    pub iops: f64,
    pub mb_per_sec: f64,
}

const DKEY: &[u8] = b"d";
const AKEY: &[u8] = b"a";

fn oid_of(thread: usize, i: u64, class: Option<daos_placement::ObjectClass>) -> u128 {
    let oid = (thread as u128 + 1) << 64 | u128::from(i);
    class.map_or(oid, |c| c.embed(oid))
}

/// Most shards an object of a benchmarked class may have.
pub const MAX_SHARDS: usize = 8;

/// An object's shards (target indices), computed before the measured loops.
#[derive(Clone, Copy)]
struct Shards {
    n: u8,
    t: [u32; MAX_SHARDS],
}

/// Fills `buf` as the value of `oid` at generation `gen`.
pub fn fill(buf: &mut [u8], oid: u128, generation: u32) {
    let seed = (oid as u64) ^ (u64::from(generation) << 40) ^ ((oid >> 64) as u64).rotate_left(20);
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let w = (seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    if buf.len() >= 20 {
        buf[..16].copy_from_slice(&oid.to_le_bytes());
        buf[16..20].copy_from_slice(&generation.to_le_bytes());
    }
}

/// Checks a fetched value against what `oid` at `gen` must hold.
pub fn verify(got: &[u8], oid: u128, generation: u32, scratch: &mut [u8]) -> Result<(), String> {
    if got.len() != scratch.len() {
        return Err(format!(
            "object {oid:#x}: fetched {} bytes, wrote {}",
            got.len(),
            scratch.len()
        ));
    }
    fill(scratch, oid, generation);
    if got != scratch {
        let stamp = got
            .get(..16)
            .and_then(|b| b.try_into().ok())
            .map(u128::from_le_bytes);
        return Err(format!(
            "object {oid:#x} generation {generation}: data did not verify (stamp {stamp:x?})"
        ));
    }
    Ok(())
}

struct Slot {
    /// One tag per replica written (a fetch reads one).
    tags: [u64; MAX_SHARDS],
    pending: u8,
    start: Instant,
    index: u64,
}

struct ThreadResult {
    ops: u64,
    verified: u64,
    hist: Histogram,
    elapsed: Duration,
    allocs: Option<u64>,
    pool_full: bool,
    /// Completed ops per target of the pool map.
    per_target: Vec<u64>,
}

/// Runs one thread's phase: `fetch` false updates for the run time, true fetches each object
/// once. `gens[i]` is object i's last generation (0: never written).
fn run_phase(
    s: &mut Session,
    thread: usize,
    p: &IoParams,
    fetch: bool,
    gens: &mut [u32],
    buf: &mut [u8],
    layouts: &[Shards],
) -> Result<ThreadResult, String> {
    let mut slots: Vec<Slot> = Vec::with_capacity(p.queue_depth);
    let mut hist = Histogram::default();
    let (mut ops, mut verified, mut next) = (0u64, 0u64, 0u64);
    let mut failure: Option<String> = None;
    let mut pool_full = false;
    let mut per_target = vec![0u64; s.map().targets.len()];
    let mut progress = if thread == 0 {
        crate::Progress::new(format!(
            "{} {}",
            if fetch { "fetch" } else { "update" },
            crate::human(p.size)
        ))
    } else {
        crate::Progress::silent()
    };
    let allocs_before = crate::alloc_count::thread_allocations();
    let start = Instant::now();
    let deadline = start + p.runtime;
    let total = p.objects_per_thread;
    loop {
        let now = Instant::now();
        progress.tick(
            now,
            if fetch {
                next as f64 / total as f64
            } else {
                (now - start).as_secs_f64() / p.runtime.as_secs_f64()
            },
        );
        let more = if fetch {
            next < total
        } else {
            Instant::now() < deadline && !pool_full
        };
        while more && slots.len() < p.queue_depth && failure.is_none() {
            let i = next % total;
            let oid = oid_of(thread, i, p.class);
            let shards = layouts[i as usize];
            let req = if fetch {
                if gens[i as usize] == 0 {
                    next += 1;
                    if next >= total {
                        break;
                    }
                    continue;
                }
                Request::Fetch {
                    oid,
                    dkey: DKEY,
                    akey: AKEY,
                }
            } else {
                // Never two updates of one object in flight: the object count is at least
                // the queue depth.
                gens[i as usize] += 1;
                fill(buf, oid, gens[i as usize]);
                Request::Update {
                    oid,
                    dkey: DKEY,
                    akey: AKEY,
                    value: buf,
                }
            };
            // An update goes to every replica; a fetch to the first.
            let n = if fetch { 1 } else { shards.n.max(1) };
            let mut tags = [0u64; MAX_SHARDS];
            for (tag, &target) in tags.iter_mut().zip(&shards.t).take(n as usize) {
                let target = target as usize;
                *tag = s.submit(target, p.cont, &req).map_err(|e| e.to_string())?;
                per_target[target] += 1;
            }
            slots.push(Slot {
                tags,
                pending: n,
                start: Instant::now(),
                index: i,
            });
            next += 1;
            if fetch && next >= total {
                break;
            }
        }
        if slots.is_empty() {
            break;
        }
        s.poll(|tag, result| {
            let Some(k) = slots
                .iter()
                .position(|sl| sl.tags[..MAX_SHARDS].contains(&tag) && sl.pending > 0)
            else {
                return;
            };
            if result.is_ok() && slots[k].pending > 1 {
                // Other replicas of this update have not answered yet.
                slots[k].pending -= 1;
                return;
            }
            let sl = slots.swap_remove(k);
            hist.record(sl.start.elapsed().as_nanos() as u64);
            match result {
                Ok(reply) => {
                    ops += 1;
                    if fetch {
                        let oid = oid_of(thread, sl.index, p.class);
                        let g = gens[sl.index as usize];
                        match reply.fetched() {
                            Some(Some(v)) => match verify(v, oid, g, buf) {
                                Ok(()) => verified += 1,
                                Err(e) => failure = Some(e),
                            },
                            _ => failure = Some(format!("object {oid:#x}: written, but not found")),
                        }
                    }
                }
                Err(ClientError::Der { code, .. }) if code == der::NOSPACE && !fetch => {
                    // This generation was not stored.
                    gens[sl.index as usize] -= 1;
                    pool_full = true;
                }
                Err(e) => failure = Some(e.to_string()),
            }
        })
        .map_err(|e| e.to_string())?;
        if let Some(f) = failure.take() {
            return Err(f);
        }
    }
    progress.finish();
    let elapsed = start.elapsed();
    let allocs = allocs_before
        .zip(crate::alloc_count::thread_allocations())
        .map(|(a, b)| b - a);
    Ok(ThreadResult {
        ops,
        verified,
        hist,
        elapsed,
        allocs,
        pool_full,
        per_target,
    })
}

/// Runs the update phase, then the fetch phase, on `p.threads` threads.
pub fn run(map: Arc<PoolMap>, p: &IoParams) -> Result<Vec<PhaseResult>, String> {
    let barrier = Arc::new(std::sync::Barrier::new(p.threads));
    let handles: Vec<_> = (0..p.threads)
        .map(|t| {
            let (map, p, barrier) = (map.clone(), p.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<[ThreadResult; 2], String> {
                // Each update of a replicated object is one message per replica.
                let replicas = map
                    .shards(oid_of(t, 0, p.class))
                    .map_or(1, |v| v.len().clamp(1, MAX_SHARDS));
                let mut s = Session::open(
                    map,
                    SessionOpts {
                        queue_depth: p.queue_depth * replicas,
                        max_value: p.size.max(4096),
                        timeout: Duration::from_secs(30),
                    },
                )
                .map_err(|e| format!("client session: {e}"))?;
                let mut gens = vec![0u32; p.objects_per_thread as usize];
                let mut buf = vec![0u8; p.size];
                let layouts = (0..p.objects_per_thread)
                    .map(|i| {
                        let targets = s
                            .map()
                            .shards(oid_of(t, i, p.class))
                            .map_err(|e| e.to_string())?;
                        if targets.len() > MAX_SHARDS {
                            return Err(format!(
                                "object class with {} shards: daos_bench io takes at most {MAX_SHARDS}",
                                targets.len()
                            ));
                        }
                        let mut sh = Shards {
                            n: targets.len() as u8,
                            t: [0; MAX_SHARDS],
                        };
                        for (k, x) in targets.iter().enumerate() {
                            sh.t[k] = *x as u32;
                        }
                        Ok(sh)
                    })
                    .collect::<Result<Vec<Shards>, String>>()?;
                barrier.wait();
                let u = run_phase(&mut s, t, &p, false, &mut gens, &mut buf, &layouts);
                barrier.wait();
                let f = run_phase(&mut s, t, &p, true, &mut gens, &mut buf, &layouts);
                Ok([u?, f?])
            })
        })
        .collect();
    let mut per_thread = Vec::new();
    for h in handles {
        per_thread.push(
            h.join()
                .map_err(|_| "a client thread panicked".to_string())??,
        );
    }
    let mut out = Vec::new();
    for (phase, op) in ["update", "fetch"].iter().enumerate() {
        let mut hist = Histogram::default();
        let (mut ops, mut verified, mut allocs, mut full) = (0, 0, Some(0u64), false);
        let mut elapsed = Duration::ZERO;
        for r in per_thread.iter().map(|t| &t[phase]) {
            hist.merge(&r.hist);
            ops += r.ops;
            verified += r.verified;
            allocs = allocs.zip(r.allocs).map(|(a, b)| a + b);
            elapsed = elapsed.max(r.elapsed);
            full |= r.pool_full;
        }
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut by_rank: std::collections::BTreeMap<u32, u64> = Default::default();
        for r in per_thread.iter().map(|t| &t[phase]) {
            for (t, n) in r.per_target.iter().enumerate() {
                if let Some(addr) = map.targets.get(t) {
                    *by_rank.entry(addr.rank).or_default() += n;
                }
            }
        }
        let per_rank = by_rank
            .into_iter()
            .map(|(rank, n)| RankNumbers {
                rank,
                ops: n,
                iops: n as f64 / secs,
                mb_per_sec: n as f64 * p.size as f64 / secs / 1e6,
            })
            .collect();
        out.push(PhaseResult {
            per_rank,
            op: (*op).into(),
            size: p.size,
            threads: p.threads,
            queue_depth: p.queue_depth,
            ops,
            verified,
            allocations_per_op: crate::alloc_count::per_op(Some(0), allocs, ops),
            pool_full: full,
            numbers: Numbers {
                iops: ops as f64 / secs,
                mb_per_sec: ops as f64 * p.size as f64 / secs / 1e6,
                p50_us: hist.percentile_us(50.0),
                p99_us: hist.percentile_us(99.0),
                p999_us: hist.percentile_us(99.9),
            },
            repeats: None,
        });
    }
    Ok(out)
}

/// The human table.
pub fn table(results: &[PhaseResult]) -> String {
    let mut s = String::from(
        "op      size   threads qd   ops       IOPS       MB/s      p50(us)  p99(us)  p99.9(us) verified\n",
    );
    for r in results {
        s.push_str(&format!(
            "{:<7} {:<6} {:<7} {:<4} {:<9} {:<10.0} {:<9.1} {:<8.1} {:<8.1} {:<9.1} {}\n",
            r.op,
            crate::human(r.size),
            r.threads,
            r.queue_depth,
            r.ops,
            r.numbers.iops,
            r.numbers.mb_per_sec,
            r.numbers.p50_us,
            r.numbers.p99_us,
            r.numbers.p999_us,
            if r.op == "fetch" {
                format!("{}/{}", r.verified, r.ops)
            } else if r.pool_full {
                "- (pool full: stopped early)".into()
            } else {
                "-".into()
            }
        ));
    }
    let ranks = results.first().map_or(0, |r| r.per_rank.len());
    if ranks > 1 {
        s.push_str("\nper rank:\nop      size   rank ops       IOPS       MB/s\n");
        for r in results {
            for k in &r.per_rank {
                s.push_str(&format!(
                    "{:<7} {:<6} {:<4} {:<9} {:<10.0} {:.1}\n",
                    r.op,
                    crate::human(r.size),
                    k.rank,
                    k.ops,
                    k.iops,
                    k.mb_per_sec
                ));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_verify_only_for_their_object_and_generation() {
        let mut v = vec![0u8; 4096];
        let mut scratch = vec![0u8; 4096];
        fill(&mut v, 7, 3);
        assert!(verify(&v, 7, 3, &mut scratch).is_ok());
        assert!(verify(&v, 7, 2, &mut scratch).is_err(), "stale generation");
        assert!(verify(&v, 8, 3, &mut scratch).is_err(), "another object");
        v[2000] ^= 1;
        assert!(verify(&v, 7, 3, &mut scratch).is_err(), "a flipped bit");
        assert!(verify(&v[..100], 7, 3, &mut scratch).is_err(), "short");
    }
}
