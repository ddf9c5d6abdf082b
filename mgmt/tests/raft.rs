//! Three management-service replicas in one process, each with its own runtime, Raft node,
//! `control_raft/` and gRPC server on a loopback port: bootstrap, voters added as their
//! servers' engines join, writes forwarded from followers, a leader killed and a new one
//! elected, the killed replica restarted and caught up, a log bounded by snapshots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use daos_mgmt::raft::{MsConfig, MsNode, Timing, svc};
use daos_mgmt::{JoinRequest, ManagementService, MemberState, PoolRecord, PoolState};

struct Replica {
    node: Arc<MsNode>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    fn start(
        me: usize,
        listener: std::net::TcpListener,
        replicas: &[String],
        dir: &std::path::Path,
    ) -> Replica {
        let node = Arc::new(
            MsNode::new(MsConfig {
                system: "daos_server".into(),
                replicas: replicas.to_vec(),
                me: Some(me),
                dir: Some(dir.join(format!("r{me}/control_raft"))),
                pool_dir: Some(dir.join(format!("r{me}/pool_svc"))),
                tls: None,
                timing: Timing {
                    heartbeat: Duration::from_millis(100),
                    election_min: Duration::from_millis(400),
                    election_max: Duration::from_millis(800),
                },
            })
            .expect("node"),
        );
        let check: svc::Check = Arc::new(|_, _| Ok(()));
        let service = svc::server(node.clone(), check);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        listener.set_nonblocking(true).expect("nonblocking");
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).expect("listener");
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
                let _ = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = rx.await;
                    })
                    .await;
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        node.start_replica().expect("start replica");
        Replica {
            node,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn kill(mut self) {
        self.node.shutdown();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pool(n: u32) -> PoolRecord {
    PoolRecord {
        svc_hosts: Vec::new(),
        uuid: format!("00000000-0000-0000-0000-{n:012}"),
        label: format!("pool{n}"),
        svc_ranks: vec![0],
        ranks: vec![0, 1, 2],
        scm_per_rank: 1 << 30,
        nvme_per_rank: 0,
        props: Default::default(),
        state: PoolState::Ready,
        map: Default::default(),
        owner: "root@".into(),
        owner_group: "root@".into(),
        acl: Vec::new(),
        system_handle: 0x5eed + u64::from(n),
    }
}

fn join(addr: &str, uuid: u32) -> JoinRequest {
    JoinRequest {
        system: "daos_server".into(),
        uuid: format!("10000000-0000-0000-0000-{uuid:012}"),
        rank: None,
        uri: format!("ofi+tcp://{addr}"),
        nctxs: 1,
        addr: addr.into(),
        fault_domain: "/h".into(),
        incarnation: 1,
        idx: 0,
        bootstrap: uuid == 0,
    }
}

/// Three servers on free loopback ports under `dir`: their addresses and their replicas.
fn three_servers(dir: &std::path::Path) -> (Vec<String>, Vec<Option<Replica>>) {
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let replicas: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").to_string())
        .collect();
    let nodes = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| Some(Replica::start(i, l, &replicas, dir)))
        .collect();
    (replicas, nodes)
}

/// Pool `uuid`'s service on every server: server 0 starts every replica, its own and the
/// others through their servers.
fn start_pool_service(nodes: &[Option<Replica>], replicas: &[String], uuid: &str) {
    let n0 = nodes[0].as_ref().expect("running").node.clone();
    for (i, addr) in replicas.iter().enumerate() {
        let m = daos_mgmt::raft::pool::Members {
            replicas: replicas.to_vec(),
            me: i,
        };
        n0.pool_svc_start(addr, i == 0, uuid, &m)
            .expect("start a replica");
    }
}

fn leader_of(nodes: &[Option<&Replica>]) -> Option<usize> {
    nodes
        .iter()
        .position(|r| r.is_some_and(|r| r.node.is_leader()))
}

#[test]
fn three_replicas_elect_replicate_fail_over_and_catch_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (replicas, mut nodes) = three_servers(dir.path());
    let get =
        |nodes: &Vec<Option<Replica>>, i: usize| nodes[i].as_ref().expect("running").node.clone();
    // Replica 0 bootstraps and leads; the others are not voters yet.
    wait("replica 0 to lead", Duration::from_secs(10), || {
        get(&nodes, 0).is_leader()
    });
    let n0 = get(&nodes, 0);
    let r0 = n0.join_local(&join(&replicas[0], 0)).expect("join 0");
    assert_eq!(
        r0.rank, 0,
        "the bootstrap replica's first engine gets rank 0"
    );
    // A follower is told where the leader is, in DAOS's words.
    let e = get(&nodes, 1)
        .check_leader()
        .expect_err("not leader")
        .to_string();
    assert!(
        e.starts_with("not the DAOS Management Service leader (try "),
        "{e}"
    );
    // Engines of the other replicas' servers join: their replicas become voters.
    assert_eq!(
        n0.join_local(&join(&replicas[1], 1)).expect("join 1").rank,
        1
    );
    assert_eq!(
        n0.join_local(&join(&replicas[2], 2)).expect("join 2").rank,
        2
    );
    wait("three voters", Duration::from_secs(15), || {
        n0.status().is_some_and(|(_, _, v)| v.len() == 3)
    });
    // A write from a follower is forwarded to the leader and reaches every replica.
    get(&nodes, 2).pool_add(pool(1)).expect("forwarded write");
    for i in 0..3 {
        wait("the pool everywhere", Duration::from_secs(5), || {
            get(&nodes, i).pool_find("pool1").is_some()
        });
    }
    // A refusal comes back through forwarding too, and changes nothing.
    let e = get(&nodes, 1)
        .pool_add(pool(1))
        .expect_err("label taken")
        .to_string();
    assert_eq!(e, "a pool labelled \"pool1\" already exists");

    // Kill the leader: the other two elect one and keep accepting writes.
    for round in 0..3 {
        let refs: Vec<Option<&Replica>> = nodes.iter().map(|n| n.as_ref()).collect();
        let old = leader_of(&refs).expect("a leader");
        nodes[old].take().expect("leader").kill();
        let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
        wait("a new leader", Duration::from_secs(15), || {
            survivors.iter().any(|i| get(&nodes, *i).is_leader())
        });
        let writer = get(&nodes, survivors[0]);
        writer
            .pool_add(pool(10 + round))
            .expect("write after failover");
        writer
            .set_state(1, MemberState::Stopped, "stopped by test")
            .expect("state");
        // The killed replica restarts from its control_raft/ and catches up.
        drop(nodes[old].take());
        let l = std::net::TcpListener::bind(&replicas[old]).expect("rebind");
        nodes[old] = Some(Replica::start(old, l, &replicas, dir.path()));
        let back = get(&nodes, old);
        wait(
            "the restarted replica to catch up",
            Duration::from_secs(15),
            || back.pool_find(&format!("pool{}", 10 + round)).is_some(),
        );
        assert_eq!(back.members().len(), 3);
    }
    // Many writes: snapshots bound the log, and a restart still has everything.
    let refs: Vec<Option<&Replica>> = nodes.iter().map(|n| n.as_ref()).collect();
    let l = leader_of(&refs).unwrap_or(0);
    let leader = get(&nodes, l);
    for n in 0..150u32 {
        let state = if n % 2 == 0 {
            MemberState::Joined
        } else {
            MemberState::Stopped
        };
        leader
            .set_state(2, state, &format!("flip {n}"))
            .expect("flip");
    }
    let log = dir.path().join(format!("r{l}/control_raft/raft.log"));
    assert!(
        dir.path()
            .join(format!("r{l}/control_raft/snapshot.json"))
            .exists()
    );
    let size = std::fs::metadata(&log).expect("log").len();
    assert!(size < 400_000, "log not bounded: {size} bytes");
    let version = leader.db().expect("db").version;
    for i in 0..3 {
        wait(
            "every replica at the same version",
            Duration::from_secs(10),
            || get(&nodes, i).db().is_ok_and(|d| d.version == version),
        );
    }
    let want = leader.db().expect("db");
    for r in nodes.iter_mut() {
        r.take().expect("running").kill();
    }
    let listeners: Vec<std::net::TcpListener> = replicas
        .iter()
        .map(|a| std::net::TcpListener::bind(a).expect("rebind"))
        .collect();
    let nodes: Vec<Option<Replica>> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| Some(Replica::start(i, l, &replicas, dir.path())))
        .collect();
    wait(
        "a leader after a full restart",
        Duration::from_secs(15),
        || {
            let refs: Vec<Option<&Replica>> = nodes.iter().map(|n| n.as_ref()).collect();
            leader_of(&refs).is_some()
        },
    );
    for i in 0..3 {
        wait("the state back", Duration::from_secs(10), || {
            get(&nodes, i)
                .db()
                .is_ok_and(|d| d.version >= want.version && d.pools == want.pools)
        });
    }
    for r in nodes {
        r.expect("running").kill();
    }
}

