//! Hypervisor logic that needs no hardware: every piece here is plain Rust tested on the host.
//!
//! The hardware layer (`warden-hw`) implements the small traits defined here (`PhysMem`,
//! `TisRegs`, `CrbRegs`); the hypervisor wires the two together.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "fake"))]
extern crate std;

pub mod acpi;
pub mod cmdline;
pub mod crb;
pub mod frame;
pub mod lapic_timer;
pub mod mem;
pub mod multiboot;
pub mod multiboot2;
pub mod paging;
pub mod tis;
pub mod tpm_interface;

/// A seeded xorshift generator for the parsers' random-input tests (deterministic, no crate).
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
