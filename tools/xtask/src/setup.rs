//! Installs what a fresh Debian machine lacks: Debian packages via apt-get, the bare-metal target via rustup.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// The bare-metal target the hypervisor and every domain image are built for.
pub(crate) const BARE_METAL_TARGET: &str = "x86_64-unknown-none";

/// Each line of `packages.txt`: a command (or an absolute file) and the package that provides it.
const PACKAGES: &str = include_str!("packages.txt");

/// Makes sure every tool and library Warden needs is present. Costs a few PATH look-ups when
/// nothing is missing.
pub(crate) fn ensure() -> Result<()> {
    ensure_target()?;
    ensure_packages()
}

fn ensure_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    let installed = String::from_utf8_lossy(&out.stdout);
    if installed.lines().any(|l| l.trim() == BARE_METAL_TARGET) {
        return Ok(());
    }
    eprintln!("setup: installing the Rust target {BARE_METAL_TARGET} (rustup target add)");
    let status = Command::new("rustup")
        .args(["target", "add", BARE_METAL_TARGET])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("`rustup target add {BARE_METAL_TARGET}` failed; install it by hand and retry");
    }
    Ok(())
}

fn missing_packages() -> Vec<&'static str> {
    let mut missing: Vec<&str> = Vec::new();
    for line in PACKAGES.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((probe, package)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let package = package.trim();
        if !is_present(probe) && !missing.contains(&package) {
            missing.push(package);
        }
    }
    missing
}

fn is_present(probe: &str) -> bool {
    if probe.starts_with('/') {
        return Path::new(probe).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(Into::into))
        .any(|dir| dir.join(probe).is_file())
}

fn ensure_packages() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: missing Debian packages: {}", missing.join(" "));
    if !is_root() {
        bail!(
            "installing packages needs root; run as root or install them yourself:\n    sudo apt-get install {}",
            missing.join(" ")
        );
    }
    eprintln!("setup: apt-get update");
    let status = Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get (is this a Debian machine?)")?;
    if !status.success() {
        bail!("`apt-get update` failed (no network to the package mirror?)");
    }
    eprintln!("setup: apt-get install {}", missing.join(" "));
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("`apt-get install {}` failed", missing.join(" "));
    }
    let still = missing_packages();
    if !still.is_empty() {
        bail!("still missing after installing: {}", still.join(" "));
    }
    eprintln!("setup: done");
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
