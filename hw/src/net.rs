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

    /// The ARPHRD value (DAOS's `netdevclass`).
    pub fn arphrd(self) -> u32 {
        match self {
            NetClass::Ether => 1,
            NetClass::Infiniband => 32,
            NetClass::Loopback => 772,
            NetClass::Other(n) => n,
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

/// The environment variable naming the address this server's host is known by, for several
/// hosts on one machine (each on its own loopback address, `127.0.0.2`, `127.0.0.3`, ...).
/// Set, daos_server listens on that address only (not `0.0.0.0`), recognises itself among
/// `mgmt_svc_replicas` by it alone, and its engines bind their fabric endpoints there.
pub const HOST_ADDR_ENV: &str = "DAOS_RS_HOST_ADDR";

/// [`HOST_ADDR_ENV`] parsed from `value` (`None` when unset or empty); the error names the
/// variable, the value and the fix.
pub fn parse_host_addr(value: Option<&str>) -> Result<Option<IpAddr>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<IpAddr>().map(Some).map_err(|_| {
            format!(
                "{HOST_ADDR_ENV}={v:?} is not an IP address; set it to this host's address \
                 (e.g. 127.0.0.2) or unset it"
            )
        }),
    }
}

/// This process's [`HOST_ADDR_ENV`].
pub fn host_addr() -> Result<Option<IpAddr>, String> {
    parse_host_addr(std::env::var(HOST_ADDR_ENV).ok().as_deref())
}

/// Whether `ip` is an address of this host: the host address when one is set, else a
/// loopback address or one of `ips` (the interfaces' addresses).
pub fn is_host_ip(ip: IpAddr, host: Option<IpAddr>, ips: &[IpAddr]) -> bool {
    match host {
        Some(h) => ip == h,
        None => ip.is_loopback() || ips.contains(&ip),
    }
}

#[cfg(test)]
mod host_addr_tests {
    use super::*;

    #[test]
    fn host_addr_parses_or_names_the_variable() {
        assert_eq!(parse_host_addr(None), Ok(None));
        assert_eq!(parse_host_addr(Some(" ")), Ok(None));
        assert_eq!(
            parse_host_addr(Some("127.0.0.2")),
            Ok(Some(IpAddr::from([127, 0, 0, 2])))
        );
        let e = parse_host_addr(Some("h2")).unwrap_err();
        assert!(
            e.contains("DAOS_RS_HOST_ADDR=\"h2\"") && e.contains("127.0.0.2"),
            "{e}"
        );
    }

    #[test]
    fn with_a_host_address_only_it_is_local() {
        let two = IpAddr::from([127, 0, 0, 2]);
        let one = IpAddr::from([127, 0, 0, 1]);
        assert!(is_host_ip(one, None, &[]));
        assert!(is_host_ip(two, Some(two), &[]));
        assert!(!is_host_ip(one, Some(two), &[one]));
        let eth = IpAddr::from([10, 0, 0, 5]);
        assert!(is_host_ip(eth, None, &[eth]));
        assert!(!is_host_ip(eth, None, &[]));
    }
}
