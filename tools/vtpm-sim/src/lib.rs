//! The `vtpm-sim` server: the Warden vTPM engine behind the Microsoft TPM 2.0 simulator TCP
//! protocol (command port P, platform port P+1), so stock clients (tpm2-tools and tss-esapi
//! through the `mssim` TCTI, tpm2-abrmd) can use it, and behind swtpm's protocol (raw command
//! channel plus control channel, `swtpm` module) so QEMU's `-tpmdev emulator` and the `swtpm`
//! TCTI can. The binary and the benchmark start it.
#![forbid(unsafe_code)]

mod blob;
mod ctrl;
mod data;
pub mod log;
pub mod manufacture;
pub mod options;
pub mod seal;
pub mod swtpm;
mod tcp;
pub mod wire;

use std::io::{self, BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use warden_vtpm::{Platform, Tpm};

/// TPM_CC_Shutdown.
const CC_SHUTDOWN: u32 = 0x145;

/// Errors that end the server.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("--manufacture: {0}")]
    Manufacture(#[from] manufacture::ManufactureError),
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: io::Error },
    #[error("cannot bind {path}: {source}")]
    BindUnix { path: PathBuf, source: io::Error },
    #[error("cannot find two adjacent free ports")]
    NoPortPair,
    #[error("cannot load vTPM state from {path}: {source}")]
    State {
        path: PathBuf,
        source: warden_vtpm::StateError,
    },
    #[error("cannot create state folder {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    StateRead { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error("stored volatile state: {0}")]
    Blob(String),
}

/// A state folder and the key its files are sealed with (`--state`, `--state-key`).
#[derive(Debug)]
pub struct StateDir {
    pub dir: PathBuf,
    pub key: seal::StateKey,
}

/// Host platform: OS entropy, a monotonic clock, permanent state sealed in a file.
struct HostPlatform {
    start: Instant,
    file: Option<(PathBuf, Arc<seal::StateKey>)>,
    /// The state read (and opened) before the TPM was built: a file that does not open stops
    /// the server instead of being taken for a fresh TPM.
    initial: Option<Vec<u8>>,
    /// The permanent state last written (what the swtpm `permanent` state blob carries).
    last: Vec<u8>,
}

impl Platform for HostPlatform {
    fn entropy(&mut self, buf: &mut [u8]) {
        getrandom::getrandom(buf).expect("OS entropy source");
    }
    fn clock_ms(&mut self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    fn nv_read(&mut self) -> Option<Vec<u8>> {
        self.initial.take()
    }
    fn nv_write(&mut self, state: &[u8]) {
        self.last = state.to_vec();
        let Some((f, key)) = &self.file else { return };
        let sealed = key.seal(seal::Role::State, state);
        // Write-then-rename so a crash never leaves a half-written state file.
        let tmp = f.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, sealed).and_then(|()| std::fs::rename(&tmp, f)) {
            log!("cannot write state {}: {e}", f.display());
        }
    }
}

/// The TPM plus its power state, shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    tpm: Tpm<HostPlatform>,
    /// Whether the TPM runs (mssim power on; swtpm CMD_INIT or `not-need-init`).
    powered: bool,
    /// The locality of commands on swtpm's raw data channel (`CMD_SET_LOCALITY`).
    locality: u8,
    /// The TPM-established flag: set by a measurement sequence (hash start), cleared by
    /// `CMD_RESET_TPMESTABLISHED` at locality 3 or 4.
    established: bool,
    /// A volatile state blob was set since the TPM stopped: `CMD_INIT` resumes it instead of
    /// powering the TPM on afresh (how QEMU moves a running VM's TPM).
    resumed: bool,
    /// Where the state lives and the keys that seal it and the state blobs.
    store: Store,
    /// The command code of the last TPM command run (0 before any): swtpm sends no
    /// automatic TPM2_Shutdown when the client's own last command was one.
    last_cc: u32,
    /// `--flags disable-auto-shutdown`: no automatic TPM2_Shutdown (swtpm's flag).
    pub(crate) auto_shutdown: bool,
    /// `VTPM_SIM_TRACE=1`: log every command code, its handles and the response code.
    trace: bool,
    /// `VTPM_SIM_RECORD=FILE`: append every command in the fuzz corpus format (seed material).
    record: Option<std::fs::File>,
}

/// The state folder's file and key, and the key that seals swtpm state blobs.
#[derive(Debug, Default)]
pub(crate) struct Store {
    file: Option<(PathBuf, Arc<seal::StateKey>)>,
    blob_key: Option<Arc<seal::StateKey>>,
}

