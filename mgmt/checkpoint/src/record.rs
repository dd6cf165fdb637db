//! A record: one page or state blob, framed as `kind u8 | flags u8 | index u64 LE | len u32 LE
//! | body`. Framing rules are checked here, without any key.

use crate::error::VerifyError;
use alloc::vec::Vec;

/// Bytes in a guest page.
pub const PAGE_SIZE: usize = 4096;
/// Bytes of a record's header.
pub const RECORD_HEADER_LEN: usize = 14;
/// The AES-GCM tag after each ciphertext.
pub const TAG_LEN: usize = 16;
/// The largest state blob (plaintext) an image may carry.
pub const MAX_STATE: usize = 1 << 20;

/// Page record flags.
pub(crate) const FLAG_DATA: u8 = 0;
pub(crate) const FLAG_ZERO: u8 = 1;
pub(crate) const FLAG_DUP: u8 = 2;

/// What a record holds. The numbers are the format's (0 is never valid, so zeroed bytes are
/// refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordKind {
    /// A guest page.
    Page = 1,
    /// The vCPU state (registers, VMCB save area, x87/SSE).
    Vcpu = 2,
    /// Event-channel and grant state, with what is in flight.
    Channels = 3,
    /// The domain's vTPM instance state (as the vTPM manager exports it).
    Vtpm = 4,
}

/// The state records (every kind but pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKind {
    /// See [`RecordKind::Vcpu`].
    Vcpu,
    /// See [`RecordKind::Channels`].
    Channels,
    /// See [`RecordKind::Vtpm`].
    Vtpm,
}

impl StateKind {
    /// Its record kind.
    #[must_use]
    pub fn record_kind(self) -> RecordKind {
        match self {
            StateKind::Vcpu => RecordKind::Vcpu,
            StateKind::Channels => RecordKind::Channels,
            StateKind::Vtpm => RecordKind::Vtpm,
        }
    }
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<RecordKind> {
        Some(match v {
            1 => RecordKind::Page,
            2 => RecordKind::Vcpu,
            3 => RecordKind::Channels,
            4 => RecordKind::Vtpm,
            _ => return None,
        })
    }
}

/// What a page record says about its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageBody<'a> {
    /// Ciphertext and tag of the page.
    Data(&'a [u8]),
    /// An all-zero page: no ciphertext.
    Zero,
    /// The same bytes as an earlier data page of this image.
    Dup(u64),
}

/// One framed record, borrowed from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its kind.
    pub kind: RecordKind,
    /// Flags (page records: data, zero, dup; 0 for state).
    pub flags: u8,
    /// Page index (0 for state).
    pub index: u64,
    /// The body (ciphertext and tag, a source index, or nothing).
    pub body: &'a [u8],
    /// The whole framed record (header and body): what the Merkle leaf hashes.
    pub raw: &'a [u8],
}

impl<'a> Record<'a> {
    /// The page body, for page records.
    #[must_use]
    pub fn page(&self) -> Option<PageBody<'a>> {
        if self.kind != RecordKind::Page {
            return None;
        }
        Some(match self.flags {
            FLAG_ZERO => PageBody::Zero,
            FLAG_DUP => PageBody::Dup(u64::from_le_bytes(self.body.try_into().ok()?)),
            _ => PageBody::Data(self.body),
        })
    }

    /// Parses the record at `at` in `bytes` (record number `n`); returns it and the offset after.
    pub(crate) fn parse(
        bytes: &'a [u8],
        at: usize,
        n: usize,
    ) -> Result<(Record<'a>, usize), VerifyError> {
        let truncated = VerifyError::Truncated {
            what: "record",
            offset: at,
        };
        let head = bytes
            .get(at..at + RECORD_HEADER_LEN)
            .ok_or(truncated.clone())?;
        let bad = |why| VerifyError::RecordMalformed { record: n, why };
        let kind = RecordKind::from_u8(head[0]).ok_or(bad("unknown record kind"))?;
        let flags = head[1];
        let index = u64::from_le_bytes(head[2..10].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(head[10..14].try_into().unwrap_or_default()) as usize;
        match (kind, flags) {
            (RecordKind::Page, FLAG_DATA) if len != PAGE_SIZE + TAG_LEN => {
                return Err(bad("a data page is not one page of ciphertext and a tag"));
            }
            (RecordKind::Page, FLAG_ZERO) if len != 0 => {
                return Err(bad("a zero page carries bytes"));
            }
            (RecordKind::Page, FLAG_DUP) if len != 8 => {
                return Err(bad("a duplicate page is not one 8-byte source index"));
            }
            (RecordKind::Page, FLAG_DATA | FLAG_ZERO | FLAG_DUP) => {}
            (RecordKind::Page, _) => return Err(bad("unknown page flags")),
            (_, 0) if index != 0 => return Err(bad("a state record has a page index")),
            (_, 0) if !(TAG_LEN..=MAX_STATE + TAG_LEN).contains(&len) => {
                return Err(bad("state record length out of range"));
            }
            (_, 0) => {}
            (_, _) => return Err(bad("a state record has flags")),
        }
        let end = at + RECORD_HEADER_LEN + len;
        let body = bytes.get(at + RECORD_HEADER_LEN..end).ok_or(truncated)?;
        Ok((
            Record {
                kind,
                flags,
                index,
                body,
                raw: &bytes[at..end],
            },
            end,
        ))
    }

    /// Appends a framed record to `out`.
    pub(crate) fn encode(out: &mut Vec<u8>, kind: RecordKind, flags: u8, index: u64, body: &[u8]) {
        out.push(kind as u8);
        out.push(flags);
        out.extend_from_slice(&index.to_le_bytes());
        // Bodies are bounded by MAX_STATE + TAG_LEN, far below u32::MAX.
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(body);
    }
}
