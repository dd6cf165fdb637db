//! The vTPM frontend of a domain: typed wrappers for the vTPM hypercalls and [`VtpmClient`],
//! a `warden_tpm::Transport` over the shared frame page and event channel the hypervisor sets
//! up at [`connect`], so a domain drives its vTPM with the same typed TPM client
//! (`warden_tpm::Tpm`) the hypervisor uses for the platform TPM.

use alloc::vec::Vec;

use warden_abi::guest::hypercall as raw;
use warden_abi::ipc::SharedPage;
use warden_abi::vtpm::{
    CONNECTION_RECORD_LEN, ConnectionRecord, DATA_MAX, FrameError, Kind, LAUNCH_RECORD_LEN,
    LaunchRecord, VtpmCall, VtpmError, put_request, take_response,
};
use warden_abi::{HypercallArgs, Status};

use crate::ipc::{self, IpcFail};

/// Why a vTPM call or transfer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VtpmFail {
    /// The policy refused it (the hypervisor audited the denial).
    Denied,
    /// The request was wrong.
    Invalid(VtpmError),
    /// Another status (unknown call, bad address, …).
    Other(Status),
    /// The frame could not be sent or the answer is malformed.
    Frame(FrameError),
    /// The event channel failed.
    Channel(IpcFail),
    /// No answer within the client's timeout.
    Timeout,
    /// The vTPM domain has ended (its end of the channel is closed).
    Gone,
}

fn call(c: VtpmCall, args: [u64; 5]) -> Result<u64, VtpmFail> {
    let (status, value) = raw(HypercallArgs {
        call: c as u64,
        args,
    });
    match Status::from_raw(status) {
        Some(Status::Ok) => Ok(value),
        Some(Status::Denied) => Err(VtpmFail::Denied),
        Some(Status::InvalidArgument) => Err(VtpmError::from_raw(value)
            .map_or(VtpmFail::Other(Status::InvalidArgument), VtpmFail::Invalid)),
        Some(s) => Err(VtpmFail::Other(s)),
        None => Err(VtpmFail::Other(Status::InvalidArgument)),
    }
}

/// vTPM domain: the launch record of its client.
///
/// # Errors
/// See [`VtpmFail`].
pub fn serve() -> Result<LaunchRecord, VtpmFail> {
    let mut buf = [0u8; LAUNCH_RECORD_LEN];
    call(
        VtpmCall::Serve,
        [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
    )?;
    Ok(LaunchRecord::from_bytes(&buf))
}

/// vTPM domain: the client's launch is measured; let it run.
///
/// # Errors
/// See [`VtpmFail`].
pub fn ready() -> Result<(), VtpmFail> {
    call(VtpmCall::Ready, [0; 5]).map(|_| ())
}

/// vTPM domain: who connected since the last call, if anyone.
///
/// # Errors
/// See [`VtpmFail`].
pub fn accept() -> Result<Option<ConnectionRecord>, VtpmFail> {
    let mut buf = [0u8; CONNECTION_RECORD_LEN];
    let got = call(
        VtpmCall::Accept,
        [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
    )?;
    Ok((got == 1).then(|| ConnectionRecord::from_bytes(&buf)))
}

/// Client: asks the hypervisor to connect this domain to the vTPM served by domain `vtpm`,
/// through `page` (a page-aligned page of this domain). Returns the raw port; [`VtpmClient::connect`]
/// is the usual entry.
///
/// # Errors
/// See [`VtpmFail`].
pub fn connect_raw(vtpm: u32, page_gpa: u64) -> Result<u32, VtpmFail> {
    call(VtpmCall::Connect, [vtpm.into(), page_gpa, 0, 0, 0]).map(|p| p as u32)
}

/// A connection to this domain's vTPM.
#[derive(Debug)]
pub struct VtpmClient {
    page: &'static SharedPage,
    port: u32,
    seq: u64,
    /// How long one exchange may take before it is a [`VtpmFail::Timeout`].
    pub timeout_us: u64,
}

impl VtpmClient {
    /// Connects to the vTPM served by domain `vtpm` through `page`.
    ///
    /// # Errors
    /// See [`VtpmFail`].
    pub fn connect(vtpm: u32, page: &'static SharedPage) -> Result<Self, VtpmFail> {
        let port = connect_raw(vtpm, core::ptr::from_ref(page) as u64)?;
        Ok(VtpmClient {
            page,
            port,
            seq: 0,
            timeout_us: 30_000_000,
        })
    }

    /// The event-channel port to the vTPM domain.
    #[must_use]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Sends one request and waits for its answer; returns its length in `out` and its `arg`.
    ///
    /// # Errors
    /// See [`VtpmFail`].
    pub fn exchange(
        &mut self,
        kind: Kind,
        arg: u64,
        req: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, u64), VtpmFail> {
        self.seq += 1;
        put_request(self.page, self.seq, kind, arg, req).map_err(VtpmFail::Frame)?;
        self.signal()?;
        let mask = 1u64 << self.port;
        let mut waited = 0u64;
        // Waits in slices so that a lost wake-up costs a slice, not the whole timeout.
        const SLICE_US: u64 = 100_000;
        loop {
            if let Some(r) = take_response(self.page, self.seq, out).map_err(VtpmFail::Frame)? {
                return Ok(r);
            }
            if waited >= self.timeout_us {
                return Err(VtpmFail::Timeout);
            }
            let pending = ipc::evtchn_wait(mask, Some(SLICE_US)).map_err(VtpmFail::Channel)?;
            waited += SLICE_US;
            if pending != 0
                && take_response(self.page, self.seq, out)
                    .map_err(VtpmFail::Frame)?
                    .is_none()
            {
                // Woken without an answer: the vTPM domain may have ended (the hypervisor
                // closed its end and woke us). Sending tells.
                self.signal()?;
            }
        }
    }

    fn signal(&self) -> Result<(), VtpmFail> {
        match ipc::evtchn_send(self.port) {
            Ok(()) => Ok(()),
            Err(IpcFail::Invalid(warden_abi::ipc::IpcError::PeerClosed)) => Err(VtpmFail::Gone),
            Err(e) => Err(VtpmFail::Channel(e)),
        }
    }

    /// Reads the launch event log the vTPM domain wrote (TCG crypto-agile format).
    ///
    /// # Errors
    /// See [`VtpmFail`].
    pub fn event_log(&mut self) -> Result<Vec<u8>, VtpmFail> {
        let mut log = Vec::new();
        let mut chunk = alloc::vec![0u8; DATA_MAX];
        loop {
            let (n, total) = self.exchange(Kind::EventLog, log.len() as u64, &[], &mut chunk)?;
            log.extend_from_slice(&chunk[..n]);
            if n == 0 || log.len() as u64 >= total {
                return Ok(log);
            }
        }
    }
}

impl warden_tpm::Transport for VtpmClient {
    type Error = VtpmFail;

    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, VtpmFail> {
        self.exchange(Kind::Command, 0, cmd, rsp).map(|(n, _)| n)
    }
}
