//! Stock tpm2-tools policy flows against `vtpm-sim`: PolicySecret with an expiration and its
//! ticket (PolicyTicket), PolicySigned with OpenSSL-signed authorisations (RSA and ECDSA keys
//! loaded with tpm2_loadexternal), PolicyLocality, PolicyNV and PolicyCpHash (approved through
//! PolicyAuthorize). Each flow seals a secret under the policy and checks that tpm2_unseal
//! works only when the policy is met, and that the failures carry the spec's codes. Also the
//! NV and attestation commands next to them: tpm2_changeauth on an index (policy-only ADMIN
//! role), tpm2_nvwritelock --global, tpm2_nvcertify and tpm2_certifycreation (signatures
//! checked by OpenSSL).

mod common;
use common::{Sim, host, openssl_ecc_key, openssl_rsa_key, openssl_verify};
use std::time::{Duration, Instant};

fn started(name: &str) -> Sim {
    let sim = Sim::started(name);
    sim.primary("o", "ecc", "prim.ctx");
    sim.write("secret", b"policy-protected secret");
    sim
}

/// Computes `policy` in a trial session with the assertion `args` (the session goes after
/// `-S`), seals the secret under it, and returns the loaded object's context file.
fn seal_under(sim: &Sim, name: &str, assertion: &[&str]) -> String {
    let pol = format!("{name}.pol");
    sim.tool(&["tpm2_startauthsession", "-S", "trial.ctx"]);
    let mut args = assertion.to_vec();
    args.extend_from_slice(&["-S", "trial.ctx", "-L", &pol]);
    sim.tool(&args);
    sim.tool(&["tpm2_flushcontext", "trial.ctx"]);
    sim.flush();
    let (pubf, privf, ctx) = (
        format!("{name}.pub"),
        format!("{name}.priv"),
        format!("{name}.ctx"),
    );
    sim.tool(&[
        "tpm2_create",
        "-Q",
        "-C",
        "prim.ctx",
        "-L",
        &pol,
        "-i",
        "secret",
        "-u",
        &pubf,
        "-r",
        &privf,
    ]);
    sim.flush();
    sim.tool(&[
        "tpm2_load",
        "-Q",
        "-C",
        "prim.ctx",
        "-u",
        &pubf,
        "-r",
        &privf,
        "-c",
        &ctx,
    ]);
    sim.flush();
    ctx
}

/// Starts a policy session in `p.ctx` and runs the assertions (each gets `-S p.ctx`).
fn satisfy(sim: &Sim, assertions: &[&[&str]]) {
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
    for a in assertions {
        let mut args = a.to_vec();
        args.extend_from_slice(&["-S", "p.ctx"]);
        sim.tool(&args);
    }
}

fn unseal(sim: &Sim, ctx: &str) -> std::process::Output {
    let out = sim.try_tool(&["tpm2_unseal", "-c", ctx, "-p", "session:p.ctx"]);
    sim.flush();
    out
}

fn unseals(sim: &Sim, ctx: &str) {
    let out = unseal(sim, ctx);
    assert!(
        out.status.success(),
        "unseal failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"policy-protected secret");
}

/// The tool failed and its error output names the response code `code` (e.g. "0x9a3").
fn fails_with(out: &std::process::Output, code: &str) {
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "expected {code}, the tool succeeded");
    assert!(err.contains(code), "expected {code}:\n{err}");
}

#[test]
fn policysecret_expiration_and_ticket() {
    let sim = started("pol-secret");
    sim.tool(&["tpm2_changeauth", "-c", "o", "ownerpw"]);
    let obj = seal_under(&sim, "sec", &["tpm2_policysecret", "-c", "o", "ownerpw"]);

    // Bound to nonceTPM with a 1 s expiration: once the second is over, the session is spent.
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
    let started = Instant::now();
    sim.tool(&[
        "tpm2_policysecret",
        "-S",
        "p.ctx",
        "-c",
        "o",
        "-x",
        "-t",
        "1",
        "ownerpw",
    ]);
    // The expiry counts from the session start, which was before `started`.
    let expiry = started + Duration::from_millis(1_050);
    std::thread::sleep(expiry.saturating_duration_since(Instant::now()));
    fails_with(&unseal(&sim, &obj), "0x9a3");

    // A negative expiration returns a timeout and a ticket; both the session and, through
    // tpm2_policyticket, a later session can use them.
    satisfy(
        &sim,
        &[&[
            "tpm2_policysecret",
            "-c",
            "o",
            "-x",
            "-t",
            "-600",
            "--ticket",
            "tk.bin",
            "--timeout",
            "to.bin",
            "ownerpw",
        ]],
    );
    unseals(&sim, &obj);
    assert_eq!(sim.read("to.bin").len(), 8, "TPM-specific 8-byte timeout");
    sim.write("owner.name", &0x4000_0001u32.to_be_bytes());
    satisfy(
        &sim,
        &[&[
            "tpm2_policyticket",
            "-n",
            "owner.name",
            "--ticket",
            "tk.bin",
            "--timeout",
            "to.bin",
        ]],
    );
    unseals(&sim, &obj);
    // A ticket for another entity's name does not verify.
    sim.write("endorsement.name", &0x4000_000Bu32.to_be_bytes());
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
    let out = sim.try_tool(&[
        "tpm2_policyticket",
        "-S",
        "p.ctx",
        "-n",
        "endorsement.name",
        "--ticket",
        "tk.bin",
        "--timeout",
        "to.bin",
    ]);
    fails_with(&out, "0x5e0");
    sim.flush();

    // The wrong owner password: the hierarchy is not DA-protected, so TPM_RC_BAD_AUTH.
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
    let out = sim.try_tool(&["tpm2_policysecret", "-S", "p.ctx", "-c", "o", "wrongpw"]);
    fails_with(&out, "0x9a2");
    sim.flush();
}

