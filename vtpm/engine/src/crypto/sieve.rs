//! The small-prime sieve of the RSA prime search, in constant time: which odd candidates
//! base + 2k of a window have no prime factor below 2^18 (and are not 1 mod e), computed
//! without a division, a branch or a memory address that depends on the secret base.
//!
//! The residues of the base come from `CtDivisor` (Barrett, no `div`); each prime's multiples
//! are marked into every word of a sub-window with a shifted pattern masked by "the multiple
//! falls in this word", so the same words are written in the same order whatever the base;
//! the next survivor is found by folding over every word. The survivors, and their order,
//! are those of the plain sieve (the window of 2^14 candidates is sieved a sub-window at a
//! time, which gives the same set), so the keys of a given seed do not change.

use super::rsa_key::CtDivisor;
use alloc::vec::Vec;
use zeroize::Zeroize;

/// Bound of the sieve: odd primes below it. A larger bound leaves fewer candidates for
/// Miller-Rabin (the survivors fall as 1/ln(bound)) but costs a residue per prime per window;
/// measured on RSA-2048, 2^16 needs ~15 % more tests and 2^19 or 2^20 are no faster.
const SIEVE_BOUND: usize = 1 << 18;

/// Odd candidates base + 2k per base (after them, a new base is drawn).
pub(super) const WINDOW: usize = 1 << 14;

/// Candidates sieved at a time: the prime search rarely needs more than the first (a 1024-bit
/// prime is one in ~355 odd numbers), and marking costs a step per prime per word.
const SUB: usize = 1024;
const SUB_WORDS: usize = SUB / 64;

/// Composite flags of the odd numbers below `SIEVE_BOUND` (index i stands for 2i + 1).
const fn odd_composites() -> [bool; SIEVE_BOUND / 2] {
    let mut composite = [false; SIEVE_BOUND / 2];
    composite[0] = true; // 1
    let mut i = 3;
    while i * i < SIEVE_BOUND {
        if !composite[i / 2] {
            let mut j = i * i;
            while j < SIEVE_BOUND {
                composite[j / 2] = true;
                j += 2 * i;
            }
        }
        i += 2;
    }
    composite
}

