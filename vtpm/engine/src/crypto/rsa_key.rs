//! An RSA private key in CRT form, built once (in constant time) when the key is generated or
//! loaded, and its private operation: base-blinded, CRT over the constant-time Montgomery
//! arithmetic of `prime.rs`, every step a fixed sequence of operations whatever the secrets.
//!
//! What is secret here: p, q, dp, dq, q^-1 mod p and the decrypted value. None of them reaches
//! a division, a branch, a table index or a variable-length loop: q comes from n by an exact
//! division modulo 2^(64N) (Newton inverse of p), dp and dq from e by a small inverse modulo e
//! (Euler, fixed-length ladder) and an exact long division by e (Barrett, `ct_div`), q^-1 mod p
//! by Fermat. The exponentiations run over all 64N exponent bits with a fixed window and the
//! table read in full. The input is blinded by a fresh random r (per prime, r_p = r mod p:
//! the input to each exponentiation is c r^e, unknown to whoever chose c) and the result is
//! written as k bytes with leading zeros, never trimmed (the Marvin attack's variable-length
//! conversion).

use super::prime::{Mont, adc, sub};
use alloc::vec::Vec;
use rand_core::RngCore;
use zeroize::Zeroize;

/// Division by a public d (3 <= d < 2^32) of x < 2^64 without a `div` instruction (whose
/// latency depends on its operands): Barrett with m = floor(2^64 / d), one masked correction.
#[derive(Clone, Copy)]
pub(crate) struct CtDivisor {
    d: u64,
    m: u64,
}

impl CtDivisor {
    pub(crate) fn new(d: u32) -> Self {
        debug_assert!(d >= 3);
        // floor(2^64 / d) = floor((2^64 - 1) / d) as d is no power of two; d is public (a
        // small prime or the public exponent).
        let m = u64::MAX / u64::from(d);
        CtDivisor { d: u64::from(d), m }
    }
    /// With m = floor(2^64 / d) already known (a table of them).
    #[inline(always)]
    pub(crate) fn with_factor(d: u64, m: u64) -> Self {
        CtDivisor { d, m }
    }
    /// (x / d, x mod d).
    #[inline(always)]
    pub(crate) fn div_rem(&self, x: u64) -> (u64, u64) {
        // q0 = floor(x m / 2^64) is floor(x / d) or one less: x m / 2^64 > x / d - 1.
        let q0 = ((u128::from(x) * u128::from(self.m)) >> 64) as u64;
        let r0 = x.wrapping_sub(q0.wrapping_mul(self.d));
        // r0 < 2d < 2^33: r0 >= d exactly when r0 - d does not wrap.
        let ge = 1 ^ (r0.wrapping_sub(self.d) >> 63);
        (q0 + ge, r0 - (super::ct_mask(ge) & self.d))
    }
    /// x mod d.
    #[inline(always)]
    pub(crate) fn rem(&self, x: u64) -> u64 {
        self.div_rem(x).1
    }
    /// a b mod d for a, b < d.
    #[inline(always)]
    fn mul_mod(&self, a: u64, b: u64) -> u64 {
        self.rem(a * b)
    }
    /// x mod d for little-endian limbs x, 32 bits at a time (each step's numerator r 2^32 + w
    /// stays below 2^64 as r < d < 2^32).
    #[inline(always)]
    pub(crate) fn rem_limbs(&self, x: &[u64]) -> u64 {
        let mut r = 0u64;
        for w in x.iter().rev() {
            r = self.rem(r << 32 | w >> 32);
            r = self.rem(r << 32 | (w & 0xFFFF_FFFF));
        }
        r
    }
    /// x / d for little-endian limbs, in place; returns the remainder.
    fn div_limbs(&self, x: &mut [u64]) -> u64 {
        let mut r = 0u64;
        for w in x.iter_mut().rev() {
            let (qh, r1) = self.div_rem(r << 32 | *w >> 32);
            let (ql, r2) = self.div_rem(r1 << 32 | (*w & 0xFFFF_FFFF));
            *w = qh << 32 | ql;
            r = r2;
        }
        r
    }
}

