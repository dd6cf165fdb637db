//! The scheduler's clock: the LAPIC timer calibrated against the PIT drives preemption, and
//! on a CPU without a local APIC the PIT through the 8259 PIC does; the boot says which.

use warden_system_tests::{expect_scenario, line};

#[test]
fn the_lapic_timer_is_calibrated_to_qemus_apic_clock_and_drives_preemption() {
    // `preempt` passing means a never-yielding spinner was preempted for every printer line.
    let out = expect_scenario("preempt");
    let timer = line(&out.log, "timer: LAPIC timer at 0xfee00000, periodic");
    assert!(timer.contains("8259 PIC masked, I/O APIC not programmed"), "{timer}");
    // QEMU clocks its APIC timer at 1 GHz (one count per ns before the divider): the
    // calibration against the PIT must find that within the error a loaded host can add.
    let hz: u64 = timer
        .split("(input ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no input frequency in: {timer}"));
    assert!((800_000_000..1_250_000_000).contains(&hz), "calibrated {hz} Hz for QEMU's 1 GHz: {timer}");
    assert!(!out.log.contains("using the PIT"), "{}", out.log);
}

#[test]
fn without_a_local_apic_the_pit_drives_preemption() {
    let out = expect_scenario("preempt-pit");
    assert!(!out.log.contains("timer: LAPIC timer"), "{}", out.log);
}
