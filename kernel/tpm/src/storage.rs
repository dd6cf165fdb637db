//! Sealing and monotonic counters on a TPM: the owner storage primary, sealed data objects
//! bound to a policy, policy sessions (PolicyPCR, PolicyLocality) and NV counters — what the
//! vTPM manager asks of the platform TPM, through the same typed client as measured launch.

use crate::client::{Blob, Command, Error, PcrSelection, RC_HANDLE, Tpm, Transport, pw_session};
use tpm2_protocol::{
    TpmUnmarshal,
    basic::{TpmBuffer, TpmHandle},
    data::{
        Tpm2bData, Tpm2bNvPublic, Tpm2bPrivate, Tpm2bPublic, Tpm2bSensitiveCreate, TpmAlgId,
        TpmEccCurve, TpmRh, TpmSe, TpmaLocality, TpmaNv, TpmaObject, TpmaSession, TpmlPcrSelection,
        TpmsAuthCommand, TpmsEccParms, TpmsEccPoint, TpmsKeyedhashParms, TpmsNvPublic,
        TpmsSensitiveCreate, TpmtEccScheme, TpmtKeyedhashScheme, TpmtPublic, TpmtSymDef,
        TpmuPublicId, TpmuPublicParms, TpmuSymKeyBits, TpmuSymMode,
    },
    frame::{
        TpmCreateCommand, TpmCreateResponse, TpmLoadCommand, TpmLoadResponse,
        TpmNvDefineSpaceCommand, TpmNvDefineSpaceResponse, TpmNvIncrementCommand,
        TpmNvIncrementResponse, TpmNvReadCommand, TpmNvReadResponse, TpmPolicyLocalityCommand,
        TpmPolicyLocalityResponse, TpmPolicyPcrCommand, TpmPolicyPcrResponse,
        TpmStartAuthSessionCommand, TpmStartAuthSessionResponse, TpmUnsealCommand,
        TpmUnsealResponse,
    },
};

/// `TPM_RC_NV_UNINITIALIZED`: an NV index that was never written (a counter never incremented).
pub const RC_NV_UNINITIALIZED: u32 = 0x14A;
/// `TPM_RC_POLICY_FAIL` without its session number: a policy session whose digest does not
/// match the object's policy (e.g. other PCR values than those sealed to).
pub const RC_POLICY_FAIL: u32 = 0x09D;

/// A sealed data object as `TPM2_Create` returns it: both halves marshalled as `TPM2B_PUBLIC`
/// and `TPM2B_PRIVATE`, ready to be stored and loaded again under the same parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedObject {
    /// The marshalled `TPM2B_PUBLIC` (carries the policy the object requires).
    pub public: Blob<512>,
    /// The marshalled `TPM2B_PRIVATE` (wrapped by the parent: opaque outside the TPM).
    pub private: Blob<512>,
}

impl SealedObject {
    /// Rebuilds a sealed object from its two stored halves.
    ///
    /// # Errors
    ///
    /// [`Error::Unexpected`] if either half does not fit the buffer.
    pub fn from_parts<E>(public: &[u8], private: &[u8]) -> Result<Self, Error<E>> {
        Ok(SealedObject {
            public: Blob::from_slice(Command::Load, public)?,
            private: Blob::from_slice(Command::Load, private)?,
        })
    }
}

