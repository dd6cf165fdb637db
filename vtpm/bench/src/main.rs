//! `cargo xtask bench vtpm`: runs one client workload (PCR_Extend, PCR_Read, GetRandom, Quote
//! and Sign with ECC P-256 and RSA-2048, CreatePrimary ECC and RSA, salted session start)
//! against `vtpm-sim` and against swtpm in the same run, over TCP on 127.0.0.1 with
//! TCP_NODELAY, and prints per-command medians and their ratio as a Markdown table.
//!
//! Then the stock-client table (`stock`): a fixed tpm2-tools workload against vtpm-sim over
//! `mssim:` and `swtpm:` and against swtpm over `swtpm:` (`--stock-rounds R`, default 5;
//! `--stock-only` runs only that table).
//!
//! `--baseline BIN` compares this build's vtpm-sim with another build of this bench (`BIN
//! --serve`, e.g. from the commit before a change) instead, interleaved (`baseline.rs`).
//!
//! `--out FILE` also writes the tables to FILE. `--iterations N` scales the fast commands;
//! `--rounds R` (default 5) alternates the targets R times and keeps each command's best median
//! (fresh RSA keys: the median of all rounds' samples).
#![forbid(unsafe_code)]

mod baseline;
mod stock;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vtpm_sim::wire::{command as cmd, tpm2b};

/// Sends raw TPM commands and returns responses.
trait Transport {
    fn exec(&mut self, cmd: &[u8]) -> Vec<u8>;
}

/// A client connection: each request goes out in one write, responses are read through a
/// buffer (one read syscall per response when it arrives in one segment). Both targets get the
/// same client, only the framing differs, so the client's cost is the same on both sides.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn new(s: TcpStream) -> Conn {
        s.set_nodelay(true).expect("nodelay");
        let w = s.try_clone().expect("clone socket");
        Conn {
            w,
            r: BufReader::with_capacity(16 * 1024, s),
        }
    }
}

/// The Microsoft simulator framing (vtpm-sim): TPM_SEND_COMMAND, locality, length, command;
/// the response comes back as length, response, and a 4-byte zero.
struct Mssim(Conn);

impl Transport for Mssim {
    fn exec(&mut self, cmd: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(cmd.len() + 9);
        frame.extend_from_slice(&8u32.to_be_bytes());
        frame.push(0);
        frame.extend_from_slice(&(cmd.len() as u32).to_be_bytes());
        frame.extend_from_slice(cmd);
        self.0.w.write_all(&frame).expect("send");
        let mut len = [0u8; 4];
        self.0.r.read_exact(&mut len).expect("length");
        let mut resp = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.r.read_exact(&mut resp).expect("response");
        let mut ack = [0u8; 4];
        self.0.r.read_exact(&mut ack).expect("ack");
        resp
    }
}

/// Raw TPM commands on swtpm's TCP server socket.
struct Raw(Conn);

impl Transport for Raw {
    fn exec(&mut self, cmd: &[u8]) -> Vec<u8> {
        self.0.w.write_all(cmd).expect("send");
        let mut resp = vec![0u8; 10];
        self.0.r.read_exact(&mut resp).expect("header");
        let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
        resp.resize(size.max(10), 0);
        self.0.r.read_exact(&mut resp[10..]).expect("body");
        resp
    }
}

fn rc(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[6], r[7], r[8], r[9]])
}

/// Runs a command that must succeed, retrying TPM_RC_RETRY like a TSS.
fn ok(t: &mut dyn Transport, cmd: &[u8], what: &str) -> Vec<u8> {
    for _ in 0..50 {
        let r = t.exec(cmd);
        match rc(&r) {
            0 => return r,
            0x922 | 0x908 | 0x90A => continue,
            code => panic!("{what}: TPM returned {code:#x}"),
        }
    }
    panic!("{what}: TPM kept asking for a retry");
}

const SIGN_ATTRS: u32 = 0x0004_0072;
const STORAGE_ATTRS: u32 = 0x0003_0072;

fn ecc_sign_template() -> Vec<u8> {
    let mut t = vec![0x00, 0x23, 0x00, 0x0B];
    t.extend_from_slice(&SIGN_ATTRS.to_be_bytes());
    t.extend_from_slice(&[
        0, 0, 0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10, 0, 0, 0, 0,
    ]);
    t
}

