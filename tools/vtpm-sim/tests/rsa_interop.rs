//! RSA interoperability against swtpm (libtpms, the reference code), each flow run on both:
//! RSA-PSS signatures with OpenSSL's maximum salt accepted by VerifySignature and PolicySigned,
//! RSA-1024/SHA-512 PSS signing (the salt the modulus leaves room for), and OAEP labels
//! (any bytes; one without its trailing NUL refused with TPM_RC_VALUE).

mod common;
use common::{
    Sim, Swtpm, host, openssl, openssl_rsa_key, read_mssim_response, read_tpm_response, scratch,
    send_command,
};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One of the two TPMs, reached by tpm2-tools through a TCTI and by raw commands.
struct Target {
    name: &'static str,
    dir: PathBuf,
    tcti: String,
    port: u16,
    mssim: bool,
}

impl Target {
    fn try_tool(&self, args: &[&str]) -> Output {
        Command::new(args[0])
            .args(&args[1..])
            .current_dir(&self.dir)
            .env("TPM2TOOLS_TCTI", &self.tcti)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} (`cargo xtask setup`): {e}", args[0]))
    }
    fn tool(&self, args: &[&str]) -> Output {
        let out = self.try_tool(args);
        assert!(
            out.status.success(),
            "{} on {}: {}\n{}",
            args.join(" "),
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    fn flush(&self) {
        self.tool(&["tpm2_flushcontext", "-t"]);
        self.tool(&["tpm2_flushcontext", "-s"]);
    }
    /// A raw TPM command; the response bytes. TPM_RC_RETRY, _YIELDED and _TESTING are
    /// retried, as a TSS does (swtpm answers RETRY to its first RSA decryption).
    fn exec(&self, cmd: &[u8]) -> Vec<u8> {
        for _ in 0..20 {
            let r = self.exec_once(cmd);
            if !matches!(rc(&r), 0x922 | 0x908 | 0x90A) {
                return r;
            }
        }
        self.exec_once(cmd)
    }
    fn exec_once(&self, cmd: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        if self.mssim {
            s.write_all(&send_command(cmd)).unwrap();
            let r = read_mssim_response(&mut s);
            s.write_all(&20u32.to_be_bytes()).unwrap(); // TPM_SESSION_END
            r
        } else {
            s.write_all(cmd).unwrap();
            read_tpm_response(&mut s)
        }
    }
}

/// vtpm-sim and swtpm, both started (tpm2_startup -c), each in its own scratch folder.
fn both(name: &str) -> (Sim, Swtpm, [Target; 2]) {
    let sim = Sim::started(name);
    let sw_dir = scratch(&format!("{name}-swtpm"));
    let sw = Swtpm::start(&sw_dir.join("state"));
    let targets = [
        Target {
            name: "vtpm-sim",
            dir: sim.dir.clone(),
            tcti: sim.tcti(),
            port: sim.port,
            mssim: true,
        },
        Target {
            name: "swtpm",
            dir: sw_dir,
            tcti: sw.tcti(),
            port: sw.port,
            mssim: false,
        },
    ];
    targets[1].tool(&["tpm2_startup", "-c"]);
    (sim, sw, targets)
}

fn copy(files: &[String], from: &Path, to: &Path) {
    for f in files {
        std::fs::copy(from.join(f), to.join(f)).expect("copy test file");
    }
}

/// The response code of a tool's failure, as tpm2-tools prints it ("0x…"), or "ok".
fn outcome(out: &Output) -> String {
    if out.status.success() {
        return "ok".into();
    }
    let err = String::from_utf8_lossy(&out.stderr);
    err.split("ErrorCode (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map_or_else(|| format!("failed: {err}"), str::to_string)
}

#[test]
fn openssl_pss_signatures_with_any_salt_are_accepted_as_by_swtpm() {
    let (_sim, _sw, targets) = both("pss-verify");
    let d = &targets[0].dir;
    openssl_rsa_key(d, "rsa.pem", "rsa.pub.pem");
    std::fs::write(d.join("message"), b"a message signed by OpenSSL").unwrap();
    // PolicySigned's aHash input without nonce, cpHash or policyRef: the expiration 0.
    std::fs::write(d.join("expiry0"), [0u8; 4]).unwrap();
    let mut files: Vec<String> = ["rsa.pub.pem", "message", "expiry0"]
        .map(String::from)
        .into();
    // OpenSSL's maximum salt (emLen - hLen - 2 = 222 bytes), the hash length, and none.
    let salts = ["max", "32", "0"];
    for salt in salts {
        for input in ["message", "expiry0"] {
            let sig = format!("{input}.{salt}.sig");
            openssl(
                d,
                &[
                    "dgst",
                    "-sha256",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    &format!("rsa_pss_saltlen:{salt}"),
                    "-sign",
                    "rsa.pem",
                    "-out",
                    &sig,
                    input,
                ],
            );
            files.push(sig);
        }
    }
    // A signature with one bit flipped.
    let mut bad = std::fs::read(d.join("message.max.sig")).unwrap();
    bad[17] ^= 0x10;
    std::fs::write(d.join("bad.sig"), &bad).unwrap();
    files.push("bad.sig".into());
    copy(&files, d, &targets[1].dir);

    let mut results = Vec::new();
    for t in &targets {
        t.tool(&[
            "tpm2_loadexternal",
            "-C",
            "o",
            "-G",
            "rsa",
            "-u",
            "rsa.pub.pem",
            "-c",
            "rsa.ctx",
        ]);
        t.flush();
        let mut seen = Vec::new();
        for sig in salts
            .iter()
            .map(|s| format!("message.{s}.sig"))
            .chain(["bad.sig".to_string()])
        {
            let out = t.try_tool(&[
                "tpm2_verifysignature",
                "-c",
                "rsa.ctx",
                "-g",
                "sha256",
                "-m",
                "message",
                "-f",
                "rsapss",
                "-s",
                &sig,
                "-t",
                "ticket",
            ]);
            t.flush();
            seen.push((format!("VerifySignature {sig}"), outcome(&out)));
        }
        for salt in salts {
            let sig = format!("expiry0.{salt}.sig");
            t.tool(&["tpm2_startauthsession", "--policy-session", "-S", "p.ctx"]);
            let out = t.try_tool(&[
                "tpm2_policysigned",
                "-S",
                "p.ctx",
                "-g",
                "sha256",
                "-s",
                &sig,
                "-f",
                "rsapss",
                "-c",
                "rsa.ctx",
            ]);
            t.flush();
            seen.push((format!("PolicySigned {sig}"), outcome(&out)));
        }
        results.push(seen);
    }
    assert_eq!(
        results[0], results[1],
        "vtpm-sim (left) and swtpm (right) differ"
    );
    // And what they agree on is: every valid salt accepted, the flipped bit refused.
    for (what, res) in &results[0] {
        assert_eq!(res == "ok", !what.contains("bad"), "{what}: {res}");
    }
}

#[test]
fn rsa1024_sha512_pss_signatures_verify_with_the_reference_salt() {
    let (_sim, _sw, targets) = both("pss-1024");
    for t in &targets {
        std::fs::write(t.dir.join("message"), b"signed with RSA-1024 and SHA-512").unwrap();
        t.tool(&[
            "tpm2_createprimary",
            "-C",
            "o",
            "-G",
            "rsa1024:rsapss-sha512:null",
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
            "-c",
            "k.ctx",
        ]);
        t.tool(&["tpm2_readpublic", "-c", "k.ctx", "-f", "pem", "-o", "k.pem"]);
        let out = t.try_tool(&[
            "tpm2_sign",
            "-c",
            "k.ctx",
            "-g",
            "sha512",
            "-s",
            "rsapss",
            "-f",
            "plain",
            "-o",
            "sig",
            "message",
        ]);
        assert!(
            out.status.success(),
            "{}: RSA-1024/SHA-512 PSS signing: {}",
            t.name,
            String::from_utf8_lossy(&out.stderr)
        );
        t.flush();
        // The reference's salt is min(hLen, emLen - hLen - 2) = 62 bytes here: OpenSSL
        // verifies with exactly that length, and refuses the hash length (64).
        for (salt, ok) in [("62", true), ("auto", true), ("64", false)] {
            let out = host(
                &t.dir,
                &[
                    "openssl",
                    "dgst",
                    "-sha512",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    &format!("rsa_pss_saltlen:{salt}"),
                    "-verify",
                    "k.pem",
                    "-signature",
                    "sig",
                    "message",
                ],
            );
            assert_eq!(out.status.success(), ok, "{}: salt {salt}", t.name);
        }
    }
}

/// A command with one password session (empty password) on `handles`.
fn with_pw(cc: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for h in handles {
        body.extend_from_slice(&h.to_be_bytes());
    }
    body.extend_from_slice(&9u32.to_be_bytes());
    body.extend_from_slice(&[0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
    body.extend_from_slice(params);
    frame(0x8002, cc, &body)
}

fn frame(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut c = tag.to_be_bytes().to_vec();
    c.extend_from_slice(&(10 + body.len() as u32).to_be_bytes());
    c.extend_from_slice(&cc.to_be_bytes());
    c.extend_from_slice(body);
    c
}

fn tpm2b(b: &[u8]) -> Vec<u8> {
    [&(b.len() as u16).to_be_bytes()[..], b].concat()
}

fn rc(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[6], r[7], r[8], r[9]])
}

#[test]
fn oaep_labels_as_swtpm() {
    let (_sim, _sw, targets) = both("oaep-labels");
    // An RSA-2048 OAEP-SHA256 decryption key in the null hierarchy.
    let mut public = vec![0x00, 0x01, 0x00, 0x0B];
    public.extend_from_slice(&0x0002_0072u32.to_be_bytes());
    public.extend_from_slice(&[0, 0, 0x00, 0x10, 0x00, 0x17, 0x00, 0x0B, 0x08, 0x00]);
    public.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut create = vec![0, 4, 0, 0, 0, 0];
    create.extend_from_slice(&tpm2b(&public));
    create.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let labels: [(&str, &[u8]); 5] = [
        ("empty", b""),
        ("text with its NUL", b"label\0"),
        ("not UTF-8, with its NUL", &[0xFF, 0xFE, 0x80, 0x00]),
        ("a NUL inside and at the end", b"a\0b\0"),
        ("no trailing NUL", b"label"),
    ];
    let msg = b"an OAEP-wrapped secret";
    let mut results = Vec::new();
    for t in &targets {
        let r = t.exec(&with_pw(0x131, &[0x4000_0007], &create));
        assert_eq!(rc(&r), 0, "{}: CreatePrimary", t.name);
        let key = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
        let mut seen = Vec::new();
        for (what, label) in labels {
            // RSA_Encrypt, scheme NULL (the key's OAEP-SHA256).
            let mut p = tpm2b(msg);
            p.extend_from_slice(&[0x00, 0x10]);
            p.extend_from_slice(&tpm2b(label));
            let mut body = key.to_be_bytes().to_vec();
            body.extend_from_slice(&p);
            let enc = t.exec(&frame(0x8001, 0x174, &body));
            seen.push((format!("RSA_Encrypt, label {what}"), rc(&enc)));
            if rc(&enc) != 0 {
                continue;
            }
            let ct = enc[12..].to_vec();
            assert_eq!(ct.len(), 256, "{}: ciphertext size", t.name);
            // RSA_Decrypt with the same label gives the message back; another label fails.
            for (which, l) in [("same", label), ("other", &b"other\0"[..])] {
                let mut p = tpm2b(&ct);
                p.extend_from_slice(&[0x00, 0x10]);
                p.extend_from_slice(&tpm2b(l));
                let dec = t.exec(&with_pw(0x159, &[key], &p));
                seen.push((format!("RSA_Decrypt, label {what}, {which}"), rc(&dec)));
                if rc(&dec) == 0 {
                    assert_eq!(&dec[16..16 + msg.len()], msg, "{}: plaintext", t.name);
                }
            }
        }
        results.push(seen);
    }
    // A ciphertext under another label: both refuse it, the reference code with TPM_RC_VALUE
    // (here on parameter 1), libtpms' OpenSSL path with TPM_RC_FAILURE; everything else is
    // the same on both.
    for (i, r) in results.iter_mut().enumerate() {
        for (what, code) in r.iter_mut().filter(|(w, _)| w.ends_with("other")) {
            assert_ne!(*code, 0, "{what} accepted");
            if i == 0 {
                assert_eq!(*code, 0x1C4, "{what}");
            }
            *code = 1;
        }
    }
    assert_eq!(
        results[0], results[1],
        "vtpm-sim (left) and swtpm (right) differ"
    );
    let codes: Vec<u32> = results[0].iter().map(|r| r.1).collect();
    // Four labels encrypt and decrypt, the fifth is TPM_RC_VALUE on parameter 3.
    assert_eq!(
        codes.iter().filter(|c| **c == 0).count(),
        8,
        "{:?}",
        results[0]
    );
    assert_eq!(results[0].last().unwrap().1, 0x3C4, "{:?}", results[0]);
}
