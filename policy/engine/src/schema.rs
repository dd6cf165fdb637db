//! The schema: kinds of labelled objects, classes, permissions and the information-flow map.
//!
//! **Single source of truth.** The policy compiler resolves rule names against this table and
//! the hypervisor checks hypercalls with the constants it defines (`perms::domain::PAUSE`, ...).
//! A binary policy records [`hash()`] of this table; the loader refuses a policy compiled
//! against a different schema, so the two sides cannot drift apart silently.
//!
//! Each permission names the hypercall that checks it (`HC_*`, the check site in the
//! hypervisor), what its *source* (subject) and *target* are, and which way it moves
//! information ([`Flow`]). Permission bit `i` of a class is entry `i` of its `perms` list.
//!
//! Adding a permission at the end of a class or a class at the end of the table is
//! compatible with existing source policies but changes [`hash()`]: recompile the policies.
//! Never rename or reorder: hypervisor code and policies refer to these names.

use core::fmt;

use crate::PermSet;

/// What a type labels. A rule's class fixes the kind its target must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A domain (guest, service domain, management domain). Only domains are subjects.
    Domain = 0,
    // 1 was `evtchn`, a kind no class could target (event channels are checked against the
    // peer domain: class `evtchn`, target kind `domain`). Retired; never reuse the value.
    /// A vTPM instance served by a vTPM service domain.
    Vtpm = 2,
    /// A passthrough device (PCI function).
    Device = 3,
    /// A range of x86 I/O ports.
    Ioport = 4,
    /// A range of physical MMIO addresses.
    Mmio = 5,
    /// One locality of the platform TPM.
    TpmLocality = 6,
    /// The hypervisor itself (console, audit ring, policy, physical info).
    Hypervisor = 7,
    /// A physical interrupt line (what device passthrough routes to a domain).
    Irq = 8,
}

/// Every kind, in discriminant order.
pub const KINDS: [Kind; 8] = [
    Kind::Domain,
    Kind::Vtpm,
    Kind::Device,
    Kind::Ioport,
    Kind::Mmio,
    Kind::TpmLocality,
    Kind::Hypervisor,
    Kind::Irq,
];

impl Kind {
    /// The keyword used in policy source.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::Vtpm => "vtpm",
            Kind::Device => "device",
            Kind::Ioport => "ioport",
            Kind::Mmio => "mmio",
            Kind::TpmLocality => "tpm_locality",
            Kind::Hypervisor => "hypervisor",
            Kind::Irq => "irq",
        }
    }

    /// Looks a kind up by its source keyword.
    #[must_use]
    pub fn by_name(name: &str) -> Option<Kind> {
        KINDS.iter().copied().find(|k| k.name() == name)
    }

    /// Decodes the byte stored in a binary policy (retired values decode to `None`).
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Kind> {
        let mut i = 0;
        while i < KINDS.len() {
            if KINDS[i] as u8 == v {
                return Some(KINDS[i]);
            }
            i += 1;
        }
        None
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a permission moves information between its source (subject) and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Data moves from the subject into the target (a write).
    SourceToTarget,
    /// Data moves from the target to the subject (a read).
    TargetToSource,
    /// Data moves both ways (a shared mapping, a request/response service).
    Both,
    /// Control only; no data channel is modelled (covert timing channels are out of scope).
    None,
}

impl Flow {
    /// Whether the permission carries data from subject to target.
    #[must_use]
    pub const fn forward(self) -> bool {
        matches!(self, Flow::SourceToTarget | Flow::Both)
    }
    /// Whether the permission carries data from target to subject.
    #[must_use]
    pub const fn backward(self) -> bool {
        matches!(self, Flow::TargetToSource | Flow::Both)
    }
    /// Short name used in tool output.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Flow::SourceToTarget => "source->target",
            Flow::TargetToSource => "target->source",
            Flow::Both => "both",
            Flow::None => "none",
        }
    }
}

