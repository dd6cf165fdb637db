//! [`Ipc`]: the inter-domain hypercalls from decoded arguments to effects, with the MAC check
//! in the one place it belongs — after the request's target is known, before anything changes.
//!
//! The hypervisor implements [`Platform`] (domain labels, memory ownership, nested-page-table
//! edits, guest-memory writes, waking a domain) and calls [`Ipc::handle`] for IPC call numbers
//! and [`Ipc::check_base`] for the base calls. Host tests drive the same code with a fake
//! platform, so the hypervisor-side glue stays a few lines.
//!
//! Order of every request: decode the words (errors here are the caller's bugs), resolve the
//! target through the tables (a port or grant the caller does not hold fails here, as the
//! caller only ever learns about its own objects), **check the policy**, perform the change.

use warden_abi::{Call, Status};
use warden_abi::ipc::IpcCall;
use warden_policy::TypeId;

use crate::audit::{HEADER_LEN, Header, RECORD_LEN};
use crate::calls::{IpcError, Request, Target, base_requirement};
use crate::evtchn::EventChannels;
use crate::grant::{Access, GrantTable};
use crate::mac::{Check, Denied, Mac, Object, Subject};
use crate::{DomId, MAX_DOMAINS};

/// The label of a domain id that is not running (no policy issues it; audit shows `type#…`).
pub const NO_DOMAIN: TypeId = TypeId(u32::MAX);

/// What the hypervisor provides to the IPC layer.
pub trait Platform {
    /// The label of a running domain; `None` for ids that are not (or no longer) running.
    fn label(&self, dom: DomId) -> Option<TypeId>;
    /// Whether guest frame `gfn` is ordinary memory of `dom` that it may share.
    fn owns_frame(&self, dom: DomId, gfn: u64) -> bool;
    /// Maps `granter`'s frame `gfn` at `gpa` in `grantee`'s nested page tables.
    ///
    /// # Errors
    /// The mapping could not be made (the tables are left as they were).
    fn map_grant(&mut self, grantee: DomId, gpa: u64, granter: DomId, gfn: u64, writable: bool) -> Result<(), IpcError>;
    /// Removes the mapping at `gpa` from `grantee`'s nested page tables (and flushes).
    fn unmap_grant(&mut self, grantee: DomId, gpa: u64);
    /// Whether `[gpa, gpa + len)` lies entirely in `dom`'s own memory (no hole, no overflow).
    fn buffer_ok(&self, dom: DomId, gpa: u64, len: u64) -> bool;
    /// Copies `bytes` into `dom`'s memory at `gpa`, which must lie entirely in its memory.
    ///
    /// # Errors
    /// `BadBuffer` if it does not.
    fn write_guest(&mut self, dom: DomId, gpa: u64, bytes: &[u8]) -> Result<(), IpcError>;
    /// An event arrived for `dom`: make it runnable if it waits.
    fn wake(&mut self, dom: DomId);
    /// Current time in timer ticks (for audit records).
    fn now(&self) -> u64;
}

/// What a successful request produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished; the value goes to the caller's `RDX`.
    Done(u64),
    /// Nothing pending yet: block the caller until an event or the timeout, then complete
    /// with [`Ipc::finish_wait`].
    Wait { mask: u64, timeout_us: Option<u64> },
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The policy refused it (and audited it unless `dontaudit`).
    Denied(Denied),
    /// The request itself is wrong.
    Invalid(IpcError),
}

impl Failure {
    /// The ABI result: `RAX` status and `RDX` detail.
    #[must_use]
    pub const fn abi(&self) -> (Status, u64) {
        match self {
            Failure::Denied(_) => (Status::Denied, 0),
            Failure::Invalid(e) => (Status::InvalidArgument, *e as u64),
        }
    }
}

impl From<IpcError> for Failure {
    fn from(e: IpcError) -> Self {
        Failure::Invalid(e)
    }
}

/// Event channels, grants and the decision point of one host. The tables are borrowed so that
/// the hypervisor can keep them in static storage (they are too large for its stack).
#[derive(Debug)]
pub struct Ipc<'p, const A: usize, const W: usize> {
    pub mac: Mac<'p, A, W>,
    pub evtchn: &'p mut EventChannels,
    pub grants: &'p mut GrantTable,
}

