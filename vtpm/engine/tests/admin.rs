//! Hierarchy and clock administration from raw command bytes: ChangeEPS/ChangePPS give new
//! primaries and flush the hierarchy's objects, SetPrimaryPolicy's policy authorises the
//! hierarchy, ClockSet moves Clock forward only, NV_UndefineSpaceSpecial deletes a
//! policy-delete index; and the numbered codes of bad requests.

mod support;

use support::Engine as T;
use support::{
    RH_ENDORSEMENT, RH_LOCKOUT, RH_NULL, RH_OWNER, RH_PLATFORM, RS_PW, b2, nv_public, plain, rc,
    session, started,
};
use warden_vtpm::{MemPlatform, Tpm};

/// A command with session area entries (handle, nonce, attributes, hmac/password).
fn frame(cc: u32, handles: &[u32], sessions: &[(u32, &[u8], u8, &[u8])], params: &[u8]) -> Vec<u8> {
    let area = sessions
        .iter()
        .flat_map(|&(h, nonce, attrs, auth)| session(h, nonce, attrs, auth));
    support::frame(
        cc,
        handles,
        (!sessions.is_empty()).then(|| area.collect()),
        params,
    )
}

/// With `n` password authorisations (each `pw`).
fn pw(cc: u32, handles: &[u32], n: usize, pw: &[u8], params: &[u8]) -> Vec<u8> {
    frame(cc, handles, &vec![(RS_PW, &[][..], 1, pw); n], params)
}

/// An ECC P-256 storage-key template (restricted decrypt, AES-128-CFB).
fn srk_template() -> Vec<u8> {
    [
        &[0, 0x23, 0, 0x0B][..],
        &0x0003_0072u32.to_be_bytes(),
        &b2(&[]),
        &[0, 0x06, 0, 0x80, 0, 0x43, 0, 0x10, 0, 0x03, 0, 0x10],
        &b2(&[]),
        &b2(&[]),
    ]
    .concat()
}

impl T {
    fn new() -> T {
        T(started(8))
    }
    /// CreatePrimary of the storage template in `hier`: (handle, outPublic).
    fn primary(&mut self, hier: u32) -> (u32, Vec<u8>) {
        let p = [
            &[0, 4, 0, 0, 0, 0][..],
            &b2(&srk_template()),
            &[0, 0, 0, 0, 0, 0],
        ]
        .concat();
        let r = self.ok(&pw(0x131, &[hier], 1, b"", &p));
        let n = usize::from(u16::from_be_bytes([r[18], r[19]]));
        (
            u32::from_be_bytes([r[10], r[11], r[12], r[13]]),
            r[20..20 + n].to_vec(),
        )
    }
    fn flush(&mut self, h: u32) {
        self.ok(&plain(0x165, &[], &h.to_be_bytes()));
    }
    fn read_public(&mut self, h: u32) -> u32 {
        rc(&self.run(&plain(0x173, &[h], &[])))
    }
    fn clock(&mut self) -> u64 {
        let r = self.ok(&plain(0x181, &[], &[]));
        u64::from_be_bytes(r[18..26].try_into().unwrap())
    }
}

#[test]
fn new_seeds_give_new_primaries_and_flush_the_hierarchy() {
    let mut t = T::new();
    for (change, hier, other, evict_auth, persistent) in [
        (0x124u32, RH_ENDORSEMENT, RH_OWNER, RH_OWNER, 0x8101_0001u32),
        (0x125, RH_PLATFORM, RH_ENDORSEMENT, RH_PLATFORM, 0x8180_0001),
    ] {
        let (h, before) = t.primary(hier);
        t.ok(&pw(
            0x120,
            &[evict_auth, h],
            1,
            b"",
            &persistent.to_be_bytes(),
        ));
        t.flush(h);
        let (h, other_before) = t.primary(other);
        t.flush(h);
        let (loaded, again) = t.primary(hier);
        assert_eq!(again, before, "same seed: same primary");
        // Only the platform may change a seed.
        assert_eq!(rc(&t.run(&pw(change, &[RH_OWNER], 1, b"", &[]))), 0x184);
        t.ok(&pw(change, &[RH_PLATFORM], 1, b"", &[]));
        assert_eq!(
            t.read_public(loaded),
            0x910,
            "loaded primary flushed (TPM_RC_REFERENCE_H0)"
        );
        assert_eq!(
            t.read_public(persistent),
            0x18B,
            "persistent object flushed"
        );
        let (h, after) = t.primary(hier);
        assert_ne!(after, before, "new seed: new primary");
        t.flush(h);
        let (h, other_after) = t.primary(other);
        assert_eq!(
            other_after, other_before,
            "the other hierarchy is untouched"
        );
        t.flush(h);
    }
}

