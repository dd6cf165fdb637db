//! Domains on AMD SVM with nested paging: reads the boot manifest, checks and enables SVM,
//! builds every domain (NPT, guest page tables, start-info page, VMCB, ASID), then runs them
//! under the priority scheduler with timer preemption until all have ended, containing every
//! fault a domain can cause. The logic lives in `warden-vmm`; this module drives the hardware.

mod device;
mod dispatch;
mod guard;
mod introspect;
mod ipc;
mod lifecycle;
mod timer;
mod tpm_grant;
mod vtpm;

use alloc::vec::Vec;
use heapless::String;
use warden_abi::HypercallArgs;
use warden_core::frame::{FrameAlloc, PhysFrame};
use warden_core::mem::{PAGE_SIZE, PhysMem};
use warden_core::multiboot::{BootInfo, Module};
use warden_hw::debug_exit::{ExitCode, exit};
use warden_hw::phys::IdentityMem;
use warden_hw::svm::{FxState, GuestRegs, VmcbWords};
use warden_vmm::construct::{self, Identity, Region, VmcbParams};
use warden_vmm::domain::{Diagnostic, End, Violation};
use warden_vmm::exit::Exit;
use warden_vmm::hypercall::LineBuffer;
use warden_vmm::intercept::{self, EVENT_INJ_GP, IOPM_BYTES, MSRPM_BYTES, MsrAction};
use warden_vmm::manifest::{self, DomainSpec, Expected};
use warden_vmm::sched::{DomainId, Scheduler, State};
use warden_vmm::vmcb::{self, field, get, set};

use dispatch::Action;

/// One domain as the hypervisor keeps it.
pub(super) struct Dom {
    name: String<32>,
    label: String<32>,
    priority: u8,
    expected: Expected,
    memory_bytes: u64,
    region: Region,
    /// Host-physical address of the VMCB page.
    vmcb: u64,
    regs: GuestRegs,
    /// x87/SSE state, switched when another domain gets the CPU.
    fx: alloc::boxed::Box<FxState>,
    console: LineBuffer,
    /// The next VMRUN must flush the TLB: the domain's first run, or its nested page tables
    /// changed (grant map/unmap). Set it after any NPT change.
    first_run: bool,
    /// An event is pending in EVENT_INJ (cleared after the next exit).
    injected: bool,
    end: Option<End>,
    /// Construction failed: the domain never ran.
    refused: bool,
    exits: u64,
    cpu_ticks: u64,
    /// The PCI function assigned by the manifest, if any.
    device: Option<device::Grant>,
    /// The platform TPM's locality page is mapped into it (`svm/tpm_grant.rs`).
    platform_tpm: bool,
    /// Host TSC when it last left the CPU (0: never ran); its TSC stands still while it is out.
    tsc_out: u64,
    /// (CR3, page, guest-physical page) of the code page last fetched from (`guard::next_rip`).
    code_page: Option<(u64, u64, u64)>,
    /// (CR3, RIP, last byte) of the instruction last found to be exactly what its exit expects.
    verified: Option<(u64, u64, u8)>,
    /// Run-time lifecycle state (`svm/lifecycle.rs`).
    life: lifecycle::Life,
    /// Checkpoint/restore state (`svm/introspect.rs`).
    intro: introspect::Intro,
}

impl Dom {
    /// A domain with no memory, VMCB or run yet: boot construction (`build`) and
    /// `DomainCreate` (`svm/lifecycle.rs`) fill it in.
    fn new(name: &str, label: &str, priority: u8, expected: Expected, memory_bytes: u64, life: lifecycle::Life) -> Dom {
        Dom {
            name: short(name),
            label: short(label),
            priority,
            expected,
            memory_bytes,
            region: Region { hpa: 0, bytes: 0 },
            vmcb: 0,
            regs: GuestRegs { rdi: warden_vmm::layout::START_INFO, ..GuestRegs::default() },
            fx: alloc::boxed::Box::new(FxState::new()),
            console: LineBuffer::new(),
            first_run: true,
            injected: false,
            end: None,
            refused: false,
            exits: 0,
            cpu_ticks: 0,
            tsc_out: 0,
            code_page: None,
            verified: None,
            // Devices come only from the boot manifest (`device::assign`).
            device: None,
            platform_tpm: false,
            life,
            intro: introspect::Intro::default(),
        }
    }
}

