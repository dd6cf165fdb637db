//! Hash algorithms of PCR banks, and fixed-size digests that need no allocator.

use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

/// Largest digest of a supported bank (SHA-512).
pub const MAX_DIGEST: usize = 64;

/// A PCR bank's hash algorithm that Warden can compute itself.
///
/// SM3 banks are not supported: a TPM with an active SM3 bank is reported as an
/// error at measurement time rather than left un-extended, because an
/// un-extended bank would let its PCRs be forged later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HashAlg {
    /// `TPM_ALG_SHA1`
    Sha1,
    /// `TPM_ALG_SHA256`
    Sha256,
    /// `TPM_ALG_SHA384`
    Sha384,
    /// `TPM_ALG_SHA512`
    Sha512,
}

impl HashAlg {
    /// Every supported algorithm, in `TPM_ALG_ID` order.
    pub const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// The `TPM_ALG_ID` value.
    #[must_use]
    pub const fn id(self) -> u16 {
        match self {
            HashAlg::Sha1 => 0x0004,
            HashAlg::Sha256 => 0x000B,
            HashAlg::Sha384 => 0x000C,
            HashAlg::Sha512 => 0x000D,
        }
    }

    /// Looks an algorithm up by its `TPM_ALG_ID`.
    #[must_use]
    pub const fn from_id(id: u16) -> Option<HashAlg> {
        match id {
            0x0004 => Some(HashAlg::Sha1),
            0x000B => Some(HashAlg::Sha256),
            0x000C => Some(HashAlg::Sha384),
            0x000D => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// Digest length in bytes.
    #[must_use]
    pub const fn size(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The name `tpm2-tools` uses (`sha1`, `sha256`, ...).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// Hashes the concatenation of `parts`.
    #[must_use]
    pub fn hash_parts(self, parts: &[&[u8]]) -> Digest {
        fn run<D: sha2::Digest>(alg: HashAlg, parts: &[&[u8]]) -> Digest {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            let out = h.finalize();
            let mut d = Digest::zero(alg);
            d.bytes[..out.len()].copy_from_slice(&out);
            d
        }
        match self {
            HashAlg::Sha1 => run::<Sha1>(self, parts),
            HashAlg::Sha256 => run::<Sha256>(self, parts),
            HashAlg::Sha384 => run::<Sha384>(self, parts),
            HashAlg::Sha512 => run::<Sha512>(self, parts),
        }
    }

    /// Hashes `data`.
    #[must_use]
    pub fn hash(self, data: &[u8]) -> Digest {
        self.hash_parts(&[data])
    }
}

/// A digest of one [`HashAlg`], stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    alg: HashAlg,
    bytes: [u8; MAX_DIGEST],
}

impl Digest {
    /// The all-zero value of `alg` (a PCR after reset).
    #[must_use]
    pub const fn zero(alg: HashAlg) -> Digest {
        Digest {
            alg,
            bytes: [0; MAX_DIGEST],
        }
    }

    /// Wraps raw digest bytes; `None` if the length does not match `alg`.
    #[must_use]
    pub fn from_bytes(alg: HashAlg, raw: &[u8]) -> Option<Digest> {
        if raw.len() != alg.size() {
            return None;
        }
        let mut d = Digest::zero(alg);
        d.bytes[..raw.len()].copy_from_slice(raw);
        Some(d)
    }

    /// The algorithm.
    #[must_use]
    pub const fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The digest bytes (exactly `alg().size()` long).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.alg.size()]
    }

    /// The PCR value after extending a PCR holding `self` with `measurement`:
    /// `H(self || measurement)`.
    ///
    /// # Panics
    ///
    /// Never in practice: callers pair digests of one bank; a mismatch is a bug.
    #[must_use]
    pub fn extended(&self, measurement: &Digest) -> Digest {
        assert_eq!(self.alg, measurement.alg, "extend across banks");
        self.alg
            .hash_parts(&[self.as_bytes(), measurement.as_bytes()])
    }
}

impl core::fmt::Debug for Digest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:", self.alg.name())?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Up to one digest per supported bank: what one measurement extends.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DigestSet {
    digests: [Option<Digest>; 4],
}

impl DigestSet {
    /// Hashes `data` in every bank of `banks`.
    #[must_use]
    pub fn of(banks: Banks, data: &[u8]) -> DigestSet {
        Self::of_parts(banks, &[data])
    }

    /// Hashes the concatenation of `parts` in every bank of `banks`.
    #[must_use]
    pub fn of_parts(banks: Banks, parts: &[&[u8]]) -> DigestSet {
        let mut s = DigestSet::default();
        for alg in banks.iter() {
            s.insert(alg.hash_parts(parts));
        }
        s
    }

    /// Adds (or replaces) the digest of its algorithm.
    pub fn insert(&mut self, d: Digest) {
        self.digests[slot(d.alg)] = Some(d);
    }

    /// The digest of `alg`, if present.
    #[must_use]
    pub fn get(&self, alg: HashAlg) -> Option<&Digest> {
        self.digests[slot(alg)].as_ref()
    }

