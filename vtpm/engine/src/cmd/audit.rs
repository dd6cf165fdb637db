//! Audit (Part 1 §33, Part 3 §18.5, §18.6, §21.2): the command audit digest over the cpHash and
//! rpHash of every audited command (TPM2_SetCommandCodeAuditStatus chooses the commands and the
//! hash), audit sessions (TPMA_SESSION audit / auditExclusive / auditReset, a per-session
//! digest), and their signed attestations, TPM2_GetCommandAuditDigest and
//! TPM2_GetSessionAuditDigest.

use crate::Platform;
use crate::cc::code;
use crate::crypto::{HashAlg, alg};
use crate::engine::{AuthIn, Ctx, Out, Tpm, sattr};
use crate::handle as h;
use crate::marshal::{Reader, Writer};
use crate::object::Scheme;
use crate::rc::{At, Rc};
use crate::session::SessionUse;
use alloc::vec::Vec;

/// TPM_RC_EXCLUSIVE: auditExclusive asked for, but the session is not the exclusive one.
const RC_EXCLUSIVE: Rc = Rc(0x121);
const ST_ATTEST_COMMAND_AUDIT: u16 = 0x8015;
const ST_ATTEST_SESSION_AUDIT: u16 = 0x8016;
/// MAX_CAP_CC: the most command codes a TPML_CC carries.
const MAX_CAP_CC: u32 = 254;

/// Command audit state (permanent: the reference code keeps the digest in the state-reset
/// data, so it survives TPM Restart and Resume and is cleared by a TPM Reset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommandAudit {
    /// The audit hash algorithm.
    pub(crate) alg: u16,
    /// Audited command codes, sorted.
    pub(crate) commands: Vec<u32>,
    /// Incremented each time a new digest starts (the first audited command after a clear).
    pub(crate) counter: u64,
    /// The audit digest; empty when clear.
    pub(crate) digest: Vec<u8>,
}

