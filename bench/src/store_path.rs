//! Storage path through the engine's own target store (`--store`, like `vos_perf`): each
//! target opens a [`daos_engine::store::Store`] with its SCM index on a libpmem file and its
//! bdev part on a slice of the benchmark file (io_uring, `O_DIRECT` + `RWF_DSYNC`), and
//! updates or fetches values of the block size, synchronously (queue depth 1, as the store
//! serves a target's requests one at a time). Values up to 4 KiB live in the SCM log, larger
//! ones on the bdev; every fetch is checked against the object it asked for.

use std::path::Path;
use std::time::{Duration, Instant};

use daos_engine::pool::{BdevPart, UringRegion};
use daos_engine::store::{AkeyRef, Store};
use daos_hw::pmemfile::PmemFile;

use crate::storage::{Histogram, Numbers, Workload, WorkloadResult};

/// Objects each target cycles over: at most this many, fewer when the bdev slice is small
/// (two versions of each value are kept, and compaction needs room to move).
pub const MAX_OBJECTS: u64 = 4096;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What one target measured: latencies, verified reads, heap allocations in its loop.
type TargetRun = (Histogram, u64, Option<u64>);

fn stamp(buf: &mut [u8], oid: u128) {
    buf[..16].copy_from_slice(&oid.to_le_bytes());
}

/// Runs one workload through the store on `targets` pinned threads.
/// With `malloc`, each target's bdev part is RAM (DAOS's malloc bdev class) instead of a
/// slice of `path`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    path: &Path,
    size: u64,
    scm_dir: &Path,
    scm_per_target: u64,
    w: Workload,
    runtime: Duration,
    targets: usize,
    first_cpu: usize,
    malloc: bool,
) -> Result<WorkloadResult, String> {
    let targets = targets.max(1);
    let slice = (size / targets as u64) / (1 << 20) * (1 << 20);
    // Two versions of every value must fit in half the SCM log (small values) or in a quarter
    // of the bdev slice (large ones), with room left for compaction to work.
    let objects = if w.block <= daos_engine::store::INLINE_MAX {
        scm_per_target / 2 / (3 * (w.block as u64 + 128))
    } else {
        slice / w.block as u64 / 4
    }
    .clamp(1, MAX_OBJECTS);
    let begin = Instant::now();
    let runs: Vec<Result<TargetRun, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..targets)
            .map(|i| {
                scope.spawn(move || {
                    crate::storage::pin(first_cpu + i)?;
                    // A fresh store per workload: fio (with --compare-fio) writes over the file.
                    let scm_path = scm_dir.join(format!("daos_bench_vos-{i}"));
                    let _ = std::fs::remove_file(&scm_path);
                    let scm = PmemFile::open(&scm_path, scm_per_target as usize)
                        .map_err(|e| format!("{}: {e}", scm_path.display()))?;
                    let bdev = if malloc {
                        BdevPart::Ram(vec![0u8; slice as usize])
                    } else {
                        BdevPart::File(Box::new(
                            UringRegion::open(path, i as u64 * slice, slice)
                                .map_err(|e| format!("{}: {e}", path.display()))?,
                        ))
                    };
                    let mut store = Store::open(scm, bdev).map_err(|e| format!("store: {e}"))?;
                    run_target(&mut store, w, objects, runtime, i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a target thread panicked".into()))
            })
            .collect()
    });
    let secs = begin.elapsed().as_secs_f64();
    let mut hist = Histogram::default();
    let (mut verified, mut allocations) = (0, Some(0));
    for r in runs {
        let (h, v, a) = r?;
        hist.merge(&h);
        verified += v;
        allocations = allocations.zip(a).map(|(x, y)| x + y);
    }
    let ops = hist.count();
    Ok(WorkloadResult {
        workload: format!("store-{}", w.rw.name()),
        block: w.block,
        queue_depth: 1,
        targets,
        ops,
        verified_reads: verified,
        allocations_per_op: crate::alloc_count::per_op(Some(0), allocations, ops),
        ours: Numbers {
            iops: ops as f64 / secs,
            mb_per_sec: ops as f64 * w.block as f64 / secs / 1e6,
            p50_us: hist.percentile_us(50.0),
            p99_us: hist.percentile_us(99.0),
            p999_us: hist.percentile_us(99.9),
        },
        fio: None,
        iops_ratio: None,
        bandwidth_ratio: None,
        repeats: None,
    })
}

fn run_target<S: daos_engine::store::Media, B: daos_engine::store::Media>(
    store: &mut Store<S, B>,
    w: Workload,
    objects: u64,
    runtime: Duration,
    index: usize,
) -> Result<TargetRun, String> {
    let cont = 1u128;
    let mut buf = vec![0u8; w.block];
    let key = |oid: u128| AkeyRef {
        cont,
        oid,
        dkey: b"d",
        akey: b"a",
    };
    let oid_of = |k: u64| (w.block as u128) << 64 | u128::from(k);
    let writes = matches!(
        w.rw,
        crate::storage::Rw::RandWrite | crate::storage::Rw::Write
    );
    if !writes {
        // Reads need something to read: write every object once (not measured).
        for k in 0..objects {
            let oid = oid_of(k);
            stamp(&mut buf, oid);
            if store
                .fetch_with(key(oid), u64::MAX, |v| v.map(<[u8]>::len))
                .map_err(|e| e.to_string())?
                != Some(w.block)
            {
                store
                    .update(cont, oid, b"d", b"a", &buf)
                    .map_err(|e| format!("preparing object {k}: {e}"))?;
            }
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((index as u64 + 1) << 32));
    let mut hist = Histogram::default();
    let mut verified = 0;
    let mut seq = 0u64;
    let allocs_before = crate::alloc_count::thread_allocations();
    let deadline = Instant::now() + runtime;
    let mut progress = if index == 0 {
        crate::Progress::new(format!("store {} {}", w.rw.name(), crate::human(w.block)))
    } else {
        crate::Progress::silent()
    };
    let start = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        progress.tick(now, (now - start).as_secs_f64() / runtime.as_secs_f64());
        let k = if matches!(
            w.rw,
            crate::storage::Rw::RandWrite | crate::storage::Rw::RandRead
        ) {
            rng.next() % objects
        } else {
            seq += 1;
            seq % objects
        };
        let oid = oid_of(k);
        let t0 = Instant::now();
        if writes {
            stamp(&mut buf, oid);
            store
                .update(cont, oid, b"d", b"a", &buf)
                .map_err(|e| format!("update: {e} (try a larger --scm-size or --size)"))?;
        } else {
            let ok = store
                .fetch_with(key(oid), u64::MAX, |v| {
                    v.is_some_and(|v| v.len() == w.block && v[..16] == oid.to_le_bytes())
                })
                .map_err(|e| format!("fetch: {e}"))?;
            if !ok {
                return Err(format!("object {oid:#x}: fetched data did not verify"));
            }
            verified += 1;
        }
        hist.record(t0.elapsed().as_nanos() as u64);
    }
    progress.finish();
    let allocs = allocs_before
        .zip(crate::alloc_count::thread_allocations())
        .map(|(a, b)| b - a);
    Ok((hist, verified, allocs))
}
