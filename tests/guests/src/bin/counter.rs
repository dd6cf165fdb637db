//! Lifecycle test domain: says which label it runs under, then counts forever without a
//! hypercall. Its progress is the CPU time the hypervisor reports for it (`DomainGetInfo`):
//! it grows while the domain runs and stops while it is paused or starved.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    warden_rt::println!("counting as {} (id {})", info.label(), info.domain_id);
    let mut x: u64 = 0;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
