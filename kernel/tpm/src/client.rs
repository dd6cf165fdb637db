//! TPM 2.0 commands Warden's hypervisor needs, built and parsed with `tpm2-protocol`
//! over a caller-supplied [`Transport`].
//!
//! Every response is untrusted input: it is validated by `tpm2-protocol`'s unmarshaller and
//! then checked against what was asked (bank, PCR, key type), and every failure is a typed
//! [`Error`]. No command uses an allocator; the command and response buffers live in [`Tpm`].

use crate::alg::{Banks, Digest, DigestSet, HashAlg};
use core::fmt;
use tpm2_protocol::{
    TpmError, TpmMarshal, TpmWriter,
    basic::{TpmBuffer, TpmHandle},
    constant::TPM_MAX_COMMAND_SIZE,
    data::{
        Tpm2bData, Tpm2bPublic, Tpm2bSensitiveCreate, TpmAlgId, TpmCap, TpmEccCurve, TpmRc,
        TpmRcBase, TpmRh, TpmSt, TpmSu, TpmaObject, TpmaSession, TpmlDigestValues,
        TpmlPcrSelection, TpmsAuthCommand, TpmsCapabilityData, TpmsEccParms, TpmsEccPoint,
        TpmsPcrSelect, TpmsPcrSelection, TpmsSchemeHash, TpmtEccScheme, TpmtHa, TpmtPublic,
        TpmtSigScheme, TpmuAsymScheme, TpmuCapabilities, TpmuHa, TpmuPublicId, TpmuPublicParms,
    },
    frame::{
        TpmCreatePrimaryCommand, TpmCreatePrimaryResponse, TpmEvictControlCommand,
        TpmEvictControlResponse, TpmFlushContextCommand, TpmFlushContextResponse, TpmFrame,
        TpmGetCapabilityCommand, TpmGetCapabilityResponse, TpmGetRandomCommand,
        TpmGetRandomResponse, TpmPcrExtendCommand, TpmPcrExtendResponse, TpmPcrReadCommand,
        TpmPcrReadResponse, TpmPcrResetCommand, TpmPcrResetResponse, TpmQuoteCommand,
        TpmQuoteResponse, TpmReadPublicCommand, TpmReadPublicResponse, TpmResponse,
        TpmStartupCommand, TpmStartupResponse, TpmUnmarshalBody, tpm_marshal_command,
    },
};

/// Moves one command to the TPM and its response back.
///
/// Implementations: the hypervisor's TIS/FIFO driver; in host tests, a TCP connection to
/// swtpm. `execute` returns the number of response bytes written into `rsp`.
pub trait Transport {
    /// What can go wrong on the wire.
    type Error: fmt::Debug;

    /// Sends `cmd` and receives the whole response into `rsp`.
    ///
    /// # Errors
    ///
    /// Whatever the transport reports (no TPM, timeout, response larger than `rsp`).
    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, Self::Error>;
}

/// The TPM commands this crate sends, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Startup,
    GetCapability,
    PcrRead,
    PcrExtend,
    PcrReset,
    GetRandom,
    CreatePrimary,
    ReadPublic,
    EvictControl,
    FlushContext,
    Quote,
    Create,
    Load,
    StartAuthSession,
    PolicyPcr,
    PolicyLocality,
    Unseal,
    NvDefineSpace,
    NvIncrement,
    NvRead,
}

