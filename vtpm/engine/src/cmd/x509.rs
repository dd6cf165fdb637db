//! TPM2_CertifyX509 (Part 3 §18.8): completes a caller's partial X.509 certificate (issuer,
//! validity, subject, extensions) with the object's SubjectPublicKeyInfo, a serial number and
//! the version, and signs the resulting TBSCertificate with the signing key.
//!
//! The partial certificate is read by a small bounds-checked DER reader of our own rather than
//! the `der` crate: the answer to malformed input must be the response code libtpms gives
//! (which accepts non-minimal lengths, tolerates bytes after the extension list inside `[3]`,
//! and reads keyUsage/TPMA_OBJECT bit strings its own way), and a strict parser would refuse
//! certificates libtpms signs, or refuse them with other codes.

use crate::Platform;
use crate::crypto::{HashAlg, alg};
use crate::engine::{Ctx, Out, Tpm};
use crate::nv::MAX_BUFFER;
use crate::object::{self, Object, Params, Scheme, attr};
use crate::rc::{At, Rc};
use alloc::vec::Vec;
use core::ops::Range;

/// ASN.1 tags libtpms distinguishes.
const SEQUENCE: u8 = 0x30;
const EXTENSIONS: u8 = 0xA3;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;

/// Encoded OIDs (tag, length, value), as libtpms' OIDs.h.
const OID_KEY_USAGE: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x0F];
const OID_TPMA_OBJECT: &[u8] = &[0x06, 0x07, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x01, 0x01];
const OID_ECC_PUBLIC: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_RSA_PUBLIC: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];
const OID_RSAPSS: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A,
];
const OID_MGF1: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08,
];

/// TPMA_X509_KEY_USAGE bits, left-justified as libtpms reads the bit string (bit 0 = bit 31).
mod ku {
    pub(super) const DIGITAL_SIGNATURE: u32 = 1 << 31;
    pub(super) const NON_REPUDIATION: u32 = 1 << 30;
    pub(super) const KEY_ENCIPHERMENT: u32 = 1 << 29;
    pub(super) const DATA_ENCIPHERMENT: u32 = 1 << 28;
    pub(super) const KEY_AGREEMENT: u32 = 1 << 27;
    pub(super) const KEY_CERT_SIGN: u32 = 1 << 26;
    pub(super) const CRL_SIGN: u32 = 1 << 25;
    pub(super) const ENCIPHER_ONLY: u32 = 1 << 24;
    pub(super) const DECIPHER_ONLY: u32 = 1 << 23;
    /// Uses that need TPMA_OBJECT.sign.
    pub(super) const SIGN: u32 = DIGITAL_SIGNATURE | KEY_CERT_SIGN | CRL_SIGN;
    /// Uses that need TPMA_OBJECT.decrypt.
    pub(super) const DECRYPT: u32 =
        KEY_ENCIPHERMENT | DATA_ENCIPHERMENT | KEY_AGREEMENT | ENCIPHER_ONLY | DECIPHER_ONLY;
}

/// The largest serial number, in octets (libtpms' SIZE_OF_X509_SERIAL_NUMBER).
const SERIAL_MAX: usize = 20;

