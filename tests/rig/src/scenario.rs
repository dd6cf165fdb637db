//! Scenarios are data: one TOML file per scenario under `tests/scenarios/`.

use crate::RigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// How the boot must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExpectExit {
    /// The hypervisor reported success.
    #[default]
    Success,
    /// The hypervisor reported a failed check.
    Failure,
    /// The hypervisor panicked.
    Panic,
    /// The hypervisor took a fatal CPU exception.
    Exception,
}

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (its file stem); not in the file.
    #[serde(skip)]
    pub name: String,
    /// One line saying what the scenario shows.
    pub description: String,
    /// Extra hypervisor command-line words.
    #[serde(default)]
    pub cmdline: String,
    /// Attach a private swtpm as the platform TPM.
    #[serde(default = "yes")]
    pub tpm: bool,
    /// Which program is the platform TPM: `"swtpm"` (default) or `"vtpm-sim"`.
    #[serde(default)]
    pub platform_tpm: crate::swtpm::PlatformTpm,
    /// Which interface the platform TPM has: `"tis"` (default, `-device tpm-tis`) or `"crb"`.
    #[serde(default)]
    pub tpm_interface: crate::swtpm::TpmInterface,
    /// The QEMU CPU model.
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Guest RAM for the whole machine, in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    /// Give up after this many seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// How the run must end.
    #[serde(default)]
    pub expect_exit: ExpectExit,
    /// Substrings that must appear in the serial log, in this order.
    #[serde(default)]
    pub expect: Vec<String>,
    /// Substrings that must not appear.
    #[serde(default)]
    pub forbid: Vec<String>,
    /// A policy source file (relative to the workspace root), compiled and passed as a module.
    #[serde(default)]
    pub policy: Option<String>,
    /// Run QEMU with `-icount shift=0` (deterministic instruction counts for benchmarks).
    #[serde(default)]
    pub icount: bool,
    /// Give the machine a virtio-net function at PCI 00:03.0 on QEMU user networking, with
    /// one loopback-only forward `127.0.0.1:PORT` → guest `10.0.2.15:NET_GUEST_PORT`
    /// (`BootOptions::host_port`, or a free port the rig picks).
    #[serde(default)]
    pub net: bool,
    /// How the machine boots: `"multiboot"` (default: SeaBIOS, QEMU's `-kernel`, Multiboot v1)
    /// or `"uefi-grub"` (OVMF → a GRUB EFI image the rig builds → Multiboot2).
    #[serde(default)]
    pub boot: BootPath,
    /// Domains to boot; every key is passed through to the boot manifest.
    #[serde(default)]
    pub domain: Vec<toml::Table>,
    /// When the hypervisor ends the run: `"domains-done"` (once every domain documented to end
    /// has ended, with the verdict as exit code) — a test mode, passed as the measured
    /// command-line word `end_when=domains-done`. Without it the hypervisor keeps running.
    #[serde(default)]
    pub end_when: Option<EndWhen>,
}

/// The values of a scenario's `boot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum BootPath {
    /// SeaBIOS and QEMU's own Multiboot v1 loader (`-kernel`, `-initrd`).
    #[default]
    #[serde(rename = "multiboot")]
    Multiboot,
    /// OVMF, then GRUB EFI with its `tpm` module, then Warden by Multiboot2.
    #[serde(rename = "uefi-grub")]
    UefiGrub,
}

/// The values of a scenario's `end_when`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum EndWhen {
    #[serde(rename = "domains-done")]
    DomainsDone,
}

fn yes() -> bool {
    true
}
fn default_cpu() -> String {
    "qemu64,+svm,+npt".into()
}
fn default_memory() -> u32 {
    256
}
fn default_timeout() -> u64 {
    120
}

/// The folder holding the scenario files.
pub fn dir() -> PathBuf {
    crate::workspace_root().join("tests/scenarios")
}

impl Scenario {
    /// Loads `tests/scenarios/NAME.toml`.
    pub fn load(name: &str) -> Result<Self, RigError> {
        let path = dir().join(format!("{name}.toml"));
        if !path.is_file() {
            return Err(RigError::NoScenario {
                name: name.into(),
                path,
            });
        }
        Self::load_path(&path)
    }