impl Shared {
    /// Runs one TPM command at `locality` (TPM_RC_FAILURE while the TPM is not running).
    pub(crate) fn execute(&mut self, locality: u8, cmd: &[u8]) -> Vec<u8> {
        if !self.powered {
            // TPM_RC_FAILURE: the TPM is powered off (swtpm answers the same before CMD_INIT).
            return vec![0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 1];
        }
        if let Some(cc) = cmd.get(6..10) {
            self.last_cc = u32::from_be_bytes([cc[0], cc[1], cc[2], cc[3]]);
        }
        let r = self.tpm.execute(locality, cmd);
        if self.trace {
            trace(cmd, &r);
        }
        if let Some(f) = self.record.as_mut() {
            // The fuzz corpus format: locality, u16 length, command.
            let mut rec = vec![locality];
            rec.extend_from_slice(&(cmd.len().min(0xFFFF) as u16).to_be_bytes());
            rec.extend_from_slice(cmd);
            let _ = f.write_all(&rec);
        }
        r
    }

    /// Stops the running TPM as swtpm 0.8 and later do before `CMD_INIT`, `CMD_STOP`,
    /// `CMD_SHUTDOWN` and when the process ends: unless the client's last command was
    /// TPM2_Shutdown, a TPM2_Shutdown(STATE) (TPM2_Shutdown(CLEAR) if that fails), so an
    /// abrupt VM reset still counts as an orderly shutdown (Clock stays safe, a following
    /// Startup(STATE) resumes the PCRs) instead of a power loss. Then the TPM is off.
    pub(crate) fn stop(&mut self, why: &str) {
        if self.powered && self.auto_shutdown && self.last_cc != CC_SHUTDOWN {
            for (ty, name) in [(1u16, "STATE"), (0, "CLEAR")] {
                let r = self.execute(
                    0,
                    &wire::command(CC_SHUTDOWN, &[], false, &ty.to_be_bytes()),
                );
                if r.get(6..10) == Some(&[0, 0, 0, 0]) {
                    log!("{why}: sent TPM2_Shutdown({name})");
                    break;
                }
            }
        }
        self.powered = false;
    }

    /// A fresh TPM on the same store, built from the permanent state `permanent` (checked by
    /// the engine before anything is replaced).
    pub(crate) fn replace_permanent(
        &mut self,
        permanent: Vec<u8>,
    ) -> Result<(), warden_vtpm::StateError> {
        let platform = HostPlatform {
            start: Instant::now(),
            file: self.store.file.clone(),
            initial: Some(permanent),
            last: Vec::new(),
        };
        self.tpm = Tpm::new(platform)?;
        Ok(())
    }
}

fn trace(cmd: &[u8], resp: &[u8]) {
    let word = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .unwrap_or(0)
    };
    log!(
        "cc={:#05x} h0={:#010x} h1={:#010x} -> rc={:#x} len={}",
        word(cmd, 6),
        word(cmd, 10),
        word(cmd, 14),
        word(resp, 6),
        resp.len()
    );
}

const SIGNAL_POWER_ON: u32 = 1;
const SIGNAL_POWER_OFF: u32 = 2;
const SIGNAL_PHYS_PRES_ON: u32 = 3;
const SIGNAL_PHYS_PRES_OFF: u32 = 4;
const SIGNAL_HASH_START: u32 = 5;
const SIGNAL_HASH_DATA: u32 = 6;
const SIGNAL_HASH_END: u32 = 7;
const SEND_COMMAND: u32 = 8;
const SIGNAL_CANCEL_ON: u32 = 9;
const SIGNAL_CANCEL_OFF: u32 = 10;
const SIGNAL_NV_ON: u32 = 11;
const SIGNAL_NV_OFF: u32 = 12;
const SIGNAL_KEY_CACHE_ON: u32 = 13;
const SIGNAL_KEY_CACHE_OFF: u32 = 14;
const REMOTE_HANDSHAKE: u32 = 15;
const SIGNAL_RESET: u32 = 17;
const SIGNAL_RESTART: u32 = 18;
const SESSION_END: u32 = 20;
const STOP: u32 = 21;

/// Largest command frame accepted.
pub(crate) const MAX_FRAME: u32 = 8192;