fn short(s: &str) -> String<32> {
    let mut out = String::new();
    for c in s.chars().take(32) {
        let _ = out.push(c);
    }
    out
}

fn module_bytes(mem: &IdentityMem, m: &Module) -> Vec<u8> {
    let mut v = alloc::vec![0u8; m.len() as usize];
    mem.read(m.start, &mut v);
    v
}

fn alloc_zeroed_run(mem: &mut IdentityMem, pages: usize) -> Option<u64> {
    let pa = crate::memory::with_frames(|f| f.alloc_contiguous(pages)).ok()?.addr();
    mem.zero(pa, pages as u64 * PAGE_SIZE);
    Some(pa)
}

fn fail(msg: core::fmt::Arguments<'_>) -> ! {
    println!("domains: FATAL: {msg}");
    exit(ExitCode::Failure);
}

/// Checks CPUID for SVM, nested paging and enough ASIDs for `domains` domains.
fn check_cpu(domains: usize) -> Result<u32, &'static str> {
    let Some(svm) = crate::cpuinfo::svm() else {
        return Err("the CPU does not offer SVM (CPUID 8000_0001 ECX[2])");
    };
    if !svm.nested_paging {
        return Err("the CPU does not offer nested paging (CPUID 8000_000A EDX[0])");
    }
    if (svm.asids as usize) <= domains {
        return Err("the CPU has too few ASIDs for the domains");
    }
    Ok(svm.asids)
}

