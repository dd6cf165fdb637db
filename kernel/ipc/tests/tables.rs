//! Event-channel and grant-table bookkeeping: states, both ends, and every way a port or a
//! reference can be wrong (out of range, free, foreign, stale, forged).

use warden_ipc::evtchn::{PORTS, State};
use warden_ipc::grant::{GRANTS, MAP_SLOTS, MAP_WINDOW};
use warden_ipc::{Access, DomId, EventChannels, GrantRef, GrantTable, IpcError, MAX_DOMAINS, Port};
use warden_policy::TypeId;

const A: DomId = DomId(0);
const B: DomId = DomId(1);
const C: DomId = DomId(2);
const LA: TypeId = TypeId(10);
const LB: TypeId = TypeId(11);
const LC: TypeId = TypeId(12);

/// A bound channel A <-> B: (A's port, B's port).
fn channel(t: &mut EventChannels) -> (Port, Port) {
    let pa = t.alloc_unbound(A, LA, B, LB).unwrap();
    let pb = t.bind(B, LB, A, pa).unwrap();
    (pa, pb)
}

#[test]
fn a_channel_is_built_in_two_steps_and_carries_both_labels() {
    let mut t = EventChannels::new();
    let pa = t.alloc_unbound(A, LA, B, LB).unwrap();
    assert_ne!(pa, Port(0), "port 0 is never handed out");
    assert_eq!(t.end(A, pa).unwrap().state, State::Unbound { remote: B });
    let pb = t.bind(B, LB, A, pa).unwrap();
    let (ea, eb) = (t.end(A, pa).unwrap(), t.end(B, pb).unwrap());
    assert_eq!(ea.state, State::Bound { remote: B, remote_port: pb });
    assert_eq!(eb.state, State::Bound { remote: A, remote_port: pa });
    assert_eq!((ea.label, ea.remote_label), (LA, LB));
    assert_eq!((eb.label, eb.remote_label), (LB, LA));
    assert_eq!(t.peer(A, pa).unwrap(), (B, LB));
    assert_eq!(t.peer(B, pb).unwrap(), (A, LA));
}

#[test]
fn send_sets_the_peers_pending_bit_and_take_clears_it() {
    let mut t = EventChannels::new();
    let (pa, pb) = channel(&mut t);
    let w = t.send(A, pa).unwrap();
    assert_eq!((w.dom, w.port), (B, pb));
    assert_eq!(t.pending(B), 1 << pb.0);
    assert_eq!(t.pending(A), 0, "the sender's own bit is untouched");
    // A mask that does not select the port leaves it pending.
    assert_eq!(t.take_pending(B, !(1 << pb.0)), 0);
    assert_eq!(t.take_pending(B, u64::MAX), 1 << pb.0);
    assert_eq!(t.take_pending(B, u64::MAX), 0);
    // Both directions work; repeated sends coalesce into one pending bit.
    t.send(B, pb).unwrap();
    t.send(B, pb).unwrap();
    assert_eq!(t.take_pending(A, u64::MAX), 1 << pa.0);
}

#[test]
fn wrong_ports_are_errors_never_panics() {
    let mut t = EventChannels::new();
    let (pa, _pb) = channel(&mut t);
    let unbound = t.alloc_unbound(A, LA, B, LB).unwrap();
    let cases: &[(&str, DomId, Port, IpcError)] = &[
        ("port 0", A, Port(0), IpcError::BadPort),
        ("port = PORTS", A, Port(PORTS as u32), IpcError::BadPort),
        ("port u32::MAX", A, Port(u32::MAX), IpcError::BadPort),
        ("free port", A, Port(40), IpcError::PortNotInUse),
        ("other domain's port number", C, pa, IpcError::PortNotInUse),
        ("unbound port", A, unbound, IpcError::NotBound),
        ("domain out of range", DomId(MAX_DOMAINS as u32), pa, IpcError::BadDomain),
        ("domain u32::MAX", DomId(u32::MAX), pa, IpcError::BadDomain),
    ];
    for &(what, d, p, want) in cases {
        assert_eq!(t.send(d, p), Err(want), "send: {what}");
    }
    assert_eq!(t.close(A, Port(0)), Err(IpcError::BadPort));
    assert_eq!(t.close(C, pa), Err(IpcError::PortNotInUse));
    assert_eq!(t.peer(C, pa), Err(IpcError::PortNotInUse));
}

#[test]
fn only_the_named_domain_binds_and_only_once() {
    let mut t = EventChannels::new();
    let pa = t.alloc_unbound(A, LA, B, LB).unwrap();
    assert_eq!(t.bind(C, LC, A, pa), Err(IpcError::ForeignPort), "allocated for B, not C");
    assert_eq!(t.bind(A, LA, A, pa), Err(IpcError::SelfPeer));
    assert_eq!(t.bind(B, LB, A, Port(0)), Err(IpcError::BadPort));
    assert_eq!(t.bind(B, LB, A, Port(33)), Err(IpcError::PortNotInUse));
    assert_eq!(t.bind(B, LB, DomId(99), pa), Err(IpcError::BadDomain));
    let _pb = t.bind(B, LB, A, pa).unwrap();
    assert_eq!(t.bind(B, LB, A, pa), Err(IpcError::ForeignPort), "already bound");
    assert_eq!(t.bind(C, LC, A, pa), Err(IpcError::ForeignPort));
    assert_eq!(t.alloc_unbound(A, LA, A, LA), Err(IpcError::SelfPeer));
    assert_eq!(t.alloc_unbound(A, LA, DomId(MAX_DOMAINS as u32), LB), Err(IpcError::BadDomain));
    assert_eq!(t.ports_in_use(C), 0, "failed binds allocate nothing");
}

