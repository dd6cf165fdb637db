//! vtpm-sim as a drop-in for swtpm: the control channel (TCP or Unix socket) and the data
//! channel (a TCP or Unix listener, or the socket QEMU passes with `CMD_SET_DATAFD`), over one
//! shared TPM.

use crate::options::{Endpoint, Socket};
use crate::seal::StateKey;
use crate::{Shared, SimError, StateDir, ctrl, data, log, tcp};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What every connection of one server shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    shared: Mutex<Shared>,
    /// A data channel was passed with `CMD_SET_DATAFD` (swtpm takes one).
    data_fd: AtomicBool,
    /// `CMD_SET_BUFFERSIZE`'s current value.
    buffer: AtomicU32,
    /// `--terminate`: end when a data channel's client closes it.
    terminate: bool,
    /// `--ctrl ...,terminate`: end when a control connection closes.
    ctrl_terminate: bool,
}

impl Ctx {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `fd` as the data channel; false if one was already passed.
    pub(crate) fn take_data_fd(self: &Arc<Ctx>, fd: OwnedFd) -> bool {
        if self.data_fd.swap(true, Ordering::SeqCst) {
            return false;
        }
        let stream = UnixStream::from(fd);
        let ctx = self.clone();
        std::thread::spawn(move || {
            let Ok(reader) = stream.try_clone() else {
                log!("cannot use the passed data channel");
                return;
            };
            data::serve(
                data::buffered(reader),
                stream,
                &ctx,
                "the passed data channel",
            );
            ctx.data_fd.store(false, Ordering::SeqCst);
            ctx.data_closed();
        });
        true
    }

    /// A data channel's client closed it: with `--terminate` the process ends (after the
    /// automatic TPM2_Shutdown swtpm sends when its main loop ends).
    fn data_closed(&self) {
        if self.terminate {
            log!("data channel closed: terminating (--terminate)");
            self.lock().stop("terminating");
            std::process::exit(0);
        }
    }

    /// Sets (when `want` > 0) and returns the data channel's buffer size, clamped to our limits.
    pub(crate) fn buffer_size(&self, want: u32) -> u32 {
        if want > 0 {
            self.buffer.store(
                want.clamp(ctrl::MIN_BUFFER, ctrl::MAX_BUFFER),
                Ordering::SeqCst,
            );
        }
        self.buffer.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn bind(e: &Endpoint) -> Result<Listener, SimError> {
        match e {
            Endpoint::Tcp(addr) => TcpListener::bind(addr)
                .map(Listener::Tcp)
                .map_err(|source| SimError::Bind {
                    port: addr.port(),
                    source,
                }),
            Endpoint::Unix { path, mode } => {
                use std::os::unix::fs::{FileTypeExt, PermissionsExt};
                // A socket left by an earlier run is replaced (as swtpm does); any other file
                // is not ours to remove.
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                    let _ = std::fs::remove_file(path);
                }
                let err = |source| SimError::BindUnix {
                    path: path.clone(),
                    source,
                };
                let l = UnixListener::bind(path).map_err(err)?;
                if let Some(m) = mode {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(*m))
                        .map_err(err)?;
                }
                Ok(Listener::Unix(l))
            }
        }
    }
}

/// A bound swtpm-compatible server, ready to `serve`.
#[derive(Debug)]
pub struct SwtpmServer {
    ctx: Arc<Ctx>,
    ctrl: Option<Listener>,
    data: Option<Listener>,
    /// Where the channels listen, for the startup line.
    pub listening: String,
}