fn bind_pair(port: u16) -> Result<(TcpListener, TcpListener), SimError> {
    let bind = |p: u16| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
    if port != 0 {
        let a = bind(port).map_err(|source| SimError::Bind { port, source })?;
        let b = bind(port + 1).map_err(|source| SimError::Bind {
            port: port + 1,
            source,
        })?;
        return Ok((a, b));
    }
    for _ in 0..100 {
        let a = bind(0).map_err(|source| SimError::Bind { port: 0, source })?;
        let p = a
            .local_addr()
            .map_err(|source| SimError::Bind { port: 0, source })?
            .port();
        if p == u16::MAX {
            continue;
        }
        if let Ok(b) = bind(p + 1) {
            return Ok((a, b));
        }
    }
    Err(SimError::NoPortPair)
}

/// A bound server, ready to `serve`.
#[derive(Debug)]
pub struct Server {
    cmd: TcpListener,
    plat: TcpListener,
    shared: Arc<Mutex<Shared>>,
    /// The command port (the platform port is one above).
    pub port: u16,
}

impl Server {
    /// Binds 127.0.0.1:`port` and `port`+1 (a free pair when `port` is 0) and loads or
    /// manufactures the TPM state in `state`.
    pub fn bind(port: u16, state: Option<StateDir>) -> Result<Server, SimError> {
        bind(port, state, false)
    }

    /// As `bind`, first creating the EKs and their certificates (`--manufacture`).
    pub fn bind_manufactured(port: u16, state: Option<StateDir>) -> Result<Server, SimError> {
        bind(port, state, true)
    }

    /// Serves both ports until a client sends TPM_STOP (which ends the process).
    pub fn serve(self) {
        let stop = Arc::new(AtomicBool::new(false));
        let port = self.port;
        {
            let (shared, stop) = (self.shared.clone(), stop.clone());
            let plat = self.plat;
            std::thread::spawn(move || serve(plat, shared, stop, true, port));
        }
        serve(self.cmd, self.shared, stop, false, port);
    }
}

fn bind(port: u16, state: Option<StateDir>, manufacture: bool) -> Result<Server, SimError> {
    let mut shared = build(state, manufacture, None)?;
    shared.powered = true;
    let shared = Arc::new(Mutex::new(shared));
    let (cmd, plat) = bind_pair(port)?;
    let port = cmd.local_addr().map(|a| a.port()).unwrap_or(port);
    Ok(Server {
        cmd,
        plat,
        shared,
        port,
    })
}

/// Loads or manufactures the TPM in `state` (the TPM is not running yet); `blob_key` seals
/// swtpm state blobs (the state key when absent).
pub(crate) fn build(
    state: Option<StateDir>,
    manufacture: bool,
    blob_key: Option<seal::StateKey>,
) -> Result<Shared, SimError> {
    // The state folder with its state file and key, and the state read from it (if any).
    let mut folder = None;
    let mut initial = None;
    if let Some(StateDir { dir, key }) = state {
        std::fs::create_dir_all(&dir).map_err(|source| SimError::StateDir {
            path: dir.clone(),
            source,
        })?;
        let file = dir.join("vtpm-permanent.bin");
        initial = match std::fs::read(&file) {
            Ok(sealed) => Some(key.open(seal::Role::State, &file, &sealed)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(SimError::StateRead { path: file, source }),
        };
        folder = Some((dir, file, Arc::new(key)));
    }
    let platform = HostPlatform {
        start: Instant::now(),
        file: folder.as_ref().map(|(_, f, k)| (f.clone(), k.clone())),
        initial,
        last: Vec::new(),
    };
    let path = folder
        .as_ref()
        .map(|(_, f, _)| f.clone())
        .unwrap_or_default();
    let mut tpm = Tpm::new(platform).map_err(|source| SimError::State { path, source })?;
    if manufacture {
        let state = folder.as_ref().map(|(d, _, k)| (d.as_path(), &**k));
        manufacture::manufacture(&mut tpm, state)?;
    }
    let blob_key = blob_key
        .map(Arc::new)
        .or_else(|| folder.as_ref().map(|(_, _, k)| k.clone()));
    Ok(Shared {
        tpm,
        powered: false,
        locality: 0,
        established: false,
        resumed: false,
        store: Store {
            file: folder.map(|(_, f, k)| (f, k)),
            blob_key,
        },
        last_cc: 0,
        auto_shutdown: true,
        trace: std::env::var_os("VTPM_SIM_TRACE").is_some(),
        record: std::env::var_os("VTPM_SIM_RECORD").and_then(|p| std::fs::File::create(p).ok()),
    })
}

fn serve(
    l: TcpListener,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    platform: bool,
    port: u16,
) {
    for conn in l.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(s) = conn else { continue };
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            match connection(s, &shared, platform) {
                Ok(Next::Continue) => {}
                Ok(Next::Stop) => {
                    log!("stop requested by {peer}");
                    stop.store(true, Ordering::SeqCst);
                    // Wake both accept loops so they notice the flag, then leave.
                    let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, port));
                    let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, port + 1));
                    std::process::exit(0);
                }
                Err(e) => {
                    let kind = if platform { "platform" } else { "command" };
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        log!("closing {kind} connection from {peer}: frame cut off");
                    } else {
                        log!("closing {kind} connection from {peer}: {e}");
                    }
                }
            }
        });
    }
}

