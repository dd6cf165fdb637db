//! The two BAD_AUTH reports of issue 15, reproduced with the stock FAPI tools of tpm2-tools
//! (`tss2_*`, tpm2-tss's FAPI) and run the same against swtpm: a child created under a
//! password-authorised user key, and a key exported (TPM2_Duplicate under FAPI's policy
//! session) to a new parent. Each step's exit status and TPM/FAPI error code must match
//! swtpm's; a wrong password must still fail there and here.

mod common;

use common::{Sim, Swtpm, scratch};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// One FAPI tool run: its arguments (`{D}` is the scratch folder) and the passwords it is
/// asked for, in order (FAPI's auth callback reads them).
struct Step {
    args: &'static [&'static str],
    passwords: &'static [&'static str],
}

const fn step(args: &'static [&'static str], passwords: &'static [&'static str]) -> Step {
    Step { args, passwords }
}

/// Duplication to a named new parent only (the policy FAPI's exportkey test uses).
const DUP_SELECT: &str = r#"{"description":"to ext/myNewParent","policy":[{"type":"POLICYDUPLICATIONSELECT","newParentPath":"ext/myNewParent"}]}"#;
/// Duplication allowed by command code.
const DUP_CC: &str =
    r#"{"description":"duplicate","policy":[{"type":"POLICYCOMMANDCODE","code":"DUPLICATE"}]}"#;

/// The flow; the step with the wrong password is the one expected to fail.
const FLOW: &[Step] = &[
    step(&["tss2_provision"], &[]),
    // Report 2: Create of a child under a user key with a password.
    step(
        &[
            "tss2_createkey",
            "--path=HS/SRK/parent",
            "--type=restricted, decrypt",
            "--authValue=pw",
        ],
        &[],
    ),
    step(
        &[
            "tss2_createkey",
            "--path=HS/SRK/parent/child",
            "--type=sign",
            "--authValue=cpw",
        ],
        &["pw"],
    ),
    step(
        &[
            "tss2_createkey",
            "--path=HS/SRK/parent/bad",
            "--type=sign",
            "--authValue=",
        ],
        &["wrong"],
    ),
    step(
        &[
            "tss2_sign",
            "--keyPath=HS/SRK/parent/child",
            "--digest={D}/digest",
            "--signature={D}/sig",
            "--publicKey={D}/child.pem",
            "--force",
        ],
        &["pw", "cpw"],
    ),
    step(
        &[
            "tss2_verifysignature",
            "--keyPath=HS/SRK/parent/child",
            "--digest={D}/digest",
            "--signature={D}/sig",
        ],
        &["pw"],
    ),
    // Report 1: Duplicate under a policy session (tss2_exportkey).
    step(
        &[
            "tss2_import",
            "--path=policy/dup-select",
            "--importData={D}/select.json",
        ],
        &[],
    ),
    step(
        &[
            "tss2_import",
            "--path=policy/dup-cc",
            "--importData={D}/cc.json",
        ],
        &[],
    ),
    step(
        &[
            "tss2_createkey",
            "--path=HS/SRK/myParent",
            "--type=restricted, decrypt, noDA",
            "--authValue=",
        ],
        &[],
    ),
    step(
        &[
            "tss2_exportkey",
            "--pathOfKeyToDuplicate=HS/SRK/myParent",
            "--exportedData={D}/parent.json",
            "--force",
        ],
        &[],
    ),
    step(
        &[
            "tss2_import",
            "--path=ext/myNewParent",
            "--importData={D}/parent.json",
        ],
        &[],
    ),
    step(
        &[
            "tss2_createkey",
            "--path=HS/SRK/selectKey",
            "--type=noDa, exportable, decrypt",
            "--policyPath=policy/dup-select",
            "--authValue=",
        ],
        &[],
    ),
    step(
        &[
            "tss2_exportkey",
            "--pathOfKeyToDuplicate=HS/SRK/selectKey",
            "--pathToPublicKeyOfNewParent=ext/myNewParent",
            "--exportedData={D}/select-key.json",
            "--force",
        ],
        &[],
    ),
    step(
        &[
            "tss2_createkey",
            "--path=HS/SRK/ccKey",
            "--type=exportable, decrypt",
            "--policyPath=policy/dup-cc",
            "--authValue=kpw",
        ],
        &[],
    ),
    step(
        &[
            "tss2_exportkey",
            "--pathOfKeyToDuplicate=HS/SRK/ccKey",
            "--pathToPublicKeyOfNewParent=ext/myNewParent",
            "--exportedData={D}/cc-key.json",
            "--force",
        ],
        &[],
    ),
];

