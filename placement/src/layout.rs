//! Where an object's shards live (DAOS's jump map, `src/placement/JUMP_MAP.md`, restated).
//!
//! For shard `s` of an object: a key from the object id and `s` picks a fault domain at
//! `rd_lvl` by jump consistent hash over the domains in map order; a domain another shard of
//! the same redundancy group already holds is skipped by re-hashing the key; a second jump
//! over the domain's targets picks the target (preferring one the object does not use yet).
//! This first layout ignores target states, so a failure never moves a healthy shard: shards
//! on failed targets are then remapped one by one, continuing their own hash sequence to a
//! healthy target in a domain their group does not use. Domains appended at the end of the
//! map (an extension) take about 1/n of the shards, as jump hashing does.

use crate::map::{PoolMap, RdLvl, TargetId, TargetState};
use crate::oclass::{GRP_MAX, ObjectClass};

/// One shard of a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub target: TargetId,
    /// Moved off a failed target (a rebuild target).
    pub remapped: bool,
    /// No healthy target could take it (the group has lost it).
    pub lost: bool,
}

/// An object's layout: `groups` redundancy groups of `class` shards each, group-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub class: ObjectClass,
    pub groups: u32,
    /// The pool map version it was computed on.
    pub version: u32,
    pub shards: Vec<Shard>,
}

impl Layout {
    pub fn group_size(&self) -> usize {
        self.class.redun.group_size() as usize
    }

    /// The shards of group `g`.
    pub fn group(&self, g: usize) -> &[Shard] {
        let n = self.group_size();
        &self.shards[g * n..(g + 1) * n]
    }
}

/// Why an object cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "object class {class} needs {need} fault domains at rd_lvl {} for one redundancy group, but the pool has {have} (DER_INVAL); use a class with smaller groups or rd_lvl rank",
        .lvl.name()
    )]
    GroupTooWide {
        class: String,
        need: u32,
        have: u32,
        lvl: RdLvl,
    },
    #[error(
        "object class {class} needs {need} targets, but the pool has {have} (DER_INVAL); use fewer groups or GX"
    )]
    TooManyShards { class: String, need: u32, have: u32 },
    #[error("the pool map has no targets")]
    Empty,
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Lamping and Veach's jump consistent hash: a bucket in `0..buckets` that changes for only
/// ~1/n of the keys when a bucket is added at the end.
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u32
}

const RETRIES: u64 = 64;

