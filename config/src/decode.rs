//! Decoding the spanned YAML tree into the [`Server`] model.
//!
//! Every getter records where its value was written (in [`Spans`]) so that later validation
//! can point at it, and every problem is pushed to the error list instead of returned, so one
//! pass reports all of them. Unknown keys are errors (DAOS HEAD parses strictly), each with the
//! nearest known key as a suggestion.
//!
//! Both forms of the file decode here: `servers:` (v1.0, deprecated) or `engines:`, and per
//! engine either the legacy flat storage keys (`scm_mount`, `scm_class`, `bdev_class`, ...) or a
//! `storage:` tier list. Legacy input is converted to the modern model with a migration notice;
//! its errors still name the keys the admin wrote (`servers[1].scm_mount`).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{ConfigError, ErrorKind, Notice, Origin};
use crate::model::*;
use crate::yaml::{Key, Node, NodeKind};

/// Where each value of the model came from: canonical path → (path as written, origin).
#[derive(Clone, Debug, Default)]
pub struct Spans {
    map: HashMap<String, (String, Origin)>,
}

impl Spans {
    pub fn record(&mut self, canon: impl Into<String>, display: impl Into<String>, origin: Origin) {
        self.map.insert(canon.into(), (display.into(), origin));
    }

    /// The path as written and the origin of a canonical path; for a value that was not
    /// written (a default), the nearest written ancestor decides both.
    pub fn resolve(&self, canon: &str) -> (String, Origin) {
        if let Some((display, origin)) = self.map.get(canon) {
            return (display.clone(), origin.clone());
        }
        let mut prefix = canon;
        while let Some(cut) = prefix.rfind(['.', '[']) {
            prefix = &prefix[..cut];
            if let Some((display, origin)) = self.map.get(prefix) {
                let rest = &canon[prefix.len()..];
                return (format!("{display}{rest}"), origin.clone());
            }
        }
        (canon.to_string(), Origin::Default)
    }

    /// True when the value at this canonical path was written in the file or set by a flag.
    pub fn is_set(&self, canon: &str) -> bool {
        self.map.contains_key(canon)
    }
}

/// Collects errors, notices and spans while decoding.
#[derive(Default)]
pub struct Decoder {
    pub errors: Vec<ConfigError>,
    pub notices: Vec<Notice>,
    pub spans: Spans,
}

/// A mapping being decoded: which keys were read, and its paths.
pub struct MapView<'n> {
    entries: &'n [(Key, Node)],
    seen: Vec<bool>,
    canon: String,
    display: String,
}