/// Runs the boot manifest's domains. Returns only if there is no manifest or it lists no
/// domains. Once every domain documented to end has ended it prints the verdicts; with
/// `end_when_done` (the test mode `end_when=domains-done`) it then ends the run through the
/// debug-exit device (success when every domain met its documented outcome), otherwise the
/// hypervisor keeps running: no domain's end stops the platform.
pub(crate) fn run_domains(boot: &BootInfo, end_when_done: bool) {
    let mut mem = IdentityMem::new();
    let Some(manifest) = boot.modules.iter().find(|m| m.arg("kind") == Some("manifest")) else {
        return;
    };
    let text = module_bytes(&mem, manifest);
    let specs = match manifest::parse(&text) {
        Ok(s) => s,
        Err(e) => fail(format_args!("boot manifest refused: {e}")),
    };
    if specs.is_empty() {
        println!("domains: the manifest lists no domains");
        return;
    }
    match check_cpu(specs.len()) {
        Ok(asids) => println!(
            "svm: SVM with nested paging, {asids} ASIDs, NRIP {}, IBPB and RSB fill {}: running {} domains",
            crate::cpuinfo::svm().is_some_and(|s| s.nrip),
            warden_hw::svm::Ibpb::probe().is_some(),
            specs.len()
        ),
        Err(why) => fail(format_args!("cannot run domains: {why}")),
    }
    let hsave = alloc_zeroed_run(&mut mem, 1).unwrap_or_else(|| fail(format_args!("out of memory")));
    let host_save = alloc_zeroed_run(&mut mem, 1).unwrap_or_else(|| fail(format_args!("out of memory")));
    if let Err(e) = warden_hw::svm::enable(hsave) {
        fail(format_args!("enabling SVM: {e:?}"));
    }
    // One set of all-ones permission maps: every port and every MSR access exits.
    let iopm = alloc_zeroed_run(&mut mem, IOPM_BYTES / PAGE_SIZE as usize).unwrap_or_else(|| fail(format_args!("out of memory")));
    let msrpm = alloc_zeroed_run(&mut mem, MSRPM_BYTES / PAGE_SIZE as usize).unwrap_or_else(|| fail(format_args!("out of memory")));
    mem.write(iopm, &[0xff; IOPM_BYTES]);
    mem.write(msrpm, &[0xff; MSRPM_BYTES]);

    // The MAC policy is validated before any domain is built; without one nothing runs.
    let mut mac = ipc::Host::new(crate::mac::load(boot));
    let vtpms = vtpm::Vtpms::configure(&specs, mac.policy(), |name| {
        let m = boot.modules.iter().find(|m| m.arg("kind") == Some("image") && m.arg("name") == Some(name))?;
        Some(module_bytes(&mem, m))
    });
    let mut sched = Scheduler::new();
    let mut doms: Vec<Dom> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let id = sched
            .add(spec.priority)
            .unwrap_or_else(|| fail(format_args!("domain table full")));
        let mut dom = build(
            &mut mem,
            boot,
            spec,
            i as u32,
            VmcbParams {
                asid: i as u32 + 1,
                iopm_pa: iopm,
                msrpm_pa: msrpm,
            },
        );
        // What the manifest hands the domain besides memory: its device, the TPM's locality page.
        if !dom.refused
            && let Err(why) = device::assign(&mut mem, &mut mac, i as u32, spec, &mut dom, &doms)
                .and_then(|()| tpm_grant::grant(&mut mem, &mut mac, i as u32, spec, &mut dom))
        {
            println!("domain {} (id {i}) refused: {why}", spec.name);
            dom.refused = true;
        }
        dom.refused |= vtpms.refuses(i);
        if !dom.refused {
            match mac.admit(i as u32, &dom, spec.category) {
                // A domain with a vTPM waits until its vTPM domain has measured its launch.
                ipc::Admission::Run if vtpms.held(i) => sched.set_state(id, State::Blocked { until: None }),
                ipc::Admission::Run => sched.set_state(id, State::Runnable),
                ipc::Admission::BehindWall => {}
                ipc::Admission::Refused => dom.refused = true,
            }
        }
        if dom.refused {
            sched.set_state(id, State::Dead);
        }
        doms.push(dom);
    }
    timer::start();
    let mut runner = Runner {
        mem,
        sched,
        doms,
        host_save,
        vmcbs: VmcbWords::new(),
        mac,
        vtpm: vtpms,
        fx_owner: None,
        idle_halts: 0,
        cr4_allowed: guard::cr4_allowed(),
        end_when_done,
        reported: false,
        nrip: crate::cpuinfo::svm().is_some_and(|s| s.nrip),
        ibpb: warden_hw::svm::Ibpb::probe(),
        host: lifecycle::HostParams { asids: check_cpu(0).unwrap_or(0), iopm, msrpm },
    };
    runner.run();
}

fn build(mem: &mut IdentityMem, boot: &BootInfo, spec: &DomainSpec<'_>, id: u32, params: VmcbParams) -> Dom {
    let mut dom = Dom::new(spec.name, spec.label, spec.priority, spec.expected, spec.memory_mib << 20, lifecycle::Life::boot(spec));
    dom.refused = true;
    let refuse = |why: core::fmt::Arguments<'_>| println!("domain {} (id {id}) refused: {why}", spec.name);
    let Some(image) = boot.modules.iter().find(|m| m.arg("kind") == Some("image") && m.arg("name") == Some(spec.image)) else {
        refuse(format_args!("no image module named {}", spec.image));
        return dom;
    };
    let elf = module_bytes(mem, image);
    let pages = (dom.memory_bytes / PAGE_SIZE) as usize;
    let Some(hpa) = crate::memory::with_frames(|f| f.alloc_contiguous(pages)).ok().map(PhysFrame::addr) else {
        refuse(format_args!("no {} MiB of contiguous memory left", spec.memory_mib));
        return dom;
    };
    dom.region = Region { hpa, bytes: dom.memory_bytes };
    let who = Identity { id, name: spec.name, label: spec.label, priority: spec.priority, args: spec.args };
    let built = crate::memory::with_frames(|f| construct::build(mem, f, dom.region, &elf, who));
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            refuse(format_args!("{e}"));
            crate::memory::with_frames(|f| {
                for p in 0..pages as u64 {
                    let _ = f.free(PhysFrame::containing(hpa + p * PAGE_SIZE));
                }
            });
            return dom;
        }
    };
    let v = construct::initial_vmcb(&built, params);
    if let Err(problem) = v.check() {
        refuse(format_args!("VMCB would be refused: {problem:?}"));
        return dom;
    }
    let Ok(vmcb_frame) = crate::memory::with_frames(|f| f.alloc()) else {
        refuse(format_args!("out of memory for the VMCB"));
        return dom;
    };
    let mut page = [0u8; 4096];
    v.encode(&mut page);
    mem.write(vmcb_frame.addr(), &page);
    dom.vmcb = vmcb_frame.addr();
    lifecycle::map_boot_images(mem, boot, spec, &built, &mut dom);
    dom.refused = false;
    println!(
        "domain {} (id {id}) built: {} MiB at {:#x}, entry {:#x}, priority {}, label {}, ASID {}",
        spec.name, spec.memory_mib, hpa, built.image.entry, spec.priority, spec.label, params.asid
    );
    dom
}

