//! A DAOS `pool_buf` and the flat tree libdaos builds from it (`pool_buf_parse`,
//! `pool_tree_sane`, `pool_map_initialise`, `jump_map_create`).
//!
//! Layout of the buffer (little endian): a header of eight `u32` (`version, reserved, csum, nr,
//! domain_nr, node_nr, target_nr, padding`; version and csum are not checked, as in DAOS), then
//! `nr` components of 32 bytes (`u8 type, u8 status, u8 index, u8 pad, u32 id, u32 rank, u32
//! ver, u32 fseq, u32 in_ver, u32 flags, u32 nr`). "node" in the header means rank components,
//! "domain" the node components above them.
//!
//! The tree: position 0 is an implicit root (type 255, UPIN, id 0) over every node; positions
//! `1..` are the domains in buffer order; the targets keep their buffer order. Each node takes
//! the next `nr` ranks, each rank the next `nr` targets, so every domain owns a contiguous run
//! of targets. Placement works on these positions, never on sorted ids.
//!
//! Accepted shape, stricter than `pool_buf_parse` where DAOS's own tree would be unusable for
//! placement: `domain_nr` node components (at least one: `jump_map_create` needs them), then
//! `node_nr` ranks, then `target_nr` targets; each node and rank has at least one child, and the
//! child counts add up exactly; statuses are DAOS's six; domain versions are at most the map
//! version; ids are unique per type (DAOS's sorted lookups refuse duplicates).
//! Performance domains (`GRP` components above the nodes) are refused as unsupported.

use super::JumpMapError;

/// Bytes of a `pool_buf` header.
pub const HEADER_LEN: usize = 32;
/// Bytes of one `pool_component`.
pub const COMPONENT_LEN: usize = 32;

/// `pool_comp_type_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum CompType {
    Target = 0,
    Rank = 1,
    Node = 2,
    /// A performance domain (refused by [`PoolBufMap::parse`]).
    Grp = 3,
    /// The implicit root above the nodes.
    Root = 255,
}

impl CompType {
    pub fn from_u8(v: u8) -> Option<CompType> {
        Some(match v {
            0 => CompType::Target,
            1 => CompType::Rank,
            2 => CompType::Node,
            3 => CompType::Grp,
            255 => CompType::Root,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CompType::Target => "target",
            CompType::Rank => "rank",
            CompType::Node => "node",
            CompType::Grp => "performance domain",
            CompType::Root => "root",
        }
    }
}

/// `pool_comp_state_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CompStatus {
    /// Added to the map, not yet in use.
    New = 1,
    /// Being integrated (reintegration or extension).
    Up = 2,
    /// In service.
    UpIn = 4,
    /// Failed; its data is being rebuilt elsewhere.
    Down = 8,
    /// Failed and rebuilt elsewhere.
    DownOut = 16,
    /// Being drained.
    Drain = 32,
}

impl CompStatus {
    pub fn from_u8(v: u8) -> Option<CompStatus> {
        Some(match v {
            1 => CompStatus::New,
            2 => CompStatus::Up,
            4 => CompStatus::UpIn,
            8 => CompStatus::Down,
            16 => CompStatus::DownOut,
            32 => CompStatus::Drain,
            _ => return None,
        })
    }
}

/// `PO_COMPF_DOWN2UP`: an UP component that was DOWN (exclusion and reintegration with delayed
/// rebuild).
pub const FLAG_DOWN2UP: u32 = 2;

/// One `pool_component`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    pub kind: CompType,
    pub status: CompStatus,
    /// A target's index within its engine (its tag is `index + 2`).
    pub index: u8,
    pub id: u32,
    pub rank: u32,
    pub ver: u32,
    /// The map version at which it failed (1 as daos-rs writes it).
    pub fseq: u32,
    /// The map version at which it was added.
    pub in_ver: u32,
    pub flags: u32,
    /// Children of a domain (as in the buffer).
    pub nr: u32,
}

impl Component {
    const ROOT: Component = Component {
        kind: CompType::Root,
        status: CompStatus::UpIn,
        index: 0,
        id: 0,
        rank: 0,
        ver: 0,
        fseq: 0,
        in_ver: 0,
        flags: 0,
        nr: 0,
    };

