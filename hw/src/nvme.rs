//! NVMe controllers from sysfs: every PCI function of class 0x010802 (NVM Express), with its
//! NUMA node and bound driver; for controllers the kernel `nvme` driver owns, also model,
//! serial, firmware revision and namespaces. Controllers bound to vfio-pci/uio (prepared for
//! SPDK) are listed with what PCI tells; their model needs SPDK (the `spdk` build).

use crate::{HwError, SysRoot};

/// PCI class code of NVMe controllers.
pub const NVME_CLASS: &str = "0x010802";

/// One namespace of a controller.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NvmeNamespace {
    pub name: String,
    pub size_bytes: u64,
}

/// One NVMe controller.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NvmeController {
    pub pci_addr: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
    pub numa_node: Option<u32>,
    /// Bound driver (`nvme`, `vfio-pci`, `uio_pci_generic`), if any.
    pub driver: Option<String>,
    pub namespaces: Vec<NvmeNamespace>,
}

impl NvmeController {
    pub fn capacity_bytes(&self) -> u64 {
        self.namespaces.iter().map(|n| n.size_bytes).sum()
    }
}

/// The NUMA node in a sysfs `numa_node` file (`-1` means none).
pub fn numa_of(root: &SysRoot, rel: &str) -> Result<Option<u32>, HwError> {
    if !root.exists(rel) {
        return Ok(None);
    }
    let text = root.read(rel)?;
    match text.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n as u32)),
        Ok(_) => Ok(None),
        Err(_) => Err(HwError::parse(&root.path(rel), &text, "a NUMA node number")),
    }
}

/// The file name a sysfs symlink points to (e.g. the driver of a device).
pub fn link_name(root: &SysRoot, rel: &str) -> Option<String> {
    std::fs::read_link(root.path(rel))
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// Lists the NVMe controllers under `root`.
pub fn scan(root: &SysRoot) -> Result<Vec<NvmeController>, HwError> {
    let mut out = Vec::new();
    for dev in root.list("sys/bus/pci/devices")? {
        let base = format!("sys/bus/pci/devices/{dev}");
        let class = root.read(&format!("{base}/class"))?;
        if !class.eq_ignore_ascii_case(NVME_CLASS) {
            continue;
        }
        let driver = link_name(root, &format!("{base}/driver"));
        let mut c = NvmeController {
            pci_addr: dev.clone(),
            model: String::new(),
            serial: String::new(),
            firmware: String::new(),
            numa_node: numa_of(root, &format!("{base}/numa_node"))?,
            driver: driver.clone(),
            namespaces: Vec::new(),
        };
        if driver.as_deref() == Some("nvme") {
            let ctrls = root.list(&format!("{base}/nvme"))?;
            let Some(ctrl) = ctrls.first() else {
                return Err(HwError::Read {
                    path: root.path(&format!("{base}/nvme")),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "bound to nvme but no controller directory",
                    ),
                });
            };
            let cbase = format!("{base}/nvme/{ctrl}");
            c.model = root.read(&format!("{cbase}/model"))?;
            c.serial = root.read(&format!("{cbase}/serial"))?;
            c.firmware = root.read(&format!("{cbase}/firmware_rev"))?;
            for ns in root
                .list(&cbase)?
                .into_iter()
                .filter(|n| n.starts_with(ctrl.as_str()) && n.contains('n'))
            {
                let rel = format!("{cbase}/{ns}/size");
                if !root.exists(&rel) {
                    continue;
                }
                let text = root.read(&rel)?;
                let sectors: u64 = text.parse().map_err(|_| {
                    HwError::parse(&root.path(&rel), &text, "a size in 512-byte sectors")
                })?;
                c.namespaces.push(NvmeNamespace {
                    name: ns,
                    size_bytes: sectors * 512,
                });
            }
        }
        out.push(c);
    }
    Ok(out)
}
