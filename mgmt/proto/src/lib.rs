//! The Warden management protocol: versioned, length-prefixed, signed request/response frames
//! between `wardenctl` and the management domain (`no_std` + `alloc`, serde + postcard).
//!
//! A connection starts with the server's [`Hello`] (protocol version and a fresh nonce). Every
//! request is an [`Envelope`]: the operator's key id, a per-connection sequence number and the
//! postcard bytes of a [`Request`], signed with the operator's ECDSA P-256 key over
//! [`signed_bytes`] (domain tag, server nonce, key id, sequence, body). The server answers each
//! with a [`Response`] carrying the same sequence number, signed with the management domain's
//! response key over [`response_signed_bytes`] (nonce, sequence, result). `docs/mgmt.md` has the full story.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod auth;
mod error;
mod frame;
mod message;
mod role;

pub use auth::{
    KeyId, Operator, OperatorList, OperatorsError, PUBLIC_KEY_LEN, SIGNATURE_LEN, Signer,
    public_key, response_signed_bytes, signed_bytes, verify, verify_response,
};
pub use error::{Error, HvStatus};
pub use frame::{FrameError, FrameReader, MAX_FRAME, decode, encode_frame};
pub use message::{
    DomainState, DomainSummary, Envelope, Hello, HostInfo, NONCE_LEN, Reply, Request, Response,
    Template, TemplateSummary,
};
pub use role::Role;

/// The protocol version this crate speaks; a frame with another version is refused.
/// Version 2: responses are signed and the hello carries the response key.
pub const VERSION: u16 = 2;
