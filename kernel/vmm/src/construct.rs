//! Domain construction: loads the ELF image into the domain's frames, builds the guest's page
//! tables and GDT inside guest memory, writes the start-info page, builds the nested page
//! tables over exactly the domain's frames, and produces the first VMCB.

use core::cell::Cell;

use warden_abi::{ABI_VERSION, START_INFO_MAGIC, StartInfo, to_fixed};
use warden_core::frame::{FrameAlloc, FrameError, PhysFrame};
use warden_core::mem::{LARGE_PAGE_SIZE, PAGE_SIZE, PhysMem};
use warden_core::paging::{MapError, PageSize, PageTable, flags};

use crate::elf::{self, ElfError, GuestWrite, Image};
use crate::layout::*;
use crate::vmcb::{self, Segment, Vmcb, misc1, misc2};

/// A domain's backing memory: one physically contiguous run of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub hpa: u64,
    pub bytes: u64,
}

/// Guest-physical memory of one domain seen through `PhysMem`: address = GPA. Accesses outside
/// the region are dropped (reads give zeroes) and remembered, so a builder bug cannot reach host
/// memory; [`GuestView::strayed`] reports it.
#[derive(Debug)]
pub struct GuestView<'m, M: PhysMem> {
    mem: &'m mut M,
    region: Region,
    strayed: Cell<bool>,
}

impl<'m, M: PhysMem> GuestView<'m, M> {
    pub fn new(mem: &'m mut M, region: Region) -> Self {
        GuestView { mem, region, strayed: Cell::new(false) }
    }

    fn inside(&self, gpa: u64, len: usize) -> bool {
        let ok = gpa.checked_add(len as u64).is_some_and(|end| end <= self.region.bytes);
        if !ok {
            self.strayed.set(true);
        }
        ok
    }

    /// Whether any access fell outside the region.
    pub fn strayed(&self) -> bool {
        self.strayed.get()
    }
}

impl<M: PhysMem> PhysMem for GuestView<'_, M> {
    fn read(&self, gpa: u64, buf: &mut [u8]) {
        if self.inside(gpa, buf.len()) {
            self.mem.read(self.region.hpa + gpa, buf);
        } else {
            buf.fill(0);
        }
    }
    fn write(&mut self, gpa: u64, buf: &[u8]) {
        if self.inside(gpa, buf.len()) {
            self.mem.write(self.region.hpa + gpa, buf);
        }
    }
}

impl<M: PhysMem> GuestWrite for GuestView<'_, M> {
    fn write(&mut self, gpa: u64, bytes: &[u8]) {
        PhysMem::write(self, gpa, bytes);
    }
    fn zero(&mut self, gpa: u64, len: u64) {
        PhysMem::zero(self, gpa, len);
    }
}

/// Hands out the guest page-table area page by page.
#[derive(Debug)]
struct TableArea {
    next: u64,
}

impl FrameAlloc for TableArea {
    fn alloc(&mut self) -> Result<PhysFrame, FrameError> {
        if self.next >= PT_END {
            return Err(FrameError::OutOfMemory);
        }
        let f = PhysFrame::containing(self.next);
        self.next += PAGE_SIZE;
        Ok(f)
    }
    fn free(&mut self, frame: PhysFrame) -> Result<(), FrameError> {
        Err(FrameError::NotAllocated(frame.addr()))
    }
}

/// Why a domain could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    Elf(ElfError),
    /// The region is smaller than the layout needs or not page-aligned.
    BadRegion,
    /// Building the nested page tables failed (out of host frames).
    Npt(MapError),
    /// Building the guest page tables failed (the table area is full).
    GuestTables(MapError),
    /// A guest-memory access strayed outside the region (a builder bug, caught).
    Strayed,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Elf(e) => write!(f, "bad image: {e}"),
            BuildError::BadRegion => f.write_str("memory region too small or misaligned"),
            BuildError::Npt(e) => write!(f, "nested page tables: {e:?}"),
            BuildError::GuestTables(e) => write!(f, "guest page tables: {e:?}"),
            BuildError::Strayed => f.write_str("guest memory access outside the domain"),
        }
    }
}

