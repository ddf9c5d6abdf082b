//! Properties of [`daos_placement::jump_map::place`] on random healthy maps, with a seeded
//! generator: `PLACEMENT_SEED=<n>` replays a run (the seed is printed).

use daos_placement::jump_map::{
    self, CompStatus, ErrorKind, ObjLayout, ObjectMd, OpenMode, PoolBufMap, ShardPlace,
};

/// xorshift64*, seeded from `PLACEMENT_SEED` or the clock.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("PLACEMENT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: PLACEMENT_SEED={seed}");
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }
}

/// A pool map: per node, per rank, the targets' statuses.
type Shape = Vec<Vec<Vec<CompStatus>>>;

/// The pool buffer `daos_cart::pool::write_pool_buf` writes for `shape` at `version`: node ids
/// from 1, ranks numbered in order, target ids in order, fseq 1.
fn pool_buf(shape: &Shape, version: u32) -> Vec<u8> {
    let ranks: Vec<&Vec<CompStatus>> = shape.iter().flatten().collect();
    let target_nr: usize = ranks.iter().map(|r| r.len()).sum();
    let nr = shape.len() + ranks.len() + target_nr;
    let mut b = Vec::new();
    let header = [2, 0, 0, nr, shape.len(), ranks.len(), target_nr, 0];
    for w in header {
        b.extend_from_slice(&(w as u32).to_le_bytes());
    }
    let mut comp =
        |kind: u8, status: CompStatus, index: usize, id: usize, rank: usize, nr: usize| {
            b.extend_from_slice(&[kind, status as u8, index as u8, 0]);
            for w in [id as u32, rank as u32, version, 1, version, 0, nr as u32] {
                b.extend_from_slice(&w.to_le_bytes());
            }
        };
    for (i, node) in shape.iter().enumerate() {
        comp(2, CompStatus::UpIn, i, i + 1, 0, node.len());
    }
    for (i, r) in ranks.iter().enumerate() {
        let all_out = r.iter().all(|s| *s == CompStatus::DownOut);
        let st = if all_out {
            CompStatus::DownOut
        } else {
            CompStatus::UpIn
        };
        comp(1, st, i, i, i, r.len());
    }
    let mut id = 0;
    for (rank, r) in ranks.iter().enumerate() {
        for (j, st) in r.iter().enumerate() {
            comp(0, *st, j, id, rank, 1);
            id += 1;
        }
    }
    b
}

/// A random healthy map: 1..=6 nodes of 1..=3 ranks of 1..=6 targets; `uniform`: every node
/// alike and every rank alike.
fn random_shape(rng: &mut Rng, uniform: bool) -> Shape {
    let (nodes, ranks, targets) = (rng.range(1, 6), rng.range(1, 3), rng.range(1, 6));
    (0..nodes)
        .map(|_| {
            let rank_nr = if uniform { ranks } else { rng.range(1, 3) };
            (0..rank_nr)
                .map(|_| {
                    let n = if uniform { targets } else { rng.range(1, 6) };
                    vec![CompStatus::UpIn; n as usize]
                })
                .collect()
        })
        .collect()
}

/// Classes: S1, S2, S4, SX, RP_2G1, RP_2G2, RP_2GX, RP_3G1, RP_3G2, RP_3GX, RP_4G1, EC_2P1G1,
/// EC_2P1GX, EC_4P1G1, EC_2P2G2.
const CLASSES: [u32; 15] = [
    0x0100_0001,
    0x0100_0002,
    0x0100_0004,
    0x0100_FFFF,
    0x0800_0001,
    0x0800_0002,
    0x0800_FFFF,
    0x0900_0001,
    0x0900_0002,
    0x0900_FFFF,
    0x0A00_0001,
    0x2000_0001,
    0x2000_FFFF,
    0x2200_0001,
    0x2100_0002,
];

struct Case {
    shape: Shape,
    map: PoolBufMap,
    md: ObjectMd,
    layout_ver: u32,
}

