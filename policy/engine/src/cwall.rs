//! Chinese Wall state (sHype): which conflicting types are running, in fixed storage.
//!
//! Types in one conflict set may never run at the same time on this host. The hypervisor asks
//! [`ChineseWall::may_start`] before a domain is created, restored or migrated in, and reports
//! [`ChineseWall::started`]/[`ChineseWall::stopped`]. Several domains of the *same* type may run
//! together; only different members of a set exclude each other.

use crate::policy::ConflictSetId;
use crate::{Policy, TypeId};

/// Starting the type would break a conflict set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// A running type that conflicts with the one asked about.
    pub with: TypeId,
    /// The conflict set they share.
    pub set: ConflictSetId,
}

/// The policy has more conflict-set memberships than this state object can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError {
    /// Memberships the policy declares.
    pub needed: usize,
    /// The capacity `N` of the state object.
    pub capacity: usize,
}

/// `stopped` was called for a type with no running instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRunning;

/// Running-instance counts per conflict-set membership; `N` bounds the memberships.
#[derive(Debug, Clone)]
pub struct ChineseWall<'a, const N: usize> {
    policy: Policy<'a>,
    running: [u32; N],
}

impl<'a, const N: usize> ChineseWall<'a, N> {
    /// Empty state (nothing running) for `policy`.
    ///
    /// # Errors
    /// [`CapacityError`] if the policy has more than `N` memberships.
    pub fn new(policy: Policy<'a>) -> Result<Self, CapacityError> {
        let needed = policy.conflict_member_count();
        if needed > N {
            return Err(CapacityError { needed, capacity: N });
        }
        Ok(ChineseWall { policy, running: [0; N] })
    }

    /// Whether a domain of type `t` may start (create, restore or migrate in) now.
    ///
    /// # Errors
    /// The first running type found that shares a conflict set with `t`.
    pub fn may_start(&self, t: TypeId) -> Result<(), Conflict> {
        for set in 0..self.policy.conflict_set_count() {
            let members = self.policy.set_members(set);
            if !members.clone().any(|m| self.policy.member_type(m) == t) {
                continue;
            }
            for m in members {
                let other = self.policy.member_type(m);
                if other != t && self.running[m] > 0 {
                    return Err(Conflict { with: other, set: ConflictSetId(set as u32) });
                }
            }
        }
        Ok(())
    }

    /// Records that a domain of type `t` started, after checking [`Self::may_start`].
    ///
    /// # Errors
    /// The conflict, in which case nothing is recorded.
    pub fn started(&mut self, t: TypeId) -> Result<(), Conflict> {
        self.may_start(t)?;
        for m in 0..self.policy.conflict_member_count() {
            if self.policy.member_type(m) == t {
                self.running[m] = self.running[m].saturating_add(1);
            }
        }
        Ok(())
    }

    /// Records that a domain of type `t` stopped (destroyed, migrated out).
    ///
    /// # Errors
    /// [`NotRunning`] if a member type of some set had no running instance (state unchanged).
    pub fn stopped(&mut self, t: TypeId) -> Result<(), NotRunning> {
        let n = self.policy.conflict_member_count();
        if (0..n).any(|m| self.policy.member_type(m) == t && self.running[m] == 0) {
            return Err(NotRunning);
        }
        for m in 0..n {
            if self.policy.member_type(m) == t {
                self.running[m] -= 1;
            }
        }
        Ok(())
    }

    /// Running instances of `t` as counted here (0 for types in no conflict set).
    #[must_use]
    pub fn running(&self, t: TypeId) -> u32 {
        (0..self.policy.conflict_member_count())
            .find(|&m| self.policy.member_type(m) == t)
            .map_or(0, |m| self.running[m])
    }
}
