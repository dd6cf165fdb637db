//! The foundation: the hypervisor boots under QEMU, reports the CPU truthfully, enforces W^X,
//! reports its own faults, and finds (or misses) the platform TPM.

use warden_system_tests::{ExitKind, expect_scenario, line};

/// The banner's CPU lines follow the CPU model QEMU was given.
#[test]
fn banner_reports_the_cpu_features_qemu_was_told() {
    // (scenario, its -cpu model, SVM expected, nested paging expected)
    let cases = [
        ("demo", "qemu64,+svm,+npt,+rdrand", true, true),
        ("cpu-no-npt", "qemu64,+svm,-npt", true, false),
        ("cpu-no-svm", "qemu64,-svm", false, false),
    ];
    for (name, cpu, svm, npt) in cases {
        let scenario = warden_rig::Scenario::load(name).unwrap();
        assert_eq!(scenario.cpu, cpu, "{name} runs the CPU model this test assumes");
        let out = expect_scenario(name);
        let svm_line = line(&out.log, "cpu: SVM");
        assert_eq!(svm_line.contains("SVM available"), svm, "{name}: {svm_line}");
        assert_eq!(svm_line.contains("nested paging available"), npt, "{name}: {svm_line}");
        assert!(line(&out.log, "cpu: vendor").contains("AuthenticAMD"), "{name}");
        assert_eq!(out.exit, ExitKind::Success);
    }
}

/// Every deliberate fault is reported with vector, error code, RIP and CR2, and ends QEMU with
/// the exception (or panic) code — never a silent triple fault or a hang.
#[test]
fn deliberate_faults_are_diagnosed_with_a_distinct_exit_code() {
    for (name, exit) in [
        ("fault-pf", ExitKind::Exception),
        ("fault-null", ExitKind::Exception),
        ("fault-stack", ExitKind::Exception),
        ("fault-panic", ExitKind::Panic),
    ] {
        let out = expect_scenario(name);
        assert_eq!(out.exit, exit, "{name}");
        if exit == ExitKind::Exception {
            let fatal = line(&out.log, "FATAL: hypervisor exception");
            for field in ["vector 14", "error code 0x", "RIP 0x", "CR2 0x"] {
                assert!(fatal.contains(field), "{name}: '{field}' missing from: {fatal}");
            }
            // The RIP points into the hypervisor's code, at or above its 1 MiB load address.
            let rip = fatal.split("RIP ").nth(1).and_then(|s| s.split(',').next()).unwrap();
            let rip = u64::from_str_radix(rip.trim_start_matches("0x"), 16).unwrap();
            assert!((0x10_0000..0x100_0000).contains(&rip), "{name}: RIP {rip:#x}");
        }
    }
}

/// The hypervisor checks its own page tables after installing them: many mappings, none both
/// writable and executable, guard pages unmapped (the stack-overflow test shows one faulting).
#[test]
fn page_tables_are_write_xor_execute() {
    let out = expect_scenario("boot-no-tpm");
    let wx = line(&out.log, "paging: W^X page tables installed");
    let count: u64 = wx.split("installed: ").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
    assert!(count > 1000, "{wx}");
    assert!(wx.contains("none writable and executable"), "{wx}");
    assert!(wx.contains("5 guard pages unmapped"), "{wx}");
}

/// With swtpm attached the TPM line shows the vendor and fresh random bytes; without it the
/// hypervisor says there is none and still boots; with require_tpm that is fatal.
#[test]
fn platform_tpm_is_found_or_reported_missing() {
    let a = expect_scenario("demo");
    let b = expect_scenario("demo");
    // QEMU's ACPI TPM2 table names the interface (start method 6, the memory-mapped FIFO).
    let acpi = line(&a.log, "tpm: ACPI TPM2 table:");
    assert!(acpi.contains("start method Tis") && acpi.contains("the FIFO (TIS) interface"), "{acpi}");
    let tpm = line(&a.log, "tpm: TPM 2.0 at TIS locality 0");
    assert!(tpm.contains("vendor 0x1014"), "QEMU's TIS reports IBM's vendor id: {tpm}");
    let random = |log: &str| line(log, "tpm: GetRandom: 8 bytes ").rsplit(' ').next().unwrap().to_string();
    let (ra, rb) = (random(&a.log), random(&b.log));
    assert_eq!(ra.len(), 16, "{ra}");
    assert!(ra.chars().all(|c| c.is_ascii_hexdigit()), "{ra}");
    assert_ne!(ra, rb, "two fresh TPMs gave the same random bytes");

    let none = expect_scenario("boot-no-tpm");
    assert!(none.log.contains("tpm: no platform TPM"));
    let required = expect_scenario("boot-require-tpm");
    assert_eq!(required.exit, ExitKind::Failure);
}

/// An independent W^X check: QEMU's monitor lists every mapping of the live hypervisor's page
/// tables (`info tlb`); none may be writable without NX, and the image's code must be mapped.
#[test]
fn qemu_monitor_finds_no_writable_executable_page() {
    let scenario = warden_rig::Scenario::load("boot-no-tpm").unwrap();
    let opts = warden_rig::BootOptions {
        extra_cmdline: vec!["hold".into()],
        monitor: Some(warden_rig::MonitorScript {
            trigger: "boot: holding for inspection".into(),
            commands: vec!["info tlb".into()],
            keep_running: false,
        }),
        ..Default::default()
    };
    let out = warden_rig::boot(&scenario, &opts).unwrap();
    assert!(out.log.contains("boot: holding for inspection"), "{}", out.log);
    assert_eq!(out.exit, warden_rig::ExitKind::QemuExit(0), "the rig quits QEMU through the monitor");
    // Lines look like `0000000000100000: 0000000000100000 --------W` with flags
    // NX(X) G P(S) D A C(D) T U W: 'X' means no-execute.
    let mut mappings = 0;
    let mut code = 0;
    let mut violations = Vec::new();
    for l in out.monitor.lines() {
        let Some((va, rest)) = l.split_once(": ") else { continue };
        let Some(flags) = rest.split_whitespace().nth(1) else { continue };
        if flags.len() != 9 || u64::from_str_radix(va.trim(), 16).is_err() {
            continue;
        }
        mappings += 1;
        let (nx, writable) = (flags.starts_with('X'), flags.ends_with('W'));
        if writable && !nx {
            violations.push(l.to_string());
        }
        if !nx && !writable {
            code += 1;
        }
    }
    assert!(mappings > 1000, "the monitor listed too few mappings:\n{}", out.monitor);
    assert!(code > 0, "no executable mapping at all:\n{}", out.monitor);
    assert!(violations.is_empty(), "writable and executable mappings: {violations:#?}");
}

/// Images are reproducible across checkouts: neither the checkout's folder nor cargo's registry
/// path is embedded, so reference measurements computed from one build match another's.
#[test]
fn images_do_not_embed_build_paths() {
    let images = warden_rig::images().unwrap();
    let root = warden_rig::workspace_root();
    let root = root.canonicalize().unwrap_or(root);
    let needle = root.to_string_lossy().into_owned();
    for name in ["warden", "good", "hostile", "printer"] {
        let bytes = std::fs::read(images.dir().join(name)).unwrap();
        let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "{name} embeds the checkout path {needle}");
        let registry = b"/.cargo/registry/";
        assert!(!bytes.windows(registry.len()).any(|w| w == registry), "{name} embeds cargo's registry path");
    }
}
