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

/// A bump allocator over the heap range of the start-info page; `dealloc` does nothing.
#[derive(Debug)]
pub struct BumpHeap {
    cursor: AtomicU64,
    end: AtomicU64,
}

impl BumpHeap {
    pub const fn new() -> Self {
        BumpHeap { cursor: AtomicU64::new(0), end: AtomicU64::new(0) }
    }

    /// Hands the start-info heap range to the allocator (the first call wins).
    pub fn init(&self, boot: &Boot) {
        let info = boot.info();
        if self.cursor.compare_exchange(0, info.heap_start, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.end.store(info.heap_end, Ordering::Release);
        }
    }

    /// Bytes still available.
    pub fn remaining(&self) -> u64 {
        self.end.load(Ordering::Acquire).saturating_sub(self.cursor.load(Ordering::Acquire))
    }
}

impl Default for BumpHeap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `alloc` hands out disjoint blocks of the heap range, which the hypervisor mapped
// read-write for this domain alone (start-info contract) and which `init` accepts only from a
// `Boot`; blocks are aligned as requested (`bump` rounds up) and never handed out twice because
// the cursor only moves forward under compare-exchange. Before `init`, `end` is 0 and every
// allocation fails with null.
unsafe impl GlobalAlloc for BumpHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let end = self.end.load(Ordering::Acquire);
        let mut cur = self.cursor.load(Ordering::Acquire);
        loop {
            let Some((start, next)) = crate::bump(cur, end, layout.size() as u64, layout.align() as u64)
            else {
                return core::ptr::null_mut();
            };
            match self.cursor.compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return start as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
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

    /// CPUID with an operand-size prefix (`66 0F A2`).
    pub fn prefixed_cpuid() {
        // SAFETY: CPUID is intercepted by the hypervisor; see the module docs.
        unsafe {
            core::arch::asm!(".byte 0x66, 0x0f, 0xa2", inout("eax") 0 => _, out("ecx") _, out("edx") _, options(nostack));
        }
    }
}
