//! The IPC hypercalls end to end on the real policy engine, driven through [`Ipc`] as the
//! hypervisor drives it, with a fake platform: ping and pong exchange 10,000 messages through a
//! granted ring page and an event channel while a hostile domain tries every forbidden
//! operation and then 100,000 random calls; an auditor reads the denials back.

mod common;

use common::{FakePlatform, PAGE, Rng, scenario_blob};
use warden_abi::ipc::{GRANT_READ_ONLY, GRANT_READ_WRITE, IpcCall};
use warden_abi::{Call, Status};
use warden_ipc::audit::{HEADER_LEN, RECORD_LEN, Verdict, decode_dump};
use warden_ipc::grant::MAP_WINDOW;
use warden_ipc::{DomId, Failure, Ipc, IpcError, Mac, Outcome, Subject};
use warden_policy::Class;

type TestIpc = Ipc<'static, 256, 16>;

const PING: DomId = DomId(0);
const PONG: DomId = DomId(1);
const HOSTILE: DomId = DomId(2);
const AUDITOR: DomId = DomId(3);
/// ping's ring page (guest frame) and where pong maps it.
const RING_GFN: u64 = 5;
const RING_GPA: u64 = MAP_WINDOW + 3 * PAGE;

fn setup() -> (TestIpc, FakePlatform) {
    let mac = Mac::new(scenario_blob("ipc.wpol"), common::ring()).unwrap();
    let l = |n| mac.domain_label(n).unwrap();
    let p = FakePlatform::new(&[l("ping_t"), l("pong_t"), l("hostile_t"), l("auditor_t")], 16);
    let (e, g) = common::tables();
    (Ipc::new(mac, e, g), p)
}

fn call(ipc: &mut TestIpc, p: &mut FakePlatform, d: DomId, c: IpcCall, a: [u64; 5]) -> Result<Outcome, Failure> {
    p.time += 1;
    ipc.handle(p, d, c, a)
}

fn ok(r: Result<Outcome, Failure>) -> u64 {
    match r {
        Ok(Outcome::Done(v)) => v,
        other => panic!("expected success, got {other:?}"),
    }
}

/// ping allocates a channel for pong and offers its ring page; pong binds and maps it.
/// Returns (ping's port, pong's port, the grant reference).
fn connect(ipc: &mut TestIpc, p: &mut FakePlatform) -> (u64, u64, u64) {
    let port_a = ok(call(ipc, p, PING, IpcCall::EvtchnAlloc, [PONG.0.into(), 0, 0, 0, 0]));
    let gref = ok(call(ipc, p, PING, IpcCall::GrantOffer, [PONG.0.into(), RING_GFN, GRANT_READ_WRITE, 0, 0]));
    let port_b = ok(call(ipc, p, PONG, IpcCall::EvtchnBind, [PING.0.into(), port_a, 0, 0, 0]));
    ok(call(ipc, p, PONG, IpcCall::GrantMap, [PING.0.into(), gref, RING_GPA, GRANT_READ_WRITE, 0]));
    (port_a, port_b, gref)
}

fn denied(r: Result<Outcome, Failure>) -> bool {
    matches!(r, Err(Failure::Denied(_)))
}

