//! Test harness: starts `vtpm-sim` on OS-chosen free ports and runs stock tpm2-tools against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// SHA-256 of the concatenated `parts`.
pub fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

/// A Microsoft-simulator TPM_SEND_COMMAND frame (command 8, locality 0, length, bytes).
pub fn send_command(tpm_cmd: &[u8]) -> Vec<u8> {
    let mut f = 8u32.to_be_bytes().to_vec();
    f.push(0);
    f.extend_from_slice(&(tpm_cmd.len() as u32).to_be_bytes());
    f.extend_from_slice(tpm_cmd);
    f
}

/// Reads a Microsoft-simulator response to a command: its length, the TPM response (returned)
/// and the trailing acknowledgement.
pub fn read_mssim_response(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut resp = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).expect("response");
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).expect("trailing ack");
    resp
}

/// How clients reach a `Sim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The Microsoft simulator protocol (command port P, platform port P+1).
    Mssim,
    /// swtpm's protocol (`vtpm-sim socket`): raw data port P, control port P+1, over TCP.
    Swtpm,
}

/// Reads one raw TPM response (its header gives its size), as swtpm's data port sends it.
pub fn read_tpm_response(s: &mut TcpStream) -> Vec<u8> {
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr).expect("response header");
    let size = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
    let mut rest = vec![0u8; size.saturating_sub(10)];
    s.read_exact(&mut rest).expect("response body");
    [hdr.to_vec(), rest].concat()
}

/// Sends one raw command to swtpm's data port on a fresh connection and reads its response:
/// swtpm answers malformed frames on the connection it was given, so one bad frame cannot
/// affect the next command.
pub fn swtpm_exec(port: u16, cmd: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect swtpm");
    s.write_all(cmd).unwrap();
    read_tpm_response(&mut s)
}

/// Sends one command to vtpm-sim over the mssim protocol on a fresh connection, reads its
/// response and closes the session (`TPM_SESSION_END`).
pub fn sim_exec(port: u16, cmd: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect vtpm-sim");
    s.set_nodelay(true).unwrap();
    s.write_all(&send_command(cmd)).unwrap();
    let resp = read_mssim_response(&mut s);
    s.write_all(&20u32.to_be_bytes()).unwrap();
    resp
}

