//! `cargo xtask bench checkpoint`: boots the `bench-checkpoint` scenario under `-icount shift=0`
//! (the TSC advances one tick per executed instruction) and prints, from one run, the
//! checkpoint mechanism's full-capture throughput for a domain (every page through `ReadPage`
//! into the service's memory, then `GetVcpu`) beside the service domain's own memcpy bandwidth
//! measured in the same boot (issue 13's target: capture at least 50 % of memcpy), and the
//! time of a full restore (`RestoreCreate`, `RestorePage` for every page that is not zero,
//! `SetVcpu`). `--mib N` sets the captured domain's size (default 64).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use warden_rig::bench::field;

fn run() -> Result<(), String> {
    let mut scenario = warden_rig::Scenario::load("bench-checkpoint").map_err(|e| e.to_string())?;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--mib") {
        let mib = args.get(i + 1).ok_or("--mib needs a number")?;
        if scenario.set_domain_arg("mib", mib) != 1 {
            return Err("the scenario's service domain has no mib argument".into());
        }
    }
    let out = warden_rig::boot(&scenario, &warden_rig::BootOptions::default())
        .map_err(|e| e.to_string())?;
    out.check(&scenario)
        .map_err(|e| format!("the run failed its checks: {e}"))?;
    let line = out
        .log
        .lines()
        .find(|l| l.contains("[ckpt] bench: mib="))
        .ok_or_else(|| format!("no result line in the log:\n{}", out.log))?;
    let get = |k: &str| field(line, k).ok_or_else(|| format!("no {k}= in: {line}"));
    let (mib, memcpy_bytes, memcpy_ticks) =
        (get("mib")?, get("memcpy_bytes")?, get("memcpy_ticks")?);
    let (capture_ticks, restore_ticks, restored_pages) = (
        get("capture_ticks")?,
        get("restore_ticks")?,
        get("restored_pages")?,
    );
    let bytes = mib << 20;
    let per_tick = |b: u64, t: u64| b as f64 / t.max(1) as f64;
    let memcpy = per_tick(memcpy_bytes, memcpy_ticks);
    let capture = per_tick(bytes, capture_ticks);
    println!(
        "checkpoint benchmark: QEMU -icount shift=0 (1 tick = 1 instruction), no TPM, one run"
    );
    println!(
        "captured domain: {mib} MiB ({} pages); restored pages (not zero): {restored_pages}",
        bytes / 4096
    );
    println!();
    println!(
        "| measurement                                   | instructions | bytes/instruction | vs memcpy |"
    );
    println!(
        "|-----------------------------------------------|-------------:|------------------:|----------:|"
    );
    println!(
        "| memcpy in the service, {:>3} MiB (reference)  | {memcpy_ticks:>12} | {memcpy:>17.3} | {:>8.1}% |",
        memcpy_bytes >> 20,
        100.0
    );
    println!(
        "| full capture (ReadPage x all, GetVcpu)        | {capture_ticks:>12} | {capture:>17.3} | {:>8.1}% |",
        100.0 * capture / memcpy
    );
    println!(
        "| full restore (create, pages, SetVcpu)         | {restore_ticks:>12} | {:>17.3} | {:>8.1}% |",
        per_tick(bytes, restore_ticks),
        100.0 * per_tick(bytes, restore_ticks) / memcpy
    );
    println!();
    println!(
        "target (issue 13): full capture at least 50 % of memcpy: {}",
        if capture >= memcpy / 2.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
