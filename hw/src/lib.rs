//! Hardware discovery for daos-rs.
//!
//! Every read of `/sys` or `/proc` goes through a [`SysRoot`], so tests point the same code at
//! a fixture tree that describes another machine (two NUMA nodes, no NUMA at all, broken
//! files). A missing or malformed file is an error that names the path, never a panic.
//!
//! Here: CPUs and NUMA nodes ([`cpu`]), NVMe controllers ([`nvme`]), network interfaces
//! ([`net`]), PMem namespaces ([`pmem`]), the hwloc topology ([`topology`]), files mapped
//! with libpmem ([`pmemfile`]) and private files ([`private`]). libfabric lives in
//! `daos-fabric`.

pub mod cpu;
pub mod fixtures;
pub mod net;
pub mod nvme;
pub mod pmem;
pub mod pmemfile;
pub mod private;
pub mod topology;

use std::io;
use std::path::{Path, PathBuf};

pub use cpu::{CpuTopology, NumaNode};

/// The root under which `sys/` and `proc/` are read; `/` on a real machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysRoot(PathBuf);

impl Default for SysRoot {
    fn default() -> Self {
        SysRoot(PathBuf::from("/"))
    }
}

impl SysRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysRoot(root.into())
    }

    /// The real path of `rel` (e.g. `sys/devices/system/node`).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Reads a small text file, trimmed.
    pub fn read(&self, rel: &str) -> Result<String, HwError> {
        let path = self.path(rel);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|source| HwError::Read { path, source })
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Sorted names in directory `rel`; an absent directory is empty.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, HwError> {
        let dir = self.path(rel);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|source| HwError::Read {
                path: dir.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// A hardware description that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HwError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: cannot parse {value:?} as {what}", .path.display())]
    Parse {
        path: PathBuf,
        value: String,
        what: &'static str,
    },
    #[error("hwloc: {0}; check that libhwloc (2.x) is installed and /sys is readable")]
    Hwloc(String),
}

impl HwError {
    pub fn parse(path: &Path, value: &str, what: &'static str) -> Self {
        HwError::Parse {
            path: path.into(),
            value: value.into(),
            what,
        }
    }
}
