//! Signing, attestation and asymmetric/symmetric primitives: Sign, VerifySignature, Quote,
//! Certify, GetTime, HMAC, Hash, RSA_Encrypt/Decrypt, EncryptDecrypt(2), ECDH_KeyGen/ZGen,
//! MakeCredential, ActivateCredential (Part 3 ch. 14-15, 18, 20).

use super::object::{ST_HASHCHECK, ST_VERIFIED};
use crate::Platform;
use crate::crypto::aes::Aes;
use crate::crypto::{HashAlg, alg, ct_eq, kdfe, rsa_pad};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::marshal::{Reader, Writer};
use crate::object::{self, Object, Params, Scheme, Signature, attr};
use crate::pcr;
use crate::rc::{At, Rc};
use alloc::vec::Vec;
use zeroize::Zeroize;

const GENERATED: u32 = 0xff54_4347;
const ST_ATTEST_CERTIFY: u16 = 0x8017;
const ST_ATTEST_QUOTE: u16 = 0x8018;
const ST_ATTEST_TIME: u16 = 0x8019;

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_crypto(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        use crate::cc::code::*;
        match c.cc {
            SIGN => self.sign(c),
            VERIFY_SIGNATURE => self.verify_signature(c),
            QUOTE => self.quote(c),
            CERTIFY => self.certify(c),
            GET_TIME => self.get_time(c),
            HMAC => self.hmac(c),
            HASH => self.hash(c),
            RSA_ENCRYPT => self.rsa_encrypt(c),
            RSA_DECRYPT => self.rsa_decrypt(c),
            ENCRYPT_DECRYPT => self.encrypt_decrypt(c, false),
            ENCRYPT_DECRYPT2 => self.encrypt_decrypt(c, true),
            ECDH_KEYGEN => self.ecdh_keygen(c),
            ECDH_ZGEN => self.ecdh_zgen(c),
            MAKE_CREDENTIAL => self.make_credential(c),
            ACTIVATE_CREDENTIAL => self.activate_credential(c),
            _ => self.dispatch_nv(c),
        }
    }

    /// A signing key and the scheme to use with it (Part 1 §11.4.? scheme selection).
    pub(super) fn signing_key(
        &self,
        hdl: u32,
        n_handle: u32,
        in_scheme: Scheme,
        n_param: u32,
    ) -> Result<(Object, Scheme), Rc> {
        let key = self.object(hdl).h(n_handle)?.clone();
        if !key.public.has(attr::SIGN) {
            return Err(Rc::KEY.handle(n_handle));
        }
        if key.sens.is_none() {
            return Err(Rc::AUTH_UNAVAILABLE);
        }
        let ks = key.public.scheme();
        let scheme = if ks.alg == alg::NULL {
            if in_scheme.alg == alg::NULL {
                return Err(Rc::SCHEME.param(n_param));
            }
            in_scheme
        } else {
            // The key's scheme decides; an ECDAA signature takes its commit counter from
            // the command (the reference's CryptSelectSignScheme compares scheme and hash).
            if in_scheme.alg != alg::NULL && (in_scheme.alg, in_scheme.hash) != (ks.alg, ks.hash) {
                return Err(Rc::SCHEME.param(n_param));
            }
            Scheme {
                count: in_scheme.count,
                ..ks
            }
        };
        let ok = match key.public.params {
            Params::Rsa { .. } => matches!(scheme.alg, alg::RSASSA | alg::RSAPSS),
            Params::Ecc { .. } => matches!(scheme.alg, alg::ECDSA | alg::ECDAA),
            Params::KeyedHash { .. } => scheme.alg == alg::HMAC,
            Params::Sym { .. } => false,
        };
        if !ok {
            return Err(Rc::SCHEME.param(n_param));
        }
        Ok((key, scheme))
    }

    fn sign(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let digest = c.params.tpm2b(64).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        let tag = c.params.u16().p(3)?;
        let hier = c.params.u32().p(3)?;
        let tdigest = c.params.tpm2b(64).p(3)?.to_vec();
        c.params.finish().p(3)?;
        if tag != ST_HASHCHECK {
            return Err(Rc::TAG.param(3));
        }
        // Only CertifyX509 may sign with an x509sign key (the reference's TPM2_Sign).
        if self.object(c.handles[0]).h(1)?.public.has(attr::X509SIGN) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        let (key, scheme) = self.signing_key(c.handles[0], 1, in_scheme, 2)?;
        let sh = HashAlg::from_alg(scheme.hash).p(2)?;
        if digest.len() != sh.size() {
            return Err(Rc::SIZE.param(1));
        }
        if key.public.has(attr::RESTRICTED) {
            // Only digests the TPM computed itself (with a hashcheck ticket) may be signed.
            let ok = hier != h::RH_NULL
                && ct_eq(
                    &tdigest,
                    &HashAlg::Sha512
                        .hmac(&self.proof(hier), &[&ST_HASHCHECK.to_be_bytes(), &digest]),
                );
            if !ok {
                return Err(Rc::TICKET.param(3));
            }
        }
        let sig = if scheme.alg == alg::ECDAA {
            self.ecdaa_sign(&key, scheme, &digest)?
        } else {
            object::sign(&key, scheme, &digest, &mut self.rng).p(2)?
        };
        let mut o = Out::new();
        sig.write(&mut o.params);
        Ok(o)
    }

    fn verify_signature(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let digest = c.params.tpm2b(64).p(1)?.to_vec();
        let sig = Signature::parse(&mut c.params).p(2)?;
        c.params.finish().p(2)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        if !key.public.has(attr::SIGN) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        object::verify(&key, &digest, &sig).p(2)?;
        let mut o = Out::new();
        let hname = key.public.hash().unwrap_or(HashAlg::Sha256);
        self.ticket(
            &mut o.params,
            ST_VERIFIED,
            key.hierarchy,
            hname,
            &[&digest, &key.name],
        );
        Ok(o)
    }

    /// TPMS_ATTEST header up to (not including) the type-specific part.
    pub(super) fn attest_header(&mut self, w: &mut Writer, ty: u16, signer: &Object, extra: &[u8]) {
        w.u32(GENERATED)
            .u16(ty)
            .tpm2b(&signer.qualified)
            .tpm2b(extra);
        self.write_attest_clock(w, signer);
    }

    /// The signer of an attestation: a signing key and its scheme, or None for TPM_RH_NULL
    /// (the attestation goes out unsigned, any inScheme ignored: CryptSelectSignScheme of the
    /// reference selects TPM_ALG_NULL then).
    pub(super) fn attest_signer(
        &self,
        hdl: u32,
        n_handle: u32,
        in_scheme: Scheme,
        n_param: u32,
    ) -> Result<Option<(Object, Scheme)>, Rc> {
        if hdl == h::RH_NULL {
            return Ok(None);
        }
        self.signing_key(hdl, n_handle, in_scheme, n_param)
            .map(Some)
    }

    /// `attest_header` for an optional signer (TPM_RH_NULL: qualifiedSigner is its handle).
    pub(super) fn attest_header_opt(
        &mut self,
        w: &mut Writer,
        ty: u16,
        signer: Option<&(Object, Scheme)>,
        extra: &[u8],
    ) {
        match signer {
            Some((key, _)) => self.attest_header(w, ty, key, extra),
            None => {
                let null = h::RH_NULL.to_be_bytes();
                w.u32(GENERATED).u16(ty).tpm2b(&null).tpm2b(extra);
                self.write_attest_clock_of(w, &null, h::RH_NULL);
            }
        }
    }

    /// `finish_attest` for an optional signer (None: a TPMT_SIGNATURE of TPM_ALG_NULL).
    pub(super) fn finish_attest_opt(
        &mut self,
        signer: Option<(Object, Scheme)>,
        attest: Vec<u8>,
    ) -> Result<Out, Rc> {
        match signer {
            Some((key, scheme)) => self.finish_attest(&key, scheme, attest),
            None => {
                let mut o = Out::new();
                o.params.tpm2b(&attest).u16(alg::NULL);
                Ok(o)
            }
        }
    }

    pub(super) fn finish_attest(
        &mut self,
        key: &Object,
        scheme: Scheme,
        attest: Vec<u8>,
    ) -> Result<Out, Rc> {
        let sh = HashAlg::from_alg(scheme.hash)?;
        let digest = sh.digest(&[&attest]);
        let sig = object::sign(key, scheme, &digest, &mut self.rng)?;
        let mut o = Out::new();
        o.params.tpm2b(&attest);
        sig.write(&mut o.params);
        Ok(o)
    }

    fn quote(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let extra = c.params.tpm2b(64).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        let sel = pcr::parse_selection(&mut c.params).p(3)?;
        c.params.finish().p(3)?;
        // Unlike the other attestations, a quote needs a signing key: without one the scheme
        // (and so the hash of pcrDigest) is TPM_ALG_NULL, which the reference refuses.
        let Some((key, scheme)) = self.attest_signer(c.handles[0], 1, in_scheme, 2)? else {
            return Err(Rc::SCHEME.param(2));
        };
        let sh = HashAlg::from_alg(scheme.hash).p(2)?;
        let mut w = Writer::new();
        self.attest_header(&mut w, ST_ATTEST_QUOTE, &key, &extra);
        pcr::write_selection(&mut w, &sel);
        w.tpm2b(&self.v.pcrs.digest(&sel, sh));
        self.finish_attest(&key, scheme, w.into_vec()).p(2)
    }

    fn certify(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let extra = c.params.tpm2b(64).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        c.params.finish().p(2)?;
        let obj = self.object(c.handles[0]).h(1)?.clone();
        let signer = self.attest_signer(c.handles[1], 2, in_scheme, 2)?;
        let mut w = Writer::new();
        self.attest_header_opt(&mut w, ST_ATTEST_CERTIFY, signer.as_ref(), &extra);
        w.tpm2b(&obj.name).tpm2b(&obj.qualified);
        self.finish_attest_opt(signer, w.into_vec()).p(2)
    }

    fn get_time(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let extra = c.params.tpm2b(64).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        c.params.finish().p(2)?;
        if c.handles[0] != h::RH_ENDORSEMENT {
            return Err(Rc::VALUE.handle(1));
        }
        let signer = self.attest_signer(c.handles[1], 2, in_scheme, 2)?;
        let mut w = Writer::new();
        self.attest_header_opt(&mut w, ST_ATTEST_TIME, signer.as_ref(), &extra);
        let t = self.time_ms();
        w.u64(t);
        self.write_clock_info(&mut w);
        w.u64(0x0001_0000_0000_0000);
        self.finish_attest_opt(signer, w.into_vec()).p(2)
    }

    fn hmac(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let data = c.params.tpm2b(1024).p(1)?.to_vec();
        let hash_id = c.params.u16().p(2)?;
        c.params.finish().p(2)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        let Params::KeyedHash { scheme, .. } = key.public.params else {
            return Err(Rc::TYPE.handle(1));
        };
        if !key.public.has(attr::SIGN) || key.public.has(attr::RESTRICTED) {
            return Err(Rc::KEY.handle(1));
        }
        let hash = if scheme.alg == alg::HMAC {
            if hash_id != alg::NULL && hash_id != scheme.hash {
                return Err(Rc::VALUE.param(2));
            }
            scheme.hash
        } else {
            hash_id
        };
        let hh = HashAlg::from_alg(hash).p(2)?;
        let secret = &key.sens.as_ref().ok_or(Rc::KEY.handle(1))?.secret;
        let mut o = Out::new();
        o.params.tpm2b(&hh.hmac(secret, &[&data]));
        Ok(o)
    }

    fn hash(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let data = c.params.tpm2b(1024).p(1)?.to_vec();
        let hh = HashAlg::from_alg(c.params.u16().p(2)?).p(2)?;
        let hier = c.params.u32().p(3)?;
        c.params.finish().p(3)?;
        if !matches!(
            hier,
            h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM | h::RH_NULL
        ) {
            return Err(Rc::VALUE.param(3));
        }
        let digest = hh.digest(&[&data]);
        let mut o = Out::new();
        o.params.tpm2b(&digest);
        let generated = data.len() >= 4 && data[..4] == GENERATED.to_be_bytes();
        let tk_hier = if generated { h::RH_NULL } else { hier };
        self.ticket(&mut o.params, ST_HASHCHECK, tk_hier, hh, &[&digest]);
        Ok(o)
    }

    fn rsa_scheme(key: &Object, in_scheme: Scheme) -> Result<Scheme, Rc> {
        let ks = key.public.scheme();
        let s = if ks.alg == alg::NULL {
            in_scheme
        } else if in_scheme.alg == alg::NULL || in_scheme == ks {
            ks
        } else {
            return Err(Rc::SCHEME.param(2));
        };
        match s.alg {
            alg::OAEP | alg::RSAES => Ok(s),
            _ => Err(Rc::SCHEME.param(2)),
        }
    }

    fn rsa_encrypt(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let msg = c.params.tpm2b(512).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        let label = label(c.params.tpm2b(64).p(3)?).p(3)?;
        c.params.finish().p(3)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        if !matches!(key.public.params, Params::Rsa { .. }) {
            return Err(Rc::KEY.handle(1));
        }
        if !key.public.has(attr::DECRYPT) || key.public.has(attr::RESTRICTED) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        let scheme = Self::rsa_scheme(&key, in_scheme)?;
        let out = rsa_enc(&key, scheme, &msg, label, &mut self.rng).p(1)?;
        let mut o = Out::new();
        o.params.tpm2b(&out);
        Ok(o)
    }

    fn rsa_decrypt(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let ct = c.params.tpm2b(512).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        let label = label(c.params.tpm2b(64).p(3)?).p(3)?;
        c.params.finish().p(3)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        if !matches!(key.public.params, Params::Rsa { .. }) {
            return Err(Rc::KEY.handle(1));
        }
        if !key.public.has(attr::DECRYPT) || key.public.has(attr::RESTRICTED) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        let scheme = Self::rsa_scheme(&key, in_scheme)?;
        let out = rsa_dec(&key, scheme, &ct, label, &mut self.rng).p(1)?;
        let mut o = Out::new();
        o.params.tpm2b(&out);
        Ok(o)
    }

    fn encrypt_decrypt(&mut self, c: &mut Ctx<'_>, v2: bool) -> Result<Out, Rc> {
        let (data, decrypt, mode, iv) = if v2 {
            let d = c.params.tpm2b(1024).p(1)?.to_vec();
            let dec = c.params.u8().p(2)?;
            let m = c.params.u16().p(3)?;
            let iv = c.params.tpm2b(16).p(4)?.to_vec();
            (d, dec, m, iv)
        } else {
            let dec = c.params.u8().p(1)?;
            let m = c.params.u16().p(2)?;
            let iv = c.params.tpm2b(16).p(3)?.to_vec();
            let d = c.params.tpm2b(1024).p(4)?.to_vec();
            (d, dec, m, iv)
        };
        c.params.finish().p(4)?;
        let (mode_param, iv_param) = if v2 { (3, 4) } else { (2, 3) };
        let key = self.object(c.handles[0]).h(1)?.clone();
        let Params::Sym { sym, .. } = key.public.params else {
            return Err(Rc::KEY.handle(1));
        };
        if key.public.has(attr::RESTRICTED) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        if (decrypt == 1 && !key.public.has(attr::DECRYPT))
            || (decrypt == 0 && !key.public.has(attr::SIGN))
        {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        let mode = if mode == alg::NULL { sym.mode } else { mode };
        if mode != alg::CFB || (sym.mode != alg::NULL && sym.mode != mode) {
            return Err(Rc::MODE.param(mode_param));
        }
        if iv.len() != 16 {
            return Err(Rc::SIZE.param(iv_param));
        }
        let aes = Aes::new(&key.sens.as_ref().ok_or(Rc::KEY.handle(1))?.secret)
            .ok_or(Rc::KEY.handle(1))?;
        let mut ivb = [0u8; 16];
        ivb.copy_from_slice(&iv);
        let mut out = data.clone();
        if decrypt == 1 {
            aes.cfb_decrypt(&ivb, &mut out);
        } else {
            aes.cfb_encrypt(&ivb, &mut out);
        }
        // CFB: the next IV is the last full ciphertext block.
        let ct = if decrypt == 1 { &data } else { &out };
        let iv_out = if ct.len() >= 16 {
            ct[ct.len() - 16..].to_vec()
        } else {
            iv.clone()
        };
        let mut o = Out::new();
        o.params.tpm2b(&out).tpm2b(&iv_out);
        Ok(o)
    }

    fn ecdh_keygen(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        let pk = object::ecc_public(&key.public).map_err(|_| Rc::KEY.handle(1))?;
        let eph = p256::SecretKey::random(&mut self.rng);
        let z = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), pk.as_affine());
        let mut o = Out::new();
        let mut zp = Writer::new();
        zp.tpm2b(z.raw_secret_bytes()).tpm2b(&[0u8; 0]);
        // zPoint is the shared point; p256 exposes only x, so y is recomputed from the scalar product.
        let shared = (pk.to_projective() * *eph.to_nonzero_scalar()).to_affine();
        write_point(&mut o.params, &shared);
        write_point(&mut o.params, eph.public_key().as_affine());
        Ok(o)
    }

    fn ecdh_zgen(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let mut pr = c.params.sized().p(1)?;
        let x = pr.tpm2b(32).p(1)?.to_vec();
        let y = pr.tpm2b(32).p(1)?.to_vec();
        pr.finish().p(1)?;
        c.params.finish().p(1)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        if !matches!(key.public.params, Params::Ecc { .. })
            || !key.public.has(attr::DECRYPT)
            || key.public.has(attr::RESTRICTED)
        {
            return Err(Rc::KEY.handle(1));
        }
        let pt = object::ecc_point(&x, &y).p(1)?;
        let sk = p256::SecretKey::from_slice(&key.sens.as_ref().ok_or(Rc::KEY.handle(1))?.secret)
            .map_err(|_| Rc::KEY.handle(1))?;
        let shared = (pt.to_projective() * *sk.to_nonzero_scalar()).to_affine();
        let mut o = Out::new();
        write_point(&mut o.params, &shared);
        Ok(o)
    }

    fn make_credential(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let cred = c.params.tpm2b(64).p(1)?.to_vec();
        let obj_name = c.params.tpm2b(66).p(2)?.to_vec();
        c.params.finish().p(2)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        if !key.public.is_storage_parent() {
            return Err(Rc::TYPE.handle(1));
        }
        let kh = key.public.hash().h(1)?;
        if cred.len() > kh.size() {
            return Err(Rc::SIZE.param(1));
        }
        let (seed, secret) = self.secret_to(&key, b"IDENTITY").h(1)?;
        let blob = make_id_object(&key, &seed, &cred, &obj_name)?;
        let mut o = Out::new();
        o.params.tpm2b(&blob).tpm2b(&secret);
        Ok(o)
    }

    fn activate_credential(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let blob = c.params.tpm2b(256).p(1)?.to_vec();
        let secret = c.params.tpm2b(512).p(2)?.to_vec();
        c.params.finish().p(2)?;
        let obj = self.object(c.handles[0]).h(1)?.clone();
        let key = self.object(c.handles[1]).h(2)?.clone();
        if !key.public.is_storage_parent() {
            return Err(Rc::TYPE.handle(2));
        }
        let seed = self.secret_from(&key, b"IDENTITY", &secret).p(2)?;
        let cred = open_id_object(&key, &seed, &blob, &obj.name).p(1)?;
        let mut o = Out::new();
        o.params.tpm2b(&cred);
        Ok(o)
    }

    /// Creates a seed and encrypts it to `key` (RSA-OAEP or ECDH+KDFe) with `label`.
    pub(crate) fn secret_to(
        &mut self,
        key: &Object,
        label_s: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), Rc> {
        let kh = key.public.hash()?;
        match &key.public.params {
            Params::Rsa { .. } => {
                let seed = self.random(kh.size());
                let mut l = label_s.to_vec();
                l.push(0);
                let ct = rsa_enc(
                    key,
                    Scheme {
                        alg: alg::OAEP,
                        hash: kh.alg(),
                        count: 0,
                    },
                    &seed,
                    l,
                    &mut self.rng,
                )?;
                Ok((seed, ct))
            }
            Params::Ecc { x, .. } => {
                let pk = object::ecc_public(&key.public)?;
                let eph = p256::SecretKey::random(&mut self.rng);
                let z = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), pk.as_affine());
                let ep = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &eph.public_key(),
                    false,
                );
                let ex = ep.x().ok_or(Rc::ECC_POINT)?.to_vec();
                let seed = kdfe(
                    kh,
                    z.raw_secret_bytes(),
                    label_s,
                    &ex,
                    x,
                    (kh.size() * 8) as u32,
                );
                let mut w = Writer::new();
                w.tpm2b(&ex).tpm2b(ep.y().ok_or(Rc::ECC_POINT)?);
                Ok((seed, w.into_vec()))
            }
            _ => Err(Rc::KEY),
        }
    }

    /// Recovers a seed encrypted by `secret_to` with the private part of `key`.
    pub(crate) fn secret_from(
        &mut self,
        key: &Object,
        label_s: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, Rc> {
        let kh = key.public.hash()?;
        match &key.public.params {
            Params::Rsa { .. } => {
                let mut l = label_s.to_vec();
                l.push(0);
                rsa_dec(
                    key,
                    Scheme {
                        alg: alg::OAEP,
                        hash: kh.alg(),
                        count: 0,
                    },
                    secret,
                    l,
                    &mut self.rng,
                )
            }
            Params::Ecc { x, .. } => {
                let mut r = Reader::new(secret);
                let ex = r.tpm2b(32)?.to_vec();
                let ey = r.tpm2b(32)?.to_vec();
                r.finish()?;
                let pt = object::ecc_point(&ex, &ey)?;
                let sk = p256::SecretKey::from_slice(&key.sens.as_ref().ok_or(Rc::KEY)?.secret)
                    .map_err(|_| Rc::KEY)?;
                let z = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pt.as_affine());
                Ok(kdfe(
                    kh,
                    z.raw_secret_bytes(),
                    label_s,
                    &ex,
                    x,
                    (kh.size() * 8) as u32,
                ))
            }
            _ => Err(Rc::KEY),
        }
    }
}

