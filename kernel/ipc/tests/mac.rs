//! The decision point on the real engine, with policies compiled by the real compiler: the
//! scenario policies pass every check (neverallow, `assert noflow`, lints, expectations), a
//! planted flow is caught, decisions and audit records come out as the rules say, malformed
//! policies are refused, and the Chinese Wall admits and refuses domains by name.

mod common;

use common::{compile, policy_source, scenario_blob};
use warden_ipc::audit::{HYPERVISOR_OBJECT, RESOURCE_OBJECT, Verdict};
use warden_ipc::mac::{LabelError, MacError};
use warden_ipc::{Check, DomId, Mac, Object, Subject};
use warden_policy::{Class, Kind, LoadError, PermSet, perms};
use warden_policy_compiler::Code;

type TestMac = Mac<'static, 64, 16>;

const SCENARIO_POLICIES: &[&str] =
    &["ipc.wpol", "chinese-wall.wpol", "domains.wpol", "mgmt.wpol", "categories.wpol", "demo.wpol"];

#[test]
fn scenario_policies_pass_every_compiler_check_and_expectation() {
    for name in SCENARIO_POLICIES {
        let src = policy_source(name);
        let c = warden_policy_compiler::compile(&src)
            .unwrap_or_else(|d| panic!("{name}:\n{}", warden_policy_compiler::diag::render(name, &src, &d)));
        assert!(
            c.warnings.is_empty(),
            "{name} has lint warnings:\n{}",
            warden_policy_compiler::diag::render(name, &src, &c.warnings)
        );
        let results = warden_policy_compiler::check::expectations(&c.model);
        assert!(!results.is_empty(), "{name} states no expectations");
        for r in &results {
            assert!(r.ok, "{name}: expectation failed: {}", r.text);
        }
        // The binary the rig boots is what the engine loads.
        warden_policy::Policy::load(&c.to_binary()).unwrap();
    }
}

#[test]
fn the_ipc_policy_asserts_that_the_hostile_domain_never_reaches_the_peers() {
    let src = policy_source("ipc.wpol");
    assert!(
        src.contains("assert noflow hostile_t -> peers;"),
        "the assertion is part of the policy"
    );
    // Plant an indirect path: hostile_t writes the console (hv_t), ping_t reads the audit ring
    // (hv_t). No rule names hostile_t and ping_t together, so only the flow analysis sees it.
    let planted = format!("{src}\nallow ping_t hv_t: hypervisor audit_read;\n");
    let errs = warden_policy_compiler::compile(&planted)
        .expect_err("the planted flow must fail the build");
    let flow = errs
        .iter()
        .find(|d| d.code == Code::E0021)
        .expect("an E0021 noflow diagnostic");
    assert!(flow.message.contains("hostile_t"), "{}", flow.message);
    // A direct rule is stopped earlier, by the neverallow.
    let direct = format!("{src}\nallow hostile_t ping_t: evtchn bind;\n");
    let errs =
        warden_policy_compiler::compile(&direct).expect_err("a direct rule must fail the build");
    assert!(errs.iter().any(|d| d.code == Code::E0020), "{errs:?}");
}

fn mac() -> (TestMac, Labels) {
    let mac = TestMac::new(scenario_blob("ipc.wpol"), common::ring()).unwrap();
    let l = |n| mac.domain_label(n).unwrap();
    let labels = Labels {
        ping: l("ping_t"),
        pong: l("pong_t"),
        hostile: l("hostile_t"),
        auditor: l("auditor_t"),
    };
    (mac, labels)
}

#[derive(Clone, Copy)]
struct Labels {
    ping: warden_policy::TypeId,
    pong: warden_policy::TypeId,
    hostile: warden_policy::TypeId,
    auditor: warden_policy::TypeId,
}

