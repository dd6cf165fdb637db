//! vTPM hypercalls and the vTPM frontend protocol (version 1): call numbers, error codes, the
//! launch and connection records the hypervisor hands a vTPM domain, and the request/response
//! frame both sides exchange in one shared page.
//!
//! # Roles
//! A *vTPM domain* serves one vTPM instance (a policy type of kind `vtpm`, named by the
//! manifest key `vtpm_instance=` on its line) to one *client* (the domain whose line says
//! `vtpm=<vTPM domain name>`). The hypervisor holds the client before its first instruction
//! until the vTPM domain has measured its launch ([`VtpmCall::Serve`], [`VtpmCall::Ready`]).
//! The client then calls [`VtpmCall::Connect`]: after the MAC decision (`vtpm { use }`, client
//! → instance) the hypervisor itself maps the client's page into the vTPM domain's grant window
//! and binds an event channel between them, and tells the vTPM domain who connected
//! ([`VtpmCall::Accept`]): the vTPM domain learns its client's identity from the hypervisor,
//! never from the client.
//!
//! # Frames
//! One [`SharedPage`] carries one request at a time (half duplex). Header words:
//! [`W_MAGIC`] (the client writes [`FRAME_MAGIC`]), the request ([`W_REQ_SEQ`] written last,
//! with release ordering, [`W_REQ_KIND`], [`W_REQ_LEN`], [`W_REQ_ARG`]) and the response
//! ([`W_RSP_SEQ`] written last, [`W_RSP_STATUS`], [`W_RSP_LEN`], [`W_RSP_ARG`]); the data area
//! (request bytes, then the response bytes over them) starts at word [`W_DATA`]. The client is
//! untrusted: the server reads every header word once and copies the request out of the page
//! before parsing it ([`take_request`]), so a client rewriting the page meanwhile can only
//! change what it asked, never make the server read out of bounds or parse two versions.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::ipc::SharedPage;
use crate::start_info::{ARGS_LEN, NAME_LEN};

/// First vTPM call number.
pub const VTPM_BASE: u64 = 56;

/// vTPM hypercall numbers (`RAX`). On failure `RAX` is a [`crate::Status`]: `Denied` when the
/// policy refused (audited), `InvalidArgument` with a [`VtpmError`] in `RDX` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum VtpmCall {
    /// vTPM domain: `RDI` = buffer address, `RSI` = its length (at least [`LAUNCH_RECORD_LEN`]).
    /// Writes the [`LaunchRecord`] of the caller's client. Checks `vtpm { admin }` caller →
    /// its instance. Value: the client's domain id.
    Serve = 56,
    /// vTPM domain: the client's launch is measured; the hypervisor lets the client run.
    /// Checks `vtpm { admin }` caller → its instance.
    Ready = 57,
    /// Client: `RDI` = the vTPM domain's id, `RSI` = guest-physical address of the caller's
    /// page-aligned frame page. Checks `vtpm { use }` caller → that domain's instance. Value:
    /// the caller's event-channel port to the vTPM domain.
    Connect = 58,
    /// vTPM domain: `RDI` = buffer address, `RSI` = its length (at least
    /// [`CONNECTION_RECORD_LEN`]). Value: 1 and a [`ConnectionRecord`] written if a client
    /// connected since the last call, 0 otherwise. Checks `vtpm { admin }` caller → its instance.
    Accept = 59,
}

impl VtpmCall {
    pub const ALL: [VtpmCall; 4] = [
        VtpmCall::Serve,
        VtpmCall::Ready,
        VtpmCall::Connect,
        VtpmCall::Accept,
    ];

    pub const fn from_raw(raw: u64) -> Option<VtpmCall> {
        if raw < VTPM_BASE || raw >= VTPM_BASE + Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[(raw - VTPM_BASE) as usize])
    }

    pub const fn name(self) -> &'static str {
        match self {
            VtpmCall::Serve => "vtpm_serve",
            VtpmCall::Ready => "vtpm_ready",
            VtpmCall::Connect => "vtpm_connect",
            VtpmCall::Accept => "vtpm_accept",
        }
    }
}

