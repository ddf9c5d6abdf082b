//! daos_agent as a real process: credentials for the socket's peer (also another user's
//! process), signatures daos_server accepts or refuses (dRPC SEC 401), attach info from the
//! management service and its cache, 64 concurrent clients, restarts, config errors.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daos_client::agent::Agent;
use daos_proto::auth::{Credential, ValidateCredReq, ValidateCredResp};
use daos_tests::*;

/// The test below that runs as a child process of another user (`--ignored --exact`).
const HELPER: &str = "helper_prints_the_credential_it_gets";
const HELPER_ENV: &str = "DAOS_AGENT_TEST_SOCKET";

/// A temp dir readable by other users, with an agent config in it.
struct AgentDir {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl AgentDir {
    fn new(access_port: u16, transport: &str) -> AgentDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let d = dir.path().display();
        let config = dir.path().join("daos_agent.yml");
        std::fs::write(
            &config,
            format!(
                "name: daos_server\naccess_points: ['localhost:{access_port}']\n\
                 runtime_dir: {d}/run\nlog_file: {d}/daos_agent.log\ncontrol_log_mask: debug\n\
                 {transport}"
            ),
        )
        .expect("config");
        AgentDir { dir, config }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/daos_agent.sock")
    }

    fn start(&self, extra: &[&str]) -> Proc {
        let mut args = vec!["-o", self.config.to_str().expect("utf8")];
        args.extend_from_slice(extra);
        let p = Proc::start("daos_agent", &args, &[], self.dir.path());
        let sock = self.socket();
        assert!(
            wait_until(Duration::from_secs(20), || Agent::connect_at(&sock).is_ok()),
            "daos_agent did not listen on {}; log:\n{}\nstderr:\n{}",
            sock.display(),
            self.log(),
            log(self.dir.path(), "daos_agent", "err")
        );
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daos_agent.log")).unwrap_or_default()
    }

    fn agent(&self) -> Agent {
        Agent::connect_at(&self.socket()).expect("connect to the agent")
    }
}

fn names_of(uid: u32, gid: u32) -> (String, String) {
    let n = daos_auth::cred::identity(uid, gid).expect("names");
    (format!("{}@", n.user), format!("{}@", n.group))
}

fn sys(c: &Credential) -> daos_proto::auth::Sys {
    daos_auth::cred::sys_of(c.token.as_ref().expect("token")).expect("AUTH_SYS")
}

/// Runs [`HELPER`] as `uid`/`gid` against the agent at `socket`; its `USER=.. GROUP=..` line.
fn credential_as(uid: u32, gid: u32, socket: &Path) -> String {
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            HELPER,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, socket)
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run the helper");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helper as uid {uid} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness prints the test's name on the same line.
    text.lines()
        .find_map(|l| l.find("USER=").map(|i| l[i..].to_string()))
        .unwrap_or_else(|| panic!("no USER= line in:\n{text}"))
}

#[test]
#[ignore = "run by the agent tests as another user's process"]
fn helper_prints_the_credential_it_gets() {
    let socket = std::env::var_os(HELPER_ENV).expect("run by credential_as");
    let mut a = Agent::connect_at(Path::new(&socket)).expect("connect");
    let c = a.credential().expect("credential");
    let s = sys(&c);
    println!("USER={} GROUP={}", s.user, s.group);
}

/// The other helper: connects to pool `DAOS_TEST_POOL` at `DAOS_TEST_HOST` through the agent
/// in `DAOS_AGENT_DRPC_DIR` and exits without disconnecting (a killed client's leak).
#[test]
#[ignore = "run by the agent tests as a client that exits holding a pool handle"]
fn helper_connects_and_exits_without_disconnecting() {
    let host = std::env::var("DAOS_TEST_HOST").expect("run by the agent tests");
    let pool = std::env::var("DAOS_TEST_POOL").expect("run by the agent tests");
    let target = daos_client::connect::client_target(None, Some(&host), true).expect("target");
    let map =
        daos_client::connect::connect_blocking(&target, &pool, daos_client::container::FLAG_RO)
            .expect("connect");
    assert_ne!(map.handle, 0, "connected through the agent");
    println!("CONNECTED {:016x}", map.handle);
}

