//! Test domain: keeps a value (`value:N`) on its x87 register stack, a pattern derived from it in
//! all sixteen XMM registers and a rounding mode derived from it in MXCSR while yielding many
//! times to other domains that do the same with their own values; everything must come back
//! unchanged, which shows the hypervisor switches the whole x87/SSE state between domains.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::guest::hostile::{
        mxcsr_get, mxcsr_set, x87_init, x87_pop, x87_push, xmm_load, xmm_store,
    };
    let value = warden_guests::arg_u64(info.args(), "value").unwrap_or(1);
    // Every byte of every XMM register depends on the value and the register's index.
    let mut xmm = [[0u8; 16]; 16];
    for (r, reg) in xmm.iter_mut().enumerate() {
        for (b, byte) in reg.iter_mut().enumerate() {
            *byte = (value.wrapping_mul(31).wrapping_add((r * 16 + b) as u64 * 7) % 251) as u8;
        }
    }
    // All exceptions masked (0x1F80) with a rounding mode (bits 13-14) and flush-to-zero
    // (bit 15) chosen by the value: two domains with different values differ here.
    let mxcsr = 0x1F80 | (((value % 4) as u32) << 13) | (((value / 4 % 2) as u32) << 15);
    x87_init();
    x87_push(value as i64);
    xmm_load(&xmm);
    mxcsr_set(mxcsr);
    for _ in 0..50 {
        warden_rt::hypercall::yield_now();
    }
    let (xmm_back, mxcsr_back) = (xmm_store(), mxcsr_get());
    let back = x87_pop() as u64;
    let mut ok = true;
    if back != value {
        warden_rt::println!("ERROR: x87 value {value} came back as {back}");
        ok = false;
    }
    if let Some(r) = (0..16).find(|&r| xmm_back[r] != xmm[r]) {
        warden_rt::println!(
            "ERROR: XMM{r} of value {value} came back as {:02x?}",
            xmm_back[r]
        );
        ok = false;
    }
    if mxcsr_back != mxcsr {
        warden_rt::println!("ERROR: MXCSR {mxcsr:#x} came back as {mxcsr_back:#x}");
        ok = false;
    }
    if !ok {
        warden_rt::hypercall::shutdown(ShutdownReason::Failure);
    }
    warden_rt::println!("x87 value {value}, XMM0-15 and MXCSR {mxcsr:#x} kept across 50 switches");
}

#[cfg(not(target_os = "none"))]
fn main() {}
