//! Warden's MAC policy at run time: the schema, the binary format, and a no_std loader and
//! decision engine for the hypervisor.
//!
//! **Architecture invariant:** this crate performs no I/O and never allocates. [`Policy::load`]
//! validates every byte of an untrusted blob once; after that the [`Policy`] view is trusted and
//! [`Policy::decide`] is a hash lookup (O(1), a handful of nanoseconds, flat with policy size).
//!
//! ```text
//! let policy = Policy::load(bytes)?;
//! let mgmt = policy.type_by_name("mgmt_t").unwrap();
//! let d = policy.decide(mgmt, guest, Class::Domain, perms::domain::PAUSE);
//! if !d.allowed.contains(perms::domain::PAUSE) { /* deny; log if d.audit is non-empty */ }
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

pub mod cwall;
#[cfg(any(test, feature = "alloc"))]
pub mod encode;
pub mod format;
mod policy;
pub mod schema;
#[cfg(test)]
mod tests;

use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not};

pub use cwall::{CapacityError, ChineseWall, Conflict, NotRunning};
pub use policy::{Category, ConflictSetId, LoadError, Policy, TransitionError};
pub use schema::{Class, Flow, Kind, perms};

/// A type (security label) of a loaded policy: an index into its type table.
///
/// Type ids are only meaningful together with the [`Policy`] that issued them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeId(pub u32);

impl TypeId {
    /// The index into the policy's type table.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of up to 64 permissions of one class (bit `i` = permission `i` of the class).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PermSet(pub u64);

impl PermSet {
    /// No permissions.
    pub const EMPTY: PermSet = PermSet(0);

    /// Whether every permission of `other` is in `self`.
    #[must_use]
    pub const fn contains(self, other: PermSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bit indices in the set, lowest first.
    pub fn bits(self) -> impl Iterator<Item = u8> {
        let mut v = self.0;
        core::iter::from_fn(move || {
            if v == 0 {
                None
            } else {
                let b = v.trailing_zeros() as u8;
                v &= v - 1;
                Some(b)
            }
        })
    }
}

impl fmt::Debug for PermSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PermSet({:#x})", self.0)
    }
}

impl BitOr for PermSet {
    type Output = PermSet;
    fn bitor(self, rhs: PermSet) -> PermSet {
        PermSet(self.0 | rhs.0)
    }
}
impl BitOrAssign for PermSet {
    fn bitor_assign(&mut self, rhs: PermSet) {
        self.0 |= rhs.0;
    }
}
impl BitAnd for PermSet {
    type Output = PermSet;
    fn bitand(self, rhs: PermSet) -> PermSet {
        PermSet(self.0 & rhs.0)
    }
}
impl BitAndAssign for PermSet {
    fn bitand_assign(&mut self, rhs: PermSet) {
        self.0 &= rhs.0;
    }
}
impl Not for PermSet {
    type Output = PermSet;
    fn not(self) -> PermSet {
        PermSet(!self.0)
    }
}

/// The answer to one access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The requested permissions that are granted.
    pub allowed: PermSet,
    /// The requested permissions to record in the audit ring: denied and not `dontaudit`ed,
    /// plus granted ones named by an `auditallow` rule.
    pub audit: PermSet,
}

impl Decision {
    /// Whether every requested permission was granted.
    #[must_use]
    pub const fn all_allowed(self, requested: PermSet) -> bool {
        self.allowed.contains(requested)
    }
}

/// Fuzz entry point for the binary loader: any input must give `Ok` or a typed error, never a
/// panic, and a loaded policy must answer every query without panicking.
pub fn fuzz_load(data: &[u8]) {
    if let Ok(p) = Policy::load(data) {
        let n = p.type_count() as u32;
        for s in 0..n.min(8) {
            let _ = p.type_name(TypeId(s));
            let _ = p.type_by_name(p.type_name(TypeId(s)));
            for t in 0..n.min(8) {
                for &c in schema::ALL_CLASSES {
                    let _ = p.decide(TypeId(s), TypeId(t), c, PermSet(u64::MAX));
                }
                let _ = p.check_transition(TypeId(s), TypeId(t), TypeId(s));
            }
        }
        let _ = p.decide(TypeId(n), TypeId(u32::MAX), Class::Domain, PermSet(1));
        if let Ok(mut cw) = ChineseWall::<64>::new(p) {
            for t in 0..n.min(16) {
                let _ = cw.started(TypeId(t));
            }
            for t in 0..n.min(16) {
                let _ = cw.stopped(TypeId(t));
            }
        }
    }
}