/// Who the domain is (copied into its start-info page).
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub id: u32,
    pub name: &'a str,
    pub label: &'a str,
    pub priority: u8,
    pub args: &'a str,
}

/// The result of construction: everything the first VMRUN needs.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: Image,
    pub start_info: StartInfo,
    /// nCR3.
    pub npt_root: u64,
    /// The guest's CR3 (a guest-physical address).
    pub guest_cr3: u64,
}

/// Guest page-table rights for the page at `gpa`.
fn guest_page_flags(image: &Image, memory_bytes: u64, gpa: u64) -> u64 {
    const RO: u64 = flags::NO_EXECUTE;
    const RW: u64 = flags::WRITABLE | flags::NO_EXECUTE;
    if gpa >= memory_bytes {
        return RW;
    }
    if gpa == START_INFO || gpa == GDT || (PT_BASE..PT_END).contains(&gpa) {
        return RO;
    }
    match image.segments.iter().find(|s| s.page_start() <= gpa && gpa < s.page_end()) {
        Some(s) => {
            let w = if s.rights.write { flags::WRITABLE } else { 0 };
            let x = if s.rights.execute { 0 } else { flags::NO_EXECUTE };
            w | x
        }
        None => RW,
    }
}

fn build_guest_tables(view: &mut GuestView<'_, impl PhysMem>, image: &Image, memory_bytes: u64) -> Result<u64, MapError> {
    let mut area = TableArea { next: PT_BASE };
    let pt = PageTable::new(view, &mut area, flags::WRITABLE)?;
    let backed_chunks_end = memory_bytes.next_multiple_of(LARGE_PAGE_SIZE);
    let mut chunk = 0;
    while chunk < GUEST_MAPPED {
        if chunk >= backed_chunks_end {
            pt.map(view, &mut area, chunk, chunk, PageSize::Large, flags::WRITABLE | flags::NO_EXECUTE)?;
        } else {
            for gpa in (chunk..chunk + LARGE_PAGE_SIZE).step_by(PAGE_SIZE as usize) {
                let fl = guest_page_flags(image, memory_bytes, gpa);
                pt.map(view, &mut area, gpa, gpa, PageSize::Small, fl)?;
            }
        }
        chunk += LARGE_PAGE_SIZE;
    }
    Ok(pt.root())
}

/// The GDT the domain starts with: null, 64-bit code, data.
pub const GDT_ENTRIES: [u64; 3] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];

/// Builds a domain in `region` (zeroed here) from `elf_bytes`.
pub fn build<M: PhysMem>(
    mem: &mut M,
    frames: &mut impl FrameAlloc,
    region: Region,
    elf_bytes: &[u8],
    who: Identity<'_>,
) -> Result<Built, BuildError> {
    if !region.hpa.is_multiple_of(PAGE_SIZE) || !region.bytes.is_multiple_of(PAGE_SIZE) || region.bytes <= IMAGE_BASE {
        return Err(BuildError::BadRegion);
    }
    let image = elf::parse(elf_bytes, IMAGE_BASE, region.bytes).map_err(BuildError::Elf)?;
    mem.zero(region.hpa, region.bytes);

    let mut view = GuestView::new(mem, region);
    elf::load(&image, elf_bytes, &mut view);
    let guest_cr3 = build_guest_tables(&mut view, &image, region.bytes).map_err(BuildError::GuestTables)?;
    for (i, e) in GDT_ENTRIES.iter().enumerate() {
        view.write_u64(GDT + 8 * i as u64, *e);
    }
    let start_info = StartInfo {
        magic: START_INFO_MAGIC,
        abi_version: ABI_VERSION.encode(),
        domain_id: who.id,
        memory_bytes: region.bytes,
        start_info_gpa: START_INFO,
        image_start: image.start(),
        image_end: image.end(),
        stack_bottom: STACK_BOTTOM,
        stack_top: STACK_TOP,
        heap_start: image.end(),
        heap_end: region.bytes,
        priority: u32::from(who.priority),
        console: 1,
        name: to_fixed(who.name),
        label: to_fixed(who.label),
        args: to_fixed(who.args),
    };
    PhysMem::write(&mut view, START_INFO, &start_info.to_bytes());
    if view.strayed() {
        return Err(BuildError::Strayed);
    }

    let npt_root = build_npt(mem, frames, region).map_err(BuildError::Npt)?;
    Ok(Built { image, start_info, npt_root, guest_cr3 })
}

