//! The TPM clock across power cycles and restarts of the host process: Clock continues from
//! its saved value, `safe` says whether an earlier Clock value may have been reported, Clear
//! restarts Clock and the counters, and attestations by owner keys obfuscate the counters.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use support::{ClockPlat, cmd};
use warden_vtpm::Tpm;

fn ok(t: &mut Tpm<ClockPlat>, c: &[u8]) -> Vec<u8> {
    let r = t.execute(0, c);
    assert_eq!(&r[6..10], &[0, 0, 0, 0], "command {:02x?}", &c[6..10]);
    r
}

/// The host process: one NV store, one clock that restarts with each process.
struct Host {
    nv: Rc<RefCell<Option<Vec<u8>>>>,
    clock: Rc<Cell<u64>>,
}

impl Host {
    /// A host with empty NV (no process started yet).
    fn new() -> Host {
        Host {
            nv: Rc::new(RefCell::new(None)),
            clock: Rc::new(Cell::new(0)),
        }
    }
    /// A new process (its clock from 0) on the same NV, started with Startup(CLEAR).
    fn boot(&mut self) -> Tpm<ClockPlat> {
        self.clock = Rc::new(Cell::new(0));
        let plat = ClockPlat {
            clock: self.clock.clone(),
            nv: self.nv.clone(),
            counter: 3,
            increment: 1,
        };
        let mut t = Tpm::new(plat).expect("TPM from NV");
        ok(&mut t, &cmd(0x144, &[], false, &[0, 0]));
        t
    }
    fn advance(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }
}

/// (Clock, resetCount, restartCount, safe) from ReadClock.
fn read_clock(t: &mut Tpm<ClockPlat>) -> (u64, u32, u32, u8) {
    let r = ok(t, &cmd(0x181, &[], false, &[]));
    let u64at = |i: usize| u64::from_be_bytes(r[i..i + 8].try_into().unwrap());
    let u32at = |i: usize| u32::from_be_bytes(r[i..i + 4].try_into().unwrap());
    (u64at(18), u32at(26), u32at(30), r[34])
}

/// TPMS_TIME_INFO.time from ReadClock.
fn read_time(t: &mut Tpm<ClockPlat>) -> u64 {
    let r = ok(t, &cmd(0x181, &[], false, &[]));
    u64::from_be_bytes(r[10..18].try_into().unwrap())
}

#[test]
fn clock_never_goes_back_unseen_across_restarts() {
    let mut host = Host::new();
    let mut t = host.boot();
    host.advance(10_000);
    let (c1, resets, _, safe) = read_clock(&mut t);
    assert!(c1 >= 10_000 && safe == 1, "{c1} {safe}");

    // Orderly: Shutdown saves Clock; the next process continues from it and stays safe.
    ok(&mut t, &cmd(0x145, &[], false, &[0, 0]));
    drop(t);
    let mut t = host.boot();
    host.advance(500);
    let (c2, resets2, restarts2, safe) = read_clock(&mut t);
    assert!(c2 >= c1 + 500, "Clock continued: {c1} -> {c2}");
    assert_eq!(
        (resets2, restarts2, safe),
        (resets + 1, 0, 1),
        "a TPM Reset"
    );

    // Power loss without Shutdown: Clock resumes from its last checkpoint (no later than what
    // was reported) and is flagged unsafe...
    host.advance(60_000);
    let (reported, ..) = read_clock(&mut t);
    drop(t);
    let mut t = host.boot();
    let (c3, _, _, safe) = read_clock(&mut t);
    assert!(c3 >= c1, "never below the last checkpoint: {c1} -> {c3}");
    assert!(
        c3 < reported,
        "the unsaved minute is lost: {reported} -> {c3}"
    );
    assert_eq!(safe, 0);
    // ...until Clock passes the next checkpoint interval (2^22 ms), beyond anything reported.
    host.advance(1 << 22);
    let (c4, _, _, safe) = read_clock(&mut t);
    assert!(c4 > reported && safe == 1, "{c4} {safe}");

    // Shutdown(STATE) then Startup(STATE): a TPM Resume, counted in restartCount.
    ok(&mut t, &cmd(0x145, &[], false, &[0, 1]));
    t.power_on();
    ok(&mut t, &cmd(0x144, &[], false, &[0, 1]));
    let (c5, resets5, restarts5, safe) = read_clock(&mut t);
    assert!(c5 >= c4);
    assert_eq!((restarts5, safe), (1, 1));

    // TPM2_Clear: Clock, resetCount and restartCount from zero, safe.
    ok(&mut t, &cmd(0x126, &[0x4000_000C], true, &[]));
    let (c6, resets6, restarts6, safe) = read_clock(&mut t);
    assert!(c6 < 100, "Clock restarted: {c6}");
    assert_eq!((resets6, restarts6, safe), (0, 0, 1));
    assert!(resets5 > 0);
}

