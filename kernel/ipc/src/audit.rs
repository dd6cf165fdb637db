//! The audit ring: fixed-size records of audited decisions, a binary wire format, and its
//! decoder with `avc:`-style and JSON renderings.
//!
//! A full ring overwrites its oldest record and counts the drop; sequence numbers keep rising,
//! so a reader sees exactly which records it missed. Readers do not consume: any number of
//! domains holding `hypervisor { audit_read }` may read from any sequence number.
//!
//! # Wire format (little-endian)
//! An audit-read buffer is a header followed by whole records.
//!
//! Header ([`HEADER_LEN`] = 32 bytes):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `WAUH` |
//! | 4 | 2 | format version (1) |
//! | 6 | 2 | record length ([`RECORD_LEN`]) |
//! | 8 | 4 | records that follow |
//! | 12 | 4 | reserved, 0 |
//! | 16 | 8 | records from the read's `from_seq` on that were dropped before this reader got them |
//! | 24 | 8 | next sequence number the ring will assign |
//!
//! Record ([`RECORD_LEN`] = 96 bytes):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `WAUR` |
//! | 4 | 4 | hypercall number |
//! | 8 | 8 | sequence number |
//! | 16 | 4 | source domain id |
//! | 20 | 4 | target domain id ([`HYPERVISOR_OBJECT`] for the hypervisor) |
//! | 24 | 4 | source type id |
//! | 28 | 4 | target type id |
//! | 32 | 1 | class (schema discriminant) |
//! | 33 | 1 | result: 0 denied, 1 granted |
//! | 34 | 6 | reserved, 0 |
//! | 40 | 8 | permissions requested and audited (class bits) |
//! | 48 | 32 | SHA-256 of the policy that decided |
//! | 80 | 8 | time (hypervisor timer ticks) |
//! | 88 | 8 | reserved, 0 |

use core::fmt;

use warden_policy::{Class, PermSet, Policy, TypeId};

use crate::{DomId, MAX_DOMAINS};

pub const HEADER_LEN: usize = warden_abi::ipc::AUDIT_HEADER_LEN;
pub const RECORD_LEN: usize = warden_abi::ipc::AUDIT_RECORD_LEN;
pub const HEADER_MAGIC: [u8; 4] = *b"WAUH";
pub const RECORD_MAGIC: [u8; 4] = *b"WAUR";
pub const FORMAT_VERSION: u16 = 1;
/// Target "domain id" recorded when the target is the hypervisor itself.
pub const HYPERVISOR_OBJECT: u32 = u32::MAX;
/// Target "domain id" recorded when the target is a resource (device, MMIO or port range).
pub const RESOURCE_OBJECT: u32 = u32::MAX - 1;

/// Granted or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Denied,
    Granted,
}

/// One audited decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub hypercall: u32,
    pub source_dom: DomId,
    /// [`HYPERVISOR_OBJECT`] when the target is the hypervisor.
    pub target_dom: DomId,
    pub source: TypeId,
    pub target: TypeId,
    pub class: Class,
    pub verdict: Verdict,
    /// The audited permissions (a subset of those requested).
    pub perms: PermSet,
    pub policy_hash: [u8; 32],
    pub time: u64,
}

