//! `daos_bench`: benchmarks of daos-rs. See `daos_bench --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use daos_bench::fabric;

#[global_allocator]
static ALLOC: daos_bench::alloc_count::CountingAlloc = daos_bench::alloc_count::CountingAlloc;

#[derive(Parser)]
#[command(
    name = "daos_bench",
    version,
    about = "daos-rs benchmarks, each with a reference measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fabric check: ping-pong over the engine's endpoints, in fi_pingpong's columns.
    Fabric(FabricArgs),
    /// Storage path: the engine's io_uring O_DIRECT block path on one core, against fio.
    Storage(StorageArgs),
    /// End-to-end I/O against a running system: update, then fetch and verify (daos_perf -R "U;p F;p").
    Io(IoArgs),
    /// Rebuild under load against a running system: lose a rank, report time to exclusion,
    /// rebuild MB/s against the device, and the foreground's IOPS and p99 meanwhile.
    Rebuild(RebuildArgs),
}

/// The running system a benchmark uses: how to reach its management service, and the pool.
#[derive(clap::Args)]
struct SystemArgs {
    /// Client config file (default /etc/daos/daos_control.yml if it exists).
    #[arg(short = 'o', long = "config-path")]
    config_path: Option<PathBuf>,
    /// Management service hosts, e.g. wolf-[71-73]:10001.
    #[arg(short = 'l', long = "host-list")]
    host_list: Option<String>,
    /// Plaintext connection to the management service.
    #[arg(short = 'i', long)]
    insecure: bool,
    /// Pool label or UUID.
    #[arg(long)]
    pool: String,
}

impl SystemArgs {
    /// The management service's hosts, and the pool's map from it.
    fn connect(&self) -> Result<(daos_control::Target, daos_client::PoolMap), String> {
        let target = daos_client::connect::client_target(
            self.config_path.as_deref(),
            self.host_list.as_deref(),
            self.insecure,
        )
        .map_err(|e| e.to_string())?;
        let map = daos_client::connect::connect_blocking(
            &target,
            &self.pool,
            daos_client::container::FLAG_RW,
        )
        .map_err(|e| e.to_string())?;
        Ok((target, map))
    }
}

