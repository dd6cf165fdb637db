//! `cargo xtask bench vtpm-ct`: a timing-leak test in the manner of dudect (Reparaz, Balasch,
//! Verbauwhede 2017) for the vTPM's secret-dependent code, each beside the code it replaced,
//! in the same run.
//!
//! Each test times one operation many times on inputs of two classes — a fixed secret input
//! and random ones — drawn in random order, and computes Welch's t between the two classes'
//! times, on all samples and on the samples below the 50th, 75th and 90th percentiles (the
//! crops dudect uses to cut interrupt and load noise); the largest |t| is reported. Below
//! 4.5 no leak is detected at that sample count; above it the time tells the classes apart.
//!
//! Tests (RSA-2048):
//! - decrypt: RSA_Decrypt's work (private operation + PKCS#1 v1.5 decoding) on the ciphertext
//!   1 vs random ciphertexts, same key. Old: what the engine ran before — the key rebuilt from
//!   p (`RsaPrivateKey::from_p_q`) and the `rsa` crate's unblinded decryption.
//! - sign: Sign's work (RSASSA-SHA256) with a fixed key vs keys drawn from a pool, random
//!   digests. Old: key rebuilt from p and the `rsa` crate's signature.
//! - sieve: the small-prime sieve up to the first survivor on a fixed 1024-bit base vs random
//!   bases. Old: a copy of the previous sieve (`%` residues, marks at base-dependent
//!   addresses, a scan that branches on the sieve bits).
//!
//! A wall clock cannot see the leaks that matter most here: a secret-dependent cache line or
//! branch costs nanoseconds against milliseconds of scheduling noise on a loaded machine (the
//! old code's |t| stays under 4.5 too). So the run ends with a second test that can: the same
//! operations under Valgrind's memcheck with the secrets marked undefined (`taint.rs`), which
//! reports every branch and memory address computed from them — new and old code side by side.
//!
//! `--samples N` sets the samples per class of the RSA tests (the sieve takes N / 2);
//! `--only rsa|sieve|control|taint` runs one part.
#![forbid(unsafe_code)]

mod taint;

use rand_core::{OsRng, RngCore};
use rsa::BigUint;
use std::time::Instant;
use warden_vtpm::probe;

/// Welch's t of two samples.
fn welch(a: &[f64], b: &[f64]) -> f64 {
    let stats = |x: &[f64]| {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
        (n, mean, var)
    };
    let (na, ma, va) = stats(a);
    let (nb, mb, vb) = stats(b);
    (ma - mb) / (va / na + vb / nb).sqrt()
}

/// Times `op` on `samples` inputs of each class in random order (after a warm-up of a tenth)
/// and returns the largest |t| over the crops, with the two classes' median times (µs). All
/// inputs are made before the first measurement, so that nothing but `op` differs between
/// the classes while the clock runs (drawing random inputs makes system calls).
fn leak_test<I>(
    samples: usize,
    mut input: impl FnMut(bool) -> I,
    mut op: impl FnMut(&I),
) -> (f64, f64, f64) {
    let warm = samples / 10;
    let mut coins = vec![0u8; 2 * (samples + warm)];
    OsRng.fill_bytes(&mut coins);
    let inputs: Vec<(bool, I)> = coins
        .iter()
        .map(|c| {
            let fixed = c & 1 == 0;
            (fixed, input(fixed))
        })
        .collect();
    let mut times: Vec<(bool, f64)> = Vec::with_capacity(2 * samples);
    for (i, (fixed, x)) in inputs.iter().enumerate() {
        let t0 = Instant::now();
        op(x);
        let dt = t0.elapsed().as_secs_f64() * 1e6;
        if i >= 2 * warm {
            times.push((*fixed, dt));
        }
    }
    let mut sorted: Vec<f64> = times.iter().map(|t| t.1).collect();
    sorted.sort_by(f64::total_cmp);
    let mut worst = 0f64;
    for pct in [100usize, 90, 75, 50] {
        let cut = sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)];
        let class = |f: bool| -> Vec<f64> {
            times
                .iter()
                .filter(|t| t.0 == f && t.1 <= cut)
                .map(|t| t.1)
                .collect()
        };
        let (a, b) = (class(true), class(false));
        if a.len() > 10 && b.len() > 10 {
            worst = worst.max(welch(&a, &b).abs());
        }
    }
    let median = |f: bool| {
        let mut v: Vec<f64> = times.iter().filter(|t| t.0 == f).map(|t| t.1).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (worst, median(true), median(false))
}

