//! Typed wrappers for the domain lifecycle and host-management hypercalls: list, info, create,
//! build, transition, pause/unpause, set priority, destroy, host shutdown, physical info.
//!
//! Every call is checked by the hypervisor's MAC policy; a refusal is [`LifecycleFail::Denied`],
//! a malformed request [`LifecycleFail::Invalid`] with the exact reason.

use warden_abi::guest::hypercall as raw;
use warden_abi::lifecycle::{CreateRequest, DomainStatus, LifecycleCall, LifecycleError, PhysInfo};
use warden_abi::{HypercallArgs, Status};

/// Why a lifecycle call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleFail {
    /// The policy refused it (the hypervisor audited the denial as the policy says).
    Denied,
    /// The request was wrong, or does not apply now.
    Invalid(LifecycleError),
    /// Another status (unknown call, bad address, bad length, …).
    Other(Status),
}

impl LifecycleFail {
    /// The ABI status this failure came with.
    pub fn status(self) -> Status {
        match self {
            LifecycleFail::Denied => Status::Denied,
            LifecycleFail::Invalid(_) => Status::InvalidArgument,
            LifecycleFail::Other(s) => s,
        }
    }

    /// A short description for diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            LifecycleFail::Denied => "denied",
            LifecycleFail::Invalid(e) => e.name(),
            LifecycleFail::Other(s) => s.name(),
        }
    }
}

/// Issues lifecycle call `c` with raw argument words; exposed for tests that send arbitrary
/// words.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn call_raw(c: u64, args: [u64; 5]) -> Result<u64, LifecycleFail> {
    let (status, value) = raw(HypercallArgs { call: c, args });
    match Status::from_raw(status) {
        Some(Status::Ok) => Ok(value),
        Some(Status::Denied) => Err(LifecycleFail::Denied),
        Some(Status::InvalidArgument) => Err(LifecycleError::from_raw(value).map_or(
            LifecycleFail::Other(Status::InvalidArgument),
            LifecycleFail::Invalid,
        )),
        Some(s) => Err(LifecycleFail::Other(s)),
        None => Err(LifecycleFail::Other(Status::InvalidArgument)),
    }
}

fn call(c: LifecycleCall, args: [u64; 5]) -> Result<u64, LifecycleFail> {
    call_raw(c as u64, args)
}

/// Fills `out` with the status of every domain the caller may see; returns how many there are
/// (more than `out.len()` if `out` was too small: only the first `out.len()` were written).
///
/// # Errors
/// See [`LifecycleFail`].
pub fn list(out: &mut [DomainStatus]) -> Result<usize, LifecycleFail> {
    // The hypervisor writes the byte encoding; a bounded stack buffer per call keeps this
    // allocation-free (16 records: the domain table's capacity).
    const CHUNK: usize = 16;
    let mut buf = [0u8; CHUNK * DomainStatus::SIZE];
    let want = out.len().min(CHUNK);
    let n = call(
        LifecycleCall::DomainList,
        [
            buf.as_mut_ptr() as u64,
            (want * DomainStatus::SIZE) as u64,
            0,
            0,
            0,
        ],
    )? as usize;
    for (i, slot) in out.iter_mut().enumerate().take(n.min(want)) {
        let mut rec = [0u8; DomainStatus::SIZE];
        rec.copy_from_slice(&buf[i * DomainStatus::SIZE..(i + 1) * DomainStatus::SIZE]);
        *slot = DomainStatus::from_bytes(&rec);
    }
    Ok(n)
}

/// The status of domain `id`.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn info(id: u32) -> Result<DomainStatus, LifecycleFail> {
    let mut buf = [0u8; DomainStatus::SIZE];
    call(
        LifecycleCall::DomainGetInfo,
        [id.into(), buf.as_mut_ptr() as u64, 0, 0, 0],
    )?;
    Ok(DomainStatus::from_bytes(&buf))
}

