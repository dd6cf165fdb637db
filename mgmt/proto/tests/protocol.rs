//! The protocol's wire behaviour: every message round-trips, signatures bind every field,
//! operator lists parse or name the bad line, roles allow exactly their requests.

use warden_mgmt_proto::*;

fn signer(seed: u8) -> Signer {
    Signer::from_secret(&[seed; 32]).expect("valid scalar")
}

fn template() -> Template {
    Template {
        name: "web".into(),
        image: vec![0x7f, b'E', b'L', b'F', 1, 2, 3],
        memory_mib: 8,
        priority: 4,
        label: "guest_t".into(),
        args: "mode=fast".into(),
        build_label: None,
    }
}

fn every_request() -> Vec<Request> {
    vec![
        Request::HostInfo,
        Request::DomainList,
        Request::DomainInfo { id: 3 },
        Request::DomainCreate {
            template: "web".into(),
            name: "web1".into(),
        },
        Request::DomainPause { id: 1 },
        Request::DomainResume { id: 1 },
        Request::DomainDestroy { id: 2 },
        Request::DomainSetPriority { id: 2, priority: 9 },
        Request::TemplateAdd(template()),
        Request::TemplateList,
        Request::TemplateRm { name: "web".into() },
        Request::HostShutdown,
        Request::AuditRead { from_seq: 7 },
    ]
}

fn summary() -> DomainSummary {
    DomainSummary {
        id: 1,
        name: "web1".into(),
        label: "guest_t".into(),
        state: DomainState::Paused,
        priority: 4,
        memory_bytes: 8 << 20,
        cpu_ticks: 77,
    }
}

fn every_response() -> Vec<Response> {
    let replies = [
        Reply::HostInfo(HostInfo {
            abi_version: 0x1_0000,
            memory_total_bytes: Some(1 << 30),
            memory_free_bytes: Some(1 << 29),
            domains: 2,
            mgmt_domain: 0,
            mgmt_label: "mgmt_t".into(),
        }),
        Reply::Domains(vec![summary(), summary()]),
        Reply::Domain(summary()),
        Reply::Created { id: 5 },
        Reply::Templates(vec![TemplateSummary {
            name: "web".into(),
            image_bytes: 7,
            image_sha256: [9; 32],
            memory_mib: 8,
            priority: 4,
            label: "guest_t".into(),
            args: String::new(),
        }]),
        Reply::Done,
        Reply::Audit(vec![0xa5; 40]),
    ];
    let errors = [
        Error::Malformed,
        Error::Version { got: 2, want: 1 },
        Error::UnknownKey,
        Error::BadSignature,
        Error::Replay {
            expected: 3,
            got: 1,
        },
        Error::Forbidden {
            role: Role::Viewer,
            request: "domain pause".into(),
            needs: Role::Operator,
        },
        Error::UnknownTemplate("x".into()),
        Error::TemplateExists("x".into()),
        Error::BadTemplate("memory".into()),
        Error::NoSuchDomain(9),
        Error::Hypervisor {
            call: "pause".into(),
            status: HvStatus::Denied,
        },
        Error::Hypervisor {
            call: "pause".into(),
            status: HvStatus::Other(77),
        },
        Error::CreateFailed {
            step: "build".into(),
            status: HvStatus::InvalidArgument,
        },
        Error::Full,
        Error::Hypervisor {
            call: "unpause".into(),
            status: HvStatus::WallConflict,
        },
        Error::WallConflict {
            label: "bank_b_t".into(),
        },
    ];
    let ok = replies.into_iter().map(Ok);
    let err = errors.into_iter().map(Err);
    ok.chain(err)
        .enumerate()
        .map(|(i, result)| Response {
            seq: i as u64,
            result,
            signature: vec![i as u8; 64],
        })
        .collect()
}

