//! swtpm's control channel (`include/swtpm/tpm_ioctl.h`): the out-of-band commands QEMU's
//! `tpm-emulator` backend and tpm2-tss's `swtpm` TCTI send — power (init, stop, shutdown),
//! locality, the established flag, the measurement indications, cancel, buffer size, the data
//! channel passed as a file descriptor (`SCM_RIGHTS`) and the state blobs.
//!
//! Every field is big-endian; every answer starts with a 32-bit result in TPM 1.2 codes, as
//! swtpm's. An unknown command is answered `TPM_BAD_ORDINAL` and the connection stays; a
//! malformed one (bad length, missing file descriptor, oversized blob) is answered with
//! swtpm's code, logged, and its connection closed, since the rest of the stream can no longer
//! be trusted to be framed.

use crate::swtpm::Ctx;
use crate::{blob, log};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use std::io::{self, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

const CMD_GET_CAPABILITY: u32 = 0x01;
const CMD_INIT: u32 = 0x02;
const CMD_SHUTDOWN: u32 = 0x03;
const CMD_GET_TPMESTABLISHED: u32 = 0x04;
const CMD_SET_LOCALITY: u32 = 0x05;
const CMD_HASH_START: u32 = 0x06;
const CMD_HASH_DATA: u32 = 0x07;
const CMD_HASH_END: u32 = 0x08;
const CMD_CANCEL_TPM_CMD: u32 = 0x09;
const CMD_STORE_VOLATILE: u32 = 0x0a;
const CMD_RESET_TPMESTABLISHED: u32 = 0x0b;
const CMD_GET_STATEBLOB: u32 = 0x0c;
const CMD_SET_STATEBLOB: u32 = 0x0d;
const CMD_STOP: u32 = 0x0e;
const CMD_GET_CONFIG: u32 = 0x0f;
const CMD_SET_DATAFD: u32 = 0x10;
const CMD_SET_BUFFERSIZE: u32 = 0x11;
const CMD_GET_INFO: u32 = 0x12;
const CMD_LOCK_STORAGE: u32 = 0x13;

// Result codes (TPM 1.2 numbering, as swtpm answers).
pub(crate) const TPM_SUCCESS: u32 = 0;
pub(crate) const TPM_BAD_PARAMETER: u32 = 3;
pub(crate) const TPM_FAIL: u32 = 9;
pub(crate) const TPM_BAD_ORDINAL: u32 = 10;
pub(crate) const TPM_IOERROR: u32 = 0x1f;
pub(crate) const TPM_DECRYPT_ERROR: u32 = 0x21;
pub(crate) const TPM_BAD_LOCALITY: u32 = 0x3d;

/// `PTM_CAP_*`: every command above, `SEND_COMMAND_HEADER` included (the data channel also
/// takes the Microsoft simulator's `TPM_SEND_COMMAND` framing).
pub(crate) const CAPS: u32 = 0x1_ffff;

/// `PTM_STATE_FLAG_ENCRYPTED`: our blobs are always sealed.
const STATE_FLAG_ENCRYPTED: u32 = 2;
/// `PTM_CONFIG_FLAG_FILE_KEY` / `PTM_CONFIG_FLAG_MIGRATION_KEY`.
const CONFIG_FILE_KEY: u32 = 1;
const CONFIG_MIGRATION_KEY: u32 = 2;

/// Largest `CMD_HASH_DATA` payload (the size of swtpm's `ptm_hdata` buffer).
const MAX_HASH_DATA: u32 = 4096;
/// The data channel's buffer size limits (`CMD_SET_BUFFERSIZE`).
pub(crate) const MIN_BUFFER: u32 = 1024;
pub(crate) const MAX_BUFFER: u32 = crate::MAX_FRAME;

/// A control connection: over TCP, or over a Unix socket where a command may carry a file
/// descriptor.
pub(crate) enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    /// One read of what has arrived (at most `buf`), keeping any file descriptors that came
    /// with it in `fds`; 0 at end of stream.
    fn recv_some(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        let s = match self {
            Conn::Tcp(s) => return s.read(buf),
            Conn::Unix(s) => s,
        };
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let n = rustix::net::recvmsg(
            &*s,
            &mut [IoSliceMut::new(buf)],
            &mut anc,
            RecvFlags::CMSG_CLOEXEC,
        )?
        .bytes;
        for msg in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(passed) = msg {
                fds.extend(passed);
            }
        }
        Ok(n)
    }

    /// Reads exactly `buf`.
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut off = 0;
        while off < buf.len() {
            match self.recv_some(&mut buf[off..], &mut Vec::new())? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => off += n,
            }
        }
        Ok(())
    }

    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(b),
            Conn::Unix(s) => s.write_all(b),
        }
    }
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// What one command does to its connection after the answer.
enum After {
    Continue,
    /// Close the connection, logging why.
    Close(String),
    /// `CMD_SHUTDOWN`: end the process.
    Exit,
}

