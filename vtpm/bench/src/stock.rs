//! The stock-client table: a fixed tpm2-tools workload (the same tool binaries, each command a
//! process as users run them) against vtpm-sim over the `mssim` and the `swtpm` TCTI and
//! against swtpm over the `swtpm` TCTI, in one run. This is what users see, write pattern and
//! all: tpm2-tss's mssim TCTI writes each command in two `write`s, which a server that delays
//! its ACKs turns into a 40 ms stall per command that the raw-command table cannot show.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The workload: (label, arguments). Run in this order in a fresh folder against a fresh
/// server after `tpm2_startup -c`; without a resource manager, `tpm2_flushcontext -t` frees the
/// three object slots where a tool leaves its objects loaded.
const WORKLOAD: &[&[&str]] = &[
    &["tpm2_getrandom", "--hex", "16"],
    &[
        "tpm2_pcrextend",
        "16:sha256=0101010101010101010101010101010101010101010101010101010101010101",
    ],
    &["tpm2_pcrread", "sha256:0,16"],
    &["tpm2_getcap", "properties-fixed"],
    &["tpm2_readclock"],
    &["tpm2_getcap", "algorithms"],
    &["tpm2_pcrreset", "16"],
    &[
        "tpm2_hash",
        "-C",
        "o",
        "-g",
        "sha256",
        "-o",
        "digest.bin",
        "msg.dat",
    ],
    &[
        "tpm2_createprimary",
        "-C",
        "o",
        "-G",
        "rsa",
        "-c",
        "rsa-prim.ctx",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_createprimary",
        "-C",
        "o",
        "-G",
        "ecc",
        "-c",
        "ecc-prim.ctx",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_create",
        "-C",
        "ecc-prim.ctx",
        "-G",
        "ecc",
        "-u",
        "sig.pub",
        "-r",
        "sig.priv",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_load",
        "-C",
        "ecc-prim.ctx",
        "-u",
        "sig.pub",
        "-r",
        "sig.priv",
        "-c",
        "sig.ctx",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_sign",
        "-c",
        "sig.ctx",
        "-g",
        "sha256",
        "-o",
        "sig.bin",
        "msg.dat",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_verifysignature",
        "-c",
        "sig.ctx",
        "-g",
        "sha256",
        "-m",
        "msg.dat",
        "-s",
        "sig.bin",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_quote",
        "-c",
        "sig.ctx",
        "-l",
        "sha256:0,16",
        "-q",
        "abcdef",
        "-m",
        "q.msg",
        "-s",
        "q.sig",
        "-o",
        "q.pcrs",
        "-g",
        "sha256",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_readpublic",
        "-c",
        "sig.ctx",
        "-f",
        "pem",
        "-o",
        "sig.pem",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_create",
        "-C",
        "rsa-prim.ctx",
        "-G",
        "rsa",
        "-u",
        "rsa.pub",
        "-r",
        "rsa.priv",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_create",
        "-C",
        "ecc-prim.ctx",
        "-i",
        "secret.dat",
        "-u",
        "seal.pub",
        "-r",
        "seal.priv",
    ],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_load",
        "-C",
        "ecc-prim.ctx",
        "-u",
        "seal.pub",
        "-r",
        "seal.priv",
        "-c",
        "seal.ctx",
    ],
    &["tpm2_flushcontext", "-t"],
    &["tpm2_unseal", "-c", "seal.ctx", "-o", "unsealed.dat"],
    &["tpm2_flushcontext", "-t"],
    &[
        "tpm2_nvdefine",
        "0x1500020",
        "-C",
        "o",
        "-s",
        "32",
        "-a",
        "ownerread|ownerwrite",
    ],
    &["tpm2_nvwrite", "0x1500020", "-C", "o", "-i", "data32.bin"],
    &[
        "tpm2_nvread",
        "0x1500020",
        "-C",
        "o",
        "-s",
        "32",
        "-o",
        "nv.dat",
    ],
    &["tpm2_nvreadpublic", "0x1500020"],
    &["tpm2_nvundefine", "0x1500020", "-C", "o"],
];

/// The three targets, in table order.
#[derive(Clone, Copy)]
enum Target {
    SimMssim,
    SimSwtpm,
    Swtpm,
}

const TARGETS: [Target; 3] = [Target::SimMssim, Target::SimSwtpm, Target::Swtpm];

impl Target {
    fn title(self) -> &'static str {
        match self {
            Target::SimMssim => "vtpm-sim, `mssim:`",
            Target::SimSwtpm => "vtpm-sim, `swtpm:`",
            Target::Swtpm => "swtpm, `swtpm:`",
        }
    }
}

