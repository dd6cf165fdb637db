//! `cargo xtask attest`: boot a scenario on a TPM provisioned with EK certificates, collect the
//! quote, AK and event log the hypervisor exports, prove the AK belongs to that TPM, verify
//! everything against reference values computed from the built images, and print the table.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use warden_rig::Scenario;
use warden_rig::attest::{AttestOptions, attest as run_attest};

/// Arguments of `cargo xtask attest`.
#[derive(Debug, clap::Args)]
pub(crate) struct AttestArgs {
    /// The scenario to boot (`cargo xtask scenarios` lists them).
    #[arg(long, default_value = "attest")]
    pub(crate) scenario: String,
    /// Keep the evidence here: eventlog.bin, quote.bin, quote.msg, quote.sig, ak.pub,
    /// reference.json, report.json, the EK certificate and the serial log.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Flip one byte of this component (policy, manifest, or a domain image's name) after the
    /// reference values were computed: verification must then fail and name it. `swap-names`
    /// swaps the files of the scenario's first two images instead (each module keeps its name
    /// but carries the other's bytes): verification must name both images. `grub-cmdline`
    /// (UEFI scenarios) adds a command to GRUB's configuration after recording the platform
    /// policy from a clean boot: verification must name PCR 8.
    #[arg(long)]
    pub(crate) tamper: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Only compute the reference values (expected component digests and PCRs 20-22 in every
    /// bank) from the built images, write `reference.json` into `--out` (or print it), and stop.
    #[arg(long)]
    pub(crate) reference_only: bool,
    /// The platform TPM: swtpm (default, EK certificates by swtpm_setup) or vtpm-sim (EK
    /// certificates by `vtpm-sim --manufacture`); overrides the scenario's `platform_tpm`.
    #[arg(long)]
    pub(crate) platform_tpm: Option<warden_rig::swtpm::PlatformTpm>,
}

/// Runs the attestation; fails (non-zero exit) unless every check passes.
pub(crate) fn attest(args: &AttestArgs) -> Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    if args.reference_only {
        return reference_only(&scenario, args.out.as_deref());
    }
    eprintln!("xtask: attesting scenario '{}': {}", scenario.name, scenario.description);
    if let Some(t) = &args.tamper {
        eprintln!("xtask: tampering with '{t}' after computing the reference values");
    }
    let opts = AttestOptions { tamper: args.tamper.clone(), keep_dir: false, platform_tpm: args.platform_tpm, platform_policy: None };
    let a = run_attest(&scenario, &opts)?;

    for c in &a.credential {
        eprintln!("xtask: credential: {c}");
    }
    let mut pcr_mismatch = Vec::new();
    for (alg, pcr, replayed, read) in a.pcr_comparison() {
        if replayed.is_none() || replayed != read {
            pcr_mismatch.push(format!("{} PCR {pcr}: tpm2_eventlog {:?}, tpm2_pcrread {:?}", alg.name(), replayed, read));
        }
    }
    if pcr_mismatch.is_empty() {
        eprintln!(
            "xtask: tpm2_eventlog's replay of the exported log equals tpm2_pcrread from the same platform TPM (PCRs 20-22, banks {})",
            a.banks.iter().map(|b| b.name()).collect::<Vec<_>>().join(",")
        );
    }

    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let attest_len = usize::from(u16::from_be_bytes([a.export.quote[0], a.export.quote[1]]));
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("eventlog.bin", a.export.eventlog.clone()),
            ("quote.bin", a.export.quote.clone()),
            // The split form tpm2_checkquote takes (-m, -s).
            ("quote.msg", a.export.quote[2..2 + attest_len].to_vec()),
            ("quote.sig", a.export.quote[2 + attest_len..].to_vec()),
            ("ak.pub", a.export.ak.clone()),
            ("nonce.hex", wardenctl_hex(&a.nonce).into_bytes()),
            ("reference.json", serde_json::to_vec_pretty(&a.reference)?),
            ("report.json", serde_json::to_vec_pretty(&a.report)?),
            ("eventlog.yaml", a.eventlog_yaml.clone().into_bytes()),
            ("pcrread.yaml", a.pcrread_yaml.clone().into_bytes()),
            ("serial.log", a.outcome.log.clone().into_bytes()),
        ];
        for (name, bytes) in files {
            std::fs::write(out.join(name), bytes).with_context(|| format!("writing {name}"))?;
        }
        for name in ["ek-cert.der", "ek.pub"] {
            let _ = std::fs::copy(a.dir.join("credential").join(name), out.join(name));
        }
        eprintln!("xtask: evidence kept in {}", out.display());
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&a.report)?);
    } else {
        print!("{}", a.report.table());
    }
    if !pcr_mismatch.is_empty() {
        bail!("the exported event log does not replay to the TPM's PCRs:\n  {}", pcr_mismatch.join("\n  "));
    }
    if !a.report.ok {
        bail!("attestation FAILED: {}", a.report.failures().join("; "));
    }
    eprintln!("xtask: attestation of '{}' verified", scenario.name);
    Ok(())
}

/// Writes (or prints) the reference values of `scenario`.
fn reference_only(scenario: &Scenario, out: Option<&std::path::Path>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("warden-reference-{}-{}", scenario.name, std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let files = warden_rig::attest::components(scenario, &dir)?;
    let reference = warden_rig::attest::reference(scenario, "", &files)?;
    let _ = std::fs::remove_dir_all(&dir);
    let json = serde_json::to_string_pretty(&reference)?;
    match out {
        Some(out) => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            std::fs::write(out.join("reference.json"), json)?;
            eprintln!("xtask: reference values of '{}' written to {}", scenario.name, out.join("reference.json").display());
        }
        None => println!("{json}"),
    }
    Ok(())
}

fn wardenctl_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
