//! The sealed-state blob: what the manager stores for one vTPM instance between boots.
//!
//! ```text
//! "WVSB" | version u16 | instance u32 | counter u64 | public (u16 length, TPM2B_PUBLIC)
//!        | private (u16 length, TPM2B_PRIVATE) | nonce [12] | ciphertext and GCM tag
//! ```
//! All integers big-endian. Everything before the nonce is the AEAD's associated data, so the
//! instance, the counter and the sealed key object are authenticated with the state.

use alloc::vec::Vec;

/// The blob's first four bytes.
pub const BLOB_MAGIC: [u8; 4] = *b"WVSB";
/// The blob format version.
pub const BLOB_VERSION: u16 = 1;
/// AES-GCM nonce length.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// A blob split into its fields (borrowed from the stored bytes).
#[derive(Debug)]
pub(crate) struct Blob<'a> {
    pub instance: u32,
    pub counter: u64,
    pub public: &'a [u8],
    pub private: &'a [u8],
    pub nonce: [u8; NONCE_LEN],
    /// The associated data: every byte before the nonce.
    pub aad: &'a [u8],
    pub ciphertext: &'a [u8],
}

/// Why stored bytes are not a blob (named in [`crate::SealError::Malformed`]).
pub(crate) type ParseError = &'static str;

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: ParseError) -> Result<&'a [u8], ParseError> {
        let end = self.at.checked_add(n).ok_or(what)?;
        let s = self.buf.get(self.at..end).ok_or(what)?;
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: ParseError) -> Result<[u8; N], ParseError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn sized(&mut self, what: ParseError) -> Result<&'a [u8], ParseError> {
        let n = u16::from_be_bytes(self.array(what)?);
        self.take(usize::from(n), what)
    }
}

impl<'a> Blob<'a> {
    /// Splits `bytes`; checks only the framing (the AEAD checks the rest).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Blob<'a>, ParseError> {
        let mut r = Reader { buf: bytes, at: 0 };
        if r.array::<4>("shorter than a header")? != BLOB_MAGIC {
            return Err("not a sealed vTPM state (bad magic)");
        }
        if u16::from_be_bytes(r.array("shorter than a header")?) != BLOB_VERSION {
            return Err("unknown blob version");
        }
        let instance = u32::from_be_bytes(r.array("shorter than a header")?);
        let counter = u64::from_be_bytes(r.array("shorter than a header")?);
        let public = r.sized("sealed key's public area cut off")?;
        let private = r.sized("sealed key's private area cut off")?;
        let aad = &bytes[..r.at];
        let nonce = r.array("nonce cut off")?;
        let ciphertext = &bytes[r.at..];
        if ciphertext.len() < TAG_LEN {
            return Err("ciphertext shorter than its tag");
        }
        Ok(Blob {
            instance,
            counter,
            public,
            private,
            nonce,
            aad,
            ciphertext,
        })
    }
}

/// The associated data for a new blob (its header).
pub(crate) fn header(instance: u32, counter: u64, public: &[u8], private: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(22 + public.len() + private.len());
    v.extend_from_slice(&BLOB_MAGIC);
    v.extend_from_slice(&BLOB_VERSION.to_be_bytes());
    v.extend_from_slice(&instance.to_be_bytes());
    v.extend_from_slice(&counter.to_be_bytes());
    for part in [public, private] {
        // Both halves come from the TPM's 512-byte buffers: a u16 length always holds them.
        v.extend_from_slice(&(part.len() as u16).to_be_bytes());
        v.extend_from_slice(part);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = header(7, 42, b"pub", b"private");
        b.extend_from_slice(&[9; NONCE_LEN]);
        b.extend_from_slice(&[0xAA; 20]);
        b
    }

    #[test]
    fn a_blob_splits_into_its_fields() {
        let bytes = sample();
        let b = Blob::parse(&bytes).unwrap();
        assert_eq!((b.instance, b.counter), (7, 42));
        assert_eq!((b.public, b.private), (&b"pub"[..], &b"private"[..]));
        assert_eq!(b.nonce, [9; NONCE_LEN]);
        assert_eq!(b.aad, &bytes[..bytes.len() - NONCE_LEN - 20]);
        assert_eq!(b.ciphertext, &[0xAA; 20][..]);
    }

    #[test]
    fn every_cut_and_bad_framing_is_named() {
        let bytes = sample();
        let header_len = bytes.len() - NONCE_LEN - 20;
        // Every prefix shorter than a full blob fails with a reason, never panics.
        for n in 0..header_len + NONCE_LEN + TAG_LEN {
            assert!(
                Blob::parse(&bytes[..n]).is_err(),
                "a blob cut at {n} was accepted"
            );
        }
        let cases: [(usize, u8, &str); 3] = [
            (0, b'X', "not a sealed vTPM state (bad magic)"),
            (5, 2, "unknown blob version"),
            // The public length now runs past the end.
            (18, 0xFF, "sealed key's public area cut off"),
        ];
        for (at, value, reason) in cases {
            let mut b = bytes.clone();
            b[at] = value;
            assert_eq!(
                Blob::parse(&b).unwrap_err(),
                reason,
                "byte {at} = {value:#x}"
            );
        }
    }
}
