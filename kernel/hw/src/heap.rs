//! The hypervisor's heap: a fixed region in bss behind a linked-list allocator.

use linked_list_allocator::LockedHeap;

const HEAP_SIZE: usize = 4 * 1024 * 1024;

#[repr(align(4096))]
#[allow(dead_code)] // only its address is used
struct HeapSpace([u8; HEAP_SIZE]);

static mut HEAP_SPACE: HeapSpace = HeapSpace([0; HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

static INIT: spin::Once<()> = spin::Once::new();

/// Hands the heap region to the allocator (once; later calls do nothing).
pub fn init() {
    INIT.call_once(|| {
        // SAFETY: `HEAP_SPACE` is used nowhere else; `Once` guarantees this runs exactly once,
        // so the allocator becomes the region's only owner for the rest of the run.
        unsafe { HEAP.lock().init(&raw mut HEAP_SPACE as *mut u8, HEAP_SIZE) }
    });
}
