//! The attestation verifier: quote signature and nonce, quoted PCR digest against the replayed
//! event log, and every logged component against the reference manifest.
//!
//! Inputs are untrusted. TPM structures are parsed with `tpm2-protocol`, the event log with
//! `warden-tpm`'s validating parser. Malformed inputs are [`InputError`]s; well-formed inputs
//! that do not match are failed checks in the [`Report`], each with a specific message.

use crate::reference::Reference;
use crate::{hex, unhex};
use serde::Serialize;
use tpm2_protocol::TpmUnmarshal;
use tpm2_protocol::data::{
    Tpm2bAttest, Tpm2bPublic, TpmSt, TpmtSignature, TpmuAttest, TpmuSignature,
};
use warden_checkpoint::tpm;
use warden_tpm::eventlog::{EV_SEPARATOR, EventLog, WARDEN_PCRS};
use warden_tpm::{Digest, HashAlg};

/// Inputs that cannot be parsed at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The AK public area is not a `TPM2B_PUBLIC`.
    #[error("attestation key: not a TPM2B_PUBLIC: {0}")]
    AkPublic(tpm2_protocol::TpmError),
    /// The AK is not a restricted ECC P-256 signing key.
    #[error("attestation key: {0}")]
    AkKind(&'static str),
    /// The quote is not `TPM2B_ATTEST || TPMT_SIGNATURE`.
    #[error("quote: not a TPM2B_ATTEST followed by a TPMT_SIGNATURE: {0}")]
    Quote(tpm2_protocol::TpmError),
    /// Trailing bytes after the quote's signature.
    #[error("quote: {0} unexpected bytes after the signature")]
    QuoteTrailing(usize),
    /// The attestation is not a quote.
    #[error("quote: the attestation is not a TPM2_Quote (type {0:#06x})")]
    NotAQuote(u16),
    /// The signature is not ECDSA.
    #[error("quote: the signature is not ECDSA (algorithm {0:#06x})")]
    NotEcdsa(u16),
    /// The event log does not parse.
    #[error("event log: {0}")]
    EventLog(warden_tpm::eventlog::LogError),
    /// The reference manifest is not valid.
    #[error("reference: {0}")]
    Reference(String),
}

/// One verification step's outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub check: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (the specific message on failure).
    pub detail: String,
}

/// One row of the comparison table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    /// Component name (or `PCR n`).
    pub component: String,
    /// The PCR.
    pub pcr: u32,
    /// Bank of the digests shown.
    pub bank: String,
    /// Expected digest (hex) or `(none)`.
    pub expected: String,
    /// Actual digest (hex) or `(absent)`.
    pub actual: String,
    /// Whether they match (in every logged bank).
    pub ok: bool,
}

/// The verifier's verdict.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// True only if every check passed and every row matches.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Components and PCRs: expected against actual.
    pub rows: Vec<Row>,
}

impl Report {
    /// The failure messages (empty when `ok`).
    #[must_use]
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.check, c.detail))
            .collect();
        out.extend(self.rows.iter().filter(|r| !r.ok).map(|r| {
            // PCR rows already name their PCR.
            if r.component.starts_with("PCR ") {
                format!("MISMATCH {}", r.component)
            } else {
                format!("MISMATCH {} (PCR {})", r.component, r.pcr)
            }
        }));
        out
    }

    /// The human-readable table and check list.
    #[must_use]
    pub fn table(&self) -> String {
        let short = |s: &str| {
            if s.len() > 16 {
                format!("{}…", &s[..16])
            } else {
                s.to_string()
            }
        };
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<4} {:<16} {}\n",
                if c.ok { "ok" } else { "FAIL" },
                c.check,
                c.detail
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "{:<20} {:>3}  {:<7} {:<17}  {:<17}  {}\n",
            "COMPONENT", "PCR", "BANK", "EXPECTED", "ACTUAL", "RESULT"
        ));
        for r in &self.rows {
            out.push_str(&format!(
                "{:<20} {:>3}  {:<7} {:<17}  {:<17}  {}\n",
                r.component,
                r.pcr,
                r.bank,
                short(&r.expected),
                short(&r.actual),
                if r.ok { "OK" } else { "MISMATCH" }
            ));
        }
        out.push_str(if self.ok {
            "\nverdict: OK: the platform booted the reference hypervisor configuration\n"
        } else {
            "\nverdict: FAILED\n"
        });
        out
    }
}

