//! A 4-level x86-64 page-table builder and walker over [`PhysMem`] and [`FrameAlloc`].
//!
//! One implementation serves the hypervisor's own tables, guest page tables and nested page
//! tables: they differ only in the flags put on intermediate entries (`table_flags`) and leaves.

use crate::frame::{FrameAlloc, FrameError};
use crate::mem::{LARGE_PAGE_SIZE, PAGE_SIZE, PhysMem};

/// Page-table entry bits (Intel SDM Vol. 3 §4.5, AMD APM Vol. 2 §5.3).
pub mod flags {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// User-accessible (nested page tables need it at every level).
    pub const USER: u64 = 1 << 2;
    /// Write-through.
    pub const WRITE_THROUGH: u64 = 1 << 3;
    /// Cache disable (MMIO).
    pub const NO_CACHE: u64 = 1 << 4;
    /// Accessed.
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty.
    pub const DIRTY: u64 = 1 << 6;
    /// Large page (in a PDPT or PD entry).
    pub const HUGE: u64 = 1 << 7;
    /// Global.
    pub const GLOBAL: u64 = 1 << 8;
    /// No-execute (needs EFER.NXE).
    pub const NO_EXECUTE: u64 = 1 << 63;
}

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const ENTRIES: u64 = 512;

/// The size of one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB.
    Small,
    /// 2 MiB.
    Large,
}

impl PageSize {
    /// Bytes covered.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Small => PAGE_SIZE,
            Self::Large => LARGE_PAGE_SIZE,
        }
    }
}

/// Why a mapping could not be made or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame left for a new table.
    OutOfMemory,
    /// An address was not aligned to the page size.
    Misaligned { va: u64, pa: u64 },
    /// The virtual address is not canonical (bits 63..47 differ).
    NonCanonical(u64),
    /// Something is mapped there already.
    AlreadyMapped(u64),
    /// A large page covers the range where a small one was asked for (or the reverse).
    SizeConflict(u64),
    /// Nothing is mapped there.
    NotMapped(u64),
}

impl From<FrameError> for MapError {
    fn from(_: FrameError) -> Self {
        Self::OutOfMemory
    }
}

/// One leaf mapping found by a walk, with the permissions in force through every level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// Virtual (or guest-physical) start address.
    pub va: u64,
    /// Physical start address.
    pub pa: u64,
    /// Mapping size.
    pub size: PageSize,
    /// The leaf entry's own flags.
    pub flags: u64,
    /// Writable at every level.
    pub writable: bool,
    /// Executable at every level (no NX anywhere on the path).
    pub executable: bool,
    /// User-accessible at every level.
    pub user: bool,
}

/// A page-table hierarchy identified by its root (PML4) frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageTable {
    root: u64,
    table_flags: u64,
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & (ENTRIES - 1)
}

fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == (1 << 17) - 1
}

impl PageTable {
    /// A new, empty hierarchy. `table_flags` go on every non-leaf entry (PRESENT is added).
    pub fn new(
        mem: &mut impl PhysMem,
        alloc: &mut impl FrameAlloc,
        table_flags: u64,
    ) -> Result<Self, MapError> {
        let root = alloc.alloc()?.addr();
        mem.zero(root, PAGE_SIZE);
        Ok(Self { root, table_flags: table_flags | flags::PRESENT })
    }

    /// An existing hierarchy (e.g. the one in CR3).
    pub const fn from_root(root: u64, table_flags: u64) -> Self {
        Self { root: root & ADDR_MASK, table_flags: table_flags | flags::PRESENT }
    }

    /// The root table's physical address (what goes into CR3 or nCR3).
    pub const fn root(&self) -> u64 {
        self.root
    }

