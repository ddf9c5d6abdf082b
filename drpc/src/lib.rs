//! DAOS's dRPC: the local protocol between `daos_server` and `daos_engine`.
//!
//! Protobuf `Call`/`Response` messages ([`proto`]) travel over Unix `SOCK_SEQPACKET` sockets
//! ([`socket`]), framed in chunks of at most 128 KiB with a 24-byte header ([`frame`]). Module
//! and method ids are typed ([`ids`]). [`server`] serves a registry of method handlers from
//! blocking threads; [`client`] makes calls.
//!
//! ```no_run
//! use daos_drpc::{client::Client, ids::MgmtMethod, server::{Registry, serve}};
//! let mut registry = Registry::new();
//! registry.method(MgmtMethod::PingRank, |_ctx, body| Ok(body.to_vec()));
//! let server = serve("/var/run/daos_server/test.sock".as_ref(), registry)?;
//! let mut client = Client::connect(server.path())?;
//! assert_eq!(client.call(MgmtMethod::PingRank, b"hi")?, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod client;
pub mod frame;
pub mod ids;
pub mod server;
pub mod socket;

/// The SetLogMasks payload: DAOS sends the management API's message to engines as it is.
pub use daos_proto::ctl::{SetLogMasksReq, SetLogMasksResp};
/// The `Call`/`Response` envelope (`proto/drpc.proto`).
pub use daos_proto::drpc as proto;
/// Payloads daos_server sends to the engine (`proto/mgmt_drpc.proto`).
pub use daos_proto::mgmt_drpc as mgmt;
/// Types shared with the management API; the RAS events engines send (`ClusterEvent`).
pub use daos_proto::shared;
/// Payloads the engine sends to daos_server (`proto/srv.proto`).
pub use daos_proto::srv;

pub use client::{Client, DrpcError};
pub use ids::{Method, MgmtMethod, Module, SecMethod, SrvMethod};
pub use proto::Status;
pub use server::{CallContext, HandlerError, Registry, ServerHandle, serve};
