//! The policies the whole-system scenarios boot with (`policy/scenarios/*.wpol`) pass
//! `wardenpol check` and `wardenpol test`, including the `assert noflow` that keeps the hostile
//! domain of the ipc/hostile scenarios from ever reaching the peers; a planted flow fails the
//! check with E0021.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wardenpol(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardenpol")).args(args).current_dir(root()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_scenario_policy_passes_check_and_test() {
    let dir = root().join("policy/scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wpol"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    for n in &names {
        let path = format!("policy/scenarios/{n}");
        let (code, out) = wardenpol(&["check", &path]);
        assert_eq!(code, 0, "wardenpol check {path}:\n{out}");
        assert!(out.contains("0 warning(s)"), "{path} has lint warnings:\n{out}");
        let (code, out) = wardenpol(&["test", &path]);
        assert_eq!(code, 0, "wardenpol test {path}:\n{out}");
    }
    // Every scenario that boots domains names one of these policies.
    for e in std::fs::read_dir(root().join("tests/scenarios")).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        if text.contains("[[domain]]") {
            let p = text.lines().find_map(|l| l.strip_prefix("policy = \"")).unwrap_or_else(|| panic!("{:?} has no policy", e.path()));
            assert!(p.trim_end_matches('"').starts_with("policy/"), "{:?}", e.path());
        }
    }
}

#[test]
fn the_hostile_domain_can_never_reach_the_peers() {
    let src = std::fs::read_to_string(root().join("policy/scenarios/ipc.wpol")).unwrap();
    assert!(src.contains("assert noflow hostile_t -> peers;"));
    let (code, out) = wardenpol(&["flow", "policy/scenarios/ipc.wpol", "hostile_t", "ping_t"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": NO:"), "{out}");
    // Plant an indirect path (hostile_t -> console -> hv_t -> audit_read -> ping_t).
    let dir = std::env::temp_dir().join(format!("wardenpol-scen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let planted = dir.join("planted.wpol");
    std::fs::write(&planted, format!("{src}\nallow ping_t hv_t: hypervisor audit_read;\n")).unwrap();
    let (code, out) = wardenpol(&["check", planted.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("E0021"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
