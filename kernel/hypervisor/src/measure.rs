//! Measured launch: before any domain runs, the hypervisor measures its command line and every
//! boot module (policy, boot manifest, domain images) into PCRs 20–22 of every active bank at
//! TPM locality 2, closes each PCR with a separator, keeps a TCG crypto-agile event log, and —
//! given `attest_nonce=<hex>` — quotes those PCRs with its attestation key and exports the
//! quote, the AK public area and the event log over the console (see docs/measured-launch.md).

use crate::platform_tpm::{PlatformDriver, TPM};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use warden_core::cmdline::CmdLine;
use warden_core::mem::PhysMem;
use warden_core::multiboot::{BootInfo, Module};
use warden_core::crb::CrbError;
use warden_core::tpm_interface::DriverError;
use warden_hw::debug_exit::{ExitCode, exit};
use warden_tpm::eventlog::{EventLogWriter, LogError, Tag, WARDEN_PCRS, component_parts};
use warden_tpm::{Banks, DigestSet, MultiHasher, PcrSelection, Tpm, Transport};

/// The locality measured launch uses: PCRs 20–22 can be reset and extended from it, never from
/// locality 0, which is the most a domain is ever given.
const MEASURE_LOCALITY: u8 = 2;
/// Where the attestation key is kept (TCG endorsement-range persistent handle).
pub(crate) const AK_HANDLE: u32 = 0x8101_0100;
/// The measured-launch event log, once written.
pub(crate) static EVENT_LOG: spin::Mutex<Option<Vec<u8>>> = spin::Mutex::new(None);
/// Room for the event log (a few hundred bytes per event).
const LOG_CAPACITY: usize = 64 * 1024;
/// Command-line words that are per-boot inputs, not configuration, and so are not measured.
const UNMEASURED_WORDS: &[&str] = &["attest_nonce"];

/// Why measured launch failed.
#[derive(Debug)]
enum MeasureError {
    Locality(DriverError),
    Tpm(warden_tpm::Error<DriverError>),
    Log(LogError),
    BadNonce,
}

impl fmt::Display for MeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locality(e) => write!(f, "cannot take TPM locality {MEASURE_LOCALITY}: {e}"),
            Self::Tpm(e) => write!(f, "{e}"),
            Self::Log(e) => write!(f, "{e}"),
            Self::BadNonce => f.write_str("attest_nonce is not hex of at most 64 bytes"),
        }
    }
}

impl From<warden_tpm::Error<DriverError>> for MeasureError {
    fn from(e: warden_tpm::Error<DriverError>) -> Self {
        Self::Tpm(e)
    }
}

impl From<LogError> for MeasureError {
    fn from(e: LogError) -> Self {
        Self::Log(e)
    }
}

/// The platform TPM driver (TIS or CRB) as a `warden-tpm` transport.
pub(crate) struct DriverTransport<'a>(pub(crate) &'a mut PlatformDriver);

impl Transport for DriverTransport<'_> {
    type Error = DriverError;
    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, DriverError> {
        self.0.execute(cmd, rsp)
    }
}

/// The command line as measured: the words after the kernel path, minus per-boot inputs,
/// joined by single spaces (the reference computation in `cargo xtask attest` does the same).
pub(crate) fn measured_cmdline(cmdline: &CmdLine<'_>) -> String {
    let mut out = String::new();
    for w in cmdline.words() {
        let key = w.split_once('=').map_or(w, |(k, _)| k);
        if UNMEASURED_WORDS.contains(&key) {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// What a module is measured as.
fn classify(m: &Module, index: usize) -> (Tag, String) {
    match m.arg("kind") {
        Some("policy") => (Tag::Policy, "policy".into()),
        Some("manifest") => (Tag::Manifest, "manifest".into()),
        Some("image") => (
            Tag::DomainImage,
            alloc::format!("image:{}", m.arg("name").unwrap_or("?")),
        ),
        // A module of unknown kind is still measured: nothing reaches memory unmeasured.
        _ => (Tag::DomainImage, alloc::format!("module:{index}")),
    }
}

/// Hashes a module's name and bytes (`eventlog::component_parts`) in every bank, reading
/// physical memory piecewise.
fn hash_module(mem: &impl PhysMem, m: &Module, name: &str, banks: Banks) -> DigestSet {
    let mut h = MultiHasher::new(banks);
    for part in &component_parts(name, &[])[..2] {
        h.update(part);
    }
    let mut chunk = [0u8; 4096];
    let mut at = m.start;
    while at < m.end {
        let n = core::cmp::min(m.end - at, chunk.len() as u64) as usize;
        mem.read(at, &mut chunk[..n]);
        h.update(&chunk[..n]);
        at += n as u64;
    }
    h.finish()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn parse_nonce(s: &str) -> Result<Vec<u8>, MeasureError> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return Err(MeasureError::BadNonce);
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).ok_or(MeasureError::BadNonce)?, 16)
                .map_err(|_| MeasureError::BadNonce)
        })
        .collect()
}