#[test]
fn ten_thousand_messages_cross_the_ring_each_checked_on_arrival() {
    let (mut ipc, mut p) = setup();
    let (port_a, port_b, gref) = connect(&mut ipc, &mut p);
    // The ring: slot 0 of the page is the message, written by ping, read by pong through its
    // mapping; pong acknowledges through the channel. One message in flight at a time.
    let ring = RING_GFN * PAGE;
    for i in 0..10_000u64 {
        let msg = (i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xabcd);
        p.write(PING, ring, &msg.0.to_le_bytes());
        p.write(PING, ring + 8, &msg.1.to_le_bytes());
        ok(call(&mut ipc, &mut p, PING, IpcCall::EvtchnSend, [port_a, 0, 0, 0, 0]));
        let got = ok(call(&mut ipc, &mut p, PONG, IpcCall::EvtchnWait, [1 << port_b, u64::MAX, 0, 0, 0]));
        assert_eq!(got, 1 << port_b, "message {i}: pong's port pending");
        let mut b = [0u8; 16];
        p.read(PONG, RING_GPA, &mut b);
        let seq = u64::from_le_bytes(b[..8].try_into().unwrap());
        let sum = u64::from_le_bytes(b[8..].try_into().unwrap());
        assert_eq!((seq, sum), msg, "message {i} arrived intact");
        ok(call(&mut ipc, &mut p, PONG, IpcCall::EvtchnSend, [port_b, 0, 0, 0, 0]));
        assert_eq!(ok(call(&mut ipc, &mut p, PING, IpcCall::EvtchnWait, [1 << port_a, 0, 0, 0, 0])), 1 << port_a);
    }
    assert!(p.doms[PONG.0 as usize].woken >= 10_000);
    // Nothing pending: a wait blocks (the hypervisor parks the caller), a zero timeout polls.
    assert_eq!(
        call(&mut ipc, &mut p, PONG, IpcCall::EvtchnWait, [1 << port_b, 500, 0, 0, 0]),
        Ok(Outcome::Wait { mask: 1 << port_b, timeout_us: Some(500) })
    );
    assert_eq!(ipc.finish_wait(PONG, 1 << port_b), 0, "woken by the timeout: nothing pending");
    // Teardown: revoke is refused while mapped, works after unmap; the old reference is stale.
    let revoke = call(&mut ipc, &mut p, PING, IpcCall::GrantRevoke, [gref, 0, 0, 0, 0]);
    assert_eq!(revoke, Err(Failure::Invalid(IpcError::StillMapped)));
    ok(call(&mut ipc, &mut p, PONG, IpcCall::GrantUnmap, [PING.0.into(), gref, 0, 0, 0]));
    assert!(p.doms[PONG.0 as usize].maps.is_empty());
    ok(call(&mut ipc, &mut p, PING, IpcCall::GrantRevoke, [gref, 0, 0, 0, 0]));
    let remap = call(&mut ipc, &mut p, PONG, IpcCall::GrantMap, [PING.0.into(), gref, RING_GPA, GRANT_READ_WRITE, 0]);
    assert_eq!(remap, Err(Failure::Invalid(IpcError::StaleRef)));
    ok(call(&mut ipc, &mut p, PING, IpcCall::EvtchnClose, [port_a, 0, 0, 0, 0]));
    assert_eq!(
        call(&mut ipc, &mut p, PONG, IpcCall::EvtchnSend, [port_b, 0, 0, 0, 0]),
        Err(Failure::Invalid(IpcError::PeerClosed))
    );
    // Read-write mappings are `auditallow`ed: both the real one and the refused remap were
    // granted by the policy (the table refused the stale reference afterwards), both on record.
    let rw = ipc.mac.ring().iter_from(0).filter(|r| r.verdict == Verdict::Granted && r.class == Class::Grant).count();
    assert_eq!(rw, 2);
}

