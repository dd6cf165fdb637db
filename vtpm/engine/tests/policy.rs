//! Policy sessions at the engine level, from raw command bytes: how each assertion extends the
//! policy digest (computed here independently from Part 3), the nonceTPM / cpHashA /
//! expiration rules of PolicySecret, PolicySigned and PolicyTicket, and the conditions a
//! policy session carries into the command it authorises (locality, cpHash, nameHash, timeout);
//! and the NV/attestation commands beside them (NV_GlobalWriteLock, NV_Certify, CertifyCreation).

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use support::*;
use warden_vtpm::Tpm;

const SE_POLICY: u8 = 1;
const SE_TRIAL: u8 = 3;

struct T {
    tpm: Tpm<ClockPlat>,
    clock: Rc<Cell<u64>>,
}

impl T {
    fn new() -> T {
        let clock = Rc::new(Cell::new(1_000));
        let plat = ClockPlat {
            clock: clock.clone(),
            nv: Rc::new(RefCell::new(None)),
            counter: 42,
            increment: 1442695040888963407,
        };
        let mut t = T {
            tpm: Tpm::new(plat).expect("fresh TPM"),
            clock,
        };
        t.ok(0, &plain(0x144, &[], &[0, 0]));
        t
    }

    fn run(&mut self, loc: u8, c: &[u8]) -> Vec<u8> {
        self.tpm.execute(loc, c)
    }

    fn ok(&mut self, loc: u8, c: &[u8]) -> Vec<u8> {
        let r = self.run(loc, c);
        assert_eq!(
            rc(&r),
            0,
            "command {:02x?} failed: {:#x}",
            &c[6..10],
            rc(&r)
        );
        r
    }

    fn advance(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }

    fn start(&mut self, kind: u8) -> Sess {
        let params = start_session_params(kind);
        Sess::from_response(&self.ok(0, &plain(0x176, &[RH_NULL, RH_NULL], &params)))
    }

    fn digest(&mut self, s: &Sess) -> Vec<u8> {
        let r = self.ok(0, &plain(0x189, &[s.handle], &[]));
        let mut at = 10;
        take2b(&r, &mut at)
    }

    /// CreatePrimary under the owner; returns (handle, name).
    fn primary(&mut self, template: &[u8], data: &[u8]) -> (u32, Vec<u8>) {
        let sens = b2(&[&b2(&[])[..], &b2(data)].concat());
        let params = [&sens[..], &b2(template), &[0, 0, 0, 0, 0, 0]].concat();
        let r = self.ok(0, &pw(0x131, &[RH_OWNER], 1, &params));
        let handle = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
        let mut at = 18;
        for _ in 0..3 {
            take2b(&r, &mut at); // outPublic, creationData, creationHash
        }
        at += 6; // ticket tag + hierarchy
        take2b(&r, &mut at);
        (handle, take2b(&r, &mut at))
    }

    /// A sealed primary object that only a policy session with `policy` can unseal.
    fn sealed(&mut self, policy: &[u8]) -> (u32, Vec<u8>) {
        self.primary(&sealed_template(policy), b"sealed secret")
    }

    fn unseal(&mut self, loc: u8, obj: &(u32, Vec<u8>), s: &Sess) -> u32 {
        let r = self.run(
            loc,
            &with_policy(0x15E, &[obj.0], std::slice::from_ref(&obj.1), s, &[]),
        );
        if rc(&r) == 0 {
            let mut at = 14;
            assert_eq!(take2b(&r, &mut at), b"sealed secret");
        }
        rc(&r)
    }

    fn flush(&mut self, h: u32) {
        self.ok(0, &plain(0x165, &[], &h.to_be_bytes()));
    }
}

const SIGN_ATTRS: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 18);

fn ecc_sign_template() -> Vec<u8> {
    [
        &[0, 0x23, 0, 0x0B][..],
        &SIGN_ATTRS.to_be_bytes(),
        &b2(&[]),
        &[0, 0x10, 0, 0x18, 0, 0x0B, 0, 0x03, 0, 0x10],
        &b2(&[]),
        &b2(&[]),
    ]
    .concat()
}