fn write_point(w: &mut Writer, p: &p256::AffinePoint) {
    let ep = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(p, false);
    let mut inner = Writer::new();
    inner
        .tpm2b(ep.x().map(|v| v.as_slice()).unwrap_or(&[]))
        .tpm2b(ep.y().map(|v| v.as_slice()).unwrap_or(&[]));
    w.tpm2b(&inner.into_vec());
}

/// An OAEP label as the TPM takes it: empty, or ending in its NUL (else TPM_RC_VALUE, as the
/// reference's IsLabelProperlyFormatted). Any bytes otherwise: a label need not be text.
fn label(l: &[u8]) -> Result<Vec<u8>, Rc> {
    if l.last().is_some_and(|b| *b != 0) {
        return Err(Rc::VALUE);
    }
    Ok(l.to_vec())
}

pub(crate) fn rsa_enc(
    key: &Object,
    scheme: Scheme,
    msg: &[u8],
    label: Vec<u8>,
    rng: &mut crate::crypto::Drbg,
) -> Result<Vec<u8>, Rc> {
    let (n, e) = object::rsa_public_parts(&key.public)?;
    let em = match scheme.alg {
        alg::OAEP => {
            rsa_pad::oaep_encode(HashAlg::from_alg(scheme.hash)?, msg, &label, n.len(), rng)?
        }
        alg::RSAES => rsa_pad::pkcs1_encode(msg, n.len(), rng)?,
        _ => return Err(Rc::SCHEME),
    };
    rsa_pad::public_op(n, e, &em)
}

