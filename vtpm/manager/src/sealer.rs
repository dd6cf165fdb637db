//! [`Sealer`]: seals and opens one vTPM instance's state with the platform TPM.
//!
//! Each save: the instance's NV counter is advanced (only at the manager's locality), a fresh
//! AES-256 key is drawn from the platform TPM, sealed under the owner storage primary in a data
//! object whose policy is PolicyPCR over the hypervisor's PCRs 20–22 as they are now, and the
//! state is encrypted with AES-256-GCM under that key, the header (instance, counter, sealed
//! key) authenticated with it. Opening checks the counter first (an older blob is a rollback),
//! then asks the TPM to unseal the key (only under the same PCRs), then the tag.

use crate::blob::{self, Blob, NONCE_LEN};
use crate::policy::{MANAGER_LOCALITY, SEALED_PCRS, counter_write_policy, pcr_policy};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use alloc::vec::Vec;
use core::fmt;
use warden_tpm::storage::{RC_NV_UNINITIALIZED, RC_POLICY_FAIL, SealedObject};
use warden_tpm::{Error, HashAlg, Tpm, Transport};

/// The first NV counter index; instance `n` uses `COUNTER_BASE + n` (owner range 0x01xxxxxx).
pub const COUNTER_BASE: u32 = 0x0157_0000;
/// How many instances the counter range holds.
pub const MAX_INSTANCES: u32 = 0x1_0000;

/// Why a state could not be sealed or opened. Every refusal names its reason; none changes
/// what is stored.
#[derive(Debug, PartialEq, Eq)]
pub enum SealError<E> {
    /// The platform TPM failed (transport or command).
    Tpm(Error<E>),
    /// The stored bytes are not a sealed state.
    Malformed(&'static str),
    /// The blob belongs to another instance.
    WrongInstance { blob: u32, asked: u32 },
    /// An older state than the last one saved: refused.
    Rollback { blob: u64, counter: u64 },
    /// A state newer than the platform's counter: not from this platform TPM's counter (the
    /// index was redefined) — refused like a rollback.
    AheadOfCounter { blob: u64, counter: u64 },
    /// The instance's counter does not exist on this platform TPM.
    NoCounter(u32),
    /// The platform's PCRs 20–22 differ from those the state was sealed to: another
    /// hypervisor, policy or manifest.
    PolicyMismatch,
    /// The blob was altered (the AEAD tag does not match), or the key is not its key.
    Integrity,
    /// Instance number beyond [`MAX_INSTANCES`].
    BadInstance(u32),
}

impl<E: fmt::Debug> fmt::Display for SealError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tpm(e) => write!(f, "platform TPM: {e}"),
            Self::Malformed(why) => write!(f, "not a sealed vTPM state: {why}"),
            Self::WrongInstance { blob, asked } => {
                write!(
                    f,
                    "sealed state of instance {blob}, not of instance {asked}"
                )
            }
            Self::Rollback { blob, counter } => write!(
                f,
                "rolled-back state refused: sealed at counter {blob}, the platform counter is at {counter}"
            ),
            Self::AheadOfCounter { blob, counter } => write!(
                f,
                "state refused: sealed at counter {blob}, ahead of the platform counter {counter}"
            ),
            Self::NoCounter(i) => write!(f, "no rollback counter for instance {i} on this TPM"),
            Self::PolicyMismatch => write!(
                f,
                "cannot unseal: the platform PCRs 20-22 differ from those the state was sealed to (another hypervisor or policy)"
            ),
            Self::Integrity => write!(f, "sealed state altered: authentication failed"),
            Self::BadInstance(i) => write!(f, "instance {i} out of range"),
        }
    }
}

impl<E> From<Error<E>> for SealError<E> {
    fn from(e: Error<E>) -> Self {
        SealError::Tpm(e)
    }
}

/// Seals and opens instance states with the platform TPM at the manager's locality.
pub struct Sealer<T: Transport> {
    tpm: Tpm<T>,
    /// The owner storage primary's transient handle.
    parent: u32,
}

impl<T: Transport> fmt::Debug for Sealer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer(parent {:#x})", self.parent)
    }
}

impl<T: Transport> Sealer<T> {
    /// Derives the owner storage primary (the same key every boot) and keeps it loaded.
    ///
    /// # Errors
    ///
    /// A platform TPM failure.
    pub fn new(mut tpm: Tpm<T>) -> Result<Self, SealError<T::Error>> {
        let parent = tpm.create_storage_primary()?;
        Ok(Sealer { tpm, parent })
    }

    /// The platform TPM (e.g. to read PCRs).
    pub fn tpm(&mut self) -> &mut Tpm<T> {
        &mut self.tpm
    }

    fn counter_index(instance: u32) -> Result<u32, SealError<T::Error>> {
        if instance < MAX_INSTANCES {
            Ok(COUNTER_BASE + instance)
        } else {
            Err(SealError::BadInstance(instance))
        }
    }

    /// The instance's counter value; `None` if it is not defined.
    ///
    /// # Errors
    ///
    /// A platform TPM failure.
    pub fn counter(&mut self, instance: u32) -> Result<Option<u64>, SealError<T::Error>> {
        let index = Self::counter_index(instance)?;
        match self.tpm.nv_read_counter(index) {
            Ok(v) => Ok(v),
            Err(Error::Tpm(_, rc)) if rc & 0xFFF == RC_NV_UNINITIALIZED => Ok(Some(0)),
            Err(e) => Err(e.into()),
        }
    }

