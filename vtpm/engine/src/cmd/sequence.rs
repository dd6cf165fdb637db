//! Hash, HMAC and event sequences: HashSequenceStart, HMAC_Start, SequenceUpdate,
//! SequenceComplete, EventSequenceComplete (Part 3 ch. 17).
//!
//! A sequence occupies a transient object slot. It keeps the bytes it has been fed (bounded by
//! `MAX_SEQUENCE_DATA`) rather than a hasher's internal state, so that ContextSave can carry it.

use super::object::ST_HASHCHECK;
use crate::Platform;
use crate::crypto::{HashAlg, alg};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::marshal::{Reader, Writer};
use crate::object::{Object, Params, Public, Scheme, Sensitive, attr};
use crate::pcr::HASHES;
use crate::rc::{At, Rc};
use alloc::vec::Vec;

/// Most bytes a sequence accumulates.
pub(crate) const MAX_SEQUENCE_DATA: usize = 64 * 1024;

/// What a sequence computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SeqKind {
    Hash(HashAlg),
    Hmac(HashAlg, Vec<u8>),
    /// Digests for every PCR bank (EventSequenceComplete).
    Event,
}

/// Sequence state kept next to the object slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seq {
    pub(crate) kind: SeqKind,
    pub(crate) data: Vec<u8>,
}

