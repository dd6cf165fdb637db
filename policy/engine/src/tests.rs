//! Unit tests of the loader, the decision engine, transitions and the Chinese Wall.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use crate::encode::{Av, Image, encode};
use crate::format::{AV_ENTRY, HEADER_LEN, SECTION_ENTRY, SECTIONS};
use crate::schema::{Class, Kind, perms};
use crate::{
    Category, ChineseWall, Conflict, ConflictSetId, LoadError, NotRunning, PermSet, Policy, TransitionError, TypeId,
};

fn av(subject: u32, target: u32, class: Class, allow: PermSet, auditallow: PermSet, dontaudit: PermSet) -> Av {
    Av { subject, target, class, allow: allow.0, allow_same: 0, auditallow: auditallow.0, dontaudit: dontaudit.0 }
}

// Types sorted by name: 0 bank_a, 1 bank_b, 2 builder, 3 guest, 4 guest_build, 5 mgmt, 6 vtpm0,
// 7 xen (the hypervisor's own label: every policy has exactly one).
fn image() -> Image {
    let names = [
        ("bank_a", Kind::Domain),
        ("bank_b", Kind::Domain),
        ("builder", Kind::Domain),
        ("guest", Kind::Domain),
        ("guest_build", Kind::Domain),
        ("mgmt", Kind::Domain),
        ("vtpm0", Kind::Vtpm),
        ("xen", Kind::Hypervisor),
    ];
    let d = Class::Domain;
    Image {
        source_hash: [7; 32],
        types: names.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
        av: vec![
            av(5, 3, d, perms::domain::PAUSE | perms::domain::GETINFO, perms::domain::PAUSE, PermSet::EMPTY),
            av(5, 3, Class::Introspect, PermSet::EMPTY, PermSet::EMPTY, perms::introspect::READMEM),
            av(3, 6, Class::Vtpm, perms::vtpm::USE, PermSet::EMPTY, PermSet::EMPTY),
            av(2, 4, d, perms::domain::BUILD | perms::domain::TRANSITION, PermSet::EMPTY, PermSet::EMPTY),
            // Between two `guest` domains: pause whatever the categories, map_rw only within one.
            Av { allow_same: perms::grant::MAP_RW.0, ..av(3, 3, Class::Grant, perms::grant::MAP_RO, PermSet::EMPTY, PermSet::EMPTY) },
        ],
        transitions: vec![(4, 3)],
        conflict_sets: vec![("banks".to_string(), vec![1, 0])],
    }
}

#[test]
fn decides_from_the_table() {
    let blob = encode(&image());
    let p = Policy::load(&blob).expect("valid blob");
    let (mgmt, guest) = (p.type_by_name("mgmt").unwrap(), p.type_by_name("guest").unwrap());
    let asked = perms::domain::PAUSE | perms::domain::DESTROY | perms::domain::GETINFO;
    let d = p.decide(mgmt, guest, Class::Domain, asked);
    assert_eq!(d.allowed, perms::domain::PAUSE | perms::domain::GETINFO);
    // destroy: denied and audited; pause: granted but auditallow'ed; getinfo: silent.
    assert_eq!(d.audit, perms::domain::DESTROY | perms::domain::PAUSE);
    let d = p.decide(mgmt, guest, Class::Introspect, perms::introspect::READMEM | perms::introspect::WRITEMEM);
    assert_eq!(d.allowed, PermSet::EMPTY);
    assert_eq!(d.audit, perms::introspect::WRITEMEM, "readmem is dontaudit");
    let d = p.decide(guest, mgmt, Class::Domain, perms::domain::PAUSE);
    assert_eq!((d.allowed, d.audit), (PermSet::EMPTY, perms::domain::PAUSE));
    let d = p.decide(TypeId(99), TypeId(u32::MAX), Class::Domain, perms::domain::PAUSE);
    assert_eq!(d.allowed, PermSet::EMPTY);
}

#[test]
fn names_kinds_and_hashes() {
    let blob = encode(&image());
    let p = Policy::load(&blob).unwrap();
    for t in p.types() {
        assert_eq!(p.type_by_name(p.type_name(t)), Some(t));
    }
    assert_eq!(p.type_by_name("nope"), None);
    assert_eq!(p.kind_of(p.type_by_name("vtpm0").unwrap()), Some(Kind::Vtpm));
    assert_eq!(p.kind_of(TypeId(7)), Some(Kind::Hypervisor));
    assert_eq!(p.kind_of(TypeId(8)), None);
    assert_eq!(p.source_hash(), [7; 32]);
    let mut other = image();
    other.source_hash = [8; 32];
    assert_ne!(Policy::load(&encode(&other)).unwrap().hash(), p.hash());
}

