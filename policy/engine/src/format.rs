//! Layout of a compiled Warden policy (`.bin`): the contract between compiler and loader.
//!
//! All integers are little-endian. A file is a fixed header, a section table, then the
//! sections back to back in the order of [`SECTIONS`], with no gaps and nothing after the last:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | [`MAGIC`] |
//! | 8 | 4 | [`VERSION`] |
//! | 12 | 4 | section count (= `SECTIONS.len()`) |
//! | 16 | 32 | schema hash ([`crate::schema::hash`]) |
//! | 48 | 32 | SHA-256 of the policy source text |
//! | 80 | 4 | total file length |
//! | 84 | 4 | reserved, zero |
//! | 88 | 16 × n | section table: `id, offset, byte length, entry count` (u32 each) |
//!
//! Sections:
//! - `STRINGS`: type names (in type order) then conflict-set names (in set order), packed
//!   with no separators; every byte belongs to exactly one name.
//! - `TYPES`: [`TYPE_ENTRY`]-byte entries `name_off u32, name_len u16, kind u8, 0u8`, sorted
//!   strictly by name, so a [`crate::TypeId`] is the index and name lookup is a binary search.
//!   Exactly one type has kind `hypervisor`.
//! - `AVINDEX`: `buckets + 1` ascending `u32` offsets into `AVTAB` (`buckets` a power of two,
//!   first offset 0, last = the entry count): bucket `b` holds entries `idx[b]..idx[b + 1]`.
//! - `AVTAB`: [`AV_ENTRY`]-byte entries `subject u32, target u32, class u8, 3 zero bytes,
//!   allow u32, allow_same u32, auditallow u32, dontaudit u32`, grouped by bucket
//!   ([`av_hash`] of the key) and strictly ascending by `(subject, target, class)` inside one.
//!   `allow` holds whatever the categories; `allow_same` only between domains of one category
//!   (disjoint from `allow`). Lookup is one bucket: O(1) expected, and no empty slots are
//!   stored (a compact table: the hypervisor keeps it in memory and measures it).
//! - `TRANS`: [`TRANS_ENTRY`]-byte entries `build u32, run u32`, sorted strictly by build label.
//! - `CWSETS`: [`CWSET_ENTRY`]-byte entries `name_off u32, name_len u16, 0u16, first u32,
//!   count u32`, sorted strictly by name; members of set `i` are `CWMEMB[first..first+count]`,
//!   sets laid out in order with no gaps, at least two members each.
//! - `CWMEMB`: `type u32` entries, strictly ascending within each set.
//!
//! Version 2 (this one) replaced version 1's open-addressing table of 40-byte slots (half of
//! them empty) by the bucket index, 32-bit permission masks and the `allow_same` mask.

/// File magic.
pub const MAGIC: [u8; 8] = *b"WARDNPOL";
/// Format version this loader understands.
pub const VERSION: u32 = 2;
/// Length of the fixed header before the section table.
pub const HEADER_LEN: usize = 88;
/// Length of one section-table entry.
pub const SECTION_ENTRY: usize = 16;

/// Section identifiers, in the order they appear in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionId {
    /// Packed names.
    Strings = 1,
    /// Type table.
    Types = 2,
    /// Bucket offsets into the access-vector table.
    AvIndex = 7,
    /// Access-vector table.
    Avtab = 3,
    /// Build -> run label transitions.
    Trans = 4,
    /// Chinese Wall conflict sets.
    CwSets = 5,
    /// Chinese Wall set members.
    CwMembers = 6,
}

/// Every section, in file order.
pub const SECTIONS: [SectionId; 7] = [
    SectionId::Strings,
    SectionId::Types,
    SectionId::AvIndex,
    SectionId::Avtab,
    SectionId::Trans,
    SectionId::CwSets,
    SectionId::CwMembers,
];

impl SectionId {
    /// Entry size in bytes (1 for the string blob).
    #[must_use]
    pub const fn entry_size(self) -> usize {
        match self {
            SectionId::Strings => 1,
            SectionId::Types => TYPE_ENTRY,
            SectionId::AvIndex => 4,
            SectionId::Avtab => AV_ENTRY,
            SectionId::Trans => TRANS_ENTRY,
            SectionId::CwSets => CWSET_ENTRY,
            SectionId::CwMembers => 4,
        }
    }
}

/// Size of a type entry.
pub const TYPE_ENTRY: usize = 8;
/// Size of an access-vector entry.
pub const AV_ENTRY: usize = 28;
/// Most permissions a class may have: the table stores 32-bit masks.
pub const MAX_PERMS: usize = 32;
/// Size of a transition entry.
pub const TRANS_ENTRY: usize = 8;
/// Size of a conflict-set entry.
pub const CWSET_ENTRY: usize = 16;
/// Longest type or conflict-set name.
pub const MAX_NAME: usize = 255;
/// Most types a policy may declare (keeps every index well inside u32).
pub const MAX_TYPES: usize = 1 << 24;

/// Bucket of an access-vector key in a table of `mask + 1` buckets.
#[inline]
#[must_use]
pub const fn av_hash(subject: u32, target: u32, class: u8, mask: usize) -> usize {
    let k = ((subject as u64) << 32 | target as u64) ^ ((class as u64) << 56 | (class as u64) << 24);
    let x = (k ^ (k >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 32) as usize) & mask
}

/// A name is ASCII letters, digits and `_`, not starting with a digit, at most [`MAX_NAME`].
#[must_use]
pub fn valid_name(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= MAX_NAME
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}