/// A pool service: a Raft group of its own among three servers, started from one of them;
/// containers are created at its leader, a follower points at the leader, the leader dies,
/// the other two elect one and every container is still there; a label is unique.
#[test]
fn a_pool_service_replicates_containers_and_survives_its_leader() {
    use daos_mgmt::raft::pool::PoolSvcError;
    use daos_mgmt::state::{Command, ContainerRecord, Reply};
    let dir = tempfile::tempdir().expect("tempdir");
    let (replicas, mut nodes) = three_servers(dir.path());
    let node =
        |nodes: &Vec<Option<Replica>>, i: usize| nodes[i].as_ref().expect("running").node.clone();
    let uuid = "12345678-0000-0000-0000-000000000001";
    start_pool_service(&nodes, &replicas, uuid);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let leader = |nodes: &Vec<Option<Replica>>| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for (i, r) in nodes.iter().enumerate() {
                if let Some(r) = r
                    && rt.block_on(r.node.pool_services().read(uuid)).is_ok()
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no pool service leader");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let create = |nodes: &Vec<Option<Replica>>, i: usize, label: &str, n: u8| {
        let c = ContainerRecord {
            uuid: format!("{n:08x}-0000-0000-0000-000000000000"),
            label: label.into(),
            props: "rd_fac:1".into(),
            ..Default::default()
        };
        rt.block_on(
            node(nodes, i)
                .pool_services()
                .write(uuid, Command::ContCreate(c)),
        )
    };
    let l = leader(&nodes);
    assert!(matches!(
        create(&nodes, l, "a", 1),
        Ok(Reply::Container(c)) if c.label == "a"
    ));
    let e = create(&nodes, l, "a", 2).expect_err("label taken");
    assert!(e.to_string().starts_with("DER_EXIST(-1004)"), "{e}");
    // A follower names the leader.
    let f = (0..3).find(|i| *i != l).expect("a follower");
    match rt.block_on(node(&nodes, f).pool_services().read(uuid)) {
        Err(PoolSvcError::NotLeader { hint, .. }) => assert!(
            hint.is_empty() || hint == replicas[l],
            "hint {hint} (leader {})",
            replicas[l]
        ),
        other => panic!("a follower answered {other:?}"),
    }
    // The leader's server dies: the other two elect a leader; containers survive; a new one
    // can be created.
    nodes[l].take().expect("leader").kill();
    let l2 = leader(&nodes);
    assert_ne!(l2, l);
    let db = rt
        .block_on(node(&nodes, l2).pool_services().read(uuid))
        .expect("read");
    assert_eq!(
        db.container("a").map(|c| c.props.as_str()),
        Some("rd_fac:1")
    );
    assert!(
        create(&nodes, l2, "b", 3).is_ok(),
        "create after the failover"
    );
    // Stopped and removed everywhere (the pool is destroyed).
    for (i, r) in nodes.iter().enumerate() {
        if r.is_some() {
            node(&nodes, i)
                .pool_svc_stop(&replicas[i], true, uuid)
                .expect("stop");
            assert!(!dir.path().join(format!("r{i}/pool_svc/{uuid}")).exists());
        }
    }
}

