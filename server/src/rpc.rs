//! The management API's generated types and services (from `daos-proto`).

pub use daos_proto::{ctl, mgmt, shared};