impl MapView<'_> {
    /// The mapping's keys, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.name.as_str())
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Edit distance, for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The known key closest to `key`, if close enough to be a likely typo.
pub fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| {
            let prefix = key.len() >= 4 && (k.starts_with(key) || key.starts_with(k));
            (if prefix { 0 } else { distance(key, k) }, *k)
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// Parses an integer as YAML writes it: decimal, `0x` hex, `0o` octal, optional sign.
pub fn parse_int(text: &str) -> Option<i128> {
    let t = text.trim().replace('_', "");
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
    };
    let v = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = t.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()?
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

impl Decoder {
    fn err(
        &mut self,
        kind: ErrorKind,
        display: &str,
        node: &Node,
        message: impl Into<String>,
    ) -> &mut ConfigError {
        self.errors
            .push(ConfigError::new(kind, display, message).at(Origin::File(node.mark)));
        // The vector is non-empty: one element was just pushed.
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    /// Starts decoding a mapping node; a non-mapping is a type error.
    pub fn view<'n>(&mut self, node: &'n Node, canon: &str, display: &str) -> Option<MapView<'n>> {
        self.spans.record(canon, display, Origin::File(node.mark));
        match &node.kind {
            NodeKind::Map(entries) => Some(MapView {
                entries,
                seen: vec![false; entries.len()],
                canon: canon.to_string(),
                display: display.to_string(),
            }),
            _ if node.is_null() => None,
            _ => {
                let what = node.describe();
                let e = self.err(
                    ErrorKind::WrongType,
                    display,
                    node,
                    format!("expected a mapping of keys, found {what}"),
                );
                e.fix = "write it as `key: value` lines indented under its parent".into();
                None
            }
        }
    }

    /// Finds `key`, marks it read and records its position; null values count as absent.
    pub fn field<'n>(
        &mut self,
        view: &mut MapView<'n>,
        key: &str,
    ) -> Option<(&'n Node, String, String)> {
        let i = view.entries.iter().position(|(k, _)| k.name == key)?;
        view.seen[i] = true;
        let node = &view.entries[i].1;
        let canon = join(&view.canon, key);
        let display = join(&view.display, key);
        self.spans.record(&canon, &display, Origin::File(node.mark));
        if node.is_null() {
            None
        } else {
            Some((node, canon, display))
        }
    }

    /// A nested mapping under `key`, ready to decode.
    pub fn sub<'n>(&mut self, v: &mut MapView<'n>, key: &str) -> Option<MapView<'n>> {
        let (node, canon, display) = self.field(v, key)?;
        self.view(node, &canon, &display)
    }

    /// Like [`Self::field`] but records the value under another canonical path (legacy keys).
    pub fn field_as<'n>(
        &mut self,
        view: &mut MapView<'n>,
        key: &str,
        canon: &str,
    ) -> Option<(&'n Node, String)> {
        let (node, _, display) = self.field(view, key)?;
        self.spans.record(canon, &display, Origin::File(node.mark));
        Some((node, display))
    }

    /// True when the mapping has this key (even with a null value).
    pub fn has(view: &MapView<'_>, key: &str) -> bool {
        view.entries.iter().any(|(k, _)| k.name == key)
    }

    /// Reports every key of the mapping that no getter read.
    pub fn finish(&mut self, view: MapView<'_>, known: &[&str]) {
        for ((key, _), seen) in view.entries.iter().zip(&view.seen) {
            if *seen {
                continue;
            }
            let display = join(&view.display, &key.name);
            let fix = match suggest(&key.name, known) {
                Some(k) => format!("did you mean `{k}`? (config contains invalid parameters and may be out of date, see server config examples)"),
                None => "remove it (config contains invalid parameters and may be out of date, see server config examples)".into(),
            };
            self.errors.push(
                ConfigError::new(
                    ErrorKind::UnknownKey,
                    display,
                    format!("unknown key `{}`", key.name),
                )
                .fix(fix)
                .at(Origin::File(key.mark)),
            );
        }
    }

    pub fn scalar_text<'n>(
        &mut self,
        node: &'n Node,
        display: &str,
        want: &str,
    ) -> Option<(&'n str, bool)> {
        match &node.kind {
            NodeKind::Scalar { text, plain } => Some((text.as_str(), *plain)),
            _ => {
                let what = node.describe();
                let e = self.err(
                    ErrorKind::WrongType,
                    display,
                    node,
                    format!("expected {want}, found {what}"),
                );
                e.fix = format!("write a single {want} here");
                None
            }
        }
    }

    pub fn to_string(&mut self, node: &Node, display: &str) -> Option<String> {
        self.scalar_text(node, display, "a string")
            .map(|(t, _)| t.to_string())
    }

    pub fn to_bool(&mut self, node: &Node, display: &str) -> Option<bool> {
        let (text, plain) = self.scalar_text(node, display, "true or false")?;
        let v = match text {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
            _ => None,
        };
        match v {
            Some(b) if plain => Some(b),
            _ => {
                let e = self.err(
                    ErrorKind::WrongType,
                    display,
                    node,
                    "expected true or false",
                );
                e.value = Some(format!("{text:?}"));
                e.fix = "write true or false (unquoted)".into();
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn to_int(&mut self, node: &Node, display: &str, min: i128, max: i128) -> Option<i128> {
        let (text, plain) = self.scalar_text(node, display, "a number")?;
        let parsed = if plain { parse_int(text) } else { None };
        match parsed {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(v) => {
                let e = self.err(
                    ErrorKind::BadValue,
                    display,
                    node,
                    format!("must be between {min} and {max}"),
                );
                e.value = Some(v.to_string());
                e.fix = format!("use a value from {min} to {max}");
                None
            }
            None => {
                let quoted = !plain && parse_int(text).is_some();
                let e = self.err(
                    ErrorKind::WrongType,
                    display,
                    node,
                    "expected a whole number",
                );
                e.value = Some(format!("{text:?}"));
                e.fix = if quoted {
                    "remove the quotes".into()
                } else {
                    "write a whole number such as 8".into()
                };
                None
            }
        }
    }

    pub fn to_strings(&mut self, node: &Node, display: &str) -> Option<Vec<String>> {
        let NodeKind::Seq(items) = &node.kind else {
            let what = node.describe();
            let e = self.err(
                ErrorKind::WrongType,
                display,
                node,
                format!("expected a list, found {what}"),
            );
            e.fix = "write a list, e.g. [a, b] or one `- item` per line".into();
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.to_string(item, &format!("{display}[{i}]"))?);
        }
        Some(out)
    }

    // Typed getters on a mapping view.

    pub fn string(&mut self, v: &mut MapView<'_>, key: &str) -> Option<String> {
        let (node, _, display) = self.field(v, key)?;
        self.to_string(node, &display)
    }

    pub fn path(&mut self, v: &mut MapView<'_>, key: &str) -> Option<PathBuf> {
        self.string(v, key).map(PathBuf::from)
    }

    pub fn boolean(&mut self, v: &mut MapView<'_>, key: &str) -> Option<bool> {
        let (node, _, display) = self.field(v, key)?;
        self.to_bool(node, &display)
    }

    pub fn int(&mut self, v: &mut MapView<'_>, key: &str, min: i128, max: i128) -> Option<i128> {
        let (node, _, display) = self.field(v, key)?;
        self.to_int(node, &display, min, max)
    }

    pub fn u32(&mut self, v: &mut MapView<'_>, key: &str) -> Option<u32> {
        self.int(v, key, 0, u32::MAX.into()).map(|x| x as u32)
    }

    pub fn strings(&mut self, v: &mut MapView<'_>, key: &str) -> Option<Vec<String>> {
        let (node, _, display) = self.field(v, key)?;
        self.to_strings(node, &display)
    }

    pub fn u32s(&mut self, v: &mut MapView<'_>, key: &str) -> Option<Vec<u32>> {
        let (node, _, display) = self.field(v, key)?;
        let NodeKind::Seq(items) = &node.kind else {
            self.to_strings(node, &display);
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            out.push(self.to_int(item, &format!("{display}[{i}]"), 0, u32::MAX.into())? as u32);
        }
        Some(out)
    }

    /// Items of a list-of-mappings key, with canonical and display paths for each.
    pub fn items<'n>(
        &mut self,
        v: &mut MapView<'n>,
        key: &str,
        canon_key: &str,
    ) -> Vec<(&'n Node, String, String)> {
        let Some((node, _, display)) = self.field(v, key) else {
            return Vec::new();
        };
        let canon = join(&v.canon, canon_key);
        self.spans.record(&canon, &display, Origin::File(node.mark));
        let NodeKind::Seq(items) = &node.kind else {
            let what = node.describe();
            let e = self.err(
                ErrorKind::WrongType,
                &display,
                node,
                format!("expected a list, found {what}"),
            );
            e.fix = "write one `-` entry per item".into();
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| (item, format!("{canon}[{i}]"), format!("{display}[{i}]")))
            .collect()
    }
}