    /// Loads a scenario from a file.
    pub fn load_path(path: &Path) -> Result<Self, RigError> {
        let text = std::fs::read_to_string(path)
            .map_err(RigError::io(format!("reading {}", path.display())))?;
        let mut s: Scenario = toml::from_str(&text).map_err(|e| RigError::BadScenario {
            path: path.into(),
            message: e.to_string(),
        })?;
        s.name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for (i, d) in s.domain.iter().enumerate() {
            for key in ["name", "image"] {
                if !d.get(key).is_some_and(toml::Value::is_str) {
                    return Err(RigError::BadScenario {
                        path: path.into(),
                        message: format!("domain {i} needs a string `{key}`"),
                    });
                }
            }
        }
        Ok(s)
    }

    /// Every scenario, sorted by name.
    pub fn all() -> Result<Vec<Self>, RigError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(dir()).map_err(RigError::io("listing tests/scenarios"))?;
        for e in entries {
            let path = e.map_err(RigError::io("listing tests/scenarios"))?.path();
            if path.extension().is_some_and(|x| x == "toml") {
                out.push(Self::load_path(&path)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The hypervisor's command line from the scenario: its `cmdline` plus `end_when=…`.
    pub fn hypervisor_cmdline(&self) -> String {
        match self.end_when {
            Some(EndWhen::DomainsDone) => format!("{} end_when=domains-done", self.cmdline).trim().to_string(),
            None => self.cmdline.clone(),
        }
    }

    /// Sets `key:value` in the `args` of every domain whose args name `key` (the args are
    /// `key:value` words separated by `;` or `,`); returns how many domains changed. A benchmark's
    /// smoke run uses it for a few iterations instead of thousands.
    pub fn set_domain_arg(&mut self, key: &str, value: &str) -> usize {
        let mut changed = 0;
        for d in &mut self.domain {
            let Some(toml::Value::String(args)) = d.get_mut("args") else { continue };
            let mut hit = false;
            let words: Vec<String> = args
                .split(';')
                .flat_map(|w| w.split(','))
                .map(|w| match w.split_once(':') {
                    Some((k, _)) if k == key => {
                        hit = true;
                        format!("{key}:{value}")
                    }
                    _ => w.to_string(),
                })
                .collect();
            if hit {
                *args = words.join(";");
                changed += 1;
            }
        }
        changed
    }

    /// The boot manifest text (`warden-manifest 1` then one `domain k=v …` line per domain).
    pub fn manifest(&self) -> Result<String, RigError> {
        let mut out = String::from("warden-manifest 1\n");
        for d in &self.domain {
            out.push_str("domain");
            for (k, v) in d {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(RigError::BadScenario {
                            path: dir().join(&self.name),
                            message: format!("domain key `{k}` has an unsupported value {other}"),
                        });
                    }
                };
                if v.is_empty() || v.contains(char::is_whitespace) || v.contains(',') {
                    return Err(RigError::BadScenario {
                        path: dir().join(&self.name),
                        message: format!(
                            "domain key `{k}`: values must be non-empty words without commas"
                        ),
                    });
                }
                out.push_str(&format!(" {k}={v}"));
            }
            out.push('\n');
        }
        Ok(out)
    }

    /// The image names the domains use, in order, without repeats: each domain's `image`, then
    /// the boot images it may read (`images = "a;b"`, for a management domain that builds
    /// domains from them).
    pub fn images(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in &self.domain {
            let own = d.get("image").and_then(toml::Value::as_str);
            let readable = d.get("images").and_then(toml::Value::as_str).unwrap_or("").split(';');
            for i in own.into_iter().chain(readable).filter(|i| !i.is_empty()) {
                if !out.iter().any(|o| o == i) {
                    out.push(i.into());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn set_domain_arg_rewrites_only_that_key() {
        let mut s: super::Scenario = toml::from_str(
            "description = \"x\"\n[[domain]]\nname = \"a\"\nimage = \"i\"\nargs = \"role:ping;peer:1;iterations:2000\"\n\
             [[domain]]\nname = \"b\"\nimage = \"i\"\nargs = \"lines:3\"\n[[domain]]\nname = \"c\"\nimage = \"i\"\n",
        )
        .unwrap();
        assert_eq!(s.set_domain_arg("iterations", "50"), 1);
        let args: Vec<_> = s.domain.iter().map(|d| d.get("args").and_then(|v| v.as_str())).collect();
        assert_eq!(args, [Some("role:ping;peer:1;iterations:50"), Some("lines:3"), None]);
        assert_eq!(s.set_domain_arg("absent", "1"), 0);
    }

    use super::*;

    #[test]
    fn every_checked_in_scenario_parses() {
        let all = Scenario::all().unwrap();
        assert!(
            all.iter().any(|s| s.name == "demo"),
            "the default scenario exists"
        );
        for s in &all {
            s.manifest().unwrap();
            assert!(!s.description.is_empty(), "{} has a description", s.name);
        }
    }

    #[test]
    fn manifest_lists_domains_in_order() {
        let s: Scenario = toml::from_str(
            r#"description = "x"
               [[domain]]
               name = "a"
               image = "hello"
               memory_mib = 4
               [[domain]]
               name = "b"
               image = "hello"
               priority = 3"#,
        )
        .unwrap();
        assert_eq!(
            s.manifest().unwrap(),
            "warden-manifest 1\ndomain name=a image=hello memory_mib=4\ndomain name=b image=hello priority=3\n"
        );
        assert_eq!(s.images(), vec!["hello".to_string()]);
        let m: Scenario = toml::from_str(
            "description = \"x\"\n[[domain]]\nname = \"m\"\nimage = \"mgmt\"\nimages = \"w;hello;w\"\n[[domain]]\nname = \"h\"\nimage = \"hello\"",
        )
        .unwrap();
        assert_eq!(m.images(), ["mgmt", "w", "hello"]);
        assert_eq!(s.cpu, "qemu64,+svm,+npt");
        assert!(s.tpm);
        assert_eq!(s.platform_tpm, crate::swtpm::PlatformTpm::Swtpm, "swtpm stays the default");
    }

    #[test]
    fn platform_tpm_names_swtpm_or_vtpm_sim() {
        let s: Scenario = toml::from_str("description = \"x\"\nplatform_tpm = \"vtpm-sim\"").unwrap();
        assert_eq!(s.platform_tpm, crate::swtpm::PlatformTpm::VtpmSim);
        assert!(toml::from_str::<Scenario>("description = \"x\"\nplatform_tpm = \"tpm-tis\"").is_err());
        assert_eq!("vtpm-sim".parse(), Ok(crate::swtpm::PlatformTpm::VtpmSim));
        assert!("libtpms".parse::<crate::swtpm::PlatformTpm>().is_err());
    }

    #[test]
    fn tpm_interface_is_tis_unless_crb_is_named() {
        use crate::swtpm::TpmInterface;
        let s: Scenario = toml::from_str("description = \"x\"").unwrap();
        assert_eq!(s.tpm_interface.qemu_device(), "tpm-tis", "TIS stays the default");
        let s: Scenario = toml::from_str("description = \"x\"\ntpm_interface = \"crb\"").unwrap();
        assert_eq!((s.tpm_interface, s.tpm_interface.qemu_device()), (TpmInterface::Crb, "tpm-crb"));
        assert!(toml::from_str::<Scenario>("description = \"x\"\ntpm_interface = \"tpm-crb\"").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let s: Scenario =
            toml::from_str("description = \"x\"\n[[domain]]\nname = \"a b\"\nimage = \"x\"")
                .unwrap();
        assert!(s.manifest().is_err());
        assert!(toml::from_str::<Scenario>("description = \"x\"\nbogus = 1").is_err());
        assert!(toml::from_str::<Scenario>("description = \"x\"\nend_when = \"never\"").is_err());
        let s: Scenario = toml::from_str("description = \"x\"\ncmdline = \"a=1\"\nend_when = \"domains-done\"").unwrap();
        assert_eq!(s.hypervisor_cmdline(), "a=1 end_when=domains-done");
    }
}
