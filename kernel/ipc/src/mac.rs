//! [`Mac`]: the loaded policy, the hypervisor's label, the Chinese Wall state and the audit
//! ring together — the single place where an access decision is taken and audited.
//!
//! There is no permissive mode: [`Mac`] cannot be built without a policy that passed the
//! loader, and [`Mac::check`] has no switch that turns a denial into a grant.

use core::fmt;

use warden_policy::{Category, ChineseWall, Class, Conflict, Kind, LoadError, PermSet, Policy, TypeId};

use crate::audit::{AuditRing, HYPERVISOR_OBJECT, RESOURCE_OBJECT, Record, Verdict};
use crate::{DomId, MAX_DOMAINS};

/// Why a policy blob cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacError {
    /// The loader refused the blob.
    Load(LoadError),
    /// The policy declares no type of kind `hypervisor`: nothing could check hypervisor
    /// services (console, audit read) against it.
    NoHypervisorType,
    /// More than one type of kind `hypervisor`: which one labels this hypervisor is ambiguous.
    SeveralHypervisorTypes,
    /// More Chinese Wall memberships than the hypervisor's fixed state can count.
    TooManyConflictMembers { needed: usize, capacity: usize },
}

impl fmt::Display for MacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MacError::Load(e) => write!(f, "malformed policy: {e}"),
            MacError::NoHypervisorType => f.write_str("the policy declares no type of kind `hypervisor`"),
            MacError::SeveralHypervisorTypes => f.write_str("the policy declares more than one type of kind `hypervisor`"),
            MacError::TooManyConflictMembers { needed, capacity } => {
                write!(f, "the policy has {needed} conflict-set memberships; this hypervisor tracks at most {capacity}")
            }
        }
    }
}

/// Why a domain's label is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelError {
    /// No type of that name.
    Unknown,
    /// The type exists but is not of kind `domain`.
    NotADomain(Kind),
    /// The type exists but is of another kind than the resource needs.
    WrongKind { is: Kind, want: Kind },
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::Unknown => f.write_str("no such type in the policy"),
            LabelError::NotADomain(k) => write!(f, "the type is of kind `{k}`, not `domain`"),
            LabelError::WrongKind { is, want } => write!(f, "the type is of kind `{is}`, not `{want}`"),
        }
    }
}

/// Why a category cannot be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryError {
    /// No such domain slot.
    BadDomain,
    /// At or above 2^31: the hypervisor's own categories.
    Reserved,
}

/// The calling domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub dom: DomId,
    pub label: TypeId,
}

/// What a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// The hypervisor (labelled by the policy's `hypervisor`-kind type).
    Hypervisor,
    /// A domain (possibly the caller itself).
    Domain { dom: DomId, label: TypeId },
    /// A resource the manifest labels: a device, an MMIO range or a port range.
    Resource { label: TypeId },
}

/// One access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The hypercall number (recorded in audit records).
    pub hypercall: u64,
    pub subject: Subject,
    pub object: Object,
    pub class: Class,
    pub perms: PermSet,
    /// Hypervisor time in timer ticks (recorded in audit records).
    pub time: u64,
}

/// The policy refused a request; `record` is the audit record written, if the policy audits
/// this denial (it does unless a `dontaudit` rule covers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub record: Option<Record>,
}

/// A Chinese Wall refusal, with names for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallConflict<'p> {
    /// The label of the domain refused.
    pub label: &'p str,
    /// The running label it conflicts with.
    pub running: &'p str,
    /// The conflict set they share.
    pub set: &'p str,
}

impl fmt::Display for WallConflict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chinese Wall: {} conflicts with running {} (conflict set {})", self.label, self.running, self.set)
    }
}

/// The decision point. `A` is the audit ring's capacity, `W` the Chinese Wall membership
/// capacity.
#[derive(Debug)]
pub struct Mac<'p, const A: usize, const W: usize> {
    policy: Policy<'p>,
    hash: [u8; 32],
    hypervisor: TypeId,
    wall: ChineseWall<'p, W>,
    ring: &'p mut AuditRing<A>,
    /// Categories given by the boot manifest (`category=N`); a domain without one has a
    /// category of its own (see [`Mac::category_of`]).
    categories: [Option<Category>; MAX_DOMAINS],
    checks: u64,
    denials: u64,
}

