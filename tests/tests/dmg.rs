//! dmg against a real daos_server over gRPC: the DAOS deployment flow (start in maintenance
//! mode → `dmg storage format` → Joined), system stop/start, bad input with clear errors and
//! exit codes, JSON output, and TLS (admin accepted, agent refused for admin calls, no
//! certificate refused, insecure client against a secure server).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use daos_tests::*;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn format_then_query_stop_start_over_grpc() {
    let sys = System::new(1);
    let mut server = sys.start(&[]);
    sys.wait_log("SCM format required on instance 0", 1, 20);
    sys.wait_log("listening on 127.0.0.1:", 1, 20);

    // Before the format, the management service has nowhere to keep its log (DAOS's words).
    let q = sys.dmg(&["-i", "system", "query"]);
    assert_ne!(q.status.code(), Some(0), "{}", out(&q));
    assert!(
        err(&q).contains("system is uninitialized (storage format required?)"),
        "{}",
        err(&q)
    );

    let scan = sys.dmg(&["-i", "storage", "scan"]);
    assert_eq!(scan.status.code(), Some(0), "{}", err(&scan));
    assert!(
        out(&scan).starts_with("Hosts     SCM Total"),
        "{}",
        out(&scan)
    );
    assert!(
        out(&scan).contains("(0 modules)") && out(&scan).contains("controller"),
        "{}",
        out(&scan)
    );
    let scan_v = sys.dmg(&["-i", "storage", "scan", "-v"]);
    assert!(
        out(&scan_v).contains("  No SCM modules found") || out(&scan_v).contains("SCM Namespace"),
        "{}",
        out(&scan_v)
    );
    // Usage comes from running engines (DAOS's words when there is none).
    let usage = sys.dmg(&["-i", "storage", "query", "usage"]);
    assert_ne!(usage.status.code(), Some(0));
    assert!(
        out(&usage).contains("no scm details found"),
        "{}{}",
        out(&usage),
        err(&usage)
    );

    let f = sys.dmg(&["-i", "storage", "format"]);
    assert_eq!(f.status.code(), Some(0), "{}{}", out(&f), err(&f));
    let text = out(&f);
    assert!(text.starts_with("Format Summary:\n  Hosts     SCM Devices NVMe Devices \n  -----     ----------- ------------ \n  localhost 1           1            \n"), "{text:?}");
    sys.wait_log("joined the system as rank 0", 1, 30);

    let q = sys.dmg(&["-i", "system", "query"]);
    assert_eq!(out(&q), "Rank State  \n---- -----  \n0    Joined \n\n");
    // DAOS's storage query usage: the RAM SCM and the file bdev of rank 0.
    let usage = sys.dmg(&["-i", "storage", "query", "usage"]);
    assert_eq!(usage.status.code(), Some(0), "{}", err(&usage));
    let text = out(&usage);
    assert!(
        text.starts_with("Hosts     SCM-Total SCM-Free SCM-Used NVMe-Total NVMe-Free NVMe-Used \n"),
        "{text}"
    );
    assert!(text.contains("\nlocalhost "), "{text}");
    let j: serde_json::Value =
        serde_json::from_slice(&sys.dmg(&["-i", "-j", "storage", "query", "usage"]).stdout)
            .expect("json");
    let h = j["response"]["host_results"]
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .unwrap_or_default();
    let n = |k: &str| h[k].as_u64().unwrap_or(0);
    assert!(n("scm_total") >= n("scm_free") && n("scm_free") > 0, "{j}");
    assert!(
        n("nvme_total") >= n("nvme_free") && n("nvme_free") > 0,
        "{j}"
    );
    assert_eq!(h["scm_mounts"][0]["class"], "ram", "{j}");
    assert_eq!(h["smd_devices"][0]["rank"], 0, "{j}");
    let v = sys.dmg(&["-i", "system", "query", "-v"]);
    let text = out(&v);
    assert!(text.starts_with("Rank UUID "), "{text}");
    assert!(text.contains(&field(&sys.superblock(0), "uuid")), "{text}");

    let stop = sys.dmg(&["-i", "system", "stop"]);
    assert_eq!(stop.status.code(), Some(0), "{}", err(&stop));
    assert_eq!(
        out(&stop),
        "Rank Operation Result \n---- --------- ------ \n0    stop      OK     \n\n"
    );
    let q = sys.dmg(&["-i", "system", "query"]);
    assert!(
        out(&q).contains("0    Stopped"),
        "query after stop:\n{}{}\nlog:\n{}",
        out(&q),
        err(&q),
        sys.log()
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let q = sys.dmg(&["-i", "system", "query"]);
    assert!(
        out(&q).contains("Stopped"),
        "a stopped rank is not restarted"
    );

    let start = sys.dmg(&["-i", "system", "start"]);
    assert_eq!(start.status.code(), Some(0), "{}", err(&start));
    assert!(out(&start).contains("0    start     OK"), "{}", out(&start));
    assert!(out(&sys.dmg(&["-i", "system", "query"])).contains("0    Joined"));

    let j = sys.dmg(&["-i", "-j", "system", "query"]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).expect("json");
    assert_eq!(v["status"], 0);
    assert!(v["error"].is_null());
    assert_eq!(v["response"]["members"][0]["state"], "joined");
    assert_eq!(v["response"]["members"][0]["rank"], 0);

    let lq = sys.dmg(&["-i", "system", "leader-query"]);
    assert!(
        out(&lq).starts_with(&format!("Current Leader: localhost:{}", sys.port)),
        "{}",
        out(&lq)
    );
    sys.stop(&mut server);
}

