//! DAOS's object classes.
//!
//! A class is a redundancy scheme and a number of redundancy groups: `RP_3G2` is two groups of
//! three replicas (6 shards), `EC_4P2G1` one group of 4 data + 2 parity cells, `S1` one shard.
//! Its id is `redun << 24 | grp_nr` with DAOS's redundancy codes and `grp_nr` 65535 for `GX`
//! (as many groups as fit); an object id carries it in its high 64 bits as
//! `[type 8 | redun 8 | grp_nr 16 | user 32]`. The top bit of the type byte marks an id that
//! carries a class ([`CLASSED`]): ids made before classes existed (plain hashes) are placed as
//! they always were. The next bit ([`RANK_LEVEL`], daos-rs's own) records the container's
//! `rd_lvl`: set, a group's shards need distinct ranks only; clear, distinct nodes. Every
//! client and the rebuild then place the object alike without reading container properties.

use std::fmt;

/// The bit of an object id's type byte saying its class bits are set (by [`ObjectClass::embed`]).
pub const CLASSED: u8 = 0x80;

/// The bit of a classed id's type byte saying its fault domain is the rank (`rd_lvl:rank`).
pub const RANK_LEVEL: u8 = 0x40;

/// The fault-domain level an object id's shards are placed at: rank when it carries
/// [`RANK_LEVEL`], else node (also for ids without a class).
pub fn rd_lvl_of(oid: u128) -> crate::RdLvl {
    let ty = (oid >> 120) as u8;
    if ty & CLASSED != 0 && ty & RANK_LEVEL != 0 {
        crate::RdLvl::Rank
    } else {
        crate::RdLvl::Node
    }
}

/// `grp_nr` meaning "as many groups as the pool holds" (`GX`).
pub const GRP_MAX: u16 = 65535;

/// A redundancy scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Redundancy {
    /// One copy (`S<g>`; DAOS's RP_1).
    Single,
    /// `r` replicas (`RP_<r>`).
    Replicas(u8),
    /// Erasure coding, `k` data and `p` parity cells (`EC_<k>P<p>`).
    Ec { k: u8, p: u8 },
}

/// DAOS's redundancy codes (`daos_obj_class.h`).
const RP_CODES: &[(u8, u8)] = &[
    (2, 8),
    (3, 9),
    (4, 10),
    (5, 11),
    (6, 12),
    (8, 13),
    (12, 14),
    (16, 15),
    (24, 16),
    (32, 17),
    (48, 18),
    (64, 19),
    (128, 20),
];
const EC_CODES: &[((u8, u8), u8)] = &[
    ((2, 1), 32),
    ((2, 2), 33),
    ((4, 1), 34),
    ((4, 2), 35),
    ((8, 1), 36),
    ((8, 2), 37),
    ((16, 1), 38),
    ((16, 2), 39),
    ((4, 3), 40),
    ((8, 3), 41),
    ((16, 3), 42),
];
/// The group counts DAOS names (`S1 .. S32`, `RP_2G1 .. RP_6G32`, `EC_..G1 .. G32`).
const GROUPS: &[u16] = &[1, 2, 4, 6, 8, 12, 16, 32];

impl Redundancy {
    /// DAOS's code.
    pub fn code(self) -> u8 {
        match self {
            Redundancy::Single => 1,
            Redundancy::Replicas(r) => RP_CODES
                .iter()
                .find(|(n, _)| *n == r)
                .map_or(0, |(_, c)| *c),
            Redundancy::Ec { k, p } => EC_CODES
                .iter()
                .find(|(kp, _)| *kp == (k, p))
                .map_or(0, |(_, c)| *c),
        }
    }

    pub fn from_code(code: u8) -> Option<Redundancy> {
        if code == 1 {
            return Some(Redundancy::Single);
        }
        if let Some((r, _)) = RP_CODES.iter().find(|(_, c)| *c == code) {
            return Some(Redundancy::Replicas(*r));
        }
        EC_CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|((k, p), _)| Redundancy::Ec { k: *k, p: *p })
    }

    /// Shards in one redundancy group.
    pub fn group_size(self) -> u32 {
        match self {
            Redundancy::Single => 1,
            Redundancy::Replicas(r) => u32::from(r),
            Redundancy::Ec { k, p } => u32::from(k) + u32::from(p),
        }
    }

    /// Shards of a group that may be lost without losing data.
    pub fn tolerance(self) -> u32 {
        match self {
            Redundancy::Single => 0,
            Redundancy::Replicas(r) => u32::from(r) - 1,
            Redundancy::Ec { p, .. } => u32::from(p),
        }
    }
}

