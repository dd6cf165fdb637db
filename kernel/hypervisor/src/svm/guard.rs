//! The run loop's guards against hostile domains: intercepted CR0/CR4 writes (decoded through
//! the domain's own page tables and checked against `warden_vmm::crwrite`'s rule) and the
//! domain's own write permission, which every output buffer the hypervisor fills must have.

use warden_core::mem::PhysMem;
use warden_hw::svm::GuestRegs;
use warden_vmm::crwrite::{self, Source};
use warden_vmm::domain::{End, Violation};
use warden_vmm::guestpt::{self, Backed, GuestWords};
use warden_vmm::sched::DomainId;
use warden_vmm::vmcb::{Field, field};

use super::{Dom, Next, Runner, get, set};

/// CR4 bits the domains may set: the always-allowed ones plus what the CPUID filter shows them.
pub(super) fn cr4_allowed() -> u64 {
    let shown = |leaf| {
        let h = warden_hw::cpu::cpuid(leaf, 0);
        let host = warden_vmm::cpuid::Regs { eax: h.eax, ebx: h.ebx, ecx: h.ecx, edx: h.edx };
        warden_vmm::cpuid::filter(leaf, 0, host, 0)
    };
    let (l1, l7) = (shown(1), shown(7));
    crwrite::cr4_offered(l1.ecx, l7.ebx, l7.ecx)
}

/// General register `n` (0 = RAX .. 15 = R15); RAX and RSP live in the VMCB.
fn gpr(regs: &GuestRegs, n: u8, vmcb: impl Fn(Field) -> u64) -> u64 {
    let r = regs;
    [0, r.rcx, r.rdx, r.rbx, 0, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15]
        .get(usize::from(n))
        .map_or(0, |&v| match n {
            0 => vmcb(field::RAX),
            4 => vmcb(field::RSP),
            _ => v,
        })
}

/// May the hypervisor write `[gpa, gpa + len)` of `dom`? Only where the domain itself could
/// (its current page tables, identity-mapped): never its start-info page, GDT, page tables or
/// read-only image, whatever the call.
pub(super) fn writable(mem: &impl PhysMem, dom: &Dom, gpa: u64, len: u64) -> bool {
    let cr3 = get(mem, dom.vmcb, field::CR3);
    guestpt::writable(&Backed { mem, region: dom.region }, cr3, gpa, len)
}

/// The exact encodings of the instructions whose intercepts resume the domain after them.
pub(super) const VMMCALL: &[u8] = &[0x0f, 0x01, 0xd9];
pub(super) const CPUID: &[u8] = &[0x0f, 0xa2];
pub(super) const RDMSR: &[u8] = &[0x0f, 0x32];
pub(super) const WRMSR: &[u8] = &[0x0f, 0x30];
pub(super) const HLT: &[u8] = &[0xf4];

impl Runner {
    /// Domain `id` gets the CPU after another (or none): its x87/SSE state is loaded, its TSC
    /// resumes where it stopped — the TSC offset hides the time other domains ran, so the TSC
    /// is no precise cross-domain timer — and branch predictions the previous domain trained are
    /// flushed (IBPB, where the CPU offers it).
    pub(super) fn switch_to(&mut self, id: DomainId) {
        let now = warden_hw::cpu::rdtsc();
        if let Some(prev) = self.fx_owner {
            let p = &mut self.doms[prev.0 as usize];
            warden_hw::svm::fxsave(&mut p.fx);
            p.tsc_out = now;
            if let Some(b) = self.ibpb {
                b.barrier();
            }
        }
        let d = &mut self.doms[id.0 as usize];
        warden_hw::svm::fxrstor(&d.fx);
        let offset = get(&self.vmcbs, d.vmcb, field::TSC_OFFSET);
        // First run: the domain's TSC starts at 0; afterwards it skips the time it was out.
        let away = if d.tsc_out == 0 { now } else { now.wrapping_sub(d.tsc_out) };
        set(&mut self.vmcbs, d.vmcb, field::TSC_OFFSET, offset.wrapping_sub(away));
        self.fx_owner = Some(id);
    }

