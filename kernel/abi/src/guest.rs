//! Guest-side instruction wrappers: the ONLY `unsafe` code a domain links (VMMCALL, RDTSC, the
//! entry symbol, the start-info view and the heap's `GlobalAlloc`). Compiled with the `guest` feature.
//!
//! The tidy test whitelists this one file; everything built on it (the runtime, the test domains)
//! stays `#![forbid(unsafe_code)]`.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::{HypercallArgs, START_INFO_MAGIC, ShutdownReason, StartInfo};

/// How many VMMCALLs this domain has issued (see [`hypercalls_made`]).
static HYPERCALLS: AtomicU64 = AtomicU64::new(0);

/// How many VMMCALLs this domain has issued so far, counted on the domain's side: a test sets
/// it against the hypervisor's count of MAC decisions.
pub fn hypercalls_made() -> u64 {
    HYPERCALLS.load(Ordering::Relaxed)
}

/// Issues one hypercall and returns the raw (`RAX`, `RDX`) pair.
pub fn hypercall(call: HypercallArgs) -> (u64, u64) {
    HYPERCALLS.fetch_add(1, Ordering::Relaxed);
    let status: u64;
    let value: u64;
    // The asm is not `nomem`: the hypervisor may read or write guest memory that pointer
    // arguments name, so the compiler must treat memory reachable from them as clobbered.
    // SAFETY: by the ABI (crate docs) the hypervisor preserves every register but RAX and RDX,
    // which are outputs here, and touches only memory the arguments name (see above).
    unsafe {
        core::arch::asm!(
            "vmmcall",
            inlateout("rax") call.call => status,
            in("rdi") call.args[0],
            in("rsi") call.args[1],
            inlateout("rdx") call.args[2] => value,
            in("r10") call.args[3],
            in("r8") call.args[4],
            options(nostack),
        );
    }
    (status, value)
}

/// Proof that the hypervisor started this domain: wraps the start-info page. Only [`enter`]
/// creates one, so code that holds it may trust the page's addresses.
#[derive(Debug, Clone, Copy)]
pub struct Boot {
    info: &'static StartInfo,
}

impl Boot {
    pub fn info(&self) -> &'static StartInfo {
        self.info
    }
}

fn shutdown_now(reason: ShutdownReason) -> ! {
    loop {
        hypercall(HypercallArgs { call: crate::Call::Shutdown as u64, args: [reason as u64, 0, 0, 0, 0] });
    }
}

