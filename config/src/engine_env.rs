//! What each engine entry maps to when daos_server launches `daos_engine`: its environment
//! (DAOS_FACTS §1.6, the 2.6+/HEAD names) and its command line (§5.1). Pure data: the
//! launcher decides how to exec it.

use std::path::PathBuf;

use crate::model::{Engine, Server, TierClass};

/// Name of the SPDK config file written into the SCM mount at format.
pub const NVME_CONF_NAME: &str = "daos_nvme.conf";

impl Engine {
    /// The engine's environment. `parent` reads daos_server's own environment (for
    /// `env_pass_through`); everything else of the parent environment is dropped, as in DAOS.
    /// Later entries win: `env_vars`, then the values derived from config keys.
    pub fn environment(&self, parent: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v));
        };
        for name in &self.env_pass_through {
            if let Some(v) = parent(name) {
                set(name, v);
            }
        }
        for kv in &self.env_vars {
            if let Some((k, v)) = kv.split_once('=')
                && !k.is_empty()
                && !v.is_empty()
            {
                set(k, v.to_string());
            }
        }
        set("D_PROVIDER", self.provider.clone());
        set("D_INTERFACE", self.fabric_iface.clone());
        if self.fabric_iface_port != 0 {
            set("D_PORT", self.fabric_iface_port.to_string());
        }
        set("D_LOG_MASK", self.log_mask.clone());
        if let Some(f) = &self.log_file {
            set("D_LOG_FILE", f.display().to_string());
        }
        if let Some(t) = self.crt_timeout {
            set("CRT_TIMEOUT", t.to_string());
        }
        set(
            "FI_OFI_RXM_USE_SRX",
            if self.disable_srx { "0" } else { "1" }.into(),
        );
        if let Some(key) = &self.fabric_auth_key {
            set("D_PROVIDER_AUTH_KEY", key.clone());
        }
        if let Some(class) = self.bdevs().next().and_then(|t| t.class.vos_bdev_class()) {
            set("VOS_BDEV_CLASS", class.into());
        }
        if self.scm().is_some_and(|t| t.class != TierClass::Dcpm) {
            set("PMEMOBJ_CONF", "sds.at_create=0".into());
        }
        env
    }

    /// The SCM mount point (tier 0).
    pub fn scm_mount(&self) -> Option<&PathBuf> {
        self.scm().and_then(|t| t.scm_mount.as_ref())
    }

    /// `daos_engine` arguments for engine `index` of `server`.
    pub fn args(&self, server: &Server, index: usize) -> Vec<String> {
        let mut a = vec![
            "-t".to_string(),
            self.targets.to_string(),
            "-x".into(),
            self.nr_xs_helpers.to_string(),
        ];
        if let Some(f) = self.first_core {
            a.extend(["-f".into(), f.to_string()]);
        }
        if let Some(n) = self.pinned_numa_node {
            a.extend(["-p".into(), n.to_string()]);
        }
        if let Some(m) = &self.modules {
            a.extend(["-m".into(), m.clone()]);
        }
        if let Some(mount) = self.scm_mount() {
            a.extend(["-s".into(), mount.display().to_string()]);
            if self.bdevs().next().is_some() {
                a.extend([
                    "-n".into(),
                    mount.join(NVME_CONF_NAME).display().to_string(),
                ]);
            }
        }
        if self.bypass_health_chk == Some(true) {
            a.push("-b".into());
        }
        a.extend([
            "-I".into(),
            index.to_string(),
            "-d".into(),
            server.socket_dir.display().to_string(),
            "-g".into(),
            server.name.clone(),
        ]);
        a
    }
}
