//! QEMU's `isa-debug-exit` device: ends the emulator with a status the test rig reads.

use crate::port::outl;

/// The I/O port the rig configures (`-device isa-debug-exit,iobase=0xf4,iosize=4`).
pub const PORT: u16 = 0xf4;

/// Exit codes; QEMU's process status becomes `(code << 1) | 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Everything the boot was asked to do succeeded.
    Success = 0x10,
    /// A check failed (a domain missed its expected outcome, a required TPM is absent...).
    Failure = 0x11,
    /// The hypervisor panicked.
    Panic = 0x12,
    /// An unexpected CPU exception in the hypervisor.
    Exception = 0x13,
}

/// Asks QEMU to exit, then halts forever (on a machine without the device).
pub fn exit(code: ExitCode) -> ! {
    outl(PORT, code as u32);
    loop {
        crate::cpu::halt_forever();
    }
}