/// Serves one control connection until the client hangs up or a command is malformed.
/// swtpm's input buffer: the command word and the largest request (`ptm_hdata`).
const MESSAGE: usize = 4 + 4 + MAX_HASH_DATA as usize;

/// The request bytes a command needs before it can run (its fixed fields; variable data
/// follows on the stream).
fn needed(cmd: u32) -> usize {
    match cmd {
        CMD_SET_LOCALITY | CMD_RESET_TPMESTABLISHED => 1,
        CMD_INIT | CMD_HASH_DATA | CMD_SET_BUFFERSIZE | CMD_LOCK_STORAGE => 4,
        CMD_GET_STATEBLOB | CMD_SET_STATEBLOB => 12,
        CMD_GET_INFO => 16,
        _ => 0,
    }
}

/// Reads one control message as swtpm does: what one send delivered, completed until the
/// command's fixed fields are there. Clients differ in how much they send: QEMU sends the
/// whole `ptm_*` union (4 bytes for a 1-byte locality, 16 for a 4-byte buffer size), swtpm_ioctl
/// and tpm2-tss only the request; bytes past the request are ignored, as swtpm ignores them.
/// None when the client hung up between messages.
fn message(c: &mut Conn, fds: &mut Vec<OwnedFd>) -> io::Result<Option<(u32, Vec<u8>)>> {
    let mut buf = vec![0u8; MESSAGE];
    let mut n = 0;
    loop {
        match c.recv_some(&mut buf[n..], fds)? {
            0 if n == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            k => n += k,
        }
        if n >= 4 && n - 4 >= needed(u32_at(&buf, 0)) {
            break;
        }
    }
    buf.truncate(n);
    Ok(Some((u32_at(&buf, 0), buf.split_off(4))))
}

/// A request's bytes: first those of its message, then (for data that did not fit or came in
/// a later send) the stream's.
struct Body {
    msg: Vec<u8>,
    pos: usize,
}

impl Body {
    fn take(&mut self, n: usize, c: &mut Conn) -> io::Result<Vec<u8>> {
        let have = (self.msg.len() - self.pos).min(n);
        let mut b = self.msg[self.pos..self.pos + have].to_vec();
        self.pos += have;
        if have < n {
            let mut rest = vec![0u8; n - have];
            c.read_exact(&mut rest)?;
            b.extend_from_slice(&rest);
        }
        Ok(b)
    }
}

/// Serves one control connection until the client hangs up or a command is malformed.
pub(crate) fn serve(mut c: Conn, ctx: &Arc<Ctx>, peer: &str) {
    loop {
        let mut fds = Vec::new();
        let (cmd, msg) = match message(&mut c, &mut fds) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                log!("closing control connection from {peer}: command cut off");
                return;
            }
            Err(e) => {
                log!("closing control connection from {peer}: {e}");
                return;
            }
        };
        let mut body = Body { msg, pos: 0 };
        let (out, after) = match command(&mut c, &mut body, ctx, cmd, fds) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                log!("closing control connection from {peer}: command {cmd:#x} cut off");
                return;
            }
            Err(e) => {
                log!("closing control connection from {peer}: {e}");
                return;
            }
        };
        if let Err(e) = c.write_all(&out) {
            log!("closing control connection from {peer}: {e}");
            return;
        }
        match after {
            After::Continue => {}
            After::Close(why) => {
                log!("closing control connection from {peer}: {why}");
                return;
            }
            After::Exit => {
                log!("shutdown requested by {peer}");
                std::process::exit(0);
            }
        }
    }
}

fn res(code: u32) -> Vec<u8> {
    code.to_be_bytes().to_vec()
}

