//! AMD SVM instructions: enabling SVM (EFER.SVME, VM_HSAVE_PA) and entering a guest
//! (VMSAVE/VMLOAD/VMRUN with the general registers VMRUN does not switch, and CLGI/STGI).

use crate::cpu::{rdmsr, wrmsr};

const MSR_EFER: u32 = 0xc000_0080;
const MSR_VM_CR: u32 = 0xc001_0114;
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
const EFER_SVME: u64 = 1 << 12;
const VM_CR_SVMDIS: u64 = 1 << 4;

/// Why SVM could not be enabled or a guest not entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvmError {
    /// The firmware disabled SVM (VM_CR.SVMDIS).
    DisabledByFirmware,
    /// An address is not page-aligned or lies inside the hypervisor image.
    BadAddress(u64),
    /// The VMCB does not enable nested paging, uses ASID 0, or does not intercept VMRUN: running
    /// it could let a guest reach host memory, so it is refused.
    UnsafeVmcb,
}

/// The hypervisor image's extent, computed once (it is on the VMRUN path).
static IMAGE: spin::Once<(u64, u64)> = spin::Once::new();

fn check_frame(pa: u64) -> Result<(), SvmError> {
    let image = *IMAGE.call_once(|| crate::layout::kernel_layout().image);
    if pa >= image.0 && pa < image.1 {
        return Err(SvmError::BadAddress(pa));
    }
    if !pa.is_multiple_of(4096) || pa == 0 || pa >= crate::phys::IDENTITY_LIMIT {
        return Err(SvmError::BadAddress(pa));
    }
    Ok(())
}

/// Sets EFER.SVME and points VM_HSAVE_PA at `hsave_pa`, a frame the caller took from the
/// frame allocator and never uses for anything else. The caller has checked CPUID for SVM.
pub fn enable(hsave_pa: u64) -> Result<(), SvmError> {
    check_frame(hsave_pa)?;
    // SAFETY: VM_CR exists on every CPU with SVM (the caller checked CPUID); reading it has
    // no side effects.
    if unsafe { rdmsr(MSR_VM_CR) } & VM_CR_SVMDIS != 0 {
        return Err(SvmError::DisabledByFirmware);
    }
    // SAFETY: EFER exists in long mode; setting SVME only makes the SVM instructions legal.
    // VM_HSAVE_PA receives a page-aligned frame outside the hypervisor image that the CPU
    // alone writes from now on (the caller's contract above).
    unsafe {
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
        wrmsr(MSR_VM_HSAVE_PA, hsave_pa);
    }
    // Domains may enable SSE themselves (their CR4 is theirs), so FXSAVE must include the XMM
    // registers when domains are switched, or they would carry data from one domain to the
    // next. FXSAVE saves them only while the host's CR4.OSFXSR is set.
    use x86_64::registers::control::{Cr4, Cr4Flags};
    // SAFETY: OSFXSR only makes SSE instructions legal and widens FXSAVE/FXRSTOR to the XMM
    // registers and MXCSR; the hypervisor is compiled soft-float and never executes SSE, so its
    // own execution is unchanged.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::OSFXSR)) };
    Ok(())
}

/// The general registers VMRUN does not switch (RAX and RSP live in the VMCB).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestRegs {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// The Indirect Branch Prediction Barrier where the CPU offers it (CPUID 8000_0008 EBX[12]): a
/// zero-sized proof of support, so that the MSR write cannot fault.
#[derive(Debug, Clone, Copy)]
pub struct Ibpb(());

impl Ibpb {
    pub fn probe() -> Option<Ibpb> {
        let has = crate::cpu::cpuid(0x8000_0000, 0).eax >= 0x8000_0008
            && crate::cpu::cpuid(0x8000_0008, 0).ebx & (1 << 12) != 0;
        has.then_some(Ibpb(()))
    }

    /// Branch predictions trained before this point no longer steer indirect branches after it.
    pub fn barrier(self) {
        // SAFETY: PRED_CMD (0x49) exists on this CPU (the token proves CPUID offers IBPB);
        // writing bit 0 only flushes branch predictors.
        unsafe { wrmsr(0x49, 1) }
    }
}

