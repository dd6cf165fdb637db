//! Warden's hardware-access layer: the only crate in the workspace allowed to contain `unsafe`.
//!
//! Everything that touches the machine directly lives here behind a small safe API: port and
//! MMIO access, MSRs, control registers, descriptor tables, page-table installation, the
//! Multiboot entry stub, the heap, and the QEMU debug-exit device. Every `unsafe` block states
//! why it is sound in a `// SAFETY:` comment.
//!
//! On the host the crate compiles (so dependants' tests build) but the instruction wrappers are
//! only meaningful on bare metal; the boot stub, the IDT stubs and the heap exist only there.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cpu;
pub mod debug_exit;
pub mod layout;
pub mod mmio;
pub mod phys;
pub mod port;
pub mod serial;
#[cfg(target_os = "none")]
pub mod tables;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
pub mod efi;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
pub mod svm;
