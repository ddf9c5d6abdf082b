//! Client I/O through the real binaries: daos_server starts engines whose targets serve the
//! pool over libfabric (tcp;ofi_rxm on loopback); the `daos` tool and the client library
//! create containers and write, read, punch and list objects; data is verified byte for byte,
//! survives a restart of the whole system, and a corrupted value is reported by its checksum.

use std::sync::Arc;
use std::time::Duration;

use daos_client::{ClientError, Session, SessionOpts, parse_uuid};
use daos_engine::wire::{PunchWhat, der};
use daos_tests::*;

fn started(engines: usize, targets: usize) -> (System, Proc) {
    let sys = System::with_targets(engines, targets);
    let server = sys.start_joined();
    (sys, server)
}

/// The value of object `oid`: its length varies (inline on SCM and on the bdev) and every
/// byte depends on the object, so a misplaced or stale value never compares equal.
fn value(oid: u128) -> Vec<u8> {
    let len = match oid % 7 {
        0 => 1,
        1 => 4096,
        2 => 4097,
        3 => 65536 + oid as usize % 1000,
        _ => 100 + (oid as usize * 37) % 3000,
    };
    (0..len)
        .map(|i| (i as u128 * 31 + oid * 7 + (i as u128 >> 8)) as u8)
        .collect()
}

fn session(sys: &System, pool: &str) -> Session {
    Session::open(Arc::new(sys.pool_map(pool)), SessionOpts::default()).expect("session")
}

fn container_uuid(create_output: &str) -> [u8; 16] {
    let u = create_output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Container UUID : "))
        .expect("UUID line");
    parse_uuid(u).expect("uuid")
}