/// Executes CPUID (intercepted: the hypervisor answers with its filtered view).
pub fn cpuid(leaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid(leaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Reads the time-stamp counter (not intercepted; under `-icount` it counts instructions).
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is allowed at CPL 0 (the hypervisor never sets
    // CR4.TSD for domains).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A 64-bit random number from the CPU's RDRAND, or `None` if the CPU has no RDRAND (CPUID
/// leaf 1 ECX bit 30, which the hypervisor passes through) or it failed ten times in a row
/// (Intel's recommended retry count).
pub fn rdrand64() -> Option<u64> {
    // SAFETY: CPUID is always available in 64-bit mode; leaf 1 exists on every x86_64 CPU.
    #[allow(unused_unsafe)]
    let leaf1 = unsafe { core::arch::x86_64::__cpuid(1) };
    if leaf1.ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..10 {
        let value: u64;
        let ok: u8;
        // SAFETY: the CPU implements RDRAND (checked above); it writes only the two named
        // registers and the flags, and touches no memory.
        unsafe {
            core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack));
        }
        if ok == 1 {
            return Some(value);
        }
    }
    None
}

/// The body of the domain's entry point, `_start`, which [`domain_entry!`] defines in the
/// domain's binary (`ENTRY(_start)` in the guest linker script): checks the start-info address
/// the hypervisor passed in `RDI` and calls `main`.
///
/// # Safety
/// Call only from `_start` with the untouched `RDI` of the domain's first instruction.
#[doc(hidden)]
pub unsafe fn enter(start_info: u64, main: fn(Boot) -> !) -> ! {
    let aligned = start_info.is_multiple_of(core::mem::align_of::<StartInfo>() as u64);
    if start_info == 0 || !aligned {
        shutdown_now(ShutdownReason::Failure);
    }
    // By the ABI (and the caller's contract) `start_info` is the start-info page's address,
    // filled by the hypervisor, identity-mapped readable, and never reused.
    // SAFETY: as said above; it is non-null and aligned (checked above), and every bit pattern
    // is a valid `StartInfo` (plain integers).
    let info: &'static StartInfo = unsafe { &*(start_info as *const StartInfo) };
    if info.magic != START_INFO_MAGIC {
        shutdown_now(ShutdownReason::Failure);
    }
    main(Boot { info })
}

/// Defines the domain's entry symbol `_start`, which calls `$main: fn(Boot) -> !`.
/// Bare metal only (on the host the C runtime owns `_start`).
#[macro_export]
macro_rules! domain_entry {
    ($main:expr) => {
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        extern "sysv64" fn _start(start_info: u64) -> ! {
            // SAFETY: this is `_start`, and `start_info` is its untouched first argument (RDI).
            unsafe { $crate::guest::enter(start_info, $main) }
        }
    };
}

/// The domain's heap: the start-info page's heap range behind a first-fit linked-list allocator
/// (`linked_list_allocator`, the one the hypervisor's own heap uses), so freed blocks are reused
/// and a domain that serves for a long time does not run out.
pub struct DomainHeap {
    inner: linked_list_allocator::LockedHeap,
    started: AtomicU64,
}

impl DomainHeap {
    pub const fn new() -> Self {
        DomainHeap { inner: linked_list_allocator::LockedHeap::empty(), started: AtomicU64::new(0) }
    }

    /// Hands the start-info heap range to the allocator (the first call wins).
    pub fn init(&self, boot: &Boot) {
        let info = boot.info();
        if self.started.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        let size = info.heap_end.saturating_sub(info.heap_start) as usize;
        if size == 0 {
            return;
        }
        // SAFETY: the heap range of the start-info page is mapped read-write for this domain
        // alone and used by nothing else (start-info contract, and `init` accepts it only from a
        // `Boot`); the compare-exchange above makes this the one hand-over, so the allocator
        // owns the range for the rest of the domain's life.
        unsafe { self.inner.lock().init(info.heap_start as *mut u8, size) }
    }

    /// Bytes not allocated now (freed blocks count again).
    pub fn remaining(&self) -> u64 {
        self.inner.lock().free() as u64
    }

    /// Bytes the heap manages in all.
    pub fn size(&self) -> u64 {
        self.inner.lock().size() as u64
    }
}

impl core::fmt::Debug for DomainHeap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DomainHeap").field("size", &self.size()).field("free", &self.remaining()).finish()
    }
}

impl Default for DomainHeap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded to `LockedHeap`, whose `GlobalAlloc` implementation upholds
// the contract over the range `init` handed it; before `init` it is empty and every
// allocation fails with null.
unsafe impl GlobalAlloc for DomainHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees (a non-zero-size layout).
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees (`ptr` came from `alloc` with `layout`).
        unsafe { self.inner.dealloc(ptr, layout) }
    }
}

/// The directory of boot images this domain may read (the manifest's `images=`; empty when
/// it names none): see [`crate::lifecycle::IMAGE_WINDOW`].
pub fn image_directory() -> crate::lifecycle::ImageDirectory {
    use crate::lifecycle::{IMAGE_DIRECTORY_GPA, ImageDirectory};
    // SAFETY: the directory lies inside the start-info page, which the hypervisor maps
    // read-only, always backs, and fills before the domain's first instruction; the guest page
    // tables identity-map it. A byte array has alignment 1 and every bit pattern is valid, and
    // nothing writes the page while the domain runs, so a shared reference is sound.
    let bytes = unsafe { &*(IMAGE_DIRECTORY_GPA as *const [u8; ImageDirectory::SIZE]) };
    ImageDirectory::from_bytes(bytes)
}

/// The page of the grant window at slot `slot` (`ipc::GRANT_WINDOW + slot * 4096`), where this
/// domain maps pages other domains granted it (issue 7). `None` for a slot outside the window.
///
/// Touching the page before a successful `GrantMap` at that address stops the domain (nested
/// page fault): a fault the hypervisor contains, not undefined behaviour in this domain's memory.
pub fn grant_window_page(slot: u64) -> Option<&'static crate::ipc::SharedPage> {
    if slot >= crate::ipc::GRANT_WINDOW_PAGES {
        return None;
    }
    let addr = crate::ipc::GRANT_WINDOW + slot * 4096;
    // SAFETY: the address is page-aligned (so aligned for `SharedPage`) and lies in the grant
    // window, which the guest page tables identity-map and which no Rust object of this domain
    // occupies (it is above all of its memory). `SharedPage` is atomics only, so a shared
    // reference stays sound while the granting domain writes the same frame concurrently, and
    // every bit pattern is valid.
    Some(unsafe { &*(addr as *const crate::ipc::SharedPage) })
}

