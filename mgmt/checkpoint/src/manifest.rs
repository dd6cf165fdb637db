//! The manifest: what the checkpoint is of, the digests that bind its records, and the signing
//! key with its certification. Encoded with postcard, fields in declaration order.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// The signed description of a checkpoint (see docs/checkpoint.md for the encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Random, unique per checkpoint: salts the record key and is in every record's AAD.
    pub checkpoint_id: [u8; 32],
    /// What the checkpoint is of (encoded in place: its fields follow `checkpoint_id`).
    pub identity: Identity,
    /// Merkle root over the records.
    pub records_root: [u8; 32],
    /// SHA-256 of the vCPU state record.
    pub vcpu_digest: [u8; 32],
    /// SHA-256 of the channel/grant state record, if the domain has any.
    pub channels_digest: Option<[u8; 32]>,
    /// SHA-256 of the vTPM state record, if the domain has a vTPM.
    pub vtpm_digest: Option<[u8; 32]>,
    /// The page key, wrapped by the platform TPM (opaque here).
    pub wrapped_key: Vec<u8>,
    /// The signing key's `TPM2B_PUBLIC`.
    pub signer_public: Vec<u8>,
    /// `TPM2B_ATTEST || TPMT_SIGNATURE`: TPM2_Certify of the signing key by the platform AK.
    pub signer_certification: Vec<u8>,
}

impl Manifest {
    /// Pages of memory.
    #[must_use]
    pub fn pages(&self) -> u64 {
        self.identity.memory_bytes / crate::PAGE_SIZE as u64
    }
}

/// What the checkpoint is of (the manifest fields the caller decides).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The domain's name.
    pub domain_name: String,
    /// The domain's id.
    pub domain_id: u32,
    /// Its label.
    pub label: String,
    /// SHA-256 of its launch image.
    pub image_digest: [u8; 32],
    /// The platform NV counter's value for this checkpoint.
    pub epoch: u64,
    /// The parent checkpoint's digest, for an incremental image (or a merged image's lineage).
    pub parent: Option<[u8; 32]>,
    /// For a merged image: the child checkpoint it replaces (see [`crate::Manifest`]).
    pub supersedes: Option<[u8; 32]>,
    /// Whether every page is given.
    pub full: bool,
    /// Memory size in bytes (a multiple of [`crate::PAGE_SIZE`]).
    pub memory_bytes: u64,
}
