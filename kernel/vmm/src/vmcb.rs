//! The VMCB (AMD APM vol. 2, appendix B) as a typed struct, serialised to its 4 KiB page, plus
//! the handful of fields the run loop reads and writes on every exit.

use warden_core::mem::PhysMem;

/// Where a field sits in the page and how wide it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub width: usize,
}

const fn f(offset: usize, width: usize) -> Field {
    Field { offset, width }
}

/// Field offsets (control area at 0, state-save area at 0x400).
pub mod field {
    use super::{Field, f};
    pub const INTERCEPT_CR: Field = f(0x000, 4);
    pub const INTERCEPT_DR: Field = f(0x004, 4);
    pub const INTERCEPT_EXCEPTIONS: Field = f(0x008, 4);
    pub const INTERCEPT_MISC1: Field = f(0x00c, 4);
    pub const INTERCEPT_MISC2: Field = f(0x010, 4);
    pub const IOPM_BASE_PA: Field = f(0x040, 8);
    pub const MSRPM_BASE_PA: Field = f(0x048, 8);
    pub const TSC_OFFSET: Field = f(0x050, 8);
    pub const GUEST_ASID: Field = f(0x058, 4);
    pub const TLB_CONTROL: Field = f(0x05c, 1);
    pub const INT_CTL: Field = f(0x060, 8);
    pub const INT_SHADOW: Field = f(0x068, 8);
    pub const EXIT_CODE: Field = f(0x070, 8);
    pub const EXIT_INFO1: Field = f(0x078, 8);
    pub const EXIT_INFO2: Field = f(0x080, 8);
    pub const EXIT_INT_INFO: Field = f(0x088, 8);
    pub const NP_ENABLE: Field = f(0x090, 8);
    pub const EVENT_INJ: Field = f(0x0a8, 8);
    pub const N_CR3: Field = f(0x0b0, 8);
    pub const CLEAN_BITS: Field = f(0x0c0, 4);
    pub const NEXT_RIP: Field = f(0x0c8, 8);

    pub const ES: usize = 0x400;
    pub const CS: usize = 0x410;
    pub const SS: usize = 0x420;
    pub const DS: usize = 0x430;
    pub const FS: usize = 0x440;
    pub const GS: usize = 0x450;
    pub const GDTR: usize = 0x460;
    pub const LDTR: usize = 0x470;
    pub const IDTR: usize = 0x480;
    pub const TR: usize = 0x490;
    pub const CPL: Field = f(0x4cb, 1);
    pub const EFER: Field = f(0x4d0, 8);
    pub const CR4: Field = f(0x548, 8);
    pub const CR3: Field = f(0x550, 8);
    pub const CR0: Field = f(0x558, 8);
    pub const DR7: Field = f(0x560, 8);
    pub const DR6: Field = f(0x568, 8);
    pub const RFLAGS: Field = f(0x570, 8);
    pub const RIP: Field = f(0x578, 8);
    pub const RSP: Field = f(0x5d8, 8);
    pub const RAX: Field = f(0x5f8, 8);
    pub const STAR: Field = f(0x600, 8);
    pub const LSTAR: Field = f(0x608, 8);
    pub const CSTAR: Field = f(0x610, 8);
    pub const SFMASK: Field = f(0x618, 8);
    pub const KERNEL_GS_BASE: Field = f(0x620, 8);
    pub const CR2: Field = f(0x640, 8);
    pub const G_PAT: Field = f(0x668, 8);
    /// `base` within a segment register block.
    pub const SEG_BASE: usize = 8;
}

/// Reads a field from a VMCB page.
pub fn read(page: &[u8; 4096], fl: Field) -> u64 {
    let mut b = [0u8; 8];
    b[..fl.width].copy_from_slice(&page[fl.offset..fl.offset + fl.width]);
    u64::from_le_bytes(b)
}

/// Writes a field into a VMCB page (the value is truncated to the field's width).
pub fn write(page: &mut [u8; 4096], fl: Field, v: u64) {
    page[fl.offset..fl.offset + fl.width].copy_from_slice(&v.to_le_bytes()[..fl.width]);
}

/// The aligned 64-bit word holding a field, the field's bit shift in it, and its mask. Every
/// field lies inside one aligned word, so in-place access is one word load (and store).
fn word_of(fl: Field) -> (u64, u32, u64) {
    let shift = (fl.offset % 8) as u32 * 8;
    let mask = if fl.width == 8 { u64::MAX } else { (1u64 << (fl.width * 8)) - 1 };
    ((fl.offset - fl.offset % 8) as u64, shift, mask)
}