fn rsa_template(attrs: u32, unique: &[u8]) -> Vec<u8> {
    let mut t = vec![0x00, 0x01, 0x00, 0x0B];
    t.extend_from_slice(&attrs.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    if attrs == STORAGE_ATTRS {
        t.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10]);
    } else {
        t.extend_from_slice(&[0x00, 0x10, 0x00, 0x14, 0x00, 0x0B]);
    }
    t.extend_from_slice(&[0x08, 0x00, 0, 0, 0, 0]);
    t.extend_from_slice(&tpm2b(unique));
    t
}

fn create_primary(hier: u32, template: &[u8]) -> Vec<u8> {
    let p = [
        &[0, 4, 0, 0, 0, 0][..],
        &tpm2b(template),
        &[0, 0, 0, 0, 0, 0],
    ]
    .concat();
    cmd(0x131, &[hier], true, &p)
}

fn flush(h: u32) -> Vec<u8> {
    cmd(0x165, &[], false, &h.to_be_bytes())
}

fn handle_of(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[10], r[11], r[12], r[13]])
}

/// The modulus of an RSA key from a CreatePrimary response (empty policy, NULL scheme).
fn rsa_modulus(r: &[u8]) -> Vec<u8> {
    let n_len = usize::from(u16::from_be_bytes([r[44], r[45]]));
    r[46..46 + n_len].to_vec()
}

/// `n` timed runs of `f`, in microseconds, sorted.
fn median(n: usize, mut f: impl FnMut()) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn median_of(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

/// Fresh RSA-2048 keys per round and target: the prime search's cost varies a lot from key
/// to key (the distance to the next prime is roughly geometric), so it takes many keys for a
/// median that moves by less than the gap between the two targets.
const RSA_NEW_KEYS: usize = 81;

/// Runs the workload; returns (command, sorted samples in µs) in a fixed order.
fn workload(t: &mut dyn Transport, iters: usize, startup: bool) -> Vec<(&'static str, Vec<f64>)> {
    if startup {
        ok(t, &cmd(0x144, &[], false, &[0, 0]), "Startup");
    }
    let mut out = Vec::new();
    let extend = cmd(
        0x182,
        &[16],
        true,
        &[&[0, 0, 0, 1, 0, 0x0B][..], &[0xAB; 32]].concat(),
    );
    out.push((
        "PCR_Extend (SHA-256)",
        median(iters, || {
            ok(t, &extend, "PCR_Extend");
        }),
    ));
    let read = cmd(0x17E, &[], false, &[0, 0, 0, 1, 0, 0x0B, 3, 0, 0, 1]);
    out.push((
        "PCR_Read (SHA-256, 1 PCR)",
        median(iters, || {
            ok(t, &read, "PCR_Read");
        }),
    ));
    let random = cmd(0x17B, &[], false, &[0, 32]);
    out.push((
        "GetRandom (32 bytes)",
        median(iters, || {
            ok(t, &random, "GetRandom");
        }),
    ));
    let ecc_primary = create_primary(0x4000_0001, &ecc_sign_template());
    out.push((
        "CreatePrimary ECC P-256",
        median(iters / 4 + 1, || {
            let r = ok(t, &ecc_primary, "CreatePrimary ECC");
            ok(t, &flush(handle_of(&r)), "FlushContext");
        }),
    ));
    let same_rsa = create_primary(0x4000_0001, &rsa_template(SIGN_ATTRS, &[]));
    out.push((
        "CreatePrimary RSA-2048 (same template again)",
        median(5, || {
            let r = ok(t, &same_rsa, "CreatePrimary RSA");
            ok(t, &flush(handle_of(&r)), "FlushContext");
        }),
    ));
    let mut counter = 0u64;
    out.push((
        "CreatePrimary RSA-2048 (new template each time)",
        median(RSA_NEW_KEYS, || {
            counter += 1;
            let r = ok(
                t,
                &create_primary(
                    0x4000_0001,
                    &rsa_template(SIGN_ATTRS, &counter.to_be_bytes()),
                ),
                "CreatePrimary RSA",
            );
            ok(t, &flush(handle_of(&r)), "FlushContext");
        }),
    ));
    // Signing keys for Sign and Quote.
    let ecc = handle_of(&ok(t, &ecc_primary, "ECC key"));
    let rsa = handle_of(&ok(t, &same_rsa, "RSA key"));
    let sign_params = [
        &tpm2b(&[0x5A; 32])[..],
        &[0, 0x10],
        &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0],
    ]
    .concat();
    let quote_params = [
        &tpm2b(&[0x11; 16])[..],
        &[0, 0x10],
        &[0, 0, 0, 1, 0, 0x0B, 3, 0xFF, 0, 0],
    ]
    .concat();
    for (name_sign, name_quote, key) in [
        ("Sign ECDSA P-256", "Quote ECDSA P-256", ecc),
        ("Sign RSASSA-2048", "Quote RSASSA-2048", rsa),
    ] {
        let s = cmd(0x15D, &[key], true, &sign_params);
        out.push((
            name_sign,
            median(iters / 2 + 1, || {
                ok(t, &s, "Sign");
            }),
        ));
        let q = cmd(0x158, &[key], true, &quote_params);
        out.push((
            name_quote,
            median(iters / 2 + 1, || {
                ok(t, &q, "Quote");
            }),
        ));
    }
    ok(t, &flush(ecc), "FlushContext");
    ok(t, &flush(rsa), "FlushContext");
    // Salted HMAC session: the salt is RSA-OAEP encrypted to a storage key (label "SECRET").
    let r = ok(
        t,
        &create_primary(0x4000_0001, &rsa_template(STORAGE_ATTRS, &[])),
        "storage key",
    );
    let storage = handle_of(&r);
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&rsa_modulus(&r)),
        rsa::BigUint::from(65537u32),
    )
    .expect("RSA key");
    out.push((
        "StartAuthSession (salted, RSA-2048)",
        median(iters / 2 + 1, || {
            let mut oaep = rsa::Oaep::new::<sha2::Sha256>();
            oaep.label = Some("SECRET\0".into());
            let salt = key
                .encrypt(&mut rand_core::OsRng, oaep, &[0x42; 32])
                .expect("OAEP");
            let p = [
                &tpm2b(&[0x24; 32])[..],
                &tpm2b(&salt),
                &[0],
                &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
                &[0, 0x0B],
            ]
            .concat();
            let s = ok(
                t,
                &cmd(0x176, &[storage, 0x4000_0007], false, &p),
                "StartAuthSession",
            );
            ok(t, &flush(handle_of(&s)), "FlushContext");
        }),
    ));
    ok(t, &flush(storage), "FlushContext");
    out
}

