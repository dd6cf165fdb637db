//! The hypervisor side of the MAC and of inter-domain communication: admission of domains
//! (label from the manifest, Chinese Wall at creation), the base calls' MAC hook, the IPC
//! hypercalls (through `warden_ipc::Ipc`, which holds the one decision point), nested-page-table
//! edits for grants, event wake-ups through the scheduler, and cleanup when a domain ends.

use warden_abi::ipc::IpcCall;
use warden_abi::{BlockWake, Call, Status};
use warden_core::mem::{PAGE_SIZE, PhysMem};
use warden_core::paging::{MapError, PageSize, PageTable, flags};
use warden_hw::phys::IdentityMem;
use warden_ipc::{Denied, DomId, Failure, IpcError, Outcome, Platform, Subject};
use warden_policy::TypeId;
use warden_vmm::budget::Budget;
use warden_vmm::layout::guest_range;
use warden_vmm::manifest::MAX_DOMAINS;
use warden_vmm::sched::{DomainId, State};
use warden_vmm::vmcb::field;

use super::{Dom, Next, Runner, get, set, timer};
use crate::mac::HvIpc;

/// What admission decided about a freshly built domain.
pub(super) enum Admission {
    Run,
    /// Refused for now by the Chinese Wall; retried whenever a domain ends.
    BehindWall,
    Refused,
}

/// MAC and IPC state of the run loop.
pub(super) struct Host {
    ipc: HvIpc,
    /// Labels of admitted domains (cleared when they end).
    labels: [Option<TypeId>; MAX_DOMAINS],
    /// Labels of domains waiting behind the Chinese Wall.
    waiting: [Option<TypeId>; MAX_DOMAINS],
    /// Port masks of domains blocked in `EvtchnWait`.
    waits: [Option<u64>; MAX_DOMAINS],
    /// What each domain may make the hypervisor print (console, #GP and `avc:` lines).
    pub(super) budgets: [Budget; MAX_DOMAINS],
    /// Null-call MAC checks and the TSC ticks they took (instructions under `-icount`): the
    /// cost of the check alone, for `cargo xtask bench ipc`.
    null_checks: u64,
    null_check_ticks: u64,
}

impl Host {
    pub(super) fn new(ipc: HvIpc) -> Self {
        Host {
            ipc,
            labels: [None; MAX_DOMAINS],
            waiting: [None; MAX_DOMAINS],
            waits: [None; MAX_DOMAINS],
            budgets: [Budget::new(); MAX_DOMAINS],
            null_checks: 0,
            null_check_ticks: 0,
        }
    }

