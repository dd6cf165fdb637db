//! `wardenctl checkpoint verify|info`: offline checks of a checkpoint image (signature, the
//! signing key's certification and PCR policy, Merkle root, structure, chain) through
//! `warden-checkpoint`'s verifier — the code the restore path runs — and its manifest shown.

use crate::hex;
use crate::reference::Reference;
use serde::Serialize;
use warden_checkpoint::{Image, Manifest, PcrPolicy, Trust, Verified, verify, verify_chain};
use warden_tpm::HashAlg;
use warden_tpm::eventlog::WARDEN_PCRS;

/// The PolicyPCR reference: the SHA-256 values of PCRs 20-22 a reference manifest expects
/// (the same file `attest verify --reference` takes).
///
/// # Errors
///
/// When the reference has no SHA-256 value for one of them.
pub fn pcr_policy(reference: &Reference) -> Result<PcrPolicy, String> {
    let pcrs = WARDEN_PCRS
        .iter()
        .map(|&pcr| {
            let d = reference
                .pcr(HashAlg::Sha256, pcr)
                .ok_or_else(|| format!("the reference has no SHA-256 value for PCR {pcr}"))?;
            let v: [u8; 32] = d
                .as_bytes()
                .try_into()
                .map_err(|_| format!("PCR {pcr}: not a SHA-256 value"))?;
            Ok((pcr, v))
        })
        .collect::<Result<_, String>>()?;
    Ok(PcrPolicy { pcrs })
}

/// A manifest as shown (digests in hex).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Info {
    /// The checkpoint digest (what a child names as its parent).
    pub digest: String,
    /// Format version.
    pub version: u16,
    /// Checkpoint id.
    pub checkpoint_id: String,
    /// Domain name.
    pub domain: String,
    /// Domain id.
    pub domain_id: u32,
    /// Label.
    pub label: String,
    /// Launch image digest.
    pub image_digest: String,
    /// NV-counter epoch.
    pub epoch: u64,
    /// Parent checkpoint digest.
    pub parent: Option<String>,
    /// The child checkpoint a merged image supersedes.
    pub supersedes: Option<String>,
    /// `full` or `incremental`.
    pub kind: &'static str,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Page records (data, zero, duplicate).
    pub page_records: usize,
    /// Merkle root over the records.
    pub records_root: String,
    /// vCPU state digest.
    pub vcpu_digest: String,
    /// Channel/grant state digest.
    pub channels_digest: Option<String>,
    /// vTPM state digest.
    pub vtpm_digest: Option<String>,
    /// Bytes of the wrapped page key.
    pub wrapped_key_bytes: usize,
    /// Bytes of the image.
    pub image_bytes: usize,
}

/// The manifest of a framed image.
#[must_use]
pub fn info(image: &Image<'_>, image_bytes: usize) -> Info {
    let m: &Manifest = &image.manifest;
    Info {
        digest: hex(&image.digest()),
        version: warden_checkpoint::VERSION,
        checkpoint_id: hex(&m.checkpoint_id),
        domain: m.identity.domain_name.clone(),
        domain_id: m.identity.domain_id,
        label: m.identity.label.clone(),
        image_digest: hex(&m.identity.image_digest),
        epoch: m.identity.epoch,
        parent: m.identity.parent.map(|p| hex(&p)),
        supersedes: m.identity.supersedes.map(|p| hex(&p)),
        kind: if m.identity.full {
            "full"
        } else {
            "incremental"
        },
        memory_bytes: m.identity.memory_bytes,
        page_records: image
            .records
            .iter()
            .filter(|r| r.kind == warden_checkpoint::RecordKind::Page)
            .count(),
        records_root: hex(&m.records_root),
        vcpu_digest: hex(&m.vcpu_digest),
        channels_digest: m.channels_digest.map(|d| hex(&d)),
        vtpm_digest: m.vtpm_digest.map(|d| hex(&d)),
        wrapped_key_bytes: m.wrapped_key.len(),
        image_bytes,
    }
}

