//! DAOS's validation rules (DAOS_FACTS §1.2-1.5) applied to the decoded, overridden model.
//!
//! Rules work on canonical paths (`engines[1].storage[0].scm_mount`); [`Spans`] turns each into
//! the path the admin wrote and the line and column (or the flag) it came from. Messages keep
//! DAOS's wording where DAOS has one, so searches for a DAOS error still find the cause.

use std::collections::{BTreeMap, HashMap};

use crate::decode::{Spans, has_port};
use crate::error::{ConfigError, ErrorKind, Notice};
use crate::model::*;

const CONTROL_LOG_LEVELS: &[&str] = &["DISABLED", "TRACE", "DEBUG", "INFO", "NOTICE", "ERROR"];
const ENGINE_LOG_LEVELS: &[&str] = &[
    "DEBUG", "DBUG", "INFO", "NOTE", "WARN", "ERROR", "ERR", "CRIT", "ALRT", "FATAL", "EMRG",
    "EMIT",
];
const BDEV_ROLES: &[&str] = &["data", "meta", "wal"];
/// tcp and sockets use port..port+3 of an interface.
const FABRIC_PORT_SPAN: u16 = 4;

struct Rules<'a> {
    spans: &'a Spans,
    errors: Vec<ConfigError>,
    notices: Vec<Notice>,
}

