//! Warden's domain virtualization logic, free of hardware access so that all of it is tested on
//! the host: VMCB layout, nested and guest page-table construction, ELF loading, the boot
//! manifest, the scheduler, exit decoding, hypercall validation, the CPUID filter and the
//! MSR/port rules. The hypervisor (`kernel/hypervisor/src/svm`) wires it to the machine.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod budget;
pub mod construct;
pub mod cpuid;
pub mod crwrite;
pub mod domain;
pub mod elf;
pub mod exit;
pub mod fuzz;
pub mod guestpt;
pub mod hypercall;
pub mod intercept;
pub mod layout;
pub mod manifest;
pub mod pci;
pub mod sched;
pub mod vmcb;
pub mod vcpu;
// vTPM instance assignment from the manifest (issue 12).
pub mod vtpm;