/// Nested paging: exactly the domain's frames, minus the holes. QEMU needs present, write and
/// user on every level. Returns nCR3. Shared by construction and restore (`vcpu`).
pub fn build_npt<M: PhysMem>(mem: &mut M, frames: &mut impl FrameAlloc, region: Region) -> Result<u64, MapError> {
    let npt = PageTable::new(mem, frames, flags::WRITABLE | flags::USER)?;
    let leaf = flags::WRITABLE | flags::USER;
    let mut start = 0;
    for hole in HOLES {
        if hole > start {
            npt.map_range(mem, frames, start, region.hpa + start, hole - start, leaf)?;
        }
        start = hole + PAGE_SIZE;
    }
    npt.map_range(mem, frames, start, region.hpa + start, region.bytes - start, leaf)?;
    Ok(npt.root())
}

/// The nested page tables of dirty logging: the mappings of [`build_npt`] in 4 KiB leaves, all
/// read-only, so that the first write to each page exits (and is recorded). Returns nCR3; on
/// failure the tables built so far are freed.
pub fn build_npt_tracked<M: PhysMem>(mem: &mut M, frames: &mut impl FrameAlloc, region: Region) -> Result<u64, MapError> {
    let npt = PageTable::new(mem, frames, flags::WRITABLE | flags::USER)?;
    for gpa in (0..region.bytes).step_by(PAGE_SIZE as usize) {
        if HOLES.contains(&gpa) {
            continue;
        }
        if let Err(e) = npt.map(mem, frames, gpa, region.hpa + gpa, PageSize::Small, flags::USER) {
            PageTable::from_root(npt.root(), 0).free_tables(mem, frames);
            return Err(e);
        }
    }
    Ok(npt.root())
}

/// Host addresses the VMCB refers to.
#[derive(Debug, Clone, Copy)]
pub struct VmcbParams {
    pub asid: u32,
    pub iopm_pa: u64,
    pub msrpm_pa: u64,
}

/// Intercepts every domain runs with: physical interrupts (preemption), CPUID (filtered),
/// HLT, port I/O and MSRs (all, through all-ones permission maps), shutdown (triple fault),
/// task switches, every SVM or cache-control instruction, and the state VMRUN does not switch
/// per domain (debug registers DR0-DR3, performance counters), which would otherwise be a
/// channel between domains that the MAC policy never sees.
pub const INTERCEPT_MISC1: u32 = misc1::INTR
    | misc1::RDPMC
    | misc1::NMI
    | misc1::SMI
    | misc1::INIT
    | misc1::CPUID
    | misc1::INVD
    | misc1::HLT
    | misc1::INVLPGA
    | misc1::IOIO_PROT
    | misc1::MSR_PROT
    | misc1::TASK_SWITCH
    | misc1::FERR_FREEZE
    | misc1::SHUTDOWN;
pub const INTERCEPT_MISC2: u32 = misc2::VMRUN
    | misc2::VMMCALL
    | misc2::VMLOAD
    | misc2::VMSAVE
    | misc2::STGI
    | misc2::CLGI
    | misc2::SKINIT
    | misc2::ICEBP
    | misc2::WBINVD
    | misc2::MONITOR
    | misc2::MWAIT
    | misc2::MWAIT_ARMED
    | misc2::XSETBV;

