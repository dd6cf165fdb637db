//! A domain's vCPU record (`warden_abi::introspect::VcpuRecord`) to and from the VMCB: capture
//! reads the state-save area, restore checks a record and builds the VMCB a restored domain
//! runs with. The check admits only a state the domain could have reached itself under
//! Warden's intercepts (the `crwrite` rule for CR0/CR4, EFER it cannot write, MSRs it cannot
//! write left at their start values, a 64-bit code segment), so a restore never gives a domain
//! more than running would have.

use warden_abi::introspect::{SegmentRecord, VcpuProblem, VcpuRecord, gpr, seg};

use crate::construct::{VmcbParams, control_vmcb};
use crate::intercept::{EVENT_INJ_GP, canonical, pat_valid};
use crate::vmcb::{self, EFER_LMA, EFER_LME, EFER_NXE, EFER_SVME, Segment, Vmcb, field};

/// The only EFER a domain runs with (it cannot write EFER; SVME is the hypervisor's own).
pub const DOMAIN_EFER: u64 = EFER_LME | EFER_LMA | EFER_NXE;
/// DR6 and DR7 as every domain has them (every debug-register access is intercepted).
pub const DR6: u64 = 0xffff_0ff0;
pub const DR7: u64 = 0x400;
/// MXCSR bits FXRSTOR accepts on every SSE2 CPU (all but DAZ, which older CPUs lack; anything
/// else would raise #GP in the hypervisor).
pub const MXCSR_ACCEPTED: u32 = 0xffbf;
/// RFLAGS bits that may be set: CF PF AF ZF SF TF IF DF OF IOPL NT RF AC VIF VIP ID, bit 1 always
/// (VM, bit 17, is never a 64-bit domain's).
const RFLAGS_ALLOWED: u64 = 0x3f_7fd7 & !(1 << 17);

fn seg_to(s: &SegmentRecord) -> Segment {
    Segment {
        selector: s.selector,
        attrib: s.attrib,
        limit: s.limit,
        base: s.base,
    }
}

fn seg_from(s: &Segment) -> SegmentRecord {
    SegmentRecord {
        selector: s.selector,
        attrib: s.attrib,
        limit: s.limit,
        base: s.base,
    }
}

/// The record of a paused domain: its VMCB page, the general registers the hypervisor keeps
/// (`gprs` in [`gpr`] order; RAX and RSP are taken from the VMCB), its FXSAVE image and its
/// TSC as it sees it.
pub fn capture(page: &[u8; 4096], gprs: [u64; 16], fx: &[u8; 512], tsc: u64) -> VcpuRecord {
    let v = Vmcb::decode(page);
    let mut g = gprs;
    g[gpr::RAX] = v.rax;
    g[gpr::RSP] = v.rsp;
    let mut segments = [SegmentRecord::default(); seg::COUNT];
    for (i, s) in [
        &v.es, &v.cs, &v.ss, &v.ds, &v.fs, &v.gs, &v.gdtr, &v.ldtr, &v.idtr, &v.tr,
    ]
    .into_iter()
    .enumerate()
    {
        segments[i] = seg_from(s);
    }
    VcpuRecord {
        version: VcpuRecord::VERSION,
        cpl: u32::from(v.cpl),
        gprs: g,
        rip: v.rip,
        rflags: v.rflags,
        cr0: v.cr0,
        cr2: v.cr2,
        cr3: v.cr3,
        cr4: v.cr4,
        efer: v.efer & !EFER_SVME,
        dr6: v.dr6,
        dr7: v.dr7,
        pat: v.g_pat,
        star: vmcb::read(page, field::STAR),
        lstar: vmcb::read(page, field::LSTAR),
        cstar: vmcb::read(page, field::CSTAR),
        sfmask: vmcb::read(page, field::SFMASK),
        kernel_gs_base: vmcb::read(page, field::KERNEL_GS_BASE),
        tsc,
        event_inj: v.event_inj,
        segments,
        fx: *fx,
    }
}

