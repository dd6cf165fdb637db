//! What every hypercall asks of the policy: decoding the IPC calls' argument words into typed
//! [`Request`]s, and the table that gives each call its class, permission and target.
//!
//! This is the hypercall half of the schema's "single source of truth": each entry here names
//! the same `HC_*` check site as the permission's `hypercall` field in
//! [`warden_policy::schema`], and a test holds the two tables together.

use warden_abi::Call;
pub use warden_abi::ipc::IpcCall;
use warden_policy::{Class, PermSet, perms};

pub use warden_abi::ipc::IpcError;

use crate::DomId;
use crate::evtchn::Port;
use crate::grant::{Access, GrantRef};

/// A decoded inter-domain request. Guest pointers (`AuditRead`) are still unchecked: only the
/// hypervisor knows the caller's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    EvtchnAlloc { remote: DomId },
    EvtchnBind { remote: DomId, port: Port },
    EvtchnSend { port: Port },
    EvtchnClose { port: Port },
    /// `None` = no timeout.
    EvtchnWait { mask: u64, timeout_us: Option<u64> },
    GrantOffer { grantee: DomId, gfn: u64, access: Access },
    GrantMap { granter: DomId, gref: GrantRef, gpa: u64, access: Access },
    GrantUnmap { granter: DomId, gref: GrantRef },
    GrantRevoke { gref: GrantRef },
    AuditRead { gpa: u64, len: u64, from_seq: u64 },
}

/// Whom a request acts on, before the tables resolve it to a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The calling domain itself.
    OwnDomain,
    /// The hypervisor (the policy's type of kind `hypervisor`).
    Hypervisor,
    /// A domain named in the arguments.
    Domain(DomId),
    /// The other end of the caller's port.
    PortPeer(Port),
    /// The grantee of the caller's grant.
    Grantee(GrantRef),
}

/// The class, permission and target a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub class: Class,
    pub perms: PermSet,
    pub target: Target,
}

const fn req(class: Class, perms: PermSet, target: Target) -> Requirement {
    Requirement { class, perms, target }
}

fn dom(raw: u64) -> Result<DomId, IpcError> {
    u32::try_from(raw).map(DomId).map_err(|_| IpcError::BadDomain)
}
fn port(raw: u64) -> Result<Port, IpcError> {
    u32::try_from(raw).map(Port).map_err(|_| IpcError::BadPort)
}
fn gref(raw: u64) -> Result<GrantRef, IpcError> {
    u32::try_from(raw).map(GrantRef).map_err(|_| IpcError::BadRef)
}

impl Request {
    /// Decodes the argument registers of an IPC call.
    ///
    /// # Errors
    /// The first argument that cannot be valid whatever the tables hold.
    pub fn decode(call: IpcCall, a: [u64; 5]) -> Result<Request, IpcError> {
        Ok(match call {
            IpcCall::EvtchnAlloc => Request::EvtchnAlloc { remote: dom(a[0])? },
            IpcCall::EvtchnBind => Request::EvtchnBind { remote: dom(a[0])?, port: port(a[1])? },
            IpcCall::EvtchnSend => Request::EvtchnSend { port: port(a[0])? },
            IpcCall::EvtchnClose => Request::EvtchnClose { port: port(a[0])? },
            IpcCall::EvtchnWait => Request::EvtchnWait { mask: a[0], timeout_us: (a[1] != u64::MAX).then_some(a[1]) },
            IpcCall::GrantOffer => Request::GrantOffer { grantee: dom(a[0])?, gfn: a[1], access: Access::from_flags(a[2])? },
            IpcCall::GrantMap => {
                Request::GrantMap { granter: dom(a[0])?, gref: gref(a[1])?, gpa: a[2], access: Access::from_flags(a[3])? }
            }
            IpcCall::GrantUnmap => Request::GrantUnmap { granter: dom(a[0])?, gref: gref(a[1])? },
            IpcCall::GrantRevoke => Request::GrantRevoke { gref: gref(a[0])? },
            IpcCall::AuditRead => Request::AuditRead { gpa: a[0], len: a[1], from_seq: a[2] },
        })
    }

