//! A target shard (real io_uring reactor, libfabric tcp;ofi_rxm endpoint on loopback, pool
//! store on files) in this process, for the client tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use daos_client::{PoolMap, RankUri, Session, SessionOpts};
use daos_engine::coremap::{Placement, Role};
use daos_engine::pool::PoolStore;
use daos_engine::shard::{self, Shard, TargetRole};
use daos_engine::target::{Endpoint, target_port};

pub const POOL: &str = "11111111-2222-4333-8444-555555555555";

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub shards: Vec<Shard>,
    pub map: Arc<PoolMap>,
    /// The engine's pools (what daos_server's dRPC calls act on).
    pub pools: Arc<PoolStore>,
}

/// A base port `p` such that `p..p+n` were free a moment ago, below the kernel's ephemeral
/// range (32768 and up: an outgoing connection can take an ephemeral port before a target
/// binds it), distinct for each call in this process.
pub fn free_base(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    assert!(n <= 16, "ranges are 16 ports apart");
    let pid = std::process::id();
    for _ in 0..1000 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = (10000 + (pid.wrapping_mul(7919) / 16 + k) % 600 * 16) as u16;
        if (p..p + n).all(|q| TcpListener::bind(("127.0.0.1", q)).is_ok()) {
            return p;
        }
    }
    panic!("no free ports between 10000 and 19600");
}

pub fn fixture(targets: u32) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let bdev = dir.path().join("bdev0");
    std::fs::File::create(&bdev)
        .and_then(|f| f.set_len(256 << 20))
        .expect("bdev");
    let conf = dir.path().join("daos_nvme.conf");
    std::fs::write(&conf, format!(r#"{{"subsystems":[{{"subsystem":"bdev","config":[{{"method":"bdev_aio_create","params":{{"name":"AIO_0","filename":"{}","block_size":4096}}}}]}}]}}"#, bdev.display())).expect("conf");
    let scm = dir.path().join("scm");
    std::fs::create_dir_all(&scm).expect("scm");
    let pools = Arc::new(PoolStore::open(&scm, targets, Some(&conf)).expect("pools"));
    pools
        .create(POOL, (16 << 20) * u64::from(targets), 64 << 20)
        .expect("create");
    let base = free_base(2 + targets as u16);
    let core = *shard::allowed_cpus().last().expect("cpu");
    let shards = (0..targets)
        .map(|t| {
            shard::spawn_target(
                t as usize,
                Placement {
                    role: Role::Target(t),
                    core,
                },
                TargetRole {
                    index: t,
                    pools: pools.clone(),
                    endpoint: Endpoint {
                        provider: "tcp;ofi_rxm".into(),
                        node: "127.0.0.1".into(),
                        port: target_port(base, t),
                    },
                },
            )
            .expect("target")
        })
        .collect();
    let map = PoolMap::new(
        daos_client::parse_uuid(POOL).expect("uuid"),
        &[0],
        &[RankUri {
            rank: 0,
            uri: format!("ofi+tcp;ofi_rxm://127.0.0.1:{base}"),
            num_ctxs: 1 + targets,
        }],
    )
    .expect("map");
    Fixture {
        _dir: dir,
        shards,
        map: Arc::new(map),
        pools,
    }
}

pub fn session(f: &Fixture) -> Session {
    session_on(&f.map)
}

/// A session on `map` with a 5 s timeout.
pub fn session_on(map: &Arc<PoolMap>) -> Session {
    Session::open(
        map.clone(),
        SessionOpts {
            timeout: Duration::from_secs(5),
            ..SessionOpts::default()
        },
    )
    .expect("session")
}

/// `ranks` one-target engines as ranks 0.. of one pool (objects of classes with replicas on
/// distinct ranks get a shard on several of them).
pub fn ranks_fixture(ranks: u32) -> (Vec<Fixture>, Arc<PoolMap>) {
    let fixtures: Vec<Fixture> = (0..ranks).map(|_| fixture(1)).collect();
    let engines: Vec<RankUri> = fixtures
        .iter()
        .enumerate()
        .map(|(r, f)| RankUri {
            rank: r as u32,
            // The engine's base port (context 0): its target 0's port less two.
            uri: format!(
                "ofi+tcp;ofi_rxm://127.0.0.1:{}",
                f.map.targets[0].port.saturating_sub(2)
            ),
            num_ctxs: 2,
        })
        .collect();
    let all: Vec<u32> = (0..ranks).collect();
    let uuid = daos_client::parse_uuid(POOL).expect("uuid");
    let map = PoolMap::new(uuid, &all, &engines).expect("map");
    (fixtures, Arc::new(map))
}
