//! The manager's sealing against a real platform TPM (a private swtpm per test): the state
//! opens only under the hypervisor's PCRs, older and altered blobs are refused by name, the
//! rollback counter moves only at the manager's locality, and each locality has exactly its
//! PC Client rights on PCRs 20–22 (locality 1 can extend PCR 20, nothing more).

use warden_tpm::host::{Swtpm, TcpTransport, unique_temp_dir};
use warden_tpm::storage::RC_POLICY_FAIL;
use warden_tpm::{Banks, DigestSet, Error, HashAlg, Tpm};
use warden_vtpm_manager::{COUNTER_BASE, MANAGER_LOCALITY, SealError, Sealer};

/// `TPM_RC_LOCALITY`
const RC_LOCALITY: u32 = 0x907;

type Seal = Sealer<TcpTransport>;

/// Asserts that an unseal was refused with the given error (io::Error has no `PartialEq`).
macro_rules! assert_refused {
    ($got:expr, $pat:pat $(, $($msg:tt)+)?) => {{
        let got = $got;
        assert!(matches!(got, Err($pat)), "expected {}, got {:?} {}", stringify!($pat), got, format_args!("" $(, $($msg)+)?));
    }};
}

/// What the hypervisor does at boot, at locality 2: PCRs 20–22 reset and extended with the
/// MAC policy, the configuration (command line, manifest) and the domain images (here: labels
/// standing for them).
fn measure_boot(sealer: &mut Seal, policy: &str, manifest: &str, images: &str) {
    let tpm = sealer.tpm();
    tpm.transport().set_locality(2).unwrap();
    let banks = tpm.active_banks().unwrap();
    for (pcr, what) in [(20, policy), (21, manifest), (22, images)] {
        tpm.pcr_reset(pcr).unwrap();
        tpm.pcr_extend(pcr, &DigestSet::of(banks, what.as_bytes()))
            .unwrap();
    }
    tpm.transport().set_locality(MANAGER_LOCALITY).unwrap();
}

fn sealer(sw: &Swtpm) -> Seal {
    let mut t = Tpm::new(sw.connect().unwrap());
    t.transport().set_locality(MANAGER_LOCALITY).unwrap();
    Sealer::new(t).unwrap()
}

/// What each locality may do to the hypervisor's PCRs, measured on swtpm (libtpms follows
/// the PC Client profile): (locality, PCR, extend allowed, reset allowed).
const PCR_RIGHTS: [(u8, u32, bool, bool); 12] = [
    (0, 20, false, false),
    (0, 21, false, false),
    (0, 22, false, false),
    // The manager's locality: PCR 20 is extendable from locality 1 (never resettable).
    (1, 20, true, false),
    (1, 21, false, false),
    (1, 22, false, false),
    (2, 20, true, true),
    (2, 21, true, true),
    (2, 22, true, true),
    (3, 20, true, false),
    (3, 21, false, false),
    (3, 22, false, false),
];

#[test]
fn each_locality_has_exactly_its_rights_on_the_hypervisor_pcrs() {
    let sw = Swtpm::start().unwrap();
    let mut t = Tpm::new(sw.connect().unwrap());
    let one = DigestSet::of(Banks::only(HashAlg::Sha256), b"manager");
    for (locality, pcr, extend, reset) in PCR_RIGHTS {
        t.transport().set_locality(locality).unwrap();
        let before = t.pcr_read(pcr, HashAlg::Sha256).unwrap();
        let ext = t.pcr_extend(pcr, &one);
        assert_eq!(
            ext.is_ok(),
            extend,
            "locality {locality} extend PCR {pcr}: {ext:?}"
        );
        if !extend {
            assert!(matches!(ext, Err(Error::Tpm(_, RC_LOCALITY))), "{ext:?}");
            assert_eq!(t.pcr_read(pcr, HashAlg::Sha256).unwrap(), before);
        }
        let rst = t.pcr_reset(pcr);
        assert_eq!(
            rst.is_ok(),
            reset,
            "locality {locality} reset PCR {pcr}: {rst:?}"
        );
        if !reset {
            assert!(matches!(rst, Err(Error::Tpm(_, RC_LOCALITY))), "{rst:?}");
        }
    }
}

