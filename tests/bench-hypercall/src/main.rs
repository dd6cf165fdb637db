//! `cargo xtask bench hypercall`: boots the `bench-hypercall` scenario under `-icount shift=0`
//! (the guest TSC then advances one tick per executed instruction) and prints, from one run, the
//! cost of a null hypercall round trip, of a bare exit with no dispatch (a CPUID of Warden's
//! leaf: since issue 16 no VMMCALL skips the MAC), and their ratio, next to the reference figure
//! measured when the platform was surveyed. `--smoke` runs a few
//! iterations only (what `cargo xtask test` does to keep this path working).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use warden_rig::bench::field;

/// docs/qemu-facts.md: a bare VMMCALL exit-and-re-enter loop measured 74 instructions per round trip.
const REFERENCE_BARE: u64 = 74;

fn main() -> ExitCode {
    let mut scenario = match warden_rig::Scenario::load("bench-hypercall") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `--smoke` (run by `cargo xtask test`): a few iterations, to show that the measurement path
    // still boots and its figures still parse; the figures of a smoke run mean nothing.
    let smoke = std::env::args().any(|a| a == "--smoke");
    if smoke && scenario.set_domain_arg("iterations", "200") != 1 {
        eprintln!("bench: the scenario's domain has no iterations argument");
        return ExitCode::FAILURE;
    }
    let out = match warden_rig::boot(&scenario, &warden_rig::BootOptions::default()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = out.check(&scenario) {
        eprintln!("bench: the run failed its checks: {e}");
        return ExitCode::FAILURE;
    }
    let Some(line) = out.log.lines().find(|l| l.contains("bench: iterations=")) else {
        eprintln!("bench: no result line in the log:\n{}", out.log);
        return ExitCode::FAILURE;
    };
    let (Some(n), Some(null), Some(bare)) =
        (field(line, "iterations"), field(line, "null_hypercall"), field(line, "bare_vmmcall"))
    else {
        eprintln!("bench: malformed result line: {line}");
        return ExitCode::FAILURE;
    };
    if smoke && !(0 < bare && bare < null) {
        eprintln!("bench: implausible figures (bare exit {bare}, null hypercall {null}): {line}");
        return ExitCode::FAILURE;
    }
    let ratio = null as f64 / bare.max(1) as f64;
    println!("hypercall benchmark: {n} iterations per figure, best of 5 rounds, QEMU -icount shift=0");
    println!("(guest TSC ticks = instructions executed by guest and hypervisor per round trip)");
    println!();
    println!("| measurement                               | instructions | reference |");
    println!("|-------------------------------------------|-------------:|----------:|");
    println!("| null hypercall round trip (full dispatch) | {null:>12} |           |");
    println!("| bare exit (CPUID leaf 0x4000_0000)        | {bare:>12} | {REFERENCE_BARE:>9} |");
    println!("| ratio null / bare                         | {ratio:>12.2} |           |");
    println!("| dispatch overhead (null - bare)           | {:>12} |           |", null.saturating_sub(bare));
    ExitCode::SUCCESS
}