#[test]
fn primary_policy_authorises_the_hierarchy() {
    let mut t = T::new();
    // Owner auth "secret"; owner policy = PolicyPassword's digest (TPM_CC_PolicyAuthValue).
    t.ok(&pw(0x129, &[RH_OWNER], 1, b"", &b2(b"secret")));
    let policy = {
        use sha2::{Digest, Sha256};
        Sha256::digest([&[0u8; 32][..], &0x16Bu32.to_be_bytes()].concat()).to_vec()
    };
    let set = [&b2(&policy)[..], &[0, 0x0B]].concat();
    t.ok(&pw(0x12E, &[RH_OWNER], 1, b"secret", &set));
    let s = {
        let p = [&b2(&[5; 16])[..], &[0, 0, 1], &[0, 0x10], &[0, 0x0B]].concat();
        let r = t.ok(&plain(0x176, &[RH_NULL, RH_NULL], &p));
        u32::from_be_bytes([r[10], r[11], r[12], r[13]])
    };
    let nonce = [1u8; 16];
    // Not DA-protected (a hierarchy): a wrong password is TPM_RC_BAD_AUTH, session 1.
    for (password, want) in [(&b"wrong"[..], 0x9A2), (b"secret", 0)] {
        t.ok(&plain(0x180, &[s], &[]));
        t.ok(&plain(0x18C, &[s], &[]));
        // HierarchyChangeAuth(owner) under the policy: PolicyPassword carries the password.
        let r = t.run(&frame(
            0x129,
            &[RH_OWNER],
            &[(s, &nonce, 1, password)],
            &b2(b"secret"),
        ));
        assert_eq!(rc(&r), want, "policy session with password {password:?}");
    }
    // SetPrimaryPolicy's numbered codes.
    let cases: [(&str, Vec<u8>, u32); 4] = [
        (
            "policy size not the hash's",
            pw(
                0x12E,
                &[RH_LOCKOUT],
                1,
                b"",
                &[&b2(&[1; 20])[..], &[0, 0x0B]].concat(),
            ),
            0x1D5,
        ),
        (
            "unknown hash",
            pw(
                0x12E,
                &[RH_LOCKOUT],
                1,
                b"",
                &[&b2(&[])[..], &[0, 0x99]].concat(),
            ),
            0x2C3,
        ),
        (
            "NULL hierarchy",
            pw(
                0x12E,
                &[RH_NULL],
                1,
                b"",
                &[&b2(&[])[..], &[0, 0x10]].concat(),
            ),
            0x184,
        ),
        (
            "lockout: no policy",
            pw(
                0x12E,
                &[RH_LOCKOUT],
                1,
                b"",
                &[&b2(&[])[..], &[0, 0x10]].concat(),
            ),
            0,
        ),
    ];
    for (what, c, want) in cases {
        assert_eq!(rc(&t.run(&c)), want, "{what}");
    }
}

#[test]
fn clock_set_moves_forward_only() {
    let mut t = T::new();
    let set = |auth: u32, v: u64| pw(0x128, &[auth], 1, b"", &v.to_be_bytes());
    let target = 1u64 << 40;
    t.ok(&set(RH_OWNER, target));
    let now = t.clock();
    assert!(
        now >= target && now < target + 1_000,
        "Clock {now} after ClockSet({target})"
    );
    let cases: [(&str, Vec<u8>, u32); 5] = [
        (
            "backwards: TPM_RC_VALUE, parameter 1",
            set(RH_OWNER, target - 1),
            0x1C4,
        ),
        (
            "past 0xFFFF000000000000",
            set(RH_PLATFORM, 0xFFFF_0000_0000_0001),
            0x1C4,
        ),
        (
            "endorsement may not: TPM_RC_VALUE, handle 1",
            set(RH_ENDORSEMENT, target * 2),
            0x184,
        ),
        (
            "ClockRateAdjust 4: TPM_RC_VALUE, parameter 1",
            pw(0x130, &[RH_OWNER], 1, b"", &[4]),
            0x1C4,
        ),
        (
            "ClockRateAdjust -3",
            pw(0x130, &[RH_OWNER], 1, b"", &[0xFD]),
            0,
        ),
    ];
    for (what, c, want) in cases {
        assert_eq!(rc(&t.run(&c)), want, "{what}");
    }
    assert!(t.clock() >= now);
}