/// a b truncated to out.len() limbs (schoolbook, every limb product computed).
fn mul_trunc(a: &[u64], b: &[u64], out: &mut [u64]) {
    out.fill(0);
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &bj) in b.iter().enumerate() {
            if i + j >= out.len() {
                break; // public bound: the positions, not the values
            }
            let t = u128::from(ai) * u128::from(bj) + u128::from(out[i + j]) + u128::from(carry);
            out[i + j] = t as u64;
            carry = (t >> 64) as u64;
        }
        if i + b.len() < out.len() {
            out[i + b.len()] = carry;
        }
    }
}

/// x^-1 mod 2^(64 len) for odd x (Newton: each step doubles the correct low bits; a fixed
/// number of steps whatever x).
fn inv_mod_pow2(x: &[u64]) -> Vec<u64> {
    let len = x.len();
    let mut inv0 = x[0];
    for _ in 0..6 {
        inv0 = inv0.wrapping_mul(2u64.wrapping_sub(x[0].wrapping_mul(inv0)));
    }
    let mut y = alloc::vec![0u64; len];
    y[0] = inv0;
    let mut t = alloc::vec![0u64; len];
    let mut u = alloc::vec![0u64; len];
    let mut correct = 64;
    while correct < 64 * len {
        // y = y (2 - x y)
        mul_trunc(x, &y, &mut t);
        // 2 - t
        let mut borrow = 0u64;
        for (i, ti) in t.iter_mut().enumerate() {
            let two: u64 = if i == 0 { 2 } else { 0 };
            let (d1, b1) = two.overflowing_sub(*ti);
            let (d2, b2) = d1.overflowing_sub(borrow);
            *ti = d2;
            borrow = u64::from(b1 | b2);
        }
        mul_trunc(&y, &t, &mut u);
        y.copy_from_slice(&u);
        correct *= 2;
    }
    t.zeroize();
    u.zeroize();
    y
}

/// One prime of the key with what its half of the private operation needs.
struct Half<const N: usize> {
    mont: Mont<N>,
    /// R^2 and R^3 mod the prime: into Montgomery form, and the high half of a 2N-limb input.
    r2: [u64; N],
    r3: [u64; N],
    /// The CRT exponent e^-1 mod (prime - 1).
    d: [u64; N],
    /// prime - 2: the Fermat exponent of an inverse.
    m_minus_2: [u64; N],
    /// The blinding pair of the next operation.
    blinding: spin::Mutex<Blinding<N>>,
}

/// A blinding pair (r^e, r^-1) in Montgomery form, squared after each use (the next pair is
/// (r^2)^e, r^-2, as OpenSSL's BN_BLINDING_update) and drawn afresh every `REFRESH` uses: an
/// inverse costs a whole exponentiation, which squaring saves on all but one use in 32.
struct Blinding<const N: usize> {
    r_e: [u64; N],
    r_inv: [u64; N],
    /// Uses left before a fresh r (0: draw one now).
    left: u32,
}

const REFRESH: u32 = 32;

