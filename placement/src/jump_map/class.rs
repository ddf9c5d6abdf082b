//! Object ids and classes as libdaos v2.6.4 resolves them for placement (`daos_obj.h`,
//! `obj_class.c`: `oclass_ident2cl`, `daos_oclass_grp_size`, `daos_oclass_fit_max`,
//! `daos_obj_set_oid`).
//!
//! An object id's high word is `[otype 8 | ord 8 | nr_grps 16 | user 32]`; the class id is
//! `ord << 24 | nr_grps`, `nr_grps` 0xFFFF meaning "as many groups as fit" (`SX`, `GX`).
//! libdaos v2.6.4's class table knows `ord` 1 (`S*`, groups of 1), 8..=12 (`RP_2*` ..
//! `RP_6*`, groups of 2..=6) and 32..=42 (`EC_*`, groups of k + p). The redundancy codes of
//! `RP_8` and wider exist, but no class uses them, so libdaos refuses them.

use super::JumpMapError;
use super::pool_buf::PoolBufMap;

/// `nr_grps` meaning "as many groups as fit" (`MAX_NUM_GROUPS`, `DAOS_OBJ_GRP_MAX`).
pub const GRP_MAX: u32 = 0xFFFF;

/// A DAOS object id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Oid {
    pub hi: u64,
    pub lo: u64,
}

impl Oid {
    /// `daos_obj_set_oid`: `hi_user` and `lo` with the type, the redundancy code and the
    /// group count (clamped to [`GRP_MAX`]) in the high bits.
    pub fn new(otype: u8, ord: u8, nr_grps: u32, hi_user: u32, lo: u64) -> Oid {
        let hi = (u64::from(otype) << 56)
            | (u64::from(ord) << 48)
            | (u64::from(nr_grps.min(GRP_MAX)) << 32)
            | u64::from(hi_user);
        Oid { hi, lo }
    }

    /// The object type (`daos_otype_t`).
    pub fn otype(self) -> u8 {
        (self.hi >> 56) as u8
    }

    /// The redundancy code (`daos_obj_redun`).
    pub fn ord(self) -> u8 {
        (self.hi >> 48) as u8
    }

    /// The group count carried in the id ([`GRP_MAX`]: as many as fit).
    pub fn nr_grps(self) -> u32 {
        ((self.hi >> 32) & 0xFFFF) as u32
    }

    /// The class id (`daos_obj_id2class`).
    pub fn class_id(self) -> u32 {
        (u32::from(self.ord()) << 24) | self.nr_grps()
    }
}

/// The shards in one redundancy group of the classes with redundancy code `ord`, for the codes
/// libdaos v2.6.4's class table uses.
pub fn ord_group_size(ord: u8) -> Option<u32> {
    match ord {
        1 => Some(1),
        // OR_RP_2 ..= OR_RP_6
        8..=12 => Some(u32::from(ord) - 6),
        // OR_RS_2P1, 2P2, 4P1, 4P2, 8P1, 8P2, 16P1, 16P2, 4P3, 8P3, 16P3: k + p
        32..=42 => Some([3, 4, 5, 6, 9, 10, 17, 18, 7, 11, 19][usize::from(ord - 32)]),
        _ => None,
    }
}

/// What placement needs from a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassAttr {
    /// The redundancy code.
    pub ord: u8,
    /// Shards per redundancy group.
    pub grp_size: u32,
    /// Redundancy groups; [`GRP_MAX`] for as many as fit.
    pub grp_nr: u32,
}

/// `oclass_ident2cl`: the class of `class_id`, or [`JumpMapError::UnknownClass`].
pub fn class_attr(class_id: u32) -> Result<ClassAttr, JumpMapError> {
    let ord = (class_id >> 24) as u8;
    let grp_nr = class_id & 0x00FF_FFFF;
    if class_id != 0 && ord == 0 {
        return Err(JumpMapError::Unsupported {
            what: "DAOS's private object classes (ids below 1 << 24)",
        });
    }
    match ord_group_size(ord) {
        // A group count wider than 16 bits is no id of the table either.
        Some(grp_size) if grp_nr != 0 && grp_nr <= GRP_MAX => Ok(ClassAttr {
            ord,
            grp_size,
            grp_nr,
        }),
        _ => Err(JumpMapError::UnknownClass { class_id }),
    }
}

