#![no_main]
//! Fuzz target `mgmt_peer`: see `daos_tests::fuzz::mgmt_peer`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| daos_tests::fuzz::mgmt_peer(data));
