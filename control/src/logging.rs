//! Control-plane logging in DAOS's format: `<hostname> INFO 2006/01/02 15:04:05 <msg>`
//! (UTC), or one JSON object per line with `control_log_json` / `-J`.
//!
//! Levels (`control_log_mask`): ERROR = the daemon or an operation failed; NOTICE = accepted but
//! worth an admin's attention (deprecated config, degraded mode), mapped from tracing's WARN;
//! INFO = lifecycle (listening, engine started/stopped); DEBUG and TRACE = diagnostics.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `YYYY/MM/DD hh:mm:ss` in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "NOTICE",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

struct DaosFormat {
    hostname: String,
    json: bool,
}

impl<S, N> FormatEvent<S, N> for DaosFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let level = level_name(event.metadata().level());
        let time = timestamp(SystemTime::now());
        if self.json {
            let mut msg = String::new();
            ctx.format_fields(Writer::new(&mut msg), event)?;
            let line = serde_json::json!({"host": self.hostname, "level": level, "time": time, "msg": msg});
            return writeln!(writer, "{line}");
        }
        write!(writer, "{} {level} {time} ", self.hostname)?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The tracing level filter for a `control_log_mask` value (validated by the config).
pub fn filter(mask: &str) -> tracing_subscriber::filter::LevelFilter {
    use tracing_subscriber::filter::LevelFilter;
    match mask.to_ascii_uppercase().as_str() {
        "DISABLED" => LevelFilter::OFF,
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "NOTICE" => LevelFilter::WARN,
        "ERROR" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// This host's name, as log lines and messages show it.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Installs the global logger: to `file` (appended) or stderr. Safe to call more than once
/// (later calls are ignored), so tests and re-inits do not fail.
pub fn init(mask: &str, file: Option<&Path>, json: bool) -> io::Result<()> {
    let format = DaosFormat {
        hostname: hostname(),
        json,
    };
    // openraft reports every election and membership step at INFO; those show with DEBUG.
    let level = filter(mask);
    let quiet = if level >= tracing_subscriber::filter::LevelFilter::DEBUG {
        "info"
    } else {
        "error"
    };
    let directives = format!("{},openraft={quiet}", level.to_string().to_lowercase());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .event_format(format);
    let result = match file {
        Some(path) => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open control_log_file {}: {e}", path.display()),
                    )
                })?;
            builder.with_writer(Mutex::new(f)).try_init()
        }
        None => builder.with_writer(io::stderr).try_init(),
    };
    let _ = result; // already initialised: keep the first logger
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_daos_style_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        // 2006-01-02 15:04:05 UTC, Go's reference time.
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_136_214_245)),
            "2006/01/02 15:04:05"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000/02/29 00:00:00"
        );
    }

    #[test]
    fn masks_map_to_levels() {
        use tracing_subscriber::filter::LevelFilter;
        assert_eq!(filter("disabled"), LevelFilter::OFF);
        assert_eq!(filter("NOTICE"), LevelFilter::WARN);
        assert_eq!(filter("INFO"), LevelFilter::INFO);
    }
}