/// Why a vTPM call was wrong (`RDX` when `RAX` is `InvalidArgument`). Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum VtpmError {
    /// The named domain does not serve a vTPM instance (or has ended).
    NotAVtpm = 1,
    /// The caller is not a vTPM domain.
    NotAVtpmDomain = 2,
    /// The page address is not page-aligned ordinary memory of the caller.
    BadPage = 3,
    /// The instance already has a connected client.
    AlreadyConnected = 4,
    /// No domain names this vTPM domain as its vTPM.
    NoClient = 5,
    /// A buffer pointer or length is unusable.
    BadBuffer = 6,
    /// The instance belongs to another domain (the policy allowed the connection, the
    /// manifest did not make the caller this instance's owner).
    NotTheOwner = 7,
    /// The hypervisor's channel or grant tables are full.
    NoResources = 8,
}

impl VtpmError {
    pub const ALL: [VtpmError; 8] = [
        VtpmError::NotAVtpm,
        VtpmError::NotAVtpmDomain,
        VtpmError::BadPage,
        VtpmError::AlreadyConnected,
        VtpmError::NoClient,
        VtpmError::BadBuffer,
        VtpmError::NotTheOwner,
        VtpmError::NoResources,
    ];

    pub const fn from_raw(raw: u64) -> Option<VtpmError> {
        if raw == 0 || raw > Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[(raw - 1) as usize])
    }

    pub const fn name(self) -> &'static str {
        match self {
            VtpmError::NotAVtpm => "not a vTPM",
            VtpmError::NotAVtpmDomain => "caller is not a vTPM domain",
            VtpmError::BadPage => "bad page",
            VtpmError::AlreadyConnected => "already connected",
            VtpmError::NoClient => "no client",
            VtpmError::BadBuffer => "bad buffer",
            VtpmError::NotTheOwner => "not the instance's owner",
            VtpmError::NoResources => "no free channel or grant",
        }
    }
}

/// The PCRs a domain's launch is measured into in its own vTPM, as the hypervisor's launch is
/// in the platform TPM (`warden_tpm::eventlog::WARDEN_PCRS`): 20 gets only its separator, 21
/// the domain's configuration (name, label, args), 22 its image. Clients speak at locality 0
/// and can neither reset nor extend them (locality 2 only, PC Client).
pub const LAUNCH_PCRS: [u32; 3] = [20, 21, 22];
/// The locality the vTPM domain measures at; clients' commands run at locality 0.
pub const LAUNCH_LOCALITY: u8 = 2;

/// Bytes of a serialized [`LaunchRecord`].
pub const LAUNCH_RECORD_LEN: usize = 4 + 4 + 20 + 32 + 3 * NAME_LEN + ARGS_LEN;

/// What the hypervisor loaded for a client, handed to its vTPM domain ([`VtpmCall::Serve`]):
/// the image digests in the vTPM's two banks, computed by the hypervisor from the image module
/// it loaded, and the configuration from the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchRecord {
    pub client: u32,
    pub image_sha1: [u8; 20],
    pub image_sha256: [u8; 32],
    pub name: [u8; NAME_LEN],
    pub image: [u8; NAME_LEN],
    pub label: [u8; NAME_LEN],
    pub args: [u8; ARGS_LEN],
}

impl LaunchRecord {
    pub fn to_bytes(&self) -> [u8; LAUNCH_RECORD_LEN] {
        let mut o = [0u8; LAUNCH_RECORD_LEN];
        let mut w = Cursor { at: 0 };
        w.put(&mut o, &self.client.to_le_bytes());
        w.put(&mut o, &[0; 4]);
        w.put(&mut o, &self.image_sha1);
        w.put(&mut o, &self.image_sha256);
        w.put(&mut o, &self.name);
        w.put(&mut o, &self.image);
        w.put(&mut o, &self.label);
        w.put(&mut o, &self.args);
        o
    }

    pub fn from_bytes(b: &[u8; LAUNCH_RECORD_LEN]) -> Self {
        let mut r = Cursor { at: 0 };
        let client = u32::from_le_bytes(r.take(b));
        let _pad: [u8; 4] = r.take(b);
        LaunchRecord {
            client,
            image_sha1: r.take(b),
            image_sha256: r.take(b),
            name: r.take(b),
            image: r.take(b),
            label: r.take(b),
            args: r.take(b),
        }
    }

    /// The configuration text measured into PCR 21: what the manifest said about the domain
    /// (its image is PCR 22's). A verifier, or the domain itself from its start-info page,
    /// rebuilds it: `name=N label=L args=A`.
    pub fn config<'a>(&self, out: &'a mut [u8; CONFIG_MAX]) -> &'a [u8] {
        let mut n = 0;
        for part in [
            "name=",
            crate::fixed_str(&self.name),
            " label=",
            crate::fixed_str(&self.label),
            " args=",
            crate::fixed_str(&self.args),
        ] {
            out[n..n + part.len()].copy_from_slice(part.as_bytes());
            n += part.len();
        }
        &out[..n]
    }
}

