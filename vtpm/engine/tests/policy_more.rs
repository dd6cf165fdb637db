//! PolicyDuplicationSelect, PolicyNvWritten, PolicyCounterTimer, PolicyPhysicalPresence and
//! PolicyTemplate from raw command bytes: the digests they extend (written out here from
//! Part 3 §23), their numbered codes, and the conditions they put on the authorised command
//! (a written or unwritten NV index, physical presence, the template of Create).

mod support;

use support::Engine as T;
use support::*;

const DUP_SELECT: u32 = 0x188;
const NV_WRITTEN: u32 = 0x18F;
const COUNTER_TIMER: u32 = 0x16D;
const PHYSICAL_PRESENCE: u32 = 0x187;
const TEMPLATE: u32 = 0x190;
/// TPM_RC_POLICY_FAIL and TPM_RC_PP for session 1.
const POLICY_FAIL_S1: u32 = 0x99D;
const PP_S1: u32 = 0x990;

impl T {
    fn new() -> T {
        T(started(5))
    }
    fn start(&mut self, kind: u8) -> Sess {
        let p = start_session_params(kind);
        Sess::from_response(&self.ok(&plain(0x176, &[RH_NULL, RH_NULL], &p)))
    }
    fn digest(&mut self, s: &Sess) -> Vec<u8> {
        self.ok(&plain(0x189, &[s.handle], &[]))[12..].to_vec()
    }
    /// A sealed primary that only a policy session with `policy` can unseal: (handle, name).
    fn sealed(&mut self, policy: &[u8]) -> (u32, Vec<u8>) {
        self.primary(&sealed_template(policy), b"secret")
    }
    fn primary(&mut self, tpl: &[u8], data: &[u8]) -> (u32, Vec<u8>) {
        let sens = b2(&[&b2(&[])[..], &b2(data)].concat());
        let p = [&sens[..], &b2(tpl), &[0, 0, 0, 0, 0, 0]].concat();
        let r = self.ok(&pw(0x131, &[RH_OWNER], 1, &p));
        let h = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
        let name = self.ok(&plain(0x173, &[h], &[]));
        let n = usize::from(u16::from_be_bytes([name[10], name[11]]));
        let at = 12 + n;
        let m = usize::from(u16::from_be_bytes([name[at], name[at + 1]]));
        (h, name[at + 2..at + 2 + m].to_vec())
    }
}

/// policyDigest_new = H(policyDigest_old || parts...).
/// A command code's bytes.
fn cc(c: u32) -> Vec<u8> {
    c.to_be_bytes().to_vec()
}

fn ext(old: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut all = vec![old];
    all.extend_from_slice(parts);
    sha256(&all)
}

