//! dRPC module and method ids (DAOS `src/include/daos/drpc_modules.h`, HEAD numbering).
//! Method ids are module × 100 + n.

use std::fmt;

/// A dRPC module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Module {
    Test = 0,
    /// Served by daos_agent, called by libdaos.
    SecAgent = 1,
    /// Served by the engine, called by daos_server.
    Mgmt = 2,
    /// Served by daos_server, called by the engine.
    Srv = 3,
    /// daos_server's security module, called by the engine.
    Sec = 4,
}

impl Module {
    pub fn from_i32(v: i32) -> Option<Module> {
        Some(match v {
            0 => Module::Test,
            1 => Module::SecAgent,
            2 => Module::Mgmt,
            3 => Module::Srv,
            4 => Module::Sec,
            _ => return None,
        })
    }
}

/// A method of some module.
pub trait Method: Copy + fmt::Debug + Send + Sync + 'static {
    const MODULE: Module;
    fn id(self) -> i32;
}

macro_rules! methods {
    ($(#[$doc:meta])* $name:ident, $module:expr, { $($variant:ident = $id:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum $name { $($variant = $id),+ }

        impl $name {
            /// All methods of the module, in id order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn from_i32(v: i32) -> Option<$name> {
                match v {
                    $($id => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl Method for $name {
            const MODULE: Module = $module;
            fn id(self) -> i32 {
                self as i32
            }
        }
    };
}

methods!(
    /// Module 1: credentials from daos_agent.
    SecAgentMethod, Module::SecAgent, { RequestCreds = 101 }
);

methods!(
    /// Module 2: management methods served by the engine (daos_agent serves a subset for clients).
    MgmtMethod, Module::Mgmt, {
        KillRank = 201, SetRank = 202, GetAttachInfo = 206, PoolCreate = 207, PoolDestroy = 208,
        SetUp = 209, BioHealthQuery = 210, SmdListDevs = 211, SmdListPools = 212,
        PoolGetAcl = 213, PoolOverwriteAcl = 215, PoolUpdateAcl = 216, PoolDeleteAcl = 217,
        PrepShutdown = 218, DevSetFaulty = 220, DevReplace = 221, ListContainers = 222,
        PoolQuery = 223, PoolSetProp = 224, PingRank = 225, PoolReint = 226, ContSetOwner = 227,
        PoolExclude = 228, PoolExtend = 229, PoolEvict = 230, PoolDrain = 231, GroupUpdate = 232,
        NotifyExit = 233, NotifyPoolConnect = 235, NotifyPoolDisconnect = 236, PoolGetProp = 237,
        SetLogMasks = 238, PoolUpgrade = 239, PoolQueryTargets = 240, LedManage = 241,
        ChkStart = 242, ChkStop = 243, ChkQuery = 244, ChkProp = 245, ChkAct = 246,
        SetupClientTelem = 247, GroupStatusGet = 248, ChkSetPolicy = 249, PoolRebuildStart = 250,
        PoolRebuildStop = 251, PoolSelfHealEval = 252,
        // daos-rs's own, at the end of the module's range (DAOS does this over CaRT IV).
        AgentForward = 297, PoolHandles = 298, PoolMapVersions = 299,
    }
);

methods!(
    /// Module 3: served by daos_server, called by the engine.
    SrvMethod, Module::Srv, {
        NotifyReady = 301, GetPoolSvc = 303, ClusterEvent = 304, PoolFindByLabel = 305,
        ChkListPool = 306, ChkRegPool = 307, ChkDeregPool = 308, ChkReport = 309, ListPools = 310,
        GetSysProps = 311,
        // daos-rs's own, at the end of the module's range: pool calls of DAOS's clients that
        // reach an engine (DAOS's engines serve them from their own pool services).
        PoolCall = 396, ContCall = 397,
    }
);

methods!(
    /// Module 4: daos_server's security module.
    SecMethod, Module::Sec, { ValidateCreds = 401 }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_module_times_100_plus_n() {
        fn check<M: Method>(all: &[M]) {
            for m in all {
                assert_eq!(m.id() / 100, M::MODULE as i32, "{m:?}");
            }
        }
        check(SecAgentMethod::ALL);
        check(MgmtMethod::ALL);
        check(SrvMethod::ALL);
        check(SecMethod::ALL);
    }

    #[test]
    fn daos_wire_numbers() {
        assert_eq!(SrvMethod::NotifyReady.id(), 301);
        assert_eq!(MgmtMethod::SetRank.id(), 202);
        assert_eq!(MgmtMethod::PoolCreate.id(), 207);
        assert_eq!(MgmtMethod::SetUp.id(), 209);
        assert_eq!(MgmtMethod::PrepShutdown.id(), 218);
        assert_eq!(MgmtMethod::PingRank.id(), 225);
        assert_eq!(SecMethod::ValidateCreds.id(), 401);
        assert_eq!(MgmtMethod::from_i32(214), None, "214 was removed by 2.6");
        assert_eq!(MgmtMethod::from_i32(232), Some(MgmtMethod::GroupUpdate));
        assert_eq!(Module::from_i32(5), None);
    }
}
