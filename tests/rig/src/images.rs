//! Building the bare-metal images: the hypervisor and every domain image package.

use crate::{RigError, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The bare-metal target.
pub const TARGET: &str = "x86_64-unknown-none";

/// Packages built for the bare-metal target: the hypervisor, then domain-image packages, each
/// with its folder (a package whose folder does not exist yet is skipped).
pub const IMAGE_PACKAGES: &[(&str, &str)] = &[
    ("warden-hypervisor", "kernel/hypervisor"),
    ("warden-guests", "tests/guests"),
    ("warden-mgmt-domain", "mgmt/domain"),
    ("warden-vtpm-domain", "vtpm/domain"),
    ("warden-vtpm-manager", "vtpm/manager"),
];

/// Where the built images are.
#[derive(Debug, Clone)]
pub struct Images {
    dir: PathBuf,
    kernel: PathBuf,
}

impl Images {
    /// The hypervisor as QEMU's `-kernel` takes it (ELF32 with the Multiboot header).
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    /// The ELF64 hypervisor (with symbols, for addr2line).
    pub fn kernel_elf64(&self) -> PathBuf {
        self.dir.join("warden")
    }

    /// A domain image by bin name.
    pub fn image(&self, name: &str) -> Result<PathBuf, RigError> {
        let p = self.dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(RigError::Build(format!(
                "no image named '{name}' in {}",
                self.dir.display()
            )))
        }
    }

    /// The folder the images are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The target folder used for bare-metal builds (separate from the host build's, so a nested
/// build from inside `cargo test` never waits on the outer cargo's lock).
pub fn target_dir() -> PathBuf {
    workspace_root().join("target/warden-images")
}

static BUILT: OnceLock<Result<Images, String>> = OnceLock::new();

/// Builds the images once per process (cargo makes repeated builds cheap) and returns them.
pub fn images() -> Result<Images, RigError> {
    BUILT
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .clone()
        .map_err(RigError::Build)
}

fn build() -> Result<Images, RigError> {
    let root = workspace_root();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", target_dir())
        // A nested build must not inherit the outer (host) build's flags or jobserver.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS");
    // Reproducible images: the checkout's and cargo's folders must not leak into the binaries
    // (panic locations, debug info), or reference measurements computed from one checkout would
    // not match an image built from another. Array-valued config is appended to
    // `.cargo/config.toml`'s flags for the target.
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let remap = |from: &Path, to: &str| format!("\"--remap-path-prefix={}={to}\"", from.display());
    cmd.arg("--config").arg(format!(
        "target.{TARGET}.rustflags=[{}, {}]",
        remap(&root, "/warden"),
        remap(&cargo_home, "/cargo")
    ));
    for (package, folder) in IMAGE_PACKAGES {
        if root.join(folder).join("Cargo.toml").is_file() {
            cmd.args(["-p", package]);
        }
    }
    let out = cmd.output().map_err(|source| RigError::Spawn {
        program: "cargo".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(RigError::Build(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let dir = target_dir().join(TARGET).join("release");
    let elf64 = dir.join("warden");
    let kernel = dir.join("warden.elf32");
    if !is_newer(&kernel, &elf64) {
        // QEMU's Multiboot loader takes ELF32 (or the a.out kludge); objcopy converts, keeping
        // the physical load addresses. It writes a private file that is then renamed into
        // place, so a QEMU started by another test process never reads a half-written kernel.
        let partial = dir.join(format!("warden.elf32.{}", std::process::id()));
        let out = Command::new("objcopy")
            .args(["-O", "elf32-i386"])
            .arg(&elf64)
            .arg(&partial)
            .output()
            .map_err(|source| RigError::Spawn {
                program: "objcopy".into(),
                source,
            })?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&partial);
            return Err(RigError::Build(format!(
                "objcopy: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        check_multiboot_header(&partial)?;
        std::fs::rename(&partial, &kernel).map_err(RigError::io("installing warden.elf32"))?;
    } else {
        check_multiboot_header(&kernel)?;
    }
    Ok(Images { dir, kernel })
}

/// Whether `derived` exists and was written after `source`.
fn is_newer(derived: &Path, source: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(derived), modified(source)), (Some(d), Some(s)) if d > s)
}

/// The Multiboot v1 header must sit in the first 8 KiB, 4-byte aligned, with a valid checksum,
/// and the Multiboot2 header in the first 32 KiB, 8-byte aligned, with its checksum.
fn check_multiboot_header(path: &Path) -> Result<(), RigError> {
    let bytes = std::fs::read(path).map_err(RigError::io(format!("reading {}", path.display())))?;
    let window = &bytes[..bytes.len().min(8192)];
    let found = window.chunks_exact(4).enumerate().any(|(i, w)| {
        if u32::from_le_bytes(w.try_into().unwrap_or_default()) != 0x1bad_b002 {
            return false;
        }
        let at = i * 4;
        let word = |o: usize| {
            window.get(at + o..at + o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
        };
        matches!((word(4), word(8)), (Some(f), Some(c)) if 0x1bad_b002u32.wrapping_add(f).wrapping_add(c) == 0)
    });
    if !found {
        return Err(RigError::Build(format!(
            "{}: no Multiboot header in the first 8 KiB",
            path.display()
        )));
    }
    // The Multiboot2 header (GRUB's `multiboot2`): in the first 32 KiB, 8-byte aligned, magic,
    // architecture, header length and a checksum over the three.
    let window = &bytes[..bytes.len().min(32768)];
    let word = |at: usize| {
        window
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let found2 = (0..window.len()).step_by(8).any(|at| {
        matches!(
            (word(at), word(at + 4), word(at + 8), word(at + 12)),
            (Some(0xe852_50d6), Some(a), Some(l), Some(c))
                if 0xe852_50d6u32.wrapping_add(a).wrapping_add(l).wrapping_add(c) == 0
        )
    });
    if found2 {
        Ok(())
    } else {
        Err(RigError::Build(format!(
            "{}: no Multiboot2 header in the first 32 KiB",
            path.display()
        )))
    }
}

/// Builds the host tool package `name` (its binary has the same name) and returns the
/// binary's path, so whole-system tests drive the real CLI.
pub fn host_tool(name: &str) -> Result<PathBuf, RigError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = workspace_root();
    let out = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-q", "-p", name])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .map_err(|source| RigError::Spawn { program: "cargo".into(), source })?;
    if !out.status.success() {
        return Err(RigError::Build(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    Ok(root.join("target/debug").join(name))
}

static VTPM_SIM: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The `vtpm-sim` server binary (a host build, once per process, in the images' target folder
/// so that a build from inside `cargo test` does not wait on the outer cargo's lock).
pub fn vtpm_sim() -> Result<PathBuf, RigError> {
    VTPM_SIM
        .get_or_init(|| {
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(workspace_root())
                .args(["build", "-p", "vtpm-sim", "--bin", "vtpm-sim"])
                .env("CARGO_TARGET_DIR", target_dir())
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("CARGO_MAKEFLAGS")
                .output()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !out.status.success() {
                return Err(format!("building vtpm-sim: {}", String::from_utf8_lossy(&out.stderr)));
            }
            Ok(target_dir().join("debug").join("vtpm-sim"))
        })
        .clone()
        .map_err(RigError::Build)
}
