//! `daos_agent.yml`, the config of the client-node daemon (DAOS_FACTS §1.9, DAOS_DISTRIBUTED §6):
//! system name, the management service's access points, the runtime directory of its socket,
//! logging, the agent certificate, the attach-info cache and the fabric interfaces it hands to
//! clients. Decoded strictly with the server config's machinery: an unknown key, a wrong type or
//! an out-of-range value is an error with file, line, column and fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::control::ClientTransport;
use crate::decode::{Decoder, MapView};
use crate::error::{ConfigError, ConfigErrors, ErrorKind};
use crate::model::{DEFAULT_CERT_DIR, DEFAULT_PORT, DEFAULT_SYSTEM_NAME};

/// Default location of `daos_agent.yml`.
pub const DEFAULT_AGENT_PATH: &str = "/etc/daos/daos_agent.yml";
/// Default directory of `daos_agent.sock` (DAOS: `/var/run/daos_agent`).
pub const DEFAULT_RUNTIME_DIR: &str = "/var/run/daos_agent";
/// The socket's file name in the runtime directory.
pub const AGENT_SOCKET: &str = "daos_agent.sock";
/// DAOS's client telemetry port.
pub const DEFAULT_TELEMETRY_PORT: u16 = 9192;

/// How a client uid is presented in credentials instead of its local names
/// (`credential_config.client_user_map`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MappedUser {
    pub user: String,
    pub group: String,
    pub groups: Vec<String>,
}

/// `credential_config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CredentialConfig {
    /// How long a signed credential is reused for the same uid/gid (0: not cached).
    pub cache_expiration: Duration,
    /// uid → names; key `default` applies to uids without an entry.
    pub client_user_map: BTreeMap<String, MappedUser>,
}

/// One interface of `fabric_ifaces[].devices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FabricIface {
    pub iface: String,
    pub domain: String,
}

/// `fabric_ifaces[]`: the interfaces of one NUMA node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NumaFabric {
    pub numa_node: u32,
    pub devices: Vec<FabricIface>,
}

/// `daos_agent.yml`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agent {
    pub name: String,
    pub access_points: Vec<String>,
    pub port: u16,
    pub runtime_dir: PathBuf,
    pub log_file: Option<PathBuf>,
    pub control_log_mask: String,
    pub credential_config: CredentialConfig,
    /// The agent's certificate (DAOS: `agent.crt`/`agent.key`).
    pub transport_config: ClientTransport,
    pub disable_caching: bool,
    /// Attach info is fetched again after this long (DAOS: minutes; 0 = never expires).
    pub cache_expiration: Duration,
    pub disable_auto_evict: bool,
    pub enable_evict_on_start: bool,
    pub exclude_fabric_ifaces: Vec<String>,
    pub include_fabric_ifaces: Vec<String>,
    pub fabric_ifaces: Vec<NumaFabric>,
    pub telemetry_port: u16,
    pub telemetry_enabled: bool,
    pub telemetry_retain: Duration,
    pub telemetry_enabled_procs: Option<String>,
    pub telemetry_disabled_procs: Option<String>,
}

impl Default for Agent {
    fn default() -> Self {
        let dir = Path::new(DEFAULT_CERT_DIR);
        Agent {
            name: DEFAULT_SYSTEM_NAME.into(),
            access_points: vec![format!("localhost:{DEFAULT_PORT}")],
            port: DEFAULT_PORT,
            runtime_dir: DEFAULT_RUNTIME_DIR.into(),
            log_file: None,
            control_log_mask: "info".into(),
            credential_config: CredentialConfig::default(),
            transport_config: ClientTransport {
                allow_insecure: false,
                ca_cert: dir.join("daosCA.crt"),
                cert: dir.join("agent.crt"),
                key: dir.join("agent.key"),
            },
            disable_caching: false,
            cache_expiration: Duration::ZERO,
            disable_auto_evict: false,
            enable_evict_on_start: false,
            exclude_fabric_ifaces: Vec::new(),
            include_fabric_ifaces: Vec::new(),
            fabric_ifaces: Vec::new(),
            telemetry_port: 0,
            telemetry_enabled: false,
            telemetry_retain: Duration::ZERO,
            telemetry_enabled_procs: None,
            telemetry_disabled_procs: None,
        }
    }
}