    /// The loaded policy (for configuration checks before domains are built).
    pub(super) fn policy(&self) -> &warden_policy::Policy<'static> {
        self.ipc.mac.policy()
    }

    /// Resolves a domain's manifest label and checks the Chinese Wall before it may run; the
    /// manifest's `category=` (or none: one of its own) goes with it to every decision.
    pub(super) fn admit(&mut self, id: u32, dom: &Dom, category: Option<u32>) -> Admission {
        let i = id as usize;
        if let Err(e) = self.ipc.mac.set_category(DomId(id), category) {
            println!("domain {} (id {id}) refused: category: {e:?}", dom.name);
            return Admission::Refused;
        }
        let label = match self.ipc.mac.domain_label(&dom.label) {
            Ok(t) => t,
            Err(e) => {
                println!(
                    "domain {} (id {id}) refused: label {}: {e}",
                    dom.name, dom.label
                );
                return Admission::Refused;
            }
        };
        match self.ipc.mac.domain_starting(label) {
            Ok(()) => {
                self.labels[i] = Some(label);
                Admission::Run
            }
            Err(conflict) => {
                println!(
                    "domain {} (id {id}) refused at creation: {conflict}; it may start once that domain ends",
                    dom.name
                );
                self.waiting[i] = Some(label);
                Admission::BehindWall
            }
        }
    }

    /// Whether domain `id` holds event-channel ports, offers grants or maps another's: state
    /// a checkpoint does not capture (`svm/introspect.rs` refuses such a target).
    pub(super) fn in_flight(&self, id: u32) -> bool {
        let d = DomId(id);
        self.ipc.evtchn.ports_in_use(d) > 0 || self.ipc.grants.offered(d) > 0 || self.ipc.grants.mapped_by(d) > 0
    }

    /// Resolves a manifest label to a policy type of `kind`.
    pub(super) fn resolve(&self, name: &str, kind: warden_policy::Kind) -> Result<TypeId, warden_ipc::LabelError> {
        match kind {
            warden_policy::Kind::Domain => self.ipc.mac.domain_label(name),
            _ => self.ipc.mac.resource_label(name, kind),
        }
    }

    /// Decides `class perms` of domain `id` (labelled `label`) on the resource labelled
    /// `target` (a device or MMIO range): device assignment's check sites.
    pub(super) fn check_resource(
        &mut self,
        id: u32,
        label: TypeId,
        hypercall: u64,
        target: TypeId,
        class: warden_policy::Class,
        perms: warden_policy::PermSet,
    ) -> Result<(), Status> {
        let c = warden_ipc::Check {
            hypercall,
            subject: Subject { dom: DomId(id), label },
            object: warden_ipc::Object::Resource { label: target },
            class,
            perms,
            time: timer::now(),
        };
        self.ipc.mac.check(&c).map(|_| ()).map_err(|d| {
            self.report(id, &d);
            Status::Denied
        })
    }

    /// [`Self::check_resource`] for an admitted domain (its label as admitted).
    pub(super) fn check_own_resource(
        &mut self,
        id: u32,
        hypercall: u64,
        target: TypeId,
        class: warden_policy::Class,
        perms: warden_policy::PermSet,
    ) -> Result<(), Status> {
        let label = self.labels.get(id as usize).copied().flatten().ok_or(Status::Denied)?;
        self.check_resource(id, label, hypercall, target, class, perms)
    }

    /// The MAC hook of the base calls (`dispatch::mac_check`).
    pub(super) fn check_base(&mut self, id: u32, call: Call) -> Result<(), Status> {
        let Some(label) = self.labels.get(id as usize).copied().flatten() else {
            return Err(Status::Denied);
        };
        let subject = Subject { dom: DomId(id), label };
        // Only the null call is timed (for `cargo xtask bench ipc`): every other hypercall's
        // check runs without the two TSC reads.
        let r = if call == Call::Null {
            let t0 = warden_hw::cpu::rdtsc();
            let r = self.ipc.check_base(subject, call, timer::now());
            self.null_checks += 1;
            self.null_check_ticks += warden_hw::cpu::rdtsc().wrapping_sub(t0);
            r
        } else {
            self.ipc.check_base(subject, call, timer::now())
        };
        r.map_err(|d| {
            self.report(id, &d);
            Status::Denied
        })
    }

    /// The decision point (for the lifecycle calls, `svm/lifecycle.rs`).
    pub(super) fn decider(&mut self) -> &mut warden_ipc::Mac<'static, { crate::mac::AUDIT_RECORDS }, { crate::mac::WALL_MEMBERS }> {
        &mut self.ipc.mac
    }

    /// The label of an admitted (running) domain.
    pub(super) fn running_label(&self, id: u32) -> Option<TypeId> {
        self.labels.get(id as usize).copied().flatten()
    }

    /// Admits a domain created at run time when it first starts: the Chinese Wall counts it
    /// from now on, and it becomes a party the IPC calls know.
    pub(super) fn admit_created(&mut self, id: u32, label: TypeId) -> Result<(), warden_ipc::mac::WallConflict<'static>> {
        self.ipc.mac.domain_starting(label)?;
        self.labels[id as usize] = Some(label);
        Ok(())
    }

    /// Prints an audited denial as an `avc:` line, charged to the caller's budget.
    pub(super) fn report(&mut self, id: u32, d: &Denied) {
        if let Some(rec) = d.record {
            let policy = self.ipc.mac.policy();
            charged(&mut self.budgets, id, format_args!("{}", rec.avc(Some(policy))));
        }
    }

    /// Prints the decision counters (when a domain ends).
    fn summary(&self) {
        let (checks, denials) = self.ipc.mac.counters();
        let ring = self.ipc.mac.ring();
        println!(
            "mac: {checks} checks, {denials} denied, {} audit records ({} dropped)",
            ring.next_seq(),
            ring.dropped()
        );
        if let Some(avg) = self.null_check_ticks.checked_div(self.null_checks) {
            println!("mac: null-call checks: {} taking {avg} TSC ticks each", self.null_checks);
        }
    }
}

