//! Fuzz target: the lifecycle hypercall decoder and `CreateRequest` validation
//! (`cargo +nightly fuzz run lifecycle`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_ipc::lifecycle::fuzz_lifecycle(data));
