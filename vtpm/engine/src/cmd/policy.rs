//! Policy assertions beyond the basic ones in `session.rs`: PolicySecret, PolicySigned,
//! PolicyTicket (with their shared nonce/cpHash/expiration rules and TPMT_TK_AUTH tickets),
//! PolicyCpHash, PolicyNameHash, PolicyLocality and PolicyNV (Part 3 ch. 23).

use crate::Platform;
use crate::cc::code;
use crate::crypto::{HashAlg, ct_eq};
use crate::engine::{Ctx, Out, Tpm};
use crate::handle as h;
use crate::nv::a;
use crate::object::{self, Signature};
use crate::rc::{At, Rc};
use crate::session::{Bound, SE_TRIAL, Session};
use alloc::vec::Vec;

const ST_AUTH_SECRET: u16 = 0x8023;
const ST_AUTH_SIGNED: u16 = 0x8025;
/// Top bit of the (TPM-specific) timeout value: the ticket also dies with a TPM Reset.
const EXPIRES_ON_RESET: u64 = 1 << 63;

/// The arguments PolicySigned and PolicySecret share.
struct AuthArgs {
    nonce: Vec<u8>,
    cp: Vec<u8>,
    policy_ref: Vec<u8>,
    expiration: i32,
}

fn parse_auth_args(c: &mut Ctx<'_>) -> Result<AuthArgs, Rc> {
    Ok(AuthArgs {
        nonce: c.params.tpm2b(64).p(1)?.to_vec(),
        cp: c.params.tpm2b(64).p(2)?.to_vec(),
        policy_ref: c.params.tpm2b(64).p(3)?.to_vec(),
        expiration: c.params.u32().p(4)? as i32,
    })
}

