#![no_main]
//! Fuzz target `cart`: see `daos_tests::fuzz::cart`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| daos_tests::fuzz::cart(data));