#[test]
fn assertions_extend_the_digest_and_refuse_bad_input() {
    let mut t = T::new();
    let s = t.start(3);
    let h = s.handle;
    let name = |b: u8| [&[0u8, 0x0B][..], &[b; 32]].concat();
    let (obj, parent) = (name(1), name(2));
    let dup = |o: &[u8], p: &[u8], include: u8| {
        plain(DUP_SELECT, &[h], &[&b2(o)[..], &b2(p), &[include]].concat())
    };
    let timer = |operand: &[u8], offset: u16, op: u16| {
        plain(
            COUNTER_TIMER,
            &[h],
            &[&b2(operand)[..], &offset.to_be_bytes(), &op.to_be_bytes()].concat(),
        )
    };
    let tpl_hash = sha256(&[b"a template"]);
    type Want = Option<Box<dyn Fn(&[u8]) -> Vec<u8>>>;
    let (o2, p2, th) = (obj.clone(), parent.clone(), tpl_hash.clone());
    // (what, command, response code, how the digest moves when it succeeds)
    let cases: Vec<(&str, Vec<u8>, u32, Want)> = vec![
        (
            "PolicyDuplicationSelect with the object",
            dup(&obj, &parent, 1),
            0,
            Some(Box::new(move |d| {
                ext(d, &[&cc(DUP_SELECT), &o2, &p2, &[1]])
            })),
        ),
        (
            "again: the nameHash slot is taken (TPM_RC_CPHASH)",
            dup(&obj, &parent, 1),
            0x151,
            None,
        ),
        (
            "PolicyRestart",
            plain(0x180, &[h], &[]),
            0,
            Some(Box::new(|_| vec![0; 32])),
        ),
        (
            "includeObject 2: TPM_RC_VALUE, parameter 3",
            dup(&obj, &parent, 2),
            0x3C4,
            None,
        ),
        (
            "PolicyDuplicationSelect without the object",
            dup(&obj, &parent, 0),
            0,
            Some(Box::new({
                let p = parent.clone();
                move |d| ext(d, &[&cc(DUP_SELECT), &p, &[0]])
            })),
        ),
        (
            "PolicyRestart 2",
            plain(0x180, &[h], &[]),
            0,
            Some(Box::new(|_| vec![0; 32])),
        ),
        (
            "PolicyCommandCode(Duplicate)",
            plain(0x16C, &[h], &0x14Bu32.to_be_bytes()),
            0,
            Some(Box::new(|d| ext(d, &[&cc(0x16C), &cc(0x14B)]))),
        ),
        (
            "then PolicyDuplicationSelect: TPM_RC_COMMAND_CODE",
            dup(&obj, &parent, 1),
            0x143,
            None,
        ),
        (
            "PolicyRestart 3",
            plain(0x180, &[h], &[]),
            0,
            Some(Box::new(|_| vec![0; 32])),
        ),
        (
            "PolicyNvWritten NO",
            plain(NV_WRITTEN, &[h], &[0]),
            0,
            Some(Box::new(|d| ext(d, &[&cc(NV_WRITTEN), &[0]]))),
        ),
        (
            "PolicyNvWritten YES after NO: TPM_RC_VALUE, parameter 1",
            plain(NV_WRITTEN, &[h], &[1]),
            0x1C4,
            None,
        ),
        (
            "PolicyCounterTimer (trial: no comparison)",
            timer(&[0; 8], 0, 0x0003),
            0,
            Some(Box::new(|d| {
                let args = sha256(&[&b2(&[0; 8])[2..], &[0, 0], &[0, 3]]);
                ext(d, &[&cc(COUNTER_TIMER), &args])
            })),
        ),
        (
            "PolicyCounterTimer operation 12: TPM_RC_VALUE, parameter 3",
            timer(&[0; 8], 0, 0x000C),
            0x3C4,
            None,
        ),
        (
            "PolicyPhysicalPresence",
            plain(PHYSICAL_PRESENCE, &[h], &[]),
            0,
            Some(Box::new(|d| ext(d, &[&cc(PHYSICAL_PRESENCE)]))),
        ),
        (
            "PolicyTemplate of 20 bytes: TPM_RC_SIZE, parameter 1",
            plain(TEMPLATE, &[h], &b2(&[0; 20])),
            0x1D5,
            None,
        ),
        (
            "PolicyTemplate",
            plain(TEMPLATE, &[h], &b2(&tpl_hash)),
            0,
            Some(Box::new(move |d| ext(d, &[&cc(TEMPLATE), &th]))),
        ),
        (
            "another PolicyTemplate: TPM_RC_VALUE, parameter 1",
            plain(TEMPLATE, &[h], &b2(&[9; 32])),
            0x1C4,
            None,
        ),
        (
            "PolicyCpHash after PolicyTemplate: TPM_RC_CPHASH",
            plain(0x16E, &[h], &b2(&[9; 32])),
            0x151,
            None,
        ),
    ];
    let mut digest = t.digest(&s);
    for (what, c, want_rc, want) in cases {
        assert_eq!(rc(&t.run(&c)), want_rc, "{what}");
        let now = t.digest(&s);
        match want {
            Some(f) => assert_eq!(now, f(&digest), "{what}: digest"),
            None => assert_eq!(now, digest, "{what}: digest unchanged"),
        }
        digest = now;
    }
}

