//! Integrity of named values through the real binaries (`daos object put|get`): a put that
//! fails (pool full, engine killed) leaves the previous value readable byte for byte; puts
//! racing on one key leave exactly one writer's whole value; a get racing with puts returns
//! one whole version, never a mix or zeros.

use std::path::{Path, PathBuf};
use std::time::Duration;

use daos_tests::*;

fn started() -> (System, Proc) {
    let sys = System::with_targets(1, 1);
    let server = sys.start_joined();
    (sys, server)
}

/// A file of `len` bytes whose every byte depends on `seed`.
fn file(dir: &Path, seed: u8, len: usize) -> (PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect();
    let path = dir.join(format!("in-{seed}-{len}.bin"));
    std::fs::write(&path, &data).expect("write input");
    (path, data)
}

fn put(sys: &System, key: &str, path: &Path) -> std::process::Output {
    sys.daos(&[
        "object",
        "put",
        "tank",
        "c",
        key,
        path.to_str().expect("utf8"),
    ])
}

fn get(sys: &System, key: &str, out: &Path) -> Option<Vec<u8>> {
    let o = sys.daos(&[
        "object",
        "get",
        "tank",
        "c",
        key,
        out.to_str().expect("utf8"),
    ]);
    (o.status.code() == Some(0)).then(|| std::fs::read(out).expect("output"))
}

#[test]
fn a_failed_overwrite_keeps_the_previous_value() {
    let (sys, mut server) = started();
    sys.create_pool("tank", "64M", Some("96M"));
    ok(sys.daos(&["container", "create", "tank", "c"]));
    let (a, a_data) = file(sys.path(), 1, 40 << 20);
    ok(put(&sys, "k", &a));
    // 70 MB more does not fit beside the 40 MB the key holds.
    let (big, _) = file(sys.path(), 2, 70 << 20);
    let o = put(&sys, "k", &big);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("DER_NOSPACE"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the previous value of \"k\" is unchanged"),
        "{}",
        stderr(&o)
    );
    let out = sys.path().join("out.bin");
    assert!(
        get(&sys, "k", &out).is_some_and(|v| v == a_data),
        "the previous value reads back byte for byte"
    );
    // The failed put gave its space back: another 40 MB value replaces the first.
    let (b, b_data) = file(sys.path(), 3, 40 << 20);
    ok(put(&sys, "k", &b));
    assert!(get(&sys, "k", &out).is_some_and(|v| v == b_data));
    let list = ok(sys.daos(&["object", "list", "tank", "c"]));
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().eq(["k", &(40 << 20).to_string()])),
        "{list}"
    );

    // An engine killed during a large overwrite: afterwards the key holds the old value or
    // the new one, whole.
    let (c, c_data) = file(sys.path(), 4, 30 << 20);
    let server_pid = server.pid() as u32;
    let mut writer = Proc::start(
        "daos",
        &[
            "-i",
            "-l",
            &format!("localhost:{}", sys.port),
            "object",
            "put",
            "tank",
            "c",
            "k",
            c.to_str().expect("utf8"),
        ],
        &[],
        sys.path(),
    );
    // Kill once the put has written part of its value (the pool's NVMe use grows).
    let used = || -> u64 {
        let q: serde_json::Value =
            serde_json::from_str(&ok(sys.dmg(&["-i", "-j", "pool", "query", "tank"])))
                .expect("json");
        let t = &q["response"]["tier_stats"][1];
        t["total"].as_u64().unwrap_or(0) - t["free"].as_u64().unwrap_or(0)
    };
    // The put may also be done already (then the key holds its value).
    let before = used();
    assert!(
        wait_until(Duration::from_secs(30), || used() > before
            || !writer.alive()),
        "the put writes"
    );
    let engines = children(server_pid, "daos_engine");
    assert_eq!(engines.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(engines[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let code = writer.wait(Duration::from_secs(120));
    sys.wait_log("the system as rank", 2, 60);
    let got = get(&sys, "k", &out).expect("the key reads after the restart");
    assert!(
        got == b_data || (code == Some(0) && got == c_data),
        "key holds {} bytes: neither the previous value nor (put exit {code:?}) the new one",
        got.len()
    );
    sys.stop(&mut server);
}

#[test]
fn concurrent_puts_of_one_key_leave_one_whole_value_and_gets_read_one_version() {
    let (sys, mut server) = started();
    sys.create_pool("tank", "64M", Some("96M"));
    ok(sys.daos(&["container", "create", "tank", "c"]));
    let files: Vec<(PathBuf, Vec<u8>)> = (0..4u8)
        .map(|i| {
            file(
                sys.path(),
                10 + i,
                (3 << 20) + usize::from(i) * (2 << 20) + 77,
            )
        })
        .collect();
    ok(put(&sys, "shared", &files[0].0));
    let host = format!("localhost:{}", sys.port);
    // 4 rounds x 4 writers x up to 9 MB: more than the pool holds, so every replaced version
    // must be freed for the rounds to go through.
    for round in 0..4 {
        let writers: Vec<Proc> = files
            .iter()
            .map(|(path, _)| {
                Proc::start(
                    "daos",
                    &[
                        "-i",
                        "-l",
                        &host,
                        "object",
                        "put",
                        "tank",
                        "c",
                        "shared",
                        path.to_str().expect("utf8"),
                    ],
                    &[],
                    sys.path(),
                )
            })
            .collect();
        // Reads while the writers run: each is one whole value.
        let out = sys.path().join(format!("read-{round}.bin"));
        for _ in 0..3 {
            if let Some(v) = get(&sys, "shared", &out) {
                assert!(
                    files.iter().any(|(_, d)| *d == v),
                    "round {round}: a get returned {} bytes that are no writer's whole value",
                    v.len()
                );
            }
        }
        for mut w in writers {
            assert_eq!(
                w.wait(Duration::from_secs(120)),
                Some(0),
                "round {round}: every put succeeds"
            );
        }
        let v = get(&sys, "shared", &out).expect("get");
        assert!(
            files.iter().any(|(_, d)| *d == v),
            "round {round}: the key holds {} bytes that are no writer's whole value",
            v.len()
        );
    }
    sys.stop(&mut server);
}

#[test]
fn a_shard_whose_scm_file_is_removed_refuses_io_instead_of_losing_writes() {
    use daos_client::{Session, SessionOpts};
    use daos_engine::wire::der;
    let (sys, mut server) = started();
    let uuid = sys.create_pool("tank", "64M", None);
    let mut s = Session::open(
        std::sync::Arc::new(sys.pool_map("tank")),
        SessionOpts::default(),
    )
    .expect("session");
    let cont = s.cont_create("c", [3; 16]).expect("container");
    s.update(cont, 1, b"d", b"a", b"kept?").expect("update");
    let vos = sys.path().join(format!("scm0/pools/{uuid}/vos-0"));
    std::fs::remove_file(&vos).expect("remove the SCM file");
    // Within a moment the target notices and refuses every operation.
    let mut refusal = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            refusal = s.update(cont, 2, b"d", b"a", b"after").err();
            refusal.is_some()
        }),
        "updates still acknowledged long after the file went"
    );
    let e = refusal.expect("refused");
    assert_eq!(e.der(), Some(der::IO), "{e}");
    assert!(e.to_string().contains("was removed or replaced"), "{e}");
    let e = s.fetch(cont, 1, b"d", b"a").expect_err("fetch refused too");
    assert_eq!(e.der(), Some(der::IO), "{e}");
    assert!(sys.log().contains("the shard is damaged"), "{}", sys.log());
    drop(s);

    // After a restart the missing file is named, not recreated empty.
    sys.stop(&mut server);
    let mut server = sys.start(&[]);
    sys.wait_log("the system as rank", 2, 60);
    let mut s = Session::open(
        std::sync::Arc::new(sys.pool_map("tank")),
        SessionOpts::default(),
    )
    .expect("session");
    let e = s.fetch(cont, 1, b"d", b"a").expect_err("still damaged");
    assert_eq!(e.der(), Some(der::IO), "{e}");
    assert!(e.to_string().contains("is missing"), "{e}");
    assert!(!vos.exists(), "the store does not recreate the file");
    drop(s);
    ok(sys.dmg(&["-i", "pool", "destroy", "--force", "tank"]));
    sys.stop(&mut server);
}