/// A random object of a class that fits a random healthy map, or `None` if the class does not.
fn random_case(rng: &mut Rng, uniform: bool) -> Option<Case> {
    let shape = random_shape(rng, uniform);
    let map = PoolBufMap::parse(&pool_buf(&shape, 1), 1).expect("our own buffer");
    let class_id = CLASSES[(rng.next() % CLASSES.len() as u64) as usize];
    let fdom_lvl = rng.range(0, 1);
    let level = if fdom_lvl == 0 { 2 } else { 1 };
    let oid =
        jump_map::generate_oid(&map, class_id, 0, rng.next() as u32, rng.next(), level, 0).ok()?;
    let md = ObjectMd {
        oid,
        version: 1,
        fdom_lvl,
    };
    Some(Case {
        shape,
        map,
        md,
        layout_ver: rng.range(1, 2),
    })
}

/// The fault domain (node, or rank at fdom level 1) of each target position.
fn domain_of(case: &Case) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rank = 0;
    for (n, node) in case.shape.iter().enumerate() {
        for r in node {
            let dom = if case.md.fdom_lvl == 1 { rank } else { n };
            out.extend(std::iter::repeat_n(dom, r.len()));
            rank += 1;
        }
    }
    out
}

/// The shards' targets (positions = ids in these maps); panics on an empty shard.
fn targets(layout: &ObjLayout) -> Vec<u32> {
    layout
        .shards
        .iter()
        .map(|s| s.expect("no empty shard on these maps").target)
        .collect()
}

/// `shape` with target position `x` in `status`.
fn with_status(shape: &Shape, x: usize, status: CompStatus) -> Shape {
    let mut shape = shape.clone();
    if let Some(s) = shape.iter_mut().flatten().flatten().nth(x) {
        *s = status;
    }
    shape
}

fn describe(case: &Case) -> String {
    format!(
        "shape {:?} oid {:#x}.{:#x} fdom {} layout v{}",
        case.shape
            .iter()
            .map(|n| n.iter().map(Vec::len).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        case.md.oid.hi,
        case.md.oid.lo,
        case.md.fdom_lvl,
        case.layout_ver
    )
}

/// On a healthy map:
/// - the same input gives the same layout (also from a fresh parse of the same bytes);
/// - the shards of a group are on distinct fault domains (the class fits, so `grp_size` is at
///   most the number of fault domains);
/// - the shards are on distinct targets when a group never has to choose between a distinct
///   fault domain and a free target: groups of one shard and `shards <= targets`, or every
///   fault domain holding at least `grp_nr` targets. (The plain "`shards <= targets` implies
///   distinct targets" does not hold in DAOS for wider groups: a late group whose only free
///   targets share one fault domain goes to distinct domains and shares a target instead.)
/// - every shard's rank, index and fseq are its target's; nothing is rebuilding.
#[test]
fn healthy_maps_give_spread_deterministic_layouts() {
    let mut rng = Rng::from_env("healthy_maps_give_spread_deterministic_layouts");
    let mut placed = 0;
    for i in 0..4000 {
        let Some(case) = random_case(&mut rng, i % 2 == 0) else {
            continue;
        };
        let what = describe(&case);
        let layout = jump_map::place(&case.map, &case.md, case.layout_ver, OpenMode::ReadWrite)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        placed += 1;
        let again = PoolBufMap::parse(&pool_buf(&case.shape, 1), 1).expect("our own buffer");
        let second = jump_map::place(&again, &case.md, case.layout_ver, OpenMode::ReadWrite);
        assert_eq!(second.as_ref(), Ok(&layout), "{what}: not deterministic");

        let tg = targets(&layout);
        let dom = domain_of(&case);
        assert_eq!(
            tg.len(),
            (layout.grp_size * layout.grp_nr) as usize,
            "{what}"
        );
        for (g, group) in tg.chunks(layout.grp_size as usize).enumerate() {
            let mut doms: Vec<usize> = group.iter().map(|t| dom[*t as usize]).collect();
            doms.sort_unstable();
            doms.dedup();
            assert_eq!(
                doms.len(),
                group.len(),
                "{what}: group {g} {group:?} shares a domain"
            );
        }
        let mut per_dom = vec![0u32; dom.iter().max().map_or(0, |m| m + 1)];
        for d in &dom {
            per_dom[*d] += 1;
        }
        let roomy = per_dom.iter().all(|n| *n >= layout.grp_nr);
        if (layout.grp_size == 1 && tg.len() <= dom.len()) || roomy {
            let mut distinct = tg.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), tg.len(), "{what}: {tg:?} shares a target");
        }
        for s in layout.shards.iter().flatten() {
            let t = case.map.targets()[s.target as usize];
            assert_eq!(
                (s.rank, s.index, s.fseq, s.rebuilding),
                (t.rank, t.index, 1, false)
            );
            assert_eq!(s.tag(), u32::from(t.index) + 2);
        }
    }
    assert!(placed > 3000, "only {placed} cases placed");
}

