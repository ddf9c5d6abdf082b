//! `daos_server config generate`: a `daos_server.yml` made from this host's hardware.
//!
//! One engine per NUMA node (or `-e` engines), each pinned to its node, with targets and
//! helpers from the node's cores (one core for the system shard, one helper per four
//! targets), the node's best interface of the requested class and the best provider every
//! engine has, the node's PMem namespace as SCM (or tmpfs with `-t`, sized from RAM) and its
//! NVMe controllers (balanced across engines, none with `-s`), and distinct fabric ports.
//! The text is run through the config validator before it is returned.

use std::path::PathBuf;

use daos_config::{Engine, Server, Tier, TierClass, TransportConfig};
use daos_hw::net::{NetClass, NetInterface};
use daos_hw::{CpuTopology, SysRoot};

use crate::exit::CmdError;

/// `config generate` flags.
#[derive(Clone, Debug, Default)]
pub struct GenerateArgs {
    /// `-r`: management service replicas.
    pub replicas: Vec<String>,
    /// `-e`: number of engines (default: one per NUMA node).
    pub engines: Option<usize>,
    /// `-c`: `ethernet` or `infiniband`.
    pub net_class: String,
    /// `-p`: provider; when given, interfaces are chosen by class without asking libfabric.
    pub provider: Option<String>,
    /// `-t`: tmpfs SCM instead of PMem.
    pub tmpfs: bool,
    /// `-s`: SCM only, no NVMe.
    pub scm_only: bool,
    /// `-f`: fabric ports, one per engine.
    pub ports: Vec<u16>,
}

fn gib_total(root: &SysRoot) -> Result<u64, CmdError> {
    let text = root
        .read("proc/meminfo")
        .map_err(|e| CmdError::new(format!("config generate: {e}")))?;
    let kib: u64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CmdError::new("config generate: no MemTotal in proc/meminfo"))?;
    Ok(kib >> 20)
}

