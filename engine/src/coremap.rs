//! Which core each shard of the engine runs on (DAOS_FACTS §5.2, adapted).
//!
//! Shards: one system shard (dRPC, control, pool/container service), then one shard per target,
//! then the helpers. DAOS reserves two system xstreams plus a dRPC one; here dRPC and control
//! share the system shard, so an engine needs `1 + targets + helpers` cores.
//!
//! Cores come from the pinned NUMA node (`-p`, "NUMA" allocation) or from all online cores
//! ("legacy" allocation), starting at `first_core` within that list. More shards than cores is
//! refused unless `DAOS_TARGET_OVERSUBSCRIBE=1`, which wraps around with a warning, as in DAOS.

/// What a shard does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    Target(u32),
    Helper(u32),
}

/// One shard and its core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub role: Role,
    pub core: u32,
}

/// The engine's shards in start order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreMap {
    pub shards: Vec<Placement>,
    pub targets: u32,
    pub helpers: u32,
    /// Which algorithm placed them (printed as DAOS does).
    pub algorithm: &'static str,
    /// Shards sharing cores (oversubscription accepted).
    pub oversubscribed: bool,
    /// Warnings to print (clamped helpers, oversubscription).
    pub warnings: Vec<String>,
}

/// Inputs of the placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// 0 = as many as the cores allow.
    pub targets: u32,
    pub helpers: u32,
    pub first_core: u32,
    pub numa_node: Option<u32>,
    /// `DAOS_TARGET_OVERSUBSCRIBE=1`.
    pub oversubscribe: bool,
}

/// Why the engine cannot be placed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreMapError {
    #[error(
        "cannot start engine with {targets} targets {helpers} xs_helpers on {cores} cores, may try with DAOS_TARGET_OVERSUBSCRIBE=1 or reduce #targets/#nr_xs_helpers(1 cores reserved for system service)."
    )]
    TooFewCores {
        targets: u32,
        helpers: u32,
        cores: usize,
    },
    #[error(
        "invalid dss_core_offset {first_core} (set by \"-f\" option), should within range [0, {max}]"
    )]
    BadFirstCore { first_core: u32, max: usize },
    #[error("NUMA node {node} has no online cores")]
    EmptyNode { node: u32 },
}

/// Places the shards on `cores` (the online cores of the NUMA node, or of the machine).
pub fn place(req: &Request, cores: &[u32]) -> Result<CoreMap, CoreMapError> {
    if cores.is_empty() {
        return Err(CoreMapError::EmptyNode {
            node: req.numa_node.unwrap_or(0),
        });
    }
    let first = req.first_core as usize;
    if first >= cores.len() {
        return Err(CoreMapError::BadFirstCore {
            first_core: req.first_core,
            max: cores.len() - 1,
        });
    }
    let usable = &cores[first..];
    let mut warnings = Vec::new();
    let targets = if req.targets == 0 {
        (usable.len() as u32).saturating_sub(1 + req.helpers).max(1)
    } else {
        req.targets
    };
    let mut helpers = req.helpers;
    if helpers > 2 * targets {
        warnings.push(format!(
            "#nr_xs_helpers({helpers}) cannot exceed 2 times #targets (2 x {targets} = {}).",
            2 * targets
        ));
        helpers = 2 * targets;
    }
    if helpers == 0 {
        warnings.push("Suggest to config at least 1 helper XS per DAOS engine".into());
    }
    let needed = 1 + targets as usize + helpers as usize;
    let oversubscribed = needed > usable.len();
    if oversubscribed {
        if !req.oversubscribe {
            return Err(CoreMapError::TooFewCores {
                targets,
                helpers,
                cores: usable.len(),
            });
        }
        warnings.push(format!(
            "Starting engine with {targets} targets and {helpers} helpers on {} cores (oversubscribed: DAOS_TARGET_OVERSUBSCRIBE=1)",
            usable.len()
        ));
    }
    let roles = std::iter::once(Role::System)
        .chain((0..targets).map(Role::Target))
        .chain((0..helpers).map(Role::Helper));
    let shards = roles
        .enumerate()
        .map(|(i, role)| Placement {
            role,
            core: usable[i % usable.len()],
        })
        .collect();
    Ok(CoreMap {
        shards,
        targets,
        helpers,
        algorithm: if req.numa_node.is_some() {
            "Using NUMA core allocation algorithm"
        } else {
            "Using legacy core allocation algorithm"
        },
        oversubscribed,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(targets: u32, helpers: u32) -> Request {
        Request {
            targets,
            helpers,
            first_core: 0,
            numa_node: None,
            oversubscribe: false,
        }
    }

    #[test]
    fn system_then_targets_then_helpers_on_distinct_cores() {
        let m = place(&req(2, 1), &[0, 1, 2, 3]).unwrap();
        let cores: Vec<u32> = m.shards.iter().map(|p| p.core).collect();
        assert_eq!(cores, vec![0, 1, 2, 3]);
        assert_eq!(m.shards[0].role, Role::System);
        assert_eq!(m.shards[1].role, Role::Target(0));
        assert_eq!(m.shards[3].role, Role::Helper(0));
        assert!(!m.oversubscribed);
    }

    #[test]
    fn first_core_offsets_into_the_node() {
        let mut r = req(1, 0);
        r.first_core = 2;
        r.numa_node = Some(1);
        let m = place(&r, &[8, 9, 10, 11]).unwrap();
        assert_eq!(
            m.shards.iter().map(|p| p.core).collect::<Vec<_>>(),
            vec![10, 11]
        );
        assert_eq!(m.algorithm, "Using NUMA core allocation algorithm");
        r.first_core = 4;
        assert_eq!(
            place(&r, &[8, 9, 10, 11]),
            Err(CoreMapError::BadFirstCore {
                first_core: 4,
                max: 3
            })
        );
    }

    #[test]
    fn too_many_shards_is_refused_unless_oversubscribed() {
        let err = place(&req(2, 0), &[0, 1]).unwrap_err();
        assert!(err.to_string().starts_with("cannot start engine with 2 targets 0 xs_helpers on 2 cores, may try with DAOS_TARGET_OVERSUBSCRIBE=1"), "{err}");
        let mut r = req(2, 0);
        r.oversubscribe = true;
        let m = place(&r, &[0, 1]).unwrap();
        assert!(m.oversubscribed);
        assert_eq!(
            m.shards.iter().map(|p| p.core).collect::<Vec<_>>(),
            vec![0, 1, 0]
        );
        assert!(m.warnings.iter().any(|w| w.contains("oversubscribed")));
    }

    #[test]
    fn helpers_are_clamped_to_twice_the_targets() {
        let m = place(&req(1, 5), &[0, 1, 2, 3, 4, 5]).unwrap();
        assert_eq!(m.helpers, 2);
        assert!(
            m.warnings[0]
                .starts_with("#nr_xs_helpers(5) cannot exceed 2 times #targets (2 x 1 = 2).")
        );
    }

    #[test]
    fn zero_targets_uses_the_cores() {
        let m = place(&req(0, 1), &[0, 1, 2, 3]).unwrap();
        assert_eq!(m.targets, 2);
        assert_eq!(m.shards.len(), 4);
    }
}
