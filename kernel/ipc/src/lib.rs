//! Warden's inter-domain primitives, all under the MAC policy: event channels, grant tables,
//! the audit ring, and [`Mac`], the one place an access decision is taken and audited.
//!
//! Everything here is bookkeeping over fixed-size tables: no allocation, no I/O, no hardware.
//! The hypervisor (`kernel/hypervisor/src/mac.rs` loads the policy, `svm/ipc.rs` implements
//! [`Platform`]) hands every IPC hypercall to [`Ipc::handle`], which decodes it, resolves its
//! *target* through the tables ([`evtchn::EventChannels::peer`],
//! [`grant::GrantTable::grantee_of`], …), asks [`Mac::check`], and only then performs the
//! operation here and, through [`Platform`], in the nested page tables. Base calls are checked
//! by [`Ipc::check_base`] at the hypervisor's dispatch hook.
//!
//! **Architecture invariant:** an operation in [`evtchn`] or [`grant`] never succeeds for a
//! domain that is not an end of the channel or a party to the grant: a port or reference that
//! is out of range, free, stale or someone else's is a typed error, never a crash.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod audit;
pub mod device;
pub mod calls;
pub mod dispatch;
pub mod evtchn;
pub mod grant;
pub mod introspect;
pub mod lifecycle;
pub mod mac;
pub mod platform_tpm;

pub use audit::{AuditRing, Record, Verdict};
pub use calls::{IpcCall, IpcError, Request, Target};
pub use dispatch::{Failure, Ipc, Outcome, Platform};
pub use evtchn::{EventChannels, Port};
pub use grant::{Access, GrantRef, GrantTable};
pub use lifecycle::{CreateSpec, LifecycleRequest, Refusal, lifecycle_requirement};
pub use mac::{CategoryError, Check, Denied, LabelError, Mac, MacError, Object, Subject};

/// Most domains the tables track (the hypervisor's manifest limit).
pub const MAX_DOMAINS: usize = 16;

/// A domain's index in the hypervisor's table (the same number the scheduler uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub u32);

impl DomId {
    /// The index into per-domain tables, if it is below `limit`.
    #[must_use]
    pub(crate) fn index(self, limit: usize) -> Option<usize> {
        let i = self.0 as usize;
        (i < limit).then_some(i)
    }
}