/// Why a TPM operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error<E> {
    /// The transport failed (no TPM, timeout, ...).
    Transport(E),
    /// The command could not be marshalled (a caller argument is out of range).
    Build(Command, TpmError),
    /// The transport reported more response bytes than the buffer holds.
    ResponseOverrun(Command, usize),
    /// The response bytes are not a valid response to the command.
    Malformed(Command, TpmError),
    /// The TPM answered with an error response code.
    Tpm(Command, u32),
    /// A valid response that does not answer what was asked.
    Unexpected(Command, &'static str),
    /// An active PCR bank uses a hash algorithm Warden cannot compute.
    UnsupportedBank(u16),
    /// The TPM reports no active PCR bank at all.
    NoActiveBank,
    /// The quote nonce exceeds `TPM2B_DATA`'s capacity.
    NonceTooLong(usize),
    /// PCR index out of range (0..24).
    BadPcr(u32),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "TPM transport failed: {e:?}"),
            Error::Build(c, e) => write!(f, "cannot build TPM2_{c:?}: {e}"),
            Error::ResponseOverrun(c, n) => {
                write!(f, "TPM2_{c:?} response of {n} bytes overruns the buffer")
            }
            Error::Malformed(c, e) => write!(f, "malformed TPM2_{c:?} response: {e}"),
            Error::Tpm(c, rc) => write!(f, "TPM2_{c:?} failed with response code {rc:#x}"),
            Error::Unexpected(c, what) => write!(f, "unexpected TPM2_{c:?} response: {what}"),
            Error::UnsupportedBank(id) => write!(
                f,
                "active PCR bank with unsupported hash algorithm {id:#06x}"
            ),
            Error::NoActiveBank => write!(f, "the TPM has no active PCR bank"),
            Error::NonceTooLong(n) => write!(f, "nonce of {n} bytes is too long for a quote"),
            Error::BadPcr(p) => write!(f, "PCR {p} does not exist"),
        }
    }
}

/// `TPM_RC_HANDLE`: the handle does not reference a loaded object.
pub(crate) const RC_HANDLE: u32 = 0x08B;
/// `TPM_RC_RETRY`, `TPM_RC_YIELDED`, `TPM_RC_TESTING`: send the command again.
const RC_RETRY: u32 = 0x922;
const RC_YIELDED: u32 = 0x908;
const RC_TESTING: u32 = 0x90A;
/// How often a command is sent before a retry warning becomes an error.
const MAX_ATTEMPTS: u32 = 16;
/// `TPM_RC_INITIALIZE`: TPM2_Startup was already sent (by the firmware).
pub const RC_INITIALIZE: u32 = 0x100;

/// Number of PCRs in a PC Client TPM.
pub const PCR_COUNT: u32 = 24;

/// A bounded byte blob copied out of a response (quote, signature, public area).
#[derive(Clone, PartialEq, Eq)]
pub struct Blob<const N: usize> {
    len: usize,
    data: [u8; N],
}

impl<const N: usize> Blob<N> {
    pub(crate) fn from_marshal<T: TpmMarshal, E>(c: Command, value: &T) -> Result<Self, Error<E>> {
        let mut data = [0u8; N];
        let mut w = TpmWriter::new(&mut data);
        value.marshal(&mut w).map_err(|e| Error::Build(c, e))?;
        let len = w.len();
        Ok(Blob { len, data })
    }

    pub(crate) fn from_slice<E>(c: Command, bytes: &[u8]) -> Result<Self, Error<E>> {
        let mut data = [0u8; N];
        data.get_mut(..bytes.len())
            .ok_or(Error::Unexpected(c, "value too large"))?
            .copy_from_slice(bytes);
        Ok(Blob {
            len: bytes.len(),
            data,
        })
    }

    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl<const N: usize> fmt::Debug for Blob<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.len)
    }
}

/// The attestation key: its handle and public area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationKey {
    /// Where the key is loaded (transient or persistent).
    pub handle: u32,
    /// The `TPM2B_PUBLIC` exactly as `tpm2_readpublic -o` writes it.
    pub public: Blob<512>,
    /// The key's TPM name (`nameAlg || H(TPMT_PUBLIC)`).
    pub name: Blob<68>,
}

/// A quote: what the TPM signed, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The `TPMS_ATTEST` (as `tpm2_quote -m` writes it).
    pub attest: Blob<1024>,
    /// The `TPMT_SIGNATURE` (as `tpm2_quote -s` writes it).
    pub signature: Blob<256>,
}

/// A PCR selection: some PCRs in some banks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcrSelection {
    /// The banks.
    pub banks: Banks,
    /// Bitmap of PCR indices (bit n = PCR n).
    pub pcrs: u32,
}