#[test]
fn objects_on_two_engines_verified_punched_listed_and_kept_across_a_restart() {
    let (sys, mut server) = started(2, 2);
    ok(sys.dmg(&[
        "-i",
        "pool",
        "create",
        "tank",
        "--scm-size",
        "256M",
        "--nvme-size",
        "512M",
    ]));
    let text = ok(sys.daos(&["container", "create", "tank", "c1"]));
    assert!(
        text.starts_with("Successfully created container "),
        "{text}"
    );
    let cont = container_uuid(&text);
    fails(
        sys.daos(&["container", "create", "tank", "c1"]),
        "container label \"c1\" is already taken",
    );

    let mut s = session(&sys, "tank");
    assert_eq!(s.map().targets.len(), 4, "2 engines x 2 targets");
    let mut per_target = [0usize; 4];
    for oid in 0..400u128 {
        s.update(cont, oid, b"dkey", b"akey", &value(oid))
            .unwrap_or_else(|e| panic!("update {oid}: {e}"));
        per_target[s.map().place(oid)] += 1;
    }
    assert!(
        per_target.iter().all(|n| *n > 50),
        "objects spread over both engines' targets: {per_target:?}"
    );
    let verify = |s: &mut Session, punched: Option<u128>| {
        for oid in 0..400u128 {
            let got = s
                .fetch(cont, oid, b"dkey", b"akey")
                .unwrap_or_else(|e| panic!("fetch {oid}: {e}"));
            if Some(oid) == punched {
                assert_eq!(got, None, "object {oid} was punched");
            } else {
                assert!(
                    got.as_deref() == Some(&value(oid)[..]),
                    "object {oid} differs"
                );
            }
        }
    };
    verify(&mut s, None);
    // The targets account what the data uses: both tiers show less free than total.
    let q: serde_json::Value =
        serde_json::from_str(&ok(sys.dmg(&["-i", "-j", "pool", "query", "tank"]))).expect("json");
    for tier in 0..2 {
        let t = &q["response"]["tier_stats"][tier];
        let (total, free) = (t["total"].as_u64(), t["free"].as_u64());
        assert!(
            free.zip(total).is_some_and(|(f, t)| f < t && f > t / 2),
            "tier {tier}: {t}"
        );
    }

    // Punch and enumeration.
    for d in ["a", "b", "c"] {
        s.update(cont, 1000, d.as_bytes(), b"x", b"1")
            .expect("update");
        s.update(cont, 1000, d.as_bytes(), b"y", b"2")
            .expect("update");
    }
    s.punch(cont, 1000, PunchWhat::Dkey(b"b")).expect("punch");
    s.punch(cont, 1000, PunchWhat::Akey(b"c", b"y"))
        .expect("punch");
    s.punch(cont, 7, PunchWhat::Object).expect("punch object");
    assert_eq!(
        s.list_dkeys(cont, 1000).expect("dkeys"),
        [b"a".to_vec(), b"c".to_vec()]
    );
    assert_eq!(
        s.list_akeys(cont, 1000, b"c").expect("akeys"),
        [b"x".to_vec()]
    );
    assert_eq!(s.fetch(cont, 7, b"dkey", b"akey").expect("fetch"), None);
    let objects = s.list_objects(cont).expect("objects");
    assert_eq!(objects.len(), 400, "400 objects - punched 7 + object 1000");
    assert!(!objects.contains(&7));

    // The daos tool: a 3 MiB file in and out, and the key listing.
    let input = sys.path().join("in.bin");
    let data: Vec<u8> = (0..3 * (1 << 20) + 123)
        .map(|i: u32| (i * 7 % 253) as u8)
        .collect();
    std::fs::write(&input, &data).expect("input");
    let put = ok(sys.daos(&[
        "object",
        "put",
        "tank",
        "c1",
        "my/file",
        input.to_str().expect("utf8"),
    ]));
    assert!(put.contains("Stored 3145851 bytes"), "{put}");
    let output = sys.path().join("out.bin");
    ok(sys.daos(&[
        "object",
        "get",
        "tank",
        "c1",
        "my/file",
        output.to_str().expect("utf8"),
    ]));
    assert!(
        std::fs::read(&output).expect("output") == data,
        "file differs"
    );
    let list = ok(sys.daos(&["object", "list", "tank", "c1"]));
    assert!(list.contains("my/file 3145851"), "{list}");
    fails(
        sys.daos(&["object", "get", "tank", "c1", "nosuch", "/dev/null"]),
        "no key \"nosuch\" in container c1",
    );
    fails(
        sys.daos(&["container", "query", "tank", "nosuch"]),
        "no container \"nosuch\" in this pool",
    );
    fails(
        sys.daos(&["object", "put", "tank", "c1", "k", "/nonexistent/file"]),
        "cannot read /nonexistent/file",
    );
    fails(
        sys.daos(&["container", "create", "tank", "bad label!"]),
        "invalid container label \"bad label!\"",
    );
    fails(sys.daos(&["container", "list", "nosuchpool"]), "nosuchpool");

    // A restart of the whole system keeps pools, containers and data.
    drop(s);
    sys.stop(&mut server);
    let mut server = sys.start(&[]);
    sys.wait_log("the system as rank", 4, 60);
    let mut s = session(&sys, "tank");
    verify(&mut s, Some(7));
    assert_eq!(
        s.list_dkeys(cont, 1000).expect("dkeys"),
        [b"a".to_vec(), b"c".to_vec()]
    );
    let list = ok(sys.daos(&["container", "list", "tank"]));
    assert!(list.contains(" c1"), "{list}");
    ok(sys.daos(&[
        "object",
        "get",
        "tank",
        "c1",
        "my/file",
        output.to_str().expect("utf8"),
    ]));
    assert!(
        std::fs::read(&output).expect("output") == data,
        "file differs after restart"
    );

    // Destroying the container removes its objects.
    ok(sys.daos(&["container", "destroy", "tank", "c1"]));
    let e = s.list_objects(cont).expect_err("the container is gone");
    assert_eq!(e.der(), Some(der::NONEXIST), "{e}");
    drop(s);
    sys.stop(&mut server);
}