/// The owner storage primary: a restricted ECC P-256 decryption key with AES-128-CFB for its
/// children (the TCG "SRK" template, H-2 of the EK credential profile's storage variant). The
/// owner seed and the template fix it, so every boot recreates the same key.
fn storage_template() -> TpmtPublic {
    TpmtPublic {
        object_type: TpmAlgId::Ecc,
        name_alg: TpmAlgId::Sha256,
        object_attributes: TpmaObject::FIXED_TPM
            | TpmaObject::FIXED_PARENT
            | TpmaObject::SENSITIVE_DATA_ORIGIN
            | TpmaObject::USER_WITH_AUTH
            | TpmaObject::NO_DA
            | TpmaObject::RESTRICTED
            | TpmaObject::DECRYPT,
        auth_policy: TpmBuffer::default(),
        parameters: TpmuPublicParms::Ecc(TpmsEccParms {
            symmetric: TpmtSymDef {
                algorithm: TpmAlgId::Aes,
                key_bits: TpmuSymKeyBits::Aes(128.into()),
                mode: TpmuSymMode::Aes(TpmAlgId::Cfb),
            },
            scheme: TpmtEccScheme::default(),
            curve_id: TpmEccCurve::NistP256,
            kdf: Default::default(),
        }),
        unique: TpmuPublicId::Ecc(TpmsEccPoint::default()),
    }
}

fn policy_session(handle: u32) -> TpmsAuthCommand {
    TpmsAuthCommand {
        session_handle: TpmHandle::new(handle),
        nonce: TpmBuffer::default(),
        // Not continued: the TPM flushes the session once the command has used it.
        session_attributes: TpmaSession::empty(),
        hmac: TpmBuffer::default(),
    }
}

impl<T: Transport> Tpm<T> {
    /// Creates (derives again) the owner storage primary; returns its transient handle.
    ///
    /// # Errors
    ///
    /// A command failure, or [`Error::Unexpected`] if the TPM returns another kind of key.
    pub fn create_storage_primary(&mut self) -> Result<u32, Error<T::Error>> {
        let r = self.create_primary(
            TpmRh::Owner,
            storage_template(),
            "key differs from the storage template",
        )?;
        Ok(r.handles[0].value())
    }

    /// Seals `secret` (at most 128 bytes) under `parent` in a data object usable only through a
    /// policy session whose digest is `auth_policy` (SHA-256): no password opens it, it cannot
    /// be duplicated, and only this TPM's `parent` can load it.
    ///
    /// # Errors
    ///
    /// A command failure; [`Error::Build`] if `secret` or `auth_policy` is too long.
    pub fn create_sealed(
        &mut self,
        parent: u32,
        secret: &[u8],
        auth_policy: &[u8],
    ) -> Result<SealedObject, Error<T::Error>> {
        let c = Command::Create;
        let template = TpmtPublic {
            object_type: TpmAlgId::KeyedHash,
            name_alg: TpmAlgId::Sha256,
            // No USER_WITH_AUTH: the user role needs the policy. No SENSITIVE_DATA_ORIGIN: we
            // supply the data. FIXED_TPM and FIXED_PARENT: never leaves this TPM's hierarchy.
            object_attributes: TpmaObject::FIXED_TPM | TpmaObject::FIXED_PARENT | TpmaObject::NO_DA,
            auth_policy: TpmBuffer::try_from(auth_policy).map_err(|e| Error::Build(c, e))?,
            parameters: TpmuPublicParms::KeyedHash(TpmsKeyedhashParms {
                scheme: TpmtKeyedhashScheme::default(),
            }),
            unique: TpmuPublicId::KeyedHash(TpmBuffer::default()),
        };
        let r: TpmCreateResponse = self.run_with(
            c,
            &TpmCreateCommand {
                handles: [TpmHandle::new(parent)],
                in_sensitive: Tpm2bSensitiveCreate {
                    inner: TpmsSensitiveCreate {
                        user_auth: TpmBuffer::default(),
                        data: TpmBuffer::try_from(secret).map_err(|e| Error::Build(c, e))?,
                    },
                },
                in_public: Tpm2bPublic { inner: template },
                outside_info: Tpm2bData::default(),
                creation_pcr: TpmlPcrSelection::new(),
            },
            &[pw_session()],
        )?;
        if r.out_public.inner.auth_policy.as_ref() != auth_policy {
            return Err(Error::Unexpected(c, "sealed object carries another policy"));
        }
        Ok(SealedObject {
            public: Blob::from_marshal(c, &r.out_public)?,
            private: Blob::from_marshal(c, &r.out_private)?,
        })
    }

