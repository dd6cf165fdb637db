//! `cargo xtask soak hostile`: the model-checking hostile domain of issue 16 driven for a million
//! calls (CI runs 100,000 in the `hostile` scenario), with its answer histogram printed.

use anyhow::{Result, bail};
use std::sync::Arc;
use warden_rig::{BootOptions, Scenario};

/// The random calls the `hostile` scenario file makes; its expectations name this count.
const SCENARIO_CALLS: u64 = 100_000;

/// Boots the `hostile` scenario with `calls` random hypercalls seeded by `seed`, checks it with
/// the scenario's own expectations (rewritten for the count) and prints the hostile domain's
/// histogram and model verdict.
pub fn hostile(calls: u64, seed: u64) -> Result<()> {
    if calls == 0 {
        bail!("--calls must be at least 1");
    }
    let mut scenario = Scenario::load("hostile")?;
    if scenario.set_domain_arg("random", &calls.to_string()) != 1
        || scenario.set_domain_arg("seed", &seed.to_string()) != 1
    {
        bail!("the hostile scenario no longer has exactly one domain with `random:` and `seed:` args");
    }
    let (from, to) = (format!("{SCENARIO_CALLS} "), format!("{calls} "));
    for e in &mut scenario.expect {
        *e = e.replace(&from, &to);
    }
    // The run's length grows with the count; never give it less than the scenario's own budget.
    scenario.timeout_secs = scenario.timeout_secs.max(scenario.timeout_secs * calls.div_ceil(SCENARIO_CALLS));
    eprintln!("xtask: soak: {calls} model-checked hostile hypercalls, seed {seed}, timeout {}s", scenario.timeout_secs);
    let opts = BootOptions { on_line: Some(Arc::new(|l: &str| println!("{l}"))), ..BootOptions::default() };
    let outcome = warden_rig::boot(&scenario, &opts)?;
    let verdict = outcome.check(&scenario);
    println!("soak: histogram and verdict of the hostile domain:");
    for l in outcome.log.lines().filter(|l| {
        l.starts_with("[hostile] hostile: answers:")
            || l.starts_with("[hostile] hostile: model:")
            || l.contains("random hypercalls:")
    }) {
        println!("  {l}");
    }
    verdict.map_err(|e| match e {
        warden_rig::RigError::Mismatch { scenario, failures, .. } => {
            anyhow::anyhow!("soak of '{scenario}' failed:\n  {}", failures.join("\n  "))
        }
        other => other.into(),
    })?;
    eprintln!("xtask: soak passed: {calls} calls, seed {seed}");
    Ok(())
}
