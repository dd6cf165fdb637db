//! Hostile test domain: probes an MSR (gets nothing), then writes LSTAR, which is forbidden.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(_info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::guest::hostile;
    // EFER is virtualised: reading it is allowed and SVME is hidden.
    let efer = hostile::read_msr(0xc000_0080);
    warden_rt::println!("EFER reads {efer:#x} (SVME hidden: {})", efer & (1 << 12) == 0);
    warden_rt::println!("writing LSTAR");
    hostile::write_msr(0xc000_0082, 0xdead_beef);
    warden_rt::println!("ERROR: wrote LSTAR and was not stopped");
}

#[cfg(not(target_os = "none"))]
fn main() {}