/// Longest configuration text ([`LaunchRecord::config`]).
pub const CONFIG_MAX: usize = 32 + 2 * NAME_LEN + ARGS_LEN;

/// Bytes of a serialized [`ConnectionRecord`].
pub const CONNECTION_RECORD_LEN: usize = 4 + 4 + 8 + NAME_LEN + NAME_LEN;

/// Who connected, as the hypervisor tells the vTPM domain ([`VtpmCall::Accept`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The client's domain id (from the hypervisor's tables, not from the client).
    pub client: u32,
    /// The vTPM domain's port of the channel to the client.
    pub port: u32,
    /// Where the client's frame page is mapped in the vTPM domain's grant window.
    pub page_gpa: u64,
    pub name: [u8; NAME_LEN],
    pub label: [u8; NAME_LEN],
}

impl ConnectionRecord {
    pub fn to_bytes(&self) -> [u8; CONNECTION_RECORD_LEN] {
        let mut o = [0u8; CONNECTION_RECORD_LEN];
        let mut w = Cursor { at: 0 };
        w.put(&mut o, &self.client.to_le_bytes());
        w.put(&mut o, &self.port.to_le_bytes());
        w.put(&mut o, &self.page_gpa.to_le_bytes());
        w.put(&mut o, &self.name);
        w.put(&mut o, &self.label);
        o
    }

    pub fn from_bytes(b: &[u8; CONNECTION_RECORD_LEN]) -> Self {
        let mut r = Cursor { at: 0 };
        ConnectionRecord {
            client: u32::from_le_bytes(r.take(b)),
            port: u32::from_le_bytes(r.take(b)),
            page_gpa: u64::from_le_bytes(r.take(b)),
            name: r.take(b),
            label: r.take(b),
        }
    }
}

struct Cursor {
    at: usize,
}

impl Cursor {
    fn put(&mut self, out: &mut [u8], bytes: &[u8]) {
        out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    fn take<const N: usize>(&mut self, b: &[u8]) -> [u8; N] {
        let mut v = [0u8; N];
        v.copy_from_slice(&b[self.at..self.at + N]);
        self.at += N;
        v
    }
}

// ---- frames -------------------------------------------------------------------------------

/// Protocol version, in the low half of [`FRAME_MAGIC`].
pub const FRAME_VERSION: u64 = 1;
/// Word [`W_MAGIC`]'s value: "WVTP" and the version.
pub const FRAME_MAGIC: u64 = (u32::from_le_bytes(*b"WVTP") as u64) << 32 | FRAME_VERSION;
pub const W_MAGIC: usize = 0;
pub const W_REQ_SEQ: usize = 1;
pub const W_REQ_KIND: usize = 2;
pub const W_REQ_LEN: usize = 3;
pub const W_REQ_ARG: usize = 4;
pub const W_RSP_SEQ: usize = 5;
pub const W_RSP_STATUS: usize = 6;
pub const W_RSP_LEN: usize = 7;
pub const W_RSP_ARG: usize = 8;
/// First word of the data area (room is left for header growth).
pub const W_DATA: usize = 16;
/// Largest request or response in bytes.
pub const DATA_MAX: usize = (512 - W_DATA) * 8;

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    /// The data is a TPM command; the response data is the TPM response.
    Command = 1,
    /// Read the launch event log from byte `arg`; the response data is the next bytes (empty
    /// at the end) and the response `arg` the log's total length.
    EventLog = 2,
}

/// The response status word: the transport's verdict (a TPM error is a TPM response, `Ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum FrameStatus {
    Ok = 0,
    /// [`W_MAGIC`] is not [`FRAME_MAGIC`] (wrong protocol or version).
    BadMagic = 1,
    /// The request length exceeds [`DATA_MAX`].
    Oversize = 2,
    /// Unknown request kind.
    BadKind = 3,
    /// The vTPM cannot serve (its engine failed to start).
    Unavailable = 4,
}

impl FrameStatus {
    pub const fn from_raw(raw: u64) -> Option<FrameStatus> {
        Some(match raw {
            0 => FrameStatus::Ok,
            1 => FrameStatus::BadMagic,
            2 => FrameStatus::Oversize,
            3 => FrameStatus::BadKind,
            4 => FrameStatus::Unavailable,
            _ => return None,
        })
    }
}

