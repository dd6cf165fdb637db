//! Stock tpm2-tools against `vtpm-sim` over the mssim TCTI: start-up, random, PCRs, keys,
//! signatures (checked by OpenSSL too), quotes (checked by tpm2_checkquote), sealing, NV and
//! persistence across a restart.

mod common;
use common::{Sim, Transport, openssl_verify, scratch};

fn startup_random_and_truthful_capabilities(t: Transport) {
    let sim = Sim::started_on(t, "startup");
    let hex = sim.stdout(&["tpm2_getrandom", "--hex", "16"]);
    assert_eq!(hex.trim().len(), 32, "{hex}");
    let fixed = sim.stdout(&["tpm2_getcap", "properties-fixed"]);
    assert!(
        fixed.contains("TPM2_PT_PCR_COUNT") && fixed.contains("raw: 0x18"),
        "{fixed}"
    );
    let algs = sim.stdout(&["tpm2_getcap", "algorithms"]);
    for a in ["rsa:", "ecc:", "sha256:", "aes:", "cfb:"] {
        assert!(algs.contains(a), "{a} missing from {algs}");
    }
}

fn pcr_extend_and_read_match_software_hash(t: Transport) {
    let sim = Sim::started_on(t, "pcr");
    let d = "01".repeat(32);
    sim.tool(&["tpm2_pcrextend", &format!("16:sha256={d}")]);
    let out = sim.stdout(&["tpm2_pcrread", "sha256:16,17+sha1:0"]);
    // PCR16 = SHA256(0^32 || 01^32), computed here independently with openssl.
    let mut input = vec![0u8; 32];
    input.extend(std::iter::repeat_n(1u8, 32));
    sim.write("ext.bin", &input);
    let dg = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-r", "ext.bin"])
        .current_dir(&sim.dir)
        .output()
        .expect("openssl");
    let want = String::from_utf8_lossy(&dg.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_uppercase();
    assert!(
        out.contains(&format!("16: 0x{want}")),
        "PCR16 wrong:\n{out}\nwant {want}"
    );
    assert!(
        out.contains(&format!("17: 0x{}", "F".repeat(64))),
        "PCR17 starts as all ones:\n{out}"
    );
    assert!(
        out.contains(&format!("0 : 0x{}", "0".repeat(40))),
        "sha1 PCR0:\n{out}"
    );
    // PCR 17 cannot be extended from locality 0.
    let bad = sim.try_tool(&["tpm2_pcrextend", &format!("17:sha256={d}")]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("0x907"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

fn rsa_and_ecc_keys_sign_and_verify_also_with_openssl(t: Transport) {
    let sim = Sim::started_on(t, "sign");
    sim.primary("o", "ecc", "prim.ctx");
    sim.write("msg", b"hello warden");
    for (alg, scheme) in [("rsa2048", "rsassa"), ("ecc256", "ecdsa")] {
        sim.create_loaded("prim.ctx", alg, "k");
        sim.tool(&[
            "tpm2_sign",
            "-c",
            "k.ctx",
            "-g",
            "sha256",
            "-s",
            scheme,
            "-o",
            "sig",
            "msg",
        ]);
        sim.flush();
        sim.tool(&[
            "tpm2_verifysignature",
            "-c",
            "k.ctx",
            "-g",
            "sha256",
            "-m",
            "msg",
            "-s",
            "sig",
        ]);
        sim.flush();
        sim.public_pem("k");
        // "plain": raw RSA signature, or DER for ECDSA: what openssl expects.
        sim.tool(&[
            "tpm2_sign",
            "-c",
            "k.ctx",
            "-g",
            "sha256",
            "-s",
            scheme,
            "-f",
            "plain",
            "-o",
            "sig.raw",
            "msg",
        ]);
        sim.flush();
        let v = openssl_verify(&sim.dir, "k.pem", "sig.raw", "msg");
        assert!(
            v.status.success(),
            "openssl rejects {alg} signature: {}",
            String::from_utf8_lossy(&v.stdout)
        );
        // A modified message must not verify in the TPM.
        sim.write("msg2", b"hello warden!");
        let bad = sim.try_tool(&[
            "tpm2_verifysignature",
            "-c",
            "k.ctx",
            "-g",
            "sha256",
            "-m",
            "msg2",
            "-s",
            "sig",
        ]);
        assert!(!bad.status.success(), "{alg}: tampered message verified");
        sim.flush();
    }
}

fn quote_checks_with_tpm2_checkquote(t: Transport) {
    let sim = Sim::started_on(t, "quote");
    sim.tool(&["tpm2_pcrextend", &format!("16:sha256={}", "ab".repeat(32))]);
    for alg in ["ecc256:ecdsa-sha256:null", "rsa2048:rsassa-sha256:null"] {
        sim.tool(&[
            "tpm2_createprimary",
            "-C",
            "e",
            "-c",
            "ak.ctx",
            "-G",
            alg,
            "-g",
            "sha256",
            "-a",
            "restricted|sign|fixedtpm|fixedparent|sensitivedataorigin|userwithauth",
        ]);
        sim.flush();
        sim.public_pem("ak");
        sim.tool(&[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,16",
            "-q",
            "c0ffee",
            "-m",
            "q.msg",
            "-s",
            "q.sig",
            "-o",
            "q.pcrs",
            "-g",
            "sha256",
        ]);
        sim.flush();
        sim.tool(&[
            "tpm2_checkquote",
            "-u",
            "ak.pem",
            "-m",
            "q.msg",
            "-s",
            "q.sig",
            "-f",
            "q.pcrs",
            "-g",
            "sha256",
            "-q",
            "c0ffee",
        ]);
        // The wrong nonce is rejected.
        let bad = sim.try_tool(&[
            "tpm2_checkquote",
            "-u",
            "ak.pem",
            "-m",
            "q.msg",
            "-s",
            "q.sig",
            "-f",
            "q.pcrs",
            "-g",
            "sha256",
            "-q",
            "c0ffef",
        ]);
        assert!(
            !bad.status.success(),
            "{alg}: checkquote accepted a wrong nonce"
        );
    }
}

fn seal_and_unseal(t: Transport) {
    let sim = Sim::started_on(t, "seal");
    sim.tool(&["tpm2_createprimary", "-C", "o", "-c", "prim.ctx"]);
    sim.flush();
    sim.write("secret", b"the eagle has landed");
    sim.tool(&[
        "tpm2_create",
        "-C",
        "prim.ctx",
        "-i",
        "secret",
        "-u",
        "s.pub",
        "-r",
        "s.priv",
        "-p",
        "sealpw",
    ]);
    sim.flush();
    sim.load("prim.ctx", "s");
    let out = sim.tool(&["tpm2_unseal", "-c", "s.ctx", "-p", "sealpw"]);
    assert_eq!(out.stdout, b"the eagle has landed");
    sim.flush();
    let bad = sim.try_tool(&["tpm2_unseal", "-c", "s.ctx", "-p", "wrong"]);
    assert!(!bad.status.success(), "unseal with a wrong password");
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .to_lowercase()
            .contains("0x98e"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

fn nv_define_write_read_counter_and_undefine(t: Transport) {
    let sim = Sim::started_on(t, "nv");
    sim.tool(&[
        "tpm2_nvdefine",
        "0x1500016",
        "-C",
        "o",
        "-s",
        "32",
        "-a",
        "ownerread|ownerwrite",
    ]);
    sim.write("d", b"abc");
    sim.tool(&[
        "tpm2_nvwrite",
        "0x1500016",
        "-C",
        "o",
        "-i",
        "d",
        "--offset",
        "4",
    ]);
    let out = sim.tool(&[
        "tpm2_nvread",
        "0x1500016",
        "-C",
        "o",
        "-s",
        "3",
        "--offset",
        "4",
    ]);
    assert_eq!(out.stdout, b"abc");
    let bad = sim.try_tool(&[
        "tpm2_nvwrite",
        "0x1500016",
        "-C",
        "o",
        "-i",
        "d",
        "--offset",
        "30",
    ]);
    assert!(!bad.status.success(), "write past the end");
    sim.tool(&[
        "tpm2_nvdefine",
        "0x1500017",
        "-C",
        "o",
        "-s",
        "8",
        "-a",
        "ownerread|ownerwrite|nt=counter",
    ]);
    sim.tool(&["tpm2_nvincrement", "0x1500017", "-C", "o"]);
    sim.tool(&["tpm2_nvincrement", "0x1500017", "-C", "o"]);
    let out = sim.tool(&["tpm2_nvread", "0x1500017", "-C", "o", "-s", "8"]);
    assert_eq!(out.stdout, 2u64.to_be_bytes());
    let list = sim.stdout(&["tpm2_nvreadpublic"]);
    assert!(
        list.contains("0x1500016") && list.contains("0x1500017"),
        "{list}"
    );
    sim.tool(&["tpm2_nvundefine", "0x1500016", "-C", "o"]);
    let list = sim.stdout(&["tpm2_getcap", "handles-nv-index"]);
    assert!(
        !list.contains("0x1500016") && list.contains("0x1500017"),
        "{list}"
    );
}

#[test]
fn restart_keeps_nv_persistent_keys_and_ek() {
    let dir = scratch("restart");
    let state = dir.join("state");
    let ek_name;
    {
        let sim = Sim::start(&dir, Some(&state));
        sim.tool(&["tpm2_startup", "-c"]);
        sim.tool(&[
            "tpm2_createek",
            "-c",
            "ek.ctx",
            "-G",
            "rsa",
            "-u",
            "ek1.pub",
        ]);
        sim.flush();
        sim.tool(&["tpm2_createprimary", "-C", "o", "-c", "srk.ctx"]);
        sim.flush();
        sim.tool(&[
            "tpm2_evictcontrol",
            "-C",
            "o",
            "-c",
            "srk.ctx",
            "0x81000001",
        ]);
        sim.flush();
        sim.tool(&[
            "tpm2_nvdefine",
            "0x1500020",
            "-C",
            "o",
            "-s",
            "4",
            "-a",
            "ownerread|ownerwrite",
        ]);
        sim.write("d", b"keep");
        sim.tool(&["tpm2_nvwrite", "0x1500020", "-C", "o", "-i", "d"]);
        ek_name = sim.read("ek1.pub");
    }
    let sim = Sim::start(&dir, Some(&state));
    sim.tool(&["tpm2_startup", "-c"]);
    let out = sim.tool(&["tpm2_nvread", "0x1500020", "-C", "o", "-s", "4"]);
    assert_eq!(out.stdout, b"keep");
    let persistent = sim.stdout(&["tpm2_getcap", "handles-persistent"]);
    assert!(persistent.contains("0x81000001"), "{persistent}");
    sim.tool(&["tpm2_readpublic", "-c", "0x81000001"]);
    // The EK is derived from the endorsement seed, which the state keeps: same public key.
    sim.tool(&[
        "tpm2_createek",
        "-c",
        "ek2.ctx",
        "-G",
        "rsa",
        "-u",
        "ek2.pub",
    ]);
    sim.flush();
    assert_eq!(sim.read("ek2.pub"), ek_name, "EK changed across a restart");
}

#[test]
fn manufacture_stores_ek_certificates_signed_by_the_state_ca() {
    let dir = scratch("manufacture");
    let state = dir.join("state");
    let ca = state.join("vtpm-ca.pem");
    let mut first = Vec::new();
    for round in 0..2 {
        // The second start finds the certificates in NV and keeps them.
        let sim = Sim::start_with(&dir, Some(&state), &["--manufacture"]);
        sim.tool(&["tpm2_startup", "-c"]);
        for (alg, index) in [("ecc", "0x1c0000a"), ("rsa", "0x1c00002")] {
            let der = format!("{alg}.der");
            sim.tool(&["tpm2_nvread", index, "-C", "o", "-o", &der]);
            let pem = format!("{alg}-{round}.pem");
            let conv = common::host(
                &dir,
                &[
                    "openssl", "x509", "-inform", "der", "-in", &der, "-out", &pem,
                ],
            );
            assert!(
                conv.status.success(),
                "{}",
                String::from_utf8_lossy(&conv.stderr)
            );
            let verify = common::host(
                &dir,
                &["openssl", "verify", "-CAfile", ca.to_str().unwrap(), &pem],
            );
            assert!(
                verify.status.success(),
                "{alg} EK certificate does not verify: {}",
                String::from_utf8_lossy(&verify.stdout)
            );
            // The certified key is the EK that tpm2_createek derives.
            let certpub =
                common::host(&dir, &["openssl", "x509", "-in", &pem, "-noout", "-pubkey"]).stdout;
            let ekpem = format!("ek-{alg}.pem");
            sim.tool(&[
                "tpm2_createek",
                "-G",
                alg,
                "-c",
                "ek.ctx",
                "-u",
                &ekpem,
                "-f",
                "pem",
            ]);
            sim.flush();
            assert_eq!(
                certpub,
                sim.read(&ekpem),
                "{alg}: certificate is for another key"
            );
            if round == 0 {
                first.push(sim.read(&der));
            } else {
                assert!(
                    first.contains(&sim.read(&der)),
                    "{alg}: certificate changed on restart"
                );
            }
        }
    }
}

fn restricted_key_signs_only_tpm_hashed_data_with_a_ticket(t: Transport) {
    let sim = Sim::started_on(t, "restricted");
    sim.tool(&[
        "tpm2_createprimary",
        "-C",
        "e",
        "-G",
        "ecc256:ecdsa-sha256:null",
        "-c",
        "ak.ctx",
        "-a",
        "restricted|sign|fixedtpm|fixedparent|sensitivedataorigin|userwithauth",
    ]);
    sim.flush();
    sim.write("m", b"ordinary data");
    sim.tool(&[
        "tpm2_hash",
        "-C",
        "e",
        "-g",
        "sha256",
        "-o",
        "m.dig",
        "-t",
        "m.tkt",
        "m",
    ]);
    sim.tool(&[
        "tpm2_sign",
        "-c",
        "ak.ctx",
        "-g",
        "sha256",
        "-d",
        "-t",
        "m.tkt",
        "-o",
        "s",
        "m.dig",
    ]);
    sim.flush();
    // Data that starts with TPM_GENERATED_VALUE gets no ticket, so a restricted key refuses it
    // (otherwise it could forge quotes): TPM_RC_TICKET for parameter 3.
    let mut forged = vec![0xff, b'T', b'C', b'G'];
    forged.extend_from_slice(b"fake attestation");
    sim.write("g", &forged);
    sim.tool(&[
        "tpm2_hash",
        "-C",
        "e",
        "-g",
        "sha256",
        "-o",
        "g.dig",
        "-t",
        "g.tkt",
        "g",
    ]);
    let out = sim.try_tool(&[
        "tpm2_sign",
        "-c",
        "ak.ctx",
        "-g",
        "sha256",
        "-d",
        "-t",
        "g.tkt",
        "-o",
        "s2",
        "g.dig",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("0x3e0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

on_both_transports!(
    startup_random_and_truthful_capabilities,
    pcr_extend_and_read_match_software_hash,
    rsa_and_ecc_keys_sign_and_verify_also_with_openssl,
    quote_checks_with_tpm2_checkquote,
    seal_and_unseal,
    nv_define_write_read_counter_and_undefine,
    restricted_key_signs_only_tpm_hashed_data_with_a_ticket,
);