/// An object class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectClass {
    pub redun: Redundancy,
    /// Redundancy groups; [`GRP_MAX`] for `GX`.
    pub grp_nr: u16,
}

/// Why a class name, id, or choice is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OclassError {
    #[error(
        "unknown object class {0:?}; use one of S1, S2, .. SX, RP_2G1 .. RP_6GX, RP_12G1 .. RP_128G1, EC_2P1G1 .. EC_16P3GX"
    )]
    UnknownName(String),
    #[error("unknown object class id {0:#x}")]
    UnknownId(u32),
    #[error("rd_fac {0} is out of range; use 0 to 4")]
    RdFac(u32),
    #[error(
        "object class {class} tolerates {tolerates} failure(s), fewer than the container's rd_fac {rd_fac}; use a class with more redundancy (e.g. {suggest})"
    )]
    TooLittleRedundancy {
        class: String,
        tolerates: u32,
        rd_fac: u32,
        suggest: String,
    },
    #[error(
        "erasure-coded object class {0} is not supported yet; use a replicated class (RP_*) instead"
    )]
    EcNotSupported(String),
}

impl ObjectClass {
    pub const S1: ObjectClass = ObjectClass {
        redun: Redundancy::Single,
        grp_nr: 1,
    };

    pub fn rp(r: u8, grp_nr: u16) -> ObjectClass {
        ObjectClass {
            redun: Redundancy::Replicas(r),
            grp_nr,
        }
    }

    /// DAOS's id: `redun << 24 | grp_nr`.
    pub fn id(self) -> u32 {
        u32::from(self.redun.code()) << 24 | u32::from(self.grp_nr)
    }

    pub fn from_id(id: u32) -> Result<ObjectClass, OclassError> {
        let redun = Redundancy::from_code((id >> 24) as u8).ok_or(OclassError::UnknownId(id))?;
        let grp_nr = (id & 0xffff) as u16;
        if grp_nr == 0 || id & 0x00ff_0000 != 0 {
            return Err(OclassError::UnknownId(id));
        }
        Ok(ObjectClass { redun, grp_nr })
    }

    /// Parses DAOS's names (`S1`, `SX`, `RP_3G2`, `RP_2GX`, `RP_12G1`, `EC_4P2G1`, ...).
    pub fn parse(name: &str) -> Result<ObjectClass, OclassError> {
        let bad = || OclassError::UnknownName(name.chars().take(40).collect());
        let upper = name.to_ascii_uppercase();
        let groups = |g: &str| -> Result<u16, OclassError> {
            if g == "X" {
                return Ok(GRP_MAX);
            }
            let n: u16 = g.parse().map_err(|_| bad())?;
            GROUPS.contains(&n).then_some(n).ok_or_else(bad)
        };
        if let Some(g) = upper.strip_prefix('S') {
            return Ok(ObjectClass {
                redun: Redundancy::Single,
                grp_nr: groups(g)?,
            });
        }
        if let Some(rest) = upper.strip_prefix("RP_") {
            let (r, g) = rest.split_once('G').ok_or_else(bad)?;
            let r: u8 = r.parse().map_err(|_| bad())?;
            let grp_nr = groups(g)?;
            let ok = match r {
                2..=6 => true,
                // The wide replica classes exist with one group only.
                8 | 12 | 16 | 24 | 32 | 48 | 64 | 128 => grp_nr == 1 && r != 8,
                _ => false,
            };
            if !ok {
                return Err(bad());
            }
            return Ok(ObjectClass::rp(r, grp_nr));
        }
        if let Some(rest) = upper.strip_prefix("EC_") {
            let (k, rest) = rest.split_once('P').ok_or_else(bad)?;
            let (p, g) = rest.split_once('G').ok_or_else(bad)?;
            let (k, p): (u8, u8) = (k.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?);
            if !EC_CODES.iter().any(|(kp, _)| *kp == (k, p)) {
                return Err(bad());
            }
            return Ok(ObjectClass {
                redun: Redundancy::Ec { k, p },
                grp_nr: groups(g)?,
            });
        }
        Err(bad())
    }