    /// The digests present, in algorithm order.
    pub fn iter(&self) -> impl Iterator<Item = &Digest> + '_ {
        self.digests.iter().flatten()
    }

    /// How many digests are present.
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True if no digest is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const fn slot(alg: HashAlg) -> usize {
    match alg {
        HashAlg::Sha1 => 0,
        HashAlg::Sha256 => 1,
        HashAlg::Sha384 => 2,
        HashAlg::Sha512 => 3,
    }
}

/// Hashes a stream in several banks at once (for measuring large modules piecewise).
#[derive(Clone)]
pub struct MultiHasher {
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    sha384: Option<Sha384>,
    sha512: Option<Sha512>,
}

impl MultiHasher {
    /// A hasher for every bank in `banks`.
    #[must_use]
    pub fn new(banks: Banks) -> MultiHasher {
        use sha2::Digest as _;
        MultiHasher {
            sha1: banks.contains(HashAlg::Sha1).then(Sha1::new),
            sha256: banks.contains(HashAlg::Sha256).then(Sha256::new),
            sha384: banks.contains(HashAlg::Sha384).then(Sha384::new),
            sha512: banks.contains(HashAlg::Sha512).then(Sha512::new),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha384 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }

    /// The digests of everything fed.
    #[must_use]
    pub fn finish(self) -> DigestSet {
        use sha2::Digest as _;
        let mut out = DigestSet::default();
        let mut put = |alg: HashAlg, bytes: &[u8]| {
            if let Some(d) = Digest::from_bytes(alg, bytes) {
                out.insert(d);
            }
        };
        if let Some(h) = self.sha1 {
            put(HashAlg::Sha1, &h.finalize());
        }
        if let Some(h) = self.sha256 {
            put(HashAlg::Sha256, &h.finalize());
        }
        if let Some(h) = self.sha384 {
            put(HashAlg::Sha384, &h.finalize());
        }
        if let Some(h) = self.sha512 {
            put(HashAlg::Sha512, &h.finalize());
        }
        out
    }
}

impl core::fmt::Debug for MultiHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MultiHasher")
    }
}

/// A set of PCR banks (the TPM's active banks, or those an event log records).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Banks(u8);

impl Banks {
    /// No bank.
    pub const EMPTY: Banks = Banks(0);

    /// The set holding only `alg`.
    #[must_use]
    pub const fn only(alg: HashAlg) -> Banks {
        Banks(1 << slot(alg))
    }

    /// Builds a set from a list.
    #[must_use]
    pub fn from_algs(algs: &[HashAlg]) -> Banks {
        let mut b = Banks::EMPTY;
        for a in algs {
            b.insert(*a);
        }
        b
    }

    /// Adds a bank.
    pub fn insert(&mut self, alg: HashAlg) {
        self.0 |= 1 << slot(alg);
    }

    /// True if `alg` is in the set.
    #[must_use]
    pub const fn contains(self, alg: HashAlg) -> bool {
        self.0 & (1 << slot(alg)) != 0
    }

    /// The banks, in algorithm order.
    pub fn iter(self) -> impl Iterator<Item = HashAlg> {
        HashAlg::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// Number of banks.
    #[must_use]
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// True if there is no bank.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // FIPS 180 "abc" vectors, first bytes: enough to catch a wrong algorithm mapping.
        let cases: [(HashAlg, &[u8]); 4] = [
            (HashAlg::Sha1, &[0xa9, 0x99, 0x3e, 0x36]),
            (HashAlg::Sha256, &[0xba, 0x78, 0x16, 0xbf]),
            (HashAlg::Sha384, &[0xcb, 0x00, 0x75, 0x3f]),
            (HashAlg::Sha512, &[0xdd, 0xaf, 0x35, 0xa1]),
        ];
        for (alg, prefix) in cases {
            let d = alg.hash(b"abc");
            assert_eq!(d.as_bytes().len(), alg.size());
            assert_eq!(&d.as_bytes()[..4], prefix, "{alg:?}");
            assert_eq!(HashAlg::from_id(alg.id()), Some(alg));
        }
    }

    #[test]
    fn extend_is_hash_of_concatenation() {
        let old = Digest::zero(HashAlg::Sha256);
        let m = HashAlg::Sha256.hash(b"x");
        let mut cat = [0u8; 64];
        cat[32..].copy_from_slice(m.as_bytes());
        assert_eq!(old.extended(&m), HashAlg::Sha256.hash(&cat));
    }

    #[test]
    fn multi_hasher_equals_one_shot() {
        let banks = Banks::from_algs(&HashAlg::ALL);
        let mut h = MultiHasher::new(banks);
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), DigestSet::of(banks, b"abc"));
        let only = MultiHasher::new(Banks::from_algs(&[HashAlg::Sha384])).finish();
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn banks_iterate_in_order() {
        let b = Banks::from_algs(&[HashAlg::Sha512, HashAlg::Sha1]);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            [HashAlg::Sha1, HashAlg::Sha512]
        );
        assert_eq!(b.len(), 2);
        assert!(!b.contains(HashAlg::Sha256));
    }
}
