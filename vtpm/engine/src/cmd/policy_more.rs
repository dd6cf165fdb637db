//! More policy assertions (Part 3 ch. 23): PolicyDuplicationSelect (fixes the object and new
//! parent of a TPM2_Duplicate through the session's nameHash slot), PolicyNvWritten,
//! PolicyCounterTimer (a comparison against TPMS_TIME_INFO), PolicyPhysicalPresence and
//! PolicyTemplate (the template of Create/CreatePrimary/CreateLoaded).
//!
//! PolicyPhysicalPresence only extends the digest and marks the session: this engine has no
//! physical-presence input, so a session that carries it never authorises (TPM_RC_PP), as
//! with swtpm, whose platform never asserts physical presence either.

use crate::Platform;
use crate::cc::code;
use crate::crypto::ct_eq;
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::marshal::{Reader, Writer};
use crate::rc::{At, Rc};
use crate::session::{Bound, SE_TRIAL, Session};

/// Conditions a policy session carries besides its digest, cpHash slot, locality and times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyMore {
    /// PolicyNvWritten: the authorised entity must be an NV index with TPMA_NV_WRITTEN so.
    pub(crate) nv_written: Option<bool>,
    /// PolicyPhysicalPresence.
    pub(crate) pp_required: bool,
}

impl PolicyMore {
    pub(crate) fn write(&self, w: &mut Writer) {
        let flags = match self.nv_written {
            None => 0,
            Some(false) => 1,
            Some(true) => 3,
        } | (u8::from(self.pp_required) << 2);
        w.u8(flags);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Rc> {
        let f = r.u8()?;
        if f & !7 != 0 {
            return Err(Rc::VALUE);
        }
        Ok(PolicyMore {
            nv_written: (f & 1 != 0).then_some(f & 2 != 0),
            pp_required: f & 4 != 0,
        })
    }
}

/// PolicyTemplate at use (CompareTemplateHash): only Create, CreatePrimary and CreateLoaded,
/// whose second parameter is the TPM2B_PUBLIC (or TPM2B_TEMPLATE) whose contents are hashed.
pub(crate) fn template_matches(s: &Session, cc: u32, params: &[u8]) -> bool {
    if !matches!(
        cc,
        code::CREATE | code::CREATE_PRIMARY | code::CREATE_LOADED
    ) {
        return false;
    }
    let mut r = Reader::new(params);
    let Ok(_sensitive) = r.tpm2b(usize::MAX) else {
        return false;
    };
    let Ok(template) = r.tpm2b(usize::MAX) else {
        return false;
    };
    ct_eq(&s.hash.digest(&[template]), &s.bound_digest)
}

/// TPMI_YES_NO.
fn yes_no(r: &mut Reader<'_>) -> Result<bool, Rc> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Rc::VALUE),
    }
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_policy_more(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        match c.cc {
            code::POLICY_DUPLICATION_SELECT => self.policy_duplication_select(c),
            code::POLICY_NV_WRITTEN => self.policy_nv_written(c),
            code::POLICY_COUNTER_TIMER => self.policy_counter_timer(c),
            code::POLICY_PHYSICAL_PRESENCE => self.policy_physical_presence(c),
            code::POLICY_TEMPLATE => self.policy_template(c),
            _ => self.dispatch_admin(c),
        }
    }

    /// PolicyNvWritten at use: the entity is an NV index whose WRITTEN state is as required.
    pub(crate) fn check_nv_written(&self, s: &Session, hdl: u32) -> Result<(), Rc> {
        let Some(want) = s.more.nv_written else {
            return Ok(());
        };
        let written = (h::ty(hdl) == h::HT_NV_INDEX)
            .then(|| self.p.nv.iter().find(|n| n.handle == hdl))
            .flatten()
            .map(|n| n.has(crate::nv::a::WRITTEN));
        if written != Some(want) {
            return Err(Rc::POLICY_FAIL);
        }
        Ok(())
    }

