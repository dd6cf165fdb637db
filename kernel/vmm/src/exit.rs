//! VM exit decoding: the raw `EXITCODE`/`EXITINFO` words become a typed [`Exit`] in one place.

/// Exit codes (APM vol. 2, appendix C).
pub mod code {
    /// MOV to CR0..CR15 (and CLTS/LMSW for CR0).
    pub const CR_WRITE_BASE: u64 = 0x10;
    /// MOV from/to DR0..DR15 (reads 0x20..0x2f, writes 0x30..0x3f).
    pub const DR_BASE: u64 = 0x20;
    pub const EXCP_BASE: u64 = 0x40;
    pub const INTR: u64 = 0x60;
    pub const NMI: u64 = 0x61;
    pub const SMI: u64 = 0x62;
    pub const INIT: u64 = 0x63;
    pub const RDPMC: u64 = 0x6f;
    pub const CPUID: u64 = 0x72;
    pub const INVD: u64 = 0x76;
    pub const HLT: u64 = 0x78;
    pub const INVLPGA: u64 = 0x7a;
    pub const IOIO: u64 = 0x7b;
    pub const MSR: u64 = 0x7c;
    pub const TASK_SWITCH: u64 = 0x7d;
    pub const FERR_FREEZE: u64 = 0x7e;
    pub const SHUTDOWN: u64 = 0x7f;
    pub const VMRUN: u64 = 0x80;
    pub const VMMCALL: u64 = 0x81;
    pub const VMLOAD: u64 = 0x82;
    pub const VMSAVE: u64 = 0x83;
    pub const STGI: u64 = 0x84;
    pub const CLGI: u64 = 0x85;
    pub const SKINIT: u64 = 0x86;
    pub const ICEBP: u64 = 0x88;
    pub const WBINVD: u64 = 0x89;
    pub const MONITOR: u64 = 0x8a;
    pub const MWAIT: u64 = 0x8b;
    pub const MWAIT_ARMED: u64 = 0x8c;
    pub const XSETBV: u64 = 0x8d;
    pub const NPF: u64 = 0x400;
    /// QEMU reports VMEXIT_INVALID (-1) as 0xffff_ffff in the low 32 bits only.
    pub const INVALID_LOW32: u64 = 0xffff_ffff;
}

/// A port access (`IOIO` exit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortAccess {
    pub port: u16,
    pub input: bool,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    pub string: bool,
    pub rep: bool,
    /// RIP of the next instruction (EXITINFO2).
    pub next_rip: u64,
}

/// A nested page fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NestedFault {
    pub gpa: u64,
    /// The nested translation was present (so this is a permission fault).
    pub present: bool,
    pub write: bool,
    pub fetch: bool,
    /// The fault happened while the CPU walked the guest's own page tables.
    pub in_guest_walk: bool,
}

/// Why the guest stopped running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A physical interrupt is pending (the scheduler's timer or another device).
    Interrupt,
    Nmi,
    Smi,
    Init,
    Cpuid,
    Hlt,
    /// A write to this control register (only CR0 and CR4 are intercepted).
    CrWrite(u8),
    Hypercall,
    /// RDMSR (`write == false`) or WRMSR; the MSR number is in the guest's RCX.
    Msr { write: bool },
    Io(PortAccess),
    NestedPageFault(NestedFault),
    /// An intercepted exception with its error code (EXITINFO1) and, for #PF, the address.
    Exception { vector: u8, error_code: u32, info2: u64 },
    /// The guest triple-faulted (or otherwise entered shutdown).
    Shutdown,
    /// An intercepted instruction the guest may never execute (SVM instructions, INVD, ...).
    ForbiddenInstruction(&'static str),
    TaskSwitch,
    /// VMRUN refused the guest state.
    InvalidState,
    /// An exit code this hypervisor does not enable.
    Unknown(u64),
}

