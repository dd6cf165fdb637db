//! The TPM policy digests the manager's objects carry, computed as the TPM computes them
//! (TPM 2.0 Part 3, PolicyPCR and PolicyLocality), so the manager can seal to PCR values
//! without a trial session.

use sha2::{Digest as _, Sha256};
use warden_tpm::{Banks, HashAlg, PcrSelection};

/// The hypervisor's measured PCRs (20: the MAC policy, 21: the command line and manifest,
/// 22: the domain images; reset and extended at locality 2, which only the hypervisor holds):
/// the sealed state opens only while they hold what they held when it was sealed.
pub const SEALED_PCRS: PcrSelection = PcrSelection {
    banks: Banks::only(HashAlg::Sha256),
    pcrs: 0b111 << 20,
};

/// The locality the hypervisor leaves the manager (TIS window 0xFED41000).
pub const MANAGER_LOCALITY: u8 = 1;

/// `TPM_CC_PolicyPCR`, `TPM_CC_PolicyLocality`.
const CC_POLICY_PCR: u32 = 0x0000_017F;
const CC_POLICY_LOCALITY: u32 = 0x0000_016F;

/// The policy digest of `PolicyPCR(SEALED_PCRS)` with the PCRs at `values` (SHA-256 bank, in
/// PCR order 20, 21, 22), from an empty policy.
#[must_use]
pub fn pcr_policy(values: &[[u8; 32]; 3]) -> [u8; 32] {
    let mut pcr_digest = Sha256::new();
    for v in values {
        pcr_digest.update(v);
    }
    let pcr_digest = pcr_digest.finalize();
    // TPML_PCR_SELECTION: count 1, SHA-256, 3 select bytes, bits 20..22 in the third.
    let bitmap = SEALED_PCRS.pcrs.to_le_bytes();
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(CC_POLICY_PCR.to_be_bytes());
    h.update(1u32.to_be_bytes());
    h.update(HashAlg::Sha256.id().to_be_bytes());
    h.update([3u8]);
    h.update(&bitmap[..3]);
    h.update(pcr_digest);
    h.finalize().into()
}

/// The policy digest of `PolicyLocality(MANAGER_LOCALITY)` from an empty policy: the NV
/// counter's write policy, so only the manager's locality can advance it.
#[must_use]
pub fn counter_write_policy() -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(CC_POLICY_LOCALITY.to_be_bytes());
    h.update([1u8 << MANAGER_LOCALITY]);
    h.finalize().into()
}
