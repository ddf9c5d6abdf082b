//! DAOS's engine log masks (`log_mask`, `D_LOG_MASK`, `DD_SUBSYS`, `DD_MASK`): a base level,
//! then `SUBSYSTEM=LEVEL` assignments, as `dmg server set-logmasks` and the engine read them.
//! The names and rules are DAOS's (`src/control/server/engine/utils.go`).

use std::fmt;

/// A log level, least severe first (DAOS's `DBUG` .. `EMIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Note,
    Warn,
    Err,
    Crit,
    Alrt,
    Emrg,
    Emit,
}

impl Level {
    /// Every level, in order.
    pub const ALL: [Level; 9] = [
        Level::Debug,
        Level::Info,
        Level::Note,
        Level::Warn,
        Level::Err,
        Level::Crit,
        Level::Alrt,
        Level::Emrg,
        Level::Emit,
    ];

    /// A level by any of DAOS's names (`DEBUG`/`DBUG`, `ERROR`/`ERR`, `FATAL`/`EMRG`, ...),
    /// case-insensitive.
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.to_ascii_uppercase().as_str() {
            "DEBUG" | "DBUG" => Level::Debug,
            "INFO" => Level::Info,
            "NOTE" => Level::Note,
            "WARN" => Level::Warn,
            "ERROR" | "ERR" => Level::Err,
            "CRIT" => Level::Crit,
            "ALRT" => Level::Alrt,
            "FATAL" | "EMRG" => Level::Emrg,
            "EMIT" => Level::Emit,
            _ => return None,
        })
    }

    /// DAOS's short name (`DBUG`, `INFO`, ..., `ERR`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DBUG",
            Level::Info => "INFO",
            Level::Note => "NOTE",
            Level::Warn => "WARN",
            Level::Err => "ERR",
            Level::Crit => "CRIT",
            Level::Alrt => "ALRT",
            Level::Emrg => "EMRG",
            Level::Emit => "EMIT",
        }
    }

    /// Its index in [`Level::ALL`].
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The level at `index` in [`Level::ALL`] (clamped).
    pub fn from_index(index: u8) -> Level {
        Level::ALL[usize::from(index).min(Level::ALL.len() - 1)]
    }
}

/// DAOS's subsystem (facility) names.
pub const SUBSYSTEMS: &[&str] = &[
    "DAOS",
    "ARRAY",
    "KV",
    "COMMON",
    "TREE",
    "VOS",
    "CLIENT",
    "SERVER",
    "RDB",
    "RSVC",
    "POOL",
    "CONTAINER",
    "OBJECT",
    "PLACEMENT",
    "REBUILD",
    "MGMT",
    "BIO",
    "TESTS",
    "DFS",
    "DUNS",
    "DRPC",
    "SECURITY",
    "DTX",
    "DFUSE",
    "IL",
    "CSUM",
    "STACK",
    "MISC",
    "MEM",
    "SWIM",
    "FI",
    "TELEM",
    "CRT",
    "RPC",
    "BULK",
    "CORPC",
    "GRP",
    "LM",
    "HG",
    "EXTERNAL",
    "ST",
    "IV",
    "CTL",
];

/// DAOS's debug stream names (`DD_MASK`).
pub const STREAMS: &[&str] = &[
    "MD",
    "PL",
    "MGMT",
    "EPC",
    "DF",
    "REBUILD",
    "SEC",
    "CSUM",
    "GROUP_DEFAULT",
    "GROUP_METADATA_ONLY",
    "GROUP_METADATA",
    "ANY",
    "TRACE",
    "MEM",
    "NET",
    "IO",
    "TEST",
];

/// The longest mask DAOS takes.
pub const MAX_LEN: usize = 1023;

/// A parsed log mask: the base level and per-subsystem levels (subsystems upper-case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogMask {
    pub base: Level,
    pub subsystems: Vec<(String, Level)>,
}

impl Default for LogMask {
    /// DAOS's default: `ERR`.
    fn default() -> LogMask {
        LogMask {
            base: Level::Err,
            subsystems: Vec::new(),
        }
    }
}

