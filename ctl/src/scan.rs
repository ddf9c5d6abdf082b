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

/// Scans local storage; returns (text, json).
pub fn storage_scan(root: &SysRoot) -> Result<(String, serde_json::Value), CmdError> {
    let hw_err = |e: daos_hw::HwError| {
        CmdError::new(format!("storage scan: {e}")).fix("check that sysfs is mounted and readable")
    };
    let ns = pmem::scan(root).map_err(hw_err)?;
    let ctrls = nvme::scan(root).map_err(hw_err)?;
    let mut text = String::new();
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
    let json = json!({"scm_namespaces": ns, "nvme_controllers": ctrls});
    Ok((text, json))
}
