//! Fuzz target: arbitrary bytes as policy source through the whole compiler and formatter.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_policy_compiler::fuzz_compile(data));
