//! PCR commands: PCR_Read, PCR_Extend, PCR_Event, PCR_Reset (Part 3 ch. 22).

use crate::Platform;
use crate::crypto::HashAlg;
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::pcr::{self, HASHES, PCR_COUNT, Selection};
use crate::rc::{At, Rc};
use alloc::vec::Vec;

impl<P: Platform> Tpm<P> {
    pub(crate) fn pcr_read(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let sel = pcr::parse_selection(&mut c.params).p(1)?;
        c.params.finish().p(1)?;
        // At most 8 digests per response; the selection out says which ones came back.
        let mut left = 8;
        let mut out_sel = Vec::new();
        let mut digests = Vec::new();
        for s in &sel {
            let mut bits = alloc::vec![0u8; s.select.len()];
            if let Some(vals) = self.v.pcrs.bank(s.hash) {
                for i in s.indices() {
                    if left == 0 {
                        break;
                    }
                    bits[i / 8] |= 1 << (i % 8);
                    digests.push(vals[i].clone());
                    left -= 1;
                }
            }
            out_sel.push(Selection {
                hash: s.hash,
                hash_id: s.hash_id,
                select: bits,
            });
        }
        let mut o = Out::new();
        o.params.u32(self.v.pcrs.update_counter);
        pcr::write_selection(&mut o.params, &out_sel);
        o.params.u32(digests.len() as u32);
        for d in digests {
            o.params.tpm2b(&d);
        }
        Ok(o)
    }

    /// The PCR index of a TPMI_DH_PCR handle, or None for TPM_RH_NULL.
    fn pcr_index(hdl: u32) -> Result<Option<usize>, Rc> {
        if hdl == h::RH_NULL {
            return Ok(None);
        }
        if (hdl as usize) < PCR_COUNT {
            Ok(Some(hdl as usize))
        } else {
            Err(Rc::VALUE.handle(1))
        }
    }

    pub(crate) fn pcr_extend(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let idx = Self::pcr_index(c.handles[0])?;
        let count = c.params.u32().p(1)?;
        if count > 8 {
            return Err(Rc::SIZE.param(1));
        }
        let mut digests = Vec::new();
        for _ in 0..count {
            let a = c.params.u16().p(1)?;
            let hash = HashAlg::from_alg(a).p(1)?;
            digests.push((hash, c.params.bytes(hash.size()).p(1)?.to_vec()));
        }
        c.params.finish().p(1)?;
        if let Some(i) = idx {
            if !pcr::may_extend(i, c.locality) {
                return Err(Rc::LOCALITY);
            }
            for (hash, d) in digests {
                self.v.pcrs.extend(i, hash, &d);
            }
            self.v.pcrs.update_counter = self.v.pcrs.update_counter.wrapping_add(1);
        }
        Ok(Out::new())
    }

    pub(crate) fn pcr_event(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let idx = Self::pcr_index(c.handles[0])?;
        let data = c.params.tpm2b(1024).p(1)?;
        c.params.finish().p(1)?;
        if let Some(i) = idx
            && !pcr::may_extend(i, c.locality)
        {
            return Err(Rc::LOCALITY);
        }
        let mut o = Out::new();
        o.params.u32(HASHES.len() as u32);
        for b in HASHES {
            let d = b.digest(&[data]);
            if let Some(i) = idx {
                self.v.pcrs.extend(i, b, &d);
            }
            o.params.u16(b.alg()).bytes(&d);
        }
        if idx.is_some() {
            self.v.pcrs.update_counter = self.v.pcrs.update_counter.wrapping_add(1);
        }
        Ok(o)
    }

    pub(crate) fn pcr_reset(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let Some(i) = Self::pcr_index(c.handles[0])? else {
            return Err(Rc::VALUE.handle(1));
        };
        if !pcr::may_reset(i, c.locality) {
            return Err(Rc::LOCALITY);
        }
        self.v.pcrs.reset(i);
        self.v.pcrs.update_counter = self.v.pcrs.update_counter.wrapping_add(1);
        Ok(Out::new())
    }
}
