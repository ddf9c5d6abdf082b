//! `daos_server storage prepare [--nvme-only|--scm-only] [--reset] [--force]`.
//!
//! NVMe: reserve hugepages and bind the controllers to `vfio-pci` (or `uio_pci_generic` when
//! there is no IOMMU) through sysfs `driver_override`, honouring `bdev_include`,
//! `bdev_exclude` and `--pci-block-list`; `--reset` gives them back to the kernel `nvme`
//! driver. SCM: PMem regions without namespaces get fsdax namespaces (`ndctl`); PMem modules
//! without an AppDirect goal get one (`ipmctl`, then a reboot); `--reset` removes namespaces.
//! Each step is planned first ([`plan_nvme`], [`plan_scm`]) from what discovery sees, then
//! carried out; with no such hardware the plan is empty and the command says so and succeeds.
//! Changing devices needs root: without it the command refuses, saying why.

use std::process::Command;

use daos_hw::SysRoot;
use daos_hw::nvme::NvmeController;

use crate::exit::CmdError;

/// What was asked.
#[derive(Clone, Debug, Default)]
pub struct PrepareArgs {
    pub nvme_only: bool,
    pub scm_only: bool,
    pub reset: bool,
    pub force: bool,
    /// `-p/--hugepages`: total hugepages to reserve.
    pub hugepages: Option<u64>,
    /// `--pci-block-list`: controllers to leave alone.
    pub block_list: Vec<String>,
    /// From the config: only these (when not empty), never those.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// One NVMe step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NvmeStep {
    Hugepages(u64),
    Bind {
        pci: String,
        from: Option<String>,
        to: String,
    },
    Release {
        pci: String,
        from: Option<String>,
    },
}

/// Default hugepage count when neither the config nor `-p` sets one (DAOS v1.0's default).
pub const DEFAULT_HUGEPAGES: u64 = 1024;

/// The driver NVMe controllers are bound to for SPDK on this machine.
pub fn user_driver(root: &SysRoot) -> &'static str {
    let groups = root.path("sys/kernel/iommu_groups");
    let has_iommu = std::fs::read_dir(groups)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if has_iommu {
        "vfio-pci"
    } else {
        "uio_pci_generic"
    }
}

/// Plans the NVMe part.
pub fn plan_nvme(ctrls: &[NvmeController], a: &PrepareArgs, driver: &str) -> Vec<NvmeStep> {
    let chosen: Vec<&NvmeController> = ctrls
        .iter()
        .filter(|c| a.include.is_empty() || a.include.contains(&c.pci_addr))
        .filter(|c| !a.exclude.contains(&c.pci_addr) && !a.block_list.contains(&c.pci_addr))
        .collect();
    let mut steps = Vec::new();
    if a.reset {
        for c in chosen {
            if c.driver.as_deref() != Some("nvme") {
                steps.push(NvmeStep::Release {
                    pci: c.pci_addr.clone(),
                    from: c.driver.clone(),
                });
            }
        }
        return steps;
    }
    if chosen.is_empty() {
        return steps;
    }
    steps.push(NvmeStep::Hugepages(
        a.hugepages.unwrap_or(DEFAULT_HUGEPAGES),
    ));
    for c in chosen {
        if c.driver.as_deref() != Some(driver) {
            steps.push(NvmeStep::Bind {
                pci: c.pci_addr.clone(),
                from: c.driver.clone(),
                to: driver.into(),
            });
        }
    }
    steps
}

fn write(root: &SysRoot, rel: &str, value: &str) -> Result<(), CmdError> {
    let path = root.path(rel);
    std::fs::write(&path, value)
        .map_err(|e| CmdError::new(format!("cannot write {value:?} to {}: {e}", path.display())))
}

/// Carries out NVMe steps; returns one line per step.
pub fn run_nvme(root: &SysRoot, steps: &[NvmeStep]) -> Result<Vec<String>, CmdError> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            NvmeStep::Hugepages(n) => {
                write(root, "proc/sys/vm/nr_hugepages", &n.to_string())?;
                out.push(format!("hugepages: {n} reserved"));
            }
            NvmeStep::Bind { pci, from, to } => {
                let dev = format!("sys/bus/pci/devices/{pci}");
                write(root, &format!("{dev}/driver_override"), to)?;
                if from.is_some() {
                    write(root, &format!("{dev}/driver/unbind"), pci)?;
                }
                write(root, "sys/bus/pci/drivers_probe", pci)?;
                out.push(format!(
                    "{pci}: {} -> {to}",
                    from.as_deref().unwrap_or("no driver")
                ));
            }
            NvmeStep::Release { pci, from } => {
                let dev = format!("sys/bus/pci/devices/{pci}");
                write(root, &format!("{dev}/driver_override"), "\n")?;
                if from.is_some() {
                    write(root, &format!("{dev}/driver/unbind"), pci)?;
                }
                write(root, "sys/bus/pci/drivers_probe", pci)?;
                out.push(format!(
                    "{pci}: {} -> nvme",
                    from.as_deref().unwrap_or("no driver")
                ));
            }
        }
    }
    Ok(out)
}

