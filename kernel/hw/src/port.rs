//! x86 I/O-port access.
//!
//! Port I/O cannot violate Rust's memory safety on the devices Warden touches (serial, PIT,
//! PIC, debug-exit: none of them can DMA), so these wrappers are safe. Only the hypervisor runs
//! at CPL 0; domains never reach these functions.

use x86_64::instructions::port::Port;

/// Writes a byte to `port`.
pub fn outb(port: u16, value: u8) {
    // SAFETY: see the module comment: the ports Warden uses have no memory side effects.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Reads a byte from `port`.
pub fn inb(port: u16) -> u8 {
    // SAFETY: as for `outb`.
    unsafe { Port::<u8>::new(port).read() }
}

/// Writes a 32-bit value to `port`.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// Reads a 32-bit value from `port`.
pub fn inl(port: u16) -> u32 {
    // SAFETY: as for `outb`; PCI configuration reads (0xCFC) have no memory side effects.
    unsafe { Port::<u32>::new(port).read() }
}
