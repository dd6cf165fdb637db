//! The UEFI boot path: OVMF → GRUB EFI (built by the rig, with its `tpm` module) → Warden by
//! Multiboot2, with the same swtpm; the measured launch and attestation hold as on the Multiboot
//! v1 path, and the firmware and GRUB measured PCRs 0-9 before Warden ran.

use warden_rig::Scenario;
use warden_rig::attest::{AttestOptions, attest};

#[test]
fn uefi_grub_boot_attests_over_multiboot2() {
    let scenario = Scenario::load("uefi-grub-tis").unwrap();
    let a = attest(&scenario, &AttestOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = a.outcome.check(&scenario) {
        panic!("{e}");
    }
    assert!(a.report.ok, "verification failed:\n{}", a.report.table());
    let components: Vec<_> = a.reference.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(components, ["policy", "cmdline", "manifest", "image:good", "image:printer"]);
    // GRUB's module2 strings carry no path: the kinds and names still reach the hypervisor.
    let log = &a.outcome.log;
    assert!(log.contains("\"kind=image name=good\""), "{log}");
    // The information came by Multiboot2 from a UEFI loader, and ACPI from its RSDP copy.
    assert!(log.contains("boot: Multiboot2 (UEFI): EFI64 system table at 0x"), "{log}");
    assert!(log.contains("acpi: RSDP revision 2 from the Multiboot2 tag"), "{log}");
    for (alg, pcr, replayed, read) in a.pcr_comparison() {
        assert!(replayed.is_some() && replayed == read, "{} PCR {pcr}: {replayed:?} vs {read:?}", alg.name());
    }
}

/// The log Warden exports starts at the firmware: the quote covers PCRs 0-9 beside 20-22, the
/// replay of the firmware's, GRUB's and Warden's events together equals the quoted digest, and
/// the firmware and GRUB PCRs are reported. A changed GRUB configuration, checked against the
/// policy recorded from a clean boot, is named as a PCR 8 mismatch while Warden's PCRs hold.
#[test]
fn one_log_from_the_firmware_and_a_changed_grub_command_is_named_pcr_8() {
    let scenario = Scenario::load("uefi-grub-tis").unwrap();
    let clean = attest(&scenario, &AttestOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(clean.report.ok, "{}", clean.report.table());
    let log = &clean.outcome.log;
    assert!(log.contains("measure: continuing the firmware's event log ("), "{log}");
    let pcr_digest = clean.report.checks.iter().find(|c| c.check == "pcr digest").unwrap();
    assert!(pcr_digest.detail.contains("(52 PCRs)"), "{}", pcr_digest.detail);
    for pcr in [0, 7, 8, 9] {
        assert!(clean.report.rows.iter().any(|r| r.pcr == pcr && r.ok), "PCR {pcr}:\n{}", clean.report.table());
    }
    let policy = clean.platform_policy().unwrap();
    assert!(policy["sha256"].contains_key(&8), "{policy:?}");

    let tampered = attest(
        &scenario,
        &AttestOptions { tamper: Some("grub-cmdline".into()), platform_policy: Some(policy), ..AttestOptions::default() },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!tampered.report.ok, "{}", tampered.report.table());
    let failed: Vec<&str> = tampered.report.rows.iter().filter(|r| !r.ok).map(|r| r.component.as_str()).collect();
    assert!(failed.contains(&"PCR 8 (GRUB commands)"), "{failed:?}");
    // GRUB also measured the changed grub.cfg file (PCR 9); the firmware and Warden are intact.
    assert!(failed.iter().all(|c| c.starts_with("PCR 8 ") || c.starts_with("PCR 9 ")), "{failed:?}");
    assert!(tampered.report.checks.iter().all(|c| c.ok), "{}", tampered.report.table());
}

/// A firmware log that does not parse (here Warden's copy, corrupted on request by the measured
/// `test_firmware_log=bad-header`) is reported with why, and measured launch starts a fresh log
/// and says the chain from the firmware is broken; the boot and the domains go on.
#[test]
fn a_bad_firmware_log_gets_a_fresh_log_and_a_broken_chain_message() {
    let out = warden_system_tests::expect_scenario("uefi-grub-bad-log");
    assert!(!out.log.contains("continuing the firmware's event log"), "{}", out.log);
    assert!(out.log.contains("[good] well-behaved work complete"), "{}", out.log);
}
