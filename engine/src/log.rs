//! The engine's log levels per subsystem (DAOS's `D_LOG_MASK`): read from the environment
//! at start (daos_server sets it from the engine's `log_mask`, `DD_SUBSYS` from `env_vars`)
//! and changed while it runs by `dmg server set-logmasks` (dRPC SetLogMasks). One atomic per
//! subsystem, read when a message is about to be written; nothing on the I/O path logs.

use std::sync::atomic::{AtomicU8, Ordering};

use daos_config::logmask::{Level, LogMask};

/// The subsystems the engine writes messages for, by DAOS's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subsys {
    Mgmt,
    Swim,
    Server,
    Pool,
    /// DAOS's clients' object I/O on the targets.
    Object,
}

impl Subsys {
    const ALL: [Subsys; 5] = [
        Subsys::Mgmt,
        Subsys::Swim,
        Subsys::Server,
        Subsys::Pool,
        Subsys::Object,
    ];

    /// DAOS's name of the subsystem.
    pub fn name(self) -> &'static str {
        match self {
            Subsys::Mgmt => "MGMT",
            Subsys::Swim => "SWIM",
            Subsys::Server => "SERVER",
            Subsys::Pool => "POOL",
            Subsys::Object => "OBJECT",
        }
    }
}

const ERR: u8 = 4;
static LEVELS: [AtomicU8; 5] = [const { AtomicU8::new(ERR) }; 5];

/// Applies `mask` to every subsystem.
pub fn set(mask: &LogMask) {
    for s in Subsys::ALL {
        LEVELS[s as usize].store(mask.level(s.name()).index(), Ordering::Relaxed);
    }
}

/// The level subsystem `s` logs at.
pub fn level(s: Subsys) -> Level {
    Level::from_index(LEVELS[s as usize].load(Ordering::Relaxed))
}

/// Whether a message of level `l` from `s` is written.
pub fn enabled(s: Subsys, l: Level) -> bool {
    l >= level(s)
}

/// The word a message of level `l` starts with.
pub fn label(l: Level) -> &'static str {
    match l {
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Note => "NOTE",
        Level::Warn => "WARNING",
        Level::Err => "ERROR",
        _ => "CRITICAL",
    }
}

/// The mask `masks` with the subsystems `subsystems` merged in (DAOS's rules), after checking
/// both and the debug streams `streams`.
pub fn merged(masks: &str, streams: &str, subsystems: &str) -> Result<LogMask, String> {
    let mask = LogMask::parse(masks)?;
    daos_config::logmask::validate_streams(streams)?;
    daos_config::logmask::validate_subsystems(subsystems)?;
    Ok(mask.with_subsystems(subsystems))
}

/// Sets the levels from `D_LOG_MASK` and `DD_SUBSYS` (unset: ERR). A bad value is reported
/// and leaves ERR.
pub fn init_from_env() -> Result<(), String> {
    let masks = std::env::var("D_LOG_MASK").unwrap_or_else(|_| "ERR".into());
    let subsystems = std::env::var("DD_SUBSYS").unwrap_or_default();
    let streams = std::env::var("DD_MASK").unwrap_or_default();
    let mask = merged(&masks, &streams, &subsystems)
        .map_err(|e| format!("D_LOG_MASK/DD_SUBSYS/DD_MASK: {e}; logging at ERR"))?;
    set(&mask);
    Ok(())
}

/// Writes a message of subsystem `$s` at level `$l` (a [`Level`]) when the mask lets it.
#[macro_export]
macro_rules! dlog {
    ($s:expr, $l:expr, $($arg:tt)*) => {{
        let (s, l) = ($s, $l);
        if $crate::log::enabled(s, l) {
            eprintln!("{}: {}", $crate::log::label(l), format_args!($($arg)*));
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_set_levels_per_subsystem() {
        set(&LogMask::parse("WARN,mgmt=DEBUG").expect("mask"));
        assert!(enabled(Subsys::Mgmt, Level::Debug));
        assert!(enabled(Subsys::Swim, Level::Warn));
        assert!(!enabled(Subsys::Swim, Level::Info));
        set(&merged("DEBUG", "md", "swim").expect("merged"));
        assert_eq!(level(Subsys::Swim), Level::Debug);
        assert_eq!(level(Subsys::Mgmt), Level::Err);
        assert!(merged("DEBUG", "nope", "").is_err());
        assert!(merged("LOUD", "", "").is_err());
        set(&LogMask::default());
        assert_eq!(level(Subsys::Pool), Level::Err);
    }
}
