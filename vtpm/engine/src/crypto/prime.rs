//! RSA prime generation: a small-prime sieve and Miller-Rabin over a Montgomery multiplication
//! written for fixed-size limbs.
//!
//! The `rsa` crate's generator (num-bigint-dig) takes over a second for RSA-2048 on this
//! machine, several times slower than libtpms; key generation is what CreatePrimary and Create
//! spend their time on. The multiplication here is branch-free (CIOS with a masked final
//! subtraction) and exponent bits select through masks, so the candidate that becomes the
//! secret prime is not exposed through branches.

use alloc::vec;
use alloc::vec::Vec;
use rand_core::RngCore;
use rsa::BigUint;

/// Largest modulus, in limbs (RSA-2048 primes are 16 limbs; Miller-Rabin tests in the unit
/// tests go to 16 limbs as well).
const MAX_LIMBS: usize = 18;

/// Montgomery arithmetic modulo an odd number of `n` 64-bit limbs (little-endian).
struct Mont {
    m: Vec<u64>,
    m_inv: u64,
    /// R mod m (Montgomery form of 1).
    one: Vec<u64>,
    /// R^2 mod m.
    r2: Vec<u64>,
}

fn to_limbs(x: &BigUint, n: usize) -> Vec<u64> {
    let bytes = x.to_bytes_le();
    let mut l = vec![0u64; n];
    for (i, b) in bytes.iter().enumerate().take(n * 8) {
        l[i / 8] |= u64::from(*b) << (8 * (i % 8));
    }
    l
}

#[cfg(test)]
fn from_limbs(l: &[u64]) -> BigUint {
    let mut bytes = Vec::with_capacity(l.len() * 8);
    for w in l {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    BigUint::from_bytes_le(&bytes)
}

/// a - b over limbs; returns the borrow.
fn sub_in_place(a: &mut [u64], b: &[u64]) -> u64 {
    let mut borrow = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let (d1, b1) = x.overflowing_sub(*y);
        let (d2, b2) = d1.overflowing_sub(borrow);
        *x = d2;
        borrow = u64::from(b1 | b2);
    }
    borrow
}

impl Mont {
    fn new(m: &BigUint, n: usize) -> Mont {
        let ml = to_limbs(m, n);
        // -m^-1 mod 2^64 by Newton iteration (m odd).
        let mut inv = 1u64;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(ml[0].wrapping_mul(inv)));
        }
        let r = BigUint::from(1u32) << (64 * n);
        let one = to_limbs(&(&r % m), n);
        let r2 = to_limbs(&((&r * &r) % m), n);
        Mont {
            m: ml,
            m_inv: inv.wrapping_neg(),
            one,
            r2,
        }
    }

    /// a * b * R^-1 mod m (CIOS), inputs and output in [0, m).
    fn mul(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut r = vec![0u64; self.m.len()];
        self.mul_into(a, b, &mut r);
        r
    }

    /// As `mul`, writing into `out` (no allocation: this is the hot loop of key generation).
    fn mul_into(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        let n = self.m.len();
        let mut t = [0u64; MAX_LIMBS + 2];
        for &bi in b.iter().take(n) {
            let mut c: u64 = 0;
            for j in 0..n {
                let s = u128::from(t[j]) + u128::from(a[j]) * u128::from(bi) + u128::from(c);
                t[j] = s as u64;
                c = (s >> 64) as u64;
            }
            let s = u128::from(t[n]) + u128::from(c);
            t[n] = s as u64;
            t[n + 1] = (s >> 64) as u64;
            let mm = t[0].wrapping_mul(self.m_inv);
            let s = u128::from(t[0]) + u128::from(mm) * u128::from(self.m[0]);
            let mut c = (s >> 64) as u64;
            for j in 1..n {
                let s = u128::from(t[j]) + u128::from(mm) * u128::from(self.m[j]) + u128::from(c);
                t[j - 1] = s as u64;
                c = (s >> 64) as u64;
            }
            let s = u128::from(t[n]) + u128::from(c);
            t[n - 1] = s as u64;
            t[n] = t[n + 1] + ((s >> 64) as u64);
        }
        // Conditional final subtraction, selected by mask.
        let mut d = [0u64; MAX_LIMBS];
        d[..n].copy_from_slice(&t[..n]);
        let borrow = sub_in_place(&mut d[..n], &self.m);
        // Keep d when t >= m: either the top limb carried or the subtraction did not borrow.
        let take_d = 0u64.wrapping_sub(u64::from(t[n] != 0) | (1 ^ borrow));
        for i in 0..n {
            out[i] = (d[i] & take_d) | (t[i] & !take_d);
        }
    }

    /// 2a mod m into `out`.
    fn double_into(&self, a: &[u64], out: &mut [u64]) {
        let n = self.m.len();
        let mut carry = 0u64;
        for i in 0..n {
            out[i] = (a[i] << 1) | carry;
            carry = a[i] >> 63;
        }
        let mut d = [0u64; MAX_LIMBS];
        d[..n].copy_from_slice(&out[..n]);
        let borrow = sub_in_place(&mut d[..n], &self.m);
        let take_d = 0u64.wrapping_sub(carry | (1 ^ borrow));
        for i in 0..n {
            out[i] = (d[i] & take_d) | (out[i] & !take_d);
        }
    }

    /// base^exp in Montgomery form; `base` is in Montgomery form, or None for 2 (doublings).
    fn pow(&self, base: Option<&[u64]>, exp: &[u64], bits: usize) -> Vec<u64> {
        let n = self.m.len();
        let mut x = [0u64; MAX_LIMBS];
        x[..n].copy_from_slice(&self.one);
        let mut sq = [0u64; MAX_LIMBS];
        let mut y = [0u64; MAX_LIMBS];
        for i in (0..bits).rev() {
            self.mul_into(&x[..n], &x[..n], &mut sq[..n]);
            match base {
                Some(b) => self.mul_into(&sq[..n], b, &mut y[..n]),
                None => self.double_into(&sq[..n], &mut y[..n]),
            }
            let bit = 0u64.wrapping_sub((exp[i / 64] >> (i % 64)) & 1);
            for j in 0..n {
                x[j] = (y[j] & bit) | (sq[j] & !bit);
            }
        }
        x[..n].to_vec()
    }
}