/// vtpm-sim in a child process (this binary, re-run with `--serve`), as swtpm runs in its own:
/// with the server in the client's process, the scheduler places the two threads differently
/// from two processes and round trips came out bimodal (14 or 30-50 µs from run to run).
struct VtpmSim(Child, u16);

impl Drop for VtpmSim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_vtpm_sim() -> VtpmSim {
    let (child, port) = serve_child("--serve");
    VtpmSim(child, port)
}

/// This binary re-run as a vtpm-sim server (`--serve`: mssim; `--serve-socket`: swtpm's
/// protocol, data port P and control port P+1); the child and its port.
fn serve_child(flag: &str) -> (Child, u16) {
    serve_child_of(&std::env::current_exe().expect("own path"), flag)
}

/// `bin` (a build of this bench) started as a server with `flag`; the child and its port.
fn serve_child_of(bin: &std::path::Path, flag: &str) -> (Child, u16) {
    let mut child = Command::new(bin)
        .arg(flag)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start the vtpm-sim server process");
    let out = child.stdout.take().expect("child stdout");
    // The child prints its (data) port once it listens.
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    match line.trim().parse() {
        Ok(port) => (child, port),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vtpm-sim server process did not report its port ({line:?})");
        }
    }
}

/// The `--serve-socket` server: swtpm's protocol on a free TCP port pair.
fn serve_socket() -> ! {
    use vtpm_sim::options::{Endpoint, Socket};
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        if port == u16::MAX {
            continue;
        }
        let at = |p: u16| Endpoint::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], p)));
        let opts = Socket {
            server: Some(at(port)),
            ctrl: Some(at(port + 1)),
            not_need_init: true,
            ..Socket::default()
        };
        if let Ok(server) = vtpm_sim::swtpm::SwtpmServer::bind(&opts) {
            println!("{port}");
            let _ = std::io::stdout().flush();
            server.serve();
        }
    }
    panic!("no free port pair for vtpm-sim socket");
}

/// swtpm on OS-chosen ports, killed on drop.
struct Swtpm(Child, u16, std::path::PathBuf);

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.2);
    }
}

fn start_swtpm() -> Swtpm {
    let dir = std::env::temp_dir().join(format!("warden-vtpm-bench-{}", std::process::id()));
    start_swtpm_in(&dir, "not-need-init,startup-clear")
}