    /// The call this request came from.
    #[must_use]
    pub const fn call(&self) -> IpcCall {
        match self {
            Request::EvtchnAlloc { .. } => IpcCall::EvtchnAlloc,
            Request::EvtchnBind { .. } => IpcCall::EvtchnBind,
            Request::EvtchnSend { .. } => IpcCall::EvtchnSend,
            Request::EvtchnClose { .. } => IpcCall::EvtchnClose,
            Request::EvtchnWait { .. } => IpcCall::EvtchnWait,
            Request::GrantOffer { .. } => IpcCall::GrantOffer,
            Request::GrantMap { .. } => IpcCall::GrantMap,
            Request::GrantUnmap { .. } => IpcCall::GrantUnmap,
            Request::GrantRevoke { .. } => IpcCall::GrantRevoke,
            Request::AuditRead { .. } => IpcCall::AuditRead,
        }
    }

    /// What the policy must allow for this request.
    #[must_use]
    pub const fn requirement(&self) -> Requirement {
        match *self {
            Request::EvtchnAlloc { remote } => req(Class::Evtchn, perms::evtchn::ALLOC, Target::Domain(remote)),
            Request::EvtchnBind { remote, .. } => req(Class::Evtchn, perms::evtchn::BIND, Target::Domain(remote)),
            Request::EvtchnSend { port } => req(Class::Evtchn, perms::evtchn::SEND, Target::PortPeer(port)),
            Request::EvtchnClose { port } => req(Class::Evtchn, perms::evtchn::CLOSE, Target::PortPeer(port)),
            Request::EvtchnWait { .. } => req(Class::Domain, perms::domain::BLOCK, Target::OwnDomain),
            Request::GrantOffer { grantee, .. } => req(Class::Grant, perms::grant::OFFER, Target::Domain(grantee)),
            Request::GrantMap { granter, access: Access::ReadOnly, .. } => {
                req(Class::Grant, perms::grant::MAP_RO, Target::Domain(granter))
            }
            Request::GrantMap { granter, access: Access::ReadWrite, .. } => {
                req(Class::Grant, perms::grant::MAP_RW, Target::Domain(granter))
            }
            Request::GrantUnmap { granter, .. } => req(Class::Grant, perms::grant::UNMAP, Target::Domain(granter)),
            Request::GrantRevoke { gref } => req(Class::Grant, perms::grant::REVOKE, Target::Grantee(gref)),
            Request::AuditRead { .. } => req(Class::Hypervisor, perms::hypervisor::AUDIT_READ, Target::Hypervisor),
        }
    }
}

/// What the base calls (issue 3's set) ask of the policy. `Null` is checked as `domain
/// { getinfo }` on the caller itself: it reveals nothing, and checking it keeps "every hypercall
/// passes the MAC" without exception (and makes the null call measure the check's cost).
#[must_use]
pub const fn base_requirement(call: Call) -> Requirement {
    match call {
        Call::Null | Call::DomainInfo => req(Class::Domain, perms::domain::GETINFO, Target::OwnDomain),
        Call::ConsoleWrite => req(Class::Hypervisor, perms::hypervisor::CONSOLE, Target::Hypervisor),
        Call::Yield => req(Class::Domain, perms::domain::YIELD, Target::OwnDomain),
        Call::Block => req(Class::Domain, perms::domain::BLOCK, Target::OwnDomain),
        Call::Shutdown => req(Class::Domain, perms::domain::SHUTDOWN, Target::OwnDomain),
    }
}

