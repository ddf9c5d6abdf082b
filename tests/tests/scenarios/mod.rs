//! The multi-host scenarios, run on namespace hosts (`multihost.rs`, root) and on loopback
//! hosts (`loopback.rs`, any user): the same steps, the partition case only where links can be
//! cut.

use std::time::{Duration, Instant};

use daos_tests::cluster::Cluster;
use daos_tests::hosts::Mode;
use daos_tests::*;

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

/// Starts every host's daos_server, formats all `n` of them with one dmg from the first
/// (`hosts`: the host list dmg is given) and waits for their ranks to join.
fn start_formatted(c: &mut Cluster, hosts: &str, n: usize) {
    c.start_all();
    for i in 1..=n {
        c.wait_log(i, "SCM format required on instance 0", 30);
    }
    passed(c, c.dmg(1, hosts, &["storage", "format"]));
    assert!(
        wait_until(Duration::from_secs(60), || joined(c, 1, hosts, n)),
        "{:?}\n{}",
        c.members(1, hosts),
        c.logs()
    );
}

/// Pool `tank` over every rank (128 MB SCM and 256 MB NVMe per rank), created from host
/// `from` through `hosts`.
fn create_tank(c: &Cluster, from: usize, hosts: &str) {
    passed(
        c,
        c.dmg(
            from,
            hosts,
            &[
                "pool",
                "create",
                "tank",
                "--scm-size",
                "128M",
                "--nvme-size",
                "256M",
            ],
        ),
    );
}

/// Three hosts, the MS on all: one format, ranks 0-2, a pool and I/O on every host, the
/// leader's host killed ten times, every server stopped and restarted, system stop/start.
pub fn three_hosts(mut c: Cluster) {
    let all = c.all();
    let all = all.as_str();
    let (h1, h2, h3) = (c.at(1), c.at(2), c.at(3));
    let h23 = format!("{h2},{h3}");
    c.start_all();
    for i in 1..=3 {
        c.wait_log(i, "SCM format required on instance 0", 30);
    }
    let o = c.dmg(1, all, &["storage", "format"]);
    passed(&c, o);
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 2, all, 3)),
        "ranks 0-2 joined: {:?}\n{}",
        c.members(2, all),
        c.logs()
    );
    let members = c
        .members(3, &h3)
        .unwrap_or_else(|e| panic!("members from a follower's host: {e}\n{}", c.logs()));
    let ranks: Vec<u32> = members.iter().map(|m| m.0).collect();
    assert_eq!(ranks, [0, 1, 2]);
    // Rank 0 is the bootstrap replica's engine (h1's).
    assert!(
        members[0].1.starts_with(&format!("{}:", c.hosts.addr(1))),
        "{members:?}"
    );
    // The leader pushed the group map: every host's engine knows its three peers.
    for i in 1..=3 {
        c.wait_log(i, "(3 ranks: 0,1,2)", 20);
    }
    let table = stdout(&c.dmg(1, all, &["system", "query"]));
    assert!(
        table.contains("[0-2]") && table.contains("Joined"),
        "{table}"
    );
    // Every replica becomes a voter, the bootstrap one leads.
    assert!(
        wait_until(Duration::from_secs(30), || {
            (1..=3).all(|i| c.log(1).contains(&format!("adding replica {}", c.at(i))) || i == 1)
        }),
        "voters added\n{}",
        c.logs()
    );
    let (l, down) = leader(&c, 2, &h2).expect("a leader");
    assert_eq!(l, h1);
    assert!(down.is_empty(), "{down:?}");

    // A pool over the three ranks, created from a follower's host; I/O from h1 reaches every
    // host's target, verified byte for byte.
    create_tank(&c, 3, all);
    let q = pool_query(&c, 2, "tank");
    assert_eq!(q["total_targets"], 3, "{q}");
    assert_eq!(q["enabled_ranks"], "0-2", "{q}");
    let o = bench_io(
        &c,
        1,
        &["--objects", "300", "--qd", "8", "--sizes", "4k,64k"],
    );
    // The client's pool map says which system map it was built from.
    assert!(
        stderr(&o).contains("3 targets on 3 ranks, system map version "),
        "{}",
        stderr(&o)
    );
    // daos_bench reports each rank's share beside the aggregate.
    let text = stdout(&o);
    let per_rank: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("per rank:"))
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    for op in ["update", "fetch"] {
        for rank in ["0", "1", "2"] {
            assert!(
                per_rank.iter().any(|f| f.len() >= 5
                    && f[0] == op
                    && f[2] == rank
                    && f[3].parse::<u64>().is_ok_and(|n| n > 0)),
                "{op} on rank {rank}: {text}"
            );
        }
    }
    let q = pool_query(&c, 1, "tank");
    let scm = &q["tier_stats"][0];
    let per_target = scm["total"].as_u64().expect("total") / 3;
    assert!(
        scm["max"].as_u64().expect("max") < per_target,
        "every target (one per host) holds data: {q}"
    );
    // Replicated objects: each update on all three hosts, fetched back and verified.
    bench_io(
        &c,
        2,
        &[
            "--oclass",
            "RP_3G1",
            "--objects",
            "64",
            "--qd",
            "4",
            "--sizes",
            "4k",
        ],
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
        &["-i", "-l", all, "container", "create", "tank", "c1"],
    ));
    ok(c.run(
        1,
        "daos",
        &[
            "-i",
            "-l",
            all,
            "object",
            "put",
            "tank",
            "c1",
            "kept",
            input.to_str().expect("utf8"),
        ],
    ));

    // A replicated value: three replicas, one per host.
    let rp = c.path(1).join("replicated.bin");
    let rdata: Vec<u8> = (0..(3u32 << 20) + 5)
        .map(|i| (i * 17 % 241) as u8)
        .collect();
    std::fs::write(&rp, &rdata).expect("value");
    let put = |class: &str, key: &str| {
        c.run(
            1,
            "daos",
            &[
                "-i",
                "-l",
                all,
                "object",
                "put",
                "--oclass",
                class,
                "tank",
                "c1",
                key,
                rp.to_str().expect("utf8"),
            ],
        )
    };
    ok(put("RP_3G1", "replicated"));
    // Classes the pool cannot hold, or not built yet, are refused with the reason.
    let o = put("RP_4G1", "wide");
    assert!(
        stderr(&o).contains("needs 4 fault domains at rd_lvl node") && stderr(&o).contains("has 3"),
        "{}",
        stderr(&o)
    );
    let o = put("EC_2P1G1", "ec");
    assert!(stderr(&o).contains("not supported yet"), "{}", stderr(&o));

    // Kill the leader's host: a new leader, the same membership, from either survivor.
    let started = Instant::now();
    c.kill(1);
    let mut new = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            new = leader(&c, 2, &h23).filter(|(l, _)| l != &h1);
            new.is_some()
        }),
        "a new leader after h1 died\n{}",
        c.logs()
    );
    let (l, down) = new.expect("leader");
    let mut failovers = vec![started.elapsed()];
    eprintln!(
        "leader failover: {h1} -> {l} within {} ms of the kill (DAOS: 2000 ms election timeout)",
        started.elapsed().as_millis()
    );
    assert_eq!(down, std::slice::from_ref(&h1), "h1 is listed unresponsive");
    let m = c.members(3, &h23).expect("members after failover");
    assert_eq!(m.iter().map(|m| m.0).collect::<Vec<_>>(), [0, 1, 2]);
    // The new leader knows the pool; its dead rank shows disabled and the pool degraded.
    let q = pool_query(&c, 3, "tank");
    assert_eq!(q["label"], "tank", "{q}");
    assert_eq!(q["disabled_ranks"], "0", "{q}");
    assert_eq!(q["disabled_targets"], 1, "{q}");
    assert_eq!(q["state"], "Degraded", "{q}");
    let text = stdout(&c.dmg(3, &h23, &["pool", "query", "tank"]));
    assert!(
        text.contains("- Disabled ranks: 0") && text.contains("- Data redundancy: degraded"),
        "{text}"
    );
    // The replicated value reads back whole with its first host gone.
    let rout = c.path(2).join("replicated.out");
    let o = c.run(
        2,
        "daos",
        &[
            "-i",
            "-l",
            &h23,
            "object",
            "get",
            "--oclass",
            "RP_3G1",
            "tank",
            "c1",
            "replicated",
            rout.to_str().expect("utf8"),
        ],
    );
    passed(&c, o);
    assert!(
        std::fs::read(&rout).expect("read back") == rdata,
        "the replicated value differs"
    );
    // The dead host's rank shows Unresponsive within a bounded time; the others stay joined.
    assert!(
        wait_until(Duration::from_secs(20), || {
            c.members(3, &h23).is_ok_and(|m| {
                m.iter().map(|m| m.2.as_str()).collect::<Vec<_>>()
                    == ["unresponsive", "joined", "joined"]
            })
        }),
        "rank 0 unresponsive: {:?}\n{}",
        c.members(3, &h23),
        c.logs()
    );

    // h1 comes back: its replica catches up and its engine rejoins as rank 0.
    // The survivors take a new pool (on their own ranks: rank 0 is Unresponsive).
    let o = c.dmg(2, &h23, &["pool", "create", "after", "--scm-size", "128M"]);
    passed(&c, o);
    c.start(1);
    c.wait_log(1, "rejoined the system as rank 0", 60);
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 1, &h1, 3)),
        "h1 back with rank 0 joined: {:?}\n{}",
        c.members(1, &h1),
        c.logs()
    );
    // h1's replica caught up: it has the pool created while it was down.
    assert!(
        wait_until(Duration::from_secs(20), || {
            c.log(1)
                .contains("management service replica 0 of 3 started")
                && leader(&c, 1, &h1).is_some_and(|(_, d)| d.is_empty())
        }),
        "h1's replica back\n{}",
        c.logs()
    );
    let list = stdout(&c.dmg(1, &h1, &["pool", "list"]));
    assert!(list.contains("tank") && list.contains("after"), "{list}");

    // Nine more rounds: kill whichever host leads, time until a write of the management
    // service commits again (a pool create by the survivors), bring the host back, check its
    // replica caught up and its rank came back the same.
    let rounds: usize = std::env::var("FAILOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    for round in 1..rounds {
        let (l, _) = leader(&c, 1, all).expect("a leader");
        let dead: usize = (1..=3)
            .find(|i| c.at(*i) == l)
            .expect("the leader is a host");
        let members = c.members(1, all).expect("members");
        let addrs: Vec<String> = (0..=3).map(|i| c.hosts.addr(i)).collect();
        let rank_of = |i: usize| {
            members
                .iter()
                .find(|m| m.1.starts_with(&format!("{}:", addrs[i])))
                .map(|m| m.0)
                .expect("rank of host")
        };
        let survivors: Vec<usize> = (1..=3).filter(|i| *i != dead).collect();
        let hosts: Vec<String> = survivors.iter().map(|i| c.at(*i)).collect();
        let ranks: Vec<String> = survivors.iter().map(|i| rank_of(*i).to_string()).collect();
        let dead_rank = rank_of(dead);
        let rejoins = c.log(dead).matches("rejoined the system as rank").count();
        let label = format!("round{round}");
        let t = Instant::now();
        c.kill(dead);
        let committed = wait_until(Duration::from_secs(60), || {
            c.dmg(
                survivors[0],
                &hosts.join(","),
                &[
                    "pool",
                    "create",
                    &label,
                    "--ranks",
                    &ranks.join(","),
                    "--scm-size",
                    "128M",
                ],
            )
            .status
            .code()
                == Some(0)
        });
        assert!(
            committed,
            "round {round}: no write after killing h{dead}\n{}",
            c.logs()
        );
        failovers.push(t.elapsed());
        c.start(dead);
        c.wait_log_count(dead, "rejoined the system as rank", rejoins + 1, 60);
        assert!(
            wait_until(Duration::from_secs(30), || c.replica_state(dead).is_ok_and(
                |db| {
                    db["pools"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|p| p["label"] == label.as_str()))
                }
            )),
            "round {round}: h{dead}'s replica has pool {label}: {:?}",
            c.replica_state(dead)
        );
        assert!(
            wait_until(Duration::from_secs(30), || joined(&c, 1, all, 3)),
            "round {round}: {:?}",
            c.members(1, all)
        );
        assert_eq!(rank_of(dead), dead_rank);
        let back = c.members(1, all).expect("members");
        assert!(
            back.iter()
                .any(|m| m.0 == dead_rank && m.1.starts_with(&format!("{}:", c.hosts.addr(dead))))
        );
    }
    let mut ms: Vec<u128> = failovers.iter().map(|d| d.as_millis()).collect();
    ms.sort_unstable();
    eprintln!(
        "MS leader failover, kill to first committed write, {} rounds: min {} ms, median {} ms, max {} ms \
         (DAOS: hashicorp raft with a 2000 ms election timeout, joins batched every 250 ms)",
        ms.len(),
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );

    // Every daos_server stopped and restarted: ranks, pools, containers and data intact.
    for i in 1..=3 {
        c.stop(i);
    }
    c.start_all();
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 2, all, 3)),
        "all back: {:?}\n{}",
        c.members(2, all),
        c.logs()
    );
    let list = stdout(&c.dmg(3, all, &["pool", "list"]));
    assert!(list.contains("tank") && list.contains("after"), "{list}");
    // System-wide stop and start from any host: every host's ranks, one grouped table.
    let stop = passed(&c, c.dmg(2, all, &["system", "stop"]));
    assert!(
        stdout(&stop).contains("[0-2]")
            && stdout(&stop).contains("stop")
            && stdout(&stop).contains("OK"),
        "{}",
        stdout(&stop)
    );
    let m = c.members(3, all).expect("members");
    assert!(m.iter().all(|m| m.2 == "stopped"), "{m:?}");
    let start = passed(&c, c.dmg(3, all, &["system", "start"]));
    assert!(
        stdout(&start).contains("[0-2]") && stdout(&start).contains("start"),
        "{}",
        stdout(&start)
    );
    assert!(joined(&c, 1, all, 3), "{:?}", c.members(1, all));
    let output = c.path(1).join("out.bin");
    passed(
        &c,
        c.run(
            2,
            "daos",
            &[
                "-i",
                "-l",
                all,
                "object",
                "get",
                "tank",
                "c1",
                "kept",
                output.to_str().expect("utf8"),
            ],
        ),
    );
    assert!(
        std::fs::read(&output).expect("read back") == data,
        "the value differs"
    );
}

