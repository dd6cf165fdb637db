//! What device assignment asks the policy: the permission each device call needs, and the two
//! permissions checked when the manifest assigns a function to a domain. The hypervisor's
//! check sites (`svm/device.rs`) take them from here, and the check-site test reads the same
//! table.

use warden_abi::device::DeviceCall;
use warden_policy::{Class, PermSet, perms};

/// The permission a device call needs on the device's label (`HC_DEVICE_ASSIGN`): holding the
/// device is what every call on it requires.
pub const fn device_requirement(_call: DeviceCall) -> (Class, PermSet) {
    (Class::Device, perms::device::ASSIGN)
}

/// Checked once per assignment, at build: `device assign` on the function's label and
/// `mmio map` on its registers' label (`HC_MMIO_MAP`). No IOMMU confines a device's DMA on
/// Warden yet, so every assignment also asks `device assign_noiommu` (issue 18's schema): a
/// policy's `neverallow * *: device assign_noiommu;` then refuses every DMA-capable assignment
/// until DMA is confined, instead of being silently ignored.
pub const ASSIGNMENT_CHECKS: [(Class, PermSet); 2] = [
    (
        Class::Device,
        PermSet(perms::device::ASSIGN.0 | perms::device::ASSIGN_NOIOMMU.0),
    ),
    (Class::Mmio, perms::mmio::MAP),
];