#[test]
fn bad_input_gives_clear_errors_and_exit_codes() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);

    // Unknown rank.
    let q = sys.dmg(&["-i", "system", "query", "-r", "0-2"]);
    assert_eq!(q.status.code(), Some(1));
    assert!(out(&q).contains("Unknown 2 ranks: 1-2"), "{}", out(&q));
    let s = sys.dmg(&["-i", "system", "stop", "-r", "7"]);
    assert_eq!(s.status.code(), Some(1));
    assert!(out(&s).contains("Unknown 1 rank: 7"), "{}", out(&s));
    assert!(
        out(&sys.dmg(&["-i", "system", "query"])).contains("Joined"),
        "rank 0 untouched"
    );

    // Format while running.
    let f = sys.dmg(&["-i", "storage", "format"]);
    assert_eq!(f.status.code(), Some(1));
    assert!(
        out(&f).contains("instance is running; stop the system first or use --force"),
        "{}",
        out(&f)
    );

    // Bad rank list and bad host list.
    let b = sys.dmg(&["-i", "system", "query", "-r", "3-1"]);
    assert_eq!(b.status.code(), Some(1));
    assert!(err(&b).contains("invalid range"), "{}", err(&b));
    let h = run("dmg", &["-i", "-l", "node[5-4]", "system", "query"], &[]);
    assert_eq!(h.status.code(), Some(1));
    assert!(
        err(&h).contains("-l/--host-list") && err(&h).contains("invalid range"),
        "{}",
        err(&h)
    );

    // Unreachable host.
    let port = free_port().to_string();
    let u = run(
        "dmg",
        &[
            "-i",
            "-l",
            &format!("localhost:{port}"),
            "storage",
            "format",
        ],
        &[],
    );
    assert_eq!(u.status.code(), Some(1));
    assert!(
        out(&u).contains("Errors:") && out(&u).contains("unable to connect"),
        "{}",
        out(&u)
    );
    let uq = run(
        "dmg",
        &["-i", "-l", &format!("localhost:{port}"), "system", "query"],
        &[],
    );
    assert_eq!(uq.status.code(), Some(1));
    assert!(err(&uq).contains("unable to connect"), "{}", err(&uq));
    sys.stop(&mut server);
}

#[test]
fn force_format_reformats_a_running_system() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let uuid = field(&sys.superblock(0), "uuid");
    let f = sys.dmg(&["-i", "storage", "format", "--force"]);
    assert_eq!(f.status.code(), Some(0), "{}{}", out(&f), err(&f));
    sys.wait_log("forcibly stopping instance 0 prior to reformat", 1, 10);
    sys.wait_log("the system as rank", 2, 30);
    assert_ne!(
        field(&sys.superblock(0), "uuid"),
        uuid,
        "a reformat gives the engine a new identity"
    );
    sys.stop(&mut server);
}

fn control_file(dir: &Path, port: u16, certs: &Path, who: &str) -> String {
    let path = dir.join(format!("{who}.yml"));
    let c = certs.display();
    std::fs::write(
        &path,
        format!("name: daos_server\nport: {port}\nhostlist: [localhost]\ntransport_config:\n  allow_insecure: false\n  ca_cert: {c}/daosCA.crt\n  cert: {c}/{who}.crt\n  key: {c}/{who}.key\n"),
    )
    .expect("write");
    path.display().to_string()
}

