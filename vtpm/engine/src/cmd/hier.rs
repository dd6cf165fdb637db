//! Hierarchy and dictionary-attack commands: Clear, ClearControl, HierarchyChangeAuth,
//! HierarchyControl, DictionaryAttackLockReset, DictionaryAttackParameters (Part 3 ch. 24-25).

use crate::Platform;
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::nv::a;
use crate::rc::{At, Rc};

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_hier(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        use crate::cc::code::*;
        match c.cc {
            CLEAR => self.clear(c),
            CLEAR_CONTROL => self.clear_control(c),
            HIERARCHY_CHANGE_AUTH => self.hierarchy_change_auth(c),
            HIERARCHY_CONTROL => self.hierarchy_control(c),
            DA_LOCK_RESET => self.da_lock_reset(c),
            DA_PARAMETERS => self.da_parameters(c),
            _ => self.dispatch_sequence(c),
        }
    }

    fn clear(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        if !matches!(c.handles[0], h::RH_LOCKOUT | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        if self.p.disable_clear {
            return Err(Rc::DISABLED);
        }
        // New storage seed and proofs; owner/endorsement auth, policies, owner NV and
        // owner/endorsement objects go away. The endorsement seed (and so the EK) stays.
        self.p.sps = self.random(64);
        self.p.sh_proof = self.random(32);
        self.p.eh_proof = self.random(32);
        let null = (crate::crypto::alg::NULL, alloc::vec::Vec::new());
        self.p.owner_auth.clear();
        self.p.endorsement_auth.clear();
        self.p.lockout_auth.clear();
        self.p.owner_policy = null.clone();
        self.p.endorsement_policy = null.clone();
        self.p.lockout_policy = null;
        self.p.nv.retain(|n| n.has(a::PLATFORMCREATE));
        self.p
            .persistent
            .retain(|(_, o)| o.hierarchy == h::RH_PLATFORM);
        for slot in &mut self.v.objects {
            if slot
                .as_ref()
                .is_some_and(|o| matches!(o.hierarchy, h::RH_OWNER | h::RH_ENDORSEMENT))
            {
                *slot = None;
            }
        }
        self.primary_cache.clear();
        self.p.failed_tries = 0;
        self.p.lockout_locked = false;
        self.v.sh_enable = true;
        self.v.eh_enable = true;
        self.clock_clear();
        self.persist();
        Ok(Out::new())
    }

    fn clear_control(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let disable = c.params.u8().p(1)?;
        c.params.finish().p(1)?;
        if !matches!(c.handles[0], h::RH_LOCKOUT | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        if disable > 1 {
            return Err(Rc::VALUE.param(1));
        }
        if c.handles[0] == h::RH_LOCKOUT && disable == 0 {
            return Err(Rc::AUTH_FAIL);
        }
        self.p.disable_clear = disable == 1;
        self.persist();
        Ok(Out::new())
    }

    fn hierarchy_change_auth(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let new = c.params.tpm2b(64).p(1)?;
        c.params.finish().p(1)?;
        let new = crate::engine::trim(new).to_vec();
        if new.len() > 64 {
            return Err(Rc::SIZE.param(1));
        }
        match c.handles[0] {
            h::RH_OWNER => self.p.owner_auth = new,
            h::RH_ENDORSEMENT => self.p.endorsement_auth = new,
            h::RH_LOCKOUT => self.p.lockout_auth = new,
            h::RH_PLATFORM => self.v.platform_auth = new,
            _ => return Err(Rc::VALUE.handle(1)),
        }
        self.persist();
        Ok(Out::new())
    }

    fn hierarchy_control(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let enable = c.params.u32().p(1)?;
        let state = c.params.u8().p(2)?;
        c.params.finish().p(2)?;
        let auth = c.handles[0];
        if !matches!(auth, h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        if state > 1 {
            return Err(Rc::VALUE.param(2));
        }
        let on = state == 1;
        // Only the platform may turn things on, or touch anything but its own hierarchy.
        if auth != h::RH_PLATFORM && (on || enable != auth) {
            return Err(Rc::AUTH_TYPE);
        }
        match enable {
            h::RH_OWNER => self.v.sh_enable = on,
            h::RH_ENDORSEMENT => self.v.eh_enable = on,
            h::RH_PLATFORM => self.v.ph_enable = on,
            h::RH_PLATFORM_NV => self.v.ph_enable_nv = on,
            _ => return Err(Rc::VALUE.param(1)),
        }
        Ok(Out::new())
    }

    fn da_lock_reset(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        if c.handles[0] != h::RH_LOCKOUT {
            return Err(Rc::VALUE.handle(1));
        }
        self.p.failed_tries = 0;
        self.persist();
        Ok(Out::new())
    }

    fn da_parameters(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let max = c.params.u32().p(1)?;
        let rec = c.params.u32().p(2)?;
        let lrec = c.params.u32().p(3)?;
        c.params.finish().p(3)?;
        if c.handles[0] != h::RH_LOCKOUT {
            return Err(Rc::VALUE.handle(1));
        }
        self.p.max_tries = max;
        self.p.recovery_time = rec;
        self.p.lockout_recovery = lrec;
        self.p.failed_tries = 0;
        self.persist();
        Ok(Out::new())
    }
}
