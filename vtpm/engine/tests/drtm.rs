//! The platform's hash indications: an H-CRTM event before Startup lands in PCR 0 (0…04
//! extended with the measurement) and survives Startup(CLEAR); a Resume needs the H-CRTM state
//! of the boot it resumes; a DRTM event after Startup resets
//! PCRs 17–22 and extends PCR 17; a command in between, or a missing start, measures nothing.

mod support;

use support::{pcr_read, rc, sha256};
use warden_vtpm::{MemPlatform, Tpm};

/// A command without handles or sessions.
fn cmd(cc: u32, params: &[u8]) -> Vec<u8> {
    support::plain(cc, &[], params)
}

const STARTUP_CLEAR: [u8; 2] = [0, 0];
const STARTUP_STATE: [u8; 2] = [0, 1];

fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    parts.iter().for_each(|p| h.update(p));
    h.finalize().to_vec()
}

#[test]
fn hcrtm_before_startup_measures_into_pcr0_and_survives_startup_clear() {
    let mut t = Tpm::new(MemPlatform::with_seed(3)).unwrap();
    t.hash_start();
    t.hash_data(b"CRTM ");
    t.hash_data(b"code");
    t.hash_end();
    assert_eq!(rc(&t.execute(0, &cmd(0x144, &STARTUP_CLEAR))), 0);
    let mut marker256 = vec![0u8; 32];
    marker256[31] = 4;
    let mut marker1 = vec![0u8; 20];
    marker1[19] = 4;
    assert_eq!(
        pcr_read(&mut t, 0x000B, 0),
        sha256(&[&marker256, &sha256(&[b"CRTM code"])])
    );
    assert_eq!(
        pcr_read(&mut t, 0x0004, 0),
        sha1(&[&marker1, &sha1(&[b"CRTM code"])])
    );
    // The other static PCRs are untouched, the dynamic ones still all ones.
    assert_eq!(pcr_read(&mut t, 0x000B, 1), vec![0; 32]);
    assert_eq!(pcr_read(&mut t, 0x000B, 17), vec![0xFF; 32]);
}

#[test]
fn resume_needs_the_same_hcrtm_state_as_the_saved_boot() {
    // (H-CRTM before the first Startup, H-CRTM before the Resume, Startup(STATE)'s code:
    // TPM_RC_VALUE for parameter 1 on a mismatch, as libtpms answers)
    let cases = [
        (false, false, 0),
        (true, true, 0),
        (false, true, 0x1C4),
        (true, false, 0x1C4),
    ];
    for (before, after, want) in cases {
        let mut t = Tpm::new(MemPlatform::with_seed(4)).unwrap();
        if before {
            t.hash_start();
            t.hash_data(b"first boot");
            t.hash_end();
        }
        assert_eq!(rc(&t.execute(0, &cmd(0x144, &STARTUP_CLEAR))), 0);
        let pcr0 = pcr_read(&mut t, 0x000B, 0);
        assert_eq!(
            rc(&t.execute(0, &cmd(0x145, &[0, 1]))),
            0,
            "Shutdown(STATE)"
        );
        t.power_on();
        if after {
            t.hash_start();
            t.hash_data(b"second boot");
            t.hash_end();
        }
        let what = format!("H-CRTM {before} then {after}");
        assert_eq!(
            rc(&t.execute(0, &cmd(0x144, &STARTUP_STATE))),
            want,
            "{what}"
        );
        if want == 0 {
            // A Resume restores every PCR from the saved state, PCR 0 included.
            assert_eq!(pcr_read(&mut t, 0x000B, 0), pcr0, "{what}: PCR 0");
        } else {
            assert_eq!(rc(&t.execute(0, &cmd(0x144, &STARTUP_CLEAR))), 0, "{what}");
        }
    }
}

#[test]
fn drtm_after_startup_resets_the_dynamic_pcrs_and_extends_pcr17() {
    let mut t = Tpm::new(MemPlatform::with_seed(5)).unwrap();
    assert_eq!(rc(&t.execute(0, &cmd(0x144, &STARTUP_CLEAR))), 0);
    let pcr0 = pcr_read(&mut t, 0x000B, 0);
    t.hash_start();
    t.hash_data(b"secure loader block");
    t.hash_end();
    assert_eq!(
        pcr_read(&mut t, 0x000B, 17),
        sha256(&[&[0; 32], &sha256(&[b"secure loader block"])])
    );
    for i in 18..=22 {
        assert_eq!(
            pcr_read(&mut t, 0x000B, i),
            vec![0; 32],
            "PCR {i} after DRTM"
        );
    }
    assert_eq!(pcr_read(&mut t, 0x000B, 0), pcr0, "PCR 0 untouched by DRTM");
}

#[test]
fn interrupted_or_unstarted_sequences_measure_nothing() {
    // (what happens between start and end, whether a start is sent at all)
    let cases: [(&str, bool, bool); 3] = [
        ("a command between start and end", true, true),
        ("end without start", false, false),
        ("power cycle between start and end", true, false),
    ];
    for (what, start, command_between) in cases {
        let mut t = Tpm::new(MemPlatform::with_seed(6)).unwrap();
        assert_eq!(rc(&t.execute(0, &cmd(0x144, &STARTUP_CLEAR))), 0);
        if start {
            t.hash_start();
            t.hash_data(b"measured");
        }
        if command_between {
            assert_eq!(rc(&t.execute(0, &cmd(0x17B, &[0, 8]))), 0, "GetRandom");
        } else if start {
            t.power_on();
            assert_eq!(rc(&t.execute(0, &cmd(0x144, &STARTUP_CLEAR))), 0);
        }
        t.hash_end();
        assert_eq!(
            pcr_read(&mut t, 0x000B, 17),
            vec![0xFF; 32],
            "{what}: PCR 17 changed"
        );
    }
}
