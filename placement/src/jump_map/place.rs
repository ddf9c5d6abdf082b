//! `pl_obj_place` for the jump map, layout versions 1 and 2 (`jump_map.c`,
//! `jump_map_versions.c`, `pl_map_common.c`).
//!
//! Terms: a *position* is an index into the map's domain array (root 0, then nodes, then
//! ranks) or target array (buffer order). The *fault-domain level* (`fdom`) is the node or the
//! rank; the walk picks a domain at each level above it and a target inside it. Components in
//! status NEW, and UP ones with `fseq <= 1` (newly added), are *skipped*: invisible to the
//! hash. A target is *available* when a shard may stay on it (see [`available`]).
//!
//! Bookkeeping, as bitmaps over positions:
//! - `dom_used` (object-wide): domains some shard went through; a level's bits are cleared
//!   once every child is used, so the object spreads over all domains before doubling up;
//! - `dom_full` (object-wide): domains whose targets are all taken;
//! - `tgts_used` (object-wide): targets some shard took, available or not, so a remap never
//!   returns to a failed target and no two shards share a target while others are free;
//! - `used` and `real` (per redundancy group): domains the group went through, and those where
//!   it got an available target. When a group runs out of domains, [`reset_group`] relaxes
//!   the rules in four steps, ending with two shards of the group in one domain.

use super::JumpMapError;
use super::class::{GRP_MAX, Oid, class_attr};
use super::hash::{JM_CRC_SEED, JM_REBUILD_SALT, crc, d_hash_jump, jm_crc, oid_hash};
use super::pool_buf::{CompStatus, CompType, Component, Domain, PoolBufMap};

/// The newest layout version this module computes (DAOS v2.6's default, `DAOS_POOL_OBJ_VERSION`).
pub const LAYOUT_VER_MAX: u32 = 2;

/// How the object is opened; read-only opens compute the layout as it was before the current
/// rebuild (`PRE_REBUILD`), so DOWN and DRAIN targets keep their shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenMode {
    ReadOnly,
    ReadWrite,
}

impl OpenMode {
    /// `DAOS_OO_RO`.
    pub const DAOS_OO_RO: u32 = 1 << 1;

    /// The mode of `daos_obj_open`'s flags: read-only when [`Self::DAOS_OO_RO`] is set.
    pub fn from_flags(flags: u32) -> OpenMode {
        if flags & Self::DAOS_OO_RO != 0 {
            OpenMode::ReadOnly
        } else {
            OpenMode::ReadWrite
        }
    }
}

/// `daos_obj_md` without performance domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectMd {
    pub oid: Oid,
    /// `omd_ver`: the pool map version the client places on (its map's
    /// [`PoolBufMap::version`]).
    pub version: u32,
    /// `omd_fdom_lvl`: the container's redundancy level, 1 (rank), 2 (node) or 0 (node).
    pub fdom_lvl: u32,
}

/// Where one shard lives (`pl_obj_shard`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShardPlace {
    /// The target's `co_id`.
    pub target: u32,
    /// The target's rank (libdaos keeps it as a `u16`).
    pub rank: u32,
    /// The target's index within its engine.
    pub index: u8,
    /// The failure sequence: the target's `co_fseq`, or for a remapped shard that of the
    /// target it was moved off.
    pub fseq: u32,
    /// The shard is being rebuilt (I/O skips it).
    pub rebuilding: bool,
}

impl ShardPlace {
    /// The engine's cart tag the shard's RPCs go to (targets start at tag 2).
    pub fn tag(&self) -> u32 {
        u32::from(self.index) + 2
    }
}

/// An object's layout (`pl_obj_layout`): `grp_nr` groups of `grp_size` shards, group-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjLayout {
    /// `ol_ver`: the map version it was computed for.
    pub version: u32,
    pub grp_size: u32,
    pub grp_nr: u32,
    /// `None`: no target for this shard (a spare that fails later than the layout's version).
    pub shards: Vec<Option<ShardPlace>>,
}

impl ObjLayout {
    /// The shards of group `g` (empty if there is no such group).
    pub fn group(&self, g: usize) -> &[Option<ShardPlace>] {
        let n = self.grp_size as usize;
        let start = g.saturating_mul(n);
        self.shards
            .get(start..start.saturating_add(n))
            .unwrap_or(&[])
    }
}

/// `layout_gen_mode`; POST_REBUILD is only used by layout extension, which is not implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GenMode {
    PreRebuild,
    Current,
}