    /// Loads a sealed object under `parent`; returns its transient handle.
    ///
    /// # Errors
    ///
    /// [`Error::Build`] if a stored half is not a valid `TPM2B_PUBLIC`/`TPM2B_PRIVATE`; a command
    /// failure (an object wrapped by another parent or altered fails the TPM's integrity check).
    pub fn load(&mut self, parent: u32, object: &SealedObject) -> Result<u32, Error<T::Error>> {
        let c = Command::Load;
        let (in_public, rest) =
            Tpm2bPublic::unmarshal(object.public.as_bytes()).map_err(|e| Error::Build(c, e))?;
        let (in_private, rest2) =
            Tpm2bPrivate::unmarshal(object.private.as_bytes()).map_err(|e| Error::Build(c, e))?;
        if !rest.is_empty() || !rest2.is_empty() {
            return Err(Error::Unexpected(
                c,
                "trailing bytes after the sealed object",
            ));
        }
        let r: TpmLoadResponse = self.run_with(
            c,
            &TpmLoadCommand {
                handles: [TpmHandle::new(parent)],
                in_private,
                in_public,
            },
            &[pw_session()],
        )?;
        Ok(r.handles[0].value())
    }

    /// Starts an unbound, unsalted SHA-256 policy session; returns its handle. `nonce` is the
    /// caller's nonce (16..32 bytes).
    ///
    /// # Errors
    ///
    /// A command failure (`TPM_RC_SIZE` for a nonce out of range).
    pub fn start_policy_session(&mut self, nonce: &[u8]) -> Result<u32, Error<T::Error>> {
        let c = Command::StartAuthSession;
        let r: TpmStartAuthSessionResponse = self.run_with(
            c,
            &TpmStartAuthSessionCommand {
                handles: [
                    TpmHandle::new(TpmRh::Null.value()),
                    TpmHandle::new(TpmRh::Null.value()),
                ],
                nonce_caller: TpmBuffer::try_from(nonce).map_err(|e| Error::Build(c, e))?,
                encrypted_salt: TpmBuffer::default(),
                session_type: TpmSe::Policy,
                symmetric: TpmtSymDef::default(),
                auth_hash: TpmAlgId::Sha256,
            },
            &[],
        )?;
        Ok(r.handles[0].value())
    }

    /// `TPM2_PolicyPCR` over the current values of `selection` (the TPM computes the digest).
    ///
    /// # Errors
    ///
    /// A command failure.
    pub fn policy_pcr(
        &mut self,
        session: u32,
        selection: PcrSelection,
    ) -> Result<(), Error<T::Error>> {
        let c = Command::PolicyPcr;
        let _: TpmPolicyPcrResponse = self.run_with(
            c,
            &TpmPolicyPcrCommand {
                handles: [TpmHandle::new(session)],
                pcr_digest: TpmBuffer::default(),
                pcrs: selection.to_tpml(c)?,
            },
            &[],
        )?;
        Ok(())
    }

    /// `TPM2_PolicyLocality`: the authorised command must come at `locality` (0..=4).
    ///
    /// # Errors
    ///
    /// A command failure; [`Error::Unexpected`] for a locality above 4.
    pub fn policy_locality(&mut self, session: u32, locality: u8) -> Result<(), Error<T::Error>> {
        let c = Command::PolicyLocality;
        if locality > 4 {
            return Err(Error::Unexpected(c, "locality above 4"));
        }
        let _: TpmPolicyLocalityResponse = self.run_with(
            c,
            &TpmPolicyLocalityCommand {
                handles: [TpmHandle::new(session)],
                locality: TpmaLocality::from_bits_truncate(1 << locality),
            },
            &[],
        )?;
        Ok(())
    }

