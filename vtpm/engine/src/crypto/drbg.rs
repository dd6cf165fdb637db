//! The engine's HMAC-DRBG (SP800-90A, HMAC-SHA-256) with its whole state wipeable: K kept as
//! the two SHA-256 chaining values of HMAC's inner and outer key blocks (over `sha2`'s
//! compression function), V, and the reseed counter — all wiped on reseed (overwritten in
//! place) and on drop (`ZeroizeOnDrop`).
//!
//! Why not `hmac::Hmac<Sha256>` as state: hmac 0.12 / sha2 0.10 have no `Zeroize`, so a
//! replaced or dropped key would stay in memory; their arithmetic is reused through
//! `sha2::compress256`, and the output is the same HMAC (tested against `hmac` below).

use alloc::vec::Vec;
use sha2::digest::generic_array::GenericArray;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// SHA-256's initial chaining value (FIPS 180-4 5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// One 64-byte block into a chaining value.
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(
        state,
        core::slice::from_ref(GenericArray::from_slice(block)),
    );
}

/// HMAC-SHA-256 keyed once: the chaining values after the key's inner (K ^ ipad) and outer
/// (K ^ opad) blocks. A MAC costs two compressions fewer than keying anew.
struct KeyedHmac {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl KeyedHmac {
    /// For a key of at most one block (the DRBG's K is 32 bytes).
    fn new(key: &[u8; 32]) -> Self {
        let mut block = [0u8; 64];
        let mut k = KeyedHmac {
            inner: IV,
            outer: IV,
        };
        for (b, kb) in block
            .iter_mut()
            .zip(key.iter().chain(core::iter::repeat(&0)))
        {
            *b = kb ^ 0x36;
        }
        compress(&mut k.inner, &block);
        for b in block.iter_mut() {
            *b ^= 0x36 ^ 0x5c;
        }
        compress(&mut k.outer, &block);
        block.zeroize();
        k
    }

    /// HMAC_K(parts...).
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut block = [0u8; 64];
        let mut state = self.inner;
        let mut fill = 0usize;
        // The key block is the first 64 bytes of the inner hash's message.
        let mut total = 64u64;
        for part in parts {
            for &byte in part.iter() {
                block[fill] = byte;
                fill += 1;
                if fill == 64 {
                    compress(&mut state, &block);
                    fill = 0;
                }
            }
            total += part.len() as u64;
        }
        let mut digest = [0u8; 32];
        finish(&mut state, &mut block, fill, total, &mut digest);
        // Outer hash: key block, then the inner digest.
        let mut state2 = self.outer;
        block[..32].copy_from_slice(&digest);
        let mut out = [0u8; 32];
        finish(&mut state2, &mut block, 32, 64 + 32, &mut out);
        state.zeroize();
        state2.zeroize();
        digest.zeroize();
        block.zeroize();
        out
    }
}

/// SHA-256 padding of a message of `total` bytes whose last `fill` bytes are in `block`, the
/// last compressions and the digest.
fn finish(state: &mut [u32; 8], block: &mut [u8; 64], fill: usize, total: u64, out: &mut [u8; 32]) {
    block[fill] = 0x80;
    block[fill + 1..].fill(0);
    if fill >= 56 {
        compress(state, block);
        block.fill(0);
    }
    block[56..].copy_from_slice(&(total * 8).to_be_bytes());
    compress(state, block);
    for (o, w) in out.chunks_exact_mut(4).zip(state.iter()) {
        o.copy_from_slice(&w.to_be_bytes());
    }
}

