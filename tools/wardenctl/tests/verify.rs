//! `wardenctl attest verify` on real quotes from a private swtpm: the good case and each
//! rejection, through the binary (exit status, table, JSON) and the library.

use std::path::PathBuf;
use std::process::Command;
use warden_tpm::eventlog::{EventLog, EventLogWriter, Tag, WARDEN_PCRS, component_parts};
use warden_tpm::host::{Swtpm, unique_temp_dir};
use warden_tpm::{DigestSet, PcrSelection, Tpm};
use wardenctl::reference::{Component, Reference};

const NONCE: [u8; 20] = [0x11; 20];

struct Evidence {
    quote: Vec<u8>,
    ak: Vec<u8>,
    log: Vec<u8>,
}

fn components() -> Vec<(Tag, &'static str, &'static [u8])> {
    vec![
        (Tag::Policy, "policy", b"compiled policy blob"),
        (Tag::CommandLine, "cmdline", b"require_tpm"),
        (
            Tag::Manifest,
            "manifest",
            b"warden-manifest 1\ndomain name=hello image=hello\n",
        ),
        (Tag::DomainImage, "image:hello", b"\x7fELF hello image"),
    ]
}

fn reference(parts: &[(Tag, &str, &[u8])]) -> Reference {
    Reference::new(
        "test",
        parts
            .iter()
            .map(|(t, n, b)| Component::new(*t, n, b))
            .collect(),
    )
}

