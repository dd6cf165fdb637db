//! The TPM instance: permanent and volatile state, command framing, handle and
//! authorisation-area processing, and dispatch to the command modules.

use crate::Platform;
use crate::cc::{self, CmdInfo, Role, code};
use crate::crypto::{Drbg, HashAlg, ct_eq};
use crate::handle::{self as h};
use crate::marshal::{Reader, Writer};
use crate::nv::NvIndex;
use crate::object::{Object, attr};
use crate::pcr::Pcrs;
use crate::rc::{At, Rc};
use crate::session::Session;
use alloc::vec::Vec;

pub(crate) const ST_NO_SESSIONS: u16 = 0x8001;
pub(crate) const ST_SESSIONS: u16 = 0x8002;

/// Transient object slots (the TPM 2.0 minimum; a resource manager multiplexes more).
pub(crate) const OBJECT_SLOTS: usize = 3;
/// Loaded session slots.
pub(crate) const SESSION_SLOTS: usize = 3;
/// Sessions that may exist at once (loaded or saved).
pub(crate) const ACTIVE_SESSIONS: usize = 64;
/// Largest command or response.
pub(crate) const MAX_COMMAND: usize = 4096;
/// Persistent objects the owner and platform may keep.
pub(crate) const PERSISTENT_SLOTS: usize = 16;

/// State that survives power cycles (written through `Platform::nv_write`). Its seeds, proofs
/// and auth values are wiped on drop and never printed.
#[derive(Clone)]
pub(crate) struct Permanent {
    pub(crate) eps: Vec<u8>,
    pub(crate) sps: Vec<u8>,
    pub(crate) pps: Vec<u8>,
    /// Proof values: the secret behind tickets and context integrity, per hierarchy.
    pub(crate) eh_proof: Vec<u8>,
    pub(crate) sh_proof: Vec<u8>,
    pub(crate) ph_proof: Vec<u8>,
    pub(crate) owner_auth: Vec<u8>,
    pub(crate) endorsement_auth: Vec<u8>,
    pub(crate) lockout_auth: Vec<u8>,
    pub(crate) owner_policy: (u16, Vec<u8>),
    pub(crate) endorsement_policy: (u16, Vec<u8>),
    pub(crate) lockout_policy: (u16, Vec<u8>),
    pub(crate) disable_clear: bool,
    pub(crate) reset_count: u32,
    pub(crate) restart_count: u32,
    pub(crate) clock: u64,
    pub(crate) failed_tries: u32,
    pub(crate) max_tries: u32,
    pub(crate) recovery_time: u32,
    pub(crate) lockout_recovery: u32,
    pub(crate) lockout_locked: bool,
    pub(crate) nv: Vec<NvIndex>,
    pub(crate) persistent: Vec<(u32, Object)>,
    /// PCR state saved by Shutdown(STATE), consumed by Startup(STATE).
    pub(crate) saved_pcrs: Option<Pcrs>,
    pub(crate) total_commands: u64,
    /// Indices NV_GlobalWriteLock locked (released by the next TPM Reset or Restart).
    pub(crate) global_locked: Vec<u32>,
    /// TPMS_CLOCK_INFO.safe: no Clock value above the current one was reported before.
    pub(crate) clock_safe: bool,
    /// The last power cycle ended with TPM2_Shutdown (Clock was saved exactly).
    pub(crate) orderly: bool,
    /// The Startup before the saved state (Shutdown(STATE)) followed an H-CRTM event: a
    /// Resume must follow one too (TPM_RC_LOCALITY otherwise).
    pub(crate) hcrtm_saved: bool,
    /// Command audit: audited commands, hash, counter and digest.
    pub(crate) audit: crate::cmd::CommandAudit,
    /// PCR banks the next Startup(CLEAR) allocates (PCR_Allocate).
    pub(crate) pcr_alloc: Vec<HashAlg>,
    /// authValue and authPolicy of the PCR group 20-22 (PCR_SetAuthValue/Policy); the
    /// authValue is state-clear data (reset by Startup(CLEAR)).
    pub(crate) pcr_auth: Vec<u8>,
    pub(crate) pcr_policy: (u16, Vec<u8>),
    /// EC_Ephemeral / ZGen_2Phase commit nonce, counter and array (renewed by a TPM Reset).
    pub(crate) commit: crate::cmd::CommitState,
}