/// Top-level keys DAOS knows (every version), for unknown-key detection and suggestions.
pub const SERVER_KEYS: &[&str] = &[
    "name",
    "access_points",
    "mgmt_svc_replicas",
    "port",
    "control_iface",
    "transport_config",
    "provider",
    "fabric_iface",
    "fabric_iface_port",
    "crt_timeout",
    "crt_ctx_share_addr",
    "disable_srx",
    "fabric_auth_key",
    "secondary_provider_endpoints",
    "socket_dir",
    "nr_hugepages",
    "disable_hugepages",
    "set_hugepages",
    "allow_numa_imbalance",
    "allow_thp",
    "system_ram_reserved",
    "kernel_config_path",
    "bdev_include",
    "bdev_exclude",
    "disable_vfio",
    "disable_vmd",
    "enable_vmd",
    "enable_hotplug",
    "disable_hotplug",
    "hyperthreads",
    "control_log_mask",
    "control_log_file",
    "control_log_json",
    "helper_log_file",
    "firmware_helper_log_file",
    "recreate_superblocks",
    "fault_path",
    "fault_cb",
    "telemetry_port",
    "core_dump_filter",
    "client_env_vars",
    "control_metadata",
    "support_config",
    "disable_engine_auto_restart",
    "engine_auto_restart_min_delay",
    "servers",
    "engines",
];

/// Per-engine keys, modern and legacy.
pub const ENGINE_KEYS: &[&str] = &[
    "targets",
    "nr_xs_helpers",
    "first_core",
    "pinned_numa_node",
    "fabric_iface",
    "fabric_iface_port",
    "provider",
    "crt_timeout",
    "crt_ctx_share_addr",
    "disable_srx",
    "fabric_auth_key",
    "secondary_provider_endpoints",
    "bypass_health_chk",
    "log_mask",
    "log_file",
    "env_vars",
    "env_pass_through",
    "rank",
    "modules",
    "storage",
    "acceleration",
    "spdk_rpc_server",
    "bdev_auto_faulty",
    "spdk_iobuf",
    "scm_mount",
    "scm_class",
    "scm_size",
    "scm_list",
    "bdev_class",
    "bdev_list",
    "bdev_number",
    "bdev_size",
    "bdev_busid_range",
];

/// The flat storage keys of the legacy form.
pub const LEGACY_STORAGE_KEYS: &[&str] = &[
    "scm_mount",
    "scm_class",
    "scm_size",
    "scm_list",
    "bdev_class",
    "bdev_list",
    "bdev_number",
    "bdev_size",
    "bdev_busid_range",
];

pub const TIER_KEYS: &[&str] = &[
    "class",
    "scm_mount",
    "scm_size",
    "scm_list",
    "scm_hugepages_disabled",
    "bdev_list",
    "bdev_size",
    "bdev_number",
    "bdev_busid_range",
    "bdev_roles",
];

