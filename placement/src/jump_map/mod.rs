//! DAOS v2.6.4's client placement, exactly: the jump map's `pl_obj_place` on a pool map as
//! DAOS clients receive it (a `pool_buf`).
//!
//! [`crate::layout`] is daos-rs's own placement in the jump map's spirit; this module computes
//! the *same* layout libdaos computes, so that a real DAOS client and daos-rs agree on where
//! every shard of an object lives. It was written from our restatement of DAOS's algorithm and
//! is checked against layouts computed by libdaos v2.6.4 itself (`tests/daos_layouts.rs`).
//!
//! # Design
//!
//! - [`PoolBufMap::parse`] reads a `pool_buf` (32-byte header, 32-byte components: nodes, then
//!   ranks, then targets) into DAOS's flat tree: an implicit root, the domains in buffer order,
//!   the targets in buffer order, every domain owning a contiguous run of targets. The buffer is
//!   a trust boundary: every count, length, type, status, child count, version and id is checked
//!   and refused with a [`JumpMapError`], never a panic.
//! - [`class_attr`], [`oclass_fit_max`] and [`generate_oid`] resolve a class as libdaos does
//!   (its v2.6.4 class table; `SX`/`GX` become a group count that fits the map), and [`Oid`]
//!   carries the class in its high bits.
//! - [`place`] walks the tree once per shard: a jump consistent hash of a key derived from the
//!   object id, the shard and the domain ids picks a child at each level and then a target,
//!   avoiding domains the object (then the group) already uses and targets the object already
//!   uses, relaxing those rules step by step when a group runs out of domains. The first pass
//!   ignores target states, so a failure never moves a healthy shard; shards on unavailable
//!   targets are then remapped in failure order with a second key.
//!
//! # Limits
//!
//! What libdaos v2.6.4 does and this module refuses with [`ErrorKind::Unsupported`]:
//! layout version 0; layout extension (a read-write open when the layout meets an `UP` or
//! `DRAIN` target, or when any target is being added); performance domains (`GRP`
//! components); DAOS's private classes (ids below `1 << 24`: `RP_XSF`, echo and rank-pinned
//! classes); non-trailing excluded (`NEW`/`UP`) targets, where libdaos's result is undefined.
//! The walk and the remap are bounded, so a map on which libdaos would loop forever (e.g. every
//! target failed) gives [`ErrorKind::NoProgress`] instead.

mod class;
mod hash;
mod place;
mod pool_buf;

pub use class::{
    ClassAttr, GRP_MAX, Oid, class_attr, generate_oid, oclass_fit_max, ord_group_size,
};
pub use hash::{crc64_ecma_refl, d_hash_jump};
pub use place::{LAYOUT_VER_MAX, ObjLayout, ObjectMd, OpenMode, ShardPlace, place};
pub use pool_buf::{
    COMPONENT_LEN, CompStatus, CompType, Component, FLAG_DOWN2UP, HEADER_LEN, MapAttr, PoolBufMap,
};

/// What kind of failure a [`JumpMapError`] is: what callers match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The pool buffer is malformed or inconsistent.
    BadPoolBuf,
    /// libdaos refuses this too, with `-DER_INVAL` ([`DER_INVAL`]).
    Invalid,
    /// libdaos computes a layout here, this module does not (see the module's Limits).
    Unsupported,
    /// The walk did not converge within its bound: a map libdaos would loop on.
    NoProgress,
}

/// DAOS's `-DER_INVAL`, the code libdaos returns for every [`ErrorKind::Invalid`] error.
pub const DER_INVAL: i32 = -1003;

/// Why a pool buffer cannot be used or an object cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JumpMapError {
    #[error(
        "pool buffer is {len} bytes, but its header announces {need} (32-byte header and 32 bytes per component)"
    )]
    Length { len: usize, need: u64 },
    #[error(
        "pool buffer counts are inconsistent: nr {nr}, domains {domain_nr}, ranks {node_nr}, targets {target_nr} (need ranks and targets, and domains + ranks + targets = nr)"
    )]
    Counts {
        nr: u32,
        domain_nr: u32,
        node_nr: u32,
        target_nr: u32,
    },
    #[error("component {index} has type {found}, expected {expected}")]
    ComponentType {
        index: usize,
        found: u8,
        expected: &'static str,
    },
    #[error("component {index} has unknown status {status:#x}")]
    ComponentStatus { index: usize, status: u8 },
    #[error("component {index} ({kind}) has no children")]
    NoChildren { index: usize, kind: &'static str },
    #[error(
        "the {kind} components have {sum} children in all, but the buffer has {have} {child_kind} components"
    )]
    ChildSum {
        kind: &'static str,
        sum: u64,
        have: u32,
        child_kind: &'static str,
    },
    #[error("component {index} has version {ver}, newer than the map's version {version}")]
    ComponentVersion {
        index: usize,
        ver: u32,
        version: u32,
    },
    #[error("{kind} id {id} appears more than once")]
    DuplicateId { kind: &'static str, id: u32 },
    #[error(
        "the pool map has no node components, so DAOS clients cannot build a jump map on it (DER_INVAL)"
    )]
    NoNodes,
    #[error("unknown object class {class_id:#x} (DER_INVAL)")]
    UnknownClass { class_id: u32 },
    #[error("fault-domain level {level} is none of 0 (default), 1 (rank) and 2 (node) (DER_INVAL)")]
    FdomLevel { level: u32 },
    #[error(
        "a redundancy group of {grp_size} shards needs {grp_size} fault domains, but the pool has {domain_nr} (DER_INVAL)"
    )]
    GroupTooWide { grp_size: u32, domain_nr: u32 },
    #[error(
        "the object has {grp_nr} redundancy groups, but at most {grp_max} fit the pool's targets (DER_INVAL)"
    )]
    TooManyGroups { grp_nr: u32, grp_max: u32 },
    #[error(
        "{grp_nr} redundancy groups of {grp_size} shards do not fit {target_nr} UPIN targets (DER_INVAL)"
    )]
    DoesNotFit {
        grp_nr: u32,
        grp_size: u32,
        target_nr: u32,
    },
    #[error("layout version {0} is not supported; use 1 or 2")]
    LayoutVersion(u32),
    #[error("{what} is not supported")]
    Unsupported { what: &'static str },
    #[error("placing shard {shard} made no progress in {steps} steps")]
    NoProgress { shard: u32, steps: u64 },
}

impl JumpMapError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        use JumpMapError as E;
        match self {
            E::Length { .. }
            | E::Counts { .. }
            | E::ComponentType { .. }
            | E::ComponentStatus { .. }
            | E::NoChildren { .. }
            | E::ChildSum { .. }
            | E::ComponentVersion { .. }
            | E::DuplicateId { .. } => ErrorKind::BadPoolBuf,
            E::NoNodes
            | E::UnknownClass { .. }
            | E::FdomLevel { .. }
            | E::GroupTooWide { .. }
            | E::TooManyGroups { .. }
            | E::DoesNotFit { .. } => ErrorKind::Invalid,
            E::LayoutVersion(_) | E::Unsupported { .. } => ErrorKind::Unsupported,
            E::NoProgress { .. } => ErrorKind::NoProgress,
        }
    }
}
