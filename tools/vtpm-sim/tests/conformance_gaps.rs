//! Differential test for the conformance gaps stock tpm2-tss clients hit (issue #15, item 8):
//! the same raw command sequences go to `vtpm-sim` and to swtpm (libtpms); every step states
//! the answer it must get on both, and how closely the two answers must agree. Steps built from
//! an earlier response fail when that response was an error, and each test asserts a floor on
//! the steps that succeeded on both TPMs, so a sequence cannot decay into errors against errors.
mod common;
use common::{Sim, Swtpm, scratch, sim_exec, swtpm_exec};
use vtpm_sim::wire::{command as cmd, tpm2b};

fn rc_of(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[6], r[7], r[8], r[9]])
}

/// Sends `c` (TPM_RC_RETRY / _YIELDED / _TESTING are retried, as a TSS does).
fn exec(c: &[u8], once: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut r = once(c);
    for _ in 0..20 {
        if !matches!(rc_of(&r), 0x922 | 0x908 | 0x90A) {
            break;
        }
        r = once(c);
    }
    r
}

/// How closely the two answers must agree.
#[derive(Clone, Copy, Debug)]
enum Cmp {
    /// Same response code.
    Rc,
    /// Same code and length.
    Len,
    /// Identical bytes.
    Exact,
}

/// Builds a step's command from the same TPM's earlier responses.
type Build = Box<dyn Fn(&[Vec<u8>]) -> Vec<u8>>;

/// A step: what it is, its command (built from this TPM's earlier responses, which must be
/// successes), the code it must answer on both TPMs (0: success) and the comparison.
struct Step {
    what: &'static str,
    build: Build,
    rc: u32,
    cmp: Cmp,
}

fn step(what: &'static str, c: Vec<u8>, rc: u32, cmp: Cmp) -> Step {
    Step {
        what,
        build: Box::new(move |_| c.clone()),
        rc,
        cmp,
    }
}

fn built(
    what: &'static str,
    f: impl Fn(&[Vec<u8>]) -> Vec<u8> + 'static,
    rc: u32,
    cmp: Cmp,
) -> Step {
    Step {
        what,
        build: Box::new(f),
        rc,
        cmp,
    }
}

/// The successful response of step `i` (panics, failing the step being built, otherwise).
fn resp(h: &[Vec<u8>], i: usize) -> &[u8] {
    let r = &h[i];
    assert_eq!(
        rc_of(r),
        0,
        "built from step {i}, which answered {:#x}",
        rc_of(r)
    );
    r
}

/// The handle a (successful) response returns.
fn handle_of(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[10], r[11], r[12], r[13]])
}

/// Load (under `parent`) of what the Create at step `at` returned; the loaded object's Name
/// covers a random seed or key, so the answers agree in length only.
fn load_created(parent: u32, at: usize) -> Step {
    built(
        "Load it",
        move |h| {
            let r = resp(h, at);
            cmd(0x157, &[parent], true, &[field(r, 0), field(r, 1)].concat())
        },
        0,
        Cmp::Len,
    )
}

/// Runs `steps` on both TPMs; panics listing every step that went wrong, or when fewer than
/// `floor` steps succeeded on both.
fn run(test: &str, sim: &Sim, sw: &Swtpm, steps: &[Step], floor: usize) {
    let (mut ha, mut hb) = (Vec::<Vec<u8>>::new(), Vec::<Vec<u8>>::new());
    let (mut wrong, mut succeeded) = (Vec::new(), 0);
    const NOT_BUILT: [u8; 10] = [0x80, 1, 0, 0, 0, 10, 0xFF, 0xFF, 0xFF, 0xFF];
    for s in steps {
        let cmds = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ((s.build)(&ha), (s.build)(&hb))
        }));
        let Ok((ca, cb)) = cmds else {
            wrong.push(format!("{}: cannot be built (see the panic above)", s.what));
            ha.push(NOT_BUILT.to_vec());
            hb.push(NOT_BUILT.to_vec());
            continue;
        };
        let a = exec(&ca, |c| sim_exec(sim.port, c));
        let b = exec(&cb, |c| swtpm_exec(sw.port, c));
        if std::env::var_os("DIFF_RECORD").is_some() {
            eprintln!("RECORD sim={:#x} sw={:#x} {}", rc_of(&a), rc_of(&b), s.what);
        }
        let agree = match s.cmp {
            Cmp::Rc => rc_of(&a) == rc_of(&b),
            Cmp::Len => rc_of(&a) == rc_of(&b) && a.len() == b.len(),
            Cmp::Exact => a == b,
        };
        if rc_of(&a) == 0 && rc_of(&b) == 0 {
            succeeded += 1;
        }
        if !agree || rc_of(&a) != s.rc || rc_of(&b) != s.rc {
            wrong.push(format!(
                "{} (expected {:#x}, {:?}): vtpm {:#x} len {} / swtpm {:#x} len {}\n  vtpm  {:02x?}\n  swtpm {:02x?}",
                s.what,
                s.rc,
                s.cmp,
                rc_of(&a),
                a.len(),
                rc_of(&b),
                b.len(),
                &a[..a.len().min(40)],
                &b[..b.len().min(40)]
            ));
        }
        ha.push(a);
        hb.push(b);
    }
    eprintln!(
        "{test}: {succeeded} of {} steps succeeded on both",
        steps.len()
    );
    assert!(wrong.is_empty(), "{test}:\n{}", wrong.join("\n"));
    assert!(
        succeeded >= floor,
        "{test}: {succeeded} successes, floor {floor}"
    );
}

/// A fresh pair of TPMs, both after Startup(CLEAR).
fn pair(name: &str) -> (Sim, Swtpm) {
    let dir = scratch(name);
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let startup = cmd(0x144, &[], false, &[0, 0]);
    assert_eq!(rc_of(&exec(&startup, |c| sim_exec(sim.port, c))), 0);
    assert_eq!(rc_of(&exec(&startup, |c| swtpm_exec(sw.port, c))), 0);
    (sim, sw)
}

