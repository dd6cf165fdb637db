//! Platform Configuration Registers: SHA-1 and SHA-256 banks of 24 PCRs with the PC Client
//! locality rules for reset and extend.

use crate::crypto::HashAlg;
use crate::marshal::{Reader, Writer};
use crate::rc::Rc;
use alloc::vec::Vec;

pub(crate) const PCR_COUNT: usize = 24;
/// The banks this TPM implements, in the order GetCapability reports them.
pub(crate) const BANKS: [HashAlg; 2] = [HashAlg::Sha1, HashAlg::Sha256];
/// Every implemented hash: PCR_Event and EventSequenceComplete report a digest for each.
pub(crate) const HASHES: [HashAlg; 4] = [
    HashAlg::Sha1,
    HashAlg::Sha256,
    HashAlg::Sha384,
    HashAlg::Sha512,
];

/// PCR values of every bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pcrs {
    pub(crate) banks: Vec<(HashAlg, Vec<Vec<u8>>)>,
    pub(crate) update_counter: u32,
}

impl Pcrs {
    pub(crate) fn new() -> Self {
        Self::with_banks(&BANKS)
    }

    /// Only the given banks allocated (PCR_Allocate), all 24 PCRs in each.
    pub(crate) fn with_banks(banks: &[HashAlg]) -> Self {
        let mut p = Pcrs {
            banks: banks
                .iter()
                .map(|&h| (h, alloc::vec![alloc::vec![0u8; h.size()]; PCR_COUNT]))
                .collect(),
            update_counter: 0,
        };
        p.startup_clear();
        p
    }

    /// PC Client: PCRs 17-22 (dynamic RTM) start as all ones; the rest start as zeros.
    pub(crate) fn startup_clear(&mut self) {
        for (_, vals) in &mut self.banks {
            for (i, v) in vals.iter_mut().enumerate() {
                let fill = if (17..=22).contains(&i) { 0xFF } else { 0 };
                v.iter_mut().for_each(|b| *b = fill);
            }
        }
        self.update_counter = 0;
    }

    pub(crate) fn bank(&self, h: HashAlg) -> Option<&Vec<Vec<u8>>> {
        self.banks.iter().find(|(b, _)| *b == h).map(|(_, v)| v)
    }

    pub(crate) fn extend(&mut self, idx: usize, h: HashAlg, digest: &[u8]) {
        if let Some((_, vals)) = self.banks.iter_mut().find(|(b, _)| *b == h) {
            let new = h.digest(&[&vals[idx], digest]);
            vals[idx] = new;
        }
    }

    pub(crate) fn reset(&mut self, idx: usize) {
        for (_, vals) in &mut self.banks {
            vals[idx].iter_mut().for_each(|b| *b = 0);
        }
    }

    /// Digest of the selected PCRs (in bank then index order), as Quote and PolicyPCR use it.
    pub(crate) fn digest(&self, sel: &[Selection], h: HashAlg) -> Vec<u8> {
        let mut hasher = crate::crypto::Hasher::new(h);
        for s in sel {
            if let Some(vals) = self.bank(s.hash) {
                for i in s.indices() {
                    hasher.update(&vals[i]);
                }
            }
        }
        hasher.finish()
    }
}

/// PC Client PCR attributes: which localities may extend and reset each PCR.
pub(crate) fn may_extend(idx: usize, locality: u8) -> bool {
    let mask: u8 = match idx {
        0..=16 | 23 => 0x1F,
        17..=19 => 0x1C,
        20 => 0x1E,
        21 | 22 => 0x04,
        _ => 0,
    };
    locality_bit(locality) & mask != 0
}

pub(crate) fn may_reset(idx: usize, locality: u8) -> bool {
    let mask: u8 = match idx {
        16 | 23 => 0x1F,
        17..=19 => 0x10,
        20 => 0x14,
        21 | 22 => 0x04,
        _ => 0,
    };
    locality_bit(locality) & mask != 0
}

fn locality_bit(locality: u8) -> u8 {
    if locality < 5 { 1 << locality } else { 0 }
}

/// One TPMS_PCR_SELECTION.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selection {
    pub(crate) hash: HashAlg,
    pub(crate) hash_id: u16,
    pub(crate) select: Vec<u8>,
}

impl Selection {
    pub(crate) fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.select.len() * 8)
            .filter(move |i| *i < PCR_COUNT && self.select[i / 8] & (1 << (i % 8)) != 0)
    }
}

/// Parses a TPML_PCR_SELECTION. Unknown hash algorithms are `TPM_RC_HASH`.
pub(crate) fn parse_selection(r: &mut Reader<'_>) -> Result<Vec<Selection>, Rc> {
    let count = r.u32()?;
    if count > 16 {
        return Err(Rc::SIZE);
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let hash_id = r.u16()?;
        let size = r.u8()? as usize;
        if !(1..=4).contains(&size) {
            return Err(Rc::VALUE);
        }
        let select = r.bytes(size)?.to_vec();
        let hash = HashAlg::from_alg(hash_id)?;
        out.push(Selection {
            hash,
            hash_id,
            select,
        });
    }
    Ok(out)
}

pub(crate) fn write_selection(w: &mut Writer, sel: &[Selection]) {
    w.u32(sel.len() as u32);
    for s in sel {
        w.u16(s.hash_id).u8(s.select.len() as u8).bytes(&s.select);
    }
}
