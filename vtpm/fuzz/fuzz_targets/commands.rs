//! Fuzz target: arbitrary command streams (locality, length, bytes)* against a started TPM.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden_vtpm::fuzz_execute(data);
});