/// Reads a field of the VMCB page at physical address `vmcb_pa` in place (the run loop's access
/// to exit information and guest state).
pub fn get(mem: &impl PhysMem, vmcb_pa: u64, fl: Field) -> u64 {
    let (word, shift, mask) = word_of(fl);
    (mem.read_u64(vmcb_pa + word) >> shift) & mask
}

/// Writes a field of the VMCB page at `vmcb_pa` in place (truncated to the field's width).
pub fn set(mem: &mut impl PhysMem, vmcb_pa: u64, fl: Field, v: u64) {
    let (word, shift, mask) = word_of(fl);
    if mask == u64::MAX {
        mem.write_u64(vmcb_pa + word, v);
    } else {
        let old = mem.read_u64(vmcb_pa + word);
        mem.write_u64(vmcb_pa + word, (old & !(mask << shift)) | ((v & mask) << shift));
    }
}

/// `INTERCEPT_MISC1` bits.
pub mod misc1 {
    pub const INTR: u32 = 1 << 0;
    pub const NMI: u32 = 1 << 1;
    pub const SMI: u32 = 1 << 2;
    pub const INIT: u32 = 1 << 3;
    pub const CPUID: u32 = 1 << 18;
    pub const RDPMC: u32 = 1 << 15;
    pub const INVD: u32 = 1 << 22;
    pub const HLT: u32 = 1 << 24;
    pub const INVLPGA: u32 = 1 << 26;
    pub const IOIO_PROT: u32 = 1 << 27;
    pub const MSR_PROT: u32 = 1 << 28;
    pub const TASK_SWITCH: u32 = 1 << 29;
    pub const FERR_FREEZE: u32 = 1 << 30;
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// `INTERCEPT_MISC2` bits.
pub mod misc2 {
    pub const VMRUN: u32 = 1 << 0;
    pub const VMMCALL: u32 = 1 << 1;
    pub const VMLOAD: u32 = 1 << 2;
    pub const VMSAVE: u32 = 1 << 3;
    pub const STGI: u32 = 1 << 4;
    pub const CLGI: u32 = 1 << 5;
    pub const SKINIT: u32 = 1 << 6;
    pub const ICEBP: u32 = 1 << 8;
    pub const WBINVD: u32 = 1 << 9;
    pub const MONITOR: u32 = 1 << 10;
    pub const MWAIT: u32 = 1 << 11;
    pub const MWAIT_ARMED: u32 = 1 << 12;
    pub const XSETBV: u32 = 1 << 13;
}

/// `INT_CTL`: with V_INTR_MASKING the guest's RFLAGS.IF masks only virtual interrupts, so
/// physical interrupts (the scheduler's timer) always reach the INTR intercept.
pub const INT_CTL_V_INTR_MASKING: u64 = 1 << 24;
/// `TLB_CONTROL`: flush the whole TLB on VMRUN (QEMU has no flush-by-ASID).
pub const TLB_FLUSH_ALL: u64 = 1;
/// EFER bits.
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_NXE: u64 = 1 << 11;
pub const EFER_SVME: u64 = 1 << 12;

/// A segment register as the VMCB stores it (`attrib` is the packed 12-bit form:
/// type[3:0] S[4] DPL[6:5] P[7] AVL[8] L[9] D/B[10] G[11]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    pub selector: u16,
    pub attrib: u16,
    pub limit: u32,
    pub base: u64,
}

impl Segment {
    fn encode(&self, page: &mut [u8; 4096], at: usize) {
        page[at..at + 2].copy_from_slice(&self.selector.to_le_bytes());
        page[at + 2..at + 4].copy_from_slice(&self.attrib.to_le_bytes());
        page[at + 4..at + 8].copy_from_slice(&self.limit.to_le_bytes());
        page[at + 8..at + 16].copy_from_slice(&self.base.to_le_bytes());
    }

    fn decode(page: &[u8; 4096], at: usize) -> Self {
        Segment {
            selector: u16::from_le_bytes([page[at], page[at + 1]]),
            attrib: u16::from_le_bytes([page[at + 2], page[at + 3]]),
            limit: u32::from_le_bytes([page[at + 4], page[at + 5], page[at + 6], page[at + 7]]),
            base: read(page, Field { offset: at + 8, width: 8 }),
        }
    }
}

