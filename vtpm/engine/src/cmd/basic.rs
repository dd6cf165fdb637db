//! Start-up, self test, random numbers, capabilities and parameter tests (Part 3 ch. 9-10, 16, 30).

use crate::Platform;
use crate::cc;
use crate::crypto::{HashAlg, alg};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::marshal::Writer;
use crate::object::Public;
use crate::pcr::{self, BANKS, PCR_COUNT};
use crate::rc::{At, Rc};
use alloc::vec::Vec;

const SU_CLEAR: u16 = 0;
const SU_STATE: u16 = 1;

/// Capabilities (TPM_CAP).
mod cap {
    pub(crate) const ALGS: u32 = 0;
    pub(crate) const HANDLES: u32 = 1;
    pub(crate) const COMMANDS: u32 = 2;
    pub(crate) const PP_COMMANDS: u32 = 3;
    pub(crate) const AUDIT_COMMANDS: u32 = 4;
    pub(crate) const PCRS: u32 = 5;
    pub(crate) const TPM_PROPERTIES: u32 = 6;
    pub(crate) const PCR_PROPERTIES: u32 = 7;
    pub(crate) const ECC_CURVES: u32 = 8;
    pub(crate) const ACT: u32 = 0x0A;
}

/// Implemented algorithms and their TPMA_ALGORITHM bits.
const ALGS: &[(u16, u32)] = &[
    (alg::RSA, 0x009),
    (alg::SHA1, 0x004),
    (alg::HMAC, 0x104),
    (alg::AES, 0x002),
    (alg::MGF1, 0x404),
    (alg::KEYEDHASH, 0x30C),
    (alg::XOR, 0x006),
    (alg::SHA256, 0x004),
    (alg::SHA384, 0x004),
    (alg::SHA512, 0x004),
    (alg::NULL, 0x000),
    (alg::RSASSA, 0x101),
    (alg::RSAES, 0x201),
    (alg::RSAPSS, 0x101),
    (alg::OAEP, 0x201),
    (alg::ECDSA, 0x101),
    (alg::ECDH, 0x401),
    (alg::KDF1_SP800_56A, 0x404),
    (alg::KDF1_SP800_108, 0x404),
    (alg::ECC, 0x009),
    (alg::SYMCIPHER, 0x008),
    (alg::CFB, 0x202),
];

/// Bytes of capability data one GetCapability response carries (TPM_PT_MAX_CAP_BUFFER).
const MAX_CAP_BUFFER: usize = 1024;

impl<P: Platform> Tpm<P> {
    pub(crate) fn startup(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let ty = c.params.u16().p(1)?;
        c.params.finish().p(1)?;
        if self.v.started {
            return Err(Rc::INITIALIZE);
        }
        match ty {
            SU_CLEAR => {
                if self.p.saved_pcrs.take().is_some() {
                    // TPM Restart: Shutdown(STATE) then Startup(CLEAR).
                    self.p.restart_count = self.p.restart_count.wrapping_add(1);
                } else {
                    self.p.reset_count = self.p.reset_count.wrapping_add(1);
                    self.p.restart_count = 0;
                    // A TPM Reset clears the command audit digest (CommandAuditStartup) and
                    // renews the EC_Ephemeral commit state.
                    self.p.audit.digest.clear();
                    self.p.commit = crate::cmd::CommitState::new(self.random(32));
                }
                // A PCR_Allocate takes effect here; the PCR group's authValue is state-clear data.
                if !self
                    .v
                    .pcrs
                    .banks
                    .iter()
                    .map(|b| b.0)
                    .eq(self.p.pcr_alloc.iter().copied())
                {
                    self.v.pcrs = crate::pcr::Pcrs::with_banks(&self.p.pcr_alloc);
                }
                self.p.pcr_auth.clear();
                self.v.pcrs.startup_clear();
                self.drtm_startup(true)?;
            }
            SU_STATE => {
                self.drtm_startup(false)?;
                let saved = self.p.saved_pcrs.take().ok_or(Rc::VALUE.param(1))?;
                self.v.pcrs = saved;
                // PCRs 17-22 have no stateSave (PC Client): a Resume starts them at all ones.
                for (_, vals) in &mut self.v.pcrs.banks {
                    vals[17..=22].iter_mut().for_each(|v| v.fill(0xFF));
                }
                self.p.restart_count = self.p.restart_count.wrapping_add(1);
            }
            _ => return Err(Rc::VALUE.param(1)),
        }
        // Objects with stClear do not survive a restart; NV locks with *_STCLEAR are released
        // (on Reset and Restart, not on Resume).
        self.nv_startup_clear(ty == SU_CLEAR);
        self.clock_startup();
        self.v.started = true;
        self.persist();
        Ok(Out::new())
    }

