//! NVMe, network and PMem discovery against fixture trees (a two-socket storage node, broken
//! and partial trees) and against this machine's real /sys.

use std::fs;

use daos_hw::fixtures::{storage_node, write};
use daos_hw::net::NetClass;
use daos_hw::{SysRoot, net, nvme, pmem};

#[test]
fn nvme_controllers_of_a_storage_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    storage_node(dir.path());
    let c = nvme::scan(&SysRoot::new(dir.path())).expect("scan");
    assert_eq!(c.len(), 3, "{c:?}");
    assert_eq!(c[0].pci_addr, "0000:81:00.0");
    assert_eq!(c[0].model, "INTEL SSDPED1K750GA");
    assert_eq!(c[0].firmware, "E2010325");
    assert_eq!(c[0].numa_node, Some(0));
    assert_eq!(c[0].capacity_bytes(), 1_464_843_750 * 512);
    assert_eq!(c[1].namespaces.len(), 2);
    assert_eq!(c[2].driver.as_deref(), Some("vfio-pci"));
    assert_eq!(c[2].numa_node, Some(1));
    assert!(
        c[2].model.is_empty(),
        "a vfio-bound controller has no kernel model"
    );
}

#[test]
fn pmem_namespaces_of_a_storage_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    storage_node(dir.path());
    let p = pmem::scan(&SysRoot::new(dir.path())).expect("scan");
    assert_eq!(
        p.len(),
        2,
        "unconfigured (size 0) namespaces and regions are skipped: {p:?}"
    );
    assert_eq!(p[1].blockdev.as_deref(), Some("pmem1"));
    assert_eq!(p[1].numa_node, Some(1));
    assert_eq!(p[0].mode, "fsdax");
}

#[test]
fn network_interfaces_of_a_storage_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    storage_node(dir.path());
    let n = net::scan(&SysRoot::new(dir.path())).expect("scan");
    let names: Vec<&str> = n.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["eth0", "ib0", "ib1", "lo"]);
    let ib1 = &n[2];
    assert_eq!(
        (ib1.class, ib1.numa_node, ib1.pci_addr.as_deref()),
        (NetClass::Infiniband, Some(1), Some("0000:d8:00.0"))
    );
    assert_eq!(n[0].class, NetClass::Ether);
    assert_eq!(
        (n[3].class, n[3].numa_node, n[3].pci_addr.as_deref()),
        (NetClass::Loopback, None, None)
    );
}

#[test]
fn machines_without_such_devices_report_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("sys/bus/pci/devices")).expect("mkdir");
    let root = SysRoot::new(dir.path());
    assert!(nvme::scan(&root).expect("nvme").is_empty());
    assert!(pmem::scan(&root).expect("pmem").is_empty());
}

#[test]
fn broken_trees_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    storage_node(dir.path());
    fs::remove_file(
        dir.path()
            .join("sys/bus/pci/devices/0000:87:00.0/nvme/nvme1/model"),
    )
    .expect("rm");
    let e = nvme::scan(&SysRoot::new(dir.path())).expect_err("missing model");
    assert!(
        e.to_string().contains("0000:87:00.0/nvme/nvme1/model"),
        "{e}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    storage_node(dir.path());
    write(
        dir.path(),
        "sys/bus/pci/devices/0000:81:00.0/numa_node",
        "zero",
    );
    let e = nvme::scan(&SysRoot::new(dir.path())).expect_err("bad numa");
    assert!(
        e.to_string()
            .contains("cannot parse \"zero\" as a NUMA node number"),
        "{e}"
    );

    write(dir.path(), "sys/bus/nd/devices/namespace0.0/size", "big");
    let e = pmem::scan(&SysRoot::new(dir.path())).expect_err("bad size");
    assert!(e.to_string().contains("namespace0.0/size"), "{e}");

    fs::remove_file(dir.path().join("sys/class/net/ib0/type")).expect("rm");
    let e = net::scan(&SysRoot::new(dir.path())).expect_err("no type");
    assert!(e.to_string().contains("sys/class/net/ib0/type"), "{e}");
}

#[test]
fn this_machine() {
    let root = SysRoot::default();
    let ifaces = net::scan(&root).expect("real /sys/class/net");
    let lo = ifaces.iter().find(|i| i.name == "lo").expect("lo");
    assert_eq!(lo.class, NetClass::Loopback);
    assert!(lo.addresses.iter().any(|a| a.is_loopback()), "{lo:?}");
    nvme::scan(&root).expect("real NVMe scan (none is fine)");
    pmem::scan(&root).expect("real PMem scan (none is fine)");
}