/// Runs the guest of the VMCB at `vmcb_pa` until its next #VMEXIT.
///
/// `host_save_pa` is a frame for the host's VMSAVE state (FS, GS, TR, LDTR, syscall MSRs).
/// Interrupts are enabled only while the guest runs (so a physical interrupt reaches the INTR
/// intercept) and for one instruction after the exit, when a pending interrupt is delivered to
/// the host's IDT; the function returns with interrupts disabled. With `rsb_fill` the return
/// stack buffer is overwritten with 32 harmless entries right after the exit, before the host
/// executes any `ret`, so return predictions the guest trained cannot steer the host.
pub fn run(vmcb_pa: u64, host_save_pa: u64, regs: &mut GuestRegs, rsb_fill: bool) -> Result<(), SvmError> {
    check_frame(vmcb_pa)?;
    check_frame(host_save_pa)?;
    // What makes running the guest harmless to the host: nested paging on (the guest reaches
    // only frames the NPT maps), a non-zero ASID, and VMRUN intercepted. The state-save area
    // is the guest's business. Offsets: NP_ENABLE 0x90, ASID 0x58, INTERCEPT_MISC2 0x10.
    let word = |offset: u64| {
        // SAFETY: `vmcb_pa` is a page-aligned frame below the identity-map limit and outside
        // the image (checked above), so `vmcb_pa + offset` (offset < 4096, 8-aligned) is mapped
        // RAM that no Rust reference points into; a volatile read has no other effect.
        unsafe { core::ptr::read_volatile((vmcb_pa + offset) as *const u64) }
    };
    let np = word(0x90) & 1;
    let asid = word(0x58) & 0xffff_ffff;
    let vmrun_intercepted = word(0x10) & 1;
    if np == 0 || asid == 0 || vmrun_intercepted == 0 {
        return Err(SvmError::UnsafeVmcb);
    }
    // Registers: every general register the guest may change is saved and restored here (RBX,
    // RBP), declared as clobbered, or switched by VMRUN itself (RAX, RSP); the host's hidden
    // segment state and syscall MSRs are preserved by VMSAVE/VMLOAD around the run; the stack
    // is used only for balanced pushes and pops.
    // SAFETY: the VMCB and host-save frames are page-aligned frames outside the image (checked
    // above) owned by the caller; nested paging is on, so the guest touches only memory the
    // caller mapped for it; registers and host state are preserved as described above.
    unsafe {
        core::arch::asm!(
            "push rdx",             // [rsp+40] rsb_fill
            "push rbp",
            "push rbx",
            "push rdi",             // [rsp+16] regs pointer
            "push rsi",             // [rsp+8]  host save area
            "push rax",             // [rsp]    VMCB
            "clgi",
            "mov rax, rsi",
            "vmsave rax",
            "mov rax, [rsp]",
            "vmload rax",
            "mov rbx, [rdi + 0]",
            "mov rcx, [rdi + 8]",
            "mov rdx, [rdi + 16]",
            "mov rsi, [rdi + 24]",
            "mov rbp, [rdi + 40]",
            "mov r8,  [rdi + 48]",
            "mov r9,  [rdi + 56]",
            "mov r10, [rdi + 64]",
            "mov r11, [rdi + 72]",
            "mov r12, [rdi + 80]",
            "mov r13, [rdi + 88]",
            "mov r14, [rdi + 96]",
            "mov r15, [rdi + 104]",
            "mov rdi, [rdi + 32]",
            // GIF is clear, so STI only arms physical interrupts for the guest (V_INTR_MASKING).
            "sti",
            "vmrun rax",
            // #VMEXIT: GIF clear; RAX, RSP, RIP and RFLAGS (IF set) are the host's again.
            "push rdi",             // guest RDI; regs pointer now at [rsp+24]
            "mov rdi, [rsp + 24]",
            "mov [rdi + 0], rbx",
            "mov [rdi + 8], rcx",
            "mov [rdi + 16], rdx",
            "mov [rdi + 24], rsi",
            "mov [rdi + 40], rbp",
            "mov [rdi + 48], r8",
            "mov [rdi + 56], r9",
            "mov [rdi + 64], r10",
            "mov [rdi + 72], r11",
            "mov [rdi + 80], r12",
            "mov [rdi + 88], r13",
            "mov [rdi + 96], r14",
            "mov [rdi + 104], r15",
            "pop rbx",
            "mov [rdi + 32], rbx",
            // Every guest register is saved: fill the RSB (16 x two calls whose returns are
            // never taken; the int3s only stop speculation), then drop the 32 return addresses.
            "cmp qword ptr [rsp + 40], 0",
            "je 5f",
            "mov ecx, 16",
            "2:",
            "call 3f",
            "int3",
            "3:",
            "call 4f",
            "int3",
            "4:",
            "dec ecx",
            "jnz 2b",
            "add rsp, 256",
            "5:",
            "mov rax, [rsp]",
            "vmsave rax",
            "mov rax, [rsp + 8]",
            "vmload rax",
            "add rsp, 24",
            "pop rbx",
            "pop rbp",
            "add rsp, 8",           // rsb_fill
            // A physical interrupt that caused the exit is delivered to the host IDT here.
            "stgi",
            "nop",
            "cli",
            inout("rax") vmcb_pa => _,
            inout("rsi") host_save_pa => _,
            inout("rdi") regs as *mut GuestRegs => _,
            inout("rdx") u64::from(rsb_fill) => _,
            lateout("rcx") _,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
        );
    }
    Ok(())
}

