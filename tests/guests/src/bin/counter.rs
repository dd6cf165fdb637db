//! Lifecycle test domain: says which label it runs under, then counts forever without a
//! hypercall. Its progress is the CPU time the hypervisor reports for it (`DomainGetInfo`):
//! it grows while the domain runs and stops while it is paused or starved. With `args` `first`
//! it prints the TSC at its first line and sleeps (for the lifecycle benchmark).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

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
    warden_rt::println!("counting as {} (id {})", info.label(), info.domain_id);
    let mut x: u64 = 0;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
