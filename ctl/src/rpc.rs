//! Generated gRPC types and services (`proto/shared.proto`, `ctl.proto`, `mgmt.proto`).
#![allow(clippy::all, missing_docs)]

pub mod shared {
    tonic::include_proto!("shared");
}
pub mod ctl {
    tonic::include_proto!("ctl");
}
pub mod mgmt {
    tonic::include_proto!("mgmt");
}