/// One vCPU's x87/SSE register state in the FXSAVE format. VMRUN does not switch it, so the
/// hypervisor (which itself never touches these registers: the target is soft-float) saves the
/// outgoing domain's state and loads the incoming one's when it switches domains ([`enable`]
/// sets CR4.OSFXSR so that this includes the XMM registers).
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FxState([u8; 512]);

impl core::fmt::Debug for FxState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FxState")
    }
}

impl Default for FxState {
    fn default() -> Self {
        Self::new()
    }
}

impl FxState {
    /// The state after FNINIT with SSE defaults: FCW 0x037f, MXCSR 0x1f80, all else zero.
    pub const fn new() -> Self {
        let mut b = [0u8; 512];
        b[0] = 0x7f;
        b[1] = 0x03;
        b[24] = 0x80;
        b[25] = 0x1f;
        FxState(b)
    }

    /// The FXSAVE image (x87, MXCSR, XMM registers): what a checkpoint captures.
    pub fn image(&self) -> &[u8; 512] {
        &self.0
    }

    /// The state from an FXSAVE image, if FXRSTOR accepts it on every SSE2 CPU: MXCSR within
    /// 0xffbf (a reserved bit, or DAZ where the CPU lacks it, would raise #GP in the hypervisor).
    /// In 64-bit mode no other field of the image can make FXRSTOR fault.
    pub fn from_image(image: &[u8; 512]) -> Option<Self> {
        let mxcsr = u32::from_le_bytes([image[24], image[25], image[26], image[27]]);
        (mxcsr & !0xffbf == 0).then(|| FxState(*image))
    }
}

/// Whether FXSAVE/FXRSTOR can run here: the CPU has FXSR and CR0.EM and CR0.TS are clear.
pub fn fx_usable() -> bool {
    let fxsr = crate::cpu::cpuid(1, 0).edx & (1 << 24) != 0;
    fxsr && crate::cpu::cr0() & 0b1100 == 0
}

/// Saves the x87/SSE registers into `state` (does nothing unless [`fx_usable`]).
pub fn fxsave(state: &mut FxState) {
    if fx_usable() {
        // SAFETY: FXSR is present and CR0.EM/TS are clear (no #UD/#NM); the operand is a
        // 512-byte, 16-byte-aligned buffer we hold exclusively.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) state.0.as_mut_ptr(), options(nostack)) }
    }
}

/// Loads the x87/SSE registers from `state` (does nothing unless [`fx_usable`]).
pub fn fxrstor(state: &FxState) {
    if fx_usable() {
        // SAFETY: as for `fxsave`; the buffer holds the defaults of `FxState::new` (valid
        // MXCSR), what FXSAVE wrote, or an image `from_image` checked, so FXRSTOR cannot raise
        // #GP for reserved bits.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) state.0.as_ptr(), options(nostack, readonly)) }
    }
}

/// Word access to the hypervisor's own VMCB frames for the exit path: 8-byte volatile loads and
/// stores instead of [`crate::phys::IdentityMem`]'s byte copies. Byte-range access falls back
/// to `IdentityMem`.
#[derive(Debug)]
pub struct VmcbWords {
    mem: crate::phys::IdentityMem,
}

impl VmcbWords {
    pub fn new() -> Self {
        VmcbWords { mem: crate::phys::IdentityMem::new() }
    }

    /// The same checks `IdentityMem` makes (inside the identity map; writes outside the image),
    /// plus 8-byte alignment.
    fn check(pa: u64, write: bool) {
        let image = *IMAGE.call_once(|| crate::layout::kernel_layout().image);
        assert!(pa.is_multiple_of(8) && pa < crate::phys::IDENTITY_LIMIT, "VMCB word access at {pa:#x}");
        assert!(!write || pa + 8 <= image.0 || pa >= image.1, "VMCB word write into the image at {pa:#x}");
    }
}

impl Default for VmcbWords {
    fn default() -> Self {
        Self::new()
    }
}

impl warden_core::mem::PhysMem for VmcbWords {
    fn read(&self, pa: u64, buf: &mut [u8]) {
        self.mem.read(pa, buf);
    }

    fn write(&mut self, pa: u64, buf: &[u8]) {
        self.mem.write(pa, buf);
    }

    fn read_u64(&self, pa: u64) -> u64 {
        Self::check(pa, false);
        // SAFETY: `pa` is 8-aligned and inside the identity map (checked), so the word is mapped;
        // physical RAM outside the image is not Rust memory (see `IdentityMem`), and a volatile
        // load has no other effect.
        unsafe { core::ptr::read_volatile(pa as *const u64) }
    }

    fn write_u64(&mut self, pa: u64, v: u64) {
        Self::check(pa, true);
        // SAFETY: as for `read_u64`, and the word lies outside the hypervisor image (checked), so
        // no Rust object is overwritten.
        unsafe { core::ptr::write_volatile(pa as *mut u64, v) }
    }
}
