//! Per-engine storage: the superblock that says "formatted", and format itself.
//!
//! SCM `ram`: tmpfs of `scm_size` GiB mounted at `scm_mount` when running as root; otherwise the
//! directory itself stands in for it and the log says so. `dcpm` needs a pmem device and says
//! what is missing. Bdevs: `file` creates or truncates each file to `bdev_size` GB (sparse),
//! `kdev` checks for a block device, `malloc` is RAM inside the engine, `nvme` needs SPDK (the
//! `spdk` cargo feature, not built here). Format writes `daos_nvme.conf` (SPDK JSON) and then the
//! superblock, last, so a format interrupted half-way is never mistaken for a finished one.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use daos_config::engine_env::NVME_CONF_NAME;
use daos_config::{Engine, Server, Tier, TierClass};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// File name of the superblock in the SCM mount.
pub const SUPERBLOCK_NAME: &str = "superblock";
/// Superblock format version (DAOS HEAD: 1).
pub const SUPERBLOCK_VERSION: u32 = 1;

/// What the control plane records about a formatted engine (DAOS_FACTS §5.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Superblock {
    pub version: u32,
    pub uuid: String,
    pub system: String,
    pub rank: u32,
    #[serde(default)]
    pub uri: String,
    pub validrank: bool,
    #[serde(default)]
    pub hostfaultdomain: String,
    #[serde(default)]
    pub incarnation: u64,
}

/// A storage problem: what, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("engine {engine}: no SCM tier in the config")]
    NoScm { engine: usize },
    #[error("engine {engine}: {what} {}: {source}", .path.display())]
    Io {
        engine: usize,
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("engine {engine}: superblock {} is unreadable: {reason}; fix: reformat with `dmg storage format --force` (or start with --auto-format after removing it)", .path.display())]
    BadSuperblock {
        engine: usize,
        path: PathBuf,
        reason: String,
    },
    #[error("engine {engine}: cannot mount tmpfs at {}: {source}", .path.display())]
    Mount {
        engine: usize,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("engine {engine}: {message}")]
    Unsupported { engine: usize, message: String },
}

impl StorageError {
    fn io(
        engine: usize,
        what: &'static str,
        path: &Path,
    ) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io {
            engine,
            what,
            path,
            source,
        }
    }
}

/// A random (version 4) UUID from the kernel's generator.
pub fn new_uuid() -> io::Result<String> {
    daos_wire::new_uuid_text()
}

fn scm_tier(e: &Engine, idx: usize) -> Result<&Tier, StorageError> {
    e.scm()
        .filter(|t| t.scm_mount.is_some())
        .ok_or(StorageError::NoScm { engine: idx })
}

fn mount_of(t: &Tier) -> &Path {
    t.scm_mount.as_deref().unwrap_or(Path::new("/"))
}

/// Where an engine's superblock lives.
pub fn superblock_path(e: &Engine) -> Option<PathBuf> {
    e.scm_mount().map(|m| m.join(SUPERBLOCK_NAME))
}