#[test]
fn decisions_and_audit_records_follow_the_rules() {
    let (mut mac, l) = mac();
    let (ping, pong, hostile, auditor) = (
        Subject {
            dom: DomId(0),
            label: l.ping,
        },
        Subject {
            dom: DomId(1),
            label: l.pong,
        },
        Subject {
            dom: DomId(2),
            label: l.hostile,
        },
        Subject {
            dom: DomId(3),
            label: l.auditor,
        },
    );
    let dom = |s: Subject| Object::Domain {
        dom: s.dom,
        label: s.label,
    };
    // (subject, object, class, perms, granted, audited)
    let cases: &[(Subject, Object, Class, PermSet, bool, bool)] = &[
        (
            ping,
            dom(pong),
            Class::Evtchn,
            perms::evtchn::ALLOC,
            true,
            false,
        ),
        (
            pong,
            dom(ping),
            Class::Evtchn,
            perms::evtchn::BIND,
            true,
            false,
        ),
        (
            pong,
            dom(ping),
            Class::Grant,
            perms::grant::MAP_RW,
            true,
            true,
        ), // auditallow
        (
            pong,
            dom(ping),
            Class::Grant,
            perms::grant::MAP_RO,
            false,
            true,
        ),
        (
            ping,
            dom(pong),
            Class::Grant,
            perms::grant::MAP_RW,
            false,
            true,
        ),
        (
            hostile,
            dom(ping),
            Class::Evtchn,
            perms::evtchn::BIND,
            false,
            true,
        ),
        (
            hostile,
            dom(pong),
            Class::Evtchn,
            perms::evtchn::SEND,
            false,
            true,
        ),
        (
            hostile,
            dom(ping),
            Class::Grant,
            perms::grant::MAP_RW,
            false,
            true,
        ),
        (
            hostile,
            Object::Hypervisor,
            Class::Hypervisor,
            perms::hypervisor::AUDIT_READ,
            false,
            true,
        ),
        (
            hostile,
            Object::Hypervisor,
            Class::Hypervisor,
            perms::hypervisor::CONSOLE,
            true,
            false,
        ),
        (
            hostile,
            dom(hostile),
            Class::Domain,
            perms::domain::YIELD,
            true,
            false,
        ),
        (
            auditor,
            Object::Hypervisor,
            Class::Hypervisor,
            perms::hypervisor::AUDIT_READ,
            true,
            false,
        ),
        // Several permissions at once: all must be allowed.
        (
            ping,
            dom(pong),
            Class::Evtchn,
            perms::evtchn::ALLOC | perms::evtchn::BIND,
            false,
            true,
        ),
        // An empty request is never a grant.
        (ping, dom(pong), Class::Evtchn, PermSet::EMPTY, false, false),
    ];
    for (i, &(s, o, class, p, granted, audited)) in cases.iter().enumerate() {
        let before = mac.ring().next_seq();
        let c = Check {
            hypercall: 17,
            subject: s,
            object: o,
            class,
            perms: p,
            time: i as u64,
        };
        let r = mac.check(&c);
        assert_eq!(r.is_ok(), granted, "case {i}: {class:?} {p:?}");
        let rec = match r {
            Ok(rec) => rec,
            Err(d) => d.record,
        };
        assert_eq!(rec.is_some(), audited, "case {i}: audit");
        assert_eq!(
            mac.ring().next_seq(),
            before + u64::from(audited),
            "case {i}: ring"
        );
        if let Some(rec) = rec {
            assert_eq!(rec.seq, before);
            assert_eq!(
                rec.verdict,
                if granted {
                    Verdict::Granted
                } else {
                    Verdict::Denied
                }
            );
            assert_eq!(
                (rec.source_dom, rec.source, rec.class, rec.time),
                (s.dom, s.label, class, i as u64)
            );
            assert_eq!(rec.policy_hash, mac.hash());
            match o {
                Object::Hypervisor => {
                    assert_eq!(
                        (rec.target_dom, rec.target),
                        (DomId(HYPERVISOR_OBJECT), mac.hypervisor_label())
                    )
                }
                Object::Domain { dom, label } => {
                    assert_eq!((rec.target_dom, rec.target), (dom, label))
                }
                Object::Resource { label } => assert_eq!(
                    (rec.target_dom, rec.target),
                    (DomId(RESOURCE_OBJECT), label)
                ),
            }
            assert!(p.contains(rec.perms) && !rec.perms.is_empty());
            assert_eq!(mac.ring().get(rec.seq), Some(&rec));
        }
    }
    let (checks, denials) = mac.counters();
    assert_eq!(checks, cases.len() as u64);
    assert_eq!(denials, cases.iter().filter(|c| !c.4).count() as u64);
}

