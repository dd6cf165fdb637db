//! NV commands: NV_DefineSpace, NV_UndefineSpace, NV_ReadPublic, NV_Read, NV_Write,
//! NV_Increment, NV_Extend, NV_SetBits, NV_WriteLock, NV_ReadLock (Part 3 ch. 31).

use crate::Platform;
use crate::crypto::HashAlg;
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::nv::{
    self, MAX_BUFFER, MAX_INDICES, MAX_TOTAL, NT_BITS, NT_COUNTER, NT_EXTEND, NT_ORDINARY, NvIndex,
    a,
};
use crate::rc::{At, Rc};

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_nv(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        use crate::cc::code::*;
        match c.cc {
            NV_DEFINE_SPACE => self.nv_define_space(c),
            NV_UNDEFINE_SPACE => self.nv_undefine_space(c),
            NV_READ_PUBLIC => self.nv_read_public(c),
            NV_READ => self.nv_read(c),
            NV_WRITE | NV_INCREMENT | NV_EXTEND | NV_SET_BITS => self.nv_write(c),
            NV_WRITE_LOCK => self.nv_write_lock(c),
            NV_READ_LOCK => self.nv_read_lock(c),
            NV_CHANGE_AUTH => self.nv_change_auth(c),
            NV_GLOBAL_WRITE_LOCK => self.nv_global_write_lock(c),
            NV_CERTIFY | CERTIFY_CREATION | CERTIFY_X509 => self.dispatch_attest(c),
            _ => self.dispatch_hier(c),
        }
    }

    /// On TPM Reset and Restart (`clear`), releases the global write lock and the *_STCLEAR
    /// locks and clears WRITTEN of CLEAR_STCLEAR indices. TPM Resume (Startup(STATE)) keeps
    /// them all, as the reference's NvEntityStartup does.
    pub(crate) fn nv_startup_clear(&mut self, clear: bool) {
        if !clear {
            return;
        }
        // The global write lock lasts until the next TPM Reset or Restart.
        for hd in core::mem::take(&mut self.p.global_locked) {
            if let Some(n) = self.p.nv.iter_mut().find(|n| n.handle == hd) {
                n.attrs &= !a::WRITELOCKED;
            }
        }
        for n in &mut self.p.nv {
            if n.has(a::WRITE_STCLEAR) {
                n.attrs &= !a::WRITELOCKED;
            }
            if n.has(a::READ_STCLEAR) {
                n.attrs &= !a::READLOCKED;
            }
            if n.has(a::CLEAR_STCLEAR) {
                n.attrs &= !a::WRITTEN;
            }
        }
    }

    fn nv_index(&self, hdl: u32) -> Result<usize, Rc> {
        self.p
            .nv
            .iter()
            .position(|n| n.handle == hdl)
            .ok_or(Rc::HANDLE)
    }

    fn nv_define_space(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let auth_h = c.handles[0];
        let auth = c.params.tpm2b(64).p(1)?.to_vec();
        let mut pr = c.params.sized().p(2)?;
        let mut idx = NvIndex::parse_public(&mut pr).p(2)?;
        pr.finish().p(2)?;
        c.params.finish().p(2)?;
        if !matches!(auth_h, h::RH_OWNER | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        if h::ty(idx.handle) != h::HT_NV_INDEX {
            return Err(Rc::VALUE.param(2));
        }
        let hs = HashAlg::from_alg(idx.name_alg).p(2)?.size();
        let auth = crate::engine::trim(&auth).to_vec();
        if auth.len() > hs {
            return Err(Rc::SIZE.param(1));
        }
        if !idx.policy.is_empty() && idx.policy.len() != hs {
            return Err(Rc::SIZE.param(2));
        }
        let at = idx.attrs;
        let platform = at & a::PLATFORMCREATE != 0;
        // The hierarchy must match PLATFORMCREATE; the reference numbers the authorising handle.
        if platform != (auth_h == h::RH_PLATFORM) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        if at & (a::RESERVED | a::WRITELOCKED | a::READLOCKED | a::WRITTEN) != 0 {
            return Err(Rc::ATTRIBUTES.param(2));
        }
        let reads = at & (a::PPREAD | a::OWNERREAD | a::AUTHREAD | a::POLICYREAD);
        let writes = at & (a::PPWRITE | a::OWNERWRITE | a::AUTHWRITE | a::POLICYWRITE);
        if reads == 0 || writes == 0 {
            return Err(Rc::ATTRIBUTES.param(2));
        }
        if at & a::POLICY_DELETE != 0 && (!platform || idx.policy.is_empty()) {
            return Err(Rc::ATTRIBUTES.param(2));
        }
        let size = usize::from(idx.size);
        match idx.nt() {
            NT_ORDINARY => {
                if size > nv::MAX_INDEX_SIZE {
                    return Err(Rc::SIZE.param(2));
                }
            }
            NT_COUNTER | NT_BITS => {
                if size != 8 {
                    return Err(Rc::SIZE.param(2));
                }
            }
            NT_EXTEND => {
                if size != hs {
                    return Err(Rc::SIZE.param(2));
                }
            }
            _ => return Err(Rc::ATTRIBUTES.param(2)),
        }
        if matches!(idx.nt(), NT_COUNTER | NT_BITS | NT_EXTEND) && at & a::WRITEALL != 0 {
            return Err(Rc::ATTRIBUTES.param(2));
        }
        if self.p.nv.iter().any(|n| n.handle == idx.handle) {
            return Err(Rc::NV_DEFINED);
        }
        let used: usize = self.p.nv.iter().map(|n| usize::from(n.size)).sum();
        if self.p.nv.len() >= MAX_INDICES || used + size > MAX_TOTAL {
            return Err(Rc::NV_SPACE);
        }
        idx.auth = auth;
        idx.data = alloc::vec![0xFF; size];
        if idx.nt() == NT_BITS {
            idx.data = alloc::vec![0; size];
        }
        self.p.nv.push(idx);
        self.p.nv.sort_by_key(|n| n.handle);
        self.persist();
        Ok(Out::new())
    }

    fn nv_undefine_space(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let auth_h = c.handles[0];
        if !matches!(auth_h, h::RH_OWNER | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        let i = self.nv_index(c.handles[1]).h(2)?;
        let n = &self.p.nv[i];
        if n.has(a::POLICY_DELETE) {
            return Err(Rc::ATTRIBUTES.handle(2));
        }
        if n.has(a::PLATFORMCREATE) && auth_h != h::RH_PLATFORM {
            return Err(Rc::NV_AUTHORIZATION);
        }
        self.p.nv.remove(i);
        self.persist();
        Ok(Out::new())
    }

    fn nv_read_public(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let n = &self.p.nv[self.nv_index(c.handles[0]).h(1)?];
        let mut o = Out::new();
        o.params.tpm2b(&n.public_bytes()).tpm2b(&n.name());
        Ok(o)
    }

    pub(crate) fn nv_check_auth(&self, auth_h: u32, n: &NvIndex, read: bool) -> Result<(), Rc> {
        let (pp, owner, auth, policy) = if read {
            (a::PPREAD, a::OWNERREAD, a::AUTHREAD, a::POLICYREAD)
        } else {
            (a::PPWRITE, a::OWNERWRITE, a::AUTHWRITE, a::POLICYWRITE)
        };
        let ok = match auth_h {
            h::RH_PLATFORM => n.has(pp),
            h::RH_OWNER => n.has(owner),
            x if x == n.handle => n.has(auth) || n.has(policy),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Rc::NV_AUTHORIZATION)
        }
    }

    fn nv_read(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let size = usize::from(c.params.u16().p(1)?);
        let offset = usize::from(c.params.u16().p(2)?);
        c.params.finish().p(2)?;
        let n = &self.p.nv[self.nv_index(c.handles[1]).h(2)?];
        self.nv_check_auth(c.handles[0], n, true)?;
        if n.has(a::READLOCKED) {
            return Err(Rc::NV_LOCKED);
        }
        if !n.has(a::WRITTEN) {
            return Err(Rc::NV_UNINITIALIZED);
        }
        if size > MAX_BUFFER {
            return Err(Rc::VALUE.param(1));
        }
        if offset + size > n.data.len() {
            return Err(Rc::NV_RANGE);
        }
        let mut o = Out::new();
        o.params.tpm2b(&n.data[offset..offset + size]);
        Ok(o)
    }

    fn nv_write(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        use crate::cc::code::*;
        let i = self.nv_index(c.handles[1]).h(2)?;
        let (data, offset, bits) = match c.cc {
            NV_WRITE => {
                let d = c.params.tpm2b(MAX_BUFFER).p(1)?.to_vec();
                let off = usize::from(c.params.u16().p(2)?);
                (d, off, 0)
            }
            NV_EXTEND => (c.params.tpm2b(MAX_BUFFER).p(1)?.to_vec(), 0, 0),
            NV_SET_BITS => (alloc::vec::Vec::new(), 0, c.params.u64().p(1)?),
            _ => (alloc::vec::Vec::new(), 0, 0),
        };
        c.params.finish().p(2)?;
        let n = self.p.nv[i].clone();
        self.nv_check_auth(c.handles[0], &n, false)?;
        let want_nt = match c.cc {
            NV_WRITE => NT_ORDINARY,
            NV_INCREMENT => NT_COUNTER,
            NV_EXTEND => NT_EXTEND,
            _ => NT_BITS,
        };
        if n.nt() != want_nt {
            return Err(Rc::ATTRIBUTES.handle(2));
        }
        if n.has(a::WRITELOCKED) {
            return Err(Rc::NV_LOCKED);
        }
        let entry = &mut self.p.nv[i];
        match c.cc {
            NV_WRITE => {
                if offset + data.len() > entry.data.len() {
                    return Err(Rc::NV_RANGE);
                }
                if entry.has(a::WRITEALL) && data.len() != entry.data.len() {
                    return Err(Rc::NV_RANGE);
                }
                entry.data[offset..offset + data.len()].copy_from_slice(&data);
            }
            NV_INCREMENT => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&entry.data);
                let v = if entry.has(a::WRITTEN) {
                    u64::from_be_bytes(b)
                } else {
                    0
                };
                entry.data = v.wrapping_add(1).to_be_bytes().to_vec();
            }
            NV_EXTEND => {
                let hh = HashAlg::from_alg(entry.name_alg)?;
                let old = if entry.has(a::WRITTEN) {
                    entry.data.clone()
                } else {
                    alloc::vec![0; hh.size()]
                };
                entry.data = hh.digest(&[&old, &data]);
            }
            _ => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&entry.data);
                let v = if entry.has(a::WRITTEN) {
                    u64::from_be_bytes(b)
                } else {
                    0
                };
                entry.data = (v | bits).to_be_bytes().to_vec();
            }
        }
        entry.attrs |= a::WRITTEN;
        self.persist();
        Ok(Out::new())
    }

    fn nv_write_lock(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let i = self.nv_index(c.handles[1]).h(2)?;
        let n = self.p.nv[i].clone();
        self.nv_check_auth(c.handles[0], &n, false)?;
        if !n.has(a::WRITEDEFINE) && !n.has(a::WRITE_STCLEAR) {
            return Err(Rc::ATTRIBUTES.handle(2));
        }
        self.p.nv[i].attrs |= a::WRITELOCKED;
        self.persist();
        Ok(Out::new())
    }

    fn nv_read_lock(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let i = self.nv_index(c.handles[1]).h(2)?;
        let n = self.p.nv[i].clone();
        self.nv_check_auth(c.handles[0], &n, true)?;
        if !n.has(a::READ_STCLEAR) {
            return Err(Rc::ATTRIBUTES.handle(2));
        }
        self.p.nv[i].attrs |= a::READLOCKED;
        Ok(Out::new())
    }
}

