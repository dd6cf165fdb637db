//! Versioned serialization of the instance: the permanent part (what NV storage holds) and the
//! whole instance (permanent plus volatile: what checkpoints and migration carry).
//!
//! Layout: magic `WVTPM\0`, format version (u16), kind (u8), then the body. Version 2 added
//! `total_commands` and the DA lockout flag to the permanent body; version 3 added the sessions
//! to the full-instance body; version 4 added the policy-session state (cpHash/nameHash,
//! locality, start time and timeout) to each session, and the NV_GlobalWriteLock set, Clock's
//! safe flag and the orderly-shutdown flag to the permanent body; version 5 added the PolicyPCR
//! update counter to each session; version 6 added the command audit state (hash, audited
//! commands, counter, digest), the PCR allocation of the next Startup(CLEAR), the PCR 20-22
//! group's authValue and authPolicy and the EC_Ephemeral commit state to the permanent body,
//! and to the full-instance body the audit sessions' digests, the exclusive audit session and
//! each session's PolicyNvWritten / PolicyPhysicalPresence conditions (a PolicyTemplate hash
//! uses the cpHash slot's kind 3). A build reads every older version (defaults for the missing
//! fields) and refuses anything newer than itself.

use crate::crypto::HashAlg;
use crate::engine::{Permanent, Volatile};
use crate::marshal::{Reader, Writer};
use crate::nv::NvIndex;
use crate::object::{Object, Public, Sensitive};
use crate::pcr::Pcrs;
use alloc::vec::Vec;

const MAGIC: &[u8; 6] = b"WVTPM\0";
/// The format version this build writes.
pub const STATE_VERSION: u16 = 6;
const KIND_PERMANENT: u8 = 0;
const KIND_FULL: u8 = 1;

/// Why a state blob could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// Not a Warden vTPM state blob.
    BadMagic,
    /// Written by a newer build: this build only understands versions up to `supported`.
    UnsupportedVersion {
        /// The blob's version.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// A permanent-state blob where a full instance was expected, or the reverse.
    WrongKind,
    /// Truncated or inconsistent contents.
    Corrupt,
}

impl core::fmt::Display for StateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StateError::BadMagic => f.write_str("not a Warden vTPM state blob"),
            StateError::UnsupportedVersion { found, supported } => write!(
                f,
                "vTPM state format version {found} is newer than this build supports ({supported}); upgrade first"
            ),
            StateError::WrongKind => {
                f.write_str("state blob is of the wrong kind (permanent vs full instance)")
            }
            StateError::Corrupt => f.write_str("vTPM state blob is truncated or corrupt"),
        }
    }
}

type R<T> = Result<T, StateError>;

fn c<T>(r: Result<T, crate::rc::Rc>) -> R<T> {
    r.map_err(|_| StateError::Corrupt)
}

fn header(w: &mut Writer, version: u16, kind: u8) {
    w.bytes(MAGIC).u16(version).u8(kind);
}

fn read_header(r: &mut Reader<'_>, kind: u8) -> R<u16> {
    if r.bytes(6).ok() != Some(&MAGIC[..]) {
        return Err(StateError::BadMagic);
    }
    let version = c(r.u16())?;
    if version > STATE_VERSION {
        return Err(StateError::UnsupportedVersion {
            found: version,
            supported: STATE_VERSION,
        });
    }
    if version == 0 {
        return Err(StateError::Corrupt);
    }
    if c(r.u8())? != kind {
        return Err(StateError::WrongKind);
    }
    Ok(version)
}

pub(crate) fn encode_permanent(p: &Permanent) -> Vec<u8> {
    encode_permanent_version(p, STATE_VERSION)
}

pub(crate) fn encode_permanent_version(p: &Permanent, version: u16) -> Vec<u8> {
    let mut w = Writer::new();
    header(&mut w, version, KIND_PERMANENT);
    write_permanent(&mut w, p, version);
    w.into_vec()
}