/// A running `vtpm-sim`, killed on drop.
pub struct Sim {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub transport: Transport,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A private scratch folder under the target dir, fresh for each call.
pub fn scratch(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vtpm-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The key that seals state folder `state`: `<state>.key` beside it, created (owner-only) on
/// first use, so a restart on the same state finds the same key.
pub fn state_key(state: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut name = state.as_os_str().to_owned();
    name.push(".key");
    let path = PathBuf::from(name);
    if !path.exists() {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .expect("random state key");
        std::fs::write(&path, key).expect("write state key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod state key");
    }
    path
}

impl Sim {
    /// Starts the server (with `--state state_dir` when given) and waits until it listens.
    pub fn start(dir: &Path, state: Option<&Path>) -> Sim {
        Sim::start_with(dir, state, &[])
    }

    /// As `start`, with extra command-line arguments.
    pub fn start_with(dir: &Path, state: Option<&Path>, extra: &[&str]) -> Sim {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vtpm-sim"));
        cmd.args(["--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(s) = state {
            cmd.arg("--state")
                .arg(s)
                .arg("--state-key")
                .arg(state_key(s));
        }
        let mut child = cmd.spawn().expect("spawn vtpm-sim");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        // The server prints its port once both listeners are bound: that is the readiness signal.
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read vtpm-sim banner");
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected vtpm-sim banner: {line:?}"));
        Sim {
            child,
            port,
            dir: dir.to_path_buf(),
            transport: Transport::Mssim,
        }
    }

    /// `vtpm-sim socket --tpm2` with the data channel on TCP port P and the control channel on
    /// P+1 (what the `swtpm` TCTI expects), `--flags not-need-init`, the state folder `state`
    /// (sealed with its `state_key`) when given, and `extra` arguments; waits until it listens.
    pub fn start_socket(dir: &Path, state: Option<&Path>, extra: &[&str]) -> Sim {
        for _ in 0..20 {
            let port = free_port_pair();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_vtpm-sim"));
            cmd.args(["socket", "--tpm2", "--flags", "not-need-init"])
                .args(["--server", &format!("type=tcp,port={port}")])
                .args(["--ctrl", &format!("type=tcp,port={}", port + 1)])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if let Some(s) = state {
                cmd.arg("--tpmstate")
                    .arg(format!("dir={}", s.display()))
                    .arg("--key")
                    .arg(format!("file={}", state_key(s).display()));
            }
            let mut child = cmd.spawn().expect("spawn vtpm-sim socket");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("piped stdout");
            // The server prints this line once both channels are bound.
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.starts_with("vtpm-sim listening") {
                return Sim {
                    child,
                    port,
                    dir: dir.to_path_buf(),
                    transport: Transport::Swtpm,
                };
            }
            // Lost the race for the port pair: try another.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("vtpm-sim socket did not start");
    }

    /// A fresh server on `transport` in the scratch folder `dir`.
    pub fn start_on(transport: Transport, dir: &Path) -> Sim {
        match transport {
            Transport::Mssim => Sim::start(dir, None),
            Transport::Swtpm => Sim::start_socket(dir, None, &[]),
        }
    }

    pub fn tcti(&self) -> String {
        match self.transport {
            Transport::Mssim => format!("mssim:host=127.0.0.1,port={}", self.port),
            Transport::Swtpm => format!("swtpm:host=127.0.0.1,port={}", self.port),
        }
    }

    /// The control port (swtpm transport).
    pub fn ctrl_port(&self) -> u16 {
        self.port + 1
    }

    /// A fresh `vtpm-sim` in the scratch folder `name`, after `tpm2_startup -c`.
    pub fn started(name: &str) -> Sim {
        Sim::started_on(Transport::Mssim, name)
    }

    /// As `started`, reached over `transport`.
    pub fn started_on(transport: Transport, name: &str) -> Sim {
        let sim = Sim::start_on(transport, &scratch(name));
        sim.tool(&["tpm2_startup", "-c"]);
        sim
    }

    /// `tpm2_createprimary -C hier -G alg -c ctx` (the tool's default template for `alg`),
    /// then flushes the transient slots.
    pub fn primary(&self, hier: &str, alg: &str, ctx: &str) {
        self.tool(&["tpm2_createprimary", "-C", hier, "-G", alg, "-c", ctx]);
        self.flush();
    }

    /// `tpm2_create` of an `alg` key under `parent` into `name.pub` / `name.priv`, then
    /// `tpm2_load` of it as `name.ctx`, flushing after each.
    pub fn create_loaded(&self, parent: &str, alg: &str, name: &str) {
        let (pu, pr) = (format!("{name}.pub"), format!("{name}.priv"));
        self.tool(&["tpm2_create", "-C", parent, "-G", alg, "-u", &pu, "-r", &pr]);
        self.flush();
        self.load(parent, name);
    }

    /// `tpm2_readpublic` of the loaded `name.ctx` into `name.pem` (PEM, for OpenSSL), then
    /// flushes the transient slots.
    pub fn public_pem(&self, name: &str) {
        let (cx, pem) = (format!("{name}.ctx"), format!("{name}.pem"));
        self.tool(&["tpm2_readpublic", "-c", &cx, "-f", "pem", "-o", &pem]);
        self.flush();
    }

    /// `tpm2_load` of `name.pub` / `name.priv` under `parent` as `name.ctx`, then flushes the
    /// transient slots.
    pub fn load(&self, parent: &str, name: &str) {
        let (pu, pr, cx) = (
            format!("{name}.pub"),
            format!("{name}.priv"),
            format!("{name}.ctx"),
        );
        self.tool(&["tpm2_load", "-C", parent, "-u", &pu, "-r", &pr, "-c", &cx]);
        self.flush();
    }

    /// Runs a tpm2-tools command in the scratch folder; panics with its output on failure.
    pub fn tool(&self, args: &[&str]) -> Output {
        let out = self.try_tool(args);
        assert!(
            out.status.success(),
            "{} failed: {}\nstdout: {}\nstderr: {}",
            args[0],
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn try_tool(&self, args: &[&str]) -> Output {
        Command::new(args[0])
            .args(&args[1..])
            .current_dir(&self.dir)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (is tpm2-tools installed? `cargo xtask setup`): {e}",
                    args[0]
                )
            })
    }

    /// Without a resource manager every tool leaves its objects loaded; flush them so the
    /// three transient slots stay free (what tpm2-abrmd does for each client).
    pub fn flush(&self) {
        self.tool(&["tpm2_flushcontext", "-t"]);
        self.tool(&["tpm2_flushcontext", "-s"]);
    }

    pub fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.tool(args).stdout).into_owned()
    }

    pub fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.dir.join(name), data).expect("write scratch file");
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).expect("read scratch file")
    }
}