/// Register access to the platform TPM's locality-1 TIS page ([`crate::platform_tpm`]), for
/// the one domain the boot manifest gives it (the vTPM manager). Offsets are within the page;
/// anything else is refused here, so no other address can be reached through these functions.
pub mod tis {
    use crate::platform_tpm::{TIS_PAGE, TIS_PAGE_SIZE};

    fn addr(offset: u16, width: u64) -> Option<u64> {
        let off = u64::from(offset);
        (off + width <= TIS_PAGE_SIZE).then_some(TIS_PAGE + off)
    }

    /// Reads an 8-bit register; `0xff` (what an absent device reads) for an offset off the page.
    pub fn read8(offset: u16) -> u8 {
        let Some(a) = addr(offset, 1) else { return 0xff };
        // SAFETY: `a` is inside the TIS page, device memory that no Rust object occupies; the
        // hypervisor maps it (uncached) only into a domain it granted it to, and stops any other
        // domain that touches it, which is the documented outcome of calling this ungranted.
        unsafe { core::ptr::read_volatile(a as *const u8) }
    }

    /// Writes an 8-bit register (ignored for an offset off the page).
    pub fn write8(offset: u16, value: u8) {
        let Some(a) = addr(offset, 1) else { return };
        // SAFETY: as in `read8`: a device register inside the granted page.
        unsafe { core::ptr::write_volatile(a as *mut u8, value) }
    }

    /// Reads an aligned 32-bit register; all ones for an offset off the page or unaligned.
    pub fn read32(offset: u16) -> u32 {
        let Some(a) = addr(offset, 4).filter(|a| a % 4 == 0) else { return u32::MAX };
        // SAFETY: as in `read8`; aligned for a 32-bit access.
        unsafe { core::ptr::read_volatile(a as *const u32) }
    }
}

/// Deliberately forbidden operations for containment tests: each one is something the
/// hypervisor must stop. They are outside Rust's safety model on purpose and exist only with the
/// `hostile` feature, which only `tests/guests` enables.
#[cfg(feature = "hostile")]
pub mod hostile {
    /// Reads 8 bytes at guest address `addr` (a domain reading outside its memory is stopped).
    pub fn read_u64(addr: u64) -> u64 {
        // SAFETY: not sound in general (see the module docs); the test domains call it only on
        // addresses outside their own memory, where the hypervisor stops them before the read
        // completes, or on addresses no Rust reference points to.
        unsafe { core::ptr::read_volatile(addr as *const u64) }
    }

