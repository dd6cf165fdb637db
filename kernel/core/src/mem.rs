//! Access to physical memory, behind a trait so page tables and loaders run on the host.

/// Size of a small page and of a physical frame.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a large (2 MiB) page.
pub const LARGE_PAGE_SIZE: u64 = 2 * 1024 * 1024;

/// Reads and writes physical memory.
///
/// In the hypervisor, all RAM is identity-mapped, so the implementation is a plain copy; callers
/// only pass ranges they own (frames from the allocator, validated module ranges).
pub trait PhysMem {
    /// Copies `buf.len()` bytes starting at physical address `pa` into `buf`.
    fn read(&self, pa: u64, buf: &mut [u8]);
    /// Copies `buf` to physical memory starting at `pa`.
    fn write(&mut self, pa: u64, buf: &[u8]);

    /// Reads a little-endian `u64`.
    fn read_u64(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(pa, &mut b);
        u64::from_le_bytes(b)
    }
    /// Reads a little-endian `u32`.
    fn read_u32(&self, pa: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(pa, &mut b);
        u32::from_le_bytes(b)
    }
    /// Reads a little-endian `u16`.
    fn read_u16(&self, pa: u64) -> u16 {
        let mut b = [0u8; 2];
        self.read(pa, &mut b);
        u16::from_le_bytes(b)
    }
    /// Writes a little-endian `u64`.
    fn write_u64(&mut self, pa: u64, v: u64) {
        self.write(pa, &v.to_le_bytes());
    }
    /// Fills `len` bytes at `pa` with zeroes.
    fn zero(&mut self, pa: u64, len: u64) {
        const ZEROES: [u8; 512] = [0; 512];
        let mut done = 0;
        while done < len {
            let n = core::cmp::min(len - done, ZEROES.len() as u64);
            self.write(pa + done, &ZEROES[..n as usize]);
            done += n;
        }
    }
}

/// A `Vec`-backed physical memory for host tests; addresses are offsets into the vector.
#[cfg(any(test, feature = "fake"))]
#[derive(Debug, Clone)]
pub struct FakeMem {
    bytes: std::vec::Vec<u8>,
}

#[cfg(any(test, feature = "fake"))]
impl FakeMem {
    /// A zero-filled memory of `size` bytes starting at physical address 0.
    pub fn new(size: usize) -> Self {
        Self { bytes: std::vec![0; size] }
    }
    /// The whole memory, for assertions.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(any(test, feature = "fake"))]
impl PhysMem for FakeMem {
    fn read(&self, pa: u64, buf: &mut [u8]) {
        let start = pa as usize;
        buf.copy_from_slice(&self.bytes[start..start + buf.len()]);
    }
    fn write(&mut self, pa: u64, buf: &[u8]) {
        let start = pa as usize;
        self.bytes[start..start + buf.len()].copy_from_slice(buf);
    }
}
