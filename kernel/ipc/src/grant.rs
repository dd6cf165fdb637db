//! Grant tables: a domain offers one of its pages to one named domain, read-only or
//! read-write; that domain maps it at a guest-physical address of its choice in the grant
//! window, unmaps it; the granter revokes the offer.
//!
//! **Revoke is refused while the page is mapped** (`StillMapped`), as Xen's
//! `gnttab_end_foreign_access` does: the granter learns its page is still in use instead of
//! the grantee losing memory under its feet. The grantee ends the mapping with `unmap` (or by
//! ending: [`GrantTable::domain_dead`] then releases its mappings). When a *granter* ends, its
//! mapped grants are force-unmapped so that no domain keeps a window into freed memory.
//!
//! A [`GrantRef`] carries a generation: revoking an entry bumps it, so a revoked reference is
//! `StaleRef` forever, even after the slot is offered again; a slot whose 65,535 generations are
//! spent is retired rather than wrapped. Index 0 with generation 0 never exists, so a zeroed
//! reference is always an error.

use warden_policy::TypeId;

use crate::calls::IpcError;
use crate::{DomId, MAX_DOMAINS};

/// Grant entries per granting domain.
pub const GRANTS: usize = 32;
/// Guest-physical base of the window where grantees map granted pages (above any domain's
/// memory, inside the 4 GiB its page tables identity-map).
pub const MAP_WINDOW: u64 = warden_abi::ipc::GRANT_WINDOW;
/// Pages in the grant window.
pub const MAP_SLOTS: u64 = warden_abi::ipc::GRANT_WINDOW_PAGES;
const PAGE: u64 = 0x1000;

/// A grant reference as the granter hands it out: `generation << 16 | index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(pub u32);

impl GrantRef {
    const fn new(index: usize, generation: u16) -> Self {
        GrantRef((generation as u32) << 16 | index as u32)
    }
    const fn index(self) -> usize {
        (self.0 & 0xffff) as usize
    }
    const fn generation(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    /// Decodes the ABI flag word: 0 read-only, 1 read-write.
    ///
    /// # Errors
    /// `BadFlags` for anything else.
    pub const fn from_flags(f: u64) -> Result<Access, IpcError> {
        match f {
            0 => Ok(Access::ReadOnly),
            1 => Ok(Access::ReadWrite),
            _ => Err(IpcError::BadFlags),
        }
    }
}

/// One offered grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub grantee: DomId,
    /// The grantee's label when the grant was offered: the MAC target of `revoke`, valid even
    /// after the grantee ended.
    pub grantee_label: TypeId,
    /// The granter's guest frame number (guest-physical address / 4096).
    pub gfn: u64,
    pub access: Access,
    /// Where the grantee mapped it, and how.
    pub mapped: Option<Mapping>,
}

/// A live mapping in the grantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub gpa: u64,
    pub writable: bool,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u16,
    grant: Option<Grant>,
}

/// A mapping the hypervisor must remove from a grantee's nested page tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unmap {
    pub grantee: DomId,
    pub gpa: u64,
}

/// The grant tables of the whole host (one row per granting domain).
#[derive(Debug, Clone)]
pub struct GrantTable {
    slots: [[Slot; GRANTS]; MAX_DOMAINS],
}

impl Default for GrantTable {
    fn default() -> Self {
        Self::new()
    }
}

fn dom_index(d: DomId) -> Result<usize, IpcError> {
    d.index(MAX_DOMAINS).ok_or(IpcError::BadDomain)
}

/// The generation of a slot retired for good: its 65,535 generations are spent, and wrapping
/// would make ancient references valid again (issue 16, finding 8). Never handed out again.
const RETIRED: u16 = 0;

/// The generation after a revoke: the next one, or [`RETIRED`] once they are spent.
const fn next_generation(g: u16) -> u16 {
    match g.checked_add(1) {
        Some(n) => n,
        None => RETIRED,
    }
}

/// Checks a map address: page-aligned and inside the grant window.
///
/// # Errors
/// `BadMapAddress`.
pub fn check_map_address(gpa: u64) -> Result<u64, IpcError> {
    let end = MAP_WINDOW + MAP_SLOTS * PAGE;
    if !gpa.is_multiple_of(PAGE) || gpa < MAP_WINDOW || gpa >= end {
        return Err(IpcError::BadMapAddress);
    }
    Ok(gpa)
}