/// Finds `needle` in a file and flips a byte in the middle of it.
fn corrupt(path: &std::path::Path, needle: &[u8]) -> bool {
    use std::os::unix::fs::FileExt;
    let data = std::fs::read(path).expect("read");
    let Some(at) = data.windows(needle.len()).position(|w| w == needle) else {
        return false;
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    let pos = at + needle.len() / 2;
    f.write_all_at(&[data[pos] ^ 0xff], pos as u64)
        .expect("write");
    true
}

#[test]
fn a_corrupted_value_is_reported_by_checksum_not_returned() {
    let (sys, mut server) = started(1, 1);
    let pool_uuid = sys.create_pool("tank", "64M", Some("256M"));
    let mut s = session(&sys, "tank");
    let cont = s.cont_create("c", [5; 16]).expect("container");
    let small: Vec<u8> = b"SMALL-VALUE-MARKER-"
        .iter()
        .cycle()
        .take(2000)
        .copied()
        .collect();
    let large: Vec<u8> = b"LARGE-VALUE-MARKER-"
        .iter()
        .cycle()
        .take(50_000)
        .copied()
        .collect();
    s.update(cont, 1, b"d", b"small", &small).expect("small");
    s.update(cont, 1, b"d", b"large", &large).expect("large");
    s.update(cont, 1, b"d", b"other", b"untouched")
        .expect("other");

    // The small value lives in the SCM log, the large one on the bdev file; both files are
    // shared mappings or plain files the engine reads, so damage shows at the next fetch.
    let scm = sys.path().join(format!("scm0/pools/{pool_uuid}/vos-0"));
    assert!(
        corrupt(&scm, &small[..64]),
        "small value in {}",
        scm.display()
    );
    assert!(
        corrupt(&sys.path().join("bdev0"), &large[..64]),
        "large value in the bdev file"
    );
    for akey in [&b"small"[..], b"large"] {
        let err = s.fetch(cont, 1, b"d", akey).expect_err("corrupted");
        assert_eq!(err.der(), Some(der::CSUM), "{err}");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
    assert_eq!(
        s.fetch(cont, 1, b"d", b"other").expect("other"),
        Some(b"untouched".to_vec())
    );
    drop(s);
    sys.stop(&mut server);
}

#[test]
fn a_client_of_another_pool_or_a_stopped_engine_gets_clear_errors() {
    let (sys, mut server) = started(1, 1);
    ok(sys.dmg(&["-i", "pool", "create", "tank", "--scm-size", "64M"]));
    let map0 = sys.pool_map("tank");
    let mut map = map0.clone();
    let mut s = Session::open(Arc::new(map.clone()), SessionOpts::default()).expect("session");
    // A pool without NVMe keeps small values and refuses large ones with the fix.
    let c = s.cont_create("c", [1; 16]).expect("container");
    s.update(c, 1, b"d", b"a", b"small").expect("small value");
    let err = s
        .update(c, 1, b"d", b"a", &[1u8; 8192])
        .expect_err("no NVMe tier");
    assert_eq!(err.der(), Some(der::NOSPACE), "{err}");
    assert!(err.to_string().contains("--nvme-size"), "{err}");

    map.uuid = [0xee; 16];
    let mut other = Session::open(Arc::new(map), SessionOpts::default()).expect("session");
    let err = other.fetch(c, 1, b"d", b"a").expect_err("unknown pool");
    assert_eq!(err.der(), Some(der::NONEXIST), "{err}");
    fails(sys.daos(&["container", "list", "nosuch"]), "nosuch");
    ok(sys.dmg(&["-i", "system", "stop"]));
    let mut s = Session::open(
        Arc::new(map0),
        SessionOpts {
            timeout: Duration::from_millis(500),
            ..SessionOpts::default()
        },
    )
    .expect("session");
    let err = s.fetch(c, 1, b"d", b"a").expect_err("engine stopped");
    assert!(
        matches!(
            err,
            ClientError::Timeout { .. } | ClientError::Fabric(_) | ClientError::Unreachable { .. }
        ),
        "{err}"
    );
    sys.stop(&mut server);
}
