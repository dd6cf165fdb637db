//! Warden's TPM 2.0 engine: command bytes in, response bytes out, in safe no_std Rust.
//!
//! The engine knows nothing about transports or hypervisors. A `Platform` supplies entropy, a
//! millisecond clock and a place to keep the permanent state; `Tpm::execute` runs one command.
//! The same engine runs inside a vTPM service domain and on a host (`vtpm-sim`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod cc;
mod clock;
mod cmd;
mod crypto;
mod drtm;
mod engine;
mod handle;
mod marshal;
mod nv;
mod object;
mod pcr;
#[cfg(feature = "ct-probe")]
pub mod probe;
mod rc;
mod session;
mod state;

pub use engine::Tpm;
pub use rc::Rc;
pub use state::{STATE_VERSION, StateError};

use alloc::vec::Vec;

/// What the engine needs from the machine it runs on.
pub trait Platform {
    /// Fills `buf` with unpredictable bytes (seeds the engine's DRBG).
    fn entropy(&mut self, buf: &mut [u8]);
    /// A monotonic millisecond clock.
    fn clock_ms(&mut self) -> u64;
    /// The permanent state last written, if any (a fresh TPM is manufactured otherwise).
    fn nv_read(&mut self) -> Option<Vec<u8>>;
    /// Stores the permanent state; called after every command that changes it.
    fn nv_write(&mut self, state: &[u8]);
}

impl<P: Platform> Tpm<P> {
    /// The whole instance (permanent and volatile state) as a versioned blob, for checkpoints
    /// and migration, sessions included. Clock and time are carried as of the last command.
    pub fn save_state(&self) -> Vec<u8> {
        state::encode_full(&self.p, &self.v)
    }

    /// Replaces this instance's state with a blob from `save_state` (of this or an older build).
    pub fn restore_state(&mut self, blob: &[u8]) -> Result<(), StateError> {
        let (p, mut v) = state::decode_full(blob)?;
        v.clock_at_boot = self.platform.clock_ms();
        self.p = p;
        self.v = v;
        self.clock_restored();
        self.persist();
        Ok(())
    }
}

/// A platform for tests and fuzzing: deterministic entropy, a fake clock, NV in memory.
#[derive(Debug, Default, Clone)]
pub struct MemPlatform {
    counter: u64,
    clock: u64,
    /// The last permanent state written.
    pub nv: Option<Vec<u8>>,
}

impl MemPlatform {
    /// A platform whose "entropy" is derived from `seed` (deterministic runs).
    pub fn with_seed(seed: u64) -> Self {
        MemPlatform {
            counter: seed,
            clock: 0,
            nv: None,
        }
    }
}

impl Platform for MemPlatform {
    fn entropy(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            self.counter = self
                .counter
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.counter >> 56) as u8;
        }
    }
    fn clock_ms(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
    fn nv_read(&mut self) -> Option<Vec<u8>> {
        self.nv.clone()
    }
    fn nv_write(&mut self, state: &[u8]) {
        self.nv = Some(state.to_vec());
    }
}

/// Fuzz entry: runs `data` as a sequence of commands (each prefixed by a locality byte and a
/// big-endian u16 length) against a started TPM. Must never panic.
pub fn fuzz_execute(data: &[u8]) {
    let Ok(mut tpm) = Tpm::new(MemPlatform::with_seed(1)) else {
        return;
    };
    // TPM2_Startup(CLEAR) so that most commands get past the initialisation check.
    tpm.execute(0, &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0]);
    let mut rest = data;
    while rest.len() >= 3 {
        let loc = rest[0] % 5;
        let len = (usize::from(rest[1]) << 8 | usize::from(rest[2])).min(rest.len() - 3);
        let cmd = &rest[3..3 + len];
        let resp = tpm.execute(loc, cmd);
        assert!(resp.len() >= 10, "every response has a header");
        rest = &rest[3 + len..];
    }
}
