#![no_main]
//! Fuzz target `auth`: see `daos_tests::fuzz::auth`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| daos_tests::fuzz::auth(data));