impl SwtpmServer {
    /// Loads (or manufactures) the TPM, binds the channels, and applies `--flags`.
    pub fn bind(opts: &Socket) -> Result<SwtpmServer, SimError> {
        let state = match (&opts.state_dir, &opts.key) {
            (Some(dir), Some(key)) => Some(StateDir {
                dir: dir.clone(),
                key: StateKey::load(key)?,
            }),
            _ => None,
        };
        let blob_key = opts
            .migration_key
            .as_deref()
            .map(StateKey::load)
            .transpose()?;
        let mut shared = crate::build(state, opts.manufacture, blob_key)?;
        shared.auto_shutdown = !opts.disable_auto_shutdown;
        // A volatile state stored before the last stop (`CMD_STORE_VOLATILE`) comes back.
        let resumed =
            crate::blob::resume_file(&mut shared).map_err(|e| SimError::Blob(e.to_string()))?;
        if opts.not_need_init {
            shared.powered = true;
            shared.resumed = false;
            if opts.startup_clear && !resumed {
                let r = shared.execute(0, &crate::wire::command(0x144, &[], false, &[0, 0]));
                if r.get(6..10) != Some(&[0, 0, 0, 0]) {
                    log!("startup-clear: TPM2_Startup(CLEAR) answered {:02x?}", r);
                }
            }
        }
        let ctrl = opts.ctrl.as_ref().map(Listener::bind).transpose()?;
        let data = opts.server.as_ref().map(Listener::bind).transpose()?;
        let mut listening = Vec::new();
        for (name, l) in [("control", &ctrl), ("data", &data)] {
            match l {
                Some(Listener::Tcp(t)) => {
                    if let Ok(a) = t.local_addr() {
                        listening.push(format!("{name} {a}"));
                    }
                }
                Some(Listener::Unix(u)) => {
                    let p = u
                        .local_addr()
                        .ok()
                        .and_then(|a| a.as_pathname().map(PathBuf::from))
                        .unwrap_or_default();
                    listening.push(format!("{name} {}", p.display()));
                }
                None => {}
            }
        }
        let ctx = Arc::new(Ctx {
            shared: Mutex::new(shared),
            data_fd: AtomicBool::new(false),
            buffer: AtomicU32::new(4096),
            terminate: opts.terminate,
            ctrl_terminate: opts.ctrl_terminate,
        });
        Ok(SwtpmServer {
            ctx,
            ctrl,
            data,
            listening: listening.join(", "),
        })
    }

    /// Serves both channels until `CMD_SHUTDOWN` (or, with `--terminate` or `--ctrl
    /// ...,terminate`, a channel closing) ends the process.
    pub fn serve(self) -> ! {
        let mut threads = Vec::new();
        if let Some(l) = self.data {
            let ctx = self.ctx.clone();
            threads.push(std::thread::spawn(move || accept(l, ctx, false)));
        }
        if let Some(l) = self.ctrl {
            let ctx = self.ctx.clone();
            threads.push(std::thread::spawn(move || accept(l, ctx, true)));
        }
        for t in threads {
            let _ = t.join();
        }
        std::process::exit(0)
    }
}

fn accept(l: Listener, ctx: Arc<Ctx>, control: bool) {
    loop {
        let (stream, peer) = match &l {
            Listener::Tcp(t) => match t.accept() {
                Ok((s, a)) => (Stream::Tcp(s), a.to_string()),
                Err(e) => {
                    log!("accept: {e}");
                    continue;
                }
            },
            Listener::Unix(u) => match u.accept() {
                Ok((s, _)) => (Stream::Unix(s), "a local client".to_string()),
                Err(e) => {
                    log!("accept: {e}");
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            if control {
                let conn = match stream {
                    Stream::Tcp(s) => ctrl::Conn::Tcp(s),
                    Stream::Unix(s) => ctrl::Conn::Unix(s),
                };
                ctrl::serve(conn, &ctx, &peer);
                if ctx.ctrl_terminate {
                    log!("control connection closed: terminating (--ctrl ...,terminate)");
                    ctx.lock().stop("terminating");
                    std::process::exit(0);
                }
            } else {
                serve_data(stream, &ctx, &peer);
                ctx.data_closed();
            }
        });
    }
}

enum Stream {
    Tcp(std::net::TcpStream),
    Unix(UnixStream),
}

fn serve_data(s: Stream, ctx: &Ctx, peer: &str) {
    match s {
        Stream::Tcp(s) => {
            let reader = tcp::tune(&s).and_then(|()| s.try_clone());
            match reader {
                Ok(r) => data::serve(data::buffered(tcp::QuickAck(r)), s, ctx, peer),
                Err(e) => log!("data connection from {peer}: {e}"),
            }
        }
        Stream::Unix(s) => match s.try_clone() {
            Ok(r) => data::serve(data::buffered(r), s, ctx, peer),
            Err(e) => log!("data connection from {peer}: {e}"),
        },
    }
}
