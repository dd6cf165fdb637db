//! The CPUID filter: what a domain sees of the host CPU, plus Warden's own leaves.

use warden_abi::{ABI_VERSION, CPUID_LEAF_BASE, CPUID_LEAF_INFO, CPUID_SIGNATURE};

/// The four result registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Regs {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Leaf 1 ECX bits hidden from domains: VMX (5), SMX (6), x2APIC (21), XSAVE (26), OSXSAVE (27),
/// MONITOR (3); and bit 31 ("running under a hypervisor") is set.
const LEAF1_ECX_HIDE: u32 = 1 << 3 | 1 << 5 | 1 << 6 | 1 << 21 | 1 << 26 | 1 << 27;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX: the local APIC (9), MTRR (12), MCA/MCE (14, 7), ACPI thermal (22) are not offered.
const LEAF1_EDX_HIDE: u32 = 1 << 7 | 1 << 9 | 1 << 12 | 1 << 14 | 1 << 22;
/// Leaf 7 (subleaf 0) ECX: protection keys (PKU 3, OSPKE 4) are not offered: PKRU is not
/// switched per domain.
const LEAF7_ECX_HIDE: u32 = 1 << 3 | 1 << 4;
/// Leaf 0x8000_0001 ECX: SVM (2) and SKINIT (12) are not offered (no nested virtualization).
const EXT1_ECX_HIDE: u32 = 1 << 2 | 1 << 12;

/// What a domain sees for `leaf`/`subleaf`, given the host's answer `host` and its id.
///
/// Rule: basic and extended leaves pass through with virtualization, monitoring, XSAVE and
/// APIC features removed; the SVM leaf and leaves whose content is host topology or power
/// management read as zero (including the extended topology leaf `0x8000_001E` and the core
/// count of `0x8000_0008`); Warden's range `0x4000_0000..=0x4000_0001` identifies the
/// hypervisor; any other leaf in the hypervisor range reads as zero.
pub fn filter(leaf: u32, _subleaf: u32, host: Regs, domain_id: u32) -> Regs {
    match leaf {
        1 => Regs {
            // Initial APIC id 0 (one vCPU), no CLFLUSH/logical-count claims from the host.
            ebx: host.ebx & 0x0000_ffff,
            ecx: (host.ecx & !LEAF1_ECX_HIDE) | LEAF1_ECX_HYPERVISOR,
            edx: host.edx & !LEAF1_EDX_HIDE,
            ..host
        },
        7 => Regs { ecx: host.ecx & !LEAF7_ECX_HIDE, ..host },
        // Thermal/power, cache topology, XSAVE state, extended topology: nothing to offer.
        4..=6 | 0xb | 0xd | 0x1f => Regs::default(),
        CPUID_LEAF_BASE => Regs {
            eax: CPUID_LEAF_INFO,
            ebx: u32::from_le_bytes([CPUID_SIGNATURE[0], CPUID_SIGNATURE[1], CPUID_SIGNATURE[2], CPUID_SIGNATURE[3]]),
            ecx: u32::from_le_bytes([CPUID_SIGNATURE[4], CPUID_SIGNATURE[5], CPUID_SIGNATURE[6], CPUID_SIGNATURE[7]]),
            edx: u32::from_le_bytes([CPUID_SIGNATURE[8], CPUID_SIGNATURE[9], CPUID_SIGNATURE[10], CPUID_SIGNATURE[11]]),
        },
        CPUID_LEAF_INFO => Regs { eax: ABI_VERSION.encode(), ebx: domain_id, ecx: 0, edx: 0 },
        0x4000_0002..=0x4fff_ffff => Regs::default(),
        0x8000_0001 => Regs { ecx: host.ecx & !EXT1_ECX_HIDE, ..host },
        // Core count and APIC-id size (ECX) describe the host's topology; address sizes stay.
        0x8000_0008 => Regs { ecx: 0, ..host },
        // SVM revision and features; extended APIC id, core and node ids (host topology and a
        // hint of where the domain runs): nothing to offer.
        0x8000_000a | 0x8000_001e => Regs::default(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Regs = Regs { eax: u32::MAX, ebx: u32::MAX, ecx: u32::MAX, edx: u32::MAX };

    #[test]
    fn hypervisor_leaves_name_warden() {
        let r = filter(CPUID_LEAF_BASE, 0, ALL, 3);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&r.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        sig[8..].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&sig, b"WardenWarden");
        assert_eq!(r.eax, CPUID_LEAF_INFO);
        assert_eq!(filter(CPUID_LEAF_INFO, 0, ALL, 3), Regs { eax: 0x1_0000, ebx: 3, ecx: 0, edx: 0 });
        assert_eq!(filter(0x4000_0100, 0, ALL, 3), Regs::default());
    }

    #[test]
    fn virtualization_features_are_hidden_and_hypervisor_bit_set() {
        let r = filter(1, 0, ALL, 0);
        assert_eq!(r.ecx & (1 << 5), 0, "VMX");
        assert_eq!(r.ecx & (1 << 31), 1 << 31, "hypervisor present");
        assert_eq!(r.edx & (1 << 9), 0, "APIC");
        assert_eq!(r.ebx >> 16, 0, "no logical-processor count / APIC id");
        assert_eq!(filter(1, 0, Regs::default(), 0).ecx, 1 << 31);
        assert_eq!(filter(0x8000_0001, 0, ALL, 0).ecx & (1 << 2), 0, "SVM");
        assert_eq!(filter(0x8000_000a, 0, ALL, 0), Regs::default());
        assert_eq!(filter(0, 0, ALL, 0), ALL, "vendor leaf passes through");
        assert_eq!(filter(0xd, 1, ALL, 0), Regs::default());
        assert_eq!(filter(7, 0, ALL, 0).ecx & 0b11000, 0, "PKU/OSPKE");
        // Issue 16: no host topology.
        assert_eq!(filter(0x8000_001e, 0, ALL, 0), Regs::default(), "extended APIC/core/node ids");
        assert_eq!(filter(0x8000_0008, 0, ALL, 0), Regs { ecx: 0, ..ALL }, "core count hidden, sizes kept");
    }
}