/// The name of any hypercall number, for audit lines (`"unknown"` for undefined numbers).
#[must_use]
pub fn call_name(raw: u64) -> &'static str {
    if let Some(c) = Call::from_raw(raw) {
        c.name()
    } else if let Some(c) = IpcCall::from_raw(raw) {
        c.name()
    } else if let Some(c) = warden_abi::lifecycle::LifecycleCall::from_raw(raw) {
        c.name()
    } else if let Some(c) = warden_abi::vtpm::VtpmCall::from_raw(raw) {
        c.name()
    } else if let Some(c) = warden_abi::introspect::IntrospectCall::from_raw(raw) {
        c.name()
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check site each call must be, as the schema's `hypercall` field names it.
    fn schema_site(r: Requirement) -> &'static str {
        let info = r.class.info();
        let p = info.perms.iter().find(|p| p.set() == r.perms).expect("one permission per call");
        p.hypercall
    }

    #[test]
    fn every_call_checks_the_permission_the_schema_assigns_to_it() {
        let any = [1, 2, 3, 1, 0];
        let ipc: &[(IpcCall, [u64; 5], &str)] = &[
            (IpcCall::EvtchnAlloc, any, "HC_EVTCHN_ALLOC_UNBOUND"),
            (IpcCall::EvtchnBind, any, "HC_EVTCHN_BIND_INTERDOMAIN"),
            (IpcCall::EvtchnSend, any, "HC_EVTCHN_SEND"),
            (IpcCall::EvtchnClose, any, "HC_EVTCHN_CLOSE"),
            (IpcCall::EvtchnWait, any, "HC_SCHED_BLOCK"),
            (IpcCall::GrantOffer, [1, 2, 0, 0, 0], "HC_GRANT_OFFER"),
            (IpcCall::GrantMap, [1, 2, 3, 0, 0], "HC_GRANT_MAP (read-only)"),
            (IpcCall::GrantMap, [1, 2, 3, 1, 0], "HC_GRANT_MAP (read-write)"),
            (IpcCall::GrantUnmap, any, "HC_GRANT_UNMAP"),
            (IpcCall::GrantRevoke, any, "HC_GRANT_REVOKE"),
            (IpcCall::AuditRead, any, "HC_AUDIT_READ"),
        ];
        for &(c, args, site) in ipc {
            let r = Request::decode(c, args).unwrap();
            assert_eq!(r.call(), c);
            assert_eq!(schema_site(r.requirement()), site, "{c:?}");
        }
        assert_eq!(ipc.iter().map(|e| e.0 as u64).collect::<std::collections::BTreeSet<_>>().len(), IpcCall::ALL.len());
        let base: &[(Call, &str)] = &[
            (Call::Null, "HC_DOMAIN_GETINFO"),
            (Call::ConsoleWrite, "HC_CONSOLE_WRITE"),
            (Call::Yield, "HC_SCHED_YIELD"),
            (Call::Block, "HC_SCHED_BLOCK"),
            (Call::DomainInfo, "HC_DOMAIN_GETINFO"),
            (Call::Shutdown, "HC_DOMAIN_SHUTDOWN"),
        ];
        assert_eq!(base.len(), Call::ALL.len(), "a base call without a check site");
        for &(c, site) in base {
            assert_eq!(schema_site(base_requirement(c)), site, "{c:?}");
        }
    }

    #[test]
    fn argument_words_that_cannot_be_valid_are_refused_at_decode() {
        let big = 1u64 << 32;
        let cases: &[(IpcCall, [u64; 5], IpcError)] = &[
            (IpcCall::EvtchnAlloc, [big, 0, 0, 0, 0], IpcError::BadDomain),
            (IpcCall::EvtchnBind, [0, big, 0, 0, 0], IpcError::BadPort),
            (IpcCall::EvtchnSend, [u64::MAX, 0, 0, 0, 0], IpcError::BadPort),
            (IpcCall::GrantOffer, [1, 5, 2, 0, 0], IpcError::BadFlags),
            (IpcCall::GrantMap, [1, big, 0, 0, 0], IpcError::BadRef),
            (IpcCall::GrantMap, [1, 1, 0, 7, 0], IpcError::BadFlags),
            (IpcCall::GrantRevoke, [big, 0, 0, 0, 0], IpcError::BadRef),
        ];
        for &(c, a, want) in cases {
            assert_eq!(Request::decode(c, a), Err(want), "{c:?} {a:x?}");
        }
        assert_eq!(
            Request::decode(IpcCall::EvtchnWait, [3, u64::MAX, 0, 0, 0]),
            Ok(Request::EvtchnWait { mask: 3, timeout_us: None })
        );
        assert_eq!(call_name(IpcCall::GrantMap as u64), "grant_map");
        assert_eq!(call_name(Call::ConsoleWrite as u64), "console_write");
        assert_eq!(call_name(58), "vtpm_connect");
        assert_eq!(call_name(999), "unknown");
    }
}
