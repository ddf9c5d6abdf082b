#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test
//! dRPC over real SEQPACKET sockets in temp dirs: round trips, statuses, sequences, malformed
//! datagrams, socket files and socket-directory errors.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use daos_drpc::frame::{HEADER_LEN, Header, MAX_CHUNK_DATA, MAX_DATAGRAM};
use daos_drpc::proto::{Call, Response};
use daos_drpc::socket::{SocketDirError, check_socket_dir, remove_stale_sockets};
use daos_drpc::*;
use prost::Message;

struct Fixture {
    _dir: tempfile::TempDir,
    server: ServerHandle,
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.module(Module::Sec);
    r.method(MgmtMethod::PingRank, |_, body| Ok(body.to_vec()));
    r.method(MgmtMethod::SetRank, |_, _| {
        Err(HandlerError::Failure("no".into()))
    });
    r.method(MgmtMethod::SetUp, |_, _| {
        Err(HandlerError::BadPayload("bad".into()))
    });
    r.method(MgmtMethod::PrepShutdown, |_, _| {
        Err(HandlerError::Marshal("cannot".into()))
    });
    r.method(MgmtMethod::KillRank, |_, _| panic!("handler bug"));
    r.method(SrvMethod::NotifyReady, |ctx, _| {
        Ok(ctx
            .peer
            .map(|p| p.pid.to_le_bytes().to_vec())
            .unwrap_or_default())
    });
    // A large answer, to exercise chunked responses.
    r.method(SrvMethod::ListPools, |_, body| {
        Ok(body
            .iter()
            .rev()
            .copied()
            .cycle()
            .take(3 * MAX_CHUNK_DATA + 5)
            .collect())
    });
    r
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("daos_server.sock"), registry()).unwrap();
    Fixture { _dir: dir, server }
}