impl PcrSelection {
    pub(crate) fn to_tpml<E>(self, c: Command) -> Result<TpmlPcrSelection, Error<E>> {
        let mut list = TpmlPcrSelection::new();
        let bitmap = self.pcrs.to_le_bytes();
        for alg in self.banks.iter() {
            let sel = TpmsPcrSelection {
                hash: alg_id(alg),
                pcr_select: TpmsPcrSelect::try_from(&bitmap[..3])
                    .map_err(|e| Error::Build(c, e))?,
            };
            list.try_push(sel).map_err(|e| Error::Build(c, e))?;
        }
        Ok(list)
    }
}

pub(crate) fn alg_id(alg: HashAlg) -> TpmAlgId {
    match alg {
        HashAlg::Sha1 => TpmAlgId::Sha1,
        HashAlg::Sha256 => TpmAlgId::Sha256,
        HashAlg::Sha384 => TpmAlgId::Sha384,
        HashAlg::Sha512 => TpmAlgId::Sha512,
    }
}

pub(crate) fn pw_session() -> TpmsAuthCommand {
    TpmsAuthCommand {
        session_handle: TpmHandle::new(TpmRh::Pw.value()),
        nonce: TpmBuffer::default(),
        session_attributes: TpmaSession::empty(),
        hmac: TpmBuffer::default(),
    }
}

/// The restricted ECC P-256 ECDSA-SHA256 signing key template (TCG "AK template" shape):
/// fixed to this TPM, sensitive data generated inside it, usable with an empty password.
fn ak_template() -> TpmtPublic {
    TpmtPublic {
        object_type: TpmAlgId::Ecc,
        name_alg: TpmAlgId::Sha256,
        object_attributes: TpmaObject::FIXED_TPM
            | TpmaObject::FIXED_PARENT
            | TpmaObject::SENSITIVE_DATA_ORIGIN
            | TpmaObject::USER_WITH_AUTH
            | TpmaObject::RESTRICTED
            | TpmaObject::SIGN_ENCRYPT,
        auth_policy: TpmBuffer::default(),
        parameters: TpmuPublicParms::Ecc(TpmsEccParms {
            symmetric: Default::default(),
            scheme: TpmtEccScheme {
                scheme: TpmAlgId::Ecdsa,
                details: TpmuAsymScheme::Hash(TpmsSchemeHash {
                    hash_alg: TpmAlgId::Sha256,
                }),
            },
            curve_id: TpmEccCurve::NistP256,
            kdf: Default::default(),
        }),
        unique: TpmuPublicId::Ecc(TpmsEccPoint::default()),
    }
}

/// A TPM reached through a [`Transport`].
#[derive(Debug)]
pub struct Tpm<T> {
    transport: T,
    cmd: [u8; TPM_MAX_COMMAND_SIZE],
    rsp: [u8; TPM_MAX_COMMAND_SIZE],
}

impl<T: Transport> Tpm<T> {
    /// Wraps a transport.
    pub fn new(transport: T) -> Self {
        Tpm {
            transport,
            cmd: [0; TPM_MAX_COMMAND_SIZE],
            rsp: [0; TPM_MAX_COMMAND_SIZE],
        }
    }

    /// The transport (e.g. to change locality).
    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Sends `command` (with an empty-password session when `auth`) and unmarshals the response.
    fn run<C: TpmFrame, R: TpmUnmarshalBody>(
        &mut self,
        c: Command,
        command: &C,
        auth: bool,
    ) -> Result<R, Error<T::Error>> {
        let sessions = [pw_session()];
        self.run_with(c, command, if auth { &sessions } else { &[] })
    }