    pub(crate) fn shutdown(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let ty = c.params.u16().p(1)?;
        c.params.finish().p(1)?;
        match ty {
            SU_CLEAR => self.p.saved_pcrs = None,
            // After a PCR_Allocate the PCRs cannot be saved for Startup(STATE).
            SU_STATE if self.v.pcr_reconfig => return Err(Rc::TYPE.param(1)),
            SU_STATE => {
                self.p.saved_pcrs = Some(self.v.pcrs.clone());
                self.p.hcrtm_saved = self.drtm.hcrtm_pcr0.is_some();
            }
            _ => return Err(Rc::VALUE.param(1)),
        }
        self.p.orderly = true;
        self.persist();
        Ok(Out::new())
    }

    pub(crate) fn self_test(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let full = c.params.u8().p(1)?;
        c.params.finish().p(1)?;
        if full > 1 {
            return Err(Rc::VALUE.param(1));
        }
        self.v.self_tested = true;
        Ok(Out::new())
    }

    pub(crate) fn incremental_self_test(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let n = c.params.u32().p(1)?;
        for _ in 0..n {
            c.params.u16().p(1)?;
        }
        c.params.finish().p(1)?;
        let mut o = Out::new();
        o.params.u32(0);
        Ok(o)
    }

    pub(crate) fn get_test_result(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let mut o = Out::new();
        o.params.u16(0).u32(0);
        Ok(o)
    }

    pub(crate) fn get_random(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let n = c.params.u16().p(1)?;
        c.params.finish().p(1)?;
        let n = (n as usize).min(64);
        let mut o = Out::new();
        let bytes = self.random(n);
        o.params.tpm2b(&bytes);
        Ok(o)
    }

    pub(crate) fn stir_random(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let data = c.params.tpm2b(128).p(1)?;
        c.params.finish().p(1)?;
        self.rng.reseed(data);
        Ok(Out::new())
    }

    pub(crate) fn test_parms(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let ty = c.params.u16().p(1)?;
        crate::object::parse_parms(ty, &mut c.params, false).p(1)?;
        c.params.finish().p(1)?;
        Ok(Out::new())
    }

    pub(crate) fn read_clock(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let mut o = Out::new();
        let t = self.time_ms();
        o.params.u64(t);
        self.write_clock_info(&mut o.params);
        Ok(o)
    }

    /// Milliseconds since this power-on (TPMS_TIME_INFO.time).
    pub(crate) fn time_ms(&mut self) -> u64 {
        self.platform
            .clock_ms()
            .saturating_sub(self.v.clock_at_boot)
            .wrapping_add(self.v.time_offset)
    }

    /// TPMS_CLOCK_INFO.
    pub(crate) fn write_clock_info(&mut self, w: &mut Writer) {
        let clock = self.clock_now();
        w.u64(clock)
            .u32(self.p.reset_count)
            .u32(self.p.restart_count)
            .u8(u8::from(self.p.clock_safe));
    }