/// From host 1: how many copies of replicated objects of pool `tank`'s containers `conts`
/// lie on targets their layout does not name (an error names what could not be listed; at
/// least one replicated object must exist).
fn copies_outside_layout(c: &Cluster, all: &str, conts: &[[u8; 16]]) -> Result<usize, String> {
    use daos_client::{Session, SessionOpts, connect};
    let (all, conts) = (all.to_string(), conts.to_vec());
    c.hosts
        .in_host(1, move || -> Result<usize, String> {
            let control = daos_config::control::Control::default();
            let target =
                daos_control::Target::new(&control, Some(&all), true).map_err(|e| e.message)?;
            let map = connect::connect_blocking(&target, "tank", daos_client::container::FLAG_RW)
                .map_err(|e| e.to_string())?;
            let mut s = Session::open(std::sync::Arc::new(map), SessionOpts::default())
                .map_err(|e| e.to_string())?;
            let (mut outside, mut replicated) = (0, 0);
            for cont in conts {
                for t in 0..s.map().targets.len() {
                    // Every page of the target's list.
                    let (mut oids, mut after) = (Vec::new(), None);
                    loop {
                        let req = daos_wire::Request::ListOids {
                            after: after.unwrap_or(0),
                            from_start: after.is_none(),
                        };
                        let body = s.call(t, cont, &req).map_err(|e| e.to_string())?;
                        let (more, page) = daos_wire::reply::Oids::get(&body)
                            .map_err(|e| format!("object list: {e:?}"))?;
                        after = page.last().copied().or(after);
                        oids.extend(page);
                        if !more {
                            break;
                        }
                    }
                    for oid in oids {
                        let Ok(class) = daos_placement::ObjectClass::of_oid(oid) else {
                            continue;
                        };
                        if class.redun.group_size() < 2 {
                            continue;
                        }
                        replicated += 1;
                        if !s
                            .map()
                            .final_layout(oid)
                            .map_err(|e| e.to_string())?
                            .contains(&t)
                        {
                            outside += 1;
                        }
                    }
                }
            }
            if replicated == 0 {
                return Err("no replicated object found".into());
            }
            Ok(outside)
        })
        .expect("in host 1")
}

/// Pool `uuid`'s record as its pool service's leader holds it (`cont.ContSvc/MapQuery`, asked
/// from host 1 of the service replicas among `all`, following not-leader redirects).
fn pool_service_map(c: &Cluster, all: &str, uuid: &str) -> serde_json::Value {
    use daos_proto::cont::ContReq;
    use daos_proto::cont::cont_svc_client::ContSvcClient;
    let hosts = daos_control::hostlist::expand(all, 10001).expect("host list");
    let uuid = uuid.to_string();
    c.hosts
        .in_host(1, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut last = String::new();
                for _ in 0..3 {
                    for h in &hosts {
                        let ch = match tonic::transport::Channel::from_shared(format!("http://{h}"))
                            .expect("uri")
                            .connect()
                            .await
                        {
                            Ok(ch) => ch,
                            Err(e) => {
                                last = format!("{h}: {e}");
                                continue;
                            }
                        };
                        let req = ContReq {
                            pool: uuid.clone(),
                            ..Default::default()
                        };
                        match ContSvcClient::new(ch).map_query(req).await {
                            Ok(r) => {
                                return serde_json::from_slice::<serde_json::Value>(
                                    &r.into_inner().record,
                                )
                                .expect("record");
                            }
                            Err(s) => last = format!("{h}: {}", s.message()),
                        }
                    }
                }
                panic!("no pool service leader answered MapQuery: {last}");
            })
        })
        .expect("in host 1")
}

/// The UUID of container `label` of pool `tank` (`daos container query`, from host 1).
fn cont_uuid(c: &Cluster, all: &str, label: &str) -> [u8; 16] {
    let o = passed(
        c,
        c.run(
            1,
            "daos",
            &["-i", "-l", all, "-j", "container", "query", "tank", label],
        ),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let text = v["response"]["container_uuid"].as_str().unwrap_or_default();
    daos_client::parse_uuid(text).unwrap_or_else(|| panic!("container UUID in {v}"))
}

/// Pool `tank`'s query response asked from host `from` through `hosts`, or null when the
/// call failed (for waits: the management service may be electing a leader).
fn try_pool_query(c: &Cluster, from: usize, hosts: &str) -> serde_json::Value {
    let o = c.dmg(from, hosts, &["-j", "pool", "query", "tank"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .map(|v| v["response"].clone())
        .unwrap_or_default()
}

/// `o`, after checking it succeeded (else its output and every host's log).
fn passed(c: &Cluster, o: std::process::Output) -> std::process::Output {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}\n{}",
        stdout(&o),
        stderr(&o),
        c.logs()
    );
    o
}

/// `daos_bench io -i -l h[1-3] --pool tank --runtime 1 EXTRA` from host `from`, succeeded.
fn bench_io(c: &Cluster, from: usize, extra: &[&str]) -> std::process::Output {
    let all = c.all();
    let mut args = vec!["io", "-i", "-l", &all, "--pool", "tank", "--runtime", "1"];
    args.extend_from_slice(extra);
    passed(c, c.run(from, "daos_bench", &args))
}

/// `dmg pool query -j` from host `from`.
fn pool_query(c: &Cluster, from: usize, pool: &str) -> serde_json::Value {
    let o = c.dmg(from, &c.all(), &["-j", "pool", "query", "-e", pool]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
    assert_eq!(v["status"], 0, "{v}");
    v["response"].clone()
}

/// A raw `mgmt.MgmtSvc` call made from inside host `from` to `addr` (`ip:port`).
fn raw<T: Send + 'static, F, Fut>(c: &Cluster, from: usize, addr: String, f: F) -> T
where
    F: FnOnce(daos_proto::mgmt::mgmt_svc_client::MgmtSvcClient<tonic::transport::Channel>) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = T>,
{
    c.hosts
        .in_host(from, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                    .expect("uri")
                    .connect()
                    .await
                    .expect("connect");
                f(daos_proto::mgmt::mgmt_svc_client::MgmtSvcClient::new(ch)).await
            })
        })
        .expect("in host")
}

