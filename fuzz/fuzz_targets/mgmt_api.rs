#![no_main]
//! Fuzz target `mgmt_api`: see `daos_tests::fuzz::mgmt_api`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| daos_tests::fuzz::mgmt_api(data));
