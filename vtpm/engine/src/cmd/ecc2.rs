//! Two-phase ECC key exchange (Part 3 §14.7, §19.3): EC_Ephemeral makes an ephemeral key
//! Q = [r]G whose r the TPM re-derives later from a one-time counter, and ZGen_2Phase uses it
//! with a static key: Z1 = [dsA]QsB and Z2 = [r]QeB (TPM_ALG_ECDH, C(2e, 2s)).
//!
//! r = KDFa(commitNonce, "ECDAA Commit", "", commitCounter), as the reference code derives it;
//! the commit array marks which counters are still usable, and ZGen_2Phase spends its counter.
//! Only TPM_ALG_ECDH is implemented (ECMQV and SM2 answer TPM_RC_SCHEME), on NIST P-256.
//!
//! TPM2_Commit (Part 3 §19.2) is the first phase of an ECDAA signature with the same counters:
//! K = [ds]M, L = [r]M (M = (H_nameAlg(s2) mod p, y2)) and E = [r]P1 (or [r]G); TPM2_Sign with
//! the ECDAA scheme and that counter then answers (nonceK, s = r + T·ds mod n),
//! T = H(nonceK ‖ digest), and spends the counter. Attestation commands do not sign with
//! ECDAA here (TPM_RC_SCHEME).

use crate::Platform;
use crate::crypto::{HashAlg, alg, kdfa};
use crate::engine::{Ctx, Out, Tpm};
use crate::marshal::{Reader, Writer};
use crate::object::{self, Params, attr};
use crate::rc::{At, Rc};
use alloc::vec::Vec;
use p256::elliptic_curve::PrimeField;
use p256::elliptic_curve::sec1::ToEncodedPoint;

/// Bits in the commit array: the low bits of a counter index it.
const COMMIT_BITS: u64 = 128;
const COMMIT_INDEX_MASK: u16 = (COMMIT_BITS - 1) as u16;
/// TPM_ECC_NIST_P256, TPM_RC_CURVE.
const NIST_P256: u16 = 0x0003;
const RC_CURVE: Rc = Rc(0x0A6);

/// The ephemeral-key state (the reference code's state-reset data: a TPM Reset renews it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommitState {
    pub(crate) nonce: Vec<u8>,
    pub(crate) counter: u64,
    pub(crate) array: u128,
}

