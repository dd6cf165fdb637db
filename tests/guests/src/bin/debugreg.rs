//! Hostile test domain: reads a debug register. DR0-DR3 are not switched per domain, so they
//! could carry data between domains behind the MAC policy's back; the hypervisor stops it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(_info: &'static warden_rt::abi::StartInfo) {
    warden_rt::println!("reading DR0");
    let v = warden_rt::abi::guest::hostile::read_dr0();
    warden_rt::println!("ERROR: read DR0 = {v:#x} and was not stopped");
}

#[cfg(not(target_os = "none"))]
fn main() {}
