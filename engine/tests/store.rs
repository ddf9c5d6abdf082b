//! The target store: its data model, checksums, real media, and crash consistency under
//! simulated power loss with torn writes.

use std::collections::BTreeMap;

use daos_engine::store::{AkeyRef, INLINE_MAX, SimMedia, Store, StoreError};

const ARR: AkeyRef<'static> = AkeyRef {
    cont: C,
    oid: 1,
    dkey: b"d",
    akey: b"arr",
};
use proptest::prelude::*;

type Sim = Store<SimMedia, SimMedia>;

fn sim() -> Sim {
    Store::open(SimMedia::new(1 << 20), SimMedia::new(4 << 20)).expect("open")
}

const C: u128 = 7;

#[test]
fn latest_value_wins_and_older_epochs_are_readable() {
    let mut s = sim();
    let e1 = s.update(C, 1, b"d", b"a", b"one").unwrap();
    let e2 = s.update(C, 1, b"d", b"a", b"two").unwrap();
    assert!(e2 > e1);
    assert_eq!(
        s.fetch(C, 1, b"d", b"a", u64::MAX).unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(
        s.fetch(C, 1, b"d", b"a", e1).unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(s.fetch(C, 1, b"d", b"a", 0).unwrap(), None);
    assert_eq!(
        s.fetch(C, 2, b"d", b"a", u64::MAX).unwrap(),
        None,
        "other object"
    );
    assert_eq!(
        s.fetch(8, 1, b"d", b"a", u64::MAX).unwrap(),
        None,
        "other container"
    );
}

#[test]
fn punches_hide_what_came_before_at_each_level() {
    let mut s = sim();
    for d in [&b"d1"[..], b"d2"] {
        for a in [&b"a1"[..], b"a2"] {
            s.update(C, 1, d, a, b"v").unwrap();
        }
    }
    assert_eq!(s.list_dkeys(C, 1), vec![b"d1".to_vec(), b"d2".to_vec()]);
    s.punch(C, 1, Some(b"d1"), Some(b"a1")).unwrap();
    assert_eq!(s.list_akeys(C, 1, b"d1"), vec![b"a2".to_vec()]);
    assert_eq!(s.fetch(C, 1, b"d1", b"a1", u64::MAX).unwrap(), None);
    s.punch(C, 1, Some(b"d2"), None).unwrap();
    assert_eq!(s.list_dkeys(C, 1), vec![b"d1".to_vec()]);
    let before = s.epoch();
    s.punch(C, 1, None, None).unwrap();
    assert!(s.list_dkeys(C, 1).is_empty());
    assert_eq!(
        s.fetch(C, 1, b"d1", b"a2", before).unwrap().as_deref(),
        Some(&b"v"[..]),
        "history before the punch"
    );
    s.update(C, 1, b"d1", b"a2", b"back").unwrap();
    assert_eq!(
        s.fetch(C, 1, b"d1", b"a2", u64::MAX).unwrap().as_deref(),
        Some(&b"back"[..]),
        "a write after a punch is visible"
    );
}

#[test]
fn a_punched_range_reads_as_zeros_is_no_data_and_survives_compaction_and_reopen() {
    let mut s = sim();
    s.write_extent(C, 1, b"d", b"arr", 0, &[1u8; 10]).unwrap();
    s.punch_extent_at(ARR, 3, 3, 0).unwrap();
    let visible = |s: &Sim| {
        let mut v = Vec::new();
        s.visible_extents(ARR, 0, 100, u64::MAX, &mut v);
        v
    };
    assert_eq!(visible(&s), [(0, 3), (6, 10)]);
    assert_eq!(
        s.read_extent(ARR, 0, 10, u64::MAX).unwrap(),
        [1, 1, 1, 0, 0, 0, 1, 1, 1, 1]
    );
    // Written again inside the hole: data there once more.
    s.write_extent(C, 1, b"d", b"arr", 4, &[2u8; 1]).unwrap();
    assert_eq!(visible(&s), [(0, 3), (4, 5), (6, 10)]);
    // A truncate: everything from 2 on punched; the array now ends at 2.
    s.punch_extent_at(ARR, 2, 1 << 20, 0).unwrap();
    assert_eq!(visible(&s), [(0, 2)]);
    assert_eq!(
        s.akey_size(ARR, u64::MAX),
        daos_wire::reply::AkeyShape::Array(2)
    );
    s.compact().unwrap();
    assert_eq!(visible(&s), [(0, 2)]);
    let (scm, bdev) = s.into_media();
    let s = Store::open(scm, bdev).unwrap();
    assert_eq!(visible(&s), [(0, 2)]);
    assert_eq!(s.read_extent(ARR, 0, 4, u64::MAX).unwrap(), [1, 1, 0, 0]);
}

#[test]
fn an_array_keeps_its_record_size_across_compaction_and_reopen() {
    let mut s = sim();
    assert_eq!(s.array_rsize(ARR, u64::MAX), None);
    // Bytes written by daos-rs's own protocol: records of one byte.
    s.write_extent(C, 1, b"d", b"arr", 0, &[1u8; 8]).unwrap();
    assert_eq!(s.array_rsize(ARR, u64::MAX), Some(1));
    // Records of 8 bytes (DAOS's arrays), inline and on the bdev part.
    s.write_records_at(ARR, 8, &[2u8; 16], 8, 0).unwrap();
    assert_eq!(s.array_rsize(ARR, u64::MAX), Some(8));
    let big = vec![3u8; 2 * INLINE_MAX];
    s.write_records_at(ARR, 64, &big, 8, 0).unwrap();
    assert_eq!(s.read_extent(ARR, 8, 16, u64::MAX).unwrap(), [2u8; 16]);
    s.compact().unwrap();
    let (scm, bdev) = s.into_media();
    let s = Store::open(scm, bdev).unwrap();
    assert_eq!(s.array_rsize(ARR, u64::MAX), Some(8));
    assert_eq!(
        s.read_extent(ARR, 0, 24, u64::MAX).unwrap()[..9],
        [1, 1, 1, 1, 1, 1, 1, 1, 2]
    );
    assert_eq!(s.read_extent(ARR, 64, big.len(), u64::MAX).unwrap(), big);
    // A key of 1 MiB is kept (DAOS's clients write them).
    let mut s = Store::open(SimMedia::new(8 << 20), SimMedia::new(4 << 20)).unwrap();
    let long = vec![b'k'; 1 << 20];
    s.update(C, 1, &long, b"a", b"v").unwrap();
    assert_eq!(
        s.fetch(C, 1, &long, b"a", u64::MAX).unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let (scm, bdev) = s.into_media();
    let s = Store::open(scm, bdev).unwrap();
    assert_eq!(s.list_dkeys(C, 1), [long]);
}

#[test]
fn array_extents_overlay_newest_on_top() {
    let mut s = sim();
    s.write_extent(C, 1, b"d", b"arr", 0, &[1u8; 8]).unwrap();
    s.write_extent(C, 1, b"d", b"arr", 4, &[2u8; 8]).unwrap();
    assert_eq!(
        s.read_extent(ARR, 0, 16, u64::MAX).unwrap(),
        [1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0]
    );
    assert_eq!(s.read_extent(ARR, 6, 4, u64::MAX).unwrap(), [2, 2, 2, 2]);
    let big: Vec<u8> = (0..3 * INLINE_MAX).map(|i| i as u8).collect();
    s.write_extent(C, 1, b"d", b"arr", 100, &big).unwrap();
    assert_eq!(
        s.read_extent(ARR, 100, big.len(), u64::MAX).unwrap(),
        big,
        "large extent on the bdev part"
    );
}

#[test]
fn a_read_costs_the_extents_it_covers_not_all_the_akey_holds() {
    // 64 extents of 16 KiB (on the bdev): reading one reads about one, not all 64.
    let mut s = Store::open(SimMedia::new(1 << 20), SimMedia::new(2 << 20)).unwrap();
    let ext = 16 << 10;
    for i in 0..64u64 {
        s.write_extent(1, 1, b"d", b"a", i * ext as u64, &vec![i as u8; ext])
            .unwrap();
    }
    let key = AkeyRef {
        cont: 1,
        oid: 1,
        dkey: b"d",
        akey: b"a",
    };
    let before = s.bdev().read_bytes();
    let got = s.read_extent(key, 10 * ext as u64, ext, u64::MAX).unwrap();
    assert_eq!(got, vec![10u8; ext]);
    let cost = s.bdev().read_bytes() - before;
    assert!(
        cost <= 2 * ext as u64,
        "one extent's read read {cost} bytes of the bdev"
    );
    // Past the last extent: nothing to read.
    let before = s.bdev().read_bytes();
    let got = s.read_extent(key, 64 * ext as u64, ext, u64::MAX).unwrap();
    assert_eq!(got, vec![0u8; ext]);
    assert_eq!(s.bdev().read_bytes(), before);
}

#[test]
fn large_values_live_on_the_bdev_and_corruption_is_reported() {
    let mut s = sim();
    let big = vec![0x5au8; INLINE_MAX * 2];
    s.update(C, 1, b"d", b"big", &big).unwrap();
    assert_eq!(
        s.fetch(C, 1, b"d", b"big", u64::MAX).unwrap(),
        Some(big.clone())
    );
    let log = s.log_used();
    assert!(
        log < 512,
        "the log holds a reference, not the value ({log} bytes)"
    );
    let (scm, mut bdev) = s.into_media();
    bdev.corrupt(100);
    let s = Store::open(scm, bdev).unwrap();
    match s.fetch(C, 1, b"d", b"big", u64::MAX) {
        Err(StoreError::Checksum { .. }) => {}
        other => panic!("corruption must be reported, got {other:?}"),
    }
}

#[test]
fn a_corrupted_log_record_ends_the_log_there() {
    let mut s = sim();
    s.update(C, 1, b"d", b"a", b"first").unwrap();
    let cut = s.log_tail();
    s.update(C, 1, b"d", b"b", b"second").unwrap();
    let (mut scm, bdev) = s.into_media();
    scm.corrupt(cut as usize + 20);
    let s = Store::open(scm, bdev).unwrap();
    assert_eq!(
        s.fetch(C, 1, b"d", b"a", u64::MAX).unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        s.fetch(C, 1, b"d", b"b", u64::MAX).unwrap(),
        None,
        "the bad record is not trusted"
    );
}

#[test]
fn a_damaged_record_in_the_middle_loses_only_itself() {
    let mut s = sim();
    s.update(C, 1, b"d", b"a", b"first").unwrap();
    let cut = s.log_tail();
    s.update(C, 1, b"d", b"b", b"second").unwrap();
    s.update(C, 1, b"d", b"c", b"third").unwrap();
    let (mut scm, bdev) = s.into_media();
    scm.corrupt(cut as usize + 20);
    let s = Store::open(scm, bdev).unwrap();
    assert_eq!(s.damaged_records(), 1);
    assert_eq!(
        s.fetch(C, 1, b"d", b"b", u64::MAX).unwrap(),
        None,
        "the bad record"
    );
    assert_eq!(
        s.fetch(C, 1, b"d", b"c", u64::MAX).unwrap().as_deref(),
        Some(&b"third"[..]),
        "records after it are kept"
    );
}

#[test]
fn full_log_and_full_bdev_are_errors_not_losses() {
    let mut s = Store::open(SimMedia::new(16384), SimMedia::new(8192)).unwrap();
    let mut n = 0;
    while s
        .update(C, 1, b"d", format!("k{n}").as_bytes(), b"value")
        .is_ok()
    {
        n += 1;
    }
    assert!(matches!(
        s.update(C, 1, b"d", b"x", b"v"),
        Err(StoreError::LogFull)
    ));
    assert_eq!(
        s.fetch(C, 1, b"d", b"k0", u64::MAX).unwrap().as_deref(),
        Some(&b"value"[..])
    );
    // A full log still takes the punches that free it (updates leave a reserve for them),
    // and updates fit again once compaction drops what was punched.
    let generation = s.generation();
    for k in 0..n / 2 {
        s.punch(C, 1, Some(b"d"), Some(format!("k{k}").as_bytes()))
            .unwrap_or_else(|e| panic!("punch k{k} of a full log: {e}"));
    }
    s.update(C, 1, b"d", b"x", b"v")
        .expect("room after the punches");
    assert!(s.generation() > generation, "a compaction freed it");
    assert_eq!(s.fetch(C, 1, b"d", b"k0", u64::MAX).unwrap(), None);
    let mut s = Store::open(SimMedia::new(1 << 16), SimMedia::new(8192)).unwrap();
    s.update(C, 1, b"d", b"a", &vec![1u8; 8192]).unwrap();
    assert!(matches!(
        s.update(C, 1, b"d", b"b", &vec![1u8; 8192]),
        Err(StoreError::BdevFull)
    ));
}

#[test]
fn real_media_survive_a_reopen() {
    use daos_engine::pool::UringRegion;
    use daos_hw::pmemfile::PmemFile;
    let dir = tempfile::tempdir().unwrap();
    let bdev = dir.path().join("bdev");
    std::fs::File::create(&bdev)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let big = vec![9u8; INLINE_MAX + 1];
    {
        let mut s = Store::open(
            PmemFile::open(&dir.path().join("vos-0"), 1 << 20).unwrap(),
            UringRegion::open(&bdev, 4096, 1 << 19).unwrap(),
        )
        .unwrap();
        s.update(C, 3, b"dk", b"small", b"hello").unwrap();
        s.update(C, 3, b"dk", b"big", &big).unwrap();
    }
    let s = Store::open(
        PmemFile::open(&dir.path().join("vos-0"), 0).unwrap(),
        UringRegion::open(&bdev, 4096, 1 << 19).unwrap(),
    )
    .unwrap();
    assert_eq!(
        s.fetch(C, 3, b"dk", b"small", u64::MAX).unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        s.fetch(C, 3, b"dk", b"big", u64::MAX).unwrap(),
        Some(big.clone())
    );
    // The value went through io_uring to the file, at the region's base.
    let raw = std::fs::read(&bdev).unwrap();
    assert_eq!(&raw[4096..4096 + big.len()], &big[..]);
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8, usize, u8),
    Punch(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..3, prop_oneof![1usize..64, (INLINE_MAX + 1)..(INLINE_MAX * 2)], any::<u8>()).prop_map(|(d, a, n, b)| Op::Put(d, a, n, b)),
        1 => (0u8..4).prop_map(Op::Punch),
    ]
}

type Model = BTreeMap<(u8, u8), Vec<u8>>;

fn apply(m: &mut Model, op: &Op) {
    match op {
        Op::Put(d, a, n, b) => {
            m.insert((*d, *a), vec![*b; *n]);
        }
        Op::Punch(d) => m.retain(|(k, _), _| k != d),
    }
}

fn state(s: &Sim) -> Model {
    let mut m = Model::new();
    for d in 0u8..4 {
        for a in 0u8..3 {
            // Any corruption or torn value would fail here, as a checksum error.
            if let Some(v) = s
                .fetch(C, 1, &[d], &[a], u64::MAX)
                .expect("no torn or corrupt value")
            {
                m.insert((d, a), v);
            }
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Power fails at a random persist, unpersisted writes are torn at random; after recovery
    /// every acknowledged update is there, nothing is torn, and the one unacknowledged
    /// operation is either wholly there or wholly absent.
    #[test]
    fn no_acknowledged_update_is_lost_and_nothing_is_torn(ops in proptest::collection::vec(op(), 1..40), fail_at in 0u64..80, tear_seed in any::<u64>(), on_bdev in any::<bool>()) {
        let mut scm = SimMedia::new(1 << 18);
        let mut bdev = SimMedia::new(1 << 20);
        if on_bdev { bdev.fail_after(fail_at / 2) } else { scm.fail_after(fail_at) }
        let mut s = Store::open(scm, bdev).unwrap();
        let mut acked = Model::new();
        let mut in_flight = None;
        for o in &ops {
            let r = match o {
                Op::Put(d, a, n, b) => s.update(C, 1, &[*d], &[*a], &vec![*b; *n]).map(|_| ()),
                Op::Punch(d) => s.punch(C, 1, Some(&[*d]), None).map(|_| ()),
            };
            match r {
                Ok(()) => apply(&mut acked, o),
                Err(_) => {
                    in_flight = Some(o.clone());
                    break;
                }
            }
        }
        let (mut scm, mut bdev) = s.into_media();
        scm.crash(Some(tear_seed));
        bdev.crash(Some(tear_seed.rotate_left(17)));
        let s = Store::open(scm, bdev).unwrap();
        let got = state(&s);
        let mut with_in_flight = acked.clone();
        if let Some(o) = &in_flight {
            apply(&mut with_in_flight, o);
        }
        prop_assert!(got == acked || got == with_in_flight, "recovered {:?}\nacked {:?}\nin flight {:?}", got.keys().collect::<Vec<_>>(), acked.keys().collect::<Vec<_>>(), in_flight);
    }
}

#[test]
fn old_versions_are_aggregated_the_same_way_before_and_after_recovery() {
    use daos_engine::store::VERSIONS_KEPT;
    let mut s = sim();
    let epochs: Vec<u64> = (0..VERSIONS_KEPT as u8 + 3)
        .map(|i| s.update(C, 1, b"d", b"a", &[i]).unwrap())
        .collect();
    let check = |s: &Store<SimMedia, SimMedia>| {
        let n = epochs.len();
        assert_eq!(
            s.fetch(C, 1, b"d", b"a", u64::MAX).unwrap(),
            Some(vec![n as u8 - 1])
        );
        // The last VERSIONS_KEPT versions stay readable at their epochs ...
        for (i, e) in epochs.iter().enumerate().skip(n - VERSIONS_KEPT) {
            assert_eq!(s.fetch(C, 1, b"d", b"a", *e).unwrap(), Some(vec![i as u8]));
        }
        // ... older ones are gone.
        assert_eq!(s.fetch(C, 1, b"d", b"a", epochs[0]).unwrap(), None);
    };
    check(&s);
    let (scm, bdev) = s.into_media();
    let s = Store::open(scm, bdev).unwrap();
    check(&s);
}

#[test]
fn compaction_reclaims_overwritten_log_and_bdev_space() {
    // 8 KiB log halves and a 64 KiB bdev: without reclaim, a few dozen updates fill them.
    let mut s = Store::open(SimMedia::new(4096 + 16384), SimMedia::new(65536)).unwrap();
    let big = |i: u32| vec![i as u8; INLINE_MAX + 100];
    for i in 0..2000u32 {
        s.update(C, 1, b"d", b"small", &i.to_le_bytes()).unwrap();
        if i % 10 == 0 {
            s.update(C, 1, b"d", b"big", &big(i)).unwrap();
        }
    }
    assert!(s.generation() > 10, "compacted {} times", s.generation());
    let check = |s: &Sim| {
        assert_eq!(
            s.fetch(C, 1, b"d", b"small", u64::MAX).unwrap(),
            Some(1999u32.to_le_bytes().to_vec())
        );
        assert_eq!(
            s.fetch(C, 1, b"d", b"big", u64::MAX).unwrap(),
            Some(big(1990))
        );
    };
    check(&s);
    let (scm, bdev) = s.into_media();
    let s = Store::open(scm, bdev).unwrap();
    check(&s);
}

#[test]
fn compaction_keeps_what_is_visible_and_drops_what_punches_hide() {
    let mut s = sim();
    for d in [&b"a"[..], b"b", b"c"] {
        s.update(C, 1, d, b"x", d).unwrap();
    }
    s.update(C, 2, b"gone", b"x", b"1").unwrap();
    s.punch(C, 2, None, None).unwrap();
    s.punch(C, 1, Some(b"b"), None).unwrap();
    s.punch(C, 1, Some(b"c"), Some(b"x")).unwrap();
    s.write_extent(C, 1, b"d", b"arr", 0, &[1; 100]).unwrap();
    s.write_extent(C, 1, b"d", b"arr", 50, &[2; 100]).unwrap();
    let used = s.log_used();
    s.compact().unwrap();
    assert!(s.log_used() < used, "{} >= {used}", s.log_used());
    let check = |s: &Sim| {
        assert_eq!(s.list_dkeys(C, 1), vec![b"a".to_vec(), b"d".to_vec()]);
        assert!(s.list_dkeys(C, 2).is_empty());
        assert_eq!(
            s.fetch(C, 1, b"a", b"x", u64::MAX).unwrap().as_deref(),
            Some(&b"a"[..])
        );
        let arr = s.read_extent(ARR, 0, 150, u64::MAX).unwrap();
        assert_eq!(&arr[..50], &[1; 50][..]);
        assert_eq!(&arr[50..], &[2; 100][..]);
    };
    check(&s);
    s.update(C, 1, b"a", b"x", b"after").unwrap();
    let (scm, bdev) = s.into_media();
    let s = Store::open(scm, bdev).unwrap();
    assert_eq!(
        s.fetch(C, 1, b"a", b"x", u64::MAX).unwrap().as_deref(),
        Some(&b"after"[..])
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// As above, with a log so small that compactions happen all the time: power may fail in
    /// the middle of one, and a torn header switch must fall back to the old half.
    #[test]
    fn compactions_survive_power_loss(ops in proptest::collection::vec(op(), 1..150), fail_at in 0u64..300, tear_seed in any::<u64>()) {
        let mut scm = SimMedia::new(4096 + 2 * 4096);
        let bdev = SimMedia::new(1 << 20);
        scm.fail_after(fail_at);
        let mut s = Store::open(scm, bdev).unwrap();
        let mut acked = Model::new();
        let mut in_flight = None;
        for o in &ops {
            let r = match o {
                Op::Put(d, a, n, b) => s.update(C, 1, &[*d], &[*a], &vec![*b; (*n).min(200)]).map(|_| ()),
                Op::Punch(d) => s.punch(C, 1, Some(&[*d]), None).map(|_| ()),
            };
            match r {
                Ok(()) => apply(&mut acked, &match o {
                    Op::Put(d, a, n, b) => Op::Put(*d, *a, (*n).min(200), *b),
                    p => p.clone(),
                }),
                Err(StoreError::LogFull) => continue,
                Err(_) => {
                    in_flight = Some(match o {
                        Op::Put(d, a, n, b) => Op::Put(*d, *a, (*n).min(200), *b),
                        p => p.clone(),
                    });
                    break;
                }
            }
        }
        let (mut scm, bdev) = s.into_media();
        scm.crash(Some(tear_seed));
        let s = Store::open(scm, bdev).unwrap();
        let got = state(&s);
        let mut with_in_flight = acked.clone();
        if let Some(o) = &in_flight {
            apply(&mut with_in_flight, o);
        }
        prop_assert!(got == acked || got == with_in_flight, "recovered {:?}\nacked {:?}\nin flight {:?}", got, acked, in_flight);
    }
}

#[test]
fn a_too_small_or_old_format_scm_part_is_refused_clearly() {
    use daos_engine::store::Media;
    let err = Store::open(SimMedia::new(8192), SimMedia::new(8192))
        .err()
        .expect("too small");
    assert!(matches!(err, StoreError::TooSmall(8192)), "{err}");
    assert!(err.to_string().contains("too small"), "{err}");
    // A log from before the header existed starts with a record's magic at offset 0.
    let mut scm = SimMedia::new(1 << 16);
    scm.write(0, &0xDA05_1064u32.to_le_bytes()).unwrap();
    let err = Store::open(scm, SimMedia::new(8192))
        .err()
        .expect("old format");
    assert!(matches!(err, StoreError::OldFormat), "{err}");
    assert!(err.to_string().contains("recreate the pool"), "{err}");
}

#[test]
fn akey_size_says_what_a_rebuild_copies() {
    use daos_wire::reply::AkeyShape;
    let mut s = sim();
    let single = AkeyRef {
        cont: C,
        oid: 1,
        dkey: b"d",
        akey: b"a",
    };
    assert_eq!(s.akey_size(single, u64::MAX), AkeyShape::None);
    s.update(C, 1, b"d", b"a", b"hello").unwrap();
    assert_eq!(s.akey_size(single, u64::MAX), AkeyShape::Single(5));
    s.write_extent(C, 1, b"d", b"arr", 4096, &[7u8; 100])
        .unwrap();
    s.write_extent(C, 1, b"d", b"arr", 0, &[1u8; 10]).unwrap();
    assert_eq!(s.akey_size(ARR, u64::MAX), AkeyShape::Array(4196));
    s.punch(C, 1, Some(b"d"), Some(b"arr")).unwrap();
    assert_eq!(s.akey_size(ARR, u64::MAX), AkeyShape::None, "punched");
    s.write_extent(C, 1, b"d", b"arr", 0, &[2u8; 8]).unwrap();
    assert_eq!(
        s.akey_size(ARR, u64::MAX),
        AkeyShape::Array(8),
        "only after the punch"
    );
    s.punch(C, 1, Some(b"d"), None).unwrap();
    assert_eq!(
        s.akey_size(single, u64::MAX),
        AkeyShape::None,
        "dkey punched"
    );
}

/// A change of one replica, at an epoch a client chose (small epochs: many ties).
#[derive(Clone, Debug)]
enum Change {
    Put(u8, u8, usize, u64),
    PunchAkey(u8, u64),
    Extent(u64, u8, usize, u64),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (0u8..3, any::<u8>(), prop_oneof![1usize..64, (INLINE_MAX + 1)..(INLINE_MAX * 2)], 1u64..12)
            .prop_map(|(a, b, n, e)| Change::Put(a, b, n, e)),
        1 => (0u8..3, 1u64..12).prop_map(|(a, e)| Change::PunchAkey(a, e)),
        2 => (0u64..200, any::<u8>(), 1usize..100, 1u64..12)
            .prop_map(|(o, b, n, e)| Change::Extent(o, b, n, e)),
    ]
}

fn change_into(s: &mut Sim, c: &Change) {
    let key = |a: u8| AkeyRef {
        cont: C,
        oid: 1,
        dkey: b"d",
        akey: std::slice::from_ref(&[b'a', b'b', b'c'][a as usize]),
    };
    match *c {
        Change::Put(a, b, n, e) => s.update_at(key(a), &vec![b; n], e).map(|_| ()),
        Change::PunchAkey(a, e) => s
            .punch_at(C, 1, Some(b"d"), Some(key(a).akey), e)
            .map(|_| ()),
        Change::Extent(o, b, n, e) => s.write_extent_at(ARR, o, &vec![b; n], e).map(|_| ()),
    }
    .expect("change");
}

/// What a reader sees of every key.
fn seen(s: &Sim) -> (Vec<Option<Vec<u8>>>, Vec<u8>) {
    let singles = [b"a", b"b", b"c"]
        .iter()
        .map(|a| s.fetch(C, 1, b"d", &a[..], u64::MAX).expect("fetch"))
        .collect();
    (singles, s.read_extent(ARR, 0, 300, u64::MAX).expect("read"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Two replicas get the same changes (client-chosen epochs, many equal) in different
    /// orders, as concurrent clients' messages may arrive: both end with the same values,
    /// and so do they after recovery.
    #[test]
    fn replicas_converge_whatever_order_changes_arrive_in(
        changes in proptest::collection::vec(change(), 1..40),
        order in any::<u64>(),
    ) {
        let mut shuffled = changes.clone();
        // A seeded permutation (Fisher-Yates), replayed by proptest's seed.
        let mut x = order | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let (mut a, mut b) = (sim(), sim());
        for c in &changes {
            change_into(&mut a, c);
        }
        for c in &shuffled {
            change_into(&mut b, c);
        }
        prop_assert_eq!(seen(&a), seen(&b));
        let (scm, bdev) = b.into_media();
        let b = Store::open(scm, bdev).expect("recover");
        prop_assert_eq!(seen(&a), seen(&b));
    }
}

#[test]
fn a_reclaimed_object_is_forgotten_and_a_later_copy_counts_whatever_its_epoch() {
    let mut s = sim();
    let old = s.update(C, 1, b"d", b"a", b"moved away").unwrap();
    s.update(C, 2, b"d", b"a", b"stays").unwrap();
    assert_eq!(s.reclaim(C, 3).unwrap(), 0, "nothing held: no record");
    assert!(s.reclaim(C, 1).unwrap() > old);
    assert_eq!(s.fetch(C, 1, b"d", b"a", u64::MAX).unwrap(), None);
    assert_eq!(s.list_oids(C, 0, true, 10), vec![2]);
    // The shard comes back here later: a rebuild copies the value at its own (older) epoch.
    let key = AkeyRef {
        cont: C,
        oid: 1,
        dkey: b"d",
        akey: b"a",
    };
    s.update_at(key, b"back", old).unwrap();
    let check = |s: &Sim| {
        assert_eq!(
            s.fetch(C, 1, b"d", b"a", u64::MAX).unwrap().as_deref(),
            Some(&b"back"[..]),
            "the copy after the reclaim is seen"
        );
        assert_eq!(
            s.fetch(C, 2, b"d", b"a", u64::MAX).unwrap().as_deref(),
            Some(&b"stays"[..])
        );
    };
    check(&s);
    // Recovery replays the reclaim between the two copies; compaction keeps only the new.
    let (scm, bdev) = s.into_media();
    let mut s = Store::open(scm, bdev).expect("recover");
    check(&s);
    let before = s.log_used();
    s.compact().unwrap();
    assert!(
        s.log_used() < before,
        "compaction dropped the reclaimed records"
    );
    check(&s);
}
