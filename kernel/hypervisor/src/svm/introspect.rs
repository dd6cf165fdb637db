//! The checkpoint/restore mechanism (`INTROSPECT_BASE..`, issue 13 part A): a deprivileged
//! service reads a paused domain's pages and vCPU record, and rebuilds it as a new domain
//! that continues where it stopped. Mechanism only: what the service does with the bytes
//! (format, encryption, signature) is its own business (docs/checkpoint.md).
//!
//! Order of every call, as the lifecycle calls: resolve the target, **check the policy** (one
//! site per call, `warden_ipc::introspect::introspect_requirement`; audited as the policy says),
//! check the state, validate the buffers (an output buffer must be writable by the caller
//! through its own page tables), then act. A refused call changes nothing.

use warden_abi::Status;
use warden_abi::introspect::{IntrospectCall, IntrospectError, TargetInfo, VcpuRecord, gpr};
use warden_abi::{START_INFO_MAGIC, StartInfo, to_fixed};
use warden_core::frame::FrameAlloc;
use warden_core::mem::{PAGE_SIZE, PhysMem};
use warden_core::paging::PageTable;
use warden_hw::svm::{FxState, GuestRegs};
use warden_ipc::introspect::introspect_requirement;
use warden_ipc::{DomId, Refusal};
use warden_vmm::construct::{self, VmcbParams};
use warden_vmm::domain::reported_state;
use warden_vmm::layout::START_INFO;
use warden_vmm::sched::{DomainId, State};
use warden_vmm::vcpu;
use warden_vmm::vmcb::{field, get, set};

use alloc::vec::Vec;
use warden_core::paging::{MapError, PageSize, flags};

use super::lifecycle::{Done, Fail};
use super::{Next, Runner};

/// A domain's checkpoint/restore state.
#[derive(Debug, Default)]
pub(super) struct Intro {
    /// Created by `RestoreCreate` and not yet given its vCPU: only the restore calls apply.
    pub(super) restoring: bool,
    /// Dirty logging: one bit per page written since the last fetch (`DirtyStart`).
    dirty: Option<Vec<u64>>,
}

fn refused(e: IntrospectError) -> Fail {
    Fail::Refused(Refusal {
        status: Status::InvalidArgument,
        detail: e as u64,
    })
}

fn dom_id(raw: u64) -> Result<DomId, Fail> {
    u32::try_from(raw)
        .map(DomId)
        .map_err(|_| Fail::Refused(warden_abi::lifecycle::LifecycleError::NoSuchDomain.into()))
}

fn gprs_of(r: &GuestRegs) -> [u64; 16] {
    // RAX and RSP live in the VMCB (filled in by `vcpu::capture`).
    [
        0, r.rcx, r.rdx, r.rbx, 0, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13,
        r.r14, r.r15,
    ]
}

fn regs_of(g: &[u64; 16]) -> GuestRegs {
    GuestRegs {
        rbx: g[gpr::RBX],
        rcx: g[gpr::RCX],
        rdx: g[gpr::RDX],
        rsi: g[gpr::RSI],
        rdi: g[gpr::RDI],
        rbp: g[gpr::RBP],
        r8: g[8],
        r9: g[9],
        r10: g[10],
        r11: g[11],
        r12: g[12],
        r13: g[13],
        r14: g[14],
        r15: g[15],
    }
}

impl Runner {
    /// Handles an introspection hypercall (numbers `INTROSPECT_BASE..`) of domain `id`.
    pub(super) fn introspect_hypercall(
        &mut self,
        id: DomainId,
        call: IntrospectCall,
        args: [u64; 5],
    ) -> Next {
        let i = id.0 as usize;
        let (status, value) = match self.introspect(id.0, call, args) {
            Ok(v) => (Status::Ok, v),
            Err(Fail::Denied) => (Status::Denied, 0),
            Err(Fail::Refused(r)) => (r.status, r.detail),
        };
        set(&mut self.mem, self.doms[i].vmcb, field::RAX, status as u64);
        self.doms[i].regs.rdx = value;
        Next::Continue
    }

