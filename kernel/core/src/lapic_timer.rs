//! Calibrating the local APIC timer against the PIT: the arithmetic, kept apart from the ports
//! and registers so it is host-tested.
//!
//! The LAPIC timer counts at a rate the architecture does not fix (the bus or crystal clock over
//! a divider); the PIT counts at a known 1.193182 MHz. The hypervisor lets PIT channel 2 count
//! down a known window while the LAPIC counts down from its maximum, and scales: LAPIC counts
//! per scheduler tick = LAPIC counts in the window × tick length / window length.

/// The PIT's input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Why a calibration cannot be used (the hypervisor then keeps the PIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationError {
    /// The PIT window was empty.
    EmptyWindow,
    /// The LAPIC did not count during the window (timer absent or stopped).
    NotCounting,
    /// The LAPIC counter ran out during the window: its rate is too high to measure this way.
    Saturated,
    /// The resulting period is below the minimum or does not fit the 32-bit initial count.
    OutOfRange(u64),
}

impl core::fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::EmptyWindow => f.write_str("empty PIT window"),
            Self::NotCounting => f.write_str("the LAPIC timer did not count"),
            Self::Saturated => f.write_str("the LAPIC timer ran out during the window"),
            Self::OutOfRange(n) => write!(f, "{n} LAPIC counts per tick is out of range"),
        }
    }
}

/// Fewer counts per tick than this means a timer too coarse to be trusted for preemption.
pub const MIN_COUNTS_PER_TICK: u64 = 100;

/// LAPIC initial count for a periodic tick of `tick_us`, from `lapic_counts` counted while the
/// PIT counted `pit_counts`.
pub fn counts_per_tick(
    lapic_counts: u32,
    pit_counts: u16,
    tick_us: u64,
) -> Result<u32, CalibrationError> {
    if pit_counts == 0 {
        return Err(CalibrationError::EmptyWindow);
    }
    match lapic_counts {
        0 => return Err(CalibrationError::NotCounting),
        u32::MAX => return Err(CalibrationError::Saturated),
        _ => {}
    }
    // counts/tick = lapic × (tick_us / 1e6) / (pit / PIT_HZ); u128 so no product overflows.
    let n = u128::from(lapic_counts) * u128::from(PIT_HZ) * u128::from(tick_us)
        / (u128::from(pit_counts) * 1_000_000);
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    if n < MIN_COUNTS_PER_TICK || n > u64::from(u32::MAX) {
        return Err(CalibrationError::OutOfRange(n));
    }
    Ok(n as u32)
}

/// The LAPIC timer's input frequency in Hz implied by a calibration (for the boot line).
pub fn frequency_hz(lapic_counts: u32, pit_counts: u16) -> u64 {
    if pit_counts == 0 {
        return 0;
    }
    (u128::from(lapic_counts) * u128::from(PIT_HZ) / u128::from(pit_counts)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_scales_the_window_to_a_tick() {
        // (LAPIC counts in the window, PIT counts, tick µs, expected)
        let cases: &[(u32, u16, u64, Result<u32, CalibrationError>)] = &[
            // QEMU: a 1 GHz APIC bus / 16 = 62.5 MHz; a 10 ms window is 11932 PIT counts.
            (625_000, 11_932, 1000, Ok(62_499)),
            // A 100 MHz bus / 16 on hardware, 1 ms ticks.
            (62_500, 11_932, 1000, Ok(6_249)),
            // 2 ms ticks double it.
            (625_000, 11_932, 2000, Ok(124_998)),
            // A short window gives the same rate.
            (62_500, 1_193, 1000, Ok(62_509)),
            (0, 11_932, 1000, Err(CalibrationError::NotCounting)),
            (u32::MAX, 11_932, 1000, Err(CalibrationError::Saturated)),
            (625_000, 0, 1000, Err(CalibrationError::EmptyWindow)),
            // A timer that barely moved: too coarse.
            (50, 11_932, 1000, Err(CalibrationError::OutOfRange(4))),
            // A huge tick would not fit the 32-bit initial count.
            (
                4_000_000_000,
                11_932,
                1_000_000,
                Err(CalibrationError::OutOfRange(399_993_965_806)),
            ),
        ];
        for &(lapic, pit, tick, want) in cases {
            assert_eq!(
                counts_per_tick(lapic, pit, tick),
                want,
                "{lapic} {pit} {tick}"
            );
        }
    }

    #[test]
    fn frequency_is_reported_from_the_same_window() {
        assert_eq!(frequency_hz(625_000, 11_932), 62_499_057);
        assert_eq!(frequency_hz(1, 0), 0);
    }
}
