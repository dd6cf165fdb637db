//! The TCG crypto-agile event log (TCG PC Client Platform Firmware Profile, "Spec ID Event03"):
//! a writer for the hypervisor and a validating parser/replayer for verifiers.
//!
//! Layout: one `TCG_PCR_EVENT` (SHA-1 format) carrying the `TCG_EfiSpecIDEvent` header that
//! lists the banks, then one `TCG_PCR_EVENT2` per extend, each with a digest for every listed
//! bank. All integers are little-endian. Warden's measurements are `EV_EVENT_TAG` events whose
//! data is a `TCG_PCClientTaggedEvent` with a Warden tag (see [`Tag`]) and the component's name;
//! each of Warden's PCRs is closed with an `EV_SEPARATOR` event.

use crate::alg::{Banks, Digest, DigestSet, HashAlg};
use core::fmt;

/// `EV_NO_ACTION`: not extended; used for the Spec ID header.
pub const EV_NO_ACTION: u32 = 0x0000_0003;
/// `EV_SEPARATOR`: closes a PCR; data is four zero bytes.
pub const EV_SEPARATOR: u32 = 0x0000_0004;
/// `EV_EVENT_TAG`: vendor-tagged event (`TCG_PCClientTaggedEvent`).
pub const EV_EVENT_TAG: u32 = 0x0000_0006;

/// The separator's event data (and what its digest covers).
pub const SEPARATOR_DATA: [u8; 4] = [0; 4];

const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// Vendor info recorded in the header (lets a reader tell who wrote the log).
const VENDOR_INFO: &[u8] = b"warden";

/// Warden's tagged-event identifiers (`taggedEventID`), "WD" in the high half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Tag {
    /// The hypervisor's own command line (options only; see docs/measured-launch.md).
    CommandLine = 0x5744_0001,
    /// The compiled MAC policy module.
    Policy = 0x5744_0002,
    /// The boot manifest module (domain configuration).
    Manifest = 0x5744_0003,
    /// A boot domain's image.
    DomainImage = 0x5744_0004,
    /// A domain created at run time (its image digest, name, arguments and labels), or its
    /// build -> run label transition; logged after the separators (docs/domains.md).
    CreatedDomain = 0x5744_0005,
}

/// The PCRs Warden measures into; only locality 2 and up can reset or extend them, and the
/// hypervisor never hands those localities to a domain.
pub const WARDEN_PCRS: [u32; 3] = [20, 21, 22];

impl Tag {
    /// The PCR a component of this kind is measured into: 20 = policy, 21 = hypervisor
    /// configuration (command line, boot manifest), 22 = domain images.
    #[must_use]
    pub const fn pcr(self) -> u32 {
        match self {
            Tag::Policy => 20,
            Tag::CommandLine | Tag::Manifest => 21,
            Tag::DomainImage | Tag::CreatedDomain => 22,
        }
    }

    /// Short name used in reference manifests.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Tag::CommandLine => "cmdline",
            Tag::Policy => "policy",
            Tag::Manifest => "manifest",
            Tag::DomainImage => "image",
            Tag::CreatedDomain => "created",
        }
    }

    /// Looks a tag up by its short name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Tag> {
        [
            Tag::CommandLine,
            Tag::Policy,
            Tag::Manifest,
            Tag::DomainImage,
            Tag::CreatedDomain,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }

    /// Looks a tag up by value.
    #[must_use]
    pub const fn from_u32(v: u32) -> Option<Tag> {
        match v {
            0x5744_0001 => Some(Tag::CommandLine),
            0x5744_0002 => Some(Tag::Policy),
            0x5744_0003 => Some(Tag::Manifest),
            0x5744_0004 => Some(Tag::DomainImage),
            0x5744_0005 => Some(Tag::CreatedDomain),
            _ => None,
        }
    }
}

