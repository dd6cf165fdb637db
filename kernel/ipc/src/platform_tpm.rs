//! What giving a domain the platform TPM asks the policy: `tpm { use }` on the `tpm_locality`
//! type its manifest line names (the vTPM manager's locality 1, issue 12). The hypervisor's
//! check site (`svm/tpm_grant.rs`) takes it from here, and the check-site test reads the same
//! constant.

use warden_policy::{Class, PermSet, perms};

/// Checked once, at build, for the domain whose manifest line says `platform_tpm=<type>`.
pub const GRANT_CHECK: (Class, PermSet) = (Class::Tpm, perms::tpm::USE);
