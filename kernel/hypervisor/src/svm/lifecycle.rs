//! Domain lifecycle at run time: the lifecycle hypercalls (`LIFECYCLE_BASE..`: list, info,
//! create, build, transition, pause/unpause, set priority, destroy, host shutdown, physinfo),
//! each decided by `warden_ipc::Mac` at one check site, the measurement of created domains,
//! the boot-image window, and giving an ended domain's memory back.
//!
//! Order of every call: decode the words (`warden_ipc::lifecycle`), resolve the target domain
//! (an id that does not exist fails here), **check the policy** (audited as the policy says),
//! check the state, then act. A refused call changes nothing. Domain ids are never reused, so
//! a request racing a domain's end names an ended domain and gets `Ended`.

use alloc::string::String as HeapString;
use alloc::vec::Vec;
use core::fmt::Write as _;
use heapless::String;
use warden_abi::lifecycle::{
    CreateRequest, DomainState, DomainStatus, EndReason, IMAGE_DIRECTORY_GPA, IMAGE_SLOT,
    IMAGE_SLOTS, IMAGE_WINDOW, ImageDirectory, ImageEntry, LifecycleCall, LifecycleError, PhysInfo,
};
use warden_abi::{StartInfo, Status, to_fixed};
use warden_core::frame::{FrameAlloc, PhysFrame};
use warden_core::mem::{PAGE_SIZE, PhysMem};
use warden_core::multiboot::BootInfo;
use warden_core::paging::{PageSize, PageTable, flags};
use warden_hw::phys::IdentityMem;
use warden_ipc::{
    Check, CreateSpec, DomId, LifecycleRequest, Object, Refusal, Subject, lifecycle_requirement,
};
use warden_policy::TypeId;
use warden_vmm::construct::{self, Built, Identity, Region, VmcbParams};
use warden_vmm::domain::{End, reported_state};
use warden_vmm::layout::{START_INFO, guest_range};
use warden_vmm::manifest::{DomainSpec, Expected, MAX_DOMAINS};
use warden_vmm::sched::{DomainId, State};
use warden_vmm::vmcb::{field, get, set};

use super::{Dom, Next, Runner, short, timer};

/// What creating domains at run time needs from the boot.
pub(super) struct HostParams {
    /// ASIDs the CPU offers (domain `i` uses ASID `i + 1`).
    pub(super) asids: u32,
    pub(super) iopm: u64,
    pub(super) msrpm: u64,
}

/// A domain's lifecycle bookkeeping.
pub(super) struct Life {
    /// Made by `DomainCreate` (not in the boot manifest).
    pub(super) created: bool,
    /// Its image is loaded and its start state set (boot domains: at boot).
    pub(super) built: bool,
    /// The run does not end by itself while this domain lives (manifest `keep_host=true`).
    pub(super) keeps_host: bool,
    args: String<128>,
    /// Its memory went back to the frame allocator.
    pub(super) freed: bool,
    /// Boot images it may read: (guest-physical address, host-physical address, length).
    pub(super) windows: Vec<(u64, u64, u64)>,
}

impl Life {
    pub(super) fn boot(spec: &DomainSpec<'_>) -> Life {
        Life {
            created: false,
            built: true,
            keeps_host: spec.get("keep_host") == Some("true"),
            args: fixed(spec.args),
            freed: false,
            windows: Vec::new(),
        }
    }
}

