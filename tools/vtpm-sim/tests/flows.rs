//! More stock-client flows against `vtpm-sim`: credentials between an EK and an AK, salted
//! and bound HMAC sessions, PCR-policy sealing, certify, HMAC, AES and RSA encryption (with
//! OpenSSL on the other side), hashing, change of authorisation, clear, and a long flow
//! through tpm2-abrmd that needs more objects than the TPM's three slots.

mod common;
use common::{Abrmd, Sim, Transport, host, openssl_rsa_key, openssl_verify};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn make_and_activate_credential_between_ek_and_ak(t: Transport) {
    let sim = Sim::started_on(t, "cred");
    sim.tool(&["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"]);
    sim.flush();
    sim.tool(&[
        "tpm2_createak",
        "-C",
        "ek.ctx",
        "-c",
        "ak.ctx",
        "-G",
        "ecc",
        "-g",
        "sha256",
        "-s",
        "ecdsa",
        "-u",
        "ak.pub",
        "-n",
        "ak.name",
    ]);
    sim.flush();
    let name = hex(&sim.read("ak.name"));
    sim.write("secret", b"0123456789abcdef");
    // Once in software (what a remote verifier does) and once by the TPM itself.
    sim.tool(&[
        "tpm2_makecredential",
        "-T",
        "none",
        "-e",
        "ek.pub",
        "-s",
        "secret",
        "-n",
        &name,
        "-o",
        "blob.sw",
    ]);
    sim.tool(&[
        "tpm2_makecredential",
        "-e",
        "ek.pub",
        "-s",
        "secret",
        "-n",
        &name,
        "-o",
        "blob.tpm",
    ]);
    sim.flush();
    for blob in ["blob.sw", "blob.tpm"] {
        // The EK's policy is PolicySecret(endorsement).
        sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "s.ctx"]);
        sim.tool(&["tpm2_policysecret", "-S", "s.ctx", "-c", "e"]);
        sim.tool(&[
            "tpm2_activatecredential",
            "-c",
            "ak.ctx",
            "-C",
            "ek.ctx",
            "-i",
            blob,
            "-o",
            "out",
            "-P",
            "session:s.ctx",
        ]);
        sim.tool(&["tpm2_flushcontext", "s.ctx"]);
        sim.flush();
        assert_eq!(sim.read("out"), b"0123456789abcdef", "{blob}");
    }
    // A credential bound to another name does not open.
    let other = format!("000b{}", "11".repeat(32));
    sim.tool(&[
        "tpm2_makecredential",
        "-T",
        "none",
        "-e",
        "ek.pub",
        "-s",
        "secret",
        "-n",
        &other,
        "-o",
        "blob.other",
    ]);
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "s.ctx"]);
    sim.tool(&["tpm2_policysecret", "-S", "s.ctx", "-c", "e"]);
    let bad = sim.try_tool(&[
        "tpm2_activatecredential",
        "-c",
        "ak.ctx",
        "-C",
        "ek.ctx",
        "-i",
        "blob.other",
        "-o",
        "out2",
        "-P",
        "session:s.ctx",
    ]);
    assert!(
        !bad.status.success(),
        "credential for another name was released"
    );
}

