//! Test domain: prints `lines:N` numbered lines (default 10), yielding after each, then shuts
//! down. Next to a spinner it finishes only if the hypervisor preempts the spinner.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    let n = warden_guests::arg_u64(info.args(), "lines").unwrap_or(10);
    for i in 1..=n {
        warden_rt::println!("line {i} of {n}");
        warden_rt::hypercall::yield_now();
    }
    warden_rt::println!("all {n} lines printed");
}

#[cfg(not(target_os = "none"))]
fn main() {}
