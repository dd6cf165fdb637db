//! The audit ring and its wire format: drops counted when full, records round-trip, every
//! malformed byte is a typed error, and the `avc:` and JSON renderings.

mod common;

use warden_ipc::audit::{
    AuditRing, DecodeError, HEADER_LEN, HYPERVISOR_OBJECT, Header, RECORD_LEN, Record, Verdict, decode_dump, fuzz_decode,
};
use warden_ipc::DomId;
use warden_policy::{Class, Policy, TypeId, perms};

fn rec(i: u64) -> Record {
    Record {
        seq: 0,
        hypercall: 18,
        source_dom: DomId(2),
        target_dom: DomId(0),
        source: TypeId(1),
        target: TypeId(3),
        class: Class::Evtchn,
        verdict: Verdict::Denied,
        perms: perms::evtchn::SEND,
        policy_hash: [0xab; 32],
        time: 1000 + i,
    }
}

/// A denial of domain `dom`.
fn rec_of(dom: u32, i: u64) -> Record {
    Record { source_dom: DomId(dom), ..rec(i) }
}

#[test]
fn a_full_partition_drops_its_own_oldest_and_counts_it() {
    // 32 records: 16 partitions of 2.
    let mut r: AuditRing<32> = AuditRing::new();
    for i in 0..5 {
        assert_eq!(r.push(rec_of(2, i)), i);
    }
    assert_eq!((r.first_seq(), r.next_seq(), r.dropped()), (3, 5, 3));
    assert_eq!(r.get(2), None, "overwritten");
    assert_eq!(r.get(3).map(|x| x.time), Some(1003));
    assert_eq!(r.get(5), None, "not yet written");
    let seqs: Vec<u64> = r.iter_from(0).map(|x| x.seq).collect();
    assert_eq!(seqs, [3, 4], "a reader behind the ring resumes at the oldest held");
    assert_eq!(r.iter_from(4).count(), 1);
    assert_eq!(r.iter_from(u64::MAX).count(), 0);
}