#[test]
fn the_hostile_domain_is_refused_everything_and_the_peers_are_untouched() {
    let (mut ipc, mut p) = setup();
    let (port_a, port_b, gref) = connect(&mut ipc, &mut p);
    let (h, a) = (HOSTILE, |d: DomId| u64::from(d.0));
    // Every named attack, and how it must fail.
    type Expect = fn(&Result<Outcome, Failure>) -> bool;
    let is_denied: Expect = |r| matches!(r, Err(Failure::Denied(_)));
    let attacks: &[(&str, IpcCall, [u64; 5], Expect)] = &[
        ("alloc a port for ping", IpcCall::EvtchnAlloc, [a(PING), 0, 0, 0, 0], is_denied),
        ("bind ping's bound port", IpcCall::EvtchnBind, [a(PING), port_a, 0, 0, 0], is_denied),
        ("bind pong's port", IpcCall::EvtchnBind, [a(PONG), port_b, 0, 0, 0], is_denied),
        ("send on ping's port number", IpcCall::EvtchnSend, [port_a, 0, 0, 0, 0], |r| {
            *r == Err(Failure::Invalid(IpcError::PortNotInUse))
        }),
        ("close pong's port number", IpcCall::EvtchnClose, [port_b, 0, 0, 0, 0], |r| {
            *r == Err(Failure::Invalid(IpcError::PortNotInUse))
        }),
        ("send on port 0", IpcCall::EvtchnSend, [0, 0, 0, 0, 0], |r| *r == Err(Failure::Invalid(IpcError::BadPort))),
        ("send on port 64", IpcCall::EvtchnSend, [64, 0, 0, 0, 0], |r| *r == Err(Failure::Invalid(IpcError::BadPort))),
        ("send on port 2^40", IpcCall::EvtchnSend, [1 << 40, 0, 0, 0, 0], |r| {
            *r == Err(Failure::Invalid(IpcError::BadPort))
        }),
        ("map ping's grant read-write", IpcCall::GrantMap, [a(PING), gref, MAP_WINDOW, GRANT_READ_WRITE, 0], is_denied),
        ("map ping's grant read-only", IpcCall::GrantMap, [a(PING), gref, MAP_WINDOW, GRANT_READ_ONLY, 0], is_denied),
        ("map a forged reference", IpcCall::GrantMap, [a(PING), 0x0005_0007, MAP_WINDOW, 0, 0], is_denied),
        ("unmap pong's mapping", IpcCall::GrantUnmap, [a(PING), gref, 0, 0, 0], is_denied),
        ("revoke ping's grant", IpcCall::GrantRevoke, [gref, 0, 0, 0, 0], |r| {
            *r == Err(Failure::Invalid(IpcError::BadRef))
        }),
        ("offer ping a page", IpcCall::GrantOffer, [a(PING), 3, GRANT_READ_WRITE, 0, 0], is_denied),
        ("read the audit ring", IpcCall::AuditRead, [0x2000, 4096, 0, 0, 0], is_denied),
        ("channel to itself", IpcCall::EvtchnAlloc, [a(h), 0, 0, 0, 0], |r| *r == Err(Failure::Invalid(IpcError::SelfPeer))),
        ("channel to nobody", IpcCall::EvtchnAlloc, [99, 0, 0, 0, 0], |r| *r == Err(Failure::Invalid(IpcError::BadDomain))),
        ("domain id 2^33", IpcCall::EvtchnBind, [1 << 33, 1, 0, 0, 0], |r| *r == Err(Failure::Invalid(IpcError::BadDomain))),
    ];
    for (what, c, args, expect) in attacks {
        let r = call(&mut ipc, &mut p, h, *c, *args);
        assert!(expect(&r), "{what}: got {r:?}");
    }
    // Revoked references: ping revokes a second grant; hostile tries the stale reference.
    let g2 = ok(call(&mut ipc, &mut p, PING, IpcCall::GrantOffer, [a(PONG), 6, GRANT_READ_WRITE, 0, 0]));
    ok(call(&mut ipc, &mut p, PING, IpcCall::GrantRevoke, [g2, 0, 0, 0, 0]));
    assert!(denied(call(&mut ipc, &mut p, h, IpcCall::GrantMap, [a(PING), g2, MAP_WINDOW, 0, 0])));
    assert_eq!(
        call(&mut ipc, &mut p, PONG, IpcCall::GrantMap, [a(PING), g2, MAP_WINDOW, GRANT_READ_WRITE, 0]),
        Err(Failure::Invalid(IpcError::StaleRef)),
        "even the rightful grantee cannot use a revoked reference"
    );

    // 100,000 random calls with random arguments over every call number around the IPC range.
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let before_denials = ipc.mac.counters().1;
    let mut outcomes = [0u64; 3];
    for _ in 0..100_000 {
        let nr = 16 + rng.next() % 10;
        let c = IpcCall::from_raw(nr).unwrap();
        let args = [rng.arg(), rng.arg(), rng.arg(), rng.arg(), rng.arg()];
        match call(&mut ipc, &mut p, h, c, args) {
            Err(Failure::Denied(_)) => outcomes[0] += 1,
            Err(Failure::Invalid(_)) => outcomes[1] += 1,
            // Only calls on itself may succeed: waiting, or channels/grants it cannot use
            // with anyone (the policy grants it nothing towards another domain).
            Ok(_) => {
                assert!(matches!(c, IpcCall::EvtchnWait), "{c:?} {args:x?} succeeded for the hostile domain");
                outcomes[2] += 1;
            }
        }
    }
    assert!(outcomes[0] > 10_000 && outcomes[1] > 10_000, "the random calls exercise both paths: {outcomes:?}");
    assert_eq!(ipc.mac.counters().1 - before_denials, outcomes[0]);
    // Base calls on itself and the console stay allowed: the hostile domain can still run.
    assert!(ipc.check_base(Subject { dom: h, label: p.doms[2].label }, Call::ConsoleWrite, 0).is_ok());

    // The peers never noticed: their channel and mapping are intact and still work.
    assert_eq!(p.doms[PONG.0 as usize].maps.len(), 1);
    assert_eq!(p.doms[HOSTILE.0 as usize].maps.len(), 0, "the hostile domain maps nothing");
    ok(call(&mut ipc, &mut p, PING, IpcCall::EvtchnSend, [port_a, 0, 0, 0, 0]));
    assert_eq!(ok(call(&mut ipc, &mut p, PONG, IpcCall::EvtchnWait, [u64::MAX, 0, 0, 0, 0])), 1 << port_b);
    assert_eq!(ipc.evtchn.ports_in_use(HOSTILE), 0);
    assert_eq!(ipc.grants.offered(HOSTILE), 0);

    // The auditor reads the ring: the hostile domain's flood filled only its own partition (16
    // of 256 records: its newest denials), and the ring counted what it had to drop.
    let buf = 0x2000u64;
    let len = (HEADER_LEN + 200 * RECORD_LEN) as u64;
    let n = ok(call(&mut ipc, &mut p, AUDITOR, IpcCall::AuditRead, [buf, len, 0, 0, 0]));
    let mut bytes = vec![0u8; len as usize];
    p.read(AUDITOR, buf, &mut bytes);
    let (hdr, recs) = decode_dump(&bytes).unwrap();
    let recs: Vec<_> = recs.collect();
    assert_eq!(u64::from(hdr.count), n);
    assert!(hdr.dropped > 0 && hdr.next_seq == hdr.dropped + n, "{hdr:?}");
    assert!(recs.windows(2).all(|w| w[1].seq > w[0].seq), "in order, oldest first");
    assert!(recs.iter().filter(|r| r.source_dom == HOSTILE).all(|r| r.verdict == Verdict::Denied));
    assert_eq!(recs.iter().filter(|r| r.source_dom == HOSTILE).count(), 16);
    assert_eq!(recs.iter().rev().find(|r| r.source_dom == HOSTILE).map(|r| r.seq), Some(hdr.next_seq - 1));
    let policy = *ipc.mac.policy();
    let line = recs.iter().rev().find(|r| r.source_dom == HOSTILE).unwrap().avc(Some(&policy)).to_string();
    assert!(line.starts_with("avc: denied {") && line.contains("scontext=hostile_t"), "{line}");
}

