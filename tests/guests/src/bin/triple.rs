//! Hostile test domain: touches an address its page tables do not map (1 TiB); with no IDT the
//! page fault escalates to a triple fault, which the hypervisor must contain.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(_info: &'static warden_rt::abi::StartInfo) {
    warden_rt::println!("faulting without an IDT");
    let v = warden_rt::abi::guest::hostile::read_u64(0x100_0000_0000);
    warden_rt::println!("ERROR: read {v:#x} and did not fault");
}

#[cfg(not(target_os = "none"))]
fn main() {}
