//! Command audit and audit sessions, checked against digests recomputed here from the command
//! and response bytes (Part 1 §33: digestNew = H(digestOld || cpHash || rpHash)): the audit
//! counter, the audited-command digest, exclusivity, the response codes of bad requests, and
//! the audit state across Restart, Reset and a state blob.

mod support;

use sha2::{Digest, Sha256};
use support::Engine as T;
use support::{
    RH_ENDORSEMENT, RH_NULL, RH_OWNER, RS_PW, b2, rc, session, sha256, start_session_params,
    started,
};
use warden_vtpm::{MemPlatform, Tpm};

const SHA256: u16 = 0x000B;
const SET_STATUS: u32 = 0x140;
const GET_COMMAND_AUDIT: u32 = 0x133;
const GET_SESSION_AUDIT: u32 = 0x14D;
const GET_RANDOM: u32 = 0x17B;
const PCR_EXTEND: u32 = 0x182;

/// A command with the given session area entries (handle, attributes); non-password sessions
/// get a 16-byte nonce; every HMAC/password is empty.
fn cmd(cc: u32, handles: &[u32], sessions: &[(u32, u8)], params: &[u8]) -> Vec<u8> {
    let area = sessions
        .iter()
        .flat_map(|&(h, attrs)| session(h, if h == RS_PW { &[] } else { &[4; 16] }, attrs, &[]));
    support::frame(
        cc,
        handles,
        (!sessions.is_empty()).then(|| area.collect()),
        params,
    )
}

fn pw(n: usize) -> Vec<(u32, u8)> {
    vec![(RS_PW, 1); n]
}

/// The parameters of a command as sent: after the handles and the session area.
fn cmd_params(c: &[u8], handles: usize) -> Vec<u8> {
    let mut at = 10 + 4 * handles;
    if c[0..2] == [0x80, 0x02] {
        let n = u32::from_be_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]]) as usize;
        at += 4 + n;
    }
    c[at..].to_vec()
}

/// The parameters of a response (after a response handle, if any).
fn resp_params(r: &[u8], handle: bool) -> Vec<u8> {
    let at = 10 + if handle { 4 } else { 0 };
    if r[0..2] == [0x80, 0x02] {
        let n = u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]) as usize;
        r[at + 4..at + 4 + n].to_vec()
    } else {
        r[at..].to_vec()
    }
}

/// digestNew := H(digestOld || cpHash || rpHash) for a command and its response.
fn extend(old: &[u8], c: &[u8], names: &[Vec<u8>], r: &[u8]) -> Vec<u8> {
    let cc = &c[6..10];
    let p = cmd_params(c, names.len());
    let mut cp = Sha256::new();
    cp.update(cc);
    for n in names {
        cp.update(n);
    }
    cp.update(&p);
    let cp = cp.finalize().to_vec();
    let rp = sha256(&[&[0, 0, 0, 0], cc, &resp_params(r, false)]);
    sha256(&[old, &cp, &rp])
}

impl T {
    fn new() -> T {
        T(started(21))
    }
    /// An ECDSA P-256 / SHA-256 signing key in the owner hierarchy.
    fn signing_key(&mut self) -> u32 {
        let t = [
            &[0x00, 0x23, 0x00, 0x0B][..],
            &0x0004_0072u32.to_be_bytes(),
            &[
                0, 0, 0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10,
            ],
            &[0, 0, 0, 0],
        ]
        .concat();
        let p = [&[0, 4, 0, 0, 0, 0][..], &b2(&t), &[0, 0, 0, 0, 0, 0]].concat();
        let r = self.ok(&cmd(0x131, &[RH_OWNER], &pw(1), &p));
        u32::from_be_bytes([r[10], r[11], r[12], r[13]])
    }
    /// StartAuthSession: unbound, unsalted, no symmetric algorithm, SHA-256.
    fn start(&mut self, kind: u8) -> u32 {
        let p = start_session_params(kind);
        let r = self.ok(&cmd(0x176, &[RH_NULL, RH_NULL], &[], &p));
        u32::from_be_bytes([r[10], r[11], r[12], r[13]])
    }
    /// Runs an attestation command and checks its signature with TPM2_VerifySignature;
    /// returns the attested body after the common header (TPMS_ATTEST.attested).
    fn attest(&mut self, c: &[u8], key: u32, ty: u16) -> Vec<u8> {
        let r = self.ok(c);
        let p = resp_params(&r, false);
        let n = usize::from(u16::from_be_bytes([p[0], p[1]]));
        let (attest, sig) = (&p[2..2 + n], &p[2 + n..]);
        let v = [&b2(&sha256(&[attest]))[..], sig].concat();
        self.ok(&cmd(0x177, &[key], &[], &v));
        assert_eq!(&attest[..4], &0xff54_4347u32.to_be_bytes(), "TPM_GENERATED");
        assert_eq!(u16::from_be_bytes([attest[4], attest[5]]), ty);
        // qualifiedSigner and extraData, then clockInfo (17) and firmwareVersion (8).
        let mut at = 6;
        for _ in 0..2 {
            at += 2 + usize::from(u16::from_be_bytes([attest[at], attest[at + 1]]));
        }
        attest[at + 25..].to_vec()
    }
}