    fn read(index: usize, b: &[u8; COMPONENT_LEN]) -> Result<Component, JumpMapError> {
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let kind = CompType::from_u8(b[0]).ok_or(JumpMapError::ComponentType {
            index,
            found: b[0],
            expected: "node, rank or target",
        })?;
        let status = CompStatus::from_u8(b[1]).ok_or(JumpMapError::ComponentStatus {
            index,
            status: b[1],
        })?;
        Ok(Component {
            kind,
            status,
            index: b[2],
            id: word(4),
            rank: word(8),
            ver: word(12),
            fseq: word(16),
            in_ver: word(20),
            flags: word(24),
            nr: word(28),
        })
    }

    /// Status UP and flag [`FLAG_DOWN2UP`].
    pub fn is_down2up(&self) -> bool {
        self.status == CompStatus::Up && self.flags & FLAG_DOWN2UP != 0
    }
}

/// A domain of the tree, by position: its children are `child_start..child_start + child_nr`
/// (none for ranks), its targets `tgt_start..tgt_start + tgt_nr`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Domain {
    pub comp: Component,
    pub child_start: usize,
    pub child_nr: usize,
    pub tgt_start: usize,
    pub tgt_nr: usize,
}

/// `pl_map_query`'s answer: fault domains at the asked level and UPIN targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapAttr {
    pub domain_nr: u32,
    pub target_nr: u32,
}

/// A pool map as a DAOS client builds it from a `pool_buf` and a map version.
#[derive(Clone, Debug)]
pub struct PoolBufMap {
    version: u32,
    /// The root, the nodes, the ranks.
    domains: Vec<Domain>,
    targets: Vec<Component>,
    node_nr: usize,
    rank_nr: usize,
}

impl PoolBufMap {
    /// Parses `bytes`, a whole `pool_buf`, as the map of `version` (`pool_map_create(buf,
    /// version)`). Refuses anything DAOS would refuse or could not place on; see the module doc.
    pub fn parse(bytes: &[u8], version: u32) -> Result<PoolBufMap, JumpMapError> {
        let header: &[u8; HEADER_LEN] = bytes.first_chunk().ok_or(JumpMapError::Length {
            len: bytes.len(),
            need: HEADER_LEN as u64,
        })?;
        let word = |i: usize| {
            let at = 4 * i;
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let (nr, domain_nr, node_nr, target_nr) = (word(3), word(4), word(5), word(6));
        let sum = u64::from(domain_nr) + u64::from(node_nr) + u64::from(target_nr);
        if target_nr == 0 || node_nr == 0 || sum != u64::from(nr) {
            return Err(JumpMapError::Counts {
                nr,
                domain_nr,
                node_nr,
                target_nr,
            });
        }
        let need = HEADER_LEN as u64 + COMPONENT_LEN as u64 * u64::from(nr);
        if bytes.len() as u64 != need {
            return Err(JumpMapError::Length {
                len: bytes.len(),
                need,
            });
        }
        if domain_nr == 0 {
            return Err(JumpMapError::NoNodes);
        }
        // The length check bounds every count by the input's size.
        let (nodes, ranks, targets) = (domain_nr as usize, node_nr as usize, target_nr as usize);
        let mut comps = Vec::with_capacity(nr as usize);
        for (index, chunk) in bytes[HEADER_LEN..].chunks_exact(COMPONENT_LEN).enumerate() {
            let raw: &[u8; COMPONENT_LEN] = chunk.first_chunk().ok_or(JumpMapError::Length {
                len: bytes.len(),
                need,
            })?;
            let c = Component::read(index, raw)?;
            let (expected, want) = if index < nodes {
                ("node", CompType::Node)
            } else if index < nodes + ranks {
                ("rank", CompType::Rank)
            } else {
                ("target", CompType::Target)
            };
            if c.kind == CompType::Grp && index < nodes {
                return Err(JumpMapError::Unsupported {
                    what: "a pool map with performance domains (GRP components)",
                });
            }
            if c.kind != want {
                return Err(JumpMapError::ComponentType {
                    index,
                    found: c.kind as u8,
                    expected,
                });
            }
            if c.kind != CompType::Target && c.ver > version {
                return Err(JumpMapError::ComponentVersion {
                    index,
                    ver: c.ver,
                    version,
                });
            }
            comps.push(c);
        }
        check_children(&comps[..nodes], 0, ranks, "node", "rank")?;
        check_children(
            &comps[nodes..nodes + ranks],
            nodes,
            targets,
            "rank",
            "target",
        )?;
        check_unique(&comps[..nodes], "node")?;
        check_unique(&comps[nodes..nodes + ranks], "rank")?;
        check_unique(&comps[nodes + ranks..], "target")?;

        // Positions: root 0, nodes 1..=nodes, ranks after them.
        let mut domains = Vec::with_capacity(1 + nodes + ranks);
        domains.push(Domain {
            comp: Component {
                nr: domain_nr,
                ..Component::ROOT
            },
            child_start: 1,
            child_nr: nodes,
            tgt_start: 0,
            tgt_nr: targets,
        });
        let (mut next_rank, mut next_target) = (1 + nodes, 0);
        for c in &comps[..nodes] {
            domains.push(Domain {
                comp: *c,
                child_start: next_rank,
                child_nr: c.nr as usize,
                tgt_start: 0,
                tgt_nr: 0,
            });
            next_rank += c.nr as usize;
        }
        for c in &comps[nodes..nodes + ranks] {
            domains.push(Domain {
                comp: *c,
                child_start: 0,
                child_nr: 0,
                tgt_start: next_target,
                tgt_nr: c.nr as usize,
            });
            next_target += c.nr as usize;
        }
        for n in 1..=nodes {
            let (start, count) = (domains[n].child_start, domains[n].child_nr);
            let children = &domains[start..start + count];
            let tgt_start = children.first().map_or(0, |r| r.tgt_start);
            let tgt_nr = children.iter().map(|r| r.tgt_nr).sum();
            domains[n].tgt_start = tgt_start;
            domains[n].tgt_nr = tgt_nr;
        }
        Ok(PoolBufMap {
            version,
            domains,
            targets: comps.split_off(nodes + ranks),
            node_nr: nodes,
            rank_nr: ranks,
        })
    }

    /// The map version it was parsed as.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The targets, in buffer order (placement's target positions).
    pub fn targets(&self) -> &[Component] {
        &self.targets
    }

    /// The node components, in buffer order.
    pub fn nodes(&self) -> impl Iterator<Item = &Component> + '_ {
        self.domains[1..=self.node_nr].iter().map(|d| &d.comp)
    }