impl GrantTable {
    #[must_use]
    pub const fn new() -> Self {
        // Generation 1 first, so that reference 0 (index 0, generation 0) never exists.
        GrantTable { slots: [[Slot { generation: 1, grant: None }; GRANTS]; MAX_DOMAINS] }
    }

    /// The live grant `gref` of `granter`.
    ///
    /// # Errors
    /// `BadDomain`; `BadRef` for an index out of range or a free slot of the current
    /// generation (a forged reference); `StaleRef` for an older generation (revoked).
    pub fn get(&self, granter: DomId, gref: GrantRef) -> Result<Grant, IpcError> {
        let g = dom_index(granter)?;
        let slot = self.slots[g].get(gref.index()).ok_or(IpcError::BadRef)?;
        if gref.generation() != slot.generation || slot.generation == RETIRED {
            // Generations only grow from 1: a reference from generation 0 or from the future
            // was never handed out (forged); an older one, or any of a retired slot, was revoked.
            let retired = slot.generation == RETIRED;
            let stale = gref.generation() != 0 && (retired || gref.generation() < slot.generation);
            return Err(if stale { IpcError::StaleRef } else { IpcError::BadRef });
        }
        slot.grant.ok_or(IpcError::BadRef)
    }

    /// The grantee of a live grant and its label: the MAC target of `revoke`.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn grantee_of(&self, granter: DomId, gref: GrantRef) -> Result<(DomId, TypeId), IpcError> {
        self.get(granter, gref).map(|g| (g.grantee, g.grantee_label))
    }

    /// Checks that `grantee` is the domain a grant names: the precondition of `map`/`unmap`
    /// before the MAC check (whose target is the granter).
    ///
    /// # Errors
    /// As [`Self::get`]; `ForeignRef` if the grant names another domain.
    pub fn granted_to(&self, grantee: DomId, granter: DomId, gref: GrantRef) -> Result<Grant, IpcError> {
        let g = self.get(granter, gref)?;
        if g.grantee != grantee {
            return Err(IpcError::ForeignRef);
        }
        Ok(g)
    }

    /// `granter` offers its page `gfn` (already checked against its memory) to `grantee`,
    /// labelled `grantee_label`.
    ///
    /// # Errors
    /// `BadDomain`, `SelfPeer`, `NoFreeRef`.
    pub fn offer(
        &mut self,
        granter: DomId,
        grantee: DomId,
        grantee_label: TypeId,
        gfn: u64,
        access: Access,
    ) -> Result<GrantRef, IpcError> {
        let g = dom_index(granter)?;
        dom_index(grantee)?;
        if granter == grantee {
            return Err(IpcError::SelfPeer);
        }
        let free = |s: &Slot| s.grant.is_none() && s.generation != RETIRED;
        let i = self.slots[g].iter().position(free).ok_or(IpcError::NoFreeRef)?;
        let slot = &mut self.slots[g][i];
        slot.grant = Some(Grant { grantee, grantee_label, gfn, access, mapped: None });
        Ok(GrantRef::new(i, slot.generation))
    }

    /// `grantee` maps `granter`'s grant at `gpa` (read-write only if `writable`). Returns the
    /// granter's frame number for the hypervisor to enter in the grantee's nested page tables.
    ///
    /// # Errors
    /// As [`Self::granted_to`]; `BadMapAddress`; `AccessExceedsGrant` for a writable mapping
    /// of a read-only grant; `AlreadyMapped`; `MapAddressInUse` if the grantee already has a
    /// mapping at `gpa`.
    pub fn map(&mut self, grantee: DomId, granter: DomId, gref: GrantRef, gpa: u64, writable: bool) -> Result<u64, IpcError> {
        let grant = self.granted_to(grantee, granter, gref)?;
        check_map_address(gpa)?;
        if writable && grant.access == Access::ReadOnly {
            return Err(IpcError::AccessExceedsGrant);
        }
        if grant.mapped.is_some() {
            return Err(IpcError::AlreadyMapped);
        }
        if self.mapping_at(grantee, gpa).is_some() {
            return Err(IpcError::MapAddressInUse);
        }
        let g = dom_index(granter)?;
        if let Some(live) = self.slots[g][gref.index()].grant.as_mut() {
            live.mapped = Some(Mapping { gpa, writable });
        }
        Ok(grant.gfn)
    }

    /// Which grant (granter, index) `grantee` has mapped at `gpa`, if any.
    #[must_use]
    pub fn mapping_at(&self, grantee: DomId, gpa: u64) -> Option<(DomId, usize)> {
        for (g, row) in self.slots.iter().enumerate() {
            for (i, s) in row.iter().enumerate() {
                if let Some(Grant { grantee: ge, mapped: Some(m), .. }) = s.grant
                    && ge == grantee
                    && m.gpa == gpa
                {
                    return Some((DomId(g as u32), i));
                }
            }
        }
        None
    }

    /// `grantee` unmaps `granter`'s grant; returns the address to remove from its tables.
    ///
    /// # Errors
    /// As [`Self::granted_to`]; `NotMapped`.
    pub fn unmap(&mut self, grantee: DomId, granter: DomId, gref: GrantRef) -> Result<u64, IpcError> {
        let grant = self.granted_to(grantee, granter, gref)?;
        let m = grant.mapped.ok_or(IpcError::NotMapped)?;
        let g = dom_index(granter)?;
        if let Some(live) = self.slots[g][gref.index()].grant.as_mut() {
            live.mapped = None;
        }
        Ok(m.gpa)
    }

    /// `granter` withdraws a grant. Refused while the grantee has it mapped.
    ///
    /// # Errors
    /// As [`Self::get`]; `StillMapped`.
    pub fn revoke(&mut self, granter: DomId, gref: GrantRef) -> Result<(), IpcError> {
        let grant = self.get(granter, gref)?;
        if grant.mapped.is_some() {
            return Err(IpcError::StillMapped);
        }
        let g = dom_index(granter)?;
        let slot = &mut self.slots[g][gref.index()];
        slot.grant = None;
        slot.generation = next_generation(slot.generation);
        Ok(())
    }

    /// Cleans up after a domain ended: its own grants are withdrawn (mapped ones are returned
    /// for the hypervisor to remove from the grantees), and its mappings of other domains'
    /// grants are released (and returned too).
    pub fn domain_dead(&mut self, dom: DomId, mut unmap: impl FnMut(Unmap)) {
        let Ok(d) = dom_index(dom) else { return };
        for slot in &mut self.slots[d] {
            if let Some(g) = slot.grant.take() {
                if let Some(m) = g.mapped {
                    unmap(Unmap { grantee: g.grantee, gpa: m.gpa });
                }
                slot.generation = next_generation(slot.generation);
            }
        }
        for row in &mut self.slots {
            for slot in row.iter_mut() {
                if let Some(g) = slot.grant.as_mut()
                    && g.grantee == dom
                    && let Some(m) = g.mapped.take()
                {
                    // The dead domain never runs again, but its tables must not keep a window
                    // into memory that stays in use.
                    unmap(Unmap { grantee: dom, gpa: m.gpa });
                }
            }
        }
    }

    /// The live grants of `granter` with their current references (diagnostics and tests).
    pub fn live(&self, granter: DomId) -> impl Iterator<Item = (GrantRef, Grant)> + '_ {
        let row = dom_index(granter).ok().map(|g| &self.slots[g]);
        row.into_iter()
            .flat_map(|r| r.iter().enumerate())
            .filter_map(|(i, s)| s.grant.map(|g| (GrantRef::new(i, s.generation), g)))
    }

    /// Grants of other domains that `grantee` has mapped.
    #[must_use]
    pub fn mapped_by(&self, grantee: DomId) -> usize {
        let mapped = |s: &Slot| matches!(s.grant, Some(Grant { grantee: g, mapped: Some(_), .. }) if g == grantee);
        self.slots.iter().flat_map(|r| r.iter()).filter(|s| mapped(s)).count()
    }

    /// Live grants offered by `granter` (diagnostics and tests).
    #[must_use]
    pub fn offered(&self, granter: DomId) -> usize {
        dom_index(granter).map_or(0, |g| self.slots[g].iter().filter(|s| s.grant.is_some()).count())
    }
}
