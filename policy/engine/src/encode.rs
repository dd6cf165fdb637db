//! Encoder for the binary format (needs `alloc`; used by the compiler, never by the hypervisor).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::format::{AV_ENTRY, HEADER_LEN, MAGIC, SECTION_ENTRY, SECTIONS, VERSION, av_hash};
use crate::schema::{self, Class, Kind};

/// Everything a binary policy holds, in plain form. Type ids are indices into `types`, which
/// must be sorted by name (the loader rejects anything else).
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// SHA-256 of the source text.
    pub source_hash: [u8; 32],
    /// `(name, kind)`, sorted strictly by name.
    pub types: Vec<(String, Kind)>,
    /// Access vectors, one per key, none all-zero.
    pub av: Vec<Av>,
    /// `(build, run)` label pairs, one per build label.
    pub transitions: Vec<(u32, u32)>,
    /// `(name, members)` conflict sets.
    pub conflict_sets: Vec<(String, Vec<u32>)>,
}

/// The access vector of one `(subject, target, class)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av {
    /// Subject type id.
    pub subject: u32,
    /// Target type id.
    pub target: u32,
    /// Class.
    pub class: Class,
    /// Granted whatever the domains' categories.
    pub allow: u64,
    /// Granted only between domains of one category (disjoint from `allow`).
    pub allow_same: u64,
    /// Granted permissions to audit anyway.
    pub auditallow: u64,
    /// Denied permissions not to audit.
    pub dontaudit: u64,
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Buckets of the access-vector index for `entries` entries: at least two per entry, a power
/// of two.
#[must_use]
pub fn buckets_for(entries: usize) -> usize {
    (entries.max(1) * 2).next_power_of_two()
}

/// Encodes an image. Sorting of transitions, sets and members is done here.
#[must_use]
pub fn encode(img: &Image) -> Vec<u8> {
    let mut strings = Vec::new();
    let mut types = Vec::new();
    for (name, kind) in &img.types {
        put32(&mut types, strings.len() as u32);
        types.extend_from_slice(&(name.len() as u16).to_le_bytes());
        types.extend_from_slice(&[*kind as u8, 0]);
        strings.extend_from_slice(name.as_bytes());
    }

    // Two buckets per entry (rounded up to a power of two): most lookups find an empty bucket
    // or one entry, so the scan's length is predictable; empty buckets cost 4 bytes of index,
    // not a whole entry as version 1's half-empty table did.
    let buckets = buckets_for(img.av.len());
    let mask = buckets - 1;
    // Entries in key order (the compiler's map already iterates so: sorting is then skipped),
    // then distributed to their buckets by a counting sort, which keeps key order inside
    // each bucket: O(entries + buckets), and each key hashed once.
    let mut by_key: Vec<&Av> = img.av.iter().collect();
    let key = |a: &Av| (a.subject, a.target, a.class as u8);
    if !by_key.is_sorted_by_key(|a| key(a)) {
        by_key.sort_unstable_by_key(|a| key(a));
    }
    let hashes: Vec<u32> = by_key.iter().map(|a| av_hash(a.subject, a.target, a.class as u8, mask) as u32).collect();
    // `start[b]` = entries in buckets before `b`: the index itself.
    let mut start = vec![0u32; buckets + 1];
    for &h in &hashes {
        start[h as usize + 1] += 1;
    }
    for b in 0..buckets {
        start[b + 1] += start[b];
    }
    let mut index = Vec::with_capacity((buckets + 1) * 4);
    for &o in &start {
        put32(&mut index, o);
    }
    let mut fill = start;
    let mut av: Vec<&Av> = by_key.clone();
    for (a, &h) in by_key.iter().zip(&hashes) {
        av[fill[h as usize] as usize] = a;
        fill[h as usize] += 1;
    }
    let mut avtab = Vec::with_capacity(av.len() * AV_ENTRY);
    for a in av {
        put32(&mut avtab, a.subject);
        put32(&mut avtab, a.target);
        avtab.extend_from_slice(&[a.class as u8, 0, 0, 0]);
        // Classes have at most `format::MAX_PERMS` permissions: the masks fit 32 bits.
        for v in [a.allow, a.allow_same, a.auditallow, a.dontaudit] {
            put32(&mut avtab, v as u32);
        }
    }

    let mut tr = img.transitions.clone();
    tr.sort_unstable();
    let mut trans = Vec::new();
    for (b, r) in tr {
        put32(&mut trans, b);
        put32(&mut trans, r);
    }

    let mut sets = img.conflict_sets.clone();
    sets.sort_by(|a, b| a.0.cmp(&b.0));
    let mut cwsets = Vec::new();
    let mut cwmemb = Vec::new();
    let mut first = 0u32;
    for (name, members) in &mut sets {
        members.sort_unstable();
        members.dedup();
        put32(&mut cwsets, strings.len() as u32);
        cwsets.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cwsets.extend_from_slice(&[0, 0]);
        put32(&mut cwsets, first);
        put32(&mut cwsets, members.len() as u32);
        strings.extend_from_slice(name.as_bytes());
        for m in members.iter() {
            put32(&mut cwmemb, *m);
        }
        first += members.len() as u32;
    }

    let bodies: [&[u8]; 7] = [&strings, &types, &index, &avtab, &trans, &cwsets, &cwmemb];
    let table_end = HEADER_LEN + SECTION_ENTRY * SECTIONS.len();
    let total = table_end + bodies.iter().map(|b| b.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    put32(&mut out, VERSION);
    put32(&mut out, SECTIONS.len() as u32);
    out.extend_from_slice(&schema::hash());
    out.extend_from_slice(&img.source_hash);
    put32(&mut out, total as u32);
    put32(&mut out, 0);
    let mut off = table_end;
    for (id, body) in SECTIONS.iter().zip(bodies) {
        put32(&mut out, *id as u32);
        put32(&mut out, off as u32);
        put32(&mut out, body.len() as u32);
        put32(&mut out, (body.len() / id.entry_size()) as u32);
        off += body.len();
    }
    for body in bodies {
        out.extend_from_slice(body);
    }
    out
}
