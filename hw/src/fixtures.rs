//! Sysfs fixture trees describing machines this host is not: for tests (and demos) of the
//! discovery code, which reads everything through a [`crate::SysRoot`].

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

/// Writes a file (and its directories) below `root`.
pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("a relative path has a parent"))
        .expect("create fixture directory");
    fs::write(p, text).expect("write fixture file");
}

/// Creates a symlink below `root`.
pub fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("a relative path has a parent"))
        .expect("create fixture directory");
    symlink(target, p).expect("create fixture link");
}

/// An NVMe controller at `pci`, bound to `driver` (kernel details only for `nvme`).
pub fn nvme_ctrl(
    root: &Path,
    pci: &str,
    numa: &str,
    driver: &str,
    ctrl: &str,
    model: &str,
    ns_sectors: &[u64],
) {
    let base = format!("sys/bus/pci/devices/{pci}");
    write(root, &format!("{base}/class"), "0x010802\n");
    write(root, &format!("{base}/numa_node"), numa);
    // As in sysfs: devices/X/driver links to bus/pci/drivers/<driver>.
    fs::create_dir_all(root.join(format!("sys/bus/pci/drivers/{driver}")))
        .expect("create fixture directory");
    link(
        root,
        &format!("{base}/driver"),
        &format!("../../drivers/{driver}"),
    );
    if driver == "nvme" {
        let c = format!("{base}/nvme/{ctrl}");
        write(root, &format!("{c}/model"), &format!("{model}   \n"));
        write(root, &format!("{c}/serial"), "PHLF1234\n");
        write(root, &format!("{c}/firmware_rev"), "E2010325\n");
        for (i, s) in ns_sectors.iter().enumerate() {
            write(root, &format!("{c}/{ctrl}n{}/size", i + 1), &s.to_string());
        }
    }
}

/// A two-socket storage node: 3 NVMe controllers (one prepared for SPDK), a non-NVMe PCI
/// device, two PMem namespaces, ib0/ib1 and eth0, plus lo.
pub fn storage_node(root: &Path) {
    nvme_ctrl(
        root,
        "0000:81:00.0",
        "0",
        "nvme",
        "nvme0",
        "INTEL SSDPED1K750GA",
        &[1_464_843_750],
    );
    nvme_ctrl(
        root,
        "0000:87:00.0",
        "0",
        "nvme",
        "nvme1",
        "INTEL SSDPEDMD016T4",
        &[1_562_500_000, 1_562_500_000],
    );
    nvme_ctrl(root, "0000:da:00.0", "1", "vfio-pci", "", "", &[]);
    write(root, "sys/bus/pci/devices/0000:00:02.0/class", "0x030000\n");
    for (i, numa) in [(0, "0"), (1, "1")] {
        let base = format!("sys/bus/nd/devices/namespace{i}.0");
        write(root, &format!("{base}/size"), "3183575302144\n");
        write(root, &format!("{base}/mode"), "fsdax\n");
        write(root, &format!("{base}/numa_node"), numa);
        fs::create_dir_all(root.join(format!("{base}/block/pmem{i}")))
            .expect("create fixture directory");
    }
    write(root, "sys/bus/nd/devices/namespace2.0/size", "0\n");
    fs::create_dir_all(root.join("sys/bus/nd/devices/region0")).expect("create fixture directory");
    for (name, t, pci, numa) in [
        ("ib0", "32", "0000:5e:00.0", "0"),
        ("ib1", "32", "0000:d8:00.0", "1"),
        ("eth0", "1", "0000:3b:00.0", "0"),
    ] {
        write(root, &format!("sys/class/net/{name}/type"), t);
        write(root, &format!("sys/class/net/{name}/operstate"), "up\n");
        // As in sysfs: class/net/X/device links to the PCI device directory.
        write(
            root,
            &format!("sys/devices/pci0000:00/{pci}/numa_node"),
            numa,
        );
        link(
            root,
            &format!("sys/class/net/{name}/device"),
            &format!("../../../devices/pci0000:00/{pci}"),
        );
    }
    write(root, "sys/class/net/lo/type", "772\n");
    write(root, "sys/devices/system/cpu/online", "0-7\n");
    write(root, "sys/devices/system/node/node0/cpulist", "0-3\n");
    write(root, "sys/devices/system/node/node1/cpulist", "4-7\n");
    write(root, "proc/sys/vm/nr_hugepages", "0\n");
    write(root, "sys/bus/pci/drivers_probe", "");
    fs::create_dir_all(root.join("sys/kernel/iommu_groups/0")).expect("create fixture directory");
    write(
        root,
        "proc/meminfo",
        "MemTotal:       197568816 kB\nMemFree:        190000000 kB\n",
    );
    write(root, "sys/class/net/lo/operstate", "unknown\n");
}