pub(crate) fn decode_permanent(blob: &[u8]) -> R<Permanent> {
    let mut r = Reader::new(blob);
    let v = read_header(&mut r, KIND_PERMANENT)?;
    let p = read_permanent(&mut r, v)?;
    if r.remaining() != 0 {
        return Err(StateError::Corrupt);
    }
    Ok(p)
}

pub(crate) fn encode_full(p: &Permanent, v: &Volatile) -> Vec<u8> {
    encode_full_version(p, v, STATE_VERSION)
}

/// A full-instance blob in an older format (tests of upgrade paths).
pub(crate) fn encode_full_version(p: &Permanent, v: &Volatile, version: u16) -> Vec<u8> {
    let mut w = Writer::new();
    header(&mut w, version, KIND_FULL);
    write_permanent(&mut w, p, version);
    write_volatile(&mut w, v, p.clock, version);
    w.into_vec()
}

pub(crate) fn decode_full(blob: &[u8]) -> R<(Permanent, Volatile)> {
    let mut r = Reader::new(blob);
    let ver = read_header(&mut r, KIND_FULL)?;
    let p = read_permanent(&mut r, ver)?;
    let v = read_volatile(&mut r, ver)?;
    if r.remaining() != 0 {
        return Err(StateError::Corrupt);
    }
    Ok((p, v))
}

fn write_policy(w: &mut Writer, p: &(u16, Vec<u8>)) {
    w.u16(p.0).tpm2b(&p.1);
}

fn read_policy(r: &mut Reader<'_>) -> R<(u16, Vec<u8>)> {
    Ok((c(r.u16())?, c(r.tpm2b(64))?.to_vec()))
}

fn write_permanent(w: &mut Writer, p: &Permanent, version: u16) {
    for s in [
        &p.eps,
        &p.sps,
        &p.pps,
        &p.eh_proof,
        &p.sh_proof,
        &p.ph_proof,
        &p.owner_auth,
        &p.endorsement_auth,
        &p.lockout_auth,
    ] {
        w.tpm2b(s);
    }
    write_policy(w, &p.owner_policy);
    write_policy(w, &p.endorsement_policy);
    write_policy(w, &p.lockout_policy);
    w.u8(u8::from(p.disable_clear))
        .u32(p.reset_count)
        .u32(p.restart_count)
        .u64(p.clock);
    w.u32(p.failed_tries)
        .u32(p.max_tries)
        .u32(p.recovery_time)
        .u32(p.lockout_recovery);
    w.u32(p.nv.len() as u32);
    for n in &p.nv {
        n.write_public(w);
        w.tpm2b(&n.auth).tpm2b(&n.data);
    }
    w.u32(p.persistent.len() as u32);
    for (hd, o) in &p.persistent {
        w.u32(*hd);
        write_object(w, o);
    }
    match &p.saved_pcrs {
        Some(pcrs) => {
            w.u8(1);
            write_pcrs(w, pcrs);
        }
        None => {
            w.u8(0);
        }
    }
    if version >= 2 {
        w.u64(p.total_commands).u8(u8::from(p.lockout_locked));
    }
    if version >= 4 {
        w.u32(p.global_locked.len() as u32);
        for hd in &p.global_locked {
            w.u32(*hd);
        }
        // Bit 2 (H-CRTM before the saved state) is read as 0 by builds that predate it: no
        // H-CRTM, which is what their TPMs had.
        w.u8(u8::from(p.clock_safe) | (u8::from(p.orderly) << 1) | (u8::from(p.hcrtm_saved) << 2));
    }
    if version >= 6 {
        p.audit.write(w);
        w.u8(p.pcr_alloc.len() as u8);
        for b in &p.pcr_alloc {
            w.u16(b.alg());
        }
        w.tpm2b(&p.pcr_auth);
        write_policy(w, &p.pcr_policy);
        p.commit.write(w);
    }
}

