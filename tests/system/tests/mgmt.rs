//! The management plane end to end: the management domain owns the virtio-net card, and the
//! real `wardenctl` drives it through QEMU's loopback-only forward with operator keys it
//! generated: reads work, a viewer cannot pause, an unknown key, a replayed request, a request
//! signed for another connection and malformed frames are refused while the domain keeps
//! serving; templates are stored, three domains are created from two of them, one is paused
//! (its progress stops while another's goes on) and resumed, one re-prioritised (its counter
//! then outruns its equal peer's), one destroyed (its memory returns), a template with a
//! forbidden label is refused at the transition and its audited denial read back with
//! `wardenctl host audit`; an admin's `host shutdown` ends the run. Responses are signed with the management domain's
//! response key, which `wardenctl` pins: a proxy that changes one byte of a response, or
//! replays another connection's response, is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_mgmt_proto::{Error, Reply, Request, Response, encode_frame};
use warden_rig::{BootOptions, Scenario, boot, host_tool};
use wardenctl::mgmt::{Client, ServerKey};

struct Ctl {
    bin: PathBuf,
    dir: PathBuf,
    addr: String,
    /// The management domain's response key, as it printed it at boot.
    server_key: String,
}

impl Ctl {
    fn run(&self, key: &str, args: &[&str]) -> Output {
        self.run_via(&self.addr, key, args)
    }