/// Measures the boot (and attests, if asked). Without a TPM the boot is unmeasured and says
/// so (a missing TPM is already fatal under `require_tpm`); a TPM that fails is fatal, because
/// domains must not run on a launch that claims to be measured but is not.
pub(crate) fn measured_launch(boot: &BootInfo, cmdline: &CmdLine<'_>) {
    let mut guard = TPM.lock();
    let Some(tis) = guard.as_mut() else {
        println!("measure: no platform TPM: this boot is not measured");
        return;
    };
    if let Err(e) = ensure_started(tis) {
        println!("measure: FATAL: {e}");
        exit(ExitCode::Failure);
    }
    let switched = tis.switch_locality(MEASURE_LOCALITY);
    if let Err(e @ DriverError::Crb(CrbError::LocalityUnsupported(_))) = switched {
        // QEMU's tpm-crb (and many firmware TPMs) implement locality 0 only, and a TPM lets
        // PCRs 20-22 be extended from locality 2 only (PCR 20 from 1-3): nothing can be measured
        // there, and measuring elsewhere would claim what a verifier of PCRs 20-22 cannot check.
        // Like a missing TPM, this boot is unmeasured and says so; `require_tpm` makes it fatal.
        println!("measure: {e}: PCRs 20-22 need locality 2: this boot is not measured");
        if cmdline.flag("require_tpm") {
            println!("measure: FATAL: require_tpm is set and the platform TPM cannot measure the launch");
            exit(ExitCode::Failure);
        }
        return;
    }
    let result = switched.map_err(MeasureError::Locality).and_then(|()| run(tis, boot, cmdline));
    // Locality 2 is used for measurement only. The TPM is released, not held at locality 0,
    // so the vTPM manager's locality 1 can be granted; the next use takes its locality again.
    tis.park(0);
    if let Err(e) = result {
        println!("measure: FATAL: {e}");
        exit(ExitCode::Failure);
    }
}

/// Sends TPM2_Startup at locality 0 if the firmware did not (SeaBIOS and UEFI do).
fn ensure_started(tis: &mut PlatformDriver) -> Result<(), MeasureError> {
    let mut tpm = alloc::boxed::Box::new(Tpm::new(DriverTransport(tis)));
    if tpm.startup_clear()? {
        println!("measure: the firmware had not started the TPM: sent TPM2_Startup(CLEAR)");
    }
    Ok(())
}

