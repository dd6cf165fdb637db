//! Length-prefixed frames: a little-endian `u32` byte count, then that many bytes of postcard.

use alloc::vec::Vec;
use serde::{Serialize, de::DeserializeOwned};

/// Largest frame body either side accepts (a template's image travels in one frame).
pub const MAX_FRAME: usize = 8 << 20;

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME`]; the connection cannot be resynchronised.
    TooLarge(u32),
    /// The body is not the postcard encoding of the expected type (or has trailing bytes).
    Malformed,
}

/// Encodes `value` as one frame (prefix included).
pub fn encode_frame<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = alloc::vec![0u8; 4];
    // Serialising our own message types into a Vec cannot fail (no maps, no unsized sequences).
    let body = postcard::to_allocvec(value).unwrap_or_default();
    out[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes one frame body (without prefix), refusing trailing bytes.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        _ => Err(FrameError::Malformed),
    }
}

/// Accumulates bytes from a stream and yields complete frame bodies.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed, or an error if the
    /// length prefix is too large (the stream must then be closed).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len as usize > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        let end = 4 + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let body = self.buf[4..end].to_vec();
        self.buf.drain(..end);
        Ok(Some(body))
    }

    /// Bytes received but not yet returned as a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_any_byte_reassemble() {
        let frames = [
            encode_frame(&(1u32, alloc::string::String::from("a"))),
            encode_frame(&(2u32, alloc::string::String::from("bcd"))),
        ];
        let stream: Vec<u8> = frames.concat();
        for cut in 0..=stream.len() {
            let mut r = FrameReader::new();
            let mut got = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                r.push(part);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push(decode::<(u32, alloc::string::String)>(&f).unwrap());
                }
            }
            assert_eq!(got, [(1, "a".into()), (2, "bcd".into())], "cut at {cut}");
            assert_eq!(r.pending(), 0);
        }
    }

    #[test]
    fn oversized_prefix_is_refused() {
        let mut r = FrameReader::new();
        r.push(&((MAX_FRAME as u32) + 1).to_le_bytes());
        assert_eq!(
            r.next_frame(),
            Err(FrameError::TooLarge(MAX_FRAME as u32 + 1))
        );
    }

    #[test]
    fn truncated_and_trailing_bodies_are_malformed() {
        let body = postcard::to_allocvec(&(7u64, alloc::string::String::from("xyz"))).unwrap();
        for n in 0..body.len() {
            assert_eq!(
                decode::<(u64, alloc::string::String)>(&body[..n]),
                Err(FrameError::Malformed),
                "len {n}"
            );
        }
        let mut long = body.clone();
        long.push(0);
        assert_eq!(
            decode::<(u64, alloc::string::String)>(&long),
            Err(FrameError::Malformed)
        );
        assert_eq!(
            decode::<(u64, alloc::string::String)>(&body),
            Ok((7, "xyz".into()))
        );
    }
}
