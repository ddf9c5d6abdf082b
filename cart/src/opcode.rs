//! Opcodes: `(module << 24) | (version << 16) | index` (DAOS `include/daos/rpc.h`, CaRT
//! `CRT_PROTO_OPC`), and the protocol versions this engine serves.

/// An opcode.
pub const fn opcode(module: u8, version: u8, index: u16) -> u32 {
    (module as u32) << 24 | (version as u32) << 16 | index as u32
}

/// An opcode's module (its protocol's base is `module << 24`).
pub const fn module_of(opc: u32) -> u8 {
    (opc >> 24) as u8
}

/// An opcode's protocol version.
pub const fn version_of(opc: u32) -> u8 {
    (opc >> 16) as u8
}

/// An opcode's index in its protocol.
pub const fn index_of(opc: u32) -> u16 {
    opc as u16
}

/// DAOS's modules.
pub mod module {
    pub const MGMT: u8 = 1;
    pub const POOL: u8 = 2;
    pub const CONT: u8 = 3;
    pub const OBJ: u8 = 4;
    /// CaRT's internal protocol (URI lookup, protocol query).
    pub const CART: u8 = 0xFF;
    /// CaRT's self-test protocol.
    pub const SELF_TEST: u8 = 0xF2;
}

/// CaRT's internal protocol, version 4.
pub const URI_LOOKUP: u32 = opcode(module::CART, 4, 0);
pub const PROTO_QUERY: u32 = opcode(module::CART, 4, 1);

/// CaRT's self-test protocol, version 1 (`self_test` pings engines with it).
pub mod self_test {
    use super::{module, opcode};
    pub const BOTH_EMPTY: u32 = opcode(module::SELF_TEST, 1, 0);
    pub const SEND_ID_REPLY_IOV: u32 = opcode(module::SELF_TEST, 1, 1);
    pub const SEND_IOV_REPLY_EMPTY: u32 = opcode(module::SELF_TEST, 1, 2);
    pub const BOTH_IOV: u32 = opcode(module::SELF_TEST, 1, 3);
    pub const SEND_BULK_REPLY_IOV: u32 = opcode(module::SELF_TEST, 1, 4);
    pub const SEND_IOV_REPLY_BULK: u32 = opcode(module::SELF_TEST, 1, 5);
    pub const BOTH_BULK: u32 = opcode(module::SELF_TEST, 1, 6);
    pub const OPEN_SESSION: u32 = opcode(module::SELF_TEST, 1, 7);
    pub const CLOSE_SESSION: u32 = opcode(module::SELF_TEST, 1, 8);
}

/// The management module's client RPCs (index in version 2, 3 and 4 alike).
pub mod mgmt {
    /// `MGMT_PARAMS_SET` (`daos_debug_set_params`: fail_loc and the like). In: rank u32,
    /// key id u32, value u64, extra value u64; out: rc i32.
    pub const PARAMS_SET: u16 = 1;
    pub const POOL_FIND: u16 = 4;
}

/// Versions of each DAOS module this engine serves, newest first. DAOS 2.6 clients offer
/// mgmt {2,3}, pool {5,6}, cont {7,8}, obj {9,10}; DAOS 2.8 clients mgmt {3,4}, pool {6,7},
/// cont {8,9}, obj {9,10}. `daos_init` needs all four; an RPC of a served module that is not
/// served yet is answered with `-DER_NOSYS` in its body (see [`crate::rpc::write_refusal`]).
pub fn served_versions(module: u8) -> &'static [u8] {
    match module {
        module::MGMT => &[3, 2],
        module::POOL => &[6],
        module::CONT => &[8],
        module::OBJ => &[10],
        module::CART => &[4],
        module::SELF_TEST => &[1],
        _ => &[],
    }
}

/// PROTO_QUERY's answer: the highest offered version served, else the error DAOS's CaRT
/// returns (`-DER_NONEXIST` when the base is not served at all, `-DER_UNREG` when none of the
/// offered versions is).
pub fn choose_version(base_opc: u32, offered: impl Iterator<Item = u32>) -> Result<u32, i32> {
    if base_opc & 0x00FF_FFFF != 0 {
        return Err(crate::der::INVAL);
    }
    let served = served_versions(module_of(base_opc));
    if served.is_empty() {
        return Err(crate::der::NONEXIST);
    }
    offered
        .filter(|v| served.iter().any(|s| u32::from(*s) == *v))
        .max()
        .ok_or(crate::der::UNREG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_are_module_version_index() {
        assert_eq!(URI_LOOKUP, 0xFF04_0000);
        assert_eq!(PROTO_QUERY, 0xFF04_0001);
        assert_eq!(self_test::OPEN_SESSION, 0xF201_0007);
        assert_eq!(opcode(module::MGMT, 3, mgmt::POOL_FIND), 0x0103_0004);
        assert_eq!(opcode(module::POOL, 6, 1), 0x0206_0001);
        assert_eq!(module_of(0x0206_0001), 2);
        assert_eq!(version_of(0x0206_0001), 6);
        assert_eq!(index_of(0x0206_0001), 1);
    }

    #[test]
    fn the_highest_served_offered_version_wins() {
        assert_eq!(choose_version(0x0100_0000, [2, 3].into_iter()), Ok(3));
        assert_eq!(choose_version(0x0100_0000, [3, 4].into_iter()), Ok(3));
        assert_eq!(
            choose_version(0x0100_0000, [5].into_iter()),
            Err(crate::der::UNREG)
        );
        assert_eq!(choose_version(0x0200_0000, [5, 6].into_iter()), Ok(6));
        assert_eq!(choose_version(0x0200_0000, [6, 7].into_iter()), Ok(6));
        assert_eq!(
            choose_version(0x0900_0000, [1].into_iter()),
            Err(crate::der::NONEXIST)
        );
        assert_eq!(
            choose_version(0x0100_0001, [3].into_iter()),
            Err(crate::der::INVAL)
        );
    }
}