/// The superblock of engine `idx`: `Ok(None)` when the engine needs a format.
pub fn read_superblock(e: &Engine, idx: usize) -> Result<Option<Superblock>, StorageError> {
    let path = superblock_path(e).ok_or(StorageError::NoScm { engine: idx })?;
    let bytes = match fs::read(&path) {
        Ok(t) => t,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StorageError::Io {
                engine: idx,
                what: "cannot read superblock",
                path,
                source,
            });
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| StorageError::BadSuperblock {
        engine: idx,
        path: path.clone(),
        reason: "it is not text (binary garbage)".into(),
    })?;
    let sb: Superblock =
        serde_saphyr::from_str(&text).map_err(|e| StorageError::BadSuperblock {
            engine: idx,
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if sb.version != SUPERBLOCK_VERSION {
        return Err(StorageError::BadSuperblock {
            engine: idx,
            path,
            reason: format!("version {} (expected {SUPERBLOCK_VERSION})", sb.version),
        });
    }
    Ok(Some(sb))
}

/// Writes the superblock atomically (temp file + rename).
pub fn write_superblock(e: &Engine, idx: usize, sb: &Superblock) -> Result<(), StorageError> {
    let path = superblock_path(e).ok_or(StorageError::NoScm { engine: idx })?;
    let tmp = path.with_extension("tmp");
    let text = serde_saphyr::to_string(sb).map_err(|err| StorageError::Unsupported {
        engine: idx,
        message: format!("cannot encode superblock: {err}"),
    })?;
    daos_hw::private::write(&tmp, text).map_err(StorageError::io(
        idx,
        "cannot write superblock",
        &tmp,
    ))?;
    fs::rename(&tmp, &path).map_err(StorageError::io(idx, "cannot write superblock", &path))
}

/// True when a file system is mounted exactly at `path`.
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .any(|m| Path::new(&m.replace("\\040", " ")) == target)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// What format did, for logs and (later) `dmg storage format` results.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatResult {
    pub scm_mount: PathBuf,
    /// True when a tmpfs was mounted; false when a directory stands in for SCM.
    pub mounted: bool,
    pub bdevs: Vec<String>,
    pub superblock: Superblock,
}

/// Formats engine `idx`: SCM, then bdevs, then `daos_nvme.conf`, then the superblock.
/// Refuses formatted storage unless `force`.
pub fn format(s: &Server, idx: usize, force: bool) -> Result<FormatResult, StorageError> {
    let e = &s.engines[idx];
    let scm = scm_tier(e, idx)?;
    let mount = mount_of(scm).to_path_buf();
    if !force {
        let refuse = |message: String| {
            Err(StorageError::Unsupported {
                engine: idx,
                message,
            })
        };
        match read_superblock(e, idx) {
            Ok(Some(_)) => {
                return refuse(format!(
                    "storage at {} is already formatted; use --force to reformat",
                    mount.display()
                ));
            }
            Err(StorageError::BadSuperblock { path, reason, .. }) => {
                return refuse(format!(
                    "the superblock {} is damaged ({reason}); a format would erase the pools \
                     on {}; restore the superblock, or reformat with --force to erase them",
                    path.display(),
                    mount.display()
                ));
            }
            Err(other) => return Err(other),
            Ok(None) => {}
        }
        // A file bdev that exists with data and that no earlier format of this engine
        // made (its daos_nvme.conf names it) is someone else's: not overwritten silently.
        let ours = formatted_files(&mount);
        for t in e.bdevs().filter(|t| t.class == TierClass::File) {
            for f in &t.bdev_list {
                let in_use = fs::metadata(f).is_ok_and(|m| m.len() > 0);
                if in_use && !ours.iter().any(|o| o == f) {
                    return refuse(format!(
                        "bdev file {f} exists and holds data that no DAOS format of this engine \
                         wrote; a format would overwrite it; remove it, name another file in \
                         bdev_list, or use --force to overwrite it"
                    ));
                }
            }
        }
        let pools = mount.join("pools");
        if fs::read_dir(&pools).is_ok_and(|mut d| d.next().is_some()) {
            return refuse(format!(
                "{} holds pool data but no superblock; a format would erase it; \
                 reformat with --force to erase it",
                pools.display()
            ));
        }
    }
    let mounted = match scm.class {
        TierClass::Ram => format_ram(e, idx, scm)?,
        TierClass::Dcpm => {
            let dev = scm.scm_list.first().cloned().unwrap_or_default();
            let message = if Path::new(&dev).exists() {
                format!(
                    "dcpm: formatting {dev} (ext4, dax) is not supported by this build; use class ram"
                )
            } else {
                format!(
                    "dcpm: pmem device {dev:?} not found (no persistent memory on this host); fix: use `class: ram` for an emulated SCM tier"
                )
            };
            return Err(StorageError::Unsupported {
                engine: idx,
                message,
            });
        }
        _ => return Err(StorageError::NoScm { engine: idx }),
    };
    let mut bdevs = Vec::new();
    for t in e.bdevs() {
        bdevs.extend(prepare_bdev(idx, t)?);
    }
    if e.bdevs().next().is_some() {
        let conf = nvme_conf(e, idx);
        let path = mount.join(NVME_CONF_NAME);
        let text = serde_json::to_string_pretty(&conf).unwrap_or_default();
        daos_hw::private::write(&path, text).map_err(StorageError::io(
            idx,
            "cannot write",
            &path,
        ))?;
    }
    let uuid = new_uuid().map_err(StorageError::io(
        idx,
        "cannot read",
        Path::new("/dev/urandom"),
    ))?;
    let sb = Superblock {
        version: SUPERBLOCK_VERSION,
        uuid,
        system: s.name.clone(),
        rank: 0,
        uri: String::new(),
        validrank: false,
        hostfaultdomain: s
            .fault_path
            .clone()
            .unwrap_or_else(|| format!("/{}", crate::logging::hostname())),
        incarnation: 0,
    };
    write_superblock(e, idx, &sb)?;
    Ok(FormatResult {
        scm_mount: mount,
        mounted,
        bdevs,
        superblock: sb,
    })
}