impl Sim {
    /// `swtpm_ioctl --tcp 127.0.0.1:CTRL args…` (swtpm's own control-channel client) in the
    /// scratch folder.
    pub fn ioctl(&self, args: &[&str]) -> Output {
        Command::new("swtpm_ioctl")
            .args(["--tcp", &format!("127.0.0.1:{}", self.ctrl_port())])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("cannot run swtpm_ioctl (package swtpm-tools; `cargo xtask setup`)")
    }

    /// As `ioctl`, panicking with its output on failure; returns its stdout.
    pub fn ioctl_ok(&self, args: &[&str]) -> String {
        let out = self.ioctl(args);
        assert!(
            out.status.success(),
            "swtpm_ioctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `tpm2_nvdefine index -C o -s size -a ownerread|ownerwrite`.
    pub fn nv_define(&self, index: &str, size: usize) {
        let size = size.to_string();
        let attrs = "ownerread|ownerwrite";
        self.tool(&["tpm2_nvdefine", index, "-C", "o", "-s", &size, "-a", attrs]);
    }

    /// Waits (with a deadline) for the server process to end; its status, if it did.
    pub fn await_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Waits (with a deadline) for a line of the log file `log` that contains every fragment.
pub fn await_log_line(log: &Path, fragments: &[&str]) -> String {
    let mut found = String::new();
    let ok = wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        match text
            .lines()
            .find(|l| fragments.iter().all(|f| l.contains(f)))
        {
            Some(l) => {
                found = l.to_string();
                true
            }
            None => false,
        }
    });
    assert!(
        ok,
        "no log line with {fragments:?} in {}:\n{}",
        log.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    found
}

/// A raw TPM command on swtpm's data channel (TCP or Unix socket); returns the response.
pub fn raw_command<S: Read + std::io::Write>(s: &mut S, cmd: &[u8]) -> Vec<u8> {
    s.write_all(cmd).expect("send command");
    let mut head = [0u8; 6];
    s.read_exact(&mut head).expect("response header");
    let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    let mut resp = head.to_vec();
    resp.resize(size, 0);
    s.read_exact(&mut resp[6..]).expect("response body");
    resp
}

/// The response code of a TPM response.
pub fn rc(resp: &[u8]) -> u32 {
    u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]])
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port P with P+1 free too, at the time of asking (the caller retries on a lost race).
pub fn free_port_pair() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Generates one test per transport from `fn name(t: Transport)` bodies: `name::mssim` and
/// `name::swtpm`, so every flow runs through both the `mssim` and the `swtpm` TCTI.
#[macro_export]
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn mssim() {
                super::$name(super::common::Transport::Mssim)
            }
            #[test]
            fn swtpm() {
                super::$name(super::common::Transport::Swtpm)
            }
        }
    )*};
}

