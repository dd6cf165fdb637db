//! The constant-time code paths, callable one by one for the timing benchmark
//! (`cargo xtask bench vtpm-ct`, feature `ct-probe`, which nothing else enables): the RSA
//! private operation with its decoding, a PKCS#1 v1.5 signature, and the sieve.

use crate::crypto::rsa_key::RsaKey;
use crate::crypto::{Drbg, HashAlg, rsa_pad};
use alloc::vec::Vec;

/// An RSA key as a loaded object keeps it, with a DRBG for the blinding.
#[derive(Debug)]
pub struct Key {
    key: RsaKey,
    rng: Drbg,
}

impl Key {
    /// A fresh key of `bits` (1024 or 2048) from `seed`, by the engine's key generation.
    pub fn generate(bits: usize, seed: &[u8]) -> Option<Key> {
        let mut rng = Drbg::new(seed);
        let key = crate::crypto::prime::rsa_keygen(bits, 65537, &mut rng)?;
        Some(Key { key, rng })
    }
    /// The key of modulus n and prime p (big-endian), as Load builds it.
    pub fn from_parts(n: &[u8], p: &[u8]) -> Option<Key> {
        let key = RsaKey::from_n_p(n, p, 65537)?;
        Some(Key {
            key,
            rng: Drbg::new(b"probe blinding"),
        })
    }
    /// Every word of the key that holds a secret: for the memcheck taint test, which marks
    /// them undefined and counts the branches and addresses that then depend on them.
    pub fn secret_words(&mut self) -> Vec<&mut [u64]> {
        self.key.secret_words()
    }
    /// The private operation alone (input below n): RSA_Decrypt's work before the decoding.
    pub fn private(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        self.key.private(input, &mut self.rng)
    }
    /// The modulus (big-endian) and the first prime (big-endian).
    pub fn parts(&self) -> (Vec<u8>, Vec<u8>) {
        (self.key.n().to_vec(), self.key.p_bytes())
    }
    /// RSA_Decrypt's work for RSAES: the private operation and the PKCS#1 v1.5 decoding.
    pub fn decrypt_pkcs1(&mut self, ct: &[u8]) -> Option<Vec<u8>> {
        let em = self.key.private(ct, &mut self.rng)?;
        rsa_pad::pkcs1_decode(&em).ok()
    }
    /// Sign's work for RSASSA with SHA-256: the encoding and the private operation.
    pub fn sign_pkcs1_sha256(&mut self, digest: &[u8]) -> Option<Vec<u8>> {
        let em = rsa_pad::pkcs1_sign_encode(HashAlg::Sha256, digest, self.key.size()).ok()?;
        self.key.private(&em, &mut self.rng)
    }
}

/// The sieve's work on one base (little-endian limbs, odd): the residues, the first
/// sub-window and the first survivor.
pub fn sieve_first(base: &[u64], e: u32) -> Option<usize> {
    crate::crypto::sieve::Sieve::new(base, e).next(0)
}
