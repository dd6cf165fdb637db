//! The checkpoint/restore mechanism (issue 13 part A, the `checkpoint` scenario): a checkpoint
//! service captures a paused counter and restores it as a new domain. Read back from the log:
//! the restored counter goes on from exactly the step after the last one the original printed
//! before it was paused (its registers, stack and memory came back), its planted x87/SSE state
//! is intact, the restored domain was measured with the digest of the pages it was given, and
//! the management domain's attempts were denied and audited. Dirty logging of the restored
//! counter names exactly the heap pages it says it wrote while tracked, none of the three it
//! left alone, and nothing while it was paused.

use warden_system_tests::{ExitKind, Outcome, expect_scenario};

/// Every `count=N x=X fpu=F` line of domain `who`, in order.
fn steps(out: &Outcome, who: &str) -> Vec<(u64, u64, String)> {
    let prefix = format!("[{who}] count=");
    out.log
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .map(|rest| {
            let mut w = rest.split_whitespace();
            let n = w.next().unwrap().parse().unwrap();
            let x = w.next().unwrap().trim_start_matches("x=").parse().unwrap();
            let fpu = w.next().unwrap().trim_start_matches("fpu=").to_string();
            (n, x, fpu)
        })
        .collect()
}

fn pos(out: &Outcome, needle: &str) -> usize {
    out.log
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with '{needle}' in:\n{}", out.log))
}

#[test]
fn a_restored_domain_continues_where_the_checkpointed_one_stopped() {
    let out = expect_scenario("checkpoint");
    assert_eq!(out.exit, ExitKind::Success);

    let before = steps(&out, "counter");
    let after = steps(&out, "counter2");
    assert!(
        !before.is_empty() && !after.is_empty(),
        "both counters printed steps:\n{}",
        out.log
    );
    // Nothing of the original after its pause; the copy starts after the restore.
    let paused = pos(&out, "lifecycle: domain counter (id 2) paused by domain 0");
    let last_before = out
        .log
        .lines()
        .take(paused)
        .filter(|l| l.contains("[counter] count="))
        .count();
    assert_eq!(
        last_before,
        before.len(),
        "the original printed after it was paused"
    );
    assert!(
        pos(&out, "[counter2] count=") > pos(&out, "introspect: domain counter2 (id 3) restored")
    );

    // Continuity: the first step of the copy is the one after the original's last, and the
    // register count follows (x = step * STEP on both sides, whatever the step reached).
    let (n0, x0, _) = before.last().unwrap().clone();
    let (n1, x1, _) = after[0].clone();
    assert_eq!(
        n1,
        n0 + 1,
        "restored counter resumed at step {n1} after {n0}"
    );
    let per_step = x0 / n0;
    assert_eq!(x0, n0 * per_step);
    assert_eq!(x1, n1 * per_step, "the counting register went on");
    for w in after.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1);
    }
    // The copy did not start over: only the original planted its registers.
    assert_eq!(out.log.matches("counter: planted x87").count(), 1);
    assert!(pos(&out, "[counter] counter: planted x87") < pos(&out, "[counter] count=1 "));
    // x87, XMM0-15 and MXCSR as planted, before and after.
    assert!(
        before.iter().chain(&after).all(|s| s.2 == "kept"),
        "{before:?} {after:?}"
    );

    // The hypervisor measured the restored domain before it ran.
    assert!(
        pos(&out, "measure: PCR 22 restored:counter2 id=3")
            < pos(&out, "lifecycle: domain counter2 (id 3) started")
    );

    // The management domain: every attempt denied, and audited with its permission.
    for perm in ["checkpoint", "getvcpu", "restore"] {
        let l = out
            .log
            .lines()
            .find(|l| l.contains(&format!("avc: denied {{ {perm} }}")))
            .unwrap_or_else(|| panic!("no audited denial of {perm}"));
        assert!(l.contains("mgmt_t") && l.contains("counter_t"), "{l}");
    }

    // Dirty logging: within the counter's six heap pages, the bitmap holds exactly the pages
    // the counter reported writing while it was tracked.
    let heap = out
        .log
        .lines()
        .find_map(|l| l.split_once("[counter] counter: heap pages at "))
        .unwrap()
        .1;
    let (lo, hi) = heap.split_once("..").unwrap();
    let num = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
    let (lo, hi) = (num(lo), num(hi));
    assert_eq!(hi - lo, 6 * 4096);
    let start = pos(
        &out,
        "introspect: dirty logging of domain counter2 (id 3) started",
    );
    let stop = start
        + out
            .log
            .lines()
            .skip(start)
            .position(|l| l.contains("lifecycle: domain counter2 (id 3) paused by domain 0"))
            .unwrap();
    let written: std::collections::BTreeSet<u64> = out
        .log
        .lines()
        .skip(start)
        .take(stop - start)
        .filter(|l| l.contains("[counter2] count="))
        .map(|l| num(l.split_once("wrote=").unwrap().1.split(':').next().unwrap()) & !0xfff)
        .collect();
    let tracked_steps = out
        .log
        .lines()
        .skip(start)
        .take(stop - start)
        .filter(|l| l.contains("[counter2] count="))
        .count();
    assert!(
        tracked_steps >= 3,
        "only {tracked_steps} steps while tracked"
    );
    assert_eq!(
        written,
        (0..3).map(|k| lo + 2 * k * 4096).collect(),
        "the counter cycles through the even pages"
    );
    let dirty_line = out
        .log
        .lines()
        .find_map(|l| l.split_once("[ckpt] ckpt: dirty pages ("))
        .unwrap()
        .1;
    let (n, list) = dirty_line.split_once("):").unwrap();
    let dirty: std::collections::BTreeSet<u64> = list.split_whitespace().map(num).collect();
    assert_eq!(dirty.len(), n.parse::<usize>().unwrap());
    let in_heap: std::collections::BTreeSet<u64> = dirty
        .iter()
        .copied()
        .filter(|&p| (lo..hi).contains(&p))
        .collect();
    assert_eq!(
        in_heap, written,
        "dirty heap pages {in_heap:x?}, written {written:x?}"
    );
    assert!(dirty.iter().all(|&p| p < 3 << 20), "{dirty:x?}");
}