/// A request the server copied out of the page; the bytes are in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub seq: u64,
    pub kind: Kind,
    pub len: usize,
    pub arg: u64,
}

/// A request the server refuses before looking at its data (answer it with this status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub seq: u64,
    pub status: FrameStatus,
}

/// Copies `bytes` into the data area (`bytes.len() <= DATA_MAX`).
fn write_data(page: &SharedPage, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        page.words[W_DATA + i].store(u64::from_le_bytes(w), Relaxed);
    }
}

/// Copies `out.len()` bytes (`<= DATA_MAX`) out of the data area.
fn read_data(page: &SharedPage, out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let w = page.words[W_DATA + i].load(Relaxed).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// Server side: the next request, if the client published one after `last_seq`. Every header
/// word is read once, and the data copied into `buf` (at least [`DATA_MAX`] bytes) before
/// anything is decided from it.
///
/// # Errors
/// [`Refused`] for a frame that must be answered with an error status.
pub fn take_request(
    page: &SharedPage,
    last_seq: u64,
    buf: &mut [u8; DATA_MAX],
) -> Result<Option<Request>, Refused> {
    let seq = page.words[W_REQ_SEQ].load(Acquire);
    if seq == last_seq {
        return Ok(None);
    }
    let refuse = |status| Err(Refused { seq, status });
    if page.words[W_MAGIC].load(Relaxed) != FRAME_MAGIC {
        return refuse(FrameStatus::BadMagic);
    }
    let kind = page.words[W_REQ_KIND].load(Relaxed);
    let len = page.words[W_REQ_LEN].load(Relaxed);
    let arg = page.words[W_REQ_ARG].load(Relaxed);
    let kind = match kind {
        1 => Kind::Command,
        2 => Kind::EventLog,
        _ => return refuse(FrameStatus::BadKind),
    };
    let Some(len) = usize::try_from(len).ok().filter(|&l| l <= DATA_MAX) else {
        return refuse(FrameStatus::Oversize);
    };
    read_data(page, &mut buf[..len]);
    Ok(Some(Request {
        seq,
        kind,
        len,
        arg,
    }))
}

/// Server side: answers request `seq` (`bytes.len() <= DATA_MAX`, longer answers are cut).
pub fn put_response(page: &SharedPage, seq: u64, status: FrameStatus, arg: u64, bytes: &[u8]) {
    let n = bytes.len().min(DATA_MAX);
    write_data(page, &bytes[..n]);
    page.words[W_RSP_STATUS].store(status as u64, Relaxed);
    page.words[W_RSP_LEN].store(n as u64, Relaxed);
    page.words[W_RSP_ARG].store(arg, Relaxed);
    page.words[W_RSP_SEQ].store(seq, Release);
}

/// Why the client side of a frame failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The request does not fit the data area.
    Oversize(usize),
    /// The server refused the frame.
    Refused(FrameStatus),
    /// The response claims more bytes than the page or the caller's buffer holds, or an
    /// unknown status: the server is broken.
    BadResponse,
}

/// Client side: publishes request `seq` (the previous one plus one).
///
/// # Errors
/// [`FrameError::Oversize`]; nothing is written then.
pub fn put_request(
    page: &SharedPage,
    seq: u64,
    kind: Kind,
    arg: u64,
    bytes: &[u8],
) -> Result<(), FrameError> {
    if bytes.len() > DATA_MAX {
        return Err(FrameError::Oversize(bytes.len()));
    }
    page.words[W_MAGIC].store(FRAME_MAGIC, Relaxed);
    write_data(page, bytes);
    page.words[W_REQ_KIND].store(kind as u64, Relaxed);
    page.words[W_REQ_LEN].store(bytes.len() as u64, Relaxed);
    page.words[W_REQ_ARG].store(arg, Relaxed);
    page.words[W_REQ_SEQ].store(seq, Release);
    Ok(())
}

