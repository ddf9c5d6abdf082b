//! Storage path benchmark (like `vos_perf`, no network): the engine's io_uring `O_DIRECT` block
//! path ([`daos_engine::bdev`]) driven at a fixed queue depth on one pinned core, against `fio
//! --ioengine=io_uring --direct=1` with the same pattern, block size, depth, file and CPU.
//!
//! Every 4 KiB of the file carries a stamp (its own offset), written when the file is prepared
//! and by every write; every read checks the stamps, so a benchmark that returned wrong data
//! fails instead of reporting a number.

use std::path::Path;
use std::time::{Duration, Instant};

use daos_engine::bdev::{ALIGN, Op, UringBdev};
use serde::Serialize;

/// One workload: pattern and block size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub rw: Rw,
    pub block: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rw {
    RandWrite,
    RandRead,
    Write,
    Read,
}

impl Rw {
    /// fio's `--rw` name, which is also ours.
    pub fn name(self) -> &'static str {
        match self {
            Rw::RandWrite => "randwrite",
            Rw::RandRead => "randread",
            Rw::Write => "write",
            Rw::Read => "read",
        }
    }

    fn op(self) -> Op {
        match self {
            Rw::RandWrite | Rw::Write => Op::Write,
            Rw::RandRead | Rw::Read => Op::Read,
        }
    }

    fn random(self) -> bool {
        matches!(self, Rw::RandWrite | Rw::RandRead)
    }
}

/// Parses `randwrite/4k`-style workload names.
pub fn parse_workload(
    s: &str,
    size: impl Fn(&str) -> Result<usize, String>,
) -> Result<Workload, String> {
    let (rw, bs) = s
        .split_once('/')
        .ok_or_else(|| format!("--workloads: {s:?} is not PATTERN/BLOCK (e.g. randread/4k)"))?;
    let rw = match rw {
        "randwrite" => Rw::RandWrite,
        "randread" => Rw::RandRead,
        "write" => Rw::Write,
        "read" => Rw::Read,
        other => {
            return Err(format!(
                "--workloads: unknown pattern {other:?} in {s:?} (use randwrite, randread, write or read)"
            ));
        }
    };
    let block = size(bs)?;
    if block == 0 || !block.is_multiple_of(ALIGN) {
        return Err(format!(
            "--workloads: block size {bs:?} in {s:?} is not a multiple of 4k (O_DIRECT)"
        ));
    }
    Ok(Workload { rw, block })
}

/// Latency histogram with fixed log-linear buckets (16 per power of two; a u64 has at most
/// 61 groups from 16 up), so recording never allocates.
pub struct Histogram {
    counts: Box<[u64; 61 * 16]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; 61 * 16]),
            total: 0,
        }
    }
}

impl Histogram {
    fn index(ns: u64) -> usize {
        if ns < 16 {
            return ns as usize;
        }
        let msb = 63 - ns.leading_zeros() as usize;
        let sub = ((ns >> (msb - 4)) & 15) as usize;
        (msb - 3) * 16 + sub
    }