/// A DER reader over `b`, every length checked against the end of `b`.
struct Der<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Der<'a> {
    fn new(b: &'a [u8]) -> Self {
        Der { b, off: 0 }
    }

    fn octet(&mut self) -> Option<u8> {
        let v = *self.b.get(self.off)?;
        self.off += 1;
        Some(v)
    }

    /// Tag and length of the next element; the offset is left at its contents. Multi-octet
    /// tags, indefinite lengths and lengths of more than two octets (or 0x8000 and more)
    /// are refused, as libtpms' ASN1NextTag.
    fn next_tag(&mut self) -> Option<(u8, usize)> {
        let tag = self.octet()?;
        if tag & 0x1F == 0x1F {
            return None;
        }
        let first = self.octet()?;
        let len = match first {
            0..=0x7F => usize::from(first),
            0x81 => usize::from(self.octet()?),
            0x82 => {
                let hi = self.octet()?;
                if hi >= 0x80 {
                    return None;
                }
                (usize::from(hi) << 8) | usize::from(self.octet()?)
            }
            _ => return None,
        };
        (self.off + len <= self.b.len()).then_some((tag, len))
    }

    /// A BIT STRING's value, left-justified in 32 bits (libtpms' ASN1GetBitStringValue).
    fn bit_string(&mut self) -> Option<u32> {
        let (tag, len) = self.next_tag()?;
        if len < 1 || tag != BIT_STRING {
            return None;
        }
        let shift = u32::from(self.octet()?);
        let mut length = len - 1;
        let input_bits = 8 * length as i64 - i64::from(shift);
        if shift >= 8 || (length == 0 && shift != 0) {
            return None;
        }
        let mut value: u32 = 0;
        while length > 1 {
            if value & 0xFF00_0000 != 0 {
                return None;
            }
            value = (value << 8) + u32::from(self.octet()?);
            length -= 1;
        }
        if length == 1 {
            if value & (0xFF00_0000u32 << (8 - shift)) != 0 {
                return None;
            }
            value = (value << (8 - shift)) + (u32::from(self.octet()?) >> shift);
        }
        if input_bits > 0 {
            // More than 32 bits: the reference shifts by a negative count, which x86 masks to
            // five bits; wrapping_shl masks the same way.
            value = value.wrapping_shl((32 - input_bits) as u32);
        }
        Some(value)
    }
}

/// The parts of the partial certificate, as ranges of it.
struct Partial {
    sig_alg: Option<Range<usize>>,
    issuer: Range<usize>,
    validity: Range<usize>,
    subject: Range<usize>,
    extensions: Range<usize>,
}

/// Splits the partial certificate as libtpms does: one SEQUENCE spanning the whole input
/// (else TPM_RC_SIZE), holding three or four SEQUENCEs (an optional signature algorithm,
/// issuer, validity, subject) and exactly one `[3]` extensions element (else TPM_RC_VALUE).
fn split(pc: &[u8]) -> Result<Partial, Rc> {
    if pc.is_empty() {
        return Err(Rc::VALUE);
    }
    let mut d = Der::new(pc);
    match d.next_tag() {
        Some((SEQUENCE, len)) if d.off + len == pc.len() => {}
        _ => return Err(Rc::SIZE),
    }
    let mut seqs: Vec<Range<usize>> = Vec::new();
    let mut ext = None;
    while d.off < pc.len() {
        let start = d.off;
        let (tag, len) = d.next_tag().ok_or(Rc::VALUE)?;
        d.off += len;
        match tag {
            SEQUENCE => {
                seqs.push(start..d.off);
                if seqs.len() > 4 {
                    return Err(Rc::VALUE);
                }
            }
            EXTENSIONS if ext.is_none() => ext = Some(start..d.off),
            _ => return Err(Rc::VALUE),
        }
    }
    let extensions = ext.ok_or(Rc::VALUE)?;
    if seqs.len() < 3 {
        return Err(Rc::VALUE);
    }
    let subject = seqs.pop().ok_or(Rc::VALUE)?;
    let validity = seqs.pop().ok_or(Rc::VALUE)?;
    let issuer = seqs.pop().ok_or(Rc::VALUE)?;
    Ok(Partial {
        sig_alg: seqs.pop(),
        issuer,
        validity,
        subject,
        extensions,
    })
}

/// The contents of the extension whose first element is `oid`, searched from `from` to the
/// end of `e` (every element there must be a SEQUENCE); Err on malformed DER.
fn find_extension<'a>(e: &'a [u8], from: usize, oid: &[u8]) -> Result<Option<&'a [u8]>, ()> {
    let mut d = Der { b: e, off: from };
    while d.off < e.len() {
        let (tag, len) = d.next_tag().ok_or(())?;
        if tag != SEQUENCE {
            return Err(());
        }
        let body = &e[d.off..d.off + len];
        if body.starts_with(oid) {
            return Ok(Some(body));
        }
        d.off += len;
    }
    Ok(None)
}

