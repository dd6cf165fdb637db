//! Stock clients are not stalled by Nagle's algorithm: tpm2-tss's `mssim` TCTI writes each
//! command in two `write`s, so a server that delays its ACK makes every command after the
//! first wait ~40 ms. The same tpm2-tools commands against `vtpm-sim` over `mssim:` and against
//! swtpm (libtpms) over `swtpm:` in the same test: vtpm-sim's median per tool run stays within
//! a small factor of swtpm's, which two or more 40 ms stalls per run would break.

mod common;

use common::{Sim, Swtpm, scratch};
use std::process::Command;
use std::time::{Duration, Instant};

fn run(tcti: &str, dir: &std::path::Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("TPM2TOOLS_TCTI", tcti)
        .output()
        .expect("run tpm2-tools");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{args:?} via {tcti}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn tpm2_tools_over_mssim_are_not_stalled_by_delayed_acks() {
    let sim = Sim::started("nostall");
    let swtpm_dir = scratch("nostall-swtpm");
    let swtpm = Swtpm::start(&swtpm_dir);
    run(&swtpm.tcti(), &swtpm_dir, &["tpm2_startup", "-c"]);
    let ext = format!("16:sha256={}", "03".repeat(32));
    // Each tool sends several TPM commands (capability probes, then its own), so each run
    // would carry several stalls.
    let tools: [&[&str]; 4] = [
        &["tpm2_getrandom", "--hex", "16"],
        &["tpm2_pcrread", "sha256:0,16"],
        &["tpm2_pcrextend", &ext],
        &["tpm2_readclock"],
    ];
    for tool in tools {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        // Interleaved, so machine load falls on both alike.
        for _ in 0..7 {
            ours.push(run(&sim.tcti(), &sim.dir, tool));
            theirs.push(run(&swtpm.tcti(), &swtpm_dir, tool));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        eprintln!(
            "{}: vtpm-sim (mssim) {ours:?}, swtpm (swtpm) {theirs:?}",
            tool[0]
        );
        assert!(
            ours <= theirs * 3,
            "{}: vtpm-sim over mssim takes {ours:?} per run, swtpm {theirs:?}: a delayed-ACK stall",
            tool[0]
        );
    }
}
