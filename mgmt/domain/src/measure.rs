//! `cargo xtask bench mgmt`'s in-domain figures: what one `list` hypercall costs the management
//! domain, in nanoseconds, to print beside the whole path's request rate (the create sequence,
//! pause and unpause are timed in `hv.rs` with the same calibration). The TSC is calibrated
//! against the hypervisor's timer (a 100 ms block), since its rate under QEMU is not known.

use warden_abi::guest::rdtsc;
use warden_abi::lifecycle::DomainStatus;
use warden_rt::{hypercall, lifecycle, println};

/// Times `calls` `list` hypercalls and prints the mean cost; returns the TSC ticks per
/// millisecond it calibrated (the lifecycle calls are timed with it afterwards).
pub fn list_cost(calls: u32) -> u64 {
    let blank = DomainStatus::from_bytes(&[0; DomainStatus::SIZE]);
    let mut out = [blank; 16];
    let t0 = rdtsc();
    let _ = hypercall::block(Some(100_000));
    let per_ms = (rdtsc() - t0) / 100;
    let t0 = rdtsc();
    for _ in 0..calls {
        let _ = lifecycle::list(&mut out);
    }
    let ticks = (rdtsc() - t0) / u64::from(calls.max(1));
    let ns = ticks * 1_000_000 / per_ms.max(1);
    println!("mgmt: bench list_hypercall_ns={ns} calls={calls} tsc_per_ms={per_ms}");
    per_ms
}
