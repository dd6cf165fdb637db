//! The management server against a fake hypervisor: authentication, sequencing, roles,
//! templates and the create sequence, each refusal leaving everything else unchanged.

use warden_mgmt_proto::*;
use warden_mgmt_server::{Config, Hypervisor, Nonces, Server, Session};

/// A hypervisor in memory, with a policy: labels it refuses at transition, and a Chinese Wall
/// (two labels that may not run at once) checked at unpause.
#[derive(Debug, Default)]
struct FakeHv {
    domains: Vec<DomainSummary>,
    denied_labels: Vec<&'static str>,
    wall: Option<(&'static str, &'static str)>,
    /// Calls that answer `Denied` whatever their arguments.
    denied_calls: Vec<&'static str>,
    calls: Vec<String>,
    /// The label each `create` asked for, in order.
    built_under: Vec<String>,
    /// The wall also holds the build labels (`<side>_build`), so it refuses at create.
    wall_at_create: bool,
    next_id: u32,
    shut_down: bool,
}

impl FakeHv {
    fn with_guests() -> FakeHv {
        let mut hv = FakeHv {
            next_id: 3,
            ..FakeHv::default()
        };
        for (id, name, label) in [
            (0, "mgmt", "mgmt_t"),
            (1, "g1", "guest_t"),
            (2, "g2", "guest_t"),
        ] {
            hv.domains.push(DomainSummary {
                id,
                name: name.into(),
                label: label.into(),
                state: DomainState::Runnable,
                priority: 5,
                memory_bytes: 4 << 20,
                cpu_ticks: 10,
            });
        }
        hv
    }

    fn find(&mut self, id: u32) -> Result<&mut DomainSummary, HvStatus> {
        self.domains
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or(HvStatus::InvalidArgument)
    }

    /// Whether a domain of `label` may start: not while the other side of the wall runs.
    fn wall_check(&self, label: &str) -> Result<(), HvStatus> {
        if let Some((a, b)) = self.wall {
            let other = if label == a {
                b
            } else if label == b {
                a
            } else {
                ""
            };
            if self
                .domains
                .iter()
                .any(|d| d.label == other && d.state == DomainState::Runnable)
            {
                return Err(HvStatus::WallConflict);
            }
        }
        Ok(())
    }

    fn gate(&mut self, call: &'static str) -> Result<(), HvStatus> {
        self.calls.push(call.into());
        if self.denied_calls.contains(&call) {
            Err(HvStatus::Denied)
        } else {
            Ok(())
        }
    }
}