#[test]
fn audit_read_validates_its_buffer_and_the_callers_right() {
    let (mut ipc, mut p) = setup();
    let _ = call(&mut ipc, &mut p, HOSTILE, IpcCall::EvtchnAlloc, [0, 0, 0, 0, 0]);
    let mem = 16 * PAGE;
    let cases: &[(u64, u64, IpcError)] = &[
        (0x2000, 8, IpcError::BadBuffer),
        (0, 4096, IpcError::BadBuffer),
        (mem - 16, 64, IpcError::BadBuffer),
        (u64::MAX - 8, 64, IpcError::BadBuffer),
        (0x2000, u64::MAX, IpcError::BadBuffer),
    ];
    for &(gpa, len, want) in cases {
        assert_eq!(call(&mut ipc, &mut p, AUDITOR, IpcCall::AuditRead, [gpa, len, 0, 0, 0]), Err(Failure::Invalid(want)));
    }
    // Header only: zero records, the counts still tell the reader what exists.
    assert_eq!(ok(call(&mut ipc, &mut p, AUDITOR, IpcCall::AuditRead, [0x2000, HEADER_LEN as u64, 0, 0, 0])), 0);
    // Reading from a sequence number past the end gives nothing, not an error.
    assert_eq!(ok(call(&mut ipc, &mut p, AUDITOR, IpcCall::AuditRead, [0x2000, 4096, 1000, 0, 0])), 0);
    assert_eq!(ok(call(&mut ipc, &mut p, AUDITOR, IpcCall::AuditRead, [0x2000, 4096, 0, 0, 0])), 1);
    assert_eq!(Failure::Invalid(IpcError::BadBuffer).abi(), (Status::InvalidArgument, IpcError::BadBuffer as u64));
}