/// A command whose session area lists `sessions` (handle, attributes), each with an empty
/// nonce for TPM_RS_PW (16 bytes otherwise) and an empty HMAC.
fn cmd_area(cc: u32, handles: &[u32], sessions: &[(u32, u8)], params: &[u8]) -> Vec<u8> {
    let mut c = cmd(cc, handles, false, &[]);
    c[1] = 0x02;
    let mut area = Vec::new();
    for &(h, attrs) in sessions {
        area.extend_from_slice(&h.to_be_bytes());
        let nonce: &[u8] = if h == 0x4000_0009 { &[] } else { &[3; 16] };
        area.extend_from_slice(&tpm2b(nonce));
        area.extend_from_slice(&[attrs, 0, 0]);
    }
    c.extend_from_slice(&(area.len() as u32).to_be_bytes());
    c.extend_from_slice(&area);
    c.extend_from_slice(params);
    let len = c.len() as u32;
    c[2..6].copy_from_slice(&len.to_be_bytes());
    c
}

/// CreatePrimary / Create parameters: empty-auth `sensitive_data`, the public area `public`,
/// no outsideInfo, no creation PCRs.
fn create_params(sensitive_data: &[u8], public: &[u8]) -> Vec<u8> {
    let sensitive = [&[0, 0][..], &tpm2b(sensitive_data)].concat();
    [&tpm2b(&sensitive)[..], &tpm2b(public), &[0, 0, 0, 0, 0, 0]].concat()
}

/// A public area: `alg`, SHA-256 name, `attrs`, no policy, `parms` then an empty unique.
fn public(alg: u16, attrs: u32, parms: &[u8], unique: &[u8]) -> Vec<u8> {
    [
        &alg.to_be_bytes()[..],
        &[0x00, 0x0B],
        &attrs.to_be_bytes(),
        &[0, 0],
        parms,
        unique,
    ]
    .concat()
}

/// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | decrypt.
const STORAGE: u32 = 0x0003_0072;
/// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | decrypt.
const DECRYPT: u32 = 0x0002_0072;

/// An ECC P-256 storage parent (AES-128-CFB).
fn ecc_srk() -> Vec<u8> {
    let parms = [
        0x00, 0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10, 0x00, 0x03, 0x00, 0x10,
    ];
    public(0x0023, STORAGE, &parms, &[0, 0, 0, 0])
}

/// Handles, hierarchies and session attributes: the codes libtpms answers for bad values.
#[test]
fn handle_and_attribute_codes_match_swtpm() {
    let (sim, sw) = pair("gaps-codes");
    let steps = vec![
        step(
            "HierarchyChangeAuth authHandle 0",
            cmd(0x129, &[0], true, &[0, 0]),
            0x184,
            Cmp::Exact,
        ),
        step(
            "ReadPublic handle 0",
            cmd(0x173, &[0], false, &[]),
            0x184,
            Cmp::Exact,
        ),
        step(
            "Clear, password session attributes 0xff",
            cmd_area(0x126, &[0x4000_000C], &[(0x4000_0009, 0xFF)], &[]),
            0x9A1,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary ECC SRK",
            cmd(0x131, &[0x4000_0001], true, &create_params(&[], &ecc_srk())),
            0,
            Cmp::Len,
        ),
        step(
            "Create under missing 0x80000009",
            cmd(0x153, &[0x8000_0009], true, &create_params(&[], &ecc_srk())),
            0x184,
            Cmp::Exact,
        ),
        step(
            "HierarchyChangeAuth owner (empty, still works)",
            cmd(0x129, &[0x4000_0001], true, &[0, 0]),
            0,
            Cmp::Exact,
        ),
    ];
    run(
        "handle_and_attribute_codes_match_swtpm",
        &sim,
        &sw,
        &steps,
        2,
    );
}

/// The `i`th TPM2B (size included) of a successful response's parameters, which start at 14
/// when the response has a session area (the parameterSize before them) and no handle.
fn field(r: &[u8], i: usize) -> Vec<u8> {
    let mut at = 14;
    for _ in 0..i {
        at += 2 + usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
    }
    let n = usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
    r[at..at + 2 + n].to_vec()
}