/// What a component's measurement covers: its logged name (`policy`, `cmdline`, `manifest`,
/// `image:NAME`, `module:N`), a zero byte, then its bytes. The name under which the hypervisor
/// uses a module is thereby measured, not only logged: swapping two image modules' names changes
/// PCR 22, and a verifier matching components by logged name relies on measured facts only.
#[must_use]
pub fn component_parts<'a>(name: &'a str, bytes: &'a [u8]) -> [&'a [u8]; 3] {
    [name.as_bytes(), &[0], bytes]
}

/// Why a log cannot be written or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogError {
    /// The writer's buffer is full.
    Full,
    /// The log ends inside a structure that starts at `offset`.
    Truncated { offset: usize },
    /// The first event is not a valid Spec ID header.
    BadHeader(&'static str),
    /// The header lists a hash algorithm Warden cannot replay.
    UnsupportedAlgorithm(u16),
    /// An event's digest list does not match the banks in the header.
    DigestMismatch { offset: usize },
    /// An event names a PCR outside 0..24.
    BadPcr { offset: usize, pcr: u32 },
    /// The event set is empty.
    NoBanks,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Full => write!(f, "event log buffer is full"),
            LogError::Truncated { offset } => {
                write!(f, "event log truncated in the event at byte {offset}")
            }
            LogError::BadHeader(why) => write!(f, "bad Spec ID header: {why}"),
            LogError::UnsupportedAlgorithm(id) => {
                write!(f, "event log uses unsupported hash algorithm {id:#06x}")
            }
            LogError::DigestMismatch { offset } => {
                write!(
                    f,
                    "event at byte {offset} does not carry one digest per logged bank"
                )
            }
            LogError::BadPcr { offset, pcr } => write!(
                f,
                "event at byte {offset} extends PCR {pcr}, which does not exist"
            ),
            LogError::NoBanks => write!(f, "event log lists no PCR bank"),
        }
    }
}

/// Appends events to a caller-provided buffer.
#[derive(Debug)]
pub struct EventLogWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    banks: Banks,
}

impl<'a> EventLogWriter<'a> {
    /// Starts a log for `banks` in `buf` by writing the Spec ID header.
    ///
    /// # Errors
    ///
    /// [`LogError::NoBanks`] or [`LogError::Full`].
    pub fn new(buf: &'a mut [u8], banks: Banks) -> Result<Self, LogError> {
        if banks.is_empty() {
            return Err(LogError::NoBanks);
        }
        let mut w = EventLogWriter { buf, len: 0, banks };
        let spec_len = 16 + 4 + 1 + 1 + 1 + 1 + 4 + 4 * banks.len() + 1 + VENDOR_INFO.len();
        w.put_u32(0)?; // pcrIndex
        w.put_u32(EV_NO_ACTION)?;
        w.put(&[0; 20])?; // SHA-1 digest field, zero for EV_NO_ACTION
        w.put_u32(u32::try_from(spec_len).map_err(|_| LogError::Full)?)?;
        w.put(SPEC_ID_SIGNATURE)?;
        w.put_u32(0)?; // platformClass: client
        w.put(&[0, 2, 0])?; // specVersionMinor, specVersionMajor, specErrata
        w.put(&[2])?; // uintnSize: UINT64
        w.put_u32(u32::try_from(banks.len()).map_err(|_| LogError::Full)?)?;
        for alg in banks.iter() {
            w.put(&alg.id().to_le_bytes())?;
            w.put(
                &u16::try_from(alg.size())
                    .map_err(|_| LogError::Full)?
                    .to_le_bytes(),
            )?;
        }
        w.put(&[u8::try_from(VENDOR_INFO.len()).map_err(|_| LogError::Full)?])?;
        w.put(VENDOR_INFO)?;
        Ok(w)
    }

