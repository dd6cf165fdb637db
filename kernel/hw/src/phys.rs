//! Physical memory through the hypervisor's identity map, as a [`PhysMem`].

use warden_core::mem::PhysMem;

/// Physical memory, reachable because the hypervisor identity-maps all RAM below 4 GiB.
///
/// Writes into the hypervisor image itself are refused with a panic: the image holds Rust
/// objects (statics, stacks, heap), and a physical-memory write there would alias them. All
/// other RAM is not Rust memory: it is managed by the frame allocator and handed out as
/// frames, and nothing else in the hypervisor holds references into it.
#[derive(Debug)]
pub struct IdentityMem {
    image: (u64, u64),
}

/// Highest physical address (exclusive) the identity map covers.
pub const IDENTITY_LIMIT: u64 = 1 << 32;

impl IdentityMem {
    /// The identity-mapped physical memory of the running hypervisor.
    #[cfg(target_os = "none")]
    pub fn new() -> Self {
        Self { image: crate::layout::kernel_layout().image }
    }

    fn check(&self, pa: u64, len: usize, write: bool) {
        let end = pa.checked_add(len as u64).expect("physical range wraps");
        assert!(end <= IDENTITY_LIMIT, "physical access beyond the identity map: {pa:#x}+{len}");
        if write {
            assert!(
                end <= self.image.0 || pa >= self.image.1,
                "physical write into the hypervisor image: {pa:#x}+{len}"
            );
        }
    }
}

impl PhysMem for IdentityMem {
    fn read(&self, pa: u64, buf: &mut [u8]) {
        self.check(pa, buf.len(), false);
        // SAFETY: `pa..pa+len` is below the identity-map limit, so it is mapped; reading plain
        // bytes (volatile, byte-wise copy semantics) creates no reference to Rust objects.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) }
    }

    fn write(&mut self, pa: u64, buf: &[u8]) {
        self.check(pa, buf.len(), true);
        // SAFETY: mapped as above, and `check` refused any overlap with the hypervisor image, so
        // the destination is allocator-managed RAM that no Rust reference points into.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), pa as *mut u8, buf.len()) }
    }
}
