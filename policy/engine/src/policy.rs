//! The loaded policy: byte-exact validation of a binary blob, then allocation-free queries.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::format::{
    self, AV_ENTRY, CWSET_ENTRY, HEADER_LEN, MAGIC, MAX_TYPES, SECTION_ENTRY, SECTIONS, TRANS_ENTRY, TYPE_ENTRY,
    VERSION, av_hash,
};
use crate::schema::{self, Class, Kind};
use crate::{Decision, PermSet, TypeId};

/// Why a blob was refused. Every malformed input maps to one of these; none panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// Shorter than the header and section table.
    Truncated,
    /// The magic bytes are wrong: not a Warden policy.
    BadMagic,
    /// A format version this loader does not know.
    UnsupportedVersion(u32),
    /// Compiled against a different schema than this hypervisor's.
    SchemaMismatch,
    /// The header's section count is wrong.
    BadSectionCount(u32),
    /// The header's total length differs from the blob's length.
    LengthMismatch,
    /// A reserved header or entry field is not zero.
    NonZeroReserved,
    /// Section `index` has the wrong id, is not contiguous with its predecessor, lies out of
    /// bounds, or its length disagrees with its entry count.
    BadSection(u32),
    /// A name is out of bounds, not where packing requires it, or not a valid identifier.
    BadName,
    /// Not every byte of the string section belongs to a name.
    UnusedStrings,
    /// Type names are not strictly ascending.
    TypesNotSorted,
    /// Too many types.
    TooManyTypes,
    /// A type entry carries an unknown kind byte.
    BadKind(u8),
    /// The access-vector index is not a power of two of buckets plus one, or its offsets do
    /// not run from 0 up to the entry count.
    BadTableSize,
    /// Access-vector entry `0` is malformed (unknown class, type out of range, wrong target
    /// kind, permissions outside the class, overlapping masks, an empty entry, or a non-domain
    /// subject).
    BadAvEntry(u32),
    /// Access-vector entry `0` is not in its key's bucket, or not in strictly ascending key
    /// order inside it (a repeated key).
    AvMisplaced(u32),
    /// A transition entry is malformed or out of order.
    BadTransition(u32),
    /// A conflict set is malformed or out of order.
    BadConflictSet(u32),
    /// The policy does not declare exactly one type of kind `hypervisor` (it has this many):
    /// the hypervisor's own label must be unambiguous.
    HypervisorCount(u32),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Truncated => f.write_str("policy blob is truncated"),
            LoadError::BadMagic => f.write_str("not a Warden policy (bad magic)"),
            LoadError::UnsupportedVersion(v) => write!(f, "unsupported policy format version {v}"),
            LoadError::SchemaMismatch => f.write_str("policy was compiled against a different schema"),
            LoadError::BadSectionCount(n) => write!(f, "bad section count {n}"),
            LoadError::LengthMismatch => f.write_str("header length does not match the blob"),
            LoadError::NonZeroReserved => f.write_str("a reserved field is not zero"),
            LoadError::BadSection(i) => write!(f, "section {i} is malformed"),
            LoadError::BadName => f.write_str("a name is malformed"),
            LoadError::UnusedStrings => f.write_str("string section has unreferenced bytes"),
            LoadError::TypesNotSorted => f.write_str("type table is not sorted"),
            LoadError::TooManyTypes => f.write_str("too many types"),
            LoadError::BadKind(k) => write!(f, "unknown kind {k}"),
            LoadError::BadTableSize => f.write_str("access-vector table size is invalid"),
            LoadError::BadAvEntry(i) => write!(f, "access-vector slot {i} is malformed"),
            LoadError::AvMisplaced(i) => {
                write!(f, "access-vector slot {i} is misplaced or duplicated")
            }
            LoadError::BadTransition(i) => write!(f, "transition entry {i} is malformed"),
            LoadError::BadConflictSet(i) => write!(f, "conflict set {i} is malformed"),
            LoadError::HypervisorCount(n) => {
                write!(f, "the policy declares {n} types of kind `hypervisor`; exactly one is required")
            }
        }
    }
}

/// Why a build -> run label transition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionError {
    /// The current label is not declared as a build label.
    NotABuildLabel,
    /// The policy pairs this build label with another run label.
    WrongRunLabel {
        /// The run label the policy declares for this build label.
        expected: TypeId,
    },
    /// The actor lacks `domain { transition }` on the build label.
    Denied,
}

/// The category of a running domain: which tenant or instance it belongs to, assigned at run
/// time (by the launcher, from the manifest; unique per domain unless domains share one, like
/// sVirt's per-VM MCS categories). Rules over types in a `separate` set apply only between
/// domains of one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Category(pub u32);