/// `jump_map_obj_place(map, layout_ver, md, mode)`: the layout libdaos v2.6.4 computes.
///
/// Refused like libdaos (kind [`super::ErrorKind::Invalid`]): an unknown class, a fault-domain
/// level other than 0, 1 or 2, groups wider than the fault domains, more groups than
/// `max(1, targets / grp_size)` (every target counts here, whatever its status). Refused as
/// unsupported: layout version 0, and layouts libdaos would extend (see the module doc).
pub fn place(
    map: &PoolBufMap,
    md: &ObjectMd,
    layout_ver: u32,
    mode: OpenMode,
) -> Result<ObjLayout, JumpMapError> {
    if layout_ver == 0 || layout_ver > LAYOUT_VER_MAX {
        return Err(JumpMapError::LayoutVersion(layout_ver));
    }
    let attr = class_attr(md.oid.class_id())?;
    let fdom_type = match md.fdom_lvl {
        0 | 2 => CompType::Node,
        1 => CompType::Rank,
        level => return Err(JumpMapError::FdomLevel { level }),
    };
    let domain_nr = map.count(fdom_type);
    let grp_size = attr.grp_size;
    if grp_size > domain_nr {
        return Err(JumpMapError::GroupTooWide {
            grp_size,
            domain_nr,
        });
    }
    let grp_max = (map.count(CompType::Target) / grp_size).max(1);
    let grp_nr = if attr.grp_nr == GRP_MAX {
        grp_max
    } else {
        attr.grp_nr
    };
    if grp_nr > grp_max {
        return Err(JumpMapError::TooManyGroups { grp_nr, grp_max });
    }
    let gen_mode = match mode {
        OpenMode::ReadOnly => GenMode::PreRebuild,
        OpenMode::ReadWrite => GenMode::Current,
    };
    let tree = Tree::new(
        map,
        md.version,
        gen_mode,
        failure_domain_level(map, fdom_type),
    );
    let mut layout = Layout {
        tree: &tree,
        layout_ver,
        oid: md.oid,
        version: md.version,
        marks: Marks::new(&tree),
        extending: false,
    };
    let shards = layout.build(grp_nr, grp_size)?;
    if (layout.extending || map.is_adding()) && mode == OpenMode::ReadWrite {
        return Err(JumpMapError::Unsupported {
            what: "layout extension (a read-write open of a layout with UP or DRAIN targets, or on a map that is adding targets)",
        });
    }
    Ok(ObjLayout {
        version: md.version,
        grp_size,
        grp_nr,
        shards,
    })
}

/// `pool_map_failure_domain_level`: `level` if a domain of that type lies on the first-child
/// path from the root, else the type of the lowest domain.
fn failure_domain_level(map: &PoolBufMap, level: CompType) -> CompType {
    let domains = map.domains();
    let mut pos = 0;
    while let Some(d) = domains.get(pos) {
        if d.comp.kind == level {
            return level;
        }
        if d.child_nr == 0 {
            return d.comp.kind;
        }
        pos = d.child_start;
    }
    level
}

/// `is_excluded_comp` outside POST_REBUILD: NEW, or UP with `fseq <= 1`.
fn skipped(c: &Component) -> bool {
    c.status == CompStatus::New || (c.status == CompStatus::Up && c.fseq <= 1)
}

/// `is_comp_avaible`: whether a shard may stay on `c` when placing for map version
/// `allow_version`. Read-only opens look at the state before the rebuild: DOWN and DRAIN
/// targets still hold their data. Read-write opens keep UPIN and DRAIN targets, and DOWN ones
/// that failed after `allow_version`. UP targets never hold a shard outside layout extension.
fn available(c: &Component, allow_version: u32, gen_mode: GenMode) -> bool {
    match gen_mode {
        GenMode::PreRebuild => matches!(
            c.status,
            CompStatus::UpIn | CompStatus::Down | CompStatus::Drain
        ),
        GenMode::Current => match c.status {
            CompStatus::UpIn | CompStatus::Drain => true,
            CompStatus::Down => c.fseq > allow_version,
            CompStatus::New | CompStatus::Up | CompStatus::DownOut => false,
        },
    }
}

/// A fixed-size bitmap over positions; out-of-range positions read as clear and ignore writes.
#[derive(Clone, Debug)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn clear(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }
}

/// The map as one placement sees it: the tree, which components are skipped, which targets are
/// available, and the fault-domain level.
struct Tree<'a> {
    domains: &'a [Domain],
    targets: &'a [Component],
    dom_skip: Vec<bool>,
    tgt_skip: Vec<bool>,
    tgt_avail: Vec<bool>,
    fdom: CompType,
    /// Bound on the steps of one shard's search (walks and resets).
    step_max: u64,
}