impl Hypervisor for FakeHv {
    fn host_info(&mut self) -> Result<HostInfo, HvStatus> {
        self.gate("physinfo")?;
        Ok(HostInfo {
            abi_version: 0x1_0000,
            memory_total_bytes: Some(512 << 20),
            memory_free_bytes: Some(400 << 20),
            domains: self.domains.len() as u32,
            mgmt_domain: 0,
            mgmt_label: "mgmt_t".into(),
        })
    }
    fn list(&mut self) -> Result<Vec<DomainSummary>, HvStatus> {
        self.gate("list")?;
        Ok(self.domains.clone())
    }
    fn info(&mut self, id: u32) -> Result<DomainSummary, HvStatus> {
        self.gate("getinfo")?;
        self.find(id).cloned()
    }
    fn create(
        &mut self,
        name: &str,
        build_label: &str,
        memory_mib: u32,
        priority: u8,
        _args: &str,
    ) -> Result<u32, HvStatus> {
        self.gate("create")?;
        self.built_under.push(build_label.into());
        if self.wall_at_create {
            let side = build_label.strip_suffix("_build").unwrap_or("");
            self.wall_check(side)?;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.domains.push(DomainSummary {
            id,
            name: name.into(),
            label: build_label.into(),
            state: DomainState::Building,
            priority,
            memory_bytes: u64::from(memory_mib) << 20,
            cpu_ticks: 0,
        });
        Ok(id)
    }
    fn build(&mut self, id: u32, image: &[u8]) -> Result<(), HvStatus> {
        self.gate("build")?;
        if image.len() < 8 {
            return Err(HvStatus::InvalidArgument);
        }
        self.find(id).map(|d| d.state = DomainState::Paused)
    }
    fn transition(&mut self, id: u32, label: &str) -> Result<(), HvStatus> {
        self.gate("transition")?;
        if self.denied_labels.contains(&label) {
            return Err(HvStatus::Denied);
        }
        self.find(id).map(|d| d.label = label.into())
    }
    fn unpause(&mut self, id: u32) -> Result<(), HvStatus> {
        self.gate("unpause")?;
        let label = self.find(id)?.label.clone();
        self.wall_check(&label)?;
        self.find(id).map(|d| d.state = DomainState::Runnable)
    }
    fn pause(&mut self, id: u32) -> Result<(), HvStatus> {
        self.gate("pause")?;
        self.find(id).map(|d| d.state = DomainState::Paused)
    }
    fn set_priority(&mut self, id: u32, priority: u8) -> Result<(), HvStatus> {
        self.gate("setpriority")?;
        self.find(id).map(|d| d.priority = priority)
    }
    fn destroy(&mut self, id: u32) -> Result<(), HvStatus> {
        self.gate("destroy")?;
        self.find(id)?;
        self.domains.retain(|d| d.id != id);
        Ok(())
    }
    fn host_shutdown(&mut self) -> Result<(), HvStatus> {
        self.gate("shutdown")?;
        self.shut_down = true;
        Ok(())
    }

    fn audit_read(&mut self, from_seq: u64) -> Result<Vec<u8>, HvStatus> {
        self.gate("audit_read")?;
        Ok(from_seq.to_le_bytes().to_vec())
    }
}

fn key(seed: u8) -> Signer {
    Signer::from_secret(&[seed; 32]).unwrap()
}

const ADMIN: u8 = 1;
const OPERATOR: u8 = 2;
const VIEWER: u8 = 3;
const STRANGER: u8 = 9;
/// The management domain's own response key.
const RESPONDER: u8 = 11;

/// A server with three operators and a connected session.
struct Rig {
    server: Server<FakeHv>,
    nonces: Nonces,
    session: Session,
    nonce: [u8; NONCE_LEN],
    seq: u64,
}

impl Rig {
    fn new(hv: FakeHv) -> Rig {
        let ops = format!(
            "admin {} alice\noperator {} olga\nviewer {} victor",
            key(ADMIN).public_hex(),
            key(OPERATOR).public_hex(),
            key(VIEWER).public_hex()
        );
        let config = Config {
            operators: OperatorList::parse(&ops).unwrap(),
            build_label: "build_t".into(),
            template_budget: 1 << 20,
            response_key: key(RESPONDER),
        };
        let mut nonces = Nonces::new([42; 32]);
        let session = Session::new(&mut nonces);
        let nonce = session.nonce();
        Rig {
            server: Server::new(config, hv),
            nonces,
            session,
            nonce,
            seq: 0,
        }
    }

    fn frame(&self, who: u8, seq: u64, req: &Request) -> Vec<u8> {
        let env = key(who).envelope(&self.nonce, seq, postcard::to_allocvec(req).unwrap());
        postcard::to_allocvec(&env).unwrap()
    }

    /// One frame's response, which must be signed by the server's key for this connection.
    fn raw(&mut self, frame: &[u8]) -> Response {
        let r = self.session.handle(&mut self.server, frame).response;
        assert!(
            verify_response(&key(RESPONDER).public(), &self.nonce, &r),
            "unsigned response {r:?}"
        );
        r
    }

    /// Sends `req` signed by `who` with the session's next sequence number.
    fn ask(&mut self, who: u8, req: Request) -> Result<Reply, Error> {
        let f = self.frame(who, self.seq, &req);
        let r = self.raw(&f);
        assert_eq!(r.seq, self.seq);
        if !matches!(
            r.result,
            Err(Error::UnknownKey | Error::BadSignature | Error::Replay { .. })
        ) {
            self.seq += 1;
        }
        r.result
    }

    fn hv(&mut self) -> &mut FakeHv {
        self.server.hypervisor()
    }