#[test]
fn tls_admin_allowed_agent_refused_no_cert_refused_insecure_mismatch() {
    let certs_dir = tempfile::tempdir().expect("tempdir");
    let certs = certs_dir.path().join("certs");
    let g = run(
        "daos_server",
        &["cert", "generate", certs.to_str().expect("utf8")],
        &[],
    );
    assert_eq!(g.status.code(), Some(0), "{}", err(&g));
    for (f, mode) in [
        ("daosCA.crt", 0o644),
        ("server.key", 0o400),
        ("admin.key", 0o400),
        ("agent.crt", 0o644),
        ("clients/admin.crt", 0o644),
    ] {
        let m = std::fs::metadata(certs.join(f))
            .expect(f)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, mode, "{f}");
    }
    let sys = System::with_transport(1, Some(&certs));
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    assert!(!sys.log().contains("(insecure: no TLS)"));

    let admin = control_file(certs_dir.path(), sys.port, &certs, "admin");
    let ok = run("dmg", &["-o", &admin, "system", "query"], &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", err(&ok));
    assert!(out(&ok).contains("0    Joined"));

    let agent = control_file(certs_dir.path(), sys.port, &certs, "agent");
    let denied = run("dmg", &["-o", &agent, "system", "query"], &[]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        err(&denied).contains("agent does not have permission to call MgmtSvc.SystemQuery"),
        "{}",
        err(&denied)
    );
    let lq = run("dmg", &["-o", &agent, "system", "leader-query"], &[]);
    assert_eq!(
        lq.status.code(),
        Some(0),
        "agents may ask for the leader: {}",
        err(&lq)
    );

    // A client with the CA but no certificate of its own: the handshake is refused.
    let nocert = certs_dir.path().join("nocert.yml");
    std::fs::write(
        &nocert,
        std::fs::read_to_string(&admin)
            .expect("read")
            .replace("admin.crt", "missing.crt"),
    )
    .expect("write");
    let e = run(
        "dmg",
        &["-o", nocert.to_str().expect("utf8"), "system", "query"],
        &[],
    );
    assert_eq!(e.status.code(), Some(1));
    assert!(
        err(&e).contains("cannot read the admin certificate"),
        "{}",
        err(&e)
    );
    // The same client succeeds with the admin identity and is refused without one.
    tls_client(sys.port, &certs, Some("admin")).expect("admin identity accepted");
    tls_client(sys.port, &certs, None).expect_err("a client without a certificate must be refused");

    // The management service's own RPCs (Raft, rank actions) take only the server
    // certificate: an admin or agent one is refused, and nothing is read or changed.
    for who in ["admin", "agent"] {
        let e = tls_server_rpcs(sys.port, &certs, who).expect_err("refused");
        assert!(
            e.iter()
                .all(|(code, msg)| *code == tonic::Code::PermissionDenied
                    && msg.starts_with(&format!("{who} does not have permission to call "))),
            "{e:?}"
        );
    }
    tls_server_rpcs(sys.port, &certs, "server").expect("the server certificate may call them");

    // Plaintext client against the TLS server.
    let plain = sys.dmg(&["-i", "system", "query"]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(
        err(&plain).contains("both sides agree on TLS"),
        "{}",
        err(&plain)
    );
    sys.stop(&mut server);
}

/// Calls `raft.RaftSvc/Read` and `rank.RankSvc/RankInfo` with `who`'s certificate; the
/// refusals (code, message) if any.
fn tls_server_rpcs(port: u16, certs: &Path, who: &str) -> Result<(), Vec<(tonic::Code, String)>> {
    use daos_proto::raft::{RaftMsg, raft_svc_client::RaftSvcClient};
    use daos_proto::rank::{RankInfoReq, rank_svc_client::RankSvcClient};
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let read = |f: &str| std::fs::read(certs.join(f)).expect("cert file");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("daosCA.crt")))
        .domain_name("server")
        .identity(Identity::from_pem(
            read(&format!("{who}.crt")),
            read(&format!("{who}.key")),
        ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let ch = Channel::from_shared(format!("https://localhost:{port}"))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect");
        let mut refused = Vec::new();
        if let Err(s) = RaftSvcClient::new(ch.clone())
            .read(RaftMsg {
                data: b"null".to_vec(),
                group: String::new(),
            })
            .await
        {
            refused.push((s.code(), s.message().to_string()));
        }
        if let Err(s) = RankSvcClient::new(ch)
            .rank_info(RankInfoReq { rank: 0 })
            .await
        {
            refused.push((s.code(), s.message().to_string()));
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused)
        }
    })
}

