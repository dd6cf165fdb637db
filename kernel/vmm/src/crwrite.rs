//! Intercepted CR0/CR4 writes: a small decoder for the instructions that write them (QEMU has
//! no decode assists, so the bytes are fetched through the guest's own page tables) and the rule
//! for what a domain may set. Everything else is refused and stops the domain.
//!
//! The rule: CR0 keeps PE and PG and may toggle MP, EM, TS, ET, NE, WP and AM (an #AC is
//! intercepted, so AM cannot wedge the CPU); CD and NW (cache control belongs to the platform;
//! NW without CD would make VMRUN fail) and every reserved bit are refused. CR4 keeps PAE and may
//! set TSD, DE, PSE, PGE, OSFXSR, OSXMMEXCPT and those features CPUID shows the domain
//! (FSGSBASE, SMEP, SMAP, UMIP, PCIDE); a bit CPUID hides (OSXSAVE, PKE, VMXE, ...) is refused.

/// How the new value is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `MOV CRn, r64`: the general register with this number (0 = RAX .. 15 = R15).
    Gpr(u8),
    /// `CLTS`: CR0.TS cleared.
    Clts,
    /// `LMSW r16`: the low four bits from this register (PE cannot be cleared).
    Lmsw(u8),
}

/// A decoded control-register write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrWrite {
    pub cr: u8,
    pub source: Source,
    /// Instruction length (RIP advances by it).
    pub len: u64,
}

/// Decodes the instruction at the start of `code` (the bytes that could be fetched). Only the
/// encodings above with an optional REX prefix are accepted; other prefixes (LOCK MOV CR0 is
/// CR8 on AMD), memory operands and anything else are `None`.
pub fn decode(code: &[u8]) -> Option<CrWrite> {
    let (rex, rest) = match code.first() {
        Some(&b @ 0x40..=0x4f) => (b, &code[1..]),
        _ => (0, code),
    };
    let skip = u64::from(rex != 0);
    let modrm = rest.get(2).copied();
    let (reg, rm) = modrm.map_or((0, 0), |m| (((m >> 3) & 7) | (rex & 4) << 1, (m & 7) | (rex & 1) << 3));
    let register_form = modrm.is_some_and(|m| m >> 6 == 3);
    let (cr, source, len) = match (rest.first(), rest.get(1)) {
        (Some(0x0f), Some(0x22)) if register_form => (reg, Source::Gpr(rm), 3),
        (Some(0x0f), Some(0x06)) => (0, Source::Clts, 2),
        (Some(0x0f), Some(0x01)) if register_form && reg & 7 == 6 => (0, Source::Lmsw(rm), 3),
        _ => return None,
    };
    Some(CrWrite { cr, source, len: len + skip })
}

/// The new value of the control register (`old` its value now, `reg` the source register).
pub fn value(source: Source, old: u64, reg: u64) -> u64 {
    match source {
        Source::Gpr(_) => reg,
        Source::Clts => old & !CR0_TS,
        Source::Lmsw(_) => (old & !0xe) | (reg & 0xf),
    }
}

const CR0_TS: u64 = 1 << 3;
const CR0_REQUIRED: u64 = 1 | 1 << 31; // PE, PG
/// PE MP EM TS ET NE WP AM PG.
const CR0_ALLOWED: u64 = 0x3f | 1 << 16 | 1 << 18 | 1 << 31;
const CR4_REQUIRED: u64 = 1 << 5; // PAE
/// TSD DE PSE PAE PGE OSFXSR OSXMMEXCPT (MCE is hidden by CPUID, PCE would only open RDPMC).
const CR4_ALWAYS: u64 = 1 << 2 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 7 | 1 << 9 | 1 << 10;

/// CR4 bits a domain may set, from what the CPUID filter shows it (leaf 1 ECX, leaf 7 EBX/ECX).
pub fn cr4_offered(leaf1_ecx: u32, leaf7_ebx: u32, leaf7_ecx: u32) -> u64 {
    let has = |reg: u32, bit: u32, cr4_bit: u32| {
        if reg & (1 << bit) != 0 { 1u64 << cr4_bit } else { 0 }
    };
    CR4_ALWAYS
        | has(leaf1_ecx, 17, 17) // PCID -> PCIDE
        | has(leaf7_ebx, 0, 16) // FSGSBASE
        | has(leaf7_ebx, 7, 20) // SMEP
        | has(leaf7_ebx, 20, 21) // SMAP
        | has(leaf7_ecx, 2, 11) // UMIP
}

