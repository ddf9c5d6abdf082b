#![no_main]
//! Fuzz target `wire`: see `daos_tests::fuzz::wire`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| daos_tests::fuzz::wire(data));
