//! Hostile test domain: reads 1 GiB, far outside its memory (the hypervisor must stop it).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    let target = 0x4000_0000;
    warden_rt::println!("memory is {:#x} bytes; reading {target:#x}", info.memory_bytes);
    let v = warden_rt::abi::guest::hostile::read_u64(target);
    warden_rt::println!("ERROR: read {v:#x} outside my memory and was not stopped");
}

#[cfg(not(target_os = "none"))]
fn main() {}