#[test]
fn device_and_mmio_grants_are_decided_on_the_resource_label() {
    // Device assignment's check sites: `device { assign }` and `mmio { map }` on the labels
    // the manifest gives the function; every decision on a resource is audited against it.
    let src = "type hv_t: hypervisor; type mgmt_t: domain; type guest_t: domain;\n\
               type nic_t: device; type nic_mmio_t: mmio;\n\
               allow mgmt_t nic_t: device assign; allow mgmt_t nic_mmio_t: mmio map;\n\
               auditallow mgmt_t nic_t: device assign;\n";
    let blob: &'static [u8] = Box::leak(compile("inline", src).into_boxed_slice());
    let mut mac = TestMac::new(blob, common::ring()).unwrap();
    let (mgmt, guest) = (
        mac.domain_label("mgmt_t").unwrap(),
        mac.domain_label("guest_t").unwrap(),
    );
    let nic = mac.resource_label("nic_t", Kind::Device).unwrap();
    let mmio = mac.resource_label("nic_mmio_t", Kind::Mmio).unwrap();
    assert_eq!(
        mac.resource_label("nic_t", Kind::Mmio),
        Err(LabelError::WrongKind {
            is: Kind::Device,
            want: Kind::Mmio
        })
    );
    assert_eq!(
        mac.resource_label("mgmt_t", Kind::Device),
        Err(LabelError::WrongKind {
            is: Kind::Domain,
            want: Kind::Device
        })
    );
    assert_eq!(
        mac.resource_label("nope_t", Kind::Device),
        Err(LabelError::Unknown)
    );
    let check = |dom: u32, label, target, class, perms| Check {
        hypercall: 48,
        subject: Subject {
            dom: DomId(dom),
            label,
        },
        object: Object::Resource { label: target },
        class,
        perms,
        time: 0,
    };
    let rec = mac
        .check(&check(0, mgmt, nic, Class::Device, perms::device::ASSIGN))
        .unwrap()
        .expect("auditallow");
    assert_eq!(
        (rec.target_dom, rec.target, rec.verdict),
        (DomId(RESOURCE_OBJECT), nic, Verdict::Granted)
    );
    assert!(
        mac.check(&check(0, mgmt, mmio, Class::Mmio, perms::mmio::MAP))
            .is_ok()
    );
    let denied = mac
        .check(&check(1, guest, nic, Class::Device, perms::device::ASSIGN))
        .unwrap_err();
    let rec = denied.record.expect("denials are audited");
    assert_eq!(
        (rec.source_dom, rec.target_dom, rec.verdict),
        (DomId(1), DomId(RESOURCE_OBJECT), Verdict::Denied)
    );
    assert!(
        mac.check(&check(1, guest, mmio, Class::Mmio, perms::mmio::MAP))
            .is_err()
    );
    assert!(
        mac.check(&check(0, mgmt, nic, Class::Mmio, perms::mmio::MAP))
            .is_err(),
        "no grant on the device label"
    );
}

#[test]
fn dontaudit_silences_a_denial_without_granting_it() {
    let src = "type hv_t: hypervisor; type a_t: domain; type b_t: domain;\n\
               allow a_t hv_t: hypervisor console; allow b_t hv_t: hypervisor console;\n\
               dontaudit a_t b_t: evtchn send;\n";
    let blob: &'static [u8] = Box::leak(compile("inline", src).into_boxed_slice());
    let mut mac = TestMac::new(blob, common::ring()).unwrap();
    let (a, b) = (
        mac.domain_label("a_t").unwrap(),
        mac.domain_label("b_t").unwrap(),
    );
    let c = Check {
        hypercall: 18,
        subject: Subject {
            dom: DomId(0),
            label: a,
        },
        object: Object::Domain {
            dom: DomId(1),
            label: b,
        },
        class: Class::Evtchn,
        perms: perms::evtchn::SEND,
        time: 0,
    };
    assert_eq!(mac.check(&c).unwrap_err().record, None);
    assert_eq!(mac.ring().next_seq(), 0);
    let bind = Check {
        perms: perms::evtchn::BIND,
        ..c
    };
    assert!(
        mac.check(&bind).unwrap_err().record.is_some(),
        "other denials are still audited"
    );
}

