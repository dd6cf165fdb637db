//! Domain lifecycle from a management domain (the `lifecycle` scenario) in detail: the figures
//! the management domain printed are read back and checked here too (progress stops while
//! paused and under a higher priority, memory comes back on destroy), every created domain is
//! measured with the exact image it was built from, and every refusal is the documented one.

use sha2::{Digest, Sha256};
use warden_system_tests::{ExitKind, Outcome, expect_scenario, line};

fn pos(out: &Outcome, needle: &str) -> usize {
    out.log
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with '{needle}' in:\n{}", out.log))
}

/// The words that are whole numbers after `needle` in the first line containing it, in order
/// (`w1` or `8:` are not numbers; `81,` is).
fn numbers(out: &Outcome, needle: &str) -> Vec<u64> {
    let l = line(&out.log, needle);
    let tail = &l[l.find(needle).unwrap() + needle.len()..];
    tail.split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_management_domain_drives_the_whole_lifecycle() {
    let out = expect_scenario("lifecycle");
    assert_eq!(out.exit, ExitKind::Success);

    // Pause: the paused domain's CPU time is frozen while the other's grows.
    let [frozen, w1_from, w1_to] = numbers(&out, "w2 paused: cpu_ticks stayed at")[..] else {
        panic!()
    };
    assert!(w1_to > w1_from, "w1 {w1_from} -> {w1_to}");
    let [r_from, r_to] = numbers(&out, "w2 resumed: cpu_ticks")[..] else {
        panic!()
    };
    assert_eq!(r_from, frozen);
    assert!(r_to > r_from);
    // Priority: w2 above w1 starves w1 (its figure is printed once: unchanged).
    let [p_from, p_to, _w1_stayed] = numbers(&out, "w2 priority 8:")[..] else {
        panic!()
    };
    assert!(p_to > p_from);
    // Destroy: at least the domain's 4 MiB came back (plus its page tables and VMCB).
    let [free_before, free_after] = numbers(&out, "w2 destroyed: free memory")[..] else {
        panic!()
    };
    assert!(
        free_after >= free_before + 4096,
        "{free_before} KiB -> {free_after} KiB"
    );
    assert!(
        pos(&out, "domain w2 (id 3) destroyed by domain 0")
            < pos(&out, "domain w2 (id 3): 4 MiB returned")
    );
    // The wall held w3 back while w2 ran, and let it start once w2 was gone.
    assert!(
        pos(&out, "refused at unpause: Chinese Wall") < pos(&out, "domain w2 (id 3) destroyed")
    );
    assert!(
        pos(&out, "domain w2 (id 3) destroyed")
            < pos(&out, "lifecycle: domain w3 (id 4) started by domain 0")
    );
    // The final listing shows every domain with its state, CPU time and label.
    for (name, state, label) in [
        ("w1 id=2", "runnable", "worker_t"),
        ("w2 id=3", "ended", "bank_a_t"),
        ("w3 id=4", "runnable", "bank_b_t"),
        ("intruder id=1", "ended", "intruder_t"),
    ] {
        let l = out
            .log
            .lines()
            .rev()
            .find(|l| l.contains(&format!("[mgmt] list: {name} ")))
            .unwrap();
        assert!(l.contains(&format!("state={state} label={label} ")), "{l}");
    }
    assert!(
        out.log
            .contains("[mgmt] list: w2 id=3 state=ended label=bank_a_t priority=8")
    );
    assert!(out.log.contains("memory_mib=0 end=destroyed"));
}

#[test]
fn created_domains_are_measured_with_the_image_they_were_built_from() {
    let out = expect_scenario("lifecycle");
    let images = warden_rig::images().unwrap();
    for (who, image, label, args) in [
        ("w1 id=2", "spinner", "worker_build_t", "from:mgmt"),
        ("w2 id=3", "counter", "bank_a_t", "from:mgmt"),
        // Arguments given at build time replace the create request's, and are what is measured.
        ("w3 id=4", "counter", "bank_b_t", "from:build"),
    ] {
        let bytes = std::fs::read(images.image(image).unwrap()).unwrap();
        let name = who.split(' ').next().unwrap();
        let text = format!(
            "created:{name} {} label={label} args={args} image=sha256:{}",
            &who[name.len() + 1..],
            hex(&Sha256::digest(&bytes))
        );
        // `measure: PCR 22 <event text> <sha256 of the text, as extended>`.
        let l = line(&out.log, &format!("measure: PCR 22 {text} "));
        assert_eq!(
            l.rsplit(' ').next().unwrap(),
            hex(&Sha256::digest(text.as_bytes())),
            "{l}"
        );
        // Measured before it could run.
        let started = format!("lifecycle: domain {name} ");
        let measured_at = pos(&out, &format!("measure: PCR 22 {text}"));
        let first_run = out
            .log
            .lines()
            .position(|l| l.starts_with(&started) && l.contains(" started by "))
            .unwrap();
        assert!(measured_at < first_run, "{name}");
    }
    let t = "transition:w1 id=2 worker_build_t->worker_t";
    let l = line(&out.log, &format!("measure: PCR 22 {t} "));
    assert_eq!(
        l.rsplit(' ').next().unwrap(),
        hex(&Sha256::digest(t.as_bytes()))
    );
    // The failed build was not measured.
    assert_eq!(out.log.matches("measure: PCR 22 created:w1 ").count(), 1);
}

#[test]
fn refusals_are_the_documented_ones_and_audited() {
    let out = expect_scenario("lifecycle");
    // The forbidden label: denied by the policy, with an audit record naming it.
    let avc = line(&out.log, "avc: denied { create } for");
    assert!(
        avc.contains("hypercall=domain_create")
            && avc.contains("scontext=mgmt_t")
            && avc.contains("tcontext=forbidden_t"),
        "{avc}"
    );
    // A domain without rights: every lifecycle call it tried was denied and audited, and
    // listing showed it only itself.
    for (perm, hc) in [
        ("pause", "domain_pause"),
        ("destroy", "domain_destroy"),
        ("create", "domain_create"),
        ("shutdown", "host_shutdown"),
    ] {
        let l = out
            .log
            .lines()
            .find(|l| {
                l.contains(&format!("avc: denied {{ {perm} }}"))
                    && l.contains("scontext=intruder_t")
            })
            .unwrap_or_else(|| panic!("{perm}"));
        assert!(l.contains(&format!("hypercall={hc}")), "{l}");
    }
    line(
        &out.log,
        "[intruder] intruder: list shows 1 domain (itself)",
    );
    // Bad images change nothing: the domain stays building and is built afterwards.
    assert!(
        line(&out.log, "lifecycle: domain w1 (id 2) build refused:")
            .contains("bad image: not an ELF file")
    );
    assert!(
        pos(&out, "build refused") < pos(&out, "lifecycle: domain w1 (id 2) built by domain 0")
    );
    // The run ended through HostShutdown, after the management domain's last line.
    assert!(
        pos(&out, "[mgmt] mgmt: lifecycle checks passed")
            < pos(
                &out,
                "lifecycle: host shutdown requested by domain mgmt (id 0)"
            )
    );
}