fn format_ram(e: &Engine, idx: usize, scm: &Tier) -> Result<bool, StorageError> {
    let mount = mount_of(scm);
    fs::create_dir_all(mount).map_err(StorageError::io(idx, "cannot create", mount))?;
    if !is_root() {
        warn!(
            "engine {idx}: not running as root, so no tmpfs is mounted; emulating ram SCM with the directory {}",
            mount.display()
        );
        clear_dir(mount).map_err(StorageError::io(idx, "cannot clear", mount))?;
        daos_hw::private::create_dir(mount).map_err(StorageError::io(
            idx,
            "cannot protect",
            mount,
        ))?;
        return Ok(false);
    }
    if is_mountpoint(mount) {
        nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH).map_err(|source| {
            StorageError::Mount {
                engine: idx,
                path: mount.into(),
                source,
            }
        })?;
    }
    let gib = scm.scm_size.unwrap_or(daos_config::MIN_RAM_SCM_GIB);
    // Only the server's user enters the SCM mount (tmpfs roots default to 1777).
    let mut opts = format!("size={gib}g,mode=0700");
    if scm.scm_hugepages_disabled == Some(false) {
        opts.push_str(",huge=always");
    }
    if let Some(n) = e
        .pinned_numa_node
        .filter(|_| Path::new("/sys/devices/system/node").is_dir())
    {
        opts.push_str(&format!(",mpol=prefer:{n}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        mount,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOATIME,
        Some(opts.as_str()),
    )
    .map_err(|source| StorageError::Mount {
        engine: idx,
        path: mount.into(),
        source,
    })?;
    info!(
        "engine {idx}: mounted tmpfs ({opts}) at {}",
        mount.display()
    );
    Ok(true)
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p)?
        } else {
            fs::remove_file(&p)?
        }
    }
    Ok(())
}

fn prepare_bdev(idx: usize, t: &Tier) -> Result<Vec<String>, StorageError> {
    match t.class {
        TierClass::File => {
            let bytes = t.bdev_size.unwrap_or(0) * 1_000_000_000;
            for f in &t.bdev_list {
                let path = Path::new(f);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(StorageError::io(idx, "cannot create", parent))?;
                }
                let file = daos_hw::private::open(path, true).map_err(StorageError::io(idx, "cannot create bdev file", path))?;
                file.set_len(bytes).map_err(StorageError::io(idx, "cannot size bdev file", path))?;
            }
            Ok(t.bdev_list.clone())
        }
        TierClass::Kdev => {
            for d in &t.bdev_list {
                let meta = fs::metadata(d).map_err(StorageError::io(idx, "cannot open kdev", Path::new(d)))?;
                if !meta.file_type().is_block_device() {
                    return Err(StorageError::Unsupported { engine: idx, message: format!("kdev {d} is not a block device; fix: use class file for a regular file") });
                }
            }
            Ok(t.bdev_list.clone())
        }
        TierClass::Malloc => Ok((0..t.bdev_number.unwrap_or(0)).map(|i| format!("malloc{i}")).collect()),
        TierClass::Nvme => Err(StorageError::Unsupported {
            engine: idx,
            message: "class nvme needs SPDK, which this build does not include (cargo feature `spdk`, plus hugepages and vfio-pci); fix: use class file, kdev or malloc to emulate NVMe".into(),
        }),
        TierClass::Ram | TierClass::Dcpm => Ok(Vec::new()),
    }
}