impl<'p, const A: usize, const W: usize> Ipc<'p, A, W> {
    #[must_use]
    pub fn new(mac: Mac<'p, A, W>, evtchn: &'p mut EventChannels, grants: &'p mut GrantTable) -> Self {
        Ipc { mac, evtchn, grants }
    }

    fn subject(p: &impl Platform, caller: DomId) -> Result<Subject, Failure> {
        // A caller that is not running cannot issue hypercalls; treat it as a bad domain.
        let label = p.label(caller).ok_or(IpcError::BadDomain)?;
        Ok(Subject { dom: caller, label })
    }

    /// The object a target domain id names. An id in range that is not running is decided as a
    /// domain of type [`NO_DOMAIN`], on which no policy grants anything: the answer (denied,
    /// audited) is the one a caller without rights gets for a running domain, so whether a
    /// domain runs is learnt only through what the policy grants (decide before revealing).
    fn domain(p: &impl Platform, dom: DomId) -> Result<Object, Failure> {
        dom.index(MAX_DOMAINS).ok_or(IpcError::BadDomain)?;
        Ok(Object::Domain { dom, label: p.label(dom).unwrap_or(NO_DOMAIN) })
    }

    fn check(&mut self, p: &impl Platform, hypercall: u64, s: Subject, object: Object, req: crate::calls::Requirement) -> Result<(), Failure> {
        let c = Check { hypercall, subject: s, object, class: req.class, perms: req.perms, time: p.now() };
        self.mac.check(&c).map(|_| ()).map_err(Failure::Denied)
    }

    /// The MAC check of a base (non-IPC) call, at the dispatch's hook: `subject` is the
    /// running caller, `time` the hypervisor's tick count.
    ///
    /// # Errors
    /// The denial.
    pub fn check_base(&mut self, subject: Subject, call: Call, time: u64) -> Result<(), Denied> {
        let req = base_requirement(call);
        let object = match req.target {
            Target::Hypervisor => Object::Hypervisor,
            _ => Object::Domain { dom: subject.dom, label: subject.label },
        };
        let c = Check { hypercall: call as u64, subject, object, class: req.class, perms: req.perms, time };
        self.mac.check(&c).map(|_| ())
    }

    /// Handles one IPC hypercall from `caller`.
    ///
    /// # Errors
    /// See [`Failure`]; nothing changed when it is returned.
    pub fn handle(&mut self, p: &mut impl Platform, caller: DomId, call: IpcCall, args: [u64; 5]) -> Result<Outcome, Failure> {
        let s = Self::subject(p, caller)?;
        let request = Request::decode(call, args)?;
        let req = request.requirement();
        let object = match req.target {
            Target::OwnDomain => Object::Domain { dom: caller, label: s.label },
            Target::Hypervisor => Object::Hypervisor,
            Target::Domain(d) => {
                if d == caller {
                    return Err(IpcError::SelfPeer.into());
                }
                Self::domain(p, d)?
            }
            Target::PortPeer(port) => {
                let (dom, label) = self.evtchn.peer(caller, port)?;
                // The peer may have ended: its label as recorded at bind time still names it.
                Object::Domain { dom, label }
            }
            Target::Grantee(gref) => {
                // The grantee may have ended: its label as recorded at offer time still names it.
                let (dom, label) = self.grants.grantee_of(caller, gref)?;
                Object::Domain { dom, label }
            }
        };
        self.check(p, call as u64, s, object, req)?;
        self.perform(p, s, object, request)
    }

