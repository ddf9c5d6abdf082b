//! A DAOS system over several [`Hosts`]: one daos_server per host on port 10001 with one
//! engine each, configs that read like real ones (`mgmt_svc_replicas: [h1:10001, ...]`),
//! started, killed and restarted per host; `dmg` run from any host. On loopback hosts (see
//! [`crate::hosts`]) the configs name the hosts by address and the engines use `lo`.

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use crate::hosts::Hosts;

/// The system.
pub struct Cluster {
    pub hosts: Hosts,
    dir: tempfile::TempDir,
    servers: Vec<Option<Child>>,
    count: usize,
    /// Environment every daos_server is started with (fault injection).
    server_env: Vec<(String, String)>,
}

impl Cluster {
    /// `count` hosts, the first `replicas` of them management-service replicas; insecure
    /// transport.
    pub fn new(count: usize, replicas: usize) -> Result<Cluster, String> {
        Cluster::on(Hosts::new(count)?, replicas)
    }

    /// As [`Cluster::new`] on `hosts`.
    pub fn on(hosts: Hosts, replicas: usize) -> Result<Cluster, String> {
        Cluster::on_with_env(hosts, replicas, &[])
    }

    /// As [`Cluster::on`], the engines also given `env` (`NAME=value` entries of `env_vars`).
    pub fn on_with_env(hosts: Hosts, replicas: usize, env: &[&str]) -> Result<Cluster, String> {
        let env_vars = std::iter::once("DAOS_TARGET_OVERSUBSCRIBE=1")
            .chain(env.iter().copied())
            .collect::<Vec<_>>()
            .join(", ");
        let count = hosts.count();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let list: Vec<String> = (1..=replicas).map(|i| hosts.at(i)).collect();
        let iface = match hosts.mode() {
            crate::hosts::Mode::Namespaces => "eth0",
            crate::hosts::Mode::Loopback => "lo",
        };
        for i in 1..=count {
            let d = dir.path().join(format!("h{i}"));
            std::fs::create_dir_all(d.join("run")).map_err(|e| e.to_string())?;
            let yaml = format!(
                "name: daos_server\nport: 10001\nmgmt_svc_replicas: [{list}]\nprovider: ofi+tcp\n\
                 socket_dir: {d}/run\ntransport_config:\n  allow_insecure: true\n\
                 disable_hugepages: true\ncontrol_log_file: {d}/daos_server.log\n\
                 fault_path: /rack0/h{i}\nengines:\n\
                 - targets: 1\n  nr_xs_helpers: 0\n  first_core: 0\n  fabric_iface: {iface}\n  \
                 fabric_iface_port: 31416\n  log_file: {d}/engine0.log\n  log_mask: WARN\n  \
                 env_vars: [{env_vars}]\n  storage:\n  - class: ram\n    \
                 scm_mount: {d}/scm0\n    scm_size: 4\n  - class: file\n    \
                 bdev_list: [{d}/bdev0]\n    bdev_size: 1\n",
                list = list.join(", "),
                d = d.display()
            );
            std::fs::write(d.join("daos_server.yml"), yaml).map_err(|e| e.to_string())?;
        }
        Ok(Cluster {
            hosts,
            dir,
            servers: (0..count).map(|_| None).collect(),
            count,
            server_env: Vec::new(),
        })
    }

    /// Host `i` as a host list entry with the control port (`h1:10001`).
    pub fn at(&self, i: usize) -> String {
        self.hosts.at(i)
    }

    /// Every host as one host list (`h[1-3]:10001`).
    pub fn all(&self) -> String {
        self.hosts.list(1, self.count, 10001)
    }

