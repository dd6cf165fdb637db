//! Fuzz target: arbitrary bytes as the TPM's response to every command (`cargo +nightly fuzz run response`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_tpm::client::fuzz_response(data));
