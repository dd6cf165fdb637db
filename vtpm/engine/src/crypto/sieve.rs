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
const WINDOW: usize = 1 << 14;

/// Candidates sieved at a time. Marking costs a step per prime per word, and the search
/// mostly ends early (a 1024-bit prime is one in ~355 odd numbers, a 512-bit one in ~177):
/// 512 candidates take the least time on RSA-2048 and RSA-1024 key generation.
const SUB: usize = 512;
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

/// Barrett factors floor(2^64 / p) of the small primes (for `CtDivisor`), at compile time.
static SMALL_PRIME_BARRETT: [u64; SMALL_PRIME_COUNT] = {
    let mut m = [0u64; SMALL_PRIME_COUNT];
    let (mut p, mut i) = (1u64, 0);
    while i < SMALL_PRIME_COUNT {
        p += 2 * SMALL_PRIME_HALF_GAPS[i] as u64;
        m[i] = u64::MAX / p;
        i += 1;
    }
    m
};

/// A group of consecutive small primes whose product Q fits in 64 bits (four below 2^16,
/// three above): one multi-limb reduction per group, then a one-word one per prime.
#[derive(Clone, Copy)]
struct Group {
    q: u64,
    /// -Q^-1 mod 2^64 (Montgomery reduction by Q).
    q_inv: u64,
    /// 2^(64 (n + 1)) mod Q for bases of n = 8 and n = 16 limbs.
    k: [u64; 2],
    /// How many primes the group has.
    len: u8,
}

/// The group that starts at small prime `i`, whose predecessor is `p` (1 for the first):
/// (its product Q, its prime count, the next group's start, its last prime). Groups take
/// primes while the product fits in 64 bits, four at most.
const fn next_group(i: usize, p: u64) -> (u64, u8, usize, u64) {
    let (mut q, mut len, mut i, mut p) = (1u64, 0u8, i, p);
    while i < SMALL_PRIME_COUNT && len < 4 {
        let next = p + 2 * SMALL_PRIME_HALF_GAPS[i] as u64;
        match q.checked_mul(next) {
            Some(q2) => {
                (q, p) = (q2, next);
                len += 1;
                i += 1;
            }
            None => break,
        }
    }
    (q, len, i, p)
}

/// Number of groups.
const GROUP_COUNT: usize = {
    let (mut count, mut i, mut p) = (0, 0, 1u64);
    while i < SMALL_PRIME_COUNT {
        let (_, _, next, last) = next_group(i, p);
        (count, i, p) = (count + 1, next, last);
    }
    count
};

/// The groups, at compile time (the same grouping as the plain sieve had).
static GROUPS: [Group; GROUP_COUNT] = {
    /// 2^(64 words) mod Q by word shifts.
    const fn pow(q: u64, words: usize) -> u64 {
        let mut x = 1u128;
        let mut w = 0;
        while w < words {
            x = (x << 64) % q as u128;
            w += 1;
        }
        x as u64
    }
    let empty = Group {
        q: 1,
        q_inv: 0,
        k: [0, 0],
        len: 0,
    };
    let mut out = [empty; GROUP_COUNT];
    let (mut g, mut i, mut p) = (0, 0, 1u64);
    while g < GROUP_COUNT {
        let (q, len, next, last) = next_group(i, p);
        let mut inv = q;
        let mut j = 0;
        while j < 6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(q.wrapping_mul(inv)));
            j += 1;
        }
        out[g] = Group {
            q,
            q_inv: inv.wrapping_neg(),
            k: [pow(q, 9), pow(q, 17)],
            len,
        };
        (g, i, p) = (g + 1, next, last);
    }
    out
};

impl Group {
    /// T R^-1 mod Q (R = 2^64) for T < Q R, by Montgomery reduction: multiplications and
    /// a masked subtraction.
    #[inline(always)]
    fn redc(&self, t: u128) -> u64 {
        let m = (t as u64).wrapping_mul(self.q_inv);
        let mq = u128::from(m) * u128::from(self.q);
        // The low words of t and m Q add up to 0 or 2^64: a carry exactly when t's is nonzero.
        let lo = t as u64;
        let carry = (lo | lo.wrapping_neg()) >> 63;
        let r = (t >> 64) + (mq >> 64) + u128::from(carry);
        // r < 2Q: subtract Q when r >= Q.
        let d = r.wrapping_sub(u128::from(self.q));
        let keep = u128::from(super::ct_mask((d >> 127) as u64));
        let keep = keep | keep << 64;
        ((d & !keep) | (r & keep)) as u64
    }
    /// x mod Q for little-endian limbs x (8 or 16): low to high, y = (y + x_i) R^-1, which
    /// leaves x R^-n; one more reduction by R^(n+1) mod Q gives x.
    #[inline(always)]
    fn residue(&self, x: &[u64]) -> u64 {
        let mut y = 0u64;
        for &l in x {
            y = self.redc(u128::from(y) + u128::from(l));
        }
        let k = self.k[usize::from(x.len() > 8)];
        self.redc(u128::from(y) * u128::from(k))
    }
}

/// All ones when a < b (both below 2^63), without a branch.
#[inline(always)]
fn lt_mask(a: u64, b: u64) -> u64 {
    super::ct_mask(a.wrapping_sub(b) >> 63)
}

/// The first k >= 0 with base + 2k = target (mod p), from r = (base - target) mod p:
/// k = -r / 2 mod p without a division (2 is invertible as p is odd).
#[inline(always)]
fn first_offset(p: u64, r: u64) -> u64 {
    // t = p - r in [1, p]; halved (p added first when t is odd); p folded to 0.
    let t = p - r;
    // (t & 1) * p compiled to a branch on the parity of t (the timing test found it).
    let k = (t + (p & super::ct_mask(t & 1))) >> 1;
    k - (p & !lt_mask(k, p))
}