#[test]
fn malformed_or_unusable_policies_are_refused_with_a_reason() {
    let good = compile("ipc.wpol", &policy_source("ipc.wpol"));
    let leak = |v: Vec<u8>| -> &'static [u8] { Box::leak(v.into_boxed_slice()) };
    let err = |b: &'static [u8]| TestMac::new(b, common::ring()).err();
    assert_eq!(
        err(leak(Vec::new())),
        Some(MacError::Load(LoadError::Truncated))
    );
    assert_eq!(
        err(leak(good[..good.len() / 2].to_vec())),
        Some(MacError::Load(LoadError::LengthMismatch))
    );
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 0xff;
    assert_eq!(
        err(leak(bad_magic)),
        Some(MacError::Load(LoadError::BadMagic))
    );
    let mut bad_schema = good.clone();
    bad_schema[20] ^= 1;
    assert_eq!(
        err(leak(bad_schema)),
        Some(MacError::Load(LoadError::SchemaMismatch))
    );
    // Flipping any single byte past the hashes must give an error or a policy, never a panic.
    for i in 80..good.len() {
        let mut b = good.clone();
        b[i] ^= 0x5a;
        let _ = TestMac::new(leak(b), common::ring());
    }
    // None or two hypervisor types: the compiler refuses (E0024) and so does the loader, for
    // blobs not made by the compiler.
    for (src, n) in [
        ("type a_t: domain; allow a_t self: domain yield;\n", 0),
        (
            "type h1_t: hypervisor; type h2_t: hypervisor; type a_t: domain;\nallow a_t { h1_t h2_t }: hypervisor console;\n",
            2,
        ),
    ] {
        let e = warden_policy_compiler::compile(src).expect_err("hypervisor count");
        assert!(e.iter().any(|d| d.code == warden_policy_compiler::Code::E0024), "{e:?}");
        let kinds = [warden_policy::Kind::Domain, warden_policy::Kind::Hypervisor, warden_policy::Kind::Hypervisor];
        let img = warden_policy::encode::Image {
            types: ["a_t", "h1_t", "h2_t"][..n + 1].iter().zip(kinds).map(|(t, k)| (t.to_string(), k)).collect(),
            ..Default::default()
        };
        let blob = warden_policy::encode::encode(&img);
        assert_eq!(err(leak(blob)), Some(MacError::Load(LoadError::HypervisorCount(n as u32))));
    }
    let small: Result<Mac<'static, 8, 1>, _> = Mac::new(scenario_blob("chinese-wall.wpol"), common::ring());
    assert_eq!(small.err(), Some(MacError::TooManyConflictMembers { needed: 2, capacity: 1 }));
}

#[test]
fn manifest_labels_must_name_domain_types() {
    let (mac, _) = mac();
    assert!(mac.domain_label("ping_t").is_ok());
    assert_eq!(mac.domain_label("nope_t"), Err(LabelError::Unknown));
    assert_eq!(
        mac.domain_label("hv_t"),
        Err(LabelError::NotADomain(Kind::Hypervisor))
    );
    assert_eq!(mac.type_name(mac.hypervisor_label()), "hv_t");
}

#[test]
fn the_chinese_wall_refuses_a_conflicting_domain_by_name_until_the_first_ends() {
    let mut mac: Mac<'static, 8, 16> = Mac::new(scenario_blob("chinese-wall.wpol"), common::ring()).unwrap();
    let (a, b, shop) = (
        mac.domain_label("bank_a_t").unwrap(),
        mac.domain_label("bank_b_t").unwrap(),
        mac.domain_label("shop_t").unwrap(),
    );
    mac.domain_starting(a).unwrap();
    mac.domain_starting(shop).unwrap();
    mac.domain_starting(a)
        .expect("two domains of one type may run together");
    let refused = mac.domain_starting(b).unwrap_err();
    assert_eq!(
        (refused.label, refused.running, refused.set),
        ("bank_b_t", "bank_a_t", "banks")
    );
    assert_eq!(
        refused.to_string(),
        "Chinese Wall: bank_b_t conflicts with running bank_a_t (conflict set banks)"
    );
    mac.domain_stopped(a);
    assert!(mac.may_start(b).is_err(), "one bank_a_t still runs");
    mac.domain_stopped(a);
    mac.domain_starting(b)
        .expect("after the last bank_a_t ended, bank_b_t may start");
    assert!(
        mac.domain_starting(a).is_err(),
        "and now the wall stands the other way"
    );
    // Stopping what never started does not loosen the wall.
    mac.domain_stopped(shop);
    mac.domain_stopped(shop);
    assert!(mac.may_start(a).is_err());
}