fn through_frame<T: serde::Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
    let frame = encode_frame(v);
    let mut r = FrameReader::new();
    r.push(&frame);
    let body = r.next_frame().unwrap().expect("one whole frame");
    assert_eq!(r.pending(), 0);
    decode(&body).expect("decodes")
}

#[test]
fn every_request_round_trips_inside_a_signed_envelope() {
    let s = signer(1);
    let nonce = [7; NONCE_LEN];
    for (seq, req) in every_request().into_iter().enumerate() {
        let env = s.envelope(&nonce, seq as u64, postcard::to_allocvec(&req).unwrap());
        let back: Envelope = through_frame(&env);
        assert_eq!(back, env);
        assert!(verify(&s.public(), &nonce, &back), "{}", req.name());
        assert_eq!(decode::<Request>(&back.body), Ok(req));
    }
}

#[test]
fn every_response_and_the_hello_round_trip() {
    for resp in every_response() {
        assert_eq!(through_frame(&resp), resp);
    }
    let hello = Hello {
        version: VERSION,
        nonce: [3; NONCE_LEN],
        server_key: vec![2; PUBLIC_KEY_LEN],
    };
    assert_eq!(through_frame(&hello), hello);
}

#[test]
fn every_truncation_of_every_message_is_malformed() {
    let s = signer(1);
    for req in every_request() {
        let env = s.envelope(&[0; NONCE_LEN], 0, postcard::to_allocvec(&req).unwrap());
        let body = postcard::to_allocvec(&env).unwrap();
        for n in 0..body.len() {
            assert_eq!(
                decode::<Envelope>(&body[..n]),
                Err(FrameError::Malformed),
                "{} cut at {n}",
                req.name()
            );
        }
        let req_body = &env.body;
        for n in 0..req_body.len() {
            assert_eq!(
                decode::<Request>(&req_body[..n]),
                Err(FrameError::Malformed)
            );
        }
    }
    for resp in every_response() {
        let body = postcard::to_allocvec(&resp).unwrap();
        for n in 0..body.len() {
            assert_eq!(decode::<Response>(&body[..n]), Err(FrameError::Malformed));
        }
    }
}

#[test]
fn garbage_bodies_never_panic() {
    // Every 1- and 2-byte body and a few longer patterns: decoding answers, never panics.
    let mut bodies: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    bodies.extend((0..=255u8).map(|b| vec![b, 0xff]));
    bodies.push(vec![0xff; 64]);
    bodies.push(vec![0x80; 64]);
    for b in &bodies {
        let _ = decode::<Envelope>(b);
        let _ = decode::<Request>(b);
        let _ = decode::<Response>(b);
    }
    assert_eq!(
        decode::<Request>(&[200]),
        Err(FrameError::Malformed),
        "unknown request variant"
    );
}

#[test]
fn the_signature_binds_nonce_key_sequence_and_body() {
    let s = signer(1);
    let nonce = [7; NONCE_LEN];
    let env = s.envelope(
        &nonce,
        4,
        postcard::to_allocvec(&Request::DomainList).unwrap(),
    );
    assert!(verify(&s.public(), &nonce, &env));
    let tampered: Vec<(&str, Box<dyn Fn(&mut Envelope)>)> = vec![
        ("seq", Box::new(|e| e.seq += 1)),
        (
            "body",
            Box::new(|e| e.body = postcard::to_allocvec(&Request::HostShutdown).unwrap()),
        ),
        ("key", Box::new(|e| e.key = signer(2).id())),
        ("signature bit", Box::new(|e| e.signature[10] ^= 1)),
        ("short signature", Box::new(|e| e.signature.truncate(63))),
        ("empty signature", Box::new(|e| e.signature.clear())),
    ];
    for (what, change) in tampered {
        let mut e = env.clone();
        change(&mut e);
        assert!(
            !verify(&s.public(), &nonce, &e),
            "tampered {what} still verifies"
        );
    }
    assert!(
        !verify(&s.public(), &[8; NONCE_LEN], &env),
        "another connection's nonce"
    );
    assert!(
        !verify(&signer(2).public(), &nonce, &env),
        "another operator's key"
    );
}