/// The bit string inside an extension's OCTET STRING (extnValue), skipping the OID and the
/// critical flag (libtpms' X509GetExtensionBits).
fn extension_bits(ext: &[u8]) -> Option<u32> {
    let mut d = Der::new(ext);
    loop {
        let (tag, len) = d.next_tag()?;
        if len == 0 {
            return None;
        }
        if tag == OCTET_STRING {
            return d.bit_string();
        }
        d.off += len;
    }
}

/// Checks the extensions against the object (libtpms' X509ProcessExtensions): a TPMA_OBJECT
/// extension must equal its attributes (TPM_RC_ATTRIBUTES), and keyUsage is required and may
/// only name uses the attributes allow (TPM_RC_VALUE, as malformed DER).
fn check_extensions(e: &[u8], attrs: u32) -> Result<(), Rc> {
    let mut d = Der::new(e);
    if !matches!(d.next_tag(), Some((EXTENSIONS, _)))
        || !matches!(d.next_tag(), Some((SEQUENCE, _)))
    {
        return Err(Rc::VALUE);
    }
    let list = d.off;
    if let Some(ext) = find_extension(e, list, OID_TPMA_OBJECT).map_err(|_| Rc::VALUE)?
        && extension_bits(ext).ok_or(Rc::VALUE)? != attrs
    {
        return Err(Rc::ATTRIBUTES);
    }
    let ext = find_extension(e, list, OID_KEY_USAGE)
        .ok()
        .flatten()
        .ok_or(Rc::VALUE)?;
    let usage = extension_bits(ext).ok_or(Rc::VALUE)?;
    let has = |a: u32| attrs & a != 0;
    let bad = (usage & ku::SIGN != 0 && !has(attr::SIGN))
        || (usage & ku::DECRYPT != 0 && !has(attr::DECRYPT))
        || (usage & ku::NON_REPUDIATION != 0 && !has(attr::FIXED_TPM))
        || (usage & ku::KEY_AGREEMENT != 0 && !has(attr::RESTRICTED));
    if bad { Err(Rc::VALUE) } else { Ok(()) }
}