/// The third helper: as the user it runs as, makes container calls through the agent in
/// `DAOS_AGENT_DRPC_DIR` on container `DAOS_TEST_CONT` of pool `DAOS_TEST_POOL` without a
/// pool handle (handle 0, as admin tools call), and one at host `DAOS_TEST_FOREIGN`; prints
/// `CALL name: ok|err ...` per call.
#[test]
#[ignore = "run by the agent tests as another user's process"]
fn helper_makes_container_calls_through_the_agent() {
    use daos_client::container::{AclOp, Containers, FLAG_RW};
    let var = |n: &str| std::env::var(n).expect("run by the agent tests");
    let (pool, cont, foreign) = (
        var("DAOS_TEST_POOL"),
        var("DAOS_TEST_CONT"),
        var("DAOS_TEST_FOREIGN"),
    );
    let socket = daos_client::agent::socket_path();
    let target = daos_control::Target::via_agent(
        vec![daos_control::forward::AGENT_CHOOSES.into()],
        socket.clone(),
    );
    let c = Containers::new(&target, &pool).expect("containers");
    let show = |name: &str, r: Result<String, daos_client::container::ContError>| match r {
        Ok(v) => println!("CALL {name}: ok {v}"),
        Err(e) => println!("CALL {name}: err {}", e.to_string().replace('\n', " ")),
    };
    let entry = "A::nobody@:rwdtTaAo".to_string();
    show(
        "destroy",
        c.destroy(&cont, true).map(|i| format!("{:?}", i.label)),
    );
    show(
        "set-owner",
        c.acl(
            &cont,
            AclOp::SetOwner {
                user: "nobody".into(),
                group: String::new(),
            },
        )
        .map(|i| i.owner),
    );
    show(
        "update-acl",
        c.acl(&cont, AclOp::Update(vec![entry.clone()]))
            .map(|i| format!("{:?}", i.acl)),
    );
    show(
        "overwrite-acl",
        c.acl(&cont, AclOp::Overwrite(vec![entry]))
            .map(|i| format!("{:?}", i.acl)),
    );
    show(
        "delete-acl",
        c.acl(&cont, AclOp::Delete("OWNER@".into()))
            .map(|i| format!("{:?}", i.acl)),
    );
    show(
        "get-acl",
        c.acl(&cont, AclOp::Get).map(|i| format!("{:?}", i.acl)),
    );
    show(
        "set-props",
        c.set_props(&cont, "").map(|i| format!("{:?}", i.props)),
    );
    show("create", c.create("theirs", [7; 16], "").map(|i| i.label));
    show(
        "list",
        c.list()
            .map(|l| format!("{:?}", l.iter().map(|i| &i.label).collect::<Vec<_>>())),
    );
    show("query", c.query(&cont).map(|i| i.owner));
    // No credential in the request: once the pool's system handle (every container).
    show(
        "connect",
        c.connect(Vec::new(), FLAG_RW)
            .map(|h| format!("{:#x}", h.cookie)),
    );
    let elsewhere = daos_control::Target::via_agent(vec![foreign], socket);
    show(
        "foreign",
        Containers::new(&elsewhere, &pool)
            .expect("containers")
            .list()
            .map(|l| format!("{} containers", l.len())),
    );
}