enum Next {
    Continue,
    Stop,
}

fn read_u32(s: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    s.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// Serves one connection until the client ends the session or sends a bad frame.
fn connection(mut s: TcpStream, shared: &Mutex<Shared>, platform: bool) -> io::Result<Next> {
    tcp::tune(&s)?;
    // Buffered reads: a whole frame usually arrives in one segment, so one syscall reads it.
    // Every read re-arms TCP_QUICKACK (see `tcp::QuickAck`).
    let mut r =
        io::BufReader::with_capacity(MAX_FRAME as usize + 16, tcp::QuickAck(s.try_clone()?));
    loop {
        // The client may hang up between frames; a hang-up inside one is a truncated frame.
        if r.fill_buf()?.is_empty() {
            return Ok(Next::Continue);
        }
        let cmd = read_u32(&mut r)?;
        let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
        match cmd {
            SEND_COMMAND if !platform => {
                let mut loc = [0u8; 1];
                r.read_exact(&mut loc)?;
                let len = read_u32(&mut r)?;
                if len > MAX_FRAME {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("command frame of {len} bytes"),
                    ));
                }
                let mut buf = vec![0u8; len as usize];
                r.read_exact(&mut buf)?;
                let resp = lock().execute(loc[0], &buf);
                let mut out = Vec::with_capacity(resp.len() + 8);
                out.extend_from_slice(&(resp.len() as u32).to_be_bytes());
                out.extend_from_slice(&resp);
                out.extend_from_slice(&0u32.to_be_bytes());
                s.write_all(&out)?;
            }
            REMOTE_HANDSHAKE if !platform => {
                let _client_version = read_u32(&mut r)?;
                let mut out = Vec::new();
                out.extend_from_slice(&1u32.to_be_bytes());
                // Flags: powered on, NV available, locality supported.
                out.extend_from_slice(&0u32.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
                s.write_all(&out)?;
            }
            SESSION_END => return Ok(Next::Continue),
            STOP => return Ok(Next::Stop),
            SIGNAL_POWER_ON | SIGNAL_RESET | SIGNAL_RESTART => {
                {
                    let mut g = lock();
                    // Power-on of a TPM that is already on is a no-op (as in the reference
                    // simulator): every mssim client sends it when it connects.
                    if !g.powered || cmd != SIGNAL_POWER_ON {
                        g.tpm.power_on();
                        g.powered = true;
                    }
                }
                s.write_all(&0u32.to_be_bytes())?;
            }
            SIGNAL_POWER_OFF => {
                lock().powered = false;
                s.write_all(&0u32.to_be_bytes())?;
            }
            SIGNAL_HASH_START | SIGNAL_HASH_DATA | SIGNAL_HASH_END => {
                let mut buf = Vec::new();
                if cmd == SIGNAL_HASH_DATA {
                    let len = read_u32(&mut r)?;
                    if len > MAX_FRAME {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "hash data frame too large",
                        ));
                    }
                    buf = vec![0u8; len as usize];
                    r.read_exact(&mut buf)?;
                }
                // The platform's measurement indications (locality 4, H-CRTM / DRTM).
                let mut g = lock();
                if g.powered {
                    match cmd {
                        SIGNAL_HASH_START => {
                            g.established = true;
                            g.tpm.hash_start()
                        }
                        SIGNAL_HASH_DATA => g.tpm.hash_data(&buf),
                        _ => g.tpm.hash_end(),
                    }
                }
                drop(g);
                s.write_all(&0u32.to_be_bytes())?;
            }
            SIGNAL_PHYS_PRES_ON | SIGNAL_PHYS_PRES_OFF | SIGNAL_CANCEL_ON | SIGNAL_CANCEL_OFF
            | SIGNAL_NV_ON | SIGNAL_NV_OFF | SIGNAL_KEY_CACHE_ON | SIGNAL_KEY_CACHE_OFF => {
                s.write_all(&0u32.to_be_bytes())?;
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown command {other:#x}"),
                ));
            }
        }
    }
}