/// Issue 16, finding 4: a flood of one domain's denials never pushes out another domain's.
#[test]
fn one_domains_flood_keeps_the_other_domains_records() {
    let mut r: AuditRing<1024> = AuditRing::new();
    let victim = r.push(rec_of(0, 0));
    let other = r.push(rec_of(7, 1));
    for i in 0..100_000 {
        r.push(rec_of(2, i));
    }
    assert_eq!(r.get(victim).map(|x| x.source_dom), Some(DomId(0)));
    assert_eq!(r.get(other).map(|x| x.source_dom), Some(DomId(7)));
    assert_eq!(r.dropped(), 100_000 - 64, "the flooder keeps its newest 64");
    let seqs: Vec<u64> = r.iter_from(0).map(|x| x.seq).collect();
    assert_eq!(seqs.len(), 66);
    assert_eq!(&seqs[..3], [0, 1, 100_002 - 64]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in sequence order");
}

#[test]
fn read_into_writes_whole_records_behind_a_header() {
    let mut r: AuditRing<32> = AuditRing::new();
    for i in 0..10 {
        r.push(rec_of(i as u32, i));
    }
    r.push(rec_of(0, 10));
    r.push(rec_of(0, 11));
    let mut buf = vec![0u8; HEADER_LEN + 3 * RECORD_LEN + 50];
    assert_eq!(r.read_into(4, &mut buf), Some(3));
    let (h, recs) = decode_dump(&buf).unwrap();
    assert_eq!(h, Header { count: 3, dropped: 0, next_seq: 12 }, "nothing after seq 4 was missed");
    assert_eq!(recs.map(|x| x.seq).collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(r.read_into(0, &mut buf), Some(3));
    let (_, recs) = decode_dump(&buf).unwrap();
    assert_eq!(recs.map(|x| x.seq).collect::<Vec<_>>(), [1, 2, 3], "seq 0 was domain 0's oldest");
    assert_eq!(decode_dump(&buf).unwrap().0.dropped, 1, "a reader from 0 missed seq 0");
    // Issue 16, finding 12: a reader that already read a record is not told it was dropped.
    for i in 12..20 {
        r.push(rec_of(0, i));
    }
    assert_eq!((r.dropped(), r.missed_from(20), r.missed_from(18), r.missed_from(0)), (9, 0, 0, 9));
    assert_eq!(r.read_into(0, &mut [0u8; HEADER_LEN - 1]), None);
    let mut small = [0u8; HEADER_LEN];
    assert_eq!(r.read_into(0, &mut small), Some(0));
    assert_eq!(Header::decode(&small).unwrap().count, 0);
}

#[test]
fn records_round_trip_and_every_bad_field_is_named() {
    let mut r = rec(7);
    r.seq = 42;
    r.target_dom = DomId(HYPERVISOR_OBJECT);
    let b = r.encode();
    assert_eq!(Record::decode(&b), Ok(r));
    let corrupt = |f: fn(&mut [u8; RECORD_LEN])| {
        let mut c = b;
        f(&mut c);
        Record::decode(&c)
    };
    type Corruption = fn(&mut [u8; RECORD_LEN]);
    let cases: &[(&str, Corruption, DecodeError)] = &[
        ("magic", |c| c[0] = b'X', DecodeError::BadMagic),
        ("reserved after result", |c| c[35] = 1, DecodeError::NonZeroReserved),
        ("reserved tail", |c| c[95] = 1, DecodeError::NonZeroReserved),
        ("class", |c| c[32] = 200, DecodeError::BadClass(200)),
        ("verdict", |c| c[33] = 2, DecodeError::BadVerdict(2)),
        ("perms outside the class", |c| c[47] = 0x80, DecodeError::BadPerms),
    ];
    for (what, f, want) in cases {
        assert_eq!(corrupt(*f), Err(*want), "{what}");
    }
    assert_eq!(Record::decode(&b[..RECORD_LEN - 1]), Err(DecodeError::Truncated));
    let mut hdr = Header { count: 2, dropped: 0, next_seq: 2 }.encode().to_vec();
    hdr.extend_from_slice(&b);
    assert_eq!(decode_dump(&hdr).err(), Some(DecodeError::CountMismatch), "announces 2, holds 1");
    let mut v = Header { count: 1, dropped: 0, next_seq: 1 }.encode();
    v[4] = 9;
    assert_eq!(Header::decode(&v), Err(DecodeError::UnsupportedVersion(9)));
}

#[test]
fn avc_and_json_lines_name_everything() {
    let src = common::policy_source("ipc.wpol");
    let blob = common::compile("ipc.wpol", &src);
    let p = Policy::load(&blob).unwrap();
    let (hostile, ping) = (p.type_by_name("hostile_t").unwrap(), p.type_by_name("ping_t").unwrap());
    let r = Record {
        seq: 9,
        hypercall: 17,
        source_dom: DomId(2),
        target_dom: DomId(0),
        source: hostile,
        target: ping,
        class: Class::Evtchn,
        verdict: Verdict::Denied,
        perms: perms::evtchn::BIND,
        policy_hash: p.hash(),
        time: 77,
    };
    let hash: String = p.hash()[..8].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        r.avc(Some(&p)).to_string(),
        format!("avc: denied {{ bind }} for seq=9 hypercall=evtchn_bind sdom=2 scontext=hostile_t tdom=0 tcontext=ping_t tclass=evtchn policy={hash} time=77")
    );
    // Without the policy (or with another one) types print as numbers: never a wrong name.
    let anon = r.avc(None).to_string();
    assert!(anon.contains(&format!("scontext=type#{}", hostile.0)), "{anon}");
    let other = Record { policy_hash: [0; 32], ..r };
    assert!(other.avc(Some(&p)).to_string().contains("scontext=type#"));
    // A target id that runs nothing is decided as `NO_DOMAIN`: no type, with or without a policy.
    let nobody = Record { target: warden_ipc::dispatch::NO_DOMAIN, ..r };
    for policy in [Some(&p), None] {
        assert!(nobody.avc(policy).to_string().contains(" tcontext=unlabeled "), "{}", nobody.avc(policy));
    }
    let j: serde_json::Value = serde_json::from_str(&r.json(Some(&p)).to_string()).unwrap();
    assert_eq!(j["scontext"], "hostile_t");
    assert_eq!(j["perms"], serde_json::json!(["bind"]));
    assert_eq!(j["result"], "denied");
    assert_eq!(j["hypercall_nr"], 17);
    let two = Record { perms: perms::evtchn::BIND | perms::evtchn::SEND, verdict: Verdict::Granted, ..r };
    assert!(two.avc(Some(&p)).to_string().starts_with("avc: granted { bind send } for"));
    let j: serde_json::Value = serde_json::from_str(&two.json(None).to_string()).unwrap();
    assert_eq!(j["perms"], serde_json::json!(["bind", "send"]));
}

#[test]
fn the_decoder_survives_random_and_mutated_input() {
    let mut rng = common::Rng(7);
    let mut ring: AuditRing<4> = AuditRing::new();
    for i in 0..6 {
        ring.push(rec_of(i as u32, i));
    }
    let mut good = vec![0u8; HEADER_LEN + 4 * RECORD_LEN];
    ring.read_into(0, &mut good).unwrap();
    fuzz_decode(&good);
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() % b.len() as u64) as usize;
            b[i] = rng.next() as u8;
        }
        let cut = (rng.next() % (b.len() as u64 + 1)) as usize;
        fuzz_decode(&b[..cut]);
        fuzz_decode(&b[HEADER_LEN.min(cut)..cut]);
    }
    for dir in ["fuzz/corpus/audit"] {
        let d = common::workspace_root().join("kernel/ipc").join(dir);
        let files: Vec<_> = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten().collect();
        assert!(!files.is_empty(), "empty corpus {}", d.display());
        for f in files {
            fuzz_decode(&std::fs::read(f.path()).unwrap());
        }
    }
}
