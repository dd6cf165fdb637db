//! Attestation of NV contents and of object creation: NV_Certify (TPMS_NV_CERTIFY_INFO, or
//! TPMS_NV_DIGEST_CERTIFY_INFO when size and offset are 0) and CertifyCreation (checks the
//! creation ticket from Create/CreatePrimary), signed like Certify (Part 3 §18.6, §31.16).

use crate::Platform;
use crate::crypto::{HashAlg, ct_eq};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::marshal::Writer;
use crate::nv::{MAX_BUFFER, a};
use crate::object::Scheme;
use crate::rc::{At, Rc};
use alloc::vec::Vec;

const ST_ATTEST_NV: u16 = 0x8014;
const ST_ATTEST_CREATION: u16 = 0x801A;
const ST_ATTEST_NV_DIGEST: u16 = 0x801C;
const ST_CREATION: u16 = 0x8021;

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_attest(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        match c.cc {
            crate::cc::code::NV_CERTIFY => self.nv_certify(c),
            crate::cc::code::CERTIFY_X509 => self.certify_x509(c),
            _ => self.certify_creation(c),
        }
    }

    fn nv_certify(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let extra = c.params.tpm2b(64).p(1)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(2)?;
        let size = usize::from(c.params.u16().p(3)?);
        let offset = usize::from(c.params.u16().p(4)?);
        c.params.finish().p(4)?;
        let (sign_h, auth_h, nv_h) = (c.handles[0], c.handles[1], c.handles[2]);
        let n = self
            .p
            .nv
            .iter()
            .find(|n| n.handle == nv_h)
            .cloned()
            .ok_or(Rc::HANDLE.handle(3))?;
        // The read rules of NV_Read.
        if n.has(a::READLOCKED) {
            return Err(Rc::NV_LOCKED);
        }
        self.nv_check_auth(auth_h, &n, true)?;
        if !n.has(a::WRITTEN) {
            return Err(Rc::NV_UNINITIALIZED);
        }
        if size + offset > n.data.len() {
            return Err(Rc::NV_RANGE);
        }
        if size > MAX_BUFFER {
            return Err(Rc::VALUE.param(3));
        }
        // TPM_RH_NULL as signHandle: an unsigned attestation.
        let signer = self.attest_signer(sign_h, 1, in_scheme, 2)?;
        let mut w = Writer::new();
        if size == 0 && offset == 0 {
            // The whole index, as a digest with the signing scheme's hash (none without a
            // signing key: the scheme is TPM_ALG_NULL, the digest empty, as in the reference).
            let digest = match &signer {
                Some((_, scheme)) => HashAlg::from_alg(scheme.hash).p(2)?.digest(&[&n.data]),
                None => Vec::new(),
            };
            self.attest_header_opt(&mut w, ST_ATTEST_NV_DIGEST, signer.as_ref(), &extra);
            w.tpm2b(&n.name()).tpm2b(&digest);
        } else {
            self.attest_header_opt(&mut w, ST_ATTEST_NV, signer.as_ref(), &extra);
            w.tpm2b(&n.name())
                .u16(offset as u16)
                .tpm2b(&n.data[offset..offset + size]);
        }
        self.finish_attest_opt(signer, w.into_vec()).p(2)
    }

    /// CertifyCreation: the object was created by this TPM with that creationHash, as the
    /// creation ticket (HMAC of name and creationHash under the hierarchy proof) shows.
    fn certify_creation(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let extra = c.params.tpm2b(64).p(1)?.to_vec();
        let creation_hash = c.params.tpm2b(64).p(2)?.to_vec();
        let in_scheme = Scheme::parse(&mut c.params).p(3)?;
        let tag = c.params.u16().p(4)?;
        if tag != ST_CREATION {
            return Err(Rc::TAG.param(4));
        }
        let hier = c.params.u32().p(4)?;
        if !matches!(
            hier,
            h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM | h::RH_NULL
        ) {
            return Err(Rc::VALUE.param(4));
        }
        let digest = c.params.tpm2b(64).p(4)?.to_vec();
        c.params.finish().p(4)?;
        let obj = self.object(c.handles[1]).h(2)?.clone();
        let mut want = Writer::new();
        let hname = obj.public.hash().unwrap_or(HashAlg::Sha256);
        self.ticket(
            &mut want,
            ST_CREATION,
            hier,
            hname,
            &[&obj.name, &creation_hash],
        );
        // The ticket as Create/CreatePrimary write it: tag, hierarchy, digest.
        let want = want.into_vec();
        if !ct_eq(
            &want[6..],
            &[&(digest.len() as u16).to_be_bytes()[..], &digest].concat(),
        ) {
            return Err(Rc::TICKET.param(4));
        }
        let signer = self.attest_signer(c.handles[0], 1, in_scheme, 3)?;
        let mut w = Writer::new();
        self.attest_header_opt(&mut w, ST_ATTEST_CREATION, signer.as_ref(), &extra);
        w.tpm2b(&obj.name).tpm2b(&creation_hash);
        self.finish_attest_opt(signer, w.into_vec()).p(3)
    }
}
