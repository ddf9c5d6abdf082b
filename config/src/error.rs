//! Config errors: each names the file, line and column, the key path, the bad value and the fix.
//!
//! Errors are collected, never thrown one at a time: [`ConfigErrors`] holds every mistake found in
//! one pass, sorted by position, so an admin fixes a file in one round trip.

use std::fmt;
use std::path::PathBuf;

use crate::yaml::Mark;

/// What kind of mistake this is; stable, so callers (and tests) can match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The text is not YAML.
    Syntax,
    /// A key DAOS does not know (strict parsing, as DAOS HEAD does).
    UnknownKey,
    /// A value of the wrong type (a list where a number belongs, ...).
    WrongType,
    /// A required key is missing.
    MissingKey,
    /// A value of the right type but outside what is allowed.
    BadValue,
    /// Two keys that must not be set together.
    Conflict,
    /// A value that must be unique across engines is not.
    Duplicate,
}

/// Where a value came from, so an error can point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A position in the config file.
    File(Mark),
    /// A command-line flag that overrode the file.
    Flag(&'static str),
    /// Not written anywhere: a default or a derived value.
    Default,
}

/// How much of a bad value an error quotes.
pub const VALUE_EXCERPT: usize = 120;

/// `text`, or its first [`VALUE_EXCERPT`] characters and its length.
fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(VALUE_EXCERPT) {
        Some((end, _)) => format!("{}... ({} bytes in all)", &text[..end], text.len()).into(),
        None => text.into(),
    }
}

/// One mistake in a config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ErrorKind,
    /// Key path as written by the admin, e.g. `engines[1].storage[0].scm_mount`.
    pub path: String,
    pub origin: Origin,
    /// The offending value as written, when there is one.
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl ConfigError {
    pub fn new(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            path: path.into(),
            origin: Origin::Default,
            value: None,
            message: message.into(),
            fix: String::new(),
        }
    }

    /// The offending value, quoted in messages up to [`VALUE_EXCERPT`] characters.
    pub fn value(mut self, value: impl fmt::Display) -> Self {
        self.value = Some(value.to_string());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    pub fn at(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    fn mark(&self) -> Mark {
        match self.origin {
            Origin::File(mark) => mark,
            _ => Mark::default(),
        }
    }
}

/// Every mistake found in one config, sorted by position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The config file, or `<embedded default>`.
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn new(file: impl Into<PathBuf>, mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by_key(|e| e.mark());
        errors.dedup();
        ConfigErrors {
            file: file.into(),
            errors,
        }
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// True when some error is of this kind.
    pub fn has(&self, kind: ErrorKind) -> bool {
        self.errors.iter().any(|e| e.kind == kind)
    }

    /// The lines an error report is made of, one per error (fix on the same line), for JSON.
    pub fn lines(&self) -> Vec<String> {
        self.errors.iter().map(|e| self.render(e)).collect()
    }

    fn render(&self, e: &ConfigError) -> String {
        let file = self.file.display();
        let mut line = match &e.origin {
            Origin::File(mark) => format!("{file}:{mark}:"),
            Origin::Flag(flag) => format!("{flag} (overrides {file}):"),
            Origin::Default => format!("{file}:"),
        };
        if !e.path.is_empty() {
            line.push_str(&format!(" {}", e.path));
        }
        if let Some(value) = &e.value {
            line.push_str(&format!(" = {}", excerpt(value)));
        }
        if !e.path.is_empty() || e.value.is_some() {
            line.push(':');
        }
        line.push_str(&format!(" {}", e.message));
        if !e.fix.is_empty() {
            line.push_str(&format!("; fix: {}", e.fix));
        }
        line
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{} has {n} error{}:",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for (i, e) in self.errors.iter().enumerate() {
            write!(f, "  {}", self.render(e))?;
            if i + 1 < n {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// A notice: something accepted but worth telling the admin (deprecated forms, weak settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.message.contains(self.path.as_str()) {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_position_path_value_message_and_fix() {
        let e = ConfigError::new(ErrorKind::BadValue, "engines[1].targets", "must be > 0")
            .value(0)
            .fix("set targets to the number of target cores")
            .at(Origin::File(Mark {
                line: 12,
                column: 14,
            }));
        let errs = ConfigErrors::new("/etc/daos/daos_server.yml", vec![e]);
        assert_eq!(
            errs.to_string(),
            "/etc/daos/daos_server.yml has 1 error:\n  /etc/daos/daos_server.yml:12:14: \
             engines[1].targets = 0: must be > 0; fix: set targets to the number of target cores"
        );
    }

    #[test]
    fn errors_sort_by_position_and_flags_name_the_flag() {
        let late = ConfigError::new(ErrorKind::BadValue, "b", "late")
            .at(Origin::File(Mark { line: 9, column: 1 }));
        let early = ConfigError::new(ErrorKind::BadValue, "a", "early")
            .at(Origin::File(Mark { line: 2, column: 3 }));
        let flag =
            ConfigError::new(ErrorKind::BadValue, "port", "bad").at(Origin::Flag("-p/--port"));
        let errs = ConfigErrors::new("f.yml", vec![late, early, flag]);
        let lines = errs.lines();
        assert!(
            lines[0].starts_with("-p/--port (overrides f.yml): port"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("f.yml:2:3: a"));
        assert!(lines[2].starts_with("f.yml:9:1: b"));
        assert!(errs.to_string().starts_with("f.yml has 3 errors:\n"));
    }
}
