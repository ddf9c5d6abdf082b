//! `daos_server`, the control daemon of daos-rs: reads `daos_server.yml`, provisions storage
//! and network ([`storage`], [`prepare`], [`scan`], [`generate`]), supervises the engines
//! ([`harness`]) and talks to them over dRPC, runs the management service ([`pools`] over
//! `daos-mgmt`) and serves the management API over gRPC ([`grpc`]).
//!
//! The binary in `src/bin` is thin: it parses arguments with clap and calls into this crate,
//! which returns [`exit::CmdError`]s that `main` prints and maps to a documented exit code.

pub use daos_control::{cli, exit, hostlist, table};
pub use daos_mgmt as membership;

pub mod cont;
pub mod daos_clients;
pub mod generate;
pub mod grpc;
pub mod harness;
pub mod listener;
pub use daos_control::logging;
pub mod netcheck;
pub mod pools;
pub mod prepare;
pub mod rebuild;
pub mod remote;
pub mod rpc;
pub mod scan;
pub mod security;
pub mod server;
pub mod storage;