fn check_chars(what: &str, text: &str) -> Result<(), String> {
    if text.len() > MAX_LEN {
        return Err(format!(
            "{what} is {} characters long; at most {MAX_LEN}",
            text.len()
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphabetic() || *c == ',' || *c == '=' || *c == '_'))
    {
        return Err(format!(
            "{what} {text:?} has the character {c:?}; use letters, '_', ',' and '='"
        ));
    }
    Ok(())
}

fn level_of(text: &str, token: &str) -> Result<Level, String> {
    Level::parse(token).ok_or_else(|| {
        format!(
            "log masks {text:?}: unknown level {token:?}; use one of FATAL, CRIT, ERR, WARN, NOTE, INFO, DEBUG"
        )
    })
}

fn known(name: &str, names: &[&str]) -> bool {
    names.contains(&name.to_ascii_uppercase().as_str())
}

impl LogMask {
    /// Parses `LEVEL[,SUBSYSTEM=LEVEL...]` (the first entry may be an assignment too).
    pub fn parse(text: &str) -> Result<LogMask, String> {
        if text.is_empty() {
            return Err("log masks are empty; give a level such as ERR or INFO,mgmt=DEBUG".into());
        }
        check_chars("log masks", text)?;
        let mut mask = LogMask::default();
        for (i, token) in text.split(',').enumerate() {
            match token.split_once('=') {
                None if i == 0 => mask.base = level_of(text, token)?,
                None => {
                    return Err(format!(
                        "log masks {text:?}: entry {token:?} after the first must be SUBSYSTEM=LEVEL"
                    ));
                }
                Some((sub, level)) => {
                    if level.contains('=') {
                        return Err(format!(
                            "log masks {text:?}: entry {token:?} must be SUBSYSTEM=LEVEL"
                        ));
                    }
                    let level = level_of(text, level)?;
                    if sub.eq_ignore_ascii_case("all") {
                        return Err(format!(
                            "log masks {text:?}: ALL is not a subsystem here; give the level alone to set every subsystem"
                        ));
                    }
                    if !known(sub, SUBSYSTEMS) {
                        return Err(format!(
                            "log masks {text:?}: unknown subsystem {sub:?}; use one of {}",
                            SUBSYSTEMS.join(", ")
                        ));
                    }
                    mask.subsystems.push((sub.to_ascii_uppercase(), level));
                }
            }
        }
        Ok(mask)
    }

    /// The level subsystem `name` logs at.
    pub fn level(&self, name: &str) -> Level {
        self.subsystems
            .iter()
            .rev()
            .find(|(s, _)| s.eq_ignore_ascii_case(name))
            .map_or(self.base, |(_, l)| *l)
    }

    /// DAOS's merge of `DD_SUBSYS` into a mask (`MergeLogEnvVars`): with subsystems named,
    /// only they log below ERR (at the mask's level for them), the others at ERR at most.
    pub fn with_subsystems(&self, subsystems: &str) -> LogMask {
        let named: Vec<String> = subsystems
            .split(',')
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("all"))
            .map(str::to_ascii_uppercase)
            .collect();
        if named.is_empty() {
            return self.clone();
        }
        let mut subs: Vec<(String, Level)> = self
            .subsystems
            .iter()
            .filter(|(s, l)| *l >= Level::Err || named.contains(s))
            .cloned()
            .collect();
        if self.base < Level::Err {
            for n in &named {
                if !subs.iter().any(|(s, _)| s == n) {
                    subs.push((n.clone(), self.base));
                }
            }
        }
        let base = self.base.max(Level::Err);
        subs.retain(|(_, l)| *l != base);
        LogMask {
            base,
            subsystems: subs,
        }
    }
}

impl fmt::Display for LogMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.name())?;
        for (s, l) in &self.subsystems {
            write!(f, ",{s}={}", l.name())?;
        }
        Ok(())
    }
}

fn names(what: &str, text: &str, valid: &[&str]) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    check_chars(what, text)?;
    let tokens: Vec<&str> = text.split(',').collect();
    for t in &tokens {
        if t.eq_ignore_ascii_case("all") {
            if tokens.len() != 1 {
                return Err(format!(
                    "{what} {text:?}: ALL cannot be combined with other names"
                ));
            }
            continue;
        }
        if !known(t, valid) {
            return Err(format!(
                "{what} {text:?}: unknown name {t:?}; use ALL or some of {}",
                valid.join(", ")
            ));
        }
    }
    Ok(())
}

/// Checks a `DD_SUBSYS` list (empty: every subsystem).
pub fn validate_subsystems(text: &str) -> Result<(), String> {
    names("log subsystems", text, SUBSYSTEMS)
}

/// Checks a `DD_MASK` list of debug streams (empty: every stream).
pub fn validate_streams(text: &str) -> Result<(), String> {
    names("debug streams", text, STREAMS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_parse_as_daos_reads_them() {
        let m = LogMask::parse("info,mgmt=DEBUG,swim=err").expect("mask");
        assert_eq!(m.base, Level::Info);
        assert_eq!(m.level("mgmt"), Level::Debug);
        assert_eq!(m.level("SWIM"), Level::Err);
        assert_eq!(m.level("pool"), Level::Info);
        assert_eq!(m.to_string(), "INFO,MGMT=DBUG,SWIM=ERR");
        assert_eq!(
            LogMask::parse("mgmt=DEBUG").expect("first may assign").base,
            Level::Err
        );
        assert_eq!(LogMask::parse("FATAL").expect("alias").base, Level::Emrg);
        for (bad, why) in [
            ("", "empty"),
            ("LOUD", "unknown level \"LOUD\""),
            ("ERR,DEBUG", "must be SUBSYSTEM=LEVEL"),
            ("ERR,nosuch=DEBUG", "unknown subsystem \"nosuch\""),
            ("ERR,all=DEBUG", "ALL is not a subsystem"),
            ("ERR,mgmt=DEBUG=INFO", "must be SUBSYSTEM=LEVEL"),
            ("ERR;rm", "has the character ';'"),
        ] {
            let e = LogMask::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(LogMask::parse(&"A".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn subsystems_merge_as_daos_merges_them() {
        let m = LogMask::parse("DEBUG").expect("mask");
        assert_eq!(m.with_subsystems("").to_string(), "DBUG");
        assert_eq!(m.with_subsystems("all").to_string(), "DBUG");
        assert_eq!(
            m.with_subsystems("mgmt,pool").to_string(),
            "ERR,MGMT=DBUG,POOL=DBUG"
        );
        let m = LogMask::parse("INFO,vos=DEBUG,rpc=CRIT").expect("mask");
        assert_eq!(
            m.with_subsystems("mgmt").to_string(),
            "ERR,RPC=CRIT,MGMT=INFO"
        );
        let m = LogMask::parse("WARN,mgmt=ERR").expect("mask");
        assert_eq!(m.with_subsystems("mgmt").to_string(), "ERR");
    }

    #[test]
    fn streams_and_subsystems_are_checked() {
        validate_streams("").expect("empty: all");
        validate_streams("md,mgmt").expect("streams");
        validate_subsystems("ALL").expect("all");
        assert!(
            validate_streams("md,nope")
                .unwrap_err()
                .contains("unknown name \"nope\"")
        );
        assert!(
            validate_subsystems("all,mgmt")
                .unwrap_err()
                .contains("ALL cannot")
        );
    }
}