/// Create with caller-supplied AES-128-CFB key bytes (the key must then encrypt exactly as
/// libtpms' copy does), RSA_Encrypt with inScheme NULL on an RSAES key, TPM_CAP_ACT.
#[test]
fn key_bytes_schemes_and_act_match_swtpm() {
    let (sim, sw) = pair("gaps-keys");
    // fixedTPM | fixedParent | userWithAuth | decrypt | sign: the caller gives the key.
    let aes = public(
        0x0025,
        0x0006_0052,
        &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
        &[0, 0],
    );
    let aes_origin = public(
        0x0025,
        0x0006_0072,
        &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
        &[0, 0],
    );
    let rsaes = public(
        0x0001,
        DECRYPT,
        &[0x00, 0x10, 0x00, 0x15, 0x08, 0x00, 0, 0, 0, 0],
        &[0, 0],
    );
    let srk = 0x8000_0000u32;
    let steps = vec![
        step(
            "GetCapability TPM_CAP_ACT",
            cmd(
                0x17A,
                &[],
                false,
                &[0, 0, 0, 0x0A, 0x40, 0, 1, 0x10, 0, 0, 0, 1],
            ),
            0,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary ECC SRK",
            cmd(0x131, &[0x4000_0001], true, &create_params(&[], &ecc_srk())),
            0,
            Cmp::Len,
        ),
        step(
            "Create AES-128-CFB with 16 caller key bytes",
            cmd(0x153, &[srk], true, &create_params(&[0x42; 16], &aes)),
            0,
            // The private blob's layout is the implementation's own (libtpms' is 32 bytes
            // longer); what the key does is compared below, byte for byte.
            Cmp::Rc,
        ),
        // The Name covers the random seedValue: lengths only.
        load_created(srk, 2),
        built(
            "EncryptDecrypt2 with the caller's key",
            |h| {
                let key = handle_of(resp(h, 3));
                let p = [
                    &tpm2b(b"sixteen byte msg")[..],
                    &[0, 0, 0x10],
                    &tpm2b(&[0; 16]),
                ]
                .concat();
                cmd(0x193, &[key], true, &p)
            },
            0,
            Cmp::Exact,
        ),
        built(
            "FlushContext AES key",
            |h| cmd(0x165, &[], false, &handle_of(resp(h, 3)).to_be_bytes()),
            0,
            Cmp::Exact,
        ),
        step(
            "Create AES-128 with 15 key bytes",
            cmd(0x153, &[srk], true, &create_params(&[0x42; 15], &aes)),
            0x87,
            Cmp::Exact,
        ),
        step(
            "Create AES-128, no key bytes, sensitiveDataOrigin clear",
            cmd(0x153, &[srk], true, &create_params(&[], &aes)),
            0x2C2,
            Cmp::Exact,
        ),
        step(
            "Create AES-128, key bytes and sensitiveDataOrigin",
            cmd(0x153, &[srk], true, &create_params(&[7; 16], &aes_origin)),
            0x2C2,
            Cmp::Exact,
        ),
        step(
            "FlushContext SRK",
            cmd(0x165, &[], false, &srk.to_be_bytes()),
            0,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary RSAES-2048",
            cmd(0x131, &[0x4000_0001], true, &create_params(&[], &rsaes)),
            0,
            Cmp::Len,
        ),
        built(
            "RSA_Encrypt inScheme NULL (the key's RSAES)",
            |h| {
                let key = handle_of(resp(h, 10));
                cmd(
                    0x174,
                    &[key],
                    false,
                    &[&tpm2b(b"secret")[..], &[0, 0x10, 0, 0]].concat(),
                )
            },
            0,
            Cmp::Len,
        ),
        built(
            "RSA_Encrypt inScheme OAEP on an RSAES key",
            |h| {
                let key = handle_of(resp(h, 10));
                let p = [&tpm2b(b"secret")[..], &[0, 0x17, 0, 0x0B, 0, 0]].concat();
                cmd(0x174, &[key], false, &p)
            },
            0x2D2,
            Cmp::Exact,
        ),
    ];
    run(
        "key_bytes_schemes_and_act_match_swtpm",
        &sim,
        &sw,
        &steps,
        7,
    );
}

/// RSA parameters: symmetric and scheme NULL, `bits`, `exponent`.
fn rsa_parms(bits: u16, exponent: u32) -> Vec<u8> {
    [
        &[0x00, 0x10, 0x00, 0x10][..],
        &bits.to_be_bytes(),
        &exponent.to_be_bytes(),
    ]
    .concat()
}

/// LoadExternal (TPM_RH_NULL) of an RSA private key given by n and p with `exponent` in the
/// public area: userWithAuth | decrypt | sign, neither fixedTPM nor fixedParent.
fn load_external_rsa(n: &[u8], p: &[u8], exponent: u32) -> Vec<u8> {
    let sensitive = [&[0x00, 0x01][..], &[0, 0], &[0, 0], &tpm2b(p)].concat();
    let public = public(
        0x0001,
        0x0006_0040,
        &rsa_parms(8 * n.len() as u16, exponent),
        &tpm2b(n),
    );
    let params = [
        &tpm2b(&sensitive)[..],
        &tpm2b(&public),
        &0x4000_0007u32.to_be_bytes(),
    ]
    .concat();
    cmd(0x167, &[], false, &params)
}

/// Even public exponents, which no RSA key can have (e must be invertible modulo p - 1, which
/// is even): key generation refuses them as any exponent outside FIPS 186-5's range or not
/// prime (TPM_RC_RANGE, unnumbered, 0x08D); LoadExternal refuses e below 7 as a bad public
/// area (TPM_RC_VALUE on parameter 2, 0x2C4) and a larger even e as a private key that does
/// not fit its public part (TPM_RC_BINDING, unnumbered, 0x0A5), the answer to a prime that
/// does not divide n too. The e = 65537 and e = 7 loads show the key itself is good.
#[test]
fn rsa_even_exponents_match_swtpm() {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let (sim, sw) = pair("gaps-even-e");
    // The loads below with e = 7 and e = 65537 must both succeed, so the key must have both
    // exponents invertible: generated for e = 7, and drawn again in the rare case that 65537
    // divides p - 1 or q - 1 (a random key for 65537 fails e = 7 about 3 times in 10).
    let key = loop {
        let k = rsa::RsaPrivateKey::new_with_exp(&mut rand::thread_rng(), 1024, &rsa::BigUint::from(7u32))
            .expect("RSA-1024, e = 7");
        let (one, f4) = (rsa::BigUint::from(1u32), rsa::BigUint::from(65537u32));
        if k.primes().iter().all(|p| (p - &one) % &f4 != rsa::BigUint::from(0u32)) {
            break k;
        }
    };
    let n = key.n().to_bytes_be();
    let p = key.primes()[0].to_bytes_be();
    let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).expect("RSA-1024");
    let other_p = other.primes()[0].to_bytes_be();
    let primary = |e: u32| {
        let rsaes = public(0x0001, DECRYPT, &rsa_parms(2048, e), &[0, 0]);
        cmd(0x131, &[0x4000_0001], true, &create_params(&[], &rsaes))
    };
    let steps = vec![
        step(
            "LoadExternal RSA-1024 private key, e = 65537",
            load_external_rsa(&n, &p, 65537),
            0,
            Cmp::Len,
        ),
        step(
            "LoadExternal n with the prime of another key, e = 65537",
            load_external_rsa(&n, &other_p, 65537),
            0xA5,
            Cmp::Exact,
        ),
        step(
            "LoadExternal the same key with e = 7",
            load_external_rsa(&n, &p, 7),
            0,
            Cmp::Exact,
        ),
        step(
            "LoadExternal the same key with e = 3",
            load_external_rsa(&n, &p, 3),
            0x2C4,
            Cmp::Exact,
        ),
        step(
            "LoadExternal the same key with e = 65538",
            load_external_rsa(&n, &p, 65538),
            0xA5,
            Cmp::Exact,
        ),
        step(
            "LoadExternal the same key with e = 4",
            load_external_rsa(&n, &p, 4),
            0x2C4,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary RSA-2048, e = 65538",
            primary(65538),
            0x8D,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary RSA-2048, e = 4",
            primary(4),
            0x8D,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary RSA-2048, e = 2^32 - 2",
            primary(0xFFFF_FFFE),
            0x8D,
            Cmp::Exact,
        ),
    ];
    run("rsa_even_exponents_match_swtpm", &sim, &sw, &steps, 1);
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