fn run(
    tis: &mut PlatformDriver,
    boot: &BootInfo,
    cmdline: &CmdLine<'_>,
) -> Result<(), MeasureError> {
    // On the heap: the client holds two 4 KiB buffers.
    let mut tpm = alloc::boxed::Box::new(Tpm::new(DriverTransport(tis)));
    let banks = tpm.active_banks()?;
    let mut names = String::new();
    for a in banks.iter() {
        names.push_str(a.name());
        names.push(' ');
    }
    println!("measure: active PCR banks: {}", names.trim_end());
    for pcr in WARDEN_PCRS {
        tpm.pcr_reset(pcr)?;
    }
    let mut log_buf = vec![0u8; LOG_CAPACITY];
    // One log from the firmware's first measurement to Warden's last: continue the firmware's
    // (same Spec ID header) when there is one for the same banks; otherwise start afresh.
    let firmware = match crate::firmware::event_log() {
        Some(Ok(fw)) if fw.banks != banks => {
            println!("measure: the firmware's event log records other banks than the TPM's active ones: starting a fresh log; the chain from the firmware is broken");
            None
        }
        Some(Ok(fw)) if fw.bytes.len() > LOG_CAPACITY / 2 => {
            println!("measure: the firmware's event log ({} bytes) leaves no room: starting a fresh log; the chain from the firmware is broken", fw.bytes.len());
            None
        }
        Some(Ok(fw)) => Some(fw),
        Some(Err(why)) => {
            println!("measure: the firmware's event log is unusable ({why}): starting a fresh log; the chain from the firmware is broken");
            None
        }
        None => None,
    };
    // A continued firmware log is quoted too (PCRs 0-9: firmware and boot loader), so the
    // verifier's replay of that part is authenticated like Warden's own.
    let quoted_pcrs: u32 = if firmware.is_some() { 0x3ff | 0b111 << 20 } else { 0b111 << 20 };
    let mut log = match firmware {
        Some(fw) => {
            log_buf[..fw.bytes.len()].copy_from_slice(&fw.bytes);
            println!("measure: continuing the firmware's event log ({} bytes)", fw.bytes.len());
            EventLogWriter::resume(&mut log_buf, fw.bytes.len(), banks)?
        }
        None => EventLogWriter::new(&mut log_buf, banks)?,
    };
    let mut measure = |tpm: &mut Tpm<DriverTransport<'_>>,
                       tag: Tag,
                       name: &str,
                       d: DigestSet|
     -> Result<(), MeasureError> {
        tpm.pcr_extend(tag.pcr(), &d)?;
        log.append_tagged(tag.pcr(), tag, &d, name)?;
        let shown = d
            .get(warden_tpm::HashAlg::Sha256)
            .or_else(|| d.iter().next())
            .map(|x| hex(x.as_bytes()));
        println!(
            "measure: PCR {} {name} {}",
            tag.pcr(),
            shown.unwrap_or_default()
        );
        Ok(())
    };

    // Order (the reference computation follows it): policy, command line, manifest, images.
    let mem = warden_hw::phys::IdentityMem::new();
    let modules: Vec<(usize, &Module, Tag, String)> = boot
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (tag, name) = classify(m, i);
            (i, m, tag, name)
        })
        .collect();
    for (_, m, tag, name) in modules.iter().filter(|(_, _, t, _)| *t == Tag::Policy) {
        measure(&mut tpm, *tag, name, hash_module(&mem, m, name, banks))?;
    }
    let line = measured_cmdline(cmdline);
    measure(
        &mut tpm,
        Tag::CommandLine,
        "cmdline",
        DigestSet::of_parts(banks, &component_parts("cmdline", line.as_bytes())),
    )?;
    for (_, m, tag, name) in modules.iter().filter(|(_, _, t, _)| *t != Tag::Policy) {
        measure(&mut tpm, *tag, name, hash_module(&mem, m, name, banks))?;
    }
    for pcr in WARDEN_PCRS {
        let d = log.append_separator(pcr)?;
        tpm.pcr_extend(pcr, &d)?;
    }
    println!(
        "measure: {} modules and the command line measured into PCRs 20-22; separators extended",
        boot.modules.len()
    );
    // Kept for whoever exports it later (the management domain); the console gets it below.
    *EVENT_LOG.lock() = Some(log.as_bytes().to_vec());

    let ak = tpm.create_ak()?;
    let ak = match tpm.persist_ak(&ak, AK_HANDLE) {
        Ok(p) => p,
        Err(e) => {
            // E.g. an owner password on real hardware: the transient key still quotes.
            println!(
                "attest: cannot persist the AK at {AK_HANDLE:#x} ({e}); using the transient key"
            );
            ak
        }
    };
    println!(
        "attest: AK ECC P-256 at {:#x}, name {}",
        ak.handle,
        hex(ak.name.as_bytes())
    );
    // The evidence is exported only for a verifier's challenge: a quote without a fresh nonce
    // proves nothing, and the hex would only clutter every other boot's log.
    let Some(n) = cmdline.value("attest_nonce") else {
        println!("attest: no attest_nonce on the command line: no quote");
        return Ok(());
    };
    // A malformed challenge is the verifier's mistake: no quote, but the boot goes on.
    let Ok(nonce) = parse_nonce(n) else {
        println!("attest: {}: no quote", MeasureError::BadNonce);
        return Ok(());
    };
    let q = tpm.quote(
        ak.handle,
        &nonce,
        PcrSelection {
            banks,
            pcrs: quoted_pcrs,
        },
    )?;
    let attest = q.attest.as_bytes();
    // TPM2B_ATTEST || TPMT_SIGNATURE: the quote response's parameters.
    let len = u16::try_from(attest.len())
        .unwrap_or(u16::MAX)
        .to_be_bytes();
    println!("attest: begin");
    println!("attest: ak {}", hex(ak.public.as_bytes()));
    println!(
        "attest: quote {}{}{}",
        hex(&len),
        hex(attest),
        hex(q.signature.as_bytes())
    );
    println!("attest: eventlog {}", hex(log.as_bytes()));
    println!("attest: end");
    Ok(())
}