/// Measures `parts` into a fresh swtpm exactly as the hypervisor does and quotes over `nonce`.
fn measured_boot(sw: &Swtpm, parts: &[(Tag, &str, &[u8])], nonce: &[u8]) -> Evidence {
    let mut t = Tpm::new(sw.connect().unwrap());
    let banks = t.active_banks().unwrap();
    t.transport().set_locality(2).unwrap();
    let mut buf = vec![0u8; 8192];
    let mut log = EventLogWriter::new(&mut buf, banks).unwrap();
    for pcr in WARDEN_PCRS {
        t.pcr_reset(pcr).unwrap();
    }
    for (tag, name, bytes) in parts {
        let d = DigestSet::of_parts(banks, &component_parts(name, bytes));
        t.pcr_extend(tag.pcr(), &d).unwrap();
        log.append_tagged(tag.pcr(), *tag, &d, name).unwrap();
    }
    for pcr in WARDEN_PCRS {
        let d = log.append_separator(pcr).unwrap();
        t.pcr_extend(pcr, &d).unwrap();
    }
    let ak = t.create_ak().unwrap();
    let q = t
        .quote(
            ak.handle,
            nonce,
            PcrSelection {
                banks,
                pcrs: 0b111 << 20,
            },
        )
        .unwrap();
    let mut quote = u16::try_from(q.attest.as_bytes().len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    quote.extend_from_slice(q.attest.as_bytes());
    quote.extend_from_slice(q.signature.as_bytes());
    Evidence {
        quote,
        ak: ak.public.as_bytes().to_vec(),
        log: log.as_bytes().to_vec(),
    }
}

/// The log without the event naming `component`.
fn without(log: &[u8], component: &str) -> Vec<u8> {
    let parsed = EventLog::parse(log).unwrap();
    let mut buf = vec![0u8; log.len()];
    let mut w = EventLogWriter::new(&mut buf, parsed.banks()).unwrap();
    for e in parsed.events().map(Result::unwrap) {
        if e.warden_tag().is_some_and(|(_, n)| n == component) {
            continue;
        }
        w.append(e.pcr, e.event_type, &e.digests, e.data).unwrap();
    }
    w.as_bytes().to_vec()
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: unique_temp_dir("wardenctl-test").unwrap(),
        }
    }
    fn put(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the binary; returns (exit code, stdout, stderr).
fn wardenctl(
    f: &Files,
    ev: &Evidence,
    reference: &Reference,
    nonce: &[u8],
    json: bool,
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wardenctl"));
    cmd.args(["attest", "verify"])
        .args(["--quote", &f.put("quote.bin", &ev.quote)])
        .args(["--ak", &f.put("ak.pub", &ev.ak)])
        .args(["--eventlog", &f.put("eventlog.bin", &ev.log)])
        .args([
            "--reference",
            &f.put(
                "reference.json",
                serde_json::to_string(reference).unwrap().as_bytes(),
            ),
        ])
        .args(["--nonce", &wardenctl::hex(nonce)]);
    if json {
        cmd.args(["--format", "json"]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn good_boot_verifies_and_each_rejection_is_specific() {
    let sw = Swtpm::start().unwrap();
    let other = Swtpm::start().unwrap();
    let parts = components();
    let reference = reference(&parts);
    let good = measured_boot(&sw, &parts, &NONCE);
    let f = Files::new();

    // The good case: exit 0, every row OK.
    let (code, out, err) = wardenctl(&f, &good, &reference, &NONCE, false);
    assert_eq!(code, 0, "{out}{err}");
    for name in [
        "policy",
        "cmdline",
        "manifest",
        "image:hello",
        "PCR 20",
        "PCR 21",
        "PCR 22",
    ] {
        let row = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{out}"));
        assert!(row.ends_with(" OK"), "{row}");
    }
    assert!(!out.contains("MISMATCH"), "{out}");

    // Each rejection: (case, evidence, reference, nonce, message that must appear).
    let other_ak = measured_boot(&other, &parts, &NONCE).ak;
    let mut tampered = parts.clone();
    tampered[3].2 = b"\x7fELF hello image, one byte flipped";
    let tampered_boot = measured_boot(&sw, &tampered, &NONCE);
    let cases: Vec<(&str, Evidence, &Reference, &[u8], &str)> = vec![
        (
            "stale nonce",
            Evidence {
                quote: good.quote.clone(),
                ak: good.ak.clone(),
                log: good.log.clone(),
            },
            &reference,
            &[0x22; 20],
            "stale nonce: the quote was made for nonce 1111",
        ),
        (
            "different key",
            Evidence {
                quote: good.quote.clone(),
                ak: other_ak,
                log: good.log.clone(),
            },
            &reference,
            &NONCE,
            "signed by a different key",
        ),
        (
            "event removed",
            Evidence {
                quote: good.quote.clone(),
                ak: good.ak.clone(),
                log: without(&good.log, "image:hello"),
            },
            &reference,
            &NONCE,
            "event removed from the log: no event for image:hello (PCR 22)",
        ),
        (
            "tampered image",
            tampered_boot,
            &reference,
            &NONCE,
            "MISMATCH image:hello (PCR 22)",
        ),
    ];
    for (name, ev, reference, nonce, message) in cases {
        let (code, out, err) = wardenctl(&f, &ev, reference, nonce, false);
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(
            err.contains(message),
            "{name}: stderr lacks {message:?}:\n{err}"
        );
        assert!(out.contains("verdict: FAILED"), "{name}: {out}");
    }
}

#[test]
fn removed_event_also_breaks_the_quoted_digest() {
    let sw = Swtpm::start().unwrap();
    let parts = components();
    let good = measured_boot(&sw, &parts, &NONCE);
    let ev = wardenctl::verify::Evidence {
        quote: &good.quote,
        ak_public: &good.ak,
        event_log: &without(&good.log, "manifest"),
        nonce: &NONCE,
    };
    let report = wardenctl::verify::verify(&ev, &reference(&parts)).unwrap();
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.check)
        .collect();
    assert_eq!(failed, ["pcr digest", "event log"]);
    let row = report
        .rows
        .iter()
        .find(|r| r.component == "manifest")
        .unwrap();
    assert_eq!((row.actual.as_str(), row.ok), ("(absent)", false));
}

#[test]
fn json_output_and_bad_inputs() {
    let sw = Swtpm::start().unwrap();
    let parts = components();
    let reference = reference(&parts);
    let good = measured_boot(&sw, &parts, &NONCE);
    let f = Files::new();
    let (code, out, _) = wardenctl(&f, &good, &reference, &NONCE, true);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["rows"].as_array().unwrap().len(), parts.len() + 3);
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );

    // Unparseable inputs exit 2 with a message naming the input.
    let truncated = Evidence {
        quote: good.quote[..good.quote.len() - 5].to_vec(),
        ak: good.ak.clone(),
        log: good.log.clone(),
    };
    let (code, _, err) = wardenctl(&f, &truncated, &reference, &NONCE, false);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("quote:"), "{err}");
    let bad_log = Evidence {
        quote: good.quote.clone(),
        ak: good.ak.clone(),
        log: good.log[..50].to_vec(),
    };
    let (code, _, err) = wardenctl(&f, &bad_log, &reference, &NONCE, false);
    assert_eq!((code, err.contains("event log:")), (2, true), "{err}");
}