#[derive(clap::Args)]
struct RebuildArgs {
    #[command(flatten)]
    sys: SystemArgs,
    /// The rank to lose.
    #[arg(long)]
    rank: u32,
    /// Shell command that kills every process of the rank's host (SWIM must find out);
    /// without it the rank's targets are excluded with `dmg pool exclude`.
    #[arg(long)]
    kill: Option<String>,
    /// Object class of the objects (replicated: the rebuild copies from the survivors).
    #[arg(long, default_value = "RP_2G1")]
    oclass: String,
    /// Objects filled before the loss.
    #[arg(long, default_value_t = 256)]
    objects: u64,
    /// Value size of each object (k, m suffixes; at most 1m).
    #[arg(long, default_value = "64k")]
    size: String,
    /// Seconds of foreground before the loss (the baseline).
    #[arg(long, default_value_t = 3.0)]
    baseline: f64,
    /// Seconds to wait for the exclusion and the rebuild.
    #[arg(long, default_value_t = 180.0)]
    timeout: f64,
    /// File for the device reference (the engine's io_uring write path, 1 MiB blocks; on a
    /// file system with O_DIRECT); default: a temporary file, removed afterwards.
    #[arg(long = "ref-file")]
    ref_file: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn rebuild_cmd(a: RebuildArgs) -> Result<(), String> {
    use daos_bench::rebuild;
    let class =
        daos_placement::ObjectClass::parse(&a.oclass).map_err(|e| format!("--oclass: {e}"))?;
    if class.redun.group_size() < 2 {
        return Err(format!(
            "--oclass {}: has one copy per object, so a lost rank loses data and nothing rebuilds; use a replicated class (RP_2G1, RP_3G1)",
            a.oclass
        ));
    }
    let one = |name: &str, v: &str| match size(v) {
        Ok(n) if (1..=1 << 20).contains(&n) => Ok(n),
        _ => Err(format!("--{name} {v:?}: use 1 byte to 1m (e.g. 64k)")),
    };
    let value = one("size", &a.size)?;
    if a.objects == 0 || a.objects > 1 << 20 {
        return Err(format!("--objects {}: use 1 to 1048576", a.objects));
    }
    for (name, v) in [("baseline", a.baseline), ("timeout", a.timeout)] {
        if !(v > 0.0 && v <= 3600.0) {
            return Err(format!(
                "--{name} {v}: use more than 0 and at most 3600 seconds"
            ));
        }
    }
    let (target, map) = a.sys.connect()?;
    let map = std::sync::Arc::new(map);
    // The reference first, before anything runs on the machine's cores.
    let (path, temp) = match &a.ref_file {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!("daos_bench_rebuild_{}.dat", std::process::id())),
            true,
        ),
    };
    let device = (|| -> Result<f64, String> {
        let total = 256u64 << 20;
        daos_bench::storage::prepare(&path, total)?;
        let w = daos_bench::storage::Workload {
            rw: daos_bench::storage::Rw::Write,
            block: 1 << 20,
        };
        let r =
            daos_bench::storage::run(&path, total, w, 8, std::time::Duration::from_secs(2), 1, 0)?;
        Ok(r.ours.mb_per_sec)
    })();
    if temp {
        let _ = std::fs::remove_file(&path);
    }
    let device = match device {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!(
                "daos_bench rebuild: WARNING: no device reference ({}: {e}); use --ref-file on the storage's file system",
                path.display()
            );
            None
        }
    };
    let mut admin = daos_client::Session::open(map.clone(), daos_client::SessionOpts::default())
        .map_err(|e| format!("client session: {e}"))?;
    let label = format!("daos_bench_rebuild_{}", std::process::id());
    let uuid =
        daos_client::parse_uuid(&daos_wire::new_uuid_text().map_err(|e| format!("UUID: {e}"))?)
            .ok_or("UUID")?;
    daos_client::container::Containers::new(&target, &a.sys.pool)
        .and_then(|c| c.create(&label, uuid, ""))
        .map_err(|e| format!("container {label}: {e}"))?;
    admin
        .register_everywhere(uuid)
        .map_err(|e| format!("container {label}: {e}"))?;
    drop(admin);
    // Sessions read and write the container under a container handle.
    let map = std::sync::Arc::new(daos_client::connect::open_container_blocking(
        &target,
        &a.sys.pool,
        (*map).clone(),
        uuid,
        daos_client::container::FLAG_RW,
    )?);
    eprintln!(
        "daos_bench rebuild: pool {}, {} objects of {} bytes ({}), then rank {} is lost",
        a.sys.pool, a.objects, value, a.oclass, a.rank
    );
    let p = rebuild::RebuildParams {
        pool: a.sys.pool.clone(),
        cont: uuid,
        class,
        rank: a.rank,
        loss: match a.kill {
            Some(k) => rebuild::Loss::Kill(k),
            None => rebuild::Loss::Exclude,
        },
        objects: a.objects,
        size: value,
        baseline: std::time::Duration::from_secs_f64(a.baseline),
        timeout: std::time::Duration::from_secs_f64(a.timeout),
    };
    let r = rebuild::run(&target, map, &p, device)?;
    print!("{}", rebuild::table(&r));
    if let Some(j) = a.json {
        let doc = serde_json::json!({
            "benchmark": "rebuild",
            "pool": a.sys.pool,
            "container": label,
            "run": daos_bench::run_info(),
            "result": r,
        });
        std::fs::write(&j, serde_json::to_string_pretty(&doc).unwrap_or_default())
            .map_err(|e| format!("cannot write {}: {e}", j.display()))?;
    }
    Ok(())
}