    /// Unseals the loaded sealed object `item` with the policy `session` (consumed) into `out`;
    /// returns the length.
    ///
    /// # Errors
    ///
    /// A command failure (`TPM_RC_POLICY_FAIL` when the session does not satisfy the object's
    /// policy); [`Error::Unexpected`] if `out` is too small.
    pub fn unseal(
        &mut self,
        item: u32,
        session: u32,
        out: &mut [u8],
    ) -> Result<usize, Error<T::Error>> {
        let c = Command::Unseal;
        let r: TpmUnsealResponse = self.run_with(
            c,
            &TpmUnsealCommand {
                handles: [TpmHandle::new(item)],
            },
            &[policy_session(session)],
        )?;
        let data = r.out_data.as_ref();
        out.get_mut(..data.len())
            .ok_or(Error::Unexpected(c, "unsealed data larger than the buffer"))?
            .copy_from_slice(data);
        Ok(data.len())
    }

    /// Defines NV `index` as a 64-bit counter (owner authorisation): incremented only through a
    /// policy session with digest `write_policy`, read by anyone, never deleted but by the owner.
    ///
    /// # Errors
    ///
    /// A command failure (`TPM_RC_NV_DEFINED` if the index exists).
    pub fn nv_define_counter(
        &mut self,
        index: u32,
        write_policy: &[u8],
    ) -> Result<(), Error<T::Error>> {
        let c = Command::NvDefineSpace;
        let _: TpmNvDefineSpaceResponse = self.run_with(
            c,
            &TpmNvDefineSpaceCommand {
                handles: [TpmHandle::new(TpmRh::Owner.value())],
                auth: TpmBuffer::default(),
                public_info: Tpm2bNvPublic {
                    inner: TpmsNvPublic {
                        nv_index: TpmHandle::new(index),
                        name_alg: TpmAlgId::Sha256,
                        attributes: TpmaNv::COUNTER
                            | TpmaNv::POLICYWRITE
                            | TpmaNv::AUTHREAD
                            | TpmaNv::NO_DA,
                        auth_policy: TpmBuffer::try_from(write_policy)
                            .map_err(|e| Error::Build(c, e))?,
                        data_size: 8.into(),
                    },
                },
            },
            &[pw_session()],
        )?;
        Ok(())
    }

    /// Increments the NV counter `index` with the policy `session` (consumed).
    ///
    /// # Errors
    ///
    /// A command failure (`TPM_RC_POLICY_FAIL` if the session does not satisfy its policy).
    pub fn nv_increment(&mut self, index: u32, session: u32) -> Result<(), Error<T::Error>> {
        let _: TpmNvIncrementResponse = self.run_with(
            Command::NvIncrement,
            &TpmNvIncrementCommand {
                handles: [TpmHandle::new(index), TpmHandle::new(index)],
            },
            &[policy_session(session)],
        )?;
        Ok(())
    }

    /// Reads the NV counter `index`: `None` if no such index is defined.
    ///
    /// # Errors
    ///
    /// A command failure (`TPM_RC_NV_UNINITIALIZED` for a counter never incremented).
    pub fn nv_read_counter(&mut self, index: u32) -> Result<Option<u64>, Error<T::Error>> {
        let c = Command::NvRead;
        match self.run_with::<_, TpmNvReadResponse>(
            c,
            &TpmNvReadCommand {
                handles: [TpmHandle::new(index), TpmHandle::new(index)],
                size: 8.into(),
                offset: 0.into(),
            },
            &[pw_session()],
        ) {
            Ok(r) => {
                let bytes: [u8; 8] = r
                    .data
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::Unexpected(c, "counter is not 8 bytes"))?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
            // Format-one code: ignore the parameter bit and the handle number.
            Err(Error::Tpm(_, rc)) if rc & 0x0BF == RC_HANDLE => Ok(None),
            Err(e) => Err(e),
        }
    }
}
