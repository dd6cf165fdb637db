//! The physical frame allocator: a bitmap over 4 KiB frames that never hands out reserved ranges.

use crate::mem::PAGE_SIZE;

/// A 4 KiB-aligned physical frame address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysFrame(u64);

impl PhysFrame {
    /// The frame containing physical address `pa` (rounded down).
    pub const fn containing(pa: u64) -> Self {
        Self(pa & !(PAGE_SIZE - 1))
    }
    /// The frame's start address.
    pub const fn addr(self) -> u64 {
        self.0
    }
}

/// Why an allocation or a release failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// No free frame (or no free run of the requested length) is left.
    OutOfMemory,
    /// The frame released was not allocated (double free or a foreign frame).
    NotAllocated(u64),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("out of physical memory"),
            Self::NotAllocated(a) => write!(f, "frame {a:#x} released but not allocated"),
        }
    }
}

/// Hands out and takes back physical frames.
pub trait FrameAlloc {
    /// One zero-or-garbage frame; callers clear it if they need zeroes.
    fn alloc(&mut self) -> Result<PhysFrame, FrameError>;
    /// Gives a frame back.
    fn free(&mut self, frame: PhysFrame) -> Result<(), FrameError>;
}

/// Bitmap allocator over the frames `0 .. bits.len() * 64`. A set bit means "not available"
/// (in use, reserved, or not RAM). Everything starts unavailable: RAM is added with
/// [`BitmapAllocator::add_free`] and then carved out with [`BitmapAllocator::reserve`].
#[derive(Debug)]
pub struct BitmapAllocator<'a> {
    bits: &'a mut [u64],
    /// Frames ever marked as RAM: `free` refuses anything else.
    ram: RangeSet,
    next: usize,
    free: usize,
}

/// A handful of RAM ranges (the memory map has few entries).
#[derive(Debug, Default)]
struct RangeSet {
    ranges: heapless::Vec<(u64, u64), 32>,
}

impl RangeSet {
    fn contains(&self, frame: u64) -> bool {
        self.ranges.iter().any(|&(s, e)| s <= frame && frame < e)
    }
}

impl<'a> BitmapAllocator<'a> {
    /// An allocator with no free frames, able to track `bits.len() * 64` frames.
    pub fn new(bits: &'a mut [u64]) -> Self {
        bits.fill(u64::MAX);
        Self { bits, ram: RangeSet::default(), next: 0, free: 0 }
    }

    fn capacity(&self) -> usize {
        self.bits.len() * 64
    }

