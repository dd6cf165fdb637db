//! The lifecycle operations the server needs from the hypervisor.

use alloc::vec::Vec;
use warden_mgmt_proto::{DomainSummary, HostInfo, HvStatus};

/// One method per lifecycle hypercall. Every call is decided by the hypervisor's MAC policy;
/// an implementation only reports the status it got.
pub trait Hypervisor {
    fn host_info(&mut self) -> Result<HostInfo, HvStatus>;
    fn list(&mut self) -> Result<Vec<DomainSummary>, HvStatus>;
    fn info(&mut self, id: u32) -> Result<DomainSummary, HvStatus>;
    /// A new, empty domain under `build_label` with its start arguments, not yet running; its id.
    fn create(
        &mut self,
        name: &str,
        build_label: &str,
        memory_mib: u32,
        priority: u8,
        args: &str,
    ) -> Result<u32, HvStatus>;
    /// Loads `image` and sets the start state; the hypervisor measures both.
    fn build(&mut self, id: u32, image: &[u8]) -> Result<(), HvStatus>;
    /// Relabels a built domain from its build label to `label`.
    fn transition(&mut self, id: u32, label: &str) -> Result<(), HvStatus>;
    fn unpause(&mut self, id: u32) -> Result<(), HvStatus>;
    fn pause(&mut self, id: u32) -> Result<(), HvStatus>;
    fn set_priority(&mut self, id: u32, priority: u8) -> Result<(), HvStatus>;
    fn destroy(&mut self, id: u32) -> Result<(), HvStatus>;
    fn host_shutdown(&mut self) -> Result<(), HvStatus>;
    /// The audit ring from `from_seq` on: the hypervisor's header and records, as written.
    fn audit_read(&mut self, from_seq: u64) -> Result<Vec<u8>, HvStatus>;
}