impl Rules<'_> {
    fn push(
        &mut self,
        kind: ErrorKind,
        canon: &str,
        message: impl Into<String>,
        value: Option<String>,
        fix: impl Into<String>,
    ) {
        let (display, origin) = self.spans.resolve(canon);
        let mut e = ConfigError::new(kind, display, message).fix(fix).at(origin);
        e.value = value;
        self.errors.push(e);
    }

    fn bad(
        &mut self,
        canon: &str,
        value: impl std::fmt::Debug,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(
            ErrorKind::BadValue,
            canon,
            message,
            Some(format!("{value:?}")),
            fix,
        );
    }

    fn missing(&mut self, canon: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(ErrorKind::MissingKey, canon, message, None, fix);
    }

    fn conflict(&mut self, canon: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(ErrorKind::Conflict, canon, message, None, fix);
    }

    fn notice(&mut self, path: &str, message: impl Into<String>) {
        self.notices.push(Notice {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// True for a PCI address `DDDD:BB:DD.F` (or a VMD backing address with a 6-digit domain).
pub fn is_pci_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let [domain, bus, devfn] = parts.as_slice() else {
        return false;
    };
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    (hex(domain, 4) || hex(domain, 6))
        && hex(bus, 2)
        && hex(dev, 2)
        && u8::from_str_radix(dev, 16).is_ok_and(|d| d <= 0x1f)
        && func.len() == 1
        && func.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

/// Parses `0x80-0x8f` or `128-143` into an inclusive bus-id range.
pub fn parse_busid_range(s: &str) -> Option<(u8, u8)> {
    let (a, b) = s.split_once('-')?;
    let num = |x: &str| -> Option<u8> {
        let x = x.trim();
        match x.strip_prefix("0x").or_else(|| x.strip_prefix("0X")) {
            Some(h) => u8::from_str_radix(h, 16).ok(),
            None => x.parse().ok(),
        }
    };
    let (a, b) = (num(a)?, num(b)?);
    (a <= b).then_some((a, b))
}

fn valid_provider(p: &str) -> bool {
    let Some(name) = p.strip_prefix("ofi+").or_else(|| p.strip_prefix("ucx+")) else {
        return false;
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_;+-".contains(&b))
}

/// Validates the whole model; returns every error and the notices.
/// `decoded_ok` is false when decoding already found errors: rules that compare engines with
/// each other are then skipped, since a half-decoded engine differs from its peers only
/// because of the error already reported.
pub fn server(s: &Server, spans: &Spans, decoded_ok: bool) -> (Vec<ConfigError>, Vec<Notice>) {
    let mut r = Rules {
        spans,
        errors: Vec::new(),
        notices: Vec::new(),
    };
    top_level(&mut r, s);
    for (i, e) in s.engines.iter().enumerate() {
        engine(&mut r, s, i, e);
    }
    let engines_ok = decoded_ok && r.errors.is_empty();
    across_engines(&mut r, s, engines_ok);
    (r.errors, r.notices)
}

/// Directories an SCM mount or a file bdev must never be in (or be): the system's own.
const SYSTEM_DIRS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys",
    "/usr",
];

/// Whether `path` is `/` or lies in one of [`SYSTEM_DIRS`].
fn is_system_path(path: &std::path::Path) -> bool {
    let normal: std::path::PathBuf = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    normal == std::path::Path::new("/") || SYSTEM_DIRS.iter().any(|d| normal.starts_with(d))
}

fn top_level(r: &mut Rules<'_>, s: &Server) {
    if s.name.is_empty() || s.name.chars().count() > SYSTEM_NAME_MAX {
        r.bad(
            "name",
            &s.name,
            format!("system name must be 1 to {SYSTEM_NAME_MAX} characters"),
            format!("use a name of at most {SYSTEM_NAME_MAX} characters, e.g. daos_server"),
        );
    } else if !s
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        r.bad(
            "name",
            s.name.escape_debug(),
            "system name may hold only letters, digits, '_', '-' and '.'",
            "use a name such as daos_server",
        );
    }
    if s.port == 0 {
        r.bad(
            "port",
            s.port,
            "control port must be > 0",
            "use a free TCP port, 10001 by default",
        );
    }
    if !s.socket_dir.is_absolute() {
        r.bad(
            "socket_dir",
            &s.socket_dir,
            "socket_dir must be an absolute path",
            "use a path such as /var/run/daos_server",
        );
    }

    // Management service replicas.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, rep) in s.mgmt_svc_replicas.iter().enumerate() {
        let canon = format!("mgmt_svc_replicas[{i}]");
        match split_host_port(rep) {
            Some((host, port)) if !host.is_empty() && port > 0 => {}
            _ => r.bad(
                &canon,
                rep,
                "not a valid host[:port] address",
                "write host or host:port, e.g. node-1:10001",
            ),
        }
        if let Some(first) = seen.insert(rep.as_str(), i) {
            r.push(
                ErrorKind::Duplicate,
                &canon,
                format!("duplicate of mgmt_svc_replicas[{first}]"),
                Some(format!("{rep:?}")),
                "list each replica once",
            );
        }
    }
    if !s.engines.is_empty() {
        let n = s.mgmt_svc_replicas.len();
        if n.is_multiple_of(2) {
            r.bad(
                "mgmt_svc_replicas",
                n,
                format!("the number of management service replicas must be odd, not {n}"),
                "list 1, 3 or 5 replica hosts (an odd number keeps a Raft majority)",
            );
        }
        if n == 1 {
            r.notice("mgmt_svc_replicas", "Configuration includes only one MS replica. This provides no redundancy in the event of a MS replica failure.");
        }
    }

    // Provider.
    if let Some(p) = &s.provider {
        if p.contains([',', ' ', '\t']) {
            r.bad(
                "provider",
                p,
                "only one provider may be set (multi-provider is not enabled)",
                "keep a single provider, e.g. ofi+tcp",
            );
        } else if !valid_provider(p) {
            r.bad("provider", p, "not a fabric provider name", "use the ofi+ form that `daos_server network scan` prints, e.g. ofi+tcp or ofi+verbs");
        }
    } else if !s.engines.is_empty() && s.engines.iter().any(|e| e.provider.is_empty()) {
        r.missing("provider", "provider not specified in server configuration", "add `provider: ofi+tcp` (or the provider `daos_server network scan` lists for your fabric)");
    }

    if !CONTROL_LOG_LEVELS.contains(&s.control_log_mask.to_ascii_uppercase().as_str()) {
        r.bad(
            "control_log_mask",
            &s.control_log_mask,
            "unknown control log level",
            format!("use one of {}", CONTROL_LOG_LEVELS.join(", ")),
        );
    }
    if s.disable_hugepages && s.nr_hugepages != 0 {
        r.conflict(
            "nr_hugepages",
            "nr_hugepages cannot be set when disable_hugepages is true",
            "remove nr_hugepages or set disable_hugepages: false",
        );
    }
    if s.disable_hugepages
        && s.engines
            .iter()
            .flat_map(|e| e.bdevs())
            .any(|t| t.class == TierClass::Nvme)
    {
        r.conflict(
            "disable_hugepages",
            "hugepages cannot be disabled when NVMe devices are configured",
            "set disable_hugepages: false; SPDK needs hugepages for NVMe",
        );
    }
    if s.system_ram_reserved == 0 {
        r.bad(
            "system_ram_reserved",
            0,
            "must be > 0 (GiB of RAM kept for the system)",
            "use at least 1; DAOS's default is 64",
        );
    }
    if s.fault_path.is_some() && s.fault_cb.is_some() {
        r.conflict(
            "fault_cb",
            "fault_path and fault_cb cannot both be set",
            "keep one way of naming the fault domain",
        );
    }
    if let Some(fp) = &s.fault_path {
        let levels = fp
            .strip_prefix('/')
            .map(|rest| rest.split('/').collect::<Vec<_>>());
        let ok =
            levels.is_some_and(|l| (1..=2).contains(&l.len()) && l.iter().all(|p| !p.is_empty()));
        if !ok {
            r.bad(
                "fault_path",
                fp,
                "fault domain must be 1 or 2 levels below the root",
                "write it like /rack1/host1 or /host1",
            );
        }
    }
    for (key, list) in [
        ("bdev_include", &s.bdev_include),
        ("bdev_exclude", &s.bdev_exclude),
    ] {
        for (i, addr) in list.iter().enumerate() {
            if !is_pci_address(addr) {
                r.bad(
                    &format!("{key}[{i}]"),
                    addr,
                    "not a PCI address",
                    "write it as DDDD:BB:DD.F, e.g. 0000:81:00.0",
                );
            }
        }
    }
    for (i, addr) in s.bdev_exclude.iter().enumerate() {
        if let Some(idx) = s
            .engines
            .iter()
            .position(|e| e.bdevs().any(|t| t.bdev_list.contains(addr)))
        {
            r.conflict(
                &format!("bdev_exclude[{i}]"),
                format!("{addr} is excluded but engine {idx} lists it in bdev_list"),
                "remove it from bdev_exclude or from the engine's bdev_list",
            );
        }
    }
    if let Some(cm) = &s.control_metadata
        && cm.device.is_some()
        && cm.path.is_none()
    {
        r.missing(
            "control_metadata.path",
            "control_metadata.device is set without control_metadata.path",
            "add the path the device is mounted at",
        );
    }
    for (i, kv) in s.client_env_vars.iter().enumerate() {
        if kv.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            r.bad(
                &format!("client_env_vars[{i}]"),
                kv,
                "not a KEY=VALUE pair",
                "write it as NAME=value",
            );
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets); a missing port is reported as 0.
fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => 0,
            None => return None,
        };
        return Some((host, port));
    }
    if !has_port(addr) {
        return (!addr.contains(':')).then_some((addr, 0));
    }
    let (host, port) = addr.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

