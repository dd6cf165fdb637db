//! Cryptographic building blocks: hash algorithms, HMAC, the TPM KDFs, a DRBG and AES-CFB.

pub(crate) mod aes;
mod drbg;
pub(crate) mod prime;
pub(crate) mod rsa_key;
pub(crate) mod rsa_pad;
pub(crate) mod sieve;

pub(crate) use drbg::Drbg;

use crate::rc::Rc;
use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// TPM_ALG_ID values the engine knows.
#[allow(dead_code)]
pub(crate) mod alg {
    pub(crate) const RSA: u16 = 0x0001;
    pub(crate) const SHA1: u16 = 0x0004;
    pub(crate) const HMAC: u16 = 0x0005;
    pub(crate) const AES: u16 = 0x0006;
    pub(crate) const MGF1: u16 = 0x0007;
    pub(crate) const KEYEDHASH: u16 = 0x0008;
    pub(crate) const XOR: u16 = 0x000A;
    pub(crate) const SHA256: u16 = 0x000B;
    pub(crate) const SHA384: u16 = 0x000C;
    pub(crate) const SHA512: u16 = 0x000D;
    pub(crate) const NULL: u16 = 0x0010;
    pub(crate) const RSASSA: u16 = 0x0014;
    pub(crate) const RSAES: u16 = 0x0015;
    pub(crate) const RSAPSS: u16 = 0x0016;
    pub(crate) const OAEP: u16 = 0x0017;
    pub(crate) const ECDSA: u16 = 0x0018;
    pub(crate) const ECDH: u16 = 0x0019;
    pub(crate) const ECDAA: u16 = 0x001A;
    pub(crate) const KDF1_SP800_56A: u16 = 0x0020;
    pub(crate) const KDF1_SP800_108: u16 = 0x0022;
    pub(crate) const ECC: u16 = 0x0023;
    pub(crate) const SYMCIPHER: u16 = 0x0025;
    pub(crate) const CTR: u16 = 0x0040;
    pub(crate) const OFB: u16 = 0x0041;
    pub(crate) const CBC: u16 = 0x0042;
    pub(crate) const CFB: u16 = 0x0043;
    pub(crate) const ECB: u16 = 0x0044;
    /// TPM_ECC_NIST_P256 (a TPM_ECC_CURVE, not an algorithm, kept here for convenience).
    pub(crate) const CURVE_P256: u16 = 0x0003;
}

/// A hash algorithm the engine implements.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// Maps a TPM_ALG_ID; anything else is `TPM_RC_HASH`.
    pub(crate) fn from_alg(id: u16) -> Result<Self, Rc> {
        match id {
            alg::SHA1 => Ok(HashAlg::Sha1),
            alg::SHA256 => Ok(HashAlg::Sha256),
            alg::SHA384 => Ok(HashAlg::Sha384),
            alg::SHA512 => Ok(HashAlg::Sha512),
            _ => Err(Rc::HASH),
        }
    }
    pub(crate) fn alg(self) -> u16 {
        match self {
            HashAlg::Sha1 => alg::SHA1,
            HashAlg::Sha256 => alg::SHA256,
            HashAlg::Sha384 => alg::SHA384,
            HashAlg::Sha512 => alg::SHA512,
        }
    }
    pub(crate) fn size(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
    /// Hash of the concatenation of `parts`.
    pub(crate) fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            HashAlg::Sha1 => run::<Sha1>(parts),
            HashAlg::Sha256 => run::<Sha256>(parts),
            HashAlg::Sha384 => run::<Sha384>(parts),
            HashAlg::Sha512 => run::<Sha512>(parts),
        }
    }
    /// HMAC of the concatenation of `parts` under `key`.
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes any key length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            HashAlg::Sha1 => run::<Hmac<Sha1>>(key, parts),
            HashAlg::Sha256 => run::<Hmac<Sha256>>(key, parts),
            HashAlg::Sha384 => run::<Hmac<Sha384>>(key, parts),
            HashAlg::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }
}

/// Incremental hashing for hash sequences.
#[derive(Clone, Debug)]
pub(crate) enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(h: HashAlg) -> Self {
        match h {
            HashAlg::Sha1 => Hasher::Sha1(Sha1::new()),
            HashAlg::Sha256 => Hasher::Sha256(Sha256::new()),
            HashAlg::Sha384 => Hasher::Sha384(Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(d) => d.update(data),
            Hasher::Sha256(d) => d.update(data),
            Hasher::Sha384(d) => d.update(data),
            Hasher::Sha512(d) => d.update(data),
        }
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(d) => d.finalize().to_vec(),
            Hasher::Sha256(d) => d.finalize().to_vec(),
            Hasher::Sha384(d) => d.finalize().to_vec(),
            Hasher::Sha512(d) => d.finalize().to_vec(),
        }
    }
}

/// KDFa (Part 1 §11.4.10.2): SP800-108 counter-mode KDF with HMAC. `label` excludes the NUL.
pub(crate) fn kdfa(
    h: HashAlg,
    key: &[u8],
    label: &[u8],
    ctx_u: &[u8],
    ctx_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + h.size());
    let mut counter = 1u32;
    while out.len() < bytes {
        let block = h.hmac(
            key,
            &[
                &counter.to_be_bytes(),
                label,
                &[0],
                ctx_u,
                ctx_v,
                &bits.to_be_bytes(),
            ],
        );
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(bytes);
    if !bits.is_multiple_of(8) {
        out[0] &= (1u8 << (bits % 8)) - 1;
    }
    out
}

/// KDFe (Part 1 §11.4.10.3): SP800-56A concatenation KDF. `label` excludes the NUL.
pub(crate) fn kdfe(
    h: HashAlg,
    z: &[u8],
    label: &[u8],
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + h.size());
    let mut counter = 1u32;
    while out.len() < bytes {
        out.extend_from_slice(&h.digest(&[
            &counter.to_be_bytes(),
            z,
            label,
            &[0],
            party_u,
            party_v,
        ]));
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// All ones when `bit` is 1, zero when it is 0, through an optimisation barrier: without it
/// the compiler sees a boolean and may turn the masked selection that follows into a branch
/// (LLVM's cmov-to-branch conversion does so in loops), which the timing test caught.
#[inline(always)]
pub(crate) fn ct_mask(bit: u64) -> u64 {
    core::hint::black_box(bit).wrapping_neg()
}

/// Constant-time equality (length is not secret), through `subtle` and its optimisation
/// barrier.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn kdfs_match_independent_computation() {
        // Expected values computed with Python's hmac/hashlib from the Part 1 formulas.
        let a = kdfa(HashAlg::Sha256, b"key", b"LABEL", b"u", b"v", 256);
        assert_eq!(
            a,
            hex("56b49ed5d4226bcbadf1d89b10246f3ed7942b30d67ce308d5b2b90736d8311f")
        );
        let e = kdfe(HashAlg::Sha256, b"z", b"LABEL", b"u", b"v", 256);
        assert_eq!(
            e,
            hex("18fbb3dd66c262796c387c5e358ebfd0345931f69f07e527c6143aebb317a921")
        );
        // A bit count that is not a byte multiple masks the top byte.
        assert_eq!(
            kdfa(HashAlg::Sha256, b"key", b"L", b"", b"", 12)[0] & 0xF0,
            0
        );
    }

    #[test]
    fn hmac_rfc4231_case2() {
        let mac = HashAlg::Sha256.hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(mac[..8], [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e],);
    }
}
