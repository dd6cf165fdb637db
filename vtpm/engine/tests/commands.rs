//! Engine behaviour from raw command bytes: framing errors, response codes with their
//! handle/parameter/session numbers, start-up rules, PCR locality rules, determinism of
//! primary keys, persistence through the platform and the versioned state blob.

mod support;

use support::{RH_ENDORSEMENT, RH_NULL, RH_OWNER, RS_PW, pcr_read, pw_area, rc};
use warden_vtpm::{MemPlatform, Platform, StateError, Tpm};

/// Builds a command; `pw` adds a password authorisation for each handle that needs one.
fn cmd(cc: u32, handles: &[u32], pw: Option<&[&[u8]]>, params: &[u8]) -> Vec<u8> {
    support::frame(cc, handles, pw.map(pw_area), params)
}

/// The seed of every TPM here.
const SEED: u64 = 7;

fn tpm() -> Tpm<MemPlatform> {
    support::tpm(SEED)
}

fn started() -> Tpm<MemPlatform> {
    support::started(SEED)
}

fn pcr_extend_params(alg: u16, digest: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 1];
    p.extend_from_slice(&alg.to_be_bytes());
    p.extend_from_slice(digest);
    p
}

/// A minimal ECC P-256 signing template (TPM2B_PUBLIC) with `unique` as given.
fn ecc_template(attrs: u32, unique_x: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&0x0023u16.to_be_bytes()); // ECC
    t.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA-256
    t.extend_from_slice(&attrs.to_be_bytes());
    t.extend_from_slice(&[0, 0]); // policy
    t.extend_from_slice(&0x0010u16.to_be_bytes()); // sym NULL
    t.extend_from_slice(&0x0018u16.to_be_bytes()); // ECDSA
    t.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA-256
    t.extend_from_slice(&0x0003u16.to_be_bytes()); // P-256
    t.extend_from_slice(&0x0010u16.to_be_bytes()); // KDF NULL
    t.extend_from_slice(&(unique_x.len() as u16).to_be_bytes());
    t.extend_from_slice(unique_x);
    t.extend_from_slice(&[0, 0]);
    let mut b = (t.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(&t);
    b
}

/// An RSA-1024 RSASSA/SHA-256 signing template (TPM2B_PUBLIC) with public exponent `e`.
fn rsa_template(attrs: u32, e: u32) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&0x0001u16.to_be_bytes()); // RSA
    t.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA-256
    t.extend_from_slice(&attrs.to_be_bytes());
    t.extend_from_slice(&[0, 0]); // policy
    t.extend_from_slice(&0x0010u16.to_be_bytes()); // sym NULL
    t.extend_from_slice(&0x0014u16.to_be_bytes()); // RSASSA
    t.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA-256
    t.extend_from_slice(&1024u16.to_be_bytes());
    t.extend_from_slice(&e.to_be_bytes());
    t.extend_from_slice(&[0, 0]); // unique
    let mut b = (t.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(&t);
    b
}

fn create_primary_params(template: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 4, 0, 0, 0, 0]; // inSensitive: empty auth, empty data
    p.extend_from_slice(template);
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // outsideInfo, creationPCR
    p
}

const SIGN_ATTRS: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 18);