    fn introspect(&mut self, caller: u32, call: IntrospectCall, a: [u64; 5]) -> Done {
        let (hc, req) = (call as u64, introspect_requirement(call));
        match call {
            IntrospectCall::TargetInfo => {
                let dom = dom_id(a[0])?;
                let i = self.checked_target_for(caller, dom, hc, req, false)?;
                let out = self.caller_out_range(caller, a[1], TargetInfo::SIZE as u64)?;
                let d = &self.doms[i];
                let info = TargetInfo {
                    domain_id: dom.0,
                    state: reported_state(self.sched.state(DomainId(dom.0)), self.ended(i)) as u32,
                    memory_bytes: d.memory_bytes,
                    priority: u32::from(d.priority),
                    in_flight: u32::from(self.mac.in_flight(dom.0)),
                    name: to_fixed(&d.name),
                    label: to_fixed(&d.label),
                };
                self.mem.write(out, &info.to_bytes());
                Ok(0)
            }
            IntrospectCall::ReadPage => {
                let i = self.captured(caller, a[0], hc, req)?;
                let at = self.page(i, a[1])?;
                let out = self.caller_out_range(caller, a[2], PAGE_SIZE)?;
                self.copy_page(at, out);
                Ok(0)
            }
            IntrospectCall::GetVcpu => {
                let i = self.captured(caller, a[0], hc, req)?;
                let out = self.caller_out_range(caller, a[1], VcpuRecord::SIZE as u64)?;
                let rec = self.vcpu_record(i);
                self.mem.write(out, &rec.to_bytes());
                Ok(0)
            }
            IntrospectCall::RestoreCreate => {
                let id = self.create_domain(caller, a[0], hc, req)?;
                let d = &mut self.doms[id as usize];
                d.intro.restoring = true;
                // Nothing of the frames' previous owner may show through a page the restore
                // does not write.
                let r = d.region;
                self.mem.zero(r.hpa, r.bytes);
                println!(
                    "introspect: domain {} (id {id}) restoring, by domain {caller}",
                    self.doms[id as usize].name
                );
                Ok(u64::from(id))
            }
            IntrospectCall::RestorePage => {
                let i = self.restoring(caller, a[0], hc, req)?;
                let at = self.page(i, a[1])?;
                let src = self.caller_range(caller, a[2], PAGE_SIZE)?;
                self.copy_page(src, at);
                Ok(0)
            }
            IntrospectCall::DirtyStart => {
                let i = self.tracked(caller, a[0], hc, req)?;
                self.dirty_start(i)?;
                Ok(0)
            }
            IntrospectCall::DirtyFetch => {
                let i = self.tracked(caller, a[0], hc, req)?;
                self.dirty_fetch(caller, i, a[1], a[2])
            }
            IntrospectCall::SetVcpu => {
                let i = self.restoring(caller, a[0], hc, req)?;
                let src = self.caller_range(caller, a[1], VcpuRecord::SIZE as u64)?;
                let mut raw = [0u8; VcpuRecord::SIZE];
                self.mem.read(src, &mut raw);
                self.restore_vcpu(caller, i, &VcpuRecord::from_bytes(&raw))?;
                Ok(0)
            }
        }
    }

    /// A capture target: checked, not the caller, paused by the lifecycle call, built, not
    /// being restored, holding nothing a checkpoint does not capture.
    fn captured(
        &mut self,
        caller: u32,
        raw: u64,
        hc: u64,
        req: (warden_policy::Class, warden_policy::PermSet),
    ) -> Result<usize, Fail> {
        let i = self.tracked(caller, raw, hc, req)?;
        if self.sched.state(DomainId(i as u32)) != State::Paused {
            return Err(refused(IntrospectError::Running));
        }
        if self.mac.in_flight(i as u32) {
            return Err(refused(IntrospectError::InFlight));
        }
        Ok(i)
    }

    /// A dirty-logging target (and the first checks of a capture target): checked, not the
    /// caller, built, not being restored, no boot windows, device or vTPM (their mappings live
    /// in the nested tables that tracking replaces; their state is not captured).
    fn tracked(
        &mut self,
        caller: u32,
        raw: u64,
        hc: u64,
        req: (warden_policy::Class, warden_policy::PermSet),
    ) -> Result<usize, Fail> {
        let dom = dom_id(raw)?;
        let i = self.checked_target_for(caller, dom, hc, req, true)?;
        let d = &self.doms[i];
        if d.intro.restoring || !d.life.built {
            return Err(refused(IntrospectError::NotRestoring));
        }
        if !d.life.windows.is_empty() {
            return Err(refused(IntrospectError::HasWindows));
        }
        if self.attached(i) {
            return Err(refused(IntrospectError::Attached));
        }
        Ok(i)
    }