    /// The rank components, in buffer order.
    pub fn ranks(&self) -> impl Iterator<Item = &Component> + '_ {
        self.domains[1 + self.node_nr..].iter().map(|d| &d.comp)
    }

    /// The number of components of type `kind` (`pool_map_find_domain(kind, ALL)`).
    pub fn count(&self, kind: CompType) -> u32 {
        let n = match kind {
            CompType::Root => 1,
            CompType::Node => self.node_nr,
            CompType::Rank => self.rank_nr,
            CompType::Target => self.targets.len(),
            CompType::Grp => 0,
        };
        n as u32
    }

    /// `pl_map_query` on the client's jump map (redundant domain NODE): the number of domains
    /// at `level` (a `pool_comp_type_t` as a container's `redun_lvl`; 0, negative or above 254
    /// mean node) and the number of targets whose status is exactly UPIN.
    pub fn query(&self, level: i32) -> MapAttr {
        let domain_nr = if level <= 0 || level > 254 || level == CompType::Node as i32 {
            self.count(CompType::Node)
        } else if level == CompType::Rank as i32 {
            self.count(CompType::Rank)
        } else {
            0
        };
        let target_nr = self
            .targets
            .iter()
            .filter(|t| t.status == CompStatus::UpIn)
            .count();
        MapAttr {
            domain_nr,
            target_nr: target_nr as u32,
        }
    }

    /// `is_pool_map_adding`: some target is UP with an `in_ver` other than `u32::MAX`.
    pub fn is_adding(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.status == CompStatus::Up && t.in_ver != u32::MAX)
    }

    pub(super) fn domains(&self) -> &[Domain] {
        &self.domains
    }
}

/// Each of `parents` has at least one child, and their children are exactly `have`.
fn check_children(
    parents: &[Component],
    first_index: usize,
    have: usize,
    kind: &'static str,
    child_kind: &'static str,
) -> Result<(), JumpMapError> {
    if let Some(i) = parents.iter().position(|c| c.nr == 0) {
        return Err(JumpMapError::NoChildren {
            index: first_index + i,
            kind,
        });
    }
    let sum: u64 = parents.iter().map(|c| u64::from(c.nr)).sum();
    if sum != have as u64 {
        return Err(JumpMapError::ChildSum {
            kind,
            sum,
            have: have as u32,
            child_kind,
        });
    }
    Ok(())
}