impl Seq {
    pub(crate) fn write(&self, w: &mut Writer) {
        match &self.kind {
            SeqKind::Hash(hh) => {
                w.u8(0).u16(hh.alg()).u16(0);
            }
            SeqKind::Hmac(hh, k) => {
                w.u8(1).u16(hh.alg()).tpm2b(k);
            }
            SeqKind::Event => {
                w.u8(2).u16(alg::NULL).u16(0);
            }
        }
        w.u32(self.data.len() as u32).bytes(&self.data);
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Seq, Rc> {
        let k = r.u8()?;
        let a = r.u16()?;
        let key = r.tpm2b(128)?.to_vec();
        let kind = match k {
            0 => SeqKind::Hash(HashAlg::from_alg(a)?),
            1 => SeqKind::Hmac(HashAlg::from_alg(a)?, key),
            2 => SeqKind::Event,
            _ => return Err(Rc::VALUE),
        };
        let n = r.u32()? as usize;
        if n > MAX_SEQUENCE_DATA {
            return Err(Rc::SIZE);
        }
        Ok(Seq {
            kind,
            data: r.bytes(n)?.to_vec(),
        })
    }
}

/// The placeholder object that stands for a sequence: no name, authorised by its auth value.
fn seq_object(auth: Vec<u8>) -> Object {
    let public = Public {
        name_alg: alg::NULL,
        attrs: attr::USER_WITH_AUTH | attr::NO_DA,
        policy: Vec::new(),
        params: Params::KeyedHash {
            scheme: Scheme::NULL,
            kdf: alg::NULL,
            unique: Vec::new(),
        },
    };
    Object {
        public,
        sens: Some(Sensitive::new(auth, Vec::new(), Vec::new())),
        hierarchy: h::RH_NULL,
        name: Vec::new(),
        qualified: Vec::new(),
    }
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_sequence(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        use crate::cc::code::*;
        match c.cc {
            HASH_SEQUENCE_START => self.hash_sequence_start(c),
            HMAC_START => self.hmac_start(c),
            SEQUENCE_UPDATE => self.sequence_update(c),
            SEQUENCE_COMPLETE => self.sequence_complete(c),
            EVENT_SEQUENCE_COMPLETE => self.event_sequence_complete(c),
            _ => self.dispatch_session(c),
        }
    }

    fn start_seq(&mut self, auth: &[u8], seq: Seq) -> Result<u32, Rc> {
        let handle = self.load_object(seq_object(crate::engine::trim(auth).to_vec()))?;
        self.v.seqs[(handle - h::TRANSIENT_FIRST) as usize] = Some(seq);
        Ok(handle)
    }

    fn hash_sequence_start(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let auth = c.params.tpm2b(64).p(1)?.to_vec();
        let a = c.params.u16().p(2)?;
        c.params.finish().p(2)?;
        let kind = if a == alg::NULL {
            SeqKind::Event
        } else {
            SeqKind::Hash(HashAlg::from_alg(a).p(2)?)
        };
        let mut o = Out::new();
        o.handle = Some(self.start_seq(
            &auth,
            Seq {
                kind,
                data: Vec::new(),
            },
        )?);
        Ok(o)
    }

    fn hmac_start(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let auth = c.params.tpm2b(64).p(1)?.to_vec();
        let a = c.params.u16().p(2)?;
        c.params.finish().p(2)?;
        let key = self.object(c.handles[0]).h(1)?.clone();
        let Params::KeyedHash { scheme, .. } = key.public.params else {
            return Err(Rc::TYPE.handle(1));
        };
        if !key.public.has(attr::SIGN) || key.public.has(attr::RESTRICTED) {
            return Err(Rc::KEY.handle(1));
        }
        let hash = if scheme.alg == alg::HMAC {
            if a != alg::NULL && a != scheme.hash {
                return Err(Rc::VALUE.param(2));
            }
            scheme.hash
        } else {
            a
        };
        let hh = HashAlg::from_alg(hash).p(2)?;
        let secret = key.sens.as_ref().ok_or(Rc::KEY.handle(1))?.secret.clone();
        let mut o = Out::new();
        o.handle = Some(self.start_seq(
            &auth,
            Seq {
                kind: SeqKind::Hmac(hh, secret),
                data: Vec::new(),
            },
        )?);
        Ok(o)
    }

    fn seq_slot(&self, hdl: u32, n: u32) -> Result<usize, Rc> {
        let slot = hdl.wrapping_sub(h::TRANSIENT_FIRST) as usize;
        if h::ty(hdl) != h::HT_TRANSIENT || self.v.seqs.get(slot).and_then(|s| s.as_ref()).is_none()
        {
            return Err(Rc::MODE.handle(n));
        }
        Ok(slot)
    }

    fn sequence_update(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let data = c.params.tpm2b(1024).p(1)?.to_vec();
        c.params.finish().p(1)?;
        let slot = self.seq_slot(c.handles[0], 1)?;
        let seq = self.v.seqs[slot].as_mut().expect("checked");
        if seq.data.len() + data.len() > MAX_SEQUENCE_DATA {
            return Err(Rc::MEMORY);
        }
        seq.data.extend_from_slice(&data);
        Ok(Out::new())
    }

    fn take_seq(&mut self, hdl: u32, n: u32, last: &[u8]) -> Result<Seq, Rc> {
        let slot = self.seq_slot(hdl, n)?;
        let mut seq = self.v.seqs[slot].take().expect("checked");
        self.v.objects[slot] = None;
        seq.data.extend_from_slice(last);
        Ok(seq)
    }

    fn sequence_complete(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let data = c.params.tpm2b(1024).p(1)?.to_vec();
        let hier = c.params.u32().p(2)?;
        c.params.finish().p(2)?;
        if !matches!(
            hier,
            h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM | h::RH_NULL
        ) {
            return Err(Rc::VALUE.param(2));
        }
        let slot = self.seq_slot(c.handles[0], 1)?;
        if self.v.seqs[slot]
            .as_ref()
            .is_some_and(|s| s.kind == SeqKind::Event)
        {
            return Err(Rc::MODE.handle(1));
        }
        let seq = self.take_seq(c.handles[0], 1, &data)?;
        let mut o = Out::new();
        match seq.kind {
            SeqKind::Hash(hh) => {
                let digest = hh.digest(&[&seq.data]);
                o.params.tpm2b(&digest);
                let generated =
                    seq.data.len() >= 4 && seq.data[..4] == 0xff54_4347u32.to_be_bytes();
                let tk = if generated { h::RH_NULL } else { hier };
                self.ticket(&mut o.params, ST_HASHCHECK, tk, hh, &[&digest]);
            }
            SeqKind::Hmac(hh, key) => {
                o.params.tpm2b(&hh.hmac(&key, &[&seq.data]));
                o.params.u16(ST_HASHCHECK).u32(h::RH_NULL).u16(0);
            }
            SeqKind::Event => unreachable!("rejected above"),
        }
        Ok(o)
    }

    fn event_sequence_complete(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let data = c.params.tpm2b(1024).p(1)?.to_vec();
        c.params.finish().p(1)?;
        let pcr_h = c.handles[0];
        let idx = if pcr_h == h::RH_NULL {
            None
        } else if (pcr_h as usize) < crate::pcr::PCR_COUNT {
            Some(pcr_h as usize)
        } else {
            return Err(Rc::VALUE.handle(1));
        };
        if let Some(i) = idx
            && !crate::pcr::may_extend(i, c.locality)
        {
            return Err(Rc::LOCALITY);
        }
        let slot = self.seq_slot(c.handles[1], 2)?;
        if self.v.seqs[slot]
            .as_ref()
            .is_some_and(|s| s.kind != SeqKind::Event)
        {
            return Err(Rc::MODE.handle(2));
        }
        let seq = self.take_seq(c.handles[1], 2, &data)?;
        let mut o = Out::new();
        o.params.u32(HASHES.len() as u32);
        for b in HASHES {
            let d = b.digest(&[&seq.data]);
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
}