/// Writes of CR0 and CR4 (bits 16 + n): checked against `crwrite`'s rule.
pub const INTERCEPT_CR: u32 = 1 << 16 | 1 << 20;
/// #DB (1) and #AC (17), always (the XSA-156 class): a domain whose own IDT makes their delivery
/// fault again would otherwise hold the CPU in exception delivery, where no timer exit arrives.
pub const INTERCEPT_EXCEPTIONS: u32 = 1 << 1 | 1 << 17;

/// CR0 = PE | ET | NE | WP | PG; CR4 = PAE | OSFXSR | OSXMMEXCPT: SSE instructions work in a
/// domain (its x87/SSE state, XMM registers and MXCSR included, is switched per domain).
pub const GUEST_CR0: u64 = 0x8001_0031;
pub const GUEST_CR4: u64 = 0x620;

/// The VMCB for a domain's first run: 64-bit mode at the ELF entry, RSP as after a call.
/// `RDI` (the start-info address) is a general register the run loop loads itself.
pub fn initial_vmcb(b: &Built, p: VmcbParams) -> Vmcb {
    let code = Segment { selector: CODE_SELECTOR, attrib: 0xa9b, limit: 0xffff_ffff, base: 0 };
    let data = Segment { selector: DATA_SELECTOR, attrib: 0xc93, limit: 0xffff_ffff, base: 0 };
    Vmcb {
        cs: code,
        ds: data,
        es: data,
        ss: data,
        fs: data,
        gs: data,
        gdtr: Segment { limit: (8 * GDT_ENTRIES.len() - 1) as u32, base: GDT, ..Segment::default() },
        // An empty IDT: any guest exception escalates to a triple fault, which stops the domain.
        idtr: Segment::default(),
        ldtr: Segment::default(),
        tr: Segment { attrib: 0x8b, limit: 0x67, ..Segment::default() },
        efer: vmcb::EFER_LME | vmcb::EFER_LMA | vmcb::EFER_NXE | vmcb::EFER_SVME,
        cr0: GUEST_CR0,
        cr3: b.guest_cr3,
        cr4: GUEST_CR4,
        dr6: 0xffff_0ff0,
        dr7: 0x400,
        rflags: 2,
        rip: b.image.entry,
        rsp: STACK_TOP - 8,
        g_pat: 0x0007_0406_0007_0406,
        ..control_vmcb(b.npt_root, p)
    }
}