    /// The data directory of host `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("h{i}"))
    }

    /// Starts every daos_server from now on with `name=value` in its environment.
    pub fn set_server_env(&mut self, name: &str, value: &str) {
        self.server_env.push((name.into(), value.into()));
    }

    /// Starts daos_server on host `i`.
    pub fn start(&mut self, i: usize) {
        let d = self.path(i);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("server.out"))
            .expect("server.out");
        let child = self
            .hosts
            .command(i, &crate::bin("daos_server"))
            .args(["start", "-o"])
            .arg(d.join("daos_server.yml"))
            .envs(self.server_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("server.out"))
            .stderr(out)
            .spawn()
            .expect("daos_server");
        self.hosts.track(i, child.id());
        self.servers[i - 1] = Some(child);
    }

    /// Starts every host's daos_server.
    pub fn start_all(&mut self) {
        for i in 1..=self.count {
            self.start(i);
        }
    }

    /// Kills everything on host `i` (its storage stays).
    pub fn kill(&mut self, i: usize) {
        self.hosts.kill(i);
        if let Some(mut c) = self.servers[i - 1].take() {
            let _ = c.wait();
        }
    }

    /// Stops host `i`'s daos_server with SIGTERM and waits for it.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i - 1].take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let gone = crate::wait_until(Duration::from_secs(30), || {
                c.try_wait().ok().flatten().is_some()
            });
            if !gone {
                self.hosts.kill(i);
                let _ = c.wait();
            }
        }
    }

    /// The control log of host `i`.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.path(i).join("daos_server.log")).unwrap_or_default()
    }

    /// Every host's control log, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.count)
            .map(|i| {
                format!(
                    "---- h{i} daos_server.log\n{}\n---- h{i} server.out\n{}\n",
                    tail(&self.log(i)),
                    tail(
                        &std::fs::read_to_string(self.path(i).join("server.out"))
                            .unwrap_or_default()
                    )
                )
            })
            .collect()
    }

    /// Waits until host `i`'s log contains `needle`.
    pub fn wait_log(&self, i: usize, needle: &str, secs: u64) {
        assert!(
            crate::wait_until(Duration::from_secs(secs), || self.log(i).contains(needle)),
            "h{i} never logged {needle:?}\n{}",
            self.logs()
        );
    }

    /// Waits until host `i`'s log contains `needle` at least `n` times.
    pub fn wait_log_count(&self, i: usize, needle: &str, n: usize, secs: u64) {
        assert!(
            crate::wait_until(Duration::from_secs(secs), || self
                .log(i)
                .matches(needle)
                .count()
                >= n),
            "h{i} never logged {needle:?} {n} times\n{}",
            self.logs()
        );
    }

    /// The management service state host `i`'s replica has applied (`raft.RaftSvc/Read`),
    /// as JSON.
    pub fn replica_state(&self, i: usize) -> Result<serde_json::Value, String> {
        let addr = format!("{}:10001", self.hosts.addr(i));
        self.hosts.in_host(i, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                use daos_proto::raft::{RaftMsg, raft_svc_client::RaftSvcClient};
                let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                    .map_err(|e| e.to_string())?
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                let r = RaftSvcClient::new(ch)
                    .read(RaftMsg {
                        data: b"null".to_vec(),
                        group: String::new(),
                    })
                    .await
                    .map_err(|s| s.message().to_string())?;
                let v: serde_json::Value =
                    serde_json::from_slice(&r.into_inner().data).map_err(|e| e.to_string())?;
                v.get("Ok").cloned().ok_or_else(|| v.to_string())
            })
        })?
    }

    /// Runs `dmg -i -l <hosts> args` inside host `from`.
    pub fn dmg(&self, from: usize, hosts: &str, args: &[&str]) -> Output {
        self.hosts
            .command(from, &crate::bin("dmg"))
            .args(["-i", "-l", hosts])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("dmg")
    }

    /// Runs `daos_bench` (or another tool) inside host `from`.
    pub fn run(&self, from: usize, tool: &str, args: &[&str]) -> Output {
        self.hosts
            .command(from, &crate::bin(tool))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect(tool)
    }

    /// `dmg system query -v` from `from`, as (rank, control address, state) rows, or the
    /// error.
    pub fn members(&self, from: usize, hosts: &str) -> Result<Vec<(u32, String, String)>, String> {
        let o = self.dmg(from, hosts, &["-j", "system", "query", "-v"]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if o.status.code() != Some(0) {
            return Err(format!("{}{}", text, String::from_utf8_lossy(&o.stderr)));
        }
        let members = v["response"]["members"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(members
            .iter()
            .map(|m| {
                (
                    m["rank"].as_u64().unwrap_or(u64::MAX) as u32,
                    m["addr"].as_str().unwrap_or_default().to_string(),
                    m["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 1..=self.count {
            self.kill(i);
        }
        // Loopback hosts share this mount namespace: the tmpfs SCM their servers mounted
        // (as root) goes before the directory does. (Namespace hosts' mounts live in their
        // anchors' mount namespaces and go with them.)
        drop(crate::MountGuard(self.dir.path().to_path_buf()));
    }
}