/// The manager can extend PCR 20 but never reset it, so it can only move PCR 20 away from the
/// measured value: its sealed states then stay shut (and quotes fail), they never open.
#[test]
fn an_extend_of_pcr_20_from_the_managers_locality_only_shuts_the_sealed_state() {
    let sw = Swtpm::start().unwrap();
    let mut s = sealer(&sw);
    measure_boot(&mut s, "policy", "manifest", "images");
    let blob = s.seal(0, b"state").unwrap();
    let tpm = s.tpm();
    tpm.pcr_extend(20, &DigestSet::of(Banks::only(HashAlg::Sha256), b"x"))
        .unwrap();
    assert!(matches!(tpm.pcr_reset(20), Err(Error::Tpm(_, RC_LOCALITY))));
    assert_refused!(s.unseal(0, &blob), SealError::PolicyMismatch);
}

#[test]
fn a_sealed_state_opens_only_under_the_pcrs_it_was_sealed_to() {
    let sw = Swtpm::start().unwrap();
    let mut s = sealer(&sw);
    measure_boot(&mut s, "policy A", "manifest A", "images A");
    let state = b"instance state: seeds, NV, persistent objects".repeat(40);
    let blob = s.seal(3, &state).unwrap();
    assert!(
        !blob.windows(32).any(|w| state.windows(32).any(|x| x == w)),
        "the state is in the blob in the clear"
    );
    assert_eq!(s.unseal(3, &blob).unwrap(), state);
    // Another policy, manifest or set of images: each PCR alone keeps the state shut.
    let others = [
        ("policy B", "manifest A", "images A"),
        ("policy A", "manifest B", "images A"),
        ("policy A", "manifest A", "images B"),
    ];
    for (policy, manifest, images) in others {
        measure_boot(&mut s, policy, manifest, images);
        assert_refused!(s.unseal(3, &blob), SealError::PolicyMismatch);
    }
    // Back on the measured configuration it opens again: the refusals changed nothing.
    measure_boot(&mut s, "policy A", "manifest A", "images A");
    assert_eq!(s.unseal(3, &blob).unwrap(), state);
}

#[test]
fn an_older_state_is_a_rollback_and_every_altered_one_is_refused_by_name() {
    let sw = Swtpm::start().unwrap();
    let mut s = sealer(&sw);
    measure_boot(&mut s, "policy", "manifest", "images");
    let old = s.seal(0, b"first state").unwrap();
    let blob = s.seal(0, b"second state").unwrap();
    assert_eq!(s.counter(0).unwrap(), Some(2));
    assert_refused!(
        s.unseal(0, &old),
        SealError::Rollback {
            blob: 1,
            counter: 2
        }
    );
    let header = 4 + 2 + 4 + 8;
    let public_len = usize::from(u16::from_be_bytes([blob[header], blob[header + 1]]));
    let private_at = header + 2 + public_len;
    let nonce_at = blob.len() - 12 - 16 - b"second state".len();
    type Check = fn(&SealError<std::io::Error>) -> bool;
    let cases: [(&str, usize, u8, Check); 9] = [
        ("magic", 0, 0x01, |e| matches!(e, SealError::Malformed(_))),
        ("version", 5, 0x01, |e| matches!(e, SealError::Malformed(_))),
        ("instance", 9, 0x01, |e| {
            matches!(e, SealError::WrongInstance { blob: 1, asked: 0 })
        }),
        ("counter down", 17, 0x03, |e| {
            matches!(
                e,
                SealError::Rollback {
                    blob: 1,
                    counter: 2
                }
            )
        }),
        ("counter up", 17, 0x01, |e| {
            matches!(
                e,
                SealError::AheadOfCounter {
                    blob: 3,
                    counter: 2
                }
            )
        }),
        (
            "sealed key's public area",
            header + 2 + public_len - 1,
            0x01,
            |e| matches!(e, SealError::Integrity),
        ),
        ("sealed key's private area", private_at + 10, 0x01, |e| {
            matches!(e, SealError::Integrity)
        }),
        ("nonce", nonce_at, 0x01, |e| {
            matches!(e, SealError::Integrity)
        }),
        ("ciphertext", blob.len() - 20, 0x01, |e| {
            matches!(e, SealError::Integrity)
        }),
    ];
    for (what, at, xor, expected) in cases {
        let mut bad = blob.clone();
        bad[at] ^= xor;
        let got = s.unseal(0, &bad);
        assert!(
            got.as_ref().is_err_and(expected),
            "altered {what} (byte {at}): {got:?}"
        );
    }
    for cut in [0, 10, header + 1, blob.len() - 1] {
        assert!(
            matches!(
                s.unseal(0, &blob[..cut]),
                Err(SealError::Malformed(_)) | Err(SealError::Integrity)
            ),
            "a blob cut at {cut} was not refused"
        );
    }
    // No refusal moved the counter or spoiled the latest state.
    assert_eq!(s.counter(0).unwrap(), Some(2));
    assert_eq!(s.unseal(0, &blob).unwrap(), b"second state");
}