#[test]
fn framing_and_numbered_response_codes() {
    struct Case {
        what: &'static str,
        locality: u8,
        bytes: Vec<u8>,
        want: u32,
    }
    let mut bad_tag = cmd(0x17B, &[], None, &[0, 8]);
    bad_tag[1] = 0x05;
    let mut bad_size = cmd(0x17B, &[], None, &[0, 8]);
    bad_size[5] += 1;
    let cases = vec![
        Case {
            what: "bad tag (VALUE, as libtpms)",
            locality: 0,
            bytes: bad_tag,
            want: 0x084,
        },
        Case {
            what: "size field disagrees",
            locality: 0,
            bytes: bad_size,
            want: 0x142,
        },
        Case {
            what: "short header",
            locality: 0,
            bytes: vec![0x80, 0x01, 0],
            want: 0x09A,
        },
        Case {
            what: "unknown command",
            locality: 0,
            bytes: cmd(0x1FF, &[], None, &[]),
            want: 0x143,
        },
        Case {
            what: "second Startup",
            locality: 0,
            bytes: cmd(0x144, &[], None, &[0, 0]),
            want: 0x100,
        },
        Case {
            what: "GetRandom trailing byte (bare SIZE)",
            locality: 0,
            bytes: cmd(0x17B, &[], None, &[0, 8, 0]),
            want: 0x095,
        },
        Case {
            what: "GetRandom truncated",
            locality: 0,
            bytes: cmd(0x17B, &[], None, &[0]),
            want: 0x1DA,
        },
        Case {
            what: "GetCapability unknown capability",
            locality: 0,
            bytes: cmd(0x17A, &[], None, &[0, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 1]),
            want: 0x1C4,
        },
        Case {
            what: "PCR_Extend without authorisation",
            locality: 0,
            bytes: cmd(0x182, &[16], None, &pcr_extend_params(0x0B, &[1; 32])),
            want: 0x125,
        },
        Case {
            what: "PCR_Extend unknown hash",
            locality: 0,
            bytes: cmd(
                0x182,
                &[16],
                Some(&[b""]),
                &pcr_extend_params(0x99, &[1; 32]),
            ),
            want: 0x1C3,
        },
        Case {
            what: "PCR_Extend handle beyond PCR 23",
            locality: 0,
            bytes: cmd(
                0x182,
                &[24],
                Some(&[b""]),
                &pcr_extend_params(0x0B, &[1; 32]),
            ),
            want: 0x184,
        },
        Case {
            what: "PCR_Extend PCR 17 from locality 0",
            locality: 0,
            bytes: cmd(
                0x182,
                &[17],
                Some(&[b""]),
                &pcr_extend_params(0x0B, &[1; 32]),
            ),
            want: 0x907,
        },
        Case {
            what: "PCR_Extend PCR 20 from locality 2",
            locality: 2,
            bytes: cmd(
                0x182,
                &[20],
                Some(&[b""]),
                &pcr_extend_params(0x0B, &[1; 32]),
            ),
            want: 0,
        },
        Case {
            what: "PCR_Reset PCR 0",
            locality: 0,
            bytes: cmd(0x13D, &[0], Some(&[b""]), &[]),
            want: 0x907,
        },
        Case {
            what: "PCR_Reset PCR 16",
            locality: 0,
            bytes: cmd(0x13D, &[16], Some(&[b""]), &[]),
            want: 0,
        },
        Case {
            what: "FlushContext of nothing",
            locality: 0,
            bytes: cmd(0x165, &[], None, &0x8000_0002u32.to_be_bytes()),
            want: 0x1CB,
        },
        Case {
            what: "ReadPublic of an empty slot",
            locality: 0,
            bytes: cmd(0x173, &[0x8000_0001], None, &[]),
            want: 0x910,
        },
        Case {
            what: "password session with a nonce",
            locality: 0,
            bytes: {
                let mut c = cmd(0x13D, &[16], Some(&[b""]), &[]);
                // Rewrite the auth area: nonce of one byte.
                c.truncate(14);
                c.extend_from_slice(&10u32.to_be_bytes());
                c.extend_from_slice(&RS_PW.to_be_bytes());
                c.extend_from_slice(&[0, 1, 0xAA, 1, 0, 0]);
                let len = c.len() as u32;
                c[2..6].copy_from_slice(&len.to_be_bytes());
                c
            },
            want: 0x98F,
        },
        Case {
            what: "CreatePrimary with reserved attribute bit",
            locality: 0,
            bytes: cmd(
                0x131,
                &[RH_OWNER],
                Some(&[b""]),
                &create_primary_params(&ecc_template(SIGN_ATTRS | 1, &[])),
            ),
            want: 0x2E1,
        },
        Case {
            what: "CreatePrimary on a bad hierarchy",
            locality: 0,
            bytes: cmd(
                0x131,
                &[0x4000_0003],
                Some(&[b""]),
                &create_primary_params(&ecc_template(SIGN_ATTRS, &[])),
            ),
            want: 0x184,
        },
    ];
    for c in cases {
        let mut t = started();
        let r = t.execute(c.locality, &c.bytes);
        assert_eq!(rc(&r), c.want, "{}: got {:#x}", c.what, rc(&r));
        assert_eq!(
            u32::from_be_bytes([r[2], r[3], r[4], r[5]]) as usize,
            r.len(),
            "{}: size field",
            c.what
        );
    }
}