impl<const N: usize> Half<N> {
    /// None when gcd(e, prime - 1) != 1 (decided in constant time; only the verdict shows).
    fn new(prime: [u64; N], e: u32) -> Option<Self> {
        let mont = Mont::new(prime);
        let r2 = mont.r2();
        let r3 = mont.mul(&r2, &r2);
        let mut two = [0u64; N];
        two[0] = 2;
        let m_minus_2 = sub(&prime, &two).0;
        let (d, ok) = crt_exponent(&prime, e);
        let half = Half {
            mont,
            r2,
            r3,
            d,
            m_minus_2,
            blinding: spin::Mutex::new(Blinding {
                r_e: [0; N],
                r_inv: [0; N],
                left: 0,
            }),
        };
        if ok { Some(half) } else { None }
    }
    /// x (2N little-endian limbs) mod the prime, in Montgomery form.
    fn reduce_wide(&self, lo: &[u64; N], hi: &[u64; N]) -> [u64; N] {
        let a = self.mont.mul(lo, &self.r2);
        let b = self.mont.mul(hi, &self.r3);
        let mut s = [0u64; N];
        let mut carry = 0u64;
        for i in 0..N {
            (s[i], carry) = adc(a[i], b[i], carry);
        }
        self.mont.final_sub(&s, carry)
    }
    /// The blinding pair for one operation: a fresh random r every `REFRESH` uses, the
    /// previous pair squared in between.
    fn blinding(&self, e: u32, rng: &mut impl RngCore) -> ([u64; N], [u64; N]) {
        let mut b = self.blinding.lock();
        if b.left == 0 {
            let mut rand = [0u64; N];
            for l in rand.iter_mut() {
                *l = rng.next_u64();
            }
            // r in Montgomery form (r R mod p for a random r < R; r = 0 mod p has probability
            // 2^-511 at worst).
            let r = self.mont.mul(&rand, &self.r2);
            let mut e_limbs = [0u64; N];
            e_limbs[0] = u64::from(e);
            b.r_e = self.mont.pow(&r, &e_limbs, 32);
            b.r_inv = self.mont.pow(&r, &self.m_minus_2, 64 * N);
            b.left = REFRESH;
            rand.zeroize();
        } else {
            b.r_e = self.mont.sqr(&b.r_e);
            b.r_inv = self.mont.sqr(&b.r_inv);
        }
        b.left -= 1;
        (b.r_e, b.r_inv)
    }
    /// c^d mod the prime for c given as 2N limbs, blinded: (c r^e)^d r^-1 (e d = 1 mod p - 1,
    /// so (r^e)^d = r). Returns the result in normal form.
    fn exp(&self, lo: &[u64; N], hi: &[u64; N], e: u32, rng: &mut impl RngCore) -> [u64; N] {
        let (mut r_e, mut r_inv) = self.blinding(e, rng);
        let c = self.reduce_wide(lo, hi);
        let blinded = self.mont.mul(&c, &r_e);
        let x = self.mont.pow(&blinded, &self.d, 64 * N);
        let mut one = [0u64; N];
        one[0] = 1;
        let out = self.mont.mul(&self.mont.mul(&x, &r_inv), &one);
        r_e.zeroize();
        r_inv.zeroize();
        out
    }
}

#[cfg(feature = "ct-probe")]
impl<const N: usize> Half<N> {
    /// Every word of this half that holds a secret or a value derived from one.
    fn secret_words(&mut self) -> Vec<&mut [u64]> {
        let b = self.blinding.get_mut();
        let mut v: Vec<&mut [u64]> = self.mont.secret_words().into_iter().collect();
        v.extend([
            &mut self.r2[..],
            &mut self.r3,
            &mut self.d,
            &mut self.m_minus_2,
            &mut b.r_e,
            &mut b.r_inv,
        ]);
        v
    }
}

impl<const N: usize> Drop for Half<N> {
    fn drop(&mut self) {
        self.mont.m.zeroize();
        self.mont.one.zeroize();
        self.r2.zeroize();
        self.r3.zeroize();
        self.d.zeroize();
        self.m_minus_2.zeroize();
        let b = self.blinding.get_mut();
        b.r_e.zeroize();
        b.r_inv.zeroize();
    }
}

/// Whether e is invertible modulo p - 1 (gcd(e, p - 1) = 1), decided in constant time: the
/// prime search's last test of a candidate (a composite e, unlike a prime one, is not fully
/// excluded by the sieve).
pub(crate) fn e_invertible<const N: usize>(p: &[u64; N], e: u32) -> bool {
    let (mut d, ok) = crt_exponent(p, e);
    d.zeroize();
    ok
}

/// e^-1 mod (p - 1) in constant time, and whether it exists. With a = (p - 1) mod e and
/// t = -a^-1 mod e, 1 + t (p - 1) is a multiple of e and d = (1 + t (p - 1)) / e.
fn crt_exponent<const N: usize>(p: &[u64; N], e: u32) -> ([u64; N], bool) {
    let div = CtDivisor::new(e);
    let mut pm1 = *p;
    pm1[0] &= !1; // p odd: p - 1
    let a = div.rem_limbs(&pm1);
    // a^-1 = a^(phi(e) - 1) mod e (Euler), phi from e's factors (e is public); a ladder over a
    // fixed 32 bits of the exponent, multiplying by a or by 1 through a mask.
    let exp = u64::from(euler_phi(e)) - 1;
    let mut inv = 1u64;
    for i in (0..32).rev() {
        inv = div.mul_mod(inv, inv);
        let m = super::ct_mask((exp >> i) & 1);
        inv = div.mul_mod(inv, (a & m) | (1 & !m));
    }
    // gcd(a, e) = 1 exactly when the Euler inverse is one.
    let ok = div.mul_mod(a, inv) ^ 1;
    let t = div.rem(u64::from(e) - inv);
    // x = 1 + t (p - 1) over N + 1 limbs.
    let mut x = [0u64; 17];
    let x = &mut x[..N + 1];
    let mut carry = 0u64;
    for i in 0..N {
        let v = u128::from(pm1[i]) * u128::from(t) + u128::from(carry);
        x[i] = v as u64;
        carry = (v >> 64) as u64;
    }
    x[N] = carry;
    let mut c = 1u64;
    for l in x.iter_mut() {
        (*l, c) = adc(*l, 0, c);
    }
    let rem = div.div_limbs(x);
    let mut d = [0u64; N];
    d.copy_from_slice(&x[..N]);
    x.zeroize();
    pm1.zeroize();
    // The remainder is zero for every valid key; a nonzero one means e | a (no inverse).
    (d, (ok | rem) == 0)
}