    /// Continues a log whose first `len` bytes of `buf` were written by an earlier writer for
    /// the same `banks` (run-time measurements append to the boot's log).
    ///
    /// # Errors
    ///
    /// [`LogError::NoBanks`], or [`LogError::Full`] if `len` exceeds `buf`.
    pub fn resume(buf: &'a mut [u8], len: usize, banks: Banks) -> Result<Self, LogError> {
        if banks.is_empty() {
            return Err(LogError::NoBanks);
        }
        if len > buf.len() {
            return Err(LogError::Full);
        }
        Ok(EventLogWriter { buf, len, banks })
    }

    /// The banks this log records.
    #[must_use]
    pub fn banks(&self) -> Banks {
        self.banks
    }

    /// Appends one `TCG_PCR_EVENT2`. The log is left unchanged on error.
    ///
    /// # Errors
    ///
    /// [`LogError::DigestMismatch`] if `digests` lacks a logged bank, [`LogError::Full`].
    pub fn append(
        &mut self,
        pcr: u32,
        event_type: u32,
        digests: &DigestSet,
        data: &[u8],
    ) -> Result<(), LogError> {
        self.append_parts(pcr, event_type, digests, &[data])
    }

    /// Appends a Warden tagged event (`EV_EVENT_TAG`) naming `component`.
    ///
    /// # Errors
    ///
    /// As [`EventLogWriter::append`].
    pub fn append_tagged(
        &mut self,
        pcr: u32,
        tag: Tag,
        digests: &DigestSet,
        component: &str,
    ) -> Result<(), LogError> {
        let id = (tag as u32).to_le_bytes();
        let size = u32::try_from(component.len())
            .map_err(|_| LogError::Full)?
            .to_le_bytes();
        self.append_parts(
            pcr,
            EV_EVENT_TAG,
            digests,
            &[&id, &size, component.as_bytes()],
        )
    }

    /// Appends an `EV_SEPARATOR` for `pcr`; returns the digests it carries (to extend).
    ///
    /// # Errors
    ///
    /// As [`EventLogWriter::append`].
    pub fn append_separator(&mut self, pcr: u32) -> Result<DigestSet, LogError> {
        let d = DigestSet::of(self.banks, &SEPARATOR_DATA);
        self.append(pcr, EV_SEPARATOR, &d, &SEPARATOR_DATA)?;
        Ok(d)
    }

    fn append_parts(
        &mut self,
        pcr: u32,
        event_type: u32,
        digests: &DigestSet,
        data: &[&[u8]],
    ) -> Result<(), LogError> {
        if self.banks.iter().any(|a| digests.get(a).is_none()) {
            return Err(LogError::DigestMismatch { offset: self.len });
        }
        let start = self.len;
        let r = (|| {
            self.put_u32(pcr)?;
            self.put_u32(event_type)?;
            self.put_u32(u32::try_from(self.banks.len()).map_err(|_| LogError::Full)?)?;
            for alg in self.banks.iter() {
                let d = digests
                    .get(alg)
                    .ok_or(LogError::DigestMismatch { offset: start })?;
                self.put(&alg.id().to_le_bytes())?;
                self.put(d.as_bytes())?;
            }
            let total: usize = data.iter().map(|p| p.len()).sum();
            self.put_u32(u32::try_from(total).map_err(|_| LogError::Full)?)?;
            for p in data {
                self.put(p)?;
            }
            Ok(())
        })();
        if r.is_err() {
            self.len = start;
        }
        r
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let end = self.len.checked_add(bytes.len()).ok_or(LogError::Full)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(LogError::Full)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn put_u32(&mut self, v: u32) -> Result<(), LogError> {
        self.put(&v.to_le_bytes())
    }

    /// The log so far.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The length of a firmware's crypto-agile log (as the EFI TCG2 protocol's GetEventLog hands it
/// over: its start and the offset of its last entry) held at the start of `bytes`: the Spec ID
/// header and every event up to and including the one at `last_entry` must parse, and one must
/// start exactly there. `last_entry` 0 means the log is the header alone.
///
/// # Errors
///
/// Any [`LogError`] of the header or an event; [`LogError::Truncated`] at `last_entry` when no
/// event starts there.
pub fn firmware_log_len(bytes: &[u8], last_entry: usize) -> Result<usize, LogError> {
    let (banks, first_event) = parse_header(bytes)?;
    if last_entry == 0 {
        return Ok(first_event);
    }
    let mut r = Reader { buf: bytes, pos: first_event };
    while r.pos <= last_entry {
        let start = r.pos;
        next_event(&mut r, banks)?;
        if start == last_entry {
            return Ok(r.pos);
        }
    }
    Err(LogError::Truncated { offset: last_entry })
}

/// The length of `count` consecutive `TCG_PCR_EVENT2` events for `banks` at the start of
/// `bytes` (the events of the EFI Final Events table, which has no header of its own).
///
/// # Errors
///
/// Any [`LogError`] of an event.
pub fn events_len(bytes: &[u8], banks: Banks, count: usize) -> Result<usize, LogError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    for _ in 0..count {
        next_event(&mut r, banks)?;
    }
    Ok(r.pos)
}

/// One parsed `TCG_PCR_EVENT2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Byte offset of the event in the log.
    pub offset: usize,
    /// The PCR it extends.
    pub pcr: u32,
    /// `EV_*` type.
    pub event_type: u32,
    /// One digest per logged bank.
    pub digests: DigestSet,
    /// The event data.
    pub data: &'a [u8],
}