/// Places `oid` of `class` on `map`, a group's shards on distinct domains at `lvl`.
pub fn place(
    map: &PoolMap,
    oid: u128,
    class: ObjectClass,
    lvl: RdLvl,
) -> Result<Layout, PlacementError> {
    let domains = map.domains(lvl);
    let total: u32 = domains.iter().map(|d| d.len() as u32).sum();
    if total == 0 {
        return Err(PlacementError::Empty);
    }
    let size = class.redun.group_size();
    if size > domains.len() as u32 {
        return Err(PlacementError::GroupTooWide {
            class: class.to_string(),
            need: size,
            have: domains.len() as u32,
            lvl,
        });
    }
    let groups = if class.grp_nr == GRP_MAX {
        (total / size).max(1)
    } else {
        u32::from(class.grp_nr)
    };
    if groups * size > total {
        return Err(PlacementError::TooManyShards {
            class: class.to_string(),
            need: groups * size,
            have: total,
        });
    }
    let n = domains.len() as u32;
    let seed = mix(oid as u64 ^ mix((oid >> 64) as u64));
    let mut shards: Vec<(Shard, u64)> = Vec::with_capacity((groups * size) as usize);
    let mut used_targets: Vec<TargetId> = Vec::new();
    for g in 0..groups {
        let mut group_domains: Vec<u32> = Vec::with_capacity(size as usize);
        for i in 0..size {
            let s = u64::from(g * size + i);
            let mut key = mix(seed ^ mix(s.wrapping_add(0x5bd1_e995)));
            let mut d = jump(key, n);
            let mut tries = 0;
            while group_domains.contains(&d) {
                tries += 1;
                key = mix(key ^ tries);
                d = if tries < RETRIES {
                    jump(key, n)
                } else {
                    // Deterministic fallback: the next free domain.
                    (0..n)
                        .map(|k| (d + k) % n)
                        .find(|c| !group_domains.contains(c))
                        .unwrap_or(d)
                };
            }
            group_domains.push(d);
            let dom = &domains[d as usize];
            let target = pick(dom, key, &used_targets, |_| true).unwrap_or(dom[0].0);
            used_targets.push(target);
            shards.push((
                Shard {
                    target,
                    remapped: false,
                    lost: false,
                },
                key,
            ));
        }
    }
    // Shards on failed targets move, one by one, to healthy targets in domains their group
    // does not use.
    let domain_of = |t: TargetId| {
        domains
            .iter()
            .position(|d| d.iter().any(|(id, _)| *id == t))
            .unwrap_or(0) as u32
    };
    let healthy = |t: TargetId| map.state(t).is_some_and(TargetState::placeable);
    for k in 0..shards.len() {
        if healthy(shards[k].0.target) {
            continue;
        }
        let g = k / size as usize;
        let range = g * size as usize..(g + 1) * size as usize;
        let taken: Vec<u32> = range
            .clone()
            .filter(|j| *j != k)
            .map(|j| domain_of(shards[j].0.target))
            .collect();
        let in_group: Vec<TargetId> = range.map(|j| shards[j].0.target).collect();
        let used: Vec<TargetId> = shards.iter().map(|(s, _)| s.target).collect();
        let mut key = shards[k].1;
        let mut found = None;
        for tries in 1..=RETRIES {
            key = mix(key ^ tries.wrapping_mul(0x9e37_79b9));
            let d = jump(key, n);
            if taken.contains(&d) {
                continue;
            }
            if let Some(t) = pick(&domains[d as usize], key, &used, |s| s.placeable()) {
                found = Some(t);
                break;
            }
        }
        if found.is_none() {
            // Every domain tried: any healthy target of a domain the group does not use, else
            // any healthy target outside the group (the group is then degraded at rd_lvl).
            found = (0..n)
                .filter(|d| !taken.contains(d))
                .find_map(|d| pick(&domains[d as usize], key, &used, |s| s.placeable()))
                .or_else(|| {
                    map.targets()
                        .find(|(t, s)| s.placeable() && !in_group.contains(t))
                        .map(|(t, _)| t)
                });
        }
        let shard = &mut shards[k].0;
        match found {
            Some(t) => {
                shard.target = t;
                shard.remapped = true;
            }
            None => shard.lost = true,
        }
    }
    Ok(Layout {
        class,
        groups,
        version: map.version,
        shards: shards.into_iter().map(|(s, _)| s).collect(),
    })
}