/// One SCM step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScmStep {
    /// No PMem modules: nothing to do.
    NoModules,
    /// Modules without regions: set an AppDirect goal; a reboot follows.
    SetAppDirectGoal,
    /// A region without namespaces: create an fsdax namespace in it.
    CreateNamespace(String),
    /// Regions and namespaces are in place.
    Ready,
    /// `--reset`: destroy every namespace.
    DestroyNamespaces,
}

/// Plans the SCM part from the regions, namespaces and whether ipmctl sees modules.
pub fn plan_scm(
    regions: &[(String, usize)],
    namespaces: usize,
    modules: bool,
    reset: bool,
) -> Vec<ScmStep> {
    if regions.is_empty() && namespaces == 0 && !modules {
        return vec![ScmStep::NoModules];
    }
    if reset {
        return if namespaces > 0 {
            vec![ScmStep::DestroyNamespaces]
        } else {
            vec![ScmStep::Ready]
        };
    }
    if regions.is_empty() {
        return vec![ScmStep::SetAppDirectGoal];
    }
    let steps: Vec<ScmStep> = regions
        .iter()
        .filter(|(_, ns)| *ns == 0)
        .map(|(r, _)| ScmStep::CreateNamespace(r.clone()))
        .collect();
    if steps.is_empty() {
        vec![ScmStep::Ready]
    } else {
        steps
    }
}

/// PMem regions under `root` with their namespace counts.
pub fn regions(root: &SysRoot) -> Vec<(String, usize)> {
    let dir = root.path("sys/bus/nd/devices");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let ns: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("namespace"))
        .collect();
    names
        .iter()
        .filter(|n| n.starts_with("region"))
        .map(|r| {
            let id = r.trim_start_matches("region");
            let count = ns
                .iter()
                .filter(|n| n.trim_start_matches("namespace").split('.').next() == Some(id))
                .count();
            (r.clone(), count)
        })
        .collect()
}

fn tool(cmd: &str, args: &[&str]) -> Result<String, CmdError> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        CmdError::new(format!("cannot run {cmd}: {e}"))
            .fix(format!("install {cmd} (Debian: apt-get install {cmd})"))
    })?;
    if !out.status.success() {
        return Err(CmdError::new(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Carries out SCM steps with ndctl/ipmctl; returns one line per step.
pub fn run_scm(steps: &[ScmStep]) -> Result<Vec<String>, CmdError> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            ScmStep::NoModules => out.push("No SCM modules detected; skipping operation".into()),
            ScmStep::Ready => out.push("SCM namespaces are in place; nothing to prepare".into()),
            ScmStep::SetAppDirectGoal => {
                tool(
                    "ipmctl",
                    &["create", "-f", "-goal", "PersistentMemoryType=AppDirect"],
                )?;
                out.push("Memory allocation goals for PMem have been set. A reboot is required to process new memory allocation goals; run storage prepare again after the reboot to create namespaces.".into());
            }
            ScmStep::CreateNamespace(region) => {
                tool(
                    "ndctl",
                    &["create-namespace", "--region", region, "--mode", "fsdax"],
                )?;
                out.push(format!("{region}: fsdax namespace created"));
            }
            ScmStep::DestroyNamespaces => {
                tool("ndctl", &["destroy-namespace", "all", "--force"])?;
                out.push("SCM namespaces removed".into());
            }
        }
    }
    Ok(out)
}

/// The warning DAOS prints before changing PMem.
pub const DESTRUCTIVE_WARNING: &str = "Memory allocation goals for PMem will be changed and namespaces modified, this may be a destructive operation. Please ensure namespaces are unmounted and locally attached PMem modules are not in use.";

