//! Pool shards of one engine: for each pool, every target gets an SCM file on the SCM mount
//! (`pools/<uuid>/vos-<target>`, mapped with libpmem) and a region of the engine's bdevs.
//!
//! On disk: a pool is created in `pools/<uuid>.tmp` and renamed to `pools/<uuid>` once its
//! files and `shard.json` are durable, so a crash mid-create leaves only a `.tmp` directory,
//! removed at the next start. The bdev allocation map is not stored separately: it is derived
//! from the `shard.json` of every pool at start, so it cannot disagree with them. Devices come
//! from the SPDK config daos_server wrote (`daos_nvme.conf`): AIO files and block devices, and
//! malloc RAM disks.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use daos_hw::pmemfile::PmemFile;

use crate::bdev::{ALIGN, UringBdev};
use crate::store::{Media, Store};

/// A target's store in a pool: the SCM file plus its bdev part.
pub type TargetStore = Store<PmemFile, BdevPart>;

/// A target's region of a bdev file or block device, written through io_uring with `O_DIRECT`
/// and `RWF_DSYNC`: a write is durable when it returns, in one `io_uring_enter`.
pub struct UringRegion {
    dev: std::cell::RefCell<UringBdev>,
    base: u64,
    len: u64,
}

/// Largest single I/O of a region (values are at most this).
pub const REGION_IO: usize = 1 << 20;

impl UringRegion {
    pub fn open(path: &Path, base: u64, len: u64) -> io::Result<UringRegion> {
        let dev = match UringBdev::open_with(path, REGION_IO, 1, 0, false, true) {
            Ok(d) => d,
            // A file system without O_DIRECT (tmpfs on older kernels): RWF_DSYNC alone.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                UringBdev::open_with(path, REGION_IO, 1, 0, false, false)?
            }
            Err(e) => return Err(e),
        };
        if !base.is_multiple_of(ALIGN as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bdev region at {base} is not {ALIGN}-byte aligned"),
            ));
        }
        Ok(UringRegion {
            dev: std::cell::RefCell::new(dev),
            base,
            len,
        })
    }

    fn check(&self, offset: u64, len: usize) -> io::Result<()> {
        let end = offset + (len as u64).div_ceil(ALIGN as u64) * ALIGN as u64;
        if end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "I/O at {offset}+{len} beyond the {}-byte bdev region",
                    self.len
                ),
            ));
        }
        Ok(())
    }
}

impl Media for UringRegion {
    fn capacity(&self) -> u64 {
        self.len
    }
    fn read_with<R>(&self, offset: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        self.check(offset, len)?;
        if !offset.is_multiple_of(ALIGN as u64) {
            let mut v = vec![0u8; len];
            self.read(offset, &mut v)?;
            return Ok(f(&v));
        }
        self.dev.borrow_mut().read_with(self.base + offset, len, f)
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = offset / ALIGN as u64 * ALIGN as u64;
        let skip = (offset - start) as usize;
        self.check(start, skip + buf.len())?;
        let mut dev = self.dev.borrow_mut();
        if skip == 0 {
            return dev.read_exact_at(self.base + start, buf);
        }
        let mut tmp = vec![0u8; skip + buf.len()];
        dev.read_exact_at(self.base + start, &mut tmp)?;
        buf.copy_from_slice(&tmp[skip..]);
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !offset.is_multiple_of(ALIGN as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bdev write at {offset} is not {ALIGN}-byte aligned"),
            ));
        }
        self.check(offset, data.len())?;
        self.dev
            .borrow_mut()
            .write_durable(self.base + offset, data)
    }
    fn persist(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        // Writes are durable when they return (RWF_DSYNC).
        Ok(())
    }
}

/// The bdev part of a target's store.
pub enum BdevPart {
    /// A region of an AIO file or block device.
    File(Box<UringRegion>),
    /// A malloc bdev: RAM, lost at restart as in DAOS.
    Ram(Vec<u8>),
    /// The pool has no NVMe tier: values stay on SCM or are refused.
    None,
}

