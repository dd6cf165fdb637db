//! The Warden hypervisor image: boots through Multiboot v1 or Multiboot2, takes the machine
//! over, and runs the boot scenario's domains.
//!
//! On the host this crate builds to a stub `main` (so `cargo test --workspace` works); the real
//! image exists only for `x86_64-unknown-none` and is built by `cargo xtask build`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
#[macro_use]
mod console;
#[cfg(target_os = "none")]
mod cpuinfo;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod firmware;
#[cfg(target_os = "none")]
mod mac;
#[cfg(target_os = "none")]
mod measure;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod platform_tpm;
#[cfg(target_os = "none")]
mod selftest;
#[cfg(target_os = "none")]
mod svm;
#[cfg(target_os = "none")]
mod tpm_bench;

#[cfg(target_os = "none")]
warden_hw::entry_point!(kmain);

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("warden is a bare-metal image: build and boot it with `cargo xtask run`");
    std::process::exit(2);
}

/// The version printed in the banner.
#[cfg(target_os = "none")]
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(target_os = "none")]
fn kmain(magic: u32, info: u32) -> ! {
    use warden_core::cmdline::CmdLine;
    use warden_hw::debug_exit::{ExitCode, exit};

    warden_hw::serial::init();
    warden_hw::tables::init(exceptions::handle);
    warden_hw::heap::init();
    println!("Warden {VERSION} - x86_64 micro-hypervisor");
    cpuinfo::print_banner();

    let mem = warden_hw::phys::IdentityMem::new();
    let limit = warden_hw::phys::IDENTITY_LIMIT;
    let (boot, uefi) = if magic == warden_core::multiboot2::BOOTLOADER_MAGIC {
        match warden_core::multiboot2::parse(&mem, magic, u64::from(info), limit) {
            Ok(i) => (i.boot, Some(i.firmware)),
            Err(e) => {
                println!("boot: FATAL: bad Multiboot2 boot information: {e}");
                exit(ExitCode::Failure);
            }
        }
    } else {
        match warden_core::multiboot::parse(&mem, magic, u64::from(info), limit) {
            Ok(b) => (b, None),
            Err(e) => {
                println!("boot: FATAL: bad boot information: {e}");
                exit(ExitCode::Failure);
            }
        }
    };
    let mut boot = boot;
    if let Some(fw) = &uefi {
        firmware::print_uefi(fw);
        if let Err(e) = firmware::add_efi_memory_map(&mem, fw, &mut boot) {
            println!("boot: FATAL: bad EFI memory map: {e}");
            exit(ExitCode::Failure);
        }
    }
    let cmdline = CmdLine::new(&boot.cmdline);
    println!("boot: command line: {}", boot.cmdline);
    memory::print_map(&boot);
    for (i, m) in boot.modules.iter().enumerate() {
        println!("module {i}: [{:#010x}-{:#010x}) {} bytes \"{}\"", m.start, m.end, m.len(), m.string);
    }
    if boot.modules.is_empty() {
        println!("module: none");
    }
    // Before the hypervisor's own page tables: they leave page 0 (the BIOS data area, where the
    // legacy RSDP scan starts) unmapped as the null guard.
    let acpi = firmware::discover(&mem, uefi.as_ref(), limit);
    firmware::collect_event_log(&mem, limit, &cmdline);
    if let Err(e) = memory::init(&boot) {
        println!("memory: FATAL: {e}");
        exit(ExitCode::Failure);
    }
    selftest::run_requested_fault(&cmdline);
    platform_tpm::probe(&cmdline, acpi.as_ref().and_then(|a| a.tpm2.as_ref()));
    measure::measured_launch(&boot, &cmdline);
    tpm_bench::run(&cmdline);

    println!("boot: complete");
    let end_when_done = match cmdline.value("end_when") {
        None => false,
        Some("domains-done") => true,
        Some(other) => {
            println!("boot: FATAL: end_when={other}: the only value is domains-done");
            exit(ExitCode::Failure);
        }
    };
    svm::run_domains(&boot, end_when_done);
    selftest::hold_if_requested(&cmdline);
    if boot.modules.is_empty() {
        println!("warden: no domains to run; shutting down");
    }
    exit(ExitCode::Success);
}