/// Runs [`helper_makes_container_calls_through_the_agent`] as nobody; its `CALL` lines by
/// name.
fn container_calls_as_nobody(
    run_dir: &Path,
    pool: &str,
    cont: &str,
    foreign: &str,
) -> std::collections::BTreeMap<String, String> {
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "helper_makes_container_calls_through_the_agent",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DAOS_AGENT_DRPC_DIR", run_dir)
        .env("DAOS_TEST_POOL", pool)
        .env("DAOS_TEST_CONT", cont)
        .env("DAOS_TEST_FOREIGN", foreign)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run the helper");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helper as nobody failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| l.find("CALL ").map(|i| &l[i + 5..]))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A local user's container calls through the agent, made without a pool handle as an admin
/// tool's would be, in a pool whose ACL grants that user nothing: each is authorized as the
/// user (the credential the agent signs for it) and refused, and nothing changes; a call
/// naming a host that is no daos_server of the agent's system is refused without
/// connecting there.
fn agent_callers_are_authorized_as_themselves(secure: bool) {
    let certs_dir = tempfile::tempdir().expect("tempdir");
    let certs = certs_dir.path().join("certs");
    if secure {
        ok(run(
            "daos_server",
            &["cert", "generate", certs.to_str().expect("utf8")],
            &[],
        ));
    }
    let sys = System::with_transport(1, secure.then_some(certs.as_path()));
    let _server = sys.start_joined();
    let c = certs.display();
    let a = AgentDir::new(
        sys.port,
        &if secure {
            format!(
                "transport_config:\n  allow_insecure: false\n  ca_cert: {c}/daosCA.crt\n  \
                 cert: {c}/agent.crt\n  key: {c}/agent.key\n"
            )
        } else {
            "transport_config:\n  allow_insecure: true\n".to_string()
        },
    );
    let _agent = a.start(&[]);
    let admin = certs_dir.path().join("admin.yml");
    std::fs::write(
        &admin,
        format!(
            "name: daos_server\nport: {}\nhostlist: [localhost]\ntransport_config:\n  {}",
            sys.port,
            if secure {
                format!(
                    "allow_insecure: false\n  ca_cert: {c}/daosCA.crt\n  cert: {c}/admin.crt\n  \
                     key: {c}/admin.key\n"
                )
            } else {
                "allow_insecure: true\n".to_string()
            }
        ),
    )
    .expect("admin config");
    let admin = admin.to_str().expect("utf8");
    // Root's pool (DAOS's default ACL: its owner and group only) and container, with data.
    ok(run(
        "dmg",
        &["-o", admin, "pool", "create", "tank", "--scm-size", "256M"],
        &[],
    ));
    let run_dir = a.dir.path().join("run");
    let files = a.dir.path().join("files");
    std::fs::create_dir(&files).expect("mkdir");
    let f = |n: &str| files.join(n).display().to_string();
    std::fs::write(f("in"), b"root's data").expect("write");
    let root = |args: &[&str]| {
        let out = std::process::Command::new(bin("daos"))
            .args(args)
            .env("DAOS_AGENT_DRPC_DIR", &run_dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("daos");
        assert!(out.status.success(), "daos {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    root(&["container", "create", "tank", "c1"]);
    root(&["object", "put", "tank", "c1", "k", &f("in")]);
    let acl_before = root(&["container", "get-acl", "tank", "c1"]);
    let props_before = root(&["container", "get-prop", "tank", "c1"]);

    // Something listens there, but it is no daos_server of the system.
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    stranger.set_nonblocking(true).expect("nonblocking");
    let foreign = stranger.local_addr().expect("addr").to_string();
    let calls = container_calls_as_nobody(&run_dir, "tank", "c1", &foreign);
    for name in [
        "destroy",
        "set-owner",
        "update-acl",
        "overwrite-acl",
        "delete-acl",
        "get-acl",
        "set-props",
        "create",
        "list",
        "query",
        "connect",
    ] {
        let got = calls.get(name).map(String::as_str).unwrap_or("no answer");
        assert!(
            got.starts_with("err ") && got.contains("DER_NO_PERM(-1001): nobody@ may not"),
            "nobody's {name} through the agent: {got}\nall: {calls:#?}\nserver log:\n{}",
            sys.log()
        );
    }
    let foreign_call = calls
        .get("foreign")
        .map(String::as_str)
        .unwrap_or("no answer");
    assert!(
        foreign_call.contains(&format!(
            "ForwardReq.host {foreign:?} is not a daos_server of system daos_server"
        )),
        "{foreign_call}"
    );
    assert!(
        matches!(stranger.accept(), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the agent connected to {foreign} for its caller"
    );
    assert!(a.log().contains("refused to forward"), "{}", a.log());

    // Nothing changed: root's container, its owner, ACL, properties and data.
    assert_eq!(root(&["container", "get-acl", "tank", "c1"]), acl_before);
    assert!(acl_before.starts_with("# Owner: root@\n"), "{acl_before}");
    assert_eq!(root(&["container", "get-prop", "tank", "c1"]), props_before);
    let list = root(&["container", "list", "tank"]);
    assert!(list.contains("c1") && !list.contains("theirs"), "{list}");
    root(&["object", "get", "tank", "c1", "k", &f("out")]);
    assert_eq!(std::fs::read(f("out")).expect("read"), b"root's data");
}

#[test]
fn agent_callers_are_authorized_as_themselves_insecure() {
    if !is_root() {
        eprintln!(
            "SKIPPED agent_callers_are_authorized_as_themselves_insecure: daos_server's tmpfs SCM and running as nobody need root"
        );
        return;
    }
    agent_callers_are_authorized_as_themselves(false);
}

#[test]
fn agent_callers_are_authorized_as_themselves_secure() {
    if !is_root() {
        eprintln!(
            "SKIPPED agent_callers_are_authorized_as_themselves_secure: daos_server's tmpfs SCM and running as nobody need root"
        );
        return;
    }
    agent_callers_are_authorized_as_themselves(true);
}

/// Pool `pool`'s open handles, asked of its service (insecure system).
fn open_handles(sys: &System, pool: &str) -> usize {
    let pool = pool.to_string();
    with_channel(sys.port, move |ch| async move {
        daos_proto::cont::cont_svc_client::ContSvcClient::new(ch)
            .handles(daos_proto::cont::ContReq {
                pool,
                ..Default::default()
            })
            .await
            .expect("handles")
            .into_inner()
            .handles
            .len()
    })
}

#[test]
fn insecure_agent_serves_credentials_of_the_caller_to_many_clients_and_restarts() {
    assert!(ok(run("daos_agent", &["version"], &[])).starts_with("daos_agent version "));
    // This node's interfaces with their providers, as a table and as JSON; the topology.
    assert!(ok(run("daos_agent", &["net-scan"], &[])).starts_with("Interface"));
    let j: serde_json::Value = serde_json::from_str(&ok(run(
        "daos_agent",
        &["-j", "net-scan", "-p", "all"],
        &[],
    )))
    .expect("net-scan JSON");
    assert!(
        j.as_array()
            .is_some_and(|a| a.iter().any(|i| i["interface"] == "lo")),
        "{j}"
    );
    assert!(!ok(run("daos_agent", &["dump-topology"], &[])).is_empty());
    // No daos_server at this port: credentials still work, attach info says why not.
    let dead = free_port();
    let a = AgentDir::new(dead, "transport_config:\n  allow_insecure: true\n");
    let mut agent = a.start(&[]);
    assert_eq!(
        std::fs::metadata(a.socket())
            .expect("socket")
            .permissions()
            .mode()
            & 0o777,
        0o666,
        "every local user's processes reach the agent"
    );

    let me = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let (user, group) = names_of(me.0, me.1);
    let c = a.agent().credential().expect("credential");
    assert_eq!((sys(&c).user, sys(&c).group), (user.clone(), group));
    assert_eq!(c.origin, "agent");
    daos_auth::cred::validate(&c, &daos_auth::Verify::Digest).expect("the digest checks");

    // Another user's process gets its own identity: the kernel says who calls, not the request.
    if is_root() {
        let (nuser, ngroup) = names_of(65534, 65534);
        assert_eq!(
            credential_as(65534, 65534, &a.socket()),
            format!("USER={nuser} GROUP={ngroup}")
        );
        // credential_config.client_user_map names a uid as the config says; others keep
        // their local names.
        let m = AgentDir::new(
            dead,
            "transport_config:\n  allow_insecure: true\ncredential_config:\n  \
             client_user_map:\n    65534:\n      user: mapped\n      group: staff\n",
        );
        let _mapped = m.start(&[]);
        assert_eq!(
            credential_as(65534, 65534, &m.socket()),
            "USER=mapped@ GROUP=staff@"
        );
        let c = m.agent().credential().expect("credential");
        assert_eq!(sys(&c).user, user);
    } else {
        eprintln!("SKIPPED part: running a client as another user needs root");
    }

    let e = a.agent().attach_info(true).unwrap_err().to_string();
    assert!(e.contains("-2034"), "no management service: {e}");

    // 64 clients at once.
    let sock = a.socket();
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut ag = Agent::connect_at(&sock).expect("connect");
                for _ in 0..5 {
                    let c = ag.credential().expect("credential");
                    assert!(daos_auth::cred::validate(&c, &daos_auth::Verify::Digest).is_ok());
                }
                ag.notify_pool(true, "p", &format!("h{i}")).expect("notify");
                sys(&c_of(&mut ag)).user
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("client thread"), user);
    }

    // SIGTERM: a clean exit, the socket gone; a new agent serves a new connect.
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(agent.wait(Duration::from_secs(10)), Some(0), "{}", a.log());
    assert!(!a.socket().exists(), "socket removed on exit");
    let _again = a.start(&[]);
    assert_eq!(sys(&a.agent().credential().expect("credential")).user, user);
    assert!(a.log().contains("daos_agent shutting down"), "{}", a.log());

    // Config mistakes name the key and the fix.
    let bad = a.dir.path().join("bad.yml");
    std::fs::write(&bad, "acess_points: [x]\ncache_expiration: -1\n").expect("write");
    let o = run("daos_agent", &["-o", bad.to_str().expect("utf8")], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("did you mean `access_points`"), "{err}");
    assert!(err.contains("cache_expiration"), "{err}");
}

fn c_of(a: &mut Agent) -> Credential {
    a.credential().expect("credential")
}

fn validate(sys: &System, cred: &Credential) -> ValidateCredResp {
    let mut c = daos_drpc::Client::connect(&sys.path().join("run/daos_server.sock"))
        .expect("daos_server.sock");
    c.call_msg(
        daos_drpc::SecMethod::ValidateCreds,
        &ValidateCredReq {
            cred: Some(cred.clone()),
        },
    )
    .expect("ValidateCreds")
}

#[test]
fn signed_credentials_are_validated_by_the_server_and_attach_info_is_cached() {
    if !is_root() {
        eprintln!("SKIPPED signed_credentials...: daos_server's tmpfs SCM needs root");
        return;
    }
    let certs_dir = tempfile::tempdir().expect("tempdir");
    let certs = certs_dir.path().join("certs");
    let other = certs_dir.path().join("other");
    for d in [&certs, &other] {
        ok(run(
            "daos_server",
            &["cert", "generate", d.to_str().expect("utf8")],
            &[],
        ));
    }
    let sys = System::with_transport(1, Some(&certs));
    let mut server = sys.start_joined();
    let c = certs.display();
    let a = AgentDir::new(
        sys.port,
        &format!(
            "transport_config:\n  allow_insecure: false\n  ca_cert: {c}/daosCA.crt\n  \
             cert: {c}/agent.crt\n  key: {c}/agent.key\n"
        ),
    );
    let _agent = a.start(&[]);

    let cred = a.agent().credential().expect("credential");
    let me = names_of(
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let r = validate(&sys, &cred);
    assert_eq!(r.status, 0, "a signed credential is accepted");
    let token = r.token.expect("the validated token");
    assert_eq!(daos_auth::cred::sys_of(&token).expect("sys").user, me.0);

    // Someone else's name under this signature.
    let mut forged = cred.clone();
    forged.token = Some(daos_auth::cred::sys_token(
        &daos_auth::Names {
            user: "nobody".into(),
            group: "nogroup".into(),
            groups: Vec::new(),
        },
        "x",
    ));
    assert_eq!(validate(&sys, &forged).status, daos_auth::DER_NO_PERM);
    // Signed by an agent key of another CA (its certificate is not in client_cert_dir).
    let stranger = daos_auth::Signer::from_key_file(&other.join("agent.key")).expect("key");
    let foreign = daos_auth::cred::credential(
        &daos_auth::Names {
            user: "root".into(),
            group: "root".into(),
            groups: Vec::new(),
        },
        "x",
        &stranger,
    )
    .expect("sign");
    assert_eq!(validate(&sys, &foreign).status, daos_auth::DER_NO_PERM);
    // An origin with no certificate; an unsigned (insecure) credential.
    let mut ghost = cred.clone();
    ghost.origin = "ghost".into();
    assert_eq!(validate(&sys, &ghost).status, daos_auth::DER_NO_CERT);
    let digest = daos_auth::cred::credential(
        &daos_auth::Names {
            user: "root".into(),
            group: "root".into(),
            groups: Vec::new(),
        },
        "x",
        &daos_auth::Signer::Digest,
    )
    .expect("digest");
    assert_eq!(validate(&sys, &digest).status, daos_auth::DER_NO_PERM);
    assert!(sys.log().contains("credential refused"), "{}", sys.log());

    // Attach info through the agent (its certificate), then from its cache.
    let info = a.agent().attach_info(true).expect("attach info");
    let uri = info
        .rank_uris
        .iter()
        .find(|u| u.rank == 0)
        .map(|u| u.uri.clone())
        .expect("rank 0");
    assert!(uri.starts_with("ofi+tcp"), "{uri}");
    let dump = ok(run(
        "daos_agent",
        &["-o", a.config.to_str().expect("utf8"), "dump-attachinfo"],
        &[],
    ));
    assert_eq!(dump, format!("name daos_server\nsize 1\nall\n0 {uri}\n"));

    // A client process with no certificate of its own: daos goes through the agent (its
    // certificate), connects with its signed credential, and does I/O.
    let admin = certs_dir.path().join("admin.yml");
    std::fs::write(
        &admin,
        format!(
            "name: daos_server\nport: {}\nhostlist: [localhost]\ntransport_config:\n  \
             allow_insecure: false\n  ca_cert: {c}/daosCA.crt\n  cert: {c}/admin.crt\n  \
             key: {c}/admin.key\n",
            sys.port
        ),
    )
    .expect("admin config");
    ok(run(
        "dmg",
        &[
            "-o",
            admin.to_str().expect("utf8"),
            "pool",
            "create",
            "tank",
            "--scm-size",
            "256M",
        ],
        &[],
    ));
    let data = certs_dir.path().join("data");
    std::fs::write(&data, b"through the agent").expect("write");
    let run_dir = a.dir.path().join("run");
    let daos = |args: &[&str]| {
        let out = std::process::Command::new(bin("daos"))
            .args(args)
            .env("DAOS_AGENT_DRPC_DIR", &run_dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("daos");
        assert!(out.status.success(), "daos {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    daos(&["container", "create", "tank", "c1"]);
    daos(&[
        "object",
        "put",
        "tank",
        "c1",
        "k",
        data.to_str().expect("utf8"),
    ]);
    let back = certs_dir.path().join("back");
    daos(&[
        "object",
        "get",
        "tank",
        "c1",
        "k",
        back.to_str().expect("utf8"),
    ]);
    assert_eq!(std::fs::read(&back).expect("read"), b"through the agent");
    assert!(daos(&["container", "list", "tank"]).contains("c1"));

    sys.stop(&mut server);
    let cached = a.agent().attach_info(true).expect("cached attach info");
    assert_eq!(cached.rank_uris.len(), 1);
}

/// Runs `daos -i -l localhost:PORT args` with the agent at `agent_dir`, as `uid` (root: this
/// process's).
fn daos_as(
    sys: &System,
    agent_dir: &Path,
    uid: Option<u32>,
    args: &[&str],
) -> std::process::Output {
    let host = format!("localhost:{}", sys.port);
    let mut cmd = std::process::Command::new(bin("daos"));
    cmd.args(["-i", "-l", &host])
        .args(args)
        .env("DAOS_AGENT_DRPC_DIR", agent_dir)
        .stdin(std::process::Stdio::null());
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    cmd.output().expect("daos")
}

/// An insecure management-API target at `sys`.
fn local_target(sys: &System) -> daos_control::Target {
    let control = daos_control::load_control(None).expect("control");
    daos_control::Target::new(&control, Some(&format!("localhost:{}", sys.port)), true)
        .expect("target")
}

/// A client in this process, connected through agent `a` to pool `pool` with container `cont`
/// open (`flags` for both).
struct Connected<'t> {
    cred: Credential,
    conts: daos_client::container::Containers<'t>,
    handle: u64,
    cont: daos_client::container::ContInfo,
    session: daos_client::Session,
}

fn connect_here<'t>(
    target: &'t daos_control::Target,
    a: &AgentDir,
    pool: &str,
    cont: &str,
    flags: u32,
) -> Connected<'t> {
    let cred = a.agent().credential().expect("credential");
    let conts = daos_client::container::Containers::new(target, pool).expect("containers");
    let h = conts
        .connect(prost::Message::encode_to_vec(&cred), flags)
        .expect("connect");
    let info = conts.query(cont).expect("container");
    let ch = conts
        .open(h.cookie, &daos_client::uuid_text(&info.uuid), flags)
        .expect("open");
    let map = daos_client::connect::pool_map_blocking(target, pool)
        .expect("map")
        .with_handle(h.cookie)
        .with_cont_handle(info.uuid, ch.cookie);
    let session =
        daos_client::Session::open(std::sync::Arc::new(map), Default::default()).expect("session");
    Connected {
        cred,
        conts,
        handle: h.cookie,
        cont: info,
        session,
    }
}

#[test]
fn pool_acls_decide_who_connects_and_evicted_clients_lose_their_handles() {
    if !is_root() {
        eprintln!("SKIPPED pool_acls...: daos_server's tmpfs SCM and running as nobody need root");
        return;
    }
    let sys = System::new(1);
    let mut server = sys.start_joined();
    let a = AgentDir::new(sys.port, "transport_config:\n  allow_insecure: true\n");
    let _agent = a.start(&[]);
    let run_dir = a.dir.path().join("run");
    let files = a.dir.path().join("files");
    std::fs::create_dir(&files).expect("mkdir");
    std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let f = |n: &str| files.join(n).display().to_string();
    std::fs::write(f("in"), b"secret value").expect("write");
    ok(sys.dmg(&["-i", "pool", "create", "tank", "--scm-size", "256M"]));

    // The owner (root, DAOS's default ACL: A::OWNER@:rw) connects through the agent.
    let me = |args: &[&str]| daos_as(&sys, &run_dir, None, args);
    ok(me(&["container", "create", "tank", "c1"]));
    ok(me(&["object", "put", "tank", "c1", "k", &f("in")]));
    ok(me(&["object", "get", "tank", "c1", "k", &f("out")]));
    assert_eq!(std::fs::read(f("out")).expect("read"), b"secret value");
    assert!(
        sys.log().contains("pool") && !sys.log().contains("credential refused"),
        "{}",
        sys.log()
    );

    // Every daos command closed its pool handle on the way out.
    assert_eq!(open_handles(&sys, "tank"), 0);
    // A client that exits without closing its handle: the agent evicts it.
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "helper_connects_and_exits_without_disconnecting",
            "--nocapture",
        ])
        .env("DAOS_AGENT_DRPC_DIR", &run_dir)
        .env("DAOS_TEST_HOST", format!("localhost:{}", sys.port))
        .env("DAOS_TEST_POOL", "tank")
        .output()
        .expect("helper");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CONNECTED"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(30), || open_handles(&sys, "tank") == 0),
        "the exited client's handle was not evicted; agent log:\n{}",
        a.log()
    );
    assert!(
        a.log()
            .contains("exited holding 1 pool handle(s); evicting them"),
        "{}",
        a.log()
    );

    // Without an agent the daos tool is an admin tool (an insecure system here): it gets a
    // pool handle without a credential, beyond the ACL, as dmg's users would.
    let empty = a.dir.path().join("no-agent");
    std::fs::create_dir(&empty).expect("mkdir");
    ok(daos_as(
        &sys,
        &empty,
        None,
        &["object", "get", "tank", "c1", "k", &f("admin")],
    ));
    // A client with no handle at all: the pool's targets refuse it (checks on since create).
    let target = local_target(&sys);
    let c1 = daos_client::container::Containers::new(&target, "tank")
        .expect("containers")
        .query("c1")
        .expect("c1");
    let bare = daos_client::connect::pool_map_blocking(&target, "tank").expect("map");
    let mut s =
        daos_client::Session::open(std::sync::Arc::new(bare), Default::default()).expect("session");
    let e = s.fetch(c1.uuid, 7, b"d", b"a").expect_err("no handle");
    assert_eq!(e.der(), Some(daos_wire::der::NO_HDL), "{e}");

    // nobody is not in the ACL: refused at connect, nothing read.
    let nobody = |args: &[&str]| daos_as(&sys, &run_dir, Some(65534), args);
    let o = nobody(&["object", "get", "tank", "c1", "k", &f("nobody")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("DER_NO_PERM(-1001): nobody@ may not connect to pool tank read-only"),
        "{}",
        stderr(&o)
    );
    assert!(!files.join("nobody").exists());
    // A read-only principal: fetches (the pool's and the container's ACL let it read), cannot
    // update.
    ok(sys.dmg(&["-i", "pool", "update-acl", "tank", "-e", "A::nobody@:r"]));
    ok(me(&[
        "container",
        "update-acl",
        "tank",
        "c1",
        "--entry",
        "A::nobody@:r",
    ]));
    ok(nobody(&["object", "get", "tank", "c1", "k", &f("nobody")]));
    assert_eq!(std::fs::read(f("nobody")).expect("read"), b"secret value");
    let o = nobody(&["object", "put", "tank", "c1", "k", &f("in")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("may not connect to pool tank read-write"),
        "{}",
        stderr(&o)
    );

    // A connected client (in this process) loses its handle to dmg pool evict.
    let Connected {
        cred,
        conts,
        handle,
        cont: c1,
        session: mut s,
    } = connect_here(&target, &a, "tank", "c1", daos_client::container::FLAG_RW);
    s.update(c1.uuid, 7, b"d", b"a", b"before")
        .expect("connected: served");
    // A container handle of another container is refused.
    assert!(
        conts
            .open(handle, "nope", daos_client::container::FLAG_RW)
            .is_err(),
        "no such container"
    );
    assert_eq!(
        ok(sys.dmg(&["-i", "pool", "evict", "tank"])),
        "Pool-evict command succeeded\n"
    );
    let e = s
        .update(c1.uuid, 7, b"d", b"a", b"after")
        .expect_err("evicted");
    assert_eq!(e.der(), Some(daos_wire::der::NO_HDL), "{e}");
    // Connecting again works; the value is the one written before the eviction.
    ok(me(&["object", "get", "tank", "c1", "k", &f("again")]));
    assert_eq!(std::fs::read(f("again")).expect("read"), b"secret value");
    let o = conts.open(
        handle,
        &daos_client::uuid_text(&c1.uuid),
        daos_client::container::FLAG_RO,
    );
    assert!(
        matches!(o, Err(daos_client::container::ContError::NoPerm(ref m)) if m.contains("DER_NO_HDL")),
        "an evicted pool handle opens nothing: {o:?}"
    );

    // A restarted engine checks handles from its first request, and learns the open ones
    // again from the management service.
    let h2 = conts
        .connect(
            prost::Message::encode_to_vec(&cred),
            daos_client::container::FLAG_RW,
        )
        .expect("connect again");
    let ch2 = conts
        .open(
            h2.cookie,
            &daos_client::uuid_text(&c1.uuid),
            daos_client::container::FLAG_RO,
        )
        .expect("open under the new handle");
    sys.stop(&mut server);
    let _server = sys.start(&[]);
    sys.wait_log("joined the system as rank", 2, 60);
    // The restarted engine checks handles at once: no handle, no service.
    let bare = daos_client::connect::pool_map_blocking(&target, "tank").expect("map");
    let mut nh =
        daos_client::Session::open(std::sync::Arc::new(bare), Default::default()).expect("session");
    let e = nh.fetch(c1.uuid, 7, b"d", b"a").expect_err("no handle");
    assert_eq!(e.der(), Some(daos_wire::der::NO_HDL), "{e}");
    let map = daos_client::connect::pool_map_blocking(&target, "tank")
        .expect("map")
        .with_handle(h2.cookie)
        .with_cont_handle(c1.uuid, ch2.cookie);
    let mut s =
        daos_client::Session::open(std::sync::Arc::new(map), Default::default()).expect("session");
    assert!(
        wait_until(Duration::from_secs(30), || s
            .fetch(c1.uuid, 7, b"d", b"a")
            .is_ok()),
        "the open handle was pushed to the restarted engine; log:\n{}",
        sys.log()
    );
    assert_eq!(
        s.fetch(c1.uuid, 7, b"d", b"a").expect("fetch"),
        Some(b"before".to_vec())
    );

    // A pool with a client connected is not destroyed without --force (DER_BUSY).
    fails(
        sys.dmg(&["-i", "pool", "destroy", "tank"]),
        "DER_BUSY(-1012): pool tank has 1 open handle(s)",
    );
    assert_eq!(open_handles(&sys, "tank"), 2, "the refusal changed nothing");
    // DAOS's evict by machine: another machine's name evicts nothing, this one's the client.
    let evict = |machine: &str| {
        let machine = machine.to_string();
        with_channel(sys.port, move |ch| async move {
            use daos_proto::mgmt::{PoolEvictReq, mgmt_svc_client::MgmtSvcClient};
            MgmtSvcClient::new(ch)
                .pool_evict(PoolEvictReq {
                    id: "tank".into(),
                    machine,
                    ..Default::default()
                })
                .await
                .expect("evict")
                .into_inner()
                .count
        })
    };
    assert_eq!(evict("elsewhere"), 0);
    assert_eq!(open_handles(&sys, "tank"), 2);
    assert!(evict(&daos_auth::cred::machine_name()) >= 1);
    assert_eq!(open_handles(&sys, "tank"), 0);
    let e = s.fetch(c1.uuid, 7, b"d", b"a").expect_err("evicted");
    assert_eq!(e.der(), Some(daos_wire::der::NO_HDL), "{e}");
    // Connected again: --force evicts and destroys.
    conts
        .connect(
            prost::Message::encode_to_vec(&cred),
            daos_client::container::FLAG_RO,
        )
        .expect("connect");
    ok(sys.dmg(&["-i", "pool", "destroy", "--force", "tank"]));
    fails(sys.dmg(&["-i", "pool", "query", "tank"]), "tank");
}

#[test]
fn container_acls_decide_who_opens_reads_writes_and_administers() {
    if !is_root() {
        eprintln!(
            "SKIPPED container_acls...: daos_server's tmpfs SCM and running as nobody need root"
        );
        return;
    }
    let sys = System::new(1);
    let _server = sys.start_joined();
    let a = AgentDir::new(sys.port, "transport_config:\n  allow_insecure: true\n");
    let _agent = a.start(&[]);
    let run_dir = a.dir.path().join("run");
    let files = a.dir.path().join("files");
    std::fs::create_dir(&files).expect("mkdir");
    std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let f = |n: &str| files.join(n).display().to_string();
    std::fs::write(f("in"), b"v1").expect("write");
    std::fs::write(f("acl"), "A::OWNER@:rwdtTaAo\nA::nobody@:r\n").expect("write");
    ok(sys.dmg(&["-i", "pool", "create", "tank", "--scm-size", "256M"]));
    // nobody may connect read-write and create containers (a pool's `w`).
    ok(sys.dmg(&["-i", "pool", "update-acl", "tank", "-e", "A::nobody@:rw"]));
    let me = |args: &[&str]| daos_as(&sys, &run_dir, None, args);
    let nobody = |args: &[&str]| daos_as(&sys, &run_dir, Some(65534), args);
    let (root, _) = names_of(
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );

    ok(me(&[
        "container",
        "create",
        "tank",
        "mine",
        "--acl-file",
        &f("acl"),
    ]));
    let acl = ok(me(&["container", "get-acl", "tank", "mine"]));
    assert!(
        acl.starts_with(&format!("# Owner: {root}\n"))
            && acl.ends_with("# Entries:\nA::OWNER@:rwdtTaAo\nA::nobody@:r\n"),
        "{acl}"
    );
    ok(me(&["object", "put", "tank", "mine", "k", &f("in")]));

    // Read-only for nobody: reads, cannot write, cannot read the ACL.
    ok(nobody(&["object", "get", "tank", "mine", "k", &f("got")]));
    assert_eq!(std::fs::read(f("got")).expect("read"), b"v1");
    let refused = |o: std::process::Output, what: &str| {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("DER_NO_PERM(-1001): nobody@ may not {what}")),
            "{}",
            stderr(&o)
        );
    };
    refused(
        nobody(&["object", "put", "tank", "mine", "k", &f("in")]),
        "open read-write container mine",
    );
    refused(
        nobody(&["container", "get-acl", "tank", "mine"]),
        "read the ACL of container mine",
    );

    // The owner grants more; then takes it away.
    ok(me(&[
        "container",
        "update-acl",
        "tank",
        "mine",
        "--entry",
        "A::nobody@:rwa",
    ]));
    ok(nobody(&["object", "put", "tank", "mine", "k2", &f("in")]));
    assert!(
        ok(nobody(&[
            "container",
            "get-acl",
            "tank",
            "mine",
            "--verbose"
        ]))
        .contains("# Allow::nobody@:Read/Write/Get-ACL\nA::nobody@:rwa\n")
    );
    refused(
        nobody(&[
            "container",
            "update-acl",
            "tank",
            "mine",
            "--entry",
            "A::nobody@:rwaA",
        ]),
        "change the ACL of container mine",
    );
    ok(me(&[
        "container",
        "delete-acl",
        "tank",
        "mine",
        "--principal",
        "u:nobody@",
    ]));
    refused(
        nobody(&["object", "get", "tank", "mine", "k", &f("got2")]),
        "open container mine",
    );
    // Bad entries change nothing.
    let o = me(&[
        "container",
        "update-acl",
        "tank",
        "mine",
        "--entry",
        "A::x@:c",
    ]);
    assert!(
        stderr(&o).contains("permission 'c' is not one of"),
        "{}",
        stderr(&o)
    );

    // Destroying needs the pool's `d` (or `w`, which includes it) or the container's `d`.
    ok(sys.dmg(&["-i", "pool", "update-acl", "tank", "-e", "A::nobody@:r"]));
    // (with only `r` on the pool, nobody cannot even connect read-write to destroy)
    refused(
        nobody(&["container", "destroy", "tank", "mine"]),
        "connect to pool tank read-write",
    );
    ok(sys.dmg(&["-i", "pool", "update-acl", "tank", "-e", "A::nobody@:rw"]));

    // A container nobody creates is nobody's; the owner can hand one over.
    ok(nobody(&["container", "create", "tank", "theirs"]));
    assert!(
        ok(nobody(&["container", "get-acl", "tank", "theirs"])).starts_with("# Owner: nobody@\n")
    );
    ok(me(&[
        "container",
        "set-owner",
        "tank",
        "mine",
        "--user",
        "nobody",
    ]));
    ok(nobody(&["object", "get", "tank", "mine", "k", &f("got3")]));
    ok(nobody(&["container", "destroy", "tank", "theirs"]));

    // An open container is destroyed only by force, which evicts its handles: a client with
    // it open (in this process, through the agent) loses it.
    ok(me(&["container", "create", "tank", "busy"]));
    let target = local_target(&sys);
    let Connected {
        cont: mine,
        session: mut s,
        ..
    } = connect_here(&target, &a, "tank", "busy", daos_client::container::FLAG_RO);
    s.fetch(mine.uuid, 7, b"d", b"a").expect("open: served");
    let o = me(&["container", "destroy", "tank", "busy"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "DER_BUSY(-1012): container busy has 1 open handle(s); close them first or destroy with --force"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(open_handles(&sys, "tank"), 2, "the refusal changed nothing");
    ok(me(&["container", "destroy", "--force", "tank", "busy"]));
    let e = s.fetch(mine.uuid, 7, b"d", b"a").expect_err("evicted");
    assert_eq!(e.der(), Some(daos_wire::der::NO_HDL), "{e}");
    assert_eq!(open_handles(&sys, "tank"), 1, "the pool handle stays");
}