const CALLER_NONCE: [u8; 16] = [0x5C; 16];
const CONTINUE: u8 = 0x01;

/// A response's parameters and its one session (nonceTPM, attributes, HMAC); `handle`: whether
/// the response carries a handle before them.
fn split_response(r: &[u8], handle: bool) -> (Vec<u8>, Vec<u8>, u8, Vec<u8>) {
    let at = if handle { 14 } else { 10 };
    let n = u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]) as usize;
    let params = r[at + 4..at + 4 + n].to_vec();
    let mut s = at + 4 + n;
    let tpm2b = |s: &mut usize| {
        let l = usize::from(u16::from_be_bytes([r[*s], r[*s + 1]]));
        let v = r[*s + 2..*s + 2 + l].to_vec();
        *s += 2 + l;
        v
    };
    let nonce = tpm2b(&mut s);
    let attrs = r[s];
    s += 1;
    let mac = tpm2b(&mut s);
    (params, nonce, attrs, mac)
}

/// A command authorised by an unbound, unsalted HMAC session `session` whose last nonceTPM is
/// `nonce_tpm`, for an entity (Name `name`) with authValue `auth`: the command HMAC of Part 1
/// §19.6 (key = authValue, as the session key is empty).
fn hmac_cmd(
    cc: u32,
    handles: &[u32],
    names: &[&[u8]],
    session: u32,
    nonce_tpm: &[u8],
    auth: &[u8],
    params: &[u8],
) -> Vec<u8> {
    let cp = common::sha256(&[&[&cc.to_be_bytes()[..]], names, &[params]].concat());
    let mac = hmac256(auth, &[&cp, &CALLER_NONCE, nonce_tpm, &[CONTINUE]]);
    let mut c = cmd(cc, handles, false, &[]);
    c[1] = 0x02;
    let area = [
        &session.to_be_bytes()[..],
        &tpm2b(&CALLER_NONCE),
        &[CONTINUE],
        &tpm2b(&mac),
    ]
    .concat();
    c.extend_from_slice(&(area.len() as u32).to_be_bytes());
    c.extend_from_slice(&area);
    c.extend_from_slice(params);
    let len = c.len() as u32;
    c[2..6].copy_from_slice(&len.to_be_bytes());
    c
}

/// Checks the response HMAC of a command `cc` authorised as [`hmac_cmd`] does, with the
/// entity's authValue `auth` in the key (Part 1 §19.6.16); panics otherwise. Returns the
/// session's new nonceTPM.
fn check_response_hmac(r: &[u8], cc: u32, auth: &[u8]) -> Vec<u8> {
    assert_eq!(rc_of(r), 0, "the command failed: {:#x}", rc_of(r));
    let (params, nonce, attrs, mac) = split_response(r, false);
    let rp = common::sha256(&[&0u32.to_be_bytes(), &cc.to_be_bytes(), &params]);
    let want = hmac256(auth, &[&rp, &nonce, &CALLER_NONCE, &[attrs]]);
    assert_eq!(
        mac, want,
        "response HMAC of command {cc:#x} is not keyed by the authValue"
    );
    nonce
}

/// HashSequenceStart and HMAC_Start, then SequenceUpdate and SequenceComplete under an HMAC
/// session: the response HMACs (SequenceComplete's included, after which the sequence object is
/// gone) must be keyed by the sequence's authValue, as libtpms keys them.
#[test]
fn sequence_complete_response_hmac_matches_swtpm() {
    let (sim, sw) = pair("gaps-seq");
    let auth: &[u8] = b"seq-auth";
    let session = |h: &[Vec<u8>]| handle_of(resp(h, 0));
    let start_session = cmd(
        0x176,
        &[0x4000_0007, 0x4000_0007],
        false,
        &[&tpm2b(&[9; 16])[..], &[0, 0], &[0], &[0, 0x10], &[0, 0x0B]].concat(),
    );
    let key_params = [
        &tpm2b(&[&[0, 0][..], &tpm2b(b"hmac key")].concat())[..],
        &tpm2b(&public(0x0008, 0x0004_0052, &[0, 5, 0, 0x0B], &[0, 0])),
        &[0, 0, 0, 0, 0, 0],
    ]
    .concat();
    // Each sequence: start (step s), update (s+1), complete (s+2); the session's nonceTPM
    // comes from the response before (`nonce`), whose HMAC is checked on the way.
    let update = move |s: usize, nonce: fn(&[Vec<u8>]) -> Vec<u8>| {
        move |h: &[Vec<u8>]| {
            let seq = handle_of(resp(h, s));
            let name: [u8; 0] = []; // a sequence object's Name is empty (nameAlg NULL)
            let p = tpm2b(b"first part, ");
            hmac_cmd(0x15C, &[seq], &[&name], session(h), &nonce(h), auth, &p)
        }
    };
    let complete = move |s: usize| {
        move |h: &[Vec<u8>]| {
            let seq = handle_of(resp(h, s));
            let nonce = check_response_hmac(resp(h, s + 1), 0x15C, auth);
            let name: [u8; 0] = []; // a sequence object's Name is empty (nameAlg NULL)
            let p = [&tpm2b(b"second part")[..], &0x4000_0007u32.to_be_bytes()].concat();
            hmac_cmd(0x13E, &[seq], &[&name], session(h), &nonce, auth, &p)
        }
    };
    let checked = move |s: usize| {
        move |h: &[Vec<u8>]| {
            check_response_hmac(resp(h, s + 2), 0x13E, auth);
            cmd(0x17B, &[], false, &[0, 4])
        }
    };
    let steps = vec![
        step("StartAuthSession HMAC", start_session, 0, Cmp::Len),
        step(
            "HashSequenceStart SHA-256 with an authValue",
            cmd(0x186, &[], false, &[&tpm2b(auth)[..], &[0, 0x0B]].concat()),
            0,
            Cmp::Exact,
        ),
        built(
            "SequenceUpdate",
            update(1, |h| field(resp(h, 0), 0)[2..].to_vec()),
            0,
            Cmp::Rc,
        ),
        built("SequenceComplete", complete(1), 0, Cmp::Rc),
        built(
            "(SequenceComplete's response HMAC)",
            checked(1),
            0,
            Cmp::Len,
        ),
        step(
            "CreatePrimary HMAC key",
            cmd(0x131, &[0x4000_0007], true, &key_params),
            0,
            Cmp::Rc,
        ),
        built(
            "HMAC_Start",
            |h| {
                let key = handle_of(resp(h, 5));
                let p = [&tpm2b(auth)[..], &[0, 0x0B]].concat();
                cmd(0x15B, &[key], true, &p)
            },
            0,
            Cmp::Exact,
        ),
        built(
            "SequenceUpdate (HMAC)",
            update(6, |h| check_response_hmac(resp(h, 3), 0x13E, b"seq-auth")),
            0,
            Cmp::Rc,
        ),
        // Same HMAC result; the session area's nonceTPM is random.
        built("SequenceComplete (HMAC)", complete(6), 0, Cmp::Len),
        built("(its response HMAC)", checked(6), 0, Cmp::Len),
    ];
    run(
        "sequence_complete_response_hmac_matches_swtpm",
        &sim,
        &sw,
        &steps,
        9,
    );
}