impl Agent {
    /// The path of the agent's dRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir.join(AGENT_SOCKET)
    }

    /// The access points as `host:port` (the config's port where an entry names none).
    pub fn access_point_addrs(&self) -> Vec<String> {
        self.access_points
            .iter()
            .map(|a| {
                if a.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.ends_with(']') && p.parse::<u16>().is_ok())
                    || a.ends_with("]:")
                {
                    a.clone()
                } else {
                    format!("{a}:{}", self.port)
                }
            })
            .collect()
    }
}

const KEYS: &[&str] = &[
    "name",
    "access_points",
    "port",
    "runtime_dir",
    "log_file",
    "control_log_mask",
    "credential_config",
    "transport_config",
    "disable_caching",
    "cache_expiration",
    "disable_auto_evict",
    "enable_evict_on_start",
    "exclude_fabric_ifaces",
    "include_fabric_ifaces",
    "fabric_ifaces",
    "telemetry_port",
    "telemetry_enabled",
    "telemetry_retain",
    "telemetry_enabled_procs",
    "telemetry_disabled_procs",
];
const CREDENTIAL_KEYS: &[&str] = &["cache_expiration", "client_user_map"];
const USER_KEYS: &[&str] = &["user", "group", "groups"];
const LOG_MASKS: &[&str] = &["trace", "debug", "info", "notice", "warn", "error"];

/// A Go-style duration (`90s`, `5m`, `1h30m`, `250ms`) or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
    }
    Some(total)
}

fn duration(d: &mut Decoder, v: &mut MapView<'_>, key: &str) -> Option<Duration> {
    let (node, _, display) = d.field(v, key)?;
    let text = d.to_string(node, &display)?;
    match parse_duration(&text) {
        Some(x) => Some(x),
        None => {
            d.errors.push(
                ConfigError::new(
                    ErrorKind::BadValue,
                    &display,
                    format!("{key} {text:?} is not a duration"),
                )
                .fix("write it like 30s, 10m or 1h (a bare number is seconds)")
                .at(crate::Origin::File(node.mark)),
            );
            None
        }
    }
}

fn credentials(d: &mut Decoder, mut v: MapView<'_>, out: &mut CredentialConfig) {
    if let Some(x) = duration(d, &mut v, "cache_expiration") {
        out.cache_expiration = x;
    }
    if let Some((node, canon, display)) = d.field(&mut v, "client_user_map")
        && let Some(mut m) = d.view(node, &canon, &display)
    {
        {
            let keys: Vec<String> = m.keys().map(str::to_string).collect();
            for uid in &keys {
                if uid != "default" && uid.parse::<u32>().is_err() {
                    let (disp, origin) = d.spans.resolve(&canon);
                    d.errors.push(
                        ConfigError::new(
                            ErrorKind::BadValue,
                            format!("{disp}.{uid}"),
                            format!("client_user_map key {uid:?} is not a uid"),
                        )
                        .fix("key each entry by a numeric uid, or `default`")
                        .at(origin),
                    );
                }
                let Some(mut u) = d.sub(&mut m, uid) else {
                    continue;
                };
                let mut mapped = MappedUser::default();
                if let Some(x) = d.string(&mut u, "user") {
                    mapped.user = x;
                }
                if let Some(x) = d.string(&mut u, "group") {
                    mapped.group = x;
                }
                if let Some(x) = d.strings(&mut u, "groups") {
                    mapped.groups = x;
                }
                d.finish(u, USER_KEYS);
                out.client_user_map.insert(uid.clone(), mapped);
            }
            d.finish(m, &[]);
        }
    }
    d.finish(v, CREDENTIAL_KEYS);
}

