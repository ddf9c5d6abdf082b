//! CPUs and NUMA nodes from sysfs (`devices/system/cpu/online`, `devices/system/node/node*/cpulist`).

use std::collections::BTreeSet;

use crate::{HwError, SysRoot};

/// One NUMA node and its online CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumaNode {
    pub id: u32,
    pub cpus: Vec<u32>,
}

/// Online CPUs and how they group into NUMA nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuTopology {
    pub online: Vec<u32>,
    /// Empty when the kernel exposes no NUMA information.
    pub numa_nodes: Vec<NumaNode>,
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b || b - a > 65536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.trim().parse().ok()?);
            }
        }
    }
    Some(out.into_iter().collect())
}

impl CpuTopology {
    /// Reads the topology under `root`.
    pub fn read(root: &SysRoot) -> Result<CpuTopology, HwError> {
        let rel = "sys/devices/system/cpu/online";
        let text = root.read(rel)?;
        let online = parse_cpu_list(&text)
            .ok_or_else(|| HwError::parse(&root.path(rel), &text, "a CPU list"))?;
        let node_dir = root.path("sys/devices/system/node");
        let mut numa_nodes = Vec::new();
        if node_dir.is_dir() {
            let entries = std::fs::read_dir(&node_dir).map_err(|source| HwError::Read {
                path: node_dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| HwError::Read {
                    path: node_dir.clone(),
                    source,
                })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(id) = name
                    .strip_prefix("node")
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let rel = format!("sys/devices/system/node/{name}/cpulist");
                let text = root.read(&rel)?;
                let cpus = parse_cpu_list(&text)
                    .ok_or_else(|| HwError::parse(&root.path(&rel), &text, "a CPU list"))?;
                numa_nodes.push(NumaNode {
                    id,
                    cpus: cpus.into_iter().filter(|c| online.contains(c)).collect(),
                });
            }
            numa_nodes.sort_by_key(|n| n.id);
        }
        Ok(CpuTopology { online, numa_nodes })
    }

    /// The first NUMA node that has online CPUs, if the machine reports NUMA nodes.
    pub fn first_numa_node(&self) -> Option<&NumaNode> {
        self.numa_nodes.iter().find(|n| !n.cpus.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("0\n"), Some(vec![0]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
    }
}
