//! Typed wrappers for the checkpoint/restore mechanism calls (64..79): target information,
//! page and vCPU capture of a paused domain, the restore sequence, dirty logging.
//!
//! Every call is checked by the hypervisor's MAC policy (`introspect { … }`); a refusal is
//! [`IntroFail::Denied`], a wrong request names its reason.

use warden_abi::guest::hypercall as raw;
use warden_abi::introspect::{
    IntrospectCall, IntrospectError, TargetInfo, VcpuProblem, VcpuRecord,
};
use warden_abi::lifecycle::{CreateRequest, LifecycleError};
use warden_abi::{HypercallArgs, Status};

/// Why an introspection call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntroFail {
    /// The policy refused it (audited as the policy says).
    Denied,
    /// A lifecycle reason (no such domain, ended, table full, Chinese Wall …).
    Lifecycle(LifecycleError),
    /// An introspection reason.
    Introspect(IntrospectError),
    /// The vCPU record was refused, and why.
    Vcpu(VcpuProblem),
    /// Another status (bad address, …).
    Other(Status),
}

/// Issues introspection call `c` with raw argument words.
///
/// # Errors
/// See [`IntroFail`].
pub fn call_raw(c: u64, args: [u64; 5]) -> Result<u64, IntroFail> {
    let (status, value) = raw(HypercallArgs { call: c, args });
    match Status::from_raw(status) {
        Some(Status::Ok) => Ok(value),
        Some(Status::Denied) => Err(IntroFail::Denied),
        Some(Status::InvalidArgument) => Err(match IntrospectError::from_raw(value) {
            Some(IntrospectError::BadVcpu) => VcpuProblem::from_raw(value >> 8).map_or(
                IntroFail::Introspect(IntrospectError::BadVcpu),
                IntroFail::Vcpu,
            ),
            Some(e) => IntroFail::Introspect(e),
            None => LifecycleError::from_raw(value).map_or(
                IntroFail::Other(Status::InvalidArgument),
                IntroFail::Lifecycle,
            ),
        }),
        Some(s) => Err(IntroFail::Other(s)),
        None => Err(IntroFail::Other(Status::InvalidArgument)),
    }
}

fn call(c: IntrospectCall, args: [u64; 5]) -> Result<u64, IntroFail> {
    call_raw(c as u64, args)
}

/// What domain `id` is: memory size, label, state.
///
/// # Errors
/// See [`IntroFail`].
pub fn target_info(id: u32) -> Result<TargetInfo, IntroFail> {
    let mut b = [0u8; TargetInfo::SIZE];
    call(
        IntrospectCall::TargetInfo,
        [id.into(), b.as_mut_ptr() as u64, 0, 0, 0],
    )?;
    Ok(TargetInfo::from_bytes(&b))
}

/// Copies page `index` of paused domain `id` into `out`.
///
/// # Errors
/// See [`IntroFail`].
pub fn read_page(id: u32, index: u64, out: &mut [u8; 4096]) -> Result<(), IntroFail> {
    call(
        IntrospectCall::ReadPage,
        [id.into(), index, out.as_mut_ptr() as u64, 0, 0],
    )
    .map(|_| ())
}

/// The vCPU record of paused domain `id`.
///
/// # Errors
/// See [`IntroFail`].
pub fn get_vcpu(id: u32) -> Result<VcpuRecord, IntroFail> {
    let mut b = [0u8; VcpuRecord::SIZE];
    call(
        IntrospectCall::GetVcpu,
        [id.into(), b.as_mut_ptr() as u64, 0, 0, 0],
    )?;
    Ok(VcpuRecord::from_bytes(&b))
}

/// Creates the domain a restore fills in; returns its id.
///
/// # Errors
/// See [`IntroFail`].
pub fn restore_create(req: &CreateRequest) -> Result<u32, IntroFail> {
    let b = req.to_bytes();
    call(
        IntrospectCall::RestoreCreate,
        [b.as_ptr() as u64, 0, 0, 0, 0],
    )
    .map(|v| v as u32)
}

/// Writes page `index` of restoring domain `id`.
///
/// # Errors
/// See [`IntroFail`].
pub fn restore_page(id: u32, index: u64, page: &[u8; 4096]) -> Result<(), IntroFail> {
    call(
        IntrospectCall::RestorePage,
        [id.into(), index, page.as_ptr() as u64, 0, 0],
    )
    .map(|_| ())
}

/// Gives restoring domain `id` its vCPU; `DomainUnpause` then starts it.
///
/// # Errors
/// See [`IntroFail`].
pub fn set_vcpu(id: u32, rec: &VcpuRecord) -> Result<(), IntroFail> {
    let b = rec.to_bytes();
    call(
        IntrospectCall::SetVcpu,
        [id.into(), b.as_ptr() as u64, 0, 0, 0],
    )
    .map(|_| ())
}

/// Starts tracking the pages domain `id` writes.
///
/// # Errors
/// See [`IntroFail`].
pub fn dirty_start(id: u32) -> Result<(), IntroFail> {
    call(IntrospectCall::DirtyStart, [id.into(), 0, 0, 0, 0]).map(|_| ())
}

/// Fetches and clears the bitmap of pages domain `id` wrote (bit `p % 8` of byte `p / 8`);
/// returns how many are set.
///
/// # Errors
/// See [`IntroFail`].
pub fn dirty_fetch(id: u32, bitmap: &mut [u8]) -> Result<u64, IntroFail> {
    call(
        IntrospectCall::DirtyFetch,
        [
            id.into(),
            bitmap.as_mut_ptr() as u64,
            bitmap.len() as u64,
            0,
            0,
        ],
    )
}
