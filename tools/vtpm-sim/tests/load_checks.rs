//! Load and Import validate the public area of what they bring in (the reference's
//! PublicAttributesValidation), not only objects this TPM created: keys with attribute
//! combinations Create would refuse are wrapped on the host by stock `tpm2_import`, below a
//! fixedTPM parent (Import checks them) and below a parent that is not fixedTPM (Import cannot;
//! Load must). vtpm-sim must give the same response codes as swtpm (libtpms) at each step.

mod common;
use common::{Sim, Swtpm, openssl_ecc_key, scratch};
use std::path::Path;
use std::process::Command;

/// What one tool run ended with: success, or the TPM response code tpm2-tools reports.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Rc(String),
    /// Failed without a TPM response code (a tool-side error: the case proves nothing).
    Tool(String),
}

fn run(dir: &Path, tcti: &str, args: &[&str]) -> Outcome {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("TPM2TOOLS_TCTI", tcti)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (`cargo xtask setup`): {e}", args[0]));
    if out.status.success() {
        return Outcome::Ok;
    }
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // tpm2-tools: "... ErrorCode (0x000002c2)".
    match err.split("ErrorCode (0x").nth(1).and_then(|s| s.get(..8)) {
        Some(code) => Outcome::Rc(code.to_string()),
        None => Outcome::Tool(err),
    }
}

fn must(dir: &Path, tcti: &str, args: &[&str]) {
    let o = run(dir, tcti, args);
    assert_eq!(o, Outcome::Ok, "{args:?} against {tcti}");
}

/// Key material on the host, the same files for both TPMs.
fn keys(dir: &Path) {
    openssl_ecc_key(dir, "ecc.pem");
    std::fs::write(dir.join("hmac.key"), [0x5Au8; 32]).unwrap();
}

/// (name, -G algorithm, key file, objectAttributes).
const CASES: &[(&str, &str, &str, &str)] = &[
    ("ECC signing key", "ecc", "ecc.pem", "sign|userwithauth"),
    (
        "ECC restricted sign+decrypt",
        "ecc",
        "ecc.pem",
        "sign|decrypt|restricted|userwithauth",
    ),
    (
        "ECC neither sign nor decrypt",
        "ecc",
        "ecc.pem",
        "userwithauth",
    ),
    (
        "ECC restricted decrypt without symmetric",
        "ecc",
        "ecc.pem",
        "decrypt|restricted|userwithauth",
    ),
    (
        "ECC restricted sign without scheme",
        "ecc",
        "ecc.pem",
        "sign|restricted|userwithauth",
    ),
    ("HMAC key", "hmac", "hmac.key", "sign|userwithauth"),
    (
        "HMAC key restricted sign+decrypt",
        "hmac",
        "hmac.key",
        "sign|decrypt|restricted|userwithauth",
    ),
    (
        "HMAC key for decrypt",
        "hmac",
        "hmac.key",
        "decrypt|userwithauth",
    ),
];

/// Import then Load of every case below both parents; one line per tool run.
fn outcomes(dir: &Path, tcti: &str) -> Vec<String> {
    keys(dir);
    must(dir, tcti, &["tpm2_startup", "-c"]);
    must(
        dir,
        tcti,
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
    // A storage key that may be duplicated, so not fixedTPM: Import below it checks nothing.
    must(
        dir,
        tcti,
        &[
            "tpm2_create",
            "-C",
            "prim.ctx",
            "-G",
            "ecc",
            "-a",
            "restricted|decrypt|sensitivedataorigin|userwithauth",
            "-u",
            "dup.pub",
            "-r",
            "dup.priv",
        ],
    );
    must(dir, tcti, &["tpm2_flushcontext", "-t"]);
    let mut lines = Vec::new();
    for parent in ["fixedTPM", "duplicable"] {
        for (name, alg, file, attrs) in CASES {
            must(dir, tcti, &["tpm2_flushcontext", "-t"]);
            if parent == "duplicable" {
                must(
                    dir,
                    tcti,
                    &[
                        "tpm2_load",
                        "-C",
                        "prim.ctx",
                        "-u",
                        "dup.pub",
                        "-r",
                        "dup.priv",
                        "-c",
                        "par.ctx",
                    ],
                );
            }
            let pctx = if parent == "duplicable" {
                "par.ctx"
            } else {
                "prim.ctx"
            };
            let import = run(
                dir,
                tcti,
                &[
                    "tpm2_import",
                    "-C",
                    pctx,
                    "-G",
                    alg,
                    "-i",
                    file,
                    "-a",
                    attrs,
                    "-u",
                    "k.pub",
                    "-r",
                    "k.priv",
                ],
            );
            assert!(
                !matches!(import, Outcome::Tool(_)),
                "{name} below the {parent} parent: tpm2_import failed before the TPM: {import:?}"
            );
            let load = if import == Outcome::Ok {
                // Three object slots: drop what the import left loaded.
                must(dir, tcti, &["tpm2_flushcontext", "-t"]);
                run(
                    dir,
                    tcti,
                    &[
                        "tpm2_load",
                        "-C",
                        pctx,
                        "-u",
                        "k.pub",
                        "-r",
                        "k.priv",
                        "-c",
                        "k.ctx",
                    ],
                )
            } else {
                Outcome::Rc("not reached".into())
            };
            lines.push(format!(
                "{name} below the {parent} parent: Import {import:?}, Load {load:?}"
            ));
        }
    }
    lines
}

#[test]
fn load_and_import_validate_like_swtpm() {
    let dir = scratch("load-checks");
    let (sim_dir, sw_dir) = (dir.join("sim"), dir.join("swtpm-files"));
    std::fs::create_dir_all(&sim_dir).unwrap();
    std::fs::create_dir_all(&sw_dir).unwrap();
    let sim = Sim::start(&sim_dir, None);
    let sw = Swtpm::start(&dir.join("swtpm"));
    let ours = outcomes(&sim_dir, &sim.tcti());
    let theirs = outcomes(&sw_dir, &sw.tcti());
    // The cases must exercise both sides of the rules: some succeed, some are refused.
    assert!(theirs.iter().any(|l| l.ends_with("Load Ok")), "{theirs:#?}");
    assert!(
        theirs.iter().any(|l| !l.ends_with("Load Ok")),
        "{theirs:#?}"
    );
    let diff: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("vtpm:  {a}\nswtpm: {b}"))
        .collect();
    assert!(
        diff.is_empty(),
        "{} differ:\n{}",
        diff.len(),
        diff.join("\n")
    );
}
