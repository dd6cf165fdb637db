//! `cargo xtask bench lifecycle`: boots the `bench-lifecycle` scenario under `-icount shift=0`
//! (the TSC advances one tick per executed instruction) and prints, from one run, what each
//! lifecycle hypercall costs a management domain, beside the null hypercall measured in the
//! same run: create (4 MiB), build (the `counter` image), unpause to the new domain's first
//! line, a pause/unpause round trip, a two-domain list, getinfo and destroy. `--smoke` runs a
//! few iterations only (what `cargo xtask test` does to keep this path working).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use warden_rig::bench::field;

fn run() -> Result<(), String> {
    let mut scenario = warden_rig::Scenario::load("bench-lifecycle").map_err(|e| e.to_string())?;
    // `--smoke` (run by `cargo xtask test`): a few iterations, to show that the measurement path
    // still boots and its figures still parse; the figures of a smoke run mean nothing.
    if std::env::args().any(|a| a == "--smoke") && scenario.set_domain_arg("iterations", "10") != 1 {
        return Err("the scenario's management domain has no iterations argument".into());
    }
    let out = warden_rig::boot(&scenario, &warden_rig::BootOptions::default())
        .map_err(|e| e.to_string())?;
    out.check(&scenario)
        .map_err(|e| format!("the run failed its checks: {e}"))?;
    let find = |needle: &str| {
        out.log
            .lines()
            .find(|l| l.contains(needle))
            .ok_or_else(|| format!("no '{needle}' line in the log:\n{}", out.log))
    };
    let line = find("[mgmt] bench: iterations=")?;
    let first = find("[b1] bench: first_tsc=")?;
    let get = |l: &str, k: &str| field(l, k).ok_or_else(|| format!("no {k}= in: {l}"));
    let null = get(line, "null")?;
    let first_tsc = get(first, "first_tsc")?;
    let unpause_at = get(line, "unpause_at")?;
    let rows: Vec<(&str, u64)> = vec![
        ("create, 4 MiB (DomainCreate)", get(line, "create")?),
        ("build, counter image (DomainBuild)", get(line, "build")?),
        (
            "unpause -> first line of the new domain",
            first_tsc.saturating_sub(unpause_at),
        ),
        ("pause + unpause round trip", get(line, "pause_unpause")?),
        ("list, 2 domains (DomainList)", get(line, "list2")?),
        ("getinfo (DomainGetInfo)", get(line, "getinfo")?),
        (
            "destroy, 4 MiB returned (DomainDestroy)",
            get(line, "destroy")?,
        ),
    ];
    println!(
        "lifecycle benchmark: QEMU -icount shift=0, no TPM (a build's measurement adds one TPM extend); \
         repeated calls best of 5 rounds of {} iterations",
        get(line, "iterations")?
    );
    println!("image: {} bytes", get(line, "image_bytes")?);
    println!();
    println!("| measurement                               | instructions | × null hypercall |");
    println!("|-------------------------------------------|-------------:|-----------------:|");
    println!(
        "| null hypercall (reference, same run)      | {null:>12} | {:>16.2} |",
        1.0
    );
    for (what, v) in rows {
        println!(
            "| {what:<41} | {v:>12} | {:>16.2} |",
            v as f64 / null.max(1) as f64
        );
    }
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
