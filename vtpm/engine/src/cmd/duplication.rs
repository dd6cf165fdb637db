//! Duplication: Duplicate and Import (Part 3 §13.1, §13.3; the blob layout of Part 1 §23.3).
//!
//! A duplication blob is the object's TPM2B_SENSITIVE, optionally under an inner wrapper
//! (integrity digest with the object's nameAlg, then AES-CFB with a caller or TPM key) and an
//! outer wrapper (AES-CFB and HMAC with keys derived by KDFa from a seed that is encrypted to
//! the new parent with RSA-OAEP or ECDH+KDFe, label "DUPLICATE"). Both wrappers use a zero IV:
//! every key is fresh or bound to this one blob.

use crate::Platform;
use crate::crypto::aes::Aes;
use crate::crypto::{HashAlg, alg, ct_eq, kdfa};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::marshal::{Reader, Writer};
use crate::object::{Params, Public, Sensitive, SymDef, attr, check_pair};
use crate::rc::{At, Rc};
use alloc::vec::Vec;

/// The protection keys of an outer wrapper: AES key from "STORAGE", HMAC key from "INTEGRITY".
fn outer_keys(parent: &Public, seed: &[u8], name: &[u8]) -> Result<(Aes, HashAlg, Vec<u8>), Rc> {
    let ph = parent.hash()?;
    let sym = parent.sym();
    let sym_key = kdfa(ph, seed, b"STORAGE", name, b"", u32::from(sym.bits));
    let hmac_key = kdfa(ph, seed, b"INTEGRITY", b"", b"", (ph.size() * 8) as u32);
    Ok((Aes::new(&sym_key).ok_or(Rc::SYMMETRIC)?, ph, hmac_key))
}