    /// Sends `command` with exactly `sessions` (password or policy) and unmarshals the response.
    pub(crate) fn run_with<C: TpmFrame, R: TpmUnmarshalBody>(
        &mut self,
        c: Command,
        command: &C,
        sessions: &[TpmsAuthCommand],
    ) -> Result<R, Error<T::Error>> {
        let len = {
            let mut w = TpmWriter::new(&mut self.cmd);
            let tag = if sessions.is_empty() {
                TpmSt::NoSessions
            } else {
                TpmSt::Sessions
            };
            tpm_marshal_command(command, tag, sessions, &mut w).map_err(|e| Error::Build(c, e))?;
            w.len()
        };
        let mut attempts = 0;
        loop {
            let n = self
                .transport
                .execute(&self.cmd[..len], &mut self.rsp)
                .map_err(Error::Transport)?;
            let raw = self.rsp.get(..n).ok_or(Error::ResponseOverrun(c, n))?;
            let rsp = TpmResponse::cast(raw).map_err(|e| Error::Malformed(c, e))?;
            let rc = rsp.rc().map_err(|e| Error::Malformed(c, e))?;
            if rc == TpmRc::Fmt0(TpmRcBase::Success) {
                return rsp.unmarshal::<R>().map_err(|e| Error::Malformed(c, e));
            }
            // RETRY, YIELDED and TESTING ask for the same command again (TPM 2.0 Part 1 §12.x);
            // swtpm answers RETRY to the first ECC signature after startup.
            attempts += 1;
            if !matches!(rc.value(), RC_RETRY | RC_YIELDED | RC_TESTING) || attempts >= MAX_ATTEMPTS
            {
                return Err(Error::Tpm(c, rc.value()));
            }
        }
    }

