//! `daos_server storage scan`: the storage hardware of this host (PMem namespaces and NVMe
//! controllers from sysfs), in the deployment guide's tables or as JSON. With no such hardware
//! it says so and succeeds.

use daos_hw::{SysRoot, nvme, pmem};
use serde_json::json;

use crate::exit::CmdError;
use crate::table::{bytes_si, render};

/// Environment variable pointing discovery at another root (fixture trees in tests).
pub const SYSFS_ROOT_ENV: &str = "DAOS_SYSFS_ROOT";

/// The root every sysfs read goes through: `$DAOS_SYSFS_ROOT` or `/`.
pub fn sys_root() -> SysRoot {
    match std::env::var_os(SYSFS_ROOT_ENV).filter(|v| !v.is_empty()) {
        Some(r) => SysRoot::new(r),
        None => SysRoot::default(),
    }
}

fn socket(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "None".into())
}

/// PMem modules as `ipmctl show -dimm` lists them: `Ok(None)` when ipmctl is not installed.
pub fn pmem_modules() -> Result<Option<Vec<Vec<String>>>, CmdError> {
    let out = match std::process::Command::new("ipmctl")
        .args(["show", "-dimm"])
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CmdError::new(format!("cannot run ipmctl: {e}"))),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // Rows of the table under the "DimmID | Capacity | ..." header.
    let rows = text
        .lines()
        .skip_while(|l| !l.contains("DimmID"))
        .skip(1)
        .filter(|l| l.contains('|'))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    Ok(Some(rows))
}

/// Scans local storage; returns (text, json).
pub fn storage_scan(root: &SysRoot) -> Result<(String, serde_json::Value), CmdError> {
    let hw_err = |e: daos_hw::HwError| {
        CmdError::new(format!("storage scan: {e}")).fix("check that sysfs is mounted and readable")
    };
    let ns = pmem::scan(root).map_err(hw_err)?;
    let ctrls = nvme::scan(root).map_err(hw_err)?;
    let modules = pmem_modules()?;
    let mut text = String::new();
    match &modules {
        None => text.push_str(
            "\tPMem modules not listed: ipmctl is not installed (apt-get install ipmctl)\n",
        ),
        Some(rows) if rows.is_empty() => text.push_str("\tNo SCM modules found\n"),
        Some(rows) => text.push_str(&render(
            &["SCM Module", "Capacity", "Health", "Firmware"],
            rows,
            "",
        )),
    }
    text.push('\n');
    if ns.is_empty() {
        text.push_str("\tNo SCM namespaces found\n");
    } else {
        let rows: Vec<Vec<String>> = ns
            .iter()
            .map(|n| {
                vec![
                    n.blockdev.clone().unwrap_or_else(|| n.name.clone()),
                    socket(n.numa_node),
                    bytes_si(n.size_bytes),
                ]
            })
            .collect();
        text.push_str(&render(
            &["SCM Namespace", "Socket ID", "Capacity"],
            &rows,
            "",
        ));
    }
    text.push('\n');
    if ctrls.is_empty() {
        text.push_str("\tNo NVMe controllers found\n");
    } else {
        let rows: Vec<Vec<String>> = ctrls
            .iter()
            .map(|c| {
                let model = if c.model.is_empty() {
                    format!("({})", c.driver.as_deref().unwrap_or("no driver"))
                } else {
                    c.model.clone()
                };
                vec![
                    c.pci_addr.clone(),
                    model,
                    c.firmware.clone(),
                    socket(c.numa_node),
                    bytes_si(c.capacity_bytes()),
                ]
            })
            .collect();
        text.push_str(&render(
            &["NVMe PCI", "Model", "FW Revision", "Socket ID", "Capacity"],
            &rows,
            "",
        ));
    }
    let json = json!({"scm_modules": modules, "scm_namespaces": ns, "nvme_controllers": ctrls});
    Ok((text, json))
}

/// One usable (interface, provider) pair with the interface's NUMA node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FabricEntry {
    pub fabric_iface: String,
    pub provider: String,
    pub pinned_numa_node: u32,
    /// The interface's ARPHRD type (DAOS's `netdevclass`: 1 Ethernet, 32 InfiniBand).
    #[serde(skip)]
    pub net_dev_class: u32,
}

/// The network interface behind a libfabric domain: itself, or for RDMA devices the
/// interface sysfs lists under `class/infiniband/<dev>/device/net`.
fn iface_of(root: &SysRoot, domain: &str, ifaces: &[daos_hw::net::NetInterface]) -> Option<String> {
    if ifaces.iter().any(|i| i.name == domain) {
        return Some(domain.to_string());
    }
    let dir = root.path(&format!("sys/class/infiniband/{domain}/device/net"));
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
}

/// Interfaces and providers usable for DAOS, best provider first; `provider` filters
/// (`None` or `all` for everything).
pub fn fabric_scan(root: &SysRoot, provider: Option<&str>) -> Result<Vec<FabricEntry>, CmdError> {
    let ifaces =
        daos_hw::net::scan(root).map_err(|e| CmdError::new(format!("network scan: {e}")))?;
    let infos =
        daos_fabric::providers().map_err(|e| CmdError::new(format!("network scan: {e}")))?;
    let want = provider.filter(|p| *p != "all");
    let mut out = Vec::new();
    for info in infos {
        if want.is_some_and(|w| w != info.provider) {
            continue;
        }
        let Some(iface) = iface_of(root, &info.domain, &ifaces) else {
            continue;
        };
        let found = ifaces.iter().find(|i| i.name == iface);
        let numa = found.and_then(|i| i.numa_node).unwrap_or(0);
        let entry = FabricEntry {
            fabric_iface: iface,
            provider: info.provider,
            pinned_numa_node: numa,
            net_dev_class: found.map_or(0, |i| i.class.arphrd()),
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The entries as `daos_server network scan` prints them.
pub fn fabric_text(entries: &[FabricEntry]) -> String {
    if entries.is_empty() {
        return "\tNo fabric interfaces found for that provider\n".into();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "\tfabric_iface: {}\n\tprovider: {}\n\tpinned_numa_node: {}\n\n",
                e.fabric_iface, e.provider, e.pinned_numa_node
            )
        })
        .collect()
}
