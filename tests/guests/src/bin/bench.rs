//! Benchmark domain: TSC cost of the null hypercall round trip and of a bare exit with no
//! dispatch, a CPUID of Warden's leaf (run under `-icount shift=0`, where TSC deltas count
//! instructions; the domain runs alone, so its per-domain TSC offset never changes).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::guest::rdtsc;
    use warden_rt::hypercall;
    let n = warden_guests::arg_u64(info.args(), "iterations").unwrap_or(20_000);
    // Each figure is the best of a few rounds, so a timer tick in one round does not count.
    let measure = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let t0 = rdtsc();
                for _ in 0..n {
                    f();
                }
                (rdtsc() - t0) / n
            })
            .min()
            .unwrap_or(0)
    };
    let null = measure(&|| {
        let _ = hypercall::null();
    });
    let bare = measure(&|| hypercall::bare_exit());
    warden_rt::println!("bench: iterations={n} null_hypercall={null} bare_vmmcall={bare}");
}

#[cfg(not(target_os = "none"))]
fn main() {}
