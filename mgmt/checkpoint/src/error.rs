//! The errors of each side: verification (one variant per check, so a refusal names what
//! failed), reading with the key, writing, and chain linkage.

use crate::record::RecordKind;

/// Why an image was refused by [`crate::verify`]. Each check has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The image ends before the structure it announces (`what` was being read at `offset`).
    #[error("truncated: the image ends inside the {what} at byte {offset}")]
    Truncated {
        /// The part being read.
        what: &'static str,
        /// Where it started.
        offset: usize,
    },
    /// Not a Warden checkpoint image.
    #[error("bad magic: not a Warden checkpoint image")]
    BadMagic,
    /// A format version this verifier does not know.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u16),
    /// Bytes after the last record.
    #[error("{0} unexpected bytes after the last record")]
    TrailingBytes(usize),
    /// The manifest is not a valid encoding.
    #[error("manifest malformed: {0}")]
    ManifestMalformed(&'static str),
    /// The signing key's public area in the manifest is not a P-256 signing key.
    #[error("signing key: {0}")]
    SignerPublic(&'static str),
    /// The manifest signature does not verify with the signing key named in it.
    #[error(
        "manifest signature: does not verify with the manifest's signing key (the manifest or header was altered, or signed by another key)"
    )]
    ManifestSignature,
    /// The AK's public area cannot be used.
    #[error("attestation key: {0}")]
    AkPublic(&'static str),
    /// The certification is not a TPM2_Certify by an ECDSA key.
    #[error("certification malformed: {0}")]
    CertifyMalformed(&'static str),
    /// The AK's signature over the certify-info does not verify.
    #[error(
        "certification signature: the platform AK did not sign this certification of the signing key"
    )]
    CertifySignature,
    /// The certified name is not the signing key's name.
    #[error("certified name: the certification is for another key than the manifest's signing key")]
    CertifiedName,
    /// The signing key could be used without its policy, or outside its TPM.
    #[error("signing key attributes: {0}")]
    SignerAttributes(&'static str),
    /// The signing key's authPolicy is not PolicyPCR over the reference values.
    #[error(
        "policy mismatch: the signing key's authPolicy {actual} is not PolicyPCR over the reference PCRs ({expected}): it could sign under another hypervisor or policy"
    )]
    PolicyMismatch {
        /// The expected digest (hex).
        expected: alloc::string::String,
        /// The key's authPolicy (hex).
        actual: alloc::string::String,
    },
    /// A record's framing is invalid (record number `record`).
    #[error("record {record}: {why}")]
    RecordMalformed {
        /// Position of the record in the image.
        record: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The Merkle root over the records is not the manifest's.
    #[error("merkle root: the records are not the ones the manifest was signed over")]
    MerkleRoot,
    /// The records do not match what the manifest says (page range, completeness, state).
    #[error("records inconsistent with the manifest: {0}")]
    Inconsistent(&'static str),
}

impl VerifyError {
    /// A short stable name of the check that failed (for `--json` and tests).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::Truncated { .. } => "truncated",
            VerifyError::BadMagic => "bad-magic",
            VerifyError::UnsupportedVersion(_) => "unsupported-version",
            VerifyError::TrailingBytes(_) => "trailing-bytes",
            VerifyError::ManifestMalformed(_) => "manifest-malformed",
            VerifyError::SignerPublic(_) => "signer-public",
            VerifyError::ManifestSignature => "manifest-signature",
            VerifyError::AkPublic(_) => "ak-public",
            VerifyError::CertifyMalformed(_) => "certify-malformed",
            VerifyError::CertifySignature => "certify-signature",
            VerifyError::CertifiedName => "certified-name",
            VerifyError::SignerAttributes(_) => "signer-attributes",
            VerifyError::PolicyMismatch { .. } => "policy-mismatch",
            VerifyError::RecordMalformed { .. } => "record-malformed",
            VerifyError::MerkleRoot => "merkle-root",
            VerifyError::Inconsistent(_) => "inconsistent",
        }
    }
}

/// Why a chain of verified images does not link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An image's parent digest is not the digest of the image before it.
    #[error("image {0}: its parent is not the image before it")]
    ParentMismatch(usize),
    /// An image's epoch is not above its parent's.
    #[error("image {0}: epoch does not increase over its parent's")]
    EpochNotIncreasing(usize),
    /// An image belongs to another domain than its parent.
    #[error("image {0}: another domain than its parent")]
    DomainMismatch(usize),
    /// The chain is empty or does not start from a full image.
    #[error("the chain does not start with a full image")]
    NoFullBase,
}

/// Why a record could not be read with the page key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// AES-GCM refused the record: wrong key, altered bytes, or a record moved from another
    /// index, kind or image.
    #[error("record {kind:?} {index}: authentication failed (altered, moved or wrong key)")]
    Authentication {
        /// Kind of the record.
        kind: RecordKind,
        /// Its page index (0 for state).
        index: u64,
    },
    /// A page is outside the image's memory.
    #[error("page {0} is outside the domain's memory")]
    OutOfRange(u64),
}

/// Why an image could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError<E> {
    /// Pages must come in strictly increasing index order, each once.
    #[error("page {0} is not after the previous page")]
    PageOrder(u64),
    /// A page index beyond the memory size.
    #[error("page {0} is outside the domain's memory")]
    PageOutOfRange(u64),
    /// A state blob was given twice.
    #[error("state {0:?} given twice")]
    DuplicateState(crate::record::StateKind),
    /// A state blob is larger than the format allows.
    #[error("state {0:?} larger than the format's limit")]
    StateTooLarge(crate::record::StateKind),
    /// Every image carries the vCPU state.
    #[error("no vCPU state given")]
    MissingVcpu,
    /// A full image lacks a page.
    #[error("a full image lacks page {0}")]
    MissingPage(u64),
    /// The manifest could not be encoded.
    #[error("manifest encoding failed")]
    Encode,
    /// Merging: the inputs do not form (full parent, its child).
    #[error("merge: {0}")]
    Merge(&'static str),
    /// Merging: an input record did not authenticate.
    #[error("merge: {0}")]
    Read(ReadError),
    /// The signer refused.
    #[error("signer: {0:?}")]
    Sign(E),
}
