//! Scriptable exit codes, as documented in `policy/README.md`: each command's positive and
//! negative answer, and usage errors that list the valid names.

use std::path::PathBuf;
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policy/examples")
}

fn wardenpol(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardenpol")).args(args).current_dir(examples()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().expect("not killed by a signal"), text)
}

#[test]
fn each_command_answers_with_its_exit_code() {
    let dir = std::env::temp_dir().join(format!("wardenpol-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("demo.bin");
    let bin = bin.to_str().unwrap();
    assert_eq!(wardenpol(&["compile", "demo.wpol", "-o", bin]).0, 0);

    // (arguments, exit code, text the output must contain)
    let cases: &[(&[&str], i32, &str)] = &[
        (&["decide", bin, "mgmt_t", "guest1_t", "domain", "pause"], 0, "allow mgmt_t guest1_t: domain pause"),
        (&["decide", bin, "mgmt_t", "guest1_t", "domain", "pause,build"], 1, "deny  mgmt_t guest1_t: domain build"),
        (&["decide", bin, "guest1_t", "guest2_t", "introspect", "*"], 1, "deny  guest1_t guest2_t: introspect readmem"),
        (&["decide", bin, "mgmt_t", "guest1_t", "mmu", "map"], 2, "classes: hypervisor, domain, introspect"),
        (&["decide", bin, "mgmt_t", "guest1_t", "domain", "readmem"], 2, "`domain` permissions: getinfo, shutdown"),
        (&["decide", bin, "nobody_t", "guest1_t", "domain", "pause"], 2, "unknown type or attribute `nobody_t`"),
        (&["flow", "flow.wpol", "secret_t", "public_t"], 1, "YES"),
        (&["flow", "flow.wpol", "public_t", "secret_t"], 0, "NO"),
        (&["flow", "flow.wpol", "secret_t", "public_t", "--exclude", "relay2_t"], 0, "NO"),
        (&["query", "demo.wpol", "-s", "mgmt_t", "-t", "guest1_t"], 0, "allow mgmt_t guest1_t: domain"),
        (&["query", "demo.wpol", "-s", "guest1_t", "-t", "guest2_t"], 1, "no permission matches source `guest1_t`, target `guest2_t`"),
        (&["query", "demo.wpol", "-c", "mmu"], 2, "unknown class `mmu`; classes: hypervisor, domain"),
        (&["test", "demo.wpol"], 0, "passed, 0 failed"),
        (&["check", "bad-perm.wpol"], 1, "error[E0004]"),
        (&["check", "no-such-file.wpol"], 2, "cannot read"),
    ];
    for (args, code, text) in cases {
        let (got, out) = wardenpol(args);
        assert_eq!(got, *code, "wardenpol {}\n{out}", args.join(" "));
        assert!(out.contains(text), "wardenpol {}: `{text}` missing in\n{out}", args.join(" "));
    }
    // JSON output keeps the same exit codes.
    assert_eq!(wardenpol(&["--format", "json", "decide", bin, "mgmt_t", "guest1_t", "domain", "build"]).0, 1);
    assert_eq!(wardenpol(&["--format", "json", "flow", "flow.wpol", "secret_t", "public_t"]).0, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
