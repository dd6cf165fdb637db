//! Authorisation sessions: password (TPM_RS_PW), HMAC and policy sessions (salted and/or bound),
//! command/response HMACs, parameter encryption (AES-CFB and XOR) and the policy commands.

use crate::Platform;
use crate::cc::Role;
use crate::crypto::{HashAlg, alg, ct_eq, kdfa};
use crate::engine::{AuthIn, Ctx, Out, Tpm, sattr};
use crate::handle as h;
use crate::marshal::{Reader, Writer};
use crate::object::SymDef;
use crate::rc::At;
use crate::rc::Rc;
use alloc::vec::Vec;

const SE_HMAC: u8 = 0;
const SE_POLICY: u8 = 1;
pub(crate) const SE_TRIAL: u8 = 3;

/// What the session's cpHash slot holds (Part 3: cpHash and nameHash share one slot, so a
/// session can be limited to a command's parameters or to its handles, not both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    None,
    CpHash,
    NameHash,
    /// PolicyTemplate: the hash of the template Create/CreatePrimary/CreateLoaded must use.
    Template,
}

/// A started HMAC, policy or trial session. The session key is wiped on drop and not printed.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) handle: u32,
    pub(crate) kind: u8,
    pub(crate) hash: HashAlg,
    pub(crate) nonce_tpm: Vec<u8>,
    session_key: Vec<u8>,
    sym: SymDef,
    /// Name of the bind entity (empty when unbound).
    bind_name: Vec<u8>,
    pub(crate) policy_digest: Vec<u8>,
    pub(crate) need_auth_value: bool,
    pub(crate) need_password: bool,
    /// Command code fixed by PolicyCommandCode.
    pub(crate) cc: Option<u32>,
    /// cpHash (PolicyCpHash, or cpHashA of PolicySigned/Secret/Ticket) or nameHash.
    pub(crate) bound: Bound,
    pub(crate) bound_digest: Vec<u8>,
    /// TPMA_LOCALITY set by PolicyLocality (0: any locality).
    pub(crate) locality: u8,
    /// When the session started (ms since power-on): the base of nonce-bound expirations.
    pub(crate) start_time: u64,
    /// When the policy stops authorising (ms since power-on; 0: never).
    pub(crate) timeout: u64,
    /// The PCR update counter when PolicyPCR last checked the PCRs (None: no PolicyPCR since
    /// the policy started). Any PCR change since then makes the session fail with
    /// TPM_RC_PCR_CHANGED. (The reference uses 0 for "none", which lets a PolicyPCR made while
    /// the counter is still 0 survive later PCR changes; an explicit None closes that gap.)
    pub(crate) pcr_counter: Option<u32>,
    /// PolicyNvWritten and PolicyPhysicalPresence conditions (state format 6 on).
    pub(crate) more: crate::cmd::PolicyMore,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("handle", &self.handle)
            .field("kind", &self.kind)
            .field("hash", &self.hash)
            .field("policy_digest", &self.policy_digest)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.session_key);
    }
}

impl zeroize::ZeroizeOnDrop for Session {}

