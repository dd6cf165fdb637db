//! Attestation in the rig: provision swtpm with EK certificates from a private CA, compute the
//! reference values of a scenario from the built images, boot it with a verifier's nonce,
//! collect the evidence the hypervisor exports on the console, read the PCRs back from the
//! same swtpm after QEMU exits, prove the AK lives in that TPM (MakeCredential against the
//! certified EK, ActivateCredential in the TPM), and verify with `wardenctl`'s verifier.

use crate::qemu::{BootOptions, Outcome, boot};
use crate::scenario::Scenario;
use crate::swtpm::PlatformTpm;
use crate::{RigError, images};
use std::path::{Path, PathBuf};
use std::process::Command;
use tpm2_protocol::TpmUnmarshal;
use tpm2_protocol::data::{Tpm2bPublic, TpmuPublicId};
use warden_tpm::eventlog::Tag;
use warden_tpm::host::Swtpm as TcpSwtpm;
pub use warden_tpm::host::yaml_pcr;
use warden_tpm::{Banks, HashAlg};
use wardenctl::reference::{Component, Reference};
use wardenctl::verify::{Evidence, Report, verify};

/// Where the hypervisor keeps its AK (kernel/hypervisor/src/measure.rs).
pub const AK_HANDLE: u32 = 0x8101_0100;
/// Where swtpm_setup persists the RSA EK and stores its certificate (TCG EK profile).
pub const EK_HANDLE: u32 = 0x8101_0001;
const EK_CERT_INDEX: u32 = 0x01c0_0002;

fn fail(what: impl Into<String>) -> RigError {
    RigError::Attest(what.into())
}

/// Runs a program, failing with its stderr; returns stdout.
fn run(cmd: &mut Command) -> Result<Vec<u8>, RigError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|source| RigError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !out.status.success() {
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return Err(fail(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// A swtpm state folder provisioned with EK certificates by a private CA.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The TPM state (pass as [`BootOptions::tpm_state`]).
    pub tpm_state: PathBuf,
    /// The private CA's root certificate.
    pub root_ca: PathBuf,
    /// The private CA's intermediate (issuer of the EK certificate).
    pub issuer_ca: PathBuf,
}

/// Provisions a TPM state folder for `kind` under `dir`: EK certificates from a private CA and
/// the RSA EK persisted at [`EK_HANDLE`].
pub fn provision_for(kind: PlatformTpm, dir: &Path) -> Result<Provisioned, RigError> {
    match kind {
        PlatformTpm::Swtpm => provision(dir),
        PlatformTpm::VtpmSim => provision_vtpm_sim(dir),
    }
}

/// `vtpm-sim --manufacture`: RSA and ECC EKs with certificates signed by a CA kept in the
/// state folder (`vtpm-ca.pem`, its key sealed), then `tpm2_createek` persists the RSA EK
/// (the same TCG template, so the certificate certifies it) where swtpm_setup puts it.
fn provision_vtpm_sim(dir: &Path) -> Result<Provisioned, RigError> {
    let state = dir.join("tpm");
    std::fs::create_dir_all(&state).map_err(RigError::io(format!("creating {}", state.display())))?;
    let (mut child, port) =
        crate::swtpm::vtpm_sim_tcp(&state, &["--manufacture", "--flags", "not-need-init,startup-clear"])?;
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    let persisted = run(Command::new("tpm2_createek")
        .args(["-T", &tcti, "-c", &format!("{EK_HANDLE:#x}"), "-G", "rsa", "-u"])
        .arg(dir.join("ek-provisioned.pub")));
    let stopped = run(Command::new("swtpm_ioctl").args(["--tcp", &format!("127.0.0.1:{}", port + 1), "-s"]));
    let _ = child.wait();
    persisted?;
    stopped?;
    let ca = state.join("vtpm-ca.pem");
    Ok(Provisioned { tpm_state: state, root_ca: ca.clone(), issuer_ca: ca })
}

/// Runs `swtpm_setup` under `dir` with a private `swtpm-localca` (never the system CA folder):
/// RSA and ECC EKs with certificates, all four SHA banks active.
pub fn provision(dir: &Path) -> Result<Provisioned, RigError> {
    let ca = dir.join("ca");
    let state = dir.join("tpm");
    for d in [&ca, &state] {
        std::fs::create_dir_all(d).map_err(RigError::io(format!("creating {}", d.display())))?;
    }
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text)
            .map_err(RigError::io(format!("writing {}", p.display())))
            .map(|()| p)
    };
    let localca_conf = write(
        "swtpm-localca.conf",
        format!(
            "statedir = {0}\nsigningkey = {0}/signkey.pem\nissuercert = {0}/issuercert.pem\ncertserial = {0}/certserial\n",
            ca.display()
        ),
    )?;
    let localca_opts = write(
        "swtpm-localca.options",
        "--platform-manufacturer Warden\n--platform-version 2.1\n--platform-model QEMU\n".into(),
    )?;
    let setup_conf = write(
        "swtpm_setup.conf",
        format!(
            "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\n",
            localca_conf.display(),
            localca_opts.display()
        ),
    )?;
    run(Command::new("swtpm_setup")
        .args(["--tpm2", "--tpmstate"])
        .arg(&state)
        .arg("--config")
        .arg(&setup_conf)
        .args([
            "--create-ek-cert",
            "--create-platform-cert",
            "--lock-nvram",
            "--overwrite",
        ])
        .args(["--pcr-banks", "sha1,sha256,sha384,sha512"]))?;
    Ok(Provisioned {
        tpm_state: state,
        root_ca: ca.join("swtpm-localca-rootca-cert.pem"),
        issuer_ca: ca.join("issuercert.pem"),
    })
}