/// Whether `r` is a state a domain with `memory_bytes` of memory could be in, CR4 bits checked
/// against `cr4_allowed` (the `crwrite` rule's set for this CPU).
///
/// # Errors
/// The first problem found.
pub fn check(r: &VcpuRecord, memory_bytes: u64, cr4_allowed: u64) -> Result<(), VcpuProblem> {
    const ATTR_P: u16 = 1 << 7;
    const ATTR_L: u16 = 1 << 9;
    const ATTR_D: u16 = 1 << 10;
    if r.version != VcpuRecord::VERSION {
        return Err(VcpuProblem::Version);
    }
    if !crate::crwrite::allowed(0, r.cr0, cr4_allowed) {
        return Err(VcpuProblem::Cr0);
    }
    if !crate::crwrite::allowed(4, r.cr4, cr4_allowed) {
        return Err(VcpuProblem::Cr4);
    }
    if r.efer != DOMAIN_EFER {
        return Err(VcpuProblem::Efer);
    }
    let s = &r.segments;
    let addresses = [
        r.rip,
        r.kernel_gs_base,
        s[seg::FS].base,
        s[seg::GS].base,
        s[seg::GDTR].base,
        s[seg::IDTR].base,
        s[seg::LDTR].base,
        s[seg::TR].base,
    ];
    if !addresses.iter().all(|&a| canonical(a)) {
        return Err(VcpuProblem::NotCanonical);
    }
    if r.rflags & !RFLAGS_ALLOWED != 0 || r.rflags & 2 == 0 {
        return Err(VcpuProblem::Rflags);
    }
    let cs = s[seg::CS].attrib;
    if cs & ATTR_P == 0
        || cs & ATTR_L == 0
        || cs & ATTR_D != 0
        || r.cpl > 3
        || u32::from((cs >> 5) & 3) != r.cpl
    {
        return Err(VcpuProblem::CodeSegment);
    }
    // PWT and PCD may be set; everything else below bit 12 is reserved (no PCIDE in CR4's
    // allowed set without PCID, and then the low bits are a PCID the domain may use).
    let pcid = r.cr4 & (1 << 17) != 0;
    let base = r.cr3 & !0xfff;
    if base >= memory_bytes || (!pcid && r.cr3 & 0xfff & !0x18 != 0) {
        return Err(VcpuProblem::Cr3);
    }
    let msrs_at_start = r.star == 0 && r.lstar == 0 && r.cstar == 0 && r.sfmask == 0;
    if !pat_valid(r.pat) || r.dr6 != DR6 || r.dr7 != DR7 || !msrs_at_start {
        return Err(VcpuProblem::Msr);
    }
    if r.mxcsr() & !MXCSR_ACCEPTED != 0 || !(r.event_inj == 0 || r.event_inj == EVENT_INJ_GP) {
        return Err(VcpuProblem::Fpu);
    }
    Ok(())
}