/// A random value below n (big-endian, n's length).
fn below(n: &[u8]) -> Vec<u8> {
    let mut c = vec![0u8; n.len()];
    OsRng.fill_bytes(&mut c);
    c[0] %= n[0];
    c
}

/// What the engine did per private operation before: the key rebuilt from n and p.
fn old_key(n: &[u8], p: &[u8]) -> rsa::RsaPrivateKey {
    let n = BigUint::from_bytes_be(n);
    let p = BigUint::from_bytes_be(p);
    let q = &n / &p;
    rsa::RsaPrivateKey::from_p_q(p, q, BigUint::from(65537u32)).expect("valid key")
}

const SHA256_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The previous sieve, kept here only as the reference of the leak test.
mod old_sieve {
    /// Odd primes below 2^18.
    pub fn small_primes() -> Vec<u64> {
        let bound = 1usize << 18;
        let mut composite = vec![false; bound];
        let mut out = Vec::new();
        for i in (3..bound).step_by(2) {
            if !composite[i] {
                out.push(i as u64);
                for j in (i * i..bound).step_by(2 * i) {
                    composite[j] = true;
                }
            }
        }
        out
    }
    fn residue(x: &[u64], q: u64) -> u64 {
        let mut r = 0u64;
        for w in x.iter().rev() {
            r = ((u128::from(r) << 64 | u128::from(*w)) % u128::from(q)) as u64;
        }
        r
    }
    const WINDOW: usize = 1 << 14;
    /// The previous code's window sieve and its scan up to the first survivor.
    pub fn first(base: &[u64], e: u64, primes: &[u64]) -> Option<usize> {
        let mut composite = [0u64; WINDOW / 64];
        let mut mark = |p: u64, r: u64| {
            let t = p - r;
            let k = (t + (t & 1) * p) / 2;
            let mut k = (k - p * u64::from(k >= p)) as usize;
            while k < WINDOW {
                composite[k / 64] |= 1 << (k % 64);
                k += p as usize;
            }
        };
        // Groups of primes whose product fits in 64 bits, one multi-limb residue each.
        let (mut group, mut q) = (Vec::new(), 1u64);
        for &p in primes {
            match q.checked_mul(p) {
                Some(q2) if group.len() < 4 => q = q2,
                _ => {
                    let rq = residue(base, q);
                    for &g in &group {
                        mark(g, rq % g);
                    }
                    group.clear();
                    q = p;
                }
            }
            group.push(p);
        }
        let rq = residue(base, q);
        for &g in &group {
            mark(g, rq % g);
        }
        mark(e, (residue(base, e) + e - 1) % e);
        (0..WINDOW).find(|&k| composite[k / 64] >> (k % 64) & 1 == 0)
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs this program's taint tests under memcheck and returns, per test, the new and old
/// code's findings. memcheck's log (path printed) keeps every report's stack.
fn taint_parent(n: &[u8], p: &[u8]) -> Vec<(&'static str, taint::Findings, taint::Findings)> {
    let exe = std::env::current_exe().expect("own path");
    let log = std::env::temp_dir().join(format!(
        "warden-vtpm-ct-memcheck-{}.log",
        std::process::id()
    ));
    let out = std::process::Command::new("valgrind")
        .arg("--tool=memcheck")
        .arg("--error-limit=no")
        .arg(format!("--log-file={}", log.display()))
        .arg(exe)
        .arg("--taint-child")
        .arg(hex(n))
        .arg(hex(p))
        .output()
        .expect("valgrind (Debian package valgrind; cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "the memcheck child failed: {}; see {}",
        String::from_utf8_lossy(&out.stderr),
        log.display()
    );
    eprintln!("memcheck report: {}", log.display());
    let text = std::fs::read_to_string(&log).expect("memcheck log");
    let engine_src = concat!(env!("CARGO_MANIFEST_DIR"), "/../engine/src");
    let found = taint::parse_log(&text, std::path::Path::new(engine_src));
    [
        (
            "control",
            "control: one branch on a word, public (new) / secret (old)",
        ),
        ("decrypt", "RSA-2048 decrypt (PKCS#1 v1.5)"),
        ("sign", "RSA-2048 sign (RSASSA-SHA256)"),
        ("sieve", "sieve of a 1024-bit base"),
    ]
    .into_iter()
    .map(|(key, name)| {
        let get = |which: &str| {
            found
                .get(&(key.to_string(), which.to_string()))
                .cloned()
                .unwrap_or_default()
        };
        (name, get("new"), get("old"))
    })
    .collect()
}

fn main() {
    let mut samples = 2000usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--samples" => {
                samples = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--samples N")
            }
            "--only" => only = args.next(),
            "--taint-child" => {
                let mut hex = || unhex(&args.next().expect("--taint-child N P"));
                let (n, p) = (hex(), hex());
                taint::child(&n, &p);
                return;
            }
            other => panic!(
                "unknown argument {other} (known: --samples N, --only rsa|sieve|control|taint)"
            ),
        }
    }
    eprintln!("generating RSA-2048 keys...");
    let mut keys: Vec<probe::Key> = (0..9u8)
        .map(|i| probe::Key::generate(2048, &[b'k', i]).expect("keygen"))
        .collect();
    let parts: Vec<(Vec<u8>, Vec<u8>)> = keys.iter().map(|k| k.parts()).collect();
    let (n0, p0) = parts[0].clone();
    let mut one = vec![0u8; n0.len()];
    *one.last_mut().expect("nonempty") = 1;
    let pick = |fixed: bool| -> usize {
        if fixed {
            0
        } else {
            1 + (OsRng.next_u32() as usize % 8)
        }
    };
    let digest = || {
        let mut d = [0u8; 32];
        OsRng.fill_bytes(&mut d);
        d
    };
    let mut rows = Vec::new();

    let run = |what: &str| only.as_deref().is_none_or(|o| o == what);
    if run("rsa") {
        eprintln!("decrypt...");
        let new = leak_test(
            samples,
            |fixed| if fixed { one.clone() } else { below(&n0) },
            |ct| {
                std::hint::black_box(keys[0].decrypt_pkcs1(ct));
            },
        );
        let old = leak_test(
            samples,
            |fixed| if fixed { one.clone() } else { below(&n0) },
            |ct| {
                let k = old_key(&n0, &p0);
                std::hint::black_box(k.decrypt(rsa::Pkcs1v15Encrypt, ct).ok());
            },
        );
        rows.push((
            "RSA-2048 decrypt (PKCS#1 v1.5): ciphertext 1 vs random",
            new,
            old,
        ));

        eprintln!("sign...");
        let new = leak_test(
            samples,
            |fixed| (pick(fixed), digest()),
            |(i, d)| {
                std::hint::black_box(keys[*i].sign_pkcs1_sha256(d));
            },
        );
        let old = leak_test(
            samples,
            |fixed| (pick(fixed), digest()),
            |(i, d)| {
                let k = old_key(&parts[*i].0, &parts[*i].1);
                let pad = rsa::Pkcs1v15Sign {
                    hash_len: Some(32),
                    prefix: SHA256_PREFIX.to_vec().into_boxed_slice(),
                };
                std::hint::black_box(k.sign(pad, d).ok());
            },
        );
        rows.push((
            "RSA-2048 sign (RSASSA-SHA256): fixed key vs random keys",
            new,
            old,
        ));
    }

    if run("sieve") {
        eprintln!("sieve...");
        let primes = old_sieve::small_primes();
        let mut fixed_base = [0x5555_5555_5555_5555u64; 16];
        fixed_base[15] |= 0xC000_0000_0000_0000;
        fixed_base[0] |= 1;
        let base = |fixed: bool| {
            if fixed {
                fixed_base
            } else {
                let mut b = [0u64; 16];
                for l in b.iter_mut() {
                    *l = OsRng.next_u64();
                }
                b[15] |= 0xC000_0000_0000_0000;
                b[0] |= 1;
                b
            }
        };
        // Two fixed bases: a pattern, and one random draw (the random class's Hamming weight).
        let drawn = base(false);
        for (name, fixed) in [
            (
                "sieve of a 1024-bit base: base 0x5555…55 vs random",
                fixed_base,
            ),
            ("sieve of a 1024-bit base: one random base vs random", drawn),
        ] {
            let input = |f: bool| if f { fixed } else { base(false) };
            let new = leak_test(samples / 2, input, |b| {
                std::hint::black_box(probe::sieve_first(b, 65537));
            });
            let old = leak_test(samples / 2, input, |b| {
                std::hint::black_box(old_sieve::first(b, 65537, &primes));
            });
            rows.push((name, new, old));
        }
    }

    if run("control") {
        // Calibration: straight-line arithmetic with no branch or address on the data, of
        // the sieve's duration, on the sieve's inputs. A |t| here is the environment's.
        eprintln!("control...");
        let base = |fixed: bool| {
            let mut b = [0x5555_5555_5555_5555u64; 16];
            if !fixed {
                for l in b.iter_mut() {
                    *l = OsRng.next_u64();
                }
            }
            b
        };
        let control = |b: &[u64; 16]| {
            let mut acc = 0u64;
            for i in 0..200_000u64 {
                acc = acc.wrapping_mul(b[(i & 15) as usize] | 1).wrapping_add(i);
            }
            std::hint::black_box(acc);
        };
        let r = leak_test(samples / 2, base, control);
        rows.push(("control: multiply chain, 0x5555…55 vs random", r, r));
    }
    let taint_rows = if run("taint") {
        eprintln!("taint (memcheck)...");
        Some(taint_parent(&n0, &p0))
    } else {
        None
    };
    println!(
        "| test | samples per class | new: max abs(t) | old: max abs(t) | new median µs (fixed / random) | old median µs (fixed / random) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, new, old) in rows.iter() {
        let n = if name.starts_with("sieve") {
            samples / 2
        } else {
            samples
        };
        println!(
            "| {name} | {n} | {:.2}{} | {:.2}{} | {:.0} / {:.0} | {:.0} / {:.0} |",
            new.0,
            if new.0 < 4.5 { "" } else { " (leak)" },
            old.0,
            if old.0 < 4.5 { "" } else { " (leak)" },
            new.1,
            new.2,
            old.1,
            old.2
        );
    }
    println!("\nthreshold: abs(t) >= 4.5 means the time tells the classes apart (dudect)");
    if let Some(rows) = taint_rows {
        println!(
            "\n| memcheck taint test (secrets undefined) | new: undeclared sites (reports) | old: undeclared sites (reports) |"
        );
        println!("|---|---:|---:|");
        for (name, new, old) in rows.iter() {
            println!("| {name} | {} | {} |", new.cell(), old.cell());
        }
        println!(
            "\nthreshold: any undeclared site (> 0) is a leak: a branch or memory address computed from a secret; \
             declared: a branch on a value the TPM's answer reveals anyway, marked `declassify` on its source line"
        );
        for (name, new, _) in rows.iter() {
            for site in &new.declared {
                println!("declared in {name}: {site}");
            }
        }
    }
    // Keep the keys alive (and used) to the end of the run.
    std::hint::black_box(&mut keys);
}
