//! The server's `Hypervisor` over the lifecycle hypercalls (`warden_rt::lifecycle`).

use alloc::string::String;
use alloc::vec::Vec;
use warden_abi::lifecycle::{CreateRequest, DomainState as AbiState, DomainStatus, LifecycleError};
use warden_mgmt_proto::{DomainState, DomainSummary, HostInfo, HvStatus};
use warden_mgmt_server::Hypervisor;
use warden_rt::abi::{Status, fixed_str};
use warden_rt::hypercall;
use warden_rt::lifecycle::{self, LifecycleFail};

/// Most domains one `list` reports.
const LIST_MAX: usize = 64;
/// Most audit records one `host audit` returns (the client asks again from `next_seq`).
const AUDIT_READ_MAX: usize = 64;

pub struct Lifecycle {
    pub abi_version: u32,
    /// `cargo xtask bench mgmt`: TSC ticks per millisecond, to time the lifecycle hypercalls
    /// each request makes and print their cost beside the whole path's.
    pub bench_tsc_per_ms: Option<u64>,
    /// TSC ticks of the create sequence so far (create, build, transition; unpause ends it).
    creating: Option<u64>,
}

impl Lifecycle {
    pub fn new(abi_version: u32, bench_tsc_per_ms: Option<u64>) -> Lifecycle {
        Lifecycle {
            abi_version,
            bench_tsc_per_ms,
            creating: None,
        }
    }

    /// Runs one hypercall wrapper, timing it in bench mode: `(result, ticks)`.
    fn timed<T>(&self, f: impl FnOnce() -> T) -> (T, u64) {
        if self.bench_tsc_per_ms.is_none() {
            return (f(), 0);
        }
        let t0 = warden_abi::guest::rdtsc();
        let r = f();
        (r, warden_abi::guest::rdtsc() - t0)
    }

    fn report(&self, what: &str, ticks: u64) {
        if let Some(per_ms) = self.bench_tsc_per_ms {
            let ns = ticks * 1_000_000 / per_ms.max(1);
            warden_rt::println!("mgmt: bench {what}_ns={ns}");
        }
    }
}

fn hv(f: LifecycleFail) -> HvStatus {
    match f {
        LifecycleFail::Denied => HvStatus::Denied,
        // The server turns this into "no domain with id N" after checking.
        LifecycleFail::Invalid(LifecycleError::NoSuchDomain) => HvStatus::InvalidArgument,
        LifecycleFail::Invalid(LifecycleError::WallConflict) => HvStatus::WallConflict,
        LifecycleFail::Invalid(e) => HvStatus::Invalid(String::from(e.name())),
        LifecycleFail::Other(Status::InvalidArgument) => HvStatus::InvalidArgument,
        LifecycleFail::Other(Status::BadAddress) => HvStatus::BadAddress,
        LifecycleFail::Other(Status::BadLength) => HvStatus::BadLength,
        LifecycleFail::Other(Status::UnknownCall) => HvStatus::UnknownCall,
        LifecycleFail::Other(s) => HvStatus::Other(s as u64),
    }
}

fn summary(d: &DomainStatus) -> DomainSummary {
    let state = match d.state() {
        Some(AbiState::Building) => DomainState::Building,
        Some(AbiState::Paused) => DomainState::Paused,
        Some(AbiState::Runnable) => DomainState::Runnable,
        Some(AbiState::Blocked) => DomainState::Blocked,
        Some(AbiState::Ended) | None => DomainState::Dead,
    };
    DomainSummary {
        id: d.domain_id,
        name: String::from(fixed_str(&d.name)),
        label: String::from(fixed_str(&d.label)),
        state,
        priority: d.priority.min(255) as u8,
        memory_bytes: d.memory_bytes,
        cpu_ticks: d.cpu_ticks,
    }
}