/// A Chinese Wall conflict set of a loaded policy: an index into its set table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConflictSetId(pub u32);

/// A validated binary policy. Cheap to copy: it borrows the blob.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    hash: [u8; 32],
    source_hash: [u8; 32],
    strings: &'a [u8],
    types: &'a [u8],
    avidx: &'a [u8],
    avtab: &'a [u8],
    av_mask: usize,
    trans: &'a [u8],
    cwsets: &'a [u8],
    cwmemb: &'a [u8],
}

impl fmt::Debug for Policy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("types", &self.type_count())
            .field("access_vectors", &(self.avtab.len() / AV_ENTRY))
            .field("transitions", &(self.trans.len() / TRANS_ENTRY))
            .field("conflict_sets", &self.conflict_set_count())
            .finish_non_exhaustive()
    }
}

#[inline]
fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}
#[inline]
fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Reads the packed name at `name_off`/`name_len`, requiring it to start at `*cursor` so that
/// names tile the string section exactly.
fn take_name<'a>(strings: &'a [u8], off: u32, len: u16, cursor: &mut usize) -> Result<&'a [u8], LoadError> {
    let (off, len) = (off as usize, len as usize);
    if off != *cursor {
        return Err(LoadError::BadName);
    }
    let end = off.checked_add(len).ok_or(LoadError::BadName)?;
    let name = strings.get(off..end).ok_or(LoadError::BadName)?;
    if !format::valid_name(name) {
        return Err(LoadError::BadName);
    }
    *cursor = end;
    Ok(name)
}