#[test]
fn policysigned_with_openssl_keys() {
    let sim = started("pol-signed");
    let d = &sim.dir;
    openssl_rsa_key(d, "rsa.pem", "rsa.pub.pem");
    host(d, &["openssl", "genrsa", "-out", "rsa2.pem", "2048"]);
    openssl_ecc_key(d, "ec.pem");
    host(
        d,
        &[
            "openssl",
            "ec",
            "-in",
            "ec.pem",
            "-pubout",
            "-out",
            "ec.pub.pem",
        ],
    );
    // aHash input without nonce, cpHash or policyRef: the 4-byte expiration 0 (man page).
    sim.write("expiry0", &[0, 0, 0, 0]);
    for (key, sig) in [
        ("rsa.pem", "rsa.sig"),
        ("rsa2.pem", "rsa2.sig"),
        ("ec.pem", "ec.sig"),
    ] {
        let out = host(
            d,
            &[
                "openssl", "dgst", "-sha256", "-sign", key, "-out", sig, "expiry0",
            ],
        );
        assert!(out.status.success(), "openssl sign with {key}");
    }
    for (alg, pem, ctx) in [
        ("rsa", "rsa.pub.pem", "rsa.ctx"),
        ("ecc", "ec.pub.pem", "ec.ctx"),
    ] {
        sim.tool(&[
            "tpm2_loadexternal",
            "-C",
            "o",
            "-G",
            alg,
            "-u",
            pem,
            "-c",
            ctx,
        ]);
        sim.flush();
    }
    for (fmt, sig, ctx) in [
        ("rsassa", "rsa.sig", "rsa.ctx"),
        ("ecdsa", "ec.sig", "ec.ctx"),
    ] {
        let signed = [
            "tpm2_policysigned",
            "-g",
            "sha256",
            "-s",
            sig,
            "-f",
            fmt,
            "-c",
            ctx,
        ];
        let obj = seal_under(&sim, fmt, &signed);
        satisfy(&sim, &[&signed]);
        unseals(&sim, &obj);
    }
    // A signature by another key: TPM_RC_SIGNATURE on parameter 5; an ECDSA signature
    // presented for the RSA key: TPM_RC_SCHEME.
    for (fmt, sig, code) in [
        ("rsassa", "rsa2.sig", "0x5db"),
        ("ecdsa", "ec.sig", "0x5d2"),
    ] {
        sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
        let out = sim.try_tool(&[
            "tpm2_policysigned",
            "-S",
            "p.ctx",
            "-g",
            "sha256",
            "-s",
            sig,
            "-f",
            fmt,
            "-c",
            "rsa.ctx",
        ]);
        fails_with(&out, code);
        sim.flush();
    }
}

