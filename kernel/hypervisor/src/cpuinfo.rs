//! The boot banner's CPU lines, read from CPUID (never assumed).

use warden_hw::cpu::cpuid;

/// What the CPU offers for virtualization.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SvmInfo {
    /// SVM revision (CPUID 0x8000_000A EAX[7:0]).
    pub(crate) revision: u32,
    /// Number of ASIDs.
    pub(crate) asids: u32,
    /// Nested paging.
    pub(crate) nested_paging: bool,
    /// NRIP save: the VMCB's next-RIP field is filled on instruction intercepts (EDX[3]).
    pub(crate) nrip: bool,
}

/// SVM details, or `None` when the CPU does not offer SVM.
pub(crate) fn svm() -> Option<SvmInfo> {
    if cpuid(0x8000_0000, 0).eax < 0x8000_000a || cpuid(0x8000_0001, 0).ecx & (1 << 2) == 0 {
        return None;
    }
    let r = cpuid(0x8000_000a, 0);
    Some(SvmInfo { revision: r.eax & 0xff, asids: r.ebx, nested_paging: r.edx & 1 != 0, nrip: r.edx & (1 << 3) != 0 })
}

pub(crate) fn print_banner() {
    let vendor = warden_hw::cpu::vendor();
    let vendor = core::str::from_utf8(&vendor).unwrap_or("?");
    let sig = cpuid(1, 0).eax;
    let family = ((sig >> 8) & 0xf) + if (sig >> 8) & 0xf == 0xf { (sig >> 20) & 0xff } else { 0 };
    let model = ((sig >> 4) & 0xf) | (((sig >> 16) & 0xf) << 4);
    println!("cpu: vendor {vendor}, family {family:#x}, model {model:#x}");
    match svm() {
        Some(s) => println!(
            "cpu: SVM available, revision {}, {} ASIDs, nested paging {}",
            s.revision,
            s.asids,
            if s.nested_paging { "available" } else { "not available" }
        ),
        None => println!("cpu: SVM not available"),
    }
}
