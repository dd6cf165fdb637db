//! Fuzz target: arbitrary bytes as a binary policy through the no_std loader and engine.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_policy::fuzz_load(data));
