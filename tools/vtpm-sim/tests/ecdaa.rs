//! TPM2_Commit and ECDAA signing (TPM2_Sign with TPM_ALG_ECDAA and a commit counter) through
//! tpm2-tools' `tpm2_commit` and `tpm2_sign`, run the same against swtpm (libtpms): the same
//! response codes for every step, and on both TPMs signatures that verify against the
//! commitments: [s]G = E + [T]Q with T = H(nonceK ‖ digest).

mod common;

use common::{Sim, Swtpm, scratch};
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::{AffinePoint, EncodedPoint, FieldBytes, ProjectivePoint, Scalar, U256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A TPM reached by tpm2-tools over `tcti`, with its files in `dir`.
struct Target {
    tcti: String,
    dir: PathBuf,
}

impl Target {
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(args[0])
            .args(&args[1..])
            .current_dir(&self.dir)
            .env("TPM2TOOLS_TCTI", &self.tcti)
            .output()
            .expect("cannot run tpm2-tools (`cargo xtask setup`)");
        // No resource manager: free the transient slots after every tool.
        for f in ["-t", "-s", "-l"] {
            let _ = Command::new("tpm2_flushcontext")
                .arg(f)
                .env("TPM2TOOLS_TCTI", &self.tcti)
                .output();
        }
        out
    }

    /// The response code a tool reports (`Esys_X(0x..)`), 0 when it succeeded.
    fn rc(&self, args: &[&str]) -> u32 {
        let out = self.run(args);
        if out.status.success() {
            return 0;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        err.split("Esys_")
            .filter_map(|t| t.split_once("(0x"))
            .filter_map(|(_, t)| t.split(')').next())
            .filter_map(|h| u32::from_str_radix(h, 16).ok())
            .next()
            .unwrap_or_else(|| panic!("{args:?} failed without a TPM code: {err}"))
    }

    fn ok(&self, args: &[&str]) {
        assert_eq!(self.rc(args), 0, "{} on {}", args.join(" "), self.tcti);
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.dir.join(name), data).unwrap();
    }
}

const SIGN_ATTRS: &str = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign";

/// A TPM2B_ECC_POINT file: None when empty.
fn point(b: &[u8]) -> Option<AffinePoint> {
    let size = u16::from_be_bytes([b[0], b[1]]) as usize;
    assert_eq!(b.len(), 2 + size, "TPM2B_ECC_POINT size");
    let xl = u16::from_be_bytes([b[2], b[3]]) as usize;
    let x = &b[4..4 + xl];
    let y = &b[6 + xl..];
    if x.is_empty() && y.is_empty() {
        return None;
    }
    let ep = EncodedPoint::from_affine_coordinates(
        FieldBytes::from_slice(x),
        FieldBytes::from_slice(y),
        false,
    );
    Some(Option::from(AffinePoint::from_encoded_point(&ep)).expect("a point on P-256"))
}

fn point_file(p: &AffinePoint) -> Vec<u8> {
    let ep = p.to_encoded_point(false);
    let mut b = vec![0, 68, 0, 32];
    b.extend_from_slice(ep.x().unwrap());
    b.extend_from_slice(&[0, 32]);
    b.extend_from_slice(ep.y().unwrap());
    b
}

fn scalar(b: &[u8]) -> Scalar {
    let mut f = [0u8; 32];
    f[32 - b.len()..].copy_from_slice(b);
    <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(f))
}

/// (nonceK, s) of a TPMT_SIGNATURE file with the ECDAA scheme and SHA-256.
fn ecdaa_signature(b: &[u8]) -> (Vec<u8>, Scalar) {
    assert_eq!(&b[..4], &[0, 0x1a, 0, 0x0b], "TPM_ALG_ECDAA, SHA-256");
    let rl = u16::from_be_bytes([b[4], b[5]]) as usize;
    let r = b[6..6 + rl].to_vec();
    let sl = u16::from_be_bytes([b[6 + rl], b[7 + rl]]) as usize;
    assert_eq!(b.len(), 8 + rl + sl);
    (r, scalar(&b[8 + rl..]))
}

fn t_of(nonce_k: &[u8], digest: &[u8]) -> Scalar {
    scalar(&common::sha256(&[nonce_k, digest]))
}

/// The commit counter file: a UINT16 as tpm2-tools writes it (big-endian).
fn counter(t: &Target) -> String {
    let c = t.read("counter");
    u16::from_be_bytes([c[0], c[1]]).to_string()
}

/// An s2 whose SHA-256 is the x of a P-256 point, and that point's y (the basepoint M).
fn basepoint() -> (Vec<u8>, AffinePoint) {
    for i in 0u32.. {
        let s2 = format!("basepoint {i}").into_bytes();
        let x = common::sha256(&[&s2]);
        let mut sec1 = vec![2u8];
        sec1.extend_from_slice(&x);
        if let Ok(ep) = EncodedPoint::from_bytes(&sec1) {
            if let Some(m) = Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&ep)) {
                return (s2, m);
            }
        }
    }
    unreachable!()
}

