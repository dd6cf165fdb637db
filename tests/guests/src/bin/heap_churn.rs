//! Heap test domain: allocates and frees `count:N` blocks of growing sizes (up to `max:B`
//! bytes), keeping a window of them alive and checking each block's contents before it is
//! freed, so the runtime heap must reuse freed memory: the bytes handed out in all are many
//! times the heap, which a never-freeing allocator could not serve.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use alloc::collections::VecDeque;
    use alloc::vec::Vec;
    let count = warden_guests::arg_u64(info.args(), "count").unwrap_or(50_000);
    let max = warden_guests::arg_u64(info.args(), "max")
        .unwrap_or(4096)
        .max(1) as usize;
    let heap = warden_rt::HEAP.size();
    let free_before = warden_rt::HEAP.remaining();
    // A window of live blocks, so frees interleave with allocations of other sizes and the
    // free list fragments and coalesces as a long-running server's would.
    let mut live: VecDeque<(u8, Vec<u8>)> = VecDeque::new();
    let mut total: u64 = 0;
    for i in 0..count {
        let size = 1 + (i as usize).wrapping_mul(7919) % max;
        let tag = (i % 251) as u8;
        let mut block = Vec::new();
        if block.try_reserve_exact(size).is_err() {
            warden_rt::println!(
                "heap: FAILED: allocation {i} of {size} bytes refused after {total} bytes"
            );
            warden_rt::hypercall::shutdown(warden_rt::abi::ShutdownReason::Failure);
        }
        block.resize(size, tag);
        total += size as u64;
        live.push_back((tag, block));
        if live.len() > 64 {
            let (tag, old) = live.pop_front().unwrap();
            if old.iter().any(|&b| b != tag) {
                warden_rt::println!("heap: FAILED: a live block was overwritten");
                warden_rt::hypercall::shutdown(warden_rt::abi::ShutdownReason::Failure);
            }
        }
    }
    drop(live);
    let free_after = warden_rt::HEAP.remaining();
    warden_rt::println!(
        "heap: {count} allocations, {total} bytes in all, heap {heap} bytes, free before {free_before}, after {free_after}"
    );
}

#[cfg(not(target_os = "none"))]
fn main() {}
