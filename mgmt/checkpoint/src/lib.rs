//! The Warden checkpoint image: its byte format, the sealing side a service domain runs
//! (`CheckpointWriter`, `Reader`, `merge`) and the offline verification an auditor runs.
//!
//! An image is a signed manifest followed by records: guest pages and the vCPU, channel/grant
//! and vTPM state blobs, each encrypted and authenticated with AES-256-GCM under a key derived
//! from a per-checkpoint page key (which the platform TPM wraps: the image only carries the
//! wrapped bytes). The manifest is signed by a platform-TPM key whose policy lets it sign only
//! while the hypervisor's measured PCRs hold; the key's TPM2_Certify by the platform AK travels
//! in the manifest, so [`verify`] needs nothing but the AK and the reference PCR values.
//! `docs/checkpoint.md` documents the format byte by byte.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod crypt;
mod error;
mod image;
mod manifest;
mod merge;
mod merkle;
mod reader;
mod record;
pub mod tpm;
mod verify;
mod writer;

#[cfg(feature = "esapi")]
pub mod esapi;

pub use error::{ChainError, ReadError, VerifyError, WriteError};
pub use image::{HEADER_LEN, Image, MAGIC, VERSION};
pub use manifest::{Identity, Manifest};
pub use merge::merge;
pub use reader::{Page, Reader};
pub use record::{PAGE_SIZE, RECORD_HEADER_LEN, Record, RecordKind, StateKind};
pub use tpm::{PcrPolicy, policy_pcr_digest};
pub use verify::{Trust, Verified, verify, verify_chain};
pub use writer::{CheckpointWriter, Keys, Signer};