/// A target of `dom` whose state passes `ok`, by jump hash of `key`; one `used` does not hold
/// yet if there is one.
fn pick(
    dom: &[(TargetId, TargetState)],
    key: u64,
    used: &[TargetId],
    ok: impl Fn(TargetState) -> bool,
) -> Option<TargetId> {
    let candidates: Vec<TargetId> = dom
        .iter()
        .filter(|(_, s)| ok(*s))
        .map(|(t, _)| *t)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let n = candidates.len() as u32;
    let mut k = mix(key ^ 0xa076_1d64_78bd_642f);
    for tries in 0..n.min(8) {
        let t = candidates[jump(k, n) as usize];
        if !used.contains(&t) {
            return Some(t);
        }
        k = mix(k ^ u64::from(tries + 1));
    }
    Some(candidates[jump(k, n) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// A seeded generator; `PLACEMENT_SEED` replays a run.
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
            Rng(seed)
        }
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix(self.0)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn map(nodes: u32, ranks_per_node: u32, targets: u32) -> PoolMap {
        let mut spec = Vec::new();
        let names: Vec<String> = (0..nodes).map(|n| format!("/rack0/node{n}")).collect();
        for n in 0..nodes {
            for r in 0..ranks_per_node {
                spec.push((names[n as usize].as_str(), n * ranks_per_node + r, targets));
            }
        }
        PoolMap::new(&spec)
    }

    fn node_of(m: &PoolMap, t: TargetId) -> usize {
        m.nodes
            .iter()
            .position(|n| n.ranks.iter().any(|r| r.rank == t.rank))
            .expect("node")
    }

    #[test]
    fn groups_sit_on_distinct_domains_and_layouts_are_deterministic() {
        let mut rng = Rng::from_env("distinct");
        for _ in 0..40 {
            let nodes = 2 + rng.below(7) as u32;
            let m = map(nodes, 1 + rng.below(3) as u32, 1 + rng.below(8) as u32);
            for lvl in [RdLvl::Node, RdLvl::Rank] {
                let domains = m.domains(lvl).len() as u32;
                for r in 2..=domains.min(6) as u8 {
                    let class = ObjectClass::rp(r, 1 + rng.below(2) as u16);
                    for _ in 0..50 {
                        let oid = u128::from(rng.next()) << 64 | u128::from(rng.next());
                        let Ok(l) = place(&m, oid, class, lvl) else {
                            continue;
                        };
                        assert_eq!(l, place(&m, oid, class, lvl).expect("again"));
                        for g in 0..l.groups as usize {
                            let doms: HashSet<usize> = l
                                .group(g)
                                .iter()
                                .map(|s| match lvl {
                                    RdLvl::Node => node_of(&m, s.target),
                                    RdLvl::Rank => s.target.rank as usize,
                                })
                                .collect();
                            assert_eq!(doms.len(), l.group_size(), "{class} {lvl:?} {l:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn single_shard_objects_spread_evenly_over_targets() {
        let mut rng = Rng::from_env("balance");
        let m = map(4, 2, 4);
        let mut per: HashMap<TargetId, u32> = HashMap::new();
        let n = 32_000u32;
        for _ in 0..n {
            let oid = u128::from(rng.next()) << 64 | u128::from(rng.next());
            let l = place(&m, oid, ObjectClass::S1, RdLvl::Node).expect("place");
            *per.entry(l.shards[0].target).or_default() += 1;
        }
        assert_eq!(per.len(), 32, "every target used");
        let mean = n as f64 / 32.0;
        for (t, c) in &per {
            let dev = (*c as f64 - mean).abs() / mean;
            assert!(dev < 0.15, "{t}: {c} shards, mean {mean}");
        }
    }

    #[test]
    fn a_failed_target_moves_only_its_own_shards_to_healthy_distinct_domains() {
        let mut rng = Rng::from_env("failure");
        let before = map(5, 1, 4);
        let mut after = before.clone();
        let dead = rng.below(5) as u32;
        after.exclude(dead).expect("exclude");
        assert_eq!(after.version, before.version + 1);
        let class = ObjectClass::rp(3, 1);
        let mut moved = 0;
        for _ in 0..2000 {
            let oid = u128::from(rng.next()) << 64 | u128::from(rng.next());
            let a = place(&before, oid, class, RdLvl::Node).expect("before");
            let b = place(&after, oid, class, RdLvl::Node).expect("after");
            assert_eq!(b.version, after.version);
            for (x, y) in a.shards.iter().zip(&b.shards) {
                if x.target.rank == dead {
                    assert!(y.remapped && y.target.rank != dead, "{a:?} -> {b:?}");
                    moved += 1;
                } else {
                    assert_eq!(x, y, "a healthy shard moved: {a:?} -> {b:?}");
                }
            }
            let nodes: HashSet<usize> =
                b.shards.iter().map(|s| node_of(&after, s.target)).collect();
            assert_eq!(nodes.len(), 3, "still 3 distinct nodes: {b:?}");
        }
        assert!(moved > 0, "some objects had a shard on rank {dead}");
    }

    #[test]
    fn an_extension_moves_about_one_nth_of_the_shards() {
        let mut rng = Rng::from_env("extension");
        let before = map(6, 1, 4);
        let mut after = before.clone();
        after.extend("/rack0/node6", 6, 4).expect("extend");
        let (mut moved, mut total) = (0u32, 0u32);
        for _ in 0..4000 {
            let oid = u128::from(rng.next()) << 64 | u128::from(rng.next());
            let a = place(&before, oid, ObjectClass::rp(2, 1), RdLvl::Node).expect("a");
            let b = place(&after, oid, ObjectClass::rp(2, 1), RdLvl::Node).expect("b");
            for (x, y) in a.shards.iter().zip(&b.shards) {
                total += 1;
                moved += u32::from(x.target != y.target);
            }
        }
        let frac = f64::from(moved) / f64::from(total);
        // Ideal 1/7 = 0.143; a group's second shard moves a little more often.
        assert!(frac > 0.08 && frac < 0.25, "moved {frac:.3} of the shards");
        // The new node holds its share.
        let on_new = (0..2000)
            .filter(|_| {
                let oid = u128::from(rng.next());
                place(&after, oid, ObjectClass::S1, RdLvl::Node)
                    .expect("p")
                    .shards[0]
                    .target
                    .rank
                    == 6
            })
            .count();
        assert!(
            on_new > 150 && on_new < 450,
            "{on_new} of 2000 on the new node"
        );
    }

    #[test]
    fn classes_the_pool_cannot_hold_are_refused_with_the_reason() {
        let m = map(2, 2, 2);
        assert_eq!(
            place(&m, 1, ObjectClass::rp(3, 1), RdLvl::Node)
                .expect_err("too wide")
                .to_string(),
            "object class RP_3G1 needs 3 fault domains at rd_lvl node for one redundancy group, but the pool has 2 (DER_INVAL); use a class with smaller groups or rd_lvl rank"
        );
        assert!(place(&m, 1, ObjectClass::rp(3, 1), RdLvl::Rank).is_ok());
        assert!(matches!(
            place(&m, 1, ObjectClass::rp(2, 8), RdLvl::Node),
            Err(PlacementError::TooManyShards {
                need: 16,
                have: 8,
                ..
            })
        ));
        let gx = place(&m, 1, ObjectClass::rp(2, GRP_MAX), RdLvl::Node).expect("GX");
        assert_eq!(gx.groups, 4);
        assert_eq!(
            place(&PoolMap::new(&[]), 1, ObjectClass::S1, RdLvl::Node),
            Err(PlacementError::Empty)
        );
    }

    #[test]
    fn map_transitions_follow_daos() {
        let mut m = map(3, 1, 2);
        let t = TargetId { rank: 1, idx: 0 };
        m.drain(1).expect("drain");
        assert_eq!(m.state(t), Some(TargetState::Drain));
        // A reintegration calls the drain off: up, filled by the rebuild, then up_in.
        m.reintegrate(1).expect("reint while draining");
        assert_eq!(m.state(t), Some(TargetState::Up));
        m.finish_rebuild(1).expect("in");
        m.drain(1).expect("drain");
        m.exclude(1).expect("exclude");
        assert_eq!(m.state(t), Some(TargetState::Down));
        m.finish_rebuild(1).expect("rebuilt");
        assert_eq!(m.state(t), Some(TargetState::DownOut));
        m.reintegrate(1).expect("reint");
        assert_eq!(m.state(t), Some(TargetState::Up));
        m.finish_rebuild(1).expect("in");
        assert_eq!(m.state(t), Some(TargetState::UpIn));
        let v = m.version;
        assert_eq!(
            m.reintegrate(2).expect_err("not excluded").to_string(),
            "rank 2 is not excluded or drained: reintegrate only brings back ranks whose targets are down, down_out or draining"
        );
        assert_eq!(
            m.extend("/x", 0, 1),
            Err(crate::map::MapError::Duplicate(0))
        );
        assert_eq!(m.exclude(9), Err(crate::map::MapError::NoRank(9)));
        assert_eq!(m.version, v, "refusals change nothing");
    }

    #[test]
    fn some_targets_of_a_rank_change_and_bad_indices_change_nothing() {
        use crate::map::{MapError, MapOp};
        let mut m = map(3, 1, 4);
        let at = |m: &PoolMap, idx| m.state(TargetId { rank: 2, idx }).expect("target");
        m.apply(MapOp::Exclude, 2, &[1, 3]).expect("exclude two");
        assert_eq!(
            (0..4).map(|i| at(&m, i)).collect::<Vec<_>>(),
            [
                TargetState::UpIn,
                TargetState::Down,
                TargetState::UpIn,
                TargetState::Down
            ]
        );
        let v = m.version;
        assert_eq!(
            m.apply(MapOp::Drain, 2, &[0, 4]),
            Err(MapError::NoTarget {
                rank: 2,
                idx: 4,
                targets: 4
            })
        );
        assert_eq!(
            m.apply(MapOp::Reint, 2, &[0])
                .expect_err("target 0 is up")
                .to_string(),
            "rank 2 is not excluded or drained: reintegrate only brings back ranks whose targets are down, down_out or draining"
        );
        assert_eq!(m.version, v, "refusals change nothing");
        m.apply(MapOp::Reint, 2, &[]).expect("reint the down ones");
        assert_eq!(at(&m, 1), TargetState::Up);
        assert_eq!(at(&m, 0), TargetState::UpIn);
    }
}