const TRANSPORT_KEYS: &[&str] = &[
    "allow_insecure",
    "client_cert_dir",
    "ca_cert",
    "cert",
    "key",
];

/// Appends `;ofi_rxm` to providers that DAOS (2.2+) always runs with it.
pub fn normalize_provider(provider: &str) -> String {
    match provider {
        "ofi+tcp" | "ofi+verbs" => format!("{provider};ofi_rxm"),
        other => other.to_string(),
    }
}

/// Decodes the whole document. Never fails: problems land in `d.errors`.
pub fn server(d: &mut Decoder, root: &Node) -> Server {
    let mut s = Server::default();
    let Some(mut v) = d.view(root, "", "") else {
        return s;
    };

    if let Some(x) = d.string(&mut v, "name") {
        s.name = x;
    }
    if let Some(x) = d.int(&mut v, "port", 0, 65535) {
        s.port = x as u16;
    }
    s.control_iface = d.string(&mut v, "control_iface");
    s.provider = d.string(&mut v, "provider");
    s.fabric_iface = d.string(&mut v, "fabric_iface");
    s.fabric_iface_port = d
        .int(&mut v, "fabric_iface_port", 0, 65535)
        .map(|x| x as u16);
    s.crt_timeout = d.u32(&mut v, "crt_timeout");
    s.crt_ctx_share_addr = d.u32(&mut v, "crt_ctx_share_addr");
    s.disable_srx = d.boolean(&mut v, "disable_srx").unwrap_or(false);
    s.fabric_auth_key = d.string(&mut v, "fabric_auth_key");
    s.secondary_provider_endpoints = d
        .u32s(&mut v, "secondary_provider_endpoints")
        .unwrap_or_default();
    if let Some(x) = d.path(&mut v, "socket_dir") {
        s.socket_dir = x;
    }
    if let Some(x) = d.int(&mut v, "nr_hugepages", -1, i32::MAX.into()) {
        s.nr_hugepages = x as i32;
    }
    s.disable_hugepages = d.boolean(&mut v, "disable_hugepages").unwrap_or(false);
    if s.nr_hugepages == -1 {
        d.notices.push(Notice {
            path: "nr_hugepages".into(),
            message: "nr_hugepages: -1 is deprecated; treated as disable_hugepages: true".into(),
        });
        s.nr_hugepages = 0;
        s.disable_hugepages = true;
    }
    s.set_hugepages = d.boolean(&mut v, "set_hugepages").unwrap_or(false);
    s.allow_numa_imbalance = d.boolean(&mut v, "allow_numa_imbalance").unwrap_or(false);
    s.allow_thp = d.boolean(&mut v, "allow_thp").unwrap_or(false);
    if let Some(x) = d.u32(&mut v, "system_ram_reserved") {
        s.system_ram_reserved = x;
    }
    s.kernel_config_path = d.path(&mut v, "kernel_config_path");
    s.bdev_include = d.strings(&mut v, "bdev_include").unwrap_or_default();
    s.bdev_exclude = d.strings(&mut v, "bdev_exclude").unwrap_or_default();
    s.disable_vfio = d.boolean(&mut v, "disable_vfio").unwrap_or(false);
    s.disable_vmd = d.boolean(&mut v, "disable_vmd").unwrap_or(false);
    if let Some(enable) = d.boolean(&mut v, "enable_vmd") {
        if Decoder::has(&v, "disable_vmd") {
            conflict(d, "enable_vmd", "disable_vmd");
        }
        s.disable_vmd = !enable;
        d.notices.push(Notice {
            path: "enable_vmd".into(),
            message: "enable_vmd is deprecated; use disable_vmd".into(),
        });
    }
    s.disable_hotplug = d.boolean(&mut v, "disable_hotplug").unwrap_or(false);
    if let Some(enable) = d.boolean(&mut v, "enable_hotplug") {
        if Decoder::has(&v, "disable_hotplug") {
            conflict(d, "enable_hotplug", "disable_hotplug");
        }
        s.disable_hotplug = !enable;
        d.notices.push(Notice {
            path: "enable_hotplug".into(),
            message: "enable_hotplug is deprecated; use disable_hotplug".into(),
        });
    }
    s.hyperthreads = d.boolean(&mut v, "hyperthreads").unwrap_or(false);
    if let Some(x) = d.string(&mut v, "control_log_mask") {
        s.control_log_mask = x;
    }
    s.control_log_file = d.path(&mut v, "control_log_file");
    s.control_log_json = d.boolean(&mut v, "control_log_json").unwrap_or(false);
    s.helper_log_file = d.path(&mut v, "helper_log_file");
    s.firmware_helper_log_file = d.path(&mut v, "firmware_helper_log_file");
    s.recreate_superblocks = d.boolean(&mut v, "recreate_superblocks").unwrap_or(false);
    s.fault_path = d.string(&mut v, "fault_path");
    s.fault_cb = d.path(&mut v, "fault_cb");
    if let Some(x) = d.int(&mut v, "telemetry_port", 0, 65535) {
        s.telemetry_port = x as u32;
    }
    if let Some(x) = d.int(&mut v, "core_dump_filter", 0, 255) {
        s.core_dump_filter = x as u8;
    }
    s.client_env_vars = d.strings(&mut v, "client_env_vars").unwrap_or_default();
    s.disable_engine_auto_restart = d
        .boolean(&mut v, "disable_engine_auto_restart")
        .unwrap_or(false);
    if let Some(x) = d.u32(&mut v, "engine_auto_restart_min_delay") {
        s.engine_auto_restart_min_delay = x;
    }

    if let Some(mut t) = d.sub(&mut v, "transport_config") {
        let tc = &mut s.transport_config;
        if let Some(x) = d.boolean(&mut t, "allow_insecure") {
            tc.allow_insecure = x;
        }
        if let Some(x) = d.path(&mut t, "client_cert_dir") {
            tc.client_cert_dir = x;
        }
        if let Some(x) = d.path(&mut t, "ca_cert") {
            tc.ca_cert = x;
        }
        if let Some(x) = d.path(&mut t, "cert") {
            tc.cert = x;
        }
        if let Some(x) = d.path(&mut t, "key") {
            tc.key = x;
        }
        d.finish(t, TRANSPORT_KEYS);
    }
    if let Some(mut m) = d.sub(&mut v, "control_metadata") {
        s.control_metadata = Some(ControlMetadata {
            path: d.path(&mut m, "path"),
            device: d.string(&mut m, "device"),
            allow_spdk_conf_override: d
                .boolean(&mut m, "allow_spdk_conf_override")
                .unwrap_or(false),
        });
        d.finish(m, &["path", "device", "allow_spdk_conf_override"]);
    }
    if let Some(mut m) = d.sub(&mut v, "support_config") {
        s.support_config = Some(SupportConfig {
            file_transfer_exec: d.path(&mut m, "file_transfer_exec"),
        });
        d.finish(m, &["file_transfer_exec"]);
    }

    // Replicas: mgmt_svc_replicas, or the deprecated access_points.
    let replicas = d.strings(&mut v, "mgmt_svc_replicas");
    let access_points = d.strings(&mut v, "access_points");
    s.mgmt_svc_replicas = match (replicas, access_points) {
        (Some(_), Some(_)) => {
            conflict(d, "access_points", "mgmt_svc_replicas");
            Vec::new()
        }
        (Some(r), None) => r,
        (None, Some(a)) => {
            d.notices.push(Notice {
                path: "access_points".into(),
                message: "access_points is deprecated; please use mgmt_svc_replicas instead".into(),
            });
            if let Some((display, origin)) = d.spans.map.get("access_points").cloned() {
                d.spans.record("mgmt_svc_replicas", display, origin);
            }
            a
        }
        (None, None) => Vec::new(),
    };
    // Entries keep their explicit ports; the others get the control port once the
    // command-line overrides are in ([`default_replica_ports`]).

    // Engines: `engines`, or the deprecated `servers`.
    let both = Decoder::has(&v, "servers") && Decoder::has(&v, "engines");
    if both {
        conflict(d, "servers", "engines");
    }
    let mut items = d.items(&mut v, "engines", "engines");
    let legacy_items = d.items(&mut v, "servers", "engines");
    if !legacy_items.is_empty() || d.spans.map.contains_key("servers") {
        d.notices.push(Notice {
            path: "servers".into(),
            message:
                "\"servers\" server config file parameter is deprecated, use \"engines\" instead"
                    .into(),
        });
        if !both {
            items = legacy_items;
        }
    }
    for (i, (node, canon, display)) in items.into_iter().enumerate() {
        if let Some(engine) = engine(d, i, node, &canon, &display) {
            s.engines.push(engine);
        }
    }
    d.finish(v, SERVER_KEYS);

    inherit(d, &mut s);
    s
}

