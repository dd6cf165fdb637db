//! The server's `Hypervisor` over the lifecycle hypercalls (`warden_rt::lifecycle`).
//!
//! On a hypervisor without the lifecycle calls (they answer `UnknownCall`) the management
//! domain still reports what the base ABI lets it know: `domain list` and `domain info` show
//! the management domain itself (from the `DomainInfo` call) and `host info` leaves memory
//! unknown; `host shutdown` then ends the management domain, which ends the host when it is the
//! last domain. Every other call reports the hypervisor's answer.

use alloc::string::String;
use alloc::vec::Vec;
use warden_mgmt_proto::{DomainState, DomainSummary, HostInfo, HvStatus};
use warden_mgmt_server::Hypervisor;
use warden_rt::abi::{DomainInfo, Status, fixed_str};
use warden_rt::{hypercall, lifecycle};

pub struct Lifecycle {
    pub abi_version: u32,
    /// Set when `host shutdown` found no lifecycle call: the serve loop ends the domain after
    /// answering.
    pub end_self: bool,
}

fn hv(s: Status) -> HvStatus {
    match s {
        Status::Denied => HvStatus::Denied,
        Status::InvalidArgument => HvStatus::InvalidArgument,
        Status::BadAddress => HvStatus::BadAddress,
        Status::BadLength => HvStatus::BadLength,
        Status::UnknownCall => HvStatus::UnknownCall,
        other => HvStatus::Other(other as u64),
    }
}

fn summary(d: &DomainInfo) -> DomainSummary {
    DomainSummary {
        id: d.domain_id,
        name: String::from(fixed_str(&d.name)),
        label: String::from(fixed_str(&d.label)),
        // The base DomainInfo record carries no state: a domain that answers is running.
        state: DomainState::Runnable,
        priority: d.priority.min(255) as u8,
        memory_bytes: d.memory_bytes,
        cpu_ticks: d.cpu_ticks,
    }
}

impl Lifecycle {
    fn own(&self) -> Result<DomainSummary, HvStatus> {
        hypercall::domain_info().map(|d| summary(&d)).map_err(hv)
    }
}

impl Hypervisor for Lifecycle {
    fn host_info(&mut self) -> Result<HostInfo, HvStatus> {
        let me = self.own()?;
        let mem = match lifecycle::physinfo() {
            Ok((total, free)) => Some((total, free)),
            Err(Status::UnknownCall) => None,
            Err(e) => return Err(hv(e)),
        };
        let domains = self.list()?.len() as u32;
        Ok(HostInfo {
            abi_version: self.abi_version,
            memory_total_bytes: mem.map(|m| m.0),
            memory_free_bytes: mem.map(|m| m.1),
            domains,
            mgmt_domain: me.id,
            mgmt_label: me.label,
        })
    }

    fn list(&mut self) -> Result<Vec<DomainSummary>, HvStatus> {
        let mut ids = [0u32; 64];
        match lifecycle::list(&mut ids) {
            Ok(n) => ids[..n.min(ids.len())]
                .iter()
                .map(|&id| self.info(id))
                .collect(),
            Err(Status::UnknownCall) => Ok(alloc::vec![self.own()?]),
            Err(e) => Err(hv(e)),
        }
    }

    fn info(&mut self, id: u32) -> Result<DomainSummary, HvStatus> {
        match lifecycle::info(id) {
            Ok(d) => Ok(summary(&d)),
            Err(Status::UnknownCall) => match self.own()? {
                me if me.id == id => Ok(me),
                _ => Err(HvStatus::InvalidArgument),
            },
            Err(e) => Err(hv(e)),
        }
    }

    fn create(
        &mut self,
        _name: &str,
        build_label: &str,
        memory_mib: u32,
        priority: u8,
    ) -> Result<u32, HvStatus> {
        lifecycle::create(memory_mib, priority, build_label).map_err(hv)
    }

    fn build(&mut self, id: u32, image: &[u8], _args: &str) -> Result<(), HvStatus> {
        lifecycle::build(id, image).map_err(hv)
    }

    fn transition(&mut self, id: u32, label: &str) -> Result<(), HvStatus> {
        lifecycle::transition(id, label).map_err(hv)
    }

    fn unpause(&mut self, id: u32) -> Result<(), HvStatus> {
        lifecycle::unpause(id).map_err(hv)
    }

    fn pause(&mut self, id: u32) -> Result<(), HvStatus> {
        lifecycle::pause(id).map_err(hv)
    }

    fn set_priority(&mut self, id: u32, priority: u8) -> Result<(), HvStatus> {
        lifecycle::set_priority(id, priority).map_err(hv)
    }

    fn destroy(&mut self, id: u32) -> Result<(), HvStatus> {
        lifecycle::destroy(id).map_err(hv)
    }

    fn host_shutdown(&mut self) -> Result<(), HvStatus> {
        match lifecycle::host_shutdown() {
            Err(Status::UnknownCall) => {
                self.end_self = true;
                Ok(())
            }
            r => r.map_err(hv),
        }
    }
}
