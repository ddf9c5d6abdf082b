//! Acknowledged changes of a key are ordered by when they were acknowledged, whatever the
//! clients' clocks (issue #23 items 1 and 2): real targets (io_uring reactor, libfabric
//! tcp;ofi_rxm on loopback) and client sessions in one process; a client "ahead" by some
//! skew is a session whose clock took in an epoch that far ahead (what a reply from a host
//! with that clock does). Racing writers print their seed (`ORDER_SEED` replays a run).

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use daos_client::kv;
use daos_client::{PoolMap, Session};
use daos_engine::wire::Request;
use daos_placement::{ObjectClass, RdLvl};

/// A session whose clock runs `ahead_ms` ahead of this host's.
fn skewed(map: &Arc<PoolMap>, ahead_ms: u64) -> Session {
    let mut s = session_on(map);
    if ahead_ms > 0 {
        s.witness(daos_wire::clock_ns() + ahead_ms * 1_000_000);
    }
    s
}

fn value(writer: u8, round: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ writer ^ (round as u8).rotate_left(3) | 1)
        .collect()
}

fn id(writer: u8, round: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0] = writer;
    id[1..9].copy_from_slice(&(round as u64).to_le_bytes());
    id[15] = 0x5a;
    id
}

#[test]
fn a_later_put_wins_over_an_earlier_one_from_a_client_whose_clock_is_ahead() {
    let f = fixture(1);
    let mut setup = session(&f);
    let cont = setup.cont_create("c", [4; 16]).expect("container");
    for (round, ahead_ms) in [800u64, 500, 400, 100, 20].into_iter().enumerate() {
        let key = format!("skewed-{ahead_ms}");
        // A runs ahead, puts first; B (no skew) puts after A was acknowledged.
        let mut a = skewed(&f.map, ahead_ms);
        let mut b = skewed(&f.map, 0);
        let v1 = value(1, round, 3000);
        let v2 = value(2, round, 3000);
        kv::put(&mut a, cont, &key, &v1, id(1, round)).expect("put v1");
        kv::put(&mut b, cont, &key, &v2, id(2, round)).expect("put v2");
        // Every reader sees v2, whole, from either session and a fresh one.
        for s in [&mut a, &mut b, &mut session(&f)] {
            let got = kv::get(s, cont, &key)
                .expect("get")
                .expect("the key exists");
            assert!(
                got == v2,
                "{ahead_ms} ms skew: read {} bytes, {} of them zero; the later put's value expected",
                got.len(),
                got.iter().filter(|b| **b == 0).count()
            );
        }
        // And again the other way round: B puts, A (ahead) puts after it.
        let v3 = value(3, round, 20_000);
        kv::put(&mut a, cont, &key, &v3, id(3, round)).expect("put v3");
        assert!(kv::get(&mut b, cont, &key).expect("get") == Some(v3));
    }
    drop(f.shards);
}

#[test]
fn concurrent_puts_of_one_replicated_key_leave_one_writers_value_on_every_replica() {
    let seed: u64 = std::env::var("ORDER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| daos_wire::clock_ns() % 1_000_000);
    println!("ORDER_SEED={seed}");
    // Two one-target engines as ranks 0 and 1: an RP_2G1 object has a shard on each.
    let (fixtures, map) = ranks_fixture(2);
    let mut setup = skewed(&map, 0);
    let cont = setup.cont_create("c", [5; 16]).expect("container");
    let class = Some(ObjectClass::rp(2, 1));
    let key = "raced";
    let oid = kv::key_oid_at(key, class, RdLvl::Rank);
    let shards = map.shards(oid).expect("layout");
    assert_eq!(shards.len(), 2, "one shard per rank");
    let rounds = 300;
    // Writers and the checker: start, puts done, checked.
    let barrier = Arc::new(Barrier::new(3));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (1u8..=2)
        .map(|w| {
            let map = map.clone();
            let barrier = barrier.clone();
            let errors = errors.clone();
            std::thread::spawn(move || {
                // Writer 2 runs a little ahead (20 ms, or what the seed says).
                let ahead = if w == 2 { 1 + seed % 40 } else { 0 };
                let mut s = skewed(&map, ahead);
                let mut rng = (seed ^ u64::from(w).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
                for round in 0..rounds {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    // Sizes inline and by RMA, so replicas see the swaps in either order.
                    let len = if rng.is_multiple_of(3) {
                        40_000
                    } else {
                        3000 + (rng % 500) as usize
                    };
                    barrier.wait();
                    // A failure is reported by the checker (a panic here would leave the
                    // others waiting).
                    let put = kv::put_at(
                        &mut s,
                        cont,
                        key,
                        class,
                        RdLvl::Rank,
                        &value(w, round, len),
                        id(w, round),
                    );
                    if let Err(e) = put {
                        errors
                            .lock()
                            .expect("errors")
                            .push(format!("writer {w} round {round}: {e}"));
                    }
                    barrier.wait();
                    barrier.wait();
                }
                rng
            })
        })
        .collect();
    let mut check = skewed(&map, 0);
    for round in 0..rounds {
        barrier.wait();
        // Both puts of the round are acknowledged.
        barrier.wait();
        let failed = std::mem::take(&mut *errors.lock().expect("errors"));
        if !failed.is_empty() {
            // Let the writers finish before failing.
            barrier.wait();
            for _ in round + 1..rounds {
                for _ in 0..3 {
                    barrier.wait();
                }
            }
            panic!("seed {seed}: puts failed: {failed:?}");
        }
        let got = kv::get_at(&mut check, cont, key, class, RdLvl::Rank)
            .expect("get")
            .expect("the key exists");
        let from = (1u8..=2).find(|w| {
            let v = value(*w, round, got.len());
            got == v
        });
        assert!(
            from.is_some(),
            "seed {seed} round {round}: the value read ({} bytes, {} zero) is neither writer's",
            got.len(),
            got.iter().filter(|b| **b == 0).count()
        );
        // Every replica names the same version, and holds its bytes.
        let mut current = Vec::new();
        for &t in &shards {
            let body = check
                .call_with(
                    t,
                    cont,
                    &Request::Fetch {
                        oid,
                        dkey: b"meta",
                        akey: b"current",
                    },
                    |r| r.fetched().map(|v| v.map(<[u8]>::to_vec)),
                )
                .expect("fetch current")
                .expect("reply")
                .expect("a current version");
            current.push(body);
        }
        assert_eq!(
            current[0], current[1],
            "seed {seed} round {round}: replicas name different versions"
        );
        barrier.wait();
    }
    for w in writers {
        w.join().expect("writer");
    }
    drop(fixtures);
}