fn read_permanent(r: &mut Reader<'_>, version: u16) -> R<Permanent> {
    let mut b = || -> R<Vec<u8>> { Ok(c(r.tpm2b(128))?.to_vec()) };
    let (eps, sps, pps) = (b()?, b()?, b()?);
    let (eh_proof, sh_proof, ph_proof) = (b()?, b()?, b()?);
    let (owner_auth, endorsement_auth, lockout_auth) = (b()?, b()?, b()?);
    let owner_policy = read_policy(r)?;
    let endorsement_policy = read_policy(r)?;
    let lockout_policy = read_policy(r)?;
    let disable_clear = c(r.u8())? != 0;
    let reset_count = c(r.u32())?;
    let restart_count = c(r.u32())?;
    let clock = c(r.u64())?;
    let failed_tries = c(r.u32())?;
    let max_tries = c(r.u32())?;
    let recovery_time = c(r.u32())?;
    let lockout_recovery = c(r.u32())?;
    let n_nv = c(r.u32())?;
    if n_nv as usize > crate::nv::MAX_INDICES {
        return Err(StateError::Corrupt);
    }
    let mut nv = Vec::new();
    for _ in 0..n_nv {
        let mut idx = c(NvIndex::parse_public(r))?;
        idx.auth = c(r.tpm2b(64))?.to_vec();
        idx.data = c(r.tpm2b(crate::nv::MAX_INDEX_SIZE))?.to_vec();
        nv.push(idx);
    }
    let n_p = c(r.u32())?;
    if n_p as usize > crate::engine::PERSISTENT_SLOTS {
        return Err(StateError::Corrupt);
    }
    let mut persistent = Vec::new();
    for _ in 0..n_p {
        let hd = c(r.u32())?;
        persistent.push((hd, read_object(r)?));
    }
    let saved_pcrs = if c(r.u8())? != 0 {
        Some(read_pcrs(r)?)
    } else {
        None
    };
    let (total_commands, lockout_locked) = if version >= 2 {
        (c(r.u64())?, c(r.u8())? != 0)
    } else {
        (0, false)
    };
    let mut global_locked = Vec::new();
    if version >= 4 {
        let n = c(r.u32())? as usize;
        if n > crate::nv::MAX_INDICES {
            return Err(StateError::Corrupt);
        }
        for _ in 0..n {
            global_locked.push(c(r.u32())?);
        }
    }
    // Before version 4 the shutdown was not recorded: treat it as not orderly (Clock unsafe
    // until its next checkpoint).
    let (clock_safe, orderly, hcrtm_saved) = if version >= 4 {
        let f = c(r.u8())?;
        (f & 1 != 0, f & 2 != 0, f & 4 != 0)
    } else {
        (true, false, false)
    };
    let audit = if version >= 6 {
        c(crate::cmd::CommandAudit::read(r))?
    } else {
        crate::cmd::CommandAudit::new()
    };
    let (mut pcr_alloc, mut pcr_auth, mut pcr_policy) = (
        crate::pcr::BANKS.to_vec(),
        Vec::new(),
        (crate::crypto::alg::NULL, Vec::new()),
    );
    if version >= 6 {
        let n = c(r.u8())?;
        pcr_alloc.clear();
        for _ in 0..n {
            let b = c(HashAlg::from_alg(c(r.u16())?))?;
            if !crate::pcr::BANKS.contains(&b) || pcr_alloc.contains(&b) {
                return Err(StateError::Corrupt);
            }
            pcr_alloc.push(b);
        }
        pcr_auth = c(r.tpm2b(64))?.to_vec();
        pcr_policy = read_policy(r)?;
    }
    // Older blobs: a commit nonce derived from the proof values (fresh at the next TPM Reset).
    let commit = if version >= 6 {
        c(crate::cmd::CommitState::read(r))?
    } else {
        crate::cmd::CommitState::new(crate::crypto::HashAlg::Sha256.digest(&[&sh_proof, b"COMMIT"]))
    };
    Ok(Permanent {
        commit,
        audit,
        pcr_alloc,
        pcr_auth,
        pcr_policy,
        eps,
        sps,
        pps,
        eh_proof,
        sh_proof,
        ph_proof,
        owner_auth,
        endorsement_auth,
        lockout_auth,
        owner_policy,
        endorsement_policy,
        lockout_policy,
        disable_clear,
        reset_count,
        restart_count,
        clock,
        failed_tries,
        max_tries,
        recovery_time,
        lockout_recovery,
        lockout_locked,
        nv,
        persistent,
        saved_pcrs,
        total_commands,
        global_locked,
        clock_safe,
        orderly,
        hcrtm_saved,
    })
}

