//! Wrappers for the device calls (48..55) of a domain holding an assigned PCI function.

use warden_abi::device::DeviceCall;
use warden_abi::guest::hypercall as raw;
use warden_abi::{HypercallArgs, Status};

fn call(c: DeviceCall, args: [u64; 5]) -> Result<u64, Status> {
    let (status, value) = raw(HypercallArgs {
        call: c as u64,
        args,
    });
    match Status::from_raw(status) {
        Some(Status::Ok) => Ok(value),
        Some(err) => Err(err),
        None => Err(Status::InvalidArgument),
    }
}

/// An assigned device as [`DeviceCall::Info`] describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub vendor_id: u16,
    pub device_id: u16,
}

/// The domain's device `index`; `Err(InvalidArgument)` if it holds none.
pub fn info(index: u64) -> Result<DeviceInfo, Status> {
    let v = call(DeviceCall::Info, [index, 0, 0, 0, 0])?;
    let bdf = v as u16;
    Ok(DeviceInfo {
        bus: (bdf >> 8) as u8,
        device: (bdf >> 3) as u8 & 0x1f,
        function: bdf as u8 & 0x7,
        vendor_id: (v >> 16) as u16,
        device_id: (v >> 32) as u16,
    })
}

/// The host-physical address of guest-physical 0 (what a device must add to a buffer's address).
pub fn dma_offset(index: u64) -> Result<u64, Status> {
    call(DeviceCall::DmaOffset, [index, 0, 0, 0, 0])
}

/// A filtered config-space read of the 32-bit register at `offset`.
pub fn config_read(index: u64, offset: u64) -> Result<u32, Status> {
    call(DeviceCall::ConfigRead, [index, offset, 0, 0, 0]).map(|v| v as u32)
}

/// A filtered config-space write.
pub fn config_write(index: u64, offset: u64, value: u32) -> Result<(), Status> {
    call(
        DeviceCall::ConfigWrite,
        [index, offset, u64::from(value), 0, 0],
    )
    .map(|_| ())
}