/// Why bytes are not a valid record or dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    BadMagic,
    UnsupportedVersion(u16),
    BadRecordLength(u16),
    NonZeroReserved,
    BadClass(u8),
    BadVerdict(u8),
    /// Permission bits the class does not have.
    BadPerms,
    /// The header announces more records than the bytes hold.
    CountMismatch,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("audit data is truncated"),
            DecodeError::BadMagic => f.write_str("bad magic: not Warden audit data"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported audit format version {v}"),
            DecodeError::BadRecordLength(l) => write!(f, "unexpected record length {l}"),
            DecodeError::NonZeroReserved => f.write_str("a reserved field is not zero"),
            DecodeError::BadClass(c) => write!(f, "unknown class {c}"),
            DecodeError::BadVerdict(v) => write!(f, "unknown result {v}"),
            DecodeError::BadPerms => f.write_str("permission bits outside the class"),
            DecodeError::CountMismatch => f.write_str("record count disagrees with the data length"),
        }
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl Record {
    /// The wire form.
    #[must_use]
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..4].copy_from_slice(&RECORD_MAGIC);
        b[4..8].copy_from_slice(&self.hypercall.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.source_dom.0.to_le_bytes());
        b[20..24].copy_from_slice(&self.target_dom.0.to_le_bytes());
        b[24..28].copy_from_slice(&self.source.0.to_le_bytes());
        b[28..32].copy_from_slice(&self.target.0.to_le_bytes());
        b[32] = self.class as u8;
        b[33] = matches!(self.verdict, Verdict::Granted) as u8;
        b[40..48].copy_from_slice(&self.perms.0.to_le_bytes());
        b[48..80].copy_from_slice(&self.policy_hash);
        b[80..88].copy_from_slice(&self.time.to_le_bytes());
        b
    }

    /// Parses one record, validating every field.
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn decode(b: &[u8]) -> Result<Record, DecodeError> {
        let b = b.get(..RECORD_LEN).ok_or(DecodeError::Truncated)?;
        if b[0..4] != RECORD_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if b[34..40].iter().chain(&b[88..96]).any(|&x| x != 0) {
            return Err(DecodeError::NonZeroReserved);
        }
        let class = Class::from_u8(b[32]).ok_or(DecodeError::BadClass(b[32]))?;
        let verdict = match b[33] {
            0 => Verdict::Denied,
            1 => Verdict::Granted,
            v => return Err(DecodeError::BadVerdict(v)),
        };
        let perms = PermSet(u64_at(b, 40));
        if !class.all().contains(perms) {
            return Err(DecodeError::BadPerms);
        }
        let mut policy_hash = [0u8; 32];
        policy_hash.copy_from_slice(&b[48..80]);
        Ok(Record {
            seq: u64_at(b, 8),
            hypercall: u32_at(b, 4),
            source_dom: DomId(u32_at(b, 16)),
            target_dom: DomId(u32_at(b, 20)),
            source: TypeId(u32_at(b, 24)),
            target: TypeId(u32_at(b, 28)),
            class,
            verdict,
            perms,
            policy_hash,
            time: u64_at(b, 80),
        })
    }

    /// An `avc:`-style line. Type names come from `policy` when given (and when its hash is the
    /// record's), else types print as `type#N`; `NO_DOMAIN` prints as `unlabeled`.
    #[must_use]
    pub fn avc<'a>(&'a self, policy: Option<&'a Policy<'a>>) -> Avc<'a> {
        Avc { rec: self, policy: policy.filter(|p| p.hash() == self.policy_hash) }
    }

    /// One JSON object (no trailing newline), with names resolved as in [`Self::avc`].
    #[must_use]
    pub fn json<'a>(&'a self, policy: Option<&'a Policy<'a>>) -> Json<'a> {
        Json(self.avc(policy))
    }
}

/// Display adapter for [`Record::avc`].
#[derive(Debug)]
pub struct Avc<'a> {
    rec: &'a Record,
    policy: Option<&'a Policy<'a>>,
}

/// Display adapter for [`Record::json`].
#[derive(Debug)]
pub struct Json<'a>(Avc<'a>);

struct TypeName<'a>(TypeId, Option<&'a Policy<'a>>);

impl fmt::Display for TypeName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1.map(|p| p.type_name(self.0)).filter(|n| !n.is_empty()) {
            Some(n) => f.write_str(n),
            // `NO_DOMAIN`: an id that runs nothing has no type (SELinux's word for that).
            None if self.0 == crate::dispatch::NO_DOMAIN => f.write_str("unlabeled"),
            None => write!(f, "type#{}", self.0.0),
        }
    }
}

struct Perms(Class, PermSet, bool);

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Perms(class, set, json) = *self;
        let mut first = true;
        for p in class.info().perms.iter().filter(|p| set.contains(p.set())) {
            if !first {
                f.write_str(if json { "," } else { " " })?;
            }
            first = false;
            if json { write!(f, "\"{}\"", p.name)? } else { f.write_str(p.name)? }
        }
        Ok(())
    }
}

struct Dom(DomId);

impl fmt::Display for Dom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.0 {
            HYPERVISOR_OBJECT => f.write_str("hypervisor"),
            RESOURCE_OBJECT => f.write_str("resource"),
            id => write!(f, "{id}"),
        }
    }
}

