//! A domain's refilling budget for what it can make the hypervisor print (console lines, #GP
//! reports, `avc:` lines): a token bucket charged to that domain alone, so that one domain's
//! flood neither holds the CPU on a slow serial line nor silences another domain. What the
//! budget suppresses is counted and reported in one summary line, never dropped silently.

/// Lines a domain may print at once (a burst), and ticks per line it earns back: 256 lines, then
/// 500 lines per second at most (about what 115200 baud carries at 20 characters a line).
pub const BURST: u64 = 256;
pub const TICKS_PER_LINE: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    tokens: u64,
    /// The tick up to which refills were credited.
    at: u64,
    suppressed: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

impl Budget {
    pub const fn new() -> Self {
        Budget { tokens: BURST, at: 0, suppressed: 0 }
    }

    /// Charges one line at tick `now`: `Some(n)` if it may be printed, where `n` lines were
    /// suppressed before it (print a summary first when `n > 0`; that summary is free); `None`
    /// if it is suppressed.
    pub fn charge(&mut self, now: u64) -> Option<u64> {
        let earned = now.saturating_sub(self.at) / TICKS_PER_LINE;
        self.tokens = (self.tokens + earned).min(BURST);
        self.at += earned * TICKS_PER_LINE;
        if self.tokens == 0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1;
        Some(core::mem::take(&mut self.suppressed))
    }

    /// Lines suppressed and not yet reported (for the summary when the domain ends).
    pub fn take_suppressed(&mut self) -> u64 {
        core::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate_and_a_count_of_what_was_suppressed() {
        let mut b = Budget::new();
        assert!((0..BURST).all(|_| b.charge(0) == Some(0)), "a burst passes");
        assert_eq!(b.charge(0), None);
        assert_eq!(b.charge(1), None, "half a line earned is nothing");
        // 2,048 lines of one 4 KiB console write: all but the burst were suppressed.
        let mut c = Budget::new();
        let printed = (0..2048).filter(|_| c.charge(5).is_some()).count() as u64;
        assert_eq!(printed, BURST);
        // Time earns lines back; the first line printed afterwards carries the count.
        assert_eq!(b.charge(2 * TICKS_PER_LINE), Some(2));
        assert_eq!(b.charge(2 * TICKS_PER_LINE), Some(0));
        assert_eq!(b.charge(2 * TICKS_PER_LINE), None);
        assert_eq!(b.take_suppressed(), 1);
        // A long quiet period refills to the burst, never beyond.
        assert_eq!((0..2 * BURST).filter(|_| b.charge(1 << 40).is_some()).count() as u64, BURST);
    }
}
