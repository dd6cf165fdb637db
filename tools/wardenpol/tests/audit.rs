//! `wardenpol audit`: audit records as the hypervisor writes them — a binary dump, raw records,
//! or the `audit-hex` lines a domain prints — decode to `avc:` lines and JSON with the names of
//! the policy that decided; malformed data exits 1 with a reason.

use std::path::PathBuf;
use std::process::Command;

use warden_ipc::audit::{AuditRing, HEADER_LEN, RECORD_LEN, Record, Verdict};
use warden_ipc::DomId;
use warden_policy::{Class, Policy, perms};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wardenpol(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardenpol")).args(args).current_dir(root()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wardenpol-audit-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Two records from the ipc scenario's policy: a denied bind and an audited (granted) map.
fn records() -> (Vec<Record>, [u8; 32]) {
    let src = std::fs::read_to_string(root().join("policy/scenarios/ipc.wpol")).unwrap();
    let blob = warden_policy_compiler::compile(&src).unwrap().to_binary();
    let p = Policy::load(&blob).unwrap();
    let t = |n| p.type_by_name(n).unwrap();
    let base = Record {
        seq: 0,
        hypercall: 17,
        source_dom: DomId(2),
        target_dom: DomId(0),
        source: t("hostile_t"),
        target: t("ping_t"),
        class: Class::Evtchn,
        verdict: Verdict::Denied,
        perms: perms::evtchn::BIND,
        policy_hash: p.hash(),
        time: 5,
    };
    let map = Record {
        seq: 1,
        hypercall: 22,
        source_dom: DomId(1),
        source: t("pong_t"),
        class: Class::Grant,
        verdict: Verdict::Granted,
        perms: perms::grant::MAP_RW,
        ..base
    };
    (vec![base, map], p.hash())
}

#[test]
fn a_dump_decodes_to_avc_lines_and_json_with_names() {
    let (recs, _) = records();
    let mut ring: AuditRing<4> = AuditRing::new();
    for r in &recs {
        ring.push(*r);
    }
    let mut dump = vec![0u8; HEADER_LEN + 4 * RECORD_LEN];
    let n = ring.read_into(0, &mut dump).unwrap() as usize;
    dump.truncate(HEADER_LEN + n * RECORD_LEN);
    let path = tmp("dump.bin");
    std::fs::write(&path, &dump).unwrap();
    let p = path.to_str().unwrap();

    let (code, out, err) = wardenpol(&["audit", p, "--policy", "policy/scenarios/ipc.wpol"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(
        "avc: denied { bind } for seq=0 hypercall=evtchn_bind sdom=2 scontext=hostile_t tdom=0 tcontext=ping_t tclass=evtchn policy="
    ), "{out}");
    assert!(lines[1].starts_with("avc: granted { map_rw } for seq=1 hypercall=grant_map sdom=1 scontext=pong_t"), "{out}");
    assert!(lines[2].contains("0 dropped"), "{out}");

    // Without the policy: numbers, never guessed names.
    let (_, out, _) = wardenpol(&["audit", p]);
    assert!(out.contains("scontext=type#") && !out.contains("hostile_t"), "{out}");

    let (code, out, _) = wardenpol(&["--format", "json", "audit", p, "--policy", "policy/scenarios/ipc.wpol"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["records"][0]["scontext"], "hostile_t");
    assert_eq!(v["records"][0]["perms"], serde_json::json!(["bind"]));
    assert_eq!(v["records"][1]["result"], "granted");
    assert_eq!(v["dropped"], 0);
}

#[test]
fn console_hex_lines_and_raw_records_decode_too() {
    let (recs, _) = records();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut text = String::from("some other console line\n");
    for r in &recs {
        let b = r.encode();
        text.push_str(&format!("[auditor] audit-hex {} 1 {}\n", r.seq + 7, hex(&b[48..])));
        text.push_str(&format!("[auditor] audit-hex {} 0 {}\n", r.seq + 7, hex(&b[..48])));
    }
    // "some other console line" is not hex: a clean error.
    let bad = tmp("bad.log");
    std::fs::write(&bad, &text).unwrap();
    let (code, _, err) = wardenpol(&["audit", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("line 1: not an audit record"), "{err}");

    let log = tmp("serial.log");
    std::fs::write(&log, &text["some other console line\n".len()..]).unwrap();
    let (code, out, err) = wardenpol(&["audit", log.to_str().unwrap(), "--policy", "policy/scenarios/ipc.wpol"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2);
    assert!(out.contains("scontext=hostile_t") && out.contains("scontext=pong_t"), "{out}");

    let raw = tmp("raw.bin");
    std::fs::write(&raw, [recs[0].encode(), recs[1].encode()].concat()).unwrap();
    let (code, out, _) = wardenpol(&["audit", raw.to_str().unwrap()]);
    assert_eq!((code, out.lines().count()), (0, 2));

    let mut broken = recs[0].encode();
    broken[32] = 99;
    std::fs::write(&raw, broken).unwrap();
    let (code, _, err) = wardenpol(&["audit", raw.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown class 99"), "{err}");
    let (code, _, _) = wardenpol(&["audit", "/nonexistent/audit.bin"]);
    assert_eq!(code, 2, "I/O errors exit 2");
}