    /// Executes WRMSR (every MSR write outside the emulated set stops the domain).
    pub fn write_msr(msr: u32, value: u64) {
        // SAFETY: WRMSR is intercepted by the hypervisor; see the module docs.
        unsafe {
            core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32,
                in("edx") (value >> 32) as u32, options(nostack));
        }
    }

    /// Executes RDMSR (unknown MSRs get #GP injected).
    pub fn read_msr(msr: u32) -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: RDMSR is intercepted by the hypervisor; see the module docs.
        unsafe {
            core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack));
        }
        u64::from(hi) << 32 | u64::from(lo)
    }

    /// Reads DR0 (debug registers are not switched per domain, so domains may not use them).
    pub fn read_dr0() -> u64 {
        let v: u64;
        // SAFETY: MOV from DR0 is intercepted by the hypervisor; see the module docs.
        unsafe { core::arch::asm!("mov {}, dr0", out(reg) v, options(nostack, nomem)) };
        v
    }

    /// Resets the x87 FPU (FNINIT). With [`x87_push`] and [`x87_pop`], lets a test domain show
    /// that its x87 registers survive other domains running in between.
    pub fn x87_init() {
        // SAFETY: FNINIT only resets the x87 unit, which this soft-float domain does not use
        // otherwise.
        unsafe { core::arch::asm!("fninit", options(nostack, nomem)) }
    }

    /// Pushes `v` onto the x87 register stack (FILD).
    pub fn x87_push(v: i64) {
        // SAFETY: FILD reads the 8 bytes of `v` and changes only x87 state (see `x87_init`).
        unsafe { core::arch::asm!("fild qword ptr [{}]", in(reg) &v, options(nostack, readonly)) }
    }

    /// Pops the top of the x87 register stack as an integer (FISTP).
    pub fn x87_pop() -> i64 {
        let mut v = 0i64;
        // SAFETY: FISTP writes the 8 bytes of `v` and changes only x87 state (see `x87_init`).
        unsafe { core::arch::asm!("fistp qword ptr [{}]", in(reg) &mut v, options(nostack)) }
        v
    }

    /// Loads XMM0..XMM15 from `v` (16 bytes each, in order). With [`xmm_store`], lets a test
    /// domain show that its SSE registers survive other domains running in between.
    pub fn xmm_load(v: &[[u8; 16]; 16]) {
        // SAFETY: MOVDQU reads the 256 bytes of `v`; the domain is soft-float, so compiled code
        // never keeps values in XMM registers that this could overwrite (its CR4 has OSFXSR).
        unsafe {
            core::arch::asm!(
                "movdqu xmm0, [{0}]", "movdqu xmm1, [{0} + 16]", "movdqu xmm2, [{0} + 32]",
                "movdqu xmm3, [{0} + 48]", "movdqu xmm4, [{0} + 64]", "movdqu xmm5, [{0} + 80]",
                "movdqu xmm6, [{0} + 96]", "movdqu xmm7, [{0} + 112]", "movdqu xmm8, [{0} + 128]",
                "movdqu xmm9, [{0} + 144]", "movdqu xmm10, [{0} + 160]", "movdqu xmm11, [{0} + 176]",
                "movdqu xmm12, [{0} + 192]", "movdqu xmm13, [{0} + 208]", "movdqu xmm14, [{0} + 224]",
                "movdqu xmm15, [{0} + 240]",
                in(reg) v.as_ptr(),
                options(nostack, readonly),
            )
        }
    }

    /// Stores XMM0..XMM15 (see [`xmm_load`]).
    pub fn xmm_store() -> [[u8; 16]; 16] {
        let mut v = [[0u8; 16]; 16];
        // SAFETY: MOVDQU writes the 256 bytes of `v` and reads only XMM registers.
        unsafe {
            core::arch::asm!(
                "movdqu [{0}], xmm0", "movdqu [{0} + 16], xmm1", "movdqu [{0} + 32], xmm2",
                "movdqu [{0} + 48], xmm3", "movdqu [{0} + 64], xmm4", "movdqu [{0} + 80], xmm5",
                "movdqu [{0} + 96], xmm6", "movdqu [{0} + 112], xmm7", "movdqu [{0} + 128], xmm8",
                "movdqu [{0} + 144], xmm9", "movdqu [{0} + 160], xmm10", "movdqu [{0} + 176], xmm11",
                "movdqu [{0} + 192], xmm12", "movdqu [{0} + 208], xmm13", "movdqu [{0} + 224], xmm14",
                "movdqu [{0} + 240], xmm15",
                in(reg) v.as_mut_ptr(),
                options(nostack),
            )
        }
        v
    }

    /// Sets MXCSR (LDMXCSR): SSE rounding, exception masks, flush-to-zero.
    pub fn mxcsr_set(v: u32) {
        // SAFETY: LDMXCSR reads the 4 bytes of `v`; reserved bits set would raise #GP in this
        // domain only (the hypervisor ends it), and no compiled code here depends on MXCSR.
        unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack, readonly)) }
    }

    /// Reads MXCSR (STMXCSR).
    pub fn mxcsr_get() -> u32 {
        let mut v = 0u32;
        // SAFETY: STMXCSR writes the 4 bytes of `v`.
        unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack)) }
        v
    }

    /// Executes `OUT dx, al` (port I/O is denied to domains).
    pub fn out_u8(port: u16, value: u8) {
        // SAFETY: port I/O is intercepted by the hypervisor; see the module docs.
        unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nostack)) }
    }

    /// Reads CR0.
    pub fn read_cr0() -> u64 {
        let v: u64;
        // SAFETY: reading CR0 has no side effects at CPL 0.
        unsafe { core::arch::asm!("mov {}, cr0", out(reg) v, options(nostack, nomem)) };
        v
    }

    /// Writes CR0 (intercepted: the hypervisor applies or refuses it).
    pub fn write_cr0(v: u64) {
        // SAFETY: intercepted by the hypervisor; see the module docs.
        unsafe { core::arch::asm!("mov cr0, {}", in(reg) v, options(nostack)) }
    }

    /// Reads CR4.
    pub fn read_cr4() -> u64 {
        let v: u64;
        // SAFETY: reading CR4 has no side effects at CPL 0.
        unsafe { core::arch::asm!("mov {}, cr4", out(reg) v, options(nostack, nomem)) };
        v
    }

    /// Writes CR4 through R9 (intercepted; R9 needs a REX prefix the decoder must handle).
    pub fn write_cr4(v: u64) {
        // SAFETY: intercepted by the hypervisor; see the module docs.
        unsafe { core::arch::asm!("mov cr4, r9", in("r9") v, options(nostack)) }
    }

    /// CLTS and LMSW (the other two CR0 writes), with `msw` for LMSW.
    pub fn clts_lmsw(msw: u16) {
        // SAFETY: intercepted by the hypervisor; see the module docs.
        unsafe { core::arch::asm!("clts", "lmsw {0:x}", in(reg) msw, options(nostack)) }
    }

    /// Sets RFLAGS.TF: a #DB follows the next instruction (intercepted: the domain is stopped).
    pub fn single_step() {
        // SAFETY: the trap is intercepted by the hypervisor; see the module docs.
        unsafe { core::arch::asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "nop") }
    }

    /// Loads the GDT at `gdt` (5 entries: null, kernel code/data, user data 0x18, user code 0x20)
    /// and the page tables at `pml4` (which must map this code and everything user-accessible),
    /// drops to CPL 3 and asks for `shutdown(done)` there. The answer is reported by reading
    /// guest-physical `0xdead_0000 + status`, which is unbacked: the domain is stopped with that
    /// address in its diagnostic. Never returns.
    pub fn ring3_shutdown(gdt: u64, pml4: u64) -> ! {
        let mut gdtr = [0u8; 10];
        gdtr[..2].copy_from_slice(&(5u16 * 8 - 1).to_le_bytes());
        gdtr[2..].copy_from_slice(&gdt.to_le_bytes());
        // SAFETY: deliberately leaves Rust's model (see the module docs): the caller's tables
        // and GDT stay valid because they are never freed (the function does not return).
        unsafe {
            core::arch::asm!(
                "lgdt [{gdtr}]",
                "mov cr3, {pml4}",
                "mov rcx, rsp",
                "push 0x1b",
                "push rcx",
                "push 0x2",
                "push 0x23",
                "lea rcx, [rip + 2f]",
                "push rcx",
                "iretq",
                "2:",
                "mov eax, 5",
                "xor edi, edi",
                "vmmcall",
                "mov edi, 0xdead0000",
                "add rdi, rax",
                "mov rax, [rdi]",
                "ud2",
                gdtr = in(reg) gdtr.as_ptr(),
                pml4 = in(reg) pml4,
                options(noreturn),
            )
        }
    }

    /// A null hypercall with a DS prefix (`3E 0F 01 D9`): four bytes where a plain VMMCALL is
    /// three; the hypervisor must not resume on its last byte.
    pub fn prefixed_vmmcall() -> u64 {
        let status: u64;
        // SAFETY: VMMCALL is intercepted by the hypervisor; see the module docs.
        unsafe { core::arch::asm!(".byte 0x3e, 0x0f, 0x01, 0xd9", inlateout("rax") 0u64 => status, out("rdx") _, options(nostack)) };
        status
    }

    /// Issues one hypercall with every general register the compiler lets it name (RCX, RSI,
    /// RDI, R8–R15) loaded with a known value, and returns (`RAX`, `RDX`, a bit mask of the
    /// registers that came back changed: bit 0 RCX, 1 RSI, 2 RDI, 3 R8 … 10 R15). The ABI
    /// preserves all of them, so the mask must be zero. RBX and RBP are reserved by the compiler
    /// and cannot be named; a hypervisor clobbering them would crash this domain instead.
    pub fn hypercall_watched(call: crate::HypercallArgs, fill: u64) -> (u64, u64, u16) {
        let [a0, a1, a2, a3, a4] = call.args;
        // The values loaded: the arguments where the ABI reads them, `fill` patterns elsewhere.
        let sent = [fill, a1, a0, a4, fill ^ 9, a3, fill ^ 11, fill ^ 12, fill ^ 13, fill ^ 14, fill ^ 15];
        let mut got = sent;
        let (status, value): (u64, u64);
        super::HYPERCALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: VMMCALL is intercepted by the hypervisor, which by the ABI preserves every
        // register but RAX and RDX; all named registers are declared in-out so that a hypervisor
        // breaking that rule is observed, not miscompiled around. Not `nomem`: the hypervisor
        // may write memory the arguments name.
        unsafe {
            core::arch::asm!(
                "vmmcall",
                inlateout("rax") call.call => status,
                inlateout("rdx") a2 => value,
                inout("rcx") got[0],
                inout("rsi") got[1],
                inout("rdi") got[2],
                inout("r8") got[3],
                inout("r9") got[4],
                inout("r10") got[5],
                inout("r11") got[6],
                inout("r12") got[7],
                inout("r13") got[8],
                inout("r14") got[9],
                inout("r15") got[10],
                options(nostack),
            );
        }
        let changed =
            sent.iter().zip(&got).enumerate().fold(0u16, |m, (i, (s, g))| if s == g { m } else { m | 1 << i });
        (status, value, changed)
    }

    /// CPUID with an operand-size prefix (`66 0F A2`).
    pub fn prefixed_cpuid() {
        // SAFETY: CPUID is intercepted by the hypervisor; see the module docs.
        unsafe {
            core::arch::asm!(".byte 0x66, 0x0f, 0xa2", inout("eax") 0 => _, out("ecx") _, out("edx") _, options(nostack));
        }
    }
}

