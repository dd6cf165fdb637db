//! The TPM clock across `vtpm-sim` restarts with the same `--state`, seen by tpm2_readclock:
//! after tpm2_shutdown it continues from the saved value and stays safe; after the process is
//! killed (a power loss) it continues from the last checkpoint and reports safe: no.

mod common;
use common::{Sim, scratch};

/// (clock, resetCount, safe) from tpm2_readclock's YAML.
fn read_clock(sim: &Sim) -> (u64, u64, bool) {
    let out = sim.stdout(&["tpm2_readclock"]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} missing from {out}"))
            .trim()
            .to_string()
    };
    let num = |name: &str| {
        field(name)
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("{name}: {e} in {out}"))
    };
    (num("clock"), num("reset_count"), field("safe") == "yes")
}

#[test]
fn clock_survives_restarts_and_flags_power_loss() {
    let dir = scratch("clock");
    let state = dir.join("state");
    let (saved, resets) = {
        let sim = Sim::start(&dir, Some(&state));
        sim.tool(&["tpm2_startup", "-c"]);
        // Some commands so that Clock has moved on from zero.
        sim.tool(&["tpm2_getrandom", "8"]);
        let (clock, resets, safe) = read_clock(&sim);
        assert!(safe, "a fresh TPM's clock is safe");
        sim.tool(&["tpm2_shutdown", "-c"]);
        let (at_shutdown, ..) = read_clock(&sim);
        assert!(at_shutdown >= clock);
        (at_shutdown, resets)
    };
    let sim = Sim::start(&dir, Some(&state));
    sim.tool(&["tpm2_startup", "-c"]);
    let (clock, resets2, safe) = read_clock(&sim);
    assert!(
        clock >= saved,
        "Clock went back across an orderly restart: {saved} -> {clock}"
    );
    assert!(safe, "orderly shutdown: still safe");
    assert_eq!(
        resets2,
        resets + 1,
        "Startup(CLEAR) after Shutdown(CLEAR) is a TPM Reset"
    );
    // Killing the process without tpm2_shutdown is a power loss.
    drop(sim);
    let sim = Sim::start(&dir, Some(&state));
    sim.tool(&["tpm2_startup", "-c"]);
    let (after_loss, _, safe) = read_clock(&sim);
    assert!(
        after_loss >= saved,
        "not below the last checkpoint: {saved} -> {after_loss}"
    );
    assert!(
        !safe,
        "after a power loss earlier Clock values may have been reported"
    );
}
