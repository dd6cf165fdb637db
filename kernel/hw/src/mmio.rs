//! Memory-mapped device registers in the 0xFEC0_0000..4 GiB window (IOAPIC, TPM TIS/CRB, LAPIC).

use warden_core::crb::{CRB_BASE, CrbRegs};
use warden_core::tis::{TIS_BASE, TisRegs};

/// The window the hypervisor maps uncached for devices.
pub const WINDOW: core::ops::Range<u64> = 0xfec0_0000..0x1_0000_0000;

fn check(addr: u64, size: u64) {
    // A wrong address here is a hypervisor bug; fail loudly rather than touch RAM.
    assert!(
        addr >= WINDOW.start && addr + size <= WINDOW.end && addr % size == 0,
        "MMIO access outside the device window: {addr:#x}"
    );
}

/// Reads an 8-bit device register.
pub fn read8(addr: u64) -> u8 {
    check(addr, 1);
    // SAFETY: `addr` is in the device window, identity-mapped uncached; a read of a device
    // register does not alias any Rust object.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

/// Writes an 8-bit device register.
pub fn write8(addr: u64, v: u8) {
    check(addr, 1);
    // SAFETY: as for `read8`; device registers are not Rust memory.
    unsafe { core::ptr::write_volatile(addr as *mut u8, v) }
}

/// Reads a 32-bit device register.
pub fn read32(addr: u64) -> u32 {
    check(addr, 4);
    // SAFETY: as for `read8`, and `addr` is 4-byte aligned.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Writes a 32-bit device register.
pub fn write32(addr: u64, v: u32) {
    check(addr, 4);
    // SAFETY: as for `read32`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

/// The platform TPM's TIS register windows (locality `l` at `TIS_BASE + 0x1000 * l`).
#[derive(Debug, Default)]
pub struct TisMmio;

fn tis_addr(locality: u8, offset: u16) -> u64 {
    TIS_BASE + 0x1000 * u64::from(locality & 0x7) + u64::from(offset & 0xfff)
}

impl TisRegs for TisMmio {
    fn read8(&mut self, locality: u8, offset: u16) -> u8 {
        read8(tis_addr(locality, offset))
    }
    fn write8(&mut self, locality: u8, offset: u16, value: u8) {
        write8(tis_addr(locality, offset), value)
    }
    fn read32(&mut self, locality: u8, offset: u16) -> u32 {
        read32(tis_addr(locality, offset))
    }
}

/// The platform TPM's CRB register windows (locality `l` at `CRB_BASE + 0x1000 * l`) and its
/// command/response buffers, which `warden_core::crb` has validated to lie in the device window.
#[derive(Debug, Default)]
pub struct CrbMmio;

fn crb_addr(locality: u8, offset: u16) -> u64 {
    CRB_BASE + 0x1000 * u64::from(locality & 0x7) + u64::from(offset & 0xffc)
}

impl CrbRegs for CrbMmio {
    fn read32(&mut self, locality: u8, offset: u16) -> u32 {
        read32(crb_addr(locality, offset))
    }
    fn write32(&mut self, locality: u8, offset: u16, value: u32) {
        write32(crb_addr(locality, offset), value)
    }
    fn read_buffer(&mut self, addr: u64, buf: &mut [u8]) {
        for (at, b) in (addr..).zip(buf.iter_mut()) {
            *b = read8(at);
        }
    }
    fn write_buffer(&mut self, addr: u64, data: &[u8]) {
        for (at, &b) in (addr..).zip(data) {
            write8(at, b);
        }
    }
}
