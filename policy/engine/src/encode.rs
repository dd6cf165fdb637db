//! Encoder for the binary format (needs `alloc`; used by the compiler, never by the hypervisor).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::format::{AV_EMPTY, AV_ENTRY, HEADER_LEN, MAGIC, SECTION_ENTRY, SECTIONS, VERSION, av_hash};
use crate::schema::{self, Class, Kind};

/// Everything a binary policy holds, in plain form. Type ids are indices into `types`, which
/// must be sorted by name (the loader rejects anything else).
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// SHA-256 of the source text.
    pub source_hash: [u8; 32],
    /// `(name, kind)`, sorted strictly by name.
    pub types: Vec<(String, Kind)>,
    /// `(subject, target, class, allow, auditallow, dontaudit)`, one per key, none all-zero.
    pub av: Vec<(u32, u32, Class, u64, u64, u64)>,
    /// `(build, run)` label pairs, one per build label.
    pub transitions: Vec<(u32, u32)>,
    /// `(name, members)` conflict sets.
    pub conflict_sets: Vec<(String, Vec<u32>)>,
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
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

    let slots = (img.av.len() * 2 + 1).next_power_of_two();
    let mask = slots - 1;
    let mut table: Vec<Option<usize>> = vec![None; slots];
    for (n, &(s, t, c, ..)) in img.av.iter().enumerate() {
        let mut i = av_hash(s, t, c as u8, mask);
        while table[i].is_some() {
            i = (i + 1) & mask;
        }
        table[i] = Some(n);
    }
    let mut avtab = Vec::with_capacity(slots * AV_ENTRY);
    for slot in &table {
        match slot {
            None => {
                put32(&mut avtab, AV_EMPTY);
                avtab.extend_from_slice(&[0u8; AV_ENTRY - 4]);
            }
            Some(n) => {
                let (s, t, c, a, aa, da) = img.av[*n];
                put32(&mut avtab, s);
                put32(&mut avtab, t);
                avtab.extend_from_slice(&[c as u8, 0, 0, 0, 0, 0, 0, 0]);
                for v in [a, aa, da] {
                    avtab.extend_from_slice(&v.to_le_bytes());
                }
            }
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

    let bodies: [&[u8]; 6] = [&strings, &types, &avtab, &trans, &cwsets, &cwmemb];
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
