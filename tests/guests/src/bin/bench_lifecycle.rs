//! Benchmark domain for `cargo xtask bench lifecycle` (run under `-icount shift=0`, where TSC
//! deltas count instructions): the cost of each lifecycle hypercall measured from a management
//! domain, beside the null hypercall's in the same run. It creates and builds one 4 MiB domain
//! from the `counter` boot image (which, given `first`, prints the TSC of its first line and
//! sleeps), starts it, times pause/unpause round trips, lists, destroys it and shuts the host
//! down.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::guest::rdtsc;
    use warden_rt::abi::lifecycle::{CreateRequest, DomainStatus};
    use warden_rt::{hypercall, lifecycle as lc};
    let n = warden_guests::arg_u64(info.args(), "iterations").unwrap_or(200);
    let per_call = |f: &mut dyn FnMut()| warden_guests::per_call(n, f);
    let once = |f: &mut dyn FnMut()| {
        let t0 = rdtsc();
        f();
        rdtsc() - t0
    };
    let null = per_call(&mut || {
        let _ = hypercall::null();
    });
    let mut id = 0;
    let create = once(&mut || {
        id = lc::create(&CreateRequest::new("b1", "bench_t", 4, 9, "first")).expect("create");
    });
    let (gpa, len) = lc::boot_image("counter").expect("the counter image");
    let build = once(&mut || lc::build_raw(id, gpa, len).expect("build"));
    // The new domain has the higher priority: after the yield it runs at once and prints the
    // TSC at its first line; the difference is unpause -> first instruction of `main`.
    let unpause_at = rdtsc();
    lc::unpause(id).expect("unpause");
    hypercall::yield_now();
    let pause_unpause = per_call(&mut || {
        lc::pause(id).expect("pause");
        lc::unpause(id).expect("unpause");
    });
    let mut recs = [DomainStatus::from_bytes(&[0; DomainStatus::SIZE]); 4];
    let list = per_call(&mut || {
        let _ = lc::list(&mut recs).expect("list");
    });
    let getinfo = per_call(&mut || {
        let _ = lc::info(id).expect("getinfo");
    });
    let destroy = once(&mut || lc::destroy(id).expect("destroy"));
    warden_rt::println!(
        "bench: iterations={n} null={null} create={create} build={build} image_bytes={len} unpause_at={unpause_at} \
         pause_unpause={pause_unpause} list2={list} getinfo={getinfo} destroy={destroy}"
    );
    let _ = lc::host_shutdown();
}

#[cfg(not(target_os = "none"))]
fn main() {}
