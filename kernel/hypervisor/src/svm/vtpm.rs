//! vTPMs for domains, the hypervisor's part: which domain serves which instance (manifest keys
//! `vtpm_instance=` and `vtpm=`, checked against the policy at boot), the launch measurement
//! handed to the vTPM domain while its client is held before its first instruction, and the
//! vTPM hypercalls (56..59), each decided by the one MAC. On `vtpm_connect` the hypervisor
//! itself maps the client's frame page into the vTPM domain and binds their event channel, then
//! tells the vTPM domain who connected: no domain can name itself to a vTPM, and none reaches
//! an instance the policy does not give it. The vTPM engine itself runs in the vTPM domain.

use warden_abi::ipc::{GRANT_WINDOW, GRANT_WINDOW_PAGES};
use warden_abi::vtpm::{ConnectionRecord, LaunchRecord, VtpmCall, VtpmError};
use warden_abi::{Status, to_fixed};
use warden_core::mem::PAGE_SIZE;
use warden_core::paging::{PageSize, PageTable, flags};
use warden_ipc::{Access, Check, DomId, GrantRef, Object, Platform, Subject};
use warden_policy::{Class, Kind, PermSet, Policy, TypeId, perms};
use warden_tpm::HashAlg;
use warden_vmm::manifest::{DomainSpec, MAX_DOMAINS};
use warden_vmm::sched::{DomainId, State};
use warden_vmm::vmcb::field;
use warden_vmm::vtpm::Assignment;

use super::{Next, Runner, alloc_zeroed_run, get, set};

/// One vTPM instance, served by the domain at its index in [`Vtpms::instances`].
#[derive(Debug, Clone, Copy)]
struct Instance {
    /// The instance's type (kind `vtpm`): the object of `vtpm { use admin }` checks.
    label: TypeId,
    /// The one domain whose vTPM this is (its manifest line says `vtpm=<server>`).
    owner: Option<u32>,
    launch: Option<LaunchRecord>,
    /// The connected client, once connected.
    client: Option<u32>,
    /// The client's grant of its frame page and where the vTPM domain maps it.
    page: Option<(GrantRef, u64)>,
    /// A connection the vTPM domain has not accepted yet.
    pending: Option<ConnectionRecord>,
    /// The serving domain ended: nothing reaches this instance any more.
    gone: bool,
}

/// The vTPM configuration and connection state of one boot.
pub(super) struct Vtpms {
    instances: [Option<Instance>; MAX_DOMAINS],
    /// Domains held before their first instruction until their vTPM measured their launch.
    held: [bool; MAX_DOMAINS],
    /// Domains whose vTPM configuration is refused (they are not built).
    refused: [bool; MAX_DOMAINS],
}

/// The measurement of what the hypervisor loaded for domain `id`: the image's digests in the
/// vTPM's banks (SHA-1, SHA-256) and its manifest configuration. Every path that creates a
/// domain with a vTPM calls this with the image bytes it loaded.
pub(crate) fn launch_record(id: u32, spec: &DomainSpec<'_>, elf: &[u8]) -> LaunchRecord {
    let mut image_sha1 = [0u8; 20];
    let mut image_sha256 = [0u8; 32];
    // Bound to the name it is logged under, as every platform-launch component is
    // (`eventlog::component_parts`): a verifier matching components by name relies on
    // measured facts only.
    let parts = warden_tpm::eventlog::component_parts(spec.image, elf);
    image_sha1.copy_from_slice(HashAlg::Sha1.hash_parts(&parts).as_bytes());
    image_sha256.copy_from_slice(HashAlg::Sha256.hash_parts(&parts).as_bytes());
    LaunchRecord {
        client: id,
        image_sha1,
        image_sha256,
        name: to_fixed(spec.name),
        image: to_fixed(spec.image),
        label: to_fixed(spec.label),
        args: to_fixed(spec.args),
    }
}

