//! The Warden domain runtime: makes a domain an ordinary `no_std` Rust program with an entry
//! macro, a panic handler, a console (`print!`/`println!`), typed hypercall wrappers and a
//! freeing heap for `alloc`.
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! #![forbid(unsafe_code)]
//! warden_rt::entry!(main);
//! fn main(info: &'static warden_rt::abi::StartInfo) {
//!     warden_rt::println!("hello from {}", info.name());
//! }
//! ```
//! Returning from `main` shuts the domain down with reason "done"; a panic prints the message
//! and shuts down with reason "panic".
#![no_std]
#![forbid(unsafe_code)]

pub use warden_abi as abi;

pub mod console;
// Device assignment (issue 11): the device calls of a domain holding a PCI function.
pub mod device;
pub mod hypercall;
// The checkpoint/restore mechanism (issue 13).
pub mod introspect;
// Inter-domain calls and the shared ring (issue 7).
pub mod ipc;
// Domain lifecycle and host management (issue 11).
pub mod lifecycle;
pub mod ring;
// The vTPM frontend (issue 12).
#[cfg(feature = "vtpm")]
pub mod vtpm;

#[cfg(feature = "vtpm")]
extern crate alloc;

use warden_abi::guest::{Boot, DomainHeap};
use warden_abi::{ABI_VERSION, ShutdownReason, StartInfo, Version};

/// The heap: the start-info page's free range behind a linked-list allocator (freed blocks are
/// reused).
#[cfg_attr(target_os = "none", global_allocator)]
pub static HEAP: DomainHeap = DomainHeap::new();

/// Declares `main: fn(&'static StartInfo)` as the domain's main function.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::abi::domain_entry!(|boot| $crate::start(boot, $main));
    };
}

/// Runs `main` after checking the ABI version and setting up the heap; never returns.
/// Called by [`entry!`].
pub fn start(boot: Boot, main: fn(&'static StartInfo)) -> ! {
    let info = boot.info();
    if Version::decode(info.abi_version).major != ABI_VERSION.major {
        println!("runtime: hypervisor ABI {:#x} is not major version {}", info.abi_version, ABI_VERSION.major);
        hypercall::shutdown(ShutdownReason::Failure);
    }
    HEAP.init(&boot);
    main(info);
    hypercall::shutdown(ShutdownReason::Done)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // One line (the hypervisor's console keeps lines whole): message, then location.
    match info.location() {
        Some(l) => println!("panic: {} at {}:{}", info.message(), l.file(), l.line()),
        None => println!("panic: {}", info.message()),
    }
    hypercall::shutdown(ShutdownReason::Panic)
}
