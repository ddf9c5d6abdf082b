//! Smoke test of daos_bench: each benchmark runs briefly on tiny sizes, its data verifies and
//! its JSON parses with the fields others compare.

use daos_tests::*;
use std::time::Duration;

/// Runs daos_bench with `args` plus `--json FILE`, asserts it succeeded, and returns its
/// table and JSON document.
fn bench_json(args: &[&str], dir: &std::path::Path) -> (String, serde_json::Value) {
    let json = dir.join("out.json");
    let mut all = args.to_vec();
    all.extend(["--json", json.to_str().expect("utf8")]);
    let out = run("daos_bench", &all, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json file")).expect("json");
    (String::from_utf8_lossy(&out.stdout).into_owned(), v)
}

#[test]
fn fabric_benchmark_smoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (table, v) = bench_json(
        &["fabric", "--sizes", "64,4k", "-I", "50", "--repeat", "2"],
        dir.path(),
    );
    assert!(
        table.starts_with("bytes   #sent  #ack  total   time   MB/sec    usec/xfer  Mxfers/sec"),
        "{table}"
    );
    assert!(table.contains("\n4k      50     =50   400k"), "{table}");
    assert_eq!(v["benchmark"], "fabric");
    assert!(
        v["run"]["git_revision"].is_string() && v["run"]["machine"]["cores"].as_u64().is_some()
    );
    let r = &v["results"][1];
    assert_eq!(r["bytes"], 4096);
    // Neither side of the ping-pong allocates per message.
    assert_eq!(r["allocations_per_op"], 0.0, "{r}");
    assert_eq!(r["usec_per_xfer"]["count"], 2);
    assert!(
        r["usec_per_xfer"]["median"]
            .as_f64()
            .is_some_and(|m| m > 0.0)
    );
    // --runtime instead of -I: the round trips done in the time are reported.
    let (_, v) = bench_json(
        &[
            "fabric",
            "--sizes",
            "64",
            "--runtime",
            "0.4",
            "--repeat",
            "2",
        ],
        dir.path(),
    );
    assert!(
        v["results"][0]["iterations"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{v}"
    );
    let bad = run("daos_bench", &["fabric", "--runtime", "0"], &[]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--runtime 0: use more than 0"));
    let bad = run("daos_bench", &["fabric", "--sizes", "12q"], &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--sizes: invalid size"));
}

#[test]
fn fabric_server_and_client_in_separate_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let mut server = Proc::start(
        "daos_bench",
        &[
            "fabric",
            "--server",
            "--addr",
            "127.0.0.1",
            "--port",
            &port,
            "--once",
        ],
        &[],
        dir.path(),
    );
    assert!(
        wait_until(Duration::from_secs(20), || log(
            dir.path(),
            "daos_bench",
            "out"
        )
        .contains("listening on 127.0.0.1:")),
        "server did not start: {}",
        log(dir.path(), "daos_bench", "err")
    );
    let target = format!("127.0.0.1:{port}");
    let out = run(
        "daos_bench",
        &[
            "fabric", "--client", &target, "--sizes", "64,64k", "-I", "50", "--repeat", "1",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("\n64k     50     =50   6400k"), "{table}");
    // `--once`: the server leaves after its client says goodbye.
    assert_eq!(server.wait(Duration::from_secs(20)), Some(0));

    // Nobody listening: the client says so and how to start a server, instead of hanging.
    let gone = run(
        "daos_bench",
        &["fabric", "--client", &target, "--sizes", "64", "-I", "5"],
        &[],
    );
    assert_eq!(gone.status.code(), Some(1));
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(
        err.contains(&format!(
            "no answer from a daos_bench fabric server at {target}"
        )) && err.contains("--server"),
        "{err}"
    );
    let big = run(
        "daos_bench",
        &["fabric", "--client", &target, "--sizes", "2m"],
        &[],
    );
    assert!(String::from_utf8_lossy(&big.stderr).contains("--sizes: 2097152 bytes"));
}

#[test]
fn storage_benchmark_smoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bdev.dat");
    let fio = std::process::Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut args = vec![
        "storage",
        "--file",
        file.to_str().expect("utf8"),
        "--size",
        "8m",
        "--workloads",
        "randwrite/4k,randread/4k,read/1m",
        "--qd",
        "4",
        "--runtime",
        "0.3",
    ];
    if fio {
        args.push("--compare-fio");
    } else {
        eprintln!(
            "SKIP part: fio is not installed (scripts/setup.sh installs it); no fio comparison"
        );
    }
    let (table, v) = bench_json(&args, dir.path());
    assert!(table.starts_with("workload   block  qd   IOPS"), "{table}");
    assert_eq!(v["benchmark"], "storage");
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["workload"], "randwrite");
    assert_eq!(results[2]["block"], 1 << 20);
    for r in results {
        assert!(r["ops"].as_u64().is_some_and(|n| n > 0), "{r}");
        assert!(r["ours"]["p99_us"].as_f64().is_some_and(|p| p > 0.0), "{r}");
        // No allocation per I/O: a release build makes none in the loop; a debug build makes
        // a handful once (not yet traced). Allocating per I/O would make at least `ops`.
        let ops = r["ops"].as_f64().expect("ops");
        assert!(ops > 32.0, "{r}");
        assert!(
            r["allocations_per_op"]
                .as_f64()
                .is_some_and(|a| a * ops < 16.0),
            "{r}"
        );
        if fio {
            assert!(r["iops_ratio"].as_f64().is_some_and(|x| x > 0.0), "{r}");
        }
    }
    // Every read checked the stamps the writes left.
    assert_eq!(results[1]["verified_reads"], results[1]["ops"]);
    assert!(results[1]["ops"].as_u64().is_some_and(|n| n > 0));

    // Two targets, each on its own core and slice of the file.
    if std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) {
        let (_, v) = bench_json(
            &[
                "storage",
                "--file",
                file.to_str().expect("utf8"),
                "--size",
                "8m",
                "--workloads",
                "randread/4k",
                "--qd",
                "4",
                "--runtime",
                "0.3",
                "--targets",
                "2",
            ],
            dir.path(),
        );
        let r = &v["results"][0];
        assert_eq!(r["targets"], 2);
        assert_eq!(r["verified_reads"], r["ops"]);
        let ops = r["ops"].as_f64().expect("ops");
        assert!(
            r["allocations_per_op"]
                .as_f64()
                .is_some_and(|a| a * ops < 16.0),
            "{r}"
        );
    } else {
        eprintln!("SKIP part: one CPU only; no two-target run");
    }

    // A user's file is kept; bad flags name themselves and the fix.
    assert!(file.exists());
    let bad = run(
        "daos_bench",
        &["storage", "--workloads", "randread/3k"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a multiple of 4k"));
    let bad = run(
        "daos_bench",
        &["storage", "--size", "1m", "--cpu", "4096"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--cpu"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = run("daos_bench", &["storage", "--size", "5000"], &[]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--size 5000: use a non-zero multiple of 4k")
    );
    let bad = run("daos_bench", &["storage", "--workloads", "scan/4k"], &[]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown pattern \"scan\""));
    let bad = run(
        "daos_bench",
        &["storage", "--size", "4k", "--workloads", "read/1m"],
        &[],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--size 4k is smaller"));
}

#[test]
fn storage_benchmark_detects_corrupt_reads() {
    // Overwrite one block of a prepared file behind the benchmark's back: the read run must
    // fail on it instead of reporting a number.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bdev.dat");
    daos_bench::storage::prepare(&file, 1 << 20).expect("prepare");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .expect("open");
        f.write_all_at(&[0xff; 8], 8192).expect("corrupt");
        f.sync_all().expect("sync");
    }
    let w = daos_bench::storage::Workload {
        rw: daos_bench::storage::Rw::Read,
        block: 4096,
    };
    let err = daos_bench::storage::run(&file, 1 << 20, w, 2, Duration::from_millis(200), 1, 0)
        .expect_err("corruption found");
    assert!(
        err.contains("offset 8192") && err.contains("did not verify"),
        "{err}"
    );
}

#[test]
fn storage_benchmark_deep_queues_verify_every_read() {
    // At a queue depth of 128 many completions arrive per reap; each must be verified and
    // its slot reissued (the loop once kept only 64 of them).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bdev.dat");
    daos_bench::storage::prepare(&file, 8 << 20).expect("prepare");
    let w = daos_bench::storage::Workload {
        rw: daos_bench::storage::Rw::RandRead,
        block: 4096,
    };
    let r = daos_bench::storage::run(&file, 8 << 20, w, 128, Duration::from_millis(300), 1, 0)
        .expect("run");
    assert!(r.ops > 128, "{r:?}");
    assert_eq!(r.verified_reads, r.ops, "{r:?}");
}

#[test]
fn io_benchmark_smoke_against_a_running_system() {
    let sys = System::with_targets(1, 2);
    let mut server = sys.start_joined();
    ok(sys.dmg(&[
        "-i",
        "pool",
        "create",
        "tank",
        "--scm-size",
        "256M",
        "--nvme-size",
        "800M",
    ]));
    let host = format!("localhost:{}", sys.port);
    let (table, v) = bench_json(
        &[
            "io",
            "-i",
            "-l",
            &host,
            "--pool",
            "tank",
            "--sizes",
            "4k,64k",
            "--qd",
            "4",
            "--threads",
            "2",
            "--objects",
            "64",
            "--runtime",
            "0.3",
            "--repeat",
            "2",
        ],
        sys.path(),
    );
    assert!(table.starts_with("op      size   threads qd"), "{table}");
    assert_eq!(v["benchmark"], "io");
    assert_eq!(v["targets"], 2);
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 4, "update and fetch for each size");
    for r in results {
        assert!(r["ops"].as_u64().is_some_and(|n| n > 0), "{r}");
        assert!(
            r["numbers"]["p50_us"].as_f64().is_some_and(|p| p > 0.0),
            "{r}"
        );
        if r["op"] == "fetch" {
            assert_eq!(r["verified"], r["ops"], "every fetch verified: {r}");
        }
        assert_eq!(r["repeats"]["iops"]["count"], 2, "{r}");
        assert!(r["repeats"]["iops"]["min"].as_f64() <= r["repeats"]["iops"]["max"].as_f64());
    }
    // The benchmark's own container is gone afterwards.
    let list = ok(sys.daos(&["container", "list", "tank"]));
    assert_eq!(list, "No containers in pool tank\n");
    fails(
        run(
            "daos_bench",
            &[
                "io",
                "-i",
                "-l",
                &host,
                "--pool",
                "tank",
                "--qd",
                "8",
                "--objects",
                "4",
            ],
            &[],
        ),
        "--objects 4: use at least the queue depth (8)",
    );
    sys.stop(&mut server);
}

