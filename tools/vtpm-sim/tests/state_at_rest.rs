//! The state folder at rest: no TPM secret on disk in the clear, and a state that does not open
//! (wrong key, changed, cut, swapped, or no key given) stops `vtpm-sim` with a clear message
//! and leaves the files exactly as they were.

mod common;
use common::{Sim, scratch, state_key};
use std::path::Path;
use std::process::Command;

/// Runs vtpm-sim to completion (it fails at start-up in these cases): (exit code, stderr).
fn run_sim(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vtpm-sim"))
        .args(["--port", "0"])
        .args(args)
        .output()
        .expect("run vtpm-sim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn secrets_are_sealed_and_a_bad_state_is_refused_without_loss() {
    let dir = scratch("at-rest");
    let state = dir.join("state");
    // A manufactured TPM with an NV index holding a known secret and a known owner password.
    {
        let sim = Sim::start_with(&dir, Some(&state), &["--manufacture"]);
        sim.tool(&["tpm2_startup", "-c"]);
        sim.tool(&["tpm2_changeauth", "-c", "o", "owner-password-MARKER"]);
        sim.tool(&[
            "tpm2_nvdefine",
            "0x1500016",
            "-C",
            "o",
            "-P",
            "owner-password-MARKER",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite",
        ]);
        sim.write("secret", b"nv-secret-MARKER-0123456789abcde");
        sim.tool(&[
            "tpm2_nvwrite",
            "0x1500016",
            "-C",
            "o",
            "-P",
            "owner-password-MARKER",
            "-i",
            "secret",
        ]);
        sim.tool(&["tpm2_shutdown"]);
    }
    let at_rest = files(&state);
    assert!(
        at_rest.iter().any(|(n, _)| n == "vtpm-permanent.bin")
            && at_rest.iter().any(|(n, _)| n == "vtpm-ca-key.bin"),
        "state files missing: {:?}",
        at_rest.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, bytes) in &at_rest {
        for marker in [&b"MARKER"[..], b"owner-password", b"nv-secret"] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "{name} holds {} in the clear",
                String::from_utf8_lossy(marker)
            );
        }
        if name.ends_with(".bin") {
            assert_eq!(&bytes[..4], b"WVTS", "{name} is not sealed");
        }
    }

    // Each bad start-up: a clear refusal (exit 1, the reason named), nothing written.
    let key = state_key(&state);
    let wrong_key = dir.join("wrong.key");
    std::fs::copy(&key, &wrong_key).unwrap();
    let mut k = std::fs::read(&wrong_key).unwrap();
    k[0] ^= 1;
    std::fs::write(&wrong_key, k).unwrap();
    let s = state.as_os_str();
    // (what, how the files are spoiled, arguments, the reason stderr must give)
    type Case<'a> = (
        &'a str,
        Box<dyn Fn() + 'a>,
        Vec<&'a std::ffi::OsStr>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "no key",
            Box::new(|| {}),
            vec!["--state".as_ref(), s],
            "--state-key",
        ),
        (
            "wrong key",
            Box::new(|| {}),
            vec![
                "--state".as_ref(),
                s,
                "--state-key".as_ref(),
                wrong_key.as_os_str(),
            ],
            "does not open with this state key",
        ),
        (
            "changed state",
            Box::new(|| flip_last(&state.join("vtpm-permanent.bin"))),
            vec![
                "--state".as_ref(),
                s,
                "--state-key".as_ref(),
                key.as_os_str(),
            ],
            "does not open with this state key",
        ),
        (
            "CA key put in place of the state",
            Box::new(|| {
                std::fs::copy(
                    state.join("vtpm-ca-key.bin"),
                    state.join("vtpm-permanent.bin"),
                )
                .unwrap();
            }),
            vec![
                "--state".as_ref(),
                s,
                "--state-key".as_ref(),
                key.as_os_str(),
            ],
            "does not open with this state key",
        ),
        (
            "state in the clear",
            Box::new(|| {
                std::fs::write(state.join("vtpm-permanent.bin"), b"\x00\x01clear").unwrap()
            }),
            vec![
                "--state".as_ref(),
                s,
                "--state-key".as_ref(),
                key.as_os_str(),
            ],
            "is not a sealed vTPM file",
        ),
        (
            "key readable by others",
            Box::new(|| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            }),
            vec![
                "--state".as_ref(),
                s,
                "--state-key".as_ref(),
                key.as_os_str(),
            ],
            "readable by group or others",
        ),
    ];
    for (what, spoil, args, reason) in cases {
        // Start each case from the good files.
        for (name, bytes) in &at_rest {
            std::fs::write(state.join(name), bytes).unwrap();
        }
        spoil();
        let before = files(&state);
        let (code, err) = run_sim(&args);
        assert_eq!(
            code,
            if what == "no key" { 2 } else { 1 },
            "{what}: exit code; {err}"
        );
        assert!(
            err.contains(reason),
            "{what}: stderr does not say {reason:?}: {err}"
        );
        assert_eq!(files(&state), before, "{what}: the state folder changed");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // The good files with the right key: the secret is still there.
    for (name, bytes) in &at_rest {
        std::fs::write(state.join(name), bytes).unwrap();
    }
    let sim = Sim::start(&dir, Some(&state));
    sim.tool(&["tpm2_startup"]);
    sim.tool(&[
        "tpm2_nvread",
        "0x1500016",
        "-C",
        "o",
        "-P",
        "owner-password-MARKER",
        "-o",
        "back",
    ]);
    assert_eq!(sim.read("back"), b"nv-secret-MARKER-0123456789abcde");
}

fn flip_last(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    *b.last_mut().unwrap() ^= 1;
    std::fs::write(p, b).unwrap();
}