/// Marking one target DOWNOUT (map version 2) moves only the shards that were on it, each to an
/// UPIN target, not rebuilding, keeping the failed target's fseq; every other shard keeps its
/// place. Marking it DOWN instead gives the same targets with the moved shards rebuilding, and a
/// read-only open keeps them on the DOWN target (rebuilding). Both layout versions.
#[test]
fn a_failed_target_moves_only_its_own_shards() {
    let mut rng = Rng::from_env("a_failed_target_moves_only_its_own_shards");
    let mut moved = 0;
    for i in 0..3000 {
        let Some(case) = random_case(&mut rng, i % 2 == 0) else {
            continue;
        };
        let what = describe(&case);
        let before = jump_map::place(&case.map, &case.md, case.layout_ver, OpenMode::ReadWrite)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let x = (rng.next() % case.map.targets().len() as u64) as usize;
        let md = ObjectMd {
            version: 2,
            ..case.md
        };
        let place = |status: CompStatus, mode: OpenMode| {
            let bytes = pool_buf(&with_status(&case.shape, x, status), 2);
            let map = PoolBufMap::parse(&bytes, 2).expect("our own buffer");
            jump_map::place(&map, &md, case.layout_ver, mode)
        };
        let out = match place(CompStatus::DownOut, OpenMode::ReadWrite) {
            Ok(out) => out,
            Err(e) => {
                // The map's only target failed: libdaos would search for a spare forever.
                assert_eq!(case.map.targets().len(), 1, "{what}: {e}");
                assert_eq!(e.kind(), ErrorKind::NoProgress, "{what}: {e}");
                continue;
            }
        };
        assert_eq!(out.version, 2);
        for (k, (a, b)) in before.shards.iter().zip(&out.shards).enumerate() {
            let (a, b) = (a.expect("placed"), b.expect("placed"));
            if a.target as usize != x {
                assert_eq!(
                    b,
                    ShardPlace { ..a },
                    "{what}: shard {k} moved off a healthy target"
                );
            } else {
                moved += 1;
                assert_ne!(
                    b.target as usize, x,
                    "{what}: shard {k} stayed on target {x}"
                );
                assert!(!b.rebuilding && b.fseq == 1, "{what}: shard {k}: {b:?}");
            }
        }
        let down = place(CompStatus::Down, OpenMode::ReadWrite).expect("as with DOWNOUT");
        for (k, (a, b)) in out.shards.iter().zip(&down.shards).enumerate() {
            let (a, b) = (a.expect("placed"), b.expect("placed"));
            assert_eq!(a.target, b.target, "{what}: DOWN and DOWNOUT differ");
            let was_on_x = before.shards[k].is_some_and(|p| p.target as usize == x);
            assert_eq!(b.rebuilding, was_on_x, "{what}: shard {k}: {b:?}");
        }
        let read_only = place(CompStatus::Down, OpenMode::ReadOnly).expect("read-only");
        for (a, b) in before.shards.iter().zip(&read_only.shards) {
            let (a, b) = (a.expect("placed"), b.expect("placed"));
            assert_eq!(a.target, b.target, "{what}: a read-only open moved a shard");
            assert_eq!(b.rebuilding, a.target as usize == x, "{what}: {b:?}");
        }
    }
    assert!(moved > 500, "only {moved} shards were on failed targets");
}
