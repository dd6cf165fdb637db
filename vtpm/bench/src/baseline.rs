//! `--baseline BIN`: this build's vtpm-sim against another build's (BIN, this bench built from
//! an earlier commit, run as `BIN --serve`), to show that a change made no command slower.
//!
//! Made to hold on a loaded machine: each round runs the workload on both builds back to back
//! (fresh server processes, the order swapped every round), so a burst of load lands on both
//! halves of a round or is seen as one round's outlier; each command's per-round medians give
//! one after/before ratio per round, and the verdict uses the median of those paired ratios
//! over all rounds, with how many rounds were over the limit beside it. Fresh RSA keys (whose
//! cost is the prime search's own spread, not noise) compare the medians of all rounds' keys.
//!
//! Key generation takes tens of milliseconds, many scheduler slices on a loaded machine, so its
//! wall time mostly measures the CPU share the server got. A second table therefore counts the
//! server process's CPU time (utime + stime from /proc) over a batch of fresh RSA-2048
//! primaries — the same templates on both builds — which load does not inflate.

use super::{
    Conn, Mssim, SIGN_ATTRS, VtpmSim, cmd, create_primary, flush, handle_of, median_of, ok,
    rsa_template, serve_child_of,
};
use std::path::Path;

/// One command's name and its per-round samples, before and after.
type Rounds = (&'static str, Vec<Vec<f64>>, Vec<Vec<f64>>);

/// How much slower than before a command may be.
const LIMIT: f64 = 1.10;

/// Runs `workload` (against a vtpm-sim port) `rounds` times on each build and returns the
/// Markdown table of the comparison.
pub fn compare(
    bin: &str,
    rounds: usize,
    iters: usize,
    mut workload: impl FnMut(u16) -> Vec<(&'static str, Vec<f64>)>,
) -> String {
    let own = std::env::current_exe().expect("own path");
    let before = Path::new(bin);
    assert!(before.exists(), "--baseline {bin}: no such file");
    let mut run = |bin: &Path| {
        let (child, port) = serve_child_of(bin, "--serve");
        let server = VtpmSim(child, port);
        let r = workload(server.1);
        drop(server);
        r
    };
    let mut acc: Vec<Rounds> = Vec::new();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        let (b, a) = if round % 2 == 0 {
            let b = run(before);
            (b, run(&own))
        } else {
            let a = run(&own);
            (run(before), a)
        };
        if acc.is_empty() {
            acc = b
                .iter()
                .map(|(n, _)| (*n, Vec::new(), Vec::new()))
                .collect();
        }
        for ((entry, (_, bs)), (_, as_)) in acc.iter_mut().zip(b).zip(a) {
            entry.1.push(bs);
            entry.2.push(as_);
        }
    }
    let mut table = format!(
        "{rounds} interleaved rounds, {iters} iterations for the fast commands; after / before \
         ratio per round, its median over the rounds is the verdict (limit {LIMIT:.2})\n\n\
         | command | before median (µs) | after median (µs) | after / before: median of rounds (min-max) | rounds over {LIMIT:.2} | verdict |\n\
         |---|---:|---:|---:|---:|---|\n"
    );
    let mut slower = Vec::new();
    for (name, before, after) in &acc {
        let med = |runs: &[Vec<f64>]| {
            let mut m: Vec<f64> = runs.iter().map(|r| median_of(&sorted(r))).collect();
            m.sort_by(f64::total_cmp);
            median_of(&m)
        };
        let (mut ratios, verdict_ratio) = if name.contains("new template") {
            // Pooled: every key of every round.
            let b = median_of(&sorted(&before.concat()));
            let a = median_of(&sorted(&after.concat()));
            let per: Vec<f64> = before
                .iter()
                .zip(after)
                .map(|(b, a)| median_of(&sorted(a)) / median_of(&sorted(b)))
                .collect();
            (per, a / b)
        } else {
            let per: Vec<f64> = before
                .iter()
                .zip(after)
                .map(|(b, a)| median_of(&sorted(a)) / median_of(&sorted(b)))
                .collect();
            let mut s = per.clone();
            s.sort_by(f64::total_cmp);
            let m = median_of(&s);
            (per, m)
        };
        ratios.sort_by(f64::total_cmp);
        let over = ratios.iter().filter(|r| **r > LIMIT).count();
        let ok = verdict_ratio <= LIMIT;
        if !ok {
            slower.push(*name);
        }
        table.push_str(&format!(
            "| {name} | {:.1} | {:.1} | {verdict_ratio:.3} ({:.2}-{:.2}) | {over} of {} | {} |\n",
            med(before),
            med(after),
            ratios[0],
            ratios[ratios.len() - 1],
            ratios.len(),
            if ok { "ok" } else { "SLOWER" }
        ));
    }
    table.push_str(&if slower.is_empty() {
        format!(
            "\nno command slower than before by more than {:.0} %\n",
            (LIMIT - 1.0) * 100.0
        )
    } else {
        format!(
            "\nslower than before by more than {:.0} %: {}\n",
            (LIMIT - 1.0) * 100.0,
            slower.join(", ")
        )
    });
    table
}

/// CPU time (s) the process has used, all threads: utime + stime, in USER_HZ (100) ticks.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name's ")": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f[i - 3].parse::<u64>().expect("clock ticks");
    (ticks(14) + ticks(15)) as f64 / 100.0
}