impl CommitState {
    pub(crate) fn new(nonce: Vec<u8>) -> Self {
        CommitState {
            nonce,
            counter: 0,
            array: 0,
        }
    }
    pub(crate) fn write(&self, w: &mut Writer) {
        w.tpm2b(&self.nonce)
            .u64(self.counter)
            .bytes(&self.array.to_be_bytes());
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Rc> {
        let nonce = r.tpm2b(64)?.to_vec();
        let counter = r.u64()?;
        let mut a = [0u8; 16];
        a.copy_from_slice(r.bytes(16)?);
        Ok(CommitState {
            nonce,
            counter,
            array: u128::from_be_bytes(a),
        })
    }

    /// The r of commit counter value `count` (CryptGenerateR): below the group order, not 0.
    fn r(&self, count: u64) -> Option<p256::NonZeroScalar> {
        for attempt in 0u32..64 {
            let ctx = [&count.to_be_bytes()[..], &attempt.to_be_bytes()].concat();
            let bytes = kdfa(
                HashAlg::Sha256,
                &self.nonce,
                b"ECDAA Commit",
                b"",
                &ctx,
                256,
            );
            let repr = p256::FieldBytes::clone_from_slice(&bytes);
            let s: Option<p256::Scalar> = p256::Scalar::from_repr(repr).into();
            if let Some(nz) = s.and_then(|s| Option::from(p256::NonZeroScalar::new(s))) {
                return Some(nz);
            }
        }
        None
    }

    /// The counter value a commitment was made with, from its low 16 bits, if still unspent.
    fn committed(&self, c: u16) -> Option<u64> {
        if self.array & (1u128 << (c & COMMIT_INDEX_MASK)) == 0 {
            return None;
        }
        let mut current = self.counter;
        if (c & COMMIT_INDEX_MASK) >= (current as u16 & COMMIT_INDEX_MASK) {
            current = current.wrapping_sub(u64::from(COMMIT_INDEX_MASK) + 1);
        }
        if current as u16 & !COMMIT_INDEX_MASK != c & !COMMIT_INDEX_MASK {
            return None;
        }
        Some((current & !0xFFFF) | u64::from(c))
    }
}

fn write_point(w: &mut Writer, p: &p256::AffinePoint) {
    let ep = p.to_encoded_point(false);
    let mut inner = Writer::new();
    inner
        .tpm2b(ep.x().map(|v| v.as_slice()).unwrap_or(&[]))
        .tpm2b(ep.y().map(|v| v.as_slice()).unwrap_or(&[]));
    w.tpm2b(&inner.into_vec());
}

/// A TPM2B_ECC_POINT: unmarshalling errors at once, the on-curve check (TPM_RC_ECC_POINT)
/// for later, in the reference code's order.
fn read_point(r: &mut Reader<'_>) -> Result<Result<p256::PublicKey, Rc>, Rc> {
    let mut pr = r.sized()?;
    // Running out inside the declared size is a size mismatch (TPM_RC_SIZE), as libtpms
    // reports it.
    let short = |e: Rc| if e == Rc::INSUFFICIENT { Rc::SIZE } else { e };
    let x = pr.tpm2b(66).map_err(short)?.to_vec();
    let y = pr.tpm2b(66).map_err(short)?.to_vec();
    pr.finish()?;
    Ok(object::ecc_point(&x, &y))
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_ecc2(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        match c.cc {
            crate::cc::code::EC_EPHEMERAL => self.ec_ephemeral(c),
            crate::cc::code::ZGEN_2PHASE => self.zgen_2phase(c),
            crate::cc::code::COMMIT => self.commit(c),
            _ => Err(Rc::COMMAND_CODE),
        }
    }

    fn ec_ephemeral(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let curve = c.params.u16().p(1)?;
        c.params.finish().p(1)?;
        if curve != NIST_P256 {
            return Err(RC_CURVE.param(1));
        }
        let cs = &mut self.p.commit;
        let r = cs.r(cs.counter).ok_or(Rc::NO_RESULT)?;
        let q = (p256::ProjectivePoint::GENERATOR * *r).to_affine();
        // CryptCommit: hand out this counter value and mark it usable.
        let count = cs.counter as u16;
        cs.array |= 1u128 << (count & COMMIT_INDEX_MASK);
        cs.counter = cs.counter.wrapping_add(1);
        self.persist();
        let mut o = Out::new();
        write_point(&mut o.params, &q);
        o.params.u16(count);
        Ok(o)
    }

    fn zgen_2phase(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let qs_b = read_point(&mut c.params).p(1)?;
        let qe_b = read_point(&mut c.params).p(2)?;
        let in_scheme = c.params.u16().p(3)?;
        if !matches!(in_scheme, alg::ECDH | 0x001B | 0x001D) {
            return Err(Rc::SCHEME.param(3));
        }
        let counter = c.params.u16().p(4)?;
        c.params.finish().p(4)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        let Params::Ecc { scheme, .. } = &key.public.params else {
            return Err(Rc::KEY.handle(1));
        };
        if key.public.has(attr::RESTRICTED) || !key.public.has(attr::DECRYPT) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        let scheme = if scheme.alg == alg::NULL {
            in_scheme
        } else if scheme.alg != in_scheme {
            return Err(Rc::SCHEME.param(3));
        } else {
            scheme.alg
        };
        let qs_b = qs_b.map_err(|_| Rc::ECC_POINT).p(1)?;
        let qe_b = qe_b.map_err(|_| Rc::ECC_POINT).p(2)?;
        let count = self.p.commit.committed(counter).ok_or(Rc::VALUE.param(4))?;
        let r = self.p.commit.r(count).ok_or(Rc::VALUE.param(4))?;
        if scheme != alg::ECDH {
            return Err(Rc::SCHEME.param(3));
        }
        let secret = &key.sens.as_ref().ok_or(Rc::KEY.handle(1))?.secret;
        let ds = p256::SecretKey::from_slice(secret).map_err(|_| Rc::KEY.handle(1))?;
        let z1 = (qs_b.to_projective() * *ds.to_nonzero_scalar()).to_affine();
        let z2 = (qe_b.to_projective() * *r).to_affine();
        // CryptEndCommit: the counter is spent.
        self.p.commit.array &= !(1u128 << (counter & COMMIT_INDEX_MASK));
        self.persist();
        let mut o = Out::new();
        write_point(&mut o.params, &z1);
        write_point(&mut o.params, &z2);
        Ok(o)
    }

    /// TPM2_Commit, with the reference code's checks in its order.
    fn commit(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let p1 = read_optional_point(&mut c.params).p(1)?;
        let s2 = c.params.tpm2b(128).p(2)?.to_vec();
        let y2 = c.params.tpm2b(66).p(3)?.to_vec();
        c.params.finish().p(3)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        let Params::Ecc { scheme, curve, .. } = &key.public.params else {
            return Err(Rc::KEY.handle(1));
        };
        // Only a key with an anonymous (ECDAA) signing scheme.
        if scheme.alg != alg::ECDAA {
            return Err(Rc::SCHEME.handle(1));
        }
        if s2.is_empty() != y2.is_empty() {
            return Err(Rc::SIZE.param(3));
        }
        if *curve != NIST_P256 {
            return Err(Rc::KEY.handle(1));
        }
        let count = self.p.commit.counter;
        let r = self.p.commit.r(count).ok_or(Rc::NO_RESULT)?;
        let m = if s2.is_empty() {
            None
        } else {
            let h = key.public.hash()?.digest(&[&s2]);
            let x2 = mod_p(&h).ok_or(Rc::HASH.handle(1))?;
            let m = object::ecc_point(&x2, &y2).map_err(|_| Rc::ECC_POINT.param(2))?;
            if key.sens.is_none() {
                return Err(Rc::KEY.handle(1));
            }
            Some(m)
        };
        let p1 = match p1 {
            Some((x, y)) => Some(object::ecc_point(&x, &y).map_err(|_| Rc::ECC_POINT.param(1))?),
            None => None,
        };
        let mut o = Out::new();
        match m {
            Some(m) => {
                let secret = &key.sens.as_ref().ok_or(Rc::KEY.handle(1))?.secret;
                let ds = p256::SecretKey::from_slice(secret).map_err(|_| Rc::KEY.handle(1))?;
                let k = (m.to_projective() * *ds.to_nonzero_scalar()).to_affine();
                let l = (m.to_projective() * *r).to_affine();
                write_point(&mut o.params, &k);
                write_point(&mut o.params, &l);
            }
            None => {
                write_empty_point(&mut o.params);
                write_empty_point(&mut o.params);
            }
        }
        // E = [r]P1; without M or P1, E = [r]G; with M alone, E is empty.
        match (p1, m.is_some()) {
            (Some(b), _) => write_point(&mut o.params, &(b.to_projective() * *r).to_affine()),
            (None, false) => write_point(
                &mut o.params,
                &(p256::ProjectivePoint::GENERATOR * *r).to_affine(),
            ),
            (None, true) => write_empty_point(&mut o.params),
        }
        // CryptCommit: hand out this counter value and mark it usable.
        let cs = &mut self.p.commit;
        cs.array |= 1u128 << (count as u16 & COMMIT_INDEX_MASK);
        cs.counter = cs.counter.wrapping_add(1);
        self.persist();
        o.params.u16(count as u16);
        Ok(o)
    }

    /// An ECDAA signature of `digest` with the commitment `scheme.count` (the reference's
    /// SignEcdaa): a counter that is not outstanding answers TPM_RC_VALUE; the counter is
    /// spent only when the signature is made.
    pub(crate) fn ecdaa_sign(
        &mut self,
        key: &object::Object,
        scheme: object::Scheme,
        digest: &[u8],
    ) -> Result<object::Signature, Rc> {
        let h = HashAlg::from_alg(scheme.hash).map_err(|_| Rc::SCHEME)?;
        let secret = &key.sens.as_ref().ok_or(Rc::KEY)?.secret;
        let ds = p256::SecretKey::from_slice(secret).map_err(|_| Rc::KEY)?;
        let count = self.p.commit.committed(scheme.count).ok_or(Rc::VALUE)?;
        let r = self.p.commit.r(count).ok_or(Rc::VALUE)?;
        loop {
            // 0 < nonceK < n, in its shortest big-endian form (as the reference writes it).
            let Some(nonce) = Option::<p256::NonZeroScalar>::from(p256::NonZeroScalar::from_repr(
                p256::FieldBytes::clone_from_slice(&self.random(32)),
            )) else {
                continue;
            };
            let bytes = nonce.to_repr();
            let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
            let nonce_k = bytes[first..].to_vec();
            let t = scalar_of(&h.digest(&[&nonce_k, digest]));
            let s = *r + t * *ds.to_nonzero_scalar();
            if bool::from(p256::elliptic_curve::Field::is_zero(&s)) {
                continue;
            }
            // CryptEndCommit: the counter is spent.
            self.p.commit.array &= !(1u128 << (scheme.count & COMMIT_INDEX_MASK));
            self.persist();
            return Ok(object::Signature::Ecdaa {
                hash: scheme.hash,
                r: nonce_k,
                s: s.to_repr().to_vec(),
            });
        }
    }
}

/// An empty TPM2B_ECC_POINT (two empty coordinates), as the reference writes a point it did
/// not compute.
fn write_empty_point(w: &mut Writer) {
    w.u16(4).u16(0).u16(0);
}

/// A TPM2B_ECC_POINT that may be empty (size 4 or less: no coordinates).
fn read_optional_point(r: &mut Reader<'_>) -> Result<Option<(Vec<u8>, Vec<u8>)>, Rc> {
    let mut pr = r.sized()?;
    let short = |e: Rc| if e == Rc::INSUFFICIENT { Rc::SIZE } else { e };
    let x = pr.tpm2b(66).map_err(short)?.to_vec();
    let y = pr.tpm2b(66).map_err(short)?.to_vec();
    pr.finish()?;
    Ok(if x.is_empty() && y.is_empty() {
        None
    } else {
        Some((x, y))
    })
}

/// The P-256 prime p, big-endian.
const P256_P: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];