#[test]
fn commands_before_startup_are_refused() {
    let mut t = tpm();
    assert_eq!(rc(&t.execute(0, &cmd(0x17B, &[], None, &[0, 8]))), 0x100);
    assert_eq!(
        rc(&t.execute(0, &cmd(0x144, &[], None, &[0, 1]))),
        0x1C4,
        "Startup(STATE) with nothing saved"
    );
    assert_eq!(rc(&t.execute(0, &cmd(0x144, &[], None, &[0, 0]))), 0);
    let r = t.execute(0, &cmd(0x17B, &[], None, &[0, 8]));
    assert_eq!(rc(&r), 0);
    assert_eq!(&r[10..12], &[0, 8]);
}

#[test]
fn pcr_extend_matches_reference_hash_and_resume_keeps_pcrs() {
    use sha2::Digest;
    let mut t = started();
    assert_eq!(
        rc(&t.execute(
            0,
            &cmd(
                0x182,
                &[16],
                Some(&[b""]),
                &pcr_extend_params(0x0B, &[0xAB; 32])
            )
        )),
        0
    );
    let mut h = sha2::Sha256::new();
    h.update([0u8; 32]);
    h.update([0xABu8; 32]);
    let want = h.finalize().to_vec();
    assert_eq!(pcr_read(&mut t, 0x000B, 16), want);
    // Shutdown(STATE), power cycle, Startup(STATE): PCRs come back.
    assert_eq!(rc(&t.execute(0, &cmd(0x145, &[], None, &[0, 1]))), 0);
    t.power_on();
    assert_eq!(rc(&t.execute(0, &cmd(0x144, &[], None, &[0, 1]))), 0);
    assert_eq!(pcr_read(&mut t, 0x000B, 16), want);
    // Power cycle and Startup(CLEAR): reset.
    t.power_on();
    assert_eq!(rc(&t.execute(0, &cmd(0x144, &[], None, &[0, 0]))), 0);
    assert_eq!(pcr_read(&mut t, 0x000B, 16), vec![0; 32]);
}