#[test]
fn policylocality_and_policynv() {
    let sim = started("pol-loc-nv");
    // The mssim TCTI sends its commands at locality 0.
    let zero = seal_under(&sim, "loc0", &["tpm2_policylocality", "zero"]);
    satisfy(&sim, &[&["tpm2_policylocality", "zero"]]);
    unseals(&sim, &zero);
    let three = seal_under(&sim, "loc3", &["tpm2_policylocality", "three"]);
    satisfy(&sim, &[&["tpm2_policylocality", "three"]]);
    fails_with(&unseal(&sim, &three), "0x907");

    sim.tool(&[
        "tpm2_nvdefine",
        "-C",
        "o",
        "-s",
        "8",
        "-a",
        "ownerread|ownerwrite",
        "0x1500010",
    ]);
    sim.write("nine", &9u64.to_be_bytes());
    sim.write("eight", &8u64.to_be_bytes());
    sim.tool(&["tpm2_nvwrite", "-C", "o", "-i", "nine", "0x1500010"]);
    let policynv = ["tpm2_policynv", "-C", "o", "-i", "nine", "0x1500010", "eq"];
    let obj = seal_under(&sim, "nv", &policynv);
    satisfy(&sim, &[&policynv]);
    unseals(&sim, &obj);
    // Once the index holds another value the assertion itself fails (TPM_RC_POLICY).
    sim.tool(&["tpm2_nvwrite", "-C", "o", "-i", "eight", "0x1500010"]);
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
    let mut args = policynv.to_vec();
    args.extend_from_slice(&["-S", "p.ctx"]);
    fails_with(&sim.try_tool(&args), "0x126");
    sim.flush();
    // Unsigned "less than 9" now holds.
    let lt = ["tpm2_policynv", "-C", "o", "-i", "nine", "0x1500010", "ult"];
    let mut args = lt.to_vec();
    args.extend_from_slice(&["-S", "p.ctx"]);
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
    sim.tool(&args);
    sim.flush();
}

#[test]
fn policycphash_through_policyauthorize() {
    let sim = started("pol-cphash");
    let d = &sim.dir;
    openssl_rsa_key(d, "rsa.pem", "rsa.pub.pem");
    sim.tool(&[
        "tpm2_loadexternal",
        "-C",
        "o",
        "-G",
        "rsa",
        "-u",
        "rsa.pub.pem",
        "-c",
        "rsa.ctx",
        "-n",
        "rsa.name",
    ]);
    sim.flush();
    // The object's policy names the approving key; the key approves "PolicyCpHash(X)".
    let obj = seal_under(&sim, "authz", &["tpm2_policyauthorize", "-n", "rsa.name"]);
    // cpHash of unsealing this object, and of unsealing the primary instead (not executed).
    sim.tool(&["tpm2_unseal", "-c", &obj, "--cphash", "cp.bin"]);
    sim.tool(&["tpm2_unseal", "-c", "prim.ctx", "--cphash", "other.bin"]);
    sim.flush();
    for (cp, works) in [("cp.bin", true), ("other.bin", false)] {
        sim.tool(&["tpm2_startauthsession", "-S", "trial.ctx"]);
        sim.tool(&[
            "tpm2_policycphash",
            "-S",
            "trial.ctx",
            "-L",
            "cp.pol",
            "--cphash-input",
            cp,
        ]);
        sim.tool(&["tpm2_flushcontext", "trial.ctx"]);
        let out = host(
            d,
            &[
                "openssl", "dgst", "-sha256", "-sign", "rsa.pem", "-out", "cp.sig", "cp.pol",
            ],
        );
        assert!(out.status.success());
        sim.tool(&[
            "tpm2_verifysignature",
            "-c",
            "rsa.ctx",
            "-g",
            "sha256",
            "-m",
            "cp.pol",
            "-s",
            "cp.sig",
            "-f",
            "rsassa",
            "-t",
            "cp.tkt",
        ]);
        sim.flush();
        satisfy(
            &sim,
            &[
                &["tpm2_policycphash", "--cphash-input", cp],
                &[
                    "tpm2_policyauthorize",
                    "-i",
                    "cp.pol",
                    "-n",
                    "rsa.name",
                    "-t",
                    "cp.tkt",
                ],
            ],
        );
        if works {
            unseals(&sim, &obj);
        } else {
            // The session is limited to another command: TPM_RC_POLICY_FAIL for session 1.
            fails_with(&unseal(&sim, &obj), "0x99d");
        }
    }
}