/// Prints `line` if domain `id`'s budget allows it; the first line after a suppressed flood is
/// preceded by one summary line.
pub(super) fn charged(budgets: &mut [Budget; MAX_DOMAINS], id: u32, line: core::fmt::Arguments<'_>) {
    let Some(n) = budgets.get_mut(id as usize).and_then(|b| b.charge(timer::now())) else { return };
    if n > 0 {
        println!("domain id {id}: {n} lines suppressed by its print budget");
    }
    println!("{line}");
}

/// `warden_ipc::Platform` over the run loop's memory and domains.
pub(super) struct Plat<'a> {
    mem: &'a mut IdentityMem,
    doms: &'a mut [Dom],
    labels: &'a [Option<TypeId>; MAX_DOMAINS],
    /// Domains an event was sent to (bit per domain), completed after the call.
    woken: u32,
}

impl Plat<'_> {
    fn dom(&self, d: DomId) -> Option<&Dom> {
        self.doms.get(d.0 as usize)
    }

    fn npt(&self, d: DomId) -> Option<PageTable> {
        let vmcb = self.dom(d)?.vmcb;
        Some(PageTable::from_root(
            get(self.mem, vmcb, field::N_CR3),
            flags::WRITABLE | flags::USER,
        ))
    }
}

impl Platform for Plat<'_> {
    fn label(&self, dom: DomId) -> Option<TypeId> {
        self.labels.get(dom.0 as usize).copied().flatten()
    }

    fn owns_frame(&self, dom: DomId, gfn: u64) -> bool {
        // Memory the domain itself may write (the rule of every output buffer too): never its
        // start-info page, GDT, page tables or read-only image.
        let Some(d) = self.dom(dom) else { return false };
        gfn.checked_mul(PAGE_SIZE).is_some_and(|gpa| super::guard::writable(&*self.mem, d, gpa, PAGE_SIZE))
    }

    fn map_grant(
        &mut self,
        grantee: DomId,
        gpa: u64,
        granter: DomId,
        gfn: u64,
        writable: bool,
    ) -> Result<(), IpcError> {
        let hpa = self.dom(granter).ok_or(IpcError::BadDomain)?.region.hpa + gfn * PAGE_SIZE;
        let npt = self.npt(grantee).ok_or(IpcError::BadDomain)?;
        // Shared data is never code: the grantee cannot execute what a peer wrote (NX in the
        // nested entry; the hypervisor runs with EFER.NXE).
        let leaf = flags::USER | flags::NO_EXECUTE | if writable { flags::WRITABLE } else { 0 };
        let mem = &mut *self.mem;
        crate::memory::with_frames(|f| npt.map(mem, f, gpa, hpa, PageSize::Small, leaf)).map_err(
            |e| match e {
                MapError::AlreadyMapped(_) | MapError::SizeConflict(_) => IpcError::MapAddressInUse,
                _ => IpcError::BadMapAddress,
            },
        )?;
        // New mappings need no flush; `first_run` flushes the ASID anyway on the next entry.
        self.doms[grantee.0 as usize].first_run = true;
        Ok(())
    }

    fn unmap_grant(&mut self, grantee: DomId, gpa: u64) {
        if let Some(npt) = self.npt(grantee) {
            let _ = npt.unmap(self.mem, gpa);
            // Stale translations must go before the grantee runs again.
            self.doms[grantee.0 as usize].first_run = true;
        }
    }

    fn buffer_ok(&self, dom: DomId, gpa: u64, len: u64) -> bool {
        self.dom(dom).is_some_and(|d| {
            guest_range(d.memory_bytes, gpa, len).is_some() && super::guard::writable(&*self.mem, d, gpa, len)
        })
    }

    fn write_guest(&mut self, dom: DomId, gpa: u64, bytes: &[u8]) -> Result<(), IpcError> {
        let d = self.dom(dom).ok_or(IpcError::BadDomain)?;
        let range =
            guest_range(d.memory_bytes, gpa, bytes.len() as u64).ok_or(IpcError::BadBuffer)?;
        let hpa = d.region.hpa + range.gpa;
        self.mem.write(hpa, bytes);
        Ok(())
    }

    fn wake(&mut self, dom: DomId) {
        if (dom.0 as usize) < MAX_DOMAINS {
            self.woken |= 1 << dom.0;
        }
    }

    fn now(&self) -> u64 {
        timer::now()
    }
}

