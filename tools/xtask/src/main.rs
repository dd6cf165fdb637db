//! `cargo xtask`: the one entry point for building, running, testing and benchmarking Warden.
#![forbid(unsafe_code)]

mod setup;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use std::process::Command;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Warden's build driver")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing (Debian packages, the x86_64-unknown-none target).
    Setup,
    /// Run every test: host unit tests and whole-system QEMU tests.
    Test,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Setup => setup::ensure(),
        Cmd::Test => {
            setup::ensure()?;
            cargo(&["test", "--workspace"])
        }
    }
}

/// Runs cargo with the given arguments from the workspace root, failing on a non-zero exit.
fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo).args(args).current_dir(workspace_root()).status()?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
