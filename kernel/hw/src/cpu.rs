//! CPU identification, control registers, MSRs and halting.

use core::arch::x86_64::{CpuidResult, __cpuid_count};

/// Executes CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    // CPUID is unprivileged and side-effect free on every x86-64 CPU. The call is wrapped in an
    // (allowed) unsafe block because older toolchains declare the intrinsic `unsafe`.
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 processor and only reads identification registers.
    unsafe {
        __cpuid_count(leaf, subleaf)
    }
}

/// The CPU vendor string ("AuthenticAMD", "GenuineIntel", ...).
pub fn vendor() -> [u8; 12] {
    let r = cpuid(0, 0);
    let mut v = [0u8; 12];
    v[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..12].copy_from_slice(&r.ecx.to_le_bytes());
    v
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Reads CR3 (the physical address of the active PML4, plus flags).
pub fn cr3() -> u64 {
    let (frame, flags) = x86_64::registers::control::Cr3::read_raw();
    frame.start_address().as_u64() | u64::from(flags)
}

/// Reads CR0.
pub fn cr0() -> u64 {
    x86_64::registers::control::Cr0::read_raw()
}

/// Reads CR4.
pub fn cr4() -> u64 {
    x86_64::registers::control::Cr4::read_raw()
}

/// Reads a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU (reading an absent MSR raises #GP).
pub(crate) unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the caller guarantees the MSR exists; reading has no side effects.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).read() }
}

/// Writes a model-specific register.
///
/// # Safety
/// `msr` must exist and `value` must not break the hypervisor's invariants (paging, EFER...).
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // its users (SVM) exist only on bare metal
pub(crate) unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: upheld by the caller.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(value) }
}

/// The EFER MSR.
pub const MSR_EFER: u32 = 0xc000_0080;

/// Reads EFER (always present in long mode).
pub fn efer() -> u64 {
    // SAFETY: EFER exists on every x86-64 CPU running in long mode.
    unsafe { rdmsr(MSR_EFER) }
}

/// IA32_APIC_BASE: the local APIC's physical base and its global enable bit.
const MSR_APIC_BASE: u32 = 0x1b;

/// The local APIC's physical base, if the CPU has one (CPUID.1:EDX.APIC) and it is globally
/// enabled (IA32_APIC_BASE bit 11) in xAPIC mode (not x2APIC, bit 10, whose registers are MSRs).
pub fn apic_base() -> Option<u64> {
    if cpuid(1, 0).edx & (1 << 9) == 0 {
        return None;
    }
    // SAFETY: IA32_APIC_BASE exists on every CPU that reports an APIC in CPUID.1:EDX bit 9.
    let v = unsafe { rdmsr(MSR_APIC_BASE) };
    (v & (1 << 11) != 0 && v & (1 << 10) == 0).then_some(v & 0x000f_ffff_ffff_f000)
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged here (CR4.TSD is never set) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Enables interrupts and halts until one arrives.
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Disables interrupts.
pub fn disable_interrupts() {
    x86_64::instructions::interrupts::disable();
}

/// Enables interrupts.
pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

/// Disables interrupts and halts; used when there is nothing left to do.
pub fn halt_forever() {
    x86_64::instructions::interrupts::disable();
    x86_64::instructions::hlt();
}

/// Reads the byte at virtual address `addr` on purpose, to provoke a fault (the test-only
/// `test_fault=` switch). Returns only if the address was mapped.
pub fn touch(addr: u64) -> u8 {
    // SAFETY: a volatile read has no effect on Rust-visible state; if `addr` is unmapped the CPU
    // raises #PF, whose handler reports it and never returns here.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}
