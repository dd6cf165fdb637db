//! Descriptor tables: the GDT with a TSS (IST stacks for #DF, NMI, #MC and #PF) and the IDT,
//! whose assembly stubs save every register and call one Rust dispatcher.

use crate::layout::kernel_layout;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::{lidt, load_tss};
use x86_64::structures::DescriptorTablePointer;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

core::arch::global_asm!(include_str!("exceptions.s"));

/// The vectors with a stub: the 32 exceptions, 16 external interrupts (32..=47), and 255.
pub const STUB_VECTORS: usize = 49;

unsafe extern "C" {
    static warden_exc_table: [u64; STUB_VECTORS];
}

/// The registers saved by the stubs, lowest address first.
#[repr(C)]
#[derive(Debug, Clone)]
pub struct ExceptionFrame {
    pub rax: u64,
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
    /// The vector number (pushed by the stub).
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The IST slot of each special vector (1-based as in the IDT gate).
const IST_DOUBLE_FAULT: u16 = 1;
const IST_NMI: u16 = 2;
const IST_MACHINE_CHECK: u16 = 3;
const IST_PAGE_FAULT: u16 = 4;

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<(GlobalDescriptorTable, Selectors)> = spin::Once::new();
static IDT: spin::Once<[u64; 512]> = spin::Once::new();
static HANDLER: spin::Once<fn(&mut ExceptionFrame)> = spin::Once::new();

fn idt_gate(handler: u64, cs: u16, ist: u16) -> (u64, u64) {
    // 64-bit interrupt gate (type 0xE), present, DPL 0.
    let low = (handler & 0xffff)
        | (u64::from(cs) << 16)
        | (u64::from(ist & 0x7) << 32)
        | (0x8e << 40)
        | (((handler >> 16) & 0xffff) << 48);
    (low, handler >> 32)
}

/// Loads the GDT, TSS and IDT. Every interrupt and exception calls `handler`; if it returns, the
/// interrupted code resumes.
pub fn init(handler: fn(&mut ExceptionFrame)) {
    HANDLER.call_once(|| handler);
    let layout = kernel_layout();
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        for (slot, stack) in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK, IST_PAGE_FAULT].iter().zip(&layout.stacks[1..]) {
            tss.interrupt_stack_table[usize::from(*slot - 1)] = VirtAddr::new(stack.1);
        }
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, which lives in a static for the rest of
    // the run; the code selector is a 64-bit code segment and the data selector a data segment.
    unsafe {
        CS::set_reg(sel.code);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        SS::set_reg(sel.data);
        load_tss(sel.tss);
    }

    let code = sel.code.0;
    let idt = IDT.call_once(|| {
        let mut idt = [0u64; 512];
        // SAFETY: the table is defined in exceptions.s with exactly `STUB_VECTORS` entries.
        let stubs = unsafe { &*(&raw const warden_exc_table) };
        for (i, &stub) in stubs.iter().enumerate() {
            let vector = if i < 48 { i } else { 255 };
            let ist = match vector {
                8 => IST_DOUBLE_FAULT,
                2 => IST_NMI,
                18 => IST_MACHINE_CHECK,
                14 => IST_PAGE_FAULT,
                _ => 0,
            };
            let (lo, hi) = idt_gate(stub, code, ist);
            idt[vector * 2] = lo;
            idt[vector * 2 + 1] = hi;
        }
        idt
    });
    let ptr = DescriptorTablePointer { limit: (512 * 8 - 1) as u16, base: VirtAddr::new(idt.as_ptr() as u64) };
    // SAFETY: the IDT lives in a static for the rest of the run and every present gate points at
    // a stub in exceptions.s that saves all registers and calls `warden_exception_entry`.
    unsafe { lidt(&ptr) };
}

#[unsafe(no_mangle)]
extern "C" fn warden_exception_entry(frame: &mut ExceptionFrame) {
    match HANDLER.get() {
        Some(handler) => handler(frame),
        None => crate::debug_exit::exit(crate::debug_exit::ExitCode::Exception),
    }
}