/// Stock ESYS (tpm2-tss through `tss-esapi`) flows that libtpms accepts: `Create` under a
/// session bound to the parent with AES-CFB parameter encryption (a sealed secret, caller key
/// bytes of an AES-128-CFB key, a storage key with a password), then `Create` of children under
/// that password-protected user key, through an unbound HMAC session and through one bound to
/// the key itself. Each flow's outcome (success, or the response code) must be the same on both
/// TPMs, and every flow must succeed.
mod esys {
    use super::{Sim, Swtpm, pair};
    use std::str::FromStr;
    use tss_esapi::Context;
    use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
    use tss_esapi::constants::SessionType;
    use tss_esapi::handles::KeyHandle;
    use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
    use tss_esapi::interface_types::key_bits::RsaKeyBits;
    use tss_esapi::interface_types::resource_handles::Hierarchy;
    use tss_esapi::interface_types::session_handles::AuthSession;
    use tss_esapi::structures::{
        Auth, Digest, KeyedHashScheme, Public, PublicBuilder, PublicKeyedHashParameters,
        RsaExponent, SensitiveData, SymmetricCipherParameters, SymmetricDefinition,
        SymmetricDefinitionObject,
    };
    use tss_esapi::tcti_ldr::TctiNameConf;

    fn storage() -> Public {
        tss_esapi::utils::create_restricted_decryption_rsa_public(
            SymmetricDefinitionObject::AES_128_CFB,
            RsaKeyBits::Rsa2048,
            RsaExponent::default(),
        )
        .unwrap()
    }

    fn sealed() -> Public {
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_user_with_auth(true)
            .build()
            .unwrap();
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
            .with_keyed_hash_unique_identifier(Digest::default())
            .build()
            .unwrap()
    }

