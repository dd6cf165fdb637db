//! The image container: `magic | version u16 LE | manifest_len u32 LE | manifest | signature
//! (r || s, 64 bytes) | record_count u32 LE | records`. [`Image::parse`] checks the framing
//! only; [`crate::verify`] checks what it means.

use crate::error::VerifyError;
use crate::manifest::Manifest;
use crate::record::{PageBody, Record, RecordKind};
use alloc::vec::Vec;
use sha2::{Digest as _, Sha256};

/// The first eight bytes of every image (`\r\n` catches text-mode mangling).
pub const MAGIC: [u8; 8] = *b"WDCKPT\r\n";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the manifest.
pub const HEADER_LEN: usize = 14;
/// Bytes of the manifest signature.
pub const SIGNATURE_LEN: usize = 64;

/// A framed image, borrowed from its bytes.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    /// The decoded manifest.
    pub manifest: Manifest,
    /// Header and manifest bytes: what the checkpoint digest covers.
    pub(crate) signed: &'a [u8],
    /// The manifest signature, `r || s`.
    pub(crate) signature: [u8; SIGNATURE_LEN],
    /// Records, in image order.
    pub records: Vec<Record<'a>>,
}

fn take<'a>(
    bytes: &'a [u8],
    at: usize,
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], VerifyError> {
    at.checked_add(n)
        .and_then(|end| bytes.get(at..end))
        .ok_or(VerifyError::Truncated { what, offset: at })
}

impl<'a> Image<'a> {
    /// Parses the framing of `bytes`: header, manifest encoding, record framing and order,
    /// exact length. Checks nothing cryptographic.
    ///
    /// # Errors
    ///
    /// The [`VerifyError`] naming the first framing problem.
    pub fn parse(bytes: &'a [u8]) -> Result<Image<'a>, VerifyError> {
        let magic = take(bytes, 0, 8, "header")?;
        if magic != MAGIC {
            return Err(VerifyError::BadMagic);
        }
        let header = take(bytes, 0, HEADER_LEN, "header")?;
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != VERSION {
            return Err(VerifyError::UnsupportedVersion(version));
        }
        let manifest_len =
            u32::from_le_bytes([header[10], header[11], header[12], header[13]]) as usize;
        let manifest_bytes = take(bytes, HEADER_LEN, manifest_len, "manifest")?;
        let mut at = HEADER_LEN + manifest_len;
        let signature: [u8; SIGNATURE_LEN] = take(bytes, at, SIGNATURE_LEN, "signature")?
            .try_into()
            .map_err(|_| VerifyError::Truncated {
                what: "signature",
                offset: at,
            })?;
        at += SIGNATURE_LEN;
        let count_bytes = take(bytes, at, 4, "record count")?;
        let count = u32::from_le_bytes([
            count_bytes[0],
            count_bytes[1],
            count_bytes[2],
            count_bytes[3],
        ]) as usize;
        at += 4;
        // The manifest is decoded only once the whole image is known to be there, so every
        // truncation is reported as one.
        let mut records = Vec::new();
        let mut data_pages: Vec<u64> = Vec::new();
        for n in 0..count {
            let (r, next) = Record::parse(bytes, at, n)?;
            if let Some(prev) = records.last().map(|p: &Record<'_>| (p.kind, p.index))
                && prev >= (r.kind, r.index)
            {
                return Err(VerifyError::RecordMalformed {
                    record: n,
                    why: "records out of (kind, index) order or repeated",
                });
            }
            match r.page() {
                Some(PageBody::Data(_)) => data_pages.push(r.index),
                Some(PageBody::Dup(src)) if data_pages.binary_search(&src).is_err() => {
                    return Err(VerifyError::RecordMalformed {
                        record: n,
                        why: "a duplicate page names no earlier data page",
                    });
                }
                _ => {}
            }
            records.push(r);
            at = next;
        }
        if at != bytes.len() {
            return Err(VerifyError::TrailingBytes(bytes.len() - at));
        }
        let manifest = match postcard::take_from_bytes::<Manifest>(manifest_bytes) {
            Ok((m, [])) => m,
            Ok(_) => return Err(VerifyError::ManifestMalformed("bytes after the manifest")),
            Err(_) => return Err(VerifyError::ManifestMalformed("not a valid encoding")),
        };
        Ok(Image {
            manifest,
            signed: &bytes[..HEADER_LEN + manifest_len],
            signature,
            records,
        })
    }

    /// The checkpoint digest: SHA-256 over header and manifest. What the signature covers and
    /// what a child names as its parent.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.signed).into()
    }

    /// The record of page `index`, if the image has one.
    #[must_use]
    pub fn page_record(&self, index: u64) -> Option<&Record<'a>> {
        let at = self
            .records
            .binary_search_by(|r| (r.kind, r.index).cmp(&(RecordKind::Page, index)))
            .ok()?;
        self.records.get(at)
    }

    /// The state record of `kind`, if present.
    #[must_use]
    pub fn state_record(&self, kind: crate::StateKind) -> Option<&Record<'a>> {
        self.records.iter().find(|r| r.kind == kind.record_kind())
    }
}

/// Header and manifest bytes, as signed.
pub(crate) fn signed_part(manifest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + manifest.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(manifest.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(manifest);
    out
}

/// The image: the signed part, its signature, and the framed records.
pub(crate) fn assemble(
    signed: Vec<u8>,
    signature: &[u8; 64],
    count: u32,
    records: &[u8],
) -> Vec<u8> {
    let mut out = signed;
    out.reserve(SIGNATURE_LEN + 4 + records.len());
    out.extend_from_slice(signature);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(records);
    out
}