/// Whether d = e^-1 mod lcm(p - 1, q - 1) exceeds 2^(64N) = 2^(nlen/2), as FIPS 186-5 A.1.1
/// requires of a generated key, decided from dp = d mod (p - 1) and dq = d mod (q - 1) alone
/// (the engine never forms d: that takes a gcd and an inverse modulo an even number, variable-
/// time bignum code on secrets) in constant time: only the verdict shows.
///
/// Why two candidates each suffice: p and q have their top bit set, so p - 1 and q - 1 are at
/// least 2^(64N - 1) and a d <= 2^(64N) is dp + j (p - 1) and dq + k (q - 1) with j, k in
/// {0, 1}. Conversely a c <= 2^(64N) congruent to dp and to dq is an inverse of e modulo both,
/// hence modulo their lcm, and d = c mod lcm <= c. So d is small exactly when dp or
/// dp + (p - 1) is at most 2^(64N) and equals dq or dq + (q - 1).
fn d_exceeds_half<const N: usize>(
    p: &[u64; N],
    dp: &[u64; N],
    q: &[u64; N],
    dq: &[u64; N],
) -> bool {
    use subtle::ConstantTimeEq;
    // a + b over N + 1 limbs (N <= 16); limbs above N stay zero.
    fn wide_add<const N: usize>(a: &[u64; N], b: &[u64; N]) -> [u64; 17] {
        let mut out = [0u64; 17];
        let mut carry = 0u64;
        for i in 0..N {
            (out[i], carry) = adc(a[i], b[i], carry);
        }
        out[N] = carry;
        out
    }
    let mut pm1 = *p;
    pm1[0] &= !1; // p odd: p - 1
    let mut qm1 = *q;
    qm1[0] &= !1;
    let zero = [0u64; N];
    let mut cp = [wide_add(dp, &zero), wide_add(dp, &pm1)];
    let mut cq = [wide_add(dq, &zero), wide_add(dq, &qm1)];
    let mut small = subtle::Choice::from(0);
    for c in &cp {
        // c <= 2^(64N): nothing at or above limb N, or exactly limb N = 1 over zeros.
        let low = c[..N].iter().fold(0u64, |a, l| a | l);
        let at_most = c[N].ct_eq(&0) | (c[N].ct_eq(&1) & low.ct_eq(&0));
        let same = c[..].ct_eq(&cq[0][..]) | c[..].ct_eq(&cq[1][..]);
        small |= at_most & same;
    }
    pm1.zeroize();
    qm1.zeroize();
    cp.as_flattened_mut().zeroize();
    cq.as_flattened_mut().zeroize();
    !bool::from(small)
}

/// Euler's totient of the public exponent (trial division: public work).
fn euler_phi(e: u32) -> u32 {
    let (mut n, mut phi) = (e, e);
    let mut f = 2u32;
    while u64::from(f) * u64::from(f) <= u64::from(n) {
        if n.is_multiple_of(f) {
            while n.is_multiple_of(f) {
                n /= f;
            }
            phi -= phi / f;
        }
        f += 1;
    }
    if n > 1 {
        phi -= phi / n;
    }
    phi
}

/// A CRT key of two N-limb primes.
struct Crt<const N: usize> {
    e: u32,
    /// The modulus, big-endian, 16N bytes (public).
    n: Vec<u8>,
    p: Half<N>,
    q: Half<N>,
    /// q^-1 mod p in Montgomery form (mod p).
    q_inv: [u64; N],
}

