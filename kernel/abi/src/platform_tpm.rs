//! The platform TPM's window a domain may be given (the vTPM manager, issue 12): TIS locality
//! 1's register page, mapped at its own address by the boot manifest's `platform_tpm=<type>`
//! once the policy grants `tpm { use }` on that `tpm_locality` type. The hypervisor keeps
//! locality 2 and up (PCRs 20–22) for itself; locality 0 is nobody's.

/// The locality a domain may hold.
pub const LOCALITY: u8 = 1;

/// Guest-physical (= host-physical) address of locality 1's 4 KiB TIS register page.
pub const TIS_PAGE: u64 = 0xfed4_0000 + 0x1000 * LOCALITY as u64;

/// The page's size: every register of one locality.
pub const TIS_PAGE_SIZE: u64 = 0x1000;

/// The number the boot-time grant is audited under (the start of the vTPM manager's call range
/// 60..63; no hypercall has it yet).
pub const PLATFORM_TPM_BASE: u64 = 60;