impl Runner {
    /// Builds the platform view and runs `f` on the IPC state with it; then delivers wake-ups.
    pub(super) fn with_ipc<R>(&mut self, f: impl FnOnce(&mut HvIpc, &mut Plat<'_>) -> R) -> R {
        let Host { ipc, labels, .. } = &mut self.mac;
        let mut plat = Plat {
            mem: &mut self.mem,
            doms: &mut self.doms,
            labels,
            woken: 0,
        };
        let r = f(ipc, &mut plat);
        let woken = plat.woken;
        self.deliver(woken);
        r
    }

    /// Wakes blocked domains that received an event: an `EvtchnWait` completes with its pending
    /// ports (if one of its ports is pending), a plain `Block` with `BlockWake::Event`.
    fn deliver(&mut self, woken: u32) {
        for i in 0..MAX_DOMAINS.min(self.doms.len()) {
            if woken & (1 << i) == 0
                || !matches!(self.sched.state(DomainId(i as u32)), State::Blocked { .. })
            {
                continue;
            }
            let d = DomId(i as u32);
            match self.mac.waits[i] {
                Some(mask) if self.mac.ipc.has_pending(d, mask) => {
                    self.doms[i].regs.rdx = self.mac.ipc.finish_wait(d, mask);
                    self.mac.waits[i] = None;
                }
                Some(_) => continue,
                None => self.doms[i].regs.rdx = BlockWake::Event as u64,
            }
            self.sched.set_state(DomainId(i as u32), State::Runnable);
        }
    }

    /// A paused domain was resumed into its blocked state: if it waits on ports and an event
    /// arrived while it was paused (the pending bits stayed), its wait completes now rather
    /// than at its timeout.
    pub(super) fn resumed(&mut self, id: DomainId) {
        let i = id.0 as usize;
        if let Some(mask) = self.mac.waits.get(i).copied().flatten()
            && self.mac.ipc.has_pending(DomId(id.0), mask)
        {
            self.deliver(1 << i);
        }
    }

    /// Handles an IPC hypercall (numbers `IPC_BASE..`) of domain `id`.
    pub(super) fn ipc_hypercall(&mut self, id: DomainId, call: IpcCall, args: [u64; 5]) -> Next {
        let i = id.0 as usize;
        let r = self.with_ipc(|ipc, plat| ipc.handle(plat, DomId(id.0), call, args));
        let (status, value, next) = match r {
            Ok(Outcome::Done(v)) => (Status::Ok, v, Next::Continue),
            Ok(Outcome::Wait { mask, timeout_us }) => {
                let until = timeout_us.map(|us| {
                    timer::now()
                        .saturating_add(warden_vmm::sched::timeout_ticks(us, timer::TICK_US))
                });
                self.mac.waits[i] = Some(mask);
                self.sched.set_state(id, State::Blocked { until });
                // Until an event completes the wait, the answer is "timed out, nothing pending".
                (Status::Ok, 0, Next::Reschedule)
            }
            Err(f) => {
                if let Failure::Denied(d) = &f {
                    self.mac.report(id.0, d);
                }
                let (s, v) = f.abi();
                (s, v, Next::Continue)
            }
        };
        set(&mut self.mem, self.doms[i].vmcb, field::RAX, status as u64);
        self.doms[i].regs.rdx = value;
        next
    }

    /// A hypercall begins: any earlier wait of this domain is over (it timed out).
    pub(super) fn hypercall_entry(&mut self, id: DomainId) {
        if let Some(w) = self.mac.waits.get_mut(id.0 as usize) {
            *w = None;
        }
    }

    /// Releases what an ended domain held, then starts domains the Chinese Wall held back if
    /// it now lets them.
    pub(super) fn domain_ended(&mut self, id: DomainId) {
        let i = id.0 as usize;
        self.mac.waits[i] = None;
        self.mac.waiting[i] = None;
        if let Some(label) = self.mac.labels[i] {
            self.with_ipc(|ipc, plat| ipc.domain_dead(plat, DomId(id.0), label));
            self.mac.labels[i] = None;
        }
        self.mac.summary();
        for j in 0..MAX_DOMAINS.min(self.doms.len()) {
            let Some(label) = self.mac.waiting[j] else {
                continue;
            };
            if self.mac.ipc.mac.domain_starting(label).is_ok() {
                self.mac.waiting[j] = None;
                self.mac.labels[j] = Some(label);
                self.sched.set_state(DomainId(j as u32), State::Runnable);
                let d = &self.doms[j];
                println!(
                    "domain {} (id {j}) admitted: no running domain conflicts with {} any more",
                    d.name, d.label
                );
            }
        }
    }
}
