//! Hostile test domain: reads an MSR the hypervisor does not virtualise. The documented rule
//! injects #GP; this domain has no IDT, so the #GP escalates to a triple fault.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(_info: &'static warden_rt::abi::StartInfo) {
    warden_rt::println!("reading MSR 0x1234");
    let v = warden_rt::abi::guest::hostile::read_msr(0x1234);
    warden_rt::println!("ERROR: read {v:#x} without a #GP");
}

#[cfg(not(target_os = "none"))]
fn main() {}
