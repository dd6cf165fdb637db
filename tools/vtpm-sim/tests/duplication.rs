//! Key duplication and import with stock tpm2-tools against `vtpm-sim`: a policy-protected key
//! moves to another parent on the same TPM and to a parent on a second instance (the migration
//! flow: only the new parent's public key crosses over), and OpenSSL-generated RSA and ECC keys
//! are imported (the usual provisioning flow). Every moved key must sign, and its signatures
//! must verify against the original public key.

mod common;
use common::{Sim, Swtpm, host, openssl_verify, scratch};
use std::path::Path;
use std::process::{Command, Output};

/// A TPM the stock tools can reach: `vtpm-sim` or swtpm (for migration between the two).
trait Tpm2 {
    fn tcti(&self) -> String;
    fn dir(&self) -> &Path;
}

impl Tpm2 for Sim {
    fn tcti(&self) -> String {
        Sim::tcti(self)
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Tpm2 for Swtpm {
    fn tcti(&self) -> String {
        Swtpm::tcti(self)
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

fn try_tool(t: &dyn Tpm2, args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .current_dir(t.dir())
        .env("TPM2TOOLS_TCTI", t.tcti())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (`cargo xtask setup`): {e}", args[0]))
}

/// Runs a tool; panics with its output (and which TPM it talked to) on failure.
fn tool(t: &dyn Tpm2, args: &[&str]) {
    let out = try_tool(t, args);
    assert!(
        out.status.success(),
        "{} against {} failed: {}\nstdout: {}\nstderr: {}",
        args[0],
        t.tcti(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a tool, then flushes the transient objects it left loaded (no resource manager here;
/// sessions stay, they are carried between tools in context files).
fn run(t: &dyn Tpm2, args: &[&str]) {
    tool(t, args);
    tool(t, &["tpm2_flushcontext", "-t"]);
}

/// Copies scratch files from one TPM's folder to the other's (what crosses between machines).
fn carry(from: &dyn Tpm2, to: &dyn Tpm2, files: &[&str]) {
    for f in files {
        std::fs::copy(from.dir().join(f), to.dir().join(f)).expect("copy scratch file");
    }
}

/// A storage parent for duplicated keys (fixed to this TPM itself).
const PARENT_ATTRS: &str =
    "restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth";

/// Primary key, the policy that allows duplication, and a duplicable ECC signing key loaded
/// as `key.ctx` (public part in `key.pub`).
fn duplicable_key(sim: &dyn Tpm2) {
    run(
        sim,
        &[
            "tpm2_createprimary",
            "-C",
            "o",
            "-G",
            "ecc",
            "-c",
            "prim.ctx",
        ],
    );
    tool(sim, &["tpm2_startauthsession", "-S", "trial.ctx"]);
    tool(
        sim,
        &[
            "tpm2_policycommandcode",
            "-S",
            "trial.ctx",
            "-L",
            "dup.policy",
            "TPM2_CC_Duplicate",
        ],
    );
    tool(sim, &["tpm2_flushcontext", "trial.ctx"]);
    run(
        sim,
        &[
            "tpm2_create",
            "-C",
            "prim.ctx",
            "-G",
            "ecc",
            "-L",
            "dup.policy",
            "-a",
            "sensitivedataorigin|userwithauth|sign",
            "-u",
            "key.pub",
            "-r",
            "key.priv",
        ],
    );
    run(
        sim,
        &[
            "tpm2_load",
            "-C",
            "prim.ctx",
            "-u",
            "key.pub",
            "-r",
            "key.priv",
            "-c",
            "key.ctx",
        ],
    );
}

/// Duplicates `key.ctx` to the parent in `parent.ctx` with the policy session the key demands.
/// `inner` adds the inner wrapper (its key, chosen by the TPM, goes to `inner.key`).
fn duplicate(sim: &dyn Tpm2, inner: bool) {
    tool(
        sim,
        &["tpm2_startauthsession", "--policy-session", "-S", "s.ctx"],
    );
    tool(
        sim,
        &["tpm2_policycommandcode", "-S", "s.ctx", "TPM2_CC_Duplicate"],
    );
    let mut args = vec![
        "tpm2_duplicate",
        "-C",
        "parent.ctx",
        "-c",
        "key.ctx",
        "-p",
        "session:s.ctx",
        "-r",
        "dup.priv",
        "-s",
        "dup.seed",
    ];
    if inner {
        args.extend(["-G", "aes", "-o", "inner.key"]);
    } else {
        args.extend(["-G", "null"]);
    }
    run(sim, &args);
    tool(sim, &["tpm2_flushcontext", "s.ctx"]);
}

/// Imports `dup.priv` under `parent.ctx`, loads it as `imported.ctx` and signs `msg` with it.
fn import_and_sign(sim: &dyn Tpm2, parent: &str, inner: bool) {
    let mut args = vec![
        "tpm2_import",
        "-C",
        parent,
        "-u",
        "key.pub",
        "-i",
        "dup.priv",
        "-s",
        "dup.seed",
        "-r",
        "imported.priv",
    ];
    if inner {
        args.extend(["-k", "inner.key"]);
    }
    run(sim, &args);
    run(
        sim,
        &[
            "tpm2_load",
            "-C",
            parent,
            "-u",
            "key.pub",
            "-r",
            "imported.priv",
            "-c",
            "imported.ctx",
        ],
    );
    std::fs::write(sim.dir().join("msg"), b"moved, still mine").expect("write msg");
    run(
        sim,
        &[
            "tpm2_sign",
            "-c",
            "imported.ctx",
            "-g",
            "sha256",
            "-o",
            "sig",
            "msg",
        ],
    );
}

#[test]
fn duplicate_to_another_parent_then_import_load_and_sign() {
    let sim = Sim::started("dup-local");
    duplicable_key(&sim);
    run(
        &sim,
        &[
            "tpm2_create",
            "-C",
            "prim.ctx",
            "-G",
            "ecc",
            "-a",
            PARENT_ATTRS,
            "-u",
            "parent.pub",
            "-r",
            "parent.priv",
        ],
    );
    run(
        &sim,
        &[
            "tpm2_load",
            "-C",
            "prim.ctx",
            "-u",
            "parent.pub",
            "-r",
            "parent.priv",
            "-c",
            "parent.ctx",
        ],
    );
    for inner in [false, true] {
        duplicate(&sim, inner);
        import_and_sign(&sim, "parent.ctx", inner);
        // The original key (under the old parent) verifies what the imported copy signed.
        run(
            &sim,
            &[
                "tpm2_verifysignature",
                "-c",
                "key.ctx",
                "-g",
                "sha256",
                "-m",
                "msg",
                "-s",
                "sig",
            ],
        );
    }
    // Without the policy session (password authorisation) the TPM refuses: TPM_RC_AUTH_TYPE.
    let out = try_tool(
        &sim,
        &[
            "tpm2_duplicate",
            "-C",
            "parent.ctx",
            "-c",
            "key.ctx",
            "-G",
            "null",
            "-r",
            "x.priv",
            "-s",
            "x.seed",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("0x124"), "{err}");
}

/// Moves a duplicable key from `src` to a `parent_alg` primary on `dst`, of which `src` only
/// ever sees the public area (the migration flow), with both wrappers; the key signs on `dst`
/// and the original on `src` verifies that signature: the same key now lives on both.
fn migrate(src: &dyn Tpm2, dst: &dyn Tpm2, parent_alg: &str) {
    run(
        dst,
        &[
            "tpm2_createprimary",
            "-C",
            "o",
            "-G",
            parent_alg,
            "-c",
            "dst.ctx",
        ],
    );
    run(dst, &["tpm2_readpublic", "-c", "dst.ctx", "-o", "dst.pub"]);
    carry(dst, src, &["dst.pub"]);
    duplicable_key(src);
    run(
        src,
        &[
            "tpm2_loadexternal",
            "-C",
            "o",
            "-u",
            "dst.pub",
            "-c",
            "parent.ctx",
        ],
    );
    duplicate(src, true);
    carry(src, dst, &["key.pub", "dup.priv", "dup.seed", "inner.key"]);
    import_and_sign(dst, "dst.ctx", true);
    carry(dst, src, &["msg", "sig"]);
    run(
        src,
        &[
            "tpm2_verifysignature",
            "-c",
            "key.ctx",
            "-g",
            "sha256",
            "-m",
            "msg",
            "-s",
            "sig",
        ],
    );
}

#[test]
fn migrate_a_key_to_a_second_vtpm_by_its_parent_public_key() {
    let a = Sim::started("dup-src");
    let b = Sim::started("dup-dst");
    migrate(&a, &b, "ecc");
    // A blob for B's parent means nothing under another parent (A's own primary): refused.
    let out = try_tool(
        &a,
        &[
            "tpm2_import",
            "-C",
            "prim.ctx",
            "-u",
            "key.pub",
            "-i",
            "dup.priv",
            "-s",
            "dup.seed",
            "-k",
            "inner.key",
            "-r",
            "x.priv",
        ],
    );
    assert!(!out.status.success(), "imported under the wrong parent");
}

/// The wrappers and the seed exchange against the reference implementation: a key leaves
/// vtpm-sim for an ECC parent on swtpm (our ECDH/KDFe seed, our wrappers, libtpms unwraps),
/// and a key leaves swtpm for an RSA parent on vtpm-sim (libtpms' OAEP seed and wrappers,
/// we unwrap).
#[test]
fn migrate_between_vtpm_sim_and_swtpm_both_ways() {
    let sim = Sim::started("dup-x-sim");
    let sw = Swtpm::start(&scratch("dup-x-swtpm"));
    tool(&sw, &["tpm2_startup", "-c"]);
    migrate(&sim, &sw, "ecc");
    migrate(&sw, &sim, "rsa");
}

#[test]
fn import_openssl_rsa_and_ecc_keys_and_verify_with_openssl() {
    let sim = Sim::started("dup-openssl");
    run(
        &sim,
        &[
            "tpm2_createprimary",
            "-C",
            "o",
            "-G",
            "rsa",
            "-c",
            "prim.ctx",
        ],
    );
    let keygen: [(&str, &[&str]); 2] = [
        ("rsa", &["openssl", "genrsa", "-out", "rsa.pem", "2048"]),
        (
            "ecc",
            &[
                "openssl",
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ecc.pem",
            ],
        ),
    ];
    std::fs::write(sim.dir.join("msg"), b"provisioned from outside").expect("write msg");
    for (alg, keygen_cmd) in keygen {
        let out = host(&sim.dir, keygen_cmd);
        assert!(out.status.success(), "openssl {alg} keygen failed");
        let (pem, public, private, ctx) = (
            format!("{alg}.pem"),
            format!("{alg}.pub"),
            format!("{alg}.priv"),
            format!("{alg}.ctx"),
        );
        run(
            &sim,
            &[
                "tpm2_import",
                "-C",
                "prim.ctx",
                "-G",
                alg,
                "-i",
                &pem,
                "-u",
                &public,
                "-r",
                &private,
            ],
        );
        run(
            &sim,
            &[
                "tpm2_load",
                "-C",
                "prim.ctx",
                "-u",
                &public,
                "-r",
                &private,
                "-c",
                &ctx,
            ],
        );
        let sig = format!("{alg}.sig");
        run(
            &sim,
            &[
                "tpm2_sign",
                "-c",
                &ctx,
                "-g",
                "sha256",
                "-f",
                "plain",
                "-o",
                &sig,
                "msg",
            ],
        );
        // OpenSSL checks the TPM's signature with the public half of the key it generated.
        let pubpem = format!("{alg}-pub.pem");
        let out = host(
            &sim.dir,
            &["openssl", "pkey", "-in", &pem, "-pubout", "-out", &pubpem],
        );
        assert!(out.status.success(), "openssl pkey");
        let v = openssl_verify(&sim.dir, &pubpem, &sig, "msg");
        assert!(
            v.status.success(),
            "openssl rejects the imported {alg} key's signature: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
}