#[test]
fn closing_one_end_leaves_the_other_peer_closed() {
    let mut t = EventChannels::new();
    let (pa, pb) = channel(&mut t);
    let w = t.close(A, pa).unwrap().expect("the peer is woken");
    assert_eq!((w.dom, w.port), (B, pb));
    assert_eq!(t.end(B, pb).unwrap().state, State::PeerClosed { remote: A });
    assert_eq!(t.send(B, pb), Err(IpcError::PeerClosed));
    assert_eq!(t.send(A, pa), Err(IpcError::PortNotInUse));
    assert_eq!(t.close(A, pa), Err(IpcError::PortNotInUse), "double close");
    assert_eq!(t.close(B, pb), Ok(None));
    assert_eq!(t.ports_in_use(A) + t.ports_in_use(B), 0);
}

#[test]
fn port_tables_fill_up_cleanly_and_free_ports_are_reused() {
    let mut t = EventChannels::new();
    let ports: Vec<Port> = (1..PORTS).map(|_| t.alloc_unbound(A, LA, B, LB).unwrap()).collect();
    assert_eq!(t.alloc_unbound(A, LA, B, LB), Err(IpcError::NoFreePort));
    let again = ports[7];
    t.close(A, again).unwrap();
    assert_eq!(t.alloc_unbound(A, LA, C, LC), Ok(again));
}

#[test]
fn a_dead_domain_releases_its_ports_and_wakes_its_peers() {
    let mut t = EventChannels::new();
    let (pa, pb) = channel(&mut t);
    let for_a = t.alloc_unbound(C, LC, A, LA).unwrap();
    let mut woken = Vec::new();
    t.domain_dead(A, |w| woken.push(w.dom));
    assert_eq!(woken, [B]);
    assert_eq!(t.ports_in_use(A), 0);
    assert_eq!(t.send(B, pb), Err(IpcError::PeerClosed));
    assert_eq!(t.end(C, for_a).unwrap().state, State::PeerClosed { remote: A }, "can never be bound now");
    let _ = pa;
}

const PAGE: u64 = 0x1000;

#[test]
fn a_grant_is_offered_mapped_unmapped_and_revoked() {
    let mut g = GrantTable::new();
    let r = g.offer(A, B, LB, 0x300, Access::ReadWrite).unwrap();
    assert_ne!(r, GrantRef(0), "reference 0 never exists");
    assert_eq!(g.grantee_of(A, r), Ok((B, LB)));
    assert_eq!(g.map(B, A, r, MAP_WINDOW, true), Ok(0x300));
    assert_eq!(g.mapping_at(B, MAP_WINDOW), Some((A, (r.0 & 0xffff) as usize)));
    assert_eq!(g.revoke(A, r), Err(IpcError::StillMapped), "revoke is refused while mapped");
    assert_eq!(g.unmap(B, A, r), Ok(MAP_WINDOW));
    assert_eq!(g.unmap(B, A, r), Err(IpcError::NotMapped));
    assert_eq!(g.revoke(A, r), Ok(()));
    assert_eq!(g.offered(A), 0);
}

