#![no_main]
//! Fuzz target `config`: see `daos_tests::fuzz::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| daos_tests::fuzz::config(data));
