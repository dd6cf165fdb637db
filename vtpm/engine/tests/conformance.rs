//! Engine-level checks of conformance fixes the differential test against libtpms cannot reach:
//! a PolicyPCR made while the PCR update counter is still 0, and the PolicyPCR counter carried
//! through ContextSave/ContextLoad and through a saved instance.

mod support;

use support::{RH_NULL, RH_OWNER, RS_PW, b2, nv_public, rc, session, start_session_params};
use warden_vtpm::{MemPlatform, Tpm};

const RC_PCR_CHANGED: u32 = 0x128;
const NV: u32 = 0x0150_0030;
/// TPML_PCR_SELECTION of PCR 10 in the SHA-256 bank.
const SEL10: [u8; 10] = [0, 0, 0, 1, 0, 0x0B, 3, 0x00, 0x04, 0x00];

/// A command; `session` (with an empty nonce for TPM_RS_PW) authorises it when given, with an
/// empty HMAC: every session here has an empty HMAC key.
fn frame(cc: u32, handles: &[u32], s: Option<u32>, params: &[u8]) -> Vec<u8> {
    let area = s.map(|s| session(s, if s == RS_PW { &[] } else { &[0x22; 16] }, 1, &[]));
    support::frame(cc, handles, area, params)
}

fn ok(t: &mut Tpm<MemPlatform>, what: &str, cmd: &[u8]) -> Vec<u8> {
    let r = t.execute(0, cmd);
    assert_eq!(rc(&r), 0, "{what}: {r:02x?}");
    r
}

fn start_session(t: &mut Tpm<MemPlatform>, kind: u8) -> u32 {
    let p = start_session_params(kind);
    let r = ok(
        t,
        "StartAuthSession",
        &frame(0x176, &[RH_NULL, RH_NULL], None, &p),
    );
    u32::from_be_bytes([r[10], r[11], r[12], r[13]])
}

fn policy_pcr(t: &mut Tpm<MemPlatform>, s: u32) -> Vec<u8> {
    t.execute(
        0,
        &frame(0x17F, &[s], None, &[&b2(&[])[..], &SEL10].concat()),
    )
}

fn extend10(t: &mut Tpm<MemPlatform>, d: u8) {
    let p = [&[0, 0, 0, 1, 0, 0x0B][..], &[d; 32]].concat();
    ok(t, "PCR_Extend", &frame(0x182, &[10], Some(RS_PW), &p));
}

/// Where the policy session goes between PolicyPCR and its use.
#[derive(Clone, Copy, Debug)]
enum Detour {
    None,
    /// ContextSave, then ContextLoad.
    Context,
    /// save_state, then restore_state (checkpoint / migration).
    Instance,
}

/// A session whose PolicyPCR was satisfied fails with TPM_RC_PCR_CHANGED (at authorisation and
/// at a second PolicyPCR) once any PCR changed, also when the update counter was 0 at PolicyPCR
/// (where the reference, which uses 0 for "no PolicyPCR", would let it pass) and after the
/// session was context-saved or the instance checkpointed; without a change it authorises.
#[test]
fn policy_pcr_session_fails_after_a_pcr_change() {
    for extend_first in [false, true] {
        for detour in [Detour::None, Detour::Context, Detour::Instance] {
            for change in [false, true] {
                let case = format!("extend_first={extend_first} {detour:?} change={change}");
                let mut t = Tpm::new(MemPlatform::with_seed(7)).unwrap();
                ok(&mut t, "Startup", &frame(0x144, &[], None, &[0, 0]));
                if extend_first {
                    extend10(&mut t, 1);
                }
                // The index's policy: PolicyPCR over the current PCR 10, from a trial session.
                let trial = start_session(&mut t, 3);
                assert_eq!(rc(&policy_pcr(&mut t, trial)), 0, "{case}: trial PolicyPCR");
                let digest = ok(
                    &mut t,
                    "PolicyGetDigest",
                    &frame(0x189, &[trial], None, &[]),
                );
                let policy = digest[12..44].to_vec();
                ok(
                    &mut t,
                    "Flush",
                    &frame(0x165, &[], None, &trial.to_be_bytes()),
                );
                let attrs: u32 = (1 << 1) | (1 << 3) | (1 << 17) | (1 << 19) | (1 << 25);
                let public = nv_public(NV, attrs, &policy, 8);
                let p = [&b2(&[])[..], &b2(&public)].concat();
                ok(
                    &mut t,
                    "NV_DefineSpace",
                    &frame(0x12A, &[RH_OWNER], Some(RS_PW), &p),
                );
                let p = [&b2(&[7; 8])[..], &[0, 0]].concat();
                ok(
                    &mut t,
                    "NV_Write",
                    &frame(0x137, &[RH_OWNER, NV], Some(RS_PW), &p),
                );

                let mut s = start_session(&mut t, 1);
                let r = policy_pcr(&mut t, s);
                assert_eq!(rc(&r), 0, "{case}: PolicyPCR");
                match detour {
                    Detour::None => {}
                    Detour::Context => {
                        let saved = ok(&mut t, "ContextSave", &frame(0x162, &[s], None, &[]));
                        let r = ok(
                            &mut t,
                            "ContextLoad",
                            &frame(0x161, &[], None, &saved[10..]),
                        );
                        s = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
                    }
                    Detour::Instance => {
                        let blob = t.save_state();
                        let mut fresh = Tpm::new(MemPlatform::with_seed(8)).unwrap();
                        fresh.restore_state(&blob).expect("restore");
                        t = fresh;
                    }
                }
                if change {
                    extend10(&mut t, 2);
                }
                let read = frame(0x14E, &[NV, NV], Some(s), &[0, 8, 0, 0]);
                let r = t.execute(0, &read);
                let want = if change { RC_PCR_CHANGED } else { 0 };
                assert_eq!(rc(&r), want, "{case}: NV_Read {r:02x?}");
                if change {
                    // The session still holds the stale PolicyPCR: a second one is refused too.
                    assert_eq!(rc(&policy_pcr(&mut t, s)), RC_PCR_CHANGED, "{case}");
                    // PolicyRestart forgets it.
                    ok(&mut t, "PolicyRestart", &frame(0x180, &[s], None, &[]));
                    assert_eq!(rc(&policy_pcr(&mut t, s)), 0, "{case}: after restart");
                }
            }
        }
    }
}