fn engine(r: &mut Rules<'_>, s: &Server, i: usize, e: &Engine) {
    let p = format!("engines[{i}]");
    if e.targets == 0 && r.spans.is_set(&format!("{p}.targets")) {
        r.bad(
            &format!("{p}.targets"),
            0,
            "targets must be > 0",
            "set targets to the number of target cores of this engine",
        );
    }
    if e.nr_xs_helpers > 2 * e.targets && e.targets > 0 {
        r.notice(&format!("{p}.nr_xs_helpers"), format!("#nr_xs_helpers({}) cannot exceed 2 times #targets (2 x {} = {}); the engine will clamp it.", e.nr_xs_helpers, e.targets, 2 * e.targets));
    }
    if e.first_core.is_some() && e.pinned_numa_node.is_some() {
        r.conflict(&format!("{p}.first_core"), "cannot specify both pinned_numa_node and first_core", "remove first_core (cores then come from the pinned NUMA node) or remove pinned_numa_node");
    }
    if e.fabric_iface.is_empty() {
        r.missing(&format!("{p}.fabric_iface"), "fabric_iface is required", "add `fabric_iface:` with an interface from `daos_server network scan`, e.g. eth0 or lo");
    } else if e.fabric_iface.len() > 15 || e.fabric_iface.contains(['/', ' ']) {
        r.bad(
            &format!("{p}.fabric_iface"),
            &e.fabric_iface,
            "not a network interface name",
            "use an interface name such as eth0 or ib0",
        );
    }
    if e.fabric_iface_port == 0 {
        r.missing(&format!("{p}.fabric_iface_port"), "fabric_iface_port is required (it is not optional)", "add `fabric_iface_port:` e.g. 31416, at least 4 apart from other engines on the same interface");
    } else if u32::from(e.fabric_iface_port) + 1 + e.targets > u32::from(u16::MAX) {
        // The targets listen on the ports above it, one each.
        r.bad(
            &format!("{p}.fabric_iface_port"),
            e.fabric_iface_port,
            format!(
                "with {} targets the engine needs ports {} to {}, past 65535",
                e.targets,
                e.fabric_iface_port,
                u32::from(e.fabric_iface_port) + 1 + e.targets
            ),
            format!(
                "use a port of at most {}",
                u32::from(u16::MAX).saturating_sub(1 + e.targets)
            ),
        );
    }
    let inherited = s.provider.as_ref() == Some(&e.provider);
    if inherited {
        // Checked once, at the top level.
    } else if !e.provider.is_empty() && !valid_provider(&e.provider) {
        r.bad(
            &format!("{p}.provider"),
            &e.provider,
            "not a fabric provider name",
            "use the ofi+ form, e.g. ofi+tcp",
        );
    } else if let Some(top) = &s.provider
        && !e.provider.is_empty()
        && &e.provider != top
    {
        r.bad(&format!("{p}.provider"), &e.provider, format!("engine provider differs from the system provider {top:?} (multi-provider is not enabled)"), "remove the engine's provider or make it equal to the top-level provider");
    }
    if let Err(why) = crate::logmask::LogMask::parse(&e.log_mask) {
        r.bad(&format!("{p}.log_mask"), &e.log_mask, format!("not a valid log mask: {why}"), format!("use a level ({}) optionally followed by subsystem=LEVEL pairs, e.g. ERR,mgmt=DEBUG", ENGINE_LOG_LEVELS.join(", ")));
    }
    for (k, kv) in e.env_vars.iter().enumerate() {
        if kv.split_once('=').is_none_or(|(key, _)| key.is_empty()) {
            r.bad(
                &format!("{p}.env_vars[{k}]"),
                kv,
                "not a KEY=VALUE pair",
                "write it as NAME=value, e.g. CRT_TIMEOUT=30",
            );
        }
    }
    for (k, name) in e.env_pass_through.iter().enumerate() {
        if name.is_empty() || name.contains('=') {
            r.bad(
                &format!("{p}.env_pass_through[{k}]"),
                name,
                "not a variable name",
                "list only names, e.g. FI_LOG_LEVEL",
            );
        }
    }
    storage(r, s, &p, e);
}