impl<'a> Event<'a> {
    /// For a Warden `EV_EVENT_TAG` event: its tag and component name.
    #[must_use]
    pub fn warden_tag(&self) -> Option<(Tag, &'a str)> {
        if self.event_type != EV_EVENT_TAG {
            return None;
        }
        let mut r = Reader {
            buf: self.data,
            pos: 0,
        };
        let tag = Tag::from_u32(r.u32().ok()?)?;
        let size = usize::try_from(r.u32().ok()?).ok()?;
        let name = r.take(size).ok()?;
        if r.pos != self.data.len() {
            return None;
        }
        Some((tag, core::str::from_utf8(name).ok()?))
    }
}

/// A validated event log: its banks and an iterator over its events.
#[derive(Debug, Clone, Copy)]
pub struct EventLog<'a> {
    banks: Banks,
    log: &'a [u8],
    first_event: usize,
}

impl<'a> EventLog<'a> {
    /// Parses the header and checks every event's framing.
    ///
    /// # Errors
    ///
    /// Any [`LogError`] describing the first malformed structure.
    pub fn parse(log: &'a [u8]) -> Result<Self, LogError> {
        let (banks, first_event) = parse_header(log)?;
        let parsed = EventLog {
            banks,
            log,
            first_event,
        };
        for e in parsed.events() {
            e?;
        }
        Ok(parsed)
    }

    /// The banks the log records.
    #[must_use]
    pub fn banks(&self) -> Banks {
        self.banks
    }

    /// The events after the header.
    pub fn events(&self) -> impl Iterator<Item = Result<Event<'a>, LogError>> + 'a {
        let mut r = Reader {
            buf: self.log,
            pos: self.first_event,
        };
        let banks = self.banks;
        core::iter::from_fn(move || {
            if r.pos >= r.buf.len() {
                return None;
            }
            let e = next_event(&mut r, banks);
            if e.is_err() {
                r.pos = r.buf.len();
            }
            Some(e)
        })
    }

    /// Replays every event from all-zero PCRs (Warden resets its PCRs before measuring).
    #[must_use]
    pub fn replay(&self) -> Replay {
        let mut rp = Replay::new(self.banks);
        for e in self.events().flatten() {
            rp.apply(&e);
        }
        rp
    }
}