impl<P: Platform> Tpm<P> {
    /// NV_ChangeAuth: a new authValue for an index (ADMIN role: a policy session naming this
    /// command).
    fn nv_change_auth(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let new_auth = c.params.tpm2b(64).p(1)?.to_vec();
        c.params.finish().p(1)?;
        let i = self.nv_index(c.handles[0]).h(1)?;
        let hs = HashAlg::from_alg(self.p.nv[i].name_alg).h(1)?.size();
        let new_auth = crate::engine::trim(&new_auth).to_vec();
        if new_auth.len() > hs {
            return Err(Rc::SIZE.param(1));
        }
        self.p.nv[i].auth = new_auth;
        self.persist();
        Ok(Out::new())
    }

    /// NV_GlobalWriteLock: write-locks every index with TPMA_NV_GLOBALLOCK until the next
    /// TPM Reset or Restart.
    fn nv_global_write_lock(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        if !matches!(c.handles[0], h::RH_OWNER | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        for n in &mut self.p.nv {
            if n.has(a::GLOBALLOCK) && !n.has(a::WRITELOCKED) {
                n.attrs |= a::WRITELOCKED;
                self.p.global_locked.push(n.handle);
            }
        }
        self.persist();
        Ok(Out::new())
    }
}

#[allow(dead_code)]
fn _uses(_: nv::NvIndex) {}