#[test]
fn undefine_space_special_needs_policy_delete_and_the_policy() {
    let mut t = T::new();
    use sha2::{Digest, Sha256};
    let cc = Sha256::digest(
        [
            &[0u8; 32][..],
            &0x16Cu32.to_be_bytes(),
            &0x11Fu32.to_be_bytes(),
        ]
        .concat(),
    );
    let policy = Sha256::digest([&cc[..], &0x16Bu32.to_be_bytes()].concat()).to_vec();
    let define = |t: &mut T, index: u32, extra: u32| {
        let attrs = 1u32 | (1 << 16) | (1 << 18) | (1 << 30) | extra;
        let public = nv_public(index, attrs, &policy, 8);
        t.ok(&pw(
            0x12A,
            &[RH_PLATFORM],
            1,
            b"",
            &[&b2(&[])[..], &b2(&public)].concat(),
        ));
    };
    let (special, plain_idx) = (0x0140_0010u32, 0x0140_0011u32);
    define(&mut t, special, 1 << 10);
    define(&mut t, plain_idx, 0);
    let start = |t: &mut T| {
        let p = [&b2(&[5; 16])[..], &[0, 0, 1], &[0, 0x10], &[0, 0x0B]].concat();
        let r = t.ok(&plain(0x176, &[RH_NULL, RH_NULL], &p));
        let s = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
        t.ok(&plain(0x16C, &[s], &0x11Fu32.to_be_bytes()));
        t.ok(&plain(0x18C, &[s], &[]));
        s
    };
    let nonce = [2u8; 16];
    let with = |s: u32, index: u32, platform: u32| {
        frame(
            0x11F,
            &[index, platform],
            &[(s, &nonce[..], 1, &[][..]), (RS_PW, &[][..], 1, &[][..])],
            &[],
        )
    };
    assert_eq!(
        rc(&t.run(&pw(0x122, &[RH_PLATFORM, special], 1, b"", &[]))),
        0x282,
        "NV_UndefineSpace refuses policyDelete"
    );
    assert_eq!(
        rc(&t.run(&pw(0x11F, &[special, RH_PLATFORM], 2, b"", &[]))),
        0x124,
        "ADMIN role: a policy session (TPM_RC_AUTH_TYPE)"
    );
    let s = start(&mut t);
    assert_eq!(
        rc(&t.run(&with(s, plain_idx, RH_PLATFORM))),
        0x182,
        "no policyDelete: TPM_RC_ATTRIBUTES, handle 1"
    );
    let s2 = start(&mut t);
    assert_eq!(
        rc(&t.run(&with(s2, special, RH_OWNER))),
        0x284,
        "owner for platform: TPM_RC_VALUE, handle 2"
    );
    t.ok(&with(s2, special, RH_PLATFORM));
    assert_eq!(
        rc(&t.run(&plain(0x169, &[special], &[]))),
        0x18B,
        "the index is gone"
    );
    let _ = s;
}