impl<'a> Tree<'a> {
    fn new(map: &'a PoolBufMap, allow_version: u32, gen_mode: GenMode, fdom: CompType) -> Self {
        let (domains, targets) = (map.domains(), map.targets());
        let size = (domains.len() + targets.len()) as u64;
        Tree {
            domains,
            targets,
            dom_skip: domains.iter().map(|d| skipped(&d.comp)).collect(),
            tgt_skip: targets.iter().map(skipped).collect(),
            tgt_avail: targets
                .iter()
                .map(|t| available(t, allow_version, gen_mode))
                .collect(),
            fdom,
            step_max: 64 * size + 4096,
        }
    }

    fn dom(&self, pos: usize) -> Option<&'a Domain> {
        self.domains.get(pos)
    }

    /// Positions `start..start + count`, clipped to the domain array.
    fn dom_range(&self, start: usize, count: usize) -> std::ops::Range<usize> {
        start.min(self.domains.len())..start.saturating_add(count).min(self.domains.len())
    }

    /// Positions `start..start + count`, clipped to the target array.
    fn tgt_range(&self, start: usize, count: usize) -> std::ops::Range<usize> {
        start.min(self.targets.len())..start.saturating_add(count).min(self.targets.len())
    }

    /// `dom_isset_range`: every non-skipped domain of the range is in `bits`.
    fn dom_all(&self, bits: &Bits, start: usize, count: usize) -> bool {
        self.dom_range(start, count)
            .all(|i| self.dom_skip[i] || bits.get(i))
    }

    /// `dom_isset_2ranges`: every non-skipped domain of the range is in `a` or `b`.
    fn dom_all2(&self, a: &Bits, b: &Bits, start: usize, count: usize) -> bool {
        self.dom_range(start, count)
            .all(|i| self.dom_skip[i] || a.get(i) || b.get(i))
    }

    /// `tgt_isset_range`: every non-skipped target of the range is in `used`.
    fn tgt_all(&self, used: &Bits, start: usize, count: usize) -> bool {
        self.tgt_range(start, count)
            .all(|i| self.tgt_skip[i] || used.get(i))
    }

    /// `is_dom_full`: every non-skipped child of `d` is in `full`.
    fn is_full(&self, full: &Bits, d: &Domain) -> bool {
        self.dom_all(full, d.child_start, d.child_nr)
    }

    /// `get_num_domains`: the bucket count of the jump at `d`: its targets at the fault-domain
    /// level (or if it has no children), else its children; trailing skipped entries dropped,
    /// but never below one.
    fn buckets(&self, d: &Domain) -> usize {
        let (start, mut n, skip) = if d.child_nr == 0 || d.comp.kind == self.fdom {
            (d.tgt_start, d.tgt_nr, &self.tgt_skip)
        } else {
            (d.child_start, d.child_nr, &self.dom_skip)
        };
        while n > 1 && skip.get(start + n - 1).copied().unwrap_or(false) {
            n -= 1;
        }
        n
    }

    /// `_get_target`: counting the non-skipped entries, when the count reaches `i` the entry
    /// at *offset* `i` (not the one counted); `None` when there are fewer.
    fn nth(skip: &[bool], start: usize, count: usize, i: usize) -> Option<usize> {
        let mut seen = 0;
        for k in 0..count {
            if !skip.get(start + k).copied().unwrap_or(true) {
                if seen == i {
                    return Some(start + i);
                }
                seen += 1;
            }
        }
        None
    }

    /// `dom_reset_bit`: clears `pos` in `bits`, and below it as long as a whole layer's range
    /// was set. The range of the next layer grows by `pos`'s own child count per domain, as
    /// DAOS computes it.
    fn reset_bit(&self, pos: usize, bits: &mut Bits) {
        let Some(first) = self.dom(pos) else { return };
        let (mut tree, mut count) = (pos, 1usize);
        while let Some(d) = self.dom(tree) {
            if d.child_nr == 0 {
                bits.clear(tree);
                return;
            }
            if !self.dom_all(bits, tree, count) {
                return;
            }
            for i in self.dom_range(tree, count) {
                bits.clear(i);
            }
            count = count.saturating_mul(first.child_nr);
            tree = d.child_start;
        }
    }

    /// `dom_tgts_are_avaible`: some target of `d` can hold a shard.
    fn has_available(&self, d: &Domain) -> bool {
        self.tgt_range(d.tgt_start, d.tgt_nr)
            .any(|i| self.tgt_avail[i])
    }
}

/// The object-wide bitmaps.
struct Marks {
    dom_used: Bits,
    dom_full: Bits,
    tgts_used: Bits,
}

impl Marks {
    fn new(tree: &Tree<'_>) -> Marks {
        Marks {
            dom_used: Bits::new(tree.domains.len()),
            dom_full: Bits::new(tree.domains.len()),
            tgts_used: Bits::new(tree.targets.len()),
        }
    }
}

/// The bitmaps of one redundancy group.
struct Group {
    used: Bits,
    real: Bits,
}

