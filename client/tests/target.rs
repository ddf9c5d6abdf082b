//! A target shard (real io_uring reactor, libfabric tcp;ofi_rxm endpoint on loopback, pool
//! store on files) served to a real client session, in one process.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use daos_client::{ClientError, Session, SessionOpts, Swap};
use daos_engine::wire::{PunchWhat, der};

#[test]
fn values_round_trip_through_two_targets() {
    let f = fixture(2);
    let mut s = session(&f);
    s.ping_all().expect("ping");
    let cont = s.cont_create("c1", [7; 16]).expect("create");
    let mut seen = [0usize; 2];
    for i in 0..200u128 {
        let value: Vec<u8> = (0..(i as usize * 97) % 9000 + 1)
            .map(|b| (b as u128 ^ i) as u8)
            .collect();
        s.update(cont, i, b"dk", b"ak", &value).expect("update");
        seen[s.map().place(i)] += 1;
    }
    assert!(seen.iter().all(|n| *n > 50), "objects spread: {seen:?}");
    for i in 0..200u128 {
        let value: Vec<u8> = (0..(i as usize * 97) % 9000 + 1)
            .map(|b| (b as u128 ^ i) as u8)
            .collect();
        assert_eq!(
            s.fetch(cont, i, b"dk", b"ak").expect("fetch"),
            Some(value),
            "oid {i}"
        );
    }
    // Large values travel by RMA between registered buffers.
    assert!(s.uses_rma(), "tcp;ofi_rxm has RMA");
    for (oid, len) in [
        (500u128, 16 << 10),
        (501, (16 << 10) + 1),
        (502, 200_000),
        (503, 1 << 20),
    ] {
        let v: Vec<u8> = (0..len).map(|i| (i * 7 + oid as usize) as u8).collect();
        s.update(cont, oid, b"big", b"v", &v).expect("bulk update");
        assert!(
            s.fetch(cont, oid, b"big", b"v").expect("bulk fetch") == Some(v),
            "{len}-byte value"
        );
    }
    // 1 MiB array extent, read back in part.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    s.write(cont, 999, b"d", b"a", 4096, &big).expect("write");
    let back = s.read(cont, 999, b"d", b"a", 0, 8192).expect("read");
    assert_eq!(&back[..4096], &[0u8; 4096][..], "a hole reads as zeros");
    assert_eq!(&back[4096..], &big[..4096]);
    let all = s
        .read(cont, 999, b"d", b"a", 4096, 1 << 20)
        .expect("bulk read");
    assert!(all == big, "a 1 MiB extent read by RMA");
    assert_eq!(s.list_objects(cont).expect("list").len(), 205);
    drop(f.shards);
}

#[test]
fn punch_enumerate_and_containers() {
    let f = fixture(2);
    let mut s = session(&f);
    let a = s.cont_create("a", [1; 16]).expect("a");
    let b = s.cont_create("b", [2; 16]).expect("b");
    assert!(matches!(
        s.cont_create("a", [3; 16]),
        Err(ClientError::Exists(_))
    ));
    for d in ["d1", "d2", "d3"] {
        for k in ["x", "y"] {
            s.update(a, 5, d.as_bytes(), k.as_bytes(), b"v")
                .expect("update");
        }
    }
    s.update(b, 5, b"other", b"x", b"v").expect("update b");
    assert_eq!(
        s.list_dkeys(a, 5).expect("dkeys"),
        [b"d1".to_vec(), b"d2".to_vec(), b"d3".to_vec()]
    );
    s.punch(a, 5, PunchWhat::Dkey(b"d2")).expect("punch dkey");
    s.punch(a, 5, PunchWhat::Akey(b"d3", b"x"))
        .expect("punch akey");
    assert_eq!(
        s.list_dkeys(a, 5).expect("dkeys"),
        [b"d1".to_vec(), b"d3".to_vec()]
    );
    assert_eq!(s.list_akeys(a, 5, b"d3").expect("akeys"), [b"y".to_vec()]);
    assert_eq!(s.fetch(a, 5, b"d2", b"x").expect("fetch"), None);
    assert_eq!(
        s.list_dkeys(b, 5).expect("b untouched"),
        [b"other".to_vec()]
    );
    s.punch(a, 5, PunchWhat::Object).expect("punch object");
    assert!(s.list_dkeys(a, 5).expect("dkeys").is_empty());
    let labels: Vec<String> = s
        .cont_list()
        .expect("list")
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(labels, ["a", "b"]);
    assert_eq!(
        s.cont_query(&daos_client::uuid_text(&[2; 16]))
            .expect("by uuid")
            .0,
        "b"
    );
    s.cont_destroy("b").expect("destroy");
    let e = s.list_objects(b).expect_err("b is gone");
    assert_eq!(e.der(), Some(der::NONEXIST), "{e}");
    assert!(matches!(s.cont_query("b"), Err(ClientError::NotFound(_))));
    drop(f.shards);
}