/// Miller-Rabin with base 2 and then `rounds` random bases.
pub(crate) fn probably_prime(c: &BigUint, rounds: usize, rng: &mut impl RngCore) -> bool {
    let n = c.bits().div_ceil(64);
    if n > MAX_LIMBS {
        // Only RSA primes (at most 1024 bits) are tested here.
        return false;
    }
    if n == 0 || c.to_bytes_le()[0] & 1 == 0 {
        return c == &BigUint::from(2u32);
    }
    if c < &BigUint::from(4u32) {
        return c > &BigUint::from(1u32);
    }
    let mont = Mont::new(c, n);
    let c_minus_1 = c - BigUint::from(1u32);
    let mut s = 0usize;
    let mut d = c_minus_1.clone();
    while d.to_bytes_le()[0] & 1 == 0 {
        d >>= 1;
        s += 1;
    }
    let dl = to_limbs(&d, n);
    let dbits = d.bits();
    let mut minus_one = mont.m.clone();
    sub_in_place(&mut minus_one, &mont.one);
    let witness_passes = |x0: Vec<u64>| {
        let mut x = x0;
        if x == mont.one || x == minus_one {
            return true;
        }
        for _ in 1..s {
            x = mont.mul(&x, &x);
            if x == minus_one {
                return true;
            }
        }
        false
    };
    if !witness_passes(mont.pow(None, &dl, dbits)) {
        return false;
    }
    let mut buf = vec![0u8; n * 8];
    for _ in 0..rounds {
        rng.fill_bytes(&mut buf);
        let a = BigUint::from_bytes_le(&buf) % &c_minus_1;
        if a < BigUint::from(2u32) {
            continue;
        }
        let am = mont.mul(&to_limbs(&a, n), &mont.r2);
        if !witness_passes(mont.pow(Some(&am), &dl, dbits)) {
            return false;
        }
    }
    true
}

/// Odd primes below 2^16 for the sieve.
fn small_primes() -> Vec<u32> {
    const LIMIT: usize = 1 << 16;
    let mut composite = vec![false; LIMIT];
    let mut out = Vec::new();
    for i in 2..LIMIT {
        if !composite[i] {
            if i > 2 {
                out.push(i as u32);
            }
            let mut j = i * i;
            while j < LIMIT {
                composite[j] = true;
                j += i;
            }
        }
    }
    out
}

