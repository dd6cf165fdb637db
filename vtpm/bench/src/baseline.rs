//! `--baseline BIN`: this build's vtpm-sim against another build's (BIN, this bench built from
//! an earlier commit, run as `BIN --serve`), to show that a change made no command slower.
//!
//! Made to hold on a loaded machine: each round runs the workload on both builds back to back
//! (fresh server processes, the order swapped every round), so a burst of load lands on both
//! halves of a round or is seen as one round's outlier; each command's per-round medians give
//! one after/before ratio per round, and the verdict uses the median of those paired ratios
//! over all rounds, with how many rounds were over the limit beside it. Fresh RSA keys (whose
//! cost is the prime search's own spread, not noise) compare the medians of all rounds' keys.

use super::{VtpmSim, median_of, serve_child_of};
use std::path::Path;

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
    // Per command: (name, per-round samples before, per-round samples after).
    let mut acc: Vec<(&'static str, Vec<Vec<f64>>, Vec<Vec<f64>>)> = Vec::new();
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

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}