/// Evidence from a real `cargo xtask attest` boot (tests/data): still verifies, and every
/// single-byte change to the quote is rejected (never a panic, never a pass).
#[test]
fn recorded_boot_verifies_and_any_quote_byte_flip_is_rejected() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let read = |n: &str| std::fs::read(data.join(n)).unwrap();
    let reference: Reference = serde_json::from_slice(&read("reference.json")).unwrap();
    let nonce = wardenctl::unhex(std::str::from_utf8(&read("nonce.hex")).unwrap()).unwrap();
    let (quote, ak, log) = (read("quote.bin"), read("ak.pub"), read("eventlog.bin"));
    let ev = |q: &[u8], a: &[u8], l: &[u8]| {
        wardenctl::verify::verify(
            &wardenctl::verify::Evidence {
                quote: q,
                ak_public: a,
                event_log: l,
                nonce: &nonce,
            },
            &reference,
        )
    };
    assert!(ev(&quote, &ak, &log).unwrap().ok);
    for i in 0..quote.len() {
        for bit in [0x01u8, 0x80] {
            let mut q = quote.clone();
            q[i] ^= bit;
            if let Ok(r) = ev(&q, &ak, &log) {
                assert!(
                    !r.ok,
                    "flipping bit {bit:#x} of quote byte {i} still verifies"
                );
            }
        }
    }
    // Every byte of every event digest (each bank), of every component's name in the log, and
    // of the AK's public point: flipping one bit must be rejected (an input error or a failed
    // report), never a pass. Other bytes (the Spec ID header's version fields and vendor string,
    // separator event data, the AK's attributes and scheme) must at least not panic.
    let parsed = EventLog::parse(&log).unwrap();
    let mut must_fail = std::collections::BTreeSet::new();
    let mut cover = |hay: &[u8], from: usize, needle: &[u8]| {
        let at = from
            + hay[from..]
                .windows(needle.len())
                .position(|w| w == needle)
                .unwrap_or_else(|| panic!("{needle:02x?} not found after byte {from}"));
        must_fail.extend(at..at + needle.len());
    };
    let mut digests = 0;
    for e in parsed.events().map(Result::unwrap) {
        for d in e.digests.iter() {
            cover(&log, e.offset, d.as_bytes());
            digests += 1;
        }
    }
    for c in &reference.components {
        cover(&log, 0, c.name.as_bytes());
    }
    assert!(
        digests >= 2 * 7,
        "recorded log too small: {digests} digests"
    );
    // TPM2B_PUBLIC of an ECC key: size, type, nameAlg, attributes, authPolicy (empty), symmetric,
    // scheme + hash, curve, kdf; then the point as two TPM2B_ECC_PARAMETERs.
    let x_at = 2 + 2 + 2 + 4 + 2 + 2 + 4 + 2 + 2;
    let x_len = usize::from(u16::from_be_bytes([ak[x_at], ak[x_at + 1]]));
    let y_at = x_at + 2 + x_len;
    let y_len = usize::from(u16::from_be_bytes([ak[y_at], ak[y_at + 1]]));
    assert_eq!(
        (x_len, y_len, y_at + 2 + y_len),
        (32, 32, ak.len()),
        "AK layout"
    );
    let point: Vec<usize> = (x_at..ak.len()).collect();
    let rejected = |r: Result<wardenctl::verify::Report, _>| r.is_err() || r.is_ok_and(|r| !r.ok);
    for i in 0..ak.len().max(log.len()) {
        if i < ak.len() {
            let mut a = ak.clone();
            a[i] ^= 0x01;
            let r = ev(&quote, &a, &log);
            assert!(
                !point.contains(&i) || rejected(r),
                "flipping AK byte {i} (the point) still verifies"
            );
        }
        if i < log.len() {
            let mut l = log.clone();
            l[i] ^= 0x01;
            let r = ev(&quote, &ak, &l);
            assert!(
                !must_fail.contains(&i) || rejected(r),
                "flipping event log byte {i} (a digest or a component name) still verifies"
            );
        }
    }
}

#[test]
fn log_subcommand_decodes_the_recorded_log() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let out = Command::new(env!("CARGO_BIN_EXE_wardenctl"))
        .args(["attest", "log"])
        .arg(data.join("eventlog.bin"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let reference: Reference =
        serde_json::from_slice(&std::fs::read(data.join("reference.json")).unwrap()).unwrap();
    for c in &reference.components {
        let line = text
            .lines()
            .find(|l| l.ends_with(&format!(" {}", c.name)))
            .unwrap_or_else(|| panic!("{} not listed:\n{text}", c.name));
        assert!(line.contains(&format!("PCR {}", c.pcr)), "{line}");
    }
    for pcr in WARDEN_PCRS {
        let want = format!(
            "  sha256  {pcr}: {}",
            wardenctl::hex(
                reference
                    .pcr(warden_tpm::HashAlg::Sha256, pcr)
                    .unwrap()
                    .as_bytes()
            )
        );
        assert!(text.contains(&want), "missing {want:?}:\n{text}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_wardenctl"))
        .args(["attest", "log"])
        .arg(data.join("ak.pub"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
