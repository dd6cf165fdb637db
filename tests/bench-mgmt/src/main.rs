//! `cargo xtask bench mgmt`: boots the `mgmt` scenario with one generated admin key and
//! `bench:N` (the management domain first times N `list` hypercalls, calibrating its TSC
//! against a 100 ms block), then sends `domain list` requests through the whole path —
//! TCP → QEMU user networking → virtio-net → smoltcp → session checks (ECDSA verify) → list
//! hypercall → response — and prints the request rate beside the hypercall's cost, from the
//! same run. Wall-clock figures: they move with the machine's load.
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
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let opts = warden_rig::BootOptions {
        host_port: Some(port),
        on_line: Some(Arc::new(move |l: &str| {
            let _ = tx.lock().map(|t| t.send(l.to_string()));
        })),
        ..Default::default()
    };
    let sc = scenario.clone();
    let boot = std::thread::spawn(move || warden_rig::boot(&sc, &opts));
    let deadline = Instant::now() + Duration::from_secs(scenario.timeout_secs);
    let mut hypercall_ns = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .map_err(|_| "the management domain never listened".to_string())?;
        if line.contains("mgmt: bench ") {
            hypercall_ns = field(&line, "list_hypercall_ns");
        }
        if line.contains("mgmt: listening") {
            break;
        }
    }
    let hypercall_ns = hypercall_ns.ok_or("no hypercall figure in the log")?;
    let addr = format!("127.0.0.1:{port}");
    let measured = (|| -> Result<Duration, String> {
        let mut c = Client::connect(&addr).map_err(|e| e.to_string())?;
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
        // A granted shutdown closes the connection instead of answering.
        match c.request(&admin, &Request::HostShutdown) {
            Ok(_) | Err(ClientError::Closed) => Ok(elapsed),
            Err(e) => Err(e.to_string()),
        }
    })();
    let outcome = boot
        .join()
        .map_err(|_| "the boot thread panicked")?
        .map_err(|e| e.to_string())?;
    let elapsed = measured.map_err(|e| {
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
    ))
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
