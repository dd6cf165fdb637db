//! Benchmark domain: TSC cost of the null hypercall round trip and of a bare exit with no
//! dispatch, a CPUID of Warden's leaf (run under `-icount shift=0`, where TSC deltas count
//! instructions; the domain runs alone, so its per-domain TSC offset never changes).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::hypercall;
    let n = warden_guests::arg_u64(info.args(), "iterations").unwrap_or(20_000);
    let null = warden_guests::per_call(n, &mut || {
        let _ = hypercall::null();
    });
    let bare = warden_guests::per_call(n, &mut || hypercall::bare_exit());
    warden_rt::println!("bench: iterations={n} null_hypercall={null} bare_vmmcall={bare}");
}

#[cfg(not(target_os = "none"))]
fn main() {}