/// The step (index in FLOW) expected to fail, with TPM_RC_BAD_AUTH for session 1.
const WRONG_PASSWORD: usize = 3;
const BAD_AUTH_SESSION_1: &str = "0x0000098e";

/// Runs FLOW with a fresh FAPI keystore in `dir` against `tcti`: each step's (exit status,
/// last FAPI/TPM error code named on stderr).
fn run_flow(dir: &Path, tcti: &str) -> Vec<(i32, Option<String>)> {
    for sub in ["user", "system", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let d = dir.display().to_string();
    let config = format!(
        r#"{{"profile_name":"P_RSA2048SHA256","profile_dir":"/etc/tpm2-tss/fapi-profiles/","user_dir":"{d}/user","system_dir":"{d}/system","tcti":"{tcti}","system_pcrs":[],"log_dir":"{d}/log","ek_cert_less":"yes"}}"#
    );
    std::fs::write(dir.join("fapi.json"), config).unwrap();
    std::fs::write(dir.join("select.json"), DUP_SELECT).unwrap();
    std::fs::write(dir.join("cc.json"), DUP_CC).unwrap();
    std::fs::write(dir.join("digest"), common::sha256(&[b"fapi"])).unwrap();
    FLOW.iter()
        .map(|s| {
            let args: Vec<String> = s.args.iter().map(|a| a.replace("{D}", &d)).collect();
            // Without a controlling terminal (setsid) FAPI's password prompt reads stdin.
            let mut child = Command::new("setsid")
                .arg("-w")
                .args(&args)
                .env("TSS2_FAPICONF", dir.join("fapi.json"))
                .env("TSS2_LOG", "fapi+error")
                .current_dir(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot run the tss2 tools (package tpm2-tools; `cargo xtask setup`)");
            let mut stdin = child.stdin.take().unwrap();
            for p in s.passwords {
                let _ = writeln!(stdin, "{p}");
            }
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let code = err
                .rsplit("ErrorCode (")
                .next()
                .filter(|_| err.contains("ErrorCode ("))
                .and_then(|t| t.split(')').next())
                .map(str::to_string);
            (out.status.code().unwrap_or(-1), code)
        })
        .collect()
}

#[test]
fn fapi_password_parent_and_policy_duplication_match_swtpm() {
    let sim = Sim::started("fapi-ours");
    let keystore = scratch("fapi-ours-keystore");
    let ours = run_flow(&keystore, &sim.tcti());
    let sw = Swtpm::start(&scratch("fapi-swtpm"));
    let startup = Command::new("tpm2_startup")
        .args(["-c", "-T", &sw.tcti()])
        .output()
        .unwrap();
    assert!(startup.status.success());
    let theirs = run_flow(&scratch("fapi-swtpm-keystore"), &sw.tcti());
    for (i, s) in FLOW.iter().enumerate() {
        assert_eq!(
            ours[i], theirs[i],
            "step {i} {:?}: vtpm-sim vs swtpm",
            s.args
        );
        if i == WRONG_PASSWORD {
            assert_ne!(ours[i].0, 0, "a wrong parent password is refused");
            assert_eq!(ours[i].1.as_deref(), Some(BAD_AUTH_SESSION_1));
        } else {
            assert_eq!(ours[i].0, 0, "step {i} {:?}: {:?}", s.args, ours[i].1);
        }
    }
    // The exported keys are FAPI's JSON with the duplicate and its encrypted seed.
    for f in ["select-key.json", "cc-key.json"] {
        let j = std::fs::read_to_string(keystore.join(f)).unwrap();
        assert!(
            j.contains("\"duplicate\"") && j.contains("\"encrypted_seed\""),
            "{j}"
        );
    }
}