/// Runs `storage prepare`; returns the lines to print.
pub fn prepare(root: &SysRoot, a: &PrepareArgs) -> Result<Vec<String>, CmdError> {
    if a.nvme_only && a.scm_only {
        return Err(
            CmdError::new("--nvme-only and --scm-only exclude each other")
                .fix("give at most one of them"),
        );
    }
    let mut lines = Vec::new();
    let nvme_steps = if a.scm_only {
        Vec::new()
    } else {
        let ctrls = daos_hw::nvme::scan(root)
            .map_err(|e| CmdError::new(format!("storage prepare: {e}")))?;
        plan_nvme(&ctrls, a, user_driver(root))
    };
    let scm_steps = if a.nvme_only {
        Vec::new()
    } else {
        let ns = daos_hw::pmem::scan(root)
            .map_err(|e| CmdError::new(format!("storage prepare: {e}")))?;
        let modules = regions(root).is_empty() && ns.is_empty() && ipmctl_sees_modules();
        plan_scm(&regions(root), ns.len(), modules, a.reset)
    };
    let changes = !nvme_steps.is_empty()
        || scm_steps
            .iter()
            .any(|s| !matches!(s, ScmStep::NoModules | ScmStep::Ready));
    if changes && !nix::unistd::geteuid().is_root() {
        return Err(CmdError::new(
            "storage prepare changes device bindings, hugepages and PMem goals, which needs root",
        )
        .fix("run it as root (sudo daos_server storage prepare ...)"));
    }
    if scm_steps
        .iter()
        .any(|s| matches!(s, ScmStep::SetAppDirectGoal | ScmStep::DestroyNamespaces))
        && !a.force
    {
        return Err(CmdError::new(DESTRUCTIVE_WARNING).fix("re-run with --force to go ahead"));
    }
    if !a.scm_only {
        lines.push(if a.reset {
            "Resetting locally-attached NVMe storage...".into()
        } else {
            "Preparing locally-attached NVMe storage...".into()
        });
        if nvme_steps.is_empty() {
            lines.push("No NVMe controllers to prepare; nothing to do".into());
        }
        lines.extend(run_nvme(root, &nvme_steps)?);
    }
    if !a.nvme_only {
        lines.push(if a.reset {
            "Resetting locally-attached SCM...".into()
        } else {
            "Preparing locally-attached SCM...".into()
        });
        lines.extend(run_scm(&scm_steps)?);
    }
    Ok(lines)
}

/// Whether `ipmctl` (if installed) reports PMem modules.
fn ipmctl_sees_modules() -> bool {
    Command::new("ipmctl")
        .args(["show", "-dimm"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("DimmID"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctrl(pci: &str, driver: Option<&str>) -> NvmeController {
        NvmeController {
            pci_addr: pci.into(),
            model: String::new(),
            serial: String::new(),
            firmware: String::new(),
            numa_node: Some(0),
            driver: driver.map(Into::into),
            namespaces: Vec::new(),
        }
    }

    #[test]
    fn nvme_plan_honours_include_exclude_and_block_list() {
        let c = [
            ctrl("0000:81:00.0", Some("nvme")),
            ctrl("0000:82:00.0", Some("nvme")),
            ctrl("0000:83:00.0", Some("vfio-pci")),
            ctrl("0000:84:00.0", Some("nvme")),
        ];
        let a = PrepareArgs {
            hugepages: Some(512),
            block_list: vec!["0000:84:00.0".into()],
            exclude: vec!["0000:82:00.0".into()],
            ..Default::default()
        };
        let steps = plan_nvme(&c, &a, "vfio-pci");
        assert_eq!(
            steps,
            vec![
                NvmeStep::Hugepages(512),
                NvmeStep::Bind {
                    pci: "0000:81:00.0".into(),
                    from: Some("nvme".into()),
                    to: "vfio-pci".into()
                }
            ]
        );
        let a = PrepareArgs {
            include: vec!["0000:82:00.0".into()],
            ..Default::default()
        };
        assert_eq!(
            plan_nvme(&c, &a, "uio_pci_generic")[1],
            NvmeStep::Bind {
                pci: "0000:82:00.0".into(),
                from: Some("nvme".into()),
                to: "uio_pci_generic".into()
            }
        );
        let a = PrepareArgs {
            reset: true,
            ..Default::default()
        };
        assert_eq!(
            plan_nvme(&c, &a, "vfio-pci"),
            vec![NvmeStep::Release {
                pci: "0000:83:00.0".into(),
                from: Some("vfio-pci".into())
            }]
        );
        assert!(plan_nvme(&[], &PrepareArgs::default(), "vfio-pci").is_empty());
    }

    #[test]
    fn scm_plan_follows_daos_two_step_flow() {
        assert_eq!(plan_scm(&[], 0, false, false), vec![ScmStep::NoModules]);
        assert_eq!(
            plan_scm(&[], 0, true, false),
            vec![ScmStep::SetAppDirectGoal]
        );
        let r = vec![("region0".to_string(), 0), ("region1".to_string(), 1)];
        assert_eq!(
            plan_scm(&r, 1, false, false),
            vec![ScmStep::CreateNamespace("region0".into())]
        );
        let done = vec![("region0".to_string(), 1)];
        assert_eq!(plan_scm(&done, 1, false, false), vec![ScmStep::Ready]);
        assert_eq!(
            plan_scm(&done, 1, false, true),
            vec![ScmStep::DestroyNamespaces]
        );
    }
}
