//! The Multiboot v1 and Multiboot2 headers and the 32-bit entry stub that switches to long mode.
//!
//! One image serves both protocols: QEMU's `-kernel` (SeaBIOS) finds the v1 header, GRUB's
//! `multiboot2` command (UEFI) the v2 one. Either loader enters `_start` in 32-bit protected
//! mode with paging off, EAX = its magic (0x2BADB002 or 0x36D76289) and EBX = the boot
//! information's physical address; the stub passes both on unchanged and Rust decides which
//! parser reads the information. The stub identity-maps the first 4 GiB with
//! 2 MiB pages (temporary: the hypervisor replaces them with W^X tables at once), enables PAE,
//! long mode and NX, and calls `warden_kernel_entry(magic, info)` on the boot stack. That symbol
//! is defined by [`entry_point!`](crate::entry_point) in the hypervisor crate.

core::arch::global_asm!(
    r#"
    // The boot identity map, the first 4 GiB in 2 MiB pages (the hypervisor replaces it with
    // W^X tables at once). A macro, because the 32-bit and the 64-bit entry both need it and the
    // same text assembles in either mode (absolute addresses below 4 GiB, 32-bit registers).
    .macro build_boot_tables
    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt
    addl $0x1000, %eax
    movl %eax, boot_pdpt + 8
    addl $0x1000, %eax
    movl %eax, boot_pdpt + 16
    addl $0x1000, %eax
    movl %eax, boot_pdpt + 24
    movl $boot_pd, %ebx
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, (%ebx,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b
    .endm

    .section .multiboot, "a"
    .p2align 2
    .long 0x1BADB002
    .long 0x00000003
    .long -(0x1BADB002 + 0x00000003)

    // Multiboot2 header (8-byte aligned, within the first 32 KiB): magic, architecture 0
    // (i386 protected mode), length, checksum, then tags. GRUB takes the load addresses from
    // the ELF headers. Tag 7 asks a UEFI loader to keep boot services running, tag 9 gives the
    // 64-bit EFI entry it then jumps to (`_start_efi64`): that is how the firmware's TCG2 event
    // log is reached. A BIOS loader ignores both and enters `_start`.
    .p2align 3
multiboot2_header:
    .long 0xE85250D6
    .long 0
    .long multiboot2_header_end - multiboot2_header
    .long -(0xE85250D6 + 0 + (multiboot2_header_end - multiboot2_header))
    .short 7
    .short 0
    .long 8
    .short 9
    .short 0
    .long 12
    .long _start_efi64
    .long 0
    .short 0
    .short 0
    .long 8
multiboot2_header_end:

    .section .boot.text, "ax"
    .code32
    .global _start
_start:
    cli
    movl %eax, %edi
    movl %ebx, %esi
    movl $__boot_stack_top, %esp

    build_boot_tables

    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $2f

    .code64
2:
.Llong_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq $__boot_stack_top, %rsp
    xorl %ebp, %ebp
    call warden_kernel_entry
3:
    cli
    hlt
    jmp 3b

    // The 64-bit EFI entry (Multiboot2 tag 9): long mode on the firmware's page tables and
    // stack, boot services running, EAX = magic, EBX = information. Rust fetches the TCG2 log
    // and exits boot services (`efi::warden_efi_entry`); then the same identity map, GDT and
    // boot stack as the 32-bit path are installed and the common long-mode code runs.
    .global _start_efi64
_start_efi64:
    movl %eax, %r12d
    movl %ebx, %r13d
    andq $-16, %rsp
    movl %r12d, %edi
    movl %r13d, %esi
    call warden_efi_entry
    cli

    build_boot_tables

    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl $boot_pml4, %eax
    movq %rax, %cr3
    movq %cr0, %rax
    orl $0x10000, %eax
    movq %rax, %cr0
    lgdt boot_gdt_ptr64
    movl %r12d, %edi
    movl %r13d, %esi
    pushq $0x08
    movl $.Llong_mode, %eax
    pushq %rax
    lretq

    .section .rodata.boot, "a"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_ptr:
    .word 23
    .long boot_gdt
boot_gdt_ptr64:
    .word 23
    .quad boot_gdt

    .section .bss.boot, "aw", @nobits
    .p2align 12
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 16384
    .global __boot_stack_guard
__boot_stack_guard:
    .skip 4096
    .skip 262144
    .global __boot_stack_top
__boot_stack_top:
    .global __ist_stacks
__ist_stacks:
    .skip 4 * (4096 + 16384)
"#,
    options(att_syntax)
);

/// Defines the hypervisor's entry point: `entry_point!(kmain)` makes the boot stub call
/// `kmain(magic: u32, info: u32) -> !` in long mode on the boot stack.
#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn warden_kernel_entry(magic: u32, info: u32) -> ! {
            let main: fn(u32, u32) -> ! = $main;
            main(magic, info)
        }
    };
}