fn rsa_sign_template() -> Vec<u8> {
    [
        &[0, 0x01, 0, 0x0B][..],
        &SIGN_ATTRS.to_be_bytes(),
        &b2(&[]),
        &[0, 0x10, 0, 0x10, 0x08, 0x00, 0, 0, 0, 0],
        &b2(&[]),
    ]
    .concat()
}

/// PolicySecret / PolicySigned parameters before the signature.
fn auth_params(nonce: &[u8], cp: &[u8], policy_ref: &[u8], expiration: i32) -> Vec<u8> {
    [
        &b2(nonce)[..],
        &b2(cp),
        &b2(policy_ref),
        &expiration.to_be_bytes(),
    ]
    .concat()
}

/// TPM2_Sign of `digest` with the scheme given (NULL: the key's) and a NULL hashcheck ticket;
/// returns the TPMT_SIGNATURE bytes.
fn tpm_sign(t: &mut T, key: u32, digest: &[u8], scheme: &[u8]) -> Vec<u8> {
    let params = [&b2(digest)[..], scheme, &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0]].concat();
    let r = t.ok(0, &pw(0x15D, &[key], 1, &params));
    let size = u32::from_be_bytes([r[10], r[11], r[12], r[13]]) as usize;
    r[14..14 + size].to_vec()
}

fn ahash(nonce: &[u8], expiration: i32, cp: &[u8], policy_ref: &[u8]) -> Vec<u8> {
    sha256(&[nonce, &expiration.to_be_bytes(), cp, policy_ref])
}

fn owner_name() -> Vec<u8> {
    RH_OWNER.to_be_bytes().to_vec()
}

#[test]
fn assertions_extend_the_digest_as_part3_says() {
    let mut t = T::new();
    let (key, key_name) = t.primary(&ecc_sign_template(), &[]);
    // An NV index for PolicyNV: its Name comes from NV_ReadPublic.
    let nv = 0x0150_0020u32;
    let nv_pub = nv_public(nv, (1 << 1) | (1 << 17), &[], 8);
    t.ok(
        0,
        &pw(
            0x12A,
            &[RH_OWNER],
            1,
            &[&b2(&[])[..], &b2(&nv_pub)].concat(),
        ),
    );
    let r = t.ok(0, &plain(0x169, &[nv], &[]));
    let mut at = 10;
    take2b(&r, &mut at);
    let nv_name = take2b(&r, &mut at);
    let cp = [0xC5u8; 32];
    let nh = [0x4Eu8; 32];
    let operand = [0, 0, 0, 7];
    // The trial digest after each assertion, against H(...) written out from Part 3.
    type Want = Box<dyn Fn(&[u8]) -> Vec<u8>>;
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        (
            "PolicySecret(owner, ref)",
            pw(0x151, &[RH_OWNER, 0], 1, &auth_params(&[], &[], b"ref", 0)),
            Box::new(|d| {
                sha256(&[
                    &sha256(&[d, &0x151u32.to_be_bytes(), &owner_name()]),
                    b"ref",
                ])
            }),
        ),
        (
            "PolicySigned(key, ref)",
            plain(
                0x160,
                &[key, 0],
                &[
                    &auth_params(&[], &[], b"sref", 0)[..],
                    &[0, 0x18, 0, 0x0B, 0, 0, 0, 0],
                ]
                .concat(),
            ),
            Box::new({
                let kn = key_name.clone();
                move |d| sha256(&[&sha256(&[d, &0x160u32.to_be_bytes(), &kn]), b"sref"])
            }),
        ),
        (
            "PolicyCpHash",
            plain(0x16E, &[0], &b2(&cp)),
            Box::new(move |d| sha256(&[d, &0x16Eu32.to_be_bytes(), &cp])),
        ),
        (
            "PolicyLocality(3|4)",
            plain(0x16F, &[0], &[0x18]),
            Box::new(|d| sha256(&[d, &0x16Fu32.to_be_bytes(), &[0x18]])),
        ),
        (
            "PolicyNV(owner, nv, >= 7)",
            pw(
                0x149,
                &[RH_OWNER, nv, 0],
                1,
                &[&b2(&operand)[..], &[0, 4], &[0, 0x07]].concat(),
            ),
            Box::new({
                let name = nv_name.clone();
                move |d| {
                    let args = sha256(&[&operand, &[0, 4], &[0, 7]]);
                    sha256(&[d, &0x149u32.to_be_bytes(), &args, &name])
                }
            }),
        ),
    ];
    for (what, mut c, want) in cases {
        let s = t.start(SE_TRIAL);
        let pos = session_slot(&c);
        c[pos..pos + 4].copy_from_slice(&s.handle.to_be_bytes());
        let before = t.digest(&s);
        t.ok(0, &c);
        assert_eq!(t.digest(&s), want(&before), "{what}");
        t.flush(s.handle);
    }
    // PolicyNameHash on its own (it cannot follow PolicyCpHash in one session).
    let s = t.start(SE_TRIAL);
    t.ok(0, &plain(0x170, &[s.handle], &b2(&nh)));
    assert_eq!(
        t.digest(&s),
        sha256(&[&[0; 32], &0x170u32.to_be_bytes(), &nh])
    );
    assert_eq!(
        rc(&t.run(0, &plain(0x16E, &[s.handle], &b2(&cp)))),
        0x151,
        "PolicyCpHash after PolicyNameHash: TPM_RC_CPHASH"
    );
    // A ticket stands in for an authorisation; a trial session has none to replace.
    let ticket = [
        &b2(&[0; 8])[..],
        &b2(&[]),
        &b2(&[]),
        &b2(&owner_name()),
        &[0x80, 0x23, 0x40, 0, 0, 1],
        &b2(&[0; 64]),
    ]
    .concat();
    assert_eq!(rc(&t.run(0, &plain(0x172, &[s.handle], &ticket))), 0x182);
}