#[test]
fn a_pool_service_leader_without_a_majority_says_so_at_once() {
    use daos_mgmt::raft::pool::PoolSvcError;
    use daos_mgmt::state::{Command, ContainerRecord};
    let dir = tempfile::tempdir().expect("tempdir");
    let (replicas, mut nodes) = three_servers(dir.path());
    let uuid = "12345678-0000-0000-0000-000000000002";
    start_pool_service(&nodes, &replicas, uuid);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let create = |node: &Arc<daos_mgmt::raft::MsNode>, n: u8| {
        let c = ContainerRecord {
            uuid: format!("{n:08x}-0000-0000-0000-000000000000"),
            label: format!("c{n}"),
            ..Default::default()
        };
        rt.block_on(node.pool_services().write(uuid, Command::ContCreate(c)))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let l = loop {
        if let Some(l) = nodes.iter().position(|r| {
            r.as_ref()
                .is_some_and(|r| rt.block_on(r.node.pool_services().read(uuid)).is_ok())
        }) {
            break l;
        }
        assert!(Instant::now() < deadline, "no pool service leader");
        std::thread::sleep(Duration::from_millis(50));
    };
    let leader = nodes[l].as_ref().expect("leader").node.clone();
    create(&leader, 1).expect("a create with every replica");
    // Both followers' servers die: the leader is alone. Its writes are refused within
    // bounded time (never left waiting), and once it has heard from nobody for a while it
    // says that the service lost its majority, naming the replicas, without writing.
    for i in (0..3).filter(|i| *i != l) {
        nodes[i].take().expect("follower").kill();
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut n = 2;
    let e = loop {
        let asked = Instant::now();
        let r = create(&leader, n);
        n += 1;
        assert!(
            asked.elapsed() < Duration::from_secs(12),
            "a write waited {:?}",
            asked.elapsed()
        );
        match r {
            Err(e @ PoolSvcError::NoMajority { .. }) => break e,
            Err(PoolSvcError::NotCommitted { .. }) => {}
            other => panic!("a write without a majority answered {other:?}"),
        }
        assert!(Instant::now() < deadline, "never told the majority is lost");
    };
    let text = e.to_string();
    assert!(text.contains("has lost its majority"), "{text}");
    for r in &replicas {
        assert!(text.contains(r.as_str()), "{text} names {r}");
    }
    // Refused at once now, with nothing written.
    let asked = Instant::now();
    assert!(matches!(
        create(&leader, 99),
        Err(PoolSvcError::NoMajority { .. })
    ));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let db = leader
        .pool_services()
        .read_any(uuid)
        .expect("read its own state");
    assert!(db.container("c99").is_none(), "nothing written");
    drop(nodes);
}

#[test]
fn a_management_service_leader_cut_off_from_the_others_stops_leading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (replicas, mut nodes) = three_servers(dir.path());
    let get =
        |nodes: &Vec<Option<Replica>>, i: usize| nodes[i].as_ref().expect("running").node.clone();
    wait("replica 0 to lead", Duration::from_secs(10), || {
        get(&nodes, 0).is_leader()
    });
    let n0 = get(&nodes, 0);
    for (i, r) in replicas.iter().enumerate() {
        n0.join_local(&join(r, i as u32)).expect("join");
    }
    wait("three voters", Duration::from_secs(15), || {
        n0.status().is_some_and(|(_, _, v)| v.len() == 3)
    });
    n0.check_leader().expect("the leader with its majority");
    // The other two go away (as seen from replica 0: a partition): within an election
    // timeout it no longer takes itself for the leader (no leader-only work, no answers
    // from its state), and says why.
    for n in nodes.iter_mut().skip(1) {
        n.take().expect("follower").kill();
    }
    wait("the lease to lapse", Duration::from_secs(5), || {
        !n0.is_leader()
    });
    let asked = Instant::now();
    let e = n0.check_leader().expect_err("cut off").to_string();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert!(e.contains("may be cut off from them"), "{e}");
    assert!(e.contains(&replicas[1]), "{e}");
    let asked = Instant::now();
    let e = n0
        .pool_add(pool(7))
        .expect_err("no write without a majority");
    assert!(e.to_string().contains("may be cut off"), "{e}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
}