#[test]
fn domains_of_one_type_are_separate_principals_by_category() {
    // `separate tenant_t;`: tenant_t's rules among tenants hold within one category only.
    let mut mac = TestMac::new(scenario_blob("categories.wpol"), common::ring()).unwrap();
    let t = mac.domain_label("tenant_t").unwrap();
    // a and b share category 1, c has category 2, d was given none (a category of its own).
    let cats = [Some(1), Some(1), Some(2), None];
    for (i, &c) in cats.iter().enumerate() {
        mac.set_category(DomId(i as u32), c).unwrap();
    }
    let alloc = |from: u32, to: u32| Check {
        hypercall: 16,
        subject: Subject { dom: DomId(from), label: t },
        object: Object::Domain { dom: DomId(to), label: t },
        class: Class::Evtchn,
        perms: perms::evtchn::ALLOC,
        time: 0,
    };
    // (from, to, granted): one type throughout; only the categories differ.
    let cases = [(0, 1, true), (1, 0, true), (0, 2, false), (2, 0, false), (1, 2, false), (3, 0, false), (0, 3, false)];
    for (from, to, granted) in cases {
        let seq = mac.ring().next_seq();
        match mac.check(&alloc(from, to)) {
            Ok(record) => {
                assert!(granted, "{from} -> {to} must be denied");
                assert_eq!(record, None, "an ordinary grant is not audited");
            }
            Err(d) => {
                assert!(!granted, "{from} -> {to} must be granted");
                let r = d.record.expect("the denial is audited");
                assert_eq!((r.source_dom, r.target_dom, r.verdict), (DomId(from), DomId(to), Verdict::Denied));
                assert_eq!(r.seq, seq);
            }
        }
    }
    // A domain acts on itself in its own category, given or not.
    for d in [0, 2, 3] {
        let own = Check { class: Class::Domain, perms: perms::domain::YIELD, ..alloc(d, d) };
        assert!(mac.check(&own).is_ok(), "domain {d} on itself");
    }
    assert_ne!(mac.category_of(DomId(3)), mac.category_of(DomId(4)), "domains without a category share none");
    // The manifest's numbers stop below the hypervisor's own categories.
    assert_eq!(mac.set_category(DomId(0), Some(1 << 31)), Err(warden_ipc::CategoryError::Reserved));
    assert_eq!(mac.set_category(DomId(99), Some(1)), Err(warden_ipc::CategoryError::BadDomain));
    // Moving b into category 2 flips both answers.
    mac.set_category(DomId(1), Some(2)).unwrap();
    assert!(mac.check(&alloc(0, 1)).is_err());
    assert!(mac.check(&alloc(2, 1)).is_ok());
}

/// A refusal made by a structural rule after the permission check (a transition the policy's
/// rule does not lead to) is audited as a denial, with its permissions, target and the policy's
/// hash, and counted; it grants nothing.
#[test]
fn a_structural_refusal_is_audited_as_a_denial() {
    let mut mac = TestMac::new(scenario_blob("mgmt.wpol"), common::ring()).unwrap();
    let (mgmt, secret) = (mac.domain_label("mgmt_t").unwrap(), mac.domain_label("secret_t").unwrap());
    let c = Check {
        hypercall: 36,
        subject: Subject { dom: DomId(0), label: mgmt },
        object: Object::Domain { dom: DomId(3), label: secret },
        class: Class::Domain,
        perms: perms::domain::TRANSITION,
        time: 7,
    };
    let (_, denials) = mac.counters();
    let rec = mac.refuse(&c).record.expect("audited");
    assert_eq!(
        (rec.verdict, rec.source, rec.target, rec.target_dom, rec.perms, rec.hypercall, rec.policy_hash),
        (Verdict::Denied, mgmt, secret, DomId(3), perms::domain::TRANSITION, 36, mac.hash())
    );
    assert_eq!(mac.ring().get(rec.seq), Some(&rec));
    assert_eq!(mac.counters().1, denials + 1);
}