struct Runner {
    mem: IdentityMem,
    sched: Scheduler,
    doms: Vec<Dom>,
    host_save: u64,
    /// Word access to the VMCBs (the exit path's hot loads and stores).
    vmcbs: VmcbWords,
    /// Policy, audit ring, event channels and grants.
    mac: ipc::Host,
    /// vTPM instances, their clients and connections.
    vtpm: vtpm::Vtpms,
    /// The domain whose x87/SSE state is in the registers.
    fx_owner: Option<DomainId>,
    /// Times the CPU halted because no domain could run.
    idle_halts: u64,
    /// CR4 bits a domain may set (`guard::cr4_allowed`).
    cr4_allowed: u64,
    /// End the run once the domains are done (`end_when=domains-done`), else keep running.
    end_when_done: bool,
    /// The verdicts were printed (the hypervisor goes on without `end_when_done`).
    reported: bool,
    /// The CPU saves the next RIP on intercepts (NRIP); QEMU 7.2 does not.
    nrip: bool,
    /// Branch-predictor barrier between domains, and the RSB fill after every exit, where the
    /// CPU has speculation controls (QEMU's qemu64 reports none).
    ibpb: Option<warden_hw::svm::Ibpb>,
    /// What creating domains at run time needs.
    host: lifecycle::HostParams,
}

/// What the exit handler decided about the running domain.
enum Next {
    Continue,
    Reschedule,
}

impl Runner {
    fn run(&mut self) -> ! {
        let mut current: Option<(DomainId, u64)> = None; // (domain, tick when picked)
        let mut last_tick = timer::now();
        loop {
            let now = timer::now();
            if now != last_tick {
                if let Some((id, _)) = current {
                    self.doms[id.0 as usize].cpu_ticks += now - last_tick;
                }
                last_tick = now;
                self.sched.wake_expired(now);
                if let Some((id, since)) = current
                    && self.sched.should_preempt(id, now - since)
                {
                    current = None;
                }
            }
            let (id, since) = match current {
                Some(c) if self.sched.state(c.0) == State::Runnable => c,
                // Done when every domain that is documented to end has ended, unless a live
                // domain keeps the host (`keep_host=true`: it ends the run with HostShutdown).
                _ if !self.reported
                    && self.doms.iter().all(|d| d.refused || d.end.is_some() || d.expected == Expected::Running)
                    && !self.host_kept() =>
                {
                    self.finish();
                    continue;
                }
                _ => match self.sched.pick() {
                    Some(id) => (id, timer::now()),
                    None if self.sched.next_deadline().is_some() || self.reported => {
                        // Nothing runnable: halt until the next tick.
                        self.idle_halts += 1;
                        warden_hw::cpu::wait_for_interrupt();
                        warden_hw::cpu::disable_interrupts();
                        current = None;
                        continue;
                    }
                    None => {
                        self.finish();
                        continue;
                    }
                },
            };
            current = Some((id, since));
            if let Next::Reschedule = self.run_once(id) {
                current = None;
            }
        }
    }

