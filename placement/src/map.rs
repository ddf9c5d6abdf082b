//! The pool map: fault domains (nodes) holding ranks holding targets, each target in one of
//! DAOS's states, and a version every change bumps. Domains and ranks keep the order they
//! joined in; an extension appends, so placement moves little.

use std::fmt;

/// DAOS's target states (`pool_map.h`; the names `dmg pool query-targets` prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TargetState {
    Unknown = 0,
    New = 1,
    Up = 2,
    UpIn = 4,
    Down = 8,
    DownOut = 16,
    Drain = 32,
}

impl TargetState {
    pub fn name(self) -> &'static str {
        match self {
            TargetState::Unknown => "unknown",
            TargetState::New => "new",
            TargetState::Up => "up",
            TargetState::UpIn => "up_in",
            TargetState::Down => "down",
            TargetState::DownOut => "down_out",
            TargetState::Drain => "drain",
        }
    }

    /// May hold shards in a layout (DAOS: a draining target still serves until rebuilt away).
    pub fn placeable(self) -> bool {
        matches!(
            self,
            TargetState::Up | TargetState::UpIn | TargetState::Drain
        )
    }
}

/// A change of target states (DAOS's `pool_comp_state` transitions, `update_one_tgt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MapOp {
    /// UP/UPIN/DRAIN -> DOWN (others unchanged).
    Exclude,
    /// UPIN -> DRAIN; NEW or UP are busy.
    Drain,
    /// DOWN/DOWNOUT/DRAIN -> UP (a drain under way is called off: the target is filled and
    /// checked by the rebuild like any reintegrated one; DAOS answers DER_BUSY, which left a
    /// target drained out that a script meant back); NEW is busy.
    Reint,
    /// UP -> UPIN, DOWN/DRAIN -> DOWNOUT (a rebuild finished).
    FinishRebuild,
}

impl MapOp {
    /// What `dmg` calls it.
    pub fn name(self) -> &'static str {
        match self {
            MapOp::Exclude => "exclude",
            MapOp::Drain => "drain",
            MapOp::Reint => "reintegrate",
            MapOp::FinishRebuild => "finish rebuild",
        }
    }

    /// The state `op` takes target `target` from `s` to, or why it cannot.
    pub fn transition(self, target: TargetId, s: TargetState) -> Result<TargetState, MapError> {
        use TargetState::*;
        let busy = |action| MapError::Busy {
            target,
            state: s,
            action,
        };
        Ok(match (self, s) {
            (MapOp::Exclude, Up | UpIn | Drain) => Down,
            (MapOp::Drain, UpIn) => Drain,
            (MapOp::Drain, New | Up) => return Err(busy("drained")),
            (MapOp::Reint, Down | DownOut | Drain) => Up,
            (MapOp::Reint, New) => return Err(busy("reintegrated")),
            (MapOp::FinishRebuild, Up) => UpIn,
            (MapOp::FinishRebuild, Down | Drain) => DownOut,
            (_, other) => other,
        })
    }
}

/// A target: its rank and index on that rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId {
    pub rank: u32,
    pub idx: u32,
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank {} target {}", self.rank, self.idx)
    }
}

/// The fault-domain level a group's shards must differ at (`rd_lvl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdLvl {
    Rank,
    Node,
}

impl RdLvl {
    pub fn name(self) -> &'static str {
        match self {
            RdLvl::Rank => "rank",
            RdLvl::Node => "node",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rank {
    pub rank: u32,
    pub targets: Vec<TargetState>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its fault domain (`/rack0/h1`).
    pub domain: String,
    pub ranks: Vec<Rank>,
}

/// Why a map change is refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("rank {0} is not in the pool map")]
    NoRank(u32),
    #[error("{target} is {}: it cannot be {action} (DER_BUSY)", .state.name())]
    Busy {
        target: TargetId,
        state: TargetState,
        action: &'static str,
    },
    #[error(
        "rank {rank} is not excluded or drained: reintegrate only brings back ranks whose targets are down, down_out or draining"
    )]
    NotExcluded { rank: u32 },
    #[error("rank {0} is already in the pool map")]
    Duplicate(u32),
    #[error("rank {rank} has no target {idx} (it has {targets}: 0-{})", .targets.saturating_sub(1))]
    NoTarget { rank: u32, idx: u32, targets: u32 },
}

/// The pool map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolMap {
    pub version: u32,
    pub nodes: Vec<Node>,
}

impl PoolMap {
    /// A map of `ranks` (fault domain, rank, targets), every target UPIN, version 1.
    pub fn new(ranks: &[(&str, u32, u32)]) -> PoolMap {
        let mut map = PoolMap {
            version: 1,
            nodes: Vec::new(),
        };
        for (domain, rank, targets) in ranks {
            map.push(domain, *rank, *targets, TargetState::UpIn);
        }
        map
    }

