//! The `daos_server.yml` model of daos-rs.
//!
//! Reads the server config in both forms DAOS admins have (legacy `servers:` with flat storage
//! keys, modern `engines:` with `storage:` tiers), applies DAOS's defaults, command-line
//! overrides and validation rules, and reports every mistake at once with file, line, column,
//! key path, value and fix. The result is one typed [`Server`] that everything downstream uses;
//! nothing else reads raw YAML.
//!
//! ```
//! let text = "provider: ofi+tcp\nengines:\n- targets: 1\n  fabric_iface: lo\n  \
//!             fabric_iface_port: 31416\n  storage:\n  - class: ram\n    scm_mount: /mnt/daos\n";
//! let loaded = daos_config::load_str(text, "daos_server.yml", &Default::default()).unwrap();
//! assert_eq!(loaded.server.engines[0].provider, "ofi+tcp;ofi_rxm");
//! ```
//!
//! Limits: pure, no I/O but reading the file; no hardware checks (an interface or PCI address
//! that is well formed but absent is found at start by `hw/`).

pub mod agent;
pub mod control;
pub mod decode;
pub mod default;
pub mod engine_env;
pub mod error;
pub mod logmask;
pub mod model;
pub mod overrides;
pub mod validate;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use default::DefaultParams;
pub use error::{ConfigError, ConfigErrors, ErrorKind, Notice, Origin};
pub use model::*;
pub use overrides::Overrides;

/// A loaded, overridden and validated config.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub server: Server,
    /// Accepted but worth telling: deprecated forms, weak settings. Log each at start.
    pub notices: Vec<Notice>,
    /// The file it came from, or [`default::EMBEDDED_NAME`].
    pub source: PathBuf,
}

/// Reads, decodes, overrides and validates a config file.
pub fn load_file(path: &Path, overrides: &Overrides) -> Result<Loaded, ConfigErrors> {
    let text = read_text(path, "check the path given with -o/--config")?;
    load_str(&text, path, overrides)
}

/// The largest config file read; DAOS's real configs are a few KiB.
pub const CONFIG_MAX: u64 = 1 << 20;

/// Reads a config file: a regular file of at most [`CONFIG_MAX`] bytes of UTF-8 text.
/// `fix` says how to name another file.
pub fn read_text(path: &Path, fix: &str) -> Result<String, ConfigErrors> {
    use std::io::Read;
    let fail = |message: String, fix: &str| {
        ConfigErrors::new(
            path,
            vec![ConfigError::new(ErrorKind::Io, "", message).fix(fix)],
        )
    };
    let file = std::fs::File::open(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => fix,
            std::io::ErrorKind::PermissionDenied => "make the file readable by this user",
            _ => "check that the path is a readable text file",
        };
        fail(format!("cannot read config file: {e}"), why)
    })?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot read config file: {e}"), fix))?;
    if !meta.is_file() {
        return Err(fail(
            "cannot read config file: it is not a regular file (a device, FIFO or directory)"
                .into(),
            fix,
        ));
    }
    if meta.len() > CONFIG_MAX {
        return Err(fail(
            format!(
                "cannot read config file: it has {} bytes, more than the {CONFIG_MAX} a config may have",
                meta.len()
            ),
            fix,
        ));
    }
    let mut bytes = Vec::new();
    file.take(CONFIG_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read config file: {e}"), fix))?;
    if bytes.len() as u64 > CONFIG_MAX {
        return Err(fail(
            format!("cannot read config file: it grew past {CONFIG_MAX} bytes while read"),
            fix,
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(
            format!(
                "cannot read config file: it is not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            "give a YAML text file",
        )
    })
}

/// Decodes, overrides and validates config text; `name` is used in error messages.
pub fn load_str(
    text: &str,
    name: impl AsRef<Path>,
    overrides: &Overrides,
) -> Result<Loaded, ConfigErrors> {
    let name = name.as_ref();
    let root =
        yaml::parse(text).map_err(|e| {
            ConfigErrors::new(
            name,
            vec![ConfigError::new(ErrorKind::Syntax, "", format!("not valid YAML: {}", e.message))
                .fix("fix the YAML syntax at this position (indentation uses spaces, `key: value`)")
                .at(Origin::File(e.mark))],
        )
        })?;
    let mut d = decode::Decoder::default();
    let mut server = decode::server(&mut d, &root);
    overrides.apply(&mut server, &mut d.spans, &mut d.errors);
    decode::default_replica_ports(&mut server);
    let (errors, notices) = validate::server(&server, &d.spans, d.errors.is_empty());
    // A key that failed to decode keeps its default, which validation may then flag too:
    // report one error per key path, the first (decode) one.
    let decoded: std::collections::HashSet<String> =
        d.errors.iter().map(|e| e.path.clone()).collect();
    d.errors
        .extend(errors.into_iter().filter(|e| !decoded.contains(&e.path)));
    d.notices.extend(notices);
    if !d.errors.is_empty() {
        return Err(ConfigErrors::new(name, d.errors));
    }
    Ok(Loaded {
        server,
        notices: d.notices,
        source: name.to_path_buf(),
    })
}

/// The embedded default config for this host, validated like any file.
pub fn load_default(params: &DefaultParams, overrides: &Overrides) -> Result<Loaded, ConfigErrors> {
    load_str(&default::yaml(params), default::EMBEDDED_NAME, overrides)
}

impl Server {
    /// The normalized config as YAML (modern form).
    pub fn to_yaml(&self) -> String {
        // Serializing plain structs of strings, numbers and lists cannot fail.
        serde_saphyr::to_string(self)
            .unwrap_or_else(|e| format!("# cannot serialize config: {e}\n"))
    }

    /// The normalized config as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
