//! Every protobuf message and service of daos-rs, generated once from the `.proto` files
//! beside this crate (DAOS's field names and numbers).
//!
//! - dRPC (daos_server <-> daos_engine over Unix sockets): [`drpc`] (the `Call`/`Response`
//!   envelope), [`srv`] (what engines send to daos_server), [`mgmt_drpc`] (what daos_server
//!   sends to engines).
//! - gRPC management API (dmg, daos, agents <-> daos_server): [`shared`], [`ctl`] (`CtlSvc`),
//!   [`mgmt`] (`MgmtSvc`), with tonic clients and servers.
#![allow(clippy::all, missing_docs)]

pub mod drpc {
    include!(concat!(env!("OUT_DIR"), "/drpc/drpc.rs"));
}
pub mod srv {
    include!(concat!(env!("OUT_DIR"), "/drpc/srv.rs"));
}
/// The engine side of DAOS's `mgmt` package (dRPC payloads).
pub mod mgmt_drpc {
    include!(concat!(env!("OUT_DIR"), "/drpc/mgmt.rs"));
}
/// Client credentials (DAOS's `auth` package), carried over dRPC.
pub mod auth {
    include!(concat!(env!("OUT_DIR"), "/drpc/auth.rs"));
}
pub mod shared {
    include!(concat!(env!("OUT_DIR"), "/grpc/shared.rs"));
}
pub mod ctl {
    include!(concat!(env!("OUT_DIR"), "/grpc/ctl.rs"));
}
pub mod mgmt {
    include!(concat!(env!("OUT_DIR"), "/grpc/mgmt.rs"));
}
/// The management service's Raft transport (`raft.RaftSvc`), daos-rs's own.
pub mod raft {
    include!(concat!(env!("OUT_DIR"), "/grpc/raft.rs"));
}
/// Google's rpc `Status` / `ErrorInfo`, which DAOS attaches to errors as details.
pub mod google_rpc {
    include!(concat!(env!("OUT_DIR"), "/grpc/google.rpc.rs"));
}
/// Server-to-server actions on a rank of another host (`rank.RankSvc`), daos-rs's own.
pub mod rank {
    include!(concat!(env!("OUT_DIR"), "/grpc/rank.rs"));
}
/// A pool's containers in its pool service (`cont.ContSvc`), daos-rs's own.
pub mod cont {
    include!(concat!(env!("OUT_DIR"), "/grpc/cont.rs"));
}
