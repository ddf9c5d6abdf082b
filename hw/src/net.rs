//! Network interfaces from sysfs (`class/net`): kind (Ethernet, InfiniBand, loopback), NUMA
//! node of the backing PCI device, state, and on the live system their IP addresses.

use std::net::IpAddr;

use crate::nvme::{link_name, numa_of};
use crate::{HwError, SysRoot};

/// What kind of link an interface is (ARPHRD values from `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum NetClass {
    Ether,
    Infiniband,
    Loopback,
    Other(u32),
}

impl NetClass {
    pub fn from_arphrd(t: u32) -> NetClass {
        match t {
            1 => NetClass::Ether,
            32 => NetClass::Infiniband,
            772 => NetClass::Loopback,
            n => NetClass::Other(n),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NetClass::Ether => "ether",
            NetClass::Infiniband => "infiniband",
            NetClass::Loopback => "loopback",
            NetClass::Other(_) => "other",
        }
    }
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NetInterface {
    pub name: String,
    pub class: NetClass,
    pub numa_node: Option<u32>,
    pub pci_addr: Option<String>,
    pub operstate: String,
    pub addresses: Vec<IpAddr>,
}

/// Lists interfaces under `root`; on the live system (`/`) their addresses are added.
pub fn scan(root: &SysRoot) -> Result<Vec<NetInterface>, HwError> {
    let dir = root.path("sys/class/net");
    let entries = std::fs::read_dir(&dir).map_err(|source| HwError::Read {
        path: dir.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let live = root.path("") == std::path::Path::new("/");
    let addrs: Vec<(String, IpAddr)> = if live { live_addresses() } else { Vec::new() };
    let mut out = Vec::new();
    for name in names {
        let base = format!("sys/class/net/{name}");
        let text = root.read(&format!("{base}/type"))?;
        let t: u32 = text.parse().map_err(|_| {
            HwError::parse(
                &root.path(&format!("{base}/type")),
                &text,
                "an interface type number",
            )
        })?;
        let pci_addr = link_name(root, &format!("{base}/device")).filter(|d| d.contains(':'));
        let numa_node = if root.exists(&format!("{base}/device/numa_node")) {
            numa_of(root, &format!("{base}/device/numa_node"))?
        } else {
            None
        };
        let operstate = if root.exists(&format!("{base}/operstate")) {
            root.read(&format!("{base}/operstate"))?
        } else {
            "unknown".into()
        };
        let addresses = addrs
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .collect();
        out.push(NetInterface {
            name,
            class: NetClass::from_arphrd(t),
            numa_node,
            pci_addr,
            operstate,
            addresses,
        });
    }
    Ok(out)
}

fn live_addresses() -> Vec<(String, IpAddr)> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    list.filter_map(|a| {
        let addr = a.address?;
        let ip = addr
            .as_sockaddr_in()
            .map(|s| IpAddr::V4(s.ip()))
            .or_else(|| addr.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))?;
        Some((a.interface_name, ip))
    })
    .collect()
}