impl Hypervisor for Lifecycle {
    fn host_info(&mut self) -> Result<HostInfo, HvStatus> {
        let me = hypercall::domain_info().map_err(|s| hv(LifecycleFail::Other(s)))?;
        let p = lifecycle::physinfo().map_err(hv)?;
        Ok(HostInfo {
            abi_version: self.abi_version,
            memory_total_bytes: Some(p.total_bytes),
            memory_free_bytes: Some(p.free_bytes),
            domains: p.live_domains,
            mgmt_domain: me.domain_id,
            mgmt_label: String::from(fixed_str(&me.label)),
        })
    }

    fn list(&mut self) -> Result<Vec<DomainSummary>, HvStatus> {
        let blank = DomainStatus::from_bytes(&[0; DomainStatus::SIZE]);
        let mut out = [blank; LIST_MAX];
        let n = lifecycle::list(&mut out).map_err(hv)?;
        Ok(out[..n.min(LIST_MAX)].iter().map(summary).collect())
    }

    fn info(&mut self, id: u32) -> Result<DomainSummary, HvStatus> {
        lifecycle::info(id).map(|d| summary(&d)).map_err(hv)
    }

    fn create(
        &mut self,
        name: &str,
        build_label: &str,
        memory_mib: u32,
        priority: u8,
        args: &str,
    ) -> Result<u32, HvStatus> {
        let request = CreateRequest::new(name, build_label, memory_mib, u32::from(priority), args);
        let (r, ticks) = self.timed(|| lifecycle::create(&request));
        self.creating = Some(ticks);
        r.map_err(hv)
    }

    fn build(&mut self, id: u32, image: &[u8]) -> Result<(), HvStatus> {
        let (r, ticks) = self.timed(|| lifecycle::build(id, image));
        self.creating = self.creating.map(|t| t + ticks);
        r.map_err(hv)
    }

    fn transition(&mut self, id: u32, label: &str) -> Result<(), HvStatus> {
        let (r, ticks) = self.timed(|| lifecycle::transition(id, label));
        self.creating = self.creating.map(|t| t + ticks);
        r.map_err(hv)
    }

    fn unpause(&mut self, id: u32) -> Result<(), HvStatus> {
        let (r, ticks) = self.timed(|| lifecycle::unpause(id));
        // The last step of a create (create → build → transition → unpause), or a resume.
        match self.creating.take() {
            Some(t) if r.is_ok() => self.report("create_sequence", t + ticks),
            Some(_) => {}
            None if r.is_ok() => self.report("unpause", ticks),
            None => {}
        }
        r.map_err(hv)
    }

    fn pause(&mut self, id: u32) -> Result<(), HvStatus> {
        let (r, ticks) = self.timed(|| lifecycle::pause(id));
        if r.is_ok() {
            self.report("pause", ticks);
        }
        r.map_err(hv)
    }

    fn set_priority(&mut self, id: u32, priority: u8) -> Result<(), HvStatus> {
        lifecycle::set_priority(id, priority).map_err(hv)
    }

    fn destroy(&mut self, id: u32) -> Result<(), HvStatus> {
        lifecycle::destroy(id).map_err(hv)
    }

    fn audit_read(&mut self, from_seq: u64) -> Result<Vec<u8>, HvStatus> {
        use warden_abi::ipc::{AUDIT_HEADER_LEN, AUDIT_RECORD_LEN};
        use warden_rt::ipc::IpcFail;
        let mut buf = alloc::vec![0u8; AUDIT_HEADER_LEN + AUDIT_READ_MAX * AUDIT_RECORD_LEN];
        let n = warden_rt::ipc::audit_read(&mut buf, from_seq).map_err(|e| match e {
            IpcFail::Denied => HvStatus::Denied,
            IpcFail::Invalid(_) => HvStatus::InvalidArgument,
            IpcFail::Other(s) => hv(LifecycleFail::Other(s)),
        })?;
        buf.truncate(AUDIT_HEADER_LEN + n as usize * AUDIT_RECORD_LEN);
        Ok(buf)
    }

    fn host_shutdown(&mut self) -> Result<(), HvStatus> {
        // If the hypervisor grants it, the call does not return and no response leaves.
        warden_rt::println!("mgmt: host shutdown: asking the hypervisor");
        lifecycle::host_shutdown().map_err(hv)
    }
}