impl<'a> Policy<'a> {
    /// Validates `bytes` completely and returns a queryable view of it.
    ///
    /// # Errors
    /// Any deviation from [`crate::format`] gives a [`LoadError`]; nothing is trusted before
    /// it is checked.
    pub fn load(bytes: &'a [u8]) -> Result<Policy<'a>, LoadError> {
        let table_end = HEADER_LEN + SECTION_ENTRY * SECTIONS.len();
        if bytes.len() < HEADER_LEN {
            return Err(LoadError::Truncated);
        }
        if bytes[0..8] != MAGIC {
            return Err(LoadError::BadMagic);
        }
        let version = u32_at(bytes, 8);
        if version != VERSION {
            return Err(LoadError::UnsupportedVersion(version));
        }
        let nsect = u32_at(bytes, 12);
        if nsect as usize != SECTIONS.len() {
            return Err(LoadError::BadSectionCount(nsect));
        }
        if bytes[16..48] != schema::hash() {
            return Err(LoadError::SchemaMismatch);
        }
        let mut source_hash = [0u8; 32];
        source_hash.copy_from_slice(&bytes[48..80]);
        if bytes.len() < table_end {
            return Err(LoadError::Truncated);
        }
        if u32_at(bytes, 80) as usize != bytes.len() {
            return Err(LoadError::LengthMismatch);
        }
        if u32_at(bytes, 84) != 0 {
            return Err(LoadError::NonZeroReserved);
        }

        // Sections are contiguous, in order, and end exactly at the end of the blob.
        let mut sect: [&[u8]; 7] = [&[]; 7];
        let mut cursor = table_end;
        for (i, id) in SECTIONS.iter().enumerate() {
            let e = HEADER_LEN + i * SECTION_ENTRY;
            let bad = LoadError::BadSection(i as u32);
            let (sid, off, len, count) = (
                u32_at(bytes, e),
                u32_at(bytes, e + 4) as usize,
                u32_at(bytes, e + 8) as usize,
                u32_at(bytes, e + 12) as usize,
            );
            if sid != *id as u32 || off != cursor {
                return Err(bad);
            }
            if count.checked_mul(id.entry_size()) != Some(len) {
                return Err(bad);
            }
            let end = off.checked_add(len).ok_or(bad)?;
            sect[i] = bytes.get(off..end).ok_or(bad)?;
            cursor = end;
        }
        if cursor != bytes.len() {
            return Err(LoadError::LengthMismatch);
        }
        let [strings, types, avidx, avtab, trans, cwsets, cwmemb] = sect;

        let mut p = Policy {
            hash: Sha256::digest(bytes).into(),
            source_hash,
            strings,
            types,
            avidx,
            avtab,
            av_mask: 0,
            trans,
            cwsets,
            cwmemb,
        };
        let mut name_cursor = 0usize;
        p.check_types(&mut name_cursor)?;
        p.check_avtab()?;
        p.check_transitions()?;
        p.check_conflict_sets(&mut name_cursor)?;
        if name_cursor != strings.len() {
            return Err(LoadError::UnusedStrings);
        }
        Ok(p)
    }

    fn check_types(&self, cursor: &mut usize) -> Result<(), LoadError> {
        let n = self.type_count();
        if n > MAX_TYPES {
            return Err(LoadError::TooManyTypes);
        }
        let mut prev: &[u8] = &[];
        let mut hypervisors = 0u32;
        for i in 0..n {
            let e = &self.types[i * TYPE_ENTRY..(i + 1) * TYPE_ENTRY];
            let name = take_name(self.strings, u32_at(e, 0), u16_at(e, 4), cursor)?;
            if Kind::from_u8(e[6]).ok_or(LoadError::BadKind(e[6]))? == Kind::Hypervisor {
                hypervisors += 1;
            }
            if e[7] != 0 {
                return Err(LoadError::NonZeroReserved);
            }
            if i > 0 && name <= prev {
                return Err(LoadError::TypesNotSorted);
            }
            prev = name;
        }
        if hypervisors != 1 {
            return Err(LoadError::HypervisorCount(hypervisors));
        }
        Ok(())
    }

    fn check_avtab(&mut self) -> Result<(), LoadError> {
        let offsets = self.avidx.len() / 4;
        if offsets < 2 || !(offsets - 1).is_power_of_two() {
            return Err(LoadError::BadTableSize);
        }
        let buckets = offsets - 1;
        self.av_mask = buckets - 1;
        let entries = self.avtab.len() / AV_ENTRY;
        if u32_at(self.avidx, 0) != 0 || u32_at(self.avidx, buckets * 4) as usize != entries {
            return Err(LoadError::BadTableSize);
        }
        for b in 0..buckets {
            let (lo, hi) = (u32_at(self.avidx, b * 4) as usize, u32_at(self.avidx, (b + 1) * 4) as usize);
            if lo > hi || hi > entries {
                return Err(LoadError::BadTableSize);
            }
            let mut prev: Option<(u32, u32, u8)> = None;
            for i in lo..hi {
                let e = &self.avtab[i * AV_ENTRY..(i + 1) * AV_ENTRY];
                let bad = LoadError::BadAvEntry(i as u32);
                let (s, t) = (u32_at(e, 0), u32_at(e, 4));
                let class = Class::from_u8(e[8]).ok_or(bad)?;
                if e[9..12].iter().any(|&b| b != 0) {
                    return Err(bad);
                }
                let sk = self.kind_of(TypeId(s)).ok_or(bad)?;
                let tk = self.kind_of(TypeId(t)).ok_or(bad)?;
                if sk != Kind::Domain || tk != class.target_kind() {
                    return Err(bad);
                }
                let all = class.all().0;
                let [allow, same, aa, da] = [12, 16, 20, 24].map(|o| u64::from(u32_at(e, o)));
                if (allow | same | aa | da) & !all != 0 || allow | same | aa | da == 0 || allow & same != 0 {
                    return Err(bad);
                }
                // In its key's bucket, keys strictly ascending: lookups find it, and only it.
                let key = (s, t, class as u8);
                if av_hash(s, t, class as u8, self.av_mask) != b || prev.is_some_and(|p| p >= key) {
                    return Err(LoadError::AvMisplaced(i as u32));
                }
                prev = Some(key);
            }
        }
        Ok(())
    }

    fn check_transitions(&self) -> Result<(), LoadError> {
        let mut prev: Option<u32> = None;
        for i in 0..self.trans.len() / TRANS_ENTRY {
            let bad = LoadError::BadTransition(i as u32);
            let (b, r) = (u32_at(self.trans, i * TRANS_ENTRY), u32_at(self.trans, i * TRANS_ENTRY + 4));
            if self.kind_of(TypeId(b)) != Some(Kind::Domain) || self.kind_of(TypeId(r)) != Some(Kind::Domain) || b == r
            {
                return Err(bad);
            }
            if prev.is_some_and(|p| p >= b) {
                return Err(bad);
            }
            prev = Some(b);
        }
        Ok(())
    }

    fn check_conflict_sets(&self, cursor: &mut usize) -> Result<(), LoadError> {
        let mut prev: &[u8] = &[];
        let mut next_member = 0usize;
        for i in 0..self.conflict_set_count() {
            let bad = LoadError::BadConflictSet(i as u32);
            let e = &self.cwsets[i * CWSET_ENTRY..(i + 1) * CWSET_ENTRY];
            let name = take_name(self.strings, u32_at(e, 0), u16_at(e, 4), cursor)?;
            if u16_at(e, 6) != 0 {
                return Err(LoadError::NonZeroReserved);
            }
            if i > 0 && name <= prev {
                return Err(bad);
            }
            prev = name;
            let (first, count) = (u32_at(e, 8) as usize, u32_at(e, 12) as usize);
            if first != next_member || count < 2 || first + count > self.cwmemb.len() / 4 {
                return Err(bad);
            }
            let mut last: Option<u32> = None;
            for m in first..first + count {
                let t = u32_at(self.cwmemb, m * 4);
                if self.kind_of(TypeId(t)) != Some(Kind::Domain) || last.is_some_and(|l| l >= t) {
                    return Err(bad);
                }
                last = Some(t);
            }
            next_member = first + count;
        }
        if next_member != self.cwmemb.len() / 4 {
            return Err(LoadError::BadConflictSet(self.conflict_set_count() as u32));
        }
        Ok(())
    }

    /// SHA-256 of the whole blob: the identity used in audit records and measurements.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// SHA-256 of the source text the blob was compiled from.
    #[must_use]
    pub fn source_hash(&self) -> [u8; 32] {
        self.source_hash
    }

    /// Number of types.
    #[must_use]
    pub fn type_count(&self) -> usize {
        self.types.len() / TYPE_ENTRY
    }

    fn name_of_entry(&self, e: &[u8]) -> &'a str {
        let (off, len) = (u32_at(e, 0) as usize, u16_at(e, 4) as usize);
        // Validated at load: in bounds and ASCII, so both fallbacks are unreachable.
        let b = self.strings.get(off..off + len).unwrap_or(&[]);
        core::str::from_utf8(b).unwrap_or("")
    }