impl<const N: usize> Crt<N> {
    fn new(p: [u64; N], q: [u64; N], e: u32) -> Option<Self> {
        let hp = Half::new(p, e)?;
        let hq = Half::new(q, e)?;
        // q mod p in Montgomery form (q < R), then its Fermat inverse stays in that form.
        let qm = hp.mont.mul(&q, &hp.r2);
        let q_inv = hp.mont.pow(&qm, &hp.m_minus_2, 64 * N);
        let mut nl = [[0u64; N]; 2];
        mul_trunc(&p, &q, nl.as_flattened_mut());
        let mut n = Vec::with_capacity(16 * N);
        for l in nl.as_flattened().iter().rev() {
            n.extend_from_slice(&l.to_be_bytes());
        }
        Some(Crt {
            e,
            n,
            p: hp,
            q: hq,
            q_inv,
        })
    }

    /// From n and one prime, with q = n / p exact (p^-1 mod 2^(64N)) and p q = n checked.
    fn from_n_p(n: &[u8], p: &[u8], e: u32) -> Option<Self> {
        if n.len() != 16 * N || p.len() > 8 * N || n[n.len() - 1] & 1 == 0 || n[0] >> 7 == 0 {
            return None;
        }
        let mut nl = [[0u64; N]; 2];
        be_to_limbs(n, nl.as_flattened_mut());
        let mut pl = [0u64; N];
        be_to_limbs(p, &mut pl);
        let mut p_inv = inv_mod_pow2(&pl);
        let mut q = [0u64; N];
        mul_trunc(&nl[0], &p_inv, &mut q);
        p_inv.zeroize();
        let mut check = [[0u64; N]; 2];
        mul_trunc(&pl, &q, check.as_flattened_mut());
        let diff = check
            .as_flattened()
            .iter()
            .zip(nl.as_flattened())
            .fold(0u64, |acc, (a, b)| acc | (a ^ b));
        check.as_flattened_mut().zeroize();
        // A p that does not divide n (or an even p) gives p q != n: no such key.
        let key = if diff == 0 { Crt::new(pl, q, e) } else { None };
        pl.zeroize();
        q.zeroize();
        key
    }

    /// input^d mod n, `input` big-endian below n (checked by the caller); k bytes out.
    fn private(&self, input: &[u8], rng: &mut impl RngCore) -> Vec<u8> {
        let mut c = [[0u64; N]; 2];
        be_to_limbs(input, c.as_flattened_mut());
        let mp = self.p.exp(&c[0], &c[1], self.e, rng);
        let mq = self.q.exp(&c[0], &c[1], self.e, rng);
        // Garner: m = mq + q ((mp - mq) q^-1 mod p). mq mod p by a Montgomery round trip (q
        // may exceed p).
        let pm = &self.p.mont;
        let mut one = [0u64; N];
        one[0] = 1;
        let mq_p = pm.mul(&pm.mul(&mq, &self.p.r2), &one);
        let (d, borrow) = sub(&mp, &mq_p);
        // d + p when the subtraction borrowed.
        let mut fixed = [0u64; N];
        let mut carry = 0u64;
        let mask = super::ct_mask(borrow);
        for i in 0..N {
            (fixed[i], carry) = adc(d[i], pm.m[i] & mask, carry);
        }
        let h = pm.mul(&fixed, &self.q_inv);
        let mut m = [[0u64; N]; 2];
        mul_trunc(&self.q.mont.m, &h, m.as_flattened_mut());
        let mut carry = 0u64;
        for (i, l) in m.as_flattened_mut().iter_mut().enumerate() {
            (*l, carry) = adc(*l, if i < N { mq[i] } else { 0 }, carry);
        }
        let mut out = Vec::with_capacity(16 * N);
        for l in m.as_flattened().iter().rev() {
            out.extend_from_slice(&l.to_be_bytes());
        }
        c.as_flattened_mut().zeroize();
        m.as_flattened_mut().zeroize();
        out
    }

    fn p_bytes(&self) -> Vec<u8> {
        self.p
            .mont
            .m
            .iter()
            .rev()
            .flat_map(|l| l.to_be_bytes())
            .collect()
    }