/// A DER element: tag, minimal length (as libtpms' ASN1PushLength), contents.
fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let n: usize = parts.iter().map(|p| p.len()).sum();
    let mut v = Vec::with_capacity(n + 4);
    v.push(tag);
    match n {
        0..=127 => v.push(n as u8),
        128..=255 => v.extend_from_slice(&[0x81, n as u8]),
        _ => v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// A non-negative INTEGER from big-endian octets (leading zeros dropped, one added when the
/// top bit is set).
fn integer(b: &[u8]) -> Vec<u8> {
    let skip = b
        .iter()
        .take(b.len().saturating_sub(1))
        .take_while(|&&x| x == 0)
        .count();
    let b = &b[skip..];
    if b.first().is_some_and(|x| x & 0x80 != 0) {
        tlv(0x02, &[&[0], b])
    } else {
        tlv(0x02, &[b])
    }
}

/// AlgorithmIdentifier with NULL parameters.
fn alg_id(oid: &[u8]) -> Vec<u8> {
    tlv(SEQUENCE, &[oid, &[0x05, 0x00]])
}

fn hash_oid(h: HashAlg) -> Vec<u8> {
    match h {
        HashAlg::Sha1 => alloc::vec![0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A],
        _ => {
            let last = match h {
                HashAlg::Sha256 => 1,
                HashAlg::Sha384 => 2,
                _ => 3,
            };
            alloc::vec![
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last
            ]
        }
    }
}

/// The SubjectPublicKeyInfo of `obj`, or None for a type or curve without one.
fn public_key_info(obj: &Object) -> Option<Vec<u8>> {
    match &obj.public.params {
        Params::Ecc { curve, x, y, .. } if *curve == alg::CURVE_P256 => {
            let algo = tlv(SEQUENCE, &[OID_ECC_PUBLIC, OID_P256]);
            let point = tlv(BIT_STRING, &[&[0x00, 0x04], x, y]);
            Some(tlv(SEQUENCE, &[&algo, &point]))
        }
        Params::Rsa { exponent, n, .. } => {
            let e = if *exponent == 0 { 65537 } else { *exponent };
            let key = tlv(SEQUENCE, &[&integer(n), &integer(&e.to_be_bytes())]);
            let bits = tlv(BIT_STRING, &[&[0x00], &key]);
            Some(tlv(SEQUENCE, &[&alg_id(OID_RSA_PUBLIC), &bits]))
        }
        _ => None,
    }
}

/// The signature AlgorithmIdentifier for `scheme` with `key`, or None when the TPM cannot
/// name it (ECDAA, HMAC: the caller must supply it).
fn signature_alg(key: &Object, scheme: Scheme) -> Option<Vec<u8>> {
    let h = HashAlg::from_alg(scheme.hash).ok()?;
    match (&key.public.params, scheme.alg) {
        (Params::Ecc { .. }, alg::ECDSA) => {
            let oid: &[u8] = match h {
                HashAlg::Sha1 => &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01],
                HashAlg::Sha256 => &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02],
                HashAlg::Sha384 => &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03],
                HashAlg::Sha512 => &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04],
            };
            Some(tlv(SEQUENCE, &[oid]))
        }
        (Params::Rsa { .. }, alg::RSASSA) => {
            let last = match h {
                HashAlg::Sha1 => 0x05,
                HashAlg::Sha256 => 0x0B,
                HashAlg::Sha384 => 0x0C,
                HashAlg::Sha512 => 0x0D,
            };
            let oid = [
                0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, last,
            ];
            Some(alg_id(&oid))
        }
        (Params::Rsa { n, .. }, alg::RSAPSS) => {
            if h == HashAlg::Sha1 {
                return Some(alg_id(OID_RSAPSS));
            }
            // RSASSA-PSS-params: hash, MGF1 with that hash, and the salt the TPM uses
            // (libtpms' CryptRsaPssSaltSize: min(hLen, modulus - hLen - 2)).
            let hl = h.size() as i64;
            let salt = (n.len() as i64 - hl - 2).clamp(0, hl) as u32;
            let hash = alg_id(&hash_oid(h));
            let params = tlv(
                SEQUENCE,
                &[
                    &tlv(0xA0, &[&hash]),
                    &tlv(0xA1, &[&tlv(SEQUENCE, &[OID_MGF1, &hash])]),
                    &tlv(0xA2, &[&integer(&salt.to_be_bytes())]),
                ],
            );
            Some(tlv(SEQUENCE, &[OID_RSAPSS, &params]))
        }
        _ => None,
    }
}