/// Issue 16, finding 5: a target id that is not running is decided (denied and audited) like a
/// running domain the caller has no rights over, so a domain without rights cannot enumerate
/// running domains; only an id outside the domain table is a plain `BadDomain`.
#[test]
fn existence_is_not_revealed_before_the_decision() {
    let (mut ipc, mut p) = setup();
    let a = |d: u64| [d, 0, 0, 0, 0];
    let before = ipc.mac.ring().next_seq();
    for (what, target) in [("running auditor", AUDITOR.0.into()), ("absent id 9", 9u64), ("last id 15", 15)] {
        let r = call(&mut ipc, &mut p, HOSTILE, IpcCall::EvtchnAlloc, a(target));
        let Err(Failure::Denied(d)) = r else { panic!("{what}: {r:?}") };
        let rec = d.record.unwrap_or_else(|| panic!("{what}: not audited"));
        assert_eq!(u64::from(rec.target_dom.0), target, "{what}");
    }
    assert_eq!(ipc.mac.ring().next_seq(), before + 3, "three audit records");
    // ping may allocate channels for pong_t, but an absent id is no pong: denied too.
    assert!(denied(call(&mut ipc, &mut p, PING, IpcCall::EvtchnAlloc, a(9))));
    assert_eq!(call(&mut ipc, &mut p, HOSTILE, IpcCall::EvtchnAlloc, a(16)), Err(Failure::Invalid(IpcError::BadDomain)));
}

#[test]
fn a_dead_domain_releases_channels_grants_and_mappings() {
    let (mut ipc, mut p) = setup();
    let (_port_a, port_b, _gref) = connect(&mut ipc, &mut p);
    p.doms[PING.0 as usize].alive = false;
    let label = p.doms[PING.0 as usize].label;
    ipc.domain_dead(&mut p, PING, label);
    assert!(p.doms[PONG.0 as usize].maps.is_empty(), "pong's window into ping's memory is gone");
    assert_eq!(
        call(&mut ipc, &mut p, PONG, IpcCall::EvtchnSend, [port_b, 0, 0, 0, 0]),
        Err(Failure::Invalid(IpcError::PeerClosed))
    );
    assert!(
        denied(call(&mut ipc, &mut p, PONG, IpcCall::EvtchnAlloc, [u64::from(PING.0), 0, 0, 0, 0])),
        "a dead domain is no peer: decided (denied), not revealed"
    );
    assert_eq!(
        call(&mut ipc, &mut p, PING, IpcCall::EvtchnAlloc, [u64::from(PONG.0), 0, 0, 0, 0]),
        Err(Failure::Invalid(IpcError::BadDomain)),
        "and makes no calls"
    );
    // The other way round: the grantee ends while it maps the page; the granter may then
    // revoke (the target is the grantee's label as recorded at offer time).
    let (mut ipc, mut p) = setup();
    let (_, _, gref) = connect(&mut ipc, &mut p);
    p.doms[PONG.0 as usize].alive = false;
    let label = p.doms[PONG.0 as usize].label;
    ipc.domain_dead(&mut p, PONG, label);
    assert!(p.doms[PONG.0 as usize].maps.is_empty());
    ok(call(&mut ipc, &mut p, PING, IpcCall::GrantRevoke, [gref, 0, 0, 0, 0]));
}

#[test]
fn base_calls_are_checked_with_the_schemas_class_and_permission() {
    let (mut ipc, p) = setup();
    for c in Call::ALL {
        assert!(ipc.check_base(Subject { dom: PING, label: p.doms[0].label }, c, 0).is_ok(), "{c:?} is allowed to ping by ipc.wpol");
        assert!(
            ipc.check_base(Subject { dom: HOSTILE, label: p.doms[2].label }, c, 0).is_ok(),
            "{c:?}: the hostile domain may still run"
        );
    }
    let checks = ipc.mac.counters().0;
    assert_eq!(checks, 2 * Call::ALL.len() as u64, "each base call took exactly one decision");
    // Without its `domain` rules a domain cannot even yield: the check is real.
    let nobody = Subject { dom: DomId(5), label: warden_policy::TypeId(u32::MAX) };
    for c in Call::ALL {
        assert!(ipc.check_base(nobody, c, 0).is_err(), "{c:?} allowed to an unknown label");
    }
}