    /// Runs `wardenctl` against `addr` (the management domain, or a proxy in front of it).
    fn run_via(&self, addr: &str, key: &str, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .arg("--connect")
            .arg(addr)
            .arg("--server-key")
            .arg(&self.server_key)
            .arg("--key")
            .arg(self.dir.join(format!("{key}.key")))
            .env("WARDEN_KEY_PASSPHRASE", "test passphrase")
            .output()
            .expect("wardenctl runs")
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, key: &str, args: &[&str]) -> String {
        let o = self.run(key, args);
        assert!(
            o.status.success(),
            "wardenctl {args:?} as {key}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a command the server must refuse (exit 1); its stderr.
    fn refused(&self, key: &str, args: &[&str]) -> String {
        let o = self.run(key, args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(1),
            "wardenctl {args:?} as {key} should be refused: {err}"
        );
        err
    }
}

fn keygen(bin: &Path, dir: &Path, name: &str) -> String {
    let o = Command::new(bin)
        .args(["key", "gen", "--name", name, "--out"])
        .arg(dir.join(format!("{name}.key")))
        .env("WARDEN_KEY_PASSPHRASE", "test passphrase")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn wardenctl_drives_the_management_domain_over_the_network() {
    let bin = host_tool("wardenctl").unwrap();
    let dir = std::env::temp_dir().join(format!("warden-mgmt-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys: Vec<String> = ["alice", "olga", "victor", "mallory"]
        .iter()
        .map(|n| keygen(&bin, &dir, n))
        .collect();

    let mut scenario = Scenario::load("mgmt").unwrap();
    let args = format!(
        "port:7000;admin/{}/alice;operator/{}/olga;viewer/{}/victor",
        keys[0], keys[1], keys[2]
    );
    scenario.domain[0].insert("args".into(), toml::Value::String(args));
    let port = warden_rig::qemu::free_port().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let opts = BootOptions {
        host_port: Some(port),
        on_line: Some(Arc::new(move |l: &str| {
            let _ = tx.lock().unwrap().send(l.to_string());
        })),
        ..BootOptions::default()
    };
    let sc = scenario.clone();
    let run = std::thread::spawn(move || boot(&sc, &opts));
    let deadline = Instant::now() + Duration::from_secs(scenario.timeout_secs);
    let mut server_key = None;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the management domain listens");
        assert!(!line.contains("FATAL") && !line.contains("panic"), "{line}");
        if let Some(k) = line.split("mgmt: response key ").nth(1) {
            server_key = Some(k.trim().to_string());
        }
        if line.contains("mgmt: listening") {
            break;
        }
    }
    let ctl = Ctl {
        bin,
        dir: dir.clone(),
        addr: format!("127.0.0.1:{port}"),
        server_key: server_key.expect("the management domain prints its response key"),
    };
    let pin = ServerKey::parse_hex(&ctl.server_key).unwrap();

    // Reads, as the least role: tables and JSON.
    let info = ctl.ok("victor", &["host", "info"]);
    assert!(
        info.contains("abi version      1.0")
            && info.contains("management       domain 0 (mgmt_t)"),
        "{info}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ctl.ok("victor", &["host", "info", "--json"])).unwrap();
    assert_eq!(json["HostInfo"]["mgmt_label"], "mgmt_t");
    let list = ctl.ok("victor", &["domain", "list"]);
    assert!(
        list.lines()
            .any(|l| l.contains(" mgmt ") && l.contains("mgmt_t") && l.contains("64 MiB")),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ctl.ok("victor", &["domain", "list", "--json"])).unwrap();
    assert_eq!(json["Domains"][0]["name"], "mgmt");
    assert!(json["Domains"][0]["cpu_ticks"].as_u64().unwrap() > 0);

    // Roles: a viewer may not pause; the refusal names the role check.
    let e = ctl.refused("victor", &["domain", "pause", "0"]);
    assert!(
        e.contains("forbidden: role `viewer` may not `domain pause` (needs `operator`)"),
        "{e}"
    );
    let image = warden_rig::images().unwrap().image("printer").unwrap();
    let image = image.to_str().unwrap();
    let e = ctl.refused(
        "olga",
        &[
            "template", "add", "--name", "t", "--label", "guest_t", "--image", image,
        ],
    );
    assert!(e.contains("role `operator` may not `template add`"), "{e}");
    // An unknown key.
    let e = ctl.refused("mallory", &["host", "info"]);
    assert!(e.contains("unknown key"), "{e}");

    // Raw frames on one connection: malformed, replayed, signed for another connection.
    let victor = wardenctl::keyfile::open(
        &std::fs::read_to_string(dir.join("victor.key")).unwrap(),
        b"test passphrase",
    )
    .unwrap();
    let mut c = Client::connect(&ctl.addr, &pin).unwrap();
    let r = c.raw(&[3, 0, 0, 0, 0xff, 0xff, 0xff]).unwrap();
    assert_eq!(r.result, Err(Error::Malformed));
    let env = c.envelope(&victor, &Request::DomainList);
    let frame = encode_frame(&env);
    assert!(matches!(
        c.raw(&frame).unwrap().result,
        Ok(Reply::Domains(_))
    ));
    let replay: Response = c.raw(&frame).unwrap();
    assert_eq!(
        replay.result,
        Err(Error::Replay {
            expected: 1,
            got: 0
        })
    );
    let other = Client::connect(&ctl.addr, &pin).unwrap();
    let foreign = other.envelope(&victor, &Request::HostInfo);
    drop(other);
    let mut f2 = foreign.clone();
    f2.seq = 1;
    assert_eq!(
        c.raw(&encode_frame(&f2)).unwrap().result,
        Err(Error::BadSignature)
    );
    drop(c);
    // A frame whose length prefix is absurd: refused, that connection closed, the server lives.
    let mut c = Client::connect(&ctl.addr, &pin).unwrap();
    assert_eq!(
        c.raw(&u32::MAX.to_le_bytes()).unwrap().result,
        Err(Error::Malformed)
    );
    drop(c);

    // Responses are authenticated: through a proxy that passes requests on untouched but
    // changes one byte of each response (the last byte of the result) or hands a later
    // connection the first connection's response, wardenctl refuses the answer; an honest
    // proxy changes nothing; a wrong pin is refused at the hello.
    for (mode, want) in [
        (Tamper::None, None),
        (Tamper::FlipByte, Some("response refused")),
        (Tamper::ReplayFirst, Some("response refused")),
    ] {
        let proxy = Proxy::start(&ctl.addr, mode);
        for round in 0..2 {
            let o = ctl.run_via(&proxy.addr, "victor", &["host", "info"]);
            let err = String::from_utf8_lossy(&o.stderr);
            match want {
                // The replaying proxy passes its first connection through.
                Some(why) if mode != Tamper::ReplayFirst || round == 1 => {
                    assert_eq!(o.status.code(), Some(2), "{mode:?}: {err}");
                    assert!(err.contains(why), "{mode:?}: {err}");
                }
                _ => assert!(o.status.success(), "{mode:?} round {round}: {err}"),
            }
        }
    }
    let wrong = Ctl {
        server_key: keys[3].clone(),
        bin: ctl.bin.clone(),
        dir: ctl.dir.clone(),
        addr: ctl.addr.clone(),
    };
    let o = wrong.run("victor", &["host", "info"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not the pinned one"), "{err}");

    // Templates live in the management domain; domains are created from them.
    let counter = warden_rig::images().unwrap().image("counter").unwrap();
    let counter = counter.to_str().unwrap();
    // red and blue are the two sides of the policy's Chinese Wall `rivals`, each with its own
    // build label (a build label has exactly one run label).
    for (name, mem, label, build) in [
        ("count", "4", "guest_t", "build_t"),
        ("count8", "8", "guest_t", "build_t"),
        ("secret", "4", "secret_t", "build_t"),
        ("red", "4", "red_t", "red_build_t"),
        ("blue", "4", "blue_t", "blue_build_t"),
    ] {
        ctl.ok(
            "alice",
            &[
                "template",
                "add",
                "--name",
                name,
                "--label",
                label,
                "--build-label",
                build,
                "--memory-mib",
                mem,
                "--image",
                counter,
            ],
        );
    }
    let tl = ctl.ok("victor", &["template", "list"]);
    assert!(
        tl.lines()
            .any(|l| l.starts_with("count8") && l.contains("8 MiB") && l.contains("guest_t")),
        "{tl}"
    );
    let e = ctl.refused("alice", &["template", "rm", "nope"]);
    assert!(e.contains("unknown template `nope`"), "{e}");
    let free = |ctl: &Ctl| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&ctl.ok("victor", &["host", "info", "--json"])).unwrap();
        v["HostInfo"]["memory_free_bytes"].as_u64().unwrap()
    };
    let created = |out: String| -> u32 {
        out.trim()
            .strip_prefix("created domain ")
            .unwrap()
            .parse()
            .unwrap()
    };
    let c1 = created(ctl.ok(
        "alice",
        &["domain", "create", "--template", "count", "--name", "c1"],
    ));
    let c2 = created(ctl.ok(
        "alice",
        &["domain", "create", "--template", "count", "--name", "c2"],
    ));
    let c3 = created(ctl.ok(
        "alice",
        &["domain", "create", "--template", "count8", "--name", "c3"],
    ));
    let info = |ctl: &Ctl, id: u32| -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&ctl.ok("victor", &["domain", "info", &id.to_string(), "--json"]))
                .unwrap();
        v["Domain"].clone()
    };
    let list = ctl.ok("victor", &["domain", "list"]);
    for (id, name) in [(c1, "c1"), (c2, "c2"), (c3, "c3")] {
        assert!(
            list.lines()
                .any(|l| l.trim_start().starts_with(&id.to_string())
                    && l.contains(name)
                    && l.contains("guest_t")),
            "{list}"
        );
    }
    // A template whose run label the policy forbids: refused at the transition, nothing left.
    let e = ctl.refused(
        "alice",
        &["domain", "create", "--template", "secret", "--name", "s1"],
    );
    assert!(e.contains("create failed at `transition`"), "{e}");
    // The hypervisor audited the denial; an admin reads the record back through wardenctl
    // (paging from each answer's next sequence number), a viewer may not.
    let e = ctl.refused("victor", &["host", "audit"]);
    assert!(e.contains("may not `host audit` (needs `admin`)"), "{e}");
    let mut from = 0u64;
    let denial = loop {
        let out = ctl.ok("alice", &["host", "audit", "--from", &from.to_string()]);
        if let Some(l) = out
            .lines()
            .find(|l| l.starts_with("avc: denied") && l.contains("transition"))
        {
            break l.to_string();
        }
        let next: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("next seq "))
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no next seq in {out}"));
        assert!(
            next > from,
            "no denial of the transition in the audit ring:\n{out}"
        );
        from = next;
    };
    assert!(denial.contains("tclass=domain"), "{denial}");
    // The partial domain was destroyed: listed as ended (ids are never reused), holding nothing.
    let list = ctl.ok("victor", &["domain", "list"]);
    assert!(
        list.lines()
            .filter(|l| l.contains(" s1 "))
            .all(|l| l.contains("dead") && l.contains(" 0 MiB")),
        "{list}"
    );

    // Pause one: its progress stops while another's goes on; resume it: it goes on again.
    let e = ctl.refused("victor", &["domain", "pause", &c1.to_string()]);
    assert!(e.contains("forbidden"), "{e}");
    ctl.ok("olga", &["domain", "pause", &c1.to_string()]);
    assert_eq!(info(&ctl, c1)["state"], "Paused");
    let (p1, p2) = (
        info(&ctl, c1)["cpu_ticks"].as_u64().unwrap(),
        info(&ctl, c2)["cpu_ticks"].as_u64().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while info(&ctl, c2)["cpu_ticks"].as_u64().unwrap() < p2 + 20 {
        assert!(Instant::now() < deadline, "c2 made no progress");
    }
    assert_eq!(
        info(&ctl, c1)["cpu_ticks"].as_u64().unwrap(),
        p1,
        "a paused domain made progress"
    );
    ctl.ok("olga", &["domain", "resume", &c1.to_string()]);
    while info(&ctl, c1)["cpu_ticks"].as_u64().unwrap() <= p1 {
        assert!(
            Instant::now() < deadline,
            "c1 made no progress after resume"
        );
    }
    // Raise c2 above its equal peer c1: from then on c2's counter outruns c1's (the scheduler
    // runs the higher priority first; c1 gets only what c2 leaves). Awaited on c2's progress,
    // then compared as a ratio.
    ctl.ok("olga", &["domain", "set-priority", &c2.to_string(), "9"]);
    assert_eq!(info(&ctl, c2)["priority"], 9);
    let ticks = |ctl: &Ctl, id: u32| info(ctl, id)["cpu_ticks"].as_u64().unwrap();
    let (q1, q2) = (ticks(&ctl, c1), ticks(&ctl, c2));
    while ticks(&ctl, c2) < q2 + 40 {
        assert!(
            Instant::now() < deadline,
            "c2 made no progress at priority 9"
        );
    }
    let (d1, d2) = (ticks(&ctl, c1) - q1, ticks(&ctl, c2) - q2);
    assert!(
        d2 >= 4 * d1.max(1),
        "raised c2 ran {d2} ticks while its equal peer c1 ran {d1}"
    );
    // Destroy one: its memory goes back to the hypervisor.
    let before = free(&ctl);
    let e = ctl.refused("olga", &["domain", "destroy", &c3.to_string()]);
    assert!(e.contains("needs `admin`"), "{e}");
    ctl.ok("alice", &["domain", "destroy", &c3.to_string()]);
    assert!(free(&ctl) >= before + (8 << 20), "8 MiB returned");
    let e = ctl.refused("alice", &["domain", "pause", "4242"]);
    assert!(e.contains("no domain with id 4242"), "{e}");

    // A Chinese Wall (`rivals`: red_t and blue_t, with their build labels) reported to the
    // operator, through the red and blue templates: with a red domain running, a blue one is refused in the policy's words, and
    // nothing else changes; once the red one has ended, the blue one starts.
    // Who is there, under which label, holding how much (states and CPU time move on).
    let live = |ctl: &Ctl| -> Vec<(u64, String, String, u64)> {
        let v: serde_json::Value =
            serde_json::from_str(&ctl.ok("victor", &["domain", "list", "--json"])).unwrap();
        v["Domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_u64().unwrap(),
                    d["name"].as_str().unwrap().to_string(),
                    d["label"].as_str().unwrap().to_string(),
                    d["memory_bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let r1 = created(ctl.ok(
        "alice",
        &["domain", "create", "--template", "red", "--name", "r1"],
    ));
    assert_eq!(info(&ctl, r1)["label"], "red_t");
    let before = live(&ctl);
    let e = ctl.refused(
        "alice",
        &["domain", "create", "--template", "blue", "--name", "b1"],
    );
    assert!(
        e.contains("Chinese Wall conflict: label `blue_t` may not run"),
        "{e}"
    );
    let o = ctl.run(
        "alice",
        &[
            "domain",
            "create",
            "--template",
            "blue",
            "--name",
            "b1",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["detail"]["WallConflict"]["label"], "blue_t", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("Chinese Wall conflict"),
        "{v}"
    );
    assert_eq!(
        live(&ctl),
        before,
        "a refused create changed the domain list"
    );
    ctl.ok("alice", &["domain", "destroy", &r1.to_string()]);
    let b1 = created(ctl.ok(
        "alice",
        &["domain", "create", "--template", "blue", "--name", "b1"],
    ));
    assert_eq!(info(&ctl, b1)["label"], "blue_t");
    assert_ne!(info(&ctl, b1)["state"], "Dead");
    ctl.ok("alice", &["domain", "destroy", &b1.to_string()]);

    // Still serving after every refusal; then the admin stops the host.
    assert!(ctl.ok("victor", &["domain", "list"]).contains("mgmt_t"));
    let e = ctl.refused("olga", &["host", "shutdown"]);
    assert!(e.contains("needs `admin`"), "{e}");
    ctl.ok("alice", &["host", "shutdown"]);
    let outcome = run.join().unwrap().unwrap();
    if let Err(e) = outcome.check(&scenario) {
        panic!("{e}");
    }
    for line in [
        "[mgmt] mgmt: refused victor: domain pause: forbidden",
        "[mgmt] mgmt: refused -: -: unknown key",
        "[mgmt] mgmt: refused -: -: replayed request refused",
        "[mgmt] mgmt: refused -: -: bad signature",
        "[mgmt] mgmt: refused -: -: malformed frame",
        "[mgmt] mgmt: host shutdown: asking the hypervisor",
        "[mgmt] mgmt: alice: domain create: ok",
        "[mgmt] mgmt: refused alice: domain create: create failed at `transition`",
        "[mgmt] mgmt: refused alice: domain create: Chinese Wall conflict: label `blue_t`",
        "lifecycle: domain b1 refused at creation",
    ] {
        assert!(
            outcome.log.contains(line),
            "missing `{line}` in:\n{}",
            outcome.log
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the proxy does to the management domain's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    None,
    /// Flips the low bit of the last byte before the signature in every response.
    FlipByte,
    /// Answers every connection after the first with the first connection's response.
    ReplayFirst,
}

/// A TCP proxy in front of the management domain that may tamper with what it answers.
struct Proxy {
    addr: String,
}

impl Proxy {
    fn start(upstream: &str, mode: Tamper) -> Proxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            let mut first: Option<Vec<u8>> = None;
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let mut server = TcpStream::connect(&upstream).unwrap();
                let mut to_server = client.try_clone().unwrap();
                let mut from_client = server.try_clone().unwrap();
                // Requests pass untouched.
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut to_server, &mut from_client);
                    // Pass the client's end on, so the server closes and the next client is served.
                    let _ = from_client.shutdown(std::net::Shutdown::Write);
                });
                // Responses frame by frame: the hello untouched, then each response as `mode` says.
                let read_frame = |s: &mut TcpStream| -> Option<Vec<u8>> {
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).ok()?;
                    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
                    s.read_exact(&mut body).ok()?;
                    Some(body)
                };
                let mut n = 0;
                while let Some(mut body) = read_frame(&mut server) {
                    if n > 0 {
                        match mode {
                            Tamper::None => {}
                            // The signature is the last field: a 64-byte vector after its
                            // one-byte length; the byte before that is the result's last.
                            Tamper::FlipByte => {
                                let at = body.len() - 66;
                                body[at] ^= 1;
                            }
                            Tamper::ReplayFirst => match &first {
                                None => first = Some(body.clone()),
                                Some(f) => body = f.clone(),
                            },
                        }
                    }
                    n += 1;
                    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
                    frame.extend_from_slice(&body);
                    if client.write_all(&frame).is_err() {
                        break;
                    }
                }
            }
        });
        Proxy { addr }
    }
}
