//! `daos_control.yml`, the config of `dmg` (DAOS_FACTS §1.9): system name, control port, the
//! hosts to talk to, and the TLS files of the admin certificate. Decoded with the same
//! machinery as the server config, so mistakes come with file, line, column and fix.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::decode::{Decoder, MapView};
use crate::error::{ConfigError, ConfigErrors, ErrorKind};
use crate::model::{DEFAULT_CERT_DIR, DEFAULT_PORT, DEFAULT_SYSTEM_NAME};

/// Default location of `daos_control.yml`.
pub const DEFAULT_CONTROL_PATH: &str = "/etc/daos/daos_control.yml";

/// dmg's TLS settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientTransport {
    pub allow_insecure: bool,
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ClientTransport {
    fn default() -> Self {
        let dir = Path::new(DEFAULT_CERT_DIR);
        ClientTransport {
            allow_insecure: false,
            ca_cert: dir.join("daosCA.crt"),
            cert: dir.join("admin.crt"),
            key: dir.join("admin.key"),
        }
    }
}

/// `daos_control.yml`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Control {
    pub name: String,
    pub port: u16,
    pub hostlist: Vec<String>,
    pub transport_config: ClientTransport,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            name: DEFAULT_SYSTEM_NAME.into(),
            port: DEFAULT_PORT,
            hostlist: vec!["localhost".into()],
            transport_config: ClientTransport::default(),
        }
    }
}

const KEYS: &[&str] = &["name", "port", "hostlist", "transport_config"];
const TRANSPORT_KEYS: &[&str] = &["allow_insecure", "ca_cert", "cert", "key"];

/// Parses YAML text of a client-side config (`daos_control.yml`, `daos_agent.yml`), a syntax
/// error given with its position.
pub(crate) fn parse_yaml(text: &str, name: &Path) -> Result<crate::yaml::Node, ConfigErrors> {
    crate::yaml::parse(text).map_err(|e| {
        ConfigErrors::new(
            name,
            vec![
                ConfigError::new(
                    ErrorKind::Syntax,
                    "",
                    format!("not valid YAML: {}", e.message),
                )
                .fix("fix the YAML syntax at this position")
                .at(crate::Origin::File(e.mark)),
            ],
        )
    })
}

/// `transport_config` of a client-side config.
pub(crate) fn transport(d: &mut Decoder, mut t: MapView<'_>, out: &mut ClientTransport) {
    if let Some(x) = d.boolean(&mut t, "allow_insecure") {
        out.allow_insecure = x;
    }
    if let Some(x) = d.path(&mut t, "ca_cert") {
        out.ca_cert = x;
    }
    if let Some(x) = d.path(&mut t, "cert") {
        out.cert = x;
    }
    if let Some(x) = d.path(&mut t, "key") {
        out.key = x;
    }
    d.finish(t, TRANSPORT_KEYS);
}

/// Reads `daos_control.yml` text; `name` is used in messages.
pub fn load_str(text: &str, name: impl AsRef<Path>) -> Result<Control, ConfigErrors> {
    let name = name.as_ref();
    let root = parse_yaml(text, name)?;
    let mut d = Decoder::default();
    let mut c = Control::default();
    if let Some(mut v) = d.view(&root, "", "") {
        if let Some(x) = d.string(&mut v, "name") {
            c.name = x;
        }
        if let Some(x) = d.int(&mut v, "port", 1, 65535) {
            c.port = x as u16;
        }
        if let Some(x) = d.strings(&mut v, "hostlist") {
            c.hostlist = x;
        }
        if let Some(t) = d.sub(&mut v, "transport_config") {
            transport(&mut d, t, &mut c.transport_config);
        }
        d.finish(v, KEYS);
    }
    if c.hostlist.is_empty() {
        let (display, origin) = d.spans.resolve("hostlist");
        d.errors.push(
            ConfigError::new(ErrorKind::BadValue, display, "hostlist is empty")
                .fix("list the daos_server hosts, e.g. hostlist: ['node-[1-4]']")
                .at(origin),
        );
    }
    if d.errors.is_empty() {
        Ok(c)
    } else {
        Err(ConfigErrors::new(name, d.errors))
    }
}

/// Reads `daos_control.yml` from a file.
pub fn load_file(path: &Path) -> Result<Control, ConfigErrors> {
    let text = crate::read_text(path, "check the path given with -o/--config-path")?;
    load_str(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_daos_example_and_defaults() {
        let c = load_str(
            "name: daos_server\nport: 10001\nhostlist: ['node-4', 'node-5', 'node-6']\n\
             transport_config:\n  allow_insecure: false\n  ca_cert: /etc/daos/certs/daosCA.crt\n  \
             cert: /etc/daos/certs/admin.crt\n  key: /etc/daos/certs/admin.key\n",
            "c.yml",
        )
        .unwrap();
        assert_eq!(c.hostlist.len(), 3);
        assert_eq!(
            c.transport_config.key,
            PathBuf::from("/etc/daos/certs/admin.key")
        );
        let d = load_str("", "c.yml").unwrap();
        assert_eq!(d, Control::default());
    }

    #[test]
    fn mistakes_have_positions() {
        let e = load_str("port: 0\nhostlst: [a]\n", "c.yml").unwrap_err();
        assert_eq!(e.len(), 2, "{e}");
        assert!(e.lines()[0].starts_with("c.yml:1:7: port = 0"), "{e}");
        assert!(e.lines()[1].contains("did you mean `hostlist`"), "{e}");
        assert!(
            load_str("hostlist: []\n", "c.yml")
                .unwrap_err()
                .to_string()
                .contains("hostlist is empty")
        );
    }
}
