//! `warden-tpm`: what Warden's hypervisor says to a TPM 2.0 for measured launch and
//! attestation, and the TCG crypto-agile event log it keeps of its measurements.
//!
//! No allocator, no I/O of its own: a [`Transport`] moves command bytes (the TIS/FIFO driver
//! in the hypervisor, a TCP socket to swtpm in host tests).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod alg;
pub mod client;
pub mod eventlog;
#[cfg(feature = "host")]
pub mod host;
pub mod storage;

pub use alg::{Banks, Digest, DigestSet, HashAlg, MultiHasher};
pub use client::{AttestationKey, Blob, Error, PcrSelection, Quote, Tpm, Transport};
pub use storage::SealedObject;