/// Why a run-time measurement failed: the domain it describes must not run.
#[derive(Debug)]
pub(crate) struct RuntimeMeasureError(MeasureError);

impl fmt::Display for RuntimeMeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The SHA-256 of `bytes` in hex (how a created domain's image is named in its event).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let d = DigestSet::of(Banks::from_algs(&[warden_tpm::HashAlg::Sha256]), bytes);
    d.get(warden_tpm::HashAlg::Sha256)
        .map(|x| hex(x.as_bytes()))
        .unwrap_or_default()
}

/// [`sha256_hex`] of bytes fed in pieces (a restored domain's memory, page by page).
pub(crate) fn sha256_hex_with(feed: impl FnOnce(&mut warden_tpm::MultiHasher)) -> String {
    let mut h = warden_tpm::MultiHasher::new(Banks::from_algs(&[warden_tpm::HashAlg::Sha256]));
    feed(&mut h);
    h.finish()
        .get(warden_tpm::HashAlg::Sha256)
        .map(|x| hex(x.as_bytes()))
        .unwrap_or_default()
}

/// Measures a run-time event (a created domain, a label transition): the digest of `text` is
/// extended into PCR 22 at locality 2 and `text` is appended to the boot's event log as a
/// `CreatedDomain` tagged event, after the launch separators, so a verifier replays it like
/// any other. Without a platform TPM the boot was not measured either, and this says so.
pub(crate) fn measure_runtime(text: &str) -> Result<(), RuntimeMeasureError> {
    let mut guard = TPM.lock();
    let Some(tis) = guard.as_mut() else {
        println!("measure: no platform TPM: {text} not measured");
        return Ok(());
    };
    let switched = tis.switch_locality(MEASURE_LOCALITY);
    if let Err(DriverError::Crb(CrbError::LocalityUnsupported(_))) = switched {
        // The launch was not measured either (`measured_launch`), and said so.
        println!("measure: the platform TPM has no locality 2: {text} not measured");
        return Ok(());
    }
    let result = switched.map_err(MeasureError::Locality).and_then(|()| extend_runtime(tis, text));
    tis.park(0);
    result.map_err(RuntimeMeasureError)
}

fn extend_runtime(tis: &mut PlatformDriver, text: &str) -> Result<(), MeasureError> {
    let mut tpm = alloc::boxed::Box::new(Tpm::new(DriverTransport(tis)));
    let banks = tpm.active_banks()?;
    let d = DigestSet::of(banks, text.as_bytes());
    let tag = Tag::CreatedDomain;
    // Log first (it can only fail for lack of room), then extend: the log never lacks an
    // extend the PCR has.
    let mut log = EVENT_LOG.lock();
    if let Some(bytes) = log.as_mut() {
        let len = bytes.len();
        let mut buf = vec![0u8; LOG_CAPACITY.max(len)];
        buf[..len].copy_from_slice(bytes);
        let mut w = EventLogWriter::resume(&mut buf, len, banks)?;
        w.append_tagged(tag.pcr(), tag, &d, text)?;
        *bytes = w.as_bytes().to_vec();
    }
    tpm.pcr_extend(tag.pcr(), &d)?;
    let shown = d
        .get(warden_tpm::HashAlg::Sha256)
        .or_else(|| d.iter().next())
        .map(|x| hex(x.as_bytes()));
    println!("measure: PCR {} {text} {}", tag.pcr(), shown.unwrap_or_default());
    Ok(())
}