/// What the hypervisor exported between `attest: begin` and `attest: end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The AK's TPM2B_PUBLIC.
    pub ak: Vec<u8>,
    /// TPM2B_ATTEST || TPMT_SIGNATURE.
    pub quote: Vec<u8>,
    /// The TCG event log.
    pub eventlog: Vec<u8>,
}

impl Export {
    /// Extracts the evidence from a serial log.
    pub fn from_log(log: &str) -> Result<Export, RigError> {
        let block = log
            .split_once("attest: begin")
            .and_then(|(_, rest)| rest.split_once("attest: end"))
            .map(|(b, _)| b)
            .ok_or_else(|| {
                fail("no attestation evidence (attest: begin … attest: end) in the serial log")
            })?;
        let field = |name: &str| -> Result<Vec<u8>, RigError> {
            let prefix = format!("attest: {name} ");
            let line = block
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .ok_or_else(|| fail(format!("no '{prefix}' line")))?;
            wardenctl::unhex(line).map_err(|e| fail(format!("'{prefix}' is not hex: {e}")))
        };
        Ok(Export {
            ak: field("ak")?,
            quote: field("quote")?,
            eventlog: field("eventlog")?,
        })
    }
}

/// The platform TPM reopened on TCP after QEMU exited.
#[derive(Debug)]
pub enum Reopened {
    /// swtpm, restarted on its state.
    Swtpm(TcpSwtpm),
    /// vtpm-sim, restarted on its state; killed on drop.
    VtpmSim(std::process::Child, u16),
}

impl Reopened {
    /// The `-T` argument of tpm2-tools for it.
    pub fn tcti(&self) -> String {
        match self {
            Reopened::Swtpm(t) => t.tcti(),
            Reopened::VtpmSim(_, port) => format!("swtpm:host=127.0.0.1,port={port}"),
        }
    }
}