/// Where the policy-session handle goes in a test command (the zero placeholder handle).
fn session_slot(c: &[u8]) -> usize {
    (10..c.len() - 3)
        .step_by(4)
        .find(|&i| c[i..i + 4] == [0, 0, 0, 0])
        .expect("placeholder handle")
}

#[test]
fn policy_secret_checks_nonce_cphash_and_expiration() {
    let mut t = T::new();
    let s = t.start(SE_POLICY);
    let secret = |p: Vec<u8>, sh: u32| pw(0x151, &[RH_OWNER, sh], 1, &p);
    let other_nonce = vec![0xEE; s.nonce_tpm.len()];
    // (what, parameters, response code)
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "nonceTPM of another session",
            auth_params(&other_nonce, &[], &[], 0),
            0x1CF,
        ),
        (
            "cpHashA of the wrong size",
            auth_params(&s.nonce_tpm, &[1; 20], &[], 0),
            0x2D5,
        ),
        (
            "expiration relative to power-on, already past",
            {
                t.advance(10_000);
                auth_params(&[], &[], &[], 2)
            },
            0x4E3,
        ),
        (
            "trailing byte",
            [auth_params(&[], &[], &[], 0), vec![0]].concat(),
            0x095,
        ),
    ];
    for (what, p, want) in cases {
        let r = t.run(0, &secret(p, s.handle));
        assert_eq!(rc(&r), want, "{what}: got {:#x}", rc(&r));
    }
    // Failures leave the session untouched.
    assert_eq!(t.digest(&s), vec![0; 32]);

    // A cpHashA is recorded; a later, different one is TPM_RC_CPHASH.
    let cp = [0x21u8; 32];
    t.ok(0, &secret(auth_params(&s.nonce_tpm, &cp, &[], 0), s.handle));
    let r = t.run(0, &secret(auth_params(&[], &[0x22; 32], &[], 0), s.handle));
    assert_eq!(rc(&r), 0x151);
    t.ok(0, &secret(auth_params(&[], &cp, &[], 0), s.handle));

    // Negative expiration: a timeout and a ticket, MACed under the owner hierarchy.
    let s2 = t.start(SE_POLICY);
    let r = t.ok(
        0,
        &secret(auth_params(&s2.nonce_tpm, &[], b"r", -60), s2.handle),
    );
    let mut at = 14;
    let timeout = take2b(&r, &mut at);
    assert_eq!(timeout.len(), 8);
    let tag = u16::from_be_bytes([r[at], r[at + 1]]);
    let hier = u32::from_be_bytes([r[at + 2], r[at + 3], r[at + 4], r[at + 5]]);
    assert_eq!((tag, hier), (0x8023, RH_OWNER));
    at += 6;
    assert_eq!(take2b(&r, &mut at).len(), 64);
    // Without expiration (or positive): no timeout, a NULL ticket.
    let s3 = t.start(SE_POLICY);
    let r = t.ok(
        0,
        &secret(auth_params(&s3.nonce_tpm, &[], &[], 30), s3.handle),
    );
    assert_eq!(&r[14..24], &[0, 0, 0x80, 0x23, 0x40, 0, 0, 7, 0, 0]);
}