/// Parses the Spec ID header: the banks and where the first event starts.
fn parse_header(log: &[u8]) -> Result<(Banks, usize), LogError> {
    let mut r = Reader { buf: log, pos: 0 };
    if r.u32()? != 0 {
        return Err(LogError::BadHeader("pcrIndex is not 0"));
    }
    if r.u32()? != EV_NO_ACTION {
        return Err(LogError::BadHeader("first event is not EV_NO_ACTION"));
    }
    if r.take(20)?.iter().any(|b| *b != 0) {
        return Err(LogError::BadHeader("digest is not zero"));
    }
    let size = r.usize()?;
    let body = r.take(size)?;
    let mut h = Reader { buf: body, pos: 0 };
    if h.take(16)? != SPEC_ID_SIGNATURE {
        return Err(LogError::BadHeader("signature is not \"Spec ID Event03\""));
    }
    h.take(4 + 3)?; // platformClass, version, errata
    if h.take(1)? != [2] {
        return Err(LogError::BadHeader("uintnSize is not 2"));
    }
    let n = h.u32()?;
    let mut banks = Banks::EMPTY;
    for _ in 0..n {
        let id = h.u16()?;
        let size = h.u16()?;
        let alg = HashAlg::from_id(id).ok_or(LogError::UnsupportedAlgorithm(id))?;
        if usize::from(size) != alg.size() {
            return Err(LogError::BadHeader(
                "digest size does not match its algorithm",
            ));
        }
        if banks.contains(alg) {
            return Err(LogError::BadHeader("algorithm listed twice"));
        }
        banks.insert(alg);
    }
    if banks.is_empty() {
        return Err(LogError::NoBanks);
    }
    let vendor = usize::from(h.take(1)?[0]);
    h.take(vendor)?;
    if h.pos != body.len() {
        return Err(LogError::BadHeader("trailing bytes in the Spec ID event"));
    }
    Ok((banks, r.pos))
}

fn next_event<'a>(r: &mut Reader<'a>, banks: Banks) -> Result<Event<'a>, LogError> {
    let offset = r.pos;
    let pcr = r.u32()?;
    if pcr >= 24 {
        return Err(LogError::BadPcr { offset, pcr });
    }
    let event_type = r.u32()?;
    let count = r.u32()?;
    if usize::try_from(count).ok() != Some(banks.len()) {
        return Err(LogError::DigestMismatch { offset });
    }
    let mut digests = DigestSet::default();
    for _ in 0..count {
        let id = r.u16()?;
        let alg = HashAlg::from_id(id)
            .filter(|a| banks.contains(*a))
            .ok_or(LogError::DigestMismatch { offset })?;
        if digests.get(alg).is_some() {
            return Err(LogError::DigestMismatch { offset });
        }
        let raw = r.take(alg.size())?;
        digests.insert(Digest::from_bytes(alg, raw).ok_or(LogError::DigestMismatch { offset })?);
    }
    let size = r.usize()?;
    let data = r.take(size)?;
    Ok(Event {
        offset,
        pcr,
        event_type,
        digests,
        data,
    })
}

/// PCR values computed by replaying a log.
#[derive(Debug, Clone)]
pub struct Replay {
    banks: Banks,
    pcrs: [[Digest; 24]; 4],
}

impl Replay {
    /// All PCRs of `banks` at zero.
    #[must_use]
    pub fn new(banks: Banks) -> Replay {
        let pcrs = HashAlg::ALL.map(|a| [Digest::zero(a); 24]);
        Replay { banks, pcrs }
    }

    /// Extends the event's PCR with its digests (`EV_NO_ACTION` is not extended).
    pub fn apply(&mut self, e: &Event<'_>) {
        if e.event_type == EV_NO_ACTION || e.pcr >= 24 {
            return;
        }
        for d in e.digests.iter() {
            let slot = &mut self.pcrs[HashAlg::ALL.iter().position(|a| *a == d.alg()).unwrap_or(0)]
                [e.pcr as usize];
            *slot = slot.extended(d);
        }
    }

    /// The banks replayed.
    #[must_use]
    pub fn banks(&self) -> Banks {
        self.banks
    }

