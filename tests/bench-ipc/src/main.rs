//! `cargo xtask bench ipc`: boots the `bench-ipc` scenario under `-icount shift=0` (TSC ticks
//! count executed instructions, guest and hypervisor alike) and prints, from one run: the
//! event-channel ping-pong round trip between two domains (send, block in the scheduler, the
//! peer's answer, wake-up), the null hypercall round trip with its MAC check, the same without
//! the check, and their ratio. `--smoke` runs a few iterations only (what `cargo xtask test`
//! does to keep this path working).
//!
//! There is no way to switch the MAC check off (no permissive mode, no bypass), so "without"
//! is measured as the null round trip minus the instructions the hypervisor counted inside the
//! check itself (TSC read before and after every null-call check, averaged over the run).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use warden_rig::bench::{fail, field};

fn main() -> ExitCode {
    let mut scenario = match warden_rig::Scenario::load("bench-ipc") {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // `--smoke` (run by `cargo xtask test`): a few iterations, to show that the measurement path
    // still boots and its figures still parse; the figures of a smoke run mean nothing.
    let smoke = std::env::args().any(|a| a == "--smoke");
    if smoke && scenario.set_domain_arg("iterations", "100") != 2 {
        return fail("the scenario's two domains need an iterations argument");
    }
    let out = match warden_rig::boot(&scenario, &warden_rig::BootOptions::default()) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    if let Err(e) = out.check(&scenario) {
        return fail(format!("the run failed its checks: {e}"));
    }
    let Some(line) = out.log.lines().find(|l| l.contains("bench-ipc: iterations=")) else {
        return fail(format!("no result line in the log:\n{}", out.log));
    };
    let (Some(n), Some(rt), Some(null), Some(bare)) = (
        field(line, "iterations"),
        field(line, "evtchn_roundtrip"),
        field(line, "null_hypercall"),
        field(line, "bare_vmmcall"),
    ) else {
        return fail(format!("malformed result line: {line}"));
    };
    // "mac: null-call checks: N taking T TSC ticks each"
    let Some(check) = out
        .log
        .lines()
        .rev()
        .find(|l| l.starts_with("mac: null-call checks:"))
        .and_then(|l| l.split_whitespace().rev().nth(3).and_then(|w| w.parse::<u64>().ok()))
    else {
        return fail("no null-call check figure in the log");
    };
    if smoke && !(0 < bare && bare < null && 0 < check && check < null && null < rt) {
        return fail(format!(
            "implausible figures (bare exit {bare}, null hypercall {null}, MAC check {check}, round trip {rt}): {line}"
        ));
    }
    let without = null.saturating_sub(check);
    let ratio = null as f64 / without.max(1) as f64;
    println!("IPC benchmark: {n} iterations per figure, best of 5 rounds, QEMU -icount shift=0");
    println!("(TSC ticks = instructions executed by guest and hypervisor)");
    println!();
    println!("| measurement                                             | instructions |");
    println!("|---------------------------------------------------------|-------------:|");
    println!("| event-channel ping-pong round trip (2 sends, 2 blocks)  | {rt:>12} |");
    println!("| null hypercall round trip, with the MAC check           | {null:>12} |");
    println!("| the MAC check alone (measured inside the hypervisor)    | {check:>12} |");
    println!("| null hypercall round trip, without the MAC check        | {without:>12} |");
    println!("| ratio with / without                                    | {ratio:>12.2} |");
    println!("| bare VMMCALL exit, no dispatch (reference)              | {bare:>12} |");
    ExitCode::SUCCESS
}
