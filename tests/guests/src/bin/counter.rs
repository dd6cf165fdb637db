//! Lifecycle test domain: says which label it runs under, then counts forever without a
//! hypercall. Its progress is the CPU time the hypervisor reports for it (`DomainGetInfo`):
//! it grows while the domain runs and stops while it is paused or starved. With `args` `first`
//! it prints the TSC at its first line and sleeps (for the lifecycle benchmark). With `ckpt`
//! (the checkpoint scenario) it plants values in its x87, XMM and MXCSR registers, then counts
//! in steps of `STEP` register increments and prints each step with whether those registers
//! still hold what it planted: a checkpointed and restored copy must go on from the next step.
//! Each step also writes one of three heap pages and names it (the dirty-log check).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    if info.args() == "first" {
        // For `cargo xtask bench lifecycle`: when did this domain's code first run?
        let tsc = warden_rt::abi::guest::rdtsc();
        warden_rt::println!("bench: first_tsc={tsc}");
        loop {
            let _ = warden_rt::hypercall::block(None);
        }
    }
    if info.args() == "ckpt" {
        checkpointed();
    }
    warden_rt::println!("counting as {} (id {})", info.label(), info.domain_id);
    let mut x: u64 = 0;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}

/// Increments of the counter register per printed step.
#[cfg(target_os = "none")]
const STEP: u64 = 1_000_000;

#[cfg(target_os = "none")]
fn checkpointed() -> ! {
    use warden_rt::abi::guest::hostile::{
        mxcsr_get, mxcsr_set, x87_init, x87_pop, x87_push, xmm_load, xmm_store,
    };
    let mut xmm = [[0u8; 16]; 16];
    for (r, reg) in xmm.iter_mut().enumerate() {
        for (b, byte) in reg.iter_mut().enumerate() {
            *byte = (0x5a ^ (r * 16 + b) * 13) as u8;
        }
    }
    // Round toward zero, all exceptions masked: not the default a fresh domain gets.
    let mxcsr = 0x1f80 | 3 << 13;
    const X87: i64 = 0x1357_9bdf;
    x87_init();
    x87_push(X87);
    xmm_load(&xmm);
    mxcsr_set(mxcsr);
    warden_rt::println!("counter: planted x87 {X87:#x}, XMM0-15 and MXCSR {mxcsr:#x}");
    // Six heap pages; each step writes one of the even ones (the odd ones never change after
    // this), and reports which: what dirty logging must find.
    let mut area = alloc::vec![0u8; 7 * 4096];
    let addr = area.as_ptr() as usize;
    let off = addr.next_multiple_of(4096) - addr;
    warden_rt::println!(
        "counter: heap pages at {:#x}..{:#x}",
        addr + off,
        addr + off + 6 * 4096
    );
    let mut x: u64 = 0;
    let mut step: u64 = 0;
    loop {
        for _ in 0..STEP {
            x = core::hint::black_box(x.wrapping_add(1));
        }
        step += 1;
        let k = off + (step as usize % 3) * 2 * 4096;
        area[k] = area[k].wrapping_add(1);
        let wrote = core::hint::black_box(&mut area)[k];
        let x87 = x87_pop();
        x87_push(x87);
        let fpu = x87 == X87 && xmm_store() == xmm && mxcsr_get() == mxcsr;
        warden_rt::println!(
            "count={step} x={x} fpu={} wrote={:#x}:{wrote}",
            if fpu { "kept" } else { "LOST" },
            addr + k
        );
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