fn conflict(d: &mut Decoder, a: &str, b: &str) {
    let (display, origin) = d.spans.resolve(b);
    d.errors.push(
        ConfigError::new(
            ErrorKind::Conflict,
            display,
            format!("`{a}` and `{b}` cannot both be set"),
        )
        .fix(format!("keep only `{b}`"))
        .at(origin),
    );
}

/// True when a `host[:port]` string carries a port.
/// `mgmt_svc_replicas` completed with the control port `port` (after `-p`): an entry without
/// a port gets it, an entry with one keeps its own (DAOS), an empty list is this host.
pub fn default_replica_ports(s: &mut Server) {
    if s.mgmt_svc_replicas.is_empty() {
        s.mgmt_svc_replicas = vec![format!("localhost:{}", s.port)];
        return;
    }
    for r in &mut s.mgmt_svc_replicas {
        if !has_port(r) {
            r.push_str(&format!(":{}", s.port));
        }
    }
}

pub fn has_port(addr: &str) -> bool {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.contains("]:");
    }
    addr.matches(':').count() == 1
}

fn engine(d: &mut Decoder, idx: usize, node: &Node, canon: &str, display: &str) -> Option<Engine> {
    let mut v = d.view(node, canon, display)?;
    let mut e = Engine::default();
    match d.int(&mut v, "targets", 0, 2048) {
        Some(x) => e.targets = x as u32,
        None if !Decoder::has(&v, "targets") => d.errors.push(
            ConfigError::new(
                ErrorKind::MissingKey,
                format!("{display}.targets"),
                "required key `targets` is missing",
            )
            .fix("add `targets: N`, the number of target cores for this engine")
            .at(Origin::File(node.mark)),
        ),
        None => {}
    }
    if let Some(x) = d.int(&mut v, "nr_xs_helpers", 0, 2048) {
        e.nr_xs_helpers = x as u32;
    }
    e.first_core = d.u32(&mut v, "first_core");
    e.pinned_numa_node = d.u32(&mut v, "pinned_numa_node");
    e.fabric_iface = d.string(&mut v, "fabric_iface").unwrap_or_default();
    e.fabric_iface_port = d.int(&mut v, "fabric_iface_port", 0, 65535).unwrap_or(0) as u16;
    e.provider = d.string(&mut v, "provider").unwrap_or_default();
    e.crt_timeout = d.u32(&mut v, "crt_timeout");
    e.crt_ctx_share_addr = d.u32(&mut v, "crt_ctx_share_addr");
    e.disable_srx = d.boolean(&mut v, "disable_srx").unwrap_or(false);
    e.fabric_auth_key = d.string(&mut v, "fabric_auth_key");
    e.secondary_provider_endpoints = d
        .u32s(&mut v, "secondary_provider_endpoints")
        .unwrap_or_default();
    e.bypass_health_chk = d.boolean(&mut v, "bypass_health_chk");
    if let Some(x) = d.string(&mut v, "log_mask") {
        e.log_mask = x;
    }
    e.log_file = d.path(&mut v, "log_file");
    e.env_vars = d.strings(&mut v, "env_vars").unwrap_or_default();
    e.env_pass_through = d.strings(&mut v, "env_pass_through").unwrap_or_default();
    e.rank = d.u32(&mut v, "rank");
    e.modules = d.string(&mut v, "modules");

    if let Some(mut m) = d.sub(&mut v, "acceleration") {
        e.acceleration = Some(Acceleration {
            engine: d.string(&mut m, "engine").unwrap_or_else(|| "none".into()),
            options: d.strings(&mut m, "options").unwrap_or_default(),
        });
        d.finish(m, &["engine", "options"]);
    }
    if let Some(mut m) = d.sub(&mut v, "spdk_rpc_server") {
        e.spdk_rpc_server = Some(SpdkRpcServer {
            enable: d.boolean(&mut m, "enable").unwrap_or(false),
            sock_addr: d.string(&mut m, "sock_addr"),
        });
        d.finish(m, &["enable", "sock_addr"]);
    }
    if let Some(mut m) = d.sub(&mut v, "bdev_auto_faulty") {
        let def = BdevAutoFaulty::default();
        e.bdev_auto_faulty = Some(BdevAutoFaulty {
            enable: d.boolean(&mut m, "enable").unwrap_or(def.enable),
            max_io_errs: d.u32(&mut m, "max_io_errs").unwrap_or(def.max_io_errs),
            max_csum_errs: d.u32(&mut m, "max_csum_errs").unwrap_or(def.max_csum_errs),
        });
        d.finish(m, &["enable", "max_io_errs", "max_csum_errs"]);
    }
    if let Some(mut m) = d.sub(&mut v, "spdk_iobuf") {
        let def = SpdkIobuf::default();
        e.spdk_iobuf = Some(SpdkIobuf {
            small_pool_count: d
                .u32(&mut m, "small_pool_count")
                .unwrap_or(def.small_pool_count),
            large_pool_count: d
                .u32(&mut m, "large_pool_count")
                .unwrap_or(def.large_pool_count),
        });
        d.finish(m, &["small_pool_count", "large_pool_count"]);
    }

    let legacy = LEGACY_STORAGE_KEYS.iter().any(|k| Decoder::has(&v, k));
    let modern = Decoder::has(&v, "storage");
    if legacy && modern {
        let key = LEGACY_STORAGE_KEYS
            .iter()
            .find(|k| Decoder::has(&v, k))
            .copied()
            .unwrap_or("scm_mount");
        let _ = d.field(&mut v, key);
        let (dsp, origin) = d.spans.resolve(&format!("{canon}.{key}"));
        d.errors.push(
            ConfigError::new(
                ErrorKind::Conflict,
                dsp,
                "legacy storage keys cannot be combined with a `storage:` tier list",
            )
            .fix("move scm_*/bdev_* settings into `storage:` tiers, or remove `storage:`")
            .at(origin),
        );
    }
    if legacy && !modern {
        d.notices.push(Notice {
            path: display.to_string(),
            message: format!("engine {idx}: Legacy storage configuration detected. Please migrate to new-style storage configuration."),
        });
        e.storage = legacy_storage(d, &mut v, canon, display, node);
    } else {
        for (tnode, tcanon, tdisplay) in d.items(&mut v, "storage", "storage") {
            if let Some(t) = tier(d, tnode, &tcanon, &tdisplay) {
                e.storage.push(t);
            }
        }
    }
    d.finish(v, ENGINE_KEYS);
    Some(e)
}

