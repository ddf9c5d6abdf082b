//! The real binaries, end to end: `daos_server config validate` on every example and on broken
//! files, `daos_server start` (active config, CLI precedence, socket-dir errors, one server per
//! socket dir), the embedded default, and flag errors of every binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daos_tests::*;
use nix::sys::signal::Signal;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("config/examples"))
        .expect("examples dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

/// The local example with its paths moved into `dir` (socket dir created).
fn local_config(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).expect("mkdir");
    let text = std::fs::read_to_string(repo_root().join("config/examples/daos_server_local.yml"))
        .expect("example")
        .replace("/tmp/", &format!("{}/", dir.display()))
        .replace("/var/run/daos_server", &run.display().to_string())
        // Every test gets its own control port: daos_server listens on it.
        .replace("port: 10001", &format!("port: {}", free_port()));
    let path = dir.join("daos_server.yml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn every_example_validates_and_its_output_validates_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(examples().len() >= 3);
    for ex in examples() {
        let out = run(
            "daos_server",
            &["config", "validate", "-o", ex.to_str().expect("utf8")],
            &[],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            ex.display(),
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with(&format!("# {}: valid\n", ex.display())),
            "{stdout}"
        );
        let again = dir.path().join("normalized.yml");
        std::fs::write(&again, &stdout).expect("write");
        let out2 = run(
            "daos_server",
            &["config", "validate", "-o", again.to_str().expect("utf8")],
            &[],
        );
        assert_eq!(
            out2.status.code(),
            Some(0),
            "normalized {}: {}",
            ex.display(),
            text(&out2.stderr)
        );
        assert!(
            !text(&out2.stderr).contains("deprecated"),
            "normalized output is the modern form"
        );
    }
}

#[test]
fn a_device_as_config_is_refused_at_once_by_every_loader() {
    for (bin, args) in [
        ("daos_server", vec!["config", "validate", "-o", "/dev/zero"]),
        ("dmg", vec!["-o", "/dev/zero", "system", "query"]),
        ("daos", vec!["-o", "/dev/zero", "container", "list", "p"]),
    ] {
        let out = run(bin, &args, &[]);
        assert_eq!(out.status.code(), Some(1), "{bin}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("not a regular file"),
            "{bin}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn three_mistakes_are_reported_with_line_and_column_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = std::fs::read_to_string(repo_root().join("config/examples/daos_server_local.yml"))
        .expect("example")
        .replace("name: daos_server", "name: this_name_is_too_long")
        .replace(
            "  log_file: /tmp/daos_engine.0.log",
            "  log_fiel: /tmp/x.log",
        )
        .replace("bdev_size: 16", "bdev_size: 0");
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, bad).expect("write");
    let p = path.to_str().expect("utf8");
    let out = run("daos_server", &["config", "validate", "-o", p], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for an invalid config"
    );
    let err = text(&out.stderr);
    assert!(err.contains("has 3 errors"), "{err}");
    for needle in [
        format!("{p}:6:7: name = \"this_name_is_too_long\""),
        format!("{p}:25:3: engines[0].log_fiel: unknown key"),
        format!("{p}:36:16: engines[0].storage[1].bdev_size"),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in\n{err}");
    }
    assert_eq!(
        err.matches("fix:").count(),
        3,
        "each error carries its fix:\n{err}"
    );

    let out = run("daos_server", &["-j", "config", "validate", "-o", p], &[]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], 1);
    let errors = v["response"]["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 3);
    assert_eq!(
        (errors[0]["line"].as_u64(), errors[0]["column"].as_u64()),
        (Some(6), Some(7))
    );
    assert_eq!(errors[1]["path"], "engines[0].log_fiel");
}

#[test]
fn validate_json_success_envelope() {
    let ex = repo_root().join("config/examples/daos_server_legacy.yml");
    let out = run(
        "daos_server",
        &["-j", "config", "validate", "-o", ex.to_str().expect("utf8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], 0);
    assert!(v["error"].is_null());
    assert_eq!(
        v["response"]["config"]["engines"][1]["storage"][0]["scm_mount"],
        "/mnt/daos1"
    );
    let notices = v["response"]["notices"].as_array().expect("notices");
    assert!(notices.iter().any(|n| {
        n.as_str()
            .is_some_and(|s| s.contains("Legacy storage configuration"))
    }));
}

#[test]
fn embedded_default_validates_with_the_data_dir() {
    if Path::new("/etc/daos/daos_server.yml").exists() {
        eprintln!(
            "SKIPPED embedded_default_validates_with_the_data_dir: /etc/daos/daos_server.yml exists here"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    let out = run(
        "daos_server",
        &["config", "validate"],
        &[("DAOS_DATA_DIR", d)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("# <embedded default>"), "{stdout}");
    assert!(stdout.contains(&format!("scm_mount: {d}/scm0")), "{stdout}");
    assert!(stdout.contains("fabric_iface: lo"), "{stdout}");
}

#[test]
fn start_writes_a_read_only_active_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = local_config(dir.path());
    let port = free_port().to_string();
    let mut server = Proc::start(
        "daos_server",
        &["start", "-o", cfg.to_str().expect("utf8"), "-p", &port],
        &[],
        dir.path(),
    );
    let sock = dir.path().join("run/daos_server.sock");
    let active = dir.path().join("run/.daos_server.active.yml");
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists() && active.exists()),
        "server did not come up"
    );
    let mode = std::fs::metadata(&active)
        .expect("active")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o444, "active config is read-only");
    let text = std::fs::read_to_string(&active).expect("active");
    assert!(
        text.contains(&format!("port: {port}")),
        "-p takes precedence over the file:\n{text}"
    );
    assert!(text.contains("provider: ofi+tcp;ofi_rxm"), "{text}");
    assert_eq!(
        std::fs::metadata(&sock).expect("sock").permissions().mode() & 0o777,
        0o600
    );

    // A second server on the same socket dir is refused and the first keeps running.
    let out = run(
        "daos_server",
        &["start", "-o", cfg.to_str().expect("utf8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by a running process"));
    assert!(server.alive());

    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait(Duration::from_secs(10)),
        Some(0),
        "clean exit on SIGTERM"
    );
    assert!(!sock.exists(), "socket removed on stop");
    let log = std::fs::read_to_string(dir.path().join("daos_server.log")).expect("control log");
    assert!(log.contains("dRPC server listening on"), "{log}");
    assert!(log.contains("received SIGTERM; shutting down"), "{log}");
}

#[test]
fn socket_dir_flag_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = local_config(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    let mut server = Proc::start(
        "daos_server",
        &[
            "start",
            "-o",
            cfg.to_str().expect("utf8"),
            "-d",
            other.to_str().expect("utf8"),
            "-t",
            "1",
            "-i",
        ],
        &[],
        dir.path(),
    );
    let active = other.join(".daos_server.active.yml");
    assert!(wait_until(Duration::from_secs(10), || active.exists()
        && other.join("daos_server.sock").exists()));
    let text = std::fs::read_to_string(&active).expect("active");
    assert!(
        text.contains(&format!("socket_dir: {}", other.display())),
        "{text}"
    );
    assert!(text.contains("targets: 1"), "{text}");
    assert!(!dir.path().join("run/daos_server.sock").exists());
    server.signal(Signal::SIGINT);
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn missing_socket_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = local_config(dir.path());
    let missing = dir.path().join("does-not-exist");
    let out = run(
        "daos_server",
        &[
            "start",
            "-o",
            cfg.to_str().expect("utf8"),
            "-d",
            missing.to_str().expect("utf8"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "dRPC server setup: missing socket directory {}",
            missing.display()
        )),
        "{err}"
    );
    assert!(err.contains("fix: create it"), "{err}");
}

#[test]
fn start_with_an_invalid_config_exits_1_with_every_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = local_config(dir.path());
    let out = run(
        "daos_server",
        &["start", "-o", cfg.to_str().expect("utf8"), "-t", "0"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("-t/--targets (overrides"),
        "the flag is blamed:\n{err}"
    );
    assert!(err.contains("targets must be > 0"), "{err}");
    let out = run(
        "daos_server",
        &["start", "-o", "/nonexistent/daos_server.yml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read config file"));
}

#[test]
fn start_on_the_embedded_default_prepares_its_data_dir() {
    if Path::new("/etc/daos/daos_server.yml").exists() {
        eprintln!(
            "SKIPPED start_on_the_embedded_default_prepares_its_data_dir: /etc/daos/daos_server.yml exists here"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf8");
    let port = free_port().to_string();
    let mut server = Proc::start(
        "daos_server",
        &["start", "-p", &port],
        &[("DAOS_DATA_DIR", d)],
        dir.path(),
    );
    assert!(
        wait_until(Duration::from_secs(10), || data
            .join("run/daos_server.sock")
            .exists()),
        "{}",
        log(dir.path(), "daos_server", "err")
    );
    assert!(data.join("scm0").is_dir() && data.join("log").is_dir());
    let err = log(dir.path(), "daos_server", "err");
    assert!(err.contains("using the embedded default config"), "{err}");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn stale_engine_sockets_are_cleared_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = local_config(dir.path());
    let stale = dir.path().join("run/daos_engine_4242.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let mut server = Proc::start(
        "daos_server",
        &["start", "-o", cfg.to_str().expect("utf8")],
        &[],
        dir.path(),
    );
    assert!(wait_until(Duration::from_secs(10), || dir
        .path()
        .join("run/daos_server.sock")
        .exists()));
    assert!(!stale.exists(), "stale engine socket removed");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    let out = run("daos_server", &["start", "-p", "99999"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("99999") && err.contains("--port"), "{err}");
    let out = run("daos_engine", &["-t", "many"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid numeric value: many (set by -t)"));
    let out = run("dmg", &["--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn versions() {
    let out = run("daos_server", &["version"], &[]);
    assert!(text(&out.stdout).starts_with("daos_server version "));
    let out = run("dmg", &["-j", "version"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], 0);
    assert!(v["response"]["version"].is_string());
}

#[test]
fn socket_dir_without_permission_is_a_clear_error() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED socket_dir_without_permission_is_a_clear_error: needs root to run daos_server as another user (drpc's unit test covers it for non-root)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let cfg = dir.path().join("daos_server.yml");
    let yaml = std::fs::read_to_string(repo_root().join("config/examples/daos_server_local.yml"))
        .expect("example")
        .replace("control_log_file: /tmp/daos_server.log\n", "")
        .replace("/var/run/daos_server", &locked.display().to_string());
    std::fs::write(&cfg, yaml).expect("write");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let binary = bin("daos_server");
    // The binary must be reachable by `nobody`; skip where the checkout is private.
    let reachable = std::process::Command::new(&binary)
        .arg("version")
        .uid(65534)
        .gid(65534)
        .output();
    if !reachable.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED socket_dir_without_permission_is_a_clear_error: {} is not executable by nobody",
            binary.display()
        );
        return;
    }
    let out = std::process::Command::new(&binary)
        .args(["start", "-o", cfg.to_str().expect("utf8")])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run as nobody");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "dRPC server setup: permissions failure accessing socket directory {}",
            locked.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("fix: give the daos_server user write and search permission"),
        "{err}"
    );
}

#[test]
fn storage_scan_lists_pmem_and_nvme_of_a_storage_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    daos_hw::fixtures::storage_node(dir.path());
    let root = dir.path().to_str().expect("utf8");
    let out = run(
        "daos_server",
        &["storage", "scan"],
        &[("DAOS_SYSFS_ROOT", root)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.starts_with("Scanning locally-attached storage...\n"),
        "{t}"
    );
    assert!(
        t.contains("No SCM modules found") || t.contains("ipmctl is not installed"),
        "{t}"
    );
    assert!(t.contains("\nSCM Namespace Socket ID Capacity \n"), "{t}");
    assert!(t.contains("pmem1         1         3.2 TB"), "{t}");
    assert!(
        t.contains("NVMe PCI     Model               FW Revision Socket ID Capacity"),
        "{t}"
    );
    assert!(
        t.contains("0000:81:00.0 INTEL SSDPED1K750GA E2010325    0         750 GB  "),
        "{t}"
    );
    assert!(t.contains("0000:da:00.0 (vfio-pci)"), "{t}");

    let out = run(
        "daos_server",
        &["-j", "storage", "scan"],
        &[("DAOS_SYSFS_ROOT", root)],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v["response"]["nvme_controllers"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(v["response"]["scm_namespaces"][0]["blockdev"], "pmem0");

    // This machine: no PMem or NVMe, said plainly, exit 0.
    let out = run("daos_server", &["storage", "scan"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out.stdout);
    assert!(
        t.contains("No SCM namespaces found") || t.contains("SCM Namespace"),
        "{t}"
    );

    // A broken tree: the error names the file.
    std::fs::remove_file(dir.path().join("sys/bus/pci/devices/0000:81:00.0/class")).expect("rm");
    let out = run(
        "daos_server",
        &["storage", "scan"],
        &[("DAOS_SYSFS_ROOT", root)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("0000:81:00.0/class"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn network_scan_lists_tcp_on_loopback_best_first() {
    let out = run("daos_server", &["network", "scan", "-p", "all"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("\tfabric_iface: lo\n\tprovider: ofi+tcp;ofi_rxm\n\tpinned_numa_node: 0\n"),
        "{t}"
    );
    let tcp = t.find("provider: ofi+tcp").expect("tcp listed");
    if let Some(sockets) = t.find("provider: ofi+sockets") {
        assert!(tcp < sockets, "tcp before sockets:\n{t}");
    }
    let out = run(
        "daos_server",
        &["-j", "network", "scan", "-p", "ofi+tcp;ofi_rxm"],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let entries = v["response"].as_array().expect("entries");
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["provider"] == "ofi+tcp;ofi_rxm"));
    assert!(entries.iter().any(|e| e["fabric_iface"] == "lo"));
    let none = run("daos_server", &["network", "scan", "-p", "ofi+nosuch"], &[]);
    assert_eq!(none.status.code(), Some(0));
    assert!(text(&none.stdout).contains("No fabric interfaces found"));
    let list = run("daos_server", &["network", "list"], &[]);
    assert!(text(&list.stdout).contains("\tofi+tcp;ofi_rxm\n"));
}

#[test]
fn dump_topology_summarises_this_machine() {
    let out = run("daos_server", &["dump-topology"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let cores = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let n = if cores == "0" {
        1
    } else {
        cores
            .rsplit(['-', ','])
            .next()
            .and_then(|x| x.parse::<usize>().ok())
            .map_or(1, |x| x + 1)
    };
    let first = t.lines().next().unwrap_or_default();
    assert!(first.contains(" on ") && first.contains("NUMA node"), "{t}");
    assert!(t.contains("Machine L#0"), "{t}");
    assert_eq!(
        t.matches("PU L#").count(),
        n,
        "one PU line per online CPU:\n{t}"
    );
}

fn validate_text(yaml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("generated.yml");
    std::fs::write(&path, yaml).expect("write");
    run(
        "daos_server",
        &["config", "validate", "-o", path.to_str().expect("utf8")],
        &[],
    )
}

#[test]
fn config_generate_for_a_two_socket_storage_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    daos_hw::fixtures::storage_node(dir.path());
    let root = dir.path().to_str().expect("utf8");
    let env = [("DAOS_SYSFS_ROOT", root)];
    let out = run(
        "daos_server",
        &[
            "config",
            "generate",
            "-p",
            "ofi+verbs",
            "-r",
            "node-1,node-2,node-3",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let v = validate_text(&yaml);
    assert_eq!(
        v.status.code(),
        Some(0),
        "the output validates:\n{yaml}\n{}",
        text(&v.stderr)
    );
    for needle in [
        "provider: ofi+verbs",
        "- node-2\n",
        "pinned_numa_node: 0",
        "pinned_numa_node: 1",
        "fabric_iface: ib0",
        "fabric_iface: ib1",
        "fabric_iface_port: 31416",
        "fabric_iface_port: 32416",
        "scm_list:\n    - /dev/pmem0",
        "scm_list:\n    - /dev/pmem1",
        "- 0000:81:00.0",
        "- 0000:da:00.0",
        "targets: 3",
    ] {
        assert!(yaml.contains(needle), "missing {needle:?} in\n{yaml}");
    }
    assert!(
        !yaml.contains("0000:87:00.0"),
        "NVMe balanced to one per engine:\n{yaml}"
    );

    let out = run(
        "daos_server",
        &[
            "config",
            "generate",
            "-p",
            "ofi+verbs",
            "-t",
            "-s",
            "-e",
            "1",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("class: ram")
            && !yaml.contains("class: nvme")
            && yaml.matches("targets:").count() == 1,
        "{yaml}"
    );
    assert_eq!(validate_text(&yaml).status.code(), Some(0), "{yaml}");

    let bad = run(
        "daos_server",
        &["config", "generate", "-p", "ofi+verbs", "-e", "3"],
        &env,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("this host has 2 NUMA node(s)"),
        "{}",
        text(&bad.stderr)
    );
    let bad = run(
        "daos_server",
        &["config", "generate", "-c", "token-ring"],
        &env,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("expected ethernet or infiniband"));
    std::fs::remove_dir_all(dir.path().join("sys/bus/nd")).expect("rm pmem");
    let bad = run(
        "daos_server",
        &["config", "generate", "-p", "ofi+verbs"],
        &env,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("no PMem namespace on NUMA node 0")
            && text(&bad.stderr).contains("-t"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn config_generate_tmpfs_here_starts_a_working_system() {
    let out = run(
        "daos_server",
        &["config", "generate", "-t", "-c", "ethernet"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("class: ram") && yaml.contains("provider: ofi+tcp"),
        "{yaml}"
    );
    // Move its paths into a temp dir and run it.
    let sys = System::new(0);
    let d = sys.path().display().to_string();
    let port = free_port();
    let local = yaml
        .replace("/mnt/daos0", &format!("{d}/scm0"))
        .replace("/var/run/daos_server", &format!("{d}/run"))
        .replace("/tmp/daos_server.log", &format!("{d}/daos_server.log"))
        .replace("/tmp/daos_engine.0.log", &format!("{d}/engine0.log"))
        .replace("port: 10001", &format!("port: {port}"));
    std::fs::write(&sys.config, local).expect("write");
    let mut server = sys.start(&["-i", "--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    sys.stop(&mut server);
}

#[test]
fn storage_prepare_binds_nvme_and_reserves_hugepages_on_a_storage_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    daos_hw::fixtures::storage_node(dir.path());
    let root = dir.path().to_str().expect("utf8");
    let env = [("DAOS_SYSFS_ROOT", root)];
    let read = |rel: &str| std::fs::read_to_string(dir.path().join(rel)).unwrap_or_default();

    let both = run(
        "daos_server",
        &["storage", "prepare", "--nvme-only", "--scm-only"],
        &env,
    );
    assert_eq!(both.status.code(), Some(1));
    assert!(text(&both.stderr).contains("exclude each other"));

    if !nix::unistd::geteuid().is_root() {
        let out = run("daos_server", &["storage", "prepare", "--nvme-only"], &env);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("needs root"),
            "{}",
            text(&out.stderr)
        );
        eprintln!("SKIPPED the root part of storage_prepare: not root (CI runs it as root)");
        return;
    }
    let out = run(
        "daos_server",
        &[
            "storage",
            "prepare",
            "--nvme-only",
            "-p",
            "512",
            "--pci-block-list",
            "0000:87:00.0",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.starts_with("Preparing locally-attached NVMe storage...\nhugepages: 512 reserved\n0000:81:00.0: nvme -> vfio-pci\n"), "{t}");
    assert!(
        !t.contains("0000:87:00.0") && !t.contains("0000:da:00.0"),
        "blocked and already-bound controllers untouched:\n{t}"
    );
    assert_eq!(read("proc/sys/vm/nr_hugepages"), "512");
    assert_eq!(
        read("sys/bus/pci/devices/0000:81:00.0/driver_override"),
        "vfio-pci"
    );
    assert_eq!(
        read("sys/bus/pci/drivers/nvme/unbind"),
        "0000:81:00.0",
        "unbound from the kernel driver"
    );
    assert_eq!(read("sys/bus/pci/drivers_probe"), "0000:81:00.0");
    assert!(read("sys/bus/pci/devices/0000:87:00.0/driver_override").is_empty());

    let out = run(
        "daos_server",
        &["storage", "prepare", "--nvme-only", "--reset"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("0000:da:00.0: vfio-pci -> nvme"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        read("sys/bus/pci/devices/0000:da:00.0/driver_override"),
        "\n"
    );

    // Without an IOMMU the user-space driver is uio_pci_generic.
    std::fs::remove_dir_all(dir.path().join("sys/kernel/iommu_groups/0")).expect("rm");
    let out = run(
        "daos_server",
        &[
            "storage",
            "prepare",
            "--nvme-only",
            "--pci-block-list",
            "0000:87:00.0",
        ],
        &env,
    );
    assert!(
        text(&out.stdout).contains("0000:81:00.0: nvme -> uio_pci_generic"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        read("proc/sys/vm/nr_hugepages"),
        "1024",
        "DAOS's default count"
    );

    let out = run("daos_server", &["storage", "prepare", "--scm-only"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("SCM namespaces are in place; nothing to prepare"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn storage_prepare_on_this_machine_has_nothing_to_do() {
    let out = run("daos_server", &["storage", "prepare"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("No NVMe controllers to prepare") || t.contains("NVMe"),
        "{t}"
    );
    assert!(
        t.contains("No SCM modules detected; skipping operation") || t.contains("SCM"),
        "{t}"
    );
}

#[test]
fn storage_prepare_refuses_without_root_saying_why() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    daos_hw::fixtures::storage_node(dir.path());
    let mut cmd = std::process::Command::new(bin("daos_server"));
    cmd.args(["storage", "prepare", "--nvme-only"])
        .env("DAOS_SYSFS_ROOT", dir.path());
    if nix::unistd::geteuid().is_root() {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("run");
    if out.status.code() == Some(126)
        || text(&out.stderr).contains("Permission denied (os error 13)")
            && !text(&out.stderr).contains("needs root")
    {
        eprintln!(
            "SKIPPED storage_prepare_refuses_without_root_saying_why: the binary is not executable by nobody here"
        );
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("needs root") && err.contains("fix: run it as root"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("proc/sys/vm/nr_hugepages")).unwrap_or_default(),
        "0\n",
        "nothing was changed"
    );
}

#[test]
fn bad_flag_values_are_usage_errors_that_name_the_flag() {
    for (args, needle) in [
        (
            vec!["pool", "create", "p", "--size", "0"],
            "--size: invalid size \"0\": it must be more than 0",
        ),
        (
            vec!["pool", "create", "p", "--size", "99999999P"],
            "too large",
        ),
        (
            vec!["pool", "create", "p", "--scm-size", "abc"],
            "--scm-size: invalid size \"abc\"",
        ),
        (
            vec!["pool", "create", "p", "--size", "1G", "-P", "label:zz"],
            "the label is the pool's name",
        ),
        (
            vec!["pool", "create", "p", "--size", "1G", "-v", "99"],
            "--nsvc: 99 service replicas",
        ),
        (vec!["-l", "", "system", "query"], "-l/--host-list is empty"),
    ] {
        let mut all = vec!["-i"];
        all.extend_from_slice(&args);
        let out = run("dmg", &all, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: expected {needle:?} in {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn cert_generate_refuses_to_replace_a_ca_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let c = certs.to_str().expect("utf8");
    let first = run("daos_server", &["cert", "generate", c], &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let ca = std::fs::read(certs.join("daosCA.crt")).expect("ca");
    let again = run("daos_server", &["cert", "generate", c], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already holds a CA")
            && text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read(certs.join("daosCA.crt")).expect("ca"), ca);
    let forced = run("daos_server", &["cert", "generate", "--force", c], &[]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert_ne!(std::fs::read(certs.join("daosCA.crt")).expect("ca"), ca);
}