/// TPM_EO comparisons for PolicyNV: big-endian operands of equal size.
pub(super) fn condition(op: u16, a: &[u8], b: &[u8]) -> bool {
    use core::cmp::Ordering;
    let unsigned = a.cmp(b);
    let signed = match (
        a.first().map(|x| x & 0x80 != 0),
        b.first().map(|x| x & 0x80 != 0),
    ) {
        (Some(true), Some(false)) => Ordering::Less,
        (Some(false), Some(true)) => Ordering::Greater,
        _ => unsigned,
    };
    match op {
        0x0000 => unsigned == Ordering::Equal,
        0x0001 => unsigned != Ordering::Equal,
        0x0002 => signed == Ordering::Greater,
        0x0003 => unsigned == Ordering::Greater,
        0x0004 => signed == Ordering::Less,
        0x0005 => unsigned == Ordering::Less,
        0x0006 => signed != Ordering::Less,
        0x0007 => unsigned != Ordering::Less,
        0x0008 => signed != Ordering::Greater,
        0x0009 => unsigned != Ordering::Greater,
        0x000A => a.iter().zip(b).all(|(x, y)| x & y == *y),
        _ => a.iter().zip(b).all(|(x, y)| x & y == 0),
    }
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn dispatch_policy(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        match c.cc {
            code::POLICY_SECRET => self.policy_secret(c),
            code::POLICY_SIGNED => self.policy_signed(c),
            code::POLICY_TICKET => self.policy_ticket(c),
            code::POLICY_CP_HASH | code::POLICY_NAME_HASH => self.policy_cp_name_hash(c),
            code::POLICY_LOCALITY => self.policy_locality(c),
            code::POLICY_NV => self.policy_nv(c),
            code::POLICY_AUTHORIZE_NV => self.policy_authorize_nv(c),
            _ => self.dispatch_audit(c),
        }
    }

    /// When an authorisation given with `expiration` stops counting (ms since power-on; 0 for
    /// never): relative to the session start when it is tied to nonceTPM, otherwise relative
    /// to this power-on (so an unbound authorisation with a short expiration is soon stale).
    fn auth_timeout(&mut self, s: &Session, expiration: i32, nonce: &[u8]) -> u64 {
        if expiration == 0 {
            return 0;
        }
        let ms = i64::from(expiration).unsigned_abs() * 1000;
        if nonce.is_empty() {
            ms + self.time_ms() % 1000
        } else {
            s.start_time + ms
        }
    }

    /// Checks of nonceTPM, expiration and cpHashA common to PolicySigned/Secret/Ticket, with
    /// the parameter numbers to blame.
    fn policy_parameter_checks(
        &mut self,
        s: &Session,
        timeout: u64,
        cp: &[u8],
        nonce: &[u8],
        blame: (u32, u32, u32),
    ) -> Result<(), Rc> {
        let (p_nonce, p_cp, p_exp) = blame;
        if !nonce.is_empty() && !ct_eq(nonce, &s.nonce_tpm) {
            return Err(Rc::NONCE.param(p_nonce));
        }
        if timeout != 0 && timeout < self.time_ms() {
            return Err(Rc::EXPIRED.param(p_exp));
        }
        if !cp.is_empty() {
            if cp.len() != s.hash.size() {
                return Err(Rc::SIZE.param(p_cp));
            }
            if !s.bound_digest.is_empty() && !ct_eq(cp, &s.bound_digest) {
                return Err(Rc::CPHASH);
            }
        }
        Ok(())
    }

    /// policyDigest' = H(H(policyDigest || cc || name) || policyRef); records cpHashA and the
    /// earliest timeout.
    #[allow(clippy::too_many_arguments)]
    fn policy_context_update(
        &mut self,
        hdl: u32,
        n: u32,
        cc: u32,
        name: &[u8],
        policy_ref: &[u8],
        cp: &[u8],
        timeout: u64,
    ) -> Result<(), Rc> {
        let s = self.policy_session(hdl, n)?;
        let first = s.hash.digest(&[&s.policy_digest, &cc.to_be_bytes(), name]);
        s.policy_digest = s.hash.digest(&[&first, policy_ref]);
        if !cp.is_empty() {
            s.bound = Bound::CpHash;
            s.bound_digest = cp.to_vec();
        }
        if timeout != 0 && (s.timeout == 0 || s.timeout > timeout) {
            s.timeout = timeout;
        }
        Ok(())
    }

    /// The hierarchy an entity belongs to (the proof that MACs its tickets).
    fn entity_hierarchy(&self, hdl: u32) -> u32 {
        match h::ty(hdl) {
            h::HT_PERMANENT => match hdl {
                h::RH_PLATFORM | h::RH_ENDORSEMENT | h::RH_NULL => hdl,
                h::RH_PLATFORM_NV => h::RH_PLATFORM,
                _ => h::RH_OWNER,
            },
            h::HT_NV_INDEX => {
                let platform = self
                    .p
                    .nv
                    .iter()
                    .any(|n| n.handle == hdl && n.has(a::PLATFORMCREATE));
                if platform {
                    h::RH_PLATFORM
                } else {
                    h::RH_OWNER
                }
            }
            h::HT_TRANSIENT | h::HT_PERSISTENT => {
                self.object(hdl).map(|o| o.hierarchy).unwrap_or(h::RH_NULL)
            }
            _ => h::RH_OWNER,
        }
    }

    /// The TPMT_TK_AUTH digest. A ticket with a timeout names this power cycle (time restarts
    /// with it) and, when it expires on reset, the reset count.
    #[allow(clippy::too_many_arguments)]
    fn auth_ticket(
        &self,
        tag: u16,
        hier: u32,
        timeout: u64,
        expires_on_reset: bool,
        cp: &[u8],
        policy_ref: &[u8],
        name: &[u8],
    ) -> Vec<u8> {
        let epoch = if timeout != 0 {
            HashAlg::Sha256.digest(&[b"TIME EPOCH", &self.v.context_key])
        } else {
            Vec::new()
        };
        let resets = if timeout != 0 && expires_on_reset {
            self.p.reset_count.to_be_bytes().to_vec()
        } else {
            Vec::new()
        };
        HashAlg::Sha512.hmac(
            &self.proof(hier),
            &[
                &tag.to_be_bytes(),
                cp,
                policy_ref,
                name,
                &timeout.to_be_bytes(),
                &epoch,
                &resets,
            ],
        )
    }

    /// timeout and policyTicket of PolicySigned/PolicySecret: a ticket only for a negative
    /// expiration in a real (not trial) session.
    fn auth_output(
        &self,
        tag: u16,
        args: &AuthArgs,
        trial: bool,
        entity: u32,
        timeout: u64,
        name: &[u8],
    ) -> Out {
        let mut o = Out::new();
        if args.expiration < 0 && !trial {
            let expires_on_reset = args.nonce.is_empty();
            let hier = self.entity_hierarchy(entity);
            let digest = self.auth_ticket(
                tag,
                hier,
                timeout,
                expires_on_reset,
                &args.cp,
                &args.policy_ref,
                name,
            );
            let flagged = if expires_on_reset {
                timeout | EXPIRES_ON_RESET
            } else {
                timeout
            };
            o.params
                .tpm2b(&flagged.to_be_bytes())
                .u16(tag)
                .u32(hier)
                .tpm2b(&digest);
        } else {
            o.params.u16(0).u16(tag).u32(h::RH_NULL).u16(0);
        }
        o
    }

    fn policy_secret(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let args = parse_auth_args(c)?;
        c.params.finish().p(4)?;
        let (auth_h, ps) = (c.handles[0], c.handles[1]);
        let s = self.policy_session(ps, 2)?.clone();
        let trial = s.kind == SE_TRIAL;
        let mut timeout = 0;
        if !trial {
            timeout = self.auth_timeout(&s, args.expiration, &args.nonce);
            self.policy_parameter_checks(&s, timeout, &args.cp, &args.nonce, (1, 2, 4))?;
        }
        let name = self.entity_name(auth_h);
        self.policy_context_update(
            ps,
            2,
            code::POLICY_SECRET,
            &name,
            &args.policy_ref,
            &args.cp,
            timeout,
        )?;
        Ok(self.auth_output(ST_AUTH_SECRET, &args, trial, auth_h, timeout, &name))
    }

    /// PolicySigned: the authorising key signed aHash = H(nonceTPM || expiration || cpHashA ||
    /// policyRef) with the hash of its signature scheme.
    fn policy_signed(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let args = parse_auth_args(c)?;
        let sig = Signature::parse(&mut c.params).p(5)?;
        c.params.finish().p(5)?;
        let (key_h, ps) = (c.handles[0], c.handles[1]);
        let key = self.object(key_h).h(1)?.clone();
        let s = self.policy_session(ps, 2)?.clone();
        let trial = s.kind == SE_TRIAL;
        let mut timeout = 0;
        if !trial {
            timeout = self.auth_timeout(&s, args.expiration, &args.nonce);
            self.policy_parameter_checks(&s, timeout, &args.cp, &args.nonce, (1, 2, 4))?;
            let hash = match &sig {
                Signature::Rsa { hash, .. }
                | Signature::Ecdsa { hash, .. }
                | Signature::Ecdaa { hash, .. }
                | Signature::Hmac { hash, .. } => *hash,
            };
            let sh = HashAlg::from_alg(hash).map_err(|_| Rc::SCHEME.param(5))?;
            let a_hash = sh.digest(&[
                &args.nonce,
                &(args.expiration as u32).to_be_bytes(),
                &args.cp,
                &args.policy_ref,
            ]);
            object::verify(&key, &a_hash, &sig).p(5)?;
        }
        let name = key.name.clone();
        self.policy_context_update(
            ps,
            2,
            code::POLICY_SIGNED,
            &name,
            &args.policy_ref,
            &args.cp,
            timeout,
        )?;
        Ok(self.auth_output(ST_AUTH_SIGNED, &args, trial, key_h, timeout, &name))
    }

    /// PolicyTicket: a TPMT_TK_AUTH from an earlier PolicySigned/PolicySecret stands in for it.
    fn policy_ticket(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let timeout_b = c.params.tpm2b(8).p(1)?.to_vec();
        let cp = c.params.tpm2b(64).p(2)?.to_vec();
        let policy_ref = c.params.tpm2b(64).p(3)?.to_vec();
        let auth_name = c.params.tpm2b(66).p(4)?.to_vec();
        let tag = c.params.u16().p(5)?;
        if tag != ST_AUTH_SECRET && tag != ST_AUTH_SIGNED {
            return Err(Rc::TAG.param(5));
        }
        let hier = c.params.u32().p(5)?;
        if !matches!(
            hier,
            h::RH_OWNER | h::RH_ENDORSEMENT | h::RH_PLATFORM | h::RH_NULL
        ) {
            return Err(Rc::VALUE.param(5));
        }
        let digest = c.params.tpm2b(64).p(5)?.to_vec();
        c.params.finish().p(5)?;
        let ps = c.handles[0];
        let s = self.policy_session(ps, 1)?.clone();
        // A trial policy computes PolicySigned/PolicySecret itself; it has no use for tickets.
        if s.kind == SE_TRIAL {
            return Err(Rc::ATTRIBUTES.handle(1));
        }
        let Ok(raw) = <[u8; 8]>::try_from(timeout_b.as_slice()) else {
            return Err(Rc::SIZE.param(1));
        };
        let raw = u64::from_be_bytes(raw);
        let expires_on_reset = raw & EXPIRES_ON_RESET != 0;
        let timeout = raw & !EXPIRES_ON_RESET;
        self.policy_parameter_checks(&s, timeout, &cp, &[], (0, 2, 1))?;
        let want = self.auth_ticket(
            tag,
            hier,
            timeout,
            expires_on_reset,
            &cp,
            &policy_ref,
            &auth_name,
        );
        if !ct_eq(&want, &digest) {
            return Err(Rc::TICKET.param(5));
        }
        let cc = if tag == ST_AUTH_SIGNED {
            code::POLICY_SIGNED
        } else {
            code::POLICY_SECRET
        };
        self.policy_context_update(ps, 1, cc, &auth_name, &policy_ref, &cp, timeout)?;
        Ok(Out::new())
    }

    /// PolicyCpHash / PolicyNameHash: limit the session to one command's parameters or to
    /// one set of handles; both share the session's cpHash slot.
    fn policy_cp_name_hash(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let d = c.params.tpm2b(64).p(1)?.to_vec();
        c.params.finish().p(1)?;
        let cp = c.cc == code::POLICY_CP_HASH;
        let s = self.policy_session(c.handles[0], 1)?;
        if d.len() != s.hash.size() {
            return Err(Rc::SIZE.param(1));
        }
        let clash = if cp {
            s.bound != Bound::None && (s.bound != Bound::CpHash || !ct_eq(&d, &s.bound_digest))
        } else {
            s.bound != Bound::None
        };
        if clash {
            return Err(Rc::CPHASH);
        }
        s.bound = if cp { Bound::CpHash } else { Bound::NameHash };
        s.bound_digest = d.clone();
        self.policy_update(c.handles[0], 1, &[&c.cc.to_be_bytes(), &d])?;
        Ok(Out::new())
    }

    /// PolicyLocality: narrows the localities at which the session authorises.
    fn policy_locality(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let loc = c.params.u8().p(1)?;
        c.params.finish().p(1)?;
        let s = self.policy_session(c.handles[0], 1)?;
        if loc == 0 {
            return Err(Rc::RANGE.param(1));
        }
        let prev = s.locality;
        // Plain (bit mask) and extended localities do not mix.
        if prev != 0 && ((prev < 32) != (loc < 32)) {
            return Err(Rc::RANGE.param(1));
        }
        let new = if loc < 32 {
            let m = if prev == 0 { 0x1F } else { prev } & loc;
            if m == 0 {
                return Err(Rc::RANGE.param(1));
            }
            m
        } else {
            if prev != 0 && prev != loc {
                return Err(Rc::RANGE.param(1));
            }
            loc
        };
        s.locality = new;
        self.policy_update(
            c.handles[0],
            1,
            &[&code::POLICY_LOCALITY.to_be_bytes(), &[loc]],
        )?;
        Ok(Out::new())
    }

    /// PolicyNV: compares NV index contents with operandB (read rules as NV_Read).
    fn policy_nv(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        let operand = c.params.tpm2b(64).p(1)?.to_vec();
        let offset = c.params.u16().p(2)?;
        let op = c.params.u16().p(3)?;
        if op > 0x000B {
            return Err(Rc::VALUE.param(3));
        }
        c.params.finish().p(3)?;
        let (auth_h, nv_h, ps) = (c.handles[0], c.handles[1], c.handles[2]);
        let s = self.policy_session(ps, 3)?.clone();
        let n = self
            .p
            .nv
            .iter()
            .find(|n| n.handle == nv_h)
            .cloned()
            .ok_or(Rc::HANDLE.handle(2))?;
        if s.kind != SE_TRIAL {
            self.policy_nv_read_checks(auth_h, &n)?;
            let off = usize::from(offset);
            if off > n.data.len() {
                return Err(Rc::VALUE.param(2));
            }
            if n.data.len() - off < operand.len() {
                return Err(Rc::SIZE.param(1));
            }
            if !condition(op, &n.data[off..off + operand.len()], &operand) {
                return Err(Rc::POLICY);
            }
        }
        let args = s
            .hash
            .digest(&[&operand, &offset.to_be_bytes(), &op.to_be_bytes()]);
        let name = n.name();
        self.policy_update(ps, 3, &[&code::POLICY_NV.to_be_bytes(), &args, &name])?;
        Ok(Out::new())
    }

    /// The read checks PolicyNV and PolicyAuthorizeNV make on their index (the reference's
    /// NvReadAccessChecks): not read-locked, readable with `auth_h`, written.
    fn policy_nv_read_checks(&self, auth_h: u32, n: &crate::nv::NvIndex) -> Result<(), Rc> {
        if n.has(a::READLOCKED) {
            return Err(Rc::NV_LOCKED);
        }
        self.nv_check_auth(auth_h, n, true)?;
        if !n.has(a::WRITTEN) {
            return Err(Rc::NV_UNINITIALIZED);
        }
        Ok(())
    }

    /// PolicyAuthorizeNV: the session's policyDigest must equal the TPMT_HA an ordinary NV
    /// index holds (read under its read authorisation); the digest then starts over from
    /// TPM_CC_PolicyAuthorizeNV and the index's Name. Trial sessions skip the checks.
    fn policy_authorize_nv(&mut self, c: &mut Ctx<'_>) -> Result<Out, Rc> {
        c.params.finish().p(1)?;
        let (auth_h, nv_h, ps) = (c.handles[0], c.handles[1], c.handles[2]);
        let s = self.policy_session(ps, 3)?.clone();
        let n =
            (self.p.nv.iter().find(|n| n.handle == nv_h).cloned()).ok_or(Rc::HANDLE.handle(2))?;
        if s.kind != SE_TRIAL {
            self.policy_nv_read_checks(auth_h, &n)?;
            if n.nt() != crate::nv::NT_ORDINARY {
                return Err(Rc::ATTRIBUTES.handle(2));
            }
            // TPMT_HA: the session's hash algorithm, then a digest of its size.
            let d = &n.data;
            let alg = d.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let digest = d.get(2..2 + s.hash.size());
            let (Some(alg), Some(digest)) = (alg, digest) else {
                return Err(Rc::HASH);
            };
            if alg != s.hash.alg() {
                return Err(Rc::HASH);
            }
            if !ct_eq(digest, &s.policy_digest) {
                return Err(Rc::VALUE);
            }
        }
        let name = n.name();
        let sess = self.policy_session(ps, 3)?;
        sess.policy_digest = alloc::vec![0; sess.hash.size()];
        self.policy_update(ps, 3, &[&code::POLICY_AUTHORIZE_NV.to_be_bytes(), &name])?;
        Ok(Out::new())
    }
}

#[cfg(test)]
mod tests {
    use super::condition;

    #[test]
    fn nv_comparisons() {
        // (operation, A, B, holds)
        let cases: &[(u16, &[u8], &[u8], bool)] = &[
            (0x0, &[1, 2], &[1, 2], true),
            (0x1, &[1, 2], &[1, 2], false),
            (0x2, &[0x80], &[0x01], false), // -128 > 1 signed: no
            (0x3, &[0x80], &[0x01], true),  // 128 > 1 unsigned
            (0x4, &[0xFF], &[0x00], true),  // -1 < 0 signed
            (0x5, &[0xFF], &[0x00], false),
            (0x6, &[0x05], &[0x05], true),
            (0x7, &[0x04], &[0x05], false),
            (0x8, &[0x85], &[0x05], true),
            (0x9, &[0x05, 0], &[0x05, 1], true),
            (0xA, &[0b1011], &[0b0011], true),
            (0xA, &[0b1001], &[0b0011], false),
            (0xB, &[0b1000], &[0b0011], true),
            (0xB, &[0b1010], &[0b0011], false),
        ];
        for &(op, x, y, want) in cases {
            assert_eq!(condition(op, x, y), want, "op {op:#x} {x:?} {y:?}");
        }
    }
}