    /// PolicyDuplicationSelect: nameHash := H(objectName || newParentName), command code
    /// TPM2_Duplicate; the digest names the object only with includeObject.
    fn policy_duplication_select(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let object = c.params.tpm2b(66).p(1)?.to_vec();
        let parent = c.params.tpm2b(66).p(2)?.to_vec();
        let include = yes_no(&mut c.params).p(3)?;
        c.params.finish().p(3)?;
        let s = self.policy_session(c.handles[0], 1)?;
        if s.bound != Bound::None {
            return Err(Rc::CPHASH);
        }
        if s.cc.is_some() {
            return Err(Rc::COMMAND_CODE);
        }
        s.bound = Bound::NameHash;
        s.bound_digest = s.hash.digest(&[&object, &parent]);
        s.cc = Some(code::DUPLICATE);
        let cc = code::POLICY_DUPLICATION_SELECT.to_be_bytes();
        let object: &[u8] = if include { &object } else { &[] };
        self.policy_update(
            c.handles[0],
            1,
            &[&cc, object, &parent, &[u8::from(include)]],
        )?;
        Ok(Out::new())
    }

    /// PolicyNvWritten: policyDigest || TPM_CC_PolicyNvWritten || writtenSet.
    fn policy_nv_written(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let set = yes_no(&mut c.params).p(1)?;
        c.params.finish().p(1)?;
        let s = self.policy_session(c.handles[0], 1)?;
        if s.more.nv_written.is_some_and(|w| w != set) {
            return Err(Rc::VALUE.param(1));
        }
        s.more.nv_written = Some(set);
        let cc = code::POLICY_NV_WRITTEN.to_be_bytes();
        self.policy_update(c.handles[0], 1, &[&cc, &[u8::from(set)]])?;
        Ok(Out::new())
    }

    /// PolicyCounterTimer: compares operandB with TPMS_TIME_INFO (time, then clockInfo) at
    /// `offset`; a trial session skips the comparison.
    fn policy_counter_timer(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let operand = c.params.tpm2b(64).p(1)?.to_vec();
        let offset = c.params.u16().p(2)?;
        let op = c.params.u16().p(3)?;
        if op > 0x000B {
            return Err(Rc::VALUE.param(3));
        }
        c.params.finish().p(3)?;
        let s = self.policy_session(c.handles[0], 1)?.clone();
        if s.kind != SE_TRIAL {
            let mut w = Writer::new();
            let t = self.time_ms();
            w.u64(t);
            self.write_clock_info(&mut w);
            let info = w.into_vec();
            let off = usize::from(offset);
            if off > info.len() {
                return Err(Rc::VALUE.param(2));
            }
            if off + operand.len() > info.len() {
                return Err(Rc::RANGE);
            }
            if !super::policy::condition(op, &info[off..off + operand.len()], &operand) {
                return Err(Rc::POLICY);
            }
        }
        let args = s
            .hash
            .digest(&[&operand, &offset.to_be_bytes(), &op.to_be_bytes()]);
        let cc = code::POLICY_COUNTER_TIMER.to_be_bytes();
        self.policy_update(c.handles[0], 1, &[&cc, &args])?;
        Ok(Out::new())
    }

    /// PolicyPhysicalPresence: policyDigest || TPM_CC_PolicyPhysicalPresence.
    fn policy_physical_presence(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        self.policy_session(c.handles[0], 1)?.more.pp_required = true;
        let cc = code::POLICY_PHYSICAL_PRESENCE.to_be_bytes();
        self.policy_update(c.handles[0], 1, &[&cc])?;
        Ok(Out::new())
    }

    /// PolicyTemplate: policyDigest || TPM_CC_PolicyTemplate || templateHash; the hash takes
    /// the session's cpHash slot.
    fn policy_template(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let d = c.params.tpm2b(64).p(1)?.to_vec();
        c.params.finish().p(1)?;
        let s = self.policy_session(c.handles[0], 1)?;
        match s.bound {
            Bound::Template if !ct_eq(&d, &s.bound_digest) => return Err(Rc::VALUE.param(1)),
            Bound::Template | Bound::None => {}
            _ => return Err(Rc::CPHASH),
        }
        if d.len() != s.hash.size() {
            return Err(Rc::SIZE.param(1));
        }
        s.bound = Bound::Template;
        s.bound_digest = d.clone();
        let cc = code::POLICY_TEMPLATE.to_be_bytes();
        self.policy_update(c.handles[0], 1, &[&cc, &d])?;
        Ok(Out::new())
    }
}