impl Vtpms {
    /// Reads the manifest's vTPM keys (`warden_vmm::vtpm::Assignment`, which refuses a line
    /// naming a missing vTPM domain, an instance type that is not of kind `vtpm`, or a second
    /// client of one instance) and computes each client's launch record from the image bytes
    /// `image` returns.
    pub(super) fn configure(
        specs: &[DomainSpec<'_>],
        policy: &Policy<'_>,
        mut image: impl FnMut(&str) -> Option<alloc::vec::Vec<u8>>,
    ) -> Vtpms {
        let a = Assignment::new(specs, |t| {
            policy
                .type_by_name(t)
                .filter(|&ty| policy.kind_of(ty) == Some(Kind::Vtpm))
        });
        let mut v = Vtpms {
            instances: [None; MAX_DOMAINS],
            held: [false; MAX_DOMAINS],
            refused: [false; MAX_DOMAINS],
        };
        for (i, s) in specs.iter().enumerate() {
            if let Some(e) = a.refused[i] {
                println!("domain {} (id {i}) refused: {e}", s.name);
                v.refused[i] = true;
            }
            let Some(label) = a.instance[i] else { continue };
            v.instances[i] = Some(Instance {
                label,
                owner: None,
                launch: None,
                client: None,
                page: None,
                pending: None,
                gone: false,
            });
            if let Some(j) = a.owner[i]
                && let Some(elf) = image(specs[j].image)
            {
                let _ = v.attach(i, j, launch_record(j as u32, &specs[j], &elf));
            }
        }
        v
    }

    /// Makes domain `client` the one client of the instance domain `server` serves, with the
    /// launch the vTPM domain will measure, and holds the client until then (its caller keeps
    /// it out of the run queue: `held`). Boot does this for every manifest client; a domain
    /// created at run time with a vTPM takes the same path.
    pub(super) fn attach(
        &mut self,
        server: usize,
        client: usize,
        launch: LaunchRecord,
    ) -> Result<(), VtpmError> {
        let inst = self
            .instances
            .get_mut(server)
            .and_then(Option::as_mut)
            .filter(|inst| !inst.gone)
            .ok_or(VtpmError::NotAVtpm)?;
        if inst.owner.is_some() {
            return Err(VtpmError::AlreadyConnected);
        }
        let held = self.held.get_mut(client).ok_or(VtpmError::NoClient)?;
        inst.owner = Some(client as u32);
        inst.launch = Some(launch);
        *held = true;
        Ok(())
    }

    /// Whether domain `i`'s vTPM configuration was refused.
    pub(super) fn refuses(&self, i: usize) -> bool {
        self.refused.get(i).copied().unwrap_or(false)
    }

    /// Whether domain `i` has a vTPM or serves one (a checkpoint does not capture either).
    pub(super) fn involves(&self, i: usize) -> bool {
        let i32 = i as u32;
        self.instances.get(i).is_some_and(Option::is_some)
            || self.instances.iter().flatten().any(|x| x.owner == Some(i32) || x.client == Some(i32))
    }

    /// Whether domain `i` waits for its vTPM to measure its launch before it may run.
    pub(super) fn held(&self, i: usize) -> bool {
        self.held.get(i).copied().unwrap_or(false)
    }
}

fn invalid(e: VtpmError) -> (Status, u64) {
    (Status::InvalidArgument, e as u64)
}

impl Runner {
    /// The MAC decision of a vTPM call: `perm` of class `vtpm`, caller → the instance served by
    /// domain `server`. A denial is audited and reported like every other.
    fn vtpm_check(
        &mut self,
        caller: u32,
        server: u32,
        label: TypeId,
        call: VtpmCall,
        perm: PermSet,
    ) -> Result<(), (Status, u64)> {
        let r = self.with_ipc(|ipc, plat| {
            let subject = Subject {
                dom: DomId(caller),
                label: plat.label(DomId(caller))?,
            };
            let object = Object::Domain {
                dom: DomId(server),
                label,
            };
            let c = Check {
                hypercall: call as u64,
                subject,
                object,
                class: Class::Vtpm,
                perms: perm,
                time: plat.now(),
            };
            Some(ipc.mac.check(&c).map(|_| ()))
        });
        match r {
            None => Err((Status::Denied, 0)),
            Some(Ok(())) => Ok(()),
            Some(Err(d)) => {
                self.mac.report(caller, &d);
                Err((Status::Denied, 0))
            }
        }
    }

    /// The instance domain `id` serves, for its own (admin) calls.
    fn own_instance(&mut self, id: u32, call: VtpmCall) -> Result<Instance, (Status, u64)> {
        let inst = self
            .vtpm
            .instances
            .get(id as usize)
            .copied()
            .flatten()
            .ok_or(invalid(VtpmError::NotAVtpmDomain))?;
        self.vtpm_check(id, id, inst.label, call, perms::vtpm::ADMIN)?;
        Ok(inst)
    }

    /// Handles a vTPM hypercall of domain `id`.
    pub(super) fn vtpm_hypercall(&mut self, id: DomainId, call: VtpmCall, args: [u64; 5]) -> Next {
        let r = self.vtpm_call(id.0, call, args);
        let (status, value) = r.unwrap_or_else(|e| e);
        set(
            &mut self.mem,
            self.doms[id.0 as usize].vmcb,
            field::RAX,
            status as u64,
        );
        self.doms[id.0 as usize].regs.rdx = value;
        Next::Continue
    }

