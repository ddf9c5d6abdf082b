//! Several storage nodes on one machine: each host is a network namespace with its own veth
//! onto a bridge in a namespace of the harness's own, an address the harness assigns
//! (10.250.0.0/24, which exists only inside these namespaces) and host names (`h1`, `h2`, ...)
//! that resolve inside every host (`/etc/netns/<ns>/hosts`, which `ip netns exec` mounts over
//! `/etc/hosts`). Each host also has a mount namespace of its own, kept by an anchor process,
//! which every command of the host enters (`nsenter`): its tmpfs SCM mounts outlive its
//! daos_server as they would on a real host. A host can be killed (every process in it but
//! the anchor: its storage stays, as disks survive a power cut), and its link cut and healed.
//! Everything is removed when the [`Hosts`] value is dropped, also after a failed test.
//! Needs root (CI is root).
//!
//! Without root (or with `DAOS_TEST_HOSTS=loopback`, or [`Hosts::loopback`]) the hosts are
//! distinct loopback addresses instead (`127.<p>.<n>.1`, `.2`, ... per test process and
//! instance): each host's processes get `DAOS_RS_HOST_ADDR` (daos_server listens and its
//! engines bind there), names are the addresses themselves, a host is killed as its process
//! groups, and links cannot be cut (the partition cases are skipped and say so).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// How the hosts are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Network and mount namespaces on a bridge (root).
    Namespaces,
    /// Distinct loopback addresses, process groups (no root needed; no partitions).
    Loopback,
}

/// The hosts of one test.
pub struct Hosts {
    mode: Mode,
    prefix: String,
    count: usize,
    /// Loopback mode: the network part of the hosts' addresses (`127.a.b.`).
    net: String,
    /// Per host, the process holding its mount namespace.
    anchors: std::sync::Mutex<Vec<std::process::Child>>,
    /// Loopback mode: per host, the process groups started in it.
    groups: std::sync::Mutex<Vec<Vec<i32>>>,
}

static INSTANCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `ip` with `args`; the error names the command.
fn ip(args: &[&str]) -> Result<Output, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Hosts {
    /// `count` hosts `h1..hN` on one bridge as root (unless `DAOS_TEST_HOSTS=loopback`),
    /// else on loopback addresses (printed, with what that mode cannot test).
    pub fn new(count: usize) -> Result<Hosts, String> {
        let forced = std::env::var("DAOS_TEST_HOSTS").is_ok_and(|v| v == "loopback");
        if forced || !crate::is_root() {
            eprintln!(
                "multi-host harness: hosts on loopback addresses ({}); link cuts (partition cases) are skipped",
                if forced {
                    "DAOS_TEST_HOSTS=loopback"
                } else {
                    "not root: no network namespaces"
                }
            );
            return Ok(Hosts::loopback(count));
        }
        Hosts::namespaces(count)
    }

    fn blank(mode: Mode, count: usize) -> Hosts {
        let n = INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        Hosts {
            mode,
            prefix: format!("drs{pid}x{n}"),
            count,
            net: format!("127.{}.{}.", 100 + pid % 150, n % 250 + 1),
            anchors: std::sync::Mutex::new(Vec::new()),
            groups: std::sync::Mutex::new(vec![Vec::new(); count]),
        }
    }

    /// `count` hosts on distinct loopback addresses of their own.
    pub fn loopback(count: usize) -> Hosts {
        Hosts::blank(Mode::Loopback, count)
    }

    /// How these hosts are made.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `count` hosts `h1..hN` as network namespaces on one bridge (root).
    pub fn namespaces(count: usize) -> Result<Hosts, String> {
        if !crate::is_root() {
            return Err("network namespaces need root".into());
        }
        let hosts = Hosts::blank(Mode::Namespaces, count);
        hosts.build()?;
        for i in 1..=count {
            let anchor = Command::new("ip")
                .args(["netns", "exec", &hosts.ns(i), "sleep", "infinity"])
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| format!("anchor of h{i}: {e}"))?;
            hosts
                .anchors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(anchor);
        }
        // The anchor's mount namespace is ready once its /etc/hosts is the host's.
        for i in 1..=count {
            let ok = crate::wait_until(std::time::Duration::from_secs(10), || {
                hosts
                    .command(i, std::path::Path::new("cat"))
                    .arg("/etc/hosts")
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(" h1"))
            });
            if !ok {
                return Err(format!("the mount namespace of h{i} did not come up"));
            }
        }
        Ok(hosts)
    }

    fn bridge_ns(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// The namespace of host `i` (1-based).
    pub fn ns(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// The address of host `i`.
    pub fn addr(&self, i: usize) -> String {
        match self.mode {
            Mode::Namespaces => format!("10.250.0.{i}"),
            Mode::Loopback => format!("{}{i}", self.net),
        }
    }

    /// The name of host `i` as configs and host lists write it: `h<i>`, or its address in
    /// loopback mode (nothing resolves names there).
    pub fn name(&self, i: usize) -> String {
        match self.mode {
            Mode::Namespaces => format!("h{i}"),
            Mode::Loopback => self.addr(i),
        }
    }

    /// Host `i` with the control port 10001, as `mgmt_svc_replicas` and `-l` name it.
    pub fn at(&self, i: usize) -> String {
        format!("{}:10001", self.name(i))
    }

    /// How many hosts.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Hosts `first..=last` as one host list with `port` (`h[1-3]:10001`).
    pub fn list(&self, first: usize, last: usize, port: u16) -> String {
        match self.mode {
            Mode::Namespaces => format!("h[{first}-{last}]:{port}"),
            Mode::Loopback => format!("{}[{first}-{last}]:{port}", self.net),
        }
    }

    fn build(&self) -> Result<(), String> {
        let br = self.bridge_ns();
        ip(&["netns", "add", &br])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        let names: String = (1..=self.count)
            .map(|i| format!("{} h{i}\n", self.addr(i)))
            .collect();
        for i in 1..=self.count {
            let ns = self.ns(i);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "link",
                "add",
                "eth0",
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                &format!("p{i}"),
                "netns",
                &br,
            ])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.addr(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&[
                "-n",
                &br,
                "link",
                "set",
                &format!("p{i}"),
                "master",
                "br0",
                "up",
            ])?;
            let etc = PathBuf::from("/etc/netns").join(&ns);
            std::fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
            std::fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n{names}"))
                .map_err(|e| format!("{}: {e}", etc.display()))?;
        }
        Ok(())
    }

    fn anchor(&self, i: usize) -> Option<u32> {
        self.anchors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(i - 1)
            .map(|c| c.id())
    }

    /// A command to run inside host `i`: its network and mount namespaces (loopback mode:
    /// its host address, in a process group of its own that [`Hosts::track`] can record).
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        if self.mode == Mode::Loopback {
            use std::os::unix::process::CommandExt;
            let mut c = Command::new(program);
            c.env("DAOS_RS_HOST_ADDR", self.addr(i)).process_group(0);
            return c;
        }
        match self.anchor(i) {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &pid.to_string(), "-n", "-m", "--"])
                    .arg(program);
                c
            }
            None => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.ns(i)]).arg(program);
                c
            }
        }
    }

    /// Runs `f` on a thread inside host `i`'s network namespace (sockets it opens are that
    /// host's) and, when the host has its anchor process, its mount namespace too (so the
    /// hosts' names resolve as there, through its `/etc/hosts`).
    pub fn in_host<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        if self.mode == Mode::Loopback {
            return std::thread::spawn(f)
                .join()
                .map_err(|_| "the in-host thread panicked".to_string());
        }
        let path = PathBuf::from("/var/run/netns").join(self.ns(i));
        let anchor = self.anchor(i);
        std::thread::spawn(move || {
            use nix::sched::CloneFlags;
            let ns = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {}: {e}", path.display()))?;
            if let Some(pid) = anchor {
                // A thread joins another mount namespace only with its own filesystem
                // attributes (setns(2)).
                nix::sched::unshare(CloneFlags::CLONE_FS)
                    .map_err(|e| format!("unshare CLONE_FS: {e}"))?;
                let mnt = format!("/proc/{pid}/ns/mnt");
                let ns = std::fs::File::open(&mnt).map_err(|e| format!("{mnt}: {e}"))?;
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNS)
                    .map_err(|e| format!("setns {mnt}: {e}"))?;
            }
            Ok(f())
        })
        .join()
        .map_err(|_| "the in-host thread panicked".to_string())?
    }

    /// Loopback mode: records that the process group `pid` (started by [`Hosts::command`])
    /// belongs to host `i`, so [`Hosts::kill`] ends it with the host.
    pub fn track(&self, i: usize, pid: u32) {
        if let Some(g) = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(i - 1)
        {
            g.push(pid as i32);
        }
    }

    /// Kills every process of host `i` at once (SIGKILL), as a power cut would; its storage
    /// (the anchor's mounts) stays.
    pub fn kill(&self, i: usize) {
        if self.mode == Mode::Loopback {
            let groups: Vec<i32> = self
                .groups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(i - 1)
                .map(std::mem::take)
                .unwrap_or_default();
            for g in groups {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(g),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return;
        }
        let Ok(out) = ip(&["netns", "pids", &self.ns(i)]) else {
            return;
        };
        let anchor = self.anchor(i).map(|p| p as i32);
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(p) = pid.parse::<i32>() {
                if Some(p) == anchor {
                    continue;
                }
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Cuts host `i` off the bridge (not in loopback mode: the error says so).
    pub fn cut(&self, i: usize) -> Result<(), String> {
        self.bridged()?;
        ip(&[
            "-n",
            &self.bridge_ns(),
            "link",
            "set",
            &format!("p{i}"),
            "down",
        ])
        .map(|_| ())
    }

    /// Puts host `i` back on the bridge.
    pub fn heal(&self, i: usize) -> Result<(), String> {
        self.bridged()?;
        ip(&[
            "-n",
            &self.bridge_ns(),
            "link",
            "set",
            &format!("p{i}"),
            "up",
        ])
        .map(|_| ())
    }
}

impl Hosts {
    fn bridged(&self) -> Result<(), String> {
        match self.mode {
            Mode::Namespaces => Ok(()),
            Mode::Loopback => {
                Err("hosts on loopback addresses share one network: no link to cut".into())
            }
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 1..=self.count {
            self.kill(i);
        }
        if self.mode == Mode::Loopback {
            return;
        }
        for mut a in std::mem::take(&mut *self.anchors.lock().unwrap_or_else(|p| p.into_inner())) {
            let _ = a.kill();
            let _ = a.wait();
        }
        for i in 1..=self.count {
            let _ = ip(&["netns", "del", &self.ns(i)]);
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(self.ns(i)));
        }
        let _ = ip(&["netns", "del", &self.bridge_ns()]);
    }
}
