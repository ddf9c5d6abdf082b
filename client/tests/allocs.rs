//! The I/O hot path does not allocate: once warm, a client session and a target (both in this
//! process) serve updates and fetches without a single heap allocation on either side.
//! Counted by a global allocator; this file holds one test so nothing else runs meanwhile.

mod common;

use std::time::Duration;

use common::*;
use daos_bench::alloc_count::{CountingAlloc, allocations};
use daos_client::{Session, SessionOpts};
use daos_engine::wire::Request;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// `rounds` passes over `objects` objects, each an update then a fetch, `qd` in flight.
fn run(s: &mut Session, cont: [u8; 16], objects: u128, rounds: usize, value: &[u8]) -> u64 {
    let mut ops = 0u64;
    for _ in 0..rounds {
        for fetch in [false, true] {
            let mut next = 0u128;
            let mut outstanding = 0usize;
            while next < objects || outstanding > 0 {
                while next < objects && outstanding < 8 {
                    let (oid, t) = (next, s.map().place(next));
                    let req = if fetch {
                        Request::Fetch {
                            oid,
                            dkey: b"d",
                            akey: b"a",
                        }
                    } else {
                        Request::Update {
                            oid,
                            dkey: b"d",
                            akey: b"a",
                            value,
                        }
                    };
                    s.submit(t, cont, &req).expect("submit");
                    next += 1;
                    outstanding += 1;
                }
                let mut failed = false;
                s.poll(|_, r| {
                    outstanding -= 1;
                    ops += 1;
                    match r {
                        Ok(reply) if fetch => {
                            failed |=
                                reply.fetched().flatten().map(<[u8]>::len) != Some(value.len())
                        }
                        Ok(_) => {}
                        Err(_) => failed = true,
                    }
                })
                .expect("poll");
                assert!(!failed, "an operation failed");
            }
        }
    }
    ops
}

#[test]
fn warm_updates_and_fetches_allocate_nothing() {
    let f = fixture(1);
    let mut s = Session::open(
        f.map.clone(),
        SessionOpts {
            queue_depth: 8,
            max_value: 4096,
            timeout: Duration::from_secs(10),
        },
    )
    .expect("session");
    CountingAlloc::mark_installed();
    let cont = s.cont_create("allocs", [4; 16]).expect("container");
    // Targets check the session's handles on every request (as after a pool connect and a
    // container open).
    use daos_engine::handles::{READ, WRITE};
    let t = f.pools.handles(POOL).expect("held pool");
    t.insert(0x5eed, READ | WRITE, 0, None).expect("room");
    t.insert(0xc0de, READ | WRITE, 0x5eed, Some(&cont))
        .expect("room");
    t.arm();
    s.set_handle(0x5eed);
    s.set_cont_handle(cont, 0xc0de);
    let value = vec![0x5au8; 4096];
    // Warm up: every object's index entry exists and has its full version history, every
    // buffer has grown to its working size.
    run(&mut s, cont, 64, 12, &value);
    let before = allocations().expect("counting");
    let ops = run(&mut s, cont, 64, 10, &value);
    let allocs = allocations().expect("counting") - before;
    eprintln!("{ops} operations, {allocs} allocations");
    assert_eq!(ops, 64 * 2 * 10);
    assert_eq!(
        allocs, 0,
        "{allocs} heap allocations in {ops} warm updates and fetches (client and target)"
    );
    drop(f.shards);
}
