//! Typed wrappers around the hypercalls of ABI version 1.

use warden_abi::guest::hypercall as raw;
use warden_abi::{BlockWake, Call, DomainInfo, HypercallArgs, ShutdownReason, Status};

fn call(c: Call, args: [u64; 5]) -> Result<u64, Status> {
    let (status, value) = raw(HypercallArgs { call: c as u64, args });
    match Status::from_raw(status) {
        Some(Status::Ok) => Ok(value),
        Some(err) => Err(err),
        None => Err(Status::InvalidArgument),
    }
}

/// How many hypercalls this domain has made so far (every VMMCALL, counted by the domain).
pub fn made() -> u64 {
    warden_abi::guest::hypercalls_made()
}

/// The null hypercall (does nothing; measures the path).
pub fn null() -> Result<(), Status> {
    call(Call::Null, [0; 5]).map(|_| ())
}

/// The cheapest exit there is: CPUID of Warden's identification leaf, answered by the exit path
/// without dispatch (for measurements; since issue 16 there is no VMMCALL that skips the MAC).
pub fn bare_exit() {
    let _ = warden_abi::guest::cpuid(warden_abi::CPUID_LEAF_BASE);
}

/// Writes bytes to the console; returns how many were written.
pub fn console_write(bytes: &[u8]) -> Result<u64, Status> {
    console_write_raw(bytes.as_ptr() as u64, bytes.len() as u64)
}

/// Writes `len` bytes at guest-physical `gpa`: the hypervisor validates the range, so any
/// numbers are safe to pass (a bad range gives `Err(BadAddress)`).
pub fn console_write_raw(gpa: u64, len: u64) -> Result<u64, Status> {
    call(Call::ConsoleWrite, [gpa, len, 0, 0, 0])
}

/// Gives up the rest of the time slice.
pub fn yield_now() {
    let _ = call(Call::Yield, [0; 5]);
}

/// Sleeps until an event or `timeout_us` microseconds (`None`: until an event).
pub fn block(timeout_us: Option<u64>) -> Result<BlockWake, Status> {
    let v = call(Call::Block, [timeout_us.unwrap_or(u64::MAX), 0, 0, 0, 0])?;
    BlockWake::from_raw(v).ok_or(Status::InvalidArgument)
}

/// This domain's info.
pub fn domain_info() -> Result<DomainInfo, Status> {
    let mut buf = [0u8; DomainInfo::SIZE];
    domain_info_raw(buf.as_mut_ptr() as u64)?;
    Ok(DomainInfo::from_bytes(&buf))
}

/// Asks for the domain info to be written at guest-physical `gpa` (validated by the hypervisor).
pub fn domain_info_raw(gpa: u64) -> Result<(), Status> {
    call(Call::DomainInfo, [gpa, 0, 0, 0, 0]).map(|_| ())
}

/// Ends the domain.
pub fn shutdown(reason: ShutdownReason) -> ! {
    loop {
        let _ = call(Call::Shutdown, [reason as u64, 0, 0, 0, 0]);
    }
}
