//! Verification: structure, then the manifest signature, then the signing key's certification
//! and policy, then the records against the manifest. The same code serves the restore path and
//! `wardenctl checkpoint verify`.

use crate::error::{ChainError, VerifyError};
use crate::image::Image;
use crate::merkle;
use crate::record::{RecordKind, StateKind};
use crate::tpm::{self, PcrPolicy};
use alloc::string::String;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::{Digest as _, Sha256};

/// What the verifier trusts: the platform AK and the PCR values of the hypervisor build and
/// policy it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    /// The platform AK's `TPM2B_PUBLIC`.
    pub ak_public: &'a [u8],
    /// The reference PCRs the signing key's policy must name.
    pub pcrs: &'a PcrPolicy,
}

/// An image that passed [`verify`].
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    /// The image.
    pub image: Image<'a>,
    /// Its checkpoint digest.
    pub digest: [u8; 32],
}

fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write as _;
    let mut s = String::new();
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Verifies `bytes` against `trust`, without the page key.
///
/// # Errors
///
/// The [`VerifyError`] naming the first check that failed.
pub fn verify<'a>(bytes: &'a [u8], trust: &Trust<'_>) -> Result<Verified<'a>, VerifyError> {
    // 1. Framing.
    let image = Image::parse(bytes)?;
    let m = &image.manifest;
    // 2. The manifest signature, by the key the manifest names.
    let signer = tpm::parse_ecc(&m.signer_public).map_err(VerifyError::SignerPublic)?;
    let digest = image.digest();
    let sig = p256::ecdsa::Signature::from_slice(&image.signature)
        .map_err(|_| VerifyError::ManifestSignature)?;
    signer
        .key
        .verify_prehash(&digest, &sig)
        .map_err(|_| VerifyError::ManifestSignature)?;
    // 3. That key: certified by the platform AK, usable only under the reference PCRs.
    let ak = tpm::parse_ecc(trust.ak_public).map_err(VerifyError::AkPublic)?;
    tpm::check_ak(&ak).map_err(VerifyError::AkPublic)?;
    tpm::check_certification(&m.signer_certification, &ak, &signer)?;
    tpm::check_signer_attributes(&signer)?;
    let expected = tpm::policy_pcr_digest(trust.pcrs).ok_or(VerifyError::PolicyMismatch {
        expected: "(reference names a PCR above 23)".into(),
        actual: hex(signer.public.auth_policy.as_ref()),
    })?;
    if signer.public.auth_policy.as_ref() != expected.as_slice() {
        return Err(VerifyError::PolicyMismatch {
            expected: hex(&expected),
            actual: hex(signer.public.auth_policy.as_ref()),
        });
    }
    // 4. The records are the signed ones and agree with the manifest.
    if merkle::root(image.records.iter().map(|r| r.raw)) != m.records_root {
        return Err(VerifyError::MerkleRoot);
    }
    check_records(&image)?;
    Ok(Verified { image, digest })
}

fn check_records(image: &Image<'_>) -> Result<(), VerifyError> {
    let m = &image.manifest;
    let id = &m.identity;
    let bad = VerifyError::Inconsistent;
    if !id.memory_bytes.is_multiple_of(crate::PAGE_SIZE as u64) {
        return Err(bad("memory size is not a whole number of pages"));
    }
    let pages = image
        .records
        .iter()
        .filter(|r| r.kind == RecordKind::Page)
        .collect::<alloc::vec::Vec<_>>();
    if pages.last().is_some_and(|r| r.index >= m.pages()) {
        return Err(bad("a page record beyond the domain's memory"));
    }
    if id.full && pages.len() as u64 != m.pages() {
        return Err(bad("a full image lacks pages"));
    }
    if !id.full && id.parent.is_none() {
        return Err(bad("an incremental image without a parent"));
    }
    for (kind, want) in [
        (StateKind::Vcpu, Some(m.vcpu_digest)),
        (StateKind::Channels, m.channels_digest),
        (StateKind::Vtpm, m.vtpm_digest),
    ] {
        let got = image
            .state_record(kind)
            .map(|r| <[u8; 32]>::from(Sha256::digest(r.raw)));
        if got != want {
            return Err(bad("a state record's digest is not the manifest's"));
        }
    }
    Ok(())
}

/// Checks that verified images, oldest first, form one chain: each names the one before as its
/// parent (or the child a merged image supersedes), epochs increase, one domain throughout, starting from a full image.
///
/// # Errors
///
/// The [`ChainError`] naming the first link that does not hold.
pub fn verify_chain(chain: &[Verified<'_>]) -> Result<(), ChainError> {
    if !chain
        .first()
        .is_some_and(|v| v.image.manifest.identity.full)
    {
        return Err(ChainError::NoFullBase);
    }
    for (i, pair) in chain.windows(2).enumerate() {
        let (parent, child) = (
            &pair[0].image.manifest.identity,
            &pair[1].image.manifest.identity,
        );
        let parent_digests = [Some(pair[0].digest), parent.supersedes];
        if child.parent.is_none() || !parent_digests.contains(&child.parent) {
            return Err(ChainError::ParentMismatch(i + 1));
        }
        if child.domain_id != parent.domain_id || child.domain_name != parent.domain_name {
            return Err(ChainError::DomainMismatch(i + 1));
        }
        if child.epoch <= parent.epoch {
            return Err(ChainError::EpochNotIncreasing(i + 1));
        }
    }
    Ok(())
}