    /// An AES-128-CFB key whose bytes the caller supplies (sensitiveDataOrigin clear).
    fn aes_given() -> Public {
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_user_with_auth(true)
            .with_decrypt(true)
            .with_sign_encrypt(true)
            .build()
            .unwrap();
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::SymCipher)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_symmetric_cipher_parameters(SymmetricCipherParameters::new(
                SymmetricDefinitionObject::AES_128_CFB,
            ))
            .with_symmetric_cipher_unique_identifier(Digest::default())
            .build()
            .unwrap()
    }

    fn auth(s: &[u8]) -> Auth {
        Auth::try_from(s.to_vec()).unwrap()
    }

    /// An HMAC session with AES-128-CFB parameter encryption both ways, bound to `bind`.
    fn session(ctx: &mut Context, bind: Option<KeyHandle>) -> tss_esapi::Result<AuthSession> {
        let s = ctx
            .start_auth_session(
                None,
                bind.map(Into::into),
                None,
                SessionType::Hmac,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )?
            .expect("a session");
        let (attrs, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .with_continue_session(true)
            .build();
        ctx.tr_sess_set_attributes(s, attrs, mask)?;
        Ok(s)
    }

    /// Runs the flows on one TPM: each one's name and outcome (Ok, or the error's text).
    fn flows(tcti: &str) -> Vec<(&'static str, Result<(), String>)> {
        let mut ctx = Context::new(TctiNameConf::from_str(tcti).unwrap()).expect("ESYS context");
        let mut out = Vec::new();
        let srk = ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(
                    Hierarchy::Owner,
                    storage(),
                    Some(auth(b"parent-pw")),
                    None,
                    None,
                    None,
                )
            })
            .expect("SRK with a password")
            .key_handle;
        ctx.tr_set_auth(srk.into(), auth(b"parent-pw")).unwrap();
        let bound = session(&mut ctx, Some(srk)).expect("session bound to the SRK");
        let create =
            |ctx: &mut Context, s: AuthSession, parent, public, pw: &[u8], data: Option<&[u8]>| {
                ctx.execute_with_session(Some(s), |ctx| {
                    ctx.create(
                        parent,
                        public,
                        Some(auth(pw)),
                        data.map(|d| SensitiveData::try_from(d.to_vec()).unwrap()),
                        None,
                        None,
                    )
                })
            };
        let r = create(
            &mut ctx,
            bound,
            srk,
            sealed(),
            b"obj-pw",
            Some(b"a sealed secret"),
        );
        out.push((
            "Create sealed data, bound encrypted session",
            r.map(|_| ()).map_err(|e| e.to_string()),
        ));
        let r = create(&mut ctx, bound, srk, aes_given(), b"", Some(&[0x42; 16]));
        out.push((
            "Create AES-128-CFB with key bytes, bound encrypted session",
            r.map(|_| ()).map_err(|e| e.to_string()),
        ));
        let user = create(&mut ctx, bound, srk, storage(), b"user-pw", None);
        out.push((
            "Create storage key with a password, bound encrypted session",
            user.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        ));
        let Ok(user) = user else { return out };
        let loaded = ctx.execute_with_session(Some(bound), |ctx| {
            ctx.load(srk, user.out_private, user.out_public)
        });
        out.push((
            "Load it",
            loaded.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        ));
        let Ok(key) = loaded else { return out };
        ctx.tr_set_auth(key.into(), auth(b"user-pw")).unwrap();
        let unbound = session(&mut ctx, None).expect("unbound session");
        let r = create(&mut ctx, unbound, key, sealed(), b"", Some(b"child secret"));
        out.push((
            "Create child under the user key, unbound session",
            r.map(|_| ()).map_err(|e| e.to_string()),
        ));
        let own = session(&mut ctx, Some(key)).expect("session bound to the user key");
        let r = create(&mut ctx, own, key, sealed(), b"", Some(b"child secret"));
        out.push((
            "Create child under the user key, session bound to it",
            r.map(|_| ()).map_err(|e| e.to_string()),
        ));
        let r = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create(
                key,
                sealed(),
                None,
                Some(SensitiveData::try_from(b"pw".to_vec()).unwrap()),
                None,
                None,
            )
        });
        out.push((
            "Create child under the user key, password session",
            r.map(|_| ()).map_err(|e| e.to_string()),
        ));
        out
    }

    /// A duplicable ECDSA P-256 key whose authPolicy is `policy`.
    fn duplicable(policy: Digest) -> Public {
        use tss_esapi::interface_types::ecc::EccCurve;
        use tss_esapi::structures::{
            EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme,
            PublicEccParametersBuilder,
        };
        let attrs = ObjectAttributesBuilder::new()
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_sign_encrypt(true)
            .build()
            .unwrap();
        let parms = PublicEccParametersBuilder::new()
            .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
            .with_curve(EccCurve::NistP256)
            .with_is_signing_key(true)
            .with_is_decryption_key(false)
            .with_restricted(false)
            .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
            .build()
            .unwrap();
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_auth_policy(policy)
            .with_ecc_parameters(parms)
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
            .unwrap()
    }

    /// A policy session (salted with `salt_key` when given) with AES-CFB both ways.
    fn policy_session(
        ctx: &mut Context,
        salt_key: Option<KeyHandle>,
        trial: bool,
    ) -> tss_esapi::Result<tss_esapi::interface_types::session_handles::PolicySession> {
        let s = ctx
            .start_auth_session(
                salt_key,
                None,
                None,
                if trial {
                    SessionType::Trial
                } else {
                    SessionType::Policy
                },
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )?
            .expect("a session");
        let (attrs, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .with_continue_session(true)
            .build();
        ctx.tr_sess_set_attributes(s, attrs, mask)?;
        Ok(s.try_into().unwrap())
    }

    /// Duplicate of a key whose policy is PolicyCommandCode(Duplicate), under a (salted,
    /// parameter-encrypting) policy session, as FAPI's duplication does: each step's outcome.
    fn duplicate_flow(tcti: &str) -> Vec<(&'static str, Result<(), String>)> {
        use tss_esapi::constants::CommandCode;
        let mut ctx = Context::new(TctiNameConf::from_str(tcti).unwrap()).expect("ESYS context");
        let mut out = Vec::new();
        let srk = ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, storage(), None, None, None, None)
            })
            .expect("SRK")
            .key_handle;
        let trial = policy_session(&mut ctx, None, true).expect("trial session");
        ctx.policy_command_code(trial, CommandCode::Duplicate)
            .expect("trial policy");
        let digest = ctx.policy_get_digest(trial).expect("policy digest");
        ctx.flush_context(tss_esapi::handles::SessionHandle::from(trial).into())
            .unwrap();
        let key = ctx
            .execute_with_nullauth_session(|ctx| {
                let c = ctx.create(srk, duplicable(digest), None, None, None, None)?;
                ctx.load(srk, c.out_private, c.out_public)
            })
            .expect("duplicable key");
        // FAPI exports to a public key of another TPM, loaded with LoadExternal.
        let (srk_public, _, _) = ctx.read_public(srk).expect("SRK public");
        let external = ctx
            .load_external_public(srk_public, Hierarchy::Null)
            .expect("LoadExternal of a new parent");
        for (what, salted, parent) in [
            ("Duplicate under a policy session", false, srk),
            ("Duplicate under a salted policy session", true, srk),
            ("Duplicate to an external new parent", true, external),
        ] {
            let r = policy_session(&mut ctx, salted.then_some(srk), false).and_then(|ps| {
                ctx.policy_command_code(ps, CommandCode::Duplicate)?;
                let r = ctx.execute_with_session(Some(AuthSession::from(ps)), |ctx| {
                    ctx.duplicate(
                        key.into(),
                        parent.into(),
                        None,
                        SymmetricDefinitionObject::AES_128_CFB,
                    )
                });
                ctx.flush_context(tss_esapi::handles::SessionHandle::from(ps).into())?;
                r
            });
            out.push((what, r.map(|_| ()).map_err(|e| e.to_string())));
        }
        out
    }

    #[test]
    fn esys_duplicate_under_policy_matches_swtpm() {
        let (sim, sw): (Sim, Swtpm) = pair("gaps-esys-dup");
        let a = duplicate_flow(&sim.tcti());
        let b = duplicate_flow(&sw.tcti());
        eprintln!("vtpm-sim: {a:#?}\nswtpm: {b:#?}");
        assert_eq!(
            a, b,
            "the flows' outcomes differ between vtpm-sim and swtpm"
        );
        assert!(a.iter().all(|(_, r)| r.is_ok()), "a flow failed: {a:#?}");
    }

    #[test]
    fn esys_create_flows_match_swtpm() {
        let (sim, sw): (Sim, Swtpm) = pair("gaps-esys");
        let a = flows(&sim.tcti());
        let b = flows(&sw.tcti());
        eprintln!("vtpm-sim: {a:#?}\nswtpm: {b:#?}");
        assert_eq!(a.len(), 7, "vtpm-sim stopped early: {a:#?}");
        assert_eq!(
            a, b,
            "the flows' outcomes differ between vtpm-sim and swtpm"
        );
        assert!(a.iter().all(|(_, r)| r.is_ok()), "a flow failed: {a:#?}");
    }
}