/// swtpm with its state in `dir` and `--flags flags`, on OS-chosen ports P (data) and P+1.
fn start_swtpm_in(dir: &std::path::Path, flags: &str) -> Swtpm {
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).expect("state dir");
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        if port == u16::MAX || TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
            continue;
        }
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
            ])
            .args(["--tpmstate", &format!("dir={}", dir.display())])
            .args(["--flags", flags])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run swtpm (`cargo xtask setup` installs it)");
        let mut sw = Swtpm(child, port, dir.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(sw.0.try_wait(), Ok(Some(_))) {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sw;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = sw.0.kill();
    }
    panic!("swtpm did not start");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let iters: usize = arg("--iterations")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let out_file = arg("--out");

    if args.get(1).map(String::as_str) == Some("--serve") {
        // The server process of `start_vtpm_sim`.
        let server = vtpm_sim::Server::bind(0, None).expect("bind vtpm-sim");
        println!("{}", server.port);
        server.serve();
        return;
    }
    if args.get(1).map(String::as_str) == Some("--serve-socket") {
        serve_socket();
    }
    if args.iter().any(|a| a == "--stock-only") {
        // Only the stock-client table (it needs no raw-command rounds).
        let rounds: usize = arg("--stock-rounds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(5);
        let stock = stock::table(rounds);
        println!("{stock}");
        if let Some(f) = out_file {
            std::fs::write(&f, &stock).unwrap_or_else(|e| panic!("cannot write {f}: {e}"));
        }
        return;
    }
    let connect = |port: u16| Conn::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    if let Some(bin) = arg("--baseline") {
        let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(9);
        let mut table = baseline::compare(&bin, rounds, iters, |port| {
            workload(&mut Mssim(connect(port)), iters, true)
        });
        table.push_str(&baseline::keygen_table(&bin, rounds, 40));
        println!("{table}");
        if let Some(f) = out_file {
            std::fs::write(&f, &table).unwrap_or_else(|e| panic!("cannot write {f}: {e}"));
        }
        return;
    }
    // Alternate the two targets over a few rounds, so that a burst of load on this shared
    // machine does not land on one side only; both servers are fresh processes each round, so
    // one unlucky placement (a CPU shared with someone's build for the whole run) does not
    // stick to one side either. Round-trip-bound commands keep their best
    // per-round median (load only ever adds time); fresh RSA keys pool all rounds' samples,
    // since their spread is the prime search's own, not noise.
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut vtpm: Vec<(&str, Vec<Vec<f64>>)> = Vec::new();
    let mut swtpm: Vec<(&str, Vec<Vec<f64>>)> = Vec::new();
    let add = |acc: &mut Vec<(&'static str, Vec<Vec<f64>>)>, new: Vec<(&'static str, Vec<f64>)>| {
        if acc.is_empty() {
            *acc = new.into_iter().map(|(n, v)| (n, vec![v])).collect();
        } else {
            for (a, (_, v)) in acc.iter_mut().zip(new) {
                a.1.push(v);
            }
        }
    };
    for _ in 0..rounds {
        let sim = start_vtpm_sim();
        add(&mut vtpm, workload(&mut Mssim(connect(sim.1)), iters, true));
        drop(sim);
        let sw = start_swtpm();
        add(&mut swtpm, workload(&mut Raw(connect(sw.1)), iters, false));
    }
    let summary = |name: &str, runs: &[Vec<f64>]| -> f64 {
        if name.contains("new template") {
            let mut all: Vec<f64> = runs.concat();
            all.sort_by(f64::total_cmp);
            median_of(&all)
        } else {
            runs.iter().map(|r| median_of(r)).fold(f64::MAX, f64::min)
        }
    };
    let fmt = |us: f64| {
        if us < 100.0 {
            format!("{us:.1}")
        } else {
            format!("{us:.0}")
        }
    };

    let mut table = String::from(
        "| command | vtpm-sim median (µs) | swtpm median (µs) | swtpm / vtpm-sim |\n|---|---:|---:|---:|\n",
    );
    for ((name, a), (_, b)) in vtpm.iter().zip(&swtpm) {
        let (a, b) = (summary(name, a), summary(name, b));
        table.push_str(&format!(
            "| {name} | {} | {} | {:.2}× |\n",
            fmt(a),
            fmt(b),
            b / a
        ));
    }
    println!("{table}");
    // What stock clients see: tpm2-tools processes over both TCTIs.
    let stock_rounds: usize = arg("--stock-rounds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let stock = stock::table(stock_rounds);
    println!("{stock}");
    let table = format!("{table}\n{stock}");
    if let Some(f) = out_file {
        std::fs::write(&f, &table).unwrap_or_else(|e| panic!("cannot write {f}: {e}"));
    }
}
