//! The multi-host harness itself: hosts as network namespaces on one bridge, names that
//! resolve in every host, a host killed whole, a link cut and healed. A daos_server runs in h1
//! (control plane) and dmg reaches it by name from the others. Root only (CI is root).

use std::time::Duration;

use daos_tests::hosts::Hosts;
use daos_tests::*;

#[test]
fn hosts_reach_each_other_by_name_and_a_cut_or_killed_host_does_not_answer() {
    let hosts = match Hosts::namespaces(3) {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "SKIPPED hosts_reach_each_other_by_name_and_a_cut_or_killed_host_does_not_answer: {e}"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("run")).expect("run dir");
    let config = d.join("daos_server.yml");
    std::fs::write(
        &config,
        format!(
            "name: daos_server\nport: 10001\nmgmt_svc_replicas: [h1:10001]\nprovider: ofi+tcp\n\
             socket_dir: {d}/run\ntransport_config:\n  allow_insecure: true\n\
             disable_hugepages: true\ncontrol_log_file: {d}/daos_server.log\nengines:\n\
             - targets: 1\n  nr_xs_helpers: 0\n  first_core: 0\n  fabric_iface: eth0\n  \
             fabric_iface_port: 31416\n  log_file: {d}/engine0.log\n  \
             env_vars: [DAOS_TARGET_OVERSUBSCRIBE=1]\n  storage:\n  - class: ram\n    \
             scm_mount: {d}/scm0\n    scm_size: 4\n  - class: file\n    \
             bdev_list: [{d}/bdev0]\n    bdev_size: 1\n",
            d = d.display()
        ),
    )
    .expect("config");
    let out = std::fs::File::create(d.join("server.out")).expect("log");
    let mut server = hosts
        .command(1, &bin("daos_server"))
        .args(["start", "-o", config.to_str().expect("utf8")])
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("daos_server in h1");
    let log = || std::fs::read_to_string(d.join("daos_server.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || log()
            .contains("listening on 0.0.0.0:10001")),
        "daos_server in h1 listens on every interface (replicas name h1); log:\n{}\n{}",
        log(),
        std::fs::read_to_string(d.join("server.out")).unwrap_or_default()
    );
    let leader_query = |from: usize| {
        hosts
            .command(from, &bin("dmg"))
            .args(["-i", "-l", "h1:10001", "network", "scan"])
            .output()
            .expect("dmg")
    };
    for from in [2, 3] {
        let o = leader_query(from);
        assert_eq!(o.status.code(), Some(0), "from h{from}: {}", stderr(&o));
        assert!(stdout(&o).contains("h1"), "{}", stdout(&o));
    }
    // A cut link: h2 cannot reach h1, h3 still can; healed, h2 can again.
    hosts.cut(2).expect("cut");
    let o = leader_query(2);
    assert_eq!(o.status.code(), Some(1), "a cut host gets no answer");
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("unable to connect"), "{all}");
    assert_eq!(leader_query(3).status.code(), Some(0));
    hosts.heal(2).expect("heal");
    assert!(
        wait_until(Duration::from_secs(20), || leader_query(2).status.code()
            == Some(0)),
        "h2 reaches h1 again once healed"
    );
    // A killed host: every process in it is gone, nobody reaches it.
    hosts.kill(1);
    let _ = server.wait();
    assert!(
        wait_until(Duration::from_secs(20), || leader_query(3).status.code()
            == Some(1)),
        "h1 answers nothing once killed"
    );
}