/// Reads the body of command `cmd` (before taking the TPM lock, so a slow client never holds
/// up the others), runs it, and returns the answer.
fn command(
    c: &mut Conn,
    body: &mut Body,
    ctx: &Arc<Ctx>,
    cmd: u32,
    fds: Vec<OwnedFd>,
) -> io::Result<(Vec<u8>, After)> {
    let ok = |out: Vec<u8>| Ok((out, After::Continue));
    // What swtpm answers to a command that needs a running TPM while it is stopped.
    let not_running = || Ok((res(TPM_BAD_ORDINAL), After::Continue));
    match cmd {
        CMD_GET_CAPABILITY => ok([res(TPM_SUCCESS), CAPS.to_be_bytes().to_vec()].concat()),
        CMD_INIT => {
            let _flags = body.take(4, c)?;
            let mut g = ctx.lock();
            g.stop("CMD_INIT");
            // A volatile blob set while stopped, or a stored volatile state file, is resumed;
            // otherwise this is a power cycle.
            if !g.resumed {
                match blob::resume_file(&mut g) {
                    Ok(true) => {}
                    Ok(false) => g.tpm.power_on(),
                    Err(e) => {
                        log!("CMD_INIT: the stored volatile state does not resume: {e}");
                        return ok(res(e.result()));
                    }
                }
            }
            g.resumed = false;
            g.powered = true;
            ok(res(TPM_SUCCESS))
        }
        CMD_STOP => {
            ctx.lock().stop("CMD_STOP");
            ok(res(TPM_SUCCESS))
        }
        CMD_SHUTDOWN => {
            ctx.lock().stop("CMD_SHUTDOWN");
            Ok((res(TPM_SUCCESS), After::Exit))
        }
        CMD_GET_TPMESTABLISHED => {
            let g = ctx.lock();
            if !g.powered {
                return not_running();
            }
            ok(vec![0, 0, 0, 0, g.established as u8, 0, 0, 0])
        }
        CMD_SET_LOCALITY => {
            let loc = body.take(1, c)?[0];
            if loc > 4 {
                return ok(res(TPM_BAD_LOCALITY));
            }
            ctx.lock().locality = loc;
            ok(res(TPM_SUCCESS))
        }
        CMD_RESET_TPMESTABLISHED => {
            let loc = body.take(1, c)?[0];
            let mut g = ctx.lock();
            if !g.powered {
                return not_running();
            }
            // Only the platform (locality 3 or 4) may clear the flag.
            if loc != 3 && loc != 4 {
                return ok(res(TPM_BAD_LOCALITY));
            }
            g.established = false;
            ok(res(TPM_SUCCESS))
        }
        CMD_HASH_START | CMD_HASH_END => {
            let mut g = ctx.lock();
            if !g.powered {
                return not_running();
            }
            if cmd == CMD_HASH_START {
                g.established = true;
                g.tpm.hash_start();
            } else {
                g.tpm.hash_end();
            }
            ok(res(TPM_SUCCESS))
        }
        CMD_HASH_DATA => {
            let len = u32_at(&body.take(4, c)?, 0);
            if len > MAX_HASH_DATA {
                return Ok((
                    res(TPM_BAD_PARAMETER),
                    After::Close(format!(
                        "CMD_HASH_DATA of {len} bytes (at most {MAX_HASH_DATA})"
                    )),
                ));
            }
            let data = body.take(len as usize, c)?;
            let mut g = ctx.lock();
            if !g.powered {
                return not_running();
            }
            g.tpm.hash_data(&data);
            ok(res(TPM_SUCCESS))
        }
        CMD_CANCEL_TPM_CMD => {
            if !ctx.lock().powered {
                return not_running();
            }
            // Commands run to completion under the lock: there is never one to cancel.
            ok(res(TPM_SUCCESS))
        }
        CMD_STORE_VOLATILE => {
            let g = ctx.lock();
            if !g.powered {
                return not_running();
            }
            ok(res(store_volatile(&g)))
        }
        CMD_GET_STATEBLOB => {
            let b = body.take(12, c)?;
            let (ty, offset) = (u32_at(&b, 4), u32_at(&b, 8));
            let g = ctx.lock();
            if !g.powered {
                return not_running();
            }
            let (code, data) = match blob::get(&g, ty) {
                Ok(sealed) => (TPM_SUCCESS, sealed),
                Err(e) => {
                    log!("CMD_GET_STATEBLOB type {ty}: {e}");
                    (e.result(), Vec::new())
                }
            };
            drop(g);
            let data = data.get(offset as usize..).unwrap_or_default();
            let mut out = res(code);
            out.extend_from_slice(&STATE_FLAG_ENCRYPTED.to_be_bytes());
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(data);
            ok(out)
        }
        CMD_SET_STATEBLOB => {
            let b = body.take(12, c)?;
            let (ty, len) = (u32_at(&b, 4), u32_at(&b, 8));
            if len > blob::MAX_BLOB {
                return Ok((
                    res(TPM_FAIL),
                    After::Close(format!(
                        "state blob of {len} bytes (at most {})",
                        blob::MAX_BLOB
                    )),
                ));
            }
            // Read the whole blob before deciding: a cut one leaves the TPM as it was.
            let data = body.take(len as usize, c)?;
            let mut g = ctx.lock();
            if g.powered {
                return not_running();
            }
            match blob::set(&mut g, ty, &data) {
                Ok(()) => ok(res(TPM_SUCCESS)),
                Err(e) => {
                    log!("CMD_SET_STATEBLOB type {ty} refused, TPM unchanged: {e}");
                    ok(res(e.result()))
                }
            }
        }
        CMD_GET_CONFIG => {
            let g = ctx.lock();
            let mut flags = 0u32;
            if g.store.file.is_some() {
                flags |= CONFIG_FILE_KEY;
            }
            if g.store.blob_key.is_some() {
                flags |= CONFIG_MIGRATION_KEY;
            }
            ok([res(TPM_SUCCESS), flags.to_be_bytes().to_vec()].concat())
        }
        CMD_SET_DATAFD => {
            let mut fds = fds.into_iter();
            let (Some(fd), None) = (fds.next(), fds.next()) else {
                return Ok((
                    res(TPM_BAD_PARAMETER),
                    After::Close("CMD_SET_DATAFD without exactly one file descriptor".into()),
                ));
            };
            if !ctx.take_data_fd(fd) {
                // swtpm's answer when a data channel is already set.
                return ok(res(TPM_IOERROR));
            }
            ok(res(TPM_SUCCESS))
        }
        CMD_SET_BUFFERSIZE => {
            let want = u32_at(&body.take(4, c)?, 0);
            if want > 0 && ctx.lock().powered {
                return not_running();
            }
            let size = ctx.buffer_size(want);
            let mut out = res(TPM_SUCCESS);
            for v in [size, MIN_BUFFER, MAX_BUFFER] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            ok(out)
        }
        CMD_GET_INFO => {
            let b = body.take(16, c)?;
            let flags = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
            let offset = u32_at(&b, 8) as usize;
            let info = info(flags);
            if offset >= info.len() {
                return ok(res(TPM_BAD_PARAMETER));
            }
            // The string goes out with its terminating NUL, as swtpm sends it.
            let mut text = info.into_bytes();
            text.push(0);
            let part = &text[offset..];
            let mut out = res(TPM_SUCCESS);
            out.extend_from_slice(&(text.len() as u32).to_be_bytes());
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
            ok(out)
        }
        CMD_LOCK_STORAGE => {
            let _retries = body.take(4, c)?;
            // One process owns its state folder; there is no storage lock to wait for.
            ok(res(TPM_SUCCESS))
        }
        other => {
            log!("unknown control command {other:#x}: answered TPM_BAD_ORDINAL");
            ok(res(TPM_BAD_ORDINAL))
        }
    }
}