    /// The table at `level` (3 = PDPT .. 1 = PT ... counted from the root at 4) on the path to
    /// `va`, creating tables as needed. Returns the physical address of the entry for `va`.
    fn entry_for(
        &self,
        mem: &mut impl PhysMem,
        alloc: &mut impl FrameAlloc,
        va: u64,
        leaf_level: u32,
    ) -> Result<u64, MapError> {
        let mut table = self.root;
        let mut level = 3;
        loop {
            let entry_pa = table + index(va, level) * 8;
            if level == leaf_level {
                return Ok(entry_pa);
            }
            let entry = mem.read_u64(entry_pa);
            if entry & flags::PRESENT == 0 {
                let frame = alloc.alloc()?.addr();
                mem.zero(frame, PAGE_SIZE);
                mem.write_u64(entry_pa, frame | self.table_flags);
                table = frame;
            } else if entry & flags::HUGE != 0 {
                return Err(MapError::SizeConflict(va));
            } else {
                table = entry & ADDR_MASK;
            }
            level -= 1;
        }
    }

    /// Maps one page of `size` at `va` to `pa` with leaf `leaf_flags` (PRESENT is added).
    pub fn map(
        &self,
        mem: &mut impl PhysMem,
        alloc: &mut impl FrameAlloc,
        va: u64,
        pa: u64,
        size: PageSize,
        leaf_flags: u64,
    ) -> Result<(), MapError> {
        if !is_canonical(va) {
            return Err(MapError::NonCanonical(va));
        }
        if va % size.bytes() != 0 || pa % size.bytes() != 0 || pa & !ADDR_MASK & !(size.bytes() - 1) != 0 {
            return Err(MapError::Misaligned { va, pa });
        }
        let leaf_level = match size {
            PageSize::Small => 0,
            PageSize::Large => 1,
        };
        let entry_pa = self.entry_for(mem, alloc, va, leaf_level)?;
        let old = mem.read_u64(entry_pa);
        if old & flags::PRESENT != 0 {
            return Err(if size == PageSize::Large && old & flags::HUGE == 0 {
                MapError::SizeConflict(va)
            } else {
                MapError::AlreadyMapped(va)
            });
        }
        let huge = if size == PageSize::Large { flags::HUGE } else { 0 };
        mem.write_u64(entry_pa, pa | leaf_flags | flags::PRESENT | huge);
        Ok(())
    }

    /// Maps `[va, va + len)` to `[pa, pa + len)`, using 2 MiB pages wherever both sides allow.
    pub fn map_range(
        &self,
        mem: &mut impl PhysMem,
        alloc: &mut impl FrameAlloc,
        va: u64,
        pa: u64,
        len: u64,
        leaf_flags: u64,
    ) -> Result<(), MapError> {
        let mut off = 0;
        while off < len {
            let (v, p) = (va + off, pa + off);
            let size = if v % LARGE_PAGE_SIZE == 0 && p % LARGE_PAGE_SIZE == 0 && len - off >= LARGE_PAGE_SIZE {
                PageSize::Large
            } else {
                PageSize::Small
            };
            self.map(mem, alloc, v, p, size, leaf_flags)?;
            off += size.bytes();
        }
        Ok(())
    }

    /// Removes the mapping at `va` and returns what it mapped. Tables are left in place.
    pub fn unmap(&self, mem: &mut impl PhysMem, va: u64) -> Result<(u64, PageSize), MapError> {
        let (entry_pa, size) = self.find_entry(mem, va).ok_or(MapError::NotMapped(va))?;
        let entry = mem.read_u64(entry_pa);
        mem.write_u64(entry_pa, 0);
        Ok((entry & ADDR_MASK & !(size.bytes() - 1), size))
    }

    fn find_entry(&self, mem: &impl PhysMem, va: u64) -> Option<(u64, PageSize)> {
        if !is_canonical(va) {
            return None;
        }
        let mut table = self.root;
        for level in (0..4).rev() {
            let entry_pa = table + index(va, level) * 8;
            let entry = mem.read_u64(entry_pa);
            if entry & flags::PRESENT == 0 {
                return None;
            }
            match level {
                0 => return Some((entry_pa, PageSize::Small)),
                1 if entry & flags::HUGE != 0 => return Some((entry_pa, PageSize::Large)),
                3 | 2 if entry & flags::HUGE != 0 => return None, // 1 GiB pages are never created here
                _ => table = entry & ADDR_MASK,
            }
        }
        None
    }

