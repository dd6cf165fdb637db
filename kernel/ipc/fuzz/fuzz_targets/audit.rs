//! Fuzz target: the audit-record decoder (`cargo +nightly fuzz run audit`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_ipc::audit::fuzz_decode(data));