#[test]
fn nvme_space_a_pool_reports_is_space_it_can_write() {
    if !is_root() {
        eprintln!(
            "SKIPPED nvme_space_a_pool_reports_is_space_it_can_write: needs root to mount a small tmpfs under the bdev file"
        );
        return;
    }
    let sys = System::with_targets(1, 1);
    // The bdev file (1 GB, sparse) lives on a filesystem of 96 MB.
    let small = sys.path().join("smallfs");
    std::fs::create_dir(&small).expect("mkdir");
    nix::mount::mount(
        Some("tmpfs"),
        &small,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=96m"),
    )
    .expect("mount tmpfs");
    std::os::unix::fs::symlink(small.join("bdev0"), sys.path().join("bdev0")).expect("symlink");
    let mut server = sys.start_joined();
    // More NVMe than the filesystem holds: refused at create, not at some later write.
    let o = sys.dmg(&[
        "-i",
        "pool",
        "create",
        "big",
        "--scm-size",
        "64M",
        "--nvme-size",
        "200M",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("filesystem of the bdev file"),
        "{}",
        stderr(&o)
    );
    sys.create_pool("tank", "64M", Some("64M"));
    ok(sys.daos(&["container", "create", "tank", "c"]));
    // Fill the pool with 12 MB values until it refuses one.
    let (big, _) = file(sys.path(), 7, 12 << 20);
    let mut stored = 0;
    for i in 0..10 {
        let o = put(&sys, &format!("k{i}"), &big);
        if o.status.code() != Some(0) {
            assert!(stderr(&o).contains("DER_NOSPACE"), "{}", stderr(&o));
            break;
        }
        stored += 1;
    }
    assert!((2..10).contains(&stored), "{stored} values of 12 MB fit");
    // Replace two of them with tiny values: the space they held takes a new 5 MB value.
    let (tiny, _) = file(sys.path(), 8, 10);
    ok(put(&sys, "k0", &tiny));
    ok(put(&sys, "k1", &tiny));
    let (five, five_data) = file(sys.path(), 9, 5 << 20);
    ok(put(&sys, "new", &five));
    let out = sys.path().join("out.bin");
    assert!(get(&sys, "new", &out).is_some_and(|v| v == five_data));
    sys.stop(&mut server);
}