#[test]
fn timeouts_and_tickets_bound_the_authorisation() {
    let mut t = T::new();
    // The object's policy: PolicySecret(owner) with an empty policyRef.
    let policy = sha256(&[
        &sha256(&[&[0; 32], &0x151u32.to_be_bytes(), &owner_name()]),
        &[],
    ]);
    let obj = t.sealed(&policy);

    // expiration 5 s from the session start: good now, EXPIRED at authorisation later.
    let s = t.start(SE_POLICY);
    let p = auth_params(&s.nonce_tpm, &[], &[], 5);
    let r = t.ok(0, &pw(0x151, &[RH_OWNER, s.handle], 1, &p));
    // Not a ticket: the response carries an empty timeout.
    assert_eq!(&r[14..16], &[0, 0]);
    t.advance(6_000);
    assert_eq!(t.unseal(0, &obj, &s), 0x9A3, "session 1 expired");
    t.flush(s.handle);

    // A migrated instance keeps the session's clock: 3 s before and 3 s after the restore.
    let s = t.start(SE_POLICY);
    let p = auth_params(&s.nonce_tpm, &[], &[], 5);
    t.ok(0, &pw(0x151, &[RH_OWNER, s.handle], 1, &p));
    t.advance(3_000);
    // The blob carries time as of the last command (saving reads no clock).
    t.ok(0, &plain(0x17B, &[], &[0, 1]));
    let blob = t.tpm.save_state();
    let mut moved = T::new();
    moved.tpm.restore_state(&blob).expect("restore");
    moved.advance(3_000);
    assert_eq!(moved.unseal(0, &obj, &s), 0x9A3, "expired on the new host");
    t.flush(s.handle);

    // A fresh session within its time unseals.
    let s = t.start(SE_POLICY);
    let p = auth_params(&s.nonce_tpm, &[], &[], 5);
    t.ok(0, &pw(0x151, &[RH_OWNER, s.handle], 1, &p));
    t.advance(1_000);
    assert_eq!(t.unseal(0, &obj, &s), 0);
    t.flush(s.handle);

    // A ticket from a negative expiration replays PolicySecret in another session.
    let s = t.start(SE_POLICY);
    let p = auth_params(&s.nonce_tpm, &[], &[], -20);
    let r = t.ok(0, &pw(0x151, &[RH_OWNER, s.handle], 1, &p));
    t.flush(s.handle);
    let mut at = 14;
    let timeout = take2b(&r, &mut at);
    let ticket = r[at..at + 6 + 2 + 64].to_vec();
    let ticket_params = |timeout: &[u8], ticket: &[u8], policy_ref: &[u8]| {
        [
            &b2(timeout)[..],
            &b2(&[]),
            &b2(policy_ref),
            &b2(&owner_name()),
            ticket,
        ]
        .concat()
    };
    let s = t.start(SE_POLICY);
    let mut forged = ticket.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "forged digest",
            ticket_params(&timeout, &forged, &[]),
            0x5E0,
        ),
        (
            "other policyRef",
            ticket_params(&timeout, &ticket, b"x"),
            0x5E0,
        ),
        (
            "timeout of 4 bytes",
            ticket_params(&timeout[..4], &ticket, &[]),
            0x1D5,
        ),
        (
            "not an auth ticket",
            ticket_params(&timeout, &[&[0x80, 0x21][..], &ticket[2..]].concat(), &[]),
            0x5D7,
        ),
    ];
    for (what, p, want) in cases {
        let r = t.run(0, &plain(0x172, &[s.handle], &p));
        assert_eq!(rc(&r), want, "{what}: got {:#x}", rc(&r));
    }
    t.ok(
        0,
        &plain(0x172, &[s.handle], &ticket_params(&timeout, &ticket, &[])),
    );
    assert_eq!(t.digest(&s), policy, "the ticket stands for PolicySecret");
    assert_eq!(t.unseal(0, &obj, &s), 0);
    t.flush(s.handle);
    // Past its timeout the ticket is refused (TPM_RC_EXPIRED on the timeout parameter).
    t.advance(25_000);
    let s = t.start(SE_POLICY);
    let r = t.run(
        0,
        &plain(0x172, &[s.handle], &ticket_params(&timeout, &ticket, &[])),
    );
    assert_eq!(rc(&r), 0x1E3);
}

