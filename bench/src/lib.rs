//! Shared parts of `daos_bench`: robust statistics over repeated runs and the record of what
//! was measured where, so results written as JSON can be compared across machines and commits.
//!
//! Every benchmark reports median, MAD, min and max over its repeated runs (and latency
//! percentiles over its operations), stamped with [`RunInfo`]: git revision, command line,
//! machine. A ratio against the reference measured in the same run (fio, fi_pingpong) is
//! [`ratio`].

pub mod alloc_count;
pub mod fabric;
pub mod io;
pub mod rebuild;
pub mod stats;
pub mod storage;
pub mod store_path;

use serde::Serialize;

pub use stats::{Summary, summarize};

/// The machine a benchmark ran on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub kernel: String,
}

/// What ran, where and from which source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunInfo {
    /// `git rev-parse HEAD`, with `-dirty` when the tree has changes; `unknown` outside git.
    pub git_revision: String,
    pub command_line: Vec<String>,
    pub machine: Machine,
    /// Seconds since the Unix epoch.
    pub started_unix: u64,
}

fn first_line_with(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The git revision of the source tree this binary was built from.
pub fn git_revision() -> String {
    match git(&["rev-parse", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{rev}-dirty") } else { rev }
        }
        _ => "unknown".into(),
    }
}

/// Reads this machine's description from /proc and the kernel.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = first_line_with(&meminfo, "MemTotal")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    Machine {
        hostname,
        cpu_model: first_line_with(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_bytes: memory_kib * 1024,
        kernel,
    }
}

/// The record of this run.
pub fn run_info() -> RunInfo {
    RunInfo {
        git_revision: git_revision(),
        command_line: std::env::args().collect(),
        machine: machine(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// ours / reference, or `None` when the reference measured nothing.
pub fn ratio(ours: f64, reference: f64) -> Option<f64> {
    (reference > 0.0 && reference.is_finite() && ours.is_finite()).then(|| ours / reference)
}

/// A byte count as fi_pingpong and fio print it: `64`, `4k`, `1m`.
pub fn human(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}m", n >> 20),
        n if n >= 1024 && n % 1024 == 0 => format!("{}k", n >> 10),
        n => n.to_string(),
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal and at most five
/// times a second, so it costs nothing measurable (and nothing at all in logs and CI).
pub struct Progress {
    label: String,
    on: bool,
    last: std::time::Instant,
}

impl Progress {
    pub fn new(label: impl Into<String>) -> Progress {
        use std::io::IsTerminal;
        Progress {
            label: label.into(),
            on: std::io::stderr().is_terminal(),
            last: std::time::Instant::now(),
        }
    }

    /// A bar that never draws (for all but one of several threads).
    pub fn silent() -> Progress {
        Progress {
            label: String::new(),
            on: false,
            last: std::time::Instant::now(),
        }
    }

    /// Shows `done` of 1.0.
    pub fn tick(&mut self, now: std::time::Instant, done: f64) {
        if !self.on || now.duration_since(self.last) < std::time::Duration::from_millis(200) {
            return;
        }
        self.last = now;
        let filled = (done.clamp(0.0, 1.0) * 30.0) as usize;
        // Padding only: no allocation while a benchmark runs.
        eprint!(
            "\r{:<24} [{:#<f$}{:<r$}] {:>3.0}%",
            self.label,
            "",
            "",
            done * 100.0,
            f = filled,
            r = 30 - filled
        );
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.on {
            eprint!("\r{:<70}\r", "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_is_described() {
        let m = machine();
        assert!(m.cores >= 1);
        assert!(m.memory_bytes > 0);
        assert!(!m.kernel.is_empty());
        let info = run_info();
        assert!(!info.git_revision.is_empty());
        assert!(info.started_unix > 0);
        let json = serde_json::to_value(&info).expect("json");
        assert!(json["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(95.0, 100.0), Some(0.95));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
    }
}