impl Drop for Reopened {
    fn drop(&mut self) {
        if let Reopened::VtpmSim(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reopens the platform TPM QEMU used, after QEMU exited, on a TCP port: saves its volatile
/// state (PCRs live only there), stops it, and restarts it on the same state without a new
/// startup (both swtpm and vtpm-sim resume the stored volatile state).
pub fn reopen(mut swtpm: crate::swtpm::Swtpm) -> Result<Reopened, RigError> {
    let ctrl = swtpm.ctrl_socket().to_path_buf();
    let dir = swtpm.dir().to_path_buf();
    run(Command::new("swtpm_ioctl")
        .arg("--unix")
        .arg(&ctrl)
        .arg("-v"))?;
    run(Command::new("swtpm_ioctl")
        .arg("--unix")
        .arg(&ctrl)
        .arg("-s"))?;
    swtpm.stop();
    match swtpm.kind() {
        PlatformTpm::Swtpm => TcpSwtpm::start_on(&dir, &["not-need-init"])
            .map(Reopened::Swtpm)
            .map_err(|e| RigError::Swtpm(e.to_string())),
        PlatformTpm::VtpmSim => {
            let (child, port) = crate::swtpm::vtpm_sim_tcp(&dir, &["--flags", "not-need-init"])?;
            Ok(Reopened::VtpmSim(child, port))
        }
    }
}

/// The TPM name of a public area: `nameAlg || H(TPMT_PUBLIC)` (SHA-256 for the AK).
fn ak_name(ak_public: &[u8]) -> Result<Vec<u8>, RigError> {
    let (p, rest) =
        Tpm2bPublic::unmarshal(ak_public).map_err(|e| fail(format!("AK public area: {e}")))?;
    if !rest.is_empty() || p.inner.name_alg.value() != HashAlg::Sha256.id() {
        return Err(fail(
            "AK public area: trailing bytes or a name algorithm other than SHA-256",
        ));
    }
    let mut name = HashAlg::Sha256.id().to_be_bytes().to_vec();
    name.extend_from_slice(HashAlg::Sha256.hash(&ak_public[2..]).as_bytes());
    Ok(name)
}

/// Proves the exported AK is resident in this TPM, bound to its certified EK:
/// the EK certificate chains to the private CA and certifies the EK's key; MakeCredential
/// (done in software against that EK) wraps a random secret to the AK's name; only the TPM
/// holding both keys can ActivateCredential it back. Returns what was checked.
pub fn activate_credential(
    tpm: &Reopened,
    ca: &Provisioned,
    ak_public: &[u8],
    work: &Path,
) -> Result<Vec<String>, RigError> {
    let tcti = tpm.tcti();
    let p = |n: &str| work.join(n);
    let mut done = Vec::new();

    // 1. The EK certificate (from the TPM's NV) chains to the private CA.
    run(Command::new("tpm2_nvread")
        .args(["-T", &tcti, &format!("{EK_CERT_INDEX:#x}"), "-o"])
        .arg(p("ek-cert.der")))?;
    run(Command::new("openssl")
        .args(["x509", "-inform", "der", "-in"])
        .arg(p("ek-cert.der"))
        .arg("-out")
        .arg(p("ek-cert.pem")))?;
    run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&ca.root_ca)
        .arg("-untrusted")
        .arg(&ca.issuer_ca)
        .arg(p("ek-cert.pem")))?;
    done.push("EK certificate chains to the provisioning CA".to_string());

    // 2. The certificate certifies the EK the TPM holds.
    run(Command::new("tpm2_readpublic")
        .args(["-T", &tcti, "-c", &format!("{EK_HANDLE:#x}"), "-o"])
        .arg(p("ek.pub")))?;
    let ek = std::fs::read(p("ek.pub")).map_err(RigError::io("reading ek.pub"))?;
    let (ek, _) = Tpm2bPublic::unmarshal(&ek).map_err(|e| fail(format!("EK public area: {e}")))?;
    let TpmuPublicId::Rsa(modulus) = &ek.inner.unique else {
        return Err(fail("the EK at 0x81010001 is not an RSA key"));
    };
    let cert_modulus = String::from_utf8_lossy(&run(Command::new("openssl")
        .args(["x509", "-noout", "-modulus", "-in"])
        .arg(p("ek-cert.pem")))?)
    .trim()
    .trim_start_matches("Modulus=")
    .to_lowercase();
    if cert_modulus != wardenctl::hex(modulus.as_ref()) {
        return Err(fail("the EK certificate does not certify the TPM's EK"));
    }
    done.push("EK certificate certifies the TPM's EK".to_string());

    // 3. The AK at its persistent handle is the exported one.
    run(Command::new("tpm2_readpublic")
        .args(["-T", &tcti, "-c", &format!("{AK_HANDLE:#x}"), "-o"])
        .arg(p("ak-tpm.pub")))?;
    if std::fs::read(p("ak-tpm.pub")).map_err(RigError::io("reading ak-tpm.pub"))? != ak_public {
        return Err(fail(format!(
            "the key at {AK_HANDLE:#x} is not the exported AK"
        )));
    }

    // 4. MakeCredential in software (a verifier needs no TPM), ActivateCredential in the TPM.
    let mut secret = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(RigError::io("opening /dev/urandom"))?,
        &mut secret,
    )
    .map_err(RigError::io("reading /dev/urandom"))?;
    std::fs::write(p("secret"), secret).map_err(RigError::io("writing the secret"))?;
    let name = wardenctl::hex(&ak_name(ak_public)?);
    run(Command::new("tpm2_makecredential")
        .args(["-T", "none", "-u"])
        .arg(p("ek.pub"))
        .arg("-s")
        .arg(p("secret"))
        .args(["-n", &name, "-o"])
        .arg(p("credential")))?;
    let session = p("session.ctx");
    run(Command::new("tpm2_startauthsession")
        .args(["-T", &tcti, "--policy-session", "-S"])
        .arg(&session))?;
    let activated = run(Command::new("tpm2_policysecret")
        .args(["-T", &tcti, "-S"])
        .arg(&session)
        .args(["-c", "e"]))
    .and_then(|_| {
        run(Command::new("tpm2_activatecredential")
            .args([
                "-T",
                &tcti,
                "-c",
                &format!("{AK_HANDLE:#x}"),
                "-C",
                &format!("{EK_HANDLE:#x}"),
                "-i",
            ])
            .arg(p("credential"))
            .arg("-o")
            .arg(p("activated"))
            .arg("-P")
            .arg(format!("session:{}", session.display())))
    });
    let _ = run(Command::new("tpm2_flushcontext")
        .args(["-T", &tcti])
        .arg(&session));
    activated?;
    if std::fs::read(p("activated")).map_err(RigError::io("reading the activated secret"))?
        != secret
    {
        return Err(fail(
            "ActivateCredential returned a different secret: the AK is not in this TPM",
        ));
    }
    done.push(format!(
        "AK {name} is resident in the TPM with that EK (MakeCredential/ActivateCredential)"
    ));
    Ok(done)
}