#[test]
fn nv_changeauth_globallock_and_certifications() {
    let sim = started("pol-nv-attest");
    // NV_ChangeAuth needs the ADMIN role: a policy session with PolicyCommandCode.
    sim.tool(&["tpm2_startauthsession", "-S", "trial.ctx"]);
    sim.tool(&[
        "tpm2_policycommandcode",
        "-S",
        "trial.ctx",
        "-L",
        "ca.pol",
        "TPM2_CC_NV_ChangeAuth",
    ]);
    sim.tool(&["tpm2_flushcontext", "trial.ctx"]);
    sim.tool(&[
        "tpm2_nvdefine",
        "-C",
        "o",
        "-s",
        "8",
        "-a",
        "authread|authwrite",
        "-L",
        "ca.pol",
        "-p",
        "oldpw",
        "0x1500021",
    ]);
    sim.write("d8", b"12345678");
    sim.tool(&["tpm2_nvwrite", "-P", "oldpw", "-i", "d8", "0x1500021"]);
    // With the old password instead of the policy: TPM_RC_AUTH_TYPE.
    let out = sim.try_tool(&["tpm2_changeauth", "-p", "oldpw", "-c", "0x1500021", "newpw"]);
    fails_with(&out, "0x124");
    satisfy(
        &sim,
        &[&["tpm2_policycommandcode", "TPM2_CC_NV_ChangeAuth"]],
    );
    sim.tool(&[
        "tpm2_changeauth",
        "-p",
        "session:p.ctx",
        "-c",
        "0x1500021",
        "newpw",
    ]);
    sim.flush();
    let out = sim.stdout(&["tpm2_nvread", "-P", "newpw", "-s", "8", "0x1500021"]);
    assert_eq!(out, "12345678");
    fails_with(
        &sim.try_tool(&["tpm2_nvread", "-P", "oldpw", "-s", "8", "0x1500021"]),
        "0x98e",
    );

    // NV_GlobalWriteLock locks the globallock indices only (until the next TPM Reset or
    // Restart, which the engine tests cover: tpm2-tools cannot power-cycle).
    sim.tool(&[
        "tpm2_nvdefine",
        "-C",
        "o",
        "-s",
        "8",
        "-a",
        "ownerread|ownerwrite|globallock",
        "0x1500022",
    ]);
    sim.tool(&["tpm2_nvwritelock", "-C", "o", "--global"]);
    fails_with(
        &sim.try_tool(&["tpm2_nvwrite", "-C", "o", "-i", "d8", "0x1500022"]),
        "0x148",
    );
    sim.tool(&["tpm2_nvwrite", "-P", "newpw", "-i", "d8", "0x1500021"]);

    // NV_Certify and CertifyCreation with an ECC key whose public part OpenSSL checks.
    let d = &sim.dir;
    sim.tool(&[
        "tpm2_create",
        "-Q",
        "-C",
        "prim.ctx",
        "-G",
        "ecc",
        "-u",
        "k.pub",
        "-r",
        "k.priv",
        "--creation-hash",
        "ch.bin",
        "--creation-ticket",
        "ct.bin",
    ]);
    sim.flush();
    sim.tool(&[
        "tpm2_load",
        "-Q",
        "-C",
        "prim.ctx",
        "-u",
        "k.pub",
        "-r",
        "k.priv",
        "-c",
        "k.ctx",
    ]);
    sim.flush();
    sim.public_pem("k");
    let verify = |att: &str, sig: &str| {
        let out = openssl_verify(d, "k.pem", sig, att);
        assert!(
            out.status.success(),
            "openssl rejects {sig}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sim.tool(&[
        "tpm2_nvcertify",
        "-C",
        "k.ctx",
        "-P",
        "",
        "-c",
        "0x1500021",
        "-p",
        "newpw",
        "-g",
        "sha256",
        "-f",
        "plain",
        "-s",
        "ecdsa",
        "-o",
        "nv.sig",
        "--attestation",
        "nv.att",
        "--size",
        "4",
        "--offset",
        "2",
        "0x1500021",
    ]);
    sim.flush();
    verify("nv.att", "nv.sig");
    // TPMS_NV_CERTIFY_INFO ends with offset 2 and the 4 bytes certified.
    assert!(
        sim.read("nv.att")
            .ends_with(&[0, 2, 0, 4, b'3', b'4', b'5', b'6'])
    );
    sim.tool(&[
        "tpm2_certifycreation",
        "-C",
        "k.ctx",
        "-c",
        "k.ctx",
        "-d",
        "ch.bin",
        "-t",
        "ct.bin",
        "-g",
        "sha256",
        "-f",
        "plain",
        "-s",
        "ecdsa",
        "-o",
        "cc.sig",
        "--attestation",
        "cc.att",
    ]);
    sim.flush();
    verify("cc.att", "cc.sig");
    // Another object's creation hash does not match the ticket: TPM_RC_TICKET.
    let mut hash = sim.read("ch.bin");
    *hash.last_mut().unwrap() ^= 1;
    sim.write("other.bin", &hash);
    let out = sim.try_tool(&[
        "tpm2_certifycreation",
        "-C",
        "k.ctx",
        "-c",
        "k.ctx",
        "-d",
        "other.bin",
        "-t",
        "ct.bin",
        "-g",
        "sha256",
        "-f",
        "plain",
        "-s",
        "ecdsa",
        "-o",
        "x.sig",
        "--attestation",
        "x.att",
    ]);
    fails_with(&out, "0x4e0");
    sim.flush();
}