/// A random prime of exactly `bits` bits (top two bits set) with gcd(p-1, e) = 1.
pub(crate) fn random_prime(bits: usize, e: u32, rng: &mut impl RngCore) -> BigUint {
    let primes = small_primes();
    let mut buf = vec![0u8; bits / 8];
    loop {
        rng.fill_bytes(&mut buf);
        buf[0] |= 0xC0;
        let last = buf.len() - 1;
        buf[last] |= 1;
        let base = BigUint::from_bytes_be(&buf);
        let limbs = to_limbs(&base, bits.div_ceil(64));
        let residue = |p: u64| {
            let mut r: u64 = 0;
            for w in limbs.iter().rev() {
                r = ((u128::from(r) << 64 | u128::from(*w)) % u128::from(p)) as u64;
            }
            r
        };
        // Sieve a window of odd candidates base + 2k at once: for each small prime p, the k
        // with p | base + 2k form one residue class mod p (2 is invertible mod odd p).
        const WINDOW: usize = 1 << 15;
        let mut composite = vec![false; WINDOW];
        let mut mark = |p: u64, r: u64| {
            let inv2 = p.div_ceil(2);
            let mut k = ((p - r % p) % p * inv2 % p) as usize;
            while k < WINDOW {
                composite[k] = true;
                k += p as usize;
            }
        };
        for &p in &primes {
            mark(u64::from(p), residue(u64::from(p)));
        }
        // Also skip p = 1 mod e, where gcd(p - 1, e) = e (e prime): same trick with r' = e_res - 1.
        let e64 = u64::from(e);
        mark(e64, (residue(e64) + e64 - 1) % e64);
        for (k, _) in composite.iter().enumerate().filter(|(_, c)| !**c) {
            let cand = &base + BigUint::from(2 * k as u64);
            if cand.bits() != bits {
                break;
            }
            if probably_prime(&cand, 5, rng) {
                return cand;
            }
        }
    }
}

/// An RSA key of `bits` bits with public exponent `e`, from `rng`.
pub(crate) fn rsa_keygen(
    bits: usize,
    e: u32,
    rng: &mut impl RngCore,
) -> Option<rsa::RsaPrivateKey> {
    loop {
        let p = random_prime(bits / 2, e, rng);
        let q = random_prime(bits / 2, e, rng);
        if p == q {
            continue;
        }
        let key = rsa::RsaPrivateKey::from_p_q(p, q, BigUint::from(e)).ok()?;
        if rsa::traits::PublicKeyParts::n(&key).bits() == bits {
            return Some(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Drbg;

    #[test]
    fn montgomery_pow_matches_bigint() {
        let mut rng = Drbg::new(b"mont");
        for limbs in [1usize, 2, 8, 16] {
            let mut buf = vec![0u8; limbs * 8];
            rng.fill_bytes(&mut buf);
            buf[0] |= 1;
            buf[limbs * 8 - 1] |= 0x80;
            let m = BigUint::from_bytes_le(&buf);
            rng.fill_bytes(&mut buf);
            let a = BigUint::from_bytes_le(&buf) % &m;
            rng.fill_bytes(&mut buf);
            let e = BigUint::from_bytes_le(&buf);
            let mont = Mont::new(&m, limbs);
            let am = mont.mul(&to_limbs(&a, limbs), &mont.r2);
            let got = mont.mul(
                &mont.pow(Some(&am), &to_limbs(&e, limbs), e.bits()),
                &to_limbs(&BigUint::from(1u32), limbs),
            );
            assert_eq!(from_limbs(&got), a.modpow(&e, &m), "{limbs} limbs");
            let got2 = mont.mul(
                &mont.pow(None, &to_limbs(&e, limbs), e.bits()),
                &to_limbs(&BigUint::from(1u32), limbs),
            );
            assert_eq!(
                from_limbs(&got2),
                BigUint::from(2u32).modpow(&e, &m),
                "{limbs} limbs, base 2"
            );
        }
    }

    #[test]
    fn miller_rabin_known_values() {
        let mut rng = Drbg::new(b"mr");
        let m127 = (BigUint::from(1u32) << 127) - BigUint::from(1u32);
        let m521 = (BigUint::from(1u32) << 521) - BigUint::from(1u32);
        let cases = [
            (BigUint::from(3u32), true),
            (BigUint::from(65537u32), true),
            (BigUint::from(561u32), false),
            (BigUint::from(2047u32), false), // strong pseudoprime to base 2
            (BigUint::from(3_215_031_751u64), false),
            (m127.clone(), true),
            (m521.clone(), true),
            (&m127 * &m521, false),
        ];
        for (n, want) in cases {
            assert_eq!(probably_prime(&n, 5, &mut rng), want, "{n}");
        }
    }

    #[test]
    fn keygen_is_valid_and_deterministic() {
        let a = rsa_keygen(1024, 65537, &mut Drbg::new(b"seed")).unwrap();
        let b = rsa_keygen(1024, 65537, &mut Drbg::new(b"seed")).unwrap();
        assert_eq!(a, b);
        a.validate().unwrap();
        for p in rsa::traits::PrivateKeyParts::primes(&a) {
            assert!(
                probably_prime(p, 30, &mut Drbg::new(b"check")),
                "factor is not prime"
            );
            assert_eq!(p.bits(), 512);
        }
        assert_eq!(rsa::traits::PublicKeyParts::n(&a).bits(), 1024);
    }
}
