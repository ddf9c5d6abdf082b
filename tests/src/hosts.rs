//! Several storage nodes on one machine: each host is a network namespace with its own veth
//! onto a bridge in a namespace of the harness's own, an address the harness assigns
//! (10.250.0.0/24, which exists only inside these namespaces) and host names (`h1`, `h2`, ...)
//! that resolve inside every host (`/etc/netns/<ns>/hosts`, which `ip netns exec` mounts over
//! `/etc/hosts`). Each host also has a mount namespace of its own, kept by an anchor process,
//! which every command of the host enters (`nsenter`): its tmpfs SCM mounts outlive its
//! daos_server as they would on a real host. A host can be killed (every process in it but
//! the anchor: its storage stays, as disks survive a power cut), and its link cut and healed.
//! Everything is removed when the [`Hosts`] value is dropped, also after a failed test.
//! Needs root (CI is root); [`Hosts::new`] says why when it cannot.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The hosts of one test.
pub struct Hosts {
    prefix: String,
    count: usize,
    /// Per host, the process holding its mount namespace.
    anchors: std::sync::Mutex<Vec<std::process::Child>>,
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
    /// `count` hosts `h1..hN` on one bridge.
    pub fn new(count: usize) -> Result<Hosts, String> {
        if !crate::is_root() {
            return Err("network namespaces need root".into());
        }
        let n = INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let hosts = Hosts {
            prefix: format!("drs{}x{n}", std::process::id()),
            count,
            anchors: std::sync::Mutex::new(Vec::new()),
        };
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
        format!("10.250.0.{i}")
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

    /// A command to run inside host `i`: its network and mount namespaces.
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
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
    /// host's; names do not resolve there, use [`Hosts::addr`]).
    pub fn in_host<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let path = PathBuf::from("/var/run/netns").join(self.ns(i));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {}: {e}", path.display()))?;
            Ok(f())
        })
        .join()
        .map_err(|_| "the in-host thread panicked".to_string())?
    }

    /// Kills every process of host `i` at once (SIGKILL), as a power cut would; its storage
    /// (the anchor's mounts) stays.
    pub fn kill(&self, i: usize) {
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

    /// Cuts host `i` off the bridge.
    pub fn cut(&self, i: usize) -> Result<(), String> {
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

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 1..=self.count {
            self.kill(i);
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
