//! DAOS's data-plane protocol as DAOS's own clients (libdaos, dfuse, the `daos` tool, IOR and
//! mdtest with DFS, `self_test`) speak it, written from the layouts in DAOS's and Mercury's
//! headers (`shared/reference/DAOS_CLIENT_PROTOCOL.md`): codecs only, no I/O.
//!
//! One RPC on `ofi+tcp;ofi_rxm`, from byte 0 of the libfabric message:
//!
//! ```text
//! request (an unsolicited message; DAOS 2.6 clients send it tagged 1<<32 | T, 2.8 clients
//! with T as remote CQ data):
//!   0 sender's sockaddr_in [16] (the reply goes there)   16 Mercury core header [12]
//!  28 Mercury input header [4] (unused: DAOS builds Mercury without checksums)
//!  32 CaRT common header [40]   72 the RPC's input, proc-encoded
//! reply (tagged T, to the sender):
//!   0 Mercury core header [12]   12 output header [4]   16 CaRT common header [40]
//!  56 the RPC's output (only when the header's rc is 0)
//! ```
//!
//! [`mercury`] frames messages, [`proc_`] encodes fields, [`header`] is CaRT's common
//! header, [`opcode`] names the RPCs and protocol versions, [`hlc`] is gurt's hybrid logical
//! clock and [`rpc`] holds the bodies. Every decoder is range-checked: bad input is a
//! [`CartError`] naming the field, never a panic.

pub mod bulk;
pub mod cont;
pub mod hash;
pub mod header;
pub mod hlc;
pub mod mercury;
pub mod obj;
pub mod opcode;
pub mod pool;
pub mod proc_;
pub mod rpc;

pub use daos_wire::der;

/// A message that does not decode, or does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("{field}: needs {need} more bytes, the message has {have}")]
    Short {
        field: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{field}: needs {need} bytes, the buffer has {room} left")]
    Full {
        field: &'static str,
        need: usize,
        room: usize,
    },
    #[error("{field}: length {len} is beyond the message")]
    Length { field: &'static str, len: u64 },
    #[error("{field}: {why}")]
    Invalid {
        field: &'static str,
        why: &'static str,
    },
}
