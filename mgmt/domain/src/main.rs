//! The management domain (label `mgmt_t`): brings up its assigned virtio-net device, runs
//! smoltcp (10.0.2.15/24, QEMU user networking) and serves the management protocol on one TCP
//! port, one connection at a time, with `warden-mgmt-server` deciding every request.
//!
//! Arguments (`args=` in the manifest, `;`-separated): `port:N` (default 7000), `bench:N`
//! (time N `list` hypercalls first, then the hypercalls of every create, pause and resume, for
//! `cargo xtask bench mgmt`) and one
//! `ROLE/PUBLIC-KEY-HEX/NAME` per operator. The manifest is measured, so the operator list is
//! part of the boot's attestation.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod hv;
#[cfg(target_os = "none")]
mod measure;
#[cfg(target_os = "none")]
mod net;
#[cfg(target_os = "none")]
mod serve;

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::{hypercall, println};
    let fail = |why: &dyn core::fmt::Display| -> ! {
        println!("mgmt: {why}");
        hypercall::shutdown(ShutdownReason::Failure)
    };
    let args = match serve::parse_args(info.args()) {
        Ok(v) => v,
        Err(e) => fail(&e),
    };
    let bench_tsc_per_ms = args.bench.map(measure::list_cost);
    let nic = net::Nic::open().unwrap_or_else(|e| fail(&e));
    serve::run(info, nic, args.port, args.operators, bench_tsc_per_ms)
}

#[cfg(not(target_os = "none"))]
fn main() {}