/// Categories from here up are the hypervisor's: one per domain that was given none, so that
/// such a domain shares a category with no other (the manifest's numbers stay below).
const OWN_CATEGORIES: u32 = 1 << 31;

impl<'p, const A: usize, const W: usize> Mac<'p, A, W> {
    /// Validates `blob` with the no_std loader and prepares the decision state. The audit
    /// ring is passed in so that the hypervisor can keep it in static storage.
    ///
    /// # Errors
    /// See [`MacError`].
    pub fn new(blob: &'p [u8], ring: &'p mut AuditRing<A>) -> Result<Self, MacError> {
        let policy = Policy::load(blob).map_err(MacError::Load)?;
        let mut hv = policy.types().filter(|&t| policy.kind_of(t) == Some(Kind::Hypervisor));
        let hypervisor = hv.next().ok_or(MacError::NoHypervisorType)?;
        if hv.next().is_some() {
            return Err(MacError::SeveralHypervisorTypes);
        }
        let wall = ChineseWall::new(policy)
            .map_err(|e| MacError::TooManyConflictMembers { needed: e.needed, capacity: e.capacity })?;
        Ok(Mac {
            policy,
            hash: policy.hash(),
            hypervisor,
            wall,
            ring,
            categories: [None; MAX_DOMAINS],
            checks: 0,
            denials: 0,
        })
    }