#[test]
fn only_the_managers_locality_advances_the_counter() {
    let sw = Swtpm::start().unwrap();
    let mut s = sealer(&sw);
    measure_boot(&mut s, "policy", "manifest", "images");
    let blob = s.seal(5, b"state").unwrap();
    let index = COUNTER_BASE + 5;
    let tpm = s.tpm();
    for locality in [0u8, 2] {
        tpm.transport().set_locality(locality).unwrap();
        let mut nonce = [7u8; 16];
        nonce[0] = locality;
        let session = tpm.start_policy_session(&nonce).unwrap();
        // Even a session that claims the manager's locality fails at another one.
        tpm.policy_locality(session, MANAGER_LOCALITY).unwrap();
        let got = tpm.nv_increment(index, session);
        assert!(
            matches!(got, Err(Error::Tpm(_, RC_LOCALITY))),
            "locality {locality} advanced the counter: {got:?}"
        );
        tpm.flush_context(session).unwrap();
    }
    // At the manager's locality, a session without the locality assertion (its digest is not
    // the counter's write policy) is refused too.
    tpm.transport().set_locality(MANAGER_LOCALITY).unwrap();
    let session = tpm.start_policy_session(&[9; 16]).unwrap();
    let got = tpm.nv_increment(index, session);
    assert!(
        matches!(got, Err(Error::Tpm(_, rc)) if rc & 0x0BF == RC_POLICY_FAIL),
        "an empty policy advanced the counter: {got:?}"
    );
    tpm.flush_context(session).unwrap();
    assert_eq!(s.counter(5).unwrap(), Some(1));
    assert_eq!(s.unseal(5, &blob).unwrap(), b"state");
}

#[test]
fn instances_have_their_own_counters_and_states_survive_a_platform_restart() {
    let dir = unique_temp_dir("warden-vtpmmgr").unwrap();
    let (a, b) = {
        let sw = Swtpm::start_on(&dir, &["not-need-init", "startup-clear"]).unwrap();
        let mut s = sealer(&sw);
        measure_boot(&mut s, "policy", "manifest", "images");
        let a = s.seal(1, b"instance one").unwrap();
        let b = s.seal(2, b"instance two").unwrap();
        // Saving instance 2 did not roll instance 1 back.
        assert_eq!(s.unseal(1, &a).unwrap(), b"instance one");
        (a, b)
    };
    // A new boot of the same platform: the same measurements, the same storage key, the
    // counters kept in the TPM's NV.
    let sw = Swtpm::start_on(&dir, &["not-need-init", "startup-clear"]).unwrap();
    let mut s = sealer(&sw);
    measure_boot(&mut s, "policy", "manifest", "images");
    assert_eq!(s.unseal(1, &a).unwrap(), b"instance one");
    assert_eq!(s.unseal(2, &b).unwrap(), b"instance two");
    assert_refused!(
        s.unseal(1, &b),
        SealError::WrongInstance { blob: 2, asked: 1 }
    );
    drop(sw);
    let _ = std::fs::remove_dir_all(&dir);
}
