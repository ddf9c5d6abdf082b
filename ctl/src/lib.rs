//! The control plane of daos-rs: `daos_server` (blocking control daemon) and `dmg` (admin CLI).
//!
//! The binaries in `src/bin` are thin: they parse arguments with clap and call into this crate,
//! which returns [`exit::CmdError`]s that `main` prints and maps to a documented exit code.

pub mod cli;
pub mod connect;
pub mod dmg;
pub mod exit;
pub mod generate;
pub mod grpc;
pub mod harness;
pub mod hostlist;
pub mod listener;
pub mod logging;
pub mod membership;
pub mod netcheck;
pub mod pools;
pub mod prepare;
pub mod rpc;
pub mod scan;
pub mod security;
pub mod server;
pub mod storage;
pub mod table;