impl core::fmt::Debug for Permanent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Permanent")
            .field("reset_count", &self.reset_count)
            .field("restart_count", &self.restart_count)
            .field("clock", &self.clock)
            .field("nv_indices", &self.nv.len())
            .field("persistent", &self.persistent.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Permanent {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for v in [
            &mut self.eps,
            &mut self.sps,
            &mut self.pps,
            &mut self.eh_proof,
            &mut self.sh_proof,
            &mut self.ph_proof,
            &mut self.owner_auth,
            &mut self.endorsement_auth,
            &mut self.lockout_auth,
        ] {
            v.zeroize();
        }
    }
}

impl zeroize::ZeroizeOnDrop for Permanent {}

/// State that a power cycle loses.
#[derive(Clone, Debug)]
pub(crate) struct Volatile {
    pub(crate) started: bool,
    pub(crate) self_tested: bool,
    pub(crate) ph_enable: bool,
    pub(crate) sh_enable: bool,
    pub(crate) eh_enable: bool,
    pub(crate) ph_enable_nv: bool,
    pub(crate) platform_auth: Vec<u8>,
    pub(crate) platform_policy: (u16, Vec<u8>),
    pub(crate) pcrs: Pcrs,
    pub(crate) objects: Vec<Option<Object>>,
    /// Sequence state for object slots that hold a hash/HMAC/event sequence.
    pub(crate) seqs: Vec<Option<crate::cmd::Seq>>,
    pub(crate) sessions: Vec<Option<Session>>,
    /// Sessions whose context is saved outside (handle, sequence number).
    pub(crate) saved_sessions: Vec<(u32, u64)>,
    pub(crate) context_seq: u64,
    /// Key for context blobs: fresh on every TPM Reset, so old contexts stop loading.
    pub(crate) context_key: Vec<u8>,
    pub(crate) next_session: u32,
    pub(crate) clock_at_boot: u64,
    /// Clock at time 0 of this power cycle (wrapping: TPM2_Clear sets Clock to 0 mid-cycle).
    pub(crate) clock_base: u64,
    /// Clock as last written to NV (`Permanent::clock` runs ahead of it between writes).
    pub(crate) clock_saved: u64,
    /// Time (ms) this power cycle had run before a restore_state: time goes on from there,
    /// so session start times and timeouts keep their meaning across a migration.
    pub(crate) time_offset: u64,
    /// When the DA failure counter and the lockout-hierarchy lock last started counting down
    /// (ms since power-on); not part of the state blob (a restore restarts the count).
    pub(crate) da_tick: u64,
    pub(crate) lockout_tick: u64,
    /// Audit sessions' digests and the exclusive audit session.
    pub(crate) audit: crate::cmd::SessionAudit,
    /// PCR_Allocate succeeded this power cycle: Shutdown(STATE) is refused.
    pub(crate) pcr_reconfig: bool,
}

/// A TPM 2.0 instance over a `Platform`.
pub struct Tpm<P: Platform> {
    pub(crate) platform: P,
    pub(crate) p: Permanent,
    pub(crate) v: Volatile,
    pub(crate) rng: Drbg,
    /// Recently derived primary keys: RSA key generation is the slowest thing a TPM does and
    /// tools re-create the same EK/SRK over and over. Keyed by the derivation input digest.
    pub(crate) primary_cache: Vec<crate::object::PrimaryEntry>,
    /// The platform's hash indications (H-CRTM / DRTM measurement) of this power cycle.
    pub(crate) drtm: crate::drtm::Drtm,
}

impl<P: Platform> core::fmt::Debug for Tpm<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tpm")
            .field("started", &self.v.started)
            .finish_non_exhaustive()
    }
}

/// One parsed authorisation from the command's session area.
#[derive(Clone, Debug)]
pub(crate) struct AuthIn {
    pub(crate) handle: u32,
    pub(crate) nonce_caller: Vec<u8>,
    pub(crate) attrs: u8,
    pub(crate) hmac: Vec<u8>,
}

/// Session attribute bits (TPMA_SESSION).
pub(crate) mod sattr {
    pub(crate) const CONTINUE: u8 = 0x01;
    pub(crate) const AUDIT_EXCLUSIVE: u8 = 0x02;
    pub(crate) const AUDIT_RESET: u8 = 0x04;
    pub(crate) const DECRYPT: u8 = 0x20;
    pub(crate) const ENCRYPT: u8 = 0x40;
    pub(crate) const AUDIT: u8 = 0x80;
}

/// What a command handler sees.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) locality: u8,
    pub(crate) cc: u32,
    pub(crate) handles: Vec<u32>,
    pub(crate) params: Reader<'a>,
}

/// What a command handler returns.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub(crate) handle: Option<u32>,
    pub(crate) params: Writer,
}

impl Out {
    pub(crate) fn new() -> Self {
        Out::default()
    }
}

