//! A system over three hosts (network namespaces on one bridge, root only): the management
//! service replicated on all three, one `dmg storage format` for all, ranks 0-2 joined, the
//! leader's host killed and a new leader elected with membership intact, the killed host back
//! with its replica caught up and its rank rejoined.

use std::time::{Duration, Instant};

use daos_tests::cluster::Cluster;
use daos_tests::*;

const ALL: &str = "h[1-3]:10001";

fn cluster(name: &str, count: usize, replicas: usize) -> Option<Cluster> {
    match Cluster::new(count, replicas) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("SKIPPED {name}: {e} (the multi-host tests run as root, as in CI)");
            None
        }
    }
}

/// `dmg system leader-query` from host `from`: (leader, unresponsive replicas).
fn leader(c: &Cluster, from: usize, hosts: &str) -> Option<(String, Vec<String>)> {
    let o = c.dmg(from, hosts, &["-j", "system", "leader-query"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    let l = v["response"]["current_leader"].as_str()?.to_string();
    let down = v["response"]["down_replicas"]
        .as_array()?
        .iter()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    (!l.is_empty()).then_some((l, down))
}

fn joined(c: &Cluster, from: usize, hosts: &str, n: usize) -> bool {
    c.members(from, hosts)
        .is_ok_and(|m| m.len() == n && m.iter().all(|(_, _, s)| s == "joined"))
}

#[test]
fn three_hosts_one_format_a_leader_killed_and_its_host_back() {
    let Some(mut c) = cluster(
        "three_hosts_one_format_a_leader_killed_and_its_host_back",
        3,
        3,
    ) else {
        return;
    };
    c.start_all();
    for i in 1..=3 {
        c.wait_log(i, "SCM format required on instance 0", 30);
    }
    let o = c.dmg(1, ALL, &["storage", "format"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}\n{}",
        stdout(&o),
        stderr(&o),
        c.logs()
    );
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 2, ALL, 3)),
        "ranks 0-2 joined: {:?}\n{}",
        c.members(2, ALL),
        c.logs()
    );
    let members = c
        .members(3, "h3:10001")
        .expect("members from a follower's host");
    let ranks: Vec<u32> = members.iter().map(|m| m.0).collect();
    assert_eq!(ranks, [0, 1, 2]);
    // Rank 0 is the bootstrap replica's engine (h1 = 10.250.0.1).
    assert!(members[0].1.starts_with("10.250.0.1:"), "{members:?}");
    let table = stdout(&c.dmg(1, ALL, &["system", "query"]));
    assert!(
        table.contains("[0-2]") && table.contains("Joined"),
        "{table}"
    );
    // Every replica becomes a voter, the bootstrap one leads.
    assert!(
        wait_until(Duration::from_secs(30), || {
            (1..=3).all(|i| c.log(1).contains(&format!("adding replica h{i}:10001")) || i == 1)
        }),
        "voters added\n{}",
        c.logs()
    );
    let (l, down) = leader(&c, 2, "h2:10001").expect("a leader");
    assert_eq!(l, "h1:10001");
    assert!(down.is_empty(), "{down:?}");

    // A pool over the three ranks, created from a follower's host; I/O from h1 reaches every
    // host's target, verified byte for byte.
    let o = c.dmg(
        3,
        ALL,
        &[
            "pool",
            "create",
            "tank",
            "--scm-size",
            "384M",
            "--nvme-size",
            "768M",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}\n{}",
        stdout(&o),
        stderr(&o),
        c.logs()
    );
    let q = pool_query(&c, 2, "tank");
    assert_eq!(q["total_targets"], 3, "{q}");
    assert_eq!(q["enabled_ranks"], "0-2", "{q}");
    let o = c.run(
        1,
        "daos_bench",
        &[
            "io",
            "-i",
            "-l",
            ALL,
            "--pool",
            "tank",
            "--objects",
            "300",
            "--qd",
            "8",
            "--sizes",
            "4k,64k",
            "--runtime",
            "1",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}\n{}",
        stdout(&o),
        stderr(&o),
        c.logs()
    );
    let q = pool_query(&c, 1, "tank");
    let scm = &q["tier_stats"][0];
    let per_target = scm["total"].as_u64().expect("total") / 3;
    assert!(
        scm["max"].as_u64().expect("max") < per_target,
        "every target (one per host) holds data: {q}"
    );
    // A value kept across the rest of the test.
    let input = c.path(1).join("value.bin");
    let data: Vec<u8> = (0..(1u32 << 20) + 77)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    std::fs::write(&input, &data).expect("value");
    ok(c.run(
        1,
        "daos",
        &["-i", "-l", ALL, "container", "create", "tank", "c1"],
    ));
    ok(c.run(
        1,
        "daos",
        &[
            "-i",
            "-l",
            ALL,
            "object",
            "put",
            "tank",
            "c1",
            "kept",
            input.to_str().expect("utf8"),
        ],
    ));

    // Kill the leader's host: a new leader, the same membership, from either survivor.
    let started = Instant::now();
    c.kill(1);
    let mut new = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            new = leader(&c, 2, "h2:10001,h3:10001").filter(|(l, _)| l != "h1:10001");
            new.is_some()
        }),
        "a new leader after h1 died\n{}",
        c.logs()
    );
    let (l, down) = new.expect("leader");
    eprintln!(
        "leader failover: h1:10001 -> {l} within {} ms of the kill (DAOS: 2000 ms election timeout)",
        started.elapsed().as_millis()
    );
    assert_eq!(down, ["h1:10001"], "h1 is listed unresponsive");
    let m = c
        .members(3, "h2:10001,h3:10001")
        .expect("members after failover");
    assert_eq!(m.iter().map(|m| m.0).collect::<Vec<_>>(), [0, 1, 2]);
    // The dead host's rank shows Unresponsive within a bounded time; the others stay joined.
    assert!(
        wait_until(Duration::from_secs(20), || {
            c.members(3, "h2:10001,h3:10001").is_ok_and(|m| {
                m.iter().map(|m| m.2.as_str()).collect::<Vec<_>>()
                    == ["unresponsive", "joined", "joined"]
            })
        }),
        "rank 0 unresponsive: {:?}\n{}",
        c.members(3, "h2:10001,h3:10001"),
        c.logs()
    );

    // h1 comes back: its replica catches up and its engine rejoins as rank 0.
    // The survivors take a new pool (on their own ranks: rank 0 is Unresponsive).
    let o = c.dmg(
        2,
        "h2:10001,h3:10001",
        &["pool", "create", "after", "--scm-size", "128M"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}\n{}",
        stdout(&o),
        stderr(&o),
        c.logs()
    );
    c.start(1);
    c.wait_log(1, "rejoined the system as rank 0", 60);
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 1, "h1:10001", 3)),
        "h1 back with rank 0 joined: {:?}\n{}",
        c.members(1, "h1:10001"),
        c.logs()
    );
    // h1's replica caught up: it has the pool created while it was down.
    assert!(
        wait_until(Duration::from_secs(20), || {
            c.log(1)
                .contains("management service replica 0 of 3 started")
                && leader(&c, 1, "h1:10001").is_some_and(|(_, d)| d.is_empty())
        }),
        "h1's replica back\n{}",
        c.logs()
    );
    let list = stdout(&c.dmg(1, "h1:10001", &["pool", "list"]));
    assert!(list.contains("tank") && list.contains("after"), "{list}");

    // Every daos_server stopped and restarted: ranks, pools, containers and data intact.
    for i in 1..=3 {
        c.stop(i);
    }
    c.start_all();
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 2, ALL, 3)),
        "all back: {:?}\n{}",
        c.members(2, ALL),
        c.logs()
    );
    let list = stdout(&c.dmg(3, ALL, &["pool", "list"]));
    assert!(list.contains("tank") && list.contains("after"), "{list}");
    let output = c.path(1).join("out.bin");
    ok(c.run(
        2,
        "daos",
        &[
            "-i",
            "-l",
            ALL,
            "object",
            "get",
            "tank",
            "c1",
            "kept",
            output.to_str().expect("utf8"),
        ],
    ));
    assert!(
        std::fs::read(&output).expect("read back") == data,
        "the value differs"
    );
}

/// `dmg pool query -j` from host `from`.
fn pool_query(c: &Cluster, from: usize, pool: &str) -> serde_json::Value {
    let o = c.dmg(from, ALL, &["-j", "pool", "query", pool]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
    assert_eq!(v["status"], 0, "{v}");
    v["response"].clone()
}