fn short_hash(h: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in &h[..8] {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for Avc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.rec;
        let verdict = match r.verdict {
            Verdict::Denied => "denied",
            Verdict::Granted => "granted",
        };
        write!(
            f,
            "avc: {verdict} {{ {} }} for seq={} hypercall={} sdom={} scontext={} tdom={} tcontext={} tclass={} policy=",
            Perms(r.class, r.perms, false),
            r.seq,
            crate::calls::call_name(u64::from(r.hypercall)),
            Dom(r.source_dom),
            TypeName(r.source, self.policy),
            Dom(r.target_dom),
            TypeName(r.target, self.policy),
            r.class.name(),
        )?;
        short_hash(&r.policy_hash, f)?;
        write!(f, " time={}", r.time)
    }
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, p) = (self.0.rec, self.0.policy);
        let verdict = match r.verdict {
            Verdict::Denied => "denied",
            Verdict::Granted => "granted",
        };
        // Every string here is a schema name, a policy identifier or hex: nothing to escape.
        write!(
            f,
            "{{\"seq\":{},\"result\":\"{verdict}\",\"hypercall\":\"{}\",\"hypercall_nr\":{},\"source_dom\":{},\"scontext\":\"{}\",\"target_dom\":{},\"tcontext\":\"{}\",\"class\":\"{}\",\"perms\":[{}],\"time\":{},\"policy\":\"",
            r.seq,
            crate::calls::call_name(u64::from(r.hypercall)),
            r.hypercall,
            r.source_dom.0,
            TypeName(r.source, p),
            r.target_dom.0,
            TypeName(r.target, p),
            r.class.name(),
            Perms(r.class, r.perms, true),
            r.time,
        )?;
        for b in &r.policy_hash {
            write!(f, "{b:02x}")?;
        }
        f.write_str("\"}")
    }
}

/// The header of an audit-read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub count: u32,
    pub dropped: u64,
    pub next_seq: u64,
}

impl Header {
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&HEADER_MAGIC);
        b[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[6..8].copy_from_slice(&(RECORD_LEN as u16).to_le_bytes());
        b[8..12].copy_from_slice(&self.count.to_le_bytes());
        b[16..24].copy_from_slice(&self.dropped.to_le_bytes());
        b[24..32].copy_from_slice(&self.next_seq.to_le_bytes());
        b
    }

    /// Parses a header.
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn decode(b: &[u8]) -> Result<Header, DecodeError> {
        let b = b.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?;
        if b[0..4] != HEADER_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let rl = u16::from_le_bytes([b[6], b[7]]);
        if rl as usize != RECORD_LEN {
            return Err(DecodeError::BadRecordLength(rl));
        }
        if b[12..16] != [0; 4] {
            return Err(DecodeError::NonZeroReserved);
        }
        Ok(Header { count: u32_at(b, 8), dropped: u64_at(b, 16), next_seq: u64_at(b, 24) })
    }
}

/// Parses a whole audit-read buffer (header + records), validating everything.
///
/// # Errors
/// The first problem found.
pub fn decode_dump(b: &[u8]) -> Result<(Header, impl Iterator<Item = Record> + '_), DecodeError> {
    let h = Header::decode(b)?;
    let body = &b[HEADER_LEN..];
    let need = (h.count as usize).checked_mul(RECORD_LEN).ok_or(DecodeError::CountMismatch)?;
    if body.len() < need {
        return Err(DecodeError::CountMismatch);
    }
    for c in body[..need].chunks_exact(RECORD_LEN) {
        Record::decode(c)?;
    }
    let recs = body[..need].chunks_exact(RECORD_LEN).filter_map(|c| Record::decode(c).ok());
    Ok((h, recs))
}

/// Fuzz entry point for the decoder: any bytes give records or an error, and every record
/// renders and re-encodes to the same bytes.
pub fn fuzz_decode(data: &[u8]) {
    if let Ok((_, recs)) = decode_dump(data) {
        for r in recs {
            let _ = Record::decode(&r.encode()).map(|again| assert_eq!(again, r));
            let mut sink = Sink;
            let _ = fmt::write(&mut sink, format_args!("{}{}", r.avc(None), r.json(None)));
        }
    }
    if let Ok(r) = Record::decode(data) {
        assert_eq!(Record::decode(&r.encode()), Ok(r));
    }
}