#[test]
fn pcr_allocation_applies_at_the_next_startup_clear() {
    let mut t = T::new();
    // (SHA-1 bank allocated?) as TPM_CAP_PCRS reports it.
    let sha1_allocated = |t: &mut T| {
        let r = t.ok(&plain(0x17A, &[], &[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 8]));
        // moreData, capability, count, then (hash, size 3, select) per bank: SHA-1 first.
        assert_eq!(&r[19..22], &[0, 0x04, 3]);
        r[22..25] == [0xFF; 3]
    };
    let sha1_read = |t: &mut T| {
        let r = t.ok(&plain(0x17E, &[], &[0, 0, 0, 1, 0, 0x04, 3, 1, 0, 0]));
        // updateCounter, selection out (count, hash, size, select), digest count.
        u32::from_be_bytes(r[24..28].try_into().unwrap())
    };
    let sel = |sha1: u8| {
        [
            &[0, 0, 0, 2][..],
            &[0, 0x04, 3],
            &[sha1; 3],
            &[0, 0x0B, 3, 0xFF, 0xFF, 0xFF],
        ]
        .concat()
    };
    let cases: [(&str, Vec<u8>, u32); 3] = [
        (
            "by the owner: TPM_RC_VALUE, handle 1",
            pw(0x12B, &[RH_OWNER], 1, b"", &sel(0)),
            0x184,
        ),
        (
            "no bank keeps PCR 0 and 17: TPM_RC_PCR",
            pw(
                0x12B,
                &[RH_PLATFORM],
                1,
                b"",
                &[
                    &[0, 0, 0, 2][..],
                    &[0, 0x04, 3, 0, 0, 0],
                    &[0, 0x0B, 3, 0, 0, 0],
                ]
                .concat(),
            ),
            0x127,
        ),
        (
            "unknown hash: TPM_RC_HASH, parameter 1",
            pw(
                0x12B,
                &[RH_PLATFORM],
                1,
                b"",
                &[&[0, 0, 0, 1][..], &[0, 0x99, 3, 0xFF, 0xFF, 0xFF]].concat(),
            ),
            0x1C3,
        ),
    ];
    for (what, c, want) in cases {
        assert_eq!(rc(&t.run(&c)), want, "{what}");
    }
    // Part of a bank: allocationSuccess NO, nothing changes.
    let r = t.ok(&pw(0x12B, &[RH_PLATFORM], 1, b"", &sel(0x0F)));
    assert_eq!(r[14], 0, "partial bank refused");
    let r = t.ok(&pw(0x12B, &[RH_PLATFORM], 1, b"", &sel(0)));
    assert_eq!(r[14], 1, "allocationSuccess");
    assert_eq!(
        u32::from_be_bytes(r[15..19].try_into().unwrap()),
        24,
        "maxPCR"
    );
    assert_eq!(
        u32::from_be_bytes(r[19..23].try_into().unwrap()),
        24 * 32,
        "sizeNeeded: SHA-256 only"
    );
    assert!(
        sha1_allocated(&mut t),
        "still allocated until the next Startup(CLEAR)"
    );
    assert_eq!(sha1_read(&mut t), 1);
    assert_eq!(
        rc(&t.run(&plain(0x145, &[], &[0, 1]))),
        0x1CA,
        "Shutdown(STATE): TPM_RC_TYPE"
    );
    t.ok(&plain(0x145, &[], &[0, 0]));
    t.0.power_on();
    t.ok(&plain(0x144, &[], &[0, 0]));
    assert!(
        !sha1_allocated(&mut t),
        "SHA-1 bank gone after Startup(CLEAR)"
    );
    assert_eq!(sha1_read(&mut t), 0, "PCR_Read returns no SHA-1 digest");
    // The allocation is permanent: a state blob carries it.
    let blob = t.0.save_state();
    let mut u = T(Tpm::new(MemPlatform::with_seed(3)).expect("fresh TPM"));
    u.0.restore_state(&blob).expect("restore");
    u.ok(&plain(0x145, &[], &[0, 0]));
    u.0.power_on();
    u.ok(&plain(0x144, &[], &[0, 0]));
    assert!(!sha1_allocated(&mut u));
}

#[test]
fn pcr_group_auth_value_guards_pcrs_20_to_22() {
    let mut t = T::new();
    let extend = |pcr: u32, password: &[u8]| {
        pw(
            0x182,
            &[pcr],
            1,
            password,
            &[&[0, 0, 0, 1, 0, 0x0B][..], &[1; 32]].concat(),
        )
    };
    assert_eq!(
        rc(&t.run(&pw(0x183, &[16], 1, b"", &b2(b"g")))),
        0x084,
        "PCR 16 is in no group"
    );
    t.ok(&pw(0x183, &[22], 1, b"", &b2(b"g")));
    for (what, pcr, password, want) in [
        (
            "PCR 20 without the group password: TPM_RC_BAD_AUTH",
            20u32,
            &b""[..],
            0x9A2,
        ),
        ("PCR 21 with it", 21, b"g", 0),
        ("PCR 16 is not guarded", 16, b"", 0),
    ] {
        // Locality 2: the PC Client profile lets it extend PCRs 16-22.
        assert_eq!(rc(&t.0.execute(2, &extend(pcr, password))), want, "{what}");
    }
    // The group authValue is state-clear data: Startup(CLEAR) empties it.
    t.ok(&plain(0x145, &[], &[0, 0]));
    t.0.power_on();
    t.ok(&plain(0x144, &[], &[0, 0]));
    assert_eq!(rc(&t.0.execute(2, &extend(20, b""))), 0);
}
