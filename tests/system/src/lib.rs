//! Whole-system tests live in `tests/`: each file boots scenarios through `warden-rig` and
//! asserts on the serial log and the exit status. This library holds what they share.
#![forbid(unsafe_code)]

pub use warden_rig::{BootOptions, ExitKind, Outcome, RigError, Scenario, boot, run_scenario};

/// Boots `name`, checks it against its scenario file, and panics with the whole log on a mismatch.
pub fn expect_scenario(name: &str) -> Outcome {
    match run_scenario(name) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// The first line of `log` containing `needle`, or a panic naming what was missing.
pub fn line<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with '{needle}' in:\n{log}"))
}