/// NV_DefineSpace parameters: empty auth, `index` with SHA-256 names, `attrs`, no policy.
fn nv_public(index: u32, attrs: u32, size: u16) -> Vec<u8> {
    let n = [
        &index.to_be_bytes()[..],
        &[0x00, 0x0B],
        &attrs.to_be_bytes(),
        &[0, 0],
        &size.to_be_bytes(),
    ]
    .concat();
    [&[0, 0][..], &tpm2b(&n)].concat()
}

/// PolicyAuthorizeNV: the policy held in an NV index authorises the session's digest, which
/// then starts over from the index's Name; unwritten indices, a stale digest, a wrong hash
/// algorithm, and trial sessions.
#[test]
fn policy_authorize_nv_matches_swtpm() {
    let (sim, sw) = pair("gaps-pnv");
    let nv = 0x0150_0020u32;
    let owner_rw = (1 << 1) | (1 << 17);
    let start = |kind: u8| {
        let p = [&tpm2b(&[7; 16])[..], &[0, 0, kind], &[0, 0x10], &[0, 0x0B]].concat();
        cmd(0x176, &[0x4000_0007, 0x4000_0007], false, &p)
    };
    let authorize_nv = |at: usize| {
        move |h: &[Vec<u8>]| cmd(0x192, &[0x4000_0001, nv, handle_of(resp(h, at))], true, &[])
    };
    let get_digest =
        |at: usize| move |h: &[Vec<u8>]| cmd(0x189, &[handle_of(resp(h, at))], false, &[]);
    let write = |alg: u16| {
        move |h: &[Vec<u8>]| {
            // PolicyGetDigest's response (no sessions): the TPM2B digest at 10.
            let r = resp(h, 4);
            let d = &r[12..];
            let ha = [&alg.to_be_bytes()[..], d].concat();
            cmd(
                0x137,
                &[0x4000_0001, nv],
                true,
                &[&tpm2b(&ha)[..], &[0, 0]].concat(),
            )
        }
    };
    let steps = vec![
        step(
            "NV_DefineSpace 34 bytes",
            cmd(0x12A, &[0x4000_0001], true, &nv_public(nv, owner_rw, 34)),
            0,
            Cmp::Exact,
        ),
        step("StartAuthSession policy", start(1), 0, Cmp::Len),
        built(
            "PolicyAuthorizeNV, index unwritten",
            authorize_nv(1),
            0x14A,
            Cmp::Exact,
        ),
        built(
            "PolicyCommandCode Unseal",
            |h| {
                cmd(
                    0x16C,
                    &[handle_of(resp(h, 1))],
                    false,
                    &0x15Eu32.to_be_bytes(),
                )
            },
            0,
            Cmp::Exact,
        ),
        built("PolicyGetDigest", get_digest(1), 0, Cmp::Exact),
        built("NV_Write TPMT_HA (SHA-1 tag)", write(0x0004), 0, Cmp::Exact),
        built(
            "PolicyAuthorizeNV, wrong hash algorithm",
            authorize_nv(1),
            0x83,
            Cmp::Exact,
        ),
        built("NV_Write TPMT_HA", write(0x000B), 0, Cmp::Exact),
        built("PolicyAuthorizeNV", authorize_nv(1), 0, Cmp::Exact),
        built("PolicyGetDigest after it", get_digest(1), 0, Cmp::Exact),
        built(
            "PolicyAuthorizeNV, digest no longer matches",
            authorize_nv(1),
            0x84,
            Cmp::Exact,
        ),
        step("StartAuthSession trial", start(3), 0, Cmp::Len),
        built("PolicyAuthorizeNV (trial)", authorize_nv(11), 0, Cmp::Exact),
        built("PolicyGetDigest (trial)", get_digest(11), 0, Cmp::Exact),
    ];
    run("policy_authorize_nv_matches_swtpm", &sim, &sw, &steps, 10);
}

/// SetAlgorithmSet: platform authorisation only; its TPMA_CC as libtpms'.
#[test]
fn set_algorithm_set_matches_swtpm() {
    let (sim, sw) = pair("gaps-algset");
    let steps = vec![
        step(
            "TPMA_CC of SetAlgorithmSet",
            cmd(0x17A, &[], false, &[0, 0, 0, 2, 0, 0, 1, 0x3F, 0, 0, 0, 1]),
            0,
            Cmp::Exact,
        ),
        step(
            "SetAlgorithmSet (platform)",
            cmd(0x13F, &[0x4000_000C], true, &[0, 0, 0, 0]),
            0,
            Cmp::Exact,
        ),
        step(
            "SetAlgorithmSet (owner)",
            cmd(0x13F, &[0x4000_0001], true, &[0, 0, 0, 0]),
            0x184,
            Cmp::Exact,
        ),
        step(
            "SetAlgorithmSet without its parameter",
            cmd(0x13F, &[0x4000_000C], true, &[]),
            0x1DA,
            Cmp::Exact,
        ),
    ];
    run("set_algorithm_set_matches_swtpm", &sim, &sw, &steps, 2);
}