    /// A PCR's value; `None` for a bank the log does not record or a PCR ≥ 24.
    #[must_use]
    pub fn pcr(&self, alg: HashAlg, pcr: u32) -> Option<Digest> {
        if !self.banks.contains(alg) {
            return None;
        }
        let bank = HashAlg::ALL.iter().position(|a| *a == alg)?;
        self.pcrs[bank].get(usize::try_from(pcr).ok()?).copied()
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(LogError::Truncated { offset: self.pos })?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(LogError::Truncated { offset: self.pos })?;
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, LogError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, LogError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn usize(&mut self) -> Result<usize, LogError> {
        let at = self.pos;
        usize::try_from(self.u32()?).map_err(|_| LogError::Truncated { offset: at })
    }
}

/// Fuzz entry: parsing and replaying arbitrary bytes must never panic.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(log) = EventLog::parse(data) {
        let _ = log.replay();
        for e in log.events().flatten() {
            let _ = e.warden_tag();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn banks() -> Banks {
        Banks::from_algs(&[HashAlg::Sha1, HashAlg::Sha256])
    }

    fn sample(buf: &mut [u8]) -> usize {
        let b = banks();
        let mut w = EventLogWriter::new(buf, b).unwrap();
        w.append_tagged(
            20,
            Tag::Policy,
            &DigestSet::of(b, b"policy bytes"),
            "policy",
        )
        .unwrap();
        w.append_tagged(
            22,
            Tag::DomainImage,
            &DigestSet::of(b, b"elf"),
            "image:hello",
        )
        .unwrap();
        w.append_separator(20).unwrap();
        w.as_bytes().len()
    }

    /// A firmware log handed over as (start, last entry) inside a larger buffer: its length is
    /// found by parsing up to the last entry; a last entry inside an event or past the end, or
    /// a bad header, is an error.
    #[test]
    fn firmware_log_len_stops_after_the_last_entry() {
        let mut buf = [0u8; 2048];
        let len = sample(&mut buf);
        let offsets: std::vec::Vec<usize> = EventLog::parse(&buf[..len]).unwrap().events().map(|e| e.unwrap().offset).collect();
        let last = *offsets.last().unwrap();
        // Whatever follows the log in memory (here 0xAA) is not part of it.
        buf[len..].fill(0xaa);
        assert_eq!(firmware_log_len(&buf, last), Ok(len));
        assert_eq!(firmware_log_len(&buf, offsets[0]), Ok(offsets[1]));
        assert_eq!(firmware_log_len(&buf, 0), Ok(offsets[0]));
        assert!(firmware_log_len(&buf, last + 1).is_err());
        assert!(firmware_log_len(&buf[..len - 1], last).is_err());
        let mut bad = buf;
        bad[0] = 1;
        assert_eq!(firmware_log_len(&bad, last), Err(LogError::BadHeader("pcrIndex is not 0")));
        // The events after the header, counted.
        let events = &buf[offsets[0]..];
        assert_eq!(events_len(events, banks(), 3), Ok(len - offsets[0]));
        assert_eq!(events_len(events, banks(), 0), Ok(0));
        assert!(events_len(&events[..10], banks(), 1).is_err());
    }

    #[test]
    fn a_resumed_log_appends_after_the_boot_events_and_replays_as_one() {
        let b = banks();
        let mut buf = [0u8; 2048];
        let n = sample(&mut buf);
        let mut w = EventLogWriter::resume(&mut buf, n, b).unwrap();
        let d = DigestSet::of(b, b"created:w id=1");
        w.append_tagged(22, Tag::CreatedDomain, &d, "created:w id=1")
            .unwrap();
        let total = w.as_bytes().len();
        let log = EventLog::parse(&buf[..total]).unwrap();
        let events: Vec<_> = log.events().map(Result::unwrap).collect();
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[3].warden_tag(),
            Some((Tag::CreatedDomain, "created:w id=1"))
        );
        assert_eq!(Tag::from_name("created"), Some(Tag::CreatedDomain));
        assert_eq!(Tag::CreatedDomain.pcr(), 22);
        assert!(EventLogWriter::resume(&mut [0u8; 4], 5, b).is_err());
    }

