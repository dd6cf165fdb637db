//! Record encryption: AES-256-GCM under a key derived per checkpoint, a nonce unique per
//! record, and AAD binding the record to its checkpoint, kind and index.
//!
//! - record key = HKDF-SHA256(ikm = page key, salt = checkpoint id, info = "warden-checkpoint
//!   v1 record key"). The checkpoint id is fresh per checkpoint, so even a page key reused by
//!   mistake gives a new record key.
//! - nonce = kind (1 byte) || index (8 bytes LE) || 0x000000: an image holds each (kind,
//!   index) once, so no nonce repeats under one record key.
//! - AAD = "warden-checkpoint v1 record" || checkpoint id || kind || index (LE): a record moved
//!   to another index, kind or image does not authenticate.
//! - dedupe key = HKDF(..., info = "warden-checkpoint v1 dedupe key"): pages are compared by
//!   HMAC-SHA256 under it, never by a plain hash that would reveal equal pages across images.

use crate::record::RecordKind;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use alloc::vec::Vec;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize as _;

const AAD_PREFIX: &[u8] = b"warden-checkpoint v1 record";

/// The keys of one checkpoint.
pub(crate) struct RecordCipher {
    aead: Aes256Gcm,
    dedupe: [u8; 32],
    checkpoint_id: [u8; 32],
}

impl Drop for RecordCipher {
    fn drop(&mut self) {
        // The AES key schedule wipes itself (aes-gcm's `zeroize` feature).
        self.dedupe.zeroize();
    }
}

impl core::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecordCipher(..)")
    }
}

fn nonce(kind: RecordKind, index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[0] = kind as u8;
    n[1..9].copy_from_slice(&index.to_le_bytes());
    n
}

fn aad(checkpoint_id: &[u8; 32], kind: RecordKind, index: u64) -> [u8; 68] {
    let mut a = [0u8; 68];
    a[..27].copy_from_slice(AAD_PREFIX);
    a[27..59].copy_from_slice(checkpoint_id);
    a[59] = kind as u8;
    a[60..68].copy_from_slice(&index.to_le_bytes());
    a
}

impl RecordCipher {
    pub(crate) fn new(page_key: &[u8; 32], checkpoint_id: &[u8; 32]) -> RecordCipher {
        let hk = Hkdf::<Sha256>::new(Some(checkpoint_id), page_key);
        let mut key = [0u8; 32];
        let mut dedupe = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
        let _ = hk.expand(b"warden-checkpoint v1 record key", &mut key);
        let _ = hk.expand(b"warden-checkpoint v1 dedupe key", &mut dedupe);
        let aead = Aes256Gcm::new(&key.into());
        key.zeroize();
        RecordCipher {
            aead,
            dedupe,
            checkpoint_id: *checkpoint_id,
        }
    }

    pub(crate) fn seal(&self, kind: RecordKind, index: u64, plain: &[u8]) -> Vec<u8> {
        let aad = aad(&self.checkpoint_id, kind, index);
        // Encryption fails only for plaintexts beyond GCM's 64 GiB limit, and ours are bounded.
        self.aead
            .encrypt(
                Nonce::from_slice(&nonce(kind, index)),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .unwrap_or_default()
    }

    pub(crate) fn open(&self, kind: RecordKind, index: u64, sealed: &[u8]) -> Option<Vec<u8>> {
        let aad = aad(&self.checkpoint_id, kind, index);
        self.aead
            .decrypt(
                Nonce::from_slice(&nonce(kind, index)),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()
    }

    /// The keyed hash pages are deduplicated by.
    pub(crate) fn dedupe_tag(&self, page: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.dedupe)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(page);
        m.finalize().into_bytes().into()
    }
}
