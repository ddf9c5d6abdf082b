//! A single-node system through the real binaries: daos_server formats (tmpfs SCM when root,
//! an emulating directory otherwise; a sparse file bdev), launches daos_engine, which joins and
//! gets its rank; restarts keep ranks; a killed engine is restarted and rejoins; two engines
//! share one server.

use std::time::Duration;

use daos_tests::*;
use nix::sys::signal::Signal;

#[test]
fn auto_format_starts_the_engine_and_it_joins_as_rank_0() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let log = sys.log();
    for needle in [
        "Checking DAOS I/O Engine instance 0 storage ...",
        "--auto flag set on server start so formatting storage now",
        "Starting I/O Engine instance 0:",
        "daos_engine:0 DAOS I/O Engine (v",
        "started on rank 0 with 1 target, 0 helper XS, firstcore 0",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in\n{log}");
    }
    let scm = sys.path().join("scm0");
    if is_root() {
        assert!(
            mounts_under(sys.path()).contains(&scm),
            "tmpfs mounted at scm0 as root"
        );
        assert!(log.contains("mounted tmpfs (size=4g,mode=0700)"), "{log}");
    } else {
        eprintln!("NOTE: not root, so SCM is an emulating directory (the tmpfs path runs in CI)");
        assert!(log.contains("emulating ram SCM"), "{log}");
    }
    let sb = sys.superblock(0);
    assert_eq!(field(&sb, "version"), "1");
    assert_eq!(field(&sb, "rank"), "0");
    assert_eq!(field(&sb, "validrank"), "true");
    assert_eq!(field(&sb, "system"), "daos_server");
    assert!(
        field(&sb, "uri").starts_with("ofi+tcp;ofi_rxm://127.0.0.1:"),
        "{sb}"
    );
    assert_eq!(field(&sb, "uuid").len(), 36);
    let conf = std::fs::read_to_string(scm.join("daos_nvme.conf")).expect("daos_nvme.conf");
    let conf: serde_json::Value = serde_json::from_str(&conf).expect("json");
    let bdevs = conf["subsystems"][0]["config"]
        .as_array()
        .expect("bdev config");
    assert!(bdevs.iter().any(|b| b["method"] == "bdev_aio_create"
        && b["params"]["filename"] == sys.path().join("bdev0").display().to_string()));
    assert_eq!(
        std::fs::metadata(sys.path().join("bdev0"))
            .expect("bdev file")
            .len(),
        1_000_000_000
    );
    sys.stop(&mut server);
    let log = sys.log();
    assert!(
        log.contains("DAOS I/O Engine instance 0 exited with status: 0"),
        "{log}"
    );
    assert!(log.contains("stopped (after PrepShutdown)"), "{log}");
}

#[test]
fn without_format_the_server_waits_in_maintenance_mode() {
    let sys = System::new(1);
    let mut server = sys.start(&[]);
    sys.wait_log("SCM format required on instance 0", 1, 20);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !sys.log().contains("Starting I/O Engine"),
        "no engine without format"
    );
    assert!(sys.superblock(0).is_empty());
    sys.stop(&mut server);
}

#[test]
fn restart_keeps_the_rank_without_reformat() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let uuid = field(&sys.superblock(0), "uuid");
    sys.stop(&mut server);

    let mut server = sys.start(&[]);
    sys.wait_log("rejoined the system as rank 0", 1, 30);
    assert_eq!(
        sys.log().matches("formatting storage now").count(),
        1,
        "no second format"
    );
    assert_eq!(
        field(&sys.superblock(0), "uuid"),
        uuid,
        "same engine identity"
    );
    sys.stop(&mut server);
}

#[test]
fn a_killed_engine_is_restarted_and_rejoins_with_its_rank() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let pid_line = sys
        .log()
        .lines()
        .find(|l| l.contains("started on rank 0"))
        .map(str::to_string)
        .expect("banner");
    let pid: i32 = pid_line
        .split("process ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).expect("kill engine");
    sys.wait_log(
        "DAOS I/O Engine instance 0 exited with status: signal 9 (SIGKILL)",
        1,
        20,
    );
    sys.wait_log("rejoined the system as rank 0", 1, 30);
    assert_eq!(sys.log().matches("started on rank 0").count(), 2);
    assert!(server.alive());
    sys.stop(&mut server);
}