/// May a domain write `new` into control register `cr` (CR4 against `cr4_allowed`)?
pub fn allowed(cr: u8, new: u64, cr4_allowed: u64) -> bool {
    let (required, allowed) = match cr {
        0 => (CR0_REQUIRED, CR0_ALLOWED),
        4 => (CR4_REQUIRED, cr4_allowed),
        _ => return false,
    };
    new & required == required && new & !allowed == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_writes_and_refuses_the_rest() {
        let cases: &[(&[u8], Option<CrWrite>)] = &[
            (&[0x0f, 0x22, 0xc0], Some(CrWrite { cr: 0, source: Source::Gpr(0), len: 3 })), // mov cr0, rax
            (&[0x0f, 0x22, 0xe3], Some(CrWrite { cr: 4, source: Source::Gpr(3), len: 3 })), // mov cr4, rbx
            (&[0x41, 0x0f, 0x22, 0xc7], Some(CrWrite { cr: 0, source: Source::Gpr(15), len: 4 })), // mov cr0, r15
            (&[0x44, 0x0f, 0x22, 0xc0], Some(CrWrite { cr: 8, source: Source::Gpr(0), len: 4 })), // mov cr8, rax
            (&[0x0f, 0x06, 0x90], Some(CrWrite { cr: 0, source: Source::Clts, len: 2 })),
            (&[0x0f, 0x01, 0xf1], Some(CrWrite { cr: 0, source: Source::Lmsw(1), len: 3 })), // lmsw cx
            (&[0x0f, 0x22, 0x00], None),                                                     // memory form (mod != 3)
            (&[0x0f, 0x01, 0x30], None),                                                     // lmsw [rax]
            (&[0x0f, 0x01, 0xd9], None),       // VMMCALL is not a CR write
            (&[0xf0, 0x0f, 0x22, 0xc0], None), // LOCK MOV CR0 = CR8 on AMD
            (&[0x66, 0x0f, 0x22, 0xc0], None),
            (&[0x0f, 0x22], None), // truncated
            (&[], None),
        ];
        for (code, want) in cases {
            assert_eq!(decode(code), *want, "{code:x?}");
        }
    }

    #[test]
    fn new_values() {
        assert_eq!(value(Source::Gpr(0), 0x8001_0031, 0x8005_0031), 0x8005_0031);
        assert_eq!(value(Source::Clts, 0x8001_0039, 0), 0x8001_0031);
        // LMSW sets MP/EM/TS and cannot clear PE.
        assert_eq!(value(Source::Lmsw(1), 0x8001_0031, 0xffff_fff0), 0x8001_0031);
        assert_eq!(value(Source::Lmsw(1), 0x8001_0031, 0xa), 0x8001_003b);
    }

    #[test]
    fn the_rule() {
        let qemu64 = cr4_offered(0, 0, 0);
        let full = cr4_offered(1 << 17, 1 | 1 << 7 | 1 << 20, 1 << 2);
        let cases: &[((u8, u64, u64), bool)] = &[
            ((0, 0x8001_0031, qemu64), true),
            ((0, 0x8005_0031, qemu64), true),    // AM
            ((0, 0x8001_0030, qemu64), false),   // PE cleared
            ((0, 0x0001_0031, qemu64), false),   // PG cleared
            ((0, 0xa001_0031, qemu64), false),   // NW without CD
            ((0, 0xc001_0031, qemu64), false),   // CD
            ((0, 0x1_8001_0031, qemu64), false), // reserved high bit
            ((4, 0x20, qemu64), true),
            ((4, 0x6a0, qemu64), true),                  // PGE OSFXSR OSXMMEXCPT
            ((4, 0x0, qemu64), false),                   // PAE cleared
            ((4, 0x20 | 1 << 22, full), false),          // PKE: hidden by CPUID
            ((4, 0x20 | 1 << 18, full), false),          // OSXSAVE: hidden by CPUID
            ((4, 0x20 | 1 << 20, qemu64), false),        // SMEP where CPUID does not show it
            ((4, 0x20 | 1 << 20 | 1 << 16, full), true), // SMEP, FSGSBASE where it does
            ((4, 0x20 | 1 << 8, full), false),           // PCE
            ((4, 0x20 | 1 << 6, full), false),           // MCE: hidden by CPUID
            ((3, 0x1000, full), false),
            ((8, 0, full), false),
        ];
        for &((cr, v, offered), want) in cases {
            assert_eq!(allowed(cr, v, offered), want, "cr{cr} = {v:#x}");
        }
    }
}