impl Zeroize for KeyedHmac {
    fn zeroize(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// HMAC-DRBG (SP800-90A) over SHA-256: deterministic from its seed, so primary keys derived
/// from a hierarchy seed come back identical after a restart. Not `Clone` (two copies would
/// give the same bytes); K and V are wiped on drop.
pub(crate) struct Drbg {
    /// HMAC keyed with K.
    mac: KeyedHmac,
    v: [u8; 32],
    /// Generate requests since the last (re)seed: SP800-90A's reseed_counter.
    generated: u64,
}

/// Requests after which the engine's DRBG takes fresh platform entropy (SP800-90A allows 2^48
/// for HMAC_DRBG; the engine reseeds far sooner, as the cost is one entropy read).
pub(crate) const RESEED_INTERVAL: u64 = 1 << 16;

impl Zeroize for Drbg {
    fn zeroize(&mut self) {
        self.mac.zeroize();
        self.v.zeroize();
        self.generated.zeroize();
    }
}

impl Drop for Drbg {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Drbg {}

impl core::fmt::Debug for Drbg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Drbg(..)")
    }
}

impl Drbg {
    pub(crate) fn new(seed: &[u8]) -> Self {
        let mut d = Drbg {
            mac: KeyedHmac::new(&[0; 32]),
            v: [1; 32],
            generated: 0,
        };
        d.update(seed);
        d
    }
    /// K = HMAC_K(V || byte || data), V = HMAC_K(V); the new K replaces the old in place and
    /// every intermediate is wiped.
    fn rekey(&mut self, byte: u8, data: &[u8]) {
        let mut k = self.mac.mac(&[&self.v, &[byte], data]);
        self.mac = KeyedHmac::new(&k);
        k.zeroize();
        let v = self.mac.mac(&[&self.v]);
        self.v = v;
    }
    fn update(&mut self, data: &[u8]) {
        self.rekey(0, data);
        if !data.is_empty() {
            self.rekey(1, data);
        }
    }
    pub(crate) fn reseed(&mut self, data: &[u8]) {
        self.update(data);
        self.generated = 0;
    }
    /// Whether `RESEED_INTERVAL` requests have been served since the last (re)seed.
    pub(crate) fn reseed_due(&self) -> bool {
        self.generated >= RESEED_INTERVAL
    }
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            self.v = self.mac.mac(&[&self.v]);
            chunk.copy_from_slice(&self.v[..chunk.len()]);
        }
        self.update(&[]);
        self.generated += 1;
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = alloc::vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

impl rand_core::RngCore for Drbg {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.fill(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Drbg {}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    /// The pre-wipeable DRBG, on `hmac::Hmac<Sha256>`: the reference of the output.
    struct Reference {
        k: [u8; 32],
        v: [u8; 32],
    }
    impl Reference {
        fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(&self.k).unwrap();
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().into()
        }
        fn update(&mut self, data: &[u8]) {
            self.k = self.mac(&[&self.v, &[0], data]);
            self.v = self.mac(&[&self.v]);
            if !data.is_empty() {
                self.k = self.mac(&[&self.v, &[1], data]);
                self.v = self.mac(&[&self.v]);
            }
        }
        fn fill(&mut self, out: &mut [u8]) {
            for chunk in out.chunks_mut(32) {
                self.v = self.mac(&[&self.v]);
                chunk.copy_from_slice(&self.v[..chunk.len()]);
            }
            self.update(&[]);
        }
    }

    #[test]
    fn keyed_hmac_is_hmac_sha256() {
        // Message lengths around the padding boundaries (55, 56, 64 bytes past the key block).
        let key = [0x0bu8; 32];
        let msg: Vec<u8> = (0..200u8).collect();
        for len in [
            0usize, 1, 31, 32, 33, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200,
        ] {
            let r = Reference { k: key, v: [0; 32] };
            let (a, b) = msg[..len].split_at(len / 3);
            assert_eq!(
                KeyedHmac::new(&key).mac(&[a, b]),
                r.mac(&[a, b]),
                "length {len}"
            );
        }
    }

    #[test]
    fn output_matches_the_hmac_crate_drbg() {
        for seed in [&b""[..], b"seed", &[7u8; 100]] {
            let mut d = Drbg::new(seed);
            let mut r = Reference {
                k: [0; 32],
                v: [1; 32],
            };
            r.update(seed);
            for n in [1usize, 32, 33, 100] {
                let mut x = alloc::vec![0u8; n];
                let mut y = alloc::vec![0u8; n];
                d.fill(&mut x);
                r.fill(&mut y);
                assert_eq!(x, y);
            }
            d.reseed(b"entropy");
            r.update(b"entropy");
            assert_eq!(d.bytes(64), {
                let mut y = alloc::vec![0u8; 64];
                r.fill(&mut y);
                y
            });
        }
    }

    #[test]
    fn zeroize_clears_k_v_and_the_counter() {
        let mut d = Drbg::new(b"seed");
        d.fill(&mut [0u8; 8]);
        assert_ne!(d.mac.inner, [0; 8]);
        d.zeroize();
        assert_eq!(d.mac.inner, [0; 8]);
        assert_eq!(d.mac.outer, [0; 8]);
        assert_eq!(d.v, [0; 32]);
        assert_eq!(d.generated, 0);
    }

    #[test]
    fn counts_requests_until_reseeded() {
        let mut d = Drbg::new(b"seed");
        let mut b = [0u8; 1];
        for _ in 0..RESEED_INTERVAL - 1 {
            d.fill(&mut b);
        }
        assert!(!d.reseed_due());
        d.fill(&mut b);
        assert!(d.reseed_due());
        d.reseed(b"fresh entropy");
        assert!(!d.reseed_due());
    }

    #[test]
    fn is_deterministic() {
        let a = Drbg::new(b"seed").bytes(100);
        let b = Drbg::new(b"seed").bytes(100);
        let c = Drbg::new(b"seed2").bytes(100);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