    /// Sends `TPM2_Startup(CLEAR)` unless the firmware already did (`TPM_RC_INITIALIZE`, the
    /// normal case on a PC: SeaBIOS and UEFI start the TPM). Returns whether this call started it.
    ///
    /// # Errors
    ///
    /// A command failure other than "already started".
    pub fn startup_clear(&mut self) -> Result<bool, Error<T::Error>> {
        match self.run::<_, TpmStartupResponse>(
            Command::Startup,
            &TpmStartupCommand {
                handles: [],
                startup_type: TpmSu::Clear,
            },
            false,
        ) {
            Ok(_) => Ok(true),
            Err(Error::Tpm(_, RC_INITIALIZE)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The active PCR banks (those with at least one PCR allocated).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedBank`] if an active bank is not SHA-1/SHA-2, [`Error::NoActiveBank`]
    /// if none is active, or a command failure.
    pub fn active_banks(&mut self) -> Result<Banks, Error<T::Error>> {
        let c = Command::GetCapability;
        let r: TpmGetCapabilityResponse = self.run(
            c,
            &TpmGetCapabilityCommand {
                handles: [],
                cap: TpmCap::Pcrs,
                property: 0.into(),
                property_count: 1.into(),
            },
            false,
        )?;
        let TpmsCapabilityData {
            data: TpmuCapabilities::Pcrs(list),
            ..
        } = r.capability_data
        else {
            return Err(Error::Unexpected(
                c,
                "capability data is not a PCR selection",
            ));
        };
        let mut banks = Banks::EMPTY;
        for sel in list.iter() {
            if sel.pcr_select.iter().all(|b| *b == 0) {
                continue;
            }
            let id = sel.hash.value();
            banks.insert(HashAlg::from_id(id).ok_or(Error::UnsupportedBank(id))?);
        }
        if banks.is_empty() {
            return Err(Error::NoActiveBank);
        }
        Ok(banks)
    }

    /// Reads one PCR of one bank.
    ///
    /// # Errors
    ///
    /// A command failure, or [`Error::Unexpected`] if the TPM did not return that PCR.
    pub fn pcr_read(&mut self, pcr: u32, alg: HashAlg) -> Result<Digest, Error<T::Error>> {
        let c = Command::PcrRead;
        check_pcr(pcr)?;
        let sel = PcrSelection {
            banks: Banks::from_algs(&[alg]),
            pcrs: 1 << pcr,
        };
        let r: TpmPcrReadResponse = self.run(
            c,
            &TpmPcrReadCommand {
                handles: [],
                pcr_selection_in: sel.to_tpml(c)?,
            },
            false,
        )?;
        // The TPM silently drops unavailable PCRs from the selection: check what came back.
        let [out] = r.pcr_selection_out.as_ref() else {
            return Err(Error::Unexpected(
                c,
                "selection does not name exactly one bank",
            ));
        };
        if out.hash != alg_id(alg)
            || out.pcr_select.get(pcr as usize / 8).copied().unwrap_or(0) & (1 << (pcr % 8)) == 0
        {
            return Err(Error::Unexpected(c, "the requested PCR was not returned"));
        }
        let [value] = r.pcr_values.as_ref() else {
            return Err(Error::Unexpected(c, "not exactly one PCR value"));
        };
        Digest::from_bytes(alg, value).ok_or(Error::Unexpected(c, "PCR value has the wrong length"))
    }

    /// Extends `pcr` with one digest per bank (`TPM2_PCR_Extend`).
    ///
    /// # Errors
    ///
    /// A command failure; `TPM_RC_LOCALITY` (0x907) if the current locality may not extend it.
    pub fn pcr_extend(&mut self, pcr: u32, digests: &DigestSet) -> Result<(), Error<T::Error>> {
        let c = Command::PcrExtend;
        check_pcr(pcr)?;
        let mut list = TpmlDigestValues::new();
        for d in digests.iter() {
            let ha = TpmtHa {
                hash_alg: alg_id(d.alg()),
                digest: TpmuHa::Digest(
                    TpmBuffer::try_from(d.as_bytes()).map_err(|e| Error::Build(c, e))?,
                ),
            };
            list.try_push(ha).map_err(|e| Error::Build(c, e))?;
        }
        let _: TpmPcrExtendResponse = self.run(
            c,
            &TpmPcrExtendCommand {
                handles: [TpmHandle::new(pcr)],
                digests: list,
            },
            true,
        )?;
        Ok(())
    }

    /// Resets `pcr` to zero in every bank (`TPM2_PCR_Reset`; PCRs 20–22 need locality 2).
    ///
    /// # Errors
    ///
    /// A command failure; `TPM_RC_LOCALITY` (0x907) at a locality that may not reset it.
    pub fn pcr_reset(&mut self, pcr: u32) -> Result<(), Error<T::Error>> {
        check_pcr(pcr)?;
        let _: TpmPcrResetResponse = self.run(
            Command::PcrReset,
            &TpmPcrResetCommand {
                handles: [TpmHandle::new(pcr)],
            },
            true,
        )?;
        Ok(())
    }

    /// Fills `out` with TPM random bytes (several commands if needed).
    ///
    /// # Errors
    ///
    /// A command failure, or [`Error::Unexpected`] if the TPM returns no bytes.
    pub fn get_random(&mut self, out: &mut [u8]) -> Result<(), Error<T::Error>> {
        let c = Command::GetRandom;
        let mut filled = 0;
        while filled < out.len() {
            let want = u16::try_from(out.len() - filled)
                .unwrap_or(u16::MAX)
                .min(32);
            let r: TpmGetRandomResponse = self.run(
                c,
                &TpmGetRandomCommand {
                    handles: [],
                    bytes_requested: want.into(),
                },
                false,
            )?;
            let got = r.random_bytes.as_ref();
            if got.is_empty() || got.len() > usize::from(want) {
                return Err(Error::Unexpected(c, "wrong number of random bytes"));
            }
            out[filled..filled + got.len()].copy_from_slice(got);
            filled += got.len();
        }
        Ok(())
    }

    /// `TPM2_CreatePrimary` of `template` under `hierarchy` (empty password), checked: the key
    /// must be what was asked for — a TPM that returns something else is not trusted (`what`
    /// says so).
    pub(crate) fn create_primary(
        &mut self,
        hierarchy: TpmRh,
        template: TpmtPublic,
        what: &'static str,
    ) -> Result<TpmCreatePrimaryResponse, Error<T::Error>> {
        let c = Command::CreatePrimary;
        let r: TpmCreatePrimaryResponse = self.run(
            c,
            &TpmCreatePrimaryCommand {
                handles: [TpmHandle::new(hierarchy.value())],
                in_sensitive: Tpm2bSensitiveCreate::default(),
                in_public: Tpm2bPublic {
                    inner: template.clone(),
                },
                outside_info: Tpm2bData::default(),
                creation_pcr: TpmlPcrSelection::new(),
            },
            true,
        )?;
        let p = &r.out_public.inner;
        if p.object_type != template.object_type
            || p.name_alg != template.name_alg
            || p.object_attributes != template.object_attributes
            || p.parameters != template.parameters
        {
            return Err(Error::Unexpected(c, what));
        }
        Ok(r)
    }

    /// Creates the attestation key: a restricted ECC P-256 ECDSA/SHA-256 signing primary key
    /// under the endorsement hierarchy. The same TPM always derives the same key from the same
    /// template, so every boot gets the AK that was certified before.
    ///
    /// # Errors
    ///
    /// A command failure, or [`Error::Unexpected`] if the TPM returns another kind of key.
    pub fn create_ak(&mut self) -> Result<AttestationKey, Error<T::Error>> {
        let c = Command::CreatePrimary;
        let r = self.create_primary(
            TpmRh::Endorsement,
            ak_template(),
            "key differs from the AK template",
        )?;
        Ok(AttestationKey {
            handle: r.handles[0].value(),
            public: Blob::from_marshal(c, &r.out_public)?,
            name: Blob::from_slice(c, r.name.as_ref())?,
        })
    }

    /// The public area and name of a loaded or persistent object; `None` if the handle is empty.
    ///
    /// # Errors
    ///
    /// A command failure other than "no such handle".
    pub fn read_public(&mut self, handle: u32) -> Result<Option<AttestationKey>, Error<T::Error>> {
        let c = Command::ReadPublic;
        match self.run::<_, TpmReadPublicResponse>(
            c,
            &TpmReadPublicCommand {
                handles: [TpmHandle::new(handle)],
            },
            false,
        ) {
            Ok(r) => Ok(Some(AttestationKey {
                handle,
                public: Blob::from_marshal(c, &r.out_public)?,
                name: Blob::from_slice(c, r.name.as_ref())?,
            })),
            // Format-one code: ignore the parameter bit (0x40) and the handle number (bits 8-11).
            Err(Error::Tpm(_, rc)) if rc & 0x0BF == RC_HANDLE => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes a transient object persistent at `persistent` (owner authorization, empty
    /// password), or — with `object == persistent` — removes a persistent object.
    ///
    /// # Errors
    ///
    /// A command failure (e.g. `TPM_RC_NV_DEFINED` if `persistent` is taken).
    pub fn evict_control(&mut self, object: u32, persistent: u32) -> Result<(), Error<T::Error>> {
        let _: TpmEvictControlResponse = self.run(
            Command::EvictControl,
            &TpmEvictControlCommand {
                handles: [TpmHandle::new(TpmRh::Owner.value()), TpmHandle::new(object)],
                persistent_handle: TpmHandle::new(persistent),
            },
            true,
        )?;
        Ok(())
    }

    /// Unloads a transient object.
    ///
    /// # Errors
    ///
    /// A command failure.
    pub fn flush_context(&mut self, handle: u32) -> Result<(), Error<T::Error>> {
        let _: TpmFlushContextResponse = self.run(
            Command::FlushContext,
            &TpmFlushContextCommand {
                handles: [],
                flush_handle: TpmHandle::new(handle),
            },
            false,
        )?;
        Ok(())
    }

    /// Makes the AK persistent at `persistent`: kept if the same key is already there,
    /// replaced if another key is. Flushes the transient copy.
    ///
    /// # Errors
    ///
    /// A command failure.
    pub fn persist_ak(
        &mut self,
        ak: &AttestationKey,
        persistent: u32,
    ) -> Result<AttestationKey, Error<T::Error>> {
        match self.read_public(persistent)? {
            Some(existing) if existing.name == ak.name => {}
            Some(_) => {
                self.evict_control(persistent, persistent)?;
                self.evict_control(ak.handle, persistent)?;
            }
            None => self.evict_control(ak.handle, persistent)?,
        }
        if ak.handle != persistent {
            self.flush_context(ak.handle)?;
        }
        Ok(AttestationKey {
            handle: persistent,
            public: ak.public.clone(),
            name: ak.name.clone(),
        })
    }

    /// Quotes `selection` with the key at `ak`, binding `nonce` into the signed data.
    ///
    /// # Errors
    ///
    /// [`Error::NonceTooLong`], or a command failure.
    pub fn quote(
        &mut self,
        ak: u32,
        nonce: &[u8],
        selection: PcrSelection,
    ) -> Result<Quote, Error<T::Error>> {
        let c = Command::Quote;
        // The TPM accepts at most a digest's worth of qualifying data.
        if nonce.len() > crate::alg::MAX_DIGEST {
            return Err(Error::NonceTooLong(nonce.len()));
        }
        let qualifying_data =
            Tpm2bData::try_from(nonce).map_err(|_| Error::NonceTooLong(nonce.len()))?;
        let r: TpmQuoteResponse = self.run(
            c,
            &TpmQuoteCommand {
                handles: [TpmHandle::new(ak)],
                qualifying_data,
                in_scheme: TpmtSigScheme::default(),
                pcr_select: selection.to_tpml(c)?,
            },
            true,
        )?;
        if r.quoted.inner.extra_data.as_ref() != nonce {
            return Err(Error::Unexpected(c, "quote does not carry the nonce"));
        }
        Ok(Quote {
            attest: Blob::from_marshal(c, &r.quoted.inner)?,
            signature: Blob::from_marshal(c, &r.signature)?,
        })
    }
}

fn check_pcr<E>(pcr: u32) -> Result<(), Error<E>> {
    if pcr < PCR_COUNT {
        Ok(())
    } else {
        Err(Error::BadPcr(pcr))
    }
}

/// Replies with the same bytes to every command (for fuzzing the response parsers).
struct Replay<'a>(&'a [u8]);

impl Transport for Replay<'_> {
    type Error = ();
    fn execute(&mut self, _cmd: &[u8], rsp: &mut [u8]) -> Result<usize, ()> {
        let n = self.0.len().min(rsp.len());
        rsp[..n].copy_from_slice(&self.0[..n]);
        Ok(self.0.len())
    }
}

/// Fuzz entry: `data` as the TPM's answer to every command Warden sends must give a value or a
/// typed error, never a panic.
pub fn fuzz_response(data: &[u8]) {
    let mut tpm = Tpm::new(Replay(data));
    let _ = tpm.active_banks();
    let _ = tpm.pcr_read(20, HashAlg::Sha256);
    let _ = tpm.pcr_extend(20, &DigestSet::of(Banks::from_algs(&[HashAlg::Sha1]), b"x"));
    let _ = tpm.pcr_reset(21);
    let _ = tpm.get_random(&mut [0u8; 8]);
    let _ = tpm.read_public(0x8101_0100);
    if let Ok(ak) = tpm.create_ak() {
        let _ = tpm.persist_ak(&ak, 0x8101_0100);
    }
    let _ = tpm.quote(
        0x8101_0100,
        &[1; 8],
        PcrSelection {
            banks: Banks::from_algs(&HashAlg::ALL),
            pcrs: 0b111 << 20,
        },
    );
    let _ = tpm.flush_context(0x8000_0000);
    let _ = tpm.create_storage_primary();
    if let Ok(sealed) = tpm.create_sealed(0x8000_0000, &[1; 32], &[2; 32]) {
        let _ = tpm.load(0x8000_0000, &sealed);
    }
    let _ = tpm.start_policy_session(&[3; 16]);
    let _ = tpm.policy_pcr(
        0x0300_0000,
        PcrSelection {
            banks: Banks::from_algs(&[HashAlg::Sha256]),
            pcrs: 0b111 << 20,
        },
    );
    let _ = tpm.policy_locality(0x0300_0000, 1);
    let _ = tpm.unseal(0x8000_0001, 0x0300_0000, &mut [0u8; 32]);
    let _ = tpm.nv_define_counter(0x0157_0000, &[4; 32]);
    let _ = tpm.nv_increment(0x0157_0000, 0x0300_0000);
    let _ = tpm.nv_read_counter(0x0157_0000);
}