    fn type_entry(&self, t: TypeId) -> Option<&'a [u8]> {
        let i = t.index();
        self.types.get(i * TYPE_ENTRY..(i + 1) * TYPE_ENTRY)
    }

    /// Looks a type up by name (binary search).
    #[must_use]
    pub fn type_by_name(&self, name: &str) -> Option<TypeId> {
        let (mut lo, mut hi) = (0usize, self.type_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = &self.types[mid * TYPE_ENTRY..(mid + 1) * TYPE_ENTRY];
            match self.name_of_entry(e).as_bytes().cmp(name.as_bytes()) {
                core::cmp::Ordering::Equal => return Some(TypeId(mid as u32)),
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// The name of a type; `""` for an id this policy did not issue.
    #[must_use]
    pub fn type_name(&self, t: TypeId) -> &'a str {
        self.type_entry(t).map_or("", |e| self.name_of_entry(e))
    }

    /// The kind of a type; `None` for an id this policy did not issue.
    #[must_use]
    pub fn kind_of(&self, t: TypeId) -> Option<Kind> {
        self.type_entry(t).and_then(|e| Kind::from_u8(e[6]))
    }

    /// Every type id of the policy, ascending (= by name).
    pub fn types(&self) -> impl Iterator<Item = TypeId> + use<> {
        (0..self.type_count() as u32).map(TypeId)
    }

    /// The stored entry for `(subject, target, class)`, if any: one bucket of the index, then
    /// a scan of that bucket (usually zero or one entry), comparing subject and target as one
    /// 64-bit word.
    #[inline]
    fn entry(&self, subject: TypeId, target: TypeId, class: Class) -> Option<&'a [u8; AV_ENTRY]> {
        let b = av_hash(subject.0, target.0, class as u8, self.av_mask);
        // The loader checked the index: in bounds and ascending; `get` keeps this total anyway.
        let ix: &[u8; 8] = self.avidx.get(b * 4..b * 4 + 8)?.try_into().ok()?;
        let (lo, hi) =
            (u32::from_le_bytes([ix[0], ix[1], ix[2], ix[3]]), u32::from_le_bytes([ix[4], ix[5], ix[6], ix[7]]));
        let key = u64::from(subject.0) | u64::from(target.0) << 32;
        let mut at = lo as usize * AV_ENTRY;
        let end = hi as usize * AV_ENTRY;
        while at < end {
            let e: &[u8; AV_ENTRY] = self.avtab.get(at..at + AV_ENTRY)?.try_into().ok()?;
            if u64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]) == key && e[8] == class as u8 {
                return Some(e);
            }
            at += AV_ENTRY;
        }
        None
    }

    /// Decides whether `subject` may exercise `perms` of `class` on `target`, not knowing the
    /// domains' categories: only what is granted whatever the categories (`allow_same`
    /// grants are denied here; use [`Policy::decide_in`] where categories are known).
    ///
    /// `allowed` is the granted part of `perms`; `audit` is what to log: denied permissions
    /// not covered by `dontaudit`, plus granted permissions covered by `auditallow`.
    /// Unknown type ids are denied (and audited).
    #[inline]
    #[must_use]
    pub fn decide(&self, subject: TypeId, target: TypeId, class: Class, perms: PermSet) -> Decision {
        match self.entry(subject, target, class) {
            Some(e) => Self::decision(perms.0, u32_at(e, 12), u32_at(e, 20), u32_at(e, 24)),
            None => Self::decision(perms.0, 0, 0, 0),
        }
    }

    /// Decides for a subject and a target domain (or object) of known categories: grants
    /// written for types of a `separate` set hold only when both categories are equal. O(1),
    /// allocation-free, like [`Policy::decide`].
    #[inline]
    #[must_use]
    pub fn decide_in(
        &self,
        subject: (TypeId, Category),
        target: (TypeId, Category),
        class: Class,
        perms: PermSet,
    ) -> Decision {
        let Some(e) = self.entry(subject.0, target.0, class) else {
            return Self::decision(perms.0, 0, 0, 0);
        };
        let same = if subject.1 == target.1 { u32_at(e, 16) } else { 0 };
        Self::decision(perms.0, u32_at(e, 12) | same, u32_at(e, 20), u32_at(e, 24))
    }

    #[inline]
    fn decision(perms: u64, allow: u32, auditallow: u32, dontaudit: u32) -> Decision {
        let (allow, auditallow, dontaudit) = (u64::from(allow), u64::from(auditallow), u64::from(dontaudit));
        let allowed = perms & allow;
        let denied = perms & !allow;
        Decision { allowed: PermSet(allowed), audit: PermSet((denied & !dontaudit) | (allowed & auditallow)) }
    }

    /// The run label a build label turns into, if `build` is a build label.
    #[must_use]
    pub fn run_label_of(&self, build: TypeId) -> Option<TypeId> {
        let n = self.trans.len() / TRANS_ENTRY;
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let b = u32_at(self.trans, mid * TRANS_ENTRY);
            match b.cmp(&build.0) {
                core::cmp::Ordering::Equal => {
                    return Some(TypeId(u32_at(self.trans, mid * TRANS_ENTRY + 4)));
                }
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// Checks that `actor` may switch a domain labelled `build` to its run label `run`.
    ///
    /// After the switch the builder's rules (written against the build label) no longer apply
    /// to the domain: that is how a builder loses access to what it built.
    ///
    /// # Errors
    /// See [`TransitionError`].
    pub fn check_transition(&self, actor: TypeId, build: TypeId, run: TypeId) -> Result<(), TransitionError> {
        let expected = self.run_label_of(build).ok_or(TransitionError::NotABuildLabel)?;
        if expected != run {
            return Err(TransitionError::WrongRunLabel { expected });
        }
        let d = self.decide(actor, build, Class::Domain, crate::perms::domain::TRANSITION);
        if d.allowed.is_empty() {
            return Err(TransitionError::Denied);
        }
        Ok(())
    }

    /// Number of Chinese Wall conflict sets.
    #[must_use]
    pub fn conflict_set_count(&self) -> usize {
        self.cwsets.len() / CWSET_ENTRY
    }

    /// The name of a conflict set; `""` for an id this policy did not issue.
    #[must_use]
    pub fn conflict_set_name(&self, set: ConflictSetId) -> &'a str {
        let i = set.0 as usize;
        self.cwsets.get(i * CWSET_ENTRY..(i + 1) * CWSET_ENTRY).map_or("", |e| self.name_of_entry(e))
    }

    /// Total number of set memberships (the storage a [`crate::ChineseWall`] needs).
    #[must_use]
    pub fn conflict_member_count(&self) -> usize {
        self.cwmemb.len() / 4
    }

    /// The member slots of a set: indices into the membership array.
    pub(crate) fn set_members(&self, set: usize) -> core::ops::Range<usize> {
        let e = &self.cwsets[set * CWSET_ENTRY..(set + 1) * CWSET_ENTRY];
        let first = u32_at(e, 8) as usize;
        first..first + u32_at(e, 12) as usize
    }

    /// The type at membership slot `m`.
    pub(crate) fn member_type(&self, m: usize) -> TypeId {
        TypeId(u32_at(self.cwmemb, m * 4))
    }

    /// The members of a conflict set, ascending.
    pub fn conflict_set_members(&self, set: ConflictSetId) -> impl Iterator<Item = TypeId> + '_ {
        let r = if (set.0 as usize) < self.conflict_set_count() { self.set_members(set.0 as usize) } else { 0..0 };
        r.map(|m| self.member_type(m))
    }
}