fn client(f: &Fixture) -> Client {
    let mut c = Client::connect(f.server.path()).unwrap();
    c.set_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// The server still answers on a fresh connection.
fn still_serving(f: &Fixture) {
    let mut c = client(f);
    assert_eq!(c.call(MgmtMethod::PingRank, b"ok?").unwrap(), b"ok?");
}

#[test]
fn small_round_trip() {
    let f = start();
    let mut c = client(&f);
    assert_eq!(c.call(MgmtMethod::PingRank, b"hello").unwrap(), b"hello");
    assert_eq!(c.call(MgmtMethod::PingRank, b"").unwrap(), b"");
}

#[test]
fn chunked_round_trip_over_128k_both_ways() {
    let f = start();
    let mut c = client(&f);
    let big: Vec<u8> = (0..(2 * MAX_DATAGRAM + 1234))
        .map(|i| (i % 253) as u8)
        .collect();
    assert_eq!(
        c.call(MgmtMethod::PingRank, &big).unwrap(),
        big,
        "request and response chunked"
    );
    let answer = c.call(SrvMethod::ListPools, b"abc").unwrap();
    assert_eq!(answer.len(), 3 * MAX_CHUNK_DATA + 5);
    assert_eq!(&answer[..6], b"cbacba");
}

#[test]
fn sequences_increase_per_connection_and_are_echoed() {
    let f = start();
    let mut c = client(&f);
    for expected in 1..=3 {
        let r = c
            .call_raw(Module::Mgmt as i32, MgmtMethod::PingRank.id(), b"x")
            .unwrap();
        assert_eq!(r.sequence, expected);
    }
    let mut other = client(&f);
    assert_eq!(
        other
            .call_raw(Module::Mgmt as i32, MgmtMethod::PingRank.id(), b"")
            .unwrap()
            .sequence,
        1
    );
    let call = Call {
        module: 2,
        method: 225,
        sequence: 4242,
        body: vec![],
    };
    other.send_raw(&call.encode_to_vec()).unwrap();
    let r = Response::decode(other.receive().unwrap().as_slice()).unwrap();
    assert_eq!(r.sequence, 4242);
}

#[test]
fn statuses_for_unknown_module_method_and_handler_errors() {
    let f = start();
    let mut c = client(&f);
    let status = |c: &mut Client, module: i32, method: i32| {
        Status::try_from(c.call_raw(module, method, b"").unwrap().status).unwrap()
    };
    assert_eq!(status(&mut c, 9, 901), Status::UnknownModule);
    assert_eq!(status(&mut c, 2, 299), Status::UnknownMethod);
    assert_eq!(
        status(&mut c, 4, 401),
        Status::UnknownMethod,
        "registered module without methods"
    );
    assert_eq!(status(&mut c, 2, MgmtMethod::SetRank.id()), Status::Failure);
    assert_eq!(
        status(&mut c, 2, MgmtMethod::SetUp.id()),
        Status::FailedUnmarshalPayload
    );
    assert_eq!(
        status(&mut c, 2, MgmtMethod::PrepShutdown.id()),
        Status::FailedMarshal
    );
    assert_eq!(
        status(&mut c, 2, MgmtMethod::KillRank.id()),
        Status::Failure,
        "a panicking handler answers FAILURE"
    );
    match c.call(MgmtMethod::SetRank, b"") {
        Err(DrpcError::Status {
            status: Status::Failure,
            module: 2,
            method: 202,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    still_serving(&f);
}

#[test]
fn handlers_see_the_peer_process() {
    let f = start();
    let mut c = client(&f);
    let pid = c.call(SrvMethod::NotifyReady, b"").unwrap();
    assert_eq!(pid, std::process::id().to_le_bytes());
}

#[test]
fn undecodable_call_gets_failed_unmarshal_call_with_sequence_minus_one() {
    let f = start();
    let mut c = client(&f);
    c.send_raw(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap();
    let r = Response::decode(c.receive().unwrap().as_slice()).unwrap();
    assert_eq!(r.sequence, -1);
    assert_eq!(r.status, Status::FailedUnmarshalCall as i32);
    // The connection stays usable.
    assert_eq!(c.call(MgmtMethod::PingRank, b"after").unwrap(), b"after");
}

fn datagram(h: Header, data: &[u8]) -> Vec<u8> {
    let mut b = [0u8; HEADER_LEN];
    h.encode(&mut b);
    let mut v = b.to_vec();
    v.extend_from_slice(data);
    v
}

/// Sends datagrams and expects the server to hang up on them, then to keep serving others.
fn expect_disconnect(f: &Fixture, datagrams: &[Vec<u8>]) {
    let mut c = client(f);
    for d in datagrams {
        c.send_datagram(d).unwrap();
    }
    match c.receive() {
        Err(DrpcError::Disconnected) => {}
        other => panic!("expected a clean disconnect, got {other:?}"),
    }
    still_serving(f);
}

fn h(total: u64, chunk: u64, idx: u32, n: u32) -> Header {
    Header {
        total_data_size: total,
        chunk_data_size: chunk,
        chunk_idx: idx,
        total_chunks: n,
    }
}

#[test]
fn malformed_datagrams_close_the_connection_cleanly() {
    let f = start();
    let call = Call {
        module: 2,
        method: 225,
        sequence: 1,
        body: vec![1; 10],
    }
    .encode_to_vec();
    let n = call.len() as u64;
    // Short header.
    expect_disconnect(&f, &[vec![1, 2, 3]]);
    // Chunk size in the header disagrees with the datagram.
    expect_disconnect(&f, &[datagram(h(n, n + 1, 0, 1), &call)]);
    // First chunk is not chunk 0.
    expect_disconnect(&f, &[datagram(h(n, n, 1, 2), &call)]);
    // Out-of-order second chunk.
    expect_disconnect(
        &f,
        &[
            datagram(h(2 * n, n, 0, 2), &call),
            datagram(h(2 * n, n, 2, 2), &call),
        ],
    );
    // Totals change between chunks.
    expect_disconnect(
        &f,
        &[
            datagram(h(2 * n, n, 0, 2), &call),
            datagram(h(2 * n + 1, n, 1, 2), &call),
        ],
    );
    // Chunks overflow the announced size.
    expect_disconnect(&f, &[datagram(h(n - 1, n, 0, 1), &call)]);
    // Last chunk leaves the message short.
    expect_disconnect(&f, &[datagram(h(n + 5, n, 0, 1), &call)]);
    // Zero chunks.
    expect_disconnect(&f, &[datagram(h(n, n, 0, 0), &call)]);
    // A message bigger than any dRPC message may be.
    expect_disconnect(&f, &[datagram(h(u64::MAX, n, 0, 1), &call)]);
    // An oversized datagram.
    expect_disconnect(&f, &[vec![0u8; MAX_DATAGRAM + 100]]);
}

#[test]
fn unfinished_message_is_dropped_after_the_chunk_timeout() {
    let f = start();
    let mut c = client(&f);
    c.set_timeout(Duration::from_secs(20)).unwrap();
    c.send_datagram(&datagram(h(100, 10, 0, 10), &[0; 10]))
        .unwrap();
    let t = Instant::now();
    match c.receive() {
        Err(DrpcError::Disconnected) => {}
        other => panic!("expected a disconnect, got {other:?}"),
    }
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    still_serving(&f);
}

#[test]
fn many_clients_in_parallel() {
    let f = start();
    std::thread::scope(|s| {
        for t in 0..16u8 {
            let f = &f;
            s.spawn(move || {
                let mut c = client(f);
                for i in 0..50u8 {
                    let body = [t, i, t ^ i];
                    assert_eq!(c.call(MgmtMethod::PingRank, &body).unwrap(), body);
                }
            });
        }
    });
}

#[test]
fn socket_file_is_0600_and_removed_on_stop() {
    let f = start();
    let path = f.server.path().to_path_buf();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let mut c = client(&f);
    let Fixture { _dir, server } = f;
    server.stop();
    assert!(!path.exists());
    assert!(
        c.call(MgmtMethod::PingRank, b"").is_err(),
        "connections end with the server"
    );
}

#[test]
fn a_stopping_server_leaves_a_newer_servers_socket_alone() {
    let f = start();
    let path = f.server.path().to_path_buf();
    // The old server's socket file is replaced by a newer server's (as when an operator
    // starts a new daos_server while the old one is still shutting down).
    std::fs::remove_file(&path).unwrap();
    let newer = serve(&path, registry()).expect("newer server");
    let Fixture { _dir, server } = f;
    server.stop();
    assert!(path.exists(), "the newer server's socket stays");
    let mut c = Client::connect(&path).unwrap();
    assert_eq!(c.call(MgmtMethod::PingRank, b"new").unwrap(), b"new");
    newer.stop();
    assert!(!path.exists());
}

#[test]
fn stale_socket_is_replaced_live_socket_and_other_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daos_server.sock");
    // A socket file with nobody listening: what a crashed daos_server leaves behind.
    drop(daos_drpc::socket::bind(&path).unwrap());
    assert!(path.exists());
    let server = serve(&path, registry()).expect("stale socket replaced");
    let mut c = Client::connect(&path).unwrap();
    assert_eq!(c.call(MgmtMethod::PingRank, b"new").unwrap(), b"new");

    // A socket someone still serves is never taken over.
    let live = serve(&path, registry())
        .err()
        .expect("a live socket is not stale")
        .to_string();
    assert!(live.contains("in use by a running process"), "{live}");
    assert_eq!(c.call(MgmtMethod::PingRank, b"still").unwrap(), b"still");
    drop(server);

    let file = dir.path().join("not_a_socket.sock");
    std::fs::write(&file, "data").unwrap();
    let err = serve(&file, registry()).err().unwrap().to_string();
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert!(file.exists(), "a regular file is never deleted");
}

#[test]
fn stale_engine_sockets_are_removed_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["daos_engine_1.sock", "daos_engine_2.sock", "other.sock"] {
        let l = daos_drpc::socket::bind(&dir.path().join(name)).unwrap();
        drop(l);
    }
    std::fs::write(dir.path().join("daos_engine_notes.txt"), "x").unwrap();
    let mut removed = remove_stale_sockets(dir.path(), &["daos_engine"]).unwrap();
    removed.sort();
    let names: Vec<String> = removed
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["daos_engine_1.sock", "daos_engine_2.sock"]);
    assert!(dir.path().join("other.sock").exists());
    assert!(dir.path().join("daos_engine_notes.txt").exists());
}

#[test]
fn socket_dir_errors_use_daos_wording() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = check_socket_dir(&missing).unwrap_err();
    assert!(matches!(e, SocketDirError::Missing { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("missing socket directory {}: ", missing.display())),
        "{e}"
    );
    assert!(e.fix().contains("never creates"));
    let server_err = serve(&missing.join("daos_server.sock"), registry())
        .err()
        .unwrap()
        .to_string();
    assert!(
        server_err.starts_with("dRPC server setup: missing socket directory"),
        "{server_err}"
    );

    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let e = check_socket_dir(&file).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("path {} not a directory", file.display())
    );
    check_socket_dir(dir.path()).unwrap();
}

#[test]
fn socket_dir_without_permission_is_reported() {
    if nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED socket_dir_without_permission_is_reported: root bypasses directory permissions"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let locked: PathBuf = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let e = check_socket_dir(&locked).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("permissions failure accessing socket directory"),
        "{e}"
    );
}