fn fabric(d: &mut Decoder, v: &mut MapView<'_>) -> Vec<NumaFabric> {
    let mut out = Vec::new();
    for (node, canon, display) in d.items(v, "fabric_ifaces", "fabric_ifaces") {
        let Some(mut n) = d.view(node, &canon, &display) else {
            continue;
        };
        let numa = d.u32(&mut n, "numa_node").unwrap_or(0);
        let mut devices = Vec::new();
        for (dn, dc, dd) in d.items(&mut n, "devices", "devices") {
            let Some(mut dv) = d.view(dn, &dc, &dd) else {
                continue;
            };
            let iface = d.string(&mut dv, "iface").unwrap_or_default();
            let domain = d.string(&mut dv, "domain").unwrap_or_default();
            if iface.is_empty() {
                d.errors.push(
                    ConfigError::new(ErrorKind::BadValue, &dd, "device has no iface")
                        .fix("name the interface, e.g. iface: eth0")
                        .at(crate::Origin::File(dn.mark)),
                );
            }
            d.finish(dv, &["iface", "domain"]);
            devices.push(FabricIface {
                domain: if domain.is_empty() {
                    iface.clone()
                } else {
                    domain
                },
                iface,
            });
        }
        d.finish(n, &["numa_node", "devices"]);
        out.push(NumaFabric {
            numa_node: numa,
            devices,
        });
    }
    out
}

/// Reads `daos_agent.yml` text; `name` is used in messages.
pub fn load_str(text: &str, name: impl AsRef<Path>) -> Result<Agent, ConfigErrors> {
    let name = name.as_ref();
    let root = crate::control::parse_yaml(text, name)?;
    let mut d = Decoder::default();
    let mut a = Agent::default();
    if let Some(mut v) = d.view(&root, "", "") {
        if let Some(x) = d.string(&mut v, "name") {
            a.name = x;
        }
        if let Some(x) = d.int(&mut v, "port", 1, 65535) {
            a.port = x as u16;
        }
        if let Some(x) = d.strings(&mut v, "access_points") {
            a.access_points = x;
        }
        if let Some(x) = d.path(&mut v, "runtime_dir") {
            a.runtime_dir = x;
        }
        if let Some(x) = d.path(&mut v, "log_file") {
            a.log_file = Some(x);
        }
        if let Some(x) = d.string(&mut v, "control_log_mask") {
            let low = x.to_ascii_lowercase();
            if LOG_MASKS.contains(&low.as_str()) {
                a.control_log_mask = low;
            } else {
                let (display, origin) = d.spans.resolve("control_log_mask");
                d.errors.push(
                    ConfigError::new(
                        ErrorKind::BadValue,
                        display,
                        format!("control_log_mask {x:?} is not a log level"),
                    )
                    .fix(format!("use one of {}", LOG_MASKS.join(", ")))
                    .at(origin),
                );
            }
        }
        if let Some(c) = d.sub(&mut v, "credential_config") {
            credentials(&mut d, c, &mut a.credential_config);
        }
        if let Some(t) = d.sub(&mut v, "transport_config") {
            crate::control::transport(&mut d, t, &mut a.transport_config);
        }
        if let Some(x) = d.boolean(&mut v, "disable_caching") {
            a.disable_caching = x;
        }
        // DAOS: whole minutes.
        if let Some(x) = d.int(&mut v, "cache_expiration", 0, 1 << 32) {
            a.cache_expiration = Duration::from_secs(x as u64 * 60);
        }
        if let Some(x) = d.boolean(&mut v, "disable_auto_evict") {
            a.disable_auto_evict = x;
        }
        if let Some(x) = d.boolean(&mut v, "enable_evict_on_start") {
            a.enable_evict_on_start = x;
        }
        if let Some(x) = d.strings(&mut v, "exclude_fabric_ifaces") {
            a.exclude_fabric_ifaces = x;
        }
        if let Some(x) = d.strings(&mut v, "include_fabric_ifaces") {
            a.include_fabric_ifaces = x;
        }
        a.fabric_ifaces = fabric(&mut d, &mut v);
        if let Some(x) = d.int(&mut v, "telemetry_port", 1, 65535) {
            a.telemetry_port = x as u16;
        }
        if let Some(x) = d.boolean(&mut v, "telemetry_enabled") {
            a.telemetry_enabled = x;
        }
        if let Some(x) = duration(&mut d, &mut v, "telemetry_retain") {
            a.telemetry_retain = x;
        }
        if let Some(x) = d.string(&mut v, "telemetry_enabled_procs") {
            a.telemetry_enabled_procs = Some(x);
        }
        if let Some(x) = d.string(&mut v, "telemetry_disabled_procs") {
            a.telemetry_disabled_procs = Some(x);
        }
        d.finish(v, KEYS);
    }
    let mut bad = |key: &str, msg: String, fix: &str| {
        let (display, origin) = d.spans.resolve(key);
        d.errors.push(
            ConfigError::new(ErrorKind::BadValue, display, msg)
                .fix(fix)
                .at(origin),
        );
    };
    if a.access_points.is_empty() {
        bad(
            "access_points",
            "access_points is empty".into(),
            "list the management service replicas, e.g. access_points: ['node-1:10001']",
        );
    }
    if !a.exclude_fabric_ifaces.is_empty() && !a.include_fabric_ifaces.is_empty() {
        bad(
            "include_fabric_ifaces",
            "both include_fabric_ifaces and exclude_fabric_ifaces are set".into(),
            "keep one of them",
        );
    }
    if a.telemetry_enabled && a.telemetry_port == 0 {
        a.telemetry_port = DEFAULT_TELEMETRY_PORT;
    }
    if a.telemetry_retain > Duration::ZERO && !a.telemetry_enabled {
        bad(
            "telemetry_retain",
            "telemetry_retain is set but telemetry_enabled is not".into(),
            "set telemetry_enabled: true or remove telemetry_retain",
        );
    }
    if d.errors.is_empty() {
        Ok(a)
    } else {
        Err(ConfigErrors::new(name, d.errors))
    }
}

