//! CPU/NUMA discovery against fixture trees and against this machine's real /sys.

use std::fs;
use std::path::Path;

use daos_hw::{CpuTopology, HwError, SysRoot};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

#[test]
fn two_numa_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "sys/devices/system/cpu/online", "0-7\n");
    write(dir.path(), "sys/devices/system/node/node1/cpulist", "4-7\n");
    write(dir.path(), "sys/devices/system/node/node0/cpulist", "0-3\n");
    write(dir.path(), "sys/devices/system/node/possible", "0-1\n");
    let t = CpuTopology::read(&SysRoot::new(dir.path())).expect("topology");
    assert_eq!(t.online.len(), 8);
    assert_eq!(t.numa_nodes.len(), 2);
    assert_eq!(t.numa_nodes[1].cpus, vec![4, 5, 6, 7]);
    assert_eq!(t.first_numa_node().map(|n| n.id), Some(0));
}

#[test]
fn no_numa_information() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "sys/devices/system/cpu/online", "0-1");
    let t = CpuTopology::read(&SysRoot::new(dir.path())).expect("topology");
    assert!(t.numa_nodes.is_empty());
    assert!(t.first_numa_node().is_none());
}

#[test]
fn broken_trees_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = CpuTopology::read(&SysRoot::new(dir.path())).expect_err("missing online");
    assert!(matches!(err, HwError::Read { .. }));
    assert!(
        err.to_string().contains("sys/devices/system/cpu/online"),
        "{err}"
    );
    write(dir.path(), "sys/devices/system/cpu/online", "zero");
    let err = CpuTopology::read(&SysRoot::new(dir.path())).expect_err("garbage");
    assert!(err.to_string().contains("cannot parse \"zero\""), "{err}");
    write(dir.path(), "sys/devices/system/cpu/online", "0");
    fs::create_dir_all(dir.path().join("sys/devices/system/node/node0")).expect("mkdir");
    let err = CpuTopology::read(&SysRoot::new(dir.path())).expect_err("node without cpulist");
    assert!(err.to_string().contains("node0/cpulist"), "{err}");
}

#[test]
fn this_machine() {
    let t = CpuTopology::read(&SysRoot::default()).expect("real /sys");
    assert!(!t.online.is_empty());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    assert!(t.online.len() >= cores.min(t.online.len()));
}
