//! Random operations by every domain of the ipc policy — allowed ones included, with domains
//! ending midway — keep the tables consistent with each other and with the (fake) nested page
//! tables, and never panic: both ends of a bound channel point at each other, every mapped
//! grant is mapped exactly where the table says, and nothing maps what no grant covers.

mod common;

use common::{FakePlatform, PAGE, Rng, scenario_blob};
use warden_abi::ipc::IpcCall;
use warden_ipc::evtchn::{PORTS, State};
use warden_ipc::{DomId, Failure, Ipc, MAX_DOMAINS, Mac, Port};

fn check_invariants(ipc: &Ipc<'static, 64, 16>, p: &FakePlatform, step: usize) {
    let n = p.doms.len() as u32;
    let mut mapped = 0usize;
    for d in (0..n).map(DomId) {
        for port in (1..PORTS as u32).map(Port) {
            let e = ipc.evtchn.end(d, port).unwrap();
            if let State::Bound { remote, remote_port } = e.state {
                let other = ipc.evtchn.end(remote, remote_port).unwrap();
                assert_eq!(other.state, State::Bound { remote: d, remote_port: port }, "step {step}: half-bound channel");
                assert_eq!((e.label, e.remote_label), (other.remote_label, other.label), "step {step}: labels disagree");
            }
        }
        for (_, g) in ipc.grants.live(d) {
            if let Some(m) = g.mapped {
                mapped += 1;
                let at = p.doms[g.grantee.0 as usize].maps.get(&m.gpa);
                assert_eq!(at, Some(&(d, g.gfn, m.writable)), "step {step}: table and NPT disagree");
            }
        }
    }
    let npt: usize = p.doms.iter().map(|d| d.maps.len()).sum();
    assert_eq!(npt, mapped, "step {step}: a mapping without a grant");
}

#[test]
fn random_operations_keep_every_table_consistent() {
    let mac = Mac::new(scenario_blob("ipc.wpol"), common::ring::<64>()).unwrap();
    let l = |n| mac.domain_label(n).unwrap();
    let mut p = FakePlatform::new(&[l("ping_t"), l("pong_t"), l("hostile_t"), l("auditor_t")], 16);
    let (e, g) = common::tables();
    let mut ipc = Ipc::new(mac, e, g);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut ok, mut denied, mut invalid, mut maps) = (0u32, 0u32, 0u32, 0u32);
    for step in 0..60_000 {
        let d = DomId((rng.next() % 4) as u32);
        if !p.doms[d.0 as usize].alive {
            continue;
        }
        // Mostly plausible arguments (peers 0..4, small ports and references, window pages).
        let c = IpcCall::ALL[(rng.next() % IpcCall::ALL.len() as u64) as usize];
        // Peers are mostly real domains, references mostly of the first generation.
        let small = |r: &mut Rng| if r.next().is_multiple_of(8) { 4 + r.next() % 60 } else { r.next() % 4 };
        let gref = |r: &mut Rng| {
            let generation = if r.next().is_multiple_of(5) { 2 + r.next() % 2 } else { 1 };
            (generation << 16) | (r.next() % 4)
        };
        let flags = |r: &mut Rng| if r.next().is_multiple_of(10) { 2 } else { r.next() % 2 };
        let args = match c {
            IpcCall::EvtchnAlloc => [small(&mut rng), 0, 0, 0, 0],
            IpcCall::EvtchnBind => [small(&mut rng), small(&mut rng), 0, 0, 0],
            IpcCall::GrantOffer => [small(&mut rng), 1 + rng.next() % 8, flags(&mut rng), 0, 0],
            IpcCall::GrantMap | IpcCall::GrantUnmap => {
                let granter = small(&mut rng);
                // Half the time a reference that exists (domains learn them from their peers).
                let live: Vec<u64> = ipc.grants.live(DomId(granter as u32)).map(|(r, _)| u64::from(r.0)).collect();
                let r = if live.is_empty() || rng.next().is_multiple_of(2) {
                    gref(&mut rng)
                } else {
                    live[(rng.next() % live.len() as u64) as usize]
                };
                [granter, r, warden_ipc::grant::MAP_WINDOW + (rng.next() % 4) * PAGE, flags(&mut rng), 0]
            }
            IpcCall::GrantRevoke => {
                let live: Vec<u64> = ipc.grants.live(d).map(|(r, _)| u64::from(r.0)).collect();
                let r = if live.is_empty() || rng.next().is_multiple_of(2) {
                    gref(&mut rng)
                } else {
                    live[(rng.next() % live.len() as u64) as usize]
                };
                [r, 0, 0, 0, 0]
            }
            IpcCall::AuditRead => [0x2000, 2048, rng.next() % 100, 0, 0],
            _ => [small(&mut rng), 0, 0, 0, 0],
        };
        p.time += 1;
        match ipc.handle(&mut p, d, c, args) {
            Ok(_) => {
                ok += 1;
                maps += u32::from(c == IpcCall::GrantMap);
            }
            Err(Failure::Denied(_)) => denied += 1,
            Err(Failure::Invalid(_)) => invalid += 1,
        }
        // Now and then a domain ends; everything it held must go with it.
        if rng.next().is_multiple_of(20_000) {
            let label = p.doms[d.0 as usize].label;
            p.doms[d.0 as usize].alive = false;
            ipc.domain_dead(&mut p, d, label);
            assert!(p.doms[d.0 as usize].maps.is_empty(), "step {step}: a dead domain keeps mappings");
            assert_eq!(ipc.evtchn.ports_in_use(d), 0);
            assert_eq!(ipc.grants.offered(d), 0);
        }
        check_invariants(&ipc, &p, step);
    }
    assert!(ok > 500 && denied > 500 && invalid > 500, "all three outcomes exercised: {ok} {denied} {invalid}");
    assert!(maps >= 5, "grants were mapped: {maps}");
    assert!(MAX_DOMAINS >= p.doms.len());
}