impl Media for BdevPart {
    fn read_with<R>(&self, offset: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        match self {
            BdevPart::File(r) => r.read_with(offset, len, f),
            BdevPart::Ram(v) => {
                let s = v
                    .get(offset as usize..offset as usize + len)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                Ok(f(s))
            }
            BdevPart::None => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        }
    }
    fn capacity(&self) -> u64 {
        match self {
            BdevPart::File(f) => f.capacity(),
            BdevPart::Ram(v) => v.len() as u64,
            BdevPart::None => 0,
        }
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match self {
            BdevPart::File(f) => f.read(offset, buf),
            BdevPart::Ram(v) => {
                let s = v
                    .get(offset as usize..offset as usize + buf.len())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(s);
                Ok(())
            }
            BdevPart::None => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        }
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        match self {
            BdevPart::File(f) => f.write(offset, data),
            BdevPart::Ram(v) => {
                let d = v
                    .get_mut(offset as usize..offset as usize + data.len())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::WriteZero))?;
                d.copy_from_slice(data);
                Ok(())
            }
            BdevPart::None => Err(io::Error::from(io::ErrorKind::WriteZero)),
        }
    }
    fn persist(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match self {
            BdevPart::File(f) => f.persist(offset, len),
            _ => Ok(()),
        }
    }
}

/// DAOS error numbers (`DaosResp.status`).
pub use daos_wire::der;

/// Regions are aligned to this (O_DIRECT and tidy layouts).
pub const REGION_ALIGN: u64 = 1 << 20;
/// Smallest SCM file per target.
pub const MIN_SCM_PER_TARGET: u64 = 4096;

/// A pool operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("invalid pool UUID {0:?}")]
    BadUuid(String),
    #[error("pool {0} already exists with other sizes")]
    Exists(String),
    #[error("pool {0} does not exist on this engine")]
    NotFound(String),
    #[error("pool {0} was destroyed (its create was given up); a create needs a new UUID")]
    Destroyed(String),
    #[error("not enough {tier} space: {wanted} bytes wanted, {free} free")]
    NoSpace {
        tier: &'static str,
        wanted: u64,
        free: u64,
    },
    #[error("{0}")]
    Unsupported(String),
    /// The shard's files are gone or replaced: it serves nothing.
    #[error("{0}")]
    Damaged(String),
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl PoolError {
    /// The DER code this error travels as.
    pub fn der(&self) -> i32 {
        match self {
            PoolError::BadUuid(_) => der::INVAL,
            PoolError::Exists(_) => der::EXIST,
            PoolError::NotFound(_) | PoolError::Destroyed(_) => der::NONEXIST,
            PoolError::NoSpace { .. } => der::NOSPACE,
            PoolError::Unsupported(_) => der::NOSYS,
            PoolError::Io { .. } | PoolError::Damaged(_) => der::IO,
        }
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PoolError {
    let path = path.to_path_buf();
    move |source| PoolError::Io { what, path, source }
}

/// True for a canonical UUID (`8-4-4-4-12` hex): it becomes a directory name.
pub fn valid_uuid(u: &str) -> bool {
    let parts: Vec<&str> = u.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One bdev of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub capacity: u64,
    /// The file or block device behind it; `None` for a malloc (RAM) bdev.
    pub path: Option<PathBuf>,
}

/// A target's part of a bdev.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub target: u32,
    pub device: String,
    pub offset: u64,
    pub len: u64,
}

/// What `shard.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub uuid: String,
    pub targets: u32,
    pub scm_per_target: u64,
    pub nvme_per_target: u64,
    pub regions: Vec<Region>,
}

/// Space of one target in one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetSpace {
    pub target: u32,
    pub scm_total: u64,
    pub scm_free: u64,
    pub nvme_total: u64,
    pub nvme_free: u64,
}

