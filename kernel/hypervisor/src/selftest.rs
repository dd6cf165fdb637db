//! Test-only faults, requested on the command line (`test_fault=KIND`), proving that the
//! hypervisor's fault reporting works: `pf` reads an unmapped address, `null` reads page 0,
//! `stack` reads the guard page below the boot stack, `panic` panics. And `hold`, which parks
//! the hypervisor after boot so the rig can inspect the machine through the QEMU monitor.

use warden_core::cmdline::CmdLine;

/// An address far from anything mapped.
const UNMAPPED: u64 = 0x0000_4000_0000_0000;

pub(crate) fn run_requested_fault(cmdline: &CmdLine<'_>) {
    let Some(kind) = cmdline.value("test_fault") else { return };
    println!("selftest: provoking fault '{kind}'");
    match kind {
        "pf" => {
            warden_hw::cpu::touch(UNMAPPED);
        }
        "null" => {
            warden_hw::cpu::touch(0);
        }
        "stack" => {
            warden_hw::cpu::touch(warden_hw::layout::kernel_layout().guards[0]);
        }
        "panic" => panic!("deliberate panic requested by test_fault=panic"),
        other => {
            println!("selftest: unknown fault kind '{other}' (known: pf, null, stack, panic)");
            return;
        }
    }
    println!("selftest: FAILED: fault '{kind}' did not trap");
    warden_hw::debug_exit::exit(warden_hw::debug_exit::ExitCode::Failure);
}

/// With `hold` on the command line, parks the CPU (interrupts off) after boot so the test rig
/// can inspect page tables and registers through the QEMU monitor; the rig then quits QEMU.
pub(crate) fn hold_if_requested(cmdline: &CmdLine<'_>) {
    if cmdline.flag("hold") {
        println!("boot: holding for inspection");
        loop {
            warden_hw::cpu::halt_forever();
        }
    }
}
