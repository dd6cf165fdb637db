//! Well-behaved test domain: checks the CPUID hypervisor leaf, its own info, the heap and a
//! timed block, then shuts down cleanly.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::{BlockWake, ShutdownReason};
    use warden_rt::{hypercall, println};
    let mut ok = true;
    let mut check = |what: &str, pass: bool| {
        println!("check {what}: {}", if pass { "ok" } else { "FAILED" });
        ok &= pass;
    };

    let leaf = core::arch::x86_64::__cpuid(warden_rt::abi::CPUID_LEAF_BASE);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&leaf.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&leaf.ecx.to_le_bytes());
    sig[8..].copy_from_slice(&leaf.edx.to_le_bytes());
    check("cpuid signature WardenWarden", sig == warden_rt::abi::CPUID_SIGNATURE);
    let svm = core::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 2) != 0;
    check("cpuid hides SVM", !svm);

    let di = hypercall::domain_info();
    check(
        "domain info matches start info",
        di.is_ok_and(|d| d.domain_id == info.domain_id && d.memory_bytes == info.memory_bytes && d.exits > 0),
    );

    let v: alloc::vec::Vec<u64> = (1..=1000).collect();
    check("heap vector sum", v.iter().sum::<u64>() == 500_500);

    check("block 2 ms times out", hypercall::block(Some(2000)) == Ok(BlockWake::Timeout));
    check("null hypercall", hypercall::null().is_ok());

    println!("well-behaved work complete");
    if !ok {
        hypercall::shutdown(ShutdownReason::Failure);
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
