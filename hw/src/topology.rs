//! The machine's topology from hwloc (through hwlocality): packages, NUMA nodes, caches, cores,
//! PUs, and the important I/O devices (PCI functions with their block and network OS devices),
//! for `daos_server dump-topology`.

use std::fmt::Write as _;

use hwlocality::Topology;
use hwlocality::object::TopologyObject;
use hwlocality::object::types::ObjectType;
use hwlocality::topology::builder::TypeFilter;

use crate::HwError;

/// Counts that sum the topology up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub packages: usize,
    pub numa_nodes: usize,
    pub cores: usize,
    pub pus: usize,
}

fn load() -> Result<Topology, HwError> {
    let err = |e: &dyn std::fmt::Display| HwError::Hwloc(e.to_string());
    Topology::builder()
        .with_io_type_filter(TypeFilter::KeepImportant)
        .map_err(|e| err(&e))?
        .build()
        .map_err(|e| err(&e))
}

/// The object as lstopo writes it: type, attributes (cache size, PCI ids), without the cpuset.
fn label(obj: &TopologyObject) -> String {
    let text = obj.to_string();
    match text.find(" with CpuSet(") {
        Some(start) => {
            let end = text[start..]
                .find(')')
                .map_or(text.len(), |i| start + i + 1);
            format!("{}{}", &text[..start], &text[end..])
        }
        None => text,
    }
}

fn walk(obj: &TopologyObject, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let mut line = format!("{indent}{} L#{}", label(obj), obj.logical_index());
    if let Some(os) = obj.os_index() {
        line.push_str(&format!(" (P#{os})"));
    }
    if let Some(name) = obj.name() {
        line.push_str(&format!(" \"{}\"", name.to_string_lossy()));
    }
    let _ = writeln!(out, "{line}");
    for child in obj.all_children() {
        walk(child, depth + 1, out);
    }
}

/// The topology as an indented tree, and its summary.
pub fn dump() -> Result<(String, Summary), HwError> {
    let topo = load()?;
    let count = |t: ObjectType| topo.objects_with_type(t).count();
    let summary = Summary {
        packages: count(ObjectType::Package),
        numa_nodes: count(ObjectType::NUMANode),
        cores: count(ObjectType::Core),
        pus: count(ObjectType::PU),
    };
    let mut out = String::new();
    walk(topo.root_object(), 0, &mut out);
    Ok((out, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_matches_sysfs() {
        let (tree, s) = dump().expect("hwloc topology");
        assert!(tree.starts_with("Machine"), "{tree}");
        assert!(tree.contains("Core L#0"), "{tree}");
        let cpu = crate::CpuTopology::read(&crate::SysRoot::default()).expect("sysfs");
        assert_eq!(s.pus, cpu.online.len());
        assert_eq!(s.numa_nodes, cpu.numa_nodes.len().max(1));
        assert!(s.cores >= 1 && s.cores <= s.pus);
    }
}