fn tier_class(d: &mut Decoder, node: &Node, display: &str) -> Option<TierClass> {
    let text = d.to_string(node, display)?;
    let class = TierClass::parse(&text);
    if class.is_none() {
        d.errors.push(
            ConfigError::new(ErrorKind::BadValue, display, "unknown storage class")
                .value(format!("{text:?}"))
                .fix(format!("use one of {}", TierClass::NAMES.join(", ")))
                .at(Origin::File(node.mark)),
        );
    }
    class
}

fn tier(d: &mut Decoder, node: &Node, canon: &str, display: &str) -> Option<Tier> {
    let mut v = d.view(node, canon, display)?;
    let class = match d.field(&mut v, "class") {
        Some((n, _, dsp)) => tier_class(d, n, &dsp),
        None => {
            d.errors.push(
                ConfigError::new(
                    ErrorKind::MissingKey,
                    format!("{display}.class"),
                    "required key `class` is missing",
                )
                .fix(format!(
                    "add `class:` with one of {}",
                    TierClass::NAMES.join(", ")
                ))
                .at(Origin::File(node.mark)),
            );
            None
        }
    };
    let mut t = Tier::new(class.unwrap_or(TierClass::Ram));
    t.scm_mount = d.path(&mut v, "scm_mount");
    t.scm_size = d.int(&mut v, "scm_size", 0, 1 << 20).map(|x| x as u64);
    t.scm_list = d.strings(&mut v, "scm_list").unwrap_or_default();
    t.scm_hugepages_disabled = d.boolean(&mut v, "scm_hugepages_disabled");
    t.bdev_list = d.strings(&mut v, "bdev_list").unwrap_or_default();
    t.bdev_size = d.int(&mut v, "bdev_size", 0, 1 << 30).map(|x| x as u64);
    t.bdev_number = d.u32(&mut v, "bdev_number");
    t.bdev_busid_range = d.string(&mut v, "bdev_busid_range");
    t.bdev_roles = d.strings(&mut v, "bdev_roles").unwrap_or_default();
    d.finish(v, TIER_KEYS);
    class.map(|_| t)
}

