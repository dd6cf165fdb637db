//! Test domain: passes bad pointers and lengths to hypercalls; every one must be refused with
//! an error while the domain keeps running.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::Status;
    use warden_rt::hypercall::{console_write_raw, domain_info_raw};
    let mem = info.memory_bytes;
    let cases: [(&str, Result<(), Status>, Status); 8] = [
        ("console: far outside memory", console_write_raw(0x4000_0000, 16).map(|_| ()), Status::BadAddress),
        ("console: null page", console_write_raw(0, 8).map(|_| ()), Status::BadAddress),
        ("console: across the end of memory", console_write_raw(mem - 4, 64).map(|_| ()), Status::BadAddress),
        ("console: wrapping range", console_write_raw(u64::MAX - 2, 8).map(|_| ()), Status::BadAddress),
        ("console: stack guard page", console_write_raw(info.stack_bottom - 8, 16).map(|_| ()), Status::BadAddress),
        ("console: too long", console_write_raw(info.image_start, 1 << 20).map(|_| ()), Status::BadLength),
        ("info: outside memory", domain_info_raw(mem), Status::BadAddress),
        ("info: hypervisor-looking address", domain_info_raw(0xffff_8000_0000_0000), Status::BadAddress),
    ];
    let mut refused = 0;
    for (what, got, want) in cases {
        if got == Err(want) {
            refused += 1;
        } else {
            warden_rt::println!("ERROR: {what}: expected {}, got {got:?}", want.name());
        }
    }
    warden_rt::println!("{refused} of {} bad pointers refused", cases.len());
    if refused != cases.len() {
        warden_rt::hypercall::shutdown(warden_rt::abi::ShutdownReason::Failure);
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