#[test]
fn forged_stale_foreign_and_excessive_requests_are_errors() {
    let mut g = GrantTable::new();
    let ro = g.offer(A, B, LB, 0x300, Access::ReadOnly).unwrap();
    let rw = g.offer(A, B, LB, 0x301, Access::ReadWrite).unwrap();
    let revoked = g.offer(A, B, LB, 0x302, Access::ReadWrite).unwrap();
    g.revoke(A, revoked).unwrap();
    // The revoked slot is offered again: its old reference must stay dead.
    let reused = g.offer(A, C, LC, 0x303, Access::ReadWrite).unwrap();
    assert_eq!(reused.0 & 0xffff, revoked.0 & 0xffff, "slot reused");
    let w = MAP_WINDOW;
    let cases: &[(&str, DomId, DomId, GrantRef, u64, bool, IpcError)] = &[
        ("forged: index out of range", B, A, GrantRef(1 << 16 | GRANTS as u32), w, false, IpcError::BadRef),
        ("forged: free slot", B, A, GrantRef(1 << 16 | 20), w, false, IpcError::BadRef),
        ("forged: zero", B, A, GrantRef(0), w, false, IpcError::BadRef),
        ("forged: future generation", B, A, GrantRef(ro.0 + (5 << 16)), w, false, IpcError::BadRef),
        ("forged: u32::MAX", B, A, GrantRef(u32::MAX), w, false, IpcError::BadRef),
        ("stale: revoked", B, A, revoked, w, false, IpcError::StaleRef),
        ("foreign: granted to B, mapped by C", C, A, ro, w, false, IpcError::ForeignRef),
        ("foreign: wrong granter", B, C, ro, w, false, IpcError::BadRef),
        ("read-write map of read-only grant", B, A, ro, w, true, IpcError::AccessExceedsGrant),
        ("below window", B, A, rw, w - PAGE, true, IpcError::BadMapAddress),
        ("past window", B, A, rw, w + MAP_SLOTS * PAGE, true, IpcError::BadMapAddress),
        ("unaligned", B, A, rw, w + 8, true, IpcError::BadMapAddress),
        ("bad granter", B, DomId(u32::MAX), rw, w, true, IpcError::BadDomain),
    ];
    for &(what, grantee, granter, r, gpa, writable, want) in cases {
        assert_eq!(g.map(grantee, granter, r, gpa, writable), Err(want), "{what}");
    }
    // Nothing above changed any state.
    assert_eq!(g.mapping_at(B, w), None);
    assert_eq!(g.map(B, A, ro, w, false), Ok(0x300));
    assert_eq!(g.map(B, A, ro, w + PAGE, false), Err(IpcError::AlreadyMapped));
    assert_eq!(g.map(B, A, rw, w, true), Err(IpcError::MapAddressInUse));
    assert_eq!(g.unmap(C, A, ro), Err(IpcError::ForeignRef));
    assert_eq!(g.revoke(B, ro), Err(IpcError::BadRef), "only the granter revokes");
    assert_eq!(g.revoke(A, revoked), Err(IpcError::StaleRef));
    assert_eq!(g.offer(A, A, LA, 1, Access::ReadOnly), Err(IpcError::SelfPeer));
    assert_eq!(Access::from_flags(2), Err(IpcError::BadFlags));
}

/// Issue 16, finding 8: after 65,535 revokes of one slot its generations are spent; the slot is
/// retired instead of wrapping, so no old reference ever becomes valid again.
#[test]
fn a_slot_whose_generations_are_spent_is_retired_not_wrapped() {
    let mut g = GrantTable::new();
    let first = g.offer(A, B, LB, 0x300, Access::ReadWrite).unwrap();
    g.revoke(A, first).unwrap();
    let mut last = first;
    for _ in 1..u16::MAX {
        last = g.offer(A, B, LB, 0x300, Access::ReadWrite).unwrap();
        assert_eq!(last.0 & 0xffff, 0, "slot 0 reused");
        g.revoke(A, last).unwrap();
    }
    assert_eq!(last.0 >> 16, u32::from(u16::MAX), "the last generation was handed out");
    let next = g.offer(A, B, LB, 0x300, Access::ReadWrite).unwrap();
    assert_eq!(next.0 & 0xffff, 1, "slot 0 is retired: the next offer takes slot 1");
    for old in [first, last, GrantRef(1 << 16)] {
        assert_eq!(g.map(B, A, old, MAP_WINDOW, false), Err(IpcError::StaleRef), "{old:?}");
        assert_eq!(g.revoke(A, old), Err(IpcError::StaleRef));
    }
    assert_eq!(g.map(B, A, GrantRef(0), MAP_WINDOW, false), Err(IpcError::BadRef));
    assert_eq!(g.map(B, A, next, MAP_WINDOW, false), Ok(0x300));
}

#[test]
fn grant_tables_fill_up_cleanly() {
    let mut g = GrantTable::new();
    for i in 0..GRANTS as u64 {
        g.offer(A, B, LB, 0x300 + i, Access::ReadOnly).unwrap();
    }
    assert_eq!(g.offer(A, B, LB, 0x999, Access::ReadOnly), Err(IpcError::NoFreeRef));
    assert_eq!(g.offer(B, A, LA, 0x999, Access::ReadOnly).map(|_| ()), Ok(()), "tables are per granter");
}

#[test]
fn a_dead_granter_forces_unmaps_and_a_dead_grantee_releases_its_mappings() {
    let mut g = GrantTable::new();
    let r1 = g.offer(A, B, LB, 0x300, Access::ReadWrite).unwrap();
    let r2 = g.offer(B, A, LA, 0x400, Access::ReadWrite).unwrap();
    g.map(B, A, r1, MAP_WINDOW, true).unwrap();
    g.map(A, B, r2, MAP_WINDOW + PAGE, true).unwrap();
    let mut unmaps = Vec::new();
    g.domain_dead(A, |u| unmaps.push((u.grantee, u.gpa)));
    assert_eq!(unmaps, [(B, MAP_WINDOW), (A, MAP_WINDOW + PAGE)], "B loses its window into A's memory, A its own");
    assert_eq!(g.get(A, r1), Err(IpcError::StaleRef));
    assert_eq!(g.get(B, r2).unwrap().mapped, None, "A's mapping of B's page is gone");
    assert_eq!(g.revoke(B, r2), Ok(()), "so B can revoke");
}