/// The server CPU time per fresh RSA-2048 primary (ms) over `keys` CreatePrimary with the
/// templates 1..=keys, on a fresh server of `bin`.
fn keygen_cpu(bin: &Path, keys: u64) -> f64 {
    let (child, port) = serve_child_of(bin, "--serve");
    let pid = child.id();
    let server = VtpmSim(child, port);
    let stream = std::net::TcpStream::connect(("127.0.0.1", server.1)).expect("connect");
    let t = &mut Mssim(Conn::new(stream));
    ok(t, &cmd(0x144, &[], false, &[0, 0]), "Startup");
    let start = cpu_seconds(pid);
    for i in 1..=keys {
        let template = rsa_template(SIGN_ATTRS, &(1u64 << 40 | i).to_be_bytes());
        let r = ok(
            t,
            &create_primary(0x4000_0001, &template),
            "CreatePrimary RSA",
        );
        ok(t, &flush(handle_of(&r)), "FlushContext");
    }
    let used = cpu_seconds(pid) - start;
    drop(server);
    1000.0 * used / keys as f64
}

/// Interleaved rounds of `keygen_cpu` on both builds; the table of per-round CPU per key.
pub fn keygen_table(bin: &str, rounds: usize, keys: u64) -> String {
    let own = std::env::current_exe().expect("own path");
    let before = Path::new(bin);
    let (mut b, mut a) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("key generation CPU round {} of {rounds}", round + 1);
        if round % 2 == 0 {
            b.push(keygen_cpu(before, keys));
            a.push(keygen_cpu(&own, keys));
        } else {
            a.push(keygen_cpu(&own, keys));
            b.push(keygen_cpu(before, keys));
        }
    }
    let ratio = a.iter().sum::<f64>() / b.iter().sum::<f64>();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    format!(
        "\nServer CPU time per fresh RSA-2048 CreatePrimary, {keys} keys per round (the same \
         templates on both builds), {rounds} interleaved rounds:\n\n\
         | build | CPU ms per key, per round | mean |\n|---|---|---:|\n\
         | before | {} | {:.1} |\n| after | {} | {:.1} |\n\n\
         after / before (total CPU): {ratio:.3} — {}\n",
        fmt(&b),
        b.iter().sum::<f64>() / rounds as f64,
        fmt(&a),
        a.iter().sum::<f64>() / rounds as f64,
        if ratio <= LIMIT {
            "within the limit"
        } else {
            "SLOWER"
        }
    )
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}