#[derive(clap::Args)]
struct IoArgs {
    #[command(flatten)]
    sys: SystemArgs,
    /// Container label or UUID; default: a new container, destroyed afterwards.
    #[arg(long)]
    cont: Option<String>,
    /// Object class of the objects, e.g. RP_2G1 (updates go to every replica); default: one
    /// target per object.
    #[arg(long)]
    oclass: Option<String>,
    /// Client threads, each with its own fabric endpoint.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Operations in flight per thread.
    #[arg(long = "qd", default_value_t = 16)]
    queue_depth: usize,
    /// Value sizes, one update+fetch run each (k, m suffixes; at most 1m).
    #[arg(long, value_delimiter = ',', default_value = "4k,1m")]
    sizes: Vec<String>,
    /// Seconds of updates per size (fetches then read every object written once).
    #[arg(long, default_value_t = 5.0)]
    runtime: f64,
    /// Objects per thread (updates cycle over them); at least the queue depth.
    #[arg(long, default_value_t = 1024)]
    objects: u64,
    /// Runs per size; the median is reported, the spread is in the JSON.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn io_cmd(a: IoArgs) -> Result<(), String> {
    let class = match &a.oclass {
        None => None,
        Some(name) => {
            let c =
                daos_placement::ObjectClass::parse(name).map_err(|e| format!("--oclass: {e}"))?;
            c.check(0).map_err(|e| format!("--oclass: {e}"))?;
            Some(c)
        }
    };
    use daos_bench::io;
    if a.threads == 0 || a.threads > 256 {
        return Err(format!("--threads {}: use 1 to 256", a.threads));
    }
    if a.repeat == 0 || a.repeat > 100 {
        return Err(format!("--repeat {}: use 1 to 100", a.repeat));
    }
    if a.queue_depth == 0 || a.queue_depth > 256 {
        return Err(format!("--qd {}: use 1 to 256", a.queue_depth));
    }
    if a.objects < a.queue_depth as u64 || a.objects > 1 << 24 {
        return Err(format!(
            "--objects {}: use at least the queue depth ({}) and at most 16777216",
            a.objects, a.queue_depth
        ));
    }
    if !(a.runtime > 0.0 && a.runtime <= 3600.0) {
        return Err(format!(
            "--runtime {}: use more than 0 and at most 3600 seconds",
            a.runtime
        ));
    }
    let sizes: Vec<usize> = a
        .sizes
        .iter()
        .map(|s| match size(s) {
            Ok(n) if (20..=1 << 20).contains(&n) => Ok(n),
            _ => Err(format!(
                "--sizes: invalid size {s:?} (20 bytes to 1m, e.g. 4k)"
            )),
        })
        .collect::<Result<_, _>>()?;
    let (target, map) = a.sys.connect()?;
    let map = std::sync::Arc::new(map);
    let mut admin = daos_client::Session::open(map.clone(), daos_client::SessionOpts::default())
        .map_err(|e| format!("client session: {e}"))?;
    let conts =
        daos_client::container::Containers::new(&target, &a.sys.pool).map_err(|e| e.to_string())?;
    let (cont, temp) = match &a.cont {
        Some(c) => (conts.query(c).map_err(|e| e.to_string())?.uuid, None),
        None => {
            let label = format!("daos_bench_{}", std::process::id());
            let uuid = daos_client::parse_uuid(
                &daos_wire::new_uuid_text().map_err(|e| format!("UUID: {e}"))?,
            )
            .ok_or("UUID")?;
            conts
                .create(&label, uuid, "")
                .map_err(|e| format!("container {label}: {e}"))?;
            admin
                .register_everywhere(uuid)
                .map_err(|e| format!("container {label}: {e}"))?;
            (uuid, Some(label))
        }
    };
    let map = std::sync::Arc::new(daos_client::connect::open_container_blocking(
        &target,
        &a.sys.pool,
        (*map).clone(),
        cont,
        daos_client::container::FLAG_RW,
    )?);
    eprintln!(
        "daos_bench io: pool {} ({} targets on {} ranks, system map version {}), {} thread(s) x qd {}, {} objects per thread",
        a.sys.pool,
        map.targets.len(),
        {
            let mut r: Vec<u32> = map.targets.iter().map(|t| t.rank).collect();
            r.dedup();
            r.len()
        },
        map.version,
        a.threads,
        a.queue_depth,
        a.objects
    );
    let mut results = Vec::new();
    let mut failure = None;
    for size in &sizes {
        eprintln!(
            "daos_bench io: {} updates for {:.1}s, then fetch and verify",
            daos_bench::human(*size),
            a.runtime
        );
        let p = io::IoParams {
            cont,
            class,
            threads: a.threads,
            queue_depth: a.queue_depth,
            size: *size,
            objects_per_thread: a.objects,
            runtime: std::time::Duration::from_secs_f64(a.runtime),
        };
        let mut runs: Vec<Vec<io::PhaseResult>> = Vec::with_capacity(a.repeat);
        for _ in 0..a.repeat {
            match io::run(map.clone(), &p) {
                Ok(r) => runs.push(r),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_some() {
            break;
        }
        for phase in 0..2 {
            let numbers: Vec<daos_bench::storage::Numbers> =
                runs.iter().map(|r| r[phase].numbers.clone()).collect();
            let (spread, median) = daos_bench::stats::repeats(&numbers);
            let mut r = runs[median][phase].clone();
            if a.repeat > 1 {
                r.repeats = Some(spread);
            }
            results.push(r);
        }
    }
    // Its own container, with its own handle still open: destroyed by force (which evicts it).
    if let Some(label) = temp
        && let Err(e) = conts
            .destroy(&label, true)
            .map_err(|e| e.to_string())
            .and_then(|c| admin.punch_everywhere(c.uuid).map_err(|e| e.to_string()))
    {
        eprintln!("daos_bench io: could not destroy container {label}: {e}");
    }
    print!("{}", io::table(&results));
    if results.iter().any(|r| r.pool_full) {
        eprintln!(
            "daos_bench io: the pool filled up during updates (each object keeps 2 versions of its value: {} threads x {} objects x 2 x the size); use a larger pool or fewer --objects",
            a.threads, a.objects
        );
    }
    if let Some(f) = failure {
        return Err(f);
    }
    if let Some(j) = a.json {
        let doc = serde_json::json!({
            "benchmark": "io",
            "pool": a.sys.pool,
            "targets": map.targets.len(),
            "map_version": map.version,
            "oclass": a.oclass,
            "runtime_secs": a.runtime,
            "run": daos_bench::run_info(),
            "results": results,
        });
        std::fs::write(&j, serde_json::to_string_pretty(&doc).unwrap_or_default())
            .map_err(|e| format!("cannot write {}: {e}", j.display()))?;
    }
    Ok(())
}

#[derive(clap::Args)]
struct StorageArgs {
    /// File (bdev class `file`) or block device (`kdev`) to run on; default: a temporary file,
    /// removed afterwards.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Bytes of the file to use (k, m, g suffixes).
    #[arg(long, default_value = "1g")]
    size: String,
    /// Workloads, PATTERN/BLOCK, comma-separated; patterns are fio's (randwrite, randread,
    /// write, read).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "randwrite/4k,randread/4k,write/1m,read/1m"
    )]
    workloads: Vec<String>,
    /// I/Os in flight.
    #[arg(long = "qd", default_value_t = 32)]
    queue_depth: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 10.0)]
    runtime: f64,
    /// First CPU: target i runs on CPU cpu+i (fio's jobs on the same CPUs).
    #[arg(long, default_value_t = 0)]
    cpu: usize,
    /// Targets: threads, one per CPU, each with its own ring and slice of the file.
    #[arg(long, default_value_t = 1)]
    targets: usize,
    /// Also run fio with the same pattern, block, depth, file and CPU, and print ratios.
    #[arg(long = "compare-fio")]
    compare: bool,
    /// Allow writing to a block device (destroys its data).
    #[arg(long)]
    destroy_data: bool,
    /// Through the engine's target store (SCM index + bdev values), one value per I/O at
    /// queue depth 1, like vos_perf; fio then runs at depth 1 too.
    #[arg(long)]
    store: bool,
    /// Directory of the store's SCM files (a tmpfs such as /dev/shm emulates SCM in RAM, as the
    /// `ram` class does); default: the temporary directory.
    #[arg(long)]
    scm_dir: Option<PathBuf>,
    /// With --store: each target's bdev part in RAM (the `malloc` bdev class), so the device is
    /// not the limit; --size is then the RAM used, split over the targets.
    #[arg(long, requires = "store", conflicts_with_all = ["file", "compare"])]
    malloc: bool,
    /// SCM bytes per target for --store (k, m, g suffixes).
    #[arg(long, default_value = "256m")]
    scm_size: String,
    /// Runs per workload; the median is reported, the spread is in the JSON.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn storage_cmd(a: StorageArgs) -> Result<(), String> {
    use daos_bench::storage;
    let size_arg = |s: &str| -> Result<usize, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.strip_suffix('g') {
            Some(n) => n
                .parse::<usize>()
                .map(|v| v << 30)
                .map_err(|_| format!("invalid size {s:?} (use e.g. 4k, 256m, 1g)")),
            None => size(&t).map_err(|_| format!("invalid size {s:?} (use e.g. 4k, 256m, 1g)")),
        }
    };
    let total = size_arg(&a.size).map_err(|e| format!("--size: {e}"))? as u64;
    if total == 0 || !total.is_multiple_of(4096) {
        return Err(format!(
            "--size {}: use a non-zero multiple of 4k (O_DIRECT)",
            a.size
        ));
    }
    let workloads: Vec<storage::Workload> = a
        .workloads
        .iter()
        .map(|w| {
            storage::parse_workload(w, |b| size_arg(b).map_err(|e| format!("--workloads: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if let Some(w) = workloads.iter().find(|w| w.block as u64 > total) {
        return Err(format!(
            "--size {} is smaller than the {} block of {}",
            a.size,
            daos_bench::human(w.block),
            w.rw.name()
        ));
    }
    if a.queue_depth == 0 || a.queue_depth > 1024 {
        return Err(format!("--qd {}: use 1 to 1024", a.queue_depth));
    }
    if !(a.runtime > 0.0 && a.runtime <= 3600.0) {
        return Err(format!(
            "--runtime {}: use more than 0 and at most 3600 seconds",
            a.runtime
        ));
    }
    let runtime = std::time::Duration::from_secs_f64(a.runtime);
    let (path, temp) = match &a.file {
        Some(p) => {
            use std::os::unix::fs::FileTypeExt;
            if let Ok(m) = std::fs::metadata(p)
                && m.file_type().is_block_device()
                && !a.destroy_data
            {
                return Err(format!(
                    "--file {}: is a block device and the benchmark overwrites it; add --destroy-data if that is what you want",
                    p.display()
                ));
            }
            (p.clone(), false)
        }
        None => (
            std::env::temp_dir().join(format!("daos_bench_storage_{}.dat", std::process::id())),
            true,
        ),
    };
    if a.targets == 0 || a.targets > 256 {
        return Err(format!("--targets {}: use 1 to 256", a.targets));
    }
    if a.repeat == 0 || a.repeat > 100 {
        return Err(format!("--repeat {}: use 1 to 100", a.repeat));
    }
    let scm_size = size_arg(&a.scm_size).map_err(|e| format!("--scm-size: {e}"))? as u64;
    if a.store && scm_size < 1 << 20 {
        return Err(format!("--scm-size {}: use at least 1m", a.scm_size));
    }
    let scm_dir = a.scm_dir.clone().unwrap_or_else(std::env::temp_dir);
    if a.store && !scm_dir.is_dir() {
        return Err(format!("--scm-dir {}: not a directory", scm_dir.display()));
    }
    let result = (|| -> Result<Vec<storage::WorkloadResult>, String> {
        eprintln!(
            "daos_bench storage: preparing {} ({} bytes)",
            path.display(),
            total
        );
        if !a.malloc {
            storage::prepare(&path, total)?;
        }
        let mut results = Vec::new();
        for w in &workloads {
            eprintln!(
                "daos_bench storage: {} {} qd {} for {:.1}s",
                w.rw.name(),
                daos_bench::human(w.block),
                a.queue_depth,
                a.runtime
            );
            let mut runs = Vec::with_capacity(a.repeat);
            for _ in 0..a.repeat {
                runs.push(if a.store {
                    daos_bench::store_path::run(
                        &path, total, &scm_dir, scm_size, *w, runtime, a.targets, a.cpu, a.malloc,
                    )?
                } else {
                    storage::run(&path, total, *w, a.queue_depth, runtime, a.targets, a.cpu)?
                });
            }
            let numbers: Vec<storage::Numbers> = runs.iter().map(|r| r.ours.clone()).collect();
            let (spread, median) = daos_bench::stats::repeats(&numbers);
            let mut r = runs.swap_remove(median);
            if a.repeat > 1 {
                r.repeats = Some(spread);
            }
            if a.compare {
                let qd = if a.store { 1 } else { a.queue_depth };
                let f =
                    storage::fio_with(&path, total, *w, qd, runtime, a.cpu, a.targets, a.store)?;
                r.iops_ratio = daos_bench::ratio(r.ours.iops, f.iops);
                r.bandwidth_ratio = daos_bench::ratio(r.ours.mb_per_sec, f.mb_per_sec);
                r.fio = Some(f);
                if matches!(w.rw, storage::Rw::RandWrite | storage::Rw::Write) {
                    // fio wrote its own data: stamp the file again for the reads that follow.
                    storage::prepare(&path, total)?;
                }
            }
            results.push(r);
        }
        Ok(results)
    })();
    if temp {
        let _ = std::fs::remove_file(&path);
    }
    if a.store {
        for i in 0..a.targets {
            let _ = std::fs::remove_file(scm_dir.join(format!("daos_bench_vos-{i}")));
        }
    }
    let results = result?;
    print!("{}", storage::table(&results));
    if let Some(j) = a.json {
        let doc = serde_json::json!({
            "benchmark": "storage",
            "file": path.display().to_string(),
            "size": total,
            "cpu": a.cpu,
            "runtime_secs": a.runtime,
            "run": daos_bench::run_info(),
            "results": results,
        });
        std::fs::write(&j, serde_json::to_string_pretty(&doc).unwrap_or_default())
            .map_err(|e| format!("cannot write {}: {e}", j.display()))?;
    }
    Ok(())
}

fn resolve(hostport: &str) -> Result<(std::net::Ipv4Addr, u16), String> {
    use std::net::ToSocketAddrs;
    let addrs = hostport
        .to_socket_addrs()
        .map_err(|e| format!("--client {hostport:?}: {e} (write HOST:PORT)"))?;
    addrs
        .filter_map(|a| match a {
            std::net::SocketAddr::V4(v4) => Some((*v4.ip(), v4.port())),
            _ => None,
        })
        .next()
        .ok_or_else(|| format!("--client {hostport:?}: no IPv4 address"))
}

fn size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (n, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1024),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        _ => (t.as_str(), 1),
    };
    n.parse::<usize>()
        .map(|v| v * mul)
        .map_err(|_| format!("--sizes: invalid size {s:?} (use e.g. 64, 4k, 1m)"))
}

#[derive(clap::Args)]
struct FabricArgs {
    /// libfabric provider (as fi_info names it).
    #[arg(short = 'p', long, default_value = "tcp;ofi_rxm")]
    provider: String,
    /// Message sizes (comma-separated; k and m suffixes).
    #[arg(long, value_delimiter = ',', default_value = "64,256,1k,4k,64k,1m")]
    sizes: Vec<String>,
    /// Round trips per size and repeat.
    #[arg(short = 'I', long, default_value_t = 1000)]
    iterations: usize,
    /// Seconds for the whole measurement, shared equally by sizes and repeats (instead of a
    /// fixed `-I`).
    #[arg(long, conflicts_with = "iterations")]
    runtime: Option<f64>,
    /// Repeats per size (median, min, max over them).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Also run the real fi_pingpong with the same provider and sizes, and print ratios
    /// (on loopback only: across hosts, run fi_pingpong between the same hosts yourself).
    #[arg(long = "compare-fi-pingpong", conflicts_with_all = ["client", "server"])]
    compare: bool,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Serve clients on this host (`--addr`, `--port`) instead of measuring.
    #[arg(long, conflicts_with = "client")]
    server: bool,
    /// Measure against a server at HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    client: Option<String>,
    /// Server: IPv4 address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    addr: std::net::Ipv4Addr,
    /// Server: port to listen on.
    #[arg(long, default_value_t = 47600)]
    port: u16,
    /// Server: exit after one client.
    #[arg(long)]
    once: bool,
}

fn fabric_cmd(a: FabricArgs) -> Result<(), String> {
    let FabricArgs {
        provider,
        sizes,
        iterations,
        runtime,
        repeat,
        compare,
        json,
        server,
        client,
        addr,
        port,
        once,
    } = a;
    let runtime = match runtime {
        Some(r) if r > 0.0 && r <= 3600.0 => Some(std::time::Duration::from_secs_f64(r)),
        Some(r) => {
            return Err(format!(
                "--runtime {r}: use more than 0 and at most 3600 seconds"
            ));
        }
        None => None,
    };
    let sizes: Vec<usize> = sizes.iter().map(|s| size(s)).collect::<Result<_, _>>()?;
    if iterations == 0 || repeat == 0 {
        return Err("--iterations and --repeat must be at least 1".into());
    }
    if server {
        println!(
            "daos_bench fabric server listening on {addr}:{port} ({provider}); stop with Ctrl-C"
        );
        return fabric::serve(
            &provider,
            addr,
            port,
            fabric::SERVER_MAX_MESSAGE,
            once,
            None,
        );
    }
    let mut results = match &client {
        Some(hp) => {
            let (ip, p) = resolve(hp)?;
            if let Some(big) = sizes.iter().find(|&&s| s > fabric::SERVER_MAX_MESSAGE) {
                return Err(format!(
                    "--sizes: {big} bytes is more than a fabric server takes ({} bytes); use 1m or less",
                    fabric::SERVER_MAX_MESSAGE
                ));
            }
            fabric::client(&provider, ip, p, &sizes, iterations, repeat, runtime)?
        }
        None => fabric::run(&provider, &sizes, iterations, repeat, runtime)?,
    };
    if compare {
        for r in &mut results {
            let reference = fabric::fi_pingpong(&provider, r.bytes, r.iterations)?;
            r.latency_ratio = daos_bench::ratio(r.usec_per_xfer.median, reference.usec_per_xfer);
            r.bandwidth_ratio = daos_bench::ratio(r.mb_per_sec, reference.mb_per_sec);
            r.reference = Some(reference);
        }
    }
    print!("{}", fabric::table(&results));
    if let Some(path) = json {
        let doc = serde_json::json!({"benchmark": "fabric", "provider": provider, "run": daos_bench::run_info(), "results": results});
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    daos_bench::alloc_count::CountingAlloc::mark_installed();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Fabric(a) => fabric_cmd(a),
        Cmd::Storage(a) => storage_cmd(a),
        Cmd::Io(a) => io_cmd(a),
        Cmd::Rebuild(a) => rebuild_cmd(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: daos_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