/// The SPDK JSON config an engine reads (`-n`), DAOS_FACTS §5.3.
/// The bdev files an earlier format wrote into the daos_nvme.conf under `mount`.
fn formatted_files(mount: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(mount.join(NVME_CONF_NAME)) else {
        return Vec::new();
    };
    let conf: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut out = Vec::new();
    for sub in conf["subsystems"].as_array().into_iter().flatten() {
        for entry in sub["config"].as_array().into_iter().flatten() {
            if let Some(f) = entry["params"]["filename"].as_str() {
                out.push(f.to_string());
            }
        }
    }
    out
}

pub fn nvme_conf(e: &Engine, idx: usize) -> serde_json::Value {
    let host = crate::logging::hostname();
    let mut bdevs = vec![
        serde_json::json!({"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65536, "bdev_io_cache_size": 256}}),
    ];
    for (tier, t) in e
        .storage
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.class.is_scm())
    {
        for (i, dev) in t.bdev_list.iter().enumerate() {
            let name = format!("AIO_{host}_{idx}_{tier}_{i}");
            let entry = match t.class {
                TierClass::File => {
                    serde_json::json!({"method": "bdev_aio_create", "params": {"name": name, "filename": dev, "block_size": 4096}})
                }
                TierClass::Kdev => {
                    serde_json::json!({"method": "bdev_aio_create", "params": {"name": name, "filename": dev}})
                }
                _ => {
                    serde_json::json!({"method": "bdev_nvme_attach_controller", "params": {"trtype": "PCIe", "name": format!("Nvme_{host}_{idx}_{tier}"), "traddr": dev}})
                }
            };
            bdevs.push(entry);
        }
        if t.class == TierClass::Malloc {
            for i in 0..t.bdev_number.unwrap_or(0) {
                let blocks = t.bdev_size.unwrap_or(0) * 1_000_000_000 / 4096;
                bdevs.push(serde_json::json!({"method": "bdev_malloc_create", "params": {"name": format!("MALLOC_{host}_{idx}_{tier}_{i}"), "num_blocks": blocks, "block_size": 4096}}));
            }
        }
    }
    serde_json::json!({"daos_data": {"config": []}, "subsystems": [{"subsystem": "bdev", "config": bdevs}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4() {
        let u = new_uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, new_uuid().unwrap());
    }

    #[test]
    fn superblock_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Engine::default();
        let mut t = Tier::new(TierClass::Ram);
        t.scm_mount = Some(dir.path().into());
        e.storage.push(t);
        assert_eq!(read_superblock(&e, 0).unwrap(), None);
        let sb = Superblock {
            version: 1,
            uuid: new_uuid().unwrap(),
            system: "daos_server".into(),
            rank: 3,
            uri: "ofi+tcp://1.2.3.4:5".into(),
            validrank: true,
            hostfaultdomain: "/h".into(),
            incarnation: 9,
        };
        write_superblock(&e, 0, &sb).unwrap();
        assert_eq!(read_superblock(&e, 0).unwrap(), Some(sb));
        fs::write(dir.path().join(SUPERBLOCK_NAME), "version: [").unwrap();
        let err = read_superblock(&e, 0).unwrap_err().to_string();
        assert!(
            err.contains("superblock") && err.contains("unreadable") && err.contains("fix:"),
            "{err}"
        );
        fs::write(
            dir.path().join(SUPERBLOCK_NAME),
            "version: 7\nuuid: x\nsystem: s\nrank: 0\nvalidrank: false\n",
        )
        .unwrap();
        assert!(
            read_superblock(&e, 0)
                .unwrap_err()
                .to_string()
                .contains("version 7")
        );
    }
}