/// The flow on one TPM: every step's response code, after checking each signature.
fn flow(t: &Target) -> Vec<(&'static str, u32)> {
    let mut codes = Vec::new();
    t.ok(&[
        "tpm2_createprimary",
        "-C",
        "o",
        "-G",
        "ecc256:ecdaa",
        "-a",
        SIGN_ATTRS,
        "-c",
        "key.ctx",
    ]);
    t.ok(&[
        "tpm2_readpublic",
        "-c",
        "key.ctx",
        "-o",
        "key.pem",
        "-f",
        "pem",
    ]);
    let pem = std::fs::read_to_string(t.dir.join("key.pem")).unwrap();
    let q = {
        use p256::pkcs8::DecodePublicKey;
        p256::PublicKey::from_public_key_pem(&pem).unwrap()
    };
    let q = q.to_projective();
    let digest = common::sha256(&[b"ecdaa"]);
    t.write("digest", &digest);
    let sign = |c: &str| -> u32 {
        let idx = format!("--commit-index={c}");
        t.rc(&[
            "tpm2_sign",
            "-c",
            "key.ctx",
            "-g",
            "sha256",
            "-s",
            "ecdaa",
            &idx,
            "-d",
            "-f",
            "tss",
            "-o",
            "sig",
            "digest",
        ])
    };

    // 1. No basepoint, no P1: E = [r]G.
    t.ok(&["tpm2_commit", "-c", "key.ctx", "-t", "counter", "-u", "E"]);
    let e = point(&t.read("E")).expect("E");
    let c1 = counter(t);
    codes.push(("sign with the commitment", sign(&c1)));
    assert_eq!(
        codes.last().unwrap().1,
        0,
        "sign with counter {c1} on {}",
        t.tcti
    );
    let (nk, s) = ecdaa_signature(&t.read("sig"));
    assert_eq!(
        (ProjectivePoint::GENERATOR * s).to_affine(),
        (ProjectivePoint::from(e) + q * t_of(&nk, &digest)).to_affine(),
        "[s]G = E + [T]Q on {}",
        t.tcti
    );
    // The counter is spent.
    codes.push(("sign with a spent counter (refused)", sign(&c1)));
    codes.push(("sign with a counter never committed (refused)", sign("77")));

    // 2. A basepoint M from s2 and y2: tpm2-tools 5.4's tpm2_commit sends y2 empty
    // (TPM_RC_SIZE for y2 from libtpms); the same answer is asked of vtpm-sim.
    let (s2, m) = basepoint();
    t.write("s2", &s2);
    // y2 as a TPM2B_ECC_PARAMETER file.
    t.write(
        "y2",
        &[&[0, 32][..], m.to_encoded_point(false).y().unwrap()].concat(),
    );
    t.write("P1", &point_file(&AffinePoint::GENERATOR));
    codes.push((
        "basepoint through tpm2_commit",
        t.rc(&[
            "tpm2_commit",
            "-c",
            "key.ctx",
            "-t",
            "counter",
            "--basepoint-y",
            "y2",
            "--eccpoint-P",
            "P1",
            "--eccpoint-K",
            "K",
            "--eccpoint-L",
            "L",
            "-u",
            "E",
            "s2",
        ]),
    ));

    // 3. A second commitment (counter 1). tpm2-tools 5.4 sends an empty P1 whatever
    // --eccpoint-P names (seen in the command bytes), so E = [r]G again.
    t.write("P1", &point_file(&AffinePoint::GENERATOR));
    t.ok(&[
        "tpm2_commit",
        "-c",
        "key.ctx",
        "-t",
        "counter",
        "--eccpoint-P",
        "P1",
        "-u",
        "E",
    ]);
    let e = point(&t.read("E")).unwrap();
    let c3 = counter(t);
    codes.push(("sign with the P1 commitment", sign(&c3)));
    assert_eq!(
        codes.last().unwrap().1,
        0,
        "sign with counter {c3} on {}",
        t.tcti
    );
    let (nk, s) = ecdaa_signature(&t.read("sig"));
    assert_eq!(
        (ProjectivePoint::GENERATOR * s).to_affine(),
        (ProjectivePoint::from(e) + q * t_of(&nk, &digest)).to_affine()
    );

    // Refusals.
    t.ok(&[
        "tpm2_createprimary",
        "-C",
        "o",
        "-G",
        "ecc256:ecdsa",
        "-a",
        SIGN_ATTRS,
        "-c",
        "dsa.ctx",
    ]);
    codes.push((
        "commit on an ECDSA key",
        t.rc(&["tpm2_commit", "-c", "dsa.ctx", "-t", "counter", "-u", "E"]),
    ));
    let caps = String::from_utf8_lossy(&t.run(&["tpm2_getcap", "commands"]).stdout).into_owned();
    assert!(
        caps.contains("TPM2_CC_Commit"),
        "Commit listed on {}",
        t.tcti
    );
    codes
}

fn target(tcti: String, dir: &Path) -> Target {
    Target {
        tcti,
        dir: dir.to_path_buf(),
    }
}

#[test]
fn commit_and_ecdaa_signatures_match_swtpm() {
    let sim = Sim::started("ecdaa");
    let ours = flow(&target(sim.tcti(), &sim.dir));
    let sw = Swtpm::start(&scratch("ecdaa-swtpm"));
    let dir = scratch("ecdaa-swtpm-files");
    let theirs_t = target(sw.tcti(), &dir);
    theirs_t.ok(&["tpm2_startup", "-c"]);
    let theirs = flow(&theirs_t);
    assert_eq!(ours, theirs);
    // The refusals are refusals.
    for (what, code) in &ours {
        assert_eq!(
            *code == 0,
            !what.ends_with("(refused)") && what.starts_with("sign with"),
            "{what}: {code:#x}"
        );
    }
}