/// Outer wrapper: TPM2B_DIGEST(HMAC(ciphertext || name)) || ciphertext. Duplication blobs
/// and credential blobs (MakeCredential's TPM2B_ID_OBJECT) share it.
pub(super) fn outer_wrap(
    parent: &Public,
    seed: &[u8],
    name: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, Rc> {
    let (aes, ph, hmac_key) = outer_keys(parent, seed, name)?;
    let mut enc = data.to_vec();
    aes.cfb_encrypt(&[0u8; 16], &mut enc);
    let mac = ph.hmac(&hmac_key, &[&enc, name]);
    let mut w = Writer::new();
    w.tpm2b(&mac).bytes(&enc);
    Ok(w.into_vec())
}

pub(super) fn outer_unwrap(
    parent: &Public,
    seed: &[u8],
    name: &[u8],
    blob: &[u8],
) -> Result<Vec<u8>, Rc> {
    let (aes, ph, hmac_key) = outer_keys(parent, seed, name)?;
    let mut r = Reader::new(blob);
    let mac = r.tpm2b(64)?;
    let mut enc = r.rest().to_vec();
    if !ct_eq(mac, &ph.hmac(&hmac_key, &[&enc, name])) {
        return Err(Rc::INTEGRITY);
    }
    aes.cfb_decrypt(&[0u8; 16], &mut enc);
    Ok(enc)
}

/// Inner wrapper: AES-CFB(key, TPM2B_DIGEST(H_nameAlg(data || name)) || data).
fn inner_wrap(h: HashAlg, key: &[u8], name: &[u8], data: &[u8]) -> Result<Vec<u8>, Rc> {
    let mut w = Writer::new();
    w.tpm2b(&h.digest(&[data, name])).bytes(data);
    let mut out = w.into_vec();
    Aes::new(key)
        .ok_or(Rc::SYMMETRIC)?
        .cfb_encrypt(&[0u8; 16], &mut out);
    Ok(out)
}

fn inner_unwrap(h: HashAlg, key: &[u8], name: &[u8], blob: &[u8]) -> Result<Vec<u8>, Rc> {
    let mut plain = blob.to_vec();
    Aes::new(key)
        .ok_or(Rc::SYMMETRIC)?
        .cfb_decrypt(&[0u8; 16], &mut plain);
    let mut r = Reader::new(&plain);
    let integrity = r.tpm2b(64)?;
    if !ct_eq(integrity, &h.digest(&[r.rest(), name])) {
        return Err(Rc::INTEGRITY);
    }
    Ok(r.rest().to_vec())
}

/// The attribute rules for an object that may move (Part 1 §23.2, as PublicAttributesValidation
/// applies them): an object that can never leave the TPM has no use for encryptedDuplication,
/// and below a duplicable (not fixedTPM) parent the child inherits the parent's setting, so a
/// duplication group cannot be moved without the inner wrapper its root demands.
pub(crate) fn check_duplication_attrs(public: &Public, parent: Option<&Public>) -> Result<(), Rc> {
    let enc_dup = public.has(attr::ENCRYPTED_DUPLICATION);
    if public.has(attr::FIXED_TPM) && enc_dup {
        return Err(Rc::ATTRIBUTES);
    }
    if let Some(p) = parent
        && !p.has(attr::FIXED_TPM)
        && p.has(attr::ENCRYPTED_DUPLICATION) != enc_dup
    {
        return Err(Rc::ATTRIBUTES);
    }
    Ok(())
}

/// Key bytes for an inner-wrapper algorithm (only AES-CFB parses as a TPMT_SYM_DEF_OBJECT here).
fn key_bytes(sym: SymDef) -> usize {
    usize::from(sym.bits).div_ceil(8)
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn duplicate(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let key_in = c.params.tpm2b(64).p(1)?.to_vec();
        let sym = SymDef::parse(&mut c.params, false).p(2)?;
        c.params.finish().p(2)?;
        let obj = self.object(c.handles[0]).h(1)?.clone();
        if obj.public.has(attr::FIXED_PARENT) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        if obj.public.name_alg == alg::NULL {
            return Err(Rc::TYPE.handle(1));
        }
        let new_parent = match c.handles[1] {
            h::RH_NULL => None,
            hd if h::ty(hd) == h::HT_TRANSIENT || h::ty(hd) == h::HT_PERSISTENT => {
                let p = self.object(hd).h(2)?.clone();
                if !p.public.is_storage_parent() {
                    return Err(Rc::TYPE.handle(2));
                }
                Some(p)
            }
            _ => return Err(Rc::VALUE.handle(2)),
        };
        if obj.public.has(attr::ENCRYPTED_DUPLICATION) {
            if sym.alg == alg::NULL {
                return Err(Rc::SYMMETRIC.param(2));
            }
            if new_parent.is_none() {
                return Err(Rc::HIERARCHY.handle(2));
            }
        }
        if sym.alg == alg::NULL {
            if !key_in.is_empty() {
                return Err(Rc::SIZE.param(1));
            }
        } else if !key_in.is_empty() && key_in.len() != key_bytes(sym) {
            return Err(Rc::SIZE.param(1));
        }
        let (seed, out_seed) = match &new_parent {
            Some(p) => self.secret_to(p, b"DUPLICATE")?,
            None => (Vec::new(), Vec::new()),
        };
        // A public-only object has nothing to duplicate (its policy could not have been
        // satisfied by the reference code either: no sensitive area, no authPolicy check).
        let sens = obj.sens.as_ref().ok_or(Rc::AUTH_UNAVAILABLE)?;
        let mut inner = Writer::new();
        sens.write(obj.public.ty(), &mut inner);
        let mut w = Writer::new();
        w.tpm2b(&inner.into_vec());
        let mut blob = w.into_vec();
        // encryptionKeyOut is the key the TPM chose; a caller's own key is not echoed back.
        let mut key_out = Vec::new();
        if sym.alg != alg::NULL {
            if key_in.is_empty() {
                key_out = self.random(key_bytes(sym));
                blob = inner_wrap(obj.public.hash().h(1)?, &key_out, &obj.name, &blob)?;
            } else {
                blob = inner_wrap(obj.public.hash().h(1)?, &key_in, &obj.name, &blob)?;
            }
        }
        if let Some(p) = &new_parent {
            blob = outer_wrap(&p.public, &seed, &obj.name, &blob)?;
        }
        let mut o = Out::new();
        o.params.tpm2b(&key_out).tpm2b(&blob).tpm2b(&out_seed);
        Ok(o)
    }

    /// Rewrap: moves a duplication blob's outer wrapper from `oldParent` to `newParent`
    /// (either may be TPM_RH_NULL: no outer wrapper on that side), as the reference's
    /// TPM2_Rewrap does; the inner wrapper and the sensitive area are not touched.
    pub(crate) fn rewrap(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let dup = c.params.tpm2b(1024).p(1)?.to_vec();
        let name = c.params.tpm2b(66).p(2)?.to_vec();
        let in_seed = c.params.tpm2b(512).p(3)?.to_vec();
        c.params.finish().p(3)?;
        let storage = |tpm: &Self, hd: u32, n: u32| -> Result<Option<crate::object::Object>, Rc> {
            match hd {
                h::RH_NULL => Ok(None),
                hd if h::ty(hd) == h::HT_TRANSIENT || h::ty(hd) == h::HT_PERSISTENT => {
                    let p = tpm.object(hd).h(n)?.clone();
                    if !p.public.is_storage_parent() || p.sens.is_none() {
                        return Err(Rc::TYPE.handle(n));
                    }
                    Ok(Some(p))
                }
                _ => Err(Rc::VALUE.handle(n)),
            }
        };
        if in_seed.is_empty() != (c.handles[0] == h::RH_NULL) {
            return Err(Rc::HANDLE.handle(1));
        }
        let blob = match storage(self, c.handles[0], 1)? {
            Some(old) => {
                let seed = (self.secret_from(&old, b"DUPLICATE", &in_seed))
                    .map_err(|_| Rc::VALUE.param(3))?;
                outer_unwrap(&old.public, &seed, &name, &dup).p(1)?
            }
            None => dup,
        };
        let mut o = Out::new();
        match storage(self, c.handles[1], 2)? {
            Some(new) => {
                let (seed, out_seed) = self.secret_to(&new, b"DUPLICATE")?;
                let wrapped = outer_wrap(&new.public, &seed, &name, &blob)?;
                o.params.tpm2b(&wrapped).tpm2b(&out_seed);
            }
            None => {
                o.params.tpm2b(&blob).tpm2b(&[]);
            }
        }
        Ok(o)
    }

    pub(crate) fn import(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let key = c.params.tpm2b(64).p(1)?.to_vec();
        let mut pr = c.params.sized().p(2)?;
        let public = Public::parse(&mut pr).p(2)?;
        pr.finish().p(2)?;
        let dup = c.params.tpm2b(1024).p(3)?.to_vec();
        let in_seed = c.params.tpm2b(512).p(4)?.to_vec();
        let sym = SymDef::parse(&mut c.params, false).p(5)?;
        c.params.finish().p(5)?;
        if public.has(attr::FIXED_TPM) || public.has(attr::FIXED_PARENT) {
            return Err(Rc::ATTRIBUTES.param(2));
        }
        let parent = self.object(c.handles[0]).h(1)?.clone();
        if !parent.public.is_storage_parent() || parent.sens.is_none() {
            return Err(Rc::TYPE.handle(1));
        }
        let enc_dup = public.has(attr::ENCRYPTED_DUPLICATION);
        if sym.alg != alg::NULL {
            if key.len() != key_bytes(sym) {
                return Err(Rc::SIZE.param(1));
            }
        } else {
            if !key.is_empty() {
                return Err(Rc::SIZE.param(1));
            }
            if enc_dup {
                return Err(Rc::ATTRIBUTES.param(1));
            }
        }
        let seed = if in_seed.is_empty() {
            if enc_dup {
                return Err(Rc::ATTRIBUTES.param(4));
            }
            Vec::new()
        } else {
            // An outer wrapper needs key exchange, which a symmetric parent cannot do.
            if matches!(parent.public.params, Params::Sym { .. }) {
                return Err(Rc::TYPE.handle(1));
            }
            self.secret_from(&parent, b"DUPLICATE", &in_seed).p(4)?
        };
        let oh = public.hash().p(2)?;
        let name = public.name();
        let mut sens = self
            .blob_to_sensitive(&parent.public, &public, oh, &name, &seed, sym, &key, &dup)
            .p(3)?;
        // Below a fixedTPM parent the object is validated now, so that Load can trust it (the
        // reference's ObjectLoad without a parent).
        if parent.public.has(attr::FIXED_TPM) {
            public.check_load(None).p(2)?;
            if crate::engine::trim(&sens.auth).len() > oh.size() {
                return Err(Rc::SIZE.param(3));
            }
            check_pair(&public, &mut sens).p(3)?;
        }
        let private = super::object::wrap_private(&parent, &public, &sens, &name, self.iv())?;
        let mut o = Out::new();
        o.params.tpm2b(&private);
        Ok(o)
    }

    /// Removes the outer (when `seed` is given) and inner (when `sym` is not NULL) wrappers and
    /// parses the TPM2B_SENSITIVE left.
    #[allow(clippy::too_many_arguments)]
    fn blob_to_sensitive(
        &self,
        parent: &Public,
        public: &Public,
        oh: HashAlg,
        name: &[u8],
        seed: &[u8],
        sym: SymDef,
        key: &[u8],
        dup: &[u8],
    ) -> Result<Sensitive, Rc> {
        let mut data = dup.to_vec();
        if !seed.is_empty() {
            data = outer_unwrap(parent, seed, name, &data)?;
        }
        if sym.alg != alg::NULL {
            data = inner_unwrap(oh, key, name, &data)?;
        }
        // A TPM2B_SENSITIVE that must fill the rest exactly (SIZE otherwise, as the reference
        // code checks it before looking inside).
        let mut r = Reader::new(&data);
        if usize::from(r.u16()?) != r.remaining() {
            return Err(Rc::SIZE);
        }
        let sens = Sensitive::parse(&mut r, public.ty())?;
        if r.remaining() != 0 {
            return Err(Rc::SIZE);
        }
        Ok(sens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_round_trip_and_detect_tampering() {
        let parent_public = {
            // An ECC storage parent template: only nameAlg and the symmetric definition matter.
            let t = [
                &[0x00, 0x23, 0x00, 0x0B][..],
                &0x0003_0072u32.to_be_bytes(),
                &[0, 0],
                &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
                &[0x00, 0x10, 0x00, 0x03, 0x00, 0x10],
                &[0, 0, 0, 0],
            ]
            .concat();
            Public::parse(&mut Reader::new(&t)).expect("template parses")
        };
        let name = [0x00, 0x0B, 7, 7, 7];
        let data = b"a marshalled TPM2B_SENSITIVE".to_vec();
        let outer = outer_wrap(&parent_public, b"seed", &name, &data).unwrap();
        assert_eq!(
            outer_unwrap(&parent_public, b"seed", &name, &outer).unwrap(),
            data
        );
        let inner = inner_wrap(HashAlg::Sha256, &[9; 16], &name, &data).unwrap();
        assert_eq!(
            inner_unwrap(HashAlg::Sha256, &[9; 16], &name, &inner).unwrap(),
            data
        );
        // A flipped bit, another name (the blob is bound to its object) or another key fails.
        let mut bad = outer.clone();
        *bad.last_mut().unwrap() ^= 1;
        let cases: [(&str, Result<Vec<u8>, Rc>); 5] = [
            (
                "outer bit flip",
                outer_unwrap(&parent_public, b"seed", &name, &bad),
            ),
            (
                "outer other name",
                outer_unwrap(&parent_public, b"seed", &[0, 0x0B, 1], &outer),
            ),
            (
                "outer other seed",
                outer_unwrap(&parent_public, b"seeD", &name, &outer),
            ),
            (
                "inner other key",
                inner_unwrap(HashAlg::Sha256, &[8; 16], &name, &inner),
            ),
            (
                "inner other name",
                inner_unwrap(HashAlg::Sha256, &[9; 16], &[0, 0x0B, 1], &inner),
            ),
        ];
        for (what, got) in cases {
            assert!(got.is_err(), "{what} was accepted");
        }
    }
}
