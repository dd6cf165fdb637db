//! Exception and interrupt dispatch: external interrupts go to their handler; an NMI (a watchdog,
//! a platform event, the monitor's `nmi`) is counted and survived; any other CPU exception in
//! the hypervisor is fatal and reported (vector, error code, RIP, CR2, registers, call chain)
//! before QEMU is told to exit with a distinct code. Never a silent triple fault.

use warden_core::mem::PhysMem;
use warden_hw::debug_exit::{ExitCode, exit};
use warden_hw::layout::kernel_layout;
use warden_hw::tables::ExceptionFrame;

const NAMES: [&str; 32] = [
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
    "#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved 15", "#MF x87 error", "#AC alignment check", "#MC machine check",
    "#XM SIMD error", "#VE virtualization", "#CP control protection", "reserved 22", "reserved 23",
    "reserved 24", "reserved 25", "reserved 26", "reserved 27", "#HV hypervisor injection",
    "#VC VMM communication", "#SX security", "reserved 31",
];

/// Handler for external interrupts (vectors 32..=47 and 255), installed by whoever programs the
/// interrupt controller (the scheduler's timer).
static IRQ_HANDLER: spin::Once<fn(u8)> = spin::Once::new();

/// Routes external interrupts to `handler` (once; later calls are ignored).
pub(crate) fn set_irq_handler(handler: fn(u8)) {
    IRQ_HANDLER.call_once(|| handler);
}

/// NMIs taken by the hypervisor (reported with the scheduler's counters).
pub(crate) static NMIS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The dispatcher every IDT stub calls.
pub(crate) fn handle(frame: &mut ExceptionFrame) {
    let vector = frame.vector;
    if vector == 2 {
        // Not fatal: it says nothing about the hypervisor's state. Nothing is printed here (the
        // NMI may have interrupted the console's owner); it runs on its own IST stack.
        NMIS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        return;
    }
    if vector >= 32 {
        if let Some(h) = IRQ_HANDLER.get() {
            h(vector as u8);
        }
        return;
    }
    report_fatal(frame);
}

fn report_fatal(frame: &ExceptionFrame) -> ! {
    let v = frame.vector as usize;
    let cr2 = warden_hw::cpu::cr2();
    fatal_println!(
        "FATAL: hypervisor exception {} (vector {v}), error code {:#x}, RIP {:#018x}, CR2 {:#018x}",
        NAMES[v & 31],
        frame.error_code,
        frame.rip,
        cr2
    );
    fatal_println!(
        "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}",
        frame.rax, frame.rbx, frame.rcx, frame.rdx
    );
    fatal_println!(
        "  rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}",
        frame.rsi, frame.rdi, frame.rbp, frame.rsp
    );
    fatal_println!("  cs {:#x} ss {:#x} rflags {:#x}", frame.cs, frame.ss, frame.rflags);
    if v == 14 {
        let e = frame.error_code;
        fatal_println!(
            "  page fault: {} {} access, {}",
            if e & 4 != 0 { "user" } else { "supervisor" },
            if e & 16 != 0 { "instruction fetch" } else if e & 2 != 0 { "write" } else { "read" },
            if e & 1 != 0 { "protection violation" } else { "page not present" }
        );
        let layout = kernel_layout();
        if let Some(i) = layout.guards.iter().position(|&g| cr2 >= g && cr2 < g + 4096) {
            let which = ["boot", "#DF IST", "NMI IST", "#MC IST", "#PF IST"][i];
            fatal_println!("  hint: stack overflow into the guard page below the {which} stack");
        } else if cr2 < 4096 {
            fatal_println!("  hint: null pointer dereference");
        }
    }
    print_call_chain(frame.rbp);
    exit(ExitCode::Exception);
}

/// Follows the frame-pointer chain (the image is built with frame pointers) while it stays inside
/// one of the hypervisor's stacks, printing return addresses.
fn print_call_chain(mut rbp: u64) {
    let layout = kernel_layout();
    let mem = warden_hw::phys::IdentityMem::new();
    let on_stack = |a: u64| layout.stacks.iter().any(|&(lo, hi)| a >= lo && a + 16 <= hi);
    fatal_println!("  call chain (innermost first; resolve with addr2line -e warden):");
    for _ in 0..16 {
        if rbp % 8 != 0 || !on_stack(rbp) {
            break;
        }
        let ret = mem.read_u64(rbp + 8);
        if ret == 0 {
            break;
        }
        fatal_println!("    {ret:#018x}");
        rbp = mem.read_u64(rbp);
    }
}

/// The panic handler: report and exit with the panic code.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fatal_println!("PANIC: {info}");
    exit(ExitCode::Panic)
}