/// Everything Warden sets in a VMCB before the first VMRUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vmcb {
    // Control area.
    pub intercept_cr: u32,
    pub intercept_dr: u32,
    pub intercept_exceptions: u32,
    pub intercept_misc1: u32,
    pub intercept_misc2: u32,
    pub iopm_base_pa: u64,
    pub msrpm_base_pa: u64,
    pub asid: u32,
    pub tlb_control: u8,
    pub int_ctl: u64,
    pub np_enable: bool,
    pub n_cr3: u64,
    pub event_inj: u64,
    // State-save area.
    pub es: Segment,
    pub cs: Segment,
    pub ss: Segment,
    pub ds: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub gdtr: Segment,
    pub ldtr: Segment,
    pub idtr: Segment,
    pub tr: Segment,
    pub cpl: u8,
    pub efer: u64,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub dr6: u64,
    pub dr7: u64,
    pub rflags: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rax: u64,
    pub g_pat: u64,
}

impl Vmcb {
    /// Serialises into a VMCB page; reserved bytes and the clean bits are zero (QEMU
    /// implements no clean bits, and zero is always correct).
    pub fn encode(&self, page: &mut [u8; 4096]) {
        use field::*;
        page.fill(0);
        write(page, INTERCEPT_CR, u64::from(self.intercept_cr));
        write(page, INTERCEPT_DR, u64::from(self.intercept_dr));
        write(page, INTERCEPT_EXCEPTIONS, u64::from(self.intercept_exceptions));
        write(page, INTERCEPT_MISC1, u64::from(self.intercept_misc1));
        write(page, INTERCEPT_MISC2, u64::from(self.intercept_misc2));
        write(page, IOPM_BASE_PA, self.iopm_base_pa);
        write(page, MSRPM_BASE_PA, self.msrpm_base_pa);
        write(page, GUEST_ASID, u64::from(self.asid));
        write(page, TLB_CONTROL, u64::from(self.tlb_control));
        write(page, INT_CTL, self.int_ctl);
        write(page, NP_ENABLE, u64::from(self.np_enable));
        write(page, N_CR3, self.n_cr3);
        write(page, EVENT_INJ, self.event_inj);
        for (seg, at) in [
            (self.es, ES), (self.cs, CS), (self.ss, SS), (self.ds, DS), (self.fs, FS),
            (self.gs, GS), (self.gdtr, GDTR), (self.ldtr, LDTR), (self.idtr, IDTR), (self.tr, TR),
        ] {
            seg.encode(page, at);
        }
        write(page, CPL, u64::from(self.cpl));
        write(page, EFER, self.efer);
        write(page, CR0, self.cr0);
        write(page, CR2, self.cr2);
        write(page, CR3, self.cr3);
        write(page, CR4, self.cr4);
        write(page, DR6, self.dr6);
        write(page, DR7, self.dr7);
        write(page, RFLAGS, self.rflags);
        write(page, RIP, self.rip);
        write(page, RSP, self.rsp);
        write(page, RAX, self.rax);
        write(page, G_PAT, self.g_pat);
    }

    /// Reads a VMCB page back (for tests and diagnostics).
    pub fn decode(page: &[u8; 4096]) -> Self {
        use field::*;
        Vmcb {
            intercept_cr: read(page, INTERCEPT_CR) as u32,
            intercept_dr: read(page, INTERCEPT_DR) as u32,
            intercept_exceptions: read(page, INTERCEPT_EXCEPTIONS) as u32,
            intercept_misc1: read(page, INTERCEPT_MISC1) as u32,
            intercept_misc2: read(page, INTERCEPT_MISC2) as u32,
            iopm_base_pa: read(page, IOPM_BASE_PA),
            msrpm_base_pa: read(page, MSRPM_BASE_PA),
            asid: read(page, GUEST_ASID) as u32,
            tlb_control: read(page, TLB_CONTROL) as u8,
            int_ctl: read(page, INT_CTL),
            np_enable: read(page, NP_ENABLE) & 1 != 0,
            n_cr3: read(page, N_CR3),
            event_inj: read(page, EVENT_INJ),
            es: Segment::decode(page, ES),
            cs: Segment::decode(page, CS),
            ss: Segment::decode(page, SS),
            ds: Segment::decode(page, DS),
            fs: Segment::decode(page, FS),
            gs: Segment::decode(page, GS),
            gdtr: Segment::decode(page, GDTR),
            ldtr: Segment::decode(page, LDTR),
            idtr: Segment::decode(page, IDTR),
            tr: Segment::decode(page, TR),
            cpl: read(page, CPL) as u8,
            efer: read(page, EFER),
            cr0: read(page, CR0),
            cr2: read(page, CR2),
            cr3: read(page, CR3),
            cr4: read(page, CR4),
            dr6: read(page, DR6),
            dr7: read(page, DR7),
            rflags: read(page, RFLAGS),
            rip: read(page, RIP),
            rsp: read(page, RSP),
            rax: read(page, RAX),
            g_pat: read(page, G_PAT),
        }
    }
}

