//! Audit with stock tpm2-tools: tpm2_setcommandauditstatus, tpm2_getcommandauditdigest,
//! tpm2_startauthsession --audit-session and tpm2_getsessionauditdigest against `vtpm-sim`.
//! The signed attestations verify with OpenSSL on the exported public key, and the audit
//! digests equal the ones recomputed here from the random bytes the audited commands returned
//! (digestNew = H(digestOld || cpHash || rpHash), Part 1 §33).

mod common;
use common::{Sim, openssl_verify, sha256};

const KEY: &str = "0x81000010";
const GET_RANDOM: [u8; 4] = 0x17Bu32.to_be_bytes();

/// The audit-digest step for TPM2_GetRandom(n) that returned `bytes`.
fn extend_get_random(old: &[u8], bytes: &[u8]) -> Vec<u8> {
    let n = (bytes.len() as u16).to_be_bytes();
    let cp = sha256(&[&GET_RANDOM, &n]);
    let rp = sha256(&[&[0; 4], &GET_RANDOM, &n, bytes]);
    sha256(&[old, &cp, &rp])
}

/// Checks the signature over `msg` with OpenSSL and returns TPMS_ATTEST.attested, after the
/// common header (magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion).
fn verified_attest(sim: &Sim, msg: &str, sig: &str, ty: u16) -> Vec<u8> {
    let out = openssl_verify(&sim.dir, "k.pem", sig, msg);
    assert!(
        out.status.success(),
        "openssl rejects the signature over {msg}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = sim.read(msg);
    assert_eq!(&a[..4], b"\xffTCG");
    assert_eq!(u16::from_be_bytes([a[4], a[5]]), ty);
    let mut at = 6;
    for _ in 0..2 {
        at += 2 + usize::from(u16::from_be_bytes([a[at], a[at + 1]]));
    }
    a[at + 25..].to_vec()
}

fn tpm2b(b: &[u8], at: usize) -> (Vec<u8>, usize) {
    let n = usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
    (b[at + 2..at + 2 + n].to_vec(), at + 2 + n)
}

#[test]
fn command_and_session_audit_with_tpm2_tools() {
    let sim = Sim::started("audit-tools");
    sim.tool(&[
        "tpm2_createprimary",
        "-Q",
        "-C",
        "o",
        "-G",
        "ecc256:ecdsa-sha256",
        "-a",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
        "-c",
        "k.ctx",
    ]);
    sim.tool(&["tpm2_evictcontrol", "-Q", "-C", "o", "-c", "k.ctx", KEY]);
    sim.flush();
    sim.tool(&[
        "tpm2_readpublic",
        "-Q",
        "-c",
        KEY,
        "-f",
        "pem",
        "-o",
        "k.pem",
    ]);

    // Command audit of GetRandom, with SHA-256.
    sim.tool(&[
        "tpm2_setcommandauditstatus",
        "-g",
        "sha256",
        "TPM2_CC_GetRandom",
    ]);
    let get_digest = |name: &str| {
        sim.tool(&[
            "tpm2_getcommandauditdigest",
            "-c",
            KEY,
            "-g",
            "sha256",
            "-q",
            "c0ffee",
            "-m",
            &format!("{name}.att"),
            "-s",
            &format!("{name}.sig"),
            "-f",
            "plain",
        ]);
        let body = verified_attest(&sim, &format!("{name}.att"), &format!("{name}.sig"), 0x8015);
        let counter = u64::from_be_bytes(body[..8].try_into().unwrap());
        let alg = u16::from_be_bytes([body[8], body[9]]);
        let (digest, at) = tpm2b(&body, 10);
        let (commands, _) = tpm2b(&body, at);
        (counter, alg, digest, commands)
    };
    // The first digest holds the list change itself: signing it clears it.
    let (first, alg, _, commands) = get_digest("first");
    assert_eq!(alg, 0x000B, "SHA-256");
    let codes = [0x140u32, 0x17B]
        .iter()
        .flat_map(|c| c.to_be_bytes())
        .collect::<Vec<u8>>();
    assert_eq!(
        commands,
        sha256(&[&codes]),
        "digest of the audited command codes"
    );
    let mut want = vec![0u8; 32];
    for (i, n) in ["8", "16"].iter().enumerate() {
        let out = format!("r{i}.bin");
        sim.tool(&["tpm2_getrandom", n, "-o", &out]);
        want = extend_get_random(&want, &sim.read(&out));
    }
    let (counter, _, digest, _) = get_digest("second");
    assert_eq!(counter, first + 1, "a new digest bumps the audit counter");
    assert_eq!(digest, want, "command audit digest recomputed on the host");

    // An audit session over GetRandom; GetSessionAuditDigest signs its digest.
    sim.tool(&["tpm2_startauthsession", "-S", "s.ctx", "--audit-session"]);
    let mut want = vec![0u8; 32];
    for (i, n) in ["8", "4"].iter().enumerate() {
        let out = format!("s{i}.bin");
        sim.tool(&["tpm2_getrandom", n, "-S", "s.ctx", "-o", &out]);
        want = extend_get_random(&want, &sim.read(&out));
    }
    sim.tool(&[
        "tpm2_getsessionauditdigest",
        "-c",
        KEY,
        "-g",
        "sha256",
        "-S",
        "s.ctx",
        "-m",
        "sess.att",
        "-s",
        "sess.sig",
        "-f",
        "plain",
    ]);
    let body = verified_attest(&sim, "sess.att", "sess.sig", 0x8016);
    let (digest, _) = tpm2b(&body, 1);
    assert_eq!(digest, want, "session audit digest recomputed on the host");

    // Taking GetRandom off the list: the next digest no longer moves with it.
    sim.tool(&["tpm2_setcommandauditstatus", "-c", "TPM2_CC_GetRandom"]);
    let (_, _, _, commands) = get_digest("third");
    assert_eq!(commands, sha256(&[&0x140u32.to_be_bytes()]));
}