#[test]
fn owner_key_attestations_obfuscate_the_counters() {
    let mut host = Host::new();
    let mut t = host.boot();
    // Raise resetCount a little so that the counters are not all zero.
    for _ in 0..2 {
        ok(&mut t, &cmd(0x145, &[], false, &[0, 0]));
        t = host.boot();
    }
    let (_, resets, restarts, _) = read_clock(&mut t);
    // An unrestricted ECDSA signing key in the owner and in the endorsement hierarchy.
    let attrs: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 18);
    let mut tpl = vec![0, 0x23, 0, 0x0B];
    tpl.extend_from_slice(&attrs.to_be_bytes());
    tpl.extend_from_slice(&[
        0, 0, 0, 0x10, 0, 0x18, 0, 0x0B, 0, 0x03, 0, 0x10, 0, 0, 0, 0,
    ]);
    let mut params = vec![0, 4, 0, 0, 0, 0];
    params.extend_from_slice(&(tpl.len() as u16).to_be_bytes());
    params.extend_from_slice(&tpl);
    params.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    for (hier, hidden) in [(0x4000_000Bu32, false), (0x4000_0001, true)] {
        let r = ok(&mut t, &cmd(0x131, &[hier], true, &params));
        let key = u32::from_be_bytes(r[10..14].try_into().unwrap());
        // Quote over no PCRs: TPMS_ATTEST = magic, type, qualifiedSigner, extraData, clockInfo.
        let q = ok(
            &mut t,
            &cmd(0x158, &[key], true, &[0, 0, 0, 0x10, 0, 0, 0, 0]),
        );
        let a = &q[16..];
        let signer = usize::from(u16::from_be_bytes([a[6], a[7]]));
        let ci = 8 + signer + 2;
        let reset = u32::from_be_bytes(a[ci + 8..ci + 12].try_into().unwrap());
        let restart = u32::from_be_bytes(a[ci + 12..ci + 16].try_into().unwrap());
        let firmware = u64::from_be_bytes(a[ci + 17..ci + 25].try_into().unwrap());
        let plain = (reset, restart, firmware) == (resets, restarts, 0x0001_0000_0000_0000);
        assert_eq!(
            plain, !hidden,
            "hierarchy {hier:#x}: {reset} {restart} {firmware:#x}"
        );
        ok(&mut t, &cmd(0x165, &[], false, &key.to_be_bytes()));
    }
}

#[test]
fn state_blobs_carry_the_current_clock() {
    let mut host = Host::new();
    let mut t = host.boot();
    // An hour of commands that write no permanent state.
    for _ in 0..6 {
        host.advance(600_000);
        ok(&mut t, &cmd(0x17B, &[], false, &[0, 8]));
    }
    let (before, ..) = read_clock(&mut t);
    let time_before = read_time(&mut t);
    let blob = t.save_state();
    // Migration: another process (its clock from 0) restores the blob.
    let mut other = Host::new();
    let mut t2 = other.boot();
    t2.restore_state(&blob).expect("restore");
    let (after, _, _, safe) = read_clock(&mut t2);
    assert!(
        after >= before,
        "Clock went back across a migration: {before} -> {after}"
    );
    assert_eq!(safe, 1);
    // Time (since this TPM's power-on) goes on too: a migration is not a reset.
    let time_after = read_time(&mut t2);
    assert!(time_after >= time_before, "{time_before} -> {time_after}");
}
