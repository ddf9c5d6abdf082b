//! Crash consistency through the real binaries: writers keep updating objects while the test
//! SIGKILLs the engine 30+ times at random moments; daos_server restarts it each time. Then
//! every acknowledged update must read back intact, and no value may be torn: an update that
//! was not acknowledged reads back whole or not at all. A second test kills the engine while
//! writers overwrite and race on a few named multi-MB values (`kv::put`, what `daos object
//! put` does): each key must end holding one whole value, none older than its last
//! acknowledged put.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daos_client::{Session, SessionOpts};
use daos_tests::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Number of SIGKILLs.
const KILLS: usize = 32;
const WRITERS: u64 = 2;

fn value(oid: u128) -> Vec<u8> {
    // Small (SCM log) and large (bdev) values, each byte tied to the object.
    let len = if oid.is_multiple_of(3) {
        20_000 + (oid as usize % 5000)
    } else {
        1 + (oid as usize * 131) % 4000
    };
    (0..len)
        .map(|i| (i as u128 ^ oid ^ (oid >> 8)) as u8)
        .collect()
}

/// The kill timing seed: `CRASH_SEED` to replay a run, else the clock.
fn seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1
}

/// SIGKILLs the engine `kills` times, each once the writers have `progress` more
/// acknowledged operations (so the restarted engine serves again) and then at a random moment
/// up to `spread_ms` later; then waits for one more stretch of progress.
fn kill_engine_under_load(
    sys: &System,
    server: &Proc,
    acked: &AtomicUsize,
    kills: usize,
    progress: usize,
    spread_ms: u64,
    what: &str,
) {
    let seed = seed();
    eprintln!("{what} seed {seed} (replay: CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let server_pid = server.pid() as u32;
    let wait_progress = |k: usize, must: bool| {
        let before = acked.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::Relaxed) < before + progress {
            if Instant::now() >= deadline {
                assert!(
                    !must,
                    "kill {k}: nothing acknowledged for 60s after the restart; log:\n{}",
                    sys.log()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for k in 0..kills {
        wait_progress(k, true);
        std::thread::sleep(Duration::from_millis(rng.next() % spread_ms));
        let engines = children(server_pid, "daos_engine");
        assert_eq!(engines.len(), 1, "kill {k}: one engine running");
        kill(Pid::from_raw(engines[0] as i32), Signal::SIGKILL).expect("kill");
    }
    wait_progress(kills, false);
}

/// `n` writer threads until `stop`, each with its own session (reopened, once the engine is
/// back, after an operation fails), each calling `op(writer, seq, session)`; an operation that
/// returns true was acknowledged and counts in `acked`.
fn spawn_writers<F>(
    n: u64,
    map: &Arc<daos_client::PoolMap>,
    opts: SessionOpts,
    stop: &Arc<AtomicBool>,
    acked: &Arc<AtomicUsize>,
    op: F,
) -> Vec<std::thread::JoinHandle<()>>
where
    F: Fn(u64, u64, &mut Session) -> bool + Send + Sync + 'static,
{
    let op = Arc::new(op);
    (0..n)
        .map(|w| {
            let (map, stop, acked, op) = (map.clone(), stop.clone(), acked.clone(), op.clone());
            std::thread::spawn(move || {
                let mut session = Session::open(map.clone(), opts).ok();
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Some(s) = session.as_mut() else {
                        std::thread::sleep(Duration::from_millis(50));
                        session = Session::open(map.clone(), opts).ok();
                        continue;
                    };
                    let ok = op(w, seq, s);
                    seq += 1;
                    if ok {
                        acked.fetch_add(1, Ordering::Relaxed);
                    } else {
                        // The engine is down: start afresh once it is back.
                        session = None;
                    }
                }
            })
        })
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkilled_engine_loses_no_acknowledged_update_and_tears_nothing() {
    let sys = System::with_targets(1, 2);
    let mut server = sys.start_joined();
    sys.create_pool("tank", "512M", Some("900M"));
    let map = Arc::new(sys.pool_map("tank"));
    let opts = SessionOpts {
        timeout: Duration::from_millis(1500),
        ..SessionOpts::default()
    };
    let cont = {
        let mut s = Session::open(map.clone(), opts).expect("session");
        s.cont_create("crash", [0xc5; 16]).expect("container")
    };

    // Writers: each its own session and objects; an update counts once it is acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<BTreeMap<u128, bool>>> = Arc::default();
    let writers = {
        let results = results.clone();
        spawn_writers(WRITERS, &map, opts, &stop, &acked, move |w, i, s| {
            let oid = (u128::from(w) << 64) | u128::from(i);
            let ok = s.update(cont, oid, b"d", b"a", &value(oid)).is_ok();
            results.lock().expect("results").insert(oid, ok);
            ok
        })
    };

    kill_engine_under_load(&sys, &server, &acked, KILLS, 5, 150, "crash test");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }

    let results = results.lock().expect("results").clone();
    let total_acked = results.values().filter(|ok| **ok).count();
    let unacked = results.len() - total_acked;
    eprintln!(
        "{KILLS} kills; {total_acked} acknowledged updates, {unacked} unacknowledged; verifying"
    );
    assert!(total_acked >= KILLS * 5);
    let mut s = Session::open(
        map.clone(),
        SessionOpts {
            timeout: Duration::from_secs(10),
            ..SessionOpts::default()
        },
    )
    .expect("session");
    let (mut intact_unacked, mut absent_unacked) = (0, 0);
    for (oid, was_acked) in &results {
        let got = s
            .fetch(cont, *oid, b"d", b"a")
            .unwrap_or_else(|e| panic!("object {oid:#x}: {e} (a torn or corrupt value)"));
        match got {
            Some(v) => {
                assert!(v == value(*oid), "object {oid:#x} is torn or wrong");
                if !was_acked {
                    intact_unacked += 1;
                }
            }
            None => {
                assert!(!was_acked, "acknowledged object {oid:#x} is lost");
                absent_unacked += 1;
            }
        }
    }
    eprintln!(
        "every acknowledged update intact; unacknowledged: {intact_unacked} whole, {absent_unacked} absent"
    );
    drop(s);
    sys.stop(&mut server);
}

/// A named value whose bytes all follow from its id (kept in its first 8 bytes), 1-3 MB.
fn named_value(id: u64) -> Vec<u8> {
    let len = (1 << 20) + (id.wrapping_mul(2_654_435_761) % (2 << 20)) as usize;
    let mut v: Vec<u8> = (0..len)
        .map(|i| ((i as u64).wrapping_mul(31) ^ id.rotate_left((i % 64) as u32)) as u8)
        .collect();
    v[..8].copy_from_slice(&id.to_le_bytes());
    v
}

/// One put of a key: its value id, when it started and ended, and whether it was acknowledged.
#[derive(Clone, Copy, Debug)]
struct Put {
    id: u64,
    start: Instant,
    end: Instant,
    acked: bool,
}

const KEYS: u64 = 6;
const PUT_WRITERS: u64 = 3;
const PUT_KILLS: usize = 8;

#[test]
fn sigkilled_engine_during_overwrites_and_racing_puts_leaves_each_key_one_whole_value() {
    use daos_client::kv;
    let sys = System::with_targets(1, 2);
    let mut server = sys.start_joined();
    sys.create_pool("tank", "512M", Some("900M"));
    let map = Arc::new(sys.pool_map("tank"));
    let opts = SessionOpts {
        timeout: Duration::from_secs(5),
        ..SessionOpts::default()
    };
    let (cont, initial) = {
        let mut s = Session::open(map.clone(), opts).expect("session");
        let cont = s.cont_create("puts", [0xd7; 16]).expect("container");
        let mut initial = BTreeMap::new();
        for k in 0..KEYS {
            let id = k;
            kv::put(
                &mut s,
                cont,
                &format!("key{k}"),
                &named_value(id),
                id_bytes(id),
            )
            .expect("initial put");
            initial.insert(k, id);
        }
        (cont, initial)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let puts: Arc<Mutex<BTreeMap<u64, Vec<Put>>>> = Arc::default();
    let writers = {
        let puts = puts.clone();
        spawn_writers(PUT_WRITERS, &map, opts, &stop, &acked, move |w, seq, s| {
            // Writers share keys: puts of one key race.
            let key = (seq + w) % KEYS;
            let id = (w + 1) << 48 | seq << 8 | key;
            let start = Instant::now();
            let ok = kv::put(
                s,
                cont,
                &format!("key{key}"),
                &named_value(id),
                id_bytes(id),
            )
            .is_ok();
            let end = Instant::now();
            puts.lock()
                .expect("puts")
                .entry(key)
                .or_default()
                .push(Put {
                    id,
                    start,
                    end,
                    acked: ok,
                });
            ok
        })
    };
    kill_engine_under_load(&sys, &server, &acked, PUT_KILLS, 3, 60, "put crash test");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }

    let puts = puts.lock().expect("puts").clone();
    let mut s = Session::open(
        map.clone(),
        SessionOpts {
            timeout: Duration::from_secs(10),
            ..SessionOpts::default()
        },
    )
    .expect("session");
    let (mut total, mut failed) = (0, 0);
    for k in 0..KEYS {
        let got = kv::get(&mut s, cont, &format!("key{k}"))
            .unwrap_or_else(|e| panic!("key{k}: {e}"))
            .unwrap_or_else(|| panic!("key{k} vanished"));
        let id = u64::from_le_bytes(got[..8].try_into().expect("8 bytes"));
        assert!(got == named_value(id), "key{k} holds a torn or mixed value");
        let history = puts.get(&k).cloned().unwrap_or_default();
        total += history.len();
        failed += history.iter().filter(|p| !p.acked).count();
        // The latest acknowledged put (by start), and every put that overlapped or followed
        // it, are what the key may hold; anything older was replaced by an acknowledged put.
        let allowed: Vec<u64> = match history.iter().filter(|p| p.acked).max_by_key(|p| p.start) {
            Some(last) => history
                .iter()
                .filter(|p| p.id == last.id || p.end >= last.start)
                .map(|p| p.id)
                .collect(),
            None => history.iter().map(|p| p.id).chain([initial[&k]]).collect(),
        };
        assert!(
            allowed.contains(&id),
            "key{k} holds value {id:#x}, older than its last acknowledged put (allowed {allowed:x?})"
        );
    }
    eprintln!(
        "{PUT_KILLS} kills; {total} puts ({failed} failed); every key holds one whole value, none older than its last acknowledged put"
    );
    drop(s);
    sys.stop(&mut server);
}

fn id_bytes(id: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b[8..].copy_from_slice(b"put-test");
    b
}