fn fixed<const N: usize>(s: &str) -> String<N> {
    let mut out = String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Maps the boot images the manifest's `images=a;b` names read-only into the domain's nested
/// page tables (slot `k` at `IMAGE_WINDOW + k * IMAGE_SLOT`) and writes their directory into
/// its start-info page. Every boot module was measured at launch.
pub(super) fn map_boot_images(
    mem: &mut IdentityMem,
    boot: &BootInfo,
    spec: &DomainSpec<'_>,
    built: &Built,
    dom: &mut Dom,
) {
    let Some(list) = spec.get("images") else {
        return;
    };
    let npt = PageTable::from_root(built.npt_root, flags::WRITABLE | flags::USER);
    let mut dir = ImageDirectory::default();
    for (k, name) in list.split(';').enumerate() {
        let found = boot
            .modules
            .iter()
            .find(|m| m.arg("kind") == Some("image") && m.arg("name") == Some(name));
        let (Some(m), true) = (found, k < IMAGE_SLOTS) else {
            println!(
                "domain {}: images= names {name}, which is not an image module or beyond {IMAGE_SLOTS} slots: not mapped",
                spec.name
            );
            continue;
        };
        let len = m.len();
        if len > IMAGE_SLOT {
            println!(
                "domain {}: boot image {name} is larger than a window slot: not mapped",
                spec.name
            );
            continue;
        }
        let first = m.start & !(PAGE_SIZE - 1);
        let slot = IMAGE_WINDOW + k as u64 * IMAGE_SLOT;
        let gpa = slot + (m.start - first);
        let pages = (m.end - first).div_ceil(PAGE_SIZE);
        // Read-only and never executable: the window is for building other domains.
        let leaf = flags::USER | flags::NO_EXECUTE;
        let mapped = crate::memory::with_frames(|f| {
            (0..pages).try_for_each(|p| {
                npt.map(
                    mem,
                    f,
                    slot + p * PAGE_SIZE,
                    first + p * PAGE_SIZE,
                    PageSize::Small,
                    leaf,
                )
            })
        });
        if let Err(e) = mapped {
            println!("domain {}: boot image {name} not mapped: {e:?}", spec.name);
            continue;
        }
        let n = dir.count as usize;
        dir.entries[n] = ImageEntry {
            name: to_fixed(name),
            gpa,
            len,
        };
        dir.count += 1;
        dom.life.windows.push((gpa, m.start, len));
        println!(
            "domain {} may read boot image {name} at {gpa:#x} ({len} bytes, read-only)",
            spec.name
        );
    }
    mem.write(dom.region.hpa + IMAGE_DIRECTORY_GPA, &dir.to_bytes());
}

/// Why a lifecycle (or introspection) call failed.
pub(super) enum Fail {
    Denied,
    Refused(Refusal),
}

impl From<LifecycleError> for Fail {
    fn from(e: LifecycleError) -> Self {
        Fail::Refused(e.into())
    }
}

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Self {
        Fail::Refused(r)
    }
}

pub(super) fn bad_address() -> Fail {
    Fail::Refused(Refusal {
        status: Status::BadAddress,
        detail: 0,
    })
}

pub(super) type Done = Result<u64, Fail>;

impl Runner {
    /// Handles a lifecycle hypercall (numbers `LIFECYCLE_BASE..`) of domain `id`.
    pub(super) fn lifecycle_hypercall(
        &mut self,
        id: DomainId,
        call: LifecycleCall,
        args: [u64; 5],
    ) -> Next {
        let i = id.0 as usize;
        let r = LifecycleRequest::decode(call, args)
            .map_err(Fail::from)
            .and_then(|req| self.lifecycle(id.0, req));
        let (status, value) = match r {
            Ok(v) => (Status::Ok, v),
            Err(Fail::Denied) => (Status::Denied, 0),
            Err(Fail::Refused(r)) => (r.status, r.detail),
        };
        set(&mut self.mem, self.doms[i].vmcb, field::RAX, status as u64);
        self.doms[i].regs.rdx = value;
        // The caller may have been ended or paused by its own call (never: both refuse the
        // caller as target), or given the CPU away by a priority change.
        if self.sched.state(id) == State::Runnable {
            Next::Continue
        } else {
            Next::Reschedule
        }
    }

