//! Installing a page-table hierarchy in CR3, after checking it keeps the hypervisor running.

use crate::layout::kernel_layout;
use crate::phys::IdentityMem;
use warden_core::mem::{PAGE_SIZE, PhysMem};
use warden_core::paging::PageTable;

/// Why a hierarchy was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallError {
    /// A page of the image (outside the guard pages) is not identity-mapped.
    ImageNotMapped(u64),
    /// A page of the image's code is writable, or not executable.
    TextNotRx(u64),
    /// The physical memory identity map does not cover an address the hypervisor needs.
    IdentityMissing(u64),
}

impl core::fmt::Display for InstallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ImageNotMapped(a) => write!(f, "image page {a:#x} is not identity-mapped"),
            Self::TextNotRx(a) => write!(f, "code page {a:#x} is not read+execute"),
            Self::IdentityMissing(a) => write!(f, "physical address {a:#x} is not identity-mapped"),
        }
    }
}

/// Loads `table` into CR3 after checking that every page of the running image except the guard
/// pages is identity-mapped (so the code, stacks, statics and heap stay where they are), that code
/// pages are executable and read-only, and that each address in `needed` (e.g. the allocator's
/// RAM, device windows) is identity-mapped.
pub fn install(table: &PageTable, mem: &IdentityMem, needed: &[u64]) -> Result<(), InstallError> {
    let layout = kernel_layout();
    let mut page = layout.image.0 & !(PAGE_SIZE - 1);
    while page < layout.image.1 {
        if !layout.guards.contains(&page) && table.translate(mem, page) != Some(page) {
            return Err(InstallError::ImageNotMapped(page));
        }
        page += PAGE_SIZE;
    }
    let mut code_ok = true;
    let mut bad = 0;
    table.for_each_leaf(mem, |leaf| {
        let end = leaf.va + leaf.size.bytes();
        if leaf.va < layout.text.1 && end > layout.text.0 && (leaf.writable || !leaf.executable) && code_ok {
            code_ok = false;
            bad = leaf.va;
        }
    });
    if !code_ok {
        return Err(InstallError::TextNotRx(bad));
    }
    for &a in needed {
        if table.translate(mem, a) != Some(a) {
            return Err(InstallError::IdentityMissing(a));
        }
    }
    let _ = mem.read_u64(table.root()); // the root itself must be readable RAM
    // SAFETY: the checks above guarantee that the code being executed, the stacks, statics and
    // heap keep their addresses and that code stays executable, so execution continues
    // unchanged; physical memory used through `IdentityMem` stays mapped as requested.
    unsafe { x86_64::registers::control::Cr3::write_raw(
        x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(table.root())),
        0,
    ) };
    Ok(())
}