impl<P: Platform> Tpm<P> {
    /// Creates an instance: loads permanent state from the platform, or manufactures a fresh
    /// TPM (new seeds) when there is none. The TPM starts powered on and waiting for Startup.
    pub fn new(mut platform: P) -> Result<Self, crate::StateError> {
        let mut seed = [0u8; 48];
        platform.entropy(&mut seed);
        let mut rng = Drbg::new(&seed);
        let p = match platform.nv_read() {
            Some(blob) => crate::state::decode_permanent(&blob)?,
            None => manufacture(&mut rng),
        };
        let v = fresh_volatile(&mut rng);
        let mut tpm = Tpm {
            platform,
            p,
            v,
            rng,
            primary_cache: Vec::new(),
            drtm: Default::default(),
        };
        tpm.clock_power_on();
        tpm.persist();
        Ok(tpm)
    }

    /// The platform, for the host to inspect.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// Power cycle (TPM_Init): volatile state is lost, Startup is required again.
    pub fn power_on(&mut self) {
        let mut seed = [0u8; 32];
        self.platform.entropy(&mut seed);
        self.rng.reseed(&seed);
        self.v = fresh_volatile(&mut self.rng);
        self.drtm = Default::default();
        self.v.clock_at_boot = self.platform.clock_ms();
        self.clock_power_on();
    }

    /// Whether Startup has run since the last power-on.
    pub fn is_started(&self) -> bool {
        self.v.started
    }