/// Problems VMRUN would refuse (APM 15.5.1 consistency checks we can see on our side), found
/// before the first VMRUN so the diagnostic names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmcbProblem {
    /// ASID 0 belongs to the host.
    AsidZero,
    /// VMRUN is not intercepted (required by the architecture).
    VmrunNotIntercepted,
    /// EFER.SVME is clear (VMRUN refuses such guests).
    EferSvmeClear,
    /// CS has both L and D set.
    CsLongAndDefault,
    /// EFER.LME and CR0.PG set without CR4.PAE.
    LongModeWithoutPae,
}

impl Vmcb {
    /// The consistency checks from the APM that matter for the guests Warden builds.
    pub fn check(&self) -> Result<(), VmcbProblem> {
        const ATTR_L: u16 = 1 << 9;
        const ATTR_D: u16 = 1 << 10;
        if self.asid == 0 {
            return Err(VmcbProblem::AsidZero);
        }
        if self.intercept_misc2 & misc2::VMRUN == 0 {
            return Err(VmcbProblem::VmrunNotIntercepted);
        }
        if self.efer & EFER_SVME == 0 {
            return Err(VmcbProblem::EferSvmeClear);
        }
        if self.cs.attrib & ATTR_L != 0 && self.cs.attrib & ATTR_D != 0 {
            return Err(VmcbProblem::CsLongAndDefault);
        }
        if self.efer & EFER_LME != 0 && self.cr0 & (1 << 31) != 0 && self.cr4 & (1 << 5) == 0 {
            return Err(VmcbProblem::LongModeWithoutPae);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vmcb {
        Vmcb {
            intercept_misc1: misc1::INTR | misc1::CPUID | misc1::SHUTDOWN,
            intercept_misc2: misc2::VMRUN | misc2::VMMCALL,
            intercept_dr: 0xffff_0000,
            iopm_base_pa: 0x1234_5000,
            msrpm_base_pa: 0x2345_6000,
            asid: 7,
            tlb_control: 1,
            int_ctl: INT_CTL_V_INTR_MASKING,
            np_enable: true,
            n_cr3: 0x9_9000,
            cs: Segment { selector: 8, attrib: 0xa9b, limit: 0xffff_ffff, base: 0 },
            ss: Segment { selector: 16, attrib: 0xc93, limit: 0xffff_ffff, base: 0 },
            tr: Segment { selector: 0, attrib: 0x8b, limit: 0x67, base: 0x1000 },
            efer: EFER_LME | EFER_LMA | EFER_SVME,
            cr0: 0x8000_0011,
            cr3: 0x3000,
            cr4: 0x20,
            rflags: 2,
            rip: 0x20_0000,
            rsp: 0x1f_fff8,
            rax: 0xdead,
            g_pat: 0x0007_0406_0007_0406,
            ..Vmcb::default()
        }
    }

    #[test]
    fn fields_land_at_the_architectural_offsets() {
        let mut page = [0xffu8; 4096];
        sample().encode(&mut page);
        // (offset, bytes) pairs straight from the APM's VMCB layout table.
        let expect: &[(usize, &[u8])] = &[
            (0x004, &[0, 0, 0xff, 0xff]),
            (0x00c, &(misc1::INTR | misc1::CPUID | misc1::SHUTDOWN).to_le_bytes()),
            (0x010, &[0x03, 0, 0, 0]),
            (0x040, &0x1234_5000u64.to_le_bytes()),
            (0x048, &0x2345_6000u64.to_le_bytes()),
            (0x058, &[7, 0, 0, 0, 1]),
            (0x063, &[0x01]), // V_INTR_MASKING is bit 24 of INT_CTL
            (0x090, &[1]),
            (0x0b0, &0x9_9000u64.to_le_bytes()),
            (0x0c0, &[0, 0, 0, 0]), // clean bits
            (0x410, &[8, 0, 0x9b, 0x0a, 0xff, 0xff, 0xff, 0xff]),
            (0x490, &[0, 0, 0x8b, 0, 0x67, 0, 0, 0, 0, 0x10]),
            (0x4d0, &0x1500u64.to_le_bytes()),
            (0x548, &[0x20]),
            (0x550, &0x3000u64.to_le_bytes()),
            (0x558, &0x8000_0011u64.to_le_bytes()),
            (0x570, &[2]),
            (0x578, &0x20_0000u64.to_le_bytes()),
            (0x5d8, &0x1f_fff8u64.to_le_bytes()),
            (0x5f8, &0xdeadu64.to_le_bytes()),
            (0x668, &0x0007_0406_0007_0406u64.to_le_bytes()),
        ];
        for (off, bytes) in expect {
            assert_eq!(&page[*off..off + bytes.len()], *bytes, "offset {off:#x}");
        }
        // Everything not written is zero (the 0xff fill is gone).
        assert_eq!(page[0x100], 0);
        assert_eq!(page[0xfff], 0);
    }

    #[test]
    fn encode_decode_round_trip() {
        let v = sample();
        let mut page = [0u8; 4096];
        v.encode(&mut page);
        assert_eq!(Vmcb::decode(&page), v);
    }

    #[test]
    fn hot_fields_read_and_write() {
        let mut page = [0u8; 4096];
        write(&mut page, field::RIP, 0x1122_3344_5566_7788);
        write(&mut page, field::TLB_CONTROL, 0x1ff);
        assert_eq!(read(&page, field::RIP), 0x1122_3344_5566_7788);
        assert_eq!(read(&page, field::TLB_CONTROL), 0xff, "truncated to one byte");
        assert_eq!(page[0x5d], 0, "neighbour untouched");
    }

    #[test]
    fn every_field_lies_in_one_aligned_word() {
        use field::*;
        let all = [
            INTERCEPT_CR, INTERCEPT_DR, INTERCEPT_EXCEPTIONS, INTERCEPT_MISC1, INTERCEPT_MISC2, IOPM_BASE_PA,
            MSRPM_BASE_PA, TSC_OFFSET, GUEST_ASID, TLB_CONTROL, INT_CTL, INT_SHADOW, EXIT_CODE, EXIT_INFO1,
            EXIT_INFO2, EXIT_INT_INFO, NP_ENABLE, EVENT_INJ, N_CR3, CLEAN_BITS, NEXT_RIP, CPL, EFER, CR4, CR3,
            CR0, DR7, DR6, RFLAGS, RIP, RSP, RAX, STAR, LSTAR, CSTAR, SFMASK, KERNEL_GS_BASE, CR2, G_PAT,
        ];
        for f in all {
            assert_eq!(f.offset / 8, (f.offset + f.width - 1) / 8, "{f:?}");
            assert!(f.offset + f.width <= 4096);
        }
    }

    #[test]
    fn in_place_access_through_phys_mem() {
        let mut mem = warden_core::mem::FakeMem::new(3 * 4096);
        let mut page = [0u8; 4096];
        sample().encode(&mut page);
        mem.write(4096, &page);
        assert_eq!(get(&mem, 4096, field::RIP), 0x20_0000);
        assert_eq!(get(&mem, 4096, field::GUEST_ASID), 7);
        set(&mut mem, 4096, field::RAX, 0x1_0000_0001);
        set(&mut mem, 4096, field::TLB_CONTROL, 0x100);
        let mut back = [0u8; 4096];
        mem.read(4096, &mut back);
        assert_eq!(Vmcb::decode(&back).rax, 0x1_0000_0001);
        assert_eq!(Vmcb::decode(&back).tlb_control, 0, "one byte wide");
        assert_eq!(Vmcb::decode(&back).asid, 7, "neighbour untouched");
    }

    #[test]
    fn consistency_checks() {
        assert_eq!(sample().check(), Ok(()));
        type Case = (fn(&mut Vmcb), VmcbProblem);
        let cases: &[Case] = &[
            (|v| v.asid = 0, VmcbProblem::AsidZero),
            (|v| v.intercept_misc2 = misc2::VMMCALL, VmcbProblem::VmrunNotIntercepted),
            (|v| v.efer &= !EFER_SVME, VmcbProblem::EferSvmeClear),
            (|v| v.cs.attrib |= 1 << 10, VmcbProblem::CsLongAndDefault),
            (|v| v.cr4 = 0, VmcbProblem::LongModeWithoutPae),
        ];
        for (mutate, want) in cases {
            let mut v = sample();
            mutate(&mut v);
            assert_eq!(v.check(), Err(*want));
        }
    }
}