    /// The RIP after the intercepted instruction `insn` at `rip`: the CPU's NRIP where it saves
    /// one; otherwise the bytes at `rip`, fetched through the domain's page tables, must be
    /// exactly `insn` (QEMU accepts prefixed forms, whose length would be wrong): `None`, and
    /// the caller stops the domain, for anything else.
    ///
    /// The page RIP lies in is translated once and remembered per domain, like a TLB entry, for
    /// as long as CR3 and the page stay the same (the hypercall path then reads one or two
    /// words), and the last instruction verified is remembered by CR3 and RIP (a hypercall loop
    /// reads nothing). A domain that edits its own page tables without reloading CR3, or its own
    /// code, can only make the hypervisor misjudge that domain's own instruction, as a stale TLB
    /// entry would.
    pub(super) fn next_rip(&mut self, i: usize, rip: u64, insn: &[u8]) -> Option<u64> {
        let d = &self.doms[i];
        if self.nrip {
            return Some(get(&self.vmcbs, d.vmcb, field::NEXT_RIP));
        }
        let (cr3, page, off) = (get(&self.vmcbs, d.vmcb, field::CR3), rip & !0xfff, rip & 0xfff);
        // The instruction last verified (a hypercall loop): no memory read at all.
        let key = (cr3, rip, insn[insn.len() - 1]);
        if d.verified == Some(key) {
            return Some(rip + insn.len() as u64);
        }
        let mem = Backed { mem: &self.mem, region: d.region };
        let gpa_page = match d.code_page {
            Some((c, p, g)) if c == cr3 && p == page => g,
            _ => {
                let g = guestpt::translate(&mem, cr3, page)?.0;
                self.doms[i].code_page = Some((cr3, page, g));
                g
            }
        };
        let mut code = [0u8; 3];
        let code = &mut code[..insn.len()];
        let n = if off + insn.len() as u64 <= 4096 {
            // Both words that can hold the bytes (the second only if they cross into it).
            let at = gpa_page + (off & !7);
            let lo = u128::from(mem.word(at)?) | u128::from(mem.word(at + 8).unwrap_or(0)) << 64;
            for (k, b) in code.iter_mut().enumerate() {
                *b = (lo >> (8 * ((off & 7) as usize + k))) as u8;
            }
            insn.len()
        } else {
            guestpt::fetch(&mem, cr3, rip, code)
        };
        let ok = n == insn.len() && code == insn;
        self.doms[i].verified = ok.then_some(key);
        ok.then_some(rip + insn.len() as u64)
    }

    /// An intercepted write of control register `cr` at `rip`: decoded, checked and applied,
    /// or the domain is stopped.
    pub(super) fn cr_write(&mut self, id: DomainId, cr: u8, rip: u64) -> Next {
        let cr_field = if cr == 0 { field::CR0 } else { field::CR4 };
        let vmcb = self.doms[id.0 as usize].vmcb;
        match self.decode_cr_write(&self.doms[id.0 as usize], cr, cr_field, rip) {
            Ok((value, len)) => {
                set(&mut self.mem, vmcb, cr_field, value);
                set(&mut self.mem, vmcb, field::RIP, rip + len);
                // Paging-mode bits (WP, PGE, PSE, SMEP, PCIDE...) may change translations: flush.
                self.doms[id.0 as usize].first_run = true;
                Next::Continue
            }
            Err(violation) => {
                self.end(id, End::Stopped { violation, rip });
                Next::Reschedule
            }
        }
    }

    /// The new value of the control register and the instruction's length, if allowed.
    fn decode_cr_write(&self, d: &Dom, cr: u8, cr_field: Field, rip: u64) -> Result<(u64, u64), Violation> {
        let at = |f| get(&self.mem, d.vmcb, f);
        let mut code = [0u8; 15];
        let cs_base = at(Field { offset: field::CS + field::SEG_BASE, width: 8 });
        let mem = Backed { mem: &self.mem, region: d.region };
        let n = guestpt::fetch(&mem, at(field::CR3), cs_base.wrapping_add(rip), &mut code);
        let w =
            crwrite::decode(&code[..n]).filter(|w| w.cr == cr).ok_or(Violation::Instruction("undecodable CR write"))?;
        let reg = match w.source {
            Source::Gpr(r) | Source::Lmsw(r) => gpr(&d.regs, r, at),
            Source::Clts => 0,
        };
        let value = crwrite::value(w.source, at(cr_field), reg);
        if !crwrite::allowed(cr, value, self.cr4_allowed) {
            return Err(Violation::ControlRegister { cr, value });
        }
        Ok((value, w.len))
    }
}