/// A digest of at most 32 bytes mod p (one subtraction suffices: 2^256 < 2p); None for a
/// longer digest (a key whose nameAlg is longer than the curve).
fn mod_p(h: &[u8]) -> Option<Vec<u8>> {
    if h.len() > 32 {
        return None;
    }
    let mut x = [0u8; 32];
    x[32 - h.len()..].copy_from_slice(h);
    if x >= P256_P {
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = i16::from(x[i]) - i16::from(P256_P[i]) - borrow;
            borrow = i16::from(d < 0);
            x[i] = (d + (borrow << 8)) as u8;
        }
    }
    Some(x.to_vec())
}

/// A digest as an integer mod n: hi·2^256 + lo for digests longer than 32 bytes.
fn scalar_of(h: &[u8]) -> p256::Scalar {
    use p256::elliptic_curve::ops::Reduce;
    let reduce = |b: &[u8]| {
        let mut f = [0u8; 32];
        f[32 - b.len()..].copy_from_slice(b);
        <p256::Scalar as Reduce<p256::U256>>::reduce_bytes(&p256::FieldBytes::from(f))
    };
    if h.len() <= 32 {
        return reduce(h);
    }
    let (hi, lo) = h.split_at(h.len() - 32);
    let two_256 = reduce(&[0xFF; 32]) + p256::Scalar::ONE;
    reduce(hi) * two_256 + reduce(lo)
}