/// No two of `comps` share an id.
fn check_unique(comps: &[Component], kind: &'static str) -> Result<(), JumpMapError> {
    let mut ids: Vec<u32> = comps.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    match ids.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(JumpMapError::DuplicateId { kind, id: w[0] }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jump_map::ErrorKind;

    /// A buffer as `daos_cart::pool::write_pool_buf` lays it out: nodes, ranks grouped by node,
    /// targets; each component `(type, status, index, id, rank, ver, fseq, in_ver, flags, nr)`.
    fn buffer(comps: &[[u32; 10]], domain_nr: u32, node_nr: u32, target_nr: u32) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [
            2,
            0,
            0,
            comps.len() as u32,
            domain_nr,
            node_nr,
            target_nr,
            0,
        ] {
            b.extend_from_slice(&u32::to_le_bytes(w));
        }
        for c in comps {
            b.extend_from_slice(&[c[0] as u8, c[1] as u8, c[2] as u8, 0]);
            for w in &c[3..] {
                b.extend_from_slice(&w.to_le_bytes());
            }
        }
        b
    }

    /// Two nodes: node 1 has ranks 0 and 1, node 2 rank 2; 2, 1 and 3 targets, version 3.
    fn sample() -> (Vec<[u32; 10]>, u32, u32, u32) {
        let v = 3;
        let mut comps = vec![
            [2, 4, 0, 1, 0, v, 1, v, 0, 2],
            [2, 4, 1, 2, 0, v, 1, v, 0, 1],
        ];
        for (i, (rank, n)) in [(0, 2), (1, 1), (2, 3)].into_iter().enumerate() {
            comps.push([1, 4, i as u32, rank, rank, v, 1, v, 0, n]);
        }
        let mut id = 0;
        for (rank, n) in [(0, 2), (1, 1), (2, 3)] {
            for j in 0..n {
                comps.push([0, 4, j, id, rank, v, 1, v, 0, 1]);
                id += 1;
            }
        }
        (comps, 2, 3, 6)
    }

    fn parse(
        comps: &[[u32; 10]],
        counts: (u32, u32, u32),
        version: u32,
    ) -> Result<PoolBufMap, JumpMapError> {
        PoolBufMap::parse(&buffer(comps, counts.0, counts.1, counts.2), version)
    }

    #[test]
    fn a_buffer_becomes_daos_flat_tree() {
        let (comps, d, n, t) = sample();
        let map = parse(&comps, (d, n, t), 3).expect("valid");
        assert_eq!(map.version(), 3);
        let domains = map.domains();
        assert_eq!(domains.len(), 6);
        let shape: Vec<_> = domains
            .iter()
            .map(|d| {
                (
                    d.comp.kind,
                    d.child_start,
                    d.child_nr,
                    d.tgt_start,
                    d.tgt_nr,
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (CompType::Root, 1, 2, 0, 6),
                (CompType::Node, 3, 2, 0, 3),
                (CompType::Node, 5, 1, 3, 3),
                (CompType::Rank, 0, 0, 0, 2),
                (CompType::Rank, 0, 0, 2, 1),
                (CompType::Rank, 0, 0, 3, 3),
            ]
        );
        assert_eq!(map.nodes().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(map.ranks().map(|c| c.id).collect::<Vec<_>>(), [0, 1, 2]);
        let ranks: Vec<u32> = map.targets().iter().map(|t| t.rank).collect();
        assert_eq!(ranks, [0, 0, 1, 2, 2, 2]);
        assert_eq!(
            map.query(0),
            MapAttr {
                domain_nr: 2,
                target_nr: 6
            }
        );
        assert_eq!(map.query(1).domain_nr, 3);
        assert_eq!(map.query(255).domain_nr, 2);
        assert_eq!(map.query(3).domain_nr, 0);
        assert!(!map.is_adding());
    }

    #[test]
    fn every_truncation_and_extension_is_refused_without_panic() {
        let (comps, d, n, t) = sample();
        let whole = buffer(&comps, d, n, t);
        for len in 0..whole.len() {
            let err = PoolBufMap::parse(&whole[..len], 3).expect_err("truncated");
            assert_eq!(err.kind(), ErrorKind::BadPoolBuf, "{len}: {err}");
        }
        let mut longer = whole.clone();
        for _ in 0..40 {
            longer.push(0);
            let err = PoolBufMap::parse(&longer, 3).expect_err("trailing bytes");
            assert!(matches!(err, JumpMapError::Length { .. }), "{err}");
        }
    }

    #[test]
    fn bad_counts_are_refused() {
        let (comps, d, n, t) = sample();
        for (d, n, t) in [(d, n, 0), (d, 0, t), (d, n + 1, t), (d + 1, n, t - 1 + 2)] {
            let err = parse(&comps, (d, n, t), 3).expect_err("bad counts");
            assert!(matches!(err, JumpMapError::Counts { .. }), "{err}");
        }
        // Huge counts with a short buffer: refused by length, nothing allocated for them.
        let mut b = buffer(&comps, d, n, t);
        b[12..28].copy_from_slice(&[
            0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 1, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff,
        ]);
        let err = PoolBufMap::parse(&b, 3).expect_err("huge nr");
        assert!(
            matches!(err, JumpMapError::Length { need, .. } if need == 32 + 32 * u64::from(u32::MAX)),
            "{err}"
        );
        // No nodes: ranks straight under the root, which clients cannot place on.
        let ranks_only: Vec<[u32; 10]> = comps[2..].to_vec();
        let err = parse(&ranks_only, (0, n, t), 3).expect_err("no nodes");
        assert_eq!(err, JumpMapError::NoNodes);
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn bad_components_are_refused() {
        let (comps, d, n, t) = sample();
        let counts = (d, n, t);
        let with = |i: usize, field: usize, value: u32| {
            let mut c = comps.clone();
            c[i][field] = value;
            parse(&c, counts, 3).expect_err("bad component")
        };
        // Types: a rank where a node belongs, a target among the ranks, the root, unknown.
        assert!(matches!(
            with(0, 0, 1),
            JumpMapError::ComponentType {
                index: 0,
                found: 1,
                ..
            }
        ));
        assert!(matches!(
            with(3, 0, 0),
            JumpMapError::ComponentType { index: 3, .. }
        ));
        assert!(matches!(
            with(7, 0, 2),
            JumpMapError::ComponentType { index: 7, .. }
        ));
        assert!(matches!(
            with(1, 0, 255),
            JumpMapError::ComponentType { .. }
        ));
        assert!(matches!(with(1, 0, 9), JumpMapError::ComponentType { .. }));
        assert_eq!(with(0, 0, 3).kind(), ErrorKind::Unsupported);
        // Statuses are DAOS's six single bits.
        for status in [0, 3, 6, 64, 255] {
            assert!(matches!(
                with(6, 1, status),
                JumpMapError::ComponentStatus { index: 6, .. }
            ));
        }
        // Children: none, or not adding up.
        assert!(matches!(
            with(1, 9, 0),
            JumpMapError::NoChildren { index: 1, .. }
        ));
        assert!(matches!(
            with(4, 9, 0),
            JumpMapError::NoChildren { index: 4, .. }
        ));
        assert!(matches!(with(0, 9, 3), JumpMapError::ChildSum { .. }));
        assert!(matches!(
            with(0, 9, u32::MAX),
            JumpMapError::ChildSum { .. }
        ));
        assert!(matches!(with(2, 9, 5), JumpMapError::ChildSum { .. }));
        // Domain versions newer than the map (targets are not checked, as in DAOS).
        assert!(matches!(
            with(2, 5, 4),
            JumpMapError::ComponentVersion {
                index: 2,
                ver: 4,
                ..
            }
        ));
        parse(
            &{
                let mut c = comps.clone();
                c[6][5] = 9;
                c
            },
            counts,
            3,
        )
        .expect("a target's version is not checked");
        // Ids unique per type.
        assert_eq!(
            with(1, 3, 1),
            JumpMapError::DuplicateId {
                kind: "node",
                id: 1
            }
        );
        assert_eq!(
            with(3, 3, 0),
            JumpMapError::DuplicateId {
                kind: "rank",
                id: 0
            }
        );
        assert_eq!(
            with(10, 3, 2),
            JumpMapError::DuplicateId {
                kind: "target",
                id: 2
            }
        );
    }

    #[test]
    fn random_corruptions_never_panic() {
        let (comps, d, n, t) = sample();
        let whole = buffer(&comps, d, n, t);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut b = whole.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % b.len() as u64) as usize;
                b[at] = next() as u8;
            }
            parsed += usize::from(PoolBufMap::parse(&b, 3).is_ok());
        }
        // Many corruptions hit fields the parser does not check (ids, ranks, fseq, flags).
        assert!(parsed > 0);
    }
}