#[test]
fn primaries_are_deterministic_and_survive_reload() {
    let mut t = started();
    let params = create_primary_params(&ecc_template(SIGN_ATTRS, &[]));
    let a = t.execute(0, &cmd(0x131, &[RH_ENDORSEMENT], Some(&[b""]), &params));
    assert_eq!(rc(&a), 0);
    assert_eq!(
        rc(&t.execute(0, &cmd(0x165, &[], None, &0x8000_0000u32.to_be_bytes()))),
        0
    );
    let b = t.execute(0, &cmd(0x131, &[RH_ENDORSEMENT], Some(&[b""]), &params));
    assert_eq!(rc(&b), 0);
    // outPublic follows the handle and parameterSize.
    let pub_a = &a[18..18 + 2 + usize::from(u16::from_be_bytes([a[18], a[19]]))];
    let pub_b = &b[18..18 + 2 + usize::from(u16::from_be_bytes([b[18], b[19]]))];
    assert_eq!(pub_a, pub_b);
    // A different unique field gives a different key.
    let other = t.execute(
        0,
        &cmd(
            0x131,
            &[RH_ENDORSEMENT],
            Some(&[b""]),
            &create_primary_params(&ecc_template(SIGN_ATTRS, b"x")),
        ),
    );
    assert_eq!(rc(&other), 0);
    assert_ne!(&other[18..18 + pub_a.len()], pub_a);
    // Same seed after a reload from the platform's NV: the same key.
    let nv = t.platform().nv.clone();
    let mut plat = MemPlatform::with_seed(99);
    plat.nv = nv;
    let mut t2 = Tpm::new(plat).expect("reload");
    assert_eq!(rc(&t2.execute(0, &cmd(0x144, &[], None, &[0, 0]))), 0);
    let c = t2.execute(0, &cmd(0x131, &[RH_ENDORSEMENT], Some(&[b""]), &params));
    assert_eq!(&c[18..18 + pub_a.len()], pub_a);
    // The null hierarchy's seed changes with every reset.
    let n1 = t2.execute(0, &cmd(0x131, &[RH_NULL], Some(&[b""]), &params));
    t2.power_on();
    assert_eq!(rc(&t2.execute(0, &cmd(0x144, &[], None, &[0, 0]))), 0);
    let n2 = t2.execute(0, &cmd(0x131, &[RH_NULL], Some(&[b""]), &params));
    assert_ne!(&n1[18..18 + pub_a.len()], &n2[18..18 + pub_a.len()]);
}

#[test]
fn wrong_owner_password_counts_and_lockout_engages() {
    let mut t = started();
    // HierarchyChangeAuth(owner, "pw").
    assert_eq!(
        rc(&t.execute(
            0,
            &cmd(0x129, &[RH_OWNER], Some(&[b""]), &[0, 2, b'p', b'w'])
        )),
        0
    );
    let params = create_primary_params(&ecc_template(SIGN_ATTRS, &[]));
    assert_eq!(
        rc(&t.execute(0, &cmd(0x131, &[RH_OWNER], Some(&[b"nope"]), &params))),
        0x9A2,
        "hierarchies are not DA-protected: BAD_AUTH"
    );
    assert_eq!(
        rc(&t.execute(0, &cmd(0x131, &[RH_OWNER], Some(&[b"pw"]), &params))),
        0
    );
    // A DA-protected object: sealed data with userWithAuth and a password; three failures lock out.
    let mut lockout_failures = 0;
    for _ in 0..3 {
        // DictionaryAttackLockReset with a wrong lockout password locks the lockout hierarchy.
        lockout_failures += u32::from(
            rc(&t.execute(0, &cmd(0x139, &[0x4000_000A], Some(&[b"bad"]), &[]))) == 0x98E,
        );
    }
    assert_eq!(
        lockout_failures, 1,
        "after one failure the lockout hierarchy itself is locked"
    );
    assert_eq!(
        rc(&t.execute(0, &cmd(0x139, &[0x4000_000A], Some(&[b""]), &[]))),
        0x921
    );
}

#[test]
fn context_save_load_and_tamper_detection() {
    let mut t = started();
    let params = create_primary_params(&ecc_template(SIGN_ATTRS, &[]));
    let r = t.execute(0, &cmd(0x131, &[RH_OWNER], Some(&[b""]), &params));
    assert_eq!(rc(&r), 0);
    let handle = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
    let saved = t.execute(0, &cmd(0x162, &[handle], None, &[]));
    assert_eq!(rc(&saved), 0);
    let ctx = saved[10..].to_vec();
    assert_eq!(
        rc(&t.execute(0, &cmd(0x165, &[], None, &handle.to_be_bytes()))),
        0
    );
    let loaded = t.execute(0, &cmd(0x161, &[], None, &ctx));
    assert_eq!(rc(&loaded), 0);
    let mut bad = ctx.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(rc(&t.execute(0, &cmd(0x161, &[], None, &bad))), 0x1DF);
    // Three slots: the fourth load is TPM_RC_OBJECT_MEMORY.
    assert_eq!(rc(&t.execute(0, &cmd(0x161, &[], None, &ctx))), 0);
    assert_eq!(rc(&t.execute(0, &cmd(0x161, &[], None, &ctx))), 0);
    assert_eq!(rc(&t.execute(0, &cmd(0x161, &[], None, &ctx))), 0x902);
    // After a power cycle the context key changed: old contexts no longer load.
    t.power_on();
    assert_eq!(rc(&t.execute(0, &cmd(0x144, &[], None, &[0, 0]))), 0);
    assert_eq!(rc(&t.execute(0, &cmd(0x161, &[], None, &ctx))), 0x1DF);
}

