//! vTPMs for domains on a running hypervisor: the `vtpm` scenario in detail. Each guest's
//! quote of its own launch PCRs is verified on the host with `wardenctl`'s verifier against a
//! reference built from the guest's image file and manifest configuration (and refused against
//! the other guest's); the cross-connection attempts are denied and audited with the vTPM
//! class; guest 1's vTPM domain crashes and guest 2's keeps serving afterwards.

use std::collections::BTreeMap;

use std::hash::{BuildHasher, RandomState};

use warden_system_tests::{BootOptions, ExitKind, Outcome, Scenario, boot, expect_scenario, line};
use warden_tpm::eventlog::Tag;
use wardenctl::reference::{Component, Reference};
use wardenctl::verify::{Evidence, verify};

fn pos(out: &Outcome, needle: &str) -> usize {
    out.log
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with '{needle}' in:\n{}", out.log))
}

/// The `evidence WHAT I HEX` lines of domain `dom`, joined per item.
fn evidence(out: &Outcome, dom: &str) -> BTreeMap<String, Vec<u8>> {
    let prefix = format!("[{dom}] evidence ");
    let mut parts: BTreeMap<String, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
    for l in out.log.lines().filter_map(|l| l.strip_prefix(&prefix)) {
        let mut w = l.split(' ');
        let (what, i, hex) = (
            w.next().unwrap(),
            w.next().unwrap().parse().unwrap(),
            w.next().unwrap(),
        );
        parts
            .entry(what.into())
            .or_default()
            .push((i, wardenctl::unhex(hex).unwrap()));
    }
    parts
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|(i, _)| *i);
            assert!(
                v.iter().enumerate().all(|(n, (i, _))| n == *i),
                "{dom}: evidence {k} has a gap"
            );
            (k, v.into_iter().flat_map(|(_, b)| b).collect())
        })
        .collect()
}

/// The collected evidence items as the verifier takes them, with the verifier's nonce.
fn as_evidence<'a>(ev: &'a BTreeMap<String, Vec<u8>>, nonce: &'a [u8]) -> Evidence<'a> {
    Evidence {
        quote: &ev["quote"],
        ak_public: &ev["ak"],
        event_log: &ev["log"],
        nonce,
    }
}

/// What a verifier expects of a guest: its manifest configuration in PCR 21 and its image
/// file in PCR 22.
fn reference(name: &str, label: &str, args: &str) -> Reference {
    let image = warden_rig::images::images()
        .unwrap()
        .image("vtpm_guest")
        .unwrap();
    let bytes = std::fs::read(image).unwrap();
    let config = format!("name={name} label={label} args={args}");
    Reference::new(
        &format!("launch of domain {name}"),
        vec![
            Component::new(Tag::Manifest, name, config.as_bytes()),
            Component::new(Tag::DomainImage, "vtpm_guest", &bytes),
        ],
    )
}