#[test]
fn policy_signed_with_rsa_and_ecdsa_keys() {
    let mut t = T::new();
    let (ecc, ecc_name) = t.primary(&ecc_sign_template(), &[]);
    let (rsa, rsa_name) = t.primary(&rsa_sign_template(), &[]);
    let cases: [(&str, u32, &Vec<u8>, &[u8]); 3] = [
        ("ECDSA P-256", ecc, &ecc_name, &[0, 0x10]),
        ("RSASSA", rsa, &rsa_name, &[0, 0x14, 0, 0x0B]),
        ("RSAPSS", rsa, &rsa_name, &[0, 0x16, 0, 0x0B]),
    ];
    for (what, key, name, scheme) in cases {
        let s = t.start(SE_POLICY);
        let cp = [0x33u8; 32];
        let sig = tpm_sign(&mut t, key, &ahash(&s.nonce_tpm, 0, &cp, b"pr"), scheme);
        let params = [&auth_params(&s.nonce_tpm, &cp, b"pr", 0)[..], &sig].concat();
        // A signature over anything else is TPM_RC_SIGNATURE on parameter 5.
        let mut bad = params.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let r = t.run(0, &plain(0x160, &[key, s.handle], &bad));
        assert_eq!(rc(&r), 0x5DB, "{what}: tampered signature");
        let other_ref = [&auth_params(&s.nonce_tpm, &cp, b"pX", 0)[..], &sig].concat();
        let r = t.run(0, &plain(0x160, &[key, s.handle], &other_ref));
        assert_eq!(rc(&r), 0x5DB, "{what}: signature over another policyRef");
        let r = t.ok(0, &plain(0x160, &[key, s.handle], &params));
        assert_eq!(
            &r[10..20],
            &[0, 0, 0x80, 0x25, 0x40, 0, 0, 7, 0, 0],
            "{what}"
        );
        let want = sha256(&[&sha256(&[&[0; 32], &0x160u32.to_be_bytes(), name]), b"pr"]);
        assert_eq!(t.digest(&s), want, "{what}");
        t.flush(s.handle);
    }
    // An ECDSA signature checked against an RSA key: TPM_RC_SCHEME on parameter 5.
    let s = t.start(SE_POLICY);
    let sig = tpm_sign(&mut t, ecc, &ahash(&[], 0, &[], &[]), &[0, 0x10]);
    let params = [&auth_params(&[], &[], &[], 0)[..], &sig].concat();
    assert_eq!(
        rc(&t.run(0, &plain(0x160, &[rsa, s.handle], &params))),
        0x5D2
    );
    // With a negative expiration the signed authorisation becomes a ticket for PolicyTicket.
    let exp = -100;
    let sig = tpm_sign(&mut t, ecc, &ahash(&s.nonce_tpm, exp, &[], &[]), &[0, 0x10]);
    let params = [&auth_params(&s.nonce_tpm, &[], &[], exp)[..], &sig].concat();
    let r = t.ok(0, &plain(0x160, &[ecc, s.handle], &params));
    let mut at = 10;
    let timeout = take2b(&r, &mut at);
    let ticket = r[at..].to_vec();
    assert_eq!(
        &ticket[..6],
        &[0x80, 0x25, 0x40, 0, 0, 1],
        "owner hierarchy"
    );
    let signed_digest = t.digest(&s);
    let s2 = t.start(SE_POLICY);
    let p = [
        &b2(&timeout)[..],
        &b2(&[]),
        &b2(&[]),
        &b2(&ecc_name),
        &ticket,
    ]
    .concat();
    t.ok(0, &plain(0x172, &[s2.handle], &p));
    assert_eq!(t.digest(&s2), signed_digest);
}