/// `daos_oclass_fit_max(class_id, domain_nr, target_nr, rf)`: the redundancy code and the group
/// count an object of `class_id` gets on a pool of `domain_nr` fault domains and `target_nr`
/// UPIN targets ([`PoolBufMap::query`]), reserving groups for `rf` failures when the class
/// asks for as many groups as fit.
pub fn oclass_fit_max(
    class_id: u32,
    domain_nr: u32,
    target_nr: u32,
    rf: u32,
) -> Result<(u8, u32), JumpMapError> {
    let attr = class_attr(class_id)?;
    let grp_size = attr.grp_size;
    let mut grp_nr = attr.grp_nr;
    if grp_nr == GRP_MAX {
        // `(target_nr * 3) / 10` in DAOS's u32 arithmetic, wrapping as it does.
        let reserve = (target_nr.wrapping_mul(3) / 10 / grp_size).min(rf);
        grp_nr = (target_nr / grp_size).max(1);
        if grp_nr > reserve {
            grp_nr -= reserve;
        }
    }
    if grp_size > domain_nr {
        return Err(JumpMapError::GroupTooWide {
            grp_size,
            domain_nr,
        });
    }
    if u64::from(grp_nr) * u64::from(grp_size) > u64::from(target_nr) {
        return Err(JumpMapError::DoesNotFit {
            grp_nr,
            grp_size,
            target_nr,
        });
    }
    Ok((attr.ord, grp_nr))
}

/// `daos_obj_generate_oid2` on `map` for a container with redundancy level `redun_lvl`
/// (1 rank, 2 node) and factor `rf`: the class is fitted to the map ([`oclass_fit_max`] on
/// [`PoolBufMap::query`]) and set in the id's high bits, above `hi_user`.
pub fn generate_oid(
    map: &PoolBufMap,
    class_id: u32,
    otype: u8,
    hi_user: u32,
    lo: u64,
    redun_lvl: i32,
    rf: u32,
) -> Result<Oid, JumpMapError> {
    let attr = map.query(redun_lvl);
    let (ord, nr) = oclass_fit_max(class_id, attr.domain_nr, attr.target_nr, rf)?;
    Ok(Oid::new(otype, ord, nr, hi_user, lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_bits_and_class_ids_are_daos() {
        let oid = Oid::new(13, 9, 2, 0xdead_beef, 7);
        assert_eq!(oid.hi, 0x0d09_0002_dead_beef);
        assert_eq!((oid.otype(), oid.ord(), oid.nr_grps()), (13, 9, 2));
        assert_eq!(oid.class_id(), 0x0900_0002);
        assert_eq!(Oid::new(0, 1, 70_000, 0, 0).nr_grps(), GRP_MAX);
        let sizes: Vec<Option<u32>> = [0u8, 1, 8, 12, 13, 20, 32, 37, 42, 43]
            .iter()
            .map(|&o| ord_group_size(o))
            .collect();
        let want = [
            None,
            Some(1),
            Some(2),
            Some(6),
            None,
            None,
            Some(3),
            Some(10),
            Some(19),
            None,
        ];
        assert_eq!(sizes, want);
        assert!(matches!(
            class_attr(0x0100_0000),
            Err(JumpMapError::UnknownClass { .. })
        ));
        assert!(matches!(
            class_attr(0),
            Err(JumpMapError::UnknownClass { .. })
        ));
        assert!(matches!(
            class_attr(80),
            Err(JumpMapError::Unsupported { .. })
        ));
        assert!(matches!(
            class_attr(0x0D00_0001),
            Err(JumpMapError::UnknownClass { .. })
        ));
        assert_eq!(
            class_attr(0x2200_FFFF),
            Ok(ClassAttr {
                ord: 34,
                grp_size: 5,
                grp_nr: GRP_MAX
            })
        );
    }

    #[test]
    fn fit_max_is_daos() {
        // SX on 8 UPIN targets: S8 (rf 0); rf reserves groups only when the count exceeds them.
        assert_eq!(oclass_fit_max(0x0100_FFFF, 1, 8, 0), Ok((1, 8)));
        assert_eq!(oclass_fit_max(0x0100_FFFF, 1, 8, 2), Ok((1, 6)));
        assert_eq!(oclass_fit_max(0x0100_FFFF, 1, 2, 5), Ok((1, 2)));
        assert_eq!(oclass_fit_max(0x0100_FFFF, 1, 1, 1), Ok((1, 1)));
        // RP_3GX on 12 targets, rf 1: 4 groups, reserve min(3 / 3, 1) = 1.
        assert_eq!(oclass_fit_max(0x0900_FFFF, 3, 12, 1), Ok((9, 3)));
        assert_eq!(
            oclass_fit_max(0x0900_0001, 2, 12, 0),
            Err(JumpMapError::GroupTooWide {
                grp_size: 3,
                domain_nr: 2
            })
        );
        assert_eq!(
            oclass_fit_max(0x0100_0004, 4, 3, 0),
            Err(JumpMapError::DoesNotFit {
                grp_nr: 4,
                grp_size: 1,
                target_nr: 3
            })
        );
        // No domains or targets at all: refused, not asserted.
        assert!(oclass_fit_max(0x0100_FFFF, 0, 0, 0).is_err());
        // Huge counts wrap in the reserve's 30 % as in DAOS's u32 arithmetic, without a panic.
        assert_eq!(
            oclass_fit_max(0x0100_FFFF, 1, u32::MAX, u32::MAX).map(|r| r.0),
            Ok(1)
        );
    }
}
