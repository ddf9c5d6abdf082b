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

#[test]
fn insecure_agent_serves_credentials_of_the_caller_to_many_clients_and_restarts() {
    let _ = ok(run("daos_agent", &["version"], &[]));
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
    sys.stop(&mut server);
    let cached = a.agent().attach_info(true).expect("cached attach info");
    assert_eq!(cached.rank_uris.len(), 1);
}