    /// The physical address `va` maps to, if any.
    pub fn translate(&self, mem: &impl PhysMem, va: u64) -> Option<u64> {
        let (entry_pa, size) = self.find_entry(mem, va)?;
        let base = mem.read_u64(entry_pa) & ADDR_MASK & !(size.bytes() - 1);
        Some(base + (va & (size.bytes() - 1)))
    }

    /// Frees every table frame of the hierarchy (the root included) to `alloc`; the frames the
    /// leaves map are not touched. Used when a domain ends: its nested page tables (including
    /// those grant mappings added) go back to the allocator. The table must not be used after.
    /// Returns how many table frames were freed.
    pub fn free_tables(self, mem: &impl PhysMem, alloc: &mut impl FrameAlloc) -> usize {
        fn free_level(mem: &impl PhysMem, alloc: &mut impl FrameAlloc, table: u64, level: u32) -> usize {
            let mut n = 0;
            if level > 0 {
                for i in 0..ENTRIES {
                    let entry = mem.read_u64(table + i * 8);
                    if entry & flags::PRESENT != 0 && entry & flags::HUGE == 0 {
                        n += free_level(mem, alloc, entry & ADDR_MASK, level - 1);
                    }
                }
            }
            n + usize::from(alloc.free(crate::frame::PhysFrame::containing(table)).is_ok())
        }
        free_level(mem, alloc, self.root, 3)
    }

    /// Calls `f` for every present leaf, in address order, with effective permissions.
    /// This builder never creates 1 GiB pages; a foreign 1 GiB leaf is reported as `Large`.
    pub fn for_each_leaf(&self, mem: &impl PhysMem, mut f: impl FnMut(Leaf)) {
        self.walk(mem, self.root, 3, 0, true, true, true, &mut f);
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        mem: &impl PhysMem,
        table: u64,
        level: u32,
        base: u64,
        w: bool,
        x: bool,
        u: bool,
        f: &mut impl FnMut(Leaf),
    ) {
        for i in 0..ENTRIES {
            let entry = mem.read_u64(table + i * 8);
            if entry & flags::PRESENT == 0 {
                continue;
            }
            let mut va = base | (i << (12 + 9 * level));
            if level == 3 && va & (1 << 47) != 0 {
                va |= 0xffff_0000_0000_0000;
            }
            let w = w && entry & flags::WRITABLE != 0;
            let x = x && entry & flags::NO_EXECUTE == 0;
            let u = u && entry & flags::USER != 0;
            let leaf = level == 0 || (level <= 2 && entry & flags::HUGE != 0);
            if leaf {
                let size = if level == 0 { PageSize::Small } else { PageSize::Large };
                let pa = entry & ADDR_MASK & !(size.bytes() - 1);
                f(Leaf { va, pa, size, flags: entry, writable: w, executable: x, user: u });
            } else {
                self.walk(mem, entry & ADDR_MASK, level - 1, va, w, x, u, f);
            }
        }
    }
}

