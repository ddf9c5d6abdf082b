//! `daos_engine` bring-up over dRPC, with this test standing where daos_server's socket is:
//! NotifyReady arrives, SetRank and SetUp go back, the engine prints DAOS's banner, answers
//! PingRank, refuses a second rank, and stops cleanly on SIGTERM. The full flow through the
//! real daos_server is tested with it.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use daos_drpc::mgmt::{DaosResp, PingRankReq, SetRankReq};
use daos_drpc::srv::NotifyReadyReq;
use daos_drpc::{Client, MgmtMethod, Registry, SrvMethod};
use daos_tests::*;
use nix::sys::signal::Signal;
use prost::Message;

fn control_plane(dir: &Path) -> (daos_drpc::ServerHandle, mpsc::Receiver<NotifyReadyReq>) {
    let (tx, rx) = mpsc::sync_channel(4);
    let mut r = Registry::new();
    r.method(SrvMethod::NotifyReady, move |_, body| {
        let req = NotifyReadyReq::decode(body)?;
        let _ = tx.try_send(req);
        Ok(Vec::new())
    });
    (
        daos_drpc::serve(&dir.join("daos_server.sock"), r).expect("serve"),
        rx,
    )
}

fn status(c: &mut Client, method: MgmtMethod, body: Vec<u8>) -> i32 {
    DaosResp::decode(c.call(method, &body).expect("call").as_slice())
        .expect("resp")
        .status
}

#[test]
fn engine_notifies_ready_takes_its_rank_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cp, notified) = control_plane(dir.path());
    let d = dir.path().to_str().expect("utf8");
    let port = free_port().to_string();
    let mut engine = Proc::start(
        "daos_engine",
        &[
            "-t",
            "1",
            "-x",
            "0",
            "-I",
            "0",
            "-d",
            d,
            "-g",
            "daos_server",
            "-s",
            d,
        ],
        &[
            ("D_PROVIDER", "ofi+tcp;ofi_rxm"),
            ("D_INTERFACE", "lo"),
            ("D_PORT", port.as_str()),
            ("DAOS_TARGET_OVERSUBSCRIBE", "1"),
        ],
        dir.path(),
    );
    let req = notified
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no NotifyReady: {}", log(dir.path(), "daos_engine", "err")));
    assert_eq!(req.uri, format!("ofi+tcp;ofi_rxm://127.0.0.1:{port}"));
    assert_eq!((req.ntgts, req.nctxs, req.instance_idx), (1, 2, 0));
    assert!(req.incarnation > 0);
    let sock = Path::new(&req.drpc_listener_sock).to_path_buf();
    assert_eq!(
        sock,
        dir.path()
            .join(format!("daos_engine_{}.sock", engine.pid()))
    );

    let mut c = Client::connect(&sock).expect("engine socket");
    assert_eq!(
        status(&mut c, MgmtMethod::SetUp, vec![]),
        -1015,
        "SetUp before SetRank is refused"
    );
    assert_eq!(
        status(
            &mut c,
            MgmtMethod::SetRank,
            SetRankReq {
                rank: 5,
                map_version: 1,
                daos_version: 0
            }
            .encode_to_vec()
        ),
        0
    );
    assert_eq!(
        status(
            &mut c,
            MgmtMethod::SetRank,
            SetRankReq {
                rank: 5,
                map_version: 2,
                daos_version: 0
            }
            .encode_to_vec()
        ),
        0,
        "same rank again is fine"
    );
    assert_eq!(
        status(
            &mut c,
            MgmtMethod::SetRank,
            SetRankReq {
                rank: 6,
                map_version: 2,
                daos_version: 0
            }
            .encode_to_vec()
        ),
        -1003,
        "a different rank is refused"
    );
    assert_eq!(status(&mut c, MgmtMethod::SetUp, vec![]), 0);
    let banner = format!(
        "DAOS I/O Engine (v{}) process {} started on rank 5 with 1 target, 0 helper XS, firstcore ",
        env!("CARGO_PKG_VERSION"),
        engine.pid()
    );
    assert!(
        wait_until(Duration::from_secs(10), || log(
            dir.path(),
            "daos_engine",
            "out"
        )
        .contains(&banner)),
        "{}",
        log(dir.path(), "daos_engine", "out")
    );
    assert_eq!(
        status(
            &mut c,
            MgmtMethod::PingRank,
            PingRankReq { rank: 5 }.encode_to_vec()
        ),
        0,
        "every shard answers"
    );

    engine.signal(Signal::SIGTERM);
    assert_eq!(
        engine.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        log(dir.path(), "daos_engine", "err")
    );
    assert!(!sock.exists(), "engine socket removed");
}

#[test]
fn engine_refuses_more_shards_than_cores_with_daos_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    let out = run(
        "daos_engine",
        &["-t", "64", "-x", "0", "-d", d],
        &[("DAOS_TARGET_OVERSUBSCRIBE", "0")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot start engine with 64 targets 0 xs_helpers on"),
        "{err}"
    );
    assert!(err.contains("DAOS_TARGET_OVERSUBSCRIBE=1"), "{err}");
}

#[test]
fn engine_without_daos_server_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    let out = run(
        "daos_engine",
        &["-t", "1", "-x", "0", "-d", d],
        &[
            ("DAOS_TARGET_OVERSUBSCRIBE", "1"),
            ("D_INTERFACE", "lo"),
            ("D_PORT", &free_port().to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach daos_server at") && err.contains("is daos_server running"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".sock")),
        "no socket left behind"
    );
}

#[test]
fn engine_without_a_fabric_port_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cp, _rx) = control_plane(dir.path());
    let d = dir.path().to_str().expect("utf8");
    let out = run(
        "daos_engine",
        &["-t", "1", "-x", "0", "-d", d],
        &[("DAOS_TARGET_OVERSUBSCRIBE", "1"), ("D_INTERFACE", "lo")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no fabric port (D_PORT)") && err.contains("fabric_iface_port"),
        "{err}"
    );
}

#[test]
fn engine_with_an_unknown_interface_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cp, _rx) = control_plane(dir.path());
    let d = dir.path().to_str().expect("utf8");
    let out = run(
        "daos_engine",
        &["-t", "1", "-x", "0", "-d", d],
        &[
            ("DAOS_TARGET_OVERSUBSCRIBE", "1"),
            ("D_INTERFACE", "nosuch0"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fabric interface \"nosuch0\" not found")
    );
}
