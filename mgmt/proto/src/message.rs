//! The messages: the server's hello, the signed request envelope, requests, replies.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::auth::KeyId;
use crate::error::Error;

/// Bytes of the server's per-connection nonce.
pub const NONCE_LEN: usize = 32;

/// The first frame of every connection, server to client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    /// Never repeats for a given server: a request signed for one connection is useless on any
    /// other.
    pub nonce: [u8; NONCE_LEN],
    /// The management domain's response key (SEC1 compressed P-256, 33 bytes): the client
    /// compares it with the key it pinned before trusting any response.
    pub server_key: Vec<u8>,
}

/// A signed request, client to server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u16,
    /// Which operator signed (SHA-256 of the compressed public key).
    pub key: KeyId,
    /// 0 for the connection's first request, then +1 each: anything else is a replay.
    pub seq: u64,
    /// The postcard bytes of a [`Request`]: the signature covers these exact bytes.
    pub body: Vec<u8>,
    /// ECDSA P-256 / SHA-256, `r || s`, over [`crate::signed_bytes`].
    pub signature: Vec<u8>,
}

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    HostInfo,
    DomainList,
    DomainInfo {
        id: u32,
    },
    /// Creates, builds, labels and starts a domain from a stored template.
    DomainCreate {
        template: String,
        name: String,
    },
    DomainPause {
        id: u32,
    },
    DomainResume {
        id: u32,
    },
    DomainDestroy {
        id: u32,
    },
    DomainSetPriority {
        id: u32,
        priority: u8,
    },
    TemplateAdd(Template),
    TemplateList,
    TemplateRm {
        name: String,
    },
    HostShutdown,
    /// The hypervisor's audit ring from sequence number `from_seq` on (admin; the management
    /// domain needs `hypervisor { audit_read }` too).
    AuditRead {
        from_seq: u64,
    },
}

impl Request {
    /// The name operators see (the `wardenctl` words) in errors and role tables.
    pub fn name(&self) -> &'static str {
        match self {
            Request::HostInfo => "host info",
            Request::DomainList => "domain list",
            Request::DomainInfo { .. } => "domain info",
            Request::DomainCreate { .. } => "domain create",
            Request::DomainPause { .. } => "domain pause",
            Request::DomainResume { .. } => "domain resume",
            Request::DomainDestroy { .. } => "domain destroy",
            Request::DomainSetPriority { .. } => "domain set-priority",
            Request::TemplateAdd(_) => "template add",
            Request::TemplateList => "template list",
            Request::TemplateRm { .. } => "template rm",
            Request::HostShutdown => "host shutdown",
            Request::AuditRead { .. } => "host audit",
        }
    }
}

/// A domain template: everything needed to create a domain but its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    /// The ELF64 image.
    pub image: Vec<u8>,
    pub memory_mib: u32,
    pub priority: u8,
    /// The label the domain runs under (after the build → run transition).
    pub label: String,
    pub args: String,
    /// The label the domain is built under, when not the server's default build label: the
    /// policy gives each build label exactly one run label, so a template whose run label is
    /// not the default's needs its own. (Appended last: postcard encodes fields in order.)
    pub build_label: Option<String>,
}

/// A template as listed (the image by size and digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSummary {
    pub name: String,
    pub image_bytes: u64,
    pub image_sha256: [u8; 32],
    pub memory_mib: u32,
    pub priority: u8,
    pub label: String,
    pub args: String,
}

/// A domain's scheduling state as the hypervisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainState {
    Building,
    Runnable,
    Blocked,
    Paused,
    Dead,
}

impl DomainState {
    pub fn name(self) -> &'static str {
        match self {
            DomainState::Building => "building",
            DomainState::Runnable => "running",
            DomainState::Blocked => "blocked",
            DomainState::Paused => "paused",
            DomainState::Dead => "dead",
        }
    }
}

/// One domain as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSummary {
    pub id: u32,
    pub name: String,
    pub label: String,
    pub state: DomainState,
    pub priority: u8,
    pub memory_bytes: u64,
    pub cpu_ticks: u64,
}

/// The host as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// The hypervisor's ABI version (`major << 16 | minor`).
    pub abi_version: u32,
    /// `None` when the hypervisor does not answer `physinfo`.
    pub memory_total_bytes: Option<u64>,
    pub memory_free_bytes: Option<u64>,
    pub domains: u32,
    /// The management domain's own id and label.
    pub mgmt_domain: u32,
    pub mgmt_label: String,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    HostInfo(HostInfo),
    Domains(Vec<DomainSummary>),
    Domain(DomainSummary),
    Created {
        id: u32,
    },
    Templates(Vec<TemplateSummary>),
    /// An audit read as the hypervisor wrote it: the header and whole records in the format of
    /// `warden_ipc::audit` (the client decodes and checks them).
    Audit(Vec<u8>),
    /// The request was carried out and has nothing to report.
    Done,
}

/// The answer to one envelope (or to a frame that could not be read as one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The envelope's sequence number (`u64::MAX` if the frame was not an envelope).
    pub seq: u64,
    pub result: Result<Reply, Error>,
    /// ECDSA P-256 / SHA-256, `r || s`, by the management domain's response key over
    /// [`crate::response_signed_bytes`] (this connection's nonce, `seq`, `result`).
    pub signature: Vec<u8>,
}
