//! Hostile test domain: CPU-level attacks on the core (issue 16, finding 1), one per run, chosen
//! by `attack:NAME` in its arguments:
//! - `cr0-am`: 1,000 writes of CR0 with AM set, then CLTS and LMSW; all must be intercepted (the
//!   domain's exit count grows by at least 1,000) and applied; the domain then shuts down.
//! - `cr0-cd`, `cr0-nw`, `cr4-pke`, `cr4-osxsave`, `cr4-vmxe`: a write the rule refuses; the
//!   domain must be stopped (`cr-violation`).
//! - `single-step`: RFLAGS.TF; the #DB must be intercepted and the domain stopped (`exception`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::guest::hostile as h;
    use warden_rt::println;

    let attack = info
        .args()
        .split(';')
        .find_map(|kv| kv.strip_prefix("attack:"))
        .unwrap_or("");
    let exits = || warden_rt::hypercall::domain_info().map_or(0, |i| i.exits);
    let (cr0, cr4) = (h::read_cr0(), h::read_cr4());
    println!("hostile_cpu: {attack}: CR0={cr0:#x} CR4={cr4:#x}");
    match attack {
        "cr0-am" => {
            let before = exits();
            for _ in 0..1000 {
                h::write_cr0(cr0 | 1 << 18);
            }
            let delta = exits() - before;
            h::clts_lmsw(0x9); // PE | TS
            let (am, ts) = (h::read_cr0() & 1 << 18 != 0, h::read_cr0() & 1 << 3 != 0);
            h::write_cr0(h::read_cr0() & !(1 << 3)); // TS off again (no #NM handler here)
            println!(
                "hostile_cpu: 1000 CR0 writes took {delta} exits, AM {am}, TS after LMSW {ts}"
            );
            if delta < 1001 || !am || !ts {
                println!("hostile_cpu: ERROR: CR0 writes were not intercepted and applied");
                warden_rt::hypercall::shutdown(ShutdownReason::Failure);
            }
            h::write_cr4(cr4 | 1 << 7); // PGE: allowed
            println!("hostile_cpu: CR4.PGE set: {}", h::read_cr4() & 1 << 7 != 0);
            return;
        }
        "cr0-cd" => h::write_cr0(cr0 | 1 << 30),
        "cr0-nw" => h::write_cr0(cr0 | 1 << 29),
        "cr4-pke" => h::write_cr4(cr4 | 1 << 22),
        "cr4-osxsave" => h::write_cr4(cr4 | 1 << 18),
        "cr4-vmxe" => h::write_cr4(cr4 | 1 << 13),
        "single-step" => h::single_step(),
        _ => println!("hostile_cpu: unknown attack"),
    }
    println!("hostile_cpu: ERROR: {attack} was not stopped");
    warden_rt::hypercall::shutdown(ShutdownReason::Failure);
}

#[cfg(not(target_os = "none"))]
fn main() {}