impl CommandAudit {
    /// As manufactured: SHA-512 (libtpms's choice, the context integrity hash), and only SetCommandCodeAuditStatus audited (it always is).
    pub(crate) fn new() -> Self {
        CommandAudit {
            alg: alg::SHA512,
            commands: alloc::vec![code::SET_COMMAND_CODE_AUDIT_STATUS],
            counter: 0,
            digest: Vec::new(),
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u16(self.alg).u32(self.commands.len() as u32);
        for c in &self.commands {
            w.u32(*c);
        }
        w.u64(self.counter).tpm2b(&self.digest);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Rc> {
        let alg = HashAlg::from_alg(r.u16()?)?.alg();
        let n = r.u32()?;
        if n > MAX_CAP_CC {
            return Err(Rc::SIZE);
        }
        let mut commands = Vec::new();
        for _ in 0..n {
            commands.push(r.u32()?);
        }
        commands.sort_unstable();
        commands.dedup();
        Ok(CommandAudit {
            alg,
            commands,
            counter: r.u64()?,
            digest: r.tpm2b(64)?.to_vec(),
        })
    }
}

/// Audit-session state (volatile): the digest of every session used for audit, by handle, and
/// the exclusive audit session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionAudit {
    pub(crate) digests: Vec<(u32, Vec<u8>)>,
    /// The exclusive audit session (0: none): no command ran outside it since it became so.
    pub(crate) exclusive: u32,
    /// The audit hash algorithm just changed: this command is not audited (the reference
    /// code's "digest size 1" marker).
    pub(crate) skip: bool,
}

impl SessionAudit {
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.exclusive).u32(self.digests.len() as u32);
        for (hd, d) in &self.digests {
            w.u32(*hd).tpm2b(d);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Rc> {
        let exclusive = r.u32()?;
        let n = r.u32()? as usize;
        if n > crate::engine::ACTIVE_SESSIONS {
            return Err(Rc::SIZE);
        }
        let mut digests = Vec::new();
        for _ in 0..n {
            digests.push((r.u32()?, r.tpm2b(64)?.to_vec()));
        }
        Ok(SessionAudit {
            digests,
            exclusive,
            skip: false,
        })
    }
}

/// Commands that take no sessions: they leave audit exclusivity alone (IsSessionAllowed).
fn sessions_allowed(cc: u32) -> bool {
    !matches!(
        cc,
        code::CONTEXT_SAVE | code::CONTEXT_LOAD | code::FLUSH_CONTEXT | code::STARTUP
    )
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_audit(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        match c.cc {
            code::SET_COMMAND_CODE_AUDIT_STATUS => self.set_command_code_audit_status(c),
            code::GET_COMMAND_AUDIT_DIGEST => self.get_command_audit_digest(c),
            code::GET_SESSION_AUDIT_DIGEST => self.get_session_audit_digest(c),
            _ => self.dispatch_policy_more(c),
        }
    }

    /// Forgets the audit digests of sessions that no longer exist (flushed, or ended with
    /// continueSession clear), so a new session that reuses a handle starts unaudited.
    fn audit_prune(&mut self) {
        let crate::engine::Volatile {
            sessions,
            saved_sessions,
            audit,
            ..
        } = &mut self.v;
        let live = |hd: u32| {
            sessions.iter().flatten().any(|s| s.handle == hd)
                || saved_sessions.iter().any(|s| s.0 == hd)
        };
        audit.digests.retain(|(hd, _)| live(*hd));
        if audit.exclusive != 0 && !live(audit.exclusive) {
            audit.exclusive = 0;
        }
    }

    /// The audit checks of the session area, before any authorisation (RetrieveSessionData):
    /// one audit session at most, never a policy session; auditExclusive on a session that is
    /// already auditing (and not being reset) needs it to be the exclusive one.
    pub(crate) fn audit_check_sessions(&mut self, auths: &[AuthIn]) -> Result<(), Rc> {
        self.audit_prune();
        let mut seen = false;
        for (i, a) in auths.iter().enumerate() {
            let n = i as u32 + 1;
            if a.handle == h::RS_PW || a.attrs & sattr::AUDIT == 0 {
                continue;
            }
            if self.session_index(a.handle).is_none() {
                // Not loaded: the session checks report it.
                continue;
            }
            if seen || h::ty(a.handle) == h::HT_POLICY_SESSION {
                return Err(Rc::ATTRIBUTES.session(n));
            }
            seen = true;
            let auditing = self.v.audit.digests.iter().any(|d| d.0 == a.handle);
            if a.attrs & sattr::AUDIT_RESET == 0
                && auditing
                && a.attrs & sattr::AUDIT_EXCLUSIVE != 0
                && self.v.audit.exclusive != a.handle
            {
                return Err(RC_EXCLUSIVE);
            }
        }
        Ok(())
    }

    /// After a successful command (BuildResponseSession): extends the audit session's digest
    /// and reports its exclusivity in the response attributes, then the command audit digest.
    /// `cp_params` are the parameters as sent, `rp_params` as returned (both encrypted).
    pub(crate) fn audit_record(
        &mut self,
        cc: u32,
        names: &[Vec<u8>],
        cp_params: &[u8],
        rp_params: &[u8],
        uses: &mut [SessionUse],
    ) {
        let mut audit_session = None;
        for u in uses.iter_mut() {
            let attrs = u.attrs();
            let Some(slot) = u.slot() else { continue };
            if attrs & sattr::AUDIT == 0 {
                continue;
            }
            let Some(s) = self.v.sessions[slot].as_mut() else {
                continue;
            };
            let (hd, hash) = (s.handle, s.hash);
            audit_session = Some(hd);
            let pos = self.v.audit.digests.iter().position(|d| d.0 == hd);
            let pos = match pos {
                Some(p) if attrs & sattr::AUDIT_RESET == 0 => {
                    if self.v.audit.exclusive != hd {
                        self.v.audit.exclusive = 0;
                    }
                    p
                }
                _ => {
                    // First use for audit, or a reset: a zero digest, exclusive, and no longer
                    // bound (an audit session cannot be bound: InitAuditSession).
                    s.unbind();
                    let zero = alloc::vec![0u8; hash.size()];
                    self.v.audit.exclusive = hd;
                    match pos {
                        Some(p) => {
                            self.v.audit.digests[p].1 = zero;
                            p
                        }
                        None => {
                            self.v.audit.digests.push((hd, zero));
                            self.v.audit.digests.len() - 1
                        }
                    }
                }
            };
            let excl = if self.v.audit.exclusive == hd {
                sattr::AUDIT_EXCLUSIVE
            } else {
                0
            };
            u.set_attrs((attrs & !sattr::AUDIT_EXCLUSIVE) | excl);
            let old = self.v.audit.digests[pos].1.clone();
            self.v.audit.digests[pos].1 = extend(hash, &old, cc, names, cp_params, rp_params);
        }
        if audit_session.is_none() && sessions_allowed(cc) {
            self.v.audit.exclusive = 0;
        }
        if self.p.audit.commands.binary_search(&cc).is_err() {
            return;
        }
        if core::mem::take(&mut self.v.audit.skip) {
            return;
        }
        let Ok(hash) = HashAlg::from_alg(self.p.audit.alg) else {
            return;
        };
        if self.p.audit.digest.is_empty() {
            self.p.audit.digest = alloc::vec![0; hash.size()];
            self.p.audit.counter = self.p.audit.counter.wrapping_add(1);
        }
        let old = core::mem::take(&mut self.p.audit.digest);
        self.p.audit.digest = extend(hash, &old, cc, names, cp_params, rp_params);
        self.persist();
    }

    /// TPM2_SetCommandCodeAuditStatus: either a new audit hash algorithm (which clears the
    /// digest) or changes to the list; unimplemented codes are ignored, and
    /// SetCommandCodeAuditStatus itself cannot be cleared.
    fn set_command_code_audit_status(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        if !matches!(c.handles[0], h::RH_OWNER | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        let audit_alg = c.params.u16().p(1)?;
        if audit_alg != alg::NULL {
            HashAlg::from_alg(audit_alg).map_err(|_| Rc::HASH).p(1)?;
        }
        let set = read_cc_list(&mut c.params).p(2)?;
        let clear = read_cc_list(&mut c.params).p(3)?;
        c.params.finish().p(3)?;
        if audit_alg != alg::NULL && audit_alg != self.p.audit.alg {
            if !set.is_empty() || !clear.is_empty() {
                return Err(Rc::VALUE.param(1));
            }
            self.p.audit.alg = audit_alg;
            self.p.audit.digest.clear();
            self.v.audit.skip = true;
        } else {
            let list = &mut self.p.audit.commands;
            for cc in set {
                if crate::cc::lookup(cc).is_some()
                    && let Err(i) = list.binary_search(&cc)
                {
                    list.insert(i, cc);
                }
            }
            for cc in clear {
                if cc != code::SET_COMMAND_CODE_AUDIT_STATUS
                    && let Ok(i) = list.binary_search(&cc)
                {
                    list.remove(i);
                }
            }
        }
        self.persist();
        Ok(Out::new())
    }

    /// TPM2_GetCommandAuditDigest: TPMS_COMMAND_AUDIT_INFO (counter, hash algorithm, audit
    /// digest, digest of the audited command codes), signed; the digest clears afterwards.
    fn get_command_audit_digest(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let extra = c.params.tpm2b(64).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        c.params.finish().p(2)?;
        if c.handles[0] != h::RH_ENDORSEMENT {
            return Err(Rc::VALUE.handle(1));
        }
        let signer = self.attest_signer(c.handles[1], 2, in_scheme, 2)?;
        let hash = HashAlg::from_alg(self.p.audit.alg).map_err(|_| Rc::FAILURE)?;
        let codes: Vec<[u8; 4]> = self
            .p
            .audit
            .commands
            .iter()
            .map(|cc| cc.to_be_bytes())
            .collect();
        let parts: Vec<&[u8]> = codes.iter().map(|b| &b[..]).collect();
        let command_digest = hash.digest(&parts);
        let mut w = Writer::new();
        self.attest_header_opt(&mut w, ST_ATTEST_COMMAND_AUDIT, signer.as_ref(), &extra);
        w.u64(self.p.audit.counter)
            .u16(self.p.audit.alg)
            .tpm2b(&self.p.audit.digest)
            .tpm2b(&command_digest);
        let signed = signer.is_some();
        let out = self.finish_attest_opt(signer, w.into_vec()).p(2)?;
        // Signing resets the digest; an unsigned report (TPM_RH_NULL) leaves it.
        if signed {
            self.p.audit.digest.clear();
            self.persist();
        }
        Ok(out)
    }

    /// TPM2_GetSessionAuditDigest: TPMS_SESSION_AUDIT_INFO (exclusivity and the session's audit
    /// digest), signed.
    fn get_session_audit_digest(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let extra = c.params.tpm2b(64).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        c.params.finish().p(2)?;
        if c.handles[0] != h::RH_ENDORSEMENT {
            return Err(Rc::VALUE.handle(1));
        }
        let sh = c.handles[2];
        let digest = self
            .v
            .audit
            .digests
            .iter()
            .find(|d| d.0 == sh)
            .map(|d| d.1.clone())
            .ok_or(Rc::TYPE.handle(3))?;
        let signer = self.attest_signer(c.handles[1], 2, in_scheme, 2)?;
        let mut w = Writer::new();
        self.attest_header_opt(&mut w, ST_ATTEST_SESSION_AUDIT, signer.as_ref(), &extra);
        w.u8(u8::from(self.v.audit.exclusive == sh)).tpm2b(&digest);
        self.finish_attest_opt(signer, w.into_vec()).p(2)
    }
}

/// digestNew := H(digestOld || cpHash || rpHash), all with `hash`.
fn extend(
    hash: HashAlg,
    old: &[u8],
    cc: u32,
    names: &[Vec<u8>],
    cp_params: &[u8],
    rp_params: &[u8],
) -> Vec<u8> {
    let cp = crate::session::cp_hash(hash, cc, names, cp_params);
    let rp = hash.digest(&[&0u32.to_be_bytes(), &cc.to_be_bytes(), rp_params]);
    hash.digest(&[old, &cp, &rp])
}

/// A TPML_CC.
fn read_cc_list(r: &mut Reader<'_>) -> Result<Vec<u32>, Rc> {
    let n = r.u32()?;
    if n > MAX_CAP_CC {
        return Err(Rc::SIZE);
    }
    (0..n).map(|_| r.u32()).collect()
}