    fn lifecycle(&mut self, caller: u32, req: LifecycleRequest) -> Done {
        let call = req.call();
        match req {
            LifecycleRequest::List { gpa, len } => self.list(caller, gpa, len),
            LifecycleRequest::GetInfo { dom, gpa } => {
                let (i, label) = self.target(dom)?;
                self.check(caller, call, Object::Domain { dom, label })?;
                let range = self.caller_out_range(caller, gpa, DomainStatus::SIZE as u64)?;
                let rec = self.status(i).to_bytes();
                self.mem.write(range, &rec);
                Ok(0)
            }
            LifecycleRequest::Create { gpa } => self.create(caller, gpa),
            LifecycleRequest::Build {
                dom,
                gpa,
                len,
                args_gpa,
                args_len,
            } => self.build_created(caller, dom, (gpa, len), (args_gpa, args_len)),
            LifecycleRequest::Transition { dom, gpa, len } => {
                self.transition(caller, dom, gpa, len)
            }
            LifecycleRequest::Unpause { dom } => self.unpause(caller, dom),
            LifecycleRequest::Pause { dom } => {
                let i = self.checked_target(caller, dom, call, true)?;
                if !self.sched.pause(DomainId(dom.0)) {
                    return Err(LifecycleError::WrongState.into());
                }
                println!(
                    "lifecycle: domain {} (id {}) paused by domain {caller}",
                    self.doms[i].name, dom.0
                );
                Ok(0)
            }
            LifecycleRequest::SetPriority { dom, priority } => {
                let i = self.checked_target(caller, dom, call, false)?;
                self.sched.set_priority(DomainId(dom.0), priority);
                let d = &mut self.doms[i];
                println!(
                    "lifecycle: domain {} (id {}) priority {} -> {priority} (by domain {caller})",
                    d.name, dom.0, d.priority
                );
                d.priority = priority;
                Ok(0)
            }
            LifecycleRequest::Destroy { dom } => {
                self.checked_target(caller, dom, call, true)?;
                self.end(DomainId(dom.0), End::Destroyed { by: caller });
                Ok(0)
            }
            LifecycleRequest::HostShutdown => {
                self.check(caller, call, Object::Hypervisor)?;
                let d = &mut self.doms[caller as usize];
                let name = d.name.as_str();
                d.console
                    .flush(&mut |line: &str| println!("[{name}] {line}"));
                println!("lifecycle: host shutdown requested by domain {name} (id {caller})");
                let all_ok = self.verdict();
                Self::exit_with(all_ok)
            }
            LifecycleRequest::PhysInfo { gpa } => {
                self.check(caller, call, Object::Hypervisor)?;
                let range = self.caller_out_range(caller, gpa, PhysInfo::SIZE as u64)?;
                let info = self.physinfo();
                self.mem.write(range, &info.to_bytes());
                Ok(0)
            }
        }
    }

    /// The single MAC check of a lifecycle call (audited as the policy says; audited denials
    /// are printed like every other).
    fn check(&mut self, caller: u32, call: LifecycleCall, object: Object) -> Result<(), Fail> {
        self.check_site(caller, call as u64, lifecycle_requirement(call), object)
    }

    /// The single MAC check of a call asking `(class, perms)` on `object`: lifecycle and
    /// introspection calls share it.
    pub(super) fn check_site(
        &mut self,
        caller: u32,
        hypercall: u64,
        (class, perms): (warden_policy::Class, warden_policy::PermSet),
        object: Object,
    ) -> Result<(), Fail> {
        let label = self.mac.running_label(caller).ok_or(Fail::Denied)?;
        let c = Check {
            hypercall,
            subject: Subject {
                dom: DomId(caller),
                label,
            },
            object,
            class,
            perms,
            time: timer::now(),
        };
        let r = self.mac.decider().check(&c);
        r.map(|_| ()).map_err(|d| {
            self.mac.report(caller, &d);
            Fail::Denied
        })
    }

    /// A domain named by a request: its index and its current label.
    pub(super) fn target(&mut self, dom: DomId) -> Result<(usize, TypeId), Fail> {
        let i = dom.0 as usize;
        let d = self.doms.get(i).ok_or(LifecycleError::NoSuchDomain)?;
        // Only domains refused at boot for an unknown label have none: they never existed.
        let label = self
            .mac
            .decider()
            .domain_label(&d.label)
            .map_err(|_| LifecycleError::NoSuchDomain)?;
        Ok((i, label))
    }

    /// Resolves, checks (MAC) and vets a request's target domain: not the caller (when
    /// `not_self`), not ended.
    fn checked_target(
        &mut self,
        caller: u32,
        dom: DomId,
        call: LifecycleCall,
        not_self: bool,
    ) -> Result<usize, Fail> {
        self.checked_target_for(caller, dom, call as u64, lifecycle_requirement(call), not_self)
    }

    /// [`Self::checked_target`] for any call asking `req` (introspection calls too).
    pub(super) fn checked_target_for(
        &mut self,
        caller: u32,
        dom: DomId,
        hypercall: u64,
        req: (warden_policy::Class, warden_policy::PermSet),
        not_self: bool,
    ) -> Result<usize, Fail> {
        let (i, label) = self.target(dom)?;
        if not_self && dom.0 == caller {
            return Err(LifecycleError::SelfTarget.into());
        }
        self.check_site(caller, hypercall, req, Object::Domain { dom, label })?;
        if self.ended(i) {
            return Err(LifecycleError::Ended.into());
        }
        Ok(i)
    }

