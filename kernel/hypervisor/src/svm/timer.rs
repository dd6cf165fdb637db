//! The scheduler's clock, ticking every millisecond on vector 32: the local APIC timer in
//! periodic mode, calibrated at boot against PIT channel 2, with the 8259 PICs remapped to
//! 32..48 and fully masked; or, without a usable LAPIC, the PIT (channel 0) through the PIC on
//! IRQ 0. The I/O APIC is not programmed: it stays as firmware left it (SeaBIOS does not use
//! it, and its redirection entries are masked from reset), so no device interrupt reaches the
//! hypervisor. The interrupt handler only counts ticks and acknowledges.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use warden_core::lapic_timer::{CalibrationError, PIT_HZ, counts_per_tick, frequency_hz};
use warden_hw::mmio;
use warden_hw::port::{inb, outb};

/// Microseconds per tick.
pub(super) const TICK_US: u64 = 1000;
const VECTOR_BASE: u8 = 32;
/// The LAPIC's spurious-interrupt vector (it has an IDT stub and needs no EOI).
const SPURIOUS_VECTOR: u8 = 255;
/// The calibration window: 10 ms of PIT counts.
const CALIBRATION_PIT_COUNTS: u16 = 11_932;
/// Calibration windows measured (the shortest count is kept).
const CALIBRATION_WINDOWS: usize = 3;
/// Port-0x61 polls before a PIT that never finishes its window is given up on.
const CALIBRATION_POLL_BUDGET: u32 = 50_000_000;

// Local APIC registers (offsets from its base).
const LAPIC_EOI: u64 = 0xb0;
const LAPIC_SVR: u64 = 0xf0;
const LAPIC_LVT_TIMER: u64 = 0x320;
const LAPIC_INITIAL_COUNT: u64 = 0x380;
const LAPIC_CURRENT_COUNT: u64 = 0x390;
const LAPIC_DIVIDE: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const SVR_ENABLE: u32 = 1 << 8;
/// Divide configuration 0b0011: the timer counts at its input clock / 16.
const DIVIDE_BY_16: u32 = 0b0011;

static TICKS: AtomicU64 = AtomicU64::new(0);
/// The LAPIC base when the LAPIC timer drives the clock (0: the PIT does).
static LAPIC_BASE: AtomicU64 = AtomicU64::new(0);
static USING_LAPIC: AtomicBool = AtomicBool::new(false);

/// Ticks since [`start`].
pub(super) fn now() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

fn lapic_read(base: u64, reg: u64) -> u32 {
    mmio::read32(base + reg)
}

fn lapic_write(base: u64, reg: u64, v: u32) {
    mmio::write32(base + reg, v)
}

fn on_irq(vector: u8) {
    if USING_LAPIC.load(Ordering::Relaxed) {
        match vector {
            32 => {
                TICKS.fetch_add(1, Ordering::Relaxed);
                lapic_write(LAPIC_BASE.load(Ordering::Relaxed), LAPIC_EOI, 0);
            }
            // The LAPIC's spurious vector and the masked PIC's spurious IRQ 7/15 take no EOI;
            // nothing else is unmasked.
            _ => {}
        }
        return;
    }
    match vector {
        32 => {
            TICKS.fetch_add(1, Ordering::Relaxed);
            outb(0x20, 0x20);
        }
        // Spurious IRQ 7 / 15: no EOI for the spurious line (15 still needs one to the master).
        39 | SPURIOUS_VECTOR => {}
        47 => outb(0x20, 0x20),
        40..=46 => {
            outb(0xa0, 0x20);
            outb(0x20, 0x20);
        }
        _ => outb(0x20, 0x20),
    }
}

/// Remaps the PICs to vectors 32..48 with `mask` (master) and every slave line masked.
fn program_pics(master_mask: u8) {
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
    outb(0x21, master_mask);
    outb(0xa1, 0xff);
}

