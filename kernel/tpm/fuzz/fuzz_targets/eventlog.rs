//! Fuzz target: the event-log parser and replayer (`cargo +nightly fuzz run eventlog`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_tpm::eventlog::fuzz_parse(data));