impl<P: Platform> Tpm<P> {
    /// CertifyX509(@objectHandle, @signHandle; reserved, inScheme, partialCertificate):
    /// addedToCertificate, tbsDigest, signature. The checks run in libtpms' order.
    pub(super) fn certify_x509(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let reserved = c.params.tpm2b(64).p(1)?.len();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        let pc = c.params.tpm2b(MAX_BUFFER).p(3)?.to_vec();
        c.params.finish().p(3)?;
        if reserved != 0 {
            return Err(Rc::SIZE.param(1));
        }
        // libtpms 0.9 numbers the handles the other way round in its response codes
        // (CertifyX509_fp.h: signHandle is handle 1, objectHandle handle 2); clients compare
        // codes with swtpm's, so these follow it.
        let (key, scheme) = self.signing_key(c.handles[1], 1, in_scheme, 2)?;
        let obj = self.object(c.handles[0]).h(2)?.clone();
        let spki = public_key_info(&obj).ok_or(Rc::ASYMMETRIC.handle(2))?;
        let parts = split(&pc).p(3)?;
        let made_alg = match parts.sig_alg {
            Some(_) => None,
            None => Some(signature_alg(&key, scheme).ok_or(Rc::SCHEME.handle(1))?),
        };
        check_extensions(&pc[parts.extensions.clone()], obj.public.attrs).map_err(|e| {
            if e == Rc::ATTRIBUTES {
                e.handle(2)
            } else {
                e.param(3)
            }
        })?;
        let sig_alg: &[u8] = match (&parts.sig_alg, &made_alg) {
            (Some(r), _) => &pc[r.clone()],
            (None, Some(m)) => m,
            (None, None) => return Err(Rc::SCHEME.handle(1)),
        };
        let (issuer, validity, subject, ext) = (
            &pc[parts.issuer],
            &pc[parts.validity],
            &pc[parts.subject],
            &pc[parts.extensions],
        );
        // The serial number: the signing key's name hash over everything but version and
        // serial, then both Names, cut to 20 octets (libtpms' construction, so a re-issue of
        // the same certificate by the same key gets the same serial).
        let mut serial = key.public.hash()?.digest(&[
            sig_alg, issuer, validity, subject, &spki, ext, &key.name, &obj.name,
        ]);
        serial.truncate(SERIAL_MAX);
        let serial = integer(&serial);
        let version = tlv(0xA0, &[&integer(&[2])]);
        let tbs = tlv(
            SEQUENCE,
            &[
                &version, &serial, sig_alg, issuer, validity, subject, &spki, ext,
            ],
        );
        let tbs_digest = HashAlg::from_alg(scheme.hash).p(2)?.digest(&[&tbs]);
        let added = tlv(
            SEQUENCE,
            &[&version, &serial, made_alg.as_deref().unwrap_or(&[]), &spki],
        );
        let sig = if scheme.alg == alg::ECDAA {
            self.ecdaa_sign(&key, scheme, &tbs_digest)?
        } else {
            object::sign(&key, scheme, &tbs_digest, &mut self.rng)?
        };
        let mut o = Out::new();
        o.params.tpm2b(&added).tpm2b(&tbs_digest);
        sig.write(&mut o.params);
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_strings_read_left_justified_as_libtpms() {
        // (encoded BIT STRING, value) — keyUsage digitalSignature, 4-byte TPMA_OBJECT, empty,
        // and refused forms (unused bits >= 8, unused bits without octets, wrong tag).
        let cases: &[(&[u8], Option<u32>)] = &[
            (&[0x03, 0x02, 0x07, 0x80], Some(0x8000_0000)),
            (&[0x03, 0x02, 0x05, 0xA0], Some(0xA000_0000)),
            (
                &[0x03, 0x05, 0x00, 0x00, 0x04, 0x04, 0x72],
                Some(0x0004_0472),
            ),
            (&[0x03, 0x01, 0x00], Some(0)),
            (&[0x03, 0x02, 0x08, 0x80], None),
            (&[0x03, 0x01, 0x01], None),
            (&[0x04, 0x02, 0x07, 0x80], None),
            (&[0x03, 0x05, 0x00, 0x80], None),
        ];
        for (der, want) in cases {
            assert_eq!(Der::new(der).bit_string(), *want, "{der:02x?}");
        }
    }

    #[test]
    fn lengths_are_bounded_by_the_buffer() {
        type Case<'a> = (&'a [u8], Option<(u8, usize)>);
        let cases: &[Case<'_>] = &[
            (&[0x30, 0x00], Some((0x30, 0))),
            (&[0x30, 0x81, 0x01, 0x00], Some((0x30, 1))),
            (&[0x30, 0x01], None),
            (&[0x30, 0x80], None),
            (&[0x30, 0x83, 0, 0, 0], None),
            (&[0x30, 0x82, 0x80, 0x00], None),
            (&[0x1F, 0x00], None),
            (&[0x30], None),
        ];
        for (der, want) in cases {
            assert_eq!(Der::new(der).next_tag(), *want, "{der:02x?}");
        }
    }
}
