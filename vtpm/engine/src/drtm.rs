//! The platform's hash indications `_TPM_Hash_Start`, `_TPM_Hash_Data`, `_TPM_Hash_End`
//! (Part 3 §11.2–11.4): how a CRTM (before TPM2_Startup) or a dynamic root of trust (after it)
//! measures code into PCR 0 or PCR 17 at locality 4, which no command can imitate.
//!
//! Before Startup the sequence is an H-CRTM event: PCR 0 becomes 0…04 extended with the
//! digest, and the following Startup(CLEAR) keeps that value; a Startup(STATE) needs the same
//! H-CRTM state as the Startup before the Shutdown(STATE) (TPM_RC_VALUE for parameter 1
//! otherwise, as libtpms answers) and restores PCR 0 from the saved state. After Startup it is a
//! DRTM event: PCRs 17–22 are reset to zero, PCR 17 is extended with the digest, and
//! restartCount goes up. Every TPM command ends a sequence in progress (the platform sends the
//! three indications back to back), and a power cycle ends it too. The sequence is volatile and
//! not part of a state blob.

use crate::Platform;
use crate::crypto::{HashAlg, Hasher};
use crate::engine::Tpm;
use crate::pcr::HASHES;
use alloc::vec::Vec;

/// PCR of an H-CRTM event (before Startup) and of a DRTM event (after it).
const HCRTM_PCR: usize = 0;
const DRTM_PCR: usize = 17;
/// PCRs a DRTM event resets.
const DYNAMIC_PCRS: core::ops::RangeInclusive<usize> = 17..=22;

/// The hash indications' state of one power cycle.
#[derive(Clone, Debug, Default)]
pub(crate) struct Drtm {
    /// A sequence in progress: one running hash per implemented algorithm.
    sequence: Option<Vec<(HashAlg, Hasher)>>,
    /// PCR 0 per bank after an H-CRTM event of this power cycle, for Startup to keep.
    pub(crate) hcrtm_pcr0: Option<Vec<(HashAlg, Vec<u8>)>>,
}

impl<P: Platform> Tpm<P> {
    /// `_TPM_Hash_Start`: begins a measurement (a sequence already in progress is dropped).
    pub fn hash_start(&mut self) {
        self.drtm.sequence = Some(HASHES.iter().map(|&h| (h, Hasher::new(h))).collect());
    }

    /// `_TPM_Hash_Data`: adds bytes to the measurement in progress (ignored without one).
    pub fn hash_data(&mut self, data: &[u8]) {
        if let Some(seq) = self.drtm.sequence.as_mut() {
            seq.iter_mut().for_each(|(_, h)| h.update(data));
        }
    }

    /// `_TPM_Hash_End`: extends the measurement into PCR 0 (before Startup) or PCR 17 (after).
    pub fn hash_end(&mut self) {
        let Some(seq) = self.drtm.sequence.take() else {
            return;
        };
        let started = self.v.started;
        let pcr = if started {
            for i in DYNAMIC_PCRS {
                self.v.pcrs.reset(i);
            }
            self.p.restart_count = self.p.restart_count.wrapping_add(1);
            DRTM_PCR
        } else {
            // 0…04: the H-CRTM locality marker the PC Client profile puts in PCR 0.
            for (h, vals) in &mut self.v.pcrs.banks {
                let mut v = alloc::vec![0u8; h.size()];
                v[h.size() - 1] = 4;
                vals[HCRTM_PCR] = v;
            }
            HCRTM_PCR
        };
        for (h, hasher) in seq {
            self.v.pcrs.extend(pcr, h, &hasher.finish());
        }
        self.v.pcrs.update_counter = self.v.pcrs.update_counter.wrapping_add(1);
        if started {
            self.persist();
        } else {
            let pcr0 = self
                .v
                .pcrs
                .banks
                .iter()
                .map(|(h, vals)| (*h, vals[HCRTM_PCR].clone()));
            self.drtm.hcrtm_pcr0 = Some(pcr0.collect());
        }
    }

    /// A TPM command ends a measurement in progress.
    pub(crate) fn drtm_abort(&mut self) {
        self.drtm.sequence = None;
    }

    /// Startup: a Resume (`clear` false) must match the saved state's H-CRTM state; a
    /// Startup(CLEAR) after an H-CRTM event keeps its PCR 0.
    pub(crate) fn drtm_startup(&mut self, clear: bool) -> Result<(), crate::rc::Rc> {
        if !clear {
            return if self.p.hcrtm_saved == self.drtm.hcrtm_pcr0.is_some() {
                Ok(())
            } else {
                // The reference names TPM_RC_LOCALITY; libtpms answers this, and so do we.
                Err(crate::rc::Rc::VALUE.param(1))
            };
        }
        for (h, v) in self.drtm.hcrtm_pcr0.iter().flatten() {
            if let Some((_, vals)) = self.v.pcrs.banks.iter_mut().find(|(b, _)| b == h) {
                vals[HCRTM_PCR].clone_from(v);
            }
        }
        Ok(())
    }
}