pub(crate) fn write_object(w: &mut Writer, o: &Object) {
    w.u32(o.hierarchy);
    o.public.write_2b(w);
    w.tpm2b(&o.qualified);
    match &o.sens {
        Some(s) => {
            w.u8(1).tpm2b(&s.auth).tpm2b(&s.seed).tpm2b(&s.secret);
        }
        None => {
            w.u8(0);
        }
    }
}

pub(crate) fn read_object(r: &mut Reader<'_>) -> R<Object> {
    let hierarchy = c(r.u32())?;
    let mut pr = c(r.sized())?;
    let public = c(Public::parse(&mut pr))?;
    let qualified = c(r.tpm2b(66))?.to_vec();
    let sens = if c(r.u8())? != 0 {
        let mut s = Sensitive::new(
            c(r.tpm2b(64))?.to_vec(),
            c(r.tpm2b(64))?.to_vec(),
            c(r.tpm2b(512))?.to_vec(),
        );
        crate::object::bind_rsa(&public, &mut s);
        Some(s)
    } else {
        None
    };
    let name = public.name();
    Ok(Object {
        public,
        sens,
        hierarchy,
        name,
        qualified,
    })
}

fn write_pcrs(w: &mut Writer, p: &Pcrs) {
    w.u32(p.update_counter).u8(p.banks.len() as u8);
    for (h, vals) in &p.banks {
        w.u16(h.alg());
        for v in vals {
            w.bytes(v);
        }
    }
}

fn read_pcrs(r: &mut Reader<'_>) -> R<Pcrs> {
    let update_counter = c(r.u32())?;
    let n = c(r.u8())?;
    let mut banks = Vec::new();
    for _ in 0..n {
        let h = c(HashAlg::from_alg(c(r.u16())?))?;
        let mut vals = Vec::new();
        for _ in 0..crate::pcr::PCR_COUNT {
            vals.push(c(r.bytes(h.size()))?.to_vec());
        }
        banks.push((h, vals));
    }
    Ok(Pcrs {
        banks,
        update_counter,
    })
}

fn write_volatile(w: &mut Writer, v: &Volatile, p_clock: u64, version: u16) {
    let flags = u8::from(v.started)
        | (u8::from(v.self_tested) << 1)
        | (u8::from(v.ph_enable) << 2)
        | (u8::from(v.sh_enable) << 3)
        | (u8::from(v.eh_enable) << 4)
        | (u8::from(v.ph_enable_nv) << 5);
    w.u8(flags).tpm2b(&v.platform_auth);
    write_policy(w, &v.platform_policy);
    write_pcrs(w, &v.pcrs);
    w.u8(v.objects.len() as u8);
    for o in &v.objects {
        match o {
            Some(o) => {
                w.u8(1);
                write_object(w, o);
            }
            None => {
                w.u8(0);
            }
        }
    }
    for s in &v.seqs {
        match s {
            Some(s) => {
                w.u8(1);
                s.write(w);
            }
            None => {
                w.u8(0);
            }
        }
    }
    w.u64(v.context_seq)
        .tpm2b(&v.context_key)
        .u32(v.next_session);
    if version < 3 {
        return;
    }
    // Version 3: sessions (loaded ones in full, saved ones by handle and sequence number).
    w.u8(v.sessions.len() as u8);
    for s in &v.sessions {
        match s {
            Some(s) => {
                w.u8(1);
                s.write_ext(w, version);
            }
            None => {
                w.u8(0);
            }
        }
    }
    w.u32(v.saved_sessions.len() as u32);
    for (hd, seq) in &v.saved_sessions {
        w.u32(*hd).u64(*seq);
    }
    if version >= 4 {
        // Time into this power cycle at the last command: Clock minus Clock at time 0.
        w.u64(p_clock.wrapping_sub(v.clock_base));
    }
    if version >= 6 {
        v.audit.write(w);
    }
}

