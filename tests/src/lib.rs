//! Harness for tests that run the real binaries: find them, give each test its own temp dir
//! and free ports, and make sure every process started is killed when the test ends, even
//! when it fails.
//!
//! The binaries come from the same `cargo` build as the tests (`target/<profile>/`); the test
//! command builds them first (`cargo build --workspace --bins`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built next to this test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs a binary to completion.
pub fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin(name));
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run binary")
}

/// A running process, killed (SIGKILL) and reaped on drop unless it already exited.
pub struct Proc {
    pub child: Option<Child>,
    pub name: String,
}

impl Proc {
    /// Starts a binary with stdout/stderr captured to files in `log_dir`.
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)], log_dir: &Path) -> Proc {
        let out = std::fs::File::create(log_dir.join(format!("{name}.out"))).expect("log file");
        let err = std::fs::File::create(log_dir.join(format!("{name}.err"))).expect("log file");
        let mut cmd = Command::new(bin(name));
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc {
            child: Some(cmd.spawn().expect("spawn")),
            name: name.into(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// Waits for exit up to `timeout`; returns the exit code (None if it did not exit).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Text of a process's captured stderr/stdout file.
pub fn log(dir: &Path, name: &str, stream: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.{stream}"))).unwrap_or_default()
}

/// Unmounts, on drop, every mount below a directory (tmpfs SCM that daos_server mounted as
/// root), deepest first, so a failing test leaves no mount behind.
pub struct MountGuard(pub PathBuf);

/// Mount points below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir) && m != dir)
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    v
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        for m in mounts_under(&self.0) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// True when running as root (tmpfs mounts are real then).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