fn set_status(alg: u16, set: &[u32], clear: &[u32]) -> Vec<u8> {
    cmd(
        SET_STATUS,
        &[RH_OWNER],
        &pw(1),
        &status_params(alg, set, clear),
    )
}

fn status_params(alg: u16, set: &[u32], clear: &[u32]) -> Vec<u8> {
    let mut p = alg.to_be_bytes().to_vec();
    for l in [set, clear] {
        p.extend_from_slice(&(l.len() as u32).to_be_bytes());
        for c in l {
            p.extend_from_slice(&c.to_be_bytes());
        }
    }
    p
}

/// TPMS_COMMAND_AUDIT_INFO: (auditCounter, digestAlg, auditDigest, commandDigest).
fn command_audit_info(b: &[u8]) -> (u64, u16, Vec<u8>, Vec<u8>) {
    let counter = u64::from_be_bytes(b[..8].try_into().unwrap());
    let alg = u16::from_be_bytes([b[8], b[9]]);
    let n = usize::from(u16::from_be_bytes([b[10], b[11]]));
    let digest = b[12..12 + n].to_vec();
    let m = usize::from(u16::from_be_bytes([b[12 + n], b[13 + n]]));
    (counter, alg, digest, b[14 + n..14 + n + m].to_vec())
}

fn get_command_audit(key: u32) -> Vec<u8> {
    cmd(
        GET_COMMAND_AUDIT,
        &[RH_ENDORSEMENT, key],
        &pw(2),
        &[&b2(b"q")[..], &[0, 0x10]].concat(),
    )
}

fn get_session_audit(key: u32, session: u32) -> Vec<u8> {
    cmd(
        GET_SESSION_AUDIT,
        &[RH_ENDORSEMENT, key, session],
        &pw(2),
        &[&b2(b"q")[..], &[0, 0x10]].concat(),
    )
}

#[test]
fn command_audit_digest_is_recomputable() {
    let mut t = T::new();
    let key = t.signing_key();
    // As manufactured: only SetCommandCodeAuditStatus is audited, with SHA-512, digest clear.
    let (counter, alg, digest, _) =
        command_audit_info(&t.attest(&get_command_audit(key), key, 0x8015));
    assert_eq!((counter, alg, digest.len()), (0, 0x000D, 0));
    // A new hash clears the digest, and that command is not audited.
    let c = set_status(SHA256, &[], &[]);
    t.ok(&c);
    let owner = RH_OWNER.to_be_bytes().to_vec();
    // Audited from here on: the list change itself, GetRandom, PCR_Extend (PCR name: handle).
    let c = set_status(0x10, &[GET_RANDOM, PCR_EXTEND], &[]);
    let r = t.ok(&c);
    let mut want = extend(&[0; 32], &c, std::slice::from_ref(&owner), &r);
    let c = cmd(GET_RANDOM, &[], &[], &[0, 12]);
    let r = t.ok(&c);
    want = extend(&want, &c, &[], &r);
    // Not audited: no change.
    t.ok(&cmd(0x146, &[], &[], &b2(b"stir")));
    let c = cmd(
        PCR_EXTEND,
        &[16],
        &pw(1),
        &[&[0, 0, 0, 1, 0, 0x0B][..], &[9; 32]].concat(),
    );
    let r = t.ok(&c);
    want = extend(&want, &c, &[16u32.to_be_bytes().to_vec()], &r);
    // Unsigned (TPM_RH_NULL): qualifiedSigner TPM_RH_NULL, TPM_ALG_NULL signature, and the
    // digest is not reset.
    let r = t.ok(&get_command_audit(RH_NULL));
    let p = resp_params(&r, false);
    let n = usize::from(u16::from_be_bytes([p[0], p[1]]));
    assert_eq!(&p[2 + n..], &[0, 0x10], "TPM_ALG_NULL signature");
    assert_eq!(
        &p[8..14],
        &[0, 4, 0x40, 0, 0, 7],
        "qualifiedSigner TPM_RH_NULL"
    );
    // magic, type, qualifiedSigner (2+4), extraData (2+1), clockInfo and firmware (25).
    let unsigned = command_audit_info(&p[2 + 6 + 6 + 3 + 25..2 + n]);
    let (counter, alg, digest, commands) =
        command_audit_info(&t.attest(&get_command_audit(key), key, 0x8015));
    assert_eq!(unsigned, (counter, alg, digest.clone(), commands.clone()));
    assert_eq!((counter, alg), (1, SHA256));
    assert_eq!(digest, want);
    let codes: Vec<u8> = [SET_STATUS, GET_RANDOM, PCR_EXTEND]
        .iter()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    assert_eq!(commands, sha256(&[&codes]));
    // Signing cleared the digest: the next audited command starts a new one, counter 2.
    let c = cmd(GET_RANDOM, &[], &[], &[0, 4]);
    let r = t.ok(&c);
    let want = extend(&[0; 32], &c, &[], &r);
    let (counter, _, digest, _) =
        command_audit_info(&t.attest(&get_command_audit(key), key, 0x8015));
    assert_eq!((counter, digest), (2, want));
    // TPM_CAP_AUDIT_COMMANDS lists them.
    let r = t.ok(&cmd(0x17A, &[], &[], &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8]));
    // moreData, TPM_CAP_AUDIT_COMMANDS, count 3, the codes.
    assert_eq!(&r[11..19], &[0, 0, 0, 4, 0, 0, 0, 3]);
    assert_eq!(&r[19..], &codes[..]);
}

