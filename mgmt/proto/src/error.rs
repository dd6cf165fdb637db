//! Errors the server reports to the client: each says which check refused the request.

use alloc::string::String;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::role::Role;

/// What the hypervisor answered to a lifecycle hypercall (the ABI's status codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HvStatus {
    /// The MAC policy refused the call (the hypervisor audited the decision).
    Denied,
    InvalidArgument,
    BadAddress,
    BadLength,
    /// This hypervisor does not implement the call.
    UnknownCall,
    /// The request does not apply (the hypervisor's reason, e.g. `wrong state`, `bad image`).
    Invalid(String),
    /// A status this protocol version does not know.
    Other(u64),
    /// Chinese Wall admission refused the domain's run label: a domain of a label in the same
    /// conflict set runs on this host. (Appended last: postcard numbers variants in order.)
    WallConflict,
}

/// Why a request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Error {
    /// The frame is not a well-formed message of this protocol.
    Malformed,
    /// The envelope speaks another protocol version.
    Version {
        got: u16,
        want: u16,
    },
    /// No operator with this key is configured.
    UnknownKey,
    /// The signature does not verify under the operator's key.
    BadSignature,
    /// The sequence number is not the next one of this connection (a replay or a reorder).
    Replay {
        expected: u64,
        got: u64,
    },
    /// The operator's role does not allow the request.
    Forbidden {
        role: Role,
        request: String,
        needs: Role,
    },
    UnknownTemplate(String),
    TemplateExists(String),
    /// A template field is out of range (memory, name, label, args, empty image).
    BadTemplate(String),
    NoSuchDomain(u32),
    /// The hypervisor refused a lifecycle call.
    Hypervisor {
        call: String,
        status: HvStatus,
    },
    /// Creation got past `create` but a later step failed; the domain was destroyed again.
    CreateFailed {
        step: String,
        status: HvStatus,
    },
    /// Another operator has the server's store full (templates or connections).
    Full,
    /// The policy's Chinese Wall refused to start a domain under `label`: a domain whose label
    /// is in the same conflict set runs on this host. Nothing was left behind: the partial
    /// domain was destroyed. (Appended last: postcard numbers variants in order.)
    WallConflict {
        label: String,
    },
}

impl fmt::Display for HvStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HvStatus::Denied => {
                f.write_str("denied by the MAC policy (the hypervisor audited the decision)")
            }
            HvStatus::InvalidArgument => f.write_str("invalid argument"),
            HvStatus::BadAddress => f.write_str("bad address"),
            HvStatus::BadLength => f.write_str("bad length"),
            HvStatus::UnknownCall => f.write_str("not implemented by this hypervisor"),
            HvStatus::Invalid(why) => write!(f, "refused: {why}"),
            HvStatus::Other(s) => write!(f, "unknown status {s}"),
            HvStatus::WallConflict => f.write_str("Chinese Wall conflict"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed => f.write_str("malformed frame: not a management-protocol message"),
            Error::Version { got, want } => write!(
                f,
                "protocol version {got} refused (the server speaks {want})"
            ),
            Error::UnknownKey => {
                f.write_str("unknown key: no operator with this key is configured")
            }
            Error::BadSignature => {
                f.write_str("bad signature: the request is not signed by the operator's key")
            }
            Error::Replay { expected, got } => {
                write!(
                    f,
                    "replayed request refused (sequence {got}, expected {expected})"
                )
            }
            Error::Forbidden {
                role,
                request,
                needs,
            } => write!(
                f,
                "forbidden: role `{}` may not `{request}` (needs `{}`)",
                role.name(),
                needs.name()
            ),
            Error::UnknownTemplate(n) => write!(f, "unknown template `{n}`"),
            Error::TemplateExists(n) => write!(f, "template `{n}` already exists"),
            Error::BadTemplate(why) => write!(f, "bad template: {why}"),
            Error::NoSuchDomain(id) => write!(f, "no domain with id {id}"),
            Error::Hypervisor { call, status } => {
                write!(f, "hypervisor refused `{call}`: {status}")
            }
            Error::CreateFailed { step, status } => {
                write!(
                    f,
                    "create failed at `{step}`: {status}; the partial domain was destroyed"
                )
            }
            Error::Full => f.write_str("the management domain's store is full"),
            Error::WallConflict { label } => write!(
                f,
                "Chinese Wall conflict: label `{label}` may not run while a domain of a label in \
                 its conflict set runs; nothing was created"
            ),
        }
    }
}