#[test]
fn dmg_network_check_runs_the_fabric_check_between_hosts() {
    let sys = System::new(1);
    let mut server = sys.start(&[]);
    sys.wait_log("listening on", 1, 30);
    let text = ok(sys.dmg(&["-i", "network", "check", "--sizes", "64,4k", "-I", "50"]));
    let host = format!("localhost:{}", sys.port);
    assert!(
        text.starts_with(&format!("Fabric check: {host} -> {host} (127.0.0.1:")),
        "{text}"
    );
    assert!(
        text.contains("provider tcp;ofi_rxm\nbytes   #sent  #ack   usec/xfer"),
        "{text}"
    );
    assert!(text.contains("\n64      50     =50    "), "{text}");
    assert!(text.contains("\n4k      50     =50    "), "{text}");
    let j: serde_json::Value = serde_json::from_str(&ok(
        sys.dmg(&["-i", "-j", "network", "check", "--sizes", "64", "-I", "20"])
    ))
    .expect("json");
    assert_eq!(j["status"], 0);
    assert_eq!(j["response"]["results"][0]["bytes"], 64);
    assert_eq!(j["response"]["results"][0]["allocations_per_op"], 0.0);
    fails(
        sys.dmg(&["-i", "network", "check", "-p", "nosuchprov", "-I", "5"]),
        "provider nosuchprov",
    );
    sys.stop(&mut server);
}