    fn push(&mut self, domain: &str, rank: u32, targets: u32, state: TargetState) {
        let r = Rank {
            rank,
            targets: vec![state; targets as usize],
        };
        match self.nodes.iter_mut().find(|n| n.domain == domain) {
            Some(n) => n.ranks.push(r),
            None => self.nodes.push(Node {
                domain: domain.into(),
                ranks: vec![r],
            }),
        }
    }

    fn rank_mut(&mut self, rank: u32) -> Result<&mut Rank, MapError> {
        self.nodes
            .iter_mut()
            .flat_map(|n| n.ranks.iter_mut())
            .find(|r| r.rank == rank)
            .ok_or(MapError::NoRank(rank))
    }

    pub fn state(&self, t: TargetId) -> Option<TargetState> {
        self.nodes
            .iter()
            .flat_map(|n| &n.ranks)
            .find(|r| r.rank == t.rank)
            .and_then(|r| r.targets.get(t.idx as usize).copied())
    }

    /// Every target, in map order.
    pub fn targets(&self) -> impl Iterator<Item = (TargetId, TargetState)> + '_ {
        self.nodes.iter().flat_map(|n| {
            n.ranks.iter().flat_map(|r| {
                r.targets.iter().enumerate().map(|(i, s)| {
                    (
                        TargetId {
                            rank: r.rank,
                            idx: i as u32,
                        },
                        *s,
                    )
                })
            })
        })
    }

    /// The fault domains at `lvl`, each with its targets, in map order; domains whose targets
    /// are all NEW (an extension not yet brought up) are left out.
    pub fn domains(&self, lvl: RdLvl) -> Vec<Vec<(TargetId, TargetState)>> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let mut node = Vec::new();
            for r in &n.ranks {
                let targets: Vec<(TargetId, TargetState)> = r
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        (
                            TargetId {
                                rank: r.rank,
                                idx: i as u32,
                            },
                            *s,
                        )
                    })
                    .collect();
                match lvl {
                    RdLvl::Rank => out.push(targets),
                    RdLvl::Node => node.extend(targets),
                }
            }
            if lvl == RdLvl::Node {
                out.push(node);
            }
        }
        out.retain(|d| d.iter().any(|(_, s)| *s != TargetState::New));
        out
    }

    /// Applies `op` to the targets `idx` of `rank` (all of them when `idx` is empty), all or
    /// nothing, then bumps the version. A reintegration of targets none of which is down,
    /// down_out or draining is refused.
    pub fn apply(&mut self, op: MapOp, rank: u32, idx: &[u32]) -> Result<(), MapError> {
        let r = self.rank_mut(rank)?;
        if let Some(bad) = idx.iter().find(|i| **i as usize >= r.targets.len()) {
            return Err(MapError::NoTarget {
                rank,
                idx: *bad,
                targets: r.targets.len() as u32,
            });
        }
        let chosen = |i: usize| idx.is_empty() || idx.contains(&(i as u32));
        if op == MapOp::Reint
            && !r.targets.iter().enumerate().any(|(i, s)| {
                chosen(i)
                    && matches!(
                        s,
                        TargetState::Down | TargetState::DownOut | TargetState::Drain
                    )
            })
        {
            return Err(MapError::NotExcluded { rank });
        }
        let next: Vec<TargetState> = r
            .targets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if chosen(i) {
                    op.transition(
                        TargetId {
                            rank,
                            idx: i as u32,
                        },
                        *s,
                    )
                } else {
                    Ok(*s)
                }
            })
            .collect::<Result<_, _>>()?;
        r.targets = next;
        self.version += 1;
        Ok(())
    }

    /// DAOS's EXCLUDE of every target of `rank`.
    pub fn exclude(&mut self, rank: u32) -> Result<(), MapError> {
        self.apply(MapOp::Exclude, rank, &[])
    }

    /// DAOS's DRAIN of every target of `rank`.
    pub fn drain(&mut self, rank: u32) -> Result<(), MapError> {
        self.apply(MapOp::Drain, rank, &[])
    }

    /// DAOS's REINT of every target of `rank`.
    pub fn reintegrate(&mut self, rank: u32) -> Result<(), MapError> {
        self.apply(MapOp::Reint, rank, &[])
    }

    /// DAOS's EXTEND: a new rank joins (its targets UP, placed after the existing ones).
    pub fn extend(&mut self, domain: &str, rank: u32, targets: u32) -> Result<(), MapError> {
        if self.rank_mut(rank).is_ok() {
            return Err(MapError::Duplicate(rank));
        }
        self.push(domain, rank, targets, TargetState::Up);
        self.version += 1;
        Ok(())
    }

    /// DAOS's FINISH_REBUILD on `rank`: UP -> UPIN, DOWN/DRAIN -> DOWNOUT.
    pub fn finish_rebuild(&mut self, rank: u32) -> Result<(), MapError> {
        self.apply(MapOp::FinishRebuild, rank, &[])
    }
}