fn read_volatile(r: &mut Reader<'_>, version: u16) -> R<Volatile> {
    let flags = c(r.u8())?;
    let platform_auth = c(r.tpm2b(64))?.to_vec();
    let platform_policy = read_policy(r)?;
    let pcrs = read_pcrs(r)?;
    let n = c(r.u8())? as usize;
    if n != crate::engine::OBJECT_SLOTS {
        return Err(StateError::Corrupt);
    }
    let mut objects = Vec::new();
    for _ in 0..n {
        objects.push(if c(r.u8())? != 0 {
            Some(read_object(r)?)
        } else {
            None
        });
    }
    let mut seqs = Vec::new();
    for _ in 0..n {
        seqs.push(if c(r.u8())? != 0 {
            Some(c(crate::cmd::Seq::read(r))?)
        } else {
            None
        });
    }
    let context_seq = c(r.u64())?;
    let context_key = c(r.tpm2b(64))?.to_vec();
    let next_session = c(r.u32())?;
    let mut sessions = alloc::vec![None; crate::engine::SESSION_SLOTS];
    let mut saved_sessions = Vec::new();
    if version >= 3 {
        if usize::from(c(r.u8())?) != crate::engine::SESSION_SLOTS {
            return Err(StateError::Corrupt);
        }
        for slot in sessions.iter_mut() {
            if c(r.u8())? != 0 {
                *slot = Some(c(crate::session::Session::read(r, Some(version)))?);
            }
        }
        let n = c(r.u32())? as usize;
        if n > crate::engine::ACTIVE_SESSIONS {
            return Err(StateError::Corrupt);
        }
        for _ in 0..n {
            saved_sessions.push((c(r.u32())?, c(r.u64())?));
        }
    }
    let time_offset = if version >= 4 { c(r.u64())? } else { 0 };
    let audit = if version >= 6 {
        c(crate::cmd::SessionAudit::read(r))?
    } else {
        crate::cmd::SessionAudit::default()
    };
    Ok(Volatile {
        audit,
        pcr_reconfig: false,
        started: flags & 1 != 0,
        self_tested: flags & 2 != 0,
        ph_enable: flags & 4 != 0,
        sh_enable: flags & 8 != 0,
        eh_enable: flags & 16 != 0,
        ph_enable_nv: flags & 32 != 0,
        platform_auth,
        platform_policy,
        pcrs,
        objects,
        seqs,
        sessions,
        saved_sessions,
        context_seq,
        context_key,
        next_session,
        clock_at_boot: 0,
        clock_base: 0,
        clock_saved: 0,
        time_offset,
        da_tick: 0,
        lockout_tick: 0,
    })
}