/// The W^X audit: counts leaves and returns the first writable-and-executable one, if any.
pub fn find_writable_executable(mem: &impl PhysMem, table: &PageTable) -> (usize, Option<Leaf>) {
    let mut count = 0;
    let mut bad = None;
    table.for_each_leaf(mem, |leaf| {
        count += 1;
        if leaf.writable && leaf.executable && bad.is_none() {
            bad = Some(leaf);
        }
    });
    (count, bad)
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;
    use crate::frame::BitmapAllocator;
    use crate::mem::FakeMem;
    use std::vec::Vec;

    const MIB: u64 = 1024 * 1024;

    fn setup(bits: &mut [u64]) -> (FakeMem, BitmapAllocator<'_>) {
        let mem = FakeMem::new(4 * MIB as usize);
        let mut a = BitmapAllocator::new(bits);
        a.add_free(MIB, 4 * MIB);
        (mem, a)
    }

    #[test]
    fn free_tables_returns_every_table_frame_and_no_mapped_frame() {
        let mut bits = [0u64; 16];
        let (mut mem, mut a) = setup(&mut bits);
        let before = a.free_frames();
        let pt = PageTable::new(&mut mem, &mut a, WRITABLE).unwrap();
        // A 4 KiB run (PML4, PDPT, PD, PT), a 2 MiB page in another PD, and a far address.
        pt.map_range(&mut mem, &mut a, 0x1000, 0x3000_0000, 0x3000, WRITABLE).unwrap();
        pt.map(&mut mem, &mut a, 0x4000_0000, 0x20_0000, PageSize::Large, 0).unwrap();
        pt.map(&mut mem, &mut a, 0xc000_0000, 0x9000, PageSize::Small, 0).unwrap();
        let tables = before - a.free_frames();
        assert_eq!(tables, 1 + 1 + 3 + 2, "PML4, one PDPT, three PDs, two PTs");
        assert_eq!(pt.free_tables(&mem, &mut a), tables);
        assert_eq!(a.free_frames(), before);
    }

    #[test]
    fn maps_translates_and_walks_small_and_large_pages() {
        let mut bits = [0u64; 16];
        let (mut mem, mut a) = setup(&mut bits);
        let pt = PageTable::new(&mut mem, &mut a, WRITABLE).unwrap();
        pt.map(&mut mem, &mut a, 0x1000, 0x5000, PageSize::Small, WRITABLE | NO_EXECUTE).unwrap();
        pt.map(&mut mem, &mut a, 0x4000_0000, 0x20_0000, PageSize::Large, 0).unwrap();
        pt.map(&mut mem, &mut a, 0xffff_8000_0000_0000, 0x7000, PageSize::Small, 0).unwrap();
        assert_eq!(pt.translate(&mem, 0x1234), Some(0x5234));
        assert_eq!(pt.translate(&mem, 0x4012_3456), Some(0x32_3456));
        assert_eq!(pt.translate(&mem, 0xffff_8000_0000_0010), Some(0x7010));
        assert_eq!(pt.translate(&mem, 0x2000), None);
        let mut leaves = Vec::new();
        pt.for_each_leaf(&mem, |l| leaves.push(l));
        assert_eq!(leaves.len(), 3);
        assert_eq!((leaves[0].va, leaves[0].pa, leaves[0].size), (0x1000, 0x5000, PageSize::Small));
        assert!(leaves[0].writable && !leaves[0].executable);
        assert_eq!((leaves[1].va, leaves[1].size), (0x4000_0000, PageSize::Large));
        assert!(!leaves[1].writable && leaves[1].executable);
        assert_eq!(leaves[2].va, 0xffff_8000_0000_0000);
    }

    #[test]
    fn refuses_bad_requests_with_typed_errors() {
        let mut bits = [0u64; 16];
        let (mut mem, mut a) = setup(&mut bits);
        let pt = PageTable::new(&mut mem, &mut a, WRITABLE).unwrap();
        let cases: &[(u64, u64, PageSize, MapError)] = &[
            (0x1001, 0x1000, PageSize::Small, MapError::Misaligned { va: 0x1001, pa: 0x1000 }),
            (0x20_0000, 0x1000, PageSize::Large, MapError::Misaligned { va: 0x20_0000, pa: 0x1000 }),
            (0x0000_8000_0000_0000, 0, PageSize::Small, MapError::NonCanonical(0x0000_8000_0000_0000)),
        ];
        for &(va, pa, size, err) in cases {
            assert_eq!(pt.map(&mut mem, &mut a, va, pa, size, 0), Err(err));
        }
        pt.map(&mut mem, &mut a, 0x1000, 0x1000, PageSize::Small, 0).unwrap();
        assert_eq!(pt.map(&mut mem, &mut a, 0x1000, 0x2000, PageSize::Small, 0), Err(MapError::AlreadyMapped(0x1000)));
        assert_eq!(pt.map(&mut mem, &mut a, 0, 0, PageSize::Large, 0), Err(MapError::SizeConflict(0)));
        pt.map(&mut mem, &mut a, 0x40_0000, 0x40_0000, PageSize::Large, 0).unwrap();
        assert_eq!(pt.map(&mut mem, &mut a, 0x40_1000, 0, PageSize::Small, 0), Err(MapError::SizeConflict(0x40_1000)));
        assert_eq!(pt.unmap(&mut mem, 0x9000), Err(MapError::NotMapped(0x9000)));
        assert_eq!(pt.unmap(&mut mem, 0x1000), Ok((0x1000, PageSize::Small)));
        assert_eq!(pt.translate(&mem, 0x1000), None);
    }

    #[test]
    fn running_out_of_frames_for_tables_is_an_error() {
        let mut bits = [0u64; 16];
        let mut mem = FakeMem::new(4 * MIB as usize);
        let mut a = BitmapAllocator::new(&mut bits);
        a.add_free(MIB, MIB + 2 * PAGE_SIZE); // the root and one more table
        let pt = PageTable::new(&mut mem, &mut a, WRITABLE).unwrap();
        assert_eq!(pt.map(&mut mem, &mut a, 0, 0, PageSize::Small, 0), Err(MapError::OutOfMemory));
    }

    #[test]
    fn map_range_uses_large_pages_where_aligned() {
        let mut bits = [0u64; 16];
        let (mut mem, mut a) = setup(&mut bits);
        let pt = PageTable::new(&mut mem, &mut a, WRITABLE).unwrap();
        pt.map_range(&mut mem, &mut a, 0x1f_f000, 0x1f_f000, 0x40_2000, WRITABLE).unwrap();
        let mut sizes = Vec::new();
        pt.for_each_leaf(&mem, |l| sizes.push((l.va, l.size)));
        assert_eq!(sizes.first(), Some(&(0x1f_f000, PageSize::Small)));
        assert!(sizes.contains(&(0x20_0000, PageSize::Large)));
        assert!(sizes.contains(&(0x40_0000, PageSize::Large)));
        assert_eq!(sizes.last(), Some(&(0x60_0000, PageSize::Small)));
        assert_eq!(sizes.len(), 4);
    }

    #[test]
    fn wx_audit_finds_a_planted_violation_and_honours_upper_levels() {
        let mut bits = [0u64; 16];
        let (mut mem, mut a) = setup(&mut bits);
        let pt = PageTable::new(&mut mem, &mut a, WRITABLE).unwrap();
        pt.map(&mut mem, &mut a, 0x1000, 0x1000, PageSize::Small, 0).unwrap(); // R+X
        pt.map(&mut mem, &mut a, 0x2000, 0x2000, PageSize::Small, WRITABLE | NO_EXECUTE).unwrap();
        assert_eq!(find_writable_executable(&mem, &pt), (2, None));
        pt.map(&mut mem, &mut a, 0x3000, 0x3000, PageSize::Small, WRITABLE).unwrap();
        let (n, bad) = find_writable_executable(&mem, &pt);
        assert_eq!(n, 3);
        assert_eq!(bad.map(|l| l.va), Some(0x3000));
        // Read-only intermediate tables make every leaf below them read-only.
        let ro = PageTable::new(&mut mem, &mut a, 0).unwrap();
        ro.map(&mut mem, &mut a, 0x3000, 0x3000, PageSize::Small, WRITABLE).unwrap();
        assert_eq!(find_writable_executable(&mem, &ro), (1, None));
    }
}
