//! `mgmt_svc_replicas` across daos_servers (issue #23 items 9 and 13): servers that share an
//! address are told apart by their explicit ports, the replica that bootstraps does not depend
//! on the order each config lists the replicas in, and a server configured with another
//! replica set is refused rather than forming a system of its own.

use std::path::PathBuf;
use std::time::Duration;

use daos_tests::*;

/// One daos_server on 127.0.0.1 with one engine, its own directory and control port.
struct Server {
    // Field order matters: the process dies, then the guard unmounts, then the dir goes.
    proc: Option<Proc>,
    _mounts: MountGuard,
    dir: tempfile::TempDir,
    port: u16,
}

impl Server {
    /// A config for control port `port` listing `replicas` (in that order), its engine's
    /// fabric endpoint on `fabric_port`.
    fn new(port: u16, replicas: &[String], fabric_port: u16) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("run")).expect("mkdir");
        let yaml = format!(
            "name: daos_server\nport: {port}\nmgmt_svc_replicas: [{list}]\nprovider: ofi+tcp\n\
             socket_dir: {d}/run\ntransport_config:\n  allow_insecure: true\n\
             disable_hugepages: true\ncontrol_log_file: {d}/daos_server.log\nengines:\n\
             - targets: 1\n  nr_xs_helpers: 0\n  first_core: 0\n  fabric_iface: lo\n  \
             fabric_iface_port: {fabric_port}\n  log_file: {d}/engine0.log\n  \
             env_vars: [DAOS_TARGET_OVERSUBSCRIBE=1]\n  storage:\n  \
             - class: ram\n    scm_mount: {d}/scm0\n    scm_size: 4\n  \
             - class: file\n    bdev_list: [{d}/bdev0]\n    bdev_size: 1\n",
            list = replicas.join(", "),
            d = d.display()
        );
        std::fs::write(d.join("daos_server.yml"), yaml).expect("config");
        Server {
            proc: None,
            _mounts: MountGuard(d.to_path_buf()),
            dir,
            port,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("daos_server.yml")
    }

    fn start(&mut self) {
        let cfg = self.config();
        let args = ["start", "-o", cfg.to_str().expect("utf8"), "--auto-format"];
        self.proc = Some(Proc::start("daos_server", &args, &[], self.dir.path()));
    }

    fn log(&self) -> String {
        let d = self.dir.path();
        format!(
            "{}{}",
            std::fs::read_to_string(d.join("daos_server.log")).unwrap_or_default(),
            log(d, "daos_server", "err")
        )
    }

    fn dmg(&self, args: &[&str]) -> std::process::Output {
        let host = format!("127.0.0.1:{}", self.port);
        let mut all = vec!["-i", "-l", host.as_str()];
        all.extend_from_slice(args);
        run("dmg", &all, &[])
    }

    /// `dmg system query` through this server: (rank, state) of each member.
    fn members(&self) -> Vec<(u64, String)> {
        let o = self.dmg(&["-j", "system", "query"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v["response"]["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| {
                        (
                            m["rank"].as_u64().unwrap_or(u64::MAX),
                            m["state"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `dmg system leader-query` through this server: the leader it names.
    fn leader(&self) -> Option<String> {
        let o = self.dmg(&["-j", "system", "leader-query"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        let l = v["response"]["current_leader"].as_str()?;
        (!l.is_empty()).then(|| l.to_string())
    }
}

fn logs(servers: &[Server]) -> String {
    servers
        .iter()
        .map(|s| format!("--- 127.0.0.1:{} ---\n{}", s.port, s.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn three_servers_on_one_address_listing_the_replicas_in_different_orders_form_one_system() {
    let base = free_port_range(3);
    let fabric = free_port_range(24);
    let ports = [base, base + 1, base + 2];
    let orders = [
        [ports[0], ports[1], ports[2]],
        [ports[2], ports[0], ports[1]],
        [ports[1], ports[2], ports[0]],
    ];
    let mut servers: Vec<Server> = (0..3)
        .map(|i| {
            let list: Vec<String> = orders[i].iter().map(|p| addr(*p)).collect();
            Server::new(ports[i], &list, fabric + 8 * i as u16)
        })
        .collect();
    // The last in the canonical order starts first: no server may bootstrap alone because
    // its config lists itself first.
    for s in servers.iter_mut().rev() {
        s.start();
    }
    let formed = wait_until(Duration::from_secs(120), || {
        servers.iter().all(|s| {
            let m = s.members();
            m.len() == 3 && m.iter().all(|(_, st)| st == "joined")
        })
    });
    assert!(
        formed,
        "members: {:?}\n{}",
        servers.iter().map(Server::members).collect::<Vec<_>>(),
        logs(&servers)
    );
    for s in &servers {
        let mut ranks: Vec<u64> = s.members().into_iter().map(|(r, _)| r).collect();
        ranks.sort();
        assert_eq!(ranks, [0, 1, 2], "through {}\n{}", s.port, logs(&servers));
    }
    // One leader, named alike through every server; the lowest replica bootstrapped.
    let mut leaders = Vec::new();
    let agreed = wait_until(Duration::from_secs(30), || {
        leaders = servers.iter().map(Server::leader).collect();
        leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0])
    });
    assert!(agreed, "{leaders:?}\n{}", logs(&servers));
    let leader = leaders[0].clone().unwrap_or_default();
    assert!(
        ports.iter().any(|p| leader == addr(*p)),
        "{leader}\n{}",
        logs(&servers)
    );
    let bootstraps: Vec<u16> = servers
        .iter()
        .filter(|s| s.log().contains("bootstrapping a new system"))
        .map(|s| s.port)
        .collect();
    assert_eq!(bootstraps, [ports[0]], "{}", logs(&servers));
    for (i, s) in servers.iter().enumerate() {
        let want = format!(
            "management service replica {i} of 3 ({}, {}, {})",
            addr(ports[0]),
            addr(ports[1]),
            addr(ports[2])
        );
        assert!(s.log().contains(&want), "{want}\n{}", logs(&servers));
    }
}

#[test]
fn a_server_configured_with_another_replica_set_is_refused_naming_both_sets() {
    let base = free_port_range(3);
    let fabric = free_port_range(16);
    // The first server is alone in its list and bootstraps a system of its own; the second
    // lists three replicas, the first among them (the third is never started).
    let alone = vec![addr(base)];
    let three: Vec<String> = [base + 2, base, base + 1]
        .iter()
        .map(|p| addr(*p))
        .collect();
    let mut servers = vec![
        Server::new(base, &alone, fabric),
        Server::new(base + 1, &three, fabric + 8),
    ];
    servers[0].start();
    servers[1].start();
    let ours = addr(base);
    let theirs = format!("{},{},{}", addr(base), addr(base + 1), addr(base + 2));
    let want = format!(
        "management service replica sets differ: the calling server has mgmt_svc_replicas [{theirs}], this server has [{ours}]"
    );
    let refused = wait_until(Duration::from_secs(60), || servers[0].log().contains(&want));
    assert!(refused, "{want}\n{}", logs(&servers));
    // The refused server's engine did not join the first server's system.
    let alone_ok = wait_until(Duration::from_secs(30), || {
        servers[0].members() == [(0, "joined".to_string())]
    });
    assert!(alone_ok, "{:?}\n{}", servers[0].members(), logs(&servers));
    assert!(
        wait_until(Duration::from_secs(60), || servers[1]
            .log()
            .contains("join refused: management service replica sets differ")),
        "{}",
        logs(&servers)
    );
}

#[test]
fn replicas_that_cannot_be_told_apart_stop_the_start_with_the_field_and_the_fix() {
    let port = free_port();
    let fabric = free_port_range(8);
    let list = vec![addr(port), format!("localhost:{port}"), addr(port + 1)];
    let mut s = Server::new(port, &list, fabric);
    s.start();
    let code = s
        .proc
        .as_mut()
        .and_then(|p| p.wait(Duration::from_secs(30)));
    assert!(matches!(code, Some(c) if c != 0), "{code:?}\n{}", s.log());
    let text = s.log();
    assert!(
        text.contains(&format!(
            "mgmt_svc_replicas[0] \"{}\" and mgmt_svc_replicas[1] \"localhost:{port}\" both resolve to {}",
            addr(port),
            addr(port)
        )) && text.contains("distinct ports"),
        "{text}"
    );
}