    /// d > 2^(nlen/2) (see `d_exceeds_half`).
    fn d_exceeds_half(&self) -> bool {
        d_exceeds_half(&self.p.mont.m, &self.p.d, &self.q.mont.m, &self.q.d)
    }
}

#[cfg(feature = "ct-probe")]
impl<const N: usize> Crt<N> {
    fn secret_words(&mut self) -> Vec<&mut [u64]> {
        let mut v = self.p.secret_words();
        v.extend(self.q.secret_words());
        v.push(&mut self.q_inv);
        v
    }
}

impl<const N: usize> Drop for Crt<N> {
    fn drop(&mut self) {
        self.q_inv.zeroize();
    }
}

/// Big-endian bytes into little-endian limbs (out is zeroed first; the bytes must fit).
fn be_to_limbs(bytes: &[u8], out: &mut [u64]) {
    out.fill(0);
    for (i, b) in bytes.iter().rev().enumerate() {
        out[i / 8] |= u64::from(*b) << (8 * (i % 8));
    }
}

/// The key sizes the engine supports. Sized for the larger: a key lives once, in an `Arc`.
#[allow(clippy::large_enum_variant)]
enum Inner {
    R1024(Crt<8>),
    R2048(Crt<16>),
}

/// An RSA private key ready for private operations. No `Debug` or `Clone` of the secrets:
/// the key is shared (`Arc`) by the object copies made per command, and wiped on drop.
pub(crate) struct RsaKey(Inner);

/// Both primes' halves and q^-1 mod p are wiped by their own `Drop` (`Half`, `Crt`).
impl zeroize::ZeroizeOnDrop for RsaKey {}

impl core::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RsaKey({} bits)", 8 * self.size())
    }
}

