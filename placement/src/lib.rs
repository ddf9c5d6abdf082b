//! Object classes and placement, as DAOS has them.
//!
//! - [`oclass`]: DAOS's classes (`S1 .. SX`, `RP_2G1 .. RP_6GX`, `RP_12G1 ..`, `EC_2P1G1 ..
//!   GX`), their numeric ids (`redun << 24 | grp_nr`), how a class travels in the high bits of an
//!   object id, the class a container's `rd_fac` defaults to, and the check that an object
//!   tolerates as many failures as its container's `rd_fac` asks.
//! - [`map`]: the pool map's tree (node -> rank -> target) with DAOS's target states and a
//!   version that every change bumps.
//! - [`layout`]: where an object's shards live: a jump consistent hash of the object id down the
//!   tree, the shards of a redundancy group on distinct fault domains at `rd_lvl` (node or
//!   rank), shards on failed targets remapped one by one (the others stay put), domains added
//!   at the end moving about 1/n of the shards.
//! - [`jump_map`]: DAOS v2.6.4's own client placement, exactly (`pl_obj_place` on the jump
//!   map, layout versions 1 and 2): the layout libdaos computes for an object on a pool map as
//!   DAOS clients receive it (a `pool_buf`), checked against layouts from libdaos itself.
//!
//! Pure functions of their inputs: clients and engines compute the same layout from the same
//! map version.

/// DAOS v2.6.4's jump-map placement (`pl_obj_place`) on a `pool_buf`, bit for bit.
pub mod jump_map;
pub mod layout;
pub mod map;
pub mod oclass;

pub use layout::{Layout, PlacementError, Shard, place};
pub use map::{MapError, MapOp, PoolMap, RdLvl, TargetId, TargetState};
pub use oclass::{ObjectClass, OclassError, Redundancy, rd_lvl_of};