#[test]
fn bad_audit_requests_get_numbered_codes() {
    let mut t = T::new();
    let key = t.signing_key();
    let hmac = t.start(0);
    let policy = t.start(1);
    let hmac2 = t.start(0);
    let random = |sessions: &[(u32, u8)]| cmd(GET_RANDOM, &[], sessions, &[0, 8]);
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "SetCommandCodeAuditStatus by the endorsement hierarchy: TPM_RC_VALUE, handle 1",
            cmd(
                SET_STATUS,
                &[RH_ENDORSEMENT],
                &pw(1),
                &status_params(0x10, &[], &[]),
            ),
            0x184,
        ),
        (
            "unknown hash: TPM_RC_HASH, parameter 1",
            set_status(0x99, &[], &[]),
            0x1C3,
        ),
        (
            "new hash and a list change together: TPM_RC_VALUE, parameter 1",
            set_status(SHA256, &[GET_RANDOM], &[]),
            0x1C4,
        ),
        (
            "setList longer than MAX_CAP_CC: TPM_RC_SIZE, parameter 2",
            set_status(0x10, &[GET_RANDOM; 255], &[]),
            0x2D5,
        ),
        (
            "GetCommandAuditDigest privacy handle not endorsement: TPM_RC_VALUE, handle 1",
            cmd(
                GET_COMMAND_AUDIT,
                &[RH_OWNER, key],
                &pw(2),
                &[0, 0, 0, 0x10],
            ),
            0x184,
        ),
        (
            "audit on a password session: TPM_RC_ATTRIBUTES, session 1",
            cmd(
                GET_COMMAND_AUDIT,
                &[RH_ENDORSEMENT, key],
                &[(RS_PW, 0x81), (RS_PW, 1)],
                &[0, 0, 0, 0x10],
            ),
            0x982,
        ),
        (
            "a policy session cannot audit: TPM_RC_ATTRIBUTES, session 1",
            random(&[(policy, 0x81)]),
            0x982,
        ),
        (
            "GetSessionAuditDigest of a session never used for audit: TPM_RC_TYPE, handle 3",
            get_session_audit(key, hmac),
            0x38A,
        ),
        (
            "GetSessionAuditDigest of a policy session: TPM_RC_VALUE, handle 3",
            get_session_audit(key, policy),
            0x384,
        ),
        ("first audit use", random(&[(hmac, 0x81)]), 0),
        (
            "two audit sessions: TPM_RC_ATTRIBUTES, session 2",
            random(&[(hmac, 0x81), (hmac2, 0x81)]),
            0xA82,
        ),
        (
            "exclusive while only the session ran",
            random(&[(hmac, 0x83)]),
            0,
        ),
        ("a command outside the session", random(&[]), 0),
        (
            "auditExclusive after that: TPM_RC_EXCLUSIVE",
            random(&[(hmac, 0x83)]),
            0x121,
        ),
        (
            "auditReset makes it exclusive again",
            random(&[(hmac, 0x87)]),
            0,
        ),
        ("and auditExclusive holds", random(&[(hmac, 0x83)]), 0),
    ];
    for (what, c, want) in cases {
        assert_eq!(rc(&t.run(&c)), want, "{what}");
    }
}

