//! Harness for tests that run the real binaries: find them, give each test its own temp dir
//! and free ports, and make sure every process started is killed when the test ends, even
//! when it fails.
//!
//! The binaries come from the same `cargo` build as the tests (`target/<profile>/`); the test
//! command builds them first (`cargo build --workspace --bins`).

pub mod cluster;
pub mod fuzz;
pub mod hosts;

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
///
/// Taken below the kernel's ephemeral range (see [`free_port_range`]): a port the kernel handed
/// out as ephemeral can be taken again by any outgoing connection before the server binds it.
pub fn free_port() -> u16 {
    free_port_range(1)
}

/// A base port `p` such that `p..p+n` were free a moment ago, below the kernel's ephemeral
/// range (so outgoing connections never take them) and different for every call in this
/// process (tests run in parallel threads) and, very likely, across test processes.
pub fn free_port_range(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    for _ in 0..1000 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = 20000 + ((pid.wrapping_mul(7919) / 64 + k) % 180) * 64;
        let base = base as u16;
        if (base..base + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of {n} ports between 20000 and 31520");
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

/// A temp dir with a daos_server config, a mount guard, and helpers to run the binaries on it.
pub struct System {
    // Field order matters: the guard unmounts before the directory is removed.
    _mounts: MountGuard,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The control port.
    pub port: u16,
    /// Engines in the config.
    pub engines: usize,
}

impl System {
    /// A system of `engines` engines with insecure transport.
    pub fn new(engines: usize) -> System {
        System::with_transport(engines, None)
    }

    /// With `certs`, daos_server uses TLS with the certificates in that directory.
    pub fn with_transport(engines: usize, certs: Option<&Path>) -> System {
        System::build(engines, 1, certs)
    }

    /// Insecure, with `targets` targets per engine.
    pub fn with_targets(engines: usize, targets: usize) -> System {
        System::build(engines, targets, None)
    }

    fn build(engines: usize, targets: usize, certs: Option<&Path>) -> System {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("run")).expect("mkdir");
        let port = free_port();
        let fabric_base = free_port_range(8 * engines.max(1) as u16);
        let transport = match certs {
            None => "transport_config:\n  allow_insecure: true\n".to_string(),
            Some(c) => format!(
                "transport_config:\n  allow_insecure: false\n  client_cert_dir: {c}/clients\n  \
                 ca_cert: {c}/daosCA.crt\n  cert: {c}/server.crt\n  key: {c}/server.key\n",
                c = c.display()
            ),
        };
        let mut yaml = format!(
            "name: daos_server\nport: {port}\nprovider: ofi+tcp\nsocket_dir: {d}/run\n{transport}\
             disable_hugepages: true\ncontrol_log_file: {d}/daos_server.log\nengines:\n",
            d = d.display()
        );
        for i in 0..engines {
            yaml.push_str(&format!(
                "- targets: {targets}\n  nr_xs_helpers: 0\n  first_core: {i}\n  fabric_iface: lo\n  \
                 fabric_iface_port: {fport}\n  log_file: {d}/engine{i}.log\n  \
                 env_vars: [DAOS_TARGET_OVERSUBSCRIBE=1]\n  storage:\n  \
                 - class: ram\n    scm_mount: {d}/scm{i}\n    scm_size: 4\n  \
                 - class: file\n    bdev_list: [{d}/bdev{i}]\n    bdev_size: 1\n",
                fport = fabric_base + 8 * i as u16,
                d = d.display()
            ));
        }
        let config = d.join("daos_server.yml");
        std::fs::write(&config, yaml).expect("config");
        System {
            _mounts: MountGuard(d.to_path_buf()),
            dir,
            config,
            port,
            engines,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts daos_server on this system's config with extra flags.
    pub fn start(&self, extra: &[&str]) -> Proc {
        let mut args = vec!["start", "-o", self.config.to_str().expect("utf8")];
        args.extend_from_slice(extra);
        Proc::start("daos_server", &args, &[], self.path())
    }

    /// Starts daos_server with `--auto-format` and waits until every engine joined.
    pub fn start_joined(&self) -> Proc {
        let server = self.start(&["--auto-format"]);
        self.wait_log("the system as rank", self.engines, 60);
        server
    }

    /// `dmg pool create LABEL --scm-size SCM [--nvme-size NVME]`; returns the pool's UUID.
    pub fn create_pool(&self, label: &str, scm: &str, nvme: Option<&str>) -> String {
        let mut args = vec!["-i", "pool", "create", label, "--scm-size", scm];
        if let Some(n) = nvme {
            args.extend(["--nvme-size", n]);
        }
        let text = ok(self.dmg(&args));
        text.lines()
            .find_map(|l| l.trim().strip_prefix("UUID                 : "))
            .unwrap_or_else(|| panic!("no UUID in:\n{text}"))
            .to_string()
    }

    /// The control log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("daos_server.log")).unwrap_or_default()
    }

    /// Waits until the control log has `n` occurrences of `needle`.
    pub fn wait_log(&self, needle: &str, n: usize, secs: u64) {
        let ok = wait_until(Duration::from_secs(secs), || {
            self.log().matches(needle).count() >= n
        });
        assert!(
            ok,
            "waited {secs}s for {n} x {needle:?}; log:\n{}\nstderr:\n{}",
            self.log(),
            log(self.path(), "daos_server", "err")
        );
    }

    /// Engine `i`'s superblock text (empty when absent).
    pub fn superblock(&self, i: usize) -> String {
        std::fs::read_to_string(self.path().join(format!("scm{i}/superblock"))).unwrap_or_default()
    }

    /// SIGTERM, and asserts a clean exit.
    pub fn stop(&self, server: &mut Proc) {
        server.signal(nix::sys::signal::Signal::SIGTERM);
        let code = server.wait(Duration::from_secs(30));
        assert_eq!(
            code,
            Some(0),
            "daos_server exits 0 on SIGTERM; log:\n{}",
            self.log()
        );
    }

    /// Runs the `daos` tool against this system (insecure) with `args`.
    pub fn daos(&self, args: &[&str]) -> Output {
        let host = format!("localhost:{}", self.port);
        let mut all = vec!["-i", "-l", host.as_str()];
        all.extend_from_slice(args);
        run("daos", &all, &[])
    }

    /// A client's map of pool `pool` (insecure), from the management service, with a pool
    /// handle.
    pub fn pool_map(&self, pool: &str) -> daos_client::PoolMap {
        let control = daos_control::load_control(None).expect("control config");
        let target =
            daos_control::Target::new(&control, Some(&format!("localhost:{}", self.port)), true)
                .expect("target");
        // An admin tool's pool handle (insecure system, no agent): the targets serve it.
        daos_client::connect::connect_blocking(&target, pool, daos_client::container::FLAG_RW)
            .expect("pool map")
    }

    /// Runs dmg against this system with `-l localhost:<port>` and `args`.
    pub fn dmg(&self, args: &[&str]) -> Output {
        let host = format!("localhost:{}", self.port);
        let mut all = vec!["-l", host.as_str()];
        all.extend_from_slice(args);
        run("dmg", &all, &[])
    }
}

/// A command's stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a command exited 0; returns its stdout.
#[track_caller]
pub fn ok(o: Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// Asserts a command exited 1 with `fragment` in its stderr.
#[track_caller]
pub fn fails(o: Output, fragment: &str) {
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains(fragment),
        "expected {fragment:?} in: {}",
        stderr(&o)
    );
}

/// Runs `f` with a plaintext gRPC channel to `127.0.0.1:port`, on a runtime of its own (gone,
/// with the connection, when this returns).
pub fn with_channel<T, F, Fut>(port: u16, f: F) -> T
where
    F: FnOnce(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let ch = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        f(ch).await
    })
}

/// Asserts a command exited 2 (bad usage: a flag or its value) with `fragment` in its stderr.
#[track_caller]
pub fn usage(o: Output, fragment: &str) {
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains(fragment),
        "expected {fragment:?} in: {}",
        stderr(&o)
    );
}

/// PIDs of the running children of `parent` whose command is `comm`.
pub fn children(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid ...
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let name = head.split_once(" (").map(|(_, n)| n).unwrap_or_default();
            let mut f = rest.split(' ');
            let state = f.next().unwrap_or_default();
            let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            ppid == parent && name == comm && state != "Z"
        })
        .collect()
}

/// A field of a superblock's YAML text.
pub fn field(superblock: &str, key: &str) -> String {
    superblock
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_default()
        .to_string()
}