    fn vtpm_call(
        &mut self,
        id: u32,
        call: VtpmCall,
        args: [u64; 5],
    ) -> Result<(Status, u64), (Status, u64)> {
        let i = id as usize;
        match call {
            VtpmCall::Serve => {
                let inst = self.own_instance(id, call)?;
                let (Some(owner), Some(launch)) = (inst.owner, inst.launch) else {
                    return Err(invalid(VtpmError::NoClient));
                };
                let bytes = launch.to_bytes();
                if args[1] < bytes.len() as u64 {
                    return Err(invalid(VtpmError::BadBuffer));
                }
                self.with_ipc(|_, plat| plat.write_guest(DomId(id), args[0], &bytes))
                    .map_err(|_| invalid(VtpmError::BadBuffer))?;
                Ok((Status::Ok, u64::from(owner)))
            }
            VtpmCall::Ready => {
                let inst = self.own_instance(id, call)?;
                let owner = inst.owner.ok_or(invalid(VtpmError::NoClient))? as usize;
                if self.vtpm.held[owner] {
                    self.vtpm.held[owner] = false;
                    if matches!(
                        self.sched.state(DomainId(owner as u32)),
                        State::Blocked { .. }
                    ) && !self.doms[owner].refused
                    {
                        self.sched
                            .set_state(DomainId(owner as u32), State::Runnable);
                        println!(
                            "vtpm: domain {} launch measured by its vTPM {}: it may run",
                            self.doms[owner].name, self.doms[i].name
                        );
                    }
                }
                Ok((Status::Ok, 0))
            }
            VtpmCall::Accept => {
                self.own_instance(id, call)?;
                let Some(rec) = self.vtpm.instances[i]
                    .as_mut()
                    .and_then(|inst| inst.pending.take())
                else {
                    return Ok((Status::Ok, 0));
                };
                let bytes = rec.to_bytes();
                if args[1] < bytes.len() as u64
                    || self
                        .with_ipc(|_, plat| plat.write_guest(DomId(id), args[0], &bytes))
                        .is_err()
                {
                    // Keep it for a well-formed retry.
                    if let Some(inst) = self.vtpm.instances[i].as_mut() {
                        inst.pending = Some(rec);
                    }
                    return Err(invalid(VtpmError::BadBuffer));
                }
                Ok((Status::Ok, 1))
            }
            VtpmCall::Connect => self.vtpm_connect(id, args[0], args[1]),
        }
    }

