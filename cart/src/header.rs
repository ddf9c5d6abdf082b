//! CaRT's common header (`struct crt_common_hdr`, 40 bytes, copied raw, little-endian), at
//! the front of every request and reply body.
//!
//! ```text
//!  0 opc u32   4 flags u32   8 hlc u64   16 rpcid u64   24 dst_rank u32   28 src_rank u32
//! 32 dst_tag u32   36 requests: timeout in seconds (DAOS 2.8, flag DEADLINES_USED: an
//!                   absolute deadline in seconds); replies: rc i32
//! ```
//!
//! A reply's header is zero but for `hlc` and `rc` (DAOS's engines send it so); a reply whose
//! `rc` is not 0 has no body.

use crate::CartError;
use crate::proc_::{Decoder, Encoder};

/// Size of the header.
pub const LEN: usize = 40;
/// Flag: a collective RPC (a `crt_corpc_hdr` follows).
pub const FLAG_COLL: u32 = 1 << 16;
/// Flag: the primary group.
pub const FLAG_PRIMARY_GRP: u32 = 1 << 17;
/// Flag (DAOS 2.8): the last field is an absolute deadline, not a timeout.
pub const FLAG_DEADLINES_USED: u32 = 1 << 18;
/// `src_rank` of a client (`CRT_NO_RANK`).
pub const NO_RANK: u32 = u32::MAX;

/// The header's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommonHdr {
    pub opc: u32,
    pub flags: u32,
    pub hlc: u64,
    pub rpcid: u64,
    pub dst_rank: u32,
    pub src_rank: u32,
    pub dst_tag: u32,
    /// Requests: the timeout (or deadline); replies: the rc.
    pub last: u32,
}

impl CommonHdr {
    /// A reply header: the HLC and the rc, the rest zero (as DAOS's engines send).
    pub fn reply(hlc: u64, rc: i32) -> CommonHdr {
        CommonHdr {
            hlc,
            last: rc as u32,
            ..CommonHdr::default()
        }
    }

    /// A reply's rc.
    pub fn rc(&self) -> i32 {
        self.last as i32
    }

    pub fn encode(&self, e: &mut Encoder<'_>) -> Result<(), CartError> {
        e.u32(self.opc, "cch_opc")?;
        e.u32(self.flags, "cch_flags")?;
        e.u64(self.hlc, "cch_hlc")?;
        e.u64(self.rpcid, "cch_rpcid")?;
        e.u32(self.dst_rank, "cch_dst_rank")?;
        e.u32(self.src_rank, "cch_src_rank")?;
        e.u32(self.dst_tag, "cch_dst_tag")?;
        e.u32(self.last, "cch_src_timeout")
    }

    pub fn decode(d: &mut Decoder<'_>) -> Result<CommonHdr, CartError> {
        Ok(CommonHdr {
            opc: d.u32("cch_opc")?,
            flags: d.u32("cch_flags")?,
            hlc: d.u64("cch_hlc")?,
            rpcid: d.u64("cch_rpcid")?,
            dst_rank: d.u32("cch_dst_rank")?,
            src_rank: d.u32("cch_src_rank")?,
            dst_tag: d.u32("cch_dst_tag")?,
            last: d.u32("cch_src_timeout")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_forty_bytes_in_declaration_order() {
        let h = CommonHdr {
            opc: 0xFF04_0001,
            flags: FLAG_DEADLINES_USED,
            hlc: 0x1122_3344_5566_7788,
            rpcid: 0x99,
            dst_rank: 3,
            src_rank: NO_RANK,
            dst_tag: 0,
            last: 3,
        };
        let mut b = [0u8; LEN];
        h.encode(&mut Encoder::new(&mut b)).unwrap();
        assert_eq!(&b[0..4], &[0x01, 0x00, 0x04, 0xFF]);
        assert_eq!(&b[4..8], &[0, 0, 4, 0]);
        assert_eq!(&b[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(b[16], 0x99);
        assert_eq!(&b[24..28], &[3, 0, 0, 0]);
        assert_eq!(&b[28..32], &[0xff; 4]);
        assert_eq!(&b[36..40], &[3, 0, 0, 0]);
        assert_eq!(CommonHdr::decode(&mut Decoder::new(&b)).unwrap(), h);
        let r = CommonHdr::reply(5, -1035);
        assert_eq!(r.rc(), -1035);
        assert!(CommonHdr::decode(&mut Decoder::new(&b[..39])).is_err());
    }
}