/// Decodes the exit words read from the VMCB.
pub fn decode(exit_code: u64, info1: u64, info2: u64) -> Exit {
    if exit_code & 0xffff_ffff == code::INVALID_LOW32 {
        return Exit::InvalidState;
    }
    match exit_code {
        code::INTR => Exit::Interrupt,
        code::NMI => Exit::Nmi,
        code::SMI => Exit::Smi,
        code::INIT => Exit::Init,
        code::CPUID => Exit::Cpuid,
        code::HLT => Exit::Hlt,
        code::VMMCALL => Exit::Hypercall,
        code::MSR => Exit::Msr { write: info1 & 1 != 0 },
        code::IOIO => Exit::Io(PortAccess {
            port: (info1 >> 16) as u16,
            input: info1 & 1 != 0,
            size: if info1 & (1 << 4) != 0 {
                1
            } else if info1 & (1 << 5) != 0 {
                2
            } else {
                4
            },
            string: info1 & (1 << 2) != 0,
            rep: info1 & (1 << 3) != 0,
            next_rip: info2,
        }),
        code::NPF => Exit::NestedPageFault(NestedFault {
            gpa: info2,
            present: info1 & 1 != 0,
            write: info1 & 2 != 0,
            fetch: info1 & (1 << 4) != 0,
            in_guest_walk: info1 & (1 << 33) != 0,
        }),
        c @ code::CR_WRITE_BASE..=0x1f => Exit::CrWrite((c - code::CR_WRITE_BASE) as u8),
        code::DR_BASE..=0x3f => Exit::ForbiddenInstruction("MOV DR"),
        code::RDPMC => Exit::ForbiddenInstruction("RDPMC"),
        c @ code::EXCP_BASE..=0x5f => {
            Exit::Exception { vector: (c - code::EXCP_BASE) as u8, error_code: info1 as u32, info2 }
        }
        code::SHUTDOWN => Exit::Shutdown,
        code::TASK_SWITCH => Exit::TaskSwitch,
        code::VMRUN => Exit::ForbiddenInstruction("VMRUN"),
        code::VMLOAD => Exit::ForbiddenInstruction("VMLOAD"),
        code::VMSAVE => Exit::ForbiddenInstruction("VMSAVE"),
        code::STGI => Exit::ForbiddenInstruction("STGI"),
        code::CLGI => Exit::ForbiddenInstruction("CLGI"),
        code::SKINIT => Exit::ForbiddenInstruction("SKINIT"),
        code::INVLPGA => Exit::ForbiddenInstruction("INVLPGA"),
        code::INVD => Exit::ForbiddenInstruction("INVD"),
        code::WBINVD => Exit::ForbiddenInstruction("WBINVD"),
        code::ICEBP => Exit::ForbiddenInstruction("ICEBP"),
        code::MONITOR => Exit::ForbiddenInstruction("MONITOR"),
        code::MWAIT | code::MWAIT_ARMED => Exit::ForbiddenInstruction("MWAIT"),
        code::XSETBV => Exit::ForbiddenInstruction("XSETBV"),
        code::FERR_FREEZE => Exit::ForbiddenInstruction("FERR_FREEZE"),
        other => Exit::Unknown(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_exit_kind() {
        let cases: &[((u64, u64, u64), Exit)] = &[
            ((0x60, 0, 0), Exit::Interrupt),
            ((0x72, 0, 0), Exit::Cpuid),
            ((0x78, 0, 0), Exit::Hlt),
            ((0x10, 0, 0), Exit::CrWrite(0)),
            ((0x14, 0, 0), Exit::CrWrite(4)),
            ((0x81, 0, 0), Exit::Hypercall),
            ((0x7c, 0, 0), Exit::Msr { write: false }),
            ((0x7c, 1, 0), Exit::Msr { write: true }),
            ((0x7f, 0, 0), Exit::Shutdown),
            ((0x80, 0, 0), Exit::ForbiddenInstruction("VMRUN")),
            ((0x8d, 0, 0), Exit::ForbiddenInstruction("XSETBV")),
            ((0x20, 0, 0), Exit::ForbiddenInstruction("MOV DR")),
            ((0x37, 0, 0), Exit::ForbiddenInstruction("MOV DR")),
            ((0x6f, 0, 0), Exit::ForbiddenInstruction("RDPMC")),
            // OUT dx, al to port 0x3f8: size 8 (bit 4), output, next RIP in info2.
            ((0x7b, 0x03f8_0010, 0x20_0042),
                Exit::Io(PortAccess { port: 0x3f8, input: false, size: 1, string: false, rep: false, next_rip: 0x20_0042 })),
            // REP INSW from port 0x1f0.
            ((0x7b, 0x01f0_002d, 7),
                Exit::Io(PortAccess { port: 0x1f0, input: true, size: 2, string: true, rep: true, next_rip: 7 })),
            ((0x7b, 0x0cf8_0040, 9),
                Exit::Io(PortAccess { port: 0xcf8, input: false, size: 4, string: false, rep: false, next_rip: 9 })),
            // Read of unbacked memory: not present, final translation.
            ((0x400, 1 << 32, 0x4000_0000),
                Exit::NestedPageFault(NestedFault { gpa: 0x4000_0000, present: false, write: false, fetch: false, in_guest_walk: false })),
            ((0x400, (1 << 33) | 0x13, 0x1000),
                Exit::NestedPageFault(NestedFault { gpa: 0x1000, present: true, write: true, fetch: true, in_guest_walk: true })),
            ((0x4e, 0x2, 0xdead_b000), Exit::Exception { vector: 14, error_code: 2, info2: 0xdead_b000 }),
            ((0x48, 0, 0), Exit::Exception { vector: 8, error_code: 0, info2: 0 }),
            ((u64::MAX, 0, 0), Exit::InvalidState),
            ((0xffff_ffff, 0, 0), Exit::InvalidState),
            ((0x1234, 0, 0), Exit::Unknown(0x1234)),
        ];
        for &((c, i1, i2), want) in cases {
            assert_eq!(decode(c, i1, i2), want, "exit {c:#x}");
        }
    }

    #[test]
    fn every_code_decodes_without_panicking() {
        for c in 0..0x500 {
            let _ = decode(c, u64::MAX, u64::MAX);
        }
    }
}