/// The virtio HAL and PCI configuration access for a domain holding an assigned device
/// (feature `virtio`): DMA buffers come from the heap, their device addresses are
/// guest-physical + the DMA offset the hypervisor reports, BARs are at their host-physical
/// addresses (the hypervisor maps them there), config space goes through the device calls.
#[cfg(feature = "virtio")]
pub mod virtio {
    use core::alloc::Layout;
    use core::ptr::NonNull;
    use core::sync::atomic::{AtomicU64, Ordering};
    use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
    use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

    use crate::HypercallArgs;
    use crate::device::DeviceCall;

    /// Host-physical address of guest-physical 0 (set by [`set_dma_offset`]).
    static DMA_OFFSET: AtomicU64 = AtomicU64::new(0);

    /// Records the DMA offset the hypervisor reported ([`DeviceCall::DmaOffset`]).
    pub fn set_dma_offset(offset: u64) {
        DMA_OFFSET.store(offset, Ordering::Release);
    }

    fn device_address(gpa: u64) -> PhysAddr {
        gpa + DMA_OFFSET.load(Ordering::Acquire)
    }

    /// The virtio HAL of a Warden domain.
    #[derive(Debug)]
    pub struct WardenHal;

    // SAFETY: `dma_alloc` returns zeroed, page-aligned memory owned by nobody else (a fresh heap
    // block) and its address as the device sees it (contiguous: the domain's memory is one
    // host-physical run starting at the DMA offset); `mmio_phys_to_virt` returns the identity
    // mapping the guest page tables provide (the hypervisor maps the BARs at their
    // host-physical addresses); `share` translates an address in the domain's memory the same
    // way as `dma_alloc`. Memory is coherent (no IOMMU, no cache maintenance on x86).
    unsafe impl Hal for WardenHal {
        fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
            let Ok(layout) = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE) else {
                panic!("DMA allocation of {pages} pages is too large");
            };
            // SAFETY: the layout has a non-zero size (virtio never asks for 0 pages).
            let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
            let Some(ptr) = NonNull::new(ptr) else { panic!("out of memory for {pages} DMA pages") };
            (device_address(ptr.as_ptr() as u64), ptr)
        }

        unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
            if let Ok(layout) = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE) {
                // SAFETY: the caller passes back exactly what `dma_alloc` returned.
                unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout) };
            }
            0
        }

        unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
            NonNull::new(paddr as *mut u8).expect("a BAR is never at address 0")
        }

        unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
            device_address(buffer.cast::<u8>().as_ptr() as u64)
        }

        unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
    }

    /// Configuration access through [`DeviceCall::ConfigRead`] / [`DeviceCall::ConfigWrite`]
    /// for the domain's device `index` (the function address is ignored: a domain reaches
    /// only its own device, and the hypervisor filters every access).
    #[derive(Debug, Clone, Copy)]
    pub struct HypercallCam {
        pub index: u64,
    }

    impl ConfigurationAccess for HypercallCam {
        fn read_word(&self, _df: DeviceFunction, register_offset: u8) -> u32 {
            let (status, value) = super::hypercall(HypercallArgs {
                call: DeviceCall::ConfigRead as u64,
                args: [self.index, u64::from(register_offset), 0, 0, 0],
            });
            if status == 0 { value as u32 } else { u32::MAX }
        }

        fn write_word(&mut self, _df: DeviceFunction, register_offset: u8, data: u32) {
            super::hypercall(HypercallArgs {
                call: DeviceCall::ConfigWrite as u64,
                args: [self.index, u64::from(register_offset), u64::from(data), 0, 0],
            });
        }

        unsafe fn unsafe_clone(&self) -> Self {
            *self
        }
    }

    /// Receive buffers kept posted to the device.
    const RX_BUFFERS: usize = 16;
    /// Bytes of one receive buffer (an Ethernet frame plus the virtio-net header).
    const RX_BUFFER_LEN: usize = 2048;

    /// The driver's error, as a string for the domain's log.
    pub type NetError = virtio_drivers::Error;

    /// A virtio-net device over the PCI transport with a fixed pool of receive buffers kept
    /// posted to the device; sends are synchronous. Polling only (no interrupts).
    pub struct Net {
        raw: virtio_drivers::device::net::VirtIONetRaw<WardenHal, virtio_drivers::transport::pci::PciTransport, 16>,
        /// (descriptor token, buffer) of every posted receive buffer.
        posted: alloc::vec::Vec<(u16, alloc::boxed::Box<[u8]>)>,
    }

    impl core::fmt::Debug for Net {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("Net").field("posted", &self.posted.len()).finish_non_exhaustive()
        }
    }

    impl Net {
        /// Brings up the domain's device `index` (a virtio-net function): transport, queues,
        /// receive buffers.
        pub fn new(index: u64, df: DeviceFunction) -> Result<Net, &'static str> {
            use virtio_drivers::transport::pci::PciTransport;
            use virtio_drivers::transport::pci::bus::PciRoot;
            let mut root = PciRoot::new(HypercallCam { index });
            let transport = PciTransport::new::<WardenHal, _>(&mut root, df).map_err(|_| "not a modern virtio PCI device")?;
            let raw = virtio_drivers::device::net::VirtIONetRaw::new(transport).map_err(|_| "virtio-net initialisation failed")?;
            let mut net = Net { raw, posted: alloc::vec::Vec::new() };
            for _ in 0..RX_BUFFERS {
                net.post(alloc::vec![0u8; RX_BUFFER_LEN].into_boxed_slice()).map_err(|_| "cannot post receive buffers")?;
            }
            Ok(net)
        }

        pub fn mac_address(&self) -> [u8; 6] {
            self.raw.mac_address()
        }

        fn post(&mut self, mut buf: alloc::boxed::Box<[u8]>) -> Result<(), NetError> {
            // SAFETY: the buffer is owned by `posted` from now until `receive_complete` returns
            // it, and nothing reads or writes it in between (it is only reachable through
            // `posted`, which `receive` touches only for a completed token); its heap
            // allocation never moves while the box lives.
            let token = unsafe { self.raw.receive_begin(&mut buf)? };
            self.posted.push((token, buf));
            Ok(())
        }

        /// Passes the next received frame (without the virtio-net header) to `f`, if one has
        /// arrived, then posts its buffer again.
        pub fn receive<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
            let token = self.raw.poll_receive()?;
            let i = self.posted.iter().position(|(t, _)| *t == token)?;
            let (_, mut buf) = self.posted.swap_remove(i);
            // SAFETY: `buf` is the very buffer `receive_begin` returned `token` for.
            let done = unsafe { self.raw.receive_complete(token, &mut buf) };
            let r = done.ok().and_then(|(hdr, len)| buf.get(hdr..hdr + len).map(f));
            // A buffer that cannot be posted again is dropped: the pool shrinks, nothing breaks.
            let _ = self.post(buf);
            r
        }

        /// Sends one Ethernet frame and waits until the device has taken it.
        pub fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
            self.raw.send(frame)
        }
    }
}