/// `CMD_STORE_VOLATILE`: the sealed volatile blob beside the permanent state, as swtpm keeps
/// its volatile state file (nothing to do for a TPM without a state folder).
fn store_volatile(g: &crate::Shared) -> u32 {
    let Some((file, _)) = &g.store.file else {
        return TPM_SUCCESS;
    };
    let sealed = match blob::get(g, blob::VOLATILE) {
        Ok(s) => s,
        Err(e) => {
            log!("CMD_STORE_VOLATILE: {e}");
            return e.result();
        }
    };
    let path = file.with_file_name("vtpm-volatile.bin");
    // Sealed with the blob key, as a migration blob is.
    match std::fs::write(&path, sealed) {
        Ok(()) => TPM_SUCCESS,
        Err(e) => {
            log!("CMD_STORE_VOLATILE: cannot write {}: {e}", path.display());
            TPM_IOERROR
        }
    }
}

/// `CMD_GET_INFO`: the JSON objects swtpm returns for the flags it knows, joined.
fn info(flags: u64) -> String {
    let mut parts = Vec::new();
    if flags & 1 != 0 {
        parts.push(r#""TPMSpecification":{"family":"2.0","level":0,"revision":164}"#.to_string());
    }
    if flags & 2 != 0 {
        parts.push(format!(
            r#""TPMAttributes":{{"manufacturer":"id:57524454","version":"id:{}","model":"vtpm-sim"}}"#,
            env!("CARGO_PKG_VERSION")
        ));
    }
    format!("{{{}}}", parts.join(","))
}