/// The RSA private operation and the decoding of its block: the key's constant-time CRT
/// operation, then a constant-time decoding; a block that does not decode is TPM_RC_VALUE.
pub(crate) fn rsa_dec(
    key: &Object,
    scheme: Scheme,
    ct: &[u8],
    label: Vec<u8>,
    rng: &mut crate::crypto::Drbg,
) -> Result<Vec<u8>, Rc> {
    let sk = object::rsa_private(&key.public, key.sens.as_ref().ok_or(Rc::KEY)?)?;
    let h = match scheme.alg {
        alg::OAEP => Some(HashAlg::from_alg(scheme.hash)?),
        alg::RSAES => None,
        _ => return Err(Rc::SCHEME),
    };
    // A ciphertext of k bytes (leading zeros kept) below n, as the reference requires.
    if ct.len() > sk.size() {
        return Err(Rc::VALUE);
    }
    let mut em = sk.private(ct, rng).ok_or(Rc::VALUE)?;
    let out = match h {
        Some(h) => rsa_pad::oaep_decode(h, &em, &label),
        None => rsa_pad::pkcs1_decode(&em),
    };
    em.zeroize();
    out
}

/// TPM2B_ID_OBJECT contents (Part 1 §24): the credential, as a TPM2B, under the outer wrapper
/// of duplication keyed by the seed and the name of the object it is bound to.
fn make_id_object(key: &Object, seed: &[u8], cred: &[u8], name: &[u8]) -> Result<Vec<u8>, Rc> {
    let mut w = Writer::new();
    w.tpm2b(cred);
    super::duplication::outer_wrap(&key.public, seed, name, &w.into_vec())
}

fn open_id_object(key: &Object, seed: &[u8], blob: &[u8], name: &[u8]) -> Result<Vec<u8>, Rc> {
    // A blob cut inside its integrity field is TPM_RC_INSUFFICIENT, as for Import (the
    // reference's UnwrapOuter serves both too).
    let plain = super::duplication::outer_unwrap(&key.public, seed, name, blob)?;
    let mut r = Reader::new(&plain);
    let cred = r.tpm2b(64).map_err(|_| Rc::INTEGRITY)?.to_vec();
    r.finish().map_err(|_| Rc::INTEGRITY)?;
    Ok(cred)
}
