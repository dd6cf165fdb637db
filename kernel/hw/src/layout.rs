//! Where the linker put the hypervisor image: section boundaries, stacks and their guard pages.

/// An address range `[start, end)`.
pub type Span = (u64, u64);

/// The image layout, read from linker-script symbols.
#[derive(Debug, Clone, Copy)]
pub struct KernelLayout {
    /// The whole image, from the Multiboot header to the end of bss.
    pub image: Span,
    /// Code: read + execute.
    pub text: Span,
    /// Constants: read only.
    pub rodata: Span,
    /// Data and bss (stacks, heap, boot page tables): read + write, never execute.
    pub data: Span,
    /// Pages left unmapped below each stack (boot stack, then the IST stacks).
    pub guards: [u64; 5],
    /// The stacks themselves, `[bottom, top)`, in the same order as `guards`.
    pub stacks: [Span; 5],
}

#[cfg(target_os = "none")]
mod symbols {
    // SAFETY: these are linker-script symbols; only their addresses are ever taken.
    unsafe extern "C" {
        pub(super) static __kernel_start: u8;
        pub(super) static __text_start: u8;
        pub(super) static __text_end: u8;
        pub(super) static __rodata_start: u8;
        pub(super) static __rodata_end: u8;
        pub(super) static __data_start: u8;
        pub(super) static __kernel_end: u8;
        pub(super) static __boot_stack_guard: u8;
        pub(super) static __boot_stack_top: u8;
        pub(super) static __ist_stacks: u8;
    }
}

/// Size of each IST stack (below each, one guard page).
pub const IST_STACK_SIZE: u64 = 16 * 1024;
/// Size of the boot stack (`boot.rs` reserves it). The run loop's tables live on it: the vTPM
/// instances with their launch records (512-byte argument strings since the management plane)
/// outgrew 64 KiB.
pub const BOOT_STACK_SIZE: u64 = 256 * 1024;

/// The layout of the running image.
#[cfg(target_os = "none")]
pub fn kernel_layout() -> KernelLayout {
    use symbols::*;
    macro_rules! addr {
        ($s:ident) => {
            &raw const $s as u64
        };
    }
    let boot_guard = addr!(__boot_stack_guard);
    let ist = addr!(__ist_stacks);
    let mut guards = [boot_guard; 5];
    let mut stacks = [(boot_guard + 4096, addr!(__boot_stack_top)); 5];
    for i in 0..4 {
        let guard = ist + i as u64 * (4096 + IST_STACK_SIZE);
        guards[i + 1] = guard;
        stacks[i + 1] = (guard + 4096, guard + 4096 + IST_STACK_SIZE);
    }
    KernelLayout {
        image: (addr!(__kernel_start), addr!(__kernel_end)),
        text: (addr!(__text_start), addr!(__text_end)),
        rodata: (addr!(__rodata_start), addr!(__rodata_end)),
        data: (addr!(__data_start), addr!(__kernel_end)),
        guards,
        stacks,
    }
}