    /// `vtpm_connect`: MAC decision first (so a refused attempt is audited whatever else is
    /// wrong with it), then the owner and page checks, then the grant and channel.
    fn vtpm_connect(
        &mut self,
        client: u32,
        server_raw: u64,
        page_gpa: u64,
    ) -> Result<(Status, u64), (Status, u64)> {
        let server = u32::try_from(server_raw).map_err(|_| invalid(VtpmError::NotAVtpm))?;
        let inst = self
            .vtpm
            .instances
            .get(server as usize)
            .copied()
            .flatten()
            .filter(|inst| !inst.gone)
            .ok_or(invalid(VtpmError::NotAVtpm))?;
        self.vtpm_check(
            client,
            server,
            inst.label,
            VtpmCall::Connect,
            perms::vtpm::USE,
        )?;
        if inst.owner != Some(client) {
            return Err(invalid(VtpmError::NotTheOwner));
        }
        if inst.client.is_some() {
            return Err(invalid(VtpmError::AlreadyConnected));
        }
        if !page_gpa.is_multiple_of(PAGE_SIZE) {
            return Err(invalid(VtpmError::BadPage));
        }
        let gfn = page_gpa / PAGE_SIZE;
        let (c, s) = (DomId(client), DomId(server));
        let wired = self.with_ipc(|ipc, plat| {
            if !plat.owns_frame(c, gfn) {
                return Err(VtpmError::BadPage);
            }
            let (Some(clabel), Some(slabel)) = (plat.label(c), plat.label(s)) else {
                return Err(VtpmError::NotAVtpm);
            };
            let gpa = (0..GRANT_WINDOW_PAGES)
                .map(|k| GRANT_WINDOW + k * PAGE_SIZE)
                .find(|&g| ipc.grants.mapping_at(s, g).is_none())
                .ok_or(VtpmError::NoResources)?;
            let gref = ipc
                .grants
                .offer(c, s, slabel, gfn, Access::ReadWrite)
                .map_err(|_| VtpmError::NoResources)?;
            let undo_offer = |ipc: &mut crate::mac::HvIpc| {
                let _ = ipc.grants.revoke(c, gref);
            };
            if ipc.grants.map(s, c, gref, gpa, true).is_err() {
                undo_offer(ipc);
                return Err(VtpmError::NoResources);
            }
            if plat.map_grant(s, gpa, c, gfn, true).is_err() {
                let _ = ipc.grants.unmap(s, c, gref);
                undo_offer(ipc);
                return Err(VtpmError::NoResources);
            }
            let ports = ipc
                .evtchn
                .alloc_unbound(c, clabel, s, slabel)
                .and_then(|cp| ipc.evtchn.bind(s, slabel, c, cp).map(|sp| (cp, sp)));
            let Ok((cport, sport)) = ports else {
                plat.unmap_grant(s, gpa);
                let _ = ipc.grants.unmap(s, c, gref);
                undo_offer(ipc);
                return Err(VtpmError::NoResources);
            };
            plat.wake(s);
            Ok((cport.0, sport.0, gpa, gref))
        });
        let (cport, sport, gpa, gref) = wired.map_err(invalid)?;
        let d = &self.doms[client as usize];
        let rec = ConnectionRecord {
            client,
            port: sport,
            page_gpa: gpa,
            name: to_fixed(&d.name),
            label: to_fixed(&d.label),
        };
        if let Some(inst) = self.vtpm.instances[server as usize].as_mut() {
            inst.client = Some(client);
            inst.page = Some((gref, gpa));
            inst.pending = Some(rec);
        }
        println!(
            "vtpm: domain {} connected to its vTPM {} (port {cport}, page at {gpa:#x} there)",
            d.name, self.doms[server as usize].name
        );
        Ok((Status::Ok, u64::from(cport)))
    }

    /// A domain ended: a vTPM domain's instance is gone for good (its client's channel is
    /// closed by the IPC cleanup, which wakes the client); a dead client's frame page leaves
    /// the vTPM domain, replaced by a zeroed scratch page at the same address, so that a vTPM
    /// domain caught between reading a frame's words sees an empty frame (refused, answered
    /// into the scratch page) rather than a hole that would stop it. Runs before the IPC
    /// cleanup.
    pub(super) fn vtpm_domain_ended(&mut self, id: DomainId) {
        let i = id.0 as usize;
        if let Some(inst) = self.vtpm.instances.get_mut(i).and_then(Option::as_mut) {
            inst.gone = true;
            inst.pending = None;
            if let Some(owner) = inst.owner.filter(|&o| self.vtpm.held[o as usize]) {
                println!(
                    "vtpm: domain {} will not run: its vTPM domain ended before measuring its launch",
                    self.doms[owner as usize].name
                );
            }
        }
        for s in 0..MAX_DOMAINS {
            let Some(inst) = self.vtpm.instances[s]
                .as_mut()
                .filter(|inst| inst.client == Some(id.0))
            else {
                continue;
            };
            inst.client = None;
            let Some((gref, gpa)) = inst.page.take() else {
                continue;
            };
            if inst.gone {
                continue;
            }
            let (c, srv) = (DomId(id.0), DomId(s as u32));
            self.with_ipc(|ipc, plat| {
                let _ = ipc.grants.unmap(srv, c, gref);
                plat.unmap_grant(srv, gpa);
                let _ = ipc.grants.revoke(c, gref);
            });
            self.vtpm_scratch_page(s, gpa);
        }
    }

    /// Maps a fresh zeroed page at `gpa` in domain `s`'s nested page tables (never code).
    fn vtpm_scratch_page(&mut self, s: usize, gpa: u64) {
        let Some(frame) = alloc_zeroed_run(&mut self.mem, 1) else {
            println!(
                "vtpm: no frame for {}'s scratch page: it may stop at its next read",
                self.doms[s].name
            );
            return;
        };
        let npt = PageTable::from_root(
            get(&self.mem, self.doms[s].vmcb, field::N_CR3),
            flags::WRITABLE | flags::USER,
        );
        let leaf = flags::USER | flags::NO_EXECUTE | flags::WRITABLE;
        let mem = &mut self.mem;
        if crate::memory::with_frames(|f| npt.map(mem, f, gpa, frame, PageSize::Small, leaf))
            .is_ok()
        {
            self.doms[s].first_run = true;
        }
    }
}