/// A shard waiting for a spare target (`failed_shard`).
#[derive(Clone, Copy, Debug)]
struct Failed {
    shard: usize,
    fseq: u32,
    status: CompStatus,
    down2up: bool,
    /// Index of its group's bitmaps.
    group: usize,
}

/// `remap_add_one`: keeps the queue sorted by `fseq`, then by shard.
fn remap_insert(queue: &mut Vec<Failed>, f: Failed) {
    let at = queue
        .iter()
        .position(|e| (f.fseq, f.shard) < (e.fseq, e.shard));
    queue.insert(at.unwrap_or(queue.len()), f);
}

/// One object's placement in progress.
struct Layout<'t, 'a> {
    tree: &'t Tree<'a>,
    layout_ver: u32,
    oid: Oid,
    version: u32,
    marks: Marks,
    /// The layout met an UP or DRAIN target (libdaos would extend it).
    extending: bool,
}

impl Layout<'_, '_> {
    /// `get_object_layout`: every shard's first target, then the remap of those that cannot
    /// stay.
    fn build(
        &mut self,
        grp_nr: u32,
        grp_size: u32,
    ) -> Result<Vec<Option<ShardPlace>>, JumpMapError> {
        let tree = self.tree;
        let key = oid_hash(self.layout_ver, self.oid);
        let shard_nr = grp_nr as usize * grp_size as usize;
        let mut shards = Vec::with_capacity(shard_nr);
        let mut queue: Vec<Failed> = Vec::new();
        // Only groups with a failed shard keep their bitmaps, for its remap.
        let mut groups: Vec<Group> = Vec::new();
        for _ in 0..grp_nr {
            let mut group = Group {
                used: Bits::new(tree.domains.len()),
                real: Bits::new(tree.domains.len()),
            };
            let mut failed = false;
            for _ in 0..grp_size {
                let k = shards.len();
                let (t, dom) = self.get_target(key, k, &mut group)?;
                let c = &tree.targets[t];
                let mut place = ShardPlace {
                    target: c.id,
                    rank: c.rank,
                    index: c.index,
                    fseq: c.fseq,
                    rebuilding: false,
                };
                if !tree.tgt_avail[t] {
                    failed = true;
                    let f = Failed {
                        shard: k,
                        fseq: c.fseq,
                        status: c.status,
                        down2up: c.is_down2up(),
                        group: groups.len(),
                    };
                    remap_insert(&mut queue, f);
                } else {
                    group.real.set(dom);
                    place.rebuilding = c.status == CompStatus::Down;
                }
                self.extending |= matches!(c.status, CompStatus::Up | CompStatus::Drain);
                shards.push(Some(place));
            }
            if failed {
                groups.push(group);
            }
        }
        self.remap(key, &mut shards, &mut queue, &mut groups)?;
        Ok(shards)
    }

    /// `obj_remap_shards`: moves each queued shard, lowest `fseq` first, to a spare target
    /// found by a walk with the rebuild key and its group's bitmaps.
    fn remap(
        &mut self,
        key: u64,
        shards: &mut [Option<ShardPlace>],
        queue: &mut Vec<Failed>,
        groups: &mut [Group],
    ) -> Result<(), JumpMapError> {
        let tree = self.tree;
        let rebuild_key_v2 = jm_crc(self.oid.lo, self.oid.hi, JM_REBUILD_SALT);
        // Each retry takes a target out of the running, so a shard needs about one try per
        // failed target at most; the bound is far above that.
        let size = tree.targets.len() as u64 + tree.domains.len() as u64;
        let tries_max = queue.len() as u64 * (8 * size + 64);
        let mut tries = 0u64;
        while let Some(&f) = queue.first() {
            tries += 1;
            if tries > tries_max {
                return Err(JumpMapError::NoProgress {
                    shard: f.shard as u32,
                    steps: tries,
                });
            }
            let rebuild_key = if self.layout_ver <= 1 {
                // crc()'s seed is a u32: the inner CRC loses its high half.
                crc(key, crc(key, f.shard as u32) as u32)
            } else {
                rebuild_key_v2
            };
            let Some(group) = groups.get_mut(f.group) else {
                return Err(JumpMapError::NoProgress {
                    shard: f.shard as u32,
                    steps: tries,
                });
            };
            let (t, dom) = self.get_target(rebuild_key, f.shard, group)?;
            let c = &tree.targets[t];
            self.extending |= matches!(c.status, CompStatus::Up | CompStatus::Drain);
            if !tree.tgt_avail[t] {
                if c.fseq > self.version {
                    // Failed after this map version: a later rebuild handles the shard.
                    shards[f.shard] = None;
                    queue.remove(0);
                    group.real.set(dom);
                } else if c.fseq > f.fseq {
                    // The spare failed after the shard's target: requeue it in that order.
                    let mut later = queue.remove(0);
                    later.fseq = c.fseq;
                    later.status = c.status;
                    remap_insert(queue, later);
                }
                // Otherwise the spare failed first: try the next one (it is now used).
                continue;
            }
            if let Some(place) = shards[f.shard].as_mut() {
                place.target = c.id;
                place.rank = c.rank;
                place.index = c.index;
                place.fseq = f.fseq;
                place.rebuilding |= matches!(f.status, CompStatus::Down | CompStatus::Drain)
                    || f.down2up
                    || c.status == CompStatus::Down;
            }
            queue.remove(0);
            group.real.set(dom);
        }
        Ok(())
    }

