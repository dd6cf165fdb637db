//! Golden tests: every `policy/examples/*.wpol` is run through `wardenpol` and the output is
//! compared byte for byte with the `.expected` file beside it. `UPDATE_EXPECT=1` rewrites them.
//!
//! Commands per example: `check`; `test` for examples that compile; plus every
//! `// golden: ARGS` line in the example itself.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policy/examples")
}

/// Runs wardenpol in the examples folder; returns (transcript, exit code).
fn run(args: &[&str]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardenpol"))
        .args(args)
        .current_dir(examples())
        .output()
        .expect("run wardenpol");
    let code = out.status.code().expect("wardenpol was killed by a signal");
    let mut t = format!("$ wardenpol {}\n", args.join(" "));
    t.push_str(&String::from_utf8_lossy(&out.stdout));
    if !out.stderr.is_empty() {
        t.push_str("--- stderr ---\n");
        t.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    t.push_str(&format!("[exit {code}]\n\n"));
    (t, code)
}

#[test]
fn examples_match_expected_output() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .expect("examples folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wpol"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "examples missing: {files:?}");
    let update = update_requested(std::env::var("UPDATE_EXPECT").ok().as_deref());
    let mut mismatches = Vec::new();
    let mut bad_count = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let src = std::fs::read_to_string(f).unwrap();
        let bad = name.starts_with("bad-");
        let mut transcript = String::new();

        let (t, code) = run(&["check", &name]);
        transcript.push_str(&t);
        if bad {
            bad_count += 1;
            assert_eq!(code, 1, "{name}: bad example must exit 1");
            // Diagnostics carry file:line:col.
            let loc = format!("{name}:");
            assert!(
                t.lines().any(|l| l.contains(&loc) && l.rsplit(':').take(2).all(|n| n.trim().parse::<u32>().is_ok())),
                "{name}: no file:line:col location in\n{t}"
            );
            assert!(t.contains("error[E"), "{name}: no error code in\n{t}");
        } else {
            assert_eq!(code, 0, "{name}: good example must check clean\n{t}");
            let (t, code) = run(&["test", &name]);
            assert_eq!(code, 0, "{name}: expectations must pass\n{t}");
            transcript.push_str(&t);
            let (t, code) = run(&["fmt", "--check", &name]);
            assert_eq!(code, 0, "{name}: examples are canonically formatted\n{t}");
        }
        for line in src.lines() {
            if let Some(args) = line.trim().strip_prefix("// golden:") {
                let args: Vec<&str> = args.split_whitespace().collect();
                transcript.push_str(&run(&args).0);
            }
        }

        let expected_path = f.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &transcript).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(e) if e == transcript => {}
            Ok(e) => mismatches.push(format!("{name}: output differs\n--- expected\n{e}\n--- actual\n{transcript}")),
            Err(_) => {
                mismatches.push(format!("{name}: missing {} (run with UPDATE_EXPECT=1)", expected_path.display()))
            }
        }
    }
    assert!(bad_count >= 5, "at least five bad-* examples");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// `UPDATE_EXPECT=1` rewrites the golden files; unset, empty or `0` only compares. Any other
/// value is refused rather than guessed at (a typo must not silently rewrite the goldens).
fn update_requested(value: Option<&str>) -> bool {
    match value {
        None | Some("" | "0") => false,
        Some("1") => true,
        Some(other) => panic!("UPDATE_EXPECT={other:?}: use 1 to rewrite the golden files, 0 or unset to compare"),
    }
}

#[test]
fn update_expect_rewrites_only_when_set_to_1() {
    for (value, update) in [(None, false), (Some(""), false), (Some("0"), false), (Some("1"), true)] {
        assert_eq!(update_requested(value), update, "UPDATE_EXPECT={value:?}");
    }
    for typo in ["yes", "true", "01"] {
        assert!(std::panic::catch_unwind(|| update_requested(Some(typo))).is_err(), "UPDATE_EXPECT={typo:?} accepted");
    }
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(run(&["check", "does-not-exist.wpol"]).1, 2);
    assert_eq!(run(&["frobnicate"]).1, 2);
    assert_eq!(run(&["flow", "demo.wpol", "nobody_t", "mgmt_t"]).1, 2);
    let (t, code) = run(&["--format", "json", "query", "demo.wpol", "-s", "mgmt", "-c", "domain"]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("did you mean `mgmt_t`"), "{t}");
}

#[test]
fn compile_writes_a_loadable_binary_and_json_dump() {
    let dir = std::env::temp_dir().join(format!("wardenpol-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("demo.bin");
    let dump = dir.join("demo.json");
    let (t, code) = run(&["compile", "demo.wpol", "-o", bin.to_str().unwrap(), "--dump", dump.to_str().unwrap()]);
    assert_eq!(code, 0, "{t}");
    let bytes = std::fs::read(&bin).unwrap();
    let p = warden_policy::Policy::load(&bytes).expect("compiled policy loads");
    assert!(p.type_by_name("mgmt_t").is_some());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    assert!(json["access_vectors"].as_array().is_some_and(|a| !a.is_empty()));
    let (t, code) = run(&["decide", bin.to_str().unwrap(), "mgmt_t", "guest1_t", "introspect", "readmem"]);
    assert_eq!(code, 1, "deny is exit 1");
    assert!(t.contains("deny  mgmt_t guest1_t: introspect readmem"), "{t}");
    // A bad policy fails to compile with exit 1 and writes nothing.
    let out = dir.join("bad.bin");
    assert_eq!(run(&["compile", "bad-noflow.wpol", "-o", out.to_str().unwrap()]).1, 1);
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn graph_renders_svg_with_graphviz() {
    let dir = std::env::temp_dir().join(format!("wardenpol-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("demo.svg");
    let (t, code) = run(&["graph", "demo.wpol", "-o", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "graphviz `dot` is installed by `cargo xtask setup`:\n{t}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg"), "not an SVG document:\n{text}");
    // Every type of the policy is a node in the picture.
    let (dot, _) = run(&["graph", "demo.wpol"]);
    for ty in ["mgmt_t", "guest1_t"] {
        assert!(dot.contains(ty) && text.contains(ty), "{ty} missing from the graph");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