/// The VMCB a restored domain runs with: the control area every domain has (nested paging on
/// `npt_root`) and the record's state (EFER with SVME added). Call only after [`check`].
/// KERNEL_GS_BASE, which [`Vmcb`] does not carry, is set by the caller from the record.
pub fn restored_vmcb(r: &VcpuRecord, npt_root: u64, p: VmcbParams) -> Vmcb {
    let s = &r.segments;
    Vmcb {
        event_inj: r.event_inj,
        es: seg_to(&s[seg::ES]),
        cs: seg_to(&s[seg::CS]),
        ss: seg_to(&s[seg::SS]),
        ds: seg_to(&s[seg::DS]),
        fs: seg_to(&s[seg::FS]),
        gs: seg_to(&s[seg::GS]),
        gdtr: seg_to(&s[seg::GDTR]),
        ldtr: seg_to(&s[seg::LDTR]),
        idtr: seg_to(&s[seg::IDTR]),
        tr: seg_to(&s[seg::TR]),
        cpl: r.cpl as u8,
        efer: r.efer | EFER_SVME,
        cr0: r.cr0,
        cr2: r.cr2,
        cr3: r.cr3,
        cr4: r.cr4,
        dr6: r.dr6,
        dr7: r.dr7,
        rflags: r.rflags,
        rip: r.rip,
        rsp: r.gprs[gpr::RSP],
        rax: r.gprs[gpr::RAX],
        g_pat: r.pat,
        ..control_vmcb(npt_root, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::construct::{GUEST_CR0, GUEST_CR4};

    const MEM: u64 = 4 << 20;
    const CR4_ALLOWED: u64 = 0x6b8 | 1 << 16;

    /// The record of a domain as Warden starts it, after it ran a while.
    fn good() -> VcpuRecord {
        let mut r = VcpuRecord {
            cpl: 0,
            rip: 0x20_1234,
            rflags: 0x246,
            cr0: GUEST_CR0,
            cr3: 0x10_0000,
            cr4: GUEST_CR4,
            efer: DOMAIN_EFER,
            dr6: DR6,
            dr7: DR7,
            pat: 0x0007_0406_0007_0406,
            tsc: 123_456_789,
            ..VcpuRecord::default()
        };
        r.segments[seg::CS] = SegmentRecord {
            selector: 8,
            attrib: 0xa9b,
            limit: 0xffff_ffff,
            base: 0,
        };
        r.segments[seg::SS] = SegmentRecord {
            selector: 16,
            attrib: 0xc93,
            limit: 0xffff_ffff,
            base: 0,
        };
        r.segments[seg::TR] = SegmentRecord {
            selector: 0,
            attrib: 0x8b,
            limit: 0x67,
            base: 0,
        };
        r.gprs[gpr::RSP] = 0x1f_fff0;
        r.gprs[gpr::RAX] = 7;
        r.fx[24..26].copy_from_slice(&[0x80, 0x1f]);
        r
    }

    #[test]
    fn records_a_domain_could_not_reach_are_refused() {
        type Edit = fn(&mut VcpuRecord);
        let cases: &[(&str, Edit, Option<VcpuProblem>)] = &[
            ("as captured", |_| {}, None),
            (
                "ring 3",
                |r| {
                    r.cpl = 3;
                    r.segments[seg::CS].attrib = 0xafb;
                },
                None,
            ),
            ("pending #GP", |r| r.event_inj = EVENT_INJ_GP, None),
            ("FSGSBASE allowed", |r| r.cr4 |= 1 << 16, None),
            ("version 2", |r| r.version = 2, Some(VcpuProblem::Version)),
            (
                "CR0 without paging",
                |r| r.cr0 &= !(1 << 31),
                Some(VcpuProblem::Cr0),
            ),
            ("CR0.CD", |r| r.cr0 |= 1 << 30, Some(VcpuProblem::Cr0)),
            (
                "CR4 without PAE",
                |r| r.cr4 &= !(1 << 5),
                Some(VcpuProblem::Cr4),
            ),
            ("CR4.PCE", |r| r.cr4 |= 1 << 8, Some(VcpuProblem::Cr4)),
            (
                "CR4.SMEP not offered",
                |r| r.cr4 |= 1 << 20,
                Some(VcpuProblem::Cr4),
            ),
            (
                "EFER.SVME",
                |r| r.efer |= EFER_SVME,
                Some(VcpuProblem::Efer),
            ),
            ("EFER.SCE", |r| r.efer |= 1, Some(VcpuProblem::Efer)),
            (
                "EFER without long mode",
                |r| r.efer = EFER_NXE,
                Some(VcpuProblem::Efer),
            ),
            (
                "RIP not canonical",
                |r| r.rip = 0x0000_8000_0000_0000,
                Some(VcpuProblem::NotCanonical),
            ),
            (
                "GS base not canonical",
                |r| r.segments[seg::GS].base = 1 << 63,
                Some(VcpuProblem::NotCanonical),
            ),
            (
                "IDTR not canonical",
                |r| r.segments[seg::IDTR].base = 0x1234_0000_0000_0000,
                Some(VcpuProblem::NotCanonical),
            ),
            (
                "KERNEL_GS_BASE not canonical",
                |r| r.kernel_gs_base = 0x00f0_0000_0000_0000,
                Some(VcpuProblem::NotCanonical),
            ),
            (
                "RFLAGS.VM",
                |r| r.rflags |= 1 << 17,
                Some(VcpuProblem::Rflags),
            ),
            (
                "RFLAGS reserved bit 3",
                |r| r.rflags |= 1 << 3,
                Some(VcpuProblem::Rflags),
            ),
            (
                "RFLAGS bit 1 clear",
                |r| r.rflags &= !2,
                Some(VcpuProblem::Rflags),
            ),
            (
                "RFLAGS high",
                |r| r.rflags |= 1 << 40,
                Some(VcpuProblem::Rflags),
            ),
            (
                "32-bit code",
                |r| r.segments[seg::CS].attrib = 0xc9b,
                Some(VcpuProblem::CodeSegment),
            ),
            (
                "L and D",
                |r| r.segments[seg::CS].attrib = 0xe9b,
                Some(VcpuProblem::CodeSegment),
            ),
            (
                "CS not present",
                |r| r.segments[seg::CS].attrib = 0xa1b,
                Some(VcpuProblem::CodeSegment),
            ),
            (
                "CPL 3 with a ring-0 CS",
                |r| r.cpl = 3,
                Some(VcpuProblem::CodeSegment),
            ),
            ("CPL 7", |r| r.cpl = 7, Some(VcpuProblem::CodeSegment)),
            ("CR3 beyond memory", |r| r.cr3 = MEM, Some(VcpuProblem::Cr3)),
            (
                "CR3 far beyond memory",
                |r| r.cr3 = 0xdead_b000,
                Some(VcpuProblem::Cr3),
            ),
            (
                "CR3 reserved low bits",
                |r| r.cr3 |= 0x1,
                Some(VcpuProblem::Cr3),
            ),
            (
                "PAT reserved type",
                |r| r.pat = 0x0007_0406_0007_0402,
                Some(VcpuProblem::Msr),
            ),
            ("DR7 breakpoint", |r| r.dr7 |= 1, Some(VcpuProblem::Msr)),
            ("DR6 changed", |r| r.dr6 = 0, Some(VcpuProblem::Msr)),
            ("LSTAR set", |r| r.lstar = 0x20_0000, Some(VcpuProblem::Msr)),
            ("SFMASK set", |r| r.sfmask = 0x200, Some(VcpuProblem::Msr)),
            (
                "MXCSR reserved bit",
                |r| r.fx[26] = 1,
                Some(VcpuProblem::Fpu),
            ),
            ("MXCSR DAZ", |r| r.fx[24] |= 0x40, Some(VcpuProblem::Fpu)),
            (
                "pending event not ours",
                |r| r.event_inj = 0x8000_0e0e,
                Some(VcpuProblem::Fpu),
            ),
        ];
        for (what, edit, want) in cases {
            let mut r = good();
            edit(&mut r);
            assert_eq!(check(&r, MEM, CR4_ALLOWED).err(), *want, "{what}");
        }
    }

    #[test]
    fn a_captured_vmcb_restores_to_the_same_state_with_the_hypervisors_control_area() {
        let p = VmcbParams {
            asid: 5,
            iopm_pa: 0x10_0000,
            msrpm_pa: 0x20_0000,
        };
        let r = good();
        let v = restored_vmcb(&r, 0x30_0000, p);
        assert_eq!(v.check(), Ok(()));
        assert_eq!(v.efer, DOMAIN_EFER | EFER_SVME);
        assert_eq!(
            (v.asid, v.n_cr3, v.intercept_misc2),
            (5, 0x30_0000, crate::construct::INTERCEPT_MISC2)
        );
        let mut page = [0u8; 4096];
        v.encode(&mut page);
        let mut gprs = r.gprs;
        gprs[gpr::RAX] = 0;
        gprs[gpr::RSP] = 0;
        let back = capture(&page, gprs, &r.fx, r.tsc);
        assert_eq!(back, r);
        assert_eq!(check(&back, MEM, CR4_ALLOWED), Ok(()));
    }
}