/// A server for one round, killed on drop.
struct Server {
    child: Option<Child>,
    _swtpm: Option<super::Swtpm>,
    tcti: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self._swtpm = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(t: Target, dir: PathBuf) -> Server {
    std::fs::create_dir_all(&dir).expect("bench folder");
    match t {
        Target::SimMssim | Target::SimSwtpm => {
            let flag = match t {
                Target::SimMssim => "--serve",
                _ => "--serve-socket",
            };
            let (child, port) = super::serve_child(flag);
            let tcti = match t {
                Target::SimMssim => format!("mssim:host=127.0.0.1,port={port}"),
                _ => format!("swtpm:host=127.0.0.1,port={port}"),
            };
            Server {
                child: Some(child),
                _swtpm: None,
                tcti,
                dir,
            }
        }
        Target::Swtpm => {
            let sw = super::start_swtpm_in(&dir.join("state"), "not-need-init");
            let tcti = format!("swtpm:host=127.0.0.1,port={}", sw.1);
            Server {
                child: None,
                _swtpm: Some(sw),
                tcti,
                dir,
            }
        }
    }
}

fn tool(s: &Server, args: &[&str]) -> f64 {
    let t = Instant::now();
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(&s.dir)
        .env("TPM2TOOLS_TCTI", &s.tcti)
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (`cargo xtask setup`): {e}", args[0]));
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(
        out.status.success(),
        "{args:?} via {}: {}",
        s.tcti,
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

fn files(dir: &Path) {
    for (name, bytes) in [
        ("msg.dat", &b"stock client workload"[..]),
        ("secret.dat", b"sealed secret"),
        ("data32.bin", &[0x42; 32]),
    ] {
        std::fs::write(dir.join(name), bytes).expect("bench input file");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the workload `rounds` times on each target (targets interleaved within a round, fresh
/// servers each round) and returns the Markdown table: each command's median and the median of
/// the per-round totals.
pub fn table(rounds: usize) -> String {
    // samples[target][step] = one time per round; totals[target] = one total per round.
    let mut samples = vec![vec![Vec::new(); WORKLOAD.len()]; TARGETS.len()];
    let mut totals = vec![Vec::new(); TARGETS.len()];
    for round in 0..rounds {
        for (ti, &t) in TARGETS.iter().enumerate() {
            let dir = std::env::temp_dir().join(format!(
                "warden-vtpm-stock-{}-{round}-{ti}",
                std::process::id()
            ));
            let s = start(t, dir);
            files(&s.dir);
            tool(&s, &["tpm2_startup", "-c"]);
            let mut total = 0.0;
            for (i, args) in WORKLOAD.iter().enumerate() {
                let ms = tool(&s, args);
                samples[ti][i].push(ms);
                total += ms;
            }
            totals[ti].push(total);
        }
    }
    let mut out = format!(
        "| tpm2-tools command ({} commands, median of {rounds} rounds, ms) | {} | {} | {} |\n|---|---:|---:|---:|\n",
        WORKLOAD.len(),
        TARGETS[0].title(),
        TARGETS[1].title(),
        TARGETS[2].title()
    );
    for (i, args) in WORKLOAD.iter().enumerate() {
        let label = args
            .iter()
            .take(5)
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(48)
            .collect::<String>();
        let m: Vec<f64> = (0..TARGETS.len())
            .map(|t| median(samples[t][i].clone()))
            .collect();
        out.push_str(&format!(
            "| `{label}` | {:.1} | {:.1} | {:.1} |\n",
            m[0], m[1], m[2]
        ));
    }
    let t: Vec<f64> = totals.iter().map(|v| median(v.clone())).collect();
    // Also the sum of the per-command medians: one slow round (a burst of load on this shared
    // machine) moves it less than the median of the totals.
    let sums: Vec<f64> = (0..TARGETS.len())
        .map(|ti| samples[ti].iter().map(|s| median(s.clone())).sum())
        .collect();
    // A figure per target, then swtpm's figure over each (the target's ratio).
    let mut rows = |title: &str, ratio: &str, v: &[f64]| {
        out.push_str(&format!(
            "| {title} | {:.0} | {:.0} | {:.0} |\n| {ratio} | {:.2}× | {:.2}× | 1.00× |\n",
            v[0],
            v[1],
            v[2],
            v[2] / v[0],
            v[2] / v[1]
        ));
    };
    rows(
        "**total** (median of the rounds' totals)",
        "swtpm total / this total",
        &t,
    );
    rows(
        "sum of the commands' medians",
        "swtpm sum / this sum",
        &sums,
    );
    out
}