    /// Enters domain `id` once and handles its exit.
    fn run_once(&mut self, id: DomainId) -> Next {
        let i = id.0 as usize;
        let vmcb = self.doms[i].vmcb;
        if self.fx_owner != Some(id) {
            self.switch_to(id);
        }
        if self.doms[i].first_run {
            set(&mut self.vmcbs, vmcb, field::TLB_CONTROL, vmcb::TLB_FLUSH_ALL);
        }
        if let Err(e) = warden_hw::svm::run(vmcb, self.host_save, &mut self.doms[i].regs, self.ibpb.is_some()) {
            self.end(id, End::Stopped { violation: Violation::InvalidState, rip: 0 });
            println!("domain {} refused by the VMRUN wrapper: {e:?}", self.doms[i].name);
            return Next::Reschedule;
        }
        let d = &mut self.doms[i];
        d.exits += 1;
        // The flush is done; ASIDs are unique, so runs without NPT changes need none.
        if d.first_run {
            d.first_run = false;
            set(&mut self.vmcbs, vmcb, field::TLB_CONTROL, 0);
        }
        if d.injected {
            d.injected = false;
            set(&mut self.vmcbs, vmcb, field::EVENT_INJ, 0);
        }
        let code = get(&self.vmcbs, vmcb, field::EXIT_CODE);
        let info1 = get(&self.vmcbs, vmcb, field::EXIT_INFO1);
        let info2 = get(&self.vmcbs, vmcb, field::EXIT_INFO2);
        let rip = get(&self.vmcbs, vmcb, field::RIP);
        let stop = |violation| End::Stopped { violation, rip };
        let exit = warden_vmm::exit::decode(code, info1, info2);
        // Instructions the domain resumes after: their length from NRIP or their exact bytes.
        let insn = match exit {
            Exit::Hypercall => Some((guard::VMMCALL, "prefixed VMMCALL")),
            Exit::Cpuid => Some((guard::CPUID, "prefixed CPUID")),
            Exit::Hlt => Some((guard::HLT, "prefixed HLT")),
            Exit::Msr { write: false } => Some((guard::RDMSR, "prefixed RDMSR")),
            Exit::Msr { write: true } => Some((guard::WRMSR, "prefixed WRMSR")),
            _ => None,
        };
        let next = match insn.map(|(bytes, name)| (self.next_rip(i, rip, bytes), name)) {
            None => rip,
            Some((Some(next), _)) => next,
            Some((None, name)) => {
                self.end(id, stop(Violation::Instruction(name)));
                return Next::Reschedule;
            }
        };
        match exit {
            Exit::Interrupt | Exit::Nmi | Exit::Smi | Exit::Init => Next::Continue,
            Exit::Hypercall => self.hypercall(id, next),
            Exit::Cpuid => {
                let d = &mut self.doms[i];
                let leaf = get(&self.vmcbs, vmcb, field::RAX) as u32;
                let sub = d.regs.rcx as u32;
                let h = warden_hw::cpu::cpuid(leaf, sub);
                let host = warden_vmm::cpuid::Regs { eax: h.eax, ebx: h.ebx, ecx: h.ecx, edx: h.edx };
                let r = warden_vmm::cpuid::filter(leaf, sub, host, id.0);
                set(&mut self.vmcbs, vmcb, field::RAX, u64::from(r.eax));
                d.regs.rbx = u64::from(r.ebx);
                d.regs.rcx = u64::from(r.ecx);
                d.regs.rdx = u64::from(r.edx);
                set(&mut self.vmcbs, vmcb, field::RIP, next);
                Next::Continue
            }
            Exit::CrWrite(cr) => self.cr_write(id, cr, rip),
            Exit::Exception { vector: v @ (1 | 17), .. } => {
                self.end(id, stop(Violation::Exception(v)));
                Next::Reschedule
            }
            Exit::Hlt => {
                set(&mut self.vmcbs, vmcb, field::RIP, next);
                Next::Reschedule
            }
            Exit::Msr { write } => {
                let d = &mut self.doms[i];
                let msr = d.regs.rcx as u32;
                let value = (d.regs.rdx << 32) | (get(&self.vmcbs, vmcb, field::RAX) & 0xffff_ffff);
                match intercept::msr(msr, write, value) {
                    MsrAction::ReadField(f, mask) => {
                        let v = get(&self.vmcbs, vmcb, f) & mask;
                        set(&mut self.vmcbs, vmcb, field::RAX, v & 0xffff_ffff);
                        self.doms[i].regs.rdx = v >> 32;
                    }
                    MsrAction::WriteField(f) => set(&mut self.vmcbs, vmcb, f, value),
                    MsrAction::ReadTsc => {
                        let v = warden_hw::cpu::rdtsc().wrapping_add(get(&self.vmcbs, vmcb, field::TSC_OFFSET));
                        set(&mut self.vmcbs, vmcb, field::RAX, v & 0xffff_ffff);
                        self.doms[i].regs.rdx = v >> 32;
                    }
                    MsrAction::InjectGp => {
                        let line = format_args!("domain {} (id {}): #GP injected for RDMSR {msr:#x} at rip={rip:#x}", self.doms[i].name, id.0);
                        ipc::charged(&mut self.mac.budgets, id.0, line);
                        set(&mut self.vmcbs, vmcb, field::EVENT_INJ, EVENT_INJ_GP);
                        self.doms[i].injected = true;
                        return Next::Continue;
                    }
                    MsrAction::Kill => {
                        self.end(id, stop(Violation::MsrWrite { msr, value }));
                        return Next::Reschedule;
                    }
                }
                set(&mut self.vmcbs, vmcb, field::RIP, next);
                Next::Continue
            }
            Exit::Io(p) => {
                let intercept::PortAction::Kill = intercept::port(p.port, p.input);
                self.end(id, stop(Violation::Port { port: p.port, input: p.input }));
                Next::Reschedule
            }
            Exit::NestedPageFault(f) => {
                // A write to a page dirty logging write-protected: recorded, made writable.
                if self.dirty_fault(i, &f) {
                    return Next::Continue;
                }
                self.end(id, stop(Violation::Memory { gpa: f.gpa, write: f.write, fetch: f.fetch, present: f.present }));
                Next::Reschedule
            }
            Exit::Shutdown => {
                let cr2 = get(&self.vmcbs, vmcb, field::CR2);
                self.end(id, stop(Violation::TripleFault { cr2 }));
                Next::Reschedule
            }
            Exit::InvalidState => {
                self.end(id, stop(Violation::InvalidState));
                Next::Reschedule
            }
            Exit::ForbiddenInstruction(name) => {
                self.end(id, stop(Violation::Instruction(name)));
                Next::Reschedule
            }
            Exit::Exception { .. } | Exit::TaskSwitch | Exit::Unknown(_) => {
                self.end(id, stop(Violation::UnexpectedExit(code)));
                Next::Reschedule
            }
        }
    }