/// A gRPC client that trusts the CA and presents `identity`'s certificate, or none.
fn tls_client(port: u16, certs: &Path, identity: Option<&str>) -> Result<(), String> {
    use daos_proto::mgmt::{SystemQueryReq, mgmt_svc_client::MgmtSvcClient};
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let read = |f: &str| std::fs::read(certs.join(f)).map_err(|e| e.to_string());
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("daosCA.crt")?))
        .domain_name("server");
    if let Some(who) = identity {
        tls = tls.identity(Identity::from_pem(
            read(&format!("{who}.crt"))?,
            read(&format!("{who}.key"))?,
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let channel = Channel::from_shared(format!("https://localhost:{port}"))
            .map_err(|e| e.to_string())?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        MgmtSvcClient::new(channel)
            .system_query(SystemQueryReq::default())
            .await
            .map(|_| ())
            .map_err(|s| s.to_string())
    })
}

#[test]
fn remote_hardware_commands_on_a_two_socket_node() {
    let hw = tempfile::tempdir().expect("tempdir");
    daos_hw::fixtures::storage_node(hw.path());
    let sys = System::new(1);
    let root = hw.path().to_str().expect("utf8");
    let args = ["start", "-o", sys.config.to_str().expect("utf8")];
    let mut server = Proc::start(
        "daos_server",
        &args,
        &[("DAOS_SYSFS_ROOT", root)],
        sys.path(),
    );
    sys.wait_log("listening on", 1, 20);

    let scan = sys.dmg(&["-i", "storage", "scan"]);
    assert_eq!(scan.status.code(), Some(0), "{}", err(&scan));
    assert!(
        out(&scan).contains("localhost 6.4 TB (2 namespaces) 2.4 TB (3 controllers)"),
        "{}",
        out(&scan)
    );
    let v = out(&sys.dmg(&["-i", "storage", "scan", "-v"]));
    assert!(
        v.starts_with("---------\nlocalhost\n---------\nHugePage Size: ")
            && v.contains(" KB\n\nSCM Namespace Socket Capacity \n"),
        "{v}"
    );
    assert!(
        v.contains("0000:87:00.0 INTEL SSDPEDMD016T4 E2010325    0      1.6 TB   NA      None"),
        "{v}"
    );

    let net = sys.dmg(&["-i", "network", "scan", "-p", "ofi+tcp;ofi_rxm"]);
    assert_eq!(net.status.code(), Some(0), "{}", err(&net));
    assert!(out(&net).contains("    NUMA Socket 0\n"), "{}", out(&net));
    assert!(
        out(&net).contains("ofi+tcp;ofi_rxm eth0, lo"),
        "{}",
        out(&net)
    );

    let generated = sys.dmg(&["-i", "config", "generate", "-p", "ofi+verbs"]);
    assert_eq!(generated.status.code(), Some(0), "{}", err(&generated));
    assert!(
        out(&generated).contains("fabric_iface: ib1") && out(&generated).contains("/dev/pmem1"),
        "{}",
        out(&generated)
    );
    let bad = sys.dmg(&["-i", "config", "generate", "-e", "5", "-p", "ofi+verbs"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        out(&bad).contains("this host has 2 NUMA node(s)"),
        "{}",
        out(&bad)
    );

    let prep = sys.dmg(&[
        "-i",
        "storage",
        "prepare",
        "--nvme-only",
        "--pci-block-list",
        "0000:87:00.0",
    ]);
    if is_root() {
        assert_eq!(prep.status.code(), Some(0), "{}{}", out(&prep), err(&prep));
        assert!(
            out(&prep).contains("0000:81:00.0: nvme -> vfio-pci"),
            "{}",
            out(&prep)
        );
        let o = std::fs::read_to_string(
            hw.path()
                .join("sys/bus/pci/devices/0000:81:00.0/driver_override"),
        )
        .unwrap_or_default();
        assert_eq!(o, "vfio-pci");
    } else {
        assert_eq!(prep.status.code(), Some(1));
        assert!(out(&prep).contains("needs root"), "{}", out(&prep));
    }
    sys.stop(&mut server);
}

#[test]
fn a_damaged_superblock_needs_force_and_the_reformat_releases_its_rank_and_pools() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    ok(sys.dmg(&["-i", "pool", "create", "old", "--scm-size", "64M"]));
    sys.stop(&mut server);
    let garbage: Vec<u8> = (0..191u32).map(|i| (i * 97 + 13) as u8).collect();
    std::fs::write(sys.path().join("scm0/superblock"), garbage).expect("damage");
    let mut server = sys.start(&[]);
    sys.wait_log("unreadable", 1, 30);

    let f = sys.dmg(&["-i", "storage", "format"]);
    assert_eq!(f.status.code(), Some(1), "{}", out(&f));
    assert!(
        out(&f).contains("is damaged") && out(&f).contains("--force"),
        "{}",
        out(&f)
    );
    let f = sys.dmg(&["-i", "storage", "format", "--force"]);
    assert_eq!(f.status.code(), Some(0), "{}{}", out(&f), err(&f));
    sys.wait_log("the system as rank", 2, 30);
    // The reformatted engine is rank 0 again; no stale rank or pool is left behind.
    let q = ok(sys.dmg(&["-i", "-j", "system", "query"]));
    let q: serde_json::Value = serde_json::from_str(&q).expect("json");
    let members = q["response"]["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{q}");
    assert_eq!(members[0]["rank"], 0, "{q}");
    let pools = ok(sys.dmg(&["-i", "pool", "list"]));
    assert!(!pools.contains("old"), "{pools}");
    ok(sys.dmg(&["-i", "pool", "create", "old", "--scm-size", "64M"]));
    sys.stop(&mut server);
}