    /// Whether domain `i` holds a PCI device or the platform TPM's locality page (mapped in its
    /// nested tables, which dirty tracking would replace) or has or serves a vTPM.
    fn attached(&self, i: usize) -> bool {
        self.doms[i].device.is_some() || self.doms[i].platform_tpm || self.vtpm.involves(i)
    }

    /// `DirtyStart`: nested tables with read-only 4 KiB leaves replace domain `i`'s own (whose
    /// tables are freed), and an empty bitmap starts. Grant mappings would live in the replaced
    /// tables: a domain holding grants or channels is refused.
    fn dirty_start(&mut self, i: usize) -> Result<(), Fail> {
        if self.mac.in_flight(i as u32) {
            return Err(refused(IntrospectError::InFlight));
        }
        let no_memory = || Fail::Refused(warden_abi::lifecycle::LifecycleError::NoMemory.into());
        let d = &self.doms[i];
        let pages = (d.memory_bytes / PAGE_SIZE) as usize;
        let mut bits = Vec::new();
        bits.try_reserve_exact(pages.div_ceil(64))
            .map_err(|_| no_memory())?;
        bits.resize(pages.div_ceil(64), 0u64);
        let (region, vmcb) = (d.region, d.vmcb);
        let old = get(&self.mem, vmcb, field::N_CR3);
        let mem = &mut self.mem;
        let npt = crate::memory::with_frames(|f| construct::build_npt_tracked(mem, f, region))
            .map_err(|_| no_memory())?;
        set(&mut self.mem, vmcb, field::N_CR3, npt);
        crate::memory::with_frames(|f| PageTable::from_root(old, 0).free_tables(&self.mem, f));
        let d = &mut self.doms[i];
        d.first_run = true;
        d.intro.dirty = Some(bits);
        println!(
            "introspect: dirty logging of domain {} (id {i}) started: {pages} pages write-protected",
            d.name
        );
        Ok(())
    }

    /// `DirtyFetch`: the bitmap into the caller's buffer, cleared, its pages protected again.
    fn dirty_fetch(&mut self, caller: u32, i: usize, gpa: u64, len: u64) -> Done {
        let d = &self.doms[i];
        let Some(bits) = d.intro.dirty.as_ref() else {
            return Err(refused(IntrospectError::NotTracking));
        };
        let pages = d.memory_bytes / PAGE_SIZE;
        let need = pages.div_ceil(8);
        if len < need {
            return Err(refused(IntrospectError::ShortBitmap));
        }
        let out = self.caller_out_range(caller, gpa, need)?;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(need as usize)
            .map_err(|_| Fail::Refused(warden_abi::lifecycle::LifecycleError::NoMemory.into()))?;
        bytes.extend(
            bits.iter()
                .flat_map(|w| w.to_le_bytes())
                .take(need as usize),
        );
        self.mem.write(out, &bytes);
        let d = &mut self.doms[i];
        let npt = PageTable::from_root(get(&self.mem, d.vmcb, field::N_CR3), 0);
        let bits = d.intro.dirty.as_mut().expect("checked above");
        let mut count = 0u64;
        for (w, word) in bits.iter_mut().enumerate() {
            let mut rest = *word;
            while rest != 0 {
                let p = w as u64 * 64 + u64::from(rest.trailing_zeros());
                rest &= rest - 1;
                count += 1;
                let mem = &mut self.mem;
                let _ =
                    crate::memory::with_frames(|f| reprotect(mem, f, &npt, d.region.hpa, p, false));
            }
            *word = 0;
        }
        d.first_run = true;
        Ok(count)
    }