    fn hypercall(&mut self, id: DomainId, next: u64) -> Next {
        let i = id.0 as usize;
        let vmcb = self.doms[i].vmcb;
        let rax = get(&self.vmcbs, vmcb, field::RAX);
        set(&mut self.vmcbs, vmcb, field::RIP, next);
        // Only the domain's kernel may call: ring-3 code inside a domain gets nothing (finding 6).
        if get(&self.vmcbs, vmcb, field::CPL) != 0 {
            set(&mut self.vmcbs, vmcb, field::RAX, warden_abi::Status::NotKernel as u64);
            return Next::Continue;
        }
        self.hypercall_entry(id);
        let r = &self.doms[i].regs;
        let args = HypercallArgs {
            call: rax,
            args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8],
        };
        if let Some(call) = warden_abi::ipc::IpcCall::from_raw(rax) {
            return self.ipc_hypercall(id, call, args.args);
        }
        if let Some(call) = warden_abi::device::DeviceCall::from_raw(rax) {
            return self.device_hypercall(id, call, args.args);
        }
        if let Some(call) = warden_abi::lifecycle::LifecycleCall::from_raw(rax) {
            return self.lifecycle_hypercall(id, call, args.args);
        }
        if let Some(call) = warden_abi::vtpm::VtpmCall::from_raw(rax) {
            return self.vtpm_hypercall(id, call, args.args);
        }
        if let Some(call) = warden_abi::introspect::IntrospectCall::from_raw(rax) {
            return self.introspect_hypercall(id, call, args.args);
        }
        let (status, value, action) =
            dispatch::dispatch(&mut self.mem, &mut self.doms[i], id.0, args, &mut self.mac);
        set(&mut self.vmcbs, vmcb, field::RAX, status as u64);
        self.doms[i].regs.rdx = value;
        match action {
            Action::Resume => Next::Continue,
            Action::Yield => Next::Reschedule,
            Action::Block(ticks) => {
                let until = ticks.map(|t| timer::now().saturating_add(t));
                self.sched.set_state(id, State::Blocked { until });
                Next::Reschedule
            }
            Action::End(reason) => {
                self.end(id, End::Shutdown(reason));
                Next::Reschedule
            }
        }
    }

    /// Stops a domain and prints its one-line diagnostic; every other domain keeps running.
    fn end(&mut self, id: DomainId, end: End) {
        let d = &mut self.doms[id.0 as usize];
        let name = d.name.as_str();
        d.console.flush(&mut |line: &str| println!("[{name}] {line}"));
        println!("{}", Diagnostic { name, id: id.0, end });
        if let Some(n) = self.mac.budgets.get_mut(id.0 as usize).map(|b| b.take_suppressed()).filter(|&n| n > 0) {
            println!("domain {name} (id {}): {n} lines were suppressed by its print budget", id.0);
        }
        d.end = Some(end);
        self.sched.set_state(id, State::Dead);
        self.vtpm_domain_ended(id);
        self.domain_ended(id);
        self.release(id);
    }

    /// Every domain has ended (or waits forever): compares each with its documented outcome;
    /// leaves QEMU with the verdict if the run asked for it, else says so and keeps running.
    fn finish(&mut self) {
        let all_ok = self.verdict();
        if self.end_when_done {
            Self::exit_with(all_ok);
        }
        self.reported = true;
        println!("domains: the hypervisor keeps running (a run ends with the domains only under end_when=domains-done)");
    }

    /// Leaves QEMU with the verdict (the test mode `end_when=domains-done`, or a host shutdown).
    fn exit_with(all_ok: bool) -> ! {
        timer::stop();
        exit(if all_ok { ExitCode::Success } else { ExitCode::Failure });
    }

    /// Prints the counters and one verdict line per domain; whether all met their outcome.
    fn verdict(&mut self) -> bool {
        let exits: u64 = self.doms.iter().map(|d| d.exits).sum();
        let nmis = crate::exceptions::NMIS.load(core::sync::atomic::Ordering::Relaxed);
        println!("scheduler: {} ticks, {exits} exits, {} idle halts, {nmis} NMIs", timer::now(), self.idle_halts);
        let mut all_ok = true;
        for (i, d) in self.doms.iter().enumerate() {
            if d.life.created {
                // Created at run time: no documented outcome to meet.
                println!("domain {} (id {i}): created at run time, {}", d.name, self.state_name(i));
                continue;
            }
            let alive = matches!(self.sched.state(DomainId(i as u32)), State::Runnable | State::Blocked { .. });
            let ok = match (d.end, d.expected) {
                _ if d.refused => false,
                (None, Expected::Running) => alive,
                (Some(end), expected) => end.matches(expected),
                (None, _) => false,
            };
            all_ok &= ok;
            println!(
                "domain {} (id {i}): expected {}, {}",
                d.name,
                d.expected.name(),
                if ok { "met" } else { "NOT met" }
            );
        }
        if all_ok {
            let judged = self.doms.iter().filter(|d| !d.life.created).count();
            println!("domains: all {judged} domains met their documented outcome");
        } else {
            println!("domains: FAILED: some domain did not meet its documented outcome");
        }
        all_ok
    }
}