/// Number of odd primes below `SIEVE_BOUND`.
const SMALL_PRIME_COUNT: usize = {
    let composite = odd_composites();
    let mut n = 0;
    let mut i = 0;
    while i < SIEVE_BOUND / 2 {
        if !composite[i] {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The odd primes below `SIEVE_BOUND` as half gaps, computed at compile time: the k-th prime
/// is 1 + 2 (g_0 + ... + g_k). A byte each (the largest gap below 2^18 is 86) instead of four.
static SMALL_PRIME_HALF_GAPS: [u8; SMALL_PRIME_COUNT] = {
    let composite = odd_composites();
    let mut gaps = [0u8; SMALL_PRIME_COUNT];
    let (mut n, mut last, mut i) = (0, 0, 1);
    while i < SIEVE_BOUND / 2 {
        if !composite[i] {
            assert!(i - last <= 255, "prime gap too large for a byte");
            gaps[n] = (i - last) as u8;
            n += 1;
            last = i;
        }
        i += 1;
    }
    gaps
};

/// All ones when a < b (both below 2^63), without a branch.
#[inline(always)]
fn lt_mask(a: u64, b: u64) -> u64 {
    0u64.wrapping_sub(a.wrapping_sub(b) >> 63)
}

/// One residue class to strike out: the k = off (mod p) of the current word.
struct Class {
    p: u64,
    /// (-64) mod p: off's step from one word to the next.
    step: u64,
    /// Bits 0, p, 2p, ... of a word (just bit 0 when p >= 64).
    pattern: u64,
    /// The first k >= the current word's first candidate with p | base + 2k, minus that
    /// candidate's index (so in [0, p)).
    off: u64,
}

impl Class {
    /// The class of the k with base + 2k = target (mod p), from r = (base - target) mod p:
    /// k = -r / 2 mod p without a division (2 is invertible as p is odd).
    fn new(p: u64, r: u64) -> Class {
        // t = p - r in [1, p]; halved (p added first when t is odd); p folded to 0.
        let t = p - r;
        let k = (t + (t & 1) * p) >> 1;
        let off = k - (p & !lt_mask(k, p));
        let pattern = if p >= 64 {
            1
        } else {
            (0..64).step_by(p as usize).fold(0u64, |a, j| a | 1 << j)
        };
        Class {
            p,
            step: if p > 64 { p - 64 } else { (p - 64 % p) % p },
            pattern,
            off,
        }
    }
    /// Marks the class in `words` (consecutive words of candidates) and moves on past them.
    #[inline(always)]
    fn mark(&mut self, words: &mut [u64; SUB_WORDS]) {
        let (p, step, pattern) = (self.p, self.step, self.pattern);
        let mut off = self.off;
        for w in words.iter_mut() {
            // off < 64: the multiple (and, below 64, the pattern's others) fall in this word.
            *w |= (pattern << (off & 63)) & lt_mask(off, 64);
            let next = off + step;
            off = next - (p & !lt_mask(next, p));
        }
        self.off = off;
    }
}

/// The sieve of one base: the classes of every small prime and of 1 mod e.
pub(super) struct Sieve {
    classes: Vec<Class>,
    /// Composite flags of the current sub-window.
    words: [u64; SUB_WORDS],
    /// Index of the current sub-window's first candidate.
    first: usize,
}

impl Sieve {
    /// The classes for `base` (little-endian limbs, odd) and the public exponent e.
    pub(super) fn new(base: &[u64], e: u32) -> Sieve {
        let mut classes = Vec::with_capacity(SMALL_PRIME_COUNT + 1);
        let mut p = 1u64;
        for &g in SMALL_PRIME_HALF_GAPS.iter() {
            p += 2 * u64::from(g);
            let r = CtDivisor::new(p as u32).rem_limbs(base);
            classes.push(Class::new(p, r));
        }
        // Also strike p = 1 mod e, where gcd(p - 1, e) = e (e prime): base + 2k = 1 mod e.
        let e64 = u64::from(e);
        let r = CtDivisor::new(e).rem_limbs(base) + e64 - 1;
        let r = r - (e64 & !lt_mask(r, e64));
        classes.push(Class::new(e64, r));
        let mut s = Sieve {
            classes,
            words: [0; SUB_WORDS],
            first: 0,
        };
        s.fill();
        s
    }
    fn fill(&mut self) {
        self.words = [0; SUB_WORDS];
        for c in self.classes.iter_mut() {
            c.mark(&mut self.words);
        }
    }
    /// The first surviving k >= `from` in the window (None when the window is done), sieving
    /// further sub-windows as needed.
    pub(super) fn next(&mut self, from: usize) -> Option<usize> {
        let mut from = from;
        loop {
            if from >= WINDOW {
                return None;
            }
            while from >= self.first + SUB {
                self.first += SUB;
                self.fill();
            }
            if let Some(j) = self.first_survivor(from - self.first) {
                return Some(self.first + j);
            }
            from = self.first + SUB;
        }
    }
    /// The first clear bit at or after `from` in the sub-window, by a fold over every word.
    fn first_survivor(&self, from: usize) -> Option<usize> {
        let from = from as u64;
        let mut found = 0u64;
        let mut at = 0u64;
        for (w, bits) in self.words.iter().enumerate().rev() {
            let lo = 64 * w as u64;
            // Bits at or after `from` within this word: all when from <= lo, none when
            // from >= lo + 64, else those above from - lo.
            let shift = from.wrapping_sub(lo) & 63;
            let partial = (!0u64 << shift) & lt_mask(from, lo + 64);
            let all = lt_mask(from, lo + 1);
            let live = !bits & (all | partial);
            // All ones when live != 0.
            let here = ((live | live.wrapping_neg()) >> 63).wrapping_neg();
            at = (at & !here) | ((lo + u64::from(live.trailing_zeros())) & here);
            found |= here;
        }
        if found != 0 { Some(at as usize) } else { None }
    }
}

impl Drop for Sieve {
    fn drop(&mut self) {
        for c in self.classes.iter_mut() {
            c.off.zeroize();
        }
        self.words.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The survivors of the constant-time sieve are those of plain trial division, in order.
    #[test]
    fn survivors_match_trial_division() {
        let mut rng = crate::crypto::Drbg::new(b"sieve");
        for e in [65537u32, 3, 0xFFFF_FFFB] {
            let mut base = [0u64; 8];
            for l in base.iter_mut() {
                *l = rand_core::RngCore::next_u64(&mut rng);
            }
            base[0] |= 1;
            let mut s = Sieve::new(&base, e);
            let mut got = Vec::new();
            let mut k = 0;
            while let Some(j) = s.next(k) {
                got.push(j);
                k = j + 1;
                if j > 3 * SUB {
                    break;
                }
            }
            // Trial division of base + 2k by every small prime and the 1 mod e test.
            let rem = |m: u64, k: usize| {
                let mut r = 0u128;
                for l in base.iter().rev() {
                    r = ((r << 64) | u128::from(*l)) % u128::from(m);
                }
                ((r + 2 * k as u128) % u128::from(m)) as u64
            };
            let mut want = Vec::new();
            for k in 0..=*got.last().unwrap() {
                let mut p = 1u64;
                let mut composite = rem(u64::from(e), k) == 1 % u64::from(e);
                for &g in SMALL_PRIME_HALF_GAPS.iter() {
                    p += 2 * u64::from(g);
                    if rem(p, k) == 0 {
                        composite = true;
                        break;
                    }
                }
                if !composite {
                    want.push(k);
                }
            }
            assert_eq!(got, want, "e = {e}");
            assert!(got.len() > 10);
        }
    }
}