    /// A nested page fault of domain `i`: if it is a write to a page dirty logging protected,
    /// the page is recorded and made writable, and the domain resumes (`true`). Anything else
    /// (`false`) stops the domain as before.
    pub(super) fn dirty_fault(&mut self, i: usize, f: &warden_vmm::exit::NestedFault) -> bool {
        let d = &mut self.doms[i];
        let Some(bits) = d.intro.dirty.as_mut() else {
            return false;
        };
        let p = f.gpa / PAGE_SIZE;
        if !f.present
            || !f.write
            || f.fetch
            || f.gpa >= d.memory_bytes
            || bits[(p / 64) as usize] & 1 << (p % 64) != 0
        {
            return false;
        }
        let npt = PageTable::from_root(get(&self.mem, d.vmcb, field::N_CR3), 0);
        // Only a leaf tracking made read-only: the domain's own page, at its own frame.
        if npt.translate(&self.mem, p * PAGE_SIZE) != Some(d.region.hpa + p * PAGE_SIZE) {
            return false;
        }
        let mem = &mut self.mem;
        if crate::memory::with_frames(|fr| reprotect(mem, fr, &npt, d.region.hpa, p, true)).is_err()
        {
            return false;
        }
        bits[(p / 64) as usize] |= 1 << (p % 64);
        d.first_run = true;
        true
    }

    /// A restore target: checked, and created by `RestoreCreate` without its vCPU yet.
    fn restoring(
        &mut self,
        caller: u32,
        raw: u64,
        hc: u64,
        req: (warden_policy::Class, warden_policy::PermSet),
    ) -> Result<usize, Fail> {
        let dom = dom_id(raw)?;
        let i = self.checked_target_for(caller, dom, hc, req, true)?;
        let d = &self.doms[i];
        // Only a domain that nothing else has built: never one `DomainBuild` gave a VMCB.
        if !d.intro.restoring || d.life.built || d.vmcb != 0 || self.sched.state(DomainId(dom.0)) != State::Building {
            return Err(refused(IntrospectError::NotRestoring));
        }
        Ok(i)
    }

    /// Copies one page between host-physical addresses both sides were validated for.
    fn copy_page(&mut self, from: u64, to: u64) {
        let mut page = [0u8; PAGE_SIZE as usize];
        self.mem.read(from, &mut page);
        self.mem.write(to, &page);
    }

    /// The host-physical address of page `index` of domain `i`.
    fn page(&self, i: usize, index: u64) -> Result<u64, Fail> {
        let d = &self.doms[i];
        if index >= d.memory_bytes / PAGE_SIZE {
            return Err(refused(IntrospectError::PageOutOfRange));
        }
        Ok(d.region.hpa + index * PAGE_SIZE)
    }

    /// The vCPU record of paused domain `i`.
    fn vcpu_record(&mut self, i: usize) -> VcpuRecord {
        // Its x87/SSE state is in the registers if it was the last to run (never the case for
        // a paused target while the caller runs, but cheap to make certain).
        if self.fx_owner == Some(DomainId(i as u32)) {
            warden_hw::svm::fxsave(&mut self.doms[i].fx);
        }
        let d = &self.doms[i];
        let mut page = [0u8; 4096];
        self.mem.read(d.vmcb, &mut page);
        // Its TSC stands still while it is out (`guard::switch_to`): the value it last saw.
        let offset = get(&self.mem, d.vmcb, field::TSC_OFFSET);
        let tsc = if d.tsc_out == 0 {
            0
        } else {
            d.tsc_out.wrapping_add(offset)
        };
        vcpu::capture(&page, gprs_of(&d.regs), d.fx.image(), tsc)
    }

