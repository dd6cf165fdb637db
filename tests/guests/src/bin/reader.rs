//! Hostile test domain: reads 1 GiB, far outside its memory (the hypervisor must stop it), or
//! the address its `addr:0x…` argument names (e.g. a device page it was not given).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    let target = info
        .args()
        .split([',', ';'])
        .find_map(|w| u64::from_str_radix(w.strip_prefix("addr:0x")?, 16).ok())
        .unwrap_or(0x4000_0000);
    warden_rt::println!("memory is {:#x} bytes; reading {target:#x}", info.memory_bytes);
    let v = warden_rt::abi::guest::hostile::read_u64(target);
    warden_rt::println!("ERROR: read {v:#x} outside my memory and was not stopped");
}

#[cfg(not(target_os = "none"))]
fn main() {}