/// Builds the config; returns it as validated YAML.
pub fn generate(root: &SysRoot, a: &GenerateArgs) -> Result<String, CmdError> {
    let hw = |e: daos_hw::HwError| CmdError::new(format!("config generate: {e}"));
    let cpu = CpuTopology::read(root).map_err(hw)?;
    let ifaces = daos_hw::net::scan(root).map_err(hw)?;
    let nvme = if a.scm_only {
        Vec::new()
    } else {
        daos_hw::nvme::scan(root).map_err(hw)?
    };
    let pmem = if a.tmpfs {
        Vec::new()
    } else {
        daos_hw::pmem::scan(root).map_err(hw)?
    };
    let class = match a.net_class.as_str() {
        "ethernet" => NetClass::Ether,
        "infiniband" | "" => NetClass::Infiniband,
        other => {
            return Err(CmdError::new(format!(
                "-c/--net-class {other:?}: expected ethernet or infiniband"
            ))
            .fix("use -c ethernet or -c infiniband"));
        }
    };
    let numa: bool = !cpu.numa_nodes.is_empty();
    let nodes: Vec<(u32, Vec<u32>)> = if numa {
        cpu.numa_nodes
            .iter()
            .filter(|n| !n.cpus.is_empty())
            .map(|n| (n.id, n.cpus.clone()))
            .collect()
    } else {
        vec![(0, cpu.online.clone())]
    };
    let want = a.engines.unwrap_or(nodes.len());
    if want == 0 || want > nodes.len() {
        return Err(CmdError::new(format!(
            "-e/--num-engines {want}: this host has {} NUMA node(s)",
            nodes.len()
        ))
        .fix(format!(
            "use 1 to {} engines (one per NUMA node)",
            nodes.len()
        )));
    }

    // Interfaces of the requested class per node; with libfabric deciding the provider when -p is absent.
    let fabric = if a.provider.is_none() {
        daos_fabric::providers().map_err(CmdError::new)?
    } else {
        Vec::new()
    };
    let on_node = |node: u32, list: &[&NetInterface]| -> Vec<String> {
        list.iter()
            .filter(|i| i.numa_node.unwrap_or(0) == node)
            .map(|i| i.name.clone())
            .collect()
    };
    let candidates: Vec<&NetInterface> = ifaces.iter().filter(|i| i.class == class).collect();
    let mut picks: Vec<(u32, Vec<u32>, String)> = Vec::new();
    let mut provider = a.provider.clone();
    for (node, cpus) in nodes.iter().take(want) {
        let names = on_node(*node, &candidates);
        let chosen = if a.provider.is_some() {
            names.first().cloned()
        } else {
            // The best provider this node's interfaces offer.
            fabric
                .iter()
                .filter(|f| names.contains(&f.domain))
                .find(|f| provider.as_ref().is_none_or(|p| *p == f.provider))
                .map(|f| {
                    provider.get_or_insert_with(|| f.provider.clone());
                    f.domain.clone()
                })
        };
        let Some(iface) = chosen else {
            return Err(CmdError::new(format!("no {} interface{} on NUMA node {node}", a.net_class_name(), if a.provider.is_some() { "" } else { " with a libfabric provider" }))
                .fix("choose another class with -c ethernet|infiniband, fewer engines with -e, or a provider with -p"));
        };
        picks.push((*node, cpus.clone(), iface));
    }
    let provider = provider.ok_or_else(|| {
        CmdError::new("no fabric provider found").fix("install libfabric providers or give -p")
    })?;

    // NVMe per node, balanced to the smallest count so every engine has as many.
    let per_node: Vec<Vec<String>> = picks
        .iter()
        .map(|(n, _, _)| {
            nvme.iter()
                .filter(|c| c.numa_node.unwrap_or(0) == *n)
                .map(|c| c.pci_addr.clone())
                .collect()
        })
        .collect();
    let bdevs = per_node.iter().map(Vec::len).min().unwrap_or(0);

    let total_gib = if a.tmpfs { gib_total(root)? } else { 0 };
    let reserved = 64u64.min(total_gib / 2).max(1);
    let engines_n = picks.len() as u64;
    let mut engines = Vec::new();
    for (i, ((node, cpus, iface), devices)) in picks.iter().zip(&per_node).enumerate() {
        let cores = cpus.len() as u32;
        let helpers = cores.saturating_sub(1) / 5;
        let targets = cores.saturating_sub(1 + helpers).max(1);
        let mut scm = Tier::new(if a.tmpfs {
            TierClass::Ram
        } else {
            TierClass::Dcpm
        });
        scm.scm_mount = Some(PathBuf::from(format!("/mnt/daos{i}")));
        if a.tmpfs {
            let per_engine_overhead = (u64::from(targets) / 8).max(1);
            let size = total_gib
                .saturating_sub(reserved)
                .saturating_sub(engines_n * per_engine_overhead)
                / engines_n;
            if size < daos_config::MIN_RAM_SCM_GIB {
                return Err(CmdError::new(format!("not enough RAM for tmpfs SCM: {size} GiB per engine of {total_gib} GiB (minimum {} GiB)", daos_config::MIN_RAM_SCM_GIB)).fix("use fewer engines (-e) or PMem (drop -t)"));
            }
            scm.scm_size = Some(size);
        } else {
            let ns = pmem
                .iter()
                .find(|p| p.numa_node.unwrap_or(0) == *node && p.blockdev.is_some())
                .ok_or_else(|| {
                    CmdError::new(format!("no PMem namespace on NUMA node {node}")).fix(
                        "run `daos_server storage prepare --scm-only`, or use -t for tmpfs SCM",
                    )
                })?;
            scm.scm_list = vec![format!("/dev/{}", ns.blockdev.clone().unwrap_or_default())];
        }
        let mut storage = vec![scm];
        if bdevs > 0 {
            let mut t = Tier::new(TierClass::Nvme);
            t.bdev_list = devices.iter().take(bdevs).cloned().collect();
            storage.push(t);
        }
        let port = a.ports.get(i).copied().unwrap_or(31416 + 1000 * i as u16);
        engines.push(Engine {
            targets,
            nr_xs_helpers: helpers,
            pinned_numa_node: numa.then_some(*node),
            fabric_iface: iface.clone(),
            fabric_iface_port: port,
            provider: String::new(),
            log_file: Some(PathBuf::from(format!("/tmp/daos_engine.{i}.log"))),
            storage,
            ..Engine::default()
        });
    }
    let replicas = if a.replicas.is_empty() {
        vec!["localhost".to_string()]
    } else {
        a.replicas.clone()
    };
    let server = Server {
        mgmt_svc_replicas: replicas,
        provider: Some(provider),
        transport_config: TransportConfig::default(),
        disable_hugepages: bdevs == 0,
        system_ram_reserved: if a.tmpfs { reserved as u32 } else { 64 },
        control_log_file: Some(PathBuf::from("/tmp/daos_server.log")),
        engines,
        ..Server::default()
    };
    let yaml = server.to_yaml();
    daos_config::load_str(&yaml, "<generated>", &Default::default()).map_err(|e| {
        CmdError::new(format!(
            "internal error: the generated config does not validate:\n{e}"
        ))
    })?;
    Ok(format!(
        "# generated by `daos_server config generate` from this host's hardware\n{yaml}"
    ))
}

impl GenerateArgs {
    /// From the request `dmg config generate` sends (and `daos_server config generate`
    /// builds from the same flags).
    pub fn from_request(r: daos_proto::ctl::ConfigGenerateReq) -> GenerateArgs {
        GenerateArgs {
            replicas: r.replicas,
            engines: (r.engines > 0).then_some(r.engines as usize),
            net_class: r.net_class,
            provider: (!r.provider.is_empty()).then_some(r.provider),
            tmpfs: r.tmpfs,
            scm_only: r.scm_only,
            ports: r
                .ports
                .into_iter()
                .filter_map(|p| u16::try_from(p).ok())
                .collect(),
        }
    }

    fn net_class_name(&self) -> &str {
        if self.net_class.is_empty() {
            "infiniband"
        } else {
            &self.net_class
        }
    }
}
