//! The rig's errors.

use std::path::PathBuf;

/// What can go wrong building, booting or checking a scenario.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// A scenario file is missing.
    #[error("no scenario named '{name}' (looked for {path}); `cargo xtask scenarios` lists them")]
    NoScenario { name: String, path: PathBuf },
    /// A scenario file does not parse.
    #[error("scenario {path}: {message}")]
    BadScenario { path: PathBuf, message: String },
    /// A build step failed.
    #[error("building the images failed: {0}")]
    Build(String),
    /// A program could not be started.
    #[error("could not start {program}: {source} (run `cargo xtask setup`)")]
    Spawn { program: String, source: std::io::Error },
    /// swtpm did not come up.
    #[error("swtpm did not start: {0}")]
    Swtpm(String),
    /// Attestation evidence is missing or a check of it could not run (tests/rig/src/attest.rs).
    #[error("attestation: {0}")]
    Attest(String),
    /// Other I/O.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The boot did not do what the scenario expects.
    #[error("scenario '{scenario}' failed:\n  {}\n--- serial log ---\n{log}", failures.join("\n  "))]
    Mismatch { scenario: String, failures: Vec<String>, log: String },
}

impl RigError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