impl Session {
    pub(crate) fn write(&self, w: &mut Writer) {
        self.write_ext(w, crate::state::STATE_VERSION);
    }
    /// Writes the session as state format `version` has it: the policy extension from format
    /// 4 on, the PolicyPCR counter from format 5 on, PolicyNvWritten/PhysicalPresence from 6 on.
    pub(crate) fn write_ext(&self, w: &mut Writer, version: u16) {
        let ext = version >= 4;
        w.u32(self.handle)
            .u8(self.kind)
            .u16(self.hash.alg())
            .tpm2b(&self.nonce_tpm)
            .tpm2b(&self.session_key);
        w.u16(self.sym.alg)
            .u16(self.sym.bits)
            .u16(self.sym.mode)
            .tpm2b(&self.bind_name)
            .tpm2b(&self.policy_digest);
        w.u8(u8::from(self.need_auth_value) | (u8::from(self.need_password) << 1))
            .u32(self.cc.unwrap_or(0));
        if !ext {
            return;
        }
        // Policy extension (state format 4 on): cpHash/nameHash, locality, times.
        let bound = match self.bound {
            Bound::None => 0,
            Bound::CpHash => 1,
            Bound::NameHash => 2,
            Bound::Template => 3,
        };
        w.u8(bound)
            .tpm2b(&self.bound_digest)
            .u8(self.locality)
            .u64(self.start_time)
            .u64(self.timeout);
        if version >= 5 {
            // Format 5: the PolicyPCR counter (flag, value).
            w.u8(u8::from(self.pcr_counter.is_some()))
                .u32(self.pcr_counter.unwrap_or(0));
        }
        if version >= 6 {
            // Format 6: PolicyNvWritten / PolicyPhysicalPresence.
            self.more.write(w);
        }
    }
    /// Reads a session written in state format `version` (context blobs, None: each extension
    /// whenever bytes are left).
    pub(crate) fn read(r: &mut Reader<'_>, version: Option<u16>) -> Result<Session, Rc> {
        let ext = version.map(|v| v >= 4);
        let ext5 = version.map(|v| v >= 5);
        let ext6 = version.map(|v| v >= 6);
        let handle = r.u32()?;
        let kind = r.u8()?;
        let hash = HashAlg::from_alg(r.u16()?)?;
        let nonce_tpm = r.tpm2b(64)?.to_vec();
        let session_key = r.tpm2b(64)?.to_vec();
        let sym = SymDef {
            alg: r.u16()?,
            bits: r.u16()?,
            mode: r.u16()?,
        };
        let bind_name = r.tpm2b(66)?.to_vec();
        let policy_digest = r.tpm2b(64)?.to_vec();
        let flags = r.u8()?;
        let cc = r.u32()?;
        let (mut bound, mut bound_digest, mut locality, mut start_time, mut timeout) =
            (Bound::None, Vec::new(), 0, 0, 0);
        if ext.unwrap_or(r.remaining() > 0) {
            bound = match r.u8()? {
                0 => Bound::None,
                1 => Bound::CpHash,
                2 => Bound::NameHash,
                3 => Bound::Template,
                _ => return Err(Rc::VALUE),
            };
            bound_digest = r.tpm2b(64)?.to_vec();
            locality = r.u8()?;
            start_time = r.u64()?;
            timeout = r.u64()?;
        }
        let mut pcr_counter = None;
        if ext5.unwrap_or(r.remaining() > 0) {
            let set = r.u8()?;
            let value = r.u32()?;
            pcr_counter = match set {
                0 => None,
                1 => Some(value),
                _ => return Err(Rc::VALUE),
            };
        }
        // PolicyNvWritten / PolicyPhysicalPresence conditions: state format 6 on; context blobs
        // carry them when bytes are left.
        let more = if ext6.unwrap_or(r.remaining() > 0) {
            crate::cmd::PolicyMore::read(r)?
        } else {
            Default::default()
        };
        Ok(Session {
            more,
            handle,
            kind,
            hash,
            nonce_tpm,
            session_key,
            sym,
            bind_name,
            policy_digest,
            need_auth_value: flags & 1 != 0,
            need_password: flags & 2 != 0,
            cc: if cc == 0 { None } else { Some(cc) },
            bound,
            bound_digest,
            locality,
            start_time,
            timeout,
            pcr_counter,
        })
    }
    pub(crate) fn is_policy(&self) -> bool {
        self.kind != SE_HMAC
    }
    /// Back to the state StartAuthSession left (PolicyRestart, and after every use).
    fn reset_policy(&mut self) {
        self.policy_digest = alloc::vec![0; self.hash.size()];
        self.need_auth_value = false;
        self.need_password = false;
        self.cc = None;
        self.bound = Bound::None;
        self.bound_digest.clear();
        self.locality = 0;
        self.timeout = 0;
        self.more = Default::default();
        self.pcr_counter = None;
    }
    /// The command code a policy session is bound to (PolicyCommandCode), if any.
    pub(crate) fn command_code(&self) -> Option<u32> {
        self.cc
    }
    /// An audit session is never bound (its authValue use must show in every HMAC).
    pub(crate) fn unbind(&mut self) {
        self.bind_name.clear();
    }
}

/// What processing one authorisation produced, for parameter encryption and the response.
#[derive(Clone, Debug)]
pub(crate) struct SessionUse {
    attrs: u8,
    /// Index into the loaded session slots; None for a password session.
    slot: Option<usize>,
    nonce_caller: Vec<u8>,
    /// sessionKey || authValue (when the authValue takes part), the HMAC and encryption key.
    session_value: Vec<u8>,
    /// Policy session with PolicyPassword: the response HMAC is empty.
    password: bool,
    /// The authorised entity whose authValue is part of `session_value` (re-read for the
    /// response: HierarchyChangeAuth answers under the new value).
    auth_of: Option<u32>,
    /// The authValue a session bound to the entity it authorises leaves out of its HMAC key
    /// but still adds to its parameter-encryption key (the reference's ParseSessionBuffer
    /// takes the associated entity's authValue as extraKey whatever the binding).
    crypt_auth: Vec<u8>,
}