#[test]
fn conditions_hold_when_the_session_authorises() {
    let mut t = T::new();
    // PolicyPhysicalPresence: never satisfied here (no physical-presence input).
    let pp = ext(&[0; 32], &[&PHYSICAL_PRESENCE.to_be_bytes()]);
    let obj = t.sealed(&pp);
    let s = t.start(1);
    t.ok(&plain(PHYSICAL_PRESENCE, &[s.handle], &[]));
    let r = t.run(&with_policy(
        0x15E,
        &[obj.0],
        std::slice::from_ref(&obj.1),
        &s,
        &[],
    ));
    assert_eq!(rc(&r), PP_S1, "Unseal needs physical presence");
    t.ok(&plain(0x165, &[], &obj.0.to_be_bytes()));

    // PolicyNvWritten(YES) on an object: only NV indices qualify.
    let yes = ext(&[0; 32], &[&NV_WRITTEN.to_be_bytes(), &[1]]);
    let obj = t.sealed(&yes);
    t.ok(&plain(NV_WRITTEN, &[s.handle], &[1]));
    let r = t.run(&with_policy(
        0x15E,
        &[obj.0],
        std::slice::from_ref(&obj.1),
        &s,
        &[],
    ));
    assert_eq!(rc(&r), POLICY_FAIL_S1, "PolicyNvWritten on an object");
    t.ok(&plain(0x165, &[], &obj.0.to_be_bytes()));

    // A write-once index: policyWrite with PolicyNvWritten(NO).
    let no = ext(&[0; 32], &[&NV_WRITTEN.to_be_bytes(), &[0]]);
    let nv = 0x0150_0030u32;
    let attrs: u32 = (1 << 3) | (1 << 17) | (1 << 18);
    let public = nv_public(nv, attrs, &no, 8);
    t.ok(&pw(
        0x12A,
        &[RH_OWNER],
        1,
        &[&b2(&[])[..], &b2(&public)].concat(),
    ));
    let nv_name = |t: &mut T| {
        let r = t.ok(&plain(0x169, &[nv], &[]));
        let n = usize::from(u16::from_be_bytes([r[10], r[11]]));
        r[14 + n..].to_vec()
    };
    let write = [&b2(&[7; 8])[..], &[0, 0]].concat();
    for (round, want) in [(1, 0), (2, POLICY_FAIL_S1)] {
        let s = t.start(1);
        t.ok(&plain(NV_WRITTEN, &[s.handle], &[0]));
        let n = nv_name(&mut t);
        let r = t.run(&with_policy(0x137, &[nv, nv], &[n.clone(), n], &s, &write));
        assert_eq!(rc(&r), want, "NV_Write round {round}");
        t.ok(&plain(0x165, &[], &s.handle.to_be_bytes()));
    }

    // PolicyTemplate: Create under a parent whose policy names one template.
    let child = [
        &[0, 0x08, 0, 0x0B][..],
        &((1u32 << 1) | (1 << 4) | (1 << 6)).to_be_bytes(),
        &b2(&[]),
        &[0, 0x10],
        &b2(&[]),
    ]
    .concat();
    let parent_policy = ext(&[0; 32], &[&TEMPLATE.to_be_bytes(), &sha256(&[&child])]);
    let parent_tpl = [
        &[0, 0x23, 0, 0x0B][..],
        &((1u32 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 17)).to_be_bytes(),
        &b2(&parent_policy),
        &[0, 0x06, 0, 0x80, 0, 0x43],
        &[0, 0x10, 0, 0x03, 0, 0x10],
        &b2(&[]),
        &b2(&[]),
    ]
    .concat();
    let parent = t.primary(&parent_tpl, &[]);
    let other_child = [&child[..child.len() - 2], &b2(b"x")].concat();
    for (what, tpl, want) in [
        ("the template the policy names", &child, 0),
        ("another template", &other_child, POLICY_FAIL_S1),
    ] {
        let s = t.start(1);
        t.ok(&plain(TEMPLATE, &[s.handle], &b2(&sha256(&[&child]))));
        let p = [
            &b2(&[&b2(&[])[..], &b2(b"data")].concat())[..],
            &b2(tpl),
            &[0, 0, 0, 0, 0, 0],
        ]
        .concat();
        let r = t.run(&with_policy(
            0x153,
            &[parent.0],
            std::slice::from_ref(&parent.1),
            &s,
            &p,
        ));
        assert_eq!(rc(&r), want, "Create with {what}");
        t.ok(&plain(0x165, &[], &s.handle.to_be_bytes()));
    }

    // PolicyCounterTimer against TPMS_TIME_INFO: resetCount sits at offset 16.
    let clock = t.ok(&plain(0x181, &[], &[]));
    let reset_count = clock[26..30].to_vec();
    let s = t.start(1);
    let timer = |operand: &[u8], offset: u16, op: u16| {
        plain(
            COUNTER_TIMER,
            &[s.handle],
            &[&b2(operand)[..], &offset.to_be_bytes(), &op.to_be_bytes()].concat(),
        )
    };
    let cases: [(&str, Vec<u8>, u32); 4] = [
        ("resetCount equal", timer(&reset_count, 16, 0x0000), 0),
        (
            "resetCount not equal: TPM_RC_POLICY",
            timer(&reset_count, 16, 0x0001),
            0x126,
        ),
        (
            "past the end: TPM_RC_RANGE",
            timer(&[0; 4], 24, 0x0000),
            0x08D,
        ),
        (
            "offset beyond: TPM_RC_VALUE, parameter 2",
            timer(&[], 26, 0x0000),
            0x2C4,
        ),
    ];
    for (what, c, want) in cases {
        assert_eq!(rc(&t.run(&c)), want, "{what}");
    }
}