/// Devices named in `daos_nvme.conf`.
pub fn devices_from_conf(path: &Path) -> Result<Vec<Device>, PoolError> {
    let text = fs::read_to_string(path).map_err(io_err("cannot read", path))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| PoolError::Io {
        what: "not JSON",
        path: path.into(),
        source: io::Error::other(e.to_string()),
    })?;
    let mut out = Vec::new();
    let subsystems = v["subsystems"].as_array().cloned().unwrap_or_default();
    for sub in subsystems.iter().filter(|s| s["subsystem"] == "bdev") {
        for entry in sub["config"].as_array().cloned().unwrap_or_default() {
            let p = &entry["params"];
            match entry["method"].as_str() {
                Some("bdev_aio_create") => {
                    let name = p["filename"].as_str().unwrap_or_default().to_string();
                    let mut f = fs::File::open(&name)
                        .map_err(io_err("cannot open bdev", Path::new(&name)))?;
                    let capacity = f
                        .seek(SeekFrom::End(0))
                        .map_err(io_err("cannot size bdev", Path::new(&name)))?;
                    out.push(Device {
                        path: Some(PathBuf::from(&name)),
                        name,
                        capacity,
                    });
                }
                Some("bdev_malloc_create") => {
                    let blocks = p["num_blocks"].as_u64().unwrap_or(0);
                    let bs = p["block_size"].as_u64().unwrap_or(4096);
                    out.push(Device {
                        name: p["name"].as_str().unwrap_or("malloc").to_string(),
                        capacity: blocks * bs,
                        path: None,
                    });
                }
                Some("bdev_nvme_attach_controller") => {
                    return Err(PoolError::Unsupported(
                        "NVMe bdevs need the SPDK build (feature `spdk`), which this engine is not"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(REGION_ALIGN) * REGION_ALIGN
}

/// The pools of one engine.
/// The marker of a pool whose targets check handles (see [`PoolStore::arm_handles`]).
const ARMED: &str = "handles.armed";

pub struct PoolStore {
    dir: PathBuf,
    scm_capacity: u64,
    targets: u32,
    devices: Vec<Device>,
    pools: Mutex<BTreeMap<String, ShardMeta>>,
    /// Pools destroyed since start: a create of one of them that arrives late (its caller
    /// gave up and destroyed it) is refused. Taken with `pools` held.
    destroyed: Mutex<std::collections::HashSet<String>>,
    /// The pool map version of each pool, as the management service last pushed it (0 until
    /// then); targets keep a handle to their pools' and read it per request (one atomic
    /// load). Entries exist only for pools this engine holds.
    versions: Mutex<BTreeMap<String, Arc<AtomicU32>>>,
    /// Per pool, the handles its targets accept (pushed by the pool service).
    handles: Mutex<BTreeMap<String, Arc<crate::handles::HandleTable>>>,
}

impl PoolStore {
    /// Opens the pools under `scm_mount`: removes unfinished creates, reads every shard.
    pub fn open(
        scm_mount: &Path,
        targets: u32,
        nvme_conf: Option<&Path>,
    ) -> Result<PoolStore, PoolError> {
        let dir = scm_mount.join("pools");
        daos_hw::private::create_dir(&dir).map_err(io_err("cannot create", &dir))?;
        let devices = match nvme_conf.filter(|p| p.exists()) {
            Some(p) => devices_from_conf(p)?,
            None => Vec::new(),
        };
        let scm_capacity = {
            let st = nix::sys::statvfs::statvfs(scm_mount).map_err(|e| PoolError::Io {
                what: "cannot statvfs",
                path: scm_mount.into(),
                source: e.into(),
            })?;
            st.blocks() * st.fragment_size()
        };
        let mut pools = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(io_err("cannot list", &dir))? {
            let path = entry.map_err(io_err("cannot list", &dir))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".tmp") || name.ends_with(".destroying") {
                let _ = fs::remove_dir_all(&path);
                continue;
            }
            let meta_path = path.join("shard.json");
            let text = fs::read_to_string(&meta_path).map_err(io_err("cannot read", &meta_path))?;
            let meta: ShardMeta = serde_json::from_str(&text).map_err(|e| PoolError::Io {
                what: "corrupt shard metadata",
                path: meta_path.clone(),
                source: io::Error::other(e.to_string()),
            })?;
            pools.insert(meta.uuid.clone(), meta);
        }
        Ok(PoolStore {
            dir,
            scm_capacity,
            targets,
            devices,
            pools: Mutex::new(pools),
            destroyed: Mutex::new(std::collections::HashSet::new()),
            versions: Mutex::new(BTreeMap::new()),
            handles: Mutex::new(BTreeMap::new()),
        })
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<AtomicU32>>> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The map version cell of pool `uuid`, if this engine holds the pool.
    pub fn map_version(&self, uuid: &str) -> Option<Arc<AtomicU32>> {
        if !self.lock().contains_key(uuid) {
            return None;
        }
        Some(self.versions().entry(uuid.to_string()).or_default().clone())
    }

    /// The pool whose service connected pool handle `cookie` (a DAOS client's handle,
    /// pushed here by the pool service), if any pool of this engine has it.
    pub fn pool_of_handle(&self, cookie: u64) -> Option<String> {
        let tables = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        tables
            .iter()
            .find(|(_, t)| {
                t.lookup(cookie)
                    .is_some_and(|(_, parent, tag)| parent == 0 && tag == 0)
            })
            .map(|(uuid, _)| uuid.clone())
    }

    /// The handle table of pool `uuid`, if this engine holds the pool. A pool whose checks
    /// were turned on before (a marker beside its shards) starts checking at once after a
    /// restart, with no handles until the pool service pushes them again.
    pub fn handles(&self, uuid: &str) -> Option<Arc<crate::handles::HandleTable>> {
        if !self.lock().contains_key(uuid) {
            return None;
        }
        let mut tables = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let t = tables.entry(uuid.to_string()).or_insert_with(|| {
            let t = crate::handles::HandleTable::default();
            if self.dir.join(uuid).join(ARMED).exists() {
                t.arm();
            }
            Arc::new(t)
        });
        Some(t.clone())
    }

    /// Turns pool `uuid`'s handle checks on, for good (kept across restarts).
    pub fn arm_handles(&self, uuid: &str) -> Result<(), PoolError> {
        let Some(t) = self.handles(uuid) else {
            return Ok(());
        };
        if !t.armed() {
            let path = self.dir.join(uuid).join(ARMED);
            // Private, as every file of a pool's (0600).
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(b"pool handles are checked\n"))
                .map_err(io_err("cannot write the handle-check marker", &path))?;
            t.arm();
        }
        Ok(())
    }

    /// Raises pool `uuid`'s map version to `version` (versions never go back); returns the
    /// version now in force, or `None` when this engine does not hold the pool.
    pub fn set_map_version(&self, uuid: &str, version: u32) -> Option<u32> {
        let cell = self.map_version(uuid)?;
        let before = cell.fetch_max(version, Ordering::AcqRel);
        Some(before.max(version))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ShardMeta>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// UUIDs of the pools on this engine.
    pub fn list(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// SCM and NVMe bytes still free on this engine.
    pub fn free(&self) -> (u64, u64) {
        self.free_in(&self.lock())
    }

    /// Free space given the pools (for callers that already hold the lock).
    fn free_in(&self, pools: &BTreeMap<String, ShardMeta>) -> (u64, u64) {
        let scm_used: u64 = pools
            .values()
            .map(|m| m.scm_per_target * u64::from(m.targets))
            .sum();
        let nvme_used: u64 = pools.values().flat_map(|m| &m.regions).map(|r| r.len).sum();
        let nvme_total: u64 = self.devices.iter().map(|d| d.capacity).sum();
        (
            self.scm_capacity.saturating_sub(scm_used),
            nvme_total.saturating_sub(nvme_used),
        )
    }

    /// Makes the filesystem hold the blocks of the regions on file bdevs (they are sparse
    /// files): space a pool reports free is then space it can write, and a filesystem
    /// without room refuses the create instead of later writes.
    fn reserve(&self, regions: &[Region]) -> Result<(), PoolError> {
        for r in regions {
            let Some(path) = self
                .devices
                .iter()
                .find(|d| d.name == r.device)
                .and_then(|d| d.path.as_ref())
            else {
                continue;
            };
            let f = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err("cannot open bdev", path))?;
            if !f.metadata().is_ok_and(|m| m.is_file()) {
                continue; // a block device holds its blocks already
            }
            let (offset, len) = (
                i64::try_from(r.offset).unwrap_or(i64::MAX),
                i64::try_from(r.len).unwrap_or(i64::MAX),
            );
            match nix::fcntl::posix_fallocate(&f, offset, len) {
                Ok(()) => {}
                Err(nix::errno::Errno::ENOSPC) => {
                    let free = nix::sys::statvfs::fstatvfs(&f)
                        .map(|st| st.blocks_available() * st.fragment_size())
                        .unwrap_or(0);
                    return Err(PoolError::NoSpace {
                        tier: "NVMe (the filesystem of the bdev file)",
                        wanted: r.len,
                        free,
                    });
                }
                // Filesystems without fallocate: the file stays sparse.
                Err(nix::errno::Errno::EOPNOTSUPP) => {}
                Err(e) => {
                    return Err(PoolError::Io {
                        what: "cannot reserve the pool's region of",
                        path: path.clone(),
                        source: e.into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Gives the blocks of a destroyed pool's regions back to the filesystem (best effort).
    fn release(&self, regions: &[Region]) {
        use nix::fcntl::FallocateFlags;
        for r in regions {
            let file = self
                .devices
                .iter()
                .find(|d| d.name == r.device)
                .and_then(|d| d.path.as_ref())
                .and_then(|p| fs::OpenOptions::new().write(true).open(p).ok())
                .filter(|f| f.metadata().is_ok_and(|m| m.is_file()));
            if let Some(f) = file {
                let _ = nix::fcntl::fallocate(
                    &f,
                    FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
                    i64::try_from(r.offset).unwrap_or(i64::MAX),
                    i64::try_from(r.len).unwrap_or(i64::MAX),
                );
            }
        }
    }

    /// First-fit regions for every target, round-robin over devices.
    fn allocate(
        &self,
        pools: &BTreeMap<String, ShardMeta>,
        per_target: u64,
    ) -> Result<Vec<Region>, PoolError> {
        if per_target == 0 {
            return Ok(Vec::new());
        }
        if self.devices.is_empty() {
            return Err(PoolError::NoSpace {
                tier: "NVMe",
                wanted: per_target * u64::from(self.targets),
                free: 0,
            });
        }
        let len = align_up(per_target);
        let mut used: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        for r in pools.values().flat_map(|m| &m.regions) {
            used.entry(r.device.as_str())
                .or_default()
                .push((r.offset, r.len));
        }
        let mut taken: Vec<Region> = Vec::new();
        for t in 0..self.targets {
            let mut placed = None;
            for k in 0..self.devices.len() {
                let dev = &self.devices[(t as usize + k) % self.devices.len()];
                let mut spans: Vec<(u64, u64)> =
                    used.get(dev.name.as_str()).cloned().unwrap_or_default();
                spans.extend(
                    taken
                        .iter()
                        .filter(|r| r.device == dev.name)
                        .map(|r| (r.offset, r.len)),
                );
                spans.sort_unstable();
                let mut cursor = 0u64;
                for (off, l) in spans {
                    if off >= cursor + len {
                        break;
                    }
                    cursor = cursor.max(align_up(off + l));
                }
                if cursor + len <= dev.capacity {
                    placed = Some(Region {
                        target: t,
                        device: dev.name.clone(),
                        offset: cursor,
                        len,
                    });
                    break;
                }
            }
            match placed {
                Some(r) => taken.push(r),
                None => {
                    let (_, free) = self.free_in(pools);
                    return Err(PoolError::NoSpace {
                        tier: "NVMe",
                        wanted: len * u64::from(self.targets),
                        free,
                    });
                }
            }
        }
        Ok(taken)
    }

    /// Creates the pool's shards; repeating an identical create succeeds (retries are safe).
    pub fn create(&self, uuid: &str, scm_bytes: u64, nvme_bytes: u64) -> Result<(), PoolError> {
        if !valid_uuid(uuid) {
            return Err(PoolError::BadUuid(uuid.into()));
        }
        let targets = u64::from(self.targets.max(1));
        let scm_per_target = (scm_bytes / targets) / 4096 * 4096;
        let nvme_per_target = nvme_bytes / targets;
        let mut pools = self.lock();
        if self
            .destroyed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(uuid)
        {
            return Err(PoolError::Destroyed(uuid.into()));
        }
        if scm_per_target < MIN_SCM_PER_TARGET {
            return Err(PoolError::NoSpace {
                tier: "SCM",
                wanted: scm_bytes,
                free: self.free_in(&pools).0,
            });
        }
        if let Some(m) = pools.get(uuid) {
            return if m.scm_per_target == scm_per_target && m.nvme_per_target == nvme_per_target {
                Ok(())
            } else {
                Err(PoolError::Exists(uuid.into()))
            };
        }
        let scm_used: u64 = pools
            .values()
            .map(|m| m.scm_per_target * u64::from(m.targets))
            .sum();
        let scm_free = self.scm_capacity.saturating_sub(scm_used);
        if scm_per_target * targets > scm_free {
            return Err(PoolError::NoSpace {
                tier: "SCM",
                wanted: scm_per_target * targets,
                free: scm_free,
            });
        }
        let regions = self.allocate(&pools, nvme_per_target)?;
        self.reserve(&regions)?;
        let meta = ShardMeta {
            uuid: uuid.into(),
            targets: self.targets,
            scm_per_target,
            nvme_per_target,
            regions,
        };
        let tmp = self.dir.join(format!("{uuid}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        daos_hw::private::create_dir(&tmp).map_err(io_err("cannot create", &tmp))?;
        let result = (|| {
            for t in 0..self.targets {
                let path = tmp.join(format!("vos-{t}"));
                let f = PmemFile::open(&path, scm_per_target as usize)
                    .map_err(io_err("cannot create SCM file", &path))?;
                f.persist(0, f.len().min(4096))
                    .map_err(io_err("cannot persist SCM file", &path))?;
            }
            let meta_path = tmp.join("shard.json");
            let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
            let f = daos_hw::private::open(&meta_path, true)
                .map_err(io_err("cannot write", &meta_path))?;
            use std::io::Write as _;
            (&f).write_all(text.as_bytes())
                .map_err(io_err("cannot write", &meta_path))?;
            f.sync_all().map_err(io_err("cannot sync", &meta_path))?;
            let fin = self.dir.join(uuid);
            fs::rename(&tmp, &fin).map_err(io_err("cannot commit", &fin))?;
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("cannot sync", &self.dir))
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        pools.insert(uuid.into(), meta);
        Ok(())
    }

    /// Removes the pool's shards and frees their space.
    pub fn destroy(&self, uuid: &str) -> Result<(), PoolError> {
        if !valid_uuid(uuid) {
            return Err(PoolError::BadUuid(uuid.into()));
        }
        let mut pools = self.lock();
        self.destroyed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid.to_string());
        if !pools.contains_key(uuid) {
            return Err(PoolError::NotFound(uuid.into()));
        }
        let path = self.dir.join(uuid);
        let doomed = self.dir.join(format!("{uuid}.destroying"));
        fs::rename(&path, &doomed).map_err(io_err("cannot remove", &path))?;
        if let Some(meta) = pools.remove(uuid) {
            self.release(&meta.regions);
        }
        self.versions().remove(uuid);
        let _ = fs::remove_dir_all(&doomed);
        Ok(())
    }

    /// Opens target `target`'s store of pool `uuid` (a [`TargetStore`]), replaying its log.
    pub fn open_target(&self, uuid: &str, target: u32) -> Result<TargetStore, PoolError> {
        let meta = self
            .lock()
            .get(uuid)
            .cloned()
            .ok_or_else(|| PoolError::NotFound(uuid.into()))?;
        let path = self.dir.join(uuid).join(format!("vos-{target}"));
        if !path.exists() {
            return Err(PoolError::Damaged(format!(
                "pool {uuid} target {target}: its SCM file {} is missing (removed outside DAOS); \
                 the shard's data is lost; destroy the pool (dmg pool destroy --force)",
                path.display()
            )));
        }
        let scm = PmemFile::open(&path, meta.scm_per_target as usize)
            .map_err(io_err("cannot open SCM file", &path))?;
        let bdev = match meta.regions.iter().find(|r| r.target == target) {
            None => BdevPart::None,
            Some(r) => match self.devices.iter().find(|d| d.name == r.device) {
                Some(Device { path: Some(p), .. }) => BdevPart::File(Box::new(
                    UringRegion::open(p, r.offset, r.len).map_err(io_err("cannot open bdev", p))?,
                )),
                Some(Device { path: None, .. }) => BdevPart::Ram(vec![0u8; r.len as usize]),
                None => {
                    return Err(PoolError::Unsupported(format!(
                        "pool {uuid} target {target} has its bdev region on {:?}, which is not in \
                         this engine's bdev list; restore the device or the config",
                        r.device
                    )));
                }
            },
        };
        Store::open(scm, bdev).map_err(|e| PoolError::Io {
            what: "cannot recover the target store",
            path,
            source: io::Error::other(e.to_string()),
        })
    }

    /// Space of each target of the pool.
    pub fn query(&self, uuid: &str) -> Result<Vec<TargetSpace>, PoolError> {
        let pools = self.lock();
        let m = pools
            .get(uuid)
            .ok_or_else(|| PoolError::NotFound(uuid.into()))?;
        // The targets fill in what their stores use (`Control::account`).
        Ok((0..m.targets)
            .map(|t| TargetSpace {
                target: t,
                scm_total: m.scm_per_target,
                scm_free: m.scm_per_target,
                nvme_total: m.nvme_per_target,
                nvme_free: m.nvme_per_target,
            })
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const U1: &str = "11111111-2222-4333-8444-555555555555";
    const U2: &str = "21111111-2222-4333-8444-555555555555";

    pub(crate) fn store(dir: &Path, targets: u32, bdev_mb: u64) -> PoolStore {
        let bdev = dir.join("bdev0");
        fs::File::create(&bdev)
            .unwrap()
            .set_len(bdev_mb << 20)
            .unwrap();
        let conf = dir.join("daos_nvme.conf");
        fs::write(&conf, format!(r#"{{"subsystems":[{{"subsystem":"bdev","config":[{{"method":"bdev_aio_create","params":{{"name":"AIO_0","filename":"{}","block_size":4096}}}}]}}]}}"#, bdev.display())).unwrap();
        let scm = dir.join("scm");
        fs::create_dir_all(&scm).unwrap();
        PoolStore::open(&scm, targets, Some(&conf)).unwrap()
    }

    #[test]
    fn uuids_are_checked_because_they_become_paths() {
        assert!(valid_uuid(U1));
        assert!(!valid_uuid("../../etc"));
        assert!(!valid_uuid("11111111-2222-4333-8444-55555555555"));
    }

    #[test]
    fn create_query_destroy_and_space() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 2, 64);
        s.create(U1, 32 << 20, 16 << 20).unwrap();
        assert!(dir.path().join("scm/pools").join(U1).join("vos-1").exists());
        let q = s.query(U1).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].scm_total, 16 << 20);
        assert_eq!(q[1].nvme_total, 8 << 20);
        s.create(U1, 32 << 20, 16 << 20)
            .expect("an identical create is idempotent");
        assert!(matches!(
            s.create(U1, 64 << 20, 16 << 20),
            Err(PoolError::Exists(_))
        ));
        // The bdev has 64 MiB; 2 x 8 MiB are taken, so 64 MiB more does not fit.
        assert!(matches!(
            s.create(U2, 32 << 20, 64 << 20),
            Err(PoolError::NoSpace { tier: "NVMe", .. })
        ));
        s.destroy(U1).unwrap();
        assert!(!dir.path().join("scm/pools").join(U1).exists());
        s.create(U2, 32 << 20, 48 << 20)
            .expect("destroy freed the space");
        assert!(matches!(s.destroy(U1), Err(PoolError::NotFound(_))));
    }

    #[test]
    fn map_versions_only_move_forward_and_only_for_held_pools() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 1, 64);
        assert_eq!(s.set_map_version(U1, 3), None, "not held: ignored");
        assert!(s.map_version(U1).is_none());
        s.create(U1, 32 << 20, 0).unwrap();
        let cell = s.map_version(U1).expect("held");
        assert_eq!(cell.load(Ordering::Acquire), 0, "not known yet");
        assert_eq!(s.set_map_version(U1, 5), Some(5));
        assert_eq!(
            s.set_map_version(U1, 4),
            Some(5),
            "an older push changes nothing"
        );
        assert_eq!(
            cell.load(Ordering::Acquire),
            5,
            "targets see it through their handle"
        );
        s.destroy(U1).unwrap();
        assert!(s.map_version(U1).is_none());
        s.create(U1, 32 << 20, 0).unwrap_err(); // destroyed in this run: refused
    }

    #[test]
    fn regions_never_overlap_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 4, 256);
        let uuids: Vec<String> = (0..5)
            .map(|i| format!("{i}1111111-2222-4333-8444-555555555555"))
            .collect();
        for u in &uuids {
            s.create(u, 16 << 20, 40 << 20).unwrap();
        }
        s.destroy(&uuids[2]).unwrap();
        drop(s);
        fs::create_dir_all(dir.path().join("scm/pools/x.tmp")).unwrap();
        let conf = dir.path().join("daos_nvme.conf");
        let s = PoolStore::open(&dir.path().join("scm"), 4, Some(&conf)).unwrap();
        assert_eq!(
            s.list().len(),
            4,
            "pools survive, the unfinished create is gone"
        );
        assert!(!dir.path().join("scm/pools/x.tmp").exists());
        s.create("a1111111-2222-4333-8444-555555555555", 16 << 20, 40 << 20)
            .unwrap();
        let mut all: Vec<Region> = s.lock().values().flat_map(|m| m.regions.clone()).collect();
        all.sort_by_key(|r| r.offset);
        for w in all.windows(2) {
            assert!(w[0].offset + w[0].len <= w[1].offset, "overlap: {w:?}");
        }
        assert!(all.iter().all(|r| r.offset + r.len <= 256 << 20));
    }
}
