//! Warden's hypercall ABI (version 1): call numbers, register convention, result codes and the
//! start-info page, shared by the hypervisor and every domain.
//!
//! # Register convention
//! A domain issues `VMMCALL` with the call number in `RAX` and up to five arguments in `RDI`,
//! `RSI`, `RDX`, `R10`, `R8`. On return `RAX` holds a [`Status`] and `RDX` a call-specific value;
//! every other register is preserved. Pointers are guest-physical addresses (the runtime's
//! identity mapping makes a pointer's value its guest-physical address); the hypervisor checks
//! every pointer against the domain's memory and answers [`Status::BadAddress`] otherwise.
//!
//! # Start
//! A domain starts in 64-bit long mode at its ELF entry with `RDI` = guest-physical address of
//! its [`StartInfo`] page, `RSP` = top of its stack minus 8 (as after a `call`), interrupts off,
//! and an identity mapping of guest-physical `0..4 GiB` (only `StartInfo::memory_bytes` of it is
//! backed; touching the rest stops the domain).
#![cfg_attr(not(test), no_std)]
// The `guest` module below is the one place that may use `unsafe` (VMMCALL, the entry symbol,
// the allocator); everything else in this crate is plain data. The tidy test whitelists it.
#![deny(unsafe_code)]

// The virtio HAL allocates DMA buffers from the domain heap.
#[cfg(feature = "virtio")]
extern crate alloc;

mod call;
mod start_info;
// Inter-domain calls (event channels, grants, audit): owned by the IPC/MAC work, issue 7.
pub mod ipc;
// Device assignment (PCI config access, DMA offset): the management network, issue 11.
pub mod device;
// Domain lifecycle and host management (issue 11).
pub mod lifecycle;
// vTPM calls and the frontend protocol (issue 12).
pub mod vtpm;
// The platform TPM locality the vTPM manager may hold (issue 12).
pub mod platform_tpm;
// Checkpoint/restore mechanism and introspection (issue 13, calls 64..79).
pub mod introspect;

#[cfg(feature = "guest")]
#[allow(unsafe_code)]
pub mod guest;

pub use call::{BlockWake, Call, HypercallArgs, ShutdownReason, Status};
pub use start_info::{DomainInfo, NAME_LEN, ARGS_LEN, START_INFO_MAGIC, StartInfo, fixed_str, to_fixed};

/// An ABI version: domains built for a different major version are refused by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
}

impl Version {
    /// Packs the version as `major << 16 | minor`, the form used in [`StartInfo::abi_version`]
    /// and in CPUID leaf `0x4000_0001` EAX.
    pub const fn encode(self) -> u32 {
        (self.major as u32) << 16 | self.minor as u32
    }

    pub const fn decode(raw: u32) -> Self {
        Version { major: (raw >> 16) as u16, minor: raw as u16 }
    }
}

/// The ABI this crate describes.
pub const ABI_VERSION: Version = Version { major: 1, minor: 0 };

/// Length in bytes of the `VMMCALL` instruction (`0f 01 d9`); without NRIP-save the hypervisor
/// advances the guest RIP by this much itself.
pub const VMMCALL_LEN: u64 = 3;

/// Largest byte count one console write accepts.
pub const CONSOLE_WRITE_MAX: u64 = 4096;

/// CPUID leaf range owned by the hypervisor: `0x4000_0000` returns the highest leaf in EAX and
/// [`CPUID_SIGNATURE`] in EBX, ECX, EDX; `0x4000_0001` returns the ABI version in EAX and the
/// domain id in EBX.
pub const CPUID_LEAF_BASE: u32 = 0x4000_0000;
pub const CPUID_LEAF_INFO: u32 = 0x4000_0001;
pub const CPUID_SIGNATURE: [u8; 12] = *b"WardenWarden";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_round_trips() {
        for v in [ABI_VERSION, Version { major: 0xffff, minor: 0 }, Version { major: 0, minor: 0xffff }] {
            assert_eq!(Version::decode(v.encode()), v);
        }
        assert_eq!(ABI_VERSION.encode(), 0x0001_0000);
    }
}
