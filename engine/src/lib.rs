//! `daos_engine`, the data plane of daos-rs.
//!
//! This crate will hold the core map, the pinned shard threads with their io_uring reactors and
//! the target store. So far it holds the engine's command line ([`args`]), which daos_server
//! builds from each `engines:` entry (see `daos_config::Engine::args`).

pub mod args;
