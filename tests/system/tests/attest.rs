//! Measured launch and remote attestation end to end: a TPM provisioned with EK certificates,
//! the hypervisor measuring policy, command line, manifest and domain image before the domain
//! runs, the exported quote/AK/event log verified against build-time reference values, the AK
//! proven resident in that TPM, and the log replayed by tpm2_eventlog to the PCRs tpm2_pcrread
//! reads from the same swtpm after QEMU exits. Tampering with one component names it.

use warden_rig::Scenario;
use warden_rig::attest::{AttestOptions, attest};

#[test]
fn clean_boot_attests_and_the_log_replays_to_the_tpm() {
    let scenario = Scenario::load("attest").unwrap();
    let a = attest(&scenario, &AttestOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = a.outcome.check(&scenario) {
        panic!("{e}");
    }
    assert!(a.report.ok, "verification failed:\n{}", a.report.table());
    let components: Vec<_> = a
        .reference
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(components, ["policy", "cmdline", "manifest", "image:good", "image:printer"]);
    // Measurement precedes the domain: the evidence is complete before the domain's first line.
    let (before, _) = a.outcome.log.split_once("attest: end").unwrap();
    assert!(
        !before.contains("check cpuid"),
        "the domain ran before measured launch finished"
    );

    // The same real evidence with a stale nonce, or with one event removed from the log, is
    // rejected with a specific message.
    let e = &a.export;
    let stale = a
        .verify_with(&e.quote, &e.ak, &e.eventlog, &[0u8; 32])
        .unwrap();
    assert!(
        !stale.ok
            && stale
                .failures()
                .iter()
                .any(|f| f.starts_with("nonce: stale nonce")),
        "{:?}",
        stale.failures()
    );
    let cut = warden_rig::attest::without_event(&e.eventlog, "image:good").unwrap();
    let removed = a.verify_with(&e.quote, &e.ak, &cut, &a.nonce).unwrap();
    assert!(
        removed.failures().iter().any(|f| f == "event log: event removed from the log: no event for image:good (PCR 22)"),
        "{:?}",
        removed.failures()
    );

    assert_eq!(a.credential.len(), 3, "{:?}", a.credential);
    assert!(
        a.credential[2].contains("MakeCredential/ActivateCredential"),
        "{:?}",
        a.credential
    );

    // tpm2_eventlog parsed the exported log (it exited 0) and replays to the TPM's PCRs.
    assert!(
        a.eventlog_yaml.contains("EV_SEPARATOR"),
        "{}",
        a.eventlog_yaml
    );
    let cmp = a.pcr_comparison();
    assert!(cmp.len() >= 3, "{cmp:?}");
    for (alg, pcr, replayed, read) in cmp {
        assert!(
            replayed.is_some(),
            "tpm2_eventlog did not replay {} PCR {pcr}:\n{}",
            alg.name(),
            a.eventlog_yaml
        );
        assert_eq!(
            replayed,
            read,
            "{} PCR {pcr}: tpm2_eventlog vs tpm2_pcrread",
            alg.name()
        );
    }
}

#[test]
fn tampering_with_a_component_fails_verification_and_names_it() {
    let scenario = Scenario::load("attest").unwrap();
    for (tamper, component, pcr) in [
        ("policy", "policy", 20),
        ("good", "image:good", 22),
        ("manifest", "manifest", 21),
    ] {
        let a = attest(
            &scenario,
            &AttestOptions {
                tamper: Some(tamper.into()),
                ..AttestOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{tamper}: {e}"));
        assert!(
            !a.report.ok,
            "{tamper}: verification passed:\n{}",
            a.report.table()
        );
        // The quote itself is genuine and fresh: only the measured component differs.
        assert!(
            a.report.checks.iter().all(|c| c.ok),
            "{tamper}: {:?}",
            a.report.checks
        );
        let bad: Vec<_> = a
            .report
            .rows
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.component.as_str())
            .collect();
        assert_eq!(
            bad,
            [component, &format!("PCR {pcr}")],
            "{tamper}:\n{}",
            a.report.table()
        );
        assert!(
            a.report
                .failures()
                .contains(&format!("MISMATCH {component} (PCR {pcr})")),
            "{tamper}"
        );
    }
}

/// Issue 16, finding 2: module names are measured with the bytes. Swapping the names of two
/// image modules (each module keeps its name and carries the other's image, so domain `good`
/// would run `printer`'s code) changes both components and PCR 22, and verification names them.
#[test]
fn swapping_two_image_names_fails_verification_and_names_both() {
    let scenario = Scenario::load("attest").unwrap();
    let a = attest(&scenario, &AttestOptions { tamper: Some("swap-names".into()), ..AttestOptions::default() }).unwrap();
    assert!(!a.report.ok, "verification passed:\n{}", a.report.table());
    assert!(a.report.checks.iter().all(|c| c.ok), "{:?}", a.report.checks);
    let bad: Vec<_> = a.report.rows.iter().filter(|r| !r.ok).map(|r| r.component.as_str()).collect();
    assert_eq!(bad, ["image:good", "image:printer", "PCR 22"], "{}", a.report.table());
}

/// Warden on its own TPM engine: the same attestation with `vtpm-sim socket` as the platform
/// TPM behind QEMU's `tpm-emulator` backend, its EK certificate from `vtpm-sim --manufacture`.
#[test]
fn attestation_passes_with_vtpm_sim_as_the_platform_tpm() {
    use warden_rig::swtpm::PlatformTpm;
    let scenario = Scenario::load("attest").unwrap();
    let on_sim = |tamper: Option<&str>| {
        attest(
            &scenario,
            &AttestOptions {
                tamper: tamper.map(Into::into),
                platform_tpm: Some(PlatformTpm::VtpmSim),
                ..AttestOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{tamper:?}: {e}"))
    };
    let a = on_sim(None);
    if let Err(e) = a.outcome.check(&scenario) {
        panic!("{e}");
    }
    assert!(a.report.ok, "verification failed:\n{}", a.report.table());
    assert_eq!(a.credential.len(), 3, "{:?}", a.credential);
    assert!(a.credential[0].contains("chains to the provisioning CA"), "{:?}", a.credential);
    let cmp = a.pcr_comparison();
    assert!(cmp.len() >= 3, "{cmp:?}");
    for (alg, pcr, replayed, read) in cmp {
        assert!(replayed.is_some(), "{} PCR {pcr} not replayed", alg.name());
        assert_eq!(replayed, read, "{} PCR {pcr}: tpm2_eventlog vs tpm2_pcrread", alg.name());
    }
    // Tampering is named on this TPM too.
    let t = on_sim(Some("good"));
    assert!(!t.report.ok, "{}", t.report.table());
    assert!(
        t.report.failures().contains(&"MISMATCH image:good (PCR 22)".to_string()),
        "{:?}",
        t.report.failures()
    );
}

#[test]
fn without_a_tpm_the_boot_says_it_is_not_measured() {
    // `require_tpm` turning this into a fatal error is tests/system/tests/boot.rs's scenario
    // boot-require-tpm; here: without it, the boot goes on and says it is unmeasured.
    let out = warden_system_tests::expect_scenario("boot-no-tpm");
    assert!(out.log.contains("tpm: no platform TPM"), "{}", out.log);
    assert!(
        out.log
            .contains("measure: no platform TPM: this boot is not measured"),
        "{}",
        out.log
    );
    assert!(!out.log.contains("attest: begin"), "{}", out.log);
}