/// Everything the verifier needs.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// `TPM2B_ATTEST || TPMT_SIGNATURE` as exported by the hypervisor.
    pub quote: &'a [u8],
    /// The AK's `TPM2B_PUBLIC`.
    pub ak_public: &'a [u8],
    /// The TCG event log.
    pub event_log: &'a [u8],
    /// The nonce the verifier chose.
    pub nonce: &'a [u8],
}

/// A parsed AK: the verifying key and its name algorithm.
struct Ak {
    key: p256::ecdsa::VerifyingKey,
}

fn parse_ak(bytes: &[u8]) -> Result<Ak, InputError> {
    // The parse error with its detail first; then the checks the checkpoint verifier shares.
    Tpm2bPublic::unmarshal(bytes).map_err(InputError::AkPublic)?;
    let ak = tpm::parse_ecc(bytes).map_err(InputError::AkKind)?;
    tpm::check_ak(&ak).map_err(InputError::AkKind)?;
    Ok(Ak { key: ak.key })
}

/// Checks `evidence` against `reference`.
///
/// # Errors
///
/// [`InputError`] when an input cannot be parsed; mismatches are reported in the [`Report`].
pub fn verify(evidence: &Evidence<'_>, reference: &Reference) -> Result<Report, InputError> {
    if reference.format != crate::reference::FORMAT {
        return Err(InputError::Reference(format!(
            "format is {:?}, expected {:?}",
            reference.format,
            crate::reference::FORMAT
        )));
    }
    let ak = parse_ak(evidence.ak_public)?;
    let (attest2b, rest) = Tpm2bAttest::unmarshal(evidence.quote).map_err(InputError::Quote)?;
    // The signature covers the TPMS_ATTEST bytes exactly as the TPM produced them.
    let attest_raw = &evidence.quote[2..evidence.quote.len() - rest.len()];
    let (sig, rest) = TpmtSignature::unmarshal(rest).map_err(InputError::Quote)?;
    if !rest.is_empty() {
        return Err(InputError::QuoteTrailing(rest.len()));
    }
    let attest = attest2b.inner;
    let TpmuAttest::Quote(info) = &attest.attested else {
        return Err(InputError::NotAQuote(attest.attest_type.value()));
    };
    if attest.attest_type != TpmSt::AttestQuote {
        return Err(InputError::NotAQuote(attest.attest_type.value()));
    }
    let TpmuSignature::Ecdsa(ecdsa) = &sig.signature else {
        return Err(InputError::NotEcdsa(sig.sig_alg.value()));
    };
    let log = EventLog::parse(evidence.event_log).map_err(InputError::EventLog)?;

    let mut checks = Vec::new();

    // 1. Signature with the AK.
    let sig_ok = tpm::ecdsa_verifies(&ak.key, attest_raw, &sig);
    checks.push(Check {
        check: "signature",
        ok: sig_ok,
        detail: if sig_ok {
            "ECDSA P-256/SHA-256 signature by the attestation key verifies".into()
        } else {
            "the quote's signature does not verify with the given attestation key: it was signed by a different key, or altered".into()
        },
    });

    // 2. Nonce (freshness).
    let quoted_nonce: &[u8] = attest.extra_data.as_ref();
    let nonce_ok = quoted_nonce == evidence.nonce;
    checks.push(Check {
        check: "nonce",
        ok: nonce_ok,
        detail: if nonce_ok {
            format!("quote is bound to nonce {}", hex(evidence.nonce))
        } else {
            format!(
                "stale nonce: the quote was made for nonce {}, not {} (a replayed or old quote)",
                hex(quoted_nonce),
                hex(evidence.nonce)
            )
        },
    });

    // 3. Quoted PCR digest against the replayed log.
    let replay = log.replay();
    let digest_alg = HashAlg::from_id(ecdsa.hash.value()).unwrap_or(HashAlg::Sha256);
    let mut concat = Vec::new();
    let mut quoted = Vec::new();
    let mut missing_bank = None;
    for sel in info.pcr_select.iter() {
        let Some(alg) = HashAlg::from_id(sel.hash.value()) else {
            missing_bank = Some(format!("unsupported bank {:#06x}", sel.hash.value()));
            continue;
        };
        for pcr in 0..(sel.pcr_select.len() * 8) as u32 {
            if sel.pcr_select[pcr as usize / 8] & (1 << (pcr % 8)) == 0 {
                continue;
            }
            quoted.push((alg, pcr));
            match replay.pcr(alg, pcr) {
                Some(v) => concat.extend_from_slice(v.as_bytes()),
                None => missing_bank = Some(format!("the log has no {} bank", alg.name())),
            }
        }
    }
    let replayed_digest = digest_alg.hash(&concat);
    let pcr_ok = missing_bank.is_none() && replayed_digest.as_bytes() == info.pcr_digest.as_ref();
    checks.push(Check {
        check: "pcr digest",
        ok: pcr_ok,
        detail: match (&missing_bank, pcr_ok) {
            (Some(m), _) => format!("cannot replay the quoted PCRs: {m}"),
            (None, true) => format!("quoted PCR digest equals the event log replay ({} PCRs)", quoted.len()),
            (None, false) => "the quoted PCR digest does not match the event log replay: the log was altered (an event removed, added or changed) or PCRs were extended outside it".into(),
        },
    });

    // 4. The quote covers Warden's PCRs.
    let covered = WARDEN_PCRS
        .iter()
        .all(|p| quoted.iter().any(|(_, q)| q == p));
    checks.push(Check {
        check: "coverage",
        ok: covered,
        detail: if covered {
            "the quote covers PCRs 20-22".into()
        } else {
            "the quote does not cover all of Warden's PCRs 20-22".into()
        },
    });

    // 5. Components: each reference component logged once with matching digests, nothing else.
    let events: Vec<_> = log.events().flatten().collect();
    let banks = log.banks();
    let show = if banks.contains(HashAlg::Sha256) {
        HashAlg::Sha256
    } else {
        banks.iter().next().unwrap_or(HashAlg::Sha256)
    };
    let mut rows = Vec::new();
    let mut removed = Vec::new();
    for c in &reference.components {
        let found: Vec<_> = events
            .iter()
            .filter(|e| e.warden_tag().is_some_and(|(_, n)| n == c.name))
            .collect();
        let expected = c
            .digest(show)
            .map_or_else(|| "(none)".into(), |d| hex(d.as_bytes()));
        let row = match found.as_slice() {
            [] => {
                removed.push(format!("{} (PCR {})", c.name, c.pcr));
                Row {
                    component: c.name.clone(),
                    pcr: c.pcr,
                    bank: show.name().into(),
                    expected,
                    actual: "(absent)".into(),
                    ok: false,
                }
            }
            [e] => {
                let ok = e.pcr == c.pcr
                    && banks
                        .iter()
                        .all(|a| c.digest(a).is_some() && e.digests.get(a) == c.digest(a).as_ref());
                let actual = e
                    .digests
                    .get(show)
                    .map_or_else(|| "(none)".into(), |d| hex(d.as_bytes()));
                Row {
                    component: c.name.clone(),
                    pcr: e.pcr,
                    bank: show.name().into(),
                    expected,
                    actual,
                    ok,
                }
            }
            many => Row {
                component: c.name.clone(),
                pcr: c.pcr,
                bank: show.name().into(),
                expected,
                actual: format!("(logged {} times)", many.len()),
                ok: false,
            },
        };
        rows.push(row);
    }
    for e in &events {
        let unknown = match e.warden_tag() {
            Some((_, n)) => !reference.components.iter().any(|c| c.name == n),
            // The firmware's and boot loader's own events (PCRs 0-9 of a log continued from
            // the firmware) are checked as PCR values below, not as components.
            None => e.event_type != EV_SEPARATOR && WARDEN_PCRS.contains(&e.pcr),
        };
        if unknown {
            let name = e.warden_tag().map_or_else(
                || format!("event type {:#x}", e.event_type),
                |(_, n)| n.to_string(),
            );
            let actual = e
                .digests
                .get(show)
                .map_or_else(String::new, |d| hex(d.as_bytes()));
            rows.push(Row {
                component: format!("{name} (unexpected)"),
                pcr: e.pcr,
                bank: show.name().into(),
                expected: "(none)".into(),
                actual,
                ok: false,
            });
        }
    }
    checks.push(Check {
        check: "event log",
        ok: removed.is_empty(),
        detail: if removed.is_empty() {
            format!(
                "{} events in banks {}",
                events.len(),
                banks
                    .iter()
                    .map(HashAlg::name)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        } else {
            format!(
                "event removed from the log: no event for {}",
                removed.join(", ")
            )
        },
    });

    // 6. Final PCR values (replayed = quoted, when check 3 passed) against the reference.
    for pcr in WARDEN_PCRS {
        let expected = reference.pcr(show, pcr);
        let actual: Option<Digest> = replay.pcr(show, pcr);
        let ok = banks.iter().all(|a| {
            reference.pcr(a, pcr).is_some() && reference.pcr(a, pcr) == replay.pcr(a, pcr)
        });
        rows.push(Row {
            component: format!("PCR {pcr}"),
            pcr,
            bank: show.name().into(),
            expected: expected.map_or_else(|| "(none)".into(), |d| hex(d.as_bytes())),
            actual: actual.map_or_else(|| "(none)".into(), |d| hex(d.as_bytes())),
            ok,
        });
    }

    // 7. The firmware's and boot loader's PCRs, when the log starts at the firmware: checked
    //    against the operator's policy where it names them, reported otherwise. Only PCRs the
    //    quote covers count (else the replay is not authenticated).
    let mut platform: Vec<u32> = events.iter().map(|e| e.pcr).filter(|p| !WARDEN_PCRS.contains(p)).collect();
    platform.sort_unstable();
    platform.dedup();
    for pcr in platform {
        let is_quoted = quoted.iter().any(|(_, q)| *q == pcr);
        let policy = reference.platform_pcr(show, pcr);
        let ok = is_quoted
            && banks.iter().all(|a| reference.platform_pcr(a, pcr).is_none_or(|want| replay.pcr(a, pcr) == Some(want)));
        let expected = match (&policy, is_quoted) {
            (_, false) => "(not quoted)".into(),
            (Some(d), true) => hex(d.as_bytes()),
            (None, true) => "(reported)".into(),
        };
        rows.push(Row {
            component: format!("PCR {pcr} ({})", platform_pcr_name(pcr)),
            pcr,
            bank: show.name().into(),
            expected,
            actual: replay.pcr(show, pcr).map_or_else(|| "(none)".into(), |d| hex(d.as_bytes())),
            ok,
        });
    }

    let ok = checks.iter().all(|c| c.ok) && rows.iter().all(|r| r.ok);
    Ok(Report { ok, checks, rows })
}

/// What measures into a firmware or boot-loader PCR (TCG PC Client Platform Firmware Profile;
/// GRUB's `tpm` module for 8 and 9).
fn platform_pcr_name(pcr: u32) -> &'static str {
    match pcr {
        0 => "firmware",
        1 => "firmware config",
        2 => "option ROMs",
        3 => "option ROM config",
        4 => "boot loader",
        5 => "GPT, ExitBootServices",
        6 => "manufacturer",
        7 => "Secure Boot",
        8 => "GRUB commands",
        9 => "GRUB files",
        _ => "other",
    }
}

/// Parses a nonce given in hex on the command line.
///
/// # Errors
///
/// A message when it is not hex or longer than 64 bytes.
pub fn parse_nonce(s: &str) -> Result<Vec<u8>, String> {
    let n = unhex(s)?;
    if n.len() > 64 {
        return Err(format!("nonce of {} bytes is longer than 64", n.len()));
    }
    Ok(n)
}