#[test]
fn two_engines_in_one_server_get_distinct_ranks_ports_and_cores() {
    let sys = System::new(2);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("the system as rank", 2, 40);
    // Each engine says where it started once it is set up (its line may come after the
    // server's).
    sys.wait_log("started on rank", 2, 20);
    let (a, b) = (sys.superblock(0), sys.superblock(1));
    let mut ranks = vec![field(&a, "rank"), field(&b, "rank")];
    ranks.sort();
    assert_eq!(ranks, vec!["0", "1"]);
    assert_ne!(field(&a, "uri"), field(&b, "uri"), "distinct fabric ports");
    let log = sys.log();
    assert!(
        log.contains("firstcore 0, host") && log.contains("firstcore 1, host"),
        "{log}"
    );
    sys.stop(&mut server);
    assert_eq!(sys.log().matches("exited with status: 0").count(), 2);
}

#[test]
fn killing_daos_server_takes_its_engines_down() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let banner = sys
        .log()
        .lines()
        .find(|l| l.contains("started on rank 0"))
        .map(str::to_string)
        .expect("banner");
    let pid: i32 = banner
        .split("process ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("pid");
    let engine_sock = sys.path().join(format!("run/daos_engine_{pid}.sock"));
    assert!(engine_sock.exists());
    // SIGKILL: daos_server cannot stop its engines; the kernel's parent-death signal must,
    // even though the engine's stdout (a pipe to daos_server) is now closed.
    server.signal(Signal::SIGKILL);
    server.wait(Duration::from_secs(10));
    let gone = wait_until(Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid)
    });
    if !gone {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert!(gone, "engine {pid} outlived its daos_server");
    assert!(
        !engine_sock.exists(),
        "the engine removed its socket as it stopped"
    );
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
}

#[test]
fn data_files_are_private_and_an_insecure_server_listens_on_loopback_only() {
    use std::os::unix::fs::PermissionsExt;
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    ok(sys.dmg(&[
        "-i",
        "pool",
        "create",
        "p",
        "--scm-size",
        "64M",
        "--nvme-size",
        "64M",
    ]));
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let d = sys.path();
    assert_eq!(mode(&d.join("bdev0")), 0o600, "bdev file");
    assert_eq!(mode(&d.join("scm0/superblock")), 0o600, "superblock");
    assert_eq!(mode(&d.join("scm0")), 0o700, "SCM mount");
    assert_eq!(mode(&d.join("scm0/pools")), 0o700, "pools dir");
    let pool_dir = std::fs::read_dir(d.join("scm0/pools"))
        .expect("pools")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .next()
        .expect("a pool");
    assert_eq!(mode(&pool_dir), 0o700, "pool dir");
    for f in std::fs::read_dir(&pool_dir).expect("pool dir") {
        let f = f.expect("entry").path();
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let ms = d.join("scm0/control_raft");
    assert_eq!(mode(&ms), 0o700, "management service dir");
    assert_eq!(mode(&ms.join("raft.log")), 0o600, "management service log");
    assert!(
        sys.log()
            .contains(&format!("listening on 127.0.0.1:{}", sys.port)),
        "{}",
        sys.log()
    );
    sys.stop(&mut server);
}

/// DAOS's ResetFormatRanks (what `dmg system erase` asks of each host) on `ranks`.
fn reset_format(
    sys: &System,
    ranks: &str,
) -> Result<Vec<daos_proto::shared::RankResult>, tonic::Status> {
    let ranks = ranks.to_string();
    with_channel(sys.port, move |ch| async move {
        use daos_proto::ctl::{RanksReq, ctl_svc_client::CtlSvcClient};
        CtlSvcClient::new(ch)
            .reset_format_ranks(RanksReq {
                ranks,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().results)
    })
}

#[test]
fn a_stopped_rank_has_its_format_reset_and_waits_for_a_format() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    // A running rank is refused, nothing changed.
    let e = reset_format(&sys, "0").expect_err("running");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message()
            .contains("reset format not supported when rank 0 is running"),
        "{e:?}"
    );
    assert!(!sys.superblock(0).is_empty());
    let e = reset_format(&sys, "").expect_err("no ranks");
    assert!(e.message().contains("no ranks specified"), "{e:?}");

    ok(sys.dmg(&["-i", "system", "stop"]));
    let results = reset_format(&sys, "0").expect("stopped");
    assert_eq!(results.len(), 1, "{results:?}");
    let r = &results[0];
    assert_eq!(
        (r.rank, r.action.as_str(), r.errored, r.state.as_str()),
        (0, "reset format", false, "awaitformat"),
        "{r:?}"
    );
    assert!(sys.superblock(0).is_empty(), "the superblock is gone");
    sys.wait_log("SCM format required on instance 0", 1, 10);
    // A format brings the engine back.
    ok(sys.dmg(&["-i", "storage", "format"]));
    sys.wait_log("joined the system as rank", 2, 30);
    assert!(!sys.superblock(0).is_empty());
    sys.stop(&mut server);
}

