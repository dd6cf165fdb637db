//! Hierarchy and clock administration (Part 3 ch. 24, 29, 31): SetPrimaryPolicy, ChangeEPS,
//! ChangePPS, ClockSet, ClockRateAdjust, NV_UndefineSpaceSpecial, and ECC_Parameters.
//!
//! ClockRateAdjust is accepted and checked but changes nothing: Clock follows the platform's
//! millisecond clock, which the engine does not trim.

use crate::Platform;
use crate::cc::code;
use crate::crypto::{HashAlg, alg};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::nv::a;
use crate::rc::{At, Rc};
use alloc::vec::Vec;

/// The largest Clock TPM2_ClockSet accepts.
const CLOCK_MAX: u64 = 0xFFFF_0000_0000_0000;
/// TPM_ECC_NIST_P256.
const NIST_P256: u16 = 0x0003;
/// TPM_ALG_KDF1_SP800_56A.
const KDF1_SP800_56A: u16 = 0x0020;
/// TPM_RC_CURVE.
const RC_CURVE: Rc = Rc(0x0A6);

/// NIST P-256 domain parameters (SEC 2 / FIPS 186-4): p, a, b, Gx, Gy, n.
const P256: [[u8; 32]; 6] = [
    hex32("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"),
    hex32("ffffffff00000001000000000000000000000000fffffffffffffffffffffffc"),
    hex32("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"),
    hex32("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
    hex32("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"),
    hex32("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"),
];

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_admin(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        match c.cc {
            code::SET_PRIMARY_POLICY => self.set_primary_policy(c),
            code::CHANGE_EPS | code::CHANGE_PPS => self.change_seed(c),
            code::CLOCK_SET => self.clock_set(c),
            code::CLOCK_RATE_ADJUST => self.clock_rate_adjust(c),
            code::NV_UNDEFINE_SPACE_SPECIAL => self.nv_undefine_space_special(c),
            code::ECC_PARAMETERS => self.ecc_parameters(c),
            code::SET_ALGORITHM_SET => self.set_algorithm_set(c),
            _ => self.dispatch_pcr_admin(c),
        }
    }

    /// SetPrimaryPolicy: the authPolicy of a hierarchy (its size must be the hash's).
    fn set_primary_policy(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let hier = c.handles[0];
        if !matches!(
            hier,
            h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM | h::RH_LOCKOUT
        ) {
            return Err(Rc::VALUE.handle(1));
        }
        let policy = c.params.tpm2b(64).p(1)?.to_vec();
        let hash = c.params.u16().p(2)?;
        let size = if hash == alg::NULL {
            0
        } else {
            HashAlg::from_alg(hash).map_err(|_| Rc::HASH).p(2)?.size()
        };
        c.params.finish().p(2)?;
        if policy.len() != size {
            return Err(Rc::SIZE.param(1));
        }
        let value = (hash, policy);
        match hier {
            h::RH_OWNER => self.p.owner_policy = value,
            h::RH_ENDORSEMENT => self.p.endorsement_policy = value,
            h::RH_LOCKOUT => self.p.lockout_policy = value,
            _ => self.v.platform_policy = value,
        }
        self.persist();
        Ok(Out::new())
    }

    /// ChangeEPS / ChangePPS: a new seed and proof for the endorsement or platform hierarchy,
    /// so its primary keys change; its loaded and persistent objects are flushed, and its
    /// authPolicy (and the endorsement authValue) reset.
    fn change_seed(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        if c.handles[0] != h::RH_PLATFORM {
            return Err(Rc::VALUE.handle(1));
        }
        let null = (alg::NULL, Vec::new());
        let hier = if c.cc == code::CHANGE_EPS {
            self.p.eps = self.random(64);
            self.p.eh_proof = self.random(32);
            self.p.endorsement_auth.clear();
            self.p.endorsement_policy = null;
            self.v.eh_enable = true;
            h::RH_ENDORSEMENT
        } else {
            self.p.pps = self.random(64);
            self.p.ph_proof = self.random(32);
            self.v.platform_policy = null.clone();
            self.p.pcr_policy = null;
            // Platform NV indices stay (as in libtpms: NvFlushHierarchy removes only the
            // platform's persistent objects).
            h::RH_PLATFORM
        };
        for (slot, seq) in self.v.objects.iter_mut().zip(self.v.seqs.iter_mut()) {
            if slot.as_ref().is_some_and(|o| o.hierarchy == hier) {
                *slot = None;
                *seq = None;
            }
        }
        self.p.persistent.retain(|(_, o)| o.hierarchy != hier);
        self.primary_cache.clear();
        self.persist();
        Ok(Out::new())
    }

    /// SetAlgorithmSet (platform): the reference stores the set and reads it nowhere, and this
    /// engine has a single algorithm set, so the command checks its input and changes nothing.
    fn set_algorithm_set(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.u32().p(1)?;
        c.params.finish().p(1)?;
        if c.handles[0] != h::RH_PLATFORM {
            return Err(Rc::VALUE.handle(1));
        }
        Ok(Out::new())
    }

    /// ClockSet: Clock only moves forward, and not past 0xFFFF000000000000.
    fn clock_set(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let new = c.params.u64().p(1)?;
        c.params.finish().p(1)?;
        if !matches!(c.handles[0], h::RH_OWNER | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        if new > CLOCK_MAX || new < self.clock_now() {
            return Err(Rc::VALUE.param(1));
        }
        let t = self.time_ms();
        self.v.clock_base = new.wrapping_sub(t);
        self.p.clock = new;
        // The new value reaches NV right away (persist below): nothing above it was reported.
        self.p.clock_safe = true;
        self.persist();
        Ok(Out::new())
    }

    /// ClockRateAdjust: TPM_CLOCK_ADJUST is -3..=3.
    fn clock_rate_adjust(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let adjust = c.params.u8().p(1)? as i8;
        c.params.finish().p(1)?;
        if !matches!(c.handles[0], h::RH_OWNER | h::RH_PLATFORM) {
            return Err(Rc::VALUE.handle(1));
        }
        if !(-3..=3).contains(&adjust) {
            return Err(Rc::VALUE.param(1));
        }
        Ok(Out::new())
    }

    /// NV_UndefineSpaceSpecial: deletes an index with TPMA_NV_POLICY_DELETE, authorised by its
    /// policy (ADMIN role) and the platform.
    fn nv_undefine_space_special(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        if c.handles[1] != h::RH_PLATFORM {
            return Err(Rc::VALUE.handle(2));
        }
        let i = (self.p.nv.iter())
            .position(|n| n.handle == c.handles[0])
            .ok_or(Rc::HANDLE.handle(1))?;
        if !self.p.nv[i].has(a::POLICY_DELETE) {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        self.p.nv.remove(i);
        self.persist();
        Ok(Out::new())
    }

    /// ECC_Parameters: TPMS_ALGORITHM_DETAIL_ECC of a supported curve (NIST P-256).
    fn ecc_parameters(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let curve = c.params.u16().p(1)?;
        c.params.finish().p(1)?;
        if curve != NIST_P256 {
            return Err(RC_CURVE.param(1));
        }
        let mut o = Out::new();
        // curveID, keySize, kdf (KDF1_SP800_56A with SHA-256, as libtpms reports), sign
        // (NULL), p, a, b, gX, gY, n, h.
        o.params
            .u16(curve)
            .u16(256)
            .u16(KDF1_SP800_56A)
            .u16(alg::SHA256)
            .u16(alg::NULL);
        for v in &P256 {
            o.params.tpm2b(v);
        }
        o.params.tpm2b(&[1]);
        Ok(o)
    }
}