impl core::error::Error for StateError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemPlatform, Tpm};

    fn tpm_with_session() -> Tpm<MemPlatform> {
        let mut t = Tpm::new(MemPlatform::with_seed(3)).unwrap();
        let startup = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0];
        assert_eq!(&t.execute(0, &startup)[6..10], &[0, 0, 0, 0]);
        // StartAuthSession(NULL, NULL, nonce[16], no salt, HMAC, sym NULL, SHA-256).
        let mut c = alloc::vec![
            0x80, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x76, 0x40, 0, 0, 7, 0x40, 0, 0, 7, 0, 16,
        ];
        c.extend_from_slice(&[1; 16]);
        c.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x0B]);
        let len = c.len() as u8;
        c[5] = len;
        assert_eq!(&t.execute(0, &c)[6..10], &[0, 0, 0, 0]);
        t
    }

    #[test]
    fn every_older_version_still_loads() {
        let mut t = tpm_with_session();
        // Version-4 state: NV global lock, clock flags, policy conditions of a session.
        t.p.global_locked = alloc::vec![0x0150_0001];
        t.p.clock_safe = false;
        t.p.orderly = true;
        {
            let s = t.v.sessions.iter_mut().flatten().next().expect("session");
            s.bound = crate::session::Bound::CpHash;
            s.bound_digest = alloc::vec![7; 32];
            s.locality = 0x18;
            s.timeout = 1234;
            s.pcr_counter = Some(0);
        }
        // Version-6 state: command audit and an audit session.
        t.p.audit.commands.push(0x17B);
        t.p.audit.counter = 9;
        t.p.audit.digest = alloc::vec![5; 32];
        let sh =
            t.v.sessions
                .iter()
                .flatten()
                .next()
                .expect("session")
                .handle;
        t.v.audit.digests.push((sh, alloc::vec![6; 32]));
        t.v.audit.exclusive = sh;
        t.p.pcr_alloc = alloc::vec![HashAlg::Sha256];
        t.p.pcr_auth = alloc::vec![1, 2];
        for version in 1..=STATE_VERSION {
            let perm = encode_permanent_version(&t.p, version);
            let p = decode_permanent(&perm).unwrap_or_else(|e| panic!("permanent v{version}: {e}"));
            assert_eq!(p.eps, t.p.eps);
            assert_eq!(
                p.total_commands,
                if version >= 2 { t.p.total_commands } else { 0 }
            );
            let full = encode_full_version(&t.p, &t.v, version);
            let (_, v) = decode_full(&full).unwrap_or_else(|e| panic!("full v{version}: {e}"));
            assert_eq!(v.pcrs, t.v.pcrs);
            // Sessions travel from version 3 on, with their policy conditions from 4 on.
            let sessions: alloc::vec::Vec<_> = v.sessions.iter().flatten().collect();
            assert_eq!(
                sessions.len(),
                if version >= 3 { 1 } else { 0 },
                "v{version}"
            );
            if let Some(s) = sessions.first() {
                let v4 = version >= 4;
                assert_eq!(s.bound == crate::session::Bound::CpHash, v4, "v{version}");
                assert_eq!(
                    (s.locality, s.timeout),
                    if v4 { (0x18, 1234) } else { (0, 0) }
                );
                // Version 5: the PolicyPCR counter (Some(0) is not "none").
                assert_eq!(s.pcr_counter.is_some(), version >= 5, "v{version}");
            }
            let p = decode_permanent(&encode_permanent_version(&t.p, version)).expect("perm");
            let v4 = version >= 4;
            assert_eq!(p.global_locked.len(), usize::from(v4), "v{version}");
            // Older formats did not record the shutdown: not orderly, safe until then.
            assert_eq!((p.clock_safe, p.orderly), (!v4, v4), "v{version}");
            // Audit state travels from version 6 on; older blobs get the manufactured state.
            let v6 = version >= 6;
            let want = if v6 {
                t.p.audit.clone()
            } else {
                crate::cmd::CommandAudit::new()
            };
            assert_eq!(p.audit, want, "v{version}");
            assert_eq!(v.audit.exclusive != 0, v6, "v{version}");
            assert_eq!(v.audit.digests.len(), usize::from(v6), "v{version}");
            let banks = if v6 {
                alloc::vec![HashAlg::Sha256]
            } else {
                crate::pcr::BANKS.to_vec()
            };
            assert_eq!(p.pcr_alloc, banks, "v{version}");
            assert_eq!(p.pcr_auth.len(), if v6 { 2 } else { 0 }, "v{version}");
        }
    }
}