    #[must_use]
    pub fn policy(&self) -> &Policy<'p> {
        &self.policy
    }

    /// SHA-256 of the policy blob (what audit records carry and measured launch extends).
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The hypervisor's own label.
    #[must_use]
    pub fn hypervisor_label(&self) -> TypeId {
        self.hypervisor
    }

    /// Resolves a manifest `label=` to a domain type.
    ///
    /// # Errors
    /// See [`LabelError`].
    pub fn domain_label(&self, name: &str) -> Result<TypeId, LabelError> {
        let t = self.policy.type_by_name(name).ok_or(LabelError::Unknown)?;
        match self.policy.kind_of(t) {
            Some(Kind::Domain) => Ok(t),
            Some(k) => Err(LabelError::NotADomain(k)),
            None => Err(LabelError::Unknown),
        }
    }

    /// Resolves a manifest resource label (`pci_label=`, `mmio_label=`) to a type of `kind`.
    ///
    /// # Errors
    /// [`LabelError::Unknown`] if no such type; [`LabelError::WrongKind`] otherwise.
    pub fn resource_label(&self, name: &str, kind: Kind) -> Result<TypeId, LabelError> {
        let t = self.policy.type_by_name(name).ok_or(LabelError::Unknown)?;
        match self.policy.kind_of(t) {
            Some(k) if k == kind => Ok(t),
            Some(k) => Err(LabelError::WrongKind { is: k, want: kind }),
            None => Err(LabelError::Unknown),
        }
    }

    /// Gives domain `dom` the category its manifest line names (`None`: one of its own). Set
    /// when the domain is admitted, before its first hypercall; cleared when it ends.
    ///
    /// # Errors
    /// `dom` is beyond the tables, or `category` is in the hypervisor's own range (the
    /// manifest parser refuses such numbers, so this is a caller's bug).
    pub fn set_category(&mut self, dom: DomId, category: Option<u32>) -> Result<(), CategoryError> {
        if category.is_some_and(|c| c >= OWN_CATEGORIES) {
            return Err(CategoryError::Reserved);
        }
        let slot = dom.index(MAX_DOMAINS).and_then(|i| self.categories.get_mut(i)).ok_or(CategoryError::BadDomain)?;
        *slot = category.map(Category);
        Ok(())
    }

    /// The category decisions use for `dom`: the manifest's, or else one no other domain has.
    #[must_use]
    pub fn category_of(&self, dom: DomId) -> Category {
        let given = dom.index(MAX_DOMAINS).and_then(|i| self.categories[i]);
        given.unwrap_or(Category(OWN_CATEGORIES | dom.0))
    }

    /// The name of a type (for reports).
    #[must_use]
    pub fn type_name(&self, t: TypeId) -> &'p str {
        self.policy.type_name(t)
    }

    /// Decides `c`, records it in the audit ring if the policy audits it, and says whether the
    /// request may proceed. Every requested permission must be granted.
    ///
    /// # Errors
    /// [`Denied`] when any requested permission is refused.
    pub fn check(&mut self, c: &Check) -> Result<Option<Record>, Denied> {
        self.checks += 1;
        let (target_dom, target) = self.target_of(c);
        // The one decision point knows both domains' categories: grants the policy confines to
        // one category (`separate`) hold only between domains that share one.
        let d = self.policy.decide_in(
            (c.subject.label, self.category_of(c.subject.dom)),
            (target, self.category_of(target_dom)),
            c.class,
            c.perms,
        );
        // An empty request is a bug in a check site, never a grant.
        let granted = !c.perms.is_empty() && d.all_allowed(c.perms);
        let verdict = if granted { Verdict::Granted } else { Verdict::Denied };
        let record = (!d.audit.is_empty()).then(|| self.audit(c, verdict, d.audit));
        if granted {
            Ok(record)
        } else {
            self.denials += 1;
            Err(Denied { record })
        }
    }

    /// Records the refusal of `c` that a structural rule of the policy made after the
    /// permission check passed (a build label's `transition` rule leads elsewhere): audited as a
    /// denial of `c`'s permissions on its target, like any other, so operators can read it back.
    pub fn refuse(&mut self, c: &Check) -> Denied {
        self.denials += 1;
        Denied { record: Some(self.audit(c, Verdict::Denied, c.perms)) }
    }

    /// The target domain and label of a check.
    fn target_of(&self, c: &Check) -> (DomId, TypeId) {
        match c.object {
            Object::Hypervisor => (DomId(HYPERVISOR_OBJECT), self.hypervisor),
            Object::Domain { dom, label } => (dom, label),
            Object::Resource { label } => (DomId(RESOURCE_OBJECT), label),
        }
    }

    /// Pushes the audit record of a decision on `c` into the ring.
    fn audit(&mut self, c: &Check, verdict: Verdict, perms: PermSet) -> Record {
        let (target_dom, target) = self.target_of(c);
        let mut r = Record {
            seq: 0,
            hypercall: u32::try_from(c.hypercall).unwrap_or(u32::MAX),
            source_dom: c.subject.dom,
            target_dom,
            source: c.subject.label,
            target,
            class: c.class,
            verdict,
            perms,
            policy_hash: self.hash,
            time: c.time,
        };
        r.seq = self.ring.push(r);
        r
    }

    /// Checks the Chinese Wall for a domain of `label` about to be created, and counts it as
    /// running if it may start.
    ///
    /// # Errors
    /// The conflict, named.
    pub fn domain_starting(&mut self, label: TypeId) -> Result<(), WallConflict<'p>> {
        self.wall.started(label).map_err(|Conflict { with, set }| WallConflict {
            label: self.policy.type_name(label),
            running: self.policy.type_name(with),
            set: self.policy.conflict_set_name(set),
        })
    }

    /// Whether a domain of `label` could start now (no state change).
    ///
    /// # Errors
    /// The conflict, named.
    pub fn may_start(&self, label: TypeId) -> Result<(), WallConflict<'p>> {
        self.wall.may_start(label).map_err(|Conflict { with, set }| WallConflict {
            label: self.policy.type_name(label),
            running: self.policy.type_name(with),
            set: self.policy.conflict_set_name(set),
        })
    }

    /// Records that a domain of `label` ended. Ending a domain that was never counted is
    /// ignored: the wall only ever loosens for domains it admitted.
    pub fn domain_stopped(&mut self, label: TypeId) {
        let _ = self.wall.stopped(label);
    }

    #[must_use]
    pub fn ring(&self) -> &AuditRing<A> {
        self.ring
    }

    /// Checks and denials since boot.
    #[must_use]
    pub fn counters(&self) -> (u64, u64) {
        (self.checks, self.denials)
    }
}