fn storage(r: &mut Rules<'_>, s: &Server, p: &str, e: &Engine) {
    if e.storage.is_empty() {
        r.missing(
            &format!("{p}.storage"),
            "no storage configured",
            "add a `storage:` list whose first tier is SCM (class: ram or dcpm) with a scm_mount",
        );
        return;
    }
    if !e.storage[0].class.is_scm() {
        r.bad(
            &format!("{p}.storage[0].class"),
            e.storage[0].class.as_str(),
            "first storage tier is not scm",
            "make tier 0 `class: ram` (tmpfs) or `class: dcpm`, then list bdev tiers after it",
        );
    }
    let mut scm_seen = false;
    for (k, t) in e.storage.iter().enumerate() {
        let tp = format!("{p}.storage[{k}]");
        if t.class.is_scm() {
            if scm_seen {
                r.bad(
                    &format!("{tp}.class"),
                    t.class.as_str(),
                    "only one SCM tier is allowed per engine",
                    "keep one ram or dcpm tier, as tier 0",
                );
            }
            scm_seen = true;
            scm_tier(r, &tp, t);
        } else {
            bdev_tier(r, &tp, t);
        }
    }
    let bdevs: Vec<(usize, &Tier)> = e
        .storage
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.class.is_scm())
        .collect();
    let nvme = bdevs.iter().any(|(_, t)| t.class == TierClass::Nvme);
    if let Some((k, t)) = bdevs
        .iter()
        .find(|(_, t)| t.class.is_emulated_bdev())
        .filter(|_| nvme)
    {
        r.conflict(
            &format!("{p}.storage[{k}].class"),
            format!(
                "cannot mix real NVMe and emulated ({}) bdev tiers in one engine",
                t.class.as_str()
            ),
            "use either nvme or emulated classes for all bdev tiers of an engine",
        );
    }
    let with_roles = bdevs
        .iter()
        .filter(|(_, t)| !t.bdev_roles.is_empty())
        .count();
    if with_roles == 0 {
        if bdevs.len() > 1 {
            let (k, _) = bdevs[1];
            r.bad(
                &format!("{p}.storage[{k}]"),
                bdevs.len(),
                "more than one bdev tier needs bdev_roles (MD-on-SSD)",
                "merge the devices into one bdev tier, or give every bdev tier bdev_roles",
            );
        }
        return;
    }
    if with_roles != bdevs.len() {
        let (k, _) = bdevs
            .iter()
            .find(|(_, t)| t.bdev_roles.is_empty())
            .copied()
            .unwrap_or(bdevs[0]);
        r.missing(
            &format!("{p}.storage[{k}].bdev_roles"),
            "bdev_roles must be set on all bdev tiers or on none",
            "add bdev_roles to this tier",
        );
    }
    if bdevs.len() > 3 {
        r.bad(
            &format!("{p}.storage"),
            bdevs.len(),
            "at most 3 bdev tiers with roles",
            "use wal, meta and data tiers at most",
        );
    }
    if e.storage[0].class != TierClass::Ram {
        r.conflict(
            &format!("{p}.storage[0].class"),
            "bdev_roles (MD-on-SSD) need an SCM tier of class ram",
            "use `class: ram` for tier 0",
        );
    }
    for role in BDEV_ROLES {
        let n = bdevs
            .iter()
            .filter(|(_, t)| t.bdev_roles.iter().any(|x| x == role))
            .count();
        if n != 1 {
            r.bad(
                &format!("{p}.storage"),
                n,
                format!("role {role} must be assigned to exactly one bdev tier"),
                "assign each of wal, meta and data exactly once",
            );
        }
    }
    if s.control_metadata
        .as_ref()
        .and_then(|c| c.path.as_ref())
        .is_none()
    {
        r.missing(
            "control_metadata.path",
            "bdev_roles (MD-on-SSD) require control_metadata.path",
            "add `control_metadata:` with `path:` on a persistent file system",
        );
    }
}