#[test]
fn build_label_transition() {
    let blob = encode(&image());
    let p = Policy::load(&blob).unwrap();
    let id = |n| p.type_by_name(n).unwrap();
    assert_eq!(p.check_transition(id("builder"), id("guest_build"), id("guest")), Ok(()));
    assert_eq!(p.check_transition(id("mgmt"), id("guest_build"), id("guest")), Err(TransitionError::Denied));
    assert_eq!(
        p.check_transition(id("builder"), id("guest_build"), id("mgmt")),
        Err(TransitionError::WrongRunLabel { expected: id("guest") })
    );
    assert_eq!(p.check_transition(id("builder"), id("guest"), id("guest_build")), Err(TransitionError::NotABuildLabel));
    // After the switch the builder's rules (on the build label) do not reach the run label.
    assert!(p.decide(id("builder"), id("guest"), Class::Domain, perms::domain::BUILD).allowed.is_empty());
}

#[test]
fn chinese_wall() {
    let blob = encode(&image());
    let p = Policy::load(&blob).unwrap();
    let (a, b, g) =
        (p.type_by_name("bank_a").unwrap(), p.type_by_name("bank_b").unwrap(), p.type_by_name("guest").unwrap());
    assert_eq!(p.conflict_set_name(ConflictSetId(0)), "banks");
    assert_eq!(p.conflict_set_members(ConflictSetId(0)).collect::<Vec<_>>(), vec![a, b]);
    assert!(ChineseWall::<1>::new(p).is_err());
    let mut cw = ChineseWall::<4>::new(p).unwrap();
    assert_eq!(cw.started(a), Ok(()));
    assert_eq!(cw.started(a), Ok(()), "same type may run twice");
    assert_eq!(cw.started(g), Ok(()));
    let conflict = Conflict { with: a, set: ConflictSetId(0) };
    assert_eq!(cw.may_start(b), Err(conflict));
    assert_eq!(cw.started(b), Err(conflict));
    assert_eq!(cw.stopped(a), Ok(()));
    assert_eq!(cw.may_start(b), Err(conflict));
    assert_eq!(cw.stopped(a), Ok(()));
    assert_eq!(cw.stopped(a), Err(NotRunning));
    assert_eq!(cw.may_start(b), Ok(()));
    assert_eq!(cw.started(b), Ok(()));
    assert_eq!(cw.running(b), 1);
    assert_eq!(cw.may_start(a), Err(Conflict { with: b, set: ConflictSetId(0) }));
}

fn section_off(blob: &[u8], i: usize) -> usize {
    let e = HEADER_LEN + i * SECTION_ENTRY + 4;
    u32::from_le_bytes(blob[e..e + 4].try_into().unwrap()) as usize
}

/// Each corruption names what it breaks and the error the loader must return.
#[test]
fn rejects_malformed_blobs() {
    let good = encode(&image());
    let entry = section_off(&good, 3);
    let index = section_off(&good, 2);
    let types = section_off(&good, 1);
    type Mutation = fn(&mut Vec<u8>, usize, usize, usize);
    let cases: &[(&str, Mutation, LoadError)] = &[
        ("truncated", |b, _, _, _| b.truncate(10), LoadError::Truncated),
        ("magic", |b, _, _, _| b[0] ^= 1, LoadError::BadMagic),
        ("version", |b, _, _, _| b[8] = 9, LoadError::UnsupportedVersion(9)),
        ("version 1", |b, _, _, _| b[8] = 1, LoadError::UnsupportedVersion(1)),
        ("schema", |b, _, _, _| b[20] ^= 1, LoadError::SchemaMismatch),
        ("sections", |b, _, _, _| b[12] = 5, LoadError::BadSectionCount(5)),
        ("trailing", |b, _, _, _| b.push(0), LoadError::LengthMismatch),
        ("reserved", |b, _, _, _| b[84] = 1, LoadError::NonZeroReserved),
        ("section id", |b, _, _, _| b[HEADER_LEN + SECTION_ENTRY] = 9, LoadError::BadSection(1)),
        ("kind", |b, _, _, t| b[t + 6] = 42, LoadError::BadKind(42)),
        ("retired evtchn kind", |b, _, _, t| b[t + 6] = 1, LoadError::BadKind(1)),
        ("name", |b, _, _, t| b[t + 4] = 200, LoadError::BadName),
        ("class", |b, e, _, _| b[e + 8] = 77, LoadError::BadAvEntry(0)),
        ("subject", |b, e, _, _| b[e] = 100, LoadError::BadAvEntry(0)),
        ("perm bits", |b, e, _, _| b[e + 15] = 0x80, LoadError::BadAvEntry(0)),
        ("same-category bits", |b, e, _, _| b[e + 19] = 0x80, LoadError::BadAvEntry(0)),
        ("av padding", |b, e, _, _| b[e + 9] = 1, LoadError::BadAvEntry(0)),
        ("index start", |b, _, i, _| b[i] = 1, LoadError::BadTableSize),
        ("index order", |b, _, i, _| b[i + 4..i + 8].copy_from_slice(&u32::MAX.to_le_bytes()), LoadError::BadTableSize),
    ];
    for (what, mutate, want) in cases {
        let mut b = good.clone();
        mutate(&mut b, entry, index, types);
        // Keep the declared length right so deeper checks are reached.
        if !matches!(want, LoadError::LengthMismatch | LoadError::Truncated) {
            let len = b.len() as u32;
            b[80..84].copy_from_slice(&len.to_le_bytes());
        }
        assert_eq!(Policy::load(&b).map(|_| ()), Err(*want), "corruption `{what}`");
    }
    // An entry with both masks overlapping is not canonical.
    let mut img = image();
    img.av[4].allow_same |= img.av[4].allow;
    assert!(matches!(Policy::load(&encode(&img)), Err(LoadError::BadAvEntry(_))));
}

