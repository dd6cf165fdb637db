//! Test domain: keeps a value (`value:N`) on its x87 register stack while yielding many times to
//! other domains that do the same with their own values; the value must come back unchanged,
//! which shows the hypervisor switches the x87/SSE state between domains.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::guest::hostile::{x87_init, x87_pop, x87_push};
    let value = warden_guests::arg_u64(info.args(), "value").unwrap_or(1) as i64;
    x87_init();
    x87_push(value);
    for _ in 0..50 {
        warden_rt::hypercall::yield_now();
    }
    let back = x87_pop();
    if back == value {
        warden_rt::println!("x87 value {value} kept across 50 switches");
    } else {
        warden_rt::println!("ERROR: x87 value {value} came back as {back}");
        warden_rt::hypercall::shutdown(warden_rt::abi::ShutdownReason::Failure);
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
