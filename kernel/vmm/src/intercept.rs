//! What happens when a domain touches an MSR or an I/O port (all of them are intercepted).
//!
//! The rule (documented in `docs/domains.md` too):
//! - **MSRs.** A small set is virtualised in the VMCB: `FS_BASE`, `GS_BASE`, `KERNEL_GS_BASE`
//!   (read/write), `PAT` (read/write, valid memory types only), `EFER` (read; SVME hidden),
//!   `TSC` (read). Reading any other MSR injects #GP, as real hardware does for a missing
//!   MSR, so an OS may probe. Writing any other MSR (or an invalid PAT/EFER write) is a
//!   policy violation: the domain is stopped.
//! - **I/O ports.** Domains own no devices: any port access stops the domain.

use crate::vmcb::{Field, field};

/// Size of the MSR permission map (two pages) and the I/O permission map (three pages); both
/// are filled with ones so that every access is intercepted.
pub const MSRPM_BYTES: usize = 8192;
pub const IOPM_BYTES: usize = 12288;

pub const MSR_TSC: u32 = 0x10;
pub const MSR_PAT: u32 = 0x277;
pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_FS_BASE: u32 = 0xc000_0100;
pub const MSR_GS_BASE: u32 = 0xc000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// What to do with one MSR access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrAction {
    /// Read the value from this VMCB field (EFER with SVME masked).
    ReadField(Field, u64),
    /// Write the value (already validated) into this VMCB field.
    WriteField(Field),
    /// Return the TSC.
    ReadTsc,
    /// Inject #GP into the domain.
    InjectGp,
    /// Stop the domain.
    Kill,
}

pub(crate) fn pat_valid(v: u64) -> bool {
    // Memory types 0 (UC), 1 (WC), 4 (WT), 5 (WP), 6 (WB), 7 (UC-); 2 and 3 are reserved.
    v.to_le_bytes().iter().all(|&b| matches!(b, 0 | 1 | 4 | 5 | 6 | 7))
}

pub(crate) fn canonical(v: u64) -> bool {
    let top = v >> 47;
    top == 0 || top == (1 << 17) - 1
}

/// The VMCB field behind a segment-base MSR.
fn base_field(msr: u32) -> Option<Field> {
    match msr {
        MSR_FS_BASE => Some(Field { offset: field::FS + field::SEG_BASE, width: 8 }),
        MSR_GS_BASE => Some(Field { offset: field::GS + field::SEG_BASE, width: 8 }),
        MSR_KERNEL_GS_BASE => Some(field::KERNEL_GS_BASE),
        _ => None,
    }
}

/// Applies the rule to `RDMSR`/`WRMSR` of `msr` (`value` = EDX:EAX for writes).
pub fn msr(msr: u32, write: bool, value: u64) -> MsrAction {
    if let Some(f) = base_field(msr) {
        return match (write, canonical(value)) {
            (false, _) => MsrAction::ReadField(f, u64::MAX),
            (true, true) => MsrAction::WriteField(f),
            (true, false) => MsrAction::InjectGp,
        };
    }
    match (msr, write) {
        (MSR_PAT, false) => MsrAction::ReadField(field::G_PAT, u64::MAX),
        (MSR_PAT, true) if pat_valid(value) => MsrAction::WriteField(field::G_PAT),
        (MSR_EFER, false) => MsrAction::ReadField(field::EFER, !crate::vmcb::EFER_SVME),
        (MSR_TSC, false) => MsrAction::ReadTsc,
        (_, false) => MsrAction::InjectGp,
        (_, true) => MsrAction::Kill,
    }
}

/// What to do with one port access: always stop the domain (it owns no devices).
pub fn port(_port: u16, _input: bool) -> PortAction {
    PortAction::Kill
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortAction {
    Kill,
}

/// EVENTINJ value for a #GP(0) exception.
pub const EVENT_INJ_GP: u64 = 13 | 3 << 8 | 1 << 11 | 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msr_rule_table() {
        let fs = Field { offset: field::FS + field::SEG_BASE, width: 8 };
        let cases: &[((u32, bool, u64), MsrAction)] = &[
            ((MSR_FS_BASE, false, 0), MsrAction::ReadField(fs, u64::MAX)),
            ((MSR_FS_BASE, true, 0x1234), MsrAction::WriteField(fs)),
            ((MSR_GS_BASE, true, 0x8000_0000_0000), MsrAction::InjectGp),
            ((MSR_KERNEL_GS_BASE, true, 0xffff_8000_0000_0000), MsrAction::WriteField(field::KERNEL_GS_BASE)),
            ((MSR_PAT, false, 0), MsrAction::ReadField(field::G_PAT, u64::MAX)),
            ((MSR_PAT, true, 0x0007_0406_0007_0406), MsrAction::WriteField(field::G_PAT)),
            ((MSR_PAT, true, 0x0002_0000_0000_0000), MsrAction::Kill),
            ((MSR_EFER, false, 0), MsrAction::ReadField(field::EFER, !(1 << 12))),
            ((MSR_EFER, true, 0), MsrAction::Kill),
            ((MSR_TSC, false, 0), MsrAction::ReadTsc),
            ((MSR_TSC, true, 0), MsrAction::Kill),
            ((0xc000_0082, false, 0), MsrAction::InjectGp), // LSTAR read: probing is allowed
            ((0xc000_0082, true, 0), MsrAction::Kill),      // LSTAR write: violation
            ((0x1b, true, 0), MsrAction::Kill),             // APIC base
            ((0xc001_0117, true, 0), MsrAction::Kill),      // VM_HSAVE_PA
            ((0xdead_beef, false, 0), MsrAction::InjectGp),
        ];
        for &((m, w, v), want) in cases {
            assert_eq!(msr(m, w, v), want, "msr {m:#x} write={w}");
        }
    }

    #[test]
    fn ports_are_always_denied() {
        for p in [0u16, 0x20, 0x3f8, 0xf4, 0xcf8, 0xffff] {
            assert_eq!(port(p, true), PortAction::Kill);
            assert_eq!(port(p, false), PortAction::Kill);
        }
    }

    #[test]
    fn gp_event_encoding() {
        // vector 13, type 3 (exception), error code valid, valid.
        assert_eq!(EVENT_INJ_GP, 0x8000_0b0d);
    }
}