/// `info` as a two-column table.
#[must_use]
pub fn info_table(i: &Info) -> String {
    let none = || "(none)".to_string();
    let rows: Vec<(&str, String)> = vec![
        ("digest", i.digest.clone()),
        ("format version", i.version.to_string()),
        ("checkpoint id", i.checkpoint_id.clone()),
        ("domain", format!("{} (id {})", i.domain, i.domain_id)),
        ("label", i.label.clone()),
        ("image digest", i.image_digest.clone()),
        ("epoch", i.epoch.to_string()),
        ("parent", i.parent.clone().unwrap_or_else(none)),
        ("supersedes", i.supersedes.clone().unwrap_or_else(none)),
        ("kind", i.kind.to_string()),
        ("memory", format!("{} bytes", i.memory_bytes)),
        ("page records", i.page_records.to_string()),
        ("records root", i.records_root.clone()),
        ("vcpu digest", i.vcpu_digest.clone()),
        (
            "channels digest",
            i.channels_digest.clone().unwrap_or_else(none),
        ),
        ("vtpm digest", i.vtpm_digest.clone().unwrap_or_else(none)),
        ("wrapped key", format!("{} bytes", i.wrapped_key_bytes)),
        ("image size", format!("{} bytes", i.image_bytes)),
    ];
    rows.iter().map(|(k, v)| format!("{k:<16} {v}\n")).collect()
}

/// Why verification failed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// Which file (the image, or `--parent` number n).
    pub file: String,
    /// The check that failed (`VerifyError::kind`, or `chain`).
    pub kind: String,
    /// The message naming it.
    pub message: String,
}

/// The verdict of `checkpoint verify`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// Whether every check passed.
    pub ok: bool,
    /// The checks run, in order.
    pub checks: Vec<&'static str>,
    /// The first failure.
    pub failure: Option<Failure>,
    /// The image's manifest (when it frames).
    pub manifest: Option<Info>,
}

/// The checks [`verify`] runs, in order.
pub const CHECKS: [&str; 6] = [
    "structure",
    "manifest signature",
    "certification by the AK",
    "signing-key policy = PolicyPCR(reference)",
    "merkle root",
    "records against the manifest",
];

/// Verifies `image` (and its chain from `parents`, oldest first) against the AK and reference.
#[must_use]
pub fn verify_files(image: &[u8], parents: &[Vec<u8>], ak: &[u8], pcrs: &PcrPolicy) -> Outcome {
    let trust = Trust {
        ak_public: ak,
        pcrs,
    };
    let manifest = Image::parse(image).ok().map(|i| info(&i, image.len()));
    let mut checks = CHECKS.to_vec();
    if !parents.is_empty() {
        checks.push("chain");
    }
    let fail = |file: String, kind: &str, message: String| Outcome {
        ok: false,
        checks: checks.clone(),
        failure: Some(Failure {
            file,
            kind: kind.into(),
            message,
        }),
        manifest: manifest.clone(),
    };
    let mut chain: Vec<Verified<'_>> = Vec::new();
    for (n, p) in parents.iter().enumerate() {
        match verify(p, &trust) {
            Ok(v) => chain.push(v),
            Err(e) => return fail(format!("parent {}", n + 1), e.kind(), e.to_string()),
        }
    }
    match verify(image, &trust) {
        Ok(v) => chain.push(v),
        Err(e) => return fail("image".into(), e.kind(), e.to_string()),
    }
    if !parents.is_empty()
        && let Err(e) = verify_chain(&chain)
    {
        return fail("chain".into(), "chain", e.to_string());
    }
    Outcome {
        ok: true,
        checks,
        failure: None,
        manifest,
    }
}

/// The position in [`CHECKS`] (then `chain`) of the check a failure kind belongs to.
fn check_of(kind: &str) -> usize {
    match kind {
        "signer-public" | "manifest-signature" => 1,
        "ak-public" | "certify-malformed" | "certify-signature" | "certified-name" => 2,
        "signer-attributes" | "policy-mismatch" => 3,
        "merkle-root" => 4,
        "inconsistent" => 5,
        "chain" => 6,
        _ => 0,
    }
}

/// The verdict as text: each check ok, FAIL, or not reached.
#[must_use]
pub fn outcome_table(o: &Outcome) -> String {
    let mut out = String::new();
    let failed = o.failure.as_ref().map(|f| check_of(&f.kind));
    for (n, c) in o.checks.iter().enumerate() {
        let mark = match failed {
            Some(f) if n == f => "FAIL",
            Some(f) if n > f => "-",
            _ => "ok",
        };
        out.push_str(&format!("{mark:<4} {c}\n"));
    }
    if let Some(f) = &o.failure {
        out.push_str(&format!("\n{} ({}): {}\n", f.kind, f.file, f.message));
    }
    if let Some(m) = &o.manifest {
        out.push('\n');
        out.push_str(&info_table(m));
    }
    out.push_str(match failed {
        None => "\nverdict: OK: signed under the reference hypervisor, records intact\n",
        Some(_) => "\nverdict: FAILED\n",
    });
    out
}
