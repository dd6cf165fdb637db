//! The domain's own page tables, read the way its CPU reads them: instruction fetch for the
//! control-register decoder, and the write permission the hypervisor must respect before it
//! writes an output buffer (it never writes where the domain itself could not).

use warden_core::mem::PhysMem;

use crate::construct::Region;

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Reads the aligned guest-physical word at `gpa` (`None`: not backed for this domain).
pub trait GuestWords {
    fn word(&self, gpa: u64) -> Option<u64>;
}

/// A domain's backed memory (`region.hpa` + GPA) as [`GuestWords`].
#[derive(Debug)]
pub struct Backed<'a, M: PhysMem> {
    pub mem: &'a M,
    pub region: Region,
}

impl<M: PhysMem> GuestWords for Backed<'_, M> {
    fn word(&self, gpa: u64) -> Option<u64> {
        // Inside the region is enough: the unbacked holes are the domain's own frames too.
        let inside = gpa.checked_add(8).is_some_and(|end| end <= self.region.bytes);
        inside.then(|| self.mem.read_u64(self.region.hpa + gpa))
    }
}

/// Translates virtual `va` through the 4-level tables at `cr3`: the guest-physical address
/// and whether every level allows writes.
pub fn translate(mem: &impl GuestWords, cr3: u64, va: u64) -> Option<(u64, bool)> {
    let mut table = cr3 & ADDR;
    let mut writable = true;
    for level in (0..4u32).rev() {
        let e = mem.word(table + ((va >> (12 + 9 * level)) & 0x1ff) * 8)?;
        if e & PRESENT == 0 {
            return None;
        }
        writable &= e & WRITABLE != 0;
        let size = 1u64 << (12 + 9 * level);
        if level == 0 || (level < 3 && e & HUGE != 0) {
            return Some(((e & ADDR & !(size - 1)) | (va & (size - 1)), writable));
        }
        table = e & ADDR;
    }
    None
}

/// May the domain itself write `[gpa, gpa + len)` through its identity mapping? Every page must
/// map to itself and be writable at every level: the start-info page, the GDT, the page tables
/// and read-only image segments are not.
pub fn writable(mem: &impl GuestWords, cr3: u64, gpa: u64, len: u64) -> bool {
    let Some(last) = gpa.checked_add(len.max(1) - 1) else {
        return false;
    };
    (gpa >> 12..=last >> 12).all(|p| translate(mem, cr3, p << 12) == Some((p << 12, true)))
}

/// Fetches up to `out.len()` instruction bytes at virtual `rip`; returns how many could be read.
pub fn fetch(mem: &impl GuestWords, cr3: u64, rip: u64, out: &mut [u8]) -> usize {
    for (i, b) in out.iter_mut().enumerate() {
        let va = rip.wrapping_add(i as u64);
        let Some(w) = translate(mem, cr3, va).and_then(|(pa, _)| mem.word(pa & !7)) else {
            return i;
        };
        *b = (w >> (8 * (va & 7))) as u8;
    }
    out.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::construct;
    use warden_core::mem::FakeMem;

    #[test]
    fn write_permission_follows_the_guest_tables() {
        let region = Region { hpa: 8 << 20, bytes: 4 << 20 };
        let mut mem = FakeMem::new(16 << 20);
        let mut frames = construct::tests::frames();
        let elf = crate::elf::tests::good();
        let b = construct::build(&mut mem, &mut frames, region, &elf, construct::tests::who()).unwrap();
        let v = Backed { mem: &mem, region };
        let cases: &[((u64, u64), bool)] = &[
            ((0x1000, 8), false),        // start-info page
            ((0x2000, 8), false),        // GDT
            ((b.guest_cr3, 8), false),   // PML4
            ((0x10_0000, 64), true),     // stack
            ((0x1f_fff8, 16), false),    // runs into the image's code
            ((0x30_0000, 0x2000), true), // heap, two pages
            ((0x1000, 0), false),        // empty range still needs its page
            ((u64::MAX - 4, 8), false),  // overflow
        ];
        for &((gpa, len), want) in cases {
            assert_eq!(writable(&v, b.guest_cr3, gpa, len), want, "{gpa:#x}+{len}");
        }
        assert_eq!(translate(&v, b.guest_cr3, 0x8000_0123), Some((0x8000_0123, true)), "2 MiB page");
        let mut code = [0u8; 4];
        assert_eq!(fetch(&v, b.guest_cr3, 0x20_0000, &mut code), 4);
        assert_eq!(code, [0x90; 4]);
        // Instruction bytes beyond the backed memory stop the fetch.
        assert_eq!(fetch(&v, b.guest_cr3, region.bytes - 2, &mut code), 2);
    }
}
