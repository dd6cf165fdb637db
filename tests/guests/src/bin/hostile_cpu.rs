//! Hostile test domain: CPU-level attacks on the core (issue 16, finding 1), one per run, chosen
//! by `attack:NAME` in its arguments:
//! - `cr0-am`: 1,000 writes of CR0 with AM set, then CLTS and LMSW; all must be intercepted (the
//!   domain's exit count grows by at least 1,000) and applied; the domain then shuts down.
//! - `cr0-cd`, `cr0-nw`, `cr4-pke`, `cr4-osxsave`, `cr4-vmxe`: a write the rule refuses; the
//!   domain must be stopped (`cr-violation`).
//! - `single-step`: RFLAGS.TF; the #DB must be intercepted and the domain stopped (`exception`).
//! - `buffers` (finding 10): `domain_info` and `audit_read` into its own read-only pages (the
//!   start-info page, the GDT, the page-table root, code, constants) must fail cleanly and leave
//!   them intact, while a stack buffer works.
//! - `deny-once` / `flood` (findings 3 and 4): one denied `audit_read`; or four 4 KiB console
//!   writes of `"a\n"` pairs (8,192 lines asked for) and 5,000 denied `audit_read`s, which the
//!   hypervisor must charge to this domain's print budget and its own audit partition.
//! - `grant-wrap` (finding 8): offers and revokes one page to domain 1 65,535 times; the slot
//!   must then be retired (the next offer gets slot 1) and the first reference stay stale.
//! - `wait`: sleeps without a timeout (the peer the others need; outcome `running`).
//! - `prefixed-vmmcall` / `prefixed-cpuid` (finding 11): a VMMCALL or CPUID with a prefix QEMU
//!   accepts; the hypervisor must stop the domain rather than resume inside the instruction.
//! - `tsc` (finding 13): TSC deltas across a 50 ms sleep while another domain spins: its TSC
//!   must not count the time the other domain ran.
//! - `ring3` (finding 6): builds user-accessible page tables and a GDT with ring-3 segments,
//!   drops to CPL 3 and calls `shutdown`; the call must be refused (`NotKernel`), which the
//!   domain reports by reading the unbacked address `0xdead_0000 + status`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::guest::hostile as h;
    use warden_rt::println;

    let attack = info.args().split(';').find_map(|kv| kv.strip_prefix("attack:")).unwrap_or("");
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
            println!("hostile_cpu: 1000 CR0 writes took {delta} exits, AM {am}, TS after LMSW {ts}");
            if delta < 1001 || !am || !ts {
                println!("hostile_cpu: ERROR: CR0 writes were not intercepted and applied");
                warden_rt::hypercall::shutdown(ShutdownReason::Failure);
            }
            h::write_cr4(cr4 | 1 << 7); // PGE: allowed
            println!("hostile_cpu: CR4.PGE set: {}", h::read_cr4() & 1 << 7 != 0);
            return;
        }
        "buffers" => return buffers(info),
        "ring3" => ring3(),
        "tsc" => {
            let rdtsc = warden_rt::abi::guest::rdtsc;
            let t0 = rdtsc();
            let _ = warden_rt::hypercall::block(Some(50_000));
            let slept = rdtsc() - t0;
            let t1 = rdtsc();
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = core::hint::black_box(x.wrapping_add(i));
            }
            let busy = rdtsc() - t1;
            println!("hostile_cpu: TSC ticks across a 50 ms sleep: {slept}; across 2000000 loop rounds: {busy}");
            return;
        }
        "wait" => {
            loop {
                let _ = warden_rt::hypercall::block(None);
            }
        }
        "grant-wrap" => return grant_wrap(),
        "deny-once" | "flood" => {
            let denied = |n: u32| {
                (0..n)
                    .filter(|_| {
                        let r = warden_rt::ipc::call_raw(warden_rt::abi::ipc::IpcCall::AuditRead as u64, [0x10_0000, 4096, 0, 0, 0]);
                        r == Err(warden_rt::ipc::IpcFail::Denied)
                    })
                    .count()
            };
            if attack == "flood" {
                let pairs = [*b"a\n"; 2048];
                for _ in 0..4 {
                    let _ = warden_rt::hypercall::console_write(pairs.as_flattened());
                }
            }
            let n = if attack == "flood" { 5000 } else { 1 };
            let got = denied(n);
            // Let the print budget refill before reporting.
            let _ = warden_rt::hypercall::block(Some(300_000));
            println!("hostile_cpu: {attack}: {got} of {n} audit reads denied");
            return;
        }
        "prefixed-vmmcall" => {
            let status = h::prefixed_vmmcall();
            println!("hostile_cpu: prefixed VMMCALL returned {status}");
        }
        "prefixed-cpuid" => h::prefixed_cpuid(),
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

