//! NV indices: the public area (TPMS_NV_PUBLIC), attributes (TPMA_NV) and data.

use crate::crypto::HashAlg;
use crate::marshal::{Reader, Writer};
use crate::rc::Rc;
use alloc::vec::Vec;

/// Most NV indices that can be defined.
pub(crate) const MAX_INDICES: usize = 64;
/// Largest NV index and largest single NV_Read/NV_Write.
pub(crate) const MAX_BUFFER: usize = 1024;
/// Largest ordinary NV index (EK certificates of RSA keys approach 1 KiB).
pub(crate) const MAX_INDEX_SIZE: usize = 2048;
/// Total bytes of NV index data the TPM holds.
pub(crate) const MAX_TOTAL: usize = 32 * 1024;

pub(crate) const NT_ORDINARY: u32 = 0;
pub(crate) const NT_COUNTER: u32 = 1;
pub(crate) const NT_BITS: u32 = 2;
pub(crate) const NT_EXTEND: u32 = 4;

/// TPMA_NV bits.
#[allow(dead_code)]
pub(crate) mod a {
    pub(crate) const PPWRITE: u32 = 1 << 0;
    pub(crate) const OWNERWRITE: u32 = 1 << 1;
    pub(crate) const AUTHWRITE: u32 = 1 << 2;
    pub(crate) const POLICYWRITE: u32 = 1 << 3;
    pub(crate) const POLICY_DELETE: u32 = 1 << 10;
    pub(crate) const WRITELOCKED: u32 = 1 << 11;
    pub(crate) const WRITEALL: u32 = 1 << 12;
    pub(crate) const WRITEDEFINE: u32 = 1 << 13;
    pub(crate) const WRITE_STCLEAR: u32 = 1 << 14;
    pub(crate) const GLOBALLOCK: u32 = 1 << 15;
    pub(crate) const PPREAD: u32 = 1 << 16;
    pub(crate) const OWNERREAD: u32 = 1 << 17;
    pub(crate) const AUTHREAD: u32 = 1 << 18;
    pub(crate) const POLICYREAD: u32 = 1 << 19;
    pub(crate) const NO_DA: u32 = 1 << 25;
    pub(crate) const ORDERLY: u32 = 1 << 26;
    pub(crate) const CLEAR_STCLEAR: u32 = 1 << 27;
    pub(crate) const READLOCKED: u32 = 1 << 28;
    pub(crate) const WRITTEN: u32 = 1 << 29;
    pub(crate) const PLATFORMCREATE: u32 = 1 << 30;
    pub(crate) const READ_STCLEAR: u32 = 1 << 31;
    /// Reserved bits (20-24) and the ones only the TPM sets.
    pub(crate) const RESERVED: u32 = 0x01F0_0000 | (0b11 << 8);
}

/// One NV index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NvIndex {
    pub(crate) handle: u32,
    pub(crate) name_alg: u16,
    pub(crate) attrs: u32,
    pub(crate) policy: Vec<u8>,
    pub(crate) size: u16,
    pub(crate) auth: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

impl NvIndex {
    pub(crate) fn nt(&self) -> u32 {
        (self.attrs >> 4) & 0xF
    }
    pub(crate) fn has(&self, bit: u32) -> bool {
        self.attrs & bit != 0
    }
    /// TPMS_NV_PUBLIC.
    pub(crate) fn write_public(&self, w: &mut Writer) {
        w.u32(self.handle)
            .u16(self.name_alg)
            .u32(self.attrs)
            .tpm2b(&self.policy)
            .u16(self.size);
    }
    pub(crate) fn public_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write_public(&mut w);
        w.into_vec()
    }
    /// nameAlg || H(TPMS_NV_PUBLIC).
    pub(crate) fn name(&self) -> Vec<u8> {
        let h = HashAlg::from_alg(self.name_alg).unwrap_or(HashAlg::Sha256);
        let mut n = Vec::from(self.name_alg.to_be_bytes());
        n.extend_from_slice(&h.digest(&[&self.public_bytes()]));
        n
    }
    /// Parses TPMS_NV_PUBLIC (the body of a TPM2B_NV_PUBLIC).
    pub(crate) fn parse_public(r: &mut Reader<'_>) -> Result<NvIndex, Rc> {
        let handle = r.u32()?;
        let name_alg = r.u16()?;
        HashAlg::from_alg(name_alg)?;
        let attrs = r.u32()?;
        let policy = r.tpm2b(64)?.to_vec();
        let size = r.u16()?;
        Ok(NvIndex {
            handle,
            name_alg,
            attrs,
            policy,
            size,
            auth: Vec::new(),
            data: Vec::new(),
        })
    }
}
