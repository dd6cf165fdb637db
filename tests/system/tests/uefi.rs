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