#[test]
fn an_unknown_pool_and_a_silent_target_fail_clearly() {
    let f = fixture(1);
    let mut other = (*f.map).clone();
    other.uuid = [9; 16];
    let mut s = Session::open(Arc::new(other), SessionOpts::default()).expect("session");
    let err = s
        .update([1; 16], 1, b"d", b"a", b"v")
        .expect_err("no such pool");
    assert_eq!(err.der(), Some(der::NONEXIST), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    drop(f.shards);
    let mut s = Session::open(
        f.map.clone(),
        SessionOpts {
            timeout: Duration::from_millis(300),
            ..SessionOpts::default()
        },
    )
    .expect("session");
    let err = s
        .update([1; 16], 1, b"d", b"a", b"v")
        .expect_err("target is gone");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
}

/// A raw fabric endpoint that sends hand-made messages to a target, bypassing the client's
/// own checks, as a foreign or malicious client would.
struct Raw {
    ep: daos_fabric::RdmEndpoint,
    me: Vec<u8>,
    peer: daos_fabric::Peer,
}

impl Raw {
    fn open(f: &Fixture) -> Raw {
        let t = &f.map.targets[0];
        let mut ep = daos_fabric::RdmEndpoint::open("tcp;ofi_rxm", None, None, 8192, 4, 4)
            .expect("endpoint");
        let me = ep.name().expect("name");
        let peer = ep
            .insert_peer(&daos_fabric::sockaddr_in(
                t.node.parse().expect("ip"),
                t.port,
            ))
            .expect("peer");
        Raw { ep, me, peer }
    }

    fn send(&mut self, msg: &[u8]) {
        loop {
            match self.ep.send(self.peer, msg) {
                Ok(()) => break,
                Err(daos_fabric::EndpointError::Again) => {
                    self.ep.poll(|_| {}).expect("poll");
                }
                Err(e) => panic!("send: {e}"),
            }
        }
    }

    fn reply(&mut self) -> Vec<u8> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut got = None;
        while got.is_none() {
            assert!(std::time::Instant::now() < deadline, "no reply");
            self.ep.poll(|m| got = Some(m.to_vec())).expect("poll");
        }
        got.expect("reply")
    }

    /// Sends `body` as operation `op` and returns the reply's status and message.
    fn call(
        &mut self,
        f: &Fixture,
        op: daos_engine::wire::Op,
        cont: [u8; 16],
        body: impl FnOnce(&mut daos_engine::wire::Writer<'_>),
    ) -> (i32, String) {
        self.call_with(f, op, cont, 0, body)
    }

    /// Like [`Raw::call`], under pool handle `handle`.
    fn call_with(
        &mut self,
        f: &Fixture,
        op: daos_engine::wire::Op,
        cont: [u8; 16],
        handle: u64,
        body: impl FnOnce(&mut daos_engine::wire::Writer<'_>),
    ) -> (i32, String) {
        use daos_engine::wire::{self, Header, Writer};
        let mut buf = vec![0u8; 4096];
        let h = Header::request(op, 5, f.map.uuid, cont, &self.me).with_handles(handle, 0);
        let mut w = Writer::body(&mut buf);
        body(&mut w);
        let n = w.finish(h).expect("encode");
        self.send(&buf[..n]);
        let reply = self.reply();
        let rh = Header::read(&reply).expect("header");
        (
            rh.status,
            wire::error_message(rh.body(&reply).expect("body")),
        )
    }
}

#[test]
fn out_of_range_requests_get_daos_errors_at_once() {
    use daos_engine::wire::Op;
    let f = fixture(1);
    let mut s = session(&f);
    let cont = s.cont_create("c", [4; 16]).expect("container");
    // The client refuses them before sending.
    let e = s
        .write(cont, 1, b"d", b"a", u64::MAX - 5, &[1; 8])
        .expect_err("past the last offset");
    assert_eq!(e.der(), Some(der::OVERFLOW), "{e}");
    let e = s
        .read(cont, 1, b"d", b"a", u64::MAX - 5, 8)
        .expect_err("past the last offset");
    assert_eq!(e.der(), Some(der::OVERFLOW), "{e}");
    let e = s
        .read(cont, 1, b"d", b"a", 0, (1 << 20) + 1)
        .expect_err("over 1 MiB");
    assert_eq!(e.der(), Some(der::REC2BIG), "{e}");
    assert!(e.to_string().contains("read in parts"), "{e}");
    let e = s
        .update(cont, 1, &[b'k'; 1025], b"a", b"v")
        .expect_err("long key");
    assert_eq!(e.der(), Some(der::KEY2BIG), "{e}");
    // The last bytes of the array are fine.
    s.write(cont, 1, b"d", b"a", u64::MAX - 8, &[7; 8])
        .expect("the last bytes");
    assert_eq!(
        s.read(cont, 1, b"d", b"a", u64::MAX - 8, 8).expect("read"),
        vec![7; 8]
    );

    // The target checks the same on its own, answers at once, and keeps serving.
    let mut raw = Raw::open(&f);
    let (code, text) = raw.call(&f, Op::WriteExtent, cont, |w| {
        w.u128(1)
            .key(b"d")
            .key(b"a")
            .u64(u64::MAX - 5)
            .value(&[1; 8]);
    });
    assert_eq!(code, der::OVERFLOW, "{text}");
    let (code, text) = raw.call(&f, Op::ReadExtent, cont, |w| {
        w.u128(1).key(b"d").key(b"a").u64(0).u32(u32::MAX);
    });
    assert_eq!(code, der::REC2BIG, "{text}");
    let (code, text) = raw.call(&f, Op::ReadExtent, cont, |w| {
        w.u128(1).key(b"d").key(b"a").u64(u64::MAX - 2).u32(8);
    });
    assert_eq!(code, der::OVERFLOW, "{text}");
    let (code, text) = raw.call(&f, Op::Update, cont, |w| {
        w.u128(1)
            .put(&2000u16.to_le_bytes())
            .put(&[b'k'; 2000])
            .key(b"a")
            .value(b"v");
    });
    assert_eq!(code, der::KEY2BIG, "{text}");
    assert!(text.contains("2000 bytes"), "{text}");
    assert_eq!(
        s.read(cont, 1, b"d", b"a", u64::MAX - 8, 8)
            .expect("still serving"),
        vec![7; 8]
    );
    drop(f.shards);
}

#[test]
fn a_swap_answers_with_the_value_it_replaced() {
    let f = fixture(1);
    let mut s = session(&f);
    let cont = s.cont_create("c", [6; 16]).expect("container");
    let done = |r: Result<Swap, ClientError>| match r.expect("swap") {
        Swap::Done { epoch, replaced } => (epoch, replaced),
        Swap::Restart { error, .. } => panic!("refused: {error}"),
    };
    let (e1, old) = done(s.swap(cont, 3, b"m", b"cur", b"one"));
    assert_eq!(old, vec![None]);
    let (e2, old) = done(s.swap(cont, 3, b"m", b"cur", b"two"));
    assert!(e2 > e1);
    assert_eq!(old, vec![Some(b"one".to_vec())]);
    // A swap at an epoch below the value's is refused (nothing replaced), with the newer
    // epoch in the session's clock: the next swap goes above it.
    let mut behind = session(&f);
    s.witness(daos_wire::clock_ns() + 500_000_000);
    let (e3, _) = done(s.swap(cont, 3, b"m", b"cur", b"three"));
    match behind.swap(cont, 3, b"m", b"cur", b"four").expect("swap") {
        Swap::Restart { applied, error } => {
            assert!(!applied);
            assert_eq!(error.der(), Some(der::TX_RESTART), "{error}");
        }
        Swap::Done { .. } => panic!("a swap below the value's epoch replaced it"),
    }
    let (e4, old) = done(behind.swap(cont, 3, b"m", b"cur", b"four"));
    assert!(e4 > e3, "{e4} > {e3}");
    assert_eq!(old, vec![Some(b"three".to_vec())]);
    // Two sessions can choose one epoch (each one past the newest it saw): the second
    // swap at it is refused too (it is not the same change), and goes again above.
    let old = loop {
        match s.swap(cont, 3, b"m", b"cur", b"two").expect("swap") {
            Swap::Done { replaced, .. } => break replaced,
            Swap::Restart { applied, error } => {
                assert!(!applied, "{error}");
                assert_eq!(error.der(), Some(der::TX_RESTART), "{error}");
            }
        }
    };
    assert_eq!(old, vec![Some(b"four".to_vec())]);
    assert_eq!(
        s.fetch(cont, 3, b"m", b"cur").expect("fetch").as_deref(),
        Some(&b"two"[..])
    );
    let e = s
        .swap(cont, 3, b"m", b"cur", &[0; 5000])
        .expect_err("only small values");
    assert_eq!(e.der(), Some(der::INVAL), "{e}");
    drop(f.shards);
}

#[test]
fn a_read_covers_only_the_extents_it_overlaps() {
    // 64 extents of 64 KiB, read back one by one and whole: each read sees its own bytes
    // (a newer overlapping write wins), holes are zero.
    let f = fixture(1);
    let mut s = session(&f);
    let cont = s.cont_create("c", [8; 16]).expect("container");
    let chunk = 64 << 10;
    let bytes = |i: usize| -> Vec<u8> { (0..chunk).map(|b| (b * 3 + i * 11) as u8).collect() };
    for i in 0..64usize {
        s.write(cont, 9, b"d", b"a", (i * chunk) as u64, &bytes(i))
            .expect("write");
    }
    // Overwrite the middle of extents 10 and 11.
    s.write(
        cont,
        9,
        b"d",
        b"a",
        (10 * chunk + chunk / 2) as u64,
        &vec![0xAB; chunk],
    )
    .expect("overwrite");
    for i in 0..64usize {
        let got = s
            .read(cont, 9, b"d", b"a", (i * chunk) as u64, chunk as u32)
            .expect("read");
        let mut want = bytes(i);
        if i == 10 {
            want[chunk / 2..].fill(0xAB);
        } else if i == 11 {
            want[..chunk / 2].fill(0xAB);
        }
        assert!(got == want, "extent {i}");
    }
    let past = s
        .read(cont, 9, b"d", b"a", (64 * chunk) as u64, 4096)
        .expect("past the end");
    assert_eq!(past, vec![0; 4096]);
    drop(f.shards);
}

#[test]
fn another_protocol_version_gets_a_clear_refusal_and_garbage_is_ignored() {
    use daos_engine::wire::{self, Header, Op};
    use daos_fabric::RdmEndpoint;
    let f = fixture(1);
    let t = &f.map.targets[0];
    let mut ep = RdmEndpoint::open("tcp;ofi_rxm", None, None, 4096, 4, 4).expect("endpoint");
    let me = ep.name().expect("name");
    let peer = ep
        .insert_peer(&daos_fabric::sockaddr_in(
            t.node.parse().expect("ip"),
            t.port,
        ))
        .expect("peer");
    let wait_reply = |ep: &mut RdmEndpoint| -> Vec<u8> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut got = None;
        while got.is_none() {
            assert!(std::time::Instant::now() < deadline, "no reply");
            ep.poll(|m| got = Some(m.to_vec())).expect("poll");
        }
        got.expect("reply")
    };
    let send = |ep: &mut RdmEndpoint, msg: &[u8]| loop {
        match ep.send(peer, msg) {
            Ok(()) => break,
            Err(daos_fabric::EndpointError::Again) => {
                ep.poll(|_| {}).expect("poll");
            }
            Err(e) => panic!("send: {e}"),
        }
    };
    // Garbage first: the target drops it and keeps serving.
    send(&mut ep, b"not a daos-rs message");
    let mut buf = vec![0u8; 512];
    let mut h = Header::request(Op::Ping, 77, f.map.uuid, [0; 16], &me);
    h.version = wire::VERSION + 1;
    let n = wire::encode_request(&mut buf, h, &wire::Request::Ping).expect("encode");
    send(&mut ep, &buf[..n]);
    let reply = wait_reply(&mut ep);
    let rh = Header::read(&reply).expect("header");
    assert_eq!(
        (rh.tag, rh.status, rh.version),
        (77, der::PROTO, wire::VERSION)
    );
    let text = wire::error_message(rh.body(&reply).expect("body"));
    assert!(
        text.contains(&format!(
            "the client speaks version {}, this target version {}",
            wire::VERSION + 1,
            wire::VERSION
        )),
        "{text}"
    );
    drop(f.shards);
}

#[test]
fn io_to_an_unknown_or_destroyed_container_is_refused() {
    let f = fixture(2);
    let mut s = session(&f);
    for value in [&b"small"[..], &[7u8; 40_000][..]] {
        let e = s
            .update([0x77; 16], 1, b"d", b"a", value)
            .expect_err("never created");
        assert_eq!(e.der(), Some(der::NONEXIST), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
    let e = s
        .fetch([0x77; 16], 1, b"d", b"a")
        .expect_err("never created");
    assert_eq!(e.der(), Some(der::NONEXIST), "{e}");
    let c = s.cont_create("c", [0x55; 16]).expect("create");
    let mut targets = [false; 2];
    for oid in 0..16u128 {
        s.update(c, oid, b"d", b"a", b"v1").expect("update");
        targets[s.map().place(oid)] = true;
    }
    assert_eq!(targets, [true, true], "both targets hold objects");
    assert!(matches!(
        s.cont_create("other", [0x55; 16]),
        Err(ClientError::Exists(_))
    ));
    s.cont_destroy("c").expect("destroy");
    for oid in 0..16u128 {
        let e = s
            .update(c, oid, b"d", b"a", b"late")
            .expect_err("destroyed");
        assert_eq!(e.der(), Some(der::NONEXIST), "{e}");
        let e = s
            .read(c, oid, b"d", b"a", 0, 100_000)
            .expect_err("destroyed");
        assert_eq!(e.der(), Some(der::NONEXIST), "{e}");
    }
    // Created again with the same UUID, it starts empty: nothing of the old one reappears.
    let c = s.cont_create("c", [0x55; 16]).expect("create again");
    for oid in 0..16u128 {
        assert_eq!(s.fetch(c, oid, b"d", b"a").expect("fetch"), None);
    }
    drop(f.shards);
}

#[test]
fn a_request_on_an_older_pool_map_is_refused_and_the_session_refreshes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let f = fixture(2);
    let mut s = Session::open(
        f.map.clone(),
        SessionOpts {
            timeout: Duration::from_secs(1),
            ..SessionOpts::default()
        },
    )
    .expect("session");
    assert_eq!(s.map().placement.version, 1);
    let cont = s.cont_create("c", [5; 16]).expect("create");
    s.update(cont, 1, b"d", b"a", b"v1")
        .expect("no version pushed yet: served");
    // The management service pushes version 7 (dRPC POOL_MAP_VERSIONS): requests built on
    // version 1 are refused, updates and fetches alike, inline and bulk, naming both versions.
    assert_eq!(f.pools.set_map_version(POOL, 7), Some(7));
    for value in [&b"v2"[..], &[9u8; 40_000][..]] {
        match s.update(cont, 1, b"d", b"a", value) {
            Err(e @ ClientError::Stale { .. }) => {
                let ClientError::Stale { ours, theirs, .. } = e else {
                    unreachable!()
                };
                assert_eq!((ours, theirs), (1, 7));
                assert_eq!(e.der(), Some(der::STALE));
                assert!(
                    e.to_string()
                        .contains("stale pool map version 1 (the target has 7)")
                );
            }
            other => panic!("expected DER_STALE, got {other:?}"),
        }
    }
    assert!(matches!(
        s.fetch(cont, 1, b"d", b"a"),
        Err(ClientError::Stale { theirs: 7, .. })
    ));
    // A session with a refresher fetches the map again until it has the target's version
    // (the first answer is still behind), then sends the update again.
    let fetched = Arc::new(AtomicUsize::new(0));
    let (map, n) = ((*f.map).clone(), fetched.clone());
    s.set_refresher(Box::new(move || {
        let v = if n.fetch_add(1, Ordering::SeqCst) == 0 {
            5
        } else {
            7
        };
        Ok(map.clone().with_states(&[], v))
    }));
    s.update(cont, 1, b"d", b"a", b"v2")
        .expect("sent again on version 7");
    assert_eq!(s.map().placement.version, 7);
    assert_eq!(fetched.load(Ordering::SeqCst), 2);
    assert_eq!(
        s.fetch(cont, 1, b"d", b"a").expect("fetch"),
        Some(b"v2".to_vec()),
        "the refused updates wrote nothing; the retried one did"
    );
    // A map newer than the target's is served (the target may not have had the push yet).
    let mut ahead = Session::open(
        Arc::new((*f.map).clone().with_states(&[], 9)),
        SessionOpts::default(),
    )
    .expect("session");
    ahead
        .update(cont, 2, b"d", b"a", b"x")
        .expect("a newer map is served");
    // A refresher that never catches up: the error says so, once the session's deadline passed.
    let mut behind = Session::open(
        f.map.clone(),
        SessionOpts {
            timeout: Duration::from_millis(300),
            ..SessionOpts::default()
        },
    )
    .expect("session");
    let map = (*f.map).clone();
    behind.set_refresher(Box::new(move || Ok(map.clone().with_states(&[], 5))));
    let e = behind
        .update(cont, 3, b"d", b"a", b"y")
        .expect_err("never fresh enough");
    assert!(
        matches!(e, ClientError::Refresh(_))
            && e.to_string()
                .contains("still gives version 5 (a target has 7)"),
        "{e}"
    );
    // Pings are never refused (a liveness probe carries no placement).
    behind.ping_all().expect("ping");
    drop(f.shards);
}

#[test]
fn an_epoch_far_ahead_of_the_target_clock_is_refused() {
    use daos_engine::wire::Request;
    let f = fixture(1);
    let mut s = session(&f);
    let cont = s.cont_create("c", [8; 16]).expect("create");
    let req = Request::Update {
        oid: 3,
        dkey: b"d",
        akey: b"a",
        value: b"from the future",
    };
    // An hour ahead: DER_HLC_SYNC, nothing written.
    let ahead = daos_wire::clock_ns() + 3_600_000_000_000;
    let e = s
        .call_at(0, cont, &req, ahead, |_| ())
        .expect_err("refused");
    assert_eq!(e.der(), Some(der::HLC_SYNC), "{e}");
    assert!(
        e.to_string().contains("ahead of this target's clock"),
        "{e}"
    );
    assert_eq!(s.fetch(cont, 3, b"d", b"a").expect("fetch"), None);
    // The session's clock did not jump to the refusal's reading: its next update is served.
    s.update(cont, 3, b"d", b"a", b"now").expect("update");
    // An epoch within the clock's reach is taken as given, and a later one wins.
    let now = daos_wire::clock_ns();
    s.call_at(
        0,
        cont,
        &Request::Update {
            oid: 4,
            dkey: b"d",
            akey: b"a",
            value: b"newer",
        },
        now + 1_000,
        |_| (),
    )
    .expect("at a chosen epoch");
    // An older epoch arriving later would be ordered before an acknowledged change: refused
    // (DER_TX_RESTART), nothing written.
    let e = s
        .call_at(
            0,
            cont,
            &Request::Update {
                oid: 4,
                dkey: b"d",
                akey: b"a",
                value: b"older",
            },
            now,
            |_| (),
        )
        .expect_err("an older epoch, arriving later");
    assert_eq!(e.der(), Some(der::TX_RESTART), "{e}");
    assert!(e.to_string().contains("newer change of this key"), "{e}");
    assert_eq!(
        s.fetch(cont, 4, b"d", b"a").expect("fetch"),
        Some(b"newer".to_vec()),
        "the newest epoch stays"
    );
    // The same change at the same epoch again (a resend) is answered as applied.
    s.call_at(
        0,
        cont,
        &Request::Update {
            oid: 4,
            dkey: b"d",
            akey: b"a",
            value: b"newer",
        },
        now + 1_000,
        |_| (),
    )
    .expect("a resend");
    // A rebuild's copy at its value's own (older) epoch is stored as given, below the
    // newer value.
    s.copy_at(
        0,
        cont,
        &Request::Update {
            oid: 4,
            dkey: b"d",
            akey: b"a",
            value: b"copied",
        },
        now,
        |_| (),
    )
    .expect("a copy at its own epoch");
    assert_eq!(
        s.fetch(cont, 4, b"d", b"a").expect("fetch"),
        Some(b"newer".to_vec())
    );
    // A later update is taken above it.
    s.update(cont, 4, b"d", b"a", b"latest").expect("update");
    assert_eq!(
        s.fetch(cont, 4, b"d", b"a").expect("fetch"),
        Some(b"latest".to_vec())
    );
    drop(f.shards);
}

#[test]
fn requests_need_a_handle_the_target_was_told_of_with_the_rights_they_use() {
    use daos_engine::handles::{READ, WRITE};
    use daos_engine::wire::Op;
    let f = fixture(1);
    let mut s = session(&f);
    let cont = s.cont_create("c", [6; 16]).expect("container");
    s.update(cont, 1, b"d", b"a", b"v1")
        .expect("no handles pushed yet: served");
    // The pool service pushes two handles (dRPC POOL_HANDLES) and arms the checks.
    let t = f.pools.handles(POOL).expect("held pool");
    t.insert(0xabc, READ | WRITE, 0, None).expect("room");
    t.insert(0xdef, READ | WRITE, 0, None).expect("room");
    // Container handles: read-write under the first, read-only under the second.
    t.insert(0xabd, READ | WRITE, 0xabc, Some(&cont))
        .expect("room");
    t.insert(0xdee, READ, 0xdef, Some(&cont)).expect("room");
    t.arm();
    let e = s.update(cont, 1, b"d", b"a", b"v2").expect_err("no handle");
    assert_eq!(e.der(), Some(der::NO_HDL), "{e}");
    assert!(e.to_string().contains("connect to the pool again"), "{e}");
    // A made-up handle on a raw fabric request: refused at once.
    let mut raw = Raw::open(&f);
    let (code, text) = raw.call_with(&f, Op::Fetch, cont, 0x1234_5678, |w| {
        w.u128(1).key(b"d").key(b"a");
    });
    assert_eq!(code, der::NO_HDL, "{text}");
    // A pool handle alone does not reach a container's data.
    s.set_handle(0xabc);
    let e = s
        .update(cont, 1, b"d", b"a", b"v2")
        .expect_err("no container handle");
    assert_eq!(e.der(), Some(der::NO_HDL), "{e}");
    // Read-write and read-only container handles; bulk values too.
    s.set_cont_handle(cont, 0xabd);
    s.update(cont, 1, b"d", b"a", b"v2").expect("read-write");
    s.update(cont, 2, b"d", b"a", &[7u8; 40_000])
        .expect("bulk, read-write");
    let mut ro = session(&f);
    ro.set_handle(0xdef);
    ro.set_cont_handle(cont, 0xdee);
    assert_eq!(
        ro.fetch(cont, 1, b"d", b"a").expect("read-only reads"),
        Some(b"v2".to_vec())
    );
    for e in [
        ro.update(cont, 1, b"d", b"a", b"v3").expect_err("inline"),
        ro.update(cont, 3, b"d", b"a", &[1u8; 40_000])
            .expect_err("bulk"),
        ro.punch(cont, 1, PunchWhat::Object).expect_err("punch"),
    ] {
        assert_eq!(e.der(), Some(der::NO_PERM), "{e}");
    }
    // Evicted: the next request of that handle fails; the target keeps serving the other.
    assert_eq!(t.revoke(0xabc), 2, "with its container handle");
    let e = s.fetch(cont, 1, b"d", b"a").expect_err("evicted");
    assert_eq!(e.der(), Some(der::NO_HDL), "{e}");
    assert_eq!(
        ro.fetch(cont, 2, b"d", b"a")
            .expect("still served")
            .map(|v| v.len()),
        Some(40_000)
    );
    drop(f.shards);
}

#[test]
fn bulk_slots_of_timed_out_operations_come_back_with_their_late_replies() {
    use daos_engine::wire::{self, Header};
    let f = fixture(1);
    // A stand-in target that takes requests and answers only when the test says.
    let port = free_base(1);
    let mut fake = daos_fabric::RdmEndpoint::open(
        "tcp;ofi_rxm",
        Some("127.0.0.1"),
        Some(&port.to_string()),
        1 << 17,
        8,
        8,
    )
    .expect("fake target");
    let mut map = (*f.map).clone();
    map.targets[0].node = "127.0.0.1".into();
    map.targets[0].port = port;
    let mut s = Session::open(
        Arc::new(map),
        SessionOpts {
            queue_depth: 2,
            max_value: 64 << 10,
            timeout: Duration::from_millis(300),
        },
    )
    .expect("session");
    let slots = s.bulk_slots_free();
    assert!(slots >= 1, "a session with RMA has bulk slots");
    // Every bulk slot goes to an update the target does not answer in time.
    let value = vec![7u8; 40_000];
    for oid in 0..slots as u128 {
        let e = s
            .update([1; 16], oid, b"d", b"a", &value)
            .expect_err("no answer in time");
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    }
    assert_eq!(s.bulk_slots_free(), 0, "held until their late replies");
    // The target answers them late: their slots come back.
    let mut held = Vec::new();
    let mut answered = 0;
    let mut buf = vec![0u8; 4096];
    let ok = wait_until(Duration::from_secs(10), || {
        let _ = fake.poll_held(&mut held);
        for r in held.drain(..) {
            let h = Header::read(fake.message(r)).expect("a request");
            assert_eq!(h.op, wire::Op::UpdateBulk as u16, "values went by RMA");
            let peer = fake.insert_peer(h.reply_addr()).expect("peer");
            let n = wire::encode_error(&mut buf, &h, der::BUSY, "late");
            let _ = fake.send(peer, &buf[..n]);
            let _ = fake.release(r);
            answered += 1;
        }
        let _ = s.poll(|_, _| {});
        s.bulk_slots_free() == slots
    });
    assert!(
        ok,
        "{answered} late replies; {} slots free",
        s.bulk_slots_free()
    );
    drop(f.shards);
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Sends `n` updates pipelined (the session's queue depth), one akey each.
fn put_many(s: &mut Session, cont: [u8; 16], reqs: impl Iterator<Item = (u128, Vec<u8>)>) {
    use daos_engine::wire::Request;
    let mut reqs = reqs.peekable();
    let mut failed = None;
    while reqs.peek().is_some() || s.in_flight() > 0 {
        while s.in_flight() < 16
            && let Some((oid, dkey)) = reqs.next()
        {
            let req = Request::Update {
                oid,
                dkey: &dkey,
                akey: b"a",
                value: b"v",
            };
            s.submit(0, cont, &req).expect("submit");
        }
        s.poll(|_, r| {
            if let Err(e) = r {
                failed.get_or_insert(e.to_string());
            }
        })
        .expect("poll");
    }
    assert_eq!(failed, None);
}

#[test]
fn listings_larger_than_a_message_come_in_pages() {
    let f = fixture(1);
    let mut s = session(&f);
    let cont = s.cont_create("many", [5; 16]).expect("create");
    // 6,000 objects on one target: 96 KB of ids, more than a client's message holds.
    let n = 6000u128;
    put_many(&mut s, cont, (0..n).map(|i| (i * 7919 + 3, b"d".to_vec())));
    let listed = s.list_objects(cont).expect("list");
    let mut want: Vec<u128> = (0..n).map(|i| i * 7919 + 3).collect();
    want.sort_unstable();
    assert_eq!(listed.len(), want.len());
    assert!(listed == want, "every id once, in order");
    // 3,000 dkeys of one object: 60 KB of keys.
    let keys = |i: u32| format!("dkey-{i:013}").into_bytes();
    put_many(&mut s, cont, (0..3000).map(|i| (42u128 << 64, keys(i))));
    let dkeys = s.list_dkeys(cont, 42 << 64).expect("dkeys");
    assert_eq!(dkeys.len(), 3000);
    assert!(dkeys == (0..3000).map(keys).collect::<Vec<_>>());
    drop(f.shards);
}

/// Writes `n` RP_2G1 objects (rank level) with one akey to both replicas of each.
fn put_replicated(s: &mut Session, cont: [u8; 16], n: u64) -> Vec<u128> {
    use daos_engine::wire::Request;
    let class = daos_placement::ObjectClass::parse("RP_2G1").expect("class");
    let oids: Vec<u128> = (0..n)
        .map(|i| class.embed_at(u128::from(i) * 104_729 + 1, daos_placement::RdLvl::Rank))
        .collect();
    let mut failed = None;
    let mut copies = Vec::new();
    for &o in &oids {
        copies.extend(
            s.map()
                .shards(o)
                .expect("layout")
                .into_iter()
                .map(|t| (o, t)),
        );
    }
    let mut it = copies.into_iter().peekable();
    while it.peek().is_some() || s.in_flight() > 0 {
        while s.in_flight() < 16
            && let Some((oid, t)) = it.next()
        {
            let v = oid.to_le_bytes();
            let req = Request::Update {
                oid,
                dkey: b"d",
                akey: b"a",
                value: &v,
            };
            s.submit(t, cont, &req).expect("submit");
        }
        s.poll(|_, r| {
            if let Err(e) = r {
                failed.get_or_insert(e.to_string());
            }
        })
        .expect("poll");
    }
    assert_eq!(failed, None);
    oids
}

/// Every object target `t` lists, page by page.
fn listed_on(s: &mut Session, t: usize, cont: [u8; 16]) -> Vec<u128> {
    let (mut all, mut after) = (Vec::new(), None);
    loop {
        let more = s.oids_page(t, cont, after, &mut all).expect("page");
        after = all.last().copied();
        if !more {
            return all;
        }
    }
}

#[test]
fn a_rebuild_and_a_listing_page_through_objects_with_a_rank_down() {
    use daos_placement::TargetState::{Down, UpIn};
    let (fixtures, map) = ranks_fixture(3);
    let mut s = session_on(&map);
    let cont = s.cont_create("rp", [6; 16]).expect("create");
    // 1,500 RP_2G1 objects over 3 ranks: ~1,000 on each target, pages of them.
    let oids = put_replicated(&mut s, cont, 1500);
    let mut want = oids.clone();
    want.sort_unstable();
    assert!(s.list_objects(cont).expect("list") == want);
    let on2 = listed_on(&mut s, 2, cont).len();
    assert!(
        on2 > 3 * daos_engine::wire::LIST_PAGE / 16,
        "{on2} objects on rank 2"
    );
    // Rank 2 dies: reported down, its objects are listed from their other replicas...
    let mut fixtures = fixtures;
    drop(fixtures.pop().map(|f| f.shards));
    let down = Arc::new((*map).clone().with_down(&[2]));
    let mut s = Session::open(down.clone(), SessionOpts::default()).expect("session");
    let e = s.list_objects(cont).expect_err("rank 2 is not listed");
    assert!(
        matches!(&e, ClientError::Unlisted { ranks, .. } if ranks == &[2]),
        "{e}"
    );
    let partial = s.list_objects_partial(cont).expect("partial list");
    assert_eq!(partial.unlisted, [(2, 0)]);
    assert!(partial.oids == want, "every object has a replica elsewhere");
    // ... and so they are when it does not answer without being reported down.
    let mut quick = Session::open(
        map.clone(),
        SessionOpts {
            timeout: Duration::from_millis(300),
            ..SessionOpts::default()
        },
    )
    .expect("session");
    let partial = quick.list_objects_partial(cont).expect("partial list");
    assert_eq!(partial.unlisted, [(2, 0)]);
    assert!(partial.oids == want);
    // Its target is excluded: the rebuild copies each of its objects to the rank that lacks
    // it, page by page.
    let map = Arc::new(
        (*down)
            .clone()
            .with_states(&[(0, vec![UpIn]), (1, vec![UpIn]), (2, vec![Down])], 2),
    );
    let mut s = Session::open(map, SessionOpts::default()).expect("session");
    let mut throttle = daos_client::rebuild::Throttle::new(0);
    let p = s.rebuild(&[cont], &mut throttle, |_| {}).expect("rebuild");
    assert_eq!(p.scanned, 1500, "each object once: {p:?}");
    assert_eq!(p.objs as usize, on2, "{p:?}");
    assert_eq!(p.recs as usize, on2, "{p:?}");
    for t in 0..2 {
        assert!(
            listed_on(&mut s, t, cont) == want,
            "target {t} holds every object"
        );
    }
    for &oid in oids.iter().step_by(97) {
        assert_eq!(
            s.fetch(cont, oid, b"d", b"a").expect("fetch"),
            Some(oid.to_le_bytes().to_vec())
        );
    }
    drop(fixtures);
}