/// Each rank's state as `dmg -j system query` shows it.
fn rank_states(sys: &System) -> Vec<(u32, String, String)> {
    let text = stdout(&sys.dmg(&["-i", "-j", "system", "query"]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["response"]["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["rank"].as_u64().unwrap_or(u64::MAX) as u32,
                m["state"].as_str().unwrap_or_default().to_lowercase(),
                m["info"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A power loss with the control plane's metadata on a persistent path (`control_metadata`)
/// and the engines' SCM in RAM: the management service comes back with every rank `Joined`,
/// but an engine whose storage was lost does not run. Its rank must not show `Joined`: it
/// waits for a format (`AwaitFormat`), while the rank whose storage survived rejoins.
#[test]
fn after_a_power_loss_a_rank_whose_engine_does_not_run_is_not_shown_joined() {
    let sys = System::new(2);
    let meta = sys.path().join("control_meta");
    std::fs::create_dir(&meta).expect("mkdir");
    let mut yaml = std::fs::read_to_string(&sys.config).expect("config");
    yaml.push_str(&format!("control_metadata:\n  path: {}\n", meta.display()));
    std::fs::write(&sys.config, yaml).expect("config");
    let mut server = sys.start_joined();
    ok(sys.dmg(&["-i", "pool", "create", "p", "--scm-size", "64M"]));
    let (lost, kept) = (
        field(&sys.superblock(1), "rank")
            .parse::<u32>()
            .expect("rank"),
        field(&sys.superblock(0), "rank")
            .parse::<u32>()
            .expect("rank"),
    );
    // The power goes: every process dies at once, and engine 1's RAM tier with it.
    let engines = children(server.pid() as u32, "daos_engine");
    server.signal(Signal::SIGKILL);
    for e in &engines {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*e as i32), Signal::SIGKILL);
    }
    server.wait(Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(10), || {
        engines
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists() || is_zombie(*p as i32))
    }));
    let scm1 = sys.path().join("scm1");
    for e in std::fs::read_dir(&scm1).expect("scm1") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("rm");
        } else {
            std::fs::remove_file(&p).expect("rm");
        }
    }
    assert!(sys.superblock(1).is_empty());

    let mut server = sys.start(&[]);
    sys.wait_log("SCM format required on instance 1", 1, 30);
    // Soon: not when SWIM, if an engine runs, would have the rank excluded (30 s).
    let settled = wait_until(Duration::from_secs(15), || {
        let states = rank_states(&sys);
        states
            .iter()
            .any(|(r, s, _)| *r == lost && s == "awaitformat")
            && states.iter().any(|(r, s, _)| *r == kept && s == "joined")
    });
    let states = rank_states(&sys);
    assert!(
        settled,
        "rank {lost} (no engine) AwaitFormat, rank {kept} Joined: {states:?}\n{}",
        sys.log()
    );
    let (_, _, info) = states
        .iter()
        .find(|(r, _, _)| *r == lost)
        .expect("lost rank");
    assert!(info.contains("holds rank"), "{info}");
    // It stays so (nothing flips it back to Joined while its engine does not run).
    let again = rank_states(&sys);
    assert!(
        again
            .iter()
            .any(|(r, s, _)| *r == lost && s == "awaitformat"),
        "{again:?}"
    );
    sys.stop(&mut server);
}
