//! The hypervisor's memory: the frame allocator over the boot memory map, and its own W^X page
//! tables (code read+execute, constants read-only, data and stacks read+write+no-execute, guard
//! pages under every stack left unmapped, page 0 unmapped, all other RAM identity-mapped NX).

use alloc::boxed::Box;
use alloc::vec;
use warden_core::frame::BitmapAllocator;
use warden_core::mem::{LARGE_PAGE_SIZE, PAGE_SIZE};
use warden_core::multiboot::{BootInfo, RegionKind};
use warden_core::paging::{MapError, PageTable, find_writable_executable, flags};
use warden_hw::layout::kernel_layout;
use warden_hw::phys::IdentityMem;

/// Frames the bitmap can track: 4 GiB worth (the identity map's reach).
const TRACKED_FRAMES: usize = (warden_hw::phys::IDENTITY_LIMIT / PAGE_SIZE) as usize;
/// RAM at or above this is not used (QEMU's PCI hole starts at 3 GiB).
const RAM_CEILING: u64 = 0xc000_0000;

/// The physical frame allocator, ready after [`init`].
pub(crate) static FRAMES: spin::Mutex<Option<BitmapAllocator<'static>>> = spin::Mutex::new(None);

/// Bytes the frame allocator had free when the hypervisor's own tables were in place: the
/// memory domains can ever get (`PhysInfo::total_bytes`).
static TOTAL_BYTES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// See [`TOTAL_BYTES`].
pub(crate) fn total_bytes() -> u64 {
    TOTAL_BYTES.load(core::sync::atomic::Ordering::Relaxed)
}

/// The hypervisor's page tables, installed by [`init`].
pub(crate) static KERNEL_TABLES: spin::Once<PageTable> = spin::Once::new();

/// Runs `f` with the frame allocator.
pub(crate) fn with_frames<R>(f: impl FnOnce(&mut BitmapAllocator<'static>) -> R) -> R {
    let mut guard = FRAMES.lock();
    let frames = guard.as_mut().expect("frame allocator used before memory::init");
    f(frames)
}

/// Why memory set-up failed.
#[derive(Debug)]
pub(crate) enum MemoryError {
    Map(MapError),
    Install(warden_hw::paging::InstallError),
    WritableExecutable(u64),
}

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Map(e) => write!(f, "building the page tables: {e:?}"),
            Self::Install(e) => write!(f, "installing the page tables: {e}"),
            Self::WritableExecutable(va) => write!(f, "W^X violated at {va:#x}"),
        }
    }
}

impl From<MapError> for MemoryError {
    fn from(e: MapError) -> Self {
        Self::Map(e)
    }
}

pub(crate) fn print_map(boot: &BootInfo) {
    let mut total = 0;
    for r in &boot.regions {
        let kind = match r.kind {
            RegionKind::Available => "available",
            RegionKind::AcpiReclaimable => "ACPI reclaimable",
            RegionKind::AcpiNvs => "ACPI NVS",
            RegionKind::Bad => "bad",
            RegionKind::Reserved(_) => "reserved",
        };
        if r.kind == RegionKind::Available {
            total += r.len;
        }
        println!("memory: [{:#012x}-{:#012x}) {kind}", r.start, r.end());
    }
    println!("memory: {} MiB available", total >> 20);
}

fn ram_top(boot: &BootInfo) -> u64 {
    let top = boot
        .regions
        .iter()
        .filter(|r| r.kind == RegionKind::Available)
        .map(|r| r.end())
        .chain(boot.modules.iter().map(|m| m.end))
        .max()
        .unwrap_or(0);
    top.min(RAM_CEILING)
}

/// Sets up the frame allocator and switches to the hypervisor's W^X page tables.
pub(crate) fn init(boot: &BootInfo) -> Result<(), MemoryError> {
    let layout = kernel_layout();
    let bits: &'static mut [u64] = Box::leak(vec![0u64; TRACKED_FRAMES / 64].into_boxed_slice());
    let mut frames = BitmapAllocator::new(bits);
    for r in boot.regions.iter().filter(|r| r.kind == RegionKind::Available) {
        frames.add_free(r.start.max(0x10_0000), r.end().min(RAM_CEILING));
    }
    frames.reserve(0, 0x10_0000); // real-mode memory, BIOS data, option ROMs
    frames.reserve(layout.image.0, layout.image.1);
    for &(s, e) in &boot.occupied {
        frames.reserve(s, e);
    }
    for m in &boot.modules {
        frames.reserve(m.start, m.end);
    }

    let mut mem = IdentityMem::new();
    let table = PageTable::new(&mut mem, &mut frames, flags::WRITABLE)?;
    // The first large pages, up to the end of the image, in 4 KiB pages with per-section rights.
    let small_end = layout.image.1.next_multiple_of(LARGE_PAGE_SIZE);
    let in_span = |a: u64, s: (u64, u64)| a >= s.0 && a < s.1;
    let mut page = PAGE_SIZE; // page 0 stays unmapped: null dereferences fault
    while page < small_end {
        if !layout.guards.contains(&page) {
            let rights = if in_span(page, layout.text) {
                0 // read + execute
            } else if in_span(page, layout.rodata) || (page >= layout.image.0 && page < layout.text.0) {
                flags::NO_EXECUTE // read only (constants; the boot stub never runs again)
            } else {
                flags::WRITABLE | flags::NO_EXECUTE
            };
            table.map(&mut mem, &mut frames, page, page, warden_core::paging::PageSize::Small, rights | flags::GLOBAL)?;
        }
        page += PAGE_SIZE;
    }
    let top = ram_top(boot).next_multiple_of(LARGE_PAGE_SIZE);
    if top > small_end {
        table.map_range(&mut mem, &mut frames, small_end, small_end, top - small_end, flags::WRITABLE | flags::NO_EXECUTE)?;
    }
    let mmio = warden_hw::mmio::WINDOW;
    table.map_range(
        &mut mem,
        &mut frames,
        mmio.start,
        mmio.start,
        mmio.end - mmio.start,
        flags::WRITABLE | flags::NO_EXECUTE | flags::NO_CACHE | flags::WRITE_THROUGH,
    )?;

    let needed = [table.root(), top - PAGE_SIZE, warden_core::tis::TIS_BASE];
    warden_hw::paging::install(&table, &mem, &needed).map_err(MemoryError::Install)?;

    let (count, bad) = find_writable_executable(&mem, &table);
    if let Some(leaf) = bad {
        return Err(MemoryError::WritableExecutable(leaf.va));
    }
    println!(
        "paging: W^X page tables installed: {count} mappings checked, none writable and executable; {} guard pages unmapped",
        layout.guards.len()
    );
    println!(
        "memory: frame allocator ready: {} frames ({} MiB) free",
        frames.free_frames(),
        frames.free_frames() as u64 * PAGE_SIZE >> 20
    );
    TOTAL_BYTES.store(frames.free_frames() as u64 * PAGE_SIZE, core::sync::atomic::Ordering::Relaxed);
    KERNEL_TABLES.call_once(|| table);
    *FRAMES.lock() = Some(frames);
    Ok(())
}