/// One permission of a class.
#[derive(Debug, Clone, Copy)]
pub struct PermInfo {
    /// Bit index in the class's [`PermSet`]; equals the position in [`ClassInfo::perms`].
    pub bit: u8,
    /// Name used in policy source.
    pub name: &'static str,
    /// Information-flow direction.
    pub flow: Flow,
    /// The hypercall (check site in the hypervisor) that asks for this permission.
    pub hypercall: &'static str,
    /// What the subject is.
    pub source: &'static str,
    /// What the target is.
    pub target: &'static str,
}

impl PermInfo {
    /// This permission as a one-bit set.
    #[must_use]
    pub const fn set(&self) -> PermSet {
        PermSet(1 << self.bit)
    }
}

/// One class: a group of permissions that all apply to targets of one kind.
#[derive(Debug, Clone, Copy)]
pub struct ClassInfo {
    /// The class id.
    pub class: Class,
    /// Name used in policy source.
    pub name: &'static str,
    /// The kind every target of this class must have.
    pub target_kind: Kind,
    /// One line on what the class governs.
    pub doc: &'static str,
    /// The permissions; entry `i` is bit `i`.
    pub perms: &'static [PermInfo],
}

impl ClassInfo {
    /// All permissions of the class.
    #[must_use]
    pub const fn all(&self) -> PermSet {
        if self.perms.len() >= 64 { PermSet(u64::MAX) } else { PermSet((1u64 << self.perms.len()) - 1) }
    }

    /// Looks a permission up by name.
    #[must_use]
    pub fn perm(&self, name: &str) -> Option<&'static PermInfo> {
        self.perms.iter().find(|p| p.name == name)
    }
}