    /// `get_target_new`: walks until a target is found, relaxing the group's rules after each
    /// walk that finds none. Returns the target's and its fault domain's positions.
    fn get_target(
        &mut self,
        key: u64,
        shard: usize,
        group: &mut Group,
    ) -> Result<(usize, usize), JumpMapError> {
        let mut steps = 0u64;
        loop {
            if let Some(found) = self.walk(key, shard, &mut group.used, &mut steps)? {
                return Ok(found);
            }
            reset_group(self.tree, &mut self.marks, group);
        }
    }

    /// `__get_target_v1`/`__get_target_v2`: one walk from the root; `None` when every domain
    /// of the group's level is used or full.
    fn walk(
        &mut self,
        key: u64,
        shard: usize,
        grp_used: &mut Bits,
        steps: &mut u64,
    ) -> Result<Option<(usize, usize)>, JumpMapError> {
        let tree = self.tree;
        let marks = &mut self.marks;
        let v1 = self.layout_ver <= 1;
        let shard_word = shard as u64;
        let mut obj_key = if v1 { crc(key, shard as u32) } else { key };
        let mut stack: Vec<usize> = Vec::with_capacity(4);
        let mut curr = 0usize;
        let tick = |steps: &mut u64| {
            *steps += 1;
            if *steps > tree.step_max {
                Err(JumpMapError::NoProgress {
                    shard: shard as u32,
                    steps: *steps,
                })
            } else {
                Ok(())
            }
        };
        loop {
            tick(steps)?;
            let Some(d) = tree.dom(curr) else {
                return Ok(None);
            };
            let buckets = tree.buckets(d);
            if d.comp.kind == tree.fdom {
                // Choose a target inside the fault domain.
                if tree.tgt_all(&marks.tgts_used, d.tgt_start, d.tgt_nr) {
                    match stack.pop() {
                        Some(parent) => curr = parent,
                        None => return Ok(None),
                    }
                    continue;
                }
                let pick_key = if v1 {
                    obj_key = crc(obj_key, 0);
                    obj_key
                } else {
                    jm_crc(obj_key, shard_word, 0)
                };
                let mut sel = d_hash_jump(pick_key, buckets as u32) as usize;
                let mut probes = 0;
                let t = loop {
                    sel %= buckets;
                    let Some(t) = Tree::nth(&tree.tgt_skip, d.tgt_start, d.tgt_nr, sel) else {
                        return Err(JumpMapError::Unsupported {
                            what: "a skipped (NEW or newly UP) target before others of its domain",
                        });
                    };
                    sel += 1;
                    if !marks.tgts_used.get(t) {
                        break t;
                    }
                    probes += 1;
                    if probes >= buckets {
                        return Err(JumpMapError::NoProgress {
                            shard: shard as u32,
                            steps: *steps,
                        });
                    }
                };
                marks.tgts_used.set(t);
                if tree.tgt_all(&marks.tgts_used, d.tgt_start, d.tgt_nr) {
                    marks.dom_full.set(curr);
                    while let Some(parent) = stack.pop() {
                        if tree
                            .dom(parent)
                            .is_some_and(|p| tree.is_full(&marks.dom_full, p))
                        {
                            marks.dom_full.set(parent);
                        }
                    }
                }
                return Ok(Some((t, curr)));
            }
            // Choose a child domain.
            if d.child_nr == 0 {
                return Ok(None);
            }
            let (start, count) = (d.child_start, d.child_nr);
            if tree.is_full(&marks.dom_full, d) {
                let Some(parent) = stack.pop() else {
                    return Ok(None);
                };
                marks.dom_full.set(curr);
                grp_used.set(curr);
                curr = parent;
                continue;
            }
            if tree.dom_all2(&marks.dom_full, grp_used, start, count) {
                let Some(parent) = stack.pop() else {
                    return Ok(None);
                };
                grp_used.set(curr);
                curr = parent;
                continue;
            }
            if tree.dom_all2(&marks.dom_used, grp_used, start, count) {
                // The object used every child: start over at this level, full ones excepted.
                for i in tree.dom_range(start, count) {
                    if !marks.dom_full.get(i) {
                        marks.dom_used.clear(i);
                    }
                }
                curr = stack.pop().unwrap_or(curr);
                continue;
            }
            let mut fail = 0u32;
            let mut v1_key = obj_key;
            let child = loop {
                tick(steps)?;
                let sel = if v1 {
                    let sel = d_hash_jump(v1_key, buckets as u32);
                    v1_key = crc(v1_key, fail);
                    sel
                } else {
                    d_hash_jump(jm_crc(obj_key, shard_word, u64::from(fail)), buckets as u32)
                };
                fail = fail.wrapping_add(1);
                // `_get_dom` gives the child at offset `sel` or none, and DAOS then keeps
                // `sel`: either way the child at offset `sel`.
                let child = start + sel as usize;
                if !marks.dom_used.get(child) && !grp_used.get(child) {
                    break child;
                }
            };
            marks.dom_used.set(child);
            grp_used.set(child);
            stack.push(curr);
            curr = child;
            let id = tree.dom(child).map_or(0, |c| c.comp.id);
            obj_key = if v1 {
                crc(obj_key, id)
            } else {
                jm_crc(obj_key, u64::from(id), JM_CRC_SEED)
            };
        }
    }
}

