#![no_main]
//! Fuzz target `drpc_frame`: see `daos_tests::fuzz::drpc_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| daos_tests::fuzz::drpc_frame(data));
