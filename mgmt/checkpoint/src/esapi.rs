//! A [`Signer`] backed by a TPM through tss-esapi, for host tools and tests: a platform AK, a
//! signing key whose authPolicy is PolicyPCR over chosen PCRs (computed by the TPM in a trial
//! session), its TPM2_Certify by the AK, and TPM2_Sign in a PolicyPCR session. The service
//! domain's own signer does the same through the platform TPM's command interface.

use crate::writer::Signer;
use std::vec::Vec;
use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket, KeyDerivationFunctionScheme,
    PcrSelectionList, Public, PublicBuilder, PublicEccParametersBuilder, Signature,
    SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

/// `TPM2B_PUBLIC` bytes of `public`.
fn tpm2b_public(public: &Public) -> tss_esapi::Result<Vec<u8>> {
    let t = public.marshall()?;
    let mut out = u16::try_from(t.len())
        .unwrap_or(u16::MAX)
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&t);
    Ok(out)
}

fn ecc_public(
    restricted: bool,
    user_with_auth: bool,
    auth_policy: Option<Digest>,
) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(user_with_auth)
        .with_sign_encrypt(true)
        .with_restricted(restricted)
        .build()?;
    let mut b = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new()
                .with_symmetric(SymmetricDefinitionObject::Null)
                .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
                .with_curve(EccCurve::NistP256)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .with_is_signing_key(true)
                .with_is_decryption_key(false)
                .with_restricted(restricted)
                .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default());
    if let Some(p) = auth_policy {
        b = b.with_auth_policy(p);
    }
    b.build()
}

/// Creates a platform AK (a restricted ECDSA P-256 primary in the owner hierarchy); returns its
/// handle and `TPM2B_PUBLIC`.
///
/// # Errors
///
/// The TPM's.
pub fn create_ak(ctx: &mut Context) -> tss_esapi::Result<(KeyHandle, Vec<u8>)> {
    let public = ecc_public(true, true, None)?;
    let r = ctx.execute_with_nullauth_session(|ctx| {
        ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
    })?;
    Ok((r.key_handle, tpm2b_public(&r.out_public)?))
}

/// A new session of `kind` (trial or policy) with SHA-256 and AES-128-CFB parameter encryption.
fn start_session(ctx: &mut Context, kind: SessionType) -> tss_esapi::Result<AuthSession> {
    ctx.start_auth_session(
        None,
        None,
        None,
        kind,
        SymmetricDefinition::AES_128_CFB,
        HashingAlgorithm::Sha256,
    )?
    .ok_or(tss_esapi::Error::WrapperError(
        tss_esapi::WrapperErrorKind::WrongValueFromTpm,
    ))
}

/// The PolicyPCR digest the TPM computes over `selection`'s current values (trial session).
///
/// # Errors
///
/// The TPM's.
pub fn trial_policy_pcr(
    ctx: &mut Context,
    selection: &PcrSelectionList,
) -> tss_esapi::Result<Digest> {
    let session = start_session(ctx, SessionType::Trial)?;
    let policy = PolicySession::try_from(session)?;
    ctx.policy_pcr(policy, Digest::default(), selection.clone())?;
    let digest = ctx.policy_get_digest(policy)?;
    ctx.flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
        session,
    )))?;
    Ok(digest)
}

/// A checkpoint signing key in a TPM.
#[derive(Debug)]
pub struct TpmSigner {
    ctx: Context,
    key: KeyHandle,
    selection: PcrSelectionList,
    public: Vec<u8>,
    certification: Vec<u8>,
}

impl TpmSigner {
    /// Creates a signing key that can sign only while `selection`'s PCRs hold their current
    /// values (userWithAuth clear, authPolicy = PolicyPCR), and certifies it with `ak`.
    ///
    /// # Errors
    ///
    /// The TPM's.
    pub fn create(
        mut ctx: Context,
        ak: KeyHandle,
        selection: PcrSelectionList,
    ) -> tss_esapi::Result<TpmSigner> {
        let policy = trial_policy_pcr(&mut ctx, &selection)?;
        let public = ecc_public(false, false, Some(policy))?;
        let key = ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })?
            .key_handle;
        // Certify is authorised by the key's admin role (authValue, adminWithPolicy clear) and
        // the AK's user role.
        let (attest, sig) = ctx.execute_with_sessions(
            (
                Some(AuthSession::Password),
                Some(AuthSession::Password),
                None,
            ),
            |ctx| ctx.certify(key.into(), ak, Data::default(), SignatureScheme::Null),
        )?;
        let attest = attest.marshall()?;
        let mut certification = u16::try_from(attest.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes()
            .to_vec();
        certification.extend_from_slice(&attest);
        certification.extend_from_slice(&sig.marshall()?);
        let (public, _, _) = ctx.read_public(key)?;
        Ok(TpmSigner {
            ctx,
            key,
            selection,
            public: tpm2b_public(&public)?,
            certification,
        })
    }

    /// The TPM context (to change PCRs in tests).
    pub fn context(&mut self) -> &mut Context {
        &mut self.ctx
    }
}

fn null_ticket() -> tss_esapi::Result<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
}

impl Signer for TpmSigner {
    type Error = tss_esapi::Error;

    fn public(&self) -> &[u8] {
        &self.public
    }

    fn certification(&self) -> &[u8] {
        &self.certification
    }

    fn sign(&mut self, digest: &[u8; 32]) -> Result<[u8; 64], tss_esapi::Error> {
        let session = start_session(&mut self.ctx, SessionType::Policy)?;
        let policy = PolicySession::try_from(session)?;
        let signed = self
            .ctx
            .policy_pcr(policy, Digest::default(), self.selection.clone())
            .and_then(|()| {
                let key = self.key;
                let d = Digest::try_from(digest.to_vec())?;
                let ticket = null_ticket()?;
                self.ctx.execute_with_session(Some(session), |ctx| {
                    ctx.sign(key, d, SignatureScheme::Null, ticket)
                })
            });
        // The session ends with the command when continueSession is clear; flush it otherwise.
        let _ =
            self.ctx
                .flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
                    session,
                )));
        let Signature::EcDsa(ecc) = signed? else {
            return Err(tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::WrongValueFromTpm,
            ));
        };
        let mut rs = [0u8; 64];
        let (r, s) = (ecc.signature_r().value(), ecc.signature_s().value());
        if r.len() > 32 || s.len() > 32 {
            return Err(tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::WrongValueFromTpm,
            ));
        }
        rs[32 - r.len()..32].copy_from_slice(r);
        rs[64 - s.len()..].copy_from_slice(s);
        Ok(rs)
    }
}