    fn lower_bound(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let msb = i / 16 + 3;
        (16 + (i % 16) as u64) << (msb - 4)
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `p`th percentile (0..100) in microseconds, at bucket resolution (about 6%).
    pub fn percentile_us(&self, p: f64) -> f64 {
        let want = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Self::lower_bound(i) as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// One workload's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Numbers {
    pub iops: f64,
    pub mb_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// One workload's result, ours and (with `--compare-fio`) fio's.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadResult {
    pub workload: String,
    pub block: usize,
    pub queue_depth: usize,
    /// Targets (threads, one per core), each with its own ring and slice of the file.
    pub targets: usize,
    pub ops: u64,
    pub verified_reads: u64,
    /// Heap allocations per I/O in the measured loop (`null` without the counting allocator).
    pub allocations_per_op: Option<f64>,
    pub ours: Numbers,
    pub fio: Option<Numbers>,
    pub iops_ratio: Option<f64>,
    pub bandwidth_ratio: Option<f64>,
    /// Median, MAD, min and max over `--repeat` runs (ours; the run reported is the median).
    pub repeats: Option<crate::stats::Repeats>,
}

fn stamp(buf: &mut [u8], offset: u64) {
    for (i, chunk) in buf.chunks_mut(ALIGN).enumerate() {
        chunk[..8].copy_from_slice(&(offset + (i * ALIGN) as u64).to_le_bytes());
    }
}

fn check(buf: &[u8], offset: u64) -> Result<(), String> {
    for (i, chunk) in buf.chunks(ALIGN).enumerate() {
        let want = offset + (i * ALIGN) as u64;
        let got = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
        if got != want {
            return Err(format!(
                "read at offset {want} returned the block stamped {got}: data did not verify"
            ));
        }
    }
    Ok(())
}

/// Writes every block of the file with its stamp, so reads anywhere verify.
pub fn prepare(path: &Path, size: u64) -> Result<(), String> {
    // The largest power of two up to 1 MiB that divides the size, so no write runs past it.
    let mut block = 1usize << 20;
    while block > ALIGN && !size.is_multiple_of(block as u64) {
        block /= 2;
    }
    let mut dev = UringBdev::open(path, block, 4, size, true)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut next = 0u64;
    let mut failed = None;
    while next < size || dev.in_flight() > 0 {
        while next < size && dev.in_flight() < dev.depth() {
            let slot = (0..dev.depth())
                .find(|&s| dev.buf(s).is_some())
                .unwrap_or(0);
            if let Some(b) = dev.buf_mut(slot) {
                stamp(b, next);
            }
            dev.push(slot, Op::Write, next).map_err(|e| e.to_string())?;
            next += block as u64;
        }
        dev.submit(true).map_err(|e| e.to_string())?;
        dev.reap(|c| {
            if let Err(e) = c.result {
                failed = Some(e.to_string());
            }
        });
    }
    match failed {
        Some(e) => Err(format!("preparing {}: {e}", path.display())),
        None => Ok(()),
    }
}

/// xorshift64*: a cheap random source that needs no allocation or syscall.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What one target measured.
struct TargetRun {
    hist: Histogram,
    verified: u64,
    /// Heap allocations by the target's thread in its I/O loop.
    allocations: Option<u64>,
}

/// Runs one workload on `targets` threads, target `i` pinned to CPU `first_cpu + i` with its
/// own ring, buffers and slice of the file (shared-nothing, as engine targets are), each at
/// queue depth `qd`, for `runtime`.
pub fn run(
    path: &Path,
    size: u64,
    w: Workload,
    qd: usize,
    runtime: Duration,
    targets: usize,
    first_cpu: usize,
) -> Result<WorkloadResult, String> {
    let targets = targets.max(1);
    let slice = (size / targets as u64) / w.block as u64 * w.block as u64;
    if slice == 0 {
        return Err(format!(
            "--size {size} gives each of {targets} target(s) less than one {} block",
            crate::human(w.block)
        ));
    }
    let begin = Instant::now();
    let runs: Vec<Result<TargetRun, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..targets)
            .map(|i| {
                scope.spawn(move || {
                    pin(first_cpu + i)?;
                    let mut dev = UringBdev::open(path, w.block, qd, size, false)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    run_target(&mut dev, i as u64 * slice, slice, w, qd, runtime, i)
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
    let mut verified = 0;
    let mut allocations = Some(0);
    for r in runs {
        let r = r?;
        hist.merge(&r.hist);
        verified += r.verified;
        allocations = allocations.zip(r.allocations).map(|(a, b)| a + b);
    }
    let ops = hist.count();
    let ours = Numbers {
        iops: ops as f64 / secs,
        mb_per_sec: (ops as f64 * w.block as f64) / secs / 1e6,
        p50_us: hist.percentile_us(50.0),
        p99_us: hist.percentile_us(99.0),
        p999_us: hist.percentile_us(99.9),
    };
    Ok(WorkloadResult {
        workload: w.rw.name().into(),
        block: w.block,
        queue_depth: qd,
        targets,
        ops,
        verified_reads: verified,
        allocations_per_op: crate::alloc_count::per_op(Some(0), allocations, ops),
        ours,
        fio: None,
        iops_ratio: None,
        bandwidth_ratio: None,
        repeats: None,
    })
}

pub(crate) fn pin(cpu: usize) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| format!("--cpu: CPU {cpu}: {e}"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| {
        format!(
            "--cpu: cannot pin a target to CPU {cpu} ({e}); pick online CPUs (--cpu plus --targets)"
        )
    })
}

/// One target's loop over its slice `[base, base + len)`; the calling thread is the target.
fn run_target(
    dev: &mut UringBdev,
    base: u64,
    len: u64,
    w: Workload,
    qd: usize,
    runtime: Duration,
    index: usize,
) -> Result<TargetRun, String> {
    let blocks = len / w.block as u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((index as u64 + 1) << 32));
    let mut seq = 0u64;
    let mut offsets = vec![0u64; qd];
    let mut started = vec![Instant::now(); qd];
    let mut hist = Histogram::default();
    let mut verified = 0u64;
    let mut error: Option<String> = None;
    let op = w.rw.op();
    let next_offset = |rng: &mut Rng, seq: &mut u64| {
        let b = if w.rw.random() {
            rng.next() % blocks
        } else {
            let b = *seq % blocks;
            *seq += 1;
            b
        };
        base + b * w.block as u64
    };
    let mut progress = crate::Progress::new(format!("{} {}", w.rw.name(), crate::human(w.block)));
    if index != 0 {
        progress = crate::Progress::silent();
    }
    let allocs_before = crate::alloc_count::thread_allocations();
    let begin = Instant::now();
    let end = begin + runtime;
    // Queues the next I/O on an idle slot (stamping the buffer first for a write).
    let mut issue = |dev: &mut UringBdev,
                     offsets: &mut [u64],
                     started: &mut [Instant],
                     slot: usize|
     -> Result<(), String> {
        let off = next_offset(&mut rng, &mut seq);
        if op == Op::Write
            && let Some(b) = dev.buf_mut(slot)
        {
            stamp(b, off);
        }
        offsets[slot] = off;
        started[slot] = Instant::now();
        dev.push(slot, op, off).map_err(|e| e.to_string())
    };
    for slot in 0..qd {
        issue(dev, &mut offsets, &mut started, slot)?;
    }
    // At most `qd` completions per reap, so this never grows.
    let mut done: Vec<usize> = Vec::with_capacity(qd);
    while dev.in_flight() > 0 {
        dev.submit(true).map_err(|e| e.to_string())?;
        let now = Instant::now();
        done.clear();
        dev.reap(|c| {
            match c.result {
                Ok(len) if len == w.block => {}
                Ok(len) => {
                    error = Some(format!(
                        "short {} of {len} bytes at offset {}",
                        w.rw.name(),
                        offsets[c.slot]
                    ))
                }
                Err(e) => {
                    error = Some(format!(
                        "{} at offset {}: {e}",
                        w.rw.name(),
                        offsets[c.slot]
                    ))
                }
            }
            hist.record(now.duration_since(started[c.slot]).as_nanos() as u64);
            done.push(c.slot);
        });
        if let Some(e) = error.take() {
            progress.finish();
            return Err(e);
        }
        progress.tick(
            now,
            now.duration_since(begin).as_secs_f64() / runtime.as_secs_f64(),
        );
        for &slot in &done {
            if op == Op::Read {
                if let Some(b) = dev.buf(slot) {
                    check(b, offsets[slot])?;
                }
                verified += 1;
            }
            if now < end {
                issue(dev, &mut offsets, &mut started, slot)?;
            }
        }
    }
    let allocations = allocs_before
        .zip(crate::alloc_count::thread_allocations())
        .map(|(b, a)| a - b);
    progress.finish();
    Ok(TargetRun {
        hist,
        verified,
        allocations,
    })
}

/// Runs fio with the same pattern on the same file, CPUs and per-target slices (one job per
/// target); returns its numbers.
pub fn fio(
    path: &Path,
    size: u64,
    w: Workload,
    qd: usize,
    runtime: Duration,
    first_cpu: usize,
    targets: usize,
) -> Result<Numbers, String> {
    fio_with(path, size, w, qd, runtime, first_cpu, targets, false)
}

/// [`fio`]; `dsync` opens the file `O_DSYNC` (`--sync=dsync`), the durability the store gives
/// every update.
#[allow(clippy::too_many_arguments)]
pub fn fio_with(
    path: &Path,
    size: u64,
    w: Workload,
    qd: usize,
    runtime: Duration,
    first_cpu: usize,
    targets: usize,
    dsync: bool,
) -> Result<Numbers, String> {
    let targets = targets.max(1);
    let slice = (size / targets as u64) / w.block as u64 * w.block as u64;
    let mut cmd = std::process::Command::new("fio");
    cmd.args([
        "--name=daos_bench",
        "--ioengine=io_uring",
        "--direct=1",
        "--time_based",
        "--output-format=json",
        "--randrepeat=0",
    ])
    .arg(format!("--filename={}", path.display()))
    .arg(format!("--rw={}", w.rw.name()))
    .arg(format!("--bs={}", w.block))
    .arg(format!("--iodepth={qd}"))
    .arg(format!("--size={slice}"))
    .arg(format!("--numjobs={targets}"))
    .arg(format!("--offset_increment={slice}"))
    .arg("--group_reporting")
    .arg("--cpus_allowed_policy=split")
    .arg(format!(
        "--cpus_allowed={first_cpu}-{}",
        first_cpu + targets - 1
    ))
    .arg(format!("--runtime={}ms", runtime.as_millis().max(1)));
    if dsync {
        cmd.arg("--sync=dsync");
    }
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run fio ({e}); install it with `apt-get install fio` (scripts/setup.sh does)"
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "fio failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_fio(&String::from_utf8_lossy(&out.stdout), w.rw.op())
}

/// fio's JSON report: IOPS, bandwidth and completion-latency percentiles of its one job.
pub fn parse_fio(json: &str, op: Op) -> Result<Numbers, String> {
    // fio may print warnings before the JSON document.
    let start = json.find('{').ok_or("fio printed no JSON report")?;
    let v: serde_json::Value =
        serde_json::from_str(&json[start..]).map_err(|e| format!("fio's JSON report: {e}"))?;
    let side = &v["jobs"][0][if op == Op::Read { "read" } else { "write" }];
    let pct = |k: &str| side["clat_ns"]["percentile"][k].as_f64().unwrap_or(0.0) / 1000.0;
    Ok(Numbers {
        iops: side["iops"].as_f64().ok_or("fio's report has no iops")?,
        mb_per_sec: side["bw_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        p50_us: pct("50.000000"),
        p99_us: pct("99.000000"),
        p999_us: pct("99.900000"),
    })
}

/// The human table.
pub fn table(results: &[WorkloadResult]) -> String {
    let mut s = String::from(
        "workload   block  qd   IOPS       MB/s      p50(us)  p99(us)  p99.9(us)  vs fio (IOPS, MB/s)\n",
    );
    for r in results {
        let vs = match (r.iops_ratio, r.bandwidth_ratio) {
            (Some(a), Some(b)) => format!("{a:.2}x, {b:.2}x"),
            _ => "-".into(),
        };
        s.push_str(&format!(
            "{:<10} {:<6} {:<4} {:<10.0} {:<9.1} {:<8.1} {:<8.1} {:<10.1} {vs}\n",
            r.workload,
            crate::human(r.block),
            r.queue_depth,
            r.ours.iops,
            r.ours.mb_per_sec,
            r.ours.p50_us,
            r.ours.p99_us,
            r.ours.p999_us
        ));
        if let Some(f) = &r.fio {
            s.push_str(&format!(
                "{:<10} {:<6} {:<4} {:<10.0} {:<9.1} {:<8.1} {:<8.1} {:<10.1}\n",
                "  fio", "", "", f.iops, f.mb_per_sec, f.p50_us, f.p99_us, f.p999_us
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_within_bucket_resolution() {
        let mut h = Histogram::default();
        for ns in 1..=100_000u64 {
            h.record(ns * 10);
        }
        let p50 = h.percentile_us(50.0);
        assert!((470.0..=500.0).contains(&p50), "{p50}");
        let p99 = h.percentile_us(99.0);
        assert!((930.0..=990.0).contains(&p99), "{p99}");
        for i in 0..61 * 16 {
            assert!(Histogram::index(Histogram::lower_bound(i)) == i || i < 16);
        }
    }

    #[test]
    fn reads_fio_json() {
        let j = r#"note: both iodepth >= 1 and synchronous I/O engine
{"jobs":[{"read":{"iops":1234.5,"bw_bytes":5056512,"clat_ns":{"percentile":{"50.000000":101376,"99.000000":250880,"99.900000":403456}}},"write":{"iops":0}}]}"#;
        let n = parse_fio(j, Op::Read).expect("parses");
        assert_eq!(n.iops, 1234.5);
        assert!((n.p99_us - 250.88).abs() < 1e-9);
        assert!(parse_fio("garbage", Op::Read).is_err());
    }

    #[test]
    fn stamps_verify_and_catch_misplaced_blocks() {
        let mut b = vec![0u8; 2 * ALIGN];
        stamp(&mut b, 8192);
        assert!(check(&b, 8192).is_ok());
        assert!(check(&b, 0).unwrap_err().contains("did not verify"));
    }
}