struct Sink;
impl fmt::Write for Sink {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

/// The last audited decisions, `N` records in all, partitioned by the domain that caused them:
/// each of `min(N, MAX_DOMAINS)` partitions holds `N / partitions` records, and a full partition
/// overwrites its own oldest (counted as dropped). One domain's flood of denials therefore never
/// pushes out another domain's records (issue 16, finding 4). Sequence numbers are global;
/// readers see records in sequence order.
#[derive(Debug, Clone)]
pub struct AuditRing<const N: usize> {
    recs: [Option<Record>; N],
    /// Records ever pushed into each partition (its next slot is `pushed % PART_LEN`).
    pushed: [u64; MAX_DOMAINS],
    /// Next sequence number.
    next_seq: u64,
    dropped: u64,
}

impl<const N: usize> Default for AuditRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> AuditRing<N> {
    const PARTS: usize = if N < MAX_DOMAINS { N } else { MAX_DOMAINS };
    const PART_LEN: usize = N / Self::PARTS;

    #[must_use]
    pub const fn new() -> Self {
        AuditRing { recs: [None; N], pushed: [0; MAX_DOMAINS], next_seq: 0, dropped: 0 }
    }

    /// Appends a record, assigning its sequence number (returned). A full partition overwrites
    /// its oldest record and counts it as dropped.
    pub fn push(&mut self, mut rec: Record) -> u64 {
        let seq = self.next_seq;
        rec.seq = seq;
        let part = rec.source_dom.0 as usize % Self::PARTS;
        let slot = part * Self::PART_LEN + (self.pushed[part] % Self::PART_LEN as u64) as usize;
        if self.recs[slot].is_some() {
            self.dropped += 1;
        }
        self.recs[slot] = Some(rec);
        self.pushed[part] += 1;
        self.next_seq += 1;
        seq
    }

    /// Records dropped since boot.
    #[must_use]
    pub const fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The sequence number the next record will get (= records ever pushed).
    #[must_use]
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The oldest sequence number still held (`next_seq` when empty).
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.oldest_from(0).map_or(self.next_seq, |r| r.seq)
    }

    /// The held record with the smallest sequence number at or after `seq`.
    fn oldest_from(&self, seq: u64) -> Option<&Record> {
        self.recs.iter().flatten().filter(|r| r.seq >= seq).min_by_key(|r| r.seq)
    }

    /// Records from `from_seq` on that were dropped before this reader got them (what a
    /// header's `dropped` reports: not the records it already read).
    #[must_use]
    pub fn missed_from(&self, from_seq: u64) -> u64 {
        let held = self.recs.iter().flatten().filter(|r| r.seq >= from_seq).count() as u64;
        self.next_seq.saturating_sub(from_seq) - held
    }

    /// The record with sequence number `seq`, if still held.
    #[must_use]
    pub fn get(&self, seq: u64) -> Option<&Record> {
        self.oldest_from(seq).filter(|r| r.seq == seq)
    }

    /// Records from `from_seq` on (skipping any no longer held), oldest first.
    pub fn iter_from(&self, from_seq: u64) -> impl Iterator<Item = &Record> {
        core::iter::successors(self.oldest_from(from_seq), |r| self.oldest_from(r.seq + 1))
    }

    /// Writes a header and as many whole records from `from_seq` as fit into `out`; returns
    /// how many records were written, or `None` if `out` cannot hold the header.
    pub fn read_into(&self, from_seq: u64, out: &mut [u8]) -> Option<u32> {
        if out.len() < HEADER_LEN {
            return None;
        }
        let room = (out.len() - HEADER_LEN) / RECORD_LEN;
        let mut n = 0usize;
        for r in self.iter_from(from_seq).take(room) {
            let o = HEADER_LEN + n * RECORD_LEN;
            out[o..o + RECORD_LEN].copy_from_slice(&r.encode());
            n += 1;
        }
        let count = n as u32;
        let dropped = self.missed_from(from_seq);
        out[..HEADER_LEN].copy_from_slice(&Header { count, dropped, next_seq: self.next_seq }.encode());
        Some(count)
    }
}