    fn state(&mut self, id: u32) -> Option<DomainState> {
        self.hv()
            .domains
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.state)
    }
}

fn template(name: &str, label: &str) -> Template {
    Template {
        name: name.into(),
        image: b"\x7fELF\x02\x01\x01\0 image".to_vec(),
        memory_mib: 4,
        priority: 6,
        label: label.into(),
        args: "n=1".into(),
        build_label: None,
    }
}

#[test]
fn each_session_gets_a_fresh_nonce() {
    let mut nonces = Nonces::new([1; 32]);
    let a: Vec<_> = (0..50).map(|_| Session::new(&mut nonces).nonce()).collect();
    for i in 0..a.len() {
        for j in 0..i {
            assert_ne!(a[i], a[j]);
        }
    }
    assert_ne!(
        Session::new(&mut Nonces::new([2; 32])).nonce(),
        a[0],
        "another boot's seed"
    );
    let rig = Rig::new(FakeHv::with_guests());
    let hello = Session::new(&mut nonces).hello(&rig.server);
    assert_eq!(hello.version, VERSION);
    assert_eq!(
        hello.server_key,
        key(RESPONDER).public_sec1(),
        "the hello names the response key"
    );
}

#[test]
fn reads_answer_with_the_hypervisor_data() {
    let mut rig = Rig::new(FakeHv::with_guests());
    let Ok(Reply::HostInfo(h)) = rig.ask(VIEWER, Request::HostInfo) else {
        panic!()
    };
    assert_eq!((h.domains, h.mgmt_label.as_str()), (3, "mgmt_t"));
    let Ok(Reply::Domains(ds)) = rig.ask(VIEWER, Request::DomainList) else {
        panic!()
    };
    assert_eq!(
        ds.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["mgmt", "g1", "g2"]
    );
    let Ok(Reply::Domain(d)) = rig.ask(VIEWER, Request::DomainInfo { id: 2 }) else {
        panic!()
    };
    assert_eq!(d.name, "g2");
    assert_eq!(
        rig.ask(VIEWER, Request::DomainInfo { id: 77 }),
        Err(Error::NoSuchDomain(77))
    );
}