/// Rewrap: a duplication blob made for the SRK is unwrapped to TPM_RH_NULL (no outer wrapper),
/// wrapped again for the SRK and imported there; a seed without an old parent and a tampered
/// blob are refused.
#[test]
fn rewrap_matches_swtpm() {
    let (sim, sw) = pair("gaps-rewrap");
    let srk = 0x8000_0000u32;
    // PolicyCommandCode(Duplicate) from an empty policy.
    let policy = common::sha256(&[&[0; 32], &0x16Cu32.to_be_bytes(), &0x14Bu32.to_be_bytes()]);
    let key = [
        &[0x00, 0x23, 0x00, 0x0B][..],
        &0x0004_0060u32.to_be_bytes(), // sign | userWithAuth | sensitiveDataOrigin
        &tpm2b(&policy),
        &[0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10],
        &[0, 0, 0, 0],
    ]
    .concat();
    // The key's Name: Load's response (handle, parameterSize, then the Name).
    let name = |h: &[Vec<u8>]| {
        let r = resp(h, 2);
        let n = usize::from(u16::from_be_bytes([r[18], r[19]]));
        r[18..20 + n].to_vec()
    };
    let rewrap = |from: u32, to: u32, at: usize, dup_field: usize, seed_field: usize| {
        move |h: &[Vec<u8>]| {
            let r = resp(h, at);
            let p = [field(r, dup_field), name(h), field(r, seed_field)].concat();
            cmd(0x152, &[from, to], true, &p)
        }
    };
    let steps = vec![
        step(
            "CreatePrimary ECC SRK",
            cmd(0x131, &[0x4000_0001], true, &create_params(&[], &ecc_srk())),
            0,
            Cmp::Len,
        ),
        step(
            "Create a duplicable key",
            cmd(0x153, &[srk], true, &create_params(&[], &key)),
            0,
            Cmp::Len,
        ),
        load_created(srk, 1),
        step(
            "StartAuthSession policy",
            cmd(
                0x176,
                &[0x4000_0007, 0x4000_0007],
                false,
                &[&tpm2b(&[4; 16])[..], &[0, 0, 1], &[0, 0x10], &[0, 0x0B]].concat(),
            ),
            0,
            Cmp::Len,
        ),
        built(
            "PolicyCommandCode Duplicate",
            |h| {
                cmd(
                    0x16C,
                    &[handle_of(resp(h, 3))],
                    false,
                    &0x14Bu32.to_be_bytes(),
                )
            },
            0,
            Cmp::Exact,
        ),
        built(
            "Duplicate to the SRK, no inner wrapper",
            move |h| {
                let (k, ps) = (handle_of(resp(h, 2)), handle_of(resp(h, 3)));
                cmd_area(0x14B, &[k, srk], &[(ps, 0x01)], &[0, 0, 0, 0x10])
            },
            0,
            Cmp::Len,
        ),
        built(
            "Rewrap SRK -> NULL",
            rewrap(srk, 0x4000_0007, 5, 1, 2),
            0,
            Cmp::Len,
        ),
        built(
            "Rewrap NULL -> SRK",
            rewrap(0x4000_0007, srk, 6, 0, 1),
            0,
            Cmp::Len,
        ),
        built(
            "Import the rewrapped blob under the SRK",
            move |h| {
                let (r, c) = (resp(h, 7), resp(h, 1));
                let p = [
                    &[0, 0][..],
                    &field(c, 1),
                    &field(r, 0),
                    &field(r, 1),
                    &[0, 0x10],
                ]
                .concat();
                cmd(0x156, &[srk], true, &p)
            },
            0,
            Cmp::Len,
        ),
        built(
            "Rewrap NULL -> SRK with a seed",
            rewrap(0x4000_0007, srk, 5, 1, 2),
            0x18B,
            Cmp::Exact,
        ),
        built(
            "Rewrap SRK -> NULL, tampered blob",
            move |h| {
                let r = resp(h, 5);
                let mut dup = field(r, 1);
                let last = dup.len() - 1;
                dup[last] ^= 1;
                let p = [dup, name(h), field(r, 2)].concat();
                cmd(0x152, &[srk, 0x4000_0007], true, &p)
            },
            0x1DF,
            Cmp::Exact,
        ),
    ];
    run("rewrap_matches_swtpm", &sim, &sw, &steps, 9);
}

/// The `x509sign` object attribute (a key only CertifyX509 may sign with): CreatePrimary
/// accepts it (restricted too, as libtpms does) and TPM2_Sign refuses such a key.
#[test]
fn x509sign_attribute_matches_swtpm() {
    let (sim, sw) = pair("gaps-x509sign");
    const X509SIGN: u32 = 1 << 19;
    // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign.
    const SIGNER: u32 = 0x0004_0072;
    let ecdsa = |attrs: u32| {
        let parms = [0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10];
        let p = public(0x0023, attrs, &parms, &[0, 0, 0, 0]);
        cmd(0x131, &[0x4000_0001], true, &create_params(&[], &p))
    };
    let digest = [&tpm2b(&[0x11; 32])[..], &[0, 0x10]].concat();
    let ticket = [&[0x80, 0x24][..], &0x4000_0007u32.to_be_bytes(), &[0, 0]].concat();
    let steps = vec![
        step(
            "CreatePrimary x509sign ECDSA",
            ecdsa(SIGNER | X509SIGN),
            0,
            Cmp::Len,
        ),
        built(
            "Sign with the x509sign key",
            move |h| {
                let p = [&digest[..], &ticket].concat();
                cmd(0x15D, &[handle_of(resp(h, 0))], true, &p)
            },
            0x182,
            Cmp::Exact,
        ),
        built(
            "FlushContext it",
            |h| cmd(0x165, &[], false, &handle_of(resp(h, 0)).to_be_bytes()),
            0,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary x509sign restricted",
            ecdsa(SIGNER | X509SIGN | (1 << 16)),
            0,
            Cmp::Len,
        ),
    ];
    run("x509sign_attribute_matches_swtpm", &sim, &sw, &steps, 3);
}