#[test]
fn every_single_byte_flip_is_rejected_or_consistent() {
    let good = encode(&image());
    for i in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = good.clone();
            b[i] ^= bit;
            crate::fuzz_load(&b);
            // In the header and section table only the source hash is free; in the sections a
            // flip may yield another valid policy (a renamed type, another permission bit).
            if Policy::load(&b).is_ok() && i < HEADER_LEN + SECTIONS.len() * SECTION_ENTRY {
                assert!((48..80).contains(&i), "flip at header byte {i} went unnoticed");
            }
        }
    }
}

#[test]
fn misplaced_av_entry_is_rejected() {
    let good = encode(&image());
    let avtab = section_off(&good, 3);
    let entries = (section_off(&good, 4) - avtab) / AV_ENTRY;
    // Rotate the entries by one: they leave their buckets or their order.
    let mut b = good.clone();
    b[avtab..avtab + entries * AV_ENTRY].rotate_right(AV_ENTRY);
    assert!(matches!(Policy::load(&b), Err(LoadError::AvMisplaced(_))));
    // A key twice in one bucket.
    let mut img = image();
    img.av.push(img.av[0]);
    assert!(matches!(Policy::load(&encode(&img)), Err(LoadError::AvMisplaced(_))));
}

/// Categories: a grant in `allow_same` holds only between domains of one category, and the
/// category-blind `decide` never grants it.
#[test]
fn same_category_grants_need_equal_categories() {
    let blob = encode(&image());
    let p = Policy::load(&blob).unwrap();
    let g = p.type_by_name("guest").unwrap();
    let (c1, c2) = (Category(1), Category(2));
    let rw = perms::grant::MAP_RW;
    assert_eq!(p.decide_in((g, c1), (g, c1), Class::Grant, rw).allowed, rw);
    assert_eq!(p.decide_in((g, c1), (g, c2), Class::Grant, rw).allowed, PermSet::EMPTY);
    assert_eq!(p.decide_in((g, c1), (g, c2), Class::Grant, rw).audit, rw, "the denial is audited");
    assert_eq!(p.decide(g, g, Class::Grant, rw).allowed, PermSet::EMPTY);
    // What `allow` grants holds in every category.
    let ro = perms::grant::MAP_RO;
    assert_eq!(p.decide_in((g, c1), (g, c2), Class::Grant, ro).allowed, ro);
    assert_eq!(p.decide(g, g, Class::Grant, ro).allowed, ro);
}

#[test]
fn smallest_policy_is_the_hypervisor_label_alone() {
    let img = Image { types: vec![("xen".to_string(), Kind::Hypervisor)], ..Image::default() };
    let blob = encode(&img);
    let p = Policy::load(&blob).unwrap();
    assert_eq!(p.type_count(), 1);
    assert_eq!(p.type_by_name("x"), None);
    assert!(p.decide(TypeId(0), TypeId(0), Class::Domain, PermSet(1)).allowed.is_empty());
}

/// The hypervisor resolves its own label once at boot: none or two must be refused here, by
/// the one loader the compiler also runs, not discovered later.
#[test]
fn exactly_one_hypervisor_type() {
    let cases: &[(&[(&str, Kind)], u32)] = &[
        (&[], 0),
        (&[("a", Kind::Domain)], 0),
        (&[("a", Kind::Hypervisor), ("b", Kind::Hypervisor)], 2),
        (&[("a", Kind::Hypervisor), ("b", Kind::Domain), ("c", Kind::Hypervisor), ("d", Kind::Hypervisor)], 3),
    ];
    for (types, n) in cases {
        let img = Image { types: types.iter().map(|(t, k)| (t.to_string(), *k)).collect(), ..Image::default() };
        assert_eq!(Policy::load(&encode(&img)).map(|_| ()), Err(LoadError::HypervisorCount(*n)), "{types:?}");
    }
}
