//! PCR administration (Part 3 §22.5, §22.7, §22.8): PCR_Allocate (the new bank allocation takes
//! effect at the next Startup(CLEAR)), PCR_SetAuthPolicy and PCR_SetAuthValue for the one PCR
//! group this TPM has, PCRs 20-22 (as libtpms, behind swtpm, defines it).
//!
//! Banks are allocated whole: a selection that keeps only some PCRs of a bank is answered
//! with allocationSuccess = NO and changes nothing.

use crate::Platform;
use crate::crypto::{HashAlg, alg};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::pcr::{self, BANKS, PCR_COUNT};
use crate::rc::{At, Rc};
use alloc::vec::Vec;

/// The PCRs of the authValue / authPolicy group.
const GROUP: core::ops::RangeInclusive<u32> = 20..=22;
/// The PC Client H-CRTM and D-RTM PCRs: an allocation must keep both in some bank.
const HCRTM_PCR: usize = 0;
const DRTM_PCR: usize = 17;

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_pcr_admin(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        match c.cc {
            crate::cc::code::PCR_ALLOCATE => self.pcr_allocate(c),
            crate::cc::code::PCR_SET_AUTH_POLICY => self.pcr_set_auth_policy(c),
            crate::cc::code::PCR_SET_AUTH_VALUE => self.pcr_set_auth_value(c),
            _ => self.dispatch_ecc2(c),
        }
    }

    /// The authValue of a PCR: the group's for PCRs 20-22, empty for the others.
    pub(crate) fn pcr_group_auth(&self, hdl: u32) -> Vec<u8> {
        if GROUP.contains(&hdl) {
            self.p.pcr_auth.clone()
        } else {
            Vec::new()
        }
    }

    /// The authPolicy of a PCR: the group's for PCRs 20-22, none for the others.
    pub(crate) fn pcr_group_policy(&self, hdl: u32) -> (u16, Vec<u8>) {
        if GROUP.contains(&hdl) {
            self.p.pcr_policy.clone()
        } else {
            (alg::NULL, Vec::new())
        }
    }

    fn pcr_allocate(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let sel = pcr::parse_selection(&mut c.params).p(1)?;
        c.params.finish().p(1)?;
        if c.handles[0] != h::RH_PLATFORM {
            return Err(Rc::VALUE.handle(1));
        }
        // Banks not named keep their allocation; a bank named twice: the last one counts.
        let mut new: Vec<(HashAlg, Vec<bool>)> = BANKS
            .iter()
            .map(|&b| (b, alloc::vec![self.p.pcr_alloc.contains(&b); PCR_COUNT]))
            .collect();
        for s in &sel {
            if let Some((_, on)) = new.iter_mut().find(|(b, _)| *b == s.hash) {
                on.iter_mut().for_each(|v| *v = false);
                for i in s.indices() {
                    on[i] = true;
                }
            }
        }
        let has = |i: usize| new.iter().any(|(_, on)| on[i]);
        if !has(HCRTM_PCR) || !has(DRTM_PCR) {
            return Err(Rc::PCR);
        }
        let needed: usize = new
            .iter()
            .map(|(b, on)| b.size() * on.iter().filter(|v| **v).count())
            .sum();
        let available: usize = BANKS.iter().map(|b| b.size() * PCR_COUNT).sum();
        let whole = new
            .iter()
            .all(|(_, on)| on.iter().all(|v| *v) || on.iter().all(|v| !*v));
        if whole {
            self.p.pcr_alloc = new
                .iter()
                .filter(|(_, on)| on[0])
                .map(|(b, _)| *b)
                .collect();
            self.v.pcr_reconfig = true;
            self.persist();
        }
        let mut o = Out::new();
        o.params
            .u8(u8::from(whole))
            .u32(PCR_COUNT as u32)
            .u32(needed as u32)
            .u32(available as u32);
        Ok(o)
    }

    fn pcr_set_auth_policy(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let policy = c.params.tpm2b(64).p(1)?.to_vec();
        let hash = c.params.u16().p(2)?;
        let size = if hash == alg::NULL {
            0
        } else {
            HashAlg::from_alg(hash).map_err(|_| Rc::HASH).p(2)?.size()
        };
        let pcr_num = c.params.u32().p(3)?;
        c.params.finish().p(3)?;
        if c.handles[0] != h::RH_PLATFORM {
            return Err(Rc::VALUE.handle(1));
        }
        if pcr_num as usize >= PCR_COUNT {
            return Err(Rc::VALUE.param(3));
        }
        if policy.len() != size {
            return Err(Rc::SIZE.param(1));
        }
        if !GROUP.contains(&pcr_num) {
            return Err(Rc::VALUE.param(3));
        }
        self.p.pcr_policy = (hash, policy);
        self.persist();
        Ok(Out::new())
    }

    fn pcr_set_auth_value(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let auth = c.params.tpm2b(64).p(1)?.to_vec();
        c.params.finish().p(1)?;
        if !GROUP.contains(&c.handles[0]) {
            // Unnumbered, as libtpms answers.
            return Err(Rc::VALUE);
        }
        self.p.pcr_auth = auth;
        self.persist();
        Ok(Out::new())
    }
}