    /// Shards of one object: groups x group size (`groups` resolves `GX`).
    pub fn shards(self, groups: u32) -> u32 {
        groups * self.redun.group_size()
    }

    /// Puts the class in an object id's high bits (class and group count, the type byte
    /// marked [`CLASSED`]; its low 6 type bits and the user's 32 bits kept), for shards on
    /// distinct nodes.
    pub fn embed(self, oid: u128) -> u128 {
        self.embed_at(oid, crate::RdLvl::Node)
    }

    /// [`Self::embed`] for shards on distinct fault domains of level `lvl` (the container's
    /// `rd_lvl`; [`RANK_LEVEL`] for rank).
    pub fn embed_at(self, oid: u128, lvl: crate::RdLvl) -> u128 {
        let hi = (oid >> 64) as u64;
        let user = hi & 0xffff_ffff;
        let level = match lvl {
            crate::RdLvl::Rank => u64::from(RANK_LEVEL) << 56,
            crate::RdLvl::Node => 0,
        };
        let ty = (hi & 0x3f00_0000_0000_0000) | u64::from(CLASSED) << 56 | level;
        let class = u64::from(self.redun.code()) << 48 | u64::from(self.grp_nr) << 32;
        let hi = ty | class | user;
        (u128::from(hi) << 64) | (oid & u128::from(u64::MAX))
    }

    /// The class an object id carries (an error for an id without one).
    pub fn of_oid(oid: u128) -> Result<ObjectClass, OclassError> {
        let hi = (oid >> 64) as u64;
        if (hi >> 56) as u8 & CLASSED == 0 {
            return Err(OclassError::UnknownId(0));
        }
        let code = ((hi >> 48) & 0xff) as u32;
        let grp = ((hi >> 32) & 0xffff) as u32;
        ObjectClass::from_id(code << 24 | grp)
    }

    /// DAOS's default for a plain object in a container with `rd_fac` (RF0 S1, RF1 RP_2,
    /// RF2 RP_3, RF3 RP_4, RF4 RP_5; one group).
    pub fn default_for(rd_fac: u32) -> Result<ObjectClass, OclassError> {
        match rd_fac {
            0 => Ok(ObjectClass::S1),
            1..=4 => Ok(ObjectClass::rp(rd_fac as u8 + 1, 1)),
            n => Err(OclassError::RdFac(n)),
        }
    }

    /// DAOS's open check: the class must tolerate the container's `rd_fac` failures, and
    /// erasure coding is not built yet.
    pub fn check(self, rd_fac: u32) -> Result<(), OclassError> {
        if rd_fac > 4 {
            return Err(OclassError::RdFac(rd_fac));
        }
        if let Redundancy::Ec { .. } = self.redun {
            return Err(OclassError::EcNotSupported(self.to_string()));
        }
        let tolerates = self.redun.tolerance();
        if tolerates < rd_fac {
            let suggest = ObjectClass::default_for(rd_fac)
                .map(|c| c.to_string())
                .unwrap_or_default();
            return Err(OclassError::TooLittleRedundancy {
                class: self.to_string(),
                tolerates,
                rd_fac,
                suggest,
            });
        }
        Ok(())
    }
}

