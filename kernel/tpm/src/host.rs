//! Host-side helpers (feature `host`): a private swtpm process and a TCP [`Transport`] to it.
//!
//! Used by this crate's tests, by `wardenctl`'s tests and by the system-test rig to talk to
//! the swtpm that served as QEMU's platform TPM.

extern crate std;

use crate::client::Transport;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::string::{String, ToString};
use std::time::{Duration, Instant};
use std::{format, fs, io};

/// swtpm control-channel command `CMD_SET_LOCALITY`.
const CMD_SET_LOCALITY: u32 = 5;
/// swtpm control-channel command `CMD_SHUTDOWN`.
const CMD_SHUTDOWN: u32 = 3;

/// A running `swtpm socket` with TCP data and control ports on 127.0.0.1; killed on drop.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    /// Data (command) port.
    pub port: u16,
    /// Control port.
    pub ctrl_port: u16,
    state_dir: PathBuf,
    owns_dir: bool,
}

/// A fresh, unique directory under the system temp dir.
///
/// # Errors
///
/// If the directory cannot be created.
pub fn unique_temp_dir(prefix: &str) -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Whether process `pid` itself holds listening TCP sockets on every port of `ports` (IPv4),
/// read from Linux's `/proc`: the socket inodes among its open files, and their local ports in
/// `/proc/PID/net/tcp`. Waiting for this, rather than for any listener to accept on a port,
/// proves a server we started bound the ports we chose: a port taken by another process
/// between choosing and binding makes our server exit instead of passing for it.
#[must_use]
pub fn listens_on(pid: u32, ports: &[u16]) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: std::collections::HashSet<String> = fds
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_str()?;
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    // (`0100007F:1F90`, state 0A is LISTEN).
    let listening: std::vec::Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: std::vec::Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                return None;
            }
            u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()
        })
        .collect();
    ports.iter().all(|p| listening.contains(p))
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Swtpm {
    /// Starts a fresh swtpm (new state in a private temp dir, already started with
    /// `TPM2_Startup(CLEAR)`), waiting until its ports accept connections.
    ///
    /// # Errors
    ///
    /// If swtpm is missing or does not come up within 10 s.
    pub fn start() -> io::Result<Swtpm> {
        let dir = unique_temp_dir("warden-swtpm")?;
        let mut s = Swtpm::start_on(&dir, &["not-need-init", "startup-clear"])?;
        s.owns_dir = true;
        Ok(s)
    }

    /// Starts swtpm on an existing state directory with the given `--flags` (e.g. only
    /// `not-need-init` to resume a saved volatile state without a new startup).
    ///
    /// # Errors
    ///
    /// If swtpm is missing or does not come up within 10 s.
    pub fn start_on(state_dir: &Path, flags: &[&str]) -> io::Result<Swtpm> {
        let mut last = io::Error::other("swtpm did not start");
        // A port found free can be taken by someone else before swtpm binds it: swtpm then
        // exits (or never holds the port, which `wait_ready` checks by pid), and we retry.
        for _ in 0..20 {
            // The tss2 swtpm TCTI expects the control port right after the data port.
            let port = free_port()?;
            let Some(ctrl_port) = port.checked_add(1) else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", ctrl_port)).is_err() {
                continue;
            }
            let mut cmd = Command::new("swtpm");
            cmd.args(["socket", "--tpm2"])
                .arg(format!("--server=type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg(format!(
                    "--ctrl=type=tcp,port={ctrl_port},bindaddr=127.0.0.1"
                ))
                .arg(format!("--tpmstate=dir={}", state_dir.display()))
                .arg("--locality=allow-set-locality")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if !flags.is_empty() {
                cmd.arg(format!("--flags={}", flags.join(",")));
            }
            let child = cmd.spawn().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run swtpm (is the `swtpm` package installed?): {e}"),
                )
            })?;
            let mut s = Swtpm {
                child,
                port,
                ctrl_port,
                state_dir: state_dir.to_path_buf(),
                owns_dir: false,
            };
            match s.wait_ready() {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(io::Error::other(format!("swtpm exited ({status}): {err}")));
            }
            // Our swtpm, not whatever else may listen there, must hold both ports.
            if listens_on(self.child.id(), &[self.port, self.ctrl_port]) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "swtpm did not open its ports within 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new connection to the data port.
    ///
    /// # Errors
    ///
    /// If the connection fails.
    pub fn connect(&self) -> io::Result<TcpTransport> {
        // Probe once so a dead swtpm shows up here rather than at the first command.
        drop(TcpStream::connect(("127.0.0.1", self.port))?);
        Ok(TcpTransport {
            port: self.port,
            ctrl_port: self.ctrl_port,
        })
    }

    /// The TCTI string for tpm2-tools / tss-esapi (`swtpm:host=127.0.0.1,port=P`).
    #[must_use]
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The state directory.
    #[must_use]
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        // Orderly shutdown first so the state is consistent, then make sure it is gone.
        let _ = ctrl(self.ctrl_port, CMD_SHUTDOWN, &[]);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = fs::remove_dir_all(&self.state_dir);
        }
    }
}