#[test]
fn storage_benchmark_through_the_target_store_smoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bdev.dat");
    let d = dir.path().to_str().expect("utf8");
    let f = file.to_str().expect("utf8");
    for extra in [&["--file", f][..], &["--malloc", "--targets", "2"][..]] {
        let mut args = vec![
            "storage",
            "--store",
            "--scm-dir",
            d,
            "--scm-size",
            "4m",
            "--size",
            "16m",
            "--workloads",
            "randwrite/4k,randread/4k,write/64k,read/64k",
            "--runtime",
            "0.2",
            "--repeat",
            "2",
        ];
        args.extend_from_slice(extra);
        let (table, v) = bench_json(&args, dir.path());
        assert!(table.contains("\nstore-randread 4k     1    "), "{table}");
        let results = v["results"].as_array().expect("results");
        assert_eq!(results.len(), 4);
        for r in results {
            assert!(r["ops"].as_u64().is_some_and(|n| n > 0), "{r}");
            assert_eq!(r["queue_depth"], 1, "{r}");
            assert_eq!(r["repeats"]["iops"]["count"], 2, "{r}");
            if r["workload"].as_str().is_some_and(|w| w.contains("read")) {
                assert_eq!(r["verified_reads"], r["ops"], "every read verified: {r}");
            }
        }
    }
    assert!(
        !dir.path().join("daos_bench_vos-0").exists(),
        "the store's SCM files are removed"
    );
}

#[test]
fn bad_benchmark_flags_name_the_flag() {
    for (args, fragment) in [
        (
            &["storage", "--repeat", "0"][..],
            "--repeat 0: use 1 to 100",
        ),
        (
            &["storage", "--store", "--scm-dir", "/nonexistent/dir"][..],
            "--scm-dir /nonexistent/dir: not a directory",
        ),
        (
            &["storage", "--store", "--scm-size", "4k"][..],
            "--scm-size 4k: use at least 1m",
        ),
        (
            &["io", "--pool", "p", "--repeat", "0"][..],
            "--repeat 0: use 1 to 100",
        ),
        (
            &["io", "--pool", "p", "--sizes", "2m"][..],
            "--sizes: invalid size \"2m\"",
        ),
    ] {
        fails(run("daos_bench", args, &[]), fragment);
    }
}