/// The control area every domain runs with (intercepts, permission maps, ASID, nested paging
/// on `npt_root`); the state-save area is zero. Shared by construction and restore.
pub fn control_vmcb(npt_root: u64, p: VmcbParams) -> Vmcb {
    Vmcb {
        // Every MOV to or from a debug register (reads in the low half, writes in the high).
        intercept_dr: u32::MAX,
        intercept_cr: INTERCEPT_CR,
        intercept_exceptions: INTERCEPT_EXCEPTIONS,
        intercept_misc1: INTERCEPT_MISC1,
        intercept_misc2: INTERCEPT_MISC2,
        iopm_base_pa: p.iopm_pa,
        msrpm_base_pa: p.msrpm_pa,
        asid: p.asid,
        tlb_control: vmcb::TLB_FLUSH_ALL as u8,
        int_ctl: vmcb::INT_CTL_V_INTR_MASKING,
        np_enable: true,
        n_cr3: npt_root,
        ..Vmcb::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use warden_core::mem::FakeMem;

    /// Frames for page tables from a range of the fake memory.
    pub(crate) struct Frames {
        next: u64,
        end: u64,
        used: usize,
    }
    impl FrameAlloc for Frames {
        fn alloc(&mut self) -> Result<PhysFrame, FrameError> {
            if self.next >= self.end {
                return Err(FrameError::OutOfMemory);
            }
            self.next += PAGE_SIZE;
            self.used += 1;
            Ok(PhysFrame::containing(self.next - PAGE_SIZE))
        }
        fn free(&mut self, f: PhysFrame) -> Result<(), FrameError> {
            Err(FrameError::NotAllocated(f.addr()))
        }
    }

    const MIB: u64 = 1 << 20;
    const REGION: Region = Region { hpa: 8 * MIB, bytes: 4 * MIB };

    pub(crate) fn who() -> Identity<'static> {
        Identity { id: 2, name: "hello", label: "guest_t", priority: 7, args: "n=3" }
    }

    pub(crate) fn frames() -> Frames {
        Frames { next: 0x10_0000, end: 8 * MIB, used: 0 }
    }

    fn setup() -> (FakeMem, Frames) {
        (FakeMem::new(16 * MIB as usize), frames())
    }

    #[test]
    fn builds_npt_over_exactly_the_domain_frames() {
        let (mut mem, mut frames) = setup();
        let elf = crate::elf::tests::good();
        let b = build(&mut mem, &mut frames, REGION, &elf, who()).unwrap();
        let npt = PageTable::from_root(b.npt_root, 0);
        let mut mapped = 0;
        npt.for_each_leaf(&mem, |leaf| {
            // Identity offset into the region, user+write at every level (QEMU needs both).
            assert_eq!(leaf.pa - REGION.hpa, leaf.va, "{leaf:?}");
            assert!(leaf.writable && leaf.user && leaf.executable, "{leaf:?}");
            assert!(leaf.va + leaf.size.bytes() <= REGION.bytes);
            mapped += leaf.size.bytes();
        });
        assert_eq!(mapped, REGION.bytes - 2 * PAGE_SIZE, "everything but the two holes");
        for hole in HOLES {
            assert_eq!(npt.translate(&mem, hole), None);
        }
        assert_eq!(npt.translate(&mem, REGION.bytes), None);
        assert_eq!(npt.translate(&mem, 0x1000), Some(REGION.hpa + 0x1000));
        // Tables come from the host allocator, never from the domain's own frames.
        assert!(frames.used >= 4);
    }

    #[test]
    fn guest_memory_holds_image_tables_gdt_and_start_info() {
        let (mut mem, mut frames) = setup();
        let elf = crate::elf::tests::good();
        let b = build(&mut mem, &mut frames, REGION, &elf, who()).unwrap();
        let view = GuestView::new(&mut mem, REGION);
        // Image bytes at their link address.
        let mut code = [0u8; 4];
        view.read(0x20_0000, &mut code);
        assert_eq!(code, [0x90; 4]);
        // Start info.
        let mut si = [0u8; StartInfo::SIZE];
        view.read(START_INFO, &mut si);
        let si = StartInfo::from_bytes(&si);
        assert_eq!(si, b.start_info);
        assert_eq!((si.domain_id, si.name(), si.label(), si.args(), si.priority), (2, "hello", "guest_t", "n=3", 7));
        assert_eq!((si.heap_start, si.heap_end), (0x20_3000, REGION.bytes));
        // GDT.
        assert_eq!(view.read_u64(GDT + 8), GDT_ENTRIES[1]);
        // Guest page tables: identity, with the program headers' rights.
        let pt = PageTable::from_root(b.guest_cr3, 0);
        let cases: &[(u64, bool, bool)] = &[
            // (gva, writable, executable)
            (0x20_0000, false, true),
            (0x20_1000, true, false),
            (0x20_2000, true, false), // bss
            (START_INFO, false, false),
            (PT_BASE, false, false),
            (STACK_TOP - 8, true, false),
            (0, true, false),                 // reaches the NPT, which stops the domain
            (0x4000_0000, true, false),       // beyond memory: ditto
            (GUEST_MAPPED - 1, true, false),
        ];
        let mut seen = 0;
        pt.for_each_leaf(&view, |leaf| {
            for &(gva, w, x) in cases {
                if leaf.va <= gva && gva < leaf.va + leaf.size.bytes() {
                    assert_eq!(leaf.pa, leaf.va, "identity");
                    assert_eq!((leaf.writable, leaf.executable), (w, x), "rights at {gva:#x}");
                    seen += 1;
                }
            }
        });
        assert_eq!(seen, cases.len());
        assert_eq!(pt.translate(&view, GUEST_MAPPED), None);
        assert!(!view.strayed());
    }

    #[test]
    fn initial_vmcb_passes_the_consistency_checks() {
        let (mut mem, mut frames) = setup();
        let b = build(&mut mem, &mut frames, REGION, &crate::elf::tests::good(), who()).unwrap();
        let v = initial_vmcb(&b, VmcbParams { asid: 1, iopm_pa: 0x1000, msrpm_pa: 0x4000 });
        assert_eq!(v.check(), Ok(()));
        assert_eq!((v.rip, v.rsp % 16, v.cr3, v.n_cr3), (0x20_0010, 8, b.guest_cr3, b.npt_root));
        assert!(v.intercept_misc1 & misc1::SHUTDOWN != 0 && v.intercept_misc1 & misc1::INTR != 0);
        assert!(v.intercept_misc1 & misc1::RDPMC != 0 && v.intercept_dr == u32::MAX, "no shared DR/PMC state");
        let v0 = initial_vmcb(&b, VmcbParams { asid: 0, iopm_pa: 0, msrpm_pa: 0 });
        assert_eq!(v0.check(), Err(vmcb::VmcbProblem::AsidZero));
    }

    #[test]
    fn refuses_bad_images_and_regions_without_touching_memory() {
        let (mut mem, mut frames) = setup();
        let mut bad = crate::elf::tests::good();
        bad[24..32].copy_from_slice(&0x9000_0000u64.to_le_bytes());
        assert_eq!(
            build(&mut mem, &mut frames, REGION, &bad, who()).map(|_| ()),
            Err(BuildError::Elf(ElfError::EntryOutside(0x9000_0000)))
        );
        assert_eq!(frames.used, 0);
        let small = Region { hpa: REGION.hpa, bytes: 2 * MIB };
        assert_eq!(build(&mut mem, &mut frames, small, &bad, who()).map(|_| ()), Err(BuildError::BadRegion));
        let odd = Region { hpa: REGION.hpa + 1, bytes: 4 * MIB };
        assert_eq!(build(&mut mem, &mut frames, odd, &bad, who()).map(|_| ()), Err(BuildError::BadRegion));
        // A segment beyond the domain's memory.
        let far = crate::elf::tests::build(0x50_0000, &[(0x50_0000, std::vec![0x90], 1, 5)]);
        assert!(matches!(
            build(&mut mem, &mut frames, REGION, &far, who()),
            Err(BuildError::Elf(ElfError::OutsideWindow { .. }))
        ));
    }

    #[test]
    fn out_of_host_frames_is_an_error() {
        let (mut mem, _) = setup();
        let mut frames = Frames { next: 0x10_0000, end: 0x10_2000, used: 0 };
        assert!(matches!(
            build(&mut mem, &mut frames, REGION, &crate::elf::tests::good(), who()),
            Err(BuildError::Npt(MapError::OutOfMemory))
        ));
    }

    #[test]
    fn guest_view_contains_stray_accesses() {
        let mut mem = FakeMem::new(2 * PAGE_SIZE as usize);
        let region = Region { hpa: PAGE_SIZE, bytes: PAGE_SIZE };
        let mut v = GuestView::new(&mut mem, region);
        PhysMem::write(&mut v, PAGE_SIZE - 4, &[1, 2, 3, 4, 5]);
        assert!(v.strayed());
        assert_eq!(v.read_u64(u64::MAX - 3), 0);
        assert!(mem.bytes().iter().all(|&b| b == 0), "nothing written anywhere");
    }
}
