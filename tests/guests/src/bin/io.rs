//! Hostile test domain: writes to an I/O port (domains own no devices; the hypervisor must stop it).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(_info: &'static warden_rt::abi::StartInfo) {
    warden_rt::println!("writing port 0x80");
    warden_rt::abi::guest::hostile::out_u8(0x80, 0x42);
    warden_rt::println!("ERROR: wrote a port and was not stopped");
}

#[cfg(not(target_os = "none"))]
fn main() {}