impl fmt::Display for ObjectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = if self.grp_nr == GRP_MAX {
            "X".to_string()
        } else {
            self.grp_nr.to_string()
        };
        match self.redun {
            Redundancy::Single => write!(f, "S{g}"),
            Redundancy::Replicas(r) => write!(f, "RP_{r}G{g}"),
            Redundancy::Ec { k, p } => write!(f, "EC_{k}P{p}G{g}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_oid_bits_are_daos() {
        for (name, id) in [
            ("S1", 0x0100_0001u32),
            ("SX", 0x0100_ffff),
            ("RP_2G1", 0x0800_0001),
            ("RP_3GX", 0x0900_ffff),
            ("RP_6G32", 0x0c00_0020),
            ("RP_12G1", 0x0e00_0001),
            ("EC_2P1G1", 0x2000_0001),
            ("EC_4P2GX", 0x2300_ffff),
            ("EC_16P3G8", 0x2a00_0008),
        ] {
            let c = ObjectClass::parse(name).expect(name);
            assert_eq!(c.id(), id, "{name}");
            assert_eq!(ObjectClass::from_id(id).expect("id"), c);
            assert_eq!(c.to_string(), name);
            let oid = c.embed(0x1234_5678_9abc_def0_u128 | (0x2b_u128 << 120) | (7u128 << 64));
            assert_eq!(ObjectClass::of_oid(oid).expect("oid"), c, "{name}");
            assert_eq!(oid >> 120, 0xab, "the type byte is kept and marked");
            assert!(
                ObjectClass::of_oid(0x2b_u128 << 120 | 0x0800_0001_u128 << 64).is_err(),
                "unmarked"
            );
            assert_eq!((oid >> 64) as u32, 7, "the user bits are kept");
            assert_eq!(oid as u64, 0x1234_5678_9abc_def0, "the low half is kept");
        }
        assert_eq!(ObjectClass::parse("rp_2g1"), Ok(ObjectClass::rp(2, 1)));
        for bad in [
            "S3",
            "RP_7G1",
            "RP_8G2",
            "RP_2G",
            "EC_3P1G1",
            "XYZ",
            "",
            "RP_2G100000",
        ] {
            assert!(
                matches!(ObjectClass::parse(bad), Err(OclassError::UnknownName(_))),
                "{bad}"
            );
        }
        assert!(ObjectClass::from_id(0x0700_0001).is_err());
        assert!(ObjectClass::from_id(0x0800_0000).is_err());
    }

    #[test]
    fn an_id_carries_its_fault_domain_level() {
        use crate::RdLvl;
        let rp2 = ObjectClass::rp(2, 1);
        // Whatever the hash's type bits, the level is what embed_at put there.
        for hash in [0u128, u128::MAX, 0x40 << 120, 0x1234_5678u128 << 64 | 99] {
            let node = rp2.embed(hash);
            let rank = rp2.embed_at(hash, RdLvl::Rank);
            assert_eq!(rd_lvl_of(node), RdLvl::Node, "{hash:#x}");
            assert_eq!(rd_lvl_of(rank), RdLvl::Rank, "{hash:#x}");
            assert_eq!(ObjectClass::of_oid(rank), Ok(rp2));
            assert_eq!(rank as u64, hash as u64, "the low 64 bits stay");
        }
        // An id without a class is placed at node level.
        assert_eq!(rd_lvl_of(0x40 << 120), RdLvl::Node);
    }

    #[test]
    fn shards_tolerance_defaults_and_the_open_check() {
        let rp3g2 = ObjectClass::parse("RP_3G2").expect("class");
        assert_eq!(rp3g2.shards(2), 6);
        assert_eq!(rp3g2.redun.tolerance(), 2);
        let ec = ObjectClass::parse("EC_4P2G1").expect("class");
        assert_eq!(ec.shards(1), 6);
        assert_eq!(ec.redun.tolerance(), 2);
        let defaults: Vec<String> = (0..=4)
            .map(|rf| ObjectClass::default_for(rf).expect("rf").to_string())
            .collect();
        assert_eq!(defaults, ["S1", "RP_2G1", "RP_3G1", "RP_4G1", "RP_5G1"]);
        assert_eq!(ObjectClass::default_for(5), Err(OclassError::RdFac(5)));
        assert!(ObjectClass::rp(2, 1).check(1).is_ok());
        assert_eq!(
            ObjectClass::S1
                .check(1)
                .expect_err("too little")
                .to_string(),
            "object class S1 tolerates 0 failure(s), fewer than the container's rd_fac 1; use a class with more redundancy (e.g. RP_2G1)"
        );
        assert_eq!(
            ec.check(0).expect_err("EC").to_string(),
            "erasure-coded object class EC_4P2G1 is not supported yet; use a replicated class (RP_*) instead"
        );
        assert_eq!(ObjectClass::rp(5, 1).check(7), Err(OclassError::RdFac(7)));
    }
}
