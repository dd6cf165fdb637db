//! The platform TPM behind QEMU's CRB interface (`tpm_interface = "crb"`): the hypervisor finds
//! it through the interface-identifier register and drives it through the CRB protocol (GetRandom,
//! an AK, PCR 16 extends and quotes at locality 0); QEMU's CRB implements locality 0 only, so
//! PCRs 20-22 cannot be extended and the boot says it is unmeasured (fatal under `require_tpm`)
//! rather than answering a challenge with a quote of PCRs that were never extended.

use warden_system_tests::{BootOptions, ExitKind, Scenario, boot, expect_scenario, line};

#[test]
fn a_crb_tpm_carries_commands_and_an_unmeasurable_boot_says_so() {
    let out = expect_scenario("attest-crb");
    // The interface came from QEMU's ACPI TPM2 table (start method 7), not only the register.
    let acpi = line(&out.log, "tpm: ACPI TPM2 table:");
    assert!(acpi.contains("start method Crb") && acpi.contains("the CRB interface"), "{acpi}");
    let tpm = line(&out.log, "tpm: TPM 2.0 over CRB at locality 0");
    assert!(tpm.contains("vendor 0x1014"), "QEMU's CRB reports IBM's vendor id: {tpm}");
    assert!(tpm.contains("locality 0 only"), "{tpm}");
    assert!(tpm.contains("command buffer 3968 bytes"), "QEMU's buffer is its window after the registers: {tpm}");
    // AK creation, PCR 16 extends and ECDSA quotes all went through the CRB buffer.
    let bench = line(&out.log, "bench-platform-tpm: iterations=2");
    for field in ["getrandom=", "pcr_extend=", "quote="] {
        let ticks: u64 = bench.split(field).nth(1).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(ticks > 0, "{field} in {bench}");
    }
    assert!(out.log.contains("this boot is not measured"), "{}", out.log);
    assert!(!out.log.contains("attest: begin"), "an unmeasured boot quoted:\n{}", out.log);
}

#[test]
fn require_tpm_refuses_a_crb_tpm_that_cannot_measure_the_launch() {
    let scenario = Scenario::load("attest-crb").unwrap();
    let opts = BootOptions { extra_cmdline: vec!["require_tpm".into()], ..BootOptions::default() };
    let out = boot(&scenario, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.exit, ExitKind::Failure, "{}", out.log);
    assert!(
        out.log.contains("measure: FATAL: require_tpm is set and the platform TPM cannot measure the launch"),
        "{}",
        out.log
    );
    assert!(!out.log.contains("boot: complete"), "{}", out.log);
}