    /// Executes one command at `locality` and returns the response bytes (never panics).
    pub fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        self.drtm_abort();
        self.p.total_commands = self.p.total_commands.wrapping_add(1);
        self.da_recover();
        self.clock_tick();
        if self.rng.reseed_due() {
            let mut fresh = [0u8; 32];
            self.platform.entropy(&mut fresh);
            self.rng.reseed(&fresh);
            zeroize::Zeroize::zeroize(&mut fresh);
        }
        match self.run(locality, command) {
            Ok(r) => r,
            Err(rc) => {
                let mut w = Writer::new();
                w.u16(ST_NO_SESSIONS).u32(10).u32(rc.wire().0);
                w.into_vec()
            }
        }
    }

    /// Writes permanent state through the platform.
    pub(crate) fn persist(&mut self) {
        // Every write of the permanent state checkpoints Clock too.
        let now = self.clock_now();
        self.p.clock = self.p.clock.max(now);
        self.v.clock_saved = self.p.clock;
        let blob = crate::state::encode_permanent(&self.p);
        self.platform.nv_write(&blob);
    }

    pub(crate) fn random(&mut self, n: usize) -> Vec<u8> {
        self.rng.bytes(n)
    }

    fn run(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, Rc> {
        let mut r = Reader::new(command);
        let tag = r.u16().map_err(|_| Rc::INSUFFICIENT)?;
        let size = r.u32().map_err(|_| Rc::INSUFFICIENT)?;
        let cc = r.u32().map_err(|_| Rc::INSUFFICIENT)?;
        if tag != ST_NO_SESSIONS && tag != ST_SESSIONS {
            // libtpms (the reference code behind swtpm) answers TPM_RC_VALUE here, not
            // TPM_RC_BAD_TAG; the differential test holds us to the same code.
            return Err(Rc::VALUE);
        }
        if size as usize != command.len() || command.len() > MAX_COMMAND {
            return Err(Rc::COMMAND_SIZE);
        }
        if !self.v.started && cc != code::STARTUP {
            return Err(Rc::INITIALIZE);
        }
        let info = cc::lookup(cc).ok_or(Rc::COMMAND_CODE)?;
        let mut handles = Vec::with_capacity(info.handles as usize);
        for i in 0..info.handles {
            let hdl = r.u32().map_err(|_| Rc::INSUFFICIENT)?;
            self.check_handle(cc, i, hdl).h(u32::from(i) + 1)?;
            handles.push(hdl);
        }
        let mut auths = Vec::new();
        if tag == ST_SESSIONS {
            let auth_size = r.u32().map_err(|_| Rc::AUTHSIZE)? as usize;
            if auth_size < 9 || auth_size > r.remaining() {
                return Err(Rc::AUTHSIZE);
            }
            let mut ar = Reader::new(r.bytes(auth_size)?);
            while ar.remaining() > 0 {
                if auths.len() == 3 {
                    return Err(Rc::AUTHSIZE);
                }
                let n = auths.len() as u32 + 1;
                let handle = ar.u32().map_err(|_| Rc::AUTHSIZE)?;
                let nonce_caller = ar
                    .tpm2b(64)
                    .map_err(|e| {
                        if e == Rc::SIZE {
                            Rc::SIZE.session(n)
                        } else {
                            Rc::AUTHSIZE
                        }
                    })?
                    .to_vec();
                let attrs = ar.u8().map_err(|_| Rc::AUTHSIZE)?;
                // TPMA_SESSION bits 3 and 4 are reserved: unmarshalling refuses them.
                if attrs & 0x18 != 0 {
                    return Err(Rc::RESERVED_BITS.session(n));
                }
                let hmac = ar
                    .tpm2b(64)
                    .map_err(|e| {
                        if e == Rc::SIZE {
                            Rc::SIZE.session(n)
                        } else {
                            Rc::AUTHSIZE
                        }
                    })?
                    .to_vec();
                auths.push(AuthIn {
                    handle,
                    nonce_caller,
                    attrs,
                    hmac,
                });
            }
            if auths.len() < info.auths as usize {
                return Err(Rc::AUTH_MISSING);
            }
        } else if info.auths > 0 {
            return Err(Rc::AUTH_MISSING);
        }
        let params_start = command.len() - r.remaining();
        let params = &command[params_start..];
        let names: Vec<Vec<u8>> = handles.iter().map(|&hd| self.entity_name(hd)).collect();
        self.audit_check_sessions(&auths)?;
        let mut session_state =
            self.check_sessions(info, &handles, &names, &auths, cc, params, locality)?;
        let mut decrypted;
        let params = if let Some(d) = self.decrypt_param(&auths, &session_state, params)? {
            decrypted = d;
            &decrypted[..]
        } else {
            decrypted = Vec::new();
            let _ = &mut decrypted;
            params
        };
        let mut ctx = Ctx {
            locality,
            cc,
            handles: handles.clone(),
            params: Reader::new(params),
        };
        // On error the sessions stay as they were (nonces included).
        let out = self.dispatch(&mut ctx)?;
        let mut params_out = out.params.into_vec();
        let mut w = Writer::new();
        w.u16(tag).u32(0).u32(0);
        if let Some(hd) = out.handle {
            w.u32(hd);
        }
        if tag == ST_SESSIONS {
            self.encrypt_param(&auths, &mut session_state, &mut params_out);
        }
        // Audit sees the parameters as they travel (encrypted), as cpHash and rpHash do.
        let cp_params = &command[params_start..];
        self.audit_record(cc, &names, cp_params, &params_out, &mut session_state);
        if tag == ST_SESSIONS {
            let area = self.response_sessions(&auths, &mut session_state, cc, &params_out);
            w.u32(params_out.len() as u32)
                .bytes(&params_out)
                .bytes(&area);
        } else {
            w.bytes(&params_out);
        }
        let mut resp = w.into_vec();
        let len = resp.len() as u32;
        resp[2..6].copy_from_slice(&len.to_be_bytes());
        Ok(resp)
    }

    /// Checks that a handle in the handle area refers to something present and allowed.
    fn check_handle(&self, cc: u32, idx: u8, hdl: u32) -> Result<(), Rc> {
        match h::ty(hdl) {
            h::HT_PCR => {
                // A PCR handle is valid only where the handle's type admits one (TPMI_DH_PCR,
                // TPMI_DH_ENTITY); elsewhere libtpms' unmarshalling answers TPM_RC_VALUE.
                if !pcr_handle_allowed(cc, idx) || hdl as usize >= crate::pcr::PCR_COUNT {
                    return Err(Rc::VALUE);
                }
            }
            h::HT_PERMANENT => match hdl {
                h::RH_OWNER => {
                    if !self.v.sh_enable {
                        return Err(Rc::HIERARCHY);
                    }
                }
                h::RH_ENDORSEMENT => {
                    if !self.v.eh_enable {
                        return Err(Rc::HIERARCHY);
                    }
                }
                h::RH_PLATFORM | h::RH_PLATFORM_NV => {
                    if !self.v.ph_enable {
                        return Err(Rc::HIERARCHY);
                    }
                }
                h::RH_NULL | h::RH_LOCKOUT => {}
                _ => return Err(Rc::VALUE),
            },
            h::HT_TRANSIENT => {
                let i = (hdl - h::TRANSIENT_FIRST) as usize;
                // Handles past the last slot are outside TPMI_DH_OBJECT's transient range
                // (TRANSIENT_LAST), so they fail unmarshalling, as in libtpms.
                if i >= self.v.objects.len() {
                    return Err(Rc::VALUE);
                }
                if self.v.objects[i].is_none() {
                    return Err(Rc(0x910 + u32::from(idx)));
                }
                self.check_object_hierarchy(self.v.objects[i].as_ref().map(|o| o.hierarchy))?;
            }
            h::HT_PERSISTENT => {
                let o = self
                    .p
                    .persistent
                    .iter()
                    .find(|(ph, _)| *ph == hdl)
                    .ok_or(Rc::HANDLE)?;
                self.check_object_hierarchy(Some(o.1.hierarchy))?;
            }
            h::HT_NV_INDEX => {
                let nv = self
                    .p
                    .nv
                    .iter()
                    .find(|n| n.handle == hdl)
                    .ok_or(Rc::HANDLE)?;
                let platform = nv.attrs & crate::nv::a::PLATFORMCREATE != 0;
                if (platform && !self.v.ph_enable_nv) || (!platform && !self.v.sh_enable) {
                    return Err(Rc::HANDLE);
                }
            }
            h::HT_HMAC_SESSION | h::HT_POLICY_SESSION => {
                // Only a few commands name a session in their handle area.
                if !session_handle_allowed(cc, idx, hdl) {
                    return Err(Rc::VALUE);
                }
                if self.session_index(hdl).is_none() {
                    return Err(Rc(0x910 + u32::from(idx)));
                }
            }
            _ => return Err(Rc::VALUE),
        }
        let _ = cc;
        Ok(())
    }

    fn check_object_hierarchy(&self, hier: Option<u32>) -> Result<(), Rc> {
        let ok = match hier {
            Some(h::RH_OWNER) => self.v.sh_enable,
            Some(h::RH_ENDORSEMENT) => self.v.eh_enable,
            Some(h::RH_PLATFORM) => self.v.ph_enable,
            _ => true,
        };
        if ok { Ok(()) } else { Err(Rc::HIERARCHY) }
    }

    /// The Name of an entity referenced by handle (objects and NV: computed; others: the handle).
    pub(crate) fn entity_name(&self, hdl: u32) -> Vec<u8> {
        match h::ty(hdl) {
            h::HT_TRANSIENT | h::HT_PERSISTENT => self
                .object(hdl)
                .map(|o| o.name.clone())
                .unwrap_or_else(|_| hdl.to_be_bytes().to_vec()),
            h::HT_NV_INDEX => self
                .p
                .nv
                .iter()
                .find(|n| n.handle == hdl)
                .map(|n| n.name())
                .unwrap_or_else(|| hdl.to_be_bytes().to_vec()),
            _ => hdl.to_be_bytes().to_vec(),
        }
    }

    pub(crate) fn object(&self, hdl: u32) -> Result<&Object, Rc> {
        match h::ty(hdl) {
            h::HT_TRANSIENT => self
                .v
                .objects
                .get((hdl - h::TRANSIENT_FIRST) as usize)
                .and_then(|o| o.as_ref())
                .ok_or(Rc::HANDLE),
            h::HT_PERSISTENT => self
                .p
                .persistent
                .iter()
                .find(|(p, _)| *p == hdl)
                .map(|(_, o)| o)
                .ok_or(Rc::HANDLE),
            _ => Err(Rc::HANDLE),
        }
    }

    /// Puts an object into a free transient slot and returns its handle.
    pub(crate) fn load_object(&mut self, obj: Object) -> Result<u32, Rc> {
        let slot = self
            .v
            .objects
            .iter()
            .position(|o| o.is_none())
            .ok_or(Rc::OBJECT_MEMORY)?;
        self.v.objects[slot] = Some(obj);
        self.v.seqs[slot] = None;
        Ok(h::TRANSIENT_FIRST + slot as u32)
    }

    pub(crate) fn free_object_slot(&self) -> Result<(), Rc> {
        if self.v.objects.iter().any(|o| o.is_none()) {
            Ok(())
        } else {
            Err(Rc::OBJECT_MEMORY)
        }
    }

    /// The authValue of an entity, for password and HMAC authorisation.
    pub(crate) fn entity_auth(&self, hdl: u32) -> Result<Vec<u8>, Rc> {
        Ok(match h::ty(hdl) {
            h::HT_PERMANENT => match hdl {
                h::RH_OWNER => self.p.owner_auth.clone(),
                h::RH_ENDORSEMENT => self.p.endorsement_auth.clone(),
                h::RH_LOCKOUT => self.p.lockout_auth.clone(),
                h::RH_PLATFORM | h::RH_PLATFORM_NV => self.v.platform_auth.clone(),
                _ => Vec::new(),
            },
            h::HT_PCR => self.pcr_group_auth(hdl),
            h::HT_TRANSIENT | h::HT_PERSISTENT => self
                .object(hdl)?
                .sens
                .as_ref()
                .map(|s| s.auth.clone())
                .unwrap_or_default(),
            h::HT_NV_INDEX => self
                .p
                .nv
                .iter()
                .find(|n| n.handle == hdl)
                .map(|n| n.auth.clone())
                .ok_or(Rc::HANDLE)?,
            _ => return Err(Rc::HANDLE),
        })
    }

    /// The authPolicy of an entity (alg, digest); empty digest means "no policy".
    pub(crate) fn entity_policy(&self, hdl: u32) -> (u16, Vec<u8>) {
        match h::ty(hdl) {
            h::HT_PERMANENT => match hdl {
                h::RH_OWNER => self.p.owner_policy.clone(),
                h::RH_ENDORSEMENT => self.p.endorsement_policy.clone(),
                h::RH_LOCKOUT => self.p.lockout_policy.clone(),
                h::RH_PLATFORM | h::RH_PLATFORM_NV => self.v.platform_policy.clone(),
                _ => (crate::crypto::alg::NULL, Vec::new()),
            },
            h::HT_PCR => self.pcr_group_policy(hdl),
            h::HT_TRANSIENT | h::HT_PERSISTENT => self
                .object(hdl)
                .map(|o| (o.public.name_alg, o.public.policy.clone()))
                .unwrap_or((crate::crypto::alg::NULL, Vec::new())),
            h::HT_NV_INDEX => self
                .p
                .nv
                .iter()
                .find(|n| n.handle == hdl)
                .map(|n| (n.name_alg, n.policy.clone()))
                .unwrap_or((crate::crypto::alg::NULL, Vec::new())),
            _ => (crate::crypto::alg::NULL, Vec::new()),
        }
    }

    /// Whether an authorisation failure on this entity counts against dictionary-attack lockout.
    pub(crate) fn entity_da_protected(&self, hdl: u32) -> bool {
        match h::ty(hdl) {
            // The lockout hierarchy has its own lock (see `auth_failure`), not the DA counter.
            h::HT_PERMANENT => false,
            h::HT_TRANSIENT | h::HT_PERSISTENT => self
                .object(hdl)
                .map(|o| !o.public.has(attr::NO_DA))
                .unwrap_or(false),
            h::HT_NV_INDEX => self
                .p
                .nv
                .iter()
                .find(|n| n.handle == hdl)
                .map(|n| n.attrs & crate::nv::a::NO_DA == 0)
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Whether password/HMAC (authValue) authorisation is allowed for this handle in this role.
    pub(crate) fn auth_value_allowed(&self, hdl: u32, role: Role) -> bool {
        match h::ty(hdl) {
            h::HT_TRANSIENT | h::HT_PERSISTENT => match self.object(hdl) {
                Ok(o) => match role {
                    Role::User => o.public.has(attr::USER_WITH_AUTH),
                    Role::Admin => !o.public.has(attr::ADMIN_WITH_POLICY),
                    Role::Dup => false,
                },
                Err(_) => false,
            },
            _ => true,
        }
    }

    /// Password comparison with DA bookkeeping.
    pub(crate) fn check_password(&mut self, hdl: u32, given: &[u8], n: u32) -> Result<(), Rc> {
        let want = self.entity_auth(hdl)?;
        if ct_eq(trim(&want), trim(given)) {
            return Ok(());
        }
        Err(self.auth_failure(hdl, Rc::AUTH_FAIL.session(n)))
    }

    /// Counts a failed authorisation; returns the code to report: TPM_RC_AUTH_FAIL when the
    /// failure counts against dictionary-attack protection, TPM_RC_BAD_AUTH otherwise.
    pub(crate) fn auth_failure(&mut self, hdl: u32, rc: Rc) -> Rc {
        if hdl == h::RH_LOCKOUT {
            self.p.lockout_locked = true;
            self.persist();
            rc
        } else if self.entity_da_protected(hdl) {
            self.p.failed_tries = self.p.failed_tries.saturating_add(1);
            self.persist();
            rc
        } else if rc.0 & 0xFFF == Rc::AUTH_FAIL.session(1).0 & 0xFFF
            || rc.0 & 0x3F == Rc::AUTH_FAIL.0 & 0x3F
        {
            Rc((rc.0 & !0x3F) | (Rc::BAD_AUTH.0 & 0x3F))
        } else {
            rc
        }
    }

    /// Dictionary-attack recovery: one failure forgiven per `recovery_time` seconds, the lockout
    /// hierarchy unlocked after `lockout_recovery` seconds (0 = only by a reboot or reset).
    fn da_recover(&mut self) {
        let now = self
            .platform
            .clock_ms()
            .saturating_sub(self.v.clock_at_boot);
        let rt = u64::from(self.p.recovery_time) * 1000;
        if self.p.failed_tries == 0 || rt == 0 {
            self.v.da_tick = now;
        } else if now.saturating_sub(self.v.da_tick) >= rt {
            let steps = now.saturating_sub(self.v.da_tick) / rt;
            self.p.failed_tries = self
                .p
                .failed_tries
                .saturating_sub(steps.min(u64::from(u32::MAX)) as u32);
            self.v.da_tick += steps * rt;
            self.persist();
        }
        let lr = u64::from(self.p.lockout_recovery) * 1000;
        if !self.p.lockout_locked {
            self.v.lockout_tick = now;
        } else if lr != 0 && now.saturating_sub(self.v.lockout_tick) >= lr {
            self.p.lockout_locked = false;
            self.persist();
        }
    }

    pub(crate) fn in_lockout(&self) -> bool {
        self.p.max_tries == 0 || self.p.failed_tries >= self.p.max_tries
    }

    /// Processes the authorisation area: every authorised handle must be satisfied.
    #[allow(clippy::too_many_arguments)]
    fn check_sessions(
        &mut self,
        info: &CmdInfo,
        handles: &[u32],
        names: &[Vec<u8>],
        auths: &[AuthIn],
        cc: u32,
        params: &[u8],
        locality: u8,
    ) -> Result<Vec<crate::session::SessionUse>, Rc> {
        let mut uses = Vec::new();
        for (i, a) in auths.iter().enumerate() {
            let n = i as u32 + 1;
            let bound = if i < info.auths as usize {
                Some(handles[i])
            } else {
                None
            };
            let role = if i == 0 { info.role } else { Role::User };
            let role = if matches!(
                cc,
                code::ACTIVATE_CREDENTIAL | code::CERTIFY | code::CERTIFY_X509
            ) && i == 1
            {
                Role::User
            } else {
                role
            };
            // The DUP role needs a policy session (`policy_required`: TPM_RC_AUTH_TYPE after the
            // session's own checks and lockout), and that policy must have fixed the command code.
            let u =
                self.check_one_session(a, n, bound, role, cc, names, params, auths, i, locality)?;
            if role == Role::Dup
                && bound.is_some()
                && self
                    .session_index(a.handle)
                    .and_then(|s| self.v.sessions[s].as_ref())
                    .is_some_and(|s| s.command_code().is_none())
            {
                return Err(Rc::POLICY_FAIL.session(n));
            }
            uses.push(u);
        }
        Ok(uses)
    }

    fn dispatch(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        use code::*;
        match c.cc {
            STARTUP => self.startup(c),
            SHUTDOWN => self.shutdown(c),
            SELF_TEST => self.self_test(c),
            INCREMENTAL_SELF_TEST => self.incremental_self_test(c),
            GET_TEST_RESULT => self.get_test_result(c),
            GET_RANDOM => self.get_random(c),
            STIR_RANDOM => self.stir_random(c),
            GET_CAPABILITY => self.get_capability(c),
            TEST_PARMS => self.test_parms(c),
            READ_CLOCK => self.read_clock(c),
            PCR_READ => self.pcr_read(c),
            PCR_EXTEND => self.pcr_extend(c),
            PCR_EVENT => self.pcr_event(c),
            PCR_RESET => self.pcr_reset(c),
            _ => self.dispatch_more(c),
        }
    }
}

/// Which session handles a command accepts in its handle area: the policy commands take only
/// policy sessions (TPMI_SH_POLICY); FlushContext/ContextSave take any session.
/// Whether handle `idx` of command `cc` may name a PCR (its type is TPMI_DH_PCR or
/// TPMI_DH_ENTITY).
fn pcr_handle_allowed(cc: u32, idx: u8) -> bool {
    use code::*;
    idx == 0
        && matches!(
            cc,
            PCR_EXTEND
                | PCR_EVENT
                | PCR_RESET
                | PCR_SET_AUTH_VALUE
                | EVENT_SEQUENCE_COMPLETE
                | POLICY_SECRET
        )
}

fn session_handle_allowed(cc: u32, idx: u8, hdl: u32) -> bool {
    use code::*;
    let policy_pos = match cc {
        POLICY_SECRET => Some(1),
        POLICY_AUTHORIZE | POLICY_AUTH_VALUE | POLICY_PASSWORD | POLICY_COMMAND_CODE
        | POLICY_PCR | POLICY_OR | POLICY_GET_DIGEST | POLICY_RESTART => Some(0),
        POLICY_SIGNED => Some(1),
        POLICY_NV | POLICY_AUTHORIZE_NV => Some(2),
        POLICY_TICKET | POLICY_CP_HASH | POLICY_NAME_HASH | POLICY_LOCALITY => Some(0),
        POLICY_DUPLICATION_SELECT
        | POLICY_NV_WRITTEN
        | POLICY_COUNTER_TIMER
        | POLICY_PHYSICAL_PRESENCE
        | POLICY_TEMPLATE => Some(0),
        // TPMI_SH_HMAC: the audit session whose digest is asked for.
        GET_SESSION_AUDIT_DIGEST => return idx == 2 && h::ty(hdl) == h::HT_HMAC_SESSION,
        _ => None,
    };
    match policy_pos {
        Some(p) if p == idx => h::ty(hdl) == h::HT_POLICY_SESSION,
        Some(_) => false,
        None => cc == CONTEXT_SAVE,
    }
}

/// Trailing zeros of an authValue are not significant (Part 1 §19.6.4.3).
pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let end = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &v[..end]
}

fn manufacture(rng: &mut Drbg) -> Permanent {
    let null = (crate::crypto::alg::NULL, Vec::new());
    Permanent {
        eps: rng.bytes(64),
        sps: rng.bytes(64),
        pps: rng.bytes(64),
        eh_proof: rng.bytes(32),
        sh_proof: rng.bytes(32),
        ph_proof: rng.bytes(32),
        owner_auth: Vec::new(),
        endorsement_auth: Vec::new(),
        lockout_auth: Vec::new(),
        owner_policy: null.clone(),
        endorsement_policy: null.clone(),
        lockout_policy: null,
        disable_clear: false,
        reset_count: 0,
        restart_count: 0,
        clock: 0,
        failed_tries: 0,
        max_tries: 3,
        recovery_time: 1000,
        lockout_recovery: 1000,
        lockout_locked: false,
        nv: Vec::new(),
        persistent: Vec::new(),
        saved_pcrs: None,
        total_commands: 0,
        global_locked: Vec::new(),
        clock_safe: true,
        orderly: true,
        hcrtm_saved: false,
        audit: crate::cmd::CommandAudit::new(),
        pcr_alloc: crate::pcr::BANKS.to_vec(),
        pcr_auth: Vec::new(),
        pcr_policy: (crate::crypto::alg::NULL, Vec::new()),
        commit: crate::cmd::CommitState::new(rng.bytes(32)),
    }
}

fn fresh_volatile(rng: &mut Drbg) -> Volatile {
    Volatile {
        started: false,
        self_tested: false,
        ph_enable: true,
        sh_enable: true,
        eh_enable: true,
        ph_enable_nv: true,
        platform_auth: Vec::new(),
        platform_policy: (crate::crypto::alg::NULL, Vec::new()),
        pcrs: Pcrs::new(),
        objects: alloc::vec![None; OBJECT_SLOTS],
        seqs: alloc::vec![None; OBJECT_SLOTS],
        sessions: alloc::vec![None; SESSION_SLOTS],
        saved_sessions: Vec::new(),
        context_seq: 1,
        context_key: rng.bytes(32),
        next_session: 0,
        clock_at_boot: 0,
        clock_base: 0,
        clock_saved: 0,
        time_offset: 0,
        da_tick: 0,
        lockout_tick: 0,
        audit: crate::cmd::SessionAudit::default(),
        pcr_reconfig: false,
    }
}

#[allow(dead_code)]
pub(crate) fn hash_of(alg_id: u16) -> Result<HashAlg, Rc> {
    HashAlg::from_alg(alg_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GetCapability(TPM_CAP_COMMANDS) reports the command table; every entry must reach a
    /// handler (an unimplemented one would answer TPM_RC_COMMAND_CODE).
    #[test]
    fn every_listed_command_has_a_handler() {
        let mut t = Tpm::new(crate::MemPlatform::with_seed(5)).unwrap();
        t.v.started = true;
        for info in cc::COMMANDS {
            let mut ctx = Ctx {
                locality: 0,
                cc: info.cc,
                handles: alloc::vec![h::RH_NULL; usize::from(info.handles)],
                params: Reader::new(&[]),
            };
            let r = t.dispatch(&mut ctx);
            assert!(
                !matches!(r, Err(Rc::COMMAND_CODE)),
                "command {:#x} is listed but not dispatched",
                info.cc
            );
        }
    }
}
