//! Wrappers for the lifecycle calls (32..47). Written by the management-network work to the
//! numbers agreed with the lifecycle work (list 32, getinfo 33, create 34, build 35,
//! transition 36, unpause 37, pause 38, setpriority 39, destroy 40, host shutdown 41,
//! physinfo 42); the lifecycle branch's own module replaces this one when both are merged.
//! Until then a hypervisor without these calls answers [`Status::UnknownCall`].

use warden_abi::guest::hypercall as raw;
use warden_abi::{DomainInfo, HypercallArgs, Status};

const LIST: u64 = 32;
const GETINFO: u64 = 33;
const CREATE: u64 = 34;
const BUILD: u64 = 35;
const TRANSITION: u64 = 36;
const UNPAUSE: u64 = 37;
const PAUSE: u64 = 38;
const SETPRIORITY: u64 = 39;
const DESTROY: u64 = 40;
const HOST_SHUTDOWN: u64 = 41;
const PHYSINFO: u64 = 42;

fn call(c: u64, args: [u64; 5]) -> Result<u64, Status> {
    let (status, value) = raw(HypercallArgs { call: c, args });
    match Status::from_raw(status) {
        Some(Status::Ok) => Ok(value),
        Some(err) => Err(err),
        None => Err(Status::InvalidArgument),
    }
}

/// Fills `ids` with the ids of existing domains; returns how many there are.
pub fn list(ids: &mut [u32]) -> Result<usize, Status> {
    call(LIST, [ids.as_mut_ptr() as u64, ids.len() as u64, 0, 0, 0]).map(|n| n as usize)
}

/// Domain `id`'s info.
pub fn info(id: u32) -> Result<DomainInfo, Status> {
    let mut buf = [0u8; DomainInfo::SIZE];
    call(GETINFO, [u64::from(id), buf.as_mut_ptr() as u64, 0, 0, 0])?;
    Ok(DomainInfo::from_bytes(&buf))
}

/// A new paused, empty domain of `memory_mib` under `build_label`; its id.
pub fn create(memory_mib: u32, priority: u8, build_label: &str) -> Result<u32, Status> {
    let l = build_label.as_bytes();
    call(
        CREATE,
        [
            u64::from(memory_mib),
            u64::from(priority),
            l.as_ptr() as u64,
            l.len() as u64,
            0,
        ],
    )
    .map(|v| v as u32)
}

/// Loads `image` into domain `id` and sets its start state.
pub fn build(id: u32, image: &[u8]) -> Result<(), Status> {
    call(
        BUILD,
        [
            u64::from(id),
            image.as_ptr() as u64,
            image.len() as u64,
            0,
            0,
        ],
    )
    .map(|_| ())
}

/// Relabels domain `id` from its build label to `label`.
pub fn transition(id: u32, label: &str) -> Result<(), Status> {
    let l = label.as_bytes();
    call(
        TRANSITION,
        [u64::from(id), l.as_ptr() as u64, l.len() as u64, 0, 0],
    )
    .map(|_| ())
}

pub fn unpause(id: u32) -> Result<(), Status> {
    call(UNPAUSE, [u64::from(id), 0, 0, 0, 0]).map(|_| ())
}

pub fn pause(id: u32) -> Result<(), Status> {
    call(PAUSE, [u64::from(id), 0, 0, 0, 0]).map(|_| ())
}

pub fn set_priority(id: u32, priority: u8) -> Result<(), Status> {
    call(SETPRIORITY, [u64::from(id), u64::from(priority), 0, 0, 0]).map(|_| ())
}

pub fn destroy(id: u32) -> Result<(), Status> {
    call(DESTROY, [u64::from(id), 0, 0, 0, 0]).map(|_| ())
}

pub fn host_shutdown() -> Result<(), Status> {
    call(HOST_SHUTDOWN, [0; 5]).map(|_| ())
}

/// The host's (total, free) memory in bytes.
pub fn physinfo() -> Result<(u64, u64), Status> {
    let mut buf = [0u64; 2];
    call(PHYSINFO, [buf.as_mut_ptr() as u64, 16, 0, 0, 0])?;
    Ok((buf[0], buf[1]))
}
