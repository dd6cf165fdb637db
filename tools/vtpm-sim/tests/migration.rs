//! Migration of a running TPM through swtpm's state blobs, with swtpm's own client
//! (`swtpm_ioctl --save/--load`, what QEMU does over the control channel): the fresh TPM comes
//! back with the same PCRs, NV indices, persistent keys and sessions. A cut, altered or
//! misdirected blob is refused with a clear error and leaves the receiving TPM as it was.

mod common;

use common::{Sim, state_key};
use std::path::Path;

/// A `vtpm-sim socket` with its own sealed state folder `name` under `dir` and the shared
/// migration key.
fn start(dir: &Path, name: &str, log: &Path) -> Sim {
    let mkey = state_key(&dir.join("migration"));
    Sim::start_socket(
        dir,
        Some(&dir.join(name)),
        &[
            "--migration-key",
            &format!("file={}", mkey.display()),
            "--log",
            &format!("file={}", log.display()),
        ],
    )
}

const NV: &str = "0x1500016";
const PERSISTENT: &str = "0x81000005";

#[test]
fn state_blobs_move_a_running_tpm_with_its_pcrs_nv_keys_and_sessions() {
    let dir = common::scratch("migrate");
    let src = start(&dir, "src", &dir.join("src.log"));
    src.tool(&["tpm2_startup", "-c"]);
    src.tool(&["tpm2_pcrextend", &format!("16:sha256={}", "04".repeat(32))]);
    src.write("data.bin", &[0x5a; 32]);
    src.nv_define(NV, 32);
    src.tool(&["tpm2_nvwrite", NV, "-C", "o", "-i", "data.bin"]);
    src.primary("o", "ecc", "prim.ctx");
    src.tool(&["tpm2_evictcontrol", "-C", "o", "-c", "prim.ctx", PERSISTENT]);
    src.tool(&["tpm2_readpublic", "-c", PERSISTENT, "-n", "src-name.bin"]);
    // A policy session left half-way (context saved by the tool, kept by the TPM).
    src.tool(&[
        "tpm2_startauthsession",
        "--policy-session",
        "-S",
        "sess.ctx",
    ]);
    src.tool(&[
        "tpm2_policypcr",
        "-S",
        "sess.ctx",
        "-l",
        "sha256:16",
        "-L",
        "pol.bin",
    ]);
    let pcrs = src.stdout(&["tpm2_pcrread", "sha256:0,16"]);
    for ty in ["permanent", "volatile", "savestate"] {
        src.ioctl_ok(&["--save", ty, &format!("{ty}.blob")]);
    }
    // Blobs hold seeds: they leave sealed, never in the clear.
    let volatile = src.read("volatile.blob");
    assert!(
        !volatile.windows(32).any(|w| w == [0x5a; 32]),
        "NV data in the clear"
    );

    let dst = start(&dir, "dst", &dir.join("dst.log"));
    dst.ioctl_ok(&["--stop"]);
    for ty in ["permanent", "volatile", "savestate"] {
        dst.ioctl_ok(&["--load", ty, &format!("{ty}.blob")]);
    }
    dst.ioctl_ok(&["-i"]);
    // Started already (no Startup needed), same PCRs, NV, persistent key, and the session
    // goes on with its policy digest.
    assert_eq!(dst.stdout(&["tpm2_pcrread", "sha256:0,16"]), pcrs);
    dst.tool(&["tpm2_nvread", NV, "-C", "o", "-s", "32", "-o", "read.bin"]);
    assert_eq!(dst.read("read.bin"), vec![0x5a; 32]);
    dst.tool(&["tpm2_readpublic", "-c", PERSISTENT, "-n", "dst-name.bin"]);
    assert_eq!(dst.read("dst-name.bin"), dst.read("src-name.bin"));
    // The session goes on from the digest it had: one more PolicyPCR in both TPMs gives the
    // same digest (a fresh session would give pol.bin again).
    dst.write("sess-src.ctx", &dst.read("sess.ctx"));
    dst.tool(&[
        "tpm2_policypcr",
        "-S",
        "sess.ctx",
        "-l",
        "sha256:16",
        "-L",
        "dst2.bin",
    ]);
    src.tool(&[
        "tpm2_policypcr",
        "-S",
        "sess-src.ctx",
        "-l",
        "sha256:16",
        "-L",
        "src2.bin",
    ]);
    assert_eq!(dst.read("dst2.bin"), dst.read("src2.bin"));
    assert_ne!(dst.read("dst2.bin"), dst.read("pol.bin"));
    // The destination keeps what it received in its own state folder: a restart finds it.
    drop(dst);
    let again = start(&dir, "dst", &dir.join("dst2.log"));
    again.tool(&["tpm2_startup", "-c"]);
    again.tool(&["tpm2_nvread", NV, "-C", "o", "-s", "32", "-o", "again.bin"]);
    assert_eq!(again.read("again.bin"), vec![0x5a; 32]);
}

#[test]
fn cut_altered_or_misdirected_blobs_are_refused_and_change_nothing() {
    let dir = common::scratch("migrate-bad");
    let src = start(&dir, "src", &dir.join("src.log"));
    src.tool(&["tpm2_startup", "-c"]);
    src.nv_define(NV, 8);
    src.ioctl_ok(&["--save", "permanent", "permanent.blob"]);
    src.ioctl_ok(&["--save", "volatile", "volatile.blob"]);
    let (perm, vol) = (src.read("permanent.blob"), src.read("volatile.blob"));

    // The receiver has a state of its own: an NV index, a PCR value, kept in its volatile file.
    let log = dir.join("dst.log");
    let dst = start(&dir, "dst", &log);
    dst.tool(&["tpm2_startup", "-c"]);
    dst.tool(&["tpm2_pcrextend", &format!("16:sha256={}", "05".repeat(32))]);
    dst.nv_define("0x1500017", 8);
    let pcrs = dst.stdout(&["tpm2_pcrread", "sha256:16"]);
    dst.ioctl_ok(&["-v"]);
    dst.ioctl_ok(&["--stop"]);

    let mut altered = vol.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 1;
    let cases: [(&str, &str, Vec<u8>); 4] = [
        (
            "cut permanent blob",
            "permanent",
            perm[..perm.len() - 20].to_vec(),
        ),
        ("altered volatile blob", "volatile", altered),
        ("volatile blob given as permanent", "permanent", vol.clone()),
        (
            "not a sealed blob",
            "volatile",
            b"plain bytes, not ours".to_vec(),
        ),
    ];
    for (what, ty, bytes) in cases {
        dst.write("bad.blob", &bytes);
        let out = dst.ioctl(&["--load", ty, "bad.blob"]);
        assert!(!out.status.success(), "{what} accepted");
        common::await_log_line(&log, &["CMD_SET_STATEBLOB", "refused, TPM unchanged"]);
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("does not open with this state key"), "{text}");
    assert!(text.contains("not a sealed vTPM file"), "{text}");

    // Init resumes the receiver's own stored state: its PCR and NV index, not the sender's.
    dst.ioctl_ok(&["-i"]);
    assert_eq!(dst.stdout(&["tpm2_pcrread", "sha256:16"]), pcrs);
    dst.tool(&["tpm2_nvreadpublic", "0x1500017"]);
    assert!(!dst.try_tool(&["tpm2_nvreadpublic", NV]).status.success());
}
