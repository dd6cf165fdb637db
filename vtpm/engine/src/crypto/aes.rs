//! AES-128/192/256 block encryption and CFB-128 mode, written for soft-float targets.
//!
//! The RustCrypto `aes` crate selects AES-NI on every x86_64 target and does not build for
//! `x86_64-unknown-none` (soft float) without a global `--cfg aes_force_soft`. CFB only needs
//! the forward cipher, so this small implementation computes the S-box arithmetically
//! (inversion in GF(2^8) followed by the affine map) instead of indexing a table with secret
//! bytes: no secret-dependent memory access or branch.

use alloc::vec::Vec;

fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0u8;
    for _ in 0..8 {
        r ^= a & 0u8.wrapping_sub(b & 1);
        let hi = a >> 7;
        a = (a << 1) ^ (0x1b & 0u8.wrapping_sub(hi));
        b >>= 1;
    }
    r
}

fn sbox(x: u8) -> u8 {
    // x^254 = x^-1 in GF(2^8) (and 0 for 0): seven squarings, six multiplications.
    let mut r = x;
    for _ in 0..6 {
        r = gf_mul(gf_mul(r, r), x);
    }
    let b = gf_mul(r, r);
    b ^ b.rotate_left(1) ^ b.rotate_left(2) ^ b.rotate_left(3) ^ b.rotate_left(4) ^ 0x63
}

/// An expanded AES encryption key.
#[derive(Clone)]
pub(crate) struct Aes {
    round_keys: Vec<[u8; 16]>,
}

impl core::fmt::Debug for Aes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Aes(..)")
    }
}

impl Aes {
    /// `key` must be 16, 24 or 32 bytes; returns `None` otherwise.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        let nk = match key.len() {
            16 | 24 | 32 => key.len() / 4,
            _ => return None,
        };
        let rounds = nk + 6;
        let mut w: Vec<[u8; 4]> = key.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        let mut rcon = 1u8;
        for i in nk..4 * (rounds + 1) {
            let mut t = w[i - 1];
            if i % nk == 0 {
                t = [sbox(t[1]) ^ rcon, sbox(t[2]), sbox(t[3]), sbox(t[0])];
                rcon = gf_mul(rcon, 2);
            } else if nk > 6 && i % nk == 4 {
                t = [sbox(t[0]), sbox(t[1]), sbox(t[2]), sbox(t[3])];
            }
            let p = w[i - nk];
            w.push([p[0] ^ t[0], p[1] ^ t[1], p[2] ^ t[2], p[3] ^ t[3]]);
        }
        let round_keys = w
            .chunks(4)
            .map(|c| {
                let mut k = [0u8; 16];
                for (j, word) in c.iter().enumerate() {
                    k[4 * j..4 * j + 4].copy_from_slice(word);
                }
                k
            })
            .collect();
        Some(Aes { round_keys })
    }

    pub(crate) fn encrypt_block(&self, block: &mut [u8; 16]) {
        let n = self.round_keys.len() - 1;
        xor16(block, &self.round_keys[0]);
        for round in 1..=n {
            for b in block.iter_mut() {
                *b = sbox(*b);
            }
            // ShiftRows: the state is column-major, row r shifts left by r.
            let s = *block;
            for c in 0..4 {
                for r in 0..4 {
                    block[4 * c + r] = s[4 * ((c + r) % 4) + r];
                }
            }
            if round != n {
                for c in 0..4 {
                    let col = [
                        block[4 * c],
                        block[4 * c + 1],
                        block[4 * c + 2],
                        block[4 * c + 3],
                    ];
                    for r in 0..4 {
                        block[4 * c + r] = gf_mul(col[r], 2)
                            ^ gf_mul(col[(r + 1) % 4], 3)
                            ^ col[(r + 2) % 4]
                            ^ col[(r + 3) % 4];
                    }
                }
            }
            xor16(block, &self.round_keys[round]);
        }
    }

    /// CFB-128 encryption in place (TPM parameter encryption and credential/duplication blobs).
    pub(crate) fn cfb_encrypt(&self, iv: &[u8; 16], data: &mut [u8]) {
        let mut fb = *iv;
        for chunk in data.chunks_mut(16) {
            self.encrypt_block(&mut fb);
            for (d, k) in chunk.iter_mut().zip(fb.iter()) {
                *d ^= k;
            }
            fb[..chunk.len()].copy_from_slice(chunk);
        }
    }

    /// CFB-128 decryption in place.
    pub(crate) fn cfb_decrypt(&self, iv: &[u8; 16], data: &mut [u8]) {
        let mut fb = *iv;
        for chunk in data.chunks_mut(16) {
            let mut ks = fb;
            self.encrypt_block(&mut ks);
            fb[..chunk.len()].copy_from_slice(chunk);
            for (d, k) in chunk.iter_mut().zip(ks.iter()) {
                *d ^= k;
            }
        }
    }
}

fn xor16(a: &mut [u8; 16], b: &[u8; 16]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn fips197_vectors() {
        let pt = hex("00112233445566778899aabbccddeeff");
        let cases = [
            (
                "000102030405060708090a0b0c0d0e0f",
                "69c4e0d86a7b0430d8cdb78070b4c55a",
            ),
            (
                "000102030405060708090a0b0c0d0e0f1011121314151617",
                "dda97ca4864cdfe06eaf70a0ec0d7191",
            ),
            (
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "8ea2b7ca516745bfeafc49904b496089",
            ),
        ];
        for (key, ct) in cases {
            let aes = Aes::new(&hex(key)).unwrap();
            let mut b = [0u8; 16];
            b.copy_from_slice(&pt);
            aes.encrypt_block(&mut b);
            assert_eq!(b.to_vec(), hex(ct), "key {key}");
        }
    }

    #[test]
    fn sp800_38a_cfb128_aes128() {
        let aes = Aes::new(&hex("2b7e151628aed2a6abf7158809cf4f3c")).unwrap();
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&hex("000102030405060708090a0b0c0d0e0f"));
        let pt = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let mut data = pt.clone();
        aes.cfb_encrypt(&iv, &mut data);
        assert_eq!(
            data,
            hex("3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b")
        );
        aes.cfb_decrypt(&iv, &mut data);
        assert_eq!(data, pt);
        // A partial last block round-trips too.
        let mut short = pt[..21].to_vec();
        aes.cfb_encrypt(&iv, &mut short);
        assert_eq!(
            short[..],
            hex("3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b")[..21]
        );
    }
}