/// Counts LAPIC timer counts during `CALIBRATION_PIT_COUNTS` of PIT channel 2 (mode 0, gated by
/// port 0x61 bit 0, its output read back in bit 5). `None`: the PIT never finished the window.
fn measure_window(base: u64) -> Option<u32> {
    // Gate off (and the speaker), program channel 2 for a one-shot countdown, gate on.
    let port61 = inb(0x61) & !0x03;
    outb(0x61, port61);
    outb(0x43, 0xb0);
    outb(0x42, CALIBRATION_PIT_COUNTS as u8);
    outb(0x42, (CALIBRATION_PIT_COUNTS >> 8) as u8);
    lapic_write(base, LAPIC_DIVIDE, DIVIDE_BY_16);
    lapic_write(base, LAPIC_LVT_TIMER, LVT_MASKED | u32::from(VECTOR_BASE));
    lapic_write(base, LAPIC_INITIAL_COUNT, u32::MAX);
    outb(0x61, port61 | 0x01);
    let mut done = false;
    for _ in 0..CALIBRATION_POLL_BUDGET {
        if inb(0x61) & 0x20 != 0 {
            done = true;
            break;
        }
        core::hint::spin_loop();
    }
    let left = lapic_read(base, LAPIC_CURRENT_COUNT);
    lapic_write(base, LAPIC_INITIAL_COUNT, 0);
    outb(0x61, port61);
    done.then_some(u32::MAX - left)
}

/// Why the LAPIC timer was not used.
enum NoLapic {
    Absent,
    OutsideWindow(u64),
    PitWindow,
    Calibration(CalibrationError),
}

fn start_lapic() -> Result<(u64, u32, u32), NoLapic> {
    let base = warden_hw::cpu::apic_base().ok_or(NoLapic::Absent)?;
    if !mmio::WINDOW.contains(&base) || !mmio::WINDOW.contains(&(base + 0xfff)) {
        return Err(NoLapic::OutsideWindow(base));
    }
    // The fewest counts of a few windows: a delay (an SMI on hardware, the host descheduling
    // QEMU under load) between the PIT ending and the LAPIC being read only ever adds counts.
    let counted = (0..CALIBRATION_WINDOWS).filter_map(|_| measure_window(base)).min().ok_or(NoLapic::PitWindow)?;
    let initial = counts_per_tick(counted, CALIBRATION_PIT_COUNTS, TICK_US).map_err(NoLapic::Calibration)?;
    LAPIC_BASE.store(base, Ordering::Relaxed);
    USING_LAPIC.store(true, Ordering::Relaxed);
    // Software-enable the LAPIC with its spurious vector, then the periodic timer.
    lapic_write(base, LAPIC_SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    lapic_write(base, LAPIC_DIVIDE, DIVIDE_BY_16);
    lapic_write(base, LAPIC_LVT_TIMER, LVT_PERIODIC | u32::from(VECTOR_BASE));
    lapic_write(base, LAPIC_INITIAL_COUNT, initial);
    Ok((base, counted, initial))
}

/// Starts the tick: the LAPIC timer if there is a usable one, else the PIT; says which.
pub(super) fn start() {
    crate::exceptions::set_irq_handler(on_irq);
    // Every PIC line masked first: its vectors are remapped off the exceptions either way.
    program_pics(0xff);
    match start_lapic() {
        Ok((base, counted, initial)) => println!(
            "timer: LAPIC timer at {base:#x}, periodic, {initial} counts per {TICK_US} us tick (input {} Hz / 16, calibrated against the PIT, fewest of {CALIBRATION_WINDOWS} windows of {} counts); 8259 PIC masked, I/O APIC not programmed",
            frequency_hz(counted, CALIBRATION_PIT_COUNTS) * 16,
            CALIBRATION_PIT_COUNTS
        ),
        Err(why) => {
            match why {
                NoLapic::Absent => println!("timer: no xAPIC-mode local APIC: using the PIT"),
                NoLapic::OutsideWindow(b) => println!("timer: the LAPIC at {b:#x} is outside the device window: using the PIT"),
                NoLapic::PitWindow => println!("timer: PIT channel 2 never ended the calibration window: using the PIT"),
                NoLapic::Calibration(e) => println!("timer: LAPIC calibration refused ({e}): using the PIT"),
            }
            program_pics(0xfe);
            // PIT channel 0, lobyte/hibyte, mode 2 (rate generator).
            let divisor = (PIT_HZ * TICK_US / 1_000_000) as u16;
            outb(0x43, 0x34);
            outb(0x40, divisor as u8);
            outb(0x40, (divisor >> 8) as u8);
            println!("timer: PIT channel 0 at {} Hz through the 8259 PIC (IRQ 0 only)", 1_000_000 / TICK_US);
        }
    }
}

/// Masks the timer again (before leaving).
pub(super) fn stop() {
    if USING_LAPIC.load(Ordering::Relaxed) {
        let base = LAPIC_BASE.load(Ordering::Relaxed);
        lapic_write(base, LAPIC_LVT_TIMER, LVT_MASKED);
        lapic_write(base, LAPIC_INITIAL_COUNT, 0);
    }
    outb(0x21, 0xff);
}
