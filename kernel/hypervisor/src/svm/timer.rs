//! The scheduler's clock: the PIT (channel 0) through the 8259 PIC on IRQ 0, remapped to vector
//! 32, ticking every millisecond. The interrupt handler only counts ticks and acknowledges.

use core::sync::atomic::{AtomicU64, Ordering};
use warden_hw::port::outb;

/// Microseconds per tick.
pub(super) const TICK_US: u64 = 1000;
const PIT_HZ: u64 = 1_193_182;
const VECTOR_BASE: u8 = 32;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// Ticks since [`start`].
pub(super) fn now() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

fn on_irq(vector: u8) {
    match vector {
        32 => {
            TICKS.fetch_add(1, Ordering::Relaxed);
            outb(0x20, 0x20);
        }
        // Spurious IRQ 7 / 15: no EOI for the spurious line (15 still needs one to the master).
        39 => {}
        47 => outb(0x20, 0x20),
        40..=46 => {
            outb(0xa0, 0x20);
            outb(0x20, 0x20);
        }
        _ => outb(0x20, 0x20),
    }
}

/// Remaps the PICs to vectors 32..48, unmasks only IRQ 0, and starts the PIT.
pub(super) fn start() {
    crate::exceptions::set_irq_handler(on_irq);
    // ICW1: edge-triggered, cascade, ICW4 follows.
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    // ICW2: vector bases.
    outb(0x21, VECTOR_BASE);
    outb(0xa1, VECTOR_BASE + 8);
    // ICW3: slave on IRQ 2.
    outb(0x21, 4);
    outb(0xa1, 2);
    // ICW4: 8086 mode.
    outb(0x21, 1);
    outb(0xa1, 1);
    // Masks: only the timer.
    outb(0x21, 0xfe);
    outb(0xa1, 0xff);
    // PIT channel 0, lobyte/hibyte, mode 2 (rate generator).
    let divisor = (PIT_HZ * TICK_US / 1_000_000) as u16;
    outb(0x43, 0x34);
    outb(0x40, divisor as u8);
    outb(0x40, (divisor >> 8) as u8);
}

/// Masks the timer again (before leaving).
pub(super) fn stop() {
    outb(0x21, 0xff);
}