    fn is_used(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_used(&mut self, i: usize, used: bool) {
        let was = self.is_used(i);
        if used {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
        match (was, used) {
            (true, false) => self.free += 1,
            (false, true) => self.free -= 1,
            _ => {}
        }
    }

    /// Whole frames inside `[start, end)`, clipped to what the bitmap tracks.
    fn frames_within(&self, start: u64, end: u64) -> core::ops::Range<usize> {
        let first = start.div_ceil(PAGE_SIZE);
        let last = end / PAGE_SIZE;
        let cap = self.capacity() as u64;
        (first.min(cap) as usize)..(last.min(cap) as usize)
    }

    /// Frames touching `[start, end)` (rounded outward), clipped.
    fn frames_touching(&self, start: u64, end: u64) -> core::ops::Range<usize> {
        let first = start / PAGE_SIZE;
        let last = end.div_ceil(PAGE_SIZE);
        let cap = self.capacity() as u64;
        (first.min(cap) as usize)..(last.min(cap) as usize)
    }

    /// Marks the whole frames inside `[start, end)` as free RAM. Partial frames are skipped.
    pub fn add_free(&mut self, start: u64, end: u64) {
        let r = self.frames_within(start, end);
        if r.is_empty() {
            return;
        }
        // Ignore excess ranges rather than fail: the map has far fewer than 32 entries in practice.
        let _ = self.ram.ranges.push((r.start as u64, r.end as u64));
        for i in r {
            self.set_used(i, false);
        }
    }

    /// Marks every frame touching `[start, end)` as never to be handed out.
    pub fn reserve(&mut self, start: u64, end: u64) {
        for i in self.frames_touching(start, end) {
            self.set_used(i, true);
        }
    }

    /// Number of frames currently free.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    /// `count` physically contiguous frames; the first is returned.
    pub fn alloc_contiguous(&mut self, count: usize) -> Result<PhysFrame, FrameError> {
        if count == 0 || count > self.free {
            return Err(FrameError::OutOfMemory);
        }
        let cap = self.capacity();
        let mut run = 0;
        for i in 0..cap {
            if self.is_used(i) {
                run = 0;
                continue;
            }
            run += 1;
            if run == count {
                let first = i + 1 - count;
                for j in first..=i {
                    self.set_used(j, true);
                }
                return Ok(PhysFrame(first as u64 * PAGE_SIZE));
            }
        }
        Err(FrameError::OutOfMemory)
    }
}

impl FrameAlloc for BitmapAllocator<'_> {
    fn alloc(&mut self) -> Result<PhysFrame, FrameError> {
        if self.free == 0 {
            return Err(FrameError::OutOfMemory);
        }
        let cap = self.capacity();
        for k in 0..cap {
            let i = (self.next + k) % cap;
            if !self.is_used(i) {
                self.set_used(i, true);
                self.next = (i + 1) % cap;
                return Ok(PhysFrame(i as u64 * PAGE_SIZE));
            }
        }
        Err(FrameError::OutOfMemory)
    }

    fn free(&mut self, frame: PhysFrame) -> Result<(), FrameError> {
        let i = frame.addr() / PAGE_SIZE;
        if i as usize >= self.capacity() || !self.ram.contains(i) || !self.is_used(i as usize) {
            return Err(FrameError::NotAllocated(frame.addr()));
        }
        self.set_used(i as usize, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn hands_out_only_free_ram_and_never_reserved_ranges() {
        let mut bits = [0u64; 64]; // 4096 frames = 16 MiB
        let mut a = BitmapAllocator::new(&mut bits);
        a.add_free(MIB, 8 * MIB);
        a.reserve(MIB, 2 * MIB + 1); // the image, ending mid-frame: that frame is reserved too
        a.reserve(5 * MIB, 5 * MIB + 10); // a module
        let expected = (8 * MIB - MIB) / PAGE_SIZE - (MIB / PAGE_SIZE + 1) - 1;
        assert_eq!(a.free_frames() as u64, expected);
        let mut got = Vec::new();
        while let Ok(f) = a.alloc() {
            got.push(f.addr());
        }
        assert_eq!(got.len() as u64, expected);
        for addr in &got {
            assert!(*addr >= 2 * MIB + PAGE_SIZE && *addr < 8 * MIB, "{addr:#x}");
            assert_ne!(*addr, 5 * MIB);
        }
        got.sort();
        got.dedup();
        assert_eq!(got.len() as u64, expected, "a frame was handed out twice");
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic_and_free_recovers() {
        let mut bits = [0u64; 1];
        let mut a = BitmapAllocator::new(&mut bits);
        a.add_free(0, 2 * PAGE_SIZE);
        let f1 = a.alloc().unwrap();
        let _f2 = a.alloc().unwrap();
        assert_eq!(a.alloc(), Err(FrameError::OutOfMemory));
        a.free(f1).unwrap();
        assert_eq!(a.alloc(), Ok(f1));
    }

    #[test]
    fn double_free_and_foreign_frames_are_refused() {
        let mut bits = [0u64; 1];
        let mut a = BitmapAllocator::new(&mut bits);
        a.add_free(0, 4 * PAGE_SIZE);
        a.reserve(3 * PAGE_SIZE, 4 * PAGE_SIZE);
        let f = a.alloc().unwrap();
        a.free(f).unwrap();
        assert_eq!(a.free(f), Err(FrameError::NotAllocated(f.addr())));
        // Beyond the bitmap and outside RAM.
        assert!(a.free(PhysFrame::containing(1 << 40)).is_err());
        assert!(a.free(PhysFrame::containing(63 * PAGE_SIZE)).is_err());
    }

    #[test]
    fn ranges_beyond_capacity_are_clipped() {
        let mut bits = [0u64; 1];
        let mut a = BitmapAllocator::new(&mut bits);
        a.add_free(0, 1 << 40);
        assert_eq!(a.free_frames(), 64);
    }

    #[test]
    fn contiguous_runs_skip_holes() {
        let mut bits = [0u64; 1];
        let mut a = BitmapAllocator::new(&mut bits);
        a.add_free(0, 16 * PAGE_SIZE);
        a.reserve(2 * PAGE_SIZE, 3 * PAGE_SIZE);
        let f = a.alloc_contiguous(4).unwrap();
        assert_eq!(f.addr(), 3 * PAGE_SIZE);
        assert_eq!(a.alloc_contiguous(20), Err(FrameError::OutOfMemory));
        assert_eq!(a.alloc_contiguous(0), Err(FrameError::OutOfMemory));
    }
}
