//! Chinese Wall test domain: says which label it runs under, stays up for `ms:N` milliseconds
//! (default 300), and shuts down — so that a conflicting domain can be shown refused while it
//! runs and admitted after it ended.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    let ms = warden_guests::arg_u64(info.args(), "ms").unwrap_or(300);
    warden_rt::println!("running as {}", info.label());
    let _ = warden_rt::hypercall::block(Some(ms * 1000));
    warden_rt::println!("done after {ms} ms");
}

#[cfg(not(target_os = "none"))]
fn main() {}
