//! What the checkpoint/restore mechanism asks the policy: the `introspect` permission each
//! introspection call needs on its target. The hypervisor's check site (`svm/introspect.rs`)
//! takes it from here, and the check-site test reads the same table.

use warden_abi::introspect::IntrospectCall;
use warden_policy::{Class, PermSet, perms};

/// The permission an introspection call needs, caller -> the target domain's label (for
/// `RestoreCreate`, the label of the domain to be created).
pub const fn introspect_requirement(call: IntrospectCall) -> (Class, PermSet) {
    let p = match call {
        // Reading what a domain is and its pages is the capture half of a checkpoint.
        IntrospectCall::TargetInfo | IntrospectCall::ReadPage => perms::introspect::CHECKPOINT,
        IntrospectCall::GetVcpu => perms::introspect::GETVCPU,
        // Creating the domain and filling its pages is the restore half; no domain but one
        // being restored can be written this way (that would be `writemem`).
        IntrospectCall::RestoreCreate | IntrospectCall::RestorePage => perms::introspect::RESTORE,
        IntrospectCall::SetVcpu => perms::introspect::SETVCPU,
        IntrospectCall::DirtyStart | IntrospectCall::DirtyFetch => perms::introspect::DIRTYLOG,
    };
    (Class::Introspect, p)
}