    /// Advances the instance's counter (defining it at first use); returns the new value.
    fn advance(&mut self, instance: u32) -> Result<u64, SealError<T::Error>> {
        let index = Self::counter_index(instance)?;
        if self.counter(instance)?.is_none() {
            self.tpm.nv_define_counter(index, &counter_write_policy())?;
        }
        let session = self.policy_session()?;
        let done = self
            .tpm
            .policy_locality(session, MANAGER_LOCALITY)
            .and_then(|()| self.tpm.nv_increment(index, session));
        if let Err(e) = done {
            let _ = self.tpm.flush_context(session);
            return Err(e.into());
        }
        self.counter(instance)?
            .ok_or(SealError::NoCounter(instance))
    }

    fn policy_session(&mut self) -> Result<u32, SealError<T::Error>> {
        let mut nonce = [0u8; 16];
        self.tpm.get_random(&mut nonce)?;
        Ok(self.tpm.start_policy_session(&nonce)?)
    }

    fn sealed_pcr_values(&mut self) -> Result<[[u8; 32]; 3], SealError<T::Error>> {
        let mut values = [[0u8; 32]; 3];
        for (i, v) in values.iter_mut().enumerate() {
            let d = self.tpm.pcr_read(20 + i as u32, HashAlg::Sha256)?;
            v.copy_from_slice(d.as_bytes());
        }
        Ok(values)
    }

    /// Seals `state` for `instance`, advancing its counter: every blob sealed before for this
    /// instance is from then on refused as a rollback.
    ///
    /// # Errors
    ///
    /// A platform TPM failure (nothing is then sealed; the counter may have advanced).
    pub fn seal(&mut self, instance: u32, state: &[u8]) -> Result<Vec<u8>, SealError<T::Error>> {
        let counter = self.advance(instance)?;
        let mut key = [0u8; 32];
        let mut nonce = [0u8; NONCE_LEN];
        self.tpm.get_random(&mut key)?;
        self.tpm.get_random(&mut nonce)?;
        let policy = pcr_policy(&self.sealed_pcr_values()?);
        let sealed = self.tpm.create_sealed(self.parent, &key, &policy)?;
        let mut out = blob::header(
            instance,
            counter,
            sealed.public.as_bytes(),
            sealed.private.as_bytes(),
        );
        let ciphertext = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key))
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: state,
                    aad: &out,
                },
            )
            .map_err(|_| SealError::Integrity)?;
        key.fill(0);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens `bytes` as `instance`'s latest sealed state.
    ///
    /// # Errors
    ///
    /// [`SealError::Malformed`], [`SealError::WrongInstance`], [`SealError::Rollback`],
    /// [`SealError::AheadOfCounter`], [`SealError::NoCounter`], [`SealError::PolicyMismatch`],
    /// [`SealError::Integrity`], or a platform TPM failure.
    pub fn unseal(&mut self, instance: u32, bytes: &[u8]) -> Result<Vec<u8>, SealError<T::Error>> {
        let b = Blob::parse(bytes).map_err(SealError::Malformed)?;
        if b.instance != instance {
            return Err(SealError::WrongInstance {
                blob: b.instance,
                asked: instance,
            });
        }
        let counter = self
            .counter(instance)?
            .ok_or(SealError::NoCounter(instance))?;
        if b.counter < counter {
            return Err(SealError::Rollback {
                blob: b.counter,
                counter,
            });
        }
        if b.counter > counter {
            return Err(SealError::AheadOfCounter {
                blob: b.counter,
                counter,
            });
        }
        let mut key = [0u8; 32];
        self.unseal_key(&b, &mut key)?;
        let state = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key))
            .decrypt(
                Nonce::from_slice(&b.nonce),
                Payload {
                    msg: b.ciphertext,
                    aad: b.aad,
                },
            )
            .map_err(|_| SealError::Integrity);
        key.fill(0);
        state
    }

    fn unseal_key(&mut self, b: &Blob<'_>, key: &mut [u8; 32]) -> Result<(), SealError<T::Error>> {
        let object =
            SealedObject::from_parts(b.public, b.private).map_err(|_: Error<T::Error>| {
                SealError::Malformed("sealed key larger than a TPM object")
            })?;
        // An altered public or private half fails the TPM's own integrity check at Load.
        let item = match self.tpm.load(self.parent, &object) {
            Ok(h) => h,
            Err(Error::Build(..)) => {
                return Err(SealError::Malformed("sealed key is not a TPM object"));
            }
            Err(Error::Tpm(..)) => return Err(SealError::Integrity),
            Err(e) => return Err(e.into()),
        };
        let result = self.unseal_loaded(item, key);
        let _ = self.tpm.flush_context(item);
        result
    }

    fn unseal_loaded(&mut self, item: u32, key: &mut [u8; 32]) -> Result<(), SealError<T::Error>> {
        let session = self.policy_session()?;
        if let Err(e) = self.tpm.policy_pcr(session, SEALED_PCRS) {
            let _ = self.tpm.flush_context(session);
            return Err(e.into());
        }
        // A successful Unseal ends the session (not continued); a failed one leaves it loaded.
        let result = self.tpm.unseal(item, session, key);
        if result.is_err() {
            let _ = self.tpm.flush_context(session);
        }
        match result {
            Ok(32) => Ok(()),
            Ok(_) => Err(SealError::Integrity),
            Err(Error::Tpm(_, rc)) if rc & 0x0BF == RC_POLICY_FAIL => {
                Err(SealError::PolicyMismatch)
            }
            Err(e) => Err(e.into()),
        }
    }
}
