//! `cargo xtask bench mgmt`: boots the `mgmt` scenario with one generated admin key and
//! `bench:N` (the management domain first times N `list` hypercalls, calibrating its TSC
//! against a 100 ms block), then sends `domain list` requests through the whole path —
//! TCP → QEMU user networking → virtio-net → smoltcp → session checks (ECDSA verify) → list
//! hypercall → signed response (ECDSA sign, checked by the client) — and prints the request
//! rate beside the hypercall's cost, from the same run. Then the same for create → first
//! instruction of a 4 MiB domain (the host's clock from sending `domain create` to the domain's
//! first console line, beside the create/build/transition/unpause hypercalls timed in the
//! management domain) and for the pause/resume round trip (beside the pause and unpause
//! hypercalls). Wall-clock figures: they move with the machine's load.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_mgmt_proto::{Reply, Request};
use wardenctl::mgmt::{Client, ClientError};

const HYPERCALLS: u32 = 1000;
const WARMUP: u32 = 10;
const REQUESTS: u32 = 200;
/// Domains created (and destroyed) for the create → first-instruction figure.
const CREATES: u32 = 5;
/// Pause + resume round trips.
const ROUND_TRIPS: u32 = 20;

use warden_rig::bench::field;

fn run() -> Result<String, String> {
    let (_, admin) = wardenctl::keyfile::generate(b"bench").map_err(|e| e.to_string())?;
    let mut scenario = warden_rig::Scenario::load("mgmt").map_err(|e| e.to_string())?;
    let args = format!(
        "port:7000;bench:{HYPERCALLS};admin/{}/bench",
        admin.public_hex()
    );
    scenario.domain[0].insert("args".into(), toml::Value::String(args));
    let port = warden_rig::qemu::free_port().map_err(|e| e.to_string())?;
    // Each console line with the moment it reached the host.
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let tx = Mutex::new(tx);
    let opts = warden_rig::BootOptions {
        host_port: Some(port),
        on_line: Some(Arc::new(move |l: &str| {
            let _ = tx.lock().map(|t| t.send((Instant::now(), l.to_string())));
        })),
        ..Default::default()
    };
    let sc = scenario.clone();
    let boot = std::thread::spawn(move || warden_rig::boot(&sc, &opts));
    let deadline = Instant::now() + Duration::from_secs(scenario.timeout_secs);
    let mut hypercall_ns = None;
    let mut server_key = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, line) = rx
            .recv_timeout(left)
            .map_err(|_| "the management domain never listened".to_string())?;
        if line.contains("mgmt: bench ") {
            hypercall_ns = field(&line, "list_hypercall_ns");
        }
        if let Some(k) = line.split("mgmt: response key ").nth(1) {
            server_key = Some(wardenctl::mgmt::ServerKey::parse_hex(k)?);
        }
        if line.contains("mgmt: listening") {
            break;
        }
    }
    let server_key = server_key.ok_or("the management domain printed no response key")?;
    let hypercall_ns = hypercall_ns.ok_or("no hypercall figure in the log")?;
    let addr = format!("127.0.0.1:{port}");
    let measured = (|| -> Result<(Duration, Lifecycle), String> {
        let mut c = Client::connect(&addr, &server_key).map_err(|e| e.to_string())?;
        for _ in 0..WARMUP {
            c.request(&admin, &Request::DomainList)
                .map_err(|e| e.to_string())?;
        }
        let t0 = Instant::now();
        for i in 0..REQUESTS {
            match c.request(&admin, &Request::DomainList) {
                Ok(Reply::Domains(_)) => {}
                other => return Err(format!("request {i}: unexpected answer {other:?}")),
            }
        }
        let elapsed = t0.elapsed();
        let lifecycle = lifecycle(&mut c, &admin, &rx)?;
        // A granted shutdown closes the connection instead of answering.
        match c.request(&admin, &Request::HostShutdown) {
            Ok(_) | Err(ClientError::Closed) => Ok((elapsed, lifecycle)),
            Err(e) => Err(e.to_string()),
        }
    })();
    let outcome = boot
        .join()
        .map_err(|_| "the boot thread panicked")?
        .map_err(|e| e.to_string())?;
    let (elapsed, lc) = measured.map_err(|e| {
        let tail: Vec<&str> = outcome.log.lines().rev().take(40).collect();
        format!(
            "{e}\nlast lines of the log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })?;
    outcome
        .check(&scenario)
        .map_err(|e| format!("the run failed its checks: {e}"))?;
    let per_request_us = elapsed.as_secs_f64() * 1e6 / f64::from(REQUESTS);
    Ok(format!(
        "mgmt: `domain list` through the whole path: {:.0} requests/s ({per_request_us:.0} µs each, {REQUESTS} requests on one connection)\n\
         mgmt: reference, same run: the list hypercall inside the management domain: {hypercall_ns} ns ({HYPERCALLS} calls)\n\
         mgmt: ratio whole path / hypercall: {:.0}\n",
        f64::from(REQUESTS) / elapsed.as_secs_f64(),
        per_request_us * 1000.0 / hypercall_ns.max(1) as f64
    ) + &format!(
        "mgmt: create -> first instruction of a 4 MiB domain through the whole path: {:.1} ms (median of {CREATES})\n\
         mgmt: reference, same run: create+build+transition+unpause hypercalls inside the management domain: {:.1} ms\n\
         mgmt: pause + resume round trip through the whole path: {:.1} ms (median of {ROUND_TRIPS})\n\
         mgmt: reference, same run: pause + unpause hypercalls inside the management domain: {} µs\n",
        lc.create_ms,
        lc.create_hypercalls_ns as f64 / 1e6,
        lc.round_trip_ms,
        lc.pause_unpause_ns / 1000
    ))
}

/// The lifecycle figures of one run.
struct Lifecycle {
    create_ms: f64,
    create_hypercalls_ns: u64,
    round_trip_ms: f64,
    pause_unpause_ns: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Creates `CREATES` 4 MiB domains from a template of the `counter` image (args `first`: it
/// prints one line at its first instruction, then sleeps), timing each from the request to
/// that line, and destroys them; then pauses and resumes one `ROUND_TRIPS` times. The
/// management domain's own figures for the same hypercalls arrive on the console.
fn lifecycle(
    c: &mut Client,
    admin: &warden_mgmt_proto::Signer,
    rx: &mpsc::Receiver<(Instant, String)>,
) -> Result<Lifecycle, String> {
    use warden_mgmt_proto::Template;
    let image = warden_rig::images()
        .and_then(|i| i.image("counter"))
        .map_err(|e| e.to_string())?;
    let image = std::fs::read(&image).map_err(|e| e.to_string())?;
    let ask = |c: &mut Client, r: Request| c.request(admin, &r).map_err(|e| e.to_string());
    ask(
        c,
        Request::TemplateAdd(Template {
            name: "first".into(),
            image,
            memory_mib: 4,
            priority: 5,
            label: "guest_t".into(),
            args: "first".into(),
            build_label: None,
        }),
    )?;
    // Waits for a line with each prefix, in any order (two domains' lines interleave): when
    // each arrived, and its `key=` figure.
    let wait_all = |want: &[(&str, &str)]| -> Result<Vec<(Instant, u64)>, String> {
        let mut got: Vec<Option<(Instant, u64)>> = vec![None; want.len()];
        while got.iter().any(Option::is_none) {
            let (at, l) = rx
                .recv_timeout(Duration::from_secs(120))
                .map_err(|_| format!("no line with {want:?}"))?;
            for (g, (prefix, key)) in got.iter_mut().zip(want) {
                if g.is_none() && l.contains(prefix) {
                    *g = Some((at, field(&l, key).unwrap_or(0)));
                }
            }
        }
        Ok(got.into_iter().flatten().collect())
    };
    let wait = |prefix: &str, key: &str| wait_all(&[(prefix, key)]).map(|v| v[0]);
    let (mut creates, mut hypercalls) = (Vec::new(), Vec::new());
    for i in 0..CREATES {
        let name = format!("f{i}");
        let t0 = Instant::now();
        let id = match ask(
            c,
            Request::DomainCreate {
                template: "first".into(),
                name: name.clone(),
            },
        )? {
            Reply::Created { id } => id,
            other => return Err(format!("create: {other:?}")),
        };
        let first_line = format!("[{name}] bench: first_tsc=");
        let got = wait_all(&[
            ("mgmt: bench create_sequence_ns=", "create_sequence_ns"),
            (&first_line, "first_tsc"),
        ])?;
        let (ns, first) = (got[0].1, got[1].0);
        creates.push(first.duration_since(t0).as_secs_f64() * 1e3);
        hypercalls.push(ns as f64);
        if i + 1 < CREATES {
            ask(c, Request::DomainDestroy { id })?;
        }
    }
    let id = match ask(c, Request::DomainList)? {
        Reply::Domains(ds) => ds
            .iter()
            .rev()
            .find(|d| d.name == format!("f{}", CREATES - 1))
            .map(|d| d.id),
        _ => None,
    }
    .ok_or("the last created domain is not listed")?;
    let (mut trips, mut pu) = (Vec::new(), Vec::new());
    for _ in 0..ROUND_TRIPS {
        let t0 = Instant::now();
        ask(c, Request::DomainPause { id })?;
        ask(c, Request::DomainResume { id })?;
        trips.push(t0.elapsed().as_secs_f64() * 1e3);
        let (_, p) = wait("mgmt: bench pause_ns=", "pause_ns")?;
        let (_, u) = wait("mgmt: bench unpause_ns=", "unpause_ns")?;
        pu.push((p + u) as f64);
    }
    Ok(Lifecycle {
        create_ms: median(creates),
        create_hypercalls_ns: median(hypercalls) as u64,
        round_trip_ms: median(trips),
        pause_unpause_ns: median(pu) as u64,
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
