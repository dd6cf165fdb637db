//! Domains on AMD SVM with nested paging: reads the boot manifest, checks and enables SVM,
//! builds every domain (NPT, guest page tables, start-info page, VMCB, ASID), then runs them
//! under the priority scheduler with timer preemption until all have ended, containing every
//! fault a domain can cause. The logic lives in `warden-vmm`; this module drives the hardware.

mod dispatch;
mod ipc;
mod lifecycle;
mod timer;

use alloc::vec::Vec;
use heapless::String;
use warden_abi::{BARE_EXIT, HypercallArgs, VMMCALL_LEN};
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
    /// Run-time lifecycle state (`svm/lifecycle.rs`).
    life: lifecycle::Life,
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
/// domains; otherwise ends the run through the debug-exit device: success when every domain
/// met its documented outcome, failure otherwise.
pub(crate) fn run_domains(boot: &BootInfo) {
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
        Ok(asids) => println!("svm: SVM with nested paging, {asids} ASIDs: running {} domains", specs.len()),
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
        if !dom.refused {
            match mac.admit(i as u32, &dom, spec.category) {
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
        fx_owner: None,
        idle_halts: 0,
        host: lifecycle::HostParams { asids: check_cpu(0).unwrap_or(0), iopm, msrpm },
    };
    runner.run();
}

fn build(mem: &mut IdentityMem, boot: &BootInfo, spec: &DomainSpec<'_>, id: u32, params: VmcbParams) -> Dom {
    let mut dom = Dom {
        name: short(spec.name),
        label: short(spec.label),
        priority: spec.priority,
        expected: spec.expected,
        memory_bytes: spec.memory_mib << 20,
        region: Region { hpa: 0, bytes: 0 },
        vmcb: 0,
        regs: GuestRegs { rdi: warden_vmm::layout::START_INFO, ..GuestRegs::default() },
        fx: alloc::boxed::Box::new(FxState::new()),
        console: LineBuffer::new(),
        first_run: true,
        injected: false,
        end: None,
        refused: true,
        exits: 0,
        cpu_ticks: 0,
        life: lifecycle::Life::boot(spec),
    };
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
    /// The domain whose x87/SSE state is in the registers.
    fx_owner: Option<DomainId>,
    /// Times the CPU halted because no domain could run.
    idle_halts: u64,
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
                _ if self.doms.iter().all(|d| d.refused || d.end.is_some() || d.expected == Expected::Running)
                    && !self.host_kept() =>
                {
                    self.finish()
                }
                _ => match self.sched.pick() {
                    Some(id) => (id, timer::now()),
                    None if self.sched.next_deadline().is_some() => {
                        // Nothing runnable: halt until the next tick.
                        self.idle_halts += 1;
                        warden_hw::cpu::wait_for_interrupt();
                        warden_hw::cpu::disable_interrupts();
                        current = None;
                        continue;
                    }
                    None => self.finish(),
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
            if let Some(prev) = self.fx_owner {
                warden_hw::svm::fxsave(&mut self.doms[prev.0 as usize].fx);
            }
            warden_hw::svm::fxrstor(&self.doms[i].fx);
            self.fx_owner = Some(id);
        }
        if self.doms[i].first_run {
            set(&mut self.vmcbs, vmcb, field::TLB_CONTROL, vmcb::TLB_FLUSH_ALL);
        }
        if let Err(e) = warden_hw::svm::run(vmcb, self.host_save, &mut self.doms[i].regs) {
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
        match warden_vmm::exit::decode(code, info1, info2) {
            Exit::Interrupt | Exit::Nmi | Exit::Smi | Exit::Init => Next::Continue,
            Exit::Hypercall => self.hypercall(id, rip),
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
                set(&mut self.vmcbs, vmcb, field::RIP, rip + 2);
                Next::Continue
            }
            Exit::Hlt => {
                set(&mut self.vmcbs, vmcb, field::RIP, rip + 1);
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
                        let v = warden_hw::cpu::rdtsc();
                        set(&mut self.vmcbs, vmcb, field::RAX, v & 0xffff_ffff);
                        self.doms[i].regs.rdx = v >> 32;
                    }
                    MsrAction::InjectGp => {
                        println!("domain {} (id {}): #GP injected for RDMSR {msr:#x} at rip={rip:#x}", self.doms[i].name, id.0);
                        set(&mut self.vmcbs, vmcb, field::EVENT_INJ, EVENT_INJ_GP);
                        self.doms[i].injected = true;
                        return Next::Continue;
                    }
                    MsrAction::Kill => {
                        self.end(id, stop(Violation::MsrWrite { msr, value }));
                        return Next::Reschedule;
                    }
                }
                set(&mut self.vmcbs, vmcb, field::RIP, rip + 2);
                Next::Continue
            }
            Exit::Io(p) => {
                let intercept::PortAction::Kill = intercept::port(p.port, p.input);
                self.end(id, stop(Violation::Port { port: p.port, input: p.input }));
                Next::Reschedule
            }
            Exit::NestedPageFault(f) => {
                self.end(id, stop(Violation::Memory { gpa: f.gpa, write: f.write, fetch: f.fetch }));
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

    fn hypercall(&mut self, id: DomainId, rip: u64) -> Next {
        let i = id.0 as usize;
        let vmcb = self.doms[i].vmcb;
        let rax = get(&self.vmcbs, vmcb, field::RAX);
        set(&mut self.vmcbs, vmcb, field::RIP, rip + VMMCALL_LEN);
        if rax == BARE_EXIT {
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
        if let Some(call) = warden_abi::lifecycle::LifecycleCall::from_raw(rax) {
            return self.lifecycle_hypercall(id, call, args.args);
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
        d.end = Some(end);
        self.sched.set_state(id, State::Dead);
        self.domain_ended(id);
        self.release(id);
    }

    /// Every domain has ended (or waits forever): compares each with its documented outcome
    /// and leaves QEMU with the verdict.
    fn finish(&mut self) -> ! {
        timer::stop();
        let exits: u64 = self.doms.iter().map(|d| d.exits).sum();
        println!("scheduler: {} ticks, {exits} exits, {} idle halts", timer::now(), self.idle_halts);
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
            println!("domains: all {} domains met their documented outcome", self.doms.len());
            exit(ExitCode::Success);
        }
        println!("domains: FAILED: some domain did not meet its documented outcome");
        exit(ExitCode::Failure);
    }
}