impl RsaKey {
    /// From two primes of equal size (key generation), little-endian limbs.
    pub(crate) fn from_primes<const N: usize>(p: &[u64; N], q: &[u64; N], e: u32) -> Option<Self> {
        let mut p8 = [0u64; 8];
        let mut q8 = [0u64; 8];
        let mut p16 = [0u64; 16];
        let mut q16 = [0u64; 16];
        let key = match N {
            8 => {
                p8.copy_from_slice(p);
                q8.copy_from_slice(q);
                Crt::new(p8, q8, e).map(Inner::R1024)
            }
            16 => {
                p16.copy_from_slice(p);
                q16.copy_from_slice(q);
                Crt::new(p16, q16, e).map(Inner::R2048)
            }
            _ => None,
        };
        p8.zeroize();
        q8.zeroize();
        p16.zeroize();
        q16.zeroize();
        key.map(RsaKey)
    }
    /// Every word that holds a secret (p, q, the CRT exponents, q^-1, the Montgomery
    /// constants, the blinding pair): what the memcheck taint test marks undefined.
    #[cfg(feature = "ct-probe")]
    pub(crate) fn secret_words(&mut self) -> Vec<&mut [u64]> {
        match &mut self.0 {
            Inner::R1024(c) => c.secret_words(),
            Inner::R2048(c) => c.secret_words(),
        }
    }
    /// From the public modulus and the prime the sensitive area holds (Load, LoadExternal,
    /// Import, a restored object): None when p does not divide n or e is not invertible.
    pub(crate) fn from_n_p(n: &[u8], p: &[u8], e: u32) -> Option<Self> {
        if e < 3 || e.is_multiple_of(2) {
            return None;
        }
        match n.len() {
            128 => Crt::<8>::from_n_p(n, p, e).map(|k| RsaKey(Inner::R1024(k))),
            256 => Crt::<16>::from_n_p(n, p, e).map(|k| RsaKey(Inner::R2048(k))),
            _ => None,
        }
    }
    /// Whether the private exponent d = e^-1 mod lcm(p - 1, q - 1) exceeds 2^(nlen/2) (FIPS
    /// 186-5 A.1.1; key generation draws new primes otherwise), decided in constant time.
    pub(crate) fn d_exceeds_half(&self) -> bool {
        match &self.0 {
            Inner::R1024(k) => k.d_exceeds_half(),
            Inner::R2048(k) => k.d_exceeds_half(),
        }
    }
    /// Modulus size in bytes (k).
    pub(crate) fn size(&self) -> usize {
        match &self.0 {
            Inner::R1024(_) => 128,
            Inner::R2048(_) => 256,
        }
    }
    /// The modulus, big-endian, k bytes.
    pub(crate) fn n(&self) -> &[u8] {
        match &self.0 {
            Inner::R1024(k) => &k.n,
            Inner::R2048(k) => &k.n,
        }
    }
    /// The first prime, big-endian (the sensitive area's secret).
    pub(crate) fn p_bytes(&self) -> Vec<u8> {
        match &self.0 {
            Inner::R1024(k) => k.p_bytes(),
            Inner::R2048(k) => k.p_bytes(),
        }
    }
    /// The RSA private operation on `input` (big-endian, at most k bytes): k bytes out. None
    /// when the input is not below n (a public property of a public value).
    pub(crate) fn private(&self, input: &[u8], rng: &mut impl RngCore) -> Option<Vec<u8>> {
        let k = self.size();
        let skip = input.len().saturating_sub(k);
        if input[..skip].iter().any(|b| *b != 0) {
            return None;
        }
        let input = &input[skip..];
        // Compare with n as big-endian numbers of k bytes (public values).
        let mut padded = alloc::vec![0u8; k - input.len()];
        padded.extend_from_slice(input);
        if padded.as_slice() >= self.n() {
            return None;
        }
        Some(match &self.0 {
            Inner::R1024(key) => key.private(&padded, rng),
            Inner::R2048(key) => key.private(&padded, rng),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Drbg;
    use rsa::BigUint;
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};

    #[test]
    fn ct_divisor_matches_division() {
        let mut rng = Drbg::new(b"div");
        for d in [3u32, 5, 7, 65537, 262139, 0xFFFF_FFFB, 0x8000_0001] {
            let div = CtDivisor::new(d);
            for x in [
                0u64,
                1,
                u64::from(d) - 1,
                u64::from(d),
                u64::MAX,
                u64::MAX - 1,
            ]
            .into_iter()
            .chain((0..200).map(|_| rng.next_u64()))
            {
                assert_eq!(
                    div.div_rem(x),
                    (x / u64::from(d), x % u64::from(d)),
                    "{x} / {d}"
                );
            }
        }
    }

    /// The CRT parts against num-bigint-dig's (variable-time, test only) values, and the
    /// private operation against plain modpow with d.
    /// A reference key (num-bigint-dig's variable-time arithmetic, test only) from primes of
    /// the engine's own search.
    fn reference(bits: usize, e: u32, rng: &mut Drbg) -> rsa::RsaPrivateKey {
        let (p, q) = match bits {
            1024 => (
                limbs_be(&super::super::prime::random_prime::<8>(e, 7, rng).unwrap()),
                limbs_be(&super::super::prime::random_prime::<8>(e, 7, rng).unwrap()),
            ),
            _ => (
                limbs_be(&super::super::prime::random_prime::<16>(e, 5, rng).unwrap()),
                limbs_be(&super::super::prime::random_prime::<16>(e, 5, rng).unwrap()),
            ),
        };
        rsa::RsaPrivateKey::from_p_q(
            BigUint::from_bytes_be(&p),
            BigUint::from_bytes_be(&q),
            BigUint::from(e),
        )
        .unwrap()
    }

    fn limbs_be(l: &[u64]) -> Vec<u8> {
        l.iter().rev().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// The CRT key and the private operation against plain modpow with d, for both sizes and
    /// small and large exponents; the first prime comes back as the sensitive area's secret.
    #[test]
    fn crt_key_matches_reference_arithmetic() {
        let mut rng = Drbg::new(b"crt");
        for (bits, e) in [
            (1024usize, 65537u32),
            (2048, 65537),
            (1024, 3),
            (1024, 0xFFFF_FFFB),
        ] {
            let reference = reference(bits, e, &mut rng);
            let n = reference.n().to_bytes_be();
            let p = reference.primes()[0].to_bytes_be();
            let key = RsaKey::from_n_p(&n, &p, e).expect("valid key");
            assert_eq!(key.n(), n.as_slice());
            assert_eq!(key.p_bytes(), p);
            // Past a refresh of the blinding pair (every 32 operations) on the 1024-bit keys.
            for _ in 0..if bits == 1024 { 40 } else { 3 } {
                let mut c = alloc::vec![0u8; bits / 8];
                rng.fill_bytes(&mut c);
                c[0] &= 0x3F;
                let want = BigUint::from_bytes_be(&c).modpow(reference.d(), reference.n());
                let got = key.private(&c, &mut rng).unwrap();
                assert_eq!(got.len(), bits / 8);
                assert_eq!(BigUint::from_bytes_be(&got), want, "{bits} bits, e = {e}");
            }
            // Inputs at or above n are refused; a zero input gives zero.
            assert!(key.private(&n, &mut rng).is_none());
            assert!(key.private(&[0], &mut rng).unwrap().iter().all(|b| *b == 0));
            // q as the stored prime works as well.
            let q = reference.primes()[1].to_bytes_be();
            let by_q = RsaKey::from_n_p(&n, &q, e).expect("valid with q");
            let c = [5u8; 16];
            assert_eq!(
                by_q.private(&c, &mut rng),
                key.private(&c, &mut rng),
                "same operation from either prime"
            );
        }
    }

    /// BigUint into N little-endian limbs (it must fit).
    fn limbs<const N: usize>(x: &BigUint) -> [u64; N] {
        let mut l = [0u64; N];
        be_to_limbs(&x.to_bytes_be(), &mut l);
        l
    }

    /// The d > 2^(nlen/2) verdict, taken from d's residues modulo p - 1 and q - 1 as the key
    /// holds them, against d itself: values below, at and just above the bound, around p - 1,
    /// well above it, and random ones on either side; for 1024- and 2048-bit keys.
    fn check_d_bound<const N: usize>(rounds: usize, rng: &mut Drbg) {
        use super::super::prime::random_prime;
        let p = random_prime::<N>(65537, rounds, rng).unwrap();
        let q = random_prime::<N>(65537, rounds, rng).unwrap();
        let one = BigUint::from(1u32);
        let pm1 = BigUint::from_bytes_be(&limbs_be(&p)) - &one;
        let qm1 = BigUint::from_bytes_be(&limbs_be(&q)) - &one;
        let half = &one << (64 * N);
        let mut cases = alloc::vec![
            (one.clone(), false),
            (BigUint::from(65537u32), false),
            (&pm1 - &one, false),
            (&pm1 + &one, false),
            (&qm1 + &qm1 - &one, &qm1 + &qm1 - &one > half),
            (&half - &one, false),
            (half.clone(), false),
            (&half + &one, true),
            (&half + &pm1, true),
            (&half * BigUint::from(3u32), true),
            ((&one << (128 * N - 20)) + &one, true),
        ];
        for _ in 0..8 {
            let mut b = alloc::vec![0u8; 8 * N];
            rng.fill_bytes(&mut b);
            let r = BigUint::from_bytes_be(&b);
            cases.push((r.clone(), false));
            cases.push((&half + &r, true));
        }
        for (d, exceeds) in cases {
            let dp = limbs::<N>(&(&d % &pm1));
            let dq = limbs::<N>(&(&d % &qm1));
            assert_eq!(
                d_exceeds_half(&p, &dp, &q, &dq),
                exceeds,
                "{} bits, d = {d}",
                128 * N
            );
        }
    }

    #[test]
    fn d_bound_matches_d() {
        let mut rng = Drbg::new(b"d-bound");
        check_d_bound::<8>(7, &mut rng);
        check_d_bound::<16>(5, &mut rng);
        // A generated key's own dp and dq: d is about 2^(nlen - 1) / gcd(p - 1, q - 1).
        let key = super::super::prime::rsa_keygen(1024, 65537, &mut rng).unwrap();
        assert!(key.d_exceeds_half());
    }

    #[test]
    fn bad_pairs_are_refused() {
        let mut rng = Drbg::new(b"bad");
        let reference = reference(1024, 65537, &mut rng);
        let n = reference.n().to_bytes_be();
        let p = reference.primes()[0].to_bytes_be();
        let mut wrong = p.clone();
        *wrong.last_mut().unwrap() ^= 2;
        assert!(
            RsaKey::from_n_p(&n, &wrong, 65537).is_none(),
            "p not dividing n"
        );
        assert!(RsaKey::from_n_p(&n, &[1], 65537).is_none(), "p = 1");
        assert!(RsaKey::from_n_p(&n, &p, 65536).is_none(), "even e");
        assert!(
            RsaKey::from_n_p(&n[1..], &p, 65537).is_none(),
            "short modulus"
        );
    }
}