    fn perform(&mut self, p: &mut impl Platform, s: Subject, object: Object, request: Request) -> Result<Outcome, Failure> {
        let caller = s.dom;
        let peer_label = match object {
            Object::Domain { label, .. } => label,
            // IPC requests never target a resource.
            Object::Hypervisor | Object::Resource { .. } => TypeId(u32::MAX),
        };
        match request {
            Request::EvtchnAlloc { remote } => {
                let port = self.evtchn.alloc_unbound(caller, s.label, remote, peer_label)?;
                Ok(Outcome::Done(u64::from(port.0)))
            }
            Request::EvtchnBind { remote, port } => {
                let local = self.evtchn.bind(caller, s.label, remote, port)?;
                Ok(Outcome::Done(u64::from(local.0)))
            }
            Request::EvtchnSend { port } => {
                let w = self.evtchn.send(caller, port)?;
                p.wake(w.dom);
                Ok(Outcome::Done(0))
            }
            Request::EvtchnClose { port } => {
                if let Some(w) = self.evtchn.close(caller, port)? {
                    p.wake(w.dom);
                }
                Ok(Outcome::Done(0))
            }
            Request::EvtchnWait { mask, timeout_us } => {
                let got = self.evtchn.take_pending(caller, mask);
                if got != 0 || timeout_us == Some(0) || mask == 0 {
                    Ok(Outcome::Done(got))
                } else {
                    Ok(Outcome::Wait { mask, timeout_us })
                }
            }
            Request::GrantOffer { grantee, gfn, access } => {
                if !p.owns_frame(caller, gfn) {
                    return Err(IpcError::BadFrame.into());
                }
                let r = self.grants.offer(caller, grantee, peer_label, gfn, access)?;
                Ok(Outcome::Done(u64::from(r.0)))
            }
            Request::GrantMap { granter, gref, gpa, access } => {
                let writable = access == Access::ReadWrite;
                let gfn = self.grants.map(caller, granter, gref, gpa, writable)?;
                if let Err(e) = p.map_grant(caller, gpa, granter, gfn, writable) {
                    // Cannot fail: the entry was mapped just above.
                    let _ = self.grants.unmap(caller, granter, gref);
                    return Err(e.into());
                }
                Ok(Outcome::Done(0))
            }
            Request::GrantUnmap { granter, gref } => {
                let gpa = self.grants.unmap(caller, granter, gref)?;
                p.unmap_grant(caller, gpa);
                Ok(Outcome::Done(0))
            }
            Request::GrantRevoke { gref } => {
                self.grants.revoke(caller, gref)?;
                Ok(Outcome::Done(0))
            }
            Request::AuditRead { gpa, len, from_seq } => self.audit_read(p, caller, gpa, len, from_seq),
        }
    }

    fn audit_read(&mut self, p: &mut impl Platform, caller: DomId, gpa: u64, len: u64, from_seq: u64) -> Result<Outcome, Failure> {
        if len < HEADER_LEN as u64 {
            return Err(IpcError::BadBuffer.into());
        }
        // Validate the whole buffer once, so that a partial copy never happens.
        if !p.buffer_ok(caller, gpa, len) {
            return Err(IpcError::BadBuffer.into());
        }
        let room = ((len - HEADER_LEN as u64) / RECORD_LEN as u64) as usize;
        let ring = self.mac.ring();
        let mut n = 0u32;
        for r in ring.iter_from(from_seq).take(room) {
            let off = HEADER_LEN as u64 + u64::from(n) * RECORD_LEN as u64;
            p.write_guest(caller, gpa + off, &r.encode())?;
            n += 1;
        }
        let h = Header { count: n, dropped: ring.missed_from(from_seq), next_seq: ring.next_seq() };
        p.write_guest(caller, gpa, &h.encode())?;
        Ok(Outcome::Done(u64::from(n)))
    }

    /// Completes a wait after the caller was woken (by an event or its timeout): the pending
    /// ports of its mask, now cleared (0 = timed out).
    pub fn finish_wait(&mut self, caller: DomId, mask: u64) -> u64 {
        self.evtchn.take_pending(caller, mask)
    }

    /// Whether a domain blocked on `mask` has something pending (so it should not sleep).
    #[must_use]
    pub fn has_pending(&self, dom: DomId, mask: u64) -> bool {
        self.evtchn.pending(dom) & mask != 0
    }

    /// Releases everything a domain held when it ended: its channels (peers are woken), its
    /// grants (mappings of them are removed), its mappings of others' grants, and its place
    /// behind the Chinese Wall, and its category (a later domain in its slot gets its own).
    pub fn domain_dead(&mut self, p: &mut impl Platform, dom: DomId, label: TypeId) {
        self.evtchn.domain_dead(dom, |w| p.wake(w.dom));
        self.grants.domain_dead(dom, |u| p.unmap_grant(u.grantee, u.gpa));
        self.mac.domain_stopped(label);
        let _ = self.mac.set_category(dom, None);
    }
}
