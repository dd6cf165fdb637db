//! Object commands: CreatePrimary, Create, CreateLoaded, Load, LoadExternal, ReadPublic,
//! Unseal, ObjectChangeAuth, EvictControl, FlushContext, ContextSave, ContextLoad (Part 3 ch. 12, 24, 28);
//! Duplicate and Import dispatch to `duplication`.

use crate::Platform;
use crate::crypto::aes::Aes;
use crate::crypto::{Drbg, HashAlg, alg, ct_eq, kdfa};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::marshal::{Reader, Writer};
use crate::object::{self, Object, Params, Public, Sensitive, attr};
use crate::pcr;
use crate::rc::{At, Rc};
use alloc::vec::Vec;
use zeroize::Zeroize;

const ST_CREATION: u16 = 0x8021;
pub(crate) const ST_HASHCHECK: u16 = 0x8024;
pub(crate) const ST_VERIFIED: u16 = 0x8022;

/// Inputs shared by CreatePrimary, Create and CreateLoaded.
struct CreateIn {
    auth: Vec<u8>,
    data: Vec<u8>,
    public: Public,
    template: Vec<u8>,
    outside: Vec<u8>,
    pcrs: Vec<pcr::Selection>,
}

fn parse_create(r: &mut Reader<'_>, with_creation: bool) -> Result<CreateIn, Rc> {
    let mut s = r.sized().p(1)?;
    let auth = s.tpm2b(64).p(1)?.to_vec();
    let data = s.tpm2b(256).p(1)?.to_vec();
    s.finish().p(1)?;
    let mut pr = r.sized().p(2)?;
    let template = pr.rest().to_vec();
    let public = Public::parse(&mut pr).p(2)?;
    pr.finish().p(2)?;
    let (outside, pcrs) = if with_creation {
        let o = r.tpm2b(64).p(3)?.to_vec();
        (o, pcr::parse_selection(r).p(4)?)
    } else {
        (Vec::new(), Vec::new())
    };
    r.finish().p(if with_creation { 4 } else { 2 })?;
    public.check_create().p(2)?;
    let h = public.hash().p(2)?;
    if crate::engine::trim(&auth).len() > h.size() {
        return Err(Rc::SIZE.param(1));
    }
    match public.params {
        Params::Rsa { .. } | Params::Ecc { .. } if !data.is_empty() => {
            return Err(Rc::SIZE.param(1));
        }
        // A symmetric key's bytes come from the caller exactly when sensitiveDataOrigin is
        // clear (as in libtpms' TPM2_Create); their length is checked when the key is made.
        Params::Sym { .. } if public.has(attr::SENSITIVE_DATA_ORIGIN) != data.is_empty() => {
            return Err(Rc::ATTRIBUTES.param(2));
        }
        Params::Sym { sym, .. } if !data.is_empty() && data.len() != usize::from(sym.bits) / 8 => {
            // libtpms' CryptGenerateKeySymmetric: no parameter number.
            return Err(Rc::KEY_SIZE);
        }
        Params::KeyedHash { .. } if public.has(attr::SENSITIVE_DATA_ORIGIN) && !data.is_empty() => {
            return Err(Rc::ATTRIBUTES.param(2));
        }
        _ => {}
    }
    Ok(CreateIn {
        auth: crate::engine::trim(&auth).to_vec(),
        data,
        public,
        template,
        outside,
        pcrs,
    })
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_more(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        use crate::cc::code::*;
        match c.cc {
            CREATE_PRIMARY => self.create_primary(c),
            CREATE => self.create(c, false),
            CREATE_LOADED => self.create(c, true),
            LOAD => self.load(c),
            LOAD_EXTERNAL => self.load_external(c),
            READ_PUBLIC => self.read_public(c),
            UNSEAL => self.unseal(c),
            OBJECT_CHANGE_AUTH => self.object_change_auth(c),
            EVICT_CONTROL => self.evict_control(c),
            FLUSH_CONTEXT => self.flush_context(c),
            CONTEXT_SAVE => self.context_save(c),
            CONTEXT_LOAD => self.context_load(c),
            DUPLICATE => self.duplicate(c),
            IMPORT => self.import(c),
            REWRAP => self.rewrap(c),
            _ => self.dispatch_crypto(c),
        }
    }

    pub(crate) fn iv(&mut self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        self.rng.fill(&mut iv);
        iv
    }

    pub(crate) fn hierarchy_seed(&self, hier: u32) -> Vec<u8> {
        match hier {
            h::RH_OWNER => self.p.sps.clone(),
            h::RH_ENDORSEMENT => self.p.eps.clone(),
            h::RH_PLATFORM => self.p.pps.clone(),
            _ => kdfa(
                HashAlg::Sha256,
                &self.v.context_key,
                b"NULL SEED",
                b"",
                b"",
                512,
            ),
        }
    }

    pub(crate) fn proof(&self, hier: u32) -> Vec<u8> {
        match hier {
            h::RH_OWNER => self.p.sh_proof.clone(),
            h::RH_ENDORSEMENT => self.p.eh_proof.clone(),
            h::RH_PLATFORM => self.p.ph_proof.clone(),
            _ => kdfa(
                HashAlg::Sha256,
                &self.v.context_key,
                b"NULL PROOF",
                b"",
                b"",
                256,
            ),
        }
    }

    /// A ticket (TPMT_TK_*): HMAC of the tagged data under the hierarchy proof; NULL hierarchy
    /// tickets are empty, except creation tickets (MACed with the per-reset NULL proof, as in
    /// the reference implementation, so CertifyCreation can check them).
    pub(crate) fn ticket(&self, w: &mut Writer, tag: u16, hier: u32, h: HashAlg, parts: &[&[u8]]) {
        w.u16(tag);
        if hier == h::RH_NULL && tag != ST_CREATION {
            w.u32(h::RH_NULL).u16(0);
            return;
        }
        let mut all: Vec<&[u8]> = Vec::new();
        let t = tag.to_be_bytes();
        all.push(&t);
        all.extend_from_slice(parts);
        // Tickets are opaque to clients; like libtpms, MAC them with SHA-512 whatever the data.
        let _ = h;
        let mac = HashAlg::Sha512.hmac(&self.proof(hier), &all);
        w.u32(hier).tpm2b(&mac);
    }

    fn creation_data(
        &mut self,
        c: &Ctx<'_>,
        inp: &CreateIn,
        public: &Public,
        parent_name_alg: u16,
        parent_name: &[u8],
        parent_qn: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let h = public.hash().unwrap_or(HashAlg::Sha256);
        let mut w = Writer::new();
        pcr::write_selection(&mut w, &inp.pcrs);
        w.tpm2b(&self.v.pcrs.digest(&inp.pcrs, h));
        w.u8(1u8 << c.locality.min(4));
        w.u16(parent_name_alg)
            .tpm2b(parent_name)
            .tpm2b(parent_qn)
            .tpm2b(&inp.outside);
        let data = w.into_vec();
        let digest = h.digest(&[&data]);
        (data, digest)
    }

    /// The primary object that `key` (KDFa of the hierarchy seed, template and data) derives:
    /// from the cache of the last eight, else generated and cached. Every primary goes
    /// through here, so asking again for a primary never regenerates its primes.
    fn primary(
        &mut self,
        key: &[u8],
        template: &Public,
        data: &[u8],
    ) -> Result<(Public, Sensitive), Rc> {
        let mut cache_key = [0u8; 32];
        cache_key.copy_from_slice(key);
        let hit = self
            .primary_cache
            .iter()
            .find(|e| ct_eq(&e.key, &cache_key))
            .map(|e| (e.public.clone(), e.sens.clone()));
        if let Some(found) = hit {
            return Ok(found);
        }
        let mut public = template.clone();
        object::check_generation(&public)?;
        let sens = object::generate(&mut public, &mut Drbg::new(key), data).p(2)?;
        if self.primary_cache.len() >= 8 {
            self.primary_cache.remove(0);
        }
        self.primary_cache.push(object::PrimaryEntry {
            key: cache_key,
            public: public.clone(),
            sens: sens.clone(),
        });
        cache_key.zeroize();
        Ok((public, sens))
    }

    fn create_primary(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let hier = c.handles[0];
        if !matches!(
            hier,
            h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM | h::RH_NULL
        ) {
            return Err(Rc::VALUE.handle(1));
        }
        let inp = parse_create(&mut c.params, true)?;
        super::duplication::check_duplication_attrs(&inp.public, None).p(2)?;
        self.free_object_slot()?;
        let seed = self.hierarchy_seed(hier);
        let th = HashAlg::Sha256;
        let key = kdfa(
            th,
            &seed,
            b"Primary Object Creation",
            &th.digest(&[&inp.template]),
            &th.digest(&[&inp.data]),
            256,
        );
        let (public, mut sens) = self.primary(&key, &inp.public, &inp.data)?;
        sens.auth = inp.auth.clone();
        let name = public.name();
        let hb = hier.to_be_bytes();
        let qualified = qualify(&public, &hb, &name);
        let (cdata, chash) = self.creation_data(c, &inp, &public, alg::NULL, &hb, &hb);
        let obj = Object {
            public: public.clone(),
            sens: Some(sens),
            hierarchy: hier,
            name: name.clone(),
            qualified,
        };
        let handle = self.load_object(obj)?;
        let mut o = Out::new();
        o.handle = Some(handle);
        public.write_2b(&mut o.params);
        o.params.tpm2b(&cdata).tpm2b(&chash);
        self.ticket(
            &mut o.params,
            ST_CREATION,
            hier,
            public.hash().p(2)?,
            &[&name, &chash],
        );
        o.params.tpm2b(&name);
        Ok(o)
    }

    /// The parent object for Create/Load: loaded, with its private part, a storage key.
    fn storage_parent(&self, hdl: u32) -> Result<Object, Rc> {
        if hdl == h::RH_NULL || h::ty(hdl) == h::HT_PERMANENT {
            return Err(Rc::TYPE.handle(1));
        }
        let parent = self.object(hdl).h(1)?.clone();
        if !parent.public.is_storage_parent() || parent.sens.is_none() {
            return Err(Rc::TYPE.handle(1));
        }
        Ok(parent)
    }

    fn create(&mut self, c: &mut Ctx<'_>, loaded: bool) -> Result<Out, Rc> {
        let parent_h = c.handles[0];
        if loaded
            && matches!(
                parent_h,
                h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM | h::RH_NULL
            )
        {
            // CreateLoaded with a hierarchy creates a primary object.
            let mut o = self.create_primary_loaded(c)?;
            o.handle = o.handle.or(None);
            return Ok(o);
        }
        let parent = self.storage_parent(parent_h)?;
        let inp = parse_create(&mut c.params, !loaded)?;
        if inp.public.has(attr::FIXED_TPM) && !parent.public.has(attr::FIXED_TPM) {
            return Err(Rc::ATTRIBUTES.param(2));
        }
        super::duplication::check_duplication_attrs(&inp.public, Some(&parent.public)).p(2)?;
        if loaded {
            self.free_object_slot()?;
        }
        let mut public = inp.public.clone();
        object::check_generation(&public)?;
        let mut sens = object::generate(&mut public, &mut self.rng, &inp.data).p(2)?;
        sens.auth = inp.auth.clone();
        let name = public.name();
        let private = wrap_private(&parent, &public, &sens, &name, self.iv())?;
        let mut o = Out::new();
        if loaded {
            let qualified = qualify(&public, &parent.qualified, &name);
            let obj = Object {
                public: public.clone(),
                sens: Some(sens),
                hierarchy: parent.hierarchy,
                name: name.clone(),
                qualified,
            };
            o.handle = Some(self.load_object(obj)?);
            o.params.tpm2b(&private);
            public.write_2b(&mut o.params);
            o.params.tpm2b(&name);
        } else {
            let (cdata, chash) = self.creation_data(
                c,
                &inp,
                &public,
                parent.public.name_alg,
                &parent.name,
                &parent.qualified,
            );
            o.params.tpm2b(&private);
            public.write_2b(&mut o.params);
            o.params.tpm2b(&cdata).tpm2b(&chash);
            self.ticket(
                &mut o.params,
                ST_CREATION,
                parent.hierarchy,
                public.hash().p(2)?,
                &[&name, &chash],
            );
        }
        Ok(o)
    }

    fn create_primary_loaded(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        // Same derivation as CreatePrimary; CreateLoaded has no creation data in or out.
        let hier = c.handles[0];
        let inp = parse_create(&mut c.params, false)?;
        super::duplication::check_duplication_attrs(&inp.public, None).p(2)?;
        self.free_object_slot()?;
        let seed = self.hierarchy_seed(hier);
        let th = HashAlg::Sha256;
        let key = kdfa(
            th,
            &seed,
            b"Primary Object Creation",
            &th.digest(&[&inp.template]),
            &th.digest(&[&inp.data]),
            256,
        );
        let (public, mut sens) = self.primary(&key, &inp.public, &inp.data)?;
        sens.auth = inp.auth.clone();
        let name = public.name();
        let qualified = qualify(&public, &hier.to_be_bytes(), &name);
        let obj = Object {
            public: public.clone(),
            sens: Some(sens),
            hierarchy: hier,
            name: name.clone(),
            qualified,
        };
        let mut o = Out::new();
        o.handle = Some(self.load_object(obj)?);
        o.params.u16(0);
        public.write_2b(&mut o.params);
        o.params.tpm2b(&name);
        Ok(o)
    }

    fn load(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let parent = self.storage_parent(c.handles[0])?;
        let private = c.params.tpm2b(1024).p(1)?.to_vec();
        let mut pr = c.params.sized().p(2)?;
        let public = Public::parse(&mut pr).p(2)?;
        pr.finish().p(2)?;
        c.params.finish().p(2)?;
        if public.name_alg == alg::NULL {
            return Err(Rc::HASH.param(2));
        }
        let name = public.name();
        let mut sens = unwrap_private(&parent, &public, &private, &name).p(1)?;
        // The attribute and scheme rules hold for what is loaded, not only for what this TPM
        // created: a blob can come from Import below a parent that is not fixedTPM.
        public.check_load(Some(&parent.public)).p(2)?;
        object::check_loaded_pair(&public, &mut sens, 2)?;
        let qualified = qualify(&public, &parent.qualified, &name);
        let obj = Object {
            public,
            sens: Some(sens),
            hierarchy: parent.hierarchy,
            name: name.clone(),
            qualified,
        };
        let mut o = Out::new();
        o.handle = Some(self.load_object(obj)?);
        o.params.tpm2b(&name);
        Ok(o)
    }

    fn load_external(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let mut sr = c.params.sized().p(1)?;
        let sens_bytes = sr.rest().to_vec();
        let _ = sr.bytes(sr.remaining());
        let mut pr = c.params.sized().p(2)?;
        let public = Public::parse(&mut pr).p(2)?;
        pr.finish().p(2)?;
        let hier = c.params.u32().p(3)?;
        c.params.finish().p(3)?;
        if !matches!(
            hier,
            h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM | h::RH_NULL
        ) {
            return Err(Rc::VALUE.param(3));
        }
        let sens = if sens_bytes.is_empty() {
            None
        } else {
            if hier != h::RH_NULL {
                return Err(Rc::HIERARCHY.param(3));
            }
            if public.has(attr::FIXED_TPM) || public.has(attr::FIXED_PARENT) {
                return Err(Rc::ATTRIBUTES.param(2));
            }
            let mut r = Reader::new(&sens_bytes);
            let mut s = Sensitive::parse(&mut r, public.ty()).p(1)?;
            r.finish().p(1)?;
            object::check_loaded_pair(&public, &mut s, 2)?;
            Some(s)
        };
        self.free_object_slot()?;
        let name = if public.name_alg == alg::NULL {
            Vec::new()
        } else {
            public.name()
        };
        let qualified = qualify(&public, &hier.to_be_bytes(), &name);
        let obj = Object {
            public,
            sens,
            hierarchy: hier,
            name: name.clone(),
            qualified,
        };
        let mut o = Out::new();
        o.handle = Some(self.load_object(obj)?);
        o.params.tpm2b(&name);
        Ok(o)
    }

    fn read_public(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let obj = self.object(c.handles[0]).h(1)?;
        let mut o = Out::new();
        obj.public.write_2b(&mut o.params);
        o.params.tpm2b(&obj.name).tpm2b(&obj.qualified);
        Ok(o)
    }

    fn unseal(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let obj = self.object(c.handles[0]).h(1)?;
        if !matches!(obj.public.params, Params::KeyedHash { .. }) {
            return Err(Rc::TYPE.handle(1));
        }
        if obj.public.has(attr::SIGN)
            || obj.public.has(attr::DECRYPT)
            || obj.public.has(attr::RESTRICTED)
        {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        let data = obj
            .sens
            .as_ref()
            .map(|s| s.secret.clone())
            .unwrap_or_default();
        let mut o = Out::new();
        o.params.tpm2b(&data);
        Ok(o)
    }

    fn object_change_auth(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let new_auth = c.params.tpm2b(64).p(1)?.to_vec();
        c.params.finish().p(1)?;
        if h::ty(c.handles[0]) != h::HT_TRANSIENT {
            return Err(Rc::HANDLE.handle(1));
        }
        let obj = self.object(c.handles[0]).h(1)?.clone();
        let parent = self.storage_parent(c.handles[1]).map_err(|e| {
            if e == Rc::TYPE.handle(1) {
                Rc::TYPE.handle(2)
            } else {
                e
            }
        })?;
        let hsize = obj.public.hash().p(1)?.size();
        let new_auth = crate::engine::trim(&new_auth).to_vec();
        if new_auth.len() > hsize {
            return Err(Rc::SIZE.param(1));
        }
        if qualify(&obj.public, &parent.qualified, &obj.name) != obj.qualified {
            return Err(Rc::TYPE.handle(2));
        }
        let mut sens = obj.sens.clone().ok_or(Rc::TYPE.handle(1))?;
        sens.auth = new_auth;
        let private = wrap_private(&parent, &obj.public, &sens, &obj.name, self.iv())?;
        let mut o = Out::new();
        o.params.tpm2b(&private);
        Ok(o)
    }

    fn evict_control(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let auth = c.handles[0];
        let obj_h = c.handles[1];
        let persistent = c.params.u32().p(1)?;
        c.params.finish().p(1)?;
        if !matches!(auth, h::RH_OWNER | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        if h::ty(persistent) != h::HT_PERSISTENT {
            return Err(Rc::VALUE.param(1));
        }
        let owner_range = h::persistent_owner_range(persistent);
        if (auth == h::RH_OWNER) != owner_range {
            return Err(Rc::RANGE.param(1));
        }
        let obj = self.object(obj_h).h(2)?.clone();
        let hier_ok = if auth == h::RH_PLATFORM {
            obj.hierarchy == h::RH_PLATFORM
        } else {
            obj.hierarchy != h::RH_PLATFORM
        };
        if !hier_ok {
            return Err(Rc::HIERARCHY);
        }
        match h::ty(obj_h) {
            h::HT_TRANSIENT => {
                if obj.hierarchy == h::RH_NULL
                    || obj.public.has(attr::ST_CLEAR)
                    || obj.sens.is_none()
                {
                    return Err(Rc::ATTRIBUTES.handle(2));
                }
                if self.p.persistent.iter().any(|(p, _)| *p == persistent) {
                    return Err(Rc::NV_DEFINED);
                }
                if self.p.persistent.len() >= crate::engine::PERSISTENT_SLOTS {
                    return Err(Rc::NV_SPACE);
                }
                self.p.persistent.push((persistent, obj));
                self.p.persistent.sort_by_key(|(p, _)| *p);
            }
            _ => {
                if obj_h != persistent {
                    return Err(Rc::HANDLE.param(1));
                }
                self.p.persistent.retain(|(p, _)| *p != persistent);
            }
        }
        self.persist();
        Ok(Out::new())
    }

    fn flush_context(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let hdl = c.params.u32().p(1)?;
        c.params.finish().p(1)?;
        match h::ty(hdl) {
            h::HT_TRANSIENT => {
                let slot = self
                    .v
                    .objects
                    .get_mut((hdl - h::TRANSIENT_FIRST) as usize)
                    .filter(|o| o.is_some())
                    .ok_or(Rc::HANDLE.param(1))?;
                *slot = None;
                self.v.seqs[(hdl - h::TRANSIENT_FIRST) as usize] = None;
            }
            h::HT_HMAC_SESSION | h::HT_POLICY_SESSION => {
                if !self.flush_session(hdl) {
                    return Err(Rc::HANDLE.param(1));
                }
            }
            _ => return Err(Rc::VALUE.param(1)),
        }
        Ok(Out::new())
    }

    fn context_key(&self, seq: u64, handle: u32, hier: u32) -> (Vec<u8>, Vec<u8>) {
        let ctx = [
            seq.to_be_bytes().as_slice(),
            &handle.to_be_bytes(),
            &hier.to_be_bytes(),
        ]
        .concat();
        let enc = kdfa(
            HashAlg::Sha256,
            &self.v.context_key,
            b"CONTEXT ENC",
            &ctx,
            b"",
            256 + 128,
        );
        let mac = kdfa(
            HashAlg::Sha256,
            &self.v.context_key,
            b"CONTEXT MAC",
            &ctx,
            b"",
            256,
        );
        (enc, mac)
    }

    pub(crate) fn seal_context(
        &mut self,
        seq: u64,
        handle: u32,
        hier: u32,
        plain: &[u8],
    ) -> Vec<u8> {
        let (enc, mac) = self.context_key(seq, handle, hier);
        let mut data = plain.to_vec();
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&enc[32..48]);
        Aes::new(&enc[..32])
            .expect("256-bit key")
            .cfb_encrypt(&iv, &mut data);
        let tag = HashAlg::Sha256.hmac(&mac, &[&data]);
        let mut w = Writer::new();
        w.tpm2b(&tag).bytes(&data);
        w.into_vec()
    }

    pub(crate) fn open_context(
        &self,
        seq: u64,
        handle: u32,
        hier: u32,
        blob: &[u8],
    ) -> Result<Vec<u8>, Rc> {
        let (enc, mac) = self.context_key(seq, handle, hier);
        let mut r = Reader::new(blob);
        let tag = r.tpm2b(64).map_err(|_| Rc::INTEGRITY)?;
        let mut data = r.rest().to_vec();
        if !ct_eq(tag, &HashAlg::Sha256.hmac(&mac, &[&data])) {
            return Err(Rc::INTEGRITY);
        }
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&enc[32..48]);
        Aes::new(&enc[..32])
            .expect("256-bit key")
            .cfb_decrypt(&iv, &mut data);
        Ok(data)
    }

    fn context_save(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let hdl = c.handles[0];
        let (saved, hier, plain) = match h::ty(hdl) {
            h::HT_TRANSIENT => {
                let obj = self.object(hdl).h(1)?;
                let mut w = Writer::new();
                crate::state::write_object(&mut w, obj);
                let seq = &self.v.seqs[(hdl - h::TRANSIENT_FIRST) as usize];
                let saved = if let Some(seq) = seq {
                    seq.write(&mut w);
                    0x8000_0001
                } else if obj.public.has(attr::ST_CLEAR) {
                    0x8000_0002
                } else {
                    h::TRANSIENT_FIRST
                };
                (saved, obj.hierarchy, w.into_vec())
            }
            h::HT_HMAC_SESSION | h::HT_POLICY_SESSION => {
                let plain = self.save_session(hdl).h(1)?;
                (hdl, h::RH_NULL, plain)
            }
            _ => return Err(Rc::HANDLE.handle(1)),
        };
        let seq = self.v.context_seq;
        self.v.context_seq += 1;
        if h::ty(hdl) != h::HT_TRANSIENT {
            self.mark_session_saved(hdl, seq);
        }
        let blob = self.seal_context(seq, saved, hier, &plain);
        let mut o = Out::new();
        o.params.u64(seq).u32(saved).u32(hier).tpm2b(&blob);
        Ok(o)
    }

    fn context_load(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let seq = c.params.u64().p(1)?;
        let saved = c.params.u32().p(1)?;
        let hier = c.params.u32().p(1)?;
        let blob = c.params.tpm2b(4096).p(1)?.to_vec();
        c.params.finish().p(1)?;
        let plain = self.open_context(seq, saved, hier, &blob).p(1)?;
        let mut o = Out::new();
        match h::ty(saved) {
            h::HT_TRANSIENT => {
                let mut r = Reader::new(&plain);
                let obj = crate::state::read_object(&mut r).map_err(|_| Rc::INTEGRITY.param(1))?;
                self.check_object_hierarchy_pub(obj.hierarchy)?;
                let seq = if saved == 0x8000_0001 {
                    Some(crate::cmd::Seq::read(&mut r).map_err(|_| Rc::INTEGRITY.param(1))?)
                } else {
                    None
                };
                let hd = self.load_object(obj)?;
                self.v.seqs[(hd - h::TRANSIENT_FIRST) as usize] = seq;
                o.handle = Some(hd);
            }
            h::HT_HMAC_SESSION | h::HT_POLICY_SESSION => {
                self.load_session(saved, seq, &plain)?;
                o.handle = Some(saved);
            }
            _ => return Err(Rc::HANDLE.param(1)),
        }
        o.params = core::mem::take(&mut o.params);
        Ok(o)
    }

    fn check_object_hierarchy_pub(&self, hier: u32) -> Result<(), Rc> {
        let ok = match hier {
            h::RH_OWNER => self.v.sh_enable,
            h::RH_ENDORSEMENT => self.v.eh_enable,
            h::RH_PLATFORM => self.v.ph_enable,
            _ => true,
        };
        if ok { Ok(()) } else { Err(Rc::HIERARCHY) }
    }
}

