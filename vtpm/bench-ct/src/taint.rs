//! The leakage test a wall clock cannot do: under Valgrind's memcheck, the secrets are marked
//! undefined (ctgrind, Langley 2010) and memcheck reports every conditional branch and every
//! memory address computed from them — the two channels of cache and branch-predictor
//! attacks, which a dudect t-test on a loaded machine cannot resolve (a cache-line or
//! predictor difference is a few ns against a multi-ms operation's scheduling noise).
//!
//! The statistic is the number of distinct sites (innermost file:line) of the reports memcheck
//! writes while an operation runs; the threshold is 0: any site is a leak. Except declared
//! sites: a branch on a value the TPM's answer reveals anyway (a decoding's verdict, the
//! prime search's survivor) is marked by a `// declassify: why` comment on the line above it
//! in the engine's sources, and counted apart. What memcheck cannot see: instructions whose
//! time depends on their operands without a branch (`div`): the new code divides only public
//! values (small primes, e; secrets go through `CtDivisor`), the old sieve's `%` on the
//! secret base was `__umodti3`, whose branches memcheck does see.

use crabgrind::memcheck::{MemState, mark_mem};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use warden_vtpm::probe;

/// Marks `words` undefined: from here on memcheck tracks every value computed from them.
/// (crabgrind 0.1.9 — the last that builds against Debian's Valgrind 3.19 headers — reports
/// this request's success as an error, so its result is not used; the control row shows
/// that marking works: a branch on a marked word counts one site.)
fn secret(words: &mut [u64]) {
    let _ = mark_mem(
        words.as_mut_ptr().cast(),
        8 * words.len(),
        MemState::Undefined,
    );
}

fn secret_bytes(bytes: &mut [u8]) {
    let _ = mark_mem(bytes.as_mut_ptr().cast(), bytes.len(), MemState::Undefined);
}

/// Runs `op` between two markers in memcheck's log, which the parent uses to attribute each
/// report to its test.
fn section(test: &str, which: &str, op: impl FnOnce()) {
    crabgrind::println!("warden-taint {test} {which}");
    op();
    crabgrind::println!("warden-taint end");
}

/// The taint tests, in the child that runs under memcheck; one line per test, "name new old".
/// `n` and `p` are an RSA-2048 key's modulus and first prime (big-endian), made by the parent
/// (key generation under memcheck would take minutes).
pub fn child(n: &[u8], p: &[u8]) {
    assert!(
        matches!(crabgrind::run_mode(), crabgrind::RunMode::Valgrind),
        "the taint test runs under valgrind --tool=memcheck"
    );
    // Positive control: one branch on a secret word is one site; the same work on a public
    // word, none.
    let branch = |w: &[u64; 1]| {
        if std::hint::black_box(w[0]) & 1 == 1 {
            std::hint::black_box(1u32);
        }
    };
    let mut w = [std::hint::black_box(0x1234_5677u64)];
    section("control", "new", || branch(&w));
    secret(&mut w);
    section("control", "old", || branch(&w));

    let mut ct = vec![0u8; n.len()];
    ct[1] = 0x5a;
    ct[n.len() - 1] = 0x33;

    // Decrypt: the new key's every secret word undefined; the old code's key rebuilt from an
    // undefined p.
    let mut key = probe::Key::from_parts(n, p).expect("valid key");
    for w in key.secret_words() {
        secret(w);
    }
    section("decrypt", "new", || {
        std::hint::black_box(key.decrypt_pkcs1(&ct));
    });
    // The old code's key, rebuilt (as before, per operation) from a p marked undefined.
    let old_key = || {
        let mut pb = p.to_vec();
        secret_bytes(&mut pb);
        super::old_key(n, &pb)
    };
    section("decrypt", "old", || {
        let k = old_key();
        std::hint::black_box(k.decrypt(rsa::Pkcs1v15Encrypt, &ct).ok());
    });

    let digest = [0x42u8; 32];
    section("sign", "new", || {
        std::hint::black_box(key.sign_pkcs1_sha256(&digest));
    });
    section("sign", "old", || {
        let k = old_key();
        let pad = rsa::Pkcs1v15Sign {
            hash_len: Some(32),
            prefix: super::SHA256_PREFIX.to_vec().into_boxed_slice(),
        };
        std::hint::black_box(k.sign(pad, &digest).ok());
    });

    // The sieve of an undefined 1024-bit base (the prime search's secret input).
    let primes = super::old_sieve::small_primes();
    let mut base = [0x0123_4567_89ab_cdefu64; 16];
    base[15] |= 0xC000_0000_0000_0000;
    base[0] |= 1;
    section("sieve", "new", || {
        let mut b = base;
        secret(&mut b);
        std::hint::black_box(probe::sieve_first(&b, 65537));
    });
    section("sieve", "old", || {
        let mut b = base;
        secret(&mut b);
        std::hint::black_box(super::old_sieve::first(&b, 65537, &primes));
    });
}

