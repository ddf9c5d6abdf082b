//! `daos_server start` command-line overrides. They take precedence over the file, as in DAOS;
//! an override that makes the config invalid is reported against the flag, not the file.

use std::path::PathBuf;

use crate::decode::Spans;
use crate::error::{ConfigError, ErrorKind, Origin};
use crate::model::{Server, TierClass};

/// Values given on the command line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `-p/--port`.
    pub port: Option<u16>,
    /// `-d/--socket_dir`.
    pub socket_dir: Option<PathBuf>,
    /// `-i/--insecure`: sets `transport_config.allow_insecure`.
    pub insecure: bool,
    /// `-t/--targets`: every engine.
    pub targets: Option<u32>,
    /// `-x/--xshelpernr`: every engine.
    pub nr_xs_helpers: Option<u32>,
    /// `-f/--firstcore`: every engine.
    pub first_core: Option<u32>,
    /// `-s/--storage`: SCM mount of engine 0.
    pub scm_mount: Option<PathBuf>,
    /// `-m/--modules`: every engine.
    pub modules: Option<String>,
    /// `-g/--group`: system name.
    pub group: Option<String>,
}

impl Overrides {
    /// Applies the overrides, recording each overridden value as coming from its flag.
    pub fn apply(&self, s: &mut Server, spans: &mut Spans, errors: &mut Vec<ConfigError>) {
        let mut flag = |canon: String, name: &'static str| {
            spans.record(canon.clone(), canon, Origin::Flag(name));
        };
        if let Some(port) = self.port {
            s.port = port;
            flag("port".into(), "-p/--port");
        }
        if let Some(dir) = &self.socket_dir {
            s.socket_dir = dir.clone();
            flag("socket_dir".into(), "-d/--socket_dir");
        }
        if self.insecure {
            s.transport_config.allow_insecure = true;
        }
        if let Some(name) = &self.group {
            s.name = name.clone();
            flag("name".into(), "-g/--group");
        }
        for (i, e) in s.engines.iter_mut().enumerate() {
            if let Some(t) = self.targets {
                e.targets = t;
                flag(format!("engines[{i}].targets"), "-t/--targets");
            }
            if let Some(x) = self.nr_xs_helpers {
                e.nr_xs_helpers = x;
                flag(format!("engines[{i}].nr_xs_helpers"), "-x/--xshelpernr");
            }
            if let Some(f) = self.first_core {
                e.first_core = Some(f);
                flag(format!("engines[{i}].first_core"), "-f/--firstcore");
            }
            if let Some(m) = &self.modules {
                e.modules = Some(m.clone());
                flag(format!("engines[{i}].modules"), "-m/--modules");
            }
        }
        if let Some(mount) = &self.scm_mount {
            let tier = s.engines.first_mut().and_then(|e| {
                e.storage
                    .iter_mut()
                    .position(|t| t.class.is_scm())
                    .map(|k| (e, k))
            });
            match tier {
                Some((e, k)) => {
                    e.storage[k].scm_mount = Some(mount.clone());
                    flag(format!("engines[0].storage[{k}].scm_mount"), "-s/--storage");
                }
                None => errors.push(
                    ConfigError::new(
                        ErrorKind::BadValue,
                        "engines[0].storage",
                        "-s/--storage needs engine 0 with an SCM tier to override",
                    )
                    .value(mount.display())
                    .fix(format!(
                        "add an engine with a `class: {}` tier, or drop -s",
                        TierClass::Ram.as_str()
                    ))
                    .at(Origin::Flag("-s/--storage")),
                ),
            }
        }
    }
}