    pub(super) fn ended(&self, i: usize) -> bool {
        let d = &self.doms[i];
        d.end.is_some() || d.refused || self.sched.state(DomainId(i as u32)) == State::Dead
    }

    /// The host-physical address of `[gpa, gpa + len)` in the caller's memory.
    pub(super) fn caller_range(&self, caller: u32, gpa: u64, len: u64) -> Result<u64, Fail> {
        let d = &self.doms[caller as usize];
        let r = guest_range(d.memory_bytes, gpa, len).ok_or_else(bad_address)?;
        Ok(d.region.hpa + r.gpa)
    }

    /// [`Self::caller_range`] for a buffer the hypervisor writes into: the caller must be able to
    /// write it itself, through its own page tables (the rule `domain_info`, `audit_read` and
    /// `grant_offer` follow since issue 16's finding 10), so a call never overwrites the
    /// start-info page, page tables or read-only image.
    pub(super) fn caller_out_range(&self, caller: u32, gpa: u64, len: u64) -> Result<u64, Fail> {
        let hpa = self.caller_range(caller, gpa, len)?;
        if len > 0 && !super::guard::writable(&self.mem, &self.doms[caller as usize], gpa, len) {
            return Err(bad_address());
        }
        Ok(hpa)
    }

    pub(super) fn state_name(&self, i: usize) -> &'static str {
        DomainState::from_raw(self.status(i).state).map_or("?", DomainState::name)
    }

    fn status(&self, i: usize) -> DomainStatus {
        let d = &self.doms[i];
        let state = reported_state(self.sched.state(DomainId(i as u32)), self.ended(i));
        let end = match d.end {
            None if d.refused => EndReason::Refused,
            None => EndReason::None,
            Some(e) => e.reason(),
        };
        DomainStatus {
            domain_id: i as u32,
            state: state as u32,
            priority: u32::from(d.priority),
            end: end as u32,
            memory_bytes: if d.life.freed || d.refused {
                0
            } else {
                d.memory_bytes
            },
            cpu_ticks: d.cpu_ticks,
            exits: d.exits,
            name: to_fixed(&d.name),
            label: to_fixed(&d.label),
        }
    }

    fn physinfo(&self) -> PhysInfo {
        let free = crate::memory::with_frames(|f| f.free_frames()) as u64 * PAGE_SIZE;
        PhysInfo {
            total_bytes: crate::memory::total_bytes(),
            free_bytes: free,
            live_domains: (0..self.doms.len()).filter(|&i| !self.ended(i)).count() as u32,
            max_domains: self.capacity() as u32,
        }
    }

    /// Domains this host can hold over one run (ids are not reused).
    fn capacity(&self) -> usize {
        MAX_DOMAINS.min(self.host.asids.saturating_sub(1) as usize)
    }

    /// `DomainList`: one record per domain the caller may `getinfo`; the others are skipped.
    fn list(&mut self, caller: u32, gpa: u64, len: u64) -> Done {
        let room = len / DomainStatus::SIZE as u64;
        let base = self.caller_out_range(caller, gpa, room * DomainStatus::SIZE as u64)?;
        let subject = Subject {
            dom: DomId(caller),
            label: self.mac.running_label(caller).ok_or(Fail::Denied)?,
        };
        let (class, perms) = lifecycle_requirement(LifecycleCall::DomainList);
        let mut n = 0u64;
        for i in 0..self.doms.len() {
            let Ok((_, label)) = self.target(DomId(i as u32)) else {
                continue;
            };
            let c = Check {
                hypercall: LifecycleCall::DomainList as u64,
                subject,
                object: Object::Domain {
                    dom: DomId(i as u32),
                    label,
                },
                class,
                perms,
                time: timer::now(),
            };
            // A domain the caller may not see is skipped silently (the audit ring has the
            // denial if the policy audits it; the console is not flooded on every list).
            if self.mac.decider().check(&c).is_err() {
                continue;
            }
            if n < room {
                let rec = self.status(i).to_bytes();
                self.mem.write(base + n * DomainStatus::SIZE as u64, &rec);
            }
            n += 1;
        }
        Ok(n)
    }

    /// `DomainCreate`: a new domain in state building, under the request's build label.
    fn create(&mut self, caller: u32, gpa: u64) -> Done {
        let call = LifecycleCall::DomainCreate;
        self.create_domain(caller, gpa, call as u64, lifecycle_requirement(call))
            .map(u64::from)
    }

    /// A new domain in state building from the [`CreateRequest`] at `gpa`, after the call's
    /// one check (`req` caller -> the request's label), the Chinese Wall and the table's
    /// capacity: `DomainCreate` and the restore path (`svm/introspect.rs`) share it.
    pub(super) fn create_domain(
        &mut self,
        caller: u32,
        gpa: u64,
        hypercall: u64,
        need: (warden_policy::Class, warden_policy::PermSet),
    ) -> Result<u32, Fail> {
        let at = self.caller_range(caller, gpa, CreateRequest::SIZE as u64)?;
        let mut raw = [0u8; CreateRequest::SIZE];
        self.mem.read(at, &mut raw);
        let req = CreateRequest::from_bytes(&raw);
        let spec = CreateSpec::parse(&req)?;
        let label = self
            .mac
            .decider()
            .domain_label(spec.label)
            .map_err(|_| LifecycleError::BadLabel)?;
        let id = self.doms.len() as u32;
        self.check_site(
            caller,
            hypercall,
            need,
            Object::Domain {
                dom: DomId(id),
                label,
            },
        )?;
        if let Err(conflict) = self.mac.decider().may_start(label) {
            println!(
                "lifecycle: domain {} refused at creation: {conflict}",
                spec.name
            );
            return Err(LifecycleError::WallConflict.into());
        }
        if self.doms.len() >= self.capacity() {
            return Err(LifecycleError::TableFull.into());
        }
        let memory_bytes = u64::from(spec.memory_mib) << 20;
        let pages = (memory_bytes / PAGE_SIZE) as usize;
        let hpa = crate::memory::with_frames(|f| f.alloc_contiguous(pages))
            .map_err(|_| LifecycleError::NoMemory)?
            .addr();
        let sid = self
            .sched
            .add(spec.priority)
            .ok_or(LifecycleError::TableFull)?;
        debug_assert_eq!(sid.0, id);
        let life = Life {
            created: true,
            built: false,
            keeps_host: false,
            args: fixed(spec.args),
            freed: false,
            windows: Vec::new(),
        };
        let mut dom = Dom::new(
            spec.name,
            spec.label,
            spec.priority,
            Expected::Running,
            memory_bytes,
            life,
        );
        dom.region = Region {
            hpa,
            bytes: memory_bytes,
        };
        self.doms.push(dom);
        println!(
            "lifecycle: domain {} (id {id}) created by domain {caller}: {} MiB at {hpa:#x}, label {}, priority {}",
            spec.name, spec.memory_mib, spec.label, spec.priority
        );
        Ok(id)
    }

    /// The host-physical address of an image the caller names: in its memory or in its
    /// boot-image window.
    fn image_source(&self, caller: u32, gpa: u64, len: u64) -> Result<u64, Fail> {
        if let Ok(hpa) = self.caller_range(caller, gpa, len) {
            return Ok(hpa);
        }
        let end = gpa.checked_add(len).ok_or_else(bad_address)?;
        self.doms[caller as usize]
            .life
            .windows
            .iter()
            .find(|&&(g, _, l)| gpa >= g && end <= g + l)
            .map(|&(g, h, _)| h + (gpa - g))
            .ok_or_else(bad_address)
    }

    /// `DomainBuild`: loads the image, sets the start state, measures the domain.
    fn build_created(
        &mut self,
        caller: u32,
        dom: DomId,
        (gpa, len): (u64, u64),
        args: (u64, u64),
    ) -> Done {
        let i = self.checked_target(caller, dom, LifecycleCall::DomainBuild, true)?;
        let d = &self.doms[i];
        // A domain being restored (`RestoreCreate`) is rebuilt by the restore calls only: a build
        // now would measure an image the restore then overwrites, and leak the tables it made.
        if !d.life.created || d.life.built || d.intro.restoring || self.sched.state(DomainId(dom.0)) != State::Building {
            return Err(LifecycleError::WrongState.into());
        }
        let src = self.image_source(caller, gpa, len)?;
        // Arguments given now replace the create request's (both are measured below).
        let new_args: Option<String<128>> = if args.1 == 0 {
            None
        } else {
            let at = self.caller_range(caller, args.0, args.1)?;
            let mut buf = [0u8; warden_abi::ARGS_LEN];
            let bytes = &mut buf[..args.1 as usize];
            self.mem.read(at, bytes);
            let text = core::str::from_utf8(bytes).map_err(|_| LifecycleError::BadArgs)?;
            if text.contains('\0') {
                return Err(LifecycleError::BadArgs.into());
            }
            Some(fixed(text))
        };
        // A copy in the heap: the loader validates the bytes it loads, and the caller cannot
        // change them in between. The length is bounded by IMAGE_MAX at decode.
        let mut elf = Vec::new();
        elf.try_reserve_exact(len as usize)
            .map_err(|_| LifecycleError::NoMemory)?;
        elf.resize(len as usize, 0);
        self.mem.read(src, &mut elf);
        // Applied only once the build has succeeded: a refused call changes nothing.
        let args_now = new_args.unwrap_or_else(|| self.doms[i].life.args.clone());
        let d = &self.doms[i];
        let who = Identity {
            id: dom.0,
            name: &d.name,
            label: &d.label,
            priority: d.priority,
            args: &args_now,
        };
        let region = d.region;
        let mem = &mut self.mem;
        let built = crate::memory::with_frames(|f| construct::build(mem, f, region, &elf, who));
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                println!(
                    "lifecycle: domain {} (id {}) build refused: {e}",
                    self.doms[i].name, dom.0
                );
                return Err(LifecycleError::BadImage.into());
            }
        };
        let v = construct::initial_vmcb(
            &built,
            VmcbParams {
                asid: dom.0 + 1,
                iopm_pa: self.host.iopm,
                msrpm_pa: self.host.msrpm,
            },
        );
        if v.check().is_err() {
            return Err(LifecycleError::BadImage.into());
        }
        let Ok(vmcb) = crate::memory::with_frames(|f| f.alloc()) else {
            crate::memory::with_frames(|f| {
                PageTable::from_root(built.npt_root, 0).free_tables(&self.mem, f)
            });
            return Err(LifecycleError::NoMemory.into());
        };
        let mut page = [0u8; 4096];
        v.encode(&mut page);
        self.mem.write(vmcb.addr(), &page);
        // Measured before it can ever run: image digest, name, arguments, labels.
        let d = &self.doms[i];
        let mut text = HeapString::new();
        let _ = write!(
            text,
            "created:{} id={} label={} args={} image=sha256:{}",
            d.name,
            dom.0,
            d.label,
            args_now,
            crate::measure::sha256_hex(&elf)
        );
        if let Err(e) = crate::measure::measure_runtime(&text) {
            println!(
                "lifecycle: domain {} (id {}) not measured ({e}): it will not run",
                d.name, dom.0
            );
            crate::memory::with_frames(|f| {
                PageTable::from_root(built.npt_root, 0).free_tables(&self.mem, f);
                let _ = f.free(vmcb);
            });
            return Err(LifecycleError::Unmeasured.into());
        }
        let d = &mut self.doms[i];
        d.vmcb = vmcb.addr();
        d.life.built = true;
        d.life.args = args_now;
        println!(
            "lifecycle: domain {} (id {}) built by domain {caller}: entry {:#x}, {} bytes of image, ASID {}",
            d.name,
            dom.0,
            built.image.entry,
            len,
            dom.0 + 1
        );
        Ok(0)
    }

    /// `DomainTransition`: build label -> run label, as the policy's `transition` rule says.
    fn transition(&mut self, caller: u32, dom: DomId, gpa: u64, len: u64) -> Done {
        let i = self.checked_target(caller, dom, LifecycleCall::DomainTransition, true)?;
        let from = self.target(dom)?.1;
        if !self.doms[i].life.created || self.sched.state(DomainId(dom.0)) != State::Building {
            return Err(LifecycleError::WrongState.into());
        }
        let at = self.caller_range(caller, gpa, len)?;
        let mut buf = [0u8; warden_abi::NAME_LEN];
        let bytes = &mut buf[..len as usize];
        self.mem.read(at, bytes);
        let name = core::str::from_utf8(bytes).map_err(|_| LifecycleError::BadLabel)?;
        let to = self
            .mac
            .decider()
            .domain_label(name)
            .map_err(|_| LifecycleError::BadLabel)?;
        if self.mac.decider().policy().run_label_of(from) != Some(to) {
            // The policy's transition rule refuses this label: audited as a denial of
            // `domain { transition }` on the requested label, so the operator can read it back.
            if let Some(label) = self.mac.running_label(caller) {
                let (class, perms) = lifecycle_requirement(LifecycleCall::DomainTransition);
                let c = Check {
                    hypercall: LifecycleCall::DomainTransition as u64,
                    subject: Subject {
                        dom: DomId(caller),
                        label,
                    },
                    object: Object::Domain { dom, label: to },
                    class,
                    perms,
                    time: timer::now(),
                };
                let d = self.mac.decider().refuse(&c);
                self.mac.report(caller, &d);
            }
            return Err(LifecycleError::NoTransition.into());
        }
        let d = &self.doms[i];
        let mut text = HeapString::new();
        let _ = write!(
            text,
            "transition:{} id={} {}->{name}",
            d.name, dom.0, d.label
        );
        if crate::measure::measure_runtime(&text).is_err() {
            return Err(LifecycleError::Unmeasured.into());
        }
        println!(
            "lifecycle: domain {} (id {}) label {} -> {name} (by domain {caller})",
            d.name, dom.0, d.label
        );
        let d = &mut self.doms[i];
        d.label = short(name);
        if d.life.built {
            // The start-info page tells the domain its label: keep it true.
            let at = d.region.hpa + START_INFO;
            let mut raw = [0u8; StartInfo::SIZE];
            self.mem.read(at, &mut raw);
            let mut info = StartInfo::from_bytes(&raw);
            info.label = to_fixed(name);
            self.mem.write(at, &info.to_bytes());
        }
        Ok(0)
    }

    /// `DomainUnpause`: starts a built domain (Chinese Wall admission) or resumes a paused one.
    fn unpause(&mut self, caller: u32, dom: DomId) -> Done {
        let i = self.checked_target(caller, dom, LifecycleCall::DomainUnpause, true)?;
        let id = DomainId(dom.0);
        match self.sched.state(id) {
            State::Paused => {
                self.sched.resume(id);
                self.resumed(id);
                println!(
                    "lifecycle: domain {} (id {}) resumed by domain {caller}",
                    self.doms[i].name, dom.0
                );
                Ok(0)
            }
            State::Building if self.doms[i].life.created && self.doms[i].life.built => {
                let label = self.target(dom)?.1;
                if let Err(conflict) = self.mac.admit_created(dom.0, label) {
                    println!(
                        "lifecycle: domain {} (id {}) refused at unpause: {conflict}",
                        self.doms[i].name, dom.0
                    );
                    return Err(LifecycleError::WallConflict.into());
                }
                self.sched.set_state(id, State::Runnable);
                println!(
                    "lifecycle: domain {} (id {}) started by domain {caller}",
                    self.doms[i].name, dom.0
                );
                Ok(0)
            }
            _ => Err(LifecycleError::WrongState.into()),
        }
    }

    /// Whether a live domain keeps the host running (`keep_host=true`).
    pub(super) fn host_kept(&self) -> bool {
        (0..self.doms.len()).any(|i| self.doms[i].life.keeps_host && !self.ended(i))
    }

    /// Gives an ended domain's memory back: its frames, its nested page tables (with the
    /// tables grant mappings added) and its VMCB. Its channels and grants were released by
    /// `domain_ended` first, so no other domain maps these frames any more; the device it held
    /// is quiesced before any frame is freed.
    pub(super) fn release(&mut self, id: DomainId) {
        let i = id.0 as usize;
        // The device first, whatever else happens: no DMA may outlive its holder.
        if let Some(grant) = self.doms[i].device.take() {
            super::device::quiesce(grant, &self.doms[i].name, i);
        }
        let d = &self.doms[i];
        if d.life.freed || d.refused || d.region.bytes == 0 {
            return;
        }
        let region = d.region;
        let vmcb = d.vmcb;
        let npt = (vmcb != 0).then(|| get(&self.mem, vmcb, field::N_CR3));
        let mem = &self.mem;
        let free = crate::memory::with_frames(|f| {
            if let Some(root) = npt {
                PageTable::from_root(root, 0).free_tables(mem, f);
            }
            for p in 0..region.bytes / PAGE_SIZE {
                let _ = f.free(PhysFrame::containing(region.hpa + p * PAGE_SIZE));
            }
            if vmcb != 0 {
                let _ = f.free(PhysFrame::containing(vmcb));
            }
            f.free_frames() as u64 * PAGE_SIZE
        });
        let d = &mut self.doms[i];
        d.life.freed = true;
        println!(
            "domain {} (id {i}): {} MiB returned to the hypervisor ({} MiB free)",
            d.name,
            region.bytes >> 20,
            free >> 20
        );
    }
}
