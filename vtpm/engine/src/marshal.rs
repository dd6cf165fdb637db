//! Big-endian TPM 2.0 wire format: a bounds-checked reader and a growable writer.
//!
//! Every read that runs past the end yields `TPM_RC_INSUFFICIENT`; the command handlers number
//! it with the parameter they were reading, so a truncated command gets a precise code.

use crate::rc::Rc;
use alloc::vec::Vec;

/// Reads TPM structures from untrusted bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Rc> {
        if self.remaining() < n {
            return Err(Rc::INSUFFICIENT);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, Rc> {
        Ok(self.bytes(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, Rc> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Rc> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Rc> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    /// A TPM2B: 16-bit size then that many bytes; `max` bounds the size (`TPM_RC_SIZE` beyond it).
    pub(crate) fn tpm2b(&mut self, max: usize) -> Result<&'a [u8], Rc> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(Rc::SIZE);
        }
        self.bytes(n)
    }
    /// A sized structure: returns a reader over exactly its body.
    pub(crate) fn sized(&mut self) -> Result<Reader<'a>, Rc> {
        let n = self.u16()? as usize;
        Ok(Reader::new(self.bytes(n)?))
    }
    /// Fails with `TPM_RC_SIZE` (never numbered, as in the reference) if bytes are left over.
    pub(crate) fn finish(&self) -> Result<(), Rc> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Rc::TRAILING)
        }
    }
}

/// Builds TPM structures.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    pub(crate) fn tpm2b(&mut self, v: &[u8]) -> &mut Self {
        self.u16(v.len() as u16).bytes(v)
    }
    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(&[0, 3, 1, 2]);
        assert_eq!(r.tpm2b(10), Err(Rc::INSUFFICIENT));
        let mut r = Reader::new(&[0, 2, 1, 2, 9]);
        assert_eq!(r.tpm2b(1), Err(Rc::SIZE));
        let mut r = Reader::new(&[0, 2, 1, 2, 9]);
        assert_eq!(r.tpm2b(2).unwrap(), &[1, 2]);
        assert_eq!(r.finish(), Err(Rc::TRAILING));
        assert_eq!(r.u8().unwrap(), 9);
        assert_eq!(r.finish(), Ok(()));
    }
}