/// Client side: the response to `seq` if it has arrived: its length (copied into `out`) and
/// its `arg` word.
///
/// # Errors
/// See [`FrameError`].
pub fn take_response(
    page: &SharedPage,
    seq: u64,
    out: &mut [u8],
) -> Result<Option<(usize, u64)>, FrameError> {
    if page.words[W_RSP_SEQ].load(Acquire) != seq {
        return Ok(None);
    }
    let status = FrameStatus::from_raw(page.words[W_RSP_STATUS].load(Relaxed))
        .ok_or(FrameError::BadResponse)?;
    let len = page.words[W_RSP_LEN].load(Relaxed);
    let arg = page.words[W_RSP_ARG].load(Relaxed);
    if status != FrameStatus::Ok {
        return Err(FrameError::Refused(status));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= DATA_MAX && l <= out.len())
        .ok_or(FrameError::BadResponse)?;
    read_data(page, &mut out[..len]);
    Ok(Some((len, arg)))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    #[test]
    fn numbers_round_trip_and_stay_in_the_vtpm_range() {
        for (i, c) in VtpmCall::ALL.iter().enumerate() {
            assert_eq!(*c as u64, VTPM_BASE + i as u64);
            assert_eq!(VtpmCall::from_raw(*c as u64), Some(*c));
            assert!(
                (56..64).contains(&(*c as u64)),
                "{c:?} leaves the vTPM range 56..63"
            );
        }
        assert_eq!(VtpmCall::from_raw(VTPM_BASE - 1), None);
        assert_eq!(VtpmCall::from_raw(VTPM_BASE + 4), None);
        for (i, e) in VtpmError::ALL.iter().enumerate() {
            assert_eq!(VtpmError::from_raw(*e as u64), Some(*e));
            assert_eq!(*e as u64, i as u64 + 1);
        }
        assert_eq!(VtpmError::from_raw(0), None);
        assert_eq!(VtpmError::from_raw(9), None);
    }

    #[test]
    fn records_round_trip() {
        let l = LaunchRecord {
            client: 3,
            image_sha1: [1; 20],
            image_sha256: [2; 32],
            name: crate::to_fixed("g1"),
            image: crate::to_fixed("vtpm_guest"),
            label: crate::to_fixed("g1_t"),
            args: crate::to_fixed("vtpm:1"),
        };
        assert_eq!(LaunchRecord::from_bytes(&l.to_bytes()), l);
        let mut buf = [0u8; CONFIG_MAX];
        assert_eq!(l.config(&mut buf), b"name=g1 label=g1_t args=vtpm:1");
        let c = ConnectionRecord {
            client: 1,
            port: 2,
            page_gpa: 0xC000_0000,
            name: crate::to_fixed("g"),
            label: crate::to_fixed("g_t"),
        };
        assert_eq!(ConnectionRecord::from_bytes(&c.to_bytes()), c);
    }

    fn page() -> Box<SharedPage> {
        Box::new(SharedPage::new())
    }

    #[test]
    fn a_request_and_its_response_cross_the_page() {
        let p = page();
        let mut buf = [0u8; DATA_MAX];
        assert_eq!(take_request(&p, 0, &mut buf), Ok(None));
        let cmd: Vec<u8> = (0..13u8).collect();
        put_request(&p, 1, Kind::Command, 0, &cmd).unwrap();
        let r = take_request(&p, 0, &mut buf).unwrap().unwrap();
        assert_eq!(
            r,
            Request {
                seq: 1,
                kind: Kind::Command,
                len: 13,
                arg: 0
            }
        );
        assert_eq!(&buf[..13], &cmd[..]);
        // Seen once: the same sequence number is not a new request.
        assert_eq!(take_request(&p, 1, &mut buf), Ok(None));
        let mut out = [0u8; 64];
        assert_eq!(take_response(&p, 1, &mut out), Ok(None));
        put_response(&p, 1, FrameStatus::Ok, 77, b"answer");
        assert_eq!(take_response(&p, 1, &mut out), Ok(Some((6, 77))));
        assert_eq!(&out[..6], b"answer");
        // The largest frame fits exactly; one byte more is refused on both sides.
        let big = std::vec![0xa5u8; DATA_MAX];
        put_request(&p, 2, Kind::Command, 0, &big).unwrap();
        assert_eq!(
            take_request(&p, 1, &mut buf).unwrap().unwrap().len,
            DATA_MAX
        );
        assert_eq!(buf[DATA_MAX - 1], 0xa5);
        assert_eq!(
            put_request(&p, 3, Kind::Command, 0, &[0; DATA_MAX + 1]),
            Err(FrameError::Oversize(DATA_MAX + 1))
        );
    }

    /// Frames a hostile client can write; each must be refused with its status, never read.
    #[test]
    fn malformed_frames_are_refused_with_their_status() {
        type Case = (&'static str, fn(&SharedPage), FrameStatus);
        let cases: &[Case] = &[
            (
                "no magic",
                |p| p.words[W_MAGIC].store(0, Relaxed),
                FrameStatus::BadMagic,
            ),
            (
                "other version",
                |p| p.words[W_MAGIC].store(FRAME_MAGIC + 1, Relaxed),
                FrameStatus::BadMagic,
            ),
            (
                "kind 0",
                |p| p.words[W_REQ_KIND].store(0, Relaxed),
                FrameStatus::BadKind,
            ),
            (
                "kind 3",
                |p| p.words[W_REQ_KIND].store(3, Relaxed),
                FrameStatus::BadKind,
            ),
            (
                "length beyond the page",
                |p| p.words[W_REQ_LEN].store(DATA_MAX as u64 + 1, Relaxed),
                FrameStatus::Oversize,
            ),
            (
                "length u64::MAX",
                |p| p.words[W_REQ_LEN].store(u64::MAX, Relaxed),
                FrameStatus::Oversize,
            ),
        ];
        for (what, spoil, status) in cases {
            let p = page();
            put_request(&p, 5, Kind::Command, 0, b"cmd").unwrap();
            spoil(&p);
            let mut buf = [0u8; DATA_MAX];
            assert_eq!(
                take_request(&p, 4, &mut buf),
                Err(Refused {
                    seq: 5,
                    status: *status
                }),
                "{what}"
            );
            // The refusal reaches the client as a transport error.
            put_response(&p, 5, *status, 0, &[]);
            assert_eq!(
                take_response(&p, 5, &mut [0u8; 16]),
                Err(FrameError::Refused(*status)),
                "{what}"
            );
        }
    }

    /// A broken server cannot make the client read past its buffer or the page.
    #[test]
    fn malformed_responses_are_errors() {
        let p = page();
        put_response(&p, 1, FrameStatus::Ok, 0, &[1; 100]);
        assert_eq!(
            take_response(&p, 1, &mut [0u8; 99]),
            Err(FrameError::BadResponse)
        );
        p.words[W_RSP_LEN].store(DATA_MAX as u64 + 8, Relaxed);
        assert_eq!(
            take_response(&p, 1, &mut [0u8; 8192]),
            Err(FrameError::BadResponse)
        );
        p.words[W_RSP_STATUS].store(99, Relaxed);
        assert_eq!(
            take_response(&p, 1, &mut [0u8; 8192]),
            Err(FrameError::BadResponse)
        );
    }

    /// A client rewriting the page while the server takes requests: the server copies once,
    /// so every request it returns has a length within the page and bytes that all come from
    /// the copy (the writer only ever writes frames whose bytes all equal their length's low
    /// byte, so a torn copy shows as mixed bytes, which is allowed, but never an out-of-bounds
    /// length or a panic).
    #[test]
    fn a_client_rewriting_the_page_meanwhile_cannot_break_the_server() {
        let p: &'static SharedPage = Box::leak(page());
        let writer = std::thread::spawn(move || {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            for seq in 1..20_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = (x % (DATA_MAX as u64 + 1)) as usize;
                let _ = put_request(p, seq, Kind::Command, 0, &std::vec![len as u8; len]);
                // Sometimes lie about the length after publishing.
                if x.is_multiple_of(5) {
                    p.words[W_REQ_LEN].store(x, Relaxed);
                }
                if x.is_multiple_of(7) {
                    p.words[W_REQ_KIND].store(x % 4, Relaxed);
                }
            }
        });
        let mut buf = [0u8; DATA_MAX];
        let (mut seen, mut refused, mut last) = (0, 0, 0);
        let mut done = false;
        // One more pass after the writer finished: its last frame is always there to take.
        while !done {
            done = writer.is_finished();
            match take_request(p, last, &mut buf) {
                Ok(Some(r)) => {
                    assert!(r.len <= DATA_MAX);
                    last = r.seq;
                    seen += 1;
                }
                Ok(None) => {}
                Err(Refused { seq, status }) => {
                    assert!(matches!(
                        status,
                        FrameStatus::Oversize | FrameStatus::BadKind
                    ));
                    last = seq;
                    refused += 1;
                }
            }
        }
        writer.join().unwrap();
        assert!(seen + refused > 0, "the server saw no request at all");
        assert_eq!(
            last, 19_999,
            "the server did not reach the writer's last frame"
        );
    }
}
