//! The UEFI boot path: OVMF firmware → GRUB EFI (with its `tpm` module) → Warden by Multiboot2.
//!
//! The rig builds the GRUB image itself, per run, from the Debian packages `grub-efi-amd64-bin`,
//! `grub-common` (`grub-mkrescue`), `xorriso`, `mtools` and `ovmf`: an ISO whose `grub.cfg` loads
//! `tpm` (so GRUB measures every command into PCR 8 and every file it reads into PCR 9), sends
//! the console to the serial port, and boots `multiboot2 /boot/warden …` with one `module2` per
//! module. QEMU runs OVMF from a read-only code flash and a per-run copy of the variable store.

use crate::RigError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// OVMF's code (read-only flash) and variable-store template, as Debian's `ovmf` installs them.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// See [`OVMF_CODE`].
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The path the kernel has inside the GRUB image (the first word of its command line).
pub const KERNEL_PATH: &str = "/boot/warden";

/// The `grub.cfg` booting `kernel_cmdline` with `modules` (file name in `/boot`, arguments),
/// after `extra` commands (a tampered configuration in tests).
pub fn grub_cfg(kernel_cmdline: &str, modules: &[(String, String)], extra: &[String]) -> String {
    let mut cfg = String::from(
        "# Written by the Warden test rig (tests/rig/src/uefi.rs).\n\
         insmod tpm\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         set timeout=0\n",
    );
    for c in extra {
        cfg.push_str(c);
        cfg.push('\n');
    }
    cfg.push_str(&format!("echo 'grub: loading {KERNEL_PATH} by Multiboot2'\n"));
    cfg.push_str(&format!("multiboot2 {KERNEL_PATH} {}\n", kernel_cmdline.trim()));
    for (name, args) in modules {
        cfg.push_str(&format!("module2 /boot/{name} {args}\n"));
    }
    cfg.push_str("boot\n");
    cfg
}

/// Builds `run_dir/grub.iso` holding `kernel`, the modules (host path, arguments) and a
/// `grub.cfg` for `kernel_cmdline`; returns the ISO's path.
pub fn grub_iso(
    run_dir: &Path,
    kernel: &Path,
    kernel_cmdline: &str,
    modules: &[(PathBuf, String)],
    extra_commands: &[String],
) -> Result<PathBuf, RigError> {
    let root = run_dir.join("iso");
    let boot = root.join("boot");
    std::fs::create_dir_all(boot.join("grub")).map_err(RigError::io("creating the GRUB image tree"))?;
    std::fs::copy(kernel, boot.join("warden")).map_err(RigError::io("copying warden into the GRUB image"))?;
    let mut named = Vec::new();
    for (i, (path, args)) in modules.iter().enumerate() {
        // Names fixed by position and kind, so GRUB's commands (PCR 8) do not depend on host paths.
        let kind = args.split_whitespace().find_map(|w| w.strip_prefix("kind=")).unwrap_or("module");
        let name = format!("m{i}-{kind}");
        std::fs::copy(path, boot.join(&name))
            .map_err(RigError::io(format!("copying {} into the GRUB image", path.display())))?;
        named.push((name, args.clone()));
    }
    std::fs::write(boot.join("grub/grub.cfg"), grub_cfg(kernel_cmdline, &named, extra_commands))
        .map_err(RigError::io("writing grub.cfg"))?;
    let iso = run_dir.join("grub.iso");
    let out = Command::new("grub-mkrescue")
        .args(["-d", "/usr/lib/grub/x86_64-efi", "--modules=tpm serial multiboot2"])
        .arg("-o")
        .arg(&iso)
        .arg(&root)
        .output()
        .map_err(|source| RigError::Spawn { program: "grub-mkrescue".into(), source })?;
    if !out.status.success() {
        return Err(RigError::Build(format!("grub-mkrescue: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(iso)
}

/// QEMU arguments booting OVMF (code read-only, a private copy of the variables in `run_dir`)
/// from the GRUB ISO.
pub fn qemu_args(run_dir: &Path, iso: &Path) -> Result<Vec<String>, RigError> {
    let vars = run_dir.join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).map_err(RigError::io(format!("copying {OVMF_VARS}")))?;
    Ok(vec![
        "-drive".into(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        "-drive".into(),
        format!("if=ide,media=cdrom,format=raw,readonly=on,file={}", iso.display()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_loads_tpm_first_and_one_module2_per_module() {
        let cfg = grub_cfg(
            " end_when=domains-done ",
            &[("m0-policy".into(), "kind=policy".into()), ("m1-image".into(), "kind=image name=good".into())],
            &["set x=1".into()],
        );
        assert!(cfg.contains("set x=1\necho"), "{cfg}");
        let lines: Vec<&str> = cfg.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines[0], "insmod tpm");
        assert!(lines.contains(&"multiboot2 /boot/warden end_when=domains-done"));
        let modules: Vec<&&str> = lines.iter().filter(|l| l.starts_with("module2")).collect();
        assert_eq!(modules, [&"module2 /boot/m0-policy kind=policy", &"module2 /boot/m1-image kind=image name=good"]);
        assert_eq!(lines.last(), Some(&"boot"));
    }
}