    pub(crate) fn get_capability(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let capability = c.params.u32().p(1)?;
        let property = c.params.u32().p(2)?;
        let count = c.params.u32().p(3)?;
        c.params.finish().p(3)?;
        // As many items as fit the capability buffer (clients such as tpm2-abrmd ask once).
        let item_size = match capability {
            cap::ALGS | cap::TPM_PROPERTIES => 8,
            cap::PCR_PROPERTIES => 8,
            cap::ECC_CURVES => 2,
            _ => 4,
        };
        let max = (count as usize).min((MAX_CAP_BUFFER - 9) / item_size);
        let mut body = Writer::new();
        let more;
        match capability {
            cap::ALGS => {
                let items: Vec<_> = ALGS
                    .iter()
                    .filter(|(a, _)| u32::from(*a) >= property)
                    .collect();
                more = items.len() > max;
                body.u32(items.len().min(max) as u32);
                for (a, bits) in items.into_iter().take(max) {
                    body.u16(*a).u32(*bits);
                }
            }
            cap::HANDLES => {
                let hs = self.handles_from(property).map_err(|e| e.param(2))?;
                more = hs.len() > max;
                body.u32(hs.len().min(max) as u32);
                for hd in hs.into_iter().take(max) {
                    body.u32(hd);
                }
            }
            cap::COMMANDS => {
                let items: Vec<_> = cc::COMMANDS.iter().filter(|i| i.cc >= property).collect();
                more = items.len() > max;
                body.u32(items.len().min(max) as u32);
                for i in items.into_iter().take(max) {
                    body.u32(cc::tpma_cc(i));
                }
            }
            cap::PP_COMMANDS => {
                more = false;
                body.u32(0);
            }
            cap::AUDIT_COMMANDS => {
                let items: Vec<u32> = (self.p.audit.commands.iter())
                    .copied()
                    .filter(|&c| c >= property)
                    .collect();
                more = items.len() > max;
                body.u32(items.len().min(max) as u32);
                for c in items.into_iter().take(max) {
                    body.u32(c);
                }
            }
            cap::PCRS => {
                more = false;
                body.u32(BANKS.len() as u32);
                for b in BANKS {
                    let on = if self.v.pcrs.bank(b).is_some() {
                        0xFF
                    } else {
                        0
                    };
                    body.u16(b.alg()).u8(3).bytes(&[on; 3]);
                }
            }
            cap::TPM_PROPERTIES => {
                let props: Vec<(u32, u32)> = self
                    .properties()
                    .into_iter()
                    .filter(|(p, _)| *p >= property)
                    .collect();
                more = props.len() > max;
                body.u32(props.len().min(max) as u32);
                for (p, v) in props.into_iter().take(max) {
                    body.u32(p).u32(v);
                }
            }
            cap::PCR_PROPERTIES => {
                let props: Vec<(u32, [u8; 3])> = pcr_properties()
                    .into_iter()
                    .filter(|(p, _)| *p >= property)
                    .collect();
                more = props.len() > max;
                body.u32(props.len().min(max) as u32);
                for (p, sel) in props.into_iter().take(max) {
                    body.u32(p).u8(3).bytes(&sel);
                }
            }
            cap::ECC_CURVES => {
                more = false;
                body.u32(if property <= u32::from(alg::CURVE_P256) && max > 0 {
                    1
                } else {
                    0
                });
                if property <= u32::from(alg::CURVE_P256) && max > 0 {
                    body.u16(alg::CURVE_P256);
                }
            }
            cap::ACT => {
                // No authenticated countdown timers: an empty TPML_ACT_DATA, as libtpms
                // answers (tpm2-tss asks for it while probing the TPM).
                more = false;
                body.u32(0);
            }
            _ => return Err(Rc::VALUE.param(1)),
        }
        let mut o = Out::new();
        o.params
            .u8(u8::from(more))
            .u32(capability)
            .bytes(&body.into_vec());
        Ok(o)
    }

    /// Handles of the type given by the top byte of `from`, at or above `from`, ascending.
    fn handles_from(&self, from: u32) -> Result<Vec<u32>, Rc> {
        let mut hs: Vec<u32> = match h::ty(from) {
            h::HT_PCR => (0..PCR_COUNT as u32).collect(),
            h::HT_NV_INDEX => self.p.nv.iter().map(|n| n.handle).collect(),
            h::HT_HMAC_SESSION => self.v.sessions.iter().flatten().map(|s| s.handle).collect(),
            h::HT_POLICY_SESSION => self.v.saved_sessions.iter().map(|s| s.0).collect(),
            h::HT_PERMANENT => alloc::vec![
                h::RH_OWNER,
                h::RH_NULL,
                h::RS_PW,
                h::RH_LOCKOUT,
                h::RH_ENDORSEMENT,
                h::RH_PLATFORM,
                h::RH_PLATFORM_NV
            ],
            h::HT_TRANSIENT => self
                .v
                .objects
                .iter()
                .enumerate()
                .filter(|(_, o)| o.is_some())
                .map(|(i, _)| h::TRANSIENT_FIRST + i as u32)
                .collect(),
            h::HT_PERSISTENT => self.p.persistent.iter().map(|(p, _)| *p).collect(),
            _ => return Err(Rc::VALUE),
        };
        hs.sort_unstable();
        hs.retain(|&x| x >= from && h::ty(x) == h::ty(from));
        Ok(hs)
    }

