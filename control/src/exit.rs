//! Errors of the control binaries and the exit codes scripts can rely on.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the command failed: invalid config, setup error, failed operation |
//! | 2 | bad usage: unknown flag or bad flag value (printed by the argument parser) |

use std::fmt;

/// Exit codes of `daos_server` and `dmg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    Failure = 1,
    Usage = 2,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// A failed command: what failed, why, and how to fix it.
#[derive(Debug)]
pub struct CmdError {
    pub message: String,
    pub fix: Option<String>,
    pub code: ExitCode,
}

impl CmdError {
    pub fn new(message: impl fmt::Display) -> Self {
        CmdError {
            message: message.to_string(),
            fix: None,
            code: ExitCode::Failure,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\nfix: {fix}")?;
        }
        Ok(())
    }
}

impl From<daos_config::ConfigErrors> for CmdError {
    fn from(e: daos_config::ConfigErrors) -> Self {
        CmdError::new(e)
    }
}

/// Prints `e` as `ERROR: <what failed>` with its `fix:` line, and returns its exit code.
pub fn report(e: &CmdError) -> ExitCode {
    eprintln!("ERROR: {e}");
    e.code
}

impl CmdError {
    /// `message` with its causes (each `source` of `e`), as `message: cause: cause`.
    pub fn chain(message: impl fmt::Display, e: &dyn std::error::Error) -> Self {
        let mut text = format!("{message}: {e}");
        let mut src = e.source();
        while let Some(s) = src {
            text.push_str(&format!(": {s}"));
            src = s.source();
        }
        CmdError::new(text)
    }
}