#[test]
fn a_flood_of_silent_connections_does_not_keep_the_admin_out() {
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    // More silent connections than the server serves at once.
    let flood: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", sys.port)).ok())
        .collect();
    assert!(flood.len() >= 256, "{} connections", flood.len());
    let start = std::time::Instant::now();
    let q = sys.dmg(&["-i", "system", "query"]);
    assert_eq!(q.status.code(), Some(0), "{}{}", out(&q), err(&q));
    assert!(out(&q).contains("Joined"), "{}", out(&q));
    eprintln!(
        "admin query answered {:?} after {} silent connections",
        start.elapsed(),
        flood.len()
    );
    // The silent ones were closed by the server (after its greeting, if any).
    let mut closed = 0;
    for mut c in flood {
        use std::io::Read;
        let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(30)));
        let mut b = [0u8; 512];
        loop {
            match c.read(&mut b) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    closed += 1;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    assert!(closed >= 256, "{closed} closed");
    sys.stop(&mut server);
}

#[test]
fn a_foreign_bdev_file_needs_force_and_pools_for_another_system_are_refused() {
    let sys = System::new(1);
    let bdev = sys.path().join("bdev0");
    std::fs::write(&bdev, b"precious user data").expect("user file");
    let mut server = sys.start(&[]);
    sys.wait_log("SCM format required", 1, 30);
    let f = sys.dmg(&["-i", "storage", "format"]);
    assert_eq!(f.status.code(), Some(1), "{}", out(&f));
    let both = format!("{}{}", out(&f), err(&f));
    assert!(
        both.contains("holds data that no DAOS format of this engine wrote")
            && both.contains("--force"),
        "{both}"
    );
    assert_eq!(
        std::fs::read(&bdev).expect("bdev"),
        b"precious user data",
        "the file is untouched"
    );
    let f = sys.dmg(&["-i", "storage", "format", "--force"]);
    assert_eq!(f.status.code(), Some(0), "{}{}", out(&f), err(&f));
    sys.wait_log("joined the system as rank 0", 1, 30);

    // A control config for another system: its pool create is refused.
    let other = sys.path().join("other.yml");
    std::fs::write(
        &other,
        format!(
            "name: other\nport: {}\nhostlist: [localhost]\ntransport_config:\n  allow_insecure: true\n",
            sys.port
        ),
    )
    .expect("control config");
    let o = run(
        "dmg",
        &[
            "-o",
            other.to_str().expect("utf8"),
            "pool",
            "create",
            "p",
            "--scm-size",
            "64M",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(err(&o).contains("sent to system"), "{}", err(&o));
    // More service replicas than ranks.
    let o = sys.dmg(&["-i", "pool", "create", "p", "--scm-size", "64M", "-v", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        err(&o).contains("more service replicas than the pool's 1 rank(s)"),
        "{}",
        err(&o)
    );
    assert!(!ok(sys.dmg(&["-i", "pool", "list"])).contains(" p "));
    sys.stop(&mut server);
}

#[test]
fn leader_query_names_the_port_the_server_listens_on_also_with_p() {
    let sys = System::new(1);
    let other = free_port();
    let mut server = sys.start(&["-p", &other.to_string(), "--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let lq = run(
        "dmg",
        &[
            "-i",
            "-l",
            &format!("localhost:{other}"),
            "system",
            "leader-query",
        ],
        &[],
    );
    assert_eq!(lq.status.code(), Some(0), "{}", err(&lq));
    let leader = out(&lq);
    assert!(
        leader
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("Current Leader: ") && l.ends_with(&format!(":{other}"))),
        "{leader}"
    );
    sys.stop(&mut server);
}

#[test]
fn callers_are_served_by_daos_version_rules() {
    use daos_proto::mgmt::{SystemQueryReq, mgmt_svc_client::MgmtSvcClient};
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let port = sys.port;
    // (component, version) headers, or none; what comes back.
    let call = |headers: Option<(&str, &str)>| -> Result<(), (tonic::Code, String)> {
        with_channel(port, |ch| async move {
            let mut req = tonic::Request::new(SystemQueryReq::default());
            if let Some((c, v)) = headers {
                req.metadata_mut()
                    .insert("x-daos-component", c.parse().expect("ascii"));
                req.metadata_mut()
                    .insert("x-daos-version", v.parse().expect("ascii"));
            }
            MgmtSvcClient::new(ch)
                .system_query(req)
                .await
                .map(|_| ())
                .map_err(|s| (s.code(), s.message().to_string()))
        })
    };
    assert!(call(None).is_ok(), "a caller without version headers");
    assert!(call(Some(("admin", "2.6.0"))).is_ok());
    assert!(
        call(Some(("admin", "2.6.5"))).is_ok(),
        "another patch release"
    );
    assert!(
        call(Some(("agent", "2.4.2"))).is_ok(),
        "agents within 2 minors"
    );
    let (code, msg) = call(Some(("admin", "2.2.0"))).expect_err("another minor release");
    assert_eq!(code, tonic::Code::FailedPrecondition);
    assert!(
        msg.contains("components server:2.6.0 and admin:2.2.0 are not compatible"),
        "{msg}"
    );
    let (code, msg) = call(Some(("admin", "1.2.0"))).expect_err("before 2.0");
    assert_eq!(code, tonic::Code::FailedPrecondition, "{msg}");
    let (code, msg) = call(Some(("admin", "two.six"))).expect_err("not a version");
    assert_eq!(code, tonic::Code::InvalidArgument, "{msg}");
    // Our own tools send the headers and are served.
    ok(sys.dmg(&["-i", "system", "query"]));
    sys.stop(&mut server);
}

#[test]
fn a_daos_rpc_this_server_does_not_implement_is_unimplemented_by_name() {
    use daos_proto::mgmt::{SystemQueryReq, SystemQueryResp};
    let sys = System::new(1);
    let mut server = sys.start(&[]);
    sys.wait_log("listening on", 1, 30);
    let port = sys.port;
    let call = |path: &'static str| -> tonic::Status {
        with_channel(port, |ch| async move {
            let mut grpc = tonic::client::Grpc::new(ch);
            grpc.ready().await.expect("ready");
            let codec = tonic_prost::ProstCodec::<SystemQueryReq, SystemQueryResp>::default();
            grpc.unary(
                tonic::Request::new(SystemQueryReq::default()),
                http::uri::PathAndQuery::from_static(path),
                codec,
            )
            .await
            .expect_err("not implemented")
        })
    };
    for (path, words) in [
        (
            "/mgmt.MgmtSvc/PoolUpgrade",
            "MgmtSvc.PoolUpgrade (dmg pool upgrade)",
        ),
        (
            "/mgmt.MgmtSvc/SystemDrain",
            "MgmtSvc.SystemDrain (dmg system drain)",
        ),
        ("/ctl.CtlSvc/SmdQuery", "CtlSvc.SmdQuery (dmg smd query)"),
    ] {
        let s = call(path);
        assert_eq!(s.code(), tonic::Code::Unimplemented, "{path}: {s:?}");
        assert!(
            s.message().contains(words) && s.message().contains("not implemented"),
            "{path}: {}",
            s.message()
        );
    }
    // The served ones still are.
    ok(sys.dmg(&["-i", "network", "scan"]));
    sys.stop(&mut server);
}

#[test]
fn attach_info_carries_daos_fields() {
    use daos_proto::mgmt::{GetAttachInfoReq, mgmt_svc_client::MgmtSvcClient};
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let port = sys.port;
    let r = with_channel(port, |ch| async move {
        MgmtSvcClient::new(ch)
            .get_attach_info(GetAttachInfoReq {
                all_ranks: true,
                ..Default::default()
            })
            .await
    })
    .expect("attach info")
    .into_inner();
    assert_eq!(r.rank_uris.len(), 1);
    assert_eq!(r.rank_uris[0].provider_idx, 0);
    assert!(
        r.rank_uris[0].uri.starts_with("ofi+tcp"),
        "{:?}",
        r.rank_uris
    );
    let hint = r.client_net_hint.expect("client net hint");
    assert!(hint.provider.starts_with("ofi+tcp"), "{hint:?}");
    assert_eq!(hint.interface, "lo");
    // The engines run with SRX (DAOS's default): libdaos checks its own setting against it.
    assert_eq!(hint.srv_srx_set, 1, "{hint:?}");
    let b = r.build_info.expect("build info");
    assert_eq!((b.major, b.minor), (2, 6));
    assert_eq!(r.sys, "daos_server");
    sys.stop(&mut server);
}

#[test]
fn pool_properties_travel_as_daos_numbers() {
    use daos_proto::mgmt::pool_property::Value;
    use daos_proto::mgmt::{
        PoolGetPropReq, PoolProperty, PoolSetPropReq, mgmt_svc_client::MgmtSvcClient,
    };
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    ok(sys.dmg(&[
        "-i",
        "pool",
        "create",
        "tank",
        "--scm-size",
        "64M",
        "-P",
        "scrub:lazy",
    ]));
    let port = sys.port;
    let (props, bad) = with_channel(port, |ch| async move {
        let mut c = MgmtSvcClient::new(ch);
        // DAOS_PROP_PO_RECLAIM (5) = DAOS_RECLAIM_TIME (4), as DAOS's dmg sends it.
        c.pool_set_prop(PoolSetPropReq {
            id: "tank".into(),
            properties: vec![PoolProperty {
                number: 5,
                value: Some(Value::Numval(4)),
            }],
            ..Default::default()
        })
        .await
        .expect("set-prop");
        let props = c
            .pool_get_prop(PoolGetPropReq {
                id: "tank".into(),
                properties: vec![
                    PoolProperty {
                        number: 5,
                        value: None,
                    },
                    PoolProperty {
                        number: 16,
                        value: None,
                    },
                    PoolProperty {
                        number: 1,
                        value: None,
                    },
                ],
                ..Default::default()
            })
            .await
            .expect("get-prop")
            .into_inner()
            .properties;
        let bad = c
            .pool_set_prop(PoolSetPropReq {
                id: "tank".into(),
                properties: vec![PoolProperty {
                    number: 5,
                    value: Some(Value::Strval("time".into())),
                }],
                ..Default::default()
            })
            .await
            .expect_err("a string where DAOS sends a number");
        (props, bad)
    });
    let find = |n: u32| {
        props
            .iter()
            .find(|p| p.number == n)
            .and_then(|p| p.value.clone())
    };
    assert_eq!(find(5), Some(Value::Numval(4)), "reclaim: time");
    assert_eq!(find(16), Some(Value::Numval(1)), "scrub: lazy");
    assert_eq!(find(1), Some(Value::Strval("tank".into())), "label");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert!(
        bad.message().contains("reclaim: expected a number"),
        "{bad:?}"
    );
    // Our dmg shows them by name.
    let text = ok(sys.dmg(&["-i", "pool", "get-prop", "tank", "reclaim"]));
    assert!(
        text.contains("Reclaim strategy (reclaim)") && text.contains("time"),
        "{text}"
    );
    sys.stop(&mut server);
}

#[test]
fn a_remote_engine_joins_over_grpc_and_bad_joins_are_refused() {
    use daos_proto::mgmt::{JoinReq, mgmt_svc_client::MgmtSvcClient};
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let port = sys.port;
    let join =
        |sys_name: &str, uuid: &str, rank: u32| -> Result<(u32, u32), (tonic::Code, String)> {
            let req = JoinReq {
                sys: sys_name.into(),
                uuid: uuid.into(),
                rank,
                uri: "ofi+tcp;ofi_rxm://127.0.0.9:31416".into(),
                nctxs: 2,
                addr: "127.0.0.9:10001".into(),
                srv_fault_domain: "/other".into(),
                incarnation: 7,
                ..Default::default()
            };
            with_channel(port, |ch| async move {
                MgmtSvcClient::new(ch)
                    .join(req)
                    .await
                    .map(|r| {
                        let r = r.into_inner();
                        (r.rank, r.map_version)
                    })
                    .map_err(|s| (s.code(), s.message().to_string()))
            })
        };
    let other = "0b0b0b0b-1111-4222-8333-444444444444";
    let (code, msg) = join("another_system", other, u32::MAX).expect_err("wrong system");
    assert_eq!(code, tonic::Code::FailedPrecondition);
    assert!(msg.contains("system name"), "{msg}");
    let (code, msg) = join("daos_server", other, 0).expect_err("rank 0 is taken");
    assert!(
        msg.contains("can't rejoin member with rank 0: uuid changed from"),
        "{code:?} {msg}"
    );
    let (code, msg) = join("daos_server", "", u32::MAX).expect_err("no UUID");
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(msg.contains("JoinReq.uuid"), "{msg}");
    let (rank, version) = join("daos_server", other, u32::MAX).expect("a new engine");
    assert_eq!(rank, 1);
    assert!(version >= 2, "the map version moved: {version}");
    // Joining again keeps its rank.
    assert_eq!(join("daos_server", other, 1).expect("rejoin").0, 1);
    let q = ok(sys.dmg(&["-i", "system", "query", "-v"]));
    assert!(q.contains("127.0.0.9:10001") && q.contains("/other"), "{q}");
    sys.stop(&mut server);
}

#[test]
fn daos_server_stops_while_a_client_keeps_a_connection_open() {
    use daos_proto::mgmt::{LeaderQueryReq, mgmt_svc_client::MgmtSvcClient};
    let sys = System::new(1);
    let mut server = sys.start(&["--auto-format"]);
    sys.wait_log("joined the system as rank 0", 1, 30);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let port = sys.port;
    // A client that made a call and keeps its connection (and runtime) around, idle.
    let client = rt.block_on(async move {
        let ch = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut c = MgmtSvcClient::new(ch);
        c.leader_query(LeaderQueryReq::default())
            .await
            .expect("leader query");
        c
    });
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        server.wait(std::time::Duration::from_secs(20)),
        Some(0),
        "daos_server stops (open connections get a short grace); log:\n{}",
        sys.log()
    );
    drop(client);
    drop(rt);
}

#[test]
fn server_set_logmasks_changes_what_running_engines_log() {
    let sys = System::new(1);
    let _server = sys.start_joined();
    // Bad flags are refused before anything is sent (exit 2), as DAOS's dmg does.
    usage(
        sys.dmg(&["-i", "server", "set-logmasks", "-m", "LOUD"]),
        "-m/--masks: log masks \"LOUD\": unknown level \"LOUD\"",
    );
    usage(
        sys.dmg(&["-i", "server", "slm", "-m", "ERR", "-s", "nosuch"]),
        "-s/--subsystems: log subsystems \"nosuch\": unknown name \"nosuch\"",
    );
    // The engine logs at ERR (the config's log_mask): no debug lines.
    sys.create_pool("a", "64M", None);
    assert!(
        !sys.log().contains("DEBUG: dRPC PoolCreate"),
        "{}",
        sys.log()
    );

    assert_eq!(
        ok(sys.dmg(&["-i", "server", "set-logmasks", "-m", "DEBUG"])),
        format!(
            "Engine log-masks updated successfully on the following host: localhost:{}\n",
            sys.port
        )
    );
    sys.wait_log("log masks set to DBUG", 1, 10);
    sys.create_pool("b", "64M", None);
    sys.wait_log("DEBUG: dRPC PoolCreate", 1, 10);
    ok(sys.dmg(&["-i", "pool", "query", "b"]));
    sys.wait_log("DEBUG: dRPC PoolQuery", 1, 10);

    // DD_SUBSYS merged as DAOS merges it: only mgmt logs below ERR.
    ok(sys.dmg(&["-i", "server", "slm", "-m", "DEBUG", "-s", "mgmt"]));
    sys.wait_log("log masks set to ERR,MGMT=DBUG", 1, 10);

    // No flags: back to the config's log_mask; debug lines stop.
    ok(sys.dmg(&["-i", "server", "set-logmasks"]));
    sys.wait_log("log masks set to ERR ", 1, 10);
    let before = sys.log().matches("DEBUG: dRPC PoolQuery").count();
    ok(sys.dmg(&["-i", "pool", "query", "b"]));
    assert_eq!(sys.log().matches("DEBUG: dRPC PoolQuery").count(), before);

    // A raw request past dmg's checks: the server says which engine refused and why.
    let resp = with_channel(sys.port, |ch| async move {
        use daos_proto::ctl::{SetLogMasksReq, ctl_svc_client::CtlSvcClient};
        CtlSvcClient::new(ch)
            .set_engine_log_masks(SetLogMasksReq {
                masks: "ERR,all=DEBUG".into(),
                ..Default::default()
            })
            .await
            .expect("answered")
            .into_inner()
    });
    assert_eq!(resp.errors.len(), 1, "{resp:?}");
    assert!(
        resp.errors[0].contains("ALL is not a subsystem"),
        "{resp:?}"
    );
    let o = sys.dmg(&["-i", "-j", "server", "set-logmasks", "-m", "INFO"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["status"], 0, "{v}");

    // A stopped engine: the host's error names it, in DAOS's per-engine form.
    ok(sys.dmg(&["-i", "system", "stop"]));
    let o = sys.dmg(&["-i", "server", "set-logmasks", "-m", "ERR"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("engine-0: engine is not running"),
        "{}{}",
        out(&o),
        err(&o)
    );
    assert!(
        err(&o).contains("set engine log level failed"),
        "{}",
        err(&o)
    );
}