/// What memcheck found in one test's run of one implementation.
#[derive(Clone, Default, Debug)]
pub struct Findings {
    /// Reports (each secret-dependent branch or address as it executes, stacks deduplicated).
    pub reports: usize,
    /// Distinct sites (innermost file:line) not declared.
    pub undeclared: BTreeSet<String>,
    /// Distinct sites whose source line says `declassify`.
    pub declared: BTreeSet<String>,
}

impl Findings {
    /// The table cell: undeclared sites, with the report count; "(leak)" past the threshold.
    pub fn cell(&self) -> String {
        format!(
            "{} ({} reports){}",
            self.undeclared.len(),
            self.reports,
            if self.undeclared.is_empty() {
                ""
            } else {
                " (leak)"
            }
        )
    }
}

/// The line `line` (1-based) of the file named `name` under `dir` (the engine's sources)
/// and the line before it (where the mark stands, rustfmt moving trailing comments).
fn source_line(dir: &Path, name: &str, line: usize) -> Option<String> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = source_line(&path, name, line) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|f| f == name) {
            let text = std::fs::read_to_string(&path).ok()?;
            let lines: Vec<&str> = text.lines().collect();
            let at = line.checked_sub(1)?;
            return Some(
                lines[at.saturating_sub(1)..=at.min(lines.len().checked_sub(1)?)].join("\n"),
            );
        }
    }
    None
}

/// Splits memcheck's log by the child's markers and sorts each uninitialised-value report
/// (conditional jump, or a value used as an address) by its innermost frame: a site in the
/// engine's sources whose line, or the comment line just above it, carries `declassify` is
/// declared; any other is a leak.
pub fn parse_log(log: &str, engine_src: &Path) -> BTreeMap<(String, String), Findings> {
    let mut out: BTreeMap<(String, String), Findings> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut pending = false;
    for line in log.lines() {
        if let Some(i) = line.find("warden-taint ") {
            let mut f = line[i + "warden-taint ".len()..].split_whitespace();
            current = match (f.next(), f.next()) {
                (Some(t), Some(w)) => Some((t.to_string(), w.to_string())),
                _ => None,
            };
            pending = false;
            continue;
        }
        if line.contains("depends on uninitialised value")
            || line.contains("Use of uninitialised value")
        {
            pending = true;
            continue;
        }
        if pending && line.contains(" at 0x") {
            pending = false;
            let Some(key) = current.clone() else { continue };
            let entry = out.entry(key).or_default();
            entry.reports += 1;
            // "at 0xADDR: function (file.rs:LINE)" or "(in /object)".
            let site = line
                .rsplit_once('(')
                .map(|(_, s)| s.trim_end_matches(')').to_string())
                .unwrap_or_default();
            let declared = site
                .rsplit_once(':')
                .and_then(|(file, n)| source_line(engine_src, file, n.parse().ok()?))
                .is_some_and(|src| src.contains("declassify"));
            if declared {
                entry.declared.insert(site);
            } else {
                entry.undeclared.insert(site);
            }
        }
    }
    out
}