#[test]
fn connect_errors_name_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let e = Client::connect(&path).err().unwrap().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
}

#[test]
fn stop_returns_promptly_even_with_clients_connecting() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..30 {
        let path = dir.path().join(format!("s{round}.sock"));
        let server = serve(&path, registry()).unwrap();
        let p2 = path.clone();
        let hammer = std::thread::spawn(move || {
            for _ in 0..20 {
                if let Ok(mut c) = Client::connect(&p2) {
                    let _ = c.set_timeout(Duration::from_millis(200));
                    let _ = c.call(MgmtMethod::PingRank, b"x");
                }
            }
        });
        std::thread::sleep(Duration::from_millis((round % 5) as u64));
        let t = Instant::now();
        server.stop();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "round {round}: stop took {:?}",
            t.elapsed()
        );
        assert!(!path.exists());
        hammer.join().unwrap();
    }
}

/// A server that accepts nothing (stopped): once its backlog is full a plain connect would
/// wait as long as it stays so; `connect_within` gives up after its timeout, and a call on a
/// connection it did make times out too.
#[test]
fn connect_within_gives_up_on_a_server_that_accepts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stopped.sock");
    let _listener = daos_drpc::socket::bind(&path).unwrap();
    let within = Duration::from_millis(200);
    let mut first = Client::connect_within(&path, within).unwrap();
    let t = Instant::now();
    assert!(matches!(
        first.call(MgmtMethod::PingRank, b"x"),
        Err(DrpcError::Timeout(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(5));
    let mut held = vec![first];
    let t = Instant::now();
    let refused = loop {
        match Client::connect_within(&path, within) {
            Ok(c) => held.push(c),
            Err(e) => break e,
        }
        assert!(held.len() < 10_000, "the backlog never filled");
    };
    assert!(matches!(refused, DrpcError::Connect { .. }), "{refused}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn daos_2_6_clients_bare_datagrams_are_answered_in_kind() {
    use std::io::{Read, Write};
    let f = start();
    // DAOS 2.6's libdaos and daos_agent send each call as the bare protobuf, one datagram,
    // and read the answer the same way.
    let mut s = daos_drpc::socket::connect(f.server.path()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    for seq in [7, 8] {
        let call = Call {
            module: Module::Mgmt as i32,
            method: MgmtMethod::PingRank.id(),
            sequence: seq,
            body: b"hello".to_vec(),
        }
        .encode_to_vec();
        assert_eq!(s.write(&call).unwrap(), call.len());
        let n = s.read(&mut buf).unwrap();
        let r = Response::decode(&buf[..n]).expect("a bare response");
        assert_eq!(r.sequence, seq);
        assert_eq!(r.status, Status::Success as i32);
        assert_eq!(r.body, b"hello");
    }
    // An unknown method in the bare framing gets DAOS's status, in the bare framing.
    let call = Call {
        module: Module::Mgmt as i32,
        method: 9999,
        sequence: 9,
        body: Vec::new(),
    }
    .encode_to_vec();
    s.write_all(&call).unwrap();
    let n = s.read(&mut buf).unwrap();
    let r = Response::decode(&buf[..n]).expect("a bare response");
    assert_eq!((r.sequence, r.status), (9, Status::UnknownMethod as i32));
    // The chunked framing still works beside it.
    still_serving(&f);
}