#[test]
fn operator_lists_parse_or_name_the_bad_line() {
    let (a, b) = (signer(1), signer(2));
    let text = format!(
        "# operators\nadmin {} alice\n\n viewer {} bob \n",
        a.public_hex(),
        b.public_hex()
    );
    let ops = OperatorList::parse(&text).unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(
        ops.find(&a.id()).map(|o| (o.name.as_str(), o.role)),
        Some(("alice", Role::Admin))
    );
    assert_eq!(
        ops.find(&b.id()).map(|o| (o.name.as_str(), o.role)),
        Some(("bob", Role::Viewer))
    );
    assert!(ops.find(&signer(3).id()).is_none());
    let semi = format!(
        "operator {} carol;viewer {} dave",
        a.public_hex(),
        b.public_hex()
    );
    assert_eq!(
        OperatorList::parse(&semi)
            .unwrap()
            .find(&a.id())
            .unwrap()
            .role,
        Role::Operator
    );

    let key = a.public_hex();
    let cases: Vec<(String, OperatorsError)> = vec![
        (String::new(), OperatorsError::Empty),
        ("# nothing".into(), OperatorsError::Empty),
        (format!("admin {key}"), OperatorsError::Syntax { line: 1 }),
        (
            format!("admin {key} alice extra"),
            OperatorsError::Syntax { line: 1 },
        ),
        (
            format!("\nroot {key} alice"),
            OperatorsError::UnknownRole { line: 2 },
        ),
        (
            "admin 02zz alice".into(),
            OperatorsError::BadKey { line: 1 },
        ),
        (
            format!("admin {} alice", &key[..64]),
            OperatorsError::BadKey { line: 1 },
        ),
        (
            format!("admin 05{} alice", &key[2..]),
            OperatorsError::BadKey { line: 1 },
        ),
        (
            format!("admin {key} a\nviewer {key} b"),
            OperatorsError::DuplicateKey { line: 2 },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(OperatorList::parse(&text), Err(want.clone()), "{text:?}");
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn roles_allow_exactly_their_requests() {
    // (request, least role): the table in docs/mgmt.md.
    let table = [
        ("host info", Role::Viewer),
        ("domain list", Role::Viewer),
        ("domain info", Role::Viewer),
        ("domain create", Role::Admin),
        ("domain pause", Role::Operator),
        ("domain resume", Role::Operator),
        ("domain destroy", Role::Admin),
        ("domain set-priority", Role::Operator),
        ("template add", Role::Admin),
        ("template list", Role::Viewer),
        ("template rm", Role::Admin),
        ("host shutdown", Role::Admin),
        ("host audit", Role::Admin),
    ];
    let reqs = every_request();
    assert_eq!(reqs.len(), table.len());
    for (req, (name, least)) in reqs.iter().zip(table) {
        assert_eq!(req.name(), name);
        for role in Role::ALL {
            assert_eq!(
                role.allows(req),
                role >= least,
                "{} may {name}?",
                role.name()
            );
        }
    }
}

#[test]
fn errors_name_the_deciding_check() {
    let denied = Error::Hypervisor {
        call: "pause".into(),
        status: HvStatus::Denied,
    };
    assert!(
        denied.to_string().contains("denied by the MAC policy"),
        "{denied}"
    );
    let forbidden = Error::Forbidden {
        role: Role::Viewer,
        request: "domain pause".into(),
        needs: Role::Operator,
    };
    assert_eq!(
        forbidden.to_string(),
        "forbidden: role `viewer` may not `domain pause` (needs `operator`)"
    );
    assert!(
        Error::Replay {
            expected: 2,
            got: 0
        }
        .to_string()
        .contains("replayed")
    );
    assert!(Error::UnknownKey.to_string().contains("unknown key"));
}
