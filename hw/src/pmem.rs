//! Persistent-memory namespaces from sysfs (`bus/nd/devices/namespaceX.Y`): size, mode, NUMA
//! node and block device. An empty or absent bus means "no PMem", not an error.

use crate::nvme::numa_of;
use crate::{HwError, SysRoot};

/// One PMem namespace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PmemNamespace {
    pub name: String,
    /// `fsdax`, `devdax`, `sector`, `raw`.
    pub mode: String,
    /// Block device (`pmem0`) for fsdax namespaces.
    pub blockdev: Option<String>,
    pub numa_node: Option<u32>,
    pub size_bytes: u64,
}

/// Lists the PMem namespaces under `root` (only those with a size, i.e. configured ones).
pub fn scan(root: &SysRoot) -> Result<Vec<PmemNamespace>, HwError> {
    let rel = "sys/bus/nd/devices";
    let names: Vec<String> = root
        .list(rel)?
        .into_iter()
        .filter(|n| n.starts_with("namespace"))
        .collect();
    let mut out = Vec::new();
    for name in names {
        let base = format!("{rel}/{name}");
        let size_text = root.read(&format!("{base}/size"))?;
        let size: u64 = size_text.parse().map_err(|_| {
            HwError::parse(
                &root.path(&format!("{base}/size")),
                &size_text,
                "a size in bytes",
            )
        })?;
        if size == 0 {
            continue;
        }
        let mode = if root.exists(&format!("{base}/mode")) {
            root.read(&format!("{base}/mode"))?
        } else {
            "raw".into()
        };
        let block_dir = root.path(&format!("{base}/block"));
        let blockdev = std::fs::read_dir(&block_dir)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned());
        out.push(PmemNamespace {
            name,
            mode,
            blockdev,
            numa_node: numa_of(root, &format!("{base}/numa_node"))?,
            size_bytes: size,
        });
    }
    Ok(out)
}