#[test]
fn session_audit_digest_and_exclusivity() {
    let mut t = T::new();
    let key = t.signing_key();
    let s = t.start(0);
    let names: [Vec<u8>; 0] = [];
    let mut want = vec![0u8; 32];
    for n in [8u8, 16, 4] {
        let c = cmd(GET_RANDOM, &[], &[(s, 0x81)], &[0, n]);
        let r = t.ok(&c);
        want = extend(&want, &c, &names, &r);
        // The response reports the session as exclusive (no other command ran) and, keyless,
        // carries an empty HMAC.
        let p = resp_params(&r, false);
        let area = &r[14 + p.len()..];
        let nonce = usize::from(u16::from_be_bytes([area[0], area[1]]));
        assert_eq!(area[2 + nonce], 0x83, "attributes with auditExclusive");
        assert_eq!(&area[3 + nonce..], &[0, 0], "empty response HMAC");
    }
    let info = t.attest(&get_session_audit(key, s), key, 0x8016);
    assert_eq!(info[0], 1, "exclusiveSession");
    assert_eq!(&info[1..3], &[0, 32]);
    assert_eq!(&info[3..], &want[..]);
    // GetSessionAuditDigest ran outside the session: no longer exclusive, digest unchanged.
    let info = t.attest(&get_session_audit(key, s), key, 0x8016);
    assert_eq!((info[0], &info[3..]), (0, &want[..]));
    // auditReset starts over from zero and makes the session exclusive again.
    let c = cmd(GET_RANDOM, &[], &[(s, 0x85)], &[0, 2]);
    let r = t.ok(&c);
    let want = extend(&[0; 32], &c, &names, &r);
    let info = t.attest(&get_session_audit(key, s), key, 0x8016);
    assert_eq!((info[0], &info[3..]), (1, &want[..]));
}

#[test]
fn audit_state_across_restart_reset_and_a_state_blob() {
    let mut t = T::new();
    let key = t.signing_key();
    let s = t.start(0);
    t.ok(&set_status(0x10, &[GET_RANDOM], &[]));
    t.ok(&cmd(GET_RANDOM, &[], &[(s, 0x81)], &[0, 8]));
    let digest_of = |t: &mut T| command_audit_info(&t.attest(&get_command_audit(key), key, 0x8015));
    // A state blob carries both digests (format 6 on) to a fresh instance.
    let blob = t.0.save_state();
    assert_eq!(
        u16::from_be_bytes([blob[6], blob[7]]),
        warden_vtpm::STATE_VERSION,
        "state format version"
    );
    const { assert!(warden_vtpm::STATE_VERSION >= 6) };
    let mut u = T(Tpm::new(MemPlatform::with_seed(99)).expect("fresh TPM"));
    u.0.restore_state(&blob).expect("restore");
    let a = t.attest(&get_session_audit(key, s), key, 0x8016);
    let b = u.attest(&get_session_audit(key, s), key, 0x8016);
    assert_eq!(a[1..], b[1..], "session audit digest survives the blob");
    let (c1, _, d1, _) = digest_of(&mut t);
    let (c2, _, d2, _) = digest_of(&mut u);
    assert_eq!((c1, &d1), (c2, &d2));
    assert!(!d1.is_empty());
    // TPM Restart (Shutdown(STATE), Startup(CLEAR)) keeps the command audit digest...
    t.ok(&cmd(GET_RANDOM, &[], &[], &[0, 8]));
    t.ok(&cmd(0x145, &[], &[], &[0, 1]));
    t.0.power_on();
    t.ok(&cmd(0x144, &[], &[], &[0, 0]));
    let key = t.signing_key();
    let (counter, _, digest, _) =
        command_audit_info(&t.attest(&get_command_audit(key), key, 0x8015));
    assert_eq!((counter, digest.len()), (2, 64));
    // ... a TPM Reset clears it; the counter stays.
    t.ok(&cmd(GET_RANDOM, &[], &[], &[0, 8]));
    t.0.power_on();
    t.ok(&cmd(0x144, &[], &[], &[0, 0]));
    let key = t.signing_key();
    let (counter, _, digest, _) =
        command_audit_info(&t.attest(&get_command_audit(key), key, 0x8015));
    assert_eq!((counter, digest.len()), (3, 0));
}