#[test]
fn two_guests_with_their_own_vtpms() {
    // The verifier's nonces, fresh for this run, replace the scenario file's.
    let mut scenario = Scenario::load("vtpm").unwrap();
    let mut guests = Vec::new();
    for d in &mut scenario.domain {
        let name = d["name"].as_str().unwrap().to_string();
        let Some(args) = d
            .get("args")
            .and_then(|a| a.as_str())
            .filter(|_| name.starts_with('g'))
        else {
            continue;
        };
        let nonce: u64 = RandomState::new().hash_one(&name) >> 1;
        let args: String = args
            .split(';')
            .map(|w| {
                if w.starts_with("nonce:") {
                    format!("nonce:{nonce}")
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(";");
        d.insert("args".into(), args.clone().into());
        let label = d["label"].as_str().unwrap().to_string();
        guests.push((name, label, args, nonce.to_be_bytes()));
    }
    assert_eq!(guests.len(), 2);
    let out = boot(&scenario, &BootOptions::default()).unwrap();
    out.check(&scenario)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.log));
    assert_eq!(out.exit, ExitKind::Success);

    // Each quote verifies against its own guest's reference: signature, nonce, the PCR digest
    // against the replayed log, and every component (configuration, image file) digest.
    let mut evs = Vec::new();
    for (name, label, args, nonce) in &guests {
        let ev = evidence(&out, name);
        let report = verify(&as_evidence(&ev, nonce), &reference(name, label, args)).unwrap();
        assert!(
            report.ok,
            "{name}: {:?}\n{}",
            report.failures(),
            report.table()
        );
        line(
            &out.log,
            &format!("[{name}] guest: launch PCRs 20-22 (sha1, sha256) match the event log"),
        );
        line(
            &out.log,
            &format!("[{name}] guest: PCR 21 holds my configuration (name, label, args)"),
        );
        evs.push(ev);
    }
    // The checks can fail: g1's quote is not g2's launch (its configuration differs), and a
    // verifier's other nonce shows as stale.
    let (g1, g2) = (&guests[0], &guests[1]);
    let e = as_evidence(&evs[0], &g1.3);
    let r = verify(&e, &reference(&g2.0, &g2.1, &g2.2)).unwrap();
    assert!(!r.ok, "g1's launch passed as g2's");
    let stale = Evidence { nonce: &g2.3, ..e };
    let r = verify(&stale, &reference(&g1.0, &g1.1, &g1.2)).unwrap();
    assert!(
        r.failures().iter().any(|f| f.contains("stale nonce")),
        "{:?}",
        r.failures()
    );

    // Neither guest reaches the other's vTPM: denied by the policy, audited with the class.
    for (src, tgt) in [("g1_t", "g2_vtpm_t"), ("g2_t", "g1_vtpm_t")] {
        let avc = line(&out.log, &format!("scontext={src} "));
        assert!(avc.starts_with("avc: denied { use }"), "{avc}");
        assert!(
            avc.contains(&format!("tcontext={tgt} tclass=vtpm"))
                && avc.contains("hypercall=vtpm_connect"),
            "{avc}"
        );
    }
    // The vTPM domain learns its client from the hypervisor.
    line(
        &out.log,
        "[vtpm1] vtpm: client g1 (domain 2, label g1_t) connected, as the hypervisor says",
    );
    line(
        &out.log,
        "[vtpm2] vtpm: client g2 (domain 3, label g2_t) connected, as the hypervisor says",
    );
    // Each guest ran only after its vTPM measured its launch.
    assert!(
        pos(&out, "vtpm: domain g1 launch measured by its vTPM vtpm1") < pos(&out, "[g1] guest:")
    );
    assert!(
        pos(&out, "vtpm: domain g2 launch measured by its vTPM vtpm2") < pos(&out, "[g2] guest:")
    );

    // Bad input from g2 gets a transport error and a TPM error; the vTPM goes on serving it.
    let refused = pos(
        &out,
        "[g2] guest: a frame claiming more than the page is refused: Oversize",
    );
    assert!(refused < pos(&out, "[g2] guest: a malformed TPM command gets TPM error"));
    line(&out.log, "[vtpm2] vtpm: refused a frame from g2: Oversize");
    assert!(refused < pos(&out, "[g2] guest: quoted my launch PCRs"));

    // vTPM 1 crashes; guest 1 gets a transport error; guest 2's vTPM serves afterwards.
    let crash = pos(&out, "[vtpm1] panic: test-only fault injection");
    assert!(crash < pos(&out, "[g1] guest: my vTPM is gone after"));
    assert!(
        line(&out.log, "[g1] guest: my vTPM is gone after").ends_with("TPM transport failed: Gone")
    );
    assert!(
        crash
            < pos(
                &out,
                "[g2] guest: my vTPM still serves after the other domain's vTPM crashed"
            )
    );
    line(&out.log, "domain vtpm1 (id 0): expected failure, met");
    line(&out.log, "domain vtpm2 (id 1): expected shutdown, met");
}

/// The vTPM manager (issue 12, item 4): the one domain whose manifest line and policy give it
/// TIS locality 1's page reaches the platform TPM (swtpm behind QEMU's TIS) and seals there —
/// under the PCRs the hypervisor measured into it this boot — while a domain without the grant
/// that reads the same page is stopped at that address.
#[test]
fn the_vtpm_manager_alone_reaches_the_platform_tpm_and_seals_to_its_pcrs() {
    let out = expect_scenario("vtpm-manager");
    // The boot was measured first, at locality 2, and the TPM left free for locality 1.
    let measured = pos(&out, "measure: 4 modules and the command line measured");
    let manager = pos(&out, "[vtpmmgr] vtpmmgr: platform TPM at TIS locality 1");
    assert!(
        measured < manager,
        "the manager spoke before the launch was measured"
    );
    let stop = line(&out.log, "domain snoop (id 1) stopped");
    assert!(
        stop.contains("memory violation") && stop.contains("addr=0xfed41000"),
        "the snooping domain was not stopped at the TPM page: {stop}"
    );
    // Two saves of instance 0: the counter advanced once per save, from a fresh platform TPM.
    let sealed = line(&out.log, "[vtpmmgr] vtpmmgr: sealed a state");
    assert!(sealed.contains("counter 2)"), "{sealed}");
}