    #[test]
    fn round_trip_and_replay() {
        let mut buf = [0u8; 1024];
        let n = sample(&mut buf);
        let log = EventLog::parse(&buf[..n]).unwrap();
        assert_eq!(log.banks(), banks());
        let events: Vec<_> = log.events().map(Result::unwrap).collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].warden_tag(), Some((Tag::Policy, "policy")));
        assert_eq!(
            events[1].warden_tag(),
            Some((Tag::DomainImage, "image:hello"))
        );
        assert_eq!(events[2].event_type, EV_SEPARATOR);
        let rp = log.replay();
        for alg in banks().iter() {
            let expect = Digest::zero(alg)
                .extended(&alg.hash(b"policy bytes"))
                .extended(&alg.hash(&[0; 4]));
            assert_eq!(rp.pcr(alg, 20), Some(expect));
            assert_eq!(rp.pcr(alg, 21), Some(Digest::zero(alg)));
        }
        assert_eq!(rp.pcr(HashAlg::Sha384, 20), None);
    }

    #[test]
    fn every_truncation_is_rejected_not_panicking() {
        let mut buf = [0u8; 1024];
        let n = sample(&mut buf);
        // Cutting inside the header or inside an event must fail; cutting at an event boundary
        // yields a shorter valid log.
        let log = EventLog::parse(&buf[..n]).unwrap();
        let boundaries: Vec<usize> = log.events().map(|e| e.unwrap().offset).chain([n]).collect();
        for cut in 0..n {
            let r = EventLog::parse(&buf[..cut]);
            assert_eq!(r.is_ok(), boundaries.contains(&cut), "cut at {cut}: {r:?}");
        }
    }

    #[test]
    fn writer_rejects_missing_bank_and_full_buffer() {
        let mut buf = [0u8; 1024];
        let mut w = EventLogWriter::new(&mut buf, banks()).unwrap();
        let only_sha1 = DigestSet::of(Banks::from_algs(&[HashAlg::Sha1]), b"x");
        assert_eq!(
            w.append(20, EV_EVENT_TAG, &only_sha1, b""),
            Err(LogError::DigestMismatch {
                offset: w.as_bytes().len()
            })
        );
        let mut small = [0u8; 80];
        let mut w = EventLogWriter::new(&mut small, banks()).unwrap();
        let before = w.as_bytes().len();
        assert_eq!(w.append_separator(20), Err(LogError::Full));
        assert_eq!(
            w.as_bytes().len(),
            before,
            "a failed append leaves the log unchanged"
        );
    }

    #[test]
    fn header_errors() {
        let mut buf = [0u8; 1024];
        let n = sample(&mut buf);
        let cases: &[(usize, u8, LogError)] = &[
            (0, 1, LogError::BadHeader("pcrIndex is not 0")),
            (4, 4, LogError::BadHeader("first event is not EV_NO_ACTION")),
            (
                32,
                b'X',
                LogError::BadHeader("signature is not \"Spec ID Event03\""),
            ),
            (55, 8, LogError::BadHeader("uintnSize is not 2")),
            (60, 0x12, LogError::UnsupportedAlgorithm(0x0012)),
        ];
        for (at, val, err) in cases {
            let mut bad = buf[..n].to_vec();
            bad[*at] = *val;
            assert_eq!(EventLog::parse(&bad).unwrap_err(), *err, "byte {at}");
        }
    }

    #[test]
    fn fuzz_seed_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/eventlog");
        let mut n = 0;
        for f in std::fs::read_dir(&dir).unwrap() {
            fuzz_parse(&std::fs::read(f.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "empty corpus in {}", dir.display());
    }
}
