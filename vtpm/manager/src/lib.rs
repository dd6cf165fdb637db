//! `warden-vtpm-manager`: the vTPM manager's sealing core — each vTPM instance's state sealed
//! to the platform TPM under the hypervisor's measured PCRs, with a platform NV counter that
//! refuses rollback.
//!
//! The manager domain (and, later, the checkpoint path: "export this domain's vTPM state
//! sealed") uses [`Sealer`] over any `warden_tpm::Transport`; host tests drive it against swtpm.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod blob;
mod policy;
mod sealer;

pub use blob::{BLOB_MAGIC, BLOB_VERSION};
pub use policy::{MANAGER_LOCALITY, SEALED_PCRS, counter_write_policy, pcr_policy};
pub use sealer::{COUNTER_BASE, MAX_INSTANCES, SealError, Sealer};