/// Marks the k = off (mod p) of consecutive words of candidates (`off` relative to the first
/// word, in [0, p)) and returns the offset relative to the word after them. Every word is
/// written, whatever `off`.
#[inline(always)]
fn mark(words: &mut [u64; SUB_WORDS], p: u64, off: u64) -> u64 {
    // (-64) mod p: off's step from one word to the next; the bits 0, p, 2p, ... of a word.
    let (step, pattern) = if p > 64 {
        (p - 64, 1)
    } else {
        (
            (p - 64 % p) % p,
            (0..64).step_by(p as usize).fold(0u64, |a, j| a | 1 << j),
        )
    };
    let mut off = off;
    if p > SUB as u64 {
        // At most one multiple in the sub-window: in word off / 64 when off < SUB. One mask
        // picks the word, as a bit of `sel` that each word shifts into place (arithmetic, no
        // selection per word); the next offset is off - SUB, plus p when the multiple was here.
        let here = lt_mask(off, SUB as u64);
        let sel = (1u64 << ((off >> 6) & 63)) & here;
        for (i, w) in words.iter_mut().enumerate() {
            *w |= ((sel >> i) & 1) << (off & 63);
        }
        return off.wrapping_sub(SUB as u64).wrapping_add(p & here);
    }
    if p > 64 {
        // One mask per word serves both: off < 64 puts the multiple in this word, and then
        // the next one is p - 64 + off candidates past the next word's start (else off - 64).
        for w in words.iter_mut() {
            let here = lt_mask(off, 64);
            *w |= (1 << (off & 63)) & here;
            off = off.wrapping_sub(64).wrapping_add(p & here);
        }
    } else {
        for w in words.iter_mut() {
            // off < p < 64: the pattern's multiples from off on fall in this word.
            *w |= pattern << off;
            let next = off + step;
            off = next - (p & !lt_mask(next, p));
        }
    }
    off
}

/// The sieve of one base: the offsets of every small prime's class and of 1 mod e.
pub(crate) struct Sieve {
    /// Per small prime, its class's offset from the current sub-window's first candidate.
    offsets: Vec<u32>,
    e: u64,
    e_offset: u64,
    /// Composite flags of the current sub-window.
    words: [u64; SUB_WORDS],
    /// Index of the current sub-window's first candidate.
    first: usize,
}

impl Sieve {
    /// The classes for `base` (8 or 16 little-endian limbs, odd) and the public exponent e.
    pub(crate) fn new(base: &[u64], e: u32) -> Sieve {
        let mut offsets = Vec::with_capacity(SMALL_PRIME_COUNT);
        let mut primes = SMALL_PRIME_HALF_GAPS.iter().zip(SMALL_PRIME_BARRETT.iter());
        let mut p = 1u64;
        for g in GROUPS.iter() {
            let rq = g.residue(base);
            for (&gap, &m) in primes.by_ref().take(usize::from(g.len)) {
                p += 2 * u64::from(gap);
                let r = CtDivisor::with_factor(p, m).rem(rq);
                offsets.push(first_offset(p, r) as u32);
            }
        }
        // Also strike p = 1 mod e, where gcd(p - 1, e) = e (e prime): base + 2k = 1 mod e.
        let e64 = u64::from(e);
        let r = CtDivisor::new(e).rem_limbs(base) + e64 - 1;
        let r = r - (e64 & !lt_mask(r, e64));
        let mut s = Sieve {
            offsets,
            e: e64,
            e_offset: first_offset(e64, r),
            words: [0; SUB_WORDS],
            first: 0,
        };
        s.fill();
        s
    }
    /// Marks the current sub-window and moves every offset past it.
    fn fill(&mut self) {
        self.words = [0; SUB_WORDS];
        let mut p = 1u64;
        for (off, &gap) in self.offsets.iter_mut().zip(SMALL_PRIME_HALF_GAPS.iter()) {
            p += 2 * u64::from(gap);
            *off = mark(&mut self.words, p, u64::from(*off)) as u32;
        }
        self.e_offset = mark(&mut self.words, self.e, self.e_offset);
    }
    /// The first surviving k >= `from` in the window (None when the window is done), sieving
    /// further sub-windows as needed.
    pub(crate) fn next(&mut self, from: usize) -> Option<usize> {
        let mut from = from;
        loop {
            if from >= WINDOW {
                return None;
            }
            while from >= self.first + SUB {
                self.first += SUB;
                self.fill();
            }
            // The first survivor's position is revealed by the Miller-Rabin rounds run on it
            // (the reference's search reveals as much): a declared site of the taint test.
            // declassify: the survivor
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
            let here = super::ct_mask((live | live.wrapping_neg()) >> 63);
            at = (at & !here) | ((lo + u64::from(live.trailing_zeros())) & here);
            found |= here;
        }
        // declassify: the survivor
        if found != 0 { Some(at as usize) } else { None }
    }
}

impl Drop for Sieve {
    fn drop(&mut self) {
        self.offsets.zeroize();
        self.e_offset.zeroize();
        self.words.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Sieve {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The survivors of the constant-time sieve are those of plain trial division, in order.
    #[test]
    fn survivors_match_trial_division() {
        let mut rng = crate::crypto::Drbg::new(b"sieve");
        for (e, limbs) in [
            (65537u32, 8),
            (3, 8),
            (0xFFFF_FFFB, 8),
            (65537, 16),
            (7, 16),
        ] {
            let mut base = alloc::vec![0u64; limbs];
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
            assert_eq!(got, want, "e = {e}, {limbs} limbs");
            assert!(got.len() > 10);
        }
    }
}