/// The command line as the hypervisor measures it: its words without per-boot inputs.
pub fn measured_cmdline(words: &str) -> String {
    words
        .split_whitespace()
        .filter(|w| w.split_once('=').map_or(*w, |(k, _)| k) != "attest_nonce")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The module files a boot of `scenario` uses, in the hypervisor's measurement order:
/// (component name, tag, file). The policy is compiled into `dir`.
pub fn components(
    scenario: &Scenario,
    dir: &Path,
) -> Result<Vec<(String, Tag, PathBuf)>, RigError> {
    let images = images()?;
    let mut out = Vec::new();
    if let Some(policy) = &scenario.policy {
        out.push((
            "policy".to_string(),
            Tag::Policy,
            crate::policy::compile(policy, dir)?,
        ));
    }
    let manifest = dir.join("manifest");
    std::fs::write(&manifest, scenario.manifest()?)
        .map_err(RigError::io("writing the manifest"))?;
    out.push(("manifest".to_string(), Tag::Manifest, manifest));
    for name in scenario.images() {
        out.push((
            format!("image:{name}"),
            Tag::DomainImage,
            images.image(&name)?,
        ));
    }
    Ok(out)
}

/// Reference values for `scenario` booted with the extra command-line `words`.
pub fn reference(
    scenario: &Scenario,
    words: &str,
    files: &[(String, Tag, PathBuf)],
) -> Result<Reference, RigError> {
    let mut comps = Vec::new();
    let read =
        |p: &Path| std::fs::read(p).map_err(RigError::io(format!("reading {}", p.display())));
    for (name, tag, path) in files.iter().filter(|(_, t, _)| *t == Tag::Policy) {
        comps.push(Component::new(*tag, name, &read(path)?));
    }
    let cmdline = measured_cmdline(&format!("{} {words}", scenario.hypervisor_cmdline()));
    comps.push(Component::new(
        Tag::CommandLine,
        "cmdline",
        cmdline.as_bytes(),
    ));
    for (name, tag, path) in files.iter().filter(|(_, t, _)| *t != Tag::Policy) {
        comps.push(Component::new(*tag, name, &read(path)?));
    }
    Ok(Reference::new(
        &format!("scenario {}", scenario.name),
        comps,
    ))
}

/// How to attest.
#[derive(Debug, Clone, Default)]
pub struct AttestOptions {
    /// Flip one byte of this component (`policy`, `manifest`, an image name) after the
    /// reference values were computed; `swap-names` swaps the first two images' files.
    pub tamper: Option<String>,
    /// Keep the run folder.
    pub keep_dir: bool,
    /// The platform TPM (the scenario's `platform_tpm` when absent).
    pub platform_tpm: Option<PlatformTpm>,
    /// The operator's policy for the firmware's and GRUB's PCRs (bank → PCR → hex), put into
    /// the reference. `--tamper grub-cmdline` without one records it from a clean boot first.
    pub platform_policy: Option<std::collections::BTreeMap<String, std::collections::BTreeMap<u32, String>>>,
}

/// The `--tamper` value that adds a command to the GRUB configuration (UEFI scenarios): GRUB
/// measures each command line it runs into PCR 8 (and the changed grub.cfg file into PCR 9).
pub const TAMPER_GRUB_CMDLINE: &str = "grub-cmdline";

/// Everything one attested boot produced.
#[derive(Debug)]
pub struct Attested {
    /// The boot.
    pub outcome: Outcome,
    /// The evidence from the console.
    pub export: Export,
    /// The verifier's nonce.
    pub nonce: Vec<u8>,
    /// The reference values.
    pub reference: Reference,
    /// The verifier's verdict.
    pub report: Report,
    /// What the credential check established.
    pub credential: Vec<String>,
    /// `tpm2_eventlog` on the exported log.
    pub eventlog_yaml: String,
    /// `tpm2_pcrread` of PCRs 20–22 from the same platform TPM after QEMU exited.
    pub pcrread_yaml: String,
    /// The banks the log records.
    pub banks: Banks,
    /// The folder holding the evidence files (deleted on drop unless kept).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// Provisions a TPM, computes the reference, boots `scenario` with a fresh nonce (tampering a
/// component if asked), collects and checks everything.
pub fn attest(scenario: &Scenario, opts: &AttestOptions) -> Result<Attested, RigError> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("warden-attest-{}-", scenario.name))
        .tempdir()
        .map_err(RigError::io("creating the attest folder"))?;
    let (dir, guard) = if opts.keep_dir {
        (tmp.keep(), None)
    } else {
        (tmp.path().to_path_buf(), Some(tmp))
    };
    let kind = opts.platform_tpm.unwrap_or(scenario.platform_tpm);
    let ca = provision_for(kind, &dir.join("provision"))?;
    let files = components(scenario, &dir)?;
    let mut reference = reference(scenario, "", &files)?;
    let mut platform_policy = opts.platform_policy.clone();
    if opts.tamper.as_deref() == Some(TAMPER_GRUB_CMDLINE) && platform_policy.is_none() {
        // The operator's policy: what a known-good boot of the same configuration measured.
        let clean = attest(scenario, &AttestOptions { tamper: None, keep_dir: false, ..opts.clone() })?;
        platform_policy = Some(clean.platform_policy()?);
    }
    if let Some(p) = platform_policy {
        reference.platform_pcrs = p;
    }

    let mut replace = Vec::new();
    let mut grub_commands = Vec::new();
    if opts.tamper.as_deref() == Some(TAMPER_GRUB_CMDLINE) {
        if scenario.boot != crate::scenario::BootPath::UefiGrub {
            return Err(fail("--tamper grub-cmdline needs a scenario with boot = \"uefi-grub\""));
        }
        grub_commands.push("set warden_tampered=1".to_string());
    } else if opts.tamper.as_deref() == Some("swap-names") {
        // Each of the first two image modules keeps its name and gets the other's file.
        let imgs: Vec<_> = files.iter().filter(|(_, t, _)| *t == Tag::DomainImage).take(2).collect();
        let [(a, _, pa), (b, _, pb)] = imgs[..] else {
            return Err(fail("cannot swap names: the scenario has fewer than two images"));
        };
        let short = |n: &str| n.strip_prefix("image:").unwrap_or(n).to_string();
        replace.push((short(a), pb.clone()));
        replace.push((short(b), pa.clone()));
    } else if let Some(t) = &opts.tamper {
        let want = if matches!(t.as_str(), "policy" | "manifest") || t.starts_with("image:") {
            t.clone()
        } else {
            format!("image:{t}")
        };
        let (name, _, path) = files.iter().find(|(n, _, _)| *n == want).ok_or_else(|| {
            fail(format!(
                "cannot tamper '{t}': the scenario has no such component (it has {})",
                files
                    .iter()
                    .map(|f| f.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let mut bytes =
            std::fs::read(path).map_err(RigError::io(format!("reading {}", path.display())))?;
        if bytes.is_empty() {
            return Err(fail(format!("cannot tamper '{name}': it is empty")));
        }
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        let tampered = dir.join(format!("tampered-{}", name.replace(':', "-")));
        std::fs::write(&tampered, &bytes).map_err(RigError::io("writing the tampered copy"))?;
        replace.push((
            name.strip_prefix("image:").unwrap_or(name).to_string(),
            tampered,
        ));
    }

    let mut nonce = vec![0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(RigError::io("opening /dev/urandom"))?,
        &mut nonce,
    )
    .map_err(RigError::io("reading /dev/urandom"))?;
    let mut booted = scenario.clone();
    booted.tpm = true;
    let boot_opts = BootOptions {
        extra_cmdline: vec![format!("attest_nonce={}", wardenctl::hex(&nonce))],
        replace_modules: replace,
        grub_commands,
        tpm_state: Some(ca.tpm_state.clone()),
        platform_tpm: Some(kind),
        keep_tpm: true,
        ..BootOptions::default()
    };
    let mut outcome = boot(&booted, &boot_opts)?;
    let export = Export::from_log(&outcome.log)
        .map_err(|e| fail(format!("{e}\n--- serial log ---\n{}", outcome.log)))?;
    let swtpm = outcome
        .swtpm
        .take()
        .ok_or_else(|| fail("swtpm was not kept running"))?;
    let tpm = reopen(swtpm)?;

    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes)
            .map_err(RigError::io(format!("writing {}", p.display())))
            .map(|()| p)
    };
    let log_path = write("eventlog.bin", &export.eventlog)?;
    write("quote.bin", &export.quote)?;
    write("ak.pub", &export.ak)?;
    let work = dir.join("credential");
    std::fs::create_dir_all(&work).map_err(RigError::io("creating the credential folder"))?;
    let credential = activate_credential(&tpm, &ca, &export.ak, &work)?;

    // tpm2_eventlog must parse the log without complaint: exit 0 and nothing on stderr.
    let el = Command::new("tpm2_eventlog")
        .arg(&log_path)
        .output()
        .map_err(|source| RigError::Spawn {
            program: "tpm2_eventlog".into(),
            source,
        })?;
    if !el.status.success() || !el.stderr.is_empty() {
        return Err(fail(format!(
            "tpm2_eventlog rejected the exported log ({}): {}",
            el.status,
            String::from_utf8_lossy(&el.stderr)
        )));
    }
    let eventlog_yaml = String::from_utf8_lossy(&el.stdout).into_owned();
    let banks = warden_tpm::eventlog::EventLog::parse(&export.eventlog)
        .map_err(|e| fail(format!("exported event log: {e}")))?
        .banks();
    let selection: Vec<String> = banks
        .iter()
        .map(|a| format!("{}:20,21,22", a.name()))
        .collect();
    let pcrread_yaml = String::from_utf8_lossy(&run(Command::new("tpm2_pcrread").args([
        "-T",
        &tpm.tcti(),
        &selection.join("+"),
    ]))?)
    .into_owned();
    drop(tpm);

    let report = verify(
        &Evidence {
            quote: &export.quote,
            ak_public: &export.ak,
            event_log: &export.eventlog,
            nonce: &nonce,
        },
        &reference,
    )
    .map_err(|e| fail(format!("evidence does not parse: {e}")))?;
    Ok(Attested {
        outcome,
        export,
        nonce,
        reference,
        report,
        credential,
        eventlog_yaml,
        pcrread_yaml,
        banks,
        dir,
        _tmp: guard,
    })
}

impl Attested {
    /// The firmware's and boot loader's PCRs (every PCR outside 20-22 the exported log extends)
    /// as the log replays them, in every logged bank: a platform policy recorded from this boot.
    pub fn platform_policy(
        &self,
    ) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<u32, String>>, RigError> {
        let log = warden_tpm::eventlog::EventLog::parse(&self.export.eventlog)
            .map_err(|e| fail(format!("exported event log: {e}")))?;
        let replay = log.replay();
        let mut pcrs: Vec<u32> = log
            .events()
            .flatten()
            .map(|e| e.pcr)
            .filter(|p| !warden_tpm::eventlog::WARDEN_PCRS.contains(p))
            .collect();
        pcrs.sort_unstable();
        pcrs.dedup();
        let mut out = std::collections::BTreeMap::new();
        for alg in log.banks().iter() {
            let bank: std::collections::BTreeMap<u32, String> = pcrs
                .iter()
                .filter_map(|&p| replay.pcr(alg, p).map(|d| (p, wardenctl::hex(d.as_bytes()))))
                .collect();
            out.insert(alg.name().to_string(), bank);
        }
        Ok(out)
    }

    /// For every logged bank and PCR 20–22: (bank, PCR, tpm2_eventlog's replay, tpm2_pcrread).
    pub fn pcr_comparison(&self) -> Vec<(HashAlg, u32, Option<String>, Option<String>)> {
        let replayed = self.eventlog_yaml.split("pcrs:").nth(1).unwrap_or("");
        let mut out = Vec::new();
        for alg in self.banks.iter() {
            for pcr in warden_tpm::eventlog::WARDEN_PCRS {
                out.push((
                    alg,
                    pcr,
                    yaml_pcr(replayed, alg, pcr),
                    yaml_pcr(&self.pcrread_yaml, alg, pcr),
                ));
            }
        }
        out
    }
}

impl Attested {
    /// Verifies other evidence against this run's reference values (for rejection tests).
    pub fn verify_with(
        &self,
        quote: &[u8],
        ak_public: &[u8],
        event_log: &[u8],
        nonce: &[u8],
    ) -> Result<Report, RigError> {
        verify(
            &Evidence {
                quote,
                ak_public,
                event_log,
                nonce,
            },
            &self.reference,
        )
        .map_err(|e| fail(format!("evidence does not parse: {e}")))
    }
}

/// `log` without the event naming `component` (a verifier must notice).
pub fn without_event(log: &[u8], component: &str) -> Result<Vec<u8>, RigError> {
    let parsed =
        warden_tpm::eventlog::EventLog::parse(log).map_err(|e| fail(format!("event log: {e}")))?;
    let mut buf = vec![0u8; log.len()];
    let mut w = warden_tpm::eventlog::EventLogWriter::new(&mut buf, parsed.banks())
        .map_err(|e| fail(e.to_string()))?;
    for e in parsed.events() {
        let e = e.map_err(|e| fail(e.to_string()))?;
        if e.warden_tag().is_some_and(|(_, n)| n == component) {
            continue;
        }
        w.append(e.pcr, e.event_type, &e.digests, e.data)
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(w.as_bytes().to_vec())
}