/// Creates a domain (state building, under the request's build label); returns its id.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn create(req: &CreateRequest) -> Result<u32, LifecycleFail> {
    let bytes = req.to_bytes();
    call(
        LifecycleCall::DomainCreate,
        [bytes.as_ptr() as u64, 0, 0, 0, 0],
    )
    .map(|id| id as u32)
}

/// Loads ELF `image` into building domain `id` and sets its start state (measured).
///
/// # Errors
/// See [`LifecycleFail`].
pub fn build(id: u32, image: &[u8]) -> Result<(), LifecycleFail> {
    build_raw(id, image.as_ptr() as u64, image.len() as u64)
}

/// Like [`build`], with `args` replacing the create request's argument string (measured).
///
/// # Errors
/// See [`LifecycleFail`].
pub fn build_with_args(id: u32, image: &[u8], args: &str) -> Result<(), LifecycleFail> {
    call(
        LifecycleCall::DomainBuild,
        [
            id.into(),
            image.as_ptr() as u64,
            image.len() as u64,
            args.as_ptr() as u64,
            args.len() as u64,
        ],
    )
    .map(|_| ())
}

/// Loads the ELF image at guest-physical `[gpa, gpa + len)` into building domain `id`: an
/// image in this domain's memory or in its boot-image window (see [`boot_image`]).
///
/// # Errors
/// See [`LifecycleFail`].
pub fn build_raw(id: u32, gpa: u64, len: u64) -> Result<(), LifecycleFail> {
    call(LifecycleCall::DomainBuild, [id.into(), gpa, len, 0, 0]).map(|_| ())
}

/// The boot image `name` this domain may read (the manifest's `images=`), as (address, length)
/// for [`build_raw`].
pub fn boot_image(name: &str) -> Option<(u64, u64)> {
    warden_abi::guest::image_directory()
        .find(name)
        .map(|e| (e.gpa, e.len))
}

/// Moves building domain `id` from its build label to `run_label`.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn transition(id: u32, run_label: &str) -> Result<(), LifecycleFail> {
    call(
        LifecycleCall::DomainTransition,
        [
            id.into(),
            run_label.as_ptr() as u64,
            run_label.len() as u64,
            0,
            0,
        ],
    )
    .map(|_| ())
}

/// Starts a built domain or resumes a paused one.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn unpause(id: u32) -> Result<(), LifecycleFail> {
    call(LifecycleCall::DomainUnpause, [id.into(), 0, 0, 0, 0]).map(|_| ())
}

/// Stops scheduling domain `id` until it is unpaused.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn pause(id: u32) -> Result<(), LifecycleFail> {
    call(LifecycleCall::DomainPause, [id.into(), 0, 0, 0, 0]).map(|_| ())
}

/// Sets domain `id`'s priority (higher runs first).
///
/// # Errors
/// See [`LifecycleFail`].
pub fn set_priority(id: u32, priority: u8) -> Result<(), LifecycleFail> {
    call(
        LifecycleCall::DomainSetPriority,
        [id.into(), priority.into(), 0, 0, 0],
    )
    .map(|_| ())
}

/// Ends domain `id` and releases what it holds.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn destroy(id: u32) -> Result<(), LifecycleFail> {
    call(LifecycleCall::DomainDestroy, [id.into(), 0, 0, 0, 0]).map(|_| ())
}

/// Ends the whole run; returns only if refused.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn host_shutdown() -> Result<(), LifecycleFail> {
    call(LifecycleCall::HostShutdown, [0; 5]).map(|_| ())
}

/// The host's memory and domain counts.
///
/// # Errors
/// See [`LifecycleFail`].
pub fn physinfo() -> Result<PhysInfo, LifecycleFail> {
    let mut buf = [0u8; PhysInfo::SIZE];
    call(
        LifecycleCall::PhysInfo,
        [buf.as_mut_ptr() as u64, 0, 0, 0, 0],
    )?;
    Ok(PhysInfo::from_bytes(&buf))
}
