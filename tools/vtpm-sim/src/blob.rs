//! swtpm's state blobs (`CMD_GET_STATEBLOB` / `CMD_SET_STATEBLOB`), what QEMU moves when it
//! migrates a VM: `permanent` carries the permanent state (seeds, NV, persistent objects),
//! `volatile` the whole instance (PCRs, loaded objects and sessions too), `savestate` is always
//! empty (the volatile blob already holds what a `TPM2_Shutdown(STATE)` would save).
//!
//! Blobs hold the seeds, so they never leave in the clear: each is sealed (AES-256-GCM, bound
//! to its type) with the migration key, or the state key when none is given. A blob that does
//! not open, or whose contents the engine refuses, changes nothing.

use crate::Shared;
use crate::seal::{Role, SealError};
use std::path::Path;

pub(crate) const PERMANENT: u32 = 1;
pub(crate) const VOLATILE: u32 = 2;
pub(crate) const SAVESTATE: u32 = 3;

/// Largest blob accepted (swtpm's limit).
pub(crate) const MAX_BLOB: u32 = 512 * 1024;

/// Why a blob was not produced or not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BlobError {
    #[error(
        "state blobs are sealed with the migration or state key: start with --key or --migration-key"
    )]
    NoKey,
    #[error("unknown state blob type {0}")]
    Type(u32),
    #[error("{0}")]
    Open(#[from] SealError),
    #[error("the engine refuses the {0} blob: {1}")]
    State(&'static str, warden_vtpm::StateError),
    #[error(
        "vtpm-sim writes no savestate blob (the volatile blob holds the whole state); a non-empty one is not ours"
    )]
    SaveState,
}

impl BlobError {
    /// The swtpm result code for this error.
    pub(crate) fn result(&self) -> u32 {
        match self {
            BlobError::NoKey | BlobError::Type(_) => super::ctrl::TPM_FAIL,
            BlobError::Open(_) | BlobError::State(..) => super::ctrl::TPM_DECRYPT_ERROR,
            BlobError::SaveState => super::ctrl::TPM_BAD_PARAMETER,
        }
    }
}

fn role(ty: u32) -> Result<(Role, &'static str), BlobError> {
    match ty {
        PERMANENT => Ok((Role::PermanentBlob, "permanent")),
        VOLATILE => Ok((Role::VolatileBlob, "volatile")),
        other => Err(BlobError::Type(other)),
    }
}

/// The sealed blob of type `ty`.
pub(crate) fn get(shared: &Shared, ty: u32) -> Result<Vec<u8>, BlobError> {
    if ty == SAVESTATE {
        return Ok(Vec::new());
    }
    let (role, _) = role(ty)?;
    let key = shared.store.blob_key.as_ref().ok_or(BlobError::NoKey)?;
    let plain = match ty {
        PERMANENT => shared.tpm.platform().last.clone(),
        _ => shared.tpm.save_state(),
    };
    Ok(key.seal(role, &plain))
}

/// Takes the sealed blob `sealed` of type `ty` into the (stopped) TPM; on error nothing changed.
pub(crate) fn set(shared: &mut Shared, ty: u32, sealed: &[u8]) -> Result<(), BlobError> {
    if ty == SAVESTATE {
        return if sealed.is_empty() {
            Ok(())
        } else {
            Err(BlobError::SaveState)
        };
    }
    let (role, name) = role(ty)?;
    if sealed.is_empty() {
        // QEMU sends every blob type; an empty one means "none" (as swtpm deletes the file).
        return Ok(());
    }
    let key = shared.store.blob_key.as_ref().ok_or(BlobError::NoKey)?;
    let plain = key.open(role, Path::new(&format!("the {name} state blob")), sealed)?;
    match ty {
        PERMANENT => {
            shared
                .replace_permanent(plain)
                .map_err(|e| BlobError::State(name, e))?;
            shared.resumed = false;
        }
        _ => {
            shared
                .tpm
                .restore_state(&plain)
                .map_err(|e| BlobError::State(name, e))?;
            shared.resumed = true;
        }
    }
    Ok(())
}

/// The volatile state file `CMD_STORE_VOLATILE` writes beside the permanent state.
pub(crate) fn volatile_file(shared: &Shared) -> Option<std::path::PathBuf> {
    let (file, _) = shared.store.file.as_ref()?;
    Some(file.with_file_name("vtpm-volatile.bin"))
}

/// Resumes the volatile state file if there is one (then removes it, as swtpm does): how a
/// TPM stopped with `CMD_STORE_VOLATILE` comes back with its PCRs and sessions. False when
/// there is none.
pub(crate) fn resume_file(shared: &mut Shared) -> Result<bool, BlobError> {
    let Some(path) = volatile_file(shared) else {
        return Ok(false);
    };
    let sealed = match std::fs::read(&path) {
        Ok(s) => s,
        Err(_) => return Ok(false),
    };
    set(shared, VOLATILE, &sealed)?;
    let _ = std::fs::remove_file(&path);
    Ok(true)
}