/// Qualified name: nameAlg || H(parent QN || name).
pub(crate) fn qualify(public: &Public, parent_qn: &[u8], name: &[u8]) -> Vec<u8> {
    match public.hash() {
        Ok(h) => {
            let mut q = Vec::from(public.name_alg.to_be_bytes());
            q.extend_from_slice(&h.digest(&[parent_qn, name]));
            q
        }
        Err(_) => Vec::new(),
    }
}

fn parent_keys(parent: &Object, name: &[u8]) -> Result<(Aes, HashAlg, Vec<u8>), Rc> {
    let ph = parent.public.hash()?;
    let sym = parent.public.sym();
    let seed = &parent.sens.as_ref().ok_or(Rc::TYPE)?.seed;
    let sym_key = kdfa(ph, seed, b"STORAGE", name, b"", u32::from(sym.bits));
    let hmac_key = kdfa(ph, seed, b"INTEGRITY", b"", b"", (ph.size() * 8) as u32);
    Ok((Aes::new(&sym_key).ok_or(Rc::SYMMETRIC)?, ph, hmac_key))
}

/// TPM2B_PRIVATE contents (Part 1 §23, as the reference code lays it out): outer HMAC, a
/// fresh IV, then the AES-CFB-encrypted TPM2B_SENSITIVE. The HMAC covers IV, ciphertext and
/// name. A fresh IV matters: ObjectChangeAuth re-wraps the same object under the same key.
pub(crate) fn wrap_private(
    parent: &Object,
    public: &Public,
    sens: &Sensitive,
    name: &[u8],
    iv: [u8; 16],
) -> Result<Vec<u8>, Rc> {
    let (aes, ph, hmac_key) = parent_keys(parent, name)?;
    let mut inner = Writer::new();
    sens.write(public.ty(), &mut inner);
    let mut w = Writer::new();
    w.tpm2b(&inner.into_vec());
    let mut enc = w.into_vec();
    aes.cfb_encrypt(&iv, &mut enc);
    let mut body = Writer::new();
    body.tpm2b(&iv).bytes(&enc);
    let body = body.into_vec();
    let mac = ph.hmac(&hmac_key, &[&body, name]);
    let mut out = Writer::new();
    out.tpm2b(&mac).bytes(&body);
    Ok(out.into_vec())
}

