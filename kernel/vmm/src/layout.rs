//! The guest-physical layout of every domain (identity-mapped by its page tables):
//!
//! ```text
//! 0x0000_0000  null page            not backed: any access stops the domain
//! 0x0000_1000  start-info page      read-only for the guest
//! 0x0000_2000  GDT                  read-only
//! 0x0000_3000  guest page tables    read-only, up to PT_END
//! 0x000f_f000  stack guard page     not backed
//! 0x0010_0000  stack (1 MiB)        RSP starts at 0x0020_0000 - 8
//! 0x0020_0000  ELF image            rights from the program headers
//! image end    heap                 up to memory_bytes
//! memory_bytes .. 4 GiB             mapped by the guest page tables, not backed
//! ```

/// The unbacked page at address 0.
pub const NULL_PAGE: u64 = 0;
pub const START_INFO: u64 = 0x1000;
pub const GDT: u64 = 0x2000;
pub const PT_BASE: u64 = 0x3000;
pub const PT_END: u64 = 0xf_f000;
pub const STACK_GUARD: u64 = 0xf_f000;
pub const STACK_BOTTOM: u64 = 0x10_0000;
pub const STACK_TOP: u64 = 0x20_0000;
/// The lowest address an ELF segment may use (the guest linker script's base).
pub const IMAGE_BASE: u64 = 0x20_0000;
/// The guest page tables map `[0, GUEST_MAPPED)`; beyond it the guest takes its own #PF.
pub const GUEST_MAPPED: u64 = 4 << 30;

/// GDT selectors the domain starts with.
pub const CODE_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;

/// The guest-physical pages that are not backed although they lie below `memory_bytes`.
pub const HOLES: [u64; 2] = [NULL_PAGE, STACK_GUARD];

/// A validated guest-physical byte range inside a domain's backed memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRange {
    pub gpa: u64,
    pub len: u64,
}

/// Checks that `[gpa, gpa + len)` lies in backed memory of a domain with `memory_bytes`:
/// no overflow, below the end, and not touching an unbacked hole. An empty range is valid
/// anywhere below the end.
pub fn guest_range(memory_bytes: u64, gpa: u64, len: u64) -> Option<GuestRange> {
    let end = gpa.checked_add(len)?;
    if end > memory_bytes {
        return None;
    }
    if len > 0 && HOLES.iter().any(|&h| gpa < h + 0x1000 && h < end) {
        return None;
    }
    Some(GuestRange { gpa, len })
}

/// Is a guest-physical address backed for a domain with `memory_bytes`?
pub fn is_backed(memory_bytes: u64, gpa: u64) -> bool {
    guest_range(memory_bytes, gpa, 1).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let mem = 4 << 20;
        let cases: &[((u64, u64), bool)] = &[
            ((0x20_0000, 16), true),
            ((0x1000, 0x1000), true),
            ((mem - 1, 1), true),
            ((mem, 0), true),
            ((mem, 1), false),
            ((mem - 1, 2), false),
            ((0, 1), false),
            ((0xfff, 2), false),
            ((STACK_GUARD - 1, 2), false),
            ((STACK_GUARD + 0xfff, 1), false),
            ((STACK_GUARD + 0x1000, 1), true),
            ((0x20_0000, u64::MAX), false),
            ((u64::MAX, 1), false),
            ((0x4000_0000, 8), false),
        ];
        for &((gpa, len), ok) in cases {
            assert_eq!(guest_range(mem, gpa, len).is_some(), ok, "{gpa:#x}+{len:#x}");
        }
        assert!(!is_backed(mem, 0));
        assert!(is_backed(mem, START_INFO));
    }

    #[test]
    fn regions_are_ordered() {
        let order = [NULL_PAGE, START_INFO, GDT, PT_BASE, PT_END, STACK_BOTTOM, STACK_TOP];
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(PT_END, STACK_GUARD);
        assert_eq!(STACK_TOP, IMAGE_BASE);
    }
}