fn salted_bound_hmac_session_with_parameter_encryption(t: Transport) {
    let sim = Sim::started_on(t, "hmacsess");
    sim.primary("o", "rsa", "prim.ctx");
    // Salted with the primary, bound to the owner hierarchy; getrandom's output is encrypted.
    sim.tool(&[
        "tpm2_startauthsession",
        "--hmac-session",
        "-S",
        "s.ctx",
        "--tpmkey-context",
        "prim.ctx",
        "--bind-context",
        "o",
    ]);
    sim.tool(&["tpm2_sessionconfig", "s.ctx", "--enable-encrypt"]);
    let out = sim.tool(&["tpm2_getrandom", "-S", "s.ctx", "--hex", "16"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 32);
    sim.tool(&[
        "tpm2_nvdefine",
        "0x1500030",
        "-C",
        "o",
        "-s",
        "8",
        "-a",
        "ownerread|ownerwrite",
        "-P",
        "session:s.ctx",
    ]);
    sim.tool(&["tpm2_flushcontext", "s.ctx"]);
    sim.flush();
    let pubinfo = sim.stdout(&["tpm2_nvreadpublic", "0x1500030"]);
    assert!(pubinfo.contains("size: 8"), "{pubinfo}");
}

fn seal_under_a_pcr_policy_and_fail_after_extend(t: Transport) {
    let sim = Sim::started_on(t, "pcrseal");
    sim.tool(&["tpm2_createprimary", "-C", "o", "-c", "prim.ctx"]);
    sim.flush();
    sim.tool(&["tpm2_startauthsession", "-S", "t.ctx"]);
    sim.tool(&[
        "tpm2_policypcr",
        "-S",
        "t.ctx",
        "-l",
        "sha256:16",
        "-L",
        "pcr.pol",
    ]);
    sim.tool(&["tpm2_flushcontext", "t.ctx"]);
    sim.write("secret", b"pcr bound");
    sim.tool(&[
        "tpm2_create",
        "-C",
        "prim.ctx",
        "-L",
        "pcr.pol",
        "-i",
        "secret",
        "-u",
        "s.pub",
        "-r",
        "s.priv",
        "-a",
        "fixedtpm|fixedparent",
    ]);
    sim.flush();
    sim.load("prim.ctx", "s");
    let unseal = |sim: &Sim| {
        sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
        sim.tool(&["tpm2_policypcr", "-S", "p.ctx", "-l", "sha256:16"]);
        let out = sim.try_tool(&["tpm2_unseal", "-p", "session:p.ctx", "-c", "s.ctx"]);
        sim.tool(&["tpm2_flushcontext", "p.ctx"]);
        sim.flush();
        out
    };
    let out = unseal(&sim);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"pcr bound");
    sim.tool(&["tpm2_pcrextend", &format!("16:sha256={}", "11".repeat(32))]);
    let out = unseal(&sim);
    assert!(!out.status.success(), "unsealed after the PCR changed");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("0x99d"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn certify_hmac_aes_rsa_and_hash(t: Transport) {
    let sim = Sim::started_on(t, "prims");
    sim.primary("o", "ecc", "prim.ctx");
    let load = |alg: &str, attrs: Option<&str>, name: &str| {
        let (pu, pr) = (format!("{name}.pub"), format!("{name}.priv"));
        let mut args = vec![
            "tpm2_create",
            "-C",
            "prim.ctx",
            "-G",
            alg,
            "-u",
            &pu,
            "-r",
            &pr,
        ];
        if let Some(a) = attrs {
            args.extend(["-a", a]);
        }
        sim.tool(&args);
        sim.flush();
        sim.load("prim.ctx", name);
    };
    // Certify the primary with an ECC signing key; check the signature with OpenSSL.
    load("ecc", None, "signer");
    sim.tool(&[
        "tpm2_certify",
        "-c",
        "prim.ctx",
        "-C",
        "signer.ctx",
        "-g",
        "sha256",
        "-o",
        "att",
        "-s",
        "att.sig",
        "-f",
        "plain",
    ]);
    sim.flush();
    sim.public_pem("signer");
    let v = openssl_verify(&sim.dir, "signer.pem", "att.sig", "att");
    assert!(
        v.status.success(),
        "certify signature: {}",
        String::from_utf8_lossy(&v.stdout)
    );
    // HMAC: deterministic per key and message.
    load("hmac", None, "mac");
    sim.write("m1", b"message one");
    sim.write("m2", b"message two");
    let h1 = sim.stdout(&["tpm2_hmac", "-c", "mac.ctx", "--hex", "m1"]);
    sim.flush();
    let h1b = sim.stdout(&["tpm2_hmac", "-c", "mac.ctx", "--hex", "m1"]);
    sim.flush();
    let h2 = sim.stdout(&["tpm2_hmac", "-c", "mac.ctx", "--hex", "m2"]);
    sim.flush();
    assert_eq!(h1.trim().len(), 64);
    assert_eq!(h1, h1b);
    assert_ne!(h1, h2);
    // AES-128-CFB round trip.
    load("aes128cfb", None, "aes");
    sim.write("pt", b"a plaintext that spans more than one AES block");
    sim.tool(&["tpm2_encryptdecrypt", "-c", "aes.ctx", "-o", "ct", "pt"]);
    sim.flush();
    sim.tool(&[
        "tpm2_encryptdecrypt",
        "-d",
        "-c",
        "aes.ctx",
        "-o",
        "pt2",
        "ct",
    ]);
    sim.flush();
    assert_ne!(sim.read("ct"), sim.read("pt"));
    assert_eq!(sim.read("pt2"), sim.read("pt"));
    // RSA-OAEP: OpenSSL encrypts to the exported key, the TPM decrypts; and a TPM round trip.
    load(
        "rsa2048",
        Some("decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth"),
        "rsa",
    );
    sim.public_pem("rsa");
    sim.write("rm", b"rsa message");
    let e = host(
        &sim.dir,
        &[
            "openssl",
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "rsa.pem",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-in",
            "rm",
            "-out",
            "rct.ossl",
        ],
    );
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    sim.tool(&[
        "tpm2_rsadecrypt",
        "-c",
        "rsa.ctx",
        "-s",
        "oaep",
        "-o",
        "rpt.ossl",
        "rct.ossl",
    ]);
    sim.flush();
    assert_eq!(sim.read("rpt.ossl"), b"rsa message");
    sim.tool(&[
        "tpm2_rsaencrypt",
        "-c",
        "rsa.ctx",
        "-s",
        "oaep",
        "-o",
        "rct",
        "rm",
    ]);
    sim.flush();
    sim.tool(&[
        "tpm2_rsadecrypt",
        "-c",
        "rsa.ctx",
        "-s",
        "oaep",
        "-o",
        "rpt",
        "rct",
    ]);
    sim.flush();
    assert_eq!(sim.read("rpt"), b"rsa message");
    // Hash: one-shot (small) and a hash sequence (large), against sha256sum.
    sim.write("small", b"abc");
    sim.write("big", &vec![0x5a; 5000]);
    for f in ["small", "big"] {
        let tpm = sim.stdout(&["tpm2_hash", "-g", "sha256", "--hex", f]);
        let sw = String::from_utf8_lossy(&host(&sim.dir, &["sha256sum", f]).stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(tpm.trim(), sw, "{f}");
    }
}

fn change_auth_evict_and_clear(t: Transport) {
    let sim = Sim::started_on(t, "clear");
    sim.tool(&["tpm2_changeauth", "-c", "o", "ownerpw"]);
    let bad = sim.try_tool(&["tpm2_createprimary", "-C", "o", "-c", "p.ctx"]);
    assert!(!bad.status.success(), "owner auth not enforced");
    sim.tool(&[
        "tpm2_createprimary",
        "-C",
        "o",
        "-P",
        "ownerpw",
        "-c",
        "p.ctx",
    ]);
    sim.flush();
    sim.tool(&["tpm2_readpublic", "-c", "p.ctx", "-o", "srk1.pub"]);
    sim.flush();
    sim.tool(&[
        "tpm2_evictcontrol",
        "-C",
        "o",
        "-P",
        "ownerpw",
        "-c",
        "p.ctx",
        "0x81000005",
    ]);
    sim.flush();
    sim.tool(&[
        "tpm2_createek",
        "-c",
        "ek.ctx",
        "-G",
        "ecc",
        "-u",
        "ek1.pub",
    ]);
    sim.flush();
    sim.tool(&["tpm2_clear", "-c", "l"]);
    let persistent = sim.stdout(&["tpm2_getcap", "handles-persistent"]);
    assert!(
        !persistent.contains("0x81000005"),
        "clear kept an owner key: {persistent}"
    );
    // Owner auth is gone, the storage seed changed (new SRK), the endorsement seed did not.
    sim.tool(&["tpm2_createprimary", "-C", "o", "-c", "p2.ctx"]);
    sim.flush();
    sim.tool(&["tpm2_readpublic", "-c", "p2.ctx", "-o", "srk2.pub"]);
    sim.flush();
    assert_ne!(sim.read("srk1.pub"), sim.read("srk2.pub"));
    sim.tool(&[
        "tpm2_createek",
        "-c",
        "ek2.ctx",
        "-G",
        "ecc",
        "-u",
        "ek2.pub",
    ]);
    sim.flush();
    assert_eq!(sim.read("ek1.pub"), sim.read("ek2.pub"));
    // ClearControl disables Clear.
    sim.tool(&["tpm2_clearcontrol", "-C", "l", "s"]);
    let out = sim.try_tool(&["tpm2_clear", "-c", "l"]);
    assert!(!out.status.success(), "clear while disabled");
}

fn resource_manager_multiplexes_more_objects_than_slots(t: Transport) {
    let sim = Sim::started_on(t, "abrmd");
    let rm = Abrmd::start(&sim);
    rm.tool(&sim, &["tpm2_createprimary", "-C", "o", "-c", "prim.ctx"]);
    // Five loaded keys over time: without ContextSave/ContextLoad and FlushContext
    // this would exhaust the three transient slots.
    sim.write("msg", b"multiplexed");
    for i in 0..5 {
        let (pu, pr, cx) = (
            format!("k{i}.pub"),
            format!("k{i}.priv"),
            format!("k{i}.ctx"),
        );
        rm.tool(
            &sim,
            &[
                "tpm2_create",
                "-C",
                "prim.ctx",
                "-G",
                "ecc",
                "-u",
                &pu,
                "-r",
                &pr,
            ],
        );
        rm.tool(
            &sim,
            &[
                "tpm2_load",
                "-C",
                "prim.ctx",
                "-u",
                &pu,
                "-r",
                &pr,
                "-c",
                &cx,
            ],
        );
    }
    for i in 0..5 {
        let cx = format!("k{i}.ctx");
        rm.tool(
            &sim,
            &["tpm2_sign", "-c", &cx, "-g", "sha256", "-o", "sig", "msg"],
        );
        rm.tool(
            &sim,
            &[
                "tpm2_verifysignature",
                "-c",
                &cx,
                "-g",
                "sha256",
                "-m",
                "msg",
                "-s",
                "sig",
            ],
        );
    }
    // Policy sessions are saved and reloaded by the resource manager between commands.
    rm.tool(
        &sim,
        &["tpm2_startauthsession", "--policy-session", "-S", "s.ctx"],
    );
    rm.tool(
        &sim,
        &["tpm2_policysecret", "-S", "s.ctx", "-c", "e", "-L", "pol"],
    );
    rm.tool(&sim, &["tpm2_flushcontext", "s.ctx"]);
    assert_eq!(
        hex(&sim.read("pol")),
        "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"
    );
}

fn error_code(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    err.split("errorcode (0x")
        .nth(1)
        .map(|s| s[..8].to_string())
        .unwrap_or_default()
}

fn nv_extend_bits_and_locks(t: Transport) {
    let sim = Sim::started_on(t, "nvmore");
    sim.tool(&[
        "tpm2_nvdefine",
        "0x1500018",
        "-C",
        "o",
        "-s",
        "32",
        "-a",
        "ownerread|ownerwrite|nt=extend",
    ]);
    sim.write("d", b"abc");
    sim.tool(&["tpm2_nvextend", "0x1500018", "-C", "o", "-i", "d"]);
    let out = sim.tool(&["tpm2_nvread", "0x1500018", "-C", "o"]);
    let mut input = vec![0u8; 32];
    input.extend_from_slice(b"abc");
    sim.write("ext", &input);
    let sw = String::from_utf8_lossy(&host(&sim.dir, &["sha256sum", "ext"]).stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(hex(&out.stdout), sw);
    sim.tool(&[
        "tpm2_nvdefine",
        "0x1500019",
        "-C",
        "o",
        "-s",
        "8",
        "-a",
        "ownerread|ownerwrite|nt=bits",
    ]);
    sim.tool(&["tpm2_nvsetbits", "0x1500019", "-C", "o", "-i", "0x5"]);
    sim.tool(&["tpm2_nvsetbits", "0x1500019", "-C", "o", "-i", "0x10"]);
    assert_eq!(
        sim.tool(&["tpm2_nvread", "0x1500019", "-C", "o"]).stdout,
        0x15u64.to_be_bytes()
    );
    sim.tool(&[
        "tpm2_nvdefine",
        "0x150001a",
        "-C",
        "o",
        "-s",
        "8",
        "-a",
        "ownerread|ownerwrite|writedefine|read_stclear",
    ]);
    sim.tool(&["tpm2_nvwrite", "0x150001a", "-C", "o", "-i", "d"]);
    sim.tool(&["tpm2_nvwritelock", "0x150001a", "-C", "o"]);
    assert_eq!(
        error_code(&sim.try_tool(&["tpm2_nvwrite", "0x150001a", "-C", "o", "-i", "d"])),
        "00000148"
    );
    sim.tool(&["tpm2_nvreadlock", "0x150001a", "-C", "o"]);
    assert_eq!(
        error_code(&sim.try_tool(&["tpm2_nvread", "0x150001a", "-C", "o", "-s", "3"])),
        "00000148"
    );
}

fn object_change_auth_ecdh_and_ecc_salted_session(t: Transport) {
    let sim = Sim::started_on(t, "objmore");
    sim.primary("o", "ecc", "p.ctx");
    sim.tool(&[
        "tpm2_create",
        "-C",
        "p.ctx",
        "-u",
        "k.pub",
        "-r",
        "k.priv",
        "-p",
        "old",
    ]);
    sim.flush();
    sim.load("p.ctx", "k");
    sim.tool(&[
        "tpm2_changeauth",
        "-c",
        "k.ctx",
        "-C",
        "p.ctx",
        "-p",
        "old",
        "-r",
        "k2.priv",
        "new",
    ]);
    sim.flush();
    sim.tool(&[
        "tpm2_load",
        "-C",
        "p.ctx",
        "-u",
        "k.pub",
        "-r",
        "k2.priv",
        "-c",
        "k2.ctx",
    ]);
    sim.flush();
    sim.write("m", b"m");
    sim.tool(&[
        "tpm2_sign",
        "-c",
        "k2.ctx",
        "-p",
        "new",
        "-g",
        "sha256",
        "-o",
        "s",
        "m",
    ]);
    sim.flush();
    assert!(
        !sim.try_tool(&[
            "tpm2_sign",
            "-c",
            "k2.ctx",
            "-p",
            "old",
            "-g",
            "sha256",
            "-o",
            "s",
            "m"
        ])
        .status
        .success()
    );
    sim.flush();
    // ECDH: the Z from ECDH_KeyGen equals ECDH_ZGen on the ephemeral public point.
    sim.tool(&[
        "tpm2_create",
        "-C",
        "p.ctx",
        "-G",
        "ecc",
        "-a",
        "decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth",
        "-u",
        "e.pub",
        "-r",
        "e.priv",
    ]);
    sim.flush();
    sim.load("p.ctx", "e");
    sim.tool(&[
        "tpm2_ecdhkeygen",
        "-u",
        "eph.pub",
        "-o",
        "z1",
        "-c",
        "e.ctx",
    ]);
    sim.flush();
    sim.tool(&["tpm2_ecdhzgen", "-u", "eph.pub", "-o", "z2", "-c", "e.ctx"]);
    sim.flush();
    assert_eq!(sim.read("z1"), sim.read("z2"));
    // A session salted with an ECC key (ECDH + KDFe), used for response encryption.
    sim.tool(&[
        "tpm2_startauthsession",
        "--hmac-session",
        "-S",
        "s.ctx",
        "--tpmkey-context",
        "p.ctx",
    ]);
    sim.tool(&["tpm2_sessionconfig", "s.ctx", "--enable-encrypt"]);
    let out = sim.tool(&["tpm2_getrandom", "-S", "s.ctx", "--hex", "8"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 16);
}

fn hierarchy_control_and_dictionary_attack_lockout(t: Transport) {
    let sim = Sim::started_on(t, "da");
    sim.tool(&["tpm2_hierarchycontrol", "-C", "p", "shEnable", "clear"]);
    assert_eq!(
        error_code(&sim.try_tool(&["tpm2_createprimary", "-C", "o", "-c", "x.ctx"])),
        "00000185"
    );
    sim.tool(&["tpm2_hierarchycontrol", "-C", "p", "shEnable", "set"]);
    sim.tool(&["tpm2_createprimary", "-C", "o", "-c", "p.ctx"]);
    sim.flush();
    sim.tool(&[
        "tpm2_create",
        "-C",
        "p.ctx",
        "-u",
        "k.pub",
        "-r",
        "k.priv",
        "-p",
        "pw",
    ]);
    sim.flush();
    sim.load("p.ctx", "k");
    sim.write("m", b"m");
    // Two failures allowed, long recovery: the third attempt is refused even with the right password.
    sim.tool(&[
        "tpm2_dictionarylockout",
        "-s",
        "-n",
        "2",
        "-t",
        "1000",
        "-l",
        "1000",
    ]);
    let mut codes = Vec::new();
    for pw in ["bad", "bad", "pw"] {
        codes.push(error_code(&sim.try_tool(&[
            "tpm2_sign",
            "-c",
            "k.ctx",
            "-p",
            pw,
            "-g",
            "sha256",
            "-o",
            "s",
            "m",
        ])));
        sim.flush();
    }
    assert_eq!(codes, ["0000098e", "0000098e", "00000921"]);
    sim.tool(&["tpm2_dictionarylockout", "-c"]);
    sim.tool(&[
        "tpm2_sign",
        "-c",
        "k.ctx",
        "-p",
        "pw",
        "-g",
        "sha256",
        "-o",
        "s",
        "m",
    ]);
    sim.flush();
    // A wrong lockout password locks the lockout hierarchy itself.
    assert_eq!(
        error_code(&sim.try_tool(&["tpm2_dictionarylockout", "-c", "-p", "bad"])),
        "0000098e"
    );
    assert_eq!(
        error_code(&sim.try_tool(&["tpm2_dictionarylockout", "-c"])),
        "00000921"
    );
}

fn policy_authorize_with_an_external_signing_key(t: Transport) {
    let sim = Sim::started_on(t, "authorize");
    // The policy authority's key lives outside the TPM; only its public part is loaded.
    openssl_rsa_key(&sim.dir, "authority.pem", "authority.pub.pem");
    sim.tool(&[
        "tpm2_loadexternal",
        "-G",
        "rsa",
        "-C",
        "o",
        "-u",
        "authority.pub.pem",
        "-c",
        "authority.ctx",
        "-n",
        "authority.name",
    ]);
    sim.flush();
    sim.tool(&["tpm2_startauthsession", "-S", "t.ctx"]);
    sim.tool(&[
        "tpm2_policypcr",
        "-S",
        "t.ctx",
        "-l",
        "sha256:0",
        "-L",
        "pcr.policy",
    ]);
    sim.tool(&["tpm2_flushcontext", "t.ctx"]);
    sim.tool(&["tpm2_startauthsession", "-S", "t.ctx"]);
    sim.tool(&[
        "tpm2_policyauthorize",
        "-S",
        "t.ctx",
        "-L",
        "authorized.policy",
        "-n",
        "authority.name",
    ]);
    sim.tool(&["tpm2_flushcontext", "t.ctx"]);
    sim.tool(&["tpm2_createprimary", "-C", "o", "-c", "prim.ctx"]);
    sim.flush();
    sim.write("secret", b"authorized secret");
    sim.tool(&[
        "tpm2_create",
        "-C",
        "prim.ctx",
        "-L",
        "authorized.policy",
        "-i",
        "secret",
        "-u",
        "s.pub",
        "-r",
        "s.priv",
    ]);
    sim.flush();
    sim.load("prim.ctx", "s");
    // The authority signs the PCR policy; the TPM checks the signature and issues a ticket.
    host(
        &sim.dir,
        &[
            "openssl",
            "dgst",
            "-sha256",
            "-sign",
            "authority.pem",
            "-out",
            "pcr.sig",
            "pcr.policy",
        ],
    );
    sim.tool(&[
        "tpm2_verifysignature",
        "-c",
        "authority.ctx",
        "-g",
        "sha256",
        "-m",
        "pcr.policy",
        "-s",
        "pcr.sig",
        "-t",
        "v.tkt",
        "-f",
        "rsassa",
    ]);
    sim.flush();
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
    sim.tool(&["tpm2_policypcr", "-S", "p.ctx", "-l", "sha256:0"]);
    sim.tool(&[
        "tpm2_policyauthorize",
        "-S",
        "p.ctx",
        "-i",
        "pcr.policy",
        "-n",
        "authority.name",
        "-t",
        "v.tkt",
    ]);
    let out = sim.tool(&["tpm2_unseal", "-p", "session:p.ctx", "-c", "s.ctx"]);
    assert_eq!(out.stdout, b"authorized secret");
    sim.tool(&["tpm2_flushcontext", "p.ctx"]);
    sim.flush();
    // An unsigned policy (PCR 1 instead of 0) is not authorised.
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
    sim.tool(&["tpm2_policypcr", "-S", "p.ctx", "-l", "sha256:1"]);
    let bad = sim.try_tool(&[
        "tpm2_policyauthorize",
        "-S",
        "p.ctx",
        "-i",
        "pcr.policy",
        "-n",
        "authority.name",
        "-t",
        "v.tkt",
    ]);
    assert!(
        !bad.status.success(),
        "PolicyAuthorize accepted a policy that was not signed"
    );
}

on_both_transports!(
    make_and_activate_credential_between_ek_and_ak,
    salted_bound_hmac_session_with_parameter_encryption,
    seal_under_a_pcr_policy_and_fail_after_extend,
    certify_hmac_aes_rsa_and_hash,
    change_auth_evict_and_clear,
    resource_manager_multiplexes_more_objects_than_slots,
    nv_extend_bits_and_locks,
    object_change_auth_ecdh_and_ecc_salted_session,
    hierarchy_control_and_dictionary_attack_lockout,
    policy_authorize_with_an_external_signing_key,
);