/// Polls `f` until it returns true or the deadline passes.
pub fn wait_for(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A private D-Bus session bus with `tpm2-abrmd --session` in front of a `Sim`; killed on drop.
pub struct Abrmd {
    dbus: Child,
    abrmd: Child,
    pub address: String,
}

impl Abrmd {
    pub fn start(sim: &Sim) -> Abrmd {
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--print-address=1", "--nofork"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run dbus-daemon (package dbus-daemon; `cargo xtask setup`)");
        let mut line = String::new();
        BufReader::new(dbus.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("dbus address");
        let address = line.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "unexpected dbus-daemon address {address:?}"
        );
        let abrmd = Command::new("tpm2-abrmd")
            .args([
                "--session",
                "--allow-root",
                &format!("--tcti={}", sim.tcti()),
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run tpm2-abrmd (package tpm2-abrmd; `cargo xtask setup`)");
        let rm = Abrmd {
            dbus,
            abrmd,
            address,
        };
        let ready = wait_for(Duration::from_secs(30), || {
            rm.cmd(sim, &["tpm2_getrandom", "4"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        assert!(ready, "tpm2-abrmd did not come up on its private bus");
        rm
    }

    pub fn cmd(&self, sim: &Sim, args: &[&str]) -> Command {
        let mut c = Command::new(args[0]);
        c.args(&args[1..])
            .current_dir(&sim.dir)
            .env("TPM2TOOLS_TCTI", "tabrmd:bus_type=session")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        c
    }

    /// Runs a tool through the resource manager; panics with its output on failure.
    pub fn tool(&self, sim: &Sim, args: &[&str]) -> Output {
        let out = self.cmd(sim, args).output().expect("run tool");
        assert!(
            out.status.success(),
            "{} (via tpm2-abrmd) failed: {}\nstdout: {}\nstderr: {}",
            args[0],
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Abrmd {
    fn drop(&mut self) {
        let _ = self.abrmd.kill();
        let _ = self.abrmd.wait();
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }
}

/// Runs a host command (openssl, sha256sum) in the scratch folder and returns its output.
pub fn host(dir: &Path, args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]))
}

/// `openssl dgst -sha256 -verify pem -signature sig msg` in `dir` (the files are named relative
/// to it): whether OpenSSL accepts the signature `sig` over `msg` by the public key in `pem`.
pub fn openssl_verify(dir: &Path, pem: &str, sig: &str, msg: &str) -> Output {
    host(
        dir,
        &[
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            pem,
            "-signature",
            sig,
            msg,
        ],
    )
}

/// Runs `openssl args…` in `dir`; panics with its output on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = host(dir, &[&["openssl"][..], args].concat());
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new RSA-2048 key with OpenSSL: the private key in `pem`, the public key in `pub_pem`.
pub fn openssl_rsa_key(dir: &Path, pem: &str, pub_pem: &str) {
    openssl(dir, &["genrsa", "-out", pem, "2048"]);
    openssl(dir, &["rsa", "-in", pem, "-pubout", "-out", pub_pem]);
}

/// A new NIST P-256 private key with OpenSSL in `pem`.
pub fn openssl_ecc_key(dir: &Path, pem: &str) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            pem,
        ],
    );
}

/// swtpm (libtpms, the TCG reference code) on a TCP data port and control port P+1, with its
/// state in `dir`; killed on drop. Raw TPM commands go to `port`; tpm2-tools reach it through
/// the `swtpm` TCTI.
pub struct Swtpm {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Swtpm {
    pub fn start(dir: &Path) -> Swtpm {
        std::fs::create_dir_all(dir).expect("swtpm state dir");
        for _ in 0..20 {
            // Ask the OS for a free port P and check that P+1 is free too; either can still be
            // taken before swtpm binds it, so swtpm counts as up only once it holds both itself
            // (not merely when something accepts on P); otherwise retry.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if port == u16::MAX || std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
                continue;
            }
            let mut child = Command::new("swtpm")
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
                .args(["--flags", "not-need-init"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot run swtpm (package swtpm; `cargo xtask setup`)");
            let pid = child.id();
            let up = wait_for(Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(None))
                    && warden_tpm::host::listens_on(pid, &[port, port + 1])
            });
            if up {
                return Swtpm {
                    child,
                    port,
                    dir: dir.to_path_buf(),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start");
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