/// `reset_dom_cur_grp_v1`: after a walk found nothing, clears the group's marks above the
/// fault-domain level, then relaxes at that level, stopping at the first step that frees
/// something:
/// 1. full domains the group has not used become usable again (their targets may be shared);
/// 2. domains where the group got no available target and that still have free targets;
/// 3. domains where the group got no available target and that have available targets;
/// 4. every domain, so two shards of the group may share one (full ones emptied if all are).
fn reset_group(tree: &Tree<'_>, marks: &mut Marks, group: &mut Group) {
    let (mut pos, mut count) = (0usize, 1usize);
    while let Some(d) = tree.dom(pos) {
        // Types order the layers: root 255 > node 2 > rank 1.
        if (d.comp.kind as u8) < tree.fdom as u8 {
            return;
        }
        let range = tree.dom_range(pos, count);
        if d.comp.kind as u8 > tree.fdom as u8 {
            let mut next = 0usize;
            for i in range {
                next = next.saturating_add(tree.dom(i).map_or(0, |c| c.child_nr));
                group.used.clear(i);
                marks.dom_full.clear(i);
            }
            if d.child_nr == 0 {
                return;
            }
            count = next;
            pos = d.child_start;
            continue;
        }
        if !tree.dom_all2(&marks.dom_full, &group.used, pos, count) {
            return;
        }
        let doms = || range.clone().filter_map(|i| tree.dom(i).map(|d| (i, d)));
        // 1.
        if !tree.dom_all(&group.used, pos, count) {
            for (i, d) in doms() {
                if !group.used.get(i) && marks.dom_full.get(i) {
                    reset_full(tree, marks, i, d);
                }
            }
            return;
        }
        // 2.
        let mut reset = false;
        for (i, d) in doms() {
            if !group.real.get(i) && !tree.tgt_all(&marks.tgts_used, d.tgt_start, d.tgt_nr) {
                tree.reset_bit(i, &mut group.used);
                reset = true;
            }
        }
        if reset {
            return;
        }
        // 3.
        for (i, d) in doms() {
            if !group.real.get(i) && tree.has_available(d) {
                reset_full(tree, marks, i, d);
                tree.reset_bit(i, &mut group.used);
                reset = true;
            }
        }
        if reset {
            return;
        }
        // 4.
        let all_full = tree.dom_all(&marks.dom_full, pos, count);
        for (i, d) in doms() {
            if all_full {
                reset_full(tree, marks, i, d);
            }
            tree.reset_bit(i, &mut group.used);
        }
        return;
    }
}