impl SessionUse {
    pub(crate) fn attrs(&self) -> u8 {
        self.attrs
    }
    /// The attributes the response reports (audit sets or clears auditExclusive).
    pub(crate) fn set_attrs(&mut self, attrs: u8) {
        self.attrs = attrs;
    }
    pub(crate) fn slot(&self) -> Option<usize> {
        self.slot
    }
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn session_index(&self, hdl: u32) -> Option<usize> {
        self.v
            .sessions
            .iter()
            .position(|s| s.as_ref().map(|s| s.handle) == Some(hdl))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_one_session(
        &mut self,
        a: &AuthIn,
        n: u32,
        bound: Option<u32>,
        role: Role,
        cc: u32,
        names: &[Vec<u8>],
        params: &[u8],
        all: &[AuthIn],
        idx: usize,
        locality: u8,
    ) -> Result<SessionUse, Rc> {
        if a.handle == h::RS_PW {
            return self.check_password_session(a, n, bound, role);
        }
        let slot = self.session_index(a.handle).ok_or(Rc(0x918 + (n - 1)))?;
        let s = self.v.sessions[slot].clone().expect("slot found above");
        let mut session_value = s.session_key.clone();
        let Some(hdl) = bound else {
            // Not authorising anything: must be there for encryption or audit.
            if a.attrs & (sattr::DECRYPT | sattr::ENCRYPT | sattr::AUDIT) == 0 {
                return Err(Rc::ATTRIBUTES.session(n));
            }
            // Its HMAC is checked too, keyed by the sessionKey alone (CheckSessionHMAC); with
            // no key, an empty HMAC will do.
            if !(session_value.is_empty() && a.hmac.is_empty()) {
                let cp = cp_hash(s.hash, cc, names, params);
                let want = s.hash.hmac(
                    &session_value,
                    &[&cp, &a.nonce_caller, &s.nonce_tpm, &[a.attrs]],
                );
                if !ct_eq(&want, &a.hmac) {
                    return Err(Rc::BAD_AUTH.session(n));
                }
            }
            return Ok(SessionUse {
                attrs: a.attrs,
                slot: Some(slot),
                nonce_caller: a.nonce_caller.clone(),
                session_value,
                password: false,
                auth_of: None,
                crypt_auth: Vec::new(),
            });
        };
        if s.kind == SE_TRIAL {
            return Err(Rc::ATTRIBUTES.session(n));
        }
        let bound_here = !s.bind_name.is_empty() && s.bind_name == self.entity_name(hdl);
        // Lockout matters only where the authValue takes part (the reference's includeAuth):
        // a policy session with PolicyAuthValue/PolicyPassword, an HMAC session not bound to
        // the entity. It is checked before the session type is.
        let include_auth = if s.is_policy() {
            s.need_auth_value || s.need_password
        } else {
            !bound_here
        };
        if include_auth {
            self.check_lockout(hdl)?;
        }
        let auth = self.entity_auth(hdl)?;
        let auth = crate::engine::trim(&auth).to_vec();
        let mut auth_of = None;
        let mut crypt_auth = Vec::new();
        if s.is_policy() {
            self.check_policy_use(&s, n, hdl, role, cc, names, params, locality)?;
            if s.need_password {
                if !ct_eq(&auth, crate::engine::trim(&a.hmac)) {
                    return Err(self.auth_failure(hdl, Rc::AUTH_FAIL.session(n)));
                }
                return Ok(SessionUse {
                    attrs: a.attrs,
                    slot: Some(slot),
                    nonce_caller: a.nonce_caller.clone(),
                    session_value,
                    password: true,
                    auth_of: None,
                    crypt_auth: Vec::new(),
                });
            }
            if s.need_auth_value {
                session_value.extend_from_slice(&auth);
                auth_of = Some(hdl);
            }
        } else {
            if self.policy_required(hdl, role) {
                return Err(Rc::AUTH_TYPE);
            }
            if !self.auth_value_allowed(hdl, role) {
                return Err(Rc::AUTH_UNAVAILABLE);
            }
            if !bound_here {
                session_value.extend_from_slice(&auth);
                auth_of = Some(hdl);
            } else {
                crypt_auth = auth.clone();
            }
        }
        // With an empty HMAC key (no sessionKey, no authValue in it) an empty HMAC is a valid
        // authorisation (ComputeCommandHMAC of the reference implementation).
        if session_value.is_empty() && a.hmac.is_empty() {
            return Ok(SessionUse {
                attrs: a.attrs,
                slot: Some(slot),
                nonce_caller: a.nonce_caller.clone(),
                session_value,
                password: false,
                auth_of,
                crypt_auth,
            });
        }
        let cp = cp_hash(s.hash, cc, names, params);
        let (dec_nonce, enc_nonce) = self.extra_nonces(all, idx);
        let want = s.hash.hmac(
            &session_value,
            &[
                &cp,
                &a.nonce_caller,
                &s.nonce_tpm,
                &dec_nonce,
                &enc_nonce,
                &[a.attrs],
            ],
        );
        if !ct_eq(&want, &a.hmac) {
            return Err(self.auth_failure(hdl, Rc::AUTH_FAIL.session(n)));
        }
        Ok(SessionUse {
            attrs: a.attrs,
            slot: Some(slot),
            nonce_caller: a.nonce_caller.clone(),
            session_value,
            password: false,
            auth_of,
            crypt_auth,
        })
    }

    /// TPM_RC_LOCKOUT if the entity's authValue is locked out: a DA-protected entity in
    /// lockout, or lockoutAuth after a failure.
    fn check_lockout(&self, hdl: u32) -> Result<(), Rc> {
        if self.entity_da_protected(hdl) && self.in_lockout() {
            return Err(Rc::LOCKOUT);
        }
        if hdl == h::RH_LOCKOUT && self.p.lockout_locked {
            return Err(Rc::LOCKOUT);
        }
        Ok(())
    }

    /// Whether only a policy session may act in this role: the DUP role, an NV index's ADMIN
    /// role, and an object's with adminWithPolicy (a password or HMAC session gets
    /// TPM_RC_AUTH_TYPE).
    fn policy_required(&self, hdl: u32, role: Role) -> bool {
        if role == Role::Dup {
            return true;
        }
        if role != Role::Admin {
            return false;
        }
        match h::ty(hdl) {
            h::HT_NV_INDEX => true,
            h::HT_TRANSIENT | h::HT_PERSISTENT => self
                .object(hdl)
                .is_ok_and(|o| o.public.has(crate::object::attr::ADMIN_WITH_POLICY)),
            _ => false,
        }
    }

    /// The conditions a policy session carries besides its digest (Part 1 §19.7.?; the order
    /// of the reference implementation, whose codes the differential test compares).
    #[allow(clippy::too_many_arguments)]
    fn check_policy_use(
        &mut self,
        s: &Session,
        n: u32,
        hdl: u32,
        role: Role,
        cc: u32,
        names: &[Vec<u8>],
        params: &[u8],
        locality: u8,
    ) -> Result<(), Rc> {
        // PolicySecret authorised by a policy session must prove the authValue itself.
        if cc == crate::cc::code::POLICY_SECRET && !s.need_password && !s.need_auth_value {
            return Err(Rc::MODE.session(n));
        }
        // The PCRs PolicyPCR checked have changed since (checked first, as in the reference).
        if !self.pcr_value_current(s) {
            return Err(Rc::PCR_CHANGED);
        }
        let (palg, pdig) = self.entity_policy(hdl);
        if pdig.is_empty() {
            return Err(Rc::AUTH_UNAVAILABLE);
        }
        if palg != s.hash.alg() || !ct_eq(&pdig, &s.policy_digest) {
            return Err(Rc::POLICY_FAIL.session(n));
        }
        if s.timeout != 0 && s.timeout < self.time_ms() {
            return Err(Rc::EXPIRED.session(n));
        }
        match s.cc {
            Some(c) if c != cc => return Err(Rc::POLICY_CC.session(n)),
            // An ADMIN-role action needs a policy that names the command.
            None if role == Role::Admin => return Err(Rc::POLICY_FAIL.session(n)),
            _ => {}
        }
        if s.locality != 0 && !locality_allowed(s.locality, locality) {
            return Err(Rc::LOCALITY);
        }
        // PolicyPhysicalPresence: this engine has no physical-presence input.
        if s.more.pp_required {
            return Err(Rc::PP.session(n));
        }
        let ok = match s.bound {
            Bound::None => true,
            Bound::CpHash => ct_eq(&s.bound_digest, &cp_hash(s.hash, cc, names, params)),
            Bound::NameHash => ct_eq(&s.bound_digest, &name_hash(s.hash, names)),
            Bound::Template => crate::cmd::template_matches(s, cc, params),
        };
        if !ok {
            return Err(Rc::POLICY_FAIL.session(n));
        }
        self.check_nv_written(s, hdl).map_err(|e| e.session(n))
    }

    /// The nonceTPM of the decrypt and encrypt sessions when they are not the first session
    /// (Part 1 §19.6.5: they are folded into the first authorisation's HMAC).
    fn extra_nonces(&self, all: &[AuthIn], idx: usize) -> (Vec<u8>, Vec<u8>) {
        if idx != 0 {
            return (Vec::new(), Vec::new());
        }
        let nonce_of = |bit: u8| {
            all.iter()
                .enumerate()
                .skip(1)
                .find(|(_, a)| a.attrs & bit != 0 && a.handle != h::RS_PW)
                .and_then(|(_, a)| self.session_index(a.handle))
                .and_then(|i| self.v.sessions[i].as_ref().map(|s| s.nonce_tpm.clone()))
                .unwrap_or_default()
        };
        (nonce_of(sattr::DECRYPT), nonce_of(sattr::ENCRYPT))
    }

    fn check_password_session(
        &mut self,
        a: &AuthIn,
        n: u32,
        bound: Option<u32>,
        role: Role,
    ) -> Result<SessionUse, Rc> {
        // A password session has an empty nonce, continueSession and nothing else.
        if !a.nonce_caller.is_empty() {
            return Err(Rc::NONCE.session(n));
        }
        if a.attrs & !sattr::CONTINUE != 0 {
            return Err(Rc::ATTRIBUTES.session(n));
        }
        let Some(hdl) = bound else {
            return Err(Rc::AUTH_CONTEXT);
        };
        // Lockout first, then the session type (TPM_RC_LOCKOUT before TPM_RC_AUTH_TYPE, as in
        // the reference's CheckAuthSession).
        self.check_lockout(hdl)?;
        if self.policy_required(hdl, role) {
            return Err(Rc::AUTH_TYPE);
        }
        if !self.auth_value_allowed(hdl, role) {
            return Err(Rc::AUTH_UNAVAILABLE);
        }
        self.check_password(hdl, &a.hmac, n)?;
        Ok(SessionUse {
            attrs: a.attrs,
            slot: None,
            nonce_caller: Vec::new(),
            session_value: Vec::new(),
            password: true,
            auth_of: None,
            crypt_auth: Vec::new(),
        })
    }

    /// Decrypts the first command parameter if a session asks for it.
    pub(crate) fn decrypt_param(
        &mut self,
        auths: &[AuthIn],
        uses: &[SessionUse],
        params: &[u8],
    ) -> Result<Option<Vec<u8>>, Rc> {
        let Some((i, u)) = uses
            .iter()
            .enumerate()
            .find(|(_, u)| u.attrs & sattr::DECRYPT != 0 && u.slot.is_some())
        else {
            return Ok(None);
        };
        let n = i as u32 + 1;
        let s = self.v.sessions[u.slot.expect("checked")]
            .clone()
            .expect("loaded");
        if params.len() < 2 {
            return Err(Rc::ATTRIBUTES.session(n));
        }
        let len = usize::from(u16::from_be_bytes([params[0], params[1]]));
        if len + 2 > params.len() {
            return Err(Rc::SIZE.session(n));
        }
        let mut out = params.to_vec();
        crypt(
            &s,
            &[u.session_value.as_slice(), &u.crypt_auth].concat(),
            &auths[i].nonce_caller,
            &s.nonce_tpm,
            &mut out[2..2 + len],
            false,
        )
        .map_err(|e| e.session(n))?;
        Ok(Some(out))
    }

    /// Rolls nonceTPM of every session used, then encrypts the first response parameter.
    pub(crate) fn encrypt_param(
        &mut self,
        _auths: &[AuthIn],
        uses: &mut [SessionUse],
        params: &mut [u8],
    ) {
        for u in uses.iter() {
            if let Some(slot) = u.slot {
                let size = self.v.sessions[slot]
                    .as_ref()
                    .map(|s| s.nonce_tpm.len())
                    .unwrap_or(32);
                let nonce = self.random(size);
                if let Some(s) = self.v.sessions[slot].as_mut() {
                    s.nonce_tpm = nonce;
                    // A policy authorises one command: when its nonce rolls, the policy starts
                    // over (the reference code's UpdateInternalSession does the same).
                    if s.is_policy() {
                        s.reset_policy();
                    }
                }
            }
        }
        let Some(u) = uses
            .iter()
            .find(|u| u.attrs & sattr::ENCRYPT != 0 && u.slot.is_some())
        else {
            return;
        };
        let Some(s) = self.v.sessions[u.slot.expect("checked")].clone() else {
            return;
        };
        if params.len() < 2 {
            return;
        }
        let len = usize::from(u16::from_be_bytes([params[0], params[1]]));
        if len + 2 <= params.len() {
            let _ = crypt(
                &s,
                &[u.session_value.as_slice(), &u.crypt_auth].concat(),
                &s.nonce_tpm,
                &u.nonce_caller,
                &mut params[2..2 + len],
                true,
            );
        }
    }

    pub(crate) fn response_sessions(
        &mut self,
        auths: &[AuthIn],
        uses: &mut [SessionUse],
        cc: u32,
        params: &[u8],
    ) -> Vec<u8> {
        let mut w = Writer::new();
        for (i, u) in uses.iter().enumerate() {
            match u.slot.and_then(|i| self.v.sessions[i].clone()) {
                None => {
                    w.u16(0).u8(u.attrs | sattr::CONTINUE).u16(0);
                }
                Some(s) => {
                    w.tpm2b(&s.nonce_tpm).u8(u.attrs);
                    if u.password {
                        w.u16(0);
                    } else {
                        let rp = s
                            .hash
                            .digest(&[&0u32.to_be_bytes(), &cc.to_be_bytes(), params]);
                        let value = match u.auth_of {
                            // An entity the command flushed (SequenceComplete's sequence
                            // object) still answers under the authValue it was checked with:
                            // the reference flushes it only after the response is built.
                            Some(hdl) => match self.entity_auth(hdl) {
                                Ok(auth) => {
                                    [s.session_key.as_slice(), crate::engine::trim(&auth)].concat()
                                }
                                Err(_) => u.session_value.clone(),
                            },
                            None => u.session_value.clone(),
                        };
                        // An empty key (as the response sees it: HierarchyChangeAuth may have
                        // set a new authValue) after an empty command HMAC: an empty HMAC
                        // (ComputeResponseHMAC of the reference implementation).
                        if value.is_empty() && auths.get(i).is_some_and(|a| a.hmac.is_empty()) {
                            w.u16(0);
                            continue;
                        }
                        let mac = s
                            .hash
                            .hmac(&value, &[&rp, &s.nonce_tpm, &u.nonce_caller, &[u.attrs]]);
                        w.tpm2b(&mac);
                    }
                }
            }
        }
        // Sessions without continueSession end with this command.
        for u in uses.iter() {
            if let Some(slot) = u.slot
                && u.attrs & sattr::CONTINUE == 0
            {
                self.v.sessions[slot] = None;
            }
        }
        w.into_vec()
    }

    pub(crate) fn flush_session(&mut self, hdl: u32) -> bool {
        if let Some(i) = self.session_index(hdl) {
            self.v.sessions[i] = None;
            return true;
        }
        let before = self.v.saved_sessions.len();
        self.v.saved_sessions.retain(|s| s.0 != hdl);
        before != self.v.saved_sessions.len()
    }

    pub(crate) fn save_session(&mut self, hdl: u32) -> Result<Vec<u8>, Rc> {
        let i = self.session_index(hdl).ok_or(Rc::HANDLE)?;
        let mut w = Writer::new();
        self.v.sessions[i].as_ref().ok_or(Rc::HANDLE)?.write(&mut w);
        Ok(w.into_vec())
    }

    /// After ContextSave the session leaves its slot; only the saved context can bring it back.
    pub(crate) fn mark_session_saved(&mut self, hdl: u32, seq: u64) {
        if let Some(i) = self.session_index(hdl) {
            self.v.sessions[i] = None;
        }
        self.v.saved_sessions.retain(|s| s.0 != hdl);
        self.v.saved_sessions.push((hdl, seq));
    }

    pub(crate) fn load_session(&mut self, hdl: u32, seq: u64, plain: &[u8]) -> Result<(), Rc> {
        let pos = self
            .v
            .saved_sessions
            .iter()
            .position(|s| *s == (hdl, seq))
            .ok_or(Rc::HANDLE.param(1))?;
        let slot = self
            .v
            .sessions
            .iter()
            .position(|s| s.is_none())
            .ok_or(Rc::SESSION_MEMORY)?;
        let s = Session::read(&mut Reader::new(plain), None).map_err(|_| Rc::INTEGRITY.param(1))?;
        if s.handle != hdl {
            return Err(Rc::INTEGRITY.param(1));
        }
        self.v.saved_sessions.remove(pos);
        self.v.sessions[slot] = Some(s);
        Ok(())
    }

    pub(crate) fn dispatch_session(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        use crate::cc::code::*;
        match c.cc {
            START_AUTH_SESSION => self.start_auth_session(c),
            POLICY_AUTH_VALUE | POLICY_PASSWORD => self.policy_auth_value(c),
            POLICY_COMMAND_CODE => self.policy_command_code(c),
            POLICY_PCR => self.policy_pcr(c),
            POLICY_OR => self.policy_or(c),
            POLICY_AUTHORIZE => self.policy_authorize(c),
            POLICY_GET_DIGEST => self.policy_get_digest(c),
            POLICY_RESTART => self.policy_restart(c),
            _ => self.dispatch_policy(c),
        }
    }

    fn start_auth_session(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let nonce_caller = c.params.tpm2b(64).p(1)?.to_vec();
        let salt_ct = c.params.tpm2b(512).p(2)?.to_vec();
        let kind = c.params.u8().p(3)?;
        let sym = SymDef::parse(&mut c.params, true).p(4)?;
        let hash = HashAlg::from_alg(c.params.u16().p(5)?).p(5)?;
        c.params.finish().p(5)?;
        if !matches!(kind, SE_HMAC | SE_POLICY | SE_TRIAL) {
            return Err(Rc::VALUE.param(3));
        }
        if nonce_caller.len() < 16 {
            return Err(Rc::SIZE.param(1));
        }
        let (tpm_key, bind) = (c.handles[0], c.handles[1]);
        let salt = if tpm_key == h::RH_NULL {
            if !salt_ct.is_empty() {
                return Err(Rc::VALUE.param(2));
            }
            Vec::new()
        } else {
            let key = self.object(tpm_key).h(1)?.clone();
            if !key.public.has(crate::object::attr::DECRYPT) || key.sens.is_none() {
                return Err(Rc::KEY.handle(1));
            }
            self.secret_from(&key, b"SECRET", &salt_ct)
                .map_err(|_| Rc::VALUE.param(2))?
        };
        let (bind_name, bind_auth) = if bind == h::RH_NULL {
            (Vec::new(), Vec::new())
        } else {
            let auth = self.entity_auth(bind).h(2)?;
            (self.entity_name(bind), crate::engine::trim(&auth).to_vec())
        };
        let active =
            self.v.sessions.iter().filter(|s| s.is_some()).count() + self.v.saved_sessions.len();
        if active >= crate::engine::ACTIVE_SESSIONS {
            return Err(Rc::SESSION_HANDLES);
        }
        let slot = self
            .v
            .sessions
            .iter()
            .position(|s| s.is_none())
            .ok_or(Rc::SESSION_MEMORY)?;
        // nonceTPM has the size of nonceCaller (Part 3 §11.1), for the whole session.
        let nonce_tpm = self.random(nonce_caller.len());
        let key_in = [bind_auth.as_slice(), &salt].concat();
        let session_key = if key_in.is_empty() {
            Vec::new()
        } else {
            kdfa(
                hash,
                &key_in,
                b"ATH",
                &nonce_tpm,
                &nonce_caller,
                (hash.size() * 8) as u32,
            )
        };
        // As in the reference implementation, the low bits are the lowest free context index
        // (shared by HMAC and policy sessions), so handles repeat after a flush.
        let base = if kind == SE_HMAC {
            0x0200_0000
        } else {
            0x0300_0000
        };
        let used = |i: u32| {
            self.v
                .sessions
                .iter()
                .flatten()
                .any(|s| s.handle & 0x00FF_FFFF == i)
                || self.v.saved_sessions.iter().any(|s| s.0 & 0x00FF_FFFF == i)
        };
        let index = (0..crate::engine::ACTIVE_SESSIONS as u32)
            .find(|&i| !used(i))
            .ok_or(Rc::SESSION_HANDLES)?;
        let handle = base | index;
        self.v.sessions[slot] = Some(Session {
            handle,
            kind,
            hash,
            nonce_tpm: nonce_tpm.clone(),
            session_key,
            sym,
            bind_name,
            policy_digest: alloc::vec![0; hash.size()],
            need_auth_value: false,
            need_password: false,
            cc: None,
            bound: Bound::None,
            bound_digest: Vec::new(),
            locality: 0,
            start_time: self.time_ms(),
            timeout: 0,
            more: Default::default(),
            pcr_counter: None,
        });
        let mut o = Out::new();
        o.handle = Some(handle);
        o.params.tpm2b(&nonce_tpm);
        Ok(o)
    }

    pub(crate) fn policy_session(&mut self, hdl: u32, n: u32) -> Result<&mut Session, Rc> {
        let i = self.session_index(hdl).ok_or(Rc::HANDLE.handle(n))?;
        let s = self.v.sessions[i].as_mut().ok_or(Rc::HANDLE.handle(n))?;
        if !s.is_policy() {
            return Err(Rc::TYPE.handle(n));
        }
        Ok(s)
    }

    pub(crate) fn policy_update(&mut self, hdl: u32, n: u32, parts: &[&[u8]]) -> Result<(), Rc> {
        let s = self.policy_session(hdl, n)?;
        let mut all: Vec<&[u8]> = alloc::vec![&s.policy_digest];
        all.extend_from_slice(parts);
        s.policy_digest = s.hash.digest(&all);
        Ok(())
    }

    fn policy_auth_value(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        // Both append TPM_CC_PolicyAuthValue: the policy is the same, only the proof differs.
        self.policy_update(
            c.handles[0],
            1,
            &[&crate::cc::code::POLICY_AUTH_VALUE.to_be_bytes()],
        )?;
        let password = c.cc == crate::cc::code::POLICY_PASSWORD;
        let s = self.policy_session(c.handles[0], 1)?;
        s.need_password = password;
        s.need_auth_value = !password;
        Ok(Out::new())
    }

    fn policy_command_code(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let code = c.params.u32().p(1)?;
        c.params.finish().p(1)?;
        if crate::cc::lookup(code).is_none() {
            return Err(Rc::POLICY_CC.param(1));
        }
        let s = self.policy_session(c.handles[0], 1)?;
        if s.cc.is_some_and(|x| x != code) {
            return Err(Rc::VALUE.param(1));
        }
        s.cc = Some(code);
        self.policy_update(
            c.handles[0],
            1,
            &[
                &crate::cc::code::POLICY_COMMAND_CODE.to_be_bytes(),
                &code.to_be_bytes(),
            ],
        )?;
        Ok(Out::new())
    }

    fn policy_pcr(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let given = c.params.tpm2b(64).p(1)?.to_vec();
        let start = c.params.clone();
        let sel = crate::pcr::parse_selection(&mut c.params).p(2)?;
        c.params.finish().p(2)?;
        let sel_bytes = &start.rest()[..start.remaining() - c.params.remaining()];
        let s = self.policy_session(c.handles[0], 1)?.clone();
        // A second PolicyPCR must not hide a change since the first.
        if s.kind != SE_TRIAL && !self.pcr_value_current(&s) {
            return Err(Rc::PCR_CHANGED);
        }
        let digest = self.v.pcrs.digest(&sel, s.hash);
        let digest = if s.kind == SE_TRIAL && !given.is_empty() {
            given
        } else {
            if !given.is_empty() && !ct_eq(&given, &digest) {
                return Err(Rc::VALUE.param(1));
            }
            digest
        };
        self.policy_update(
            c.handles[0],
            1,
            &[
                &crate::cc::code::POLICY_PCR.to_be_bytes(),
                sel_bytes,
                &digest,
            ],
        )?;
        let counter = self.v.pcrs.update_counter;
        let s = self.policy_session(c.handles[0], 1)?;
        if s.kind != SE_TRIAL {
            s.pcr_counter = Some(counter);
        }
        Ok(Out::new())
    }

    /// Whether no PCR changed since the session's PolicyPCR (true without one).
    fn pcr_value_current(&self, s: &Session) -> bool {
        s.pcr_counter
            .is_none_or(|c| c == self.v.pcrs.update_counter)
    }

    fn policy_or(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let count = c.params.u32().p(1)?;
        if !(2..=8).contains(&count) {
            return Err(Rc::SIZE.param(1));
        }
        let mut list = Vec::new();
        for _ in 0..count {
            list.push(c.params.tpm2b(64).p(1)?.to_vec());
        }
        c.params.finish().p(1)?;
        let s = self.policy_session(c.handles[0], 1)?;
        if s.kind != SE_TRIAL && !list.iter().any(|d| ct_eq(d, &s.policy_digest)) {
            return Err(Rc::VALUE.param(1));
        }
        let zero = alloc::vec![0u8; s.hash.size()];
        let mut parts: Vec<&[u8]> = alloc::vec![&zero];
        let code = crate::cc::code::POLICY_OR.to_be_bytes();
        parts.push(&code);
        for d in &list {
            parts.push(d);
        }
        s.policy_digest = s.hash.digest(&parts);
        Ok(Out::new())
    }

    /// PolicyAuthorize: replaces the digest by one that names the authorising key, if the
    /// current digest was approved (signed) by that key, as shown by a VerifySignature ticket.
    fn policy_authorize(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let approved = c.params.tpm2b(64).p(1)?.to_vec();
        let policy_ref = c.params.tpm2b(64).p(2)?.to_vec();
        let key_name = c.params.tpm2b(66).p(3)?.to_vec();
        let tag = c.params.u16().p(4)?;
        let hier = c.params.u32().p(4)?;
        let tk = c.params.tpm2b(64).p(4)?.to_vec();
        c.params.finish().p(4)?;
        let s = self.policy_session(c.handles[0], 1)?.clone();
        if key_name.len() < 2 {
            return Err(Rc::SIZE.param(3));
        }
        let kh = HashAlg::from_alg(u16::from_be_bytes([key_name[0], key_name[1]])).p(3)?;
        if key_name.len() != 2 + kh.size() {
            return Err(Rc::SIZE.param(3));
        }
        if s.kind != SE_TRIAL {
            if !ct_eq(&approved, &s.policy_digest) {
                return Err(Rc::VALUE.param(1));
            }
            if tag != 0x8022 {
                return Err(Rc::TAG.param(4));
            }
            let a_hash = kh.digest(&[&approved, &policy_ref]);
            let want = HashAlg::Sha512.hmac(
                &self.proof(hier),
                &[&0x8022u16.to_be_bytes(), &a_hash, &key_name],
            );
            if hier == h::RH_NULL || !ct_eq(&want, &tk) {
                return Err(Rc::TICKET.param(4));
            }
        }
        let sess = self.policy_session(c.handles[0], 1)?;
        let zero = alloc::vec![0u8; sess.hash.size()];
        let first = sess.hash.digest(&[
            &zero,
            &crate::cc::code::POLICY_AUTHORIZE.to_be_bytes(),
            &key_name,
        ]);
        sess.policy_digest = sess.hash.digest(&[&first, &policy_ref]);
        Ok(Out::new())
    }

    fn policy_get_digest(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let d = self.policy_session(c.handles[0], 1)?.policy_digest.clone();
        let mut o = Out::new();
        o.params.tpm2b(&d);
        Ok(o)
    }

    fn policy_restart(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        self.policy_session(c.handles[0], 1)?.reset_policy();
        Ok(Out::new())
    }
}

/// Whether a command at `loc` meets a TPMA_LOCALITY setting: bits 0-4 select localities 0-4,
/// values above 31 name one extended locality.
pub(crate) fn locality_allowed(set: u8, loc: u8) -> bool {
    if loc < 5 {
        set < 32 && set & (1 << loc) != 0
    } else {
        loc > 31 && set == loc
    }
}

/// nameHash: H(names of the handles in the handle area).
pub(crate) fn name_hash(h: HashAlg, names: &[Vec<u8>]) -> Vec<u8> {
    let parts: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
    h.digest(&parts)
}

/// cpHash: H(commandCode || names of the handles || parameters as sent).
pub(crate) fn cp_hash(h: HashAlg, cc: u32, names: &[Vec<u8>], params: &[u8]) -> Vec<u8> {
    let code = cc.to_be_bytes();
    let mut parts: Vec<&[u8]> = alloc::vec![&code];
    for n in names {
        parts.push(n);
    }
    parts.push(params);
    h.digest(&parts)
}

/// Parameter encryption with the session's symmetric algorithm (Part 1 §21).
fn crypt(
    s: &Session,
    value: &[u8],
    newer: &[u8],
    older: &[u8],
    data: &mut [u8],
    encrypt: bool,
) -> Result<(), Rc> {
    match s.sym.alg {
        alg::AES => {
            let bits = u32::from(s.sym.bits);
            let k = kdfa(s.hash, value, b"CFB", newer, older, bits + 128);
            let kb = (bits / 8) as usize;
            let aes = crate::crypto::aes::Aes::new(&k[..kb]).ok_or(Rc::SYMMETRIC)?;
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&k[kb..kb + 16]);
            if encrypt {
                aes.cfb_encrypt(&iv, data);
            } else {
                aes.cfb_decrypt(&iv, data);
            }
            Ok(())
        }
        alg::XOR => {
            let xh = HashAlg::from_alg(s.sym.bits)?;
            let mask = kdfa(xh, value, b"XOR", newer, older, (data.len() * 8) as u32);
            data.iter_mut().zip(mask).for_each(|(d, m)| *d ^= m);
            Ok(())
        }
        _ => Err(Rc::ATTRIBUTES),
    }
}