/// Converts the legacy flat keys of one engine into storage tiers.
fn legacy_storage(
    d: &mut Decoder,
    v: &mut MapView<'_>,
    canon: &str,
    display: &str,
    node: &Node,
) -> Vec<Tier> {
    let scm = format!("{canon}.storage[0]");
    d.spans.record(&scm, display, Origin::File(node.mark));
    let scm_class = match d.field_as(v, "scm_class", &format!("{scm}.class")) {
        Some((n, dsp)) => tier_class(d, n, &dsp),
        None => {
            d.errors.push(
                ConfigError::new(
                    ErrorKind::MissingKey,
                    format!("{display}.scm_class"),
                    "required key `scm_class` is missing",
                )
                .fix("add `scm_class: ram` (tmpfs) or `scm_class: dcpm` (persistent memory)")
                .at(Origin::File(node.mark)),
            );
            None
        }
    };
    let mut tiers = Vec::new();
    let mut t = Tier::new(scm_class.unwrap_or(TierClass::Ram));
    if let Some((n, dsp)) = d.field_as(v, "scm_mount", &format!("{scm}.scm_mount")) {
        t.scm_mount = d.to_string(n, &dsp).map(PathBuf::from);
    }
    if let Some((n, dsp)) = d.field_as(v, "scm_size", &format!("{scm}.scm_size")) {
        t.scm_size = d.to_int(n, &dsp, 0, 1 << 20).map(|x| x as u64);
    }
    if let Some((n, dsp)) = d.field_as(v, "scm_list", &format!("{scm}.scm_list")) {
        t.scm_list = d.to_strings(n, &dsp).unwrap_or_default();
    }
    tiers.push(t);

    let bdev = format!("{canon}.storage[1]");
    d.spans.record(&bdev, display, Origin::File(node.mark));
    let bdev_class = match d.field_as(v, "bdev_class", &format!("{bdev}.class")) {
        Some((n, dsp)) => tier_class(d, n, &dsp),
        None => None,
    };
    let mut b = Tier::new(bdev_class.unwrap_or(TierClass::Nvme));
    if let Some((n, dsp)) = d.field_as(v, "bdev_list", &format!("{bdev}.bdev_list")) {
        b.bdev_list = d.to_strings(n, &dsp).unwrap_or_default();
    }
    if let Some((n, dsp)) = d.field_as(v, "bdev_size", &format!("{bdev}.bdev_size")) {
        b.bdev_size = d.to_int(n, &dsp, 0, 1 << 30).map(|x| x as u64);
    }
    if let Some((n, dsp)) = d.field_as(v, "bdev_number", &format!("{bdev}.bdev_number")) {
        b.bdev_number = d.to_int(n, &dsp, 0, u32::MAX.into()).map(|x| x as u32);
    }
    if let Some((n, dsp)) = d.field_as(v, "bdev_busid_range", &format!("{bdev}.bdev_busid_range")) {
        b.bdev_busid_range = d.to_string(n, &dsp);
    }
    let has_bdev = bdev_class.is_some() || !b.bdev_list.is_empty() || b.bdev_number.is_some();
    if has_bdev {
        tiers.push(b);
    }
    tiers
}