/// `dom_reset_full`: `d` is no longer full, and if every one of its targets is used (skipped
/// ones included), none is.
fn reset_full(tree: &Tree<'_>, marks: &mut Marks, pos: usize, d: &Domain) {
    tree.reset_bit(pos, &mut marks.dom_full);
    let targets = tree.tgt_range(d.tgt_start, d.tgt_nr);
    if targets.clone().all(|i| marks.tgts_used.get(i)) {
        for i in targets {
            marks.tgts_used.clear(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jump_map::ErrorKind;

    /// A target: status, fseq, in_ver, flags.
    type T = (CompStatus, u32, u32, u32);

    const UPIN: T = (CompStatus::UpIn, 1, 1, 0);

    /// A pool buffer of `nodes` (each a list of ranks, each a list of targets), every domain at
    /// version `version`; ids as `daos_cart::pool::write_pool_buf` assigns them.
    fn map(nodes: &[Vec<Vec<T>>], version: u32) -> PoolBufMap {
        let ranks: Vec<&Vec<T>> = nodes.iter().flatten().collect();
        let target_nr: usize = ranks.iter().map(|r| r.len()).sum();
        let nr = nodes.len() + ranks.len() + target_nr;
        let mut b = Vec::new();
        for w in [2, 0, 0, nr, nodes.len(), ranks.len(), target_nr, 0] {
            b.extend_from_slice(&(w as u32).to_le_bytes());
        }
        let mut comp = |kind: u8, index: usize, id: usize, rank: usize, t: T, nr: usize| {
            b.extend_from_slice(&[kind, t.0 as u8, index as u8, 0]);
            for w in [id as u32, rank as u32, version, t.1, t.2, t.3, nr as u32] {
                b.extend_from_slice(&w.to_le_bytes());
            }
        };
        let domain = (CompStatus::UpIn, 1, version, 0);
        for (i, node) in nodes.iter().enumerate() {
            comp(2, i, i + 1, 0, domain, node.len());
        }
        for (i, r) in ranks.iter().enumerate() {
            comp(1, i, i, i, domain, r.len());
        }
        let mut id = 0;
        for (rank, r) in ranks.iter().enumerate() {
            for (j, t) in r.iter().enumerate() {
                comp(0, j, id, rank, *t, 1);
                id += 1;
            }
        }
        PoolBufMap::parse(&b, version).expect("test map")
    }

    fn md(class_id: u32, lo: u64, version: u32) -> ObjectMd {
        let oid = Oid::new(0, (class_id >> 24) as u8, class_id & 0xFFFF, 0, lo);
        ObjectMd {
            oid,
            version,
            fdom_lvl: 0,
        }
    }

    fn targets(layout: &ObjLayout) -> Vec<Option<u32>> {
        layout.shards.iter().map(|s| s.map(|p| p.target)).collect()
    }

    #[test]
    fn requests_libdaos_refuses_are_refused_alike() {
        let m = map(&[vec![vec![UPIN; 2]], vec![vec![UPIN; 2]]], 1);
        let rw = OpenMode::ReadWrite;
        let err = |md: ObjectMd, lv: u32| place(&m, &md, lv, rw).expect_err("refused");
        assert_eq!(
            err(md(0x0100_0001, 1, 1), 0),
            JumpMapError::LayoutVersion(0)
        );
        assert_eq!(err(md(0x0100_0001, 1, 1), 3).kind(), ErrorKind::Unsupported);
        let bad_level = ObjectMd {
            fdom_lvl: 3,
            ..md(0x0100_0001, 1, 1)
        };
        assert_eq!(err(bad_level, 2), JumpMapError::FdomLevel { level: 3 });
        let unknown = [0x0100_0000, 0x0D00_0001, 0x0700_0001, 0x2B00_0001];
        for class_id in unknown {
            assert_eq!(
                err(md(class_id, 1, 1), 2).kind(),
                ErrorKind::Invalid,
                "{class_id:#x}"
            );
        }
        assert_eq!(
            err(md(0x0900_0001, 1, 1), 2),
            JumpMapError::GroupTooWide {
                grp_size: 3,
                domain_nr: 2
            }
        );
        assert_eq!(
            err(md(0x0800_0003, 1, 1), 2),
            JumpMapError::TooManyGroups {
                grp_nr: 3,
                grp_max: 2
            }
        );
        // At rank level the same class fits: one rank per node here, so still two domains.
        let at_rank = ObjectMd {
            fdom_lvl: 1,
            ..md(0x0800_0002, 1, 1)
        };
        assert_eq!(place(&m, &at_rank, 2, rw).map(|l| l.shards.len()), Ok(4));
        // SX: every target (4 groups of 1); RP_2GX: 2 groups of 2.
        let sx = place(&m, &md(0x0100_FFFF, 1, 1), 2, rw).expect("SX");
        assert_eq!((sx.grp_size, sx.grp_nr), (1, 4));
        assert_eq!(sx.group(3).len(), 1);
        assert!(sx.group(4).is_empty() && sx.group(usize::MAX).is_empty());
        let gx = place(&m, &md(0x0800_FFFF, 1, 1), 2, rw).expect("RP_2GX");
        assert_eq!((gx.grp_size, gx.grp_nr), (2, 2));
    }

    #[test]
    fn target_states_decide_who_stays_and_who_moves() {
        // One node, one rank, two targets; the map at version 5, the object placed at 2.
        let place_on = |first: T, second: T, version: u32, mode: OpenMode| {
            let m = map(&[vec![vec![first, second]]], 5);
            // An S1 object whose shard hashes to the first target (found by search).
            let lo = (0..1000u64)
                .find(|lo| {
                    let healthy = map(&[vec![vec![UPIN, UPIN]]], 5);
                    let l = place(&healthy, &md(0x0100_0001, *lo, version), 2, mode);
                    l.is_ok_and(|l| l.shards[0].is_some_and(|s| s.target == 0))
                })
                .expect("an object on target 0");
            place(&m, &md(0x0100_0001, lo, version), 2, mode)
        };
        let rw = OpenMode::ReadWrite;
        let ro = OpenMode::ReadOnly;
        let down_at_1 = (CompStatus::Down, 1, 1, 0);
        let moved = place_on(down_at_1, UPIN, 2, rw).expect("remapped");
        let s = moved.shards[0].expect("placed");
        assert_eq!((s.target, s.fseq, s.rebuilding), (1, 1, true));
        // Read-only: the DOWN target keeps the shard, rebuilding.
        let kept = place_on(down_at_1, UPIN, 2, ro).expect("kept");
        let s = kept.shards[0].expect("placed");
        assert_eq!((s.target, s.rebuilding), (0, true));
        // Failed after the layout's version: still available, rebuilding (raw status DOWN).
        let later = place_on((CompStatus::Down, 4, 1, 0), UPIN, 2, rw).expect("kept");
        let s = later.shards[0].expect("placed");
        assert_eq!((s.target, s.rebuilding), (0, true));
        // DOWNOUT: moved, not rebuilding, with the failed target's fseq.
        let out = place_on((CompStatus::DownOut, 2, 1, 0), UPIN, 2, rw).expect("remapped");
        let s = out.shards[0].expect("placed");
        assert_eq!((s.target, s.fseq, s.rebuilding), (1, 2, false));
        // The only spare failed after the layout's version: the shard is left empty.
        let empty = place_on(down_at_1, (CompStatus::DownOut, 4, 1, 0), 2, rw).expect("layout");
        assert_eq!(targets(&empty), [None]);
        // The spare failed before the shard's target: the shard's target is requeued at the
        // spare's fseq... with no other spare it is retried until the search gives up.
        let none = place_on(
            (CompStatus::DownOut, 2, 1, 0),
            (CompStatus::DownOut, 1, 1, 0),
            2,
            rw,
        );
        assert_eq!(none.map_err(|e| e.kind()), Err(ErrorKind::NoProgress));
    }

    #[test]
    fn extension_and_skipped_targets_are_reported_not_guessed() {
        let rw = OpenMode::ReadWrite;
        let ro = OpenMode::ReadOnly;
        let up_new = (CompStatus::Up, 1, 2, 0);
        let drain = (CompStatus::Drain, 1, 1, 0);
        // A map adding a target (UP, in_ver 2): read-write opens would extend the layout.
        let adding = map(&[vec![vec![UPIN, UPIN, up_new]]], 2);
        assert!(adding.is_adding());
        let err = place(&adding, &md(0x0100_0001, 7, 2), 2, rw).expect_err("extension");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        // Read-only opens never extend: the trailing UP target is invisible to the hash.
        let layout = place(&adding, &md(0x0100_0002, 7, 2), 2, ro).expect("read-only");
        assert_eq!(targets(&layout).len(), 2);
        assert!(layout.shards.iter().flatten().all(|s| s.target != 2));
        // SX counts the UP target among its groups, so its third shard finds no target: libdaos
        // would search forever.
        let err = place(&adding, &md(0x0100_FFFF, 7, 2), 2, ro).expect_err("no third target");
        assert_eq!(err.kind(), ErrorKind::NoProgress);
        // A DRAIN target in the layout: extension again for read-write, fine read-only.
        let draining = map(&[vec![vec![drain, UPIN]]], 1);
        let err = place(&draining, &md(0x0100_0002, 7, 1), 2, rw).expect_err("extension");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let layout = place(&draining, &md(0x0100_0002, 7, 1), 2, ro).expect("read-only");
        assert_eq!(targets(&layout).len(), 2);
        // A NEW target before others of its rank: libdaos's pick is undefined there.
        let new = (CompStatus::New, 1, 1, 0);
        let holey = map(&[vec![vec![new, UPIN, UPIN, UPIN]]], 1);
        let results: Vec<_> = (0..64)
            .map(|lo| place(&holey, &md(0x0100_0001, lo, 1), 2, rw))
            .collect();
        assert!(results.iter().all(|r| match r {
            Ok(l) => l.shards.iter().flatten().all(|s| s.target != 0),
            Err(e) => e.kind() == ErrorKind::Unsupported,
        }));
        assert!(results.iter().any(|r| r.is_err()));
        // Every target NEW: libdaos would walk forever; this stops.
        let all_new = map(&[vec![vec![new; 3]], vec![vec![new; 2]]], 1);
        let err = place(&all_new, &md(0x0100_0001, 7, 1), 2, rw).expect_err("no target");
        assert_eq!(err.kind(), ErrorKind::NoProgress);
    }
}