/// From host 1, a client whose map of pool `tank` is older than `version` (the pool's
/// current one, which the management service leader pushed to every engine): a surviving
/// target refuses its update with DER_STALE and its own version; with a refresher the
/// session fetches the map again and the update goes through on the new placement.
fn stale_map_refused_then_refreshed(c: &Cluster, all: &str, cont: [u8; 16], version: u32) {
    use daos_client::{ClientError, Session, SessionOpts, connect};
    let all = all.to_string();
    let outcome = c
        .hosts
        .in_host(1, move || -> Result<(), String> {
            let control = daos_config::control::Control::default();
            let target =
                daos_control::Target::new(&control, Some(&all), true).map_err(|e| e.message)?;
            let mut old =
                connect::connect_blocking(&target, "tank", daos_client::container::FLAG_RW)
                    .map_err(|e| e.to_string())?;
            if old.placement.version != version {
                return Err(format!("the pool is at version {}", old.placement.version));
            }
            old.placement.version = 1;
            let mut s = Session::open(std::sync::Arc::new(old), SessionOpts::default())
                .map_err(|e| e.to_string())?;
            // The engines learn the version from the leader's push (every 500 ms at most).
            let deadline = Instant::now() + Duration::from_secs(20);
            let refused = loop {
                match s.update(cont, 77, b"d", b"a", b"fresh") {
                    Err(ClientError::Stale { ours, theirs, .. }) => break (ours, theirs),
                    r if Instant::now() > deadline => {
                        return Err(format!("not refused as stale: {r:?}"));
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            };
            if refused != (1, version) {
                return Err(format!("refused with versions {refused:?}"));
            }
            s.set_refresher(connect::refresher(&target, "tank"));
            s.update(cont, 77, b"d", b"a", b"fresh")
                .map_err(|e| format!("after a refresh: {e}"))?;
            if s.map().placement.version != version {
                return Err(format!("refreshed to {}", s.map().placement.version));
            }
            match s.fetch(cont, 77, b"d", b"a") {
                Ok(Some(v)) if v == b"fresh" => Ok(()),
                r => Err(format!("read back: {r:?}")),
            }
        })
        .expect("in host 1");
    assert_eq!(outcome, Ok(()), "stale map\n{}", c.logs());
}

/// From host 1, two clients update the same RP_2G1 keys of container `safe` at the same
/// moments, round after round; then every replica of every key holds the same value (the
/// clients choose one epoch per update for all replicas; a target orders by epoch, not by
/// arrival).
fn concurrent_updates_converge(c: &Cluster, all: &str, cont: [u8; 16]) {
    use daos_client::{Session, SessionOpts, connect, kv::key_oid_in};
    use std::sync::{Arc, Barrier};
    let all = all.to_string();
    let outcome = c
        .hosts
        .in_host(1, move || -> Result<usize, String> {
            let control = daos_config::control::Control::default();
            let target =
                daos_control::Target::new(&control, Some(&all), true).map_err(|e| e.message)?;
            let map = Arc::new(
                connect::connect_blocking(&target, "tank", daos_client::container::FLAG_RW)
                    .map_err(|e| e.to_string())?,
            );
            let class = daos_placement::ObjectClass::parse("RP_2G1").map_err(|e| e.to_string())?;
            let keys: Arc<Vec<u128>> = Arc::new(
                (0..8)
                    .map(|k| key_oid_in(&format!("race{k}"), Some(class)))
                    .collect(),
            );
            let barrier = Arc::new(Barrier::new(2));
            let writers: Vec<_> = (0..2u8)
                .map(|w| {
                    let (map, keys, barrier) = (map.clone(), keys.clone(), barrier.clone());
                    std::thread::spawn(move || -> Result<(), String> {
                        let mut s = Session::open(map, SessionOpts::default())
                            .map_err(|e| e.to_string())?;
                        for round in 0..60u8 {
                            barrier.wait();
                            for oid in keys.iter() {
                                let mut v = [w; 64];
                                v[1] = round;
                                s.update(cont, *oid, b"d", b"a", &v)
                                    .map_err(|e| format!("writer {w}: {e}"))?;
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in writers {
                w.join().map_err(|_| "a writer panicked".to_string())??;
            }
            let mut s = Session::open(map, SessionOpts::default()).map_err(|e| e.to_string())?;
            let mut replicas = 0;
            for oid in keys.iter() {
                let shards = s.map().shards(*oid).map_err(|e| e.to_string())?;
                let mut values = Vec::new();
                for t in shards {
                    let req = daos_wire::Request::Fetch {
                        oid: *oid,
                        dkey: b"d",
                        akey: b"a",
                    };
                    let v = s
                        .call_with(t, cont, &req, |r| {
                            r.fetched().map(|v| v.map(<[u8]>::to_vec))
                        })
                        .map_err(|e| e.to_string())?;
                    values.push(v);
                    replicas += 1;
                }
                if values.len() != 2 || values.iter().any(|v| *v != values[0]) {
                    return Err(format!("object {oid:#x}: replicas hold {values:?}"));
                }
            }
            Ok(replicas)
        })
        .expect("in host 1");
    assert_eq!(
        outcome,
        Ok(16),
        "replicas of concurrently updated keys\n{}",
        c.logs()
    );
}

/// A fourth (non-replica) host joins as rank 3 and serves I/O; bad joins are refused;
/// ranks chosen by host; exclusion; a cut replica converges (namespace hosts only).
pub fn fourth_host(mut c: Cluster) {
    use daos_proto::mgmt::{JoinReq, SystemQueryReq};
    let all = c.hosts.list(1, 3, 10001);
    let all = all.as_str();
    let (h1, h3, h4) = (c.at(1), c.at(3), c.at(4));
    let name4 = c.hosts.name(4);
    for i in 1..=3 {
        c.start(i);
    }
    for i in 1..=3 {
        c.wait_log(i, "SCM format required on instance 0", 30);
    }
    ok(c.dmg(1, all, &["storage", "format"]));
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 1, all, 3)),
        "{:?}\n{}",
        c.members(1, all),
        c.logs()
    );
    let leader_addr = format!("{}:10001", c.hosts.addr(1));
    let v: serde_json::Value =
        serde_json::from_slice(&c.dmg(1, all, &["-j", "system", "query", "-v"]).stdout)
            .expect("json");
    let uuid1 = v["response"]["members"][1]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let version = v["response"]["data_version"].as_u64().expect("version");

    // Bad joins from a fourth host, each refused with DAOS's words, nothing changed.
    let join = |sys: &str, uuid: &str, uri: &str| JoinReq {
        sys: sys.into(),
        uuid: uuid.into(),
        rank: u32::MAX,
        uri: uri.into(),
        nctxs: 1,
        addr: "0.0.0.0:10001".into(),
        srv_fault_domain: "/rack0/h4".into(),
        idx: 0,
        incarnation: 1,
        ..Default::default()
    };
    let uri4 = |provider: &str| format!("{provider}://{}:31416", c.hosts.addr(4));
    let fresh = "4a4a4a4a-1111-4222-8333-444444444444";
    for (req, words) in [
        (
            join("other_system", fresh, &uri4("ofi+tcp;ofi_rxm")),
            "system name \"other_system\" does not match \"daos_server\"",
        ),
        (
            join("daos_server", &uuid1, &uri4("ofi+tcp;ofi_rxm")),
            "control address changed from",
        ),
        (
            join("daos_server", fresh, &uri4("ofi+sockets")),
            "fabric provider \"ofi+sockets\" does not match system provider \"ofi+tcp;ofi_rxm\"",
        ),
    ] {
        let r = raw(&c, 4, leader_addr.clone(), move |mut m| async move {
            m.join(req)
                .await
                .map(|_| ())
                .map_err(|s| s.message().to_string())
        });
        let e = r.expect_err("refused");
        assert!(e.contains(words), "{e}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&c.dmg(1, all, &["-j", "system", "query"]).stdout).expect("json");
    assert_eq!(v["response"]["members"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        v["response"]["data_version"].as_u64(),
        Some(version),
        "nothing changed"
    );

    // The fourth host (no replica) joins the running system and gets rank 3.
    c.start(4);
    let listen = match c.hosts.mode() {
        Mode::Namespaces => "0.0.0.0:10001".to_string(),
        Mode::Loopback => h4.clone(),
    };
    c.wait_log(4, &format!("listening on {listen}"), 30);
    let e = raw(
        &c,
        4,
        format!("{}:10001", c.hosts.addr(4)),
        |mut m| async move {
            m.system_query(SystemQueryReq::default())
                .await
                .map(|_| ())
                .map_err(|s| s.message().to_string())
        },
    )
    .expect_err("not a replica");
    assert_eq!(
        e,
        format!(
            "not a DAOS Management Service replica (try one of {h1},{},{h3})",
            c.at(2)
        )
    );
    ok(c.dmg(4, &h4, &["storage", "format"]));
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 4, &h4, 4)),
        "{:?}\n{}",
        c.members(4, &h4),
        c.logs()
    );
    for i in [1, 4] {
        c.wait_log(i, "(4 ranks: 0,1,2,3)", 20);
    }
    let m = c.members(4, &h4).expect("members via a non-replica");
    assert_eq!(m[3].0, 3);
    assert!(
        m[3].1.starts_with(&format!("{}:", c.hosts.addr(4))),
        "{m:?}"
    );
    // Its engine serves I/O: a pool on rank 3 alone.
    ok(c.dmg(
        4,
        &h4,
        &[
            "pool",
            "create",
            "four",
            "--ranks",
            "3",
            "--scm-size",
            "128M",
            "--nvme-size",
            "256M",
        ],
    ));
    let o = c.run(
        1,
        "daos_bench",
        &[
            "io",
            "-i",
            "-l",
            all,
            "--pool",
            "four",
            "--objects",
            "64",
            "--qd",
            "4",
            "--sizes",
            "4k",
            "--runtime",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // Ranks by host: --rank-hosts picks h4's rank for query, stop and start.
    let o = c.dmg(1, all, &["-j", "system", "query", "--rank-hosts", &name4]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ranks: Vec<u64> = v["response"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["rank"].as_u64())
        .collect();
    assert_eq!(ranks, [3], "{v}");
    let stop = stdout(&c.dmg(2, all, &["system", "stop", "--rank-hosts", &name4]));
    assert!(
        stop.contains("3    stop") || stop.contains("3     stop"),
        "{stop}"
    );
    assert!(
        c.members(1, all)
            .is_ok_and(|m| m.iter().all(|m| (m.0 == 3) == (m.2 == "stopped"))),
        "{:?}",
        c.members(1, all)
    );
    ok(c.dmg(2, all, &["system", "start", "--rank-hosts", &name4]));
    assert!(joined(&c, 1, all, 4), "{:?}", c.members(1, all));
    let o = c.dmg(
        1,
        all,
        &[
            "system",
            "query",
            "--rank-hosts",
            &format!("{name4},nosuchhost"),
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("Unknown 1 host: nosuchhost"),
        "{}",
        stdout(&o)
    );

    // Administrative exclusion by host, its refusals, and clearing it.
    let out = stdout(&c.dmg(2, all, &["system", "exclude", "--rank-hosts", &name4]));
    assert!(out.contains("updated ranks: 3"), "{out}");
    let state_of = |rank: u32| {
        c.members(1, all)
            .ok()
            .and_then(|m| m.into_iter().find(|m| m.0 == rank).map(|m| m.2))
    };
    assert_eq!(state_of(3).as_deref(), Some("adminexcluded"));
    for (args, words) in [
        (vec!["system", "exclude", "-r", "9"], "invalid rank(s): 9"),
        (vec!["system", "exclude"], "no hosts or ranks specified"),
    ] {
        let o = c.dmg(1, all, &args);
        assert_ne!(o.status.code(), Some(0));
        assert!(stderr(&o).contains(words), "{args:?}: {}", stderr(&o));
    }
    let out = stdout(&c.dmg(3, all, &["system", "clear-exclude", "-r", "3"]));
    assert!(out.contains("updated ranks: 3"), "{out}");
    assert_eq!(state_of(3).as_deref(), Some("excluded"));
    ok(c.dmg(1, all, &["system", "stop", "-r", "3"]));
    ok(c.dmg(1, all, &["system", "start", "-r", "3"]));
    assert_eq!(
        state_of(3).as_deref(),
        Some("joined"),
        "joined again on rejoin"
    );

    if c.hosts.mode() == Mode::Loopback {
        eprintln!(
            "SKIPPED the partition case (a cut replica converges): hosts on loopback addresses share one network"
        );
        return;
    }
    // Cut a follower replica off: a create sent to it cannot reach a leader and says so;
    // the majority goes on; healed, it follows again.
    c.hosts.cut(3).expect("cut");
    let o = c.dmg(3, &h3, &["pool", "create", "cut", "--scm-size", "64M"]);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains("no management service leader")
            || e.contains("not the DAOS Management Service leader")
            || e.contains("unable to connect"),
        "{e}"
    );
    let h2_rank = m
        .iter()
        .find(|m| m.1.starts_with(&format!("{}:", c.hosts.addr(2))))
        .map(|m| m.0)
        .expect("h2's rank");
    let ranks = format!("0,{h2_rank}");
    let o = c.dmg(
        1,
        &format!("{h1},{}", c.at(2)),
        &[
            "pool",
            "create",
            "during",
            "--ranks",
            &ranks,
            "--scm-size",
            "64M",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}\n{:?}\n{}",
        stdout(&o),
        stderr(&o),
        c.members(1, &h1),
        c.logs()
    );
    c.hosts.heal(3).expect("heal");
    assert!(
        wait_until(Duration::from_secs(30), || leader(&c, 3, &h3)
            .is_some_and(|(l, d)| *l == h1 && d.is_empty())),
        "h3 follows h1 again\n{}",
        c.logs()
    );
    let list = stdout(&c.dmg(3, &h3, &["pool", "list"]));
    assert!(list.contains("during") && !list.contains("cut"), "{list}");
    assert!(
        wait_until(Duration::from_secs(30), || joined(&c, 3, &h3, 4)),
        "every rank joined after the heal: {:?}\n{}",
        c.members(3, &h3),
        c.logs()
    );
}

/// Rebuild over three hosts (MS on h1): replicated values written, h3's rank excluded from
/// the pool, its objects rebuilt onto the others (progress in `pool query`, targets down_out),
/// then h2 and h3 killed and every value read back from h1 alone, which only holds what the
/// rebuild copied there; both hosts back, the rank reintegrated and rebuilt (up_in), values
/// intact. Bad requests are refused per rank with the reason, nothing changed.
pub fn exclude_rebuild_reintegrate(mut c: Cluster) {
    let all = c.all();
    let all = all.as_str();
    let h1 = c.at(1);
    start_formatted(&mut c, all, 3);
    let members = c.members(1, all).expect("members");
    let rank_of = |i: usize| {
        members
            .iter()
            .find(|m| m.1.starts_with(&format!("{}:", c.hosts.addr(i))))
            .map(|m| m.0)
            .expect("rank of host")
    };
    let (r1, r2, r3) = (rank_of(1), rank_of(2), rank_of(3));
    create_tank(&c, 1, all);
    passed(
        &c,
        c.run(
            1,
            "daos",
            &["-i", "-l", all, "container", "create", "tank", "c1"],
        ),
    );
    // A container whose objects must survive a node: its default class is RP_2G1, a class
    // with less redundancy is refused, and so are bad properties (nothing created).
    let daos = |c: &Cluster, args: &[&str]| {
        let mut a = vec!["-i", "-l", all];
        a.extend_from_slice(args);
        c.run(1, "daos", &a)
    };
    passed(
        &c,
        daos(
            &c,
            &[
                "container",
                "create",
                "tank",
                "safe",
                "--properties",
                "rd_fac:1,rd_lvl:node",
            ],
        ),
    );
    let p = stdout(&passed(
        &c,
        daos(&c, &["container", "get-prop", "tank", "safe"]),
    ));
    assert!(
        p.contains("Redundancy Factor (rd_fac)") && p.contains("rd_fac1") && p.contains("node (2)"),
        "{p}"
    );
    for (args, words) in [
        (
            vec![
                "container",
                "create",
                "tank",
                "weak",
                "--properties",
                "rd_fac:2",
                "--oclass",
                "RP_2G1",
            ],
            "DER_INVAL",
        ),
        (
            vec![
                "container",
                "create",
                "tank",
                "weak",
                "--properties",
                "rd_fac:7",
            ],
            "use 0 to 4",
        ),
        (
            vec![
                "container",
                "create",
                "tank",
                "weak",
                "--properties",
                "rd_lvl:rack",
            ],
            "use rank or node",
        ),
    ] {
        let o = daos(&c, &args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(stderr(&o).contains(words), "{args:?}: {}", stderr(&o));
    }
    assert!(
        !stdout(&daos(&c, &["container", "list", "tank"])).contains("weak"),
        "refused creates create nothing"
    );
    let safe_in = c.path(1).join("safe.in");
    let safe_data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&safe_in, &safe_data).expect("value");
    let o = daos(
        &c,
        &[
            "object",
            "put",
            "--oclass",
            "S1",
            "tank",
            "safe",
            "k",
            safe_in.to_str().expect("utf8"),
        ],
    );
    assert!(
        stderr(&o).contains("DER_INVAL") && stderr(&o).contains("S1"),
        "{}",
        stderr(&o)
    );
    passed(
        &c,
        daos(
            &c,
            &[
                "object",
                "put",
                "tank",
                "safe",
                "k",
                safe_in.to_str().expect("utf8"),
            ],
        ),
    );
    // Values of two copies each (RP_2G1: two of the three hosts per object).
    let dir = c.path(1);
    let make = |first: u32, n: u32| -> Vec<(String, Vec<u8>)> {
        (first..first + n)
            .map(|k| {
                let len = if k == 0 {
                    (3 << 20) + 11
                } else {
                    5000 + k as usize * 333
                };
                let data: Vec<u8> = (0..len).map(|i| (i as u32 * 7 + k) as u8).collect();
                (format!("key{k}"), data)
            })
            .collect()
    };
    let put_all = |c: &Cluster, values: &[(String, Vec<u8>)]| {
        for (key, data) in values {
            let f = dir.join(format!("{key}.in"));
            std::fs::write(&f, data).expect("value");
            passed(
                c,
                c.run(
                    1,
                    "daos",
                    &[
                        "-i",
                        "-l",
                        all,
                        "object",
                        "put",
                        "--oclass",
                        "RP_2G1",
                        "tank",
                        "c1",
                        key,
                        f.to_str().expect("utf8"),
                    ],
                ),
            );
        }
    };
    let values = make(0, 16);
    put_all(&c, &values);
    let read_in = |c: &Cluster, hosts: &str, when: &str, values: &[(String, Vec<u8>)]| {
        for (key, data) in values {
            let f = dir.join(format!("{key}.out"));
            let o = c.run(
                1,
                "daos",
                &[
                    "-i",
                    "-l",
                    hosts,
                    "object",
                    "get",
                    "--oclass",
                    "RP_2G1",
                    "tank",
                    "c1",
                    key,
                    f.to_str().expect("utf8"),
                ],
            );
            assert_eq!(
                o.status.code(),
                Some(0),
                "{when}: get {key}: {}{}\n{}\nrebuilds:\n{}",
                stdout(&o),
                stderr(&o),
                c.logs(),
                c.log(1)
                    .lines()
                    .filter(|l| l.contains("rb="))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            assert!(
                std::fs::read(&f).expect("read back") == *data,
                "{when}: {key} differs"
            );
        }
    };
    let read_all = |c: &Cluster, hosts: &str, when: &str| read_in(c, hosts, when, &values);

    // Refusals, per rank, with the reason; nothing changes.
    let o = c.dmg(1, all, &["pool", "exclude", "tank", "--ranks", "9"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("FAIL") && stdout(&o).contains("rank 9 is not in the pool map"),
        "{}",
        stdout(&o)
    );
    let r3s = r3.to_string();
    let o = c.dmg(
        1,
        all,
        &[
            "pool",
            "exclude",
            "tank",
            "--ranks",
            &r3s,
            "--target-idx",
            "4",
        ],
    );
    assert!(stdout(&o).contains("has no target 4"), "{}", stdout(&o));
    let o = c.dmg(1, all, &["pool", "reintegrate", "tank", "--ranks", &r3s]);
    assert!(stdout(&o).contains("is not excluded"), "{}", stdout(&o));
    assert_eq!(pool_query(&c, 1, "tank")["version"], 1, "nothing changed");

    // Exclude h3's rank: the pool map moves on, the rebuild copies its objects elsewhere.
    let o = passed(
        &c,
        c.dmg(1, all, &["pool", "exclude", "tank", "--ranks", &r3s]),
    );
    assert!(
        stdout(&o).contains("Result") && stdout(&o).contains("OK"),
        "{}",
        stdout(&o)
    );
    let mut q = pool_query(&c, 1, "tank");
    assert!(
        wait_until(Duration::from_secs(60), || {
            q = pool_query(&c, 1, "tank");
            q["rebuild"]["state"] == "done"
        }),
        "rebuild done: {q}\n{}",
        c.logs()
    );
    assert_eq!(q["version"], 3, "exclude, then the rebuild's finish: {q}");
    assert_eq!(q["disabled_ranks"], r3s.as_str(), "{q}");
    assert_eq!(q["disabled_targets"], 1, "{q}");
    assert!(
        q["rebuild"]["objects"].as_u64().unwrap_or(0) > 0,
        "objects rebuilt: {q}"
    );
    assert!(q["rebuild"]["records"].as_u64().unwrap_or(0) > 0, "{q}");
    let text = stdout(&c.dmg(1, all, &["pool", "query", "tank"]));
    assert!(
        text.contains("- Rebuild done, ") && text.contains("- Data redundancy: normal"),
        "{text}"
    );
    let t = stdout(&c.dmg(1, all, &["pool", "query-targets", "tank", "--rank", &r3s]));
    assert!(t.contains("Target: type unknown, state down_out"), "{t}");
    c.wait_log(1, "rebuild of pool", 5);
    // The map lives in the pool's service: its leader holds version 3, rank 3's targets out.
    let rec = pool_service_map(&c, all, q["uuid"].as_str().unwrap_or_default());
    assert_eq!(rec["map"]["version"], 3, "{rec}");
    assert_eq!(rec["map"]["states"][r3s.as_str()][0], "DownOut", "{rec}");
    stale_map_refused_then_refreshed(&c, all, cont_uuid(&c, all, "c1"), 3);
    concurrent_updates_converge(&c, all, cont_uuid(&c, all, "safe"));

    // h2 and h3 gone: every value reads back from h1 alone. (SWIM soon declares both dead
    // and the pool excludes h2's rank too; h1 holds whatever the first rebuild put there.)
    c.kill(3);
    c.kill(2);
    assert!(
        wait_until(Duration::from_secs(30), || {
            c.members(1, &h1).is_ok_and(|m| {
                m.iter()
                    .filter(|m| m.0 == r2 || m.0 == r3)
                    .all(|m| m.2 == "unresponsive" || m.2 == "excluded")
            })
        }),
        "h2, h3 unresponsive or excluded: {:?}",
        c.members(1, &h1)
    );
    read_all(&c, &h1, "h1 alone after the rebuild");
    // The rd_fac:1 container's value (its default class, no --oclass) too.
    let safe_out = c.path(1).join("safe.out");
    let o = c.run(
        1,
        "daos",
        &[
            "-i",
            "-l",
            &h1,
            "object",
            "get",
            "tank",
            "safe",
            "k",
            safe_out.to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(std::fs::read(&safe_out).expect("read back") == safe_data);

    // Both back and rejoined; every rank with targets out reintegrated and rebuilt: up_in
    // again, values intact.
    c.start(2);
    c.start(3);
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 1, all, 3)),
        "{:?}\n{}",
        c.members(1, all),
        c.logs()
    );
    let out: Vec<String> = [r2, r3]
        .iter()
        .map(u32::to_string)
        .filter(|r| {
            stdout(&c.dmg(1, all, &["pool", "query-targets", "tank", "--rank", r]))
                .contains("state down")
        })
        .collect();
    assert!(out.contains(&r3s), "{out:?}");
    passed(
        &c,
        c.dmg(
            1,
            all,
            &["pool", "reint", "tank", "--ranks", &out.join(",")],
        ),
    );
    assert!(
        wait_until(Duration::from_secs(60), || {
            q = pool_query(&c, 1, "tank");
            q["rebuild"]["state"] == "done" && q["disabled_targets"] == 0
        }),
        "reintegration rebuilt: {q}\n{}",
        c.logs()
    );
    let t = stdout(&c.dmg(1, all, &["pool", "query-targets", "tank", "--rank", &r3s]));
    assert!(t.contains("state up_in"), "{t}");
    read_all(&c, all, "after the reintegration");
    // Reclaimed: the copies the exclusion's rebuild made elsewhere are gone again; every
    // replicated object is on exactly its layout's targets.
    let conts = [cont_uuid(&c, all, "c1"), cont_uuid(&c, all, "safe")];
    let copies = copies_outside_layout(&c, all, &conts);
    assert_eq!(copies, Ok(0), "copies outside their layout\n{}", c.logs());
    c.wait_log(1, "copies reclaimed", 5);

    // Drain h2's rank: it serves while its data moves away, then it is down_out; h2 and h3
    // can then go and h1 alone has every value written since (the drain moved h2's copies
    // of objects that were on h2 and h3 to h1; older values h1 kept from earlier rebuilds).
    let fresh = make(100, 16);
    put_all(&c, &fresh);
    let r2s = r2.to_string();
    passed(
        &c,
        c.dmg(1, all, &["pool", "drain", "tank", "--ranks", &r2s]),
    );
    assert!(
        wait_until(Duration::from_secs(60), || {
            q = pool_query(&c, 1, "tank");
            q["rebuild"]["state"] == "done" && q["disabled_ranks"] == r2s.as_str()
        }),
        "drain rebuilt: {q}\n{}",
        c.logs()
    );
    let t = stdout(&c.dmg(1, all, &["pool", "query-targets", "tank", "--rank", &r2s]));
    assert!(t.contains("state down_out"), "{t}");
    c.kill(2);
    c.kill(3);
    assert!(
        wait_until(Duration::from_secs(30), || {
            c.members(1, &h1).is_ok_and(|m| {
                m.iter()
                    .filter(|m| m.0 == r2 || m.0 == r3)
                    .all(|m| m.2 == "unresponsive" || m.2 == "excluded")
            })
        }),
        "h2, h3 gone: {:?}",
        c.members(1, &h1)
    );
    read_in(&c, &h1, "h1 alone after the drain", &fresh);
    c.start(2);
    c.start(3);
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, 1, all, 3)),
        "{:?}\n{}",
        c.members(1, all),
        c.logs()
    );
    let out: Vec<String> = [r2, r3]
        .iter()
        .map(u32::to_string)
        .filter(|r| {
            stdout(&c.dmg(1, all, &["pool", "query-targets", "tank", "--rank", r]))
                .contains("state down")
        })
        .collect();
    passed(
        &c,
        c.dmg(
            1,
            all,
            &["pool", "reint", "tank", "--ranks", &out.join(",")],
        ),
    );
    assert!(
        wait_until(Duration::from_secs(60), || {
            q = pool_query(&c, 1, "tank");
            q["rebuild"]["state"] == "done" && q["disabled_targets"] == 0
        }),
        "h2, h3 reintegrated: {q}\n{}",
        c.logs()
    );

    // Extend: a pool on two ranks grows onto the third; data moves onto it (rebuild) and
    // every value reads back. Bad extends are refused with the reason.
    let r1s = r1.to_string();
    passed(
        &c,
        c.dmg(
            1,
            all,
            &[
                "pool",
                "create",
                "grow",
                "--ranks",
                &format!("{r1s},{r2}"),
                "--scm-size",
                "128M",
                "--nvme-size",
                "256M",
            ],
        ),
    );
    passed(
        &c,
        daos(
            &c,
            &[
                "container",
                "create",
                "grow",
                "g1",
                "--properties",
                "rd_fac:1",
            ],
        ),
    );
    let grow: Vec<(String, Vec<u8>)> = make(200, 12);
    for (key, data) in &grow {
        let f = dir.join(format!("{key}.in"));
        std::fs::write(&f, data).expect("value");
        passed(
            &c,
            daos(
                &c,
                &[
                    "object",
                    "put",
                    "grow",
                    "g1",
                    key,
                    f.to_str().expect("utf8"),
                ],
            ),
        );
    }
    for (args, words) in [
        (
            vec!["pool", "extend", "grow", "--ranks", r1s.as_str()],
            "already in pool",
        ),
        (
            vec!["pool", "extend", "grow", "--ranks", "9"],
            "not a joined member",
        ),
    ] {
        let o = c.dmg(1, all, &args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&o).contains("Extend command failed") && stderr(&o).contains(words),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let o = passed(
        &c,
        c.dmg(1, all, &["pool", "extend", "grow", "--ranks", &r3s]),
    );
    assert!(
        stdout(&o).contains("Extend command succeeded"),
        "{}",
        stdout(&o)
    );
    assert!(
        wait_until(Duration::from_secs(60), || {
            q = pool_query(&c, 1, "grow");
            q["rebuild"]["state"] == "done" && q["total_targets"] == 3
        }),
        "extend rebuilt: {q}\n{}",
        c.logs()
    );
    assert_eq!(q["disabled_targets"], 0, "{q}");
    assert!(
        q["rebuild"]["objects"].as_u64().unwrap_or(0) > 0,
        "data moved: {q}"
    );
    let t = stdout(&c.dmg(1, all, &["pool", "query-targets", "grow", "--rank", &r3s]));
    assert!(t.contains("state up_in"), "{t}");
    for (key, data) in &grow {
        let f = dir.join(format!("{key}.out"));
        let o = daos(
            &c,
            &[
                "object",
                "get",
                "grow",
                "g1",
                key,
                f.to_str().expect("utf8"),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            std::fs::read(&f).expect("read back") == *data,
            "{key} differs"
        );
    }

    // Self-healing: h3 dies and nobody acts. SWIM among the engines finds its rank dead
    // (SWIM_SUSPECT_TIMEOUT here 6 s), the management service excludes it, and after
    // CRT_EVENT_DELAY (2 s here) the pool excludes its targets and rebuilds; then h2 dies too
    // and h1 alone still has every value.
    let v0 = pool_query(&c, 1, "tank")["version"]
        .as_u64()
        .expect("version");
    c.kill(3);
    let state_of = |c: &Cluster, rank: u32| {
        c.members(1, &h1)
            .ok()
            .and_then(|m| m.into_iter().find(|m| m.0 == rank).map(|m| m.2))
    };
    assert!(
        wait_until(Duration::from_secs(60), || state_of(&c, r3).as_deref()
            == Some("excluded")),
        "SWIM excludes rank {r3}: {:?}\n{}",
        c.members(1, &h1),
        c.logs()
    );
    // Logged by the daos_server whose engine reported it first.
    assert!(
        (1..=3).any(|i| c.log(i).contains("SWIM marked rank as dead.")),
        "the exclusion names SWIM\n{}",
        c.logs()
    );
    assert!(
        wait_until(Duration::from_secs(60), || {
            q = pool_query(&c, 1, "tank");
            q["version"].as_u64().unwrap_or(0) >= v0 + 2
                && q["disabled_ranks"] == r3s.as_str()
                && q["rebuild"]["state"] == "done"
        }),
        "the pool excluded rank {r3} by itself and rebuilt: {q}\n{}",
        c.logs()
    );
    c.wait_log(
        1,
        &format!("rank {r3} dead for 2 s: its targets are excluded"),
        5,
    );
    c.kill(2);
    assert!(
        wait_until(Duration::from_secs(30), || state_of(&c, r2)
            .is_some_and(|s| s == "unresponsive" || s == "excluded")),
        "h2 gone: {:?}",
        c.members(1, &h1)
    );
    read_all(&c, &h1, "h1 alone after the self-healing rebuild");
    // h3 back: its rank rejoins (same rank, Joined); its pool targets stay out until an
    // admin reintegrates them.
    c.start(3);
    assert!(
        wait_until(Duration::from_secs(60), || state_of(&c, r3).as_deref()
            == Some("joined")),
        "rank {r3} rejoins: {:?}\n{}",
        c.members(1, &h1),
        c.logs()
    );
    let t = stdout(&c.dmg(1, &h1, &["pool", "query-targets", "tank", "--rank", &r3s]));
    assert!(
        t.contains("state down_out"),
        "{t}\n{}",
        c.log(1)
            .lines()
            .filter(|l| l.contains("rb=") || l.contains("excluded"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // daos_bench rebuild: everything back in, then h3's host killed under load. The kill
    // command names h3's directory in a pattern its own shell does not match.
    c.start(2);
    assert!(
        wait_until(Duration::from_secs(60), || state_of(&c, r2).as_deref()
            == Some("joined")),
        "rank {r2} rejoins: {:?}",
        c.members(1, &h1)
    );
    // h2 may have come back before its targets were excluded.
    reintegrate_down(&c, &h1, &[r2, r3], "all reintegrated");
    let dir3 = c.path(3).display().to_string();
    let (head, last) = dir3.split_at(dir3.len() - 1);
    let kill = format!("pkill -9 -f '{head}[{last}]/'");
    let json = c.path(1).join("rebuild.json");
    let o = c
        .hosts
        .command(1, &bin("daos_bench"))
        .args(["rebuild", "-i", "-l", &h1, "--pool", "tank", "--rank", &r3s])
        .args(["--kill", &kill, "--objects", "400", "--size", "64k"])
        .args(["--baseline", "2", "--timeout", "120", "--ref-file"])
        .arg(c.path(1).join("device.ref"))
        .arg("--json")
        .arg(&json)
        // A replica on the killed host costs an operation this deadline; short, so the
        // foreground measures the rebuild rather than one wait.
        .env("CRT_TIMEOUT", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("daos_bench");
    c.kill(3);
    let o = passed(&c, o);
    eprint!("{}", stdout(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("rebuild json");
    let r = &v["result"];
    let f = |k: &str| r[k].as_f64().unwrap_or(-1.0);
    // SWIM (6 s suspicion) declared the rank dead, the pool excluded it 2 s later, and the
    // rebuild copied the lost replicas (some of 400 objects had one on h3) at a rate > 0.
    assert!(f("kill_to_rank_excluded_ms") > 1000.0, "{r}");
    assert!(
        f("loss_to_pool_exclusion_ms") >= f("kill_to_rank_excluded_ms"),
        "{r}"
    );
    assert!(r["rebuilt_records"].as_u64().is_some_and(|n| n > 0), "{r}");
    assert!(
        f("rebuild_mb_per_sec") > 0.0 && f("device_mb_per_sec") > 0.0,
        "{r}"
    );
    assert!(f("rebuild_to_device_ratio") > 0.0, "{r}");
    assert!(
        r["foreground_before"]["iops"]
            .as_f64()
            .is_some_and(|x| x > 0.0),
        "{r}"
    );
    assert!(
        r["foreground_rebuilding"]["p99_us"].as_f64().is_some(),
        "{r}"
    );
    assert_eq!(r["verified_after"], 400, "{r}");
}

/// Kills every process of the host whose replica leads pool `tank`'s service (the highest
/// term any host logged), then creates a container and reads a value of an old one through
/// the new leader; the host comes back and is reintegrated.
fn pool_service_leader_killed(c: &mut Cluster, rank_of: &[u32], dir: &std::path::Path) {
    let all = c.all();
    let four = c.hosts.list(1, 4, 10001);
    let uuid = pool_query(c, 1, "tank")["uuid"]
        .as_str()
        .expect("pool uuid")
        .to_string();
    let mark = format!("pool {uuid} service: replica ");
    let term_on = |c: &Cluster, i: usize| -> Option<u64> {
        c.log(i)
            .lines()
            .filter(|l| l.contains(&mark) && l.contains("is the leader"))
            .filter_map(|l| {
                l.rsplit("(term ")
                    .next()?
                    .trim_end_matches(')')
                    .parse()
                    .ok()
            })
            .max()
    };
    let daos = |c: &Cluster, args: &[&str]| {
        c.hosts
            .command(1, &bin("daos"))
            .args(["-i", "-l", &all])
            .args(args)
            .env("CRT_TIMEOUT", "3")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("daos")
    };
    let f = dir.join("svc.in");
    std::fs::write(&f, b"kept across the pool service's failover").expect("value");
    let fs = f.to_str().expect("utf8");
    passed(c, daos(c, &["object", "put", "tank", "c", "svc-key", fs]));
    let (host, term) = (1..=4)
        .filter_map(|i| term_on(c, i).map(|t| (i, t)))
        .max_by_key(|(_, t)| *t)
        .expect("a pool service leader logged its term");
    let t = Instant::now();
    c.kill(host);
    passed(
        c,
        daos(c, &["container", "create", "tank", "after-failover"]),
    );
    let created = t.elapsed();
    let list = stdout(&passed(c, daos(c, &["container", "list", "tank"])));
    assert!(
        list.contains("after-failover")
            && list
                .lines()
                .any(|l| l.split_whitespace().last() == Some("c")),
        "{list}"
    );
    let out = dir.join("svc.out");
    passed(
        c,
        daos(
            c,
            &[
                "object",
                "get",
                "tank",
                "c",
                "svc-key",
                out.to_str().expect("utf8"),
            ],
        ),
    );
    assert_eq!(
        std::fs::read(&out).expect("read back"),
        std::fs::read(&f).expect("value")
    );
    let newer = (1..=4)
        .filter(|i| *i != host)
        .filter_map(|i| term_on(c, i))
        .max();
    assert!(
        newer.is_some_and(|n| n > term),
        "another replica leads after the kill (terms: before {term}, after {newer:?})"
    );
    eprintln!(
        "pool service leader on h{host} killed: container created through the new leader after {} ms",
        created.as_millis()
    );
    // Back, reintegrated: redundancy normal.
    c.start(host);
    assert!(
        wait_until(Duration::from_secs(90), || joined(c, 1, &four, 4)),
        "h{host} rejoins: {:?}",
        c.members(1, &four)
    );
    reintegrate_down(c, &four, &[rank_of[host]], &format!("h{host} back"));
}

/// Reintegrates those of `ranks` whose targets are down in pool `tank` (asking host 1, which
/// reaches the system through `hosts`), then waits until the pool has no disabled target and
/// its rebuild is done.
fn reintegrate_down(c: &Cluster, hosts: &str, ranks: &[u32], what: &str) {
    // Asked again until done: a host just back may not answer the first query.
    let mut q = serde_json::Value::Null;
    assert!(
        wait_until(Duration::from_secs(90), || {
            for r in ranks.iter().map(|r| r.to_string()) {
                if stdout(&c.dmg(1, hosts, &["pool", "query-targets", "tank", "--rank", &r]))
                    .contains("state down")
                {
                    let _ = c.dmg(1, hosts, &["pool", "reint", "tank", "--ranks", &r]);
                }
            }
            // The management service may be electing a leader (a replica's host just came
            // back): an error is asked again.
            q = try_pool_query(c, 1, hosts);
            q["rebuild"]["state"] == "done" && q["disabled_targets"] == 0
        }),
        "{what}: redundancy normal again: {q}\n{}",
        c.logs()
    );
}

/// A small seeded generator (xorshift64*): the rounds replay from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a writer did to one key: the last version acknowledged, and versions whose put failed
/// after it (one of those may have reached some replicas).
#[derive(Clone, Default)]
struct KeyLog {
    acked: Option<u32>,
    failed: Vec<u32>,
}

/// The bytes version `v` of key `key` holds (deterministic, so a read is checked without
/// keeping every value).
fn version_bytes(key: &str, v: u32) -> Vec<u8> {
    let mut x = v as u64
        ^ key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
    let len = 1000 + (x % 40_000) as usize;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Which version of `key` in `range` `got` is (its length first: most are not built).
fn version_of(key: &str, got: &[u8], range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    range
        .rev()
        .filter(|v| 1000 + ((*v as u64 ^ h) % 40_000) as usize == got.len())
        .find(|v| version_bytes(key, *v) == got)
}

/// Four hosts (MS on three), an `RP_2G1` container (`rd_fac:1`, `rd_lvl:node`), two writers
/// putting and acknowledging values all along. Each round kills one host: the writers stall
/// and go on; SWIM reports the rank dead; the pool excludes it and rebuilds. Then a second
/// host dies (never a second MS replica: the service needs its majority): every acknowledged
/// value reads back intact. Both come back and are reintegrated: redundancy normal again.
/// Stalls, time from kill to exclusion and rebuilds are printed.
pub fn writers_survive_host_kills(mut c: Cluster, rounds: usize, seed: u64) {
    let all = c.all();
    let all = all.as_str();
    let h1 = c.at(1);
    // (`all` is the four hosts.)
    let four = c.hosts.list(1, 4, 10001);
    start_formatted(&mut c, &four, 4);
    let rank_of: Vec<u32> = {
        let members = c.members(1, &four).expect("members");
        (0..=4)
            .map(|i| {
                if i == 0 {
                    return u32::MAX;
                }
                members
                    .iter()
                    .find(|m| m.1.starts_with(&format!("{}:", c.hosts.addr(i))))
                    .map(|m| m.0)
                    .expect("rank of host")
            })
            .collect()
    };
    passed(
        &c,
        c.dmg(
            1,
            &four,
            &[
                "pool",
                "create",
                "tank",
                "--scm-size",
                "128M",
                "--nvme-size",
                "512M",
            ],
        ),
    );
    // Writers give up on a replica after 3 s (DAOS's CRT_TIMEOUT; default 10 here, 60 in
    // DAOS) and try again with a fresh pool map.
    let daos = |c: &Cluster, from: usize, args: &[&str]| {
        c.hosts
            .command(from, &bin("daos"))
            .args(["-i", "-l", all])
            .args(args)
            .env("CRT_TIMEOUT", "3")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("daos")
    };
    passed(
        &c,
        daos(
            &c,
            1,
            &[
                "container",
                "create",
                "tank",
                "c",
                "--properties",
                "rd_fac:1,rd_lvl:node",
            ],
        ),
    );
    eprintln!(
        "writers_survive_host_kills: seed {seed} (SELFHEAL_SEED={seed} replays), {rounds} round(s)"
    );
    let mut rng = Rng(seed.max(1));
    let dir = c.path(1);
    for round in 1..=rounds {
        // Victims: any host first; the second never a second MS replica (h1-h3).
        let first = 1 + rng.below(4) as usize;
        let second = loop {
            let v = 1 + rng.below(4) as usize;
            if v != first && (first == 4 || v == 4) {
                break v;
            }
        };
        // A host that keeps running and hosts the writers: not a victim.
        let home = (1..=4)
            .find(|i| *i != first && *i != second)
            .expect("a host");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let logs: Vec<std::sync::Mutex<std::collections::BTreeMap<String, KeyLog>>> =
            (0..2).map(|_| Default::default()).collect();
        let stalls: std::sync::Mutex<Vec<Duration>> = Default::default();
        let acks = std::sync::atomic::AtomicUsize::new(0);
        let mut excluded_after = None;
        std::thread::scope(|s| {
            for w in 0..2 {
                let (c, stop, logs, stalls, dir, acks) = (&c, &stop, &logs, &stalls, &dir, &acks);
                s.spawn(move || {
                    let mut v = 0u32;
                    let mut last_ok = Instant::now();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        v += 1;
                        let key = format!("r{round}w{w}k{}", v % 6);
                        let f = dir.join(format!("{key}.{v}.in"));
                        std::fs::write(&f, version_bytes(&key, v)).expect("value");
                        let o = daos(
                            c,
                            home,
                            &[
                                "object",
                                "put",
                                "tank",
                                "c",
                                &key,
                                f.to_str().expect("utf8"),
                            ],
                        );
                        let _ = std::fs::remove_file(&f);
                        let mut l = logs[w].lock().expect("log");
                        let e = l.entry(key).or_default();
                        if o.status.code() == Some(0) {
                            acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            e.acked = Some(v);
                            e.failed.clear();
                            let gap = last_ok.elapsed();
                            if gap > Duration::from_secs(1) {
                                stalls.lock().expect("stalls").push(gap);
                            }
                            last_ok = Instant::now();
                        } else {
                            e.failed.push(v);
                        }
                    }
                });
            }
            // Let the writers run, then kill the first host.
            let acked = |n: usize| {
                logs.iter()
                    .map(|l| {
                        l.lock()
                            .expect("log")
                            .values()
                            .filter(|e| e.acked.is_some())
                            .count()
                    })
                    .sum::<usize>()
                    >= n
            };
            assert!(
                wait_until(Duration::from_secs(60), || acked(6)),
                "writers write"
            );
            let t = Instant::now();
            // Every process of the host (its daos_server reaped after the writers stop).
            c.hosts.kill(first);
            let victim = rank_of[first];
            let state = |c: &Cluster| {
                c.members(home, all)
                    .ok()
                    .and_then(|m| m.into_iter().find(|m| m.0 == victim).map(|m| m.2))
            };
            assert!(
                wait_until(Duration::from_secs(60), || state(&c).as_deref()
                    == Some("excluded")),
                "round {round}: SWIM excludes rank {victim}: {:?}\n{}",
                c.members(home, all),
                c.logs()
            );
            excluded_after = Some(t.elapsed());
            let mut q = serde_json::Value::Null;
            assert!(
                wait_until(Duration::from_secs(90), || {
                    q = try_pool_query(&c, home, all);
                    // Down_out: the pool excluded the victim's targets and that rebuild
                    // finished (a rank that stops answering is reported disabled earlier).
                    q["rebuild"]["state"] == "done"
                        && q["disabled_ranks"] == victim.to_string().as_str()
                        && stdout(&c.dmg(
                            home,
                            all,
                            &[
                                "pool",
                                "query-targets",
                                "tank",
                                "--rank",
                                &victim.to_string(),
                            ],
                        ))
                        .contains("state down_out")
                }),
                "round {round}: rebuild after rank {victim}: {q}\n{}",
                c.logs()
            );
            // Writers keep going after the rebuild.
            let at_rebuild = acks.load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                wait_until(Duration::from_secs(60), || acks
                    .load(std::sync::atomic::Ordering::Relaxed)
                    >= at_rebuild + 4),
                "round {round}: writers go on after the rebuild\n{}",
                c.logs()
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        c.kill(first);
        // The second host dies: every acknowledged value reads back from the survivors.
        c.kill(second);
        let survivors: Vec<String> = (1..=4)
            .filter(|i| *i != first && *i != second)
            .map(|i| c.at(i))
            .collect();
        let survivors = survivors.join(",");
        let (mut lost, mut torn, mut checked) = (0, 0, 0);
        for l in &logs {
            for (key, e) in l.lock().expect("log").iter() {
                let Some(acked) = e.acked else { continue };
                checked += 1;
                let f = dir.join(format!("{key}.out"));
                let mut a = vec!["-i", "-l", survivors.as_str()];
                a.extend_from_slice(&[
                    "object",
                    "get",
                    "tank",
                    "c",
                    key,
                    f.to_str().expect("utf8"),
                ]);
                let o = c.run(home, "daos", &a);
                if o.status.code() != Some(0) {
                    eprintln!("round {round}: {key}: {}", stderr(&o));
                    lost += 1;
                    continue;
                }
                let got = std::fs::read(&f).expect("read back");
                let ok = std::iter::once(acked)
                    .chain(e.failed.iter().copied())
                    .any(|v| version_bytes(key, v) == got);
                if !ok {
                    torn += 1;
                }
            }
        }
        let mut st = stalls.lock().expect("stalls").clone();
        st.sort_unstable();
        eprintln!(
            "round {round}: killed h{first} (rank {}), then h{second}: {checked} acknowledged keys checked, {lost} lost, {torn} torn; kill to exclusion {} ms; writer stalls {:?} ms (max)",
            rank_of[first],
            excluded_after.map_or(0, |d| d.as_millis()),
            st.last().map_or(0, |d| d.as_millis())
        );
        assert_eq!(
            (lost, torn),
            (0, 0),
            "round {round}: every acknowledged update reads back intact\n{}",
            c.logs()
        );
        // Both back, reintegrated: redundancy normal.
        c.start(first);
        c.start(second);
        assert!(
            wait_until(Duration::from_secs(90), || joined(&c, 1, &four, 4)),
            "round {round}: {:?}\n{}",
            c.members(1, &four),
            c.logs()
        );
        reintegrate_down(
            &c,
            &four,
            &[rank_of[first], rank_of[second]],
            &format!("round {round}"),
        );
        let text = stdout(&c.dmg(1, &h1, &["pool", "query", "tank"]));
        assert!(text.contains("- Data redundancy: normal"), "{text}");
    }

    // Admin map churn racing the writers (issue #23 item 3): no replica left behind.
    let churn = std::env::var("SELFHEAL_CHURN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    if churn > 0 {
        admin_churn(&c, &rank_of, &dir, seed, churn);
    }

    // The pool service's leader dies with its host: the other replicas elect a leader;
    // containers are created and opened meanwhile; every container survives.
    pool_service_leader_killed(&mut c, &rank_of, &dir);

    // A partitioned rank (namespace hosts: h4's link cut) is excluded by SWIM and its
    // targets by the pool; values change meanwhile; healed, its engine restarts and rejoins
    // but serves nothing stale (its targets are out); reintegrated, it is rebuilt and every
    // value reads back current, also with the other copies' hosts gone.
    let put = |c: &Cluster, key: &str, v: u32| {
        let f = dir.join(format!("{key}.{v}.in"));
        std::fs::write(&f, version_bytes(key, v)).expect("value");
        passed(
            c,
            daos(
                c,
                1,
                &["object", "put", "tank", "c", key, f.to_str().expect("utf8")],
            ),
        );
    };
    let get_from = |c: &Cluster, hosts: &str, key: &str| -> Vec<u8> {
        let f = dir.join(format!("{key}.out"));
        let o = c
            .hosts
            .command(1, &bin("daos"))
            .args([
                "-i",
                "-l",
                hosts,
                "object",
                "get",
                "tank",
                "c",
                key,
                f.to_str().expect("utf8"),
            ])
            .env("CRT_TIMEOUT", "3")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("daos");
        assert_eq!(
            o.status.code(),
            Some(0),
            "get {key}: {}\n{}",
            stderr(&o),
            c.logs()
        );
        std::fs::read(&f).expect("read back")
    };
    let phase = Instant::now();
    let keys: Vec<String> = (0..8).map(|k| format!("part{k}")).collect();
    for k in &keys {
        put(&c, k, 1);
    }
    if c.hosts.mode() == Mode::Namespaces {
        let ph = 4;
        let r4 = rank_of[ph];
        c.hosts.cut(ph).expect("cut");
        let state4 = |c: &Cluster| {
            c.members(1, &h1)
                .ok()
                .and_then(|m| m.into_iter().find(|m| m.0 == r4).map(|m| m.2))
        };
        assert!(
            wait_until(Duration::from_secs(60), || state4(&c).as_deref()
                == Some("excluded")),
            "the cut rank {r4} is excluded: {:?}\n{}",
            c.members(1, &h1),
            c.logs()
        );
        // The pool excluded the rank's targets and its rebuild finished: they are down_out
        // (the rank is reported disabled as soon as it stops answering, before that).
        let mut q = serde_json::Value::Null;
        assert!(
            wait_until(Duration::from_secs(90), || {
                q = pool_query(&c, 1, "tank");
                q["rebuild"]["state"] == "done"
                    && stdout(&c.dmg(
                        1,
                        &h1,
                        &["pool", "query-targets", "tank", "--rank", &r4.to_string()],
                    ))
                    .contains("state down_out")
            }),
            "rebuild without the cut rank: {q}\n{}",
            c.logs()
        );
        for k in &keys {
            put(&c, k, 2);
        }
        eprintln!(
            "partition: excluded and rebuilt after {} ms",
            phase.elapsed().as_millis()
        );
        c.hosts.heal(ph).expect("heal");
        assert!(
            wait_until(Duration::from_secs(90), || state4(&c).as_deref()
                == Some("joined")),
            "the healed rank {r4} rejoins: {:?}\n{}",
            c.members(1, &h1),
            c.logs()
        );
        for k in &keys {
            assert!(
                get_from(&c, all, k) == version_bytes(k, 2),
                "{k}: stale after the heal"
            );
        }
        eprintln!(
            "partition: healed, rejoined, nothing stale after {} ms",
            phase.elapsed().as_millis()
        );
        let t = stdout(&c.dmg(
            1,
            &four,
            &["pool", "query-targets", "tank", "--rank", &r4.to_string()],
        ));
        assert!(t.contains("state down_out"), "out until reintegrated: {t}");
        passed(
            &c,
            c.dmg(
                1,
                &four,
                &["pool", "reint", "tank", "--ranks", &r4.to_string()],
            ),
        );
        assert!(
            wait_until(Duration::from_secs(90), || {
                q = pool_query(&c, 1, "tank");
                q["rebuild"]["state"] == "done" && q["disabled_targets"] == 0
            }),
            "reintegrated: {q}\n{}",
            c.logs()
        );
        // Every key still reads current (h4's replicas were brought up to date).
        for k in &keys {
            assert!(
                get_from(&c, &four, k) == version_bytes(k, 2),
                "{k}: stale after reintegration"
            );
        }
    } else {
        eprintln!(
            "SKIPPED the partition case (a cut rank is excluded, then reintegrated): loopback hosts share one network"
        );
    }

    eprintln!(
        "partition phase done after {} ms",
        phase.elapsed().as_millis()
    );
    let phase = Instant::now();
    // RP_3G1 with rd_fac:2 survives two hosts killed at once (never two MS replicas: h4 and
    // one of h2, h3).
    passed(
        &c,
        daos(
            &c,
            1,
            &[
                "container",
                "create",
                "tank",
                "c3",
                "--properties",
                "rd_fac:2,rd_lvl:node",
            ],
        ),
    );
    let three: Vec<String> = (0..10).map(|k| format!("three{k}")).collect();
    for k in &three {
        let f = dir.join(format!("{k}.in"));
        std::fs::write(&f, version_bytes(k, 7)).expect("value");
        passed(
            &c,
            daos(
                &c,
                1,
                &["object", "put", "tank", "c3", k, f.to_str().expect("utf8")],
            ),
        );
    }
    c.hosts.kill(3);
    c.hosts.kill(4);
    c.kill(3);
    c.kill(4);
    let h12 = format!("{h1},{}", c.at(2));
    for k in &three {
        let f = dir.join(format!("{k}.out"));
        let o = c
            .hosts
            .command(1, &bin("daos"))
            .args([
                "-i",
                "-l",
                &h12,
                "object",
                "get",
                "tank",
                "c3",
                k,
                f.to_str().expect("utf8"),
            ])
            .env("CRT_TIMEOUT", "3")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("daos");
        assert_eq!(
            o.status.code(),
            Some(0),
            "RP_3G1 {k} with two hosts gone: {}\n{}",
            stderr(&o),
            c.logs()
        );
        assert!(
            std::fs::read(&f).expect("read") == version_bytes(k, 7),
            "{k} differs"
        );
    }
    eprintln!("RP_3G1 phase done after {} ms", phase.elapsed().as_millis());
}

/// What each replica of `keys` (stored with `daos object put` in container `cont` of pool
/// `pool`, class RP_2G1, rd_lvl node) names as its current value, read from each target of
/// the object's layout directly (as a rebuild or a read would find it): per key, (rank,
/// target, the value's bytes, or why it could not be read; `None`: the replica lacks the key).
#[allow(clippy::type_complexity)]
fn replica_values(
    c: &Cluster,
    all: &str,
    pool: &str,
    cont: [u8; 16],
    keys: &[String],
) -> Vec<(String, Vec<(u32, u32, Result<Option<Vec<u8>>, String>)>)> {
    use daos_client::{Session, SessionOpts, connect};
    let (all, pool, keys) = (all.to_string(), pool.to_string(), keys.to_vec());
    c.hosts
        .in_host(1, move || {
            let control = daos_config::control::Control::default();
            let target = daos_control::Target::new(&control, Some(&all), true).expect("target");
            let map = connect::connect_blocking(&target, &pool, daos_client::container::FLAG_RO)
                .expect("connect");
            let mut s =
                Session::open(std::sync::Arc::new(map), SessionOpts::default()).expect("session");
            let class = daos_placement::ObjectClass::rp(2, 1);
            let mut out = Vec::new();
            for key in keys {
                let oid =
                    daos_client::kv::key_oid_at(&key, Some(class), daos_placement::RdLvl::Node);
                let mut replicas = Vec::new();
                for t in s.map().final_layout(oid).expect("layout") {
                    let (rank, idx) = (s.map().targets[t].rank, s.map().targets[t].target);
                    let mut read = || -> Result<Option<Vec<u8>>, String> {
                        let req = daos_wire::Request::Fetch {
                            oid,
                            dkey: b"meta",
                            akey: b"current",
                        };
                        let cur = s
                            .call_with(t, cont, &req, |r| {
                                r.fetched().map(|v| v.map(<[u8]>::to_vec))
                            })
                            .map_err(|e| e.to_string())?
                            .ok_or("fetch reply malformed")?;
                        let Some(cur) = cur else { return Ok(None) };
                        if cur.len() != 24 {
                            return Err(format!("version record of {} bytes", cur.len()));
                        }
                        let size = u64::from_le_bytes(cur[16..24].try_into().expect("8"));
                        let mut data = Vec::with_capacity(size as usize);
                        while (data.len() as u64) < size {
                            let n = (size - data.len() as u64).min(daos_wire::READ_MAX as u64);
                            let req = daos_wire::Request::ReadExtent {
                                oid,
                                dkey: b"data",
                                akey: &cur[..16],
                                offset: data.len() as u64,
                                len: n as u32,
                            };
                            let d = s
                                .call_with(t, cont, &req, |r| r.read_data().map(<[u8]>::to_vec))
                                .map_err(|e| e.to_string())?
                                .ok_or("read reply malformed")?;
                            if d.len() as u64 != n {
                                return Err(format!("short read: {} of {n} bytes", d.len()));
                            }
                            data.extend_from_slice(&d);
                        }
                        Ok(Some(data))
                    };
                    replicas.push((rank, idx, read()));
                }
                out.push((key, replicas));
            }
            out
        })
        .expect("in host 1")
}

/// The UUID of container `label` of pool `pool` (`daos container query`, from host 1).
fn cont_uuid_in(c: &Cluster, all: &str, pool: &str, label: &str) -> [u8; 16] {
    let o = passed(
        c,
        c.run(
            1,
            "daos",
            &["-i", "-l", all, "-j", "container", "query", pool, label],
        ),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let text = v["response"]["container_uuid"].as_str().unwrap_or_default();
    daos_client::parse_uuid(text).unwrap_or_else(|| panic!("container UUID in {v}"))
}

/// Issue #23 item 3: admin map churn racing writers. A pool `churn` on the ranks of hosts
/// 1-3 (RP_2G1, rd_fac:1, rd_lvl:node); two writers put all along; `iterations` times two
/// ranks are excluded and drained at once (the first time while host 4's rank extends the
/// pool), then both reintegrated at once (one `dmg` each, as a script would: no manual retry),
/// without waiting for the rebuilds in between. The pool must then settle by itself (every
/// target up_in, rebuild done); after it, every replica of every key's layout, read directly
/// from its target, and `daos object get` hold the last acknowledged value (or a later one
/// whose put failed).
fn admin_churn(c: &Cluster, rank_of: &[u32], dir: &std::path::Path, seed: u64, iterations: usize) {
    let all = c.all();
    let all = all.as_str();
    let phase = Instant::now();
    let daos = |from: usize, args: &[&str]| {
        c.hosts
            .command(from, &bin("daos"))
            .args(["-i", "-l", all])
            .args(args)
            .env("CRT_TIMEOUT", "3")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("daos")
    };
    let first3 = format!("{},{},{}", rank_of[1], rank_of[2], rank_of[3]);
    passed(
        c,
        c.dmg(
            1,
            all,
            &[
                "pool",
                "create",
                "churn",
                "--scm-size",
                "128M",
                "--nvme-size",
                "256M",
                "--ranks",
                &first3,
            ],
        ),
    );
    passed(
        c,
        daos(
            1,
            &[
                "container",
                "create",
                "churn",
                "c",
                "--properties",
                "rd_fac:1,rd_lvl:node",
            ],
        ),
    );
    let mut rng = Rng(seed.max(1) ^ 0x00c0_ffee);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let logs: Vec<std::sync::Mutex<std::collections::BTreeMap<String, KeyLog>>> =
        (0..2).map(|_| Default::default()).collect();
    let acks = std::sync::atomic::AtomicUsize::new(0);
    // Puts that failed, and the last one's error.
    let failures: std::sync::Mutex<(usize, String)> = Default::default();
    // Gets during the churn, and those that returned an older value than acknowledged.
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let stale_reads: std::sync::Mutex<Vec<String>> = Default::default();
    let query = |what: &str| {
        let o = c.dmg(1, all, &["-j", "pool", "query", "churn"]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .map(|v| v["response"].clone())
            .unwrap_or_else(|_| serde_json::Value::String(format!("{what}: {}", stderr(&o))))
    };
    // Host 4's rank joins by the extension: a third more targets.
    let targets = query("created")["total_targets"]
        .as_u64()
        .expect("total targets")
        * 4
        / 3;
    let settled = |q: &serde_json::Value| {
        q["rebuild"]["state"] == "done"
            && q["disabled_targets"] == 0
            && q["total_targets"] == targets
    };
    std::thread::scope(|s| {
        for w in 0..2 {
            let (stop, logs, acks, daos, failures) = (&stop, &logs, &acks, &daos, &failures);
            s.spawn(move || {
                let mut v = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    v += 1;
                    let key = format!("churn{w}k{}", v % 6);
                    let f = dir.join(format!("{key}.{v}.in"));
                    std::fs::write(&f, version_bytes(&key, v)).expect("value");
                    // From hosts 1 and 2 (no host goes down here).
                    let o = daos(
                        1 + w,
                        &[
                            "object",
                            "put",
                            "churn",
                            "c",
                            &key,
                            f.to_str().expect("utf8"),
                        ],
                    );
                    let _ = std::fs::remove_file(&f);
                    let mut l = logs[w].lock().expect("log");
                    let e = l.entry(key).or_default();
                    if o.status.code() == Some(0) {
                        acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        e.acked = Some(v);
                        e.failed.clear();
                    } else {
                        e.failed.push(v);
                        let mut f = failures.lock().expect("failures");
                        f.0 += 1;
                        f.1 = stderr(&o);
                    }
                }
            });
        }
        // A reader all along: a get never returns a value older than the last one
        // acknowledged before it started (a stale replica served).
        {
            let (stop, logs, daos, stale_reads, reads, phase) =
                (&stop, &logs, &daos, &stale_reads, &reads, &phase);
            s.spawn(move || {
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let w = n % 2;
                    let key = format!("churn{w}k{}", n % 6);
                    let Some(from) = logs[w].lock().expect("log").get(&key).and_then(|e| e.acked)
                    else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    let f = dir.join(format!("{key}.read"));
                    let o = daos(
                        4,
                        &[
                            "object",
                            "get",
                            "churn",
                            "c",
                            &key,
                            f.to_str().expect("utf8"),
                        ],
                    );
                    reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if o.status.code() != Some(0) {
                        let e = stderr(&o);
                        // A get may fail while maps move (not a stale read); "no key" is one.
                        if e.contains("no key") {
                            stale_reads.lock().expect("stale").push(format!(
                                "{key}: no key at {} ms, version {from} acknowledged",
                                phase.elapsed().as_millis()
                            ));
                        }
                        continue;
                    }
                    let got = std::fs::read(&f).expect("read");
                    if version_of(&key, &got, from..=from + 2000).is_none() {
                        let was = version_of(&key, &got, 1..=from);
                        stale_reads.lock().expect("stale").push(format!(
                            "{key}: read version {was:?} at {} ms, version {from} acknowledged before",
                            phase.elapsed().as_millis()
                        ));
                    }
                }
            });
        }
        let acked = |n: usize| acks.load(std::sync::atomic::Ordering::Relaxed) >= n;
        assert!(
            wait_until(Duration::from_secs(60), || acked(12)),
            "churn: writers write"
        );
        let mut ranks: Vec<u32> = rank_of[1..=3].to_vec();
        for it in 0..iterations {
            let a = ranks[rng.below(ranks.len() as u64) as usize];
            let b = loop {
                let b = ranks[rng.below(ranks.len() as u64) as usize];
                if b != a {
                    break b;
                }
            };
            let (a, b) = (a.to_string(), b.to_string());
            let extend = (it == 0).then(|| rank_of[4].to_string());
            let outs: Vec<(String, std::process::Output)> = std::thread::scope(|s2| {
                let mut jobs = vec![
                    s2.spawn(|| {
                        let args = ["pool", "exclude", "churn", "--ranks", a.as_str()];
                        (format!("exclude {a}"), c.dmg(1, all, &args))
                    }),
                    s2.spawn(|| {
                        let args = ["pool", "drain", "churn", "--ranks", b.as_str()];
                        (format!("drain {b}"), c.dmg(2, all, &args))
                    }),
                ];
                if let Some(r) = &extend {
                    jobs.push(s2.spawn(move || {
                        let args = ["pool", "extend", "churn", "--ranks", r.as_str()];
                        (format!("extend {r}"), c.dmg(3, all, &args))
                    }));
                }
                jobs.into_iter().map(|j| j.join().expect("dmg")).collect()
            });
            for (what, o) in &outs {
                eprintln!(
                    "churn {it}: {what}: {}",
                    (stdout(o) + &stderr(o)).replace('\n', " | ")
                );
            }
            if extend.is_some() {
                ranks.push(rank_of[4]);
            }
            // Rebuilds under way, writers going on.
            std::thread::sleep(Duration::from_millis(rng.below(2000)));
            let outs: Vec<(String, std::process::Output)> = std::thread::scope(|s2| {
                let jobs = [(1, a.as_str()), (2, b.as_str())].map(|(from, r)| {
                    s2.spawn(move || {
                        let args = ["pool", "reintegrate", "churn", "--ranks", r];
                        (format!("reintegrate {r}"), c.dmg(from, all, &args))
                    })
                });
                jobs.into_iter().map(|j| j.join().expect("dmg")).collect()
            });
            for (what, o) in &outs {
                eprintln!(
                    "churn {it}: {what}: {}",
                    (stdout(o) + &stderr(o)).replace('\n', " | ")
                );
            }
            std::thread::sleep(Duration::from_millis(rng.below(1500)));
        }
        // The pool settles by itself: every target back in, the last rebuild done (writers
        // still going).
        let mut q = serde_json::Value::Null;
        assert!(
            wait_until(Duration::from_secs(120), || {
                q = query("settling");
                settled(&q)
            }),
            "churn: the pool settles without a manual reintegrate: {q}\n{}",
            c.logs()
        );
        let at = acks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            wait_until(Duration::from_secs(60), || acked(at + 4)),
            "churn: writers go on"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let q = query("after the writers");
    assert!(settled(&q), "churn: still settled: {q}");
    let failures = failures.into_inner().expect("failures");
    let stale_reads = stale_reads.into_inner().expect("stale");
    eprintln!(
        "churn: {iterations} iteration(s), {} acknowledged puts, {} failed (last: {}), {} gets ({} stale), settled after {} ms",
        acks.load(std::sync::atomic::Ordering::Relaxed),
        failures.0,
        failures.1.trim(),
        reads.load(std::sync::atomic::Ordering::Relaxed),
        stale_reads.len(),
        phase.elapsed().as_millis()
    );
    let logs: std::collections::BTreeMap<String, KeyLog> = logs
        .into_iter()
        .flat_map(|l| l.into_inner().expect("log"))
        .filter(|(_, e)| e.acked.is_some())
        .collect();
    let keys: Vec<String> = logs.keys().cloned().collect();
    let cont = cont_uuid_in(c, all, "churn", "c");
    let current = |key: &str, got: &[u8]| {
        let e = &logs[key];
        e.acked
            .iter()
            .chain(&e.failed)
            .find(|v| version_bytes(key, **v) == got)
            .copied()
    };
    // Which version a value is (searched below the last acknowledged one: a stale replica).
    let which = |key: &str, got: &[u8]| {
        let top = logs[key].acked.unwrap_or(0) + 2000;
        version_of(key, got, 1..=top)
    };
    let mut bad = stale_reads;
    let mut replicas = 0;
    for (key, reps) in replica_values(c, all, "churn", cont, &keys) {
        for (rank, idx, r) in reps {
            replicas += 1;
            let ok = match &r {
                Ok(Some(v)) => current(&key, v).is_some(),
                _ => false,
            };
            if !ok {
                let held = match &r {
                    Ok(Some(v)) => format!("version {:?}", which(&key, v)),
                    Ok(None) => "nothing".into(),
                    Err(e) => format!("an error: {e}"),
                };
                bad.push(format!(
                    "{key}: rank {rank} target {idx} holds {held}, last acknowledged {:?} (failed after: {:?})",
                    logs[&key].acked, logs[&key].failed
                ));
            }
        }
    }
    for key in &keys {
        let f = dir.join(format!("{key}.out"));
        let o = daos(
            3,
            &[
                "object",
                "get",
                "churn",
                "c",
                key,
                f.to_str().expect("utf8"),
            ],
        );
        if o.status.code() != Some(0) {
            bad.push(format!("{key}: daos object get: {}", stderr(&o)));
            continue;
        }
        let got = std::fs::read(&f).expect("read back");
        if current(key, &got).is_none() {
            bad.push(format!(
                "{key}: daos object get returned version {:?}, last acknowledged {:?}",
                which(key, &got),
                logs[key].acked
            ));
        }
    }
    eprintln!(
        "churn: {} keys, {replicas} replicas checked, {} stale or missing; {} ms",
        keys.len(),
        bad.len(),
        phase.elapsed().as_millis()
    );
    assert!(
        bad.is_empty(),
        "churn: replicas behind the last acknowledged update:\n{}\n{}",
        bad.join("\n"),
        c.logs()
    );
}

/// `daos -i -l HOSTS args` inside host `from` with the agent whose socket is in `agent_run`.
fn daos_via_agent(
    c: &Cluster,
    from: usize,
    agent_run: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    c.hosts
        .command(from, &bin("daos"))
        .args(["-i", "-l", &c.at(from)])
        .args(args)
        .env("DAOS_AGENT_DRPC_DIR", agent_run)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("daos")
}

/// A daos_agent on hosts 2 and 3, each asking its own host's daos_server: clients connect
/// through them, their handles reach the engines of every host (a replicated value written
/// from one host, read from another), and `dmg pool evict` from the first host takes a
/// connected client's handle away on every host's targets.
pub fn agents_on_hosts(mut c: Cluster) {
    let all = c.all();
    let all = all.as_str();
    start_formatted(&mut c, all, 3);
    create_tank(&c, 1, all);
    let (mut runs, mut agents) = (Vec::new(), Vec::new());
    for i in 2..=3 {
        let d = c.path(i).join("agent");
        let run = d.join("run");
        std::fs::create_dir_all(&run).expect("agent dir");
        let config = d.join("daos_agent.yml");
        std::fs::write(
            &config,
            format!(
                "name: daos_server\naccess_points: ['{}']\nruntime_dir: {}\n\
                 log_file: {}/daos_agent.log\ntransport_config:\n  allow_insecure: true\n",
                c.at(i),
                run.display(),
                d.display()
            ),
        )
        .expect("agent config");
        let child = c
            .hosts
            .command(i, &bin("daos_agent"))
            .arg("-o")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("daos_agent");
        c.hosts.track(i, child.id());
        agents.push(child);
        let sock = run.join("daos_agent.sock");
        assert!(
            wait_until(Duration::from_secs(20), || {
                daos_client::agent::Agent::connect_at(&sock).is_ok()
            }),
            "h{i}'s daos_agent did not listen; log:\n{}",
            std::fs::read_to_string(d.join("daos_agent.log")).unwrap_or_default()
        );
        runs.push(run);
    }
    let (run2, run3) = (runs[0].clone(), runs[1].clone());

    // A container and a value replicated on every host, through h3's agent; read back
    // through h2's.
    let value = c.path(3).join("agent-value.bin");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&value, &data).expect("value");
    passed(
        &c,
        daos_via_agent(&c, 3, &run3, &["container", "create", "tank", "c1"]),
    );
    let v = value.to_str().expect("utf8");
    passed(
        &c,
        daos_via_agent(
            &c,
            3,
            &run3,
            &["object", "put", "--oclass", "RP_3G1", "tank", "c1", "k", v],
        ),
    );
    let out = c.path(2).join("agent-value.out");
    let o = out.to_str().expect("utf8");
    passed(
        &c,
        daos_via_agent(
            &c,
            2,
            &run2,
            &["object", "get", "--oclass", "RP_3G1", "tank", "c1", "k", o],
        ),
    );
    assert!(
        std::fs::read(&out).expect("read back") == data,
        "the value differs"
    );

    // A client on h3 stays connected: one object on each host's target, written under its
    // handles; evicted from h1, each of them refuses the next update (DER_NO_HDL).
    let (to_client, connected) = std::sync::mpsc::channel::<Result<(), String>>();
    let (evicted, from_main) = std::sync::mpsc::channel::<()>();
    let h3 = c.at(3);
    let sock = run3.join("daos_agent.sock");
    let client = std::thread::scope(|s| {
        let hosts = &c.hosts;
        let client = s.spawn(move || {
            hosts.in_host(3, move || -> Result<Vec<(usize, String)>, String> {
                use daos_client::container::{Containers, FLAG_RW};
                let fail = |e: String| {
                    let _ = to_client.send(Err(e.clone()));
                    e
                };
                let control = daos_control::load_control(None).map_err(|e| fail(e.to_string()))?;
                let target = daos_control::Target::new(&control, Some(&h3), true)
                    .map_err(|e| fail(e.to_string()))?;
                let cred = daos_client::agent::Agent::connect_at(&sock)
                    .and_then(|mut a| a.credential())
                    .map_err(|e| fail(e.to_string()))?;
                let conts = Containers::new(&target, "tank").map_err(|e| fail(e.to_string()))?;
                let h = conts
                    .connect(prost::Message::encode_to_vec(&cred), FLAG_RW)
                    .map_err(|e| fail(format!("connect: {e}")))?;
                let c1 = conts.query("c1").map_err(|e| fail(e.to_string()))?;
                let ch = conts
                    .open(h.cookie, &daos_client::uuid_text(&c1.uuid), FLAG_RW)
                    .map_err(|e| fail(format!("open: {e}")))?;
                let map = daos_client::connect::pool_map_blocking(&target, "tank")
                    .map_err(|e| fail(e.to_string()))?
                    .with_handle(h.cookie)
                    .with_cont_handle(c1.uuid, ch.cookie);
                // An object id per target (one target per host).
                let mut oids: Vec<Option<u128>> = vec![None; map.targets.len()];
                for oid in 1..10_000u128 {
                    let t = map.place(oid);
                    oids[t].get_or_insert(oid);
                }
                let oids: Vec<(usize, u128)> = oids
                    .into_iter()
                    .enumerate()
                    .filter_map(|(t, o)| o.map(|o| (t, o)))
                    .collect();
                let mut s =
                    daos_client::Session::open(std::sync::Arc::new(map), Default::default())
                        .map_err(|e| fail(e.to_string()))?;
                for &(t, oid) in &oids {
                    s.update(c1.uuid, oid, b"d", b"a", b"connected")
                        .map_err(|e| fail(format!("target {t}: {e}")))?;
                }
                let _ = to_client.send(Ok(()));
                let _ = from_main.recv();
                Ok(oids
                    .iter()
                    .map(|&(t, oid)| {
                        let r = s.update(c1.uuid, oid, b"d", b"a", b"evicted");
                        (t, format!("{:?}", r.map_err(|e| e.der())))
                    })
                    .collect())
            })
        });
        let up = connected
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| Err(format!("the client never said: {e}")));
        if let Err(e) = up {
            let _ = evicted.send(());
            panic!("the connected client failed: {e}\n{}", c.logs());
        }
        passed(&c, c.dmg(1, all, &["pool", "evict", "tank"]));
        let _ = evicted.send(());
        client.join().expect("client thread")
    });
    let after = client
        .expect("in host")
        .unwrap_or_else(|e| panic!("client: {e}"));
    assert_eq!(after.len(), 3, "one object per host's target: {after:?}");
    for (t, r) in &after {
        assert_eq!(
            r,
            &format!("Err(Some({}))", daos_wire::der::NO_HDL),
            "target {t} still served the evicted handle: {after:?}"
        );
    }
    // A new connect through the agent works again.
    passed(
        &c,
        daos_via_agent(
            &c,
            2,
            &run2,
            &["object", "get", "--oclass", "RP_3G1", "tank", "c1", "k", o],
        ),
    );
    for mut a in agents {
        let _ = a.kill();
        let _ = a.wait();
    }
}

/// Three hosts; the management service leader dies in the middle of a pool create (a fault
/// injected after its first shard): the next leader rolls the half-made pool back by itself
/// (its label free, no pool left `Creating`), and once the dead host is back, the shard the
/// create left there is reclaimed; the same create then succeeds (issue #23 item 7).
pub fn leader_dies_in_a_pool_create(mut c: Cluster) {
    let all = c.all();
    let all = all.as_str();
    let flag = c.path(1).join("fault.pool_create");
    c.set_server_env("DAOS_RS_FAULT_POOL_CREATE", &flag.display().to_string());
    start_formatted(&mut c, all, 3);
    let (l, _) = leader(&c, 1, all).expect("a leader");
    let dead = (1..=3)
        .find(|i| c.at(*i) == l)
        .expect("the leader is a host");
    let others: Vec<usize> = (1..=3).filter(|i| *i != dead).collect();
    let live = others
        .iter()
        .map(|i| c.at(*i))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(&flag, b"").expect("fault flag");
    let o = c.dmg(
        others[0],
        all,
        &["pool", "create", "half", "--scm-size", "64M"],
    );
    assert_ne!(
        o.status.code(),
        Some(0),
        "the create went through: {}",
        stdout(&o)
    );
    assert!(!flag.exists(), "the fault fired\n{}", c.logs());
    c.kill(dead);
    // The next leader rolls it back, without the dead host.
    let listed = |c: &Cluster| {
        let o = c.dmg(others[0], &live, &["-j", "pool", "list"]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).ok()
    };
    let gone = wait_until(Duration::from_secs(90), || {
        listed(&c).is_some_and(|v| {
            v["status"] == 0
                && v["response"]["pools"]
                    .as_array()
                    .is_none_or(|p| p.iter().all(|p| p["label"] != "half"))
        })
    });
    assert!(
        gone,
        "the half-made pool is still listed: {:?}\n{}",
        listed(&c),
        c.logs()
    );
    // Its label is free again while the dead host is away.
    passed(
        &c,
        c.dmg(
            others[0],
            &live,
            &["pool", "create", "half", "--size", "1G", "--nranks", "2"],
        ),
    );
    passed(&c, c.dmg(others[0], &live, &["pool", "destroy", "half"]));
    // The dead host comes back: the shard the create made on it (if it made one there) is
    // removed, and no shard of any pool is left on any host.
    c.start(dead);
    assert!(
        wait_until(Duration::from_secs(60), || joined(&c, others[0], all, 3)),
        "{:?}\n{}",
        c.members(others[0], all),
        c.logs()
    );
    let shards = |c: &Cluster| -> Vec<String> {
        (1..=3)
            .flat_map(|i| {
                std::fs::read_dir(c.path(i).join("scm0/pools"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(move |e| format!("h{i}: {}", e.file_name().to_string_lossy()))
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(90), || shards(&c).is_empty()),
        "shards no pool names: {:?}\n{}",
        shards(&c),
        c.logs()
    );
    passed(
        &c,
        c.dmg(1, all, &["pool", "create", "half", "--scm-size", "64M"]),
    );
}
