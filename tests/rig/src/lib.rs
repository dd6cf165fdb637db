//! The whole-system test rig: builds the bare-metal images, starts a private swtpm, boots the
//! hypervisor in QEMU (TCG, AMD SVM + NPT) with a scenario's modules, captures the serial log
//! and the exit status, and checks them against the scenario's expectations.
//!
//! Used by the whole-system tests (`tests/system`) and by `cargo xtask run`.
#![forbid(unsafe_code)]

pub mod attest;
pub mod bench;
mod error;
pub mod images;
mod policy;
pub mod qemu;
pub mod scenario;
pub mod swtpm;
pub mod uefi;

pub use error::RigError;
pub use images::{Images, host_tool, images};
pub use qemu::{BootOptions, ExitKind, MonitorScript, Outcome, boot};
pub use scenario::Scenario;

use std::path::PathBuf;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(|p| p.parent())
        .expect("the rig lives two levels below the workspace root")
        .to_path_buf()
}

/// Loads scenario `name`, builds the images, boots it, and checks the outcome against the
/// scenario's expectations: the one-call form whole-system tests use.
pub fn run_scenario(name: &str) -> Result<Outcome, RigError> {
    let scenario = Scenario::load(name)?;
    let outcome = boot(&scenario, &BootOptions::default())?;
    outcome.check(&scenario)?;
    Ok(outcome)
}