fn scm_tier(r: &mut Rules<'_>, tp: &str, t: &Tier) {
    match &t.scm_mount {
        None => r.missing(
            &format!("{tp}.scm_mount"),
            "scm_mount is required",
            "add `scm_mount:` with the directory to mount SCM at, e.g. /mnt/daos0",
        ),
        Some(m) if !m.is_absolute() => r.bad(
            &format!("{tp}.scm_mount"),
            m,
            "scm_mount must be an absolute path",
            "use a path such as /mnt/daos0",
        ),
        Some(m) if is_system_path(m) => r.bad(
            &format!("{tp}.scm_mount"),
            m,
            "scm_mount is / or a system directory (a format would erase it)",
            "use a directory of its own such as /mnt/daos0",
        ),
        Some(_) => {}
    }
    for key in [
        "bdev_list",
        "bdev_size",
        "bdev_number",
        "bdev_busid_range",
        "bdev_roles",
    ] {
        let set = match key {
            "bdev_list" => !t.bdev_list.is_empty(),
            "bdev_size" => t.bdev_size.is_some(),
            "bdev_number" => t.bdev_number.is_some(),
            "bdev_busid_range" => t.bdev_busid_range.is_some(),
            _ => !t.bdev_roles.is_empty(),
        };
        if set {
            r.conflict(
                &format!("{tp}.{key}"),
                format!("{key} does not apply to an SCM tier"),
                "move it to a bdev tier (class nvme, file, kdev or malloc)",
            );
        }
    }
    match t.class {
        TierClass::Ram => {
            if !t.scm_list.is_empty() {
                r.conflict(
                    &format!("{tp}.scm_list"),
                    "scm_list is only for class dcpm",
                    "remove scm_list; a ram tier is a tmpfs sized by scm_size",
                );
            }
            if let Some(size) = t.scm_size.filter(|s| *s > 0 && *s < MIN_RAM_SCM_GIB) {
                r.bad(&format!("{tp}.scm_size"), size, format!("below the minimum tmpfs size of {MIN_RAM_SCM_GIB} GiB"), format!("use scm_size: {MIN_RAM_SCM_GIB} or more (GiB), or omit it to size automatically"));
            }
        }
        TierClass::Dcpm => {
            if t.scm_size.is_some() {
                r.conflict(
                    &format!("{tp}.scm_size"),
                    "scm_size is only for class ram",
                    "remove scm_size; a dcpm tier is as large as its device",
                );
            }
            if t.scm_list.is_empty() {
                r.missing(
                    &format!("{tp}.scm_list"),
                    "class dcpm needs scm_list",
                    "add `scm_list: [/dev/pmem0]`",
                );
            } else if t.scm_list.len() > 1 {
                r.bad(
                    &format!("{tp}.scm_list"),
                    &t.scm_list,
                    "only one dcpm device per engine",
                    "list a single /dev/pmemN",
                );
            }
            if t.scm_hugepages_disabled.is_some() {
                r.conflict(
                    &format!("{tp}.scm_hugepages_disabled"),
                    "scm_hugepages_disabled is only for class ram",
                    "remove it",
                );
            }
        }
        _ => {}
    }
}