#[test]
fn state_blob_round_trips_and_newer_versions_are_refused() {
    let mut t = started();
    assert_eq!(
        rc(&t.execute(
            0,
            &cmd(
                0x182,
                &[16],
                Some(&[b""]),
                &pcr_extend_params(0x0B, &[7; 32])
            )
        )),
        0
    );
    let blob = t.save_state();
    let mut t2 = tpm();
    t2.restore_state(&blob).expect("same-version blob");
    assert!(t2.is_started());
    assert_eq!(pcr_read(&mut t2, 0x000B, 16), pcr_read(&mut t, 0x000B, 16));
    let mut newer = blob.clone();
    let v = u16::from_be_bytes([newer[6], newer[7]]) + 1;
    newer[6..8].copy_from_slice(&v.to_be_bytes());
    let err = t2.restore_state(&newer).expect_err("newer blob");
    assert_eq!(
        err,
        StateError::UnsupportedVersion {
            found: v,
            supported: warden_vtpm::STATE_VERSION
        }
    );
    assert!(err.to_string().contains("newer than this build"), "{err}");
    assert_eq!(
        t2.restore_state(b"garbage").expect_err("garbage"),
        StateError::BadMagic
    );
    assert_eq!(
        t2.restore_state(&blob[..blob.len() - 3])
            .expect_err("truncated"),
        StateError::Corrupt
    );
    // A newer permanent-state file stops the TPM from starting instead of being overwritten.
    let mut p = MemPlatform::with_seed(1);
    let mut perm = t.platform().nv.clone().expect("written");
    perm[6..8].copy_from_slice(&v.to_be_bytes());
    p.nv_write(&perm);
    assert!(matches!(
        Tpm::new(p),
        Err(StateError::UnsupportedVersion { .. })
    ));
}

/// The public exponents key generation takes: FIPS 186-5's 2^16 < e, and e prime as the
/// reference code requires (CryptRsaGenerateKey answers TPM_RC_RANGE, unnumbered, otherwise:
/// swtpm 0.7.1 gives 0x08D for each refused e here); 0 is 65537.
/// A refused exponent creates nothing: the next CreatePrimary still works.
#[test]
fn rsa_key_generation_exponents() {
    let mut t = started();
    for (e, want) in [
        (0u32, 0u32),
        (65537, 0),
        (65539, 0),
        (3, 0x08D),
        (17, 0x08D),
        (65535, 0x08D),
        (65541, 0x08D), // 3 * 21847
        (65537 * 65521, 0x08D),
    ] {
        let params = create_primary_params(&rsa_template(SIGN_ATTRS, e));
        let r = t.execute(0, &cmd(0x131, &[RH_OWNER], Some(&[b""]), &params));
        assert_eq!(rc(&r), want, "e = {e}: got {:#x}", rc(&r));
        if want == 0 {
            // outPublic (after the handle and parameterSize) carries the exponent as asked.
            let at = 10 + 4 + 4 + 2 + 2 + 2 + 4 + 2 + 2 + 2 + 2 + 2;
            assert_eq!(support::u32_at(&r, at), e, "exponent echoed");
            let handle = support::u32_at(&r, 10);
            let flush = cmd(0x165, &[], None, &handle.to_be_bytes());
            assert_eq!(rc(&t.execute(0, &flush)), 0);
        } else {
            assert_eq!(r.len(), 10, "an error response carries nothing");
        }
    }
}