    /// `SetVcpu`: checks the record, gives domain `i` nested page tables and a VMCB holding it,
    /// measures the domain (memory and vCPU digests) and marks it built.
    fn restore_vcpu(&mut self, caller: u32, i: usize, rec: &VcpuRecord) -> Result<(), Fail> {
        let d = &self.doms[i];
        let bad = |p: warden_abi::introspect::VcpuProblem| {
            Fail::Refused(Refusal {
                status: Status::InvalidArgument,
                detail: p.detail(),
            })
        };
        vcpu::check(rec, d.memory_bytes, self.cr4_allowed).map_err(bad)?;
        let fx =
            FxState::from_image(&rec.fx).ok_or(bad(warden_abi::introspect::VcpuProblem::Fpu))?;
        let region = d.region;
        let memory = crate::measure::sha256_hex_with(|h| {
            let mut page = [0u8; PAGE_SIZE as usize];
            for p in 0..region.bytes / PAGE_SIZE {
                self.mem.read(region.hpa + p * PAGE_SIZE, &mut page);
                h.update(&page);
            }
        });
        let text = alloc::format!(
            "restored:{} id={i} label={} memory=sha256:{memory} vcpu=sha256:{}",
            d.name,
            d.label,
            crate::measure::sha256_hex(&rec.to_bytes())
        );
        let no_memory = || Fail::Refused(warden_abi::lifecycle::LifecycleError::NoMemory.into());
        let mem = &mut self.mem;
        let npt = crate::memory::with_frames(|f| construct::build_npt(mem, f, region))
            .map_err(|_| no_memory())?;
        let params = VmcbParams {
            asid: i as u32 + 1,
            iopm_pa: self.host.iopm,
            msrpm_pa: self.host.msrpm,
        };
        let v = vcpu::restored_vmcb(rec, npt, params);
        let frame = match (v.check(), crate::memory::with_frames(|f| f.alloc())) {
            (Ok(()), Ok(frame)) => frame,
            (_, frame) => {
                crate::memory::with_frames(|f| {
                    PageTable::from_root(npt, 0).free_tables(&self.mem, f);
                    if let Ok(frame) = frame {
                        let _ = f.free(frame);
                    }
                });
                return Err(bad(warden_abi::introspect::VcpuProblem::CodeSegment));
            }
        };
        if let Err(e) = crate::measure::measure_runtime(&text) {
            println!(
                "introspect: domain {} (id {i}) not measured ({e}): it will not run",
                self.doms[i].name
            );
            crate::memory::with_frames(|f| {
                PageTable::from_root(npt, 0).free_tables(&self.mem, f);
                let _ = f.free(frame);
            });
            return Err(Fail::Refused(
                warden_abi::lifecycle::LifecycleError::Unmeasured.into(),
            ));
        }
        let mut page = [0u8; 4096];
        v.encode(&mut page);
        self.mem.write(frame.addr(), &page);
        set(
            &mut self.mem,
            frame.addr(),
            field::KERNEL_GS_BASE,
            rec.kernel_gs_base,
        );
        // Its TSC continues from the captured value: `switch_to` subtracts the host TSC at its
        // first run (`tsc_out` 0), leaving exactly this offset's worth.
        set(&mut self.mem, frame.addr(), field::TSC_OFFSET, rec.tsc);
        // The start-info page tells the domain its id: keep it true for the new one.
        let d = &mut self.doms[i];
        let at = d.region.hpa + START_INFO;
        let mut raw = [0u8; StartInfo::SIZE];
        self.mem.read(at, &mut raw);
        let mut info = StartInfo::from_bytes(&raw);
        if info.magic == START_INFO_MAGIC {
            info.domain_id = i as u32;
            // The label it runs under now, not the one recorded in the checkpoint.
            info.label = to_fixed(&d.label);
            self.mem.write(at, &info.to_bytes());
        }
        d.vmcb = frame.addr();
        d.regs = regs_of(&rec.gprs);
        d.fx = alloc::boxed::Box::new(fx);
        d.tsc_out = 0;
        d.injected = rec.event_inj != 0;
        d.first_run = true;
        d.intro.restoring = false;
        d.life.built = true;
        println!(
            "introspect: domain {} (id {i}) restored by domain {caller}: rip {:#x}, {} MiB, ASID {}",
            d.name,
            rec.rip,
            d.memory_bytes >> 20,
            i + 1
        );
        Ok(())
    }
}

/// Maps page `p` of a tracked domain again, writable or read-only.
fn reprotect(
    mem: &mut warden_hw::phys::IdentityMem,
    frames: &mut impl FrameAlloc,
    npt: &PageTable,
    hpa: u64,
    p: u64,
    writable: bool,
) -> Result<(), MapError> {
    let gpa = p * PAGE_SIZE;
    npt.unmap(mem, gpa)?;
    let leaf = flags::USER | if writable { flags::WRITABLE } else { 0 };
    npt.map(mem, frames, gpa, hpa + gpa, PageSize::Small, leaf)
}