    fn properties(&self) -> Vec<(u32, u32)> {
        let be = |s: &[u8; 4]| u32::from_be_bytes(*s);
        let loaded = self.v.objects.iter().filter(|o| o.is_some()).count() as u32;
        let sessions_loaded = self.v.sessions.iter().filter(|s| s.is_some()).count() as u32;
        let active = sessions_loaded + self.v.saved_sessions.len() as u32;
        let mut permanent = 0x400;
        if !self.p.owner_auth.is_empty() {
            permanent |= 1;
        }
        if !self.p.endorsement_auth.is_empty() {
            permanent |= 2;
        }
        if !self.p.lockout_auth.is_empty() {
            permanent |= 4;
        }
        if self.p.disable_clear {
            permanent |= 0x100;
        }
        if self.in_lockout() {
            permanent |= 0x200;
        }
        let startup_clear = u32::from(self.v.ph_enable)
            | (u32::from(self.v.sh_enable) << 1)
            | (u32::from(self.v.eh_enable) << 2)
            | (u32::from(self.v.ph_enable_nv) << 3)
            | (1 << 31);
        let persistent = self.p.persistent.len() as u32;
        alloc::vec![
            (0x100, be(b"2.0\0")),
            (0x101, 0),
            (0x102, 159),
            (0x103, 1),
            (0x104, 2026),
            (0x105, be(b"WRDN")),
            (0x106, be(b"Ward")),
            (0x107, be(b"en v")),
            (0x108, be(b"TPM\0")),
            (0x109, 0),
            (0x10A, 0),
            (0x10B, 0x0001_0000),
            (0x10C, 0),
            (0x10D, 1024),
            (0x10E, crate::engine::OBJECT_SLOTS as u32),
            (0x10F, 2),
            (0x110, crate::engine::SESSION_SLOTS as u32),
            (0x111, crate::engine::ACTIVE_SESSIONS as u32),
            (0x112, PCR_COUNT as u32),
            (0x113, 3),
            (0x114, 0xFFFF),
            (0x116, 0),
            (0x117, crate::nv::MAX_INDICES as u32),
            (0x118, 6),
            (0x119, 1000),
            (0x11A, u32::from(alg::SHA256)),
            (0x11B, u32::from(alg::AES)),
            (0x11C, 256),
            (0x11D, 255),
            (0x11E, crate::engine::MAX_COMMAND as u32),
            (0x11F, crate::engine::MAX_COMMAND as u32),
            (0x120, 64),
            (0x121, 2048),
            (0x122, 512),
            (0x123, 1),
            (0x124, 0),
            (0x125, 0),
            (0x126, 0),
            (0x127, 0),
            (0x128, 128),
            (0x129, cc::COMMANDS.len() as u32),
            (0x12A, cc::COMMANDS.len() as u32),
            (0x12B, 0),
            (0x12C, crate::nv::MAX_BUFFER as u32),
            (0x12D, 0),
            (0x12E, 1024),
            (0x200, permanent),
            (0x201, startup_clear),
            (0x202, self.p.nv.len() as u32),
            (0x203, loaded),
            (0x204, crate::engine::OBJECT_SLOTS as u32 - loaded),
            (0x205, active),
            (0x206, crate::engine::ACTIVE_SESSIONS as u32 - active),
            (0x207, crate::engine::OBJECT_SLOTS as u32 - loaded),
            (0x208, persistent),
            (0x209, crate::engine::PERSISTENT_SLOTS as u32 - persistent),
            (
                0x20A,
                self.p
                    .nv
                    .iter()
                    .filter(|n| n.nt() == crate::nv::NT_COUNTER)
                    .count() as u32
            ),
            (0x20B, (crate::nv::MAX_INDICES - self.p.nv.len()) as u32),
            (0x20C, 0),
            (0x20D, 1),
            (0x20E, self.p.failed_tries),
            (0x20F, self.p.max_tries),
            (0x210, self.p.recovery_time),
            (0x211, self.p.lockout_recovery),
            (0x212, 0),
            (0x213, 0),
            (0x214, 0),
        ]
    }
}

/// TPM_PT_PCR_* properties from the PC Client locality table (tags 0x00-0x0A).
fn pcr_properties() -> Vec<(u32, [u8; 3])> {
    let set = |f: &dyn Fn(usize) -> bool| {
        let mut s = [0u8; 3];
        for i in 0..PCR_COUNT {
            if f(i) {
                s[i / 8] |= 1 << (i % 8);
            }
        }
        s
    };
    let mut v = alloc::vec![(0u32, set(&|i| i <= 16 || i == 23))];
    for loc in 0u8..5 {
        v.push((1 + 2 * u32::from(loc), set(&|i| pcr::may_extend(i, loc))));
        v.push((2 + 2 * u32::from(loc), set(&|i| pcr::may_reset(i, loc))));
    }
    v
}

#[allow(dead_code)]
fn unused(_: HashAlg, _: Public) {}