/// Drops to CPL 3 with its own page tables and GDT and asks for a shutdown there (finding 6).
#[cfg(target_os = "none")]
fn ring3() -> ! {
    extern crate alloc;
    #[repr(C, align(4096))]
    struct Page([u64; 512]);
    let mut p = alloc::boxed::Box::new([const { Page([0; 512]) }; 7]);
    let addr = |p: &Page| p as *const Page as u64;
    // Page 0: PML4, 1: PDPT, 2..=5: four page directories of 2 MiB pages (0..4 GiB), 6: GDT.
    const USER_RW: u64 = 0x7;
    p[0].0[0] = addr(&p[1]) | USER_RW;
    for i in 0..4 {
        p[1].0[i] = addr(&p[2 + i]) | USER_RW;
        for j in 0..512 {
            p[2 + i].0[j] = ((i * 512 + j) as u64) << 21 | USER_RW | 0x80;
        }
    }
    p[6].0[..5].copy_from_slice(&[
        0,
        0x00af_9b00_0000_ffff,
        0x00cf_9300_0000_ffff,
        0x00cf_f300_0000_ffff,
        0x00af_fb00_0000_ffff,
    ]);
    warden_rt::println!("hostile_cpu: dropping to CPL 3 to call shutdown");
    warden_rt::abi::guest::hostile::ring3_shutdown(addr(&p[6]), addr(&p[0]))
}

/// Offers and revokes one page until slot 0's generations are spent (finding 8).
#[cfg(target_os = "none")]
fn grant_wrap() {
    use warden_rt::abi::ipc::{GRANT_READ_WRITE, IpcCall, IpcError};
    use warden_rt::ipc::{IpcFail, call_raw};
    let page = [0u8; 8192];
    let gfn = (page.as_ptr() as u64).div_ceil(4096);
    let offer = || call_raw(IpcCall::GrantOffer as u64, [1, gfn, GRANT_READ_WRITE, 0, 0]);
    let revoke = |r: u64| call_raw(IpcCall::GrantRevoke as u64, [r, 0, 0, 0, 0]);
    let mut first = None;
    let mut cycles = 0u32;
    while let Ok(r) = offer() {
        first.get_or_insert(r);
        if r & 0xffff != 0 {
            let stale = first.map(revoke) == Some(Err(IpcFail::Invalid(IpcError::StaleRef)));
            warden_rt::println!(
                "hostile_cpu: grant slot 0 retired after {cycles} offer/revoke cycles; next reference {r:#x}; first reference stale: {stale}"
            );
            return;
        }
        if revoke(r).is_err() {
            break;
        }
        cycles += 1;
    }
    warden_rt::println!("hostile_cpu: ERROR: grant cycle {cycles} failed");
    warden_rt::hypercall::shutdown(warden_rt::abi::ShutdownReason::Failure);
}

/// Output buffers in pages the domain cannot write itself are refused (finding 10).
#[cfg(target_os = "none")]
fn buffers(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ipc::{IpcCall, IpcError};
    use warden_rt::abi::{START_INFO_MAGIC, ShutdownReason, Status};
    use warden_rt::ipc::{IpcFail, call_raw};
    use warden_rt::println;

    static CONSTANTS: [u8; 256] = [0x5a; 256];
    let code = buffers as fn(_) as u64;
    let rodata = CONSTANTS.as_ptr() as u64;
    let targets = [
        ("start-info page", 0x1000),
        ("GDT", 0x2000),
        ("page-table root", 0x3000),
        ("code", code),
        ("constants", rodata),
    ];
    let mut bad = 0;
    for (what, gpa) in targets {
        let info_call = warden_rt::hypercall::domain_info_raw(gpa);
        let audit = call_raw(IpcCall::AuditRead as u64, [gpa & !0xfff, 4096, 0, 0, 0]);
        let ok = info_call == Err(Status::BadAddress) && matches!(audit, Err(IpcFail::Invalid(IpcError::BadBuffer)));
        bad += u32::from(!ok);
        println!(
            "hostile_cpu: buffers into the {what}: domain_info {info_call:?}, audit_read {}",
            if ok { "refused" } else { "NOT refused" }
        );
    }
    let mut stack = [0u8; 4096];
    let own = warden_rt::hypercall::domain_info_raw(stack.as_mut_ptr() as u64);
    let audit = call_raw(IpcCall::AuditRead as u64, [stack.as_mut_ptr() as u64, 4096, 0, 0, 0]);
    let intact = info.magic == START_INFO_MAGIC && CONSTANTS.iter().all(|&b| b == 0x5a);
    println!(
        "hostile_cpu: buffers on its stack: domain_info {own:?}, audit_read ok {}; read-only pages intact: {intact}",
        audit.is_ok()
    );
    if bad > 0 || own.is_err() || audit.is_err() || !intact {
        println!("hostile_cpu: ERROR: an output buffer check failed");
        warden_rt::hypercall::shutdown(ShutdownReason::Failure);
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
