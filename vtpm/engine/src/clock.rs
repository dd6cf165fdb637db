//! The TPM clock (Part 1 §36.3): Clock is permanent state that only advances while powered.
//! The permanent copy follows it at every command (so state blobs carry it) and reaches NV
//! with every write of the permanent state, on an orderly Shutdown, and at least every 2^22 ms
//! (the reference implementation's NV update rate); after a power loss it resumes from what NV
//! holds and `safe` is NO until the next write by rate, which is past every value reported
//! before the loss. Attestations by keys outside the
//! endorsement and platform hierarchies carry obfuscated resetCount/restartCount/firmware.

use crate::Platform;
use crate::crypto::{HashAlg, kdfa};
use crate::engine::Tpm;
use crate::handle as h;
use crate::marshal::Writer;
use crate::object::Object;

/// Clock is written to NV when it crosses a multiple of 2^22 ms (about 70 minutes).
const CLOCK_UPDATE_MASK: u64 = (1 << 22) - 1;
/// TPM_PT_FIRMWARE_VERSION_1/2 as reported in attestations.
pub(crate) const FIRMWARE_VERSION: u64 = 0x0001_0000_0000_0000;

impl<P: Platform> Tpm<P> {
    /// The current Clock (ms).
    pub(crate) fn clock_now(&mut self) -> u64 {
        self.v.clock_base.wrapping_add(self.time_ms())
    }

    /// TPM_Init: Clock resumes from the permanent state (as read from NV by a new instance,
    /// or as restored from a state blob).
    pub(crate) fn clock_power_on(&mut self) {
        self.v.clock_base = self.p.clock;
        self.v.clock_saved = self.p.clock;
    }

    /// restore_state: time goes on from where the saved instance was (`time_offset`), and
    /// Clock from its saved value.
    pub(crate) fn clock_restored(&mut self) {
        self.v.clock_base = self.p.clock.wrapping_sub(self.v.time_offset);
        self.v.clock_saved = self.p.clock;
    }

    /// Before each command: the permanent Clock follows the current one (so a state blob
    /// carries it), and is written to NV when it crosses the update interval; that checkpoint
    /// is beyond anything reported before a power loss, so Clock is safe again.
    pub(crate) fn clock_tick(&mut self) {
        let now = self.clock_now();
        self.p.clock = self.p.clock.max(now);
        if (now | CLOCK_UPDATE_MASK) > (self.v.clock_saved | CLOCK_UPDATE_MASK) {
            self.p.clock_safe = true;
            self.persist();
        }
    }

    /// Startup: without an orderly Shutdown before it, Clock may have been reported beyond
    /// the checkpoint it resumed from.
    pub(crate) fn clock_startup(&mut self) {
        if !self.p.orderly {
            self.p.clock_safe = false;
        }
        self.p.orderly = false;
    }

    /// TPM2_Clear: Clock, resetCount and restartCount start again from zero.
    pub(crate) fn clock_clear(&mut self) {
        let t = self.time_ms();
        self.v.clock_base = 0u64.wrapping_sub(t);
        self.p.clock = 0;
        self.p.clock_safe = true;
        self.p.reset_count = 0;
        self.p.restart_count = 0;
    }

    /// TPMS_CLOCK_INFO and firmwareVersion of a TPMS_ATTEST signed by `signer`.
    pub(crate) fn write_attest_clock(&mut self, w: &mut Writer, signer: &Object) {
        self.write_attest_clock_of(w, &signer.name, signer.hierarchy);
    }

    /// As `write_attest_clock`, for a signer known by name and hierarchy (TPM_RH_NULL for an
    /// unsigned attestation, whose counters are obfuscated too).
    pub(crate) fn write_attest_clock_of(&mut self, w: &mut Writer, name: &[u8], hierarchy: u32) {
        let clock = self.clock_now();
        let (mut reset, mut restart, mut fw) =
            (self.p.reset_count, self.p.restart_count, FIRMWARE_VERSION);
        if !matches!(hierarchy, h::RH_ENDORSEMENT | h::RH_PLATFORM) {
            // Privacy (Part 1 §36.6): the counters would link attestations of one TPM.
            let k = kdfa(
                HashAlg::Sha256,
                &self.p.sh_proof,
                b"OBFUSCATE",
                name,
                b"",
                128,
            );
            let mut a = [0u8; 8];
            a.copy_from_slice(&k[..8]);
            fw = fw.wrapping_add(u64::from_be_bytes(a));
            a.copy_from_slice(&k[8..16]);
            let o = u64::from_be_bytes(a);
            reset = reset.wrapping_add((o >> 32) as u32);
            restart = restart.wrapping_add(o as u32);
        }
        w.u64(clock)
            .u32(reset)
            .u32(restart)
            .u8(u8::from(self.p.clock_safe))
            .u64(fw);
    }
}
