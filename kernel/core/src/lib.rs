//! Hypervisor logic that needs no hardware: every piece here is plain Rust tested on the host.
//!
//! The hardware layer (`warden-hw`) implements the small traits defined here (`PhysMem`,
//! `TisRegs`, `CrbRegs`); the hypervisor wires the two together.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "fake"))]
extern crate std;

pub mod cmdline;
pub mod crb;
pub mod frame;
pub mod lapic_timer;
pub mod mem;
pub mod multiboot;
pub mod paging;
pub mod tis;
pub mod tpm_interface;