/// Engines inherit unset fabric settings from the top level; provider strings are normalized.
fn inherit(d: &mut Decoder, s: &mut Server) {
    s.provider = s.provider.as_deref().map(normalize_provider);
    for (i, e) in s.engines.iter_mut().enumerate() {
        // Points the engine's copy of `key` at where the top-level value was written.
        let mut from_top = |key: &str| {
            if d.spans.is_set(key) {
                let (display, origin) = d.spans.resolve(key);
                d.spans
                    .record(format!("engines[{i}].{key}"), display, origin);
            }
        };
        if e.provider.is_empty() {
            from_top("provider");
            e.provider = s.provider.clone().unwrap_or_default();
        }
        e.provider = normalize_provider(&e.provider);
        if e.fabric_iface.is_empty() {
            from_top("fabric_iface");
            e.fabric_iface = s.fabric_iface.clone().unwrap_or_default();
        }
        if e.fabric_iface_port == 0 {
            from_top("fabric_iface_port");
            e.fabric_iface_port = s.fabric_iface_port.unwrap_or(0);
        }
        if e.crt_timeout.is_none() {
            from_top("crt_timeout");
            e.crt_timeout = s.crt_timeout;
        }
        if e.crt_ctx_share_addr.is_none() {
            from_top("crt_ctx_share_addr");
            e.crt_ctx_share_addr = s.crt_ctx_share_addr;
        }
        if !e.disable_srx {
            e.disable_srx = s.disable_srx;
        }
        if e.fabric_auth_key.is_none() {
            from_top("fabric_auth_key");
            e.fabric_auth_key = s.fabric_auth_key.clone();
        }
        if e.secondary_provider_endpoints.is_empty() {
            e.secondary_provider_endpoints = s.secondary_provider_endpoints.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos_only() {
        assert_eq!(suggest("scm_mnt", ENGINE_KEYS), Some("scm_mount"));
        assert_eq!(suggest("target", ENGINE_KEYS), Some("targets"));
        assert_eq!(suggest("completely_else", ENGINE_KEYS), None);
    }

    #[test]
    fn ints_parse_like_yaml() {
        assert_eq!(parse_int("0x13"), Some(19));
        assert_eq!(parse_int("0o17"), Some(15));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int("12a"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("-"), None);
    }

    #[test]
    fn ports_are_detected_in_replica_addresses() {
        assert!(has_port("host:10001"));
        assert!(!has_port("host"));
        assert!(has_port("[::1]:10001"));
        assert!(!has_port("[::1]"));
    }

    #[test]
    fn providers_get_rxm_appended_like_daos() {
        assert_eq!(normalize_provider("ofi+tcp"), "ofi+tcp;ofi_rxm");
        assert_eq!(normalize_provider("ofi+verbs"), "ofi+verbs;ofi_rxm");
        assert_eq!(normalize_provider("ofi+tcp;ofi_rxm"), "ofi+tcp;ofi_rxm");
        assert_eq!(normalize_provider("ofi+cxi"), "ofi+cxi");
    }

    #[test]
    fn unset_paths_resolve_through_their_nearest_written_ancestor() {
        let mut spans = Spans::default();
        let m = crate::yaml::Mark { line: 4, column: 3 };
        spans.record("engines[0].storage[0]", "servers[0]", Origin::File(m));
        let (display, origin) = spans.resolve("engines[0].storage[0].scm_mount");
        assert_eq!(display, "servers[0].scm_mount");
        assert_eq!(origin, Origin::File(m));
        assert_eq!(spans.resolve("nowhere").0, "nowhere");
    }
}