fn bdev_tier(r: &mut Rules<'_>, tp: &str, t: &Tier) {
    for (key, set) in [
        ("scm_mount", t.scm_mount.is_some()),
        ("scm_size", t.scm_size.is_some()),
        ("scm_list", !t.scm_list.is_empty()),
        ("scm_hugepages_disabled", t.scm_hugepages_disabled.is_some()),
    ] {
        if set {
            r.conflict(
                &format!("{tp}.{key}"),
                format!("{key} does not apply to a {} tier", t.class.as_str()),
                "move it to the SCM tier (tier 0)",
            );
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, dev) in t.bdev_list.iter().enumerate() {
        if let Some(first) = seen.insert(dev.as_str(), i) {
            r.push(
                ErrorKind::Duplicate,
                &format!("{tp}.bdev_list[{i}]"),
                format!("duplicate of bdev_list[{first}]"),
                Some(format!("{dev:?}")),
                "list each device once",
            );
        }
    }
    match t.class {
        TierClass::Nvme => {
            let pci: Vec<bool> = t.bdev_list.iter().map(|d| is_pci_address(d)).collect();
            for (i, dev) in t.bdev_list.iter().enumerate() {
                if !pci[i] {
                    r.bad(&format!("{tp}.bdev_list[{i}]"), dev, "not a PCI address", "write NVMe controllers as DDDD:BB:DD.F, e.g. 0000:81:00.0 (see `daos_server storage scan`); use class file or kdev for paths");
                }
            }
            if let Some(range) = &t.bdev_busid_range
                && parse_busid_range(range).is_none()
            {
                r.bad(
                    &format!("{tp}.bdev_busid_range"),
                    range,
                    "not a bus-id range",
                    "write it as 0x80-0x8f or 128-143 (begin <= end <= 255)",
                );
            }
        }
        TierClass::File | TierClass::Kdev => {
            if t.bdev_list.is_empty() {
                r.missing(
                    &format!("{tp}.bdev_list"),
                    format!("class {} needs bdev_list", t.class.as_str()),
                    "list the file or block device paths, e.g. [/tmp/daos-bdev]",
                );
            }
            for (i, dev) in t.bdev_list.iter().enumerate() {
                if !dev.starts_with('/') {
                    r.bad(
                        &format!("{tp}.bdev_list[{i}]"),
                        dev,
                        "must be an absolute path",
                        "use a full path such as /dev/loop0 or /var/daos/bdev0",
                    );
                } else if t.class == TierClass::File && is_system_path(std::path::Path::new(dev)) {
                    r.bad(
                        &format!("{tp}.bdev_list[{i}]"),
                        dev,
                        "a file bdev in a system directory (a format would overwrite it)",
                        "use a file of its own such as /var/daos/bdev0",
                    );
                } else if t.class == TierClass::Kdev && !dev.starts_with("/dev/") {
                    r.bad(
                        &format!("{tp}.bdev_list[{i}]"),
                        dev,
                        "class kdev takes block devices under /dev",
                        "use a device such as /dev/loop0, or class file for a file",
                    );
                }
            }
            if t.class == TierClass::File && t.bdev_size.is_none_or(|s| s == 0) {
                r.missing(
                    &format!("{tp}.bdev_size"),
                    "class file needs bdev_size > 0 (GB)",
                    "add `bdev_size: 16` (GB per file)",
                );
            }
        }
        TierClass::Malloc => {
            if t.bdev_number.is_none_or(|n| n == 0) {
                r.missing(
                    &format!("{tp}.bdev_number"),
                    "class malloc needs bdev_number > 0",
                    "add `bdev_number: 1`",
                );
            }
            if t.bdev_size.is_none_or(|s| s == 0) {
                r.missing(
                    &format!("{tp}.bdev_size"),
                    "class malloc needs bdev_size > 0 (GB)",
                    "add `bdev_size: 4` (GB per RAM disk)",
                );
            }
        }
        TierClass::Dcpm | TierClass::Ram => {}
    }
    if t.bdev_busid_range.is_some() && t.class != TierClass::Nvme {
        r.conflict(
            &format!("{tp}.bdev_busid_range"),
            "bdev_busid_range is only for class nvme",
            "remove it",
        );
    }
    for (i, role) in t.bdev_roles.iter().enumerate() {
        if !BDEV_ROLES.contains(&role.as_str()) {
            r.bad(
                &format!("{tp}.bdev_roles[{i}]"),
                role,
                "unknown bdev role",
                "use data, meta or wal",
            );
        }
    }
}

fn across_engines(r: &mut Rules<'_>, s: &Server, compare: bool) {
    let engines = &s.engines;
    for j in 1..engines.len() {
        let b = &engines[j];
        let pj = format!("engines[{j}]");
        for (i, a) in engines.iter().enumerate().take(j) {
            if !a.fabric_iface.is_empty()
                && a.provider == b.provider
                && a.fabric_iface == b.fabric_iface
            {
                if a.fabric_iface_port == b.fabric_iface_port {
                    r.push(ErrorKind::Duplicate, &format!("{pj}.fabric_iface_port"), format!("the fabric configuration in I/O Engine {j} is a duplicate of I/O Engine {i}"), Some(format!("{}:{}", b.fabric_iface, b.fabric_iface_port)), "give each engine its own fabric_iface, or ports at least 4 apart on a shared interface");
                } else if a.fabric_iface_port.abs_diff(b.fabric_iface_port) < FABRIC_PORT_SPAN {
                    r.bad(&format!("{pj}.fabric_iface_port"), b.fabric_iface_port, format!("engines sharing {} need ports at least {FABRIC_PORT_SPAN} apart (engine {i} uses {})", b.fabric_iface, a.fabric_iface_port), format!("use {} or more", a.fabric_iface_port + FABRIC_PORT_SPAN));
                }
            }
            if let (Some(x), Some(y)) = (&a.log_file, &b.log_file)
                && x == y
            {
                r.push(
                    ErrorKind::Duplicate,
                    &format!("{pj}.log_file"),
                    format!(
                        "the log_file value in I/O Engine {j} is a duplicate of I/O Engine {i}"
                    ),
                    Some(format!("{y:?}")),
                    "give each engine its own log_file",
                );
            }
            if let (Some((_, x)), Some((k, y))) = (scm_of(a), scm_of(b)) {
                if x.scm_mount.is_some() && x.scm_mount == y.scm_mount {
                    r.push(
                        ErrorKind::Duplicate,
                        &format!("{pj}.storage[{k}].scm_mount"),
                        format!(
                            "the scm_mount value in I/O Engine {j} is a duplicate of I/O Engine {i}"
                        ),
                        y.scm_mount.as_ref().map(|m| format!("{m:?}")),
                        "give each engine its own scm_mount, e.g. /mnt/daos0 and /mnt/daos1",
                    );
                }
                for (n, dev) in y.scm_list.iter().enumerate() {
                    if x.scm_list.contains(dev) {
                        r.push(ErrorKind::Duplicate, &format!("{pj}.storage[{k}].scm_list[{n}]"), format!("the scm_list value in I/O Engine {j} is a duplicate of I/O Engine {i}"), Some(format!("{dev:?}")), "give each engine its own pmem device");
                    }
                }
            }
            for (k, t) in b
                .storage
                .iter()
                .enumerate()
                .filter(|(_, t)| !t.class.is_scm())
            {
                for (n, dev) in t.bdev_list.iter().enumerate() {
                    if a.bdevs().any(|o| o.bdev_list.contains(dev)) {
                        r.push(ErrorKind::Duplicate, &format!("{pj}.storage[{k}].bdev_list[{n}]"), format!("the bdev_list value in engine {j} overlaps with entries in engine {i}"), Some(format!("{dev:?}")), "give each device to one engine only");
                    }
                }
            }
        }
        if !compare {
            continue;
        }
        let first = &engines[0];
        if b.targets != first.targets && b.targets > 0 && first.targets > 0 {
            r.bad(
                &format!("{pj}.targets"),
                b.targets,
                format!(
                    "all engines must have the same number of targets (engine 0 has {})",
                    first.targets
                ),
                format!("set targets: {}", first.targets),
            );
        }
        if b.nr_xs_helpers != first.nr_xs_helpers {
            r.bad(
                &format!("{pj}.nr_xs_helpers"),
                b.nr_xs_helpers,
                format!(
                    "all engines must have the same nr_xs_helpers (engine 0 has {})",
                    first.nr_xs_helpers
                ),
                format!("set nr_xs_helpers: {}", first.nr_xs_helpers),
            );
        }
        if let (Some((_, x)), Some((k, y))) = (scm_of(first), scm_of(b))
            && x.class != y.class
        {
            r.bad(
                &format!("{pj}.storage[{k}].class"),
                y.class.as_str(),
                format!(
                    "all engines must use the same SCM class (engine 0 uses {})",
                    x.class.as_str()
                ),
                format!("use class {}", x.class.as_str()),
            );
        }
        let count = |e: &Engine| e.bdevs().map(|t| t.bdev_list.len()).sum::<usize>();
        if count(b) != count(first) {
            r.bad(
                &format!("{pj}.storage"),
                count(b),
                format!(
                    "all engines must have the same number of bdevs (engine 0 has {})",
                    count(first)
                ),
                "give every engine the same number of devices",
            );
        }
    }
    if compare
        && !s.allow_numa_imbalance
        && engines.len() > 1
        && engines.iter().all(|e| e.pinned_numa_node.is_some())
    {
        let mut per_node: BTreeMap<u32, usize> = BTreeMap::new();
        for e in engines {
            *per_node.entry(e.pinned_numa_node.unwrap_or(0)).or_default() += 1;
        }
        let counts: Vec<usize> = per_node.values().copied().collect();
        if counts.windows(2).any(|w| w[0] != w[1]) {
            r.bad("engines", per_node, "uneven distribution of engines across NUMA nodes", "pin the same number of engines to each NUMA node, or set allow_numa_imbalance: true");
        }
    }
}

fn scm_of(e: &Engine) -> Option<(usize, &Tier)> {
    e.storage.iter().enumerate().find(|(_, t)| t.class.is_scm())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:81:00.0"));
        assert!(is_pci_address("0000:5d:05.5"));
        assert!(is_pci_address("5d0505:01:00.0"));
        assert!(!is_pci_address("0000:81:00"));
        assert!(!is_pci_address("0000:81:20.0"));
        assert!(!is_pci_address("0000:81:00.8"));
        assert!(!is_pci_address("/dev/nvme0n1"));
        assert!(!is_pci_address("000:81:00.0"));
    }

    #[test]
    fn busid_ranges() {
        assert_eq!(parse_busid_range("0x80-0x8f"), Some((0x80, 0x8f)));
        assert_eq!(parse_busid_range("128-143"), Some((128, 143)));
        assert_eq!(parse_busid_range("0x8f-0x80"), None);
        assert_eq!(parse_busid_range("0x80"), None);
        assert_eq!(parse_busid_range("1-300"), None);
    }

    #[test]
    fn log_masks() {
        let ok = |m: &str| crate::logmask::LogMask::parse(m).is_ok();
        assert!(ok("ERR"));
        assert!(ok("info"));
        assert!(ok("ERR,mgmt=DEBUG"));
        assert!(ok("DEBUG,RPC=ERR,MEM=ERR"));
        assert!(!ok("LOUD"));
        assert!(!ok("ERR,=DEBUG"));
        assert!(!ok(""));
    }

    #[test]
    fn providers() {
        assert!(valid_provider("ofi+tcp;ofi_rxm"));
        assert!(valid_provider("ucx+dc_x"));
        assert!(!valid_provider("tcp"));
        assert!(!valid_provider("ofi+"));
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("node:10001"), Some(("node", 10001)));
        assert_eq!(split_host_port("node"), Some(("node", 0)));
        assert_eq!(split_host_port("[::1]:7"), Some(("::1", 7)));
        assert_eq!(split_host_port("node:x"), None);
        assert_eq!(split_host_port("a:b:c"), None);
    }
}
