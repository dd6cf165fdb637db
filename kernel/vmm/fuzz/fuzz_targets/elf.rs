//! cargo-fuzz target: `cargo +nightly fuzz run elf` (from kernel/vmm/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_vmm::fuzz::fuzz_elf(data));
