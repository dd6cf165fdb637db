//! Typed wrappers for the inter-domain hypercalls: event channels, grants, the audit ring.
//!
//! Every call is checked by the hypervisor's MAC policy; a refusal is [`IpcFail::Denied`], a
//! malformed request [`IpcFail::Invalid`] with the exact reason.

use warden_abi::guest::hypercall as raw;
use warden_abi::ipc::{GRANT_READ_ONLY, GRANT_READ_WRITE, IpcCall, IpcError};
use warden_abi::{HypercallArgs, Status};

/// Why an IPC call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcFail {
    /// The policy refused it (the hypervisor audited the denial).
    Denied,
    /// The request was wrong.
    Invalid(IpcError),
    /// Another status (unknown call, bad address, …).
    Other(Status),
}

/// Issues IPC call `c` with raw argument words; exposed for tests that send arbitrary words.
///
/// # Errors
/// See [`IpcFail`].
pub fn call_raw(c: u64, args: [u64; 5]) -> Result<u64, IpcFail> {
    let (status, value) = raw(HypercallArgs { call: c, args });
    match Status::from_raw(status) {
        Some(Status::Ok) => Ok(value),
        Some(Status::Denied) => Err(IpcFail::Denied),
        Some(Status::InvalidArgument) => {
            Err(IpcError::from_raw(value).map_or(IpcFail::Other(Status::InvalidArgument), IpcFail::Invalid))
        }
        Some(s) => Err(IpcFail::Other(s)),
        None => Err(IpcFail::Other(Status::InvalidArgument)),
    }
}

fn call(c: IpcCall, args: [u64; 5]) -> Result<u64, IpcFail> {
    call_raw(c as u64, args)
}

/// Allocates an unbound port that only domain `remote` may bind.
///
/// # Errors
/// See [`IpcFail`].
pub fn evtchn_alloc(remote: u32) -> Result<u32, IpcFail> {
    call(IpcCall::EvtchnAlloc, [remote.into(), 0, 0, 0, 0]).map(|p| p as u32)
}

/// Binds a new local port to `remote`'s unbound `port`.
///
/// # Errors
/// See [`IpcFail`].
pub fn evtchn_bind(remote: u32, port: u32) -> Result<u32, IpcFail> {
    call(IpcCall::EvtchnBind, [remote.into(), port.into(), 0, 0, 0]).map(|p| p as u32)
}

/// Signals the peer of `port`.
///
/// # Errors
/// See [`IpcFail`].
pub fn evtchn_send(port: u32) -> Result<(), IpcFail> {
    call(IpcCall::EvtchnSend, [port.into(), 0, 0, 0, 0]).map(|_| ())
}

/// Closes `port`.
///
/// # Errors
/// See [`IpcFail`].
pub fn evtchn_close(port: u32) -> Result<(), IpcFail> {
    call(IpcCall::EvtchnClose, [port.into(), 0, 0, 0, 0]).map(|_| ())
}

/// Waits until a port in `mask` is pending or `timeout_us` passes (`None`: no timeout);
/// returns the pending ports of the mask, now cleared (0 = timed out).
///
/// # Errors
/// See [`IpcFail`].
pub fn evtchn_wait(mask: u64, timeout_us: Option<u64>) -> Result<u64, IpcFail> {
    call(IpcCall::EvtchnWait, [mask, timeout_us.unwrap_or(u64::MAX), 0, 0, 0])
}

/// Offers this domain's page at guest-physical `gpa` (page-aligned) to `grantee`.
///
/// # Errors
/// See [`IpcFail`].
pub fn grant_offer(grantee: u32, gpa: u64, writable: bool) -> Result<u32, IpcFail> {
    let flags = if writable { GRANT_READ_WRITE } else { GRANT_READ_ONLY };
    call(IpcCall::GrantOffer, [grantee.into(), gpa / 4096, flags, 0, 0]).map(|r| r as u32)
}

/// Maps `granter`'s grant `gref` at `gpa` (a page of the grant window).
///
/// # Errors
/// See [`IpcFail`].
pub fn grant_map(granter: u32, gref: u32, gpa: u64, writable: bool) -> Result<(), IpcFail> {
    let flags = if writable { GRANT_READ_WRITE } else { GRANT_READ_ONLY };
    call(IpcCall::GrantMap, [granter.into(), gref.into(), gpa, flags, 0]).map(|_| ())
}

/// Unmaps `granter`'s grant `gref`.
///
/// # Errors
/// See [`IpcFail`].
pub fn grant_unmap(granter: u32, gref: u32) -> Result<(), IpcFail> {
    call(IpcCall::GrantUnmap, [granter.into(), gref.into(), 0, 0, 0]).map(|_| ())
}

/// Withdraws grant `gref` (refused while the grantee maps it).
///
/// # Errors
/// See [`IpcFail`].
pub fn grant_revoke(gref: u32) -> Result<(), IpcFail> {
    call(IpcCall::GrantRevoke, [gref.into(), 0, 0, 0, 0]).map(|_| ())
}

/// Reads audit records from sequence number `from_seq` into `buf` (header + whole records);
/// returns how many records were written.
///
/// # Errors
/// See [`IpcFail`].
pub fn audit_read(buf: &mut [u8], from_seq: u64) -> Result<u64, IpcFail> {
    call(IpcCall::AuditRead, [buf.as_mut_ptr() as u64, buf.len() as u64, from_seq, 0, 0])
}