#[test]
fn unknown_key_bad_signature_and_replay_are_refused_and_the_session_keeps_serving() {
    let mut rig = Rig::new(FakeHv::with_guests());
    assert_eq!(
        rig.ask(STRANGER, Request::DomainList),
        Err(Error::UnknownKey)
    );
    // A valid request; then the same bytes again: a replay.
    let first = rig.frame(ADMIN, 0, &Request::DomainPause { id: 1 });
    assert_eq!(rig.raw(&first).result, Ok(Reply::Done));
    rig.hv().domains[1].state = DomainState::Runnable;
    assert_eq!(
        rig.raw(&first).result,
        Err(Error::Replay {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(
        rig.state(1),
        Some(DomainState::Runnable),
        "the replay changed nothing"
    );
    // Skipping ahead is refused too (no gaps: a withheld request cannot be played later).
    let ahead = rig.frame(ADMIN, 5, &Request::DomainList);
    assert_eq!(
        rig.raw(&ahead).result,
        Err(Error::Replay {
            expected: 1,
            got: 5
        })
    );
    // A request signed for another connection's nonce does not verify here.
    let mut other = Rig::new(FakeHv::with_guests());
    other.session = Session::new(&mut other.nonces);
    other.nonce = other.session.nonce();
    let foreign = other.frame(ADMIN, 1, &Request::DomainPause { id: 1 });
    assert_eq!(rig.raw(&foreign).result, Err(Error::BadSignature));
    // A signature by another operator's key under the admin's key id.
    let mut env = key(VIEWER).envelope(
        &rig.nonce,
        1,
        postcard::to_allocvec(&Request::HostShutdown).unwrap(),
    );
    env.key = key(ADMIN).id();
    assert_eq!(
        rig.raw(&postcard::to_allocvec(&env).unwrap()).result,
        Err(Error::BadSignature)
    );
    assert!(!rig.hv().shut_down);
    // Malformed frames: garbage, truncations, trailing bytes.
    let good = rig.frame(ADMIN, 1, &Request::DomainList);
    for bad in [
        vec![],
        vec![0xff; 40],
        good[..good.len() - 1].to_vec(),
        [good.clone(), vec![0]].concat(),
    ] {
        let r = rig.raw(&bad);
        assert_eq!(r.result, Err(Error::Malformed), "{bad:?}");
    }
    // After all that, the session still serves the next request in sequence.
    rig.seq = 1;
    assert!(matches!(
        rig.ask(ADMIN, Request::DomainList),
        Ok(Reply::Domains(_))
    ));
    assert_eq!(rig.hv().calls.iter().filter(|c| *c == "pause").count(), 1);
}

#[test]
fn a_signed_body_that_is_not_a_request_is_malformed_and_consumes_its_sequence() {
    let mut rig = Rig::new(FakeHv::with_guests());
    let env = key(ADMIN).envelope(&rig.nonce, 0, vec![200, 1, 2]);
    assert_eq!(
        rig.raw(&postcard::to_allocvec(&env).unwrap()).result,
        Err(Error::Malformed)
    );
    rig.seq = 1;
    assert!(rig.ask(ADMIN, Request::DomainList).is_ok());
}

#[test]
fn another_protocol_version_is_refused() {
    let mut rig = Rig::new(FakeHv::with_guests());
    let mut env = key(ADMIN).envelope(
        &rig.nonce,
        0,
        postcard::to_allocvec(&Request::DomainList).unwrap(),
    );
    env.version = 1;
    assert_eq!(
        rig.raw(&postcard::to_allocvec(&env).unwrap()).result,
        Err(Error::Version { got: 1, want: 2 }),
        "version 1 clients cannot check responses"
    );
}

#[test]
fn roles_are_enforced_before_the_hypervisor_is_asked() {
    let mut rig = Rig::new(FakeHv::with_guests());
    let forbidden = |role, request: &str, needs| {
        Err(Error::Forbidden {
            role,
            request: request.into(),
            needs,
        })
    };
    assert_eq!(
        rig.ask(VIEWER, Request::DomainPause { id: 1 }),
        forbidden(Role::Viewer, "domain pause", Role::Operator)
    );
    assert_eq!(
        rig.ask(OPERATOR, Request::DomainDestroy { id: 1 }),
        forbidden(Role::Operator, "domain destroy", Role::Admin)
    );
    assert_eq!(
        rig.ask(OPERATOR, Request::HostShutdown),
        forbidden(Role::Operator, "host shutdown", Role::Admin)
    );
    assert_eq!(
        rig.ask(OPERATOR, Request::AuditRead { from_seq: 0 }),
        forbidden(Role::Operator, "host audit", Role::Admin)
    );
    assert!(!rig.hv().calls.iter().any(|c| c == "audit_read"));
    assert_eq!(
        rig.ask(VIEWER, Request::TemplateAdd(template("t", "guest_t"))),
        forbidden(Role::Viewer, "template add", Role::Admin)
    );
    assert!(
        rig.hv().calls.is_empty(),
        "no hypercall for a refused request: {:?}",
        rig.hv().calls
    );
    // The admin's read reaches the hypervisor with its starting sequence number.
    assert_eq!(
        rig.ask(ADMIN, Request::AuditRead { from_seq: 9 }),
        Ok(Reply::Audit(9u64.to_le_bytes().to_vec()))
    );
    assert_eq!(rig.state(1), Some(DomainState::Runnable));
    assert_eq!(
        rig.ask(OPERATOR, Request::DomainPause { id: 1 }),
        Ok(Reply::Done)
    );
    assert_eq!(rig.state(1), Some(DomainState::Paused));
    assert_eq!(
        rig.ask(OPERATOR, Request::DomainResume { id: 1 }),
        Ok(Reply::Done)
    );
    assert_eq!(
        rig.ask(OPERATOR, Request::DomainSetPriority { id: 1, priority: 9 }),
        Ok(Reply::Done)
    );
    assert_eq!(rig.hv().domains[1].priority, 9);
    assert_eq!(
        rig.ask(ADMIN, Request::DomainDestroy { id: 2 }),
        Ok(Reply::Done)
    );
    assert_eq!(
        rig.ask(ADMIN, Request::DomainDestroy { id: 2 }),
        Err(Error::NoSuchDomain(2))
    );
    assert_eq!(rig.ask(ADMIN, Request::HostShutdown), Ok(Reply::Done));
    assert!(rig.hv().shut_down);
}

#[test]
fn a_policy_denial_is_reported_as_such() {
    let mut hv = FakeHv::with_guests();
    hv.denied_calls = vec!["pause"];
    let mut rig = Rig::new(hv);
    let r = rig.ask(ADMIN, Request::DomainPause { id: 1 });
    assert_eq!(
        r,
        Err(Error::Hypervisor {
            call: "pause".into(),
            status: HvStatus::Denied
        })
    );
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("denied by the MAC policy")
    );
}

#[test]
fn templates_add_list_remove_and_refuse_bad_ones() {
    let mut rig = Rig::new(FakeHv::with_guests());
    assert_eq!(
        rig.ask(ADMIN, Request::TemplateAdd(template("web", "guest_t"))),
        Ok(Reply::Done)
    );
    assert_eq!(
        rig.ask(ADMIN, Request::TemplateAdd(template("web", "guest_t"))),
        Err(Error::TemplateExists("web".into()))
    );
    let bad: Vec<(&str, Template)> = vec![
        (
            "empty name",
            Template {
                name: String::new(),
                ..template("x", "guest_t")
            },
        ),
        ("name with space", template("a b", "guest_t")),
        ("long name", template(&"n".repeat(32), "guest_t")),
        ("bad label", template("x", "guest t")),
        (
            "bad build label",
            Template {
                build_label: Some("build t".into()),
                ..template("x", "guest_t")
            },
        ),
        (
            "memory",
            Template {
                memory_mib: 2,
                ..template("x", "guest_t")
            },
        ),
        (
            "memory",
            Template {
                memory_mib: 257,
                ..template("x", "guest_t")
            },
        ),
        (
            "args",
            Template {
                args: "a".repeat(128),
                build_label: None,
                ..template("x", "guest_t")
            },
        ),
        (
            "args",
            Template {
                args: "a\nb".into(),
                build_label: None,
                ..template("x", "guest_t")
            },
        ),
        (
            "image",
            Template {
                image: b"MZ".to_vec(),
                ..template("x", "guest_t")
            },
        ),
        (
            "image",
            Template {
                image: vec![],
                ..template("x", "guest_t")
            },
        ),
    ];
    for (what, t) in bad {
        assert!(
            matches!(
                rig.ask(ADMIN, Request::TemplateAdd(t)),
                Err(Error::BadTemplate(_))
            ),
            "{what}"
        );
    }
    let big = Template {
        image: [b"\x7fELF".as_slice(), &vec![0; 1 << 20]].concat(),
        ..template("big", "guest_t")
    };
    assert_eq!(rig.ask(ADMIN, Request::TemplateAdd(big)), Err(Error::Full));
    let Ok(Reply::Templates(ts)) = rig.ask(VIEWER, Request::TemplateList) else {
        panic!()
    };
    assert_eq!(ts.len(), 1);
    assert_eq!(
        (ts[0].name.as_str(), ts[0].image_bytes, ts[0].memory_mib),
        ("web", 14, 4)
    );
    assert_eq!(
        rig.ask(
            ADMIN,
            Request::TemplateRm {
                name: "nope".into()
            }
        ),
        Err(Error::UnknownTemplate("nope".into()))
    );
    assert_eq!(
        rig.ask(ADMIN, Request::TemplateRm { name: "web".into() }),
        Ok(Reply::Done)
    );
    let Ok(Reply::Templates(ts)) = rig.ask(VIEWER, Request::TemplateList) else {
        panic!()
    };
    assert!(ts.is_empty());
    for i in 0..16 {
        assert_eq!(
            rig.ask(
                ADMIN,
                Request::TemplateAdd(template(&format!("t{i}"), "guest_t"))
            ),
            Ok(Reply::Done)
        );
    }
    assert_eq!(
        rig.ask(ADMIN, Request::TemplateAdd(template("t16", "guest_t"))),
        Err(Error::Full)
    );
}

#[test]
fn create_runs_the_whole_sequence_and_undoes_a_partial_domain() {
    let mut hv = FakeHv::with_guests();
    hv.denied_labels = vec!["secret_t"];
    hv.wall = Some(("bank_a", "bank_b"));
    let mut rig = Rig::new(hv);
    for (n, l) in [
        ("web", "guest_t"),
        ("forbidden", "secret_t"),
        ("a", "bank_a"),
        ("b", "bank_b"),
    ] {
        // The wall's two sides each have their own build label (one run label per build label).
        let t = Template {
            build_label: l.starts_with("bank").then(|| format!("{l}_build")),
            ..template(n, l)
        };
        assert_eq!(rig.ask(ADMIN, Request::TemplateAdd(t)), Ok(Reply::Done));
    }
    assert_eq!(
        rig.ask(
            ADMIN,
            Request::DomainCreate {
                template: "web".into(),
                name: "web1".into()
            }
        ),
        Ok(Reply::Created { id: 3 })
    );
    assert_eq!(rig.hv().calls, ["create", "build", "transition", "unpause"]);
    let d = rig.hv().domains.last().cloned().unwrap();
    assert_eq!(
        (
            d.name.as_str(),
            d.label.as_str(),
            d.state,
            d.priority,
            d.memory_bytes
        ),
        ("web1", "guest_t", DomainState::Runnable, 6, 4 << 20)
    );

    // The policy refuses the run label: the partial domain is destroyed, nothing else changes.
    let before = rig.hv().domains.clone();
    let r = rig.ask(
        ADMIN,
        Request::DomainCreate {
            template: "forbidden".into(),
            name: "f".into(),
        },
    );
    assert_eq!(
        r,
        Err(Error::CreateFailed {
            step: "transition".into(),
            status: HvStatus::Denied
        })
    );
    assert_eq!(rig.hv().domains, before);
    assert_eq!(rig.hv().calls.last().map(String::as_str), Some("destroy"));

    // A Chinese Wall conflict at unpause is reported to the operator.
    assert!(
        rig.ask(
            ADMIN,
            Request::DomainCreate {
                template: "a".into(),
                name: "a1".into()
            }
        )
        .is_ok()
    );
    let before = rig.hv().domains.clone();
    let r = rig.ask(
        ADMIN,
        Request::DomainCreate {
            template: "b".into(),
            name: "b1".into(),
        },
    );
    assert_eq!(
        r,
        Err(Error::WallConflict {
            label: "bank_b".into()
        })
    );
    assert_eq!(rig.hv().built_under[2..], ["bank_a_build", "bank_b_build"]);
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("Chinese Wall conflict") && msg.contains("`bank_b`"),
        "{msg}"
    );
    assert_eq!(rig.hv().domains, before);
    assert_eq!(rig.hv().calls.last().map(String::as_str), Some("destroy"));
    // Once the holder has ended, the other side starts.
    let a1 = before.iter().find(|d| d.name == "a1").unwrap().id;
    assert_eq!(
        rig.ask(ADMIN, Request::DomainDestroy { id: a1 }),
        Ok(Reply::Done)
    );
    assert!(matches!(
        rig.ask(
            ADMIN,
            Request::DomainCreate {
                template: "b".into(),
                name: "b2".into(),
            },
        ),
        Ok(Reply::Created { .. })
    ));

    assert_eq!(
        rig.ask(
            ADMIN,
            Request::DomainCreate {
                template: "zzz".into(),
                name: "z".into()
            }
        ),
        Err(Error::UnknownTemplate("zzz".into()))
    );
    assert!(matches!(
        rig.ask(
            ADMIN,
            Request::DomainCreate {
                template: "web".into(),
                name: "bad name".into()
            }
        ),
        Err(Error::BadTemplate(_))
    ));
}

/// The wall holds the build labels too: the hypervisor refuses the other side at create, and
/// the operator gets the same typed wall error, naming the template's run label.
#[test]
fn a_wall_refusal_at_create_is_reported_as_a_wall_conflict() {
    let mut hv = FakeHv::with_guests();
    hv.wall = Some(("red", "blue"));
    hv.wall_at_create = true;
    let mut rig = Rig::new(hv);
    for l in ["red", "blue"] {
        let t = Template {
            build_label: Some(format!("{l}_build")),
            ..template(l, l)
        };
        assert_eq!(rig.ask(ADMIN, Request::TemplateAdd(t)), Ok(Reply::Done));
    }
    let create = |rig: &mut Rig, t: &str, n: &str| {
        rig.ask(
            ADMIN,
            Request::DomainCreate {
                template: t.into(),
                name: n.into(),
            },
        )
    };
    let Ok(Reply::Created { id: r1 }) = create(&mut rig, "red", "r1") else {
        panic!("red refused")
    };
    let before = rig.hv().domains.clone();
    let r = create(&mut rig, "blue", "b1");
    assert_eq!(
        r,
        Err(Error::WallConflict {
            label: "blue".into()
        })
    );
    assert_eq!(rig.hv().calls.last().map(String::as_str), Some("create"));
    assert_eq!(rig.hv().domains, before);
    assert_eq!(
        rig.ask(ADMIN, Request::DomainDestroy { id: r1 }),
        Ok(Reply::Done)
    );
    assert!(matches!(
        create(&mut rig, "blue", "b2"),
        Ok(Reply::Created { .. })
    ));
}

#[test]
fn a_create_the_hypervisor_refuses_outright_leaves_no_domain() {
    let mut hv = FakeHv::with_guests();
    hv.denied_calls = vec!["create"];
    let mut rig = Rig::new(hv);
    rig.ask(ADMIN, Request::TemplateAdd(template("web", "guest_t")))
        .unwrap();
    let r = rig.ask(
        ADMIN,
        Request::DomainCreate {
            template: "web".into(),
            name: "w".into(),
        },
    );
    assert_eq!(
        r,
        Err(Error::CreateFailed {
            step: "create".into(),
            status: HvStatus::Denied
        })
    );
    assert_eq!(rig.hv().domains.len(), 3);
}

/// Every response is signed for its connection and request: the client's check refuses one
/// byte changed in the result, the same response on another connection, under another
/// sequence number, or signed by any other key.
#[test]
fn responses_are_signed_for_their_connection_and_request() {
    let mut rig = Rig::new(FakeHv::with_guests());
    let f = rig.frame(VIEWER, 0, &Request::DomainList);
    let r = rig.raw(&f);
    assert!(matches!(r.result, Ok(Reply::Domains(_))));
    let server = key(RESPONDER).public();
    assert!(verify_response(&server, &rig.nonce, &r));
    let mut other = Rig::new(FakeHv::with_guests());
    other.session = Session::new(&mut other.nonces);
    assert!(
        !verify_response(&server, &other.session.nonce(), &r),
        "another connection"
    );
    let mut moved = r.clone();
    moved.seq = 1;
    assert!(
        !verify_response(&server, &rig.nonce, &moved),
        "another request"
    );
    let mut changed = r.clone();
    if let Ok(Reply::Domains(ds)) = &mut changed.result {
        ds[0].priority ^= 1;
    }
    assert!(
        !verify_response(&server, &rig.nonce, &changed),
        "a changed result"
    );
    let forged = key(ADMIN).response(&rig.nonce, r.seq, r.result.clone());
    assert!(
        !verify_response(&server, &rig.nonce, &forged),
        "another key"
    );
    let mut bad = r.clone();
    bad.signature.truncate(10);
    assert!(
        !verify_response(&server, &rig.nonce, &bad),
        "a malformed signature"
    );
    // Refusals are signed too: an unreadable frame's answer as much as a role refusal.
    let junk = rig.raw(&[0xff; 5]);
    assert_eq!(junk.result, Err(Error::Malformed));
}