/// Reads `daos_agent.yml` from a file.
pub fn load_file(path: &Path) -> Result<Agent, ConfigErrors> {
    let text = crate::read_text(path, "check the path given with -o/--config-path")?;
    load_str(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_daos_example() {
        let a = load_str(
            "name: daos_server\naccess_points: ['node-1', 'node-2:10002']\nport: 10001\n\
             runtime_dir: /run/daos_agent\nlog_file: /tmp/daos_agent.log\n\
             control_log_mask: DEBUG\ncache_expiration: 30\ndisable_caching: false\n\
             credential_config:\n  cache_expiration: 10m\n  client_user_map:\n    \
             1000:\n      user: alice\n      group: users\n      groups: [a, b]\n    \
             default:\n      user: nobody\n\
             transport_config:\n  allow_insecure: false\n  ca_cert: /c/daosCA.crt\n  \
             cert: /c/agent.crt\n  key: /c/agent.key\n\
             fabric_ifaces:\n- numa_node: 0\n  devices:\n  - iface: ib0\n    domain: mlx5_0\n  \
             - iface: eth0\n",
            "a.yml",
        )
        .unwrap();
        assert_eq!(a.socket(), PathBuf::from("/run/daos_agent/daos_agent.sock"));
        assert_eq!(
            a.access_point_addrs(),
            vec!["node-1:10001".to_string(), "node-2:10002".to_string()]
        );
        assert_eq!(a.control_log_mask, "debug");
        assert_eq!(a.cache_expiration, Duration::from_secs(1800));
        assert_eq!(
            a.credential_config.cache_expiration,
            Duration::from_secs(600)
        );
        assert_eq!(a.credential_config.client_user_map["1000"].groups.len(), 2);
        assert_eq!(a.fabric_ifaces[0].devices[1].domain, "eth0");
        assert_eq!(a.transport_config.key, PathBuf::from("/c/agent.key"));
        let d = load_str("", "a.yml").unwrap();
        assert_eq!(d, Agent::default());
        assert_eq!(
            d.transport_config.cert,
            PathBuf::from("/etc/daos/certs/agent.crt")
        );
    }

    #[test]
    fn mistakes_name_key_value_and_fix() {
        let e = load_str(
            "port: 0\nacess_points: [a]\ncontrol_log_mask: loud\n\
             credential_config:\n  cache_expiration: soon\n  client_user_map:\n    bob: {user: b}\n\
             exclude_fabric_ifaces: [a]\ninclude_fabric_ifaces: [b]\n",
            "a.yml",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("a.yml:1:7: port = 0"), "{text}");
        assert!(text.contains("did you mean `access_points`"), "{text}");
        assert!(text.contains("\"loud\" is not a log level"), "{text}");
        assert!(text.contains("\"soon\" is not a duration"), "{text}");
        assert!(text.contains("\"bob\" is not a uid"), "{text}");
        assert!(
            text.contains("both include_fabric_ifaces and exclude"),
            "{text}"
        );
        assert!(
            load_str("access_points: []\n", "a.yml")
                .unwrap_err()
                .to_string()
                .contains("access_points is empty")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }
}