pub(crate) fn unwrap_private(
    parent: &Object,
    public: &Public,
    private: &[u8],
    name: &[u8],
) -> Result<Sensitive, Rc> {
    let (aes, ph, hmac_key) = parent_keys(parent, name)?;
    let mut r = Reader::new(private);
    let mac = r.tpm2b(64).map_err(|_| Rc::INTEGRITY)?;
    let body = r.rest();
    if !ct_eq(mac, &ph.hmac(&hmac_key, &[body, name])) {
        return Err(Rc::INTEGRITY);
    }
    let mut br = Reader::new(body);
    let iv_b = br.tpm2b(16).map_err(|_| Rc::INTEGRITY)?;
    let mut iv = [0u8; 16];
    if iv_b.len() != 16 {
        return Err(Rc::INTEGRITY);
    }
    iv.copy_from_slice(iv_b);
    let mut enc = br.rest().to_vec();
    aes.cfb_decrypt(&iv, &mut enc);
    let mut r = Reader::new(&enc);
    let mut s = r.sized().map_err(|_| Rc::INTEGRITY)?;
    let sens = Sensitive::parse(&mut s, public.ty()).map_err(|_| Rc::INTEGRITY)?;
    Ok(sens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{PrimaryEntry, Scheme, SymDef};
    use alloc::sync::Arc;

    /// Every type that holds a secret wipes it when dropped (a compile-time check: removing
    /// one of these `ZeroizeOnDrop` promises, or its type's wiping `Drop`, fails the build of
    /// this test; that each `Drop` wipes every field is shown by the `zeroize` tests).
    #[test]
    fn secret_holders_wipe_on_drop() {
        fn wipes<T: zeroize::ZeroizeOnDrop>() {}
        wipes::<Drbg>();
        wipes::<Sensitive>();
        wipes::<PrimaryEntry>();
        wipes::<crate::crypto::rsa_key::RsaKey>();
        wipes::<crate::crypto::sieve::Sieve>();
        wipes::<crate::session::Session>();
        wipes::<crate::engine::Permanent>();
    }

    #[test]
    fn sensitive_zeroize_clears_its_secrets() {
        let mut s = Sensitive::new(alloc::vec![1; 8], alloc::vec![2; 32], alloc::vec![3; 64]);
        s.zeroize();
        assert!(s.auth.is_empty() && s.seed.is_empty() && s.secret.is_empty());
        assert!(s.rsa.is_none());
    }

    fn template(params: Params) -> Public {
        Public {
            name_alg: alg::SHA256,
            attrs: attr::FIXED_TPM
                | attr::FIXED_PARENT
                | attr::SENSITIVE_DATA_ORIGIN
                | attr::USER_WITH_AUTH
                | attr::SIGN,
            policy: Vec::new(),
            params,
        }
    }

    /// A primary's CRT key leaves memory (its wiping drop runs) once the cache lets go of it:
    /// when eight newer primaries evict it, and when the cache is cleared. Shown through a
    /// weak reference to the key, which no longer upgrades once the last copy is dropped.
    #[test]
    fn evicted_and_cleared_primaries_release_their_keys() {
        let mut t = Tpm::new(crate::MemPlatform::with_seed(5)).unwrap();
        let rsa = template(Params::Rsa {
            sym: SymDef::NULL,
            scheme: Scheme::NULL,
            bits: 1024,
            exponent: 0,
            n: Vec::new(),
        });
        let hmac = template(Params::KeyedHash {
            scheme: Scheme {
                alg: alg::HMAC,
                hash: alg::SHA256,
                count: 0,
            },
            kdf: alg::NULL,
            unique: Vec::new(),
        });
        let weak_key = |t: &mut Tpm<crate::MemPlatform>, seed: u8| {
            let (_, sens) = t.primary(&[seed; 32], &rsa, &[]).unwrap();
            Arc::downgrade(sens.rsa.as_ref().expect("an RSA primary has its CRT key"))
        };
        let first = weak_key(&mut t, 0);
        assert!(first.upgrade().is_some(), "the cache holds the key");
        for i in 1..=8u8 {
            t.primary(&[i; 32], &hmac, &[]).unwrap();
        }
        assert_eq!(t.primary_cache.len(), 8);
        assert!(first.upgrade().is_none(), "the evicted key is still alive");

        let second = weak_key(&mut t, 9);
        assert!(second.upgrade().is_some());
        t.primary_cache.clear();
        assert!(second.upgrade().is_none(), "the cleared key is still alive");
    }
}