#[test]
fn conditions_checked_when_the_session_authorises() {
    let mut t = T::new();
    let zero = [0u8; 32];

    // PolicyLocality(3): unseals at locality 3 only.
    let policy = sha256(&[&zero, &0x16Fu32.to_be_bytes(), &[1 << 3]]);
    let obj = t.sealed(&policy);
    let s = t.start(SE_POLICY);
    t.ok(0, &plain(0x16F, &[s.handle], &[1 << 3]));
    assert_eq!(
        rc(&t.run(0, &plain(0x16F, &[s.handle], &[1 << 1]))),
        0x1CD,
        "no locality left: TPM_RC_RANGE"
    );
    assert_eq!(t.unseal(0, &obj, &s), 0x907, "locality 0: TPM_RC_LOCALITY");
    assert_eq!(t.unseal(3, &obj, &s), 0);
    t.flush(s.handle);
    t.flush(obj.0);

    // PolicyCpHash / PolicyNameHash: a policy cannot contain the cpHash of a command on its
    // own object (the Name hashes the policy), so, as in practice, the object's policy is
    // PolicyAuthorize(key) and the key approves "PolicyCpHash(X)" or "PolicyNameHash(X)".
    let (key, key_name) = t.primary(&ecc_sign_template(), &[]);
    let policy = sha256(&[&sha256(&[&zero, &0x16Au32.to_be_bytes(), &key_name]), &[]]);
    let obj = t.sealed(&policy);
    let other = t.sealed(&[0x55; 32]);
    let unseal_cp = |name: &[u8]| sha256(&[&0x15Eu32.to_be_bytes(), name]);
    let cases: [(&str, u32, Vec<u8>, u32); 4] = [
        ("cpHash of this Unseal", 0x16E, unseal_cp(&obj.1), 0),
        (
            "cpHash of another object's Unseal",
            0x16E,
            unseal_cp(&other.1),
            0x99D,
        ),
        ("nameHash of this object", 0x170, sha256(&[&obj.1]), 0),
        (
            "nameHash of another object",
            0x170,
            sha256(&[&other.1]),
            0x99D,
        ),
    ];
    for (what, cc, d, want) in cases {
        let approved = sha256(&[&zero, &cc.to_be_bytes(), &d]);
        let a_hash = sha256(&[&approved, &[]]);
        let sig = tpm_sign(&mut t, key, &a_hash, &[0, 0x10]);
        let r = t.ok(0, &plain(0x177, &[key], &[&b2(&a_hash)[..], &sig].concat()));
        let ticket = r[10..].to_vec();
        let s = t.start(SE_POLICY);
        t.ok(0, &plain(cc, &[s.handle], &b2(&d)));
        let p = [&b2(&approved)[..], &b2(&[]), &b2(&key_name), &ticket].concat();
        t.ok(0, &plain(0x16A, &[s.handle], &p));
        assert_eq!(t.unseal(0, &obj, &s), want, "{what}");
        t.flush(s.handle);
    }
    t.flush(other.0);

    // A session timeout from PolicySecret is also checked at authorisation (the object's
    // policy is PolicySecret(owner)); see timeouts_and_tickets_bound_the_authorisation.

    let nv = 0x0150_0030u32;
    let nv_pub = nv_public(nv, (1 << 1) | (1 << 17), &[], 4);
    t.ok(
        0,
        &pw(
            0x12A,
            &[RH_OWNER],
            1,
            &[&b2(&[])[..], &b2(&nv_pub)].concat(),
        ),
    );
    t.ok(
        0,
        &pw(
            0x137,
            &[RH_OWNER, nv],
            1,
            &[&b2(&[0, 0, 0, 9])[..], &[0, 0]].concat(),
        ),
    );

    // PolicyNV: the counter-like value 9 at the index; each comparison passes or fails.
    let cases: [(&str, [u8; 4], u16, u32); 4] = [
        ("== 9", [0, 0, 0, 9], 0x0, 0),
        ("> 9 unsigned", [0, 0, 0, 9], 0x3, 0x126),
        ("<= 10 unsigned", [0, 0, 0, 10], 0x9, 0),
        ("bits 8 set", [0, 0, 0, 8], 0xA, 0),
    ];
    for (what, operand, op, want) in cases {
        let s = t.start(SE_POLICY);
        let p = [&b2(&operand)[..], &[0, 0], &op.to_be_bytes()].concat();
        let r = t.run(0, &pw(0x149, &[RH_OWNER, nv, s.handle], 1, &p));
        assert_eq!(rc(&r), want, "{what}: got {:#x}", rc(&r));
        t.flush(s.handle);
    }
    let s = t.start(SE_POLICY);
    let p = [&b2(&[0, 0, 0, 9])[..], &[0, 1], &[0, 0]].concat();
    assert_eq!(
        rc(&t.run(0, &pw(0x149, &[RH_OWNER, nv, s.handle], 1, &p))),
        0x1D5,
        "operand beyond the index: TPM_RC_SIZE on operandB"
    );
    let p = [&b2(&[9])[..], &[0, 5], &[0, 0]].concat();
    assert_eq!(
        rc(&t.run(0, &pw(0x149, &[RH_OWNER, nv, s.handle], 1, &p))),
        0x2C4,
        "offset beyond the index: TPM_RC_VALUE on offset"
    );
}