/// Sends one control-channel command; returns the result code.
fn ctrl(port: u16, cmd: u32, payload: &[u8]) -> io::Result<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut msg = cmd.to_be_bytes().to_vec();
    msg.extend_from_slice(payload);
    s.write_all(&msg)?;
    let mut rc = [0u8; 4];
    s.read_exact(&mut rc)?;
    let _ = s.shutdown(Shutdown::Both);
    Ok(u32::from_be_bytes(rc))
}

/// A TPM command channel over swtpm's raw TCP protocol.
///
/// swtpm serves one data connection at a time, so each command uses its own connection:
/// tpm2-tools can then talk to the same swtpm between our commands.
#[derive(Debug)]
pub struct TcpTransport {
    port: u16,
    ctrl_port: u16,
}

impl TcpTransport {
    /// Changes the locality of subsequent commands (swtpm's `CMD_SET_LOCALITY`).
    ///
    /// # Errors
    ///
    /// If the control channel fails or swtpm refuses.
    pub fn set_locality(&mut self, locality: u8) -> io::Result<()> {
        match ctrl(self.ctrl_port, CMD_SET_LOCALITY, &[locality])? {
            0 => Ok(()),
            rc => Err(io::Error::other(format!(
                "swtpm refused locality {locality}: {rc:#x}"
            ))),
        }
    }
}

impl Transport for TcpTransport {
    type Error = io::Error;

    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, io::Error> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(cmd)?;
        let mut header = [0u8; 10];
        stream.read_exact(&mut header)?;
        let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        if size < 10 || size > rsp.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response size {size} out of range"),
            ));
        }
        rsp[..10].copy_from_slice(&header);
        stream.read_exact(&mut rsp[10..size])?;
        Ok(size)
    }
}

/// The PCR values in `tpm2_pcrread`/`tpm2_eventlog` YAML (`  sha256:` then `    20 : 0x…`).
pub fn yaml_pcr(text: &str, alg: crate::HashAlg, pcr: u32) -> Option<String> {
    let mut in_bank = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_suffix(':') {
            in_bank = name == alg.name();
            continue;
        }
        if in_bank
            && let Some((idx, val)) = t.split_once(':')
            && idx.trim() == pcr.to_string()
        {
            return Some(val.trim().trim_start_matches("0x").to_lowercase());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::listens_on;
    use std::net::TcpListener;

    #[test]
    fn listens_on_sees_only_the_processes_own_listeners() {
        let me = std::process::id();
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert!(listens_on(me, &[pa, pb]));
        drop(b);
        assert!(listens_on(me, &[pa]));
        assert!(!listens_on(me, &[pa, pb]), "a closed listener still counts");
        // The parent (cargo's test harness or a shell) does not hold our listener.
        assert!(!listens_on(std::os::unix::process::parent_id(), &[pa]));
        assert!(!listens_on(u32::MAX, &[pa]), "no such process");
    }
}