macro_rules! schema {
    ($(
        $(#[$cattr:meta])*
        $cvar:ident $cmod:ident = $cname:literal, target $kind:ident, $cdoc:literal {
            $( $bit:literal $pconst:ident = $pname:literal, $flow:ident,
               $hc:literal, source $src:literal, target $tgt:literal; )*
        }
    )*) => {
        /// A permission class. The discriminant is the byte stored in binary policies.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum Class { $( $(#[$cattr])* $cvar ),* }

        /// Every class, in discriminant order.
        pub const ALL_CLASSES: &[Class] = &[ $( Class::$cvar ),* ];

        /// Typed permission constants for the hypervisor's check sites, one module per class.
        pub mod perms {
            $(
                #[doc = $cdoc]
                pub mod $cmod {
                    use crate::PermSet;
                    $(
                        #[doc = concat!("`", $pname, "` — checked by `", $hc, "`; source: ", $src, "; target: ", $tgt, ".")]
                        pub const $pconst: PermSet = PermSet(1 << $bit);
                    )*
                }
            )*
        }

        /// The schema table. Index `i` describes the class with discriminant `i`.
        pub static CLASSES: &[ClassInfo] = &[ $(
            ClassInfo {
                class: Class::$cvar,
                name: $cname,
                target_kind: Kind::$kind,
                doc: $cdoc,
                perms: &[ $( PermInfo {
                    bit: $bit, name: $pname, flow: Flow::$flow,
                    hypercall: $hc, source: $src, target: $tgt,
                } ),* ],
            }
        ),* ];
    };
}

schema! {
    /// Services of the hypervisor itself.
    Hypervisor hypervisor = "hypervisor", target Hypervisor, "Services of the hypervisor itself." {
        0 CONSOLE = "console", SourceToTarget,
            "HC_CONSOLE_WRITE", source "calling domain", target "the hypervisor label";
        1 AUDIT_READ = "audit_read", TargetToSource,
            "HC_AUDIT_READ", source "calling domain", target "the hypervisor label";
        2 POLICY_READ = "policy_read", TargetToSource,
            "HC_POLICY_INFO", source "calling domain", target "the hypervisor label";
        3 PHYSINFO = "physinfo", TargetToSource,
            "HC_PHYSINFO", source "calling domain", target "the hypervisor label";
        4 SHUTDOWN = "shutdown", None,
            "HC_HOST_SHUTDOWN", source "calling domain", target "the hypervisor label";
    }
    /// Domain lifecycle (no access to the domain's contents).
    Domain domain = "domain", target Domain, "Domain lifecycle: no access to a domain's contents." {
        // Metadata (state, vCPU count, memory size), not contents: a domain could modulate it
        // to signal, like timing, so it is a covert channel and out of the data-flow model.
        0 GETINFO = "getinfo", None,
            "HC_DOMAIN_GETINFO", source "calling domain", target "the queried domain";
        1 SHUTDOWN = "shutdown", None,
            "HC_DOMAIN_SHUTDOWN", source "calling domain", target "the domain shut down (self for a guest's own shutdown)";
        2 YIELD = "yield", None,
            "HC_SCHED_YIELD", source "calling domain", target "the calling domain itself";
        3 BLOCK = "block", None,
            "HC_SCHED_BLOCK", source "calling domain", target "the calling domain itself";
        4 CREATE = "create", None,
            "HC_DOMAIN_CREATE", source "creating domain", target "the label of the new domain";
        5 DESTROY = "destroy", None,
            "HC_DOMAIN_DESTROY", source "calling domain", target "the destroyed domain";
        6 PAUSE = "pause", None,
            "HC_DOMAIN_PAUSE", source "calling domain", target "the paused domain";
        7 UNPAUSE = "unpause", None,
            "HC_DOMAIN_UNPAUSE", source "calling domain", target "the resumed domain";
        8 SETPRIORITY = "setpriority", None,
            "HC_DOMAIN_SETPRIORITY", source "calling domain", target "the domain whose priority changes";
        9 BUILD = "build", SourceToTarget,
            "HC_DOMAIN_BUILD (load image, set initial vCPU state)", source "builder domain", target "the domain under construction";
        10 TRANSITION = "transition", None,
            "HC_DOMAIN_SETLABEL (build label -> run label)", source "builder domain", target "the domain's current (build) label";
    }
    /// Introspection: access to a domain's memory, vCPU state and image.
    Introspect introspect = "introspect", target Domain, "Introspection: a domain's memory, vCPU state and image." {
        0 READMEM = "readmem", TargetToSource,
            "HC_INTROSPECT_READMEM", source "calling domain", target "the inspected domain";
        1 WRITEMEM = "writemem", SourceToTarget,
            "HC_INTROSPECT_WRITEMEM", source "calling domain", target "the modified domain";
        2 GETVCPU = "getvcpu", TargetToSource,
            "HC_INTROSPECT_GETVCPU", source "calling domain", target "the inspected domain";
        3 SETVCPU = "setvcpu", SourceToTarget,
            "HC_INTROSPECT_SETVCPU", source "calling domain", target "the modified domain";
        4 CHECKPOINT = "checkpoint", TargetToSource,
            "HC_DOMAIN_CHECKPOINT", source "calling domain", target "the checkpointed domain";
        5 RESTORE = "restore", SourceToTarget,
            "HC_DOMAIN_RESTORE", source "calling domain", target "the label of the restored domain";
        6 MIGRATE_OUT = "migrate_out", TargetToSource,
            "HC_MIGRATE_SEND", source "calling domain", target "the migrating domain";
        7 MIGRATE_IN = "migrate_in", SourceToTarget,
            "HC_MIGRATE_RECEIVE", source "calling domain", target "the label of the arriving domain";
        8 DIRTYLOG = "dirtylog", TargetToSource,
            "HC_INTROSPECT_DIRTYLOG", source "calling domain", target "the tracked domain";
    }
    /// Event channels between two domains.
    Evtchn evtchn = "evtchn", target Domain, "Event channels: the target is the peer domain." {
        0 ALLOC = "alloc", None,
            "HC_EVTCHN_ALLOC_UNBOUND", source "allocating domain", target "the peer allowed to bind";
        1 BIND = "bind", None,
            "HC_EVTCHN_BIND_INTERDOMAIN", source "binding domain", target "the peer that allocated the port";
        2 SEND = "send", SourceToTarget,
            "HC_EVTCHN_SEND", source "sending domain", target "the peer";
        3 CLOSE = "close", None,
            "HC_EVTCHN_CLOSE", source "closing domain", target "the peer";
    }
    /// Grant tables: shared memory between two domains.
    Grant grant = "grant", target Domain, "Grant tables: the target is the peer domain." {
        0 OFFER = "offer", None,
            "HC_GRANT_OFFER", source "granting domain", target "the peer allowed to map";
        1 MAP_RO = "map_ro", TargetToSource,
            "HC_GRANT_MAP (read-only)", source "mapping domain", target "the granting domain";
        2 MAP_RW = "map_rw", Both,
            "HC_GRANT_MAP (read-write)", source "mapping domain", target "the granting domain";
        3 UNMAP = "unmap", None,
            "HC_GRANT_UNMAP", source "mapping domain", target "the granting domain";
        4 REVOKE = "revoke", None,
            "HC_GRANT_REVOKE", source "granting domain", target "the peer holding the mapping";
    }
    /// Access to a vTPM instance.
    Vtpm vtpm = "vtpm", target Vtpm, "vTPM instances." {
        0 USE = "use", Both,
            "HC_VTPM_CONNECT (send TPM commands)", source "guest domain", target "the vTPM instance";
        1 ADMIN = "admin", Both,
            "HC_VTPM_ADMIN (create, seal, destroy instance)", source "vTPM manager domain", target "the vTPM instance";
    }
    /// Access to the platform TPM.
    Tpm tpm = "tpm", target TpmLocality, "Platform TPM, per locality." {
        0 USE = "use", Both,
            "HC_TPM_COMMAND", source "calling domain", target "the platform TPM locality";
        1 EXTEND = "extend", SourceToTarget,
            "HC_TPM_COMMAND (PCR_Extend)", source "calling domain", target "the platform TPM locality";
        2 QUOTE = "quote", TargetToSource,
            "HC_TPM_COMMAND (Quote)", source "calling domain", target "the platform TPM locality";
    }
    /// Direct I/O port access.
    Ioport ioport = "ioport", target Ioport, "I/O port ranges." {
        0 ACCESS = "access", Both,
            "HC_IOPORT_PERMIT", source "domain receiving access", target "the port range";
    }
    /// MMIO mappings.
    Mmio mmio = "mmio", target Mmio, "Physical MMIO ranges." {
        0 MAP = "map", Both,
            "HC_MMIO_MAP", source "domain receiving the mapping", target "the MMIO range";
    }
    /// Device passthrough.
    Device device = "device", target Device, "Passthrough devices." {
        0 ASSIGN = "assign", Both,
            "HC_DEVICE_ASSIGN", source "domain receiving the device", target "the device";
        1 ASSIGN_NOIOMMU = "assign_noiommu", Both,
            "HC_DEVICE_ASSIGN (asked in addition to `assign` when no IOMMU confines the device's DMA)", source "domain receiving the device", target "the device";
    }
    /// Physical interrupts routed to a domain.
    Irq irq = "irq", target Irq, "Physical interrupt lines." {
        0 BIND = "bind", TargetToSource,
            "HC_IRQ_BIND (deliver the interrupt to the caller)", source "domain receiving the interrupt", target "the interrupt line";
    }
}

impl Class {
    /// The schema entry of this class.
    #[must_use]
    pub fn info(self) -> &'static ClassInfo {
        &CLASSES[self as usize]
    }

    /// The name used in policy source.
    #[must_use]
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The kind every target of this class has.
    #[must_use]
    pub fn target_kind(self) -> Kind {
        self.info().target_kind
    }

    /// All permissions of this class.
    #[must_use]
    pub fn all(self) -> PermSet {
        self.info().all()
    }

    /// Looks a class up by source name.
    #[must_use]
    pub fn by_name(name: &str) -> Option<Class> {
        CLASSES.iter().find(|c| c.name == name).map(|c| c.class)
    }

    /// Looks a permission of this class up by name.
    #[must_use]
    pub fn perm(self, name: &str) -> Option<PermSet> {
        self.info().perm(name).map(PermInfo::set)
    }

    /// Decodes the byte stored in a binary policy.
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Class> {
        ALL_CLASSES.get(v as usize).copied()
    }

    /// The permissions of `set` that move data subject -> target.
    #[must_use]
    pub fn forward_flow(self) -> PermSet {
        self.flow_mask(Flow::forward)
    }

    /// The permissions of `set` that move data target -> subject.
    #[must_use]
    pub fn backward_flow(self) -> PermSet {
        self.flow_mask(Flow::backward)
    }

    fn flow_mask(self, pred: fn(Flow) -> bool) -> PermSet {
        let mut m = 0u64;
        for p in self.info().perms {
            if pred(p.flow) {
                m |= 1 << p.bit;
            }
        }
        PermSet(m)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// SHA-256 over a canonical encoding of the whole table (kinds, classes, permissions, flows).
///
/// Hypercall and documentation strings are deliberately excluded: rewording a comment must
/// not invalidate compiled policies, but any change in meaning (names, bits, kinds, flows) does.
#[must_use]
pub fn hash() -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"warden-policy-schema-v1\0");
    for k in KINDS {
        h.update([k as u8]);
        h.update(k.name().as_bytes());
        h.update([0]);
    }
    for c in CLASSES {
        h.update([c.class as u8, c.target_kind as u8]);
        h.update(c.name.as_bytes());
        h.update([0]);
        for p in c.perms {
            let flow = match p.flow {
                Flow::SourceToTarget => 1u8,
                Flow::TargetToSource => 2,
                Flow::Both => 3,
                Flow::None => 0,
            };
            h.update([p.bit, flow]);
            h.update(p.name.as_bytes());
            h.update([0]);
        }
        h.update([0xff]);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_discriminant_and_bit() {
        for (i, c) in CLASSES.iter().enumerate() {
            assert_eq!(c.class as usize, i, "class {} out of place", c.name);
            // The binary format stores 32-bit masks.
            assert!(c.perms.len() <= crate::format::MAX_PERMS, "class {} has more than 32 permissions", c.name);
            for (j, p) in c.perms.iter().enumerate() {
                assert_eq!(p.bit as usize, j, "{}:{} has the wrong bit", c.name, p.name);
                assert!(p.hypercall.starts_with("HC_"), "{}:{} names no hypercall", c.name, p.name);
            }
        }
    }

    #[test]
    fn names_are_unique_and_round_trip() {
        for c in CLASSES {
            assert_eq!(Class::by_name(c.name), Some(c.class));
            for p in c.perms {
                assert_eq!(c.class.perm(p.name), Some(p.set()));
                assert_eq!(c.perms.iter().filter(|q| q.name == p.name).count(), 1);
            }
        }
        for k in KINDS {
            assert_eq!(Kind::by_name(k.name()), Some(k));
            assert_eq!(Kind::from_u8(k as u8), Some(k));
        }
        // Every kind is the target of some class (a kind nothing can target is a trap), and
        // the retired `evtchn` kind decodes to nothing.
        for k in KINDS {
            assert!(CLASSES.iter().any(|c| c.target_kind == k), "no class targets kind {k}");
        }
        assert_eq!((Kind::by_name("evtchn"), Kind::from_u8(1)), (None, None));
    }

    #[test]
    fn constants_match_table() {
        assert_eq!(Class::Domain.perm("pause"), Some(perms::domain::PAUSE));
        assert_eq!(Class::Introspect.perm("migrate_out"), Some(perms::introspect::MIGRATE_OUT));
        assert_eq!(Class::Grant.perm("map_rw"), Some(perms::grant::MAP_RW));
        assert_eq!(Class::Tpm.perm("quote"), Some(perms::tpm::QUOTE));
        assert_eq!(Class::Device.perm("assign"), Some(perms::device::ASSIGN));
    }

    #[test]
    fn introspection_is_separate_from_lifecycle() {
        assert!(Class::Domain.perm("readmem").is_none());
        assert!(Class::Introspect.perm("pause").is_none());
    }

    #[test]
    fn flow_masks_follow_the_map() {
        assert!(Class::Introspect.backward_flow().contains(perms::introspect::READMEM));
        assert!(!Class::Introspect.forward_flow().contains(perms::introspect::READMEM));
        assert!(Class::Grant.forward_flow().contains(perms::grant::MAP_RW));
        assert!(Class::Grant.backward_flow().contains(perms::grant::MAP_RW));
        assert!(Class::Domain.forward_flow().contains(perms::domain::BUILD));
        assert!((Class::Domain.forward_flow() | Class::Domain.backward_flow()).0 & perms::domain::PAUSE.0 == 0);
    }
}
