//! The sealing side: [`CheckpointWriter`] encrypts pages and state as they stream in and signs
//! the manifest through a [`Signer`] (the service domain's platform-TPM TPM2_Sign).

use crate::crypt::RecordCipher;
use crate::error::WriteError;
use crate::image;
use crate::manifest::{Identity, Manifest};
use crate::merkle;
use crate::record::{
    FLAG_DATA, FLAG_DUP, FLAG_ZERO, MAX_STATE, PAGE_SIZE, Record, RecordKind, StateKind,
};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use sha2::{Digest as _, Sha256};

/// Signs a checkpoint digest with the platform-TPM signing key.
pub trait Signer {
    /// Why signing failed.
    type Error: core::fmt::Debug;
    /// The signing key's `TPM2B_PUBLIC`.
    fn public(&self) -> &[u8];
    /// `TPM2B_ATTEST || TPMT_SIGNATURE`: its TPM2_Certify by the platform AK.
    fn certification(&self) -> &[u8];
    /// ECDSA P-256 over the 32-byte digest; `r || s`, each 32 bytes big-endian.
    ///
    /// # Errors
    ///
    /// When the TPM refuses (e.g. its PCRs no longer satisfy the key's policy).
    fn sign(&mut self, digest: &[u8; 32]) -> Result<[u8; 64], Self::Error>;
}

/// The checkpoint's key material.
#[derive(Clone)]
pub struct Keys {
    /// Fresh random per checkpoint (from the platform TPM's RNG).
    pub checkpoint_id: [u8; 32],
    /// The page key, fresh random per checkpoint.
    pub page_key: [u8; 32],
    /// The page key wrapped by the platform TPM (stored in the manifest as is).
    pub wrapped_key: Vec<u8>,
}

impl Drop for Keys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.page_key);
    }
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keys")
            .field("checkpoint_id", &self.checkpoint_id)
            .finish_non_exhaustive()
    }
}

/// Builds one image from a stream of pages (increasing index) and state blobs.
#[derive(Debug)]
pub struct CheckpointWriter {
    identity: Identity,
    checkpoint_id: [u8; 32],
    wrapped_key: Vec<u8>,
    cipher: RecordCipher,
    /// Framed page records, in index order.
    pages: Vec<u8>,
    page_count: u32,
    last_page: Option<u64>,
    /// Keyed hash of each stored page's bytes → its index.
    seen: BTreeMap<[u8; 32], u64>,
    state: BTreeMap<StateKind, Vec<u8>>,
}

impl CheckpointWriter {
    /// Starts an image.
    #[must_use]
    pub fn new(identity: Identity, keys: &Keys) -> CheckpointWriter {
        CheckpointWriter {
            identity,
            checkpoint_id: keys.checkpoint_id,
            wrapped_key: keys.wrapped_key.clone(),
            cipher: RecordCipher::new(&keys.page_key, &keys.checkpoint_id),
            pages: Vec::new(),
            page_count: 0,
            last_page: None,
            seen: BTreeMap::new(),
            state: BTreeMap::new(),
        }
    }

    /// Adds page `index`. Zero pages become a flag; a page equal to an earlier one of this image
    /// becomes a reference to it.
    ///
    /// # Errors
    ///
    /// Out of order, repeated or out-of-range pages.
    pub fn page<E>(&mut self, index: u64, bytes: &[u8; PAGE_SIZE]) -> Result<(), WriteError<E>> {
        if self.last_page.is_some_and(|l| l >= index) {
            return Err(WriteError::PageOrder(index));
        }
        if index >= self.identity.memory_bytes / PAGE_SIZE as u64 {
            return Err(WriteError::PageOutOfRange(index));
        }
        self.last_page = Some(index);
        self.page_count += 1;
        if bytes.iter().all(|b| *b == 0) {
            Record::encode(&mut self.pages, RecordKind::Page, FLAG_ZERO, index, &[]);
            return Ok(());
        }
        let tag = self.cipher.dedupe_tag(bytes);
        if let Some(src) = self.seen.get(&tag) {
            Record::encode(
                &mut self.pages,
                RecordKind::Page,
                FLAG_DUP,
                index,
                &src.to_le_bytes(),
            );
            return Ok(());
        }
        self.seen.insert(tag, index);
        let sealed = self.cipher.seal(RecordKind::Page, index, bytes);
        Record::encode(&mut self.pages, RecordKind::Page, FLAG_DATA, index, &sealed);
        Ok(())
    }

    /// Adds a state blob (each kind once).
    ///
    /// # Errors
    ///
    /// A kind given twice, or a blob above the format's limit.
    pub fn state<E>(&mut self, kind: StateKind, blob: &[u8]) -> Result<(), WriteError<E>> {
        if blob.len() > MAX_STATE {
            return Err(WriteError::StateTooLarge(kind));
        }
        if self.state.contains_key(&kind) {
            return Err(WriteError::DuplicateState(kind));
        }
        let mut framed = Vec::new();
        let sealed = self.cipher.seal(kind.record_kind(), 0, blob);
        Record::encode(&mut framed, kind.record_kind(), 0, 0, &sealed);
        self.state.insert(kind, framed);
        Ok(())
    }

    /// Bytes of records so far (what the image adds beyond its manifest).
    #[must_use]
    pub fn record_bytes(&self) -> usize {
        self.pages.len() + self.state.values().map(Vec::len).sum::<usize>()
    }

    /// Builds the manifest, signs it and returns the image.
    ///
    /// # Errors
    ///
    /// Missing vCPU state or pages of a full image, or the signer's refusal.
    pub fn finish<S: Signer>(self, signer: &mut S) -> Result<Vec<u8>, WriteError<S::Error>> {
        let Some(vcpu) = self.state.get(&StateKind::Vcpu) else {
            return Err(WriteError::MissingVcpu);
        };
        let pages = self.identity.memory_bytes / PAGE_SIZE as u64;
        if self.identity.full && u64::from(self.page_count) != pages {
            // Pages arrive in order, so the first missing one is the count given so far or a gap.
            return Err(WriteError::MissingPage(
                u64::from(self.page_count).min(pages),
            ));
        }
        let mut records = self.pages;
        for framed in self.state.values() {
            records.extend_from_slice(framed);
        }
        let count = self.page_count + u32::try_from(self.state.len()).unwrap_or(0);
        let mut leaves = Vec::new();
        let mut at = 0;
        for n in 0..count as usize {
            let (r, next) = Record::parse(&records, at, n).map_err(|_| WriteError::Encode)?;
            leaves.push(r.raw);
            at = next;
        }
        let digest_of = |k| {
            self.state
                .get(&k)
                .map(|f: &Vec<u8>| <[u8; 32]>::from(Sha256::digest(f)))
        };
        let manifest = Manifest {
            checkpoint_id: self.checkpoint_id,
            identity: self.identity,
            records_root: merkle::root(leaves.into_iter()),
            vcpu_digest: Sha256::digest(vcpu).into(),
            channels_digest: digest_of(StateKind::Channels),
            vtpm_digest: digest_of(StateKind::Vtpm),
            wrapped_key: self.wrapped_key,
            signer_public: signer.public().to_vec(),
            signer_certification: signer.certification().to_vec(),
        };
        let encoded = postcard::to_allocvec(&manifest).map_err(|_| WriteError::Encode)?;
        let signed = image::signed_part(&encoded);
        let digest: [u8; 32] = Sha256::digest(&signed).into();
        let signature = signer.sign(&digest).map_err(WriteError::Sign)?;
        Ok(image::assemble(signed, &signature, count, &records))
    }
}
