//! Test domain: panics on purpose; the runtime's panic handler prints the message and shuts the
//! domain down with reason "panic".
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    let id = core::hint::black_box(info.domain_id);
    panic!("deliberate panic in domain {id}");
}

#[cfg(not(target_os = "none"))]
fn main() {}