fn nv_define(t: &mut T, index: u32, attrs: u32, size: u16) {
    let public = nv_public(index, attrs, &[], size);
    t.ok(
        0,
        &pw(
            0x12A,
            &[RH_OWNER],
            1,
            &[&b2(&[])[..], &b2(&public)].concat(),
        ),
    );
}

fn nv_write(t: &mut T, index: u32, data: &[u8]) -> u32 {
    let p = [&b2(data)[..], &[0, 0]].concat();
    rc(&t.run(0, &pw(0x137, &[RH_OWNER, index], 1, &p)))
}

/// The TPMS_ATTEST and signature of an attestation response; checks the signature with
/// TPM2_VerifySignature over SHA-256(attest).
fn verified_attest(t: &mut T, key: u32, r: &[u8]) -> Vec<u8> {
    let mut at = 14;
    let attest = take2b(r, &mut at);
    let size = u32::from_be_bytes([r[10], r[11], r[12], r[13]]) as usize;
    let sig = &r[at..14 + size];
    let p = [&b2(&sha256(&[&attest]))[..], sig].concat();
    t.ok(0, &plain(0x177, &[key], &p));
    attest
}

#[test]
fn nv_global_lock_certify_and_certify_creation() {
    let mut t = T::new();
    let owner_rw = (1u32 << 1) | (1 << 17);
    let (g, n) = (0x0150_0050u32, 0x0150_0051u32);
    nv_define(&mut t, g, owner_rw | (1 << 15), 8);
    nv_define(&mut t, n, owner_rw, 8);
    t.ok(0, &pw(0x132, &[RH_OWNER], 1, &[]));
    assert_eq!(nv_write(&mut t, g, &[1; 8]), 0x148, "globally locked");
    assert_eq!(nv_write(&mut t, n, &[1; 8]), 0);
    // The lock survives a resume (Shutdown/Startup STATE) and ends with a restart.
    for (startup, want) in [(1u8, 0x148), (0, 0)] {
        t.ok(0, &plain(0x145, &[], &[0, 1]));
        t.tpm.power_on();
        t.ok(0, &plain(0x144, &[], &[0, startup]));
        assert_eq!(
            nv_write(&mut t, g, &[2; 8]),
            want,
            "after Startup({startup})"
        );
    }

    // NV_Certify, both forms, checked by the TPM's own VerifySignature.
    let (key, key_name) = t.primary(&ecc_sign_template(), &[]);
    let data = [9u8, 8, 7, 6, 5, 4, 3, 2];
    assert_eq!(nv_write(&mut t, n, &data), 0);
    let r = t.ok(
        0,
        &pw(
            0x184,
            &[key, RH_OWNER, n],
            2,
            &[&b2(b"q")[..], &[0, 0x10], &[0, 3], &[0, 2]].concat(),
        ),
    );
    let attest = verified_attest(&mut t, key, &r);
    assert_eq!(&attest[4..6], &[0x80, 0x14], "TPM_ST_ATTEST_NV");
    assert!(
        attest.ends_with(&[0, 2, 0, 3, 7, 6, 5]),
        "offset and contents"
    );
    let r = t.ok(
        0,
        &pw(
            0x184,
            &[key, RH_OWNER, n],
            2,
            &[&b2(b"q")[..], &[0, 0x10], &[0, 0], &[0, 0]].concat(),
        ),
    );
    let attest = verified_attest(&mut t, key, &r);
    assert_eq!(&attest[4..6], &[0x80, 0x1C], "TPM_ST_ATTEST_NV_DIGEST");
    assert!(attest.ends_with(&b2(&sha256(&[&data]))));
    let r = t.run(
        0,
        &pw(
            0x184,
            &[key, RH_OWNER, n],
            2,
            &[&b2(b"q")[..], &[0, 0x10], &[0, 8], &[0, 1]].concat(),
        ),
    );
    assert_eq!(rc(&r), 0x146, "beyond the index: TPM_RC_NV_RANGE");

    // CertifyCreation of the key itself, with the creation data CreatePrimary returned.
    let sens = b2(&[&b2(&[])[..], &b2(&[])].concat());
    let params = [
        &sens[..],
        &b2(&ecc_sign_template()),
        &b2(b"outside"),
        &[0, 0, 0, 0],
    ]
    .concat();
    let r = t.ok(0, &pw(0x131, &[RH_OWNER], 1, &params));
    let obj = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
    let mut at = 18;
    take2b(&r, &mut at);
    take2b(&r, &mut at);
    let hash_at = at;
    take2b(&r, &mut at);
    let creation_hash = r[hash_at..at].to_vec();
    let ticket_at = at;
    at += 6;
    take2b(&r, &mut at);
    let ticket = r[ticket_at..at].to_vec();
    assert_eq!(take2b(&r, &mut at), key_name, "same template: same key");
    let certify = |hash: &[u8], ticket: &[u8]| {
        pw(
            0x14A,
            &[key, obj],
            1,
            &[&b2(b"q")[..], hash, &[0, 0x10], ticket].concat(),
        )
    };
    let r = t.ok(0, &certify(&creation_hash, &ticket));
    let attest = verified_attest(&mut t, key, &r);
    assert_eq!(&attest[4..6], &[0x80, 0x1A], "TPM_ST_ATTEST_CREATION");
    assert!(attest.ends_with(&[&b2(&key_name)[..], &creation_hash].concat()));
    let mut other = creation_hash.clone();
    *other.last_mut().unwrap() ^= 1;
    assert_eq!(rc(&t.run(0, &certify(&other, &ticket))), 0x4E0);
    let null_ticket = [0x80, 0x21, 0x40, 0, 0, 7, 0, 0];
    assert_eq!(rc(&t.run(0, &certify(&creation_hash, &null_ticket))), 0x4E0);
}
